/* lt_findings: from what was observed during a run to a ranked list of
 * plain-language causes, most likely first.
 *
 * The input is plain data, one value per second of the run (NaN where a
 * figure was not sampled), so the rules are a pure function a unit test
 * feeds with built series. Each rule looks for one kind of saturation,
 * with its evidence (when it began, how far, compared with what):
 *
 *   client   the load generator's CPU (or its threads waiting for a CPU):
 *            the target may take more than the figures say
 *   queue    requests waiting in HAProxy: every server at its maxconn
 *   server   one server answering much slower than the others (HAProxy's
 *            per-server response time): a slow or starved host
 *   cpu      CPU of the observed hosts: one hot while others idle (uneven
 *            balancing or a smaller host), or all hot (add capacity)
 *   db       a database replica falling behind its leader (replication lag)
 *   latency  p99 rose with nothing observed saturated (observe more)
 *
 * A finding whose onset is within a few seconds of the p99 knee ranks
 * higher: it is the one latency answered to.
 */
#ifndef IAC_LOADTEST_FINDINGS_H
#define IAC_LOADTEST_FINDINGS_H

#include <stddef.h>

typedef struct {
	size_t n;                          /* seconds */
	const double *p99_ms;              /* n; NaN: no responses that second */
	const double *client_cpu;          /* n or NULL; % of the cores it may use */
	const double *client_wait;         /* n or NULL; % of the second runnable, not running */
	const double *lb_queue;            /* n or NULL (HAProxy not observed) */
	size_t nhosts;
	const char *const *host;           /* nhosts names */
	const double *const *host_cpu;     /* nhosts series of n, % */
	size_t nservers;
	const char *const *server;         /* "backend/server" */
	const double *const *server_rtime; /* nservers series of n, ms */
	const double *db_lag_bytes;        /* n or NULL: the highest replica lag */
	const char *db_lagging;            /* the replica that lagged most, or NULL */
} iac_lt_signals;

typedef struct {
	const char *kind;                  /* static: client, queue, server, cpu, latency */
	double score;                      /* higher: more likely the cause */
	long onset;                        /* second it began, -1 when not one */
	char *text;                        /* "bottleneck: ..." (owned) */
} iac_lt_finding;

/* The findings for s, most likely first: *out (owned by the caller, free
 * with iac_lt_findings_free), return value how many (0: nothing saturated
 * and latency flat). */
size_t iac_lt_findings(iac_lt_finding **out, const iac_lt_signals *s);
void iac_lt_findings_free(iac_lt_finding *f, size_t n);

/* The p99 knee: the first second (after an early fifth) whose p99 and the
 * next one's exceed max(3 x base, base + 5 ms), base the early median;
 * n when none. *base the early median (NaN when unknown). */
size_t iac_lt_p99_knee(double *base, const double *p99, size_t n);

#endif
