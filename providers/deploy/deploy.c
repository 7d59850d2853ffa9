/* deploy: provider table (see deploy.h). */
#include "providers/deploy/deploy.h"

#include <stdlib.h>

#include "iac/core/util.h"

static int deploy_configure(void **out, const json_t *config, const char *dir)
{
	iac_deploy_pdata *pd = iac_xcalloc(1, sizeof(*pd));
	pd->allow_bad = json_is_true(json_object_get(config, "allow_bad"));
	*out = pd;
	return 0;
}

static void deploy_close(void *pdata)
{
	free(pdata);
}

static const iac_rtype *const deploy_types[] = {
	&iac_deploy_haproxy_type, &iac_deploy_bluegreen_type, NULL,
};

const iac_provider iac_provider_deploy = {
	.name = "deploy",
	.types = deploy_types,
	.configure = deploy_configure,
	.close = deploy_close,
};
