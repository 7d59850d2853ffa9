/* ketama: continuum, key hashes and ring comparison (ketama.h). */
#include "iac/core/ketama.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"

typedef uint32_t (*key_hash_fn)(const iac_ketama *ring, const char *key, size_t len);

struct iac_ketama {
	size_t nnodes;
	char **names;
	char **point_names;
	uint32_t *weights;
	uint32_t *npoints;     /* per node */
	iac_ketama_point *points;
	size_t npts;
	const char *hash_name; /* static string */
	key_hash_fn hash;
	char tag[3];           /* "" when no hash tag */
	unsigned vnodes;
	EVP_MD *md5;
};

static void md5(const iac_ketama *ring, const void *data, size_t len, unsigned char out[16])
{
	unsigned int n = 0;
	if (!EVP_Digest(data, len, out, &n, ring->md5, NULL))
		memset(out, 0, 16);   /* only on allocation failure inside OpenSSL */
}

/* The 32-bit little-endian word `w` (0..3) of a digest: how ketama reads
 * four points out of one MD5, and (w = 0) twemproxy's md5 key hash. */
static uint32_t le_word(const unsigned char d[16], unsigned w)
{
	return (uint32_t)d[w * 4] | (uint32_t)d[w * 4 + 1] << 8 | (uint32_t)d[w * 4 + 2] << 16 |
	       (uint32_t)d[w * 4 + 3] << 24;
}

static uint32_t hash_md5(const iac_ketama *ring, const char *key, size_t len)
{
	unsigned char d[16];
	md5(ring, key, len, d);
	return le_word(d, 0);
}

/* twemproxy's FNV variants widen each byte as a signed char (so bytes >= 0x80
 * become 0xffffffxx) and its "64-bit" FNV-1a works on the low 32 bits of the
 * 64-bit basis and prime: reproduced on purpose, or keys with high bytes or
 * any fnv1a_64 key would land elsewhere than the proxy sends them. */
static uint32_t byte_of(const char *key, size_t i)
{
	return (uint32_t)(int32_t)(signed char)key[i];
}

static uint32_t hash_fnv1a_64(const iac_ketama *ring, const char *key, size_t len)
{
	(void)ring;
	uint32_t h = (uint32_t)UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < len; i++) {
		h ^= byte_of(key, i);
		h *= (uint32_t)UINT64_C(0x100000001b3);
	}
	return h;
}

static uint32_t hash_fnv1_64(const iac_ketama *ring, const char *key, size_t len)
{
	(void)ring;
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < len; i++) {
		h *= UINT64_C(0x100000001b3);
		h ^= (uint64_t)(int64_t)(signed char)key[i];
	}
	return (uint32_t)h;
}

static uint32_t hash_fnv1a_32(const iac_ketama *ring, const char *key, size_t len)
{
	(void)ring;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++) {
		h ^= byte_of(key, i);
		h *= 16777619u;
	}
	return h;
}

static uint32_t hash_fnv1_32(const iac_ketama *ring, const char *key, size_t len)
{
	(void)ring;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++) {
		h *= 16777619u;
		h ^= byte_of(key, i);
	}
	return h;
}

static const struct {
	const char *name;
	key_hash_fn fn;
} key_hashes[] = {
	{ "md5", hash_md5 },
	{ "fnv1a_64", hash_fnv1a_64 },
	{ "fnv1_64", hash_fnv1_64 },
	{ "fnv1a_32", hash_fnv1a_32 },
	{ "fnv1_32", hash_fnv1_32 },
};

int iac_ketama_hash_known(const char *name)
{
	for (size_t i = 0; i < sizeof(key_hashes) / sizeof(key_hashes[0]); i++)
		if (!strcmp(key_hashes[i].name, name))
			return 0;
	return -1;
}

size_t iac_ketama_point_name(char *buf, size_t size, const char *addr, unsigned port,
				 const char *name)
{
	int n;
	if (name && *name)
		n = snprintf(buf, size, "%s", name);
	else if (port == 11211)
		n = snprintf(buf, size, "%s", addr);
	else
		n = snprintf(buf, size, "%s:%u", addr, port);
	if (n < 0)
		n = 0;
	return (size_t)n < size ? (size_t)n : size ? size - 1 : 0;
}

/* Points per node, with twemproxy's float arithmetic (pct in float, the
 * product in float, the 1e-10 nudge in double): equal weights give exactly
 * `vnodes`, and a weighted ring rounds where the proxy's does. */
static uint32_t points_for(uint32_t weight, uint32_t total, size_t n, unsigned vnodes)
{
	float pct = (float)weight / (float)total;
	float per = pct * (float)vnodes / 4 * (float)n;
	return (uint32_t)floorf((float)((double)per + 0.0000000001)) * 4;
}

static int point_cmp(const void *a, const void *b)
{
	const iac_ketama_point *x = a, *y = b;
	if (x->value != y->value)
		return x->value < y->value ? -1 : 1;
	/* equal values are astronomically rare; order them by node so the ring
	 * is at least deterministic (twemproxy's qsort leaves them unspecified) */
	return x->node < y->node ? -1 : x->node > y->node;
}

void iac_ketama_free(iac_ketama *ring)
{
	if (!ring)
		return;
	for (size_t i = 0; i < ring->nnodes; i++) {
		if (ring->names)
			free(ring->names[i]);
		if (ring->point_names)
			free(ring->point_names[i]);
	}
	free(ring->names);
	free(ring->point_names);
	free(ring->weights);
	free(ring->npoints);
	free(ring->points);
	EVP_MD_free(ring->md5);
	free(ring);
}

static int check_nodes(const iac_ketama_node *nodes, size_t n)
{
	if (n == 0)
		return iac_err_set("a ring needs at least one node");
	for (size_t i = 0; i < n; i++) {
		if (!nodes[i].name || !*nodes[i].name || !nodes[i].point_name || !*nodes[i].point_name)
			return iac_err_set("ring node %zu has no name", i + 1);
		if (nodes[i].weight == 0)
			return iac_err_set("ring node '%s' has weight 0 (must be >= 1)", nodes[i].name);
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(nodes[i].name, nodes[j].name))
				return iac_err_set("ring node '%s' appears twice", nodes[i].name);
			if (!strcmp(nodes[i].point_name, nodes[j].point_name))
				return iac_err_set("ring nodes '%s' and '%s' hash the same point name '%s'",
						   nodes[j].name, nodes[i].name, nodes[i].point_name);
		}
	}
	return 0;
}

static int set_options(iac_ketama *r, const char *hash, const char *tag, unsigned vnodes)
{
	if (!hash)
		hash = "md5";
	for (size_t i = 0; i < sizeof(key_hashes) / sizeof(key_hashes[0]); i++)
		if (!strcmp(key_hashes[i].name, hash)) {
			r->hash = key_hashes[i].fn;
			r->hash_name = key_hashes[i].name;
		}
	if (!r->hash)
		return iac_err_set("unknown key hash '%s' (md5, fnv1a_64, fnv1_64, fnv1a_32, fnv1_32)", hash);
	if (tag && *tag) {
		if (strlen(tag) != 2)
			return iac_err_set("hash_tag '%s' must be two characters, like \"{}\"", tag);
		memcpy(r->tag, tag, 3);
	}
	if (vnodes == 0 || vnodes % 4 || vnodes > 4096)
		return iac_err_set("vnodes %u must be a multiple of 4 between 4 and 4096", vnodes);
	r->vnodes = vnodes;
	return 0;
}

int iac_ketama_new(iac_ketama **out, const iac_ketama_node *nodes, size_t n,
		       const char *hash, const char *hash_tag, unsigned vnodes)
{
	int rc = IAC_ERR;
	char label[1100];
	iac_ketama *r = NULL;
	*out = NULL;
	if (check_nodes(nodes, n) < 0)
		return IAC_ERR;
	r = calloc(1, sizeof(*r));
	if (!r)
		return iac_err_set("out of memory");
	if (set_options(r, hash, hash_tag, vnodes) < 0)
		goto done;
	r->md5 = EVP_MD_fetch(NULL, "MD5", NULL);
	r->names = calloc(n, sizeof(char *));
	r->point_names = calloc(n, sizeof(char *));
	r->weights = calloc(n, sizeof(uint32_t));
	r->npoints = calloc(n, sizeof(uint32_t));
	if (!r->md5 || !r->names || !r->point_names || !r->weights || !r->npoints) {
		iac_err_set("cannot set up the ring: out of memory or no MD5 in libcrypto");
		goto done;
	}
	r->nnodes = n;
	uint32_t total = 0;
	size_t cap = 0;
	for (size_t i = 0; i < n; i++) {
		r->names[i] = strdup(nodes[i].name);
		r->point_names[i] = strdup(nodes[i].point_name);
		if (!r->names[i] || !r->point_names[i] || strlen(nodes[i].point_name) > 1024) {
			iac_err_set("ring node '%s': point name missing or too long", nodes[i].name);
			goto done;
		}
		r->weights[i] = nodes[i].weight;
		total += nodes[i].weight;
	}
	for (size_t i = 0; i < n; i++) {
		r->npoints[i] = points_for(r->weights[i], total, n, vnodes);
		cap += r->npoints[i];
	}
	r->points = calloc(cap ? cap : 1, sizeof(*r->points));
	if (!r->points) {
		iac_err_set("out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		for (uint32_t j = 0; j < r->npoints[i] / 4; j++) {
			unsigned char d[16];
			int len = snprintf(label, sizeof(label), "%s-%u", r->point_names[i], j);
			md5(r, label, (size_t)len, d);
			for (unsigned w = 0; w < 4; w++)
				r->points[r->npts++] = (iac_ketama_point){ le_word(d, w), (uint32_t)i };
		}
	}
	if (r->npts == 0) {
		iac_err_set("ring has no points: weights too uneven for %u vnodes", vnodes);
		goto done;
	}
	qsort(r->points, r->npts, sizeof(*r->points), point_cmp);
	*out = r;
	r = NULL;
	rc = 0;
done:
	iac_ketama_free(r);
	return rc;
}

/* twemproxy's hash_tag: with tag "{}" and key "user:{42}:cart" only "42" is
 * hashed; a key without both tag characters (or with nothing between them)
 * is hashed whole. */
static void apply_tag(const iac_ketama *ring, const char **key, size_t *len)
{
	if (!ring->tag[0])
		return;
	const char *s = memchr(*key, ring->tag[0], *len);
	if (!s)
		return;
	const char *end = *key + *len;
	const char *e = memchr(s + 1, ring->tag[1], (size_t)(end - (s + 1)));
	if (e && e - s > 1) {
		*key = s + 1;
		*len = (size_t)(e - (s + 1));
	}
}

uint32_t iac_ketama_hash(const iac_ketama *ring, const void *key, size_t len)
{
	const char *k = key;
	apply_tag(ring, &k, &len);
	return ring->hash(ring, k, len);
}

size_t iac_ketama_owner(const iac_ketama *ring, uint32_t hash)
{
	size_t lo = 0, hi = ring->npts;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ring->points[mid].value < hash)
			lo = mid + 1;
		else
			hi = mid;
	}
	return ring->points[lo == ring->npts ? 0 : lo].node;
}

size_t iac_ketama_locate(const iac_ketama *ring, const void *key, size_t len)
{
	return iac_ketama_owner(ring, iac_ketama_hash(ring, key, len));
}

size_t iac_ketama_nnodes(const iac_ketama *ring)
{
	return ring->nnodes;
}

const char *iac_ketama_node_name(const iac_ketama *ring, size_t i)
{
	return i < ring->nnodes ? ring->names[i] : NULL;
}

const char *iac_ketama_point_name_of(const iac_ketama *ring, size_t i)
{
	return i < ring->nnodes ? ring->point_names[i] : NULL;
}

const iac_ketama_point *iac_ketama_points(const iac_ketama *ring, size_t *n)
{
	*n = ring->npts;
	return ring->points;
}

/* Point i owns the hash values (points[i-1].value, points[i].value]; the
 * first point also owns everything above the last one (the wrap). */
void iac_ketama_shares(const iac_ketama *ring, double *share)
{
	const double space = 4294967296.0;
	for (size_t i = 0; i < ring->nnodes; i++)
		share[i] = 0;
	for (size_t i = 0; i < ring->npts; i++) {
		double lo = i ? (double)ring->points[i - 1].value : (double)ring->points[ring->npts - 1].value - space;
		share[ring->points[i].node] += ((double)ring->points[i].value - lo) / space;
	}
}

/* Nodes are the same node in two rings when their points hash the same
 * string: that, not iac's name for them, decides where keys go. */
static size_t find_node(const iac_ketama *ring, const char *point_name)
{
	for (size_t i = 0; i < ring->nnodes; i++)
		if (!strcmp(ring->point_names[i], point_name))
			return i;
	return SIZE_MAX;
}

/* Walks the union of both continua's boundaries: between two consecutive
 * boundaries every hash value has one owner in each ring, the one of the
 * next point at or above the segment's upper end. */
void iac_ketama_diff(const iac_ketama *a, const iac_ketama *b, double *moved,
			 double *gives, double *gets)
{
	const double space = 4294967296.0;
	size_t ia = 0, ib = 0;
	double prev = -1;   /* segments are (prev, cur] */
	*moved = 0;
	for (size_t i = 0; i < a->nnodes; i++)
		gives[i] = 0;
	for (size_t j = 0; gets && j < b->nnodes; j++)
		gets[j] = 0;
	/* map b's node indexes to a's once */
	size_t *b_in_a = malloc(b->nnodes * sizeof(size_t));
	if (!b_in_a)
		return;
	for (size_t j = 0; j < b->nnodes; j++)
		b_in_a[j] = find_node(a, b->point_names[j]);
	for (;;) {
		uint32_t va = ia < a->npts ? a->points[ia].value : UINT32_MAX;
		uint32_t vb = ib < b->npts ? b->points[ib].value : UINT32_MAX;
		int tail = ia >= a->npts && ib >= b->npts;
		double cur = tail ? space - 1 : (double)(va < vb ? va : vb);
		/* owners of (prev, cur]: the next point in each ring, wrapping */
		size_t oa = a->points[ia < a->npts ? ia : 0].node;
		size_t ob = b->points[ib < b->npts ? ib : 0].node;
		double width = cur - prev;
		if (width > 0 && b_in_a[ob] != oa) {
			*moved += width / space;
			gives[oa] += width / space;
			if (gets)
				gets[ob] += width / space;
		}
		if (tail)
			break;
		prev = cur;
		if (ia < a->npts && a->points[ia].value == (uint32_t)cur)
			ia++;
		if (ib < b->npts && b->points[ib].value == (uint32_t)cur)
			ib++;
		/* skip duplicate values within one ring: the first point owns */
		while (ia < a->npts && ia > 0 && a->points[ia].value == a->points[ia - 1].value)
			ia++;
		while (ib < b->npts && ib > 0 && b->points[ib].value == b->points[ib - 1].value)
			ib++;
	}
	free(b_in_a);
}

json_t *iac_ketama_to_json(const iac_ketama *ring, const char *format)
{
	json_t *doc = json_object(), *nodes = json_array(), *cont = json_array();
	double *share = calloc(ring->nnodes, sizeof(double));
	if (!doc || !nodes || !cont || !share)
		goto fail;
	json_object_set_new(doc, "format", json_string(format));
	json_object_set_new(doc, "distribution", json_string("ketama"));
	json_object_set_new(doc, "hash", json_string(ring->hash_name));
	json_object_set_new(doc, "hash_tag", json_string(ring->tag));
	json_object_set_new(doc, "vnodes", json_integer(ring->vnodes));
	iac_ketama_shares(ring, share);
	for (size_t i = 0; i < ring->nnodes; i++) {
		json_t *n = json_object();
		json_object_set_new(n, "name", json_string(ring->names[i]));
		json_object_set_new(n, "point_name", json_string(ring->point_names[i]));
		json_object_set_new(n, "weight", json_integer(ring->weights[i]));
		json_object_set_new(n, "points", json_integer(ring->npoints[i]));
		json_object_set_new(n, "share", json_real(round(share[i] * 1e6) / 1e6));
		json_array_append_new(nodes, n);
	}
	for (size_t i = 0; i < ring->npts; i++)
		json_array_append_new(cont, json_pack("[II]", (json_int_t)ring->points[i].value,
						      (json_int_t)ring->points[i].node));
	json_object_set_new(doc, "nodes", nodes);
	json_object_set_new(doc, "continuum", cont);
	free(share);
	return doc;
fail:
	json_decref(doc);
	json_decref(nodes);
	json_decref(cont);
	free(share);
	return NULL;
}
