/* SQL on a cluster's leader: which member leads (Patroni's word), and psql
 * there as postgres over the host's socket (no password crosses the wire).
 * Shared by the types that run SQL (migrations, partitions). */
#include "providers/db/db.h"

#include <stdlib.h>
#include <string.h>

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

const json_t *iac_db_leader(const iac_rctx *ctx, const json_t *members, const char *cluster)
{
	size_t i;
	json_t *m;
	json_array_foreach(members, i, m) {
		json_t *body = NULL;
		long status = 0;
		const char *addr = iac_json_str(json_object_get(m, "host"), "address");
		if (!addr || iac_db_rest(&body, &status, addr, num(m, "api_port", 8008), "GET", "/cluster", NULL, 2000,
					 ctx->cancel) < 0) {
			iac_err_clear();
			continue;
		}
		const json_t *l = leader_in(members, body);
		json_decref(body);
		if (l)
			return l;
	}
	iac_err_set("cluster '%s' has no running leader that Patroni reports", cluster ?: "?");
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
