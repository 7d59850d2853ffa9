/* ssh.file: a file on a host, with content (or a local `source`), mode and
 * owner. Compared by the sha256 of the remote file, computed on the host
 * (big files are never downloaded to compare). Written atomically: to a
 * temp file beside the target, then renamed over it. A drifted text file
 * (up to 256 KiB) is read back so the plan can show a content diff. */
#include "providers/ssh/ssh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"

#define DIFF_MAX (256 * 1024)   /* drifted files up to this size are read back */

static const iac_attr file_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_REQUIRED, "the host the file lives on" },
	{ "path", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "absolute path on the host" },
	{ "content", IAC_T_STRING, 0, "the file's content" },
	{ "source", IAC_T_STRING, 0, "a local file to copy instead of content (relative: to the configuration)" },
	{ "mode", IAC_T_STRING, 0, "octal permissions, default \"0644\"" },
	{ "owner", IAC_T_STRING, 0, "owning user (default: left as the login user makes it)" },
	{ "group", IAC_T_STRING, 0, "owning group" },
	{ "backup", IAC_T_BOOL, IAC_A_NO_DIFF, "when a file not made by iac is already at path, keep it as "
	  "PATH.iac-orig and put it back on destroy (default true)" },
	{ "sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of the content" },
	{ "takes_over", IAC_T_STRING, IAC_A_COMPUTED, "planned: the existing file the create replaces" },
	{ "original", IAC_T_STRING, IAC_A_COMPUTED, "where the replaced file was kept (destroy puts it back)" },
	{ NULL, 0, 0, NULL },
};

#define ORIG_SUFFIX ".iac-orig"

static int read_source(const iac_rctx *ctx, const json_t *attrs, char **data, size_t *len)
{
	const char *src = iac_json_str(attrs, "source");
	char *p = iac_path_join(ctx->config_dir ? ctx->config_dir : ".", src);
	int rc = iac_file_read(data, len, p);
	if (rc == IAC_ENOTFOUND)
		iac_err_set("attribute 'source': local file '%s' does not exist", p);
	free(p);
	return rc < 0 ? IAC_ERR : 0;
}

/* The bytes the file must hold. Borrowed (*owned NULL) or allocated. */
static int wanted(const iac_rctx *ctx, const json_t *attrs, const char **data, size_t *len, char **owned)
{
	*owned = NULL;
	if (json_is_string(json_object_get(attrs, "source"))) {
		if (read_source(ctx, attrs, owned, len) < 0)
			return IAC_ERR;
		*data = *owned;
		return 0;
	}
	const json_t *c = json_object_get(attrs, "content");
	*data = json_is_string(c) ? json_string_value(c) : "";
	*len = json_is_string(c) ? json_string_length(c) : 0;
	return 0;
}

/* A create over a file iac did not make takes it over: say so in the plan,
 * with what is there. Not while validating (no hosts then). */
static int note_takeover(const iac_rctx *ctx, json_t *planned)
{
	iac_ssh_conn *c;
	iac_host_stat_info st;
	if (!ctx->hosts || iac_value_has_unknown(json_object_get(planned, "host")) ||
	    iac_value_has_unknown(json_object_get(planned, "path")))
		return 0;
	if (iac_ssh_host_conn(&c, ctx, planned) < 0 || iac_ssh_stat_path(&st, ctx, planned) < 0)
		return IAC_ERR;
	json_object_set_new(planned, "takes_over", json_null());
	json_object_set_new(planned, "original", json_null());
	if (!st.exists)
		return 0;
	if (!st.is_file)
		return iac_err_set("'%s' on %s is a %s, not a file; remove it, or manage it with another resource",
				   iac_json_str(planned, "path"), iac_ssh_conn_label(c), st.type);
	int keep = !json_is_false(json_object_get(planned, "backup"));
	json_object_set_new(planned, "takes_over",
			    json_sprintf("replaces an existing file, %lld bytes, not managed by iac; %s", st.size,
					 keep ? "kept as " ORIG_SUFFIX " and put back by destroy" : "not kept (backup = false)"));
	if (keep)
		json_object_set_new(planned, "original",
				    json_sprintf("%s" ORIG_SUFFIX, iac_json_str(planned, "path")));
	return 0;
}

static int file_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	if (!prior && note_takeover(ctx, planned) < 0)
		return IAC_ERR;
	char mode[8], hex[65];
	const json_t *content = json_object_get(planned, "content");
	const json_t *source = json_object_get(planned, "source");

	if (!iac_value_has_unknown(json_object_get(planned, "path")) && iac_ssh_check_path(planned) < 0)
		return IAC_ERR;
	if (!iac_value_has_unknown(json_object_get(planned, "mode"))) {
		if (iac_host_mode_norm(mode, json_object_get(planned, "mode"), "0644") < 0)
			return IAC_ERR;
		json_object_set_new(planned, "mode", json_string(mode));
	}
	if (content && !json_is_null(content) && source && !json_is_null(source))
		return iac_err_set("set either 'content' or 'source', not both");
	if (source && !json_is_null(source)) {
		if (iac_value_has_unknown(source)) {
			json_object_set_new(planned, "sha256", iac_value_unknown());
			return 0;
		}
		char *data;
		size_t len;
		if (read_source(ctx, planned, &data, &len) < 0)
			return IAC_ERR;
		iac_sha256_hex(hex, data, len);
		free(data);
		json_object_set_new(planned, "sha256", json_string(hex));
		return 0;
	}
	if (iac_value_has_unknown(content)) {
		json_object_set_new(planned, "sha256", iac_value_unknown());
		return 0;
	}
	if (!json_is_string(content)) {
		json_object_set_new(planned, "content", json_string(""));
		content = json_object_get(planned, "content");
	}
	iac_sha256_hex(hex, json_string_value(content), json_string_length(content));
	json_object_set_new(planned, "sha256", json_string(hex));
	return 0;
}

static int file_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	const char *path = iac_json_str(prior, "path");
	const char *old_sha = iac_json_str(prior, "sha256");
	iac_host_stat_info st;

	*out = NULL;
	if (iac_ssh_check_path(prior) < 0 || iac_ssh_stat_path(&st, ctx, prior) < 0)
		return IAC_ERR;
	if (!st.exists || !st.is_file)
		return 0;
	*out = json_deep_copy(prior);
	json_object_set_new(*out, "mode", json_string(st.mode));
	json_object_set_new(*out, "sha256", json_string(st.sha256));
	if (json_object_get(prior, "owner"))
		json_object_set_new(*out, "owner", json_string(st.owner));
	if (json_object_get(prior, "group"))
		json_object_set_new(*out, "group", json_string(st.group));
	if (old_sha && strcmp(old_sha, st.sha256) && json_is_string(json_object_get(prior, "content")) &&
	    st.size <= DIFF_MAX) {
		/* drift: fetch the text so the plan can show what changed (a
		 * file that cannot be read just shows no diff) */
		char *text = NULL;
		size_t len = 0;
		if (iac_host_read(&text, &len, ctx->hosts, json_object_get(prior, "host"), path, DIFF_MAX,
				  iac_ssh_timeout(ctx), ctx->cancel) == 0 &&
		    memchr(text, '\0', len) == NULL) {
			json_t *j = json_stringn(text, len);   /* NULL unless UTF-8 */
			if (j)
				json_object_set_new(*out, "content", j);
		}
		free(text);
	}
	return 0;
}

static char *owner_spec(const json_t *attrs)
{
	const char *o = iac_json_str(attrs, "owner");
	const char *g = iac_json_str(attrs, "group");
	if (!o && !g)
		return NULL;
	return iac_xasprintf("%s%s%s", o ? o : "", g ? ":" : "", g ? g : "");
}

/* Write over stdin: one round trip. `install` copies stdin to a temp file
 * with mode and owner in one go; `mv -T` renames it over the target (and
 * refuses to drop it inside a directory of that name). */
static int write_exec(const iac_rctx *ctx, iac_ssh_conn *c, const char *path, const char *mode,
		      const char *owner, const char *group, const char *data, size_t len)
{
	char *qp = iac_ssh_quote(path);
	char *dir = iac_xstrdup(path);
	char *slash = strrchr(dir, '/');
	iac_buf cmd = IAC_BUF_INIT, shown = IAC_BUF_INIT;
	iac_ssh_result res;
	int rc;

	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	char *qd = iac_ssh_quote(dir);
	iac_buf_printf(&cmd, "d=%s; t=\"$d/.iac.$$.tmp\"; { [ -d \"$d\" ] || mkdir -p -- \"$d\"; } && "
		       "install -m %s", qd, mode);
	if (owner) {
		char *q = iac_ssh_quote(owner);
		iac_buf_printf(&cmd, " -o %s", q);
		free(q);
	}
	if (group) {
		char *q = iac_ssh_quote(group);
		iac_buf_printf(&cmd, " -g %s", q);
		free(q);
	}
	iac_buf_printf(&cmd, " /dev/stdin \"$t\" && mv -fT -- \"$t\" %s || { rm -f -- \"$t\"; exit 1; }", qp);
	iac_buf_printf(&shown, "write %s (%zu bytes, mode %s)", path, len, mode);
	rc = iac_ssh_run_ok(&res, ctx, c, "writing a file", iac_buf_cstr(&cmd), iac_buf_cstr(&shown), data,
			    len, iac_ssh_timeout(ctx));
	iac_ssh_result_free(&res);
	iac_buf_free(&cmd);
	iac_buf_free(&shown);
	free(qp);
	free(qd);
	free(dir);
	return rc;
}

/* Write over SFTP to a temp name, then chmod/chown/rename in one command. */
static int write_sftp(const iac_rctx *ctx, iac_ssh_conn *c, const char *path, const char *mode,
		      const char *owner, const char *group, const char *data, size_t len)
{
	static unsigned long seq;
	char *dir = iac_xstrdup(path);
	char *slash = strrchr(dir, '/');
	char *tmp, *qt, *qp, *qd;
	iac_buf cmd = IAC_BUF_INIT;
	iac_ssh_result res;
	int rc;

	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	tmp = iac_xasprintf("%s/.iac.%lu.%lx.tmp", strcmp(dir, "/") ? dir : "",
			    __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED), (unsigned long)iac_now_us());
	qt = iac_ssh_quote(tmp);
	qp = iac_ssh_quote(path);
	qd = iac_ssh_quote(dir);
	rc = iac_ssh_sftp_write(c, tmp, data, len, 0600, iac_ssh_timeout(ctx), ctx->cancel);
	if (rc == IAC_ENOTFOUND) {
		char *mk = iac_xasprintf("mkdir -p -- %s", qd);
		rc = iac_ssh_run_ok(&res, ctx, c, "making a directory", mk, NULL, NULL, 0, iac_ssh_timeout(ctx));
		iac_ssh_result_free(&res);
		free(mk);
		if (rc == 0)
			rc = iac_ssh_sftp_write(c, tmp, data, len, 0600, iac_ssh_timeout(ctx), ctx->cancel);
	}
	if (rc != 0) {
		rc = IAC_ERR;
		goto done;
	}
	iac_buf_printf(&cmd, "chmod %s %s", mode, qt);
	if (owner || group) {
		char *spec = iac_xasprintf("%s%s%s", owner ? owner : "", group ? ":" : "", group ? group : "");
		char *q = iac_ssh_quote(spec);
		iac_buf_printf(&cmd, " && chown -- %s %s", q, qt);
		free(q);
		free(spec);
	}
	iac_buf_printf(&cmd, " && mv -fT -- %s %s || { rm -f -- %s; exit 1; }", qt, qp, qt);
	rc = iac_ssh_run_ok(&res, ctx, c, "writing a file", iac_buf_cstr(&cmd), NULL, NULL, 0, iac_ssh_timeout(ctx));
	iac_ssh_result_free(&res);
done:
	iac_buf_free(&cmd);
	free(tmp);
	free(qt);
	free(qp);
	free(qd);
	free(dir);
	return rc;
}

static int file_write(const iac_rctx *ctx, json_t **out, const json_t *planned, int meta_only)
{
	const char *path = iac_json_str(planned, "path");
	const char *owner = iac_json_str(planned, "owner");
	const char *group = iac_json_str(planned, "group");
	iac_ssh_pdata *pd = ctx->pdata;
	const char *data;
	char *owned = NULL, mode[8], hex[65];
	size_t len;
	iac_ssh_conn *c;
	int rc = IAC_ERR;

	if (iac_ssh_check_path(planned) < 0 || iac_host_mode_norm(mode, json_object_get(planned, "mode"), "0644") < 0)
		return IAC_ERR;
	if (iac_ssh_host_conn(&c, ctx, planned) < 0)
		return IAC_ERR;
	if (wanted(ctx, planned, &data, &len, &owned) < 0)
		return IAC_ERR;
	iac_sha256_hex(hex, data, len);
	if (meta_only) {
		iac_buf cmd = IAC_BUF_INIT;
		iac_ssh_result res;
		char *qp = iac_ssh_quote(path);
		char *spec = owner_spec(planned);
		iac_buf_printf(&cmd, "chmod %s %s", mode, qp);
		if (spec) {
			char *q = iac_ssh_quote(spec);
			iac_buf_printf(&cmd, " && chown -- %s %s", q, qp);
			free(q);
		}
		rc = iac_ssh_run_ok(&res, ctx, c, "changing a file's mode", iac_buf_cstr(&cmd), NULL, NULL,
				    0, iac_ssh_timeout(ctx));
		iac_ssh_result_free(&res);
		iac_buf_free(&cmd);
		free(spec);
		free(qp);
	} else if (pd->use_sftp) {
		rc = write_sftp(ctx, c, path, mode, owner, group, data, len);
	} else {
		rc = write_exec(ctx, c, path, mode, owner, group, data, len);
	}
	if (rc == 0) {
		*out = json_deep_copy(planned);
		json_object_set_new(*out, "mode", json_string(mode));
		json_object_set_new(*out, "sha256", json_string(hex));
	}
	free(owned);
	return rc;
}

/* Before the first write: a file already there that iac did not make is
 * kept beside it (unless backup = false). 1 when it was kept (now or by an
 * earlier, interrupted create), 0 when there was none. */
static int keep_original(int *kept, const iac_rctx *ctx, const json_t *planned)
{
	iac_ssh_conn *c;
	iac_ssh_result res;
	*kept = 0;
	if (json_is_false(json_object_get(planned, "backup")))
		return 0;
	if (iac_ssh_host_conn(&c, ctx, planned) < 0)
		return IAC_ERR;
	char *orig = iac_xasprintf("%s" ORIG_SUFFIX, iac_json_str(planned, "path"));
	char *qp = iac_ssh_quote(iac_json_str(planned, "path")), *qo = iac_ssh_quote(orig);
	char *cmd = iac_xasprintf("if [ -e %s ]; then echo kept; elif [ -f %s ]; then cp -p -- %s %s && echo kept; fi",
				  qo, qp, qp, qo);
	int rc = iac_ssh_run_ok(&res, ctx, c, "keeping the original file", cmd, NULL, NULL, 0, iac_ssh_timeout(ctx));
	if (rc == 0)
		*kept = res.out_len >= 4 && !strncmp(res.out, "kept", 4);
	iac_ssh_result_free(&res);
	free(cmd);
	free(qp);
	free(qo);
	free(orig);
	return rc;
}

static int file_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	int kept;
	if (iac_ssh_check_path(planned) < 0 || keep_original(&kept, ctx, planned) < 0 ||
	    file_write(ctx, out, planned, 0) < 0)
		return IAC_ERR;
	json_object_del(*out, "takes_over");
	json_object_set_new(*out, "original", kept ? json_sprintf("%s" ORIG_SUFFIX, iac_json_str(planned, "path"))
					 : json_null());
	return 0;
}

static int file_remove(const iac_rctx *ctx, const json_t *prior)
{
	iac_ssh_conn *c;
	iac_ssh_result res;
	int rc;

	if (iac_ssh_check_path(prior) < 0 || iac_ssh_host_conn(&c, ctx, prior) < 0)
		return IAC_ERR;
	char *q = iac_ssh_quote(iac_json_str(prior, "path"));
	const char *orig = iac_json_str(prior, "original");
	char *cmd;
	if (orig) {
		/* put back what was there before iac took the file over */
		char *qo = iac_ssh_quote(orig);
		cmd = iac_xasprintf("if [ -e %s ]; then mv -fT -- %s %s; else rm -f -- %s; fi", qo, qo, q, q);
		free(qo);
	} else {
		cmd = iac_xasprintf("rm -f -- %s", q);
	}
	rc = iac_ssh_run_ok(&res, ctx, c, orig ? "restoring the original file" : "removing a file", cmd, NULL, NULL, 0,
			    iac_ssh_timeout(ctx));
	iac_ssh_result_free(&res);
	free(cmd);
	free(q);
	return rc;
}

static int file_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	const json_t *ph = json_object_get(prior, "host"), *nh = json_object_get(planned, "host");
	if (!iac_host_same(ph, nh)) {
		/* the file moves to another host: make it there, then remove it here */
		if (file_write(ctx, out, planned, 0) < 0)
			return IAC_ERR;
		if (file_remove(ctx, prior) < 0) {
			json_decref(*out);
			*out = NULL;
			return IAC_ERR;
		}
		return 0;
	}
	const char *ps = iac_json_str(prior, "sha256");
	const char *ns = iac_json_str(planned, "sha256");
	return file_write(ctx, out, planned, ps && ns && !strcmp(ps, ns));
}

const iac_rtype iac_ssh_file_type = {
	.import_attr = "path",
	.name = "ssh.file",
	.attrs = file_attrs,
	.doc = "a file on a host: content or a local source, mode and owner; written atomically",
	.plan = file_plan,
	.read = file_read,
	.create = file_create,
	.update = file_update,
	.remove = file_remove,
	.probe = iac_ssh_probe,
};
