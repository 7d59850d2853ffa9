/* hostexec: commands and files on a host, local or over SSH (see deploy.h).
 * Remote hosts use the ssh provider's pool, so a deployment shares the one
 * connection per host that ssh.* resources on that host use. */
#include "providers/deploy/deploy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/proc.h"
#include "iac/core/util.h"
#include "iac/provider/runtime.h"
#include "providers/ssh/ssh.h"

#define TAIL 1500

int iac_hostexec_remote(const json_t *host)
{
	return json_is_object(host) && json_is_string(json_object_get(host, "address"));
}

const char *iac_hostexec_label(const json_t *host)
{
	static __thread char buf[300];
	if (!iac_hostexec_remote(host))
		return "this machine";
	snprintf(buf, sizeof(buf), "'%s' (%s)",
		 json_string_value(json_object_get(host, "name")) ?: "?",
		 json_string_value(json_object_get(host, "address")));
	return buf;
}

/* A context for calls into the ssh provider, and the connection. */
static int ssh_conn(const iac_rctx *ctx, const json_t *host, iac_rctx *sctx, iac_ssh_conn **conn)
{
	void *pd = NULL;
	if (iac_rctx_peer(&pd, ctx, "ssh") < 0)
		return IAC_ERR;
	*sctx = *ctx;
	sctx->pdata = pd;
	json_t *attrs = json_pack("{s:O}", "host", host);
	int rc = iac_ssh_host_conn(sctx, attrs, conn);
	json_decref(attrs);
	return rc;
}

static int run(const iac_rctx *ctx, const json_t *host, const char *cmd, const char *input,
	       double timeout_ms, char **out, int *status, int fail_on_status)
{
	if (timeout_ms <= 0)
		timeout_ms = 60e3;
	if (out)
		*out = NULL;
	if (iac_hostexec_remote(host)) {
		iac_rctx sctx;
		iac_ssh_conn *c;
		iac_ssh_result res;
		if (ssh_conn(ctx, host, &sctx, &c) < 0)
			return IAC_ERR;
		int rc = fail_on_status
			? iac_ssh_run_ok(&sctx, c, "run", cmd, NULL, input, input ? strlen(input) : 0, timeout_ms, &res)
			: iac_ssh_run(&sctx, c, "run", cmd, input, input ? strlen(input) : 0, timeout_ms, &res);
		if (rc == 0) {
			if (status)
				*status = res.status;
			if (out)
				*out = iac_xstrdup(res.out ? res.out : "");
		}
		iac_ssh_result_free(&res);
		return rc;
	}
	iac_proc_result res;
	if (iac_proc_run(&res, cmd, ctx->config_dir, NULL, input, timeout_ms, ctx->cancel) < 0)
		return IAC_ERR;
	int rc = 0;
	if (res.timed_out) {
		rc = iac_err_set("command timed out after %.0fs on this machine: %s", timeout_ms / 1e3, cmd);
	} else if (fail_on_status && res.status != 0) {
		rc = iac_err_set("command failed with exit status %d on this machine: %s%s%s", res.status, cmd,
				 res.err_len ? "\n  stderr: " : "", res.err_len ? iac_proc_tail(res.err, TAIL) : "");
	} else {
		if (status)
			*status = res.status;
		if (out)
			*out = iac_xstrdup(res.out);
	}
	iac_proc_result_free(&res);
	return rc;
}

int iac_hostexec_run(const iac_rctx *ctx, const json_t *host, const char *cmd, double timeout_ms, char **out)
{
	return run(ctx, host, cmd, NULL, timeout_ms, out, NULL, 1);
}

int iac_hostexec_status(const iac_rctx *ctx, const json_t *host, const char *cmd, double timeout_ms, int *status)
{
	return run(ctx, host, cmd, NULL, timeout_ms, NULL, status, 0);
}

int iac_hostexec_write(const iac_rctx *ctx, const json_t *host, const char *path, const char *data,
		       size_t len, const char *mode)
{
	if (!mode)
		mode = "0644";
	if (!iac_hostexec_remote(host)) {
		char *full = iac_path_join(ctx->config_dir, path), *dir = iac_xstrdup(full);
		char *slash = strrchr(dir, '/');
		int rc = 0;
		if (slash && slash != dir) {
			*slash = '\0';
			rc = iac_mkdir_p(dir, 0755);
		}
		if (rc == 0)
			rc = iac_file_replace(full, data, len, (mode_t)strtoul(mode, NULL, 8));
		free(full);
		free(dir);
		return rc;
	}
	/* one round trip: the content on stdin, written beside, renamed */
	char *q = iac_ssh_quote(path);
	char *cmd = iac_xasprintf("set -e; d=$(dirname %s); mkdir -p \"$d\"; t=%s.iac.$$; cat > \"$t\"; "
				  "chmod %s \"$t\"; mv -f \"$t\" %s", q, q, mode, q);
	char *input = iac_xstrndup(data, len);
	int rc = run(ctx, host, cmd, input, 30e3, NULL, NULL, 1);
	free(input);
	free(cmd);
	free(q);
	return rc;
}

char *iac_deploy_expand(const char *tpl, const json_t *vars)
{
	iac_buf b = IAC_BUF_INIT;
	for (const char *p = tpl; *p;) {
		if (*p == '{') {
			const char *end = strchr(p, '}');
			if (end && end - p < 32) {
				char key[32];
				snprintf(key, sizeof(key), "%.*s", (int)(end - p - 1), p + 1);
				json_t *v = json_object_get(vars, key);
				if (json_is_string(v)) {
					iac_buf_puts(&b, json_string_value(v));
					p = end + 1;
					continue;
				}
				if (json_is_integer(v)) {
					iac_buf_printf(&b, "%lld", (long long)json_integer_value(v));
					p = end + 1;
					continue;
				}
			}
		}
		iac_buf_putc(&b, *p++);
	}
	return iac_buf_detach(&b);
}
