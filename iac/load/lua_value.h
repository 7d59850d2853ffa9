/* lua_value: moving values between Lua and JSON, and the proxy objects the
 * topology language hands to user code.
 *
 * Proxies (tables/userdata with an "iac.*" metatable):
 *   reference  `conf.sha256`: {addr, attr}; `..` builds a template, field
 *              access a nested reference (`r.tags.name`), arithmetic is an
 *              error because the value is not known while Lua runs.
 *   template   `"v=" .. conf.sha256`: parts to join once values are known.
 *   sensitive  `var.token` of a sensitive variable: `..` keeps it sensitive.
 *   resource   what `resource "t" "n" {...}` returns: indexing gives refs.
 *   module     what `module "m" {...}` returns: indexing gives outputs.
 *   host       what `host "h" {...}` returns: a table of its fields.
 * In JSON these become the markers described in iac/core/value.h.
 */
#ifndef IAC_LOAD_LUA_VALUE_H
#define IAC_LOAD_LUA_VALUE_H

#include <jansson.h>
#include <lua.h>

#define IAC_MT_REF "iac.ref"
#define IAC_MT_TPL "iac.tpl"
#define IAC_MT_SENSITIVE "iac.sensitive"
#define IAC_MT_RESOURCE "iac.resource"
#define IAC_MT_MODULE "iac.module"
#define IAC_MT_HOST "iac.host"

/* Register the metatables in L. */
void iac_lua_value_init(lua_State *L);

/* Convert the value at idx to JSON (new reference; NULL for nil). On error
 * returns NULL and writes "attribute 'x.y': what is wrong" into err. `what`
 * names the value for messages ("attribute 'content'"). */
json_t *iac_lua_to_json(lua_State *L, int idx, const char *what, char *err, size_t errlen);
/* The same, but resource handles are allowed and become references to the
 * whole resource ({"$iac":"ref","addr":A,"attr":"*"}). */
json_t *iac_lua_to_json_watch(lua_State *L, int idx, const char *what, char *err, size_t errlen);

/* Push JSON as a Lua value, turning markers back into proxies. */
void iac_lua_push_json(lua_State *L, const json_t *v);
/* How deeply arrays and objects nest in v (0 for a scalar). */
int iac_json_depth(const json_t *v);

/* Push a reference proxy / a sensitive proxy (value at top is consumed). */
void iac_lua_push_ref(lua_State *L, const char *addr, const char *attr);
void iac_lua_wrap_sensitive(lua_State *L);

/* If the value at idx is a resource or module handle, return its address
 * ("local.file.x" / "module.web"), else NULL. */
const char *iac_lua_handle_addr(lua_State *L, int idx);

/* Push a new resource handle for addr, or a module handle for prefix whose
 * outputs table is at the top of the stack (consumed). */
void iac_lua_push_resource(lua_State *L, const char *addr);
void iac_lua_push_module(lua_State *L, const char *prefix);

#endif
