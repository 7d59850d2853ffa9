/* flags_res: flags.file and flags.etcd (see flags_res.h). */
#include "providers/flags/flags_res.h"
#include "providers/flags/flagops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/etcd/etcd.h"
#include "iac/flags/flags.h"
#include "iac/host/host.h"

static const iac_attr file_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_FORCE_NEW, "host to write to (default: this machine)" },
	{ "path", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "flagd JSON file" },
	{ "flags", IAC_T_MAP, IAC_A_REQUIRED, "flag name -> declaration" },
	{ "overrides", IAC_T_MAP, IAC_A_COMPUTED, "live values set by 'iac flag set'" },
	{ "sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of the delivered document" },
	{ NULL, 0, 0, NULL },
};

static const iac_attr etcd_attrs[] = {
	{ "endpoints", IAC_T_STRING, IAC_A_REQUIRED, "etcd endpoints, comma separated" },
	{ "key", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "key holding the flagd JSON" },
	{ "flags", IAC_T_MAP, IAC_A_REQUIRED, "flag name -> declaration" },
	{ "overrides", IAC_T_MAP, IAC_A_COMPUTED, "live values set by 'iac flag set'" },
	{ "sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of the delivered document" },
	{ NULL, 0, 0, NULL },
};

json_t *iac_prov_flags_effective(const json_t *attrs)
{
	json_t *out = json_deep_copy(json_object_get(attrs, "flags")), *o;
	const char *k;
	if (!out)
		out = json_object();
	json_object_foreach(json_object_get(attrs, "overrides"), k, o)
		if (json_object_get(out, k) && json_is_object(json_object_get(o, "spec")))
			json_object_set(out, k, json_object_get(o, "spec"));
	return out;
}

static int render(char **out, const json_t *attrs)
{
	json_t *eff = iac_prov_flags_effective(attrs), *doc = NULL;
	int rc = iac_flags_to_flagd(&doc, eff);
	json_decref(eff);
	if (rc < 0)
		return IAC_ERR;
	*out = iac_flags_dump(doc);
	json_decref(doc);
	return 0;
}

int iac_prov_flags_deliver(char out_sha[65], const iac_rctx *ctx, const char *type, const json_t *attrs)
{
	char *text = NULL;
	int rc;
	if (render(&text, attrs) < 0)
		return IAC_ERR;
	iac_sha256_hex(out_sha, text, strlen(text));
	if (!strcmp(type, "flags.etcd")) {
		iac_etcd *e = NULL;
		rc = iac_etcd_open(&e, iac_json_str(attrs, "endpoints"), 5000);
		if (rc == 0)
			rc = iac_etcd_put(e, iac_json_str(attrs, "key"), text, strlen(text), 0);
		iac_etcd_close(e);
	} else {
		rc = iac_host_write(ctx->hosts, json_object_get(attrs, "host"), iac_json_str(attrs, "path"), text, strlen(text), "0644", ctx->cancel);
	}
	free(text);
	return rc;
}

/* Keep overrides whose flag declaration did not change since they were
 * set; say so in the plan. Drop the others (the declaration was edited:
 * the person who edited it decided). */
static json_t *carry_overrides(const iac_rctx *ctx, const json_t *planned, const json_t *prior)
{
	json_t *keep = json_object(), *o;
	const char *k;
	json_object_foreach(json_object_get(prior, "overrides"), k, o) {
		json_t *now = json_object_get(json_object_get(planned, "flags"), k);
		json_t *then = json_object_get(o, "declared");
		char msg[512];
		if (now && then && iac_value_equal(now, then)) {
			json_object_set(keep, k, o);
			if (ctx->warn) {
				json_t *cur = NULL, *live = NULL, *fd;
				iac_buf a = IAC_BUF_INIT, b = IAC_BUF_INIT;
				if (iac_flags_spec_to_flagd(&fd, k, now) == 0) {
					iac_flags_render(&a, fd);
					json_decref(fd);
				}
				if (iac_flags_spec_to_flagd(&fd, k, json_object_get(o, "spec")) == 0) {
					iac_flags_render(&b, fd);
					json_decref(fd);
				}
				snprintf(msg, sizeof(msg), "flag '%s' was set live to [%s] by 'iac flag set' (%s); main.lua "
					 "says [%s]. Keeping the live value; 'iac flag reset %s' goes back to main.lua",
					 k, iac_buf_cstr(&b), iac_json_str(o, "at") ?: "?",
					 iac_buf_cstr(&a), k);
				ctx->warn(ctx, msg);
				iac_buf_free(&a);
				iac_buf_free(&b);
				json_decref(cur);
				json_decref(live);
			}
		} else if (now && ctx->warn) {
			snprintf(msg, sizeof(msg), "flag '%s': main.lua changed since 'iac flag set' changed it live; "
				 "apply delivers main.lua's value", k);
			ctx->warn(ctx, msg);
		}
	}
	return keep;
}

static int flags_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	json_t *doc = NULL;
	char *text = NULL, hex[65];
	if (iac_value_has_unknown(planned))
		return 0;
	/* validate every declaration now: errors name flag and attribute */
	if (iac_flags_to_flagd(&doc, json_object_get(planned, "flags")) < 0)
		return IAC_ERR;
	json_decref(doc);
	json_object_set_new(planned, "overrides", prior ? carry_overrides(ctx, planned, prior) : json_object());
	if (render(&text, planned) < 0)
		return IAC_ERR;
	iac_sha256_hex(hex, text, strlen(text));
	free(text);
	json_object_set_new(planned, "sha256", json_string(hex));
	return 0;
}

static int flags_write(const iac_rctx *ctx, json_t **out, const json_t *planned, const char *type)
{
	char hex[65];
	json_t *attrs = json_copy((json_t *)planned);
	if (!json_is_object(json_object_get(attrs, "overrides")))
		json_object_set_new(attrs, "overrides", json_object());
	if (iac_prov_flags_deliver(hex, ctx, type, attrs) < 0) {
		json_decref(attrs);
		return IAC_ERR;
	}
	json_object_set_new(attrs, "sha256", json_string(hex));
	*out = attrs;
	return 0;
}

static int file_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	return flags_write(ctx, out, planned, "flags.file");
}

static int file_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	return flags_write(ctx, out, planned, "flags.file");
}

/* A file changed by hand reads as a different declaration, so the next
 * plan rewrites it. */
static json_t *drifted(const json_t *prior)
{
	json_t *out = json_copy((json_t *)prior);
	json_object_set_new(out, "flags", json_pack("{s:s}", "(changed outside iac)", "see the file"));
	return out;
}

static int file_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	const json_t *host = json_object_get(prior, "host");
	const char *path = iac_json_str(prior, "path");
	char *full = iac_host_is_remote(host) ? iac_xstrdup(path) : iac_path_join(ctx->config_dir, path);
	char *cmd = iac_xasprintf("sha256sum '%s' 2>/dev/null | cut -d' ' -f1", full), *sum = NULL;
	int rc = iac_host_run(&sum, ctx->hosts, host, cmd, 10e3, ctx->cancel);
	free(cmd);
	free(full);
	*out = NULL;
	if (rc < 0) {
		free(sum);
		return IAC_ERR;
	}
	size_t n = sum ? strlen(sum) : 0;
	while (n && (sum[n - 1] == '\n' || sum[n - 1] == ' '))
		sum[--n] = '\0';
	if (n == 64)
		*out = strcmp(sum, iac_json_str(prior, "sha256") ?: "") ? drifted(prior)
											       : json_copy((json_t *)prior);
	free(sum);
	return 0;
}

static int file_remove(const iac_rctx *ctx, const json_t *prior)
{
	const json_t *host = json_object_get(prior, "host");
	const char *path = iac_json_str(prior, "path");
	char *full = iac_host_is_remote(host) ? iac_xstrdup(path) : iac_path_join(ctx->config_dir, path);
	char *cmd = iac_xasprintf("rm -f '%s'", full);
	int rc = iac_host_run(NULL, ctx->hosts, host, cmd, 10e3, ctx->cancel);
	free(cmd);
	free(full);
	return rc;
}

static int etcd_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	return flags_write(ctx, out, planned, "flags.etcd");
}

static int etcd_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	return flags_write(ctx, out, planned, "flags.etcd");
}

static int etcd_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	char hex[65];
	*out = NULL;
	int rc = iac_etcd_value_sha256(hex, iac_json_str(prior, "endpoints"), iac_json_str(prior, "key"));
	if (rc == IAC_ENOTFOUND)
		return 0;
	if (rc < 0)
		return IAC_ERR;
	*out = strcmp(hex, iac_json_str(prior, "sha256") ?: "") ? drifted(prior)
										       : json_copy((json_t *)prior);
	return 0;
}

static int etcd_remove(const iac_rctx *ctx, const json_t *prior)
{
	iac_etcd *e = NULL;
	int64_t n = 0;
	int rc = iac_etcd_open(&e, iac_json_str(prior, "endpoints"), 5000);
	if (rc == 0)
		rc = iac_etcd_delete(&n, e, iac_json_str(prior, "key"), 0);
	iac_etcd_close(e);
	return rc == IAC_ENOTFOUND ? 0 : rc;
}

const iac_rtype iac_prov_flags_file_type = {
	.name = "flags.file",
	.attrs = file_attrs,
	.doc = "feature flags as a flagd JSON file on a host",
	.plan = flags_plan,
	.read = file_read,
	.create = file_create,
	.update = file_update,
	.remove = file_remove,
};

const iac_rtype iac_prov_flags_etcd_type = {
	.name = "flags.etcd",
	.attrs = etcd_attrs,
	.doc = "feature flags as flagd JSON in an etcd key",
	.plan = flags_plan,
	.read = etcd_read,
	.create = etcd_create,
	.update = etcd_update,
	.remove = etcd_remove,
};

static const iac_rtype *const flag_types[] = { &iac_prov_flags_file_type, &iac_prov_flags_etcd_type, NULL };

static const iac_provider_command flag_commands[] = {
	{ "flag", iac_prov_flags_cmd, "list, set or reset feature flags live", iac_prov_flags_cmd_help },
	{ NULL, NULL, NULL, NULL },
};

static const iac_provider_op flag_ops[] = {
	{ "set", iac_flagops_op_set },
	{ NULL, NULL },
};

const iac_provider iac_provider_flags = {
	.name = "flags",
	.types = flag_types,
	.commands = flag_commands,
	.ops = flag_ops,
	.prelude = "prelude/flags.lua",
	.finalize = iac_prov_flags_decl_finalize,
};
