/* haproxy_ctl: control a local HAProxy process in master-worker mode:
 * validate a config, start, reload without dropping a request, stop.
 *
 * Rendering is haproxy_cfg.h (pure); this module runs processes and so only
 * works on the machine it runs on. For a remote HAProxy the orchestrator
 * runs the same steps over SSH: `haproxy -c -f`, then the reload steps below
 * with the runtime API and master CLI reachable through `ipv4@` sockets.
 *
 * Zero-downtime reload (iac_haproxy_reload):
 *   0. `haproxy -c` on the new config when its path is given: an invalid
 *      config is never handed to the master,
 *   1. save `show servers state` to the state file (runtime cutovers survive),
 *   2. `reload` on the master CLI, or SIGUSR2 to the master pid,
 *   3. wait until the master reports a new worker, and until the stats
 *      socket is answered by that worker: a cutover sent earlier would reach
 *      the old worker and be lost.
 * A reload whose config HAProxy rejects leaves the old worker serving and
 * fails here with HAProxy's reason when the master CLI says so.
 *
 * Ownership: handles passed in are borrowed; nothing is kept after a call.
 */
#ifndef IAC_DEPLOY_HAPROXY_CTL_H
#define IAC_DEPLOY_HAPROXY_CTL_H

#include <sys/types.h>

#include "iac/deploy/haproxy_api.h"

/* `HAPROXY -c -f PATH` (haproxy NULL: "haproxy" from PATH). -1 with
 * HAProxy's own complaint ("haproxy config '/etc/haproxy.cfg' is invalid:
 * [ALERT] ... parsing [x.cfg:12] : unknown keyword 'foo'"). */
int iac_haproxy_check(const char *haproxy, const char *path);
/* The same for config text, written to a temporary file first. */
int iac_haproxy_check_text(const char *haproxy, const char *text);

typedef struct {
	const char *haproxy;        /* binary; NULL: "haproxy" */
	const char *cfg_path;       /* required */
	const char *master_socket;  /* -S PATH,level,admin (unix path); NULL: none */
	const char *pidfile;        /* -p PATH; required (it is how the master is found) */
	double timeout_ms;          /* for the start; <= 0: 10 s */
} iac_haproxy_run;

/* Start HAProxy as a daemon in master-worker mode (-W -D) and return the
 * master's pid. */
int iac_haproxy_start(pid_t *out_master, const iac_haproxy_run *run);

typedef struct {
	iac_haproxy *api;          /* stats socket; NULL: no state save, no worker check */
	iac_haproxy *master;       /* master CLI; NULL: signal master_pid */
	pid_t master_pid;          /* used when master is NULL */
	const char *state_file;    /* where to save `show servers state`; NULL: skip */
	const char *cfg_path;      /* validated with `haproxy -c` first; NULL: the caller did */
	const char *haproxy;       /* binary for the check; NULL: "haproxy" */
	double timeout_ms;         /* whole reload; <= 0: 10 s */
} iac_haproxy_reload_opts;

typedef struct {
	pid_t old_worker, new_worker;
	double save_ms;            /* saving the server states */
	double reload_ms;          /* reload sent -> new worker answers the API */
	double total_ms;
} iac_haproxy_reload_result;

int iac_haproxy_reload(iac_haproxy_reload_result *out, const iac_haproxy_reload_opts *opts);

/* Graceful stop: SIGUSR1 (finish sessions), then SIGTERM after timeout_ms,
 * then SIGKILL. Waits until the master is gone. */
int iac_haproxy_stop(pid_t master, double timeout_ms);

#endif
