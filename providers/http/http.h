/* http provider: resources behind JSON HTTP APIs, on the shared client of
 * iac/http (pooled keep-alive connections, retries, circuit breaker).
 *
 *   provider "http" "pdns" { base_url = ..., headers = {...}, timeout = "10s",
 *                            retries = 4, ca_file = ..., breaker = { failures = 5, cooldown = "30s" } }
 *   resource "http.object" "zone" { provider = "pdns", path = ..., body = {...}, ... }
 *   provider "pdns" { base_url = ".../api/v1", api_key = var.key, server = "localhost" }
 *   resource "pdns.zone" "shop" { name = "shop.test." }
 *   resource "pdns.record" "www" { zone = "shop.test.", name = "www", type = "A", records = {...} }
 *
 * Two providers ("http" and "pdns") live here because types are owned by
 * the provider whose name prefixes them; they share the instance code.
 */
#ifndef IAC_PROVIDERS_HTTP_H
#define IAC_PROVIDERS_HTTP_H

#include <pthread.h>

#include "iac/http/http.h"
#include "iac/provider/provider.h"

extern const iac_rtype iac_http_object;
extern const iac_rtype iac_pdns_zone;
extern const iac_rtype iac_pdns_record;
extern const iac_provider iac_provider_http;
extern const iac_provider iac_provider_pdns;

/* One configured instance: `provider "http" "pdns" { ... }` (alias "pdns")
 * or the unnamed block (alias NULL). */
typedef struct {
	char *alias;
	char *label;       /* for messages: "provider 'http' \"pdns\"" */
	iac_http *http;
	char *server;      /* pdns: the server id in API paths ("localhost") */
	/* pdns: rrset changes waiting per zone, sent as one PATCH (pdns.c) */
	pthread_mutex_t queues_lock;
	struct pdns_queue *queues;
} hp_instance;

/* pdns.c: free an instance's per-zone queues. */
void pdns_queues_free(hp_instance *in);

typedef struct {
	char *provider;    /* "http" or "pdns" */
	hp_instance *v;
	size_t n;
} hp_set;

/* configure()/close() shared by both providers; is_pdns adds api_key and server. */
int hp_configure(void **out, const json_t *config, const char *config_dir, const char *provider, int is_pdns);
void hp_close(void *pdata);
/* The instance a resource names with `provider = "ALIAS"` (attrs may lack
 * it: the unnamed block). IAC_ERR with a message naming what exists. */
int hp_instance_for(hp_instance **out, const iac_rctx *ctx, const json_t *attrs);
/* rc, or the error of an answer outside 2xx. */
int hp_want_2xx(int rc, iac_http_resp *r);
/* The end of a create or update: on rc == 0, *out = planned plus "id";
 * else the error, as "cannot VERB 'ADDR': ...". */
int hp_made(json_t **out, const iac_rctx *ctx, const char *verb, int rc, const json_t *planned, const char *id);

#endif
