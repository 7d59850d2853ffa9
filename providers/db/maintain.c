/* db.maintenance and `iac db maintain`: materialized views refreshed after
 * migrations and on a schedule, indexes rebuilt on a schedule, without
 * blocking the application.
 *
 * - Refresh is REFRESH MATERIALIZED VIEW CONCURRENTLY (readers keep the
 *   old rows meanwhile; PostgreSQL requires a unique index on the view,
 *   and a view never populated is refreshed plainly once). Reindex is
 *   REINDEX TABLE CONCURRENTLY; an invalid "_ccnew" index a failed run left
 *   behind is dropped first (DROP INDEX CONCURRENTLY), as the PostgreSQL
 *   manual advises.
 * - The resource refreshes its views when it is created and whenever its
 *   settings change, `after` included: `after = { m }` names migrations,
 *   so a new migration listed there refreshes the views built on what it
 *   changed.
 * - The schedule: `iac db maintain` (from cron or a CI schedule) runs each
 *   task whose last run, recorded in the table iac_maintenance in the
 *   database itself, is older than `every`. Keeping it there (not in
 *   iac's state) means every runner sees the same history, and a
 *   session-level advisory lock per task means two runners at the same
 *   moment never run the same task twice.
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

static const iac_attr mnt_attrs[] = {
	{ "name", IAC_T_STRING, IAC_A_REQUIRED, "the maintenance's name (tasks are recorded under it)" },
	{ "cluster", IAC_T_STRING, IAC_A_REQUIRED, "the cluster's name" },
	{ "members", IAC_T_LIST, IAC_A_REQUIRED, "[{host, name, port, api_port}] of the cluster's members" },
	{ "refresh", IAC_T_LIST, 0, "materialized views: REFRESH MATERIALIZED VIEW CONCURRENTLY" },
	{ "reindex", IAC_T_LIST, 0, "tables: REINDEX TABLE CONCURRENTLY" },
	{ "every", IAC_T_STRING, 0, "how often `iac db maintain` runs the tasks, default \"24h\"" },
	{ "after", IAC_T_LIST, IAC_A_WATCH, "resources (migrations) whose change refreshes the views" },
	{ "database", IAC_T_STRING, 0, "database, default \"postgres\"" },
	{ "lock_timeout", IAC_T_STRING, 0, "SET lock_timeout for each task, default \"5s\"" },
	{ NULL, 0, 0, NULL },
};

static const char table_sql[] =
	"create table if not exists iac_maintenance (task text primary key, last_run timestamptz not null, "
	"seconds double precision not null);\n";

/* Each entry of list is a (schema-qualified) plain name. */
static int names_ok(const json_t *a, const char *key)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(a, key), i, v) {
		if (!json_is_string(v) || !iac_db_qualified_name_ok(json_string_value(v)))
			return iac_err_set("attribute '%s': '%s' is not a name (name or schema.name: letters, digits, '_')",
					   key, json_is_string(v) ? json_string_value(v) : "?");
	}
	return 0;
}

static int validate(const json_t *a, double *every_ms)
{
	const char *every = iac_json_str(a, "every") ?: "24h", *lt = iac_json_str(a, "lock_timeout") ?: "5s";
	double ms;
	if (!iac_db_name_ok(iac_json_str(a, "name")) || strchr(iac_json_str(a, "name"), '\''))
		return iac_err_set("attribute 'name': '%s' is not a name", iac_json_str(a, "name") ?: "");
	if (!iac_db_name_ok(iac_json_str(a, "database") ?: "postgres"))
		return iac_err_set("attribute 'database': '%s' is not a plain name", iac_json_str(a, "database"));
	if (iac_duration_parse(every_ms, every) < 0 || *every_ms < 1000)
		return iac_err_set("attribute 'every': '%s' is not a duration of at least 1s (\"24h\", \"30m\")", every);
	if (iac_duration_parse(&ms, lt) < 0 || ms < 1 || strchr(lt, '\''))
		return iac_err_set("attribute 'lock_timeout': '%s' is not a duration (\"5s\")", lt);
	return names_ok(a, "refresh") < 0 || names_ok(a, "reindex") < 0 ? IAC_ERR : 0;
}

/* One task as psql runs it: the advisory lock, the statement(s), the
 * record. `busy` on stdout when another runner holds the task. */
static char *task_sql(const json_t *a, const char *kind, const char *target, int concurrently)
{
	iac_buf b = IAC_BUF_INIT;
	const char *name = iac_json_str(a, "name");
	iac_buf_printf(&b, "%sset lock_timeout = '%s';\n"
		       "select pg_try_advisory_lock(hashtext('iac_maintenance'), hashtext('%s:%s:%s')) as got \\gset\n"
		       "\\if :got\nselect extract(epoch from clock_timestamp()) as t0 \\gset\n",
		       table_sql, iac_json_str(a, "lock_timeout") ?: "5s", name, kind, target);
	if (!strcmp(kind, "refresh")) {
		iac_buf_printf(&b, "refresh materialized view %s%s;\n", concurrently ? "concurrently " : "", target);
	} else {
		/* a failed REINDEX CONCURRENTLY leaves INVALID *_ccnew indexes */
		iac_buf_printf(&b,
			       "select format('drop index concurrently %%s', i.indexrelid::regclass) from pg_index i "
			       "join pg_class c on c.oid = i.indexrelid where i.indrelid = '%s'::regclass and not "
			       "i.indisvalid and c.relname ~ '_ccnew[0-9]*$' \\gexec\n"
			       "reindex table concurrently %s;\n",
			       target, target);
	}
	iac_buf_printf(&b, "select extract(epoch from clock_timestamp()) as t1 \\gset\n"
		       "insert into iac_maintenance values ('%s:%s:%s', now(), :t1 - :t0) on conflict (task) do update "
		       "set last_run = excluded.last_run, seconds = excluded.seconds;\n"
		       "select 'took|' || (:t1 - :t0);\n\\else\nselect 'busy';\n\\endif\n",
		       name, kind, target);
	return iac_buf_detach(&b);
}

/* CONCURRENTLY needs a populated view with a unique index; a view never
 * populated is refreshed plainly (nobody can read it yet). */
static int populated(int *yes, const iac_rctx *ctx, const json_t *m, const json_t *a, const char *view)
{
	iac_db_sql_result r;
	/* to_regclass resolves the name as the REFRESH will (search_path,
	 * case folding); no row: not a materialized view */
	char *sql = iac_xasprintf("select c.relispopulated from pg_class c where c.oid = to_regclass('%s') and "
				  "c.relkind = 'm';\n",
				  view);
	int rc = iac_db_psql(&r, ctx, m, iac_json_str(a, "database"), sql, 0);
	free(sql);
	if (rc < 0)
		return IAC_ERR;
	if (r.status != 0 || (strncmp(r.out, "t", 1) && strncmp(r.out, "f", 1))) {
		iac_err_set("refresh '%s': %s", view,
			    r.status ? r.err : "no materialized view of that name (create it in a migration first)");
		iac_db_sql_result_free(&r);
		return IAC_ERR;
	}
	*yes = !strncmp(r.out, "t", 1);
	iac_db_sql_result_free(&r);
	return 0;
}

/* Run one task now; *seconds what it took, *busy when another runner had
 * it. IAC_ERR with PostgreSQL's message, and a hint where one helps. */
static int run_task(double *seconds, int *busy, const iac_rctx *ctx, const json_t *m, const json_t *a,
		    const char *kind, const char *target)
{
	iac_db_sql_result r;
	int conc = 1;
	*seconds = 0;
	*busy = 0;
	if (!strcmp(kind, "refresh") && populated(&conc, ctx, m, a, target) < 0)
		return IAC_ERR;
	char *sql = task_sql(a, kind, target, conc);
	int rc = iac_db_psql(&r, ctx, m, iac_json_str(a, "database"), sql, 0);
	free(sql);
	if (rc < 0)
		return IAC_ERR;
	if (r.status != 0) {
		const char *hint = strstr(r.err, "unique index") ? " (CONCURRENTLY needs a unique index on the view that "
								   "covers every row: add one in a migration)"
								 : "";
		iac_err_set("%s '%s' failed on %s: %s%s", kind, target, iac_host_label(json_object_get(m, "host")), r.err,
			    hint);
		iac_db_sql_result_free(&r);
		return IAC_ERR;
	}
	const char *took = strstr(r.out, "took|");
	*busy = strstr(r.out, "busy") != NULL;
	*seconds = took ? strtod(took + 5, NULL) : 0;
	iac_db_sql_result_free(&r);
	return 0;
}

static int refresh_all(const iac_rctx *ctx, const json_t *a)
{
	size_t i;
	json_t *v;
	double every;
	if (validate(a, &every) < 0)
		return IAC_ERR;
	if (!json_array_size(json_object_get(a, "refresh")))
		return 0;
	const json_t *m = iac_db_leader(ctx, json_object_get(a, "members"), iac_json_str(a, "cluster"));
	if (!m)
		return IAC_ERR;
	json_array_foreach(json_object_get(a, "refresh"), i, v) {
		double s;
		int busy;
		if (run_task(&s, &busy, ctx, m, a, "refresh", json_string_value(v)) < 0)
			return IAC_ERR;
		if (ctx->progress) {
			char *msg = iac_xasprintf("refreshed '%s' (%.2fs)%s", json_string_value(v), s,
						  busy ? ": another runner was refreshing it" : "");
			ctx->progress(ctx, msg);
			free(msg);
		}
	}
	return 0;
}

static int mnt_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	double every;
	(void)ctx;
	(void)prior;
	return validate(planned, &every);
}

static int mnt_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	if (refresh_all(ctx, planned) < 0)
		return IAC_ERR;
	*out = json_deep_copy(planned);
	return 0;
}

static int mnt_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	(void)prior;
	return mnt_create(ctx, out, planned);
}

/* Nothing lives on the servers but the views' contents and a row per task. */
static int mnt_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	(void)ctx;
	*out = json_deep_copy(prior);
	return 0;
}

static int mnt_remove(const iac_rctx *ctx, const json_t *prior)
{
	(void)ctx;
	(void)prior;
	return 0;
}

const iac_rtype iac_db_maintenance_type = {
	.name = "db.maintenance",
	.attrs = mnt_attrs,
	.doc = "materialized views refreshed after migrations, and views and indexes kept up by `iac db maintain`",
	.plan = mnt_plan,
	.read = mnt_read,
	.create = mnt_create,
	.update = mnt_update,
	.remove = mnt_remove,
};

/* ---- iac db maintain ---------------------------------------------------- */

/* Seconds since each task of a last ran, from iac_maintenance: {task: s}. */
static json_t *last_runs(const iac_rctx *ctx, const json_t *m, const json_t *a)
{
	iac_db_sql_result r;
	json_t *out = json_object();
	char *sql = iac_xasprintf("%sselect task || '|' || extract(epoch from now() - last_run) from iac_maintenance "
				  "where task like '%s:%%';\n",
				  table_sql, iac_json_str(a, "name"));
	if (iac_db_psql(&r, ctx, m, iac_json_str(a, "database"), sql, 0) == 0) {
		for (char *l = r.status == 0 ? r.out : NULL; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
			char *bar = strchr(l, '|');
			if (bar) {
				char *task = iac_xstrndup(l, (size_t)(bar - l));
				json_object_set_new(out, task, json_real(strtod(bar + 1, NULL)));
				free(task);
			}
		}
		iac_db_sql_result_free(&r);
	}
	iac_err_clear();
	free(sql);
	return out;
}

/* One task's turn: due or not, run, reported into rep. 0, or IAC_ERR when
 * it ran and failed (the message in rep too). */
static int maintain_task(json_t *rep, const iac_rctx *ctx, const json_t *m, const json_t *a, const json_t *last,
			 const char *kind, const char *target, int force)
{
	double every = 0, s = 0;
	int busy = 0;
	char *task = iac_xasprintf("%s:%s:%s", iac_json_str(a, "name"), kind, target);
	const json_t *ago = json_object_get(last, task);
	validate(a, &every);
	json_object_set_new(rep, "maintenance", json_string(iac_json_str(a, "name")));
	json_object_set_new(rep, "kind", json_string(kind));
	json_object_set_new(rep, "target", json_string(target));
	free(task);
	if (!force && ago && json_real_value(ago) * 1e3 < every) {
		json_object_set_new(rep, "result", json_string("not due"));
		json_object_set_new(rep, "next_in_seconds", json_real(every / 1e3 - json_real_value(ago)));
		return 0;
	}
	if (run_task(&s, &busy, ctx, m, a, kind, target) < 0) {
		json_object_set_new(rep, "result", json_string("failed"));
		json_object_set_new(rep, "error", json_string(iac_err_last()));
		return IAC_ERR;
	}
	json_object_set_new(rep, "result", json_string(busy ? "busy" : "done"));
	json_object_set_new(rep, "seconds", json_real(s));
	return 0;
}

int iac_db_maintain(json_t **report, const iac_rctx *ctx, const json_t *entries, int force)
{
	size_t i, j;
	json_t *a, *t;
	int failed = 0;
	*report = json_array();
	json_array_foreach(entries, i, a) {
		double every;
		const json_t *m = validate(a, &every) < 0 ? NULL
							  : iac_db_leader(ctx, json_object_get(a, "members"),
									  iac_json_str(a, "cluster"));
		if (!m) {
			json_array_append_new(*report, json_pack("{s:s?,s:s,s:s}", "maintenance", iac_json_str(a, "name"),
								 "result", "failed", "error", iac_err_last()));
			failed = 1;
			continue;
		}
		json_t *last = last_runs(ctx, m, a);
		static const char *const kinds[] = { "refresh", "reindex" };
		for (int k = 0; k < 2; k++)
			json_array_foreach(json_object_get(a, kinds[k]), j, t) {
				json_t *rep = json_object();
				failed |= maintain_task(rep, ctx, m, a, last, kinds[k], json_string_value(t), force) < 0;
				json_array_append_new(*report, rep);
			}
		json_decref(last);
	}
	return failed ? IAC_ERR : 0;
}
