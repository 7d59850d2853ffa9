/* db.pooler: PgBouncer 1.18 in front of one member's PostgreSQL.
 *
 * It listens on the member's address (port 6432 by default) and pools
 * connections to the local PostgreSQL (127.0.0.1), in transaction mode
 * unless told otherwise; db.proxy then sends the rw and ro ports to the
 * poolers while still asking Patroni who leads. Its auth_file is written by
 * db.credentials (the superuser's password, 0600 postgres), so the
 * passwords stay in that one resource. Config /etc/patroni/CLUSTER.pgbouncer.ini,
 * pid /run/postgresql/pgbouncer-CLUSTER.pid; runs as postgres; a changed
 * config is reloaded with HUP.
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

static const iac_attr pool_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the member's host" },
	{ "cluster", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the cluster's name" },
	{ "port", IAC_T_NUMBER, 0, "PgBouncer's port, default 6432" },
	{ "pg_port", IAC_T_NUMBER, 0, "the local PostgreSQL's port, default 5432" },
	{ "mode", IAC_T_STRING, 0, "pool_mode: session, transaction (default) or statement" },
	{ "pool_size", IAC_T_NUMBER, 0, "server connections per database and user, default 20" },
	{ "max_client_conn", IAC_T_NUMBER, 0, "client connections accepted, default 1000" },
	{ "config_sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of pgbouncer.ini" },
	{ NULL, 0, 0, NULL },
};

static long num(const json_t *a, const char *k, long dflt)
{
	const json_t *v = json_object_get(a, k);
	return json_is_number(v) ? (long)json_number_value(v) : dflt;
}

static char *render(const json_t *a)
{
	const char *c = iac_json_str(a, "cluster"), *mode = iac_json_str(a, "mode") ?: "transaction";
	const char *addr = iac_json_str(json_object_get(a, "host"), "address") ?: "127.0.0.1";
	if (!iac_db_name_ok(c) || !iac_db_name_ok(addr)) {
		iac_err_set("attribute 'cluster' or the host's address: not a plain name");
		return NULL;
	}
	if (strcmp(mode, "session") && strcmp(mode, "transaction") && strcmp(mode, "statement")) {
		iac_err_set("attribute 'mode': '%s' is not session, transaction or statement", mode);
		return NULL;
	}
	if (num(a, "pool_size", 20) < 1 || num(a, "max_client_conn", 1000) < 1) {
		iac_err_set("attributes 'pool_size' and 'max_client_conn' must be at least 1");
		return NULL;
	}
	return iac_xasprintf("; written by iac (db.pooler %s)\n[databases]\n* = host=127.0.0.1 port=%ld\n\n"
			     "[pgbouncer]\nlisten_addr = %s\nlisten_port = %ld\nunix_socket_dir = /run/postgresql\n"
			     "auth_type = scram-sha-256\nauth_file = /etc/patroni/%s.pgbouncer.users\n"
			     "admin_users = postgres\nstats_users = postgres\npool_mode = %s\ndefault_pool_size = %ld\n"
			     "max_client_conn = %ld\nignore_startup_parameters = extra_float_digits,options\n"
			     "pidfile = /run/postgresql/pgbouncer-%s.pid\nlogfile = /var/log/patroni/pgbouncer-%s.log\n",
			     c, num(a, "pg_port", 5432), addr, num(a, "port", 6432), c, mode, num(a, "pool_size", 20),
			     num(a, "max_client_conn", 1000), c, c);
}

static int pool_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
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

static char *pidfile(const json_t *a)
{
	return iac_xasprintf("/run/postgresql/pgbouncer-%s.pid", iac_json_str(a, "cluster"));
}

/* create, and update (prior unused: the config says it all) */
static int converge(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	(void)prior;
	const char *c = iac_json_str(planned, "cluster");
	const json_t *host = json_object_get(planned, "host");
	char *text = render(planned), *path = NULL, *cmd = NULL, *pf = pidfile(planned);
	long pid = 0;
	int rc = IAC_ERR;
	if (!text)
		goto done;
	path = iac_xasprintf("/etc/patroni/%s.pgbouncer.ini", c);
	if (iac_host_run(NULL, ctx->hosts, host,
			 "command -v pgbouncer >/dev/null || { echo 'pgbouncer is not installed' >&2; exit 3; }; "
			 "install -d -o postgres -g postgres -m 0700 /etc/patroni && "
			 "install -d -o postgres -g postgres -m 2775 /run/postgresql && "
			 "install -d -o postgres -g postgres -m 0750 /var/log/patroni",
			 30e3, ctx->cancel) < 0 ||
	    iac_host_write(ctx->hosts, host, path, text, strlen(text), "0644", ctx->cancel) < 0 ||
	    iac_db_pid(&pid, ctx, planned, pf) < 0)
		goto done;
	if (pid > 0)
		cmd = iac_xasprintf("kill -HUP %ld", pid);
	else
		/* --reset-env leaves postgres a PATH without /usr/sbin */
		cmd = iac_xasprintf("cd / && pb=$(command -v pgbouncer) && setpriv --reuid=postgres --regid=postgres "
				    "--init-groups --reset-env \"$pb\" -d -q '%s' || { tail -n 10 /var/log/patroni/pgbouncer-%s.log >&2; exit 4; }; "
				    "for i in $(seq 100); do p=$(cat /run/postgresql/pgbouncer-%s.pid 2>/dev/null) && "
				    "kill -0 \"$p\" 2>/dev/null && exit 0; sleep 0.05; done; "
				    "echo 'pgbouncer did not start' >&2; tail -n 10 /var/log/patroni/pgbouncer-%s.log >&2; exit 4",
				    path, c, c, c);
	if (iac_host_run(NULL, ctx->hosts, host, cmd, 30e3, ctx->cancel) < 0)
		goto done;
	*out = json_deep_copy(planned);
	iac_db_set_sha(*out, text);
	rc = 0;
done:
	free(text);
	free(path);
	free(cmd);
	free(pf);
	return rc;
}

static int pool_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	return converge(ctx, out, NULL, planned);
}

static int pool_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	char *pf = pidfile(prior);
	int rc = iac_db_read_daemon(out, ctx, prior, pf);
	free(pf);
	return rc;
}

/* SIGINT: PgBouncer's safe shutdown (clients finish their transactions) */
static int pool_remove(const iac_rctx *ctx, const json_t *prior)
{
	char *pf = pidfile(prior), *rm = iac_xasprintf("rm -f /etc/patroni/%s.pgbouncer.ini", iac_json_str(prior, "cluster"));
	int rc = iac_db_stop(ctx, prior, pf, "INT", 5, rm);
	free(rm);
	free(pf);
	return rc;
}

const iac_rtype iac_db_pooler_type = {
	.name = "db.pooler",
	.attrs = pool_attrs,
	.doc = "PgBouncer pooling connections to one member's PostgreSQL",
	.plan = pool_plan,
	.read = pool_read,
	.create = pool_create,
	.update = converge,
	.remove = pool_remove,
	.probe = iac_db_probe,
	.gone_reason = "not running",
};
