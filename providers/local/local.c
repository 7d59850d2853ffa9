/* local: provider table for local.file and local.exec (see local.h). */
#include "providers/local/local.h"

static const iac_rtype *const local_types[] = { &iac_local_file, &iac_local_exec, NULL };

const iac_provider iac_provider_local = {
	.name = "local",
	.types = local_types,
};
