/* lt_tally: a worker's figures (see engine_int.h).
 *
 * A worker counts into its own w->d without locking; when the second
 * changes, lt_tally_flush adds d into the run's total and into the slot of
 * the second it belongs to, under run->mu, then clears it. That is the
 * only data that crosses threads while the run goes on: the main thread
 * reads the slots of seconds every worker is past (w->done_sec).
 */
#include "iac/loadtest/engine_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "iac/core/util.h"

iac_lt_second *lt_tally_slot(iac_lt_run *run, long s)
{
	if ((size_t)s >= run->nsecs) {
		size_t n = (size_t)s + 1;
		run->secs = iac_xrealloc(run->secs, n * sizeof(*run->secs));
		for (size_t i = run->nsecs; i < n; i++) {
			iac_lt_second *x = &run->secs[i];
			memset(x, 0, sizeof(*x));
			x->hap_qcur = x->hap_scur = x->hap_rtime_ms = x->hap_rate = NAN;
			for (int k = 0; k < IAC_LT_HAP_SERVERS; k++)
				x->srv_rtime_ms[k] = NAN;
			x->cpu_pct = x->wait_pct = NAN;
			/* a second whose requests all failed has no latency */
			x->p50_ms = x->p90_ms = x->p99_ms = x->max_ms = NAN;
			x->vus = -1;
		}
		run->nsecs = n;
	}
	return &run->secs[s];
}

/* The latency of the first IAC_LT_CHART_EPS endpoints (by their index in
 * the run's total, which every thread shares) in second x; run->mu held.
 * Once a second per endpoint: a map lookup and a histogram merge. */
static void tally_endpoints(iac_lt_run *run, iac_lt_second *x, const iac_lt_stats *d)
{
	for (size_t i = 0; i < d->neps; i++) {
		const iac_lt_endpoint *e = d->eps[i];
		if (!e->hist.count)
			continue;
		size_t ti = iac_lt_stats_endpoint(&run->total, e->name);
		if (ti >= IAC_LT_CHART_EPS)
			continue;
		if (!x->ep_hist[ti]) {
			x->ep_hist[ti] = iac_xmalloc(sizeof(*x->ep_hist[ti]));
			iac_lt_hist_init(x->ep_hist[ti]);
		}
		iac_lt_hist_merge(x->ep_hist[ti], &e->hist);
	}
}

void lt_tally_flush(iac_lt_worker *w, long now_sec)
{
	iac_lt_run *run = w->run;
	iac_lt_stats *d = &w->d;
	int any = d->requests || d->iterations || d->dropped || d->script_errors || d->nchecks || d->nmacc;
	int active = atomic_load(&w->active);
	int peak = active > w->active_peak ? active : w->active_peak;
	if (any || peak) {
		pthread_mutex_lock(&run->mu);
		iac_lt_stats_merge(&run->total, d);
		iac_lt_second *x = lt_tally_slot(run, w->dsec);
		/* the most VUs this worker ran at once in the second */
		x->vus = (x->vus < 0 ? 0 : x->vus) + peak;
		x->requests += d->requests;
		x->failed += d->failed;
		x->dropped += d->dropped;
		x->iterations += d->iterations;
		if (!x->final && d->hist.count) {
			if (!x->hist) {
				x->hist = iac_xmalloc(sizeof(*x->hist));
				iac_lt_hist_init(x->hist);
			}
			iac_lt_hist_merge(x->hist, &d->hist);
		}
		if (!x->final)
			tally_endpoints(run, x, d);
		pthread_mutex_unlock(&run->mu);
		iac_lt_stats_clear(d);
	}
	w->active_peak = active;
	w->dsec = now_sec;
	atomic_store(&w->done_sec, now_sec);
}

/* The value of tag k on vu's request (NULL: the request has no such tag):
 * the flow's own tags first, then k6's defaults. num holds a status. */
static const char *req_tag(lt_vu *vu, const char *k, int status, int failed, char num[16])
{
	for (int i = 0; i < vu->ntags; i++)
		if (!strcmp(vu->tagk[i], k))
			return vu->tagv[i];
	if (!strcmp(k, "name"))
		return vu->w->d.eps[vu->ep]->name;
	if (!strcmp(k, "method"))
		return vu->method;
	if (!strcmp(k, "status")) {
		snprintf(num, 16, "%d", status);
		return num;
	}
	if (!strcmp(k, "scenario"))
		return vu->w->run->cfg->scenarios[vu->scen].name;
	if (!strcmp(k, "group"))
		return iac_buf_cstr(&vu->group);
	if (!strcmp(k, "expected_response"))
		return failed ? "false" : "true";
	return NULL;
}

/* Metric `name` of w's figures (made when new: take the index first,
 * the array may move). */
static iac_lt_macc *macc_of(iac_lt_stats *d, const char *name, int type)
{
	size_t i = iac_lt_stats_metric(d, name, (enum iac_lt_mtype)type);
	return &d->macc[i];
}

/* The request's sub-metrics (thresholds by tag); status 0: no response. */
static void tally_subs(lt_vu *vu, int status, int failed, uint64_t us)
{
	const iac_lt_config *cfg = vu->w->run->cfg;
	iac_lt_stats *d = &vu->w->d;
	char num[16];
	for (size_t i = 0; i < cfg->nsubs; i++) {
		const iac_lt_sub *s = &cfg->subs[i];
		if (s->kind == IAC_LT_SUB_CUSTOM || (s->kind == IAC_LT_SUB_DURATION && !status))
			continue;
		int match = 1;
		for (size_t t = 0; t < s->ntags && match; t++) {
			const char *v = req_tag(vu, s->tagk[t], status, failed, num);
			match = v && !strcmp(v, s->tagv[t]);
		}
		if (!match)
			continue;
		iac_lt_macc *m = macc_of(d, s->acc, s->type);
		double v = s->kind == IAC_LT_SUB_DURATION ? (double)us / 1e3 : s->kind == IAC_LT_SUB_FAILED ? failed : 1;
		iac_lt_macc_add(m, v, vu->w->now);
	}
}

void lt_tally_metric(lt_vu *vu, const char *name, int type, double v, const char *const *k, const char *const *val,
		     int n)
{
	iac_lt_worker *w = vu->w;
	lt_tally_at(w);
	iac_lt_stats *d = &w->d;
	iac_lt_macc_add(macc_of(d, name, type), v, w->now);
	const iac_lt_config *cfg = w->run->cfg;
	for (size_t i = 0; i < cfg->nsubs; i++) {
		const iac_lt_sub *s = &cfg->subs[i];
		if (s->kind != IAC_LT_SUB_CUSTOM || strcmp(s->metric, name))
			continue;
		int match = 1;
		for (size_t t = 0; t < s->ntags && match; t++) {
			const char *tv = NULL;
			for (int j = 0; j < n && !tv; j++)
				if (!strcmp(k[j], s->tagk[t]))
					tv = val[j];
			if (!tv && !strcmp(s->tagk[t], "scenario"))
				tv = cfg->scenarios[vu->scen].name;
			if (!tv && !strcmp(s->tagk[t], "group"))
				tv = iac_buf_cstr(&vu->group);
			match = tv && !strcmp(tv, s->tagv[t]);
		}
		if (match)
			iac_lt_macc_add(macc_of(d, s->acc, type), v, w->now);
	}
}

void lt_tally_group(lt_vu *vu, const char *path, double ms)
{
	iac_lt_worker *w = vu->w;
	lt_tally_at(w);
	char name[600];
	snprintf(name, sizeof(name), "group_duration{group:%s}", path);
	iac_lt_stats *d = &w->d;
	iac_lt_macc_add(macc_of(d, name, IAC_LT_TREND), ms, w->now);
}

void lt_tally_response(lt_vu *vu, int status, uint64_t us)
{
	iac_lt_worker *w = vu->w;
	lt_tally_at(w);
	iac_lt_stats *d = &w->d;
	iac_lt_endpoint *e = d->eps[vu->ep];
	d->requests++;
	e->requests++;
	iac_lt_hist_record(&d->hist, us);
	iac_lt_hist_record(&e->hist, us);
	int bad = 1;   /* a status past 599 is no HTTP/1.1 success */
	if (status >= 0 && status < 600) {
		d->status[status]++;
		/* k6's expected statuses: 200-399 unless the scenario says otherwise */
		bad = w->run->cfg->failed_status[status];
	}
	if (bad) {
		d->failed++;
		e->failed++;
	}
	if (w->run->cfg->nsubs)
		tally_subs(vu, status, bad, us);
}

void lt_tally_failure(lt_vu *vu, enum iac_lt_errkind k)
{
	iac_lt_worker *w = vu->w;
	lt_tally_at(w);
	iac_lt_stats *d = &w->d;
	d->requests++;
	d->failed++;
	d->transport[k]++;
	d->eps[vu->ep]->requests++;
	d->eps[vu->ep]->failed++;
	if (w->run->cfg->nsubs)
		tally_subs(vu, 0, 1, 0);
}

void lt_tally_tls(lt_vu *vu, uint64_t us, int resumed)
{
	iac_lt_worker *w = vu->w;
	lt_tally_at(w);
	w->d.tls_handshakes++;
	w->d.tls_resumed += resumed != 0;
	iac_lt_hist_record(&w->d.tls_hist, us);
}

void lt_tally_tls_error(lt_vu *vu, const char *msg)
{
	lt_tally_at(vu->w);
	iac_lt_stats_tls_error(&vu->w->d, msg);
}

void lt_tally_check(iac_lt_worker *w, const char *name, int ok)
{
	lt_tally_at(w);
	size_t i = iac_lt_stats_check(&w->d, name);   /* may move w->d.checks */
	iac_lt_check *c = &w->d.checks[i];
	if (ok)
		c->pass++;
	else
		c->fail++;
}

size_t lt_tally_endpoint(iac_lt_worker *w, const char *method, const char *path, const char *name)
{
	if (name)
		return iac_lt_stats_endpoint(&w->d, name);
	/* without a name, requests group by method and path without the query */
	char key[512];
	size_t pl = strcspn(path, "?#");
	snprintf(key, sizeof(key), "%s %.*s", method, (int)(pl > 400 ? 400 : pl), path);
	return iac_lt_stats_endpoint(&w->d, key);
}
