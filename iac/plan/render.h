/* render: a plan as people read it (Terraform-like text, colour on a TTY)
 * and as programs read it (the JSON document of docs/json-plan.md).
 * Sensitive values never appear: they print as (sensitive). */
#ifndef IAC_PLAN_RENDER_H
#define IAC_PLAN_RENDER_H

#include <jansson.h>

#include "iac/core/buf.h"
#include "iac/plan/plan.h"

#define IAC_PLAN_FORMAT "1.1"

/* The human form into out. */
void iac_plan_render(iac_buf *out, const iac_plan *plan);
/* "Plan: 1 to add, 2 to change, 0 to destroy." (no newline). */
void iac_plan_summary(iac_buf *out, const iac_plan *plan);
/* "name = value" lines for outputs as state keeps them (sensitive ones as
 * "(sensitive)"). */
void iac_outputs_render(iac_buf *out, const json_t *outputs);

/* The JSON form (new reference). */
json_t *iac_plan_json(const iac_plan *plan);

/* A line diff of two texts in unified style, prefixed by indent; used for
 * file content changes. Returns 0 when it was too big to show. */
int iac_text_diff(iac_buf *out, const char *a, const char *b, const char *indent);

#endif
