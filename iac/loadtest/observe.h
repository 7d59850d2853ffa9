/* lt_observe: server-side figures sampled once a second during a run, on
 * the same time axis as the client's.
 *
 * HAProxy: `show stat` over its stats socket ("/run/haproxy.sock",
 * "unix@/path", "ipv4@127.0.0.1:9999" or "127.0.0.1:9999"), summed over the
 * backends: queue (qcur), sessions (scur), response time (rtime, HAProxy's
 * average over the last 1024 requests, ms) and the frontends' request rate.
 *
 * Hosts: CPU and memory from /proc/stat and /proc/meminfo, read directly
 * for "local" and over SSH for the others; the parsing is shared.
 *
 * Cache nodes: hits, misses and evictions of Redis (`INFO stats`) or
 * Memcached (`stats`) servers, asked directly; the engine is found by
 * asking (Memcached answers Redis's inline INFO with ERROR). The engine
 * knows nothing of providers/cache: a scenario names the nodes
 * (`observe { cache = { "10.0.0.2:6379", ... } }`).
 */
#ifndef IAC_LOADTEST_OBSERVE_H
#define IAC_LOADTEST_OBSERVE_H

#include <stdint.h>

#include <jansson.h>

#include "iac/core/args.h"
#include "iac/core/buf.h"

/* Servers of the backends, each on its own: "backend/server" and its
 * figures (the first IAC_LT_HAP_SERVERS; more are summed but not named). */
#define IAC_LT_HAP_SERVERS 16
typedef struct {
	char name[64];
	double qcur, scur, rtime_ms;
} iac_lt_hap_server;

typedef struct {
	double qcur, scur, rtime_ms, rate;
	int backends;
	int nservers;
	iac_lt_hap_server servers[IAC_LT_HAP_SERVERS];
	double cache_lookups, cache_hits;   /* HAProxy's cache over the backends; -1: no such columns */
} iac_lt_hap_sample;

/* Query HAProxy. 0, or -1 with a message. */
int iac_lt_haproxy_sample(iac_lt_hap_sample *out, const char *addr, double timeout_ms);
/* Parse `show stat` CSV output. 0, or -1 with a message. */
int iac_lt_haproxy_parse(iac_lt_hap_sample *out, const char *csv);

typedef struct {
	uint64_t busy, total;    /* previous /proc/stat totals (jiffies) */
	int primed;
} iac_lt_cpu_prev;

/* CPU % since the previous call (NaN on the first) and memory % in use from
 * the text of /proc/stat followed by /proc/meminfo. 0 or -1. */
int iac_lt_host_parse(double *cpu_pct, double *mem_pct, iac_lt_cpu_prev *prev, const char *text);

/* Samplers for the hosts named in observe.hosts: "local" (or
 * "localhost") reads this machine's /proc; "[user@]address[:port]" runs
 * `cat /proc/stat /proc/meminfo` over SSH (providers/ssh's connection pool,
 * when this build has it) with ssh_key / known_hosts (NULL: ssh-agent and
 * ~/.ssh/known_hosts). A host that cannot be reached gets a warning and NaN
 * figures; the run goes on. */
typedef struct iac_lt_hosts iac_lt_hosts;
iac_lt_hosts *iac_lt_hosts_open(const iac_strlist *names, const char *ssh_key, const char *known_hosts);
/* Fill cpu_pct[i] and mem_pct[i] (NaN when unknown) for each name. */
void iac_lt_hosts_sample(iac_lt_hosts *h, double *cpu_pct, double *mem_pct);
void iac_lt_hosts_close(iac_lt_hosts *h);

/* Counters of one cache node; -1 when the server did not say. */
typedef struct {
	long long hits, misses, evictions;
} iac_lt_cache_counters;

/* Parse Redis `INFO` text (keyspace_hits, keyspace_misses, evicted_keys)
 * or Memcached `stats` lines (get_hits, get_misses, evictions). 0, or -1
 * when neither hits nor misses is in it. */
int iac_lt_cache_parse(iac_lt_cache_counters *out, const char *text);

/* Samplers for observe.cache: "ADDRESS:PORT" of each node, and level 1
 * (HAProxy's cache lookups and hits) when `haproxy` (observe.haproxy) is
 * not NULL: both levels in one report. Open takes the
 * baseline (a node that does not answer gets a warning and no figures; the
 * run goes on); sample(sec) records the counters at the end of second sec
 * (0-based, the report's time axis), and a last one after the run closes
 * the window. Figures are differences from the baseline: what the test
 * window did, not the server's lifetime. One thread at a time. */
typedef struct iac_lt_caches iac_lt_caches;
iac_lt_caches *iac_lt_caches_open(const iac_strlist *nodes, const char *haproxy);
void iac_lt_caches_sample(iac_lt_caches *c, long sec);
/* The end of the window: sample once more, after the last request. */
void iac_lt_caches_finish(iac_lt_caches *c);
/* The summary's lines (nothing for NULL). */
void iac_lt_caches_text(iac_buf *out, const iac_lt_caches *c);
/* { nodes: [ { address, engine, hits, misses, hit_rate, evictions } or
 * { address, error } ], hits, misses, hit_rate, evictions, and level1:
 * { haproxy, hits, misses, hit_rate } when observed } (new; NULL for NULL). */
json_t *iac_lt_caches_json(const iac_lt_caches *c);
/* Second sec's hits and misses over every node, { hits, misses } (new;
 * NULL when not sampled or c is NULL). */
json_t *iac_lt_caches_second_json(const iac_lt_caches *c, size_t sec);
void iac_lt_caches_close(iac_lt_caches *c);

/* Database (observe_db.c): observe.db = { "ADDRESS:PORT", ... } names the
 * REST API of a Patroni cluster's members; each second GET /cluster from
 * the first that answers: the leader and each replica's lag in bytes
 * (Patroni's "unknown", a replica not streaming, counts as infinite). */
typedef struct {
	double lag_bytes;         /* highest replica lag; 0 without replicas */
	char lagging[64];         /* that replica's name */
	char leader[64];          /* "" when no member leads */
	int replicas;
} iac_lt_db_sample;

/* Parse Patroni's GET /cluster answer. 0, or -1 with a message. */
int iac_lt_patroni_parse(iac_lt_db_sample *out, const json_t *cluster);

typedef struct iac_lt_dbs iac_lt_dbs;
/* NULL when nodes is empty; an unreachable member gives one warning. */
iac_lt_dbs *iac_lt_dbs_open(const iac_strlist *nodes);
/* Record second sec (0-based, the report's time axis). One thread. */
void iac_lt_dbs_sample(iac_lt_dbs *d, long sec);
/* The summary's line (nothing for NULL). */
void iac_lt_dbs_text(iac_buf *out, const iac_lt_dbs *d);
/* { patroni: [addresses], max_lag_bytes, lagging, leader_changes } (new;
 * NULL for NULL). */
json_t *iac_lt_dbs_json(const iac_lt_dbs *d);
/* Second sec's { lag_bytes, leader } (new; NULL when not sampled). */
json_t *iac_lt_dbs_second_json(const iac_lt_dbs *d, size_t sec);
/* The highest replica lag of each second (NaN: not sampled), *n of them
 * (caller frees; NULL when none), and the replica that lagged most. */
double *iac_lt_dbs_lag(size_t *n, const char **lagging, const iac_lt_dbs *d);
void iac_lt_dbs_close(iac_lt_dbs *d);

#endif
