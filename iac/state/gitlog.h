/* gitlog: the change history as a real git repository (libgit2), one
 * commit per recorded event (apply, destroy, rollback, flag change, state
 * rm, push, force-unlock), readable by any git client:
 *   git --git-dir=.iac/history.git log -p
 *
 * Each commit's tree (see docs/state.md, "History"):
 *   meta.json               the event passed to iac_gitlog_record + "rev"
 *   state-meta.json         the state document's top-level fields other than
 *                           the three below (lineage, serial, format_version...)
 *   outputs.json            the state's "outputs"
 *   extra.json              the state's "extra"
 *   resources/<bb>/<f>.json one file per resource entry; <bb> = the first two
 *                           hex digits of sha256(address), so a change to one
 *                           resource rewrites one small tree, never one tree
 *                           of 10,000 entries; <f> = the address with '%',
 *                           '/', control characters and a leading '.'
 *                           written as %XX
 * JSON files are pretty-printed with sorted keys, so an unchanged resource is
 * the same blob and an unchanged bucket the same tree as in the parent.
 * The branch is refs/heads/main (HEAD points to it). "rev" numbers commits
 * 1, 2, 3... along it.
 *
 * Ownership: JSON passed in is borrowed; JSON and strings returned are new
 * (json_decref / free). An iac_gitlog is used by one thread at a time;
 * several processes may record into one repository at once (the branch is
 * moved by compare-and-swap).
 */
#ifndef IAC_STATE_GITLOG_H
#define IAC_STATE_GITLOG_H

#include <jansson.h>
#include <stddef.h>

typedef struct iac_gitlog iac_gitlog;

/* Open (create when missing) the bare repository at path
 * (".iac/history.git"). The directory is kept like .iac/: created 0700
 * (missing parents too), refused when it is a symbolic link or someone
 * else's, group/other bits removed; an existing directory that is neither
 * empty nor a repository is refused. */
int iac_gitlog_open(iac_gitlog **out, const char *path);
void iac_gitlog_free(iac_gitlog *g);
/* The path given to iac_gitlog_open (borrowed). */
const char *iac_gitlog_path(const iac_gitlog *g);

/* Record a revision. `state` is the whole state document as
 * iac_state_to_json returns it (already redacted; nothing is added to it),
 * `meta` the event ({"command","argv","user","host","at","exit","summary":
 * {"add","change","destroy"},...}); both borrowed. meta.json holds meta plus
 * "rev" (parent's rev + 1, 1 for the first), which *out_rev gets too.
 * IAC_ECONFLICT when another writer moved the branch meanwhile (nothing is
 * lost: record again on top of the new head). */
int iac_gitlog_record(long *out_rev, iac_gitlog *g, const json_t *state, const json_t *meta);

/* Newest first, at most n (n <= 0: all); with addr != NULL only the
 * revisions that changed that resource's file. Each element: the meta.json
 * object plus "commit" (hex) and "counts" {"add","change","destroy"} (files
 * under resources/ added, modified, deleted against the parent). *out is a
 * new array (empty for an empty history). */
int iac_gitlog_list(json_t **out, iac_gitlog *g, long n, const char *addr);

/* The state document at revision rev (state-meta.json's fields,
 * "resources" sorted by address, "outputs", "extra") and its meta.json
 * (out_meta may be NULL). IAC_ENOTFOUND for an unknown rev (message set). */
int iac_gitlog_state_at(json_t **out_state, json_t **out_meta, iac_gitlog *g, long rev);

/* Resolve a revision spec to a rev number: "12", "HEAD", "HEAD~2", "HEAD^",
 * or a commit id (prefix of 4+ hex digits; all-digit text is a rev number
 * first). IAC_ENOTFOUND when nothing matches. */
int iac_gitlog_find(long *out_rev, iac_gitlog *g, const char *spec);

/* Head revision number (0 when empty) and its commit id (hex; "" when
 * empty). */
int iac_gitlog_head(long *out_rev, char out_commit[41], iac_gitlog *g);

/* A pack of the objects reachable from commit `to` (NULL or "": the head)
 * and not from commit `from` (NULL or "": everything), for carrying history
 * between repositories without a git server. *out (malloc'd, caller frees)
 * holds *out_len bytes. IAC_ENOTFOUND when a commit is unknown or the
 * history is empty. */
int iac_gitlog_pack(char **out, size_t *out_len, iac_gitlog *g, const char *from, const char *to);
/* Index a pack made by iac_gitlog_pack into this repository (len 0: none)
 * and, when set_head is a commit id (hex) that is now present, move
 * refs/heads/main to it (unconditionally: the sender is the authority). */
int iac_gitlog_unpack(iac_gitlog *g, const char *pack, size_t len, const char *set_head);

/* Push refs/heads/main to a remote (file:///path, /path,
 * ssh://user@host[:port]/path, user@host:path); a push that is not a fast
 * forward is refused. SSH logs in with the ssh-agent when SSH_AUTH_SOCK is
 * set, else with IAC_HISTORY_SSH_KEY or ~/.ssh/id_ed25519, ~/.ssh/id_rsa
 * (no passphrase); the server's host key must be in IAC_HISTORY_KNOWN_HOSTS
 * or ~/.ssh/known_hosts (plain, [host]:port, hashed and wildcard entries;
 * @revoked honoured). IAC_ERR with a message naming the remote (never its
 * password). */
int iac_gitlog_push(iac_gitlog *g, const char *remote_url);

/* What changed between two state documents (either may be NULL: empty),
 * for `iac state diff`: per address, sorted, "+ ADDR", "- ADDR", or
 * "~ ADDR" followed by one line per changed attribute
 * "    key: OLD -> NEW" (compact JSON; "(absent)" for a missing attribute;
 * redacted values and "(sensitive)" print as (sensitive)) and per changed
 * entry field other than attributes and updated_at "    (field): OLD -> NEW";
 * then "Outputs:" with "+ name: V", "- name", "~ name: OLD -> NEW".
 * addr_filter (may be NULL) keeps the address itself and the ones inside it
 * (a module "module.web", the instances "x.y[...]") and drops outputs.
 * Returns new text, "" when nothing differs. Pure: no repository. */
char *iac_gitlog_diff_render(const json_t *old_state, const json_t *new_state, const char *addr_filter);

#endif
