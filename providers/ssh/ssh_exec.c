/* ssh.exec: something made and unmade by shell commands on a host, like
 * local.exec. `create` makes it, `destroy` removes it, `check` (exit 0 = it
 * is there) is the guard refresh runs, so a thing removed behind iac's back
 * is made again. Each command runs under the login shell with coreutils'
 * `timeout` on the host as well, so a command that outlives its deadline is
 * killed there and not only abandoned here. */
#include "providers/ssh/ssh.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"

#define STDOUT_KEEP 65536

static const iac_attr exec_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_REQUIRED, "the host to run on" },
	{ "create", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "shell command that makes the thing" },
	{ "destroy", IAC_T_STRING, IAC_A_NO_DIFF, "shell command that removes it" },
	{ "check", IAC_T_STRING, IAC_A_NO_DIFF, "shell command; exit 0 means it still exists (run at every refresh)" },
	{ "triggers", IAC_T_MAP, IAC_A_FORCE_NEW, "arbitrary values; a change runs destroy then create again" },
	{ "environment", IAC_T_MAP, IAC_A_FORCE_NEW, "environment variables for the commands" },
	{ "working_dir", IAC_T_STRING, IAC_A_FORCE_NEW, "directory on the host to run in (default: the user's home)" },
	{ "timeout", IAC_T_STRING, IAC_A_NO_DIFF, "deadline for each command, default \"10m\"" },
	{ "stdout", IAC_T_STRING, IAC_A_COMPUTED, "what create printed (first 64 KiB)" },
	{ NULL, 0, 0, NULL },
};

static int env_name_ok(const char *k)
{
	if (!*k || isdigit((unsigned char)*k))
		return 0;
	for (; *k; k++)
		if (!isalnum((unsigned char)*k) && *k != '_')
			return 0;
	return 1;
}

static int get_timeout(double *ms, const json_t *attrs)
{
	const char *t = iac_json_str(attrs, "timeout");
	*ms = 600e3;
	if (t && iac_duration_parse(ms, t) < 0) {
		iac_err_prefix("attribute 'timeout'");
		return IAC_ERR;
	}
	return 0;
}

/* Shell text that runs $IAC_COMMAND and leaves no trace of it in the
 * environment its commands see. */
#define IAC_EVAL_COMMAND "'__iac_c=$IAC_COMMAND; unset IAC_COMMAND; eval \"unset __iac_c; $__iac_c\"'"

/* The full remote command for attrs[which]: cd, environment, then the
 * user's command under `timeout` and the login shell. */
static int build(iac_buf *out, const json_t *attrs, const char *which, double timeout_ms)
{
	const char *cmd = iac_json_str(attrs, which);
	const char *wd = iac_json_str(attrs, "working_dir");
	const json_t *env = json_object_get(attrs, "environment");
	const char *k;
	json_t *v;

	if (wd) {
		char *q = iac_ssh_quote(wd);
		iac_buf_printf(out, "cd -- %s || exit 126; ", q);
		free(q);
	}
	json_object_foreach((json_t *)env, k, v) {
		if (!env_name_ok(k))
			return iac_err_set("attribute 'environment': '%s' is not a variable name", k);
		char *val = json_is_string(v) ? iac_xstrdup(json_string_value(v)) :
			json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
		char *q = iac_ssh_quote(val);
		iac_buf_printf(out, "%s=%s; export %s; ", k, q, k);
		free(q);
		free(val);
	}
	/* the command reaches its shell through the environment, not argv,
	 * so `ps` on the host shows no value that was put into it */
	char *q = iac_ssh_quote(cmd);
	iac_buf_printf(out, "IAC_COMMAND=%s; export IAC_COMMAND; exec timeout -k 5 %.3f \"${SHELL:-/bin/sh}\" -c %s",
		       q, timeout_ms / 1e3, IAC_EVAL_COMMAND);
	free(q);
	return 0;
}

/* Run attrs[which]. fail_on_status: a non-zero exit is an error. */
static int run(const iac_rctx *ctx, const json_t *attrs, const char *which, int *status,
	       char **out_stdout, int fail_on_status)
{
	const char *cmd = iac_json_str(attrs, which);
	iac_buf full = IAC_BUF_INIT;
	iac_ssh_result res;
	iac_ssh_conn *c;
	double ms;
	int rc = IAC_ERR;

	if (get_timeout(&ms, attrs) < 0 || iac_ssh_host_conn(&c, ctx, attrs) < 0)
		return IAC_ERR;
	if (build(&full, attrs, which, ms) < 0)
		goto done;
	char *what = iac_xasprintf("%s command", which);
	/* our own deadline a little after the host's, so its `timeout`
	 * reports first and the channel closes cleanly */
	if (fail_on_status)
		rc = iac_ssh_run_ok(&res, ctx, c, what, iac_buf_cstr(&full), cmd, NULL, 0, ms + 10e3);
	else
		rc = iac_ssh_run(&res, ctx, c, what, iac_buf_cstr(&full), NULL, 0, ms + 10e3);
	free(what);
	if (rc == 0 && res.status == 124 && fail_on_status == 0) {
		/* a check that timed out says nothing about the thing */
		rc = iac_err_set("%s command on %s timed out after %.0fs: %s", which,
				 iac_ssh_conn_label(c), ms / 1e3, cmd);
	}
	if (rc == 0) {
		*status = res.status;
		if (out_stdout)
			*out_stdout = iac_xstrndup(res.out, res.out_len < STDOUT_KEEP ? res.out_len : STDOUT_KEEP);
	} else if (res.status == 124) {
		iac_err_prefix("%s command timed out after %.0fs (killed on the host)", which, ms / 1e3);
	}
	iac_ssh_result_free(&res);
done:
	iac_buf_free(&full);
	return rc;
}

static int exec_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	double ms;
	if (!iac_value_has_unknown(json_object_get(planned, "timeout")) && get_timeout(&ms, planned) < 0)
		return IAC_ERR;
	return 0;
}

/* A check to run, batched with the other checks on the same host. */
typedef struct {
	const char *full;     /* the built command */
	const char *cmd;      /* as the user wrote it, for messages */
	double timeout_ms;
	int status, rc;
	char *err;
} check_req;

/* One remote shell runs every queued check in its own subshell and prints
 * the exit statuses in order. */
static void run_checks(const iac_rctx *ctx, iac_ssh_conn *c, void **items, size_t n)
{
	check_req **reqs = (check_req **)items;
	iac_buf script = IAC_BUF_INIT;
	iac_ssh_result res;
	double deadline = 0;
	int rc;

	for (size_t i = 0; i < n; i++) {
		iac_buf_printf(&script, "( %s ) </dev/null >/dev/null 2>&1; echo $?\n", reqs[i]->full);
		if (reqs[i]->timeout_ms > deadline)
			deadline = reqs[i]->timeout_ms;
	}
	/* the script goes on stdin (no command-line length limit); each check
	 * reads /dev/null, so none of them can eat the rest of the script */
	rc = iac_ssh_run(&res, ctx, c, "check command", "exec /bin/sh -s", iac_buf_cstr(&script),
			 script.len, deadline + 10e3);
	const char *p = res.out;
	for (size_t i = 0; i < n; i++) {
		check_req *r = reqs[i];
		char *end = NULL;
		long st = p && *p ? strtol(p, &end, 10) : -1;
		if (rc != 0) {
			r->rc = IAC_ERR;
			r->err = iac_xstrdup(iac_err_last());
		} else if (!end || end == p) {
			r->rc = IAC_ERR;
			r->err = iac_xasprintf("check command on %s did not report a status (exit %d): %s",
					       iac_ssh_conn_label(c), res.status, r->cmd);
		} else if (st == 124) {
			/* a check that timed out says nothing about the thing */
			r->rc = IAC_ERR;
			r->err = iac_xasprintf("check command on %s timed out after %.0fs: %s", iac_ssh_conn_label(c),
					       r->timeout_ms / 1e3, r->cmd);
		} else {
			r->rc = 0;
			r->status = (int)st;
		}
		if (end && *end == '\n')
			p = end + 1;
		else if (end)
			p = end;
	}
	iac_ssh_result_free(&res);
	iac_buf_free(&script);
}

static int exec_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	iac_buf full = IAC_BUF_INIT;
	iac_ssh_conn *c;
	check_req req = { 0 };

	*out = NULL;
	if (!json_is_string(json_object_get(prior, "check"))) {
		/* nothing can be verified: a create interrupted by a crash of
		 * iac did not finish, run it again */
		if (!json_is_true(json_object_get(prior, "$interrupted")))
			*out = json_deep_copy(prior);
		return 0;
	}
	if (get_timeout(&req.timeout_ms, prior) < 0 || iac_ssh_host_conn(&c, ctx, prior) < 0)
		return IAC_ERR;
	if (build(&full, prior, "check", req.timeout_ms) < 0) {
		iac_buf_free(&full);
		return IAC_ERR;
	}
	req.full = iac_buf_cstr(&full);
	req.cmd = iac_json_str(prior, "check");
	iac_ssh_batch(ctx, c, "check", run_checks, &req);
	iac_buf_free(&full);
	if (req.rc != 0) {
		iac_err_set("%s", req.err);
		free(req.err);
		return IAC_ERR;
	}
	if (req.status == 0)
		*out = json_deep_copy(prior);
	return 0;
}

static int exec_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	int status;
	char *so = NULL;

	if (run(ctx, planned, "create", &status, &so, 1) < 0)
		return IAC_ERR;
	*out = json_deep_copy(planned);
	json_t *s = json_string(so);
	/* output that is not UTF-8 cannot go into JSON state */
	json_object_set_new(*out, "stdout", s ? s : json_string("(binary output)"));
	free(so);
	return 0;
}

/* Only non-forcing attributes (destroy, check, timeout) change in place:
 * nothing to run, remember the new commands. A move to another host runs
 * create there and destroy here. */
static int exec_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	int status;
	if (!iac_host_same(json_object_get(prior, "host"), json_object_get(planned, "host"))) {
		if (exec_create(ctx, out, planned) < 0)
			return IAC_ERR;
		if (json_is_string(json_object_get(prior, "destroy")) &&
		    run(ctx, prior, "destroy", &status, NULL, 1) < 0) {
			json_decref(*out);
			*out = NULL;
			return IAC_ERR;
		}
		return 0;
	}
	*out = json_deep_copy(planned);
	json_object_set(*out, "stdout", json_object_get(prior, "stdout"));
	return 0;
}

static int exec_remove(const iac_rctx *ctx, const json_t *prior)
{
	int status;
	if (!json_is_string(json_object_get(prior, "destroy")))
		return 0;
	return run(ctx, prior, "destroy", &status, NULL, 1);
}

const iac_rtype iac_ssh_exec_type = {
	.name = "ssh.exec",
	.attrs = exec_attrs,
	.doc = "commands that create, destroy and check something on a host",
	.plan = exec_plan,
	.read = exec_read,
	.create = exec_create,
	.update = exec_update,
	.remove = exec_remove,
	.probe = iac_ssh_probe,
};
