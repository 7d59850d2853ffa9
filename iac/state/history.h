/* history: the change history kept in state ("extra.history"): one event
 * per apply, destroy, rollback and flag change, newest last, capped. */
#ifndef IAC_STATE_HISTORY_H
#define IAC_STATE_HISTORY_H

#include <jansson.h>

#include "iac/state/state.h"

#define IAC_HISTORY_MAX 200

/* Append an event (stolen) after adding "at" (RFC 3339), "user" and
 * "host". Durable when it returns. */
int iac_history_add(iac_state *st, json_t *event);

#endif
