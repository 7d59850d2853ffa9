/* SQL on a cluster's leader: which member leads (Patroni's word), and psql
 * there as postgres over the host's socket (no password crosses the wire).
 * Shared by the types that run SQL (migrations, partitions). */
#include "providers/db/db.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/host/host.h"

static long num(const json_t *a, const char *k, long dflt)
{
	const json_t *v = json_object_get(a, k);
	return json_is_number(v) ? (long)json_number_value(v) : dflt;
}

/* members' entry named name (borrowed), or NULL. */
static const json_t *member_named(const json_t *members, const char *name)
{
	size_t k;
	json_t *c;
	json_array_foreach(members, k, c) if (name && !strcmp(iac_json_str(c, "name") ?: "", name)) return c;
	return NULL;
}

/* The running leader in one member's GET /cluster answer, or NULL. */
static const json_t *leader_in(const json_t *members, const json_t *body)
{
	size_t j;
	json_t *pm;
	json_array_foreach(json_object_get(body, "members"), j, pm) {
		if (!strcmp(iac_db_role(iac_json_str(pm, "role")), "leader") &&
		    !strcmp(iac_json_str(pm, "state") ?: "", "running"))
			return member_named(members, iac_json_str(pm, "name"));
	}
	return NULL;
}

/* One pass over the members: the leader, or NULL (*answered: how many
 * members' Patroni answered at all). */
static const json_t *leader_once(const iac_rctx *ctx, const json_t *members, int *answered)
{
	size_t i;
	json_t *m;
	*answered = 0;
	json_array_foreach(members, i, m) {
		json_t *body = NULL;
		long status = 0;
		const char *addr = iac_json_str(json_object_get(m, "host"), "address");
		if (!addr || iac_db_rest(&body, &status, addr, num(m, "api_port", 8008), "GET", "/cluster", NULL, 2000,
					 ctx->cancel) < 0) {
			iac_err_clear();
			continue;
		}
		++*answered;
		const json_t *l = leader_in(members, body);
		json_decref(body);
		if (l)
			return l;
	}
	return NULL;
}

/* Patroni answering without a running leader is a moment, not a state: a
 * bootstrap that has not written its member key yet, an election after a
 * failover. That is waited out (LEADER_WAIT_MS); nobody answering is not. */
#define LEADER_WAIT_MS 30000.0

const json_t *iac_db_leader(const iac_rctx *ctx, const json_t *members, const char *cluster)
{
	double until = iac_now_ms() + LEADER_WAIT_MS;
	int answered = 0;
	for (;;) {
		const json_t *l = leader_once(ctx, members, &answered);
		if (l)
			return l;
		if (!answered || iac_now_ms() > until || (ctx->cancel && *ctx->cancel))
			break;
		usleep(500 * 1000);
	}
	iac_err_set("cluster '%s' has no running leader that Patroni reports%s", cluster ?: "?",
		    answered ? " (waited 30s)" : ": no member's Patroni answers");
	return NULL;
}

int iac_db_psql(iac_db_sql_result *r, const iac_rctx *ctx, const json_t *member, const char *database,
		const char *sql, int one_tx)
{
	iac_host_result hr;
	char *cmd = iac_xasprintf("cd / && runuser -u postgres -- psql -X -A -t -q -v ON_ERROR_STOP=1 %s-h /run/postgresql "
				  "-p %ld -d '%s'",
				  one_tx ? "-1 " : "", num(member, "port", 5432), database ?: "postgres");
	memset(&hr, 0, sizeof(hr));
	memset(r, 0, sizeof(*r));
	int rc = iac_host_exec(&hr, ctx->hosts, json_object_get(member, "host"), cmd, sql, 600e3, ctx->cancel);
	if (rc == 0) {
		r->status = hr.status;
		r->out = iac_xstrdup(hr.out ? hr.out : "");
		r->err = iac_xstrdup(hr.err ? hr.err : "");
	}
	iac_host_result_free(&hr);
	free(cmd);
	return rc;
}

void iac_db_sql_result_free(iac_db_sql_result *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

int iac_db_psql_retry_each(iac_db_sql_result *r, const iac_rctx *ctx, const json_t *member, const char *database,
			   const char *sql, int one_tx, long retries, const char *what, int (*before)(void *ud),
			   void *ud)
{
	double backoff = 500;
	for (long t = 1;; t++) {
		if ((before && before(ud) < 0) || iac_db_psql(r, ctx, member, database, sql, one_tx) < 0)
			return IAC_ERR;
		if (r->status == 0)
			return 0;
		int lock = strstr(r->err, "lock timeout") != NULL;
		if (!lock || t > retries || (ctx->cancel && *ctx->cancel)) {
			iac_err_set("%s failed on %s%s: %s", what, iac_host_label(json_object_get(member, "host")),
				    lock ? " (lock timeout on every attempt: a long transaction holds a lock it needs)" : "",
				    r->err);
			iac_db_sql_result_free(r);
			return IAC_ERR;
		}
		if (ctx->progress) {
			char *msg = iac_xasprintf("lock timeout, attempt %ld of %ld; again in %.1fs", t, retries + 1,
						  backoff / 1e3);
			ctx->progress(ctx, msg);
			free(msg);
		}
		iac_db_sql_result_free(r);
		usleep((useconds_t)(backoff * 1000));
		backoff = backoff * 2 > 8000 ? 8000 : backoff * 2;
	}
}

int iac_db_psql_retry(iac_db_sql_result *r, const iac_rctx *ctx, const json_t *member, const char *database,
		      const char *sql, int one_tx, long retries, const char *what)
{
	return iac_db_psql_retry_each(r, ctx, member, database, sql, one_tx, retries, what, NULL, NULL);
}

int iac_db_qualified_name_ok(const char *s)
{
	int part = 0;
	if (!s)
		return 0;
	for (const char *p = s;; p++) {
		int letter = *p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z');
		if (*p == '.' || !*p) {
			if (!part || (*p == '.' && p != s && strchr(p + 1, '.')))
				return 0;
			if (!*p)
				return 1;
			part = 0;
		} else if (letter || (part && *p >= '0' && *p <= '9')) {
			if (++part > 63)
				return 0;
		} else {
			return 0;
		}
	}
}
