/* lt_agent: agents over SSH and the lossless merge (see agent.h). */
#include "iac/loadtest/agent.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/util.h"
#include "iac/host/host.h"

/* ---- the raw document ------------------------------------------------ */

static json_t *hist_json(const iac_lt_hist *h)
{
	json_t *b = json_array();
	for (int i = 0; i < IAC_LT_HIST_LEN; i++)
		if (h->counts[i])
			json_array_append_new(b, json_pack("[iI]", i, (json_int_t)h->counts[i]));
	return json_pack("{sI sI sI sf so}", "count", (json_int_t)h->count, "min", (json_int_t)h->min, "max",
			 (json_int_t)h->max, "sum", h->sum, "buckets", b);
}

/* h += the histogram j; -1 when j is not one */
static int hist_merge_json(iac_lt_hist *h, const json_t *j)
{
	json_t *b = json_object_get(j, "buckets");
	if (!json_is_array(b))
		return -1;
	iac_lt_hist x;
	iac_lt_hist_init(&x);
	size_t i;
	json_t *e;
	json_array_foreach(b, i, e) {
		json_int_t k = json_integer_value(json_array_get(e, 0)), n = json_integer_value(json_array_get(e, 1));
		if (k < 0 || k >= IAC_LT_HIST_LEN || n < 0)
			return -1;
		x.counts[k] += (uint64_t)n;
	}
	x.count = (uint64_t)json_integer_value(json_object_get(j, "count"));
	x.min = (uint64_t)json_integer_value(json_object_get(j, "min"));
	x.max = (uint64_t)json_integer_value(json_object_get(j, "max"));
	x.sum = json_number_value(json_object_get(j, "sum"));
	if (x.count)
		iac_lt_hist_merge(h, &x);
	return 0;
}

static json_t *u64_array(const uint64_t *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer((json_int_t)v[i]));
	return a;
}

static void u64_add(uint64_t *v, size_t n, const json_t *a)
{
	for (size_t i = 0; i < n && i < json_array_size(a); i++)
		v[i] += (uint64_t)json_integer_value(json_array_get(a, i));
}

json_t *iac_lt_raw_json(const iac_lt_stats *s, double elapsed_s, int vus_max, int valid, double cpu_max_pct,
			const char *why)
{
	json_t *o = json_object();
	json_object_set_new(o, "iac_loadtest_raw", json_integer(1));
	json_object_set_new(o, "elapsed_s", json_real(elapsed_s));
	json_object_set_new(o, "vus_max", json_integer(vus_max));
	json_object_set_new(o, "valid", json_boolean(valid));
	json_object_set_new(o, "cpu_max_pct", json_real(cpu_max_pct));
	json_object_set_new(o, "why", why ? json_string(why) : json_null());
	uint64_t c[7] = { s->requests, s->failed, s->iterations, s->dropped, s->script_errors, s->bytes_in, s->bytes_out };
	json_object_set_new(o, "counts", u64_array(c, 7));
	json_object_set_new(o, "transport", u64_array(s->transport, IAC_LT_NERR));
	json_object_set_new(o, "status", u64_array(s->status, 600));
	json_object_set_new(o, "hist", hist_json(&s->hist));
	json_t *eps = json_array();
	for (size_t i = 0; i < s->neps; i++)
		json_array_append_new(eps, json_pack("{ss sI sI so}", "name", s->eps[i]->name, "requests",
						     (json_int_t)s->eps[i]->requests, "failed", (json_int_t)s->eps[i]->failed,
						     "hist", hist_json(&s->eps[i]->hist)));
	json_object_set_new(o, "endpoints", eps);
	json_t *checks = json_array();
	for (size_t i = 0; i < s->nchecks; i++)
		json_array_append_new(checks, json_pack("{ss sI sI}", "name", s->checks[i].name, "pass",
							(json_int_t)s->checks[i].pass, "fail", (json_int_t)s->checks[i].fail));
	json_object_set_new(o, "checks", checks);
	json_t *ms = json_array();
	for (size_t i = 0; i < s->nmacc; i++) {
		const iac_lt_macc *m = &s->macc[i];
		json_t *x = json_pack("{ss si sI sI sf sf sf sf sI}", "name", m->name, "type", (int)m->type, "n",
				      (json_int_t)m->n, "nonzero", (json_int_t)m->nonzero, "sum", m->sum, "last", m->last,
				      "min", m->min, "max", m->max, "last_at", (json_int_t)m->last_at);
		if (m->hist)
			json_object_set_new(x, "hist", hist_json(m->hist));
		json_array_append_new(ms, x);
	}
	json_object_set_new(o, "metrics", ms);
	return o;
}

int iac_lt_raw_merge(iac_lt_stats *into, const json_t *raw)
{
	if (!json_object_get(raw, "iac_loadtest_raw"))
		return iac_err_set("not an agent's raw figures (no 'iac_loadtest_raw')");
	iac_lt_stats s;
	iac_lt_stats_init(&s);
	uint64_t c[7] = { 0 };
	u64_add(c, 7, json_object_get(raw, "counts"));
	s.requests = c[0];
	s.failed = c[1];
	s.iterations = c[2];
	s.dropped = c[3];
	s.script_errors = c[4];
	s.bytes_in = c[5];
	s.bytes_out = c[6];
	u64_add(s.transport, IAC_LT_NERR, json_object_get(raw, "transport"));
	u64_add(s.status, 600, json_object_get(raw, "status"));
	int rc = hist_merge_json(&s.hist, json_object_get(raw, "hist"));
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(raw, "endpoints"), i, e) {
		size_t k = iac_lt_stats_endpoint(&s, iac_json_str(e, "name"));
		s.eps[k]->requests += (uint64_t)json_integer_value(json_object_get(e, "requests"));
		s.eps[k]->failed += (uint64_t)json_integer_value(json_object_get(e, "failed"));
		rc |= hist_merge_json(&s.eps[k]->hist, json_object_get(e, "hist"));
	}
	json_array_foreach(json_object_get(raw, "checks"), i, e) {
		size_t k = iac_lt_stats_check(&s, iac_json_str(e, "name"));
		s.checks[k].pass += (uint64_t)json_integer_value(json_object_get(e, "pass"));
		s.checks[k].fail += (uint64_t)json_integer_value(json_object_get(e, "fail"));
	}
	json_array_foreach(json_object_get(raw, "metrics"), i, e) {
		size_t k = iac_lt_stats_metric(&s, iac_json_str(e, "name"),
					       (enum iac_lt_mtype)json_integer_value(json_object_get(e, "type")));
		iac_lt_macc *m = &s.macc[k];
		m->n = (uint64_t)json_integer_value(json_object_get(e, "n"));
		m->nonzero = (uint64_t)json_integer_value(json_object_get(e, "nonzero"));
		m->sum = json_number_value(json_object_get(e, "sum"));
		m->last = json_number_value(json_object_get(e, "last"));
		m->min = json_number_value(json_object_get(e, "min"));
		m->max = json_number_value(json_object_get(e, "max"));
		m->last_at = (uint64_t)json_integer_value(json_object_get(e, "last_at"));
		json_t *h = json_object_get(e, "hist");
		if (h) {
			m->hist = iac_xmalloc(sizeof(*m->hist));
			iac_lt_hist_init(m->hist);
			rc |= hist_merge_json(m->hist, h);
		}
	}
	if (rc == 0)
		iac_lt_stats_merge(into, &s);
	iac_lt_stats_free(&s);
	return rc ? iac_err_set("an agent's raw figures hold a histogram that is not one") : 0;
}

/* ---- agents over SSH ---------------------------------------------------- */

typedef struct {
	iac_lt_agent *a;
	iac_hosts *hosts;
	json_t *host;
	const char *file;
	const iac_strlist *extra;
	char *src;
	size_t len;
	const char *bin;        /* this iac binary's bytes, shipped where missing */
	size_t bin_len;
	const char *bin_path;   /* where agents keep it: named by its SHA-256 */
} agent_job;

/* "root@10.0.0.2" (the login user, else root) or a bare address */
static json_t *agent_host(const char *name)
{
	const char *at = strchr(name, '@');
	if (!at)
		return json_string(name);
	char *user = iac_xstrndup(name, (size_t)(at - name));
	json_t *h = json_pack("{s:s,s:s,s:s}", "name", name, "address", at + 1, "user", user);
	free(user);
	return h;
}

/* One agent: its directory, the scenario, the run, its figures. */
static void *agent_main(void *arg)
{
	agent_job *j = arg;
	iac_lt_agent *a = j->a;
	const char *exe = j->bin_path;
	char dir[64];
	snprintf(dir, sizeof(dir), "/tmp/iac-agent-%d", (int)getpid());
	char *path = iac_xasprintf("%s/scenario.lua", dir);
	iac_buf cmd = IAC_BUF_INIT;
	/* the same binary: shipped once per build (its path is its hash), so
	 * an agent needs nothing installed but a compatible system */
	iac_buf_printf(&cmd, "'%s' loadtest %s -quiet -agent-out %s/raw.json", exe, path, dir);
	for (size_t i = 0; j->extra && i < j->extra->n; i++)
		iac_buf_printf(&cmd, " '%s'", j->extra->items[i]);
	iac_buf_printf(&cmd, " >/dev/null; rc=$?; cat %s/raw.json 2>/dev/null; rm -rf %s; exit $rc", dir, dir);
	iac_host_result res = { 0 };
	char *probe = iac_xasprintf("test -x '%s'", exe);
	int have = 1;
	if (iac_host_status(&have, j->hosts, j->host, probe, 30e3, NULL) < 0 ||
	    (have != 0 && iac_host_write(j->hosts, j->host, exe, j->bin, j->bin_len, "0755", NULL) < 0)) {
		free(probe);
		a->error = iac_xstrdup(iac_err_last());
		goto done;
	}
	free(probe);
	if (iac_host_write(j->hosts, j->host, path, j->src, j->len, "0644", NULL) < 0 ||
	    iac_host_exec(&res, j->hosts, j->host, iac_buf_cstr(&cmd), NULL, 3600e3, NULL) < 0) {
		a->error = iac_xstrdup(iac_err_last());
		goto done;
	}
	json_error_t je;
	a->raw = res.out ? json_loads(res.out, 0, &je) : NULL;
	if (!a->raw || (res.status != 0 && res.status != 99 && res.status != 98)) {
		size_t el = res.err ? strlen(res.err) : 0;
		while (el && (res.err[el - 1] == '\n' || res.err[el - 1] == '\r'))
			res.err[--el] = 0;
		a->error = iac_xasprintf("its run ended with exit status %d%s%s", res.status, el ? ": " : "",
					 el ? res.err : "");
		json_decref(a->raw);
		a->raw = NULL;
		goto done;
	}
	a->ok = 1;
	a->elapsed_s = json_number_value(json_object_get(a->raw, "elapsed_s"));
	a->cpu_max_pct = json_number_value(json_object_get(a->raw, "cpu_max_pct"));
	a->valid = json_is_true(json_object_get(a->raw, "valid"));
	a->vus_max = (int)json_integer_value(json_object_get(a->raw, "vus_max"));
	const char *why = iac_json_str(a->raw, "why");
	a->why = why ? iac_xstrdup(why) : NULL;
done:
	iac_host_result_free(&res);
	iac_buf_free(&cmd);
	free(path);
	return NULL;
}

int iac_lt_agents_run(iac_lt_agent **out, const iac_strlist *names, const char *file, const char *ssh_key,
		      const char *known_hosts, const iac_strlist *extra_args)
{
	size_t n = names->n;
	iac_lt_agent *a = iac_xcalloc(n ? n : 1, sizeof(*a));
	*out = a;
	char *src = NULL;
	size_t len = 0;
	if (iac_file_read(&src, &len, file) < 0)
		return IAC_ERR;
	iac_hosts *hosts = NULL;
	iac_ssh_options o = { 0 };
	o.private_key = ssh_key;
	o.known_hosts = known_hosts;
	o.connect_timeout_ms = 10000;
	if (iac_hosts_new(&hosts, ".", NULL, NULL) < 0 || iac_hosts_set_ssh(hosts, &o) < 0) {
		free(src);
		iac_hosts_free(hosts);
		return IAC_ERR;
	}
	char *bin = NULL, hex[65], *bin_path = NULL;
	size_t bin_len = 0;
	if (iac_file_read(&bin, &bin_len, "/proc/self/exe") < 0) {
		iac_err_prefix("cannot read this iac binary to ship to the agents");
		free(src);
		iac_hosts_free(hosts);
		return IAC_ERR;
	}
	iac_sha256_hex(hex, bin, bin_len);
	bin_path = iac_xasprintf("/var/tmp/iac-agent-bin/iac-%.16s", hex);
	agent_job *jobs = iac_xcalloc(n ? n : 1, sizeof(*jobs));
	pthread_t *th = iac_xcalloc(n ? n : 1, sizeof(*th));
	for (size_t i = 0; i < n; i++) {
		a[i].name = iac_xstrdup(names->items[i]);
		jobs[i] = (agent_job){ &a[i], hosts, agent_host(names->items[i]), file, extra_args, src, len, bin, bin_len,
				       bin_path };
		if (pthread_create(&th[i], NULL, agent_main, &jobs[i])) {
			a[i].error = iac_xstrdup("cannot start a thread");
			th[i] = 0;
		}
	}
	int any = 0;
	for (size_t i = 0; i < n; i++) {
		if (th[i])
			pthread_join(th[i], NULL);
		json_decref(jobs[i].host);
		any |= a[i].ok;
	}
	free(jobs);
	free(th);
	free(src);
	free(bin);
	free(bin_path);
	iac_hosts_free(hosts);
	return any ? 0 : iac_err_set("no agent could run the scenario: %s", n ? a[0].error : "no agents");
}

void iac_lt_agents_free(iac_lt_agent *a, size_t n)
{
	for (size_t i = 0; a && i < n; i++) {
		free(a[i].name);
		free(a[i].error);
		free(a[i].why);
		json_decref(a[i].raw);
	}
	free(a);
}
