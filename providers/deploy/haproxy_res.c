/* deploy.haproxy: HAProxy 2.6 in master-worker mode on a host or here.
 *
 * The config comes from iac/deploy/haproxy_cfg.c (blue/green backend,
 * idle-close-on-response, server-state-file). It is always checked with
 * `haproxy -c` before HAProxy sees it. The live colour written into the
 * config never changes after creation ("blue"): which colour takes traffic
 * is runtime state that deploy.blue_green sets through the API and saves
 * to the server-state-file, so a reload keeps it (HAProxy keeps saved
 * states when the configured ones did not change).
 */
#include "providers/deploy/deploy.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/deploy/haproxy_api.h"
#include "iac/deploy/haproxy_cfg.h"
#include "iac/deploy/haproxy_ctl.h"

static const iac_attr hap_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_FORCE_NEW, "host to run on (default: this machine)" },
	{ "bind", IAC_T_STRING, IAC_A_REQUIRED, "address:port the frontend listens on" },
	{ "backend", IAC_T_STRING, 0, "backend name, default \"app\"" },
	{ "servers", IAC_T_LIST, IAC_A_REQUIRED, "[{name, address, port, colour}] of both colours" },
	{ "health", IAC_T_MAP, 0, "HAProxy's own checks: {path, interval, rise, fall}" },
	{ "dir", IAC_T_STRING, IAC_A_FORCE_NEW, "directory for config, pid, sockets and server state" },
	{ "api_port", IAC_T_NUMBER, IAC_A_FORCE_NEW, "remote hosts: TCP port of the runtime API (default 9999)" },
	{ "timeouts", IAC_T_MAP, 0, "{connect, client, server, http_keep_alive, queue}" },
	{ "balance", IAC_T_STRING, 0, "roundrobin (default), leastconn (uneven request costs), static-rr, first, random" },
	{ "slowstart", IAC_T_STRING, 0, "a server back in the pool ramps up over this long, e.g. \"10s\"" },
	{ "cache", IAC_T_MAP, 0, "level-1 HTTP cache: {size_mb, max_age, max_object_kb, paths, release, assume_fresh} (docs/cache.md)" },
	{ "api", IAC_T_STRING, IAC_A_COMPUTED, "runtime API address, reachable from iac" },
	{ "master", IAC_T_STRING, IAC_A_COMPUTED, "master CLI address" },
	{ "state_file", IAC_T_STRING, IAC_A_COMPUTED, "server-state-file on the HAProxy host" },
	{ "config_sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of the rendered config" },
	{ NULL, 0, 0, NULL },
};

typedef struct {
	const json_t *host;
	char *dir, *cfg, *pidfile, *api, *master, *state_file, *api_bind;
} paths;

static void paths_free(paths *p)
{
	free(p->dir);
	free(p->cfg);
	free(p->pidfile);
	free(p->api);
	free(p->master);
	free(p->state_file);
	free(p->api_bind);
}

static const char *res_name(const iac_rctx *ctx)
{
	const char *dot = strrchr(ctx->addr, '.');
	return dot ? dot + 1 : ctx->addr;
}

static void make_paths(paths *p, const iac_rctx *ctx, const json_t *a)
{
	const char *dir = iac_json_str(a, "dir");
	memset(p, 0, sizeof(*p));
	p->host = json_object_get(a, "host");
	if (iac_host_is_remote(p->host)) {
		const char *addr = iac_json_str(p->host, "address");
		long port = json_is_integer(json_object_get(a, "api_port")) ? (long)json_integer_value(json_object_get(a, "api_port")) : 9999;
		p->dir = dir ? iac_xstrdup(dir) : iac_xasprintf("/var/lib/iac/haproxy-%s", res_name(ctx));
		p->api = iac_xasprintf("ipv4@%s:%ld", addr, port);
		p->api_bind = iac_xstrdup(p->api);
		p->master = iac_xasprintf("ipv4@%s:%ld", addr, port - 1);
	} else {
		p->dir = dir ? iac_path_join(ctx->config_dir, dir)
			     : iac_xasprintf("%s/.iac/haproxy/%s", ctx->config_dir, res_name(ctx));
		p->api = iac_xasprintf("%s/api.sock", p->dir);
		p->api_bind = iac_xstrdup(p->api);
		p->master = iac_xasprintf("%s/master.sock", p->dir);
	}
	p->cfg = iac_xasprintf("%s/haproxy.cfg", p->dir);
	p->pidfile = iac_xasprintf("%s/haproxy.pid", p->dir);
	p->state_file = iac_xasprintf("%s/server-state", p->dir);
}

/* The config description (iac/deploy/haproxy_cfg.h) of attributes a. */
static json_t *describe(const char *name, const char *api_bind, const char *state_file, const json_t *a)
{
	json_t *desc = json_pack("{s:{s:s,s:O},s:{s:s,s:s,s:s*},s:O,s:s,s:s,s:s}",
				 "frontend", "name", name, "bind", json_object_get(a, "bind"),
				 "backend", "name", iac_json_str(a, "backend") ?: "app",
				 "balance", iac_json_str(a, "balance") ?: "roundrobin",
				 "slowstart", iac_json_str(a, "slowstart"),
				 "servers", json_object_get(a, "servers"), "live", "blue",
				 "stats_socket", api_bind, "state_file", state_file);
	if (json_is_object(json_object_get(a, "health")))
		json_object_set(desc, "health", json_object_get(a, "health"));
	if (json_is_object(json_object_get(a, "timeouts")))
		json_object_set(desc, "timeouts", json_object_get(a, "timeouts"));
	return desc;
}

/* A config word iac may paste: a server name, a path prefix, a release. */
static int l1_word(const char *w)
{
	if (!w || !*w)
		return 0;
	for (const char *c = w; *c; c++)
		if (!(isalnum((unsigned char)*c) || strchr("/_.-~%:+@", *c)))
			return 0;
	return 1;
}

/* cache = { size_mb = 64, max_age = "60s", max_object_kb = 512,
 * paths = { "/catalog/" }, release = "v2" }: HAProxy's own cache in front
 * of the backend (the level 1 of docs/cache.md), appended to the backend,
 * which the rendered config ends with. HAProxy keys entries by Host and
 * URI; iac adds the live colour (Host is "COLOUR.l1.HOST" for the lookup,
 * which also keys the store, then put back; a "#" would be cut off), so
 * after a switch the new colour never gets the
 * old one's pages; while both colours take traffic (a canary) nothing is
 * cached. `release` is written into the config: a new release changes the
 * config, the reload starts a worker with an empty cache, and so the new
 * colour's key space holds nothing from its previous release. */
static int with_l1(char **text, const json_t *a)
{
	const json_t *c = json_object_get(a, "cache");
	if (!json_is_object(c))
		return 0;
	const char *be = iac_json_str(a, "backend") ?: "app";
	double age_ms = 60e3;
	if (iac_json_str(c, "max_age") && iac_duration_parse(&age_ms, iac_json_str(c, "max_age")) < 0)
		return iac_err_set("cache.max_age: %s", iac_err_last());
	json_t *v = json_object_get(c, "size_mb"), *o = json_object_get(c, "max_object_kb");
	long size_mb = json_is_number(v) ? (long)json_number_value(v) : 64;
	long obj_kb = json_is_number(o) ? (long)json_number_value(o) : 512;
	if (size_mb < 1 || size_mb > 4095 || obj_kb < 1 || obj_kb * 1024 / 2 > size_mb * 1048576L || age_ms < 1000)
		return iac_err_set("cache: size_mb 1-4095, max_object_kb at most half of it, max_age at least 1s");
	const char *release = iac_json_str(c, "release");
	if (release && !l1_word(release))
		return iac_err_set("cache.release '%s' must be one word (letters, digits, /_.-~%%:+@)", release);
	iac_buf b = IAC_BUF_INIT, acl = IAC_BUF_INIT;
	iac_buf_puts(&b, *text);
	iac_buf_printf(&b, "\t# level-1 HTTP cache, keyed by the live colour; release %s\n", release ?: "-");
	const json_t *prefixes = json_object_get(c, "paths");
	size_t i;
	json_t *pv;
	json_array_foreach(prefixes, i, pv) {
		if (!l1_word(json_string_value(pv)) || json_string_value(pv)[0] != '/') {
			iac_buf_free(&b);
			return iac_err_set("cache.paths[%zu] must be a path prefix like \"/catalog/\"", i);
		}
		iac_buf_printf(&b, "\tacl iac_l1_path path_beg %s\n", json_string_value(pv));
	}
	/* a colour is live for the cache when some of its servers are up and
	 * none of any other colour is */
	const char *colours[8];
	size_t nc = 0;
	json_array_foreach(json_object_get(a, "servers"), i, pv) {
		const char *col = iac_json_str(pv, "colour") ?: iac_json_str(pv, "color") ?: "blue";
		const char *name = iac_json_str(pv, "name");
		if (!l1_word(col) || !l1_word(name))
			continue;   /* haproxy_cfg refuses it with a better message */
		iac_buf_printf(&b, "\tacl iac_l1_%s srv_is_up(%s/%s)\n", col, be, name);
		size_t k = 0;
		while (k < nc && strcmp(colours[k], col))
			k++;
		if (k == nc && nc < 8)
			colours[nc++] = col;
	}
	for (size_t k = 0; k < nc; k++) {
		iac_buf_clear(&acl);
		for (size_t j = 0; j < nc; j++)
			if (j != k)
				iac_buf_printf(&acl, " !iac_l1_%s", colours[j]);
		iac_buf_printf(&b, "\thttp-request set-var(txn.iac_l1) str(%s) if METH_GET iac_l1_%s%s%s\n", colours[k],
			       colours[k], iac_buf_cstr(&acl), json_array_size(prefixes) ? " iac_l1_path" : "");
	}
	iac_buf_puts(&b, "\tacl iac_l1 var(txn.iac_l1) -m found\n"
		     "\thttp-request set-var(txn.iac_host) req.hdr(host) if iac_l1\n"
		     "\thttp-request set-header Host %[var(txn.iac_l1)].l1.%[var(txn.iac_host)] if iac_l1\n"
		     "\thttp-request cache-use iac_l1 if iac_l1\n"
		     "\thttp-request set-header Host %[var(txn.iac_host)] if iac_l1\n"
		     "");
	/* HAProxy stores only responses with an expiry or a validator; s-maxage
	 * speaks to shared caches only, browsers keep ignoring it */
	if (json_is_true(json_object_get(c, "assume_fresh")))
		iac_buf_printf(&b, "\thttp-response set-header Cache-Control s-maxage=%ld if iac_l1 "
			       "!{ res.hdr(cache-control) -m found } !{ res.hdr(expires) -m found }\n",
			       (long)(age_ms / 1000));
	iac_buf_puts(&b, "\thttp-response cache-store iac_l1 if iac_l1\n");
	iac_buf_printf(&b, "\ncache iac_l1\n\ttotal-max-size %ld\n\tmax-object-size %ld\n\tmax-age %ld\n", size_mb,
		       obj_kb * 1024, (long)(age_ms / 1000));
	iac_buf_free(&acl);
	free(*text);
	*text = iac_buf_detach(&b);
	return 0;
}

static int render(char **out, const paths *p, const iac_rctx *ctx, const json_t *a)
{
	json_t *desc = describe(res_name(ctx), p->api_bind, p->state_file, a);
	int rc = iac_haproxy_cfg_render(out, desc);
	json_decref(desc);
	if (rc == 0 && with_l1(out, a) < 0) {
		free(*out);
		*out = NULL;
		iac_err_prefix("haproxy '%s'", res_name(ctx));
		return IAC_ERR;
	}
	return rc;
}

int iac_deploy_haproxy_server_opts(char **out, const json_t *attrs)
{
	iac_haproxy_cfg c;
	json_t *desc = describe("fe", "/dev/null", "/dev/null", attrs);
	int rc = iac_haproxy_cfg_parse(&c, desc);
	if (rc == 0) {
		*out = iac_haproxy_cfg_server_opts(&c);
		iac_haproxy_cfg_free(&c);
	}
	json_decref(desc);
	return rc;
}

/* Check a config where HAProxy runs: here, or on the host. */
static int check(const iac_rctx *ctx, const paths *p, const char *path)
{
	if (!iac_host_is_remote(p->host))
		return iac_haproxy_check(NULL, path);
	char *cmd = iac_xasprintf("haproxy -c -q -f '%s'", path);
	int rc = iac_host_run(NULL, ctx->hosts, p->host, cmd, 20e3, ctx->cancel);
	free(cmd);
	if (rc < 0)
		iac_err_prefix("haproxy config on %s is invalid", iac_host_label(p->host));
	return rc;
}

/* The running master's pid, or 0. */
static long master_pid(const iac_rctx *ctx, const paths *p)
{
	char *cmd = iac_xasprintf("p=$(cat '%s' 2>/dev/null) && kill -0 \"$p\" 2>/dev/null && echo \"$p\"",
				  p->pidfile), *out = NULL;
	int status = 1;
	long pid = 0;
	if (iac_host_status(&status, ctx->hosts, p->host, cmd, 10e3, ctx->cancel) == 0 && status == 0) {
		iac_host_run(&out, ctx->hosts, p->host, cmd, 10e3, ctx->cancel);
		pid = out ? strtol(out, NULL, 10) : 0;
	}
	free(out);
	free(cmd);
	iac_err_clear();
	return pid;
}

static int wait_api(const paths *p, double timeout_ms)
{
	iac_haproxy *h = NULL;
	double end = iac_now_ms() + timeout_ms;
	int rc = IAC_ERR;
	if (iac_haproxy_open(&h, p->api, 1000) < 0)
		return IAC_ERR;
	while (iac_now_ms() < end) {
		char *out = NULL;
		if (iac_haproxy_cmd(&out, h, "show info") == 0) {
			free(out);
			rc = 0;
			break;
		}
		usleep(50 * 1000);
	}
	if (rc < 0)
		iac_err_prefix("HAProxy started but its runtime API at '%s' does not answer", p->api);
	iac_haproxy_free(h);
	return rc;
}

static int start(const iac_rctx *ctx, const paths *p)
{
	if (!iac_host_is_remote(p->host)) {
		pid_t pid;
		iac_haproxy_run run = { NULL, p->cfg, p->master, p->pidfile, 10e3 };
		if (iac_haproxy_start(&pid, &run) < 0)
			return IAC_ERR;
	} else {
		char *cmd = iac_xasprintf("haproxy -W -D -S '%s' -p '%s' -f '%s'", p->master, p->pidfile, p->cfg);
		int rc = iac_host_run(NULL, ctx->hosts, p->host, cmd, 20e3, ctx->cancel);
		free(cmd);
		if (rc < 0)
			return IAC_ERR;
	}
	return wait_api(p, 10e3);
}

static json_t *result(const json_t *planned, const paths *p, const char *sha)
{
	json_t *out = json_copy((json_t *)planned);
	json_object_set_new(out, "api", json_string(p->api));
	json_object_set_new(out, "master", json_string(p->master));
	json_object_set_new(out, "state_file", json_string(p->state_file));
	json_object_set_new(out, "config_sha256", json_string(sha));
	return out;
}

static int hap_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	paths p;
	char *text = NULL, hex[65];
	if (iac_value_has_unknown(planned))
		return 0;
	make_paths(&p, ctx, planned);
	int rc = render(&text, &p, ctx, planned);
	if (rc == 0) {
		iac_sha256_hex(hex, text, strlen(text));
		json_object_set_new(planned, "config_sha256", json_string(hex));
		json_object_set_new(planned, "api", json_string(p.api));
		json_object_set_new(planned, "master", json_string(p.master));
		json_object_set_new(planned, "state_file", json_string(p.state_file));
	}
	free(text);
	paths_free(&p);
	return rc;
}

static int write_cfg(const iac_rctx *ctx, const paths *p, const char *text, const char *path)
{
	return iac_host_write(ctx->hosts, p->host, path, text, strlen(text), "0644", ctx->cancel);
}

static int hap_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	paths p;
	char *text = NULL, hex[65];
	int rc = IAC_ERR;

	make_paths(&p, ctx, planned);
	if (render(&text, &p, ctx, planned) < 0)
		goto done;
	if (write_cfg(ctx, &p, text, p.cfg) < 0 || check(ctx, &p, p.cfg) < 0)
		goto done;
	if (master_pid(ctx, &p) > 0) {
		/* left running by an interrupted run: adopt it with a reload */
		iac_haproxy *api = NULL, *master = NULL;
		iac_haproxy_reload_opts ro = { 0 };
		iac_haproxy_reload_result rr;
		iac_haproxy_open(&api, p.api, 2000);
		iac_haproxy_open(&master, p.master, 5000);
		ro.api = api;
		ro.master = master;
		ro.timeout_ms = 10e3;
		rc = iac_haproxy_reload(&rr, &ro);
		iac_haproxy_free(api);
		iac_haproxy_free(master);
		if (rc < 0)
			goto done;
	} else if (start(ctx, &p) < 0) {
		goto done;
	}
	iac_sha256_hex(hex, text, strlen(text));
	*out = result(planned, &p, hex);
	rc = 0;
done:
	if (rc < 0)
		iac_err_prefix("haproxy on %s", iac_host_label(p.host));
	free(text);
	paths_free(&p);
	return rc;
}

/* ---- weights changed by hand --------------------------------------------
 * iac never changes a weight at runtime (weights live in the config, the
 * same on every HAProxy of an lb), so a server whose runtime weight
 * (srv_uweight) differs from its configured one (srv_iweight) was changed
 * by hand on this HAProxy: read reports it as that server's weight, the
 * plan shows it, and update sets it back. */

typedef struct {
	char name[64];
	long uweight, iweight;
} weight_row;

/* Rows of `show servers state` (format 1: be_id be_name srv_id srv_name
 * srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight ...). */
static size_t weights_parse(weight_row *out, size_t max, const char *text)
{
	size_t n = 0;
	for (const char *l = text; l && *l && n < max; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		char name[64];
		long uw, iw;
		if (*l == '#' || sscanf(l, "%*s %*s %*s %63s %*s %*s %*s %ld %ld", name, &uw, &iw) != 3)
			continue;
		snprintf(out[n].name, sizeof(out[n].name), "%s", name);
		out[n].uweight = uw;
		out[n++].iweight = iw;
	}
	return n;
}

/* The weights of backend `be` on the HAProxy at api; 0 rows when it cannot
 * be asked (the plan then shows no weight change: nothing is lost). */
static size_t weights_read(weight_row *out, size_t max, const char *api, const char *be)
{
	iac_haproxy *h = NULL;
	char *text = NULL;
	size_t n = 0;
	if (iac_haproxy_open(&h, api, 2000) == 0 && iac_haproxy_servers_state(&text, h, be) == 0)
		n = weights_parse(out, max, text);
	iac_err_clear();
	free(text);
	iac_haproxy_free(h);
	return n;
}

#define MAX_WEIGHT_ROWS 256

/* In out (a copy of prior), each configured server whose weight was
 * changed by hand gets its runtime weight. */
static void weights_observed(json_t *out, const char *api)
{
	weight_row rows[MAX_WEIGHT_ROWS];
	size_t n = weights_read(rows, MAX_WEIGHT_ROWS, api, iac_json_str(out, "backend") ?: "app");
	json_t *servers = json_object_get(out, "servers"), *srv;
	size_t i;
	for (size_t r = 0; r < n; r++) {
		if (rows[r].uweight == rows[r].iweight)
			continue;
		json_array_foreach(servers, i, srv)
			if (!strcmp(iac_json_str(srv, "name") ?: "", rows[r].name))
				json_object_set_new(srv, "weight", json_integer(rows[r].uweight));
	}
}

/* Set every weight changed by hand back to the configured one; then the
 * server-state-file, so a later reload does not bring them back. */
static int weights_reset(const iac_rctx *ctx, const paths *p, const json_t *a)
{
	weight_row rows[MAX_WEIGHT_ROWS];
	const char *be = iac_json_str(a, "backend") ?: "app";
	size_t n = weights_read(rows, MAX_WEIGHT_ROWS, p->api, be), reset = 0;
	iac_haproxy *h = NULL;
	int rc = 0;
	for (size_t r = 0; r < n && rc == 0; r++) {
		if (rows[r].uweight == rows[r].iweight)
			continue;
		char w[24];
		snprintf(w, sizeof(w), "%ld", rows[r].iweight);
		if (!h)
			rc = iac_haproxy_open(&h, p->api, 2000);
		if (rc == 0)
			rc = iac_haproxy_set_weight(h, be, rows[r].name, w);
		reset++;
	}
	iac_haproxy_free(h);
	if (rc == 0 && reset) {
		json_t *lb = json_pack("{s:s,s:s,s:O?}", "api", p->api, "state_file", p->state_file, "host", p->host);
		rc = iac_deploy_persist_switch(ctx, lb);
		json_decref(lb);
	}
	return rc;
}

/* ---- servers added at runtime --------------------------------------------
 *
 * The autoscaler adds its spares with `add server` (no reload). A reload
 * starts a worker from the config alone, and the server-state-file only
 * restores servers the config names, so an apply that changed the config
 * would drop every serving spare until the next autoscale step (a period of
 * lost capacity under the very load that made them). hap_update reads the
 * runtime servers the running config does not name before the reload and
 * adds them back to the new worker right after it, with the new config's
 * server options and the admin state they had (a draining spare stays
 * draining, one in maintenance stays there). */

typedef struct {
	char name[64], addr[64];
	long port, admin;   /* srv_admin_state bits: 0x01 forced maint, 0x10 forced drain */
} dyn_row;

#define MAX_DYN 64

static int named_in(const json_t *a, const char *name)
{
	size_t i;
	const json_t *srv;
	json_array_foreach(json_object_get(a, "servers"), i, srv)
		if (!strcmp(iac_json_str(srv, "name") ?: "", name))
			return 1;
	return 0;
}

/* Rows of `show servers state` (format 1: srv_name is field 4, srv_addr 5,
 * srv_admin_state 7, srv_port 19) whose server neither prior (the running
 * config) nor planned (the next one) names. */
static size_t dyn_parse(dyn_row *out, size_t max, const char *text, const json_t *prior, const json_t *planned)
{
	size_t n = 0;
	for (const char *l = text; l && *l && n < max; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		dyn_row r = { 0 };
		if (*l == '#' || sscanf(l, "%*s %*s %*s %63s %63s %*s %ld %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %ld",
					r.name, r.addr, &r.admin, &r.port) != 4)
			continue;
		if (!named_in(prior, r.name) && !named_in(planned, r.name) && r.port > 0)
			out[n++] = r;
	}
	return n;
}

static size_t dyn_read(dyn_row *out, size_t max, const paths *p, const json_t *prior, const json_t *planned)
{
	iac_haproxy *h = NULL;
	char *text = NULL;
	size_t n = 0;
	if (iac_haproxy_open(&h, p->api, 2000) == 0 &&
	    iac_haproxy_servers_state(&text, h, iac_json_str(prior, "backend") ?: "app") == 0)
		n = dyn_parse(out, max, text, prior, planned);
	iac_err_clear();
	free(text);
	iac_haproxy_free(h);
	return n;
}

/* Add rows back to the new worker. A failure is an error: the apply
 * must not report success while capacity silently went away. */
static int dyn_restore(const paths *p, const json_t *planned, const dyn_row *rows, size_t n)
{
	const char *be = iac_json_str(planned, "backend") ?: "app";
	iac_haproxy *h = NULL;
	char *opts = NULL;
	int rc = 0;
	if (n == 0)
		return 0;
	if (iac_deploy_haproxy_server_opts(&opts, planned) < 0)
		return IAC_ERR;
	rc = iac_haproxy_open(&h, p->api, 2000);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *one[1] = { rows[i].name };
		rc = iac_haproxy_add_server(NULL, h, be, rows[i].name, rows[i].addr, rows[i].port, opts);
		if (rc == 0 && (rows[i].admin & 0x01))
			rc = iac_haproxy_set_state(h, be, one, 1, IAC_HAPROXY_MAINT);
		else if (rc == 0 && (rows[i].admin & 0x10))
			rc = iac_haproxy_set_state(h, be, one, 1, IAC_HAPROXY_DRAIN);
	}
	if (rc < 0)
		iac_err_prefix("putting back the servers added at runtime after the reload");
	iac_haproxy_free(h);
	free(opts);
	return rc;
}

static int hap_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	paths p;
	char *text = NULL, *next = NULL, hex[65];
	iac_haproxy *api = NULL, *master = NULL;
	dyn_row dyn[MAX_DYN];
	size_t n_dyn = 0;
	int rc = IAC_ERR;

	make_paths(&p, ctx, planned);
	if (render(&text, &p, ctx, planned) < 0)
		goto done;
	/* never let HAProxy see a config that did not pass `haproxy -c` */
	next = iac_xasprintf("%s.next", p.cfg);
	if (write_cfg(ctx, &p, text, next) < 0 || check(ctx, &p, next) < 0)
		goto done;
	if (write_cfg(ctx, &p, text, p.cfg) < 0)
		goto done;
	if (master_pid(ctx, &p) <= 0) {
		if (start(ctx, &p) < 0)
			goto done;
	} else {
		iac_haproxy_reload_opts ro = { 0 };
		iac_haproxy_reload_result rr;
		if (iac_haproxy_open(&api, p.api, 2000) < 0 || iac_haproxy_open(&master, p.master, 5000) < 0)
			goto done;
		n_dyn = dyn_read(dyn, MAX_DYN, &p, prior, planned);
		json_t *lb = json_pack("{s:s,s:s,s:O?}", "api", p.api, "state_file", p.state_file, "host", p.host);
		int prc = iac_deploy_persist_switch(ctx, lb);
		json_decref(lb);
		if (prc < 0)
			goto done;
		ro.api = api;
		ro.master = master;
		ro.timeout_ms = 15e3;
		if (iac_haproxy_reload(&rr, &ro) < 0 || dyn_restore(&p, planned, dyn, n_dyn) < 0)
			goto done;
	}
	if (weights_reset(ctx, &p, planned) < 0)
		goto done;
	iac_sha256_hex(hex, text, strlen(text));
	*out = result(planned, &p, hex);
	rc = 0;
done:
	if (rc < 0)
		iac_err_prefix("haproxy on %s", iac_host_label(p.host));
	iac_haproxy_free(api);
	iac_haproxy_free(master);
	free(text);
	free(next);
	paths_free(&p);
	return rc;
}

static int hap_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	paths p;
	make_paths(&p, ctx, prior);
	*out = master_pid(ctx, &p) > 0 ? json_deep_copy(prior) : NULL;
	if (*out)
		weights_observed(*out, p.api);
	paths_free(&p);
	return 0;
}

static int hap_remove(const iac_rctx *ctx, const json_t *prior)
{
	paths p;
	int rc = 0;
	make_paths(&p, ctx, prior);
	long pid = master_pid(ctx, &p);
	if (pid > 0) {
		if (!iac_host_is_remote(p.host)) {
			rc = iac_haproxy_stop((pid_t)pid, 5000);
		} else {
			char *cmd = iac_xasprintf("kill -USR1 %ld; for i in $(seq 50); do kill -0 %ld 2>/dev/null || exit 0; "
						  "sleep 0.1; done; kill -TERM %ld; sleep 1; kill -KILL %ld 2>/dev/null; true",
						  pid, pid, pid, pid);
			rc = iac_host_run(NULL, ctx->hosts, p.host, cmd, 30e3, ctx->cancel);
			free(cmd);
		}
	}
	if (rc == 0) {
		char *cmd = iac_xasprintf("rm -f '%s' '%s.next' '%s' '%s'", p.cfg, p.cfg, p.pidfile, p.state_file);
		rc = iac_host_run(NULL, ctx->hosts, p.host, cmd, 10e3, ctx->cancel);
		free(cmd);
	}
	paths_free(&p);
	return rc;
}

const iac_rtype iac_deploy_haproxy_type = {
	.name = "deploy.haproxy",
	.attrs = hap_attrs,
	.doc = "HAProxy in master-worker mode, fronting a blue/green pool",
	.plan = hap_plan,
	.read = hap_read,
	.create = hap_create,
	.update = hap_update,
	.remove = hap_remove,
};
