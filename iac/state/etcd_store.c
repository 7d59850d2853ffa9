/* etcd_store: state, journal and lock in etcd (see etcd_store.h). */
#include "iac/state/etcd_store.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/core/args.h"
#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"

struct iac_etcdb {
	iac_store store;          /* first: iac_store* -> iac_etcdb* */
	iac_etcd *e;
	/* the state's journal writer and a periodic snapshot run on different
	 * threads; one libcurl handle serves one request at a time */
	pthread_mutex_t io;
	char *prefix;             /* without trailing '/' */
	char *label;              /* "etcd 'iac/prod'" */
	double lock_ttl_ms, retry_ms;
	int down;                 /* retries ran out once: one try each from then on */
	json_t *actor;

	/* what this handle last read or wrote */
	int64_t manifest_rev;     /* mod_revision of P/state/manifest, 0: none */
	char gen[64];             /* its GEN */
	iac_strlist stale_gens;   /* chunk generations no manifest names */

	/* the lock */
	int64_t lease;
	iac_etcd_keeper *keeper;
	char *lock_key;
	int64_t lock_rev;         /* create revision of lock_key: the fence */
	char lock_id[24];
};

static char *key_of(const iac_etcdb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *key_of(const iac_etcdb *b, const char *fmt, ...)
{
	iac_buf k = IAC_BUF_INIT;
	va_list ap;
	iac_buf_printf(&k, "%s/", b->prefix);
	va_start(ap, fmt);
	iac_buf_vprintf(&k, fmt, ap);
	va_end(ap);
	return k.ptr;
}

/* ---- retrying what got no answer --------------------------------------- */

/* An error that says the request got no answer, or that the cluster could
 * not serve it right now (an election, a member going away): worth another
 * try on the next endpoint. Anything that etcd decided is final. */
static int transient(int rc)
{
	const char *m = iac_err_last();
	if (rc == IAC_ETIMEOUT)
		return 1;
	if (rc != IAC_ERR || !m)
		return 0;
	/* a certificate or TLS problem stays one however often we ask */
	if (strstr(m, "SSL") || strstr(m, "certificate") || strstr(m, "TLS") || strstr(m, "alert"))
		return 0;
	static const char *const words[] = {
		"cannot reach etcd", "did not answer", "failed: ", "leader changed", "no leader",
		"request timed out", "timed out", "not capable", "too many requests", "HTTP 503", NULL,
	};
	for (int i = 0; words[i]; i++)
		if (strstr(m, words[i]))
			return 1;
	return 0;
}

int iac_etcdb_retry(iac_etcdb *b, int (*fn)(iac_etcdb *b, void *arg), void *arg)
{
	/* once the store was found unavailable, the writes that follow (the
	 * end of the apply, the final snapshot) each fail at once instead of
	 * waiting out the same outage again */
	double deadline = iac_now_ms() + (b->down ? 0 : b->retry_ms), pause = 100;
	for (;;) {
		int rc = fn(b, arg);
		if (rc == 0)
			b->down = 0;
		if (rc == 0 || !transient(rc) || iac_now_ms() + pause > deadline) {
			if (rc < 0 && transient(rc))
				b->down = 1;
			if (rc < 0 && transient(rc))
				iac_err_prefix("the state store %s is unavailable (no usable answer for %.0f s: "
					       "members down, or no majority of the cluster up); nothing was "
					       "half-written, and running the command again once etcd is back is "
					       "safe", b->label, b->retry_ms / 1000);
			return rc;
		}
		usleep((useconds_t)(pause * 1000));
		if (pause < 1000)
			pause *= 2;
	}
}

/* ---- fenced writes ------------------------------------------------------ */

typedef struct {
	json_t *compare, *success;
	int succeeded;
} txn_job;

static int txn_once(iac_etcdb *b, void *arg)
{
	txn_job *j = arg;
	/* the arrays are used again by a retry: hand out copies */
	return iac_etcd_txn(&j->succeeded, NULL, b->e, json_deep_copy(j->compare), json_deep_copy(j->success));
}

/* Whether this handle still has its lock key (after a failed compare). */
static int lost_lock(iac_etcdb *b)
{
	iac_etcd_kv kv;
	if (!b->lock_key)
		return 0;
	int rc = iac_etcd_get(&kv, b->e, b->lock_key);
	if (rc < 0)
		return rc == IAC_ENOTFOUND;
	int lost = kv.create_revision != b->lock_rev;
	iac_etcd_kv_free(&kv);
	return lost;
}

int iac_etcdb_txn(iac_etcdb *b, json_t *compare, json_t *success)
{
	txn_job j = { compare, success, 0 };
	if (b->lock_key)
		json_array_append_new(compare, iac_etcd_cmp(b->lock_key, "CREATE", b->lock_rev));
	int rc = iac_etcdb_retry(b, txn_once, &j);
	json_decref(compare);
	json_decref(success);
	if (rc < 0 || j.succeeded)
		return rc;
	if (lost_lock(b))
		return iac_err_set("this command lost the state lock in %s (lock ID %s: its lease expired while "
				   "etcd could not be reached, or 'iac force-unlock' / 'iac rollback -force' took it); "
				   "nothing more is written, so whatever the new holder writes stays; run 'iac plan' "
				   "to see where things stand", b->label, b->lock_id),
		       IAC_ELOCKED;
	return IAC_ECONFLICT;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct {
	json_t *manifest;
	int64_t manifest_rev;
	iac_buf snap, journal;
	iac_strlist gens;          /* every chunk generation seen */
	size_t chunks;             /* chunks of the manifest's generation */
} picture;

static void picture_free(picture *p)
{
	json_decref(p->manifest);
	iac_buf_free(&p->snap);
	iac_buf_free(&p->journal);
	iac_strlist_free(&p->gens);
	memset(p, 0, sizeof(*p));
}

/* One key of P/state/ into the picture. Keys come sorted: chunk/ before
 * journal/ before manifest, so chunks are gathered for every generation and
 * sorted out by the manifest at the end. */
static void take_key(picture *p, const iac_etcdb *b, const iac_etcd_kv *kv, iac_buf *all_chunks)
{
	const char *rel = kv->key + strlen(b->prefix) + strlen("/state/");
	if (!strncmp(rel, "chunk/", 6)) {
		const char *gen = rel + 6, *slash = strchr(gen, '/');
		if (!slash)
			return;
		char *g = iac_xstrndup(gen, (size_t)(slash - gen));
		if (!p->gens.n || strcmp(p->gens.items[p->gens.n - 1], g))
			iac_strlist_push(&p->gens, g);
		/* kept as GEN '\0' LEN '\0' BYTES until the manifest says which */
		iac_buf_printf(all_chunks, "%s%c%zu%c", g, 0, kv->value_len, 0);
		iac_buf_put(all_chunks, kv->value, kv->value_len);
		free(g);
	} else if (!strncmp(rel, "journal/", 8)) {
		iac_buf_put(&p->journal, kv->value, kv->value_len);
	} else if (!strcmp(rel, "manifest")) {
		p->manifest = json_loadb(kv->value, kv->value_len, 0, NULL);
		p->manifest_rev = kv->mod_revision;
		if (!p->manifest)
			p->manifest = json_object();   /* checked in assemble() */
	}
}

/* The manifest's chunks, in order, out of all chunks read. */
static int assemble(picture *p, const iac_etcdb *b, const iac_buf *all)
{
	const char *gen = iac_json_str(p->manifest, "gen");
	json_int_t want = json_integer_value(json_object_get(p->manifest, "chunks"));
	const char *sha = iac_json_str(p->manifest, "sha256");
	size_t pos = 0;
	char got[65];

	if (!gen || !sha || want < 1)
		return iac_err_set("state in %s has a damaged manifest ('%s/state/manifest' lacks gen, chunks or "
				   "sha256); nothing was changed. 'iac state history' lists revisions to restore "
				   "with 'iac state push'", b->label, b->prefix);
	while (pos < all->len) {
		const char *g = all->ptr + pos;
		size_t gl = strlen(g);
		size_t n = strtoull(g + gl + 1, NULL, 10);
		const char *bytes = g + gl + 1 + strlen(g + gl + 1) + 1;
		if (!strcmp(g, gen)) {
			iac_buf_put(&p->snap, bytes, n);
			p->chunks++;
		}
		pos = (size_t)(bytes - all->ptr) + n;
	}
	iac_sha256_hex(got, p->snap.ptr ? p->snap.ptr : "", p->snap.len);
	if ((json_int_t)p->chunks != want || strcmp(got, sha))
		return iac_err_set("state in %s is incomplete: its manifest names %lld chunk(s) of generation '%s' "
				   "with sha256 %.12s…, found %zu with %.12s…; nothing was changed. Restore it with "
				   "'iac state push' from 'iac state history'", b->label, (long long)want, gen, sha,
				   p->chunks, got);
	return 0;
}

/* Every key under P/state/ at one store revision, a page at a time (a
 * page holds at most a few chunks: answers stay small). */
static int read_picture(iac_etcdb *b, void *arg)
{
	picture *p = arg;
	char *prefix = key_of(b, "state/");
	char *from = iac_xstrdup(prefix);
	iac_buf all = IAC_BUF_INIT;
	int64_t rev = 0;
	int more = 1, rc = 0, first = 1;

	picture_free(p);
	while (more && rc == 0) {
		iac_etcd_kv *kvs;
		size_t n;
		rc = iac_etcd_range_page(&kvs, &n, &rev, &more, b->e, from, prefix, 4);
		for (size_t i = 0; rc == 0 && i < n; i++) {
			if (!first && i == 0 && !strcmp(kvs[i].key, from))
				continue;   /* the page starts at the last key of the one before */
			take_key(p, b, &kvs[i], &all);
		}
		if (rc == 0 && n) {
			free(from);
			from = iac_xstrdup(kvs[n - 1].key);
		}
		if (rc == 0)
			iac_etcd_kvs_free(kvs, n);
		first = 0;
	}
	if (rc == 0 && p->manifest)
		rc = assemble(p, b, &all);
	iac_buf_free(&all);
	free(prefix);
	free(from);
	return rc;
}

static char *take_text(iac_buf *b, size_t *len)
{
	*len = b->len;
	if (!b->ptr)
		return NULL;
	char *s = b->ptr;
	*b = (iac_buf)IAC_BUF_INIT;
	return s;
}

static int store_read_locked(iac_store *s, char **snap, size_t *snap_len, char **journal, size_t *journal_len)
{
	iac_etcdb *b = (iac_etcdb *)s;
	picture p = { 0 };
	int rc = iac_etcdb_retry(b, read_picture, &p);

	*snap = *journal = NULL;
	*snap_len = *journal_len = 0;
	if (rc < 0) {
		picture_free(&p);
		iac_err_prefix("cannot read state from %s", b->label);
		return rc;
	}
	b->manifest_rev = p.manifest_rev;
	snprintf(b->gen, sizeof(b->gen), "%s", iac_json_str(p.manifest, "gen") ?: "");
	iac_strlist_free(&b->stale_gens);
	for (size_t i = 0; i < p.gens.n; i++)
		if (strcmp(p.gens.items[i], b->gen))
			iac_strlist_push(&b->stale_gens, p.gens.items[i]);
	if (p.manifest)
		*snap = take_text(&p.snap, snap_len);
	if (p.journal.len)
		*journal = take_text(&p.journal, journal_len);
	picture_free(&p);
	return 0;
}

/* ---- writing ------------------------------------------------------------ */

static int store_append_locked(iac_store *s, const char *lines, size_t len, unsigned long long upto)
{
	iac_etcdb *b = (iac_etcdb *)s;
	char *k = key_of(b, "state/journal/%020llu", upto);
	int rc = iac_etcdb_txn(b, json_array(), json_pack("[o]", iac_etcd_op_put(k, lines, len, 0)));
	if (rc < 0)
		iac_err_prefix("cannot record a change in %s", b->label);
	free(k);
	return rc;
}

/* Who wrote the manifest that beat ours, for the conflict message. */
static void say_conflict(iac_etcdb *b, long serial)
{
	iac_etcd_kv kv;
	char *k = key_of(b, "state/manifest");
	json_t *m = NULL;
	if (iac_etcd_get(&kv, b->e, k) == 0) {
		m = json_loadb(kv.value, kv.value_len, 0, NULL);
		iac_etcd_kv_free(&kv);
	}
	json_t *by = json_object_get(m, "by");
	iac_err_set("state in %s was changed by someone else since this command read it: serial %lld written by "
		    "'iac %s' (%s@%s, pid %lld, at %s) while this command was about to write serial %ld; nothing "
		    "was overwritten. Its changes are in the journal and history; run the command again to plan "
		    "against the new state", b->label, (long long)json_integer_value(json_object_get(m, "serial")),
		    iac_json_str(by, "command") ?: "?",
		    iac_json_str(by, "user") ?: "?",
		    iac_json_str(by, "host") ?: "?",
		    (long long)json_integer_value(json_object_get(by, "pid")),
		    iac_json_str(by, "at") ?: "?", serial);
	json_decref(m);
	free(k);
}

/* The manifest swap did not hold: did our own earlier attempt land (an
 * answer lost to a failover)? */
static int swap_landed(iac_etcdb *b, const char *gen)
{
	iac_etcd_kv kv;
	char *k = key_of(b, "state/manifest");
	int landed = 0;
	if (iac_etcd_get(&kv, b->e, k) == 0) {
		json_t *m = json_loadb(kv.value, kv.value_len, 0, NULL);
		landed = !strcmp(iac_json_str(m, "gen") ?: "", gen);
		if (landed)
			b->manifest_rev = kv.mod_revision;
		json_decref(m);
		iac_etcd_kv_free(&kv);
	}
	free(k);
	return landed;
}

static int put_chunks(iac_etcdb *b, const char *gen, const char *text, size_t len, size_t *out_n)
{
	size_t n = 0;
	for (size_t off = 0; off < len || n == 0; off += IAC_ETCDB_CHUNK, n++) {
		size_t piece = len - off < IAC_ETCDB_CHUNK ? len - off : IAC_ETCDB_CHUNK;
		char *k = key_of(b, "state/chunk/%s/%06zu", gen, n);
		int rc = iac_etcdb_txn(b, json_array(), json_pack("[o]", iac_etcd_op_put(k, text + off, piece, 0)));
		free(k);
		if (rc < 0)
			return rc;
	}
	*out_n = n;
	return 0;
}

static json_t *manifest_for(iac_etcdb *b, const char *gen, size_t chunks, const char *text, size_t len,
			    long serial, unsigned long long upto)
{
	char sha[65], when[32];
	json_t *doc = json_loadb(text, len, 0, NULL);
	iac_sha256_hex(sha, text, len);
	iac_time_rfc3339(when, sizeof(when));
	json_t *by = json_deep_copy(b->actor ? b->actor : json_object());
	json_object_set_new(by, "at", json_string(when));
	json_t *m = json_pack("{s:i,s:s,s:I,s:I,s:s,s:I,s:I,s:s,s:o}", "format", 1, "lineage",
			      iac_json_str(doc, "lineage") ?: "", "serial", (json_int_t)serial,
			      "journal_seq", (json_int_t)upto, "gen", gen, "chunks", (json_int_t)chunks, "size",
			      (json_int_t)len, "sha256", sha, "by", by);
	json_decref(doc);
	return m;
}

/* Chunks of generations nobody names any more (ours before this write, and
 * any left by a writer that died between its chunks and its swap). */
static void drop_stale(iac_etcdb *b)
{
	for (size_t i = 0; i < b->stale_gens.n; i++) {
		char *k = key_of(b, "state/chunk/%s/", b->stale_gens.items[i]);
		iac_etcdb_txn(b, json_array(), json_pack("[o]", iac_etcd_op_delete(k, 1)));
		free(k);
	}
	iac_strlist_free(&b->stale_gens);
	iac_err_clear();
}

static int store_write_locked(iac_store *s, const char *text, size_t len, long serial, unsigned long long upto)
{
	iac_etcdb *b = (iac_etcdb *)s;
	char gen[64];
	size_t chunks = 0;
	unsigned rnd = (unsigned)(iac_now_us() ^ ((uint64_t)getpid() << 20));

	snprintf(gen, sizeof(gen), "%ld-%08x", serial, rnd);
	int rc = put_chunks(b, gen, text, len, &chunks);
	if (rc < 0) {
		iac_err_prefix("cannot write state to %s", b->label);
		return rc;
	}
	char *mk = key_of(b, "state/manifest"), *j0 = key_of(b, "state/journal/"),
	     *j1 = key_of(b, "state/journal/%020llu", upto + 1);
	json_t *m = manifest_for(b, gen, chunks, text, len, serial, upto);
	char *mtext = json_dumps(m, JSON_COMPACT);
	json_t *cmp = json_pack("[o]", iac_etcd_cmp(mk, "MOD", b->manifest_rev));
	if (!b->manifest_rev) {
		json_decref(cmp);
		cmp = json_pack("[o]", iac_etcd_cmp(mk, "CREATE", 0));
	}
	rc = iac_etcdb_txn(b, cmp, json_pack("[o,o]", iac_etcd_op_put(mk, mtext, strlen(mtext), 0),
					     iac_etcd_op_delete_range(j0, j1)));
	if (rc == IAC_ECONFLICT && swap_landed(b, gen))
		rc = 0;
	else if (rc == IAC_ECONFLICT)
		say_conflict(b, serial);
	if (rc == 0) {
		if (b->gen[0])
			iac_strlist_push(&b->stale_gens, b->gen);
		snprintf(b->gen, sizeof(b->gen), "%s", gen);
		b->manifest_rev = 0;
		swap_landed(b, gen);   /* learn the manifest's revision */
		drop_stale(b);
	} else {
		iac_strlist_push(&b->stale_gens, gen);   /* ours, never named */
		if (rc != IAC_ECONFLICT)
			iac_err_prefix("cannot write state to %s", b->label);
	}
	free(mtext);
	json_decref(m);
	free(mk);
	free(j0);
	free(j1);
	return rc;
}

static int store_read(iac_store *s, char **snap, size_t *snap_len, char **journal, size_t *journal_len)
{
	iac_etcdb *b = (iac_etcdb *)s;
	pthread_mutex_lock(&b->io);
	int rc = store_read_locked(s, snap, snap_len, journal, journal_len);
	pthread_mutex_unlock(&b->io);
	return rc;
}

static int store_append(iac_store *s, const char *lines, size_t len, unsigned long long upto)
{
	iac_etcdb *b = (iac_etcdb *)s;
	pthread_mutex_lock(&b->io);
	int rc = store_append_locked(s, lines, len, upto);
	pthread_mutex_unlock(&b->io);
	return rc;
}

static int store_write(iac_store *s, const char *text, size_t len, long serial, unsigned long long upto)
{
	iac_etcdb *b = (iac_etcdb *)s;
	pthread_mutex_lock(&b->io);
	int rc = store_write_locked(s, text, len, serial, upto);
	pthread_mutex_unlock(&b->io);
	return rc;
}

static const iac_store_ops etcd_ops = { store_read, store_append, store_write };

/* ---- the handle ------------------------------------------------------------ */

int iac_etcdb_open(iac_etcdb **out, const iac_etcdb_opts *o)
{
	iac_etcdb *b = iac_xcalloc(1, sizeof(*b));
	int rc;

	*out = NULL;
	b->prefix = iac_xstrdup(o->prefix && *o->prefix ? o->prefix : "iac");
	while (strlen(b->prefix) > 1 && b->prefix[strlen(b->prefix) - 1] == '/')
		b->prefix[strlen(b->prefix) - 1] = '\0';
	b->label = iac_xasprintf("etcd '%s'", b->prefix);
	pthread_mutex_init(&b->io, NULL);
	b->store.ops = &etcd_ops;
	b->store.label = b->label;
	b->lock_ttl_ms = o->lock_ttl_ms > 0 ? o->lock_ttl_ms : 15000;
	b->retry_ms = o->retry_ms > 0 ? o->retry_ms : 15000;
	if ((rc = iac_etcd_open(&b->e, o->endpoints, o->timeout_ms)) < 0)
		goto fail;
	if ((o->cacert || o->cert || o->key) && (rc = iac_etcd_set_tls(b->e, o->cacert, o->cert, o->key)) < 0)
		goto fail;
	if (o->username && *o->username && (rc = iac_etcd_set_auth(b->e, o->username, o->password ?: "")) < 0)
		goto fail;
	*out = b;
	return 0;
fail:
	iac_err_prefix("state backend %s", b->label);
	iac_etcdb_free(b);
	return rc;
}

void iac_etcdb_free(iac_etcdb *b)
{
	if (!b)
		return;
	iac_etcdb_unlock(b);
	iac_etcd_close(b->e);
	json_decref(b->actor);
	iac_strlist_free(&b->stale_gens);
	pthread_mutex_destroy(&b->io);
	free(b->prefix);
	free(b->label);
	free(b);
}

iac_store *iac_etcdb_store(iac_etcdb *b) { return &b->store; }
const char *iac_etcdb_prefix(const iac_etcdb *b) { return b->prefix; }
iac_etcd *iac_etcdb_client(iac_etcdb *b) { return b->e; }
const char *iac_etcdb_lock_id(const iac_etcdb *b) { return b->lock_key ? b->lock_id : NULL; }

void iac_etcdb_set_actor(iac_etcdb *b, const json_t *who)
{
	json_decref(b->actor);
	b->actor = json_deep_copy(who);
}

/* ---- the lock ----------------------------------------------------------------- */

static char *info_text(const json_t *info, const char *id)
{
	json_t *i = json_deep_copy(info ? info : json_object());
	json_object_set_new(i, "id", json_string(id));
	char *s = json_dumps(i, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(i);
	return s;
}

static int by_create(const void *x, const void *y)
{
	const iac_etcd_kv *a = x, *b = y;
	return (a->create_revision > b->create_revision) - (a->create_revision < b->create_revision);
}

/* One lock key as INFO with "id" and "ttl". */
static json_t *lock_entry(iac_etcdb *b, const iac_etcd_kv *kv)
{
	json_t *i = json_loadb(kv->value, kv->value_len, 0, NULL);
	if (!json_is_object(i)) {
		json_decref(i);
		i = json_object();
	}
	char id[24];
	snprintf(id, sizeof(id), "%" PRIx64, (uint64_t)kv->lease);
	json_object_set_new(i, "id", json_string(id));
	int64_t ttl = 0;
	if (iac_etcd_lease_ttl(&ttl, b->e, kv->lease) == 0)
		json_object_set_new(i, "ttl", json_integer((json_int_t)ttl));
	iac_err_clear();
	return i;
}

/* Every lock key, holder first, then the queue in the order it asked. */
static int lock_keys(iac_etcd_kv **kvs, size_t *n, iac_etcdb *b)
{
	char *prefix = key_of(b, "lock/");
	int rc = iac_etcd_range(kvs, n, NULL, b->e, prefix);
	free(prefix);
	if (rc == 0)
		qsort(*kvs, *n, sizeof(**kvs), by_create);
	return rc;
}

int iac_etcdb_lock_status(json_t **out, iac_etcdb *b)
{
	iac_etcd_kv *kvs;
	size_t n;
	*out = NULL;
	int rc = lock_keys(&kvs, &n, b);
	if (rc < 0)
		return rc;
	json_t *queue = json_array();
	for (size_t i = 1; i < n; i++)
		json_array_append_new(queue, lock_entry(b, &kvs[i]));
	*out = json_pack("{s:o,s:o}", "holder", n ? lock_entry(b, &kvs[0]) : json_null(), "queue", queue);
	iac_etcd_kvs_free(kvs, n);
	return 0;
}

/* "'iac apply' by root@ci-7 (pid 42) since T, lock ID 3f2a" */
static void describe_holder(iac_buf *w, const json_t *h)
{
	iac_buf_printf(w, "'iac %s' by %s@%s (pid %lld) since %s, lock ID %s",
		       iac_json_str(h, "command") ?: "?",
		       iac_json_str(h, "user") ?: "?",
		       iac_json_str(h, "host") ?: "?",
		       (long long)json_integer_value(json_object_get(h, "pid")),
		       iac_json_str(h, "started") ?: "?",
		       iac_json_str(h, "id") ?: "?");
}

static int refuse(iac_etcdb *b, double wait_ms)
{
	json_t *st = NULL;
	iac_buf w = IAC_BUF_INIT;
	if (iac_etcdb_lock_status(&st, b) == 0 && json_is_object(json_object_get(st, "holder"))) {
		json_t *h = json_object_get(st, "holder");
		iac_buf_puts(&w, "the state in ");
		iac_buf_puts(&w, b->label);
		iac_buf_puts(&w, " is locked by ");
		describe_holder(&w, h);
		size_t q = json_array_size(json_object_get(st, "queue"));
		if (q)
			iac_buf_printf(&w, "; %zu more waiting", q);
		iac_buf_printf(&w, "%s. Wait for it with -lock-timeout (e.g. -lock-timeout 5m); a holder that was "
			       "killed loses the lock by itself within lock_ttl (%.0f s); if it is gone for good "
			       "and must not wait: iac force-unlock %s", wait_ms > 0 ? " (waited for it)" : "",
			       b->lock_ttl_ms / 1000, iac_json_str(h, "id") ?: "ID");
		iac_err_set("%s", iac_buf_cstr(&w));
	}
	json_decref(st);
	iac_buf_free(&w);
	return IAC_ELOCKED;
}

static int grant_once(iac_etcdb *b, void *arg)
{
	int64_t ttl_s = *(int64_t *)arg;
	/* a grant whose answer was lost leaves a lease nobody renews: it
	 * expires by itself */
	return iac_etcd_lease_grant(&b->lease, b->e, ttl_s < 2 ? 2 : ttl_s);
}

/* The lease that the lock lives on, kept alive by a thread. */
static int lease_up(iac_etcdb *b)
{
	int64_t ttl_s = (int64_t)((b->lock_ttl_ms + 999) / 1000);
	int rc = iac_etcdb_retry(b, grant_once, &ttl_s);
	if (rc < 0)
		return rc;
	rc = iac_etcd_keeper_start(&b->keeper, b->e, b->lease, b->lock_ttl_ms / 3);
	if (rc < 0) {
		iac_etcd_lease_revoke(b->e, b->lease);
		b->lease = 0;
	}
	snprintf(b->lock_id, sizeof(b->lock_id), "%" PRIx64, (uint64_t)b->lease);
	return rc;
}

static void lease_down(iac_etcdb *b)
{
	iac_etcd_keeper_stop(b->keeper, 1);
	b->keeper = NULL;
	b->lease = 0;
}

typedef struct {
	const char *name, *text;
	double wait_ms;
	char **key;
} lock_job;

/* Asking again with the same lease finds our place in the queue kept
 * (etcd's lock re-entry), so a retry after a failover loses no turn. */
static int lock_once(iac_etcdb *b, void *arg)
{
	lock_job *j = arg;
	return iac_etcd_lock(j->key, b->e, j->name, b->lease, j->text, j->wait_ms);
}

int iac_etcdb_lock(iac_etcdb *b, const json_t *info, double wait_ms)
{
	char *name = key_of(b, "lock"), *key = NULL, *text = NULL;
	iac_etcd_kv kv;
	int rc;

	if (b->lock_key)
		return 0;
	if ((rc = lease_up(b)) < 0)
		goto done;
	text = info_text(info, b->lock_id);
	lock_job j = { name, text, wait_ms < 0 ? 0 : wait_ms, &key };
	rc = iac_etcdb_retry(b, lock_once, &j);
	if (rc == IAC_ELOCKED)
		rc = refuse(b, wait_ms);
	if (rc == 0 && (rc = iac_etcd_get(&kv, b->e, key)) == 0) {
		b->lock_rev = kv.create_revision;
		b->lock_key = key;
		key = NULL;
		iac_etcd_kv_free(&kv);
	}
	if (rc < 0)
		lease_down(b);
done:
	if (rc < 0 && rc != IAC_ELOCKED)
		iac_err_prefix("cannot take the state lock in %s", b->label);
	free(key);
	free(text);
	free(name);
	return rc;
}

void iac_etcdb_unlock(iac_etcdb *b)
{
	if (!b->lock_key)
		return;
	/* revoking the lease drops the key with it, in one step */
	lease_down(b);
	free(b->lock_key);
	b->lock_key = NULL;
	b->lock_rev = 0;
}

int iac_etcdb_still_held(iac_etcdb *b)
{
	if (!b->lock_key)
		return 0;
	/* a renewal that failed may still recover; the fence on every write
	 * decides for sure */
	return iac_etcd_keeper_status(NULL, b->keeper) != IAC_ENOTFOUND;
}

/* Drop one lock key and its lease. */
static void drop_key(iac_etcdb *b, const iac_etcd_kv *kv)
{
	iac_etcd_delete(NULL, b->e, kv->key, 0);
	if (kv->lease)
		iac_etcd_lease_revoke(b->e, kv->lease);
	iac_err_clear();
}

int iac_etcdb_force_unlock(json_t **out_info, iac_etcdb *b, const char *id)
{
	char *k = key_of(b, "lock/%s", id);
	iac_etcd_kv kv;
	int rc = iac_etcd_get(&kv, b->e, k);
	*out_info = NULL;
	if (rc == IAC_ENOTFOUND)
		iac_err_set("no lock with ID '%s' in %s ('iac state lock' shows the holder and the queue)", id,
			    b->label);
	if (rc == 0) {
		*out_info = lock_entry(b, &kv);
		drop_key(b, &kv);
		iac_etcd_kv_free(&kv);
	}
	free(k);
	return rc;
}

int iac_etcdb_preempt(json_t **out_preempted, iac_etcdb *b, const json_t *info)
{
	iac_etcd_kv *kvs;
	size_t n;
	*out_preempted = NULL;
	int rc = lock_keys(&kvs, &n, b);
	if (rc < 0)
		return rc;
	/* The holder and everyone queued: a forced rollback goes first, and
	 * waiters asked to change a state that is about to be rolled back. */
	if (n)
		*out_preempted = lock_entry(b, &kvs[0]);
	for (size_t i = 0; i < n; i++)
		drop_key(b, &kvs[i]);
	iac_etcd_kvs_free(kvs, n);
	return iac_etcdb_lock(b, info, 5000);
}
