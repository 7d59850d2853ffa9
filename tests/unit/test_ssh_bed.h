/* test_ssh_bed: a test-bed fixture for the SSH unit tests (header only).
 *
 * iac_bed_main() brings up N simulated hosts (tests/testbed/testbed.sh),
 * runs the tests in a child process that has joined the controller's
 * network namespace, and tears the test bed down whatever the child did
 * (even a crash). Without root or network namespaces it prints
 * "skipped: ..." and exits 77 (ctest: Not Run).
 */
#ifndef IAC_TEST_SSH_BED_H
#define IAC_TEST_SSH_BED_H

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char bed_dir[256];
static char bed_script[512];
static char bed_ctl[64];
static char bed_addr[16][32];   /* addresses of h1..hN */
static int bed_n;

static int bed_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bed_sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Run a shell command on host hN as root, behind the provider's back:
 * nsenter into the host's namespaces (no ssh round trip, so tests stay
 * quick). Returns its exit status; stdout in out (may be NULL). */
__attribute__((unused)) static int bed_on(int host, char *out, size_t outlen, const char *cmd)
{
	char path[400], full[4096];
	int lp = 0, init = 0;
	snprintf(path, sizeof(path), "%s/hosts/h%d/launcher.pid", bed_dir, host);
	FILE *f = fopen(path, "r");
	if (!f || fscanf(f, "%d", &lp) != 1) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", lp, lp);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%d", &init) != 1) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	FILE *cf = NULL;
	snprintf(path, sizeof(path), "%s/bed_on.sh", bed_dir);
	cf = fopen(path, "w");
	if (!cf)
		return -1;
	fputs(cmd, cf);
	fclose(cf);
	snprintf(full, sizeof(full), "nsenter -t %d -m -u -i -n -p -r -w bash < %s", init, path);
	f = popen(full, "r");
	if (!f)
		return -1;
	size_t n = 0;
	if (out && outlen) {
		n = fread(out, 1, outlen - 1, f);
		out[n] = '\0';
	} else {
		char sink[4096];
		while (fread(sink, 1, sizeof(sink), f) > 0)
			;
	}
	int st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static volatile pid_t bed_child;

/* ctest's timeout or a Ctrl-C: stop the tests, keep the teardown. */
static void bed_on_signal(int sig)
{
	if (bed_child > 0)
		kill(bed_child, SIGKILL);
}

static int bed_join_ctl(void)
{
	char path[128];
	snprintf(path, sizeof(path), "/run/netns/%s", bed_ctl);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
		perror("setns");
		return -1;
	}
	close(fd);
	return 0;
}

static int iac_bed_main(const iac_test *tests, int nhosts)
{
	const char *src = getenv("IAC_SOURCE_DIR");
	char prefix[32];
	int rc;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (geteuid() != 0) {
		printf("skipped: the SSH test bed needs root\n");
		return 77;   /* ctest: Not Run (SKIP_RETURN_CODE) */
	}
	snprintf(bed_script, sizeof(bed_script), "%s/tests/testbed/testbed.sh", src ? src : ".");
	if (access(bed_script, R_OK) != 0) {
		fprintf(stderr, "cannot find %s (set IAC_SOURCE_DIR)\n", bed_script);
		return 1;
	}
	if (bed_sh("bash %s check >/dev/null", bed_script) != 0) {
		printf("skipped: no network namespaces here (ip netns)\n");
		return 77;
	}
	snprintf(bed_dir, sizeof(bed_dir), "/tmp/iac-bed-XXXXXX");
	if (!mkdtemp(bed_dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(prefix, sizeof(prefix), "u%d", (int)getpid());
	snprintf(bed_ctl, sizeof(bed_ctl), "%s-ctl", prefix);
	if (bed_sh("bash %s up %s -n %d -p %s >/dev/null", bed_script, bed_dir, nhosts, prefix) != 0) {
		fprintf(stderr, "cannot bring the test bed up\n");
		bed_sh("rm -rf %s", bed_dir);
		return 1;
	}
	char inv[300];
	snprintf(inv, sizeof(inv), "%s/inventory", bed_dir);
	FILE *f = fopen(inv, "r");
	char name[32];
	while (f && bed_n < 16 && fscanf(f, "%31s %31s", name, bed_addr[bed_n]) == 2)
		bed_n++;
	if (f)
		fclose(f);

	signal(SIGTERM, bed_on_signal);
	signal(SIGINT, bed_on_signal);
	signal(SIGHUP, bed_on_signal);
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		if (bed_join_ctl() < 0)
			_exit(1);
		exit(iac_test_run(tests));   /* exit, not _exit: LeakSanitizer runs at exit */
	}
	bed_child = pid;
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	rc = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
	if (!WIFEXITED(st))
		fprintf(stderr, "tests died with signal %d\n", WTERMSIG(st));
	if (bed_sh("bash %s down %s", bed_script, bed_dir) != 0)
		rc = 1;
	bed_sh("rm -rf %s", bed_dir);
	return rc;
}

#endif
