/* cmd_cache: `iac cache ...`, the operator's commands for cache clusters.
 *
 *   iac cache ring   -node NAME[:WEIGHT]=POINT_NAME ... [-hash H] [-hash-tag T] [-vnodes N]
 *   iac cache locate -node ... [KEY...]       (keys from stdin when none given)
 *
 * `ring` prints the ring document (docs/cache.md), `locate` one
 * "NODE<TAB>KEY" line per key: where iac's ring (and so twemproxy and
 * libmemcached with the same servers) sends each key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/cache/cache.h"
#include "providers/cache/ring.h"

#include "iac/core/args.h"
#include "iac/core/err.h"
#include "iac/core/log.h"

typedef struct {
	iac_strlist nodes;
	const char *hash;
	const char *hash_tag;
	int vnodes;
} ring_opts;

/* "NAME[:WEIGHT]=POINT_NAME" into a ring node; the strings point into a
 * copy the caller frees. */
static int parse_node(iac_cache_ring_node *out, char **copy, const char *spec)
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

static int build_ring(iac_cache_ring **out, const ring_opts *o)
{
	int rc = IAC_ERR;
	size_t n = o->nodes.n;
	iac_cache_ring_node *nodes = calloc(n ? n : 1, sizeof(*nodes));
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
	rc = iac_cache_ring_new(out, nodes, n, o->hash, o->hash_tag, o->vnodes > 0 ? (unsigned)o->vnodes : 160);
done:
	for (size_t i = 0; copies && i < n; i++)
		free(copies[i]);
	free(copies);
	free(nodes);
	return rc;
}

static void locate_one(const iac_cache_ring *r, const char *key, size_t len)
{
	size_t i = iac_cache_ring_locate(r, key, len);
	printf("%s\t%.*s\n", iac_cache_ring_node_name(r, i), (int)len, key);
}

static int cmd_locate(const iac_cache_ring *r, const iac_strlist *keys)
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

static int cmd_ring(const iac_cache_ring *r)
{
	json_t *doc = iac_cache_ring_to_json(r);
	if (!doc)
		return iac_err_set("out of memory");
	int rc = json_dumpf(doc, stdout, JSON_INDENT(2)) < 0 ? IAC_ERR : 0;
	putchar('\n');
	json_decref(doc);
	return rc;
}

void iac_cache_cmd_help(void)
{
	printf("usage: iac cache ring -node NAME[:WEIGHT]=POINT_NAME ... [-hash H] [-hash-tag T] [-vnodes N]\n"
	       "       iac cache locate -node ... [KEY...]\n\n"
	       "ring prints the ketama ring as published (docs/cache.md); locate prints\n"
	       "NODE<TAB>KEY for each key (from stdin when none is given). POINT_NAME is\n"
	       "what twemproxy hashes: the server's name, else ADDR:PORT (ADDR for 11211).\n"
	       "Hashes: md5 (default), fnv1a_64, fnv1_64, fnv1a_32, fnv1_32.\n");
}

int iac_cache_cmd(int argc, char **argv)
{
	ring_opts o = { .nodes = { 0 } };
	iac_strlist pos = { 0 };
	iac_cache_ring *r = NULL;
	int rc = 1;
	iac_opt opts[] = {
		{ "node", IAC_OPT_LIST, &o.nodes, "NAME[:WEIGHT]=POINT_NAME, one per server" },
		{ "hash", IAC_OPT_STRING, &o.hash, "the key hash (md5, fnv1a_64, ...)" },
		{ "hash-tag", IAC_OPT_STRING, &o.hash_tag, "two characters: hash only the part between them" },
		{ "vnodes", IAC_OPT_INT, &o.vnodes, "points per node at equal weights (160)" },
		{ NULL, 0, NULL, NULL },
	};
	if (iac_args_parse(opts, "cache", argc, argv, &pos) < 0) {
		iac_log_error("%s", iac_err_last());
		goto done;
	}
	const char *sub = pos.n ? pos.items[0] : NULL;
	if (!sub || (strcmp(sub, "ring") && strcmp(sub, "locate"))) {
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
	iac_cache_ring_free(r);
	iac_strlist_free(&o.nodes);
	iac_strlist_free(&pos);
	return rc;
}
