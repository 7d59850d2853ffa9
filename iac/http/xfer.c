/* xfer: one HTTP exchange on a kept-alive libcurl handle (see xfer.h). */
#include "iac/http/xfer.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "iac/core/buf.h"
#include "iac/core/util.h"

#define BODY_MAX_DEFAULT ((size_t)64 << 20)
#define CONNECT_MAX_MS 5000.0

struct iac_xfer {
	CURL *c;
	char errbuf[CURL_ERROR_SIZE];
};

/* What the callbacks of one exchange share. */
typedef struct {
	const iac_xfer_req *r;
	iac_buf body;
	int stopped, refused;
	double retry_after_ms;
	char *etag;
} run_ctx;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int iac_xfer_new(iac_xfer **out)
{
	pthread_once(&curl_once, curl_init_once);
	iac_xfer *x = iac_xcalloc(1, sizeof(*x));
	x->c = curl_easy_init();
	if (!x->c) {
		free(x);
		*out = NULL;
		return -1;
	}
	*out = x;
	return 0;
}

void iac_xfer_free(iac_xfer *x)
{
	if (!x)
		return;
	curl_easy_cleanup(x->c);
	free(x);
}

void iac_xfer_res_free(iac_xfer_res *r)
{
	if (!r)
		return;
	free(r->body);
	free(r->etag);
	r->body = NULL;
	r->etag = NULL;
	r->len = 0;
}

char *iac_xfer_escape(const char *s)
{
	pthread_once(&curl_once, curl_init_once);
	char *e = curl_easy_escape(NULL, s, 0);
	char *copy = iac_xstrdup(e ? e : "");
	curl_free(e);
	return copy;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	run_ctx *x = ud;
	size_t n = size * nmemb;
	if (x->r->sink) {
		int v = x->r->sink(data, n, x->r->ud);
		if (v > 0)
			x->stopped = 1;
		else if (v < 0)
			x->refused = 1;
		return v ? 0 : n;   /* 0: CURLE_WRITE_ERROR ends the transfer */
	}
	size_t max = x->r->max_body ? x->r->max_body : BODY_MAX_DEFAULT;
	if (x->body.len + n > max) {
		x->refused = 1;
		return 0;
	}
	iac_buf_put(&x->body, data, n);
	return n;
}

/* ETag, for If-Match on the next update (LXD). */
static void keep_etag(run_ctx *x, const char *data, size_t n)
{
	const char *v = data + 5, *e = data + n;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
		e--;
	free(x->etag);
	x->etag = iac_xstrndup(v, (size_t)(e - v));
}

/* Retry-After: delay-seconds or an HTTP date; ETag. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	run_ctx *x = ud;
	size_t n = size * nmemb;
	if (n > 5 && !strncasecmp(data, "ETag:", 5))
		keep_etag(x, data, n);
	if (n <= 12 || strncasecmp(data, "Retry-After:", 12))
		return n;
	char val[128];
	size_t l = n - 12 < sizeof(val) - 1 ? n - 12 : sizeof(val) - 1;
	memcpy(val, data + 12, l);
	val[l] = '\0';
	char *s = val;
	while (*s == ' ' || *s == '\t')
		s++;
	for (char *e = s + strlen(s); e > s && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '); e--)
		e[-1] = '\0';
	char *end;
	errno = 0;
	double secs = strtod(s, &end);
	if (end != s && !*end && errno == 0 && secs >= 0) {
		x->retry_after_ms = secs * 1000;
	} else {
		time_t t = curl_getdate(s, NULL);
		if (t > 0) {
			double d = difftime(t, time(NULL));
			x->retry_after_ms = d > 0 ? d * 1000 : 0;
		}
	}
	return n;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a, (void)b, (void)c, (void)d;
	run_ctx *x = ud;
	return x->r->cancel && *x->r->cancel ? 1 : 0;
}

/* Every option is set again on each exchange (after a reset): an earlier
 * exchange's options (a stream's missing deadline, a POST body) must not
 * leak into this one. The connection itself survives the reset. */
static void set_options(CURL *c, run_ctx *x, struct curl_slist *headers, char *errbuf)
{
	const iac_xfer_req *r = x->r;
	double ct = r->connect_timeout_ms > 0 ? r->connect_timeout_ms
		    : r->timeout_ms > 0 && r->timeout_ms < CONNECT_MAX_MS ? r->timeout_ms : CONNECT_MAX_MS;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, r->url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
	if (!strcmp(r->method, "GET"))
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	else if (!strcmp(r->method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (r->body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	if (r->cancel) {
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	}
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)ct);
	if (r->timeout_ms > 0)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_MAXCONNECTS, 2L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (r->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, r->ca_file);
	if (r->cert_file)
		curl_easy_setopt(c, CURLOPT_SSLCERT, r->cert_file);
	if (r->key_file)
		curl_easy_setopt(c, CURLOPT_SSLKEY, r->key_file);
}

static iac_xfer_kind classify(CURLcode cc, const run_ctx *x)
{
	switch (cc) {
	case CURLE_OK:
		return IAC_XFER_OK;
	case CURLE_WRITE_ERROR:
		return x->stopped ? IAC_XFER_STOPPED : x->refused ? IAC_XFER_REFUSED : IAC_XFER_FAILED;
	case CURLE_ABORTED_BY_CALLBACK:
		return IAC_XFER_CANCELLED;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return IAC_XFER_UNREACHABLE;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		return IAC_XFER_TLS;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return IAC_XFER_BROKEN;
	case CURLE_OPERATION_TIMEDOUT:
		return IAC_XFER_TIMEOUT;
	default:
		return IAC_XFER_FAILED;
	}
}

int iac_xfer_run(iac_xfer_res *out, iac_xfer *x, const iac_xfer_req *r)
{
	run_ctx ctx = { r, IAC_BUF_INIT, 0, 0, -1, NULL };
	struct curl_slist *headers = NULL;
	for (size_t i = 0; r->headers && r->headers[i]; i++)
		headers = curl_slist_append(headers, r->headers[i]);
	memset(out, 0, sizeof(*out));
	x->errbuf[0] = '\0';
	set_options(x->c, &ctx, headers, x->errbuf);
	CURLcode cc = curl_easy_perform(x->c);
	curl_slist_free_all(headers);

	long status = 0, conns = 0, oserr = 0, req_bytes = 0;
	curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(x->c, CURLINFO_NUM_CONNECTS, &conns);
	curl_easy_getinfo(x->c, CURLINFO_OS_ERRNO, &oserr);
	curl_easy_getinfo(x->c, CURLINFO_REQUEST_SIZE, &req_bytes);
	out->kind = classify(cc, &ctx);
	out->status = status;
	out->connects = conns;
	out->os_errno = (int)oserr;
	out->retry_after_ms = ctx.retry_after_ms;
	out->etag = ctx.etag;
	/* a timeout before a byte left (connect time is 0 on a reused
	 * connection too, so the bytes sent tell) is as good as unsent */
	out->sent = !(out->kind == IAC_XFER_UNREACHABLE || out->kind == IAC_XFER_TLS ||
		      (out->kind == IAC_XFER_TIMEOUT && req_bytes == 0));
	if (cc != CURLE_OK)
		snprintf(out->error, sizeof(out->error), "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
	iac_buf_putc(&ctx.body, '\0');
	ctx.body.len--;
	out->len = ctx.body.len;
	out->body = iac_buf_detach(&ctx.body);
	return (int)out->kind;
}

char *iac_xfer_words(const iac_xfer_res *r, double timeout_ms)
{
	char *s;
	if (r->kind == IAC_XFER_TIMEOUT)
		return iac_xasprintf("timed out after %.0f ms", timeout_ms);
	if (r->kind == IAC_XFER_UNREACHABLE && strstr(r->error, "resolve"))
		return iac_xstrdup("cannot resolve host name");
	if (r->kind == IAC_XFER_UNREACHABLE && r->os_errno)
		s = iac_xstrdup(strerror(r->os_errno));
	else
		s = iac_xstrdup(r->error[0] ? r->error : "transfer failed");
	if (*s >= 'A' && *s <= 'Z')
		*s = (char)(*s - 'A' + 'a');
	return s;
}
