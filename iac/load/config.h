/* config: what a configuration declares, once its Lua has run.
 *
 * The loader (load.c) runs main.lua and its modules in a sandbox and fills
 * an iac_config; after that no Lua is left: everything below is plain C and
 * JSON, safe to hand to worker threads.
 *
 * Ownership: the config owns everything in it; iac_config_free() frees all.
 */
#ifndef IAC_LOAD_CONFIG_H
#define IAC_LOAD_CONFIG_H

#include <jansson.h>
#include <stddef.h>

#include "iac/core/map.h"
#include "iac/provider/provider.h"

typedef struct iac_rconf {
	char *addr;          /* "module.web.local.file.x" / "data.ssh.facts.web1" */
	char *type;          /* "local.file" */
	char *name;          /* "x" */
	char *module;        /* "" for the root, else "module.web" */
	char *file;          /* declared at file:line (relative to the config dir) */
	int line;
	json_t *attrs;       /* attributes; may hold ref/tpl/sensitive markers */
	json_t *triggers;    /* NULL or an object; a change forces replacement */
	json_t *deps;        /* array of addresses this one waits for (resolved) */
	int create_before_destroy;
	int prevent_destroy;
	json_t *ignore_changes;  /* NULL, or array of attribute names ("*" = all) */
	int is_data;
	const iac_rtype *rtype;
	const iac_provider *provider;
} iac_rconf;

typedef struct iac_config {
	char *dir;               /* configuration directory (absolute) */
	iac_rconf **res;         /* in declaration order */
	size_t nres;
	size_t capres;
	iac_map by_addr;         /* addr -> iac_rconf* */
	json_t *variables;       /* root: name -> {"value","sensitive","description"} */
	json_t *outputs;         /* root: name -> {"value","sensitive","description"} */
	json_t *providers;       /* name -> provider config object */
	json_t *hosts;           /* name -> {"name","address","port","user","labels"} */
	json_t *modules;         /* "module.web" -> {"source","file","line"} */
	json_t *sections;        /* extension declarations: {"flags": {...}, "deployments": {...}} */
	char *hash;              /* see iac_config_hash() */
} iac_config;

typedef struct {
	const char *const *vars;       /* "name=value", NULL terminated (may be NULL) */
	const char *const *var_files;  /* NULL terminated (may be NULL) */
	int allow_missing_vars;        /* validate: missing required vars are ok */
	/* Limits on topology code, so an endless loop or a growing table is an
	 * error, not a hang or the OOM killer. 0: from the environment
	 * (IAC_LUA_MAX_INSTRUCTIONS, IAC_LUA_MAX_MEMORY in MiB), else the
	 * defaults below, far above what a 10,000-resource topology needs. */
	double max_instructions;
	size_t max_memory;             /* bytes */
} iac_load_opts;

#define IAC_LUA_DEFAULT_INSTRUCTIONS 2e9
#define IAC_LUA_DEFAULT_MEMORY ((size_t)512 << 20)

/* Run dir/main.lua. Errors: -1 with "FILE:LINE: what is wrong". */
int iac_config_load(iac_config **out, const char *dir, const iac_load_opts *opts);
void iac_config_free(iac_config *cfg);

iac_rconf *iac_config_get(const iac_config *cfg, const char *addr);

/* The root-module resource TYPE.NAME, added (empty attributes, declared at
 * file:line) when it is not there yet: for providers' finalize(), which
 * expand their own declarations into resources. Owned by cfg. */
iac_rconf *iac_config_add(iac_config *cfg, const char *type, const char *name, const char *file, int line);

/* sha256 of the evaluated configuration without its secrets (computed on
 * first use: only saved plans need it). */
const char *iac_config_hash(iac_config *cfg);

/* Addresses of resources inside a module prefix ("module.web"), for
 * depends_on = { module }; calls fn for each. */
void iac_config_each_in_module(const iac_config *cfg, const char *prefix,
			       void (*fn)(iac_rconf *r, void *ud), void *ud);

#endif
