/* state: what iac believes exists, kept crash-safe.
 *
 * Where: the configuration's `.iac/` directory (below), or a store with
 * the same two parts and the same guarantees (iac/state/store.h: etcd).
 * On disk, in the configuration's `.iac/` directory (mode 0700):
 *   state.json     the snapshot (mode 0600), replaced atomically: temp file,
 *                  fsync, rename, fsync of the directory. Never half-written.
 *   state.journal  an append-only log of changes made since the snapshot,
 *                  one JSON object a line, fdatasync'ed before the change is
 *                  reported done (group commit: concurrent writers share one
 *                  fsync). A torn last line (kill -9 mid-write) is ignored.
 * Opening replays the journal over the snapshot, so every resource that
 * completed before a crash is known, and every operation that had *started*
 * is known too (status "pending"): the next plan checks those against
 * reality instead of guessing. See docs/state.md.
 *
 * A resource entry is a JSON object:
 *   {"address","type","name","module","attributes":{...},
 *    "sensitive_attributes":[...],"triggers":{...},"dependencies":[...],
 *    "create_before_destroy":bool,
 *    "pending":{"action":"create|update|delete","planned":{...},"started":T,
 *               "groups":[{"pgid","start","boot"}...]}}   (commands it started)
 * Sensitive attribute values are stored redacted (iac_value_redact()).
 *
 * Threads: iac_state_put/remove/begin may be called from worker threads at
 * once; everything else from one thread.
 */
#ifndef IAC_STATE_STATE_H
#define IAC_STATE_STATE_H

#include <jansson.h>
#include <stddef.h>

typedef struct iac_state iac_state;

#define IAC_STATE_FORMAT 1

/* Open the state in dir/.iac (nothing is created until the first write).
 * Missing state = empty state with a fresh lineage. */
int iac_state_open(iac_state **out, const char *dir);
/* The same, with snapshot and journal in a store (iac/state/store.h: etcd)
 * instead of dir/.iac; `store` is borrowed and must outlive the state.
 * `dir` is still the configuration's directory (iac_state_dir()). Errors
 * of the store come back as they are (IAC_ECONFLICT, IAC_ELOCKED...). */
struct iac_store;
int iac_state_open_store(iac_state **out, struct iac_store *store, const char *dir);
void iac_state_free(iac_state *st);

const char *iac_state_lineage(const iac_state *st);
/* 1 when nothing was ever written (no snapshot, no journal). */
int iac_state_is_new(const iac_state *st);
/* Adopt a lineage (only for a new state: a saved plan made against "no
 * state yet" names the lineage the state will have). */
int iac_state_adopt_lineage(iac_state *st, const char *lineage);
long iac_state_serial(const iac_state *st);
/* Journal records replayed at open (non-zero after an interrupted run). */
size_t iac_state_replayed(const iac_state *st);
/* Path of the .iac directory. */
const char *iac_state_dir(const iac_state *st);

/* Entry for an address (borrowed, valid until it is replaced), or NULL. */
json_t *iac_state_get(const iac_state *st, const char *addr);
/* All addresses, sorted (caller frees the array, not the strings, which
 * stay valid until the state changes). */
const char **iac_state_addresses(const iac_state *st, size_t *n);
size_t iac_state_count(const iac_state *st);

/* Give the entry at `from` the address `to` (same type; name and module
 * from `to`), and make entries that depended on it depend on `to`. durable:
 * journaled like any change (iac state mv, moved blocks when applying);
 * else in memory only, for a plan that must leave state as it is.
 * IAC_ENOTFOUND / IAC_ECONFLICT (to is taken) / IAC_ERR with a message. */
int iac_state_move(iac_state *st, const char *from, const char *to, int durable);

/* Record a finished resource (steals entry). Durable when it returns. */
int iac_state_put(iac_state *st, json_t *entry);
/* Forget a resource. Durable when it returns. */
int iac_state_remove(iac_state *st, const char *addr);
/* Record that an operation is starting on addr (kept until put/remove).
 * `planned` is borrowed (copied). Durable when it returns. */
int iac_state_begin(iac_state *st, const char *addr, const char *type,
		    const char *action, const json_t *planned);
/* The same; for an object that state does not hold yet, `triggers` (state
 * form, borrowed, may be NULL) is recorded with the pending marker, so a
 * create interrupted after it ran is adopted with the triggers it ran
 * with, not re-run because "triggers changed". */
int iac_state_begin_with(iac_state *st, const char *addr, const char *type,
			 const char *action, const json_t *planned, const json_t *triggers);
/* Clear a pending marker without other change (a failed update/delete). */
int iac_state_end(iac_state *st, const char *addr);

/* Record with addr's pending marker the process group of a command its
 * operation starts (`group`: {"pgid","start","boot"}, borrowed, appended to
 * pending.groups), so the next run kills what a run killed with its guard
 * left running before anything reruns. Durable when it returns. */
int iac_state_note_group(iac_state *st, const char *addr, const json_t *group);

/* Outputs: {"name": {"value": V, "sensitive": bool}} (borrowed / stolen). */
json_t *iac_state_outputs(const iac_state *st);
int iac_state_set_outputs(iac_state *st, json_t *outputs);

/* Free-form sections other subsystems keep in state ("deployments",
 * "flags", "history"); borrowed / stolen. Durable when set returns. */
json_t *iac_state_extra(const iac_state *st, const char *key);
int iac_state_set_extra(iac_state *st, const char *key, json_t *value);

/* Check before every write that this process may still write: `ok` returns
 * 0 once its lock was taken over (`iac rollback -force`); from then on
 * every write fails with a message naming that, and nothing the new lock
 * holder wrote is overwritten. */
void iac_state_set_guard(iac_state *st, int (*ok)(void *ud), void *ud);

/* What iac_history_add() calls with each event once it is in state (the
 * session's: a git revision, iac/state/history.h). fn may be NULL. */
void iac_state_set_recorder(iac_state *st, void (*fn)(void *ud, const iac_state *st, const json_t *event),
			    void *ud);
void iac_state_run_recorder(const iac_state *st, const json_t *event);

/* 1 once a journal write failed (the store unreachable past its retries,
 * the lock lost, a full disk): every later write fails the same way, so an
 * apply must not start operations it could not record. When 1, the
 * thread's error message (iac_err_last) is that write's. */
int iac_state_write_failed(iac_state *st);

/* Write a new snapshot (serial + 1) and empty the journal. */
int iac_state_flush(iac_state *st);
/* Seconds the last flush took (to pace periodic snapshots). */
double iac_state_last_flush_ms(const iac_state *st);
/* 1 when there are changes not yet in the snapshot. */
int iac_state_dirty(const iac_state *st);

/* Replace everything (resources, outputs, extra, lineage) with doc's, as
 * `iac state push` and `iac init -migrate-state` do; checked like a
 * snapshot read back. The serial becomes max(ours, doc's); the next flush
 * writes it (serial + 1). doc is borrowed. */
int iac_state_replace(iac_state *st, const json_t *doc);
/* sha256 (hex, caller frees) of what the state holds (resources, outputs,
 * extra, lineage), not of when it was written: equal on both sides of a
 * migration. */
char *iac_state_checksum(const iac_state *st);

/* The whole state as a JSON document (as state.json would hold it). */
json_t *iac_state_to_json(const iac_state *st);

#endif
