/* ketama: a consistent-hash ring (cache clusters, database shard maps), computed the way
 * twemproxy's `distribution: ketama` and libmemcached's weighted ketama
 * compute it, so that a client holding iac's published ring, a client using
 * libmemcached and a nutcracker proxy all send a key to the same node.
 *
 * The continuum: for node i with weight w_i (of total W, n nodes), the point
 * count is floor(w_i/W * vnodes/4 * n) * 4 (computed in float, as twemproxy
 * does, so weighted rings agree too); for j = 0 .. count/4 - 1 the MD5 of
 * "<point name>-<j>" gives four points, its four little-endian 32-bit words.
 * The point name is what twemproxy hashes: the server's name when the proxy
 * config gives one, else "ADDR:PORT", or just "ADDR" when the port is 11211
 * (libmemcached's convention); iac_ketama_point_name() builds it.
 * A key goes to the first point whose value is >= the key's 32-bit hash,
 * wrapping to the first point. The key hash is one of twemproxy's (`hash:`):
 * md5 (libmemcached's ketama default), fnv1a_64, fnv1_64, fnv1a_32, fnv1_32.
 *
 * A ring is immutable after iac_ketama_new(): lookups may run on any
 * number of threads at once. */
#ifndef IAC_CORE_KETAMA_H
#define IAC_CORE_KETAMA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* A node of the ring as the caller describes it. Strings are copied. */
typedef struct {
	const char *name;        /* iac's name for the node, e.g. "sessions-1" */
	const char *point_name;  /* the string the points are hashed from */
	uint32_t weight;         /* >= 1 */
} iac_ketama_node;

typedef struct {
	uint32_t value;   /* position on the circle */
	uint32_t node;    /* index into the ring's nodes */
} iac_ketama_point;

typedef struct iac_ketama iac_ketama;

/* Builds the ring of `n` (>= 1) nodes. `hash` names the key hash (NULL:
 * "md5"); `hash_tag` is twemproxy's two-character hash_tag ("{}") or NULL;
 * `vnodes` is the points per node at equal weights (160 in twemproxy and
 * libmemcached; a multiple of 4). Errors: unknown hash, bad tag, n == 0,
 * a zero weight, a duplicate point name. Free with iac_ketama_free(). */
int iac_ketama_new(iac_ketama **out, const iac_ketama_node *nodes, size_t n,
		       const char *hash, const char *hash_tag, unsigned vnodes);
void iac_ketama_free(iac_ketama *ring);

/* 0 when `name` is a key hash the ring knows (twemproxy's spelling). */
int iac_ketama_hash_known(const char *name);

/* Writes the point name twemproxy uses for a server line "ADDR:PORT:W [NAME]"
 * into `buf` (NUL-terminated, truncated to `size`): NAME when given and not
 * empty, else ADDR for port 11211, else "ADDR:PORT". Returns its length. */
size_t iac_ketama_point_name(char *buf, size_t size, const char *addr, unsigned port,
				 const char *name);

/* The key's 32-bit hash (after the hash tag, if any) and its node's index. */
uint32_t iac_ketama_hash(const iac_ketama *ring, const void *key, size_t len);
size_t iac_ketama_locate(const iac_ketama *ring, const void *key, size_t len);
/* The node owning a 32-bit hash value. */
size_t iac_ketama_owner(const iac_ketama *ring, uint32_t hash);

size_t iac_ketama_nnodes(const iac_ketama *ring);
const char *iac_ketama_node_name(const iac_ketama *ring, size_t i);
const char *iac_ketama_point_name_of(const iac_ketama *ring, size_t i);
/* The sorted continuum (borrowed, lives as long as the ring). */
const iac_ketama_point *iac_ketama_points(const iac_ketama *ring, size_t *n);

/* The share (0..1) of the 32-bit hash space each node owns, into
 * `share[nnodes]`: what fraction of uniformly hashed keys it gets. */
void iac_ketama_shares(const iac_ketama *ring, double *share);

/* What changes from ring `a` to ring `b` (nodes matched by point name, what
 * places keys): `*moved`
 * gets the share of the hash space whose owner differs, `gives[i]` (sized
 * for a's nodes) the share node i of `a` gives up, `gets[j]` (sized for b's
 * nodes, may be NULL) the share node j of `b` receives. Exact, from the two
 * continua; for uniformly hashed keys it is the fraction of keys that move. */
void iac_ketama_diff(const iac_ketama *a, const iac_ketama *b, double *moved,
			 double *gives, double *gets);

/* The ring as a JSON document with the given "format" (the cache
 * provider's "iac-cache-ring/1", docs/cache.md): hash, hash_tag, vnodes, nodes (name, point_name,
 * weight, points, share) and the sorted continuum as [value, node] pairs.
 * The caller adds its own fields (cluster, engine, addresses, classes). */
json_t *iac_ketama_to_json(const iac_ketama *ring, const char *format);

#endif
