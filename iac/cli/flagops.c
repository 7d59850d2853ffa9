/* flagops: live flag changes (see flagops.h). */
#include "iac/cli/flagops.h"

#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/state/history.h"

#ifdef IAC_HAVE_PROVIDER_FLAGS
#include "iac/flags/flags.h"
#include "providers/flags/flags_res.h"

static int is_flags_entry(const json_t *e)
{
	const char *t = json_string_value(json_object_get(e, "type"));
	return t && (!strcmp(t, "flags.file") || !strcmp(t, "flags.etcd"));
}

static const char *target_label(const json_t *e, iac_buf *b)
{
	const json_t *a = json_object_get(e, "attributes");
	iac_buf_clear(b);
	if (!strcmp(json_string_value(json_object_get(e, "type")), "flags.etcd"))
		iac_buf_printf(b, "etcd key '%s'", json_string_value(json_object_get(a, "key")));
	else if (json_is_object(json_object_get(a, "host")))
		iac_buf_printf(b, "'%s':%s", json_string_value(json_object_get(json_object_get(a, "host"), "name")),
			       json_string_value(json_object_get(a, "path")));
	else
		iac_buf_printf(b, "%s", json_string_value(json_object_get(a, "path")));
	return iac_buf_cstr(b);
}

/* Apply `change` (new spec, or NULL = reset) to every entry carrying name. */
static int change(json_t **report, iac_state *st, iac_providers *pv, const char *name,
		  const char *variant, double percent, int reset)
{
	size_t n, found = 0;
	const char **addrs = iac_state_addresses(st, &n);
	json_t *targets = json_array();
	iac_buf label = IAC_BUF_INIT;
	int rc = 0;
	char *first_addr = NULL;

	*report = NULL;
	for (size_t i = 0; i < n && rc == 0; i++) {
		json_t *e = iac_state_get(st, addrs[i]);
		json_t *attrs = json_object_get(e, "attributes");
		json_t *declared = json_object_get(json_object_get(attrs, "flags"), name);
		if (!is_flags_entry(e) || !declared)
			continue;
		found++;
		json_t *eff = iac_flags_effective(attrs);
		json_t *old_spec = json_object_get(eff, name), *new_spec = NULL;
		json_t *na = json_deep_copy(attrs);
		json_t *ov = json_object_get(na, "overrides");
		if (!json_is_object(ov)) {
			ov = json_object();
			json_object_set_new(na, "overrides", ov);
		}
		if (reset) {
			json_object_del(ov, name);
			new_spec = json_incref(declared);
		} else if (iac_flags_spec_set(&new_spec, name, old_spec, variant, percent) < 0) {
			json_decref(eff);
			json_decref(na);
			rc = IAC_ERR;
			break;
		} else {
			char when[32];
			iac_time_rfc3339(when, sizeof(when));
			json_object_set_new(ov, name, json_pack("{s:O,s:O,s:s}", "spec", new_spec, "declared", declared,
								"at", when));
		}
		/* who moves, and the sticky rule, on the flagd form */
		json_t *of = NULL, *nf = NULL, *moves = NULL;
		if (iac_flags_spec_to_flagd(&of, name, old_spec) == 0 && iac_flags_spec_to_flagd(&nf, name, new_spec) == 0) {
			if (!reset && iac_flags_check_sticky(name, of, nf) < 0)
				rc = IAC_ERR;
			else
				iac_flags_moves(&moves, of, nf);
		}
		iac_buf val = IAC_BUF_INIT;
		if (nf)
			iac_flags_render(&val, nf);
		json_decref(of);
		json_decref(nf);
		json_decref(eff);
		json_decref(new_spec);
		if (rc < 0) {
			json_decref(na);
			json_decref(moves);
			iac_buf_free(&val);
			break;
		}
		iac_rctx ctx;
		char sha[65];
		double t0 = iac_now_ms();
		const char *type = json_string_value(json_object_get(e, "type"));
		char *addr = iac_xstrdup(addrs[i]);
		if (iac_providers_ctx(&ctx, pv, &iac_provider_flags, addr, NULL) < 0 ||
		    iac_flags_deliver(&ctx, type, na, sha) < 0) {
			iac_err_prefix("flag '%s': cannot deliver to %s", name, target_label(e, &label));
			json_decref(na);
			json_decref(moves);
			iac_buf_free(&val);
			free(addr);
			rc = IAC_ERR;
			break;
		}
		json_object_set_new(na, "sha256", json_string(sha));
		json_t *entry = json_copy(e);
		json_object_set_new(entry, "attributes", na);
		json_array_append_new(targets, json_pack("{s:s,s:s,s:s,s:f,s:o}", "address", addr, "target",
							 target_label(e, &label), "value", iac_buf_cstr(&val),
							 "ms", iac_now_ms() - t0, "moves", moves ? moves : json_array()));
		if (!first_addr)
			first_addr = iac_xstrdup(addr);
		free(addr);
		iac_buf_free(&val);
		rc = iac_state_put(st, entry);
	}
	free(addrs);
	iac_buf_free(&label);
	if (rc == 0 && !found)
		rc = iac_err_set("no flag '%s' in state: declare it in main.lua and run 'iac apply' first "
				 "('iac flag list' shows the flags there are)", name);
	if (rc == 0) {
		json_t *ev = json_pack("{s:s,s:s,s:s?,s:O}", "command", reset ? "flag reset" : "flag set", "flag", name,
				       "variant", reset ? NULL : variant, "targets", targets);
		if (!reset && percent >= 0)
			json_object_set_new(ev, "percent", json_real(percent));
		iac_history_add(st, ev);
		*report = json_incref(targets);
	}
	free(first_addr);
	json_decref(targets);
	return rc;
}

int iac_flagops_set(json_t **report, iac_state *st, iac_providers *pv, const char *name,
		    const char *variant, double percent)
{
	return change(report, st, pv, name, variant, percent, 0);
}

int iac_flagops_reset(json_t **report, iac_state *st, iac_providers *pv, const char *name)
{
	return change(report, st, pv, name, NULL, -1, 1);
}

json_t *iac_flagops_list(iac_state *st)
{
	size_t n;
	const char **addrs = iac_state_addresses(st, &n);
	json_t *out = json_object();
	iac_buf label = IAC_BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		json_t *e = iac_state_get(st, addrs[i]);
		if (!is_flags_entry(e))
			continue;
		json_t *attrs = json_object_get(e, "attributes"), *eff = iac_flags_effective(attrs), *spec;
		const char *name;
		json_object_foreach(eff, name, spec) {
			json_t *item = json_object_get(out, name);
			if (!item) {
				json_t *fd = NULL;
				iac_buf v = IAC_BUF_INIT, d = IAC_BUF_INIT;
				if (iac_flags_spec_to_flagd(&fd, name, spec) == 0)
					iac_flags_render(&v, fd);
				json_decref(fd);
				if (iac_flags_spec_to_flagd(&fd, name, json_object_get(json_object_get(attrs, "flags"), name)) == 0)
					iac_flags_render(&d, fd);
				json_decref(fd);
				json_t *ov = json_object_get(json_object_get(attrs, "overrides"), name);
				item = json_pack("{s:s,s:s,s:O?,s:[]}", "value", iac_buf_cstr(&v), "declared", iac_buf_cstr(&d),
						 "override_at", ov ? json_object_get(ov, "at") : NULL, "targets");
				json_object_set_new(out, name, item);
				iac_buf_free(&v);
				iac_buf_free(&d);
			}
			json_array_append_new(json_object_get(item, "targets"), json_string(target_label(e, &label)));
		}
		json_decref(eff);
	}
	free(addrs);
	iac_buf_free(&label);
	return out;
}

#else

int iac_flagops_set(json_t **report, iac_state *st, iac_providers *pv, const char *name,
		    const char *variant, double percent)
{
	*report = NULL;
	return iac_err_set("this iac was built without feature flags");
}

int iac_flagops_reset(json_t **report, iac_state *st, iac_providers *pv, const char *name)
{
	*report = NULL;
	return iac_err_set("this iac was built without feature flags");
}

json_t *iac_flagops_list(iac_state *st)
{
	return json_object();
}

#endif
