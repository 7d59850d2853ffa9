/* lt_ljson: Lua values to JSON and back (see ljson.h). */
#include "iac/loadtest/ljson.h"

#include <lauxlib.h>

static json_t *to_json(lua_State *L, int idx, int depth)
{
	if (depth > 64)
		luaL_error(L, "json: table nested too deeply (or refers to itself)");
	idx = lua_absindex(L, idx);
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		return json_null();
	case LUA_TBOOLEAN:
		return json_boolean(lua_toboolean(L, idx));
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			return json_integer((json_int_t)lua_tointeger(L, idx));
		return json_real(lua_tonumber(L, idx));
	case LUA_TSTRING:
		return json_stringn(lua_tostring(L, idx), lua_rawlen(L, idx));
	case LUA_TTABLE: {
		lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
		size_t count = 0;
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			count++;
			lua_pop(L, 1);
		}
		if (n > 0 && (size_t)n == count) {
			json_t *a = json_array();
			for (lua_Integer i = 1; i <= n; i++) {
				lua_rawgeti(L, idx, i);
				json_array_append_new(a, to_json(L, -1, depth + 1));
				lua_pop(L, 1);
			}
			return a;
		}
		json_t *o = json_object();
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			lua_pushvalue(L, -2);
			const char *k = lua_tostring(L, -1);   /* numbers become "1" */
			if (!k) {
				json_decref(o);
				luaL_error(L, "json: keys must be strings or numbers");
			}
			json_object_set_new(o, k, to_json(L, -2, depth + 1));
			lua_pop(L, 2);
		}
		return o;
	}
	default:
		luaL_error(L, "json: cannot encode a %s", luaL_typename(L, idx));
		return NULL;
	}
}

void lt_ljson_push(lua_State *L, const json_t *j)
{
	/* a response nested deep needs stack per level: an error past what
	 * Lua allows, never a write past the stack */
	luaL_checkstack(L, 3, "the JSON body is nested too deeply");
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *v;
		lua_createtable(L, 0, (int)json_object_size(j));
		json_object_foreach((json_t *)j, k, v) {
			lt_ljson_push(L, v);
			lua_setfield(L, -2, k);
		}
		break;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *v;
		lua_createtable(L, (int)json_array_size(j), 0);
		json_array_foreach(j, i, v) {
			lt_ljson_push(L, v);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		break;
	}
	case JSON_STRING:
		lua_pushlstring(L, json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		lua_pushinteger(L, (lua_Integer)json_integer_value(j));
		break;
	case JSON_REAL:
		lua_pushnumber(L, json_real_value(j));
		break;
	case JSON_TRUE:
		lua_pushboolean(L, 1);
		break;
	case JSON_FALSE:
		lua_pushboolean(L, 0);
		break;
	case JSON_NULL:
		lua_pushnil(L);
		break;
	}
}

json_t *lt_ljson_from(lua_State *L, int idx)
{
	return to_json(L, idx, 0);
}
