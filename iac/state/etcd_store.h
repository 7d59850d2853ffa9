/* etcd_store: state, journal and lock kept in etcd (`backend "etcd"`), so
 * that every terminal and CI runner of a team works on one state.
 *
 * Keys under the prefix P (`prefix = "iac/prod"`):
 *   P/state/manifest            {"format","lineage","serial","journal_seq",
 *                                "gen","chunks","size","sha256","by":{...}}
 *   P/state/chunk/GEN/NNNNNN    the snapshot text in pieces of at most
 *                                IAC_ETCDB_CHUNK bytes (etcd refuses requests
 *                                over 1.5 MiB by default; 10,000 resources
 *                                are several MiB)
 *   P/state/journal/SEQ         one batch of journal records (up to SEQ,
 *                                20 digits so keys sort by sequence)
 *   P/lock/LEASE                etcd's lock layout (`etcdctl lock P/lock`
 *                                excludes iac and back); the value says who
 *   P/history/...               revisions (iac/state/backend.c)
 *
 * Guarantees (store.h): a read is one range at one store revision, so a
 * reader never sees two versions mixed. A new snapshot is written as chunks
 * under a new GEN first, then ONE transaction swaps the manifest (compare:
 * its mod_revision is what we read or wrote last) and drops the journal
 * records the snapshot holds; old chunks go afterwards (a reader at an older
 * revision still sees them). Every write of a lock holder is fenced: the
 * transaction also compares the create revision of its own lock key, so a
 * holder that lost its lease (killed network, `iac force-unlock`, `iac
 * rollback -force`) can write nothing more.
 *
 * Failover: the client tries the next endpoint when one cannot be reached.
 * A request that failed without an answer (a member killed mid-request, a
 * leader election) is retried for up to `retry_ms`; every write here is
 * safe to repeat (same key, same value; a manifest swap that did land is
 * recognised by its GEN). A cluster without quorum makes every request time
 * out: the command stops with a message that says nothing was half-written.
 *
 * The store's calls may come from two threads (the journal's group-commit
 * writer, a periodic snapshot): they take turns on the one connection. The
 * lock calls are for the command's main thread.
 */
#ifndef IAC_STATE_ETCD_STORE_H
#define IAC_STATE_ETCD_STORE_H

#include <jansson.h>

#include "iac/etcd/etcd.h"
#include "iac/state/store.h"

#define IAC_ETCDB_CHUNK (768 * 1024)

typedef struct iac_etcdb iac_etcdb;

typedef struct {
	const char *endpoints;     /* comma-separated URLs */
	const char *prefix;        /* "iac/prod" (no trailing slash needed) */
	double lock_ttl_ms;        /* lease of the lock; <= 0: 15 s */
	double timeout_ms;         /* per request; <= 0: 5 s */
	double retry_ms;           /* retrying requests that got no answer; <= 0: 15 s */
	const char *username, *password;   /* etcd auth (password kept out of output) */
	const char *cacert, *cert, *key;   /* TLS files for https:// endpoints */
} iac_etcdb_opts;

/* Connect (nothing is read yet). The options are copied. */
int iac_etcdb_open(iac_etcdb **out, const iac_etcdb_opts *o);
/* Releases the lock if held, then frees. NULL is fine. */
void iac_etcdb_free(iac_etcdb *b);

/* The store for iac_state_open_store() (owned by b). */
iac_store *iac_etcdb_store(iac_etcdb *b);
/* Who writes (user, host, pid, command: borrowed, copied), recorded in the
 * manifest so a writer that lost a race learns who won. */
void iac_etcdb_set_actor(iac_etcdb *b, const json_t *who);
const char *iac_etcdb_prefix(const iac_etcdb *b);
iac_etcd *iac_etcdb_client(iac_etcdb *b);

/* Take the lock, waiting up to wait_ms (0: once) behind earlier askers, in
 * the order they asked. `info` (borrowed) is what others see. IAC_ELOCKED
 * with a message naming the holder and the lock ID. */
int iac_etcdb_lock(iac_etcdb *b, const json_t *info, double wait_ms);
/* Take the lock from its holder (`iac rollback -force`): the holder's lease
 * is revoked, so its writes fail from then on. *out_preempted: its info
 * (new ref, NULL when nobody held it). */
int iac_etcdb_preempt(json_t **out_preempted, iac_etcdb *b, const json_t *info);
void iac_etcdb_unlock(iac_etcdb *b);
/* 1 while this handle holds the lock (its lease is renewed). */
int iac_etcdb_still_held(iac_etcdb *b);
/* The lock ID while held (the lease, in hex), else NULL. */
const char *iac_etcdb_lock_id(const iac_etcdb *b);
/* {"holder": INFO|null, "queue": [INFO...]}; INFO gets "id" and "ttl". */
int iac_etcdb_lock_status(json_t **out, iac_etcdb *b);
/* Remove the holder or waiter with this ID and revoke its lease.
 * IAC_ENOTFOUND when there is none. *out_info: what it was (new ref). */
int iac_etcdb_force_unlock(json_t **out_info, iac_etcdb *b, const char *id);

/* Run fn until it answers or fails for a reason other than an unanswered
 * request, for up to retry_ms (the failover rule above). */
int iac_etcdb_retry(iac_etcdb *b, int (*fn)(iac_etcdb *b, void *arg), void *arg);
/* A fenced write: compare (stolen array, may be empty) plus this handle's
 * lock, then success (stolen). 0 done; IAC_ELOCKED when the lock was lost;
 * IAC_ECONFLICT when another compare failed. */
int iac_etcdb_txn(iac_etcdb *b, json_t *compare, json_t *success);

#endif
