/* vu_lua: the `u` object a flow receives, and the responses it gets back.
 *
 *   local r = u:get(path_or_url, { name = "product", headers = {...} })
 *   u:post(path, { json = {...} } | { body = "..." }), put, patch, delete, head
 *   u:request(method, path, opts)
 *   r.status, r.body, r.time_ms, r.error (nil, "timeout", "connect", ...),
 *   r.headers (lower-case names, built on first use), r:json()
 *   u:check(cond, name)  u:sleep(d)  u:random(a, b)  u:chance(p)  u:pick(list)
 *   u.id  u.iteration  u.scenario  u.data (a table kept per VU)  u:log(...)
 *
 * u:get, u:sleep and friends say what they want in vu->ask and yield the
 * VU's coroutine; the engine (vu.c) does it and resumes the coroutine with
 * the response. This file calls nothing of the loop that runs it: only the
 * helpers below it in engine_int.h. JSON goes through Jansson.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <lauxlib.h>

#include "iac/core/err.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/loadtest/engine_int.h"
#include "iac/loadtest/ljson.h"
#include "iac/loadtest/stats.h"

#define U_MT "iac.lt.u"
#define RESP_MT "iac.lt.response"
#define HDR_KEY "_headers_raw"
#define METRIC_MT "iac.lt.metric"   /* made by scenario.c; add() is given here */

typedef struct {
	lt_vu *vu;
} lt_u;

static lt_vu *check_u(lua_State *L)
{
	lt_u *u = luaL_checkudata(L, 1, U_MT);
	return u->vu;
}

int lt_lua_push_data(lua_State *L, const char *json)
{
	json_error_t je;
	json_t *j = json_loads(json, JSON_DECODE_ANY, &je);
	if (!j)
		return iac_err_set("setup() data cannot be read back: %s", je.text);
	lt_ljson_push(L, j);
	json_decref(j);
	return 0;
}

char *lt_lua_to_json(lua_State *L, int idx)
{
	json_t *j = lt_ljson_from(L, idx);
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(j);
	return s;
}

/* ---- requests ------------------------------------------------------ */

/* Hand the request to the engine and wait for its response: the engine
 * sends it once the coroutine has yielded (see enum lt_ask). bytes must
 * outlive the request (vu->out or a prebuilt request). */
static int ask_request(lua_State *L, lt_vu *vu, const char *bytes, size_t len, int addr, size_t ep)
{
	vu->req = bytes;
	vu->reqlen = len;
	vu->want_addr = addr;
	vu->ep = ep;
	vu->ask = LT_ASK_REQUEST;
	return lua_yield(L, 0);
}

/* opts.headers into b; notes whether they set Content-Type or User-Agent. */
static void put_headers(lua_State *L, iac_buf *b, int opt_idx, const char *method, int *has_ctype, int *has_ua)
{
	lua_getfield(L, opt_idx, "headers");
	if (lua_istable(L, -1)) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
			const char *v = lua_tostring(L, -1);
			if (!k || !v || strpbrk(k, "\r\n:") || strpbrk(v, "\r\n"))
				luaL_error(L, "u:%s: headers must map names to single-line strings", method);
			if (!strcasecmp(k, "content-type"))
				*has_ctype = 1;
			if (!strcasecmp(k, "user-agent"))
				*has_ua = 1;
			iac_buf_printf(b, "%s: %s\r\n", k, v);
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
}

/* The request into vu->out: the body is the string argument, else
 * opts.body, else opts.json encoded (which also sets Content-Type unless
 * a header did). */
static void build_request(lua_State *L, lt_vu *vu, const char *method, const char *path, int a, int opt_idx,
			  int body_idx)
{
	iac_lt_worker *w = vu->w;
	iac_buf *b = &vu->out;
	iac_buf_clear(b);
	lt_http_head(b, method, path, w->addrs[a].hostport);
	int has_ua = 0, has_ctype = 0;
	const char *body = NULL;
	size_t blen = 0;
	char *jbody = NULL;
	if (body_idx && lua_type(L, body_idx) == LUA_TSTRING)
		body = lua_tolstring(L, body_idx, &blen);
	if (vu->cookies.len)
		iac_buf_printf(b, "Cookie: %s\r\n", vu->cookies.ptr);
	if (opt_idx && lua_istable(L, opt_idx)) {
		put_headers(L, b, opt_idx, method, &has_ctype, &has_ua);
		lua_getfield(L, opt_idx, "body");
		if (lua_type(L, -1) == LUA_TSTRING)
			body = lua_tolstring(L, -1, &blen);
		lua_pop(L, 1);   /* the string stays referenced by the options table */
		lua_getfield(L, opt_idx, "json");
		if (!lua_isnil(L, -1)) {
			json_t *j = lt_ljson_from(L, -1);
			jbody = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
			json_decref(j);
			body = jbody;
			blen = strlen(jbody);
			if (!has_ctype)
				iac_buf_puts(b, "Content-Type: application/json\r\n");
		}
		lua_pop(L, 1);
	}
	lt_http_end(b, w->run->cfg, has_ua, method, body, blen);
	free(jbody);
}

/* opts.tags: strings, kept by pointer (the options table stays on the
 * coroutine's stack until the response resumes it). */
static void read_tags(lua_State *L, lt_vu *vu, int opt_idx, const char *method)
{
	lua_getfield(L, opt_idx, "tags");
	if (!lua_isnil(L, -1)) {
		if (!lua_istable(L, -1))
			luaL_error(L, "u:%s: tags must be a table of names to strings", method);
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
				luaL_error(L, "u:%s: tags must map names to strings", method);
			if (vu->ntags >= LT_MAX_TAGS)
				luaL_error(L, "u:%s: at most %d tags on a request", method, LT_MAX_TAGS);
			vu->tagk[vu->ntags] = lua_tostring(L, -2);
			vu->tagv[vu->ntags++] = lua_tostring(L, -1);
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
}

void lt_vu_scenario_tags(lt_vu *vu)
{
	const iac_strlist *t = &vu->w->run->cfg->scenarios[vu->scen].tags;
	for (size_t i = 0; i + 1 < t->n && vu->ntags < LT_MAX_TAGS; i += 2) {
		vu->tagk[vu->ntags] = t->items[i];
		vu->tagv[vu->ntags++] = t->items[i + 1];
	}
}

/* Keep the bytes of an option-less request for the next time the flow
 * asks for the same URL. */
static lt_prebuilt *cache_put(iac_lt_worker *w, const char *url, const iac_buf *b, int a, size_t ep)
{
	lt_prebuilt *p = iac_xmalloc(sizeof(*p));
	p->bytes = iac_xmalloc(b->len + 1);
	memcpy(p->bytes, b->ptr, b->len + 1);
	p->len = b->len;
	p->addr = a;
	p->ep = ep;
	iac_map_put(&w->reqcache, url, p);
	return p;
}

static int do_request(lua_State *L, lt_vu *vu, const char *method, int url_idx, int opt_idx, int body_idx)
{
	iac_lt_worker *w = vu->w;
	if (!lua_isyieldable(L))
		return luaL_error(L, "u:%s can only be called from a flow, not from a callback that cannot wait",
				  method);
	const char *url = luaL_checkstring(L, url_idx);
	const char *name = NULL;
	/* u:get("/x") with no options: the same bytes every time, built once */
	int cacheable = (!opt_idx || lua_isnoneornil(L, opt_idx)) && !body_idx && !vu->cookies.len &&
			(!strcmp(method, "GET") || !strcmp(method, "HEAD") || !strcmp(method, "DELETE"));
	if (cacheable) {
		lt_prebuilt *p = iac_map_get(&w->reqcache, url);
		if (p)
			return ask_request(L, vu, p->bytes, p->len, p->addr, p->ep);
	}
	const char *key = url;
	vu->method = method;   /* a literal, or u:request's: copied below */
	vu->ntags = 0;
	if (opt_idx && !lua_isnoneornil(L, opt_idx)) {
		luaL_checktype(L, opt_idx, LUA_TTABLE);
		lua_getfield(L, opt_idx, "name");
		name = lua_tostring(L, -1);
		lua_pop(L, 1);   /* the string stays referenced by the options table */
		read_tags(L, vu, opt_idx, method);
	}
	lt_vu_scenario_tags(vu);
	if (url[0] == '/' && w->run->base_path[0])
		url = lua_pushfstring(L, "%s%s", w->run->base_path, url);   /* collected with the stack */
	const char *path;
	int a = lt_net_addr_for(w, url, &path);
	if (a < 0)
		return luaL_error(L, "%s", iac_err_last());
	build_request(L, vu, method, path, a, opt_idx, body_idx);
	size_t ep = lt_tally_endpoint(w, method, path, name);
	if (cacheable && w->reqcache.count < LT_REQCACHE_MAX) {
		lt_prebuilt *p = cache_put(w, key, &vu->out, a, ep);
		return ask_request(L, vu, p->bytes, p->len, a, ep);
	}
	return ask_request(L, vu, vu->out.ptr, vu->out.len, a, ep);
}

static int method_fn(lua_State *L, const char *m)
{
	lt_vu *vu = check_u(L);
	snprintf(vu->method_buf, sizeof(vu->method_buf), "%s", m);
	m = vu->method_buf;   /* u:request's method lives on a C stack the yield leaves */
	/* u:post(url, "body", opts) or u:post(url, opts) */
	if (lua_type(L, 3) == LUA_TSTRING)
		return do_request(L, vu, m, 2, 4, 3);
	return do_request(L, vu, m, 2, 3, 0);
}

static int u_get(lua_State *L) { return method_fn(L, "GET"); }
static int u_post(lua_State *L) { return method_fn(L, "POST"); }
static int u_put(lua_State *L) { return method_fn(L, "PUT"); }
static int u_patch(lua_State *L) { return method_fn(L, "PATCH"); }
static int u_delete(lua_State *L) { return method_fn(L, "DELETE"); }
static int u_head(lua_State *L) { return method_fn(L, "HEAD"); }

static int u_request(lua_State *L)
{
	check_u(L);
	const char *m = luaL_checkstring(L, 2);
	char up[16];
	size_t i;
	for (i = 0; m[i] && i < sizeof(up) - 1; i++) {
		if (!isalpha((unsigned char)m[i]))
			return luaL_error(L, "u:request: invalid method '%s'", m);
		up[i] = (char)toupper((unsigned char)m[i]);
	}
	up[i] = 0;
	lua_remove(L, 2);
	return method_fn(L, up);
}

/* ---- helpers ------------------------------------------------------- */

static int u_check(lua_State *L)
{
	lt_vu *vu = check_u(L);
	int ok = lua_toboolean(L, 2);
	const char *name = luaL_checkstring(L, 3);
	lt_tally_check(vu->w, name, ok);
	lua_pushboolean(L, ok);
	return 1;
}

static int u_sleep(lua_State *L)
{
	lt_vu *vu = check_u(L);
	double ms;
	if (lua_type(L, 2) == LUA_TNUMBER)
		ms = lua_tonumber(L, 2) * 1e3;
	else if (iac_duration_parse(&ms, luaL_checkstring(L, 2)) < 0)
		return luaL_error(L, "u:sleep: %s", iac_err_last());
	if (!lua_isyieldable(L))
		return luaL_error(L, "u:sleep can only be called from a flow");
	if (!(ms > 0))
		return 0;
	vu->ask_ms = ms;
	vu->ask = LT_ASK_SLEEP;   /* the engine sets the timer once we have yielded */
	return lua_yield(L, 0);
}

static int u_random(lua_State *L)
{
	lt_vu *vu = check_u(L);
	lua_Integer a = luaL_checkinteger(L, 2), b = luaL_checkinteger(L, 3);
	if (b < a)
		return luaL_error(L, "u:random(%d, %d): the maximum is below the minimum", (int)a, (int)b);
	uint64_t span = (uint64_t)(b - a) + 1;
	lua_pushinteger(L, a + (lua_Integer)(span ? lt_rand(vu->w) % span : lt_rand(vu->w)));
	return 1;
}

static int u_chance(lua_State *L)
{
	lt_vu *vu = check_u(L);
	double p = luaL_checknumber(L, 2);
	lua_pushboolean(L, lt_rand01(vu->w) < p);
	return 1;
}

static int u_pick(lua_State *L)
{
	lt_vu *vu = check_u(L);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
	if (n < 1)
		return luaL_error(L, "u:pick: the list is empty");
	lua_rawgeti(L, 2, 1 + (lua_Integer)(lt_rand(vu->w) % (uint64_t)n));
	return 1;
}

static int u_log(lua_State *L)
{
	lt_vu *vu = check_u(L);
	iac_buf b = IAC_BUF_INIT;
	int n = lua_gettop(L);
	for (int i = 2; i <= n; i++) {
		if (i > 2)
			iac_buf_putc(&b, '\t');
		iac_buf_puts(&b, luaL_tolstring(L, i, NULL));
		lua_pop(L, 1);
	}
	iac_log("vu %u: %s", vu->id, iac_buf_cstr(&b));
	iac_buf_free(&b);
	return 0;
}

static int u_index(lua_State *L)
{
	lt_vu *vu = check_u(L);
	const char *k = luaL_checkstring(L, 2);
	if (!strcmp(k, "id")) {
		lua_pushinteger(L, vu->id);
		return 1;
	}
	if (!strcmp(k, "iteration")) {
		lua_pushinteger(L, (lua_Integer)vu->iteration);
		return 1;
	}
	if (!strcmp(k, "scenario")) {
		lua_pushstring(L, vu->w->run->cfg->scenarios[vu->scen].name);
		return 1;
	}
	if (!strcmp(k, "data")) {
		if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE) {
			lua_pop(L, 1);
			lua_newtable(L);
			lua_pushvalue(L, -1);
			lua_setiuservalue(L, 1, 1);
		}
		return 1;
	}
	lua_getmetatable(L, 1);
	lua_getfield(L, -1, "methods");
	lua_getfield(L, -1, k);
	if (lua_isnil(L, -1))
		return luaL_error(L, "u has no field or method '%s'", k);
	return 1;
}

/* ---- metrics and groups ------------------------------------------ */

/* The VU whose coroutine L is (NULL: not a flow's). */
static lt_vu *running_vu(lua_State *L)
{
	return *(lt_vu **)lua_getextraspace(L);
}

/* m:add(value [, tags]): a counter adds, a gauge sets, a rate counts a
 * true (or non-zero) sample, a trend records a value. */
static int metric_add(lua_State *L)
{
	int type = *(int *)luaL_checkudata(L, 1, METRIC_MT);
	lt_vu *vu = running_vu(L);
	if (!vu)
		return luaL_error(L, "a metric's add() runs inside a flow");
	double v;
	if (type == IAC_LT_RATE && lua_isboolean(L, 2))
		v = lua_toboolean(L, 2);
	else
		v = luaL_checknumber(L, 2);
	if (type == IAC_LT_COUNTER && v < 0)
		return luaL_error(L, "a counter only grows: add(%f)", v);
	const char *k[LT_MAX_TAGS], *val[LT_MAX_TAGS];
	int n = 0;
	if (!lua_isnoneornil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		lua_pushnil(L);
		while (lua_next(L, 3)) {
			if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
				return luaL_error(L, "add(): tags must map names to strings");
			if (n >= LT_MAX_TAGS)
				return luaL_error(L, "add(): at most %d tags", LT_MAX_TAGS);
			k[n] = lua_tostring(L, -2);
			val[n++] = lua_tostring(L, -1);
			lua_pop(L, 1);
		}
	}
	lua_getiuservalue(L, 1, 1);
	lt_tally_metric(vu, lua_tostring(L, -1), type, v, k, val, n);
	return 0;
}

/* group(name, fn): fn runs inside the group; stack: name, fn, t0, the
 * group's previous length, then fn's results. */
static int group_done(lua_State *L, int status, lua_KContext ctx)
{
	(void)status;
	(void)ctx;
	lt_vu *vu = running_vu(L);
	double ms = (double)(lt_now_us() - (uint64_t)lua_tointeger(L, 3)) / 1e3;
	lt_tally_group(vu, iac_buf_cstr(&vu->group), ms);
	size_t prev = (size_t)lua_tointeger(L, 4);
	if (prev <= vu->group.len) {
		vu->group.len = prev;
		if (vu->group.ptr)
			vu->group.ptr[prev] = 0;
	}
	return lua_gettop(L) - 4;
}

static int l_group(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	lt_vu *vu = running_vu(L);
	if (!vu || !lua_isyieldable(L))
		return luaL_error(L, "group() runs inside a flow");
	if (strstr(name, "::") || strpbrk(name, "{},"))
		return luaL_error(L, "group name '%s' may not contain '::', '{', '}' or ','", name);
	lua_settop(L, 2);
	lua_pushinteger(L, (lua_Integer)lt_now_us());
	lua_pushinteger(L, (lua_Integer)vu->group.len);
	iac_buf_printf(&vu->group, "::%s", name);
	lua_pushvalue(L, 2);
	lua_callk(L, 0, LUA_MULTRET, 0, group_done);
	return group_done(L, LUA_OK, 0);
}

/* ---- cookies ------------------------------------------------------- */

/* Set name=value in the jar ("a=1; b=2"), or remove it (del). */
static void jar_set(iac_buf *jar, const char *name, size_t nl, const char *val, size_t vl, int del)
{
	iac_buf out = IAC_BUF_INIT;
	const char *p = iac_buf_cstr(jar);
	while (*p) {
		const char *end = strstr(p, "; ");
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (!(len > nl && p[nl] == '=' && !strncmp(p, name, nl))) {
			if (out.len)
				iac_buf_puts(&out, "; ");
			iac_buf_put(&out, p, len);
		}
		p += len + (end ? 2 : 0);
	}
	if (!del) {
		if (out.len)
			iac_buf_puts(&out, "; ");
		iac_buf_put(&out, name, nl);
		iac_buf_putc(&out, '=');
		iac_buf_put(&out, val, vl);
	}
	iac_buf_free(jar);
	*jar = out;
}

void lt_cookies_update(lt_vu *vu)
{
	const char *p = iac_buf_cstr(&vu->hbuf), *end = p + vu->hbuf.len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		if ((size_t)(nl - p) > 11 && !strncasecmp(p, "set-cookie:", 11)) {
			const char *c = p + 11;
			while (c < nl && *c == ' ')
				c++;
			const char *semi = memchr(c, ';', (size_t)(nl - c));
			const char *vend = semi ? semi : nl;
			const char *eq = memchr(c, '=', (size_t)(vend - c));
			if (eq && eq > c && !memchr(c, ' ', (size_t)(eq - c))) {
				/* Max-Age=0 or an expiry in the past deletes it (as
				 * servers log users out); other attributes are not kept */
				int del = 0;
				for (const char *a = semi; a && a < nl; a = memchr(a + 1, ';', (size_t)(nl - a - 1))) {
					const char *x = a + 1;
					while (x < nl && *x == ' ')
						x++;
					if (!strncasecmp(x, "max-age=0", 9) || !strncasecmp(x, "max-age=-", 9))
						del = 1;
					if (!strncasecmp(x, "expires=", 8) && strstr(x, "1970"))
						del = 1;
				}
				jar_set(&vu->cookies, c, (size_t)(eq - c), eq + 1, (size_t)(vend - eq - 1), del);
			}
		}
		p = nl + 1;
	}
}

/* ---- responses ----------------------------------------------------- */

static int resp_index(lua_State *L)
{
	const char *k = luaL_checkstring(L, 2);
	if (!strcmp(k, "json")) {
		lua_getmetatable(L, 1);
		lua_getfield(L, -1, "json_method");
		return 1;
	}
	if (strcmp(k, "headers"))
		return 0;
	/* parsed on first use: most flows never look at headers */
	lua_newtable(L);
	lua_getfield(L, 1, HDR_KEY);
	size_t n;
	const char *raw = lua_tolstring(L, -1, &n);
	const char *p = raw ? raw : "", *end = p + (raw ? n : 0);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		const char *colon = memchr(p, ':', (size_t)(nl - p));
		if (colon) {
			luaL_Buffer kb;
			luaL_buffinit(L, &kb);
			for (const char *c = p; c < colon; c++)
				luaL_addchar(&kb, (char)tolower((unsigned char)*c));
			luaL_pushresult(&kb);
			const char *v = colon + 1;
			while (v < nl && *v == ' ')
				v++;
			lua_pushvalue(L, -1);
			lua_rawget(L, -4);
			if (lua_isstring(L, -1)) {   /* repeated header: join as HTTP allows */
				lua_pushliteral(L, ", ");
				lua_pushlstring(L, v, (size_t)(nl - v));
				lua_concat(L, 3);
			} else {
				lua_pop(L, 1);
				lua_pushlstring(L, v, (size_t)(nl - v));
			}
			lua_rawset(L, -4);
		}
		p = nl + 1;
	}
	lua_pop(L, 1);
	lua_pushvalue(L, -1);
	lua_setfield(L, 1, "headers");
	return 1;
}

static int resp_json(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_getfield(L, 1, "body");
	size_t n;
	const char *b = lua_tolstring(L, -1, &n);
	json_error_t je;
	json_t *j = b ? json_loadb(b, n, JSON_DECODE_ANY, &je) : NULL;
	if (!j)
		return luaL_error(L, "r:json(): the body is not JSON: %s", b ? je.text : "no body");
	lt_ljson_push(L, j);
	json_decref(j);
	return 1;
}

int lt_lua_push_response(lt_vu *vu, int status, const char *error, double ms)
{
	lua_State *co = vu->co;
	lua_createtable(co, 0, 5);
	lua_pushinteger(co, status);
	lua_setfield(co, -2, "status");
	lua_pushlstring(co, vu->bbuf.ptr ? vu->bbuf.ptr : "", vu->bbuf.len);
	lua_setfield(co, -2, "body");
	lua_pushnumber(co, ms);
	lua_setfield(co, -2, "time_ms");
	if (error) {
		lua_pushstring(co, error);
		lua_setfield(co, -2, "error");
	}
	lua_pushlstring(co, vu->hbuf.ptr ? vu->hbuf.ptr : "", vu->hbuf.len);
	lua_setfield(co, -2, HDR_KEY);
	luaL_setmetatable(co, RESP_MT);
	return 1;
}

void lt_lua_setup(lua_State *L)
{
	static const luaL_Reg methods[] = {
		{ "get", u_get }, { "post", u_post }, { "put", u_put }, { "patch", u_patch },
		{ "delete", u_delete }, { "head", u_head }, { "request", u_request },
		{ "check", u_check }, { "sleep", u_sleep }, { "random", u_random },
		{ "chance", u_chance }, { "pick", u_pick }, { "log", u_log },
		{ NULL, NULL },
	};
	luaL_newmetatable(L, U_MT);
	luaL_newlib(L, methods);
	lua_setfield(L, -2, "methods");
	lua_pushcfunction(L, u_index);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	luaL_newmetatable(L, RESP_MT);
	lua_pushcfunction(L, resp_index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, resp_json);
	lua_setfield(L, -2, "json_method");
	lua_pop(L, 1);
	/* metrics made while the file loaded get their real add(); a state that
	 * never declared metrics (no metric library, as in the HTTP fuzzer) has
	 * no such metatable, and indexing nil outside pcall would panic */
	if (luaL_getmetatable(L, METRIC_MT) == LUA_TTABLE) {
		if (lua_getfield(L, -1, "__index") == LUA_TTABLE) {
			lua_pushcfunction(L, metric_add);
			lua_setfield(L, -2, "add");
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	lua_register(L, "group", l_group);
	*(lt_vu **)lua_getextraspace(L) = NULL;
}

void lt_lua_vu_init(lt_vu *vu)
{
	lua_State *L = vu->w->L;
	vu->co = lua_newthread(L);
	vu->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	*(lt_vu **)lua_getextraspace(vu->co) = vu;   /* for group() and add(), which get no `u` */
	lt_u *u = lua_newuserdatauv(L, sizeof(*u), 1);
	u->vu = vu;
	luaL_setmetatable(L, U_MT);
	vu->u_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}
