/* load_int: what the loader's files (load.c, dsl.c, vars.c) share. Not
 * for use outside iac/load. */
#ifndef IAC_LOAD_INT_H
#define IAC_LOAD_INT_H

#include <jansson.h>
#include <lua.h>

#include "iac/load/config.h"

typedef struct modctx {
	char *prefix;        /* "" for the root, else "module.web" */
	char *dir;           /* absolute directory of the module's files */
	char *reldir;        /* the same relative to the config dir ("" root) */
	json_t *args;        /* arguments given by the caller; NULL for the root */
	json_t *vars;        /* declared variables: name -> value (markers allowed) */
	int outputs_ref;     /* registry ref of the module's outputs table */
	char *root;          /* a module from git (and what it calls with ./paths): the
			      * directory its code is confined to; NULL elsewhere */
	const char *call_file; /* where the module was called (NULL for the root) */
	int call_line;
	struct modctx *parent;
} modctx;

typedef struct loader {
	iac_config *cfg;
	lua_State *L;
	modctx *cur;
	const iac_load_opts *opts;
	json_t *given;           /* root variable values from -var/-var-file/env */
	json_t *given_used;      /* names of given values a declaration took */
	json_t *host_order;      /* host names in declaration order */
	json_t *var_where;       /* root variable name -> "file:line" */
	char *modules_dir;       /* shipped modules */
	int depth;
	double steps, max_steps; /* Lua instructions run (counted by a hook) and the limit */
	size_t mem, max_mem;     /* bytes the Lua state holds, and the limit */
	int started;             /* the state is ready for main.lua */
	json_t *pending;         /* address -> where: declared without a body (yet) */
	struct iac_modcache *modcache; /* git module sources: opened at the first one */
} loader;

/* 0 when topology code may read `path`: it resolves (links followed) inside
 * the configuration directory, the shipped modules or the current module's
 * directory, or the operator set IAC_ALLOW_OUTSIDE_FILES=1. Code of a
 * module from git reads only inside its own tree (modctx.root) and the
 * shipped modules. Else -1 with
 * "WHAT: '/real/path' is outside the configuration directory; ...". A path
 * that does not exist passes (its reader reports it). */
int iac_load_confine(loader *ld, const char *path, const char *what);

/* The loader running in L. */
loader *iac_load_get(lua_State *L);

/* Raise a Lua error prefixed with the user's FILE:LINE (not a shipped
 * module's): use instead of luaL_error in builtins. */
int iac_load_error(lua_State *L, const char *fmt, ...);

/* Where the calling Lua code is: file and line. */
void iac_load_where(lua_State *L, char *file, size_t filelen, int *line);

/* dsl.c: install resource, data, output, provider, host, hosts, flag,
 * file, sha256, jsonencode, jsondecode into the table at the top. */
void iac_dsl_install(lua_State *L);
/* vars.c */
int iac_vars_collect(loader *ld);                 /* fill ld->given */
void iac_vars_install(lua_State *L);              /* variable, var */
int iac_vars_check_unused(loader *ld);
/* Raise "WHAT: unknown setting 'k'; did you mean ..." for a key of the
 * table at idx that is not in allowed (NULL-terminated). */
int iac_dsl_check_keys(lua_State *L, int idx, const char *what, const char *const *allowed);
/* A resource or data header given no { ... } body: the error for the
 * first one. 0 when every declaration got its body. */
int iac_dsl_check_bodies(const loader *ld);

/* The helpers table preludes get as their third argument: { section,
 * check_keys, suggest }. */
void iac_dsl_push_helpers(lua_State *L);
/* load.c: module() and require() */
void iac_modules_install(lua_State *L);
/* Type-check a value against a schema type; NULL when fine, else a short
 * description of what was expected. */
const char *iac_dsl_type_mismatch(int type, const json_t *v);

#endif
