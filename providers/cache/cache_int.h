/* cache_int: what the files of providers/cache share and nobody else uses. */
#ifndef IAC_PROVIDERS_CACHE_INT_H
#define IAC_PROVIDERS_CACHE_INT_H

#include <jansson.h>

#include "providers/cache/ring.h"

/* The ring of a cache.ring / cache.proxy / cache.cluster resource's
 * attributes (nodes, key_hash, hash_tag, vnodes): points hash "ADDR:PORT"
 * (ADDR for 11211). Free with iac_cache_ring_free(). */
int iac_cache_ring_of_attrs(iac_cache_ring **out, const json_t *attrs);

#endif
