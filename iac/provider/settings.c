/* settings: shared checks of provider blocks (see settings.h). */
#include "iac/provider/settings.h"

#include <string.h>

#include "iac/core/err.h"
#include "iac/core/util.h"

int iac_settings_check_keys(const json_t *cfg, const char *const *allowed, const char *tls_hint)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)cfg, k, v) {
		size_t n = 0;
		while (allowed[n] && strcmp(allowed[n], k))
			n++;
		if (allowed[n])
			continue;
		if (!strcmp(k, "insecure") || !strcmp(k, "verify") || !strcmp(k, "skip_tls_verify"))
			return iac_err_set("'%s': TLS verification cannot be turned off; %s", k, tls_hint);
		const char *hint = iac_suggest(k, allowed, n);
		return iac_err_set("unknown setting '%s'%s%s%s", k, hint ? "; did you mean '" : "", hint ? hint : "",
				   hint ? "'?" : "");
	}
	return 0;
}

int iac_settings_duration(double *out_ms, const json_t *v, const char *what)
{
	if (!v)
		return 0;
	if (json_is_number(v)) {
		*out_ms = json_number_value(v) * 1000;
		return 0;
	}
	if (!json_is_string(v) || iac_duration_parse(out_ms, json_string_value(v)) < 0)
		return iac_err_set("%s must be a duration such as \"10s\" or \"500ms\"", what);
	return 0;
}

size_t iac_settings_instance_max(const json_t *config)
{
	return json_object_size(json_object_get(config, "instances")) + 1;
}

int iac_settings_each_instance(const json_t *config, iac_settings_instance_fn fn, void *ud)
{
	json_t *top = json_deep_copy(config);
	json_t *insts = json_incref(json_object_get(top, "instances"));
	json_object_del(top, "instances");
	int rc = 0;
	if (json_object_size(top))
		rc = fn(ud, top, NULL);
	const char *k;
	json_t *v;
	json_object_foreach(insts, k, v) {
		if (rc < 0)
			break;
		rc = fn(ud, v, k);
	}
	json_decref(top);
	json_decref(insts);
	return rc;
}
