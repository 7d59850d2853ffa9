/* db.shard_map: a versioned map of slots to clusters, kept in state,
 * published to applications (a file on hosts, or an etcd key), and the
 * slot moves that follow a change of the cluster set (shard.h; the SQL
 * in shard_move.c; docs/db.md, "Sharding").
 *
 * The truth about who owns a slot is in the clusters (iac_shard_state);
 * read() rebuilds the map from them, so a stopped apply is settled from
 * what the databases say, and state only remembers what was published.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/ketama.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/etcd/etcd.h"
#include "iac/host/host.h"
#include "providers/db/db.h"
#include "providers/db/shard.h"

static const iac_attr shard_attrs[] = {
	{ "name", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the map's name" },
	{ "clusters", IAC_T_LIST, IAC_A_REQUIRED, "[{name, members, rw, ro}] of the cluster set, in order" },
	{ "slots", IAC_T_NUMBER, IAC_A_REQUIRED, "number of slots (fixed once created)" },
	{ "key", IAC_T_STRING, IAC_A_REQUIRED, "the column whose value places a row" },
	{ "table", IAC_T_STRING, IAC_A_REQUIRED, "the sharded table, on every cluster" },
	{ "hash", IAC_T_STRING, 0, "slot placement: \"ketama\"" },
	{ "database", IAC_T_STRING, 0, "database holding the table, default \"postgres\"" },
	{ "batch", IAC_T_NUMBER, 0, "slots moved together, one write pause each (default 16)" },
	{ "publish", IAC_T_MAP, 0, "{ file = PATH, hosts = {...} } or { etcd = ENDPOINTS, key = KEY }" },
	{ "map", IAC_T_LIST, IAC_A_COMPUTED, "the cluster of each slot" },
	{ "version", IAC_T_NUMBER, IAC_A_COMPUTED, "the published map's version (one more per flip)" },
	{ "sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of the document iac published" },
	{ "published_sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of the document found where it is published" },
	{ "in_transit", IAC_T_NUMBER, IAC_A_COMPUTED, "slots a stopped apply left in a move" },
	{ "last_move", IAC_T_MAP, IAC_A_COMPUTED, "{slots, rows, seconds, max_write_pause_ms} of the last apply's moves" },
	{ "steps", IAC_T_LIST, IAC_A_COMPUTED, "what the next apply will do (shown by plan)" },
	{ NULL, 0, 0, NULL },
};

static long num(const json_t *a, const char *k, long dflt)
{
	const json_t *v = json_object_get(a, k);
	return json_is_number(v) ? (long)json_number_value(v) : dflt;
}

static int ident_ok(const char *s)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return 0;
	return 1;
}

static const char *cname(const json_t *clusters, size_t i)
{
	return iac_json_str(json_array_get(clusters, i), "name");
}

static int validate(const json_t *a, const json_t *prior)
{
	const json_t *cl = json_object_get(a, "clusters"), *c, *pub = json_object_get(a, "publish");
	size_t i;
	long slots = num(a, "slots", 0);
	if (!iac_db_name_ok(iac_json_str(a, "name")) || strchr(iac_json_str(a, "name"), '.'))
		return iac_err_set("shard map '%s': the name must be letters, digits, '_' or '-'", iac_json_str(a, "name"));
	if (slots <= 0 || slots > 65536)
		return iac_err_set("shard map '%s': slots %ld must be > 0 (at most 65536)", iac_json_str(a, "name"), slots);
	if (!ident_ok(iac_json_str(a, "key")) || !ident_ok(iac_json_str(a, "table")))
		return iac_err_set("shard map '%s': key and table must be plain SQL names", iac_json_str(a, "name"));
	if (!json_array_size(cl))
		return iac_err_set("shard map '%s': the cluster set is empty", iac_json_str(a, "name"));
	json_array_foreach(cl, i, c) if (!iac_db_name_ok(iac_json_str(c, "name")) || !json_array_size(json_object_get(c, "members")))
		return iac_err_set("shard map '%s': cluster %zu is not a postgres_cluster", iac_json_str(a, "name"), i + 1);
	if (num(a, "batch", 16) < 1 || num(a, "batch", 16) > 65536)
		return iac_err_set("shard map '%s': batch must be from 1 to 65536", iac_json_str(a, "name"));
	if (iac_json_str(a, "database") && !iac_db_name_ok(iac_json_str(a, "database")))
		return iac_err_set("shard map '%s': database '%s' is not a plain name", iac_json_str(a, "name"),
				   iac_json_str(a, "database"));
	const char *file = iac_json_str(pub, "file");
	/* the path goes into a shell command between single quotes */
	if (file && strpbrk(file, "'\n"))
		return iac_err_set("shard map '%s': publish.file '%s' must not contain a quote or a newline",
				   iac_json_str(a, "name"), file);
	if (file && json_array_size(json_object_get(pub, "hosts")) && file[0] != '/')
		return iac_err_set("shard map '%s': publish.file '%s' on hosts must be an absolute path",
				   iac_json_str(a, "name"), file);
	if (prior) {
		const char *what[] = { "slots", "key", "table" };
		for (i = 0; i < 3; i++)
			if (!iac_value_equal(json_object_get(a, what[i]), json_object_get(prior, what[i])))
				return iac_err_set("shard map '%s': %s cannot change once the map exists (every row would "
						   "change slot); make a new shard_map and move the data",
						   iac_json_str(a, "name"), what[i]);
	}
	return 0;
}

/* The map the ring gives: a slot belongs to the owner of its midpoint on
 * the ketama ring of the clusters' names (new array of names). */
static json_t *ring_map(const json_t *a)
{
	const json_t *cl = json_object_get(a, "clusters");
	size_t n = json_array_size(cl);
	long slots = num(a, "slots", 1024);
	iac_ketama_node *nodes = calloc(n, sizeof(*nodes));
	iac_ketama *r = NULL;
	json_t *map = NULL;
	for (size_t i = 0; i < n; i++)
		nodes[i] = (iac_ketama_node){ cname(cl, i), cname(cl, i), 1 };
	if (iac_ketama_new(&r, nodes, n, "md5", NULL, 160) == 0) {
		map = json_array();
		for (long s = 0; s < slots; s++) {
			uint32_t mid = (uint32_t)((((uint64_t)(2 * s + 1)) << 32) / (uint64_t)(2 * slots));
			json_array_append_new(map, json_string(cname(cl, iac_ketama_owner(r, mid))));
		}
	}
	iac_ketama_free(r);
	free(nodes);
	return map;
}

/* The published document (docs/db.md): what a client needs to place a key. */
static char *doc_text(const json_t *a, const json_t *map, long version)
{
	json_t *cls = json_object(), *c;
	size_t i;
	json_array_foreach(json_object_get(a, "clusters"), i, c) {
		json_t *e = json_object();
		if (iac_json_str(c, "rw"))
			json_object_set(e, "rw", json_object_get(c, "rw"));
		if (iac_json_str(c, "ro"))
			json_object_set(e, "ro", json_object_get(c, "ro"));
		json_object_set_new(cls, iac_json_str(c, "name"), e);
	}
	json_t *doc = json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:I,s:o,s:O}", "format", "iac-shard-map/1", "name",
				iac_json_str(a, "name"), "version", (json_int_t)version, "table", iac_json_str(a, "table"),
				"key", iac_json_str(a, "key"), "database", iac_json_str(a, "database") ?: "postgres",
				"hash", "ketama", "key_hash", "md5", "slots", (json_int_t)num(a, "slots", 0), "clusters",
				cls, "map", map);
	char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(doc);
	return text;
}

static char *local_path(const iac_rctx *ctx, const json_t *a)
{
	const json_t *pub = json_object_get(a, "publish");
	const char *file = iac_json_str(pub, "file");
	char *dflt = NULL, *p;
	if (!file)
		file = dflt = iac_xasprintf("shards/%s.json", iac_json_str(a, "name"));
	p = file[0] == '/' || json_array_size(json_object_get(pub, "hosts")) ? iac_xstrdup(file)
									      : iac_path_join(ctx->config_dir, file);
	free(dflt);
	return p;
}

/* Writes (or with text NULL, deletes) the document at every target. */
static int publish_text(const iac_rctx *ctx, const json_t *a, const char *text)
{
	const json_t *pub = json_object_get(a, "publish"), *hosts = json_object_get(pub, "hosts"), *h;
	int rc = 0;
	if (iac_json_str(pub, "etcd")) {
		iac_etcd *e = NULL;
		int64_t gone = 0;
		rc = iac_etcd_open(&e, iac_json_str(pub, "etcd"), 5000);
		if (rc == 0)
			rc = text ? iac_etcd_put(e, iac_json_str(pub, "key"), text, strlen(text), 0)
				  : iac_etcd_delete(&gone, e, iac_json_str(pub, "key"), 0);
		iac_etcd_close(e);
		if (rc < 0)
			iac_err_prefix("shard map '%s': publishing to etcd key '%s'", iac_json_str(a, "name"),
				       iac_json_str(pub, "key"));
		if (rc < 0 || !iac_json_str(pub, "file"))
			return rc;
	}
	char *path = local_path(ctx, a);
	size_t i, n = json_array_size(hosts);
	for (i = 0; i < (n ? n : 1) && rc == 0; i++) {
		h = n ? json_array_get(hosts, i) : NULL;
		if (text) {
			rc = iac_host_write(ctx->hosts, h, path, text, strlen(text), "0644", ctx->cancel);
		} else {
			char *cmd = iac_xasprintf("rm -f '%s'", path);
			rc = iac_host_run(NULL, ctx->hosts, h, cmd, 20e3, ctx->cancel);
			free(cmd);
		}
	}
	free(path);
	return rc;
}

/* The document at the first target: its SHA-256 into hex ("" when
 * absent), *map its slot map (new reference, NULL when absent or not
 * this map's) and *version its version (left alone without a map). The first target's copy is the flip: written first. */
static int published(char hex[65], json_t **map, long *version, const iac_rctx *ctx, const json_t *a)
{
	const json_t *pub = json_object_get(a, "publish");
	char *out = NULL;
	int rc;
	hex[0] = 0;
	*map = NULL;
	if (iac_json_str(pub, "etcd")) {
		iac_etcd *e = NULL;
		iac_etcd_kv kv;
		memset(&kv, 0, sizeof(kv));
		rc = iac_etcd_open(&e, iac_json_str(pub, "etcd"), 5000);
		if (rc == 0 && (rc = iac_etcd_get(&kv, e, iac_json_str(pub, "key"))) == 0)
			out = iac_xstrdup(kv.value ? kv.value : "");
		iac_etcd_kv_free(&kv);
		iac_etcd_close(e);
		if (rc == IAC_ENOTFOUND)
			rc = 0;
	} else {
		char *path = local_path(ctx, a);
		size_t len;
		rc = iac_host_read(&out, &len, ctx->hosts, json_array_get(json_object_get(pub, "hosts"), 0), path, 0,
				   20e3, ctx->cancel);
		if (rc == IAC_ENOTFOUND)   /* not published yet */
			rc = 0;
		free(path);
	}
	if (rc == 0 && out && *out) {
		iac_sha256_hex(hex, out, strlen(out));
		json_t *doc = json_loads(out, 0, NULL);
		const json_t *m = json_object_get(doc, "map");
		if (!strcmp(iac_json_str(doc, "name") ?: "", iac_json_str(a, "name")) &&
		    json_array_size(m) == (size_t)num(a, "slots", 0)) {
			*map = json_incref((json_t *)m);
			*version = num(doc, "version", 0);
		}
		json_decref(doc);
	}
	free(out);
	return rc;
}

/* The cluster of the union of `a`'s and `b`'s sets named name (borrowed). */
static const json_t *find_cluster(const json_t *a, const json_t *b, const char *name)
{
	const json_t *sets[] = { json_object_get(a, "clusters"), json_object_get(b, "clusters") }, *c;
	size_t i;
	for (int k = 0; k < 2; k++)
		json_array_foreach(sets[k], i, c) if (name && !strcmp(iac_json_str(c, "name") ?: "", name)) return c;
	return NULL;
}

static void shard_init(iac_db_shard *s, const iac_rctx *ctx, const json_t *a)
{
	memset(s, 0, sizeof(*s));
	s->ctx = ctx;
	s->map = iac_json_str(a, "name");
	s->table = iac_json_str(a, "table");
	s->key = iac_json_str(a, "key");
	s->database = iac_json_str(a, "database") ?: "postgres";
	s->slots = num(a, "slots", 1024);
}

static const json_t *leader_of(const iac_rctx *ctx, const json_t *c)
{
	return iac_db_leader(ctx, json_object_get(c, "members"), iac_json_str(c, "name"));
}

/* The cluster's slots (owned[i] = map[i] is it), then its setup. */
static int setup_cluster(const iac_db_shard *s, const json_t *c, const json_t *map)
{
	const json_t *l = leader_of(s->ctx, c);
	const char *name = iac_json_str(c, "name");
	unsigned char *owned = calloc((size_t)s->slots, 1);
	for (long i = 0; i < s->slots; i++)
		owned[i] = !strcmp(json_string_value(json_array_get(map, (size_t)i)) ?: "", name);
	int rc = l ? iac_db_shard_setup(s, name, l, owned) : IAC_ERR;
	free(owned);
	return rc;
}

/* "M of N slots: a -> c 130, b -> c 126" into b; the count moving. */
static long describe_moves(iac_buf *b, const json_t *from, const json_t *to)
{
	json_t *pairs = json_object();
	const char *k;
	json_t *v;
	long moving = 0;
	for (size_t i = 0; i < json_array_size(to); i++) {
		const char *x = json_string_value(json_array_get(from, i)) ?: "?", *y = json_string_value(json_array_get(to, i));
		if (!y || !strcmp(x, y))
			continue;
		char *pk = iac_xasprintf("%s -> %s", x, y);
		json_object_set_new(pairs, pk, json_integer(json_integer_value(json_object_get(pairs, pk)) + 1));
		free(pk);
		moving++;
	}
	iac_buf_printf(b, "move %ld of %zu slots:", moving, json_array_size(to));
	int first = 1;
	json_object_foreach(pairs, k, v) {
		iac_buf_printf(b, "%s %s %lld", first ? "" : ",", k, (long long)json_integer_value(v));
		first = 0;
	}
	json_decref(pairs);
	return moving;
}

static int shard_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	if (iac_value_has_unknown(planned))
		return 0;
	if (validate(planned, prior) < 0)
		return IAC_ERR;
	json_t *want = ring_map(planned), *steps = json_array();
	if (!want) {
		json_decref(steps);
		return IAC_ERR;
	}
	iac_buf b = IAC_BUF_INIT;
	if (!prior) {
		iac_buf_printf(&b, "set up the slot guard on %zu cluster(s), publish version 1 of %zu slots",
			       json_array_size(json_object_get(planned, "clusters")), json_array_size(want));
		json_array_append_new(steps, json_string(iac_buf_cstr(&b)));
	} else {
		long moving = describe_moves(&b, json_object_get(prior, "map"), want);
		if (moving) {
			iac_buf_printf(&b, " (in groups of %ld: copy, catch up, pause writes, verify, flip, delete from "
					   "the source)", num(planned, "batch", 16));
			json_array_append_new(steps, json_string(iac_buf_cstr(&b)));
			if (ctx->warn) {
				char *m = iac_xasprintf("shard map '%s': %s", iac_json_str(planned, "name"), iac_buf_cstr(&b));
				ctx->warn(ctx, m);
				free(m);
			}
			json_object_set_new(planned, "$update", json_string(iac_buf_cstr(&b)));
		}
		if (num(prior, "in_transit", 0) > 0) {
			iac_buf_clear(&b);
			iac_buf_printf(&b, "settle %ld slot(s) an apply left in a move (rolled back before the flip, finished "
					   "after it)", num(prior, "in_transit", 0));
			json_array_append_new(steps, json_string(iac_buf_cstr(&b)));
			json_object_set_new(planned, "$update", json_string(iac_buf_cstr(&b)));
		}
		const char *ours = iac_json_str(prior, "sha256"), *there = iac_json_str(prior, "published_sha256");
		if (!moving && ours && there && strcmp(ours, there)) {
			json_array_append_new(steps, json_string("publish the map again (the published copy was changed or deleted)"));
			json_object_set_new(planned, "$update", json_string("the published map differs from iac's"));
		}
	}
	json_object_set_new(planned, "map", want);
	json_object_set_new(planned, "steps", steps);
	iac_buf_free(&b);
	return 0;
}

typedef struct {
	const json_t *attrs;
	json_t *map;      /* the live map, changed at each flip */
	long version;
	char sha[65];
} pub_state;

static int publish_now(const iac_rctx *ctx, pub_state *p)
{
	char *text = doc_text(p->attrs, p->map, p->version);
	int rc = publish_text(ctx, p->attrs, text);
	if (rc == 0)
		iac_sha256_hex(p->sha, text, strlen(text));
	free(text);
	return rc;
}

/* The flip of a move (shard_move.c): the group is the target's in the
 * next version of the map. */
static int flip(iac_db_shard *s, const long *slots, size_t n, const char *to)
{
	pub_state *p = s->ud;
	for (size_t i = 0; i < n; i++)
		json_array_set_new(p->map, (size_t)slots[i], json_string(to));
	p->version++;
	return publish_now(s->ctx, p);
}

static json_t *result(const json_t *planned, pub_state *p)
{
	json_t *out = json_deep_copy(planned);
	json_object_del(out, "steps");
	json_object_set(out, "map", p->map);
	json_object_set_new(out, "version", json_integer(p->version));
	json_object_set_new(out, "sha256", json_string(p->sha));
	json_object_set_new(out, "published_sha256", json_string(p->sha));
	json_object_set_new(out, "in_transit", json_integer(0));
	return out;
}

static int shard_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	iac_db_shard s;
	pub_state p = { planned, ring_map(planned), 1, "" };
	const json_t *c;
	size_t i;
	int rc = IAC_ERR;
	shard_init(&s, ctx, planned);
	if (!p.map || validate(planned, NULL) < 0)
		goto done;
	json_array_foreach(json_object_get(planned, "clusters"), i, c) if (setup_cluster(&s, c, p.map) < 0) goto done;
	if (publish_now(ctx, &p) < 0)
		goto done;
	*out = result(planned, &p);
	rc = 0;
done:
	json_decref(p.map);
	return rc;
}

/* Every (from, to) pair's slots, in groups of `batch`, one move each. */
static int move_all(iac_db_shard *s, const json_t *prior, const json_t *planned, const json_t *want, pub_state *p)
{
	long batch = num(planned, "batch", 16), total = 0, done = 0;
	long *group = malloc((size_t)s->slots * sizeof(long));
	char *taken = calloc((size_t)s->slots, 1);
	int rc = 0;
	for (long i = 0; i < s->slots; i++)
		total += strcmp(json_string_value(json_array_get(p->map, (size_t)i)) ?: "",
				json_string_value(json_array_get(want, (size_t)i)) ?: "") != 0;
	for (long i = 0; i < s->slots && rc == 0; i++) {
		const char *from = json_string_value(json_array_get(p->map, (size_t)i)) ?: "";
		const char *to = json_string_value(json_array_get(want, (size_t)i)) ?: "";
		if (taken[i] || !strcmp(from, to))
			continue;
		size_t n = 0;
		char *f = iac_xstrdup(from), *t = iac_xstrdup(to);
		for (long j = i; j < s->slots && (long)n < batch; j++)
			if (!taken[j] && !strcmp(json_string_value(json_array_get(p->map, (size_t)j)) ?: "", f) &&
			    !strcmp(json_string_value(json_array_get(want, (size_t)j)) ?: "", t)) {
				group[n++] = j;
				taken[j] = 1;
			}
		const json_t *cf = find_cluster(planned, prior, f), *ct = find_cluster(planned, prior, t), *mf, *mt;
		if (!cf || !ct)
			rc = iac_err_set("shard map '%s': slot %ld is on cluster '%s', which is in neither the old nor the new "
					 "cluster set", s->map, i, f);
		else if (!(mf = leader_of(s->ctx, cf)) || !(mt = leader_of(s->ctx, ct)) ||
			 iac_db_shard_move(s, f, mf, t, mt, group, n) < 0)
			rc = IAC_ERR;
		done += (long)n;
		if (rc == 0 && s->ctx->progress) {
			char *m = iac_xasprintf("moved %ld of %ld slots (%ld rows), longest write pause %.0f ms", done, total,
						s->moved_rows, s->pause_ms);
			s->ctx->progress(s->ctx, m);
			free(m);
		}
		free(f);
		free(t);
	}
	free(group);
	free(taken);
	return rc;
}

/* Settles what a stopped apply left (from the map the clusters hold now,
 * refreshed into prior), then moves what the ring moves. */
static int shard_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	iac_db_shard s;
	pub_state p = { planned, json_deep_copy(json_object_get(prior, "map")), num(prior, "version", 1), "" };
	json_t *want = ring_map(planned);
	const json_t *c;
	size_t i;
	int rc = IAC_ERR;
	double t0 = iac_now_ms();
	shard_init(&s, ctx, planned);
	s.publish = flip;
	s.ud = &p;
	if (!want || !json_is_array(p.map) || validate(planned, prior) < 0)
		goto done;
	json_array_foreach(json_object_get(prior, "clusters"), i, c) if (setup_cluster(&s, c, p.map) < 0) goto done;
	json_array_foreach(json_object_get(planned, "clusters"), i, c) {
		if (!find_cluster(prior, NULL, iac_json_str(c, "name")) && setup_cluster(&s, c, p.map) < 0)
			goto done;
	}
	if (move_all(&s, prior, planned, want, &p) < 0)
		goto done;
	if (!s.moved_slots) {
		/* nothing flipped: publish only what changed (the clusters'
		 * addresses, a copy edited or deleted, the targets), as a new
		 * version */
		char *text = doc_text(planned, p.map, p.version);
		iac_sha256_hex(p.sha, text, strlen(text));
		free(text);
		if (strcmp(p.sha, iac_json_str(prior, "published_sha256") ?: "") ||
		    !iac_value_equal(json_object_get(prior, "publish"), json_object_get(planned, "publish"))) {
			p.version++;
			if (publish_now(ctx, &p) < 0)
				goto done;
		}
	}
	*out = result(planned, &p);
	if (s.moved_rows || !iac_value_equal(json_object_get(prior, "map"), p.map))
		json_object_set_new(*out, "last_move",
				    json_pack("{s:I,s:I,s:f,s:f}", "slots",
					      (json_int_t)s.moved_slots, "rows",
					      (json_int_t)s.moved_rows, "seconds", (iac_now_ms() - t0) / 1e3,
					      "max_write_pause_ms", s.pause_ms));
	rc = 0;
done:
	if (rc < 0 && p.version != num(prior, "version", 1))
		iac_err_prefix("shard map '%s': stopped at map version %ld (the next apply continues from it)",
			       s.map, p.version);
	json_decref(want);
	json_decref(p.map);
	return rc;
}

/* The map as the clusters hold it, and for slots in a move as the first
 * published copy has it (published, the move goes forward; not yet, back). */
static int shard_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	iac_db_shard s;
	const json_t *clusters = json_object_get(prior, "clusters"), *c;
	size_t i, n = json_array_size(clusters), set_up = 0;
	long transit_all = 0;
	unsigned char *transit = NULL;
	json_t *pmap = NULL;
	int rc = IAC_ERR;
	char hex[65];
	shard_init(&s, ctx, prior);
	*out = NULL;
	unsigned char *no = calloc(n * (size_t)s.slots + 1, 1), *has = calloc(n + 1, 1);
	transit = calloc((size_t)s.slots, 1);
	json_array_foreach(clusters, i, c) {
		const json_t *l = leader_of(ctx, c);
		int r = l ? iac_db_shard_read(transit, no + i * (size_t)s.slots, &s, iac_json_str(c, "name"), l) : IAC_ERR;
		if (r == IAC_ERR)
			goto done;
		has[i] = r == 0;
		set_up += has[i];
	}
	for (long sl = 0; sl < s.slots; sl++)
		transit_all += transit[sl];
	if (!set_up) {
		rc = 0;   /* no cluster knows the map: gone */
		goto done;
	}
	long version = num(prior, "version", 1);
	if (published(hex, &pmap, &version, ctx, prior) < 0)
		goto done;
	/* a slot in a move is where the published map says (the flip); any
	 * other is the one cluster that does not say it is not its own */
	json_t *map = json_array();
	for (long sl = 0; sl < s.slots; sl++) {
		const char *owner = NULL;
		int owners = 0;
		for (i = 0; i < n; i++)
			if (has[i] && !no[i * (size_t)s.slots + (size_t)sl]) {
				owner = cname(clusters, i);
				owners++;
			}
		const json_t *was = json_array_get(pmap ? pmap : json_object_get(prior, "map"), (size_t)sl);
		json_array_append_new(map, owners == 1 && !transit[sl] ? json_string(owner)
					     : was ? json_incref((json_t *)was) : json_string(""));
	}
	*out = json_deep_copy(prior);
	json_object_set_new(*out, "map", map);
	json_object_set_new(*out, "in_transit", json_integer(transit_all));
	json_object_set_new(*out, "published_sha256", json_string(hex));
	/* versions only grow, also past one published behind iac's back */
	if (version > num(prior, "version", 1))
		json_object_set_new(*out, "version", json_integer(version));
	rc = 0;
done:
	json_decref(pmap);
	free(no);
	free(has);
	free(transit);
	return rc;
}

static int shard_remove(const iac_rctx *ctx, const json_t *prior)
{
	iac_db_shard s;
	const json_t *c, *l;
	size_t i;
	shard_init(&s, ctx, prior);
	json_array_foreach(json_object_get(prior, "clusters"), i, c) {
		if (!(l = leader_of(ctx, c)) || iac_db_shard_drop(&s, iac_json_str(c, "name"), l) < 0)
			return IAC_ERR;
	}
	return publish_text(ctx, prior, NULL);
}

const iac_rtype iac_db_shard_type = {
	.name = "db.shard_map",
	.attrs = shard_attrs,
	.doc = "a versioned map of slots to clusters, published to applications; moves slots when the cluster set changes",
	.plan = shard_plan,
	.read = shard_read,
	.create = shard_create,
	.update = shard_update,
	.remove = shard_remove,
	.gone_reason = "no cluster holds the map's slot state",
};
