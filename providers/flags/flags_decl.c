/* flags_decl: turn `flag` declarations into delivery resources.
 *
 * Each flag names where it goes: deliver = { file = { host = h, path = p },
 * etcd = { endpoints = e, key = k } } (each may also be a list). Flags
 * that share a target share one resource holding all of them:
 *   flags.file.<host>_<path>   { host, path, flags = { NAME = spec, ... } }
 *   flags.etcd.<key>           { endpoints, key, flags = { ... } }
 * so one file is written once with every flag it must carry.
 */
#include "providers/flags/flags_res.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/load/config.h"

static void sanitize(iac_buf *b, const char *s)
{
	for (; *s; s++) {
		char c = *s;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
		if (!ok && (!b->len || b->ptr[b->len - 1] == '_'))
			continue;   /* no leading or doubled '_' */
		iac_buf_putc(b, ok ? c : '_');
	}
	while (b->len && b->ptr[b->len - 1] == '_')
		b->ptr[--b->len] = '\0';
}

static iac_rconf *target(iac_config *cfg, const char *type, const char *name, const json_t *spec)
{
	iac_rconf *r = iac_config_add(cfg, type, name, iac_json_str(spec, "file"),
				      (int)json_integer_value(json_object_get(spec, "line")));
	if (!json_object_get(r->attrs, "flags"))
		json_object_set_new(r->attrs, "flags", json_object());
	return r;
}

/* `one` may be a single target object or a list of them. */
static int each_target(const json_t *one, int (*fn)(iac_config *, const char *, const json_t *, const json_t *),
		       iac_config *cfg, const char *flag, const json_t *spec)
{
	if (json_is_object(one))
		return fn(cfg, flag, spec, one);
	json_t *e;
	size_t i;
	json_array_foreach(one, i, e)
		if (fn(cfg, flag, spec, e) < 0)
			return IAC_ERR;
	return 0;
}

static json_t *bare_spec(const json_t *spec)
{
	json_t *s = json_deep_copy(spec);
	json_object_del(s, "deliver");
	json_object_del(s, "file");
	json_object_del(s, "line");
	return s;
}

static int add_file(iac_config *cfg, const char *flag, const json_t *spec, const json_t *t)
{
	const json_t *host = json_object_get(t, "host");
	const char *path = iac_json_str(t, "path");
	iac_buf name = IAC_BUF_INIT;
	if (!path)
		return iac_err_set("%s:%lld: flag '%s': deliver.file needs a 'path'",
				   iac_json_str(spec, "file"),
				   (long long)json_integer_value(json_object_get(spec, "line")), flag);
	if (host && !json_is_object(host))
		return iac_err_set("%s:%lld: flag '%s': deliver.file.host must be a host", iac_json_str(spec, "file"),
				   (long long)json_integer_value(json_object_get(spec, "line")), flag);
	sanitize(&name, host ? (iac_json_str(host, "name") ?: "host") : "local");
	iac_buf_putc(&name, '_');
	sanitize(&name, path);
	iac_rconf *r = target(cfg, "flags.file", iac_buf_cstr(&name), spec);
	iac_buf_free(&name);
	if (host)
		json_object_set(r->attrs, "host", (json_t *)host);
	json_object_set_new(r->attrs, "path", json_string(path));
	json_object_set_new(json_object_get(r->attrs, "flags"), flag, bare_spec(spec));
	return 0;
}

static int add_etcd(iac_config *cfg, const char *flag, const json_t *spec, const json_t *t)
{
	const char *ep = iac_json_str(t, "endpoints");
	const char *key = iac_json_str(t, "key");
	iac_buf name = IAC_BUF_INIT;
	if (!ep || !key)
		return iac_err_set("%s:%lld: flag '%s': deliver.etcd needs 'endpoints' and 'key'",
				   iac_json_str(spec, "file"),
				   (long long)json_integer_value(json_object_get(spec, "line")), flag);
	sanitize(&name, key);
	iac_rconf *r = target(cfg, "flags.etcd", name.len ? iac_buf_cstr(&name) : "root", spec);
	iac_buf_free(&name);
	json_object_set_new(r->attrs, "endpoints", json_string(ep));
	json_object_set_new(r->attrs, "key", json_string(key));
	json_object_set_new(json_object_get(r->attrs, "flags"), flag, bare_spec(spec));
	return 0;
}

static int expand(iac_config *cfg)
{
	json_t *flags = json_object_get(cfg->sections, "flags"), *spec;
	const char *name;

	if (!json_object_size(flags))
		return 0;
	json_object_foreach(flags, name, spec) {
		const json_t *d = json_object_get(spec, "deliver");
		const char *file = iac_json_str(spec, "file");
		long long line = (long long)json_integer_value(json_object_get(spec, "line"));
		if (!json_is_object(d) || (!json_object_get(d, "file") && !json_object_get(d, "etcd")))
			return iac_err_set("%s:%lld: flag '%s': say where it goes: deliver = { file = { host = h, "
					   "path = \"/etc/app/flags.json\" } } or deliver = { etcd = { endpoints = ..., "
					   "key = ... } }", file, line, name);
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)d, k, v)
			if (strcmp(k, "file") && strcmp(k, "etcd"))
				return iac_err_set("%s:%lld: flag '%s': unknown delivery '%s' (use file or etcd)",
						   file, line, name, k);
		if (json_object_get(d, "file") && each_target(json_object_get(d, "file"), add_file, cfg, name, spec) < 0)
			return IAC_ERR;
		if (json_object_get(d, "etcd") && each_target(json_object_get(d, "etcd"), add_etcd, cfg, name, spec) < 0)
			return IAC_ERR;
	}
	return 0;
}

static void names_of(iac_buf *b, const json_t *obj)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v)
		iac_buf_printf(b, "%s%s", b->len ? ", " : "", k);
	if (!b->len)
		iac_buf_puts(b, "none");
}

/* A deployment's flags_on_rollback is used in an emergency: a typo found
 * then is found too late. Every flag it names must be declared, every
 * variant one of that flag's variants. */
static int check_rollback(const iac_config *cfg)
{
	json_t *flags = json_object_get(cfg->sections, "flags");
	for (size_t i = 0; i < cfg->nres; i++) {
		const iac_rconf *r = cfg->res[i];
		json_t *fl = json_object_get(r->attrs, "flags_on_rollback"), *v;
		const char *name;
		if (!json_is_object(fl))
			continue;
		json_object_foreach(fl, name, v) {
			json_t *spec = json_object_get(flags, name);
			json_t *variants = json_object_get(spec, "variants");
			iac_buf b = IAC_BUF_INIT;
			int rc = 0;
			if (!spec) {
				names_of(&b, flags);
				rc = iac_err_set("%s:%d: '%s': flags_on_rollback names flag '%s', which is not declared "
						 "(declared flags: %s)", r->file, r->line, r->addr, name, iac_buf_cstr(&b));
			} else if (!json_is_string(v)) {
				rc = iac_err_set("%s:%d: '%s': flags_on_rollback.%s must be a variant name (a string)",
						 r->file, r->line, r->addr, name);
			} else if (json_is_object(variants) && !json_object_get(variants, json_string_value(v))) {
				names_of(&b, variants);
				rc = iac_err_set("%s:%d: '%s': flags_on_rollback.%s = \"%s\" is not a variant of flag '%s' "
						 "(variants: %s)", r->file, r->line, r->addr, name, json_string_value(v), name,
						 iac_buf_cstr(&b));
			}
			iac_buf_free(&b);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int iac_prov_flags_decl_finalize(iac_config *cfg)
{
	return expand(cfg) < 0 || check_rollback(cfg) < 0 ? IAC_ERR : 0;
}
