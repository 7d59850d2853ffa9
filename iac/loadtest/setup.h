/* lt_setup: k6's setup() and teardown(data), run once by the main thread.
 *
 *   function setup(s)        -- before any VU; s:get(url), s:post(url, json)
 *     local r = s:post("/login", { user = "a" })   -- blocking, via iac/http
 *     return { token = r.json.token }              -- plain data
 *   end
 *   scenario "x" { flow = function(u, data) ... data.token ... end }
 *   function teardown(data) ... end                -- after the last VU
 *
 * setup()'s return value must be plain data (tables, strings, numbers,
 * booleans): it is kept as JSON text in cfg->setup_data and each worker's
 * Lua state gets its own copy, as k6 copies it into each VU. A request
 * that fails raises a Lua error; a setup() that fails stops the run before
 * any load.
 */
#ifndef IAC_LOADTEST_SETUP_H
#define IAC_LOADTEST_SETUP_H

#include "iac/loadtest/scenario.h"

/* Run setup() when the file has one; its result into cfg->setup_data.
 * 0, or -1 with "setup() failed: ...". */
int iac_lt_setup_run(iac_lt_config *cfg);
/* Run teardown(data) when the file has one. 0, or -1 with a message. */
int iac_lt_teardown_run(const iac_lt_config *cfg);

#endif
