/* flagops: live flag changes (see flagops.h). */
#include "providers/flags/flagops.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/state/history.h"

#include "iac/flags/flags.h"
#include "providers/flags/flags_res.h"

static int is_flags_entry(const json_t *e)
{
	const char *t = iac_json_str(e, "type");
	return t && (!strcmp(t, "flags.file") || !strcmp(t, "flags.etcd"));
}

static const char *target_label(const json_t *e, iac_buf *b)
{
	const json_t *a = json_object_get(e, "attributes");
	iac_buf_clear(b);
	if (!strcmp(iac_json_str(e, "type"), "flags.etcd"))
		iac_buf_printf(b, "etcd key '%s'", iac_json_str(a, "key"));
	else if (json_is_object(json_object_get(a, "host")))
		iac_buf_printf(b, "'%s':%s", iac_json_str(json_object_get(a, "host"), "name"),
			       iac_json_str(a, "path"));
	else
		iac_buf_printf(b, "%s", iac_json_str(a, "path"));
	return iac_buf_cstr(b);
}

/* One target of a flag change. */
typedef struct {
	char *addr;
	const char *type;
	json_t *entry;        /* the state entry as it was (borrowed) */
	json_t *attrs;        /* new attributes to deliver and record */
	json_t *moves;
	char *value;          /* the new value, rendered */
	char *label;
	iac_providers *pv;
	int rc;
	char error[512];
	double ms;
} target;

static void *deliver_one(void *arg)
{
	target *t = arg;
	iac_rctx ctx;
	char sha[65];
	double t0 = iac_now_ms();
	t->rc = iac_providers_ctx(&ctx, t->pv, &iac_provider_flags, t->addr, NULL);
	if (t->rc == 0)
		t->rc = iac_prov_flags_deliver(sha, &ctx, t->type, t->attrs);
	if (t->rc < 0)
		snprintf(t->error, sizeof(t->error), "%s", iac_err_last());
	else
		json_object_set_new(t->attrs, "sha256", json_string(sha));
	t->ms = iac_now_ms() - t0;
	return NULL;
}

/* The new attributes of one target; -1 with a message when the change is
 * not valid (unknown variant, sticky rule). */
static int prepare(target *t, const json_t *attrs, const char *name, const char *variant,
		   double percent, int reset)
{
	json_t *declared = json_object_get(json_object_get(attrs, "flags"), name);
	json_t *eff = iac_prov_flags_effective(attrs);
	json_t *old_spec = json_object_get(eff, name), *new_spec = NULL, *of = NULL, *nf = NULL;
	int rc = IAC_ERR;

	t->attrs = json_deep_copy(attrs);
	json_t *ov = json_object_get(t->attrs, "overrides");
	if (!json_is_object(ov)) {
		ov = json_object();
		json_object_set_new(t->attrs, "overrides", ov);
	}
	if (reset) {
		json_object_del(ov, name);
		new_spec = json_incref(declared);
	} else if (iac_flags_spec_set(&new_spec, name, old_spec, variant, percent) < 0) {
		goto done;
	} else {
		char when[32];
		iac_time_rfc3339(when, sizeof(when));
		json_object_set_new(ov, name, json_pack("{s:O,s:O,s:s}", "spec", new_spec, "declared", declared,
							"at", when));
	}
	/* who moves, and the sticky rule, on the flagd form */
	if (iac_flags_spec_to_flagd(&of, name, old_spec) < 0 || iac_flags_spec_to_flagd(&nf, name, new_spec) < 0)
		goto done;
	if (!reset && iac_flags_check_sticky(name, of, nf) < 0)
		goto done;
	iac_flags_moves(&t->moves, of, nf);
	iac_buf val = IAC_BUF_INIT;
	iac_flags_render(&val, nf);
	t->value = iac_buf_detach(&val);
	rc = 0;
done:
	json_decref(of);
	json_decref(nf);
	json_decref(eff);
	json_decref(new_spec);
	return rc;
}

/* What to change: set flag `name` to `variant` (percent < 0: for everyone;
 * 0..100: rollout), or reset it to what main.lua declares. */
typedef struct {
	const char *name, *variant;
	double percent;
	int reset;
} flag_change;

/* Every flags entry in state that carries the flag, with its new attributes
 * prepared: all of them are checked before any is changed. *ts has room for
 * every state entry; *nt of them are used (the last one failed when this
 * returns IAC_ERR), and must be freed with targets_free() either way. */
static int find_targets(target **ts, size_t *nt, iac_state *st, iac_providers *pv,
			const flag_change *fc)
{
	size_t n;
	const char **addrs = iac_state_addresses(st, &n);
	iac_buf label = IAC_BUF_INIT;
	int rc = 0;

	*ts = iac_xcalloc(n + 1, sizeof(**ts));
	*nt = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		json_t *e = iac_state_get(st, addrs[i]);
		json_t *attrs = json_object_get(e, "attributes");
		if (!is_flags_entry(e) || !json_object_get(json_object_get(attrs, "flags"), fc->name))
			continue;
		target *t = &(*ts)[(*nt)++];
		t->addr = iac_xstrdup(addrs[i]);
		t->type = iac_json_str(e, "type");
		t->entry = e;
		t->pv = pv;
		t->label = iac_xstrdup(target_label(e, &label));
		rc = prepare(t, attrs, fc->name, fc->variant, fc->percent, fc->reset);
	}
	free(addrs);
	iac_buf_free(&label);
	return rc;
}

static void targets_free(target *ts, size_t nt)
{
	for (size_t i = 0; i < nt; i++) {
		free(ts[i].addr);
		free(ts[i].value);
		free(ts[i].label);
		json_decref(ts[i].attrs);
		json_decref(ts[i].moves);
	}
	free(ts);
}

/* Deliver to every target at once, a thread each, so one slow host does not
 * delay the others; a target whose thread cannot start is done here. */
static void deliver_all(target *ts, size_t nt)
{
	pthread_t *th = iac_xcalloc(nt, sizeof(*th));
	int *started = iac_xcalloc(nt, sizeof(int));
	for (size_t i = 0; i < nt; i++)
		started[i] = pthread_create(&th[i], NULL, deliver_one, &ts[i]) == 0;
	for (size_t i = 0; i < nt; i++) {
		if (started[i])
			pthread_join(th[i], NULL);
		else
			deliver_one(&ts[i]);
	}
	free(th);
	free(started);
}

/* Add each target's outcome to `report`, and record the new attributes of
 * those the change reached. Returns how many were recorded; the failed ones
 * are listed in *failed. */
static size_t record(json_t *report, iac_buf *failed, iac_state *st, const target *ts, size_t nt)
{
	size_t ok = 0;
	for (size_t i = 0; i < nt; i++) {
		const target *t = &ts[i];
		json_array_append_new(report, json_pack("{s:s,s:s,s:s?,s:f,s:O?,s:b,s:s?}", "address", t->addr,
							"target", t->label, "value", t->value, "ms", t->ms,
							"moves", t->moves, "ok", t->rc == 0,
							"error", t->rc ? t->error : NULL));
		if (t->rc < 0) {
			iac_buf_printf(failed, "\n  %s: %s", t->label, t->error);
			continue;
		}
		json_t *entry = json_copy(t->entry);
		json_object_set(entry, "attributes", t->attrs);
		if (iac_state_put(st, entry) == 0)
			ok++;
	}
	return ok;
}

static void add_history(iac_state *st, const flag_change *fc, json_t *targets)
{
	json_t *ev = json_pack("{s:s,s:s,s:s?,s:O}", "command", fc->reset ? "flag reset" : "flag set",
			       "flag", fc->name, "variant", fc->reset ? NULL : fc->variant, "targets", targets);
	if (!fc->reset && fc->percent >= 0)
		json_object_set_new(ev, "percent", json_real(fc->percent));
	iac_history_add(st, ev);
}

/* Change `name` on every target carrying it: validate everywhere first,
 * deliver to all targets at once, record each success; a target that fails
 * keeps its old value and is named in the error. */
static int change(json_t **report, iac_state *st, iac_providers *pv, const char *name,
		  const char *variant, double percent, int reset)
{
	const flag_change fc = { .name = name, .variant = variant, .percent = percent, .reset = reset };
	target *ts;
	size_t nt, ok;
	iac_buf failed = IAC_BUF_INIT;
	json_t *targets;
	int rc;

	*report = NULL;
	rc = find_targets(&ts, &nt, st, pv, &fc);
	if (rc == 0 && !nt)
		rc = iac_err_set("no flag '%s' in state: declare it in main.lua and run 'iac apply' first "
				 "('iac flag list' shows the flags there are)", name);
	if (rc == 0) {
		deliver_all(ts, nt);
		targets = json_array();
		ok = record(targets, &failed, st, ts, nt);
		add_history(st, &fc, targets);
		*report = targets;
		if (ok < nt)
			rc = iac_err_set("flag '%s' reached %zu of %zu targets; these keep their old value:%s\n"
					 "run the same command again once they are reachable", name, ok, nt,
					 iac_buf_cstr(&failed));
	}
	targets_free(ts, nt);
	iac_buf_free(&failed);
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
		json_t *attrs = json_object_get(e, "attributes"), *eff = iac_prov_flags_effective(attrs), *spec;
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

/* The "set" operation (iac_provider_op) other providers use:
 * args {"name", "variant", "percent" (optional)}. */
int iac_flagops_op_set(json_t **report, struct iac_state *st, struct iac_providers *pv, const json_t *args)
{
	const json_t *pct = json_object_get(args, "percent");
	const char *name = iac_json_str(args, "name");
	const char *variant = iac_json_str(args, "variant");
	*report = NULL;
	if (!name || !variant)
		return iac_err_set("flag set: a flag name and a variant are needed");
	return iac_flagops_set(report, st, pv, name, variant, json_is_number(pct) ? json_number_value(pct) : -1);
}
