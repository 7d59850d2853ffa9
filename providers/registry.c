/* registry: the list of built-in providers, the only file that names them.
 * A provider directory under providers/ with a CMakeLists.txt defines
 * IAC_HAVE_PROVIDER_<NAME> and a `const iac_provider iac_provider_<name>`;
 * add it to the table below (docs/providers.md). */
#include "iac/provider/provider.h"

#include <string.h>

extern const iac_provider iac_provider_local;
#ifdef IAC_HAVE_PROVIDER_SSH
extern const iac_provider iac_provider_ssh;
#endif
#ifdef IAC_HAVE_PROVIDER_DEPLOY
extern const iac_provider iac_provider_deploy;
#endif
#ifdef IAC_HAVE_PROVIDER_FLAGS
extern const iac_provider iac_provider_flags;
#endif
#ifdef IAC_HAVE_PROVIDER_HTTP
extern const iac_provider iac_provider_http;
extern const iac_provider iac_provider_pdns;
#endif
#ifdef IAC_HAVE_PROVIDER_LXD
extern const iac_provider iac_provider_lxd;
#endif
#ifdef IAC_HAVE_PROVIDER_CACHE
extern const iac_provider iac_provider_cache;
#endif
#ifdef IAC_HAVE_PROVIDER_DB
extern const iac_provider iac_provider_db;
#endif

static const iac_provider *const all[] = {
	&iac_provider_local,
#ifdef IAC_HAVE_PROVIDER_SSH
	&iac_provider_ssh,
#endif
#ifdef IAC_HAVE_PROVIDER_DEPLOY
	&iac_provider_deploy,
#endif
#ifdef IAC_HAVE_PROVIDER_FLAGS
	&iac_provider_flags,
#endif
#ifdef IAC_HAVE_PROVIDER_HTTP
	&iac_provider_http,
	&iac_provider_pdns,   /* same directory: types are owned by their name's prefix */
#endif
#ifdef IAC_HAVE_PROVIDER_LXD
	&iac_provider_lxd,
#endif
#ifdef IAC_HAVE_PROVIDER_CACHE
	&iac_provider_cache,
#endif
#ifdef IAC_HAVE_PROVIDER_DB
	&iac_provider_db,
#endif
	NULL,
};

const iac_provider *const *iac_provider_all(void)
{
	return all;
}

const iac_provider *iac_provider_find(const char *name)
{
	for (size_t i = 0; all[i]; i++)
		if (!strcmp(all[i]->name, name))
			return all[i];
	return NULL;
}
