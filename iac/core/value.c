/* value: markers, resolution, redaction and rendering (see value.h). */
#include "iac/core/value.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static json_t *marker(const char *kind)
{
	return json_pack("{s:s}", "$iac", kind);
}

json_t *iac_value_ref(const char *addr, const char *attr)
{
	json_t *a = addr ? json_string(addr) : NULL, *t = attr ? json_string(attr) : NULL;
	if (!a || !t) {   /* not UTF-8: no reference can name that */
		json_decref(a);
		json_decref(t);
		return NULL;
	}
	json_t *v = marker("ref");
	json_object_set_new(v, "addr", a);
	json_object_set_new(v, "attr", t);
	return v;
}

json_t *iac_value_unknown(void)
{
	return marker("unknown");
}

json_t *iac_value_sensitive(json_t *v)
{
	json_t *m = marker("sensitive");
	json_object_set_new(m, "value", v);
	return m;
}

const char *iac_value_marker(const json_t *v)
{
	if (!json_is_object(v))
		return NULL;
	return iac_json_str(v, "$iac");
}

int iac_value_is_unknown(const json_t *v)
{
	const char *m = iac_value_marker(v);
	return m && !strcmp(m, "unknown");
}

int iac_value_has_unknown(const json_t *v)
{
	const char *k;
	json_t *e;
	size_t i;

	if (iac_value_is_unknown(v))
		return 1;
	if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			if (iac_value_has_unknown(e))
				return 1;
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, e)
			if (iac_value_has_unknown(e))
				return 1;
	}
	return 0;
}

/* Append the string form of a resolved template part. */
static int tpl_append(iac_buf *b, const json_t *part)
{
	char num[64];

	if (json_is_string(part))
		iac_buf_put(b, json_string_value(part), json_string_length(part));
	else if (json_is_integer(part))
		iac_buf_printf(b, "%lld", (long long)json_integer_value(part));
	else if (json_is_real(part)) {
		double d = json_real_value(part);
		if (d == floor(d) && fabs(d) < 1e15)
			snprintf(num, sizeof(num), "%.1f", d);
		else
			snprintf(num, sizeof(num), "%.14g", d);
		iac_buf_puts(b, num);
	} else if (json_is_boolean(part))
		iac_buf_puts(b, json_is_true(part) ? "true" : "false");
	else
		return iac_err_set("cannot concatenate a %s into a string", iac_value_type_name(part));
	return 0;
}

static json_t *resolve_tpl(const json_t *parts, iac_value_resolver fn, void *ud, unsigned *flags)
{
	iac_buf b = IAC_BUF_INIT;
	unsigned sub = 0;
	json_t *e, *out = NULL;
	size_t i;

	json_array_foreach(parts, i, e) {
		json_t *r = iac_value_resolve(e, fn, ud, &sub);
		if (!r)
			goto done;
		if (iac_value_is_unknown(r)) {
			json_decref(r);
			continue;
		}
		int rc = tpl_append(&b, r);
		json_decref(r);
		if (rc < 0)
			goto done;
	}
	out = (sub & IAC_VAL_UNKNOWN) ? iac_value_unknown()
				      : json_stringn(iac_buf_cstr(&b), b.len);
	*flags |= sub;
done:
	iac_buf_free(&b);
	return out;
}

json_t *iac_value_resolve(const json_t *v, iac_value_resolver fn, void *ud, unsigned *flags)
{
	unsigned dummy = 0;
	const char *m = iac_value_marker(v), *k;
	json_t *e, *out;
	size_t i;

	if (!flags)
		flags = &dummy;
	if (m) {
		if (!strcmp(m, "ref")) {
			json_t *r = NULL;
			const char *addr = iac_json_str(v, "addr");
			const char *attr = iac_json_str(v, "attr");
			if (!fn) {
				*flags |= IAC_VAL_UNKNOWN;
				return iac_value_unknown();
			}
			if (fn(&r, addr, attr, ud) < 0)
				return NULL;
			/* the resolved value may itself be a marker (sensitive, unknown) */
			out = iac_value_resolve(r, fn, ud, flags);
			json_decref(r);
			return out;
		}
		if (!strcmp(m, "tpl"))
			return resolve_tpl(json_object_get(v, "parts"), fn, ud, flags);
		if (!strcmp(m, "sensitive")) {
			*flags |= IAC_VAL_SENSITIVE;
			return iac_value_resolve(json_object_get(v, "value"), fn, ud, flags);
		}
		if (!strcmp(m, "unknown"))
			*flags |= IAC_VAL_UNKNOWN;
		return json_deep_copy(v);
	}
	if (json_is_array(v)) {
		out = json_array();
		json_array_foreach(v, i, e) {
			json_t *r = iac_value_resolve(e, fn, ud, flags);
			if (!r) {
				json_decref(out);
				return NULL;
			}
			json_array_append_new(out, r);
		}
		return out;
	}
	if (json_is_object(v)) {
		out = json_object();
		json_object_foreach((json_t *)v, k, e) {
			json_t *r = iac_value_resolve(e, fn, ud, flags);
			if (!r) {
				json_decref(out);
				return NULL;
			}
			json_object_set_new(out, k, r);
		}
		return out;
	}
	return json_incref((json_t *)v);
}

void iac_value_refs(const json_t *v, void (*fn)(const char *addr, void *ud), void *ud)
{
	const char *m = iac_value_marker(v), *k;
	json_t *e;
	size_t i;

	if (m && !strcmp(m, "ref")) {
		fn(iac_json_str(v, "addr"), ud);
		return;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			iac_value_refs(e, fn, ud);
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, e)
			iac_value_refs(e, fn, ud);
	}
}

json_t *iac_value_redact(const json_t *v, const char *salt)
{
	char hex[65];
	const char *m = iac_value_marker(v);

	if (m && !strcmp(m, "redacted"))
		return json_deep_copy(v);
	char *dump = json_dumps(v, JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_COMPACT);
	char *salted = iac_xasprintf("%s\n%s", salt ? salt : "", dump ? dump : "null");
	iac_sha256_hex(hex, salted, strlen(salted));
	free(salted);
	free(dump);
	json_t *r = marker("redacted");
	json_object_set_new(r, "sha256", json_string(hex));
	return r;
}

int iac_value_equal(const json_t *a, const json_t *b)
{
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	if (json_is_array(a) && json_is_array(b)) {
		size_t n = json_array_size(a);
		if (n != json_array_size(b))
			return 0;
		for (size_t i = 0; i < n; i++)
			if (!iac_value_equal(json_array_get(a, i), json_array_get(b, i)))
				return 0;
		return 1;
	}
	if (json_is_object(a) && json_is_object(b)) {
		const char *k;
		json_t *e;
		if (json_object_size(a) != json_object_size(b))
			return 0;
		json_object_foreach((json_t *)a, k, e)
			if (!iac_value_equal(e, json_object_get(b, k)))
				return 0;
		return 1;
	}
	if (!a || !b)
		return a == b;
	return json_equal((json_t *)a, (json_t *)b);
}

void iac_value_render(iac_buf *out, const json_t *v)
{
	const char *m = iac_value_marker(v), *k;
	json_t *e;
	size_t i;

	if (!v) {
		iac_buf_puts(out, "null");
		return;
	}
	if (m) {
		if (!strcmp(m, "unknown") || !strcmp(m, "ref") || !strcmp(m, "tpl"))
			iac_buf_puts(out, "(known after apply)");
		else
			iac_buf_puts(out, "(sensitive)");
		return;
	}
	if (json_is_array(v)) {
		iac_buf_putc(out, '[');
		json_array_foreach(v, i, e) {
			if (i)
				iac_buf_puts(out, ", ");
			iac_value_render(out, e);
		}
		iac_buf_putc(out, ']');
		return;
	}
	if (json_is_object(v)) {
		int first = 1;
		iac_buf_putc(out, '{');
		json_object_foreach((json_t *)v, k, e) {
			iac_buf_printf(out, "%s%s = ", first ? " " : ", ", k);
			iac_value_render(out, e);
			first = 0;
		}
		iac_buf_puts(out, first ? "}" : " }");
		return;
	}
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
	iac_buf_puts(out, s ? s : "?");
	free(s);
}

const char *iac_value_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "table";
	case JSON_ARRAY: return "list";
	case JSON_STRING: return "string";
	case JSON_INTEGER:
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	default: return "nil";
	}
}

int iac_value_is_string_list(const json_t *v)
{
	json_t *e;
	size_t i;
	if (!json_is_array(v))
		return 0;
	json_array_foreach(v, i, e)
		if (!json_is_string(e))
			return 0;
	return 1;
}
