/* pdns: zones and rrsets on the PowerDNS Authoritative HTTP API (4.x):
 *   zones   POST/GET/PUT/DELETE /servers/{server}/zones[/{zone}]
 *   rrsets  PATCH /servers/{server}/zones/{zone} with changetype REPLACE or
 *           DELETE; one rrset read with ?rrset_name=&rrset_type= (4.7+), so
 *           refreshing 1,000 records does not fetch the zone 1,000 times. */
#include "providers/http/http.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"

static const iac_attr zone_attrs[] = {
	{ "provider", IAC_T_STRING, IAC_A_NO_DIFF, "which provider \"pdns\" \"NAME\" block serves it (default: the unnamed one)" },
	{ "name", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the zone, fully qualified (\"shop.test.\")" },
	{ "kind", IAC_T_STRING, 0, "\"Native\" (default), \"Master\" or \"Slave\"" },
	{ "nameservers", IAC_T_LIST, IAC_A_NO_DIFF, "NS records made with the zone (used at creation only)" },
	{ "soa_edit_api", IAC_T_STRING, 0, "how the API bumps the SOA serial (\"DEFAULT\", \"INCREASE\", ...)" },
	{ "account", IAC_T_STRING, 0, "the zone's account field" },
	{ "id", IAC_T_STRING, IAC_A_COMPUTED, "the zone's id in the API" },
	{ NULL, 0, 0, NULL },
};

static const iac_attr record_attrs[] = {
	{ "provider", IAC_T_STRING, IAC_A_NO_DIFF, "which provider \"pdns\" \"NAME\" block serves it (default: the unnamed one)" },
	{ "zone", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the zone (\"shop.test.\"; pdns_zone.name)" },
	{ "name", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the owner name: fully qualified with a final dot, relative to the zone, or \"@\"" },
	{ "type", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "\"A\", \"AAAA\", \"CNAME\", \"TXT\"..." },
	{ "ttl", IAC_T_NUMBER, 0, "seconds, default 300" },
	{ "records", IAC_T_LIST, IAC_A_REQUIRED, "the record contents (\"10.0.0.1\"); order does not matter" },
	{ "id", IAC_T_STRING, IAC_A_COMPUTED, "\"zone/name/type\"" },
	{ NULL, 0, 0, NULL },
};

static int zone_name_ok(const char *z)
{
	size_t n = z ? strlen(z) : 0;
	return n > 1 && z[n - 1] == '.';
}

/* /servers/{server}/zones/{zone}, zone escaped. Caller frees. */
static char *zone_url(const hp_instance *in, const char *zone)
{
	char *tpl = iac_xasprintf("/servers/%s/zones/{id}", in->server);
	char *p = iac_http_path(tpl, zone);
	free(tpl);
	return p;
}

/* --- pdns.zone ----------------------------------------------------------- */

/* A zone's id as the API knows it: the one it gave, or (before it gave
 * one, or for an import) the zone's name, which PowerDNS accepts too. */
static const char *zone_id(const json_t *prior, const json_t *named)
{
	return iac_json_str(prior, "id") ? iac_json_str(prior, "id") : iac_json_str(named, "name");
}

static int zone_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	(void)prior;
	hp_instance *in;
	if (hp_instance_for(&in, ctx, planned) < 0)
		return IAC_ERR;
	const json_t *n = json_object_get(planned, "name");
	if (json_is_string(n) && !zone_name_ok(json_string_value(n)))
		return iac_err_set("zone name '%s' must be fully qualified, ending with a dot (\"%s.\")",
				   json_string_value(n), json_string_value(n));
	if (!json_object_get(planned, "kind"))
		json_object_set_new(planned, "kind", json_string("Native"));
	return 0;
}

static int zone_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	hp_instance *in;
	iac_http_resp r;
	*out = NULL;
	const char *id = zone_id(prior, prior);
	if (!id)
		return 0;
	if (hp_instance_for(&in, ctx, prior) < 0)
		return IAC_ERR;
	char *base = zone_url(in, id);
	char *path = iac_xasprintf("%s?rrsets=false", base);
	free(base);
	int rc = iac_http_request(&r, in->http, "GET", path, NULL, ctx->cancel);
	free(path);
	if (rc == 0 && (r.status == 404 || r.status == 422)) {
		iac_http_resp_free(&r);
		return 0;
	}
	rc = hp_want_2xx(rc, &r);
	if (rc == 0 && !json_is_object(r.json))
		rc = iac_err_set("GET '%s' answered without a zone object", r.url);
	if (rc < 0) {
		iac_http_resp_free(&r);
		return iac_err_set("cannot read '%s': %s", ctx->addr, iac_err_last());
	}
	json_t *o = json_deep_copy(prior);
	json_object_del(o, "$interrupted");
	json_object_set(o, "name", json_object_get(r.json, "name"));
	json_object_set(o, "kind", json_object_get(r.json, "kind"));
	json_object_set(o, "id", json_object_get(r.json, "id"));
	/* optional fields are compared only when declared */
	if (json_object_get(prior, "soa_edit_api"))
		json_object_set(o, "soa_edit_api", json_object_get(r.json, "soa_edit_api"));
	if (json_object_get(prior, "account"))
		json_object_set(o, "account", json_object_get(r.json, "account"));
	iac_http_resp_free(&r);
	*out = o;
	return 0;
}

static json_t *zone_body(const json_t *a, int create)
{
	json_t *b = json_object();
	if (create) {
		json_object_set(b, "name", json_object_get(a, "name"));
		json_object_set_new(b, "nameservers", json_is_array(json_object_get(a, "nameservers"))
								? json_deep_copy(json_object_get(a, "nameservers"))
								: json_array());
	}
	json_object_set_new(b, "kind", json_string(iac_json_str(a, "kind") ? iac_json_str(a, "kind") : "Native"));
	if (iac_json_str(a, "soa_edit_api"))
		json_object_set(b, "soa_edit_api", json_object_get(a, "soa_edit_api"));
	if (iac_json_str(a, "account"))
		json_object_set(b, "account", json_object_get(a, "account"));
	return b;
}

static int zone_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	hp_instance *in;
	iac_http_resp r;
	if (hp_instance_for(&in, ctx, planned) < 0)
		return IAC_ERR;
	char *path = iac_xasprintf("/servers/%s/zones", in->server);
	json_t *body = zone_body(planned, 1);
	int rc = hp_want_2xx(iac_http_request(&r, in->http, "POST", path, body, ctx->cancel), &r);
	json_decref(body);
	free(path);
	const char *id = rc == 0 ? iac_json_str(r.json, "id") : NULL;
	if (rc == 0 && !id)
		rc = iac_err_set("POST '%s' answered %ld without the zone's id", r.url, r.status);
	rc = hp_made(out, ctx, "create", rc, planned, id);
	iac_http_resp_free(&r);
	return rc;
}

static int zone_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	hp_instance *in;
	iac_http_resp r;
	if (hp_instance_for(&in, ctx, planned) < 0)
		return IAC_ERR;
	const char *id = zone_id(prior, planned);
	char *path = zone_url(in, id);
	json_t *body = zone_body(planned, 0);
	int rc = hp_want_2xx(iac_http_request(&r, in->http, "PUT", path, body, ctx->cancel), &r);
	json_decref(body);
	free(path);
	iac_http_resp_free(&r);
	return hp_made(out, ctx, "update", rc, planned, id);
}

static int zone_remove(const iac_rctx *ctx, const json_t *prior)
{
	hp_instance *in;
	iac_http_resp r;
	const char *id = zone_id(prior, prior);
	if (!id)
		return 0;
	if (hp_instance_for(&in, ctx, prior) < 0)
		return IAC_ERR;
	char *path = zone_url(in, id);
	int rc = iac_http_request(&r, in->http, "DELETE", path, NULL, ctx->cancel);
	free(path);
	if (rc == 0 && r.status != 404 && r.status != 422)
		rc = hp_want_2xx(rc, &r);
	iac_http_resp_free(&r);
	if (rc < 0)
		return iac_err_set("cannot delete '%s': %s", ctx->addr, iac_err_last());
	return 0;
}

const iac_rtype iac_pdns_zone = {
	.name = "pdns.zone",
	.attrs = zone_attrs,
	.doc = "a zone on a PowerDNS Authoritative server (HTTP API)",
	.plan = zone_plan,
	.read = zone_read,
	.create = zone_create,
	.update = zone_update,
	.remove = zone_remove,
};

/* --- pdns.record (an rrset) ------------------------------------------- */

/* The owner name, fully qualified: "www" in "shop.test." is
 * "www.shop.test.", "@" the zone itself. Caller frees. */
static char *fqdn(const json_t *a)
{
	const char *name = iac_json_str(a, "name"), *zone = iac_json_str(a, "zone");
	if (!name || !zone)
		return NULL;
	size_t n = strlen(name);
	if (!strcmp(name, "@") || !n)
		return iac_xstrdup(zone);
	if (name[n - 1] == '.')
		return iac_xstrdup(name);
	return iac_xasprintf("%s.%s", name, zone);
}

/* Whether lists a and b hold the same strings, in any order. */
static int same_set(const json_t *a, const json_t *b)
{
	if (!json_is_array(a) || !json_is_array(b) || json_array_size(a) != json_array_size(b))
		return 0;
	size_t i, j;
	json_t *x, *y;
	json_array_foreach(a, i, x) {
		size_t ca = 0, cb = 0;
		json_array_foreach(a, j, y)
			ca += json_equal(x, y);
		json_array_foreach(b, j, y)
			cb += json_equal(x, y);
		if (ca != cb)
			return 0;
	}
	return 1;
}

static int record_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	hp_instance *in;
	if (hp_instance_for(&in, ctx, planned) < 0)
		return IAC_ERR;
	const json_t *z = json_object_get(planned, "zone");
	if (json_is_string(z) && !zone_name_ok(json_string_value(z)))
		return iac_err_set("zone '%s' must be fully qualified, ending with a dot (\"%s.\")", json_string_value(z),
				   json_string_value(z));
	const json_t *t = json_object_get(planned, "type"), *e;
	if (json_is_string(t)) {
		for (const char *c = json_string_value(t); *c; c++)
			if (*c >= 'a' && *c <= 'z')
				return iac_err_set("type '%s' must be upper case", json_string_value(t));
	}
	size_t i;
	json_array_foreach(json_object_get(planned, "records"), i, e)
		if (!json_is_string(e) && !iac_value_is_unknown(e))
			return iac_err_set("records must be a list of strings (record contents)");
	if (!json_object_get(planned, "ttl"))
		json_object_set_new(planned, "ttl", json_integer(300));
	/* only the set matters: keep the order state has when the set is the same */
	const json_t *had = json_object_get(prior, "records");
	if (had && same_set(had, json_object_get(planned, "records")))
		json_object_set(planned, "records", (json_t *)had);
	return 0;
}

static int record_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	hp_instance *in;
	iac_http_resp r;
	*out = NULL;
	if (hp_instance_for(&in, ctx, prior) < 0)
		return IAC_ERR;
	char *name = fqdn(prior);
	const char *type = iac_json_str(prior, "type");
	if (!name || !type) {
		free(name);
		return 0;
	}
	char *base = zone_url(in, iac_json_str(prior, "zone"));
	char *en = iac_http_path("{id}", name), *et = iac_http_path("{id}", type);
	char *path = iac_xasprintf("%s?rrset_name=%s&rrset_type=%s", base, en, et);
	free(base);
	free(en);
	free(et);
	int rc = iac_http_request(&r, in->http, "GET", path, NULL, ctx->cancel);
	free(path);
	if (rc == 0 && (r.status == 404 || r.status == 422)) {
		free(name);
		iac_http_resp_free(&r);
		return 0;   /* the zone is gone, and the rrset with it */
	}
	rc = hp_want_2xx(rc, &r);
	if (rc == 0 && !json_is_array(json_object_get(r.json, "rrsets")))
		rc = iac_err_set("GET '%s' answered %ld without rrsets", r.url, r.status);
	if (rc < 0) {
		free(name);
		iac_http_resp_free(&r);
		return iac_err_set("cannot read '%s': %s", ctx->addr, iac_err_last());
	}
	const json_t *set = NULL, *e;
	size_t i;
	json_array_foreach(json_object_get(r.json, "rrsets"), i, e) {
		/* older servers ignore the filter: pick ours */
		if (!strcmp(iac_json_str(e, "name") ?: "", name) && !strcmp(iac_json_str(e, "type") ?: "", type))
			set = e;
	}
	free(name);
	json_t *recs = json_array();
	json_array_foreach(json_object_get(set, "records"), i, e)
		if (!json_is_true(json_object_get(e, "disabled")) && json_is_string(json_object_get(e, "content")))
			json_array_append(recs, json_object_get(e, "content"));
	if (!set || !json_array_size(recs)) {
		json_decref(recs);
		iac_http_resp_free(&r);
		return 0;
	}
	json_t *o = json_deep_copy(prior);
	json_object_del(o, "$interrupted");
	if (same_set(recs, json_object_get(prior, "records")))
		json_decref(recs);
	else
		json_object_set_new(o, "records", recs);
	json_object_set(o, "ttl", json_object_get(set, "ttl"));
	json_object_set_new(o, "id", json_sprintf("%s/%s/%s", iac_json_str(prior, "zone"), iac_json_str(e = set, "name"),
						   type));
	iac_http_resp_free(&r);
	*out = o;
	return 0;
}

/* Writes to one zone are grouped: PowerDNS with the SQLite backend answers
 * 500 "database is locked" to a second PATCH on the same database while
 * one runs, and every PATCH is a transaction and a serial bump. So the
 * worker threads of an apply queue their rrset changes per zone, and
 * whichever thread finds no PATCH in flight sends everything queued as one
 * (group commit); the others wait for their item's result. When a batch is
 * refused (4xx), its items are sent again one by one, so that one bad record
 * fails alone, with the API's own message. */
#define BATCH_MAX 200

typedef struct queue_item {
	json_t *rrset;
	int done, rc;
	char *err;
	struct queue_item *next;
} queue_item;

struct pdns_queue {
	char *zone;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	queue_item *head, **tail;
	int busy;
	struct pdns_queue *next;
};

void pdns_queues_free(hp_instance *in)
{
	for (struct pdns_queue *q = in->queues, *n; q; q = n) {
		n = q->next;
		pthread_mutex_destroy(&q->mu);
		pthread_cond_destroy(&q->cv);
		free(q->zone);
		free(q);
	}
	in->queues = NULL;
}

static struct pdns_queue *queue_for(hp_instance *in, const char *zone)
{
	pthread_mutex_lock(&in->queues_lock);
	struct pdns_queue *q = in->queues;
	while (q && strcmp(q->zone, zone))
		q = q->next;
	if (!q) {
		q = iac_xcalloc(1, sizeof(*q));
		q->zone = iac_xstrdup(zone);
		pthread_mutex_init(&q->mu, NULL);
		pthread_cond_init(&q->cv, NULL);
		q->tail = &q->head;
		q->next = in->queues;
		in->queues = q;
	}
	pthread_mutex_unlock(&in->queues_lock);
	return q;
}

/* One PATCH with the rrsets of items[0..n). *refused: the API answered 4xx. */
static int send_patch(const iac_rctx *ctx, hp_instance *in, const char *zone, queue_item **items, size_t n,
		      int delete_ok, int *refused)
{
	iac_http_resp r;
	json_t *sets = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append(sets, items[i]->rrset);
	json_t *body = json_pack("{s:o}", "rrsets", sets);
	char *path = zone_url(in, zone);
	int rc = iac_http_request(&r, in->http, "PATCH", path, body, ctx->cancel);
	free(path);
	json_decref(body);
	*refused = rc == 0 && r.status >= 400 && r.status < 500;
	/* deleting from a zone that is gone: nothing left to delete */
	if (!(rc == 0 && delete_ok && (r.status == 404 || r.status == 422)))
		rc = hp_want_2xx(rc, &r);
	iac_http_resp_free(&r);
	return rc;
}

static void finish_items(queue_item **items, size_t n, int rc)
{
	for (size_t i = 0; i < n; i++) {
		items[i]->rc = rc;
		items[i]->err = rc < 0 ? iac_xstrdup(iac_err_last()) : NULL;
	}
}

/* Send what is queued (the caller holds no lock; q->busy is ours). */
static void flush(const iac_rctx *ctx, hp_instance *in, struct pdns_queue *q)
{
	queue_item *items[BATCH_MAX];
	size_t n = 0;
	pthread_mutex_lock(&q->mu);
	while (q->head && n < BATCH_MAX) {
		items[n++] = q->head;
		q->head = q->head->next;
	}
	if (!q->head)
		q->tail = &q->head;
	pthread_mutex_unlock(&q->mu);

	int all_delete = 1, refused = 0;
	for (size_t i = 0; i < n; i++)
		all_delete &= !strcmp(iac_json_str(items[i]->rrset, "changetype") ?: "", "DELETE");
	int rc = send_patch(ctx, in, q->zone, items, n, all_delete, &refused);
	if (rc < 0 && refused && n > 1) {
		for (size_t i = 0; i < n; i++) {
			int del = !strcmp(iac_json_str(items[i]->rrset, "changetype") ?: "", "DELETE");
			finish_items(&items[i], 1, send_patch(ctx, in, q->zone, &items[i], 1, del, &refused));
		}
	} else {
		finish_items(items, n, rc);
	}
	pthread_mutex_lock(&q->mu);
	for (size_t i = 0; i < n; i++)
		items[i]->done = 1;
	pthread_mutex_unlock(&q->mu);
}

/* Queue one rrset change and wait until a PATCH carried it. */
static int patch_rrset(const iac_rctx *ctx, hp_instance *in, const char *zone, json_t *rrset)
{
	struct pdns_queue *q = queue_for(in, zone);
	queue_item it = { rrset, 0, 0, NULL, NULL };
	pthread_mutex_lock(&q->mu);
	*q->tail = &it;
	q->tail = &it.next;
	while (!it.done) {
		if (!q->busy) {
			q->busy = 1;
			pthread_mutex_unlock(&q->mu);
			flush(ctx, in, q);
			pthread_mutex_lock(&q->mu);
			q->busy = 0;
			pthread_cond_broadcast(&q->cv);
		} else {
			pthread_cond_wait(&q->cv, &q->mu);
		}
	}
	pthread_mutex_unlock(&q->mu);
	if (it.rc < 0) {
		iac_err_set("%s", it.err);
		free(it.err);
	}
	return it.rc;
}

/* PATCH one rrset: REPLACE with the records, or DELETE. */
static int patch(const iac_rctx *ctx, const json_t *a, const char *changetype, const char *verb)
{
	hp_instance *in;
	if (hp_instance_for(&in, ctx, a) < 0)
		return IAC_ERR;
	char *name = fqdn(a);
	json_t *set = json_pack("{s:s,s:s,s:s}", "name", name, "type", iac_json_str(a, "type"), "changetype", changetype);
	free(name);
	if (!strcmp(changetype, "REPLACE")) {
		json_t *recs = json_array(), *e;
		size_t i;
		json_array_foreach(json_object_get(a, "records"), i, e)
			json_array_append_new(recs, json_pack("{s:O,s:b}", "content", e, "disabled", 0));
		json_object_set_new(set, "records", recs);
		json_object_set_new(set, "ttl", json_integer(json_is_number(json_object_get(a, "ttl"))
								 ? (json_int_t)json_number_value(json_object_get(a, "ttl"))
								 : 300));
	}
	int rc = patch_rrset(ctx, in, iac_json_str(a, "zone"), set);
	json_decref(set);
	if (rc < 0)
		return iac_err_set("cannot %s '%s': %s", verb, ctx->addr, iac_err_last());
	return 0;
}

static json_t *record_state(const json_t *planned)
{
	json_t *o = json_deep_copy(planned);
	char *name = fqdn(planned);
	json_object_set_new(o, "id", json_sprintf("%s/%s/%s", iac_json_str(planned, "zone"), name,
						   iac_json_str(planned, "type")));
	free(name);
	return o;
}

static int record_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	if (patch(ctx, planned, "REPLACE", "create") < 0)
		return IAC_ERR;
	*out = record_state(planned);
	return 0;
}

static int record_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	(void)prior;
	if (patch(ctx, planned, "REPLACE", "update") < 0)
		return IAC_ERR;
	*out = record_state(planned);
	return 0;
}

static int record_remove(const iac_rctx *ctx, const json_t *prior)
{
	return patch(ctx, prior, "DELETE", "delete");
}

const iac_rtype iac_pdns_record = {
	.name = "pdns.record",
	.attrs = record_attrs,
	.doc = "an rrset (name, type, ttl, records) in a PowerDNS zone",
	.plan = record_plan,
	.read = record_read,
	.create = record_create,
	.update = record_update,
	.remove = record_remove,
};
