/* proc: run shell commands with capture and deadlines (see proc.h). */
#include "iac/core/proc.h"
#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* The guard's SIGTERM (sent by the kernel when iac dies): take the whole
 * process group down, the guard included. Async-signal-safe. */
static void guard_fire(int sig)
{
	(void)sig;
	kill(0, SIGKILL);
	_exit(137);
}

/* The process between iac and the command. It leads a process group of its
 * own, which the command and everything it starts (that does not leave the
 * group on purpose) belong to. PR_SET_PDEATHSIG only reaches the child of
 * the dying process, so a command's own children would outlive a kill -9 of
 * iac and finish work the next run does again; the guard is that child, and
 * when iac dies it kills the group, the command's descendants included.
 * It passes the command's exit status on (128+N for signal N). */
/* What the command's shell runs: the command itself comes through the
 * environment, not argv, so `ps` shows no value that was put into it. */
#define RUN_COMMAND "__iac_c=$IAC_COMMAND; unset IAC_COMMAND; eval \"unset __iac_c; $__iac_c\""

/* The command's environment, made before fork: between fork and exec only
 * async-signal-safe calls are allowed (another thread of iac may hold the
 * allocator's lock when it forks), so the child only calls execve(). Ours:
 * `extra` entries replace the inherited ones of the same name, and
 * IAC_COMMAND holds the command (*owned, caller frees, with the array). */
static char **command_env(const char *const *extra, const char *cmd, char **owned)
{
	extern char **environ;
	size_t n = 0, m = 0, k = 0;
	while (environ[n])
		n++;
	while (extra && extra[m])
		m++;
	char **envp = iac_xcalloc(n + m + 2, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t kl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		int shadowed = !strncmp(environ[i], "IAC_COMMAND=", 12);
		for (size_t j = 0; j < m && !shadowed; j++)
			shadowed = !strncmp(extra[j], environ[i], kl) && extra[j][kl] == '=';
		if (!shadowed)
			envp[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		envp[k++] = (char *)extra[j];
	*owned = iac_xasprintf("IAC_COMMAND=%s", cmd);
	envp[k++] = *owned;
	return envp;
}

/* go_fd >= 0: wait for iac's go-ahead (one byte) before starting the
 * command, so that iac has recorded this group first; EOF means no. */
static void guard(char *const *envp, const char *cwd, int in_fd, int out_fd, int err_fd, int go_fd, pid_t parent)
{
	setpgid(0, 0);
	signal(SIGTERM, guard_fire);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		guard_fire(SIGTERM);
	if (go_fd >= 0) {
		char go;
		ssize_t n;
		while ((n = read(go_fd, &go, 1)) < 0 && errno == EINTR)
			;
		if (n != 1)
			_exit(126);
	}
	dup2(in_fd, 0);
	dup2(out_fd, 1);
	dup2(err_fd, 2);
	/* Nothing else of iac's stays open here: the guard never execs, so
	 * O_CLOEXEC does not close the write end of this command's stdin pipe
	 * (or another thread's command's) and a command that reads stdin to
	 * the end would wait for an EOF that never comes. */
	if (close_range(3, ~0U, 0) < 0)
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	signal(SIGPIPE, SIG_DFL);
	if (cwd && chdir(cwd) < 0)
		_exit(126);
	pid_t pid = fork();
	if (pid < 0)
		_exit(126);
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		char *argv[] = { "sh", "-c", RUN_COMMAND, NULL };
		execve("/bin/sh", argv, envp);
		_exit(127);
	}
	/* the pipes belong to the command now: iac sees EOF when it and its
	 * children are done with them, not when the guard is */
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		close(null);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			_exit(127);
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

static void capture(iac_buf *b, int fd, int *open_fd)
{
	char chunk[8192];
	ssize_t n = read(fd, chunk, sizeof(chunk));
	if (n > 0) {
		if (b->len < IAC_PROC_CAPTURE_MAX)
			iac_buf_put(b, chunk, (size_t)n);
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(fd);
		*open_fd = -1;
	}
}

/* Write all of `input` to the command's stdin. It is written before any
 * output is read, so it must be small (scripts, file contents): a command
 * that writes a pipe's worth of output before reading all of its input
 * would wait for iac to read, and iac for it to read. A command that exits
 * without reading it all must not kill iac with SIGPIPE. */
static void feed_input(int fd, const char *input)
{
	size_t left = strlen(input);
	signal(SIGPIPE, SIG_IGN);
	while (left > 0) {
		ssize_t n = write(fd, input, left);
		if (n <= 0 && errno != EINTR)
			break;
		if (n > 0) {
			input += n;
			left -= (size_t)n;
		}
	}
}

/* One round of reading the command's stdout and stderr; each fd becomes -1
 * once closed. The poll is short so the caller re-checks its deadline and
 * cancel flag often. */
static void capture_round(int *fo, int *fe, iac_buf *out, iac_buf *err)
{
	struct pollfd pf[2];
	int np = 0, wait_ms = 100;
	if (*fo >= 0)
		pf[np++] = (struct pollfd){ .fd = *fo, .events = POLLIN };
	if (*fe >= 0)
		pf[np++] = (struct pollfd){ .fd = *fe, .events = POLLIN };
	if (poll(pf, (nfds_t)np, wait_ms) <= 0)
		return;
	for (int i = 0; i < np; i++) {
		if (!pf[i].revents)
			continue;
		if (pf[i].fd == *fo)
			capture(out, *fo, fo);
		else
			capture(err, *fe, fe);
	}
}

static _Thread_local iac_proc_start_fn start_hook;
static _Thread_local void *start_hook_ud;

void iac_proc_on_start(iac_proc_start_fn fn, void *ud)
{
	start_hook = fn;
	start_hook_ud = fn ? ud : NULL;
}

/* State (field 3), process group (5) and start time (22) of pid, from
 * /proc/PID/stat; -1 when there is no such process. */
static int proc_stat(long pid, char *state, long *pgrp, unsigned long long *start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* the command name (field 2) may hold spaces and parentheses */
	const char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %c %*s %ld %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu",
			  state, pgrp, start) != 3)
		return -1;
	return 0;
}

static char boot_id[40];
static void read_boot_id(void)
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
	if (f && fgets(boot_id, sizeof(boot_id), f))
		boot_id[strcspn(boot_id, "\n")] = '\0';
	if (f)
		fclose(f);
}

static const char *this_boot(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, read_boot_id);
	return boot_id;
}

/* Does any process of group pgid still run (zombies do not count: they are
 * done, whoever reaps them)? */
static int group_running(long pgid)
{
	if (kill(-(pid_t)pgid, 0) < 0 && errno == ESRCH)
		return 0;
	DIR *d = opendir("/proc");
	struct dirent *de;
	int found = 0;
	while (d && !found && (de = readdir(d))) {
		char *end, state;
		long pid = strtol(de->d_name, &end, 10), pgrp;
		unsigned long long start;
		if (*end || pid <= 0 || proc_stat(pid, &state, &pgrp, &start) < 0)
			continue;
		found = pgrp == pgid && state != 'Z' && state != 'X';
	}
	if (d)
		closedir(d);
	return found;
}

int iac_proc_group_reap(const iac_proc_group *g, double wait_ms)
{
	char state;
	long pgrp;
	unsigned long long start;
	if (g->pgid <= 1 || !*this_boot() || strcmp(g->boot, this_boot()))
		return 0;
	/* the guard led the group; if a process has its pid now, it must be
	 * the guard itself. Without one, the id is still the group's: Linux
	 * gives a pid out again only once no process uses it, as a group id
	 * neither. */
	if (proc_stat(g->pgid, &state, &pgrp, &start) == 0 && (start != g->start || pgrp != g->pgid))
		return 0;
	if (!group_running(g->pgid))
		return 0;
	kill(-(pid_t)g->pgid, SIGKILL);
	double end = iac_now_ms() + wait_ms;
	while (group_running(g->pgid)) {
		if (iac_now_ms() > end)
			return iac_err_set("process group %ld still runs %.0f ms after SIGKILL", g->pgid, wait_ms);
		usleep(10000);
	}
	return 1;
}

/* iac has forked the guard (pid) of a command that a start hook wants to
 * know about: tell it, then let the guard go on (or stop it). */
static int announce(pid_t pid, int go_fd)
{
	iac_proc_group g = { .pgid = pid };
	char state;
	long pgrp;
	snprintf(g.boot, sizeof(g.boot), "%s", this_boot());
	if (proc_stat(pid, &state, &pgrp, &g.start) < 0) {
		close(go_fd);
		return iac_err_set("cannot read the start time of process %ld", (long)pid);
	}
	int rc = start_hook(start_hook_ud, &g);
	if (rc == 0 && write(go_fd, "g", 1) != 1)
		rc = iac_err_sys("cannot start a command");
	close(go_fd);
	return rc ? IAC_ERR : 0;
}

/* Long on purpose: pipes, fork, announce and reap share the pipe ends, and
 * each end is closed at one place in this one sequence. */
int iac_proc_run(iac_proc_result *res, const char *cmd, const char *cwd,
		 const char *const *env, const char *input, double timeout_ms,
		 const volatile int *cancel)
{
	int out_p[2] = { -1, -1 }, err_p[2] = { -1, -1 }, in_p[2] = { -1, -1 }, go_p[2] = { -1, -1 };
	iac_buf out = IAC_BUF_INIT, err = IAC_BUF_INIT;
	double deadline = timeout_ms > 0 ? iac_now_ms() + timeout_ms : 0;
	int status = 0, killed = 0;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	res->status = -1;
	if (pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0 || pipe2(in_p, O_CLOEXEC) < 0 ||
	    (start_hook && pipe2(go_p, O_CLOEXEC) < 0)) {
		iac_err_sys("cannot create pipes to run a command");
		goto fail;
	}
	pid_t self = getpid();
	char *cmd_entry = NULL, **envp = command_env(env, cmd, &cmd_entry);
	pid = fork();
	if (pid == 0) {
		if (go_p[1] >= 0)
			close(go_p[1]);
		guard(envp, cwd, in_p[0], out_p[1], err_p[1], go_p[0], self);
	}
	free(envp);
	free(cmd_entry);
	if (pid < 0) {
		iac_err_sys("cannot fork to run a command");
		goto fail;
	}
	setpgid(pid, pid);
	close(out_p[1]);
	close(err_p[1]);
	close(in_p[0]);
	out_p[1] = err_p[1] = in_p[0] = -1;
	if (go_p[0] >= 0) {
		close(go_p[0]);
		go_p[0] = -1;
		int rc = announce(pid, go_p[1]);
		go_p[1] = -1;
		if (rc < 0) {
			/* not recorded: the command must not run */
			kill(-pid, SIGKILL);
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
			goto fail;
		}
	}
	if (input)
		feed_input(in_p[1], input);
	close(in_p[1]);

	/* read until the command and everything it started have closed the
	 * pipes; on timeout or cancel, kill the whole group once and read on
	 * until they close */
	int fo = out_p[0], fe = err_p[0];
	while (fo >= 0 || fe >= 0) {
		capture_round(&fo, &fe, &out, &err);
		if (!killed && ((deadline && iac_now_ms() > deadline) || (cancel && *cancel))) {
			res->timed_out = deadline && iac_now_ms() > deadline;
			kill(-pid, SIGKILL);
			killed = 1;
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* the guard passes the command's status on; killed itself (timeout,
	 * cancel), it reports the signal the same way */
	res->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	res->out_len = out.len;
	res->out = iac_buf_detach(&out);
	res->err_len = err.len;
	res->err = iac_buf_detach(&err);
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (out_p[i] >= 0) close(out_p[i]);
		if (err_p[i] >= 0) close(err_p[i]);
		if (in_p[i] >= 0) close(in_p[i]);
		if (go_p[i] >= 0) close(go_p[i]);
	}
	return IAC_ERR;
}

void iac_proc_result_free(iac_proc_result *res)
{
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
}

const char *iac_proc_tail(const char *s, size_t max)
{
	size_t len = s ? strlen(s) : 0;
	if (!s)
		return "";
	if (len <= max)
		return s;
	const char *p = s + len - max;
	const char *nl = strchr(p, '\n');
	return (nl && nl[1]) ? nl + 1 : p;
}
