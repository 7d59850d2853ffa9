/* runtime: the provider instances of one run. Each provider used by the
 * configuration or the state is configured once, on first use, from its
 * `provider "name" { ... }` block (plus engine options such as
 * -ssh-accept-new), and closed at the end of the run. Thread-safe.
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

/* From inside a provider call: the instance data of another provider
 * (configuring it if needed), so one provider can use another's
 * connections (deploy uses ssh's pool). */
int iac_rctx_peer(void **out_pdata, const iac_rctx *ctx, const char *provider);

/* The configuration a provider was given (borrowed), e.g. to record it. */
const json_t *iac_providers_config(const iac_providers *pv, const char *provider);

/* Fill a resource context for a call into a provider. */
int iac_providers_ctx(iac_rctx *ctx, iac_providers *pv, const iac_provider *p, const char *addr,
		      const volatile int *cancel);

#endif
