/* lt_stats: the counters and histograms of a load test.
 *
 * Each worker thread records into its own iac_lt_stats (no locking) and
 * once a second adds it into the run's total under the run's mutex, then
 * clears its counters (names stay, so indices stay valid). All of it is
 * plain data; the struct owns its endpoints, checks and names.
 */
#ifndef IAC_LOADTEST_STATS_H
#define IAC_LOADTEST_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "iac/core/map.h"
#include "iac/loadtest/hist.h"

/* Transport-level failures (a response with status >= 400 is counted by
 * status instead). */
enum iac_lt_errkind {
	IAC_LT_E_CONNECT,    /* connection refused, unreachable */
	IAC_LT_E_TIMEOUT,    /* no complete response within the timeout */
	IAC_LT_E_CLOSED,     /* the server closed or reset the connection mid-response */
	IAC_LT_E_PARSE,      /* the response is not valid HTTP/1.1 */
	IAC_LT_E_TLS,        /* the TLS handshake failed (certificate not verified...) or TLS broke mid-way */
	IAC_LT_E_OTHER,
	IAC_LT_NERR,
};

const char *iac_lt_errkind_name(enum iac_lt_errkind k);

#define IAC_LT_MAX_ENDPOINTS 200   /* further names are counted as "(other)" */

typedef struct {
	char *name;
	uint64_t requests, failed;
	iac_lt_hist hist;
} iac_lt_endpoint;

typedef struct {
	char *name;
	uint64_t pass, fail;
} iac_lt_check;

/* k6's four metric types: a custom metric from Lua (counter("orders")), a
 * sub-metric of a threshold with tags (http_req_duration{endpoint:checkout})
 * or a group's duration. */
enum iac_lt_mtype { IAC_LT_COUNTER, IAC_LT_GAUGE, IAC_LT_RATE, IAC_LT_TREND };

const char *iac_lt_mtype_name(enum iac_lt_mtype t);

/* One metric's samples. A trend keeps its values x 1000 in a histogram (so
 * a value in ms is kept as us, with the histogram's 0.8 % error; values
 * below 0 count as 0); a gauge keeps its last value (by time), min and max. */
typedef struct {
	char *name;                /* "orders", "http_req_duration{endpoint:checkout}", "group_duration{group:::buy}" */
	enum iac_lt_mtype type;
	uint64_t n;                /* samples */
	uint64_t nonzero;          /* rate: samples that were true / non-zero */
	double sum;                /* counter: the total */
	double last, min, max;     /* gauge */
	uint64_t last_at;          /* gauge: when last was set (us, monotonic) */
	iac_lt_hist *hist;         /* trend: allocated with the first sample */
} iac_lt_macc;

typedef struct {
	uint64_t requests;         /* completed: a response or a transport error */
	uint64_t failed;           /* transport error or status >= 400 */
	uint64_t iterations, dropped, script_errors;
	uint64_t bytes_in, bytes_out;
	uint64_t transport[IAC_LT_NERR];
	uint64_t status[600];
	iac_lt_hist hist;          /* latency of responses (not of transport errors) */

	iac_lt_endpoint **eps;
	size_t neps;
	iac_map epmap;             /* name -> (void *)(index + 1) */

	iac_lt_check *checks;
	size_t nchecks;
	iac_map checkmap;

	/* distinct script error messages, first ones only */
	char **script_msgs;
	uint64_t *script_counts;
	size_t nscript_msgs;

	/* https: full and resumed handshakes, their time (k6's
	 * http_req_tls_handshaking, us) and why failed ones failed
	 * ("certificate verify failed: ...", first distinct ones only) */
	uint64_t tls_handshakes, tls_resumed;
	iac_lt_hist tls_hist;
	char **tls_msgs;
	uint64_t *tls_counts;
	size_t ntls_msgs;

	/* custom metrics, sub-metrics and groups, by name */
	iac_lt_macc *macc;
	size_t nmacc;
	iac_map maccmap;           /* name -> (void *)(index + 1) */
} iac_lt_stats;

void iac_lt_stats_init(iac_lt_stats *s);
void iac_lt_stats_free(iac_lt_stats *s);
/* Index of endpoint `name`, created when new (at most IAC_LT_MAX_ENDPOINTS,
 * then "(other)"). */
size_t iac_lt_stats_endpoint(iac_lt_stats *s, const char *name);
/* Find an endpoint without creating it; NULL when absent. */
const iac_lt_endpoint *iac_lt_stats_find_endpoint(const iac_lt_stats *s, const char *name);
size_t iac_lt_stats_check(iac_lt_stats *s, const char *name);
void iac_lt_stats_script_error(iac_lt_stats *s, const char *msg);
/* A TLS failure's message (the failure itself is counted as IAC_LT_E_TLS). */
void iac_lt_stats_tls_error(iac_lt_stats *s, const char *msg);
/* Index of metric `name` of type t, created when new. */
size_t iac_lt_stats_metric(iac_lt_stats *s, const char *name, enum iac_lt_mtype t);
const iac_lt_macc *iac_lt_stats_find_metric(const iac_lt_stats *s, const char *name);
/* One sample v of m at time at (us). */
void iac_lt_macc_add(iac_lt_macc *m, double v, uint64_t at);
/* into += from (by name for endpoints, checks and messages). */
void iac_lt_stats_merge(iac_lt_stats *into, const iac_lt_stats *from);
/* Zero the counters; names and indices stay. */
void iac_lt_stats_clear(iac_lt_stats *s);

#endif
