/* value: the engine's value model on top of Jansson.
 *
 * Attribute values are plain JSON plus a few marker objects, each a JSON
 * object whose "$iac" member names the kind:
 *   {"$iac":"ref","addr":"local.file.conf","attr":"sha256"}  reference
 *   {"$iac":"tpl","parts":[...]}         string concatenation holding refs
 *   {"$iac":"sensitive","value":V}       config value from a sensitive source
 *   {"$iac":"unknown"}                   known only after apply (plan time)
 *   {"$iac":"redacted","sha256":"..."}   a sensitive value as state keeps it
 * Markers never reach a provider except "unknown" in plan().
 */
#ifndef IAC_CORE_VALUE_H
#define IAC_CORE_VALUE_H

#include <jansson.h>

#include "iac/core/buf.h"

/* Flags reported by iac_value_resolve(). */
enum {
	IAC_VAL_UNKNOWN = 1 << 0,
	IAC_VAL_SENSITIVE = 1 << 1,
};

/* A reference marker; NULL when addr or attr is NULL or not UTF-8. */
json_t *iac_value_ref(const char *addr, const char *attr);
json_t *iac_value_unknown(void);
json_t *iac_value_sensitive(json_t *v);        /* steals v */
/* Marker kind ("ref", "tpl", ...) or NULL for plain JSON. */
const char *iac_value_marker(const json_t *v);
int iac_value_is_unknown(const json_t *v);
/* 1 if v or anything inside it is unknown. */
int iac_value_has_unknown(const json_t *v);

/* Look up the value of addr.attr. Return 0 and a new reference in *out (an
 * unknown marker is fine), or -1 with a message. */
typedef int (*iac_value_resolver)(json_t **out, const char *addr, const char *attr, void *ud);

/* A new value with refs and templates replaced via `fn`, sensitive wrappers
 * removed; *flags (may be NULL) gets IAC_VAL_UNKNOWN / IAC_VAL_SENSITIVE.
 * A template with an unknown part is unknown. NULL on error (message set). */
json_t *iac_value_resolve(const json_t *v, iac_value_resolver fn, void *ud, unsigned *flags);

/* Call fn(addr, ud) for every reference inside v (repeats possible). */
void iac_value_refs(const json_t *v, void (*fn)(const char *addr, void *ud), void *ud);

/* The form a sensitive value takes in state: {"$iac":"redacted","sha256":H}
 * with H = sha256(salt || canonical JSON of v). New reference. */
json_t *iac_value_redact(const json_t *v, const char *salt);

/* Structural equality, where 1 and 1.0 are equal. */
int iac_value_equal(const json_t *a, const json_t *b);

/* Human rendering for plan output: "text" quoted, numbers, true, lists and
 * maps on one line; markers as (known after apply) / (sensitive). */
void iac_value_render(iac_buf *out, const json_t *v);

/* 1 when v is an array whose items are all strings (a list of names or
 * addresses, as files on disk must hold them). */
int iac_value_is_string_list(const json_t *v);

/* JSON type name for messages: "string", "number", "table"... */
const char *iac_value_type_name(const json_t *v);

#endif
