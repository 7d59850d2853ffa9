/* history: change events in state (see history.h). */
#include "iac/state/history.h"

#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include "iac/core/util.h"

int iac_history_add(iac_state *st, json_t *event)
{
	char when[32], host[256] = "";
	const char *user = getenv("USER");
	json_t *old = iac_state_extra(st, "history");
	json_t *h = json_array();
	size_t n = json_array_size(old), from = n >= IAC_HISTORY_MAX ? n - IAC_HISTORY_MAX + 1 : 0;

	if (!user) {
		struct passwd *pw = getpwuid(getuid());
		user = pw ? pw->pw_name : "?";
	}
	gethostname(host, sizeof(host) - 1);
	iac_time_rfc3339(when, sizeof(when));
	json_object_set_new(event, "at", json_string(when));
	json_object_set_new(event, "user", json_string(user));
	json_object_set_new(event, "host", json_string(host));
	for (size_t i = from; i < n; i++)
		json_array_append(h, json_array_get(old, i));
	json_array_append_new(h, event);
	int rc = iac_state_set_extra(st, "history", h);
	json_decref(h);
	return rc;
}
