/* cache: Redis and Memcached cache clusters on hosts (cache_cluster in the
 * language, docs/cache.md) and the ketama ring iac computes for them
 * (ring.h). This header is the provider's own: the engine never includes it. */
#ifndef IAC_PROVIDERS_CACHE_H
#define IAC_PROVIDERS_CACHE_H

#include "iac/provider/provider.h"

extern const iac_provider iac_provider_cache;
extern const iac_rtype iac_cache_cluster_type; /* cache_res.c */
extern const iac_rtype iac_ketama_type;
extern const iac_rtype iac_cache_proxy_type;

/* `iac cache SUBCOMMAND ...` (cmd_cache.c). */
int iac_cache_cmd(int argc, char **argv);
void iac_cache_cmd_help(void);

#endif
