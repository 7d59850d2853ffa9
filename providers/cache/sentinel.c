/* sentinel: where each node's primary is now, from Redis Sentinel
 * (cache_int.h). With replicas, a node is a name Sentinel monitors; after a
 * failover its primary has another address, and the ring document and the
 * proxy configuration must follow (the ring's points hash the node's name,
 * so keys stay where they are). */
#include "providers/cache/cache_int.h"
#include "providers/cache/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"

/* SENTINEL get-master-addr-by-name NAME from the first sentinel that
 * answers it; 0 with addr/port set, IAC_ENOTFOUND when none knows it. */
static int ask(char addr[256], long *port, const json_t *sentinels, const char *name)
{
	const json_t *s;
	size_t i;
	int reached = 0;
	char why[300] = "";
	json_array_foreach(sentinels, i, s) {
		char host[256];
		unsigned p = 0;
		const char *spec = json_string_value(s);
		const char *colon = spec ? strrchr(spec, ':') : NULL;
		if (!colon || (size_t)(colon - spec) >= sizeof(host) || sscanf(colon + 1, "%u", &p) != 1)
			return iac_err_set("sentinels: '%s' must be ADDRESS:PORT", spec ? spec : "?");
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = '\0';
		iac_cache_conn *c = NULL;
		iac_resp r;
		const char *argv[] = { "SENTINEL", "get-master-addr-by-name", name };
		if (iac_cache_conn_open(&c, host, p, 3000) < 0 || iac_resp_call(&r, c, 3, argv, NULL) < 0) {
			snprintf(why, sizeof(why), "%s", iac_err_last());
			iac_cache_conn_close(c);
			continue;
		}
		iac_cache_conn_close(c);
		reached = 1;
		int ok = r.type == IAC_RESP_ARRAY && r.n == 2 && r.elems[0].type == IAC_RESP_BULK &&
			 r.elems[1].type == IAC_RESP_BULK && r.elems[0].len < 256;
		if (ok) {
			memcpy(addr, r.elems[0].str, r.elems[0].len + 1);
			*port = strtol(r.elems[1].str, NULL, 10);
		}
		iac_resp_clear(&r);
		if (ok && *port > 0 && *port < 65536)
			return 0;
	}
	if (!reached)
		return iac_err_set("no sentinel of node '%s' answers: %s", name, why);
	return IAC_ENOTFOUND;
}

int iac_cache_live_nodes(json_t **out, char **changes, const json_t *attrs)
{
	const json_t *sentinels = json_object_get(attrs, "sentinels");
	json_t *n;
	size_t i;
	iac_buf what = IAC_BUF_INIT;
	*out = json_deep_copy(attrs);
	if (changes)
		*changes = NULL;
	if (!*out)
		return iac_err_set("out of memory");
	if (!json_array_size(sentinels))
		return 0;
	json_array_foreach(json_object_get(*out, "nodes"), i, n) {
		char addr[256];
		long port = 0;
		const char *name = iac_json_str(n, "name");
		int rc = name ? ask(addr, &port, sentinels, name) : IAC_ENOTFOUND;
		if (rc == IAC_ENOTFOUND)
			continue;   /* not monitored (yet): its configured address holds */
		if (rc < 0) {
			iac_buf_free(&what);
			json_decref(*out);
			*out = NULL;
			return IAC_ERR;
		}
		if (strcmp(addr, iac_json_str(n, "address") ?: "") ||
		    port != (long)json_integer_value(json_object_get(n, "port"))) {
			iac_buf_printf(&what, "%s%s now at %s:%ld", what.len ? ", " : "", name, addr, port);
			json_object_set_new(n, "address", json_string(addr));
			json_object_set_new(n, "port", json_integer(port));
		}
	}
	if (changes && what.len)
		*changes = iac_buf_detach(&what);
	iac_buf_free(&what);
	return 0;
}
