/* cmd_history: reading the git history of state: `iac state history [-n N]
 * [ADDR]`, `iac state show -rev REV [ADDR]`, `iac state diff REV1 [REV2]`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/cli/commands.h"
#include "iac/cli/session.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/state/gitlog.h"
#include "iac/state/history.h"

static iac_gitlog *open_history(iac_session *s)
{
	iac_gitlog *g = NULL;
	if (iac_session_backend(s, 0) < 0)
		return NULL;
	if (iac_history_open(&g, s->be) < 0) {
		iac_session_error("cannot read the history");
		return NULL;
	}
	return g;
}

static long count_of(const json_t *r, const char *k)
{
	return (long)json_integer_value(json_object_get(json_object_get(r, "counts"), k));
}

static void print_json_doc(json_t *doc)
{
	char *t = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
	printf("%s\n", t ? t : "null");
	free(t);
}

/* One line per revision, newest first: rev, when, who, command, counts. */
int iac_state_history(iac_session *s, const char *addr, long n)
{
	iac_gitlog *g = open_history(s);
	json_t *list = NULL, *r;
	size_t i;
	if (!g)
		return 1;
	if (iac_gitlog_list(&list, g, n, addr) < 0) {
		iac_session_error("cannot read the history");
		iac_gitlog_free(g);
		return 1;
	}
	if (s->json)
		print_json_doc(list);
	else if (!json_array_size(list))
		printf("No history yet%s.\n", addr ? " for that address" : "");
	else
		json_array_foreach(list, i, r)
			printf("%-4lld %s  %s@%s  %-14s +%ld ~%ld -%ld%s\n",
			       (long long)json_integer_value(json_object_get(r, "rev")), iac_json_str(r, "at") ?: "?",
			       iac_json_str(r, "user") ?: "?", iac_json_str(r, "host") ?: "?",
			       iac_json_str(r, "command") ?: "?", count_of(r, "add"), count_of(r, "change"),
			       count_of(r, "destroy"), json_integer_value(json_object_get(r, "exit")) ? "  (failed)" : "");
	json_decref(list);
	iac_gitlog_free(g);
	return 0;
}

/* The state document at a revision spec ("12", "HEAD~1", a commit). */
static int state_at(json_t **out, iac_gitlog *g, const char *spec)
{
	long rev;
	if (iac_gitlog_find(&rev, g, spec) < 0)
		return iac_err_set("no revision '%s' in the history ('iac state history' lists them)", spec);
	return iac_gitlog_state_at(out, NULL, g, rev);
}

int iac_state_show_rev(iac_session *s, const char *spec, const char *addr)
{
	iac_gitlog *g = open_history(s);
	json_t *doc = NULL, *e;
	size_t i;
	int rc = 1;
	if (!g)
		return 1;
	if (state_at(&doc, g, spec) < 0) {
		iac_session_error(NULL);
		goto done;
	}
	if (!addr) {
		print_json_doc(doc);
		rc = 0;
		goto done;
	}
	json_array_foreach(json_object_get(doc, "resources"), i, e)
		if (!strcmp(iac_json_str(e, "address") ?: "", addr)) {
			print_json_doc(e);
			rc = 0;
			goto done;
		}
	iac_log_error("'%s' is not in state at revision %s", addr, spec);
done:
	json_decref(doc);
	iac_gitlog_free(g);
	return rc;
}

int iac_state_diff(iac_session *s, const char *spec1, const char *spec2, const char *addr)
{
	iac_gitlog *g = open_history(s);
	json_t *a = NULL, *b = NULL;
	int rc = 1;
	if (!g)
		return 1;
	if (state_at(&a, g, spec1) < 0 || state_at(&b, g, spec2 ? spec2 : "HEAD") < 0) {
		iac_session_error(NULL);
		goto done;
	}
	char *text = iac_gitlog_diff_render(a, b, addr);
	if (!*text)
		printf("No differences between %s and %s.\n", spec1, spec2 ? spec2 : "HEAD");
	else
		fputs(text, stdout);
	free(text);
	rc = 0;
done:
	json_decref(a);
	json_decref(b);
	iac_gitlog_free(g);
	return rc;
}
