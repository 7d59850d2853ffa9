/* planfile: a saved plan (`iac plan -out FILE`), applied later with
 * `iac apply FILE`.
 *
 * The file is JSON (mode 0600) holding the plan as shown, the actions, the
 * state lineage and serial it was made against, a hash of the evaluated
 * configuration and the variable values — but never a secret: sensitive
 * variables are listed by name and must be supplied again when applying.
 * Applying re-plans and refuses unless state, configuration and every
 * action are still exactly what the file says.
 */
#ifndef IAC_PLAN_PLANFILE_H
#define IAC_PLAN_PLANFILE_H

#include <jansson.h>

#include "iac/load/config.h"
#include "iac/plan/plan.h"

#define IAC_PLANFILE_FORMAT 1

int iac_planfile_write(const char *path, const iac_plan *plan, iac_config *cfg,
		       const json_t *replace);
/* Read and check the format; *out is the document (new ref). */
int iac_planfile_read(json_t **out, const char *path);
/* Non-sensitive variable values saved in the file (borrowed). */
json_t *iac_planfile_vars(const json_t *doc);
/* Compare a fresh plan with the saved one: 0 when identical, IAC_ECONFLICT
 * with a message naming the first difference. */
int iac_planfile_check(const json_t *doc, const iac_plan *fresh, iac_config *cfg);

#endif
