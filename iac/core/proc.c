/* proc: run shell commands with capture and deadlines (see proc.h). */
#include "iac/core/proc.h"
#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void child(const char *cmd, const char *cwd, const char *const *env,
		  int in_fd, int out_fd, int err_fd, pid_t parent)
{
	setpgid(0, 0);
	/* If iac is killed (kill -9), the command must not go on unobserved:
	 * the next run would see it as not done and run it again. Dying with
	 * iac means an interrupted command simply did not finish. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(137);
	dup2(in_fd, 0);
	dup2(out_fd, 1);
	dup2(err_fd, 2);
	/* the parent blocks nothing, but make sure default dispositions apply */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	if (cwd && chdir(cwd) < 0)
		_exit(126);
	for (size_t i = 0; env && env[i]; i++)
		putenv((char *)env[i]);
	execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	_exit(127);
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

int iac_proc_run(iac_proc_result *res, const char *cmd, const char *cwd,
		 const char *const *env, const char *input, double timeout_ms,
		 const volatile int *cancel)
{
	int out_p[2] = { -1, -1 }, err_p[2] = { -1, -1 }, in_p[2] = { -1, -1 };
	iac_buf out = IAC_BUF_INIT, err = IAC_BUF_INIT;
	double deadline = timeout_ms > 0 ? iac_now_ms() + timeout_ms : 0;
	int status = 0, killed = 0;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	res->status = -1;
	if (pipe2(out_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0 || pipe2(in_p, O_CLOEXEC) < 0) {
		iac_err_sys("cannot create pipes to run a command");
		goto fail;
	}
	pid_t self = getpid();
	pid = fork();
	if (pid < 0) {
		iac_err_sys("cannot fork to run a command");
		goto fail;
	}
	if (pid == 0)
		child(cmd, cwd, env, in_p[0], out_p[1], err_p[1], self);
	setpgid(pid, pid);
	close(out_p[1]);
	close(err_p[1]);
	close(in_p[0]);
	if (input) {
		/* small inputs only (scripts, file contents): write then close */
		size_t left = strlen(input);
		signal(SIGPIPE, SIG_IGN);
		while (left > 0) {
			ssize_t n = write(in_p[1], input, left);
			if (n <= 0 && errno != EINTR)
				break;
			if (n > 0) {
				input += n;
				left -= (size_t)n;
			}
		}
	}
	close(in_p[1]);

	int fo = out_p[0], fe = err_p[0];
	while (fo >= 0 || fe >= 0) {
		struct pollfd pf[2];
		int np = 0, wait_ms = 100;
		if (fo >= 0)
			pf[np++] = (struct pollfd){ .fd = fo, .events = POLLIN };
		if (fe >= 0)
			pf[np++] = (struct pollfd){ .fd = fe, .events = POLLIN };
		if (poll(pf, (nfds_t)np, wait_ms) > 0) {
			for (int i = 0; i < np; i++) {
				if (!pf[i].revents)
					continue;
				if (pf[i].fd == fo)
					capture(&out, fo, &fo);
				else
					capture(&err, fe, &fe);
			}
		}
		if (!killed && ((deadline && iac_now_ms() > deadline) || (cancel && *cancel))) {
			res->timed_out = deadline && iac_now_ms() > deadline;
			kill(-pid, SIGKILL);
			killed = 1;
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
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
