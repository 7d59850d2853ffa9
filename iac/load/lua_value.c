/* lua_value: Lua <-> JSON and the proxy objects (see lua_value.h). */
#include "iac/load/lua_value.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "iac/core/json.h"
#include "iac/core/value.h"

#define MAX_DEPTH 64

/* Handles are userdata holding a NUL-terminated address. */
static void push_handle(lua_State *L, const char *addr, const char *mt)
{
	size_t len = strlen(addr);
	char *p = lua_newuserdatauv(L, len + 1, 1);
	memcpy(p, addr, len + 1);
	luaL_setmetatable(L, mt);
}

const char *iac_lua_handle_addr(lua_State *L, int idx)
{
	const char *p = luaL_testudata(L, idx, IAC_MT_RESOURCE);
	if (!p)
		p = luaL_testudata(L, idx, IAC_MT_MODULE);
	return p;
}

void iac_lua_push_resource(lua_State *L, const char *addr)
{
	push_handle(L, addr, IAC_MT_RESOURCE);
}

void iac_lua_push_module(lua_State *L, const char *prefix)
{
	/* outputs table is at the top; keep it as the user value */
	push_handle(L, prefix, IAC_MT_MODULE);
	lua_insert(L, -2);
	lua_setiuservalue(L, -2, 1);
}

void iac_lua_push_ref(lua_State *L, const char *addr, const char *attr)
{
	lua_createtable(L, 0, 2);
	lua_pushstring(L, addr);
	lua_setfield(L, -2, "addr");
	lua_pushstring(L, attr);
	lua_setfield(L, -2, "attr");
	luaL_setmetatable(L, IAC_MT_REF);
}

void iac_lua_wrap_sensitive(lua_State *L)
{
	lua_createtable(L, 0, 1);
	lua_insert(L, -2);
	lua_setfield(L, -2, "value");
	luaL_setmetatable(L, IAC_MT_SENSITIVE);
}

static const char *table_kind(lua_State *L, int idx);

/* Append the parts of operand idx to the table at top. */
static void concat_operand(lua_State *L, int idx, int *n)
{
	idx = lua_absindex(L, idx);
	const char *kind = table_kind(L, idx);
	if (lua_type(L, idx) == LUA_TSTRING || lua_type(L, idx) == LUA_TNUMBER ||
	    (kind && (!strcmp(kind, IAC_MT_REF) || !strcmp(kind, IAC_MT_SENSITIVE)))) {
		lua_pushvalue(L, idx);
		lua_rawseti(L, -2, ++*n);
		return;
	}
	if (kind && !strcmp(kind, IAC_MT_TPL)) {
		lua_getfield(L, idx, "parts");
		lua_Integer m = (lua_Integer)lua_rawlen(L, -1);
		for (lua_Integer i = 1; i <= m; i++) {
			lua_rawgeti(L, -1, i);
			lua_rawseti(L, -3, ++*n);
		}
		lua_pop(L, 1);
		return;
	}
	if (iac_lua_handle_addr(L, idx))
		luaL_error(L, "cannot concatenate '%s' itself; use one of its attributes",
			   iac_lua_handle_addr(L, idx));
	luaL_error(L, "attempt to concatenate a %s value", luaL_typename(L, idx));
}

static int proxy_concat(lua_State *L)
{
	int n = 0;
	lua_createtable(L, 0, 1);
	lua_newtable(L);
	concat_operand(L, 1, &n);
	concat_operand(L, 2, &n);
	lua_setfield(L, -2, "parts");
	luaL_setmetatable(L, IAC_MT_TPL);
	return 1;
}

static int ref_index(lua_State *L)
{
	lua_pushliteral(L, "addr");
	lua_rawget(L, 1);
	lua_pushliteral(L, "attr");
	lua_rawget(L, 1);
	const char *key = luaL_checkstring(L, 2);
	if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
		return luaL_error(L, "a broken reference (its address or attribute is not text)");
	lua_pushfstring(L, "%s.%s", lua_tostring(L, -1), key);
	iac_lua_push_ref(L, lua_tostring(L, -3), lua_tostring(L, -1));
	return 1;
}

static int ref_arith(lua_State *L)
{
	int i = table_kind(L, 1) ? 1 : 2;
	if (lua_istable(L, i)) {
		lua_pushstring(L, "addr");
		lua_rawget(L, i);
		lua_pushstring(L, "attr");
		lua_rawget(L, i);
		if (lua_isstring(L, -2))
			return luaL_error(L, "cannot compute with '%s.%s' while the configuration loads: "
					  "its value is known only at plan or apply time",
					  lua_tostring(L, -2), lua_tostring(L, -1));
	}
	return luaL_error(L, "cannot compute with a reference or sensitive value while the configuration loads");
}

static int ref_tostring(lua_State *L)
{
	lua_getfield(L, 1, "addr");
	lua_getfield(L, 1, "attr");
	lua_pushfstring(L, "(reference to %s.%s, known later)", lua_tostring(L, -2), lua_tostring(L, -1));
	return 1;
}

static int tpl_tostring(lua_State *L)
{
	lua_pushstring(L, "(string built from references, known later)");
	return 1;
}

static int sensitive_tostring(lua_State *L)
{
	lua_pushstring(L, "(sensitive)");
	return 1;
}

static int sensitive_index(lua_State *L)
{
	return luaL_error(L, "a sensitive value cannot be inspected while the configuration loads");
}

static int resource_index(lua_State *L)
{
	const char *addr = luaL_checkudata(L, 1, IAC_MT_RESOURCE);
	const char *key = luaL_checkstring(L, 2);
	iac_lua_push_ref(L, addr, key);
	return 1;
}

static int resource_tostring(lua_State *L)
{
	lua_pushstring(L, (const char *)luaL_checkudata(L, 1, IAC_MT_RESOURCE));
	return 1;
}

static int module_index(lua_State *L)
{
	const char *prefix = luaL_checkudata(L, 1, IAC_MT_MODULE);
	const char *key = luaL_checkstring(L, 2);
	lua_getiuservalue(L, 1, 1);
	lua_getfield(L, -1, key);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_pushnil(L);
		int has = lua_next(L, -2) != 0;
		if (has)
			lua_pop(L, 2);
		return luaL_error(L, "module '%s' has no output '%s'%s", prefix, key,
				  has ? "" : " (it declares no outputs)");
	}
	return 1;
}

static int module_tostring(lua_State *L)
{
	lua_pushstring(L, (const char *)luaL_checkudata(L, 1, IAC_MT_MODULE));
	return 1;
}

static void new_mt(lua_State *L, const char *name, const luaL_Reg *fns)
{
	luaL_newmetatable(L, name);
	luaL_setfuncs(L, fns, 0);
	lua_pushstring(L, name);
	lua_setfield(L, -2, "__name");
	lua_pop(L, 1);
}

void iac_lua_value_init(lua_State *L)
{
	static const luaL_Reg ref_fns[] = {
		{ "__concat", proxy_concat }, { "__index", ref_index }, { "__tostring", ref_tostring },
		{ "__add", ref_arith }, { "__sub", ref_arith }, { "__mul", ref_arith },
		{ "__div", ref_arith }, { "__unm", ref_arith }, { "__lt", ref_arith }, { "__le", ref_arith },
		{ "__len", ref_arith }, { NULL, NULL },
	};
	static const luaL_Reg tpl_fns[] = {
		{ "__concat", proxy_concat }, { "__tostring", tpl_tostring }, { "__len", ref_arith },
		{ "__add", ref_arith }, { NULL, NULL },
	};
	static const luaL_Reg sens_fns[] = {
		{ "__concat", proxy_concat }, { "__tostring", sensitive_tostring },
		{ "__index", sensitive_index }, { "__len", ref_arith }, { "__add", ref_arith }, { NULL, NULL },
	};
	static const luaL_Reg res_fns[] = {
		{ "__index", resource_index }, { "__tostring", resource_tostring }, { NULL, NULL },
	};
	static const luaL_Reg mod_fns[] = {
		{ "__index", module_index }, { "__tostring", module_tostring }, { NULL, NULL },
	};
	new_mt(L, IAC_MT_REF, ref_fns);
	new_mt(L, IAC_MT_TPL, tpl_fns);
	new_mt(L, IAC_MT_SENSITIVE, sens_fns);
	new_mt(L, IAC_MT_RESOURCE, res_fns);
	new_mt(L, IAC_MT_MODULE, mod_fns);
	luaL_newmetatable(L, IAC_MT_HOST);
	lua_pop(L, 1);
}

/* Name of the iac metatable of the table at idx, or NULL. */
static const char *table_kind(lua_State *L, int idx)
{
	static const char *kinds[] = { IAC_MT_REF, IAC_MT_TPL, IAC_MT_SENSITIVE, IAC_MT_HOST, NULL };
	if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
		return NULL;
	for (int i = 0; kinds[i]; i++) {
		luaL_getmetatable(L, kinds[i]);
		int eq = lua_rawequal(L, -1, -2);
		lua_pop(L, 1);
		if (eq) {
			lua_pop(L, 1);
			return kinds[i];
		}
	}
	lua_pop(L, 1);
	return NULL;
}

static json_t *to_json(lua_State *L, int idx, const char *what, char *err, size_t errlen, int depth);
static __thread int allow_handles;
/* The tables on the way down from the value being converted: a table met
 * again on its own path is a cycle (t.x = t), reported, never followed. */
static __thread const void *path[MAX_DEPTH + 2];

/* What a table is: 1 a list, 2 named fields, 0 empty; -1 with err set
 * when it is neither (keys of another kind, both kinds, holes). */
static int table_shape(lua_State *L, int idx, const char *what, char *err, size_t errlen)
{
	lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
	int has_str = 0;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		count++;
		if (lua_type(L, -2) == LUA_TSTRING)
			has_str = 1;
		else if (!lua_isinteger(L, -2)) {
			lua_pop(L, 2);
			snprintf(err, errlen, "%s: table keys must be strings or list positions", what);
			return -1;
		}
		lua_pop(L, 1);
	}
	if (has_str && count > 0 && n > 0) {
		snprintf(err, errlen, "%s: table mixes list items and named fields", what);
		return -1;
	}
	if (!has_str && count > 0 && count != n) {
		snprintf(err, errlen, "%s: list has holes (nil items)", what);
		return -1;
	}
	return count == 0 ? 0 : has_str ? 2 : 1;
}

static json_t *list_to_json(lua_State *L, int idx, const char *what, char *err, size_t errlen, int depth)
{
	lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
	json_t *out = json_array();
	for (lua_Integer i = 1; i <= n; i++) {
		char sub[256];
		lua_rawgeti(L, idx, i);
		/* name nested places only where an error can come from */
		const char *w = what;
		if (lua_type(L, -1) == LUA_TTABLE || lua_type(L, -1) >= LUA_TFUNCTION) {
			snprintf(sub, sizeof(sub), "%s[%lld]", what, (long long)i);
			w = sub;
		}
		json_t *v = to_json(L, -1, w, err, errlen, depth + 1);
		lua_pop(L, 1);
		if (!v) {
			json_decref(out);
			return NULL;
		}
		json_array_append_new(out, v);
	}
	return out;
}

static json_t *fields_to_json(lua_State *L, int idx, const char *what, char *err, size_t errlen, int depth)
{
	json_t *out = json_object();
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		char sub[256];
		/* never lua_tostring a number key: it converts the key in place
		 * and lua_next is lost */
		if (lua_type(L, -2) != LUA_TSTRING) {
			snprintf(err, errlen, "%s: a table mixes named and numbered entries (a %s key)", what,
				 luaL_typename(L, -2));
			lua_pop(L, 2);
			json_decref(out);
			return NULL;
		}
		const char *k = lua_tostring(L, -2);
		json_t *kcheck = json_string(k);   /* NULL unless UTF-8 */
		if (!kcheck) {
			snprintf(err, errlen, "%s: a key is not UTF-8 text", what);
			lua_pop(L, 2);
			json_decref(out);
			return NULL;
		}
		json_decref(kcheck);
		const char *w = what;
		if (lua_type(L, -1) == LUA_TTABLE || lua_type(L, -1) >= LUA_TFUNCTION) {
			snprintf(sub, sizeof(sub), "%s.%s", what, k);
			w = sub;
		}
		json_t *v = to_json(L, lua_gettop(L), w, err, errlen, depth + 1);
		if (!v && err[0]) {
			lua_pop(L, 2);
			json_decref(out);
			return NULL;
		}
		if (v)
			json_object_set_new(out, k, v);
		lua_pop(L, 1);
	}
	return out;
}

static json_t *table_to_json(lua_State *L, int idx, const char *what, char *err, size_t errlen, int depth)
{
	const void *me = lua_topointer(L, idx);
	for (int d = 0; d < depth; d++)
		if (path[d] == me) {
			snprintf(err, errlen, "%s contains a table that contains itself", what);
			return NULL;
		}
	path[depth] = me;
	/* each level holds a key, a value and a nested call's own slots */
	if (!lua_checkstack(L, 8)) {
		snprintf(err, errlen, "%s: nested too deeply", what);
		return NULL;
	}
	switch (table_shape(L, idx, what, err, errlen)) {
	case -1:
		return NULL;
	case 1:
		return list_to_json(L, idx, what, err, errlen, depth);
	default:
		return fields_to_json(L, idx, what, err, errlen, depth);
	}
}

/* A resource or module handle: a whole-resource reference where one is
 * allowed (depends_on, watching attributes), else an error. */
static json_t *handle_to_json(lua_State *L, int idx, const char *what, char *err, size_t errlen)
{
	if (allow_handles && luaL_testudata(L, idx, IAC_MT_RESOURCE)) {
		json_t *r = iac_value_ref(iac_lua_handle_addr(L, idx), "*");
		if (!r)
			snprintf(err, errlen, "%s: a resource address that is not UTF-8 text", what);
		return r;
	}
	if (iac_lua_handle_addr(L, idx)) {
		snprintf(err, errlen, "%s: '%s' is a whole %s; use one of its attributes (like %s.id), "
			 "or list it in depends_on", what, iac_lua_handle_addr(L, idx),
			 luaL_testudata(L, idx, IAC_MT_RESOURCE) ? "resource" : "module",
			 iac_lua_handle_addr(L, idx));
		return NULL;
	}
	snprintf(err, errlen, "%s: a %s cannot be a value", what, luaL_typename(L, idx));
	return NULL;
}

/* A marked table: a reference, a sensitive value or a template. */
static json_t *marker_to_json(lua_State *L, int idx, const char *kind, const char *what, char *err, size_t errlen,
			      int depth)
{
	if (!strcmp(kind, IAC_MT_REF)) {
		/* raw: a reference's own __index makes new references */
		lua_pushliteral(L, "addr");
		lua_rawget(L, idx);
		lua_pushliteral(L, "attr");
		lua_rawget(L, idx);
		json_t *r = lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING
			? iac_value_ref(lua_tostring(L, -2), lua_tostring(L, -1)) : NULL;
		lua_pop(L, 2);
		if (!r)
			snprintf(err, errlen, "%s: a broken reference (its address or attribute is not text)", what);
		return r;
	}
	if (!strcmp(kind, IAC_MT_SENSITIVE)) {
		lua_pushliteral(L, "value");
		lua_rawget(L, idx);
		json_t *v = to_json(L, -1, what, err, errlen, depth + 1);
		lua_pop(L, 1);
		return v ? iac_value_sensitive(v) : NULL;
	}
	/* template */
	lua_pushliteral(L, "parts");
	lua_rawget(L, idx);
	json_t *parts = to_json(L, -1, what, err, errlen, depth + 1);
	lua_pop(L, 1);
	if (!parts)
		return NULL;
	return json_pack("{s:s,s:o}", "$iac", "tpl", "parts", parts);
}

static json_t *to_json(lua_State *L, int idx, const char *what, char *err, size_t errlen, int depth)
{
	idx = lua_absindex(L, idx);
	if (depth > MAX_DEPTH) {
		snprintf(err, errlen, "%s: nested more than %d levels deep", what, MAX_DEPTH);
		return NULL;
	}
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		return NULL;
	case LUA_TBOOLEAN:
		return json_boolean(lua_toboolean(L, idx));
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			return json_integer((json_int_t)lua_tointeger(L, idx));
		if (!isfinite(lua_tonumber(L, idx))) {
			snprintf(err, errlen, "%s: number is not finite", what);
			return NULL;
		}
		return json_real(lua_tonumber(L, idx));
	case LUA_TSTRING: {
		size_t len;
		const char *s = lua_tolstring(L, idx, &len);
		json_t *str = json_stringn(s, len);   /* NULL unless UTF-8 */
		if (!str)
			snprintf(err, errlen, "%s: the text is not UTF-8 (binary data: read it with "
				 "filebase64(), or use a resource's source attribute)", what);
		return str;
	}
	case LUA_TUSERDATA:
		return handle_to_json(L, idx, what, err, errlen);
	case LUA_TTABLE: {
		const char *kind = table_kind(L, idx);
		if (kind == NULL || !strcmp(kind, IAC_MT_HOST))
			return table_to_json(L, idx, what, err, errlen, depth);
		return marker_to_json(L, idx, kind, what, err, errlen, depth);
	}
	default:
		break;
	}
	snprintf(err, errlen, "%s: a %s cannot be a value", what, luaL_typename(L, idx));
	return NULL;
}

json_t *iac_lua_to_json(lua_State *L, int idx, const char *what, char *err, size_t errlen)
{
	err[0] = '\0';
	return to_json(L, idx, what, err, errlen, 0);
}

json_t *iac_lua_to_json_watch(lua_State *L, int idx, const char *what, char *err, size_t errlen)
{
	err[0] = '\0';
	allow_handles = 1;
	json_t *v = to_json(L, idx, what, err, errlen, 0);
	allow_handles = 0;
	return v;
}

int iac_json_depth(const json_t *v)
{
	int d = 0, m;
	const char *k;
	json_t *e;
	size_t i;
	if (json_is_object(v))
		json_object_foreach((json_t *)v, k, e)
			if ((m = iac_json_depth(e)) > d)
				d = m;
	if (json_is_array(v))
		json_array_foreach(v, i, e)
			if ((m = iac_json_depth(e)) > d)
				d = m;
	return (json_is_object(v) || json_is_array(v)) ? d + 1 : 0;
}

void iac_lua_push_json(lua_State *L, const json_t *v)
{
	/* callers bound the depth (iac_json_depth); this keeps the stack */
	luaL_checkstack(L, 4, "value nested too deeply");
	const char *m = iac_value_marker(v), *k;
	json_t *e;
	size_t i;

	if (m && !strcmp(m, "ref")) {
		iac_lua_push_ref(L, iac_json_str(v, "addr"),
				 iac_json_str(v, "attr"));
		return;
	}
	if (m && !strcmp(m, "sensitive")) {
		iac_lua_push_json(L, json_object_get(v, "value"));
		iac_lua_wrap_sensitive(L);
		return;
	}
	if (m && !strcmp(m, "tpl")) {
		lua_createtable(L, 0, 1);
		iac_lua_push_json(L, json_object_get(v, "parts"));
		lua_setfield(L, -2, "parts");
		luaL_setmetatable(L, IAC_MT_TPL);
		return;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		lua_createtable(L, 0, (int)json_object_size(v));
		json_object_foreach((json_t *)v, k, e) {
			iac_lua_push_json(L, e);
			lua_setfield(L, -2, k);
		}
		break;
	case JSON_ARRAY:
		lua_createtable(L, (int)json_array_size(v), 0);
		json_array_foreach(v, i, e) {
			iac_lua_push_json(L, e);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		break;
	case JSON_STRING:
		lua_pushlstring(L, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		lua_pushinteger(L, (lua_Integer)json_integer_value(v));
		break;
	case JSON_REAL:
		lua_pushnumber(L, json_real_value(v));
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		lua_pushboolean(L, json_is_true(v));
		break;
	default:
		lua_pushnil(L);
	}
}
