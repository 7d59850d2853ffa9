/* http.object: one object of a REST API, created by POST to a collection
 * (path), read, updated and deleted at its own URL (read_path with {id}).
 * Only the fields the configuration declares are compared: the answer of a
 * read is cut down to the declared keys (recursively in objects), so what
 * the API adds (serials, URLs, timestamps) never shows as a change. A
 * declared field the API never returns (write-only: a password, PowerDNS's
 * zone nameservers) keeps the value that was sent. */
#include "providers/http/http.h"

#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"

static const iac_attr object_attrs[] = {
	{ "provider", IAC_T_STRING, IAC_A_NO_DIFF, "which provider \"http\" \"NAME\" block serves it (default: the unnamed one)" },
	{ "path", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the collection the object is created in (POST), after base_url" },
	{ "body", IAC_T_MAP, IAC_A_REQUIRED, "the object's fields; only these are compared with what the API has" },
	{ "id_path", IAC_T_STRING, 0, "where the id is in the create answer, dotted (\"id\", \"data.id\"); default \"id\"" },
	{ "read_path", IAC_T_STRING, 0, "the object's URL after base_url, \"{id}\" substituted; default path/{id}" },
	{ "update_path", IAC_T_STRING, 0, "where updates go; default read_path" },
	{ "delete_path", IAC_T_STRING, 0, "where DELETE goes; default read_path" },
	{ "create_method", IAC_T_STRING, 0, "default \"POST\"" },
	{ "update_method", IAC_T_STRING, 0, "\"PUT\" (default) or \"PATCH\"" },
	{ "force_new", IAC_T_LIST, 0, "body fields whose change replaces the object (delete, create)" },
	{ "force_new_values", IAC_T_MAP, IAC_A_FORCE_NEW, "set by iac: the force_new fields' values" },
	{ "id", IAC_T_STRING, IAC_A_COMPUTED, "the object's id in the API" },
	{ NULL, 0, 0, NULL },
};

static const char *str_or(const json_t *a, const char *k, const char *def)
{
	const char *s = iac_json_str(a, k);
	return s && *s ? s : def;
}

/* read_path, or path + "/{id}". Caller frees. */
static char *object_path(const json_t *a, const char *which)
{
	const char *p = iac_json_str(a, which);
	if (!p || !*p)
		p = iac_json_str(a, "read_path");
	if (p && *p)
		return iac_xstrdup(p);
	const char *base = str_or(a, "path", "");
	size_t n = strlen(base);
	return iac_xasprintf("%s%s{id}", base, n && base[n - 1] == '/' ? "" : "/");
}

/* The value at a dotted path ("data.id") as a string. Caller frees. */
static char *value_at(const json_t *j, const char *dotted)
{
	char *copy = iac_xstrdup(dotted), *save = NULL;
	const json_t *cur = j;
	for (char *part = strtok_r(copy, ".", &save); part && cur; part = strtok_r(NULL, ".", &save))
		cur = json_is_object(cur) ? json_object_get(cur, part) : NULL;
	free(copy);
	if (json_is_string(cur))
		return iac_xstrdup(json_string_value(cur));
	if (json_is_integer(cur))
		return iac_xasprintf("%lld", (long long)json_integer_value(cur));
	return NULL;
}

/* remote cut down to the keys of declared (see the top of the file). */
static json_t *project(const json_t *declared, const json_t *remote)
{
	if (!json_is_object(declared) || !json_is_object(remote))
		return json_incref((json_t *)remote);
	json_t *out = json_object(), *v;
	const char *k;
	json_object_foreach((json_t *)declared, k, v) {
		const json_t *r = json_object_get(remote, k);
		json_object_set_new(out, k, r ? project(v, r) : json_incref(v));
	}
	return out;
}

/* Lua cannot tell {} from []: an empty table in a body is sent as an empty
 * list, which is what APIs mostly want ("nameservers": []). A new body. */
static json_t *lists_for_empty(const json_t *v)
{
	if (json_is_object(v) && !iac_value_marker(v)) {
		if (!json_object_size(v))
			return json_array();
		json_t *o = json_object(), *x;
		const char *k;
		json_object_foreach((json_t *)v, k, x)
			json_object_set_new(o, k, lists_for_empty(x));
		return o;
	}
	if (json_is_array(v)) {
		json_t *a = json_array(), *x;
		size_t i;
		json_array_foreach(v, i, x)
			json_array_append_new(a, lists_for_empty(x));
		return a;
	}
	return json_incref((json_t *)v);
}

/* {field: value} of the force_new fields of body. */
static json_t *force_values(const json_t *attrs, const json_t *body)
{
	const json_t *fn = json_object_get(attrs, "force_new");
	if (!json_array_size(fn))
		return NULL;
	json_t *out = json_object(), *f;
	size_t i;
	json_array_foreach(fn, i, f) {
		const char *k = json_string_value(f);
		if (!k)
			continue;
		const json_t *v = json_object_get(body, k);
		json_object_set_new(out, k, v ? json_incref((json_t *)v) : json_null());
	}
	return out;
}

static int check_method(const json_t *a, const char *k, const char *const *allowed)
{
	const char *m = iac_json_str(a, k);
	if (!m)
		return 0;
	for (size_t i = 0; allowed[i]; i++)
		if (!strcmp(m, allowed[i]))
			return 0;
	return iac_err_set("%s '%s' is not one of %s%s%s", k, m, allowed[0], allowed[1] ? ", " : "",
			   allowed[1] ? allowed[1] : "");
}

static int object_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	(void)prior;
	hp_instance *in;
	static const char *const upd[] = { "PUT", "PATCH", NULL }, *const cre[] = { "POST", "PUT", NULL };
	if (hp_instance_for(&in, ctx, planned) < 0 || check_method(planned, "update_method", upd) < 0 ||
	    check_method(planned, "create_method", cre) < 0)
		return IAC_ERR;
	const json_t *fn = json_object_get(planned, "force_new"), *f;
	size_t i;
	json_array_foreach(fn, i, f)
		if (!json_is_string(f) && !iac_value_is_unknown(f))
			return iac_err_set("force_new must list body field names");
	if (json_object_get(planned, "body"))
		json_object_set_new(planned, "body", lists_for_empty(json_object_get(planned, "body")));
	json_t *fv = force_values(planned, json_object_get(planned, "body"));
	if (fv)
		json_object_set_new(planned, "force_new_values", fv);
	else
		json_object_del(planned, "force_new_values");
	return 0;
}

static int object_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	hp_instance *in;
	iac_http_resp r;
	*out = NULL;
	const char *id = iac_json_str(prior, "id");
	if (!id)
		return 0;   /* a create that was interrupted before the API answered: cannot tell */
	if (hp_instance_for(&in, ctx, prior) < 0)
		return IAC_ERR;
	char *tpl = object_path(prior, "read_path");
	char *path = iac_http_path(tpl, id);
	free(tpl);
	int rc = iac_http_request(&r, in->http, "GET", path, NULL, ctx->cancel);
	free(path);
	if (rc == 0 && (r.status == 404 || r.status == 410)) {
		iac_http_resp_free(&r);
		return 0;   /* gone */
	}
	rc = hp_want_2xx(rc, &r);
	if (rc == 0 && !json_is_object(r.json))
		rc = iac_err_set("GET '%s' answered %ld without a JSON object", r.url, r.status);
	if (rc < 0) {
		iac_http_resp_free(&r);
		return iac_err_set("cannot read '%s': %s", ctx->addr, iac_err_last());
	}
	json_t *o = json_deep_copy(prior);
	json_object_del(o, "$interrupted");
	json_t *declared = lists_for_empty(json_object_get(prior, "body"));
	json_t *body = project(declared, r.json);
	json_decref(declared);
	json_t *fv = force_values(prior, body);
	if (fv)
		json_object_set_new(o, "force_new_values", fv);
	json_object_set_new(o, "body", body);
	iac_http_resp_free(&r);
	*out = o;
	return 0;
}

static int object_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	hp_instance *in;
	iac_http_resp r;
	if (hp_instance_for(&in, ctx, planned) < 0)
		return IAC_ERR;
	const char *method = str_or(planned, "create_method", "POST");
	int rc = iac_http_request(&r, in->http, method, iac_json_str(planned, "path"), json_object_get(planned, "body"),
				  ctx->cancel);
	rc = hp_want_2xx(rc, &r);
	char *id = NULL;
	if (rc == 0) {
		id = value_at(r.json, str_or(planned, "id_path", "id"));
		if (!id)
			rc = iac_err_set("%s '%s' answered %ld without an id at '%s' (set id_path)", r.method, r.url,
					 r.status, str_or(planned, "id_path", "id"));
	}
	iac_http_resp_free(&r);
	rc = hp_made(out, ctx, "create", rc, planned, id);
	free(id);
	return rc;
}

static int object_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	hp_instance *in;
	iac_http_resp r;
	const char *id = iac_json_str(prior, "id");
	if (!id)
		return iac_err_set("cannot update '%s': its id is not in state", ctx->addr);
	if (hp_instance_for(&in, ctx, planned) < 0)
		return IAC_ERR;
	char *tpl = object_path(planned, "update_path");
	char *path = iac_http_path(tpl, id);
	free(tpl);
	int rc = iac_http_request(&r, in->http, str_or(planned, "update_method", "PUT"), path,
				  json_object_get(planned, "body"), ctx->cancel);
	free(path);
	rc = hp_want_2xx(rc, &r);
	iac_http_resp_free(&r);
	return hp_made(out, ctx, "update", rc, planned, id);
}

static int object_remove(const iac_rctx *ctx, const json_t *prior)
{
	hp_instance *in;
	iac_http_resp r;
	const char *id = iac_json_str(prior, "id");
	if (!id)
		return 0;
	if (hp_instance_for(&in, ctx, prior) < 0)
		return IAC_ERR;
	char *tpl = object_path(prior, "delete_path");
	char *path = iac_http_path(tpl, id);
	free(tpl);
	int rc = iac_http_request(&r, in->http, "DELETE", path, NULL, ctx->cancel);
	free(path);
	if (rc == 0 && r.status != 404 && r.status != 410 && (r.status < 200 || r.status > 299))
		rc = iac_http_status_error(&r);
	iac_http_resp_free(&r);
	if (rc < 0)
		return iac_err_set("cannot delete '%s': %s", ctx->addr, iac_err_last());
	return 0;
}

const iac_rtype iac_http_object = {
	.name = "http.object",
	.attrs = object_attrs,
	.doc = "an object of a JSON REST API (POST to create, GET/PUT/DELETE at its id)",
	.plan = object_plan,
	.read = object_read,
	.create = object_create,
	.update = object_update,
	.remove = object_remove,
	.import_attr = "id",
};
