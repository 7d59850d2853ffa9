/* apply: execute a plan as a parallel operation graph (see apply.h). */
#include "iac/apply/apply.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/graph/walk.h"
#include "iac/core/err.h"
#include "iac/core/log.h"
#include "iac/core/proc.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/graph/graph.h"

enum op_kind { OP_NOOP, OP_CREATE, OP_UPDATE, OP_DELETE, OP_READ };

typedef struct {
	enum op_kind kind;
	iac_change *c;
	int deposed;          /* delete the deposed object of a create_before_destroy */
	double started;       /* ms, 0 when not running */
} op;

typedef struct {
	iac_plan *plan;
	iac_config *cfg;
	iac_state *st;
	iac_providers *pv;
	const iac_apply_opts *opts;
	iac_graph *g;
	op *ops;
	size_t nops;
	pthread_mutex_t lock;      /* results, failures, in-flight table */
	pthread_mutex_t flush_lock;
	double last_flush;
	iac_apply_result *res;
	volatile int ticker_stop;
	volatile int halted;       /* the state could no longer be written */
	char halt_why[512];        /* why (the failed write's message) */
} applier;

static const char *ing(enum op_kind k)
{
	static const char *w[] = { "", "creating", "modifying", "destroying", "reading" };
	return w[k];
}

static const char *ed(enum op_kind k)
{
	static const char *w[] = { "", "created", "modified", "destroyed", "read" };
	return w[k];
}

static char *deposed_addr(const char *addr)
{
	return iac_xasprintf("%s (deposed)", addr);
}

/* A failed operation. When its host could not be used (err.h's host mark,
 * set on this thread by the provider), the failure names the host, so the
 * summary can say it once for all of that host's resources. */
static void record_failure(applier *ap, op *o, const char *msg)
{
	char *red = iac_redact(msg);
	json_t *f = json_pack("{s:s,s:s,s:s}", "address", o->c->addr, "operation", ing(o->kind), "error", red);
	if (iac_err_host())
		json_object_set_new(f, "host", json_pack("{s:s,s:s,s:s}", "host", iac_err_host(), "address",
							 iac_err_host_address(), "error", iac_err_host_why()));
	pthread_mutex_lock(&ap->lock);
	json_array_append_new(ap->res->failures, f);
	pthread_mutex_unlock(&ap->lock);
	iac_log_error("%s: %s failed: %s", o->c->addr, ing(o->kind), red);
	free(red);
}

/* Snapshot the state now and then while applying, paced so that even a
 * huge state spends at most ~10% of the time on snapshots. The journal
 * already makes every result durable; snapshots keep it short. */
static void maybe_flush(applier *ap)
{
	double now = iac_now_ms();
	double gap = iac_state_last_flush_ms(ap->st) * 10;
	if (gap < 1000)
		gap = 1000;
	if (now - ap->last_flush < gap || iac_state_write_failed(ap->st) || pthread_mutex_trylock(&ap->flush_lock) != 0)
		return;
	if (now - ap->last_flush >= gap) {
		if (iac_state_flush(ap->st) < 0)
			iac_log_warn("state snapshot failed (the journal still has every change): %s", iac_err_last());
		ap->last_flush = iac_now_ms();
	}
	pthread_mutex_unlock(&ap->flush_lock);
}

/* The entry state keeps for a resource: sensitive attributes redacted. */
static json_t *make_entry(applier *ap, const iac_change *c, json_t *attrs, int data)
{
	const char *salt = iac_state_lineage(ap->st);
	json_t *e;
	size_t i;
	char when[32];

	iac_time_rfc3339(when, sizeof(when));
	json_array_foreach(c->sensitive, i, e) {
		json_t *v = json_object_get(attrs, json_string_value(e));
		if (v && !json_is_null(v))
			json_object_set_new(attrs, json_string_value(e), iac_value_redact(v, salt));
	}
	json_t *entry = json_pack("{s:s,s:s,s:s,s:s,s:o,s:O,s:O,s:s}", "address", c->addr, "type", c->type,
				  "name", c->name, "module", c->module ? c->module : "", "attributes", attrs,
				  "sensitive_attributes", c->sensitive, "dependencies",
				  c->deps ? c->deps : json_array(), "updated_at", when);
	/* empty fields cost parsing time at every command: leave them out */
	if (!json_array_size(json_object_get(entry, "sensitive_attributes")))
		json_object_del(entry, "sensitive_attributes");
	if (!json_array_size(json_object_get(entry, "dependencies")))
		json_object_del(entry, "dependencies");
	if (!json_string_length(json_object_get(entry, "module")))
		json_object_del(entry, "module");
	if (data)
		json_object_set_new(entry, "mode", json_string("data"));
	if (c->triggers) {
		unsigned flags = 0;
		json_t *t = iac_value_resolve(c->triggers, NULL, NULL, &flags);
		json_object_set_new(entry, "triggers", (flags & IAC_VAL_SENSITIVE) ? iac_value_redact(t, salt) : json_incref(t));
		json_decref(t);
	}
	if (c->cbd)
		json_object_set_new(entry, "create_before_destroy", json_true());
	return entry;
}

/* Resolve the configuration of c against what is applied now; run the
 * provider's plan hook so computed-early values (sha256) are filled. */
static json_t *final_values(applier *ap, iac_change *c, const iac_rctx *ctx)
{
	iac_apply_resolver ar = { ap->cfg, ap->st };
	json_t *out = json_object(), *v;
	const char *k;

	json_object_foreach(c->conf->attrs, k, v) {
		unsigned flags = 0;
		json_t *r = iac_value_resolve(v, iac_plan_resolve_applied, &ar, &flags);
		if (!r) {
			json_decref(out);
			return NULL;
		}
		if ((flags & IAC_VAL_SENSITIVE) && !json_is_null(r)) {
			int have = 0;
			json_t *e;
			size_t i;
			json_array_foreach(c->sensitive, i, e)
				have |= !strcmp(json_string_value(e), k);
			if (!have)
				json_array_append_new(c->sensitive, json_string(k));
			if (json_is_string(r))
				iac_redact_add(json_string_value(r));
		}
		json_object_set_new(out, k, r);
	}
	if (c->conf->triggers) {
		json_t *t = iac_value_resolve(c->conf->triggers, iac_plan_resolve_applied, &ar, NULL);
		if (!t) {
			json_decref(out);
			return NULL;
		}
		json_decref(c->triggers);
		c->triggers = t;
	}
	if (c->conf->rtype->plan && c->conf->rtype->plan(ctx, out, c->before) < 0) {
		json_decref(out);
		return NULL;
	}
	if (iac_value_has_unknown(out)) {
		/* computed attributes the provider sets itself may stay unknown */
		json_object_foreach(out, k, v) {
			const iac_attr *a = iac_rtype_attr(c->conf->rtype, k);
			if (iac_value_has_unknown(v) && !(a && (a->flags & IAC_A_COMPUTED))) {
				json_decref(out);
				iac_err_set("attribute '%s' is still unknown after its dependencies were applied", k);
				return NULL;
			}
		}
		json_object_foreach(out, k, v)
			if (iac_value_is_unknown(v))
				json_object_del(out, k);
	}
	return out;
}

/* Do two objects have the same identity (every attribute that forces
 * replacement equal)? */
static int same_object(const iac_rtype *rt, const json_t *old, const json_t *new_entry)
{
	const json_t *cur = json_object_get(new_entry, "attributes");
	int any = 0;
	if (!cur)
		return 0;
	for (const iac_attr *a = rt->attrs; a && a->name; a++) {
		if (!(a->flags & IAC_A_FORCE_NEW))
			continue;
		any = 1;
		const json_t *x = json_object_get(old, a->name), *y = json_object_get(cur, a->name);
		if (!iac_value_equal(x && !json_is_null(x) ? x : NULL, y && !json_is_null(y) ? y : NULL))
			return 0;
	}
	return any;
}

/* ---- commands that outlive a crash ------------------------------------
 * Each local command an operation starts runs in a process group led by a
 * guard that kills the group when iac dies. A kill -9 of iac and the guard
 * together leaves the group running; so the group is recorded with the
 * operation's pending marker before the command starts, and the next
 * command that takes the lock kills what is left of it before anything is
 * checked or run again (iac_apply_reap_leftovers). */
typedef struct {
	iac_state *st;
	const char *addr;
} group_note;

static int note_group(void *ud, const iac_proc_group *g)
{
	group_note *n = ud;
	json_t *rec = json_pack("{s:I,s:I,s:s}", "pgid", (json_int_t)g->pgid, "start", (json_int_t)g->start,
				"boot", g->boot);
	int rc = iac_state_note_group(n->st, n->addr, rec);
	json_decref(rec);
	return rc;
}

/* A group as recorded, checked field by field (state comes from disk). */
static int group_from_json(iac_proc_group *g, const json_t *j)
{
	const json_t *pgid = json_object_get(j, "pgid"), *start = json_object_get(j, "start");
	const char *boot = json_string_value(json_object_get(j, "boot"));
	if (!json_is_integer(pgid) || !json_is_integer(start) || !boot || json_integer_value(pgid) <= 1 ||
	    json_integer_value(start) < 0 || strlen(boot) >= sizeof(g->boot))
		return -1;
	g->pgid = (long)json_integer_value(pgid);
	g->start = (unsigned long long)json_integer_value(start);
	snprintf(g->boot, sizeof(g->boot), "%s", boot);
	return 0;
}

/* Kill the recorded groups of one pending entry; 0 when none runs now. */
static int reap_entry(const char *addr, const json_t *pending)
{
	const json_t *groups = json_object_get(pending, "groups"), *j;
	const char *action = json_string_value(json_object_get(pending, "action"));
	size_t i;
	json_array_foreach(groups, i, j) {
		iac_proc_group g;
		if (group_from_json(&g, j) < 0) {
			iac_log_warn("'%s': a recorded command group is not {\"pgid\", \"start\", \"boot\"}; "
				     "ignored", addr);
			continue;
		}
		int rc = iac_proc_group_reap(&g, 10000);
		if (rc < 0)
			return iac_err_set("cannot stop the commands of '%s' that an interrupted run left running: "
					   "%s; stop them (kill -KILL -- -%ld), then run iac again",
					   addr, iac_err_last(), g.pgid);
		if (rc > 0)
			iac_log_warn("killed the commands of '%s' (%s) that an interrupted run left running "
				     "(process group %ld); the %s is checked against reality before it runs again",
				     addr, action ? action : "?", g.pgid, action ? action : "operation");
	}
	return 0;
}

int iac_apply_reap_leftovers(iac_state *st)
{
	size_t n;
	const char **addrs = iac_state_addresses(st, &n);
	char **todo = iac_xcalloc(n + 1, sizeof(char *));
	size_t k = 0;
	int rc = 0;
	for (size_t i = 0; i < n; i++)
		if (json_array_size(json_object_get(json_object_get(iac_state_get(st, addrs[i]), "pending"), "groups")))
			todo[k++] = iac_xstrdup(addrs[i]);
	free(addrs);
	for (size_t i = 0; i < k && rc == 0; i++) {
		json_t *entry = iac_state_get(st, todo[i]);
		if ((rc = reap_entry(todo[i], json_object_get(entry, "pending"))) < 0)
			break;
		/* gone: forget them, so a pid used again later is never taken for one */
		json_t *copy = json_deep_copy(entry);
		json_object_del(json_object_get(copy, "pending"), "groups");
		rc = iac_state_put(st, copy);
	}
	for (size_t i = 0; i < k; i++)
		free(todo[i]);
	free(todo);
	return rc;
}

static int do_delete(applier *ap, op *o, const iac_rctx *ctx)
{
	iac_change *c = o->c;
	char *addr = o->deposed ? deposed_addr(c->addr) : iac_xstrdup(c->addr);
	json_t *entry = iac_state_get(ap->st, addr);
	json_t *attrs = entry ? json_object_get(entry, "attributes") : c->before;
	const iac_rtype *rt = iac_provider_find_type(c->type, NULL);
	int rc = IAC_ERR;

	if (!attrs) {   /* nothing was ever made */
		rc = iac_state_remove(ap->st, addr);
		goto done;
	}
	/* secrets back from the configuration, so a destroy command that uses
	 * one runs for real */
	int same = o->deposed && same_object(rt, attrs, iac_state_get(ap->st, c->addr));
	attrs = iac_plan_unredact(ap->cfg, ap->st, c->addr, attrs);
	if (same) {
		/* create_before_destroy made the new object in the very place of
		 * the old one (same identity): removing "the old one" would remove
		 * the new; just forget it */
		rc = iac_state_remove(ap->st, addr);
		goto done_attrs;
	}
	if (iac_state_begin(ap->st, addr, c->type, "delete", NULL) < 0)
		goto done_attrs;
	if (c->reason && !strcmp(c->reason, "already gone"))
		rc = 0;
	else if (rt->is_data)
		rc = 0;
	else {
		group_note note = { ap->st, addr };
		iac_proc_on_start(note_group, &note);
		rc = rt->remove(ctx, attrs);
		iac_proc_on_start(NULL, NULL);
	}
	if (rc == 0)
		rc = iac_state_remove(ap->st, addr);
	else {
		char *msg = iac_xstrdup(iac_err_last());
		iac_state_end(ap->st, addr);
		iac_err_set("%s", msg);
		free(msg);
	}
done_attrs:
	json_decref(attrs);
done:
	free(addr);
	return rc;
}

static int do_write(applier *ap, op *o, const iac_rctx *ctx)
{
	iac_change *c = o->c;
	const iac_rtype *rt = c->conf->rtype;
	json_t *planned = final_values(ap, c, ctx), *out = NULL;
	int rc = IAC_ERR;

	if (!planned)
		return IAC_ERR;
	if (o->kind == OP_READ) {
		if (rt->read(ctx, &out, planned) < 0)
			goto done;
		if (!out) {
			iac_err_set("data source found nothing");
			goto done;
		}
		rc = iac_state_put(ap->st, make_entry(ap, c, out, 1));
		goto done;
	}
	if (o->kind == OP_CREATE && c->action == IAC_ACT_REPLACE && c->cbd) {
		/* keep the old object under a deposed address until its delete */
		json_t *old = iac_state_get(ap->st, c->addr);
		if (old) {
			char *dep = deposed_addr(c->addr);
			json_t *moved = json_copy(old);
			json_object_set_new(moved, "address", json_string(dep));
			json_object_set_new(moved, "deposed", json_true());
			if (iac_state_put(ap->st, moved) < 0 || iac_state_remove(ap->st, c->addr) < 0) {
				free(dep);
				goto done;
			}
			free(dep);
		}
	}
	json_t *red = json_deep_copy(planned);
	{
		json_t *e;
		size_t i;
		json_array_foreach(c->sensitive, i, e) {
			json_t *v = json_object_get(red, json_string_value(e));
			if (v && !json_is_null(v))
				json_object_set_new(red, json_string_value(e),
						    iac_value_redact(v, iac_state_lineage(ap->st)));
		}
	}
	json_t *trig = NULL;
	if (c->triggers) {
		unsigned tflags = 0;
		json_t *t = iac_value_resolve(c->triggers, NULL, NULL, &tflags);
		trig = (tflags & IAC_VAL_SENSITIVE) ? iac_value_redact(t, iac_state_lineage(ap->st)) : json_incref(t);
		json_decref(t);
	}
	rc = iac_state_begin_with(ap->st, c->addr, c->type, o->kind == OP_CREATE ? "create" : "update", red, trig);
	json_decref(trig);
	json_decref(red);
	if (rc < 0)
		goto done;
	group_note note = { ap->st, c->addr };
	iac_proc_on_start(note_group, &note);
	if (o->kind == OP_CREATE)
		rc = rt->create(ctx, &out, planned);
	else
		rc = rt->update(ctx, &out, c->before, planned);
	iac_proc_on_start(NULL, NULL);
	if (rc < 0) {
		char *msg = iac_xstrdup(iac_err_last());
		iac_state_end(ap->st, c->addr);
		iac_err_set("%s", msg);
		free(msg);
		goto done;
	}
	rc = iac_state_put(ap->st, make_entry(ap, c, out ? out : json_deep_copy(planned), 0));
	out = NULL;
done:
	json_decref(planned);
	json_decref(out);
	return rc;
}

/* The prior attributes with the configured values of the no-diff ones
 * (ssh.directory's force_destroy, local.exec's destroy command): they
 * change nothing now but what a later destroy does, so state must have
 * them without the object being touched. New reference. */
static json_t *with_no_diff(const iac_change *c)
{
	json_t *attrs = json_deep_copy(json_object_get(c->prior, "attributes"));
	const iac_rtype *rt = c->conf ? c->conf->rtype : NULL;
	for (const iac_attr *a = rt ? rt->attrs : NULL; a && a->name; a++) {
		if (!(a->flags & IAC_A_NO_DIFF))
			continue;
		json_t *v = json_object_get(c->planned, a->name);
		if (!v)
			json_object_del(attrs, a->name);
		else if (!iac_value_has_unknown(v))
			json_object_set(attrs, a->name, v);
	}
	return attrs;
}

/* A no-op still refreshes what state knows: adopted objects found after an
 * interrupted run, new dependencies, drift that ignore_changes hides. */
static int do_noop(applier *ap, op *o)
{
	iac_change *c = o->c;
	if (c->skipped)
		return 0;   /* on an unreachable host: state keeps what it had */
	json_t *cur = iac_state_get(ap->st, c->addr);
	if (!c->prior || (c->conf && c->conf->is_data))
		return c->conf && c->conf->is_data && c->planned
			? iac_state_put(ap->st, make_entry(ap, c, json_deep_copy(c->planned), 1)) : 0;
	json_t *attrs = with_no_diff(c);
	/* entries keep no empty "dependencies" (make_entry): none == [] */
	const json_t *had = json_object_get(cur, "dependencies");
	int same_deps = json_array_size(had) || json_array_size(c->deps) ? iac_value_equal(had, c->deps) : 1;
	if (cur && !json_object_get(cur, "pending") && iac_value_equal(json_object_get(cur, "attributes"), attrs) &&
	    same_deps) {
		json_decref(attrs);
		return 0;
	}
	return iac_state_put(ap->st, make_entry(ap, c, attrs, 0));
}

static int run_op(int node, void *ud)
{
	applier *ap = ud;
	op *o = iac_graph_data(ap->g, node);
	iac_change *c = o->c;
	const iac_provider *p = NULL;
	iac_rctx ctx;
	int rc;

	if (o->kind == OP_NOOP)
		return do_noop(ap, o) < 0 ? (record_failure(ap, o, iac_err_last()), 1) : 0;
	iac_provider_find_type(c->type, &p);
	if (!p) {
		record_failure(ap, o, "unknown resource type");
		return 1;
	}
	pthread_mutex_lock(&ap->lock);
	o->started = iac_now_ms();
	pthread_mutex_unlock(&ap->lock);
	iac_log("%s%s: %s...", c->addr, o->deposed ? " (deposed)" : "", ing(o->kind));
	iac_err_clear();
	rc = iac_providers_ctx(&ctx, ap->pv, p, c->addr, ap->opts->cancel);
	if (rc == 0)
		rc = o->kind == OP_DELETE ? do_delete(ap, o, &ctx) : do_write(ap, o, &ctx);
	double took = (iac_now_ms() - o->started) / 1e3;
	pthread_mutex_lock(&ap->lock);
	o->started = 0;
	if (rc == 0) {
		ap->res->ok++;
		if (o->kind == OP_CREATE)
			ap->res->added++;
		else if (o->kind == OP_UPDATE)
			ap->res->changed++;
		else if (o->kind == OP_DELETE)
			ap->res->destroyed++;
	}
	pthread_mutex_unlock(&ap->lock);
	if (rc == 0)
		iac_log("%s%s: %s (%.1fs)", c->addr, o->deposed ? " (deposed)" : "", ed(o->kind), took);
	else
		record_failure(ap, o, iac_err_last());
	maybe_flush(ap);
	if (rc != 0 && iac_state_write_failed(ap->st)) {
		/* Nothing more can be recorded (the lock lost, the store gone):
		 * an operation started now would run unrecorded, or fail at its
		 * first write and say the same thing again. Stop here. */
		pthread_mutex_lock(&ap->lock);
		if (!ap->halted)
			snprintf(ap->halt_why, sizeof(ap->halt_why), "%s", iac_err_last());
		ap->halted = 1;
		pthread_mutex_unlock(&ap->lock);
		return IAC_WALK_HALT;
	}
	return rc == 0 ? 0 : 1;
}

/* Prints "still creating..." for long operations every 10 s. */
static void *ticker(void *arg)
{
	applier *ap = arg;
	int slept = 0;
	while (!ap->ticker_stop) {
		usleep(20 * 1000);
		if (++slept % 500)
			continue;
		pthread_mutex_lock(&ap->lock);
		double now = iac_now_ms();
		for (size_t i = 0; i < ap->nops; i++) {
			op *o = &ap->ops[i];
			if (o->started > 0 && now - o->started >= 10000)
				iac_log("%s: still %s... (%.0fs elapsed)", o->c->addr, ing(o->kind), (now - o->started) / 1e3);
		}
		pthread_mutex_unlock(&ap->lock);
	}
	return NULL;
}

static int node_of(applier *ap, const char *addr, int del)
{
	char name[1200];
	snprintf(name, sizeof(name), del ? "%s (destroy)" : "%s", addr);
	return iac_graph_find(ap->g, name);
}

static void add_op(applier *ap, enum op_kind kind, iac_change *c, int del, int deposed)
{
	char name[1200];
	op *o = &ap->ops[ap->nops++];
	o->kind = kind;
	o->c = c;
	o->deposed = deposed;
	snprintf(name, sizeof(name), del ? "%s (destroy)" : "%s", c->addr);
	iac_graph_add(ap->g, name, o);
}

/* Does x depend on addr, by configuration or by state? */
static int depends(const iac_change *x, const char *addr)
{
	json_t *e;
	size_t i;
	json_array_foreach(x->deps, i, e)
		if (!strcmp(json_string_value(e), addr))
			return 1;
	json_array_foreach(json_object_get(x->prior, "dependencies"), i, e)
		if (!strcmp(json_string_value(e), addr))
			return 1;
	return 0;
}

static void build_graph(applier *ap)
{
	iac_plan *plan = ap->plan;
	ap->g = iac_graph_new();
	ap->ops = iac_xcalloc(plan->n * 2 + 1, sizeof(op));
	for (size_t i = 0; i < plan->n; i++) {
		iac_change *c = &plan->changes[i];
		switch (c->action) {
		case IAC_ACT_NOOP: add_op(ap, OP_NOOP, c, 0, 0); break;
		case IAC_ACT_CREATE: add_op(ap, OP_CREATE, c, 0, 0); break;
		case IAC_ACT_UPDATE: add_op(ap, OP_UPDATE, c, 0, 0); break;
		case IAC_ACT_READ: add_op(ap, OP_READ, c, 0, 0); break;
		case IAC_ACT_DELETE: add_op(ap, OP_DELETE, c, 1, 0); break;
		case IAC_ACT_REPLACE:
			add_op(ap, OP_DELETE, c, 1, c->cbd);
			add_op(ap, OP_CREATE, c, 0, 0);
			break;
		}
	}
	for (size_t i = 0; i < plan->n; i++) {
		iac_change *x = &plan->changes[i];
		int xn = node_of(ap, x->addr, 0), xd = node_of(ap, x->addr, 1);
		if (x->action == IAC_ACT_REPLACE) {
			if (x->cbd)
				iac_graph_edge(ap->g, xn, xd);
			else
				iac_graph_edge(ap->g, xd, xn);
		}
		json_t *e;
		size_t j;
		json_array_foreach(x->deps, j, e) {
			int dn = node_of(ap, json_string_value(e), 0);
			if (xn >= 0 && dn >= 0)
				iac_graph_edge(ap->g, dn, xn);
		}
		/* destroy order: dependents go before what they depend on */
		if (xd < 0)
			continue;
		for (size_t k = 0; k < plan->n; k++) {
			iac_change *y = &plan->changes[k];
			if (y == x || !depends(y, x->addr))
				continue;
			int yd = node_of(ap, y->addr, 1), yn = node_of(ap, y->addr, 0);
			if (yd >= 0)
				iac_graph_edge(ap->g, yd, xd);
			/* users of x move off it before it goes (pure delete or cbd) */
			if (yn >= 0 && (x->action == IAC_ACT_DELETE || x->cbd))
				iac_graph_edge(ap->g, yn, xd);
		}
	}
}

int iac_apply_outputs(iac_config *cfg, iac_state *st)
{
	iac_apply_resolver ar = { cfg, st };
	json_t *outs = json_object(), *o;
	json_t *old = iac_state_outputs(st);
	const char *k;

	json_object_foreach(cfg->outputs, k, o) {
		unsigned flags = 0;
		json_t *v = iac_value_resolve(json_object_get(o, "value"), iac_plan_resolve_applied, &ar, &flags);
		if (!v) {
			/* its resources failed: keep the old value, if any */
			if (json_object_get(old, k))
				json_object_set(outs, k, json_object_get(old, k));
			continue;
		}
		int sens = json_is_true(json_object_get(o, "sensitive")) || (flags & IAC_VAL_SENSITIVE);
		if (sens && json_is_string(v))
			iac_redact_add(json_string_value(v));
		json_object_set_new(outs, k, json_pack("{s:o,s:b,s:s}", "value",
						       sens ? iac_value_redact(v, iac_state_lineage(st)) : json_incref(v),
						       "sensitive", sens, "type", iac_value_type_name(v)));
		json_decref(v);
	}
	iac_err_clear();
	if (iac_value_equal(outs, old)) {
		json_decref(outs);
		return 0;
	}
	return iac_state_set_outputs(st, outs);
}

/* The failed operation that made node id be skipped: up its
 * predecessors through skipped ones. Its graph name ("ADDR" or "ADDR
 * (destroy)"), or NULL. */
static const char *failed_cause(const iac_graph *g, const unsigned char *status, int id)
{
	for (int hops = 0; hops < 10000; hops++) {
		size_t n;
		const int *pred = iac_graph_pred(g, id, &n);
		int next = -1;
		for (size_t k = 0; k < n; k++) {
			if (status[pred[k]] == IAC_WALK_FAILED)
				return iac_graph_name(g, pred[k]);
			if (status[pred[k]] == IAC_WALK_SKIPPED && next < 0)
				next = pred[k];
		}
		if (next < 0)
			return NULL;
		id = next;
	}
	return NULL;
}

/* The walk's outcome into the result: counts, and each skipped operation
 * with the failure it waited on. */
static void tally(applier *ap, const unsigned char *status)
{
	iac_apply_result *res = ap->res;
	for (size_t i = 0; i < iac_graph_count(ap->g); i++) {
		op *o = iac_graph_data(ap->g, (int)i);
		if (status[i] == IAC_WALK_SKIPPED) {
			res->skipped++;
			if (o->kind != OP_NOOP) {
				const char *why = failed_cause(ap->g, status, (int)i);
				iac_log("%s: skipped (%s failed)", o->c->addr, why ? why : "a dependency");
				json_array_append_new(res->skipped_list, json_pack("{s:s,s:s?}", "address", o->c->addr,
										   "because", why));
			}
		} else if (status[i] == IAC_WALK_NOT_STARTED)
			res->not_started++;
		else if (status[i] == IAC_WALK_FAILED)
			res->failed++;
	}
}

int iac_apply_run(iac_apply_result *res, iac_plan *plan, iac_config *cfg, iac_state *st,
		  iac_providers *pv, const iac_apply_opts *opts)
{
	applier ap = { .plan = plan, .cfg = cfg, .st = st, .pv = pv, .opts = opts, .res = res };
	pthread_t tick;
	int rc = 0;
	double t0 = iac_now_ms();

	memset(res, 0, sizeof(*res));
	res->failures = json_array();
	res->skipped_list = json_array();
	pthread_mutex_init(&ap.lock, NULL);
	pthread_mutex_init(&ap.flush_lock, NULL);
	ap.last_flush = iac_now_ms();
	build_graph(&ap);

	int *order = NULL;
	if (iac_graph_toposort(&order, ap.g) < 0) {
		/* cannot happen with an acyclic config; report and stop */
		json_array_append_new(res->failures, json_pack("{s:s,s:s,s:s}", "address", "(plan)",
							       "operation", "ordering", "error", iac_err_last()));
		rc = IAC_ERR;
		goto done;
	}
	free(order);

	unsigned char *status = iac_xcalloc(iac_graph_count(ap.g) + 1, 1);
	pthread_create(&tick, NULL, ticker, &ap);
	iac_walk(status, ap.g, opts->parallelism > 0 ? opts->parallelism : 10, run_op, &ap, opts->stop);
	ap.ticker_stop = 1;
	pthread_join(tick, NULL);
	tally(&ap, status);
	free(status);
	if (!plan->targets && !res->failed && !res->skipped && !res->not_started) {
		/* outputs of resources on unreachable hosts keep their values */
		if (plan->destroy) {
			if (json_object_size(iac_state_outputs(st)))
				iac_state_set_outputs(st, json_object());
		} else {
			iac_apply_outputs(cfg, st);
		}
	}
	res->left_alone = plan->n_skipped;
	if (res->failed || res->skipped || json_array_size(plan->unreachable))
		rc = IAC_ERR;
	if ((res->not_started && !ap.halted) || (opts->stop && *opts->stop))
		rc = IAC_EINTR;
	if (ap.halted) {
		char *why = iac_redact(ap.halt_why);
		iac_log_error("%zu operation(s) not started: this command can no longer record changes in state: %s",
			      res->not_started, why);
		free(why);
	}
done:
	/* after a failed journal write the failures above said why once */
	if (!iac_state_write_failed(st) && iac_state_flush(st) < 0) {
		iac_log_error("cannot write the state snapshot: %s (the journal beside it still has every "
			      "change and will be replayed by the next command)", iac_err_last());
		if (rc == 0)
			rc = IAC_ERR;
	}
	res->seconds = (iac_now_ms() - t0) / 1e3;
	iac_graph_free(ap.g);
	free(ap.ops);
	pthread_mutex_destroy(&ap.lock);
	pthread_mutex_destroy(&ap.flush_lock);
	return rc;
}

void iac_apply_result_free(iac_apply_result *res)
{
	json_decref(res->failures);
	json_decref(res->skipped_list);
	res->failures = NULL;
}
