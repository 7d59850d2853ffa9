/* cmd_state: commands that read what is declared or recorded without
 * changing anything real: validate, graph, output, show, state
 * (list/show/rm) and force-unlock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/cli/commands.h"
#include "iac/cli/session.h"
#include "iac/state/history.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/graph/graph.h"
#include "iac/plan/plan.h"
#include "iac/plan/planfile.h"
#include "iac/plan/render.h"

static void print_json(json_t *doc)
{
	char *s = json_dumps(doc, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
	iac_log_write(stdout, s);
	iac_log_write(stdout, "\n");
	free(s);
	json_decref(doc);
}

/* "file:line: message" -> diagnostic object */
static json_t *diagnostic(const char *msg)
{
	char file[512] = "";
	int line = 0, n = 0;
	json_t *d = json_pack("{s:s,s:s}", "severity", "error", "summary", msg);
	if (sscanf(msg, "%511[^:]:%d:%n", file, &line, &n) == 2 && n > 0 && strchr(file, '.')) {
		json_object_set_new(d, "file", json_string(file));
		json_object_set_new(d, "line", json_integer(line));
	}
	return d;
}

int iac_cmd_validate(int argc, char **argv)
{
	iac_session s;
	iac_strlist pos = { 0 };
	int rc = 1;
	iac_load_opts lo = { 0 };

	iac_session_init(&s, "validate");
	if (iac_session_args(&s, IAC_F_VARS | IAC_F_JSON, argc, argv, &pos) < 0)
		goto done;
	lo.vars = (const char *const *)s.vars.items;
	lo.var_files = (const char *const *)s.var_files.items;
	lo.allow_missing_vars = 1;
	if (iac_config_load(&s.cfg, ".", &lo) < 0) {
		if (s.json)
			print_json(json_pack("{s:b,s:i,s:[o]}", "valid", 0, "error_count", 1, "diagnostics",
					     diagnostic(iac_err_last())));
		else
			iac_log_error("%s", iac_err_last());
		goto done;
	}
	/* ordering: a cycle is a configuration error */
	iac_graph *g = iac_config_graph(s.cfg);
	int *order = NULL;
	int cyc = iac_graph_toposort(&order, g);
	free(order);
	iac_graph_free(g);
	if (cyc == 0) {
		/* value formats, as plan would check them, touching nothing */
		iac_session_providers(&s);
		cyc = iac_plan_validate(s.cfg, s.pv);
	}
	if (cyc < 0) {
		if (s.json)
			print_json(json_pack("{s:b,s:i,s:[o]}", "valid", 0, "error_count", 1, "diagnostics",
					     diagnostic(iac_err_last())));
		else
			iac_log_error("%s", iac_err_last());
		goto done;
	}
	if (s.json)
		print_json(json_pack("{s:b,s:i,s:[],s:I}", "valid", 1, "error_count", 0, "diagnostics",
				     "resources", (json_int_t)s.cfg->nres));
	else
		printf("%sSuccess!%s The configuration is valid (%zu resource%s).\n", iac_color(IAC_C_GREEN),
		       iac_color(IAC_C_RESET), s.cfg->nres, s.cfg->nres == 1 ? "" : "s");
	rc = 0;
done:
	iac_session_close(&s);
	iac_strlist_free(&pos);
	return rc;
}

int iac_cmd_graph(int argc, char **argv)
{
	iac_session s;
	iac_strlist pos = { 0 };
	int rc = 1;

	iac_session_init(&s, "graph");
	if (iac_session_args(&s, IAC_F_VARS, argc, argv, &pos) < 0 || iac_session_load(&s) < 0)
		goto done;
	iac_graph *g = iac_config_graph(s.cfg);
	iac_buf b = IAC_BUF_INIT;
	iac_graph_dot(&b, g);
	fputs(iac_buf_cstr(&b), stdout);
	iac_buf_free(&b);
	iac_graph_free(g);
	rc = 0;
done:
	iac_session_close(&s);
	iac_strlist_free(&pos);
	return rc;
}

static int open_state_readonly(iac_session *s)
{
	return iac_session_open_state(s, 0);
}

int iac_cmd_output(int argc, char **argv)
{
	iac_session s;
	iac_strlist pos = { 0 };
	int rc = 1, raw = 0;

	iac_session_init(&s, "output");
	if (iac_session_args(&s, IAC_F_JSON, argc, argv, &pos) < 0 || open_state_readonly(&s) < 0)
		goto done;
	json_t *outs = iac_state_outputs(s.st), *o;
	const char *k;
	if (pos.n) {
		o = json_object_get(outs, pos.items[0]);
		if (!o) {
			iac_log_error("no output named '%s' in state%s", pos.items[0],
				      json_object_size(outs) ? "; 'iac output' lists them" : " (has 'iac apply' run?)");
			goto done;
		}
		int sens = json_is_true(json_object_get(o, "sensitive"));
		json_t *v = json_object_get(o, "value");
		if (s.json)
			print_json(sens ? json_string("(sensitive)") : json_incref(v));
		else if (sens)
			printf("(sensitive)\n");
		else if (json_is_string(v))
			printf("%s\n", json_string_value(v));   /* raw, for $(iac output x) */
		else {
			iac_buf b = IAC_BUF_INIT;
			iac_value_render(&b, v);
			printf("%s\n", iac_buf_cstr(&b));
			iac_buf_free(&b);
		}
		raw = 1;
	}
	if (!raw && s.json) {
		json_t *doc = json_object();
		json_object_foreach(outs, k, o) {
			int sens = json_is_true(json_object_get(o, "sensitive"));
			json_object_set_new(doc, k, json_pack("{s:o,s:b,s:s}", "value",
							      sens ? json_string("(sensitive)")
								   : json_incref(json_object_get(o, "value")),
							      "sensitive", sens, "type",
							      iac_json_str(o, "type") ?:
							      iac_value_type_name(json_object_get(o, "value"))));
		}
		print_json(doc);
	} else if (!raw) {
		iac_buf b = IAC_BUF_INIT;
		iac_outputs_render(&b, outs);
		fputs(iac_buf_cstr(&b), stdout);
		iac_buf_free(&b);
	}
	rc = 0;
done:
	iac_session_close(&s);
	iac_strlist_free(&pos);
	return rc;
}

static void show_entry(const json_t *e)
{
	const char *k;
	json_t *v;
	json_t *attrs = json_object_get(e, "attributes");
	size_t w = 0;
	json_object_foreach(attrs, k, v)
		if (strlen(k) > w)
			w = strlen(k);
	printf("# %s:\n%s \"%s\" \"%s\" {\n", iac_json_str(e, "address"),
	       json_is_string(json_object_get(e, "mode")) ? "data" : "resource",
	       iac_json_str(e, "type"), iac_json_str(e, "name") ?: "");
	json_object_foreach(attrs, k, v) {
		iac_buf b = IAC_BUF_INIT;
		iac_value_render(&b, v);
		printf("    %-*s = %s\n", (int)w, k, iac_buf_cstr(&b));
		iac_buf_free(&b);
	}
	if (json_object_get(e, "pending"))
		printf("    # pending: %s started %s and did not finish\n",
		       iac_json_str(json_object_get(e, "pending"), "action"),
		       iac_json_str(json_object_get(e, "pending"), "started"));
	printf("}\n");
}

static int state_list(iac_session *s, const iac_strlist *pos)
{
	size_t n;
	if (open_state_readonly(s) < 0)
		return 1;
	const char **addrs = iac_state_addresses(s->st, &n);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		int match = pos->n == 1;
		for (size_t j = 1; j < pos->n; j++)
			match |= !strncmp(addrs[i], pos->items[j], strlen(pos->items[j]));
		if (!match)
			continue;
		if (s->json)
			json_array_append_new(arr, json_string(addrs[i]));
		else
			printf("%s\n", addrs[i]);
	}
	free(addrs);
	if (s->json)
		print_json(arr);
	else
		json_decref(arr);
	return 0;
}

static int state_show(iac_session *s, const iac_strlist *pos)
{
	if (pos->n != 2) {
		iac_log_error("usage: iac state show ADDR");
		return 1;
	}
	if (open_state_readonly(s) < 0)
		return 1;
	json_t *e = iac_state_get(s->st, pos->items[1]);
	if (!e) {
		iac_log_error("no resource '%s' in state; 'iac state list' shows what there is", pos->items[1]);
		return 1;
	}
	if (s->json)
		print_json(json_incref(e));
	else
		show_entry(e);
	return 0;
}

/* Forget resources, all or none: every address is checked first. */
static int state_rm(iac_session *s, const iac_strlist *pos)
{
	if (pos->n < 2) {
		iac_log_error("usage: iac state rm ADDR...");
		return 1;
	}
	s->cfg = NULL;
	if (iac_session_open_state(s, 1) < 0)
		return 1;
	for (size_t i = 1; i < pos->n; i++) {
		if (!iac_state_get(s->st, pos->items[i])) {
			iac_log_error("no resource '%s' in state; nothing removed", pos->items[i]);
			return 1;
		}
	}
	for (size_t i = 1; i < pos->n; i++) {
		if (iac_state_remove(s->st, pos->items[i]) < 0) {
			iac_session_error(NULL);
			return 1;
		}
		printf("Removed %s (the real object is left alone)\n", pos->items[i]);
	}
	json_t *ev = json_pack("{s:s,s:[]}", "command", "state rm", "addresses");
	for (size_t i = 1; i < pos->n; i++)
		json_array_append_new(json_object_get(ev, "addresses"), json_string(pos->items[i]));
	iac_history_add(s->st, ev);
	if (iac_state_flush(s->st) < 0) {
		iac_session_error(NULL);
		return 1;
	}
	return 0;
}

/* `iac state mv OLD NEW`: the object is the same, only its address in
 * state changes (a rename or a move into a module), so the next plan does
 * not destroy and re-create it. Other entries' dependencies follow. */
static int state_mv(iac_session *s, const iac_strlist *pos)
{
	if (pos->n != 3) {
		iac_log_error("usage: iac state mv OLD_ADDR NEW_ADDR");
		return 1;
	}
	const char *from = pos->items[1], *to = pos->items[2];
	if (iac_session_open_state(s, 1) < 0)
		return 1;
	int rc = iac_state_move(s->st, from, to, 1);
	if (rc == IAC_ENOTFOUND)
		iac_log_error("no resource '%s' in state; 'iac state list' shows what there is", from);
	else if (rc == IAC_ECONFLICT)
		iac_log_error("'%s' is already in state; remove it first ('iac state rm') or pick another address", to);
	else if (rc < 0 || iac_state_flush(s->st) < 0)
		iac_session_error(NULL);
	else
		printf("Moved %s to %s (the real object is left alone)\n", from, to);
	return rc == 0 ? 0 : 1;
}

int iac_cmd_state(int argc, char **argv)
{
	iac_session s;
	iac_strlist pos = { 0 };
	int rc = 1;

	iac_session_init(&s, "state");
	const char *rev = NULL;
	int n_revs = 0;
	const iac_opt own[] = {
		{ "force", IAC_OPT_BOOL, &s.force, "state push: skip the lineage and serial checks" },
		{ "rev", IAC_OPT_STRING, &rev, "state show: at this history revision (12, HEAD~1, a commit)" },
		{ "n", IAC_OPT_INT, &n_revs, "state history: at most this many revisions" },
		{ NULL, 0, NULL, NULL },
	};
	if (iac_session_args_own(&s, IAC_F_JSON | IAC_F_LOCK, own, argc, argv, &pos) < 0)
		goto done;
	const char *sub = pos.n ? pos.items[0] : NULL;
	if (!sub)
		iac_log_error("'iac state' needs a subcommand: list, show ADDR, rm ADDR..., mv OLD NEW, pull, "
			      "push FILE, lock, history, show -rev REV, diff REV1 [REV2]");
	else if (!strcmp(sub, "pull") && pos.n == 1)
		rc = iac_state_pull(&s);
	else if (!strcmp(sub, "push") && pos.n == 2)
		rc = iac_state_push(&s, pos.items[1]);
	else if (!strcmp(sub, "push"))
		iac_log_error("usage: iac state push [-force] FILE");
	else if (!strcmp(sub, "lock"))
		rc = iac_state_lock_status(&s);
	else if (!strcmp(sub, "history") && pos.n <= 2)
		rc = iac_state_history(&s, pos.n == 2 ? pos.items[1] : NULL, n_revs);
	else if (!strcmp(sub, "show") && rev && pos.n <= 2)
		rc = iac_state_show_rev(&s, rev, pos.n == 2 ? pos.items[1] : NULL);
	else if (!strcmp(sub, "diff") && pos.n >= 2 && pos.n <= 4)
		rc = iac_state_diff(&s, pos.items[1], pos.n >= 3 ? pos.items[2] : NULL, pos.n == 4 ? pos.items[3] : NULL);
	else if (!strcmp(sub, "diff") || !strcmp(sub, "history"))
		iac_log_error("usage: iac state history [-n N] [ADDR] | iac state diff REV1 [REV2 [ADDR]]");
	else if (!strcmp(sub, "list"))
		rc = state_list(&s, &pos);
	else if (!strcmp(sub, "show"))
		rc = state_show(&s, &pos);
	else if (!strcmp(sub, "rm"))
		rc = state_rm(&s, &pos);
	else if (!strcmp(sub, "mv"))
		rc = state_mv(&s, &pos);
	else
		iac_log_error("unknown 'iac state' subcommand '%s' (use list, show, rm, mv, pull, push, lock, history, diff)", sub);
done:
	iac_session_close(&s);
	iac_strlist_free(&pos);
	return rc;
}

int iac_cmd_show(int argc, char **argv)
{
	iac_session s;
	iac_strlist pos = { 0 };
	int rc = 1;

	iac_session_init(&s, "show");
	if (iac_session_args(&s, IAC_F_JSON, argc, argv, &pos) < 0)
		goto done;
	if (pos.n) {
		json_t *doc = NULL;
		if (iac_planfile_read(&doc, pos.items[0]) < 0) {
			iac_session_error(NULL);
			goto done;
		}
		if (s.json)
			print_json(json_incref(json_object_get(doc, "plan")));
		else if (iac_json_str(doc, "rendered"))
			iac_log_write(stdout, iac_json_str(doc, "rendered"));   /* as `plan` showed it */
		else {
			json_t *ch = json_object_get(json_object_get(doc, "plan"), "resource_changes"), *e;
			size_t i;
			json_array_foreach(ch, i, e)
				if (strcmp(iac_json_str(e, "action") ?: "no-op", "no-op"))
					printf("  %-8s %s\n", iac_json_str(e, "action"),
					       iac_json_str(e, "address") ?: "?");
			json_t *sum = json_object_get(json_object_get(doc, "plan"), "summary");
			printf("Plan: %lld to add, %lld to change, %lld to destroy.\n",
			       (long long)json_integer_value(json_object_get(sum, "add")),
			       (long long)json_integer_value(json_object_get(sum, "change")),
			       (long long)json_integer_value(json_object_get(sum, "destroy")));
		}
		json_decref(doc);
		rc = 0;
		goto done;
	}
	if (open_state_readonly(&s) < 0)
		goto done;
	if (s.json) {
		print_json(iac_state_to_json(s.st));
	} else {
		size_t n;
		const char **addrs = iac_state_addresses(s.st, &n);
		for (size_t i = 0; i < n; i++) {
			show_entry(iac_state_get(s.st, addrs[i]));
			printf("\n");
		}
		free(addrs);
		if (!n)
			printf("The state is empty.\n");
	}
	rc = 0;
done:
	iac_session_close(&s);
	iac_strlist_free(&pos);
	return rc;
}

void iac_help_validate(void)
{
	printf("\nusage: iac validate [-json]\n\nLoads the configuration and checks names, attribute types and the\n"
	       "dependency graph without reading or changing anything real.\n");
	iac_session_usage(IAC_F_VARS | IAC_F_JSON);
}

void iac_help_graph(void)
{
	printf("\nusage: iac graph > graph.dot\n\nPrints the resource dependency graph in DOT (an edge A -> B: A depends on B).\n");
}

void iac_help_output(void)
{
	printf("\nusage: iac output [-json] [NAME]\n\nPrints outputs from state. With NAME, prints that value alone (strings raw).\n");
}

void iac_help_state(void)
{
	printf("\nusage: iac state list [PREFIX...] | show [-rev REV] ADDR | rm ADDR... | mv OLD NEW\n"
	       "       iac state pull | push [-force] FILE | lock [-json]\n"
	       "       iac state history [-n N] [ADDR] | diff REV1 [REV2 [ADDR]]\n\n"
	       "rm forgets a resource without touching the real object. mv gives a resource a new\n"
	       "address (renamed in main.lua, or moved into a module) so that the next plan does\n"
	       "not destroy and re-create it; the type stays the same.\n\n"
	       "pull prints the state (from the local file or etcd); push replaces it with FILE\n"
	       "after checking lineage and serial (-force skips the checks; recorded in history).\n"
	       "lock shows who holds the state lock, since when, and who waits.\n\n"
	       "history lists the revisions (newest first: rev, when, who, command, +/~/- counts),\n"
	       "of one address with ADDR; show -rev REV shows state as it was at REV (a number,\n"
	       "HEAD~1, a commit); diff shows what changed between two revisions, attribute by\n"
	       "attribute (REV2 defaults to the newest). The history is a git repository\n"
	       "(.iac/history.git): any git client reads it.\n\n"
	       "  -force     state push: skip the lineage and serial checks\n"
	       "  -rev REV   state show: at this history revision\n"
	       "  -n N       state history: at most N revisions\n");
	iac_session_usage(IAC_F_JSON | IAC_F_LOCK);
}

void iac_help_show(void)
{
	printf("\nusage: iac show [-json] [PLANFILE]\n\nShows the state, or a saved plan.\n");
}
