/* haproxy_ctl: local HAProxy process control (see haproxy_ctl.h). */
#include "iac/deploy/haproxy_ctl.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/proc.h"
#include "iac/core/util.h"

#define DEFAULT_TIMEOUT_MS 10000.0

static void sleep_ms(double ms)
{
	struct timespec ts = { (time_t)(ms / 1e3), (long)((ms - (double)(time_t)(ms / 1e3) * 1e3) * 1e6) };
	nanosleep(&ts, NULL);
}

static void put_quoted(iac_buf *b, const char *s)
{
	iac_buf_putc(b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			iac_buf_puts(b, "'\\''");
		else
			iac_buf_putc(b, *s);
	}
	iac_buf_putc(b, '\'');
}

/* The message of one "[ALERT]    (1234) : config : parsing [f:3] : ..." line,
 * without the level and pid; NULL for the generic summary lines. */
static const char *alert_text(const char *line, size_t len, size_t *out_len)
{
	const char *p = memmem(line, len, "[ALERT]", 7), *end = line + len;
	if (!p)
		return NULL;
	p += 7;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p < end && *p == '(') {   /* "(pid)" */
		const char *c = memchr(p, ')', (size_t)(end - p));
		p = c ? c + 1 : p;
	}
	while (p < end && (*p == ' ' || *p == ':'))
		p++;
	if ((size_t)(end - p) > 9 && !memcmp(p, "config : ", 9))
		p += 9;
	size_t l = (size_t)(end - p);
	if ((l >= 14 && !memcmp(p, "Error(s) found", 14)) || (l >= 12 && !memcmp(p, "Fatal errors", 12)))
		return NULL;
	*out_len = l;
	return p;
}

/* HAProxy's complaint: its specific [ALERT] lines when there are any, else
 * the tail of its output. */
static void put_complaint(iac_buf *b, const iac_proc_result *r)
{
	const char *src = r->err && *r->err ? r->err : (r->out ? r->out : "");
	size_t before = b->len;
	for (const char *p = src; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p), tl = 0;
		const char *t = alert_text(p, len, &tl);
		if (t && tl && b->len - before < 2000) {
			if (b->len > before)
				iac_buf_puts(b, "; ");
			iac_buf_put(b, t, tl);
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	if (b->len == before) {
		const char *t = iac_proc_tail(src, 600);
		iac_buf_puts(b, *t ? t : "(no output)");
		while (b->len > before && (b->ptr[b->len - 1] == '\n' || b->ptr[b->len - 1] == ' '))
			b->ptr[--b->len] = '\0';
	}
}

int iac_haproxy_check(const char *haproxy, const char *path)
{
	iac_buf cmd = IAC_BUF_INIT, why = IAC_BUF_INIT;
	iac_proc_result r;
	int rc = IAC_ERR;

	put_quoted(&cmd, haproxy ? haproxy : "haproxy");
	iac_buf_puts(&cmd, " -c -f ");
	put_quoted(&cmd, path);
	if (iac_proc_run(&r, iac_buf_cstr(&cmd), NULL, NULL, NULL, 30000, NULL) < 0) {
		iac_err_prefix("cannot validate haproxy config '%s'", path);
		goto done;
	}
	if (r.status == 127) {
		iac_err_set("cannot validate haproxy config '%s': '%s' not found (install haproxy)",
			    path, haproxy ? haproxy : "haproxy");
	} else if (r.timed_out) {
		iac_err_set("cannot validate haproxy config '%s': 'haproxy -c' did not finish in 30 s", path);
	} else if (r.status != 0) {
		put_complaint(&why, &r);
		iac_err_set("haproxy config '%s' is invalid: %s", path, iac_buf_cstr(&why));
	} else {
		rc = 0;
	}
	iac_proc_result_free(&r);
done:
	iac_buf_free(&cmd);
	iac_buf_free(&why);
	return rc;
}

int iac_haproxy_check_text(const char *haproxy, const char *text)
{
	const char *tmp = getenv("TMPDIR");
	char *path = iac_xasprintf("%s/iac-haproxy-XXXXXX.cfg", tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemps(path, 4), rc = IAC_ERR;
	size_t len = strlen(text), off = 0;

	if (fd < 0) {
		iac_err_sys("cannot create a temporary file to validate the haproxy config");
		free(path);
		return IAC_ERR;
	}
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			iac_err_sys("cannot write '%s'", path);
			goto done;
		}
		off += (size_t)w;
	}
	rc = iac_haproxy_check(haproxy, path);
done:
	close(fd);
	unlink(path);
	free(path);
	return rc;
}

static int read_pidfile(pid_t *out, const char *path)
{
	char *text = NULL;
	size_t len;
	long pid;

	*out = 0;
	if (iac_file_read(&text, &len, path) < 0)
		return IAC_ERR;
	pid = atol(text);
	free(text);
	if (pid <= 1)
		return iac_err_set("pidfile '%s' holds no pid", path);
	*out = (pid_t)pid;
	return 0;
}

/* 1 if pid is a live process (a zombie that nobody reaps counts as gone). */
static int alive(pid_t pid)
{
	char path[64], *text = NULL;
	size_t len;
	int live;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (iac_file_read(&text, &len, path) < 0)
		return 0;
	const char *rp = strrchr(text, ')');
	live = !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
	free(text);
	return live;
}

int iac_haproxy_start(pid_t *out_master, const iac_haproxy_run *run)
{
	iac_buf cmd = IAC_BUF_INIT, why = IAC_BUF_INIT;
	iac_proc_result r;
	double timeout = run->timeout_ms > 0 ? run->timeout_ms : DEFAULT_TIMEOUT_MS;
	double deadline = iac_now_ms() + timeout;
	int rc = IAC_ERR;

	*out_master = 0;
	if (!run->cfg_path || !run->pidfile)
		return iac_err_set("cannot start haproxy: a config path and a pidfile are required");
	unlink(run->pidfile);
	put_quoted(&cmd, run->haproxy ? run->haproxy : "haproxy");
	iac_buf_puts(&cmd, " -W -D -f ");
	put_quoted(&cmd, run->cfg_path);
	iac_buf_puts(&cmd, " -p ");
	put_quoted(&cmd, run->pidfile);
	if (run->master_socket) {
		char *s = iac_xasprintf("%s,level,admin", run->master_socket);
		iac_buf_puts(&cmd, " -S ");
		put_quoted(&cmd, s);
		free(s);
	}
	/* the daemon keeps no descriptor of ours: HAProxy's parent exits once
	 * the master is up, and that is when this returns */
	if (iac_proc_run(&r, iac_buf_cstr(&cmd), NULL, NULL, NULL, timeout, NULL) < 0) {
		iac_err_prefix("cannot start haproxy with '%s'", run->cfg_path);
		goto done;
	}
	if (r.status != 0 || r.timed_out) {
		put_complaint(&why, &r);
		iac_err_set("cannot start haproxy with '%s' (exit %d): %s", run->cfg_path, r.status,
			    iac_buf_cstr(&why));
		iac_proc_result_free(&r);
		goto done;
	}
	iac_proc_result_free(&r);
	for (;;) {
		pid_t pid;
		if (read_pidfile(&pid, run->pidfile) == 0 && alive(pid)) {
			*out_master = pid;
			rc = 0;
			break;
		}
		if (iac_now_ms() > deadline) {
			iac_err_set("haproxy started but wrote no live pid to '%s' within %.0f ms",
				    run->pidfile, timeout);
			break;
		}
		sleep_ms(10);
	}
done:
	iac_buf_free(&cmd);
	iac_buf_free(&why);
	return rc;
}

/* The children of pid (all its threads), for reloads driven by a signal. */
static size_t children(pid_t *out, size_t max, pid_t pid)
{
	char path[64];
	size_t n = 0;
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char *text = NULL, *file;
		size_t len;
		if (e->d_name[0] == '.')
			continue;
		file = iac_xasprintf("/proc/%d/task/%s/children", (int)pid, e->d_name);
		if (iac_file_read(&text, &len, file) == 0) {
			for (char *p = text, *end; *p; p = end) {
				long c = strtol(p, &end, 10);
				if (end == p)
					break;
				if (n < max)
					out[n++] = (pid_t)c;
			}
			free(text);
		}
		free(file);
	}
	closedir(d);
	return n;
}

static int in_set(pid_t pid, const pid_t *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == pid)
			return 1;
	return 0;
}

/* One reload in progress: what identifies the old worker(s), so the new
 * one can be told apart. */
typedef struct {
	const iac_haproxy_reload_opts *opts;
	iac_haproxy_reload_result *out;
	double timeout_ms, t0, deadline, t_sent;
	iac_haproxy_procs before;        /* `show proc` before, with a master CLI */
	pid_t old_kids[64];              /* the master's children before, without one */
	size_t n_old_kids;
} reloader;

/* Steps 0 and 1 (haproxy_ctl.h): nothing is sent to the master until the
 * config is known good and the runtime states are saved. */
static int reload_prepare(reloader *r)
{
	const iac_haproxy_reload_opts *opts = r->opts;
	if (opts->cfg_path && iac_haproxy_check(opts->haproxy, opts->cfg_path) < 0) {
		iac_err_prefix("not reloading haproxy");
		return IAC_ERR;
	}
	if (opts->api && opts->state_file) {
		if (iac_haproxy_save_state(opts->api, opts->state_file) < 0) {
			iac_err_prefix("cannot reload haproxy (runtime server states would be lost)");
			return IAC_ERR;
		}
		r->out->save_ms = iac_now_ms() - r->t0;
	}
	if (opts->api && iac_haproxy_worker_pid(&r->out->old_worker, opts->api) < 0)
		return IAC_ERR;
	return 0;
}

/* Step 2 through the master CLI. */
static int reload_by_cli(reloader *r)
{
	iac_haproxy *master = r->opts->master;
	char *ans = NULL, *e;
	if (iac_haproxy_show_proc(&r->before, master) < 0)
		return IAC_ERR;
	r->t_sent = iac_now_ms();
	/* HAProxy 2.6 closes the master CLI connection without a word */
	if (iac_haproxy_master_cmd(&ans, master, "reload") < 0)
		return IAC_ERR;
	e = iac_haproxy_answer_error(ans);
	free(ans);
	if (e) {
		iac_err_set("haproxy at '%s': cannot reload: %s", iac_haproxy_addr(master), e);
		free(e);
		return IAC_ERR;
	}
	return 0;
}

/* Step 2 by signal, when there is no master CLI. */
static int reload_by_signal(reloader *r)
{
	pid_t master = r->opts->master_pid;
	if (!alive(master))
		return iac_err_set("cannot reload haproxy: master pid %d is not running", (int)master);
	r->n_old_kids = children(r->old_kids, 64, master);
	r->t_sent = iac_now_ms();
	if (kill(master, SIGUSR2) < 0)
		return iac_err_sys("cannot signal the haproxy master (pid %d)", (int)master);
	return 0;
}

/* One look for the new worker: *fresh set when there is one; -1 when the
 * reload failed. */
static int look_for_worker(pid_t *fresh, reloader *r)
{
	const iac_haproxy_reload_opts *opts = r->opts;
	if (opts->master) {
		iac_haproxy_procs now;
		/* the master re-executes itself: its CLI may be briefly unanswered */
		if (iac_haproxy_show_proc(&now, opts->master) < 0)
			return 0;
		if (now.failed > r->before.failed)
			return iac_err_set("haproxy rejected the new configuration on reload (failed reloads: "
					   "%d); the old worker keeps serving: run 'haproxy -c -f' on it", now.failed);
		for (size_t i = 0; i < now.n_workers && !*fresh; i++)
			if (!in_set(now.workers[i], r->before.workers, r->before.n_workers))
				*fresh = now.workers[i];
		return 0;
	}
	if (!alive(opts->master_pid))
		return iac_err_set("the haproxy master (pid %d) died during the reload", (int)opts->master_pid);
	pid_t kids[64];
	size_t n = children(kids, 64, opts->master_pid);
	for (size_t i = 0; i < n && !*fresh; i++)
		if (!in_set(kids[i], r->old_kids, r->n_old_kids) && kids[i] != r->out->old_worker)
			*fresh = kids[i];
	return 0;
}

/* Step 3: a new worker must appear, then answer the API before anyone
 * uses it (a command sent earlier would reach the old worker and be lost). */
static int wait_new_worker(reloader *r)
{
	iac_haproxy *api = r->opts->api;
	pid_t fresh = 0;
	while (!fresh) {
		if (iac_now_ms() > r->deadline)
			return iac_err_set("haproxy reload did not start a new worker within %.0f ms; the old "
					   "worker keeps serving", r->timeout_ms);
		sleep_ms(5);
		if (look_for_worker(&fresh, r) < 0)
			return IAC_ERR;
	}
	r->out->new_worker = fresh;
	while (api) {
		pid_t answering = 0;
		if (iac_haproxy_worker_pid(&answering, api) == 0 && answering == fresh)
			break;
		if (iac_now_ms() > r->deadline)
			return iac_err_set("haproxy at '%s': still answered by pid %d, not the new worker %d, "
					   "%.0f ms after the reload", iac_haproxy_addr(api), (int)answering,
					   (int)fresh, r->timeout_ms);
		sleep_ms(2);
	}
	return 0;
}

int iac_haproxy_reload(iac_haproxy_reload_result *out, const iac_haproxy_reload_opts *opts)
{
	reloader r = { .opts = opts, .out = out, .t0 = iac_now_ms() };

	r.timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
	r.deadline = r.t0 + r.timeout_ms;
	memset(out, 0, sizeof(*out));
	if (!opts->master && opts->master_pid <= 1)
		return iac_err_set("cannot reload haproxy: neither a master CLI nor a master pid given");
	if (reload_prepare(&r) < 0 ||
	    (opts->master ? reload_by_cli(&r) : reload_by_signal(&r)) < 0 ||
	    wait_new_worker(&r) < 0)
		return IAC_ERR;
	out->reload_ms = iac_now_ms() - r.t_sent;
	out->total_ms = iac_now_ms() - r.t0;
	return 0;
}

int iac_haproxy_stop(pid_t master, double timeout_ms)
{
	double deadline = iac_now_ms() + (timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS);
	int sig = SIGUSR1;

	if (master <= 1)
		return iac_err_set("cannot stop haproxy: invalid master pid %d", (int)master);
	if (!alive(master))
		return 0;
	if (kill(master, SIGUSR1) < 0 && errno != ESRCH)
		return iac_err_sys("cannot stop haproxy (pid %d)", (int)master);
	while (alive(master)) {
		if (iac_now_ms() > deadline) {
			if (sig == SIGKILL)
				return iac_err_set("haproxy (pid %d) did not stop, even after SIGKILL", (int)master);
			sig = sig == SIGUSR1 ? SIGTERM : SIGKILL;
			kill(master, sig);
			deadline = iac_now_ms() + 2000;
		}
		sleep_ms(10);
	}
	return 0;
}
