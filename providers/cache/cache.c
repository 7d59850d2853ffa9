/* cache: the provider table (cache.h). */
#include "providers/cache/cache.h"

static const iac_rtype *const cache_types[] = { &iac_cache_cluster_type, &iac_ketama_type, &iac_cache_proxy_type, NULL };

static const iac_provider_command cache_commands[] = {
	{ "cache", iac_cache_cmd, "cache clusters: the ring, where keys go, invalidation", iac_cache_cmd_help },
	{ NULL, NULL, NULL, NULL },
};

const iac_provider iac_provider_cache = {
	.name = "cache",
	.types = cache_types,
	.commands = cache_commands,
	.status_topics = (const char *const[]){ "cache", NULL },
	.prelude = "prelude/cache.lua",
};
