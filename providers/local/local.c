/* local: provider table for local.file and local.exec (see local.h). */
#include "providers/local/local.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"

static const iac_rtype *const local_types[] = { &iac_local_file, &iac_local_exec, NULL };

const iac_provider iac_provider_local = {
	.name = "local",
	.types = local_types,
};

int iac_local_mode_norm(char out[8], const json_t *mode)
{
	unsigned long m;
	char *end;

	if (!mode || json_is_null(mode)) {
		snprintf(out, 8, "0644");
		return 0;
	}
	if (json_is_integer(mode)) {
		/* a Lua number 644 was almost certainly meant as octal text */
		char tmp[32];
		snprintf(tmp, sizeof(tmp), "%lld", (long long)json_integer_value(mode));
		m = strtoul(tmp, &end, 8);
		if (*end)
			return iac_err_set("attribute 'mode': '%s' is not an octal mode", tmp);
	} else if (json_is_string(mode)) {
		const char *s = json_string_value(mode);
		m = strtoul(s, &end, 8);
		if (!*s || *end)
			return iac_err_set("attribute 'mode': '%s' is not an octal mode like \"0644\"", s);
	} else {
		return iac_err_set("attribute 'mode': expected a string like \"0644\"");
	}
	if (m > 07777)
		return iac_err_set("attribute 'mode': %lo is out of range", m);
	snprintf(out, 8, "%04lo", m);
	return 0;
}
