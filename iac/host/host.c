/* host: commands and files on this machine or over SSH (see host.h): the
 * hosts object, what a host value designates, and the choice of backend
 * (host_local.c, host_ssh.c). */
#include "iac/host/host.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/proc.h"
#include "iac/core/util.h"
#include "iac/host/host_int.h"

#define TAIL_MAX 2048

int iac_hosts_new(iac_hosts **out, const char *local_dir, iac_hosts_configure_fn configure, void *ud)
{
	iac_hosts *h = iac_xcalloc(1, sizeof(*h));
	pthread_mutex_init(&h->lk, NULL);
	pthread_mutex_init(&h->batch_lk, NULL);
	h->local_dir = iac_xstrdup(local_dir ? local_dir : ".");
	h->configure = configure;
	h->ud = ud;
	*out = h;
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s ? iac_xstrdup(s) : NULL;
}

static void forget_opts(iac_hosts *h)
{
	free((char *)h->opts.user);
	free((char *)h->opts.private_key);
	free((char *)h->opts.public_key);
	free((char *)h->opts.known_hosts);
	memset(&h->opts, 0, sizeof(h->opts));
}

void iac_hosts_free(iac_hosts *h)
{
	if (!h)
		return;
	if (h->pool && getenv("IAC_SSH_STATS")) {
		iac_ssh_stats st;
		iac_ssh_pool_stats(&st, h->pool);
		iac_log("ssh: %lu connections (slowest %.0f ms), %lu commands, %lu sftp writes", st.connects,
			st.connect_ms_max, st.channels, st.sftp_writes);
	}
	iac_hosts_batch_free(h);
	iac_ssh_pool_free(h->pool);
	forget_opts(h);
	pthread_mutex_destroy(&h->lk);
	pthread_mutex_destroy(&h->batch_lk);
	free(h->local_dir);
	free(h->error);
	free(h);
}

void iac_hosts_stats(iac_ssh_stats *out, const iac_hosts *h)
{
	memset(out, 0, sizeof(*out));
	if (h->pool)
		iac_ssh_pool_stats(out, h->pool);
}

/* under h->lk */
static int set_ssh_locked(iac_hosts *h, const iac_ssh_options *opts)
{
	iac_ssh_pool *pool;
	if (iac_ssh_pool_new(&pool, opts) < 0)
		return IAC_ERR;
	iac_ssh_pool_free(h->pool);
	h->pool = pool;
	forget_opts(h);
	h->opts = *opts;
	h->opts.user = dup_or_null(opts->user);
	h->opts.private_key = dup_or_null(opts->private_key);
	h->opts.public_key = dup_or_null(opts->public_key);
	h->opts.known_hosts = dup_or_null(opts->known_hosts);
	h->opts.passphrase = h->opts.become_password = NULL;   /* never handed out */
	return 0;
}

int iac_hosts_set_ssh(iac_hosts *h, const iac_ssh_options *opts)
{
	/* from the configure callback, the lock is already ours */
	if (h->configured == 2 && pthread_equal(h->configuring, pthread_self()))
		return set_ssh_locked(h, opts);
	pthread_mutex_lock(&h->lk);
	int rc = set_ssh_locked(h, opts);
	pthread_mutex_unlock(&h->lk);
	return rc;
}

/* The pool, configuring it on first use. */
static int pool_of(iac_ssh_pool **out, iac_hosts *h)
{
	int rc = 0;
	pthread_mutex_lock(&h->lk);
	if (h->configured == 0) {
		h->configured = 2;   /* inside configure: iac_hosts_set_ssh must not lock */
		h->configuring = pthread_self();
		if (h->configure && h->configure(h, h->ud) < 0) {
			h->error = iac_xstrdup(iac_err_last());
			h->configured = -1;
		} else {
			h->configured = 1;
		}
		if (h->configured == 1 && !h->pool) {
			iac_ssh_options none = { 0 };
			if (set_ssh_locked(h, &none) < 0) {
				h->error = iac_xstrdup(iac_err_last());
				h->configured = -1;
			}
		}
	}
	if (h->configured < 0)
		rc = iac_err_set("%s", h->error);
	*out = h->pool;
	pthread_mutex_unlock(&h->lk);
	return rc;
}

int iac_hosts_ssh(iac_ssh_options *out, iac_hosts *h)
{
	iac_ssh_pool *pool;
	memset(out, 0, sizeof(*out));
	if (pool_of(&pool, h) < 0)
		return IAC_ERR;
	pthread_mutex_lock(&h->lk);
	*out = h->opts;
	pthread_mutex_unlock(&h->lk);
	return 0;
}

int iac_host_is_remote(const json_t *host)
{
	return json_is_string(host) ||
	       (json_is_object(host) && (json_is_string(json_object_get(host, "address")) ||
					 json_is_string(json_object_get(host, "name"))));
}

const char *iac_host_label(const json_t *host)
{
	static __thread char buf[300];
	if (!iac_host_is_remote(host))
		return "this machine";
	if (json_is_string(host)) {
		snprintf(buf, sizeof(buf), "'%s'", json_string_value(host));
		return buf;
	}
	const char *name = iac_json_str(host, "name");
	const char *addr = iac_json_str(host, "address");
	snprintf(buf, sizeof(buf), "'%s' (%s)", name ? name : addr, addr ? addr : name);
	return buf;
}

static int host_port(const json_t *h)
{
	const json_t *p = json_object_get(h, "port");
	if (json_is_integer(p))
		return (int)json_integer_value(p);
	if (json_is_real(p))
		return (int)json_real_value(p);
	if (json_is_string(p))
		return atoi(json_string_value(p));
	return 0;
}

int iac_host_same(const json_t *a, const json_t *b)
{
	if (json_is_string(a) || json_is_string(b))
		return json_equal((json_t *)a, (json_t *)b);
	const char *aa = iac_json_str(a, "address");
	const char *ba = iac_json_str(b, "address");
	const char *au = iac_json_str(a, "user");
	const char *bu = iac_json_str(b, "user");
	return aa && ba && !strcmp(aa, ba) && host_port(a) == host_port(b) &&
	       ((!au && !bu) || (au && bu && !strcmp(au, bu)));
}

/* A host value, parsed: where to connect. Strings point into `host`. */
static int parse_target(iac_ssh_target *t, const json_t *host)
{
	memset(t, 0, sizeof(*t));
	if (json_is_string(host)) {
		/* a bare address is handy in tests and one-off configs */
		t->address = t->name = json_string_value(host);
	} else if (json_is_object(host)) {
		t->name = iac_json_str(host, "name");
		t->address = iac_json_str(host, "address");
		t->user = iac_json_str(host, "user");
		t->port = host_port(host);
		if (!t->address)
			t->address = t->name;
	} else {
		return iac_err_set("attribute 'host': expected a host (host \"name\" { address = ... })");
	}
	if (!t->address)
		return iac_err_set("attribute 'host': the host has no address");
	return 0;
}

int iac_hosts_conn(iac_ssh_conn **out, iac_hosts *h, const json_t *host, const volatile int *cancel)
{
	iac_ssh_target t;
	iac_ssh_pool *pool;
	*out = NULL;
	if (parse_target(&t, host) < 0 || pool_of(&pool, h) < 0)
		return IAC_ERR;
	return iac_ssh_pool_get(out, pool, &t, cancel);
}

int iac_hosts_renew(iac_hosts *h, const json_t *host)
{
	iac_ssh_target t;
	iac_ssh_pool *pool;
	if (!iac_host_is_remote(host))
		return 0;
	if (parse_target(&t, host) < 0 || pool_of(&pool, h) < 0)
		return IAC_ERR;
	return iac_ssh_pool_renew(pool, t.address, t.port);
}

static const iac_host_backend *backend_of(const json_t *host)
{
	return iac_host_is_remote(host) ? &iac_host_ssh : &iac_host_local;
}

int iac_host_exec(iac_host_result *res, iac_hosts *h, const json_t *host, const char *cmd,
		  const char *input, double timeout_ms, const volatile int *cancel)
{
	memset(res, 0, sizeof(*res));
	res->status = -1;
	if (timeout_ms <= 0)
		timeout_ms = 60e3;
	return backend_of(host)->exec(res, h, host, cmd, input, input ? strlen(input) : 0, timeout_ms, cancel);
}

void iac_host_result_free(iac_host_result *res)
{
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
}

int iac_host_status_error(const iac_host_result *res, const json_t *host, const char *cmd)
{
	iac_buf msg = IAC_BUF_INIT;
	iac_buf_printf(&msg, "command failed with exit status %d on %s: %s", res->status,
		       iac_host_label(host), cmd);
	if (res->err_len)
		iac_buf_printf(&msg, "\n  stderr: %s", iac_proc_tail(res->err, TAIL_MAX));
	else if (res->out_len)
		iac_buf_printf(&msg, "\n  stdout: %s", iac_proc_tail(res->out, TAIL_MAX));
	iac_err_set("%s", iac_buf_cstr(&msg));
	iac_buf_free(&msg);
	return IAC_ERR;
}

int iac_host_run(char **out, iac_hosts *h, const json_t *host, const char *cmd, double timeout_ms,
		 const volatile int *cancel)
{
	iac_host_result res;
	if (out)
		*out = NULL;
	int rc = iac_host_exec(&res, h, host, cmd, NULL, timeout_ms, cancel);
	if (rc == 0 && res.status != 0)
		rc = iac_host_status_error(&res, host, cmd);
	if (rc == 0 && out) {
		*out = res.out ? res.out : iac_xstrdup("");
		res.out = NULL;
	}
	iac_host_result_free(&res);
	return rc;
}

int iac_host_status(int *status, iac_hosts *h, const json_t *host, const char *cmd, double timeout_ms,
		    const volatile int *cancel)
{
	iac_host_result res;
	int rc = iac_host_exec(&res, h, host, cmd, NULL, timeout_ms, cancel);
	*status = res.status;
	iac_host_result_free(&res);
	return rc;
}

int iac_host_write(iac_hosts *h, const json_t *host, const char *path, const void *data, size_t len,
		   const char *mode, const volatile int *cancel)
{
	char m[8];
	json_t *jm = mode ? json_string(mode) : NULL;
	int rc = iac_host_mode_norm(m, jm, "0644");
	json_decref(jm);
	if (rc < 0)
		return IAC_ERR;
	return backend_of(host)->write(h, host, path, data, len, m, cancel);
}

int iac_host_read(char **out, size_t *len, iac_hosts *h, const json_t *host, const char *path, size_t max,
		  double timeout_ms, const volatile int *cancel)
{
	*out = NULL;
	*len = 0;
	if (max == 0 || max > IAC_HOST_READ_MAX)
		max = IAC_HOST_READ_MAX;
	if (timeout_ms <= 0)
		timeout_ms = 60e3;
	return backend_of(host)->read(out, len, h, host, path, max, timeout_ms, cancel);
}

int iac_host_stat(iac_host_stat_info *st, iac_hosts *h, const json_t *host, const char *path, double timeout_ms,
		  const volatile int *cancel)
{
	memset(st, 0, sizeof(*st));
	if (timeout_ms <= 0)
		timeout_ms = 60e3;
	return backend_of(host)->stat(st, h, host, path, timeout_ms, cancel);
}

int iac_host_mode_norm(char out[8], const json_t *mode, const char *dflt)
{
	unsigned long m;
	char *end;
	char tmp[32];
	const char *s;

	if (!mode || json_is_null(mode)) {
		snprintf(out, 8, "%s", dflt);
		return 0;
	}
	if (json_is_integer(mode)) {
		/* a Lua number 644 was meant as octal text */
		snprintf(tmp, sizeof(tmp), "%lld", (long long)json_integer_value(mode));
		s = tmp;
	} else if (json_is_string(mode)) {
		s = json_string_value(mode);
	} else {
		return iac_err_set("attribute 'mode': expected a string like \"0644\"");
	}
	m = strtoul(s, &end, 8);
	if (!*s || *end)
		return iac_err_set("attribute 'mode': '%s' is not an octal mode like \"0644\"", s);
	if (m > 07777)
		return iac_err_set("attribute 'mode': %lo is out of range", m);
	snprintf(out, 8, "%04lo", m);
	return 0;
}
