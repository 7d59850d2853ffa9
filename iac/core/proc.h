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

/* A command's process group, as the next run finds it again: the group id
 * (the guard's pid), the guard's start time (/proc/PID/stat field 22, in
 * clock ticks since boot) and the boot id, so a pid used again by another
 * process, or another boot, is never taken for it. */
typedef struct {
	long pgid;
	unsigned long long start;
	char boot[40];
} iac_proc_group;

/* Called on the thread that runs iac_proc_run, with the group of a command
 * that is about to start: the command waits until it returns, so what it
 * records is there before the command does anything. Non-zero: the command
 * is not run (iac_proc_run fails with the hook's message). */
typedef int (*iac_proc_start_fn)(void *ud, const iac_proc_group *g);

/* Set (fn NULL: clear) the hook for commands started by this thread. */
void iac_proc_on_start(iac_proc_start_fn fn, void *ud);

/* A group left by a run that died with its guard (kill -9 of both): kill
 * it (SIGKILL to the group) and wait up to wait_ms until none of its
 * processes runs. 1: it was there and is gone now; 0: nothing of it runs
 * (or the pgid now names another group, or another boot recorded it);
 * IAC_ERR: still running after wait_ms (message set). */
int iac_proc_group_reap(const iac_proc_group *g, double wait_ms);

/* The last `max` bytes of s, starting at a line boundary when possible. */
const char *iac_proc_tail(const char *s, size_t max);

#endif
