/* ssh.package: a Debian package on a host, present (optionally at a pinned
 * version) while the resource exists, removed on destroy. Requests for one
 * host that arrive together become one apt-get run (iac_hosts_batch group
 * commit): apt takes dpkg's lock anyway, so runs on one host are serial.
 * `deb` installs from a .deb file shipped with the configuration, for hosts
 * without a reachable repository. */
#include "providers/ssh/ssh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"

static const iac_attr pkg_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the host" },
	{ "name", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "package name" },
	{ "version", IAC_T_STRING, 0, "pinned version (default: whatever apt installs, then left alone)" },
	{ "deb", IAC_T_STRING, 0, "a local .deb file to install from (relative: to the configuration)" },
	{ "purge", IAC_T_BOOL, IAC_A_NO_DIFF, "destroy purges the package's configuration too" },
	{ NULL, 0, 0, NULL },
};

static int pkg_name_ok(const char *s)
{
	if (!s || !*s || !((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '+' || *s == '-' || *s == '.'))
			return 0;
	return 1;
}

static int pkg_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	(void)ctx;
	(void)prior;
	const char *n = iac_json_str(planned, "name"), *v = iac_json_str(planned, "version");
	if (n && !pkg_name_ok(n))
		return iac_err_set("attribute 'name': '%s' is not a Debian package name", n);
	if (v && strpbrk(v, " \t\n'\"\\;$`"))
		return iac_err_set("attribute 'version': '%s' is not a package version", v);
	return 0;
}

static int pkg_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	iac_ssh_conn *c;
	iac_ssh_result res;
	*out = NULL;
	if (iac_ssh_host_conn(&c, ctx, prior) < 0)
		return IAC_ERR;
	char *q = iac_ssh_quote(iac_json_str(prior, "name") ?: "");
	char *cmd = iac_xasprintf("dpkg-query -W -f='${db:Status-Status} ${Version}\\n' %s 2>/dev/null; exit 0", q);
	int rc = iac_ssh_run_ok(&res, ctx, c, "reading a package", cmd, NULL, NULL, 0, iac_ssh_timeout(ctx));
	if (rc == 0 && res.out_len > 10 && !strncmp(res.out, "installed ", 10)) {
		char ver[256];
		snprintf(ver, sizeof(ver), "%.*s", (int)strcspn(res.out + 10, "\n"), res.out + 10);
		*out = json_deep_copy(prior);
		if (json_object_get(prior, "version"))
			json_object_set_new(*out, "version", json_string(ver));
	}
	iac_ssh_result_free(&res);
	free(cmd);
	free(q);
	return rc;
}

typedef struct {
	const json_t *attrs;
	int remove;
	int rc;
	char *err;
} pkg_req;

/* One apt-get run for every request of the batch (all installs, or all
 * removals: a batch holds one kind). */
static void run_batch(const iac_rctx *ctx, iac_ssh_conn *c, void **items, size_t n)
{
	pkg_req **reqs = (pkg_req **)items;
	iac_buf cmd = IAC_BUF_INIT;
	iac_ssh_result res;
	int remove = reqs[0]->remove;
	iac_buf_printf(&cmd, "export DEBIAN_FRONTEND=noninteractive; apt-get %s -y -q --no-install-recommends",
		       remove ? (json_is_true(json_object_get(reqs[0]->attrs, "purge")) ? "purge" : "remove") : "install");
	if (!remove)
		iac_buf_puts(&cmd, " --allow-downgrades");
	for (size_t i = 0; i < n; i++) {
		const char *name = iac_json_str(reqs[i]->attrs, "name"), *ver = iac_json_str(reqs[i]->attrs, "version");
		char *arg = remove ? iac_xstrdup(name)
			: iac_json_str(reqs[i]->attrs, "deb") ? iac_xasprintf("/var/cache/iac/debs/%s.deb", name)
			: ver ? iac_xasprintf("%s=%s", name, ver) : iac_xstrdup(name);
		char *q = iac_ssh_quote(arg);
		iac_buf_printf(&cmd, " %s", q);
		free(q);
		free(arg);
	}
	int rc = iac_ssh_run_ok(&res, ctx, c, remove ? "removing packages" : "installing packages", iac_buf_cstr(&cmd),
				NULL, NULL, 0, 600e3);
	for (size_t i = 0; i < n; i++) {
		reqs[i]->rc = rc;
		reqs[i]->err = rc < 0 ? iac_xstrdup(iac_err_last()) : NULL;
	}
	iac_ssh_result_free(&res);
	iac_buf_free(&cmd);
}

/* A .deb from the configuration goes to the host's cache first. */
static int upload_deb(const iac_rctx *ctx, iac_ssh_conn *c, const json_t *attrs)
{
	const char *deb = iac_json_str(attrs, "deb");
	char *path = iac_path_join(ctx->config_dir, deb), *data = NULL;
	size_t len;
	iac_ssh_result res;
	int rc = iac_file_read(&data, &len, path);
	free(path);
	if (rc < 0)
		return iac_err_set("attribute 'deb': %s", iac_err_last());
	char *q = iac_ssh_quote(iac_json_str(attrs, "name"));
	char *cmd = iac_xasprintf("install -D -m 0644 /dev/stdin /var/cache/iac/debs/%s.deb", q);
	rc = iac_ssh_run_ok(&res, ctx, c, "copying a package", cmd, "copy the .deb", data, len, iac_ssh_timeout(ctx));
	iac_ssh_result_free(&res);
	free(cmd);
	free(q);
	free(data);
	return rc;
}

static int batched(const iac_rctx *ctx, const json_t *attrs, int remove)
{
	iac_ssh_conn *c;
	pkg_req req = { .attrs = attrs, .remove = remove };
	if (iac_ssh_host_conn(&c, ctx, attrs) < 0)
		return IAC_ERR;
	if (!remove && iac_json_str(attrs, "deb") && upload_deb(ctx, c, attrs) < 0)
		return IAC_ERR;
	iac_ssh_batch(ctx, c, remove ? "apt-remove" : "apt-install", run_batch, &req);
	if (req.rc < 0) {
		iac_err_set("%s", req.err ? req.err : "apt-get failed");
		free(req.err);
		return IAC_ERR;
	}
	return 0;
}

static int pkg_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	if (batched(ctx, planned, 0) < 0)
		return IAC_ERR;
	return pkg_read(ctx, out, planned) < 0 ? IAC_ERR
	       : *out ? 0 : iac_err_set("apt-get succeeded but '%s' is not installed", iac_json_str(planned, "name"));
}

static int pkg_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	(void)prior;
	return pkg_create(ctx, out, planned);
}

static int pkg_remove(const iac_rctx *ctx, const json_t *prior)
{
	return batched(ctx, prior, 1);
}

const iac_rtype iac_ssh_package_type = {
	.name = "ssh.package",
	.attrs = pkg_attrs,
	.doc = "a Debian package on a host (apt), optionally pinned or from a .deb; one apt run per host batch",
	.plan = pkg_plan,
	.read = pkg_read,
	.create = pkg_create,
	.update = pkg_update,
	.remove = pkg_remove,
	.probe = iac_ssh_probe,
	.import_attr = "name",
	.gone_reason = "not installed",
};
