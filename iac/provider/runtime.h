/* runtime: the provider instances of one run. Each provider used by the
 * configuration or the state is configured once, on first use, from its
 * `provider "name" { ... }` block (plus the flags providers add, such as
 * -ssh-accept-new), and closed at the end of the run. The runtime also owns
 * the run's hosts (iac/host): the providers that declare configure_hosts
 * say how to reach them. Thread-safe.
 */
#ifndef IAC_PROVIDER_RUNTIME_H
#define IAC_PROVIDER_RUNTIME_H

#include <jansson.h>

#include "iac/provider/provider.h"

typedef struct iac_providers iac_providers;

/* configs: name -> config object (borrowed, copied); extra: name -> object
 * merged into that provider's config (engine flags). Either may be NULL. */
iac_providers *iac_providers_new(const json_t *configs, const json_t *extra, const char *config_dir);
void iac_providers_free(iac_providers *pv);

/* Instance data of provider p, configuring it on first use. */
int iac_providers_get(void **out_pdata, iac_providers *pv, const iac_provider *p);

/* The hosts of this run (iac/host/host.h), also in every iac_rctx.
 * Owned by pv. */
struct iac_hosts *iac_providers_hosts(iac_providers *pv);

/* The configuration a provider was given (borrowed), e.g. to record it. */
const json_t *iac_providers_config(const iac_providers *pv, const char *provider);

/* Fill a resource context for a call into a provider. */
int iac_providers_ctx(iac_rctx *ctx, iac_providers *pv, const iac_provider *p, const char *addr,
		      const volatile int *cancel);

/* An object of another resource type ("lxd.instance"), made or removed on
 * a provider's own schedule rather than from main.lua (the autoscaler's
 * instances): through the registry, with that type's provider configured
 * from this run's settings (ctx->engine), its plan hook filling the
 * defaults, then create (*out: the attributes to keep, new reference) or
 * remove. addr names the object in messages. No provider reaches into
 * another's data or header this way. IAC_ERR with a message that names
 * addr when the type is unknown or the call fails. */
int iac_providers_type_create(json_t **out, const iac_rctx *ctx, const char *type, const char *addr,
			      const json_t *attrs);
int iac_providers_type_remove(const iac_rctx *ctx, const char *type, const char *addr, const json_t *attrs);

#endif
