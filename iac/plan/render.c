/* render: human and JSON forms of a plan (see render.h). */
#include "iac/plan/render.h"

#include <stdlib.h>
#include <string.h>

#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/core/value.h"

#define DIFF_MAX_LINES 400

static const char *sym(iac_action a, int cbd)
{
	switch (a) {
	case IAC_ACT_CREATE: return "  +";
	case IAC_ACT_UPDATE: return "  ~";
	case IAC_ACT_REPLACE: return cbd ? "+/-" : "-/+";
	case IAC_ACT_DELETE: return "  -";
	case IAC_ACT_READ: return " <=";
	default: return "   ";
	}
}

static enum iac_color colour(iac_action a)
{
	switch (a) {
	case IAC_ACT_CREATE: return IAC_C_GREEN;
	case IAC_ACT_UPDATE: return IAC_C_YELLOW;
	case IAC_ACT_REPLACE: return IAC_C_YELLOW;
	case IAC_ACT_DELETE: return IAC_C_RED;
	case IAC_ACT_READ: return IAC_C_CYAN;
	default: return IAC_C_RESET;
	}
}

static const char *verb(const iac_change *c)
{
	switch (c->action) {
	case IAC_ACT_CREATE: return "will be created";
	case IAC_ACT_UPDATE: return "will be updated in place";
	case IAC_ACT_REPLACE: return c->cbd ? "must be replaced (create before destroy)" : "must be replaced";
	case IAC_ACT_DELETE: return "will be destroyed";
	case IAC_ACT_READ: return "will be read during apply";
	default: return "is unchanged";
	}
}

static int contains(const json_t *list, const char *name)
{
	json_t *e;
	size_t i;
	json_array_foreach(list, i, e)
		if (!strcmp(json_string_value(e), name))
			return 1;
	return 0;
}

static void split_lines(const char *s, char ***lines, size_t *n)
{
	size_t cap = 16;
	*n = 0;
	*lines = iac_xmalloc(cap * sizeof(char *));
	const char *p = s;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (*n == cap)
			*lines = iac_xrealloc(*lines, (cap *= 2) * sizeof(char *));
		(*lines)[(*n)++] = iac_xstrndup(p, len);
		p += len + (nl ? 1 : 0);
	}
}

int iac_text_diff(iac_buf *out, const char *a, const char *b, const char *indent)
{
	char **la, **lb;
	size_t na, nb;
	int shown = 1;

	split_lines(a, &la, &na);
	split_lines(b, &lb, &nb);
	if (na > DIFF_MAX_LINES || nb > DIFF_MAX_LINES) {
		shown = 0;
		goto done;
	}
	/* LCS table; inputs are capped so (n+1)^2 stays small */
	unsigned short *t = iac_xcalloc((na + 1) * (nb + 1), sizeof(unsigned short));
#define T(i, j) t[(i) * (nb + 1) + (j)]
	for (size_t i = na; i-- > 0;)
		for (size_t j = nb; j-- > 0;)
			T(i, j) = !strcmp(la[i], lb[j]) ? T(i + 1, j + 1) + 1
				: (T(i + 1, j) > T(i, j + 1) ? T(i + 1, j) : T(i, j + 1));
	size_t i = 0, j = 0;
	while (i < na || j < nb) {
		if (i < na && j < nb && !strcmp(la[i], lb[j])) {
			iac_buf_printf(out, "%s  %s\n", indent, la[i]);
			i++, j++;
		} else if (i < na && (j == nb || T(i + 1, j) >= T(i, j + 1))) {
			iac_buf_printf(out, "%s%s- %s%s\n", indent, iac_color(IAC_C_RED), la[i], iac_color(IAC_C_RESET));
			i++;
		} else {
			iac_buf_printf(out, "%s%s+ %s%s\n", indent, iac_color(IAC_C_GREEN), lb[j], iac_color(IAC_C_RESET));
			j++;
		}
	}
#undef T
	free(t);
done:
	for (size_t k = 0; k < na; k++)
		free(la[k]);
	for (size_t k = 0; k < nb; k++)
		free(lb[k]);
	free(la);
	free(lb);
	return shown;
}

#define VALUE_MAX 200

static void render_value(iac_buf *out, const iac_change *c, const char *name, const json_t *v)
{
	if (contains(c->sensitive, name) && v && !json_is_null(v)) {
		iac_buf_puts(out, "(sensitive)");
		return;
	}
	/* long structures (a pool, a file) in one line help nobody: cut them,
	 * `iac plan -json` has everything */
	size_t start = out->len;
	iac_value_render(out, v);
	if (out->len - start > VALUE_MAX && (json_is_object(v) || json_is_array(v))) {
		size_t full = out->len - start;
		out->len = start + VALUE_MAX - 40;
		out->ptr[out->len] = '\0';
		iac_buf_printf(out, "... (%zu characters; see plan -json)", full);
	}
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Keys of an object, sorted, NULL terminated (caller frees the array). */
static const char **sorted_keys(const json_t *obj)
{
	size_t n = json_object_size(obj), i = 0;
	const char **keys = iac_xmalloc((n + 1) * sizeof(*keys));
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v)
		keys[i++] = k;
	qsort(keys, i, sizeof(*keys), cmp_key);
	keys[i] = NULL;
	return keys;
}

static int multiline(const json_t *v)
{
	return json_is_string(v) && strchr(json_string_value(v), '\n');
}

static size_t name_width(const json_t *a, const json_t *b)
{
	size_t w = 0;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)a, k, v)
		if (strlen(k) > w)
			w = strlen(k);
	json_object_foreach((json_t *)b, k, v)
		if (strlen(k) > w)
			w = strlen(k);
	return w;
}

/* A watching attribute (restart_on = { conf }) holds digests nobody can
 * read: say which watched resource changed, by address, and what follows
 * ("~ restart_on = restart (local.file.conf changed)"). 1 when rendered. */
static int render_watch(iac_buf *out, const iac_change *c, const char *k, const json_t *old, const json_t *v,
			size_t w)
{
	const iac_attr *a = c->conf && c->conf->rtype ? iac_rtype_attr(c->conf->rtype, k) : NULL;
	const json_t *refs = c->conf ? json_object_get(c->conf->attrs, k) : NULL;
	if (!a || !(a->flags & IAC_A_WATCH) || !json_is_array(v) || !json_is_array(refs))
		return 0;
	iac_buf who = IAC_BUF_INIT;
	size_t n = 0, i;
	json_t *ref;
	json_array_foreach(refs, i, ref) {
		const json_t *now = json_array_get(v, i), *then = json_array_get(old, i);
		if (iac_value_equal(now, then))
			continue;
		const char *addr = iac_json_str(ref, "addr");
		iac_buf_printf(&who, "%s%s", n++ ? ", " : "", addr ? addr : "a watched resource");
	}
	if (!n && json_array_size(v) != json_array_size(old))
		iac_buf_puts(&who, "the watched list"), n = 1;
	iac_buf_printf(out, "      %s~%s %-*s = restart (%s %s)\n", iac_color(IAC_C_YELLOW), iac_color(IAC_C_RESET), (int)w,
		       k, n ? iac_buf_cstr(&who) : "a watched resource", "changed");
	iac_buf_free(&who);
	return 1;
}

/* Every attribute of a created ("+") or destroyed ("-") object. */
static void render_all(iac_buf *out, const iac_change *c, int gone, size_t w)
{
	const json_t *obj = gone ? c->before : c->planned;
	const char **keys = sorted_keys(obj), *k;
	for (size_t i = 0; (k = keys[i]); i++) {
		const json_t *v = json_object_get(obj, k);
		if (json_is_null(v) || (!gone && !strcmp(k, "steps")))
			continue;
		iac_buf_printf(out, "      %s%c%s %-*s = ", iac_color(gone ? IAC_C_RED : IAC_C_GREEN), gone ? '-' : '+',
			       iac_color(IAC_C_RESET), (int)w, k);
		render_value(out, c, k, v);
		iac_buf_puts(out, gone ? " -> null\n" : "\n");
	}
	free(keys);
}

static void render_attrs(iac_buf *out, const iac_change *c)
{
	const json_t *before = c->before, *after = c->planned;
	size_t w = name_width(before, after), hidden = 0;
	const char *k;
	json_t *v;

	const char **keys;
	if (c->action == IAC_ACT_CREATE || c->action == IAC_ACT_READ || c->action == IAC_ACT_DELETE) {
		render_all(out, c, c->action == IAC_ACT_DELETE, w);
		return;
	}
	/* update / replace: changed attributes, identity-ish ones for context */
	keys = sorted_keys(after);
	for (size_t i = 0; (k = keys[i]); i++) {
		v = json_object_get(after, k);
		if (!strcmp(k, "steps"))
			continue;
		const json_t *old = json_object_get(before, k);
		int changed = contains(c->changed, k) ||
			      (iac_value_is_unknown(v) && c->action == IAC_ACT_REPLACE) ||
			      /* a computed value that follows from the change (sha256) */
			      (c->conf && !json_object_get(c->conf->attrs, k) && !iac_value_equal(old, v));
		if (!changed) {
			if (!strcmp(k, "path") || !strcmp(k, "host") || !strcmp(k, "name")) {
				iac_buf_printf(out, "        %-*s = ", (int)w, k);
				render_value(out, c, k, v);
				iac_buf_putc(out, '\n');
			} else {
				hidden++;
			}
			continue;
		}
		if (render_watch(out, c, k, old, v, w))
			continue;
		iac_buf_printf(out, "      %s~%s %-*s = ", iac_color(IAC_C_YELLOW), iac_color(IAC_C_RESET), (int)w, k);
		if (!contains(c->sensitive, k) && multiline(old) && multiline(v)) {
			iac_buf_puts(out, "<<-EOT\n");
			if (!iac_text_diff(out, json_string_value(old), json_string_value(v), "          "))
				iac_buf_puts(out, "          (too long to show)\n");
			iac_buf_puts(out, "        EOT");
		} else {
			render_value(out, c, k, old);
			iac_buf_puts(out, " -> ");
			render_value(out, c, k, v);
		}
		if (contains(c->forces, k))
			iac_buf_printf(out, " %s# forces replacement%s", iac_color(IAC_C_RED), iac_color(IAC_C_RESET));
		iac_buf_putc(out, '\n');
	}
	free(keys);
	if (contains(c->changed, "triggers")) {
		const json_t *old_t = json_object_get(c->prior, "triggers");
		iac_buf_printf(out, "      %s~%s %-*s = ", iac_color(IAC_C_YELLOW), iac_color(IAC_C_RESET), (int)w, "triggers");
		iac_value_render(out, old_t);
		iac_buf_puts(out, " -> ");
		iac_value_render(out, c->triggers);
		iac_buf_printf(out, " %s# forces replacement%s\n", iac_color(IAC_C_RED), iac_color(IAC_C_RESET));
	}
	if (hidden)
		iac_buf_printf(out, "        %s# (%zu unchanged attribute%s hidden)%s\n", iac_color(IAC_C_DIM), hidden,
			       hidden == 1 ? "" : "s", iac_color(IAC_C_RESET));
}

/* A provider's "steps" (a list of strings) is what the operation will do,
 * in order: shown as a numbered list, not as an attribute. */
static void render_steps(iac_buf *out, const iac_change *c)
{
	json_t *steps = json_object_get(c->planned, "steps"), *e;
	size_t i;
	if (!json_is_array(steps) || !json_array_size(steps) || c->action == IAC_ACT_DELETE)
		return;
	iac_buf_puts(out, "      # steps:\n");
	json_array_foreach(steps, i, e)
		iac_buf_printf(out, "      #   %zu. %s\n", i + 1, json_string_value(e) ?: "?");
}

static void render_change(iac_buf *out, const iac_change *c)
{
	iac_buf_printf(out, "  %s# %s%s %s\n", iac_color(IAC_C_BOLD), c->addr, iac_color(IAC_C_RESET), verb(c));
	if (c->reason)
		iac_buf_printf(out, "  # (%s)\n", c->reason);
	const char *kind = c->conf && c->conf->is_data ? "data" : "resource";
	iac_buf_printf(out, "%s%s%s %s \"%s\" \"%s\" {\n", iac_color(colour(c->action)), sym(c->action, c->cbd),
		       iac_color(IAC_C_RESET), kind, c->type, c->name);
	render_steps(out, c);
	render_attrs(out, c);
	iac_buf_puts(out, "    }\n\n");
}

void iac_plan_summary(iac_buf *out, const iac_plan *plan)
{
	iac_buf_printf(out, "%sPlan:%s %zu to add, %zu to change, %zu to destroy.", iac_color(IAC_C_BOLD),
		       iac_color(IAC_C_RESET), plan->n_add, plan->n_change, plan->n_destroy);
	if (plan->n_skipped)
		iac_buf_printf(out, " %zu left as %s (unreachable host%s).", plan->n_skipped,
			       plan->n_skipped == 1 ? "it is" : "they are",
			       json_array_size(plan->unreachable) == 1 ? "" : "s");
}

#define SKIPPED_SHOWN 10

/* Unreachable hosts once each, then what is left alone because it needs
 * something on them (a few by name). */
static void render_unreachable(iac_buf *out, const iac_plan *plan)
{
	json_t *h;
	size_t i, shown = 0, more = 0;
	if (!json_array_size(plan->unreachable))
		return;
	iac_buf_printf(out, "%sWarning: unreachable hosts%s (their resources are neither changed nor destroyed)\n",
		       iac_color(IAC_C_YELLOW), iac_color(IAC_C_RESET));
	json_array_foreach(plan->unreachable, i, h) {
		char *line = iac_plan_host_line(h);
		iac_buf_printf(out, "  %s\n", line);
		free(line);
	}
	for (size_t k = 0; k < plan->n; k++) {
		const iac_change *c = &plan->changes[k];
		if (c->skipped != 2)
			continue;
		if (shown++ < SKIPPED_SHOWN)
			iac_buf_printf(out, "  %s is left as it is: %s\n", c->addr, c->reason);
		else
			more++;
	}
	if (more)
		iac_buf_printf(out, "  ... and %zu more left as they are for the same reason\n", more);
	iac_buf_putc(out, '\n');
}

static void render_outputs(iac_buf *out, const iac_plan *plan)
{
	const char *k;
	json_t *o;
	int any = 0;
	json_object_foreach(plan->output_changes, k, o) {
		const char *a = iac_json_str(o, "action");
		if (!strcmp(a, "no-op"))
			continue;
		if (!any++)
			iac_buf_puts(out, "\nChanges to Outputs:\n");
		int sens = json_is_true(json_object_get(o, "sensitive"));
		const char *s = !strcmp(a, "create") ? "+" : !strcmp(a, "delete") ? "-" : "~";
		iac_buf_printf(out, "  %s %s = ", s, k);
		if (!strcmp(a, "update")) {
			if (sens)
				iac_buf_puts(out, "(sensitive)");
			else
				iac_value_render(out, json_object_get(o, "before"));
			iac_buf_puts(out, " -> ");
		}
		if (sens)
			iac_buf_puts(out, "(sensitive)");
		else
			iac_value_render(out, !strcmp(a, "delete") ? json_object_get(o, "before") : json_object_get(o, "after"));
		if (!strcmp(a, "delete"))
			iac_buf_puts(out, " -> null");
		iac_buf_putc(out, '\n');
	}
}

void iac_plan_render(iac_buf *out, const iac_plan *plan)
{
	size_t shown = 0;

	if (json_array_size(plan->drift)) {
		json_t *e;
		size_t i;
		iac_buf_printf(out, "%sNote: objects have changed outside of iac%s\n", iac_color(IAC_C_BOLD),
			       iac_color(IAC_C_RESET));
		json_array_foreach(plan->drift, i, e) {
			const iac_change *c = iac_plan_find(plan, json_string_value(e));
			iac_buf_printf(out, "  %s: %s\n", json_string_value(e), c && c->reason ? c->reason : "changed");
		}
		iac_buf_putc(out, '\n');
	}
	if (json_array_size(plan->warnings)) {
		json_t *w;
		size_t i;
		json_array_foreach(plan->warnings, i, w)
			iac_buf_printf(out, "%sWarning:%s %s: %s\n", iac_color(IAC_C_YELLOW), iac_color(IAC_C_RESET),
				       iac_json_str(w, "address"),
				       iac_json_str(w, "message"));
		iac_buf_putc(out, '\n');
	}
	render_unreachable(out, plan);
	json_t *mv;
	size_t mi;
	json_array_foreach(plan->moved, mi, mv)
		iac_buf_printf(out, "  %s# %s%s\n%s", iac_color(IAC_C_DIM), json_string_value(mv), iac_color(IAC_C_RESET),
			       mi + 1 == json_array_size(plan->moved) ? "\n" : "");
	for (size_t i = 0; i < plan->n; i++) {
		const iac_change *c = &plan->changes[i];
		if (c->action == IAC_ACT_NOOP)
			continue;
		if (c->action == IAC_ACT_DELETE && c->reason && !strcmp(c->reason, "already gone"))
			continue;
		if (!shown++)
			iac_buf_puts(out, "iac will perform the following actions:\n\n");
		render_change(out, c);
	}
	if (!iac_plan_has_changes(plan) && plan->n_skipped) {
		iac_buf_printf(out, "No changes on the hosts that could be reached; %zu resource%s on unreachable "
			       "hosts %s not checked.\n", plan->n_skipped, plan->n_skipped == 1 ? "" : "s",
			       plan->n_skipped == 1 ? "was" : "were");
		return;
	}
	if (!iac_plan_has_changes(plan)) {
		iac_buf_printf(out, "%sNo changes.%s Your infrastructure matches the configuration.\n",
			       iac_color(IAC_C_GREEN), iac_color(IAC_C_RESET));
		return;
	}
	iac_plan_summary(out, plan);
	iac_buf_putc(out, '\n');
	render_outputs(out, plan);
}

/* JSON: unknown values become null plus after_unknown; sensitive values
 * "(sensitive)". */
static json_t *json_after(const iac_change *c, json_t **unknown)
{
	json_t *after = iac_change_display(c, c->planned);
	const char *k;
	json_t *v;
	*unknown = json_object();
	if (!after)
		return json_null();
	json_object_foreach(after, k, v) {
		if (iac_value_has_unknown(v)) {
			json_object_set_new(*unknown, k, json_true());
			json_object_set_new(after, k, json_null());
		}
	}
	return after;
}

json_t *iac_plan_json(const iac_plan *plan)
{
	json_t *changes = json_array();
	for (size_t i = 0; i < plan->n; i++) {
		const iac_change *c = &plan->changes[i];
		json_t *unknown = NULL;
		json_t *after = c->action == IAC_ACT_DELETE ? (unknown = json_object(), json_null())
							     : json_after(c, &unknown);
		json_t *before = c->before ? iac_change_display(c, c->before) : json_null();
		json_t *rc = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:o,s:O,s:O}", "address", c->addr,
				       "module_address", c->module ? c->module : "", "type", c->type,
				       "name", c->name, "action", iac_action_name(c->action),
				       "before", before, "after", after, "after_unknown", unknown,
				       "sensitive", c->sensitive, "replace_paths", c->forces);
		if (c->reason)
			json_object_set_new(rc, "reason", json_string(c->reason));
		if (c->skipped) {
			json_object_set_new(rc, "skipped", json_true());
			json_object_set_new(rc, "unreachable_host", json_string(c->host));
		}
		if (c->conf && c->conf->is_data)
			json_object_set_new(rc, "mode", json_string("data"));
		if (c->action == IAC_ACT_REPLACE)
			json_object_set_new(rc, "create_before_destroy", json_boolean(c->cbd));
		json_array_append_new(changes, rc);
	}
	json_t *outs = json_object();
	const char *k;
	json_t *o;
	json_object_foreach(plan->output_changes, k, o) {
		int sens = json_is_true(json_object_get(o, "sensitive"));
		json_t *after = json_object_get(o, "after");
		json_t *red = sens ? json_string("(sensitive)")
				   : (after && iac_value_has_unknown(after)) ? json_null()
				   : json_incref(after ? after : json_null());
		json_t *prev = json_object_get(o, "before");
		json_t *before = (sens && prev && !json_is_null(prev)) ? json_string("(sensitive)")
								     : json_incref(prev ?: json_null());
		json_object_set_new(outs, k, json_pack("{s:O,s:o,s:o,s:b,s:b}", "action", json_object_get(o, "action"),
						       "before", before, "after", red, "after_unknown",
						       after && iac_value_has_unknown(after), "sensitive", sens));
	}
	return json_pack("{s:s,s:s,s:s,s:I,s:b,s:o,s:o,s:O,s:O,s:O,s:{s:I,s:I,s:I,s:I},s:b}",
			 "format_version", IAC_PLAN_FORMAT, "iac_version", IAC_VERSION,
			 "lineage", plan->lineage, "serial", (json_int_t)plan->serial,
			 "destroy", plan->destroy, "resource_changes", changes, "output_changes", outs,
			 "drift", plan->drift, "warnings", plan->warnings, "unreachable_hosts", plan->unreachable,
			 "summary", "add", (json_int_t)plan->n_add, "change", (json_int_t)plan->n_change,
			 "destroy", (json_int_t)plan->n_destroy, "skipped", (json_int_t)plan->n_skipped,
			 "has_changes", iac_plan_has_changes(plan));
}

void iac_outputs_render(iac_buf *out, const json_t *outputs)
{
	const char *k;
	json_t *o;
	json_object_foreach((json_t *)outputs, k, o) {
		iac_buf_printf(out, "%s = ", k);
		if (json_is_true(json_object_get(o, "sensitive")))
			iac_buf_puts(out, "(sensitive)");
		else
			iac_value_render(out, json_object_get(o, "value"));
		iac_buf_putc(out, '\n');
	}
}
