/* flagops: live flag changes from state alone, shared by `iac flag` and
 * `iac rollback` (flags_on_rollback). A change finds every flags.* resource
 * carrying the flag, records an override in its state entry, and delivers
 * the new document to its target right away. */
#ifndef IAC_PROVIDERS_FLAGOPS_H
#define IAC_PROVIDERS_FLAGOPS_H

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

/* iac_flagops_set as the provider operation "set" (args: name, variant,
 * percent), for deploy's rollback (flags_on_rollback). */
int iac_flagops_op_set(json_t **report, struct iac_state *st, struct iac_providers *pv, const json_t *args);

/* cmd_flag.c: `iac flag list|set|reset` */
int iac_prov_flags_cmd(int argc, char **argv);
void iac_prov_flags_cmd_help(void);

#endif
