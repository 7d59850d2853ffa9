/* lxd: the provider table, its blocks turned into clients of iac/http, and
 * the calls every type makes (see lxd.h). */
#include "providers/lxd/lxd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/provider/settings.h"

/* PEM given as text goes into a memfd, so libcurl can read it by path
 * without it ever being on disk; a path is resolved against config_dir
 * and checked. *path: what to hand libcurl (caller frees). */
static int pem_source(char **path, int *fd, const json_t *cfg, const char *key, const char *config_dir)
{
	const char *v = iac_json_str(cfg, key);
	*path = NULL;
	if (!v)
		return 0;
	if (strstr(v, "-----BEGIN ")) {
		*fd = memfd_create(key, MFD_CLOEXEC);
		if (*fd < 0)
			return iac_err_sys("cannot hold %s in memory", key);
		size_t len = strlen(v);
		if (write(*fd, v, len) != (ssize_t)len)
			return iac_err_sys("cannot hold %s in memory", key);
		*path = iac_xasprintf("/proc/self/fd/%d", *fd);
		return 0;
	}
	if (!strcmp(key, "client_key") && strchr(v, '\n'))
		return iac_err_set("client_key is neither a PEM key (-----BEGIN ...) nor a file name");
	*path = iac_path_join(config_dir, v);
	if (access(*path, R_OK) < 0) {
		iac_err_sys("cannot read %s '%s'", key, *path);
		free(*path);
		*path = NULL;
		return IAC_ERR;
	}
	return 0;
}

static int make_conn(lxd_conn *c, const json_t *cfg, const char *config_dir, const char *alias)
{
	iac_http_opts o = { 0 };
	char *cert = NULL, *key = NULL, *ca = NULL, *label = NULL;
	int rc = IAC_ERR;

	c->alias = alias ? iac_xstrdup(alias) : NULL;
	c->fds[0] = c->fds[1] = c->fds[2] = -1;
	c->op_timeout_ms = 120000;
	pthread_mutex_init(&c->lock, NULL);
	/* the key's text is secret; a file name is not (and names what is missing) */
	if (iac_json_str(cfg, "client_key") && strstr(iac_json_str(cfg, "client_key"), "-----BEGIN "))
		iac_redact_add(iac_json_str(cfg, "client_key"));
	static const char *const allowed[] = { "endpoint", "client_cert", "client_key", "server_cert", "timeout",
					       "retries", "operation_timeout", NULL };
	if (iac_settings_check_keys(cfg, allowed, "give the server's certificate with server_cert (lxc info "
				    "shows it; /var/lib/lxd/server.crt)") < 0)
		goto done;
	const char *ep = iac_json_str(cfg, "endpoint");
	if (!ep) {
		iac_err_set("endpoint is required (\"https://127.0.0.1:8443\")");
		goto done;
	}
	if (strncmp(ep, "https://", 8)) {
		iac_err_set("endpoint '%s' must start with https:// (LXD's API over TLS with a client certificate)", ep);
		goto done;
	}
	c->endpoint = iac_xstrdup(ep);
	size_t el = strlen(c->endpoint);
	while (el && c->endpoint[el - 1] == '/')
		c->endpoint[--el] = '\0';
	if (!iac_json_str(cfg, "client_cert") || !iac_json_str(cfg, "client_key")) {
		iac_err_set("client_cert and client_key are required: LXD's API answers only clients whose "
			    "certificate it trusts (lxc config trust add CERT)");
		goto done;
	}
	if (pem_source(&cert, &c->fds[0], cfg, "client_cert", config_dir) < 0 ||
	    pem_source(&key, &c->fds[1], cfg, "client_key", config_dir) < 0 ||
	    pem_source(&ca, &c->fds[2], cfg, "server_cert", config_dir) < 0)
		goto done;
	o.retries = -1;
	const json_t *r = json_object_get(cfg, "retries");
	if (r) {
		if (!json_is_integer(r) || json_integer_value(r) < 0) {
			iac_err_set("retries must be a whole number, 0 or more");
			goto done;
		}
		o.retries = (int)json_integer_value(r);
	}
	if (iac_settings_duration(&o.timeout_ms, json_object_get(cfg, "timeout"), "timeout") < 0 ||
	    iac_settings_duration(&c->op_timeout_ms, json_object_get(cfg, "operation_timeout"), "operation_timeout") < 0)
		goto done;
	label = alias ? iac_xasprintf("provider 'lxd' \"%s\"", alias) : iac_xstrdup("provider 'lxd'");
	o.name = label;
	o.base_url = c->endpoint;
	o.cert_file = cert;
	o.key_file = key;
	o.ca_file = ca;
	rc = iac_http_new(&c->http, &o);
done:
	if (rc < 0 && alias)
		iac_err_prefix("instance \"%s\"", alias);
	free(cert);
	free(key);
	free(ca);
	free(label);
	return rc;
}

static void lxd_close(void *pdata)
{
	lxd_set *set = pdata;
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++) {
		lxd_conn *c = &set->v[i];
		iac_http_free(c->http);
		for (int k = 0; k < 3; k++)
			if (c->fds[k] >= 0)
				close(c->fds[k]);
		pthread_mutex_destroy(&c->lock);
		free(c->alias);
		free(c->endpoint);
	}
	free(set->v);
	free(set);
}

static int add_conn(void *ud, const json_t *block, const char *alias)
{
	lxd_set *set = ud;
	return make_conn(&set->v[set->n++], block, set->config_dir, alias);
}

static int lxd_configure(void **out, const json_t *config, const char *config_dir)
{
	lxd_set *set = iac_xcalloc(1, sizeof(*set));
	set->v = iac_xcalloc(iac_settings_instance_max(config), sizeof(*set->v));
	set->config_dir = config_dir;
	if (iac_settings_each_instance(config, add_conn, set) < 0) {
		char *msg = iac_xstrdup(iac_err_last());
		lxd_close(set);
		iac_err_set("%s", msg);
		free(msg);
		return IAC_ERR;
	}
	set->config_dir = NULL;
	*out = set;
	return 0;
}

int lxd_conn_for(lxd_conn **out, const iac_rctx *ctx, const json_t *attrs)
{
	lxd_set *set = ctx->pdata;
	const char *want = iac_json_str(attrs, "provider");
	*out = NULL;
	for (size_t i = 0; set && i < set->n; i++) {
		const char *a = set->v[i].alias;
		if ((!want && !a) || (want && a && !strcmp(want, a))) {
			*out = &set->v[i];
			return 0;
		}
	}
	if (!want)
		return iac_err_set("no provider \"lxd\" block: declare provider \"lxd\" { endpoint = ..., client_cert = "
				   "..., client_key = ... }, or name one with provider = \"NAME\"");
	return iac_err_set("provider 'lxd' \"%s\" is not declared (declare it with provider \"lxd\" \"%s\" "
			   "{ endpoint = ... })", want, want);
}

/* LXD's own words for a refused request or a failed operation. */
static int lxd_says(const iac_http_resp *r, const json_t *op)
{
	const char *m = op ? iac_json_str(op, "err") : NULL;
	if (!m && json_is_object(r->json))
		m = iac_json_str(r->json, "error");
	if (!m || !*m) {
		if (op)
			return iac_err_set("lxd says: operation %s ended %s", iac_json_str(op, "id") ?: "?",
					   iac_json_str(op, "status") ?: "without a status");
		return iac_http_status_error(r);
	}
	iac_err_set("lxd says: %s", m);
	return r && r->status == 404 ? IAC_ENOTFOUND : IAC_ERR;
}

/* Once per block: an untrusted certificate gets 403 "not authorized" on
 * every call; say what to do about it instead. */
static int check_trusted(lxd_conn *c, const volatile int *cancel)
{
	pthread_mutex_lock(&c->lock);
	int ok = c->trusted;
	pthread_mutex_unlock(&c->lock);
	if (ok)
		return 0;
	iac_http_resp r;
	int rc = iac_http_request(&r, c->http, "GET", "/1.0", NULL, cancel);
	if (rc == 0 && r.status != 200)
		rc = lxd_says(&r, NULL);
	const json_t *meta = rc == 0 ? json_object_get(r.json, "metadata") : NULL;
	if (rc == 0 && strcmp(iac_json_str(meta, "auth") ?: "", "trusted"))
		rc = iac_err_set("lxd at '%s' does not trust the client certificate (auth: %s): add it on the server "
				 "with 'lxc config trust add CERT', or give the client_cert/client_key pair it trusts",
				 c->endpoint, iac_json_str(meta, "auth") ?: "?");
	iac_http_resp_free(&r);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&c->lock);
	c->trusted = 1;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* Wait for an operation, in slices the HTTP timeout covers, until the
 * provider's operation timeout. *meta: the operation when it succeeded. */
static int wait_op(json_t **meta, lxd_conn *c, const char *op_path, const volatile int *cancel)
{
	double end = iac_now_ms() + c->op_timeout_ms;
	for (;;) {
		double left = end - iac_now_ms();
		/* timeout=-1 would wait for ever: at least 1 s, the deadline is checked after */
		int slice = left > 30000 ? 30 : left > 0 ? (int)(left / 1000) + 1 : 1;
		char *path = iac_xasprintf("%s/wait?timeout=%d", op_path, slice);
		iac_http_req rq = { .method = "GET", .path = path, .timeout_ms = slice * 1000.0 + 15000 };
		iac_http_resp r;
		int rc = iac_http_send(&r, c->http, &rq, cancel);
		free(path);
		if (rc == 0 && r.status != 200)
			rc = lxd_says(&r, NULL);
		const json_t *op = rc == 0 ? json_object_get(r.json, "metadata") : NULL;
		const char *st = iac_json_str(op, "status");
		if (rc == 0 && st && !strcmp(st, "Success")) {
			*meta = json_incref(json_object_get(op, "metadata"));
			iac_http_resp_free(&r);
			return 0;
		}
		if (rc == 0 && st && strcmp(st, "Running") && strcmp(st, "Pending"))
			rc = lxd_says(&r, op);
		if (rc == 0 && iac_now_ms() >= end)
			rc = iac_err_set("operation '%s' still %s after %.0fs (operation_timeout)", op_path,
					 st ? st : "running", c->op_timeout_ms / 1000);
		iac_http_resp_free(&r);
		if (rc < 0)
			return rc;
	}
}

int lxd_call(json_t **meta, char **etag, lxd_conn *c, const iac_http_req *rq, const volatile int *cancel)
{
	iac_http_resp r;
	if (meta)
		*meta = NULL;
	if (etag)
		*etag = NULL;
	int rc = check_trusted(c, cancel);
	if (rc < 0)
		return rc;
	rc = iac_http_send(&r, c->http, rq, cancel);
	if (rc < 0)
		goto done;
	if (r.status < 200 || r.status > 299) {
		rc = lxd_says(&r, NULL);
		goto done;
	}
	if (etag && r.etag)
		*etag = iac_xstrdup(r.etag);
	if (!strcmp(iac_json_str(r.json, "type") ?: "", "async")) {
		const char *op = iac_json_str(r.json, "operation");
		json_t *m = NULL;
		if (!op) {
			rc = iac_err_set("%s '%s' answered an operation without its path", r.method, r.url);
			goto done;
		}
		rc = wait_op(&m, c, op, cancel);
		if (meta)
			*meta = m;
		else
			json_decref(m);
	} else if (meta) {
		*meta = json_incref(json_object_get(r.json, "metadata"));
	}
done:
	iac_http_resp_free(&r);
	return rc;
}

int lxd_json(json_t **meta, lxd_conn *c, const char *method, const char *path, const json_t *body,
	     const volatile int *cancel)
{
	iac_http_req rq = { .method = method, .path = path, .json = body };
	return lxd_call(meta, NULL, c, &rq, cancel);
}

int lxd_deleted(int rc, const char *what, const char *name)
{
	if (rc == IAC_ENOTFOUND)
		return 0;
	if (rc < 0)
		return iac_err_set("cannot delete %s '%s': %s", what, name, iac_err_last());
	return 0;
}

char *lxd_name_of(const iac_rctx *ctx, const json_t *attrs)
{
	const char *n = iac_json_str(attrs, "name");
	if (n)
		return iac_xstrdup(n);
	/* "lxd.instance.app1", "module.web.lxd.instance.app1", "lxd.instance.app[1]" */
	const char *a = ctx->addr, *p = strstr(a, "lxd.");
	while (p && strstr(p + 1, "lxd."))
		p = strstr(p + 1, "lxd.");
	p = p ? strchr(p + 4, '.') : NULL;
	char *out = iac_xstrdup(p ? p + 1 : a);
	for (char *s = out; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-'))
			*s = '-';
	return out;
}

json_t *lxd_config_strings(const json_t *map, const char *what)
{
	json_t *o = json_object(), *v;
	const char *k;
	json_object_foreach((json_t *)map, k, v) {
		if (json_is_string(v)) {
			json_object_set(o, k, v);
		} else if (json_is_integer(v)) {
			json_object_set_new(o, k, json_sprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v)));
		} else if (json_is_real(v)) {
			double d = json_real_value(v);
			if (d == (double)(long long)d)
				json_object_set_new(o, k, json_sprintf("%lld", (long long)d));
			else
				json_object_set_new(o, k, json_sprintf("%g", d));
		} else if (json_is_boolean(v)) {
			json_object_set_new(o, k, json_string(json_is_true(v) ? "true" : "false"));
		} else {
			json_decref(o);
			iac_err_set("%s '%s' must be a string, a number or true/false", what, k);
			return NULL;
		}
	}
	return o;
}

char *lxd_path(const char *kind, const char *name)
{
	char *tpl = iac_xasprintf("/1.0/%s/{id}", kind);
	char *p = iac_http_path(tpl, name);
	free(tpl);
	return p;
}

static const iac_rtype *const lxd_types[] = { &iac_lxd_instance, &iac_lxd_profile, &iac_lxd_network,
					       &iac_lxd_image, NULL };

const iac_provider iac_provider_lxd = {
	.name = "lxd",
	.types = lxd_types,
	.configure = lxd_configure,
	.close = lxd_close,
	.prelude = "prelude/lxd.lua",
};
