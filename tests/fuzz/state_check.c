/* state_check: see state_check.h. */
#include "state_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/state/state.h"

/* Borrows both; the snapshot counts one serial on, so serials are left out. */
static void expect_same(const char *when, const json_t *written, const json_t *read)
{
	json_t *a = json_deep_copy(written), *b = json_deep_copy(read);
	json_object_del(a, "serial");
	json_object_del(b, "serial");
	int same = json_equal(a, b);
	if (same) {
		json_decref(a);
		json_decref(b);
		return;
	}
	char *x = json_dumps(a, JSON_SORT_KEYS | JSON_COMPACT);
	char *y = json_dumps(b, JSON_SORT_KEYS | JSON_COMPACT);
	fprintf(stderr, "fuzz: %s differs from the state that was written\nwritten: %s\nread:    %s\n", when,
		x ? x : "?", y ? y : "?");
	abort();
}

static json_t *reopen(const char *dir, const char *when)
{
	iac_state *st = NULL;
	if (iac_state_open(&st, dir) < 0) {
		fprintf(stderr, "fuzz: %s cannot be opened: %s\n", when, iac_err_last());
		abort();
	}
	json_t *doc = iac_state_to_json(st);
	iac_state_free(st);
	return doc;
}

void fuzz_state_check(const char *dir)
{
	iac_state *st = NULL;
	if (iac_state_open(&st, dir) < 0)
		return;   /* refused with a message: fine */

	/* what commands read from an opened state */
	size_t n;
	const char **addrs = iac_state_addresses(st, &n);
	for (size_t i = 0; i < n; i++) {
		char *s = json_dumps(iac_state_get(st, addrs[i]), JSON_COMPACT);
		free(s);
	}
	free(addrs);
	(void)iac_state_lineage(st);
	(void)iac_state_serial(st);
	(void)iac_state_is_new(st);
	(void)iac_state_replayed(st);
	(void)iac_state_outputs(st);
	(void)iac_state_extra(st, "history");

	/* one durable write: the next open must see it */
	json_t *mark = json_pack("{s:s}", "by", "fuzz");
	if (iac_state_set_extra(st, "fuzz", mark) < 0) {
		fprintf(stderr, "fuzz: cannot write the journal: %s\n", iac_err_last());
		abort();
	}
	json_decref(mark);
	json_t *want = iac_state_to_json(st);
	json_t *got = reopen(dir, "the state with its journal");
	expect_same("the journal replayed", want, got);
	json_decref(got);

	/* a snapshot: the same state, one serial on */
	if (iac_state_flush(st) < 0) {
		fprintf(stderr, "fuzz: cannot write a snapshot of a state that opened: %s\n", iac_err_last());
		abort();
	}
	got = reopen(dir, "the new snapshot");
	expect_same("the snapshot", want, got);
	json_decref(got);
	json_decref(want);
	iac_state_free(st);
}
