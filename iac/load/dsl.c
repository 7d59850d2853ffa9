/* dsl: the declarations of the topology language.
 *
 *   resource "local.file" "conf" { path = ..., depends_on = {...},
 *                                  lifecycle = {...}, triggers = {...} }
 *   data "ssh.facts" "web1" { host = web1 }
 *   output "name" { value = ..., sensitive = false, description = "" }
 *   provider "ssh" { user = "root", ... }
 *   provider "http" "pdns" { base_url = ... }  -> a named instance
 *   host "web1" { address = "10.0.0.2", port = 22, user = "root", labels = {...} }
 *   hosts { role = "web" }                 -> list of matching hosts
 *   flag "name" { ... }                    -> feature flag (iac/flags)
 *   file("path"), sha256(s), jsonencode(v), jsondecode(s)
 * Every declaration checks what it can right away and reports
 * "FILE:LINE: what is wrong".
 */
#include "iac/load/load_int.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/base64.h"
#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/load/lua_value.h"
#include "iac/state/backend.h"

#define HOSTS_KEY "iac.hosts"

/* "; did you mean 'x'?" or "" into buf. */
static void suggest(char *buf, size_t len, const char *want, const char *const *cands, size_t n)
{
	const char *pick = iac_suggest(want, cands, n);
	if (pick)
		snprintf(buf, len, "; did you mean '%s'?", pick);
	else
		buf[0] = '\0';
}

static int valid_name(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!(*s == '_' || *s == '-' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9')))
			return 0;
	return 1;
}

const char *iac_dsl_type_mismatch(int type, const json_t *v)
{
	const char *m = iac_value_marker(v);
	if (m && (!strcmp(m, "ref") || !strcmp(m, "unknown") || !strcmp(m, "sensitive")))
		return NULL;   /* checked once the value is known */
	switch (type) {
	case IAC_T_STRING:
		return (json_is_string(v) || (m && !strcmp(m, "tpl"))) ? NULL : "a string";
	case IAC_T_NUMBER:
		return json_is_number(v) ? NULL : "a number";
	case IAC_T_BOOL:
		return json_is_boolean(v) ? NULL : "a boolean";
	case IAC_T_LIST:
		return (json_is_array(v) || (json_is_object(v) && !m && !json_object_size(v))) ? NULL : "a list";
	case IAC_T_MAP:
		return (json_is_object(v) && !m) ? NULL : "a table of named fields";
	case IAC_T_HOST:
		return (json_is_object(v) && (json_is_string(json_object_get(v, "address")) ||
					      iac_value_marker(json_object_get(v, "address")))) ? NULL
			: "a host (from host \"name\" { ... })";
	default:
		return NULL;
	}
}

static const char *type_word(const json_t *v)
{
	const char *m = iac_value_marker(v);
	if (m && !strcmp(m, "tpl"))
		return "string";
	return iac_value_type_name(v);
}

/* Raise a Lua error with a message built in C (frees nothing). */
static int raise(lua_State *L, const char *fmt, const char *a, const char *b, const char *c)
{
	return iac_load_error(L, fmt, a, b, c);
}

/* depends_on = { handle, ref, ... } -> addresses */
static json_t *depends_list(lua_State *L, int idx, const char *addr)
{
	json_t *out = json_array();
	if (!lua_istable(L, idx) || iac_lua_handle_addr(L, idx)) {
		json_decref(out);
		iac_load_error(L, "resource '%s': depends_on must be a list of resources or modules, like "
			   "depends_on = { conf }", addr);
		return NULL;
	}
	lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, idx, i);
		const char *a = iac_lua_handle_addr(L, -1);
		if (!a && lua_istable(L, -1)) {
			lua_getfield(L, -1, "addr");   /* a reference: depend on its resource */
			a = lua_tostring(L, -1);
			lua_pop(L, 1);
		}
		if (!a) {
			json_decref(out);
			iac_load_error(L, "resource '%s': depends_on[%d] is a %s, not a resource or module", addr,
				   (int)i, luaL_typename(L, -1));
			return NULL;
		}
		json_array_append_new(out, json_string(a));
		lua_pop(L, 1);
	}
	return out;
}

static void lifecycle(lua_State *L, int idx, iac_rconf *r)
{
	if (!lua_istable(L, idx))
		iac_load_error(L, "resource '%s': lifecycle must be a table", r->addr);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		const char *k = lua_tostring(L, -2);
		if (k && !strcmp(k, "create_before_destroy"))
			r->create_before_destroy = lua_toboolean(L, -1);
		else if (k && !strcmp(k, "prevent_destroy"))
			r->prevent_destroy = lua_toboolean(L, -1);
		else if (k && !strcmp(k, "ignore_changes")) {
			json_t *l = json_array();
			json_decref(r->ignore_changes);
			r->ignore_changes = l;   /* owned by the config before anything can raise */
			if (lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "all"))
				json_array_append_new(l, json_string("*"));
			else if (lua_istable(L, -1)) {
				lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
				for (lua_Integer i = 1; i <= n; i++) {
					lua_rawgeti(L, -1, i);
					if (lua_type(L, -1) != LUA_TSTRING)
						iac_load_error(L, "resource '%s': ignore_changes lists attribute names", r->addr);
					const char *an = lua_tostring(L, -1);
					if (strcmp(an, "triggers") && !iac_rtype_attr(r->rtype, an))
						iac_load_error(L, "resource '%s': ignore_changes names '%s', which type '%s' "
							       "has no attribute of", r->addr, an, r->type);
					json_array_append_new(l, json_string(lua_tostring(L, -1)));
					lua_pop(L, 1);
				}
			} else {
				iac_load_error(L, "resource '%s': ignore_changes is a list of attribute names or \"all\"",
					   r->addr);
			}
		} else {
			iac_load_error(L, "resource '%s': unknown lifecycle setting '%s' (use create_before_destroy, "
				   "prevent_destroy, ignore_changes)", r->addr, k ? k : "?");
		}
		lua_pop(L, 1);
	}
}

/* Turn a host given by name into its object. */
static json_t *host_by_name(loader *ld, const char *name)
{
	json_t *h = json_object_get(ld->cfg->hosts, name);
	return h ? json_incref(h) : NULL;
}

/* Check r->attrs[k] against the schema, converting where needed. It may
 * raise a Lua error: it holds no reference of its own, so nothing leaks. */
static void check_attr(lua_State *L, iac_rconf *r, const char *k)
{
	char hint[128];
	json_t *v = json_object_get(r->attrs, k);
	const iac_attr *a = iac_rtype_attr(r->rtype, k);
	if (!a) {
		const char *names[64];
		size_t n = 0;
		for (const iac_attr *x = r->rtype->attrs; x && x->name && n < 64; x++)
			names[n++] = x->name;
		suggest(hint, sizeof(hint), k, names, n);
		iac_load_error(L, "resource '%s': unknown attribute '%s' for type '%s'%s", r->addr, k, r->type, hint);
	}
	if ((a->flags & IAC_A_COMPUTED) && !r->is_data)
		iac_load_error(L, "resource '%s': attribute '%s' is computed by the provider and cannot be set",
			   r->addr, k);
	if (a->type == IAC_T_HOST && json_is_string(v)) {
		json_t *h = host_by_name(iac_load_get(L), json_string_value(v));
		if (!h)
			iac_load_error(L, "resource '%s': attribute 'host': no host named '%s' is declared", r->addr,
				   json_string_value(v));
		json_object_set_new(r->attrs, k, h);
		v = h;
	}
	const char *want = iac_dsl_type_mismatch(a->type, v);
	if (want)
		iac_load_error(L, "resource '%s': attribute '%s' must be %s, got a %s", r->addr, k, want, type_word(v));
	if (a->type == IAC_T_LIST && json_is_object(v))
		json_object_set_new(r->attrs, k, json_array());
}

/* An unknown type, or a resource declared as data (or the other way):
 * the error, with the closest known name. */
static int type_error(lua_State *L, const iac_rtype *rt, const char *type, const char *name, int is_data)
{
	const char *names[128];
	char hint[128];
	size_t n = 0;
	const iac_provider *const *all = iac_provider_all();
	for (size_t i = 0; all[i]; i++)
		for (size_t j = 0; all[i]->types[j] && n < 128; j++)
			if (all[i]->types[j]->is_data == is_data)
				names[n++] = all[i]->types[j]->name;
	suggest(hint, sizeof(hint), type, names, n);
	if (rt)
		return iac_load_error(L, "'%s' is a %s; declare it with %s \"%s\" \"%s\" { ... }", type,
				      is_data ? "resource" : "data source", is_data ? "resource" : "data", type, name);
	return iac_load_error(L, "unknown %s type '%s'%s", is_data ? "data source" : "resource", type, hint);
}

/* A new resource, registered in the config right away, so that the config
 * frees it even if a check of its body raises. */
static iac_rconf *new_rconf(loader *ld, const char *addr, const char *type, const char *name,
			    const char *file, int line)
{
	iac_rconf *r = iac_xcalloc(1, sizeof(*r));
	r->addr = iac_xstrdup(addr);
	r->type = iac_xstrdup(type);
	r->name = iac_xstrdup(name);
	r->module = iac_xstrdup(ld->cur->prefix);
	r->file = iac_xstrdup(file);
	r->line = line;
	r->attrs = json_object();
	r->deps = json_array();
	if (ld->cfg->nres == ld->cfg->capres) {
		ld->cfg->capres = ld->cfg->capres ? ld->cfg->capres * 2 : 64;
		ld->cfg->res = iac_xrealloc(ld->cfg->res, ld->cfg->capres * sizeof(*ld->cfg->res));
	}
	ld->cfg->res[ld->cfg->nres++] = r;
	iac_map_put(&ld->cfg->by_addr, addr, r);
	return r;
}

/* One key of a resource body (key at -2, value at -1): depends_on,
 * lifecycle, triggers or an attribute. Raises on a bad value. */
static void body_key(lua_State *L, iac_rconf *r, const char *k)
{
	char err[1024];
	if (!strcmp(k, "depends_on")) {
		json_decref(r->deps);
		r->deps = depends_list(L, lua_gettop(L), r->addr);
	} else if (!strcmp(k, "lifecycle")) {
		lifecycle(L, lua_gettop(L), r);
	} else if (!strcmp(k, "triggers")) {
		char what[1400];
		snprintf(what, sizeof(what), "resource '%s': triggers", r->addr);
		json_t *t = iac_lua_to_json(L, -1, what, err, sizeof(err));
		if (!t && err[0])
			iac_load_error(L, "%s", err);
		if (t && (!json_is_object(t) || iac_value_marker(t))) {
			json_decref(t);
			iac_load_error(L, "resource '%s': triggers must be a table of named values", r->addr);
		}
		r->triggers = t;
	} else {
		const iac_attr *sa = iac_rtype_attr(r->rtype, k);
		json_t *v = (sa && (sa->flags & IAC_A_WATCH)) ? iac_lua_to_json_watch(L, -1, k, err, sizeof(err))
							      : iac_lua_to_json(L, -1, k, err, sizeof(err));
		if (!v && err[0])
			iac_load_error(L, "resource '%s': attribute %s", r->addr, err);
		if (v) {
			/* stored first: check_attr may raise and the config owns it */
			json_object_set_new(r->attrs, k, v);
			check_attr(L, r, k);
		}
	}
}

static int resource_body(lua_State *L)
{
	loader *ld = iac_load_get(L);
	const char *type = lua_tostring(L, lua_upvalueindex(1));
	const char *name = lua_tostring(L, lua_upvalueindex(2));
	int is_data = lua_toboolean(L, lua_upvalueindex(3));
	const iac_provider *prov = NULL;
	char file[256], addr[1024];
	int line;

	iac_load_where(L, file, sizeof(file), &line);
	if (!lua_istable(L, 1))
		return iac_load_error(L, "%s '%s.%s': expected a table of attributes { ... }", is_data ? "data" : "resource",
				  type, name);
	const iac_rtype *rt = iac_provider_find_type(type, &prov);
	if (!rt || rt->is_data != is_data)
		return type_error(L, rt, type, name, is_data);
	snprintf(addr, sizeof(addr), "%s%s%s%s.%s", ld->cur->prefix, ld->cur->prefix[0] ? "." : "",
		 is_data ? "data." : "", type, name);
	iac_rconf *prev = iac_config_get(ld->cfg, addr);
	if (prev) {
		char at[300];
		snprintf(at, sizeof(at), "%s:%d", prev->file, prev->line);
		return raise(L, "%s '%s' declared twice (first at %s)", is_data ? "data" : "resource", addr, at);
	}
	json_object_del(ld->pending, addr);
	iac_rconf *r = new_rconf(ld, addr, type, name, file, line);
	r->is_data = is_data;
	r->rtype = rt;
	r->provider = prov;
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			return iac_load_error(L, "resource '%s': attributes must be named (found a list item)", addr);
		body_key(L, r, lua_tostring(L, -2));
		lua_pop(L, 1);
	}
	for (const iac_attr *a = rt->attrs; a && a->name; a++)
		if ((a->flags & IAC_A_REQUIRED) && !json_object_get(r->attrs, a->name))
			return iac_load_error(L, "resource '%s': attribute '%s' is required (%s)", addr, a->name,
					  a->doc ? a->doc : "no description");
	iac_lua_push_resource(L, addr);
	return 1;
}

/* `resource "t" "n"` with no { ... } after it declares nothing, silently:
 * remember it until its body comes, and report what is left at the end. */
static void expect_body(lua_State *L, const char *type, const char *name, int is_data)
{
	loader *ld = iac_load_get(L);
	char file[256], *key;
	int line;
	iac_load_where(L, file, sizeof(file), &line);
	key = iac_xasprintf("%s%s%s%s.%s", ld->cur->prefix, ld->cur->prefix[0] ? "." : "", is_data ? "data." : "",
			    type, name);
	json_object_set_new(ld->pending, key, json_pack("{s:s,s:i,s:s,s:s,s:b}", "file", file, "line", line,
							"type", type, "name", name, "data", is_data));
	free(key);
}

int iac_dsl_check_bodies(const loader *ld)
{
	const char *k;
	json_t *v;
	json_object_foreach(ld->pending, k, v) {
		int data = json_is_true(json_object_get(v, "data"));
		return iac_err_set("%s:%lld: %s '%s' has no body, so it declares nothing: write %s \"%s\" \"%s\" "
				   "{ ... }", iac_json_str(v, "file"), (long long)json_integer_value(json_object_get(v, "line")),
				   data ? "data" : "resource", k, data ? "data" : "resource", iac_json_str(v, "type"),
				   iac_json_str(v, "name"));
	}
	return 0;
}

int iac_dsl_check_keys(lua_State *L, int idx, const char *what, const char *const *allowed)
{
	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			return iac_load_error(L, "%s: expected named settings (found a list item)", what);
		const char *k = lua_tostring(L, -1);
		size_t n = 0;
		while (allowed[n] && strcmp(allowed[n], k))
			n++;
		if (allowed[n])
			continue;
		char hint[128];
		for (n = 0; allowed[n]; n++)
			;
		suggest(hint, sizeof(hint), k, allowed, n);
		return iac_load_error(L, "%s: unknown setting '%s'%s", what, k, hint);
	}
	return 0;
}

static int resource_named(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	if (!valid_name(name))
		return iac_load_error(L, "resource name '%s': use letters, digits, '_' and '-'", name);
	if (!lua_istable(L, 2))
		expect_body(L, lua_tostring(L, lua_upvalueindex(1)), name, lua_toboolean(L, lua_upvalueindex(2)));
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, 1);
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_pushcclosure(L, resource_body, 3);
	if (lua_istable(L, 2)) {
		lua_pushvalue(L, 2);
		lua_call(L, 1, 1);
	}
	return 1;
}

static int declare(lua_State *L, int is_data)
{
	luaL_checkstring(L, 1);
	int nargs = lua_gettop(L);
	lua_pushvalue(L, 1);
	lua_pushboolean(L, is_data);
	lua_pushcclosure(L, resource_named, 2);
	if (nargs >= 2) {
		/* resource("type", "name", {...}) */
		lua_pushvalue(L, 2);
		if (nargs >= 3)
			lua_pushvalue(L, 3);
		lua_call(L, nargs >= 3 ? 2 : 1, 1);
	}
	return 1;
}

static int l_resource(lua_State *L) { return declare(L, 0); }
static int l_data(lua_State *L) { return declare(L, 1); }

static int output_body(lua_State *L)
{
	loader *ld = iac_load_get(L);
	const char *name = lua_tostring(L, lua_upvalueindex(1));
	char file[256], err[1024], what[300];
	int line;

	iac_load_where(L, file, sizeof(file), &line);
	luaL_checktype(L, 1, LUA_TTABLE);
	static const char *const keys[] = { "value", "sensitive", "description", NULL };
	snprintf(what, sizeof(what), "output '%s'", name);
	iac_dsl_check_keys(L, 1, what, keys);
	lua_getfield(L, 1, "value");
	if (ld->cur->prefix[0]) {
		/* module output: keep the Lua value (handles stay usable) */
		lua_rawgeti(L, LUA_REGISTRYINDEX, ld->cur->outputs_ref);
		lua_pushvalue(L, -2);
		lua_setfield(L, -2, name);
		return 0;
	}
	json_t *prev = json_object_get(ld->cfg->outputs, name);
	if (prev)
		return iac_load_error(L, "output '%s' declared twice (first at %s:%d)", name,
				      iac_json_str(prev, "file") ?: "?",
				      (int)json_integer_value(json_object_get(prev, "line")));
	snprintf(what, sizeof(what), "output '%s'", name);
	json_t *v = iac_lua_to_json(L, -1, what, err, sizeof(err));
	if (!v && err[0])
		return iac_load_error(L, "%s", err);
	lua_getfield(L, 1, "sensitive");
	int sens = lua_toboolean(L, -1);
	lua_getfield(L, 1, "description");
	unsigned flags = 0;
	json_t *probe = iac_value_resolve(v ? v : json_null(), NULL, NULL, &flags);
	json_decref(probe);
	json_object_set_new(ld->cfg->outputs, name,
			    json_pack("{s:o,s:b,s:s?,s:s,s:i}", "value", v ? v : json_null(),
				      "sensitive", sens || (flags & IAC_VAL_SENSITIVE),
				      "description", lua_tostring(L, -1), "file", file, "line", line));
	return 0;
}

static int curry1(lua_State *L, lua_CFunction body)
{
	luaL_checkstring(L, 1);
	lua_pushvalue(L, 1);
	lua_pushcclosure(L, body, 1);
	if (lua_istable(L, 2)) {
		lua_pushvalue(L, 2);
		lua_call(L, 1, 1);
	}
	return 1;
}

static int l_output(lua_State *L) { return curry1(L, output_body); }

/* provider "NAME" { ... } configures a provider; provider "NAME" "ALIAS"
 * { ... } one more instance of it, which resources choose with their own
 * `provider = "ALIAS"` (types that offer it). Both land in
 * cfg->providers[NAME]: the unnamed block's settings at the top, the named
 * ones under "instances" (a provider's configure() sees them all). */
static int provider_body(lua_State *L)
{
	loader *ld = iac_load_get(L);
	const char *name = lua_tostring(L, lua_upvalueindex(1));
	const char *alias = lua_isnoneornil(L, lua_upvalueindex(2)) ? NULL : lua_tostring(L, lua_upvalueindex(2));
	char err[1024], hint[128];

	if (!alias && lua_type(L, 1) == LUA_TSTRING) {
		/* provider "http" "pdns" { ... } */
		const char *a = lua_tostring(L, 1);
		if (!valid_name(a))
			return iac_load_error(L, "provider '%s' \"%s\": name an instance with letters, digits, '_' and '-'",
					      name, a);
		lua_pushvalue(L, lua_upvalueindex(1));
		lua_pushvalue(L, 1);
		lua_pushcclosure(L, provider_body, 2);
		if (lua_istable(L, 2)) {
			lua_pushvalue(L, 2);
			lua_call(L, 1, 1);
		}
		return 1;
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	if (!iac_provider_find(name)) {
		const char *names[32];
		size_t n = 0;
		for (const iac_provider *const *p = iac_provider_all(); *p && n < 32; p++)
			names[n++] = (*p)->name;
		suggest(hint, sizeof(hint), name, names, n);
		return iac_load_error(L, "unknown provider '%s'%s", name, hint);
	}
	if (alias) {
		/* only where a resource can choose an instance */
		const iac_provider *p = iac_provider_find(name);
		int choosable = 0;
		for (size_t i = 0; p->types && p->types[i] && !choosable; i++)
			choosable = iac_rtype_attr(p->types[i], "provider") != NULL;
		if (!choosable)
			return iac_load_error(L, "provider '%s' has no named instances (its resources cannot choose one); "
					      "configure it once with provider \"%s\" { ... }", name, name);
	}
	json_t *have = json_object_get(ld->cfg->providers, name);
	json_t *insts = json_object_get(have, "instances");
	if (alias ? json_object_get(insts, alias) != NULL
		  : (have && json_object_size(have) > (insts ? 1u : 0u)))
		return alias ? iac_load_error(L, "provider '%s' \"%s\" configured twice", name, alias)
			     : iac_load_error(L, "provider '%s' configured twice", name);
	json_t *v = iac_lua_to_json(L, 1, "provider configuration", err, sizeof(err));
	if (!v)
		return iac_load_error(L, "provider '%s': %s", name, err);
	unsigned flags = 0;
	json_t *plain = iac_value_resolve(v, NULL, NULL, &flags);
	json_decref(v);
	if (flags & IAC_VAL_UNKNOWN) {
		json_decref(plain);
		return iac_load_error(L, "provider '%s': its configuration uses a value not known yet: a resource's "
				      "attribute (not allowed here), or a variable without a value (give it with "
				      "-var NAME=VALUE or IAC_VAR_NAME)", name);
	}
	if (!alias && json_object_get(plain, "instances")) {
		json_decref(plain);
		return iac_load_error(L, "provider '%s': 'instances' is reserved; declare more instances with "
				      "provider \"%s\" \"NAME\" { ... }", name, name);
	}
	if (!have) {
		have = json_object();
		json_object_set_new(ld->cfg->providers, name, have);
	}
	if (alias) {
		if (!insts) {
			insts = json_object();
			json_object_set_new(have, "instances", insts);
		}
		json_object_set_new(insts, alias, plain);
	} else {
		json_object_update(have, plain);
		json_decref(plain);
	}
	return 0;
}

static int l_provider(lua_State *L) { return curry1(L, provider_body); }

/* backend "etcd" { endpoints = {...}, prefix = "iac/prod", lock_ttl = "15s" }:
 * where state and lock live (iac/state/backend.h). Root module only. */
static int backend_body(lua_State *L)
{
	loader *ld = iac_load_get(L);
	const char *name = lua_tostring(L, lua_upvalueindex(1));
	char err[1024], file[256];
	int line;

	iac_load_where(L, file, sizeof(file), &line);
	luaL_checktype(L, 1, LUA_TTABLE);
	if (ld->cur->prefix[0])
		return iac_load_error(L, "backend: only the root module (main.lua) says where state lives");
	if (strcmp(name, "etcd") && strcmp(name, "local"))
		return iac_load_error(L, "unknown backend '%s' (there are: \"local\", \"etcd\")", name);
	if (json_object_get(ld->cfg->sections, "backend"))
		return iac_load_error(L, "backend declared twice");
	json_t *v = iac_lua_to_json(L, 1, "backend configuration", err, sizeof(err));
	if (!v)
		return iac_load_error(L, "backend '%s': %s", name, err);
	unsigned flags = 0;
	json_t *plain = iac_value_resolve(v, NULL, NULL, &flags);
	json_decref(v);
	if (flags & IAC_VAL_UNKNOWN) {
		json_decref(plain);
		return iac_load_error(L, "backend '%s': its settings cannot refer to resources", name);
	}
	if (iac_backend_check_settings(plain, NULL) < 0) {
		json_decref(plain);
		return iac_load_error(L, "%s", iac_err_last());
	}
	if (!strcmp(name, "local") && json_object_size(plain) &&
	    (json_object_size(plain) > 1 || !json_object_get(plain, "history"))) {
		json_decref(plain);
		return iac_load_error(L, "backend \"local\" takes only history = { remote = URL } (state stays in .iac/)");
	}
	json_object_set_new(ld->cfg->sections, "backend",
			    json_pack("{s:s,s:o,s:s,s:i}", "type", name, "settings", plain, "file", file, "line", line));
	return 0;
}

static int l_backend(lua_State *L) { return curry1(L, backend_body); }

static int host_body(lua_State *L)
{
	loader *ld = iac_load_get(L);
	const char *name = lua_tostring(L, lua_upvalueindex(1));
	char err[1024];

	luaL_checktype(L, 1, LUA_TTABLE);
	if (!valid_name(name))
		return iac_load_error(L, "host name '%s': use letters, digits, '_' and '-'", name);
	if (json_object_get(ld->cfg->hosts, name))
		return iac_load_error(L, "host '%s' declared twice", name);
	lua_getfield(L, 1, "address");
	/* a reference (lxd_instance.address) makes a host of something this
	 * apply creates: resources on it wait for it, and it is not probed
	 * during plan (there is nothing to reach yet) */
	int address_ref = 0;
	if (lua_type(L, -1) == LUA_TTABLE && lua_getmetatable(L, -1)) {
		luaL_getmetatable(L, IAC_MT_REF);
		address_ref = lua_rawequal(L, -1, -2);
		lua_pop(L, 2);
	}
	if (lua_type(L, -1) != LUA_TSTRING && !address_ref)
		return iac_load_error(L, "host '%s': 'address' (a string, or a resource's attribute) is required", name);
	lua_pop(L, 1);
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		const char *k = lua_tostring(L, -2);
		if (!k || (strcmp(k, "address") && strcmp(k, "port") && strcmp(k, "user") && strcmp(k, "labels")))
			return iac_load_error(L, "host '%s': unknown field '%s' (use address, port, user, labels)",
					  name, k ? k : "?");
		lua_pop(L, 1);
	}
	/* the host table users see: their fields plus name */
	lua_newtable(L);
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_settable(L, -4);
	}
	lua_pushstring(L, name);
	lua_setfield(L, -2, "name");
	lua_getfield(L, -1, "labels");
	if (lua_isnil(L, -1)) {
		lua_newtable(L);
		lua_setfield(L, -3, "labels");
	}
	lua_pop(L, 1);
	luaL_setmetatable(L, IAC_MT_HOST);
	json_t *h = iac_lua_to_json(L, -1, "host", err, sizeof(err));
	if (!h)
		return iac_load_error(L, "host '%s': %s", name, err);
	unsigned flags = 0;
	json_t *rest = json_deep_copy(h);
	if (address_ref)
		json_object_del(rest, "address");
	json_t *plain = iac_value_resolve(rest, NULL, NULL, &flags);
	json_decref(rest);
	if (flags) {
		json_decref(plain);
		json_decref(h);
		return iac_load_error(L, "host '%s': fields other than address must be plain values", name);
	}
	if (address_ref)
		json_object_set(plain, "address", json_object_get(h, "address"));
	json_decref(h);
	json_object_set_new(ld->cfg->hosts, name, plain);
	json_array_append_new(ld->host_order, json_string(name));
	lua_getfield(L, LUA_REGISTRYINDEX, HOSTS_KEY);
	lua_pushvalue(L, -2);
	lua_setfield(L, -2, name);
	lua_pop(L, 1);
	return 1;
}

static int l_host(lua_State *L) { return curry1(L, host_body); }

/* hosts { role = "web" } -> hosts whose labels match every pair. */
static int l_hosts(lua_State *L)
{
	loader *ld = iac_load_get(L);
	json_t *e;
	size_t i;
	int n = 0;

	lua_settop(L, 1);   /* index 1 is the filter (or nil) in every case */
	if (!lua_isnil(L, 1))
		luaL_checktype(L, 1, LUA_TTABLE);
	lua_newtable(L);
	lua_getfield(L, LUA_REGISTRYINDEX, HOSTS_KEY);
	json_array_foreach(ld->host_order, i, e) {
		const char *hn = json_string_value(e);
		json_t *labels = json_object_get(json_object_get(ld->cfg->hosts, hn), "labels");
		int match = 1;
		if (lua_istable(L, 1)) {
			lua_pushnil(L);
			while (lua_next(L, 1)) {
				const char *want = lua_tostring(L, -1), *k = lua_tostring(L, -2);
				json_t *have = json_object_get(labels, k ? k : "");
				if (!k || !want || !json_is_string(have) || strcmp(json_string_value(have), want))
					match = 0;
				lua_pop(L, 1);
			}
		}
		if (match) {
			lua_getfield(L, -1, hn);
			lua_rawseti(L, -3, ++n);
		}
	}
	lua_pop(L, 1);
	return 1;
}

/* Extension sections: flag "name" { ... } and friends land in
 * cfg->sections[<section>][name] with file and line, for their subsystems
 * to validate. */
static int section_body(lua_State *L)
{
	loader *ld = iac_load_get(L);
	const char *section = lua_tostring(L, lua_upvalueindex(1));
	const char *name = lua_tostring(L, lua_upvalueindex(2));
	char file[256], err[1024], what[300];
	int line;

	iac_load_where(L, file, sizeof(file), &line);
	luaL_checktype(L, 1, LUA_TTABLE);
	json_t *sec = json_object_get(ld->cfg->sections, section);
	if (!sec) {
		sec = json_object();
		json_object_set_new(ld->cfg->sections, section, sec);
	}
	json_t *prev = json_object_get(sec, name);
	if (prev)
		return iac_load_error(L, "%s '%s' declared twice (first at %s:%d)", lua_tostring(L, lua_upvalueindex(3)),
				  name, iac_json_str(prev, "file"),
				  (int)json_integer_value(json_object_get(prev, "line")));
	snprintf(what, sizeof(what), "%s '%s'", lua_tostring(L, lua_upvalueindex(3)), name);
	json_t *v = iac_lua_to_json(L, 1, what, err, sizeof(err));
	if (!v || !json_is_object(v)) {
		json_decref(v);
		return iac_load_error(L, "%s", err[0] ? err : "expected a table");
	}
	json_object_set_new(v, "file", json_string(file));
	json_object_set_new(v, "line", json_integer(line));
	json_object_set_new(sec, name, v);
	lua_pushstring(L, name);
	return 1;
}

static int section_named(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	if (!valid_name(name))
		return iac_load_error(L, "%s name '%s': use letters, digits, '_' and '-'",
				  lua_tostring(L, lua_upvalueindex(2)), name);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, 1);
	lua_pushvalue(L, lua_upvalueindex(2));
	lua_pushcclosure(L, section_body, 3);
	if (lua_istable(L, 2)) {
		lua_pushvalue(L, 2);
		lua_call(L, 1, 1);
	}
	return 1;
}

/* section(SECTION, KEYWORD): a declaration keyword for a provider's
 * prelude: KEYWORD "name" { ... } records the body, with its file and
 * line, under cfg->sections[SECTION][name]. */
static int l_section(lua_State *L)
{
	luaL_checkstring(L, 1);
	luaL_checkstring(L, 2);
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_pushcclosure(L, section_named, 2);
	return 1;
}

/* The strings of the Lua list at idx as a NULL-terminated array on the
 * Lua stack (a userdata, collected with it; the strings stay alive in the
 * list), its length in *n when n is given. */
static const char *const *string_list(lua_State *L, int idx, size_t *n)
{
	lua_Integer len = luaL_len(L, idx);
	const char **list = lua_newuserdatauv(L, (size_t)(len + 1) * sizeof(*list), 0);
	for (lua_Integer i = 1; i <= len; i++) {
		lua_rawgeti(L, idx, i);
		list[i - 1] = lua_tostring(L, -1);
		lua_pop(L, 1);
		if (!list[i - 1])
			luaL_error(L, "expected a list of strings");
	}
	list[len] = NULL;
	if (n)
		*n = (size_t)len;
	return list;
}

/* check_keys(TABLE, WHAT, { "allowed", ... }): iac_dsl_check_keys for a
 * shipped module, so a misspelt setting at any depth is refused at the
 * user's line with a suggestion. A TABLE that is not a table is left to
 * the module's own type checks. */
static int l_check_keys(lua_State *L)
{
	const char *what = luaL_checkstring(L, 2);
	luaL_checktype(L, 3, LUA_TTABLE);
	if (!lua_istable(L, 1))
		return 0;
	iac_dsl_check_keys(L, 1, what, string_list(L, 3, NULL));
	return 0;
}

/* suggest(WORD, { "candidate", ... }): the closest candidate, or nil, for
 * a "did you mean" on a value (check_keys does it for keys). */
static int l_suggest(lua_State *L)
{
	const char *want = luaL_checkstring(L, 1);
	luaL_checktype(L, 2, LUA_TTABLE);
	size_t n;
	const char *const *cands = string_list(L, 2, &n);
	const char *pick = iac_suggest(want, cands, n);
	if (pick)
		lua_pushstring(L, pick);
	else
		lua_pushnil(L);
	return 1;
}

void iac_dsl_push_helpers(lua_State *L)
{
	lua_newtable(L);
	lua_pushcfunction(L, l_section);
	lua_setfield(L, -2, "section");
	lua_pushcfunction(L, l_check_keys);
	lua_setfield(L, -2, "check_keys");
	lua_pushcfunction(L, l_suggest);
	lua_setfield(L, -2, "suggest");
}

static int l_file(lua_State *L)
{
	loader *ld = iac_load_get(L);
	const char *rel = luaL_checkstring(L, 1);
	char *path = iac_path_join(ld->cur->dir, rel), *text = NULL;
	size_t len;
	int rc = iac_load_confine(ld, path, "file()");
	if (rc == 0 && (rc = iac_file_read(&text, &len, path)) < 0)
		iac_err_prefix("file()");
	free(path);
	if (rc < 0) {
		lua_pushstring(L, iac_err_last());
		return iac_load_error(L, "%s", lua_tostring(L, -1));
	}
	json_t *utf8 = json_stringn(text, len);   /* NULL unless UTF-8 */
	if (!utf8) {
		free(text);
		return iac_load_error(L, "file(\"%s\"): the file is not UTF-8 text; for binary data use "
				      "filebase64(\"%s\") (or a resource's source attribute)", rel, rel);
	}
	json_decref(utf8);
	lua_pushlstring(L, text, len);
	free(text);
	return 1;
}

/* Push vars.a.b for the dotted name (at most 8 levels) onto the stack, or
 * return 0 when some part is missing. */
static int template_value(lua_State *L, int vars, const char *name, size_t len)
{
	char part[128];
	lua_pushvalue(L, vars);
	for (int depth = 0; len && depth < 8; depth++) {
		const char *dot = memchr(name, '.', len);
		size_t n = dot ? (size_t)(dot - name) : len;
		if (n == 0 || n >= sizeof(part) || !lua_istable(L, -1))
			break;
		memcpy(part, name, n);
		part[n] = '\0';
		lua_getfield(L, -1, part);
		lua_remove(L, -2);
		if (lua_isnil(L, -1))
			break;
		if (!dot)
			return 1;
		name += n + 1;
		len -= n + 1;
	}
	lua_pop(L, 1);
	return 0;
}

/* templatefile(path, vars): the file's text with ${name} (and ${name.key})
 * replaced by vars' values; $${ is a literal ${. The pieces are joined with
 * Lua's .., so a value that is a reference makes the result a template the
 * engine fills in later, as "x" .. conf.path would. Errors name the
 * template's own file and line. */
static int l_templatefile(lua_State *L)
{
	loader *ld = iac_load_get(L);
	const char *rel = luaL_checkstring(L, 1);
	if (!lua_isnoneornil(L, 2))
		luaL_checktype(L, 2, LUA_TTABLE);
	else
		lua_newtable(L);
	int vars = 2;
	char *path = iac_path_join(ld->cur->dir, rel), *text = NULL;
	size_t len;
	int rc = iac_load_confine(ld, path, "templatefile()");
	if (rc == 0 && (rc = iac_file_read(&text, &len, path)) < 0)
		iac_err_prefix("templatefile()");
	free(path);
	if (rc < 0) {
		lua_pushstring(L, iac_err_last());
		return iac_load_error(L, "%s", lua_tostring(L, -1));
	}
	lua_pushstring(L, "");
	int line = 1;
	const char *p = text, *lit = text, *end = text + len;
	while (p < end) {
		if (*p == '\n')
			line++;
		if (p[0] == '$' && p + 2 < end && p[1] == '$' && p[2] == '{') {
			lua_pushlstring(L, lit, (size_t)(p - lit) + 1);   /* "$" then "{" from the rest */
			lua_concat(L, 2);
			p += 2;
			lit = p;
			continue;
		}
		if (p[0] != '$' || p + 1 >= end || p[1] != '{') {
			p++;
			continue;
		}
		const char *close = memchr(p, '}', (size_t)(end - p));
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!close || (nl && nl < close)) {
			free(text);
			return iac_load_error(L, "templatefile(): %s:%d: '${' is not closed by '}' on the same line", rel, line);
		}
		const char *name = p + 2;
		size_t n = (size_t)(close - name);
		while (n && name[0] == ' ')
			name++, n--;
		while (n && name[n - 1] == ' ')
			n--;
		lua_pushlstring(L, lit, (size_t)(p - lit));
		if (!template_value(L, vars, name, n)) {
			lua_pushlstring(L, name, n);
			free(text);
			return iac_load_error(L, "templatefile(): %s:%d: '%s' is not in the variables given to the template",
					      rel, line, lua_tostring(L, -1));
		}
		lua_concat(L, 3);   /* so far .. literal .. value, left to right like Lua's .. */
		p = lit = close + 1;
	}
	lua_pushlstring(L, lit, (size_t)(end - lit));
	free(text);
	lua_concat(L, 2);
	return 1;
}

/* filebase64(path): a file's bytes, any bytes, as base64 text. */
static int l_filebase64(lua_State *L)
{
	loader *ld = iac_load_get(L);
	const char *rel = luaL_checkstring(L, 1);
	char *path = iac_path_join(ld->cur->dir, rel), *data = NULL;
	size_t len;
	int rc = iac_load_confine(ld, path, "filebase64()");
	if (rc == 0 && (rc = iac_file_read(&data, &len, path)) < 0)
		iac_err_prefix("filebase64()");
	free(path);
	if (rc < 0) {
		lua_pushstring(L, iac_err_last());
		return iac_load_error(L, "%s", lua_tostring(L, -1));
	}
	char *b64 = iac_base64_encode(data, len);
	free(data);
	lua_pushstring(L, b64);
	free(b64);
	return 1;
}

static int l_base64encode(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	char *b64 = iac_base64_encode(s, len);
	lua_pushstring(L, b64);
	free(b64);
	return 1;
}

/* base64decode(text): the decoded bytes; binary results are errors where
 * they are used as values (values are UTF-8 text), not here. */
static int l_base64decode(lua_State *L)
{
	size_t len, n;
	const char *s = luaL_checklstring(L, 1, &len);
	char *data;
	if (iac_base64_decode(&data, &n, s, len) < 0) {
		lua_pushstring(L, iac_err_last());
		return iac_load_error(L, "base64decode(): %s", lua_tostring(L, -1));
	}
	lua_pushlstring(L, data, n);
	free(data);
	return 1;
}

static int l_sha256(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	char hex[65];
	iac_sha256_hex(hex, s, len);
	lua_pushstring(L, hex);
	return 1;
}

static int l_jsonencode(lua_State *L)
{
	char err[512];
	json_t *v = iac_lua_to_json(L, 1, "jsonencode()", err, sizeof(err));
	if (!v && err[0])
		return iac_load_error(L, "%s", err);
	if (v && iac_value_has_unknown(v)) {
		json_decref(v);
		return iac_load_error(L, "jsonencode(): the value holds references, known only at apply time");
	}
	unsigned flags = 0;
	json_t *plain = iac_value_resolve(v ? v : json_null(), NULL, NULL, &flags);
	json_decref(v);
	if (flags & IAC_VAL_UNKNOWN) {
		json_decref(plain);
		return iac_load_error(L, "jsonencode(): the value holds references, known only at apply time");
	}
	char *s = json_dumps(plain, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(plain);
	lua_pushstring(L, s ? s : "null");
	free(s);
	if (flags & IAC_VAL_SENSITIVE)
		iac_lua_wrap_sensitive(L);
	return 1;
}

static int l_jsondecode(lua_State *L)
{
	json_error_t jerr;
	json_t *v = json_loads(luaL_checkstring(L, 1), JSON_DECODE_ANY, &jerr);
	if (!v)
		return iac_load_error(L, "jsondecode(): %s (line %d)", jerr.text, jerr.line);
	if (iac_json_depth(v) > 64) {
		json_decref(v);
		return iac_load_error(L, "jsondecode(): the document is nested more than 64 levels deep");
	}
	iac_lua_push_json(L, v);
	json_decref(v);
	return 1;
}

/* moved { from = "local.file.old", to = "local.file.new" }: a resource
 * renamed or moved into a module keeps its object; the state entry follows
 * at the next plan/apply (see iac_session_moves). */
static int l_moved(lua_State *L)
{
	loader *ld = iac_load_get(L);
	char file[256];
	int line;
	static const char *const keys[] = { "from", "to", NULL };
	iac_load_where(L, file, sizeof(file), &line);
	luaL_checktype(L, 1, LUA_TTABLE);
	iac_dsl_check_keys(L, 1, "moved", keys);
	lua_getfield(L, 1, "from");
	lua_getfield(L, 1, "to");
	if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
		return iac_load_error(L, "moved: 'from' and 'to' are addresses, as strings (\"local.file.old\")");
	char *from = ld->cur->prefix[0] ? iac_xasprintf("%s.%s", ld->cur->prefix, lua_tostring(L, -2))
					: iac_xstrdup(lua_tostring(L, -2));
	char *to = ld->cur->prefix[0] ? iac_xasprintf("%s.%s", ld->cur->prefix, lua_tostring(L, -1))
				      : iac_xstrdup(lua_tostring(L, -1));
	json_t *list = json_object_get(ld->cfg->sections, "moved");
	if (!list) {
		list = json_array();
		json_object_set_new(ld->cfg->sections, "moved", list);
	}
	json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:i}", "from", from, "to", to, "file", file, "line", line));
	free(from);
	free(to);
	return 0;
}

/* hosts_from(path): the shipped module inventory.lua does the work; this
 * makes it a keyword like host and hosts. */
static int l_hosts_from(lua_State *L)
{
	lua_getglobal(L, "require");
	lua_pushliteral(L, "inventory");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "hosts_from");
	lua_pushvalue(L, 1);
	lua_call(L, 1, 1);
	return 1;
}

/* resources["local.file.b"]: a resource by address, declared anywhere
 * (also further down), in the calling module. Whether it exists, and has
 * the attribute used, is checked once everything is declared. */
static int resources_index(lua_State *L)
{
	loader *ld = iac_load_get(L);
	const char *key = luaL_checkstring(L, 2);
	const char *dot = strchr(key, '.');
	if (!dot || !strchr(dot + 1, '.'))
		return iac_load_error(L, "resources[\"%s\"]: expected an address like \"local.file.name\" or "
				      "\"data.ssh.facts.name\"", key);
	char *addr = ld->cur->prefix[0] ? iac_xasprintf("%s.%s", ld->cur->prefix, key) : iac_xstrdup(key);
	iac_lua_push_resource(L, addr);
	free(addr);
	return 1;
}

static void install_resources(lua_State *L)
{
	lua_newtable(L);
	lua_newtable(L);
	lua_pushcfunction(L, resources_index);
	lua_setfield(L, -2, "__index");
	lua_setmetatable(L, -2);
	lua_setfield(L, -2, "resources");
}

void iac_dsl_install(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{ "resource", l_resource }, { "data", l_data }, { "output", l_output },
		{ "provider", l_provider }, { "host", l_host }, { "hosts", l_hosts },
		{ "file", l_file }, { "sha256", l_sha256 }, { "jsonencode", l_jsonencode },
		{ "jsondecode", l_jsondecode }, { "filebase64", l_filebase64 },
		{ "base64encode", l_base64encode }, { "base64decode", l_base64decode },
		{ "templatefile", l_templatefile }, { "hosts_from", l_hosts_from },
		{ "moved", l_moved }, { "backend", l_backend }, { NULL, NULL },
	};
	luaL_setfuncs(L, fns, 0);
	install_resources(L);
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, HOSTS_KEY);
}
