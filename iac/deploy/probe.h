/* probe: the HTTP gates of a deployment, with libcurl (multi interface,
 * keep-alive connections, one thread):
 *   - health:     poll GET path on each instance until `healthy` consecutive
 *                 answers with status `expect`, or time out (Kamal's /up gate);
 *   - analysis:   drive requests at the idle colour for a while at a modest
 *                 concurrency, measure error rate and latency percentiles,
 *                 pass or fail against limits (Flagger's success rate / p99);
 *   - prometheus: one instant PromQL query compared with min/max, with Argo
 *                 Rollouts' verdicts (Inconclusive when there is no data).
 *
 * Every gate returns 0 when it passed and -1 otherwise, with the message
 * set (the gate, the figure and the limit: "analysis failed: error rate
 * 5.10% > 1.00% (51 of 1000 requests)"); the result struct is filled in both
 * cases and `verdict` says whether the gate failed, was inconclusive, or
 * could not run. Results are plain structs; *_json() gives the form stored in
 * state and printed in reports. Options and URLs are borrowed for the call;
 * results own their memory (free with the *_free function where there is one).
 */
#ifndef IAC_DEPLOY_PROBE_H
#define IAC_DEPLOY_PROBE_H

#include <stddef.h>

#include <jansson.h>

enum iac_probe_verdict {
	IAC_PROBE_PASSED,        /* Argo: Successful */
	IAC_PROBE_FAILED,        /* Argo: Failed -> abort */
	IAC_PROBE_INCONCLUSIVE,  /* Argo: Inconclusive -> pause / ask a person */
	IAC_PROBE_ERROR,         /* the gate could not run (bad option, no answer) */
};
/* "passed", "failed", "inconclusive", "error" */
const char *iac_probe_verdict_name(enum iac_probe_verdict v);

/* ---- health gate -------------------------------------------------------- */

typedef struct {
	const char *const *urls;     /* instance base URLs: "http://10.0.0.2:8001" */
	size_t n_urls;
	const char *path;            /* appended to each URL; NULL: "/health", "": none */
	long expect;                 /* <= 0: 200 */
	double interval_ms;          /* between polls of one instance; <= 0: 500 */
	int healthy;                 /* consecutive successes; <= 0: 3 */
	double timeout_ms;           /* whole gate; <= 0: 30000 */
	double request_timeout_ms;   /* one request; <= 0: the interval, at least 1000 */
	const volatile int *cancel;  /* non-zero: stop now (verdict error, "cancelled") */
} iac_probe_health_opts;

typedef struct {
	char *url;                   /* base URL + path */
	int healthy;                 /* reached the streak */
	int streak;                  /* current consecutive successes */
	long attempts;
	long last_status;            /* 0: no HTTP answer */
	char last_error[256];        /* why the last attempt failed ("" if it did not) */
	double healthy_ms;           /* since the start; -1 if never */
} iac_probe_instance;

typedef struct {
	enum iac_probe_verdict verdict;
	iac_probe_instance *instances;
	size_t n;
	double elapsed_ms;
} iac_probe_health_result;

int iac_probe_health(iac_probe_health_result *out, const iac_probe_health_opts *opts);
void iac_probe_health_free(iac_probe_health_result *r);
json_t *iac_probe_health_json(const iac_probe_health_result *r);

/* ---- analysis ----------------------------------------------------------- */

typedef struct {
	const char *const *urls;     /* full URLs, requested round-robin: "http://10.0.0.3:8001/" */
	size_t n_urls;
	double duration_ms;          /* <= 0: 10000 */
	int concurrency;             /* requests in flight; <= 0: 4 */
	double rate;                 /* requests/s cap over all; <= 0: no cap */
	double max_error_rate;       /* 0.01 = 1 %; < 0: not checked */
	double max_p99_ms;           /* <= 0: not checked */
	double request_timeout_ms;   /* <= 0: 5000 */
	long min_requests;           /* fewer answers -> inconclusive; <= 0: 10 */
	const volatile int *cancel;  /* non-zero: stop now (verdict error, "cancelled") */
} iac_probe_analysis_opts;

typedef struct {
	enum iac_probe_verdict verdict;
	long requests;               /* completed (answered or failed) */
	long errors;                 /* no HTTP answer, or a 5xx */
	long status_5xx, status_4xx, transport_errors;
	double error_rate;           /* errors / requests */
	double p50_ms, p90_ms, p99_ms, max_ms, mean_ms;   /* answered requests only */
	double elapsed_ms, rps;
	char reason[256];            /* what decided the verdict */
} iac_probe_analysis_result;

int iac_probe_analysis(iac_probe_analysis_result *out, const iac_probe_analysis_opts *opts);
/* The verdict iac_probe_analysis reaches once its figures are in: from
 * r->requests, errors, status_5xx, transport_errors, error_rate, p50_ms,
 * p99_ms, elapsed_ms and r->reason (the first transport error, or ""),
 * against the limits in opts; cancelled: the run was stopped (verdict
 * error). Sets r->verdict and r->reason; returns and sets the message as
 * the gate does. Pure, for tests. */
int iac_probe_analysis_judge(iac_probe_analysis_result *r, const iac_probe_analysis_opts *opts,
			     int cancelled);
json_t *iac_probe_analysis_json(const iac_probe_analysis_result *r);

/* Nearest-rank percentile (p in 0..100) of n values, sorted in place. Pure. */
double iac_probe_percentile(double *values, size_t n, double p);

/* ---- prometheus --------------------------------------------------------- */

typedef struct {
	const char *url;             /* "http://127.0.0.1:9090" */
	const char *query;           /* PromQL, URL-encoded here */
	double max;                  /* pass when every value <= max; NAN: not checked */
	double min;                  /* pass when every value >= min; NAN: not checked */
	double timeout_ms;           /* <= 0: 5000 */
} iac_probe_prom_opts;

typedef struct {
	enum iac_probe_verdict verdict;
	char result_type[16];        /* "vector", "scalar", ... */
	size_t n_values;             /* series (vector) or 1 (scalar) */
	double value;                /* the value that decided: the largest when max is
	                                checked (else the smallest); NAN without data */
	char reason[256];
} iac_probe_prom_result;

int iac_probe_prometheus(iac_probe_prom_result *out, const iac_probe_prom_opts *opts);
/* Judge the body of a /api/v1/query answer. Pure, for tests: the same
 * verdicts and return value as iac_probe_prometheus. */
int iac_probe_prom_judge(iac_probe_prom_result *out, const char *body, const char *query,
			 double min, double max);
json_t *iac_probe_prom_json(const iac_probe_prom_result *r);
/* The query URL for base and query ("http://h:9090/api/v1/query?query=up%7Bjob%3D%22x%22%7D").
 * Caller frees. */
char *iac_probe_prom_url(const char *base, const char *query);

#endif
