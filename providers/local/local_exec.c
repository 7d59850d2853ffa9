/* local.exec: something made and unmade by shell commands on this machine.
 * `create` runs to make it, `destroy` to remove it, `check` (exit 0 = it
 * exists) lets refresh notice that it is gone. A failing command's error
 * carries its exit status and the tail of its stdout and stderr. */
#include "providers/local/local.h"

#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/proc.h"
#include "iac/core/util.h"
#include "iac/core/value.h"

#define TAIL_MAX 2048

static const iac_attr exec_attrs[] = {
	{ "create", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "shell command that makes the thing" },
	{ "destroy", IAC_T_STRING, 0, "shell command that removes it" },
	{ "check", IAC_T_STRING, 0, "shell command; exit 0 means it still exists" },
	{ "environment", IAC_T_MAP, IAC_A_FORCE_NEW, "extra environment variables for the commands" },
	{ "working_dir", IAC_T_STRING, IAC_A_FORCE_NEW, "directory to run in (default: the configuration directory)" },
	{ "timeout", IAC_T_STRING, 0, "deadline for each command, default \"10m\"" },
	{ "stdout", IAC_T_STRING, IAC_A_COMPUTED, "what create printed (first 64 KiB)" },
	{ NULL, 0, 0, NULL },
};

/* Run one of the commands of a local.exec; IAC_ERR with a full message on a
 * non-zero status. *out_stdout (may be NULL) receives stdout. */
static int run(const iac_rctx *ctx, const json_t *attrs, const char *which,
	       int *out_status, char **out_stdout, int fail_on_status)
{
	const char *cmd = iac_json_str(attrs, which);
	const json_t *envmap = json_object_get(attrs, "environment");
	const char *wd = iac_json_str(attrs, "working_dir");
	const char *tmo = iac_json_str(attrs, "timeout");
	char **env = NULL, *cwd = NULL;
	size_t nenv = 0;
	double timeout_ms = 600e3;
	iac_proc_result res;
	int rc = IAC_ERR;

	if (tmo && iac_duration_parse(&timeout_ms, tmo) < 0) {
		iac_err_prefix("attribute 'timeout'");
		return IAC_ERR;
	}
	if (json_is_object(envmap)) {
		const char *k;
		json_t *v;
		env = iac_xcalloc(json_object_size(envmap) + 1, sizeof(*env));
		json_object_foreach((json_t *)envmap, k, v) {
			if (json_is_string(v))
				env[nenv++] = iac_xasprintf("%s=%s", k, json_string_value(v));
			else if (json_is_integer(v))
				env[nenv++] = iac_xasprintf("%s=%lld", k, (long long)json_integer_value(v));
			else if (json_is_real(v))
				env[nenv++] = iac_xasprintf("%s=%g", k, json_real_value(v));
			else if (json_is_boolean(v))
				env[nenv++] = iac_xasprintf("%s=%s", k, json_is_true(v) ? "true" : "false");
			else {
				iac_err_set("attribute 'environment': '%s' must be a string, number or boolean", k);
				goto done;
			}
		}
	}
	cwd = iac_path_join(ctx->config_dir, wd ? wd : ".");
	if (iac_proc_run(&res, cmd, cwd, (const char *const *)env, NULL, timeout_ms, ctx->cancel) < 0)
		goto done;
	*out_status = res.status;
	if (res.timed_out) {
		iac_err_set("%s command timed out after %.0fs: %s", which, timeout_ms / 1e3, cmd);
	} else if (res.status != 0 && fail_on_status) {
		iac_buf msg = IAC_BUF_INIT;
		iac_buf_printf(&msg, "%s command failed with exit status %d: %s", which, res.status, cmd);
		if (res.err_len)
			iac_buf_printf(&msg, "\n  stderr: %s", iac_proc_tail(res.err, TAIL_MAX));
		if (res.out_len)
			iac_buf_printf(&msg, "\n  stdout: %s", iac_proc_tail(res.out, TAIL_MAX));
		iac_err_set("%s", iac_buf_cstr(&msg));
		iac_buf_free(&msg);
	} else {
		if (out_stdout)
			*out_stdout = iac_xstrndup(res.out, res.out_len < 65536 ? res.out_len : 65536);
		rc = 0;
	}
	iac_proc_result_free(&res);
done:
	for (size_t i = 0; i < nenv; i++)
		free(env[i]);
	free(env);
	free(cwd);
	return rc;
}

static int exec_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	int status = 0;

	*out = NULL;
	if (json_is_object(json_object_get(prior, "check")))
		return iac_err_set("the check command is sensitive and only its hash is in state; the configuration "
				   "no longer declares this resource");
	if (!json_is_string(json_object_get(prior, "check"))) {
		/* without a check command nothing can be verified: an interrupted
		 * create (its command was killed with iac) did not finish */
		if (!json_is_true(json_object_get(prior, "$interrupted")))
			*out = json_copy((json_t *)prior);
		return 0;
	}
	if (run(ctx, prior, "check", &status, NULL, 0) < 0)
		return IAC_ERR;
	if (status == 0)
		*out = json_copy((json_t *)prior);
	return 0;
}

static int exec_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	int status;
	char *so = NULL;

	if (run(ctx, planned, "create", &status, &so, 1) < 0)
		return IAC_ERR;
	*out = json_deep_copy(planned);
	json_object_set_new(*out, "stdout", json_string(so));
	free(so);
	return 0;
}

/* Only non-forcing attributes (destroy, check, timeout) can change in place:
 * nothing to run, remember the new commands. */
static int exec_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	*out = json_deep_copy(planned);
	json_object_set(*out, "stdout", json_object_get(prior, "stdout"));
	return 0;
}

static int exec_remove(const iac_rctx *ctx, const json_t *prior)
{
	int status;
	const json_t *d = json_object_get(prior, "destroy");
	if (json_is_object(d))
		return iac_err_set("the destroy command is sensitive and only its hash is in state; declare the "
				   "resource (with the same command) in the configuration again to run it, or forget it "
				   "with 'iac state rm %s'", ctx->addr);
	if (!json_is_string(d))
		return 0;
	return run(ctx, prior, "destroy", &status, NULL, 1);
}

static int exec_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	const char *tmo = iac_json_str(planned, "timeout");
	double ms;
	if (tmo && iac_duration_parse(&ms, tmo) < 0) {
		iac_err_prefix("attribute 'timeout'");
		return IAC_ERR;
	}
	return 0;
}

const iac_rtype iac_local_exec = {
	.name = "local.exec",
	.attrs = exec_attrs,
	.doc = "commands that create, destroy and check something on this machine",
	.plan = exec_plan,
	.read = exec_read,
	.create = exec_create,
	.update = exec_update,
	.remove = exec_remove,
};
