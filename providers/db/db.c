/* db: provider table and what the types and the command share (db.h). */
#include "providers/db/db.h"
#include "providers/db/shard.h"
#include "providers/db/migration.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/host/host.h"
#include "iac/http/http.h"

int iac_db_rest(json_t **out, long *status, const char *addr, long port, const char *method, const char *path,
		const json_t *body, double timeout_ms, const volatile int *cancel)
{
	iac_http *h = NULL;
	iac_http_resp r;
	char *base = iac_xasprintf("http://%s:%ld", addr, port);
	/* Patroni answers 503 on purpose (/primary on a replica): one
	 * attempt, the caller decides what a status means */
	iac_http_opts o = { .name = "patroni", .base_url = base, .timeout_ms = timeout_ms, .retries = 0,
			    .breaker_failures = 1000 };
	int rc;
	*out = NULL;
	*status = 0;
	memset(&r, 0, sizeof(r));
	if (iac_http_new(&h, &o) < 0) {
		free(base);
		return IAC_ERR;
	}
	rc = iac_http_request(&r, h, method, path, body, cancel);
	if (r.status > 0) {
		/* 503 is an answer here (iac_http counts it as a failure) */
		*status = r.status;
		*out = r.json ? json_incref(r.json) : json_loads(r.body ? r.body : "", JSON_DECODE_ANY, NULL);
		if (*out && !json_is_object(*out)) {
			json_decref(*out);
			*out = r.body && r.body[0] ? json_pack("{s:s}", "message", r.body) : NULL;
		}
		rc = 0;
		iac_err_clear();
	}
	iac_http_resp_free(&r);
	iac_http_free(h);
	free(base);
	return rc;
}

const char *iac_db_role(const char *r)
{
	if (!r)
		return "unknown";
	if (!strcmp(r, "master") || !strcmp(r, "primary") || !strcmp(r, "standby_leader"))
		return "leader";
	return r;
}

int iac_db_name_ok(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
		      *s == '-' || *s == '.'))
			return 0;
	return 1;
}

int iac_db_probe(const iac_rctx *ctx, const json_t *attrs)
{
	iac_ssh_conn *c;
	const json_t *host = json_object_get(attrs, "host");
	if (!ctx->hosts || !iac_host_is_remote(host))
		return 0;
	return iac_hosts_conn(&c, ctx->hosts, host, ctx->cancel);
}

int iac_db_pid(long *pid, const iac_rctx *ctx, const json_t *attrs, const char *pidfile)
{
	char *out = NULL;
	char *cmd = iac_xasprintf("p=$(head -1 '%s' 2>/dev/null) && kill -0 \"$p\" 2>/dev/null && echo \"$p\"; true", pidfile);
	int rc = iac_host_run(&out, ctx->hosts, json_object_get(attrs, "host"), cmd, 20e3, ctx->cancel);
	*pid = rc == 0 && out ? strtol(out, NULL, 10) : 0;
	free(out);
	free(cmd);
	return rc;
}

int iac_db_read_daemon(json_t **out, const iac_rctx *ctx, const json_t *prior, const char *pidfile)
{
	long pid;
	*out = NULL;
	if (iac_db_pid(&pid, ctx, prior, pidfile) < 0)
		return IAC_ERR;
	*out = pid > 0 ? json_deep_copy(prior) : NULL;
	return 0;
}

int iac_db_stop(const iac_rctx *ctx, const json_t *attrs, const char *pidfile, const char *sig, int wait_s,
		const char *then)
{
	char *cmd = iac_xasprintf("p=$(head -1 '%s' 2>/dev/null); if [ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null; then "
				  "kill -%s \"$p\"; for i in $(seq %d); do kill -0 \"$p\" 2>/dev/null || break; sleep 0.1; done; "
				  "kill -KILL \"$p\" 2>/dev/null; fi; %s; true",
				  pidfile, sig, wait_s * 10, then ? then : ":");
	int rc = iac_host_run(NULL, ctx->hosts, json_object_get(attrs, "host"), cmd, wait_s * 1e3 + 30e3, ctx->cancel);
	free(cmd);
	return rc;
}

void iac_db_set_sha(json_t *obj, const char *text)
{
	char hex[65];
	iac_sha256_hex(hex, text, strlen(text));
	json_object_set_new(obj, "config_sha256", json_string(hex));
}

static const iac_rtype *const db_types[] = { &iac_db_node_type, &iac_db_creds_type, &iac_db_proxy_type, &iac_db_migration_type, &iac_db_pooler_type, &iac_db_shard_type, &iac_db_migration_contract_type, &iac_db_exporter_type, &iac_db_lag_gate_type, &iac_db_partitions_type, &iac_db_maintenance_type, NULL };

static const iac_provider_command db_commands[] = {
	{ "db", iac_db_cmd, "PostgreSQL clusters: switchover, status", iac_db_cmd_help },
	{ NULL, NULL, NULL, NULL },
};

const iac_provider iac_provider_db = {
	.name = "db",
	.types = db_types,
	.commands = db_commands,
	.status_topics = (const char *const[]){ "db", NULL },
	.prelude = "prelude/db.lua",
	.finalize = iac_db_migration_finalize,
};
