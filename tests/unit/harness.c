/* harness: tiny unit-test runner (see harness.h). */
#include "harness.h"

#include <stdlib.h>
#include <unistd.h>

int iac_test_failures;
static char tmpdir[256];

static void cleanup_tmp(void)
{
	char cmd[300];
	if (!tmpdir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", tmpdir);
}

const char *iac_test_tmpdir(void)
{
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/iac-unit-XXXXXX");
		if (!mkdtemp(tmpdir)) {
			perror("mkdtemp");
			exit(1);
		}
		atexit(cleanup_tmp);
	}
	return tmpdir;
}

int iac_test_run(const iac_test *tests)
{
	int failed = 0;
	for (const iac_test *t = tests; t->name; t++) {
		int before = iac_test_failures;
		t->fn();
		int bad = iac_test_failures != before;
		printf("%s %s\n", bad ? "FAIL" : "ok  ", t->name);
		failed += bad;
	}
	printf("%d failed\n", failed);
	return failed ? 1 : 0;
}
