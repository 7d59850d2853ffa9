/* autoscale: one step of the autoscaler for one deployment (autoscale.h).
 *
 * The pool's `instances` of the live colour always serve (deployments run
 * them, HAProxy's config lists them); its `spares` are what the autoscaler
 * adds: started at the live version, health-gated, then `add server` on
 * every HAProxy of the lb, no reload. Which spares serve, the past
 * recommendations and scale events the decision needs, and the last
 * decisions are kept in state (extra "autoscale", journaled like every
 * change) by the caller, who holds the lock: an apply (a deployment's
 * cutover included) and a step never run at once.
 */
#include "providers/deploy/autoscale.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/deploy/haproxy_api.h"
#include "iac/deploy/probe.h"
#include "iac/host/host.h"
#include "iac/provider/runtime.h"
#include "iac/state/history.h"
#include "iac/state/state.h"
#include "providers/deploy/deploy.h"

#define MAX_LBS 16
#define MAX_INST 64
#define KEEP_DECISIONS 20

double iac_autoscale_now(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* What one step works on; pointers borrowed from state or the caller. */
typedef struct {
	const iac_rctx *ctx;
	const json_t *attrs, *pool, *lbs[MAX_LBS];
	size_t n_lbs;
	char *opts[MAX_LBS];    /* add-server options per HAProxy */
	const char *backend, *live, *version;
	double drain_ms;
	json_t *active;         /* [{name, colour, version, since}] serving spares (owned) */
	json_t *notes;          /* what was done, for the decision (owned) */
} step_env;

static const json_t *find_inst(const json_t *list, const char *name)
{
	size_t i;
	const json_t *e;
	json_array_foreach(list, i, e)
		if (!strcmp(iac_json_str(e, "name") ?: "", name))
			return e;
	return NULL;
}

static int is_active(const step_env *env, const char *name)
{
	return find_inst(env->active, name) != NULL;
}

/* The instance `name` as it runs: an active spare made on LXD carries its
 * host and address ("inst"); every other one is the pool's entry. */
static const json_t *inst_of(const step_env *env, const char *name)
{
	const json_t *a = find_inst(env->active, name), *made = json_object_get(a, "inst");
	if (made)
		return made;
	const json_t *e = find_inst(json_object_get(env->pool, "instances"), name);
	return e ? e : find_inst(json_object_get(env->pool, "spares"), name);
}

/* The names serving now: the live colour's instances and the active spares. */
static size_t serving(const step_env *env, const char **out, size_t max)
{
	size_t n = 0, i;
	const json_t *e;
	json_array_foreach(json_object_get(env->pool, "instances"), i, e)
		if (n < max && !strcmp(iac_json_str(e, "colour") ?: "", env->live))
			out[n++] = iac_json_str(e, "name");
	json_array_foreach(env->active, i, e)
		if (n < max)
			out[n++] = iac_json_str(e, "name");
	return n;
}

static int in_list(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] && !strcmp(names[i], name))
			return 1;
	return 0;
}

/* ---- the metric --------------------------------------------------------- */

/* A server row that counts for the metrics: one of the serving names, up,
 * not draining. */
static int serving_up(const iac_haproxy_stat *row, const char *const *names, size_t nn)
{
	return row->type == 2 && in_list(names, nn, row->svname) && iac_haproxy_stat_is_up(row) &&
	       strncmp(row->status, "DRAIN", 5);
}

/* Sessions on the serving servers that are up (not draining), plus the
 * requests queued for them or for the backend, over every HAProxy, divided
 * by how many serve. NAN when no HAProxy answered or none is up. */
static double scur_sample(const step_env *env, char *why, size_t whylen)
{
	const char *names[MAX_INST];
	size_t nn = serving(env, names, MAX_INST), answered = 0, up_max = 0;
	long sessions = 0;
	for (size_t l = 0; l < env->n_lbs; l++) {
		iac_haproxy *h = NULL;
		iac_haproxy_stat *rows = NULL;
		size_t nr = 0, up = 0;
		if (iac_haproxy_open(&h, iac_json_str(env->lbs[l], "api"), 2000) < 0 ||
		    iac_haproxy_show_stat(&rows, &nr, h, env->backend) < 0) {
			snprintf(why, whylen, "%s", iac_err_last());
			iac_haproxy_free(h);
			continue;
		}
		answered++;
		for (size_t i = 0; i < nr; i++) {
			if (rows[i].type == 1 && rows[i].qcur > 0)
				sessions += rows[i].qcur;
			if (!serving_up(&rows[i], names, nn))
				continue;
			up++;
			sessions += (rows[i].scur > 0 ? rows[i].scur : 0) + (rows[i].qcur > 0 ? rows[i].qcur : 0);
		}
		if (up > up_max)
			up_max = up;
		free(rows);
		iac_haproxy_free(h);
	}
	iac_err_clear();
	if (!answered)
		return NAN;
	if (!up_max) {
		snprintf(why, whylen, "no serving server is up in HAProxy");
		return NAN;
	}
	return (double)sessions / (double)up_max;
}

/* scur is an instant: a client between two requests is not counted. The
 * mean of SCUR_SAMPLES samples over a second is what the decision sees,
 * as HPA sees an average over metrics-server's window. */
#define SCUR_SAMPLES 10
static double metric_scur(const step_env *env, char *why, size_t whylen)
{
	double sum = 0;
	int n = 0;
	for (int i = 0; i < SCUR_SAMPLES; i++) {
		if (i)
			usleep(1000000 / SCUR_SAMPLES);
		double v = scur_sample(env, why, whylen);
		if (!isnan(v)) {
			sum += v;
			n++;
		}
	}
	return n ? sum / n : NAN;
}

/* Requests arriving at the backend per second and per serving server that
 * is up. The backend's sessions counter (stot: one per request in HTTP
 * mode, queued ones included) read twice RATE_WINDOW_MS apart, summed
 * over every HAProxy (behind a VIP only one has traffic), divided by the
 * most serving servers up on any of them. Sessions per server stay near 0
 * for short requests until the servers saturate, then explode, so a pool
 * scaled on them grows only once requests queue (bench/autoscale/lxd); the
 * arrival rate grows with the load, and with a target under what one
 * instance serves at the latency wanted, the pool grows before anything
 * queues, as Knative's "rps" target does. */
#define RATE_WINDOW_MS 1000

typedef struct {
	long stot;      /* the backend's, -1: this HAProxy did not answer */
	size_t up;      /* serving servers up */
} rate_obs;

static void rate_observe(const step_env *env, rate_obs *out, char *why, size_t whylen)
{
	const char *names[MAX_INST];
	size_t nn = serving(env, names, MAX_INST);
	for (size_t l = 0; l < env->n_lbs; l++) {
		iac_haproxy *h = NULL;
		iac_haproxy_stat *rows = NULL;
		size_t nr = 0;
		out[l] = (rate_obs){ -1, 0 };
		if (iac_haproxy_open(&h, iac_json_str(env->lbs[l], "api"), 2000) < 0 ||
		    iac_haproxy_show_stat(&rows, &nr, h, env->backend) < 0) {
			snprintf(why, whylen, "%s", iac_err_last());
			iac_haproxy_free(h);
			continue;
		}
		for (size_t i = 0; i < nr; i++) {
			if (rows[i].type == 1)
				out[l].stot = rows[i].stot > 0 ? rows[i].stot : 0;
			else if (serving_up(&rows[i], names, nn))
				out[l].up++;
		}
		free(rows);
		iac_haproxy_free(h);
	}
	iac_err_clear();
}

static double metric_rate(const step_env *env, char *why, size_t whylen)
{
	rate_obs a[MAX_LBS], b[MAX_LBS];
	double t0 = iac_now_ms();
	rate_observe(env, a, why, whylen);
	usleep(RATE_WINDOW_MS * 1000);
	double secs = (iac_now_ms() - t0) / 1000;
	rate_observe(env, b, why, whylen);
	long arrived = 0;
	size_t answered = 0, up = 0;
	for (size_t l = 0; l < env->n_lbs; l++) {
		if (a[l].stot < 0 || b[l].stot < 0)
			continue;
		answered++;
		/* a reload in between restarts the counter: count from 0 */
		arrived += b[l].stot >= a[l].stot ? b[l].stot - a[l].stot : b[l].stot;
		up = b[l].up > up ? b[l].up : up;
	}
	if (!answered)
		return NAN;
	if (!up) {
		snprintf(why, whylen, "no serving server is up in HAProxy");
		return NAN;
	}
	return (double)arrived / secs / (double)up;
}

static double metric_cpu(const step_env *env, char *why, size_t whylen)
{
	const char *names[MAX_INST];
	const json_t *hosts[MAX_INST];
	size_t nn = serving(env, names, MAX_INST), nh = 0;
	int local = 0;
	for (size_t i = 0; i < nn; i++) {
		const json_t *inst = inst_of(env, names[i]);
		const json_t *h = json_object_get(inst, "host");
		const char *hn = iac_json_str(h, "name");
		if (!hn && local)
			continue;
		size_t j;
		for (j = 0; hn && j < nh && strcmp(iac_json_str(hosts[j], "name") ?: "", hn); j++)
			;
		if (hn && j < nh)
			continue;
		local |= !hn;
		hosts[nh++] = h;
	}
	double pct;
	if (iac_deploy_cpu_mean(&pct, env->ctx->hosts, hosts, nh, 1000) < 0) {
		snprintf(why, whylen, "%s", iac_err_last());
		iac_err_clear();
		return NAN;
	}
	return pct;
}

static double metric_prom(const iac_autoscale_spec *s, char *why, size_t whylen)
{
	iac_probe_prom_opts o = { 0 };
	iac_probe_prom_result r;
	if (!s->prometheus[0]) {
		snprintf(why, whylen, "metric '%.200s' is a PromQL expression but autoscale.prometheus (the URL) is not set",
			 s->metric);
		return NAN;
	}
	o.url = s->prometheus;
	o.query = s->metric;
	o.max = INFINITY;   /* never fails: the largest value is what we want */
	o.min = NAN;
	if (iac_probe_prometheus(&r, &o) < 0 || isnan(r.value)) {
		snprintf(why, whylen, "%s", r.reason[0] ? r.reason : iac_err_last());
		iac_err_clear();
		return NAN;
	}
	return r.value;
}

static double read_metric(const step_env *env, const iac_autoscale_spec *s, char *why, size_t whylen)
{
	why[0] = '\0';
	if (!strcmp(s->metric, "haproxy_scur_per_server"))
		return metric_scur(env, why, whylen);
	if (!strcmp(s->metric, "haproxy_rate_per_server"))
		return metric_rate(env, why, whylen);
	if (!strcmp(s->metric, "cpu"))
		return metric_cpu(env, why, whylen);
	return metric_prom(s, why, whylen);
}

/* ---- acting ------------------------------------------------------------- */

/* Spares are made in parallel threads (scale_up), each of which may note. */
static pthread_mutex_t notes_lk = PTHREAD_MUTEX_INITIALIZER;

static void note(step_env *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(step_env *env, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&notes_lk);
	json_array_append_new(env->notes, json_string(buf));
	pthread_mutex_unlock(&notes_lk);
}

/* Add spare (its pool entry) to every HAProxy of the lb; *added (may be
 * NULL) counts the HAProxy that did not have it yet. */
static int lbs_add(step_env *env, const json_t *spare, int *added)
{
	const char *name = iac_json_str(spare, "name");
	for (size_t l = 0; l < env->n_lbs; l++) {
		iac_haproxy *h = NULL;
		int existed = 0;
		int rc = iac_haproxy_open(&h, iac_json_str(env->lbs[l], "api"), 2000);
		if (rc == 0)
			rc = iac_haproxy_add_server(&existed, h, env->backend, name, iac_json_str(spare, "address"),
						    (long)json_integer_value(json_object_get(spare, "port")), env->opts[l]);
		iac_haproxy_free(h);
		if (rc < 0)
			return rc;
		if (added && !existed)
			(*added)++;
	}
	return 0;
}

/* Sessions on server name over every HAProxy (-1: cannot tell). */
static long lbs_sessions(const step_env *env, const char *name)
{
	long total = 0;
	for (size_t l = 0; l < env->n_lbs; l++) {
		iac_haproxy *h = NULL;
		iac_haproxy_stat *rows = NULL;
		size_t nr = 0;
		if (iac_haproxy_open(&h, iac_json_str(env->lbs[l], "api"), 2000) < 0 ||
		    iac_haproxy_show_stat(&rows, &nr, h, env->backend) < 0) {
			iac_haproxy_free(h);
			return -1;
		}
		const iac_haproxy_stat *r = iac_haproxy_stat_find(rows, nr, env->backend, name);
		if (r)
			total += (r->scur > 0 ? r->scur : 0) + (r->qcur > 0 ? r->qcur : 0);
		free(rows);
		iac_haproxy_free(h);
	}
	return total;
}

/* Drain name on every HAProxy, wait (bounded) for its sessions to end,
 * then delete it everywhere. */
static int lbs_drain_del(step_env *env, const char *name)
{
	const char *one[1] = { name };
	int rc = 0;
	for (size_t l = 0; rc == 0 && l < env->n_lbs; l++) {
		iac_haproxy *h = NULL;
		rc = iac_haproxy_open(&h, iac_json_str(env->lbs[l], "api"), 2000);
		if (rc == 0)
			rc = iac_haproxy_set_state(h, env->backend, one, 1, IAC_HAPROXY_DRAIN);
		iac_haproxy_free(h);
		/* a server that is not there (a reload dropped it) has nothing to drain */
		if (rc < 0 && strstr(iac_err_last(), "No such server")) {
			iac_err_clear();
			rc = 0;
		}
	}
	if (rc < 0)
		return rc;
	double end = iac_now_ms() + env->drain_ms;
	long s;
	while ((s = lbs_sessions(env, name)) != 0 && iac_now_ms() < end && !(env->ctx->cancel && *env->ctx->cancel))
		usleep(100 * 1000);
	if (s != 0)
		note(env, "%s still had %ld session(s) after the drain timeout", name, s);
	for (size_t l = 0; rc == 0 && l < env->n_lbs; l++) {
		iac_haproxy *h = NULL;
		rc = iac_haproxy_open(&h, iac_json_str(env->lbs[l], "api"), 2000);
		/* HAProxy refuses while idle server connections are being closed: try
		 * for a few seconds */
		double del_end = iac_now_ms() + 5000;
		while (rc == 0 && (rc = iac_haproxy_del_server(h, env->backend, name)) < 0 && iac_now_ms() < del_end) {
			usleep(200 * 1000);
			rc = 0;
		}
		iac_haproxy_free(h);
	}
	return rc;
}

/* A spare that is an LXD container (pool entry with "lxd") is made now:
 * a leftover of the same name (a step killed after creating it) removed
 * first, then created, started and reachable; its host's old keys
 * forgotten (a deleted container may have had its address). Returns the
 * instance as it runs (new reference: the entry plus host and address),
 * or for other spares the pool entry itself; NULL on failure (noted). */
static json_t *make_spare(step_env *env, const json_t *spare, json_t **made)
{
	const json_t *spec = json_object_get(spare, "lxd");
	const char *lname = iac_json_str(spec, "name");
	*made = NULL;
	if (!spec)
		return json_incref((json_t *)spare);
	json_t *out = NULL;
	if (!lname || iac_providers_type_remove(env->ctx, "lxd.instance", lname, spec) < 0 ||
	    iac_providers_type_create(&out, env->ctx, "lxd.instance", lname, spec) < 0) {
		note(env, "%s: %s", iac_json_str(spare, "name"), lname ? iac_err_last() : "no LXD instance name");
		iac_err_clear();
		return NULL;
	}
	const char *ip = iac_json_str(out, "address");
	json_t *inst = json_deep_copy(spare);
	json_object_del(inst, "lxd");
	json_object_set_new(inst, "host", json_pack("{s:s,s:s?}", "name", lname, "address", ip));
	json_object_set_new(inst, "address", ip ? json_string(ip) : json_null());
	if (!ip || iac_hosts_renew(env->ctx->hosts, json_object_get(inst, "host")) < 0) {
		note(env, "%s: %s", lname, ip ? iac_err_last() : "the new container has no address");
		iac_err_clear();
		iac_providers_type_remove(env->ctx, "lxd.instance", lname, out);
		json_decref(out);
		json_decref(inst);
		return NULL;
	}
	note(env, "created LXD container %s (%s)", lname, ip);
	*made = out;
	return inst;
}

/* Undo make_spare: the container goes (nothing when not one). */
static void unmake_spare(step_env *env, const char *name, const json_t *made)
{
	const char *lname = iac_json_str(made, "name");
	if (lname && iac_providers_type_remove(env->ctx, "lxd.instance", lname, made) < 0) {
		note(env, "%s: %s", name, iac_err_last());
		iac_err_clear();
	}
}

/* The record of a spare that serves now: what it runs, and for a
 * container, the instance as it runs and LXD's attributes (to delete it). */
static json_t *spare_entry(const step_env *env, const json_t *inst, const json_t *made)
{
	json_t *e = json_pack("{s:s,s:s,s:s,s:f}", "name", iac_json_str(inst, "name"), "colour", env->live, "version",
			      env->version, "since", iac_autoscale_now());
	if (made) {
		json_object_set(e, "inst", (json_t *)inst);
		json_object_set(e, "lxd", (json_t *)made);
	}
	return e;
}

/* Give up on a spare this scale-up started: stop it, delete its container. */
static void drop_started(step_env *env, json_t *inst, json_t *made)
{
	iac_deploy_inst_stop(env->ctx, env->pool, inst, env->version);
	unmake_spare(env, iac_json_str(inst, "name"), made);
	iac_err_clear();
}

/* One spare made ready: its container (if any) made and booted, its app
 * started at the live version. Each runs in a thread of its own: a
 * container takes seconds to create and boot, and made one after the
 * other a step of +2 kept the load waiting for the sum (6.4-7.2 s in
 * bench/autoscale/lxd); in parallel it waits for the slowest. Everything
 * these touch is safe to share: the host layer and the provider registry
 * lock, jansson reads and refcounts, note() locks, errors are per thread. */
typedef struct {
	step_env *env;
	const json_t *cand;
	json_t *inst, *made;   /* out; inst NULL when it failed (noted) */
	pthread_t tid;
	int threaded;
} prep_job;

static void *prep_run(void *arg)
{
	prep_job *j = arg;
	step_env *env = j->env;
	j->inst = make_spare(env, j->cand, &j->made);
	if (j->inst && iac_deploy_inst_start(env->ctx, env->pool, j->inst, env->version) < 0) {
		note(env, "%s", iac_err_last());
		drop_started(env, j->inst, j->made);
		json_decref(j->inst);
		json_decref(j->made);
		j->inst = j->made = NULL;
	}
	iac_err_clear();
	return NULL;
}

/* Start up to n spares of the live colour (making their containers
 * first, all at once), gate them together, add those that pass. Returns
 * how many serve now. */
static int scale_up(step_env *env, int n)
{
	prep_job jobs[MAX_INST];
	json_t *inst[MAX_INST], *made[MAX_INST];
	size_t nc = 0, ns = 0, i;
	const json_t *e;
	json_array_foreach(json_object_get(env->pool, "spares"), i, e)
		if ((int)nc < n && nc < MAX_INST && !strcmp(iac_json_str(e, "colour") ?: "", env->live) &&
		    !is_active(env, iac_json_str(e, "name") ?: ""))
			jobs[nc++] = (prep_job){ .env = env, .cand = e };
	if ((int)nc < n)
		note(env, "only %zu spare(s) of %s left", nc, env->live);
	for (i = 0; i < nc; i++)   /* no thread to be had: made in this one */
		if (!(jobs[i].threaded = pthread_create(&jobs[i].tid, NULL, prep_run, &jobs[i]) == 0))
			prep_run(&jobs[i]);
	for (i = 0; i < nc; i++) {
		if (jobs[i].threaded)
			pthread_join(jobs[i].tid, NULL);
		if (jobs[i].inst) {
			inst[ns] = jobs[i].inst;
			made[ns++] = jobs[i].made;
		}
	}
	json_t *last = json_object();
	int added = 0;
	if (ns && iac_deploy_health_gate(env->ctx, last, json_object_get(env->attrs, "health"),
					 (const json_t **)inst, ns) < 0) {
		/* the gate is all or nothing: stop them all, try again next step */
		note(env, "health gate failed: %s", iac_err_last());
		for (i = 0; i < ns; i++)
			drop_started(env, inst[i], made[i]);
	} else {
		for (i = 0; i < ns; i++) {
			const char *name = iac_json_str(inst[i], "name");
			if (lbs_add(env, inst[i], NULL) < 0) {
				note(env, "cannot add %s to HAProxy: %s", name, iac_err_last());
				lbs_drain_del(env, name);
				drop_started(env, inst[i], made[i]);
				continue;
			}
			json_array_append_new(env->active, spare_entry(env, inst[i], made[i]));
			added++;
		}
	}
	for (i = 0; i < ns; i++) {
		json_decref(inst[i]);
		json_decref(made[i]);
	}
	json_decref(last);
	iac_err_clear();
	return added;
}

/* Take the active spare at index k out: drain, delete, stop. */
static int retire(step_env *env, size_t k)
{
	json_t *sp = json_array_get(env->active, k);
	const char *name = iac_json_str(sp, "name") ?: "?";
	const json_t *inst = inst_of(env, name);
	if (lbs_drain_del(env, name) < 0) {
		note(env, "cannot take %s out of HAProxy: %s", name, iac_err_last());
		iac_err_clear();
		return IAC_ERR;
	}
	/* a container goes as a whole; anything else has its app stopped */
	if (json_object_get(sp, "lxd"))
		unmake_spare(env, name, json_object_get(sp, "lxd"));
	else if (inst && iac_deploy_inst_stop(env->ctx, env->pool, inst, iac_json_str(sp, "version")) < 0)
		note(env, "%s left HAProxy but did not stop: %s", name, iac_err_last());
	iac_err_clear();
	json_array_remove(env->active, k);
	return 0;
}

/* Newest first (last in, first out). Returns how many left. */
static int scale_down(step_env *env, int n)
{
	int removed = 0;
	while (removed < n && json_array_size(env->active) > 0) {
		if (retire(env, json_array_size(env->active) - 1) < 0)
			break;
		removed++;
	}
	return removed;
}

/* A spare HAProxy has seen DOWN for DEAD_S seconds (its checks fail: the
 * instance or its host died behind iac's back) is not serving: it is
 * taken out and replaced, the way a ReplicaSet replaces a dead pod. The
 * first HAProxy that answers decides. Returns how many were replaced. */
#define DEAD_S 5
static int replace_dead(step_env *env)
{
	iac_haproxy *h = NULL;
	iac_haproxy_stat *rows = NULL;
	size_t nr = 0;
	int dead = 0;
	for (size_t l = 0; l < env->n_lbs && !rows; l++) {
		if (iac_haproxy_open(&h, iac_json_str(env->lbs[l], "api"), 2000) < 0 ||
		    iac_haproxy_show_stat(&rows, &nr, h, env->backend) < 0)
			rows = NULL;
		iac_haproxy_free(h);
		h = NULL;
	}
	iac_err_clear();
	for (size_t k = json_array_size(env->active); rows && k-- > 0;) {
		const char *name = iac_json_str(json_array_get(env->active, k), "name") ?: "";
		for (size_t i = 0; i < nr; i++) {
			if (rows[i].type != 2 || strcmp(rows[i].svname, name) || strncmp(rows[i].status, "DOWN", 4) ||
			    rows[i].lastchg < DEAD_S)
				continue;
			note(env, "%s is DOWN in HAProxy for %lds (%s): replacing it", name, rows[i].lastchg,
			     *rows[i].check_desc ? rows[i].check_desc : rows[i].check_status);
			if (retire(env, k) == 0)
				dead++;
			break;
		}
	}
	free(rows);
	if (dead) {
		int added = scale_up(env, dead);
		note(env, "replaced %d dead spare(s) by %d", dead, added);
	}
	return dead;
}

/* A deployment switched colours (or versions) since the spares started:
 * they run the old release. Replace each by a spare of the live colour,
 * and put back in HAProxy any active spare a reload dropped; a spare that
 * died is replaced. */
static void reconcile(step_env *env)
{
	int stale = 0;
	for (size_t k = json_array_size(env->active); k-- > 0;) {
		json_t *sp = json_array_get(env->active, k);
		if (!strcmp(iac_json_str(sp, "colour") ?: "", env->live) &&
		    !strcmp(iac_json_str(sp, "version") ?: "", env->version))
			continue;
		if (retire(env, k) == 0)
			stale++;
	}
	if (stale) {
		int added = scale_up(env, stale);
		note(env, "replaced %d spare(s) of the previous release by %d at %s (%s)", stale, added, env->version,
		     env->live);
	}
	size_t i;
	json_t *sp;
	json_array_foreach(env->active, i, sp) {
		const json_t *inst = inst_of(env, iac_json_str(sp, "name") ?: "");
		int back = 0;
		if (inst && lbs_add(env, inst, &back) < 0) {
			note(env, "cannot put %s back in HAProxy: %s", iac_json_str(sp, "name"), iac_err_last());
			iac_err_clear();
		} else if (back) {
			note(env, "put %s back in %d HAProxy (a reload had dropped it)", iac_json_str(sp, "name"), back);
		}
	}
	replace_dead(env);
}

/* ---- bookkeeping -------------------------------------------------------- */

static size_t points(iac_autoscale_point *out, size_t max, const json_t *arr)
{
	size_t n = 0, i;
	const json_t *p;
	json_array_foreach(arr, i, p)
		if (n < max && json_array_size(p) == 2)
			out[n++] = (iac_autoscale_point){ json_number_value(json_array_get(p, 0)),
							  (int)json_integer_value(json_array_get(p, 1)) };
	return n;
}

/* Keep the points still within `keep` seconds, then add (t, v). */
static json_t *points_push(const json_t *arr, double now, double keep, int v, int add)
{
	json_t *out = json_array();
	size_t i;
	const json_t *p;
	json_array_foreach(arr, i, p)
		if (json_number_value(json_array_get(p, 0)) > now - keep)
			json_array_append(out, (json_t *)p);
	if (add)
		json_array_append_new(out, json_pack("[f,i]", now, v));
	return out;
}

/* The HAProxy config's default-server options for each lb (state's
 * deploy.haproxy entry with the same API address), "check" otherwise. */
static void lb_opts(step_env *env, iac_state *st)
{
	size_t na;
	const char **addrs = iac_state_addresses(st, &na);
	for (size_t l = 0; l < env->n_lbs; l++) {
		const char *api = iac_json_str(env->lbs[l], "api") ?: "";
		for (size_t i = 0; i < na && !env->opts[l]; i++) {
			json_t *e = iac_state_get(st, addrs[i]);
			const json_t *a = json_object_get(e, "attributes");
			if (strcmp(iac_json_str(e, "type") ?: "", "deploy.haproxy") || strcmp(iac_json_str(a, "api") ?: "", api))
				continue;
			if (iac_deploy_haproxy_server_opts(&env->opts[l], a) < 0)
				iac_err_clear();
		}
		if (!env->opts[l])
			env->opts[l] = iac_xstrdup("check");
	}
	free(addrs);
}

/* The step's inputs from the deployment's attributes a and its autoscale
 * record rec (spares it started earlier). */
static void env_init(step_env *env, const iac_rctx *ctx, const json_t *a, const json_t *rec)
{
	env->ctx = ctx;
	env->attrs = a;
	env->pool = json_object_get(a, "pool");
	env->n_lbs = iac_deploy_lbs(env->lbs, MAX_LBS, json_object_get(a, "lb"));
	env->backend = iac_json_str(json_object_get(a, "lb"), "backend") ?: "app";
	env->live = iac_json_str(a, "live");
	env->version = iac_json_str(a, "live_version");
	env->active = json_deep_copy(json_object_get(rec, "spares") ?: json_array());
	env->notes = json_array();
	const char *dt = iac_json_str(a, "drain_timeout");
	if (!dt || iac_duration_parse(&env->drain_ms, dt) < 0)
		env->drain_ms = 30e3;
}

/* Append dec to rec's last KEEP_DECISIONS decisions; it is also "last". */
static void keep_decision(json_t *rec, json_t *dec)
{
	json_t *decs = json_object_get(rec, "decisions");
	if (!json_is_array(decs)) {
		decs = json_array();
		json_object_set_new(rec, "decisions", decs);
	}
	json_array_append(decs, dec);
	while (json_array_size(decs) > KEEP_DECISIONS)
		json_array_remove(decs, 0);
	json_object_set(rec, "last", dec);
}

/* A scaling move goes into the history (a failure there only warns: the
 * move happened). */
static void history_note(iac_state *st, const char *addr, int from, int to, double metric, const char *reason,
			 const char *version)
{
	json_t *ev = json_pack("{s:s,s:s,s:i,s:i,s:f,s:s,s:s}", "command", "autoscale", "deployment", addr, "from", from,
			       "to", to, "metric", isnan(metric) ? -1.0 : metric, "reason", reason, "version", version);
	if (iac_history_add(st, ev) < 0)
		iac_log_warn("%s: history: %s", addr, iac_err_last());
}

int iac_autoscale_step(json_t **out, iac_state *st, const iac_rctx *ctx, const char *addr, double now)
{
	json_t *e = iac_state_get(st, addr);
	const json_t *a = json_object_get(e, "attributes");
	json_t *all = json_deep_copy(iac_state_extra(st, "autoscale") ?: json_object());
	json_t *rec = json_object_get(all, addr);
	iac_autoscale_spec spec;
	iac_autoscale_decision d;
	step_env env = { 0 };
	char when[32], why[512];

	*out = NULL;
	if (!json_is_object(rec)) {
		rec = json_object();
		json_object_set_new(all, addr, rec);
	}
	env_init(&env, ctx, a, rec);
	iac_time_rfc3339(when, sizeof(when));

	if (iac_autoscale_spec_parse(&spec, json_object_get(env.pool, "autoscale")) < 0) {
		iac_err_prefix("%s", addr);
		goto fail;
	}
	if (!env.live || !env.version) {
		iac_err_set("%s: not deployed yet (no live colour): nothing to scale", addr);
		goto fail;
	}
	lb_opts(&env, st);
	reconcile(&env);

	double metric = read_metric(&env, &spec, why, sizeof(why));
	const char *names[MAX_INST];
	int current = (int)serving(&env, names, MAX_INST);
	iac_autoscale_point recs[256], evs[256];
	iac_autoscale_input in = { &spec, current, metric, now, recs, points(recs, 256, json_object_get(rec, "recs")),
				   evs, points(evs, 256, json_object_get(rec, "events")) };
	iac_autoscale_decide(&d, &in);

	int base = current - (int)json_array_size(env.active), moved = 0;
	if (d.desired > current)
		moved = scale_up(&env, d.desired - current);
	else if (d.desired < current)
		moved = -scale_down(&env, current - (d.desired > base ? d.desired : base));
	int now_serving = current + moved;

	double keep_recs = fmax(spec.down_stabilization, spec.up_stabilization) + 1;
	double keep_evs = fmax(spec.up_period, spec.down_period) + 1;
	json_object_set_new(rec, "recs", points_push(json_object_get(rec, "recs"), now, keep_recs, d.recommendation,
						      d.record));
	json_object_set_new(rec, "events", points_push(json_object_get(rec, "events"), now, keep_evs, moved, moved != 0));
	json_object_set(rec, "spares", env.active);
	json_t *dec = json_pack("{s:s,s:s,s:f,s:s,s:o,s:f,s:i,s:i,s:i,s:i,s:s,s:O}", "deployment", addr, "at", when,
				"t", now, "metric", spec.metric, "value", isnan(metric) ? json_null() : json_real(round(metric * 1000) / 1000),
				"target", spec.target, "current", current, "recommendation", d.recommendation,
				"desired", d.desired, "serving", now_serving, "reason", d.reason, "notes", env.notes);
	if (why[0] && isnan(metric))
		json_object_set_new(dec, "metric_error", json_string(why));
	if (moved)
		json_object_set_new(dec, "action", json_sprintf("%s %d -> %d", moved > 0 ? "scaled up" : "scaled down",
								current, now_serving));
	keep_decision(rec, dec);
	if (iac_state_set_extra(st, "autoscale", all) < 0) {
		json_decref(dec);
		goto done;
	}
	all = NULL;
	*out = dec;
	if (moved)
		history_note(st, addr, current, now_serving, metric, d.reason, env.version);
	goto done;
fail:
	*out = json_pack("{s:s,s:s,s:f,s:s}", "deployment", addr, "at", when, "t", now, "error", iac_err_last());
done:
	for (size_t l = 0; l < env.n_lbs; l++)
		free(env.opts[l]);
	json_decref(env.active);
	json_decref(env.notes);
	json_decref(all);
	return *out ? 0 : IAC_ERR;
}
