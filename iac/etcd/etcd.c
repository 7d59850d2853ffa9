/* etcd: etcd v3 JSON gateway client (see etcd.h).
 *
 * Gateway facts this relies on (etcd 3.4): keys and values are base64; int64
 * fields arrive as JSON strings; fields with zero values are omitted (a
 * failed txn has no "succeeded", a missing key no "kvs"), so every read
 * treats a missing field as its zero. Streams (watch, lease keep-alive) are
 * newline-separated JSON objects wrapped in {"result": ...}, and errors in a
 * stream come as {"error": {...}}.
 */
#include "iac/etcd/etcd.h"
#include "iac/core/base64.h"
#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/http/xfer.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT_MS 5000.0
#define CONNECT_TIMEOUT_MS 3000.0
#define STREAM_MAX (16u << 20)

struct iac_etcd {
	iac_xfer *x;
	char **endpoints;
	size_t n_endpoints;
	size_t current;
	double timeout_ms;
	char *user, *password, *token;
	char *ca_file, *cert_file, *key_file;
};

/* A stream handler sees each decoded object; returning 1 ends the request. */
typedef int (*stream_fn)(const json_t *obj, void *ud);

typedef struct {
	iac_buf body;
	stream_fn fn;
	void *ud;
	int stopped;   /* the handler ended the transfer on purpose */
	int overflow;
} response;

/* --- small helpers ----------------------------------------------------- */

static int64_t get_i64(const json_t *obj, const char *field)
{
	json_t *v = json_object_get(obj, field);
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_string(v))
		return (int64_t)strtoll(json_string_value(v), NULL, 10);
	return 0;
}

static json_t *b64(const void *data, size_t len)
{
	char *s = iac_base64_encode(data, len);
	json_t *j = json_string(s);
	free(s);
	return j;
}

static json_t *b64s(const char *s)
{
	return b64(s, strlen(s));
}

/* The range_end that makes [key, end) every key with this prefix. */
static json_t *prefix_end(const char *prefix)
{
	size_t n = strlen(prefix);
	unsigned char *end = (unsigned char *)iac_xstrdup(prefix);
	json_t *j;
	while (n > 0) {
		if (end[n - 1] < 0xff) {
			end[n - 1]++;
			break;
		}
		n--;
	}
	/* All 0xff (or empty): "\0" means "to the end of the keyspace". */
	j = n ? b64(end, n) : b64("\0", 1);
	free(end);
	return j;
}

static int kv_from_json(iac_etcd_kv *kv, const json_t *j)
{
	const char *k = iac_json_str(j, "key");
	const char *v = iac_json_str(j, "value");
	size_t klen;

	memset(kv, 0, sizeof(*kv));
	if (iac_base64_decode(&kv->key, &klen, k ? k : "", k ? strlen(k) : 0) < 0 ||
	    iac_base64_decode(&kv->value, &kv->value_len, v ? v : "", v ? strlen(v) : 0) < 0) {
		iac_etcd_kv_free(kv);
		iac_err_prefix("etcd sent an undecodable key or value");
		return -1;
	}
	kv->create_revision = get_i64(j, "create_revision");
	kv->mod_revision = get_i64(j, "mod_revision");
	kv->version = get_i64(j, "version");
	kv->lease = get_i64(j, "lease");
	return 0;
}

void iac_etcd_kv_free(iac_etcd_kv *kv)
{
	if (!kv)
		return;
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

void iac_etcd_kvs_free(iac_etcd_kv *kvs, size_t n)
{
	for (size_t i = 0; kvs && i < n; i++)
		iac_etcd_kv_free(&kvs[i]);
	free(kvs);
}

/* --- open / close -------------------------------------------------------- */

int iac_etcd_open(iac_etcd **out, const char *endpoints, double timeout_ms)
{
	iac_etcd *e;
	char *list, *tok, *save = NULL;

	*out = NULL;
	if (!endpoints || !*endpoints)
		return iac_err_set("no etcd endpoints given; expected e.g. 'http://127.0.0.1:2379'");
	e = iac_xcalloc(1, sizeof(*e));
	e->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
	list = iac_xstrdup(endpoints);
	for (tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		size_t n = strlen(tok);
		while (n > 0 && tok[n - 1] == '/')
			tok[--n] = '\0';
		e->endpoints = iac_xrealloc(e->endpoints, (e->n_endpoints + 1) * sizeof(char *));
		e->endpoints[e->n_endpoints++] = strstr(tok, "://") ? iac_xstrdup(tok)
								    : iac_xasprintf("http://%s", tok);
	}
	free(list);
	if (e->n_endpoints == 0) {
		iac_etcd_close(e);
		return iac_err_set("no etcd endpoints in '%s'", endpoints);
	}
	if (iac_xfer_new(&e->x) < 0) {
		iac_etcd_close(e);
		return iac_err_set("cannot initialise libcurl");
	}
	*out = e;
	return 0;
}

void iac_etcd_close(iac_etcd *e)
{
	if (!e)
		return;
	iac_xfer_free(e->x);
	for (size_t i = 0; i < e->n_endpoints; i++)
		free(e->endpoints[i]);
	free(e->endpoints);
	free(e->user);
	free(e->password);
	free(e->token);
	free(e->ca_file);
	free(e->cert_file);
	free(e->key_file);
	free(e);
}

const char *iac_etcd_endpoint(const iac_etcd *e)
{
	return e->endpoints[e->current];
}

int iac_etcd_set_tls(iac_etcd *e, const char *ca_file, const char *cert_file, const char *key_file)
{
	free(e->ca_file);
	free(e->cert_file);
	free(e->key_file);
	e->ca_file = ca_file ? iac_xstrdup(ca_file) : NULL;
	e->cert_file = cert_file ? iac_xstrdup(cert_file) : NULL;
	e->key_file = key_file ? iac_xstrdup(key_file) : NULL;
	return 0;
}

/* --- transport ----------------------------------------------------------- */

/* A stream's sink: hand every complete object to the handler, keep a
 * partial tail. 1 when the handler ended the stream, -1 when it grows past
 * STREAM_MAX. */
static int on_stream(const char *data, size_t n, void *ud)
{
	response *r = ud;

	if (r->body.len + n > STREAM_MAX) {
		r->overflow = 1;
		return -1;
	}
	iac_buf_put(&r->body, data, n);
	for (;;) {
		size_t off = 0;
		while (off < r->body.len && strchr(" \t\r\n", r->body.ptr[off]))
			off++;
		if (off == r->body.len) {
			iac_buf_clear(&r->body);
			return 0;
		}
		json_error_t jerr;
		json_t *obj = json_loadb(r->body.ptr + off, r->body.len - off, JSON_DISABLE_EOF_CHECK, &jerr);
		if (!obj)
			return 0; /* incomplete: wait for more bytes */
		size_t used = off + (size_t)jerr.position;
		int stop = r->fn(obj, r->ud);
		json_decref(obj);
		memmove(r->body.ptr, r->body.ptr + used, r->body.len - used);
		r->body.len -= used;
		r->body.ptr[r->body.len] = '\0';
		if (stop) {
			r->stopped = 1;
			return 1;
		}
	}
}

static int authenticate(iac_etcd *e);

/* One request's parameters, passed down the helpers of request(). */
typedef struct {
	const char *path;
	const json_t *body;
	double timeout_ms;   /* < 0: no overall deadline (streams) */
	stream_fn fn;
	void *ud;
	int may_reauth;
} etcd_req;

/* Connecting gets at most CONNECT_TIMEOUT_MS, less when the whole request
 * has less: a dead endpoint must leave time to try the next one. */
static double connect_timeout_ms(double timeout_ms)
{
	return timeout_ms > 0 && timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS;
}

/* One attempt against endpoint idx, through the shared HTTP layer. A
 * stream's objects go to its handler; a plain answer is kept in res. */
static int try_endpoint(iac_xfer_res *res, iac_etcd *e, size_t idx, const etcd_req *q, const char *payload,
			response *r)
{
	char *url = iac_xasprintf("%s/v3/%s", e->endpoints[idx], q->path);
	char *auth = e->token ? iac_xasprintf("Authorization: %s", e->token) : NULL;
	const char *headers[] = { "Content-Type: application/json", "Expect:", auth, NULL };
	iac_xfer_req x = {
		.method = "POST", .url = url, .body = payload, .body_len = strlen(payload), .headers = headers,
		.timeout_ms = q->timeout_ms, .connect_timeout_ms = connect_timeout_ms(q->timeout_ms),
		.ca_file = e->ca_file, .cert_file = e->cert_file, .key_file = e->key_file,
		.sink = q->fn ? on_stream : NULL, .ud = r, .max_body = STREAM_MAX,
	};
	iac_buf_clear(&r->body);
	r->stopped = r->overflow = 0;
	int kind = iac_xfer_run(res, e->x, &x);
	if (kind == IAC_XFER_REFUSED)
		r->overflow = 1;
	free(auth);
	free(url);
	return kind;
}

/* The request may have reached etcd, so it is not retried elsewhere (a
 * retried put or txn could apply twice). This endpoint stays current. */
static int sent_and_failed(iac_etcd *e, size_t idx, const etcd_req *q, const iac_xfer_res *res)
{
	char *w = iac_xfer_words(res, q->timeout_ms);
	int rc = -1;

	e->current = idx;
	if (res->kind == IAC_XFER_TIMEOUT) {
		iac_err_set("etcd at '%s' did not answer '%s' in time: %s", e->endpoints[idx], q->path, w);
		rc = IAC_ETIMEOUT;
	} else {
		iac_err_set("etcd request '%s' to '%s' failed: %s", q->path, e->endpoints[idx], w);
	}
	free(w);
	return rc;
}

/* Tries the endpoints from the current one on, moving on only while the
 * request provably did not leave us. 0: *status and r (or the stream
 * handler) hold an answer from e->endpoints[e->current]. */
static int send_request(long *status, iac_etcd *e, const etcd_req *q, const char *payload, response *r)
{
	iac_buf why = IAC_BUF_INIT;
	iac_xfer_res res = { 0 };
	int rc = -1;

	for (size_t tried = 0; tried < e->n_endpoints; tried++) {
		size_t idx = (e->current + tried) % e->n_endpoints;
		iac_xfer_res_free(&res);
		int kind = try_endpoint(&res, e, idx, q, payload, r);

		if (kind == IAC_XFER_OK || kind == IAC_XFER_STOPPED) {
			e->current = idx;
			*status = res.status;
			if (!q->fn)
				iac_buf_put(&r->body, res.body, res.len);
			rc = 0;
			goto done;
		}
		if (r->overflow) {
			iac_err_set("etcd at '%s' sent more than %u bytes for '%s'", e->endpoints[idx],
				    STREAM_MAX, q->path);
			goto done;
		}
		if (res.sent) {
			rc = sent_and_failed(e, idx, q, &res);
			goto done;
		}
		if (tried)
			iac_buf_puts(&why, "; ");
		if (e->n_endpoints > 1)
			iac_buf_printf(&why, "'%s': ", e->endpoints[idx]);
		char *w = iac_xfer_words(&res, connect_timeout_ms(q->timeout_ms));
		iac_buf_puts(&why, w);
		free(w);
	}
	if (e->n_endpoints == 1)
		iac_err_set("cannot reach etcd at '%s': %s", e->endpoints[0], iac_buf_cstr(&why));
	else
		iac_err_set("cannot reach etcd at any endpoint: %s", iac_buf_cstr(&why));
done:
	iac_xfer_res_free(&res);
	iac_buf_free(&why);
	return rc;
}

static int request(json_t **out, iac_etcd *e, const char *path, const json_t *body, double timeout_ms,
		   stream_fn fn, void *ud, int may_reauth);

/* A non-200 answer. An expired token is renewed once and the request
 * repeated; anything else becomes an error. Consumes doc. */
static int refused(json_t **out, iac_etcd *e, const etcd_req *q, json_t *doc, long status)
{
	const char *msg = iac_json_str(doc, "message");
	int rc;

	if (!msg)
		msg = iac_json_str(doc, "error");
	int64_t code = get_i64(doc, "code");
	if (q->may_reauth && e->user && msg && strstr(msg, "invalid auth token")) {
		json_decref(doc);
		free(e->token);
		e->token = NULL;
		if (authenticate(e) != 0)
			return -1;
		return request(out, e, q->path, q->body, q->timeout_ms, q->fn, q->ud, 0);
	}
	if (msg && *msg)
		iac_err_set("etcd at '%s' refused '%s': %s (HTTP %ld)", iac_etcd_endpoint(e), q->path, msg, status);
	else
		iac_err_set("'%s' answered '%s' with HTTP %ld and no etcd error; is it an etcd v3 endpoint?",
			    iac_etcd_endpoint(e), q->path, status);
	rc = code == 5 ? IAC_ENOTFOUND : -1; /* gRPC NotFound */
	json_decref(doc);
	return rc;
}

/* The answer of a transfer that completed. */
static int read_answer(json_t **out, iac_etcd *e, const etcd_req *q, const response *r, long status)
{
	json_error_t jerr;
	json_t *doc;

	if (q->fn && (status == 200 || r->stopped))
		return 0; /* the handler saw the objects, errors included */
	doc = r->body.len ? json_loadb(r->body.ptr, r->body.len, 0, &jerr) : json_object();
	if (status != 200)
		return refused(out, e, q, doc, status);
	if (!doc)
		return iac_err_set("etcd at '%s' sent invalid JSON for '%s': %s", iac_etcd_endpoint(e), q->path,
				   jerr.text);
	*out = doc;
	return 0;
}

/* POST /v3/<path>. timeout_ms < 0: no overall deadline (streams). With a
 * stream handler, *out is NULL and the handler sees the objects. */
static int request(json_t **out, iac_etcd *e, const char *path, const json_t *body, double timeout_ms,
		   stream_fn fn, void *ud, int may_reauth)
{
	const etcd_req q = { path, body, timeout_ms, fn, ud, may_reauth };
	char *payload = json_dumps(body, JSON_COMPACT);
	response r = { IAC_BUF_INIT, fn, ud, 0, 0 };
	long status = 0;
	int rc;

	if (out)
		*out = NULL;
	rc = send_request(&status, e, &q, payload, &r);
	if (rc == 0)
		rc = read_answer(out, e, &q, &r, status);
	iac_buf_free(&r.body);
	free(payload);
	return rc;
}

static int authenticate(iac_etcd *e)
{
	json_t *body = json_pack("{s:s,s:s}", "name", e->user, "password", e->password), *resp = NULL;
	int rc = request(&resp, e, "auth/authenticate", body, e->timeout_ms, NULL, NULL, 0);
	json_decref(body);
	if (rc < 0) {
		iac_err_prefix("cannot log in to etcd as '%s'", e->user);
		return rc;
	}
	const char *token = iac_json_str(resp, "token");
	if (!token) {
		json_decref(resp);
		return iac_err_set("etcd at '%s' gave no token for user '%s'", iac_etcd_endpoint(e), e->user);
	}
	free(e->token);
	e->token = iac_xstrdup(token);
	json_decref(resp);
	return 0;
}

int iac_etcd_set_auth(iac_etcd *e, const char *user, const char *password)
{
	free(e->user);
	free(e->password);
	free(e->token);
	e->token = NULL;
	e->user = iac_xstrdup(user);
	e->password = iac_xstrdup(password);
	iac_redact_add(password);
	return authenticate(e);
}

int iac_etcd_call(json_t **out, iac_etcd *e, const char *path, const json_t *body)
{
	return request(out, e, path, body, e->timeout_ms, NULL, NULL, 1);
}

static int call(json_t **out, iac_etcd *e, const char *path, json_t *body)
{
	int rc = request(out, e, path, body, e->timeout_ms, NULL, NULL, 1);
	json_decref(body);
	return rc;
}

/* --- key-value ----------------------------------------------------------- */

static json_t *put_body(const char *key, const void *value, size_t len, int64_t lease)
{
	json_t *b = json_pack("{s:o,s:o}", "key", b64s(key), "value", b64(value, len));
	if (lease)
		json_object_set_new(b, "lease", json_integer((json_int_t)lease));
	return b;
}

int iac_etcd_put_rev(int64_t *out_revision, iac_etcd *e, const char *key, const void *value,
		     size_t len, int64_t lease)
{
	json_t *resp;
	int rc = call(&resp, e, "kv/put", put_body(key, value, len, lease));
	if (rc < 0) {
		if (rc == IAC_ENOTFOUND)
			iac_err_prefix("cannot put '%s' with lease %" PRId64, key, lease);
		else
			iac_err_prefix("cannot put '%s'", key);
		return rc;
	}
	if (out_revision)
		*out_revision = get_i64(json_object_get(resp, "header"), "revision");
	json_decref(resp);
	return 0;
}

int iac_etcd_put(iac_etcd *e, const char *key, const void *value, size_t len, int64_t lease)
{
	return iac_etcd_put_rev(NULL, e, key, value, len, lease);
}

int iac_etcd_value_sha256(char hex[65], const char *endpoints, const char *key)
{
	iac_etcd *e = NULL;
	iac_etcd_kv kv = { 0 };
	int rc = iac_etcd_open(&e, endpoints, 5000);
	if (rc == 0)
		rc = iac_etcd_get(&kv, e, key);
	iac_etcd_close(e);
	if (rc == 0)
		iac_sha256_hex(hex, kv.value, kv.value_len);
	iac_etcd_kv_free(&kv);
	return rc;
}

int iac_etcd_get(iac_etcd_kv *out, iac_etcd *e, const char *key)
{
	json_t *resp, *kvs;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = call(&resp, e, "kv/range", json_pack("{s:o}", "key", b64s(key)));
	if (rc < 0)
		return rc;
	kvs = json_object_get(resp, "kvs");
	if (json_array_size(kvs) == 0) {
		json_decref(resp);
		iac_err_set("etcd key '%s' not found", key);
		return IAC_ENOTFOUND;
	}
	rc = kv_from_json(out, json_array_get(kvs, 0));
	json_decref(resp);
	return rc;
}

/* The keys and values of a kv/range answer. */
static int range_answer(iac_etcd_kv **out, size_t *out_n, int64_t *out_revision, const json_t *resp)
{
	json_t *kvs = json_object_get(resp, "kvs");
	size_t n = json_array_size(kvs);
	iac_etcd_kv *list = iac_xcalloc(n ? n : 1, sizeof(*list));

	*out = NULL;
	*out_n = 0;
	for (size_t i = 0; i < n; i++) {
		if (kv_from_json(&list[i], json_array_get(kvs, i)) < 0) {
			iac_etcd_kvs_free(list, i);
			return -1;
		}
	}
	if (out_revision)
		*out_revision = get_i64(json_object_get(resp, "header"), "revision");
	*out = list;
	*out_n = n;
	return 0;
}

int iac_etcd_range(iac_etcd_kv **out, size_t *out_n, int64_t *out_revision, iac_etcd *e, const char *prefix)
{
	json_t *resp;
	int rc;

	*out = NULL;
	*out_n = 0;
	rc = call(&resp, e, "kv/range",
		  json_pack("{s:o,s:o}", "key", *prefix ? b64s(prefix) : b64("\0", 1), "range_end", prefix_end(prefix)));
	if (rc < 0)
		return rc;
	rc = range_answer(out, out_n, out_revision, resp);
	json_decref(resp);
	return rc;
}

int iac_etcd_delete(int64_t *out_deleted, iac_etcd *e, const char *key, int prefix)
{
	json_t *resp, *body = json_pack("{s:o}", "key", prefix && !*key ? b64("\0", 1) : b64s(key));
	int rc;

	if (prefix)
		json_object_set_new(body, "range_end", prefix_end(key));
	rc = call(&resp, e, "kv/deleterange", body);
	if (rc < 0) {
		iac_err_prefix("cannot delete '%s'", key);
		return rc;
	}
	if (out_deleted)
		*out_deleted = get_i64(resp, "deleted");
	json_decref(resp);
	return 0;
}

/* What a compare-and-swap txn answered: 1 when the compare held (*rev: the
 * revision of the write), 0 when not (*rev: the key's mod_revision now, read
 * by the txn's failure branch; 0 when the key is gone). */
static int txn_answer(int64_t *rev, const json_t *resp)
{
	if (json_is_true(json_object_get(resp, "succeeded"))) {
		*rev = get_i64(json_object_get(resp, "header"), "revision");
		return 1;
	}
	/* Failed compare: "succeeded" is omitted; say what is there instead. */
	json_t *responses = json_object_get(resp, "responses");
	json_t *kvs = json_object_get(json_object_get(json_array_get(responses, 0), "response_range"), "kvs");
	*rev = json_array_size(kvs) ? get_i64(json_array_get(kvs, 0), "mod_revision") : 0;
	return 0;
}

/* A txn comparing key's mod_revision, then `op` on success and a read of the
 * key on failure (to report what is there now). */
static int cas_txn(int64_t *out_revision, iac_etcd *e, const char *key, int64_t expect, json_t *op)
{
	json_t *compare, *body, *resp;
	int rc;

	if (out_revision)
		*out_revision = 0;
	/* "The key does not exist" is create_revision == 0; otherwise compare
	 * mod_revision. A zero target is omitted by proto3 JSON, so send it as
	 * an explicit "0" string, which the gateway accepts. */
	if (expect == 0)
		compare = json_pack("{s:s,s:s,s:o,s:s}", "result", "EQUAL", "target", "CREATE",
				    "key", b64s(key), "create_revision", "0");
	else
		compare = json_pack("{s:s,s:s,s:o,s:I}", "result", "EQUAL", "target", "MOD",
				    "key", b64s(key), "mod_revision", (json_int_t)expect);
	body = json_pack("{s:[o],s:[o],s:[{s:{s:o}}]}", "compare", compare, "success", op,
			 "failure", "request_range", "key", b64s(key));
	rc = call(&resp, e, "kv/txn", body);
	if (rc < 0)
		return rc;
	int64_t now;
	int held = txn_answer(&now, resp);
	json_decref(resp);
	if (out_revision)
		*out_revision = now;
	if (held)
		return 0;
	if (expect == 0)
		iac_err_set("etcd key '%s' already exists (revision %" PRId64 ")", key, now);
	else if (now == 0)
		iac_err_set("etcd key '%s' changed underneath us: expected revision %" PRId64 ", it no longer exists",
			    key, expect);
	else
		iac_err_set("etcd key '%s' changed underneath us: expected revision %" PRId64 ", found %" PRId64,
			    key, expect, now);
	return IAC_ECONFLICT;
}

int iac_etcd_cas(int64_t *out_revision, iac_etcd *e, const char *key, int64_t expect_mod_revision,
		 const void *value, size_t len, int64_t lease)
{
	json_t *op = json_pack("{s:o}", "request_put", put_body(key, value, len, lease));
	return cas_txn(out_revision, e, key, expect_mod_revision, op);
}

int iac_etcd_cas_delete(iac_etcd *e, const char *key, int64_t expect_mod_revision)
{
	json_t *op = json_pack("{s:{s:o}}", "request_delete_range", "key", b64s(key));
	return cas_txn(NULL, e, key, expect_mod_revision, op);
}

/* --- general transactions and paged reads --------------------------------- */

json_t *iac_etcd_op_put(const char *key, const void *value, size_t len, int64_t lease)
{
	return json_pack("{s:o}", "request_put", put_body(key, value, len, lease));
}

json_t *iac_etcd_op_delete(const char *key, int prefix)
{
	json_t *d = json_pack("{s:o}", "key", b64s(key));
	if (prefix)
		json_object_set_new(d, "range_end", prefix_end(key));
	return json_pack("{s:o}", "request_delete_range", d);
}

json_t *iac_etcd_op_delete_range(const char *key, const char *end)
{
	return json_pack("{s:{s:o,s:o}}", "request_delete_range", "key", b64s(key), "range_end", b64s(end));
}

json_t *iac_etcd_cmp(const char *key, const char *target, int64_t value)
{
	/* CREATE/MOD/VERSION compare against revisions; a zero is sent as the
	 * string "0" (proto3 JSON omits zero integers, which would compare
	 * against nothing) */
	const char *field = !strcmp(target, "CREATE") ? "create_revision"
			    : !strcmp(target, "MOD")  ? "mod_revision" : "version";
	json_t *c = json_pack("{s:s,s:s,s:o}", "result", "EQUAL", "target", target, "key", b64s(key));
	json_object_set_new(c, field, value ? json_integer((json_int_t)value) : json_string("0"));
	return c;
}

int iac_etcd_txn(int *out_succeeded, int64_t *out_revision, iac_etcd *e, json_t *compare, json_t *success)
{
	json_t *resp;
	int rc = call(&resp, e, "kv/txn", json_pack("{s:o,s:o}", "compare", compare, "success", success));

	*out_succeeded = 0;
	if (rc < 0)
		return rc;
	*out_succeeded = json_is_true(json_object_get(resp, "succeeded"));
	if (out_revision)
		*out_revision = get_i64(json_object_get(resp, "header"), "revision");
	json_decref(resp);
	return 0;
}

int iac_etcd_range_page(iac_etcd_kv **out, size_t *out_n, int64_t *io_revision, int *out_more, iac_etcd *e,
			const char *from, const char *prefix, long limit)
{
	json_t *resp, *body;
	int rc;

	*out = NULL;
	*out_n = 0;
	*out_more = 0;
	body = json_pack("{s:o,s:o,s:I}", "key", b64s(from), "range_end", prefix_end(prefix), "limit",
			 (json_int_t)limit);
	if (*io_revision > 0)
		json_object_set_new(body, "revision", json_integer((json_int_t)*io_revision));
	rc = call(&resp, e, "kv/range", body);
	if (rc < 0)
		return rc;
	rc = range_answer(out, out_n, io_revision, resp);
	*out_more = json_is_true(json_object_get(resp, "more"));
	json_decref(resp);
	return rc;
}

/* --- answers without a server ------------------------------------------- */

static json_t *decode_answer(const char *body, size_t len, const char *path)
{
	json_error_t jerr;
	json_t *doc = json_loadb(body ? body : "", body ? len : 0, 0, &jerr);
	if (!doc)
		iac_err_set("etcd sent invalid JSON for '%s': %s", path, jerr.text);
	return doc;
}

int iac_etcd_parse_range(iac_etcd_kv **out, size_t *out_n, int64_t *out_revision, const char *body, size_t len)
{
	json_t *resp = decode_answer(body, len, "kv/range");
	int rc;

	*out = NULL;
	*out_n = 0;
	if (out_revision)
		*out_revision = 0;
	if (!resp)
		return -1;
	rc = range_answer(out, out_n, out_revision, resp);
	json_decref(resp);
	return rc;
}

int iac_etcd_parse_txn(int64_t *out_revision, const char *body, size_t len)
{
	json_t *resp = decode_answer(body, len, "kv/txn");
	int64_t rev;

	if (out_revision)
		*out_revision = 0;
	if (!resp)
		return -1;
	int held = txn_answer(&rev, resp);
	json_decref(resp);
	if (out_revision)
		*out_revision = rev;
	if (!held) {
		iac_err_set("etcd txn compare failed: the key is at revision %" PRId64 " now", rev);
		return IAC_ECONFLICT;
	}
	return 0;
}

/* --- leases -------------------------------------------------------------- */

int iac_etcd_lease_grant(int64_t *out_id, iac_etcd *e, int64_t ttl_s)
{
	json_t *resp;
	int rc = call(&resp, e, "lease/grant", json_pack("{s:I}", "TTL", (json_int_t)ttl_s));
	*out_id = 0;
	if (rc < 0) {
		iac_err_prefix("cannot grant a %" PRId64 " s lease", ttl_s);
		return rc;
	}
	const char *err = iac_json_str(resp, "error");
	if (err && *err) {
		iac_err_set("etcd at '%s' refused a %" PRId64 " s lease: %s", iac_etcd_endpoint(e), ttl_s, err);
		json_decref(resp);
		return -1;
	}
	*out_id = get_i64(resp, "ID");
	json_decref(resp);
	return 0;
}

typedef struct {
	json_t *result;
	json_t *error;
} first_result;

static int take_first(const json_t *obj, void *ud)
{
	first_result *f = ud;
	if (json_object_get(obj, "error")) {
		f->error = json_incref((json_t *)obj);
		return 1;
	}
	f->result = json_incref(json_object_get(obj, "result"));
	return f->result != NULL;
}

/* Stream errors come as {"error": {"grpc_code", "message"...}}, or as the
 * plain error object {"error": "...", "code", "message"} before streaming. */
static int stream_error(iac_etcd *e, const char *path, json_t *obj)
{
	json_t *inner = json_object_get(obj, "error");
	const json_t *err = json_is_object(inner) ? inner : obj;
	const char *msg = iac_json_str(err, "message");
	int64_t code = get_i64(err, "grpc_code");
	if (!msg)
		msg = json_string_value(inner);
	if (!code)
		code = get_i64(err, "code");
	iac_err_set("etcd at '%s' refused '%s': %s", iac_etcd_endpoint(e), path, msg ? msg : "unknown error");
	json_decref(obj);
	return code == 5 ? IAC_ENOTFOUND : -1;
}

int iac_etcd_lease_keepalive(int64_t *out_ttl, iac_etcd *e, int64_t id)
{
	first_result f = { NULL, NULL };
	json_t *body = json_pack("{s:I}", "ID", (json_int_t)id);
	int rc = request(NULL, e, "lease/keepalive", body, e->timeout_ms, take_first, &f, 1);
	json_decref(body);
	if (out_ttl)
		*out_ttl = 0;
	if (rc < 0)
		goto done;
	if (f.error) {
		rc = stream_error(e, "lease/keepalive", f.error);
		f.error = NULL;
		goto done;
	}
	int64_t ttl = get_i64(f.result, "TTL");
	if (ttl <= 0) {
		/* An expired lease answers with TTL 0, i.e. no TTL at all. */
		iac_err_set("etcd lease %" PRId64 " has expired", id);
		rc = IAC_ENOTFOUND;
		goto done;
	}
	if (out_ttl)
		*out_ttl = ttl;
done:
	json_decref(f.result);
	json_decref(f.error);
	return rc;
}

int iac_etcd_lease_ttl(int64_t *out_ttl, iac_etcd *e, int64_t id)
{
	json_t *resp;
	int rc = call(&resp, e, "lease/timetolive", json_pack("{s:I}", "ID", (json_int_t)id));
	*out_ttl = 0;
	if (rc < 0)
		return rc;
	int64_t ttl = json_object_get(resp, "TTL") ? get_i64(resp, "TTL") : 0;
	json_decref(resp);
	if (ttl <= 0) {
		iac_err_set("etcd lease %" PRId64 " has expired", id);
		return IAC_ENOTFOUND;
	}
	*out_ttl = ttl;
	return 0;
}

int iac_etcd_lease_revoke(iac_etcd *e, int64_t id)
{
	json_t *resp;
	int rc = call(&resp, e, "lease/revoke", json_pack("{s:I}", "ID", (json_int_t)id));
	if (rc < 0) {
		iac_err_prefix("cannot revoke lease %" PRId64, id);
		return rc;
	}
	json_decref(resp);
	return 0;
}

/* --- watch --------------------------------------------------------------- */

typedef struct {
	int64_t revision;
	int created;
	json_t *error;
} watch_state;

static int on_watch(const json_t *obj, void *ud)
{
	watch_state *w = ud;
	json_t *res = json_object_get(obj, "result"), *events, *ev;
	size_t i;

	if (json_object_get(obj, "error")) {
		w->error = json_incref((json_t *)obj);
		return 1;
	}
	if (json_is_true(json_object_get(res, "created")))
		w->created = 1;
	if (json_is_true(json_object_get(res, "canceled"))) {
		const char *why = iac_json_str(res, "cancel_reason");
		w->error = json_pack("{s:s}", "message", why && *why ? why : "watch canceled (compacted revision?)");
		return 1;
	}
	events = json_object_get(res, "events");
	json_array_foreach(events, i, ev) {
		int64_t rev = get_i64(json_object_get(ev, "kv"), "mod_revision");
		if (rev > w->revision)
			w->revision = rev;
	}
	return json_array_size(events) > 0;
}

int iac_etcd_wait(int64_t *out_revision, iac_etcd *e, const char *key, int prefix, int64_t after,
		  double wait_ms)
{
	watch_state w = { 0, 0, NULL };
	json_t *create = json_pack("{s:o}", "key", prefix && !*key ? b64("\0", 1) : b64s(key)), *body;
	int rc;

	if (out_revision)
		*out_revision = 0;
	if (prefix)
		json_object_set_new(create, "range_end", prefix_end(key));
	if (after > 0)
		json_object_set_new(create, "start_revision", json_integer((json_int_t)(after + 1)));
	body = json_pack("{s:o}", "create_request", create);
	rc = request(NULL, e, "watch", body, wait_ms < 0 ? -1 : (wait_ms < 1 ? 1 : wait_ms), on_watch, &w, 1);
	json_decref(body);
	if (rc == IAC_ETIMEOUT) {
		iac_err_set("no change to etcd key '%s' within %.0f ms", key, wait_ms);
		return IAC_ETIMEOUT;
	}
	if (rc < 0)
		return rc;
	if (w.error)
		return stream_error(e, "watch", w.error);
	if (!w.revision)
		return iac_err_set("etcd at '%s' ended the watch on '%s' without an event", iac_etcd_endpoint(e), key);
	if (out_revision)
		*out_revision = w.revision;
	return 0;
}

/* --- locks --------------------------------------------------------------- */

/* The holder ahead of us: the newest key under prefix created before
 * my_rev (etcd's own mutex waits on exactly that key). */
static int lock_predecessor(iac_etcd_kv *out, int64_t *out_header_rev, iac_etcd *e, const char *prefix,
			    int64_t my_rev)
{
	json_t *body, *resp, *kvs;
	int rc;

	memset(out, 0, sizeof(*out));
	body = json_pack("{s:o,s:o,s:I,s:s,s:s,s:I}", "key", b64s(prefix), "range_end", prefix_end(prefix),
			 "limit", (json_int_t)1, "sort_order", "DESCEND", "sort_target", "CREATE",
			 "max_create_revision", (json_int_t)(my_rev - 1));
	rc = call(&resp, e, "kv/range", body);
	if (rc < 0)
		return rc;
	*out_header_rev = get_i64(json_object_get(resp, "header"), "revision");
	kvs = json_object_get(resp, "kvs");
	rc = json_array_size(kvs) ? kv_from_json(out, json_array_get(kvs, 0)) : IAC_ENOTFOUND;
	json_decref(resp);
	return rc;
}

/* The current owner (oldest key) for the refusal message. */
static void lock_owner(iac_buf *b, iac_etcd *e, const char *prefix, const iac_etcd_kv *fallback)
{
	json_t *body = json_pack("{s:o,s:o,s:I,s:s,s:s}", "key", b64s(prefix), "range_end", prefix_end(prefix),
				 "limit", (json_int_t)1, "sort_order", "ASCEND", "sort_target", "CREATE"), *resp;
	iac_etcd_kv owner;
	const iac_etcd_kv *kv = fallback;
	int have = 0;

	if (call(&resp, e, "kv/range", body) == 0) {
		json_t *kvs = json_object_get(resp, "kvs");
		if (json_array_size(kvs) && kv_from_json(&owner, json_array_get(kvs, 0)) == 0) {
			kv = &owner;
			have = 1;
		}
		json_decref(resp);
	}
	iac_buf_printf(b, "'%s'", kv->key);
	if (kv->value_len)
		iac_buf_printf(b, " (%s)", kv->value);
	iac_buf_printf(b, ", lease %" PRIx64 ", since revision %" PRId64, (uint64_t)kv->lease, kv->create_revision);
	if (have)
		iac_etcd_kv_free(&owner);
}

/* One iac_etcd_lock() call: our waiter key under prefix and where it stands
 * in the queue. */
typedef struct {
	iac_etcd *e;
	const char *name;
	char *prefix;       /* NAME/ */
	char *key;          /* NAME/<lease in hex>: ours */
	int64_t lease;
	double wait_ms;     /* < 0: wait forever */
	double deadline;
	int64_t my_rev;     /* create revision of our key: our place in line */
	int created;        /* this call created the key, so it removes it on failure */
} lock_attempt;

/* Create our waiter key unless this lease already has one (re-entry),
 * exactly like etcd's concurrency.Mutex. */
static int lock_enqueue(lock_attempt *l, const char *info)
{
	json_t *body, *resp = NULL;
	int rc;

	body = json_pack("{s:[{s:s,s:s,s:o,s:s}],s:[{s:o}],s:[{s:{s:o}}]}",
			 "compare", "result", "EQUAL", "target", "CREATE", "key", b64s(l->key), "create_revision", "0",
			 "success", "request_put",
			 put_body(l->key, info ? info : "", info ? strlen(info) : 0, l->lease),
			 "failure", "request_range", "key", b64s(l->key));
	rc = call(&resp, l->e, "kv/txn", body);
	if (rc < 0) {
		iac_err_prefix("cannot lock '%s'", l->name);
		return rc;
	}
	if (json_is_true(json_object_get(resp, "succeeded"))) {
		l->my_rev = get_i64(json_object_get(resp, "header"), "revision");
		l->created = 1;
	} else {
		json_t *kvs = json_object_get(json_object_get(json_array_get(json_object_get(resp, "responses"), 0),
							      "response_range"), "kvs");
		l->my_rev = get_i64(json_array_get(kvs, 0), "create_revision");
	}
	json_decref(resp);
	return 0;
}

/* Nobody ahead: ours, provided our key survived (the lease is alive). */
static int lock_check_mine(lock_attempt *l)
{
	iac_etcd_kv mine;
	int rc = iac_etcd_get(&mine, l->e, l->key);

	if (rc == IAC_ENOTFOUND)
		return iac_err_set("lock '%s' lost while waiting: lease %" PRIx64 " expired", l->name,
				   (uint64_t)l->lease);
	if (rc < 0)
		return rc;
	iac_etcd_kv_free(&mine);
	return 0;
}

/* Out of time with pred still ahead of us. Consumes pred. */
static int lock_refuse(lock_attempt *l, iac_etcd_kv *pred)
{
	iac_buf who = IAC_BUF_INIT;

	lock_owner(&who, l->e, l->prefix, pred);
	iac_etcd_kv_free(pred);
	/* Leave no waiter behind: it would queue up everyone after us. */
	if (l->created)
		iac_etcd_delete(NULL, l->e, l->key, 0);
	iac_err_set("lock '%s' is held by %s; try again later, or release it with its key",
		    l->name, iac_buf_cstr(&who));
	iac_buf_free(&who);
	return IAC_ELOCKED;
}

/* Wait until every key created before ours is gone. 0: the lock is ours. */
static int lock_wait_turn(lock_attempt *l)
{
	for (;;) {
		iac_etcd_kv pred;
		int64_t header_rev = 0;
		int rc = lock_predecessor(&pred, &header_rev, l->e, l->prefix, l->my_rev);
		if (rc == IAC_ENOTFOUND)
			return lock_check_mine(l);
		if (rc < 0)
			return rc;
		double left = l->wait_ms < 0 ? -1 : l->deadline - iac_now_ms();
		if (l->wait_ms >= 0 && left <= 0)
			return lock_refuse(l, &pred);
		/* Sleep until the key ahead of us changes (its deletion), bounded so
		 * a lost event or an expired own lease is noticed. */
		double slice = left < 0 || left > 2000 ? 2000 : left;
		rc = iac_etcd_wait(NULL, l->e, pred.key, 0, header_rev, slice);
		iac_etcd_kv_free(&pred);
		if (rc < 0 && rc != IAC_ETIMEOUT)
			return rc;
	}
}

int iac_etcd_lock(char **out_key, iac_etcd *e, const char *name, int64_t lease, const char *info,
		  double wait_ms)
{
	lock_attempt l = {
		.e = e, .name = name, .lease = lease, .wait_ms = wait_ms,
		.deadline = wait_ms >= 0 ? iac_now_ms() + wait_ms : 0,
	};
	int rc;

	l.prefix = iac_xasprintf("%s/", name);
	l.key = iac_xasprintf("%s%" PRIx64, l.prefix, (uint64_t)lease);
	*out_key = NULL;
	if (!lease)
		rc = iac_err_set("lock '%s' needs a lease, so that it goes away when its holder dies", name);
	else if ((rc = lock_enqueue(&l, info)) == 0)
		rc = lock_wait_turn(&l);
	if (rc == 0) {
		*out_key = l.key;
		l.key = NULL;
	}
	/* A refusal already removed our key; other failures remove it here. */
	if (rc < 0 && rc != IAC_ELOCKED && l.created && l.key)
		iac_etcd_delete(NULL, e, l.key, 0);
	free(l.prefix);
	free(l.key);
	return rc;
}

int iac_etcd_unlock(iac_etcd *e, const char *key)
{
	json_t *resp;
	int rc = call(&resp, e, "lock/unlock", json_pack("{s:o}", "key", b64s(key)));
	if (rc < 0) {
		iac_err_prefix("cannot unlock '%s'", key);
		return rc;
	}
	json_decref(resp);
	return 0;
}

/* --- lease keeper ---------------------------------------------------------- */

struct iac_etcd_keeper {
	iac_etcd *e;            /* the thread's own handle */
	int64_t lease;
	double interval_ms;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int stop;
	int status;             /* 0, -1 (last renewal failed), IAC_ENOTFOUND */
	char *msg;
};

static iac_etcd *clone_handle(const iac_etcd *src)
{
	iac_etcd *e = iac_xcalloc(1, sizeof(*e));
	e->timeout_ms = src->timeout_ms;
	e->n_endpoints = src->n_endpoints;
	e->current = src->current;
	e->endpoints = iac_xcalloc(src->n_endpoints, sizeof(char *));
	for (size_t i = 0; i < src->n_endpoints; i++)
		e->endpoints[i] = iac_xstrdup(src->endpoints[i]);
#define DUP(f) e->f = src->f ? iac_xstrdup(src->f) : NULL
	DUP(user);
	DUP(password);
	DUP(token);
	DUP(ca_file);
	DUP(cert_file);
	DUP(key_file);
#undef DUP
	if (iac_xfer_new(&e->x) < 0) {
		iac_etcd_close(e);
		return NULL;
	}
	return e;
}

static void *keeper_main(void *arg)
{
	iac_etcd_keeper *k = arg;
	pthread_mutex_lock(&k->mu);
	while (!k->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		long long ns = (long long)until.tv_nsec + (long long)(k->interval_ms * 1e6);
		until.tv_sec += (time_t)(ns / 1000000000LL);
		until.tv_nsec = (long)(ns % 1000000000LL);
		pthread_cond_timedwait(&k->cond, &k->mu, &until);
		if (k->stop)
			break;
		pthread_mutex_unlock(&k->mu);
		int rc = iac_etcd_lease_keepalive(NULL, k->e, k->lease);
		char *msg = rc < 0 ? iac_xstrdup(iac_err_last()) : NULL;
		pthread_mutex_lock(&k->mu);
		k->status = rc < 0 ? (rc == IAC_ENOTFOUND ? IAC_ENOTFOUND : -1) : 0;
		free(k->msg);
		k->msg = msg;
		if (rc == IAC_ENOTFOUND)
			break;
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

int iac_etcd_keeper_start(iac_etcd_keeper **out, const iac_etcd *e, int64_t lease, double interval_ms)
{
	iac_etcd_keeper *k;

	*out = NULL;
	k = iac_xcalloc(1, sizeof(*k));
	k->e = clone_handle(e);
	if (!k->e) {
		free(k);
		return iac_err_set("cannot initialise libcurl");
	}
	k->lease = lease;
	k->interval_ms = interval_ms > 0 ? interval_ms : 1000;
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cond, NULL);
	if (pthread_create(&k->thread, NULL, keeper_main, k) != 0) {
		pthread_mutex_destroy(&k->mu);
		pthread_cond_destroy(&k->cond);
		iac_etcd_close(k->e);
		free(k);
		return iac_err_sys("cannot start the keep-alive thread for lease %" PRId64, lease);
	}
	*out = k;
	return 0;
}

int iac_etcd_keeper_status(char **out_msg, iac_etcd_keeper *k)
{
	pthread_mutex_lock(&k->mu);
	int status = k->status;
	if (out_msg)
		*out_msg = status && k->msg ? iac_xstrdup(k->msg) : NULL;
	pthread_mutex_unlock(&k->mu);
	return status;
}

void iac_etcd_keeper_stop(iac_etcd_keeper *k, int revoke)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->mu);
	k->stop = 1;
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->mu);
	pthread_join(k->thread, NULL);
	if (revoke && k->status != IAC_ENOTFOUND && iac_etcd_lease_revoke(k->e, k->lease) < 0)
		iac_log_warn("%s", iac_err_last());
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cond);
	iac_etcd_close(k->e);
	free(k->msg);
	free(k);
}
