/* flags: feature flags as iac declares them, written as the OpenFeature flagd
 * flag-definition JSON, and evaluated exactly the way flagd evaluates it.
 *
 * A flag spec is the JSON form of the Lua declaration
 *   flag "checkout_v2" { kind = "release", variants = { on = true, off = false },
 *                        default = "off", rollout = { on = 10 }, targeting_key = "userId" }
 * and becomes, inside {"$schema": ..., "flags": {...}},
 *   "checkout_v2": {"state": "ENABLED", "variants": {...}, "defaultVariant": "off",
 *     "targeting": {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "userId"}]},
 *                                  ["on", 10], ["off", 90]]},
 *     "metadata": {"kind": "release"}}
 *
 * Bucket layout (docs/flags.md): rollout variants in name order, the default
 * variant last with what is left. flagd assigns bucket floor(h * total / 2^32)
 * and walks the list, so raising a variant's percent only adds users to it;
 * with a single rollout variant nobody else moves either.
 *
 * Ownership: every json_t argument is borrowed; json_t out-params are new
 * references the caller json_decref()s; `const char *` out-params point into
 * a borrowed document and live as long as it does.
 */
#ifndef IAC_FLAGS_FLAGS_H
#define IAC_FLAGS_FLAGS_H

#include <jansson.h>
#include <stdint.h>

#include "iac/core/buf.h"
#include "iac/flags/murmur3.h"

#define IAC_FLAGD_SCHEMA "https://flagd.dev/schema/v0/flags.json"

/* Attributes of a flag spec this module reads; "deliver" is accepted and left
 * to the engine, "file" and "line" (where the loader saw the declaration)
 * prefix error messages. Anything else is an error naming the attribute.
 * Values must be plain: references and sensitive values are refused. */
extern const char *const iac_flags_attributes[];

/* Build the whole flagd document from {NAME: SPEC, ...}. Validation errors
 * name the flag and the attribute:
 *   flag 'checkout_v2': rollout percent for 'on' is 120, must be 0..100 */
int iac_flags_to_flagd(json_t **out, const json_t *flags_by_name);

/* The flagd object of one flag (what goes under "flags"."NAME"). */
int iac_flags_spec_to_flagd(json_t **out, const char *name, const json_t *spec);

/* Canonical text of a document: sorted keys, 2-space indent, final newline,
 * so the same flags always give the same bytes. Caller frees. */
char *iac_flags_dump(const json_t *doc);

/* `iac flag set NAME VARIANT [-percent P]` on a spec: with percent < 0 the
 * variant becomes the default for everyone (rollout removed); with 0..100 the
 * variant is rolled out to that percent, the rest keeps the default. *out is
 * a new, validated spec. */
int iac_flags_spec_set(json_t **out, const char *name, const json_t *spec,
		       const char *variant, double percent);

/* Evaluate `flag` of a flagd document for an evaluation context (a JSON
 * object such as {"targetingKey": "u1", "userId": "u1"}; NULL = {}), giving
 * what flagd gives: *out_variant (points into flagd_doc) and *out_value (new
 * reference). A DISABLED flag returns 0 with both NULL: the application's
 * code default applies, as in flagd. IAC_ENOTFOUND when the document has no
 * such flag; -1 when the targeting cannot be evaluated (flagd: ERROR).
 * Targeting iac understands: fractional, cat, var, if, ==, !=, in, and
 * literals - everything iac writes and a bit more. */
int iac_flags_eval(const char **out_variant, json_t **out_value, const json_t *flagd_doc,
		   const char *flag, const json_t *context);

/* The 0..2^32-1 value flagd hashes a bucketing string to, and the bucket
 * (0..total-1) fractional puts it in: (hash * total) >> 32. */
uint32_t iac_flags_hash(const char *bucket_by, size_t len);
uint32_t iac_flags_bucket(uint32_t hash, uint32_t total);

/* Who moves when a flag changes from old_flag to new_flag (flagd flag
 * objects; old_flag NULL = the flag is new). *out is an array of
 * {"from": V, "to": W, "share": 0.1} for every pair with share > 0 and V != W,
 * sorted; "share" is the fraction of users (with a bucketing key) moving.
 * A disabled flag is the pseudo-variant "(disabled)". */
int iac_flags_moves(json_t **out, const json_t *old_flag, const json_t *new_flag);

/* "Once on, stays on": when new_flag's metadata says sticky, fail if any user
 * would leave a non-default variant of old_flag. The message names the flag,
 * the share and the variants. */
int iac_flags_check_sticky(const char *name, const json_t *old_flag, const json_t *new_flag);

/* One line for `iac flag list`: "enabled, off 90%, on 10% by 'userId'". */
void iac_flags_render(iac_buf *out, const json_t *flagd_flag);

#endif
