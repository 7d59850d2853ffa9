/* http: pooled keep-alive handles with retries and a circuit breaker (see
 * http.h); each attempt is one iac_xfer exchange (xfer.h). */
#include "iac/http/http.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/http/xfer.h"

typedef struct slot {
	iac_xfer *x;
	struct slot *next;
} slot;

struct iac_http {
	char *name;
	char *base;
	char *ca_file;
	char *cert_file, *key_file;
	char **headers;                /* "Name: value" lines, NULL-terminated */
	size_t nheaders;
	double timeout_ms, backoff_ms, backoff_max_ms, retry_after_max_ms, cooldown_ms;
	int retries, breaker_n;

	pthread_mutex_t lock;          /* everything below */
	slot *free_slots;
	long nslots;
	int failures;                  /* consecutive failed attempts */
	int probing;                   /* half-open: the one trial request is out */
	double open_until;             /* breaker open until this iac_now_ms() */
	char *last_failure;
	iac_http_stats st;
	unsigned rng;
};

/* Header names whose values are credentials even when they did not come
 * from a sensitive variable (those are registered by the loader already). */
static int secret_header(const char *name)
{
	static const char *const words[] = { "auth", "key", "token", "secret", "cookie", "password", NULL };
	for (size_t i = 0; words[i]; i++)
		if (strcasestr(name, words[i]))
			return 1;
	return 0;
}

static void add_header(char ***v, size_t *n, char *line)
{
	*v = iac_xrealloc(*v, (*n + 2) * sizeof(**v));
	(*v)[(*n)++] = line;
	(*v)[*n] = NULL;
}

static void free_headers(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

int iac_http_new(iac_http **out, const iac_http_opts *o)
{
	*out = NULL;
	if (!o->base_url || !*o->base_url)
		return iac_err_set("base_url is required");
	if (strncmp(o->base_url, "http://", 7) && strncmp(o->base_url, "https://", 8))
		return iac_err_set("base_url '%s' must start with http:// or https://", o->base_url);
	iac_http *h = iac_xcalloc(1, sizeof(*h));
	h->name = iac_xstrdup(o->name ? o->name : "http");
	h->base = iac_xstrdup(o->base_url);
	size_t bl = strlen(h->base);
	while (bl && h->base[bl - 1] == '/')
		h->base[--bl] = '\0';
	h->ca_file = o->ca_file ? iac_xstrdup(o->ca_file) : NULL;
	h->cert_file = o->cert_file ? iac_xstrdup(o->cert_file) : NULL;
	h->key_file = o->key_file ? iac_xstrdup(o->key_file) : NULL;
	h->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
	h->retries = o->retries >= 0 ? o->retries : 4;
	h->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 200;
	h->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 10000;
	h->retry_after_max_ms = o->retry_after_max_ms > 0 ? o->retry_after_max_ms : 60000;
	h->breaker_n = o->breaker_failures > 0 ? o->breaker_failures : 5;
	h->cooldown_ms = o->breaker_cooldown_ms > 0 ? o->breaker_cooldown_ms : 30000;
	h->rng = (unsigned)iac_now_us() ^ (unsigned)(uintptr_t)h;
	pthread_mutex_init(&h->lock, NULL);
	add_header(&h->headers, &h->nheaders, iac_xstrdup("Accept: application/json"));
	add_header(&h->headers, &h->nheaders, iac_xstrdup("Content-Type: application/json"));
	add_header(&h->headers, &h->nheaders, iac_xstrdup("Expect:"));
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o->headers, k, v) {
		if (!json_is_string(v)) {
			iac_http_free(h);
			return iac_err_set("header '%s' must be a string", k);
		}
		const char *val = json_string_value(v);
		if (strpbrk(k, ":\r\n") || strpbrk(val, "\r\n")) {
			iac_http_free(h);
			return iac_err_set("header '%s' has a name with ':' or a line break in its name or value", k);
		}
		if (secret_header(k))
			iac_redact_add(val);
		add_header(&h->headers, &h->nheaders, iac_xasprintf("%s: %s", k, val));
	}
	*out = h;
	return 0;
}

void iac_http_free(iac_http *h)
{
	if (!h)
		return;
	for (slot *s = h->free_slots, *n; s; s = n) {
		n = s->next;
		iac_xfer_free(s->x);
		free(s);
	}
	free_headers(h->headers);
	pthread_mutex_destroy(&h->lock);
	free(h->last_failure);
	free(h->name);
	free(h->base);
	free(h->ca_file);
	free(h->cert_file);
	free(h->key_file);
	free(h);
}

void iac_http_get_stats(iac_http_stats *out, iac_http *h)
{
	pthread_mutex_lock(&h->lock);
	*out = h->st;
	out->handles = h->nslots;
	pthread_mutex_unlock(&h->lock);
}

static slot *take_slot(iac_http *h)
{
	pthread_mutex_lock(&h->lock);
	slot *s = h->free_slots;
	if (s) {
		h->free_slots = s->next;
	} else {
		s = iac_xcalloc(1, sizeof(*s));
		if (iac_xfer_new(&s->x) < 0)
			abort();   /* libcurl could not allocate a handle: out of memory */
		h->nslots++;
	}
	pthread_mutex_unlock(&h->lock);
	return s;
}

static void give_slot(iac_http *h, slot *s)
{
	pthread_mutex_lock(&h->lock);
	s->next = h->free_slots;
	h->free_slots = s;
	pthread_mutex_unlock(&h->lock);
}

char *iac_http_path(const char *path, const char *id)
{
	iac_buf b = IAC_BUF_INIT;
	char *esc = NULL;
	if (id) {
		/* keep the characters ids are made of readable (PowerDNS: "shop.test.") */
		esc = iac_xfer_escape(id);
	}
	for (const char *p = path; *p;) {
		if (esc && !strncmp(p, "{id}", 4)) {
			iac_buf_puts(&b, esc);
			p += 4;
		} else {
			iac_buf_putc(&b, *p++);
		}
	}
	free(esc);
	iac_buf_putc(&b, '\0');
	b.len--;
	return iac_buf_detach(&b);
}

static char *full_url(const iac_http *h, const char *path)
{
	if (!strncmp(path, "http://", 7) || !strncmp(path, "https://", 8))
		return iac_xstrdup(path);
	return iac_xasprintf("%s%s%s", h->base, path[0] == '/' ? "" : "/", path);
}

/* The breaker: fail fast while open. After the cool-down it is half-open:
 * exactly one request goes through as a trial (*trial set) while the
 * others still fail fast; the trial's outcome closes or re-opens it. */
static int breaker_check(int *trial, iac_http *h, const char *method, const char *url)
{
	int rc = 0;
	*trial = 0;
	pthread_mutex_lock(&h->lock);
	double now = iac_now_ms();
	if (h->failures >= h->breaker_n && now < h->open_until)
		rc = iac_err_set("not calling %s '%s': the circuit breaker of %s is open after %d consecutive "
				 "failures (last: %s); it lets requests through again in %.0fs",
				 method, url, h->name, h->failures, h->last_failure ? h->last_failure : "?",
				 (h->open_until - now) / 1000 + 0.5);
	else if (h->failures >= h->breaker_n && h->probing)
		rc = iac_err_set("not calling %s '%s': the circuit breaker of %s is half-open after %d consecutive "
				 "failures and one trial request is under way (last failure: %s)",
				 method, url, h->name, h->failures, h->last_failure ? h->last_failure : "?");
	else if (h->failures >= h->breaker_n)
		*trial = h->probing = 1;
	pthread_mutex_unlock(&h->lock);
	return rc;
}

/* A trial that ended without an outcome (cancelled): let the next one go. */
static void breaker_release(iac_http *h, int trial)
{
	if (!trial)
		return;
	pthread_mutex_lock(&h->lock);
	h->probing = 0;
	pthread_mutex_unlock(&h->lock);
}

/* Record one attempt's outcome; what = NULL on success. Returns 1 when the
 * breaker is (now) open. */
static int breaker_note(iac_http *h, const char *what, int trial)
{
	int open = 0;
	pthread_mutex_lock(&h->lock);
	if (trial)
		h->probing = 0;
	if (!what) {
		h->failures = 0;
	} else {
		h->failures++;
		free(h->last_failure);
		h->last_failure = iac_xstrdup(what);
		if (h->failures >= h->breaker_n) {
			h->open_until = iac_now_ms() + h->cooldown_ms;
			open = 1;
		}
	}
	pthread_mutex_unlock(&h->lock);
	return open;
}

static double jitter(iac_http *h, double max)
{
	pthread_mutex_lock(&h->lock);
	unsigned r = rand_r(&h->rng);
	pthread_mutex_unlock(&h->lock);
	/* full jitter in [max/2, max]: spreads retries of parallel workers while
	 * keeping the documented minimum growth */
	return max / 2 + (max / 2) * ((double)r / RAND_MAX);
}

/* Sleep ms, waking early when cancelled. -1 when cancelled. */
static int nap(double ms, const volatile int *cancel)
{
	double end = iac_now_ms() + ms;
	for (;;) {
		if (cancel && *cancel)
			return -1;
		double left = end - iac_now_ms();
		if (left <= 0)
			return 0;
		if (left > 50)
			left = 50;
		struct timespec ts = { 0, (long)(left * 1e6) };
		nanosleep(&ts, NULL);
	}
}

static int idempotent(const char *method)
{
	return strcmp(method, "POST") && strcmp(method, "PATCH");
}

/* Short text of an API's error answer: its "error" or "message" field, or
 * the start of the body. */
static char *api_message(const iac_http_resp *r)
{
	const json_t *j = r->json;
	const char *m = NULL;
	if (json_is_object(j)) {
		m = iac_json_str(j, "error");
		if (!m)
			m = iac_json_str(j, "message");
	}
	if (m)
		return iac_xstrdup(m);
	const char *b = r->body ? r->body : "";
	while (*b == ' ' || *b == '\n' || *b == '\r' || *b == '\t')
		b++;
	size_t n = strcspn(b, "\r\n");
	if (n > 200)
		n = 200;
	return n ? iac_xstrndup(b, n) : iac_xstrdup("(empty answer)");
}

int iac_http_status_error(const iac_http_resp *r)
{
	char *m = api_message(r);
	iac_err_set("%s '%s' answered %ld: %s", r->method ? r->method : "?", r->url ? r->url : "?", r->status, m);
	free(m);
	return IAC_ERR;
}

static const char *fmt_ms(char *buf, size_t n, double ms)
{
	if (ms >= 1000 && (long)ms % 1000 == 0)
		snprintf(buf, n, "%lds", (long)(ms / 1000));
	else
		snprintf(buf, n, "%.0fms", ms);
	return buf;
}

/* An API answer larger than this is refused rather than held in memory. */
#define BODY_MAX ((size_t)64 << 20)

/* What one request sends, the same at every attempt. */
typedef struct {
	const char *payload;
	size_t len;
	const char *const *headers;
	double timeout_ms;
} sendspec;

/* One attempt with a pooled handle. */
static void attempt(iac_xfer_res *res, iac_http *h, slot *s, const char *method, const char *url,
		    const sendspec *sp, const volatile int *cancel)
{
	iac_xfer_req r = {
		.method = method, .url = url, .body = sp->payload, .body_len = sp->len, .headers = sp->headers,
		.timeout_ms = sp->timeout_ms, .ca_file = h->ca_file, .cert_file = h->cert_file,
		.key_file = h->key_file, .cancel = cancel, .max_body = BODY_MAX,
	};
	iac_xfer_run(res, s->x, &r);
	pthread_mutex_lock(&h->lock);
	h->st.requests++;
	h->st.connections += res->connects;
	pthread_mutex_unlock(&h->lock);
}

/* Why an attempt that got no answer failed, in words. */
static char *transport_words(const iac_xfer_res *r, double timeout_ms)
{
	char t[32];
	switch (r->kind) {
	case IAC_XFER_TIMEOUT:
		return iac_xasprintf("no answer within the timeout of %s", fmt_ms(t, sizeof(t), timeout_ms));
	case IAC_XFER_UNREACHABLE:
		if (strstr(r->error, "resolve"))
			return iac_xstrdup(r->error);
		return iac_xasprintf("cannot connect (%s)", r->error[0] ? r->error : "connection refused");
	case IAC_XFER_REFUSED:
		return iac_xasprintf("the answer is larger than %zu MiB", BODY_MAX >> 20);
	default:
		return iac_xstrdup(r->error[0] ? r->error : "transfer failed");
	}
}

/* Whether a failure without an answer may be retried: only when the
 * request cannot have reached the server, or repeating it is harmless.
 * Timeouts are not: the server may still be working on it, and piling more
 * requests onto a hanging API is what the breaker stops; TLS and
 * certificate errors do not heal by themselves. */
static int retry_transport(iac_xfer_kind k, const char *method)
{
	return k == IAC_XFER_UNREACHABLE || (k == IAC_XFER_BROKEN && idempotent(method));
}

static const char *method_static(const char *m)
{
	static const char *const known[] = { "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", NULL };
	for (size_t i = 0; known[i]; i++)
		if (!strcmp(known[i], m))
			return known[i];
	return "REQUEST";
}

/* The headers of one request: the client's, with Content-Type replaced for
 * a raw body, and the request's own. NULL: the client's list as it is. */
static char **request_headers(const iac_http *h, const iac_http_req *rq)
{
	if (!rq->data && !rq->headers)
		return NULL;
	char **l = NULL;
	size_t n = 0;
	for (size_t i = 0; h->headers[i]; i++)
		if (!rq->data || strncasecmp(h->headers[i], "Content-Type:", 13))
			add_header(&l, &n, iac_xstrdup(h->headers[i]));
	if (rq->data)
		add_header(&l, &n, iac_xasprintf("Content-Type: %s", rq->content_type ? rq->content_type
											 : "application/octet-stream"));
	for (size_t i = 0; rq->headers && rq->headers[i]; i++)
		add_header(&l, &n, iac_xstrdup(rq->headers[i]));
	return l;
}

int iac_http_request(iac_http_resp *out, iac_http *h, const char *method, const char *path, const json_t *body,
		     const volatile int *cancel)
{
	iac_http_req rq = { .method = method, .path = path, .json = body };
	return iac_http_send(out, h, &rq, cancel);
}

/* Long because it is the retry loop: one attempt, classify, decide whether
 * and how long to wait, with the breaker consulted before every attempt. */
int iac_http_send(iac_http_resp *out, iac_http *h, const iac_http_req *rq, const volatile int *cancel)
{
	memset(out, 0, sizeof(*out));
	out->method = method_static(rq->method);
	out->url = full_url(h, rq->path);
	out->body = iac_xstrdup("");
	char *payload = rq->json && !rq->data ? json_dumps(rq->json, JSON_COMPACT) : NULL;
	char **own_headers = request_headers(h, rq);
	sendspec sp = { payload, payload ? strlen(payload) : 0,
			(const char *const *)(own_headers ? own_headers : h->headers),
			rq->timeout_ms > 0 ? rq->timeout_ms : h->timeout_ms };
	if (rq->data) {
		sp.payload = rq->data;
		sp.len = rq->len;
	}
	int rc = IAC_ERR, trial = 0;

	for (int try = 0;; try++) {
		if (cancel && *cancel) {
			iac_err_set("%s '%s': cancelled", out->method, out->url);
			goto done;
		}
		if (breaker_check(&trial, h, out->method, out->url) < 0)
			goto done;
		iac_xfer_res x;
		slot *s = take_slot(h);
		attempt(&x, h, s, out->method, out->url, &sp, cancel);
		give_slot(h, s);
		free(out->etag);
		out->etag = x.etag;
		x.etag = NULL;
		free(out->body);
		json_decref(out->json);
		out->json = NULL;   /* an earlier attempt's error answer is not this one's */
		out->len = x.len;
		out->body = x.body;   /* taken: x is not freed */
		out->status = x.status;
		long status = x.status;

		char *why = NULL;
		int may_retry = 0;
		if (x.kind == IAC_XFER_CANCELLED) {
			breaker_release(h, trial);
			iac_err_set("%s '%s': cancelled", out->method, out->url);
			goto done;
		}
		if (x.kind != IAC_XFER_OK) {
			why = transport_words(&x, sp.timeout_ms);
			may_retry = retry_transport(x.kind, out->method);
		} else if (status == 429 || status >= 500) {
			out->json = json_loads(out->body, 0, NULL);
			char *m = api_message(out);
			why = iac_xasprintf("answered %ld: %s", status, m);
			free(m);
			may_retry = 1;
		}
		if (!why) {
			breaker_note(h, NULL, trial);
			break;
		}
		char *full = iac_xasprintf("%s '%s' %s", out->method, out->url, why);
		int open = breaker_note(h, full, trial);
		if (!may_retry || try >= h->retries || open) {
			char more[160] = "";
			if (open && may_retry && try < h->retries)
				snprintf(more, sizeof(more), " (after %d attempt%s; the circuit breaker of %s opened)",
					 try + 1, try ? "s" : "", h->name);
			else if (try > 0)
				snprintf(more, sizeof(more), " (after %d attempts)", try + 1);
			if (x.kind == IAC_XFER_TIMEOUT)
				iac_err_set("%s '%s' timed out: %s%s", out->method, out->url, why, more);
			else if (x.kind != IAC_XFER_OK)
				iac_err_set("cannot reach %s '%s': %s%s", out->method, out->url, why, more);
			else
				iac_err_set("%s%s", full, more);
			free(why);
			free(full);
			goto done;
		}
		double wait = jitter(h, h->backoff_ms * (double)(1u << (try < 16 ? try : 16)));
		if (wait > h->backoff_max_ms)
			wait = h->backoff_max_ms;
		if (x.retry_after_ms >= 0) {
			wait = x.retry_after_ms > h->retry_after_max_ms ? h->retry_after_max_ms : x.retry_after_ms;
		}
		free(why);
		free(full);
		pthread_mutex_lock(&h->lock);
		h->st.retries++;
		pthread_mutex_unlock(&h->lock);
		if (nap(wait, cancel) < 0) {
			iac_err_set("%s '%s': cancelled", out->method, out->url);
			goto done;
		}
	}
	if (out->status >= 200 && out->status < 300 && out->len) {
		json_error_t jerr;
		out->json = json_loadb(out->body, out->len, 0, &jerr);
		if (!out->json) {
			char *m = api_message(out);
			iac_err_set("%s '%s' answered %ld with malformed JSON (%s at line %d column %d): %.80s",
				    out->method, out->url, out->status, jerr.text, jerr.line, jerr.column, m);
			free(m);
			goto done;
		}
	} else if (out->len) {
		out->json = json_loadb(out->body, out->len, 0, NULL);
	}
	rc = 0;
done:
	free(payload);
	free_headers(own_headers);
	return rc;
}

void iac_http_resp_free(iac_http_resp *r)
{
	if (!r)
		return;
	json_decref(r->json);
	free(r->body);
	free(r->url);
	free(r->etag);
	memset(r, 0, sizeof(*r));
}
