/* db.partitions: range partitions of one table kept ahead of need and
 * trimmed by retention (what pg_partman or a cron job does otherwise).
 *
 * - The table is the user's (a migration creates it PARTITION BY RANGE on
 *   one column); iac manages only the partitions named TABLE_p<start>
 *   (20261202, 20261202_15, 2026w49, 202612 or a key such as 300000) and
 *   never touches others (a DEFAULT partition, hand-made ones).
 * - Wanted: the partition holding now (or the highest key) and `premake`
 *   after it. Expired: a managed partition whose upper bound is at or
 *   before now - retention (or the highest key - retention).
 * - One query on the leader answers everything (partition key, existing
 *   partitions and whether each expired, the wanted ones with their
 *   bounds), computed by PostgreSQL at its own now() in UTC, so iac's clock
 *   plays no part.
 * - Plan: `changes` lists what an apply would do ("create T_p... [from, to)",
 *   "drop T_p... (...)"); read always gives [] (nothing pending after an
 *   apply), so a plan is quiet until time moves on or retention bites.
 * - Locks: a partition is created empty beside the table and ATTACHed
 *   (SHARE UPDATE EXCLUSIVE on the table: reads and writes go on; an
 *   ACCESS EXCLUSIVE `CREATE TABLE ... PARTITION OF` would queue every
 *   query behind a long transaction); removal is DETACH ... CONCURRENTLY
 *   (plain DETACH when the table has a DEFAULT partition, which
 *   CONCURRENTLY refuses); each step under lock_timeout, retried.
 * - Crash: each partition is one transaction (create+attach) or one
 *   statement (detach, then drop), and the next run recomputes from the
 *   catalog; a detach left pending by a crash is finalized.
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

static const iac_attr part_attrs[] = {
	{ "table", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the partitioned table (name or schema.name)" },
	{ "cluster", IAC_T_STRING, IAC_A_REQUIRED, "the cluster's name" },
	{ "members", IAC_T_LIST, IAC_A_REQUIRED, "[{host, name, port, api_port}] of the cluster's members" },
	{ "interval", IAC_T_STRING, IAC_A_REQUIRED, "\"1 hour\", \"1 day\", \"1 week\", \"1 month\", or a key width (\"100000\")" },
	{ "premake", IAC_T_NUMBER, 0, "partitions kept ready after the current one, default 4" },
	{ "retention", IAC_T_STRING, 0, "partitions wholly older (or below the highest key minus it) are removed" },
	{ "retention_mode", IAC_T_STRING, 0, "\"drop\" (default) or \"detach\"" },
	{ "database", IAC_T_STRING, 0, "database, default \"postgres\"" },
	{ "lock_timeout", IAC_T_STRING, 0, "SET lock_timeout for each step, default \"2s\"" },
	{ "retries", IAC_T_NUMBER, 0, "attempts after a lock timeout, default 5" },
	{ "changes", IAC_T_LIST, 0, "what the next apply does (set by plan; [] in state)" },
	{ "partitions", IAC_T_LIST, IAC_A_COMPUTED, "the managed partitions after the last apply" },
	{ NULL, 0, 0, NULL },
};

/* The validated settings (OpenSSH style: parse, then act). */
typedef struct spec {
	char schema[64], rel[64];     /* lower-cased, as PostgreSQL folds them */
	char unit[8];                 /* hour, day, week, month; "" when keyed */
	long long width;              /* key width when keyed, else 0 */
	long premake;
	char retention[64];           /* "" = keep all; an interval or a key count */
	int detach;
	char lock_timeout[32];
	long retries;
	const char *database;
} spec;

static const char *const units[] = { "hour", "day", "week", "month" };
static const char *const name_fmt[] = { "YYYYMMDD_HH24", "YYYYMMDD", "IYYY\"w\"IW", "YYYYMM" };

static int letter(char c)
{
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A plain identifier of at most 40 characters, so that TABLE_p<start>
 * stays within PostgreSQL's 63. */
static int ident_ok(const char *s, size_t n)
{
	if (!n || n > 40 || !letter(s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!letter(s[i]) && !(s[i] >= '0' && s[i] <= '9'))
			return 0;
	return 1;
}

static void lower_copy(char *dst, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] | 32 : s[i]);
	dst[n] = 0;
}

static int parse_table(spec *sp, const char *t)
{
	const char *dot = strchr(t, '.');
	const char *rel = dot ? dot + 1 : t;
	if ((dot && !ident_ok(t, (size_t)(dot - t))) || !ident_ok(rel, strlen(rel)))
		return iac_err_set("attribute 'table': '%s' is not a table name (name or schema.name, at most 40 "
				   "letters, digits, '_')", t);
	if (dot)
		lower_copy(sp->schema, t, (size_t)(dot - t));
	else
		strcpy(sp->schema, "public");
	lower_copy(sp->rel, rel, strlen(rel));
	return 0;
}

static int parse_interval(spec *sp, const char *iv)
{
	char *end;
	long long w = strtoll(iv, &end, 10);
	if (end != iv && !*end) {
		if (w < 1 || w > 1000000000000000LL)
			return iac_err_set("attribute 'interval': %lld is not a key width from 1 to 10^15", w);
		sp->width = w;
		return 0;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(*units); i++)
		if (strstr(iv, units[i])) {
			strcpy(sp->unit, units[i]);
			return 0;
		}
	return iac_err_set("attribute 'interval': '%s' is not \"1 hour\", \"1 day\", \"1 week\", \"1 month\" or a key "
			   "width", iv);
}

static int parse_retention(spec *sp, const char *r)
{
	if (!r || !*r)
		return 0;
	size_t n = strlen(r);
	int digits = 1, ok = n < sizeof(sp->retention);
	for (size_t i = 0; i < n && ok; i++) {
		ok = (r[i] >= '0' && r[i] <= '9') || r[i] == ' ' || (r[i] >= 'a' && r[i] <= 'z');
		digits &= r[i] >= '0' && r[i] <= '9';
	}
	if (!ok || (sp->width && !digits) || (!sp->width && digits))
		return iac_err_set("attribute 'retention': '%s' is not %s", r,
				   sp->width ? "a number of keys" : "a time span (\"30 days\")");
	strcpy(sp->retention, r);
	return 0;
}

static int parse(spec *sp, const json_t *a)
{
	const json_t *pm = json_object_get(a, "premake"), *rt = json_object_get(a, "retries");
	const char *lt = iac_json_str(a, "lock_timeout") ?: "2s", *mode = iac_json_str(a, "retention_mode") ?: "drop";
	double ms;
	memset(sp, 0, sizeof(*sp));
	if (parse_table(sp, iac_json_str(a, "table") ?: "") < 0 || parse_interval(sp, iac_json_str(a, "interval") ?: "") < 0 ||
	    parse_retention(sp, iac_json_str(a, "retention")) < 0)
		return IAC_ERR;
	sp->premake = json_is_number(pm) ? (long)json_number_value(pm) : 4;
	sp->retries = json_is_number(rt) ? (long)json_number_value(rt) : 5;
	if (sp->premake < 0 || sp->premake > 1000)
		return iac_err_set("attribute 'premake': %ld is not from 0 to 1000", sp->premake);
	if (strcmp(mode, "drop") && strcmp(mode, "detach"))
		return iac_err_set("attribute 'retention_mode': '%s' is not \"drop\" or \"detach\"", mode);
	sp->detach = !strcmp(mode, "detach");
	if (iac_duration_parse(&ms, lt) < 0 || ms < 1 || strlen(lt) >= sizeof(sp->lock_timeout) || strchr(lt, '\''))
		return iac_err_set("attribute 'lock_timeout': '%s' is not a duration (\"2s\", \"500ms\")", lt);
	strcpy(sp->lock_timeout, lt);
	sp->database = iac_json_str(a, "database") ?: "postgres";
	if (!iac_db_name_ok(sp->database))
		return iac_err_set("attribute 'database': '%s' is not a plain name", sp->database);
	return 0;
}

/* The query that tells everything (see the top). Rows, '|'-separated:
 *   key|<column>|<partition key definition>      (missing / none when not partitioned)
 *   have|<name>|expired|<bounds>                  expired: t, f, or foreign (not ours)
 *   want|<name>|<from>|<to>                       */
static char *inspect_sql(const spec *sp)
{
	iac_buf b = IAC_BUF_INIT;
	iac_buf_printf(&b,
		       "set timezone = 'UTC';\n"
		       "with par as (select to_regclass('%s.%s') as oid),\n"
		       "kcol as (select a.attname as col from par join pg_partitioned_table p on p.partrelid = par.oid "
		       "join pg_attribute a on a.attrelid = p.partrelid and a.attnum = p.partattrs[0] "
		       "where p.partstrat = 'r' and p.partnatts = 1),\n"
		       "kids as (select c.relname as name, pg_get_expr(c.relpartbound, c.oid) as bound from par "
		       "join pg_inherits i on i.inhparent = par.oid join pg_class c on c.oid = i.inhrelid),\n",
		       sp->schema, sp->rel);
	if (sp->width) {
		/* the highest key through query_to_xml: dynamic SQL in one plain query */
		iac_buf_printf(&b,
			       "cur as (select coalesce((xpath('/row/m/text()', query_to_xml(format('select max(%%I)::bigint as m "
			       "from %%s', kcol.col, par.oid::regclass), false, true, '')))[1]::text::bigint, 0) as m from par, kcol),\n"
			       "g as (select gs as lo, gs + %lld as hi from cur, generate_series((floor(m::numeric / %lld) * "
			       "%lld)::bigint, (floor(m::numeric / %lld) * %lld)::bigint + %ld * %lld, %lld) gs)\n",
			       sp->width, sp->width, sp->width, sp->width, sp->width, sp->premake, sp->width, sp->width);
	} else {
		iac_buf_printf(&b,
			       "g as (select gs as lo, gs + interval '1 %s' as hi from generate_series(date_trunc('%s', now()), "
			       "date_trunc('%s', now()) + %ld * interval '1 %s', interval '1 %s') gs)\n",
			       sp->unit, sp->unit, sp->unit, sp->premake, sp->unit, sp->unit);
	}
	iac_buf_printf(&b,
		       "select 'key|' || coalesce((select col from kcol), '') || '|' || case when par.oid is null then "
		       "'missing' else coalesce(pg_get_partkeydef(par.oid), 'none') end from par\n"
		       "union all select * from (select 'have|' || name || '|' || case when name ~ '^%s_p[0-9mw_]+$' then ",
		       sp->rel);
	if (!*sp->retention)
		iac_buf_puts(&b, "'f'");
	else if (sp->width)
		iac_buf_printf(&b,
			       "coalesce(((regexp_match(bound, 'TO \\(''?(-?[0-9]+)''?\\)'))[1]::numeric <= (select m from cur) - %s)::text, "
			       "'f')",
			       sp->retention);
	else
		iac_buf_printf(&b,
			       "coalesce(((regexp_match(bound, 'TO \\(''([^'']*)''\\)'))[1]::timestamptz <= now() - "
			       "interval '%s')::text, 'f')",
			       sp->retention);
	iac_buf_puts(&b, " else 'foreign' end || '|' || bound from kids order by name) h\n");
	if (sp->width)
		iac_buf_printf(&b, "union all select 'want|%s_p' || replace(lo::text, '-', 'm') || '|' || lo || '|' || hi from g;\n",
			       sp->rel);
	else
		iac_buf_printf(&b,
			       "union all select 'want|%s_p' || to_char(lo, '%s') || '|' || to_char(lo, 'YYYY-MM-DD HH24:MI:SS') "
			       "|| '|' || to_char(hi, 'YYYY-MM-DD HH24:MI:SS') from g;\n",
			       sp->rel, name_fmt[sp->unit[0] == 'h' ? 0 : sp->unit[0] == 'd' ? 1 : sp->unit[0] == 'w' ? 2 : 3]);
	return iac_buf_detach(&b);
}

/* What the catalog says, parsed. */
typedef struct part {
	char *name, *from, *to;   /* want: bounds; have: from = NULL */
	int expired, ours;
} part;

typedef struct survey {
	char *key;                /* partition key definition, "missing", "none" */
	part *have, *want;
	size_t nhave, nwant;
	int has_default;
} survey;

static void survey_free(survey *s)
{
	for (size_t i = 0; i < s->nhave; i++)
		free(s->have[i].name);
	for (size_t i = 0; i < s->nwant; i++) {
		free(s->want[i].name);
		free(s->want[i].from);
		free(s->want[i].to);
	}
	free(s->have);
	free(s->want);
	free(s->key);
	memset(s, 0, sizeof(*s));
}

/* field i (0-based) of a '|'-separated line, copied. */
static char *field(const char *line, int i)
{
	while (i-- > 0 && line)
		if ((line = strchr(line, '|')))
			line++;
	if (!line)
		return iac_xstrdup("");
	return iac_xstrndup(line, strcspn(line, "|\n"));
}

static void survey_line(survey *s, const char *l)
{
	if (iac_str_starts(l, "key|")) {
		free(s->key);
		s->key = field(l, 2);
	} else if (iac_str_starts(l, "have|")) {
		char *ex = field(l, 2), *bound = field(l, 3);
		s->have = iac_xrealloc(s->have, (s->nhave + 1) * sizeof(*s->have));
		s->have[s->nhave++] = (part){ .name = field(l, 1), .expired = !strcmp(ex, "true") || !strcmp(ex, "t"),
					      .ours = strcmp(ex, "foreign") != 0 };
		s->has_default |= !strcmp(bound, "DEFAULT");
		free(ex);
		free(bound);
	} else if (iac_str_starts(l, "want|")) {
		s->want = iac_xrealloc(s->want, (s->nwant + 1) * sizeof(*s->want));
		s->want[s->nwant++] = (part){ .name = field(l, 1), .from = field(l, 2), .to = field(l, 3), .ours = 1 };
	}
}

/* Ask the leader. 0 and *s filled; IAC_ERR with a message. *leader_out
 * (may be NULL) is the leader, NULL when none answered. */
static int survey_take(survey *s, const iac_rctx *ctx, const spec *sp, const json_t *a, const json_t **leader_out)
{
	iac_db_sql_result r;
	const json_t *m = iac_db_leader(ctx, json_object_get(a, "members"), iac_json_str(a, "cluster"));
	char *sql = m ? inspect_sql(sp) : NULL;
	memset(s, 0, sizeof(*s));
	if (leader_out)
		*leader_out = m;   /* set before the query: a caller tells "no leader" from "query failed" */
	if (!m || iac_db_psql(&r, ctx, m, sp->database, sql, 0) < 0) {
		free(sql);
		return IAC_ERR;
	}
	free(sql);
	if (r.status != 0) {
		iac_err_set("reading the partitions of '%s.%s' on %s: %s", sp->schema, sp->rel,
			    iac_host_label(json_object_get(m, "host")), r.err);
		iac_db_sql_result_free(&r);
		return IAC_ERR;
	}
	for (char *l = r.out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		survey_line(s, l);
	iac_db_sql_result_free(&r);
	return 0;
}

/* The table cannot be partitioned by iac: a message that says what to do. */
static int not_partitioned(const spec *sp, const survey *s)
{
	if (!s->key || !strcmp(s->key, "missing"))
		return iac_err_set("table '%s.%s' does not exist: create it PARTITION BY RANGE (column) in a migration "
				   "that this resource depends on",
				   sp->schema, sp->rel);
	return iac_err_set("table '%s.%s' is not partitioned by range on one column (%s): create it PARTITION BY RANGE "
			   "(column); a plain table is not converted in place",
			   sp->schema, sp->rel, strcmp(s->key, "none") ? s->key : "a plain table");
}

static int usable(const survey *s)
{
	return s->key && iac_str_starts(s->key, "RANGE (") && !strchr(s->key, ',');
}

static const part *find(const part *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return &v[i];
	return NULL;
}

/* changes := what converge() would do; parts := the managed set after. */
static void survey_plan(json_t **changes, json_t **parts, const spec *sp, const survey *s)
{
	*changes = json_array();
	*parts = json_array();
	for (size_t i = 0; i < s->nhave; i++) {
		const part *h = &s->have[i];
		if (!h->ours)
			continue;
		if (h->expired)
			json_array_append_new(*changes, json_sprintf("%s %s (retention %s)", sp->detach ? "detach" : "drop",
								      h->name, sp->retention));
		else if (!find(s->want, s->nwant, h->name))
			json_array_append_new(*parts, json_string(h->name));
	}
	for (size_t i = 0; i < s->nwant; i++) {
		const part *w = &s->want[i];
		if (!find(s->have, s->nhave, w->name))
			json_array_append_new(*changes, json_sprintf("create %s [%s, %s)", w->name, w->from, w->to));
		json_array_append_new(*parts, json_string(w->name));
	}
}

static int part_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	spec sp;
	survey s;
	json_t *changes, *parts;
	(void)prior;
	if (iac_value_has_unknown(planned))
		return 0;
	if (parse(&sp, planned) < 0)
		return IAC_ERR;
	/* Not reachable yet, or the table comes from a migration in this same
	 * apply: the apply finds out. */
	const json_t *m = NULL;
	int rc = survey_take(&s, ctx, &sp, planned, &m);
	if (rc < 0 && m) {   /* the leader answered and the query failed: a real error */
		survey_free(&s);
		return IAC_ERR;
	}
	if (rc < 0 || !usable(&s)) {
		int missing = !s.key || !strcmp(s.key, "missing");
		iac_err_clear();
		if (s.key && !missing) {
			rc = not_partitioned(&sp, &s);
			survey_free(&s);
			return rc;
		}
		survey_free(&s);
		char *why = iac_xasprintf("create the partitions when table '%s.%s' exists (not yet)", sp.schema, sp.rel);
		json_object_set_new(planned, "changes", json_pack("[s]", why));
		free(why);
		return 0;
	}
	survey_plan(&changes, &parts, &sp, &s);
	json_object_set_new(planned, "changes", changes);
	json_object_set_new(planned, "partitions", parts);
	survey_free(&s);
	return 0;
}

static int run_step(const iac_rctx *ctx, const json_t *m, const spec *sp, const char *sql, int one_tx, const char *what)
{
	iac_db_sql_result r;
	char *full = iac_xasprintf("set lock_timeout = '%s';\nset timezone = 'UTC';\n%s", sp->lock_timeout, sql);
	int rc = iac_db_psql_retry(&r, ctx, m, sp->database, full, one_tx, sp->retries, what);
	if (rc == 0)
		iac_db_sql_result_free(&r);
	free(full);
	return rc;
}

static int create_one(const iac_rctx *ctx, const json_t *m, const spec *sp, const part *w)
{
	char *sql = iac_xasprintf("create table if not exists %s.%s (like %s.%s including defaults including constraints "
				  "including storage including comments);\n"
				  "alter table %s.%s attach partition %s.%s for values from ('%s') to ('%s');\n",
				  sp->schema, w->name, sp->schema, sp->rel, sp->schema, sp->rel, sp->schema, w->name, w->from,
				  w->to);
	char *what = iac_xasprintf("creating partition '%s.%s'", sp->schema, w->name);
	int rc = run_step(ctx, m, sp, sql, 1, what);
	free(sql);
	free(what);
	return rc;
}

/* DETACH ... CONCURRENTLY cannot run in a transaction and is refused when
 * the table has a DEFAULT partition; a detach a crash left pending is
 * finished with FINALIZE. */
static int remove_one(const iac_rctx *ctx, const json_t *m, const spec *sp, const survey *s, const part *h)
{
	char *what = iac_xasprintf("removing partition '%s.%s'", sp->schema, h->name);
	char *sql = iac_xasprintf("alter table %s.%s detach partition %s.%s%s;\n", sp->schema, sp->rel, sp->schema, h->name,
				  s->has_default ? "" : " concurrently");
	int rc = run_step(ctx, m, sp, sql, 0, what);
	if (rc < 0 && strstr(iac_err_last(), "pending")) {
		free(sql);
		iac_err_clear();
		sql = iac_xasprintf("alter table %s.%s detach partition %s.%s finalize;\n", sp->schema, sp->rel, sp->schema,
				    h->name);
		rc = run_step(ctx, m, sp, sql, 0, what);
	}
	if (rc == 0 && !sp->detach) {
		free(sql);
		sql = iac_xasprintf("drop table %s.%s;\n", sp->schema, h->name);
		rc = run_step(ctx, m, sp, sql, 0, what);
	}
	free(sql);
	free(what);
	return rc;
}

/* Create what is missing first (new rows must find a home), then remove
 * what expired; the catalog decides, not the plan's list, so a plan saved
 * yesterday does the right thing today. */
static int converge(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	spec sp;
	survey s;
	const json_t *m = NULL;
	json_t *changes = NULL, *parts = NULL;
	int rc = IAC_ERR;
	if (parse(&sp, planned) < 0 || survey_take(&s, ctx, &sp, planned, &m) < 0)
		return IAC_ERR;
	if (!usable(&s)) {
		not_partitioned(&sp, &s);
		goto done;
	}
	for (size_t i = 0; i < s.nwant; i++)
		if (!find(s.have, s.nhave, s.want[i].name) && create_one(ctx, m, &sp, &s.want[i]) < 0)
			goto done;
	for (size_t i = 0; i < s.nhave; i++)
		if (s.have[i].ours && s.have[i].expired && remove_one(ctx, m, &sp, &s, &s.have[i]) < 0)
			goto done;
	survey_plan(&changes, &parts, &sp, &s);
	*out = json_deep_copy(planned);
	json_object_set_new(*out, "changes", json_array());
	json_object_set_new(*out, "partitions", parts);
	parts = NULL;
	rc = 0;
done:
	json_decref(changes);
	json_decref(parts);
	survey_free(&s);
	return rc;
}

static int part_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	return converge(ctx, out, planned);
}

static int part_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	(void)prior;
	return converge(ctx, out, planned);
}

/* Nothing pending after an apply; a table that is gone (or no longer
 * partitioned) is gone for iac too, so the plan says so. */
static int part_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	spec sp;
	survey s;
	*out = NULL;
	if (parse(&sp, prior) < 0 || survey_take(&s, ctx, &sp, prior, NULL) < 0)
		return IAC_ERR;
	if (usable(&s)) {
		json_t *parts = json_array();
		for (size_t i = 0; i < s.nhave; i++)
			if (s.have[i].ours)
				json_array_append_new(parts, json_string(s.have[i].name));
		*out = json_deep_copy(prior);
		json_object_set_new(*out, "changes", json_array());
		json_object_set_new(*out, "partitions", parts);
	}
	survey_free(&s);
	return 0;
}

/* The partitions hold the user's rows: forgetting the resource keeps them. */
static int part_remove(const iac_rctx *ctx, const json_t *prior)
{
	(void)ctx;
	(void)prior;
	return 0;
}

const iac_rtype iac_db_partitions_type = {
	.name = "db.partitions",
	.attrs = part_attrs,
	.doc = "range partitions of a table created ahead of need and removed by retention",
	.plan = part_plan,
	.read = part_read,
	.create = part_create,
	.update = part_update,
	.remove = part_remove,
	.gone_reason = "the table is gone or no longer partitioned by range",
};
