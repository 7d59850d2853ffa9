/* lt_capacity: `iac loadtest FILE -find-capacity 'p(99)<300ms'`, the search
 * for the highest open-model arrival rate that still meets the thresholds.
 *
 * The command (loadtest.c) runs one constant-arrival-rate step per rate, each
 * a run of its own in the same process, and records its figures (taken from
 * that step's own histogram: percentiles are never averaged across steps)
 * into an iac_lt_cap_step. Everything here is a pure function of those
 * records, so the unit tests drive it with fake steps:
 *
 *   - iac_lt_capacity_next(): the next rate to try. The rate climbs from
 *     `start` (doubling, or by `step` req/s) until a step fails or
 *     `max_rate` passes; then it bisects between the highest passing rate
 *     below the lowest failing one and that failing one, until they are
 *     within `precision` of each other.
 *   - iac_lt_capacity_conclude(): capacity, knee and what saturated first.
 *   - iac_lt_capacity_json(): the JSON report.
 *
 * Steps own their strings (iac_lt_cap_step_free).
 */
#ifndef IAC_LOADTEST_CAPACITY_H
#define IAC_LOADTEST_CAPACITY_H

#include <stddef.h>

#include <jansson.h>

#include "iac/loadtest/threshold.h"

/* Exit code when even the start rate fails its thresholds (98, "the target
 * did not answer", when most of its requests failed). */
#define IAC_LT_EXIT_NO_CAPACITY 97

typedef struct {
	double start;       /* first rate, req/s (iterations/s) */
	double step;        /* added per climbing step; 0: double the rate */
	double max_rate;    /* highest rate tried; 0: no limit */
	double hold_s;      /* how long each rate is held */
	double precision;   /* stop bisecting when (hi - lo) <= precision * lo */
	int max_steps;      /* safety stop */
} iac_lt_cap_plan;

/* One rate held for plan.hold_s, judged on its own figures. */
typedef struct {
	double rate;          /* target arrival rate, iterations/s */
	double achieved;      /* iterations completed / hold */
	unsigned long long requests, failed, iterations, dropped;
	double p50_ms, p99_ms;   /* NaN without responses */
	double metric;        /* the first search threshold's value (NaN: no data) */
	int pass;             /* thresholds held, requests answered and the rate achieved */
	int thresholds_ok;    /* the search thresholds alone */
	int target_down;      /* at least max_failed of the requests failed */
	int gen_short;        /* the generator could not keep the rate (dropped iterations / its CPU) */
	double client_cpu_max;   /* % of its cores; NaN when not sampled */
	int max_vus;
	double hap_qmax;      /* HAProxy queue, most in a second; NaN when not observed */
	double host_cpu_max;  /* the busiest observed host's CPU, %; NaN when none */
	char *host;           /* its name */
	char *why;            /* why it failed ("p(99) 412.00ms (<300ms)"), NULL when it passed */
	double elapsed_s;     /* wall time of the step, drain included */
	int valid;            /* the run's own judgement: its figures can be trusted */
	char *invalid;        /* the first reason they cannot, or NULL */
} iac_lt_cap_step;

void iac_lt_cap_step_free(iac_lt_cap_step *s);

/* Parse "p(99)<300ms" (several joined by "," or "&&") into thresholds.
 * *out is an array of *n (free each with iac_lt_threshold_free, then the
 * array). 0, or -1 with a message. */
int iac_lt_capacity_parse(iac_lt_threshold **out, size_t *n, const char *expr);

/* 1 and *next when another step is due, 0 when the search is over. */
int iac_lt_capacity_next(double *next, const iac_lt_cap_plan *p, const iac_lt_cap_step *steps, size_t n);

typedef struct {
	int found;              /* a rate passed */
	double capacity;        /* highest passing rate below the lowest failing one */
	int capped;             /* no rate failed: max_rate (or max_steps) was reached */
	double lowest_fail;     /* NaN when none failed */
	double knee;            /* first rate where p99 left its low-rate level; NaN: not seen */
	char *first;            /* what saturated first, in words (owned) */
	int generator;          /* ... and it was the load generator itself */
} iac_lt_cap_result;

/* observed: observe { ... } was configured (HAProxy or hosts). */
void iac_lt_capacity_conclude(iac_lt_cap_result *r, const iac_lt_cap_step *steps, size_t n, int observed);
void iac_lt_cap_result_free(iac_lt_cap_result *r);

/* The report's "capacity" object (new reference). */
json_t *iac_lt_capacity_json(const iac_lt_cap_plan *p, const char *expr, const iac_lt_cap_step *steps, size_t n,
			     const iac_lt_cap_result *r);

#endif
