/* flags: flag specs -> flagd JSON, and a flagd-compatible evaluator (see flags.h).
 *
 * Compatibility target: @openfeature/flagd-core 4.x (the reference
 * evaluator tests/flags/test_flagd_compat.sh checks against). Its fractional operator:
 *   bucketBy = the first argument when it is a string, else
 *              $flagd.flagKey + targetingKey (no targetingKey: no match)
 *   hash     = murmur3_x86_32(bucketBy, seed 0) as unsigned
 *   bucket   = (hash * totalWeight) >> 32
 *   variant  = the first entry whose running weight sum exceeds bucket
 * Weights are integers (1 when omitted, negative clamps to 0).
 */
#include "iac/flags/flags.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const iac_flags_attributes[] = {
	"kind", "variants", "default", "rollout", "targeting_key", "description",
	"enabled", "sticky", "deliver", "file", "line", NULL,
};

static const char *const kinds[] = { "release", "experiment", "operational", "kill_switch", NULL };

/* --- spec -> flagd ------------------------------------------------------- */

static int known_attribute(const char *key)
{
	for (size_t i = 0; iac_flags_attributes[i]; i++)
		if (strcmp(iac_flags_attributes[i], key) == 0)
			return 1;
	return 0;
}

static int valid_name(const char *name)
{
	if (!*name)
		return 0;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '"' || *p == '\\' || *p == '/')
			return 0;
	return 1;
}

/* flagd's schema wants all variants of a flag to share one type. */
static const char *variant_type(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_INTEGER:
	case JSON_REAL:
		return "number";
	case JSON_STRING:
		return "string";
	case JSON_OBJECT:
		return "object";
	default:
		return NULL;
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Render a percent as the operator wrote it: 10, 12.5. */
static void fmt_percent(char *out, size_t n, double p)
{
	if (p == floor(p) && fabs(p) < 1e15)
		snprintf(out, n, "%.0f", p);
	else
		snprintf(out, n, "%g", p);
}

/* Keys of an object in byte order, so that the first error reported does not
 * depend on the order a Lua table happened to be walked in. Caller frees
 * the array (the strings belong to the object). */
static const char **sorted_keys(const json_t *obj, size_t *n)
{
	const char **keys = iac_xcalloc(json_object_size(obj) + 1, sizeof(*keys));
	const char *key;
	json_t *v;
	*n = 0;
	json_object_foreach((json_t *)obj, key, v)
		keys[(*n)++] = key;
	qsort(keys, *n, sizeof(*keys), cmp_str);
	return keys;
}

static int check_variants(const char *name, const json_t *variants)
{
	const char *key, *type = NULL, *first = NULL, **keys;
	json_t *v;
	size_t n;
	int rc = -1;

	if (!json_is_object(variants))
		return iac_err_set("flag '%s': variants must be a table of name = value, not a %s",
				   name, json_is_array(variants) ? "list" : "scalar");
	if (json_object_size(variants) == 0)
		return iac_err_set("flag '%s': variants is empty; declare at least one variant", name);
	keys = sorted_keys(variants, &n);
	for (size_t i = 0; i < n; i++) {
		key = keys[i];
		v = json_object_get(variants, key);
		const char *t = variant_type(v);
		if (!*key) {
			iac_err_set("flag '%s': a variant has an empty name", name);
			goto done;
		}
		if (!t) {
			iac_err_set("flag '%s': variant '%s' is %s; variants are booleans, strings, numbers or tables",
				    name, key, json_is_array(v) ? "a list" : "null");
			goto done;
		}
		if (type && strcmp(type, t) != 0) {
			iac_err_set("flag '%s': variant '%s' is a %s but '%s' is a %s; all variants of a flag have one type",
				    name, key, t, first, type);
			goto done;
		}
		if (!type) {
			type = t;
			first = key;
		}
	}
	rc = 0;
done:
	free(keys);
	return rc;
}

/* Flags are written out as plain JSON at plan time: a reference to another
 * resource's value, or a sensitive value (it would land in a world-readable
 * flags file), cannot be part of one. */
static int check_plain(const char *name, const char *attr, const json_t *v)
{
	const char *marker = iac_value_marker(v), *key;
	json_t *e;
	size_t i;

	if (marker) {
		if (strcmp(marker, "sensitive") == 0 || strcmp(marker, "redacted") == 0)
			return iac_err_set("flag '%s': %s is sensitive; flag files are not secret, keep secrets out of flags",
					   name, attr);
		return iac_err_set("flag '%s': %s depends on a value known only at apply time; flags need plain values",
				   name, attr);
	}
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, e)
			if (check_plain(name, attr, e) < 0)
				return -1;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			if (check_plain(name, attr, e) < 0)
				return -1;
	}
	return 0;
}

static int spec_to_flagd(json_t **out, const char *name, const json_t *spec);

int iac_flags_spec_to_flagd(json_t **out, const char *name, const json_t *spec)
{
	int rc = spec_to_flagd(out, name, spec);
	const char *file = iac_json_str(spec, "file");
	json_t *line = json_object_get(spec, "line");

	/* The loader records where the flag was declared: config errors read
	 * "FILE:LINE: what is wrong". */
	if (rc < 0 && file && json_is_integer(line))
		iac_err_prefix("%s:%d", file, (int)json_integer_value(line));
	return rc;
}

/* A flag spec after validation: everything render_flagd() needs, so that
 * rendering cannot fail and every config error is found before any output
 * exists. Strings point into the spec (or are literals); variants and
 * names are owned. */
typedef struct {
	const char *kind;
	json_t *variants;
	const char *def;
	int enabled, sticky;
	const char *tkey;            /* NULL: flagd's own targetingKey */
	const json_t *description;   /* NULL when not given */
	const json_t *rollout;       /* NULL when not given */
	const char **names;          /* rollout variants in byte order */
	size_t nroll;
	int scaled;                  /* a percent has decimals: weights in 1/100 % */
} flag_spec;

static void flag_spec_free(flag_spec *fs)
{
	free(fs->names);
	json_decref(fs->variants);
}

/* Checked in byte order so the first error does not depend on table order.
 * "deliver" may name apply-time values: it is not written to the flag. */
static int check_attributes(const char *name, const json_t *spec)
{
	size_t n;
	const char **keys = sorted_keys(spec, &n);
	for (size_t i = 0; i < n; i++) {
		int bad = 0;
		if (!known_attribute(keys[i]))
			bad = iac_err_set("flag '%s': unknown attribute '%s'", name, keys[i]);
		else if (strcmp(keys[i], "deliver") != 0)
			bad = check_plain(name, keys[i], json_object_get(spec, keys[i]));
		if (bad) {
			free(keys);
			return -1;
		}
	}
	free(keys);
	return 0;
}

static int parse_kind(flag_spec *fs, const char *name, const json_t *spec)
{
	const json_t *v = json_object_get(spec, "kind");
	size_t i;

	fs->kind = "release";
	if (!v)
		return 0;
	if (!json_is_string(v))
		return iac_err_set("flag '%s': kind must be a string", name);
	fs->kind = json_string_value(v);
	/* "kill-switch" is accepted as an alias; metadata has one spelling. */
	if (strcmp(fs->kind, "kill-switch") == 0)
		fs->kind = "kill_switch";
	for (i = 0; kinds[i] && strcmp(kinds[i], fs->kind) != 0; i++)
		;
	if (!kinds[i])
		return iac_err_set("flag '%s': kind is '%s', must be release, experiment, operational or kill_switch",
				   name, fs->kind);
	return 0;
}

/* No variants: a plain on/off switch that is off unless said otherwise. */
static int parse_variants(flag_spec *fs, const char *name, const json_t *spec)
{
	const json_t *v = json_object_get(spec, "variants");

	if (!v) {
		fs->variants = json_pack("{s:b,s:b}", "on", 1, "off", 0);
		return 0;
	}
	if (check_variants(name, v) < 0)
		return -1;
	fs->variants = json_deep_copy(v);
	return 0;
}

static int parse_default(flag_spec *fs, const char *name, const json_t *spec)
{
	const json_t *v = json_object_get(spec, "default");

	if (!v) {
		/* "off" is only a safe guess for the implicit on/off variants. */
		if (json_object_get(spec, "variants"))
			return iac_err_set("flag '%s': default is missing; name the variant users get when no rollout applies",
					   name);
		fs->def = "off";
	} else if (!json_is_string(v)) {
		return iac_err_set("flag '%s': default must be the name of a variant (a string), got a %s", name,
				   json_is_boolean(v) ? "boolean" : json_is_number(v) ? "number" : "table");
	} else {
		fs->def = json_string_value(v);
	}
	if (!json_object_get(fs->variants, fs->def))
		return iac_err_set("flag '%s': default '%s' is not one of its variants", name, fs->def);
	return 0;
}

static int parse_bool(int *out, const char *name, const json_t *spec, const char *attr)
{
	const json_t *v = json_object_get(spec, attr);

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return iac_err_set("flag '%s': %s must be true or false", name, attr);
	*out = json_is_true(v);
	return 0;
}

/* enabled, sticky, targeting_key and description: the scalar attributes. */
static int parse_scalars(flag_spec *fs, const char *name, const json_t *spec)
{
	const json_t *v;

	fs->enabled = 1;
	if (parse_bool(&fs->enabled, name, spec, "enabled") < 0 ||
	    parse_bool(&fs->sticky, name, spec, "sticky") < 0)
		return -1;
	if ((v = json_object_get(spec, "targeting_key"))) {
		if (!json_is_string(v) || !*json_string_value(v))
			return iac_err_set("flag '%s': targeting_key must be a non-empty string (the context attribute to bucket by)",
					   name);
		fs->tkey = json_string_value(v);
		/* $flagd.* are flagd's own context fields; a user attribute
		 * cannot shadow them. */
		if (iac_str_starts(fs->tkey, "$flagd"))
			return iac_err_set("flag '%s': targeting_key '%s' is reserved by flagd", name, fs->tkey);
	}
	fs->description = json_object_get(spec, "description");
	if (fs->description && !json_is_string(fs->description))
		return iac_err_set("flag '%s': description must be a string", name);
	return 0;
}

/* One rollout entry: a variant other than the default, with a percent that
 * flagd's integer weights can express. Adds the percent to *sum. */
static int check_rollout_entry(flag_spec *fs, const char *name, const char *key, const json_t *v, double *sum)
{
	char buf[64];

	if (!json_object_get(fs->variants, key))
		return iac_err_set("flag '%s': rollout names variant '%s', which is not one of its variants", name, key);
	if (strcmp(key, fs->def) == 0)
		return iac_err_set("flag '%s': rollout names the default variant '%s'; the default gets what the rollout leaves",
				   name, key);
	if (!json_is_number(v))
		return iac_err_set("flag '%s': rollout percent for '%s' must be a number", name, key);
	double p = json_number_value(v);
	fmt_percent(buf, sizeof(buf), p);
	if (!(p >= 0 && p <= 100))
		return iac_err_set("flag '%s': rollout percent for '%s' is %s, must be 0..100", name, key, buf);
	/* flagd weights are integers: hundredths of a percent are the
	 * finest split we can express exactly. */
	if (fabs(p * 100 - nearbyint(p * 100)) > 1e-6)
		return iac_err_set("flag '%s': rollout percent for '%s' is %s; use at most two decimals", name, key, buf);
	if (p != floor(p))
		fs->scaled = 1;
	*sum += p;
	return 0;
}

static int parse_rollout(flag_spec *fs, const char *name, const json_t *spec)
{
	const json_t *rollout = json_object_get(spec, "rollout");
	size_t nkeys;
	double sum = 0;

	if (rollout && !json_is_object(rollout))
		return iac_err_set("flag '%s': rollout must be a table of variant = percent", name);
	if (rollout && json_object_size(rollout) > 0 && strcmp(fs->kind, "kill_switch") == 0)
		return iac_err_set("flag '%s': a kill_switch flag cannot have a rollout; it is on or off for everyone (set default)",
				   name);
	if (!rollout)
		return 0;
	fs->rollout = rollout;
	fs->names = sorted_keys(rollout, &nkeys);
	for (size_t i = 0; i < nkeys; i++)
		if (check_rollout_entry(fs, name, fs->names[i], json_object_get(rollout, fs->names[i]), &sum) < 0)
			return -1;
	fs->nroll = nkeys;
	if (sum > 100 + 1e-9) {
		char buf[64];
		fmt_percent(buf, sizeof(buf), sum);
		return iac_err_set("flag '%s': rollout percents add up to %s, must be at most 100", name, buf);
	}
	return 0;
}

/* The order of the checks decides which error a spec with several mistakes
 * reports (name, shape, attributes, kind, variants, default, scalars,
 * rollout); keep it stable so messages do not change between releases. */
static int parse_spec(flag_spec *fs, const char *name, const json_t *spec)
{
	if (!valid_name(name))
		return iac_err_set("flag '%s': invalid name; use letters, digits, '_', '-' or '.'", name);
	if (!json_is_object(spec))
		return iac_err_set("flag '%s': expected a table of attributes, got a %s", name,
				   json_is_array(spec) ? "list" : "scalar");
	if (check_attributes(name, spec) < 0 || parse_kind(fs, name, spec) < 0 ||
	    parse_variants(fs, name, spec) < 0 || parse_default(fs, name, spec) < 0 ||
	    parse_scalars(fs, name, spec) < 0 || parse_rollout(fs, name, spec) < 0)
		return -1;
	return 0;
}

/* The fractional operator for a validated rollout. */
static json_t *render_fractional(const flag_spec *fs)
{
	/* Weights in percent, or in hundredths when a percent has decimals:
	 * the threshold hash * total < sum * 2^32 is the same set of users
	 * either way, so switching scales never moves anyone. */
	long long total = fs->scaled ? 10000 : 100, used = 0;
	json_t *frac = json_array();

	/* flagd's implicit bucketing key is $flagd.flagKey + targetingKey; for
	 * another attribute the same concatenation is spelled out. */
	if (fs->tkey && strcmp(fs->tkey, "targetingKey") != 0)
		json_array_append_new(frac, json_pack("{s:[{s:s},{s:s}]}", "cat",
						      "var", "$flagd.flagKey", "var", fs->tkey));
	for (size_t i = 0; i < fs->nroll; i++) {
		double p = json_number_value(json_object_get(fs->rollout, fs->names[i]));
		long long w = (long long)nearbyint(p * (double)total / 100.0);
		json_array_append_new(frac, json_pack("[s,I]", fs->names[i], (json_int_t)w));
		used += w;
	}
	json_array_append_new(frac, json_pack("[s,I]", fs->def, (json_int_t)(total - used)));
	return frac;
}

/* Pure: a validated spec -> one flagd flag object. */
static json_t *render_flagd(const flag_spec *fs)
{
	json_t *flag, *metadata;

	flag = json_pack("{s:s,s:O,s:s}", "state", fs->enabled ? "ENABLED" : "DISABLED",
			 "variants", fs->variants, "defaultVariant", fs->def);
	if (fs->nroll > 0)
		json_object_set_new(flag, "targeting", json_pack("{s:o}", "fractional", render_fractional(fs)));
	metadata = json_pack("{s:s}", "kind", fs->kind);
	if (fs->description)
		json_object_set(metadata, "description", (json_t *)fs->description);
	if (fs->tkey)
		json_object_set_new(metadata, "targetingKey", json_string(fs->tkey));
	if (fs->sticky)
		json_object_set_new(metadata, "sticky", json_true());
	json_object_set_new(flag, "metadata", metadata);
	return flag;
}

static int spec_to_flagd(json_t **out, const char *name, const json_t *spec)
{
	flag_spec fs = { 0 };
	int rc = -1;

	*out = NULL;
	if (parse_spec(&fs, name, spec) == 0) {
		*out = render_flagd(&fs);
		rc = 0;
	}
	flag_spec_free(&fs);
	return rc;
}

int iac_flags_to_flagd(json_t **out, const json_t *flags_by_name)
{
	json_t *doc, *flags, *spec, *f;
	const char *name;

	*out = NULL;
	if (!json_is_object(flags_by_name))
		return iac_err_set("flags must be a table of name = flag spec");
	flags = json_object();
	size_t n;
	const char **names = sorted_keys(flags_by_name, &n);
	for (size_t i = 0; i < n; i++) {
		name = names[i];
		spec = json_object_get(flags_by_name, name);
		if (iac_flags_spec_to_flagd(&f, name, spec) < 0) {
			free(names);
			json_decref(flags);
			return -1;
		}
		json_object_set_new(flags, name, f);
	}
	free(names);
	doc = json_pack("{s:s,s:o}", "$schema", IAC_FLAGD_SCHEMA, "flags", flags);
	*out = doc;
	return 0;
}

char *iac_flags_dump(const json_t *doc)
{
	char *s = json_dumps(doc, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_REAL_PRECISION(17));
	char *r = iac_xasprintf("%s\n", s ? s : "null");
	free(s);
	return r;
}

int iac_flags_spec_set(json_t **out, const char *name, const json_t *spec,
		       const char *variant, double percent)
{
	json_t *copy, *variants, *f = NULL;
	const char *def;

	*out = NULL;
	if (!json_is_object(spec))
		return iac_err_set("flag '%s': expected a table of attributes", name);
	copy = json_deep_copy(spec);
	variants = json_object_get(copy, "variants");
	if (variants ? !json_object_get(variants, variant)
		     : strcmp(variant, "on") != 0 && strcmp(variant, "off") != 0) {
		json_decref(copy);
		return iac_err_set("flag '%s' has no variant '%s'", name, variant);
	}
	def = iac_json_str(copy, "default");
	if (!def)
		def = "off";
	if (percent < 0) {
		/* Everyone: the variant becomes the default and the rollout goes. */
		json_object_set_new(copy, "default", json_string(variant));
		json_object_del(copy, "rollout");
	} else {
		if (strcmp(variant, def) == 0) {
			json_decref(copy);
			return iac_err_set("flag '%s': '%s' is the default variant; give a percent to another variant or "
					   "omit the percent", name, variant);
		}
		json_t *rollout = json_object_get(copy, "rollout");
		if (!json_is_object(rollout)) {
			rollout = json_object();
			json_object_set_new(copy, "rollout", rollout);
		}
		if (percent == floor(percent))
			json_object_set_new(rollout, variant, json_integer((json_int_t)percent));
		else
			json_object_set_new(rollout, variant, json_real(percent));
	}
	if (iac_flags_spec_to_flagd(&f, name, copy) < 0) {
		json_decref(copy);
		return -1;
	}
	json_decref(f);
	*out = copy;
	return 0;
}

/* --- evaluation ---------------------------------------------------------- */

uint32_t iac_flags_hash(const char *bucket_by, size_t len)
{
	return iac_murmur3_32(bucket_by, len, 0);
}

uint32_t iac_flags_bucket(uint32_t hash, uint32_t total)
{
	return (uint32_t)(((uint64_t)hash * total) >> 32);
}

typedef struct {
	const char *flag;
	json_t *data; /* context plus "$flagd" */
	int depth;
} eval_ctx;

/* JavaScript's Number#toString for the numbers a context carries. */
static void js_number(iac_buf *b, double d)
{
	char tmp[64];
	if (isnan(d)) {
		iac_buf_puts(b, "NaN");
		return;
	}
	if (d == floor(d) && fabs(d) < 1e21) {
		iac_buf_printf(b, "%.0f", d == 0 ? 0.0 : d);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	/* "1e-07" -> "1e-7", "1e+21" stays (JS writes "1e+21"). */
	char *e = strchr(tmp, 'e');
	if (e) {
		char mant[32], sign = e[1];
		const char *digits = e + 2;
		while (*digits == '0' && digits[1])
			digits++;
		snprintf(mant, sizeof(mant), "%.*s", (int)(e - tmp), tmp);
		iac_buf_printf(b, "%se%c%s", mant, sign, digits);
		return;
	}
	iac_buf_puts(b, tmp);
}

/* How JavaScript's `'' + value` renders a JSON value (flagd-core compiles
 * `cat` to string concatenation, so a missing attribute becomes "null"). */
static void js_string(iac_buf *b, const json_t *v, int in_array)
{
	size_t i;
	json_t *e;

	if (!v || json_is_null(v)) {
		if (!in_array)
			iac_buf_puts(b, "null");
		return;
	}
	switch (json_typeof(v)) {
	case JSON_STRING:
		iac_buf_put(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_TRUE:
		iac_buf_puts(b, "true");
		break;
	case JSON_FALSE:
		iac_buf_puts(b, "false");
		break;
	case JSON_INTEGER:
		iac_buf_printf(b, "%lld", (long long)json_integer_value(v));
		break;
	case JSON_REAL:
		js_number(b, json_real_value(v));
		break;
	case JSON_ARRAY:
		json_array_foreach(v, i, e) {
			if (i)
				iac_buf_putc(b, ',');
			js_string(b, e, 1);
		}
		break;
	default:
		iac_buf_puts(b, "[object Object]");
	}
}

/* JSONLogic truthiness: false, null, 0, "" and [] are false. */
static int truthy(const json_t *v)
{
	if (!v)
		return 0;
	switch (json_typeof(v)) {
	case JSON_NULL:
	case JSON_FALSE:
		return 0;
	case JSON_INTEGER:
	case JSON_REAL:
		return json_number_value(v) != 0;
	case JSON_STRING:
		return json_string_length(v) > 0;
	case JSON_ARRAY:
		return json_array_size(v) > 0;
	default:
		return 1;
	}
}

static int strict_equal(const json_t *a, const json_t *b)
{
	if (!a || !b)
		return (!a || json_is_null(a)) && (!b || json_is_null(b));
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	if (json_typeof(a) != json_typeof(b))
		return 0;
	if (json_is_string(a))
		return strcmp(json_string_value(a), json_string_value(b)) == 0;
	if (json_is_boolean(a) || json_is_null(a))
		return 1;
	return a == b; /* objects and arrays compare by identity in JS */
}

static int loose_equal(const json_t *a, const json_t *b)
{
	int an = a && (json_is_number(a) || json_is_boolean(a));
	int bn = b && (json_is_number(b) || json_is_boolean(b));
	if (strict_equal(a, b))
		return 1;
	if ((!a || json_is_null(a)) || (!b || json_is_null(b)))
		return 0;
	if ((an && (bn || json_is_string(b))) || (bn && json_is_string(a))) {
		double x, y;
		char *end;
		const json_t *vals[2] = { a, b };
		double *outs[2] = { &x, &y };
		for (int i = 0; i < 2; i++) {
			const json_t *v = vals[i];
			if (json_is_number(v))
				*outs[i] = json_number_value(v);
			else if (json_is_boolean(v))
				*outs[i] = json_is_true(v);
			else {
				const char *s = json_string_value(v);
				*outs[i] = *s ? strtod(s, &end) : 0;
				if (*s && *end)
					return 0;
			}
		}
		return x == y;
	}
	return 0;
}

static int eval_logic(json_t **out, const json_t *logic, eval_ctx *c);

static int eval_var(json_t **out, const json_t *arg, eval_ctx *c)
{
	json_t *path = NULL, *fallback = NULL, *cur;
	iac_buf key = IAC_BUF_INIT;
	int rc = -1;

	if (eval_logic(&path, json_is_array(arg) ? json_array_get(arg, 0) : arg, c) < 0)
		return -1;
	if (json_is_array(arg) && json_array_size(arg) > 1 &&
	    eval_logic(&fallback, json_array_get(arg, 1), c) < 0)
		goto done;
	js_string(&key, path, 1);
	cur = c->data;
	if (key.len > 0) {
		const char *p = key.ptr;
		while (cur && p) {
			const char *dot = strchr(p, '.');
			char *part = dot ? iac_xstrndup(p, (size_t)(dot - p)) : iac_xstrdup(p);
			if (json_is_object(cur)) {
				cur = json_object_get(cur, part);
			} else if (json_is_array(cur)) {
				char *end;
				long idx = strtol(part, &end, 10);
				cur = (*part && !*end && idx >= 0) ? json_array_get(cur, (size_t)idx) : NULL;
			} else {
				cur = NULL;
			}
			free(part);
			p = dot ? dot + 1 : NULL;
		}
	}
	if (!cur || json_is_null(cur))
		*out = fallback ? json_incref(fallback) : NULL;
	else
		*out = json_incref(cur);
	rc = 0;
done:
	iac_buf_free(&key);
	json_decref(path);
	json_decref(fallback);
	return rc;
}

static int eval_args(json_t **out, const json_t *arg, eval_ctx *c)
{
	json_t *list = json_array(), *v;
	size_t i;
	if (!json_is_array(arg)) {
		if (eval_logic(&v, arg, c) < 0) {
			json_decref(list);
			return -1;
		}
		json_array_append_new(list, v ? v : json_null());
		*out = list;
		return 0;
	}
	json_array_foreach(arg, i, v) {
		json_t *r;
		if (eval_logic(&r, v, c) < 0) {
			json_decref(list);
			return -1;
		}
		json_array_append_new(list, r ? r : json_null());
	}
	*out = list;
	return 0;
}

/* fractional: see the file comment. A configuration flagd rejects yields
 * null (the default variant), as flagd-core does. */
static int eval_fractional(json_t **out, const json_t *arg, eval_ctx *c)
{
	json_t *args = NULL, *e;
	iac_buf key = IAC_BUF_INIT;
	size_t start = 0, i;
	uint64_t total = 0, sum = 0;

	*out = NULL;
	if (!json_is_array(arg))
		return 0;
	if (eval_args(&args, arg, c) < 0)
		return -1;
	if (json_array_size(args) < 1)
		goto done;
	e = json_array_get(args, 0);
	if (json_is_string(e)) {
		iac_buf_put(&key, json_string_value(e), json_string_length(e));
		start = 1;
	} else {
		const json_t *tk = json_object_get(c->data, "targetingKey");
		/* JavaScript truthiness here (flagd-core tests `!targetingKey`). */
		if (!tk || json_is_null(tk) || json_is_false(tk) ||
		    (json_is_number(tk) && json_number_value(tk) == 0) ||
		    (json_is_string(tk) && json_string_length(tk) == 0))
			goto done;
		iac_buf_puts(&key, c->flag);
		js_string(&key, tk, 0);
	}
	for (i = start; i < json_array_size(args); i++) {
		e = json_array_get(args, i);
		if (!json_is_array(e) || json_array_size(e) == 0 || json_array_size(e) > 2)
			goto done;
		json_t *variant = json_array_get(e, 0);
		if (!json_is_string(variant) && !json_is_number(variant) && !json_is_boolean(variant) &&
		    !json_is_null(variant))
			goto done;
		if (json_array_size(e) == 2) {
			json_t *w = json_array_get(e, 1);
			if (!json_is_number(w) || json_number_value(w) != floor(json_number_value(w)))
				goto done;
			if (json_number_value(w) > 0)
				total += (uint64_t)json_number_value(w);
		} else {
			total += 1;
		}
	}
	if (total > 2147483647u)
		goto done;
	uint32_t bucket = iac_flags_bucket(iac_flags_hash(key.ptr ? key.ptr : "", key.len), (uint32_t)total);
	for (i = start; i < json_array_size(args); i++) {
		e = json_array_get(args, i);
		json_t *w = json_array_get(e, 1);
		sum += w ? (json_number_value(w) > 0 ? (uint64_t)json_number_value(w) : 0) : 1;
		if (sum > bucket) {
			json_t *variant = json_array_get(e, 0);
			*out = json_is_null(variant) ? NULL : json_incref(variant);
			break;
		}
	}
done:
	iac_buf_free(&key);
	json_decref(args);
	return 0;
}

/* cat: arguments joined as JavaScript would stringify them. */
static int eval_cat(json_t **out, const json_t *arg, eval_ctx *c)
{
	json_t *args = NULL, *e;
	iac_buf b = IAC_BUF_INIT;
	size_t i;

	if (eval_args(&args, arg, c) < 0)
		return -1;
	json_array_foreach(args, i, e)
		js_string(&b, e, 0);
	*out = json_stringn(iac_buf_cstr(&b), b.len);
	iac_buf_free(&b);
	json_decref(args);
	return 0;
}

/* if / ?: — lazy: only the chosen branch is evaluated, so a branch not
 * taken can neither fail nor cost anything. */
static int eval_if(json_t **out, const json_t *arg, eval_ctx *c)
{
	size_t n = json_is_array(arg) ? json_array_size(arg) : 0, i;
	int rc = 0;

	for (i = 0; i + 1 < n; i += 2) {
		json_t *cond;
		if ((rc = eval_logic(&cond, json_array_get(arg, i), c)) < 0)
			break;
		int t = truthy(cond);
		json_decref(cond);
		if (t) {
			rc = eval_logic(out, json_array_get(arg, i + 1), c);
			break;
		}
	}
	/* An odd count leaves a trailing else branch. */
	if (rc == 0 && i + 1 >= n && i < n)
		rc = eval_logic(out, json_array_get(arg, i), c);
	return rc;
}

/* ==, ===, != and !==: the three-character forms compare strictly. */
static int eval_equality(json_t **out, const char *op, const json_t *arg, eval_ctx *c)
{
	json_t *args = NULL;

	if (eval_args(&args, arg, c) < 0)
		return -1;
	json_t *a = json_array_get(args, 0), *b = json_array_get(args, 1);
	int eq = op[1] == '=' && op[2] == '=' ? strict_equal(a, b)
		 : op[0] == '!' && op[2] == '=' ? strict_equal(a, b) : loose_equal(a, b);
	if (op[0] == '!')
		eq = !eq;
	*out = json_boolean(eq);
	json_decref(args);
	return 0;
}

/* in: membership in an array, or a substring of a string. */
static int eval_in(json_t **out, const json_t *arg, eval_ctx *c)
{
	json_t *args = NULL, *needle, *hay, *e;
	int found = 0;
	size_t i;

	if (eval_args(&args, arg, c) < 0)
		return -1;
	needle = json_array_get(args, 0);
	hay = json_array_get(args, 1);
	if (json_is_array(hay)) {
		json_array_foreach(hay, i, e)
			found |= strict_equal(needle, e);
	} else if (json_is_string(hay)) {
		iac_buf nb = IAC_BUF_INIT;
		js_string(&nb, needle, 0);
		found = strstr(json_string_value(hay), iac_buf_cstr(&nb)) != NULL;
		iac_buf_free(&nb);
	}
	*out = json_boolean(found);
	json_decref(args);
	return 0;
}

static int eval_op(json_t **out, const char *op, const json_t *arg, eval_ctx *c)
{
	if (strcmp(op, "var") == 0)
		return eval_var(out, arg, c);
	if (strcmp(op, "fractional") == 0)
		return eval_fractional(out, arg, c);
	if (strcmp(op, "cat") == 0)
		return eval_cat(out, arg, c);
	if (strcmp(op, "if") == 0 || strcmp(op, "?:") == 0)
		return eval_if(out, arg, c);
	if (!strcmp(op, "==") || !strcmp(op, "===") || !strcmp(op, "!=") || !strcmp(op, "!=="))
		return eval_equality(out, op, arg, c);
	if (strcmp(op, "in") == 0)
		return eval_in(out, arg, c);
	return iac_err_set("flag '%s': targeting operator '%s' is not supported by iac's evaluator "
			   "(fractional, cat, var, if, ==, !=, in)", c->flag, op);
}

/* JsonLogic: an array evaluates element-wise, an object with one key is an
 * operation, anything else is a literal. */
static int eval_logic(json_t **out, const json_t *logic, eval_ctx *c)
{
	int rc;

	*out = NULL;
	if (!logic || json_is_null(logic))
		return 0;
	if (json_is_array(logic))
		return eval_args(out, logic, c);
	if (!json_is_object(logic) || json_object_size(logic) != 1) {
		*out = json_incref((json_t *)logic);
		return 0;
	}
	/* Targeting comes from config files; bound the recursion. */
	if (++c->depth > 64) {
		c->depth--;
		return iac_err_set("flag '%s': targeting is nested too deeply", c->flag);
	}
	void *it = json_object_iter((json_t *)logic);
	rc = eval_op(out, json_object_iter_key(it), json_object_iter_value(it), c);
	c->depth--;
	return rc;
}

int iac_flags_eval(const char **out_variant, json_t **out_value, const json_t *flagd_doc,
		   const char *flag, const json_t *context)
{
	json_t *f, *variants, *targeting, *result = NULL, *value;
	const char *state, *variant = NULL;
	eval_ctx c = { flag, NULL, 0 };
	int rc = -1;

	*out_variant = NULL;
	*out_value = NULL;
	f = json_object_get(json_object_get(flagd_doc, "flags"), flag);
	if (!json_is_object(f)) {
		iac_err_set("flag '%s' not found", flag);
		return IAC_ENOTFOUND;
	}
	state = iac_json_str(f, "state");
	if (!state || (strcmp(state, "ENABLED") != 0 && strcmp(state, "DISABLED") != 0))
		return iac_err_set("flag '%s': state must be ENABLED or DISABLED", flag);
	if (strcmp(state, "DISABLED") == 0)
		return 0;
	variants = json_object_get(f, "variants");
	if (!json_is_object(variants))
		return iac_err_set("flag '%s': variants is missing", flag);

	targeting = json_object_get(f, "targeting");
	if (json_is_object(targeting) && json_object_size(targeting) > 0) {
		c.data = json_is_object(context) ? json_copy((json_t *)context) : json_object();
		json_object_set_new(c.data, "$flagd", json_pack("{s:s,s:I}", "flagKey", flag,
								  "timestamp", (json_int_t)time(NULL)));
		if (eval_logic(&result, targeting, &c) < 0)
			goto done;
	}
	if (result && !json_is_null(result)) {
		/* flagd-core turns the result into a variant name with toString(). */
		iac_buf name = IAC_BUF_INIT;
		const char *key;
		js_string(&name, result, 0);
		json_object_foreach(variants, key, value) {
			if (strcmp(key, iac_buf_cstr(&name)) == 0) {
				variant = key;
				break;
			}
		}
		if (!variant) {
			iac_err_set("flag '%s': targeting chose variant '%s', which is not one of its variants",
				    flag, iac_buf_cstr(&name));
			iac_buf_free(&name);
			goto done;
		}
		iac_buf_free(&name);
	} else {
		const char *def = iac_json_str(f, "defaultVariant");
		const char *key;
		if (!def) {
			/* No default: flagd tells the application to use its code default. */
			rc = 0;
			goto done;
		}
		json_object_foreach(variants, key, value) {
			if (strcmp(key, def) == 0) {
				variant = key;
				break;
			}
		}
		if (!variant) {
			iac_err_set("flag '%s': default variant '%s' is not one of its variants", flag, def);
			goto done;
		}
	}
	*out_variant = variant;
	*out_value = json_incref(json_object_get(variants, variant));
	rc = 0;
done:
	json_decref(result);
	json_decref(c.data);
	return rc;
}

/* --- layouts: who gets what, for moves and stickiness ---------------------- */

#define HSPACE 4294967296.0 /* 2^32 */

typedef struct {
	uint64_t lo, hi; /* [lo, hi) in hash space */
	const char *variant;
} span;

typedef struct {
	span *spans;
	size_t n;
	const json_t *bucket_by; /* NULL: flagd's implicit flagKey + targetingKey */
	int fractional;
} layout;

static void layout_add(layout *l, uint64_t lo, uint64_t hi, const char *variant)
{
	if (hi <= lo)
		return;
	l->spans = iac_xrealloc(l->spans, (l->n + 1) * sizeof(*l->spans));
	l->spans[l->n++] = (span){ lo, hi, variant };
}

/* Only the shapes a flag can have for this to be exact: no targeting, or a
 * top-level fractional with literal buckets. Anything else is refused. */
static int layout_of(layout *l, const char *which, const json_t *flag)
{
	const char *state, *def;
	json_t *targeting, *frac, *e;
	size_t start = 0, i;
	uint64_t total = 0, sum = 0;

	memset(l, 0, sizeof(*l));
	if (!flag) {
		layout_add(l, 0, (uint64_t)1 << 32, "(absent)");
		return 0;
	}
	state = iac_json_str(flag, "state");
	def = iac_json_str(flag, "defaultVariant");
	if (state && strcmp(state, "DISABLED") == 0) {
		layout_add(l, 0, (uint64_t)1 << 32, "(disabled)");
		return 0;
	}
	if (!def)
		def = "(code default)";
	targeting = json_object_get(flag, "targeting");
	if (!json_is_object(targeting) || json_object_size(targeting) == 0) {
		layout_add(l, 0, (uint64_t)1 << 32, def);
		return 0;
	}
	frac = json_object_get(targeting, "fractional");
	if (json_object_size(targeting) != 1 || !json_is_array(frac))
		return iac_err_set("the %s targeting is not a plain fractional rollout; cannot tell who moves", which);
	e = json_array_get(frac, 0);
	if (e && !json_is_array(e)) {
		l->bucket_by = e;
		start = 1;
	}
	for (i = start; i < json_array_size(frac); i++) {
		e = json_array_get(frac, i);
		json_t *w = json_array_get(e, 1);
		if (!json_is_array(e) || !json_is_string(json_array_get(e, 0)) || (w && !json_is_integer(w)))
			return iac_err_set("the %s fractional entry %zu is not [\"variant\", weight]", which, i);
		total += w ? (json_integer_value(w) > 0 ? (uint64_t)json_integer_value(w) : 0) : 1;
	}
	l->fractional = 1;
	if (total == 0 || total > 2147483647u) {
		free(l->spans);
		l->spans = NULL;
		l->n = 0;
		layout_add(l, 0, (uint64_t)1 << 32, def);
		return 0;
	}
	uint64_t prev = 0;
	for (i = start; i < json_array_size(frac); i++) {
		e = json_array_get(frac, i);
		json_t *w = json_array_get(e, 1);
		sum += w ? (json_integer_value(w) > 0 ? (uint64_t)json_integer_value(w) : 0) : 1;
		/* bucket < sum  <=>  hash < ceil(sum * 2^32 / total) */
		uint64_t bound = ((sum << 32) + total - 1) / total;
		layout_add(l, prev, bound, json_string_value(json_array_get(e, 0)));
		prev = bound;
	}
	return 0;
}

static int cmp_move(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int r = strcmp(iac_json_str(x, "from"), iac_json_str(y, "from"));
	return r ? r : strcmp(iac_json_str(x, "to"), iac_json_str(y, "to"));
}

static void add_move(json_t *moves, const char *from, const char *to, double share)
{
	size_t i;
	json_t *m;
	if (strcmp(from, to) == 0 || share <= 0)
		return;
	json_array_foreach(moves, i, m) {
		if (strcmp(iac_json_str(m, "from"), from) == 0 &&
		    strcmp(iac_json_str(m, "to"), to) == 0) {
			json_object_set_new(m, "share", json_real(json_real_value(json_object_get(m, "share")) + share));
			return;
		}
	}
	json_array_append_new(moves, json_pack("{s:s,s:s,s:f}", "from", from, "to", to, "share", share));
}

int iac_flags_moves(json_t **out, const json_t *old_flag, const json_t *new_flag)
{
	layout a, b;
	json_t *moves;

	*out = NULL;
	if (layout_of(&a, "old", old_flag) < 0)
		return -1;
	if (layout_of(&b, "new", new_flag) < 0) {
		free(a.spans);
		return -1;
	}
	moves = json_array();
	int same_hash = !(a.fractional && b.fractional) ||
			(a.bucket_by ? b.bucket_by && json_equal((json_t *)a.bucket_by, (json_t *)b.bucket_by)
				     : !b.bucket_by);
	for (size_t i = 0; i < a.n; i++) {
		for (size_t j = 0; j < b.n; j++) {
			double share;
			if (same_hash) {
				uint64_t lo = a.spans[i].lo > b.spans[j].lo ? a.spans[i].lo : b.spans[j].lo;
				uint64_t hi = a.spans[i].hi < b.spans[j].hi ? a.spans[i].hi : b.spans[j].hi;
				share = hi > lo ? (double)(hi - lo) / HSPACE : 0;
			} else {
				/* Bucketing by another attribute reshuffles everyone:
				 * the two assignments are independent. */
				share = (double)(a.spans[i].hi - a.spans[i].lo) / HSPACE *
					(double)(b.spans[j].hi - b.spans[j].lo) / HSPACE;
			}
			add_move(moves, a.spans[i].variant, b.spans[j].variant, share);
		}
	}
	size_t n = json_array_size(moves);
	if (n > 1) {
		json_t **items = iac_xmalloc(n * sizeof(*items));
		for (size_t i = 0; i < n; i++)
			items[i] = json_incref(json_array_get(moves, i));
		qsort(items, n, sizeof(*items), cmp_move);
		json_array_clear(moves);
		for (size_t i = 0; i < n; i++)
			json_array_append_new(moves, items[i]);
		free(items);
	}
	free(a.spans);
	free(b.spans);
	*out = moves;
	return 0;
}

int iac_flags_check_sticky(const char *name, const json_t *old_flag, const json_t *new_flag)
{
	json_t *moves, *m;
	const char *old_def;
	size_t i;
	int rc = 0;

	if (!old_flag || !new_flag || !json_is_true(json_object_get(json_object_get(new_flag, "metadata"), "sticky")))
		return 0;
	if (iac_flags_moves(&moves, old_flag, new_flag) < 0) {
		iac_err_prefix("flag '%s'", name);
		return -1;
	}
	old_def = iac_json_str(old_flag, "defaultVariant");
	json_array_foreach(moves, i, m) {
		const char *from = iac_json_str(m, "from");
		const char *to = iac_json_str(m, "to");
		if ((old_def && strcmp(from, old_def) == 0) || from[0] == '(')
			continue;
		rc = iac_err_set("flag '%s': %.2f%% of users would leave '%s' for '%s', but the flag is sticky "
				 "(once on, stays on); raise percents only, or set sticky = false to take users back",
				 name, json_real_value(json_object_get(m, "share")) * 100, from, to);
		break;
	}
	json_decref(moves);
	return rc;
}

void iac_flags_render(iac_buf *out, const json_t *flag)
{
	const char *state = iac_json_str(flag, "state");
	const char *def = iac_json_str(flag, "defaultVariant");
	layout l;

	iac_buf_puts(out, state && strcmp(state, "DISABLED") == 0 ? "disabled" : "enabled");
	if (state && strcmp(state, "DISABLED") == 0) {
		iac_buf_printf(out, " (applications use their code default)");
		return;
	}
	if (layout_of(&l, "flag's", flag) < 0) {
		iac_buf_printf(out, ", default '%s', custom targeting", def ? def : "");
		iac_err_clear();
		return;
	}
	if (!l.fractional) {
		iac_buf_printf(out, ", everyone gets '%s'", def ? def : "(code default)");
	} else {
		/* Sum per variant, in layout order. */
		for (size_t i = 0; i < l.n; i++) {
			size_t j;
			for (j = 0; j < i && strcmp(l.spans[j].variant, l.spans[i].variant) != 0; j++)
				;
			if (j < i)
				continue;
			double share = 0;
			for (j = i; j < l.n; j++)
				if (strcmp(l.spans[j].variant, l.spans[i].variant) == 0)
					share += (double)(l.spans[j].hi - l.spans[j].lo) / HSPACE;
			char pct[64];
			fmt_percent(pct, sizeof(pct), nearbyint(share * 10000) / 100);
			iac_buf_printf(out, ", %s %s%%", l.spans[i].variant, pct);
		}
		const char *by = "targetingKey";
		json_t *args = l.bucket_by ? json_object_get(l.bucket_by, "cat") : NULL;
		if (json_is_array(args) && json_array_size(args) == 2)
			by = iac_json_str(json_array_get(args, 1), "var");
		else if (l.bucket_by)
			by = "a custom expression";
		iac_buf_printf(out, " by '%s'", by ? by : "?");
	}
	free(l.spans);
}
