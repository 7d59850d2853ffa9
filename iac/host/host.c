/* host: commands and files on this machine or over SSH (see host.h). */
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

#define TAIL_MAX 2048

struct iac_hosts {
	pthread_mutex_t lk;
	char *local_dir;
	iac_hosts_configure_fn configure;
	void *ud;
	int configured;           /* 0 not yet, 2 configuring, 1 done, -1 failed (error kept) */
	pthread_t configuring;    /* the thread in the configure callback */
	char *error;
	iac_ssh_pool *pool;       /* made on first remote use */
};

int iac_hosts_new(iac_hosts **out, const char *local_dir, iac_hosts_configure_fn configure, void *ud)
{
	iac_hosts *h = iac_xcalloc(1, sizeof(*h));
	pthread_mutex_init(&h->lk, NULL);
	h->local_dir = iac_xstrdup(local_dir ? local_dir : ".");
	h->configure = configure;
	h->ud = ud;
	*out = h;
	return 0;
}

void iac_hosts_free(iac_hosts *h)
{
	if (!h)
		return;
	if (h->pool && getenv("IAC_SSH_STATS")) {
		iac_ssh_stats st;
		iac_ssh_pool_stats(h->pool, &st);
		iac_log("ssh: %lu connections (slowest %.0f ms), %lu commands, %lu sftp writes", st.connects,
			st.connect_ms_max, st.channels, st.sftp_writes);
	}
	iac_ssh_pool_free(h->pool);
	pthread_mutex_destroy(&h->lk);
	free(h->local_dir);
	free(h->error);
	free(h);
}

void iac_hosts_stats(const iac_hosts *h, iac_ssh_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (h->pool)
		iac_ssh_pool_stats(h->pool, out);
}

/* under h->lk */
static int set_ssh_locked(iac_hosts *h, const iac_ssh_options *opts)
{
	iac_ssh_pool *pool;
	if (iac_ssh_pool_new(&pool, opts) < 0)
		return IAC_ERR;
	iac_ssh_pool_free(h->pool);
	h->pool = pool;
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

/* input: input_len bytes (binary safe: a file's content may hold NULs) */
static int exec_remote(iac_host_result *res, iac_hosts *h, const json_t *host, const char *cmd,
		       const void *input, size_t input_len, double timeout_ms, const volatile int *cancel)
{
	iac_ssh_conn *c;
	iac_ssh_result r;
	if (iac_hosts_conn(&c, h, host, cancel) < 0)
		return IAC_ERR;
	int rc = iac_ssh_exec(&r, c, cmd, input, input_len, timeout_ms, cancel);
	if (rc == IAC_ETIMEOUT)
		rc = iac_err_set("command timed out after %.0fs on %s: %s", timeout_ms / 1e3,
				 iac_ssh_conn_label(c), cmd);
	else if (rc == IAC_EINTR)
		rc = iac_err_set("command on %s interrupted: %s", iac_ssh_conn_label(c), cmd);
	res->status = r.status;
	res->out = r.out;
	res->out_len = r.out_len;
	res->err = r.err;
	res->err_len = r.err_len;
	free(r.signal);
	return rc < 0 ? IAC_ERR : 0;
}

static int exec_local(iac_host_result *res, iac_hosts *h, const char *cmd, const char *input,
		      double timeout_ms, const volatile int *cancel)
{
	iac_proc_result r;
	if (iac_proc_run(&r, cmd, h->local_dir, NULL, input, timeout_ms, cancel) < 0)
		return IAC_ERR;
	res->status = r.status;
	res->out = r.out;
	res->out_len = r.out_len;
	res->err = r.err;
	res->err_len = r.err_len;
	if (r.timed_out)
		return iac_err_set("command timed out after %.0fs on this machine: %s", timeout_ms / 1e3, cmd);
	return 0;
}

int iac_host_exec(iac_host_result *res, iac_hosts *h, const json_t *host, const char *cmd,
		  const char *input, double timeout_ms, const volatile int *cancel)
{
	memset(res, 0, sizeof(*res));
	res->status = -1;
	if (timeout_ms <= 0)
		timeout_ms = 60e3;
	if (iac_host_is_remote(host))
		return exec_remote(res, h, host, cmd, input, input ? strlen(input) : 0, timeout_ms, cancel);
	return exec_local(res, h, cmd, input, timeout_ms, cancel);
}

void iac_host_result_free(iac_host_result *res)
{
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
}

/* A non-zero status as an error: host, status, command, tail of stderr. */
static int status_error(const iac_host_result *res, const json_t *host, const char *cmd)
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
		rc = status_error(&res, host, cmd);
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

static int write_local(iac_hosts *h, const char *path, const void *data, size_t len, const char *mode)
{
	char *full = iac_path_join(h->local_dir, path), *dir = iac_xstrdup(full);
	char *slash = strrchr(dir, '/');
	int rc = 0;
	if (slash && slash != dir) {
		*slash = '\0';
		rc = iac_mkdir_p(dir, 0755);
	}
	if (rc == 0)
		rc = iac_file_replace(full, data, len, (mode_t)strtoul(mode, NULL, 8));
	free(full);
	free(dir);
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
	if (!iac_host_is_remote(host))
		return write_local(h, path, data, len, m);
	/* one round trip: the content on stdin, written beside, renamed */
	char *q = iac_ssh_quote(path);
	char *cmd = iac_xasprintf("set -e; d=$(dirname %s); mkdir -p \"$d\"; t=%s.iac.$$; cat > \"$t\"; "
				  "chmod %s \"$t\"; mv -f \"$t\" %s", q, q, m, q);
	iac_host_result res;
	memset(&res, 0, sizeof(res));
	res.status = -1;
	/* 30 s, plus a second per MiB: a shipped binary is a few MiB */
	rc = exec_remote(&res, h, host, cmd, data, len, 30e3 + (double)(len >> 20) * 1e3, cancel);
	if (rc == 0 && res.status != 0)
		rc = status_error(&res, host, cmd);
	iac_host_result_free(&res);
	free(cmd);
	free(q);
	return rc;
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
