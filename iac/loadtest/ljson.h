/* lt_ljson: Lua values to Jansson values and back, for request bodies
 * (u:post(url, { json = ... })), responses (r:json()), setup()'s data and
 * shared data files. Plain data only: tables, strings, numbers, booleans.
 */
#ifndef IAC_LOADTEST_LJSON_H
#define IAC_LOADTEST_LJSON_H

#include <jansson.h>
#include <lua.h>

/* The value at idx as JSON (new reference). A Lua error for what JSON
 * cannot hold (a function, a table nested past 64 levels). A table whose
 * keys are 1..n is an array, any other an object. */
json_t *lt_ljson_from(lua_State *L, int idx);
/* Push j as a Lua value (a fresh copy; j is only read, so a shared
 * read-only document may be pushed from several threads at once). */
void lt_ljson_push(lua_State *L, const json_t *j);

#endif
