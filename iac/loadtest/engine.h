/* lt_engine: the load generator. N worker threads, each with its own epoll
 * loop and its own lua_State, as wrk does; virtual users are Lua coroutines
 * (or, for flow-less scenarios, a prebuilt request and no Lua at all)
 * multiplexed on their thread's loop.
 *
 * Only plain data crosses threads: workers add their figures into the run's
 * total and per-second slots under run->mu once a second; the main thread
 * reads them, samples its own CPU and the server side, and decides when to
 * stop. The run owns everything it allocates; the config is borrowed and
 * must outlive the run.
 */
#ifndef IAC_LOADTEST_ENGINE_H
#define IAC_LOADTEST_ENGINE_H

#include <pthread.h>
#include <stdint.h>

#include "iac/loadtest/observe.h"
#include "iac/loadtest/scenario.h"
#include "iac/loadtest/stats.h"

/* Endpoints with a latency series of their own (the first ones named;
 * the HTML report charts each). */
#define IAC_LT_CHART_EPS 8

/* One second of the run, as the main thread keeps it. */
typedef struct {
	uint64_t requests, failed, dropped, iterations;
	double p50_ms, p90_ms, p99_ms, max_ms;
	/* endpoint i of the run's total (i < IAC_LT_CHART_EPS): its responses
	 * in this second and their percentiles (meaningless when ep_n is 0) */
	uint64_t ep_n[IAC_LT_CHART_EPS];
	double ep_p50[IAC_LT_CHART_EPS], ep_p90[IAC_LT_CHART_EPS], ep_p99[IAC_LT_CHART_EPS];
	iac_lt_hist *ep_hist[IAC_LT_CHART_EPS];   /* while not final */
	int vus;                 /* most VUs running at once in the second */
	double cpu_pct;          /* the load generator's CPU, % of the cores it may use */
	double wait_pct;         /* its threads' time runnable but not running, % of the second */
	/* server side (NaN when not sampled) */
	double hap_qcur, hap_scur, hap_rtime_ms, hap_rate;
	/* each HAProxy server's response time, ms, by its index in the run's
	 * server names (iac_lt_result.servers) */
	double srv_rtime_ms[IAC_LT_HAP_SERVERS];
	double *host_cpu, *host_mem; /* one per observed host, % */
	int final;               /* all workers have flushed this second */
	iac_lt_hist *hist;       /* while not final; freed after */
} iac_lt_second;

typedef struct iac_lt_worker iac_lt_worker;

typedef struct {
	const iac_lt_config *cfg;
	int nthreads;
	/* target, parsed */
	char *host, *hostport, *base_path;
	int port;
	int tls;                 /* the target is https:// */

	uint64_t start_us;       /* monotonic time of t = 0 */
	double load_ms;          /* length of the load phase */
	volatile int stop;       /* 1: start no new iteration; 2: abort in-flight work */

	pthread_barrier_t barrier; /* workers start together, after start_us is set */
	pthread_mutex_t mu;      /* guards everything below */
	iac_lt_stats total;
	iac_lt_second *secs;
	size_t nsecs;

	iac_lt_worker **workers;
	int vus_max;             /* highest sum of active VUs seen */
	char *fatal;             /* a worker's setup error, if any */
} iac_lt_run;

/* Microseconds the workers spent polling for events instead of sleeping
 * (idle time by choice, not load: subtract it when judging saturation). */
double iac_lt_engine_polled_s(iac_lt_run *run);
/* Seconds the workers spent in sched_yield() while polling: they let a
 * neighbour run by choice; not waiting for a CPU the load needed. */
double iac_lt_engine_yielded_s(iac_lt_run *run);

/* Parse the target, start the workers (which load the scenario into their
 * own Lua states). 0, or -1 with a message. */
int iac_lt_engine_start(iac_lt_run *run, const iac_lt_config *cfg, int nthreads);
/* Seconds since start. */
double iac_lt_engine_elapsed(const iac_lt_run *run);
/* Sum of active VUs now. */
int iac_lt_engine_active_vus(const iac_lt_run *run);
/* Number of workers still running. */
int iac_lt_engine_running(const iac_lt_run *run);
/* Finalise every second all workers are past (all of them when `all`);
 * computes its percentiles. Returns the number of final seconds. Call with
 * run->mu NOT held. */
size_t iac_lt_engine_collect(iac_lt_run *run, int all);
/* The slot of second s, created when new. Call with run->mu held; the
 * pointer is valid until the lock is released. */
iac_lt_second *iac_lt_engine_slot(iac_lt_run *run, long s);
void iac_lt_engine_join(iac_lt_run *run);
void iac_lt_engine_free(iac_lt_run *run);

/* Split "http://host:port/path" or "https://..." (the port defaults to
 * 80 or 443); *tls (when not NULL) is 1 for https. 0 or -1. */
int iac_lt_url_split(const char *url, char **host, int *port, char **path, int *tls);

#endif
