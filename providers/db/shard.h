/* shard: what db.shard_map (shard.c) and its slot moves (shard_move.c)
 * share. Private to providers/db.
 *
 * A shard map places each row of one table on one cluster of a set: the
 * row's slot is md5(key as text), its first 4 bytes big-endian, times
 * `slots`, shifted right by 32; the slot's cluster is the owner, on a ketama
 * ring of the clusters' names (iac/core/ketama.h), of the slot's midpoint in
 * the 32-bit hash space. Each cluster keeps the truth about its slots in
 * iac_shard_state (map, slot, state, peer): no row means "mine", 'moved'
 * means "not mine", and a move goes through 'copying' and 'fenced' on the
 * source and 'incoming' on the target. A trigger on the table refuses
 * writes to slots that are not the cluster's (moved, fenced, incoming) and
 * logs the keys written to a 'copying' slot, for the catch-up.
 */
#ifndef IAC_PROVIDERS_DB_SHARD_H
#define IAC_PROVIDERS_DB_SHARD_H

#include <jansson.h>

#include "iac/provider/provider.h"

/* One map and one run: borrowed strings from the resource's attributes. */
typedef struct iac_db_shard {
	const iac_rctx *ctx;
	const char *map;       /* the map's name */
	const char *table;
	const char *key;
	const char *database;
	long slots;
	/* publish the map with slot `slots[i]` given to `to` for each i of
	 * `n` (called between fence and accept); 0 or IAC_ERR */
	int (*publish)(struct iac_db_shard *s, const long *slots, size_t n, const char *to);
	void *ud;
	double pause_ms;       /* longest write pause of the run's moves */
	long moved_rows;
	long moved_slots;
} iac_db_shard;

extern const iac_rtype iac_db_shard_type;

/* Installs (idempotently) the state and log tables, the slot function and
 * the guard trigger on `leader`'s database, then makes the cluster's state
 * agree with `owned` (slots[owned[i]] != 0 when the cluster owns slot i):
 * a group stopped before its map flip is rolled back (the source accepts
 * writes again, the target's copy is deleted), one stopped after it is
 * finished (the source's rows are deleted). */
int iac_db_shard_setup(const iac_db_shard *s, const char *cluster, const json_t *leader, const unsigned char *owned);

/* Moves slots[0..n-1] from cluster `from` (leader mf) to `to` (leader mt):
 * copy, catch up under a fence, verify counts and checksums on both sides,
 * publish, accept on the target, delete on the source. On a verification
 * failure the group is rolled back and IAC_ERR returned. */
int iac_db_shard_move(iac_db_shard *s, const char *from, const json_t *mf, const char *to, const json_t *mt,
		      const long *slots, size_t n);

/* transit[i] := 1 for slots of this map in a move on the cluster (copying,
 * fenced, incoming; others left as they are, so calls for several clusters
 * add up); not_owned[i] := 1 for slots the cluster says are not its own
 * (moved, incoming); both sized s->slots. IAC_ENOTFOUND when the cluster
 * has no slot state (never set up). */
int iac_db_shard_read(unsigned char *transit, unsigned char *not_owned, const iac_db_shard *s, const char *cluster,
		      const json_t *leader);

/* Drops the trigger and this map's rows in the state and log tables (the
 * table's rows stay). */
int iac_db_shard_drop(const iac_db_shard *s, const char *cluster, const json_t *leader);

#endif
