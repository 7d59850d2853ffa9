/* cmd_plan: `iac plan`, `iac apply [PLANFILE]` and `iac destroy`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/apply/apply.h"
#include "iac/cli/commands.h"
#include "iac/cli/session.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/plan/planfile.h"
#include "iac/plan/render.h"
#include "iac/state/history.h"

#define PLAN_FLAGS (IAC_F_VARS | IAC_F_PLAN | IAC_F_JSON | IAC_F_OUT | IAC_F_LOCK)
#define APPLY_FLAGS (IAC_F_VARS | IAC_F_PLAN | IAC_F_JSON | IAC_F_APPLY | IAC_F_LOCK)

static void print_plan(const iac_plan *plan)
{
	iac_buf b = IAC_BUF_INIT;
	iac_plan_render(&b, plan);
	iac_log_write(stdout, iac_buf_cstr(&b));
	iac_buf_free(&b);
	/* as Terraform does: a partial plan must not pass for the whole */
	if (json_array_size(plan->targets))
		iac_log_warn("-target is in effect: this plan covers only the targets and what they depend on, "
			     "so it may be incomplete; run without -target to see every change");
	if (json_array_size(plan->excludes) || json_array_size(plan->limits))
		iac_log_warn("%s is in effect: resources outside it are left as they are, so this plan may be "
			     "incomplete", json_array_size(plan->limits) ? "-limit" : "-exclude");
}

/* The last lines of a run that left hosts out, one per host: the hosts the
 * plan found unreachable, then those lost while applying (from failures). */
static size_t print_unreachable(const iac_plan *plan, const iac_apply_result *res)
{
	json_t *seen = json_object(), *h;
	size_t i, n = 0;
	iac_buf b = IAC_BUF_INIT;

	json_array_foreach(plan->unreachable, i, h) {
		char *line = iac_plan_host_line(h);
		iac_buf_printf(&b, "%s\n", line);
		free(line);
		json_object_set(seen, iac_json_str(h, "host"), json_true());
		n++;
	}
	json_array_foreach(res ? res->failures : NULL, i, h) {
		json_t *host = json_object_get(h, "host");
		const char *name = iac_json_str(host, "host");
		if (!name || json_object_get(seen, name))
			continue;
		size_t count = 0;
		json_t *f;
		size_t j;
		json_array_foreach(res->failures, j, f)
			count += !strcmp(iac_json_str(json_object_get(f, "host"), "host") ?: "", name);
		iac_buf_printf(&b, "host '%s' (%s) became unreachable: %s; %zu operation%s there failed\n", name,
			       iac_json_str(host, "address"),
			       iac_json_str(host, "error"), count, count == 1 ? "" : "s");
		json_object_set(seen, name, json_true());
		n++;
	}
	if (n)
		iac_buf_printf(&b, "%zu host%s could not be reached. Run the same command again when %s back to "
			       "finish; -require-all-hosts makes this an error before anything changes.\n",
			       n, n == 1 ? "" : "s", n == 1 ? "it is" : "they are");
	iac_log_write(stderr, iac_buf_cstr(&b));
	iac_buf_free(&b);
	json_decref(seen);
	return n;
}

/* Items of `list` from i on whose `key` equals item i's (both absent
 * counts as equal) are marked done; the first `max` addresses go to *who.
 * Returns how many there are. One grouping for failures and skips. */
static size_t collect_same(const json_t *list, size_t i, const char *key, unsigned char *done, iac_buf *who,
			   size_t max)
{
	const char *want = iac_json_str(json_array_get(list, i), key);
	size_t same = 0, n = json_array_size(list);
	for (size_t j = i; j < n; j++) {
		const char *v = iac_json_str(json_array_get(list, j), key);
		if (done[j] || (want ? !v || strcmp(v, want) : v != NULL))
			continue;
		done[j] = 1;
		if (same < max)
			iac_buf_printf(who, "%s%s", same ? ", " : "", iac_json_str(json_array_get(list, j), "address"));
		same++;
	}
	return same;
}

/* Failures with the same cause (a host that went away, say) are one line
 * with a count, not one line each. */
static void print_failures(iac_buf *b, const json_t *failures)
{
	json_t *f;
	size_t i;
	unsigned char *done = iac_xcalloc(json_array_size(failures) + 1, 1);
	json_array_foreach(failures, i, f) {
		if (done[i])
			continue;
		iac_buf who = IAC_BUF_INIT;
		size_t same = collect_same(failures, i, "error", done, &who, 3);
		const char *err = iac_json_str(f, "error");
		if (same == 1)
			iac_buf_printf(b, "  - %s (%s): %s\n", iac_buf_cstr(&who), iac_json_str(f, "operation"), err);
		else
			iac_buf_printf(b, "  - %zu resources (%s%s): %s\n", same, iac_buf_cstr(&who),
				       same > 3 ? " and more" : "", err);
		iac_buf_free(&who);
	}
	free(done);
}

/* What was not run because something it depends on failed, grouped by
 * that failure: "  - skipped local.exec.b, local.exec.c: local.exec.a failed". */
static void print_skipped(iac_buf *b, const json_t *skipped)
{
	json_t *f;
	size_t i;
	unsigned char *done = iac_xcalloc(json_array_size(skipped) + 1, 1);
	json_array_foreach(skipped, i, f) {
		if (done[i])
			continue;
		iac_buf who = IAC_BUF_INIT;
		size_t same = collect_same(skipped, i, "because", done, &who, 5);
		const char *why = iac_json_str(f, "because");
		iac_buf_printf(b, "  - skipped %s%s: %s failed\n", iac_buf_cstr(&who), same > 5 ? " and more" : "",
			       why ? why : "a dependency");
		iac_buf_free(&who);
	}
	free(done);
}

static void print_json(json_t *doc)
{
	char *s = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
	iac_log_write(stdout, s);
	iac_log_write(stdout, "\n");
	free(s);
	json_decref(doc);
}

int iac_cmd_plan(int argc, char **argv)
{
	iac_session s;
	iac_strlist pos = { 0 };
	iac_plan *plan = NULL;
	int rc = 1;

	iac_session_init(&s, "plan");
	if (iac_session_args(&s, PLAN_FLAGS, argc, argv, &pos) < 0)
		goto done;
	if (pos.n) {
		iac_log_error("'iac plan' takes no arguments (got '%s'); use -chdir=DIR for another configuration",
			      pos.items[0]);
		goto done;
	}
	if (iac_session_load_and_open(&s) < 0)
		goto done;
	iac_session_signals(1);
	if (iac_session_plan(&s, &plan) < 0) {
		if (iac_stop_requested)
			rc = 130;
		goto done;
	}
	if (s.json)
		print_json(iac_plan_json(plan));
	else
		print_plan(plan);
	int down = json_array_size(plan->unreachable) > 0;
	if (s.out) {
		json_t *replace = json_array();
		for (size_t i = 0; i < s.replace.n; i++)
			json_array_append_new(replace, json_string(s.replace.items[i]));
		if (iac_planfile_write(s.out, plan, s.cfg, replace) < 0) {
			json_decref(replace);
			iac_session_error("cannot save the plan");
			goto done;
		}
		json_decref(replace);
		if (!s.json)
			printf("\nSaved the plan to '%s'. To apply exactly this plan: iac apply %s\n", s.out, s.out);
	}
	rc = (s.detailed_exitcode && iac_plan_has_changes(plan)) ? 2 : 0;
	if (down) {
		/* a plan that could not look at every host is not a clean one */
		iac_log_write(stderr, "\n");
		print_unreachable(plan, NULL);
		rc = 1;
	}
done:
	if (iac_free_at_exit())
		iac_plan_free(plan);
	iac_session_close(&s);
	iac_strlist_free(&pos);
	return rc;
}

static int confirm(iac_session *s)
{
	char line[64];
	if (s->auto_approve)
		return 1;
	if (!s->input || !isatty(STDIN_FILENO)) {
		iac_log_error("'iac %s' needs confirmation and there is no terminal to ask: pass -auto-approve, "
			      "or save a plan with 'iac plan -out=FILE' and run 'iac apply FILE'", s->command);
		return 0;
	}
	FILE *out = s->json ? stderr : stdout;
	fprintf(out, "\nDo you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n\n  "
		"Enter a value: ");
	fflush(out);
	if (!fgets(line, sizeof(line), stdin) || strcmp(line, "yes\n") != 0) {
		fprintf(out, "\n%s cancelled.\n", !strcmp(s->command, "destroy") ? "Destroy" : "Apply");
		return 0;
	}
	return 1;
}

static void print_outputs(iac_state *st)
{
	json_t *outs = iac_state_outputs(st);
	if (!json_object_size(outs))
		return;
	iac_buf b = IAC_BUF_INIT;
	iac_outputs_render(&b, outs);
	printf("\nOutputs:\n\n%s", iac_buf_cstr(&b));
	iac_buf_free(&b);
}

static json_t *result_json(const iac_apply_result *r, int rc, const iac_plan *plan)
{
	return json_pack("{s:b,s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:O,s:O,s:f}", "ok", rc == 0, "changes", 1,
			 "interrupted", rc == IAC_EINTR,
			 "added", (json_int_t)r->added, "changed", (json_int_t)r->changed,
			 "destroyed", (json_int_t)r->destroyed, "failed", (json_int_t)r->failed,
			 "skipped", (json_int_t)r->skipped, "not_started", (json_int_t)r->not_started,
			 "left_unchanged", (json_int_t)r->left_alone, "failures", r->failures,
			 "unreachable_hosts", plan->unreachable, "seconds", r->seconds);
}

static json_t *result_json_full(const iac_apply_result *r, int rc, const iac_plan *plan)
{
	json_t *doc = result_json(r, rc, plan);
	json_object_set(doc, "skipped_resources", r->skipped_list);
	return doc;
}

/* What `iac rollback` needs without loading the configuration: the
 * providers' settings (secrets left out). */
static void save_provider_settings(iac_session *s)
{
	json_t *keep = json_object(), *v;
	const char *k;
	json_object_foreach(s->cfg->providers, k, v) {
		char *text = json_dumps(v, JSON_COMPACT);
		char *red = iac_redact(text ? text : "{}");
		if (text && !strcmp(text, red))
			json_object_set(keep, k, v);
		free(text);
		free(red);
	}
	if (!iac_value_equal(keep, iac_state_extra(s->st, "providers")))
		iac_state_set_extra(s->st, "providers", keep);
	json_decref(keep);
}

static int run_apply(iac_session *s, iac_plan *plan)
{
	iac_apply_opts ao = { s->parallelism, &iac_stop_requested, &iac_cancel_requested };
	iac_apply_result res;
	save_provider_settings(s);
	int rc = iac_apply_run(&res, plan, s->cfg, s->st, s->pv, &ao);
	int exit_code;
	iac_history_add(s->st, json_pack("{s:s,s:b,s:I,s:I,s:I,s:I,s:I}", "command", s->command, "ok", rc == 0,
					 "added", (json_int_t)res.added, "changed", (json_int_t)res.changed,
					 "destroyed", (json_int_t)res.destroyed, "failed", (json_int_t)res.failed,
					 "skipped", (json_int_t)res.skipped));
	iac_state_flush(s->st);

	if (rc == 0) {
		/* with -json, stdout carries the JSON document alone */
		FILE *out = s->json ? stderr : stdout;
		fprintf(out, "\n%s%s complete!%s Resources: %zu added, %zu changed, %zu destroyed.\n",
			iac_color(IAC_C_GREEN), s->destroy ? "Destroy" : "Apply", iac_color(IAC_C_RESET),
			res.added, res.changed, res.destroyed);
		exit_code = 0;
	} else if (!res.failed && !res.skipped && !res.not_started && rc != IAC_EINTR) {
		/* everything reachable converged; some hosts were left out */
		FILE *out = s->json ? stderr : stdout;
		fprintf(out, "\n%s%s finished on the reachable hosts.%s Resources: %zu added, %zu changed, %zu "
			"destroyed; %zu left as %s.\n", iac_color(IAC_C_YELLOW), s->destroy ? "Destroy" : "Apply",
			iac_color(IAC_C_RESET), res.added, res.changed, res.destroyed, res.left_alone,
			res.left_alone == 1 ? "it is" : "they are");
		fflush(out);
		print_unreachable(plan, &res);
		exit_code = 1;
	} else {
		size_t done = res.added + res.changed + res.destroyed;
		iac_buf b = IAC_BUF_INIT;
		iac_buf_printf(&b, "\n%s%s %s:%s %zu succeeded, %zu failed, %zu skipped because a dependency "
			       "failed, %zu not started", iac_color(IAC_C_RED), s->destroy ? "Destroy" : "Apply",
			       rc == IAC_EINTR ? "interrupted" : "failed", iac_color(IAC_C_RESET), done,
			       res.failed, res.skipped, res.not_started);
		if (res.left_alone)
			iac_buf_printf(&b, ", %zu left as they are (unreachable hosts)", res.left_alone);
		iac_buf_puts(&b, ".\n");
		print_failures(&b, res.failures);
		print_skipped(&b, res.skipped_list);
		iac_buf_puts(&b, "State records everything that completed; fix the cause and run the command "
				 "again to finish.\n");
		iac_log_write(stderr, iac_buf_cstr(&b));
		iac_buf_free(&b);
		print_unreachable(plan, &res);
		exit_code = rc == IAC_EINTR ? 130 : 1;
	}
	if (s->json)
		print_json(result_json_full(&res, rc, plan));
	else if (rc == 0 && !s->destroy)
		print_outputs(s->st);
	iac_apply_result_free(&res);
	return exit_code;
}

/* `iac apply PLANFILE`: re-plan with the saved settings; refuse unless it
 * is the same plan. */
static int apply_saved(iac_session *s, const char *path, iac_plan **plan)
{
	json_t *doc = NULL;
	int rc = IAC_ERR;

	if (iac_planfile_read(&doc, path) < 0) {
		iac_session_error(NULL);
		return IAC_ERR;
	}
	s->plan_vars = json_incref(iac_planfile_vars(doc));
	s->destroy = json_is_true(json_object_get(doc, "destroy"));
	json_t *e;
	size_t i;
	json_array_foreach(json_object_get(doc, "targets"), i, e)
		iac_strlist_push(&s->targets, json_string_value(e));
	json_array_foreach(json_object_get(doc, "replace"), i, e)
		iac_strlist_push(&s->replace, json_string_value(e));
	json_array_foreach(json_object_get(doc, "exclude"), i, e)
		iac_strlist_push(&s->excludes, json_string_value(e));
	json_array_foreach(json_object_get(doc, "limit"), i, e)
		iac_strlist_push(&s->limits, json_string_value(e));
	json_array_foreach(json_object_get(doc, "sensitive_variables"), i, e) {
		const char *name = json_string_value(e);
		char env[300];
		snprintf(env, sizeof(env), "IAC_VAR_%s", name);
		int given = getenv(env) != NULL;
		for (size_t j = 0; j < s->vars.n && !given; j++)
			given = !strncmp(s->vars.items[j], name, strlen(name)) && s->vars.items[j][strlen(name)] == '=';
		if (!given && !s->var_files.n) {
			iac_log_error("plan file '%s' needs the sensitive variable '%s', which plan files never store: "
				      "pass it again with -var %s=... or IAC_VAR_%s", path, name, name, name);
			goto done;
		}
	}
	if (iac_session_load_and_open(s) < 0)
		goto done;
	/* a plan made before any state existed names the lineage to start with */
	if (iac_state_is_new(s->st) && json_integer_value(json_object_get(doc, "serial")) == 0 &&
	    json_is_string(json_object_get(doc, "lineage")))
		iac_state_adopt_lineage(s->st, iac_json_str(doc, "lineage"));
	iac_session_signals(1);
	if (iac_session_plan(s, plan) < 0)
		goto done;
	if (iac_planfile_check(doc, *plan, s->cfg) != 0) {
		iac_session_error(NULL);
		goto done;
	}
	rc = 0;
done:
	json_decref(doc);
	return rc;
}

static int apply_or_destroy(int argc, char **argv, int destroy)
{
	iac_session s;
	iac_strlist pos = { 0 };
	iac_plan *plan = NULL;
	int rc = 1;

	iac_session_init(&s, destroy ? "destroy" : "apply");
	if (iac_session_args(&s, APPLY_FLAGS, argc, argv, &pos) < 0)
		goto done;
	s.destroy = destroy;
	if (s.json)
		iac_log_set_color(0);
	if (pos.n > 1 || (pos.n && destroy)) {
		iac_log_error("'iac %s' takes %s", s.command, destroy ? "no arguments" : "at most one plan file");
		goto done;
	}
	if (pos.n) {
		if (apply_saved(&s, pos.items[0], &plan) < 0)
			goto done;
	} else {
		if (iac_session_load_and_open(&s) < 0)
			goto done;
		iac_session_signals(1);
		if (iac_session_plan(&s, &plan) < 0)
			goto done;
		if (!s.json)
			print_plan(plan);
		if (!iac_plan_has_changes(plan)) {
			/* refresh may have adopted objects; keep state in step */
			iac_apply_opts ao = { s.parallelism, &iac_stop_requested, &iac_cancel_requested };
			iac_apply_result res;
			int arc = iac_apply_run(&res, plan, s.cfg, s.st, s.pv, &ao);
			if (s.json) {
				json_t *doc = result_json(&res, arc, plan);
				json_object_set_new(doc, "changes", json_false());
				print_json(doc);
			}
			rc = print_unreachable(plan, &res) ? 1 : 0;
			iac_apply_result_free(&res);
			goto done;
		}
		if (!confirm(&s))
			goto done;
	}
	rc = run_apply(&s, plan);
done:
	if (iac_free_at_exit())
		iac_plan_free(plan);
	iac_session_close(&s);
	iac_strlist_free(&pos);
	iac_session_signals(0);
	return rc;
}

int iac_cmd_apply(int argc, char **argv)
{
	return apply_or_destroy(argc, argv, 0);
}

int iac_cmd_destroy(int argc, char **argv)
{
	return apply_or_destroy(argc, argv, 1);
}

void iac_help_plan(void)
{
	printf("\nusage: iac plan [flags]\n\nShows what 'iac apply' would change: + create, ~ update in place,\n"
	       "-/+ replace, - destroy. Exit code 0, or with -detailed-exitcode: 0 no changes,\n"
	       "1 error, 2 changes. -json prints the plan as JSON (docs/json-plan.md).\n"
	       "A host that cannot be reached is reported once; its resources are left as\n"
	       "they are and the exit code is 1 (-require-all-hosts: an error up front).\n");
	iac_session_usage(PLAN_FLAGS);
}

void iac_help_apply(void)
{
	printf("\nusage: iac apply [flags] [PLANFILE]\n\nMakes the changes of a plan. Without PLANFILE it plans first and asks for\n"
	       "'yes' (or -auto-approve). With PLANFILE it applies exactly that plan, and\n"
	       "refuses if state or configuration changed since. Ctrl-C stops starting new\n"
	       "work and saves state (exit 130); a second Ctrl-C aborts running work.\n");
	iac_session_usage(APPLY_FLAGS);
}

void iac_help_destroy(void)
{
	printf("\nusage: iac destroy [flags]\n\nRemoves everything the configuration manages, dependents first.\n");
	iac_session_usage(APPLY_FLAGS);
}
