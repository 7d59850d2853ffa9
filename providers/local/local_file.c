/* local.file: a file on this machine with content and mode; sha256 is
 * computed. Replaced atomically (temp + rename: never seen half-written);
 * not fsync'd, because a file lost to a power cut is noticed and rewritten
 * by the next refresh, and 10,000 fsyncs would dominate an apply. */
#include "providers/local/local.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iac/core/base64.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/host/host.h"

static const iac_attr file_attrs[] = {
	{ "path", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "where the file lives (relative: to the configuration directory)" },
	{ "content", IAC_T_STRING, 0, "the file's content (UTF-8 text; binary: content_base64 or source)" },
	{ "content_base64", IAC_T_STRING, 0, "the file's bytes as base64 (filebase64(), base64encode())" },
	{ "source", IAC_T_STRING, IAC_A_NO_DIFF, "a local file whose content to use instead of content" },
	{ "mode", IAC_T_STRING, 0, "octal permissions, default \"0644\"" },
	{ "follow_symlinks", IAC_T_BOOL, 0, "when path is a symbolic link, read and write its target "
	  "(default false: a link there is an error, never followed)" },
	{ "sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of the content" },
	{ NULL, 0, 0, NULL },
};

/* What refresh says of a path that is a symbolic link (not followed). */
#define SYMLINK_MARK "(a symbolic link, not followed)"

static char *full_path(const iac_rctx *ctx, const json_t *attrs)
{
	return iac_path_join(ctx->config_dir, iac_json_str(attrs, "path"));
}

/* iac runs as root in shared directories: a link someone planted at the
 * path must not make it read (into state) or replace another file. Links
 * are followed only when the configuration says so. */
static int follows(const json_t *attrs)
{
	return json_is_true(json_object_get(attrs, "follow_symlinks"));
}

/* With follow_symlinks: where the link at path points, resolved; else path. */
static char *write_target(const char *path, const json_t *attrs)
{
	struct stat st;
	if (!follows(attrs) || lstat(path, &st) < 0 || !S_ISLNK(st.st_mode))
		return iac_xstrdup(path);
	char *real = realpath(path, NULL);
	return real ? real : iac_xstrdup(path);
}

/* State and plans hold text: binary content is kept out of them, and a
 * short description with its size and hash stands in its place, so that a
 * binary file changed behind iac's back still shows as a content diff. */
static json_t *text_or_mark(const char *data, size_t len)
{
	json_t *s = json_stringn(data, len);   /* NULL unless UTF-8 */
	if (s)
		return s;
	char hex[65];
	iac_sha256_hex(hex, data, len);
	return json_sprintf("(binary: %zu bytes, sha256 %.12s)", len, hex);
}

/* The content to write: `content`, the decoded `content_base64`, or the
 * bytes of `source`. */
static int wanted_content(const iac_rctx *ctx, const json_t *planned, char **out, size_t *len)
{
	const json_t *src = json_object_get(planned, "source");
	const json_t *b64 = json_object_get(planned, "content_base64");
	if (json_is_string(src)) {
		char *p = iac_path_join(ctx->config_dir, json_string_value(src));
		int rc = iac_file_read(out, len, p);
		free(p);
		return rc < 0 ? IAC_ERR : 0;
	}
	if (json_is_string(b64)) {
		if (iac_base64_decode(out, len, json_string_value(b64), json_string_length(b64)) < 0)
			return iac_err_set("attribute 'content_base64': %s", iac_err_last());
		return 0;
	}
	const json_t *c = json_object_get(planned, "content");
	*out = iac_xstrndup(json_is_string(c) ? json_string_value(c) : "",
			    json_is_string(c) ? json_string_length(c) : 0);
	*len = json_is_string(c) ? json_string_length(c) : 0;
	return 0;
}

static int file_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	char mode[8], hex[65];
	const json_t *c = json_object_get(planned, "content");

	if (!strcmp(iac_json_str(prior, "sha256") ?: "", SYMLINK_MARK) && !follows(planned))
		return iac_err_set("'%s' is a symbolic link; iac does not write through links (remove the link, "
				   "or set follow_symlinks = true to manage the file it points to)",
				   iac_json_str(planned, "path") ?: "?");
	if (!iac_value_is_unknown(json_object_get(planned, "mode"))) {
		if (iac_host_mode_norm(mode, json_object_get(planned, "mode"), "0644") < 0)
			return IAC_ERR;
		json_object_set_new(planned, "mode", json_string(mode));
	}
	int given = !!json_object_get(planned, "source") + !!json_object_get(planned, "content") +
		    !!json_object_get(planned, "content_base64");
	if (given > 1)
		return iac_err_set("set one of 'content', 'content_base64' or 'source', not more");
	const json_t *b64 = json_object_get(planned, "content_base64");
	if (iac_value_has_unknown(b64)) {
		json_object_set_new(planned, "sha256", iac_value_unknown());
	} else if (json_is_string(json_object_get(planned, "source")) || json_is_string(b64)) {
		char *data;
		size_t len;
		if (wanted_content(ctx, planned, &data, &len) < 0)
			return IAC_ERR;
		iac_sha256_hex(hex, data, len);
		json_object_set_new(planned, "content", text_or_mark(data, len));
		free(data);
		json_object_set_new(planned, "sha256", json_string(hex));
	} else if (iac_value_has_unknown(c)) {
		json_object_set_new(planned, "sha256", iac_value_unknown());
	} else {
		if (!c)
			json_object_set_new(planned, "content", json_string(""));
		c = json_object_get(planned, "content");
		iac_sha256_hex(hex, json_string_value(c), json_string_length(c));
		json_object_set_new(planned, "sha256", json_string(hex));
	}
	return 0;
}

static int file_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	char *path = full_path(ctx, prior), *data = NULL, hex[65], mode[8];
	struct stat st;
	size_t len;
	int rc;

	*out = NULL;
	struct stat lst;
	if (!follows(prior) && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
		/* never read through a link into state; say what is there, so
		 * the plan can refuse it (or follow it, if the config says so) */
		*out = json_copy((json_t *)prior);
		json_object_set_new(*out, "content", json_null());
		json_object_set_new(*out, "sha256", json_string(SYMLINK_MARK));
		free(path);
		return 0;
	}
	rc = iac_file_read_flags(&data, &len, &st, path, follows(prior) ? 0 : O_NOFOLLOW);
	if (rc == IAC_ENOTFOUND) {
		free(path);
		return 0;
	}
	if (rc < 0) {
		free(data);
		free(path);
		return IAC_ERR;
	}
	iac_sha256_hex(hex, data, len);
	snprintf(mode, sizeof(mode), "%04o", (unsigned)(st.st_mode & 07777));
	*out = json_copy((json_t *)prior);
	json_object_set_new(*out, "content", text_or_mark(data, len));
	json_object_set_new(*out, "mode", json_string(mode));
	json_object_set_new(*out, "sha256", json_string(hex));
	free(data);
	free(path);
	return 0;
}

static int file_write(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	char *path = full_path(ctx, planned), *data = NULL, *dir = NULL, hex[65], mode[8];
	size_t len;
	int rc = IAC_ERR;

	if (iac_host_mode_norm(mode, json_object_get(planned, "mode"), "0644") < 0)
		goto done;
	if (wanted_content(ctx, planned, &data, &len) < 0)
		goto done;
	dir = iac_xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (iac_mkdir_p(dir, 0755) < 0)
			goto done;
	}
	struct stat lst;
	if (!follows(planned) && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
		iac_err_set("'%s' is a symbolic link; iac does not write through links (remove the link, or set "
			    "follow_symlinks = true to write the file it points to)", path);
		goto done;
	}
	char *target = write_target(path, planned);
	int wrc = iac_file_replace(target, data, len, (mode_t)strtoul(mode, NULL, 8));
	free(target);
	if (wrc < 0)
		goto done;
	iac_sha256_hex(hex, data, len);
	*out = json_deep_copy(planned);
	json_object_set_new(*out, "content", text_or_mark(data, len));
	json_object_set_new(*out, "mode", json_string(mode));
	json_object_set_new(*out, "sha256", json_string(hex));
	rc = 0;
done:
	free(path);
	free(data);
	free(dir);
	return rc;
}

static int file_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	return file_write(ctx, out, planned);
}

static int file_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	return file_write(ctx, out, planned);
}

static int file_remove(const iac_rctx *ctx, const json_t *prior)
{
	char *path = full_path(ctx, prior);
	int rc = 0;
	if (unlink(path) < 0 && errno != ENOENT)
		rc = iac_err_sys("cannot remove '%s'", path);
	free(path);
	return rc;
}

const iac_rtype iac_local_file = {
	.import_attr = "path",
	.name = "local.file",
	.attrs = file_attrs,
	.doc = "a file on the machine running iac",
	.plan = file_plan,
	.read = file_read,
	.create = file_create,
	.update = file_update,
	.remove = file_remove,
};
