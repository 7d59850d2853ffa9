/* db.lag_gate: a deployment gate on replication lag, through the graph.
 *
 * A deployment lists the gate in depends_on and the gate carries the
 * deployment's version, so every new version updates the gate first: it
 * asks the leader's pg_stat_replication how far each replica is behind and
 * passes once every one is within max_lag (bytes) and max_lag_seconds,
 * polling until `timeout`. A failed gate fails the apply before the
 * deployment starts its idle colour (a dependency failed): a new version
 * never goes out while the replicas serving its reads are behind. The deploy
 * provider knows nothing of it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/host/host.h"
#include "providers/db/db.h"

static const iac_attr gate_attrs[] = {
	{ "cluster", IAC_T_STRING, IAC_A_REQUIRED, "the cluster's name" },
	{ "members", IAC_T_LIST, IAC_A_REQUIRED, "[{host, name, port, api_port}] of the cluster's members" },
	{ "version", IAC_T_STRING, IAC_A_REQUIRED, "the deployment's version: a new one runs the gate again" },
	{ "max_lag", IAC_T_NUMBER, 0, "bytes of WAL a replica may be behind, default 1 MiB" },
	{ "max_lag_seconds", IAC_T_NUMBER, 0, "seconds a replica may be behind (replay_lag), default no limit" },
	{ "timeout", IAC_T_STRING, 0, "how long to wait for the lag to come down, default \"30s\"" },
	{ "last", IAC_T_MAP, IAC_A_COMPUTED, "what the gate saw when it passed: {replicas, max_lag_bytes, max_lag_seconds}" },
	{ NULL, 0, 0, NULL },
};

static const char lag_sql[] =
	"select coalesce(json_agg(json_build_object('name', application_name, 'lag_bytes', "
	"coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0), 'lag_seconds', "
	"coalesce(extract(epoch from replay_lag), 0))), '[]') from pg_stat_replication;\n";

/* The replicas' lag now (new ref), or NULL with a message. */
static json_t *lag_now(const iac_rctx *ctx, const json_t *a)
{
	iac_db_sql_result r;
	json_t *out = NULL;
	const json_t *m = iac_db_leader(ctx, json_object_get(a, "members"), iac_json_str(a, "cluster"));
	if (!m || iac_db_psql(&r, ctx, m, NULL, lag_sql, 0) < 0)
		return NULL;
	if (r.status == 0)
		out = json_loads(r.out, 0, NULL);
	if (!out)
		iac_err_set("reading pg_stat_replication on %s: %s", iac_host_label(json_object_get(m, "host")), r.err);
	iac_db_sql_result_free(&r);
	return out;
}

/* The replica furthest behind that breaks a limit (borrowed), or NULL. */
static const json_t *too_far(const json_t *reps, double max_b, double max_s, double *worst_b, double *worst_s)
{
	size_t i;
	json_t *e;
	const json_t *bad = NULL;
	*worst_b = *worst_s = 0;
	json_array_foreach(reps, i, e) {
		double b = json_number_value(json_object_get(e, "lag_bytes"));
		double s = json_number_value(json_object_get(e, "lag_seconds"));
		if (b > *worst_b)
			*worst_b = b;
		if (s > *worst_s)
			*worst_s = s;
		if (b > max_b || (max_s >= 0 && s > max_s))
			bad = e;
	}
	return bad;
}

static int gate_run(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	const json_t *mb = json_object_get(planned, "max_lag"), *ms = json_object_get(planned, "max_lag_seconds");
	double max_b = json_is_number(mb) ? json_number_value(mb) : 1048576;
	double max_s = json_is_number(ms) ? json_number_value(ms) : -1, timeout = 30e3, wb = 0, ws = 0;
	const char *t = iac_json_str(planned, "timeout");
	if (t && (iac_duration_parse(&timeout, t) < 0 || timeout < 0))
		return iac_err_set("attribute 'timeout': '%s' is not a duration (\"30s\")", t);
	double end = iac_now_ms() + timeout;
	for (;;) {
		json_t *reps = lag_now(ctx, planned);
		if (!reps)
			return IAC_ERR;
		const json_t *bad = too_far(reps, max_b, max_s, &wb, &ws);
		if (!bad) {
			*out = json_deep_copy(planned);
			json_object_set_new(*out, "last", json_pack("{s:I,s:f,s:f}", "replicas", (json_int_t)json_array_size(reps),
								    "max_lag_bytes", wb, "max_lag_seconds", ws));
			iac_log("%s: replication lag within limits (%zu replicas, at most %.0f bytes, %.3f s behind)", ctx->addr,
				json_array_size(reps), wb, ws);
			json_decref(reps);
			return 0;
		}
		if (iac_now_ms() >= end || (ctx->cancel && *ctx->cancel)) {
			iac_err_set("replication lag gate of cluster '%s': replica '%s' is %.0f bytes (%.3f s) behind, more than "
				    "max_lag %.0f bytes%s after waiting %.0fs; the deployment waits for replicas that keep up",
				    iac_json_str(planned, "cluster"), iac_json_str(bad, "name") ?: "?",
				    json_number_value(json_object_get(bad, "lag_bytes")),
				    json_number_value(json_object_get(bad, "lag_seconds")), max_b,
				    max_s >= 0 ? " or max_lag_seconds" : "", timeout / 1e3);
			json_decref(reps);
			return IAC_ERR;
		}
		json_decref(reps);
		usleep(500 * 1000);
	}
}

static int gate_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	return gate_run(ctx, out, planned);
}

static int gate_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	(void)prior;
	return gate_run(ctx, out, planned);
}

/* Nothing lives anywhere: what passed stays passed. */
static int gate_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	(void)ctx;
	*out = json_deep_copy(prior);
	return 0;
}

static int gate_remove(const iac_rctx *ctx, const json_t *prior)
{
	(void)ctx;
	(void)prior;
	return 0;
}

const iac_rtype iac_db_lag_gate_type = {
	.name = "db.lag_gate",
	.attrs = gate_attrs,
	.doc = "a deployment gate: every replica within max_lag before a new version goes out",
	.create = gate_create,
	.read = gate_read,
	.update = gate_update,
	.remove = gate_remove,
};
