/* warm: copy the keys that change owner between two rings to their new
 * owner before the new ring is published (cache_int.h). Of each old node,
 * the keys the old ring placed there and the new ring places elsewhere:
 *   Redis      SCAN; PTTL + DUMP pipelined; RESTORE ... REPLACE pipelined on
 *              the new owner with the remaining TTL;
 *   Memcached  lru_crawler metadump (key and absolute expiry); get pipelined;
 *              set pipelined on the new owner with the same flags and expiry. */
#include "providers/cache/cache_int.h"
#include "providers/cache/client.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"

typedef struct {
	iac_ketama *old_ring, *new_ring;
	const json_t *old_nodes, *new_nodes;
	iac_cache_conn **dst;         /* per new node, opened on first use */
	double max_rate, deadline_ms, started_ms;
	long long copied, scanned, expired;
	int timed_out;
	const volatile int *cancel;
} warm_run;

int iac_cache_warm_parse(double *rate, double *time_ms, const json_t *warm)
{
	const char *r = iac_json_str(warm, "max_rate"), *t = iac_json_str(warm, "max_time");
	*rate = 0;
	*time_ms = 60e3;
	if (r) {
		char *end;
		*rate = strtod(r, &end);
		if (end == r || *rate <= 0 || (strcmp(end, "/s") && *end))
			return iac_err_set("warm.max_rate '%s' must look like \"20000/s\"", r);
	}
	if (t && (iac_duration_parse(time_ms, t) < 0 || *time_ms <= 0))
		return iac_err_set("warm.max_time '%s' must be a duration like \"60s\"", t);
	return 0;
}

static int dst_conn(iac_cache_conn **out, warm_run *w, size_t j)
{
	if (!w->dst[j]) {
		const json_t *n = json_array_get(w->new_nodes, j);
		if (iac_cache_conn_open(&w->dst[j], iac_json_str(n, "address"),
					(unsigned)json_integer_value(json_object_get(n, "port")), 10e3) < 0)
			return IAC_ERR;
	}
	*out = w->dst[j];
	return 0;
}

/* Keeps the copy under max_rate keys per second. */
static void pace(warm_run *w)
{
	if (w->max_rate <= 0)
		return;
	double due_ms = w->started_ms + (double)w->copied * 1000.0 / w->max_rate, now = iac_now_ms();
	if (due_ms > now) {
		struct timespec ts = { (time_t)((due_ms - now) / 1000), (long)(((long long)(due_ms - now) % 1000) * 1000000) };
		nanosleep(&ts, NULL);
	}
}

/* One SCAN batch of old node i: the moving keys' TTL and DUMP from the
 * source (one pipelined round), then RESTORE on each key's new owner (one
 * pipelined round per batch). */
static int copy_batch(warm_run *w, iac_cache_conn *src, size_t i, const iac_resp *keys)
{
	size_t n = keys->n;
	size_t *to = calloc(n ? n : 1, sizeof(size_t));
	iac_resp *dump = calloc(n ? n : 1, sizeof(iac_resp)), *ttl = calloc(n ? n : 1, sizeof(iac_resp));
	int rc = IAC_ERR;
	if (!to || !dump || !ttl) {
		iac_err_set("out of memory");
		goto done;
	}
	const char *old_pn = iac_ketama_point_name_of(w->old_ring, i);
	for (size_t k = 0; k < n; k++) {
		const iac_resp *key = &keys->elems[k];
		to[k] = SIZE_MAX;
		if (key->type != IAC_RESP_BULK)
			continue;
		w->scanned++;
		if (iac_ketama_locate(w->old_ring, key->str, key->len) != i)
			continue;   /* not this node's key under the old ring: stale, leave it */
		size_t j = iac_ketama_locate(w->new_ring, key->str, key->len);
		if (!strcmp(iac_ketama_point_name_of(w->new_ring, j), old_pn))
			continue;
		to[k] = j;
		const char *pa[] = { "PTTL", key->str }, *da[] = { "DUMP", key->str };
		size_t pl[] = { 4, key->len }, dl[] = { 4, key->len };
		if (iac_resp_send(src, 2, pa, pl) < 0 || iac_resp_send(src, 2, da, dl) < 0)
			goto done;
	}
	for (size_t k = 0; k < n; k++)
		if (to[k] != SIZE_MAX && (iac_resp_read(&ttl[k], src) < 0 || iac_resp_read(&dump[k], src) < 0))
			goto done;
	/* RESTORE key ttl payload REPLACE, pipelined per destination */
	for (size_t k = 0; k < n; k++) {
		iac_cache_conn *dst;
		if (to[k] == SIZE_MAX)
			continue;
		if (dump[k].type != IAC_RESP_BULK || ttl[k].type != IAC_RESP_INT || ttl[k].integer == -2) {
			to[k] = SIZE_MAX;   /* expired or deleted since SCAN */
			w->expired++;
			continue;
		}
		char ms[32];
		snprintf(ms, sizeof(ms), "%lld", ttl[k].integer > 0 ? ttl[k].integer : 0);
		const char *ra[] = { "RESTORE", keys->elems[k].str, ms, dump[k].str, "REPLACE" };
		size_t rl[] = { 7, keys->elems[k].len, strlen(ms), dump[k].len, 7 };
		if (dst_conn(&dst, w, to[k]) < 0 || iac_resp_send(dst, 5, ra, rl) < 0)
			goto done;
	}
	for (size_t k = 0; k < n; k++) {
		iac_resp r;
		if (to[k] == SIZE_MAX)
			continue;
		if (iac_resp_read(&r, w->dst[to[k]]) < 0)
			goto done;
		int ok = r.type == IAC_RESP_STRING;
		if (!ok)
			iac_err_set("RESTORE of a key on '%s' failed: %s", iac_cache_conn_label(w->dst[to[k]]),
				    r.str ? r.str : "unexpected reply");
		iac_resp_clear(&r);
		if (!ok)
			goto done;
		w->copied++;
	}
	rc = 0;
done:
	for (size_t k = 0; dump && ttl && k < n; k++) {
		iac_resp_clear(&dump[k]);
		iac_resp_clear(&ttl[k]);
	}
	free(to);
	free(dump);
	free(ttl);
	return rc;
}

static int warm_node(warm_run *w, size_t i)
{
	const json_t *n = json_array_get(w->old_nodes, i);
	iac_cache_conn *src = NULL;
	char cursor[32] = "0";
	int rc = IAC_ERR;
	if (iac_cache_conn_open(&src, iac_json_str(n, "address"),
				(unsigned)json_integer_value(json_object_get(n, "port")), 10e3) < 0)
		return IAC_ERR;
	do {
		iac_resp r;
		if (w->cancel && *w->cancel) {
			iac_err_set("warming cancelled");
			goto done;
		}
		if (iac_now_ms() > w->deadline_ms) {
			w->timed_out = 1;
			rc = 0;
			goto done;
		}
		if (iac_cache_redis_scan(&r, src, cursor, NULL) < 0)
			goto done;
		int b = copy_batch(w, src, i, &r.elems[1]);
		iac_resp_clear(&r);
		if (b < 0)
			goto done;
		pace(w);
	} while (strcmp(cursor, "0"));
	rc = 0;
done:
	iac_cache_conn_close(src);
	return rc;
}

/* memcached's metadump writes keys URI-encoded ("a%3Ab" for "a:b"). */
static void uri_decode(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
			char hex[3] = { s[1], s[2], 0 };
			*o++ = (char)strtol(hex, NULL, 16);
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

typedef struct {
	char *key;
	long long exp;    /* absolute Unix time, 0: none */
	size_t to;        /* new owner */
} mc_item;

/* The keys of old node i that move, from `lru_crawler metadump all`. */
static int mc_moving(mc_item **out, size_t *n, warm_run *w, iac_cache_conn *src, size_t i)
{
	size_t cap = 0;
	char *line = NULL;
	const char *old_pn = iac_ketama_point_name_of(w->old_ring, i);
	*out = NULL;
	*n = 0;
	if (iac_mc_send(src, "lru_crawler metadump all\r\n", 26) < 0)
		return IAC_ERR;
	for (;;) {
		if (iac_mc_line(&line, src) < 0)
			return IAC_ERR;
		if (!strcmp(line, "END"))
			break;
		if (strncmp(line, "key=", 4)) {
			iac_err_set("'%s' answered lru_crawler metadump with '%.60s'", iac_cache_conn_label(src), line);
			free(line);
			return IAC_ERR;
		}
		char *sp = strchr(line, ' '), *exp = strstr(line, " exp=");
		if (sp)
			*sp = '\0';
		uri_decode(line + 4);
		size_t len = strlen(line + 4);
		w->scanned++;
		size_t j = iac_ketama_locate(w->new_ring, line + 4, len);
		if (iac_ketama_locate(w->old_ring, line + 4, len) == i &&
		    strcmp(iac_ketama_point_name_of(w->new_ring, j), old_pn)) {
			if (*n == cap) {
				cap = cap ? cap * 2 : 1024;
				mc_item *grown = realloc(*out, cap * sizeof(mc_item));
				if (!grown) {
					free(line);
					return iac_err_set("out of memory");
				}
				*out = grown;
			}
			long long e = exp ? strtoll(exp + 5, NULL, 10) : -1;
			(*out)[(*n)++] = (mc_item){ iac_xstrdup(line + 4), e > 0 ? e : 0, j };
		}
		free(line);
	}
	free(line);
	return 0;
}

/* get of a batch from the source (pipelined), set on each new owner
 * (pipelined), with the value's flags and absolute expiry. */
static int mc_copy_batch(warm_run *w, iac_cache_conn *src, mc_item *items, size_t n)
{
	char *line = NULL, hdr[400];
	int rc = IAC_ERR;
	for (size_t k = 0; k < n; k++) {
		int l = snprintf(hdr, sizeof(hdr), "get %s\r\n", items[k].key);
		if (iac_mc_send(src, hdr, (size_t)l) < 0)
			return IAC_ERR;
	}
	for (size_t k = 0; k < n; k++) {
		unsigned long flags = 0;
		size_t bytes = 0;
		char *data = NULL;
		if (iac_mc_line(&line, src) < 0)
			goto done;
		if (!strcmp(line, "END")) {   /* gone since the dump */
			w->expired++;
			items[k].to = SIZE_MAX;
			free(line);
			line = NULL;
			continue;
		}
		char kbuf[256];
		if (sscanf(line, "VALUE %255s %lu %zu", kbuf, &flags, &bytes) != 3) {
			iac_err_set("'%s' answered get with '%.60s'", iac_cache_conn_label(src), line);
			goto done;
		}
		free(line);
		line = NULL;
		if (iac_mc_block(&data, src, bytes) < 0 || iac_mc_line(&line, src) < 0 || strcmp(line, "END")) {
			free(data);
			if (line)
				iac_err_set("'%s' sent more than one value for a get", iac_cache_conn_label(src));
			goto done;
		}
		free(line);
		line = NULL;
		iac_cache_conn *dst;
		int l = snprintf(hdr, sizeof(hdr), "set %s %lu %lld %zu\r\n", items[k].key, flags, items[k].exp, bytes);
		int ok = dst_conn(&dst, w, items[k].to) == 0 && iac_mc_send(dst, hdr, (size_t)l) == 0 &&
			 iac_mc_send(dst, data, bytes) == 0 && iac_mc_send(dst, "\r\n", 2) == 0;
		free(data);
		if (!ok)
			goto done;
	}
	for (size_t k = 0; k < n; k++) {
		if (items[k].to == SIZE_MAX)
			continue;
		if (iac_mc_line(&line, w->dst[items[k].to]) < 0)
			goto done;
		if (strcmp(line, "STORED")) {
			iac_err_set("set on '%s' answered '%.60s'", iac_cache_conn_label(w->dst[items[k].to]), line);
			goto done;
		}
		free(line);
		line = NULL;
		w->copied++;
	}
	rc = 0;
done:
	free(line);
	return rc;
}

static int warm_node_mc(warm_run *w, size_t i)
{
	const json_t *node = json_array_get(w->old_nodes, i);
	iac_cache_conn *src = NULL;
	mc_item *items = NULL;
	size_t n = 0;
	int rc = IAC_ERR;
	if (iac_cache_conn_open(&src, iac_json_str(node, "address"),
				(unsigned)json_integer_value(json_object_get(node, "port")), 10e3) < 0)
		return IAC_ERR;
	if (mc_moving(&items, &n, w, src, i) < 0)
		goto done;
	for (size_t k = 0; k < n; k += 200) {
		if (w->cancel && *w->cancel) {
			iac_err_set("warming cancelled");
			goto done;
		}
		if (iac_now_ms() > w->deadline_ms) {
			w->timed_out = 1;
			break;
		}
		if (mc_copy_batch(w, src, items + k, n - k < 200 ? n - k : 200) < 0)
			goto done;
		pace(w);
	}
	rc = 0;
done:
	for (size_t k = 0; k < n; k++)
		free(items[k].key);
	free(items);
	iac_cache_conn_close(src);
	return rc;
}

int iac_cache_warm(json_t **report, const json_t *old_attrs, const json_t *new_attrs, const json_t *warm,
		   const volatile int *cancel)
{
	warm_run w = { .cancel = cancel };
	double max_time = 0;
	int rc = IAC_ERR;
	*report = NULL;
	if (iac_cache_warm_parse(&w.max_rate, &max_time, warm) < 0)
		return IAC_ERR;
	if (iac_ketama_of_attrs(&w.old_ring, old_attrs) < 0 || iac_ketama_of_attrs(&w.new_ring, new_attrs) < 0)
		goto done;
	w.old_nodes = json_object_get(old_attrs, "nodes");
	w.new_nodes = json_object_get(new_attrs, "nodes");
	w.dst = calloc(json_array_size(w.new_nodes) + 1, sizeof(iac_cache_conn *));
	if (!w.dst) {
		iac_err_set("out of memory");
		goto done;
	}
	w.started_ms = iac_now_ms();
	w.deadline_ms = w.started_ms + max_time;
	for (size_t i = 0; i < json_array_size(w.old_nodes) && !w.timed_out; i++) {
		int redis = !strcmp(iac_json_str(new_attrs, "engine") ?: "", "redis");
		if ((redis ? warm_node(&w, i) : warm_node_mc(&w, i)) < 0) {
			iac_err_prefix("cannot warm from '%s'", iac_ketama_node_name(w.old_ring, i));
			goto done;
		}
	}
	*report = json_pack("{s:I,s:I,s:I,s:f,s:b}", "copied", (json_int_t)w.copied, "scanned", (json_int_t)w.scanned,
			    "expired", (json_int_t)w.expired, "seconds",
			    (double)(long long)(iac_now_ms() - w.started_ms) / 1000.0, "complete", !w.timed_out);
	rc = 0;
done:
	for (size_t j = 0; w.dst && j < json_array_size(w.new_nodes); j++)
		iac_cache_conn_close(w.dst[j]);
	free(w.dst);
	iac_ketama_free(w.old_ring);
	iac_ketama_free(w.new_ring);
	return rc;
}
