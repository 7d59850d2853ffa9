/* fuzz_http: HTTP responses as `iac loadtest` reads them (llhttp with the
 * settings of iac/loadtest/http.c, which keep headers and body for a flow)
 * and as a flow sees them: r.status, r.body, r.headers (parsed on first use)
 * and r:json() (iac/loadtest/vu_lua.c).
 *
 * The input arrives in three reads, as from a socket; a response that needs
 * EOF is finished at the end of the stream, and a failed one reaches the
 * flow with status 0 and an error, with whatever headers and body were
 * parsed, as the engine's read loop (vu.c) does. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "harness.h"
#include "iac/loadtest/engine_int.h"

/* ---- the flow's side --------------------------------------------------- */

static const char flow[] =
	"local r = ...\n"
	"local n = r.status + #r.body + #(r.error or '')\n"
	"for k, v in pairs(r.headers) do n = n + #k + #v end\n"
	"local h = r.headers['content-type']\n"
	"local ok, j = pcall(r.json, r)\n"
	"if ok and type(j) == 'table' then for k in pairs(j) do n = n + 1 end end\n"
	"return n\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lt_vu vu;
	memset(&vu, 0, sizeof(vu));
	lt_http_init();
	llhttp_init(&vu.parser, HTTP_RESPONSE, lt_http_settings(1));
	vu.parser.data = &vu;

	/* three reads, then the end of the stream */
	size_t cut[4] = { 0, size / 3, 2 * size / 3, size };
	int failed = 0;
	for (int i = 0; i < 3 && !vu.msg_done && !failed; i++) {
		if (cut[i + 1] == cut[i])
			continue;
		vu.got_bytes = 1;
		llhttp_errno_t e = llhttp_execute(&vu.parser, (const char *)data + cut[i], cut[i + 1] - cut[i]);
		if (!vu.msg_done && e != HPE_OK)
			failed = 1;
	}
	if (!vu.msg_done && !failed && vu.got_bytes && llhttp_message_needs_eof(&vu.parser))
		llhttp_finish(&vu.parser);
	int status = 0;
	const char *error = NULL;
	if (vu.msg_done) {
		status = llhttp_get_status_code(&vu.parser);
		(void)llhttp_should_keep_alive(&vu.parser);
	} else {
		error = failed ? "parse" : "closed";
	}

	/* the flow gets the response */
	lua_State *L = fuzz_lua_new(64u << 20, 1000000);
	fuzz_lua_safe_libs(L);
	lt_lua_setup(L);
	vu.co = L;
	if (luaL_loadbufferx(L, flow, sizeof(flow) - 1, "=flow", "t") != LUA_OK)
		abort();
	lt_lua_push_response(&vu, status, error, 1.5);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		/* only limits may stop the flow above */
		const char *msg = lua_tostring(L, -1);
		if (!msg || (!strstr(msg, "not enough memory") && !strstr(msg, "instructions"))) {
			fprintf(stderr, "fuzz: the flow failed: %s\n", msg ? msg : "?");
			abort();
		}
	}
	fuzz_lua_close(L);
	iac_buf_free(&vu.hbuf);
	iac_buf_free(&vu.bbuf);
	return 0;
}
