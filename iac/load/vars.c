/* vars: input variables. `variable "name" { default, type, sensitive,
 * description }` declares one; `var.name` reads it.
 *
 * Root values, lowest priority first: default, IAC_VAR_<name> in the
 * environment, -var-file files (Lua assignments or .json), -var NAME=VALUE.
 * Text from the environment and -var is converted by the declared type
 * (or the default's type): number, bool, string, list/map (JSON).
 * Module variables take the values the module call passes.
 */
#include "iac/load/load_int.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/load/lua_value.h"

extern char **environ;

static void give_raw(loader *ld, const char *name, size_t nlen, const char *value, const char *origin)
{
	char *n = iac_xstrndup(name, nlen);
	/* kept as given, bytes and all: a value that is not UTF-8 is an error
	 * when the variable is read, not a value silently dropped */
	json_t *g = json_pack("{s:o,s:s}", "raw", json_stringn_nocheck(value, strlen(value)), "origin", origin);
	if (g)
		json_object_set_new(ld->given, n, g);
	free(n);
}

/* A var file: JSON object when it ends in .json, else Lua assignments run
 * in an empty sandbox (`version = "v2"`). */
static int read_var_file(loader *ld, const char *path)
{
	char *text = NULL;
	size_t len;
	char *full = iac_path_join(".", path);
	int rc = iac_file_read(&text, &len, full);
	free(full);
	if (rc < 0) {
		iac_err_prefix("-var-file");
		return IAC_ERR;
	}
	size_t pl = strlen(path);
	if (pl > 5 && !strcmp(path + pl - 5, ".json")) {
		json_error_t jerr;
		json_t *doc = json_loadb(text, len, 0, &jerr);
		free(text);
		if (!json_is_object(doc)) {
			json_decref(doc);
			return iac_err_set("%s:%d: not a JSON object of variable values (%s)", path, jerr.line, jerr.text);
		}
		const char *k;
		json_t *v;
		json_object_foreach(doc, k, v)
			json_object_set_new(ld->given, k, json_pack("{s:O,s:s}", "value", v, "origin", path));
		json_decref(doc);
		return 0;
	}
	lua_State *L = luaL_newstate();
	char *chunk = iac_xasprintf("@%s", path);
	rc = luaL_loadbufferx(L, text, len, chunk, "t");
	free(chunk);
	free(text);
	if (rc == LUA_OK) {
		lua_newtable(L);
		lua_pushvalue(L, -1);
		lua_setupvalue(L, -3, 1);
		lua_insert(L, -2);
		rc = lua_pcall(L, 0, 0, 0);
	}
	if (rc != LUA_OK) {
		iac_err_set("%s", lua_tostring(L, -1));
		lua_close(L);
		return IAC_ERR;
	}
	iac_lua_value_init(L);
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		char err[512];
		if (lua_type(L, -2) == LUA_TSTRING) {
			json_t *v = iac_lua_to_json(L, -1, lua_tostring(L, -2), err, sizeof(err));
			if (!v && err[0]) {
				iac_err_set("%s: %s", path, err);
				lua_close(L);
				return IAC_ERR;
			}
			if (v)
				json_object_set_new(ld->given, lua_tostring(L, -2),
						    json_pack("{s:o,s:s}", "value", v, "origin", path));
		}
		lua_pop(L, 1);
	}
	lua_close(L);
	return 0;
}

int iac_vars_collect(loader *ld)
{
	for (char **e = environ; *e; e++) {
		if (strncmp(*e, "IAC_VAR_", 8) != 0)
			continue;
		const char *eq = strchr(*e, '=');
		if (eq && eq > *e + 8)
			give_raw(ld, *e + 8, (size_t)(eq - *e - 8), eq + 1, "environment");
	}
	for (size_t i = 0; ld->opts->var_files && ld->opts->var_files[i]; i++)
		if (read_var_file(ld, ld->opts->var_files[i]) < 0)
			return IAC_ERR;
	for (size_t i = 0; ld->opts->vars && ld->opts->vars[i]; i++) {
		const char *kv = ld->opts->vars[i], *eq = strchr(kv, '=');
		if (!eq || eq == kv)
			return iac_err_set("-var '%s': expected NAME=VALUE", kv);
		give_raw(ld, kv, (size_t)(eq - kv), eq + 1, "-var");
	}
	return 0;
}

int iac_vars_check_unused(loader *ld)
{
	const char *k;
	json_t *v;
	json_object_foreach(ld->given, k, v) {
		const char *origin = iac_json_str(v, "origin");
		if (json_object_get(ld->given_used, k))
			continue;
		if (!strcmp(origin, "-var"))
			return iac_err_set("-var '%s': the configuration declares no variable '%s'", k, k);
		if (strcmp(origin, "environment") != 0)
			iac_log_warn("%s: value for undeclared variable '%s' ignored", origin, k);
	}
	return 0;
}

/* How a bad value is quoted in an error: never, for a sensitive variable. */
static const char *shown(const char *raw, int sensitive)
{
	static __thread char buf[300];
	if (sensitive)
		return "a value that is not shown (the variable is sensitive)";
	snprintf(buf, sizeof(buf), "'%.200s%s'", raw, strlen(raw) > 200 ? "..." : "");
	return buf;
}

/* Convert text to the variable's type. NULL + message on failure. */
static json_t *convert_raw(const char *name, const char *type, const char *raw, int sensitive)
{
	char *end;
	json_t *text = json_string(raw);
	if (!text) {
		iac_err_set("variable '%s': the value is not valid UTF-8 text", name);
		return NULL;
	}
	if (!strcmp(type, "string"))
		return text;
	json_decref(text);
	if (!strcmp(type, "number")) {
		errno = 0;
		double d = strtod(raw, &end);
		if (!*raw || *end || !isfinite(d) || errno == ERANGE) {
			iac_err_set("variable '%s' must be a finite number, got %s", name, shown(raw, sensitive));
			return NULL;
		}
		errno = 0;
		long long ll = strtoll(raw, &end, 10);
		return (*end || errno == ERANGE) ? json_real(d) : json_integer(ll);
	}
	if (!strcmp(type, "bool")) {
		if (!strcmp(raw, "true") || !strcmp(raw, "1"))
			return json_true();
		if (!strcmp(raw, "false") || !strcmp(raw, "0"))
			return json_false();
		iac_err_set("variable '%s' must be true or false, got %s", name, shown(raw, sensitive));
		return NULL;
	}
	/* list, map, any: JSON if it parses, else a plain string */
	json_t *v = json_loads(raw, JSON_DECODE_ANY, NULL);
	if (!v && strcmp(type, "any") != 0) {
		iac_err_set("variable '%s' must be a %s written as JSON, got %s", name, type, shown(raw, sensitive));
		return NULL;
	}
	return v ? v : json_string(raw);
}

static const char *json_kind(const json_t *v)
{
	if (json_is_string(v)) return "string";
	if (json_is_number(v)) return "number";
	if (json_is_boolean(v)) return "bool";
	if (json_is_array(v)) return "list";
	if (json_is_object(v)) return iac_value_marker(v) ? "any" : "map";
	return "any";
}

static int known_type(const char *type)
{
	static const char *types[] = { "string", "number", "bool", "list", "map", "any", NULL };
	for (int i = 0; types[i]; i++)
		if (!strcmp(type, types[i]))
			return 1;
	return 0;
}

/* The value a variable gets: from -var/-var-file/IAC_VAR_ for the root
 * module, from the call's arguments for a module; *out NULL when none was
 * given. IAC_ERR (message set) when a given value does not convert to
 * `type`. */
static int given_value(json_t **out, loader *ld, const char *name, const char *type, int sensitive)
{
	json_t *g = ld->cur->args ? NULL : json_object_get(ld->given, name);
	*out = NULL;
	if (ld->cur->args) {
		json_t *a = json_object_get(ld->cur->args, name);
		*out = a ? json_incref(a) : NULL;
		return 0;
	}
	if (!g)
		return 0;
	json_object_set_new(ld->given_used, name, json_true());
	if (json_object_get(g, "value"))
		*out = json_incref(json_object_get(g, "value"));
	else if (!(*out = convert_raw(name, type, iac_json_str(g, "raw"), sensitive)))
		return IAC_ERR;
	return 0;
}

/* No value and no default: say how to give one (unknown under validate). */
static json_t *missing_value(lua_State *L, loader *ld, const char *name, const char *desc)
{
	if (ld->cur->args) {
		/* the caller forgot it: say so where the module is called */
		lua_pushfstring(L, "%s:%d: module '%s' needs argument '%s'%s%s", ld->cur->call_file,
				ld->cur->call_line, ld->cur->prefix, name, desc ? ": " : "", desc ? desc : "");
		lua_error(L);
	}
	if (!ld->opts->allow_missing_vars)
		iac_load_error(L, "variable '%s' has no value: pass -var %s=VALUE, set IAC_VAR_%s, or give it a "
			       "default", name, name, name);
	return iac_value_unknown();
}

static int l_variable_body(lua_State *L)
{
	loader *ld = iac_load_get(L);
	const char *name = lua_tostring(L, lua_upvalueindex(1));
	char err[512], file[256];
	int line;

	iac_load_where(L, file, sizeof(file), &line);
	luaL_checktype(L, 1, LUA_TTABLE);
	static const char *const keys[] = { "default", "type", "description", "sensitive", NULL };
	char what[300];
	snprintf(what, sizeof(what), "variable '%s'", name);
	iac_dsl_check_keys(L, 1, what, keys);
	if (json_object_get(ld->cur->vars, name)) {
		json_t *w = json_object_get(ld->var_where, name);
		return iac_load_error(L, "variable '%s' declared twice (first at %s)", name,
				      w && json_is_string(w) ? json_string_value(w) : "?");
	}
	if (!ld->cur->args) {
		char at[300];
		snprintf(at, sizeof(at), "%s:%d", file, line);
		json_object_set_new(ld->var_where, name, json_string(at));
	}
	lua_getfield(L, 1, "default");
	json_t *dflt = iac_lua_to_json(L, -1, "default", err, sizeof(err));
	if (!dflt && err[0])
		return iac_load_error(L, "variable '%s': %s", name, err);
	lua_getfield(L, 1, "sensitive");
	int sensitive = lua_toboolean(L, -1);
	lua_getfield(L, 1, "description");
	const char *desc = lua_tostring(L, -1);
	lua_getfield(L, 1, "type");
	const char *type = lua_tostring(L, -1);
	if (type && !known_type(type)) {
		json_decref(dflt);
		return iac_load_error(L, "variable '%s': unknown type '%s' (use string, number, bool, list, map or any)",
				      name, type);
	}
	if (!type)
		type = dflt ? json_kind(dflt) : "any";
	json_t *value;
	if (given_value(&value, ld, name, type, sensitive) < 0) {
		json_decref(dflt);
		lua_pushstring(L, iac_err_last());
		return iac_load_error(L, "%s", lua_tostring(L, -1));
	}
	if (!value && dflt)
		value = json_incref(dflt);
	json_decref(dflt);
	if (!value)
		value = missing_value(L, ld, name, desc);
	if (strcmp(type, "any") != 0 && !iac_value_marker(value) && strcmp(json_kind(value), type) != 0 &&
	    !(!strcmp(type, "list") && json_is_object(value) && !json_object_size(value))) {
		const char *got = json_kind(value);
		json_decref(value);
		return iac_load_error(L, "variable '%s' must be a %s, got a %s", name, type, got);
	}
	if (sensitive) {
		if (json_is_string(value))
			iac_redact_add(json_string_value(value));
		if (iac_value_marker(value) == NULL || strcmp(iac_value_marker(value), "sensitive") != 0)
			value = iac_value_sensitive(value);
	}
	json_object_set(ld->cur->vars, name, value);
	if (!ld->cur->args)
		json_object_set_new(ld->cfg->variables, name,
				    json_pack("{s:O,s:b,s:s?,s:s,s:b}", "value", value, "sensitive", sensitive,
					      "description", desc, "type", type, "given",
					      json_object_get(ld->given_used, name) != NULL));
	json_decref(value);
	return 0;
}

static int l_variable(lua_State *L)
{
	luaL_checkstring(L, 1);
	lua_pushvalue(L, 1);
	lua_pushcclosure(L, l_variable_body, 1);
	if (lua_istable(L, 2)) {
		lua_pushvalue(L, 2);
		lua_call(L, 1, 0);
		return 0;
	}
	return 1;
}

static int var_index(lua_State *L)
{
	loader *ld = iac_load_get(L);
	const char *name = luaL_checkstring(L, 2);
	json_t *v = json_object_get(ld->cur->vars, name);
	if (!v)
		return iac_load_error(L, "undeclared variable '%s': declare it first with variable \"%s\" { ... }",
				  name, name);
	iac_lua_push_json(L, v);
	return 1;
}

static int var_newindex(lua_State *L)
{
	return iac_load_error(L, "variables are read-only; use a local for derived values");
}

void iac_vars_install(lua_State *L)
{
	lua_pushcfunction(L, l_variable);
	lua_setfield(L, -2, "variable");
	lua_newtable(L);
	lua_newtable(L);
	lua_pushcfunction(L, var_index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, var_newindex);
	lua_setfield(L, -2, "__newindex");
	lua_setmetatable(L, -2);
	lua_setfield(L, -2, "var");
}
