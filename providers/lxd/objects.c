/* objects: lxd.profile, lxd.network and lxd.image.
 *   profiles  POST /1.0/profiles, PUT /1.0/profiles/NAME with If-Match
 *   networks  POST /1.0/networks, PATCH /1.0/networks/NAME with If-Match
 *             (LXD fills keys nobody declared, such as a generated ipv6
 *             address: only declared keys are compared and sent)
 *   images    POST /1.0/images with a unified tarball (metadata.yaml +
 *             rootfs/), an operation; the alias by /1.0/images/aliases */
#include "providers/lxd/lxd.h"

#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"

#define PROVIDER_ATTR { "provider", IAC_T_STRING, IAC_A_NO_DIFF, "which provider \"lxd\" \"NAME\" block serves it (default: the unnamed one)" }

static const iac_attr profile_attrs[] = {
	PROVIDER_ATTR,
	{ "name", IAC_T_STRING, IAC_A_FORCE_NEW, "the profile's name (default: the resource's name)" },
	{ "description", IAC_T_STRING, 0, "free text" },
	{ "config", IAC_T_MAP, 0, "config keys (\"limits.memory\" = \"256MB\")" },
	{ "devices", IAC_T_MAP, 0, "devices by name: { eth0 = { type = \"nic\", network = \"lxdbr0\" } }" },
	{ NULL, 0, 0, NULL },
};

static const iac_attr network_attrs[] = {
	PROVIDER_ATTR,
	{ "name", IAC_T_STRING, IAC_A_FORCE_NEW, "the network's name (default: the resource's name)" },
	{ "type", IAC_T_STRING, IAC_A_FORCE_NEW, "\"bridge\" (default)" },
	{ "description", IAC_T_STRING, 0, "free text" },
	{ "config", IAC_T_MAP, 0, "config keys (\"ipv4.address\" = \"10.216.0.1/24\", \"ipv4.nat\" = false)" },
	{ NULL, 0, 0, NULL },
};

static const iac_attr image_attrs[] = {
	PROVIDER_ATTR,
	{ "file", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_NO_DIFF, "a unified image tarball (metadata.yaml and rootfs/)" },
	{ "alias", IAC_T_STRING, 0, "the alias instances name it by" },
	{ "fingerprint", IAC_T_STRING, IAC_A_FORCE_NEW, "the SHA-256 of the tarball (computed from file)" },
	{ NULL, 0, 0, NULL },
};

/* config and devices maps as strings; every device's values too. */
static int normalize(json_t *planned, int devices)
{
	json_t *cfg = json_object_get(planned, "config");
	if (cfg && !iac_value_has_unknown(cfg)) {
		json_t *s = lxd_config_strings(cfg, "config:");
		if (!s)
			return IAC_ERR;
		json_object_set_new(planned, "config", s);
	}
	json_t *dev = json_object_get(planned, "devices");
	if (devices && dev && !iac_value_has_unknown(dev)) {
		json_t *o = json_object(), *v;
		const char *k;
		json_object_foreach(dev, k, v) {
			char *what = iac_xasprintf("devices.%s:", k);
			json_t *s = json_is_object(v) ? lxd_config_strings(v, what) : NULL;
			if (!json_is_object(v))
				iac_err_set("device '%s' must be a table such as { type = \"nic\", network = \"lxdbr0\" }", k);
			free(what);
			if (!s) {
				json_decref(o);
				return IAC_ERR;
			}
			json_object_set_new(o, k, s);
		}
		json_object_set_new(planned, "devices", o);
	}
	return 0;
}

static int named_plan(const iac_rctx *ctx, json_t *planned, int devices)
{
	lxd_conn *c;
	if (lxd_conn_for(&c, ctx, planned) < 0)
		return IAC_ERR;
	if (!json_object_get(planned, "name")) {
		char *n = lxd_name_of(ctx, planned);
		json_object_set_new(planned, "name", json_string(n));
		free(n);
	}
	return normalize(planned, devices);
}

/* Read KIND/NAME: *obj the metadata (NULL when gone), *etag its ETag. */
static int get_obj(json_t **obj, char **etag, lxd_conn *c, const iac_rctx *ctx, const char *kind, const char *name)
{
	char *path = lxd_path(kind, name);
	iac_http_req rq = { .method = "GET", .path = path };
	int rc = lxd_call(obj, etag, c, &rq, ctx->cancel);
	free(path);
	if (rc == IAC_ENOTFOUND) {
		*obj = NULL;
		return 0;
	}
	return rc;
}

/* PUT or PATCH of body with If-Match: etag. */
static int put_obj(lxd_conn *c, const iac_rctx *ctx, const char *method, const char *kind, const char *name,
		   const json_t *body, const char *etag)
{
	char *path = lxd_path(kind, name);
	char *ifm = etag ? iac_xasprintf("If-Match: %s", etag) : NULL;
	const char *hdr[] = { ifm, NULL };
	iac_http_req rq = { .method = method, .path = path, .json = body, .headers = ifm ? hdr : NULL };
	int rc = lxd_call(NULL, NULL, c, &rq, ctx->cancel);
	if (rc < 0 && strstr(iac_err_last(), "ETag"))
		rc = iac_err_set("%s was changed by someone else while iac updated it (%s); run plan again", name,
				 iac_err_last());
	free(ifm);
	free(path);
	return rc;
}

/* Only the declared keys of a live map, so keys LXD adds are not drift. */
static json_t *declared_only(const json_t *live, const json_t *declared)
{
	json_t *o = json_object(), *v;
	const char *k;
	json_object_foreach((json_t *)declared, k, v)
		if (json_object_get(live, k))
			json_object_set(o, k, json_object_get(live, k));
	return o;
}

/* --- lxd.profile --------------------------------------------------------- */

static int profile_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	(void)prior;
	return named_plan(ctx, planned, 1);
}

static int profile_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	lxd_conn *c;
	json_t *p = NULL;
	*out = NULL;
	if (lxd_conn_for(&c, ctx, prior) < 0)
		return IAC_ERR;
	char *name = lxd_name_of(ctx, prior);
	int rc = get_obj(&p, NULL, c, ctx, "profiles", name);
	if (rc < 0)
		rc = iac_err_set("cannot read profile '%s': %s", name, iac_err_last());
	if (rc == 0 && p) {
		json_t *o = json_deep_copy(prior);
		json_object_del(o, "$interrupted");
		json_object_set_new(o, "name", json_string(name));
		if (json_object_get(prior, "description") || *(iac_json_str(p, "description") ?: ""))
			json_object_set(o, "description", json_object_get(p, "description"));
		json_object_set(o, "config", json_object_get(p, "config"));
		json_object_set(o, "devices", json_object_get(p, "devices"));
		if (!json_object_get(prior, "config") && !json_object_size(json_object_get(p, "config")))
			json_object_del(o, "config");
		if (!json_object_get(prior, "devices") && !json_object_size(json_object_get(p, "devices")))
			json_object_del(o, "devices");
		*out = o;
	}
	json_decref(p);
	free(name);
	return rc;
}

static json_t *profile_body(const json_t *a, const char *name)
{
	json_t *b = json_pack("{s:s,s:s}", "description", iac_json_str(a, "description") ?: "", "name", name);
	json_object_set_new(b, "config", json_is_object(json_object_get(a, "config"))
						 ? json_deep_copy(json_object_get(a, "config")) : json_object());
	json_object_set_new(b, "devices", json_is_object(json_object_get(a, "devices"))
						  ? json_deep_copy(json_object_get(a, "devices")) : json_object());
	return b;
}

static int profile_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	lxd_conn *c;
	if (lxd_conn_for(&c, ctx, planned) < 0)
		return IAC_ERR;
	char *name = lxd_name_of(ctx, planned);
	json_t *body = profile_body(planned, name);
	int rc = lxd_json(NULL, c, "POST", "/1.0/profiles", body, ctx->cancel);
	json_decref(body);
	if (rc < 0)
		rc = iac_err_set("cannot create profile '%s': %s", name, iac_err_last());
	else
		*out = json_deep_copy(planned);
	free(name);
	return rc;
}

static int profile_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	(void)prior;
	lxd_conn *c;
	json_t *p = NULL;
	char *etag = NULL;
	if (lxd_conn_for(&c, ctx, planned) < 0)
		return IAC_ERR;
	char *name = lxd_name_of(ctx, planned);
	int rc = get_obj(&p, &etag, c, ctx, "profiles", name);
	if (rc == 0 && !p)
		rc = iac_err_set("it is gone");
	json_t *body = profile_body(planned, name);
	json_object_del(body, "name");
	if (rc == 0)
		rc = put_obj(c, ctx, "PUT", "profiles", name, body, etag);
	json_decref(body);
	if (rc < 0)
		rc = iac_err_set("cannot update profile '%s': %s", name, iac_err_last());
	else
		*out = json_deep_copy(planned);
	json_decref(p);
	free(etag);
	free(name);
	return rc;
}

static int simple_remove(const iac_rctx *ctx, const json_t *prior, const char *kind, const char *what)
{
	lxd_conn *c;
	if (lxd_conn_for(&c, ctx, prior) < 0)
		return IAC_ERR;
	char *name = lxd_name_of(ctx, prior);
	char *path = lxd_path(kind, name);
	int rc = lxd_deleted(lxd_json(NULL, c, "DELETE", path, NULL, ctx->cancel), what, name);
	free(path);
	free(name);
	return rc;
}

static int profile_remove(const iac_rctx *ctx, const json_t *prior)
{
	return simple_remove(ctx, prior, "profiles", "profile");
}

/* --- lxd.network --------------------------------------------------------- */

static int network_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	(void)prior;
	if (!json_object_get(planned, "type"))
		json_object_set_new(planned, "type", json_string("bridge"));
	return named_plan(ctx, planned, 0);
}

static int network_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	lxd_conn *c;
	json_t *n = NULL;
	*out = NULL;
	if (lxd_conn_for(&c, ctx, prior) < 0)
		return IAC_ERR;
	char *name = lxd_name_of(ctx, prior);
	int rc = get_obj(&n, NULL, c, ctx, "networks", name);
	if (rc < 0)
		rc = iac_err_set("cannot read network '%s': %s", name, iac_err_last());
	if (rc == 0 && n) {
		json_t *o = json_deep_copy(prior);
		json_object_del(o, "$interrupted");
		json_object_set_new(o, "name", json_string(name));
		json_object_set(o, "type", json_object_get(n, "type"));
		if (json_object_get(prior, "description") || *(iac_json_str(n, "description") ?: ""))
			json_object_set(o, "description", json_object_get(n, "description"));
		if (json_is_object(json_object_get(prior, "config")))
			json_object_set_new(o, "config", declared_only(json_object_get(n, "config"),
								       json_object_get(prior, "config")));
		*out = o;
	}
	json_decref(n);
	free(name);
	return rc;
}

static int network_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	lxd_conn *c;
	if (lxd_conn_for(&c, ctx, planned) < 0)
		return IAC_ERR;
	char *name = lxd_name_of(ctx, planned);
	json_t *body = json_pack("{s:s,s:s,s:s}", "name", name, "type", iac_json_str(planned, "type") ?: "bridge",
				 "description", iac_json_str(planned, "description") ?: "");
	if (json_is_object(json_object_get(planned, "config")))
		json_object_set(body, "config", json_object_get(planned, "config"));
	int rc = lxd_json(NULL, c, "POST", "/1.0/networks", body, ctx->cancel);
	json_decref(body);
	if (rc < 0)
		rc = iac_err_set("cannot create network '%s': %s", name, iac_err_last());
	else
		*out = json_deep_copy(planned);
	free(name);
	return rc;
}

static int network_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	lxd_conn *c;
	json_t *n = NULL;
	char *etag = NULL;
	if (lxd_conn_for(&c, ctx, planned) < 0)
		return IAC_ERR;
	char *name = lxd_name_of(ctx, planned);
	int rc = get_obj(&n, &etag, c, ctx, "networks", name);
	if (rc == 0 && !n)
		rc = iac_err_set("it is gone");
	if (rc == 0) {
		/* PUT the whole object as read: keys iac declared replaced, keys it
		 * declared before and no longer does removed, LXD's own kept */
		json_t *cfg = json_object_get(n, "config"), *v;
		const char *k;
		json_object_foreach(json_object_get(prior, "config"), k, v)
			if (!json_object_get(json_object_get(planned, "config"), k))
				json_object_del(cfg, k);
		if (json_is_object(json_object_get(planned, "config")))
			json_object_update(cfg, json_object_get(planned, "config"));
		json_t *body = json_pack("{s:s,s:O}", "description", iac_json_str(planned, "description") ?: "",
					 "config", cfg);
		rc = put_obj(c, ctx, "PUT", "networks", name, body, etag);
		json_decref(body);
	}
	if (rc < 0)
		rc = iac_err_set("cannot update network '%s': %s", name, iac_err_last());
	else
		*out = json_deep_copy(planned);
	json_decref(n);
	free(etag);
	free(name);
	return rc;
}

static int network_remove(const iac_rctx *ctx, const json_t *prior)
{
	return simple_remove(ctx, prior, "networks", "network");
}

/* --- lxd.image ----------------------------------------------------------- */

static int image_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	(void)prior;
	lxd_conn *c;
	if (lxd_conn_for(&c, ctx, planned) < 0)
		return IAC_ERR;
	const char *f = iac_json_str(planned, "file");
	if (!f)
		return 0;   /* unknown until something before it is applied */
	char *path = iac_path_join(ctx->config_dir, f), *data = NULL;
	size_t len = 0;
	int rc = iac_file_read(&data, &len, path);
	if (rc < 0 && !ctx->hosts) {
		rc = 0;     /* validate: the tarball may be built later */
	} else if (rc < 0) {
		rc = iac_err_set("cannot read image file '%s': %s", path, iac_err_last());
	} else {
		char hex[65];
		iac_sha256_hex(hex, data, len);
		json_object_set_new(planned, "fingerprint", json_string(hex));
	}
	free(data);
	free(path);
	return rc;
}

static int alias_target(char **fp, lxd_conn *c, const iac_rctx *ctx, const char *alias)
{
	json_t *a = NULL;
	*fp = NULL;
	int rc = get_obj(&a, NULL, c, ctx, "images/aliases", alias);
	if (rc == 0 && a && iac_json_str(a, "target"))
		*fp = iac_xstrdup(iac_json_str(a, "target"));
	json_decref(a);
	return rc;
}

static int image_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	lxd_conn *c;
	json_t *img = NULL;
	char *target = NULL;
	*out = NULL;
	if (lxd_conn_for(&c, ctx, prior) < 0)
		return IAC_ERR;
	const char *fp = iac_json_str(prior, "fingerprint");
	const char *alias = iac_json_str(prior, "alias");
	int rc = 0;
	if (!fp && alias && (rc = alias_target(&target, c, ctx, alias)) == 0)
		fp = target;   /* an import by alias */
	if (rc == 0 && fp)
		rc = get_obj(&img, NULL, c, ctx, "images", fp);
	if (rc < 0)
		rc = iac_err_set("cannot read image '%s': %s", fp ? fp : alias ? alias : "?", iac_err_last());
	if (rc == 0 && img) {
		json_t *o = json_deep_copy(prior);
		json_object_del(o, "$interrupted");
		json_object_set(o, "fingerprint", json_object_get(img, "fingerprint"));
		char *now = NULL;
		if (alias && alias_target(&now, c, ctx, alias) == 0 && (!now || strcmp(now, iac_json_str(img, "fingerprint"))))
			json_object_del(o, "alias");   /* the alias points elsewhere, or nowhere */
		free(now);
		*out = o;
	}
	json_decref(img);
	free(target);
	return rc;
}

/* Point alias at fp: make it, or move it. */
static int set_alias(lxd_conn *c, const iac_rctx *ctx, const char *alias, const char *fp)
{
	char *now = NULL;
	int rc = alias_target(&now, c, ctx, alias);
	if (rc == 0 && !now) {
		json_t *b = json_pack("{s:s,s:s}", "name", alias, "target", fp);
		rc = lxd_json(NULL, c, "POST", "/1.0/images/aliases", b, ctx->cancel);
		json_decref(b);
	} else if (rc == 0 && strcmp(now, fp)) {
		json_t *b = json_pack("{s:s,s:s}", "target", fp, "description", "");
		rc = put_obj(c, ctx, "PUT", "images/aliases", alias, b, NULL);
		json_decref(b);
	}
	free(now);
	return rc;
}

static int image_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	lxd_conn *c;
	if (lxd_conn_for(&c, ctx, planned) < 0)
		return IAC_ERR;
	char *path = iac_path_join(ctx->config_dir, iac_json_str(planned, "file")), *data = NULL;
	size_t len = 0;
	json_t *img = NULL, *meta = NULL;
	char hex[65];
	int rc = iac_file_read(&data, &len, path);
	if (rc < 0)
		goto done;
	iac_sha256_hex(hex, data, len);
	rc = get_obj(&img, NULL, c, ctx, "images", hex);
	if (rc == 0 && !img) {
		iac_http_req rq = { .method = "POST", .path = "/1.0/images", .data = data, .len = len,
				    .timeout_ms = 300000 };
		rc = lxd_call(&meta, NULL, c, &rq, ctx->cancel);
		const char *got = iac_json_str(meta, "fingerprint");
		if (rc == 0 && got && strcmp(got, hex))
			rc = iac_err_set("lxd made image %s from a tarball whose SHA-256 is %s", got, hex);
	}
	if (rc == 0 && iac_json_str(planned, "alias"))
		rc = set_alias(c, ctx, iac_json_str(planned, "alias"), hex);
	if (rc == 0) {
		*out = json_deep_copy(planned);
		json_object_set_new(*out, "fingerprint", json_string(hex));
	}
done:
	if (rc < 0)
		rc = iac_err_set("cannot create image '%s': %s", path, iac_err_last());
	json_decref(img);
	json_decref(meta);
	free(data);
	free(path);
	return rc;
}

static int image_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	(void)prior;
	lxd_conn *c;
	if (lxd_conn_for(&c, ctx, planned) < 0)
		return IAC_ERR;
	const char *alias = iac_json_str(planned, "alias"), *fp = iac_json_str(planned, "fingerprint");
	int rc = 0;
	if (alias && fp)
		rc = set_alias(c, ctx, alias, fp);
	const char *old = iac_json_str(prior, "alias");
	if (rc == 0 && old && (!alias || strcmp(old, alias))) {
		char *p = lxd_path("images/aliases", old);
		rc = lxd_json(NULL, c, "DELETE", p, NULL, ctx->cancel);
		if (rc == IAC_ENOTFOUND)
			rc = 0;
		free(p);
	}
	if (rc < 0)
		return iac_err_set("cannot update image '%s': %s", fp ? fp : "?", iac_err_last());
	*out = json_deep_copy(planned);
	return 0;
}

static int image_remove(const iac_rctx *ctx, const json_t *prior)
{
	lxd_conn *c;
	if (lxd_conn_for(&c, ctx, prior) < 0)
		return IAC_ERR;
	const char *fp = iac_json_str(prior, "fingerprint");
	if (!fp)
		return 0;
	char *path = lxd_path("images", fp);
	int rc = lxd_deleted(lxd_json(NULL, c, "DELETE", path, NULL, ctx->cancel), "image", fp);
	free(path);
	return rc;
}

const iac_rtype iac_lxd_profile = {
	.name = "lxd.profile",
	.attrs = profile_attrs,
	.doc = "an LXD profile: config keys and devices instances inherit",
	.plan = profile_plan,
	.read = profile_read,
	.create = profile_create,
	.update = profile_update,
	.remove = profile_remove,
	.import_attr = "name",
};

const iac_rtype iac_lxd_network = {
	.name = "lxd.network",
	.attrs = network_attrs,
	.doc = "an LXD network (a bridge); only declared config keys are compared",
	.plan = network_plan,
	.read = network_read,
	.create = network_create,
	.update = network_update,
	.remove = network_remove,
	.import_attr = "name",
};

const iac_rtype iac_lxd_image = {
	.name = "lxd.image",
	.attrs = image_attrs,
	.doc = "an LXD image uploaded from a unified tarball; a new tarball replaces it",
	.plan = image_plan,
	.read = image_read,
	.create = image_create,
	.update = image_update,
	.remove = image_remove,
	.import_attr = "alias",
};
