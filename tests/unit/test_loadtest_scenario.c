/* Unit tests for the load tester's scenario loader (errors as
 * FILE:LINE: ..., the sandbox) and threshold parsing and evaluation. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "iac/core/err.h"
#include "iac/loadtest/report.h"
#include "iac/loadtest/scenario.h"
#include "iac/loadtest/threshold.h"

static int load(iac_lt_config *cfg, const char *src)
{
	return iac_lt_scenario_load_string(cfg, "s.lua", src);
}

/* Load src, expect failure with a message containing want. */
static void expect_error(const char *src, const char *want)
{
	iac_lt_config cfg;
	int rc = load(&cfg, src);
	CHECK(rc < 0);
	if (rc < 0)
		CHECK_CONTAINS(iac_err_last(), want);
	iac_lt_config_free(&cfg);
}

static void test_full_scenario(void)
{
	iac_lt_config cfg;
	int rc = load(&cfg,
		      "target \"http://127.0.0.1:18080\"\n"
		      "scenario \"shopper\" {\n"
		      "  weight = 8, think = between(\"1s\", \"3s\"),\n"
		      "  flow = function(u) u:get(\"/\") end,\n"
		      "}\n"
		      "scenario \"browser\" { weight = 2, path = \"/search\", headers = { Accept = \"*/*\" } }\n"
		      "load { executor = \"ramping-vus\", stages = { { \"10s\", 100 }, { \"30s\", 100 }, { \"10s\", 0 } } }\n"
		      "thresholds { [\"p(99)\"] = \"< 250ms\", error_rate = \"< 0.5%\", [\"product:p(95)\"] = \"< 100ms\",\n"
		      "  checks = \"> 99%\", rps = { \"> 10\", abort_on_fail = true } }\n"
		      "observe { haproxy = \"ipv4@127.0.0.1:9999\", hosts = { \"local\" } }\n");
	CHECK_INT(rc, 0);
	if (rc < 0) {
		fprintf(stderr, "%s\n", iac_err_last());
		return;
	}
	CHECK_STR(cfg.target, "http://127.0.0.1:18080");
	CHECK_INT(cfg.nscenarios, 2);
	CHECK_STR(cfg.scenarios[0].name, "shopper");
	CHECK(cfg.scenarios[0].has_flow);
	CHECK(cfg.scenarios[0].weight == 8);
	CHECK(cfg.scenarios[0].think_min_ms == 1000 && cfg.scenarios[0].think_max_ms == 3000);
	CHECK_INT(cfg.scenarios[0].line, 2);
	CHECK(!cfg.scenarios[1].has_flow);
	CHECK_STR(cfg.scenarios[1].url, "/search");
	CHECK_STR(cfg.scenarios[1].method, "GET");
	CHECK_INT(cfg.scenarios[1].headers.n, 1);
	CHECK_STR(cfg.scenarios[1].headers.items[0], "Accept: */*");
	CHECK_INT(cfg.executor, IAC_LT_RAMPING_VUS);
	CHECK_INT(cfg.nstages, 3);
	CHECK(iac_lt_config_duration_ms(&cfg) == 50000);
	CHECK_INT(cfg.nthresholds, 5);
	/* sorted by key */
	CHECK_STR(cfg.thresholds[0].key, "checks");
	CHECK_STR(cfg.thresholds[2].key, "p(99)");
	CHECK_STR(cfg.thresholds[3].key, "product:p(95)");
	CHECK_STR(cfg.thresholds[3].endpoint, "product");
	CHECK(cfg.thresholds[3].pct == 95);
	CHECK(cfg.thresholds[4].abort_on_fail);
	CHECK(fabs(cfg.thresholds[1].limits[0] - 0.005) < 1e-12);
	CHECK_STR(cfg.haproxy, "ipv4@127.0.0.1:9999");
	CHECK_INT(cfg.hosts.n, 1);
	iac_lt_config_free(&cfg);
}

static void test_defaults(void)
{
	iac_lt_config cfg;
	CHECK_INT(load(&cfg, "target \"http://127.0.0.1:1/x\"\n"), 0);
	CHECK_INT(cfg.nscenarios, 1);   /* GET the target */
	CHECK_STR(cfg.scenarios[0].url, "http://127.0.0.1:1/x");
	CHECK_INT(cfg.executor, IAC_LT_CONSTANT_VUS);
	CHECK_INT(cfg.vus, 10);
	iac_lt_config_free(&cfg);
	CHECK_INT(load(&cfg, "target 'http://h'\nload { executor = 'constant-arrival-rate', rate = 50, duration = 2 }"), 0);
	CHECK_INT(cfg.max_vus, 100);
	CHECK_INT(cfg.pre_vus, 10);
	CHECK(cfg.duration_ms == 2000);
	iac_lt_config_free(&cfg);
}

static void test_loader_errors(void)
{
	expect_error("target \"http://h\"\nscenario \"a\" {\n wieght = 2, path = \"/\" }\n",
		     "s.lua:2: unknown option 'wieght' in scenario 'a'; valid options: weight");
	expect_error("target \"http://h\"\n\nload { executor = \"constant-vu\" }\n",
		     "s.lua:3: unknown executor 'constant-vu'");
	expect_error("target \"http://h\"\nload { executor = \"ramping-vus\" }\n",
		     "s.lua:2: executor 'ramping-vus' needs stages");
	expect_error("target \"http://h\"\nload { executor = \"constant-vus\", rate = 5 }\n",
		     "s.lua:2: option 'rate' does not apply to executor 'constant-vus'");
	expect_error("target \"http://h\"\nload { duration = \"10 parsecs\" }\n", "s.lua:2: option 'duration'");
	expect_error("target \"http://h\"\nscenario \"a\" { }\n", "s.lua:2: scenario 'a' needs either flow");
	expect_error("target \"http://h\"\nscenario \"a\" { path = '/' }\nscenario \"a\" { path = '/' }\n",
		     "s.lua:3: scenario 'a' is defined twice");
	expect_error("target \"ftp://h\"\n", "s.lua:1: target 'ftp://h' must be an http:// or https:// URL");
	expect_error("target \"http://h\"\nscenario \"a\" { path = '/', flow = function() end }\n",
		     "s.lua:2: scenario 'a' has a flow and also");
	expect_error("scenario \"a\" { path = '/x' }\n", "s.lua:1: scenario 'a' has the relative path '/x' but there is no target");
	expect_error("load { }\n", "s.lua: no target and no scenario");
	/* syntax and runtime errors carry the position too */
	expect_error("target \"http://h\"\nscenario \"a\" {\n", "s.lua:3:");
	expect_error("target \"http://h\"\nlocal x = nil\nx.y = 1\n", "s.lua:3: attempt to index");
}

/* https: the target and load { tls = { ... } } */
static void test_tls_options(void)
{
	iac_lt_config cfg;
	CHECK_INT(load(&cfg, "target 'https://h'\nload { tls = { ca_file = 'ca.pem', server_name = 'shop.test' } }\n"), 0);
	CHECK_STR(cfg.target, "https://h");
	CHECK_STR(cfg.tls_ca_file, "ca.pem");
	CHECK_STR(cfg.tls_server_name, "shop.test");
	CHECK_INT(cfg.tls_insecure, 0);
	iac_lt_config_free(&cfg);
	CHECK_INT(load(&cfg, "target 'https://h'\nload { tls = { insecure_skip_tls_verify = true } }\n"), 0);
	CHECK_INT(cfg.tls_insecure, 1);
	CHECK(cfg.tls_ca_file == NULL);
	iac_lt_config_free(&cfg);
	/* an absolute https URL without a target is the target */
	CHECK_INT(load(&cfg, "scenario 'a' { path = 'https://h:8443/x' }\n"), 0);
	iac_lt_config_free(&cfg);
	expect_error("target 'https://h'\nload { tls = { ca_fil = 'x' } }\n",
		     "s.lua:2: unknown option 'ca_fil' in option 'tls'; valid options: ca_file");
	expect_error("target 'https://h'\nload { tls = 'x' }\n", "s.lua:2: option 'tls' in load (constant-vus) must be a table");
	expect_error("target 'https://h'\nload { tls = { insecure_skip_tls_verify = 'yes' } }\n",
		     "option 'insecure_skip_tls_verify' in option 'tls' must be true or false");
	expect_error("target 'https://h'\nload { tls = { server_name = 'a b' } }\n", "server_name a host name");
}

static void test_sandbox(void)
{
	/* no files, no processes, no loading code */
	expect_error("target 'http://h'\nos.execute('true')\n", "s.lua:2: attempt to index a nil value (global 'os')");
	expect_error("target 'http://h'\nio.open('/etc/passwd')\n", "s.lua:2: attempt to index a nil value (global 'io')");
	expect_error("target 'http://h'\nlocal d = debug.getinfo(1)\n", "s.lua:2: attempt to index a nil value (global 'debug')");
	expect_error("target 'http://h'\nrequire('x')\n", "s.lua:2: attempt to call a nil value (global 'require')");
	expect_error("target 'http://h'\nloadfile('/etc/passwd')\n", "s.lua:2: attempt to call a nil value (global 'loadfile')");
	iac_lt_config cfg;
	CHECK_INT(load(&cfg, "target 'http://h'\nlocal s = string.format('%d', math.floor(2.5)) .. table.concat({'a'})\n"), 0);
	iac_lt_config_free(&cfg);
}

static void test_threshold_keys(void)
{
	iac_lt_threshold t;
	memset(&t, 0, sizeof(t));
	CHECK_INT(iac_lt_threshold_parse_key(&t, "p(99.9)"), 0);
	CHECK_INT(t.metric, IAC_LT_M_PCT);
	CHECK(t.pct == 99.9);
	CHECK(t.endpoint == NULL);
	CHECK_INT(iac_lt_threshold_parse_key(&t, "GET /a:b:avg"), 0);   /* split at the last colon */
	CHECK_STR(t.endpoint, "GET /a:b");
	CHECK_INT(t.metric, IAC_LT_M_AVG);
	CHECK(iac_lt_threshold_parse_key(&t, "p99") < 0);
	CHECK_CONTAINS(iac_err_last(), "unknown metric 'p99' in threshold 'p99'; valid metrics: p(N), avg, min, med, max, error_rate, checks, rps");
	CHECK(iac_lt_threshold_parse_key(&t, "product:latency") < 0);
	CHECK_CONTAINS(iac_err_last(), "unknown metric 'latency' in threshold 'product:latency'");
	CHECK(iac_lt_threshold_parse_key(&t, "p(101)") < 0);
	CHECK(iac_lt_threshold_parse_key(&t, "x:checks") < 0);
	CHECK_CONTAINS(iac_err_last(), "not kept per endpoint");
	iac_lt_threshold_free(&t);

	/* in a file: an error with FILE:LINE, never a silent pass */
	expect_error("target 'http://h'\n\nthresholds { http_req_durations = '< 1s' }\n",
		     "s.lua:3: unknown metric 'http_req_durations' in threshold 'http_req_durations'; valid metrics:");
	/* k6's form: the aggregate is part of each condition */
	expect_error("target 'http://h'\n\nthresholds { http_req_duration = '< 1s' }\n",
		     "s.lua:3: threshold 'http_req_duration': condition '< 1s' needs one of the trend's aggregates");
	expect_error("target 'http://h'\nthresholds { ['http_req_duration{endpoint}'] = 'p(95) < 1s' }\n",
		     "s.lua:2: invalid tag in threshold 'http_req_duration{endpoint}'");
	expect_error("target 'http://h'\nthresholds { ['group_duration{name:x}'] = 'avg < 1s' }\n",
		     "group_duration{group:::NAME}");
	memset(&t, 0, sizeof(t));
	CHECK_INT(iac_lt_threshold_parse_k6(&t, "http_req_duration{endpoint: checkout ,status:200}"), 0);
	CHECK_STR(t.mname, "http_req_duration");
	CHECK_STR(t.acc, "http_req_duration{endpoint:checkout,status:200}");
	CHECK_INT(t.ntags, 2);
	CHECK_STR(t.tagv[0], "checkout");
	CHECK_INT(iac_lt_threshold_add_cond(&t, "p(95)<500"), 0);
	CHECK_INT(iac_lt_threshold_add_cond(&t, "count > 10"), 0);
	CHECK_INT(iac_lt_threshold_resolve(&t, iac_lt_builtin_mtype("http_req_duration"), 0), 0);
	CHECK_INT(t.caggs[0], IAC_LT_M_PCT);
	CHECK(t.cpcts[0] == 95 && t.limits[0] == 500);
	CHECK_INT(t.caggs[1], IAC_LT_M_COUNT);
	iac_lt_threshold_free(&t);
	expect_error("target 'http://h'\nthresholds { ['p(99)'] = '250ms' }\n", "s.lua:2: threshold 'p(99)': invalid threshold condition '250ms'");
	expect_error("target 'http://h'\nthresholds { ['p(99)'] = '< 250apples' }\n", "invalid unit 'apples'");
	expect_error("target 'http://h'\nthresholds { error_rate = '< 1ms' }\n", "a rate takes %");
	expect_error("target 'http://h'\nthresholds { rps = { '> 1', abort_on_fial = true } }\n",
		     "unknown option 'abort_on_fial' in threshold 'rps'");
}

static void test_threshold_conditions(void)
{
	enum iac_lt_op op;
	double lim;
	CHECK_INT(iac_lt_threshold_parse_cond(&op, &lim, IAC_LT_M_PCT, "< 250ms"), 0);
	CHECK(op == IAC_LT_LT && lim == 250);
	CHECK_INT(iac_lt_threshold_parse_cond(&op, &lim, IAC_LT_M_PCT, "<=1.5s"), 0);
	CHECK(op == IAC_LT_LE && lim == 1500);
	CHECK_INT(iac_lt_threshold_parse_cond(&op, &lim, IAC_LT_M_MAX, "< 300"), 0);   /* bare = ms */
	CHECK(lim == 300);
	CHECK_INT(iac_lt_threshold_parse_cond(&op, &lim, IAC_LT_M_CHECKS, "> 99%"), 0);
	CHECK(op == IAC_LT_GT && fabs(lim - 0.99) < 1e-12);
	CHECK_INT(iac_lt_threshold_parse_cond(&op, &lim, IAC_LT_M_ERROR_RATE, "< 0.01"), 0);
	CHECK(lim == 0.01);
	CHECK_INT(iac_lt_threshold_parse_cond(&op, &lim, IAC_LT_M_RPS, ">= 1000"), 0);
	CHECK(op == IAC_LT_GE && lim == 1000);
	CHECK(iac_lt_threshold_parse_cond(&op, &lim, IAC_LT_M_RPS, "1000") < 0);
	CHECK(iac_lt_threshold_parse_cond(&op, &lim, IAC_LT_M_RPS, "< x") < 0);
	CHECK(iac_lt_threshold_parse_cond(&op, &lim, IAC_LT_M_PCT, "< 5ms extra") < 0);
}

static void test_threshold_eval(void)
{
	iac_lt_config cfg;
	int rc = load(&cfg, "target 'http://h'\nthresholds { ['p(99)'] = '< 50ms', ['p(50)'] = '< 5ms', error_rate = '< 10%',\n"
			    " checks = '> 90%', ['slow:max'] = '< 1s', ['ghost:p(95)'] = '< 1s', rps = '> 100' }\n");
	CHECK_INT(rc, 0);
	if (rc < 0)
		return;
	iac_lt_stats s;
	iac_lt_stats_init(&s);
	size_t slow = iac_lt_stats_endpoint(&s, "slow");
	for (int i = 0; i < 1000; i++) {
		uint64_t us = i < 980 ? 2000 : 80000;   /* p99 = 80 ms */
		iac_lt_hist_record(&s.hist, us);
		iac_lt_hist_record(&s.eps[slow]->hist, us);
		s.eps[slow]->requests++;
	}
	s.requests = 1000;
	s.failed = 50;
	size_t c = iac_lt_stats_check(&s, "ok");
	s.checks[c].pass = 95;
	s.checks[c].fail = 5;
	size_t failed = iac_lt_thresholds_eval(cfg.thresholds, cfg.nthresholds, &s, 5.0);
	/* order: checks, error_rate, ghost:p(95), p(50), p(99), rps, slow:max */
	CHECK(cfg.thresholds[0].ok);                       /* 95% > 90% */
	CHECK(cfg.thresholds[1].ok);                       /* 5% < 10% */
	CHECK(!cfg.thresholds[2].ok);                      /* no data: fails */
	CHECK(!cfg.thresholds[2].have_value);
	CHECK(cfg.thresholds[3].ok);                       /* p50 2 ms */
	CHECK(!cfg.thresholds[4].ok);                      /* p99 80 ms */
	CHECK(fabs(cfg.thresholds[4].value - 80) < 1);
	CHECK(cfg.thresholds[5].ok);                       /* 200/s */
	CHECK(cfg.thresholds[6].ok);                       /* 80 ms < 1 s */
	CHECK_INT(failed, 2);
	iac_lt_stats_free(&s);
	iac_lt_config_free(&cfg);
}

static const iac_test tests[] = {
	TEST(test_full_scenario),
	TEST(test_defaults),
	TEST(test_loader_errors),
	TEST(test_tls_options),
	TEST(test_sandbox),
	TEST(test_threshold_keys),
	TEST(test_threshold_conditions),
	TEST(test_threshold_eval),
	{ 0 },
};

int main(void)
{
	return iac_test_run(tests);
}
