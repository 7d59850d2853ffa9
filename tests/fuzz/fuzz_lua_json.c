/* fuzz_lua_json: Lua values to JSON (iac_lua_to_json in iac/load/lua_value.c),
 * on values made by running the input as Lua text in a fresh state with the
 * safe libraries (harness.c), a 64 MiB allocator cap and a limit of
 * 100,000 instructions. The chunk may use the proxies the topology language
 * hands to user code:
 *   ref(addr, attr)   a reference (`conf.sha256`), `..` makes a template
 *   sensitive(v)      a sensitive value (`var.token`)
 *   resource(addr)    a resource handle, module(prefix, outputs) a module's
 *   host(t)           t with the host metatable
 * Every value the chunk returns (up to 4) is converted as an attribute and
 * as a depends_on value, and what converts is pushed back to Lua and
 * converted again. Conversion runs in protected mode, as in the loader. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>

#include "harness.h"
#include "iac/load/lua_value.h"

static int l_ref(lua_State *L)
{
	iac_lua_push_ref(L, luaL_checkstring(L, 1), luaL_optstring(L, 2, "id"));
	return 1;
}

static int l_sensitive(lua_State *L)
{
	lua_settop(L, 1);
	iac_lua_wrap_sensitive(L);
	return 1;
}

static int l_resource(lua_State *L)
{
	iac_lua_push_resource(L, luaL_checkstring(L, 1));
	return 1;
}

static int l_module(lua_State *L)
{
	const char *prefix = luaL_checkstring(L, 1);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	iac_lua_push_module(L, prefix);
	return 1;
}

static int l_host(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	luaL_setmetatable(L, IAC_MT_HOST);
	return 1;
}

/* convert(v): the conversions, in protected mode. */
static int convert(lua_State *L)
{
	char err[512];
	json_t *a = iac_lua_to_json(L, 1, "attribute 'content'", err, sizeof(err));
	if (!a && !err[0] && !lua_isnil(L, 1)) {
		fprintf(stderr, "fuzz: a %s converted to nothing without an error\n", luaL_typename(L, 1));
		abort();
	}
	json_t *w = iac_lua_to_json_watch(L, 1, "depends_on", err, sizeof(err));
	if (a) {
		char *s = json_dumps(a, JSON_ENCODE_ANY | JSON_COMPACT);
		if (!s) {
			fprintf(stderr, "fuzz: a converted value cannot be written as JSON\n");
			abort();
		}
		free(s);
		if (iac_json_depth(a) <= 64) {
			iac_lua_push_json(L, a);
			json_t *b = iac_lua_to_json(L, -1, "attribute 'again'", err, sizeof(err));
			json_decref(b);
			lua_pop(L, 1);
		}
	}
	json_decref(a);
	json_decref(w);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lua_State *L = fuzz_lua_new(64u << 20, 100000);
	fuzz_lua_safe_libs(L);
	iac_lua_value_init(L);
	static const luaL_Reg fns[] = {
		{ "ref", l_ref }, { "sensitive", l_sensitive }, { "resource", l_resource },
		{ "module", l_module }, { "host", l_host }, { NULL, NULL },
	};
	for (const luaL_Reg *f = fns; f->name; f++) {
		lua_pushcfunction(L, f->func);
		lua_setglobal(L, f->name);
	}
	/* text only: bytecode is refused, as by the loader */
	if (luaL_loadbufferx(L, (const char *)data, size, "=main.lua", "t") == LUA_OK &&
	    lua_pcall(L, 0, 4, 0) == LUA_OK) {
		for (int i = 1; i <= 4; i++) {
			lua_pushcfunction(L, convert);
			lua_pushvalue(L, i);
			if (lua_pcall(L, 1, 0, 0) != LUA_OK && getenv("IAC_FUZZ_DEBUG"))
				fprintf(stderr, "convert %d: %s\n", i, lua_tostring(L, -1));
			lua_settop(L, 4);
		}
	}
	fuzz_lua_close(L);
	return 0;
}
