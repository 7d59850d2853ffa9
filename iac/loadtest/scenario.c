/* lt_scenario: the scenario language, run in a Lua sandbox (see scenario.h). */
#include "iac/loadtest/scenario.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lualib.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/loadtest/ljson.h"
#include "iac/loadtest/stats.h"

#define CTX_KEY "iac.lt.ctx"
#define FLOWS_KEY "iac.lt.flows"
#define BETWEEN_MT "iac.lt.between"
#define SHARED_KEY "iac.lt.shared"   /* the loaded config whose data files a worker's state reads */
#define DATA_MT "iac.lt.data"
#define TEMPLATE_MT "iac.lt.template"
#define METRIC_MT "iac.lt.metric"   /* also named in vu_lua.c, which gives it add() */

typedef struct {
	iac_lt_config *cfg;
	int seen_load, seen_thresholds, seen_observe, seen_target;
} load_ctx;

static load_ctx *get_ctx(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, CTX_KEY);
	load_ctx *c = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return c;
}

static int call_line(lua_State *L)
{
	lua_Debug ar;
	if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar))
		return ar.currentline;
	return 0;
}

/* Reject keys a statement does not know, naming the valid ones: a typo must
 * not be silently ignored. */
static void check_keys(lua_State *L, int idx, const char *what, const char *const *valid)
{
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING) {
			if (lua_type(L, -1) == LUA_TNUMBER)
				continue;   /* positional items are checked by the caller */
			luaL_error(L, "unexpected %s key in %s", luaL_typename(L, -1), what);
		}
		const char *k = lua_tostring(L, -1);
		int ok = 0;
		for (const char *const *v = valid; *v; v++)
			if (!strcmp(*v, k))
				ok = 1;
		if (!ok) {
			iac_buf b = IAC_BUF_INIT;
			for (const char *const *v = valid; *v; v++)
				iac_buf_printf(&b, "%s%s", v == valid ? "" : ", ", *v);
			lua_pushfstring(L, "unknown option '%s' in %s; valid options: %s", k, what, iac_buf_cstr(&b));
			iac_buf_free(&b);
			luaL_where(L, 1);
			lua_insert(L, -2);
			lua_concat(L, 2);
			lua_error(L);
		}
	}
}

/* A duration given as "250ms"/"2s" or a number of seconds, in ms. */
static double duration_at(lua_State *L, int idx, const char *what)
{
	if (lua_type(L, idx) == LUA_TNUMBER) {
		double v = lua_tonumber(L, idx);
		if (v < 0)
			luaL_error(L, "%s must not be negative", what);
		return v * 1e3;
	}
	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "%s must be a duration like \"500ms\" or \"10s\", not a %s", what, luaL_typename(L, idx));
	double ms;
	if (iac_duration_parse(&ms, lua_tostring(L, idx)) < 0)
		luaL_error(L, "%s: %s", what, iac_err_last());
	return ms;
}

static double number_field(lua_State *L, int idx, const char *key, double def, const char *what)
{
	double v = def;
	lua_getfield(L, idx, key);
	if (!lua_isnil(L, -1)) {
		if (lua_type(L, -1) != LUA_TNUMBER)
			luaL_error(L, "option '%s' in %s must be a number, not a %s", key, what, luaL_typename(L, -1));
		v = lua_tonumber(L, -1);
		if (v < 0 || isnan(v))
			luaL_error(L, "option '%s' in %s must not be negative", key, what);
	}
	lua_pop(L, 1);
	return v;
}

static char *string_field(lua_State *L, int idx, const char *key, const char *what)
{
	char *s = NULL;
	lua_getfield(L, idx, key);
	if (!lua_isnil(L, -1)) {
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "option '%s' in %s must be a string, not a %s", key, what, luaL_typename(L, -1));
		s = iac_xstrdup(lua_tostring(L, -1));
	}
	lua_pop(L, 1);
	return s;
}

static int l_between(lua_State *L)
{
	double a = duration_at(L, 1, "between()'s first argument");
	double b = duration_at(L, 2, "between()'s second argument");
	if (b < a)
		luaL_error(L, "between(): the maximum is smaller than the minimum");
	lua_createtable(L, 0, 2);
	lua_pushnumber(L, a);
	lua_setfield(L, -2, "min_ms");
	lua_pushnumber(L, b);
	lua_setfield(L, -2, "max_ms");
	luaL_setmetatable(L, BETWEEN_MT);
	return 1;
}

static int l_target(lua_State *L)
{
	load_ctx *c = get_ctx(L);
	const char *url = luaL_checkstring(L, 1);
	if (c->seen_target)
		luaL_error(L, "target is set twice");
	if (!iac_str_starts(url, "http://") && !iac_str_starts(url, "https://"))
		luaL_error(L, "target '%s' must be an http:// or https:// URL", url);
	c->seen_target = 1;
	c->cfg->target = iac_xstrdup(url);
	return 0;
}

static void read_headers(lua_State *L, int idx, iac_strlist *out, const char *what)
{
	lua_getfield(L, idx, "headers");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "option 'headers' in %s must be a table of name = value", what);
	int t = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, t)) {
		if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
			luaL_error(L, "option 'headers' in %s must map names to strings", what);
		const char *k = lua_tostring(L, -2), *v = lua_tostring(L, -1);
		if (strpbrk(k, "\r\n:") || strpbrk(v, "\r\n"))
			luaL_error(L, "header '%s' in %s contains a line break or colon", k, what);
		char *line = iac_xasprintf("%s: %s", k, v);
		iac_strlist_push(out, line);
		free(line);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

/* think = "2s" | 3 | between(a, b): a fixed or a uniformly drawn pause. */
static void read_think(lua_State *L, int t, iac_lt_scenario *sp, const char *what)
{
	lua_getfield(L, t, "think");
	if (!lua_isnil(L, -1)) {
		if (lua_istable(L, -1)) {
			/* only between()'s tables: { 1, 3 } could mean anything */
			int same = 0;
			if (lua_getmetatable(L, -1)) {
				luaL_getmetatable(L, BETWEEN_MT);
				same = lua_rawequal(L, -1, -2);
				lua_pop(L, 2);
			}
			if (!same)
				luaL_error(L, "option 'think' in %s must be a duration or between(a, b)", what);
			lua_getfield(L, -1, "min_ms");
			sp->think_min_ms = lua_tonumber(L, -1);
			lua_getfield(L, -2, "max_ms");
			sp->think_max_ms = lua_tonumber(L, -1);
			lua_pop(L, 2);
		} else {
			sp->think_min_ms = sp->think_max_ms = duration_at(L, -1, "option 'think'");
		}
	}
	lua_pop(L, 1);
}

/* flow = function(u) ... end, kept in this state's registry by scenario
 * index (1-based: the scenario is already counted in cfg): a function
 * cannot cross into the plain-data config. */
static void read_flow(lua_State *L, int t, iac_lt_config *cfg, iac_lt_scenario *sp, const char *what)
{
	lua_getfield(L, t, "flow");
	if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
		luaL_error(L, "option 'flow' in %s must be a function(u) ... end", what);
	sp->has_flow = lua_isfunction(L, -1);
	lua_getfield(L, LUA_REGISTRYINDEX, FLOWS_KEY);
	lua_pushvalue(L, -2);
	lua_rawseti(L, -2, (lua_Integer)cfg->nscenarios);
	lua_pop(L, 2);
}

/* body = "...", kept with its length: it may hold NUL bytes. */
static void read_body(lua_State *L, int t, iac_lt_scenario *sp, const char *what)
{
	lua_getfield(L, t, "body");
	if (!lua_isnil(L, -1)) {
		size_t n;
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "option 'body' in %s must be a string", what);
		const char *b = lua_tolstring(L, -1, &n);
		sp->body = iac_xmalloc(n + 1);
		memcpy(sp->body, b, n + 1);
		sp->body_len = n;
	}
	lua_pop(L, 1);
}

/* url is path's other name (for absolute URLs); both at once is ambiguous. */
static void read_url(lua_State *L, int t, iac_lt_scenario *sp, const char *what)
{
	char *url2 = string_field(L, t, "url", what);
	if (url2 && sp->url) {
		free(url2);
		luaL_error(L, "%s sets both 'path' and 'url'; use one", what);
	}
	if (url2)
		sp->url = url2;
}

/* Checks that need every option read; fills in the default method. */
static void check_scenario(lua_State *L, iac_lt_scenario *sp, const char *what)
{
	if (sp->has_flow && (sp->method || sp->url || sp->body || sp->headers.n))
		luaL_error(L, "%s has a flow and also method/path/headers/body; the flow makes its own requests "
			   "(u:get, u:post...)", what);
	if (!sp->has_flow && !sp->url)
		luaL_error(L, "%s needs either flow = function(u) ... end or path = \"/...\"", what);
	if (sp->weight <= 0)
		luaL_error(L, "option 'weight' in %s must be above 0", what);
	if (!sp->method)
		sp->method = iac_xstrdup("GET");
	for (char *p = sp->method; *p; p++)
		if (*p < 'A' || *p > 'Z')
			luaL_error(L, "method '%s' in %s must be upper-case letters", sp->method, what);
}

/* tags = { name = "value" }: on every request of the scenario (k6's
 * scenario tags), after a request's own; kept as "name" "value" pairs. */
static void read_tags(lua_State *L, int t, iac_lt_scenario *sp, const char *what)
{
	lua_getfield(L, t, "tags");
	if (!lua_isnil(L, -1)) {
		if (!lua_istable(L, -1))
			luaL_error(L, "option 'tags' in %s must be a table of names to strings", what);
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
				luaL_error(L, "option 'tags' in %s must map names to strings", what);
			if (sp->tags.n >= 2 * 8)
				luaL_error(L, "option 'tags' in %s: at most 8 tags", what);
			iac_strlist_push(&sp->tags, lua_tostring(L, -2));
			iac_strlist_push(&sp->tags, lua_tostring(L, -1));
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
}

static int apply_scenario(lua_State *L, const char *name, int t)
{
	static const char *const keys[] = { "weight", "think", "flow", "method", "path", "url",
					    "headers", "body", "name", "tags", NULL };
	load_ctx *c = get_ctx(L);
	iac_lt_config *cfg = c->cfg;
	char what[200];
	snprintf(what, sizeof(what), "scenario '%s'", name);
	luaL_checktype(L, t, LUA_TTABLE);
	check_keys(L, t, what, keys);
	for (size_t i = 0; i < cfg->nscenarios; i++)
		if (!strcmp(cfg->scenarios[i].name, name))
			luaL_error(L, "scenario '%s' is defined twice", name);

	/* append first: everything allocated below is then freed with cfg even
	 * when a later check raises an error */
	cfg->scenarios = iac_xrealloc(cfg->scenarios, (cfg->nscenarios + 1) * sizeof(*cfg->scenarios));
	iac_lt_scenario *sp = &cfg->scenarios[cfg->nscenarios++];
	memset(sp, 0, sizeof(*sp));
	sp->name = iac_xstrdup(name);
	sp->line = call_line(L);
	sp->weight = number_field(L, t, "weight", 1, what);
	read_think(L, t, sp, what);
	read_flow(L, t, cfg, sp, what);
	sp->method = string_field(L, t, "method", what);
	sp->url = string_field(L, t, "path", what);
	sp->endpoint = string_field(L, t, "name", what);
	read_body(L, t, sp, what);
	read_headers(L, t, &sp->headers, what);
	read_tags(L, t, sp, what);
	read_url(L, t, sp, what);
	check_scenario(L, sp, what);
	return 0;
}

static int l_scenario_apply(lua_State *L)
{
	const char *name = lua_tostring(L, lua_upvalueindex(1));
	return apply_scenario(L, name, 1);
}

static int l_scenario(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	if (!*name)
		luaL_error(L, "a scenario needs a name");
	if (lua_gettop(L) >= 2)
		return apply_scenario(L, name, 2);
	lua_pushvalue(L, 1);
	lua_pushcclosure(L, l_scenario_apply, 1);
	return 1;
}

static const char *const executors[] = { "constant-vus", "ramping-vus", "constant-arrival-rate",
					 "ramping-arrival-rate", NULL };

const char *iac_lt_executor_name(enum iac_lt_executor e)
{
	return executors[e];
}

static int executor_is_open(enum iac_lt_executor e)
{
	return e == IAC_LT_CONSTANT_RATE || e == IAC_LT_RAMPING_RATE;
}

static int executor_is_ramp(enum iac_lt_executor e)
{
	return e == IAC_LT_RAMPING_VUS || e == IAC_LT_RAMPING_RATE;
}

/* executor = "..." into cfg->executor, which keeps its default when unset. */
static void read_executor(lua_State *L, iac_lt_config *cfg)
{
	char *ex = string_field(L, 1, "executor", "load");
	if (!ex)
		return;
	int found = -1;
	for (int i = 0; executors[i]; i++)
		if (!strcmp(executors[i], ex))
			found = i;
	if (found < 0) {
		/* built by hand so that ex is freed before the error unwinds */
		lua_pushfstring(L, "unknown executor '%s'; valid: constant-vus, ramping-vus, "
			       "constant-arrival-rate, ramping-arrival-rate", ex);
		free(ex);
		luaL_where(L, 1);
		lua_insert(L, -2);
		lua_concat(L, 2);
		lua_error(L);
	}
	free(ex);
	cfg->executor = (enum iac_lt_executor)found;
}

/* Options that mean nothing for this executor are mistakes, as in k6: a
 * silently ignored "rate" would run a different test than the one meant. */
static void check_applies(lua_State *L, enum iac_lt_executor ex)
{
	static const struct {
		const char *key;
		int for_open, for_closed, for_ramp, for_const;
	} applies[] = {
		{ "vus", 0, 1, 0, 1 },
		{ "duration", 1, 1, 0, 1 },
		{ "stages", 1, 1, 1, 0 },
		{ "rate", 1, 0, 0, 1 },
		{ "time_unit", 1, 0, 1, 1 },
		{ "pre_allocated_vus", 1, 0, 1, 1 },
		{ "max_vus", 1, 0, 1, 1 },
		{ "start_vus", 0, 1, 1, 0 },
		{ "start_rate", 1, 0, 1, 0 },
	};
	int open = executor_is_open(ex), ramp = executor_is_ramp(ex);
	for (size_t i = 0; i < sizeof(applies) / sizeof(applies[0]); i++) {
		lua_getfield(L, 1, applies[i].key);
		int set = !lua_isnil(L, -1);
		lua_pop(L, 1);
		int ok = (open ? applies[i].for_open : applies[i].for_closed) &&
			 (ramp ? applies[i].for_ramp : applies[i].for_const);
		if (set && !ok)
			luaL_error(L, "option '%s' does not apply to executor '%s'", applies[i].key, executors[ex]);
	}
}

/* max_failed: a fraction (0.5), a percentage ("50%") or false (no such
 * verdict: a run expected to fail, such as a test of the error path). */
static void read_max_failed(lua_State *L, iac_lt_config *cfg, const char *what)
{
	lua_getfield(L, 1, "max_failed");
	int t = lua_type(L, -1);
	if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
		cfg->max_failed = INFINITY;
	} else if (t == LUA_TNUMBER) {
		cfg->max_failed = lua_tonumber(L, -1);
	} else if (t == LUA_TSTRING) {
		char *end;
		const char *v = lua_tostring(L, -1);
		double x = strtod(v, &end);
		cfg->max_failed = end != v && !strcmp(end, "%") ? x / 100 : -1;
	} else if (t != LUA_TNIL) {
		cfg->max_failed = -1;
	}
	lua_pop(L, 1);
	if (t != LUA_TNIL && !(cfg->max_failed > 0 && (cfg->max_failed <= 1 || isinf(cfg->max_failed))))
		luaL_error(L, "option 'max_failed' in %s must be a fraction above 0 and at most 1 (0.5), a "
			   "percentage (\"50%%\") or false", what);
}

/* Status n, or statuses a to b, of expected_statuses (1-based element i). */
static void expect_status(lua_State *L, iac_lt_config *cfg, lua_Number a, lua_Number b, int i, const char *what)
{
	if (a != (int)a || b != (int)b || a < 100 || b > 599 || a > b)
		luaL_error(L, "element %d of option 'expected_statuses' in %s must be a status from 100 to 599 or "
			   "{ min, max }", i, what);
	for (int c = (int)a; c <= (int)b; c++)
		cfg->failed_status[c] = 0;
}

/* expected_statuses = { { 200, 399 }, 404 }: k6's
 * http.expectedStatuses(); a response with any other status fails. */
static void read_expected_statuses(lua_State *L, iac_lt_config *cfg, const char *what)
{
	lua_getfield(L, 1, "expected_statuses");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "option 'expected_statuses' in %s must be a list such as { { 200, 399 }, 404 }", what);
	int t = lua_gettop(L);
	lua_Integer n = luaL_len(L, t);
	if (!n)
		luaL_error(L, "option 'expected_statuses' in %s is empty", what);
	memset(cfg->failed_status, 1, sizeof(cfg->failed_status));
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, t, i);
		if (lua_type(L, -1) == LUA_TNUMBER) {
			expect_status(L, cfg, lua_tonumber(L, -1), lua_tonumber(L, -1), (int)i, what);
		} else if (lua_istable(L, -1)) {
			lua_rawgeti(L, -1, 1);
			lua_rawgeti(L, -2, 2);
			int ok = lua_type(L, -2) == LUA_TNUMBER && lua_type(L, -1) == LUA_TNUMBER;
			expect_status(L, cfg, ok ? lua_tonumber(L, -2) : 0, ok ? lua_tonumber(L, -1) : 0, (int)i, what);
			lua_pop(L, 2);
		} else {
			expect_status(L, cfg, 0, 0, (int)i, what);
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

/* tls = { ca_file = "ca.pem", server_name = "shop.example", insecure_skip_tls_verify = true }:
 * k6's insecureSkipTLSVerify under iac's snake_case. Verification is on
 * unless asked off, and a run with it off is marked in every report. */
static void read_tls(lua_State *L, iac_lt_config *cfg, const char *what)
{
	static const char *const keys[] = { "ca_file", "server_name", "insecure_skip_tls_verify", NULL };
	lua_getfield(L, 1, "tls");
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	if (!lua_istable(L, -1))
		luaL_error(L, "option 'tls' in %s must be a table such as { ca_file = \"ca.pem\" }", what);
	int t = lua_gettop(L);
	check_keys(L, t, "option 'tls'", keys);
	char *ca = string_field(L, t, "ca_file", "option 'tls'");
	char *sn = string_field(L, t, "server_name", "option 'tls'");
	if ((ca && !*ca) || (sn && (!*sn || strpbrk(sn, " /:\r\n")))) {
		free(ca);
		free(sn);
		luaL_error(L, "option 'tls' in %s: ca_file and server_name must be non-empty (server_name a host name)",
			   what);
	}
	free(cfg->tls_ca_file);
	free(cfg->tls_server_name);
	cfg->tls_ca_file = ca;
	cfg->tls_server_name = sn;
	lua_getfield(L, t, "insecure_skip_tls_verify");
	if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
		luaL_error(L, "option 'insecure_skip_tls_verify' in option 'tls' must be true or false");
	cfg->tls_insecure = lua_toboolean(L, -1);
	lua_pop(L, 2);
}

/* Field key of load {} as a duration into *ms, which keeps its value when
 * the field is unset. */
static void duration_field(lua_State *L, const char *key, const char *label, double *ms)
{
	lua_getfield(L, 1, key);
	if (!lua_isnil(L, -1))
		*ms = duration_at(L, -1, label);
	lua_pop(L, 1);
}

/* The numbers and durations of load {}. The ramping executors start from
 * start_vus / start_rate, which stand in for vus / rate. */
static void read_load_options(lua_State *L, iac_lt_config *cfg, const char *what)
{
	cfg->vus = (int)number_field(L, 1, "vus", cfg->vus, what);
	if (cfg->executor == IAC_LT_RAMPING_VUS)
		cfg->vus = (int)number_field(L, 1, "start_vus", 0, what);
	cfg->rate = number_field(L, 1, "rate", cfg->rate, what);
	if (cfg->executor == IAC_LT_RAMPING_RATE)
		cfg->rate = number_field(L, 1, "start_rate", 0, what);
	cfg->pre_vus = (int)number_field(L, 1, "pre_allocated_vus", 0, what);
	cfg->max_vus = (int)number_field(L, 1, "max_vus", 0, what);
	duration_field(L, "duration", "option 'duration'", &cfg->duration_ms);
	duration_field(L, "time_unit", "option 'time_unit'", &cfg->time_unit_ms);
	if (cfg->time_unit_ms <= 0)
		luaL_error(L, "option 'time_unit' in %s must be above 0", what);
	duration_field(L, "graceful_stop", "option 'graceful_stop'", &cfg->graceful_stop_ms);
	duration_field(L, "timeout", "option 'timeout'", &cfg->timeout_ms);
	read_max_failed(L, cfg, what);
	read_expected_statuses(L, cfg, what);
	read_tls(L, cfg, what);
	lua_getfield(L, 1, "cookies");
	if (!lua_isnil(L, -1)) {
		if (!lua_isboolean(L, -1))
			luaL_error(L, "option 'cookies' in %s must be true or false", what);
		cfg->cookies = lua_toboolean(L, -1);
	}
	lua_pop(L, 1);
	lua_getfield(L, 1, "user_agent");
	if (!lua_isnil(L, -1)) {
		/* it becomes a header line as is */
		const char *ua = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
		if (!ua || strpbrk(ua, "\r\n"))
			luaL_error(L, "option 'user_agent' in %s must be a one-line string (\"\" sends none)", what);
		free(cfg->user_agent);
		cfg->user_agent = iac_xstrdup(ua);
	}
	lua_pop(L, 1);
}

/* Stage i (1-based) from the table at index e: { "10s", 100 } or
 * { duration = "10s", target = 100 }. */
static iac_lt_stage read_stage(lua_State *L, int e, int i, const char *what)
{
	iac_lt_stage s;
	lua_rawgeti(L, e, 1);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_getfield(L, e, "duration");
	}
	char lbl[64];
	snprintf(lbl, sizeof(lbl), "the duration of stage %d", i);
	s.dur_ms = duration_at(L, -1, lbl);
	lua_pop(L, 1);
	lua_rawgeti(L, e, 2);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_getfield(L, e, "target");
	}
	if (lua_type(L, -1) != LUA_TNUMBER || lua_tonumber(L, -1) < 0)
		luaL_error(L, "the target of stage %d in %s must be a number >= 0", i, what);
	s.target = lua_tonumber(L, -1);
	lua_pop(L, 1);
	return s;
}

static void read_stages(lua_State *L, iac_lt_config *cfg, const char *what)
{
	lua_getfield(L, 1, "stages");
	if (!lua_isnil(L, -1)) {
		if (!lua_istable(L, -1))
			luaL_error(L, "option 'stages' in %s must be a list of { duration, target }", what);
		int st = lua_gettop(L);
		lua_Integer n = luaL_len(L, st);
		for (lua_Integer i = 1; i <= n; i++) {
			lua_rawgeti(L, st, i);
			int e = lua_gettop(L);
			if (!lua_istable(L, e))
				luaL_error(L, "stage %d in %s must be { \"10s\", 100 } or { duration = \"10s\", target = 100 }",
					   (int)i, what);
			iac_lt_stage s = read_stage(L, e, (int)i, what);
			lua_pop(L, 1);
			cfg->stages = iac_xrealloc(cfg->stages, (cfg->nstages + 1) * sizeof(*cfg->stages));
			cfg->stages[cfg->nstages++] = s;
		}
		if (!n)
			luaL_error(L, "option 'stages' in %s is empty", what);
	}
	lua_pop(L, 1);
}

static int l_load(lua_State *L)
{
	static const char *const keys[] = { "executor", "vus", "duration", "stages", "rate", "time_unit",
					    "pre_allocated_vus", "max_vus", "start_vus", "start_rate",
					    "graceful_stop", "timeout", "user_agent", "cookies", "max_failed", "expected_statuses", "tls",
					    NULL };
	load_ctx *c = get_ctx(L);
	iac_lt_config *cfg = c->cfg;
	luaL_checktype(L, 1, LUA_TTABLE);
	if (c->seen_load)
		luaL_error(L, "load is set twice");
	c->seen_load = 1;
	cfg->load_line = call_line(L);
	check_keys(L, 1, "load", keys);
	/* the executor first: it decides which options apply */
	read_executor(L, cfg);
	check_applies(L, cfg->executor);
	char what[64];
	snprintf(what, sizeof(what), "load (%s)", executors[cfg->executor]);
	read_load_options(L, cfg, what);
	read_stages(L, cfg, what);

	if (executor_is_ramp(cfg->executor) && !cfg->nstages)
		luaL_error(L, "executor '%s' needs stages = { { \"10s\", N }, ... }", executors[cfg->executor]);
	if (cfg->executor == IAC_LT_CONSTANT_RATE) {
		lua_getfield(L, 1, "rate");
		if (lua_isnil(L, -1))
			luaL_error(L, "executor 'constant-arrival-rate' needs rate = N (iterations per time_unit)");
		lua_pop(L, 1);
	}
	return 0;
}

static int l_thresholds(lua_State *L)
{
	load_ctx *c = get_ctx(L);
	iac_lt_config *cfg = c->cfg;
	luaL_checktype(L, 1, LUA_TTABLE);
	if (c->seen_thresholds)
		luaL_error(L, "thresholds are set twice");
	c->seen_thresholds = 1;
	int line = call_line(L);
	/* sort keys so messages and reports come out in a stable order */
	lua_newtable(L);
	int keys = lua_gettop(L);
	lua_Integer nk = 0;
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "threshold keys must be strings like \"p(99)\"");
		lua_pushvalue(L, -1);
		lua_rawseti(L, keys, ++nk);
	}
	lua_getglobal(L, "table");
	lua_getfield(L, -1, "sort");
	lua_pushvalue(L, keys);
	lua_call(L, 1, 0);
	lua_pop(L, 1);

	for (lua_Integer i = 1; i <= nk; i++) {
		lua_rawgeti(L, keys, i);
		const char *key = lua_tostring(L, -1);
		lua_gettable(L, 1);
		int v = lua_gettop(L);
		cfg->thresholds = iac_xrealloc(cfg->thresholds, (cfg->nthresholds + 1) * sizeof(*cfg->thresholds));
		iac_lt_threshold *t = &cfg->thresholds[cfg->nthresholds++];
		memset(t, 0, sizeof(*t));
		t->line = line;
		lua_rawgeti(L, keys, i);
		key = lua_tostring(L, -1);
		lua_pop(L, 1);
		int k6 = iac_lt_threshold_is_k6(key) || iac_lt_config_metric(cfg, key);
		if ((k6 ? iac_lt_threshold_parse_k6(t, key) : iac_lt_threshold_parse_key(t, key)) < 0)
			luaL_error(L, "%s", iac_err_last());
		if (lua_type(L, v) == LUA_TSTRING) {
			if (iac_lt_threshold_add_cond(t, lua_tostring(L, v)) < 0)
				luaL_error(L, "threshold '%s': %s", key, iac_err_last());
		} else if (lua_istable(L, v)) {
			static const char *const tkeys[] = { "abort_on_fail", "delay_abort_eval", NULL };
			char what[200];
			snprintf(what, sizeof(what), "threshold '%s'", key);
			check_keys(L, v, what, tkeys);
			lua_Integer n = luaL_len(L, v);
			for (lua_Integer j = 1; j <= n; j++) {
				lua_rawgeti(L, v, j);
				if (lua_type(L, -1) != LUA_TSTRING)
					luaL_error(L, "threshold '%s': conditions must be strings like \"< 250ms\"", key);
				if (iac_lt_threshold_add_cond(t, lua_tostring(L, -1)) < 0)
					luaL_error(L, "threshold '%s': %s", key, iac_err_last());
				lua_pop(L, 1);
			}
			lua_getfield(L, v, "abort_on_fail");
			t->abort_on_fail = lua_toboolean(L, -1);
			lua_pop(L, 1);
			lua_getfield(L, v, "delay_abort_eval");
			if (!lua_isnil(L, -1))
				t->delay_abort_ms = duration_at(L, -1, "option 'delay_abort_eval'");
			lua_pop(L, 1);
		} else {
			luaL_error(L, "threshold '%s' must be a condition like \"< 250ms\" or a table of them", key);
		}
		if (!t->nconds)
			luaL_error(L, "threshold '%s' has no condition", key);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return 0;
}

/* observe's option `key` = { "ADDRESS:PORT", ... } (table at index 1) into
 * out; anything else is an error that says what the list holds. */
static void addr_list(lua_State *L, const char *key, const char *what, iac_strlist *out)
{
	lua_getfield(L, 1, key);
	if (!lua_isnil(L, -1)) {
		lua_Integer n = lua_istable(L, -1) ? luaL_len(L, -1) : -1;
		if (n < 0)
			luaL_error(L, "option '%s' in observe must be a list of \"ADDRESS:PORT\" %s", key, what);
		for (lua_Integer i = 1; i <= n; i++) {
			lua_rawgeti(L, -1, i);
			if (lua_type(L, -1) != LUA_TSTRING || !strchr(lua_tostring(L, -1), ':'))
				luaL_error(L, "option '%s' in observe must be a list of \"ADDRESS:PORT\" %s", key, what);
			iac_strlist_push(out, lua_tostring(L, -1));
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
}

static int l_observe(lua_State *L)
{
	static const char *const keys[] = { "haproxy", "hosts", "ssh_key", "known_hosts", "cache", "db", NULL };
	load_ctx *c = get_ctx(L);
	luaL_checktype(L, 1, LUA_TTABLE);
	if (c->seen_observe)
		luaL_error(L, "observe is set twice");
	c->seen_observe = 1;
	check_keys(L, 1, "observe", keys);
	c->cfg->haproxy = string_field(L, 1, "haproxy", "observe");
	c->cfg->ssh_key = string_field(L, 1, "ssh_key", "observe");
	c->cfg->known_hosts = string_field(L, 1, "known_hosts", "observe");
	lua_getfield(L, 1, "hosts");
	if (!lua_isnil(L, -1)) {
		if (!lua_istable(L, -1))
			luaL_error(L, "option 'hosts' in observe must be a list of host names");
		lua_Integer n = luaL_len(L, -1);
		for (lua_Integer i = 1; i <= n; i++) {
			lua_rawgeti(L, -1, i);
			if (lua_type(L, -1) != LUA_TSTRING)
				luaL_error(L, "option 'hosts' in observe must be a list of host names");
			iac_strlist_push(&c->cfg->hosts, lua_tostring(L, -1));
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	/* cache: Redis or Memcached nodes; db: Patroni's REST API of each member (observe.h) */
	addr_list(L, "cache", "cache nodes", &c->cfg->caches);
	addr_list(L, "db", "of Patroni's REST API", &c->cfg->dbs);
	return 0;
}

/* counter("name"), gauge, rate, trend("name", is_time): declared at load
 * (into cfg->metrics, in every Lua state alike); the object's add() is
 * the engine's (vu_lua.c), and refuses to run outside a flow. */
static int declare_metric(lua_State *L, int type)
{
	load_ctx *c = get_ctx(L);
	const char *name = luaL_checkstring(L, 1);
	size_t n = strlen(name);
	int ok = n && n < 100 && (isalpha((unsigned char)name[0]) || name[0] == '_');
	for (size_t i = 0; ok && i < n; i++)
		ok = isalnum((unsigned char)name[i]) || name[i] == '_';
	if (!ok)
		luaL_error(L, "invalid metric name '%s': letters, digits and '_', starting with a letter", name);
	if (iac_lt_builtin_mtype(name) >= 0)
		luaL_error(L, "metric '%s' is one of the built-in metrics; choose another name", name);
	if (!c)
		luaL_error(L, "metrics are declared at the top of the scenario file, not inside a flow");
	const iac_lt_mdecl *d = iac_lt_config_metric(c->cfg, name);
	if (d && d->type != type)
		luaL_error(L, "metric '%s' is already a %s", name, iac_lt_mtype_name(d->type));
	if (!d) {
		iac_lt_config *cfg = c->cfg;
		cfg->metrics = iac_xrealloc(cfg->metrics, (cfg->nmetrics + 1) * sizeof(*cfg->metrics));
		iac_lt_mdecl *m = &cfg->metrics[cfg->nmetrics++];
		m->name = iac_xstrdup(name);
		m->type = type;
		m->is_time = type == IAC_LT_TREND && lua_toboolean(L, 2);
	}
	int *u = lua_newuserdatauv(L, sizeof(int), 1);
	*u = type;
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, -2, 1);
	luaL_setmetatable(L, METRIC_MT);
	return 1;
}

static int l_counter(lua_State *L) { return declare_metric(L, IAC_LT_COUNTER); }
static int l_gauge(lua_State *L) { return declare_metric(L, IAC_LT_GAUGE); }
static int l_rate(lua_State *L) { return declare_metric(L, IAC_LT_RATE); }
static int l_trend(lua_State *L) { return declare_metric(L, IAC_LT_TREND); }

static int metric_add_outside(lua_State *L)
{
	return luaL_error(L, "a metric's add() runs inside a flow, not while the file loads");
}

const iac_lt_mdecl *iac_lt_config_metric(const iac_lt_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nmetrics; i++)
		if (!strcmp(cfg->metrics[i].name, name))
			return &cfg->metrics[i];
	return NULL;
}

/* ---- data files and templates --------------------------------------- */

/* path relative to the scenario file's directory (absolute ones as they are) */
static char *beside_scenario(const iac_lt_config *cfg, const char *path)
{
	const char *slash = cfg->file ? strrchr(cfg->file, '/') : NULL;
	if (path[0] == '/' || !slash)
		return iac_xstrdup(path);
	return iac_xasprintf("%.*s/%s", (int)(slash - cfg->file), cfg->file, path);
}

/* One CSV field at *p (RFC 4180: quotes, "" inside them); *p moves past
 * its comma or line end, *eol says the line ended. */
static json_t *csv_field(const char **p, int *eol)
{
	iac_buf b = IAC_BUF_INIT;
	const char *s = *p;
	if (*s == '"') {
		for (s++; *s; s++) {
			if (*s == '"' && s[1] == '"')
				iac_buf_putc(&b, *s++);
			else if (*s == '"')
				break;
			else
				iac_buf_putc(&b, *s);
		}
		if (*s == '"')
			s++;
	}
	while (*s && *s != ',' && *s != '\n' && *s != '\r')
		iac_buf_putc(&b, *s++);
	*eol = *s != ',';
	if (*s == '\r')
		s++;
	if (*s)
		s++;
	*p = s;
	json_t *j = json_stringn(iac_buf_cstr(&b), b.len);
	iac_buf_free(&b);
	return j;
}

/* A CSV file with a header line: an array of objects. */
static json_t *csv_rows(const char *text)
{
	json_t *head = json_array(), *rows = json_array();
	const char *p = text;
	int eol = 0;
	while (*p && !eol)
		json_array_append_new(head, csv_field(&p, &eol));
	while (*p) {
		if (*p == '\n' || *p == '\r') {   /* blank line */
			p++;
			continue;
		}
		json_t *row = json_object();
		size_t i = 0;
		eol = 0;
		while (!eol) {
			json_t *v = csv_field(&p, &eol);
			const char *k = i < json_array_size(head) ? json_string_value(json_array_get(head, i)) : NULL;
			if (k)
				json_object_set_new(row, k, v);
			else
				json_decref(v);
			i++;
			if (!*p)
				break;
		}
		json_array_append_new(rows, row);
	}
	json_decref(head);
	return rows;
}

static json_t *read_data_file(lua_State *L, const iac_lt_config *cfg, const char *path)
{
	char *full = beside_scenario(cfg, path);
	char *text = NULL;
	size_t len;
	if (iac_file_read(&text, &len, full) < 0) {
		free(full);
		luaL_error(L, "shared_data: cannot read '%s': %s", path, iac_err_last());
	}
	free(full);
	size_t pl = strlen(path);
	json_t *rows;
	if (pl > 4 && !strcmp(path + pl - 4, ".csv")) {
		rows = csv_rows(text);
	} else {
		json_error_t je;
		rows = json_loadb(text, len, 0, &je);
		if (!rows) {
			free(text);
			luaL_error(L, "shared_data: '%s' is not JSON (line %d: %s); a .csv file is read as CSV", path, je.line,
				   je.text);
		}
		if (!json_is_array(rows)) {
			json_decref(rows);
			free(text);
			luaL_error(L, "shared_data: '%s' must hold a JSON array (of rows)", path);
		}
	}
	free(text);
	return rows;
}

static const json_t *find_data(const iac_lt_config *cfg, const char *path)
{
	for (size_t i = 0; cfg && i < cfg->ndata; i++)
		if (!strcmp(cfg->data[i].path, path))
			return cfg->data[i].rows;
	return NULL;
}

/* shared_data("users.csv" | "users.json"): the file is read once, by the
 * first load of the scenario; every worker's state gets a handle on the
 * same rows, never a copy of the file (k6's SharedArray). */
static int l_shared_data(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	load_ctx *c = get_ctx(L);
	if (!c)
		return luaL_error(L, "shared_data() is called at the top of the scenario file, not inside a flow");
	lua_getfield(L, LUA_REGISTRYINDEX, SHARED_KEY);
	const iac_lt_config *shared = lua_touserdata(L, -1);
	lua_pop(L, 1);
	const json_t *rows = find_data(shared, path);
	if (!rows)
		rows = find_data(c->cfg, path);
	if (!rows) {
		iac_lt_config *cfg = c->cfg;
		json_t *r = read_data_file(L, cfg, path);
		cfg->data = iac_xrealloc(cfg->data, (cfg->ndata + 1) * sizeof(*cfg->data));
		cfg->data[cfg->ndata].path = iac_xstrdup(path);
		cfg->data[cfg->ndata++].rows = r;
		rows = r;
	}
	const json_t **u = lua_newuserdatauv(L, sizeof(*u), 0);
	*u = rows;
	luaL_setmetatable(L, DATA_MT);
	return 1;
}

/* rows[i] (1-based, a fresh table), #rows, rows:row(u): the VU's own row
 * (rows sharded across VUs by u.id; VUs past the last row wrap around) */
static int data_row(lua_State *L)
{
	const json_t *rows = *(const json_t **)luaL_checkudata(L, 1, DATA_MT);
	size_t n = json_array_size(rows);
	if (!n)
		return luaL_error(L, "shared_data: the file has no rows");
	lua_getfield(L, 2, "id");
	lua_Integer id = lua_tointeger(L, -1);
	if (id < 1)
		return luaL_error(L, "rows:row(u): u must be a flow's u");
	lt_ljson_push(L, json_array_get(rows, (size_t)(id - 1) % n));
	return 1;
}

static int data_index(lua_State *L)
{
	const json_t *rows = *(const json_t **)luaL_checkudata(L, 1, DATA_MT);
	if (lua_type(L, 2) == LUA_TSTRING && !strcmp(lua_tostring(L, 2), "row")) {
		lua_pushcfunction(L, data_row);
		return 1;
	}
	lua_Integer i = luaL_checkinteger(L, 2);
	if (i < 1 || (size_t)i > json_array_size(rows))
		return 0;
	lt_ljson_push(L, json_array_get(rows, (size_t)i - 1));
	return 1;
}

static int data_len(lua_State *L)
{
	const json_t *rows = *(const json_t **)luaL_checkudata(L, 1, DATA_MT);
	lua_pushinteger(L, (lua_Integer)json_array_size(rows));
	return 1;
}

/* template("text {{name}}") or template{ file = "order.json" }: t:render(vars)
 * puts tostring(vars.name) for each {{name}}; a name vars lacks is an error. */
static int l_template(lua_State *L)
{
	load_ctx *c = get_ctx(L);
	if (lua_istable(L, 1)) {
		lua_getfield(L, 1, "file");
		const char *path = lua_tostring(L, -1);
		if (!path)
			return luaL_error(L, "template{ file = \"PATH\" } needs a file name");
		if (!c)
			return luaL_error(L, "template{ file = ... } is read at the top of the scenario file");
		char *full = beside_scenario(c->cfg, path), *text = NULL;
		size_t len;
		int rc = iac_file_read(&text, &len, full);
		free(full);
		if (rc < 0)
			return luaL_error(L, "template: cannot read '%s': %s", path, iac_err_last());
		lua_pushlstring(L, text, len);
		free(text);
	} else {
		luaL_checkstring(L, 1);
		lua_pushvalue(L, 1);
	}
	lua_newtable(L);
	lua_insert(L, -2);
	lua_setfield(L, -2, "text");
	luaL_setmetatable(L, TEMPLATE_MT);
	return 1;
}

static int template_render(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_getfield(L, 1, "text");
	size_t n;
	const char *s = lua_tolstring(L, -1, &n), *end = s + n;
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	while (s < end) {
		const char *open = strstr(s, "{{");
		const char *close = open ? strstr(open + 2, "}}") : NULL;
		if (!close) {
			luaL_addlstring(&b, s, (size_t)(end - s));
			break;
		}
		luaL_addlstring(&b, s, (size_t)(open - s));
		const char *k = open + 2, *ke = close;
		while (k < ke && *k == ' ')
			k++;
		while (ke > k && ke[-1] == ' ')
			ke--;
		lua_pushlstring(L, k, (size_t)(ke - k));
		if (lua_gettable(L, 2) == LUA_TNIL)
			return luaL_error(L, "template: no value for {{%s}}", lua_pushlstring(L, k, (size_t)(ke - k)));
		luaL_tolstring(L, -1, NULL);
		lua_remove(L, -2);
		luaL_addvalue(&b);
		s = close + 2;
	}
	luaL_pushresult(&b);
	return 1;
}

static int l_print(lua_State *L)
{
	iac_buf b = IAC_BUF_INIT;
	int n = lua_gettop(L);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			iac_buf_putc(&b, '\t');
		iac_buf_puts(&b, luaL_tolstring(L, i, NULL));
		lua_pop(L, 1);
	}
	iac_log("%s", iac_buf_cstr(&b));
	iac_buf_free(&b);
	return 0;
}

/* Base, string, table, math and utf8 only: a scenario has no business with
 * files, processes or the debug library, and must not load other code. */
static lua_State *new_sandbox(void)
{
	lua_State *L = luaL_newstate();
	if (!L)
		return NULL;
	static const luaL_Reg libs[] = {
		{ LUA_GNAME, luaopen_base },
		{ LUA_STRLIBNAME, luaopen_string },
		{ LUA_TABLIBNAME, luaopen_table },
		{ LUA_MATHLIBNAME, luaopen_math },
		{ LUA_UTF8LIBNAME, luaopen_utf8 },
		{ NULL, NULL },
	};
	for (const luaL_Reg *l = libs; l->name; l++) {
		luaL_requiref(L, l->name, l->func, 1);
		lua_pop(L, 1);
	}
	static const char *const drop[] = { "dofile", "loadfile", "load", "require", "collectgarbage", NULL };
	for (const char *const *d = drop; *d; d++) {
		lua_pushnil(L);
		lua_setglobal(L, *d);
	}
	lua_register(L, "print", l_print);
	lua_register(L, "target", l_target);
	lua_register(L, "scenario", l_scenario);
	lua_register(L, "load", l_load);
	lua_register(L, "thresholds", l_thresholds);
	lua_register(L, "observe", l_observe);
	lua_register(L, "between", l_between);
	lua_register(L, "counter", l_counter);
	lua_register(L, "gauge", l_gauge);
	lua_register(L, "rate", l_rate);
	lua_register(L, "trend", l_trend);
	luaL_newmetatable(L, BETWEEN_MT);
	lua_pop(L, 1);
	lua_register(L, "shared_data", l_shared_data);
	lua_register(L, "template", l_template);
	static const luaL_Reg data_mt[] = { { "__index", data_index }, { "__len", data_len }, { NULL, NULL } };
	static const luaL_Reg template_methods[] = { { "render", template_render }, { NULL, NULL } };
	static const luaL_Reg metric_methods[] = { { "add", metric_add_outside }, { NULL, NULL } };
	luaL_newmetatable(L, DATA_MT);
	luaL_setfuncs(L, data_mt, 0);
	lua_pop(L, 1);
	luaL_newmetatable(L, TEMPLATE_MT);
	luaL_newlib(L, template_methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	luaL_newmetatable(L, METRIC_MT);
	luaL_newlib(L, metric_methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, FLOWS_KEY);
	return L;
}

static void config_defaults(iac_lt_config *cfg)
{
	cfg->executor = IAC_LT_CONSTANT_VUS;
	cfg->vus = 10;
	cfg->duration_ms = 10e3;
	cfg->time_unit_ms = 1e3;
	cfg->graceful_stop_ms = 10e3;
	cfg->timeout_ms = 60e3;
	cfg->max_failed = 0.5;
	cfg->cookies = 1;
	for (int c = 0; c < 600; c++)
		cfg->failed_status[c] = c < 200 || c >= 400;
}

/* Run the source in L with a fresh context filling cfg. 0 or -1. */
static int run_source(lua_State *L, iac_lt_config *cfg, const char *name, const char *src, size_t len)
{
	load_ctx ctx;
	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = cfg;
	lua_pushlightuserdata(L, &ctx);
	lua_setfield(L, LUA_REGISTRYINDEX, CTX_KEY);
	char *chunk = iac_xasprintf("@%s", name);
	int rc = luaL_loadbufferx(L, src, len, chunk, "t");
	free(chunk);
	if (rc == LUA_OK)
		rc = lua_pcall(L, 0, 0, 0);
	lua_pushnil(L);
	lua_setfield(L, LUA_REGISTRYINDEX, CTX_KEY);
	if (rc != LUA_OK) {
		const char *msg = lua_tostring(L, -1);
		iac_err_set("%s", msg ? msg : "error object is not a string");
		lua_pop(L, 1);
		return IAC_ERR;
	}
	return 0;
}

/* A sub-metric for threshold t, unless one with its name is kept already. */
static void add_sub(iac_lt_config *cfg, const iac_lt_threshold *t, enum iac_lt_sub_kind kind)
{
	for (size_t i = 0; i < cfg->nsubs; i++)
		if (!strcmp(cfg->subs[i].acc, t->acc))
			return;
	cfg->subs = iac_xrealloc(cfg->subs, (cfg->nsubs + 1) * sizeof(*cfg->subs));
	iac_lt_sub *s = &cfg->subs[cfg->nsubs++];
	s->kind = kind;
	s->metric = t->mname;
	s->acc = t->acc;
	s->tagk = t->tagk;
	s->tagv = t->tagv;
	s->ntags = t->ntags;
	s->type = t->mtype;
}

/* k6-form thresholds, once every metric is declared: their types, their
 * conditions, the sub-metrics they need. 0, or -1 with "FILE:LINE: ...". */
static int resolve_thresholds(iac_lt_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nthresholds; i++) {
		iac_lt_threshold *t = &cfg->thresholds[i];
		if (!t->mname)
			continue;
		int type = iac_lt_builtin_mtype(t->mname);
		const iac_lt_mdecl *d = iac_lt_config_metric(cfg, t->mname);
		if (type < 0 && d)
			type = d->type;
		if (type < 0)
			return iac_err_set("%s:%d: unknown metric '%s' in threshold '%s'; valid metrics: %s", name, t->line,
					   t->mname, t->key, iac_lt_metric_list());
		if (iac_lt_threshold_resolve(t, type, d && d->type == IAC_LT_TREND && !d->is_time) < 0)
			return iac_err_set("%s:%d: %s", name, t->line, iac_err_last());
		const char *m = t->mname;
		if (!strcmp(m, "group_duration")) {
			if (t->ntags != 1 || strcmp(t->tagk[0], "group"))
				return iac_err_set("%s:%d: threshold '%s': group_duration is kept per group: "
						   "group_duration{group:::NAME}", name, t->line, t->key);
			continue;
		}
		if (!t->ntags) {
			if (d) {
				free(t->acc);
				t->acc = iac_xstrdup(m);
			}
			continue;
		}
		if (d)
			add_sub(cfg, t, IAC_LT_SUB_CUSTOM);
		else if (!strcmp(m, "http_req_duration"))
			add_sub(cfg, t, IAC_LT_SUB_DURATION);
		else if (!strcmp(m, "http_req_failed"))
			add_sub(cfg, t, IAC_LT_SUB_FAILED);
		else if (!strcmp(m, "http_reqs"))
			add_sub(cfg, t, IAC_LT_SUB_REQS);
		else
			return iac_err_set("%s:%d: threshold '%s': '%s' is not kept by tag; use it without {...}", name,
					   t->line, t->key, m);
	}
	return 0;
}

static int load_string(iac_lt_config *cfg, const char *name, const char *src, const char *target)
{
	memset(cfg, 0, sizeof(*cfg));
	config_defaults(cfg);
	cfg->file = iac_xstrdup(name);
	cfg->source_len = strlen(src);
	cfg->source = iac_xstrdup(src);

	lua_State *L = new_sandbox();
	if (!L)
		return iac_err_set("cannot create a Lua state: out of memory");
	int rc = run_source(L, cfg, name, cfg->source, cfg->source_len);
	if (rc == 0) {   /* k6's lifecycle functions, run by setup.c */
		cfg->has_setup = lua_getglobal(L, "setup") == LUA_TFUNCTION;
		cfg->has_teardown = lua_getglobal(L, "teardown") == LUA_TFUNCTION;
		lua_pop(L, 2);
	}
	lua_close(L);
	if (rc < 0 || resolve_thresholds(cfg, name) < 0)
		return IAC_ERR;
	if (target) {
		if (!iac_str_starts(target, "http://") && !iac_str_starts(target, "https://"))
			return iac_err_set("the target '%s' must be an http:// or https:// URL", target);
		free(cfg->target);
		cfg->target = iac_xstrdup(target);
	}

	/* checks that need the whole file */
	if (!cfg->nscenarios) {
		if (!cfg->target)
			return iac_err_set("%s: no target and no scenario: add target \"http://host:port/path\"", name);
		iac_lt_scenario s;
		memset(&s, 0, sizeof(s));
		s.name = iac_xstrdup("default");
		s.weight = 1;
		s.method = iac_xstrdup("GET");
		s.url = iac_xstrdup(cfg->target);
		cfg->scenarios = iac_xmalloc(sizeof(s));
		cfg->scenarios[0] = s;
		cfg->nscenarios = 1;
	}
	for (size_t i = 0; i < cfg->nscenarios; i++) {
		iac_lt_scenario *s = &cfg->scenarios[i];
		if (s->url && !cfg->target && !iac_str_starts(s->url, "http://") && !iac_str_starts(s->url, "https://"))
			return iac_err_set("%s:%d: scenario '%s' has the relative path '%s' but there is no target; "
					   "add target \"http://host:port\" or give -target URL", name, s->line, s->name, s->url);
	}
	int open = cfg->executor == IAC_LT_CONSTANT_RATE || cfg->executor == IAC_LT_RAMPING_RATE;
	if (open) {
		if (!cfg->max_vus)
			cfg->max_vus = cfg->pre_vus > 100 ? cfg->pre_vus : 100;
		if (!cfg->pre_vus)
			cfg->pre_vus = cfg->max_vus < 10 ? cfg->max_vus : 10;
		if (cfg->pre_vus > cfg->max_vus)
			return iac_err_set("%s:%d: pre_allocated_vus (%d) is above max_vus (%d)", name, cfg->load_line,
					   cfg->pre_vus, cfg->max_vus);
	}
	return 0;
}

int iac_lt_scenario_load_string(iac_lt_config *cfg, const char *name, const char *src)
{
	int rc = load_string(cfg, name, src, NULL);
	if (rc < 0)
		iac_lt_config_free(cfg);   /* a failed load leaves nothing to free */
	return rc;
}

int iac_lt_scenario_load(iac_lt_config *cfg, const char *path)
{
	return iac_lt_scenario_load_target(cfg, path, NULL);
}

int iac_lt_scenario_load_target(iac_lt_config *cfg, const char *path, const char *target)
{
	char *src = NULL;
	size_t len;
	int rc = iac_file_read(&src, &len, path);
	if (rc < 0) {
		memset(cfg, 0, sizeof(*cfg));
		if (rc == IAC_ENOTFOUND)
			return iac_err_set("scenario file '%s' does not exist", path);
		return IAC_ERR;
	}
	if (strlen(src) != len) {
		free(src);
		memset(cfg, 0, sizeof(*cfg));
		return iac_err_set("%s: the file contains a NUL byte; a scenario is Lua text", path);
	}
	rc = load_string(cfg, path, src, target);
	if (rc < 0)
		iac_lt_config_free(cfg);
	free(src);
	return rc;
}

double iac_lt_config_duration_ms(const iac_lt_config *cfg)
{
	if (cfg->executor == IAC_LT_RAMPING_VUS || cfg->executor == IAC_LT_RAMPING_RATE) {
		double d = 0;
		for (size_t i = 0; i < cfg->nstages; i++)
			d += cfg->stages[i].dur_ms;
		return d;
	}
	return cfg->duration_ms;
}

void iac_lt_config_free(iac_lt_config *cfg)
{
	for (size_t i = 0; i < cfg->nscenarios; i++) {
		iac_lt_scenario *s = &cfg->scenarios[i];
		free(s->name);
		free(s->method);
		free(s->url);
		free(s->body);
		free(s->endpoint);
		iac_strlist_free(&s->headers);
		iac_strlist_free(&s->tags);
	}
	free(cfg->scenarios);
	for (size_t i = 0; i < cfg->nthresholds; i++)
		iac_lt_threshold_free(&cfg->thresholds[i]);
	free(cfg->thresholds);
	for (size_t i = 0; i < cfg->nmetrics; i++)
		free(cfg->metrics[i].name);
	free(cfg->metrics);
	free(cfg->subs);
	for (size_t i = 0; i < cfg->ndata; i++) {
		free(cfg->data[i].path);
		json_decref(cfg->data[i].rows);
	}
	free(cfg->data);
	free(cfg->setup_data);
	free(cfg->stages);
	free(cfg->file);
	free(cfg->source);
	free(cfg->target);
	free(cfg->user_agent);
	free(cfg->tls_ca_file);
	free(cfg->tls_server_name);
	free(cfg->haproxy);
	free(cfg->ssh_key);
	free(cfg->known_hosts);
	iac_strlist_free(&cfg->hosts);
	iac_strlist_free(&cfg->caches);
	iac_strlist_free(&cfg->dbs);
	memset(cfg, 0, sizeof(*cfg));
}

lua_State *iac_lt_scenario_open(const iac_lt_config *cfg)
{
	lua_State *L = new_sandbox();
	if (!L) {
		iac_err_set("cannot create a Lua state: out of memory");
		return NULL;
	}
	lua_pushlightuserdata(L, (void *)cfg);   /* shared_data() finds the rows loaded already */
	lua_setfield(L, LUA_REGISTRYINDEX, SHARED_KEY);
	iac_lt_config scratch;
	memset(&scratch, 0, sizeof(scratch));
	config_defaults(&scratch);
	scratch.file = cfg->file;   /* borrowed, for paths beside the scenario */
	int rc = run_source(L, &scratch, cfg->file, cfg->source, cfg->source_len);
	scratch.file = NULL;
	iac_lt_config_free(&scratch);
	if (rc < 0) {
		lua_close(L);
		return NULL;
	}
	return L;
}

int iac_lt_push_flow(lua_State *L, size_t i)
{
	lua_getfield(L, LUA_REGISTRYINDEX, FLOWS_KEY);
	lua_rawgeti(L, -1, (lua_Integer)i + 1);
	lua_remove(L, -2);
	return lua_isfunction(L, -1);
}
