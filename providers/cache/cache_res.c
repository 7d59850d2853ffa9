/* cache_res: the resources of a cache cluster that are iac's own (the
 * nodes themselves are ssh.file + ssh.service, made by
 * modules/cache_cluster.lua):
 *
 *   cache.ring   the ring document (docs/cache.md) written to a file on a
 *                host or to an etcd key, so clients without a proxy place
 *                keys as the proxy does. The plan says, when nodes join or leave, which share
 *                of the keys moves and which nodes give it up.
 *   cache.proxy  a twemproxy (nutcracker) configuration for the cluster,
 *                checked with `nutcracker -t` on the host before it replaces
 *                the live one.
 *
 * Both keep the SHA-256 of what they wrote; a file changed by hand reads
 * back as a different document and the next apply writes it again. */
#include "providers/cache/cache.h"
#include "providers/cache/cache_int.h"
#include "iac/core/ketama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/etcd/etcd.h"
#include "iac/host/host.h"

static const iac_attr ring_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_FORCE_NEW, "host to publish on (default: this machine)" },
	{ "path", IAC_T_STRING, IAC_A_FORCE_NEW, "file receiving the ring JSON (or endpoints + key)" },
	{ "endpoints", IAC_T_STRING, 0, "etcd endpoints, comma separated, to publish to a key instead" },
	{ "key", IAC_T_STRING, IAC_A_FORCE_NEW, "etcd key receiving the ring JSON" },
	{ "cluster", IAC_T_STRING, IAC_A_REQUIRED, "the cache_cluster's name" },
	{ "engine", IAC_T_STRING, IAC_A_REQUIRED, "\"redis\" or \"memcached\"" },
	{ "hash", IAC_T_STRING, 0, "the distribution, \"ketama\" (the only one)" },
	{ "key_hash", IAC_T_STRING, 0, "key hash: md5 (default), fnv1a_64, fnv1_64, fnv1a_32, fnv1_32" },
	{ "hash_tag", IAC_T_STRING, 0, "twemproxy's hash_tag, two characters (\"{}\")" },
	{ "vnodes", IAC_T_NUMBER, 0, "points per node at equal weights, default 160" },
	{ "point_names", IAC_T_STRING, 0, "what the ring's points hash: \"address\" (ADDR:PORT, default) or \"name\"" },
	{ "sentinels", IAC_T_LIST, 0, "Sentinels (ADDRESS:PORT) that know each node's primary: the file follows failovers" },
	{ "nodes", IAC_T_LIST, IAC_A_REQUIRED, "{ name, address, port, weight } per node" },
	{ "classes", IAC_T_MAP, 0, "data classes: { ttl, jitter, namespace_by }, published for clients" },
	{ "sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of the published document" },
	{ NULL, 0, 0, NULL },
};

static const iac_attr cluster_attrs[] = {
	{ "cluster", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the cache_cluster's name" },
	{ "engine", IAC_T_STRING, IAC_A_REQUIRED, "\"redis\" or \"memcached\"" },
	{ "hash", IAC_T_STRING, 0, "the distribution, \"ketama\"" },
	{ "key_hash", IAC_T_STRING, 0, "key hash, as for cache.ring" },
	{ "hash_tag", IAC_T_STRING, 0, "twemproxy's hash_tag" },
	{ "vnodes", IAC_T_NUMBER, 0, "points per node at equal weights, default 160" },
	{ "point_names", IAC_T_STRING, 0, "what the ring's points hash: \"address\" (ADDR:PORT, default) or \"name\"" },
	{ "sentinels", IAC_T_LIST, 0, "Sentinels (ADDRESS:PORT) that know each node's primary: the file follows failovers" },
	{ "nodes", IAC_T_LIST, IAC_A_REQUIRED, "{ name, address, port, weight } per node" },
	{ "classes", IAC_T_MAP, 0, "data classes" },
	{ "warm", IAC_T_MAP, IAC_A_NO_DIFF, "{ on_join, max_rate, max_time }: copy moving keys before the ring changes" },
	{ "l1", IAC_T_MAP, 0, "the level-1 HTTP cache in front: { api, backend } of an haproxy with cache = { ... }" },
	{ "warmed", IAC_T_MAP, IAC_A_COMPUTED, "what the last warming did: copied, scanned, expired, seconds, complete" },
	{ NULL, 0, 0, NULL },
};

static const iac_attr proxy_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_FORCE_NEW, "host of the proxy (default: this machine)" },
	{ "path", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "nutcracker configuration file" },
	{ "cluster", IAC_T_STRING, IAC_A_REQUIRED, "the cache_cluster's name (the pool's name)" },
	{ "engine", IAC_T_STRING, IAC_A_REQUIRED, "\"redis\" or \"memcached\"" },
	{ "listen", IAC_T_STRING, IAC_A_REQUIRED, "ADDRESS:PORT the proxy listens on" },
	{ "hash", IAC_T_STRING, 0, "the distribution, \"ketama\"" },
	{ "key_hash", IAC_T_STRING, 0, "key hash, as for cache.ring" },
	{ "hash_tag", IAC_T_STRING, 0, "twemproxy's hash_tag" },
	{ "vnodes", IAC_T_NUMBER, 0, "must be 160: twemproxy's fixed point count" },
	{ "point_names", IAC_T_STRING, 0, "what the ring's points hash: \"address\" (ADDR:PORT, default) or \"name\"" },
	{ "sentinels", IAC_T_LIST, 0, "Sentinels (ADDRESS:PORT) that know each node's primary: the file follows failovers" },
	{ "nodes", IAC_T_LIST, IAC_A_REQUIRED, "{ name, address, port, weight } per node" },
	{ "restart", IAC_T_STRING, IAC_A_NO_DIFF, "command run on the host after an update replaced the configuration" },
	{ "sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of the configuration" },
	{ NULL, 0, 0, NULL },
};

/* The ring of a resource's `nodes`: each node's points hash "ADDR:PORT"
 * (just ADDR on 11211), what twemproxy and libmemcached hash for servers
 * listed without a name, so that either agrees with the published ring. */
int iac_ketama_of_attrs(iac_ketama **out, const json_t *attrs)
{
	const json_t *nodes = json_object_get(attrs, "nodes"), *n;
	size_t count = json_array_size(nodes), i;
	int rc = IAC_ERR;
	iac_ketama_node *rn = calloc(count ? count : 1, sizeof(*rn));
	char (*pn)[300] = calloc(count ? count : 1, sizeof(*pn));
	const char *hash = iac_json_str(attrs, "hash");
	json_int_t vnodes = json_integer_value(json_object_get(attrs, "vnodes"));
	const char *pnames = iac_json_str(attrs, "point_names");
	int by_name = pnames && !strcmp(pnames, "name");
	*out = NULL;
	if (pnames && !by_name && strcmp(pnames, "address")) {
		free(rn);
		free(pn);
		return iac_err_set("point_names must be \"address\" or \"name\", not '%s'", pnames);
	}
	if (!rn || !pn) {
		iac_err_set("out of memory");
		goto done;
	}
	if (hash && strcmp(hash, "ketama")) {
		iac_err_set("ring hash '%s' is not supported (use \"ketama\")", hash);
		goto done;
	}
	json_array_foreach(nodes, i, n) {
		const char *name = iac_json_str(n, "name"), *addr = iac_json_str(n, "address");
		json_int_t port = json_integer_value(json_object_get(n, "port"));
		json_int_t w = json_object_get(n, "weight") ? json_integer_value(json_object_get(n, "weight")) : 1;
		if (!name || !addr || port < 1 || port > 65535 || w < 1) {
			iac_err_set("nodes[%zu] needs a name, an address, a port (1-65535) and a weight >= 1", i + 1);
			goto done;
		}
		iac_ketama_point_name(pn[i], sizeof(pn[i]), addr, (unsigned)port, by_name ? name : NULL);
		rn[i] = (iac_ketama_node){ name, pn[i], (uint32_t)w };
	}
	rc = iac_ketama_new(out, rn, count, iac_json_str(attrs, "key_hash"), iac_json_str(attrs, "hash_tag"),
				vnodes > 0 ? (unsigned)vnodes : 160);
done:
	free(rn);
	free(pn);
	return rc;
}

/* The published document: the ring's own fields plus the cluster, its
 * engine, each node's address and port, and the data classes. */
static int render_ring(char **out, const json_t *attrs)
{
	iac_ketama *r = NULL;
	*out = NULL;
	if (iac_ketama_of_attrs(&r, attrs) < 0)
		return IAC_ERR;
	json_t *doc = iac_ketama_to_json(r, "iac-cache-ring/1"), *n;
	size_t i;
	iac_ketama_free(r);
	if (!doc)
		return iac_err_set("out of memory");
	json_object_set_new(doc, "cluster", json_string(iac_json_str(attrs, "cluster")));
	json_object_set_new(doc, "engine", json_string(iac_json_str(attrs, "engine")));
	json_array_foreach(json_object_get(doc, "nodes"), i, n) {
		const json_t *src = json_array_get(json_object_get(attrs, "nodes"), i);
		json_object_set(n, "address", json_object_get(src, "address"));
		json_object_set(n, "port", json_object_get(src, "port"));
	}
	json_t *classes = json_object_get(attrs, "classes");
	json_object_set_new(doc, "classes", classes ? json_deep_copy(classes) : json_object());
	*out = json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(doc);
	return *out ? 0 : iac_err_set("out of memory");
}

static int check_common(const json_t *attrs)
{
	const char *engine = iac_json_str(attrs, "engine"), *path = iac_json_str(attrs, "path");
	if (engine && strcmp(engine, "redis") && strcmp(engine, "memcached"))
		return iac_err_set("engine must be \"redis\" or \"memcached\", not '%s'", engine);
	if (path && strchr(path, '\''))
		return iac_err_set("path '%s' must not contain a single quote", path);
	return 0;
}

/* 1 when node i of ring `a` (by its point name) is in ring `b` too. */
static int in_ring(const iac_ketama *b, const iac_ketama *a, size_t i)
{
	const char *pn = iac_ketama_point_name_of(a, i);
	for (size_t j = 0; j < iac_ketama_nnodes(b); j++)
		if (!strcmp(iac_ketama_point_name_of(b, j), pn))
			return 1;
	return 0;
}

/* "share of keys that move" note for the plan: the published ring (prior)
 * against the planned one. Nothing to say when the nodes are the same. */
static void movement_note(const iac_rctx *ctx, const json_t *prior, const json_t *planned)
{
	iac_ketama *a = NULL, *b = NULL;
	if (!ctx->warn || !prior || json_equal(json_object_get(prior, "nodes"), json_object_get(planned, "nodes")))
		return;
	if (iac_ketama_of_attrs(&a, prior) < 0 || iac_ketama_of_attrs(&b, planned) < 0) {
		iac_err_clear();
		goto done;
	}
	size_t na = iac_ketama_nnodes(a), nb = iac_ketama_nnodes(b);
	double moved = 0, *gives = calloc(na, sizeof(double)), *gets = calloc(nb, sizeof(double));
	iac_buf msg = IAC_BUF_INIT;
	if (gives && gets) {
		iac_ketama_diff(a, b, &moved, gives, gets);
		/* what consistent hashing promises: the joining nodes' share of
		 * the new ring plus the leaving nodes' share of the old one */
		size_t joins = 0, leaves = 0;
		for (size_t j = 0; j < nb; j++)
			joins += !in_ring(a, b, j);
		for (size_t i = 0; i < na; i++)
			leaves += !in_ring(b, a, i);
		iac_buf_printf(&msg, "cache '%s': %zu -> %zu nodes moves %.1f%% of the keys (ideal %zu/%zu + %zu/%zu = %.1f%%)",
			       iac_json_str(planned, "cluster"), na, nb, moved * 100, joins, nb, leaves, na,
			       100.0 * ((double)joins / (double)nb + (double)leaves / (double)na));
		const char *sep = "; given up by ";
		for (size_t i = 0; i < na; i++)
			if (gives[i] > 0) {
				iac_buf_printf(&msg, "%s%s %.1f%%", sep, iac_ketama_node_name(a, i), gives[i] * 100);
				sep = ", ";
			}
		sep = "; taken by ";
		for (size_t j = 0; j < nb; j++)
			if (gets[j] > 0) {
				iac_buf_printf(&msg, "%s%s %.1f%%", sep, iac_ketama_node_name(b, j), gets[j] * 100);
				sep = ", ";
			}
		ctx->warn(ctx, msg.ptr);
	}
	iac_buf_free(&msg);
	free(gives);
	free(gets);
done:
	iac_ketama_free(a);
	iac_ketama_free(b);
}

/* The plan of a file resource: checks, and the SHA-256 of what `render`
 * makes, so a change of content shows and a hand edit reads as drift.
 * 1 when the planned values are all known (the content could be made). */
static int plan_sha(json_t *planned, int (*render)(char **, const json_t *))
{
	char *text = NULL, hex[65];
	if (check_common(planned) < 0)
		return IAC_ERR;
	if (iac_value_has_unknown(planned))
		return 0;
	if (render(&text, planned) < 0)
		return IAC_ERR;
	iac_sha256_hex(hex, text, strlen(text));
	free(text);
	json_object_set_new(planned, "sha256", json_string(hex));
	return 1;
}

/* 1 when the ring goes to an etcd key rather than a file. */
static int to_etcd(const json_t *attrs)
{
	return iac_json_str(attrs, "key") != NULL;
}

static int ring_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	if (!iac_json_str(planned, "path") == !iac_json_str(planned, "key"))
		return iac_err_set("a cache.ring needs either 'path' (a file) or 'endpoints' and 'key' (etcd)");
	if (to_etcd(planned) && !iac_json_str(planned, "endpoints"))
		return iac_err_set("a cache.ring published to etcd key '%s' needs 'endpoints'", iac_json_str(planned, "key"));
	int rc = plan_sha(planned, render_ring);
	if (rc == 1)
		movement_note(ctx, prior, planned);
	return rc < 0 ? IAC_ERR : 0;
}

/* nutcracker's YAML for the cluster: one pool named after it, ketama, the
 * nodes without names (so the points hash ADDR:PORT, as the ring does), or
 * with their names when the ring's points hash names (point_names). */
static int render_proxy(char **out, const json_t *attrs)
{
	iac_ketama *r = NULL;
	const json_t *n;
	size_t i;
	json_int_t vnodes = json_integer_value(json_object_get(attrs, "vnodes"));
	const char *tag = iac_json_str(attrs, "hash_tag"), *cluster = iac_json_str(attrs, "cluster");
	*out = NULL;
	if (vnodes && vnodes != 160)
		return iac_err_set("a twemproxy ring has 160 points per node; vnodes = %lld cannot be proxied",
				   (long long)vnodes);
	if (iac_ketama_of_attrs(&r, attrs) < 0)   /* the same checks as the published ring */
		return IAC_ERR;
	iac_ketama_free(r);
	for (const char *c = cluster; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
			return iac_err_set("cluster name '%s' cannot name a twemproxy pool (letters, digits, '-', '_')", cluster);
	iac_buf b = IAC_BUF_INIT;
	iac_buf_printf(&b, "# written by iac: cache_cluster '%s'\n%s:\n  listen: %s\n  hash: %s\n", cluster, cluster,
		       iac_json_str(attrs, "listen"), iac_json_str(attrs, "key_hash") ?: "md5");
	if (tag && *tag)
		iac_buf_printf(&b, "  hash_tag: \"%s\"\n", tag);
	iac_buf_printf(&b, "  distribution: ketama\n  redis: %s\n  auto_eject_hosts: false\n  preconnect: true\n"
			   "  timeout: 1000\n  servers:\n",
		       strcmp(iac_json_str(attrs, "engine"), "redis") ? "false" : "true");
	json_array_foreach(json_object_get(attrs, "nodes"), i, n) {
		json_int_t w = json_object_get(n, "weight") ? json_integer_value(json_object_get(n, "weight")) : 1;
		const char *pnames = iac_json_str(attrs, "point_names");
		int by_name = pnames && !strcmp(pnames, "name");
		iac_buf_printf(&b, "   - %s:%lld:%lld%s%s\n", iac_json_str(n, "address"),
			       (long long)json_integer_value(json_object_get(n, "port")), (long long)w,
			       by_name ? " " : "", by_name ? iac_json_str(n, "name") : "");
	}
	*out = iac_buf_detach(&b);
	return 0;
}

static int proxy_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	(void)ctx;
	(void)prior;
	return plan_sha(planned, render_proxy) < 0 ? IAC_ERR : 0;
}

static char *full_path(const iac_rctx *ctx, const json_t *attrs)
{
	const char *path = iac_json_str(attrs, "path") ?: "";
	return iac_host_is_remote(json_object_get(attrs, "host")) ? iac_xstrdup(path)
								   : iac_path_join(ctx->config_dir, path);
}

/* Write `text` to the resource's path; for the proxy, first beside it, and
 * only a configuration `nutcracker -t` accepts replaces the live one. */
static int deliver(const iac_rctx *ctx, json_t **out, const json_t *planned, int proxy, int update)
{
	char *text = NULL, hex[65], *path = full_path(ctx, planned), *cand = NULL, *cmd = NULL;
	const json_t *host = json_object_get(planned, "host");
	json_t *live = NULL;
	int rc = IAC_ERR;
	/* with sentinels, the primaries as they are now, not as configured */
	if (iac_cache_live_nodes(&live, NULL, planned) < 0)
		goto done;
	if ((proxy ? render_proxy(&text, live) : render_ring(&text, live)) < 0)
		goto done;
	iac_sha256_hex(hex, text, strlen(text));
	if (proxy) {
		cand = iac_xasprintf("%s.iac-check", path);
		cmd = iac_xasprintf("nutcracker -t -c '%s' 2>&1 && mv -f '%s' '%s'", cand, cand, path);
		if (iac_host_write(ctx->hosts, host, cand, text, strlen(text), "0644", ctx->cancel) < 0)
			goto done;
		if (iac_host_run(NULL, ctx->hosts, host, cmd, 30e3, ctx->cancel) < 0) {
			iac_err_prefix("nutcracker refused the configuration for '%s'", path);
			goto done;
		}
		/* nutcracker reads its configuration only at start */
		const char *restart = iac_json_str(planned, "restart");
		if (update && restart && iac_host_run(NULL, ctx->hosts, host, restart, 30e3, ctx->cancel) < 0)
			goto done;
	} else if (to_etcd(planned)) {
		iac_etcd *e = NULL;
		int r = iac_etcd_open(&e, iac_json_str(planned, "endpoints"), 5000);
		if (r == 0)
			r = iac_etcd_put(e, iac_json_str(planned, "key"), text, strlen(text), 0);
		iac_etcd_close(e);
		if (r < 0)
			goto done;
	} else if (iac_host_write(ctx->hosts, host, path, text, strlen(text), "0644", ctx->cancel) < 0) {
		goto done;
	}
	*out = json_copy((json_t *)planned);
	json_object_set_new(*out, "sha256", json_string(hex));
	rc = 0;
done:
	json_decref(live);
	free(text);
	free(path);
	free(cand);
	free(cmd);
	return rc;
}

static int ring_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	return deliver(ctx, out, planned, 0, 0);
}

static int ring_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	(void)prior;
	return deliver(ctx, out, planned, 0, 1);
}

static int proxy_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	return deliver(ctx, out, planned, 1, 0);
}

static int proxy_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	(void)prior;
	return deliver(ctx, out, planned, 1, 1);
}

/* What was read back: its SHA-256 against the one written. A different
 * document reads as different nodes (the plan compares configured
 * attributes, not computed ones), so the plan shows it and writes it again. */
static json_t *read_back(const json_t *prior, const char *sum)
{
	json_t *out = json_copy((json_t *)prior);
	if (strcmp(sum, iac_json_str(prior, "sha256") ?: "")) {
		json_object_set_new(out, "sha256", json_string("(changed outside iac)"));
		json_object_set_new(out, "nodes", json_pack("[s]", "(changed outside iac)"));
	}
	return out;
}

static int etcd_read(json_t **out, const json_t *prior)
{
	char hex[65];
	*out = NULL;
	int rc = iac_etcd_value_sha256(hex, iac_json_str(prior, "endpoints"), iac_json_str(prior, "key"));
	if (rc == IAC_ENOTFOUND)
		return 0;
	if (rc < 0)
		return IAC_ERR;
	*out = read_back(prior, hex);
	return 0;
}

/* With sentinels: a document that is as written but names a primary that
 * failed over reads as drift saying so; the apply writes the new primary. */
static int failover_check(json_t *out, const json_t *prior, int proxy)
{
	json_t *live = NULL;
	char *changes = NULL, *text = NULL, hex[65];
	if (!json_array_size(json_object_get(prior, "sentinels")) || json_is_string(json_array_get(json_object_get(out, "nodes"), 0)))
		return 0;
	if (iac_cache_live_nodes(&live, &changes, prior) < 0)
		return IAC_ERR;
	int rc = proxy ? render_proxy(&text, live) : render_ring(&text, live);
	json_decref(live);
	if (rc == 0) {
		iac_sha256_hex(hex, text, strlen(text));
		if (strcmp(hex, iac_json_str(prior, "sha256") ?: "")) {
			char *msg = iac_xasprintf("(failover: %s)", changes ? changes : "primaries changed");
			json_object_set_new(out, "nodes", json_pack("[s]", msg));
			free(msg);
		}
	}
	free(text);
	free(changes);
	return rc;
}

/* The file's (or key's) SHA-256 against the one written: gone -> NULL,
 * different -> a copy of prior whose sha256 says so (the plan shows it and
 * rewrites). */
static int file_read_any(const iac_rctx *ctx, json_t **out, const json_t *prior);

static int ring_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	if (file_read_any(ctx, out, prior) < 0)
		return IAC_ERR;
	return *out ? failover_check(*out, prior, 0) : 0;
}

static int proxy_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	if (file_read_any(ctx, out, prior) < 0)
		return IAC_ERR;
	return *out ? failover_check(*out, prior, 1) : 0;
}

static int file_read_any(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	if (to_etcd(prior))
		return etcd_read(out, prior);
	char *path = full_path(ctx, prior), *sum = NULL;
	char *cmd = iac_xasprintf("sha256sum '%s' 2>/dev/null | cut -d' ' -f1", path);
	int rc = iac_host_run(&sum, ctx->hosts, json_object_get(prior, "host"), cmd, 10e3, ctx->cancel);
	free(cmd);
	free(path);
	*out = NULL;
	if (rc < 0) {
		free(sum);
		return IAC_ERR;
	}
	size_t n = sum ? strlen(sum) : 0;
	while (n && (sum[n - 1] == '\n' || sum[n - 1] == ' '))
		sum[--n] = '\0';
	if (n == 64)
		*out = read_back(prior, sum);
	free(sum);
	return 0;
}

static int file_remove(const iac_rctx *ctx, const json_t *prior)
{
	if (to_etcd(prior)) {
		iac_etcd *e = NULL;
		int64_t n = 0;
		int rc = iac_etcd_open(&e, iac_json_str(prior, "endpoints"), 5000);
		if (rc == 0)
			rc = iac_etcd_delete(&n, e, iac_json_str(prior, "key"), 0);
		iac_etcd_close(e);
		return rc == IAC_ENOTFOUND ? 0 : rc;
	}
	char *path = full_path(ctx, prior);
	char *cmd = iac_xasprintf("rm -f '%s'", path);
	int rc = iac_host_run(NULL, ctx->hosts, json_object_get(prior, "host"), cmd, 10e3, ctx->cancel);
	free(cmd);
	free(path);
	return rc;
}

static int file_probe(const iac_rctx *ctx, const json_t *attrs)
{
	if (to_etcd(attrs))
		return 0;
	return iac_host_run(NULL, ctx->hosts, json_object_get(attrs, "host"), "true", 10e3, ctx->cancel);
}

const iac_rtype iac_ketama_type = {
	.name = "cache.ring", .attrs = ring_attrs,
	.doc = "a cache cluster's ketama ring, published as JSON to a file (docs/cache.md)",
	.plan = ring_plan, .read = ring_read, .create = ring_create, .update = ring_update,
	.remove = file_remove, .probe = file_probe,
	.gone_reason = "the ring file is missing",
};

const iac_rtype iac_cache_proxy_type = {
	.name = "cache.proxy", .attrs = proxy_attrs,
	.doc = "a twemproxy (nutcracker) configuration for a cache cluster, checked with nutcracker -t",
	.plan = proxy_plan, .read = proxy_read, .create = proxy_create, .update = proxy_update,
	.remove = file_remove, .probe = file_probe,
	.gone_reason = "the proxy configuration is missing",
};

/* cache.cluster: the cluster as iac's commands need it (iac status cache,
 * iac cache invalidate): its engine, nodes and ring settings, in state.
 * It makes nothing on any host; the plan hook checks the ring can be built. */
static int cluster_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	(void)ctx;
	(void)prior;
	iac_ketama *r = NULL;
	double rate, ms;
	if (check_common(planned) < 0 || iac_cache_warm_parse(&rate, &ms, json_object_get(planned, "warm")) < 0)
		return IAC_ERR;
	if (iac_value_has_unknown(planned))
		return 0;
	int rc = iac_ketama_of_attrs(&r, planned);
	iac_ketama_free(r);
	return rc;
}

static int cluster_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	(void)ctx;
	*out = json_copy((json_t *)planned);
	return 0;
}

static int cluster_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	(void)ctx;
	*out = json_copy((json_t *)prior);
	return 0;
}

/* The nodes change: with warm.on_join, the keys that move are
 * copied to their new owners now, before cache.ring and cache.proxy (which
 * depend on this resource) publish the new ring. */
static int cluster_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	const json_t *warm = json_object_get(planned, "warm");
	json_t *report = NULL;
	*out = NULL;
	if (json_is_true(json_object_get(warm, "on_join")) &&
	    !json_equal(json_object_get(prior, "nodes"), json_object_get(planned, "nodes"))) {
		if (ctx->progress)
			ctx->progress(ctx, "warming: copying the keys that move to their new nodes");
		/* with Sentinel, copy between the primaries as they are now */
		json_t *from = NULL, *to = NULL;
		int rc = iac_cache_live_nodes(&from, NULL, prior);
		if (rc == 0)
			rc = iac_cache_live_nodes(&to, NULL, planned);
		if (rc == 0)
			rc = iac_cache_warm(&report, from, to, warm, ctx->cancel);
		json_decref(from);
		json_decref(to);
		if (rc < 0)
			return IAC_ERR;
	}
	cluster_create(ctx, out, planned);
	if (report)
		json_object_set_new(*out, "warmed", report);
	return 0;
}

static int cluster_remove(const iac_rctx *ctx, const json_t *prior)
{
	(void)ctx;
	(void)prior;
	return 0;
}

const iac_rtype iac_cache_cluster_type = {
	.name = "cache.cluster", .attrs = cluster_attrs,
	.doc = "a cache cluster's engine, nodes and ring settings, for iac status cache and iac cache invalidate",
	.plan = cluster_plan, .read = cluster_read, .create = cluster_create, .update = cluster_update,
	.remove = cluster_remove,
};
