/* settings: what every provider block's configure() checks the same way:
 * unknown settings (with a suggestion), durations, and the named instances
 * of `provider "NAME" "ALIAS" { ... }` (the loader puts them under
 * "instances"; see docs/providers.md). Values are borrowed. */
#ifndef IAC_PROVIDER_SETTINGS_H
#define IAC_PROVIDER_SETTINGS_H

#include <jansson.h>

/* IAC_ERR "unknown setting 'x'; did you mean 'y'?" for a key of cfg not in
 * allowed (NULL-terminated). A switch that would turn TLS verification off
 * (insecure, verify, skip_tls_verify) gets "TLS verification cannot be
 * turned off; TLS_HINT" instead. */
int iac_settings_check_keys(const json_t *cfg, const char *const *allowed, const char *tls_hint);

/* *out_ms from a duration string ("10s", "500ms") or a number of seconds;
 * left as it is when v is NULL. IAC_ERR names `what`. */
int iac_settings_duration(double *out_ms, const json_t *v, const char *what);

/* Call fn once per instance: the unnamed block (alias NULL) when it has any
 * setting (an absent block arrives as {}), then each named one. Stops at
 * the first error, which it returns. At most 1 + the number of named
 * instances calls: size arrays with iac_settings_instance_max(). */
typedef int (*iac_settings_instance_fn)(void *ud, const json_t *block, const char *alias);
int iac_settings_each_instance(const json_t *config, iac_settings_instance_fn fn, void *ud);
size_t iac_settings_instance_max(const json_t *config);

#endif
