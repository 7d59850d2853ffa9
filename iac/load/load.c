/* load: run a configuration's Lua in a sandbox and collect what it declares
 * into an iac_config (see config.h).
 *
 * The sandbox follows Lua's own linit.c/lua.c: only base, string, table,
 * math, utf8 and coroutine are opened; os, io, debug and package are
 * replaced by tables that raise a clear error; chunks load as text only (no
 * bytecode); require() resolves only inside the configuration directory and
 * the shipped modules/; every chunk runs under lua_pcall with a message
 * handler, so a script error is an error message, never a crash.
 */
#include "iac/load/load_int.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <limits.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/load/lua_value.h"
#include "iac/load/modsrc.h"

#define LOADER_KEY "iac.loader"
#define BASE_KEY "iac.base"
#define LOADED_KEY "iac.loaded"

loader *iac_load_get(lua_State *L)
{
	lua_getfield(L, LUA_REGISTRYINDEX, LOADER_KEY);
	loader *ld = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return ld;
}

void iac_load_where(lua_State *L, char *file, size_t filelen, int *line)
{
	lua_Debug ar;
	snprintf(file, filelen, "?");
	*line = 0;
	/* level 1 is the Lua code that called the builtin; skip C frames, and
	 * the shipped modules: an error in `deployment "web" {...}` belongs to
	 * the user's line, not to modules/deployment.lua */
	for (int level = 1; lua_getstack(L, level, &ar); level++) {
		lua_getinfo(L, "Sl", &ar);
		if (ar.currentline > 0 && strncmp(ar.short_src, "<iac>/", 6) != 0) {
			snprintf(file, filelen, "%s", ar.short_src);
			*line = ar.currentline;
			return;
		}
	}
}

int iac_load_error(lua_State *L, const char *fmt, ...)
{
	char file[256];
	int line;
	va_list ap;
	iac_load_where(L, file, sizeof(file), &line);
	va_start(ap, fmt);
	const char *msg = lua_pushvfstring(L, fmt, ap);
	va_end(ap);
	if (line > 0)
		lua_pushfstring(L, "%s:%d: %s", file, line, msg);
	else
		lua_pushstring(L, msg);
	return lua_error(L);
}

static int blocked_index(lua_State *L)
{
	const char *lib = lua_tostring(L, lua_upvalueindex(1));
	const char *key = lua_tostring(L, 2);
	return iac_load_error(L, "'%s.%s' is not available in topology code: configuration runs in a "
			  "sandbox without os, io, debug or package (use variables for inputs and "
			  "resources for actions)", lib, key ? key : "?");
}

static void block_lib(lua_State *L, const char *name)
{
	lua_newtable(L);
	lua_newtable(L);
	lua_pushstring(L, name);
	lua_pushcclosure(L, blocked_index, 1);
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, "__index");
	lua_setfield(L, -2, "__newindex");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_setfield(L, -2, name);
}

static int sandbox_print(lua_State *L)
{
	/* stdout carries plans and JSON; print() goes to stderr */
	int n = lua_gettop(L);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, '\t');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_addchar(&b, '\n');
	luaL_pushresult(&b);
	iac_log_write(stderr, lua_tostring(L, -1));
	return 0;
}

static void push_env(lua_State *L);

static int sandbox_load(lua_State *L)
{
	/* load(chunk [, name [, mode [, env]]]) restricted to text chunks */
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	const char *name = luaL_optstring(L, 2, "=(load)");
	int has_env = !lua_isnone(L, 4);
	if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	if (has_env) {
		lua_pushvalue(L, 4);
		lua_setupvalue(L, -2, 1);
	} else {
		push_env(L);   /* never the shared base itself */
		lua_setupvalue(L, -2, 1);
	}
	return 1;
}

static int msg_handler(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);
	if (!msg) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
			return 1;
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	/* Config errors already say FILE:LINE; a traceback would bury that. */
	lua_pushstring(L, msg);
	return 1;
}

/* A global nobody assigned is a typo (resorce "local.file" ...) or a
 * resource used before the line that declares it: say which, with the
 * closest name, instead of Lua's "attempt to call a nil value". */
static int env_index(lua_State *L)
{
	lua_pushvalue(L, 2);
	lua_rawget(L, lua_upvalueindex(1));
	if (!lua_isnil(L, -1) || lua_type(L, 2) != LUA_TSTRING)
		return 1;
	const char *want = lua_tostring(L, 2), *names[256];
	size_t n = 0;
	for (int t = 1; t >= 0; t--) {
		/* the file's own globals, then the shared ones */
		int idx = t ? 1 : lua_upvalueindex(1);
		lua_pushnil(L);
		while (lua_next(L, idx) && n < 256) {
			if (lua_type(L, -2) == LUA_TSTRING)
				names[n++] = lua_tostring(L, -2);
			lua_pop(L, 1);
		}
	}
	const char *pick = iac_suggest(want, names, n);
	if (pick)
		return iac_load_error(L, "unknown name '%s'; did you mean '%s'?", want, pick);
	return iac_load_error(L, "unknown name '%s': nothing by that name is declared before this line (a "
			      "resource declared further down is reached with resources[\"TYPE.NAME\"])", want);
}

/* Push a fresh environment for one file. Its globals are its own; reads
 * fall through to the shared base, which no file can reach to change (the
 * metatable is hidden, _G is the file's own table), and the standard
 * library tables are the file's own copies: a required helper cannot wrap
 * `resource` or patch string.upper for every other file. */
static void push_env(lua_State *L)
{
	static const char *const libs[] = { "string", "table", "math", "utf8", "coroutine", NULL };
	lua_newtable(L);
	lua_getfield(L, LUA_REGISTRYINDEX, BASE_KEY);
	for (int i = 0; libs[i]; i++) {
		lua_newtable(L);
		lua_getfield(L, -2, libs[i]);
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			lua_pushvalue(L, -2);
			lua_insert(L, -2);
			lua_rawset(L, -5);
		}
		lua_pop(L, 1);
		lua_setfield(L, -3, libs[i]);
	}
	lua_newtable(L);
	lua_insert(L, -2);
	lua_pushcclosure(L, env_index, 1);
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	lua_setfield(L, -2, "_G");
}

/* Load file `path` as chunk `name`, set its _ENV to the table at the top
 * (popped), call it with pcall; leaves its first result on the stack.
 * Returns 0 or -1 with a message. */
static int run_file(lua_State *L, const char *path, const char *name)
{
	char *text = NULL, *chunk = NULL;
	size_t len;
	int rc;

	if (iac_file_read(&text, &len, path) < 0) {
		lua_pop(L, 1);
		return IAC_ERR;
	}
	chunk = iac_xasprintf("@%s", name);
	lua_pushcfunction(L, msg_handler);
	int h = lua_gettop(L);
	/* skip a #! line like lua.c does */
	const char *src = text;
	if (len > 1 && text[0] == '#' && text[1] == '!') {
		const char *nl = memchr(text, '\n', len);
		src = nl ? nl : text + len;
	}
	rc = luaL_loadbufferx(L, src, len - (size_t)(src - text), chunk, "t");
	free(chunk);
	free(text);
	if (rc != LUA_OK) {
		iac_err_set("%s", lua_tostring(L, -1));
		lua_pop(L, 3);
		return IAC_ERR;
	}
	lua_pushvalue(L, h - 1);
	lua_setupvalue(L, -2, 1);
	rc = lua_pcall(L, 0, 1, h);
	if (rc == LUA_ERRMEM) {
		loader *ld = iac_load_get(L);
		iac_err_set("%s: topology code needs more than %zu MiB of memory: a table that keeps "
			    "growing? (raise the limit with IAC_LUA_MAX_MEMORY, in MiB)", name, ld->max_mem >> 20);
		lua_pop(L, 3);
		return IAC_ERR;
	}
	if (rc != LUA_OK) {
		iac_err_set("%s", lua_tostring(L, -1));
		lua_pop(L, 3);
		return IAC_ERR;
	}
	lua_remove(L, h);       /* handler */
	lua_remove(L, h - 1);   /* env */
	return 0;
}

static int file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int dir_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Relative name of an absolute path under the config dir, or the shipped
 * modules dir ("<iac>/x.lua"), for chunk names and messages. */
static char *display_name(loader *ld, const char *abs)
{
	size_t cl = strlen(ld->cfg->dir), ml = strlen(ld->modules_dir);
	if (!strncmp(abs, ld->cfg->dir, cl) && abs[cl] == '/')
		return iac_xstrdup(abs + cl + 1);
	if (!strncmp(abs, ld->modules_dir, ml) && abs[ml] == '/')
		return iac_xasprintf("<iac>/modules/%s", abs + ml + 1);
	return iac_xstrdup(abs);
}

static int under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return !strncmp(path, dir, n) && path[n] == '/';
}

int iac_load_confine(loader *ld, const char *path, const char *what)
{
	char real[PATH_MAX], mreal[PATH_MAX];
	const char *env = getenv("IAC_ALLOW_OUTSIDE_FILES");
	if (env && !strcmp(env, "1"))
		return 0;
	if (!realpath(path, real))
		return 0;   /* missing: the reader says so */
	const char *mdir = realpath(ld->modules_dir, mreal) ? mreal : ld->modules_dir;
	if (ld->cur->root) {
		/* a module from git: its own tree, never the configuration that
		 * uses it (nor .iac/ with the state, nor other modules' trees) */
		if (under(real, ld->cur->root) || under(real, mdir))
			return 0;
		char *tree = display_name(ld, ld->cur->root);
		iac_err_set("%s: '%s' is outside the module's own tree '%s'; a module from git reads only its "
			    "own files", what, real, tree);
		free(tree);
		return IAC_ERR;
	}
	if (under(real, ld->cfg->dir) || under(real, mdir) || under(real, ld->cur->dir))
		return 0;
	return iac_err_set("%s: '%s' is outside the configuration directory; topology code reads only "
			   "files inside it (an operator can allow more with IAC_ALLOW_OUTSIDE_FILES=1)", what, real);
}

static int l_require(lua_State *L)
{
	loader *ld = iac_load_get(L);
	const char *name = luaL_checkstring(L, 1);
	char *rel, *cand[6] = { 0 }, *found = NULL;
	const char *bases[3] = { ld->cur->dir, ld->cur->root ? ld->cur->root : ld->cfg->dir, ld->modules_dir };

	if (strstr(name, "..") || name[0] == '/' || name[0] == '.')
		return iac_load_error(L, "require '%s': module names are dotted names (like 'lib.util'), "
				  "not paths", name);
	rel = iac_xstrdup(name);
	for (char *p = rel; *p; p++)
		if (*p == '.')
			*p = '/';
	for (int i = 0; i < 3 && !found; i++) {
		cand[2 * i] = iac_xasprintf("%s/%s.lua", bases[i], rel);
		cand[2 * i + 1] = iac_xasprintf("%s/%s/init.lua", bases[i], rel);
		if (file_exists(cand[2 * i]))
			found = cand[2 * i];
		else if (file_exists(cand[2 * i + 1]))
			found = cand[2 * i + 1];
	}
	free(rel);
	if (!found) {
		for (int i = 0; i < 6; i++)
			free(cand[i]);
		return iac_load_error(L, "module '%s' not found in the configuration directory or the "
				  "shipped modules", name);
	}
	/* a symbolic link must not lead out of the sandbox; a module's own
	 * directory counts as inside (it was confined when it was loaded) */
	if (iac_load_confine(ld, found, "require") < 0) {
		for (int i = 0; i < 6; i++)
			free(cand[i]);
		lua_pushfstring(L, "require '%s': %s", name, iac_err_last());
		return iac_load_error(L, "%s", lua_tostring(L, -1));
	}
	lua_getfield(L, LUA_REGISTRYINDEX, LOADED_KEY);
	lua_getfield(L, -1, found);
	if (!lua_isnil(L, -1)) {
		for (int i = 0; i < 6; i++)
			free(cand[i]);
		return 1;
	}
	lua_pop(L, 1);
	char *disp = display_name(ld, found);
	push_env(L);
	int rc = run_file(L, found, disp);
	free(disp);
	if (rc < 0) {
		for (int i = 0; i < 6; i++)
			free(cand[i]);
		lua_pushstring(L, iac_err_last());
		return lua_error(L);
	}
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_pushboolean(L, 1);
	}
	lua_pushvalue(L, -1);
	lua_setfield(L, -3, found);
	for (int i = 0; i < 6; i++)
		free(cand[i]);
	return 1;
}

/* Resolve a module source to an absolute file. Sources starting with ./ or
 * ../ are relative to the calling module; other names are shipped modules. */
static char *module_file(loader *ld, const char *source, char *err, size_t errlen)
{
	char *base, *p;
	char real[PATH_MAX];

	if (!strncmp(source, "./", 2) || !strncmp(source, "../", 3) || !strcmp(source, "."))
		base = iac_path_join(ld->cur->dir, source);
	else if (source[0] == '/')
		base = iac_xstrdup(source);
	else
		base = iac_path_join(ld->modules_dir, source);
	if (dir_exists(base))
		p = iac_xasprintf("%s/main.lua", base);
	else if (file_exists(base))
		p = iac_xstrdup(base);
	else
		p = iac_xasprintf("%s.lua", base);
	free(base);
	if (!realpath(p, real)) {
		snprintf(err, errlen, "module source '%s': no main.lua or .lua file at '%s'", source, p);
		free(p);
		return NULL;
	}
	free(p);
	if (iac_load_confine(ld, real, "module source") < 0) {
		snprintf(err, errlen, "module source '%s': %s", source, iac_err_last() + strlen("module source: "));
		return NULL;
	}
	return iac_xstrdup(real);
}

/* A module from git (see modsrc.h): its main.lua in the cache, at the
 * commit iac.lock pins (`iac init` fetches). *root gets the directory the
 * module is confined to (caller frees). */
static char *git_module_file(loader *ld, const char *addr, const char *source, char **root, char *err,
			     size_t errlen)
{
	iac_modsrc src;
	char msg[900], real[PATH_MAX], rdir[PATH_MAX];
	char *dir = NULL, *main_lua = NULL, *out = NULL;
	*root = NULL;
	if (iac_modsrc_parse(&src, source, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "module '%s': %s", addr, msg);
		return NULL;
	}
	if ((!ld->modcache && iac_modcache_open(&ld->modcache, ld->cfg->dir) < 0) ||
	    iac_modcache_resolve(&dir, ld->modcache, addr, source, &src) < 0) {
		snprintf(err, errlen, "%s", iac_err_last());
		goto done;
	}
	main_lua = iac_path_join(dir, "main.lua");
	if (!file_exists(main_lua) || !realpath(main_lua, real) || !realpath(dir, rdir)) {
		snprintf(err, errlen, "module '%s': source '%s' has no main.lua in %s%s", addr, source,
			 *src.subdir ? "directory " : "the repository's top directory", src.subdir);
		goto done;
	}
	*root = iac_xstrdup(rdir);
	out = iac_xstrdup(real);
done:
	free(dir);
	free(main_lua);
	iac_modsrc_free(&src);
	return out;
}

/* The arguments of a module call (the table at index 1): everything but
 * source, as JSON (references allowed). NULL with err set on a bad value. */
static json_t *module_args(lua_State *L, const char *prefix, char *err, size_t errlen)
{
	json_t *args = json_object();
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "source") != 0) {
			char what[256];
			snprintf(what, sizeof(what), "module '%s' argument '%s'", prefix, lua_tostring(L, -2));
			json_t *v = iac_lua_to_json(L, -1, what, err, errlen);
			if (!v && err[0]) {
				lua_pop(L, 2);
				json_decref(args);
				return NULL;
			}
			if (v)
				json_object_set_new(args, lua_tostring(L, -2), v);
		}
		lua_pop(L, 1);
	}
	return args;
}

/* Every argument must be a declared variable of the module: NULL, or the
 * message (caller frees). */
static char *undeclared_arg(const modctx *m)
{
	const char *k, *vk;
	json_t *v, *vv;
	json_object_foreach(m->args, k, v) {
		if (json_object_get(m->vars, k))
			continue;
		iac_buf b = IAC_BUF_INIT;
		json_object_foreach(m->vars, vk, vv)
			iac_buf_printf(&b, "%s'%s'", b.len ? ", " : "", vk);
		char *bad = iac_xasprintf("module '%s' has no variable '%s' (it declares %s)", m->prefix, k,
					  b.len ? iac_buf_cstr(&b) : "none");
		iac_buf_free(&b);
		return bad;
	}
	return NULL;
}

/* Run the module file at path as module `prefix` with args (taken): its
 * outputs table is left on the stack (also on failure). *bad (caller frees) says what is
 * wrong with the call when the module ran but the arguments do not fit. */
static int run_module(lua_State *L, loader *ld, const char *file, int line, char *prefix, const char *path,
		      const char *root, json_t *args, char **bad)
{
	modctx *m = iac_xcalloc(1, sizeof(*m));
	m->root = root ? iac_xstrdup(root) : ld->cur->root ? iac_xstrdup(ld->cur->root) : NULL;
	m->call_file = file;
	m->call_line = line;
	m->prefix = prefix;
	m->dir = iac_xstrdup(path);
	*strrchr(m->dir, '/') = '\0';
	m->reldir = display_name(ld, m->dir);
	m->args = args;
	m->vars = json_object();
	lua_newtable(L);
	m->outputs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	m->parent = ld->cur;

	char *disp = display_name(ld, path);
	ld->cur = m;
	ld->depth++;
	push_env(L);
	int rc = run_file(L, path, disp);
	ld->depth--;
	ld->cur = m->parent;
	free(disp);
	if (rc == 0) {
		lua_pop(L, 1);
		*bad = undeclared_arg(m);
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, m->outputs_ref);
	luaL_unref(L, LUA_REGISTRYINDEX, m->outputs_ref);
	free(m->prefix);
	free(m->dir);
	free(m->reldir);
	free(m->root);
	json_decref(m->args);
	json_decref(m->vars);
	free(m);
	return rc;
}

static int module_body(lua_State *L)
{
	loader *ld = iac_load_get(L);
	const char *name = lua_tostring(L, lua_upvalueindex(1));
	char file[256];
	int line;
	char err[1024];

	iac_load_where(L, file, sizeof(file), &line);
	luaL_checktype(L, 1, LUA_TTABLE);
	/* every message names the module by its address: module.web */
	lua_pushfstring(L, ld->cur->prefix[0] ? "%s.module.%s" : "%smodule.%s", ld->cur->prefix, name);
	const char *pfx = lua_tostring(L, -1);
	if (ld->depth > 32)
		return iac_load_error(L, "module '%s': modules nested more than 32 deep (does a module call itself?)", pfx);
	lua_getfield(L, 1, "source");
	const char *source = lua_tostring(L, -1);
	if (!source)
		return iac_load_error(L, "module '%s': 'source' is required (a './path' or a shipped module name)", pfx);
	char *root = NULL;
	char *path = iac_modsrc_is_remote(source) ? git_module_file(ld, pfx, source, &root, err, sizeof(err))
						  : module_file(ld, source, err, sizeof(err));
	if (!path)
		return iac_load_error(L, "%s", err);

	char *prefix = iac_xstrdup(pfx);
	json_t *prev = json_object_get(ld->cfg->modules, prefix), *args = NULL;
	if (prev) {
		lua_pushfstring(L, "module '%s' declared twice (first at %s:%d)", prefix, iac_json_str(prev, "file"),
				(int)json_integer_value(json_object_get(prev, "line")));
	} else {
		json_object_set_new(ld->cfg->modules, prefix,
				    json_pack("{s:s,s:s,s:i}", "source", source, "file", file, "line", line));
		if (!(args = module_args(L, prefix, err, sizeof(err))))
			lua_pushstring(L, err);
	}
	if (!args) {
		free(prefix);
		free(path);
		free(root);
		return iac_load_error(L, "%s", lua_tostring(L, -1));
	}
	char *bad = NULL;
	int rc = run_module(L, ld, file, line, prefix, path, root, args, &bad);
	free(path);
	free(root);
	if (rc < 0 || bad) {
		lua_pushstring(L, rc < 0 ? iac_err_last() : bad);
		free(bad);
		return rc < 0 ? lua_error(L) : iac_load_error(L, "%s", lua_tostring(L, -1));
	}
	iac_lua_push_module(L, pfx);   /* takes the outputs table run_module left */
	return 1;
}

static int l_module(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	for (const char *p = name; *p; p++)
		if (!(*p == '_' || *p == '-' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9')))
			return iac_load_error(L, "module name '%s': use letters, digits, '_' and '-'", name);
	lua_pushvalue(L, 1);
	lua_pushcclosure(L, module_body, 1);
	if (lua_istable(L, 2)) {
		/* module("name", {...}) in one call */
		lua_pushvalue(L, 2);
		lua_call(L, 1, 1);
	}
	return 1;
}

void iac_modules_install(lua_State *L)
{
	lua_pushcfunction(L, l_module);
	lua_setfield(L, -2, "module");
	lua_pushcfunction(L, l_require);
	lua_setfield(L, -2, "require");
}

/* The base globals every environment falls back to. */
static void build_base(lua_State *L)
{
	static const luaL_Reg libs[] = {
		{ LUA_GNAME, luaopen_base }, { LUA_STRLIBNAME, luaopen_string },
		{ LUA_TABLIBNAME, luaopen_table }, { LUA_MATHLIBNAME, luaopen_math },
		{ LUA_UTF8LIBNAME, luaopen_utf8 }, { LUA_COLIBNAME, luaopen_coroutine },
		{ NULL, NULL },
	};
	for (const luaL_Reg *lib = libs; lib->func; lib++) {
		luaL_requiref(L, lib->name, lib->func, 1);
		lua_pop(L, 1);
	}
	lua_pushglobaltable(L);
	static const char *removed[] = { "dofile", "loadfile", "collectgarbage", NULL };
	for (int i = 0; removed[i]; i++) {
		lua_pushnil(L);
		lua_setfield(L, -2, removed[i]);
	}
	lua_getfield(L, -1, "string");
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");   /* bytecode out, like bytecode in */
	lua_pop(L, 1);
	/* ("").upper reaches the real string table through the strings'
	 * metatable: hide it, so it cannot be patched that way */
	lua_pushliteral(L, "");
	if (lua_getmetatable(L, -1)) {
		lua_pushboolean(L, 0);
		lua_setfield(L, -2, "__metatable");
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	lua_pushcfunction(L, sandbox_print);
	lua_setfield(L, -2, "print");
	lua_pushcfunction(L, sandbox_load);
	lua_setfield(L, -2, "load");
	block_lib(L, "os");
	block_lib(L, "io");
	block_lib(L, "debug");
	block_lib(L, "package");
	iac_modules_install(L);
	iac_vars_install(L);
	iac_dsl_install(L);
	lua_setfield(L, LUA_REGISTRYINDEX, BASE_KEY);
}

/* Each provider's prelude (iac_provider.prelude, a file under the shipped
 * modules) runs once with the shared globals, require and the loader's
 * helpers for it ({ section = f }: section("flags", "flag") makes a
 * declaration keyword whose bodies land in cfg->sections.flags). */
static int run_preludes(loader *ld)
{
	lua_State *L = ld->L;
	for (const iac_provider *const *p = iac_provider_all(); *p; p++) {
		if (!(*p)->prelude)
			continue;
		char *path = iac_path_join(ld->modules_dir, (*p)->prelude), *text = NULL;
		char *chunk = iac_xasprintf("@<iac>/modules/%s", (*p)->prelude);
		size_t len;
		int rc = iac_file_read(&text, &len, path);
		if (rc == 0) {
			lua_pushcfunction(L, msg_handler);
			/* a chunk's _ENV is the globals table: the shared base */
			if (luaL_loadbufferx(L, text, len, chunk, "t") == LUA_OK) {
				lua_getfield(L, LUA_REGISTRYINDEX, BASE_KEY);
				lua_getfield(L, -1, "require");
				iac_dsl_push_helpers(L);
				rc = lua_pcall(L, 3, 0, -5) == LUA_OK ? 0 : IAC_ERR;
			} else {
				rc = IAC_ERR;
			}
			if (rc < 0)
				iac_err_set("%s", lua_tostring(L, -1));
			lua_settop(L, lua_gettop(L) - (rc < 0 ? 2 : 1));
		}
		free(text);
		free(path);
		free(chunk);
		if (rc < 0) {
			iac_err_prefix("provider '%s': its prelude", (*p)->name);
			return IAC_ERR;
		}
	}
	return 0;
}


/* Lua's allocator, counting: a request that would pass the limit fails,
 * and Lua turns that into a "not enough memory" error. */
static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	loader *ld = ud;
	if (!ptr)
		osize = 0;   /* then it is a type tag, not a size */
	if (nsize == 0) {
		free(ptr);
		ld->mem -= osize;
		return NULL;
	}
	if (nsize > osize && ld->mem + (nsize - osize) > ld->max_mem)
		return NULL;
	void *p = realloc(ptr, nsize);
	if (p)
		ld->mem = ld->mem - osize + nsize;
	return p;
}

#define HOOK_EVERY 100000

static void count_hook(lua_State *L, lua_Debug *ar)
{
	loader *ld = iac_load_get(L);
	ld->steps += HOOK_EVERY;
	if (ld->steps > ld->max_steps) {
		/* luaL_error cannot place a hook's error: say where the loop is */
		char msg[PATH_MAX + 160];
		lua_getinfo(L, "Sl", ar);
		snprintf(msg, sizeof(msg), "%s:%d: topology code ran more than %.0f Lua instructions: an "
			 "endless loop? (raise the limit with IAC_LUA_MAX_INSTRUCTIONS)", ar->short_src,
			 ar->currentline, ld->max_steps);
		lua_pushstring(L, msg);
		lua_error(L);
	}
}

/* The limits' caps: far above any topology, and sizes that fit a size_t
 * and a double exactly (1e30 MiB would overflow into a tiny limit). */
#define MAX_INSTRUCTIONS_CAP 1e15
#define MAX_MEMORY_MIB_CAP (1024.0 * 1024)   /* 1 TiB */

/* A positive number from the environment, or dflt when it is unset or
 * empty. Anything else (abc, nan, inf, 0, more than max) is an error
 * naming the variable, never a silent default. */
static int env_number(double *out, const char *name, double dflt, double max)
{
	const char *v = getenv(name);
	char *end;
	*out = dflt;
	if (!v || !*v)
		return 0;
	double d = strtod(v, &end);
	if (end == v || *end || !isfinite(d) || d <= 0)
		return iac_err_set("environment variable %s='%s' is not a positive number", name, v);
	if (d > max)
		return iac_err_set("environment variable %s='%s' is too large (at most %.0f)", name, v, max);
	*out = d;
	return 0;
}

/* A Lua state for topology code, with the limits of opts; NULL with a
 * message on failure. */
static lua_State *new_state(loader *ld, const iac_load_opts *opts)
{
	double steps, mib;
	if (env_number(&steps, "IAC_LUA_MAX_INSTRUCTIONS", IAC_LUA_DEFAULT_INSTRUCTIONS, MAX_INSTRUCTIONS_CAP) < 0 ||
	    env_number(&mib, "IAC_LUA_MAX_MEMORY", (double)(IAC_LUA_DEFAULT_MEMORY >> 20), MAX_MEMORY_MIB_CAP) < 0)
		return NULL;
	ld->max_steps = opts->max_instructions > 0 ? opts->max_instructions : steps;
	ld->max_mem = opts->max_memory > 0 ? opts->max_memory : (size_t)(mib * (1 << 20));
	lua_State *L = lua_newstate(limited_alloc, ld);
	if (!L) {
		iac_err_set("cannot create a Lua state (out of memory)");
		return NULL;
	}
	lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
	return L;
}

iac_rconf *iac_config_get(const iac_config *cfg, const char *addr)
{
	return iac_map_get(&cfg->by_addr, addr);
}

iac_rconf *iac_config_add(iac_config *cfg, const char *type, const char *name, const char *file, int line)
{
	char *addr = iac_xasprintf("%s.%s", type, name);
	iac_rconf *r = iac_config_get(cfg, addr);
	if (r) {
		free(addr);
		return r;
	}
	r = iac_xcalloc(1, sizeof(*r));
	r->addr = addr;
	r->type = iac_xstrdup(type);
	r->name = iac_xstrdup(name);
	r->module = iac_xstrdup("");
	r->file = iac_xstrdup(file ? file : "main.lua");
	r->line = line;
	r->attrs = json_object();
	r->deps = json_array();
	r->rtype = iac_provider_find_type(type, &r->provider);
	if (cfg->nres == cfg->capres) {
		cfg->capres = cfg->capres ? cfg->capres * 2 : 64;
		cfg->res = iac_xrealloc(cfg->res, cfg->capres * sizeof(*cfg->res));
	}
	cfg->res[cfg->nres++] = r;
	iac_map_put(&cfg->by_addr, addr, r);
	return r;
}

void iac_config_each_in_module(const iac_config *cfg, const char *prefix,
			       void (*fn)(iac_rconf *r, void *ud), void *ud)
{
	size_t pl = strlen(prefix);
	for (size_t i = 0; i < cfg->nres; i++)
		if (!strncmp(cfg->res[i]->addr, prefix, pl) && cfg->res[i]->addr[pl] == '.')
			fn(cfg->res[i], ud);
}

typedef struct {
	json_t *deps;
	const char *self;
} depctx;

static void add_dep(const char *addr, void *ud)
{
	depctx *d = ud;
	json_t *e;
	size_t i;
	if (!strcmp(addr, d->self))
		return;
	json_array_foreach(d->deps, i, e)
		if (!strcmp(json_string_value(e), addr))
			return;
	json_array_append_new(d->deps, json_string(addr));
}

static void add_dep_r(iac_rconf *r, void *ud)
{
	add_dep(r->addr, ud);
}

/* Every reference names an attribute its target's type has. */
/* A reference to an address nothing declares: the closest declared one. */
static int undeclared(const iac_config *cfg, const char *file, int line, const char *who, const char *addr)
{
	const char **names = iac_xcalloc(cfg->nres + 1, sizeof(char *));
	for (size_t i = 0; i < cfg->nres; i++)
		names[i] = cfg->res[i]->addr;
	const char *pick = iac_suggest(addr, names, cfg->nres);
	iac_buf b = IAC_BUF_INIT;
	if (pick)
		iac_buf_printf(&b, "; did you mean '%s'?", pick);
	else if (cfg->nres <= 8)
		for (size_t i = 0; i < cfg->nres; i++)
			iac_buf_printf(&b, "%s%s", i ? ", " : " (declared: ", names[i]);
	if (!pick && cfg->nres && cfg->nres <= 8)
		iac_buf_puts(&b, ")");
	iac_err_set("%s:%d: %s refers to unknown resource '%s'%s", file, line, who, addr, iac_buf_cstr(&b));
	iac_buf_free(&b);
	free(names);
	return IAC_ERR;
}

static int check_refs(iac_config *cfg, const char *file, int line, const char *who, const json_t *v)
{
	const char *m = iac_value_marker(v), *k;
	json_t *e;
	size_t i;
	if (m && !strcmp(m, "ref")) {
		const char *addr = iac_json_str(v, "addr");
		const char *attr = iac_json_str(v, "attr");
		iac_rconf *t = iac_config_get(cfg, addr);
		if (!t)
			return undeclared(cfg, file, line, who, addr);
		char top[256];
		snprintf(top, sizeof(top), "%s", attr ? attr : "");
		char *dot = strchr(top, '.');
		if (dot)
			*dot = '\0';
		if (t && strcmp(top, "*") != 0 && !iac_rtype_attr(t->rtype, top)) {
			iac_buf names = IAC_BUF_INIT;
			for (const iac_attr *a = t->rtype->attrs; a && a->name; a++)
				iac_buf_printf(&names, "%s%s", names.len ? ", " : "", a->name);
			iac_err_set("%s:%d: %s refers to '%s.%s', but type '%s' has no attribute '%s' (it has: %s)",
				    file, line, who, addr, attr, t->type, top, iac_buf_cstr(&names));
			iac_buf_free(&names);
			return IAC_ERR;
		}
		return 0;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			if (check_refs(cfg, file, line, who, e) < 0)
				return IAC_ERR;
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, e)
			if (check_refs(cfg, file, line, who, e) < 0)
				return IAC_ERR;
	}
	return 0;
}

/* Turn refs and depends_on into the final dependency list, checking every
 * target exists. */
static int finalize(iac_config *cfg)
{
	for (size_t i = 0; i < cfg->nres; i++) {
		iac_rconf *r = cfg->res[i];
		json_t *explicit = r->deps, *e;
		size_t j;
		depctx d = { json_array(), r->addr };
		iac_value_refs(r->attrs, add_dep, &d);
		if (r->triggers)
			iac_value_refs(r->triggers, add_dep, &d);
		json_array_foreach(explicit, j, e) {
			const char *a = json_string_value(e);
			if (json_object_get(cfg->modules, a))
				iac_config_each_in_module(cfg, a, add_dep_r, &d);
			else
				add_dep(a, &d);
		}
		json_decref(explicit);
		r->deps = d.deps;
		json_array_foreach(r->deps, j, e) {
			if (!iac_config_get(cfg, json_string_value(e))) {
				char who[600];
				snprintf(who, sizeof(who), "resource '%s'", r->addr);
				return undeclared(cfg, r->file, r->line, who, json_string_value(e));
			}
		}
		char who[600];
		snprintf(who, sizeof(who), "resource '%s'", r->addr);
		if (check_refs(cfg, r->file, r->line, who, r->attrs) < 0 ||
		    (r->triggers && check_refs(cfg, r->file, r->line, who, r->triggers) < 0))
			return IAC_ERR;
	}
	const char *k;
	json_t *o;
	json_object_foreach(cfg->outputs, k, o) {
		char who[300];
		snprintf(who, sizeof(who), "output '%s'", k);
		if (check_refs(cfg, iac_json_str(o, "file") ?: "main.lua",
			       (int)json_integer_value(json_object_get(o, "line")), who, json_object_get(o, "value")) < 0)
			return IAC_ERR;
	}
	return 0;
}

static void compute_hash(iac_config *cfg);

/* A copy of v with every sensitive marker replaced by "(sensitive)". */
static json_t *redact_sensitive(const json_t *v)
{
	const char *m = iac_value_marker(v), *k;
	json_t *e, *out;
	size_t i;
	if (m && !strcmp(m, "sensitive"))
		return json_string("(sensitive)");
	if (json_is_array(v)) {
		out = json_array();
		json_array_foreach(v, i, e)
			json_array_append_new(out, redact_sensitive(e));
		return out;
	}
	if (json_is_object(v)) {
		out = json_object();
		json_object_foreach((json_t *)v, k, e)
			json_object_set_new(out, k, redact_sensitive(e));
		return out;
	}
	return json_incref((json_t *)v);
}

const char *iac_config_hash(iac_config *cfg)
{
	if (!cfg->hash)
		compute_hash(cfg);
	return cfg->hash;
}

static void compute_hash(iac_config *cfg)
{
	json_t *doc = json_object(), *res = json_array();
	char hex[65];
	for (size_t i = 0; i < cfg->nres; i++) {
		iac_rconf *r = cfg->res[i];
		json_array_append_new(res, json_pack("{s:s,s:O,s:O?,s:O,s:b,s:b,s:O?}", "addr", r->addr,
						     "attrs", r->attrs, "triggers", r->triggers, "deps", r->deps,
						     "cbd", r->create_before_destroy, "pd", r->prevent_destroy,
						     "ic", r->ignore_changes));
	}
	json_object_set_new(doc, "resources", res);
	json_object_set(doc, "outputs", cfg->outputs);
	json_object_set(doc, "providers", cfg->providers);
	json_object_set(doc, "hosts", cfg->hosts);
	json_object_set(doc, "sections", cfg->sections);
	/* Secrets stay out of the hash: a plan file carries it, and a hash of a
	 * short secret can be brute-forced. They are supplied again at apply. */
	json_t *redacted = redact_sensitive(doc);
	json_decref(doc);
	doc = redacted;
	char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	iac_sha256_hex(hex, text, strlen(text));
	free(text);
	json_decref(doc);
	cfg->hash = iac_xstrdup(hex);
}

/* Providers turn the declarations they own into resources. */
static int providers_finalize(iac_config *cfg)
{
	for (const iac_provider *const *p = iac_provider_all(); *p; p++)
		if ((*p)->finalize && (*p)->finalize(cfg) < 0)
			return IAC_ERR;
	return 0;
}

static iac_config *config_new(const char *dir)
{
	iac_config *cfg = iac_xcalloc(1, sizeof(*cfg));
	cfg->dir = iac_xstrdup(dir);
	cfg->variables = json_object();
	cfg->outputs = json_object();
	cfg->providers = json_object();
	cfg->hosts = json_object();
	cfg->modules = json_object();
	cfg->sections = json_object();
	return cfg;
}

/* The Lua state with the sandbox, the language and the providers'
 * preludes, ready to run main.lua as the root module. NULL on failure. */
static lua_State *loader_start(loader *ld, const iac_load_opts *opts)
{
	lua_State *L = new_state(ld, opts);
	if (!L)
		return NULL;
	ld->L = L;
	lua_pushlightuserdata(L, ld);
	lua_setfield(L, LUA_REGISTRYINDEX, LOADER_KEY);
	lua_newtable(L);
	lua_setfield(L, LUA_REGISTRYINDEX, LOADED_KEY);
	iac_lua_value_init(L);
	build_base(L);
	if (run_preludes(ld) < 0)
		return L;   /* the caller closes it */
	lua_newtable(L);
	ld->cur->outputs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	ld->started = 1;
	return L;
}

int iac_config_load(iac_config **out, const char *dir, const iac_load_opts *opts)
{
	iac_load_opts none = { 0 };
	char real[PATH_MAX];
	loader ld = { 0 };
	modctx root = { 0 };
	int rc = IAC_ERR;

	*out = NULL;
	if (!realpath(dir, real))
		return iac_err_sys("cannot open configuration directory '%s'", dir);
	char *main_path = iac_path_join(real, "main.lua");
	if (!file_exists(main_path)) {
		iac_err_set("no main.lua in '%s': a configuration is a directory with main.lua "
			    "(use -chdir=DIR to point at it)", real);
		free(main_path);
		return IAC_ERR;
	}
	iac_config *cfg = config_new(real);
	const char *md = getenv("IAC_MODULES_PATH");
	ld.cfg = cfg;
	ld.opts = opts ? opts : &none;
	ld.given = json_object();
	ld.given_used = json_object();
	ld.host_order = json_array();
	ld.var_where = json_object();
	ld.pending = json_object();
	ld.modules_dir = iac_xstrdup(md && *md ? md : IAC_MODULES_DIR);
	root.prefix = "";
	root.dir = cfg->dir;
	root.reldir = "";
	root.vars = json_object();
	ld.cur = &root;

	lua_State *L = loader_start(&ld, ld.opts);
	if (!ld.started || iac_vars_collect(&ld) < 0)
		goto done;
	push_env(L);
	if (run_file(L, main_path, "main.lua") < 0)
		goto done;
	lua_pop(L, 1);
	if (iac_dsl_check_bodies(&ld) < 0 || iac_vars_check_unused(&ld) < 0 || providers_finalize(cfg) < 0 ||
	    finalize(cfg) < 0)
		goto done;
	if (iac_modsrc_mode() != IAC_MODSRC_LOCKED) {
		/* init: also with no git source, to bring iac.lock up to date */
		if (!ld.modcache && iac_modcache_open(&ld.modcache, cfg->dir) < 0)
			goto done;
		if (iac_modcache_finish(ld.modcache) < 0)
			goto done;
	}
	*out = cfg;
	cfg = NULL;
	rc = 0;
done:
	if (L)
		lua_close(L);
	json_decref(root.vars);
	json_decref(ld.given);
	json_decref(ld.given_used);
	json_decref(ld.host_order);
	json_decref(ld.var_where);
	json_decref(ld.pending);
	free(ld.modules_dir);
	iac_modcache_free(ld.modcache);
	free(main_path);
	iac_config_free(cfg);
	return rc;
}

void iac_config_free(iac_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->nres; i++) {
		iac_rconf *r = cfg->res[i];
		free(r->addr);
		free(r->type);
		free(r->name);
		free(r->module);
		free(r->file);
		json_decref(r->attrs);
		json_decref(r->triggers);
		json_decref(r->deps);
		json_decref(r->ignore_changes);
		free(r);
	}
	free(cfg->res);
	iac_map_free(&cfg->by_addr);
	json_decref(cfg->variables);
	json_decref(cfg->outputs);
	json_decref(cfg->providers);
	json_decref(cfg->hosts);
	json_decref(cfg->modules);
	json_decref(cfg->sections);
	free(cfg->hash);
	free(cfg->dir);
	free(cfg);
}
