/* cmd_import: `iac import ADDR [ID]` — adopt an object that exists but was
 * not made by iac, as Terraform's import does: the resource must be in the
 * configuration; ID (when the type has an import attribute, such as a
 * file's path) names the object; the type's read() says what is there, and
 * that goes into state. The next plan shows what differs from main.lua. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/cli/commands.h"
#include "iac/cli/session.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/core/value.h"

/* The attributes to read the object with: the configured ones (references
 * unknown), the import attribute set to id. */
static json_t *read_args(const iac_rconf *r, const char *id)
{
	json_t *attrs = json_object(), *v;
	const char *k;
	json_object_foreach(r->attrs, k, v) {
		unsigned flags = 0;
		json_t *val = iac_value_resolve(v, NULL, NULL, &flags);
		if (val && !(flags & IAC_VAL_UNKNOWN))
			json_object_set_new(attrs, k, val);
		else
			json_decref(val);
	}
	if (id)
		json_object_set_new(attrs, r->rtype->import_attr, json_string(id));
	return attrs;
}

/* The state entry for what read() found; sensitive attributes redacted. */
static json_t *entry_for(const iac_rconf *r, json_t *found, const char *salt)
{
	json_t *sens = json_array();
	char when[32];
	for (const iac_attr *a = r->rtype->attrs; a && a->name; a++) {
		json_t *v = json_object_get(found, a->name);
		if (!(a->flags & IAC_A_SENSITIVE) || !v || json_is_null(v))
			continue;
		json_object_set_new(found, a->name, iac_value_redact(v, salt));
		json_array_append_new(sens, json_string(a->name));
	}
	iac_time_rfc3339(when, sizeof(when));
	json_t *e = json_pack("{s:s,s:s,s:s,s:o,s:s}", "address", r->addr, "type", r->type, "name", r->name,
			      "attributes", found, "updated_at", when);
	if (r->module && *r->module)
		json_object_set_new(e, "module", json_string(r->module));
	if (json_array_size(sens))
		json_object_set_new(e, "sensitive_attributes", sens);
	else
		json_decref(sens);
	if (json_array_size(r->deps))
		json_object_set(e, "dependencies", r->deps);
	return e;
}

static int import_one(iac_session *s, const char *addr, const char *id)
{
	iac_rconf *r = iac_config_get(s->cfg, addr);
	iac_rctx ctx;
	json_t *found = NULL;
	if (!r)
		return iac_err_set("'%s' is not in the configuration: declare it in main.lua first, then import it", addr);
	if (r->is_data)
		return iac_err_set("'%s' is a data source: it is read at every plan, nothing to import", addr);
	if (iac_state_get(s->st, addr))
		return iac_err_set("'%s' is already in state ('iac state rm' it first to import another object)", addr);
	if (id && !r->rtype->import_attr)
		return iac_err_set("type '%s' takes no import ID: it reads the object its configuration describes; run "
				   "'iac import %s' without one", r->type, addr);
	json_t *args = read_args(r, id);
	int rc = iac_providers_ctx(&ctx, s->pv, r->provider, addr, &iac_cancel_requested);
	if (rc == 0)
		rc = r->rtype->read(&ctx, &found, args);
	json_decref(args);
	if (rc < 0)
		return iac_err_set("%s: %s", addr, iac_err_last());
	if (!found)
		return iac_err_set("no object found for '%s'%s%s%s; nothing imported", addr, id ? " at '" : "",
				   id ? id : "", id ? "'" : "");
	if (iac_state_put(s->st, entry_for(r, found, iac_state_lineage(s->st))) < 0)
		return IAC_ERR;
	return 0;
}

int iac_cmd_import(int argc, char **argv)
{
	iac_session s;
	iac_strlist pos = { 0 };
	int rc = 1;

	iac_session_init(&s, "import");
	if (iac_session_args(&s, IAC_F_VARS | IAC_F_LOCK, argc, argv, &pos) < 0)
		goto done;
	if (pos.n < 1 || pos.n > 2) {
		iac_log_error("usage: iac import ADDR [ID]");
		goto done;
	}
	if (iac_session_load_and_open(&s) < 0)
		goto done;
	iac_session_providers(&s);
	if (import_one(&s, pos.items[0], pos.n == 2 ? pos.items[1] : NULL) < 0 || iac_state_flush(s.st) < 0) {
		iac_session_error(NULL);
		goto done;
	}
	printf("Imported %s%s%s. Run 'iac plan' to see how it differs from the configuration.\n", pos.items[0],
	       pos.n == 2 ? " from " : "", pos.n == 2 ? pos.items[1] : "");
	rc = 0;
done:
	iac_session_close(&s);
	iac_strlist_free(&pos);
	return rc;
}

void iac_help_import(void)
{
	printf("\nusage: iac import ADDR [ID]\n\n"
	       "Adopts an object that exists but was not made by iac. ADDR must be declared in\n"
	       "main.lua; ID names the object when the type has one (a file's or directory's\n"
	       "path); otherwise the object the configuration describes is read. What is found\n"
	       "goes into state; the next plan shows how it differs from the configuration.\n");
	iac_session_usage(IAC_F_VARS | IAC_F_LOCK);
}
