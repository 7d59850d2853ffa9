/* ssh_stat: what remote paths are (type, mode, owner, size, sha256), for
 * many paths of one host in one command: one `stat` and one `sha256sum`
 * for every path asked for at once (see ssh_batch.c). */
#include "providers/ssh/ssh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/util.h"

typedef struct {
	const char *path;
	iac_ssh_stat *st;
	int rc;
	char *err;
} stat_req;

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

/* Fill requests from a "TYPE\tMODE\tUSER\tGROUP\tSIZE\tNAME" record (after "S\t"). */
static void parse_stat(stat_req **reqs, size_t n, char *rec)
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
	for (size_t i = 0; i < n; i++) {
		if (strcmp(reqs[i]->path, f[5]))
			continue;
		iac_ssh_stat *st = reqs[i]->st;
		unsigned long m = strtoul(f[1], NULL, 8);
		st->exists = 1;
		snprintf(st->type, sizeof(st->type), "%s", f[0]);
		st->is_file = !strncmp(f[0], "regular", 7);
		st->is_dir = !strcmp(f[0], "directory");
		snprintf(st->mode, sizeof(st->mode), "%04lo", m & 07777);
		snprintf(st->owner, sizeof(st->owner), "%s", f[2]);
		snprintf(st->group, sizeof(st->group), "%s", f[3]);
		st->size = strtoll(f[4], NULL, 10);
	}
}

static void run_batch(const iac_rctx *ctx, iac_ssh_conn *c, void **items, size_t n)
{
	stat_req **reqs = (stat_req **)items;
	iac_buf cmd = IAC_BUF_INIT, args = IAC_BUF_INIT;
	iac_ssh_result res;
	int rc;

	for (size_t i = 0; i < n; i++) {
		memset(reqs[i]->st, 0, sizeof(*reqs[i]->st));
		char *q = iac_ssh_quote(reqs[i]->path);
		iac_buf_printf(&args, " %s", q);
		free(q);
	}
	/* LC_ALL=C: file types in English whatever the host's locale. The
	 * script goes on stdin: no command-line length limit for long lists */
	iac_buf_printf(&cmd, "LC_ALL=C; export LC_ALL; stat --printf 'S\\t%%F\\t%%a\\t%%U\\t%%G\\t%%s\\t%%n\\0' --%s "
		       "2>/dev/null </dev/null; sha256sum -z --%s 2>/dev/null </dev/null; exit 0\n",
		       iac_buf_cstr(&args), iac_buf_cstr(&args));
	rc = iac_ssh_run(&res, ctx, c, "reading files", "exec /bin/sh -s", iac_buf_cstr(&cmd),
			 cmd.len, iac_ssh_timeout(ctx));
	if (rc == 0 && res.status != 0) {
		rc = iac_err_set("reading files on %s failed with exit status %d (are stat and sha256sum "
				 "from GNU coreutils installed?)", iac_ssh_conn_label(c), res.status);
	}
	if (rc == 0) {
		char *p = res.out, *end = res.out + res.out_len;
		while (p < end) {
			size_t len = strnlen(p, (size_t)(end - p));
			if (len > 2 && p[0] == 'S' && p[1] == '\t') {
				parse_stat(reqs, n, p + 2);
			} else if (is_hex64(p, len) && len > 66 && p[64] == ' ' && p[65] == ' ') {
				stat_req *r = find_req(reqs, n, p + 66);
				if (r) {
					memcpy(r->st->sha256, p, 64);
					r->st->sha256[64] = '\0';
				}
			}
			p += len + 1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		reqs[i]->rc = rc;
		if (rc != 0)
			reqs[i]->err = iac_xstrdup(iac_err_last());
		else if (!reqs[i]->st->is_file)
			reqs[i]->st->sha256[0] = '\0';
	}
	iac_ssh_result_free(&res);
	iac_buf_free(&cmd);
	iac_buf_free(&args);
}

int iac_ssh_stat_path(iac_ssh_stat *st, const iac_rctx *ctx, iac_ssh_conn *c, const char *path)
{
	stat_req me = { .path = path, .st = st };
	iac_ssh_batch(ctx, c, "stat", run_batch, &me);
	if (me.rc != 0) {
		iac_err_set("%s", me.err);
		free(me.err);
		/* the batch ran on another thread: mark a dead host on ours too */
		iac_ssh_conn_check(c);
		return IAC_ERR;
	}
	return 0;
}
