/* migration: what providers/db/migration.c shares with the rest of the db
 * provider (the `iac db migrate -dry-run` command, the provider's
 * finalize). Private to providers/db.
 */
#ifndef IAC_PROVIDERS_DB_MIGRATION_H
#define IAC_PROVIDERS_DB_MIGRATION_H

#include <jansson.h>

#include "iac/provider/provider.h"

struct iac_config;

extern const iac_rtype iac_db_migration_contract_type;

/* The statements of one phase ("expand" or "contract") of a migration
 * whose attributes (db.migration or db.migration_contract, configured
 * values) are attrs, as they would run now: *out (new ref) is
 * {name, phase, file, checksum, state: "applied"|"pending"|"partly applied",
 *  statements: [{n, sql, lock, table, transaction: "group N"|"none"|"own",
 *  done, note}]}. Reads schema_migrations on the leader; runs nothing and
 * creates nothing (not even the table). */
int iac_db_migration_dry_run(json_t **out, const iac_rctx *ctx, const json_t *attrs, const char *phase);

/* The provider's finalize(): a deployment named by a migration's
 * `deployment` waits for that migration (its expand runs before the idle
 * colour starts). Through the graph only: deploy knows nothing of db. */
int iac_db_migration_finalize(struct iac_config *cfg);

#endif
