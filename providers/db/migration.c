/* db.migration and db.migration_contract: a migration's two phases, tied
 * to a blue/green deployment through the graph.
 *
 * - expand (db.migration): run on the leader before the deployment's idle
 *   colour starts: the deployment depends on it (finalize() below adds the
 *   edge; the deploy provider knows nothing of databases).
 * - contract (db.migration_contract): depends on the deployment and reads
 *   its computed attributes (live_version, standby, standby_until, last).
 *   It runs only once a deploy that started after the expand is live and
 *   drained the old colour, was not rolled back, and the rollback window
 *   (the standby kept for scale_down_delay) has passed. Before that, plan
 *   says what it waits for and how long, and apply does not run it. A
 *   rollback within the window needs no schema change: the old version runs
 *   on the expanded schema.
 * - Where: the member Patroni says leads now, psql as postgres over its
 *   socket (no password).
 * - Once: schema_migrations (name, phase, checksum, applied_at) holds a row
 *   per applied phase; an applied file that was edited is refused (plan
 *   and apply). Statements are grouped: consecutive ordinary ones run in
 *   one transaction; CREATE/DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY
 *   and VACUUM alone outside any transaction (PostgreSQL refuses them in
 *   one); ALTER TABLE ... VALIDATE CONSTRAINT in its own transaction, so a
 *   constraint added NOT VALID is checked without holding the first
 *   group's locks. Each group records itself in schema_migrations_steps in
 *   the same transaction, so a phase that failed half-way resumes where it
 *   stopped.
 * - Locks: every group starts with SET lock_timeout: a migration stuck
 *   behind a long transaction fails fast instead of queueing every query
 *   behind its lock; lock timeouts (SQLSTATE 55P03) are retried with
 *   exponential backoff. A CREATE INDEX CONCURRENTLY that failed leaves an
 *   INVALID index: it is dropped (DROP INDEX CONCURRENTLY) before the next
 *   try.
 */
#include "providers/db/migration.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/host/host.h"
#include "iac/load/config.h"
#include "providers/db/db.h"

#define MAX_STEPS 1024

static const iac_attr mig_attrs[] = {
	{ "name", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the migration's name (schema_migrations.name)" },
	{ "cluster", IAC_T_STRING, IAC_A_REQUIRED, "the cluster's name" },
	{ "members", IAC_T_LIST, IAC_A_REQUIRED, "[{host, name, port, api_port}] of the cluster's members" },
	{ "expand", IAC_T_STRING, IAC_A_REQUIRED, "SQL file run before the new version starts (relative to main.lua)" },
	{ "database", IAC_T_STRING, 0, "database to migrate, default \"postgres\"" },
	{ "lock_timeout", IAC_T_STRING, 0, "SET lock_timeout for the migration, default \"2s\"" },
	{ "retries", IAC_T_NUMBER, 0, "attempts after a lock timeout, default 5 (backoff 0.5 s doubling, 8 s at most)" },
	{ "deployment", IAC_T_STRING, IAC_A_NO_DIFF, "address of the deployment that waits for the expand" },
	{ "expand_sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of the expand file" },
	{ "applied_at", IAC_T_NUMBER, IAC_A_COMPUTED, "when the expand was applied (Unix time)" },
	{ NULL, 0, 0, NULL },
};

static const iac_attr con_attrs[] = {
	{ "name", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the migration's name (schema_migrations.name)" },
	{ "cluster", IAC_T_STRING, IAC_A_REQUIRED, "the cluster's name" },
	{ "members", IAC_T_LIST, IAC_A_REQUIRED, "[{host, name, port, api_port}] of the cluster's members" },
	{ "contract", IAC_T_STRING, IAC_A_REQUIRED, "SQL file run after the rollback window (relative to main.lua)" },
	{ "database", IAC_T_STRING, 0, "database to migrate, default \"postgres\"" },
	{ "lock_timeout", IAC_T_STRING, 0, "SET lock_timeout for the migration, default \"2s\"" },
	{ "retries", IAC_T_NUMBER, 0, "attempts after a lock timeout, default 5" },
	{ "deployment", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_NO_DIFF, "address of the deployment the contract waits for" },
	{ "deploy", IAC_T_MAP, IAC_A_NO_DIFF, "the deployment's {live_version, standby, standby_until, last} (references)" },
	{ "expand_at", IAC_T_NUMBER, IAC_A_NO_DIFF, "when the expand was applied (a reference to db.migration)" },
	{ "contract_sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of the contract file" },
	{ "status", IAC_T_STRING, IAC_A_COMPUTED, "\"applied\", or what the contract waits for" },
	{ NULL, 0, 0, NULL },
};

static long num(const json_t *a, const char *k, long dflt)
{
	const json_t *v = json_object_get(a, k);
	return json_is_number(v) ? (long)json_number_value(v) : dflt;
}

/* ---- statements --------------------------------------------------------- */

enum { TX, NO_TX, OWN_TX };

typedef struct {
	char *sql;        /* as written, without the ';' */
	char *norm;       /* lower case, comments out, one space between words */
	int kind;         /* TX, NO_TX, OWN_TX */
	const char *lock; /* the strongest table lock it takes */
	char *table;      /* the table it locks, when it can be told (or NULL) */
	char *index;      /* CREATE INDEX CONCURRENTLY: the index's name (or NULL) */
	const char *note; /* a caution for the reader, or NULL */
	int step;         /* group number, 0-based */
} stmt;

typedef struct {
	stmt *s;
	size_t n;
	int steps;
} stmts;

static void stmts_free(stmts *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->s[i].sql);
		free(l->s[i].norm);
		free(l->s[i].table);
		free(l->s[i].index);
	}
	free(l->s);
	memset(l, 0, sizeof(*l));
}

/* The dollar-quote tag starting at p ("$$", "$body$"), its length, or 0. */
static size_t dollar_tag(const char *p)
{
	size_t i = 1;
	if (*p != '$')
		return 0;
	while (isalnum((unsigned char)p[i]) || p[i] == '_')
		i++;
	return p[i] == '$' && !isdigit((unsigned char)p[1]) ? i + 1 : 0;
}

/* text[from, to) lower-cased with comments dropped and runs of blanks as
 * one space (new string). Quoted text is kept as it is. */
static char *normalise(const char *t, size_t len)
{
	iac_buf b = IAC_BUF_INIT;
	int space = 0;
	for (size_t i = 0; i < len; i++) {
		char c = t[i];
		if (c == '-' && i + 1 < len && t[i + 1] == '-') {
			while (i < len && t[i] != '\n')
				i++;
			space = 1;
			continue;
		}
		if (c == '/' && i + 1 < len && t[i + 1] == '*') {
			int depth = 0;
			for (; i + 1 < len; i++) {
				if (t[i] == '/' && t[i + 1] == '*')
					depth++, i++;
				else if (t[i] == '*' && t[i + 1] == '/' && --depth == 0) {
					i++;
					break;
				}
			}
			space = 1;
			continue;
		}
		if (isspace((unsigned char)c)) {
			space = 1;
			continue;
		}
		if (space && iac_buf_cstr(&b)[0])
			iac_buf_puts(&b, " ");
		space = 0;
		char one[2] = { (char)tolower((unsigned char)c), 0 };
		iac_buf_puts(&b, one);
	}
	char *out = iac_xstrdup(iac_buf_cstr(&b));
	iac_buf_free(&b);
	return out;
}

static int starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* The word after the first occurrence of `after` in n (skipping "only",
 * "if exists", "if not exists"), new string, or NULL. */
static char *word_after(const char *n, const char *after)
{
	const char *p = strstr(n, after);
	if (!p)
		return NULL;
	p += strlen(after);
	for (;;) {
		if (starts(p, "only "))
			p += 5;
		else if (starts(p, "if not exists "))
			p += 14;
		else if (starts(p, "if exists "))
			p += 10;
		else if (starts(p, "concurrently "))
			p += 13;
		else if (starts(p, "table "))
			p += 6;
		else
			break;
	}
	size_t l = strcspn(p, " (;,");
	return l ? iac_xstrndup(p, l) : NULL;
}

static int has(const char *n, const char *w)
{
	return strstr(n, w) != NULL;
}

/* ALTER TABLE: the lock depends on what it alters. */
static void classify_alter_table(stmt *s, const char *n)
{
	s->table = word_after(n, "alter table ");
	if (has(n, " validate constraint ")) {
		s->kind = OWN_TX;
		s->lock = "SHARE UPDATE EXCLUSIVE";
	} else if (has(n, " add ") && (has(n, " foreign key") || has(n, " references "))) {
		s->lock = "SHARE ROW EXCLUSIVE";
		if (!has(n, " not valid"))
			s->note = "checks every row while holding the lock: add it NOT VALID, then VALIDATE CONSTRAINT";
	} else if (has(n, " set statistics") || has(n, " cluster on") || has(n, " set without cluster")) {
		s->lock = "SHARE UPDATE EXCLUSIVE";
	} else {
		s->lock = "ACCESS EXCLUSIVE";
		if (has(n, " add constraint") && has(n, " check") && !has(n, " not valid"))
			s->note = "checks every row while holding the lock: add it NOT VALID, then VALIDATE CONSTRAINT";
		else if (has(n, " set not null"))
			s->note = "scans the table while holding the lock (a valid CHECK (col IS NOT NULL) avoids it)";
		else if (has(n, " type "))
			s->note = "may rewrite the whole table while holding the lock";
	}
}

/* Kind, lock and table of one statement, from what it says (PostgreSQL 15's
 * "Table-Level Locks"); 0, or IAC_ERR for what iac must do itself. */
static int classify(stmt *s)
{
	const char *n = s->norm;
	s->kind = TX;
	if (starts(n, "begin") || starts(n, "commit") || starts(n, "start transaction") || starts(n, "rollback") ||
	    starts(n, "end") || starts(n, "savepoint") || starts(n, "abort"))
		return iac_err_set("'%s': a migration file has no transaction control: iac groups the statements into "
				   "transactions itself (CONCURRENTLY alone, VALIDATE CONSTRAINT in its own)", s->sql);
	if ((starts(n, "create index concurrently") || starts(n, "create unique index concurrently"))) {
		s->kind = NO_TX;
		s->lock = "SHARE UPDATE EXCLUSIVE";
		s->table = word_after(n, " on ");
		s->index = word_after(n, " concurrently ");
		if (s->index && !strcmp(s->index, "on")) {
			free(s->index);
			s->index = NULL;
		}
		if (!s->index)
			s->note = "name the index: an INVALID one left by a failed try is found and dropped by its name";
	} else if (starts(n, "drop index concurrently") || (starts(n, "reindex") && has(n, " concurrently"))) {
		s->kind = NO_TX;
		s->lock = "SHARE UPDATE EXCLUSIVE";
		s->table = starts(n, "reindex") ? word_after(n, " concurrently ") : word_after(n, "concurrently ");
	} else if (starts(n, "vacuum")) {
		s->kind = NO_TX;
		s->lock = has(n, "full") ? "ACCESS EXCLUSIVE" : "SHARE UPDATE EXCLUSIVE";
		s->table = word_after(n, "vacuum ");
	} else if (starts(n, "create index") || starts(n, "create unique index")) {
		s->lock = "SHARE";
		s->table = word_after(n, " on ");
		s->note = "blocks writes to the table while it builds: CREATE INDEX CONCURRENTLY does not";
	} else if (starts(n, "alter table")) {
		classify_alter_table(s, n);
	} else if (starts(n, "refresh materialized view")) {
		s->lock = has(n, " concurrently ") ? "EXCLUSIVE" : "ACCESS EXCLUSIVE";
		s->table = word_after(n, "materialized view ");
	} else if (starts(n, "drop table") || starts(n, "drop index") || starts(n, "drop materialized view") ||
		   starts(n, "drop view") || starts(n, "truncate") || starts(n, "alter index") || starts(n, "reindex") ||
		   starts(n, "cluster") || starts(n, "alter sequence") || starts(n, "alter view") ||
		   starts(n, "alter materialized view") || starts(n, "lock")) {
		s->lock = "ACCESS EXCLUSIVE";
		const char *w[] = { "drop table ", "drop index ", "drop materialized view ", "drop view ", "truncate ",
				    "alter index ", "reindex index ", "reindex table ", "cluster ", "alter sequence ",
				    "alter view ", "alter materialized view ", "lock " };
		for (size_t i = 0; i < sizeof(w) / sizeof(w[0]) && !s->table; i++)
			if (starts(n, w[i]))
				s->table = word_after(n, w[i]);
	} else if (starts(n, "create trigger") || starts(n, "create or replace trigger")) {
		s->lock = "SHARE ROW EXCLUSIVE";
		s->table = word_after(n, " on ");
	} else if (starts(n, "comment on") || starts(n, "analyze")) {
		s->lock = "SHARE UPDATE EXCLUSIVE";
	} else if (starts(n, "insert") || starts(n, "update") || starts(n, "delete") || starts(n, "merge") ||
		   starts(n, "copy")) {
		s->lock = "ROW EXCLUSIVE";
		s->table = starts(n, "insert into ") ? word_after(n, "insert into ")
			 : starts(n, "update ") ? word_after(n, "update ")
			 : starts(n, "delete from ") ? word_after(n, "delete from ") : NULL;
	} else if (starts(n, "select") || starts(n, "with")) {
		s->lock = "ACCESS SHARE";
	} else if (starts(n, "create") || starts(n, "grant") || starts(n, "revoke") || starts(n, "set") ||
		   starts(n, "do")) {
		s->lock = "none on existing tables";
	} else {
		s->lock = "unknown (see PostgreSQL's Table-Level Locks)";
	}
	return 0;
}

static void add_stmt(stmts *l, const char *t, size_t len)
{
	char *norm = normalise(t, len);
	if (!*norm) {   /* only blanks and comments */
		free(norm);
		return;
	}
	/* leading blanks and line comments are not part of what is shown */
	for (;;) {
		while (len && isspace((unsigned char)*t))
			t++, len--;
		if (len < 2 || t[0] != '-' || t[1] != '-')
			break;
		while (len && *t != '\n')
			t++, len--;
	}
	while (len && isspace((unsigned char)t[len - 1]))
		len--;
	l->s = realloc(l->s, (l->n + 1) * sizeof(*l->s));
	if (!l->s)
		abort();
	memset(&l->s[l->n], 0, sizeof(stmt));
	l->s[l->n].sql = iac_xstrndup(t, len);
	l->s[l->n].norm = norm;
	l->n++;
}

/* Split sql into statements at the ';' that end them (not those in quotes,
 * dollar quotes or comments), classify them and number the groups. */
static int split(stmts *l, const char *sql)
{
	const char *p = sql, *from = sql;
	memset(l, 0, sizeof(*l));
	while (*p) {
		size_t tag;
		if (*p == '\'' || *p == '"') {
			char q = *p++;
			while (*p && !(*p == q && p[1] != q))
				p += (*p == q) ? 2 : 1;
			if (*p)
				p++;
		} else if (p[0] == '-' && p[1] == '-') {
			while (*p && *p != '\n')
				p++;
		} else if (p[0] == '/' && p[1] == '*') {
			int depth = 0;
			for (; *p; p++) {
				if (p[0] == '/' && p[1] == '*')
					depth++, p++;
				else if (p[0] == '*' && p[1] == '/' && --depth == 0) {
					p += 2;
					break;
				}
			}
		} else if ((tag = dollar_tag(p))) {
			const char *end = p + tag;
			while (*end && strncmp(end, p, tag))
				end++;
			p = *end ? end + tag : end;
		} else if (*p == ';') {
			add_stmt(l, from, (size_t)(p - from));
			from = ++p;
		} else {
			p++;
		}
	}
	add_stmt(l, from, (size_t)(p - from));
	int step = -1, prev = -1;
	for (size_t i = 0; i < l->n; i++) {
		if (classify(&l->s[i]) < 0) {
			stmts_free(l);
			return IAC_ERR;
		}
		if (l->s[i].kind != TX || prev != TX)
			step++;
		prev = l->s[i].kind;
		l->s[i].step = step;
	}
	l->steps = step + 1;
	if (l->steps > MAX_STEPS) {
		stmts_free(l);
		return iac_err_set("more than %d statement groups in one migration: split it", MAX_STEPS);
	}
	return 0;
}

/* ---- schema_migrations -------------------------------------------------- */

static const char ensure_tables[] =
	"create table if not exists schema_migrations (name text not null, phase text not null, "
	"checksum text not null, applied_at timestamptz not null default now(), primary key (name, phase));\n"
	"create table if not exists schema_migrations_steps (name text not null, phase text not null, "
	"step int not null, checksum text not null, applied_at timestamptz not null default now(), "
	"primary key (name, phase, step));\n";

/* What schema_migrations says about one phase. */
typedef struct {
	char checksum[65];      /* "" when the phase is not applied */
	double applied_at;
	unsigned char done[MAX_STEPS];
	char step_sum[65];      /* checksum the recorded steps were run with ("" when none) */
	int n_done;
} phase_rec;

/* Read phase_rec of (name, phase) on the leader m. create: make the tables
 * when missing; else a missing table reads as nothing applied. */
static int recorded(phase_rec *rec, const iac_rctx *ctx, const json_t *a, const json_t *m, const char *phase,
		    int create)
{
	iac_db_sql_result r;
	const char *name = iac_json_str(a, "name");
	char *sql;
	int rc = IAC_ERR;
	memset(rec, 0, sizeof(*rec));
	if (create)
		sql = iac_xasprintf("%s", ensure_tables);
	else
		sql = iac_xasprintf("select 'tables', (to_regclass('schema_migrations') is not null and "
				    "to_regclass('schema_migrations_steps') is not null)::int;\n");
	if (iac_db_psql(&r, ctx, m, iac_json_str(a, "database"), sql, 0) < 0)
		goto done;
	int have = create || (r.status == 0 && strstr(r.out, "tables|1"));
	if (r.status != 0) {
		iac_err_set("reading schema_migrations on %s: %s", iac_host_label(json_object_get(m, "host")), r.err);
		iac_db_sql_result_free(&r);
		goto done;
	}
	iac_db_sql_result_free(&r);
	if (!have) {
		rc = 0;
		goto done;
	}
	free(sql);
	sql = iac_xasprintf("select 'final', checksum, extract(epoch from applied_at)::text from schema_migrations where "
			    "name = '%s' and phase = '%s' union all select 'step', step::text, checksum from "
			    "schema_migrations_steps where name = '%s' and phase = '%s';\n",
			    name, phase, name, phase);
	if (iac_db_psql(&r, ctx, m, iac_json_str(a, "database"), sql, 0) < 0)
		goto done;
	if (r.status != 0) {
		iac_err_set("reading schema_migrations on %s: %s", iac_host_label(json_object_get(m, "host")), r.err);
		iac_db_sql_result_free(&r);
		goto done;
	}
	char *save = NULL;
	for (char *line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[3] = { 0 }, *s2 = NULL;
		f[0] = strtok_r(line, "|", &s2);
		f[1] = f[0] ? strtok_r(NULL, "|", &s2) : NULL;
		f[2] = f[1] ? strtok_r(NULL, "|", &s2) : NULL;
		if (!f[2])
			continue;
		if (!strcmp(f[0], "final")) {
			snprintf(rec->checksum, sizeof(rec->checksum), "%s", f[1]);
			rec->applied_at = strtod(f[2], NULL);
		} else {
			long st = strtol(f[1], NULL, 10);
			if (st >= 0 && st < MAX_STEPS && !rec->done[st]) {
				rec->done[st] = 1;
				rec->n_done++;
			}
			snprintf(rec->step_sum, sizeof(rec->step_sum), "%s", f[2]);
		}
	}
	iac_db_sql_result_free(&r);
	rc = 0;
done:
	free(sql);
	return rc;
}

/* ---- running a phase ---------------------------------------------------- */

static int read_file(char **out, char hex[65], const iac_rctx *ctx, const json_t *a, const char *phase)
{
	const char *file = iac_json_str(a, phase);
	char *path = iac_path_join(ctx->config_dir, file);
	size_t len = 0;
	int rc = iac_file_read(out, &len, path);
	if (rc < 0)
		iac_err_prefix("migration '%s': %s file '%s'", iac_json_str(a, "name"), phase, file);
	else
		iac_sha256_hex(hex, *out, len);
	free(path);
	return rc;
}

static int edited(const json_t *a, const char *phase, const char *was, const char *hex, const char *where)
{
	return iac_err_set("migration '%s' was applied (%s) with checksum %.12s%s; its file '%s' changed since "
			   "(%.12s): an applied migration is never edited, write a new one",
			   iac_json_str(a, "name"), phase, was, where, iac_json_str(a, phase), hex);
}

/* A CREATE INDEX CONCURRENTLY that failed (lock timeout, a duplicate for a
 * unique index, cancelled) leaves its index INVALID; PostgreSQL will not
 * build it again under that name. Drop it concurrently (it takes no lock
 * that blocks the table's users). */
static int drop_invalid(const iac_rctx *ctx, const json_t *a, const json_t *m, const char *index)
{
	iac_db_sql_result r;
	char *q = iac_xasprintf("select n.nspname from pg_index i join pg_class c on c.oid = i.indexrelid join "
				"pg_namespace n on n.oid = c.relnamespace where c.relname = '%s' and not i.indisvalid "
				"and pg_table_is_visible(c.oid);\n", index);
	int rc = iac_db_psql(&r, ctx, m, iac_json_str(a, "database"), q, 0);
	free(q);
	if (rc < 0)
		return IAC_ERR;
	int invalid = r.status == 0 && r.out[0];
	iac_db_sql_result_free(&r);
	if (!invalid)
		return 0;
	iac_log("%s: dropping the INVALID index '%s' a failed CREATE INDEX CONCURRENTLY left, then building it again",
		ctx->addr, index);
	q = iac_xasprintf("drop index concurrently if exists %s;\n", index);
	rc = iac_db_psql(&r, ctx, m, iac_json_str(a, "database"), q, 0);
	free(q);
	if (rc == 0 && r.status != 0)
		rc = iac_err_set("cannot drop the INVALID index '%s' on %s: %s", index,
				 iac_host_label(json_object_get(m, "host")), r.err);
	iac_db_sql_result_free(&r);
	return rc;
}

/* The SQL of group `step`: its statements, then its schema_migrations_steps
 * row; in a transaction unless the group is one NO_TX statement. */
static char *step_sql(const json_t *a, const stmts *l, int step, const char *phase, const char *hex)
{
	iac_buf b = IAC_BUF_INIT;
	int tx = 1;
	iac_buf_printf(&b, "set lock_timeout = '%s';\n", iac_json_str(a, "lock_timeout") ?: "2s");
	for (size_t i = 0; i < l->n; i++)
		if (l->s[i].step == step && l->s[i].kind == NO_TX)
			tx = 0;
	if (tx)
		iac_buf_puts(&b, "begin;\n");
	for (size_t i = 0; i < l->n; i++)
		if (l->s[i].step == step)
			iac_buf_printf(&b, "%s;\n", l->s[i].sql);
	iac_buf_printf(&b, "insert into schema_migrations_steps (name, phase, step, checksum) values ('%s', '%s', %d, '%s');\n",
		       iac_json_str(a, "name"), phase, step, hex);
	if (tx)
		iac_buf_puts(&b, "commit;\n");
	char *out = iac_xstrdup(iac_buf_cstr(&b));
	iac_buf_free(&b);
	return out;
}

/* The index a NO_TX group builds concurrently (borrowed), or NULL. */
static const char *group_index(const stmts *l, int step)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->s[i].step == step && l->s[i].index)
			return l->s[i].index;
	return NULL;
}

typedef struct {
	const iac_rctx *ctx;
	const json_t *a, *m;
	const char *index;
} invalid_ctx;

static int drop_invalid_before(void *ud)
{
	invalid_ctx *c = ud;
	return c->index ? drop_invalid(c->ctx, c->a, c->m, c->index) : 0;
}

/* Run group `step` on m: lock timeouts retried with backoff, an INVALID
 * index from a failed concurrent build dropped before each try. */
static int run_step(const iac_rctx *ctx, const json_t *a, const json_t *m, const stmts *l, int step,
		    const char *phase, const char *hex)
{
	char *sql = step_sql(a, l, step, phase, hex);
	invalid_ctx ic = { ctx, a, m, group_index(l, step) };
	char *what = iac_xasprintf("migration '%s' (%s, statement group %d of %d)", iac_json_str(a, "name"), phase,
				   step + 1, l->steps);
	iac_db_sql_result r;
	int rc = iac_db_psql_retry_each(&r, ctx, m, iac_json_str(a, "database"), sql, 0, num(a, "retries", 5), what,
					drop_invalid_before, &ic);
	if (rc == 0)
		iac_db_sql_result_free(&r);
	free(what);
	free(sql);
	return rc;
}

/* Apply `phase` of a on the leader (*at: when it was applied). Already
 * applied with the same checksum: adopted; groups recorded by an earlier,
 * failed try are skipped. */
static int run_phase(double *at, const iac_rctx *ctx, const json_t *a, const char *phase, char hex[65])
{
	char *text = NULL;
	stmts l = { 0 };
	phase_rec rec;
	iac_db_sql_result r = { 0 };
	const json_t *m;
	int rc = IAC_ERR;
	const char *name = iac_json_str(a, "name");
	if (read_file(&text, hex, ctx, a, phase) < 0 || split(&l, text) < 0 ||
	    !(m = iac_db_leader(ctx, json_object_get(a, "members"), iac_json_str(a, "cluster"))) ||
	    recorded(&rec, ctx, a, m, phase, 1) < 0)
		goto done;
	if (rec.checksum[0] && strcmp(rec.checksum, hex)) {
		edited(a, phase, rec.checksum, hex, " (schema_migrations)");
		goto done;
	}
	if (!rec.checksum[0]) {
		if (rec.n_done && strcmp(rec.step_sum, hex)) {
			edited(a, phase, rec.step_sum, hex, ", partly (schema_migrations_steps)");
			goto done;
		}
		for (int s = 0; s < l.steps; s++) {
			if (rec.done[s])
				continue;
			if (l.steps > 1)
				iac_log("%s: %s group %d of %d%s", ctx->addr, phase, s + 1, l.steps,
					group_index(&l, s) ? " (outside a transaction: CONCURRENTLY)" : "");
			if (run_step(ctx, a, m, &l, s, phase, hex) < 0)
				goto done;
		}
		char *fin = iac_xasprintf("insert into schema_migrations (name, phase, checksum) values ('%s', '%s', '%s') "
					  "on conflict do nothing;\n",
					  name, phase, hex);
		int prc = iac_db_psql(&r, ctx, m, iac_json_str(a, "database"), fin, 0);
		free(fin);
		if (prc < 0)
			goto done;
		if (r.status != 0) {
			iac_err_set("recording migration '%s' on %s: %s", name, iac_host_label(json_object_get(m, "host")), r.err);
			goto done;
		}
		if (recorded(&rec, ctx, a, m, phase, 0) < 0)
			goto done;
	}
	*at = rec.applied_at;
	rc = 0;
done:
	iac_db_sql_result_free(&r);
	stmts_free(&l);
	free(text);
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

/* The file of phase parses, and matches what state recorded. */
static int plan_phase(const iac_rctx *ctx, json_t *planned, const json_t *prior, const char *phase, const char *key)
{
	char *sql = NULL, hex[65];
	stmts l;
	if (validate(planned) < 0 || read_file(&sql, hex, ctx, planned, phase) < 0)
		return IAC_ERR;
	int rc = split(&l, sql);
	free(sql);
	if (rc < 0) {
		iac_err_prefix("migration '%s': %s file '%s'", iac_json_str(planned, "name"), phase,
			       iac_json_str(planned, phase));
		return IAC_ERR;
	}
	stmts_free(&l);
	const char *was = iac_json_str(prior, key);
	if (was && strcmp(was, hex) && (strcmp(phase, "contract") || !strcmp(iac_json_str(prior, "status") ?: "", "applied")))
		return edited(planned, phase, was, hex, "");
	json_object_set_new(planned, key, json_string(hex));
	return 0;
}

/* ---- db.migration (expand) ---------------------------------------------- */

static int mig_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	if (iac_value_has_unknown(json_object_get(planned, "expand")) ||
	    iac_value_has_unknown(json_object_get(planned, "members")))
		return 0;
	return plan_phase(ctx, planned, prior, "expand", "expand_sha256");
}

static int mig_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	char hex[65];
	double at = 0;
	if (validate(planned) < 0 || run_phase(&at, ctx, planned, "expand", hex) < 0)
		return IAC_ERR;
	*out = json_deep_copy(planned);
	json_object_set_new(*out, "expand_sha256", json_string(hex));
	json_object_set_new(*out, "applied_at", json_real(at));
	return 0;
}

/* Applied means a schema_migrations row; the cluster unreachable leaves
 * state as it is. */
static int mig_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	const json_t *m = iac_db_leader(ctx, json_object_get(prior, "members"), iac_json_str(prior, "cluster"));
	phase_rec rec;
	*out = NULL;
	if (!m || recorded(&rec, ctx, prior, m, "expand", 0) < 0)
		return IAC_ERR;
	if (rec.checksum[0]) {
		*out = json_deep_copy(prior);
		json_object_set_new(*out, "expand_sha256", json_string(rec.checksum));
		json_object_set_new(*out, "applied_at", json_real(rec.applied_at));
	}
	return 0;
}

/* Only the other changes (cluster, members, settings): nothing to run. */
static int mig_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	(void)ctx;
	*out = json_deep_copy(planned);
	json_object_set(*out, "expand_sha256", json_object_get(prior, "expand_sha256"));
	json_object_set(*out, "applied_at", json_object_get(prior, "applied_at") ?: json_null());
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
	.doc = "a SQL migration's expand phase, applied once to a cluster's leader, recorded with its checksum",
	.plan = mig_plan,
	.read = mig_read,
	.create = mig_create,
	.update = mig_update,
	.remove = mig_remove,
	.gone_reason = "not in schema_migrations",
};

/* ---- db.migration_contract ---------------------------------------------- */

static time_t parse_utc(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm))
		return 0;
	return timegm(&tm);
}

static void left_text(char *out, size_t n, double s)
{
	if (s >= 3600)
		snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s, 3600) / 60);
	else if (s >= 60)
		snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
	else
		snprintf(out, n, "%.0fs", ceil(s));
}

/* 1 when the contract may run now; else 0 and why says what it waits for. */
static int contract_ready(char *why, size_t n, const json_t *a)
{
	const char *dep = iac_json_str(a, "deployment") ?: "the deployment";
	const json_t *d = json_object_get(a, "deploy"), *last = json_object_get(d, "last");
	const json_t *ex = json_object_get(a, "expand_at");
	const char *lv = iac_json_str(d, "live_version"), *sb = iac_json_str(d, "standby");
	if (!json_is_number(ex)) {
		snprintf(why, n, "waiting: the expand is not applied yet; the contract runs after a deploy of '%s' and "
			 "its rollback window", dep);
		return 0;
	}
	if (!json_is_object(last) || strcmp(iac_json_str(last, "result") ?: "", "live") ||
	    (double)parse_utc(iac_json_str(last, "started")) + 1 < json_number_value(ex)) {
		snprintf(why, n, "waiting for a deploy of '%s' after the expand (the old version may still use what the "
			 "contract removes)", dep);
		return 0;
	}
	if (strcmp(lv ?: "", iac_json_str(last, "version") ?: "")) {
		snprintf(why, n, "waiting: '%s' was rolled back to %s; the contract waits for a version deployed after "
			 "the expand to be live again", dep, lv ?: "?");
		return 0;
	}
	if (sb) {
		const json_t *until = json_object_get(d, "standby_until");
		double left = json_is_number(until) ? json_number_value(until) - (double)time(NULL) : -1;
		char lt[32];
		if (!json_is_number(until)) {
			snprintf(why, n, "waiting until the standby %s (%s) of '%s' is stopped (it has no scale_down_delay "
				 "to end its rollback window)", sb, iac_json_str(d, "standby_version") ?: "?", dep);
			return 0;
		}
		if (left > 0) {
			left_text(lt, sizeof(lt), left);
			snprintf(why, n, "waiting for the rollback window of '%s': standby %s (%s) kept %s more", dep, sb,
				 iac_json_str(d, "standby_version") ?: "?", lt);
			return 0;
		}
	}
	snprintf(why, n, "'%s' runs %s, drained the old colour, and its rollback window has passed", dep, lv);
	return 1;
}

static int con_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	char why[512];
	if (iac_value_has_unknown(json_object_get(planned, "contract")) ||
	    iac_value_has_unknown(json_object_get(planned, "members")))
		return 0;
	if (plan_phase(ctx, planned, prior, "contract", "contract_sha256") < 0)
		return IAC_ERR;
	if (prior && !strcmp(iac_json_str(prior, "status") ?: "", "applied")) {
		json_object_set_new(planned, "status", json_string("applied"));
		return 0;
	}
	if (iac_value_has_unknown(json_object_get(planned, "deploy")) ||
	    iac_value_has_unknown(json_object_get(planned, "expand_at"))) {
		snprintf(why, sizeof(why), "waiting: '%s' or the expand changes in this apply; the contract runs after "
			 "that deploy's rollback window", iac_json_str(planned, "deployment") ?: "the deployment");
		json_object_set_new(planned, "status", json_string(why));
	} else if (contract_ready(why, sizeof(why), planned)) {
		char *msg = iac_xasprintf("run the contract: %s", why);
		json_object_set_new(planned, "$update", json_string(msg));
		free(msg);
		return 0;
	}
	if (prior)   /* a status that only says how long is left is no change */
		json_object_set(planned, "status", json_object_get(prior, "status"));
	if (ctx->warn) {
		char *msg = iac_xasprintf("migration '%s': contract %s", iac_json_str(planned, "name"), why);
		ctx->warn(ctx, msg);
		free(msg);
	}
	return 0;
}

/* Run the contract when its time has come (checked again with the
 * deployment's attributes as they are now); else record that it waits. */
static int con_apply(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	char why[512], hex[65];
	double at = 0;
	if (validate(planned) < 0)
		return IAC_ERR;
	*out = json_deep_copy(planned);
	if (!contract_ready(why, sizeof(why), planned)) {
		iac_log("%s: contract not run: %s", ctx->addr, why);
		json_object_set_new(*out, "status", json_string(why));
		return 0;
	}
	iac_log("%s: running the contract: %s", ctx->addr, why);
	if (run_phase(&at, ctx, planned, "contract", hex) < 0) {
		json_decref(*out);
		*out = NULL;
		return IAC_ERR;
	}
	json_object_set_new(*out, "contract_sha256", json_string(hex));
	json_object_set_new(*out, "status", json_string("applied"));
	return 0;
}

static int con_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	return con_apply(ctx, out, planned);
}

static int con_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	if (!strcmp(iac_json_str(prior, "status") ?: "", "applied")) {
		*out = json_deep_copy(planned);
		json_object_set(*out, "status", json_object_get(prior, "status"));
		json_object_set(*out, "contract_sha256", json_object_get(prior, "contract_sha256"));
		return 0;
	}
	return con_apply(ctx, out, planned);
}

/* Applied: the schema_migrations row (adopted when found); waiting: as
 * state says. */
static int con_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	const json_t *m = iac_db_leader(ctx, json_object_get(prior, "members"), iac_json_str(prior, "cluster"));
	phase_rec rec;
	*out = NULL;
	if (!m || recorded(&rec, ctx, prior, m, "contract", 0) < 0)
		return IAC_ERR;
	*out = json_deep_copy(prior);
	if (rec.checksum[0]) {
		json_object_set_new(*out, "contract_sha256", json_string(rec.checksum));
		json_object_set_new(*out, "status", json_string("applied"));
	} else if (!strcmp(iac_json_str(prior, "status") ?: "", "applied")) {
		json_decref(*out);
		*out = NULL;
	}
	return 0;
}

const iac_rtype iac_db_migration_contract_type = {
	.name = "db.migration_contract",
	.attrs = con_attrs,
	.doc = "a migration's contract phase, run once its deployment's rollback window has passed",
	.plan = con_plan,
	.read = con_read,
	.create = con_create,
	.update = con_update,
	.remove = mig_remove,
	.gone_reason = "not in schema_migrations",
};

/* ---- dry run, finalize -------------------------------------------------- */

int iac_db_migration_dry_run(json_t **out, const iac_rctx *ctx, const json_t *a, const char *phase)
{
	char *text = NULL, hex[65];
	stmts l = { 0 };
	phase_rec rec;
	const json_t *m;
	int rc = IAC_ERR;
	*out = NULL;
	if (validate(a) < 0 || read_file(&text, hex, ctx, a, phase) < 0 || split(&l, text) < 0 ||
	    !(m = iac_db_leader(ctx, json_object_get(a, "members"), iac_json_str(a, "cluster"))) ||
	    recorded(&rec, ctx, a, m, phase, 0) < 0)
		goto done;
	*out = json_pack("{s:s,s:s,s:s,s:s,s:s,s:[]}", "name", iac_json_str(a, "name"), "phase", phase, "file",
			 iac_json_str(a, phase), "checksum", hex, "state",
			 rec.checksum[0] ? "applied" : rec.n_done ? "partly applied" : "pending", "statements");
	if (rec.checksum[0] && strcmp(rec.checksum, hex))
		json_object_set_new(*out, "error", json_sprintf("applied with checksum %.12s; the file changed since "
								"(%.12s): an applied migration is never edited",
								rec.checksum, hex));
	for (size_t i = 0; i < l.n; i++) {
		const stmt *s = &l.s[i];
		json_t *e = json_pack("{s:I,s:s,s:s,s:s?,s:b,s:s?}", "n", (json_int_t)(i + 1), "sql", s->sql, "lock", s->lock,
				      "table", s->table, "done", rec.checksum[0] || rec.done[s->step], "note", s->note);
		json_object_set_new(e, "transaction", s->kind == NO_TX ? json_string("none")
						      : s->kind == OWN_TX ? json_string("own")
						      : json_sprintf("group %d", s->step + 1));
		json_array_append_new(json_object_get(*out, "statements"), e);
	}
	rc = 0;
done:
	stmts_free(&l);
	free(text);
	return rc;
}

int iac_db_migration_finalize(iac_config *cfg)
{
	for (size_t i = 0; i < cfg->nres; i++) {
		iac_rconf *r = cfg->res[i];
		const char *dep = strcmp(r->type, "db.migration") ? NULL : iac_json_str(r->attrs, "deployment");
		if (!dep)
			continue;
		iac_rconf *d = iac_config_get(cfg, dep);
		if (!d)
			return iac_err_set("%s:%d: migration '%s': deployment '%s' is not declared", r->file, r->line,
					   r->name, dep);
		if (!json_is_array(d->deps)) {
			json_decref(d->deps);
			d->deps = json_array();
		}
		json_array_append_new(d->deps, json_string(r->addr));
	}
	return 0;
}
