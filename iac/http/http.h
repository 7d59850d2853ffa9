/* http: the shared client for JSON HTTP APIs (libcurl + Jansson), one per
 * provider instance (`provider "http" "pdns" { ... }`).
 *
 * - Connections: a locked pool of curl easy handles, each keeping its
 *   connection alive between requests. A request takes a free handle or makes
 *   one, so the pool never holds more handles (and connections to the API)
 *   than requests that ran at the same moment: at most -parallelism.
 * - Retries: connection failures, 429 and 5xx are retried up to `retries`
 *   times with exponential backoff and full jitter; a Retry-After header
 *   (seconds or an HTTP date) is waited out instead when longer. A request
 *   that may have reached the server (a dropped POST, a timeout) is not sent
 *   again: it could run twice.
 * - Circuit breaker: after `breaker_failures` consecutive failed attempts
 *   the client fails fast for `breaker_cooldown_ms`, with a message naming the
 *   client, the count and the last failure; the first request after the
 *   cool-down goes through and closes it on success, re-opens it on failure.
 * - TLS: peer and host verification are always on; ca_file replaces the
 *   system bundle. There is no switch to turn verification off.
 * - Secrets: header values the options mark secret are registered with
 *   iac_redact_add(); nothing here prints a header.
 * - Threads: any number of threads may call iac_http_request() on one
 *   client at once.
 * Errors are "METHOD 'URL' answered STATUS: <the API's own message>" (see
 * iac_http_status_error()) or name what failed on the way ("cannot reach").
 */
#ifndef IAC_HTTP_HTTP_H
#define IAC_HTTP_HTTP_H

#include <jansson.h>
#include <stddef.h>

typedef struct iac_http iac_http;

typedef struct {
	const char *name;            /* for messages: "provider 'http' \"pdns\"" */
	const char *base_url;        /* "http://127.0.0.1:8081/api/v1"; paths are appended */
	const json_t *headers;       /* name -> string value (borrowed, copied) */
	double timeout_ms;           /* per attempt; <= 0: 10000 */
	int retries;                 /* extra attempts; < 0: 4 */
	double backoff_ms;           /* first backoff; <= 0: 200 */
	double backoff_max_ms;       /* cap of one backoff; <= 0: 10000 */
	double retry_after_max_ms;   /* longest Retry-After honoured; <= 0: 60000 */
	const char *ca_file;         /* NULL: the system bundle */
	const char *cert_file;       /* client certificate (PEM) presented to the server, or NULL */
	const char *key_file;        /* its private key (PEM), or NULL; a path such as
				      * /proc/self/fd/N keeps a key held in memory off disk */
	int breaker_failures;        /* <= 0: 5 */
	double breaker_cooldown_ms;  /* <= 0: 30000 */
} iac_http_opts;

typedef struct {
	long status;                 /* HTTP status of the final answer */
	json_t *json;                /* decoded body, NULL when empty */
	char *body;                  /* raw body, NUL-terminated (never NULL) */
	size_t len;
	char *url;                   /* the full URL asked */
	const char *method;          /* static */
	char *etag;                  /* the answer's ETag header, or NULL */
} iac_http_resp;

/* Counters since iac_http_new (for benchmarks and tests). */
typedef struct {
	long requests;               /* attempts sent */
	long connections;            /* TCP connections curl opened */
	long retries;                /* attempts repeated */
	long handles;                /* easy handles in the pool (max concurrency seen) */
} iac_http_stats;

int iac_http_new(iac_http **out, const iac_http_opts *o);
void iac_http_free(iac_http *h);

/* method "GET", "POST", ...; path is appended to base_url (a path that is
 * already a full URL is used as is); body (borrowed) is sent as JSON when
 * not NULL. 0 when the API answered with a status below 500 other than
 * 429 (check out->status: 404, 422... are the caller's to judge). IAC_ERR
 * (message set) otherwise: 429/5xx or connection failures after the
 * retries, a timeout, the breaker open, cancelled, or a 2xx answer whose
 * body is not JSON. out is always filled enough for
 * iac_http_resp_free(). */
int iac_http_request(iac_http_resp *out, iac_http *h, const char *method, const char *path, const json_t *body,
		     const volatile int *cancel);
void iac_http_resp_free(iac_http_resp *r);

/* A request with more than a JSON body: a raw body (an image upload),
 * extra headers (If-Match, X-LXD-mode), its own timeout (a long-poll
 * such as LXD's /operations/ID/wait). */
typedef struct {
	const char *method;          /* "GET", "POST", ... */
	const char *path;            /* as for iac_http_request */
	const json_t *json;          /* JSON body (borrowed), or NULL */
	const void *data;            /* raw body instead of json (borrowed), or NULL */
	size_t len;
	const char *content_type;    /* of data; NULL: application/octet-stream */
	const char *const *headers;  /* extra "Name: value" lines, NULL-terminated, or NULL */
	double timeout_ms;           /* this request's per-attempt timeout; <= 0: the client's */
} iac_http_req;

/* iac_http_request() for an iac_http_req; same results and retries. */
int iac_http_send(iac_http_resp *out, iac_http *h, const iac_http_req *rq, const volatile int *cancel);

/* Set the message for an answer that is not what the caller wanted:
 * "METHOD 'URL' answered STATUS: MESSAGE", MESSAGE being the API's "error"
 * or "message" field, or the start of the body. Returns IAC_ERR. */
int iac_http_status_error(const iac_http_resp *r);

void iac_http_get_stats(iac_http_stats *out, iac_http *h);

/* Join base and path, substituting every "{id}" in path with id
 * (URL-escaped; id may be NULL). Caller frees. */
char *iac_http_path(const char *path, const char *id);

#endif
