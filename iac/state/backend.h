/* backend: where a configuration's state and lock live, chosen once per
 * command. "local" is `.iac/` (state.h, lock.h); "etcd" keeps both in etcd
 * (etcd_store.h) for teams.
 *
 * Settings come from, later ones winning per key:
 *   1. `.iac/backend.json`: what the last command that loaded main.lua
 *      used (type, endpoints, prefix, lock_ttl; never credentials), so that
 *      `iac state ...` and `iac force-unlock` find the state without
 *      evaluating the configuration;
 *   2. the `backend "etcd" { ... }` block of main.lua (`decl`);
 *   3. `-backend-config KEY=VALUE` (CI passes endpoints and credentials
 *      that way), then ETCDV3_USERNAME / ETCDV3_PASSWORD from the
 *      environment (Terraform's etcdv3 backend reads the same).
 * Keys: endpoints (list, or comma-separated), prefix, lock_ttl, timeout,
 * username, password, cacert_path, cert_path, key_path, history_remote.
 *
 * Moving between backends is `iac init -migrate-state`; a configuration
 * whose declared backend does not hold its state (state in `.iac/` with an
 * etcd block, or the other way round) is refused with that advice, never
 * silently started afresh.
 */
#ifndef IAC_STATE_BACKEND_H
#define IAC_STATE_BACKEND_H

#include <jansson.h>

#include "iac/core/args.h"
#include "iac/state/state.h"

typedef struct iac_backend iac_backend;

/* Check a backend block's settings (keys, types): 0 or IAC_ERR with
 * "WHERE: ..." (where = "main.lua:12"). */
int iac_backend_check_settings(const json_t *settings, const char *where);

/* config_loaded: decl is what main.lua declares (NULL: no backend block);
 * else main.lua was not evaluated and decl is ignored. overrides (may be
 * NULL): -backend-config pairs. Connects to nothing yet. */
int iac_backend_open(iac_backend **out, const char *dir, int config_loaded, const json_t *decl,
		     const iac_strlist *overrides);
void iac_backend_free(iac_backend *b);

/* Open the backend as its own settings say, ignoring what main.lua and
 * .iac/backend.json say (iac init -migrate-state: the other side). */
int iac_backend_open_kind(iac_backend **out, const char *dir, const char *kind, const json_t *settings,
			  const iac_strlist *overrides);

/* The command that uses the backend (recorded with what it writes). */
void iac_backend_set_command(iac_backend *b, const char *command);
/* "local" or "etcd". */
const char *iac_backend_dir(const iac_backend *b);
const char *iac_backend_kind(const iac_backend *b);
/* "'.iac/state.json'" or "etcd 'iac/prod' at http://…", for messages. */
const char *iac_backend_label(const iac_backend *b);
/* The settings as resolved (credentials left out). Borrowed. */
const json_t *iac_backend_settings(const iac_backend *b);
/* history = { remote = "..." } (NULL when none). */
const char *iac_backend_history_remote(const iac_backend *b);

/* Lock for `command`, waiting up to timeout_ms. *out_stale (may be NULL):
 * info of a dead holder whose lock was taken over (local only: etcd drops
 * a dead holder's lock by itself when its lease expires). */
int iac_backend_lock(json_t **out_stale, iac_backend *b, const char *command, double timeout_ms);
/* Take the lock from whoever holds it (iac rollback -force). */
int iac_backend_preempt(json_t **out_preempted, iac_backend *b, const char *command);
void iac_backend_unlock(iac_backend *b);
int iac_backend_still_held(iac_backend *b);
const char *iac_backend_lock_id(const iac_backend *b);
/* {"holder": INFO|null, "queue": [INFO...]} (queue empty for local). */
int iac_backend_lock_status(json_t **out, iac_backend *b);
/* iac force-unlock ID; *out_info: what was unlocked (new ref). */
int iac_backend_force_unlock(json_t **out_info, iac_backend *b, const char *id);

/* Open state (after taking the lock, for a consistent picture). The state
 * borrows b: free it before b. */
int iac_backend_state_open(iac_state **out, iac_backend *b);

/* Record the settings in .iac/backend.json (after a command that loaded
 * main.lua used them). */
int iac_backend_remember(iac_backend *b);

/* The etcd handle behind an etcd backend (history keys), else NULL. */
struct iac_etcdb;
struct iac_etcdb *iac_backend_etcd(iac_backend *b);

#endif
