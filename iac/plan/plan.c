/* plan: refresh + diff -> changes (see plan.h). */
#include "iac/plan/plan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iac/graph/walk.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/map.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/graph/graph.h"

const char *iac_action_name(iac_action a)
{
	static const char *names[] = { "no-op", "create", "update", "replace", "delete", "read" };
	return names[a];
}

/* ---- scope (-target) ---- */

static int addr_matches(const char *addr, const char *target)
{
	size_t tl = strlen(target);
	return !strncmp(addr, target, tl) && (addr[tl] == '\0' || addr[tl] == '.');
}

static int in_targets(const char *addr, const char *const *targets)
{
	if (!targets)
		return 1;
	for (size_t i = 0; targets[i]; i++)
		if (addr_matches(addr, targets[i]))
			return 1;
	return 0;
}

/* Every -target/-replace address must name something: a typo would
 * otherwise plan as if the flag were not there. */
static int check_matches(const iac_config *cfg, const char **addrs, size_t naddrs,
			 const char *const *list, const char *flag)
{
	for (size_t t = 0; list && list[t]; t++) {
		int hit = 0;
		for (size_t i = 0; i < cfg->nres && !hit; i++)
			hit = addr_matches(cfg->res[i]->addr, list[t]);
		for (size_t i = 0; i < naddrs && !hit; i++)
			hit = addr_matches(addrs[i], list[t]);
		if (!hit)
			return iac_err_set("%s '%s' matches no resource in the configuration or the state "
					   "('iac state list' and 'iac graph' show the addresses)", flag, list[t]);
	}
	return 0;
}

/* ---- refresh ---- */

typedef struct {
	iac_config *cfg;
	iac_state *st;
	iac_providers *pv;
	const char **addrs;   /* what each node reads back... */
	const iac_rconf **probes; /* ...or, when set, whose host it only reaches */
	json_t **result;      /* refreshed entry, NULL = gone */
	char **errors;        /* a resource's own failure */
	json_t **down;        /* its host's failure: {"host","address","error"} */
	const volatile int *cancel;
} refresh_job;

/* The name of the host a resource lives on (its IAC_T_HOST attribute: a
 * host object's name, or a bare address), or NULL when it has none or it
 * is not known yet. */
static const char *host_name_of(const iac_rtype *rt, const json_t *attrs)
{
	for (const iac_attr *a = rt ? rt->attrs : NULL; a && a->name; a++) {
		if (a->type != IAC_T_HOST)
			continue;
		const json_t *h = json_object_get(attrs, a->name);
		if (json_is_string(h))
			return json_string_value(h);
		if (json_is_object(h) && !iac_value_marker(h))
			return iac_json_str(h, "name")
				?: iac_json_str(h, "address");
	}
	return NULL;
}

/* After a failed provider call: 1 (and the host's failure in *down) when it
 * failed because its host could not be reached. */
static int host_failed(json_t **down)
{
	if (!iac_err_host())
		return 0;
	*down = json_pack("{s:s,s:s,s:s}", "host", iac_err_host(), "address", iac_err_host_address(),
			  "error", iac_err_host_why());
	return 1;
}

/* Reach the host of a resource that is new everywhere (nothing to read). */
static int probe_one(refresh_job *job, int node)
{
	const iac_rconf *r = job->probes[node];
	iac_rctx ctx;
	iac_err_clear();
	if (iac_providers_ctx(&ctx, job->pv, r->provider, r->addr, job->cancel) == 0 &&
	    r->rtype->probe(&ctx, r->attrs) == 0)
		return 0;
	if (!host_failed(&job->down[node]))
		iac_err_clear();   /* not the host's fault: apply will say what it is */
	return 0;
}

/* Convert provider attributes to state form: sensitive ones redacted. */
static void redact_attrs(json_t *attrs, const json_t *sensitive, const char *salt)
{
	json_t *e;
	size_t i;
	json_array_foreach(sensitive, i, e) {
		const char *k = json_string_value(e);
		json_t *v = json_object_get(attrs, k);
		if (v && !json_is_null(v) && !iac_value_is_unknown(v))
			json_object_set_new(attrs, k, iac_value_redact(v, salt));
	}
}

static int refresh_one(int node, void *ud)
{
	refresh_job *job = ud;
	if (job->probes[node])
		return probe_one(job, node);
	const char *addr = job->addrs[node];
	json_t *entry = iac_state_get(job->st, addr);
	const char *type = iac_json_str(entry, "type");
	const iac_provider *p = NULL;
	const iac_rtype *rt = type ? iac_provider_find_type(type, &p) : NULL;
	json_t *pending = json_object_get(entry, "pending");
	json_t *attrs = json_object_get(entry, "attributes");
	json_t *actual = NULL;
	iac_rctx ctx;

	if (!rt) {
		job->errors[node] = iac_xasprintf("state holds '%s' of type '%s', which this iac does not "
						  "know; remove it with 'iac state rm %s' if it is gone",
						  addr, type ? type : "?", addr);
		return 1;
	}
	if (!attrs && pending)
		attrs = json_object_get(pending, "planned");
	if (!attrs || rt->is_data) {
		/* nothing to read back: an interrupted create with no plan, or a
		 * data source (re-read during planning) */
		job->result[node] = (!attrs) ? NULL : json_copy(entry);
		return 0;
	}
	json_t *given = attrs;
	json_t *real = json_array_size(json_object_get(entry, "sensitive_attributes"))
			       ? iac_plan_unredact(job->cfg, job->st, addr, attrs) : NULL;
	if (real)
		given = real;
	if (pending && !json_object_get(entry, "attributes")) {
		/* an interrupted create: tell the provider, so one that cannot
		 * check existence answers "not there" and the create re-runs */
		given = json_copy(attrs);
		json_object_set_new(given, "$interrupted", json_true());
	} else {
		json_incref(given);
	}
	json_decref(real);
	iac_err_clear();
	int rrc = iac_providers_ctx(&ctx, job->pv, p, addr, job->cancel);
	if (rrc == 0)
		rrc = rt->read(&ctx, &actual, given);
	json_decref(given);
	if (actual)
		json_object_del(actual, "$interrupted");
	if (rrc < 0) {
		if (!host_failed(&job->down[node]))
			job->errors[node] = iac_xstrdup(iac_err_last());
		return 1;
	}
	if (!actual) {
		job->result[node] = NULL;
		return 0;
	}
	json_t *out = json_copy(entry);
	json_object_del(out, "pending");
	redact_attrs(actual, json_object_get(entry, "sensitive_attributes"), iac_state_lineage(job->st));
	json_object_set_new(out, "attributes", actual);
	job->result[node] = out;
	return 0;
}

/* ---- planning context ---- */

typedef struct {
	iac_config *cfg;
	iac_state *st;
	iac_providers *pv;
	const iac_plan_opts *opts;
	iac_plan *plan;
	iac_map changes;        /* addr -> index + 1 into plan->changes (it grows) */
	iac_map refreshed;      /* addr -> json_t* entry (refreshed, may be absent) */
	iac_rconf *current;     /* resource being planned, for messages */
	json_t *down;           /* host name -> its entry in plan->unreachable */
	size_t cap;             /* capacity of plan->changes */
} planner;

static iac_change *add_change(planner *pl, const char *addr)
{
	iac_plan *plan = pl->plan;
	if (plan->n == pl->cap) {
		pl->cap = pl->cap ? pl->cap * 2 : 64;
		plan->changes = iac_xrealloc(plan->changes, pl->cap * sizeof(iac_change));
	}
	iac_change *c = &plan->changes[plan->n++];
	memset(c, 0, sizeof(*c));
	c->addr = iac_xstrdup(addr);
	iac_map_put(&pl->changes, addr, (void *)(intptr_t)plan->n);
	return c;
}

/* Reasons given by providers live as long as the plan. */
static const char *reason_string(planner *pl, const char *text)
{
	json_array_append_new(pl->plan->reasons, json_string(text));
	return json_string_value(json_array_get(pl->plan->reasons, json_array_size(pl->plan->reasons) - 1));
}

/* Record host failures once per host (the first cause seen). */
static void note_down(planner *pl, json_t *down)
{
	const char *h = iac_json_str(down, "host");
	if (!json_object_get(pl->down, h)) {
		json_object_set_new(down, "resources", json_array());
		json_object_set(pl->down, h, down);
		json_array_append(pl->plan->unreachable, down);
	}
}

/* Follow a dotted attribute path ("tags.name") inside an object. */
static json_t *lookup_path(json_t *obj, const char *path, int *found)
{
	char *copy = iac_xstrdup(path), *save = NULL;
	json_t *cur = obj;
	*found = 1;
	for (char *part = strtok_r(copy, ".", &save); part; part = strtok_r(NULL, ".", &save)) {
		if (iac_value_is_unknown(cur))
			break;
		if (json_is_array(cur)) {
			char *end;
			long idx = strtol(part, &end, 10);
			cur = (*end || idx < 1) ? NULL : json_array_get(cur, (size_t)idx - 1);
		} else {
			cur = json_object_get(cur, part);
		}
		if (!cur) {
			*found = 0;
			break;
		}
	}
	free(copy);
	return cur;
}

static int attr_in_schema(const char *type, const char *attr)
{
	char top[256];
	const iac_rtype *rt = iac_provider_find_type(type, NULL);
	snprintf(top, sizeof(top), "%s", attr);
	char *dot = strchr(top, '.');
	if (dot)
		*dot = '\0';
	return rt && iac_rtype_attr(rt, top) != NULL;
}

static int is_sensitive(const json_t *list, const char *attr)
{
	json_t *e;
	size_t i;
	char top[256];
	snprintf(top, sizeof(top), "%s", attr);
	char *dot = strchr(top, '.');
	if (dot)
		*dot = '\0';
	json_array_foreach(list, i, e)
		if (!strcmp(json_string_value(e), top))
			return 1;
	return 0;
}

/* Resolver during planning: values of resources planned before this one. */
static iac_change *planned_change(planner *pl, const char *addr)
{
	intptr_t idx = (intptr_t)iac_map_get(&pl->changes, addr);
	return idx ? &pl->plan->changes[idx - 1] : NULL;
}

/* "sha256:<hex>" of the configured attributes in attrs (those the config
 * sets), or unknown when one of them is. What a watching attribute
 * (restart_on = { conf }) sees of a resource. */
static json_t *config_digest(const iac_rconf *r, const json_t *attrs)
{
	json_t *sub = json_object(), *v;
	const char *k;
	char hex[65];
	json_object_foreach(r->attrs, k, v)
		json_object_set(sub, k, json_object_get(attrs, k) ? json_object_get(attrs, k) : json_null());
	if (iac_value_has_unknown(sub)) {
		json_decref(sub);
		return iac_value_unknown();
	}
	char *text = json_dumps(sub, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	iac_sha256_hex(hex, text, strlen(text));
	free(text);
	json_decref(sub);
	char *d = iac_xasprintf("sha256:%s", hex);
	json_t *out = json_string(d);
	free(d);
	return out;
}

static int plan_resolver(json_t **out, const char *addr, const char *attr, void *ud)
{
	planner *pl = ud;
	iac_change *c = planned_change(pl, addr);
	int found;

	if (!strcmp(attr, "*")) {
		iac_rconf *r = iac_config_get(pl->cfg, addr);
		*out = (c && c->planned && r && c->action != IAC_ACT_READ) ? config_digest(r, c->planned)
									  : iac_value_unknown();
		return 0;
	}

	if (!c) {
		/* out of -target scope: use what state says */
		json_t *e = iac_state_get(pl->st, addr);
		json_t *v = e ? lookup_path(json_object_get(e, "attributes"), attr, &found) : NULL;
		*out = v ? json_incref(v) : iac_value_unknown();
		return 0;
	}
	if (c->action == IAC_ACT_READ || !c->planned) {
		*out = iac_value_unknown();
		return 0;
	}
	json_t *v = lookup_path(c->planned, attr, &found);
	if (!found && !attr_in_schema(c->type, attr))
		return iac_err_set("%s:%d: resource '%s' refers to '%s.%s', but type '%s' has no attribute '%s'",
				   pl->current->file, pl->current->line, pl->current->addr, addr, attr, c->type, attr);
	*out = v ? json_incref(v) : json_null();
	if (is_sensitive(c->sensitive, attr))
		*out = iac_value_sensitive(*out);
	return 0;
}

/* Resolve each top-level attribute; collect sensitive attribute names. */
static json_t *resolve_attrs(planner *pl, const json_t *attrs, json_t *sensitive,
			     iac_value_resolver fn, void *ud)
{
	json_t *out = json_object(), *v;
	const char *k;
	json_object_foreach((json_t *)attrs, k, v) {
		unsigned flags = 0;
		json_t *r = iac_value_resolve(v, fn, ud, &flags);
		if (!r) {
			json_decref(out);
			return NULL;
		}
		if ((flags & IAC_VAL_SENSITIVE) && sensitive && !is_sensitive(sensitive, k))
			json_array_append_new(sensitive, json_string(k));
		json_object_set_new(out, k, r);
	}
	return out;
}

static int ignored(const iac_rconf *r, const char *attr)
{
	json_t *e;
	size_t i;
	json_array_foreach(r->ignore_changes, i, e) {
		const char *s = json_string_value(e);
		if (!strcmp(s, "*") || !strcmp(s, attr))
			return 1;
	}
	return 0;
}

static void add_name(json_t *list, const char *name)
{
	if (!is_sensitive(list, name))
		json_array_append_new(list, json_string(name));
}

/* The value a planned attribute would have in state, for comparison. */
static json_t *state_form(const json_t *v, int sensitive, const char *salt)
{
	if (!v)
		return json_null();
	if (sensitive && !json_is_null(v) && !iac_value_has_unknown(v))
		return iac_value_redact(v, salt);
	return json_incref((json_t *)v);
}

/* Compare planned against the refreshed prior entry; fill c->changed and
 * c->forces and return the action. */
static iac_action diff(planner *pl, iac_change *c, const iac_rconf *r, const json_t *prior_entry)
{
	const json_t *have_attrs = json_object_get(prior_entry, "attributes");
	const json_t *prior_sens = json_object_get(prior_entry, "sensitive_attributes");
	const char *salt = iac_state_lineage(pl->st);

	for (const iac_attr *a = r->rtype->attrs; a && a->name; a++) {
		if (a->flags & (IAC_A_COMPUTED | IAC_A_NO_DIFF))
			continue;
		if (ignored(r, a->name))
			continue;
		int sens = is_sensitive(c->sensitive, a->name) || is_sensitive(prior_sens, a->name);
		json_t *want = state_form(json_object_get(c->planned, a->name), sens, salt);
		const json_t *have = json_object_get(have_attrs, a->name);
		int same = !iac_value_has_unknown(want) &&
			   iac_value_equal(json_is_null(want) ? NULL : want,
					   (have && !json_is_null(have)) ? have : NULL);
		json_decref(want);
		if (same)
			continue;
		add_name(c->changed, a->name);
		if (a->flags & IAC_A_FORCE_NEW)
			add_name(c->forces, a->name);
	}
	/* triggers: any difference (or an unknown) replaces */
	const json_t *old_t = json_object_get(prior_entry, "triggers");
	if ((c->triggers || old_t) && !ignored(r, "triggers")) {
		json_t *want = c->triggers ? json_incref(c->triggers) : json_object();
		int same = old_t ? (!iac_value_has_unknown(want) && iac_value_equal(want, old_t))
				 : !json_object_size(want);
		json_decref(want);
		if (!same) {
			add_name(c->changed, "triggers");
			add_name(c->forces, "triggers");
		}
	}
	if (in_targets(c->addr, pl->opts->replace) && pl->opts->replace) {
		add_name(c->forces, "-replace");
		return IAC_ACT_REPLACE;
	}
	if (json_array_size(c->forces) || (json_array_size(c->changed) && !r->rtype->update))
		return IAC_ACT_REPLACE;
	return json_array_size(c->changed) ? IAC_ACT_UPDATE : IAC_ACT_NOOP;
}

/* Fill computed attributes the provider did not: prior value when the
 * object stays, unknown when it is new. */
static void fill_computed(iac_change *c, const iac_rconf *r)
{
	const json_t *have = json_object_get(c->prior, "attributes");
	for (const iac_attr *a = r->rtype->attrs; a && a->name; a++) {
		if (!(a->flags & IAC_A_COMPUTED) || json_object_get(c->planned, a->name))
			continue;
		if ((c->action == IAC_ACT_NOOP || c->action == IAC_ACT_UPDATE) && json_object_get(have, a->name))
			json_object_set(c->planned, a->name, json_object_get(have, a->name));
		else
			json_object_set_new(c->planned, a->name, iac_value_unknown());
	}
}

static int check_types(const iac_rconf *r, const json_t *planned)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)planned, k, v) {
		const iac_attr *a = iac_rtype_attr(r->rtype, k);
		if (!a || iac_value_has_unknown(v) || json_is_null(v))
			continue;
		int ok = 1;
		switch (a->type) {
		case IAC_T_STRING: ok = json_is_string(v); break;
		case IAC_T_NUMBER: ok = json_is_number(v); break;
		case IAC_T_BOOL: ok = json_is_boolean(v); break;
		case IAC_T_LIST: ok = json_is_array(v); break;
		case IAC_T_MAP:
		case IAC_T_HOST: ok = json_is_object(v); break;
		default: break;
		}
		if (!ok)
			return iac_err_set("%s:%d: resource '%s': attribute '%s' has the wrong type (a %s)",
					   r->file, r->line, r->addr, k, iac_value_type_name(v));
	}
	return 0;
}

static int plan_data(planner *pl, iac_change *c, iac_rconf *r)
{
	iac_rctx ctx;
	json_t *got = NULL;

	if (iac_value_has_unknown(c->planned)) {
		c->action = IAC_ACT_READ;
		return 0;
	}
	iac_err_clear();
	if (iac_providers_ctx(&ctx, pl->pv, r->provider, r->addr, pl->opts->cancel) < 0 ||
	    r->rtype->read(&ctx, &got, c->planned) < 0) {
		json_t *down = NULL;
		if (host_failed(&down) && !pl->opts->require_all_hosts) {
			/* found down only now: leave it, and what needs it, alone */
			const char *h = iac_json_str(down, "host");
			note_down(pl, down);
			json_decref(down);
			char *why = iac_xasprintf("host '%s' is unreachable", h);
			c->reason = reason_string(pl, why);
			free(why);
			c->skipped = 1;
			c->host = iac_json_str(json_object_get(pl->down, h), "host");
			c->action = IAC_ACT_NOOP;
			json_decref(c->planned);
			c->planned = NULL;
			pl->plan->n_skipped++;
			json_array_append_new(json_object_get(json_object_get(pl->down, h), "resources"),
					      json_string(r->addr));
			return 0;
		}
		json_decref(down);
		return iac_err_set("%s:%d: cannot read data source '%s': %s", r->file, r->line, r->addr,
				   iac_err_last());
	}
	if (!got)
		return iac_err_set("%s:%d: data source '%s' found nothing", r->file, r->line, r->addr);
	json_decref(c->planned);
	c->planned = got;
	c->action = IAC_ACT_NOOP;
	return 0;
}

static void plan_warn(const iac_rctx *ctx, const char *msg)
{
	iac_plan *plan = ctx->caller;
	json_t *w;
	size_t i;
	/* the same note from several resources (a flag on five hosts) once */
	json_array_foreach(plan->warnings, i, w)
		if (!strcmp(iac_json_str(w, "message") ?: "", msg))
			return;
	json_array_append_new(plan->warnings, json_pack("{s:s,s:s}", "address", ctx->addr, "message", msg));
}

static iac_change *plan_delete(planner *pl, const char *addr, json_t *prior);

/* Why a resource must be left as it is, or NULL: it lives on a host that
 * could not be reached (*own = 1), or depends on something that is left as
 * it is, so its new values cannot be known (*own = 0). *host = the name of
 * the unreachable host at the root of it. */
static const char *skip_reason(planner *pl, const iac_rtype *rt, const json_t *attrs, const json_t *deps,
			       const json_t *prior_attrs, const char **host, int *own)
{
	const char *h = host_name_of(rt, attrs);
	json_t *e;
	size_t i;
	char *why = NULL;

	if (!h)
		h = host_name_of(rt, prior_attrs);
	*host = NULL;
	*own = 0;
	if (h && json_object_get(pl->down, h)) {
		*host = iac_json_str(json_object_get(pl->down, h), "host");
		*own = 1;
		why = iac_xasprintf("host '%s' is unreachable", h);
	} else {
		json_array_foreach(deps, i, e) {
			iac_change *d = planned_change(pl, json_string_value(e));
			if (!d || !d->skipped)
				continue;
			*host = d->host;
			why = iac_xasprintf("depends on '%s', which is left as it is (host '%s' is unreachable)",
					    d->addr, d->host);
			break;
		}
	}
	if (!why)
		return NULL;
	const char *r = reason_string(pl, why);
	free(why);
	return r;
}

/* A change that leaves the resource exactly as state has it. */
static int plan_skipped(planner *pl, const char *addr, const char *type, const iac_rconf *r,
			const char *reason, const char *host, int own)
{
	json_t *prior = iac_map_get(&pl->refreshed, addr);
	json_t *orig = iac_state_get(pl->st, addr);
	iac_change *c = add_change(pl, addr);
	c->type = iac_xstrdup(type);
	c->name = iac_xstrdup(r ? r->name : iac_json_str(orig, "name") ?: "");
	c->module = iac_xstrdup(r ? r->module : iac_json_str(orig, "module") ?: "");
	c->conf = (iac_rconf *)r;
	c->action = IAC_ACT_NOOP;
	c->skipped = own ? 1 : 2;
	c->reason = reason;
	c->host = host;
	c->prior = prior ? json_incref(prior) : NULL;
	c->before = prior ? json_incref(json_object_get(prior, "attributes")) : NULL;
	c->planned = c->before ? json_deep_copy(c->before) : NULL;
	c->sensitive = json_deep_copy(json_object_get(orig, "sensitive_attributes"));
	if (!c->sensitive)
		c->sensitive = json_array();
	c->changed = json_array();
	c->forces = json_array();
	c->deps = json_incref(r ? r->deps : json_object_get(orig, "dependencies"));
	if (!c->deps)
		c->deps = json_array();
	pl->plan->n_skipped++;
	if (own)
		json_array_append_new(json_object_get(json_object_get(pl->down, host), "resources"), json_string(addr));
	return 0;
}

/* Destroying needs no planned values: only what exists, and the rule that
 * protects it. Nothing is resolved, so values known only after an apply
 * cannot get in the way of a destroy. */
static int plan_destroy_one(planner *pl, iac_rconf *r)
{
	json_t *prior = iac_map_get(&pl->refreshed, r->addr);
	if (!prior || r->is_data)
		return 0;   /* nothing there: not part of a destroy plan */
	if (r->prevent_destroy)
		return iac_err_set("%s:%d: resource '%s' has lifecycle.prevent_destroy set, but this plan would "
				   "destroy it; remove prevent_destroy first", r->file, r->line, r->addr);
	iac_change *c = plan_delete(pl, r->addr, prior);
	c->conf = r;
	json_decref(c->deps);
	c->deps = json_incref(r->deps);
	return 0;
}

/* Errors from resolving say where the resource is declared. */
static int located(const iac_rconf *r)
{
	char head[600];
	snprintf(head, sizeof(head), "%s:%d:", r->file, r->line);
	if (strncmp(iac_err_last(), head, strlen(head)) != 0)
		iac_err_set("%s:%d: resource '%s': %s", r->file, r->line, r->addr, iac_err_last());
	return IAC_ERR;
}

/* A new change for configured resource r, its sensitive attributes named. */
static iac_change *change_for(planner *pl, iac_rconf *r)
{
	iac_change *c = add_change(pl, r->addr);
	c->type = iac_xstrdup(r->type);
	c->name = iac_xstrdup(r->name);
	c->module = iac_xstrdup(r->module);
	c->conf = r;
	c->cbd = r->create_before_destroy;
	c->deps = json_incref(r->deps);
	c->sensitive = json_array();
	c->changed = json_array();
	c->forces = json_array();
	for (const iac_attr *a = r->rtype->attrs; a && a->name; a++)
		if (a->flags & IAC_A_SENSITIVE)
			add_name(c->sensitive, a->name);
	return c;
}

/* The type's plan hook: computed values known before apply. */
static int provider_plan(planner *pl, iac_change *c, iac_rconf *r)
{
	iac_rctx ctx;
	if (!r->rtype->plan)
		return 0;
	int prc = iac_providers_ctx(&ctx, pl->pv, r->provider, r->addr, pl->opts->cancel);
	ctx.warn = plan_warn;
	ctx.caller = pl->plan;
	if (prc < 0 || r->rtype->plan(&ctx, c->planned, c->before) < 0)
		return iac_err_set("%s:%d: resource '%s': %s", r->file, r->line, r->addr, iac_err_last());
	return 0;
}

/* create, update, replace or no-op, and why when it is not the config. */
static void decide(planner *pl, iac_change *c, iac_rconf *r)
{
	json_t *orig = iac_state_get(pl->st, r->addr);
	if (pl->opts->destroy) {
		c->action = c->prior ? IAC_ACT_DELETE : IAC_ACT_NOOP;
	} else if (!c->prior) {
		c->action = IAC_ACT_CREATE;
		if (orig && json_object_get(orig, "attributes") && !json_object_get(orig, "pending"))
			c->reason = r->rtype->gone_reason ? r->rtype->gone_reason : "deleted outside iac";
		else if (orig && json_object_get(orig, "pending"))
			c->reason = "interrupted before it finished";
	} else {
		c->action = diff(pl, c, r, c->prior);
		const char *want = iac_json_str(c->planned, "$update");
		if (want && c->action == IAC_ACT_NOOP && r->rtype->update) {
			c->action = IAC_ACT_UPDATE;
			c->reason = reason_string(pl, want);
		}
		if (json_object_get(orig, "pending"))
			c->reason = "found after an interrupted run";
		else if (c->action != IAC_ACT_NOOP && !c->reason &&
			 !iac_value_equal(json_object_get(orig, "attributes"), c->before))
			c->reason = "changed outside iac";
	}
}

static int is_drift(const char *reason)
{
	return reason && (!strcmp(reason, "changed outside iac") || !strcmp(reason, "deleted outside iac") ||
			  !strcmp(reason, "found after an interrupted run"));
}

static int plan_resource(planner *pl, iac_rconf *r)
{
	const char *host;
	int own;
	json_t *prior_entry = iac_map_get(&pl->refreshed, r->addr);
	const char *why = skip_reason(pl, r->rtype, r->attrs, r->deps,
				      json_object_get(prior_entry, "attributes"), &host, &own);
	if (why && !(pl->opts->destroy && !prior_entry))
		return plan_skipped(pl, r->addr, r->type, r, why, host, own);
	if (pl->opts->destroy)
		return plan_destroy_one(pl, r);
	iac_change *c = change_for(pl, r);
	pl->current = r;
	c->planned = resolve_attrs(pl, r->attrs, c->sensitive, plan_resolver, pl);
	if (!c->planned)
		return located(r);
	if (check_types(r, c->planned) < 0)
		return IAC_ERR;
	if (r->is_data)
		return plan_data(pl, c, r);
	if (r->triggers) {
		c->triggers = iac_value_resolve(r->triggers, plan_resolver, pl, NULL);
		if (!c->triggers)
			return located(r);
	}
	c->prior = prior_entry ? json_incref(prior_entry) : NULL;
	if (c->prior) {
		c->before = json_incref(json_object_get(c->prior, "attributes"));
		json_t *ps = json_object_get(c->prior, "sensitive_attributes"), *e;
		size_t i;
		json_array_foreach(ps, i, e)
			add_name(c->sensitive, json_string_value(e));
	}
	if (provider_plan(pl, c, r) < 0)
		return IAC_ERR;
	/* what is computed from a secret (a hash of it, say) is secret too */
	if (json_array_size(c->sensitive))
		for (const iac_attr *a = r->rtype->attrs; a && a->name; a++)
			if (a->flags & IAC_A_COMPUTED)
				add_name(c->sensitive, a->name);
	decide(pl, c, r);
	if ((c->action == IAC_ACT_DELETE || c->action == IAC_ACT_REPLACE) && r->prevent_destroy)
		return iac_err_set("%s:%d: resource '%s' has lifecycle.prevent_destroy set, but this plan "
				   "would %s it%s; remove prevent_destroy or change the plan",
				   r->file, r->line, r->addr,
				   c->action == IAC_ACT_DELETE ? "destroy" : "replace (destroy and re-create)",
				   json_array_size(c->forces) ? " because its attributes force replacement" : "");
	if (c->action != IAC_ACT_DELETE)
		fill_computed(c, r);
	json_object_del(c->planned, "$update");
	if (is_drift(c->reason) || (c->reason && c->reason == r->rtype->gone_reason))
		json_array_append_new(pl->plan->drift, json_string(r->addr));
	return 0;
}

static iac_change *plan_delete(planner *pl, const char *addr, json_t *prior)
{
	iac_change *c = add_change(pl, addr);
	c->type = iac_xstrdup(iac_json_str(prior, "type") ?: "");
	c->name = iac_xstrdup(iac_json_str(prior, "name") ?: "");
	c->module = iac_xstrdup(iac_json_str(prior, "module") ?: "");
	c->action = IAC_ACT_DELETE;
	c->prior = json_incref(prior);
	c->before = json_incref(json_object_get(prior, "attributes"));
	c->sensitive = json_deep_copy(json_object_get(prior, "sensitive_attributes"));
	if (!c->sensitive)
		c->sensitive = json_array();
	c->changed = json_array();
	c->forces = json_array();
	c->deps = json_deep_copy(json_object_get(prior, "dependencies"));
	if (!c->deps)
		c->deps = json_array();
	if (!pl->opts->destroy)
		c->reason = "not in the configuration";
	return c;
}

/* ---- outputs ---- */

static int plan_outputs(planner *pl)
{
	json_t *old = iac_state_outputs(pl->st), *o;
	const char *k;

	json_object_foreach(pl->cfg->outputs, k, o) {
		unsigned flags = 0;
		json_t *v = pl->opts->destroy ? NULL
			: iac_value_resolve(json_object_get(o, "value"), plan_resolver, pl, &flags);
		if (!v && !pl->opts->destroy)
			return IAC_ERR;
		int sens = json_is_true(json_object_get(o, "sensitive")) || (flags & IAC_VAL_SENSITIVE);
		json_t *prev = json_object_get(json_object_get(old, k), "value");
		const char *action;
		if (!v)
			action = prev ? "delete" : "no-op";
		else if (!prev)
			action = "create";
		else {
			json_t *cmp = state_form(v, sens, iac_state_lineage(pl->st));
			action = (!iac_value_has_unknown(v) && iac_value_equal(cmp, prev)) ? "no-op" : "update";
			json_decref(cmp);
		}
		json_object_set_new(pl->plan->output_changes, k,
				    json_pack("{s:s,s:O?,s:o?,s:b}", "action", action, "before", prev,
					      "after", v, "sensitive", sens));
	}
	json_object_foreach(old, k, o) {
		if (!json_object_get(pl->cfg->outputs, k) || pl->opts->destroy)
			json_object_set_new(pl->plan->output_changes, k,
					    json_pack("{s:s,s:O?,s:n,s:b}", "action", "delete", "before",
						      json_object_get(o, "value"), "after",
						      "sensitive", json_is_true(json_object_get(o, "sensitive"))));
	}
	return 0;
}

/* ---- driver ---- */

/* Refresh order: resources of one host next to each other, so the reads
 * in flight at once are mostly for the same host and a provider can merge
 * them into one remote command (ssh stats 30 files in one round trip). */
typedef struct {
	const char *key;
	const char *addr;
} refresh_item;

static int cmp_refresh(const void *a, const void *b)
{
	const refresh_item *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c ? c : strcmp(x->addr, y->addr);
}

static const char *host_key(iac_state *st, const char *addr)
{
	json_t *e = iac_state_get(st, addr);
	const iac_rtype *rt = iac_provider_find_type(iac_json_str(e, "type") ?: "", NULL);
	json_t *attrs = json_object_get(e, "attributes");
	if (!attrs)
		attrs = json_object_get(json_object_get(e, "pending"), "planned");
	for (const iac_attr *a = rt ? rt->attrs : NULL; a && a->name; a++)
		if (a->type == IAC_T_HOST)
			return iac_json_str(json_object_get(attrs, a->name), "address") ?: "";
	return "";
}

/* 0 when the resource's host has an address only known once something in
 * this apply exists (host "app1" { address = lxd_instance.address }). */
static int host_address_known(const iac_rtype *rt, const json_t *attrs)
{
	for (const iac_attr *a = rt ? rt->attrs : NULL; a && a->name; a++) {
		const json_t *h = a->type == IAC_T_HOST ? json_object_get(attrs, a->name) : NULL;
		if (json_is_object(h) && !json_is_string(json_object_get(h, "address")))
			return 0;
	}
	return 1;
}

/* Hosts to reach during plan although nothing of theirs is read back:
 * those of in-scope resources that are new (or data sources), when no
 * refreshed resource lives there. One probe node per host. */
static size_t add_probes(planner *pl, refresh_job *job, iac_graph *g, size_t m,
			 const unsigned char *keep, iac_map *seen)
{
	for (size_t i = 0; i < pl->cfg->nres; i++) {
		const iac_rconf *r = pl->cfg->res[i];
		json_t *e = iac_state_get(pl->st, r->addr);
		if (!keep[i] || !r->rtype->probe || (json_object_get(e, "attributes") && !r->is_data))
			continue;
		const char *h = host_name_of(r->rtype, r->attrs);
		if (!h || iac_map_get(seen, h) || !host_address_known(r->rtype, r->attrs))
			continue;
		iac_map_put(seen, h, (void *)1);
		job->addrs[m] = r->addr;
		job->probes[m] = r;
		char name[600];
		snprintf(name, sizeof(name), "(probe %s)", h);
		iac_graph_add(g, name, NULL);
		m++;
	}
	return m;
}

/* One line for many resources that failed the same way:
 * "cannot refresh 'a': why" or "cannot refresh 3 resources ('a', 'b', 'c'): why". */
static void group_errors(planner *pl, const char **addrs, char **errors, size_t m)
{
	for (size_t i = 0; i < m; i++) {
		if (!errors[i])
			continue;
		size_t n = 0;
		iac_buf who = IAC_BUF_INIT;
		for (size_t j = i; j < m; j++) {
			if (!errors[j] || (j != i && strcmp(errors[j], errors[i])))
				continue;
			if (n < 3)
				iac_buf_printf(&who, "%s'%s'", n ? ", " : "", addrs[j]);
			n++;
			if (j != i) {
				free(errors[j]);
				errors[j] = NULL;
			}
		}
		if (n > 3)
			iac_buf_printf(&who, " and %zu more", n - 3);
		char *line = n == 1 ? iac_xasprintf("cannot refresh %s: %s", iac_buf_cstr(&who), errors[i])
				    : iac_xasprintf("cannot refresh %zu resources (%s): %s", n, iac_buf_cstr(&who), errors[i]);
		json_array_append_new(pl->plan->errors, json_string(line));
		free(line);
		iac_buf_free(&who);
	}
}

/* The in-scope state entries in the order refresh reads them (grouped by
 * host, see cmp_refresh) into job->addrs and g; the hosts they live on
 * into *seen. Returns how many. */
static size_t refresh_order(planner *pl, refresh_job *job, iac_graph *g, const unsigned char *in_scope_state,
			    const char **addrs, size_t n, iac_map *seen)
{
	refresh_item *items = iac_xcalloc(n + 1, sizeof(*items));
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (in_scope_state[i]) {
			items[m].key = host_key(pl->st, addrs[i]);
			items[m].addr = addrs[i];
			m++;
		}
	qsort(items, m, sizeof(*items), cmp_refresh);
	for (size_t i = 0; i < m; i++) {
		job->addrs[i] = items[i].addr;
		iac_graph_add(g, items[i].addr, NULL);
		json_t *e = iac_state_get(pl->st, items[i].addr);
		const iac_rtype *rt = iac_provider_find_type(iac_json_str(e, "type") ?: "", NULL);
		const char *h = rt && !rt->is_data ? host_name_of(rt, json_object_get(e, "attributes")) : NULL;
		if (h)
			iac_map_put(seen, h, (void *)1);
	}
	free(items);
	return m;
}

/* -refresh=false: what state says, as if it had been read back. */
static void refresh_from_state(planner *pl, refresh_job *job, size_t m)
{
	for (size_t i = 0; i < m; i++) {
		json_t *e = iac_state_get(pl->st, job->addrs[i]);
		job->result[i] = json_object_get(e, "attributes") ? json_copy(e) : NULL;
		if (job->result[i])
			json_object_del(job->result[i], "pending");
	}
}

/* Results into pl->refreshed. An entry that could not be read (an error,
 * or its host is unreachable) keeps its stale state: the plan stays sane,
 * and a resource on an unreachable host is left exactly as state has it.
 * IAC_ERR when any read failed. */
static int take_results(planner *pl, refresh_job *job, size_t nread, size_t m)
{
	int rc = 0;
	for (size_t i = 0; i < m; i++)
		if (job->down[i])
			note_down(pl, job->down[i]);
	group_errors(pl, job->addrs, job->errors, nread);
	for (size_t i = 0; i < nread; i++) {
		if (job->errors[i] || job->down[i]) {
			rc = job->errors[i] ? IAC_ERR : rc;
			free(job->errors[i]);
			json_t *e = iac_state_get(pl->st, job->addrs[i]);
			if (json_object_get(e, "attributes"))
				job->result[i] = json_copy(e);
		}
		json_decref(job->down[i]);
		if (job->result[i])
			iac_map_put(&pl->refreshed, job->addrs[i], job->result[i]);
	}
	for (size_t i = nread; i < m; i++)
		json_decref(job->down[i]);
	return rc;
}

/* -require-all-hosts: each unreachable host is an error, nothing changes. */
static int require_all_hosts(planner *pl)
{
	json_t *h;
	size_t i;
	if (!pl->opts->require_all_hosts || !json_array_size(pl->plan->unreachable))
		return 0;
	json_array_foreach(pl->plan->unreachable, i, h) {
		char *line = iac_xasprintf("host '%s' (%s) is unreachable: %s", iac_json_str(h, "host"),
					   iac_json_str(h, "address"), iac_json_str(h, "error"));
		json_array_append_new(pl->plan->errors, json_string(line));
		free(line);
	}
	json_array_append_new(pl->plan->errors,
			      json_string("-require-all-hosts is set, so nothing was changed; bring the "
					  "host(s) back, or leave out -require-all-hosts to converge the others"));
	return IAC_ERR;
}

static int do_refresh(planner *pl, unsigned char *in_scope_state, const char **addrs, size_t n,
		      const unsigned char *keep)
{
	refresh_job job = { .cfg = pl->cfg, .st = pl->st, .pv = pl->pv, .cancel = pl->opts->cancel };
	iac_graph *g = iac_graph_new();
	iac_map seen = { 0 };
	size_t cap = n + pl->cfg->nres + 1;

	job.addrs = iac_xcalloc(cap, sizeof(char *));
	job.probes = iac_xcalloc(cap, sizeof(*job.probes));
	size_t nread = refresh_order(pl, &job, g, in_scope_state, addrs, n, &seen), m = nread;
	if (pl->opts->refresh)
		m = add_probes(pl, &job, g, m, keep, &seen);
	iac_map_free(&seen);
	job.result = iac_xcalloc(m + 1, sizeof(json_t *));
	job.errors = iac_xcalloc(m + 1, sizeof(char *));
	job.down = iac_xcalloc(m + 1, sizeof(json_t *));
	if (pl->opts->refresh) {
		unsigned char *status = iac_xcalloc(m + 1, 1);
		iac_walk(status, g, pl->opts->parallelism > 0 ? pl->opts->parallelism : 10, refresh_one,
			 &job, pl->opts->stop ? pl->opts->stop : pl->opts->cancel);
		free(status);
	} else {
		refresh_from_state(pl, &job, m);
	}
	int rc = take_results(pl, &job, nread, m);
	if (require_all_hosts(pl) < 0)
		rc = IAC_ERR;
	if ((pl->opts->cancel && *pl->opts->cancel) || (pl->opts->stop && *pl->opts->stop))
		rc = iac_err_set("interrupted while reading resources back; nothing was changed");
	else if (rc)
		iac_err_set("%zu resource(s) could not be refreshed", json_array_size(pl->plan->errors));
	free(job.addrs);
	free(job.probes);
	free(job.result);
	free(job.errors);
	free(job.down);
	iac_graph_free(g);
	return rc;
}

iac_graph *iac_config_graph(const iac_config *cfg)
{
	iac_graph *g = iac_graph_new();
	for (size_t i = 0; i < cfg->nres; i++)
		iac_graph_add(g, cfg->res[i]->addr, cfg->res[i]);
	for (size_t i = 0; i < cfg->nres; i++) {
		json_t *e;
		size_t j;
		json_array_foreach(cfg->res[i]->deps, j, e)
			iac_graph_edge(g, iac_graph_find(g, json_string_value(e)), (int)i);
	}
	return g;
}

/* A NULL-terminated list as a JSON array, or NULL for no list. */
static json_t *list_json(const char *const *list)
{
	if (!list)
		return NULL;
	json_t *a = json_array();
	for (size_t i = 0; list[i]; i++)
		json_array_append_new(a, json_string(list[i]));
	return a;
}

/* A new, empty plan against st's lineage and serial. */
static iac_plan *plan_new(const iac_state *st, const iac_plan_opts *opts)
{
	iac_plan *plan = iac_xcalloc(1, sizeof(*plan));
	plan->output_changes = json_object();
	plan->drift = json_array();
	plan->errors = json_array();
	plan->warnings = json_array();
	plan->reasons = json_array();
	plan->unreachable = json_array();
	plan->destroy = opts->destroy;
	snprintf(plan->lineage, sizeof(plan->lineage), "%s", iac_state_lineage(st));
	plan->serial = iac_state_serial(st);
	plan->targets = list_json(opts->targets);
	plan->excludes = list_json(opts->excludes);
	plan->limits = list_json(opts->limits);
	return plan;
}

/* State entry addrs[i] is in scope but no longer configured: delete it,
 * forget it (a data source, or gone already), or leave it when its host
 * cannot be reached. */
static void plan_orphan(planner *pl, const char *addr)
{
	json_t *prior = iac_map_get(&pl->refreshed, addr);
	json_t *orig = iac_state_get(pl->st, addr);
	if (json_is_string(json_object_get(orig, "mode")) && !strcmp(iac_json_str(orig, "mode"), "data")) {
		plan_delete(pl, addr, orig);   /* a data source no longer declared: just forget it */
		return;
	}
	const char *host;
	int own;
	const iac_rtype *ort = iac_provider_find_type(iac_json_str(orig, "type") ?: "", NULL);
	const char *why = skip_reason(pl, ort, json_object_get(orig, "attributes"),
				      json_object_get(orig, "dependencies"), NULL, &host, &own);
	if (why && prior) {
		plan_skipped(pl, addr, iac_json_str(orig, "type") ?: "", NULL, why, host, own);
	} else if (prior) {
		plan_delete(pl, addr, prior);
	} else {
		/* gone already; forget it quietly */
		plan_delete(pl, addr, orig);
		pl->plan->changes[pl->plan->n - 1].reason = "already gone";
	}
}

static void count_actions(iac_plan *plan)
{
	for (size_t i = 0; i < plan->n; i++) {
		switch (plan->changes[i].action) {
		case IAC_ACT_CREATE: plan->n_add++; break;
		case IAC_ACT_UPDATE: plan->n_change++; break;
		case IAC_ACT_REPLACE: plan->n_add++; plan->n_destroy++; break;
		case IAC_ACT_DELETE:
			if (!plan->changes[i].reason || strcmp(plan->changes[i].reason, "already gone"))
				plan->n_destroy++;
			break;
		default: break;
		}
	}
}

/* What is in scope: keep[] over the configuration's graph (targets with
 * their dependencies, or their dependents when destroying), state_scope[]
 * over the state's addresses. */
/* 1 when a host (a host object, or a name) matches one -limit entry:
 * its name, its address, or "label=value"; entries may list several
 * separated by commas. */
static int host_matches(const iac_config *cfg, const json_t *host, const char *const *limits)
{
	const char *name = json_is_string(host) ? json_string_value(host) : iac_json_str(host, "name");
	const json_t *h = json_is_object(host) ? host : json_object_get(cfg->hosts, name ? name : "");
	const char *addr = iac_json_str(h, "address");
	for (size_t i = 0; limits[i]; i++) {
		char *list = iac_xstrdup(limits[i]), *save = NULL;
		int hit = 0;
		for (char *e = strtok_r(list, ",", &save); e && !hit; e = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(e, '=');
			if (eq) {
				*eq = '\0';
				hit = !strcmp(iac_json_str(json_object_get(h, "labels"), e) ?: "\x01", eq + 1);
			} else {
				hit = (name && !strcmp(name, e)) || (addr && !strcmp(addr, e));
			}
		}
		free(list);
		if (hit)
			return 1;
	}
	return 0;
}

/* The host a resource lives on (its IAC_T_HOST attribute), or NULL. */
static const json_t *host_of(const iac_rtype *rt, const json_t *attrs)
{
	for (const iac_attr *a = rt ? rt->attrs : NULL; a && a->name; a++)
		if (a->type == IAC_T_HOST && json_object_get(attrs, a->name))
			return json_object_get(attrs, a->name);
	return NULL;
}

/* -limit: keep[] only for resources on the limited hosts, and (unless
 * destroying) what they depend on. */
static void limit_scope(planner *pl, const iac_graph *g, unsigned char *keep)
{
	const iac_config *cfg = pl->cfg;
	unsigned char *lim = iac_xcalloc(cfg->nres + 1, 1);
	for (size_t i = 0; i < cfg->nres; i++) {
		const json_t *h = host_of(cfg->res[i]->rtype, cfg->res[i]->attrs);
		lim[i] = h && !iac_value_marker(h) && host_matches(cfg, h, pl->opts->limits);
	}
	if (pl->opts->destroy)
		iac_graph_mark_descendants(g, lim);
	else
		iac_graph_mark_ancestors(g, lim);
	for (size_t i = 0; i < cfg->nres; i++)
		keep[i] &= lim[i];
	free(lim);
}

/* -exclude: the excluded and what depends on them (when destroying: what
 * they depend on, which must outlive them) leave keep[]. */
static void exclude_scope(planner *pl, const iac_graph *g, unsigned char *keep)
{
	const iac_config *cfg = pl->cfg;
	unsigned char *ex = iac_xcalloc(cfg->nres + 1, 1);
	for (size_t i = 0; i < cfg->nres; i++)
		ex[i] = in_targets(cfg->res[i]->addr, pl->opts->excludes);
	if (pl->opts->destroy)
		iac_graph_mark_ancestors(g, ex);
	else
		iac_graph_mark_descendants(g, ex);
	for (size_t i = 0; i < cfg->nres; i++)
		if (ex[i])
			keep[i] = 0;
	free(ex);
}

/* Whether a state entry that is not configured is in scope. */
static int state_only_in_scope(planner *pl, const char *addr)
{
	const iac_plan_opts *opts = pl->opts;
	if (opts->excludes && in_targets(addr, opts->excludes))
		return 0;
	if (opts->limits) {
		json_t *e = iac_state_get(pl->st, addr);
		const iac_rtype *rt = iac_provider_find_type(iac_json_str(e, "type") ?: "", NULL);
		const json_t *h = host_of(rt, json_object_get(e, "attributes"));
		if (!h || !host_matches(pl->cfg, h, opts->limits))
			return 0;
	}
	return in_targets(addr, opts->targets);
}

/* What is in scope: keep[] over the configuration's graph (targets with
 * their dependencies, or their dependents when destroying; -limit,
 * -exclude), state_scope[] over the state's addresses. */
static int scope(planner *pl, const iac_graph *g, unsigned char **keep, unsigned char **state_scope,
		 const char **addrs, size_t naddrs)
{
	const iac_config *cfg = pl->cfg;
	const iac_plan_opts *opts = pl->opts;
	*keep = iac_xcalloc(cfg->nres + 1, 1);
	*state_scope = iac_xcalloc(naddrs + 1, 1);
	for (size_t i = 0; i < cfg->nres; i++)
		(*keep)[i] = in_targets(cfg->res[i]->addr, opts->targets);
	if (opts->targets && opts->destroy)
		iac_graph_mark_descendants(g, *keep);   /* dependents go first */
	else if (opts->targets)
		iac_graph_mark_ancestors(g, *keep);     /* dependencies come along */
	if (check_matches(cfg, addrs, naddrs, opts->targets, "-target") < 0 ||
	    check_matches(cfg, addrs, naddrs, opts->replace, "-replace") < 0 ||
	    check_matches(cfg, addrs, naddrs, opts->excludes, "-exclude") < 0)
		return IAC_ERR;
	if (opts->limits)
		limit_scope(pl, g, *keep);
	if (opts->excludes)
		exclude_scope(pl, g, *keep);
	for (size_t i = 0; i < naddrs; i++) {
		int id = iac_graph_find(g, addrs[i]);
		(*state_scope)[i] = id >= 0 ? (*keep)[id] : state_only_in_scope(pl, addrs[i]);
	}
	return 0;
}

/* The plan's refresh errors, one per line, as this thread's error. */
static void set_refresh_errors(const iac_plan *plan)
{
	iac_buf b = IAC_BUF_INIT;
	json_t *e;
	size_t i;
	json_array_foreach(plan->errors, i, e)
		iac_buf_printf(&b, "%s%s", i ? "\n" : "", json_string_value(e));
	iac_err_set("%s", iac_buf_cstr(&b));
	iac_buf_free(&b);
}

int iac_plan_make(iac_plan **out, iac_config *cfg, iac_state *st, iac_providers *pv,
		  const iac_plan_opts *opts)
{
	planner pl = { .cfg = cfg, .st = st, .pv = pv, .opts = opts };
	iac_graph *g = iac_config_graph(cfg);
	unsigned char *keep = NULL, *state_scope = NULL;
	size_t naddrs = 0;
	const char **addrs = iac_state_addresses(st, &naddrs);
	int *order = NULL;
	int rc = IAC_ERR;

	*out = NULL;
	pl.plan = plan_new(st, opts);
	pl.down = json_object();
	if (iac_graph_toposort(&order, g) < 0 || scope(&pl, g, &keep, &state_scope, addrs, naddrs) < 0 ||
	    do_refresh(&pl, state_scope, addrs, naddrs, keep) < 0)
		goto done;
	for (size_t i = 0; i < cfg->nres; i++) {
		int id = order[i];
		if (keep[id] && plan_resource(&pl, cfg->res[id]) < 0)
			goto done;
	}
	for (size_t i = 0; i < naddrs; i++)
		if (state_scope[i] && !iac_map_get(&pl.changes, addrs[i]))
			plan_orphan(&pl, addrs[i]);
	if (!opts->targets && !opts->excludes && !opts->limits && plan_outputs(&pl) < 0)
		goto done;
	count_actions(pl.plan);
	*out = pl.plan;
	pl.plan = NULL;
	rc = 0;
done:
	if (pl.plan && json_array_size(pl.plan->errors))
		set_refresh_errors(pl.plan);   /* refresh errors carry the details */
	for (size_t i = 0; i < pl.refreshed.cap; i++)
		if (pl.refreshed.slots[i].key)
			json_decref(pl.refreshed.slots[i].value);
	iac_map_free(&pl.refreshed);
	iac_map_free(&pl.changes);
	json_decref(pl.down);
	iac_plan_free(pl.plan);
	iac_graph_free(g);
	free(order);
	free(keep);
	free(state_scope);
	free(addrs);
	return rc;
}

void iac_plan_free(iac_plan *plan)
{
	if (!plan)
		return;
	for (size_t i = 0; i < plan->n; i++) {
		iac_change *c = &plan->changes[i];
		free(c->addr);
		free(c->type);
		free(c->name);
		free(c->module);
		json_decref(c->before);
		json_decref(c->planned);
		json_decref(c->sensitive);
		json_decref(c->changed);
		json_decref(c->forces);
		json_decref(c->triggers);
		json_decref(c->deps);
		json_decref(c->prior);
	}
	free(plan->changes);
	json_decref(plan->output_changes);
	json_decref(plan->drift);
	json_decref(plan->targets);
	json_decref(plan->excludes);
	json_decref(plan->moved);
	json_decref(plan->limits);
	json_decref(plan->errors);
	json_decref(plan->warnings);
	json_decref(plan->reasons);
	json_decref(plan->unreachable);
	free(plan);
}

char *iac_plan_host_line(const json_t *h)
{
	size_t n = json_array_size(json_object_get(h, "resources"));
	const char *addr = iac_json_str(h, "address");
	char *where = addr && *addr ? iac_xasprintf(" (%s)", addr) : iac_xstrdup("");
	char *line = iac_xasprintf("host '%s'%s is unreachable: %s; %s %zu resource%s %s left as %s",
				   iac_json_str(h, "host"), where,
				   iac_json_str(h, "error"), "its", n, n == 1 ? "" : "s",
				   n == 1 ? "is" : "are", n == 1 ? "it is" : "they are");
	free(where);
	return line;
}

int iac_plan_has_changes(const iac_plan *plan)
{
	const char *k;
	json_t *o;
	for (size_t i = 0; i < plan->n; i++) {
		const iac_change *c = &plan->changes[i];
		if (c->action == IAC_ACT_DELETE && c->reason && !strcmp(c->reason, "already gone"))
			continue;   /* only state to tidy up */
		if (c->action != IAC_ACT_NOOP && c->action != IAC_ACT_READ)
			return 1;
	}
	json_object_foreach(plan->output_changes, k, o)
		if (strcmp(iac_json_str(o, "action"), "no-op") != 0)
			return 1;
	return 0;
}

iac_change *iac_plan_find(const iac_plan *plan, const char *addr)
{
	for (size_t i = 0; i < plan->n; i++)
		if (!strcmp(plan->changes[i].addr, addr))
			return &plan->changes[i];
	return NULL;
}

json_t *iac_change_display(const iac_change *c, const json_t *attrs)
{
	json_t *out, *e;
	size_t i;
	if (!attrs)
		return NULL;
	out = json_deep_copy(attrs);
	json_array_foreach(c->sensitive, i, e) {
		const char *k = json_string_value(e);
		if (json_object_get(out, k) && !json_is_null(json_object_get(out, k)))
			json_object_set_new(out, k, json_string("(sensitive)"));
	}
	return out;
}

json_t *iac_plan_unredact(iac_config *cfg, iac_state *st, const char *addr, const json_t *attrs)
{
	iac_rconf *r = cfg ? iac_config_get(cfg, addr) : NULL;
	json_t *out = json_copy((json_t *)attrs), *v;
	const char *k;
	iac_apply_resolver ar = { cfg, st };

	if (!r)
		return out;
	json_object_foreach((json_t *)attrs, k, v) {
		const char *m = iac_value_marker(v);
		if (!m || strcmp(m, "redacted") != 0 || !json_object_get(r->attrs, k))
			continue;
		json_t *real = iac_value_resolve(json_object_get(r->attrs, k), iac_plan_resolve_applied, &ar, NULL);
		iac_err_clear();
		/* only when it is the same value state recorded */
		if (real && !iac_value_has_unknown(real)) {
			json_t *check = iac_value_redact(real, iac_state_lineage(st));
			if (iac_value_equal(check, v))
				json_object_set(out, k, real);
			json_decref(check);
		}
		json_decref(real);
	}
	return out;
}

int iac_plan_resolve_applied(json_t **out, const char *addr, const char *attr, void *ud)
{
	iac_apply_resolver *ar = ud;
	iac_rconf *r = iac_config_get(ar->cfg, addr);
	char top[256];
	int found;

	if (!strcmp(attr, "*") && r) {
		json_t *whole = iac_value_resolve(r->attrs, iac_plan_resolve_applied, ud, NULL);
		if (!whole)
			return IAC_ERR;
		*out = config_digest(r, whole);
		json_decref(whole);
		return 0;
	}
	snprintf(top, sizeof(top), "%s", attr);
	char *dot = strchr(top, '.');
	if (dot)
		*dot = '\0';
	if (r && json_object_get(r->attrs, top)) {
		/* a configured value: resolve it from configuration */
		unsigned flags = 0;
		json_t *whole = iac_value_resolve(json_object_get(r->attrs, top), iac_plan_resolve_applied, ud, &flags);
		if (!whole)
			return IAC_ERR;
		json_t *wrap = json_pack("{s:o}", top, whole);
		json_t *v = lookup_path(wrap, attr, &found);
		*out = v ? json_incref(v) : json_null();
		json_decref(wrap);
		if (flags & IAC_VAL_SENSITIVE)
			*out = iac_value_sensitive(*out);
		return 0;
	}
	json_t *e = iac_state_get(ar->st, addr);
	if (!e || !json_object_get(e, "attributes"))
		return iac_err_set("'%s' is not in state yet, so '%s.%s' is unknown", addr, addr, attr);
	json_t *v = lookup_path(json_object_get(e, "attributes"), attr, &found);
	*out = v ? json_incref(v) : json_null();
	return 0;
}

/* One resource for iac_plan_validate: 0, or IAC_ERR with the message. */
static int validate_one(iac_rconf *r, iac_providers *pv)
{
	iac_rctx ctx;
	json_t *planned = json_object(), *v;
	const char *k;
	int rc = 0;
	json_object_foreach(r->attrs, k, v) {
		/* a NULL resolver makes every reference unknown, as in a first plan */
		unsigned flags = 0;
		json_t *val = iac_value_resolve(v, NULL, NULL, &flags);
		if (val)
			json_object_set_new(planned, k, val);
	}
	if (check_types(r, planned) < 0) {
		rc = IAC_ERR;
	} else if (r->rtype->plan && !r->is_data) {
		int prc = iac_providers_ctx(&ctx, pv, r->provider, r->addr, NULL);
		ctx.hosts = NULL;   /* validating: no host may be touched */
		if (prc < 0 || r->rtype->plan(&ctx, planned, NULL) < 0)
			rc = iac_err_set("%s:%d: resource '%s': %s", r->file, r->line, r->addr, iac_err_last());
	}
	json_decref(planned);
	return rc;
}

int iac_plan_validate(iac_config *cfg, iac_providers *pv)
{
	iac_buf errs = IAC_BUF_INIT;
	for (size_t i = 0; i < cfg->nres; i++)
		if (validate_one(cfg->res[i], pv) < 0)
			iac_buf_printf(&errs, "%s%s", errs.len ? "\n" : "", iac_err_last());
	int rc = errs.len ? iac_err_set("%s", iac_buf_cstr(&errs)) : 0;
	iac_buf_free(&errs);
	return rc;
}
