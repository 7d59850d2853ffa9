/* cmd_cache: `iac cache ...`, the operator's commands for cache clusters.
 *
 *   iac cache status [CLUSTER] [-json]       (also `iac status cache [CLUSTER]`)
 *   iac cache invalidate CLUSTER PATTERN | -class NAME [-json]
 *   iac cache ring   -node NAME[:WEIGHT]=POINT_NAME ... [-hash H] [-hash-tag T] [-vnodes N]
 *   iac cache locate -node ... [KEY...]       (keys from stdin when none given)
 *
 * status and invalidate read the clusters from state (cache.cluster, which
 * cache_cluster makes) and talk to every node directly: Redis INFO / SCAN +
 * UNLINK, Memcached stats / a namespace bump (client.h). `ring` prints the
 * ring document (docs/cache.md), `locate` one "NODE<TAB>KEY" line per key:
 * where iac's ring (and so twemproxy and libmemcached with the same servers)
 * sends each key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/cache/cache.h"
#include "providers/cache/cache_int.h"
#include "providers/cache/client.h"
#include "iac/core/ketama.h"

#include "iac/cli/session.h"
#include "iac/core/json.h"

#include "iac/core/args.h"
#include "iac/core/err.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#ifdef IAC_CACHE_HAVE_DEPLOY
#include "iac/deploy/haproxy_api.h"
#endif

typedef struct {
	iac_strlist nodes;
	const char *hash;
	const char *hash_tag;
	int vnodes;
} ring_opts;

/* "NAME[:WEIGHT]=POINT_NAME" into a ring node; the strings point into a
 * copy the caller frees. */
static int parse_node(iac_ketama_node *out, char **copy, const char *spec)
{
	char *s = strdup(spec), *eq = s ? strchr(s, '=') : NULL;
	*copy = s;
	if (!eq || eq == s || !eq[1])
		return iac_err_set("-node '%s' must be NAME[:WEIGHT]=POINT_NAME", spec);
	*eq = '\0';
	out->name = s;
	out->point_name = eq + 1;
	out->weight = 1;
	char *colon = strchr(s, ':');
	if (colon) {
		char *end;
		*colon = '\0';
		long w = strtol(colon + 1, &end, 10);
		if (!colon[1] || *end || w < 1 || w > 1000000)
			return iac_err_set("-node '%s': weight must be a whole number from 1 to 1000000", spec);
		out->weight = (uint32_t)w;
	}
	return 0;
}

static int build_ring(iac_ketama **out, const ring_opts *o)
{
	int rc = IAC_ERR;
	size_t n = o->nodes.n;
	iac_ketama_node *nodes = calloc(n ? n : 1, sizeof(*nodes));
	char **copies = calloc(n ? n : 1, sizeof(char *));
	*out = NULL;
	if (!nodes || !copies) {
		iac_err_set("out of memory");
		goto done;
	}
	if (n == 0) {
		iac_err_set("no nodes: give -node NAME[:WEIGHT]=POINT_NAME for each server");
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		if (parse_node(&nodes[i], &copies[i], o->nodes.items[i]) < 0)
			goto done;
	if (o->vnodes < 4) {   /* unsigned below would make -5 a huge count */
		iac_err_set("-vnodes %d must be a multiple of 4 between 4 and 4096", o->vnodes);
		goto done;
	}
	rc = iac_ketama_new(out, nodes, n, o->hash, o->hash_tag, (unsigned)o->vnodes);
done:
	for (size_t i = 0; copies && i < n; i++)
		free(copies[i]);
	free(copies);
	free(nodes);
	return rc;
}

static void locate_one(const iac_ketama *r, const char *key, size_t len)
{
	size_t i = iac_ketama_locate(r, key, len);
	printf("%s\t%.*s\n", iac_ketama_node_name(r, i), (int)len, key);
}

static int cmd_locate(const iac_ketama *r, const iac_strlist *keys)
{
	if (keys->n > 1) {
		for (size_t i = 1; i < keys->n; i++)
			locate_one(r, keys->items[i], strlen(keys->items[i]));
		return 0;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		locate_one(r, line, (size_t)len);
	}
	free(line);
	return 0;
}

static int cmd_ring(const iac_ketama *r)
{
	json_t *doc = iac_ketama_to_json(r, "iac-cache-ring/1");
	if (!doc)
		return iac_err_set("out of memory");
	int rc = json_dumpf(doc, stdout, JSON_INDENT(2)) < 0 ? IAC_ERR : 0;
	putchar('\n');
	json_decref(doc);
	return rc;
}

/* The cache.cluster entries of state (new array of their attributes),
 * only CLUSTER's when named. */
static json_t *clusters_in_state(iac_session *s, const char *only)
{
	json_t *out = json_array();
	size_t n = 0;
	const char **addrs = iac_state_addresses(s->st, &n);
	for (size_t i = 0; i < n; i++) {
		json_t *e = iac_state_get(s->st, addrs[i]);
		json_t *a = json_object_get(e, "attributes");
		if (!json_is_object(a) || strcmp(iac_json_str(e, "type") ?: "", "cache.cluster"))
			continue;
		if (only && strcmp(iac_json_str(a, "cluster") ?: "", only))
			continue;
		/* with Sentinel, each node's primary as it is now */
		json_t *live = NULL;
		if (iac_cache_live_nodes(&live, NULL, a) < 0) {
			iac_log_warn("cache '%s': %s; using the configured addresses", iac_json_str(a, "cluster"), iac_err_last());
			live = json_incref(a);
		}
		json_array_append_new(out, live);
	}
	free(addrs);
	return out;
}

static int is_redis(const json_t *cluster)
{
	return !strcmp(iac_json_str(cluster, "engine") ?: "", "redis");
}

static int open_node(iac_cache_conn **c, const json_t *node)
{
	return iac_cache_conn_open(c, iac_json_str(node, "address"),
				   (unsigned)json_integer_value(json_object_get(node, "port")), 5000);
}

static json_t *node_doc(const json_t *node)
{
	return json_pack("{s:O?,s:O?,s:O?}", "name", json_object_get(node, "name"), "address",
			 json_object_get(node, "address"), "port", json_object_get(node, "port"));
}

/* One node's figures into a JSON object (or its error); 0 / IAC_ERR. */
static int node_status(json_t **out, const json_t *cluster, const json_t *node)
{
	iac_cache_conn *c = NULL;
	iac_cache_stats st;
	*out = node_doc(node);
	int rc = open_node(&c, node);
	if (rc == 0)
		rc = is_redis(cluster) ? iac_cache_stats_redis(&st, c) : iac_cache_stats_memcached(&st, c);
	iac_cache_conn_close(c);
	if (rc < 0) {
		json_object_set_new(*out, "error", json_string(iac_err_last()));
		return IAC_ERR;
	}
	json_object_set_new(*out, "hits", json_integer(st.hits));
	json_object_set_new(*out, "misses", json_integer(st.misses));
	if (st.hits >= 0 && st.misses >= 0)
		json_object_set_new(*out, "hit_rate", st.hits + st.misses ? json_real((double)st.hits / (double)(st.hits + st.misses))
									   : json_null());
	json_object_set_new(*out, "evictions", json_integer(st.evictions));
	json_object_set_new(*out, "memory", json_integer(st.memory));
	json_object_set_new(*out, "keys", json_integer(st.keys));
	json_object_set_new(*out, "clients", json_integer(st.clients));
	return 0;
}

#ifdef IAC_CACHE_HAVE_DEPLOY
/* Field k of a CSV line (HAProxy's stats CSV has no quoting), up to the
 * next comma or the end; NULL when the line is shorter. */
static const char *csv_field(const char *line, long k, size_t *len)
{
	for (; k > 0 && line; k--) {
		line = strchr(line, ',');
		line = line ? line + 1 : NULL;
	}
	if (line)
		*len = strcspn(line, ",\n");
	return line;
}

/* The sum of a `show stat` column over the BACKEND rows of `backend`; -1
 * when the column is missing. */
static long long stat_column(const char *csv, const char *backend, const char *column)
{
	if (!iac_str_starts(csv, "# "))
		return -1;
	long col = -1;
	size_t len = 0;
	const char *f, *eol = strchr(csv, '\n');
	for (long k = 0; col < 0 && (f = csv_field(csv + 2, k, &len)) && (!eol || f < eol); k++)
		if (len == strlen(column) && !strncmp(f, column, len))
			col = k;
	if (col < 0)
		return -1;
	long long sum = 0;
	for (const char *line = eol; line && line[1]; line = eol) {
		size_t plen, slen;
		eol = strchr(line + 1, '\n');
		const char *px = csv_field(line + 1, 0, &plen), *sv = csv_field(line + 1, 1, &slen);
		if (!sv || plen != strlen(backend) || strncmp(px, backend, plen) || slen != 7 || strncmp(sv, "BACKEND", 7))
			continue;
		if ((f = csv_field(line + 1, col, &len)) && (!eol || f < eol))
			sum += atoll(f);
	}
	return sum;
}

#endif

/* Level 1 (l1 = { api, backend }): HAProxy's cache lookups and hits on
 * that backend since HAProxy started (a reload starts them again). */
static json_t *l1_status(const json_t *l1, int *failed)
{
	const char *api = iac_json_str(l1, "api"), *be = iac_json_str(l1, "backend") ?: "app";
	json_t *o = json_pack("{s:s?,s:s}", "api", api, "backend", be);
#ifndef IAC_CACHE_HAVE_DEPLOY
	json_object_set_new(o, "error", json_string("this build has no deploy part (IAC_SKIP): HAProxy is not asked"));
	*failed = 1;
	return o;
#else
	iac_haproxy *h = NULL;
	char *csv = NULL;
	if (!api || iac_haproxy_open(&h, api, 3000) < 0 || iac_haproxy_cmd(&csv, h, "show stat") < 0) {
		json_object_set_new(o, "error", json_string(api ? iac_err_last() : "no runtime API address"));
		*failed = 1;
		goto done;
	}
	long long lookups = stat_column(csv, be, "cache_lookups"), hits = stat_column(csv, be, "cache_hits");
	if (lookups < 0 || hits < 0) {
		json_object_set_new(o, "error", json_string("'show stat' has no cache_lookups / cache_hits columns"));
		*failed = 1;
		goto done;
	}
	json_object_set_new(o, "lookups", json_integer(lookups));
	json_object_set_new(o, "hits", json_integer(hits));
	json_object_set_new(o, "misses", json_integer(lookups - hits));
	json_object_set_new(o, "hit_rate", lookups ? json_real((double)hits / (double)lookups) : json_null());
done:
	free(csv);
	iac_haproxy_free(h);
	return o;
#endif
}

static void human_bytes(char *buf, size_t size, long long b)
{
	if (b < 0)
		snprintf(buf, size, "-");
	else if (b >= 1024LL * 1024 * 1024)
		snprintf(buf, size, "%.1fG", (double)b / (1024.0 * 1024 * 1024));
	else if (b >= 1024 * 1024)
		snprintf(buf, size, "%.1fM", (double)b / (1024.0 * 1024));
	else
		snprintf(buf, size, "%.1fK", (double)b / 1024.0);
}

static void print_level(const char *level, const char *what, const char *where, const json_t *o)
{
	const json_t *hr = json_object_get(o, "hit_rate");
	char rate[16] = "-";
	if (json_is_real(hr))
		snprintf(rate, sizeof(rate), "%.1f%%", json_real_value(hr) * 100);
	printf("  %s: %s (%s): %lld hits, %lld misses, hit rate %s\n", level, what, where,
	       (long long)json_integer_value(json_object_get(o, "hits")),
	       (long long)json_integer_value(json_object_get(o, "misses")), rate);
}

static void print_status(const json_t *doc)
{
	const json_t *cl, *n;
	size_t i, j;
	json_array_foreach(json_object_get(doc, "clusters"), i, cl) {
		printf("%scache '%s'%s (%s, %zu nodes)\n", iac_color(IAC_C_BOLD), iac_json_str(cl, "cluster"),
		       iac_color(IAC_C_RESET), iac_json_str(cl, "engine"), json_array_size(json_object_get(cl, "nodes")));
		const json_t *l1 = json_object_get(cl, "level1");
		if (l1 && iac_json_str(l1, "error"))
			printf("  level 1: HAProxy cache at %s: %s%s%s\n", iac_json_str(l1, "api"), iac_color(IAC_C_RED),
			       iac_json_str(l1, "error"), iac_color(IAC_C_RESET));
		else if (l1)
			print_level("level 1", "HAProxy cache", iac_json_str(l1, "api"), l1);
		if (l1 && json_object_get(cl, "level2"))
			print_level("level 2", "cache nodes", iac_json_str(cl, "cluster"), json_object_get(cl, "level2"));
		printf("  %-22s %-21s %10s %10s %8s %9s %8s %9s %7s\n", "NODE", "ADDRESS", "HITS", "MISSES", "HIT RATE",
		       "EVICTIONS", "MEMORY", "KEYS", "CLIENTS");
		json_array_foreach(json_object_get(cl, "nodes"), j, n) {
			char addr[300], mem[32], rate[16];
			snprintf(addr, sizeof(addr), "%s:%lld", iac_json_str(n, "address"),
				 (long long)json_integer_value(json_object_get(n, "port")));
			if (iac_json_str(n, "error")) {
				printf("  %-22s %-21s %s%s%s\n", iac_json_str(n, "name"), addr, iac_color(IAC_C_RED),
				       iac_json_str(n, "error"), iac_color(IAC_C_RESET));
				continue;
			}
			human_bytes(mem, sizeof(mem), json_integer_value(json_object_get(n, "memory")));
			const json_t *hr = json_object_get(n, "hit_rate");
			if (json_is_real(hr))
				snprintf(rate, sizeof(rate), "%.1f%%", json_real_value(hr) * 100);
			else
				snprintf(rate, sizeof(rate), "-");
			printf("  %-22s %-21s %10lld %10lld %8s %9lld %8s %9lld %7lld\n", iac_json_str(n, "name"), addr,
			       (long long)json_integer_value(json_object_get(n, "hits")),
			       (long long)json_integer_value(json_object_get(n, "misses")), rate,
			       (long long)json_integer_value(json_object_get(n, "evictions")), mem,
			       (long long)json_integer_value(json_object_get(n, "keys")),
			       (long long)json_integer_value(json_object_get(n, "clients")));
		}
	}
}

static void print_json(const json_t *doc)
{
	json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	putchar('\n');
}

/* `iac cache status [CLUSTER]`: 0, or 1 when a node could not be asked. */
static int cmd_status(iac_session *s, const char *only)
{
	if (iac_session_open_state(s, 0) < 0)
		return 1;
	json_t *clusters = clusters_in_state(s, only), *cl, *doc = json_pack("{s:[]}", "clusters");
	size_t i, j;
	int rc = 0;
	if (!json_array_size(clusters)) {
		iac_log_error(only ? "no cache cluster '%s' in state (declare it with cache_cluster and run 'iac apply')"
				   : "no cache clusters in state%s (declare one with cache_cluster and run 'iac apply')",
			      only ? only : "");
		rc = 1;
	}
	json_array_foreach(clusters, i, cl) {
		json_t *nodes = json_array(), *n;
		long long hits = 0, misses = 0;
		json_array_foreach(json_object_get(cl, "nodes"), j, n) {
			json_t *one = NULL;
			if (node_status(&one, cl, n) < 0)
				rc = 1;
			hits += json_integer_value(json_object_get(one, "hits"));
			misses += json_integer_value(json_object_get(one, "misses"));
			json_array_append_new(nodes, one);
		}
		json_t *c = json_pack("{s:O?,s:O?,s:o}", "cluster", json_object_get(cl, "cluster"), "engine",
				      json_object_get(cl, "engine"), "nodes", nodes);
		/* both levels together: the HTTP cache in front, the nodes behind */
		if (json_is_object(json_object_get(cl, "l1"))) {
			int failed = 0;
			json_object_set_new(c, "level1", l1_status(json_object_get(cl, "l1"), &failed));
			json_object_set_new(c, "level2", json_pack("{s:I,s:I,s:o}", "hits", (json_int_t)hits, "misses",
								  (json_int_t)misses, "hit_rate",
								  hits + misses ? json_real((double)hits / (double)(hits + misses))
										: json_null()));
			rc |= failed;
		}
		json_array_append_new(json_object_get(doc, "clusters"), c);
	}
	if (s->json)
		print_json(doc);
	else if (json_array_size(clusters))
		print_status(doc);
	json_decref(doc);
	json_decref(clusters);
	return rc;
}

/* Memcached cannot delete by pattern: a class's keys carry a namespace
 * (docs/cache.md), bumped on the node the ring gives the namespace key. */
static int invalidate_memcached(json_t *nodes_out, const json_t *cl, const char *klass)
{
	iac_ketama *ring = NULL;
	iac_cache_conn *c = NULL;
	unsigned long long v = 0;
	char key[300];
	snprintf(key, sizeof(key), "iac:ns:%s", klass);
	if (iac_ketama_of_attrs(&ring, cl) < 0)
		return IAC_ERR;
	size_t owner = iac_ketama_locate(ring, key, strlen(key));
	iac_ketama_free(ring);
	const json_t *node = json_array_get(json_object_get(cl, "nodes"), owner);
	json_t *one = node_doc(node);
	int rc = open_node(&c, node);
	if (rc == 0)
		rc = iac_cache_mc_bump(&v, c, key);
	iac_cache_conn_close(c);
	if (rc < 0)
		json_object_set_new(one, "error", json_string(iac_err_last()));
	else
		json_object_set_new(one, "namespace", json_pack("{s:s,s:I}", "key", key, "value", (json_int_t)v));
	json_array_append_new(nodes_out, one);
	return rc;
}

static int invalidate_redis(json_t *nodes_out, const json_t *cl, const char *pattern)
{
	const json_t *n;
	size_t j;
	int rc = 0;
	json_array_foreach(json_object_get(cl, "nodes"), j, n) {
		iac_cache_conn *c = NULL;
		long long removed = 0;
		json_t *one = node_doc(n);
		int r = open_node(&c, n);
		if (r == 0)
			r = iac_cache_redis_unlink(&removed, c, pattern);
		iac_cache_conn_close(c);
		if (r < 0) {
			json_object_set_new(one, "error", json_string(iac_err_last()));
			rc = IAC_ERR;
		}
		json_object_set_new(one, "removed", json_integer(removed));
		json_array_append_new(nodes_out, one);
	}
	return rc;
}

/* `iac cache invalidate CLUSTER PATTERN|-class NAME`: 0, or 1 when a node
 * failed (the others are still done and reported). */
static int cmd_invalidate(iac_session *s, const iac_strlist *pos, const char *klass)
{
	if (pos->n < 2 || (pos->n == 2 && !klass) || (pos->n == 3 && klass) || pos->n > 3) {
		iac_log_error("usage: iac cache invalidate CLUSTER PATTERN | iac cache invalidate CLUSTER -class NAME");
		return 1;
	}
	if (iac_session_open_state(s, 0) < 0)
		return 1;
	const char *name = pos->items[1];
	json_t *clusters = clusters_in_state(s, name), *cl = json_array_get(clusters, 0);
	char pattern[300];
	int rc = 1;
	if (!cl) {
		iac_log_error("no cache cluster '%s' in state", name);
		goto done;
	}
	if (klass && !json_object_get(json_object_get(cl, "classes"), klass)) {
		iac_log_error("cache cluster '%s' has no class '%s'", name, klass);
		goto done;
	}
	/* a class's keys are "CLASS:..." (docs/cache.md) */
	snprintf(pattern, sizeof(pattern), "%s", klass ? "" : pos->items[2]);
	if (klass)
		snprintf(pattern, sizeof(pattern), "%s:*", klass);
	if (!is_redis(cl) && !klass) {
		iac_log_error("memcached cannot remove keys by pattern; invalidate a class: iac cache invalidate %s -class NAME",
			      name);
		goto done;
	}
	json_t *nodes = json_array();
	int r = is_redis(cl) ? invalidate_redis(nodes, cl, pattern) : invalidate_memcached(nodes, cl, klass);
	json_t *doc = json_pack("{s:s,s:O?,s:s?,s:s?,s:o}", "cluster", name, "engine", json_object_get(cl, "engine"),
				"pattern", is_redis(cl) ? pattern : NULL, "class", klass, "nodes", nodes);
	if (s->json) {
		print_json(doc);
	} else {
		const json_t *n;
		size_t j;
		long long total = 0;
		json_array_foreach(nodes, j, n) {
			if (iac_json_str(n, "error"))
				printf("  %-22s %serror: %s%s\n", iac_json_str(n, "name"), iac_color(IAC_C_RED),
				       iac_json_str(n, "error"), iac_color(IAC_C_RESET));
			else if (json_object_get(n, "namespace"))
				printf("  %-22s namespace %s is now %lld: the class's old keys are no longer read\n",
				       iac_json_str(n, "name"), iac_json_str(json_object_get(n, "namespace"), "key"),
				       (long long)json_integer_value(json_object_get(json_object_get(n, "namespace"), "value")));
			else
				printf("  %-22s %lld keys removed\n", iac_json_str(n, "name"),
				       (long long)json_integer_value(json_object_get(n, "removed")));
			total += json_integer_value(json_object_get(n, "removed"));
		}
		if (is_redis(cl))
			printf("cache '%s': %lld keys matching '%s' removed on %zu nodes\n", name, total, pattern,
			       json_array_size(nodes));
	}
	json_decref(doc);
	rc = r < 0 ? 1 : 0;
done:
	json_decref(clusters);
	return rc;
}

/* `iac cache follow CLUSTER [-var ...] [-var-file ...] [-once] [-timeout D]`:
 * the ring and proxies follow Sentinel's promotions (follow.c). */
static int cmd_follow(iac_session *s, const iac_strlist *pos, const iac_strlist *apply_args, int once,
		      double timeout_ms)
{
	if (pos->n != 2) {
		iac_log_error("usage: iac cache follow CLUSTER [-var NAME=VALUE ...] [-var-file FILE] [-once] [-timeout D]");
		return 1;
	}
	if (iac_session_open_state(s, 0) < 0)
		return 1;
	const char *name = pos->items[1];
	json_t *clusters = clusters_in_state(s, name), *cl = json_array_get(clusters, 0);
	iac_strlist targets = { 0 };
	int rc = 1;
	if (!cl) {
		iac_log_error("no cache cluster '%s' in state", name);
		goto done;
	}
	/* what a failover changes: the ring documents, the proxy files and
	 * the proxies that read them at start */
	size_t n = 0;
	const char **addrs = iac_state_addresses(s->st, &n);
	char *svc = iac_xasprintf("ssh.service.%s_proxy_", name);
	for (size_t i = 0; i < n; i++) {
		json_t *e = iac_state_get(s->st, addrs[i]);
		const char *type = iac_json_str(e, "type") ?: "";
		const char *owner = iac_json_str(json_object_get(e, "attributes"), "cluster") ?: "";
		if (((!strcmp(type, "cache.ring") || !strcmp(type, "cache.proxy")) && !strcmp(owner, name)) ||
		    iac_str_starts(addrs[i], svc))
			iac_strlist_push(&targets, addrs[i]);
	}
	free(svc);
	free(addrs);
	if (!targets.n) {
		iac_log_error("cache '%s' publishes no ring and runs no proxy: nothing to follow", name);
		goto done;
	}
	rc = iac_cache_follow(cl, &targets, apply_args, once, timeout_ms);
done:
	iac_strlist_free(&targets);
	json_decref(clusters);
	return rc;
}

void iac_cache_cmd_help(void)
{
	printf("usage: iac cache status [CLUSTER] [-json]\n"
	       "       iac cache invalidate CLUSTER PATTERN | iac cache invalidate CLUSTER -class NAME [-json]\n"
	       "       iac cache ring -node NAME[:WEIGHT]=POINT_NAME ... [-hash H] [-hash-tag T] [-vnodes N]\n"
	       "       iac cache locate -node ... [KEY...]\n"
	       "       iac cache follow CLUSTER [-var NAME=VALUE ...] [-var-file FILE] [-once] [-timeout D]\n\n"
	       "status prints per node hits, misses, hit rate, evictions, memory, keys and\n"
	       "clients (Redis INFO, Memcached stats). invalidate removes the keys matching\n"
	       "PATTERN (Redis SCAN + UNLINK on every node), or a class's keys (Redis: 'NAME:*';\n"
	       "Memcached: the class's namespace is bumped). ring prints the ketama ring as\n"
	       "published (docs/cache.md); locate prints NODE<TAB>KEY for each key (from stdin\n"
	       "when none is given). POINT_NAME is what twemproxy hashes: the server's name,\n"
	       "else ADDR:PORT (ADDR for 11211). Hashes: md5 (default), fnv1a_64, fnv1_64,\n"
	       "fnv1a_32, fnv1_32. follow waits for Sentinel's +switch-master and applies the\n"
	       "cluster's ring and proxies at once (give the -var values of your applies).\n");
}

/* "flag ITEM" for each item of from, appended to args. */
static void push_each(iac_strlist *args, const char *flag, const iac_strlist *from)
{
	for (size_t i = 0; i < from->n; i++) {
		iac_strlist_push(args, flag);
		iac_strlist_push(args, from->items[i]);
	}
}

int iac_cache_cmd(int argc, char **argv)
{
	ring_opts o = { .nodes = { 0 }, .vnodes = 160 };
	iac_strlist pos = { 0 };
	iac_ketama *r = NULL;
	iac_session s;
	const char *klass = NULL;
	iac_strlist vars = { 0 }, var_files = { 0 }, apply_args = { 0 };
	int once = 0;
	double follow_timeout = 0;
	int rc = 1;
	iac_session_init(&s, "cache");
	iac_opt opts[] = {
		{ "node", IAC_OPT_LIST, &o.nodes, "NAME[:WEIGHT]=POINT_NAME, one per server (ring, locate)" },
		{ "hash", IAC_OPT_STRING, &o.hash, "the key hash (md5, fnv1a_64, ...) (ring, locate)" },
		{ "hash-tag", IAC_OPT_STRING, &o.hash_tag, "two characters: hash only the part between them" },
		{ "vnodes", IAC_OPT_INT, &o.vnodes, "points per node at equal weights (160)" },
		{ "class", IAC_OPT_STRING, &klass, "invalidate: the data class to invalidate" },
		{ "json", IAC_OPT_BOOL, &s.json, "machine-readable output (status, invalidate)" },
		{ "var", IAC_OPT_LIST, &vars, "follow: NAME=VALUE for the follow-up apply (repeatable)" },
		{ "var-file", IAC_OPT_LIST, &var_files, "follow: a variable file for the follow-up apply" },
		{ "once", IAC_OPT_BOOL, &once, "follow: stop after the first follow-up" },
		{ "timeout", IAC_OPT_DURATION, &follow_timeout, "follow: give up after this long without a failover" },
		{ "backend-config", IAC_OPT_LIST, &s.backend_config,
		  "KEY=VALUE: a setting of the state backend (repeatable; never printed)" },
		{ "no-color", IAC_OPT_BOOL, &s.no_color, "no colour" },
		{ NULL, 0, NULL, NULL },
	};
	if (iac_args_parse(opts, "cache", argc, argv, &pos) < 0) {
		iac_log_error("%s", iac_err_last());
		goto done;
	}
	if (s.no_color || s.json)
		iac_log_set_color(0);
	const char *sub = pos.n ? pos.items[0] : NULL;
	if (sub && !strcmp(sub, "status")) {
		rc = pos.n > 2 ? (iac_log_error("usage: iac cache status [CLUSTER]"), 1)
			       : cmd_status(&s, pos.n == 2 ? pos.items[1] : NULL);
		goto done;
	}
	if (sub && !strcmp(sub, "follow")) {
		/* the follow-up apply writes the same state: the same backend */
		push_each(&apply_args, "-var", &vars);
		push_each(&apply_args, "-var-file", &var_files);
		push_each(&apply_args, "-backend-config", &s.backend_config);
		rc = cmd_follow(&s, &pos, &apply_args, once, follow_timeout);
		goto done;
	}
	if (sub && !strcmp(sub, "invalidate")) {
		rc = cmd_invalidate(&s, &pos, klass);
		goto done;
	}
	if (!sub || (strcmp(sub, "ring") && strcmp(sub, "locate"))) {
		static const char *const subs[] = { "status", "invalidate", "ring", "locate", "follow" };
		const char *pick = sub ? iac_suggest(sub, subs, 5) : NULL;
		if (sub)
			iac_log_error("unknown subcommand 'cache %s'%s%s%s", sub, pick ? "; did you mean '" : "",
				      pick ? pick : "", pick ? "'?" : "");
		iac_cache_cmd_help();
		goto done;
	}
	if (build_ring(&r, &o) < 0) {
		iac_log_error("%s", iac_err_last());
		goto done;
	}
	if ((!strcmp(sub, "ring") ? cmd_ring(r) : cmd_locate(r, &pos)) < 0)
		iac_log_error("%s", iac_err_last());
	else
		rc = 0;
done:
	iac_session_close(&s);
	iac_strlist_free(&vars);
	iac_strlist_free(&var_files);
	iac_strlist_free(&apply_args);
	iac_ketama_free(r);
	iac_strlist_free(&o.nodes);
	iac_strlist_free(&pos);
	return rc;
}
