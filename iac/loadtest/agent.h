/* lt_agent: more than one machine of load. `iac loadtest FILE -agents
 * root@10.0.0.2,root@10.0.0.3` ships the scenario to each agent host over
 * SSH (iac/host), runs this same iac binary there (`iac loadtest FILE
 * -agent-out PATH`) and merges what each agent's run kept, losslessly: the
 * HdrHistograms' buckets are added (never percentiles averaged), counters
 * summed, gauges by time. An agent that fails or dies is reported and the
 * merged result is marked not valid; so is one whose own run was not valid
 * (its CPU saturated, for one).
 *
 * The raw document an agent writes (-agent-out) is the run's totals as
 * plain JSON: every counter, and every histogram as its non-empty buckets.
 */
#ifndef IAC_LOADTEST_AGENT_H
#define IAC_LOADTEST_AGENT_H

#include <jansson.h>

#include "iac/core/args.h"
#include "iac/loadtest/stats.h"

/* The raw document of a run's totals (new reference). valid, cpu_max_pct
 * and why (may be NULL) come from the agent's own judgement. */
json_t *iac_lt_raw_json(const iac_lt_stats *s, double elapsed_s, int vus_max, int valid, double cpu_max_pct,
			const char *why);
/* into += the totals in raw. 0, or -1 with a message (not a raw document). */
int iac_lt_raw_merge(iac_lt_stats *into, const json_t *raw);

typedef struct {
	char *name;          /* as given: "root@10.0.0.2" */
	int ok;              /* ran and sent its figures */
	char *error;         /* why not, when !ok */
	double elapsed_s, cpu_max_pct;
	int valid, vus_max;
	char *why;           /* the agent's own reason its run was not valid */
	json_t *raw;
} iac_lt_agent;

/* Run the scenario file on every agent in `names` at once (ssh_key and
 * known_hosts as observe's; extra_args passed to each agent's iac loadtest)
 * and wait for all. Fills *out (n = names->n; free with
 * iac_lt_agents_free). 0, or -1 when none could run. */
int iac_lt_agents_run(iac_lt_agent **out, const iac_strlist *names, const char *file, const char *ssh_key,
		      const char *known_hosts, const iac_strlist *extra_args);
void iac_lt_agents_free(iac_lt_agent *a, size_t n);

/* agent_hosts.c: `-agents hosts{role="loadgen"}`. 1 when s is such a
 * selector. iac_lt_agents_select: the hosts of dir/main.lua whose labels
 * (or name) match every KEY = "VALUE" pushed to names as
 * user@address[:port] (the host's user, else the login user of the
 * topology's hosts layer, else root), and that layer's private key and
 * known_hosts (iac_hosts_ssh: as the providers configure it, relative
 * paths against dir; *ssh_key, *known_hosts: owned, NULL when not set).
 * 0, or -1 with a message (bad selector, the topology does not load, its
 * SSH settings are wrong, no host matches). */
int iac_lt_is_selector(const char *s);
int iac_lt_agents_select(iac_strlist *names, char **ssh_key, char **known_hosts, const char *selector,
			 const char *dir);

#endif
