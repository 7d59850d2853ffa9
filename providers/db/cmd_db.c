/* cmd_db: `iac db switchover CLUSTER [-to NODE]` and `iac db status
 * [CLUSTER]` (also reached as `iac status db [CLUSTER]`).
 *
 * Both read state only (no configuration is loaded, nothing is refreshed)
 * to find a cluster's members, then ask Patroni (REST) and, for status,
 * the leader's PostgreSQL (psql as postgres over the host's socket, so no
 * password is involved). Neither changes state: roles are Patroni's.
 * migrate -dry-run loads the configuration for its migrations and reads
 * schema_migrations on the leader: it runs no statement of theirs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "providers/db/db.h"
#include "providers/db/migration.h"

#include "iac/cli/session.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/host/host.h"

/* State's entries of type whose attribute cluster is `cluster` (any
 * cluster when NULL): [attributes + "$addr"...] (new ref). */
static json_t *entries_of(iac_session *s, const char *type, const char *cluster)
{
	json_t *out = json_array();
	size_t n;
	const char **addrs = iac_state_addresses(s->st, &n);
	for (size_t i = 0; i < n; i++) {
		json_t *e = iac_state_get(s->st, addrs[i]);
		json_t *a = json_object_get(e, "attributes");
		const char *c = iac_json_str(a, "cluster");
		if (strcmp(iac_json_str(e, "type") ?: "", type) || !c || (cluster && strcmp(cluster, c)))
			continue;
		json_t *m = json_deep_copy(a);
		json_object_set_new(m, "$addr", json_string(addrs[i]));
		json_array_append_new(out, m);
	}
	free(addrs);
	return out;
}

/* The members of each cluster in state: cluster -> [attributes...] (new ref). */
static json_t *clusters_in_state(iac_session *s, const char *only)
{
	json_t *out = json_object(), *nodes = entries_of(s, "db.patroni_node", only), *m;
	size_t i;
	json_array_foreach(nodes, i, m) {
		const char *c = iac_json_str(m, "cluster");
		if (!json_object_get(out, c))
			json_object_set_new(out, c, json_array());
		json_array_append(json_object_get(out, c), m);
	}
	json_decref(nodes);
	return out;
}

static long num(const json_t *a, const char *k, long dflt)
{
	const json_t *v = json_object_get(a, k);
	return json_is_number(v) ? (long)json_number_value(v) : dflt;
}

static const char *addr_of(const json_t *m)
{
	return iac_json_str(json_object_get(m, "host"), "address") ?: "127.0.0.1";
}

/* GET /cluster from the first member that answers (new ref), or NULL. */
static json_t *patroni_cluster(const json_t *members, const json_t **via)
{
	size_t i;
	json_t *m;
	json_array_foreach(members, i, m) {
		json_t *body = NULL;
		long status = 0;
		if (iac_db_rest(&body, &status, addr_of(m), num(m, "api_port", 8008), "GET", "/cluster", NULL, 2000,
				&iac_cancel_requested) == 0 && status == 200 && json_is_array(json_object_get(body, "members"))) {
			if (via)
				*via = m;
			return body;
		}
		json_decref(body);
		iac_err_clear();
	}
	return NULL;
}

/* The leader's name in a /cluster answer, or NULL (borrowed). */
static const char *leader_of(const json_t *cl)
{
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(cl, "members"), i, m) {
		if (!strcmp(iac_db_role(iac_json_str(m, "role")), "leader") &&
		    !strcmp(iac_json_str(m, "state") ?: "", "running"))
			return iac_json_str(m, "name");
	}
	return NULL;
}

static const json_t *member_named(const json_t *members, const char *name)
{
	size_t i;
	json_t *m;
	json_array_foreach(members, i, m) if (!strcmp(iac_json_str(m, "name") ?: "", name)) return m;
	return NULL;
}

/* ---- switchover -------------------------------------------------------- */

static int switchover(iac_session *s, const char *cluster, const char *to)
{
	json_t *all = clusters_in_state(s, cluster), *members = json_object_get(all, cluster), *cl = NULL, *body = NULL,
	       *resp = NULL;
	const json_t *via = NULL;
	long status = 0;
	int rc = 1;
	char from[128] = "";
	double t0 = iac_now_ms();

	if (!json_array_size(members)) {
		iac_log_error("no cluster named '%s' in state; 'iac state list' shows what there is", cluster);
		goto done;
	}
	if (!(cl = patroni_cluster(members, &via))) {
		iac_log_error("cannot reach Patroni on any member of '%s'", cluster);
		goto done;
	}
	if (!leader_of(cl)) {
		iac_log_error("cluster '%s' has no running leader now: nothing to switch over (Patroni fails over by itself)",
			      cluster);
		goto done;
	}
	snprintf(from, sizeof(from), "%s", leader_of(cl));
	if (to && !strcmp(to, from)) {
		iac_log_error("'%s' already leads cluster '%s'", to, cluster);
		goto done;
	}
	body = json_pack("{s:s}", "leader", from);
	if (to)
		json_object_set_new(body, "candidate", json_string(to));
	/* Patroni answers when the switch is done (or failed) */
	if (iac_db_rest(&resp, &status, addr_of(via), num(via, "api_port", 8008), "POST", "/switchover", body, 60e3,
			&iac_cancel_requested) < 0) {
		iac_session_error("switchover request failed");
		goto done;
	}
	if (status != 200) {
		iac_log_error("Patroni refused the switchover of '%s' (HTTP %ld): %s", cluster, status,
			      iac_json_str(resp, "message") ?: "");
		goto done;
	}
	/* wait until the new leader runs: that is when writes work again */
	const char *now = NULL;
	for (int i = 0; i < 300 && !iac_cancel_requested; i++) {
		json_decref(cl);
		cl = patroni_cluster(members, NULL);
		now = cl ? leader_of(cl) : NULL;
		if (now && strcmp(now, from))
			break;
		now = NULL;
		usleep(100 * 1000);
	}
	if (!now) {
		iac_log_error("Patroni accepted the switchover of '%s' but no new leader runs after 30s", cluster);
		goto done;
	}
	double ms = iac_now_ms() - t0;
	if (s->json) {
		json_t *doc = json_pack("{s:s,s:s,s:s,s:f}", "cluster", cluster, "from", from, "to", now, "seconds", ms / 1e3);
		char *text = json_dumps(doc, JSON_INDENT(2));
		printf("%s\n", text);
		free(text);
		json_decref(doc);
	} else {
		printf("%s: switched over from %s to %s in %.2fs\n", cluster, from, now, ms / 1e3);
	}
	rc = 0;
done:
	json_decref(all);
	json_decref(cl);
	json_decref(body);
	json_decref(resp);
	return rc;
}

/* ---- status ------------------------------------------------------------ */

static const char status_sql[] =
	"select json_build_object("
	"'replication', (select coalesce(json_agg(json_build_object('name', application_name, 'state', state, "
	"'lag_bytes', pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), "
	"'lag_seconds', coalesce(extract(epoch from replay_lag), 0))), '[]') from pg_stat_replication), "
	"'slots', (select coalesce(json_agg(json_build_object('name', slot_name, 'type', slot_type, 'active', active, "
	"'retained_bytes', pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn))), '[]') from pg_replication_slots), "
	"'connections', (select count(*) from pg_stat_activity where backend_type = 'client backend'), "
	"'max_connections', current_setting('max_connections')::int, "
	"'pgss', (select count(*) from pg_extension where extname = 'pg_stat_statements'), "
	"'pgss_loaded', current_setting('shared_preload_libraries') like '%pg_stat_statements%');\n";

/* The 5 statements that took the most time, from pg_stat_statements (only
 * run when the extension exists: the view is not there otherwise). */
static const char top_sql[] =
	"select coalesce(json_agg(q), '[]') from (select calls, round(total_exec_time::numeric, 2) as total_ms, "
	"round(mean_exec_time::numeric, 3) as mean_ms, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) as query "
	"from pg_stat_statements order by total_exec_time desc limit 5) q;\n";

/* What the leader's PostgreSQL answers to sql, one JSON value (new ref),
 * or NULL with a message. */
static json_t *leader_stats(iac_session *s, const json_t *m, const char *sql)
{
	iac_rctx ctx;
	iac_host_result r;
	json_t *out = NULL;
	char *cmd = iac_xasprintf("cd / && runuser -u postgres -- psql -X -A -t -q -v ON_ERROR_STOP=1 -h /run/postgresql "
				  "-p %ld -d postgres",
				  num(m, "port", 5432));
	iac_providers_ctx(&ctx, s->pv, &iac_provider_db, iac_json_str(m, "$addr"), &iac_cancel_requested);
	memset(&r, 0, sizeof(r));
	if (iac_host_exec(&r, ctx.hosts, json_object_get(m, "host"), cmd, sql, 20e3, &iac_cancel_requested) == 0) {
		if (r.status == 0)
			out = json_loads(r.out, JSON_DECODE_ANY, NULL);
		if (!out)
			iac_err_set("psql on %s: %s", iac_host_label(json_object_get(m, "host")), r.err ? r.err : "no answer");
	}
	iac_host_result_free(&r);
	free(cmd);
	return out;
}

/* PgBouncer's SHOW POOLS on one pooler's host, summed over its pools
 * (new ref), or NULL. The password is read on the host from the file
 * db.credentials wrote: it never travels. */
static json_t *pool_usage(iac_session *s, const json_t *p)
{
	iac_rctx ctx;
	iac_host_result r;
	json_t *out = NULL;
	const char *c = iac_json_str(p, "cluster");
	char *cmd = iac_xasprintf("set -a; . /etc/patroni/%s.env || exit 3; PGPASSWORD=$PATRONI_SUPERUSER_PASSWORD "
				  "psql -X -A -F ' ' -h /run/postgresql -p %ld -U postgres -d pgbouncer -c 'show pools'",
				  c, (long)json_integer_value(json_object_get(p, "port")) ?: 6432);
	iac_providers_ctx(&ctx, s->pv, &iac_provider_db, iac_json_str(p, "$addr"), &iac_cancel_requested);
	memset(&r, 0, sizeof(r));
	if (iac_host_exec(&r, ctx.hosts, json_object_get(p, "host"), cmd, NULL, 20e3, &iac_cancel_requested) == 0 &&
	    r.status == 0 && r.out) {
		/* a header line names the columns (their order changes between versions) */
		const char *want[] = { "cl_active", "cl_waiting", "sv_active", "sv_idle", "maxwait" };
		int col[5] = { -1, -1, -1, -1, -1 };
		long sum[5] = { 0 };
		char *save = NULL, *line = strtok_r(r.out, "\n", &save);
		for (int row = 0; line; line = strtok_r(NULL, "\n", &save), row++) {
			char *s2 = NULL, *f = strtok_r(line, " ", &s2);
			/* the admin console's own pool (this very query) is not use */
			if (row && f && !strcmp(f, "pgbouncer"))
				continue;
			for (int k = 0; f; f = strtok_r(NULL, " ", &s2), k++)
				for (int w = 0; w < 5; w++) {
					if (!row && !strcmp(f, want[w]))
						col[w] = k;
					else if (row && col[w] == k)
						sum[w] += strtol(f, NULL, 10);
				}
		}
		out = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:s,s:i}", "member", iac_json_str(json_object_get(p, "host"), "name") ?: "?",
				"clients_active", (json_int_t)sum[0], "clients_waiting", (json_int_t)sum[1],
				"servers_active", (json_int_t)sum[2], "servers_idle", (json_int_t)sum[3],
				"maxwait_seconds", (json_int_t)sum[4], "mode", iac_json_str(p, "mode") ?: "transaction",
				"pool_size", json_is_integer(json_object_get(p, "pool_size")) ?
				json_integer_value(json_object_get(p, "pool_size")) : 20);
	}
	iac_host_result_free(&r);
	free(cmd);
	return out;
}

static json_t *find_by(const json_t *list, const char *key, const char *val)
{
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e) if (!strcmp(iac_json_str(e, key) ?: "", val ? val : "")) return e;
	return NULL;
}

/* One cluster's report (new ref). */
static json_t *cluster_status(iac_session *s, const char *name, const json_t *members)
{
	json_t *rep = json_pack("{s:s,s:n,s:[],s:[]}", "name", name, "leader", "members", "slots");
	json_t *cl = patroni_cluster(members, NULL), *pg = NULL;
	const char *leader = cl ? leader_of(cl) : NULL;
	size_t i;
	json_t *m;
	if (!cl)
		json_object_set_new(rep, "error", json_string("no member's Patroni answers"));
	if (leader) {
		json_object_set_new(rep, "leader", json_string(leader));
		const json_t *lm = member_named(members, leader);
		if (lm && !(pg = leader_stats(s, lm, status_sql)))
			json_object_set_new(rep, "error", json_string(iac_err_last()));
		if (lm && pg && json_integer_value(json_object_get(pg, "pgss")) > 0) {
			json_t *top = leader_stats(s, lm, top_sql);
			json_object_set_new(rep, "top_queries", top ? top : json_string(iac_err_last()));
		} else if (pg && json_is_true(json_object_get(pg, "pgss_loaded"))) {
			json_object_set_new(rep, "top_queries", json_string("pg_stat_statements is loaded but not created: "
									    "CREATE EXTENSION pg_stat_statements (in a migration)"));
		}
	}
	json_array_foreach(members, i, m) {
		const char *mn = iac_json_str(m, "name");
		json_t *pm = cl ? find_by(json_object_get(cl, "members"), "name", mn) : NULL;
		json_t *rm = find_by(json_object_get(pg, "replication"), "name", mn);
		json_t *o = json_pack("{s:s,s:s,s:s,s:s%}", "name", mn, "role", pm ? iac_db_role(iac_json_str(pm, "role")) : "down",
				      "state", pm ? (iac_json_str(pm, "state") ?: "?") : "unreachable", "address", "",
				      (size_t)0);
		json_object_set_new(o, "address", json_sprintf("%s:%ld", addr_of(m), num(m, "port", 5432)));
		if (pm && json_is_integer(json_object_get(pm, "timeline")))
			json_object_set(o, "timeline", json_object_get(pm, "timeline"));
		if (rm) {
			json_object_set(o, "lag_bytes", json_object_get(rm, "lag_bytes"));
			json_object_set(o, "lag_seconds", json_object_get(rm, "lag_seconds"));
			json_object_set(o, "replication", json_object_get(rm, "state"));
		} else if (pm && json_object_get(pm, "lag") && !json_is_string(json_object_get(pm, "lag"))) {
			json_object_set(o, "lag_bytes", json_object_get(pm, "lag"));
		}
		json_array_append_new(json_object_get(rep, "members"), o);
	}
	if (pg) {
		json_array_foreach(json_object_get(pg, "slots"), i, m) {
			json_t *sl = json_deep_copy(m);
			json_object_set_new(sl, "inactive", json_boolean(!json_is_true(json_object_get(m, "active"))));
			json_array_append_new(json_object_get(rep, "slots"), sl);
		}
		json_object_set(rep, "connections", json_object_get(pg, "connections"));
		json_object_set(rep, "max_connections", json_object_get(pg, "max_connections"));
	}
	json_t *pools = entries_of(s, "db.pooler", name), *p;
	if (json_array_size(pools)) {
		json_t *usage = json_array();
		json_array_foreach(pools, i, p) {
			json_t *u = pool_usage(s, p);
			json_array_append_new(usage, u ? u : json_pack("{s:s,s:s}", "member",
								      iac_json_str(json_object_get(p, "host"), "name") ?: "?",
								      "error", "PgBouncer does not answer"));
		}
		json_object_set_new(rep, "poolers", usage);
	}
	json_decref(pools);
	json_decref(cl);
	json_decref(pg);
	return rep;
}

static void human_bytes(char *out, size_t n, double b)
{
	const char *u[] = { "B", "kB", "MB", "GB", "TB" };
	int i = 0;
	while (b >= 1024 && i < 4) {
		b /= 1024;
		i++;
	}
	snprintf(out, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void print_cluster(const json_t *rep)
{
	size_t i;
	json_t *m;
	char buf[32];
	printf("cluster %s: leader %s\n", iac_json_str(rep, "name"), iac_json_str(rep, "leader") ?: "(none)");
	if (iac_json_str(rep, "error"))
		printf("  warning: %s\n", iac_json_str(rep, "error"));
	printf("  %-12s %-8s %-10s %-22s %-3s %12s %11s\n", "member", "role", "state", "address", "tl", "lag_bytes",
	       "lag_seconds");
	json_array_foreach(json_object_get(rep, "members"), i, m) {
		json_t *lb = json_object_get(m, "lag_bytes"), *ls = json_object_get(m, "lag_seconds");
		char lbs[24] = "-", lss[24] = "-", tl[8] = "-";
		if (json_is_number(lb))
			snprintf(lbs, sizeof(lbs), "%.0f", json_number_value(lb));
		if (json_is_number(ls))
			snprintf(lss, sizeof(lss), "%.3f", json_number_value(ls));
		if (json_is_integer(json_object_get(m, "timeline")))
			snprintf(tl, sizeof(tl), "%lld", (long long)json_integer_value(json_object_get(m, "timeline")));
		printf("  %-12s %-8s %-10s %-22s %-3s %12s %11s\n", iac_json_str(m, "name"), iac_json_str(m, "role"),
		       iac_json_str(m, "state"), iac_json_str(m, "address"), tl, lbs, lss);
	}
	if (json_array_size(json_object_get(rep, "slots"))) {
		printf("  slots:\n");
		json_array_foreach(json_object_get(rep, "slots"), i, m) {
			human_bytes(buf, sizeof(buf), json_number_value(json_object_get(m, "retained_bytes")));
			printf("    %-20s %-9s retains %s of WAL%s\n", iac_json_str(m, "name"),
			       json_is_true(json_object_get(m, "inactive")) ? "INACTIVE" : "active", buf,
			       json_is_true(json_object_get(m, "inactive")) ? " (an inactive slot keeps WAL: it fills disks)" : "");
		}
	}
	json_array_foreach(json_object_get(rep, "poolers"), i, m) {
		if (iac_json_str(m, "error"))
			printf("  pooler %s: %s\n", iac_json_str(m, "member"), iac_json_str(m, "error"));
		else
			printf("  pooler %s: clients %lld active, %lld waiting; servers %lld active, %lld idle "
			       "(pool_size %lld, %s); longest wait %llds\n",
			       iac_json_str(m, "member"), (long long)json_integer_value(json_object_get(m, "clients_active")),
			       (long long)json_integer_value(json_object_get(m, "clients_waiting")),
			       (long long)json_integer_value(json_object_get(m, "servers_active")),
			       (long long)json_integer_value(json_object_get(m, "servers_idle")),
			       (long long)json_integer_value(json_object_get(m, "pool_size")), iac_json_str(m, "mode"),
			       (long long)json_integer_value(json_object_get(m, "maxwait_seconds")));
	}
	const json_t *top = json_object_get(rep, "top_queries");
	if (json_is_string(top))
		printf("  top queries: %s\n", json_string_value(top));
	else if (json_array_size(top))
		printf("  top queries (pg_stat_statements, by total time):\n  %8s %12s %10s  %s\n", "calls", "total_ms",
		       "mean_ms", "query");
	json_array_foreach(top, i, m)
		printf("  %8lld %12.2f %10.3f  %s\n", (long long)json_integer_value(json_object_get(m, "calls")),
		       json_number_value(json_object_get(m, "total_ms")), json_number_value(json_object_get(m, "mean_ms")),
		       iac_json_str(m, "query") ?: "");
	if (json_is_integer(json_object_get(rep, "connections")))
		printf("  connections: %lld of %lld\n", (long long)json_integer_value(json_object_get(rep, "connections")),
		       (long long)json_integer_value(json_object_get(rep, "max_connections")));
}

/* -json output: doc (stolen), indented. */
static void print_doc(json_t *doc)
{
	char *text = json_dumps(doc, JSON_INDENT(2));
	printf("%s\n", text);
	free(text);
	json_decref(doc);
}

static int status(iac_session *s, const char *cluster)
{
	json_t *all = clusters_in_state(s, cluster), *list = json_array(), *members;
	const char *name;
	int rc = 0;
	if (!json_object_size(all)) {
		iac_log_error(cluster ? "no cluster named '%s' in state; 'iac state list' shows what there is"
				      : "no database cluster in state%s",
			      cluster ? cluster : "");
		json_decref(all);
		json_decref(list);
		return 1;
	}
	json_object_foreach(all, name, members) {
		json_t *rep = cluster_status(s, name, members);
		if (json_is_null(json_object_get(rep, "leader")))
			rc = 1;
		if (!s->json)
			print_cluster(rep);
		json_array_append_new(list, rep);
	}
	if (s->json)
		print_doc(json_pack("{s:O}", "clusters", list));
	json_decref(all);
	json_decref(list);
	return rc;
}

/* ---- migrate -dry-run --------------------------------------------------- */

static void print_phase(const json_t *rep, const char *cluster)
{
	size_t i;
	json_t *e;
	printf("migration %s (%s, cluster %s): %s file %s, %s\n", iac_json_str(rep, "name"), iac_json_str(rep, "phase"),
	       cluster, iac_json_str(rep, "phase"), iac_json_str(rep, "file"), iac_json_str(rep, "state"));
	if (iac_json_str(rep, "error"))
		printf("  error: %s\n", iac_json_str(rep, "error"));
	if (iac_json_str(rep, "waits"))
		printf("  %s\n", iac_json_str(rep, "waits"));
	json_array_foreach(json_object_get(rep, "statements"), i, e) {
		const char *tx = iac_json_str(e, "transaction");
		char where[64];
		if (!strcmp(tx, "none"))
			snprintf(where, sizeof(where), "outside a transaction");
		else if (!strcmp(tx, "own"))
			snprintf(where, sizeof(where), "in its own transaction");
		else
			snprintf(where, sizeof(where), "in transaction %s", tx + 6);
		printf("  %2lld. %s%s\n      lock: %s%s%s; %s\n", (long long)json_integer_value(json_object_get(e, "n")),
		       json_is_true(json_object_get(e, "done")) ? "(done) " : "", iac_json_str(e, "sql"),
		       iac_json_str(e, "lock"), iac_json_str(e, "table") ? " on " : "", iac_json_str(e, "table") ?: "", where);
		if (iac_json_str(e, "note"))
			printf("      note: %s\n", iac_json_str(e, "note"));
	}
}

/* 1 when r is one of the migrations named (all when none are). */
static int wanted(const iac_rconf *r, const iac_strlist *pos)
{
	if (strcmp(r->type, "db.migration") && strcmp(r->type, "db.migration_contract"))
		return 0;
	if (pos->n < 2)
		return 1;
	for (size_t i = 1; i < pos->n; i++)
		if (!strcmp(pos->items[i], r->name))
			return 1;
	return 0;
}

static int migrate_dry_run(iac_session *s, const iac_strlist *pos)
{
	json_t *list = json_array();
	int rc = 0, n = 0;
	if (iac_session_load(s) < 0) {   /* the error is printed */
		json_decref(list);
		return 1;
	}
	iac_session_providers(s);
	for (size_t i = 0; i < s->cfg->nres; i++) {
		iac_rconf *r = s->cfg->res[i];
		iac_rctx ctx;
		json_t *rep = NULL;
		if (!wanted(r, pos))
			continue;
		n++;
		const char *phase = strcmp(r->type, "db.migration") ? "contract" : "expand";
		if (iac_providers_ctx(&ctx, s->pv, &iac_provider_db, r->addr, &iac_cancel_requested) < 0 ||
		    iac_db_migration_dry_run(&rep, &ctx, r->attrs, phase) < 0) {
			iac_log_error("%s: %s", r->addr, iac_err_last());
			rc = 1;
			continue;
		}
		if (!strcmp(phase, "contract") && strcmp(iac_json_str(rep, "state"), "applied"))
			json_object_set_new(rep, "waits", json_sprintf("runs only once '%s' has deployed after the expand "
								       "and its rollback window has passed ('iac plan' "
								       "says how long is left)",
								       iac_json_str(r->attrs, "deployment") ?: "?"));
		if (!s->json)
			print_phase(rep, iac_json_str(r->attrs, "cluster") ?: "?");
		json_array_append_new(list, rep);
	}
	if (!n) {
		iac_log_error(pos->n > 1 ? "no migration of that name in main.lua" : "no migration in main.lua");
		rc = 1;
	} else if (s->json) {
		print_doc(json_pack("{s:O,s:b}", "migrations", list, "dry_run", 1));
	} else if (json_array_size(list)) {
		printf("dry run: nothing was executed\n");
	}
	json_decref(list);
	return rc;
}

/* iac db maintain [CLUSTER] [-force]: the due tasks of every db.maintenance
 * in state (maintain.c); one line per task, or -json. */
static int maintain(iac_session *s, const char *cluster, int force)
{
	json_t *entries = entries_of(s, "db.maintenance", cluster), *rep = NULL, *t;
	iac_rctx ctx;
	size_t i;
	int rc;
	if (!json_array_size(entries)) {
		iac_log_error(cluster ? "no maintenance for cluster '%s' in state; declare one with maintenance \"NAME\" "
					"{ db = ..., refresh = {...}, reindex = {...} } and apply"
				      : "no maintenance in state%s; declare one with maintenance \"NAME\" { db = ..., refresh "
					"= {...}, reindex = {...} } and apply",
			      cluster ? cluster : "");
		json_decref(entries);
		return 1;
	}
	iac_providers_ctx(&ctx, s->pv, &iac_provider_db, "db.maintenance", &iac_cancel_requested);
	rc = iac_db_maintain(&rep, &ctx, entries, force) < 0;
	if (s->json) {
		json_t *doc = json_pack("{s:O}", "tasks", rep);
		char *text = json_dumps(doc, JSON_INDENT(2));
		printf("%s\n", text);
		free(text);
		json_decref(doc);
	} else {
		json_array_foreach(rep, i, t) {
			const char *res = iac_json_str(t, "result") ?: "?";
			printf("%s: %s %s: %s", iac_json_str(t, "maintenance") ?: "?", iac_json_str(t, "kind") ?: "",
			       iac_json_str(t, "target") ?: "", res);
			if (!strcmp(res, "done"))
				printf(" (%.2fs)", json_number_value(json_object_get(t, "seconds")));
			else if (!strcmp(res, "not due"))
				printf(" (next in %.0fs)", json_number_value(json_object_get(t, "next_in_seconds")));
			else if (!strcmp(res, "busy"))
				printf(" (another runner has it)");
			printf("\n");
			if (!strcmp(res, "failed"))
				iac_log_error("%s", iac_json_str(t, "error") ?: "?");
		}
	}
	json_decref(rep);
	json_decref(entries);
	return rc;
}

int iac_db_cmd(int argc, char **argv)
{
	iac_session s;
	iac_strlist pos = { 0 };
	const char *to = NULL;
	int rc = 1, dry_run = 0, force = 0;
	const iac_opt own[] = {
		{ "force", IAC_OPT_BOOL, &force, "maintain: run every task now, due or not" },
		{ "to", IAC_OPT_STRING, &to, "switchover: the member to lead (default: Patroni picks)" },
		{ "dry-run", IAC_OPT_BOOL, &dry_run, "migrate: show the pending statements and their locks, run nothing" },
		{ NULL, 0, NULL, NULL },
	};
	iac_session_init(&s, "db");
	if (iac_session_args_own(&s, IAC_F_JSON | IAC_F_VARS, own, argc, argv, &pos) < 0)
		goto out;
	if (!pos.n || (strcmp(pos.items[0], "switchover") && strcmp(pos.items[0], "status") &&
		       strcmp(pos.items[0], "migrate") && strcmp(pos.items[0], "maintain"))) {
		static const char *const subs[] = { "switchover", "status", "migrate", "maintain" };
		const char *pick = pos.n ? iac_suggest(pos.items[0], subs, 4) : NULL;
		if (pos.n)
			iac_log_error("unknown subcommand 'db %s'%s%s%s", pos.items[0], pick ? "; did you mean '" : "",
				      pick ? pick : "", pick ? "'?" : "");
		iac_log_error("usage: iac db switchover CLUSTER [-to MEMBER] | iac db status [CLUSTER] [-json] | "
			      "iac db migrate -dry-run [NAME...] | iac db maintain [CLUSTER] [-force]");
		goto out;
	}
	if (!strcmp(pos.items[0], "migrate")) {
		if (!dry_run)
			iac_log_error("migrations run with 'iac apply' (in order with their deployments); "
				      "'iac db migrate -dry-run' shows what they would run and the locks it takes");
		else
			rc = migrate_dry_run(&s, &pos);
		goto out;
	}
	if (!strcmp(pos.items[0], "switchover") && pos.n != 2) {
		iac_log_error("usage: iac db switchover CLUSTER [-to MEMBER]");
		goto out;
	}
	if (iac_session_backend(&s, 0) < 0 || iac_session_open_state(&s, 0) < 0)
		goto out;
	s.pv = iac_providers_new(iac_state_extra(s.st, "providers"), NULL, ".");
	if (!strcmp(pos.items[0], "switchover"))
		rc = switchover(&s, pos.items[1], to);
	else if (!strcmp(pos.items[0], "maintain"))
		rc = maintain(&s, pos.n > 1 ? pos.items[1] : NULL, force);
	else
		rc = status(&s, pos.n > 1 ? pos.items[1] : NULL);
out:
	iac_session_close(&s);
	iac_strlist_free(&pos);
	return rc;
}

void iac_db_cmd_help(void)
{
	printf("\nusage: iac db switchover CLUSTER [-to MEMBER] [-json]\n"
	       "       iac db status [CLUSTER] [-json]      (also: iac status db [CLUSTER])\n"
	       "       iac db migrate -dry-run [NAME...] [-json]\n"
	       "       iac db maintain [CLUSTER] [-force] [-json]\n\n"
	       "switchover asks Patroni to hand the leader role of CLUSTER to MEMBER (or\n"
	       "a replica it picks) and waits until the new leader runs. status shows each\n"
	       "member's role, replication lag (bytes and seconds), the leader's slots and\n"
	       "the WAL they retain (inactive slots flagged), and connections. Both read\n"
	       "state only; neither changes it. migrate -dry-run prints each migration's\n"
	       "pending statements, the lock each takes and the transaction it runs in,\n"
	       "from main.lua and schema_migrations on the leader; it executes nothing.\n"
	       "maintain runs the due tasks of each maintenance in state (REFRESH\n"
	       "MATERIALIZED VIEW CONCURRENTLY, REINDEX TABLE CONCURRENTLY; -force: all),\n"
	       "recording each run in the database's iac_maintenance table; for cron.\n");
	iac_session_usage(IAC_F_JSON);
	printf("  -to MEMBER               switchover: the member to lead\n");
	printf("  -dry-run                 migrate: show, run nothing\n");
	printf("  -force                   maintain: run every task now\n");
}
