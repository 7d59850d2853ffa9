/* lt_setup: setup() and teardown(data) (see setup.h). */
#include "iac/loadtest/setup.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>

#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/http/http.h"
#include "iac/loadtest/engine_int.h"

#define S_MT "iac.lt.setup"

typedef struct {
	iac_http *http;
} lt_setup_ctx;

/* s:get(url) / s:post(url, json_table): { status, body, json } (json
 * when the body is JSON). */
static int s_request(lua_State *L, const char *method)
{
	lt_setup_ctx *c = luaL_checkudata(L, 1, S_MT);
	const char *url = luaL_checkstring(L, 2);
	json_t *body = NULL;
	if (!lua_isnoneornil(L, 3)) {
		char *text = lt_lua_to_json(L, 3);
		body = json_loads(text, JSON_DECODE_ANY, NULL);
		free(text);
	}
	iac_http_resp r;
	int rc = iac_http_request(&r, c->http, method, url, body, NULL);
	json_decref(body);
	if (rc < 0)
		return luaL_error(L, "s:%s('%s'): %s", method[0] == 'G' ? "get" : "post", url, iac_err_last());
	lua_createtable(L, 0, 3);
	lua_pushinteger(L, r.status);
	lua_setfield(L, -2, "status");
	lua_pushlstring(L, r.body, r.len);
	lua_setfield(L, -2, "body");
	if (r.json) {
		char *text = json_dumps(r.json, JSON_COMPACT | JSON_ENCODE_ANY);
		if (text && lt_lua_push_data(L, text) == 0)
			lua_setfield(L, -2, "json");
		free(text);
	}
	iac_http_resp_free(&r);
	return 1;
}

static int s_get(lua_State *L) { return s_request(L, "GET"); }
static int s_post(lua_State *L) { return s_request(L, "POST"); }

/* A Lua state with the scenario loaded and `s` on the stack. */
static lua_State *open_state(const iac_lt_config *cfg, lt_setup_ctx *c)
{
	iac_http_opts o;
	memset(&o, 0, sizeof(o));
	o.name = "loadtest setup";
	o.base_url = cfg->target ? cfg->target : "";
	o.ca_file = cfg->tls_ca_file;
	o.retries = 0;
	if (iac_http_new(&c->http, &o) < 0)
		return NULL;
	lua_State *L = iac_lt_scenario_open(cfg);
	if (!L)
		return NULL;
	static const luaL_Reg m[] = { { "get", s_get }, { "post", s_post }, { NULL, NULL } };
	luaL_newmetatable(L, S_MT);
	luaL_newlib(L, m);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	return L;
}

static void close_state(lua_State *L, lt_setup_ctx *c)
{
	if (L)
		lua_close(L);
	iac_http_free(c->http);
}

static void push_s(lua_State *L, lt_setup_ctx *c)
{
	lt_setup_ctx *u = lua_newuserdatauv(L, sizeof(*u), 0);
	*u = *c;
	luaL_setmetatable(L, S_MT);
}

/* the result (at -1) as JSON text into *out, in protected mode: a value
 * JSON cannot hold raises a Lua error */
static int to_json_k(lua_State *L)
{
	char **out = lua_touserdata(L, 2);
	*out = lt_lua_to_json(L, 1);
	return 0;
}

int iac_lt_setup_run(iac_lt_config *cfg)
{
	if (!cfg->has_setup)
		return 0;
	lt_setup_ctx c = { 0 };
	lua_State *L = open_state(cfg, &c);
	int rc = IAC_ERR;
	if (!L) {
		iac_err_set("setup() failed: %s", iac_err_last());
		goto done;
	}
	lua_getglobal(L, "setup");
	push_s(L, &c);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		iac_err_set("setup() failed: %s", lua_tostring(L, -1));
		goto done;
	}
	char *text = NULL;
	lua_pushcfunction(L, to_json_k);
	lua_insert(L, -2);
	lua_pushlightuserdata(L, &text);
	if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
		iac_err_set("setup() returned what cannot be passed to the VUs (plain data only): %s",
			    lua_tostring(L, -1));
		goto done;
	}
	free(cfg->setup_data);
	cfg->setup_data = text;
	rc = 0;
done:
	close_state(L, &c);
	return rc;
}

int iac_lt_teardown_run(const iac_lt_config *cfg)
{
	if (!cfg->has_teardown)
		return 0;
	lt_setup_ctx c = { 0 };
	lua_State *L = open_state(cfg, &c);
	int rc = IAC_ERR;
	if (!L)
		goto done;
	lua_getglobal(L, "teardown");
	if (cfg->setup_data) {
		if (lt_lua_push_data(L, cfg->setup_data) < 0)
			goto done;
	} else {
		lua_pushnil(L);
	}
	push_s(L, &c);
	if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
		iac_err_set("teardown() failed: %s", lua_tostring(L, -1));
		goto done;
	}
	rc = 0;
done:
	close_state(L, &c);
	return rc;
}
