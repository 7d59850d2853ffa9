/* db.credentials: a cluster's passwords on one host, for Patroni.
 *
 * /etc/patroni/CLUSTER.env, 0600 and owned by postgres, holds
 * PATRONI_SUPERUSER_PASSWORD, PATRONI_REPLICATION_PASSWORD and
 * PATRONI_REWIND_PASSWORD as single-quoted shell words; db.patroni_node
 * sources it into Patroni's environment when it starts Patroni.
 * /etc/patroni/CLUSTER.pgbouncer.users (0600, postgres) is PgBouncer's
 * auth_file with the superuser (db.pooler). The values
 * are sensitive attributes: redacted in plans, output and state, and in
 * no other resource (what is computed from a secret is redacted too, and
 * the nodes' roles must stay readable).
 * A changed password rewrites the file; the roles in PostgreSQL are not
 * altered (ALTER ROLE on the leader first, then apply: each Patroni uses
 * the new one from its next start).
 */
#include "providers/db/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/host/host.h"

static const iac_attr creds_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the host of a member" },
	{ "cluster", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the cluster's name" },
	{ "superuser_password", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_SENSITIVE, "password of 'postgres'" },
	{ "replication_password", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_SENSITIVE, "password of 'replicator'" },
	{ NULL, 0, 0, NULL },
};

static char *env_path(const json_t *a)
{
	return iac_xasprintf("/etc/patroni/%s.env", iac_json_str(a, "cluster"));
}

static void put_var(iac_buf *b, const char *name, const char *v)
{
	iac_buf_printf(b, "%s='", name);
	for (; v && *v; v++) {
		if (*v == '\'')
			iac_buf_puts(b, "'\\''");
		else
			iac_buf_putc(b, *v);
	}
	iac_buf_puts(b, "'\n");
}

static int creds_write(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	const json_t *host = json_object_get(planned, "host");
	const char *su = iac_json_str(planned, "superuser_password"), *rep = iac_json_str(planned, "replication_password");
	char *path = env_path(planned), *cmd = NULL;
	char *users = iac_xasprintf("/etc/patroni/%s.pgbouncer.users", iac_json_str(planned, "cluster"));
	iac_buf b = IAC_BUF_INIT, ub = IAC_BUF_INIT;
	int rc = IAC_ERR;
	if (!iac_db_name_ok(iac_json_str(planned, "cluster"))) {
		iac_err_set("attribute 'cluster': not a name (letters, digits, '_', '-', '.')");
		goto done;
	}
	if (!su || !*su || !rep || !*rep) {
		iac_err_set("the superuser and replication passwords must not be empty");
		goto done;
	}
	put_var(&b, "PATRONI_SUPERUSER_PASSWORD", su);
	put_var(&b, "PATRONI_REPLICATION_PASSWORD", rep);
	put_var(&b, "PATRONI_REWIND_PASSWORD", su);
	if (iac_host_run(NULL, ctx->hosts, host,
			 "id postgres >/dev/null 2>&1 || { echo 'no postgres user: install postgresql-15 and patroni' >&2; "
			 "exit 3; }; install -d -o postgres -g postgres -m 0700 /etc/patroni",
			 30e3, ctx->cancel) < 0)
		goto done;
	if (iac_host_write(ctx->hosts, host, path, iac_buf_cstr(&b), b.len, "0600", ctx->cancel) < 0)
		goto done;
	/* PgBouncer's auth_file (db.pooler): "user" "password", quotes doubled */
	iac_buf_puts(&ub, "\"postgres\" \"");
	for (const char *p = su; *p; p++) {
		if (*p == '"')
			iac_buf_putc(&ub, '"');
		iac_buf_putc(&ub, *p);
	}
	iac_buf_puts(&ub, "\"\n");
	if (iac_host_write(ctx->hosts, host, users, iac_buf_cstr(&ub), ub.len, "0600", ctx->cancel) < 0)
		goto done;
	cmd = iac_xasprintf("chown postgres:postgres '%s' '%s'", path, users);
	if (iac_host_run(NULL, ctx->hosts, host, cmd, 20e3, ctx->cancel) < 0)
		goto done;
	*out = json_deep_copy(planned);
	rc = 0;
done:
	if (b.ptr)
		memset(b.ptr, 0, b.len);   /* no password left in freed memory */
	if (ub.ptr)
		memset(ub.ptr, 0, ub.len);
	iac_buf_free(&b);
	iac_buf_free(&ub);
	free(users);
	free(path);
	free(cmd);
	return rc;
}

static int creds_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	return creds_write(ctx, out, planned);
}

static int creds_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	(void)prior;
	return creds_write(ctx, out, planned);
}

static int creds_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	char *path = env_path(prior), *cmd = iac_xasprintf("test -s '%s'", path);
	int status = 1;
	*out = NULL;
	int rc = iac_host_status(&status, ctx->hosts, json_object_get(prior, "host"), cmd, 20e3, ctx->cancel);
	if (rc == 0 && status == 0)
		*out = json_deep_copy(prior);
	free(cmd);
	free(path);
	return rc;
}

static int creds_remove(const iac_rctx *ctx, const json_t *prior)
{
	char *path = env_path(prior),
	     *cmd = iac_xasprintf("rm -f '%s' '/etc/patroni/%s.pgbouncer.users'", path, iac_json_str(prior, "cluster"));
	int rc = iac_host_run(NULL, ctx->hosts, json_object_get(prior, "host"), cmd, 20e3, ctx->cancel);
	free(cmd);
	free(path);
	return rc;
}

const iac_rtype iac_db_creds_type = {
	.name = "db.credentials",
	.attrs = creds_attrs,
	.doc = "a cluster's passwords on a member's host, for Patroni (0600, postgres)",
	.read = creds_read,
	.create = creds_create,
	.update = creds_update,
	.remove = creds_remove,
	.probe = iac_db_probe,
};
