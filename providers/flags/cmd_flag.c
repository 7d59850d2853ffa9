/* cmd_flag: `iac flag list`, `iac flag set NAME VARIANT [-percent P]`,
 * `iac flag reset NAME`. Changes take effect in seconds: state only, no
 * plan of the whole topology, delivered straight to every target. The next
 * plan shows where a live value and main.lua disagree (and keeps the live
 * value until main.lua's declaration of that flag changes, or a reset). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/flags/flagops.h"

#include "iac/cli/session.h"
#include "iac/core/args.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"

static void print_doc(json_t *doc)
{
	char *s = json_dumps(doc, JSON_INDENT(2));
	printf("%s\n", s);
	free(s);
}

static int list(iac_session *s)
{
	if (iac_session_open_state(s, 0) < 0)
		return 1;
	json_t *all = iac_flagops_list(s->st), *f;
	const char *name;
	if (s->json) {
		print_doc(all);
	} else if (!json_object_size(all)) {
		printf("No flags in state (declare them with flag \"name\" { ... } and run 'iac apply').\n");
	} else {
		json_object_foreach(all, name, f) {
			const char *ov = iac_json_str(f, "override_at");
			printf("%s%s%s  %s", iac_color(IAC_C_BOLD), name, iac_color(IAC_C_RESET),
			       iac_json_str(f, "value"));
			if (ov)
				printf("  %s(live override since %s; main.lua: %s)%s", iac_color(IAC_C_YELLOW), ov,
				       iac_json_str(f, "declared"), iac_color(IAC_C_RESET));
			printf("\n");
			json_t *t;
			size_t i;
			json_array_foreach(json_object_get(f, "targets"), i, t)
				printf("    -> %s\n", json_string_value(t));
		}
	}
	json_decref(all);
	return 0;
}

static void print_report(const char *name, json_t *report)
{
	json_t *t;
	size_t i;
	int shown = 0;
	json_array_foreach(report, i, t) {
		if (!json_is_true(json_object_get(t, "ok"))) {
			printf("flag %s%s%s: NOT delivered to %s (keeps its old value)\n", iac_color(IAC_C_BOLD), name,
			       iac_color(IAC_C_RESET), iac_json_str(t, "target"));
			continue;
		}
		printf("flag %s%s%s: %s -> delivered to %s in %.0f ms\n", iac_color(IAC_C_BOLD), name,
		       iac_color(IAC_C_RESET), iac_json_str(t, "value"),
		       iac_json_str(t, "target"), json_real_value(json_object_get(t, "ms")));
		json_t *m;
		size_t j;
		if (!shown++)   /* who moves is the same on every target */
			json_array_foreach(json_object_get(t, "moves"), j, m)
				printf("    %.1f%% of users move from %s to %s\n",
				       100 * json_number_value(json_object_get(m, "share")),
				       iac_json_str(m, "from") ?: "?",
				       iac_json_str(m, "to") ?: "?");
	}
}

int iac_prov_flags_cmd(int argc, char **argv)
{
	iac_session s;
	iac_strlist pos = { 0 };
	double percent = -1;
	const char *percent_text = NULL;
	int rc = 1;

	iac_session_init(&s, "flag");
	iac_opt opts[] = {
		{ "percent", IAC_OPT_STRING, &percent_text, "roll the variant out to P% (sticky), the rest keeps the default" },
		{ "json", IAC_OPT_BOOL, &s.json, "machine-readable output" },
		{ "lock-timeout", IAC_OPT_DURATION, &s.lock_timeout_ms, "wait this long for the state lock" },
		{ "backend-config", IAC_OPT_LIST, &s.backend_config,
		  "KEY=VALUE: a setting of the state backend (repeatable; never printed)" },
		{ "no-color", IAC_OPT_BOOL, &s.no_color, "no colour" },
		{ NULL, 0, NULL, NULL },
	};
	if (iac_args_parse(opts, "flag", argc, argv, &pos) < 0) {
		iac_log_error("%s", iac_err_last());
		goto done;
	}
	if (s.no_color || s.json)
		iac_log_set_color(0);
	if (percent_text) {
		char *end;
		percent = strtod(percent_text, &end);
		if (*end == '%')
			end++;
		if (!*percent_text || *end || percent < 0 || percent > 100) {
			iac_log_error("-percent must be a number from 0 to 100, not '%s'", percent_text);
			goto done;
		}
	}
	const char *sub = pos.n ? pos.items[0] : NULL;
	if (!sub || !strcmp(sub, "list")) {
		rc = list(&s);
		goto done;
	}
	int set = !strcmp(sub, "set"), reset = !strcmp(sub, "reset");
	if ((!set && !reset) || (set && pos.n != 3) || (reset && pos.n != 2)) {
		iac_log_error("usage: iac flag list | iac flag set NAME VARIANT [-percent P] | iac flag reset NAME");
		goto done;
	}
	if (s.lock_timeout_ms <= 0)
		s.lock_timeout_ms = 10e3;   /* a flag flip waits a moment for a running apply */
	if (iac_session_open_state(&s, 1) < 0)
		goto done;
	s.pv = iac_providers_new(iac_state_extra(s.st, "providers"), NULL, ".");
	json_t *report = NULL;
	int r = set ? iac_flagops_set(&report, s.st, s.pv, pos.items[1], pos.items[2], percent)
		    : iac_flagops_reset(&report, s.st, s.pv, pos.items[1]);
	if (r < 0) {
		/* some targets may have taken the change: record those, show them */
		if (report && iac_state_flush(s.st) == 0) {
			if (s.json)
				print_doc(report);
			else
				print_report(pos.items[1], report);
		}
		iac_session_error(NULL);
	} else if (iac_state_flush(s.st) < 0) {
		iac_session_error("the flag was delivered but state could not be saved (the journal has it)");
	} else {
		if (s.json)
			print_doc(report);
		else
			print_report(pos.items[1], report);
		rc = 0;
	}
	json_decref(report);
done:
	iac_session_close(&s);
	iac_strlist_free(&pos);
	return rc;
}

void iac_prov_flags_cmd_help(void)
{
	printf("\nusage: iac flag list [-json]\n"
	       "       iac flag set NAME VARIANT [-percent P] [-json]\n"
	       "       iac flag reset NAME\n\n"
	       "Changes a feature flag on every target it is delivered to, in seconds, from\n"
	       "state alone. With -percent the variant is rolled out to P%% of users (sticky:\n"
	       "raising P only adds users); without it the variant is served to everyone.\n"
	       "The next 'iac plan' shows the live value against main.lua and keeps the live\n"
	       "value until main.lua's declaration of the flag changes or 'iac flag reset'.\n");
}
