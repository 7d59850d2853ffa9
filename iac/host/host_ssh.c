/* host_ssh: the backend for remote hosts (see host_int.h), over the hosts'
 * connection pool. Each operation is one remote command; stat is batched
 * (iac_hosts_batch): while one stat command runs on a host, the paths other
 * threads ask about queue up and go in the next one, so refreshing a
 * thousand files is a few round trips, not a thousand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/proc.h"
#include "iac/core/util.h"
#include "iac/host/host_int.h"

#define TAIL_MAX 2048
#define READ_MISSING 99   /* the read command's "nothing at path" */

/* Run cmd on c; `shown` names it in messages. */
static int conn_exec(iac_host_result *res, iac_ssh_conn *c, const char *cmd, const char *shown, const void *input,
		     size_t input_len, double timeout_ms, const volatile int *cancel)
{
	iac_ssh_result r;
	int rc = iac_ssh_exec(&r, c, cmd, input, input_len, timeout_ms, cancel);
	if (rc == IAC_ETIMEOUT)
		rc = iac_err_set("command timed out after %.0fs on %s: %s", timeout_ms / 1e3, iac_ssh_conn_label(c),
				 shown);
	else if (rc == IAC_EINTR)
		rc = iac_err_set("command on %s interrupted: %s", iac_ssh_conn_label(c), shown);
	res->status = r.status;
	res->out = r.out;
	res->out_len = r.out_len;
	res->err = r.err;
	res->err_len = r.err_len;
	free(r.signal);
	return rc < 0 ? IAC_ERR : 0;
}

static int ssh_exec(iac_host_result *res, iac_hosts *h, const json_t *host, const char *cmd, const void *input,
		    size_t input_len, double timeout_ms, const volatile int *cancel)
{
	iac_ssh_conn *c;
	if (iac_hosts_conn(&c, h, host, cancel) < 0)
		return IAC_ERR;
	return conn_exec(res, c, cmd, cmd, input, input_len, timeout_ms, cancel);
}

/* One round trip: the content on stdin, written beside, renamed. */
static int ssh_write(iac_hosts *h, const json_t *host, const char *path, const void *data, size_t len,
		     const char *mode, const volatile int *cancel)
{
	char *q = iac_ssh_quote(path);
	char *cmd = iac_xasprintf("set -e; d=$(dirname %s); mkdir -p \"$d\"; t=%s.iac.$$; cat > \"$t\"; "
				  "chmod %s \"$t\"; mv -f \"$t\" %s", q, q, mode, q);
	iac_host_result res;
	memset(&res, 0, sizeof(res));
	res.status = -1;
	/* 30 s, plus a second per MiB: a shipped binary is a few MiB */
	int rc = ssh_exec(&res, h, host, cmd, data, len, 30e3 + (double)(len >> 20) * 1e3, cancel);
	if (rc == 0 && res.status != 0)
		rc = iac_host_status_error(&res, host, cmd);
	iac_host_result_free(&res);
	free(cmd);
	free(q);
	return rc;
}

/* `head -c max+1`: a file bigger than max is noticed without sending it
 * all; `[ -e ]` tells a missing file from one that cannot be read. */
static int ssh_read(char **out, size_t *len, iac_hosts *h, const json_t *host, const char *path, size_t max,
		    double timeout_ms, const volatile int *cancel)
{
	char *q = iac_ssh_quote(path);
	char *cmd = iac_xasprintf("[ -e %s ] || exit %d; exec head -c %zu -- %s", q, READ_MISSING, max + 1, q);
	iac_host_result res;
	memset(&res, 0, sizeof(res));
	int rc = ssh_exec(&res, h, host, cmd, NULL, 0, timeout_ms, cancel);
	if (rc == 0 && res.status == READ_MISSING && !res.out_len) {
		iac_err_set("'%s' does not exist on %s", path, iac_host_label(host));
		rc = IAC_ENOTFOUND;
	} else if (rc == 0 && res.status != 0) {
		rc = iac_err_set("cannot read '%s' on %s: %s", path, iac_host_label(host),
				 res.err_len ? iac_proc_tail(res.err, TAIL_MAX) : "the command failed");
	} else if (rc == 0 && res.out_len > max) {
		rc = iac_err_set("cannot read '%s' on %s: larger than %zu bytes", path, iac_host_label(host), max);
	} else if (rc == 0) {
		*out = res.out ? res.out : iac_xstrdup("");
		*len = res.out_len;
		res.out = NULL;
	}
	iac_host_result_free(&res);
	free(cmd);
	free(q);
	return rc;
}

/* ---- stat, batched ---------------------------------------------------- */

typedef struct {
	const char *path;
	iac_host_stat_info *st;
	int rc;
	char *err;
} stat_req;

/* The leader's connection and deadline, for the whole batch. */
typedef struct {
	iac_ssh_conn *c;
	double timeout_ms;
	const volatile int *cancel;
} stat_run;

static int is_hex64(const char *s, size_t len)
{
	if (len < 64)
		return 0;
	for (size_t i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static stat_req *find_req(stat_req **reqs, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(reqs[i]->path, path))
			return reqs[i];
	return NULL;
}

/* A "TYPE\tMODE\tUSER\tGROUP\tSIZE\tNAME" record (after "S\t") and the
 * record after it, %N ("NAME -> TARGET" for a link), into every request
 * for NAME. */
static void parse_stat(stat_req **reqs, size_t n, char *rec, const char *link)
{
	char *f[6];
	int nf = 0;
	char *p = rec;
	while (nf < 5) {
		char *tab = strchr(p, '\t');
		if (!tab)
			return;
		*tab = '\0';
		f[nf++] = p;
		p = tab + 1;
	}
	f[5] = p;  /* the name may hold anything but NUL */
	size_t nl = strlen(f[5]);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(reqs[i]->path, f[5]))
			continue;
		iac_host_stat_info *st = reqs[i]->st;
		unsigned long m = strtoul(f[1], NULL, 8);
		st->exists = 1;
		snprintf(st->type, sizeof(st->type), "%s", f[0]);
		st->is_file = !strncmp(f[0], "regular", 7);
		st->is_dir = !strcmp(f[0], "directory");
		st->is_link = !strcmp(f[0], "symbolic link");
		snprintf(st->mode, sizeof(st->mode), "%04lo", m & 07777);
		snprintf(st->owner, sizeof(st->owner), "%s", f[2]);
		snprintf(st->group, sizeof(st->group), "%s", f[3]);
		st->size = strtoll(f[4], NULL, 10);
		if (st->is_link && link && !strncmp(link, f[5], nl) && !strncmp(link + nl, " -> ", 4))
			snprintf(st->target, sizeof(st->target), "%s", link + nl + 4);
	}
}

/* The output: NUL-terminated records, "S\t..." then its %N record, and
 * sha256sum's "HEX  NAME". */
static void parse_output(stat_req **reqs, size_t n, char *p, char *end)
{
	while (p < end) {
		size_t len = strnlen(p, (size_t)(end - p));
		char *next = p + len + 1;
		if (len > 2 && p[0] == 'S' && p[1] == '\t') {
			int have_link = next < end;
			parse_stat(reqs, n, p + 2, have_link ? next : NULL);
			if (have_link)
				next += strnlen(next, (size_t)(end - next)) + 1;
		} else if (is_hex64(p, len) && len > 66 && p[64] == ' ' && p[65] == ' ') {
			stat_req *r = find_req(reqs, n, p + 66);
			if (r) {
				memcpy(r->st->sha256, p, 64);
				r->st->sha256[64] = '\0';
			}
		}
		p = next;
	}
}

static void run_stats(void **items, size_t n, void *ud)
{
	stat_req **reqs = (stat_req **)items;
	stat_run *run = ud;
	iac_buf cmd = IAC_BUF_INIT, args = IAC_BUF_INIT;
	iac_host_result res;
	char shown[64];

	for (size_t i = 0; i < n; i++) {
		memset(reqs[i]->st, 0, sizeof(*reqs[i]->st));
		char *q = iac_ssh_quote(reqs[i]->path);
		iac_buf_printf(&args, " %s", q);
		free(q);
	}
	/* LC_ALL=C: file types in English whatever the host's locale;
	 * QUOTING_STYLE=literal: %N gives a link's target as it is. The script
	 * goes on stdin: no command-line length limit for long lists */
	iac_buf_printf(&cmd, "LC_ALL=C QUOTING_STYLE=literal; export LC_ALL QUOTING_STYLE; "
		       "stat --printf 'S\\t%%F\\t%%a\\t%%U\\t%%G\\t%%s\\t%%n\\0%%N\\0' --%s 2>/dev/null </dev/null; "
		       "sha256sum -z --%s 2>/dev/null </dev/null; exit 0\n",
		       iac_buf_cstr(&args), iac_buf_cstr(&args));
	snprintf(shown, sizeof(shown), "stat and sha256sum of %zu path%s", n, n == 1 ? "" : "s");
	memset(&res, 0, sizeof(res));
	int rc = conn_exec(&res, run->c, "exec /bin/sh -s", shown, iac_buf_cstr(&cmd), cmd.len, run->timeout_ms,
			   run->cancel);
	if (rc == 0 && res.status != 0)
		rc = iac_err_set("reading files on %s failed with exit status %d (are stat and sha256sum "
				 "from GNU coreutils installed?)", iac_ssh_conn_label(run->c), res.status);
	if (rc == 0)
		parse_output(reqs, n, res.out, res.out + res.out_len);
	for (size_t i = 0; i < n; i++) {
		reqs[i]->rc = rc;
		if (rc != 0)
			reqs[i]->err = iac_xstrdup(iac_err_last());
		else if (!reqs[i]->st->is_file)
			reqs[i]->st->sha256[0] = '\0';
	}
	iac_host_result_free(&res);
	iac_buf_free(&cmd);
	iac_buf_free(&args);
}

static int ssh_stat(iac_host_stat_info *st, iac_hosts *h, const json_t *host, const char *path, double timeout_ms,
		    const volatile int *cancel)
{
	stat_run run = { .timeout_ms = timeout_ms, .cancel = cancel };
	stat_req me = { .path = path, .st = st };
	if (iac_hosts_conn(&run.c, h, host, cancel) < 0)
		return IAC_ERR;
	iac_hosts_batch(h, run.c, "stat", run_stats, &run, &me);
	if (me.rc != 0) {
		iac_err_set("%s", me.err);
		free(me.err);
		/* the batch ran on another thread: mark a dead host on ours too */
		iac_ssh_conn_check(run.c);
		return IAC_ERR;
	}
	return 0;
}

const iac_host_backend iac_host_ssh = {
	.exec = ssh_exec,
	.write = ssh_write,
	.read = ssh_read,
	.stat = ssh_stat,
};
