/* http: the provider tables of "http" and "pdns" (see http.h). */
#include "providers/http/http.h"

static int http_configure(void **out, const json_t *config, const char *config_dir)
{
	return hp_configure(out, config, config_dir, "http", 0);
}

static int pdns_configure(void **out, const json_t *config, const char *config_dir)
{
	return hp_configure(out, config, config_dir, "pdns", 1);
}

static const iac_rtype *const http_types[] = { &iac_http_object, NULL };
static const iac_rtype *const pdns_types[] = { &iac_pdns_zone, &iac_pdns_record, NULL };

const iac_provider iac_provider_http = {
	.name = "http",
	.types = http_types,
	.configure = http_configure,
	.close = hp_close,
};

const iac_provider iac_provider_pdns = {
	.name = "pdns",
	.types = pdns_types,
	.configure = pdns_configure,
	.close = hp_close,
};
