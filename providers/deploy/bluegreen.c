/* deploy.blue_green: a version goes live on the idle colour, gated.
 *
 * A deploy of version V (create or update):
 *   1. idle colour = the one not live; if it already runs V (a standby),
 *      it is reused, else it is (re)started at V: files written from the
 *      pool's templates, start command run, pid checked;
 *   2. health gate: every idle instance answers `health.path` with
 *      `health.expect`, `healthy` times in a row, within `timeout`;
 *   3. analysis: requests straight at the idle colour for `duration`,
 *      error rate <= max_error_rate and p99 <= max_p99; then an optional
 *      PromQL query <= max;
 *   4. cutover in HAProxy (idle ready, live drain, live maint when its
 *      sessions reach zero), saved to the server-state-file;
 *   5. the old colour keeps running as standby for `iac rollback`.
 * A failed gate aborts before the switch: traffic never left the live
 * colour; the idle colour is stopped (on_failure = "stop", default) or
 * left running for inspection ("keep"); the error names the gate and its
 * figures. A version rolled back from is "bad": deploying it again needs
 * -allow-bad.
 */
#include "providers/deploy/deploy.h"
#include "providers/deploy/autoscale.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/deploy/cutover.h"
#include "iac/deploy/haproxy_api.h"
#include "iac/deploy/probe.h"
#include "iac/provider/runtime.h"

static const iac_attr bg_attrs[] = {
	{ "version", IAC_T_STRING, IAC_A_REQUIRED, "the version to run" },
	{ "strategy", IAC_T_STRING, 0, "\"blue_green\" (the only one so far)" },
	{ "pool", IAC_T_MAP, IAC_A_REQUIRED, "instances of both colours and how to run them (modules/app_pool.lua)" },
	{ "lb", IAC_T_MAP, IAC_A_REQUIRED, "the HAProxy in front: {api, backend, state_file, host, peers} (modules/haproxy.lua)" },
	{ "health", IAC_T_MAP, 0, "{path, expect, interval, healthy, timeout}" },
	{ "analysis", IAC_T_MAP, 0, "{duration, max_error_rate, max_p99, path, concurrency, prometheus = {url, query, max}, "
				   "loadtest = \"smoke.lua\", rate}" },
	{ "scale_down_delay", IAC_T_STRING, 0, "how long the old colour stays up as standby (recorded)" },
	{ "flags_on_rollback", IAC_T_MAP, 0, "flag -> variant to set when rolling back" },
	{ "on_failure", IAC_T_STRING, 0, "\"stop\" (default) or \"keep\" the idle colour when a gate fails" },
	{ "drain_timeout", IAC_T_STRING, 0, "how long the old colour's requests in flight may take at a switch (default 30s)" },
	{ "live", IAC_T_STRING, IAC_A_COMPUTED, "colour taking traffic" },
	{ "live_version", IAC_T_STRING, IAC_A_COMPUTED, "version of the live colour" },
	{ "standby", IAC_T_STRING, IAC_A_COMPUTED, "colour kept running for rollback (or null)" },
	{ "standby_version", IAC_T_STRING, IAC_A_COMPUTED, "version of the standby colour" },
	{ "bad_versions", IAC_T_LIST, IAC_A_COMPUTED, "versions rolled back from" },
	{ "last", IAC_T_MAP, IAC_A_COMPUTED, "figures of the last deploy: gates and cutover" },
	{ "steps", IAC_T_LIST, IAC_A_COMPUTED, "what the next deploy will do (shown by plan)" },
	{ "standby_until", IAC_T_NUMBER, IAC_A_COMPUTED, "when the standby may be stopped (Unix time)" },
	{ "standby_down", IAC_T_BOOL, IAC_A_COMPUTED, "refresh found no standby instance running" },
	{ NULL, 0, 0, NULL },
};

static const char *sget(const json_t *o, const char *k)
{
	return iac_json_str(o, k);
}

/* 1 when the standby's scale_down_delay has passed. */
static int standby_expired(const json_t *prior)
{
	json_t *until = json_object_get(prior, "standby_until");
	return sget(prior, "standby") && json_is_number(until) && (double)time(NULL) >= json_number_value(until);
}

/* Unix time when a standby kept from now may go, or 0 (kept until the
 * next deploy) when no delay is set. */
static double standby_deadline(const json_t *attrs)
{
	const char *d = iac_json_str(attrs, "scale_down_delay");
	double ms;
	if (!d || iac_duration_parse(&ms, d) < 0)
		return 0;
	return (double)time(NULL) + ms / 1e3;
}

static const char *other(const char *colour)
{
	return colour && !strcmp(colour, "blue") ? "green" : "blue";
}

static double dur(const json_t *o, const char *k, double dflt)
{
	const char *t = sget(o, k);
	double ms;
	if (json_is_number(json_object_get(o, k)))
		return json_number_value(json_object_get(o, k)) * 1e3;
	if (!t || iac_duration_parse(&ms, t) < 0)
		return dflt;
	return ms;
}

static double num(const json_t *o, const char *k, double dflt)
{
	json_t *v = json_object_get(o, k);
	return json_is_number(v) ? json_number_value(v) : dflt;
}

/* Instances of one colour (borrowed from pool). */
static size_t colour_instances(const json_t *pool, const char *colour, const json_t **out, size_t max)
{
	json_t *e;
	size_t i, n = 0;
	json_array_foreach(json_object_get(pool, "instances"), i, e)
		if (n < max && sget(e, "colour") && !strcmp(sget(e, "colour"), colour))
			out[n++] = e;
	return n;
}

static json_t *inst_vars(const json_t *pool, const json_t *inst, const char *version)
{
	json_t *v = json_object();
	if (json_is_object(json_object_get(pool, "vars")))
		json_object_update(v, json_object_get(pool, "vars"));
	json_object_set_new(v, "version", json_string(version));
	json_object_set(v, "port", json_object_get(inst, "port"));
	json_object_set(v, "colour", json_object_get(inst, "colour"));
	json_object_set(v, "name", json_object_get(inst, "name"));
	json_object_set(v, "address", json_object_get(inst, "address"));
	return v;
}

static char *inst_url(const json_t *inst, const char *path)
{
	return iac_xasprintf("http://%s:%lld%s", sget(inst, "address"),
			     (long long)json_integer_value(json_object_get(inst, "port")), path ? path : "");
}

static int inst_alive(const iac_rctx *ctx, const json_t *pool, const json_t *inst, const char *version)
{
	const char *pf = sget(pool, "pidfile");
	int status = 1;
	if (!pf)
		return 1;
	json_t *vars = inst_vars(pool, inst, version ? version : "");
	char *path = iac_deploy_expand(pf, vars);
	char *cmd = iac_xasprintf("kill -0 $(cat '%s' 2>/dev/null) 2>/dev/null", path);
	if (iac_host_status(&status, ctx->hosts, json_object_get(inst, "host"), cmd, 10e3, ctx->cancel) < 0)
		status = 1;
	free(cmd);
	free(path);
	json_decref(vars);
	return status == 0;
}

static int stop_inst(const iac_rctx *ctx, const json_t *pool, const json_t *inst, const char *version)
{
	json_t *vars = inst_vars(pool, inst, version ? version : "");
	const char *stop = sget(pool, "stop"), *pf = sget(pool, "pidfile");
	char *cmd = NULL;
	int rc = 0;
	if (stop) {
		char *s = iac_deploy_expand(stop, vars);
		cmd = iac_xasprintf("%s; true", s);
		free(s);
	} else if (pf) {
		char *path = iac_deploy_expand(pf, vars);
		cmd = iac_xasprintf("p=$(cat '%s' 2>/dev/null) || exit 0; kill -TERM \"$p\" 2>/dev/null || exit 0; "
				    "for i in $(seq 50); do kill -0 \"$p\" 2>/dev/null || exit 0; sleep 0.1; done; "
				    "kill -KILL \"$p\" 2>/dev/null; true", path);
		free(path);
	}
	if (cmd)
		rc = iac_host_run(NULL, ctx->hosts, json_object_get(inst, "host"), cmd, 30e3, ctx->cancel);
	free(cmd);
	json_decref(vars);
	return rc;
}

static int start_inst(const iac_rctx *ctx, const json_t *pool, const json_t *inst, const char *version)
{
	json_t *vars = inst_vars(pool, inst, version), *host = json_object_get(inst, "host"), *v;
	const char *k;
	int rc = IAC_ERR;

	json_object_foreach(json_object_get(pool, "files"), k, v) {
		char *path = iac_deploy_expand(k, vars);
		char *text = iac_deploy_expand(json_string_value(v) ?: "", vars);
		int w = iac_host_write(ctx->hosts, host, path, text, strlen(text), "0644", ctx->cancel);
		free(path);
		free(text);
		if (w < 0)
			goto done;
	}
	char *start = iac_deploy_expand(sget(pool, "start") ?: "true", vars);
	rc = iac_host_run(NULL, ctx->hosts, host, start, 30e3, ctx->cancel);
	free(start);
	if (rc == 0 && sget(pool, "pidfile")) {
		/* a daemon writes its pidfile a moment after the command returns */
		double end = iac_now_ms() + dur(pool, "start_timeout", 10e3);
		while (!inst_alive(ctx, pool, inst, version) && iac_now_ms() < end)
			usleep(50 * 1000);
		if (!inst_alive(ctx, pool, inst, version))
			rc = iac_err_set("instance '%s' on %s did not stay up after its start command (no live pid in "
					 "its pidfile)", sget(inst, "name"), iac_host_label(host));
	}
done:
	if (rc < 0)
		iac_err_prefix("cannot start '%s' at %s", sget(inst, "name"), version);
	json_decref(vars);
	return rc;
}

static int for_colour(const iac_rctx *ctx, const json_t *pool, const char *colour, const char *version,
		      int (*fn)(const iac_rctx *, const json_t *, const json_t *, const char *))
{
	const json_t *inst[64];
	size_t n = colour_instances(pool, colour, inst, 64);
	for (size_t i = 0; i < n; i++)
		if (fn(ctx, pool, inst[i], version) < 0)
			return IAC_ERR;
	return 0;
}

static int gate_health(const iac_rctx *ctx, json_t *last, const json_t *a, const char *colour)
{
	const json_t *inst[64];
	size_t n = colour_instances(json_object_get(a, "pool"), colour, inst, 64);
	return iac_deploy_health_gate(ctx, last, json_object_get(a, "health"), inst, n);
}

int iac_deploy_health_gate(const iac_rctx *ctx, json_t *last, const json_t *h, const json_t *const *inst, size_t n)
{
	const char *urls[64];
	iac_probe_health_opts o = { 0 };
	iac_probe_health_result r;

	if (n > 64)
		n = 64;
	for (size_t i = 0; i < n; i++)
		urls[i] = inst_url(inst[i], "");
	o.urls = urls;
	o.n_urls = n;
	o.path = sget(h, "path") ? sget(h, "path") : "/health";
	o.expect = (long)num(h, "expect", 200);
	o.interval_ms = dur(h, "interval", 500);
	o.healthy = (int)num(h, "healthy", 3);
	o.timeout_ms = dur(h, "timeout", 30e3);
	o.cancel = ctx->cancel;
	int rc = iac_probe_health(&r, &o);
	json_object_set_new(last, "health", iac_probe_health_json(&r));
	iac_probe_health_free(&r);
	for (size_t i = 0; i < n; i++)
		free((char *)urls[i]);
	return rc;
}

int iac_deploy_inst_start(const iac_rctx *ctx, const json_t *pool, const json_t *inst, const char *version)
{
	return start_inst(ctx, pool, inst, version);
}

int iac_deploy_inst_stop(const iac_rctx *ctx, const json_t *pool, const json_t *inst, const char *version)
{
	return stop_inst(ctx, pool, inst, version);
}

static int gate_analysis(const iac_rctx *ctx, json_t *last, const json_t *a, const char *colour)
{
	const json_t *pool = json_object_get(a, "pool"), *an = json_object_get(a, "analysis");
	const json_t *inst[64];
	size_t n;
	const char *urls[64];
	int rc = 0;

	if (!json_is_object(an))
		return 0;
	n = colour_instances(pool, colour, inst, 64);
	for (size_t i = 0; i < n; i++)
		urls[i] = inst_url(inst[i], sget(an, "path") ? sget(an, "path") : "/");
	iac_probe_analysis_opts o = { 0 };
	iac_probe_analysis_result r;
	o.urls = urls;
	o.n_urls = n;
	o.duration_ms = dur(an, "duration", 10e3);
	o.concurrency = (int)num(an, "concurrency", 4);
	o.max_error_rate = json_object_get(an, "max_error_rate") ? num(an, "max_error_rate", -1) : -1;
	o.max_p99_ms = dur(an, "max_p99", 0);
	o.cancel = ctx->cancel;
	if (sget(an, "loadtest")) {
		/* the operator's scenario replaces the built-in probe traffic */
		const char *names[64];
		for (size_t i = 0; i < n; i++) {
			free((char *)urls[i]);
			urls[i] = inst_url(inst[i], "");
			names[i] = sget(inst[i], "name");
		}
		rc = iac_deploy_gate_loadtest(ctx, last, an, urls, names, n);
	} else if (o.duration_ms > 0) {
		rc = iac_probe_analysis(&r, &o);
		json_object_set_new(last, "analysis", iac_probe_analysis_json(&r));
	}
	for (size_t i = 0; i < n; i++)
		free((char *)urls[i]);
	if (rc < 0)
		return rc;
	const json_t *pm = json_object_get(an, "prometheus");
	if (json_is_object(pm)) {
		iac_probe_prom_opts po = { 0 };
		iac_probe_prom_result pr;
		po.url = sget(pm, "url");
		po.query = sget(pm, "query");
		po.max = json_is_number(json_object_get(pm, "max")) ? num(pm, "max", 0) : NAN;
		po.min = json_is_number(json_object_get(pm, "min")) ? num(pm, "min", 0) : NAN;
		rc = iac_probe_prometheus(&pr, &po);
		json_object_set_new(last, "prometheus", iac_probe_prom_json(&pr));
	}
	return rc;
}

/* The plan's line for the analysis step. New ref. */
static json_t *analysis_step(const json_t *an, const char *idle)
{
	const char *prom = json_object_get(an, "prometheus") ? " (+ Prometheus)" : "";
	if (!sget(an, "loadtest"))
		return json_sprintf("analysis on %s%s", idle, prom);
	if (json_is_number(json_object_get(an, "rate")))
		return json_sprintf("load test %s on %s at %g/s for %s%s", sget(an, "loadtest"), idle,
				    json_number_value(json_object_get(an, "rate")), sget(an, "duration") ?: "10s", prom);
	return json_sprintf("load test %s on %s for %s%s", sget(an, "loadtest"), idle, sget(an, "duration") ?: "10s",
			    prom);
}

static size_t server_names(const json_t *pool, const char *colour, const char **names, size_t max)
{
	const json_t *inst[64];
	size_t n = colour_instances(pool, colour, inst, max < 64 ? max : 64);
	for (size_t i = 0; i < n; i++)
		names[i] = sget(inst[i], "name");
	return n;
}

/* Set (weight "0") or clear (weight "100%": the config's) the "replaced"
 * mark on a colour's servers (deploy.h). State cannot carry it: a failed or
 * interrupted update keeps the prior attributes, standby included, so a
 * failed version kept for inspection, or one an apply preempted by
 * `iac rollback -force` was starting, would look like the standby to a
 * rollback. HAProxy holds the mark (the rollback asks it anyway), saved to
 * the server-state-file so a restart keeps it. */
static int mark_replaced(const iac_rctx *ctx, const json_t *a, const char *colour, int on)
{
	const json_t *pool = json_object_get(a, "pool"), *lb = json_object_get(a, "lb"), *lbs[16];
	const char *names[64], *be = sget(lb, "backend") ? sget(lb, "backend") : "app";
	size_t n = server_names(pool, colour, names, 64), nl = iac_deploy_lbs(lbs, 16, lb);
	int rc = 0;
	for (size_t l = 0; rc == 0 && l < nl; l++) {
		iac_haproxy *h = NULL;
		rc = iac_haproxy_open(&h, sget(lbs[l], "api"), 2000);
		for (size_t i = 0; rc == 0 && i < n; i++)
			rc = iac_haproxy_set_weight(h, be, names[i], on ? "0" : "100%");
		iac_haproxy_free(h);
		if (rc == 0 && on)
			rc = iac_deploy_persist_switch(ctx, lbs[l]);
		if (rc < 0 && nl > 1)
			iac_err_prefix("HAProxy %zu of %zu ('%s')", l + 1, nl, sget(lbs[l], "api") ?: "?");
	}
	if (rc < 0)
		iac_err_prefix("cannot %s the servers of %s in HAProxy", on ? "mark" : "unmark", colour);
	return rc;
}

/* 1 when the colour carries the "replaced" mark (0 when HAProxy cannot say). */
static int is_replaced(const json_t *a, const char *colour)
{
	const json_t *pool = json_object_get(a, "pool"), *lb = json_object_get(a, "lb");
	const char *names[64];
	size_t n = server_names(pool, colour, names, 64);
	iac_haproxy *h = NULL;
	int marked = 0;
	if (iac_haproxy_open(&h, sget(lb, "api"), 2000) == 0 &&
	    iac_deploy_replaced(&marked, h, sget(lb, "backend") ? sget(lb, "backend") : "app", names, n) < 0)
		marked = 0;
	iac_haproxy_free(h);
	iac_err_clear();
	return marked;
}

/* The switch on every HAProxy of the lb, one after the other: the one that
 * holds the virtual IP drains its connections, the others have none to
 * drain. The first one's figures are the cutover's; a failure names which
 * HAProxy it was (those before it are switched already: applying again
 * finishes the rest). */
static int do_switch(const iac_rctx *ctx, json_t *last, const json_t *a, const char *to, const char *from)
{
	const json_t *pool = json_object_get(a, "pool"), *lb = json_object_get(a, "lb"), *lbs[16];
	const char *to_names[64], *from_names[64];
	iac_cutover_opts o = { 0 };
	size_t nl = iac_deploy_lbs(lbs, 16, lb);
	int rc = 0;

	o.backend = sget(lb, "backend") ? sget(lb, "backend") : "app";
	o.to = to_names;
	o.n_to = server_names(pool, to, to_names, 64);
	o.from = from_names;
	o.n_from = from ? server_names(pool, from, from_names, 64) : 0;
	o.drain_timeout_ms = dur(a, "drain_timeout", 30e3);
	o.wait_check = 1;
	for (size_t l = 0; rc == 0 && l < nl; l++) {
		iac_cutover_result r;
		iac_haproxy *h = NULL;
		rc = iac_haproxy_open(&h, sget(lbs[l], "api"), 2000);
		if (rc == 0) {
			rc = iac_cutover_switch(&r, h, &o);
			if (l == 0)
				json_object_set_new(last, "cutover", iac_cutover_result_json(&r));
			iac_haproxy_free(h);
		}
		if (rc == 0)
			rc = iac_deploy_persist_switch(ctx, lbs[l]);
		if (rc < 0 && nl > 1)
			iac_err_prefix("cannot switch HAProxy %zu of %zu ('%s')%s", l + 1, nl, sget(lbs[l], "api") ?: "?",
				       l ? "; the ones before it are switched" : "");
	}
	if (nl > 1)
		json_object_set_new(last, "lbs_switched", json_integer((json_int_t)nl));
	return rc;
}

size_t iac_deploy_lbs(const json_t **out, size_t max, const json_t *lb)
{
	size_t n = 0, i;
	const json_t *p;
	if (!lb || !max)
		return 0;
	out[n++] = lb;
	json_array_foreach(json_object_get(lb, "peers"), i, p)
		if (n < max && json_is_object(p))
			out[n++] = p;
	return n;
}

int iac_deploy_persist_switch(const iac_rctx *ctx, const json_t *lb)
{
	iac_haproxy *h = NULL;
	char *text = NULL;
	const char *sf = sget(lb, "state_file");
	int rc = IAC_ERR;

	if (!sf)
		return 0;
	if (iac_haproxy_open(&h, sget(lb, "api"), 2000) < 0)
		return IAC_ERR;
	if (!iac_host_is_remote(json_object_get(lb, "host"))) {
		rc = iac_haproxy_save_state(h, sf);
	} else if (iac_haproxy_servers_state(&text, h, NULL) == 0) {
		rc = iac_host_write(ctx->hosts, json_object_get(lb, "host"), sf, text, strlen(text), "0644", ctx->cancel);
	}
	if (rc < 0)
		iac_err_prefix("cannot save HAProxy's server states to '%s'", sf);
	free(text);
	iac_haproxy_free(h);
	return rc;
}

static int is_bad(const json_t *prior, const char *version)
{
	json_t *e;
	size_t i;
	json_array_foreach(json_object_get(prior, "bad_versions"), i, e)
		if (!strcmp(iac_json_str(e, "version") ?: "", version))
			return 1;
	return 0;
}

static int bg_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	iac_deploy_pdata *pd = ctx->pdata;
	const char *version = sget(planned, "version");
	const char *strategy = sget(planned, "strategy");
	const char *of = sget(planned, "on_failure");

	if (strategy && strcmp(strategy, "blue_green") != 0)
		return iac_err_set("strategy '%s' is not supported (use \"blue_green\")", strategy);
	if (of && strcmp(of, "stop") && strcmp(of, "keep"))
		return iac_err_set("on_failure must be \"stop\" or \"keep\", not '%s'", of);
	const json_t *autoscale = json_object_get(json_object_get(planned, "pool"), "autoscale");
	iac_autoscale_spec spec;
	if (autoscale && !iac_value_has_unknown(autoscale) && iac_autoscale_spec_parse(&spec, autoscale) < 0)
		return IAC_ERR;
	if (prior && json_is_true(json_object_get(prior, "standby_down")) && ctx->warn) {
		char msg[300];
		snprintf(msg, sizeof(msg), "the standby colour %s (%s) is not running: 'iac rollback' cannot switch back "
			 "to it; a new deploy starts it again", sget(prior, "standby"), sget(prior, "standby_version") ?: "?");
		ctx->warn(ctx, msg);
	}
	if (!version || iac_value_has_unknown(planned))
		return 0;
	if (prior && is_bad(prior, version) && !(pd && pd->allow_bad) &&
	    strcmp(sget(prior, "live_version") ?: "", version) != 0)
		return iac_err_set("version '%s' is marked bad (it was rolled back from); set the version to a good "
				   "one, or pass -allow-bad to deploy it again", version);
	json_t *steps = json_array();
	const char *live = prior ? sget(prior, "live") : NULL;
	const char *lv = prior ? sget(prior, "live_version") : NULL;
	if (lv && !strcmp(lv, version)) {
		if (standby_expired(prior)) {
			char why[256];
			snprintf(why, sizeof(why), "scale_down_delay (%s) has passed: stop standby %s (%s)",
				 sget(prior, "scale_down_delay") ?: "?", sget(prior, "standby"),
				 sget(prior, "standby_version") ?: "?");
			json_object_set_new(planned, "$update", json_string(why));
			json_array_append_new(steps, json_sprintf("stop standby %s (%s); rollback is no longer possible",
								  sget(prior, "standby"), sget(prior, "standby_version") ?: "?"));
		}
		json_object_set_new(planned, "steps", steps);   /* nothing to deploy */
		return 0;
	}
	const char *idle = other(live);
	if (prior && sget(prior, "standby") && !strcmp(sget(prior, "standby_version") ?: "", version))
		json_array_append_new(steps, json_sprintf("%s already runs %s (standby): reuse it", idle, version));
	else
		json_array_append_new(steps, json_sprintf("start %s at %s", idle, version));
	json_array_append_new(steps, json_sprintf("health gate on %s", idle));
	if (json_is_object(json_object_get(planned, "analysis")))
		json_array_append_new(steps, analysis_step(json_object_get(planned, "analysis"), idle));
	json_array_append_new(steps, json_sprintf("switch traffic to %s", idle));
	if (live)
		json_array_append_new(steps, json_sprintf("keep %s (%s) as standby", live, lv ? lv : "?"));
	json_object_set_new(planned, "steps", steps);
	return 0;
}

/* Stop before the next step when the run was cancelled: a second Ctrl-C,
 * or `iac rollback -force` preempting this apply. Never switch after that. */
static int cancelled(const iac_rctx *ctx, const char *before)
{
	if (!ctx->cancel || !*ctx->cancel)
		return 0;
	iac_err_set("cancelled before %s (Ctrl-C, or 'iac rollback -force' preempted this apply); traffic was "
		    "not switched", before);
	return 1;
}

/* The same version again: only settings changed. The computed attributes
 * carry over; a standby whose scale_down_delay passed is stopped now. */
static int redeploy_settings(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	static const char *const keep[] = { "live", "live_version", "standby", "standby_version",
					    "bad_versions", "last", "standby_until" };
	*out = json_deep_copy(planned);
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		json_object_set(*out, keep[i], json_object_get(prior, keep[i]) ?: json_null());
	json_object_del(*out, "steps");
	if (!standby_expired(prior))
		return 0;
	const char *sb = sget(prior, "standby");
	iac_log("%s: scale_down_delay passed: stopping standby %s (%s)", ctx->addr, sb,
		sget(prior, "standby_version") ?: "?");
	if (for_colour(ctx, json_object_get(planned, "pool"), sb, sget(prior, "standby_version"), stop_inst) < 0) {
		json_decref(*out);
		*out = NULL;
		return IAC_ERR;
	}
	json_object_set_new(*out, "standby", json_null());
	json_object_set_new(*out, "standby_version", json_null());
	json_object_set_new(*out, "standby_until", json_null());
	return 0;
}

/* Step 1 (top of this file): the idle colour runs `version` afterwards.
 * A standby already at that version is reused only when all its instances
 * are alive and HAProxy does not mark it replaced; else it is restarted,
 * marked replaced first so a rollback cannot mistake it for the standby.
 * *started = 1 when instances were (re)started. */
static int prepare_idle(const iac_rctx *ctx, int *started, const json_t *prior, const json_t *planned,
			const char *idle, const char *version)
{
	const json_t *pool = json_object_get(planned, "pool");
	const json_t *inst[64];
	size_t n = colour_instances(pool, idle, inst, 64);
	int alive = n > 0;

	*started = 0;
	for (size_t i = 0; i < n && alive; i++)
		alive = inst_alive(ctx, pool, inst[i], version);
	if (prior && sget(prior, "standby") && !strcmp(sget(prior, "standby_version") ?: "", version) && alive &&
	    !is_replaced(planned, idle)) {
		iac_log("%s: %s already runs %s (standby), reusing it", ctx->addr, idle, version);
		return 0;
	}
	iac_log("%s: starting %s at %s (%zu instance%s)", ctx->addr, idle, version, n, n == 1 ? "" : "s");
	if (n == 0)
		return iac_err_set("the pool has no %s instances", idle);
	if (mark_replaced(ctx, planned, idle, 1) < 0 ||
	    for_colour(ctx, pool, idle, version, stop_inst) < 0 ||
	    for_colour(ctx, pool, idle, version, start_inst) < 0)
		return IAC_ERR;
	*started = 1;
	return 0;
}

/* Steps 2 and 3: health, then analysis when configured; figures go to
 * `last` whether they pass or not. */
static int run_gates(const iac_rctx *ctx, json_t *last, const json_t *planned, const char *idle,
		     const char *version)
{
	iac_log("%s: health gate on %s", ctx->addr, idle);
	if (cancelled(ctx, "the health gate"))
		return IAC_ERR;
	if (gate_health(ctx, last, planned, idle) < 0) {
		iac_err_prefix("health gate failed for %s on %s", version, idle);
		return IAC_ERR;
	}
	if (!json_is_object(json_object_get(planned, "analysis")))
		return 0;
	iac_log("%s: analysis on %s", ctx->addr, idle);
	if (cancelled(ctx, "the analysis"))
		return IAC_ERR;
	if (gate_analysis(ctx, last, planned, idle) < 0) {
		iac_err_prefix("analysis failed for %s on %s", version, idle);
		return IAC_ERR;
	}
	return 0;
}

/* The attributes once `idle` is live at `version`; `last` is taken. */
static json_t *live_attrs(const json_t *prior, const json_t *planned, const char *idle, const char *version,
			  json_t *last)
{
	const char *live = prior ? sget(prior, "live") : NULL;
	const char *lv = prior ? sget(prior, "live_version") : NULL;
	json_t *out = json_deep_copy(planned);
	double until = standby_deadline(planned);

	json_object_del(out, "steps");
	json_object_set_new(out, "live", json_string(idle));
	json_object_set_new(out, "live_version", json_string(version));
	json_object_set_new(out, "standby", live ? json_string(live) : json_null());
	json_object_set_new(out, "standby_version", lv ? json_string(lv) : json_null());
	json_object_set_new(out, "bad_versions", prior && json_object_get(prior, "bad_versions")
						 ? json_incref(json_object_get(prior, "bad_versions")) : json_array());
	json_object_set_new(out, "standby_until", live && until > 0 ? json_real(until) : json_null());
	json_object_set_new(out, "last", last);
	return out;
}

/* A step up to the switch failed: traffic is still on `live`. Stop what was
 * started (unless on_failure = "keep", or the run was cancelled: commands
 * on hosts are interrupted then) and put the figures in the message. */
static void deploy_failed(const iac_rctx *ctx, const json_t *planned, const json_t *last, const char *idle,
			  const char *live, const char *version, int started)
{
	char *msg = iac_xasprintf("deployment of %s: %s", version, iac_err_last());
	const char *of = sget(planned, "on_failure");
	if (started && ctx->cancel && *ctx->cancel) {
		iac_log("%s: cancelled: %s left as it is (not live; a rollback will not use it)", ctx->addr, idle);
	} else if (started && !(of && !strcmp(of, "keep"))) {
		iac_log("%s: stopping %s after the failed gate (traffic stays on %s)", ctx->addr, idle,
			live ? live : "nothing");
		for_colour(ctx, json_object_get(planned, "pool"), idle, version, stop_inst);
	}
	char *figs = json_dumps(last, JSON_COMPACT);
	iac_err_set("%s\n  figures: %s", msg, figs ? figs : "{}");
	free(figs);
	free(msg);
}

/* Deploy planned.version to the idle colour of prior (NULL: first deploy),
 * in the steps at the top of this file. */
static int deploy(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	const char *version = sget(planned, "version");
	const char *live = prior ? sget(prior, "live") : NULL;
	const char *lv = prior ? sget(prior, "live_version") : NULL;
	const char *idle = other(live);
	json_t *last;
	char when[32];
	int started = 0;

	if (lv && !strcmp(lv, version))
		return redeploy_settings(ctx, out, prior, planned);
	last = json_object();
	iac_time_rfc3339(when, sizeof(when));
	json_object_set_new(last, "version", json_string(version));
	json_object_set_new(last, "colour", json_string(idle));
	json_object_set_new(last, "started", json_string(when));
	if (prepare_idle(ctx, &started, prior, planned, idle, version) < 0 ||
	    run_gates(ctx, last, planned, idle, version) < 0 ||
	    cancelled(ctx, "the switch") ||
	    mark_replaced(ctx, planned, idle, 0) < 0)
		goto fail;
	iac_log("%s: switching traffic %s%s -> %s", ctx->addr, live ? live : "", live ? "" : "(none)", idle);
	if (do_switch(ctx, last, planned, idle, live) < 0) {
		iac_err_prefix("cutover to %s failed (traffic stays on %s)", idle, live ? live : "nothing");
		goto fail;
	}
	iac_time_rfc3339(when, sizeof(when));
	json_object_set_new(last, "finished", json_string(when));
	json_object_set_new(last, "result", json_string("live"));
	*out = live_attrs(prior, planned, idle, version, last);
	iac_log("%s: %s is live on %s%s%s", ctx->addr, version, idle, live ? "; standby: " : "", live ? live : "");
	return 0;
fail:
	deploy_failed(ctx, planned, last, idle, live, version, started);
	json_decref(last);
	return IAC_ERR;
}

static int bg_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	return deploy(ctx, out, NULL, planned);
}

static int bg_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	return deploy(ctx, out, prior, planned);
}

/* What is really serving: if no live instance is up any more, the version
 * reads as "(not running)", so the next plan deploys again. */
static int bg_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	const json_t *pool = json_object_get(prior, "pool");
	const char *live = sget(prior, "live");
	*out = json_copy((json_t *)prior);
	if (!live)
		return 0;
	const json_t *inst[64];
	size_t n = colour_instances(pool, live, inst, 64), up = 0;
	for (size_t i = 0; i < n; i++)
		up += inst_alive(ctx, pool, inst[i], sget(prior, "live_version"));
	if (n && !up)
		json_object_set_new(*out, "version", json_string("(not running)"));
	/* the standby is what `iac rollback` needs: say when it is gone */
	const char *sb = sget(prior, "standby");
	json_object_del(*out, "standby_down");
	if (sb) {
		n = colour_instances(pool, sb, inst, 64);
		up = 0;
		for (size_t i = 0; i < n; i++)
			up += inst_alive(ctx, pool, inst[i], sget(prior, "standby_version"));
		if (n && !up)
			json_object_set_new(*out, "standby_down", json_true());
	}
	return 0;
}

/* The first failure's message (*first, caller frees) survives what runs after it. */
static void keep_first(char **first, int failed)
{
	if (failed && !*first)
		*first = iac_xstrdup(iac_err_last());
}

static int bg_remove(const iac_rctx *ctx, const json_t *prior)
{
	const json_t *pool = json_object_get(prior, "pool");
	char *first = NULL;
	keep_first(&first, for_colour(ctx, pool, "blue", sget(prior, "version"), stop_inst) < 0);
	keep_first(&first, for_colour(ctx, pool, "green", sget(prior, "version"), stop_inst) < 0);
	/* spares the autoscaler started (stopping one that does not run is a
	 * no-op); a spare that is an LXD container goes with its container
	 * (removing one that does not exist is a no-op too) */
	size_t i;
	const json_t *sp;
	json_array_foreach(json_object_get(pool, "spares"), i, sp) {
		const json_t *lxd = json_object_get(sp, "lxd");
		keep_first(&first, lxd ? iac_providers_type_remove(ctx, "lxd.instance", sget(lxd, "name") ?: "?", lxd) < 0
				       : stop_inst(ctx, pool, sp, sget(prior, "version")) < 0);
	}
	if (!first)
		return 0;
	iac_err_set("%s", first);
	free(first);
	return IAC_ERR;
}

const iac_rtype iac_deploy_bluegreen_type = {
	.name = "deploy.blue_green",
	.attrs = bg_attrs,
	.doc = "a blue/green deployment behind HAProxy",
	.plan = bg_plan,
	.read = bg_read,
	.create = bg_create,
	.update = bg_update,
	.remove = bg_remove,
};
