/* harness: helpers the libFuzzer harnesses share (see README.md).
 *
 * Parsers that only read files get their input through a per-process
 * temporary directory, made once (under /dev/shm when there is one, so that
 * the fsyncs of the code under test cost nothing) and removed at exit.
 * Lua harnesses get a lua_State whose allocator caps memory and puts a
 * canary after every block: liblua is not instrumented by ASan, so a write
 * past the end of a Lua stack by code that forgot lua_checkstack() would
 * otherwise go unnoticed; a damaged canary aborts with a report.
 */
#ifndef IAC_FUZZ_HARNESS_H
#define IAC_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

/* The process's temporary directory ("/dev/shm/iac-fuzz-NAME-XXXXXX"),
 * made on first call; exits the process when it cannot be made. */
const char *fuzz_tmpdir(const char *name);

/* path = dir/name (caller frees). */
char *fuzz_path(const char *dir, const char *name);

/* Replace the file at path with size bytes (mode 0600); mkdir -p of the
 * parent is the caller's business. Exits the process on an I/O error: the
 * harness, not the parser, is broken then. */
void fuzz_write(const char *path, const void *data, size_t size);

/* A NUL-terminated copy of the input (caller frees). */
char *fuzz_cstr(const uint8_t *data, size_t size);

/* A new Lua state with a guarded allocator capped at max_bytes and a count
 * hook that raises an error once max_instructions have run. Free with
 * fuzz_lua_close (which checks every canary). */
lua_State *fuzz_lua_new(size_t max_bytes, long max_instructions);
void fuzz_lua_close(lua_State *L);

/* Open base (without dofile, loadfile, load, require, print and
 * collectgarbage), string (without dump), table and math. */
void fuzz_lua_safe_libs(lua_State *L);

#endif
