/* history: the change history. Every apply, destroy, rollback, flag
 * change, state rm/push and force-unlock is an event:
 *   - kept in state ("extra.history", newest last, capped), for commands
 *     that look back (iac rollback);
 *   - and, through the recorder the session installs, a revision in a git
 *     repository written with libgit2 (gitlog.h): `.iac/history.git` for
 *     the local backend; for etcd the revisions' packs live in etcd under
 *     PREFIX/history/ (so every runner sees one history) with
 *     `.iac/history.git` as the local mirror, pushed to `history = {
 *     remote = URL }` when set. A history problem never fails a command:
 *     it is a warning, and a push left undone goes with the next one.
 */
#ifndef IAC_STATE_HISTORY_H
#define IAC_STATE_HISTORY_H

#include <jansson.h>

#include "iac/state/backend.h"
#include "iac/state/state.h"

#define IAC_HISTORY_MAX 200

/* Set "at" (RFC 3339, now), "user" ($USER, else the uid's name) and "host"
 * (gethostname) on event: who did what, from where, for every revision. */
void iac_history_stamp(json_t *event);

/* Append an event (stolen) after adding "at" (RFC 3339), "user" and
 * "host", then run the state's recorder. Durable when it returns. */
int iac_history_add(iac_state *st, json_t *event);

/* Push b's history to its remote (history = { remote = URL }) when an
 * earlier push failed; *out_pushed = 1 when it went this time. Nothing to
 * do (no remote, nothing pending) is 0 with *out_pushed = 0, and costs no
 * connection. A failure leaves it pending. */
int iac_history_push_pending(int *out_pushed, iac_backend *b);

/* The command line as history records it: values of -var and
 * -backend-config hidden (they may be secrets). Set once by main(). */
void iac_history_set_argv(int argc, char **argv);

/* One revision of st (borrowed) with `event` (borrowed) in b's history.
 * 0, or IAC_ERR with a message; *out_rev (may be NULL) gets its number. */
int iac_history_record(long *out_rev, iac_backend *b, const iac_state *st, const json_t *event);

/* The history repository, brought up to date from the backend (etcd:
 * revisions recorded by other runners), for reading. Caller frees with
 * iac_gitlog_free. */
struct iac_gitlog;
int iac_history_open(struct iac_gitlog **out, iac_backend *b);

#endif
