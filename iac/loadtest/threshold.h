/* lt_threshold: pass/fail conditions on the results, with k6's syntax.
 *
 *   thresholds { ["p(99)"] = "< 250ms", error_rate = "< 0.5%",
 *                ["product:p(95)"] = "< 100ms", checks = "> 99%",
 *                rps = { "> 1000", abort_on_fail = true, delay_abort_eval = "5s" },
 *                http_req_failed = "rate < 0.01" }
 *
 * A key is [ENDPOINT:]METRIC. Latency limits take ms/s/us (bare numbers are
 * ms); rates take % or a fraction, optionally after k6's "rate" ("rate<0.01");
 * rps and counts take plain numbers. An
 * unknown metric is an error that lists the valid ones.
 *
 * The struct owns its strings and arrays (free with iac_lt_threshold_free).
 */
#ifndef IAC_LOADTEST_THRESHOLD_H
#define IAC_LOADTEST_THRESHOLD_H

#include <stddef.h>

enum iac_lt_metric {
	IAC_LT_M_PCT,      /* p(N) */
	IAC_LT_M_AVG,
	IAC_LT_M_MIN,
	IAC_LT_M_MED,
	IAC_LT_M_MAX,
	IAC_LT_M_ERROR_RATE,
	IAC_LT_M_CHECKS,
	IAC_LT_M_RPS,
	IAC_LT_M_REQUESTS,
	IAC_LT_M_ERRORS,
	IAC_LT_M_DROPPED,
	IAC_LT_M_ITERATIONS,
	IAC_LT_M_HTTP_REQ_FAILED,   /* k6's built-in rate: error_rate under k6's name */
	/* aggregates of k6's form only (METRIC{tags} = "AGG OP VALUE") */
	IAC_LT_M_COUNT,             /* a counter's total, a trend's samples */
	IAC_LT_M_RATE,              /* a rate metric's share of true samples */
	IAC_LT_M_VALUE,             /* a gauge's last value */
	IAC_LT_M_PER_SEC,           /* a counter's total per second */
};

enum iac_lt_op { IAC_LT_LT, IAC_LT_LE, IAC_LT_GT, IAC_LT_GE, IAC_LT_EQ, IAC_LT_NE };

typedef struct {
	char *key;            /* as written: "product:p(95)" */
	char *endpoint;       /* "product", or NULL for all requests */
	enum iac_lt_metric metric;
	double pct;           /* N of p(N) */
	char **conds;         /* as written: "< 100ms" */
	enum iac_lt_op *ops;
	double *limits;       /* in the metric's unit: ms, fraction, per second, count */
	size_t nconds;
	int abort_on_fail;
	double delay_abort_ms;
	int line;
	/* k6's form: METRIC{tag:value,...} = { "p(95) < 500ms", "avg < 200" },
	 * each condition with its own aggregate. NULL mname: the older form. */
	char *mname;          /* "http_req_duration", "orders" (a custom metric) */
	char *acc;            /* the iac_lt_macc it reads (a custom metric, a sub-metric), NULL: a built-in total */
	char **tagk, **tagv;  /* the tags it selects: "endpoint" = "checkout" */
	size_t ntags;
	int mtype;            /* enum iac_lt_mtype, -1 until resolved */
	int plain;            /* a trend of plain numbers (not times): values shown without a unit */
	enum iac_lt_metric *caggs; /* per condition: its aggregate */
	double *cpcts;        /* ... and N of p(N) */
	/* filled by evaluation */
	double value;
	int ok;
	int have_value;       /* 0: no data (e.g. no request named ENDPOINT) */
} iac_lt_threshold;

/* Parse a key ("p(99)", "product:p(95)", "error_rate") into t->metric,
 * t->pct and t->endpoint. 0, or -1 with a message naming the metric and
 * listing the valid ones. */
int iac_lt_threshold_parse_key(iac_lt_threshold *t, const char *key);
/* k6's form: is key "METRIC{...}" or a k6 metric name that the older form
 * does not know (http_req_duration, http_reqs, group_duration)? */
int iac_lt_threshold_is_k6(const char *key);
/* k6's form: split key into mname and tags (conditions are added with
 * iac_lt_threshold_add_cond and checked by iac_lt_threshold_resolve once
 * the metric's type is known). 0 or -1 with a message. */
int iac_lt_threshold_parse_k6(iac_lt_threshold *t, const char *key);
/* The type (enum iac_lt_mtype) of a built-in k6 metric, -1 for others. */
int iac_lt_builtin_mtype(const char *name);
/* Give a k6-form threshold its metric's type (mtype; plain: a trend of
 * plain numbers) and parse its conditions ("p(95) < 500ms", "rate < 1%",
 * "count > 10", "value < 5"). 0 or -1 with a message. */
int iac_lt_threshold_resolve(iac_lt_threshold *t, int mtype, int plain);

/* Parse a condition ("< 250ms", "> 99%") for metric m. 0 or -1. */
int iac_lt_threshold_parse_cond(enum iac_lt_op *op, double *limit, enum iac_lt_metric m, const char *cond);
/* Add a condition (copied) after parsing it. 0 or -1. */
int iac_lt_threshold_add_cond(iac_lt_threshold *t, const char *cond);
void iac_lt_threshold_free(iac_lt_threshold *t);

/* "p(N), avg, min, med, max, error_rate, checks, rps, ..." */
const char *iac_lt_metric_list(void);
/* The unit a metric's value is shown in: "ms", "%", "/s", "". */
const char *iac_lt_metric_unit(enum iac_lt_metric m);
/* 1 when value satisfies op limit. */
int iac_lt_cond_holds(enum iac_lt_op op, double value, double limit);

#endif
