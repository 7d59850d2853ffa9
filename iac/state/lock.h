/* lock: one writer at a time per configuration (`.iac/lock`).
 *
 * The lock file holds who has it: {"id","pid","host","command","started"}.
 * The holder keeps an flock() on it for as long as it runs, so the kernel
 * drops the lock the moment the holder dies (even by kill -9): a lock file
 * that nobody has flock'ed is stale and is taken over, with a notice. A clean
 * exit removes the file.
 */
#ifndef IAC_STATE_LOCK_H
#define IAC_STATE_LOCK_H

#include <jansson.h>

typedef struct iac_lock iac_lock;

/* Take the lock in dir/.iac for `command` ("apply"). Waits up to timeout_ms
 * (0: try once). IAC_ELOCKED with a message naming the holder (pid, host,
 * command, since when, lock id) when someone else has it.
 * *out_stale (may be NULL) is set to the previous holder's info (new ref)
 * when a stale lock was taken over, else NULL. */
int iac_lock_acquire(iac_lock **out, json_t **out_stale, const char *dir,
		     const char *command, double timeout_ms);

/* Take the lock even if it is held (`iac rollback -force`): the holder's
 * info is returned in *out_preempted (new ref). The holder keeps running;
 * the caller decides what to tell it. */
int iac_lock_preempt(iac_lock **out, json_t **out_preempted, const char *dir, const char *command);

/* Release and remove the lock file. NULL is fine. */
void iac_lock_release(iac_lock *lk);

/* 1 while the lock file is still ours: 0 once `iac rollback -force` (or a
 * force-unlock) replaced it. Cheap: one stat. */
int iac_lock_still_held(const iac_lock *lk);

/* This lock's id. */
const char *iac_lock_id(const iac_lock *lk);

/* Who holds the lock right now: 0 and *out (new ref) when held by a live
 * process, IAC_ENOTFOUND when free or stale. */
int iac_lock_holder(json_t **out, const char *dir);

/* Remove a lock whose id matches (`iac force-unlock ID`). */
int iac_lock_force_unlock(const char *dir, const char *id);

#endif
