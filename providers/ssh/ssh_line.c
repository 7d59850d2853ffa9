/* ssh.line: one line in a file on a host, like Ansible's lineinfile: the
 * object exists while the file holds the line. With `regexp`, the first
 * line matching it is replaced in place (a setting edited by hand, say);
 * otherwise the line is appended. Destroy removes the line, and the file
 * keeps everything else. Edits go to a temp file beside the target, which
 * takes the target's mode and owner and is renamed over it, one edit of a
 * directory at a time (flock on it). Values reach
 * the host's shell quoted and reach awk through its environment (awk -v
 * would interpret backslashes). */
#include "providers/ssh/ssh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"

static const iac_attr line_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the host the file lives on" },
	{ "path", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "absolute path of the file" },
	{ "line", IAC_T_STRING, IAC_A_REQUIRED, "the whole line, without its newline" },
	{ "regexp", IAC_T_STRING, 0, "extended regular expression: the first matching line is replaced by `line`" },
	{ "create", IAC_T_BOOL, 0, "create the file (mode 0644) when it does not exist (default false: an error)" },
	{ NULL, 0, 0, NULL },
};

static int line_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	(void)ctx;
	(void)prior;
	const json_t *line = json_object_get(planned, "line");
	if (!iac_value_has_unknown(json_object_get(planned, "path")) && iac_ssh_check_path(planned) < 0)
		return IAC_ERR;
	if (json_is_string(line) && strchr(json_string_value(line), '\n'))
		return iac_err_set("attribute 'line' holds a newline: one ssh.line is one line");
	return 0;
}

/* Run an edit script: $P the file, $L the line, $R the regexp, $O the old
 * line; `body` writes the new content to "$t". */
static int edit(const iac_rctx *ctx, const json_t *attrs, const char *old, const char *what, const char *body)
{
	iac_ssh_conn *c;
	iac_ssh_result res;
	iac_buf cmd = IAC_BUF_INIT;
	const char *vals[4] = { iac_json_str(attrs, "path"), iac_json_str(attrs, "line"),
				iac_json_str(attrs, "regexp") ?: "", old ?: "" };
	const char *names[4] = { "P", "L", "R", "O" };
	if (iac_ssh_check_path(attrs) < 0 || iac_ssh_host_conn(&c, ctx, attrs) < 0)
		return IAC_ERR;
	for (int i = 0; i < 4; i++) {
		char *q = iac_ssh_quote(vals[i]);
		iac_buf_printf(&cmd, "%s=%s; export %s; ", names[i], q, names[i]);
		free(q);
	}
	/* lines of one file are edited by several resources at once: one
	 * edit at a time, under a lock on the file's directory (the file
	 * itself is replaced by each edit) */
	iac_buf_printf(&cmd, "if [ ! -e \"$P\" ]; then %s; fi; exec 9<\"$(dirname -- \"$P\")\" && flock -x 9 || exit 1; "
		       "t=\"$P.iac.$$.tmp\"; "
		       "{ %s; } >\"$t\" && chmod --reference=\"$P\" \"$t\" && chown --reference=\"$P\" \"$t\" && "
		       "mv -fT -- \"$t\" \"$P\" || { rm -f -- \"$t\"; exit 1; }",
		       json_is_true(json_object_get(attrs, "create"))
			       ? "mkdir -p -- \"$(dirname -- \"$P\")\" && install -m 0644 /dev/null \"$P\""
			       : "echo \"$P does not exist (set create = true to make it)\" >&2; exit 2",
		       body);
	char *shown = iac_xasprintf("%s in %s", what, vals[0]);
	int rc = iac_ssh_run_ok(&res, ctx, c, what, iac_buf_cstr(&cmd), shown, NULL, 0, iac_ssh_timeout(ctx));
	iac_ssh_result_free(&res);
	iac_buf_free(&cmd);
	free(shown);
	return rc;
}

/* The new content: $O (when set) or the first line matching $R is replaced
 * by $L; with neither found, $L is appended (unless it is there). */
#define PUT_LINE "awk 'BEGIN { L = ENVIRON[\"L\"]; R = ENVIRON[\"R\"]; O = ENVIRON[\"O\"] } " \
	"!done && ($0 == L || (O != \"\" && $0 == O) || (R != \"\" && $0 ~ R)) { print L; done = 1; next } " \
	"{ print } END { if (!done) print L }' \"$P\""

static int line_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	if (edit(ctx, planned, NULL, "adding a line", PUT_LINE) < 0)
		return IAC_ERR;
	*out = json_deep_copy(planned);
	return 0;
}

static int line_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	/* the old line is replaced where it stands */
	if (edit(ctx, planned, iac_json_str(prior, "line"), "changing a line", PUT_LINE) < 0)
		return IAC_ERR;
	*out = json_deep_copy(planned);
	return 0;
}

static int line_remove(const iac_rctx *ctx, const json_t *prior)
{
	return edit(ctx, prior, NULL, "removing a line",
		    "awk 'BEGIN { L = ENVIRON[\"L\"] } $0 != L' \"$P\"");
}

static int line_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	iac_ssh_conn *c;
	iac_ssh_result res;
	*out = NULL;
	if (iac_ssh_check_path(prior) < 0 || iac_ssh_host_conn(&c, ctx, prior) < 0)
		return IAC_ERR;
	char *qp = iac_ssh_quote(iac_json_str(prior, "path")), *ql = iac_ssh_quote(iac_json_str(prior, "line") ?: "");
	char *cmd = iac_xasprintf("[ -f %s ] || exit 0; grep -Fxq -e %s -- %s && echo present; exit 0", qp, ql, qp);
	int rc = iac_ssh_run_ok(&res, ctx, c, "reading a line", cmd, NULL, NULL, 0, iac_ssh_timeout(ctx));
	if (rc == 0 && res.out_len >= 7 && !strncmp(res.out, "present", 7))
		*out = json_deep_copy(prior);
	iac_ssh_result_free(&res);
	free(cmd);
	free(qp);
	free(ql);
	return rc;
}

const iac_rtype iac_ssh_line_type = {
	.name = "ssh.line",
	.attrs = line_attrs,
	.doc = "a line in a file on a host (like Ansible's lineinfile): replaced in place by regexp, or appended",
	.plan = line_plan,
	.read = line_read,
	.create = line_create,
	.update = line_update,
	.remove = line_remove,
	.probe = iac_ssh_probe,
	.gone_reason = "line missing from the file",
};
