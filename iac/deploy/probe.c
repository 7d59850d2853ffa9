/* probe: health, analysis and Prometheus gates over libcurl (see probe.h). */
#include "iac/deploy/probe.h"

#include <curl/curl.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/http/http.h"
#include "iac/http/xfer.h"

#define BODY_MAX (8u << 20)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_ok;

static void curl_init_once(void)
{
	curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

static int need_curl(void)
{
	pthread_once(&curl_once, curl_init_once);
	return curl_ok ? 0 : iac_err_set("cannot initialise libcurl");
}

static const char *const verdict_names[] = { "passed", "failed", "inconclusive", "error" };

const char *iac_probe_verdict_name(enum iac_probe_verdict v)
{
	return (unsigned)v < 4 ? verdict_names[v] : "?";
}

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	(void)ptr;
	(void)ud;
	return size * nmemb;
}

static CURL *new_easy(double timeout_ms, char *errbuf)
{
	CURL *e = curl_easy_init();
	if (!e)
		return NULL;
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "iac-probe/" IAC_VERSION);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms < 2000 ? timeout_ms : 2000));
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	/* the gates judge the instance itself, not where it redirects */
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	return e;
}

static void describe_curl(char *out, size_t cap, CURLcode code, const char *errbuf)
{
	snprintf(out, cap, "%s", errbuf && *errbuf ? errbuf : curl_easy_strerror(code));
}

/* ---- health gate -------------------------------------------------------- */

typedef struct {
	CURL *easy;
	int busy;
	double next_ms;
	char errbuf[CURL_ERROR_SIZE];
} hslot;

void iac_probe_health_free(iac_probe_health_result *r)
{
	for (size_t i = 0; r->instances && i < r->n; i++)
		free(r->instances[i].url);
	free(r->instances);
	r->instances = NULL;
	r->n = 0;
}

static char *join_url(const char *base, const char *path)
{
	size_t bl = strlen(base);
	if (!*path)
		return iac_xstrdup(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	return iac_xasprintf("%.*s%s%s", (int)bl, base, path[0] == '/' ? "" : "/", path);
}

/* The health gate's options with probe.h's defaults applied. */
typedef struct {
	const char *path;
	long expect;
	double interval_ms;
	int healthy;
	double timeout_ms;
	double request_timeout_ms;
} health_plan;

static void health_resolve(health_plan *p, const iac_probe_health_opts *o)
{
	p->path = o->path ? o->path : "/health";
	p->expect = o->expect > 0 ? o->expect : 200;
	p->interval_ms = o->interval_ms > 0 ? o->interval_ms : 500;
	p->healthy = o->healthy > 0 ? o->healthy : 3;
	p->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
	p->request_timeout_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms
				: (p->interval_ms > 1000 ? p->interval_ms : 1000);
}

/* One gate in progress: slots[i] polls out->instances[i]. */
typedef struct {
	health_plan p;
	iac_probe_health_result *out;
	CURLM *multi;
	hslot *slots;
	size_t n, done_count;
	double t0, deadline;
} health_run;

static int health_setup(health_run *r, const iac_probe_health_opts *o)
{
	r->multi = curl_multi_init();
	r->slots = iac_xcalloc(r->n, sizeof(*r->slots));
	r->out->instances = iac_xcalloc(r->n, sizeof(*r->out->instances));
	r->out->n = r->n;
	for (size_t i = 0; i < r->n; i++) {
		iac_probe_instance *in = &r->out->instances[i];
		hslot *s = &r->slots[i];
		in->url = join_url(o->urls[i], r->p.path);
		in->healthy_ms = -1;
		s->easy = new_easy(r->p.request_timeout_ms, s->errbuf);
		if (!r->multi || !s->easy)
			return iac_err_set("health gate could not run: cannot create a libcurl handle");
		curl_easy_setopt(s->easy, CURLOPT_URL, in->url);
		curl_easy_setopt(s->easy, CURLOPT_PRIVATE, (void *)s);
		s->next_ms = r->t0;
	}
	return 0;
}

/* Start the polls that are due: one request per instance at a time, one
 * interval apart, none after the deadline. */
static void health_start_due(health_run *r, double now)
{
	for (size_t i = 0; i < r->n; i++) {
		hslot *s = &r->slots[i];
		if (r->out->instances[i].healthy || s->busy || s->next_ms > now || now >= r->deadline)
			continue;
		s->errbuf[0] = '\0';
		s->busy = 1;
		s->next_ms = now + r->p.interval_ms;
		r->out->instances[i].attempts++;
		curl_multi_add_handle(r->multi, s->easy);
	}
}

/* Count one answer (or its absence) towards the instance's streak; a
 * failure restarts it: `healthy` counts consecutive successes (probe.h). */
static void health_record(health_run *r, iac_probe_instance *in, CURLcode res, long status, const char *errbuf)
{
	in->last_status = res == CURLE_OK ? status : 0;
	if (res == CURLE_OK && status == r->p.expect) {
		in->last_error[0] = '\0';
		if (++in->streak >= r->p.healthy) {
			in->healthy = 1;
			in->healthy_ms = iac_now_ms() - r->t0;
			r->done_count++;
		}
		return;
	}
	in->streak = 0;
	if (res != CURLE_OK)
		describe_curl(in->last_error, sizeof(in->last_error), res, errbuf);
	else
		snprintf(in->last_error, sizeof(in->last_error), "answered %ld (expected %ld)", status,
			 r->p.expect);
}

static void health_collect(health_run *r)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(r->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		hslot *s = NULL;
		long status = 0;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		health_record(r, &r->out->instances[s - r->slots], msg->data.result, status, s->errbuf);
		curl_multi_remove_handle(r->multi, msg->easy_handle);
		s->busy = 0;
	}
}

static int health_busy(const health_run *r)
{
	int busy = 0;
	for (size_t i = 0; i < r->n; i++)
		busy += r->slots[i].busy;
	return busy;
}

/* Sleep until the next poll is due or curl has something; at most 100 ms,
 * since a cancel is only noticed between waits. */
static double health_wait_ms(const health_run *r, double now)
{
	double wait = r->deadline - now;
	for (size_t i = 0; i < r->n; i++)
		if (!r->out->instances[i].healthy && !r->slots[i].busy && r->slots[i].next_ms - now < wait)
			wait = r->slots[i].next_ms - now;
	if (wait < 0)
		wait = 0;
	if (wait > 100)
		wait = 100;
	return wait;
}

/* "health gate failed after 30012 ms: 'http://..' answered 500 (expected
 * 200), 0 of 3 consecutive successes; ...": the first three, then a count. */
static void health_fail_message(const health_run *r)
{
	iac_buf why = IAC_BUF_INIT;
	size_t bad = 0;
	for (size_t i = 0; i < r->n; i++) {
		const iac_probe_instance *in = &r->out->instances[i];
		if (in->healthy)
			continue;
		if (bad++ < 3)
			iac_buf_printf(&why, "%s'%s' %s, %d of %d consecutive successes", bad > 1 ? "; " : "",
				       in->url, in->last_error[0] ? in->last_error : "never answered",
				       in->streak, r->p.healthy);
	}
	if (bad > 3)
		iac_buf_printf(&why, "; and %zu more", bad - 3);
	iac_err_set("health gate failed after %.0f ms: %s", r->out->elapsed_ms, iac_buf_cstr(&why));
	iac_buf_free(&why);
}

static void health_cleanup(health_run *r)
{
	for (size_t i = 0; r->slots && i < r->n; i++) {
		if (r->slots[i].easy) {
			if (r->slots[i].busy)
				curl_multi_remove_handle(r->multi, r->slots[i].easy);
			curl_easy_cleanup(r->slots[i].easy);
		}
	}
	free(r->slots);
	if (r->multi)
		curl_multi_cleanup(r->multi);
}

int iac_probe_health(iac_probe_health_result *out, const iac_probe_health_opts *o)
{
	health_run r = { .out = out, .n = o->n_urls, .t0 = iac_now_ms() };
	int rc = IAC_ERR, cancelled = 0;

	health_resolve(&r.p, o);
	r.deadline = r.t0 + r.p.timeout_ms;
	memset(out, 0, sizeof(*out));
	out->verdict = IAC_PROBE_ERROR;
	if (r.n == 0)
		return iac_err_set("health gate could not run: no instances to check");
	if (need_curl() < 0)
		return IAC_ERR;
	if (health_setup(&r, o) < 0)
		goto done;
	while (r.done_count < r.n) {
		int running = 0;
		if (o->cancel && *o->cancel) {
			cancelled = 1;
			break;
		}
		health_start_due(&r, iac_now_ms());
		curl_multi_perform(r.multi, &running);
		health_collect(&r);
		if (r.done_count == r.n)
			break;
		double now = iac_now_ms();
		if (now >= r.deadline && !health_busy(&r))
			break;
		curl_multi_poll(r.multi, NULL, 0, (int)health_wait_ms(&r, now), NULL);
	}
	out->elapsed_ms = iac_now_ms() - r.t0;
	if (cancelled) {
		iac_err_set("health gate cancelled after %.0f ms", out->elapsed_ms);
	} else if (r.done_count == r.n) {
		out->verdict = IAC_PROBE_PASSED;
		rc = 0;
	} else {
		out->verdict = IAC_PROBE_FAILED;
		health_fail_message(&r);
	}
done:
	health_cleanup(&r);
	return rc;
}

json_t *iac_probe_health_json(const iac_probe_health_result *r)
{
	json_t *inst = json_array();
	for (size_t i = 0; i < r->n; i++) {
		const iac_probe_instance *in = &r->instances[i];
		json_array_append_new(inst, json_pack("{s:s,s:b,s:i,s:I,s:I,s:s,s:f}",
			"url", in->url, "healthy", in->healthy, "streak", in->streak,
			"attempts", (json_int_t)in->attempts, "last_status", (json_int_t)in->last_status,
			"last_error", in->last_error, "healthy_ms", in->healthy_ms));
	}
	return json_pack("{s:s,s:f,s:o}", "verdict", iac_probe_verdict_name(r->verdict),
			 "elapsed_ms", r->elapsed_ms, "instances", inst);
}

/* ---- analysis ----------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double iac_probe_percentile(double *values, size_t n, double p)
{
	if (n == 0)
		return 0;
	qsort(values, n, sizeof(*values), cmp_double);
	/* nearest rank: the smallest value with at least p % at or below it */
	double rank = ceil(p / 100.0 * (double)n);
	size_t idx = rank < 1 ? 0 : (size_t)rank - 1;
	if (idx >= n)
		idx = n - 1;
	return values[idx];
}

typedef struct {
	CURL *easy;
	int busy;
	char errbuf[CURL_ERROR_SIZE];
} aslot;

/* The analysis' options with probe.h's defaults applied. */
typedef struct {
	double duration_ms;
	int conc;
	double request_timeout_ms;
} analysis_plan;

static void analysis_resolve(analysis_plan *p, const iac_probe_analysis_opts *o)
{
	p->duration_ms = o->duration_ms > 0 ? o->duration_ms : 10000;
	p->conc = o->concurrency > 0 ? o->concurrency : 4;
	p->request_timeout_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : 5000;
}

/* One analysis in progress. */
typedef struct {
	const iac_probe_analysis_opts *o;
	analysis_plan p;
	iac_probe_analysis_result *out;
	CURLM *multi;
	aslot *slots;
	double t0, t_end;        /* t_end: no request starts from then on */
	double next_start;       /* with a rate cap: when the next request may start */
	size_t url_i;            /* round-robin over o->urls */
	double *lat, sum;        /* latencies (ms) of the answered requests */
	size_t nlat, caplat;
} analysis_run;

static int analysis_setup(analysis_run *r)
{
	r->multi = curl_multi_init();
	r->slots = iac_xcalloc((size_t)r->p.conc, sizeof(*r->slots));
	for (int i = 0; i < r->p.conc; i++) {
		r->slots[i].easy = new_easy(r->p.request_timeout_ms, r->slots[i].errbuf);
		if (!r->multi || !r->slots[i].easy)
			return iac_err_set("analysis could not run: cannot create a libcurl handle");
		curl_easy_setopt(r->slots[i].easy, CURLOPT_PRIVATE, (void *)&r->slots[i]);
	}
	if (r->multi)
		curl_multi_setopt(r->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)r->p.conc);
	return 0;
}

/* Give every free slot its next request, as the rate cap allows. */
static void analysis_start(analysis_run *r, double now)
{
	const iac_probe_analysis_opts *o = r->o;
	for (int i = 0; i < r->p.conc && now < r->t_end; i++) {
		if (r->slots[i].busy)
			continue;
		if (o->rate > 0) {
			if (r->next_start > now)
				break;
			/* do not burst to catch up after a stall */
			if (r->next_start < now - 1000)
				r->next_start = now;
			r->next_start += 1000.0 / o->rate;
		}
		curl_easy_setopt(r->slots[i].easy, CURLOPT_URL, o->urls[r->url_i++ % o->n_urls]);
		r->slots[i].errbuf[0] = '\0';
		r->slots[i].busy = 1;
		curl_multi_add_handle(r->multi, r->slots[i].easy);
	}
}

/* Count one finished request: no answer and 5xx are errors; only answered
 * requests have a latency (probe.h). */
static void analysis_record(analysis_run *r, CURLcode res, long status, curl_off_t us, const char *errbuf)
{
	iac_probe_analysis_result *out = r->out;
	out->requests++;
	if (res != CURLE_OK) {
		out->transport_errors++;
		out->errors++;
		if (!out->reason[0])
			describe_curl(out->reason, sizeof(out->reason), res, errbuf);
		return;
	}
	if (status >= 500) {
		out->status_5xx++;
		out->errors++;
	} else if (status >= 400) {
		out->status_4xx++;
	}
	if (r->nlat == r->caplat) {
		r->caplat = r->caplat ? r->caplat * 2 : 4096;
		r->lat = iac_xrealloc(r->lat, r->caplat * sizeof(*r->lat));
	}
	r->lat[r->nlat++] = (double)us / 1e3;
	r->sum += (double)us / 1e3;
}

static void analysis_collect(analysis_run *r)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(r->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		aslot *s = NULL;
		long status = 0;
		curl_off_t us = 0;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_getinfo(msg->easy_handle, CURLINFO_TOTAL_TIME_T, &us);
		analysis_record(r, msg->data.result, status, us, s->errbuf);
		curl_multi_remove_handle(r->multi, msg->easy_handle);
		s->busy = 0;
	}
}

/* Run requests until t_end (or a cancel), then let the ones in flight
 * finish. Returns 1 when cancelled. */
static int analysis_drive(analysis_run *r)
{
	int cancelled = 0;
	for (;;) {
		double now = iac_now_ms();
		int running = 0, busy = 0;
		if (r->o->cancel && *r->o->cancel && !cancelled) {
			cancelled = 1;
			r->t_end = now;   /* start nothing more; finish what runs */
		}
		analysis_start(r, now);
		curl_multi_perform(r->multi, &running);
		analysis_collect(r);
		for (int i = 0; i < r->p.conc; i++)
			busy += r->slots[i].busy;
		now = iac_now_ms();
		if (now >= r->t_end && !busy)
			return cancelled;
		/* a free slot starts its next request at once (or when the rate
		 * allows); with every slot busy only an answer can wake us */
		double wait = 50;
		if (busy < r->p.conc && now < r->t_end) {
			wait = r->o->rate > 0 ? r->next_start - now : 0;
			if (r->t_end - now < wait)
				wait = r->t_end - now;
		}
		if (wait <= 0)
			continue;
		curl_multi_poll(r->multi, NULL, 0, (int)wait, NULL);
	}
}

/* Rates and percentiles from the counters and latencies. */
static void analysis_summarise(iac_probe_analysis_result *out, double *lat, size_t nlat, double sum)
{
	out->rps = out->elapsed_ms > 0 ? (double)out->requests * 1e3 / out->elapsed_ms : 0;
	out->error_rate = out->requests ? (double)out->errors / (double)out->requests : 0;
	if (nlat) {
		out->mean_ms = sum / (double)nlat;
		out->p50_ms = iac_probe_percentile(lat, nlat, 50);
		out->p90_ms = iac_probe_percentile(lat, nlat, 90);
		out->p99_ms = iac_probe_percentile(lat, nlat, 99);
		out->max_ms = lat[nlat - 1];
	}
}

int iac_probe_analysis_judge(iac_probe_analysis_result *out, const iac_probe_analysis_opts *o, int cancelled)
{
	long min_requests = o->min_requests > 0 ? o->min_requests : 10;
	char first_error[96];

	snprintf(first_error, sizeof(first_error), "%.90s", out->reason);
	if (cancelled) {
		out->verdict = IAC_PROBE_ERROR;
		snprintf(out->reason, sizeof(out->reason), "cancelled after %.0f ms (%ld requests)",
			 out->elapsed_ms, out->requests);
	} else if (out->requests < min_requests) {
		/* too few to judge: Argo's Inconclusive, not a pass */
		out->verdict = IAC_PROBE_INCONCLUSIVE;
		snprintf(out->reason, sizeof(out->reason), "only %ld requests completed in %.0f ms "
			 "(at least %ld needed)", out->requests, out->elapsed_ms, min_requests);
	} else if (o->max_error_rate >= 0 && out->error_rate > o->max_error_rate) {
		out->verdict = IAC_PROBE_FAILED;
		snprintf(out->reason, sizeof(out->reason), "error rate %.2f%% > %.2f%% (%ld of %ld requests: "
			 "%ld 5xx, %ld without answer%s%s)", out->error_rate * 100, o->max_error_rate * 100,
			 out->errors, out->requests, out->status_5xx, out->transport_errors,
			 first_error[0] ? ", " : "", first_error);
	} else if (o->max_p99_ms > 0 && out->p99_ms > o->max_p99_ms) {
		out->verdict = IAC_PROBE_FAILED;
		snprintf(out->reason, sizeof(out->reason), "p99 %.4g ms > %.4g ms (p50 %.4g ms, %ld requests)",
			 out->p99_ms, o->max_p99_ms, out->p50_ms, out->requests);
	} else {
		out->verdict = IAC_PROBE_PASSED;
		snprintf(out->reason, sizeof(out->reason), "error rate %.2f%%, p99 %.4g ms over %ld requests",
			 out->error_rate * 100, out->p99_ms, out->requests);
	}
	if (out->verdict == IAC_PROBE_PASSED)
		return 0;
	return iac_err_set("analysis %s: %s", cancelled ? "stopped" :
			   out->verdict == IAC_PROBE_FAILED ? "failed" : "inconclusive", out->reason);
}

static void analysis_cleanup(analysis_run *r)
{
	for (int i = 0; r->slots && i < r->p.conc; i++) {
		if (r->slots[i].easy) {
			if (r->slots[i].busy)
				curl_multi_remove_handle(r->multi, r->slots[i].easy);
			curl_easy_cleanup(r->slots[i].easy);
		}
	}
	free(r->slots);
	free(r->lat);
	if (r->multi)
		curl_multi_cleanup(r->multi);
}

int iac_probe_analysis(iac_probe_analysis_result *out, const iac_probe_analysis_opts *o)
{
	analysis_run r = { .o = o, .out = out, .t0 = iac_now_ms() };
	int rc = IAC_ERR, cancelled;

	analysis_resolve(&r.p, o);
	r.t_end = r.t0 + r.p.duration_ms;
	r.next_start = r.t0;
	memset(out, 0, sizeof(*out));
	out->verdict = IAC_PROBE_ERROR;
	if (o->n_urls == 0)
		return iac_err_set("analysis could not run: no URLs to probe");
	if (need_curl() < 0)
		return IAC_ERR;
	if (analysis_setup(&r) < 0)
		goto done;
	cancelled = analysis_drive(&r);
	out->elapsed_ms = iac_now_ms() - r.t0;
	analysis_summarise(out, r.lat, r.nlat, r.sum);
	rc = iac_probe_analysis_judge(out, o, cancelled);
done:
	analysis_cleanup(&r);
	return rc;
}

json_t *iac_probe_analysis_json(const iac_probe_analysis_result *r)
{
	json_t *j = json_pack("{s:s,s:I,s:I,s:f,s:I,s:I,s:I}",
		"verdict", iac_probe_verdict_name(r->verdict), "requests", (json_int_t)r->requests,
		"errors", (json_int_t)r->errors, "error_rate", r->error_rate,
		"status_5xx", (json_int_t)r->status_5xx, "status_4xx", (json_int_t)r->status_4xx,
		"transport_errors", (json_int_t)r->transport_errors);
	json_object_set_new(j, "p50_ms", json_real(r->p50_ms));
	json_object_set_new(j, "p90_ms", json_real(r->p90_ms));
	json_object_set_new(j, "p99_ms", json_real(r->p99_ms));
	json_object_set_new(j, "max_ms", json_real(r->max_ms));
	json_object_set_new(j, "mean_ms", json_real(r->mean_ms));
	json_object_set_new(j, "elapsed_ms", json_real(r->elapsed_ms));
	json_object_set_new(j, "rps", json_real(r->rps));
	json_object_set_new(j, "reason", json_string(r->reason));
	return j;
}

/* ---- prometheus --------------------------------------------------------- */

char *iac_probe_prom_url(const char *base, const char *query)
{
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	char *q = iac_xfer_escape(query);
	char *url = iac_xasprintf("%.*s/api/v1/query?query=%s", (int)bl, base, q);
	free(q);
	return url;
}

/* Parse "1.5", "NaN", "+Inf" as Prometheus prints sample values. */
static int sample_value(double *out, const json_t *pair)
{
	const json_t *v = json_array_get(pair, 1);
	char *end;
	if (!json_is_string(v))
		return -1;
	*out = strtod(json_string_value(v), &end);
	return *end ? -1 : 0;
}

static int prom_finish(iac_probe_prom_result *out, enum iac_probe_verdict v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int prom_finish(iac_probe_prom_result *out, enum iac_probe_verdict v, const char *fmt, ...)
{
	va_list ap;
	out->verdict = v;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
	if (v == IAC_PROBE_PASSED)
		return 0;
	return iac_err_set("prometheus gate %s: %s",
			   v == IAC_PROBE_FAILED ? "failed" : v == IAC_PROBE_INCONCLUSIVE ? "inconclusive"
			   : "could not run", out->reason);
}

/* status "success", else the error Prometheus gives. */
static int prom_status(iac_probe_prom_result *out, const json_t *root, const char *query)
{
	const char *status = iac_json_str(root, "status");
	if (status && !strcmp(status, "success"))
		return 0;
	const char *etype = iac_json_str(root, "errorType");
	const char *emsg = iac_json_str(root, "error");
	return prom_finish(out, IAC_PROBE_ERROR, "query '%s': %s: %s", query, etype ? etype : "error",
			   emsg ? emsg : "no error message");
}

/* The sample values of an instant vector or a scalar: *vals (caller
 * frees, even on failure) and out->n_values. A range vector or a string
 * cannot be compared with a limit. */
static int prom_values(double **vals, iac_probe_prom_result *out, const json_t *root, const char *query)
{
	json_t *data = json_object_get(root, "data");
	const char *type = iac_json_str(data, "resultType");
	json_t *result = json_object_get(data, "result"), *s;
	size_t i, n = 0;

	snprintf(out->result_type, sizeof(out->result_type), "%s", type ? type : "");
	if (type && !strcmp(type, "vector") && json_is_array(result)) {
		*vals = iac_xcalloc(json_array_size(result) + 1, sizeof(**vals));
		json_array_foreach(result, i, s) {
			if (sample_value(&(*vals)[n], json_object_get(s, "value")) < 0)
				return prom_finish(out, IAC_PROBE_ERROR, "query '%s': sample %zu has no value",
						   query, i);
			n++;
		}
	} else if (type && !strcmp(type, "scalar") && json_is_array(result)) {
		*vals = iac_xcalloc(1, sizeof(**vals));
		if (sample_value(&(*vals)[0], result) < 0)
			return prom_finish(out, IAC_PROBE_ERROR, "query '%s': the scalar has no value", query);
		n = 1;
	} else {
		return prom_finish(out, IAC_PROBE_ERROR, "query '%s' returned a %s; a gate needs an instant "
				   "vector or a scalar", query, type ? type : "result of unknown type");
	}
	out->n_values = n;
	return 0;
}

/* Argo Rollouts' verdicts: no data or NaN is inconclusive (not a pass);
 * with several series the worst one decides. */
static int prom_compare(iac_probe_prom_result *out, const double *vals, size_t n, const char *query,
			double min, double max)
{
	if (n == 0)
		return prom_finish(out, IAC_PROBE_INCONCLUSIVE, "query '%s' returned no data (is the metric "
				   "scraped yet?)", query);
	double hi = -INFINITY, lo = INFINITY;
	for (size_t i = 0; i < n; i++) {
		if (isnan(vals[i]))
			return prom_finish(out, IAC_PROBE_INCONCLUSIVE, "query '%s' returned NaN (no traffic "
					   "to compute a ratio from?)", query);
		if (vals[i] > hi)
			hi = vals[i];
		if (vals[i] < lo)
			lo = vals[i];
	}
	out->value = !isnan(max) || isnan(min) ? hi : lo;
	if (!isnan(max) && hi > max) {
		out->value = hi;
		return prom_finish(out, IAC_PROBE_FAILED, "query '%s' = %g > max %g%s", query, hi, max,
				   n > 1 ? " (the largest of the series)" : "");
	}
	if (!isnan(min) && lo < min) {
		out->value = lo;
		return prom_finish(out, IAC_PROBE_FAILED, "query '%s' = %g < min %g%s", query, lo, min,
				   n > 1 ? " (the smallest of the series)" : "");
	}
	if (isnan(max) && isnan(min))
		return prom_finish(out, IAC_PROBE_PASSED, "query '%s' = %g (no limit set)", query, out->value);
	return prom_finish(out, IAC_PROBE_PASSED, "query '%s' = %g within limits", query, out->value);
}

int iac_probe_prom_judge(iac_probe_prom_result *out, const char *body, const char *query,
			 double min, double max)
{
	json_error_t jerr;
	json_t *root = json_loads(body ? body : "", 0, &jerr);
	double *vals = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	out->value = NAN;
	if (!root)
		rc = prom_finish(out, IAC_PROBE_ERROR, "query '%s': the answer is not JSON (%s)", query,
				 jerr.text);
	else if ((rc = prom_status(out, root, query)) == 0 && (rc = prom_values(&vals, out, root, query)) == 0)
		rc = prom_compare(out, vals, out->n_values, query, min, max);
	free(vals);
	json_decref(root);
	return rc;
}

/* The query goes through the shared HTTP layer (iac/http): keep-alive,
 * TLS verification, and a 503 or a refused connection from a Prometheus
 * that restarts is retried twice with backoff before the gate gives up. */
int iac_probe_prometheus(iac_probe_prom_result *out, const iac_probe_prom_opts *o)
{
	double timeout = o->timeout_ms > 0 ? o->timeout_ms : 5000;
	iac_http_resp resp = { 0 };
	iac_http *h = NULL;
	char *url = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	out->value = NAN;
	if (!o->url || !*o->url || !o->query || !*o->query)
		return prom_finish(out, IAC_PROBE_ERROR, "a Prometheus url and a query are required");
	iac_http_opts ho = { .name = "the Prometheus gate", .base_url = o->url, .timeout_ms = timeout,
			     .retries = 2, .backoff_ms = 100 };
	if (iac_http_new(&h, &ho) < 0) {
		rc = prom_finish(out, IAC_PROBE_ERROR, "%s", iac_err_last());
		goto done;
	}
	url = iac_probe_prom_url(o->url, o->query);
	if (iac_http_request(&resp, h, "GET", url, NULL, NULL) < 0) {
		/* Prometheus explains a 503 in JSON: let the judge say it */
		if (resp.status >= 500 && resp.body && resp.body[0] == '{')
			rc = iac_probe_prom_judge(out, resp.body, o->query, o->min, o->max);
		else
			rc = prom_finish(out, IAC_PROBE_ERROR, "cannot query '%s': %s", o->url, iac_err_last());
		goto done;
	}
	/* and 400/422 too */
	if (resp.status != 200 && (!resp.len || resp.body[0] != '{')) {
		rc = prom_finish(out, IAC_PROBE_ERROR, "'%s' answered HTTP %ld (is it Prometheus?)", o->url,
				 resp.status);
		goto done;
	}
	rc = iac_probe_prom_judge(out, resp.body, o->query, o->min, o->max);
done:
	iac_http_resp_free(&resp);
	iac_http_free(h);
	free(url);
	return rc;
}

json_t *iac_probe_prom_json(const iac_probe_prom_result *r)
{
	json_t *j = json_pack("{s:s,s:s,s:I,s:s}", "verdict", iac_probe_verdict_name(r->verdict),
			      "result_type", r->result_type, "n_values", (json_int_t)r->n_values,
			      "reason", r->reason);
	/* JSON has no NaN: no data is null */
	json_object_set_new(j, "value", isnan(r->value) || isinf(r->value) ? json_null() : json_real(r->value));
	return j;
}
