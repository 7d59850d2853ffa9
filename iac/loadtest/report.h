/* lt_report: what a run produced, judged and shown: thresholds evaluated,
 * validity, the "where it saturated" note, the terminal summary, the JSON
 * document (docs/loadtest.md describes its shape) and the self-contained
 * HTML report (inline SVG charts, no script, no network).
 *
 * iac_lt_result borrows the config, totals and seconds from the run; it owns
 * its lists and strings (iac_lt_result_free).
 */
#ifndef IAC_LOADTEST_REPORT_H
#define IAC_LOADTEST_REPORT_H

#include <stdio.h>

#include <jansson.h>

#include "iac/core/args.h"
#include "iac/core/buf.h"
#include "iac/loadtest/engine.h"
#include "iac/loadtest/findings.h"

typedef struct {
	const iac_lt_config *cfg;
	const iac_lt_stats *total;
	const iac_lt_second *secs;
	size_t nsecs;
	double elapsed_s;          /* start to the last worker's end */
	double last_sec_fraction;  /* how much of the last second the run covered (0..1] */
	int threads;
	int cores;                 /* CPUs the process may run on */
	int vus_max;
	char started[32];          /* RFC 3339 */

	int valid;
	iac_strlist invalid;       /* why the figures cannot be trusted */
	iac_strlist notes;         /* warnings worth a line */
	char *saturation;          /* "where it saturated", NULL when nothing stood out */
	double cpu_max_pct, cpu_avg_pct, rss_mib;
	double wait_max_pct;       /* most of a second spent waiting for a CPU, % */
	int aborted;               /* a threshold with abort_on_fail stopped the run */
	int interrupted;           /* SIGINT */
	const char *haproxy;       /* observed address or NULL */
	const iac_strlist *hosts;  /* observed host names */
	const iac_strlist *servers; /* HAProxy's servers (secs[].srv_rtime_ms), or NULL */
	iac_lt_finding *findings;  /* ranked causes (findings.h), owned */
	size_t nfindings;
	const struct iac_lt_caches *caches;  /* observed cache nodes (observe.h), or NULL */
	const struct iac_lt_dbs *dbs;        /* the observed database (observe.h), or NULL */
	size_t thresholds_failed;
	char *failed_msg;          /* the failed-requests verdict (cfg->max_failed), NULL when the run is below it */
	int exit_code;
} iac_lt_result;

#define IAC_LT_EXIT_THRESHOLDS 99
#define IAC_LT_EXIT_FAILED 98      /* too many requests failed: the target did not answer */

/* Evaluate every threshold of cfg against stats (value, ok, have_value).
 * Returns the number that failed. */
size_t iac_lt_thresholds_eval(iac_lt_threshold *ts, size_t n, const iac_lt_stats *s, double elapsed_s);

/* Fill valid, invalid and notes from the CPU and CPU-wait series and the
 * totals, and the saturation note. Call once per result. */
void iac_lt_result_judge(iac_lt_result *r);

/* The run's verdict, after iac_lt_result_judge and the thresholds'
 * evaluation (thresholds_failed of them failed): the failed-requests rule
 * (failed_msg) and exit_code: 98 when at least cfg->max_failed of the
 * requests failed, else 99 when a threshold failed, else 0. Validity does
 * not change the exit code. */
void iac_lt_result_decide(iac_lt_result *r, size_t thresholds_failed);

/* Rendering: functions of the judged result alone (no clock, no I/O), so
 * tests can pin them byte for byte on a fixed result. Each appends to out. */

/* The terminal summary. Colour escapes come from iac_color(), so they
 * follow stdout's colour setting like all of iac's output. */
void iac_lt_report_text(iac_buf *out, const iac_lt_result *r);
/* The self-contained HTML document. */
void iac_lt_report_html(iac_buf *out, const iac_lt_result *r);
/* The JSON document (the caller owns the reference). */
json_t *iac_lt_report_json(const iac_lt_result *r);

/* The summary on f, redacted and under the output lock (iac_log_write). */
void iac_lt_report_summary(FILE *f, const iac_lt_result *r);
/* Write files, atomically. 0, or -1 with a message naming the file. */
int iac_lt_report_write_json(const iac_lt_result *r, const char *path);
int iac_lt_report_write_html(const iac_lt_result *r, const char *path);

void iac_lt_result_free(iac_lt_result *r);

#endif
