/* instances: the provider blocks of "http" and "pdns" turned into clients
 * of iac/http, one per block (see http.h). */
#include "providers/http/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/provider/settings.h"

#define TLS_HINT "give the CA that signed the server's certificate with ca_file"

/* breaker = { failures = N, cooldown = "30s" } into o. */
static int parse_breaker(iac_http_opts *o, const json_t *b)
{
	static const char *const bkeys[] = { "failures", "cooldown", NULL };
	if (!json_is_object(b) || iac_settings_check_keys(b, bkeys, TLS_HINT) < 0) {
		iac_err_prefix("breaker");
		if (!json_is_object(b))
			iac_err_set("breaker must be { failures = 5, cooldown = \"30s\" }");
		return IAC_ERR;
	}
	const json_t *f = json_object_get(b, "failures");
	if (f && (!json_is_integer(f) || json_integer_value(f) < 1))
		return iac_err_set("breaker.failures must be a whole number, 1 or more");
	o->breaker_failures = f ? (int)json_integer_value(f) : 0;
	return iac_settings_duration(&o->breaker_cooldown_ms, json_object_get(b, "cooldown"), "breaker.cooldown");
}

/* One block -> one instance. */
static int make_instance(hp_instance *in, const json_t *cfg, const char *config_dir, const char *provider,
			 const char *alias, int is_pdns)
{
	static const char *const http_keys[] = { "base_url", "headers", "timeout", "retries", "ca_file", "breaker",
						  "retry_wait", NULL };
	static const char *const pdns_keys[] = { "base_url", "headers", "timeout", "retries", "ca_file", "breaker",
						  "retry_wait", "api_key", "server", NULL };
	iac_http_opts o = { 0 };
	json_t *headers = NULL;
	char *ca = NULL;
	int rc = IAC_ERR;

	in->alias = alias ? iac_xstrdup(alias) : NULL;
	pthread_mutex_init(&in->queues_lock, NULL);
	in->label = alias ? iac_xasprintf("provider '%s' \"%s\"", provider, alias) : iac_xasprintf("provider '%s'", provider);
	if (iac_settings_check_keys(cfg, is_pdns ? pdns_keys : http_keys, TLS_HINT) < 0)
		goto done;
	o.name = in->label;
	o.base_url = iac_json_str(cfg, "base_url");
	if (!o.base_url) {
		iac_err_set("base_url is required (\"http://127.0.0.1:8081/api/v1\")");
		goto done;
	}
	const json_t *h = json_object_get(cfg, "headers");
	if (h && !json_is_object(h)) {
		iac_err_set("headers must be a table of names and values");
		goto done;
	}
	headers = h ? json_deep_copy(h) : json_object();
	if (is_pdns) {
		const char *key = iac_json_str(cfg, "api_key");
		if (key) {
			iac_redact_add(key);
			json_object_set_new(headers, "X-API-Key", json_string(key));
		}
		in->server = iac_xstrdup(iac_json_str(cfg, "server") ? iac_json_str(cfg, "server") : "localhost");
	}
	o.headers = headers;
	o.retries = -1;
	if (json_object_get(cfg, "retries")) {
		if (!json_is_integer(json_object_get(cfg, "retries")) ||
		    json_integer_value(json_object_get(cfg, "retries")) < 0) {
			iac_err_set("retries must be a whole number, 0 or more");
			goto done;
		}
		o.retries = (int)json_integer_value(json_object_get(cfg, "retries"));
	}
	if (iac_settings_duration(&o.timeout_ms, json_object_get(cfg, "timeout"), "timeout") < 0 ||
	    iac_settings_duration(&o.backoff_ms, json_object_get(cfg, "retry_wait"), "retry_wait") < 0)
		goto done;
	const json_t *b = json_object_get(cfg, "breaker");
	if (b && parse_breaker(&o, b) < 0)
		goto done;
	if (iac_json_str(cfg, "ca_file")) {
		ca = iac_path_join(config_dir, iac_json_str(cfg, "ca_file"));
		FILE *f = fopen(ca, "r");
		if (!f) {
			iac_err_sys("cannot read ca_file '%s'", ca);
			goto done;
		}
		fclose(f);
		o.ca_file = ca;
	}
	rc = iac_http_new(&in->http, &o);
done:
	if (rc < 0 && alias)
		iac_err_prefix("instance \"%s\"", alias);
	json_decref(headers);
	free(ca);
	return rc;
}

/* IAC_HTTP_STATS=FILE: one JSON line per instance at the end of the run
 * (requests, TCP connections opened, retries), for bench/http-provider. */
static void write_stats(const hp_set *set)
{
	const char *path = getenv("IAC_HTTP_STATS");
	if (!path || !*path)
		return;
	FILE *f = fopen(path, "a");
	if (!f)
		return;
	for (size_t i = 0; i < set->n; i++) {
		iac_http_stats st;
		iac_http_get_stats(&st, set->v[i].http);
		json_t *j = json_pack("{s:s,s:s?,s:I,s:I,s:I,s:I}", "provider", set->provider, "instance",
				      set->v[i].alias, "requests", (json_int_t)st.requests, "connections",
				      (json_int_t)st.connections, "retries", (json_int_t)st.retries, "handles",
				      (json_int_t)st.handles);
		char *s = json_dumps(j, JSON_COMPACT);
		fprintf(f, "%s\n", s);
		free(s);
		json_decref(j);
	}
	fclose(f);
}

void hp_close(void *pdata)
{
	hp_set *set = pdata;
	if (!set)
		return;
	write_stats(set);
	for (size_t i = 0; i < set->n; i++) {
		iac_http_free(set->v[i].http);
		pdns_queues_free(&set->v[i]);
		pthread_mutex_destroy(&set->v[i].queues_lock);
		free(set->v[i].alias);
		free(set->v[i].label);
		free(set->v[i].server);
	}
	free(set->v);
	free(set->provider);
	free(set);
}

typedef struct {
	hp_set *set;
	const char *config_dir;
	int is_pdns;
} adding;

static int add_instance(void *ud, const json_t *block, const char *alias)
{
	adding *a = ud;
	hp_set *set = a->set;
	return make_instance(&set->v[set->n++], block, a->config_dir, set->provider, alias, a->is_pdns);
}

int hp_configure(void **out, const json_t *config, const char *config_dir, const char *provider, int is_pdns)
{
	hp_set *set = iac_xcalloc(1, sizeof(*set));
	set->provider = iac_xstrdup(provider);
	set->v = iac_xcalloc(iac_settings_instance_max(config), sizeof(*set->v));
	adding a = { set, config_dir, is_pdns };
	if (iac_settings_each_instance(config, add_instance, &a) < 0) {
		char *msg = iac_xstrdup(iac_err_last());
		hp_close(set);
		iac_err_set("%s", msg);
		free(msg);
		return IAC_ERR;
	}
	*out = set;
	return 0;
}

int hp_instance_for(hp_instance **out, const iac_rctx *ctx, const json_t *attrs)
{
	hp_set *set = ctx->pdata;
	const char *want = iac_json_str(attrs, "provider");
	*out = NULL;
	for (size_t i = 0; set && i < set->n; i++) {
		const char *a = set->v[i].alias;
		if ((!want && !a) || (want && a && !strcmp(want, a))) {
			*out = &set->v[i];
			return 0;
		}
	}
	const char *prov = set ? set->provider : "http";
	if (!want)
		return iac_err_set("no unnamed provider '%s' block: declare provider \"%s\" { base_url = ... }, or "
				   "name an instance with provider = \"NAME\"", prov, prov);
	const char *names[64];
	size_t n = 0;
	for (size_t i = 0; set && i < set->n && n < 64; i++)
		if (set->v[i].alias)
			names[n++] = set->v[i].alias;
	const char *hint = iac_suggest(want, names, n);
	return iac_err_set("provider '%s' \"%s\" is not declared%s%s%s (declare it with provider \"%s\" \"%s\" "
			   "{ base_url = ... })", prov, want, hint ? "; did you mean \"" : "", hint ? hint : "",
			   hint ? "\"?" : "", prov, want);
}

int hp_want_2xx(int rc, iac_http_resp *r)
{
	if (rc == 0 && (r->status < 200 || r->status > 299))
		return iac_http_status_error(r);
	return rc;
}

int hp_made(json_t **out, const iac_rctx *ctx, const char *verb, int rc, const json_t *planned, const char *id)
{
	if (rc < 0)
		return iac_err_set("cannot %s '%s': %s", verb, ctx->addr, iac_err_last());
	json_t *o = json_deep_copy(planned);
	json_object_set_new(o, "id", json_string(id));
	*out = o;
	return 0;
}
