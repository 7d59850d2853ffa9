/* provider: lookups over the registry (see provider.h). */
#include "iac/provider/provider.h"

#include <string.h>

const iac_rtype *iac_provider_find_type(const char *type, const iac_provider **out_provider)
{
	const iac_provider *const *all = iac_provider_all();
	const char *dot = strchr(type, '.');
	if (!dot)
		return NULL;
	size_t plen = (size_t)(dot - type);
	for (size_t i = 0; all[i]; i++) {
		if (strlen(all[i]->name) != plen || strncmp(all[i]->name, type, plen) != 0)
			continue;
		for (size_t j = 0; all[i]->types[j]; j++) {
			if (!strcmp(all[i]->types[j]->name, type)) {
				if (out_provider)
					*out_provider = all[i];
				return all[i]->types[j];
			}
		}
	}
	return NULL;
}

const iac_provider_op *iac_provider_op_find(const char *provider, const char *name)
{
	const iac_provider *p = iac_provider_find(provider);
	for (const iac_provider_op *op = p ? p->ops : NULL; op && op->name; op++)
		if (!strcmp(op->name, name))
			return op;
	return NULL;
}

const iac_attr *iac_rtype_attr(const iac_rtype *t, const char *name)
{
	for (const iac_attr *a = t->attrs; a && a->name; a++)
		if (!strcmp(a->name, name))
			return a;
	return NULL;
}
