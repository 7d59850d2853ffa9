/* lt_report: thresholds, validity, summary, JSON and HTML (see report.h). */
#include "iac/loadtest/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/loadtest/observe.h"

/* ---- thresholds ---------------------------------------------------- */

static double hist_ms(const iac_lt_hist *h, enum iac_lt_metric m, double pct)
{
	switch (m) {
	case IAC_LT_M_PCT: return (double)iac_lt_hist_percentile(h, pct) / 1e3;
	case IAC_LT_M_AVG: return iac_lt_hist_mean(h) / 1e3;
	case IAC_LT_M_MIN: return (double)h->min / 1e3;
	case IAC_LT_M_MED: return (double)iac_lt_hist_percentile(h, 50) / 1e3;
	case IAC_LT_M_MAX: return (double)h->max / 1e3;
	default: return NAN;
	}
}

/* A k6-form aggregate of a kept metric (NaN without samples). */
static double macc_value(const iac_lt_macc *m, enum iac_lt_metric agg, double pct, double el)
{
	if (!m || !m->n)
		return agg == IAC_LT_M_COUNT || agg == IAC_LT_M_PER_SEC ? 0 : NAN;
	switch (m->type) {
	case IAC_LT_COUNTER:
		return agg == IAC_LT_M_PER_SEC ? (el > 0 ? m->sum / el : 0) : m->sum;
	case IAC_LT_GAUGE:
		return agg == IAC_LT_M_MIN ? m->min : agg == IAC_LT_M_MAX ? m->max : m->last;
	case IAC_LT_RATE:
		return (double)m->nonzero / (double)m->n;
	case IAC_LT_TREND:
		if (agg == IAC_LT_M_COUNT)
			return (double)m->n;
		return m->hist ? hist_ms(m->hist, agg, pct) : NAN;
	}
	return NAN;
}

/* A k6-form aggregate of a built-in total (no tags). */
static double builtin_value(const char *name, enum iac_lt_metric agg, double pct, const iac_lt_stats *s, double el)
{
	double count = NAN;
	if (!strcmp(name, "http_req_duration"))
		return agg == IAC_LT_M_COUNT ? (double)s->hist.count : s->hist.count ? hist_ms(&s->hist, agg, pct) : NAN;
	if (!strcmp(name, "http_req_failed"))
		return s->requests ? (double)s->failed / (double)s->requests : NAN;
	if (!strcmp(name, "checks")) {
		uint64_t p = 0, f = 0;
		for (size_t c = 0; c < s->nchecks; c++) {
			p += s->checks[c].pass;
			f += s->checks[c].fail;
		}
		return p + f ? (double)p / (double)(p + f) : NAN;
	}
	if (!strcmp(name, "http_reqs"))
		count = (double)s->requests;
	else if (!strcmp(name, "iterations"))
		count = (double)s->iterations;
	else if (!strcmp(name, "dropped_iterations"))
		count = (double)s->dropped;
	if (agg == IAC_LT_M_PER_SEC)
		return el > 0 ? count / el : 0;
	return count;
}

/* k6's form: every condition on its own aggregate; the value shown is the
 * first failing condition's, else the first one's. */
static void eval_k6(iac_lt_threshold *t, const iac_lt_stats *s, double el)
{
	const iac_lt_macc *m = t->acc ? iac_lt_stats_find_metric(s, t->acc) : NULL;
	t->ok = 1;
	t->have_value = 0;
	for (size_t c = 0; c < t->nconds; c++) {
		double v = t->acc ? macc_value(m, t->caggs[c], t->cpcts[c], el)
				  : builtin_value(t->mname, t->caggs[c], t->cpcts[c], s, el);
		/* no data is a failure: a threshold must never pass by accident */
		int ok = !isnan(v) && iac_lt_cond_holds(t->ops[c], v, t->limits[c]);
		if (c == 0 || (t->ok && !ok)) {
			t->value = v;
			t->have_value = !isnan(v);
			t->metric = t->caggs[c];
		}
		t->ok &= ok;
	}
}

size_t iac_lt_thresholds_eval(iac_lt_threshold *ts, size_t n, const iac_lt_stats *s, double elapsed_s)
{
	size_t failed = 0;
	for (size_t i = 0; i < n; i++) {
		iac_lt_threshold *t = &ts[i];
		if (t->mname) {
			eval_k6(t, s, elapsed_s);
			failed += !t->ok;
			continue;
		}
		const iac_lt_hist *h = &s->hist;
		uint64_t reqs = s->requests, fails = s->failed;
		t->have_value = 1;
		if (t->endpoint) {
			const iac_lt_endpoint *e = iac_lt_stats_find_endpoint(s, t->endpoint);
			if (!e) {
				t->have_value = 0;
			} else {
				h = &e->hist;
				reqs = e->requests;
				fails = e->failed;
			}
		}
		double v = NAN;
		if (t->have_value) {
			switch (t->metric) {
			case IAC_LT_M_PCT:
			case IAC_LT_M_AVG:
			case IAC_LT_M_MIN:
			case IAC_LT_M_MED:
			case IAC_LT_M_MAX:
				if (h->count)
					v = hist_ms(h, t->metric, t->pct);
				break;
			case IAC_LT_M_ERROR_RATE:
			case IAC_LT_M_HTTP_REQ_FAILED:
				if (reqs)
					v = (double)fails / (double)reqs;
				break;
			case IAC_LT_M_CHECKS: {
				uint64_t p = 0, f = 0;
				for (size_t c = 0; c < s->nchecks; c++) {
					p += s->checks[c].pass;
					f += s->checks[c].fail;
				}
				if (p + f)
					v = (double)p / (double)(p + f);
				break;
			}
			case IAC_LT_M_RPS:
				v = elapsed_s > 0 ? (double)reqs / elapsed_s : 0;
				break;
			case IAC_LT_M_REQUESTS: v = (double)reqs; break;
			case IAC_LT_M_ERRORS: v = (double)fails; break;
			case IAC_LT_M_DROPPED: v = (double)s->dropped; break;
			case IAC_LT_M_ITERATIONS: v = (double)s->iterations; break;
			default: break;   /* k6's aggregates: eval_k6 */
			}
		}
		/* no data is a failure: a threshold must never pass by accident */
		t->have_value = !isnan(v);
		t->value = v;
		t->ok = t->have_value;
		for (size_t c = 0; c < t->nconds && t->ok; c++)
			if (!iac_lt_cond_holds(t->ops[c], v, t->limits[c]))
				t->ok = 0;
		failed += !t->ok;
	}
	return failed;
}

/* ---- judging ------------------------------------------------------- */

static void fmt_int(char *out, size_t n, double v)
{
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "%.0f", v);
	size_t len = strlen(tmp), o = 0;
	size_t start = tmp[0] == '-' ? 1 : 0;
	for (size_t i = 0; i < len && o + 2 < n; i++) {
		if (i > start && (len - i) % 3 == 0)
			out[o++] = ',';
		out[o++] = tmp[i];
	}
	out[o] = 0;
}

/* The longest run of consecutive seconds with a value above a limit, and the
 * series' peak and mean. A second without a sample (NaN) neither extends nor
 * breaks a run: a missed sample says nothing about the load. */
typedef struct {
	size_t start, len;   /* the longest run (the first one when tied) */
	double max;          /* 0 when no second was sampled */
	double sum;
	size_t n;            /* seconds sampled */
} sec_run;

static double sec_cpu(const iac_lt_second *x)
{
	return x->cpu_pct;
}

static double sec_wait(const iac_lt_second *x)
{
	return x->wait_pct;
}

static void longest_run_above(sec_run *out, const iac_lt_result *r, double (*get)(const iac_lt_second *),
			      double limit)
{
	size_t run = 0;
	memset(out, 0, sizeof(*out));
	for (size_t s = 0; s < r->nsecs; s++) {
		double v = get(&r->secs[s]);
		if (isnan(v))
			continue;
		out->sum += v;
		out->n++;
		if (v > out->max)
			out->max = v;
		if (v > limit) {
			if (++run > out->len) {
				out->len = run;
				out->start = s + 1 - run;
			}
		} else {
			run = 0;
		}
	}
}

/* The load generator's own CPU: two seconds in a row above 90 % of the
 * cores it may use means the figures measure iac, not the target. */
static void judge_cpu(iac_lt_result *r)
{
	sec_run cpu;
	longest_run_above(&cpu, r, sec_cpu, 90.0);
	r->cpu_max_pct = cpu.max;
	r->cpu_avg_pct = cpu.n ? cpu.sum / (double)cpu.n : NAN;
	if (cpu.len >= 2) {
		r->valid = 0;
		char *m = iac_xasprintf("the load generator used more than 90%% of its %d core%s for %zu s "
					"(from t=%zu s, peak %.0f%%): it was the bottleneck, so latency and "
					"throughput describe iac rather than the target; use more threads or "
					"another machine",
					r->cores, r->cores == 1 ? "" : "s", cpu.len, cpu.start, cpu.max);
		iac_strlist_push(&r->invalid, m);
		free(m);
	} else if (cpu.max > 90.0) {
		iac_strlist_push(&r->notes, "the load generator's CPU went above 90% for a second");
	}
}

/* Starved rather than saturated: the cores were busy with other processes,
 * so every request waited for the scheduler too. */
static void judge_wait(iac_lt_result *r)
{
	sec_run wait;
	longest_run_above(&wait, r, sec_wait, 20.0);
	r->wait_max_pct = wait.max;
	if (wait.len >= 2) {
		r->valid = 0;
		char *m = iac_xasprintf("the load generator's threads waited for a CPU more than 20%% of the time for "
					"%zu s (from t=%zu s, peak %.0f%%): other processes held the cores, so "
					"latency includes scheduling delays and throughput is capped by them",
					wait.len, wait.start, wait.max);
		iac_strlist_push(&r->invalid, m);
		free(m);
	}
}

/* insecure_skip_tls_verify: said in every report, as loudly as it can */
#define TLS_INSECURE_NOTE "TLS certificate verification was OFF (insecure_skip_tls_verify): " \
	"the server's identity was not checked"

/* The run spoke https (or was set up to): the reports show its TLS. */
static int tls_used(const iac_lt_result *r)
{
	const iac_lt_config *cfg = r->cfg;
	return r->total->tls_handshakes || r->total->transport[IAC_LT_E_TLS] || cfg->tls_insecure ||
	       cfg->tls_ca_file || cfg->tls_server_name || (cfg->target && !strncmp(cfg->target, "https://", 8));
}

/* The most frequent reason TLS failed, NULL when it never did. */
static const char *tls_top_error(const iac_lt_stats *s)
{
	size_t best = SIZE_MAX;
	for (size_t i = 0; i < s->ntls_msgs; i++)
		if (s->tls_counts[i] && (best == SIZE_MAX || s->tls_counts[i] > s->tls_counts[best]))
			best = i;
	return best == SIZE_MAX ? NULL : s->tls_msgs[best];
}

static void judge_notes(iac_lt_result *r)
{
	if (r->total->dropped) {
		char n[32];
		fmt_int(n, sizeof(n), (double)r->total->dropped);
		char *m = iac_xasprintf("%s iterations were dropped: no free VU when they were due (raise max_vus)", n);
		iac_strlist_push(&r->notes, m);
		free(m);
	}
	if (r->total->script_errors)
		iac_strlist_push(&r->notes, "the scenario raised errors; see 'script errors'");
	if (r->cfg->tls_insecure)
		iac_strlist_push(&r->notes, TLS_INSECURE_NOTE);
}

/* HAProxy starting to queue is saturation too, even if p99 held: the first
 * second with a queue, or nsecs. */
static size_t queue_start(const iac_lt_result *r)
{
	for (size_t s = 0; s < r->nsecs; s++)
		if (!isnan(r->secs[s].hap_qcur) && r->secs[s].hap_qcur >= 1)
			return s;
	return r->nsecs;
}

/* "Where it saturated", at whichever of the p99 knee (at) and the queue
 * (qat) came first, with what the server side looked like then. */
static char *saturation_note(const iac_lt_result *r, const double *p99, double base, size_t at, size_t qat)
{
	iac_buf b = IAC_BUF_INIT;
	size_t s = at < qat ? at : qat;
	const iac_lt_second *x = &r->secs[s];
	char rps[32];
	fmt_int(rps, sizeof(rps), (double)x->requests);
	if (at <= qat)
		iac_buf_printf(&b, "p99 rose from %.1f ms to %.1f ms at t=%zu s, at %s rps with %d VUs", base,
			       p99[at], at, rps, x->vus);
	else
		iac_buf_printf(&b, "HAProxy began to queue at t=%zu s (queue %.0f), at %s rps with %d VUs", qat,
			       x->hap_qcur, rps, x->vus);
	if (!isnan(x->hap_qcur) && at <= qat)
		iac_buf_printf(&b, "; HAProxy queue %.0f, %.0f sessions, backend response time %.0f ms", x->hap_qcur,
			       x->hap_scur, x->hap_rtime_ms);
	else if (!isnan(x->hap_qcur))
		iac_buf_printf(&b, "; %.0f sessions, backend response time %.0f ms", x->hap_scur, x->hap_rtime_ms);
	for (size_t h = 0; r->hosts && h < r->hosts->n; h++)
		if (x->host_cpu && !isnan(x->host_cpu[h]))
			iac_buf_printf(&b, "; host %s at %.0f%% CPU", r->hosts->items[h], x->host_cpu[h]);
	if (!isnan(x->cpu_pct) && x->cpu_pct > 90)
		iac_buf_printf(&b, "; the load generator itself was at %.0f%% CPU", x->cpu_pct);
	return iac_buf_detach(&b);
}

static void judge_saturation(iac_lt_result *r)
{
	free(r->saturation);
	r->saturation = NULL;
	/* too short to have an early level to leave */
	if (r->nsecs < 4)
		return;
	size_t n = r->nsecs;
	double *p99 = iac_xmalloc(n * sizeof(*p99));
	for (size_t s = 0; s < n; s++)
		p99[s] = r->secs[s].requests ? r->secs[s].p99_ms : NAN;
	double base;
	size_t at = iac_lt_p99_knee(&base, p99, n);   /* findings.h */
	size_t qat = queue_start(r);
	if (at != n || qat != n)
		r->saturation = saturation_note(r, p99, base, at, qat);
	free(p99);
}

/* The run's series as findings.h takes them (plain arrays of seconds). */
static void judge_findings(iac_lt_result *r)
{
	size_t n = r->nsecs, nh = r->hosts ? r->hosts->n : 0, ns = r->servers ? r->servers->n : 0;
	iac_lt_findings_free(r->findings, r->nfindings);
	r->findings = NULL;
	r->nfindings = 0;
	if (n < 4)
		return;
	double *buf = iac_xmalloc((4 + nh + ns) * n * sizeof(double));
	double *p99 = buf, *cpu = buf + n, *wait = buf + 2 * n, *q = buf + 3 * n;
	const double **hc = iac_xcalloc(nh + 1, sizeof(*hc)), **rt = iac_xcalloc(ns + 1, sizeof(*rt));
	for (size_t s = 0; s < n; s++) {
		const iac_lt_second *x = &r->secs[s];
		p99[s] = x->requests ? x->p99_ms : NAN;
		cpu[s] = x->cpu_pct;
		wait[s] = x->wait_pct;
		q[s] = x->hap_qcur;
		for (size_t h = 0; h < nh; h++)
			buf[(4 + h) * n + s] = x->host_cpu ? x->host_cpu[h] : NAN;
		for (size_t k = 0; k < ns; k++)
			buf[(4 + nh + k) * n + s] = x->srv_rtime_ms[k];
	}
	for (size_t h = 0; h < nh; h++)
		hc[h] = buf + (4 + h) * n;
	for (size_t k = 0; k < ns; k++)
		rt[k] = buf + (4 + nh + k) * n;
	size_t ndb = 0;
	const char *lagging = NULL;
	double *lag = iac_lt_dbs_lag(&ndb, &lagging, r->dbs);
	if (lag && ndb < n) {   /* the database's series may be shorter than the run's */
		lag = iac_xrealloc(lag, n * sizeof(*lag));
		for (size_t s = ndb; s < n; s++)
			lag[s] = NAN;
	}
	iac_lt_signals sig = { .n = n, .p99_ms = p99, .client_cpu = cpu, .client_wait = wait,
			       .db_lag_bytes = lag, .db_lagging = lagging,
			       .lb_queue = r->haproxy ? q : NULL, .nhosts = nh,
			       .host = nh ? (const char *const *)r->hosts->items : NULL, .host_cpu = hc,
			       .nservers = ns, .server = ns ? (const char *const *)r->servers->items : NULL,
			       .server_rtime = rt };
	r->nfindings = iac_lt_findings(&r->findings, &sig);
	free(lag);
	free(hc);
	free(rt);
	free(buf);
}

void iac_lt_result_judge(iac_lt_result *r)
{
	r->valid = 1;
	judge_cpu(r);
	judge_wait(r);
	judge_notes(r);
	judge_saturation(r);
	judge_findings(r);
}

static void errors_by_kind(iac_buf *b, const iac_lt_config *cfg, const iac_lt_stats *s, const char *sep);

/* At least max_failed of the requests failed: whatever the thresholds say,
 * the figures describe failures (a refused connection is not throughput).
 * Mostly no response at all: the target did not answer; mostly HTTP
 * errors: it answered, with errors. */
static char *failed_requests_msg(const iac_lt_result *r)
{
	const iac_lt_stats *s = r->total;
	if (!s->requests || (double)s->failed < r->cfg->max_failed * (double)s->requests)
		return NULL;
	uint64_t transport = 0;
	for (int k = 0; k < IAC_LT_NERR; k++)
		transport += s->transport[k];
	char n[32], m[32];
	fmt_int(n, sizeof(n), (double)s->failed);
	fmt_int(m, sizeof(m), (double)s->requests);
	iac_buf kinds = IAC_BUF_INIT;
	errors_by_kind(&kinds, r->cfg, s, ", ");
	char *msg = iac_xasprintf("%s: %s of %s requests failed (%s)",
				  2 * transport >= s->failed ? "the target did not answer" : "too many requests failed",
				  n, m, iac_buf_cstr(&kinds));
	iac_buf_free(&kinds);
	return msg;
}

void iac_lt_result_decide(iac_lt_result *r, size_t thresholds_failed)
{
	r->thresholds_failed = thresholds_failed;
	free(r->failed_msg);
	r->failed_msg = failed_requests_msg(r);
	r->exit_code = r->failed_msg ? IAC_LT_EXIT_FAILED : thresholds_failed ? IAC_LT_EXIT_THRESHOLDS : 0;
}

void iac_lt_result_free(iac_lt_result *r)
{
	iac_strlist_free(&r->invalid);
	iac_strlist_free(&r->notes);
	free(r->saturation);
	r->saturation = NULL;
	free(r->failed_msg);
	r->failed_msg = NULL;
	iac_lt_findings_free(r->findings, r->nfindings);
	r->findings = NULL;
	r->nfindings = 0;
}

/* ---- terminal ------------------------------------------------------ */

static void fmt_bytes(char *out, size_t n, double v)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(out, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

/* Percentile pct of h in ms ("max" for 100), or "-" when h has no sample. */
static const char *fmt_ms(char *out, size_t n, const iac_lt_hist *h, double pct)
{
	if (!h->count)
		snprintf(out, n, "-");
	else
		snprintf(out, n, "%.2f", (double)(pct >= 100 ? h->max : iac_lt_hist_percentile(h, pct)) / 1e3);
	return out;
}

static void fmt_cond(char *out, size_t n, const iac_lt_threshold *t)
{
	size_t o = 0;
	out[0] = 0;
	for (size_t c = 0; c < t->nconds && o < n; c++)
		o += (size_t)snprintf(out + o, n - o, "%s%s", c ? ", " : "", t->conds[c]);
}

/* The unit of a threshold's value: a gauge's and a plain trend's numbers
 * have none. */
static const char *threshold_unit(const iac_lt_threshold *t)
{
	if (t->mname && (t->plain || t->mtype == IAC_LT_GAUGE) && t->metric != IAC_LT_M_PER_SEC)
		return "";
	return iac_lt_metric_unit(t->metric);
}

static void fmt_value(char *out, size_t n, const iac_lt_threshold *t)
{
	if (!t->have_value) {
		if (t->endpoint && t->metric != IAC_LT_M_RPS)
			snprintf(out, n, "no data (no request named '%s')", t->endpoint);
		else if (t->mname)
			snprintf(out, n, "no data (no sample of '%s')", t->acc ? t->acc : t->mname);
		else
			snprintf(out, n, "no data");
		return;
	}
	const char *unit = threshold_unit(t);
	if (!*unit && t->mname)
		snprintf(out, n, "%.15g", t->value);
	else if (!strcmp(unit, "%"))
		snprintf(out, n, "%.2f%%", t->value * 100);
	else if (!strcmp(unit, "ms"))
		snprintf(out, n, "%.2fms", t->value);
	else if (!strcmp(unit, "/s"))
		snprintf(out, n, "%.1f/s", t->value);
	else
		snprintf(out, n, "%.0f", t->value);
}

/* "threshold 'p(99)' failed: 312.00ms (< 250ms)"; the caller frees it. */
static char *threshold_failure(const iac_lt_threshold *t)
{
	char cond[200], val[160];
	fmt_cond(cond, sizeof(cond), t);
	fmt_value(val, sizeof(val), t);
	return iac_xasprintf("threshold '%s' failed: %s (%s)", t->key, val, cond);
}

/* Transport errors by kind, then the statuses that count as failures
 * (cfg->failed_status: 1xx and 400-599 unless expected_statuses says). */
static void errors_by_kind(iac_buf *b, const iac_lt_config *cfg, const iac_lt_stats *s, const char *sep)
{
	int first = 1;
	for (int k = 0; k < IAC_LT_NERR; k++)
		if (s->transport[k]) {
			iac_buf_printf(b, "%s%s: %llu", first ? "" : sep, iac_lt_errkind_name((enum iac_lt_errkind)k),
				       (unsigned long long)s->transport[k]);
			if (k == IAC_LT_E_TLS && tls_top_error(s))
				iac_buf_printf(b, " (%s)", tls_top_error(s));
			first = 0;
		}
	for (int c = 100; c < 600; c++)
		if (s->status[c] && cfg->failed_status[c]) {
			iac_buf_printf(b, "%shttp %d: %llu", first ? "" : sep, c, (unsigned long long)s->status[c]);
			first = 0;
		}
}

static const char *load_desc(const iac_lt_config *cfg, char *buf, size_t n)
{
	switch (cfg->executor) {
	case IAC_LT_CONSTANT_VUS:
		snprintf(buf, n, "constant-vus, %d VUs, %gs", cfg->vus, cfg->duration_ms / 1e3);
		break;
	case IAC_LT_RAMPING_VUS:
		snprintf(buf, n, "ramping-vus, %zu stages, %gs", cfg->nstages, iac_lt_config_duration_ms(cfg) / 1e3);
		break;
	case IAC_LT_CONSTANT_RATE:
		snprintf(buf, n, "constant-arrival-rate, %g per %gs, %gs, up to %d VUs", cfg->rate,
			 cfg->time_unit_ms / 1e3, cfg->duration_ms / 1e3, cfg->max_vus);
		break;
	case IAC_LT_RAMPING_RATE:
		snprintf(buf, n, "ramping-arrival-rate, %zu stages, %gs, up to %d VUs", cfg->nstages,
			 iac_lt_config_duration_ms(cfg) / 1e3, cfg->max_vus);
		break;
	}
	return buf;
}

/* The terminal's escape sequences, fetched once ("" when colour is off). */
typedef struct {
	const char *bold, *reset, *green, *red, *yellow, *dim;
} palette;

static void palette_get(palette *out)
{
	out->bold = iac_color(IAC_C_BOLD);
	out->reset = iac_color(IAC_C_RESET);
	out->green = iac_color(IAC_C_GREEN);
	out->red = iac_color(IAC_C_RED);
	out->yellow = iac_color(IAC_C_YELLOW);
	out->dim = iac_color(IAC_C_DIM);
}

/* A run without a single response has no latency: "no responses", not
 * 0.00 ms that reads as fast (failures are not latency samples). */
static void text_latency(iac_buf *b, const iac_lt_hist *h, const palette *p)
{
	if (!h->count) {
		iac_buf_puts(b, "  latency       no responses\n");
		return;
	}
	iac_buf_printf(b, "  latency       min %.2f  avg %.2f  p50 %.2f  p90 %.2f  p99 %s%.2f%s  max %.2f  (ms)\n",
		       (double)h->min / 1e3, iac_lt_hist_mean(h) / 1e3, (double)iac_lt_hist_percentile(h, 50) / 1e3,
		       (double)iac_lt_hist_percentile(h, 90) / 1e3, p->bold, (double)iac_lt_hist_percentile(h, 99) / 1e3,
		       p->reset, (double)h->max / 1e3);
}

/* https: handshakes (full and resumed) and their time (k6's
 * http_req_tls_handshaking), why TLS failed, and verification off in red. */
static void text_tls(iac_buf *b, const iac_lt_result *r, const palette *p)
{
	const iac_lt_stats *s = r->total;
	const iac_lt_hist *h = &s->tls_hist;
	if (!tls_used(r))
		return;
	char t1[32], t2[32];
	fmt_int(t1, sizeof(t1), (double)s->tls_handshakes);
	fmt_int(t2, sizeof(t2), (double)s->tls_resumed);
	iac_buf_printf(b, "  tls           %s handshakes (%s resumed)", t1, t2);
	if (h->count)
		iac_buf_printf(b, "  p50 %.2f  p99 %.2f  max %.2f  (ms)", (double)iac_lt_hist_percentile(h, 50) / 1e3,
			       (double)iac_lt_hist_percentile(h, 99) / 1e3, (double)h->max / 1e3);
	iac_buf_putc(b, '\n');
	for (size_t i = 0; i < s->ntls_msgs; i++)
		if (s->tls_counts[i])
			iac_buf_printf(b, "                %s%llu x %s%s\n", p->red, (unsigned long long)s->tls_counts[i],
				       s->tls_msgs[i], p->reset);
	if (r->cfg->tls_insecure)
		iac_buf_printf(b, "  %s%sTLS VERIFICATION OFF%s (insecure_skip_tls_verify): certificates were not checked\n",
			       p->bold, p->red, p->reset);
}

/* Requests, iterations, errors, latency and bytes of the whole run. */
static void text_totals(iac_buf *b, const iac_lt_result *r, const palette *p)
{
	const iac_lt_stats *s = r->total;
	char t1[64], t2[64], desc[160];
	double el = r->elapsed_s > 0 ? r->elapsed_s : 1;

	iac_buf_printf(b, "\n%siac loadtest%s %s  %s(%s, %d thread%s)%s\n\n", p->bold, p->reset, r->cfg->file, p->dim,
		       load_desc(r->cfg, desc, sizeof(desc)), r->threads, r->threads == 1 ? "" : "s", p->reset);
	fmt_int(t1, sizeof(t1), (double)s->requests);
	iac_buf_printf(b, "  requests      %s  %s%.1f/s%s  in %.1fs\n", t1, p->bold, (double)s->requests / el, p->reset,
		       el);
	fmt_int(t1, sizeof(t1), (double)s->iterations);
	fmt_int(t2, sizeof(t2), (double)s->dropped);
	iac_buf_printf(b, "  iterations    %s  (dropped %s)  max VUs %d\n", t1, t2, r->vus_max);
	fmt_int(t1, sizeof(t1), (double)s->failed);
	iac_buf_printf(b, "  errors        %s%s (%.2f%%)%s", s->failed ? p->red : "", t1,
		       s->requests ? 100.0 * (double)s->failed / (double)s->requests : 0.0, s->failed ? p->reset : "");
	if (s->failed) {
		iac_buf_puts(b, "  ");
		errors_by_kind(b, r->cfg, s, ", ");
	}
	iac_buf_putc(b, '\n');
	text_latency(b, &s->hist, p);
	text_tls(b, r, p);
	fmt_bytes(t1, sizeof(t1), (double)s->bytes_in);
	fmt_bytes(t2, sizeof(t2), (double)s->bytes_out);
	iac_buf_printf(b, "  data          received %s, sent %s\n", t1, t2);
}

/* One row per endpoint that completed a request. */
static void text_endpoints(iac_buf *b, const iac_lt_result *r)
{
	const iac_lt_stats *s = r->total;
	double el = r->elapsed_s > 0 ? r->elapsed_s : 1;
	char t1[64], q[4][32];
	if (!s->neps)
		return;
	iac_buf_printf(b, "\n  %-28s %12s %10s %8s %9s %9s %9s %9s\n", "endpoint", "requests", "rps", "errors", "p50",
		       "p90", "p99", "max");
	for (size_t i = 0; i < s->neps; i++) {
		const iac_lt_endpoint *e = s->eps[i];
		if (!e->requests)
			continue;
		fmt_int(t1, sizeof(t1), (double)e->requests);
		iac_buf_printf(b, "  %-28.28s %12s %10.1f %8llu %9s %9s %9s %9s\n", e->name, t1,
			       (double)e->requests / el, (unsigned long long)e->failed, fmt_ms(q[0], 32, &e->hist, 50),
			       fmt_ms(q[1], 32, &e->hist, 90), fmt_ms(q[2], 32, &e->hist, 99),
			       fmt_ms(q[3], 32, &e->hist, 100));
	}
}

/* Checks, script errors and thresholds: what the scenario asked about. */
static void text_verdicts(iac_buf *b, const iac_lt_result *r, const palette *p)
{
	const iac_lt_stats *s = r->total;
	if (s->nchecks) {
		iac_buf_printf(b, "\n  checks\n");
		for (size_t i = 0; i < s->nchecks; i++) {
			const iac_lt_check *c = &s->checks[i];
			uint64_t tot = c->pass + c->fail;
			iac_buf_printf(b, "    %s%s%s %-32s %7.2f%%  (%llu of %llu)\n", c->fail ? p->yellow : p->green,
				       c->fail ? "!" : "+", p->reset, c->name,
				       tot ? 100.0 * (double)c->pass / (double)tot : 0.0, (unsigned long long)c->pass,
				       (unsigned long long)tot);
		}
	}
	if (s->script_errors) {
		iac_buf_printf(b, "\n  %sscript errors%s %llu\n", p->yellow, p->reset, (unsigned long long)s->script_errors);
		for (size_t i = 0; i < s->nscript_msgs; i++)
			iac_buf_printf(b, "    %llu x %s\n", (unsigned long long)s->script_counts[i], s->script_msgs[i]);
	}
	if (r->cfg->nthresholds) {
		iac_buf_printf(b, "\n  thresholds\n");
		for (size_t i = 0; i < r->cfg->nthresholds; i++) {
			const iac_lt_threshold *t = &r->cfg->thresholds[i];
			char cond[200], val[160];
			fmt_cond(cond, sizeof(cond), t);
			fmt_value(val, sizeof(val), t);
			iac_buf_printf(b, "    %s%-4s%s %-36s %s\n", t->ok ? p->green : p->red, t->ok ? "ok" : "FAIL",
				       p->reset, t->key, val);
			iac_buf_printf(b, "         %s%s%s\n", p->dim, cond, p->reset);
		}
	}
}

/* Is the trend `name` kept in ms (a time: http_req_duration{...},
 * group_duration{...}, trend("x", true))? */
static int macc_is_time(const iac_lt_config *cfg, const char *name)
{
	if (iac_str_starts(name, "http_req_duration{") || iac_str_starts(name, "group_duration{"))
		return 1;
	for (size_t i = 0; i < cfg->nmetrics; i++) {
		size_t n = strlen(cfg->metrics[i].name);
		if (!strncmp(name, cfg->metrics[i].name, n) && (!name[n] || name[n] == '{'))
			return cfg->metrics[i].is_time;
	}
	return 0;
}

/* Custom metrics, sub-metrics of thresholds by tag and groups, one line
 * each, as k6's summary shows them. */
static void text_metrics(iac_buf *b, const iac_lt_result *r)
{
	const iac_lt_stats *s = r->total;
	double el = r->elapsed_s > 0 ? r->elapsed_s : 1;
	if (!s->nmacc)
		return;
	iac_buf_printf(b, "\n  metrics\n");
	for (size_t i = 0; i < s->nmacc; i++) {
		const iac_lt_macc *m = &s->macc[i];
		iac_buf_printf(b, "    %-44s ", m->name);
		switch (m->type) {
		case IAC_LT_COUNTER:
			iac_buf_printf(b, "count=%.15g rate=%.2f/s\n", m->sum, m->sum / el);
			break;
		case IAC_LT_GAUGE:
			iac_buf_printf(b, "value=%g min=%g max=%g\n", m->last, m->min, m->max);
			break;
		case IAC_LT_RATE:
			iac_buf_printf(b, "rate=%.2f%% (%llu of %llu)\n", m->n ? 100.0 * (double)m->nonzero / (double)m->n : 0,
				       (unsigned long long)m->nonzero, (unsigned long long)m->n);
			break;
		case IAC_LT_TREND: {
			const char *u = macc_is_time(r->cfg, m->name) ? "ms" : "";
			const iac_lt_hist *h = m->hist;
			if (!h || !h->count) {
				iac_buf_printf(b, "no samples\n");
				break;
			}
			iac_buf_printf(b, "avg=%g%s min=%g%s med=%g%s p(95)=%g%s max=%g%s count=%llu\n",
				       hist_ms(h, IAC_LT_M_AVG, 0), u, hist_ms(h, IAC_LT_M_MIN, 0), u,
				       hist_ms(h, IAC_LT_M_MED, 0), u, hist_ms(h, IAC_LT_M_PCT, 95), u,
				       hist_ms(h, IAC_LT_M_MAX, 0), u, (unsigned long long)h->count);
			break;
		}
		}
	}
}

/* The larger of a running maximum and v, where NaN means "none yet" on the
 * left and "not sampled" on the right. */
static double max_sampled(double acc, double v)
{
	if (isnan(v))
		return acc;
	return isnan(acc) ? v : fmax(acc, v);
}

static void text_server_side(iac_buf *b, const iac_lt_result *r)
{
	if (!r->haproxy && !(r->hosts && r->hosts->n) && !r->caches && !r->dbs)
		return;
	iac_buf_printf(b, "\n  server side\n");
	iac_lt_caches_text(b, r->caches);
	iac_lt_dbs_text(b, r->dbs);
	double qmax = NAN, smax = NAN, rmax = NAN;
	for (size_t i = 0; i < r->nsecs; i++) {
		const iac_lt_second *x = &r->secs[i];
		/* a second with a queue figure is a second HAProxy answered */
		if (!isnan(x->hap_qcur)) {
			qmax = max_sampled(qmax, x->hap_qcur);
			smax = max_sampled(smax, x->hap_scur);
			rmax = max_sampled(rmax, x->hap_rtime_ms);
		}
	}
	if (r->haproxy) {
		if (isnan(qmax))
			iac_buf_printf(b, "    haproxy %s: no sample\n", r->haproxy);
		else
			iac_buf_printf(b, "    haproxy %s: max queue %.0f, max sessions %.0f, max backend "
				       "response time %.0f ms\n", r->haproxy, qmax, smax, rmax);
	}
	for (size_t hi = 0; r->hosts && hi < r->hosts->n; hi++) {
		double cmax = NAN, mmax = NAN;
		for (size_t i = 0; i < r->nsecs; i++) {
			const iac_lt_second *x = &r->secs[i];
			if (x->host_cpu)
				cmax = max_sampled(cmax, x->host_cpu[hi]);
			if (x->host_mem)
				mmax = max_sampled(mmax, x->host_mem[hi]);
		}
		if (isnan(cmax))
			iac_buf_printf(b, "    host %s: not sampled\n", r->hosts->items[hi]);
		else
			iac_buf_printf(b, "    host %s: max CPU %.0f%%, max memory %.0f%%\n", r->hosts->items[hi], cmax,
				       mmax);
	}
}

/* What the exit code says, in words: the last line. */
static void text_verdict(iac_buf *b, const iac_lt_result *r, const palette *p)
{
	size_t nt = r->cfg->nthresholds;
	if (r->failed_msg)
		iac_buf_printf(b, "  verdict: %sFAILED%s: %s\n", p->red, p->reset, r->failed_msg);
	if (r->thresholds_failed)
		iac_buf_printf(b, "  verdict: %sFAILED%s: %zu of %zu threshold%s failed\n", p->red, p->reset,
			       r->thresholds_failed, nt, nt == 1 ? "" : "s");
	if (!r->failed_msg && !r->thresholds_failed)
		iac_buf_printf(b, "  verdict: %spassed%s\n", p->green, p->reset);
}

/* Saturation, notes, the load generator's own figures and whether the
 * result can be trusted: last, where the eye lands. */
static void text_judgement(iac_buf *b, const iac_lt_result *r, const palette *p)
{
	if (r->saturation)
		iac_buf_printf(b, "\n  %swhere it saturated:%s %s\n", p->bold, p->reset, r->saturation);
	if (r->nfindings)
		iac_buf_printf(b, "\n  %sfindings%s (most likely cause first):\n", p->bold, p->reset);
	for (size_t i = 0; i < r->nfindings; i++)
		iac_buf_printf(b, "  %zu. %s\n", i + 1, r->findings[i].text);
	for (size_t i = 0; i < r->notes.n; i++)
		iac_buf_printf(b, "\n  %snote:%s %s", p->yellow, p->reset, r->notes.items[i]);
	if (r->notes.n)
		iac_buf_putc(b, '\n');
	iac_buf_printf(b, "\n  load generator CPU: avg %.0f%%, max %.0f%% of %d core%s, waited for a CPU up to %.0f%% of "
		       "a second; memory %.1f MiB\n", isnan(r->cpu_avg_pct) ? 0 : r->cpu_avg_pct, r->cpu_max_pct, r->cores,
		       r->cores == 1 ? "" : "s", r->wait_max_pct, r->rss_mib);
	if (r->valid)
		iac_buf_printf(b, "  result: %svalid%s", p->green, p->reset);
	else
		iac_buf_printf(b, "  result: %sNOT VALID%s: %s", p->red, p->reset, r->invalid.items[0]);
	if (r->aborted)
		iac_buf_printf(b, "  %s(stopped early: a threshold with abort_on_fail failed)%s", p->red, p->reset);
	if (r->interrupted)
		iac_buf_printf(b, "  %s(interrupted)%s", p->yellow, p->reset);
	iac_buf_puts(b, "\n");
	text_verdict(b, r, p);
}

void iac_lt_report_text(iac_buf *out, const iac_lt_result *r)
{
	palette p;
	palette_get(&p);
	text_totals(out, r, &p);
	text_endpoints(out, r);
	text_metrics(out, r);
	text_verdicts(out, r, &p);
	text_server_side(out, r);
	text_judgement(out, r, &p);
}

void iac_lt_report_summary(FILE *f, const iac_lt_result *r)
{
	iac_buf b = IAC_BUF_INIT;
	iac_lt_report_text(&b, r);
	iac_log_write(f, iac_buf_cstr(&b));
	iac_buf_free(&b);
}

/* ---- JSON ---------------------------------------------------------- */

/* A count in second i as a rate: the last second may be partial. */
static double sec_rate(const iac_lt_result *r, size_t i, double count)
{
	if (i + 1 == r->nsecs && r->last_sec_fraction > 0 && r->last_sec_fraction < 1)
		return count / r->last_sec_fraction;
	return count;
}

static json_t *num(double v)
{
	return isnan(v) || isinf(v) ? json_null() : json_real(v);
}

static json_t *latency_obj(const iac_lt_hist *h)
{
	json_t *o = json_object();
	if (!h->count) {   /* no response: no latency (0 would read as fast) */
		static const char *const keys[] = { "min", "avg", "p50", "p90", "p95", "p99", "p999", "max" };
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			json_object_set_new(o, keys[i], json_null());
		return o;
	}
	json_object_set_new(o, "min", num(h->count ? (double)h->min / 1e3 : 0));
	json_object_set_new(o, "avg", num(iac_lt_hist_mean(h) / 1e3));
	json_object_set_new(o, "p50", num((double)iac_lt_hist_percentile(h, 50) / 1e3));
	json_object_set_new(o, "p90", num((double)iac_lt_hist_percentile(h, 90) / 1e3));
	json_object_set_new(o, "p95", num((double)iac_lt_hist_percentile(h, 95) / 1e3));
	json_object_set_new(o, "p99", num((double)iac_lt_hist_percentile(h, 99) / 1e3));
	json_object_set_new(o, "p999", num((double)iac_lt_hist_percentile(h, 99.9) / 1e3));
	json_object_set_new(o, "max", num((double)h->max / 1e3));
	return o;
}

static json_t *strlist_json(const iac_strlist *l)
{
	json_t *a = json_array();
	for (size_t i = 0; i < l->n; i++)
		json_array_append_new(a, json_string(l->items[i]));
	return a;
}

/* Transport errors by kind, then HTTP errors by status, as in the summary. */
static json_t *json_errors(const iac_lt_config *cfg, const iac_lt_stats *s)
{
	json_t *err = json_object();
	json_object_set_new(err, "total", json_integer((json_int_t)s->failed));
	json_object_set_new(err, "rate", num(s->requests ? (double)s->failed / (double)s->requests : 0));
	json_t *kinds = json_object();
	for (int k = 0; k < IAC_LT_NERR; k++)
		if (s->transport[k])
			json_object_set_new(kinds, iac_lt_errkind_name((enum iac_lt_errkind)k),
					    json_integer((json_int_t)s->transport[k]));
	for (int c = 100; c < 600; c++)
		if (s->status[c] && cfg->failed_status[c]) {
			char k[16];
			snprintf(k, sizeof(k), "http %d", c);
			json_object_set_new(kinds, k, json_integer((json_int_t)s->status[c]));
		}
	json_object_set_new(err, "by_kind", kinds);
	return err;
}

static json_t *json_status(const iac_lt_stats *s)
{
	json_t *st = json_object();
	for (int c = 100; c < 600; c++)
		if (s->status[c]) {
			char k[8];
			snprintf(k, sizeof(k), "%d", c);
			json_object_set_new(st, k, json_integer((json_int_t)s->status[c]));
		}
	return st;
}

static json_t *json_endpoints(const iac_lt_stats *s, double el)
{
	json_t *eps = json_object();
	for (size_t i = 0; i < s->neps; i++) {
		const iac_lt_endpoint *e = s->eps[i];
		if (!e->requests)
			continue;
		json_t *x = json_object();
		json_object_set_new(x, "requests", json_integer((json_int_t)e->requests));
		json_object_set_new(x, "errors", json_integer((json_int_t)e->failed));
		json_object_set_new(x, "rps", num((double)e->requests / el));
		json_object_set_new(x, "latency_ms", latency_obj(&e->hist));
		json_object_set_new(eps, e->name, x);
	}
	return eps;
}

static json_t *json_checks(const iac_lt_stats *s)
{
	json_t *checks = json_object();
	for (size_t i = 0; i < s->nchecks; i++) {
		const iac_lt_check *c = &s->checks[i];
		json_t *x = json_object();
		json_object_set_new(x, "passes", json_integer((json_int_t)c->pass));
		json_object_set_new(x, "fails", json_integer((json_int_t)c->fail));
		json_object_set_new(x, "rate", num(c->pass + c->fail ? (double)c->pass / (double)(c->pass + c->fail) : 0));
		json_object_set_new(checks, c->name, x);
	}
	return checks;
}

/* k6's names for a metric's aggregates: counter count/rate, gauge
 * value/min/max, rate rate/passes/fails, trend avg/min/med/max/p(90)/p(95)/p(99)/count. */
static json_t *json_metrics(const iac_lt_result *r, double el)
{
	const iac_lt_stats *s = r->total;
	json_t *ms = json_object();
	for (size_t i = 0; i < s->nmacc; i++) {
		const iac_lt_macc *m = &s->macc[i];
		json_t *x = json_object();
		json_object_set_new(x, "type", json_string(iac_lt_mtype_name(m->type)));
		switch (m->type) {
		case IAC_LT_COUNTER:
			json_object_set_new(x, "count", num(m->sum));
			json_object_set_new(x, "rate", num(m->sum / el));
			break;
		case IAC_LT_GAUGE:
			json_object_set_new(x, "value", num(m->last));
			json_object_set_new(x, "min", num(m->min));
			json_object_set_new(x, "max", num(m->max));
			break;
		case IAC_LT_RATE:
			json_object_set_new(x, "rate", num(m->n ? (double)m->nonzero / (double)m->n : 0));
			json_object_set_new(x, "passes", json_integer((json_int_t)m->nonzero));
			json_object_set_new(x, "fails", json_integer((json_int_t)(m->n - m->nonzero)));
			break;
		case IAC_LT_TREND: {
			static const double pcts[] = { 90, 95, 99 };
			const iac_lt_hist *h = m->hist;
			int any = h && h->count;
			json_object_set_new(x, "time", json_boolean(macc_is_time(r->cfg, m->name)));
			json_object_set_new(x, "avg", any ? num(hist_ms(h, IAC_LT_M_AVG, 0)) : json_null());
			json_object_set_new(x, "min", any ? num(hist_ms(h, IAC_LT_M_MIN, 0)) : json_null());
			json_object_set_new(x, "med", any ? num(hist_ms(h, IAC_LT_M_MED, 0)) : json_null());
			json_object_set_new(x, "max", any ? num(hist_ms(h, IAC_LT_M_MAX, 0)) : json_null());
			for (size_t p = 0; p < 3; p++) {
				char k[16];
				snprintf(k, sizeof(k), "p(%g)", pcts[p]);
				json_object_set_new(x, k, any ? num(hist_ms(h, IAC_LT_M_PCT, pcts[p])) : json_null());
			}
			json_object_set_new(x, "count", json_integer((json_int_t)m->n));
			break;
		}
		}
		json_object_set_new(ms, m->name, x);
	}
	return ms;
}

static json_t *json_thresholds(const iac_lt_config *cfg)
{
	json_t *ths = json_object();
	for (size_t i = 0; i < cfg->nthresholds; i++) {
		const iac_lt_threshold *t = &cfg->thresholds[i];
		json_t *x = json_object();
		json_t *conds = json_array();
		for (size_t c = 0; c < t->nconds; c++)
			json_array_append_new(conds, json_string(t->conds[c]));
		json_object_set_new(x, "conditions", conds);
		json_object_set_new(x, "value", t->have_value ? num(t->value) : json_null());
		json_object_set_new(x, "unit", json_string(threshold_unit(t)));
		json_object_set_new(x, "ok", json_boolean(t->ok));
		json_object_set_new(x, "abort_on_fail", json_boolean(t->abort_on_fail));
		json_object_set_new(ths, t->key, x);
	}
	return ths;
}

static json_t *json_script_errors(const iac_lt_stats *s)
{
	json_t *se = json_object();
	json_object_set_new(se, "total", json_integer((json_int_t)s->script_errors));
	json_t *msgs = json_array();
	for (size_t i = 0; i < s->nscript_msgs; i++) {
		json_t *m = json_object();
		json_object_set_new(m, "message", json_string(s->script_msgs[i]));
		json_object_set_new(m, "count", json_integer((json_int_t)s->script_counts[i]));
		json_array_append_new(msgs, m);
	}
	json_object_set_new(se, "messages", msgs);
	return se;
}

/* The server side of second i: "haproxy" when observed, "hosts" when any. */
static void json_second_server(json_t *p, const iac_lt_result *r, size_t i)
{
	const iac_lt_second *x = &r->secs[i];
	if (r->haproxy) {
		json_t *hp = json_object();
		json_object_set_new(hp, "queue", num(x->hap_qcur));
		json_object_set_new(hp, "sessions", num(x->hap_scur));
		json_object_set_new(hp, "rtime_ms", num(x->hap_rtime_ms));
		json_object_set_new(hp, "req_rate", num(x->hap_rate));
		json_object_set_new(p, "haproxy", hp);
	}
	if (r->hosts && r->hosts->n) {
		json_t *hs = json_object();
		for (size_t hi = 0; hi < r->hosts->n; hi++) {
			json_t *hx = json_object();
			json_object_set_new(hx, "cpu_pct", x->host_cpu ? num(x->host_cpu[hi]) : json_null());
			json_object_set_new(hx, "mem_pct", x->host_mem ? num(x->host_mem[hi]) : json_null());
			json_object_set_new(hs, r->hosts->items[hi], hx);
		}
		json_object_set_new(p, "hosts", hs);
	}
	json_t *cache = iac_lt_caches_second_json(r->caches, i);
	if (cache)
		json_object_set_new(p, "cache", cache);
	json_t *db = iac_lt_dbs_second_json(r->dbs, i);
	if (db)
		json_object_set_new(p, "db", db);
}

/* One point of the time series. Latencies are null for a second without a
 * response rather than 0, which would read as "fast". */
static json_t *json_second(const iac_lt_result *r, size_t i)
{
	const iac_lt_second *x = &r->secs[i];
	json_t *p = json_object();
	json_object_set_new(p, "t", json_integer((json_int_t)i));
	json_object_set_new(p, "requests", json_integer((json_int_t)x->requests));
	json_object_set_new(p, "rps", num(sec_rate(r, i, (double)x->requests)));
	json_object_set_new(p, "errors", json_integer((json_int_t)x->failed));
	json_object_set_new(p, "dropped", json_integer((json_int_t)x->dropped));
	json_object_set_new(p, "p50_ms", x->requests ? num(x->p50_ms) : json_null());
	json_object_set_new(p, "p90_ms", x->requests ? num(x->p90_ms) : json_null());
	json_object_set_new(p, "p99_ms", x->requests ? num(x->p99_ms) : json_null());
	json_object_set_new(p, "max_ms", x->requests ? num(x->max_ms) : json_null());
	json_object_set_new(p, "vus", x->vus >= 0 ? json_integer(x->vus) : json_null());
	json_object_set_new(p, "client_cpu_pct", num(x->cpu_pct));
	json_object_set_new(p, "client_wait_pct", num(x->wait_pct));
	json_second_server(p, r, i);
	return p;
}

static json_t *json_timeseries(const iac_lt_result *r)
{
	json_t *ts = json_array();
	for (size_t i = 0; i < r->nsecs; i++)
		json_array_append_new(ts, json_second(r, i));
	return ts;
}

static json_t *json_server(const iac_lt_result *r)
{
	json_t *server = json_object();
	json_object_set_new(server, "haproxy", r->haproxy ? json_string(r->haproxy) : json_null());
	json_object_set_new(server, "hosts", r->hosts ? strlist_json(r->hosts) : json_array());
	json_object_set_new(server, "cache", r->caches ? iac_lt_caches_json(r->caches) : json_null());
	json_object_set_new(server, "db", r->dbs ? iac_lt_dbs_json(r->dbs) : json_null());
	json_object_set_new(server, "saturation", r->saturation ? json_string(r->saturation) : json_null());
	json_object_set_new(server, "servers", r->servers ? strlist_json(r->servers) : json_array());
	return server;
}

/* [{kind, score, onset_s, text}], most likely cause first. */
static json_t *json_findings(const iac_lt_result *r)
{
	json_t *a = json_array();
	for (size_t i = 0; i < r->nfindings; i++) {
		const iac_lt_finding *f = &r->findings[i];
		json_array_append_new(a, json_pack("{s:s,s:f,s:o,s:s}", "kind", f->kind, "score", f->score, "onset_s",
						   f->onset >= 0 ? json_integer(f->onset) : json_null(), "text", f->text));
	}
	return a;
}

static json_t *json_client(const iac_lt_result *r)
{
	json_t *client = json_object();
	json_object_set_new(client, "cores", json_integer(r->cores));
	json_object_set_new(client, "cpu_avg_pct", num(r->cpu_avg_pct));
	json_object_set_new(client, "cpu_max_pct", num(r->cpu_max_pct));
	json_object_set_new(client, "cpu_wait_max_pct", num(r->wait_max_pct));
	json_object_set_new(client, "max_rss_mib", num(r->rss_mib));
	return client;
}

/* What decided the exit code: "passed" or "failed", and why. */
static json_t *json_verdict(const iac_lt_result *r)
{
	json_t *v = json_object();
	json_t *why = json_array();
	if (r->failed_msg)
		json_array_append_new(why, json_string(r->failed_msg));
	for (size_t i = 0; i < r->cfg->nthresholds; i++) {
		const iac_lt_threshold *t = &r->cfg->thresholds[i];
		if (t->ok)
			continue;
		char *m = threshold_failure(t);
		json_array_append_new(why, json_string(m));
		free(m);
	}
	json_object_set_new(v, "result", json_string(r->exit_code ? "failed" : "passed"));
	json_object_set_new(v, "reasons", why);
	json_object_set_new(v, "http_req_failed",
			    num(r->total->requests ? (double)r->total->failed / (double)r->total->requests : NAN));
	json_object_set_new(v, "max_failed", num(r->cfg->max_failed));
	return v;
}

/* https runs only: verification, handshakes and their time, failures. */
static json_t *json_tls(const iac_lt_result *r)
{
	const iac_lt_config *cfg = r->cfg;
	const iac_lt_stats *s = r->total;
	json_t *t = json_object();
	json_object_set_new(t, "verify", json_boolean(!cfg->tls_insecure));
	json_object_set_new(t, "insecure_skip_tls_verify", json_boolean(cfg->tls_insecure));
	json_object_set_new(t, "ca_file", cfg->tls_ca_file ? json_string(cfg->tls_ca_file) : json_null());
	json_object_set_new(t, "server_name", cfg->tls_server_name ? json_string(cfg->tls_server_name) : json_null());
	json_object_set_new(t, "handshakes", json_integer((json_int_t)s->tls_handshakes));
	json_object_set_new(t, "resumed", json_integer((json_int_t)s->tls_resumed));
	json_object_set_new(t, "handshake_ms", latency_obj(&s->tls_hist));
	json_t *errs = json_array();
	for (size_t i = 0; i < s->ntls_msgs; i++) {
		if (!s->tls_counts[i])
			continue;
		json_t *m = json_object();
		json_object_set_new(m, "message", json_string(s->tls_msgs[i]));
		json_object_set_new(m, "count", json_integer((json_int_t)s->tls_counts[i]));
		json_array_append_new(errs, m);
	}
	json_object_set_new(t, "errors", errs);
	return t;
}

/* Keys are set in the order docs/loadtest.md lists them: the document is
 * dumped with JSON_PRESERVE_ORDER, so this order is what readers see. */
json_t *iac_lt_report_json(const iac_lt_result *r)
{
	const iac_lt_stats *s = r->total;
	const iac_lt_config *cfg = r->cfg;
	double el = r->elapsed_s > 0 ? r->elapsed_s : 1;
	json_t *o = json_object();
	json_object_set_new(o, "version", json_integer(1));
	json_object_set_new(o, "scenario_file", json_string(cfg->file));
	json_object_set_new(o, "started", json_string(r->started));
	json_object_set_new(o, "executor", json_string(iac_lt_executor_name(cfg->executor)));
	json_object_set_new(o, "duration_s", num(r->elapsed_s));
	json_object_set_new(o, "threads", json_integer(r->threads));
	json_object_set_new(o, "vus_max", json_integer(r->vus_max));
	json_object_set_new(o, "requests", json_integer((json_int_t)s->requests));
	json_object_set_new(o, "iterations", json_integer((json_int_t)s->iterations));
	json_object_set_new(o, "dropped_iterations", json_integer((json_int_t)s->dropped));
	json_object_set_new(o, "rps", num((double)s->requests / el));
	json_object_set_new(o, "errors", json_errors(cfg, s));
	json_object_set_new(o, "status", json_status(s));
	json_object_set_new(o, "latency_ms", latency_obj(&s->hist));
	json_t *bytes = json_object();
	json_object_set_new(bytes, "received", json_integer((json_int_t)s->bytes_in));
	json_object_set_new(bytes, "sent", json_integer((json_int_t)s->bytes_out));
	json_object_set_new(o, "bytes", bytes);
	if (tls_used(r))
		json_object_set_new(o, "tls", json_tls(r));
	json_object_set_new(o, "endpoints", json_endpoints(s, el));
	json_object_set_new(o, "checks", json_checks(s));
	json_object_set_new(o, "metrics", json_metrics(r, el));
	json_object_set_new(o, "thresholds", json_thresholds(cfg));
	json_object_set_new(o, "script_errors", json_script_errors(s));
	json_object_set_new(o, "timeseries", json_timeseries(r));
	json_object_set_new(o, "server", json_server(r));
	json_object_set_new(o, "findings", json_findings(r));
	json_object_set_new(o, "client", json_client(r));
	json_object_set_new(o, "valid", json_boolean(r->valid));
	json_object_set_new(o, "invalid_reasons", strlist_json(&r->invalid));
	json_object_set_new(o, "notes", strlist_json(&r->notes));
	json_object_set_new(o, "aborted", json_boolean(r->aborted));
	json_object_set_new(o, "interrupted", json_boolean(r->interrupted));
	json_object_set_new(o, "verdict", json_verdict(r));
	json_object_set_new(o, "exit_code", json_integer(r->exit_code));
	return o;
}

int iac_lt_report_write_json(const iac_lt_result *r, const char *path)
{
	json_t *o = iac_lt_report_json(r);
	char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	size_t n = strlen(text);
	text = iac_xrealloc(text, n + 2);
	text[n] = '\n';
	int rc = iac_file_write_atomic(path, text, n + 1, 0644);
	free(text);
	if (rc < 0)
		iac_err_prefix("cannot write the JSON report '%s'", path);
	return rc;
}

/* ---- HTML ---------------------------------------------------------- */

static void html_esc(iac_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': iac_buf_puts(b, "&lt;"); break;
		case '>': iac_buf_puts(b, "&gt;"); break;
		case '&': iac_buf_puts(b, "&amp;"); break;
		case '"': iac_buf_puts(b, "&quot;"); break;
		default: iac_buf_putc(b, *s);
		}
	}
}

typedef struct {
	const char *name;
	const char *color;
	double *v;
} series;

static double nice_ceil(double v)
{
	if (!(v > 0))
		return 1;
	double p = pow(10, floor(log10(v)));
	double m = v / p;
	double n = m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10;
	return n * p;
}

/* One line chart as inline SVG: x is seconds, one polyline per series, NaN
 * breaks a line. */
static void svg_chart(iac_buf *b, const char *title, const char *unit, const series *ss, size_t ns, size_t n)
{
	const double W = 900, H = 220, L = 60, Rm = 20, T = 28, Bm = 30;
	double ymax = 0;
	for (size_t k = 0; k < ns; k++)
		for (size_t i = 0; i < n; i++)
			if (!isnan(ss[k].v[i]) && ss[k].v[i] > ymax)
				ymax = ss[k].v[i];
	ymax = nice_ceil(ymax * 1.05);
	double xs = n > 1 ? (W - L - Rm) / (double)(n - 1) : 0;
	iac_buf_printf(b, "<figure class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" "
		       "width=\"%.0f\" height=\"%.0f\" role=\"img\" aria-label=\"", W, H, W, H);
	html_esc(b, title);
	iac_buf_printf(b, "\"><text x=\"%.0f\" y=\"18\" class=\"t\">", L);
	html_esc(b, title);
	iac_buf_printf(b, " (%s)</text>", unit);
	for (int g = 0; g <= 4; g++) {
		double y = T + (H - T - Bm) * (1 - g / 4.0);
		iac_buf_printf(b, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" class=\"g\"/>"
			       "<text x=\"%.0f\" y=\"%.1f\" class=\"a\" text-anchor=\"end\">%g</text>",
			       L, W - Rm, y, y, L - 6, y + 4, ymax * g / 4.0);
	}
	size_t step = n > 20 ? (n + 9) / 10 : 1;
	for (size_t i = 0; i < n; i += step)
		iac_buf_printf(b, "<text x=\"%.1f\" y=\"%.0f\" class=\"a\" text-anchor=\"middle\">%zus</text>",
			       L + xs * (double)i, H - 10, i);
	for (size_t k = 0; k < ns; k++) {
		int open = 0;
		for (size_t i = 0; i < n; i++) {
			double v = ss[k].v[i];
			if (isnan(v)) {
				if (open)
					iac_buf_puts(b, "\"/>");
				open = 0;
				continue;
			}
			double x = L + xs * (double)i, y = T + (H - T - Bm) * (1 - v / ymax);
			if (!open)
				iac_buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
					       ss[k].color);
			iac_buf_printf(b, "%.1f,%.1f ", x, y);
			open = 1;
		}
		if (open)
			iac_buf_puts(b, "\"/>");
		if (n == 1 && !isnan(ss[k].v[0]))
			iac_buf_printf(b, "<circle cx=\"%.0f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", L,
				       T + (H - T - Bm) * (1 - ss[k].v[0] / ymax), ss[k].color);
		iac_buf_printf(b, "<rect x=\"%.0f\" y=\"8\" width=\"10\" height=\"10\" fill=\"%s\"/>"
			       "<text x=\"%.0f\" y=\"17\" class=\"l\">", W - Rm - 130 * (double)(ns - k), ss[k].color,
			       W - Rm - 130 * (double)(ns - k) + 14);
		html_esc(b, ss[k].name);
		iac_buf_puts(b, "</text>");
	}
	iac_buf_puts(b, "</svg></figure>\n");
}

/* Everything up to the body's first paragraph: title, inline style (the
 * report must render offline, from a mail attachment or a CI artefact). */
static void html_head(iac_buf *b, const iac_lt_result *r)
{
	char desc[160];
	iac_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			"<meta name=\"viewport\" content=\"width=device-width\"><title>iac loadtest: ");
	html_esc(b, r->cfg->file);
	iac_buf_puts(b, "</title><style>"
			"body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:960px}"
			"h1{font-size:20px}h2{font-size:16px;margin-top:28px}"
			"table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #ddd;"
			"text-align:right}td:first-child,th:first-child{text-align:left}"
			".ok{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}"
			".banner{padding:8px 12px;border-radius:6px;margin:12px 0}"
			".valid{background:#dafbe1}.invalid{background:#ffebe9}.note{background:#fff8c5}"
			"svg .g{stroke:#e5e5e5}svg .a{font-size:11px;fill:#666}svg .t{font-size:13px;font-weight:bold}"
			"svg .l{font-size:12px}figure{margin:12px 0}"
			"</style></head><body>\n<h1>iac loadtest: ");
	html_esc(b, r->cfg->file);
	iac_buf_puts(b, "</h1>\n<p>");
	html_esc(b, load_desc(r->cfg, desc, sizeof(desc)));
	iac_buf_printf(b, "; %d thread%s; started %s; ran %.1f s.</p>\n", r->threads, r->threads == 1 ? "" : "s",
		       r->started, r->elapsed_s);
}

/* One line of the verdict banner: a bold lead and an escaped reason. */
static void html_reason(iac_buf *b, const char *lead, const char *why)
{
	iac_buf_printf(b, "<div><b>%s</b> ", lead);
	html_esc(b, why);
	iac_buf_puts(b, "</div>");
}

/* The run's verdict, as the exit code has it, with every reason; then
 * validity, which the exit code does not carry. Green only for a passed,
 * valid run. */
static void html_verdict(iac_buf *b, const iac_lt_result *r)
{
	const char *title = r->failed_msg ? "Failed: the target did not answer."
			    : r->thresholds_failed ? "Failed: thresholds failed."
			    : !r->valid ? "Passed, but the result is NOT valid."
					: "Passed.";
	if (r->failed_msg && strncmp(r->failed_msg, "the target did not answer", 25))
		title = "Failed: too many requests failed.";
	iac_buf_printf(b, "<div class=\"banner %s\" id=\"verdict\"><div id=\"verdict-title\"><b>%s</b> (exit code %d)</div>",
		       !r->exit_code && r->valid ? "valid" : "invalid", title, r->exit_code);
	if (r->failed_msg)
		html_reason(b, "Requests:", r->failed_msg);
	for (size_t i = 0; i < r->cfg->nthresholds; i++) {
		if (r->cfg->thresholds[i].ok)
			continue;
		char *m = threshold_failure(&r->cfg->thresholds[i]);
		html_reason(b, "Threshold:", m);
		free(m);
	}
	if (!r->exit_code)
		html_reason(b, "Thresholds:", r->cfg->nthresholds ? "all passed." : "none set.");
	for (size_t i = 0; i < r->invalid.n; i++)
		html_reason(b, "Result NOT valid:", r->invalid.items[i]);
	if (r->valid)
		html_reason(b, "Result valid:", "the load generator was not the bottleneck.");
	if (r->aborted)
		html_reason(b, "Stopped early:", "a threshold with abort_on_fail failed.");
	if (r->interrupted)
		html_reason(b, "Interrupted:", "the run was stopped with Ctrl-C.");
	iac_buf_puts(b, "</div>\n");
}

/* The verdict first (it says whether to read on), then saturation and notes. */
static void html_banners(iac_buf *b, const iac_lt_result *r)
{
	html_verdict(b, r);
	if (r->cfg->tls_insecure)
		iac_buf_puts(b, "<div class=\"banner invalid\" id=\"tls-insecure\"><b>TLS VERIFICATION OFF</b> "
			     "(insecure_skip_tls_verify): the server's certificate was not checked.</div>\n");
	if (r->saturation) {
		iac_buf_puts(b, "<div class=\"banner note\"><b>Where it saturated:</b> ");
		html_esc(b, r->saturation);
		iac_buf_puts(b, "</div>\n");
	}
	for (size_t i = 0; i < r->nfindings; i++) {
		iac_buf_printf(b, "<div class=\"banner note\" id=\"finding-%zu\"><b>Finding %zu (%s):</b> ", i + 1, i + 1,
			       r->findings[i].kind);
		html_esc(b, r->findings[i].text);
		iac_buf_puts(b, "</div>\n");
	}
	for (size_t i = 0; i < r->notes.n; i++) {
		iac_buf_puts(b, "<div class=\"banner note\">");
		html_esc(b, r->notes.items[i]);
		iac_buf_puts(b, "</div>\n");
	}
}

static void html_summary(iac_buf *b, const iac_lt_result *r)
{
	const iac_lt_stats *s = r->total;
	const iac_lt_hist *h = &s->hist;
	double el = r->elapsed_s > 0 ? r->elapsed_s : 1;
	char t1[64];
	iac_buf_puts(b, "<h2>Summary</h2><table id=\"summary\">");
	fmt_int(t1, sizeof(t1), (double)s->requests);
	iac_buf_printf(b, "<tr><td>requests</td><td>%s</td></tr><tr><td>requests per second</td><td>%.1f</td></tr>",
		       t1, (double)s->requests / el);
	iac_buf_printf(b, "<tr><td>errors</td><td>%llu (%.2f%%)</td></tr>", (unsigned long long)s->failed,
		       s->requests ? 100.0 * (double)s->failed / (double)s->requests : 0.0);
	iac_buf_printf(b, "<tr><td>iterations / dropped</td><td>%llu / %llu</td></tr>",
		       (unsigned long long)s->iterations, (unsigned long long)s->dropped);
	if (h->count)
		iac_buf_printf(b, "<tr><td>latency p50 / p90 / p99 / max (ms)</td><td>%.2f / %.2f / %.2f / %.2f</td></tr>",
			       (double)iac_lt_hist_percentile(h, 50) / 1e3, (double)iac_lt_hist_percentile(h, 90) / 1e3,
			       (double)iac_lt_hist_percentile(h, 99) / 1e3, (double)h->max / 1e3);
	else
		iac_buf_puts(b, "<tr><td>latency p50 / p90 / p99 / max (ms)</td><td>no responses</td></tr>");
	if (tls_used(r)) {
		const iac_lt_hist *th = &s->tls_hist;
		iac_buf_printf(b, "<tr><td>TLS handshakes (resumed)</td><td>%llu (%llu)</td></tr>",
			       (unsigned long long)s->tls_handshakes, (unsigned long long)s->tls_resumed);
		if (th->count)
			iac_buf_printf(b, "<tr><td>TLS handshake p50 / p99 / max (ms)</td><td>%.2f / %.2f / %.2f</td></tr>",
				       (double)iac_lt_hist_percentile(th, 50) / 1e3,
				       (double)iac_lt_hist_percentile(th, 99) / 1e3, (double)th->max / 1e3);
		iac_buf_printf(b, "<tr><td>TLS certificate verification</td><td>%s</td></tr>",
			       r->cfg->tls_insecure ? "<b>OFF (insecure_skip_tls_verify)</b>" : "on");
	}
	iac_buf_printf(b, "<tr><td>max VUs</td><td>%d</td></tr>", r->vus_max);
	iac_buf_printf(b, "<tr><td>load generator CPU avg / max</td><td>%.0f%% / %.0f%% of %d core%s</td></tr>",
		       isnan(r->cpu_avg_pct) ? 0 : r->cpu_avg_pct, r->cpu_max_pct, r->cores, r->cores == 1 ? "" : "s");
	iac_buf_puts(b, "</table>\n");
}

/* The client-side series, one value per second. NaN is "no point": a
 * second without a response has no latency, not a latency of 0. */
enum { S_RPS, S_ERRS, S_DROP, S_P50, S_P90, S_P99, S_VUS, S_CPU, S_WAIT, S_N };

static void html_client_charts(iac_buf *b, const iac_lt_result *r)
{
	size_t n = r->nsecs;
	double *v[S_N];
	for (int k = 0; k < S_N; k++)
		v[k] = iac_xmalloc(n * sizeof(double));
	for (size_t i = 0; i < n; i++) {
		const iac_lt_second *x = &r->secs[i];
		v[S_RPS][i] = sec_rate(r, i, (double)x->requests);
		v[S_ERRS][i] = sec_rate(r, i, (double)x->failed);
		v[S_DROP][i] = sec_rate(r, i, (double)x->dropped);
		v[S_P50][i] = x->requests ? x->p50_ms : NAN;
		v[S_P90][i] = x->requests ? x->p90_ms : NAN;
		v[S_P99][i] = x->requests ? x->p99_ms : NAN;
		v[S_VUS][i] = x->vus >= 0 ? x->vus : NAN;
		v[S_CPU][i] = x->cpu_pct;
		v[S_WAIT][i] = x->wait_pct;
	}
	series a[] = { { "requests/s", "#0969da", v[S_RPS] } };
	svg_chart(b, "Throughput", "requests per second", a, 1, n);
	series l[] = { { "p50", "#1a7f37", v[S_P50] }, { "p90", "#bf8700", v[S_P90] }, { "p99", "#cf222e", v[S_P99] } };
	svg_chart(b, "Latency", "ms", l, 3, n);
	series e[] = { { "errors/s", "#cf222e", v[S_ERRS] }, { "dropped/s", "#8250df", v[S_DROP] } };
	svg_chart(b, "Errors and dropped iterations", "per second", e, 2, n);
	series u[] = { { "VUs", "#0969da", v[S_VUS] }, { "client CPU %", "#6e7781", v[S_CPU] },
		       { "client CPU wait %", "#bf3989", v[S_WAIT] } };
	svg_chart(b, "Virtual users and load generator CPU", "count, %", u, 3, n);
	for (int k = 0; k < S_N; k++)
		free(v[k]);
}

/* HAProxy's chart, only when at least one second was sampled. */
static void html_haproxy_chart(iac_buf *b, const iac_lt_result *r)
{
	size_t n = r->nsecs;
	int have_hap = 0;
	for (size_t i = 0; i < n; i++)
		have_hap |= !isnan(r->secs[i].hap_qcur);
	if (!have_hap)
		return;
	double *q = iac_xmalloc(n * sizeof(double)), *sc = iac_xmalloc(n * sizeof(double)),
	       *rt = iac_xmalloc(n * sizeof(double));
	for (size_t i = 0; i < n; i++) {
		q[i] = r->secs[i].hap_qcur;
		sc[i] = r->secs[i].hap_scur;
		rt[i] = r->secs[i].hap_rtime_ms;
	}
	series hs[] = { { "queue", "#cf222e", q }, { "sessions", "#0969da", sc },
			{ "backend rtime ms", "#bf8700", rt } };
	iac_buf_puts(b, "<h2>Server side: HAProxy</h2>\n");
	svg_chart(b, "HAProxy", "queue, sessions, ms", hs, 3, n);
	free(q);
	free(sc);
	free(rt);
}

/* Host hi's chart, only when at least one second was sampled. */
static void html_host_chart(iac_buf *b, const iac_lt_result *r, size_t hi)
{
	size_t n = r->nsecs;
	double *hc = iac_xmalloc(n * sizeof(double)), *hm = iac_xmalloc(n * sizeof(double));
	int any = 0;
	for (size_t i = 0; i < n; i++) {
		hc[i] = r->secs[i].host_cpu ? r->secs[i].host_cpu[hi] : NAN;
		hm[i] = r->secs[i].host_mem ? r->secs[i].host_mem[hi] : NAN;
		any |= !isnan(hc[i]) || !isnan(hm[i]);
	}
	if (any) {
		char title[200];
		snprintf(title, sizeof(title), "Host %s", r->hosts->items[hi]);
		series hs[] = { { "CPU %", "#cf222e", hc }, { "memory %", "#0969da", hm } };
		svg_chart(b, title, "%", hs, 2, n);
	}
	free(hc);
	free(hm);
}

/* Latency over time of endpoint i (one of the first IAC_LT_CHART_EPS),
 * when it had a response: where one endpoint slows down while the others
 * hold, the overall percentiles blur it. */
static void html_endpoint_chart(iac_buf *b, const iac_lt_result *r, size_t i)
{
	size_t n = r->nsecs;
	const iac_lt_endpoint *e = r->total->eps[i];
	if (!e->hist.count)
		return;
	double *v[3];
	for (int k = 0; k < 3; k++)
		v[k] = iac_xmalloc(n * sizeof(double));
	for (size_t s = 0; s < n; s++) {
		const iac_lt_second *x = &r->secs[s];
		v[0][s] = x->ep_n[i] ? x->ep_p50[i] : NAN;
		v[1][s] = x->ep_n[i] ? x->ep_p90[i] : NAN;
		v[2][s] = x->ep_n[i] ? x->ep_p99[i] : NAN;
	}
	char title[300];
	snprintf(title, sizeof(title), "Latency of %s", e->name);
	series l[] = { { "p50", "#1a7f37", v[0] }, { "p90", "#bf8700", v[1] }, { "p99", "#cf222e", v[2] } };
	svg_chart(b, title, "ms", l, 3, n);
	for (int k = 0; k < 3; k++)
		free(v[k]);
}

static void html_charts(iac_buf *b, const iac_lt_result *r)
{
	if (!r->nsecs)
		return;
	iac_buf_puts(b, "<h2>Over time</h2>\n");
	html_client_charts(b, r);
	if (r->total->neps) {
		iac_buf_printf(b, "<h2 id=\"endpoint-latency\">Latency per endpoint</h2>\n");
		for (size_t i = 0; i < r->total->neps && i < IAC_LT_CHART_EPS; i++)
			html_endpoint_chart(b, r, i);
		if (r->total->neps > IAC_LT_CHART_EPS)
			iac_buf_printf(b, "<p>Only the first %d endpoints are charted; the table below has them all.</p>\n",
				       IAC_LT_CHART_EPS);
	}
	html_haproxy_chart(b, r);
	for (size_t hi = 0; r->hosts && hi < r->hosts->n; hi++)
		html_host_chart(b, r, hi);
}

static void html_endpoints(iac_buf *b, const iac_lt_result *r)
{
	const iac_lt_stats *s = r->total;
	double el = r->elapsed_s > 0 ? r->elapsed_s : 1;
	iac_buf_puts(b, "<h2>Endpoints</h2><table id=\"endpoints\"><tr><th>endpoint</th><th>requests</th><th>rps</th>"
			"<th>errors</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>");
	for (size_t i = 0; i < s->neps; i++) {
		const iac_lt_endpoint *e = s->eps[i];
		if (!e->requests)
			continue;
		iac_buf_puts(b, "<tr><td>");
		html_esc(b, e->name);
		char q[4][32];
		iac_buf_printf(b, "</td><td>%llu</td><td>%.1f</td><td>%llu</td><td>%s</td><td>%s</td><td>%s</td>"
			       "<td>%s</td></tr>", (unsigned long long)e->requests, (double)e->requests / el,
			       (unsigned long long)e->failed, fmt_ms(q[0], 32, &e->hist, 50), fmt_ms(q[1], 32, &e->hist, 90),
			       fmt_ms(q[2], 32, &e->hist, 99), fmt_ms(q[3], 32, &e->hist, 100));
	}
	iac_buf_puts(b, "</table>\n");
}

/* One cell of the metrics table: a trend's figure in its unit, or "-". */
static void html_trend_cell(iac_buf *b, const iac_lt_hist *h, enum iac_lt_metric m, double pct, const char *u)
{
	if (h && h->count)
		iac_buf_printf(b, "<td>%.4g%s</td>", hist_ms(h, m, pct), u);
	else
		iac_buf_puts(b, "<td>-</td>");
}

/* Custom metrics, the sub-metrics thresholds select by tag, and groups: what
 * the summary's "metrics" section shows, one row each, with the columns of
 * a trend (counters, gauges and rates fill the first). */
static void html_metrics(iac_buf *b, const iac_lt_result *r)
{
	const iac_lt_stats *s = r->total;
	double el = r->elapsed_s > 0 ? r->elapsed_s : 1;
	if (!s->nmacc)
		return;
	iac_buf_puts(b, "<h2>Metrics</h2><table id=\"metrics\"><tr><th>metric</th><th>type</th><th>value</th>"
			"<th>avg</th><th>min</th><th>med</th><th>p95</th><th>p99</th><th>max</th><th>count</th></tr>");
	for (size_t i = 0; i < s->nmacc; i++) {
		const iac_lt_macc *m = &s->macc[i];
		iac_buf_puts(b, "<tr><td>");
		html_esc(b, m->name);
		iac_buf_printf(b, "</td><td>%s</td>", iac_lt_mtype_name(m->type));
		switch (m->type) {
		case IAC_LT_COUNTER:
			iac_buf_printf(b, "<td>%.15g (%.2f/s)</td><td colspan=\"6\"></td><td>%.15g</td>", m->sum,
				       m->sum / el, m->sum);
			break;
		case IAC_LT_GAUGE:
			iac_buf_printf(b, "<td>%g</td><td></td><td>%g</td><td></td><td></td><td></td><td>%g</td><td></td>",
				       m->last, m->min, m->max);
			break;
		case IAC_LT_RATE:
			iac_buf_printf(b, "<td>%.2f%% (%llu of %llu)</td><td colspan=\"6\"></td><td>%llu</td>",
				       m->n ? 100.0 * (double)m->nonzero / (double)m->n : 0,
				       (unsigned long long)m->nonzero, (unsigned long long)m->n, (unsigned long long)m->n);
			break;
		case IAC_LT_TREND: {
			const char *u = macc_is_time(r->cfg, m->name) ? " ms" : "";
			const iac_lt_hist *h = m->hist;
			iac_buf_puts(b, "<td></td>");
			html_trend_cell(b, h, IAC_LT_M_AVG, 0, u);
			html_trend_cell(b, h, IAC_LT_M_MIN, 0, u);
			html_trend_cell(b, h, IAC_LT_M_MED, 0, u);
			html_trend_cell(b, h, IAC_LT_M_PCT, 95, u);
			html_trend_cell(b, h, IAC_LT_M_PCT, 99, u);
			html_trend_cell(b, h, IAC_LT_M_MAX, 0, u);
			iac_buf_printf(b, "<td>%llu</td>", (unsigned long long)(h ? h->count : 0));
			break;
		}
		}
		iac_buf_puts(b, "</tr>");
	}
	iac_buf_puts(b, "</table>\n");
}

static void html_errors(iac_buf *b, const iac_lt_config *cfg, const iac_lt_stats *s)
{
	if (!s->failed)
		return;
	iac_buf_puts(b, "<h2>Errors by kind</h2><p>");
	iac_buf eb = IAC_BUF_INIT;
	errors_by_kind(&eb, cfg, s, "; ");
	html_esc(b, iac_buf_cstr(&eb));
	iac_buf_free(&eb);
	iac_buf_puts(b, "</p>\n");
}

static void html_checks(iac_buf *b, const iac_lt_stats *s)
{
	if (!s->nchecks)
		return;
	iac_buf_puts(b, "<h2>Checks</h2><table id=\"checks\"><tr><th>check</th><th>passed</th><th>failed</th>"
			"<th>rate</th></tr>");
	for (size_t i = 0; i < s->nchecks; i++) {
		const iac_lt_check *c = &s->checks[i];
		uint64_t tot = c->pass + c->fail;
		iac_buf_puts(b, "<tr><td>");
		html_esc(b, c->name);
		iac_buf_printf(b, "</td><td>%llu</td><td>%llu</td><td>%.2f%%</td></tr>", (unsigned long long)c->pass,
			       (unsigned long long)c->fail, tot ? 100.0 * (double)c->pass / (double)tot : 0.0);
	}
	iac_buf_puts(b, "</table>\n");
}

static void html_thresholds(iac_buf *b, const iac_lt_config *cfg)
{
	if (!cfg->nthresholds)
		return;
	iac_buf_puts(b, "<h2>Thresholds</h2><table id=\"thresholds\"><tr><th>metric</th><th>condition</th>"
			"<th>value</th><th>result</th></tr>");
	for (size_t i = 0; i < cfg->nthresholds; i++) {
		const iac_lt_threshold *t = &cfg->thresholds[i];
		char cond[200], val[160];
		fmt_cond(cond, sizeof(cond), t);
		fmt_value(val, sizeof(val), t);
		iac_buf_puts(b, "<tr><td>");
		html_esc(b, t->key);
		iac_buf_puts(b, "</td><td>");
		html_esc(b, cond);
		iac_buf_puts(b, "</td><td>");
		html_esc(b, val);
		iac_buf_printf(b, "</td><td class=\"%s\">%s</td></tr>", t->ok ? "ok" : "fail", t->ok ? "pass" : "FAIL");
	}
	iac_buf_puts(b, "</table>\n");
}

static void html_script_errors(iac_buf *b, const iac_lt_stats *s)
{
	if (!s->script_errors)
		return;
	iac_buf_printf(b, "<h2>Script errors (%llu)</h2><ul>", (unsigned long long)s->script_errors);
	for (size_t i = 0; i < s->nscript_msgs; i++) {
		iac_buf_printf(b, "<li>%llu &times; ", (unsigned long long)s->script_counts[i]);
		html_esc(b, s->script_msgs[i]);
		iac_buf_puts(b, "</li>");
	}
	iac_buf_puts(b, "</ul>\n");
}

void iac_lt_report_html(iac_buf *out, const iac_lt_result *r)
{
	html_head(out, r);
	html_banners(out, r);
	html_summary(out, r);
	html_charts(out, r);
	html_endpoints(out, r);
	html_errors(out, r->cfg, r->total);
	html_checks(out, r->total);
	html_metrics(out, r);
	html_thresholds(out, r->cfg);
	html_script_errors(out, r->total);
	iac_buf_puts(out, "<h2>How to read this</h2><p>Each point is one second of the run. Latency is measured per "
			  "request from when it was due: in the arrival-rate executors a request that had to wait "
			  "counts its wait. Percentiles come from histograms with under 1% relative error. "
			  "Server-side figures (when observed) share the same time axis. A result is marked not "
			  "valid when the load generator's own CPU was the bottleneck.</p>\n</body></html>\n");
}

int iac_lt_report_write_html(const iac_lt_result *r, const char *path)
{
	iac_buf b = IAC_BUF_INIT;
	iac_lt_report_html(&b, r);
	int rc = iac_file_write_atomic(path, b.ptr, b.len, 0644);
	iac_buf_free(&b);
	if (rc < 0)
		iac_err_prefix("cannot write the HTML report '%s'", path);
	return rc;
}
