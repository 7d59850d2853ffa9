/* shard_move: the SQL side of db.shard_map (shard.h): the guard trigger,
 * bringing a cluster's slot state in line with the map, and moving a group
 * of slots from one cluster to another.
 *
 * A move, for a group G of slots from A to B (each step one psql call on
 * the leader, the ones that change state in one transaction):
 *   1. A: G 'copying' (taking each slot's advisory lock, so writers already
 *      inside a transaction finish first): from now on the trigger logs
 *      the keys written to G.
 *   2. B: G 'incoming' (B refuses writes to G, apps still write to A).
 *   3. copy: A's rows of G (COPY TO) replace B's (COPY FROM, triggers off).
 *   4. fence: A: G 'fenced' under the advisory locks. Writes to G are
 *      refused from here (the write pause starts).
 *   5. catch up: the logged keys' rows replace B's rows with those keys.
 *   6. verify: count and checksum (md5 of the sorted rows' md5s) of G on A
 *      and on B (B takes writes to G, 'verified', when they agree); a
 *      difference rolls the group back (A accepts again, B's copy deleted)
 *      and fails the apply.
 *   7. flip: the map with G on B is published (the pause ends); B's state
 *      rows of G dropped.
 *   8. A: G's rows deleted (triggers off), G 'moved'.
 * A stop anywhere is settled by iac_db_shard_setup at the next apply, from
 * the published map: before the flip (7) the group is rolled back, after it
 * finished. Nothing is lost in either: A keeps every row until B accepts.
 */
#include "providers/db/shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/host/host.h"
#include "providers/db/db.h"

/* psql on a leader: 0 with *out (may be NULL: discarded) when it ran and
 * succeeded; IAC_ERR naming the step, the cluster and psql's error. */
static int sql(char **out, const iac_db_shard *s, const char *cluster, const json_t *leader, const char *what,
	       const char *text, int one_tx)
{
	iac_db_sql_result r;
	if (out)
		*out = NULL;
	if (iac_db_psql(&r, s->ctx, leader, s->database, text, one_tx) < 0) {
		iac_err_prefix("shard map '%s': %s on cluster '%s'", s->map, what, cluster);
		return IAC_ERR;
	}
	if (r.status != 0) {
		char *e = r.err;
		size_t n = strlen(e);
		while (n && (e[n - 1] == '\n' || e[n - 1] == ' '))
			e[--n] = 0;
		iac_err_set("shard map '%s': %s failed on cluster '%s' (%s): %s", s->map, what, cluster,
			    iac_host_label(json_object_get(leader, "host")), e);
		iac_db_sql_result_free(&r);
		return IAC_ERR;
	}
	if (out) {
		*out = r.out;
		r.out = NULL;
	}
	iac_db_sql_result_free(&r);
	return 0;
}

/* '{1,2,3}'::int[] */
static void slot_array(iac_buf *b, const long *slots, size_t n)
{
	iac_buf_puts(b, "'{");
	for (size_t i = 0; i < n; i++)
		iac_buf_printf(b, "%s%ld", i ? "," : "", slots[i]);
	iac_buf_puts(b, "}'::int[]");
}

/* "the rows of G" as a predicate on alias t */
static void in_group(iac_buf *b, const iac_db_shard *s, const long *slots, size_t n)
{
	iac_buf_printf(b, "iac_shard_slot(t.\"%s\"::text, %ld) = any(", s->key, s->slots);
	slot_array(b, slots, n);
	iac_buf_putc(b, ')');
}

/* The advisory lock of each slot of G, exclusive: writers hold it shared
 * for their transaction (the trigger takes it), so this waits for those
 * already writing and holds new ones back until the state change commits. */
static void lock_group(iac_buf *b, const iac_db_shard *s, const long *slots, size_t n)
{
	iac_buf_printf(b, "do $l$ begin perform pg_advisory_xact_lock(hashtext('iac_shard:%s'), x) from unnest(", s->map);
	slot_array(b, slots, n);
	iac_buf_puts(b, ") x; end $l$;\n");
}

static void set_state(iac_buf *b, const iac_db_shard *s, const long *slots, size_t n, const char *state,
		      const char *peer)
{
	iac_buf_printf(b, "insert into iac_shard_state (map, slot, state, peer) select '%s', x, '%s', '%s' from unnest(",
		       s->map, state, peer);
	slot_array(b, slots, n);
	iac_buf_puts(b, ") x on conflict (map, slot) do update set state = excluded.state, peer = excluded.peer;\n");
}

static void setup_sql(iac_buf *b, const iac_db_shard *s)
{
	iac_buf_puts(b,
		     "create table if not exists iac_shard_state (map text not null, slot int not null, state text not "
		     "null, peer text, primary key (map, slot));\n"
		     "create table if not exists iac_shard_log (map text not null, slot int not null, k text not null);\n"
		     "create index if not exists iac_shard_log_slot on iac_shard_log (map, slot);\n"
		     /* the key's slot, as clients compute it: md5's first 4 bytes
		      * (big-endian), scaled; one expression, so PostgreSQL inlines
		      * it and the index below serves "the rows of these slots" */
		     "create or replace function iac_shard_slot(k text, n int) returns int language sql immutable strict "
		     "parallel safe as $f$ select ((('x' || substr(md5(k), 1, 8))::bit(32)::bigint * n) >> 32)::int "
		     "$f$;\n");
	iac_buf_printf(b,
		       "create or replace function \"iac_shard_guard_%s\"() returns trigger language plpgsql as $g$\n"
		       "declare ks text[]; kv text; s int; st text;\n"
		       "begin\n"
		       "  if tg_op = 'INSERT' then ks := array[NEW.\"%s\"::text];\n"
		       "  elsif tg_op = 'DELETE' then ks := array[OLD.\"%s\"::text];\n"
		       "  else ks := array[OLD.\"%s\"::text, NEW.\"%s\"::text]; end if;\n"
		       "  foreach kv in array ks loop\n"
		       "    if kv is null then raise exception 'shard map ''%s'': column %s is null (every row needs its "
		       "shard key)'; end if;\n"
		       "    s := iac_shard_slot(kv, %ld);\n"
		       "    perform pg_advisory_xact_lock_shared(hashtext('iac_shard:%s'), s);\n"
		       "    select state into st from iac_shard_state where map = '%s' and slot = s;\n"
		       "    if st = 'copying' then insert into iac_shard_log values ('%s', s, kv);\n"
		       "    elsif st is not null and st <> 'verified' then raise exception using errcode = 'IAC01', message = format("
		       "'slot %%s of shard map ''%s'' is not on this cluster (%%s): read the map again and retry', s, st);\n"
		       "    end if;\n"
		       "  end loop;\n"
		       "  if tg_op = 'DELETE' then return OLD; end if;\n"
		       "  return NEW;\n"
		       "end $g$;\n"
		       "create or replace trigger \"iac_shard_guard_%s\" before insert or update or delete on \"%s\" for "
		       "each row execute function \"iac_shard_guard_%s\"();\n",
		       s->map, s->key, s->key, s->key, s->key, s->map, s->key, s->slots, s->map, s->map, s->map, s->map,
		       s->map, s->table, s->map);
	iac_buf_printf(b, "create index if not exists \"iac_shard_slot_%s\" on \"%s\" (iac_shard_slot(\"%s\"::text, %ld));\n",
		       s->map, s->table, s->key, s->slots);
}

int iac_db_shard_setup(const iac_db_shard *s, const char *cluster, const json_t *leader, const unsigned char *owned)
{
	iac_buf b = IAC_BUF_INIT, no = IAC_BUF_INIT;
	long *not_owned = malloc((size_t)s->slots * sizeof(long));
	size_t n = 0;
	for (long i = 0; i < s->slots; i++)
		if (!owned[i])
			not_owned[n++] = i;
	slot_array(&no, not_owned, n);
	setup_sql(&b, s);
	/* what a stopped move left: rows of slots this cluster does not own
	 * that it was giving away (fenced: the flip was published) or taking
	 * (incoming, verified: it was not) go; everything it owns it accepts */
	iac_buf_printf(&b,
		       "set local session_replication_role = replica;\n"
		       "do $r$ begin\n"
		       "  if exists (select 1 from iac_shard_state where map = '%s' and state = 'copying' and slot = any(%s)) then\n"
		       "    raise exception 'a slot of shard map ''%s'' was being copied from this cluster but the map gives "
		       "it to another: the published map was changed by hand';\n"
		       "  end if;\n"
		       "  if exists (select 1 from iac_shard_state where map = '%s' and state in ('fenced', 'incoming', 'verified') and "
		       "slot = any(%s)) then\n"
		       "    delete from \"%s\" t where iac_shard_slot(t.\"%s\"::text, %ld) in (select slot from iac_shard_state "
		       "where map = '%s' and state in ('fenced', 'incoming', 'verified') and slot = any(%s));\n"
		       "  end if;\n"
		       "end $r$;\n"
		       "delete from iac_shard_state where map = '%s' and slot <> all(%s);\n"
		       "insert into iac_shard_state (map, slot, state) select '%s', x, 'moved' from unnest(%s) x "
		       "on conflict (map, slot) do update set state = 'moved', peer = null;\n"
		       "delete from iac_shard_log where map = '%s';\n",
		       s->map, iac_buf_cstr(&no), s->map, s->map, iac_buf_cstr(&no), s->table, s->key, s->slots, s->map,
		       iac_buf_cstr(&no), s->map, iac_buf_cstr(&no), s->map, iac_buf_cstr(&no), s->map);
	int rc = sql(NULL, s, cluster, leader, "setting up the slot guard", iac_buf_cstr(&b), 1);
	iac_buf_free(&b);
	iac_buf_free(&no);
	free(not_owned);
	return rc;
}

/* Reads "N,N,N" into flags[N] = 1. */
static const char *slot_list(const char *p, unsigned char *flags, long slots)
{
	while (*p && *p != ' ' && *p != '\n') {
		char *e;
		long v = strtol(p, &e, 10);
		if (e == p)
			break;
		if (v >= 0 && v < slots)
			flags[v] = 1;
		p = *e == ',' ? e + 1 : e;
	}
	return p;
}

int iac_db_shard_read(unsigned char *transit, unsigned char *not_owned, const iac_db_shard *s, const char *cluster,
		      const json_t *leader)
{
	char *out = NULL, *text = iac_xasprintf(
		"select case when to_regclass('iac_shard_state') is null then '-' else (select "
		"coalesce(string_agg(slot::text, ',') filter (where state in ('copying', 'fenced', 'incoming', 'verified')), '') || ' ' || "
		"coalesce(string_agg(slot::text, ',') filter (where state in ('moved', 'incoming')), '') "
		"from iac_shard_state where map = '%s') end;\n", s->map);
	int rc = sql(&out, s, cluster, leader, "reading the slot state", text, 0);
	free(text);
	memset(not_owned, 0, (size_t)s->slots);
	if (rc < 0)
		return rc;
	if (out[0] == '-') {
		free(out);
		return IAC_ENOTFOUND;   /* never set up */
	}
	const char *p = slot_list(out, transit, s->slots);
	if (*p == ' ')
		slot_list(p + 1, not_owned, s->slots);
	free(out);
	return 0;
}

/* Appends the query printing "COUNT CHECKSUM" of G's rows. */
static void sum_sql(iac_buf *b, const iac_db_shard *s, const long *slots, size_t n)
{
	iac_buf_printf(b, "select count(*) || ' ' || coalesce(md5(string_agg(md5(t::text), '' order by md5(t::text))), "
			  "'-') from \"%s\" t where ", s->table);
	in_group(b, s, slots, n);
	iac_buf_puts(b, ";\n");
}

/* Appends a COPY of G's rows to stdout (text format); from_log: only the
 * rows whose keys the trigger logged. */
static void rows_sql(iac_buf *b, const iac_db_shard *s, const long *slots, size_t n, int from_log)
{
	iac_buf_printf(b, "copy (select t.* from \"%s\" t where ", s->table);
	in_group(b, s, slots, n);
	if (from_log) {
		iac_buf_printf(b, " and t.\"%s\"::text in (select k from iac_shard_log where map = '%s' and slot = any(",
			       s->key, s->map);
		slot_array(b, slots, n);
		iac_buf_puts(b, "))");
	}
	iac_buf_puts(b, ") to stdout;\n");
}

/* Appends a transaction that takes G's advisory locks (exclusive: writers
 * hold them shared for their transaction, so this waits for those already
 * writing and holds new ones back until the state change commits) and
 * sets G's state. */
static void locked_state_sql(iac_buf *b, const iac_db_shard *s, const long *slots, size_t n, const char *state,
			     const char *peer)
{
	iac_buf_puts(b, "begin;\n");
	lock_group(b, s, slots, n);
	if (!strcmp(state, "copying")) {
		iac_buf_printf(b, "delete from iac_shard_log where map = '%s' and slot = any(", s->map);
		slot_array(b, slots, n);
		iac_buf_puts(b, ");\n");
	}
	set_state(b, s, slots, n, state, peer);
	iac_buf_puts(b, "commit;\n");
}

/* sql() on the source, again after a deadlock with a writer that touches
 * several slots in one transaction (the scripts start over safely). */
static int source_sql(char **out, const iac_db_shard *s, const char *cluster, const json_t *leader, const char *what,
		      const char *text)
{
	int rc = IAC_ERR;
	for (int t = 0; t < 5 && rc < 0; t++) {
		rc = sql(out, s, cluster, leader, what, text, 0);
		if (rc < 0 && !strstr(iac_err_last(), "deadlock detected"))
			break;
	}
	return rc;
}

/* Splits psql's output at the lines "\." the scripts print between parts
 * (COPY's text format never prints one: it doubles backslashes). */
static size_t split_parts(char *out, char **parts, size_t max)
{
	size_t k = 0;
	char *p = out;
	parts[k++] = p;
	while (k < max && (p = strstr(p, "\\.\n"))) {
		if (p != out && p[-1] != '\n') {
			p++;   /* an escaped backslash inside a row */
			continue;
		}
		*p = 0;
		p += 3;
		parts[k++] = p;
	}
	for (size_t i = k; i < max; i++)
		parts[i] = p ? p + strlen(p) : out + strlen(out);
	return k;
}

/* A's state rows of G dropped (A owns G again), B's copy of G deleted and
 * G 'moved' there: the group as it was before the move. */
static void roll_back(const iac_db_shard *s, const char *from, const json_t *mf, const char *to, const json_t *mt,
		      const long *slots, size_t n)
{
	iac_buf b = IAC_BUF_INIT;
	char *keep = iac_xstrdup(iac_err_last());
	iac_buf_printf(&b, "delete from iac_shard_state where map = '%s' and slot = any(", s->map);
	slot_array(&b, slots, n);
	iac_buf_puts(&b, ");\n");
	sql(NULL, s, from, mf, "rolling the move back", iac_buf_cstr(&b), 1);
	iac_buf_clear(&b);
	iac_buf_printf(&b, "set local session_replication_role = replica;\ndelete from \"%s\" t where ", s->table);
	in_group(&b, s, slots, n);
	iac_buf_puts(&b, ";\n");
	set_state(&b, s, slots, n, "moved", "");
	sql(NULL, s, to, mt, "rolling the move back", iac_buf_cstr(&b), 1);
	iac_buf_free(&b);
	iac_err_set("%s", keep);
	free(keep);
}

static long count_lines(const char *t)
{
	long n = 0;
	for (; t && *t; t++)
		n += *t == '\n';
	return n;
}

/* A's side of the fence: G's slots fenced (writes refused), then the keys
 * logged since the copy, their rows and G's sum, each part ending in \. */
static void fence_sql(iac_buf *b, const iac_db_shard *s, const long *slots, size_t n, const char *to)
{
	locked_state_sql(b, s, slots, n, "fenced", to);
	iac_buf_printf(b, "copy (select distinct k from iac_shard_log where map = '%s' and slot = any(", s->map);
	slot_array(b, slots, n);
	iac_buf_puts(b, ")) to stdout;\n\\echo '\\\\.'\n");
	rows_sql(b, s, slots, n, 1);
	iac_buf_puts(b, "\\echo '\\\\.'\n");
	sum_sql(b, s, slots, n);
}

/* B's catch-up: the logged keys' rows (part[0], part[1]) replace B's,
 * then G's sum, and G is 'verified' only when the sums agree (part[2]). */
static void catchup_sql(iac_buf *b, const iac_db_shard *s, const long *slots, size_t n, char *const part[3])
{
	if (*part[0])
		iac_buf_printf(b, "set local session_replication_role = replica;\ncreate temp table iac_shard_keys (k "
				   "text) on commit drop;\ncopy iac_shard_keys from stdin;\n%s\\.\ndelete from \"%s\" t "
				   "where t.\"%s\"::text in (select k from iac_shard_keys);\ncopy \"%s\" from "
				   "stdin;\n%s\\.\n",
			       part[0], s->table, s->key, s->table, part[1]);
	sum_sql(b, s, slots, n);
	/* B takes writes to G once its rows agree with A's ('verified'), so
	 * the flip is the last step of the pause; before the flip nobody
	 * writes there (the published map says A), and a stop before it
	 * deletes B's rows of G like an 'incoming' copy */
	iac_buf_printf(b, "update iac_shard_state set state = 'verified' where map = '%s' and slot = any(", s->map);
	slot_array(b, slots, n);
	iac_buf_printf(b, ") and (select count(*) || ' ' || coalesce(md5(string_agg(md5(t::text), '' order by "
			   "md5(t::text))), '-') from \"%s\" t where ", s->table);
	in_group(b, s, slots, n);
	iac_buf_printf(b, ") = '%s';\n", part[2]);
}

/* A after the publish: G's rows, its state and its log go. */
static void source_cleanup_sql(iac_buf *b, const iac_db_shard *s, const long *slots, size_t n)
{
	iac_buf_printf(b, "set local session_replication_role = replica;\ndelete from \"%s\" t where ", s->table);
	in_group(b, s, slots, n);
	iac_buf_puts(b, ";\n");
	set_state(b, s, slots, n, "moved", "");
	iac_buf_printf(b, "delete from iac_shard_log where map = '%s' and slot = any(", s->map);
	slot_array(b, slots, n);
	iac_buf_puts(b, ");\n");
}

/* Each step one psql call: the write pause (fence to flip) is three
 * round trips whatever the group's size. */
int iac_db_shard_move(iac_db_shard *s, const char *from, const json_t *mf, const char *to, const json_t *mt,
		      const long *slots, size_t n)
{
	char *outa = NULL, *outb = NULL, *part[3];
	iac_buf b = IAC_BUF_INIT;
	int rc = IAC_ERR;
	double t0;
	/* copy: A's rows of G (the trigger logs what is written from now on)
	 * replace B's, B refusing writes to G */
	locked_state_sql(&b, s, slots, n, "copying", to);
	rows_sql(&b, s, slots, n, 0);
	if (source_sql(&outa, s, from, mf, "copying the slots' rows out", iac_buf_cstr(&b)) < 0)
		goto done;
	iac_buf_clear(&b);
	iac_buf_puts(&b, "set local session_replication_role = replica;\n");
	set_state(&b, s, slots, n, "incoming", from);
	iac_buf_printf(&b, "delete from \"%s\" t where ", s->table);
	in_group(&b, s, slots, n);
	iac_buf_printf(&b, ";\ncopy \"%s\" from stdin;\n%s\\.\n", s->table, outa);
	if (sql(NULL, s, to, mt, "copying the slots' rows in", iac_buf_cstr(&b), 1) < 0)
		goto fail;
	s->moved_rows += count_lines(outa);
	s->moved_slots += (long)n;
	free(outa);
	outa = NULL;
	/* the write pause: from the fence to the target's accepting. A:
	 * fence, then the logged keys, their rows and G's sum */
	t0 = iac_now_ms();
	iac_buf_clear(&b);
	fence_sql(&b, s, slots, n, to);
	if (source_sql(&outa, s, from, mf, "fencing the slots", iac_buf_cstr(&b)) < 0)
		goto fail;
	if (split_parts(outa, part, 3) != 3) {
		iac_err_set("shard map '%s': cannot read the catch-up from cluster '%s'", s->map, from);
		goto fail;
	}
	part[2][strcspn(part[2], "\n")] = 0;
	/* B: the logged keys' rows replaced, then G's sum */
	iac_buf_clear(&b);
	catchup_sql(&b, s, slots, n, part);
	if (sql(&outb, s, to, mt, "catching up", iac_buf_cstr(&b), 1) < 0)
		goto fail;
	outb[strcspn(outb, "\n")] = 0;
	if (strcmp(part[2], outb)) {
		iac_err_set("shard map '%s': slots moved from '%s' to '%s' differ after the copy (rows and checksum: "
			    "%s on '%s', %s on '%s'); rolled back, nothing deleted",
			    s->map, from, to, part[2], from, outb, to);
		goto fail;
	}
	if (s->publish(s, slots, n, to) < 0)
		goto fail;
	double pause = iac_now_ms() - t0;
	if (pause > s->pause_ms)
		s->pause_ms = pause;
	/* published: from here on the move only goes forward (the next apply
	 * finishes it from the map) */
	iac_buf_clear(&b);
	iac_buf_printf(&b, "delete from iac_shard_state where map = '%s' and slot = any(", s->map);
	slot_array(&b, slots, n);
	iac_buf_puts(&b, ");\n");
	if (sql(NULL, s, to, mt, "accepting the slots", iac_buf_cstr(&b), 1) < 0)
		goto done;
	iac_buf_clear(&b);
	source_cleanup_sql(&b, s, slots, n);
	rc = sql(NULL, s, from, mf, "deleting the moved rows from the source", iac_buf_cstr(&b), 1);
	goto done;
fail:
	roll_back(s, from, mf, to, mt, slots, n);
done:
	iac_buf_free(&b);
	free(outa);
	free(outb);
	return rc;
}

int iac_db_shard_drop(const iac_db_shard *s, const char *cluster, const json_t *leader)
{
	char *text = iac_xasprintf(
		"drop trigger if exists \"iac_shard_guard_%s\" on \"%s\";\ndrop function if exists \"iac_shard_guard_%s\"();\n"
		"do $d$ begin if to_regclass('iac_shard_state') is not null then delete from iac_shard_state where map = "
		"'%s'; delete from iac_shard_log where map = '%s'; end if; end $d$;\n",
		s->map, s->table, s->map, s->map, s->map);
	int rc = sql(NULL, s, cluster, leader, "removing the slot guard", text, 1);
	free(text);
	return rc;
}
