/* rollback: the emergency switch back to the standby colour.
 *
 * Works from a deployment's state attributes alone: no configuration is
 * loaded, nothing is refreshed. The standby colour is still running (that
 * is what standby means), so the switch is a health probe of each standby
 * instance plus two runtime API calls (ready, drain) through
 * iac_cutover_rollback, then the server states are saved so a reload keeps
 * them. The version rolled back from is marked bad.
 */
#include "providers/deploy/deploy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/deploy/cutover.h"
#include "iac/deploy/haproxy_api.h"
#include "iac/deploy/probe.h"

static const char *sget(const json_t *o, const char *k)
{
	return iac_json_str(o, k);
}

static size_t names_of(const json_t *pool, const char *colour, const char **names, char **urls,
		       const char *health_path, size_t max)
{
	json_t *e;
	size_t i, n = 0;
	json_array_foreach(json_object_get(pool, "instances"), i, e) {
		if (n >= max || !sget(e, "colour") || strcmp(sget(e, "colour"), colour) != 0)
			continue;
		names[n] = sget(e, "name");
		if (urls)
			urls[n] = iac_xasprintf("http://%s:%lld%s", sget(e, "address"),
						(long long)json_integer_value(json_object_get(e, "port")), health_path);
		n++;
	}
	return n;
}

int iac_deploy_replaced(int *marked, iac_haproxy *h, const char *backend, const char *const *names, size_t n)
{
	char *text = NULL;
	int name_col = -1, weight_col = -1;
	*marked = 0;
	if (iac_haproxy_servers_state(&text, h, backend) < 0)
		return IAC_ERR;
	/* "1\n# be_id be_name srv_id srv_name ... srv_uweight ...\nrows": columns by name */
	char *ls = NULL;
	for (char *line = strtok_r(text, "\n", &ls); line; line = strtok_r(NULL, "\n", &ls)) {
		char *f[64], *fs = NULL;
		int nf = 0;
		for (char *t = strtok_r(line, " ", &fs); t && nf < 64; t = strtok_r(NULL, " ", &fs))
			f[nf++] = t;
		if (nf && !strcmp(f[0], "#")) {
			for (int i = 1; i < nf; i++) {
				if (!strcmp(f[i], "srv_name"))
					name_col = i - 1;
				else if (!strcmp(f[i], "srv_uweight"))
					weight_col = i - 1;
			}
			continue;
		}
		if (name_col < 0 || weight_col < 0 || nf <= name_col || nf <= weight_col)
			continue;
		for (size_t i = 0; i < n; i++)
			if (!strcmp(f[name_col], names[i]) && !strcmp(f[weight_col], "0"))
				*marked = 1;
	}
	free(text);
	return 0;
}

/* The bad_versions entry of version, or NULL. */
static json_t *bad_entry(const json_t *attrs, const char *version)
{
	json_t *e;
	size_t i;
	json_array_foreach(json_object_get(attrs, "bad_versions"), i, e)
		if (!strcmp(sget(e, "version") ?: "", version))
			return e;
	return NULL;
}

/* What a rollback cannot do: go to no standby, or to one that runs a
 * version already rolled back from. */
static int rollback_refused(const json_t *attrs)
{
	const char *live = sget(attrs, "live"), *standby = sget(attrs, "standby");
	if (!live || !standby)
		return iac_err_set("there is no standby colour to roll back to (live: %s%s%s); a rollback needs "
				   "a previous deploy whose colour is still running",
				   live ? live : "none", live ? " at " : "", live ? (sget(attrs, "live_version") ?: "?") : "");
	/* A second rollback in a row would put back the version the first one
	 * fled (and mark the good one bad): refuse; deploying it again is an
	 * explicit `iac apply -allow-bad`. */
	const json_t *sb = bad_entry(attrs, sget(attrs, "standby_version") ?: "");
	if (sb)
		return iac_err_set("the standby colour %s runs '%s', which is marked bad (rolled back from at %s); "
				   "there is nothing good to roll back to: '%s' stays live. Deploy a good version, "
				   "or 'iac apply -allow-bad' to put '%s' back", standby, sget(attrs, "standby_version"),
				   sget(sb, "at") ?: "?", sget(attrs, "live_version") ?: "?", sget(attrs, "standby_version"));
	return 0;
}

/* The cutover from live to standby: to[] and urls[] (the standby
 * instances' health URLs, the caller frees them) and from[] are filled. */
static void rollback_targets(iac_cutover_opts *o, const char **to, const char **from, char **urls,
			     const json_t *attrs)
{
	const json_t *pool = json_object_get(attrs, "pool"), *lb = json_object_get(attrs, "lb");
	const json_t *health = json_object_get(attrs, "health");
	const char *path = sget(health, "path");

	o->backend = sget(lb, "backend") ? sget(lb, "backend") : "app";
	o->to = to;
	o->n_to = names_of(pool, sget(attrs, "standby"), to, urls, path ? path : "/health", 64);
	o->from = from;
	o->n_from = names_of(pool, sget(attrs, "live"), from, NULL, NULL, 64);
	o->verify_urls = (const char *const *)urls;
	o->n_verify = o->n_to;
	o->verify_expect = (long)(json_is_integer(json_object_get(health, "expect"))
				  ? json_integer_value(json_object_get(health, "expect")) : 200);
}

/* An emergency rollback goes to whatever part of the standby still
 * answers: one dead instance must not block it. Probe all at once (a few
 * hundred ms at most) and keep the healthy ones, first in to[] and urls[]
 * (urls are swapped, not dropped, so the caller still frees them all). */
static int keep_answering(iac_cutover_opts *o, const char **to, char **urls, iac_rollback_result *res,
			  const iac_rctx *ctx, const json_t *attrs)
{
	const char *standby = sget(attrs, "standby");
	iac_probe_health_opts ho = { .urls = (const char *const *)urls, .n_urls = o->n_to, .path = "",
				     .expect = o->verify_expect, .interval_ms = 50, .healthy = 1,
				     .timeout_ms = 400, .request_timeout_ms = 400, .cancel = ctx->cancel };
	iac_probe_health_result hr;
	iac_buf left = IAC_BUF_INIT;
	size_t keep = 0;
	int rc = 0;

	iac_probe_health(&hr, &ho);
	for (size_t i = 0; i < hr.n && i < o->n_to; i++) {
		if (hr.instances[i].healthy) {
			to[keep] = to[i];
			char *u = urls[keep];
			urls[keep] = urls[i];
			urls[i] = u;
			keep++;
		} else {
			iac_buf_printf(&left, "%s%s (%s)", left.len ? ", " : "", to[i],
				       hr.instances[i].last_error[0] ? hr.instances[i].last_error : "no answer");
		}
	}
	iac_probe_health_free(&hr);
	if (!keep) {
		rc = iac_err_set("no instance of the standby colour %s answers its health check (%s): nothing to "
				 "roll back to, %s (%s) stays live", standby, iac_buf_cstr(&left),
				 sget(attrs, "live"), res->from_version);
	} else {
		if (keep < o->n_to)
			snprintf(res->note, sizeof(res->note), "%zu of %zu %s instances took the traffic; left out: %s",
				 keep, o->n_to, standby, iac_buf_cstr(&left));
		o->n_to = keep;
		o->n_verify = keep;
	}
	iac_buf_free(&left);
	return rc;
}

/* The "replaced" mark on the standby (deploy.h) means it no longer runs
 * what state says: switching to it would serve an unknown version. */
static int refuse_replaced(iac_haproxy *h, const iac_cutover_opts *o, const iac_rollback_result *res,
			   const json_t *attrs)
{
	int replaced = 0;
	if (iac_deploy_replaced(&replaced, h, o->backend, o->to, o->n_to) < 0)
		return IAC_ERR;
	if (replaced)
		return iac_err_set("the standby colour %s no longer runs %s: a deploy replaced it since (a failed "
				   "version kept for inspection, or an apply that was stopped mid-deploy); there is "
				   "nothing to roll back to, %s (%s) stays live. Deploy a good version instead",
				   sget(attrs, "standby"), res->to_version, sget(attrs, "live"), res->from_version);
	return 0;
}

/* The attributes after the rollback: colours and versions swapped, the
 * version rolled back from marked bad. New reference. */
static json_t *rolled_back_attrs(const json_t *attrs, const iac_rollback_result *res)
{
	json_t *out = json_deep_copy(attrs);
	json_t *bad = json_object_get(out, "bad_versions");
	char when[32];

	if (!json_is_array(bad)) {
		bad = json_array();
		json_object_set_new(out, "bad_versions", bad);
	}
	iac_time_rfc3339(when, sizeof(when));
	json_t *again = bad_entry(out, res->from_version);
	if (again)   /* rolled back from once more (after -allow-bad): one entry, latest time */
		json_object_set_new(again, "at", json_string(when));
	else
		json_array_append_new(bad, json_pack("{s:s,s:s}", "version", res->from_version, "at", when));
	json_object_set_new(out, "live", json_string(sget(attrs, "standby")));
	json_object_set_new(out, "live_version", json_string(res->to_version));
	json_object_set_new(out, "standby", json_string(sget(attrs, "live")));
	json_object_set_new(out, "standby_version", json_string(res->from_version));
	json_object_set_new(out, "version", json_string(res->to_version));
	/* the colour rolled back from is the new standby, for as long as
	 * scale_down_delay says */
	const char *d = sget(attrs, "scale_down_delay");
	double ms;
	if (d && iac_duration_parse(&ms, d) == 0)
		json_object_set_new(out, "standby_until", json_real((double)time(NULL) + ms / 1e3));
	return out;
}

/* The other HAProxy hosts of an HA group switch back the same way (after
 * the one in front, which the rollback's figures are about). */
static int rollback_peers(const iac_rctx *ctx, const iac_cutover_opts *o, const json_t *lb)
{
	const json_t *lbs[16];
	size_t nl = iac_deploy_lbs(lbs, 16, lb);
	iac_cutover_opts po = *o;
	po.n_verify = 0;   /* the instances answered once already */
	for (size_t l = 1; l < nl; l++) {
		iac_cutover_result r;
		iac_haproxy *h = NULL;
		int rc = iac_haproxy_open(&h, sget(lbs[l], "api"), 1000);
		if (rc == 0)
			rc = iac_cutover_rollback(&r, h, &po);
		iac_haproxy_free(h);
		if (rc == 0)
			rc = iac_deploy_persist_switch(ctx, lbs[l]);
		if (rc < 0) {
			iac_err_prefix("rolled back on the first HAProxy, but not on HAProxy %zu of %zu ('%s'); run "
				       "'iac rollback' again", l + 1, nl, sget(lbs[l], "api") ?: "?");
			return rc;
		}
	}
	return 0;
}

int iac_deploy_rollback(json_t **out_attrs, iac_rollback_result *res, const iac_rctx *ctx,
			const json_t *attrs)
{
	const json_t *lb = json_object_get(attrs, "lb");
	const char *to[64], *from[64];
	char *urls[64] = { 0 };
	iac_cutover_opts o = { 0 };
	iac_cutover_result r;
	iac_haproxy *h = NULL;
	double t0 = iac_now_ms();
	int rc = IAC_ERR;

	memset(res, 0, sizeof(*res));
	*out_attrs = NULL;
	if (rollback_refused(attrs) < 0)
		return IAC_ERR;
	snprintf(res->from_colour, sizeof(res->from_colour), "%s", sget(attrs, "live"));
	snprintf(res->to_colour, sizeof(res->to_colour), "%s", sget(attrs, "standby"));
	snprintf(res->from_version, sizeof(res->from_version), "%s", sget(attrs, "live_version") ?: "?");
	snprintf(res->to_version, sizeof(res->to_version), "%s", sget(attrs, "standby_version") ?: "?");

	rollback_targets(&o, to, from, urls, attrs);
	if (!o.n_to) {
		iac_err_set("the pool has no %s instances to roll back to", sget(attrs, "standby"));
		goto done;
	}
	if (keep_answering(&o, to, urls, res, ctx, attrs) < 0 ||
	    iac_haproxy_open(&h, sget(lb, "api"), 1000) < 0 ||
	    refuse_replaced(h, &o, res, attrs) < 0 ||
	    iac_cutover_rollback(&r, h, &o) < 0)
		goto done;
	res->switch_ms = r.switch_ms;
	if (iac_deploy_persist_switch(ctx, lb) < 0 || rollback_peers(ctx, &o, lb) < 0)
		goto done;
	*out_attrs = rolled_back_attrs(attrs, res);
	rc = 0;
done:
	res->total_ms = iac_now_ms() - t0;
	for (size_t i = 0; i < 64; i++)
		free(urls[i]);
	iac_haproxy_free(h);
	return rc;
}
