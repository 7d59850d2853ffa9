/* lt_scenario: the load-test scenario language (Lua) and its plain-data form.
 *
 * A scenario file is Lua run in a sandbox (no os, io, debug, package, load
 * or require) with these statements:
 *   target "http(s)://host:port"            base URL for relative paths
 *   scenario "name" { weight, think, flow | method, path, headers, body, name }
 *   load { executor = "...", ... }          k6's executors and options
 *   thresholds { ["p(99)"] = "< 250ms", ... }
 *   observe { haproxy = "...", hosts = { ... } }
 *   between("1s", "3s")                     a think-time range
 *
 * iac_lt_scenario_load() runs the file once and fills an iac_lt_config (plain
 * data that any thread may read; the caller frees it with
 * iac_lt_config_free()). Each worker thread then opens its own lua_State
 * with iac_lt_scenario_open(), which runs the same source again and keeps
 * the flow functions in that state's registry.
 *
 * Errors are "FILE:LINE: what is wrong" (the caller prints "error: ").
 */
#ifndef IAC_LOADTEST_SCENARIO_H
#define IAC_LOADTEST_SCENARIO_H

#include <stddef.h>

#include <lua.h>

#include "iac/core/args.h"
#include "iac/loadtest/threshold.h"

enum iac_lt_executor {
	IAC_LT_CONSTANT_VUS,
	IAC_LT_RAMPING_VUS,
	IAC_LT_CONSTANT_RATE,
	IAC_LT_RAMPING_RATE,
};

typedef struct {
	char *name;
	double weight;
	double think_min_ms, think_max_ms;   /* 0, 0: no think time */
	int has_flow;                        /* flow = function(u) ... end */
	/* a flow-less scenario: one prebuilt request, repeated */
	char *method;                        /* "GET" */
	char *url;                           /* path ("/x") or absolute URL */
	char *body;                          /* may be NULL */
	size_t body_len;
	iac_strlist headers;                 /* "Name: value" */
	char *endpoint;                      /* name option; NULL: "METHOD path" */
	iac_strlist tags;                    /* tags option: name, value, name, value... (at most 8 pairs) */
	int line;
} iac_lt_scenario;

/* A custom metric, declared at the top of the file: counter("orders"),
 * gauge, rate, trend("wait", true). */
typedef struct {
	char *name;
	int type;                            /* enum iac_lt_mtype */
	int is_time;                         /* trend: values are ms (k6's isTime) */
} iac_lt_mdecl;

/* A data file (shared_data("users.csv")): loaded once, by the first load
 * of the file, and read by every thread (k6's SharedArray). */
typedef struct {
	char *path;                          /* as written in the file */
	struct json_t *rows;                 /* a JSON array: CSV rows are objects of strings */
} iac_lt_data;

/* A sub-metric the engine keeps because a threshold selects it by tag
 * (k6 keeps sub-metrics for thresholds only, and so does iac): a sample of
 * `metric` whose tags match all of these goes into the metric named acc.
 * Strings are borrowed from the threshold. */
enum iac_lt_sub_kind { IAC_LT_SUB_DURATION, IAC_LT_SUB_FAILED, IAC_LT_SUB_REQS, IAC_LT_SUB_CUSTOM };
typedef struct {
	enum iac_lt_sub_kind kind;
	const char *metric, *acc;
	char *const *tagk, *const *tagv;
	size_t ntags;
	int type;                            /* the sub-metric's enum iac_lt_mtype */
} iac_lt_sub;

typedef struct {
	double dur_ms;
	double target;                       /* VUs or iterations per time unit */
} iac_lt_stage;

typedef struct {
	char *file;
	char *source;                        /* the file's text, run again per thread */
	size_t source_len;

	char *target;                        /* NULL when not set */

	iac_lt_scenario *scenarios;
	size_t nscenarios;

	enum iac_lt_executor executor;
	int vus;                             /* constant-vus; start_vus for ramping-vus */
	double duration_ms;
	iac_lt_stage *stages;
	size_t nstages;
	double rate;                         /* iterations per time_unit */
	double time_unit_ms;
	int pre_vus, max_vus;                /* arrival-rate executors */
	double graceful_stop_ms;
	double timeout_ms;                   /* per request */
	int no_poll;                         /* -no-poll: workers never poll before sleeping */
	char *user_agent;                    /* NULL: iac-loadtest/VERSION; "": no header */
	double max_failed;                   /* the run fails when this share of requests failed (0.5); INFINITY: never */
	unsigned char failed_status[600];    /* 1: a response with this status is a failed request (k6: outside 200-399) */
	/* https: load { tls = { ... } } and the -ca-file / -insecure-skip-tls-verify flags */
	char *tls_ca_file;                   /* PEM bundle verified against instead of the system store; NULL: system */
	char *tls_server_name;               /* SNI and the name verified; NULL: the URL's host */
	int tls_insecure;                    /* insecure_skip_tls_verify: certificates are not checked (marked in reports) */
	int load_line;
	int cookies;                         /* load { cookies = false }: no cookie jar per VU (on by default) */
	int has_setup, has_teardown;         /* the file defines setup() / teardown(data) */
	char *setup_data;                    /* setup()'s return value as JSON, NULL: none (set before the run) */

	iac_lt_threshold *thresholds;
	size_t nthresholds;
	iac_lt_mdecl *metrics;               /* custom metrics, in declaration order */
	size_t nmetrics;
	iac_lt_sub *subs;                    /* sub-metrics the thresholds select by tag */
	size_t nsubs;
	iac_lt_data *data;                   /* shared_data() files, read-only once loaded */
	size_t ndata;

	char *haproxy;                       /* observe.haproxy or NULL */
	iac_strlist hosts;                   /* observe.hosts */
	iac_strlist caches;                  /* observe.cache: "ADDRESS:PORT" of Redis / Memcached nodes */
	iac_strlist dbs;                     /* observe.db: "ADDRESS:PORT" of Patroni's REST API */
	char *ssh_key, *known_hosts;         /* observe.ssh_key / known_hosts, or NULL */
} iac_lt_config;

/* The custom metric named name, or NULL. */
const iac_lt_mdecl *iac_lt_config_metric(const iac_lt_config *cfg, const char *name);

/* Load a scenario file. 0, or -1 with the message "FILE:LINE: ..." (cfg
 * then holds nothing; freeing it again is harmless). */
int iac_lt_scenario_load(iac_lt_config *cfg, const char *path);
/* iac_lt_scenario_load with the target given from outside (`-target`, a
 * deployment's load-test gate aiming at the idle colour): it replaces the
 * file's own `target`, or serves as the target of a file that sets none, so
 * one scenario of relative paths runs against any environment. */
int iac_lt_scenario_load_target(iac_lt_config *cfg, const char *path, const char *target);
/* The same from a string (tests); `name` is used in messages. */
int iac_lt_scenario_load_string(iac_lt_config *cfg, const char *name, const char *src);
void iac_lt_config_free(iac_lt_config *cfg);

/* Total duration of the load phase (stages or duration), milliseconds. */
double iac_lt_config_duration_ms(const iac_lt_config *cfg);
const char *iac_lt_executor_name(enum iac_lt_executor e);

/* A new sandboxed lua_State with the scenario run in it (the caller closes
 * it). Returns NULL with a message. */
lua_State *iac_lt_scenario_open(const iac_lt_config *cfg);
/* Push the flow function of scenario i (nil when it has none); 1 if a function. */
int iac_lt_push_flow(lua_State *L, size_t i);

#endif
