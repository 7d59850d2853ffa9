/* fuzz_flagd: feature flags as iac/flags/flags.c reads them. The input is
 * JSON and is used both ways iac meets flag JSON:
 *   - as flag specs {NAME: SPEC} (what state keeps and `iac flag set`
 *     edits): iac_flags_to_flagd, iac_flags_spec_set, then who moves and
 *     stickiness between the old and the new flag, and the one-line render;
 *   - as a flagd document {"flags": {NAME: FLAG}} (what is delivered, and
 *     what the evaluator reads): iac_flags_eval with a few contexts (the
 *     document's own "$context" object too), iac_flags_render, and
 *     iac_flags_moves / iac_flags_check_sticky between neighbouring flags. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/flags/flags.h"

#define MAX_FLAGS 16

static void render(const json_t *flag)
{
	iac_buf b = IAC_BUF_INIT;
	iac_flags_render(&b, flag);
	iac_buf_free(&b);
}

static void eval_all(const json_t *doc, const char *name, const json_t *const *contexts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *variant = NULL;
		json_t *value = NULL;
		int rc = iac_flags_eval(&variant, &value, doc, name, contexts[i]);
		if (rc < 0 && (variant || value))
			abort();   /* an error gives nothing back */
		if (variant && !json_object_get(json_object_get(json_object_get(json_object_get(doc, "flags"), name),
								"variants"), variant))
			abort();   /* the variant is one of the flag's */
		json_decref(value);
	}
}

static void moves(const char *name, const json_t *old_flag, const json_t *new_flag)
{
	json_t *m = NULL;
	if (iac_flags_moves(&m, old_flag, new_flag) == 0) {
		char *s = json_dumps(m, JSON_COMPACT);
		free(s);
	}
	json_decref(m);
	iac_flags_check_sticky(name, old_flag, new_flag);
}

static void as_specs(const json_t *specs)
{
	json_t *doc = NULL;
	if (iac_flags_to_flagd(&doc, specs) == 0) {
		free(iac_flags_dump(doc));
		json_decref(doc);
	}
	const char *name;
	json_t *spec;
	size_t k = 0;
	json_object_foreach((json_t *)specs, name, spec) {
		if (k++ >= MAX_FLAGS)
			break;
		json_t *old_flag = NULL, *new_flag = NULL, *set = NULL;
		if (iac_flags_spec_to_flagd(&old_flag, name, spec) == 0)
			render(old_flag);
		static const struct { const char *variant; double percent; } sets[] = {
			{ "on", 10 }, { "on", 12.5 }, { "off", -1 }, { "on", 100 },
		};
		for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
			if (iac_flags_spec_set(&set, name, spec, sets[i].variant, sets[i].percent) < 0)
				continue;
			if (iac_flags_spec_to_flagd(&new_flag, name, set) == 0) {
				render(new_flag);
				if (old_flag)
					moves(name, old_flag, new_flag);
				json_decref(new_flag);
				new_flag = NULL;
			} else {
				abort();   /* spec_set promises a validated spec */
			}
			json_decref(set);
			set = NULL;
		}
		json_decref(old_flag);
	}
}

static void as_flagd(const json_t *doc)
{
	json_t *flags = json_object_get(doc, "flags"), *flag, *prev = NULL;
	json_t *ctx_user = json_pack("{s:s,s:s,s:i}", "targetingKey", "user-1", "userId", "u-42", "age", 42);
	json_t *ctx_empty = json_object();
	const json_t *contexts[4] = { NULL, ctx_user, ctx_empty, NULL };
	size_t nctx = 3;
	const char *name;
	size_t k = 0;

	if (json_is_object(json_object_get(doc, "$context")))
		contexts[nctx++] = json_object_get(doc, "$context");
	json_object_foreach(flags, name, flag) {
		if (k++ >= MAX_FLAGS)
			break;
		eval_all(doc, name, contexts, nctx);
		render(flag);
		moves(name, prev, flag);
		moves(name, flag, flag);
		prev = flag;
	}
	eval_all(doc, "no-such-flag", contexts, 1);
	json_decref(ctx_user);
	json_decref(ctx_empty);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *doc = json_loadb((const char *)data, size, 0, NULL);
	if (!doc)
		return 0;
	if (json_is_object(doc)) {
		as_specs(doc);
		as_flagd(doc);
	}
	json_decref(doc);
	iac_err_clear();
	return 0;
}
