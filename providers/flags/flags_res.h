/* flags_res: the flags provider. The loader groups `flag` declarations by
 * where they are delivered; each target is one resource:
 *   flags.file  { host, path, flags = { NAME = spec, ... } }
 *   flags.etcd  { endpoints, key, flags = { ... } }
 * whose content is the flagd document of those flags.
 *
 * Live overrides: `iac flag set` changes a flag on its targets at once and
 * records the new spec under the resource's "overrides". A plan keeps an
 * override (and says so) while the flag's declaration in Lua is what it was
 * when the override was set; changing the declaration replaces it.
 */
#ifndef IAC_PROVIDERS_FLAGS_RES_H
#define IAC_PROVIDERS_FLAGS_RES_H

#include <jansson.h>

#include "iac/provider/provider.h"

extern const iac_rtype iac_prov_flags_file_type;
extern const iac_rtype iac_prov_flags_etcd_type;
extern const iac_provider iac_provider_flags;

struct iac_config;
/* flags_decl.c: the provider's finalize(): `flag` declarations (sections
 * "flags") become flags.file / flags.etcd resources, one per target with
 * every flag it carries; every flags_on_rollback names declared flags and
 * variants. */
int iac_prov_flags_decl_finalize(struct iac_config *cfg);

/* The flags as delivered: each declared spec, or its override. New ref. */
json_t *iac_prov_flags_effective(const json_t *attrs);

/* Write the effective flags of attrs (a flags.file or flags.etcd entry's
 * attributes) to their target; *out_sha (65 bytes) gets the content hash. */
int iac_prov_flags_deliver(char out_sha[65], const iac_rctx *ctx, const char *type, const json_t *attrs);

#endif
