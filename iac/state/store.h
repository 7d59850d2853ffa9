/* store: where a state's snapshot and journal live when that is not the
 * local `.iac/` directory (state.c keeps that case itself: files, fsync,
 * group commit on one fd). A store is a function table, like curl's
 * backends; iac/state/etcd_store.c is the one there is.
 *
 * The contract state.c relies on:
 * - read() returns the snapshot and the journal as one consistent picture
 *   (never a snapshot of one moment with the journal of another);
 * - append() is durable when it returns, and all-or-nothing;
 * - write() replaces the snapshot only if nobody else replaced it since
 *   this store read or wrote it (compare-and-swap), and drops the journal
 *   records the new snapshot holds in the same step; IAC_ECONFLICT, with a
 *   message saying who wrote in between, when someone did;
 * - both refuse (IAC_ELOCKED, message set) once this process has lost the
 *   lock it writes under: nothing a new holder wrote is overwritten.
 * Errors name the store, so messages read "etcd 'iac/prod': ...".
 */
#ifndef IAC_STATE_STORE_H
#define IAC_STATE_STORE_H

#include <stddef.h>

typedef struct iac_store iac_store;

typedef struct {
	/* Snapshot text (*snap NULL when there is none yet) and journal text
	 * (records one per line, oldest first; *journal NULL when empty).
	 * Both malloc'd, caller frees. */
	int (*read)(iac_store *s, char **snap, size_t *snap_len, char **journal, size_t *journal_len);
	/* Journal lines (each ending in '\n') holding records up to `upto`. */
	int (*append)(iac_store *s, const char *lines, size_t len, unsigned long long upto);
	/* Replace the snapshot with text (which holds records up to `upto`;
	 * `serial` is its serial, for messages), dropping journal records up to
	 * `upto`. */
	int (*write)(iac_store *s, const char *text, size_t len, long serial, unsigned long long upto);
} iac_store_ops;

struct iac_store {
	const iac_store_ops *ops;
	const char *label;    /* "etcd 'iac/prod'" for messages */
};

#endif
