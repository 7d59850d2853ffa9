/* db.patroni_node: one PostgreSQL 15 server run by Patroni 3.0 on a host.
 *
 * The Patroni configuration is JSON (which YAML reads as is), rendered
 * with Jansson from the attributes and written 0600 for the postgres user.
 * The passwords are not in it: db.credentials writes them to
 * /etc/patroni/CLUSTER.env (0600, postgres), which Patroni reads as
 * PATRONI_SUPERUSER_PASSWORD and friends when it starts. That keeps this
 * type free of secrets, so its computed role and timeline stay readable in
 * plans and state (the engine redacts whatever is computed from a secret).
 *
 * Patroni runs detached as postgres (setpriv, no login session), its pid in
 * /run/postgresql/patroni-CLUSTER.pid; the data directory lives under the
 * host's /var/lib/postgresql/iac. The first node to take the leader key in
 * etcd runs initdb; the others bootstrap as streaming replicas with one
 * physical slot each (use_slots). `role` and `timeline` are what Patroni
 * says now: computed, so a failover or switchover never shows as a diff;
 * when the role differs from the one state recorded, read() keeps the old
 * one in `previous_role` and the plan says so in a note.
 */
#include "providers/db/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/core/value.h"
#include "iac/host/host.h"

static const iac_attr node_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the host PostgreSQL runs on" },
	{ "cluster", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the cluster (Patroni's scope)" },
	{ "name", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the member's name in the cluster" },
	{ "version", IAC_T_NUMBER, IAC_A_FORCE_NEW, "PostgreSQL major version, default 15" },
	{ "port", IAC_T_NUMBER, 0, "PostgreSQL's port, default 5432" },
	{ "api_port", IAC_T_NUMBER, 0, "Patroni's REST API port, default 8008" },
	{ "dcs", IAC_T_LIST, IAC_A_REQUIRED, "etcd endpoints (\"http://10.0.0.1:2379\" or \"10.0.0.1:2379\")" },
	{ "members", IAC_T_LIST, 0, "addresses of every member (pg_hba replication lines)" },
	{ "clients", IAC_T_LIST, 0, "networks apps connect from (pg_hba), default { \"samenet\" }" },
	{ "pg_hba", IAC_T_LIST, 0, "extra pg_hba.conf lines, before the generated ones" },
	{ "settings", IAC_T_MAP, 0, "postgresql.conf parameters" },
	{ "ttl", IAC_T_NUMBER, 0, "leader key TTL in seconds (failover takes about this long), default 10" },
	{ "loop_wait", IAC_T_NUMBER, 0, "Patroni's loop in seconds, default 2" },
	{ "max_lag_failover", IAC_T_NUMBER, 0, "bytes a replica may lag and still be promoted, default 1MB" },
	{ "config_sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of the Patroni config" },
	{ "role", IAC_T_STRING, IAC_A_COMPUTED, "leader or replica, as Patroni says now" },
	{ "previous_role", IAC_T_STRING, IAC_A_COMPUTED, "the role state recorded, when Patroni changed it since" },
	{ "timeline", IAC_T_NUMBER, IAC_A_COMPUTED, "the node's timeline, as Patroni says now" },
	{ NULL, 0, 0, NULL },
};

static long num(const json_t *a, const char *k, long dflt)
{
	const json_t *v = json_object_get(a, k);
	return json_is_number(v) ? (long)json_number_value(v) : dflt;
}

static const char *addr_of(const json_t *a)
{
	return iac_json_str(json_object_get(a, "host"), "address") ?: "127.0.0.1";
}

static char *data_dir(const json_t *a)
{
	return iac_xasprintf("/var/lib/postgresql/iac/%s", iac_json_str(a, "cluster"));
}

static char *cfg_path(const json_t *a)
{
	return iac_xasprintf("/etc/patroni/%s.yml", iac_json_str(a, "cluster"));
}

static char *pid_path(const json_t *a)
{
	return iac_xasprintf("/run/postgresql/patroni-%s.pid", iac_json_str(a, "cluster"));
}

static int validate(const json_t *a)
{
	const char *k[] = { "cluster", "name" };
	for (size_t i = 0; i < 2; i++)
		if (!iac_db_name_ok(iac_json_str(a, k[i])))
			return iac_err_set("attribute '%s': '%s' is not a name (letters, digits, '_', '-', '.')", k[i],
					   iac_json_str(a, k[i]) ?: "");
	if (num(a, "version", 15) != 15)
		return iac_err_set("attribute 'version': only PostgreSQL 15 is supported (Debian 12's)");
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(a, "dcs"), i, v) if (!json_is_string(v))
		return iac_err_set("attribute 'dcs': item %zu is not a string", i + 1);
	if (!json_array_size(json_object_get(a, "dcs")))
		return iac_err_set("attribute 'dcs': at least one etcd endpoint is needed");
	const char *lists[] = { "members", "clients", "pg_hba" };
	for (size_t l = 0; l < 3; l++)
		json_array_foreach(json_object_get(a, lists[l]), i, v) {
			if (!json_is_string(v) || strpbrk(json_string_value(v), "\n\r"))
				return iac_err_set("attribute '%s': item %zu is not a one-line string", lists[l], i + 1);
		}
	const char *key;
	json_object_foreach(json_object_get(a, "settings"), key, v) {
		if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v))
			return iac_err_set("attribute 'settings': '%s' must be a string, number or boolean", key);
	}
	return 0;
}

/* The Patroni configuration (new ref); passwords come from the
 * environment (db.credentials). */
static json_t *patroni_config(const json_t *a)
{
	const char *addr = addr_of(a), *cluster = iac_json_str(a, "cluster");
	long port = num(a, "port", 5432), api = num(a, "api_port", 8008);
	json_t *hosts = json_array(), *params = json_object(), *hba = json_array(), *v;
	size_t i;
	const char *k;

	json_array_foreach(json_object_get(a, "dcs"), i, v) {
		const char *e = json_string_value(v), *p = strstr(e, "://");
		json_array_append_new(hosts, json_string(p ? p + 3 : e));
	}
	json_object_set_new(params, "max_slot_wal_keep_size", json_string("1GB"));
	json_object_set_new(params, "password_encryption", json_string("scram-sha-256"));
	json_object_foreach(json_object_get(a, "settings"), k, v) json_object_set(params, k, v);
	json_t *local_params = json_deep_copy(params);
	json_object_set_new(local_params, "unix_socket_directories", json_string("/run/postgresql"));

	/* peer for the postgres user on the socket (iac status, psql on the
	 * host); Patroni and replicas over TCP with passwords */
	json_array_foreach(json_object_get(a, "pg_hba"), i, v) json_array_append(hba, v);
	json_array_append_new(hba, json_string("local all postgres peer"));
	json_array_append_new(hba, json_string("local all all scram-sha-256"));
	json_array_append_new(hba, json_string("host all postgres 127.0.0.1/32 scram-sha-256"));
	json_array_foreach(json_object_get(a, "members"), i, v) {
		json_array_append_new(hba, json_sprintf("host replication replicator %s/32 scram-sha-256",
							json_string_value(v)));
		json_array_append_new(hba, json_sprintf("host all postgres %s/32 scram-sha-256", json_string_value(v)));
	}
	json_t *clients = json_object_get(a, "clients");
	if (!json_array_size(clients))
		json_array_append_new(hba, json_string("host all all samenet scram-sha-256"));
	json_array_foreach(clients, i, v)
		json_array_append_new(hba, json_sprintf("host all all %s scram-sha-256", json_string_value(v)));

	char *dd = data_dir(a);
	char *pgpass = iac_xasprintf("/var/lib/postgresql/iac/%s.pgpass", cluster);
	json_t *cfg = json_pack(
		"{s:s,s:s,s:s,s:{s:s},s:{s:s%,s:s%},s:{s:o},"
		"s:{s:{s:i,s:i,s:i,s:i,s:{s:b,s:b,s:O}},s:[{s:s},s]},"
		"s:{s:s%,s:s%,s:s,s:s,s:s,s:{s:{s:s},s:{s:s},s:{s:s}},s:o,s:o}}",
		"scope", cluster, "name", iac_json_str(a, "name"), "namespace", "/iac-db/",
		"log", "level", "WARNING",
		"restapi", "listen", "", (size_t)0, "connect_address", "", (size_t)0,
		"etcd3", "hosts", hosts,
		"bootstrap", "dcs", "ttl", (int)num(a, "ttl", 10), "loop_wait", (int)num(a, "loop_wait", 2),
		"retry_timeout", (int)(num(a, "ttl", 10) / 2 > 0 ? num(a, "ttl", 10) / 2 : 1),
		"maximum_lag_on_failover", (int)num(a, "max_lag_failover", 1048576),
		"postgresql", "use_pg_rewind", 1, "use_slots", 1, "parameters", params,
		"initdb", "encoding", "UTF8", "data-checksums",
		"postgresql", "listen", "", (size_t)0, "connect_address", "", (size_t)0, "data_dir", dd,
		"bin_dir", "/usr/lib/postgresql/15/bin", "pgpass", pgpass,
		"authentication", "superuser", "username", "postgres", "replication", "username", "replicator",
		"rewind", "username", "postgres",
		"parameters", local_params, "pg_hba", hba);
	json_decref(params);
	free(dd);
	free(pgpass);
	if (!cfg)
		return NULL;
	/* json_pack cannot format: fill the addresses in afterwards */
	json_t *ra = json_object_get(cfg, "restapi"), *pg = json_object_get(cfg, "postgresql");
	json_object_set_new(ra, "listen", json_sprintf("%s:%ld", addr, api));
	json_object_set_new(ra, "connect_address", json_sprintf("%s:%ld", addr, api));
	json_object_set_new(pg, "listen", json_sprintf("%s,127.0.0.1:%ld", addr, port));
	json_object_set_new(pg, "connect_address", json_sprintf("%s:%ld", addr, port));
	/* a replica's base backup starts at once instead of at the leader's
	 * next spread checkpoint */
	json_object_set_new(pg, "basebackup", json_pack("[{s:s}]", "checkpoint", "fast"));
	return cfg;
}

static char *render(const json_t *a)
{
	json_t *cfg = patroni_config(a);
	char *text = cfg ? json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	json_decref(cfg);
	return text;
}

static void config_sha(char hex[65], const json_t *a)
{
	char *text = render(a);
	iac_sha256_hex(hex, text ? text : "", text ? strlen(text) : 0);
	free(text);
}

static int node_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	char hex[65];
	(void)ctx;
	(void)prior;
	if (iac_value_has_unknown(planned))
		return 0;
	if (validate(planned) < 0)
		return IAC_ERR;
	config_sha(hex, planned);
	json_object_set_new(planned, "config_sha256", json_string(hex));
	const char *was = iac_json_str(prior, "previous_role"), *now = iac_json_str(prior, "role");
	if (was && now && ctx->warn) {
		char *msg = iac_xasprintf("member '%s' of cluster '%s' is %s now, was %s (Patroni's failover or "
					  "switchover; iac leaves roles to Patroni)",
					  iac_json_str(planned, "name"), iac_json_str(planned, "cluster"), now, was);
		ctx->warn(ctx, msg);
		free(msg);
	}
	return 0;
}

/* Patroni's own view of this node: role and timeline into attrs. 0 when it
 * answered; "running" in *running when its PostgreSQL runs. */
static int observe(const iac_rctx *ctx, json_t *attrs, int *running)
{
	json_t *body = NULL;
	long status = 0;
	*running = 0;
	if (iac_db_rest(&body, &status, addr_of(attrs), num(attrs, "api_port", 8008), "GET", "/patroni", NULL, 2000,
			ctx->cancel) < 0)
		return IAC_ERR;
	const char *state = iac_json_str(body, "state");
	*running = state && !strcmp(state, "running");
	json_object_set_new(attrs, "role", json_string(iac_db_role(iac_json_str(body, "role"))));
	json_t *tl = json_object_get(body, "timeline");
	json_object_set_new(attrs, "timeline", json_is_integer(tl) ? json_incref(tl) : json_null());
	json_decref(body);
	return 0;
}

static int write_config(const iac_rctx *ctx, const json_t *a)
{
	char *text = render(a), *path = cfg_path(a);
	const json_t *host = json_object_get(a, "host");
	int rc = IAC_ERR;
	if (!text) {
		iac_err_set("cannot render the Patroni config");
		goto done;
	}
	/* the directory first, so the file is never readable by others */
	if (iac_host_run(NULL, ctx->hosts, host,
			 "id postgres >/dev/null 2>&1 || { echo 'no postgres user: install postgresql-15 and patroni' >&2; "
			 "exit 3; }; command -v patroni >/dev/null || { echo 'patroni is not installed' >&2; exit 3; }; "
			 "install -d -o postgres -g postgres -m 0700 /etc/patroni /var/lib/postgresql/iac && "
			 "install -d -o postgres -g postgres -m 2775 /run/postgresql && "
			 "install -d -o postgres -g postgres -m 0750 /var/log/patroni",
			 30e3, ctx->cancel) < 0)
		goto done;
	if (iac_host_write(ctx->hosts, host, path, text, strlen(text), "0600", ctx->cancel) < 0)
		goto done;
	char *cmd = iac_xasprintf("chown postgres:postgres '%s'", path);
	rc = iac_host_run(NULL, ctx->hosts, host, cmd, 20e3, ctx->cancel);
	free(cmd);
done:
	free(text);
	free(path);
	return rc;
}

static int start(const iac_rctx *ctx, const json_t *a)
{
	char *pf = pid_path(a), *cfg = cfg_path(a);
	const char *cluster = iac_json_str(a, "cluster");
	/* the passwords (db.credentials) reach Patroni as its environment */
	/* setpriv execs (no parent left behind as su/runuser would), setsid -f
	 * detaches from the SSH channel; $$ is Patroni's pid after exec */
	char *cmd = iac_xasprintf(
		"p=$(cat '%s' 2>/dev/null) && kill -0 \"$p\" 2>/dev/null && exit 0; cd / && "
		"setsid -f setpriv --reuid=postgres --regid=postgres --init-groups --reset-env "
		"sh -c 'set -a; . /etc/patroni/%s.env || exit 1; set +a; echo $$ > \"$0\"; exec patroni \"$1\"' '%s' '%s' "
		"</dev/null >>/var/log/patroni/%s.log 2>&1; "
		"for i in $(seq 100); do p=$(cat '%s' 2>/dev/null) && kill -0 \"$p\" 2>/dev/null && exit 0; sleep 0.05; done; "
		"echo 'patroni did not start; last lines of /var/log/patroni/%s.log:' >&2; tail -n 15 /var/log/patroni/%s.log >&2; "
		"exit 4",
		pf, cluster, pf, cfg, cluster, pf, cluster, cluster);
	int rc = iac_host_run(NULL, ctx->hosts, json_object_get(a, "host"), cmd, 30e3, ctx->cancel);
	free(cmd);
	free(pf);
	free(cfg);
	return rc;
}

/* Wait until Patroni says PostgreSQL runs (leader bootstrapped, or replica
 * streaming): a create that returns has a usable node. */
static int wait_running(const iac_rctx *ctx, json_t *attrs, double timeout_ms)
{
	double end = iac_now_ms() + timeout_ms;
	int running = 0;
	while (!(ctx->cancel && *ctx->cancel)) {
		if (observe(ctx, attrs, &running) == 0 && running)
			return 0;
		if (iac_now_ms() > end)
			break;
		usleep(250 * 1000);
	}
	char *tail = NULL, *cmd = iac_xasprintf("tail -n 15 /var/log/patroni/%s.log", iac_json_str(attrs, "cluster"));
	iac_host_run(&tail, ctx->hosts, json_object_get(attrs, "host"), cmd, 10e3, ctx->cancel);
	iac_err_set("PostgreSQL is not running under Patroni at '%s:%ld' after %.0fs; last lines of its log:\n%s",
		    addr_of(attrs), num(attrs, "api_port", 8008), timeout_ms / 1e3, tail ? tail : "");
	free(cmd);
	free(tail);
	return IAC_ERR;
}

static int node_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	json_t *attrs = json_deep_copy(planned);
	char hex[65];
	if (validate(planned) < 0 || write_config(ctx, planned) < 0 || start(ctx, planned) < 0 ||
	    wait_running(ctx, attrs, 120e3) < 0) {
		json_decref(attrs);
		return IAC_ERR;
	}
	config_sha(hex, planned);
	json_object_set_new(attrs, "config_sha256", json_string(hex));
	*out = attrs;
	return 0;
}

/* A new config: Patroni reloads it on HUP (local parameters, pg_hba); the
 * cluster-wide parameters live in etcd, so they are PATCHed to /config too,
 * where every member picks them up (some need a restart: Patroni says
 * "pending_restart"). */
static int node_update(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	json_t *attrs = json_deep_copy(planned), *body = NULL, *resp = NULL;
	long status = 0, pid;
	char hex[65];
	int rc = IAC_ERR;
	(void)prior;
	if (validate(planned) < 0 || write_config(ctx, planned) < 0)
		goto done;
	char *pf = pid_path(planned);
	int prc = iac_db_pid(&pid, ctx, planned, pf);
	free(pf);
	if (prc < 0)
		goto done;
	if (pid > 0) {
		char *cmd = iac_xasprintf("kill -HUP %ld", pid);
		rc = iac_host_run(NULL, ctx->hosts, json_object_get(planned, "host"), cmd, 20e3, ctx->cancel);
		free(cmd);
		if (rc < 0)
			goto done;
		rc = IAC_ERR;
	} else if (start(ctx, planned) < 0) {
		goto done;
	}
	json_t *cfg = patroni_config(planned);
	json_t *dcs_pg = json_object_get(json_object_get(json_object_get(cfg, "bootstrap"), "dcs"), "postgresql");
	body = json_pack("{s:{s:O?}}", "postgresql", "parameters", json_object_get(dcs_pg, "parameters"));
	json_decref(cfg);
	if (iac_db_rest(&resp, &status, addr_of(planned), num(planned, "api_port", 8008), "PATCH", "/config", body,
			5000, ctx->cancel) < 0 || status >= 300)
		iac_err_clear(); /* a replica still bootstrapping: the next reload carries it */
	if (wait_running(ctx, attrs, 60e3) < 0)
		goto done;
	config_sha(hex, planned);
	json_object_set_new(attrs, "config_sha256", json_string(hex));
	*out = attrs;
	attrs = NULL;
	rc = 0;
done:
	json_decref(attrs);
	json_decref(body);
	json_decref(resp);
	return rc;
}

static int node_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	int running = 0;
	long pid;
	*out = NULL;
	char *pf = pid_path(prior);
	int prc = iac_db_pid(&pid, ctx, prior, pf);
	free(pf);
	if (prc < 0)
		return IAC_ERR;
	if (pid <= 0)
		return 0;
	json_t *attrs = json_deep_copy(prior);
	if (observe(ctx, attrs, &running) < 0) {
		iac_err_clear();
		json_object_set_new(attrs, "role", json_string("unknown"));
	}
	const char *was = iac_json_str(prior, "role"), *now = iac_json_str(attrs, "role");
	if (was && now && strcmp(was, now))
		json_object_set_new(attrs, "previous_role", json_string(was));
	else
		json_object_del(attrs, "previous_role");
	*out = attrs;
	return 0;
}

/* Patroni stops its PostgreSQL on TERM (a leader hands over first when it
 * can); a postmaster left behind is stopped too. The data directory stays:
 * deleting a database is not something a destroy should do silently. */
static int node_remove(const iac_rctx *ctx, const json_t *prior)
{
	char *pf = pid_path(prior), *dd = data_dir(prior);
	char *pm = iac_xasprintf("%s/postmaster.pid", dd), *rm = iac_xasprintf("rm -f '%s'", pf);
	int rc = iac_db_stop(ctx, prior, pf, "TERM", 30, NULL);
	if (rc == 0)
		rc = iac_db_stop(ctx, prior, pm, "INT", 10, rm);   /* a postmaster Patroni left behind */
	free(rm);
	free(pm);
	free(pf);
	free(dd);
	return rc;
}

const iac_rtype iac_db_node_type = {
	.name = "db.patroni_node",
	.attrs = node_attrs,
	.doc = "a PostgreSQL 15 server run by Patroni on etcd (leader or streaming replica, as Patroni decides)",
	.plan = node_plan,
	.read = node_read,
	.create = node_create,
	.update = node_update,
	.remove = node_remove,
	.probe = iac_db_probe,
	.gone_reason = "not running",
};

/* ---- db.exporter ---------------------------------------------------------
 * prometheus-postgres-exporter (Debian's package) beside one member, for
 * Prometheus: it runs as postgres and reaches the local PostgreSQL over the
 * socket (peer authentication: no password anywhere), listening on the
 * member's address, port 9187 by default. Pid in
 * /run/postgresql/postgres-exporter-CLUSTER.pid. */

static const iac_attr exp_attrs[] = {
	{ "host", IAC_T_HOST, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the member's host" },
	{ "cluster", IAC_T_STRING, IAC_A_REQUIRED | IAC_A_FORCE_NEW, "the cluster's name" },
	{ "port", IAC_T_NUMBER, 0, "the exporter's port, default 9187" },
	{ "pg_port", IAC_T_NUMBER, 0, "the local PostgreSQL's port, default 5432" },
	{ "config_sha256", IAC_T_STRING, IAC_A_COMPUTED, "SHA-256 of the exporter's command line" },
	{ NULL, 0, 0, NULL },
};

static char *exp_pidfile(const json_t *a)
{
	return iac_xasprintf("/run/postgresql/postgres-exporter-%s.pid", iac_json_str(a, "cluster"));
}

/* The command that runs the exporter (in the foreground), or NULL. */
static char *exp_command(const json_t *a)
{
	const char *c = iac_json_str(a, "cluster");
	if (!iac_db_name_ok(c) || !iac_db_name_ok(addr_of(a))) {
		iac_err_set("attribute 'cluster' or the host's address: not a plain name");
		return NULL;
	}
	return iac_xasprintf("env \"DATA_SOURCE_NAME=host=/run/postgresql port=%ld user=postgres dbname=postgres "
			     "sslmode=disable\" prometheus-postgres-exporter --web.listen-address=%s:%ld",
			     num(a, "pg_port", 5432), addr_of(a), num(a, "port", 9187));
}

static int exp_plan(const iac_rctx *ctx, json_t *planned, const json_t *prior)
{
	(void)ctx;
	(void)prior;
	if (iac_value_has_unknown(planned))
		return 0;
	char *cmd = exp_command(planned);
	if (!cmd)
		return IAC_ERR;
	iac_db_set_sha(planned, cmd);
	free(cmd);
	return 0;
}

/* create and update: (re)start it with the command of planned */
static int exp_converge(const iac_rctx *ctx, json_t **out, const json_t *prior, const json_t *planned)
{
	char *cmd = exp_command(planned), *pf = exp_pidfile(planned), *run = NULL;
	int rc = IAC_ERR;
	if (!cmd)
		goto done;
	if (prior && iac_db_stop(ctx, prior, pf, "TERM", 5, NULL) < 0)
		goto done;
	/* the pidfile is the exporter's own pid: sh writes $$, then execs */
	run = iac_xasprintf("command -v prometheus-postgres-exporter >/dev/null || { echo 'prometheus-postgres-exporter "
			    "is not installed' >&2; exit 3; }; install -d -o postgres -g postgres -m 2775 /run/postgresql && "
			    "install -d -o postgres -g postgres -m 0750 /var/log/patroni && cd / && "
			    "setsid -f setpriv --reuid=postgres --regid=postgres --init-groups sh -c 'echo $$ > %s; exec %s' "
			    "</dev/null >>/var/log/patroni/postgres-exporter-%s.log 2>&1; "
			    "for i in $(seq 100); do p=$(cat %s 2>/dev/null) && kill -0 \"$p\" 2>/dev/null && exit 0; sleep 0.05; done; "
			    "echo 'prometheus-postgres-exporter did not start' >&2; tail -n 5 /var/log/patroni/postgres-exporter-%s.log >&2; exit 4",
			    pf, cmd, iac_json_str(planned, "cluster"), pf, iac_json_str(planned, "cluster"));
	if (iac_host_run(NULL, ctx->hosts, json_object_get(planned, "host"), run, 30e3, ctx->cancel) < 0)
		goto done;
	*out = json_deep_copy(planned);
	iac_db_set_sha(*out, cmd);
	rc = 0;
done:
	free(cmd);
	free(pf);
	free(run);
	return rc;
}

static int exp_create(const iac_rctx *ctx, json_t **out, const json_t *planned)
{
	return exp_converge(ctx, out, NULL, planned);
}

static int exp_read(const iac_rctx *ctx, json_t **out, const json_t *prior)
{
	char *pf = exp_pidfile(prior);
	int rc = iac_db_read_daemon(out, ctx, prior, pf);
	free(pf);
	return rc;
}

static int exp_remove(const iac_rctx *ctx, const json_t *prior)
{
	char *pf = exp_pidfile(prior);
	int rc = iac_db_stop(ctx, prior, pf, "TERM", 5, NULL);
	free(pf);
	return rc;
}

const iac_rtype iac_db_exporter_type = {
	.name = "db.exporter",
	.attrs = exp_attrs,
	.doc = "prometheus-postgres-exporter beside one member, for Prometheus",
	.plan = exp_plan,
	.read = exp_read,
	.create = exp_create,
	.update = exp_converge,
	.remove = exp_remove,
	.probe = iac_db_probe,
	.gone_reason = "not running",
};
