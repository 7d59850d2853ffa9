/* etcd: an etcd v3 client over the JSON gateway (POST /v3/...). It carries
 * team state, its journal and the lock (iac/state/etcd_store.c) and delivers
 * feature flags to a key that applications watch.
 *
 * - A handle holds one libcurl easy handle (connections are reused) and the
 *   endpoint list "http://10.0.0.1:2379,http://10.0.0.2:2379". Endpoints are
 *   tried in order when one cannot be reached; the one that answered goes
 *   first next time. A request that reached a server is never re-sent
 *   elsewhere (a compare-and-swap must not run twice).
 * - Every request has a deadline (timeout_ms of iac_etcd_open, or the wait of
 *   the call). Errors name the endpoint:
 *     cannot reach etcd at 'http://127.0.0.1:2379': connection refused
 * - A handle is used by one thread at a time; open one per thread (a lease
 *   keep-alive thread opens its own).
 * - Keys are C strings; values are bytes (a NUL is appended when returned).
 *   Results (iac_etcd_kv, char **) belong to the caller: free them with
 *   iac_etcd_kv_free / iac_etcd_kvs_free / free.
 * - Return codes: 0, IAC_ERR (message set), IAC_ENOTFOUND (no such key or
 *   lease), IAC_ECONFLICT (a compare failed), IAC_ELOCKED (lock held by
 *   another), IAC_ETIMEOUT (deadline passed).
 */
#ifndef IAC_ETCD_ETCD_H
#define IAC_ETCD_ETCD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct iac_etcd iac_etcd;

typedef struct {
	char *key;
	char *value;            /* value_len bytes plus a NUL */
	size_t value_len;
	int64_t create_revision;
	int64_t mod_revision;
	int64_t version;        /* number of puts since creation */
	int64_t lease;          /* 0: none */
} iac_etcd_kv;

/* endpoints: comma-separated base URLs ("http://127.0.0.1:2379"); a bare
 * "host:port" gets "http://". timeout_ms <= 0 means 5000. Nothing is
 * contacted until the first request. */
int iac_etcd_open(iac_etcd **out, const char *endpoints, double timeout_ms);
void iac_etcd_close(iac_etcd *e);

/* Authenticate (etcd auth enabled): the token is sent with every request and
 * refreshed when etcd says it expired. The password is registered as a
 * secret for redaction. */
int iac_etcd_set_auth(iac_etcd *e, const char *user, const char *password);
/* TLS for https:// endpoints (any argument may be NULL). */
int iac_etcd_set_tls(iac_etcd *e, const char *ca_file, const char *cert_file, const char *key_file);
/* The endpoint that answered last (or the first one). Borrowed. */
const char *iac_etcd_endpoint(const iac_etcd *e);

/* Raw gateway call: POST /v3/<path> with `body` (borrowed); *out is the
 * decoded answer (new reference). For what the functions below do not cover. */
int iac_etcd_call(json_t **out, iac_etcd *e, const char *path, const json_t *body);

/* Put key = value, attached to `lease` (0: none). *out_revision (may be
 * NULL) gets the store revision of the write. */
int iac_etcd_put(iac_etcd *e, const char *key, const void *value, size_t len, int64_t lease);
int iac_etcd_put_rev(int64_t *out_revision, iac_etcd *e, const char *key, const void *value,
		     size_t len, int64_t lease);

/* Get one key. IAC_ENOTFOUND when it does not exist. */
int iac_etcd_get(iac_etcd_kv *out, iac_etcd *e, const char *key);
/* The SHA-256 (hex) of key's value at endpoints, one short-lived client:
 * how a resource that publishes a document to etcd (a flag, a cache ring)
 * sees drift. 0, IAC_ENOTFOUND when the key is absent, IAC_ERR (message). */
int iac_etcd_value_sha256(char hex[65], const char *endpoints, const char *key);

/* All keys starting with prefix ("" = every key), sorted by key. *out_revision
 * (may be NULL) gets the store revision the answer reflects. */
int iac_etcd_range(iac_etcd_kv **out, size_t *out_n, int64_t *out_revision, iac_etcd *e, const char *prefix);

/* Delete key (prefix != 0: every key starting with it). *out_deleted (may be
 * NULL) gets the count; deleting nothing is not an error. */
int iac_etcd_delete(int64_t *out_deleted, iac_etcd *e, const char *key, int prefix);

/* Compare-and-swap: write only when the key's mod_revision is still
 * expect_mod_revision (0: the key must not exist). IAC_ECONFLICT otherwise,
 * with the current revision in the message and in *out_revision (may be NULL;
 * on success it gets the revision of the write). */
int iac_etcd_cas(int64_t *out_revision, iac_etcd *e, const char *key, int64_t expect_mod_revision,
		 const void *value, size_t len, int64_t lease);
/* Delete only when mod_revision is still expect_mod_revision. */
int iac_etcd_cas_delete(iac_etcd *e, const char *key, int64_t expect_mod_revision);

/* General transactions: `compare` is an array of iac_etcd_cmp() and
 * `success` an array of iac_etcd_op_*() (both stolen); all of success runs
 * atomically when every compare holds. *out_succeeded says which;
 * *out_revision (may be NULL) the store revision after it. */
json_t *iac_etcd_op_put(const char *key, const void *value, size_t len, int64_t lease);
/* Delete key, or (prefix != 0) every key under it. */
json_t *iac_etcd_op_delete(const char *key, int prefix);
/* Delete [key, end). */
json_t *iac_etcd_op_delete_range(const char *key, const char *end);
/* key's target ("CREATE", "MOD", "VERSION") equals value (CREATE 0: the
 * key does not exist). */
json_t *iac_etcd_cmp(const char *key, const char *target, int64_t value);
int iac_etcd_txn(int *out_succeeded, int64_t *out_revision, iac_etcd *e, json_t *compare, json_t *success);

/* One page of the keys under prefix from key `from` on (sorted by key), at
 * most limit of them, read at store revision *io_revision (0: now; set to
 * the revision read, so the next page sees the same moment). *out_more: more
 * keys follow the page; ask again from its last key (which then comes first
 * again: skip it). */
int iac_etcd_range_page(iac_etcd_kv **out, size_t *out_n, int64_t *io_revision, int *out_more, iac_etcd *e,
			const char *from, const char *prefix, long limit);

/* Leases: keys attached to a lease vanish when it expires. etcd may round a
 * short TTL up (its minimum is about 1.5 election timeouts). */
int iac_etcd_lease_grant(int64_t *out_id, iac_etcd *e, int64_t ttl_s);
/* One keep-alive; *out_ttl (may be NULL) gets the renewed TTL. IAC_ENOTFOUND
 * when the lease has already expired. */
int iac_etcd_lease_keepalive(int64_t *out_ttl, iac_etcd *e, int64_t id);
/* Remaining TTL in seconds; IAC_ENOTFOUND when expired or unknown. */
int iac_etcd_lease_ttl(int64_t *out_ttl, iac_etcd *e, int64_t id);
/* Revoke (keys attached go at once). IAC_ENOTFOUND when already gone. */
int iac_etcd_lease_revoke(iac_etcd *e, int64_t id);

/* Distributed lock `name`, held while `lease` lives. Same key layout and
 * ordering as etcd's lock service (/v3/lock/lock, `etcdctl lock`), so both
 * exclude each other: the holder is the oldest key under "name/"; ours is
 * "name/<lease in hex>" with `info` (who, what, when; may be NULL) as value
 * so that a refused locker can say who holds it.
 * wait_ms: 0 = try once, > 0 = wait that long, < 0 = wait forever. On success
 * *out_key is the lock key (caller frees; pass it to iac_etcd_unlock). When
 * held by another: IAC_ELOCKED, message naming the holder's key and info. */
int iac_etcd_lock(char **out_key, iac_etcd *e, const char *name, int64_t lease, const char *info,
		  double wait_ms);
/* Release (also a force-unlock when given another holder's key). */
int iac_etcd_unlock(iac_etcd *e, const char *key);

/* Wait until key (prefix != 0: any key under it) changes after revision
 * `after` (0: from now). *out_revision (may be NULL) gets the revision of the
 * change. IAC_ETIMEOUT when wait_ms passes first (wait_ms < 0: forever). */
int iac_etcd_wait(int64_t *out_revision, iac_etcd *e, const char *key, int prefix, int64_t after,
		  double wait_ms);

/* A background keep-alive for a lease (a lock's, a session's). The thread
 * has its own connection with e's endpoints, TLS files and credentials (only
 * plain copies cross threads) and renews every interval_ms (<= 0: 1000).
 * Transient failures are retried; once etcd says the lease is gone the
 * keeper stops and reports it. */
typedef struct iac_etcd_keeper iac_etcd_keeper;
int iac_etcd_keeper_start(iac_etcd_keeper **out, const iac_etcd *e, int64_t lease, double interval_ms);
/* 0 while renewals succeed, IAC_ENOTFOUND once the lease has expired, -1
 * after a failed renewal that may still recover; message in *out_msg (may be
 * NULL; caller frees) when not 0. */
int iac_etcd_keeper_status(char **out_msg, iac_etcd_keeper *k);
/* Stop (and with revoke != 0 revoke the lease, dropping its keys and locks
 * at once). NULL is fine. */
void iac_etcd_keeper_stop(iac_etcd_keeper *k, int revoke);

/* Answers read without a server (tests, fuzzing): what the calls above make
 * of a gateway answer's body (len bytes as received, no NUL needed). Not
 * JSON: -1 with a message.
 * A kv/range answer (iac_etcd_range): its kvs decoded, *out_revision (may
 * be NULL) the header's revision; a key or value that is not base64 is an
 * error. */
int iac_etcd_parse_range(iac_etcd_kv **out, size_t *out_n, int64_t *out_revision, const char *body,
			 size_t len);
/* A kv/txn answer of a compare-and-swap (iac_etcd_cas): 0 when the compare
 * held (*out_revision, may be NULL: the revision of the write), IAC_ECONFLICT
 * when not (*out_revision: the key's mod_revision now, 0 when it is gone). */
int iac_etcd_parse_txn(int64_t *out_revision, const char *body, size_t len);

void iac_etcd_kv_free(iac_etcd_kv *kv);
void iac_etcd_kvs_free(iac_etcd_kv *kvs, size_t n);

#endif
