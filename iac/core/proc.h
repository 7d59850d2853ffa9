/* proc: run a local shell command, capturing its output, with a deadline.
 *
 * The command runs as `/bin/sh -c CMD` in its own process group, so a
 * Ctrl-C at the terminal reaches iac (which decides what to stop) and not
 * the in-flight commands, and a timeout kills the whole group. A small
 * guard process leads the group: when iac dies (even by kill -9) the
 * kernel tells the guard, which kills the group, so neither the command nor
 * anything it started in the background goes on unobserved.
 */
#ifndef IAC_CORE_PROC_H
#define IAC_CORE_PROC_H

#include <stddef.h>

typedef struct {
	int status;       /* exit status; 128+N when killed by signal N; -1 not run */
	int timed_out;    /* the deadline passed and the group was killed */
	char *out;        /* captured stdout, NUL-terminated (capped, see below) */
	size_t out_len;
	char *err;        /* captured stderr, NUL-terminated (capped) */
	size_t err_len;
} iac_proc_result;

#define IAC_PROC_CAPTURE_MAX (1u << 20)   /* keep at most 1 MiB of each stream */

/* Run cmd with cwd (NULL: inherit), extra environment entries "K=V" (NULL
 * terminated, may be NULL), stdin from `input` (NULL: /dev/null) and a
 * timeout (<= 0: none). `cancel` (may be NULL) non-zero kills the command.
 * Returns 0 when the command ran (whatever its status), -1 when it could not
 * be started (message set). Free the result with iac_proc_result_free(). */
int iac_proc_run(iac_proc_result *res, const char *cmd, const char *cwd,
		 const char *const *env, const char *input, double timeout_ms,
		 const volatile int *cancel);

void iac_proc_result_free(iac_proc_result *res);

/* The last `max` bytes of s, starting at a line boundary when possible. */
const char *iac_proc_tail(const char *s, size_t max);

#endif
