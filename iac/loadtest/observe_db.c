/* observe.db: a PostgreSQL cluster run by Patroni, seen through Patroni's
 * REST API (GET /cluster) once a second: which member leads and how far
 * each replica is behind it (bytes of WAL). No database password is
 * involved and nothing is run in the database. The engine knows nothing of
 * providers/db: the scenario names the members' REST addresses.
 */
#include "iac/loadtest/observe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/http/http.h"

typedef struct {
	double lag;               /* highest replica lag, bytes; NaN: not sampled */
	char lagging[64];         /* that replica */
	char leader[64];          /* "" when none */
} lt_db_second;

struct iac_lt_dbs {
	iac_http **api;           /* one client per member */
	char **addr;
	size_t count;
	lt_db_second *secs;
	size_t nsecs;
	int warned;
};

int iac_lt_patroni_parse(iac_lt_db_sample *out, const json_t *cluster)
{
	size_t i;
	json_t *m;
	memset(out, 0, sizeof(*out));
	out->lag_bytes = NAN;
	if (!json_is_array(json_object_get(cluster, "members")))
		return iac_err_set("Patroni's /cluster answer has no 'members'");
	json_array_foreach(json_object_get(cluster, "members"), i, m) {
		const char *role = iac_json_str(m, "role") ?: "", *name = iac_json_str(m, "name") ?: "?";
		const json_t *lag = json_object_get(m, "lag");
		if (!strcmp(role, "leader") || !strcmp(role, "master") || !strcmp(role, "primary") ||
		    !strcmp(role, "standby_leader")) {
			snprintf(out->leader, sizeof(out->leader), "%s", name);
			continue;
		}
		out->replicas++;
		/* "unknown" while a replica is not streaming: as far behind as it gets */
		double b = json_is_number(lag) ? json_number_value(lag) : INFINITY;
		if (isnan(out->lag_bytes) || b > out->lag_bytes) {
			out->lag_bytes = b;
			snprintf(out->lagging, sizeof(out->lagging), "%s", name);
		}
	}
	if (!out->replicas)
		out->lag_bytes = 0;
	return 0;
}

iac_lt_dbs *iac_lt_dbs_open(const iac_strlist *nodes)
{
	if (!nodes->n)
		return NULL;
	iac_lt_dbs *d = iac_xcalloc(1, sizeof(*d));
	d->api = iac_xcalloc(nodes->n, sizeof(*d->api));
	d->addr = iac_xcalloc(nodes->n, sizeof(*d->addr));
	for (size_t i = 0; i < nodes->n; i++) {
		char *url = iac_xasprintf("http://%s", nodes->items[i]);
		/* a sample must fit in its second: no retries, a short timeout */
		iac_http_opts o = { .name = "patroni", .base_url = url, .timeout_ms = 400, .retries = 0,
				    .breaker_failures = 1000 };
		if (iac_http_new(&d->api[i], &o) < 0) {
			iac_log_warn("cannot observe Patroni at '%s': %s", nodes->items[i], iac_err_last());
			d->api[i] = NULL;
		}
		d->addr[i] = iac_xstrdup(nodes->items[i]);
		free(url);
	}
	d->count = nodes->n;
	return d;
}

/* The first member that answers speaks for the cluster. */
static int ask(iac_lt_db_sample *out, iac_lt_dbs *d)
{
	for (size_t i = 0; i < d->count; i++) {
		iac_http_resp r;
		if (!d->api[i])
			continue;
		int rc = iac_http_request(&r, d->api[i], "GET", "/cluster", NULL, NULL);
		if (rc == 0 && r.status == 200)
			rc = iac_lt_patroni_parse(out, r.json);
		else if (rc == 0)
			rc = iac_err_set("Patroni at '%s' answered %ld", d->addr[i], r.status);
		iac_http_resp_free(&r);
		if (rc == 0)
			return 0;
	}
	return IAC_ERR;
}

void iac_lt_dbs_sample(iac_lt_dbs *d, long sec)
{
	iac_lt_db_sample s;
	if (!d || sec < 0)
		return;
	if ((size_t)sec >= d->nsecs) {
		d->secs = iac_xrealloc(d->secs, ((size_t)sec + 1) * sizeof(*d->secs));
		for (size_t i = d->nsecs; i <= (size_t)sec; i++)
			d->secs[i] = (lt_db_second){ .lag = NAN };
		d->nsecs = (size_t)sec + 1;
	}
	if (ask(&s, d) < 0) {
		if (!d->warned++)
			iac_log_warn("cannot observe the database through Patroni: %s", iac_err_last());
		iac_err_clear();
		return;
	}
	lt_db_second *x = &d->secs[sec];
	x->lag = s.lag_bytes;
	snprintf(x->lagging, sizeof(x->lagging), "%s", s.lagging);
	snprintf(x->leader, sizeof(x->leader), "%s", s.leader);
}

/* Leader changes over the run (first -> ... -> last), into out. */
static int leader_changes(const iac_lt_dbs *d, iac_buf *out)
{
	const char *prev = NULL;
	int n = 0;
	for (size_t s = 0; s < d->nsecs; s++) {
		const char *l = d->secs[s].leader;
		if (!*l)
			continue;   /* not sampled, or an election: the change is counted once a leader runs */
		if (prev && strcmp(prev, l)) {
			n++;
			if (out)
				iac_buf_printf(out, "%s%s -> %s at t=%zu s", n > 1 ? ", " : "", *prev ? prev : "none",
					       *l ? l : "none", s);
		}
		prev = l;
	}
	return n;
}

static double max_lag(const iac_lt_dbs *d, const char **who)
{
	double m = NAN;
	*who = NULL;
	for (size_t s = 0; s < d->nsecs; s++)
		if (!isnan(d->secs[s].lag) && (isnan(m) || d->secs[s].lag > m)) {
			m = d->secs[s].lag;
			*who = d->secs[s].lagging;
		}
	return m;
}

void iac_lt_dbs_text(iac_buf *out, const iac_lt_dbs *d)
{
	const char *who;
	if (!d)
		return;
	double m = max_lag(d, &who);
	iac_buf b = IAC_BUF_INIT;
	int changes = leader_changes(d, &b);
	char lag[32];
	snprintf(lag, sizeof(lag), isinf(m) ? "unknown (not streaming)" : "%.0f bytes", m);
	if (isnan(m))
		iac_buf_puts(out, "    database (Patroni): not sampled\n");
	else
		iac_buf_printf(out, "    database (Patroni): max replica lag %s%s%s%s; leader changes %d%s%s%s\n", lag,
			       who && *who ? " (" : "", who && *who ? who : "", who && *who ? ")" : "", changes,
			       changes ? " (" : "", iac_buf_cstr(&b), changes ? ")" : "");
	iac_buf_free(&b);
}

json_t *iac_lt_dbs_json(const iac_lt_dbs *d)
{
	const char *who;
	if (!d)
		return NULL;
	double m = max_lag(d, &who);
	json_t *addrs = json_array();
	for (size_t i = 0; i < d->count; i++)
		json_array_append_new(addrs, json_string(d->addr[i]));
	return json_pack("{s:o,s:o,s:s?,s:i}", "patroni", addrs, "max_lag_bytes", isnan(m) || isinf(m) ? json_null() : json_real(m),
			 "lagging", who && *who ? who : NULL, "leader_changes", leader_changes(d, NULL));
}

json_t *iac_lt_dbs_second_json(const iac_lt_dbs *d, size_t sec)
{
	if (!d || sec >= d->nsecs || (isnan(d->secs[sec].lag) && !*d->secs[sec].leader))
		return NULL;
	const lt_db_second *x = &d->secs[sec];
	return json_pack("{s:o,s:s?}", "lag_bytes", isnan(x->lag) || isinf(x->lag) ? json_null() : json_real(x->lag),
			 "leader", *x->leader ? x->leader : NULL);
}

double *iac_lt_dbs_lag(size_t *n, const char **lagging, const iac_lt_dbs *d)
{
	*n = 0;
	*lagging = NULL;
	if (!d || !d->nsecs)
		return NULL;
	max_lag(d, lagging);
	double *v = iac_xmalloc(d->nsecs * sizeof(*v));
	for (size_t s = 0; s < d->nsecs; s++)
		v[s] = d->secs[s].lag;
	*n = d->nsecs;
	return v;
}

void iac_lt_dbs_close(iac_lt_dbs *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->count; i++) {
		iac_http_free(d->api[i]);
		free(d->addr[i]);
	}
	free(d->api);
	free(d->addr);
	free(d->secs);
	free(d);
}
