/* ssh.directory: a directory on a host with mode and owner. Removing it
 * removes an empty directory only, unless force_destroy is set: files
 * iac does not manage are never deleted by surprise. */
#include "providers/ssh/ssh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"

static const iac_attr dir_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_REQUIRED, "the host the directory lives on" },
	{ "path", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "absolute path on the host (parents are made)" },
	{ "mode", IAC_T_STRING, 0, "octal permissions, default \"0755\"" },
	{ "owner", IAC_T_STRING, 0, "owning user" },
	{ "group", IAC_T_STRING, 0, "owning group" },
	{ "force_destroy", IAC_T_BOOL, IAC_A_NO_DIFF, "on destroy, delete the directory with everything in it" },
	{ NULL, 0, 0, NULL },
};

static int dir_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	char mode[8];
	if (!iac_value_has_unknown(json_object_get(planned, "path")) && iac_ssh_check_path(planned) < 0)
		return IAC_ERR;
	if (!iac_value_has_unknown(json_object_get(planned, "mode"))) {
		if (iac_host_mode_norm(mode, json_object_get(planned, "mode"), "0755") < 0)
			return IAC_ERR;
		json_object_set_new(planned, "mode", json_string(mode));
	}
	return 0;
}

static int dir_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	iac_host_stat_info st;

	*out = NULL;
	if (iac_ssh_check_path(prior) < 0 || iac_ssh_stat_path(&st, ctx, prior) < 0)
		return IAC_ERR;
	if (!st.exists || !st.is_dir)
		return 0;
	*out = json_deep_copy(prior);
	json_object_set_new(*out, "mode", json_string(st.mode));
	if (json_object_get(prior, "owner"))
		json_object_set_new(*out, "owner", json_string(st.owner));
	if (json_object_get(prior, "group"))
		json_object_set_new(*out, "group", json_string(st.group));
	return 0;
}

static int dir_apply(const iac_rctx *ctx, json_t **out, const json_t *planned, int make)
{
	const char *owner = iac_json_str(planned, "owner");
	const char *group = iac_json_str(planned, "group");
	iac_buf cmd = IAC_BUF_INIT;
	iac_ssh_result res;
	iac_ssh_conn *c;
	char mode[8];
	int rc;

	if (iac_ssh_check_path(planned) < 0 || iac_host_mode_norm(mode, json_object_get(planned, "mode"), "0755") < 0)
		return IAC_ERR;
	if (iac_ssh_host_conn(&c, ctx, planned) < 0)
		return IAC_ERR;
	char *qp = iac_ssh_quote(iac_json_str(planned, "path"));
	if (make)
		iac_buf_printf(&cmd, "mkdir -p -- %s && ", qp);
	iac_buf_printf(&cmd, "chmod %s %s", mode, qp);
	if (owner || group) {
		char *spec = iac_xasprintf("%s%s%s", owner ? owner : "", group ? ":" : "", group ? group : "");
		char *q = iac_ssh_quote(spec);
		iac_buf_printf(&cmd, " && chown -- %s %s", q, qp);
		free(q);
		free(spec);
	}
	rc = iac_ssh_run_ok(&res, ctx, c, make ? "making a directory" : "changing a directory",
			    iac_buf_cstr(&cmd), NULL, NULL, 0, iac_ssh_timeout(ctx));
	iac_ssh_result_free(&res);
	iac_buf_free(&cmd);
	free(qp);
	if (rc == 0) {
		*out = json_deep_copy(planned);
		json_object_set_new(*out, "mode", json_string(mode));
	}
	return rc;
}

static int dir_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	return dir_apply(ctx, out, planned, 1);
}

static int dir_remove(const iac_rctx *ctx, const json_t *prior)
{
	const char *path = iac_json_str(prior, "path");
	iac_ssh_result res;
	iac_ssh_conn *c;
	int rc;

	if (iac_ssh_check_path(prior) < 0 || iac_ssh_host_conn(&c, ctx, prior) < 0)
		return IAC_ERR;
	if (!strcmp(path, "/"))
		return iac_err_set("refusing to remove '/' on %s", iac_ssh_conn_label(c));
	char *qp = iac_ssh_quote(path);
	char *cmd = json_is_true(json_object_get(prior, "force_destroy"))
		? iac_xasprintf("rm -rf -- %s", qp)
		: iac_xasprintf("[ ! -e %s ] || rmdir -- %s", qp, qp);
	rc = iac_ssh_run(&res, ctx, c, "removing a directory", cmd, NULL, 0, iac_ssh_timeout(ctx));
	if (rc == 0 && res.status != 0) {
		if (strstr(res.err, "not empty"))
			rc = iac_err_set("cannot remove directory '%s' on %s: it is not empty (remove what is "
					 "left in it, or set force_destroy = true)", path, iac_ssh_conn_label(c));
		else
			rc = iac_err_set("cannot remove directory '%s' on %s: %s", path, iac_ssh_conn_label(c),
					 res.err_len ? res.err : "rmdir failed");
	}
	iac_ssh_result_free(&res);
	free(cmd);
	free(qp);
	return rc;
}

static int dir_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	if (!iac_host_same(json_object_get(prior, "host"), json_object_get(planned, "host"))) {
		if (dir_apply(ctx, out, planned, 1) < 0)
			return IAC_ERR;
		if (dir_remove(ctx, prior) < 0) {
			json_decref(*out);
			*out = NULL;
			return IAC_ERR;
		}
		return 0;
	}
	/* mkdir -p too: cheap, and it also repairs a directory removed meanwhile */
	return dir_apply(ctx, out, planned, 1);
}

const iac_rtype iac_ssh_directory_type = {
	.import_attr = "path",
	.name = "ssh.directory",
	.attrs = dir_attrs,
	.doc = "a directory on a host, with mode and owner",
	.plan = dir_plan,
	.read = dir_read,
	.create = dir_create,
	.update = dir_update,
	.remove = dir_remove,
	.probe = iac_ssh_probe,
};
