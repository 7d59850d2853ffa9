/* cmd_autoscale: `iac autoscale [DEPLOYMENT...] [-once]` — the controller —
 * and `iac autoscale status [NAME]` (also `iac status autoscale`).
 *
 * Like `iac rollback` it reads state only (main.lua may be mid-edit):
 * providers are configured from the copy of their settings the last apply
 * saved. Each step takes the state lock, so it never runs during an apply
 * (a deployment's cutover included); when the lock is held, the step is
 * skipped and says by whom.
 *
 * Leader election: with an etcd backend (or -etcd ENDPOINTS), exactly one
 * `iac autoscale` acts: the one holding the lock "<prefix>/autoscale" in
 * etcd, attached to a lease it keeps alive (iac/etcd). When it dies the
 * lease expires (-lease-ttl, default 5s) and a standby takes over at its
 * next try (every second).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "providers/deploy/autoscale.h"
#include "providers/deploy/deploy.h"

#include "iac/cli/session.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/etcd/etcd.h"
#include "iac/state/history.h"

#define AUTOSCALE_FLAGS (IAC_F_JSON | IAC_F_LOCK)

typedef struct {
	iac_session s;
	iac_strlist names;
	int once;
	const char *etcd;      /* -etcd ENDPOINTS */
	double lease_ttl_ms;   /* -lease-ttl */
	double interval_ms;    /* -interval (0: the pools' own) */
	const char *id;        /* -id: this controller's name in the lease */
	/* leadership */
	iac_etcd *e;
	iac_etcd_keeper *keeper;
	int64_t lease;
	char *lock_key;
	char *lock_name;
	int leader_said;       /* 1 leader, -1 standby: said once */
} ctl;

static void nap(double ms)
{
	double end = iac_now_ms() + ms;
	while (!iac_stop_requested && iac_now_ms() < end)
		usleep(50 * 1000);
}

/* ---- output ------------------------------------------------------------- */

static void print_decision(const ctl *c, const json_t *d)
{
	if (c->s.json) {
		char *text = json_dumps(d, JSON_COMPACT | JSON_REAL_PRECISION(15));
		printf("%s\n", text);
		free(text);
		fflush(stdout);
		return;
	}
	const char *at = iac_json_str(d, "at") ?: "";
	const char *dep = iac_json_str(d, "deployment") ?: "?";
	if (iac_json_str(d, "error")) {
		printf("%s %s: %s\n", at, dep, iac_json_str(d, "error"));
		fflush(stdout);
		return;
	}
	const json_t *v = json_object_get(d, "value");
	char val[640];
	if (json_is_number(v))
		snprintf(val, sizeof(val), "%.2f", json_number_value(v));
	else
		snprintf(val, sizeof(val), "unknown (%.600s)", iac_json_str(d, "metric_error") ?: "no answer");
	printf("%s %s: %s %s (target %g), current %lld, desired %lld: %s", at, dep, iac_json_str(d, "metric"), val,
	       json_number_value(json_object_get(d, "target")),
	       (long long)json_integer_value(json_object_get(d, "current")),
	       (long long)json_integer_value(json_object_get(d, "desired")), iac_json_str(d, "reason") ?: "");
	if (iac_json_str(d, "action"))
		printf("; %s%s%s", iac_color(IAC_C_GREEN), iac_json_str(d, "action"), iac_color(IAC_C_RESET));
	size_t i;
	const json_t *n;
	json_array_foreach(json_object_get(d, "notes"), i, n)
		printf("; %s", json_string_value(n));
	printf("\n");
	fflush(stdout);
}

static void print_skip(const ctl *c, const char *why)
{
	char when[32];
	iac_time_rfc3339(when, sizeof(when));
	if (c->s.json) {
		json_t *d = json_pack("{s:s,s:s}", "at", when, "skipped", why);
		print_decision(c, d);
		json_decref(d);
	} else {
		printf("%s skipped: %s\n", when, why);
		fflush(stdout);
	}
}

/* ---- leader election ---------------------------------------------------- */

static const char *etcd_endpoints(ctl *c, char *buf, size_t len)
{
	if (c->etcd)
		return c->etcd;
	if (strcmp(iac_backend_kind(c->s.be), "etcd"))
		return NULL;
	const json_t *ep = json_object_get(iac_backend_settings(c->s.be), "endpoints");
	if (json_is_string(ep))
		return json_string_value(ep);
	size_t i, off = 0;
	const json_t *x;
	buf[0] = '\0';
	json_array_foreach(ep, i, x)
		off += (size_t)snprintf(buf + off, off < len ? len - off : 0, "%s%s", off ? "," : "",
					json_string_value(x) ?: "");
	return buf[0] ? buf : NULL;
}

static void leader_drop(ctl *c, int revoke)
{
	iac_etcd_keeper_stop(c->keeper, revoke);
	c->keeper = NULL;
	free(c->lock_key);
	c->lock_key = NULL;
	c->lease = 0;
}

/* 1 when this controller may act now (no etcd: always), 0 when another
 * holds the lease, IAC_ERR when etcd cannot say. */
static int leader_check(ctl *c)
{
	if (!c->e)
		return 1;
	char *msg = NULL;
	if (c->keeper && iac_etcd_keeper_status(&msg, c->keeper) == IAC_ENOTFOUND) {
		iac_log_warn("lost the autoscaler lease (%s); standing by", msg ? msg : "expired");
		leader_drop(c, 0);
		c->leader_said = 0;
	}
	free(msg);
	if (c->lock_key)
		return 1;
	if (!c->lease) {
		if (iac_etcd_lease_grant(&c->lease, c->e, (int64_t)ceil(c->lease_ttl_ms / 1e3)) < 0)
			return IAC_ERR;
		if (iac_etcd_keeper_start(&c->keeper, c->e, c->lease, c->lease_ttl_ms / 3) < 0) {
			c->lease = 0;
			return IAC_ERR;
		}
	}
	char host[256] = "", info[512];
	gethostname(host, sizeof(host) - 1);
	snprintf(info, sizeof(info), "iac autoscale %s (pid %ld on %s)", c->id ? c->id : "", (long)getpid(), host);
	int rc = iac_etcd_lock(&c->lock_key, c->e, c->lock_name, c->lease, info, 0);
	if (rc == IAC_ELOCKED) {
		if (c->leader_said != -1) {
			char *why = iac_xasprintf("standing by, another controller leads: %s", iac_err_last());
			print_skip(c, why);
			free(why);
		}
		c->leader_said = -1;
		iac_err_clear();
		return 0;
	}
	if (rc < 0)
		return rc;
	char when[32];
	iac_time_rfc3339(when, sizeof(when));
	if (c->s.json) {
		json_t *d = json_pack("{s:s,s:s,s:s}", "at", when, "leader", info, "lock", c->lock_key);
		print_decision(c, d);
		json_decref(d);
	} else {
		printf("%s leader: %s holds '%s'\n", when, info, c->lock_name);
		fflush(stdout);
	}
	c->leader_said = 1;
	return 1;
}

/* ---- one step over the deployments -------------------------------------- */

/* Lock, open state, step each autoscaled deployment, save, unlock.
 * *interval_ms gets the smallest interval the pools ask for. */
static int step_all(ctl *c, double *interval_ms)
{
	iac_session *s = &c->s;
	json_t *stale = NULL;
	int rc = iac_backend_lock(&stale, s->be, "autoscale", s->lock_timeout_ms);
	json_decref(stale);
	if (rc == IAC_ELOCKED) {
		print_skip(c, iac_err_last());
		iac_err_clear();
		return 0;
	}
	if (rc < 0) {
		iac_session_error("cannot take the state lock");
		return IAC_ERR;
	}
	s->locked = 1;
	if (iac_session_open_state(s, 0) < 0) {
		rc = IAC_ERR;
		goto out;
	}
	s->pv = iac_providers_new(iac_state_extra(s->st, "providers"), NULL, ".");
	size_t na, nd = 0;
	const char **addrs = iac_state_addresses(s->st, &na);
	char **deps = iac_xcalloc(na + 1, sizeof(char *));
	for (size_t i = 0; i < na; i++) {
		json_t *e = iac_state_get(s->st, addrs[i]);
		if (!strcmp(iac_json_str(e, "type") ?: "", "deploy.blue_green") && iac_deploy_addr_matches(addrs[i], &c->names) &&
		    json_object_get(json_object_get(json_object_get(e, "attributes"), "pool"), "autoscale"))
			deps[nd++] = iac_xstrdup(addrs[i]);
	}
	free(addrs);
	if (!nd)
		iac_log_warn(c->names.n ? "no deployment named '%s' with an autoscaled pool in state"
					: "no deployment with an autoscaled pool (app_pool { autoscale = {...} }) in state%s",
			     c->names.n ? c->names.items[0] : "");
	for (size_t i = 0; i < nd; i++) {
		iac_rctx ctx;
		json_t *d = NULL;
		iac_autoscale_spec spec;
		json_t *e = iac_state_get(s->st, deps[i]);
		const json_t *as = json_object_get(json_object_get(json_object_get(e, "attributes"), "pool"), "autoscale");
		if (iac_autoscale_spec_parse(&spec, as) == 0 && spec.interval * 1e3 < *interval_ms)
			*interval_ms = spec.interval * 1e3;
		iac_err_clear();
		iac_providers_ctx(&ctx, s->pv, &iac_provider_deploy, deps[i], &iac_cancel_requested);
		if (iac_autoscale_step(&d, s->st, &ctx, deps[i], iac_autoscale_now()) < 0)
			rc = IAC_ERR;
		if (d)
			print_decision(c, d);
		else
			iac_log_error("%s: %s", deps[i], iac_err_last());
		json_decref(d);
		free(deps[i]);
	}
	free(deps);
	if (iac_state_flush(s->st) < 0) {
		iac_session_error("cannot save state after the autoscale step (the journal has it)");
		rc = IAC_ERR;
	}
out:
	iac_providers_free(s->pv);
	s->pv = NULL;
	iac_state_free(s->st);
	s->st = NULL;
	iac_backend_unlock(s->be);
	s->locked = 0;
	return rc;
}

static int run(ctl *c)
{
	char buf[1024];
	const char *endpoints = etcd_endpoints(c, buf, sizeof(buf));
	int rc = 0;
	if (endpoints) {
		const char *prefix = iac_json_str(iac_backend_settings(c->s.be), "prefix") ?: "iac";
		c->lock_name = iac_xasprintf("%s/autoscale", prefix);
		if (iac_etcd_open(&c->e, endpoints, 5000) < 0) {
			iac_session_error("autoscaler leader election");
			return 1;
		}
	}
	iac_session_signals(1);
	/* the pools' interval as the last step that read them found it (a
	 * skipped step reads nothing) */
	double interval = c->interval_ms > 0 ? c->interval_ms : 15e3;
	while (!iac_stop_requested) {
		int lead = leader_check(c);
		if (lead < 0) {
			print_skip(c, iac_err_last());
			iac_err_clear();
		} else if (lead > 0) {
			double want = 1e12;
			rc = step_all(c, &want) < 0;
			if (c->interval_ms <= 0 && want < 1e12)
				interval = want;
		}
		if (c->once)
			break;
		/* a standby tries every second so that it takes over within the TTL */
		nap(lead > 0 ? interval : fmin(interval, 1000));
	}
	if (c->lock_key)
		iac_etcd_unlock(c->e, c->lock_key);
	leader_drop(c, 1);
	iac_etcd_close(c->e);
	iac_session_signals(0);
	return rc;
}

/* ---- status ------------------------------------------------------------- */

static int status(ctl *c, const char *only)
{
	iac_session *s = &c->s;
	if (iac_session_backend(s, 0) < 0 || iac_session_open_state(s, 0) < 0)
		return 1;
	json_t *all = iac_state_extra(s->st, "autoscale"), *out = json_object();
	const char *addr;
	json_t *rec;
	json_object_foreach(all, addr, rec) {
		const char *dot = strrchr(addr, '.');
		if (only && strcmp(only, addr) && strcmp(only, dot ? dot + 1 : addr))
			continue;
		json_object_set(out, addr, rec);
	}
	if (!json_object_size(out)) {
		iac_log_error(only ? "no autoscaler record for '%s' in state (has 'iac autoscale' run?)"
				   : "no autoscaler record in state (has 'iac autoscale' run?)%s", only ? only : "");
		json_decref(out);
		return 1;
	}
	if (s->json) {
		json_t *doc = json_pack("{s:O}", "autoscale", out);
		char *text = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
		printf("%s\n", text);
		free(text);
		json_decref(doc);
		json_decref(out);
		return 0;
	}
	json_object_foreach(out, addr, rec) {
		const json_t *last = json_object_get(rec, "last"), *v = json_object_get(last, "value"), *sp;
		size_t i;
		char val[32];
		snprintf(val, sizeof(val), json_is_number(v) ? "%.2f" : "unknown", json_number_value(v));
		printf("%s: serving %lld, desired %lld; %s %s (target %g) at %s\n", addr,
		       (long long)json_integer_value(json_object_get(last, "serving")),
		       (long long)json_integer_value(json_object_get(last, "desired")), iac_json_str(last, "metric") ?: "?",
		       val, json_number_value(json_object_get(last, "target")), iac_json_str(last, "at") ?: "?");
		printf("  spares serving:");
		json_array_foreach(json_object_get(rec, "spares"), i, sp)
			printf(" %s (%s)", iac_json_str(sp, "name"), iac_json_str(sp, "version") ?: "?");
		printf(json_array_size(json_object_get(rec, "spares")) ? "\n" : " none\n");
		printf("  last decisions:\n");
		const json_t *decs = json_object_get(rec, "decisions");
		size_t n = json_array_size(decs);
		for (i = n > 5 ? n - 5 : 0; i < n; i++) {
			const json_t *d = json_array_get(decs, i);
			printf("    %s current %lld -> desired %lld: %s%s%s\n", iac_json_str(d, "at") ?: "?",
			       (long long)json_integer_value(json_object_get(d, "current")),
			       (long long)json_integer_value(json_object_get(d, "desired")), iac_json_str(d, "reason") ?: "",
			       iac_json_str(d, "action") ? "; " : "", iac_json_str(d, "action") ?: "");
		}
	}
	json_decref(out);
	return 0;
}

int iac_deploy_cmd_autoscale(int argc, char **argv)
{
	ctl c;
	int rc = 1;
	memset(&c, 0, sizeof(c));
	c.lease_ttl_ms = 5000;
	iac_session_init(&c.s, "autoscale");
	c.s.lock_timeout_ms = 0;
	const iac_opt own[] = {
		{ "once", IAC_OPT_BOOL, &c.once, "one step, then exit (a CI tick, cron)" },
		{ "etcd", IAC_OPT_STRING, &c.etcd, "etcd endpoints for leader election (default: the etcd backend's)" },
		{ "lease-ttl", IAC_OPT_DURATION, &c.lease_ttl_ms, "the leader's lease in etcd (default 5s)" },
		{ "interval", IAC_OPT_DURATION, &c.interval_ms, "time between steps (default: the pool's scale_up.period)" },
		{ "id", IAC_OPT_STRING, &c.id, "this controller's name, shown to the others" },
		{ NULL, 0, NULL, NULL },
	};
	if (iac_session_args_own(&c.s, AUTOSCALE_FLAGS, own, argc, argv, &c.names) < 0)
		goto out;
	if (c.names.n && !strcmp(c.names.items[0], "status")) {
		if (c.names.n > 2) {
			iac_log_error("usage: iac autoscale status [NAME] [-json]");
			goto out;
		}
		rc = status(&c, c.names.n > 1 ? c.names.items[1] : NULL);
		goto out;
	}
	if (c.lease_ttl_ms < 2000) {
		iac_log_error("-lease-ttl must be at least 2s (etcd's minimum TTL is about that)");
		goto out;
	}
	if (iac_session_backend(&c.s, 0) < 0)
		goto out;
	rc = run(&c);
out:
	free(c.lock_name);
	iac_session_close(&c.s);
	iac_strlist_free(&c.names);
	return rc;
}

void iac_deploy_cmd_autoscale_help(void)
{
	printf("\nusage: iac autoscale [DEPLOYMENT...] [-once] [-json] [-etcd ENDPOINTS] [-lease-ttl 5s]\n"
	       "       iac autoscale status [NAME] [-json]      (also: iac status autoscale [NAME])\n\n"
	       "The controller of pools declared with app_pool { autoscale = {...} }: each\n"
	       "period it reads the metric (haproxy_scur_per_server, haproxy_rate_per_server,\n"
	       "cpu or a PromQL expression),\n"
	       "decides as Kubernetes' HPA does (ceil(current x metric / target), tolerance,\n"
	       "rate limits, scale-down stabilization window, min/max), then starts, health-\n"
	       "gates and adds spares to every HAProxy at runtime (no reload), or drains them\n"
	       "to zero sessions, deletes and stops them. Each step holds the state lock (no\n"
	       "scaling during an apply or a cutover) and is recorded in state; every decision\n"
	       "is printed on one line with its inputs (-json: one JSON object per line).\n"
	       "With an etcd backend or -etcd, only the holder of the autoscaler lease acts;\n"
	       "another one takes over within the lease's TTL when it dies. -once: one step.\n");
	iac_session_usage(AUTOSCALE_FLAGS);
	printf("  -once                    one step, then exit\n"
	       "  -etcd ENDPOINTS          etcd for leader election (default: the etcd backend's)\n"
	       "  -lease-ttl DURATION      the leader's lease (default 5s)\n"
	       "  -interval DURATION       time between steps (default: scale_up.period)\n"
	       "  -id NAME                 this controller's name, shown to the others\n");
}
