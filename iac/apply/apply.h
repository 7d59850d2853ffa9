/* apply: carry out a plan. Operations (create, update, replace as delete +
 * create or create + delete, delete, read) form a graph walked in parallel
 * (walk.h). Before an operation starts, a pending marker is made durable in
 * state; when it ends, the result is. References are resolved at the last
 * moment against what has just been applied. Progress goes to stderr.
 */
#ifndef IAC_APPLY_APPLY_H
#define IAC_APPLY_APPLY_H

#include <jansson.h>
#include <stddef.h>

#include "iac/load/config.h"
#include "iac/plan/plan.h"
#include "iac/provider/runtime.h"
#include "iac/state/state.h"

typedef struct {
	int parallelism;              /* default 10 */
	const volatile int *stop;     /* set: start nothing new (first Ctrl-C) */
	const volatile int *cancel;   /* set: abort running operations (second) */
} iac_apply_opts;

typedef struct {
	size_t added, changed, destroyed;    /* successful operations by kind */
	size_t ok, failed, skipped, not_started;
	size_t left_alone;                   /* planned as skipped: unreachable hosts */
	json_t *failures;                    /* [{"address","operation","error"}, plus
					      * "host": {"host","address","error"} when
					      * the host could not be used] */
	json_t *skipped_list;                /* [{"address","because"}]: not run because
					      * the operation "because" failed */
	double seconds;
} iac_apply_result;

/* Returns 0 when everything succeeded, IAC_EINTR when stopped by the user,
 * IAC_ERR when some operation failed (details in res->failures) or the plan
 * left resources alone on unreachable hosts (plan->unreachable), after
 * applying everything else. State is flushed in every case. */
int iac_apply_run(iac_apply_result *res, iac_plan *plan, iac_config *cfg, iac_state *st,
		  iac_providers *pv, const iac_apply_opts *opts);

/* Before anything is checked or run again: kill (and wait for) the
 * command groups that a run killed together with its guards left running,
 * as recorded with the pending markers (iac_state_note_group), with a
 * warning naming each resource. Only for a command that holds the lock: a
 * group of a run still going on is not left over. IAC_ERR when a group
 * does not die (message set; nothing must run then). */
int iac_apply_reap_leftovers(iac_state *st);

void iac_apply_result_free(iac_apply_result *res);

/* Evaluate the configuration's outputs against state and store them. */
int iac_apply_outputs(iac_config *cfg, iac_state *st);

#endif
