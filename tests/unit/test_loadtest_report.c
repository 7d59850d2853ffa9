/* Unit tests for the load tester's judging and reports: fixed results (no
 * network, no clock) rendered as HTML, JSON and the terminal summary, and
 * compared byte for byte with the files in tests/unit/golden/loadtest_report.
 *
 * The reports are read by people and by scripts (docs/loadtest.md), so any
 * change to them must be deliberate: after one, regenerate the files with
 *   IAC_GOLDEN_UPDATE=1 IAC_SOURCE_DIR=$PWD BUILD/tests/test_loadtest_report
 * and review the diff. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/loadtest/report.h"
#include "iac/loadtest/scenario.h"

/* A result and everything it borrows. */
typedef struct {
	iac_lt_config cfg;
	iac_lt_stats total;
	iac_lt_second secs[32];
	iac_lt_result r;
} fixture;

static void fixture_load(fixture *fx, const char *src)
{
	memset(fx, 0, sizeof(*fx));
	if (iac_lt_scenario_load_string(&fx->cfg, "fixed.lua", src) < 0) {
		fprintf(stderr, "fixture: %s\n", iac_err_last());
		exit(1);
	}
	iac_lt_stats_init(&fx->total);
	fx->r.cfg = &fx->cfg;
	fx->r.total = &fx->total;
	fx->r.secs = fx->secs;
	snprintf(fx->r.started, sizeof(fx->r.started), "2024-05-01T10:00:00Z");
	for (size_t i = 0; i < 32; i++) {
		iac_lt_second *x = &fx->secs[i];
		x->cpu_pct = x->wait_pct = NAN;
		x->hap_qcur = x->hap_scur = x->hap_rtime_ms = x->hap_rate = NAN;
	}
}

/* Judge and evaluate the thresholds as iac loadtest does at the end. */
static void fixture_judge(fixture *fx)
{
	iac_lt_result_judge(&fx->r);
	size_t failed = iac_lt_thresholds_eval(fx->cfg.thresholds, fx->cfg.nthresholds, &fx->total, fx->r.elapsed_s);
	iac_lt_result_decide(&fx->r, failed);
}

static void fixture_free(fixture *fx)
{
	for (size_t i = 0; i < 32; i++) {
		free(fx->secs[i].host_cpu);
		free(fx->secs[i].host_mem);
	}
	iac_lt_result_free(&fx->r);
	iac_lt_stats_free(&fx->total);
	iac_lt_config_free(&fx->cfg);
}

/* The endpoint called name, created when new (eps may move). */
static iac_lt_endpoint *endpoint(iac_lt_stats *s, const char *name)
{
	size_t i = iac_lt_stats_endpoint(s, name);
	return s->eps[i];
}

static void record_n(iac_lt_hist *h, uint64_t first_us, uint64_t step_us, int n)
{
	for (int i = 0; i < n; i++)
		iac_lt_hist_record(h, first_us + step_us * (uint64_t)((i * 37) % n));
}

/* Everything at once: invalid twice over, saturation, HAProxy, two hosts
 * (one never sampled), errors of several kinds, checks, script errors,
 * thresholds with and without data, and names that need HTML escaping. */
static void rich(fixture *fx)
{
	fixture_load(fx, "target \"http://127.0.0.1:1\"\n"
			 "scenario \"shop\" { path = \"/p\" }\n"
			 "load { executor = \"ramping-vus\", stages = { { \"6s\", 10 }, { \"6s\", 10 } } }\n"
			 "thresholds { [\"p(99)\"] = \"< 20ms\", error_rate = { \"< 5%\", abort_on_fail = true },\n"
			 "  [\"ghost:p(95)\"] = \"< 100ms\", checks = { \"> 99%\", \"<= 100%\" }, rps = \"> 1\",\n"
			 "  [\"product:avg\"] = \"<= 50ms\", dropped_iterations = \"== 0\", iterations = \"> 5\" }\n"
			 "observe { haproxy = \"ipv4@127.0.0.1:9\", hosts = { \"web1\", \"db<1>\" } }\n");
	iac_lt_stats *s = &fx->total;
	s->requests = 12345;
	s->failed = 321;
	s->iterations = 6000;
	s->dropped = 1234;
	s->bytes_in = 5u << 20;
	s->bytes_out = 1500;
	s->transport[IAC_LT_E_TIMEOUT] = 300;
	s->transport[IAC_LT_E_CONNECT] = 1;
	s->status[200] = 12024;
	s->status[404] = 15;
	s->status[503] = 5;
	record_n(&s->hist, 800, 131, 2000);
	iac_lt_endpoint *e = endpoint(s, "product");
	e->requests = 9000;
	e->failed = 20;
	record_n(&e->hist, 900, 97, 900);
	e = endpoint(s, "a<b>&\"c\"");
	e->requests = 3345;
	e->failed = 301;
	record_n(&e->hist, 2000, 1001, 300);
	iac_lt_stats_endpoint(s, "unused");
	size_t c = iac_lt_stats_check(s, "product ok");
	s->checks[c].pass = 8990;
	s->checks[c].fail = 10;
	c = iac_lt_stats_check(s, "always <ok>");
	s->checks[c].pass = 5;
	iac_lt_stats_script_error(s, "fixed.lua:3: attempt to index a nil value <x>");
	iac_lt_stats_script_error(s, "fixed.lua:3: attempt to index a nil value <x>");
	iac_lt_stats_script_error(s, "boom");

	size_t n = 12;
	for (size_t i = 0; i < n; i++) {
		iac_lt_second *x = &fx->secs[i];
		x->requests = i == 3 ? 0 : 900 + 17 * i;
		x->failed = i % 4;
		x->dropped = i > 8 ? 100 * i : 0;
		x->iterations = x->requests / 2;
		x->p50_ms = 2.5 + (double)i / 8;
		x->p90_ms = 4.25 + (double)i / 4;
		x->p99_ms = i < 7 ? 5 + (double)i / 10 : 40 + (double)i;
		x->max_ms = x->p99_ms * 2;
		x->vus = i == 5 ? -1 : (int)(i < 6 ? 2 * i : 10);
		x->ep_n[0] = i == 4 ? 0 : 600;   /* "product": a gap at t=4 */
		x->ep_p50[0] = 2 + (double)i / 8;
		x->ep_p90[0] = 4 + (double)i / 4;
		x->ep_p99[0] = i < 7 ? 6 : 30 + (double)i;
		x->ep_n[1] = 300;
		x->ep_p50[1] = x->ep_p90[1] = x->ep_p99[1] = 3;
		x->cpu_pct = i == 0 ? NAN : i == 6 || i == 7 ? 93.5 + (double)i : 40 + (double)i;
		x->wait_pct = i == 1 ? NAN : i == 8 || i == 9 ? 25.5 : 3;
		if (i != 2) {
			x->hap_qcur = i >= 9 ? 2 : 0;
			x->hap_scur = 10 + (double)i;
			x->hap_rtime_ms = 3 + (double)i;
			x->hap_rate = 880 + (double)i;
		}
		x->host_cpu = iac_xmalloc(2 * sizeof(double));
		x->host_mem = iac_xmalloc(2 * sizeof(double));
		x->host_cpu[0] = i == 4 ? NAN : 30 + 5 * (double)i;
		x->host_mem[0] = 41.5;
		x->host_cpu[1] = x->host_mem[1] = NAN;
	}
	fx->r.nsecs = n;
	fx->r.elapsed_s = 11.5;
	fx->r.last_sec_fraction = 0.5;
	fx->r.threads = 2;
	fx->r.cores = 2;
	fx->r.vus_max = 10;
	fx->r.rss_mib = 12.25;
	fx->r.aborted = 1;
	fx->r.haproxy = fx->cfg.haproxy;
	fx->r.hosts = &fx->cfg.hosts;
	fixture_judge(fx);
}

/* A calm run that saturates HAProxy's queue, on one thread, hosts NULL;
 * long enough for the charts to label every other second. */
static void queue(fixture *fx)
{
	fixture_load(fx, "target \"http://127.0.0.1:1\"\n"
			 "load { vus = 3, duration = \"22s\" }\n");
	iac_lt_stats *s = &fx->total;
	s->requests = 600;
	s->iterations = 600;
	s->status[200] = 600;
	s->bytes_in = 1023;
	s->bytes_out = 1024;
	record_n(&s->hist, 1000, 10, 600);
	iac_lt_endpoint *e = endpoint(s, "GET /");
	e->requests = 600;
	record_n(&e->hist, 1000, 10, 600);
	size_t n = 22;
	for (size_t i = 0; i < n; i++) {
		iac_lt_second *x = &fx->secs[i];
		x->requests = x->iterations = 100;
		x->p50_ms = 1.5;
		x->p90_ms = 2;
		x->p99_ms = 3;
		x->max_ms = 4;
		x->vus = 3;
		x->ep_n[0] = 100;
		x->ep_p50[0] = 1.5;
		x->ep_p90[0] = 2;
		x->ep_p99[0] = 3;
		x->cpu_pct = i == 2 ? 95 : 20;
		x->wait_pct = 1;
		x->hap_qcur = i >= 4 ? 1 : 0;
		x->hap_scur = 3;
		x->hap_rtime_ms = 1;
		x->hap_rate = 100;
	}
	fx->r.nsecs = n;
	fx->r.elapsed_s = 22;
	fx->r.last_sec_fraction = 1;
	fx->r.threads = 1;
	fx->r.cores = 1;
	fx->r.vus_max = 3;
	fx->r.rss_mib = 3;
	fx->r.haproxy = "127.0.0.1:8404";
	fixture_judge(fx);
}

/* One second, nothing answered: no data anywhere, an empty host list. */
static void empty(fixture *fx)
{
	fixture_load(fx, "target \"http://127.0.0.1:1\"\n"
			 "load { executor = \"constant-arrival-rate\", rate = 5, time_unit = \"500ms\", duration = \"1s\" }\n"
			 "thresholds { [\"p(99)\"] = \"< 20ms\", [\"nobody:p(90)\"] = \"< 1s\", [\"nobody:rps\"] = \"> 1\" }\n");
	fx->secs[0].vus = 0;
	fx->r.nsecs = 1;
	fx->r.elapsed_s = 0;
	fx->r.last_sec_fraction = 1;
	fx->r.threads = 1;
	fx->r.cores = 1;
	fx->r.interrupted = 1;
	fx->r.hosts = &fx->cfg.hosts;
	fixture_judge(fx);
}

/* A closed port: every request refused, backed off, no response at all. */
static void dead(fixture *fx)
{
	fixture_load(fx, "target \"http://127.0.0.1:1\"\n"
			 "load { vus = 2, duration = \"2s\" }\n");
	iac_lt_stats *s = &fx->total;
	s->requests = s->failed = s->iterations = 18;
	s->transport[IAC_LT_E_CONNECT] = 18;
	iac_lt_endpoint *e = endpoint(s, "GET /");
	e->requests = e->failed = 18;
	for (size_t i = 0; i < 2; i++) {
		iac_lt_second *x = &fx->secs[i];
		x->requests = x->failed = x->iterations = i ? 3 : 15;
		x->p50_ms = x->p90_ms = x->p99_ms = x->max_ms = NAN;   /* as the engine leaves them */
		x->vus = 2;
		x->cpu_pct = 0.5;
		x->wait_pct = 0;
	}
	fx->r.nsecs = 2;
	fx->r.elapsed_s = 2;
	fx->r.last_sec_fraction = 1;
	fx->r.threads = 2;
	fx->r.cores = 2;
	fx->r.vus_max = 2;
	fx->r.rss_mib = 11;
	fixture_judge(fx);
}

static char *slurp(const char *path)
{
	char *s = NULL;
	size_t n;
	if (iac_file_read(&s, &n, path) < 0)
		return NULL;
	return s;
}

/* Compare got with the golden file `name`, or rewrite it when asked. */
static void golden(const char *name, const char *got)
{
	const char *src = getenv("IAC_SOURCE_DIR");
	CHECK(src != NULL);
	if (!src || !got)
		return;
	char *path = iac_xasprintf("%s/tests/unit/golden/loadtest_report/%s", src, name);
	if (getenv("IAC_GOLDEN_UPDATE")) {
		CHECK_INT(iac_file_write_atomic(path, got, strlen(got), 0644), 0);
		free(path);
		return;
	}
	char *want = slurp(path);
	if (!want) {
		fprintf(stderr, "%s: %s\n", name, iac_err_last());
		iac_test_failures++;
	} else if (strcmp(want, got)) {
		size_t i = 0;
		while (want[i] && want[i] == got[i])
			i++;
		fprintf(stderr, "%s: differs from the golden file at byte %zu: got \"%.60s\", want \"%.60s\"\n", name,
			i, got + i, want + i);
		iac_test_failures++;
	}
	free(want);
	free(path);
}

static char *tmp_path(const char *name)
{
	return iac_xasprintf("%s/%s", iac_test_tmpdir(), name);
}

static char *html_of(const iac_lt_result *r)
{
	char *path = tmp_path("r.html");
	CHECK_INT(iac_lt_report_write_html(r, path), 0);
	char *s = slurp(path);
	free(path);
	return s;
}

static char *json_of(const iac_lt_result *r)
{
	char *path = tmp_path("r.json");
	CHECK_INT(iac_lt_report_write_json(r, path), 0);
	char *s = slurp(path);
	free(path);
	return s;
}

static char *summary_of(const iac_lt_result *r, int color)
{
	char *path = tmp_path("summary.txt");
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f) {
		free(path);
		return NULL;
	}
	iac_log_set_color(color);
	iac_lt_report_summary(f, r);
	iac_log_set_color(0);
	fclose(f);
	char *s = slurp(path);
	free(path);
	return s;
}

/* The pure renderers, whose output is what the files and the terminal get. */
static char *render_html(const iac_lt_result *r)
{
	iac_buf b = IAC_BUF_INIT;
	iac_lt_report_html(&b, r);
	return iac_buf_detach(&b);
}

static char *render_text(const iac_lt_result *r, int color)
{
	iac_buf b = IAC_BUF_INIT;
	iac_log_set_color(color);
	iac_lt_report_text(&b, r);
	iac_log_set_color(0);
	return iac_buf_detach(&b);
}

static char *render_json(const iac_lt_result *r)
{
	json_t *o = iac_lt_report_json(r);
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

/* Compare a rendering with its golden file, and with what the file writer
 * (or the terminal) got, which must be the same bytes (JSON: plus "\n"). */
static void check_one(const char *name, const char *ext, char *rendered, char *written)
{
	char file[64];
	snprintf(file, sizeof(file), "%s.%s", name, ext);
	golden(file, written);
	if (!strcmp(ext, "json")) {
		char *nl = iac_xasprintf("%s\n", rendered);
		CHECK_STR(nl, written);
		free(nl);
	} else {
		CHECK_STR(rendered, written);
	}
	free(rendered);
	free(written);
}

/* All reports of fixture `name` against their golden files. */
static void check_reports(const char *name, const iac_lt_result *r, int with_color)
{
	check_one(name, "html", render_html(r), html_of(r));
	check_one(name, "json", render_json(r), json_of(r));
	check_one(name, "txt", render_text(r, 0), summary_of(r, 0));
	if (with_color)
		check_one(name, "color.txt", render_text(r, 1), summary_of(r, 1));
}

static void test_judge_rich(void)
{
	fixture fx;
	rich(&fx);
	CHECK(!fx.r.valid);
	CHECK_INT(fx.r.invalid.n, 2);
	CHECK_CONTAINS(fx.r.invalid.items[0], "more than 90% of its 2 cores for 2 s (from t=6 s, peak 100%)");
	CHECK_CONTAINS(fx.r.invalid.items[1], "waited for a CPU more than 20% of the time for 2 s (from t=8 s");
	CHECK_INT(fx.r.notes.n, 2);
	CHECK_STR(fx.r.notes.items[0], "1,234 iterations were dropped: no free VU when they were due (raise max_vus)");
	CHECK_STR(fx.r.saturation, "p99 rose from 5.0 ms to 47.0 ms at t=7 s, at 1,019 rps with 10 VUs; HAProxy "
				   "queue 0, 17 sessions, backend response time 10 ms; host web1 at 65% CPU; the "
				   "load generator itself was at 100% CPU");
	CHECK_INT(fx.r.exit_code, IAC_LT_EXIT_THRESHOLDS);
	fixture_free(&fx);
}

static void test_judge_queue(void)
{
	fixture fx;
	queue(&fx);
	CHECK(fx.r.valid);
	CHECK_INT(fx.r.notes.n, 1);
	CHECK_STR(fx.r.notes.items[0], "the load generator's CPU went above 90% for a second");
	CHECK_STR(fx.r.saturation, "HAProxy began to queue at t=4 s (queue 1), at 100 rps with 3 VUs; 3 sessions, "
				   "backend response time 1 ms");
	CHECK_INT(fx.r.exit_code, 0);
	fixture_free(&fx);
}

static void test_judge_empty(void)
{
	fixture fx;
	empty(&fx);
	CHECK(fx.r.valid);
	CHECK_INT(fx.r.notes.n, 0);
	CHECK(fx.r.saturation == NULL);
	CHECK(isnan(fx.r.cpu_avg_pct));
	CHECK_INT(fx.r.exit_code, IAC_LT_EXIT_THRESHOLDS);
	fixture_free(&fx);
}

static void test_reports_rich(void)
{
	fixture fx;
	rich(&fx);
	check_reports("rich", &fx.r, 1);
	fixture_free(&fx);
}

static void test_reports_queue(void)
{
	fixture fx;
	queue(&fx);
	check_reports("queue", &fx.r, 0);
	fixture_free(&fx);
}

static void test_reports_empty(void)
{
	fixture fx;
	empty(&fx);
	check_reports("empty", &fx.r, 0);
	fixture_free(&fx);
}

static void test_reports_dead(void)
{
	fixture fx;
	dead(&fx);
	check_reports("dead", &fx.r, 0);
	fixture_free(&fx);
}

/* The banner at the top says what the exit code says, with the reasons;
 * green only for a run that passed. */
static void test_html_verdict(void)
{
	fixture fx;
	queue(&fx);
	char *h = render_html(&fx.r);
	CHECK_CONTAINS(h, "<div class=\"banner valid\" id=\"verdict\"><div id=\"verdict-title\"><b>Passed.</b> (exit code 0)");
	CHECK_CONTAINS(h, "<b>Thresholds:</b> none set.");
	free(h);
	fixture_free(&fx);

	rich(&fx);
	h = render_html(&fx.r);
	CHECK_CONTAINS(h, "<div class=\"banner invalid\" id=\"verdict\"><div id=\"verdict-title\"><b>Failed: thresholds "
			  "failed.</b> (exit code 99)");
	CHECK_CONTAINS(h, "<b>Threshold:</b> threshold 'p(99)' failed: 260.10ms (&lt; 20ms)");
	CHECK_CONTAINS(h, "<b>Threshold:</b> threshold 'ghost:p(95)' failed: no data (no request named 'ghost') (&lt; 100ms)");
	CHECK_CONTAINS(h, "<b>Result NOT valid:</b> the load generator used more than 90%");
	CHECK_CONTAINS(h, "<b>Stopped early:</b>");
	CHECK(!strstr(h, "banner valid"));
	CHECK(!strstr(h, "Result valid"));
	free(h);
	fixture_free(&fx);

	dead(&fx);
	h = render_html(&fx.r);
	CHECK_CONTAINS(h, "<div class=\"banner invalid\" id=\"verdict\"><div id=\"verdict-title\"><b>Failed: the target "
			  "did not answer.</b> (exit code 98)");
	CHECK_CONTAINS(h, "<b>Requests:</b> the target did not answer: 18 of 18 requests failed (connect: 18)");
	CHECK(!strstr(h, "banner valid"));
	CHECK_CONTAINS(h, "<td>latency p50 / p90 / p99 / max (ms)</td><td>no responses</td>");
	free(h);
	fixture_free(&fx);
}

/* A closed port: exit 98 with the message; no latency anywhere, not even
 * a 0.00 that would read as fast. */
static void test_dead_target(void)
{
	fixture fx;
	dead(&fx);
	CHECK_INT(fx.r.exit_code, IAC_LT_EXIT_FAILED);
	CHECK_STR(fx.r.failed_msg, "the target did not answer: 18 of 18 requests failed (connect: 18)");
	char *t = render_text(&fx.r, 0);
	CHECK_CONTAINS(t, "  latency       no responses\n");
	CHECK_CONTAINS(t, "verdict: FAILED: the target did not answer: 18 of 18 requests failed (connect: 18)");
	CHECK(!strstr(t, " 0.00 "));
	free(t);
	char *j = render_json(&fx.r);
	CHECK_CONTAINS(j, "\"p99\": null");
	CHECK_CONTAINS(j, "\"p99_ms\": null");
	CHECK_CONTAINS(j, "\"result\": \"failed\"");
	CHECK_CONTAINS(j, "\"exit_code\": 98");
	free(j);
	fixture_free(&fx);
}

/* max_failed: 50 % by default, configurable, or off; 404s count as
 * failures (k6: a status outside 200-399), with their own wording. */
static void test_max_failed(void)
{
	fixture fx;
	queue(&fx);
	fx.total.failed = 299;   /* just under half */
	iac_lt_result_decide(&fx.r, 0);
	CHECK_INT(fx.r.exit_code, 0);
	fx.total.failed = 300;
	fx.total.status[404] = 300;
	iac_lt_result_decide(&fx.r, 1);
	CHECK_INT(fx.r.exit_code, IAC_LT_EXIT_FAILED);
	CHECK_STR(fx.r.failed_msg, "too many requests failed: 300 of 600 requests failed (http 404: 300)");
	fx.cfg.max_failed = 0.9;
	iac_lt_result_decide(&fx.r, 1);
	CHECK_INT(fx.r.exit_code, IAC_LT_EXIT_THRESHOLDS);
	CHECK(fx.r.failed_msg == NULL);
	fixture_free(&fx);

	const char *ok[] = { "0.9", "\"25%\"", "false", "1" };
	double want[] = { 0.9, 0.25, INFINITY, 1 };
	for (size_t i = 0; i < 4; i++) {
		iac_lt_config cfg;
		char *src = iac_xasprintf("target \"http://127.0.0.1:1\"\nload { vus = 1, max_failed = %s }\n", ok[i]);
		CHECK_INT(iac_lt_scenario_load_string(&cfg, "m.lua", src), 0);
		CHECK(cfg.max_failed == want[i]);
		iac_lt_config_free(&cfg);
		free(src);
	}
	const char *bad[] = { "0", "1.5", "\"half\"", "true", "-0.1" };
	for (size_t i = 0; i < 5; i++) {
		iac_lt_config cfg;
		char *src = iac_xasprintf("target \"http://127.0.0.1:1\"\nload { vus = 1, max_failed = %s }\n", bad[i]);
		CHECK_INT(iac_lt_scenario_load_string(&cfg, "m.lua", src), -1);
		CHECK_CONTAINS(iac_err_last(), "m.lua:2: option 'max_failed' in load (constant-vus) must be a fraction");
		iac_lt_config_free(&cfg);
		free(src);
	}
}

/* http_req_failed: k6's rate, with k6's "rate<0.01" and this tool's own
 * "< 1%", overall and per endpoint. */
static void test_http_req_failed(void)
{
	iac_lt_config cfg;
	CHECK_INT(iac_lt_scenario_load_string(&cfg, "t.lua",
					      "target \"http://127.0.0.1:1\"\n"
					      "thresholds { http_req_failed = \"rate<0.5\", [\"a:http_req_failed\"] = \"rate < 0.1\",\n"
					      "  [\"b:http_req_failed\"] = \"< 10%\", [\"c:http_req_failed\"] = \"<= 0\" }\n"),
		  0);
	iac_lt_stats s;
	iac_lt_stats_init(&s);
	s.requests = 100;
	s.failed = 30;
	iac_lt_endpoint *a = endpoint(&s, "a");
	a->requests = 50;
	a->failed = 30;
	iac_lt_endpoint *b = endpoint(&s, "b");
	b->requests = 50;
	CHECK_INT(iac_lt_thresholds_eval(cfg.thresholds, cfg.nthresholds, &s, 1), 2);
	/* sorted by key: a:, b:, c:, then the overall one */
	CHECK_STR(cfg.thresholds[3].key, "http_req_failed");
	CHECK(cfg.thresholds[3].ok);
	CHECK(cfg.thresholds[3].value == 0.3);
	CHECK(!cfg.thresholds[0].ok);
	CHECK(cfg.thresholds[0].value == 0.6);
	CHECK(cfg.thresholds[1].ok);
	CHECK(!cfg.thresholds[2].ok && !cfg.thresholds[2].have_value);   /* no request named c */
	CHECK_STR(iac_lt_metric_unit(cfg.thresholds[0].metric), "%");
	iac_lt_stats_free(&s);
	iac_lt_config_free(&cfg);
	CHECK_INT(iac_lt_scenario_load_string(&cfg, "t.lua", "thresholds { http_req_failed = \"rate < 5ms\" }\n"), -1);
	CHECK_CONTAINS(iac_err_last(), "a rate takes % or a fraction");
	iac_lt_config_free(&cfg);
}

/* expected_statuses: k6's http.expectedStatuses(); the default is 200-399. */
static void test_expected_statuses(void)
{
	iac_lt_config cfg;
	CHECK_INT(iac_lt_scenario_load_string(&cfg, "e.lua", "target \"http://127.0.0.1:1\"\n"), 0);
	CHECK(cfg.failed_status[199] && !cfg.failed_status[200] && !cfg.failed_status[399] && cfg.failed_status[400]);
	iac_lt_config_free(&cfg);
	CHECK_INT(iac_lt_scenario_load_string(&cfg, "e.lua", "target \"http://127.0.0.1:1\"\n"
					      "load { vus = 1, expected_statuses = { { 200, 299 }, 404 } }\n"), 0);
	CHECK(!cfg.failed_status[200] && !cfg.failed_status[299] && cfg.failed_status[302]);
	CHECK(!cfg.failed_status[404] && cfg.failed_status[403] && cfg.failed_status[500]);
	iac_lt_config_free(&cfg);
	const char *bad[] = { "{ 99 }", "{ { 300, 200 } }", "{ \"200\" }", "{}", "404" };
	for (size_t i = 0; i < 5; i++) {
		char *src = iac_xasprintf("load { vus = 1, expected_statuses = %s }\n", bad[i]);
		CHECK_INT(iac_lt_scenario_load_string(&cfg, "e.lua", src), -1);
		CHECK_CONTAINS(iac_err_last(), "option 'expected_statuses' in load (constant-vus)");
		iac_lt_config_free(&cfg);
		free(src);
	}
}

/* A chart per endpoint, from the per-second series; a second without a
 * response of that endpoint breaks its line rather than drawing 0. */
static void test_endpoint_charts(void)
{
	fixture fx;
	rich(&fx);
	char *h = render_html(&fx.r);
	CHECK_CONTAINS(h, "<h2 id=\"endpoint-latency\">Latency per endpoint</h2>");
	CHECK_CONTAINS(h, "aria-label=\"Latency of product\"");
	CHECK_CONTAINS(h, "aria-label=\"Latency of a&lt;b&gt;&amp;&quot;c&quot;\"");
	CHECK(!strstr(h, "aria-label=\"Latency of unused\""));   /* no request: no chart */
	char *chart = strstr(h, "aria-label=\"Latency of product\"");
	char *end = chart ? strstr(chart, "</svg>") : NULL;
	size_t lines = 0;
	for (char *p = chart; p && p < end && (p = strstr(p + 1, "<polyline")) && p < end;)
		lines++;
	CHECK_INT(lines, 6);   /* p50, p90, p99, each broken at t=4 */
	free(h);
	fixture_free(&fx);
}

static const iac_test tests[] = {
	TEST(test_reports_dead),
	TEST(test_html_verdict),
	TEST(test_dead_target),
	TEST(test_max_failed),
	TEST(test_http_req_failed),
	TEST(test_expected_statuses),
	TEST(test_endpoint_charts),
	TEST(test_judge_rich),
	TEST(test_judge_queue),
	TEST(test_judge_empty),
	TEST(test_reports_rich),
	TEST(test_reports_queue),
	TEST(test_reports_empty),
	{ 0 },
};

int main(void)
{
	iac_log_set_color(0);
	return iac_test_run(tests);
}
