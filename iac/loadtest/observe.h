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
 */
#ifndef IAC_LOADTEST_OBSERVE_H
#define IAC_LOADTEST_OBSERVE_H

#include <stdint.h>

#include "iac/core/args.h"

typedef struct {
	double qcur, scur, rtime_ms, rate;
	int backends;
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

#endif
