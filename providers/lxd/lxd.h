/* lxd provider: containers, profiles, networks and images on LXD's REST API
 * (LXD 5.0), over the shared HTTP layer of iac/http (retries, backoff,
 * circuit breaker, TLS always verified).
 *
 *   provider "lxd" { endpoint = "https://127.0.0.1:8443", client_cert = "client.crt",
 *                    client_key = var.lxd_key, server_cert = "server.crt" }
 *   resource "lxd.instance" "app1" { image = "app-base", profiles = { "default" },
 *                                    limits = { cpu = 1, memory = "256MB" }, ssh_key = file("id.pub") }
 *
 * The API: HTTPS with a client certificate the server trusts; changes answer
 * 202 with an operation, waited on with GET /1.0/operations/ID/wait?timeout=N;
 * updates are PUT with If-Match: the ETag of the object as read, so a change
 * made by someone else meanwhile is refused (412) rather than overwritten.
 * Certificates and the key are PEM text or paths; the key is kept in memory
 * (a memfd, handed to libcurl as /proc/self/fd/N), never written to disk,
 * printed or stored in state.
 */
#ifndef IAC_PROVIDERS_LXD_H
#define IAC_PROVIDERS_LXD_H

#include <pthread.h>

#include "iac/http/http.h"
#include "iac/provider/provider.h"

extern const iac_rtype iac_lxd_instance;
extern const iac_rtype iac_lxd_profile;
extern const iac_rtype iac_lxd_network;
extern const iac_rtype iac_lxd_image;
extern const iac_provider iac_provider_lxd;

/* One `provider "lxd" ["ALIAS"] { ... }` block. */
typedef struct {
	char *alias;          /* NULL: the unnamed block */
	char *endpoint;       /* "https://127.0.0.1:8443" */
	iac_http *http;
	int fds[3];           /* memfds holding PEM given as text (-1: none) */
	double op_timeout_ms; /* longest wait for one operation */
	pthread_mutex_t lock; /* trusted */
	int trusted;          /* 1: GET /1.0 said auth "trusted" */
} lxd_conn;

typedef struct {
	lxd_conn *v;
	size_t n;
	const char *config_dir; /* during configure() only */
} lxd_set;

/* The block a resource names with `provider = "ALIAS"` (or the unnamed one). */
int lxd_conn_for(lxd_conn **out, const iac_rctx *ctx, const json_t *attrs);

/* One call to the API. A sync answer's metadata, or for an async one (202)
 * the finished operation's metadata, goes to *meta (new reference, may be
 * NULL); *etag (may be NULL) gets the answer's ETag. The operation is waited
 * on with /1.0/operations/ID/wait?timeout=N, in slices, until the
 * provider's operation timeout. Returns 0, IAC_ENOTFOUND for 404 (message
 * set), or IAC_ERR with "lxd says: MESSAGE" when LXD refused or the
 * operation failed. rq->method/path/json/data as for iac_http_send(). */
int lxd_call(json_t **meta, char **etag, lxd_conn *c, const iac_http_req *rq, const volatile int *cancel);

/* The end of a delete: gone already (IAC_ENOTFOUND) is done; other errors
 * become "cannot delete WHAT 'NAME': ...". */
int lxd_deleted(int rc, const char *what, const char *name);

/* Shorthand for a JSON call. */
int lxd_json(json_t **meta, lxd_conn *c, const char *method, const char *path, const json_t *body,
	     const volatile int *cancel);

/* The object's name: the "name" attribute, or the resource's name in its
 * address ("lxd.instance.app1" -> "app1"). Caller frees. */
char *lxd_name_of(const iac_rctx *ctx, const json_t *attrs);

/* A JSON map of LXD config values: every value as the string LXD keeps
 * (numbers without a fraction as integers, booleans as "true"/"false").
 * NULL (message set) for a value that is not a string, number or bool. */
json_t *lxd_config_strings(const json_t *map, const char *what);

/* /1.0/KIND/NAME with NAME escaped. Caller frees. */
char *lxd_path(const char *kind, const char *name);

#endif
