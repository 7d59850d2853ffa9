/* haproxy_api: a client for HAProxy's runtime API, used by cutovers, reloads
 * and the deployment orchestrator to steer traffic without touching the
 * config file.
 *
 * It talks to a `stats socket ... level admin` (a unix path, "unix@PATH",
 * "ipv4@IP:PORT", "ipv6@[IP]:PORT" or "IP:PORT", HAProxy's own notation) or
 * to the master CLI (`haproxy -W -S SOCK`), where commands are routed to a
 * worker with a target prefix ("@1", "@!PID") set by iac_haproxy_set_target().
 * Every call opens one connection, sends one line (a batch is one line of
 * ';'-separated commands, executed in order by one HAProxy task), half-closes
 * it (the master CLI only answers then) and reads until HAProxy closes, all
 * within the handle's timeout. No connection is kept, so a handle survives
 * HAProxy reloads.
 *
 * Ownership: the handle owns a copy of the address; strings and arrays
 * returned through out-params belong to the caller (free() / the matching
 * *_free function). Errors read like
 *   haproxy at '/run/haproxy.sock': cannot set 'app/green' to ready: No such server.
 */
#ifndef IAC_DEPLOY_HAPROXY_API_H
#define IAC_DEPLOY_HAPROXY_API_H

#include <stddef.h>
#include <sys/types.h>

#include "iac/core/args.h"

typedef struct iac_haproxy iac_haproxy;

#define IAC_HAPROXY_TIMEOUT_MS 2000.0

/* Check the address and make a handle; nothing is connected yet.
 * timeout_ms <= 0 means IAC_HAPROXY_TIMEOUT_MS. */
int iac_haproxy_open(iac_haproxy **out, const char *addr, double timeout_ms);
void iac_haproxy_free(iac_haproxy *h);
/* The address as given ("/run/haproxy.sock"), for messages. */
const char *iac_haproxy_addr(const iac_haproxy *h);
void iac_haproxy_set_timeout(iac_haproxy *h, double timeout_ms);
/* Master CLI only: prefix every command with TARGET ("@1" = the current
 * worker, "@!1234", "@master"); NULL to send commands to the master itself. */
void iac_haproxy_set_target(iac_haproxy *h, const char *target);

/* One command; *out gets HAProxy's answer (may be "", caller frees). */
int iac_haproxy_cmd(char **out, iac_haproxy *h, const char *cmd);

/* n commands in one connection. out->items[i] is the answer to cmds[i]
 * (trailing newlines removed, "" when the command printed nothing). A
 * command must not contain ';' or a newline. */
int iac_haproxy_batch(iac_strlist *out, iac_haproxy *h, const char *const *cmds, size_t n);

/* Split the raw text of a batch answer: each command's answer ends with an
 * empty line. Returns the number of answers found; pure, for tests. */
size_t iac_haproxy_split_answers(iac_strlist *out, const char *raw);

/* The error text in the answer to a command that prints nothing on success
 * ("set server", "set weight"): NULL when the answer is empty, otherwise the
 * answer on one line. Permission and unknown-command answers get a hint.
 * Returns a new string; caller frees. */
char *iac_haproxy_answer_error(const char *answer);

/* ---- typed helpers ------------------------------------------------------ */

enum iac_haproxy_admin {
	IAC_HAPROXY_READY,   /* takes new traffic */
	IAC_HAPROXY_DRAIN,   /* keeps its sessions, gets no new ones */
	IAC_HAPROXY_MAINT,   /* out of the farm, health checks paused */
};
const char *iac_haproxy_admin_name(enum iac_haproxy_admin st);
/* "ready", "drain", "maint" -> the enum; -1 with a message otherwise. */
int iac_haproxy_admin_parse(enum iac_haproxy_admin *out, const char *name);

/* `set server BE/SRV state ready|drain|maint` for n servers in one batch.
 * Every command is sent; the first failure is reported. */
int iac_haproxy_set_state(iac_haproxy *h, const char *backend, const char *const *servers,
			  size_t n, enum iac_haproxy_admin st);

/* The same, followed in the same connection by `show stat` of `backend`
 * (rows as iac_haproxy_show_stat gives them, caller frees): one round trip
 * to change states and see their effect. */
typedef struct iac_haproxy_stat iac_haproxy_stat;
int iac_haproxy_set_state_stat(iac_haproxy_stat **rows, size_t *nrows, iac_haproxy *h,
			       const char *backend, const char *const *servers, size_t n,
			       enum iac_haproxy_admin st);

/* `set weight BE/SRV W` (W is "10" or "50%"). */
int iac_haproxy_set_weight(iac_haproxy *h, const char *backend, const char *server,
			   const char *weight);

/* Dynamic servers (HAProxy 2.4+), for the autoscaler. `add server
 * BE/SRV ADDR:PORT OPTS` (OPTS: the backend's default-server settings,
 * which HAProxy does not apply to a dynamic server: "check inter 100ms
 * ..."), then `enable health` and `enable server` (it is created in
 * maintenance): no reload. *existed = 1 (may be NULL) when a server of that
 * name was there already: it is only enabled then. */
int iac_haproxy_add_server(int *existed, iac_haproxy *h, const char *backend, const char *server,
			   const char *address, long port, const char *opts);
/* `set server BE/SRV state maint`, then `del server BE/SRV`. A server that
 * is not there is not an error. HAProxy refuses while the server still has
 * connections: IAC_ERR with its answer (drain first: iac_haproxy_set_state). */
int iac_haproxy_del_server(iac_haproxy *h, const char *backend, const char *server);

/* One row of `show stat` (a proxy, a server, FRONTEND or BACKEND). Numbers
 * HAProxy leaves empty are -1. */
struct iac_haproxy_stat {
	char pxname[128];
	char svname[128];
	char status[32];        /* "UP", "UP 1/3", "DOWN", "MAINT", "DRAIN", "no check", "OPEN" */
	char check_status[32];  /* "L7OK", "L7STS", "L4CON", "INI", ... */
	char check_desc[128];
	char addr[64];
	long qcur, qmax, scur, smax, stot, weight, act, bck, chkfail, lastchg;
	long lbtot, hrsp_2xx, hrsp_5xx, req_tot, check_code;
	long qtime, ctime, rtime, ttime;   /* ms, averages over the last 1024 requests */
	long type;                         /* 0 frontend, 1 backend, 2 server, 3 listener */
};

/* Parse `show stat` CSV (columns found by their header name, so newer
 * HAProxy versions with more columns still parse). Pure, for tests. */
int iac_haproxy_stat_parse(iac_haproxy_stat **out, size_t *n, const char *csv);
/* `show stat`; rows of `backend` only when it is not NULL. */
int iac_haproxy_show_stat(iac_haproxy_stat **out, size_t *n, iac_haproxy *h, const char *backend);
/* The row for BE/SRV or NULL. */
const iac_haproxy_stat *iac_haproxy_stat_find(const iac_haproxy_stat *rows, size_t n,
					      const char *backend, const char *server);
/* 1 when the row's server is operationally up ("UP", "UP 1/3", "DRAIN",
 * "no check", "NOLB"). */
int iac_haproxy_stat_is_up(const iac_haproxy_stat *row);

/* `show servers state [BE]`: the text a server-state-file holds. */
int iac_haproxy_servers_state(char **out, iac_haproxy *h, const char *backend);
/* Save `show servers state` to path (local file, replaced atomically) so the
 * next process started with `load-server-state-from-file global` keeps the
 * runtime states. */
int iac_haproxy_save_state(iac_haproxy *h, const char *path);

/* ---- master CLI --------------------------------------------------------- */

typedef struct {
	pid_t master;
	int reloads;          /* successful reloads of the master */
	int failed;           /* failed reloads ("[failed: N]") */
	pid_t workers[16];    /* current workers (not the old ones finishing) */
	size_t n_workers;
	size_t n_old;         /* old workers still finishing their sessions */
} iac_haproxy_procs;

/* Parse `show proc` from the master CLI. Pure, for tests. */
int iac_haproxy_procs_parse(iac_haproxy_procs *out, const char *text);
/* A command for the master itself on a master CLI handle ("reload",
 * "show proc"): the target prefix is not used. */
int iac_haproxy_master_cmd(char **out, iac_haproxy *master, const char *cmd);
/* `show proc` on a master CLI handle (the target prefix is not used). */
int iac_haproxy_show_proc(iac_haproxy_procs *out, iac_haproxy *master);
/* The pid of the process answering on a stats socket (`show info`). */
int iac_haproxy_worker_pid(pid_t *out, iac_haproxy *h);

#endif
