/* db.proxy: HAProxy 2.6 in TCP mode in front of a Patroni cluster.
 *
 *   rw port -> the one node whose Patroni answers GET /primary with 200
 *   ro port -> round robin over nodes answering GET /replica?lag=MAX_LAG
 *              (a replica further behind leaves the pool, and comes back);
 *              the leader when no replica qualifies
 * Checks every 300 ms (200 ms while down), a server is down after 2 failures and up after 1
 * success; `on-marked-down shutdown-sessions` cuts connections to a node
 * that stopped leading, so no client keeps writing to an old leader.
 * HAProxy runs as a daemon with its pid in DIR/haproxy.pid; a new config is
 * checked with `haproxy -c` and loaded with -sf (the old process finishes
 * its connections).
 */
#include "providers/db/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/host/host.h"

static const iac_attr proxy_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the host HAProxy runs on" },
	{ "cluster", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the cluster's name" },
	{ "nodes", IAC_T_LIST, IAC_A_REQUIRED, "[{name, address, port, api_port}] of every member" },
	{ "rw", IAC_T_NUMBER, 0, "read/write port (the leader), default 5432" },
	{ "ro", IAC_T_NUMBER, 0, "read-only port (replicas), default 5433" },
	{ "bind", IAC_T_STRING, 0, "address to listen on, default the host's address" },
	{ "max_lag", IAC_T_NUMBER, 0, "bytes a replica may lag and stay in the ro pool, default 1048576" },
	{ "config_sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of the HAProxy config" },
	{ NULL, 0, 0, NULL },
};

static long num(const json_t *a, const char *k, long dflt)
{
	const json_t *v = json_object_get(a, k);
	return json_is_number(v) ? (long)json_number_value(v) : dflt;
}

static char *dir_of(const json_t *a)
{
	return iac_xasprintf("/var/lib/iac/db-proxy-%s", iac_json_str(a, "cluster"));
}

static void servers(iac_buf *b, const json_t *nodes, const char *suffix)
{
	size_t i;
	json_t *n;
	json_array_foreach(nodes, i, n)
		iac_buf_printf(b, "    server %s%s %s:%ld check port %ld\n", iac_json_str(n, "name"), suffix,
			       iac_json_str(n, "address"), num(n, "port", 5432), num(n, "api_port", 8008));
}

/* The config text (caller frees), or NULL with a message. */
static char *render(const json_t *a)
{
	const char *c = iac_json_str(a, "cluster");
	const char *bind = iac_json_str(a, "bind") ?: iac_json_str(json_object_get(a, "host"), "address") ?: "127.0.0.1";
	const json_t *nodes = json_object_get(a, "nodes");
	size_t i;
	json_t *n;
	if (!iac_db_name_ok(c) || !iac_db_name_ok(bind)) {
		iac_err_set("attribute 'cluster' or 'bind': not a plain name or address");
		return NULL;
	}
	if (!json_array_size(nodes)) {
		iac_err_set("attribute 'nodes': at least one node is needed");
		return NULL;
	}
	json_array_foreach(nodes, i, n) {
		if (!iac_db_name_ok(iac_json_str(n, "name")) || !iac_db_name_ok(iac_json_str(n, "address"))) {
			iac_err_set("attribute 'nodes': item %zu needs a plain 'name' and 'address'", i + 1);
			return NULL;
		}
	}
	char *dir = dir_of(a);
	iac_buf b = IAC_BUF_INIT;
	iac_buf_printf(&b,
		       "# written by iac (db.proxy %s): rw -> Patroni's leader, ro -> replicas\n"
		       "global\n    maxconn 4000\n    stats socket %s/api.sock mode 600 level admin\n"
		       "defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 1h\n    timeout server 1h\n"
		       "    timeout check 1s\n"
		       "    default-server inter 300ms fastinter 100ms downinter 200ms rise 1 fall 2 "
		       "on-marked-down shutdown-sessions\n\n",
		       c, dir);
	iac_buf_printf(&b,
		       "frontend %s_rw\n    bind %s:%ld\n    default_backend %s_rw\n\n"
		       "backend %s_rw\n    option httpchk GET /primary\n    http-check expect status 200\n",
		       c, bind, num(a, "rw", 5432), c, c);
	servers(&b, nodes, "");
	iac_buf_printf(&b,
		       "\nfrontend %s_ro\n    bind %s:%ld\n    use_backend %s_ro_leader if { nbsrv(%s_ro) eq 0 }\n"
		       "    default_backend %s_ro\n\n"
		       "backend %s_ro\n    balance roundrobin\n    option httpchk GET /replica?lag=%ld\n"
		       "    http-check expect status 200\n",
		       c, bind, num(a, "ro", 5433), c, c, c, c, num(a, "max_lag", 1048576));
	servers(&b, nodes, "");
	iac_buf_printf(&b, "\nbackend %s_ro_leader\n    option httpchk GET /primary\n    http-check expect status 200\n", c);
	servers(&b, nodes, "");
	free(dir);
	return iac_buf_detach(&b);
}

static int proxy_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	(void)ctx;
	(void)prior;
	if (iac_value_has_unknown(planned))
		return 0;
	char *text = render(planned);
	if (!text)
		return IAC_ERR;
	iac_db_set_sha(planned, text);
	free(text);
	return 0;
}

/* Write, check, then start or replace the running HAProxy. */
/* create, and update (prior unused: the config says it all) */
static int converge(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	(void)prior;
	char *text = render(planned), *dir = dir_of(planned), *cfg = NULL, *next = NULL, *cmd = NULL;
	const json_t *host = json_object_get(planned, "host");
	long pid = 0;
	int rc = IAC_ERR;
	if (!text)
		goto done;
	cfg = iac_xasprintf("%s/haproxy.cfg", dir);
	next = iac_xasprintf("%s/haproxy.cfg.next", dir);
	if (iac_host_write(ctx->hosts, host, next, text, strlen(text), "0644", ctx->cancel) < 0)
		goto done;
	cmd = iac_xasprintf("haproxy -c -q -f '%s' && mv '%s' '%s'", next, next, cfg);
	if (iac_host_run(NULL, ctx->hosts, host, cmd, 20e3, ctx->cancel) < 0) {
		iac_err_prefix("haproxy config for '%s' is invalid", iac_json_str(planned, "cluster"));
		goto done;
	}
	char *pf = iac_xasprintf("%s/haproxy.pid", dir);
	int prc = iac_db_pid(&pid, ctx, planned, pf);
	free(pf);
	if (prc < 0)
		goto done;
	free(cmd);
	if (pid > 0)
		cmd = iac_xasprintf("haproxy -D -p '%s/haproxy.pid' -f '%s' -sf %ld", dir, cfg, pid);
	else
		cmd = iac_xasprintf("haproxy -D -p '%s/haproxy.pid' -f '%s'", dir, cfg);
	if (iac_host_run(NULL, ctx->hosts, host, cmd, 20e3, ctx->cancel) < 0)
		goto done;
	*out = json_deep_copy(planned);
	iac_db_set_sha(*out, text);
	rc = 0;
done:
	free(text);
	free(dir);
	free(cfg);
	free(next);
	free(cmd);
	return rc;
}

static int proxy_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	return converge(ctx, out, NULL, planned);
}

static int proxy_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	char *dir = dir_of(prior), *pf = iac_xasprintf("%s/haproxy.pid", dir);
	int rc = iac_db_read_daemon(out, ctx, prior, pf);
	free(pf);
	free(dir);
	return rc;
}

static int proxy_remove(const iac_rctx *ctx, const json_t *prior)
{
	char *dir = dir_of(prior), *pf = iac_xasprintf("%s/haproxy.pid", dir), *rm = iac_xasprintf("rm -rf '%s'", dir);
	int rc = iac_db_stop(ctx, prior, pf, "TERM", 5, rm);
	free(rm);
	free(pf);
	free(dir);
	return rc;
}

const iac_rtype iac_db_proxy_type = {
	.name = "db.proxy",
	.attrs = proxy_attrs,
	.doc = "HAProxy splitting reads from writes in front of a Patroni cluster",
	.plan = proxy_plan,
	.read = proxy_read,
	.create = proxy_create,
	.update = converge,
	.remove = proxy_remove,
	.probe = iac_db_probe,
	.gone_reason = "not running",
};
