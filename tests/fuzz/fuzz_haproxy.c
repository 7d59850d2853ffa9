/* fuzz_haproxy: HAProxy runtime API answers as iac/deploy/haproxy_api.c
 * reads them: `show stat` CSV (iac_haproxy_stat_parse, then the lookups a
 * cutover does), batch answers split at empty lines, error answers, and the
 * master CLI's `show proc`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "iac/core/args.h"
#include "iac/deploy/haproxy_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstr(data, size);
	iac_haproxy_stat *rows = NULL;
	size_t n = 0;

	if (iac_haproxy_stat_parse(&rows, &n, text) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (!memchr(rows[i].pxname, '\0', sizeof(rows[i].pxname)) ||
			    !memchr(rows[i].svname, '\0', sizeof(rows[i].svname)) ||
			    !memchr(rows[i].status, '\0', sizeof(rows[i].status)))
				abort();
			(void)iac_haproxy_stat_is_up(&rows[i]);
			if (iac_haproxy_stat_find(rows, n, rows[i].pxname, rows[i].svname) == NULL)
				abort();
		}
		(void)iac_haproxy_stat_find(rows, n, "app", "green");
	}
	free(rows);

	iac_strlist answers = { 0 };
	size_t got = iac_haproxy_split_answers(&answers, text);
	if (got != answers.n)
		abort();
	for (size_t i = 0; i < answers.n; i++)
		free(iac_haproxy_answer_error(answers.items[i]));
	iac_strlist_free(&answers);
	free(iac_haproxy_answer_error(text));

	iac_haproxy_procs procs;
	iac_haproxy_procs_parse(&procs, text);
	if (procs.n_workers > sizeof(procs.workers) / sizeof(procs.workers[0]))
		abort();
	free(text);
	return 0;
}
