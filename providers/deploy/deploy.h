/* deploy: the provider for blue/green deployments.
 *
 *   deploy.haproxy     HAProxy 2.6 in master-worker mode on a host (or on
 *                      this machine): config rendered, checked with
 *                      `haproxy -c` before any (re)load, reloads that keep
 *                      runtime server states (server-state-file).
 *   deploy.blue_green  a pool's two colours behind that HAProxy: deploys a
 *                      version to the idle colour, gates it (health,
 *                      analysis, Prometheus), switches traffic, keeps the
 *                      old colour running as standby for `iac rollback`.
 *
 * Modules declare (modules/haproxy.lua, app_pool.lua, deployment.lua);
 * this provider acts. Commands on hosts go through the run's hosts
 * (iac/host): this machine when the host is absent, else the SSH
 * connection that every provider shares for that host.
 */
#ifndef IAC_PROVIDERS_DEPLOY_H
#define IAC_PROVIDERS_DEPLOY_H

#include <jansson.h>

#include "iac/core/args.h"
#include "iac/core/buf.h"
#include "iac/deploy/haproxy_api.h"
#include "iac/host/host.h"
#include "iac/provider/provider.h"

extern const iac_rtype iac_deploy_haproxy_type;
extern const iac_rtype iac_deploy_bluegreen_type;
extern const iac_provider iac_provider_deploy;

typedef struct {
	int allow_bad;        /* -allow-bad: deploy a version marked bad */
} iac_deploy_pdata;

/* 1 when addr is one of names, by full address or by its last part
 * ("web" for "deploy.blue_green.web"); an empty list matches all. */
int iac_deploy_addr_matches(const char *addr, const iac_strlist *names);

/* Expand {version} {port} {colour} {name} {address} in tpl with the values
 * of `vars` (an object of strings/numbers). Caller frees. */
char *iac_deploy_expand(const char *tpl, const json_t *vars);

/* ---- rollback.c ---- */

typedef struct {
	double total_ms;       /* the whole rollback */
	double switch_ms;      /* until new requests went to the standby */
	char from_colour[16], to_colour[16];
	char from_version[128], to_version[128];
	char note[512];        /* standby instances left out (not answering) */
} iac_rollback_result;

/* Switch a deployment (its state attributes) back to its standby colour.
 * *out_attrs = the new state attributes (live/standby swapped, the version
 * rolled back from marked bad). */
int iac_deploy_rollback(json_t **out_attrs, iac_rollback_result *res, const iac_rctx *ctx,
			const json_t *attrs);

/* The "replaced" mark: weight 0 on a colour's servers in HAProxy says the
 * colour no longer runs what state says (bluegreen.c sets it before it
 * stops the idle colour to restart it at a new version, and clears it just
 * before the switch). *marked = 1 when any of names carries it. */
int iac_deploy_replaced(int *marked, iac_haproxy *h, const char *backend, const char *const *names, size_t n);

/* loadgate.c: the load-test stage (analysis = { loadtest = "smoke.lua",
 * rate = 200, duration = "30s" }): the scenario runs against every idle
 * instance at once (urls[i], instance names[i]), each at rate/n, through
 * `iac loadtest -target URL`; its thresholds and verdict decide like the
 * other gates. Each run's figures go to last.loadtest. 0 when every run
 * passed (or no loadtest is set), IAC_ERR with which instance failed and why. */
int iac_deploy_gate_loadtest(const iac_rctx *ctx, json_t *last, const json_t *analysis, const char *const *urls,
			     const char *const *names, size_t n);

/* cmd_pool.c: `iac pool status [NAME]` (also `iac status pool [NAME]`) */
int iac_deploy_cmd_pool(int argc, char **argv);
void iac_deploy_cmd_pool_help(void);

/* cmd_rollback.c: `iac rollback [DEPLOYMENT...] [-force]` */
int iac_deploy_cmd_rollback(int argc, char **argv);
void iac_deploy_cmd_rollback_help(void);

/* Save HAProxy's runtime server states where its config loads them from,
 * on the HAProxy host, so a reload or restart keeps the switch. */
int iac_deploy_persist_switch(const iac_rctx *ctx, const json_t *lb);

/* The HAProxy instances a deployment's lb stands for: lb itself, then each
 * of lb.peers (an HA group behind a virtual IP, modules/haproxy.lua); each
 * is a map {api, state_file, host}. Fills at most max (borrowed), returns
 * how many. Every switch, mark and rollback goes to all of them. */
size_t iac_deploy_lbs(const json_t **out, size_t max, const json_t *lb);

/* bluegreen.c, for the autoscaler: start one instance of pool at version
 * (files from the pool's templates, its start command, its pidfile
 * checked), or stop it; the health gate (a deployment's `health`
 * settings) on n instances, its figures in last.health. */
int iac_deploy_inst_start(const iac_rctx *ctx, const json_t *pool, const json_t *inst, const char *version);
int iac_deploy_inst_stop(const iac_rctx *ctx, const json_t *pool, const json_t *inst, const char *version);
int iac_deploy_health_gate(const iac_rctx *ctx, json_t *last, const json_t *health, const json_t *const *inst,
			   size_t n);

/* cmd_pool.c: the mean CPU use (percent) of hosts over window_ms, read from
 * /proc/stat through the run's hosts (a null host: this machine). IAC_ERR
 * when no host could be read. */
int iac_deploy_cpu_mean(double *out_pct, iac_hosts *hosts, const json_t *const *list, size_t n, long window_ms);

/* haproxy_res.c: the options a server added at runtime needs to match the
 * ones the config of a deploy.haproxy (its state attributes) gives its
 * servers ("check inter ... slowstart ..."). Caller frees *out. */
int iac_deploy_haproxy_server_opts(char **out, const json_t *attrs);

/* cmd_autoscale.c: `iac autoscale [DEPLOYMENT] [-once]`, `iac autoscale
 * status` (also `iac status autoscale`); autoscale.c does one step. */
int iac_deploy_cmd_autoscale(int argc, char **argv);
void iac_deploy_cmd_autoscale_help(void);

#endif
