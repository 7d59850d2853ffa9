/* cache_int: what the files of providers/cache share and nobody else uses. */
#ifndef IAC_PROVIDERS_CACHE_INT_H
#define IAC_PROVIDERS_CACHE_INT_H

#include <jansson.h>

#include "iac/core/args.h"

#include "iac/core/ketama.h"

/* The ring of a cache.ring / cache.proxy / cache.cluster resource's
 * attributes (nodes, key_hash, hash_tag, vnodes): points hash "ADDR:PORT"
 * (ADDR for 11211). Free with iac_ketama_free(). */
int iac_ketama_of_attrs(iac_ketama **out, const json_t *attrs);

/* A copy of `attrs` (new) whose nodes carry the address and port of their
 * primary as the `sentinels` list (ADDRESS:PORT each) reports it now; an
 * unchanged copy without sentinels, or for a node no sentinel monitors.
 * *changes (may be NULL; caller frees; NULL when none): "NODE now at
 * ADDR:PORT, ...". IAC_ERR when no sentinel answers. sentinel.c. */
int iac_cache_live_nodes(json_t **out, char **changes, const json_t *attrs);

/* warm = { on_join, max_rate = "20000/s", max_time = "60s" }: rate in keys
 * per second (0: unbounded), time in ms (default 60 s). */
int iac_cache_warm_parse(double *rate, double *time_ms, const json_t *warm);

/* Copies every key that the ring of `old_attrs` places on a node and the
 * ring of `new_attrs` places on another to that other node (Redis: DUMP /
 * RESTORE with the remaining TTL, pipelined per SCAN batch; Memcached:
 * metadump, get / set with flags and expiry, pipelined), within the
 * limits of `warm`. *report (new): { copied, scanned, expired, seconds,
 * complete } (complete false when max_time cut it short). warm.c. */
int iac_cache_warm(json_t **report, const json_t *old_attrs, const json_t *new_attrs, const json_t *warm,
		   const volatile int *cancel);

/* `iac cache follow`: subscribes to +switch-master on every Sentinel of
 * `cluster` (cache.cluster attributes, borrowed) and, when one of its
 * nodes fails over, runs `iac apply -auto-approve` on `targets` (the
 * cluster's ring, proxy and proxy service addresses) with `apply_args`
 * (-var ..., -var-file ...) appended, so the published ring and the proxies
 * follow without waiting for the next apply. once: return after the first
 * follow-up (its exit code). timeout_ms > 0: give up (1) after that long
 * without one. follow.c. */
int iac_cache_follow(const json_t *cluster, const iac_strlist *targets, const iac_strlist *apply_args, int once,
		     double timeout_ms);

#endif
