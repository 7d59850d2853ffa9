/* flagops: live flag changes from state alone, shared by `iac flag` and
 * `iac rollback` (flags_on_rollback). A change finds every flags.* resource
 * carrying the flag, records an override in its state entry, and delivers
 * the new document to its target right away. */
#ifndef IAC_CLI_FLAGOPS_H
#define IAC_CLI_FLAGOPS_H

#include <jansson.h>

#include "iac/provider/runtime.h"
#include "iac/state/state.h"

/* Set `name` to `variant` (percent < 0: for everyone; 0..100: rollout).
 * *report (new ref) describes each target and who moved. */
int iac_flagops_set(json_t **report, iac_state *st, iac_providers *pv, const char *name,
		    const char *variant, double percent);
/* Drop the override of `name` and deliver what the configuration says. */
int iac_flagops_reset(json_t **report, iac_state *st, iac_providers *pv, const char *name);
/* Every flag in state: name -> {"value","declared","override","targets"}. */
json_t *iac_flagops_list(iac_state *st);

#endif
