/* xfer: one HTTP exchange on a kept-alive connection, no retries.
 *
 * The one place that drives libcurl for API calls. Two clients sit on it:
 * iac_http (http.h: JSON APIs, retries with backoff, a circuit breaker)
 * and the etcd client (iac/etcd: its own rule for retries, fail over to the
 * next endpoint only when a request provably never left, and streams).
 * Prometheus queries go through iac_http.
 *
 * A handle is one libcurl easy handle, so one connection kept alive between
 * exchanges to the same server. A handle serves one thread at a time; pools
 * of handles are the caller's (iac_http keeps one per provider instance).
 *
 * TLS: peer and host verification are always on; ca_file replaces the
 * system bundle; cert_file/key_file present a client certificate. Only
 * http:// and https:// URLs are followed, and never through a proxy from
 * the environment (iac talks to infrastructure, not the web).
 */
#ifndef IAC_HTTP_XFER_H
#define IAC_HTTP_XFER_H

#include <stddef.h>

typedef struct iac_xfer iac_xfer;

/* Receives the body as it arrives. 0: go on; 1: end the transfer here on
 * purpose (a stream reader that has what it wanted: IAC_XFER_STOPPED);
 * -1: abort it (IAC_XFER_REFUSED, e.g. the answer is too large). */
typedef int (*iac_xfer_sink)(const char *data, size_t len, void *ud);

typedef struct {
	const char *method;          /* "GET", "POST", ... */
	const char *url;
	const char *body;            /* NULL: no body */
	size_t body_len;
	const char *const *headers;  /* "Name: value" lines, NULL-terminated; may be NULL */
	double timeout_ms;           /* the whole exchange; <= 0: no deadline (streams) */
	double connect_timeout_ms;   /* <= 0: the timeout, at most 5 s */
	const char *ca_file;         /* NULL: the system bundle */
	const char *cert_file;       /* client certificate (PEM), or NULL */
	const char *key_file;        /* its key (PEM), or NULL */
	iac_xfer_sink sink;          /* NULL: the body is kept in the result */
	void *ud;
	size_t max_body;             /* kept body larger than this: IAC_XFER_REFUSED; 0: 64 MiB */
	const volatile int *cancel;  /* set to non-zero from elsewhere: IAC_XFER_CANCELLED */
} iac_xfer_req;

typedef enum {
	IAC_XFER_OK = 0,             /* an answer arrived: see status */
	IAC_XFER_STOPPED,            /* the sink ended it (1) */
	IAC_XFER_REFUSED,            /* the sink aborted it (-1), or the kept body was too large */
	IAC_XFER_CANCELLED,
	IAC_XFER_UNREACHABLE,        /* no connection: resolve or connect failed (never sent) */
	IAC_XFER_TLS,                /* the TLS handshake or the certificate check failed (never sent) */
	IAC_XFER_BROKEN,             /* the connection broke during the exchange */
	IAC_XFER_TIMEOUT,
	IAC_XFER_FAILED,             /* anything else curl reports */
} iac_xfer_kind;

typedef struct {
	iac_xfer_kind kind;
	long status;                 /* HTTP status when an answer started, else 0 */
	int sent;                    /* the request may have reached the server */
	char *body;                  /* kept body (no sink), NUL-terminated, never NULL after a call */
	size_t len;
	double retry_after_ms;       /* from a Retry-After header (seconds or HTTP date); -1: none */
	char *etag;                  /* the ETag header, or NULL */
	long connects;               /* new connections this exchange opened */
	int os_errno;                /* of a failed connect, or 0 */
	char error[256];             /* curl's words for a failure ("" when none) */
} iac_xfer_res;

int iac_xfer_new(iac_xfer **out);
void iac_xfer_free(iac_xfer *x);

/* One exchange. Fills *out (free it with iac_xfer_res_free) and returns its
 * kind: 0 when an answer of any status arrived. Sets no error message:
 * callers word failures for their users (iac_xfer_words helps). */
int iac_xfer_run(iac_xfer_res *out, iac_xfer *x, const iac_xfer_req *r);
void iac_xfer_res_free(iac_xfer_res *r);

/* Words for a failed exchange, lower-case, for "cannot reach 'URL': ...":
 * "connection refused", "cannot resolve host name", "no answer within 5s",
 * or curl's own message. Caller frees. */
char *iac_xfer_words(const iac_xfer_res *r, double timeout_ms);

/* URL-escape s (every byte but unreserved ones). Caller frees. */
char *iac_xfer_escape(const char *s);

#endif
