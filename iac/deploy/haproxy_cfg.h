/* haproxy_cfg: render the HAProxy 2.6 configuration of a blue/green setup.
 *
 * Pure: a JSON description in, config text out; nothing is read or written,
 * no process is touched, so the same call serves a local HAProxy and one the
 * SSH provider writes to a remote host (process control is haproxy_ctl.h).
 *
 * The description (unknown keys are rejected, so typos are caught):
 *   {
 *     "frontend": { "name": "web", "bind": "127.0.0.1:18080" },   -- bind: string or list
 *     "backend":  { "name": "app", "balance": "roundrobin", "slowstart": "10s" },
 *     "health":   { "path": "/health", "expect": 200, "interval": "500ms",
 *                   "fast_interval": "100ms", "rise": 2, "fall": 2, "timeout": "1s" },
 *     "servers":  [ { "name": "blue1", "address": "127.0.0.1", "port": 8001,
 *                     "colour": "blue", "weight": 100 }, ... ],   -- "color" also accepted
 *     "live": "blue",
 *     "stats_socket": "/run/haproxy/api.sock",        -- or "ipv4@127.0.0.1:9999"
 *     "state_file": "/var/lib/haproxy/server-state",
 *     "pidfile": "/run/haproxy.pid", "maxconn": 4096, "nbthread": 2,
 *     "hard_stop_after": "60s",
 *     "timeouts": { "connect": "2s", "client": "30s", "server": "30s",
 *                   "http_keep_alive": "10s", "queue": "5s" }
 *   }
 * Defaults are the values shown, except pidfile/maxconn/nbthread (omitted).
 *
 * What the output guarantees, and why:
 * - master-worker, and the stats socket at level admin with
 *   `expose-fd listeners`: reloads hand the listening sockets over, so no
 *   connection is refused during a reload.
 * - `option idle-close-on-response`: an old worker closes an idle keep-alive
 *   connection only after answering one more request on it, instead of
 *   racing a client that is sending one (48 read errors per 5 reloads
 *   without it on the test bed, 0 with it).
 * - servers of the live colour are enabled; the others carry `disabled`.
 *   With `server-state-file` + `load-server-state-from-file global`, a
 *   reload with an unchanged config keeps the runtime states (a cutover done
 *   through the API survives), while a config whose live colour changed wins
 *   over the saved states (HAProxy compares the saved and configured
 *   "disabled" flag).
 * - `retry-on conn-failure empty-response` + `option redispatch 1`: a
 *   request whose server vanished before answering is retried on another.
 */
#ifndef IAC_DEPLOY_HAPROXY_CFG_H
#define IAC_DEPLOY_HAPROXY_CFG_H

#include <jansson.h>

/* Render the configuration; *out is the text (caller frees). Returns -1 with
 * a message naming the field ("haproxy config: servers[1].port: ...") when
 * the description is incomplete or unsafe to paste into a config.
 * The same as iac_haproxy_cfg_parse() then iac_haproxy_cfg_format(). */
int iac_haproxy_cfg_render(char **out, const json_t *desc);

/* ---- the two halves of rendering -------------------------------------- */

typedef struct {
	const char *name, *address, *colour;
	long port;
	long weight;                /* -1: not given (HAProxy's default) */
} iac_haproxy_cfg_server;

/* A description once validated: defaults filled in, durations in ms, and
 * every string safe to paste as one config word. Strings are borrowed from
 * the JSON description (keep it alive while this is used); the arrays are
 * owned (iac_haproxy_cfg_free). */
typedef struct {
	const char *frontend, *backend, *balance;
	const char **binds;         /* at least one */
	size_t n_binds;
	const char *health_path;
	long health_expect;
	long inter_ms, fastinter_ms, rise, fall, check_timeout_ms;
	const char *live, *stats_socket, *state_file;
	const char *pidfile;        /* "": none */
	long maxconn, nbthread;     /* 0: not set */
	long hard_stop_after_ms;
	long slowstart_ms;          /* 0: none; a server back UP ramps its weight up over this */
	long connect_ms, client_ms, server_ms, keep_alive_ms, queue_ms;
	iac_haproxy_cfg_server *servers;   /* at least one, names unique, some of `live` */
	size_t n_servers;
} iac_haproxy_cfg;

/* Validate desc (the format above) into *out. On failure -1 with the
 * message iac_haproxy_cfg_render gives, and *out holds nothing. */
int iac_haproxy_cfg_parse(iac_haproxy_cfg *out, const json_t *desc);
/* The config text for a validated description (caller frees). Pure. */
char *iac_haproxy_cfg_format(const iac_haproxy_cfg *cfg);
/* The backend's default-server settings ("check inter 100ms fastinter
 * ... rise 2 fall 2 slowstart 10000ms"): what a server added at runtime
 * must be given, HAProxy applying no default-server to it. Caller frees. */
char *iac_haproxy_cfg_server_opts(const iac_haproxy_cfg *cfg);
/* Free the arrays; safe on a zeroed or already freed struct. */
void iac_haproxy_cfg_free(iac_haproxy_cfg *cfg);

/* The names of the servers of `colour` in desc (borrowed from desc), at most
 * max of them, for callers that need the blue/green server lists to cut
 * over. Returns the number of servers of that colour. */
size_t iac_haproxy_cfg_servers(const char **names, size_t max, const json_t *desc, const char *colour);

#endif
