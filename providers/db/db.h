/* db: PostgreSQL 15 clusters with Patroni 3.0 on etcd, and HAProxy's
 * read/write split in front of them.
 *
 * Types:
 *   db.patroni_node  one PostgreSQL server run by Patroni on a host; which
 *                    node leads is Patroni's business (bootstrap, failover,
 *                    switchover): iac observes the role (computed, never a
 *                    diff) and never "fixes" it back.
 *   db.credentials   the cluster's passwords on a member's host, for Patroni
 *                    (the only place they are; sensitive attributes)
 *   db.proxy         HAProxy on a host: the rw port goes to the node whose
 *                    Patroni answers /primary, the ro port round robin to
 *                    those answering /replica?lag=MAX (the leader when none).
 *   db.pooler        PgBouncer on a member, pooling connections to its PostgreSQL
 *   db.migration     a SQL file applied once to the leader, recorded with its
 *                    checksum in schema_migrations, lock_timeout retried
 *   db.partitions    range partitions of a table kept ahead of need and
 *                    trimmed by retention (partition.c)
 *   db.maintenance   materialized views refreshed after migrations; views
 *                    and indexes kept up by `iac db maintain` (maintain.c)
 * Commands: `iac db switchover CLUSTER [-to NODE]`, `iac db status
 * [CLUSTER]` (also `iac status db [CLUSTER]`).
 * The Lua keyword `postgres_cluster` (modules/postgres_cluster.lua) makes
 * these resources; see docs/db.md.
 */
#ifndef IAC_PROVIDERS_DB_DB_H
#define IAC_PROVIDERS_DB_DB_H

#include <jansson.h>

#include "iac/provider/provider.h"

extern const iac_rtype iac_db_node_type;
extern const iac_rtype iac_db_creds_type;
extern const iac_rtype iac_db_proxy_type;
extern const iac_rtype iac_db_migration_type;
extern const iac_rtype iac_db_pooler_type;
extern const iac_rtype iac_db_exporter_type;   /* node.c: prometheus-postgres-exporter per member */
extern const iac_rtype iac_db_lag_gate_type;   /* gate.c: a deployment gate on replication lag */
extern const iac_rtype iac_db_partitions_type;
extern const iac_rtype iac_db_maintenance_type;
extern const iac_provider iac_provider_db;

/* A call to Patroni's REST API at http://ADDR:PORT/PATH. 0 when it
 * answered (any status: *status), *out the decoded JSON body (new ref,
 * may be NULL); IAC_ERR when it could not be reached. No retries: callers
 * poll. */
int iac_db_rest(json_t **out, long *status, const char *addr, long port, const char *method, const char *path,
		const json_t *body, double timeout_ms, const volatile int *cancel);

/* Patroni's role words ("master", "primary", "standby_leader", "replica")
 * as iac shows them: "leader" or "replica" (others unchanged). */
const char *iac_db_role(const char *patroni_role);

/* 1 when s is a safe name for files and shell words ([A-Za-z0-9_.-]+). */
int iac_db_name_ok(const char *s);

/* The reach of a host attribute during plan (an unreachable host is
 * reported before anything changes). */
int iac_db_probe(const iac_rctx *ctx, const json_t *attrs);

/* The daemons (Patroni, PgBouncer, HAProxy) are known by a pidfile on
 * their resource's host (attrs "host"):
 * iac_db_pid: *pid the live process the file's first line names, 0 when
 * none; IAC_ERR when the host cannot tell.
 * iac_db_read_daemon: a read() that finds prior while that process lives.
 * iac_db_stop: signal sig ("TERM", "INT"), KILL after wait_s seconds, then
 * run `then` (a shell command, may be NULL); gone already is success. */
int iac_db_pid(long *pid, const iac_rctx *ctx, const json_t *attrs, const char *pidfile);
int iac_db_read_daemon(json_t **out, const iac_rctx *ctx, const json_t *prior, const char *pidfile);
int iac_db_stop(const iac_rctx *ctx, const json_t *attrs, const char *pidfile, const char *sig, int wait_s,
		const char *then);

/* obj's config_sha256 := SHA-256 of text (the rendered config). */
void iac_db_set_sha(json_t *obj, const char *text);

/* SQL on the leader (providers/db/sql.c).
 * iac_db_leader: the entry of members ([{host, name, port, api_port}]) that
 * Patroni reports as the running leader (borrowed from members), asking
 * each member's GET /cluster in turn; NULL with a message naming the
 * cluster when none answers with one.
 * iac_db_psql: psql as postgres on member's host over its socket, sql on
 * stdin, in one transaction when one_tx (psql -1). 0 when psql ran (r->status
 * its exit status, r->out/r->err owned, freed by iac_db_sql_result_free);
 * IAC_ERR when the host could not be reached. */
typedef struct iac_db_sql_result {
	int status;
	char *out, *err;
} iac_db_sql_result;
const json_t *iac_db_leader(const iac_rctx *ctx, const json_t *members, const char *cluster);
int iac_db_psql(iac_db_sql_result *r, const iac_rctx *ctx, const json_t *member, const char *database,
		const char *sql, int one_tx);
void iac_db_sql_result_free(iac_db_sql_result *r);
/* iac_db_psql until it succeeds, retrying only lock timeouts (SQLSTATE
 * 55P03: the SQL set lock_timeout) up to retries more times, backing off
 * 0.5 s doubling to 8 s, with a progress line each time. 0 with *r filled
 * (status 0); IAC_ERR with a message "WHAT failed on HOST: psql's error"
 * (r freed). */
int iac_db_psql_retry(iac_db_sql_result *r, const iac_rctx *ctx, const json_t *member, const char *database,
		      const char *sql, int one_tx, long retries, const char *what);
/* The same, calling before(ud) ahead of every try (IAC_ERR from it stops
 * with its message): a migration drops an INVALID index a failed
 * concurrent build left. */
int iac_db_psql_retry_each(iac_db_sql_result *r, const iac_rctx *ctx, const json_t *member, const char *database,
			   const char *sql, int one_tx, long retries, const char *what, int (*before)(void *ud),
			   void *ud);

/* 1 when s is a plain SQL name or schema.name (letters, digits, '_', not
 * starting with a digit, at most 63 per part): safe to put in a statement
 * unquoted. */
int iac_db_qualified_name_ok(const char *s);

/* `iac db maintain` (maintain.c): runs the due tasks (all when force) of
 * the db.maintenance entries (state attributes) on their leaders.
 * *report: [{maintenance, kind, target, result: done|not due|busy|failed,
 * seconds, next_in_seconds, error}] (new ref). IAC_ERR when a task failed. */
int iac_db_maintain(json_t **report, const iac_rctx *ctx, const json_t *entries, int force);

int iac_db_cmd(int argc, char **argv);
void iac_db_cmd_help(void);

#endif
