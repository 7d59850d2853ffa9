/* db.migration: a SQL file applied once to a cluster's leader, recorded in
 * schema_migrations (name, phase, checksum, applied_at).
 *
 * - Where: the member Patroni says leads now (GET /cluster on any member),
 *   through psql as postgres over that host's socket (no password).
 * - Once: the file runs in one transaction together with its
 *   schema_migrations row, so a migration is either applied and recorded or
 *   neither. A row with the same checksum means applied already (adopted).
 * - Edited after it was applied: the plan refuses it (the checksum in state
 *   or in schema_migrations differs from the file's): applied migrations are
 *   never changed, a new one is written.
 * - Locks: the transaction starts with SET lock_timeout, so a migration
 *   stuck behind a long transaction fails fast instead of queueing every
 *   query behind its lock; lock timeouts (SQLSTATE 55P03) are retried with
 *   exponential backoff, other errors fail at once.
 * The expand phase only: contract (after a blue/green switch and its
 * rollback window) is not done yet.
 */
#include "providers/db/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/host/host.h"

static const iac_attr mig_attrs[] = {
	{ "name", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the migration's name (schema_migrations.name)" },
	{ "cluster", IAC_T_STRING, IAC_A_REQUIRED, "the cluster's name" },
	{ "members", IAC_T_LIST, IAC_A_REQUIRED, "[{host, name, port, api_port}] of the cluster's members" },
	{ "expand", IAC_T_STRING, IAC_A_REQUIRED, "SQL file run before the new version starts (relative to main.lua)" },
	{ "database", IAC_T_STRING, 0, "database to migrate, default \"postgres\"" },
	{ "lock_timeout", IAC_T_STRING, 0, "SET lock_timeout for the migration, default \"2s\"" },
	{ "retries", IAC_T_NUMBER, 0, "attempts after a lock timeout, default 5 (backoff 0.5 s doubling, 8 s at most)" },
	{ "expand_sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of the expand file" },
	{ NULL, 0, 0, NULL },
};

static long num(const json_t *a, const char *k, long dflt)
{
	const json_t *v = json_object_get(a, k);
	return json_is_number(v) ? (long)json_number_value(v) : dflt;
}

static int read_sql(char **out, char hex[65], const iac_rctx *ctx, const json_t *a)
{
	char *path = iac_path_join(ctx->config_dir, iac_json_str(a, "expand"));
	size_t len = 0;
	int rc = iac_file_read(out, &len, path);
	if (rc < 0)
		iac_err_prefix("migration '%s': expand file '%s'", iac_json_str(a, "name"), iac_json_str(a, "expand"));
	else
		iac_sha256_hex(hex, *out, len);
	free(path);
	return rc;
}

static int validate(const json_t *a)
{
	const char *lt = iac_json_str(a, "lock_timeout") ?: "2s", *db = iac_json_str(a, "database") ?: "postgres";
	double ms;
	if (!iac_db_name_ok(iac_json_str(a, "name")))
		return iac_err_set("attribute 'name': '%s' is not a name (letters, digits, '_', '-', '.')",
				   iac_json_str(a, "name") ?: "");
	if (!iac_db_name_ok(db))
		return iac_err_set("attribute 'database': '%s' is not a plain name", db);
	if (iac_duration_parse(&ms, lt) < 0 || ms < 1)
		return iac_err_set("attribute 'lock_timeout': '%s' is not a duration (\"2s\", \"500ms\")", lt);
	return 0;
}

/* The member leading now (borrowed from a), or NULL with a message. */
static const json_t *leader(const iac_rctx *ctx, const json_t *a)
{
	size_t i, j;
	json_t *m, *pm;
	json_array_foreach(json_object_get(a, "members"), i, m) {
		json_t *body = NULL;
		long status = 0;
		const char *addr = iac_json_str(json_object_get(m, "host"), "address");
		if (!addr || iac_db_rest(&body, &status, addr, num(m, "api_port", 8008), "GET", "/cluster", NULL, 2000,
					 ctx->cancel) < 0) {
			iac_err_clear();
			continue;
		}
		json_array_foreach(json_object_get(body, "members"), j, pm) {
			if (!strcmp(iac_db_role(iac_json_str(pm, "role")), "leader") &&
			    !strcmp(iac_json_str(pm, "state") ?: "", "running")) {
				const char *ln = iac_json_str(pm, "name");
				size_t k;
				json_t *c;
				json_array_foreach(json_object_get(a, "members"), k, c) if (!strcmp(iac_json_str(c, "name") ?: "", ln ?: "")) {
					json_decref(body);
					return c;
				}
			}
		}
		json_decref(body);
	}
	iac_err_set("cluster '%s' has no running leader that Patroni reports", iac_json_str(a, "cluster"));
	return NULL;
}

/* psql on the leader with sql on stdin: 0 and *out (stdout) when it ran
 * (*status its exit status, *err its stderr); IAC_ERR when it could not. */
static int psql(char **out, char **err, int *status, const iac_rctx *ctx, const json_t *a, const json_t *m,
		const char *sql, int one_tx)
{
	iac_host_result r;
	char *cmd = iac_xasprintf("cd / && runuser -u postgres -- psql -X -A -t -q -v ON_ERROR_STOP=1 %s-h /run/postgresql "
				  "-p %ld -d '%s'",
				  one_tx ? "-1 " : "", num(m, "port", 5432), iac_json_str(a, "database") ?: "postgres");
	memset(&r, 0, sizeof(r));
	int rc = iac_host_exec(&r, ctx->hosts, json_object_get(m, "host"), cmd, sql, 600e3, ctx->cancel);
	if (rc == 0) {
		*status = r.status;
		*out = iac_xstrdup(r.out ? r.out : "");
		*err = iac_xstrdup(r.err ? r.err : "");
	}
	iac_host_result_free(&r);
	free(cmd);
	return rc;
}

static const char ensure_table[] =
	"create table if not exists schema_migrations (name text not null, phase text not null, "
	"checksum text not null, applied_at timestamptz not null default now(), primary key (name, phase));\n";

/* The checksum schema_migrations holds for this migration's expand phase
 * (caller frees; "" when not applied), or NULL with a message. */
static char *recorded(const iac_rctx *ctx, const json_t *a, const json_t *m)
{
	char *out = NULL, *err = NULL, *res = NULL;
	int status = 0;
	char *sql = iac_xasprintf("%sselect checksum from schema_migrations where name = '%s' and phase = 'expand';\n",
				  ensure_table, iac_json_str(a, "name"));
	if (psql(&out, &err, &status, ctx, a, m, sql, 0) == 0) {
		if (status == 0) {
			res = iac_xstrdup(out);
			res[strcspn(res, "\n")] = 0;
		} else {
			iac_err_set("reading schema_migrations on %s: %s", iac_host_label(json_object_get(m, "host")), err);
		}
	}
	free(out);
	free(err);
	free(sql);
	return res;
}

static int mig_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	char *sql = NULL, hex[65];
	if (iac_value_has_unknown(planned))
		return 0;
	if (validate(planned) < 0 || read_sql(&sql, hex, ctx, planned) < 0)
		return IAC_ERR;
	free(sql);
	const char *was = iac_json_str(prior, "expand_sha256");
	if (was && strcmp(was, hex))
		return iac_err_set("migration '%s' was applied with checksum %.12s; its file '%s' changed since (%.12s): an "
				   "applied migration is never edited, write a new one",
				   iac_json_str(planned, "name"), was, iac_json_str(planned, "expand"), hex);
	json_object_set_new(planned, "expand_sha256", json_string(hex));
	return 0;
}

static int mig_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	char *sql = NULL, hex[65], *have = NULL;
	const json_t *m;
	iac_buf b = IAC_BUF_INIT;
	int rc = IAC_ERR;
	const char *name = iac_json_str(planned, "name");
	if (validate(planned) < 0 || read_sql(&sql, hex, ctx, planned) < 0 || !(m = leader(ctx, planned)) ||
	    !(have = recorded(ctx, planned, m)))
		goto done;
	if (*have && strcmp(have, hex)) {
		iac_err_set("migration '%s' is in schema_migrations with checksum %.12s, but its file '%s' has %.12s: an "
			    "applied migration is never edited, write a new one",
			    name, have, iac_json_str(planned, "expand"), hex);
		goto done;
	}
	if (!*have) {
		iac_buf_printf(&b, "set lock_timeout = '%s';\n%s\n;\ninsert into schema_migrations (name, phase, checksum) "
			       "values ('%s', 'expand', '%s');\n",
			       iac_json_str(planned, "lock_timeout") ?: "2s", sql, name, hex);
		long tries = num(planned, "retries", 5) + 1;
		double backoff = 500;
		for (long t = 1;; t++) {
			char *o = NULL, *e = NULL;
			int status = 0;
			if (psql(&o, &e, &status, ctx, planned, m, iac_buf_cstr(&b), 1) < 0)
				goto done;
			int lock = strstr(e, "lock timeout") != NULL;
			if (status == 0) {
				free(o);
				free(e);
				break;
			}
			if (!lock || t >= tries || (ctx->cancel && *ctx->cancel)) {
				iac_err_set("migration '%s' failed on %s%s: %s", name, iac_host_label(json_object_get(m, "host")),
					    lock ? " (lock timeout on every attempt: a long transaction holds a lock it needs)" : "",
					    e);
				free(o);
				free(e);
				goto done;
			}
			if (ctx->progress) {
				char *msg = iac_xasprintf("lock timeout, attempt %ld of %ld; again in %.1fs", t, tries,
							  backoff / 1e3);
				ctx->progress(ctx, msg);
				free(msg);
			}
			free(o);
			free(e);
			usleep((useconds_t)(backoff * 1000));
			backoff = backoff * 2 > 8000 ? 8000 : backoff * 2;
		}
	}
	*out = json_deep_copy(planned);
	json_object_set_new(*out, "expand_sha256", json_string(hex));
	rc = 0;
done:
	iac_buf_free(&b);
	free(sql);
	free(have);
	return rc;
}

/* Applied means a schema_migrations row; the cluster unreachable leaves
 * state as it is. */
static int mig_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	const json_t *m = leader(ctx, prior);
	char *have = m ? recorded(ctx, prior, m) : NULL;
	*out = NULL;
	if (!have)
		return IAC_ERR;
	if (*have) {
		*out = json_deep_copy(prior);
		json_object_set_new(*out, "expand_sha256", json_string(have));
	}
	free(have);
	return 0;
}

/* Only the other changes (cluster, members, settings): nothing to run. */
static int mig_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	(void)ctx;
	*out = json_deep_copy(planned);
	json_object_set(*out, "expand_sha256", json_object_get(prior, "expand_sha256"));
	return 0;
}

/* A schema change is not undone by forgetting it: the row stays. */
static int mig_remove(const iac_rctx *ctx, const json_t *prior)
{
	(void)ctx;
	(void)prior;
	return 0;
}

const iac_rtype iac_db_migration_type = {
	.name = "db.migration",
	.attrs = mig_attrs,
	.doc = "a SQL migration applied once to a cluster's leader, recorded with its checksum",
	.plan = mig_plan,
	.read = mig_read,
	.create = mig_create,
	.update = mig_update,
	.remove = mig_remove,
	.gone_reason = "not in schema_migrations",
};
