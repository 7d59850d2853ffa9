/* lt_http: HTTP/1.1 request bytes and the llhttp settings responses are
 * parsed with (see engine_int.h). Reading them off the socket is vu.c's.
 */
#include "iac/loadtest/engine_int.h"

#include <pthread.h>
#include <string.h>

/* ---- parsing -------------------------------------------------------- */

static int on_complete(llhttp_t *p)
{
	((lt_vu *)p->data)->msg_done = 1;
	return HPE_PAUSED;   /* one response per request: stop here */
}

static int on_hfield(llhttp_t *p, const char *at, size_t len)
{
	lt_vu *vu = p->data;
	iac_buf_put(&vu->hbuf, at, len);
	return 0;
}

static int on_hfield_done(llhttp_t *p)
{
	iac_buf_put(&((lt_vu *)p->data)->hbuf, ": ", 2);
	return 0;
}

static int on_hvalue(llhttp_t *p, const char *at, size_t len)
{
	iac_buf_put(&((lt_vu *)p->data)->hbuf, at, len);
	return 0;
}

static int on_hvalue_done(llhttp_t *p)
{
	iac_buf_put(&((lt_vu *)p->data)->hbuf, "\n", 1);
	return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	lt_vu *vu = p->data;
	if (vu->bbuf.len + len <= (64u << 20))   /* keep at most 64 MiB of a body */
		iac_buf_put(&vu->bbuf, at, len);
	return 0;
}

static llhttp_settings_t plain_settings, capture_settings;
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

static void settings_init(void)
{
	llhttp_settings_init(&plain_settings);
	plain_settings.on_message_complete = on_complete;
	llhttp_settings_init(&capture_settings);
	capture_settings.on_message_complete = on_complete;
	capture_settings.on_header_field = on_hfield;
	capture_settings.on_header_field_complete = on_hfield_done;
	capture_settings.on_header_value = on_hvalue;
	capture_settings.on_header_value_complete = on_hvalue_done;
	capture_settings.on_body = on_body;
}

void lt_http_init(void)
{
	pthread_once(&settings_once, settings_init);
}

const llhttp_settings_t *lt_http_settings(int capture)
{
	return capture ? &capture_settings : &plain_settings;
}

/* ---- requests ------------------------------------------------------- */

void lt_http_head(iac_buf *b, const char *method, const char *path, const char *hostport)
{
	iac_buf_printf(b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, hostport);
}

/* The User-Agent line every request carries unless the scenario sets its
 * own: iac-loadtest/VERSION, or the `user_agent` option ("" = none, which
 * makes the request the same bytes wrk sends). */
static void put_user_agent(iac_buf *b, const iac_lt_config *cfg)
{
	if (!cfg->user_agent)
		iac_buf_printf(b, "User-Agent: iac-loadtest/%s\r\n", IAC_VERSION);
	else if (cfg->user_agent[0])
		iac_buf_printf(b, "User-Agent: %s\r\n", cfg->user_agent);
}

void lt_http_end(iac_buf *b, const iac_lt_config *cfg, int has_ua, const char *method, const char *body,
		 size_t blen)
{
	if (!has_ua)
		put_user_agent(b, cfg);
	if (body || strcmp(method, "GET"))
		iac_buf_printf(b, "Content-Length: %zu\r\n", blen);
	iac_buf_puts(b, "\r\n");
	if (body)
		iac_buf_put(b, body, blen);
}
