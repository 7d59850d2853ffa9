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

static size_t keep_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	iac_buf *b = ud;
	if (b->len + size * nmemb > BODY_MAX)
		return 0;   /* makes curl fail with a write error */
	iac_buf_put(b, ptr, size * nmemb);
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

int iac_probe_health(iac_probe_health_result *out, const iac_probe_health_opts *o)
{
	const char *path = o->path ? o->path : "/health";
	long expect = o->expect > 0 ? o->expect : 200;
	double interval = o->interval_ms > 0 ? o->interval_ms : 500;
	int healthy = o->healthy > 0 ? o->healthy : 3;
	double timeout = o->timeout_ms > 0 ? o->timeout_ms : 30000;
	double req_timeout = o->request_timeout_ms > 0 ? o->request_timeout_ms
			   : (interval > 1000 ? interval : 1000);
	double t0 = iac_now_ms(), deadline = t0 + timeout;
	CURLM *multi = NULL;
	hslot *slots = NULL;
	size_t n = o->n_urls, done_count = 0;
	int rc = IAC_ERR;

	memset(out, 0, sizeof(*out));
	out->verdict = IAC_PROBE_ERROR;
	if (n == 0)
		return iac_err_set("health gate could not run: no instances to check");
	if (need_curl() < 0)
		return IAC_ERR;
	multi = curl_multi_init();
	slots = iac_xcalloc(n, sizeof(*slots));
	out->instances = iac_xcalloc(n, sizeof(*out->instances));
	out->n = n;
	for (size_t i = 0; i < n; i++) {
		iac_probe_instance *in = &out->instances[i];
		in->url = join_url(o->urls[i], path);
		in->healthy_ms = -1;
		slots[i].easy = new_easy(req_timeout, slots[i].errbuf);
		if (!multi || !slots[i].easy) {
			iac_err_set("health gate could not run: cannot create a libcurl handle");
			goto done;
		}
		curl_easy_setopt(slots[i].easy, CURLOPT_URL, in->url);
		curl_easy_setopt(slots[i].easy, CURLOPT_PRIVATE, (void *)&slots[i]);
		slots[i].next_ms = t0;
	}

	int cancelled = 0;
	for (;;) {
		double now = iac_now_ms();
		int running = 0, busy = 0;
		if (done_count == n)
			break;
		if (o->cancel && *o->cancel) {
			cancelled = 1;
			break;
		}
		for (size_t i = 0; i < n; i++) {
			if (out->instances[i].healthy || slots[i].busy || slots[i].next_ms > now || now >= deadline)
				continue;
			slots[i].errbuf[0] = '\0';
			slots[i].busy = 1;
			slots[i].next_ms = now + interval;
			out->instances[i].attempts++;
			curl_multi_add_handle(multi, slots[i].easy);
		}
		curl_multi_perform(multi, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			hslot *s = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			size_t i = (size_t)(s - slots);
			iac_probe_instance *in = &out->instances[i];
			long status = 0;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			in->last_status = msg->data.result == CURLE_OK ? status : 0;
			if (msg->data.result == CURLE_OK && status == expect) {
				in->last_error[0] = '\0';
				if (++in->streak >= healthy) {
					in->healthy = 1;
					in->healthy_ms = iac_now_ms() - t0;
					done_count++;
				}
			} else {
				in->streak = 0;
				if (msg->data.result != CURLE_OK)
					describe_curl(in->last_error, sizeof(in->last_error), msg->data.result, s->errbuf);
				else
					snprintf(in->last_error, sizeof(in->last_error), "answered %ld (expected %ld)",
						 status, expect);
			}
			curl_multi_remove_handle(multi, msg->easy_handle);
			s->busy = 0;
		}
		if (done_count == n)
			break;
		for (size_t i = 0; i < n; i++)
			busy += slots[i].busy;
		now = iac_now_ms();
		if (now >= deadline && !busy)
			break;
		/* sleep until the next poll is due or curl has something */
		double wait = deadline - now;
		for (size_t i = 0; i < n; i++)
			if (!out->instances[i].healthy && !slots[i].busy && slots[i].next_ms - now < wait)
				wait = slots[i].next_ms - now;
		if (wait < 0)
			wait = 0;
		if (wait > 100)
			wait = 100;
		curl_multi_poll(multi, NULL, 0, (int)wait, NULL);
	}
	out->elapsed_ms = iac_now_ms() - t0;
	if (cancelled) {
		out->verdict = IAC_PROBE_ERROR;
		iac_err_set("health gate cancelled after %.0f ms", out->elapsed_ms);
		goto done;
	}
	if (done_count == n) {
		out->verdict = IAC_PROBE_PASSED;
		rc = 0;
		goto done;
	}
	out->verdict = IAC_PROBE_FAILED;
	{
		iac_buf why = IAC_BUF_INIT;
		size_t bad = 0;
		for (size_t i = 0; i < n; i++) {
			iac_probe_instance *in = &out->instances[i];
			if (in->healthy)
				continue;
			if (bad++ < 3)
				iac_buf_printf(&why, "%s'%s' %s, %d of %d consecutive successes", bad > 1 ? "; " : "",
					       in->url, in->last_error[0] ? in->last_error : "never answered",
					       in->streak, healthy);
		}
		if (bad > 3)
			iac_buf_printf(&why, "; and %zu more", bad - 3);
		iac_err_set("health gate failed after %.0f ms: %s", out->elapsed_ms, iac_buf_cstr(&why));
		iac_buf_free(&why);
	}
done:
	for (size_t i = 0; slots && i < n; i++) {
		if (slots[i].easy) {
			if (slots[i].busy)
				curl_multi_remove_handle(multi, slots[i].easy);
			curl_easy_cleanup(slots[i].easy);
		}
	}
	free(slots);
	if (multi)
		curl_multi_cleanup(multi);
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

int iac_probe_analysis(iac_probe_analysis_result *out, const iac_probe_analysis_opts *o)
{
	double duration = o->duration_ms > 0 ? o->duration_ms : 10000;
	int conc = o->concurrency > 0 ? o->concurrency : 4;
	double req_timeout = o->request_timeout_ms > 0 ? o->request_timeout_ms : 5000;
	long min_requests = o->min_requests > 0 ? o->min_requests : 10;
	double t0 = iac_now_ms(), t_end = t0 + duration, next_start = t0;
	double *lat = NULL, sum = 0;
	size_t nlat = 0, caplat = 0, url_i = 0;
	CURLM *multi = NULL;
	aslot *slots = NULL;
	int rc = IAC_ERR;

	memset(out, 0, sizeof(*out));
	out->verdict = IAC_PROBE_ERROR;
	if (o->n_urls == 0)
		return iac_err_set("analysis could not run: no URLs to probe");
	if (need_curl() < 0)
		return IAC_ERR;
	multi = curl_multi_init();
	slots = iac_xcalloc((size_t)conc, sizeof(*slots));
	for (int i = 0; i < conc; i++) {
		slots[i].easy = new_easy(req_timeout, slots[i].errbuf);
		if (!multi || !slots[i].easy) {
			iac_err_set("analysis could not run: cannot create a libcurl handle");
			goto done;
		}
		curl_easy_setopt(slots[i].easy, CURLOPT_PRIVATE, (void *)&slots[i]);
	}
	if (multi)
		curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conc);

	int cancelled = 0;
	for (;;) {
		double now = iac_now_ms();
		int running = 0, busy = 0;
		if (o->cancel && *o->cancel && !cancelled) {
			cancelled = 1;
			t_end = now;   /* start nothing more; finish what runs */
		}
		for (int i = 0; i < conc && now < t_end; i++) {
			if (slots[i].busy)
				continue;
			if (o->rate > 0) {
				if (next_start > now)
					break;
				/* do not burst to catch up after a stall */
				if (next_start < now - 1000)
					next_start = now;
				next_start += 1000.0 / o->rate;
			}
			curl_easy_setopt(slots[i].easy, CURLOPT_URL, o->urls[url_i++ % o->n_urls]);
			slots[i].errbuf[0] = '\0';
			slots[i].busy = 1;
			curl_multi_add_handle(multi, slots[i].easy);
		}
		curl_multi_perform(multi, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			aslot *s = NULL;
			long status = 0;
			curl_off_t us = 0;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_TOTAL_TIME_T, &us);
			out->requests++;
			if (msg->data.result != CURLE_OK) {
				out->transport_errors++;
				out->errors++;
				if (!out->reason[0])
					describe_curl(out->reason, sizeof(out->reason), msg->data.result, s->errbuf);
			} else {
				if (status >= 500) {
					out->status_5xx++;
					out->errors++;
				} else if (status >= 400) {
					out->status_4xx++;
				}
				if (nlat == caplat) {
					caplat = caplat ? caplat * 2 : 4096;
					lat = iac_xrealloc(lat, caplat * sizeof(*lat));
				}
				lat[nlat++] = (double)us / 1e3;
				sum += (double)us / 1e3;
			}
			curl_multi_remove_handle(multi, msg->easy_handle);
			s->busy = 0;
		}
		for (int i = 0; i < conc; i++)
			busy += slots[i].busy;
		now = iac_now_ms();
		if (now >= t_end && !busy)
			break;
		/* a free slot starts its next request at once (or when the rate
		 * allows); with every slot busy only an answer can wake us */
		double wait = 50;
		if (busy < conc && now < t_end) {
			wait = o->rate > 0 ? next_start - now : 0;
			if (t_end - now < wait)
				wait = t_end - now;
		}
		if (wait <= 0)
			continue;
		curl_multi_poll(multi, NULL, 0, (int)wait, NULL);
	}
	out->elapsed_ms = iac_now_ms() - t0;
	out->rps = out->elapsed_ms > 0 ? (double)out->requests * 1e3 / out->elapsed_ms : 0;
	out->error_rate = out->requests ? (double)out->errors / (double)out->requests : 0;
	if (nlat) {
		out->mean_ms = sum / (double)nlat;
		out->p50_ms = iac_probe_percentile(lat, nlat, 50);
		out->p90_ms = iac_probe_percentile(lat, nlat, 90);
		out->p99_ms = iac_probe_percentile(lat, nlat, 99);
		out->max_ms = lat[nlat - 1];
	}

	char first_error[96];
	snprintf(first_error, sizeof(first_error), "%.90s", out->reason);
	if (cancelled) {
		out->verdict = IAC_PROBE_ERROR;
		snprintf(out->reason, sizeof(out->reason), "cancelled after %.0f ms (%ld requests)",
			 out->elapsed_ms, out->requests);
	} else if (out->requests < min_requests) {
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
		rc = 0;
	else
		iac_err_set("analysis %s: %s", cancelled ? "stopped" :
			    out->verdict == IAC_PROBE_FAILED ? "failed" : "inconclusive", out->reason);
done:
	for (int i = 0; slots && i < conc; i++) {
		if (slots[i].easy) {
			if (slots[i].busy)
				curl_multi_remove_handle(multi, slots[i].easy);
			curl_easy_cleanup(slots[i].easy);
		}
	}
	free(slots);
	free(lat);
	if (multi)
		curl_multi_cleanup(multi);
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
	char *q = NULL, *url;
	CURL *e;

	while (bl && base[bl - 1] == '/')
		bl--;
	if (need_curl() == 0 && (e = curl_easy_init())) {
		q = curl_easy_escape(e, query, 0);
		curl_easy_cleanup(e);
	}
	url = iac_xasprintf("%.*s/api/v1/query?query=%s", (int)bl, base, q ? q : "");
	curl_free(q);
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

int iac_probe_prom_judge(iac_probe_prom_result *out, const char *body, const char *query,
			 double min, double max)
{
	json_error_t jerr;
	json_t *root = json_loads(body ? body : "", 0, &jerr);
	double *vals = NULL;
	size_t n = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	out->value = NAN;
	if (!root) {
		rc = prom_finish(out, IAC_PROBE_ERROR, "query '%s': the answer is not JSON (%s)", query,
				 jerr.text);
		goto done;
	}
	const char *status = iac_json_str(root, "status");
	if (!status || strcmp(status, "success")) {
		const char *etype = iac_json_str(root, "errorType");
		const char *emsg = iac_json_str(root, "error");
		rc = prom_finish(out, IAC_PROBE_ERROR, "query '%s': %s: %s", query, etype ? etype : "error",
				 emsg ? emsg : "no error message");
		goto done;
	}
	json_t *data = json_object_get(root, "data");
	const char *type = iac_json_str(data, "resultType");
	json_t *result = json_object_get(data, "result");
	snprintf(out->result_type, sizeof(out->result_type), "%s", type ? type : "");
	if (type && !strcmp(type, "vector") && json_is_array(result)) {
		size_t i;
		json_t *s;
		vals = iac_xcalloc(json_array_size(result) + 1, sizeof(*vals));
		json_array_foreach(result, i, s) {
			if (sample_value(&vals[n], json_object_get(s, "value")) < 0) {
				rc = prom_finish(out, IAC_PROBE_ERROR, "query '%s': sample %zu has no value", query, i);
				goto done;
			}
			n++;
		}
	} else if (type && !strcmp(type, "scalar") && json_is_array(result)) {
		vals = iac_xcalloc(1, sizeof(*vals));
		if (sample_value(&vals[0], result) < 0) {
			rc = prom_finish(out, IAC_PROBE_ERROR, "query '%s': the scalar has no value", query);
			goto done;
		}
		n = 1;
	} else {
		rc = prom_finish(out, IAC_PROBE_ERROR, "query '%s' returned a %s; a gate needs an instant "
				 "vector or a scalar", query, type ? type : "result of unknown type");
		goto done;
	}
	out->n_values = n;
	if (n == 0) {
		rc = prom_finish(out, IAC_PROBE_INCONCLUSIVE, "query '%s' returned no data (is the metric "
				 "scraped yet?)", query);
		goto done;
	}
	double hi = -INFINITY, lo = INFINITY;
	for (size_t i = 0; i < n; i++) {
		if (isnan(vals[i])) {
			rc = prom_finish(out, IAC_PROBE_INCONCLUSIVE, "query '%s' returned NaN (no traffic "
					 "to compute a ratio from?)", query);
			goto done;
		}
		if (vals[i] > hi)
			hi = vals[i];
		if (vals[i] < lo)
			lo = vals[i];
	}
	out->value = !isnan(max) || isnan(min) ? hi : lo;
	if (!isnan(max) && hi > max) {
		out->value = hi;
		rc = prom_finish(out, IAC_PROBE_FAILED, "query '%s' = %g > max %g%s", query, hi, max,
				 n > 1 ? " (the largest of the series)" : "");
	} else if (!isnan(min) && lo < min) {
		out->value = lo;
		rc = prom_finish(out, IAC_PROBE_FAILED, "query '%s' = %g < min %g%s", query, lo, min,
				 n > 1 ? " (the smallest of the series)" : "");
	} else if (isnan(max) && isnan(min)) {
		rc = prom_finish(out, IAC_PROBE_PASSED, "query '%s' = %g (no limit set)", query, out->value);
	} else {
		rc = prom_finish(out, IAC_PROBE_PASSED, "query '%s' = %g within limits", query, out->value);
	}
done:
	free(vals);
	json_decref(root);
	return rc;
}

int iac_probe_prometheus(iac_probe_prom_result *out, const iac_probe_prom_opts *o)
{
	double timeout = o->timeout_ms > 0 ? o->timeout_ms : 5000;
	char errbuf[CURL_ERROR_SIZE] = "";
	iac_buf body = IAC_BUF_INIT;
	char *url = NULL;
	CURL *e = NULL;
	long status = 0;
	CURLcode cc;
	int rc;

	memset(out, 0, sizeof(*out));
	out->value = NAN;
	if (!o->url || !*o->url || !o->query || !*o->query)
		return prom_finish(out, IAC_PROBE_ERROR, "a Prometheus url and a query are required");
	if (need_curl() < 0 || !(e = new_easy(timeout, errbuf))) {
		rc = prom_finish(out, IAC_PROBE_ERROR, "cannot create a libcurl handle");
		goto done;
	}
	url = iac_probe_prom_url(o->url, o->query);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
	cc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK) {
		rc = prom_finish(out, IAC_PROBE_ERROR, "cannot query '%s': %s", o->url,
				 *errbuf ? errbuf : curl_easy_strerror(cc));
		goto done;
	}
	/* Prometheus explains 400/422/503 in a JSON body: let the judge say it */
	if (status != 200 && (!body.len || body.ptr[0] != '{')) {
		rc = prom_finish(out, IAC_PROBE_ERROR, "'%s' answered HTTP %ld (is it Prometheus?)",
				 o->url, status);
		goto done;
	}
	rc = iac_probe_prom_judge(out, iac_buf_cstr(&body), o->query, o->min, o->max);
done:
	if (e)
		curl_easy_cleanup(e);
	free(url);
	iac_buf_free(&body);
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
