/* cmd_pool: `iac pool status [NAME]` (also `iac status pool [NAME]`).
 *
 * For each deployment in state (or the one whose deployment or pool is
 * NAME), from every HAProxy of its lb: each server's state, weight,
 * current sessions, queue, requests per second over a one-second window, average response time (HAProxy's, over its last 1024 requests),
 * and the CPU use of each app host over the same window; then a finding:
 * whether the live servers carry load in proportion to their weights.
 * Reads state only; changes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "providers/deploy/deploy.h"

#include "iac/cli/session.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/host/host.h"

#define WINDOW_MS 1000
/* A live server taking more than this many times the requests per weight
 * of another is uneven; below MIN_RATE req/s in all, there is too little
 * traffic to say. */
#define UNEVEN_RATIO 1.5
#define MIN_RATE 20.0

typedef struct {
	unsigned long long busy, total;
} cpu_sample;

/* "cpu  user nice system idle iowait irq softirq steal" of /proc/stat. */
static int cpu_parse(cpu_sample *out, const char *line)
{
	unsigned long long v[8] = { 0 };
	if (!line || sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
			    &v[5], &v[6], &v[7]) < 4)
		return -1;
	out->total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
	out->busy = out->total - v[3] - v[4];
	return 0;
}

static int cpu_read(cpu_sample *out, iac_hosts *hosts, const json_t *host)
{
	char *text = NULL;
	int rc = iac_host_run(&text, hosts, host, "head -n 1 /proc/stat", 5000, &iac_cancel_requested);
	if (rc == 0)
		rc = cpu_parse(out, text);
	free(text);
	iac_err_clear();
	return rc;
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

int iac_deploy_cpu_mean(double *out_pct, iac_hosts *hosts, const json_t *const *list, size_t n, long window_ms)
{
	cpu_sample c0[64], c1[64];
	int ok[64];
	double sum = 0;
	size_t got = 0;
	if (n > 64)
		n = 64;
	for (size_t i = 0; i < n; i++)
		ok[i] = cpu_read(&c0[i], hosts, list[i]) == 0;
	nap_ms(window_ms);
	for (size_t i = 0; i < n; i++) {
		if (!ok[i] || cpu_read(&c1[i], hosts, list[i]) < 0 || c1[i].total <= c0[i].total)
			continue;
		sum += 100.0 * (double)(c1[i].busy - c0[i].busy) / (double)(c1[i].total - c0[i].total);
		got++;
	}
	if (!got)
		return iac_err_set("cannot read the CPU use of any of the pool's %zu host%s", n, n == 1 ? "" : "s");
	*out_pct = sum / (double)got;
	return 0;
}

/* The pool's distinct hosts (borrowed), at most max. */
static size_t pool_hosts(const json_t **out, size_t max, const json_t *pool)
{
	size_t n = 0, i;
	const json_t *inst;
	json_array_foreach(json_object_get(pool, "instances"), i, inst) {
		const json_t *h = json_object_get(inst, "host");
		const char *name = iac_json_str(h, "name");
		size_t j;
		if (!json_is_object(h) || !name)
			continue;
		for (j = 0; j < n && strcmp(iac_json_str(out[j], "name") ?: "", name); j++)
			;
		if (j == n && n < max)
			out[n++] = h;
	}
	return n;
}

static const char *host_of(const json_t *pool, const char *server)
{
	size_t i;
	const json_t *inst;
	json_array_foreach(json_object_get(pool, "instances"), i, inst)
		if (!strcmp(iac_json_str(inst, "name") ?: "", server))
			return iac_json_str(json_object_get(inst, "host"), "name") ?: "this machine";
	return "?";
}

/* One HAProxy's servers with rates from two samples (new ref). */
static json_t *servers_json(const iac_haproxy_stat *a, size_t na, const iac_haproxy_stat *b, size_t nb,
			    const char *backend, const json_t *pool, double secs)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < nb; i++) {
		if (b[i].type != 2 || strcmp(b[i].pxname, backend))
			continue;
		const iac_haproxy_stat *old = iac_haproxy_stat_find(a, na, backend, b[i].svname);
		/* lbtot: times the balancer picked it, once per request even on a
		 * reused server connection (stot counts connections) */
		double rate = old && secs > 0 ? (double)(b[i].lbtot - old->lbtot) / secs : 0;
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:f,s:I,s:I}", "server", b[i].svname,
			"host", host_of(pool, b[i].svname), "state", b[i].status, "weight", (json_int_t)b[i].weight,
			"sessions", (json_int_t)b[i].scur, "queue", (json_int_t)b[i].qcur, "rate", rate < 0 ? 0 : rate,
			"response_ms", (json_int_t)b[i].rtime, "requests", (json_int_t)b[i].stot));
	}
	return arr;
}

/* The finding over the live colour's servers that are up with a weight:
 * requests per second per unit of weight, the busiest against the idlest. */
static json_t *finding(const json_t *servers, const char *live)
{
	double total = 0, hi = -1, lo = -1;
	const char *hi_s = "?", *lo_s = "?";
	char text[256];
	size_t i, n = 0;
	const json_t *s;
	json_array_foreach(servers, i, s) {
		const char *name = iac_json_str(s, "server") ?: "";
		double w = (double)json_integer_value(json_object_get(s, "weight"));
		if ((live && strncmp(name, live, strlen(live))) || w <= 0 ||
		    strncmp(iac_json_str(s, "state") ?: "", "UP", 2))
			continue;
		double r = json_real_value(json_object_get(s, "rate"));
		total += r;
		n++;
		if (hi < 0 || r / w > hi) {
			hi = r / w;
			hi_s = name;
		}
		if (lo < 0 || r / w < lo) {
			lo = r / w;
			lo_s = name;
		}
	}
	const char *verdict = "even";
	if (n < 2 || total < MIN_RATE) {
		verdict = "unknown";
		snprintf(text, sizeof(text), "%s", n < 2 ? "fewer than 2 live servers up"
			 : "too little traffic to judge (under 20 req/s)");
	} else if (lo <= 0) {
		verdict = "uneven";
		snprintf(text, sizeof(text), "%s takes no requests while %s takes %.0f/s per weight", lo_s, hi_s, hi);
	} else if (hi / lo > UNEVEN_RATIO) {
		verdict = "uneven";
		snprintf(text, sizeof(text), "%s takes %.1fx the requests per weight of %s", hi_s, hi / lo, lo_s);
	} else {
		snprintf(text, sizeof(text), "live servers within %.2fx of each other per weight", hi / lo);
	}
	return json_pack("{s:s,s:s}", "verdict", verdict, "text", text);
}

/* Two samples of every HAProxy of the lb and of every host's CPU, one
 * window apart (new ref). */
static json_t *deployment_status(iac_session *s, const char *addr, const json_t *a)
{
	const json_t *pool = json_object_get(a, "pool"), *lb = json_object_get(a, "lb"), *lbs[16], *hosts[64];
	const char *backend = iac_json_str(lb, "backend") ?: "app";
	size_t nl = iac_deploy_lbs(lbs, 16, lb), nh = pool_hosts(hosts, 64, pool);
	iac_haproxy *h[16] = { 0 };
	iac_haproxy_stat *before[16] = { 0 }, *after[16] = { 0 };
	size_t nb[16] = { 0 }, na[16] = { 0 };
	cpu_sample c0[64], c1[64];
	int cok[64];
	iac_rctx ctx;
	iac_providers_ctx(&ctx, s->pv, &iac_provider_deploy, addr, &iac_cancel_requested);

	for (size_t l = 0; l < nl; l++)
		if (iac_haproxy_open(&h[l], iac_json_str(lbs[l], "api"), 2000) < 0 ||
		    iac_haproxy_show_stat(&before[l], &nb[l], h[l], backend) < 0)
			iac_log_warn("HAProxy '%s': %s", iac_json_str(lbs[l], "api") ?: "?", iac_err_last());
	for (size_t i = 0; i < nh; i++)
		cok[i] = cpu_read(&c0[i], ctx.hosts, hosts[i]) == 0;
	double t0 = iac_now_ms();
	nap_ms(WINDOW_MS);
	for (size_t i = 0; i < nh; i++)
		cok[i] = cok[i] && cpu_read(&c1[i], ctx.hosts, hosts[i]) == 0;
	double secs = (iac_now_ms() - t0) / 1000;
	json_t *out = json_pack("{s:s,s:s?,s:s?,s:s,s:[],s:{}}", "deployment", iac_json_str(a, "$name"),
				"live", iac_json_str(a, "live"), "version", iac_json_str(a, "live_version"),
				"backend", backend, "lbs", "cpu");
	for (size_t l = 0; l < nl; l++) {
		if (h[l] && before[l])
			iac_haproxy_show_stat(&after[l], &na[l], h[l], backend);
		json_t *sv = after[l] ? servers_json(before[l], nb[l], after[l], na[l], backend, pool, secs) : json_array();
		json_t *e = json_pack("{s:s,s:o}", "api", iac_json_str(lbs[l], "api") ?: "?", "servers", sv);
		json_object_set_new(e, "finding", finding(sv, iac_json_str(a, "live")));
		json_array_append_new(json_object_get(out, "lbs"), e);
		free(before[l]);
		free(after[l]);
		iac_haproxy_free(h[l]);
	}
	for (size_t i = 0; i < nh; i++) {
		double d = (double)(c1[i].total - c0[i].total);
		json_object_set_new(json_object_get(out, "cpu"), iac_json_str(hosts[i], "name"),
				    cok[i] && d > 0 ? json_real(100.0 * (double)(c1[i].busy - c0[i].busy) / d) : json_null());
	}
	return out;
}

static void print_status(const json_t *d)
{
	size_t i, j;
	const json_t *e, *sv;
	printf("deployment '%s': live %s (%s), backend '%s'\n", iac_json_str(d, "deployment") ?: "?",
	       iac_json_str(d, "live") ?: "?", iac_json_str(d, "version") ?: "?", iac_json_str(d, "backend"));
	json_array_foreach(json_object_get(d, "lbs"), i, e) {
		printf("  HAProxy %s\n    %-10s %-10s %-8s %6s %8s %6s %8s %8s\n", iac_json_str(e, "api"), "server",
		       "host", "state", "weight", "sessions", "queue", "req/s", "resp_ms");
		json_array_foreach(json_object_get(e, "servers"), j, sv)
			printf("    %-10s %-10s %-8s %6lld %8lld %6lld %8.1f %8lld\n", iac_json_str(sv, "server"),
			       iac_json_str(sv, "host"), iac_json_str(sv, "state"),
			       (long long)json_integer_value(json_object_get(sv, "weight")),
			       (long long)json_integer_value(json_object_get(sv, "sessions")),
			       (long long)json_integer_value(json_object_get(sv, "queue")),
			       json_real_value(json_object_get(sv, "rate")),
			       (long long)json_integer_value(json_object_get(sv, "response_ms")));
		const json_t *f = json_object_get(e, "finding");
		printf("    %s: %s\n", iac_json_str(f, "verdict"), iac_json_str(f, "text"));
	}
	const char *k;
	const json_t *v;
	printf("  cpu:");
	json_object_foreach((json_t *)json_object_get(d, "cpu"), k, v) {
		if (json_is_number(v))
			printf(" %s %.0f%%", k, json_number_value(v));
		else
			printf(" %s ?", k);
	}
	printf("\n");
}

static int pool_status(iac_session *s, const char *only)
{
	size_t n, found = 0;
	const char **addrs = iac_state_addresses(s->st, &n);
	json_t *all = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *e = iac_state_get(s->st, addrs[i]);
		if (strcmp(iac_json_str(e, "type") ?: "", "deploy.blue_green"))
			continue;
		json_t *a = json_deep_copy(json_object_get(e, "attributes"));
		const char *dot = strrchr(addrs[i], '.');
		json_object_set_new(a, "$name", json_string(dot ? dot + 1 : addrs[i]));
		const char *pname = iac_json_str(json_object_get(a, "pool"), "name");
		if (!only || !strcmp(only, dot ? dot + 1 : addrs[i]) || (pname && !strcmp(only, pname))) {
			json_array_append_new(all, deployment_status(s, addrs[i], a));
			found++;
		}
		json_decref(a);
	}
	free(addrs);
	int rc = 0;
	if (!found) {
		iac_log_error(only ? "no deployment or pool named '%s' in the state" : "no deployment in the state%s",
			      only ? only : "");
		rc = 1;
	} else if (s->json) {
		json_t *doc = json_pack("{s:O}", "deployments", all);
		char *text = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
		printf("%s\n", text);
		free(text);
		json_decref(doc);
	} else {
		size_t i;
		const json_t *d;
		json_array_foreach(all, i, d)
			print_status(d);
	}
	json_decref(all);
	return rc;
}

int iac_deploy_cmd_pool(int argc, char **argv)
{
	iac_session s;
	iac_strlist pos = { 0 };
	int rc = 1;
	iac_session_init(&s, "pool");
	if (iac_session_args(&s, IAC_F_JSON, argc, argv, &pos) < 0)
		goto out;
	if (!pos.n || strcmp(pos.items[0], "status") || pos.n > 2) {
		iac_log_error("usage: iac pool status [NAME] [-json]");
		goto out;
	}
	if (iac_session_backend(&s, 0) < 0 || iac_session_open_state(&s, 0) < 0)
		goto out;
	s.pv = iac_providers_new(iac_state_extra(s.st, "providers"), NULL, ".");
	rc = pool_status(&s, pos.n > 1 ? pos.items[1] : NULL);
out:
	iac_session_close(&s);
	iac_strlist_free(&pos);
	return rc;
}

void iac_deploy_cmd_pool_help(void)
{
	printf("\nusage: iac pool status [NAME] [-json]      (also: iac status pool [NAME])\n\n"
	       "For each deployment (or the one whose deployment or pool is NAME), from every\n"
	       "HAProxy in front of it: each server's state, weight, sessions, queue, new\n"
	       "sessions per second and average response time over one second, the CPU use\n"
	       "of each app host over the same second, and whether the live servers carry\n"
	       "load in proportion to their weights (uneven: one takes more than 1.5x the\n"
	       "requests per weight of another). Reads state only; changes nothing.\n");
	iac_session_usage(IAC_F_JSON);
}
