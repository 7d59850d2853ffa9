/* Unit tests for the capacity search's decisions (iac/loadtest/capacity.c):
 * the climb and the bisection driven by fake steps against a known
 * capacity, the knee, what saturated first, the condition parser and the
 * JSON. No network, no clock. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "iac/core/err.h"
#include "iac/loadtest/capacity.h"

/* A fake target: every rate up to cap passes; p99 is flat (5 ms) up to
 * knee and climbs after it. */
static iac_lt_cap_step fake(double rate, double cap, double knee)
{
	iac_lt_cap_step s;
	memset(&s, 0, sizeof(s));
	s.rate = rate;
	s.achieved = rate;
	s.pass = s.thresholds_ok = rate <= cap;
	s.p50_ms = 2;
	s.p99_ms = rate <= knee ? 5 : 5 + (rate - knee);
	s.metric = s.p99_ms;
	s.client_cpu_max = 10;
	s.hap_qmax = NAN;
	s.host_cpu_max = NAN;
	s.max_vus = 100;
	return s;
}

/* Run the search against the fake target; returns the steps. */
static size_t search(iac_lt_cap_step *steps, size_t max, const iac_lt_cap_plan *p, double cap, double knee)
{
	size_t n = 0;
	double r;
	while (n < max && iac_lt_capacity_next(&r, p, steps, n))
		steps[n++] = fake(r, cap, knee);
	return n;
}

static void test_doubling_then_bisecting(void)
{
	iac_lt_cap_plan p = { .start = 50, .hold_s = 10, .precision = 0.05, .max_steps = 40 };
	iac_lt_cap_step st[64];
	size_t n = search(st, 64, &p, 170, 150);
	/* 50, 100, 200 (fails), then halves between 100 and 200 */
	CHECK(n >= 5);
	CHECK(st[0].rate == 50 && st[1].rate == 100 && st[2].rate == 200);
	CHECK(st[3].rate == 150);
	CHECK(st[4].rate == 175);
	iac_lt_cap_result r;
	iac_lt_capacity_conclude(&r, st, n, 0);
	CHECK(r.found);
	CHECK(!r.capped);
	CHECK(r.capacity <= 170 && r.capacity >= 170 * 0.95);
	CHECK(r.lowest_fail > 170 && (r.lowest_fail - r.capacity) <= 0.05 * r.capacity);
	/* the lowest rate tried where p99 > 3x 5 ms and > 10 ms: 163 (p99 18) */
	CHECK(r.knee == 163);
	CHECK_CONTAINS(r.first, "unknown (add observe");
	CHECK(!r.generator);
	iac_lt_cap_result_free(&r);
}

static void test_additive_steps_and_max_rate(void)
{
	iac_lt_cap_plan p = { .start = 100, .step = 100, .max_rate = 450, .hold_s = 5, .precision = 0.05, .max_steps = 40 };
	iac_lt_cap_step st[64];
	size_t n = search(st, 64, &p, 10000, 10000);
	/* 100, 200, 300, 400, then max_rate itself, and no further */
	CHECK_INT(n, 5);
	CHECK(st[3].rate == 400 && st[4].rate == 450);
	iac_lt_cap_result r;
	iac_lt_capacity_conclude(&r, st, n, 0);
	CHECK(r.found && r.capped && r.capacity == 450);
	CHECK(isnan(r.knee));
	CHECK_CONTAINS(r.first, "no rate failed");
	iac_lt_cap_result_free(&r);
}

static void test_start_rate_fails(void)
{
	iac_lt_cap_plan p = { .start = 500, .hold_s = 5, .precision = 0.05, .max_steps = 40 };
	iac_lt_cap_step st[8];
	size_t n = search(st, 8, &p, 170, 100);
	CHECK_INT(n, 1);
	iac_lt_cap_result r;
	iac_lt_capacity_conclude(&r, st, n, 0);
	CHECK(!r.found);
	iac_lt_cap_result_free(&r);
}

static void test_noise_above_a_failure_is_ignored(void)
{
	/* 100 passes, 200 fails, 150 fails, then a lucky 180 passes: the
	 * bracket stays [100, 150] */
	iac_lt_cap_plan p = { .start = 100, .hold_s = 5, .precision = 0.05, .max_steps = 40 };
	iac_lt_cap_step st[4] = { fake(100, 1000, 1000), fake(200, 0, 1000), fake(150, 0, 1000), fake(180, 1000, 1000) };
	double next = 0;
	CHECK(iac_lt_capacity_next(&next, &p, st, 4));
	CHECK(next == 125);
	iac_lt_cap_result r;
	iac_lt_capacity_conclude(&r, st, 4, 0);
	CHECK(r.capacity == 100 && r.lowest_fail == 150);
	iac_lt_cap_result_free(&r);
}

static void test_precision_and_step_limit(void)
{
	iac_lt_cap_plan p = { .start = 10, .hold_s = 5, .precision = 0.10, .max_steps = 40 };
	iac_lt_cap_step st[64];
	size_t n10 = search(st, 64, &p, 1000, 1000);
	p.precision = 0.01;
	size_t n1 = search(st, 64, &p, 1000, 1000);
	CHECK(n1 > n10);   /* finer precision costs steps */
	iac_lt_cap_result r;
	iac_lt_capacity_conclude(&r, st, n1, 0);
	CHECK(r.capacity <= 1000 && r.capacity >= 990);
	iac_lt_cap_result_free(&r);
	p.max_steps = 3;
	CHECK_INT(search(st, 64, &p, 1000, 1000), 3);
}

static void test_first_to_saturate(void)
{
	iac_lt_cap_step st[3] = { fake(100, 150, 1000), fake(200, 150, 1000), fake(150, 150, 1000) };
	iac_lt_cap_result r;

	/* the generator: rate short at 200 while the thresholds held */
	st[1].gen_short = 1;
	st[1].thresholds_ok = 1;
	st[1].achieved = 120;
	st[1].dropped = 800;
	st[1].max_vus = 2;
	iac_lt_capacity_conclude(&r, st, 3, 0);
	CHECK(r.generator);
	CHECK_CONTAINS(r.first, "the load generator itself");
	CHECK_CONTAINS(r.first, "achieved 120.0 req/s, 800 dropped iterations with max_vus 2");
	iac_lt_cap_result_free(&r);

	/* short, but the target was slow: not the generator's fault */
	st[1].thresholds_ok = 0;
	iac_lt_capacity_conclude(&r, st, 3, 1);
	CHECK(!r.generator);
	CHECK_CONTAINS(r.first, "no observed signal saturated");
	iac_lt_cap_result_free(&r);

	/* a request queued now and then at 150, a rate that held, is not
	 * saturation; at the failing 200 the queue is named before the CPU */
	st[1].gen_short = 0;
	st[2].hap_qmax = 1;
	st[1].hap_qmax = 12;
	st[1].host_cpu_max = 97;
	st[1].host = strdup("web1");
	iac_lt_capacity_conclude(&r, st, 3, 1);
	CHECK_CONTAINS(r.first, "HAProxy queue (peak 12 at 200 req/s)");
	iac_lt_cap_result_free(&r);

	/* from the knee on: p99 left its level at 150 already */
	st[2].p99_ms = 40;
	iac_lt_capacity_conclude(&r, st, 3, 1);
	CHECK(r.knee == 150);
	CHECK_CONTAINS(r.first, "HAProxy queue (peak 1 at 150 req/s)");
	iac_lt_cap_result_free(&r);
	st[2].p99_ms = 5;

	/* without the queue, the host's CPU at 200 */
	st[1].hap_qmax = 0;
	st[2].hap_qmax = 0;
	iac_lt_capacity_conclude(&r, st, 3, 1);
	CHECK_CONTAINS(r.first, "server CPU on 'web1' (97 % at 200 req/s)");
	iac_lt_cap_result_free(&r);
	iac_lt_cap_step_free(&st[1]);
}

static void test_parse(void)
{
	iac_lt_threshold *ts;
	size_t n;
	CHECK(iac_lt_capacity_parse(&ts, &n, "p(99)<300ms") == 0);
	CHECK_INT(n, 1);
	CHECK_STR(ts[0].key, "p(99)");
	CHECK(ts[0].metric == IAC_LT_M_PCT && ts[0].pct == 99 && ts[0].limits[0] == 300);
	iac_lt_threshold_free(&ts[0]);
	free(ts);

	CHECK(iac_lt_capacity_parse(&ts, &n, " checkout:p(95) < 1s && http_req_failed<1%") == 0);
	CHECK_INT(n, 2);
	CHECK_STR(ts[0].endpoint, "checkout");
	CHECK(ts[0].limits[0] == 1000);
	CHECK(ts[1].metric == IAC_LT_M_HTTP_REQ_FAILED && fabs(ts[1].limits[0] - 0.01) < 1e-12);
	for (size_t i = 0; i < n; i++)
		iac_lt_threshold_free(&ts[i]);
	free(ts);

	CHECK(iac_lt_capacity_parse(&ts, &n, "p99") < 0);
	CHECK_CONTAINS(iac_err_last(), "has no operator");
	CHECK(iac_lt_capacity_parse(&ts, &n, "p99<300ms") < 0);
	CHECK_CONTAINS(iac_err_last(), "unknown metric 'p99'");
	CHECK(iac_lt_capacity_parse(&ts, &n, "") < 0);
}

static void test_json(void)
{
	iac_lt_cap_plan p = { .start = 50, .hold_s = 10, .precision = 0.05, .max_steps = 40 };
	iac_lt_cap_step st[64];
	size_t n = search(st, 64, &p, 170, 150);
	iac_lt_cap_result r;
	iac_lt_capacity_conclude(&r, st, n, 0);
	json_t *o = iac_lt_capacity_json(&p, "p(99)<300ms", st, n, &r);
	CHECK_STR(json_string_value(json_object_get(o, "condition")), "p(99)<300ms");
	CHECK_STR(json_string_value(json_object_get(o, "step")), "x2");
	CHECK(json_real_value(json_object_get(o, "capacity_rps")) == r.capacity);
	CHECK(json_is_null(json_object_get(o, "max_rate")));
	CHECK_INT(json_array_size(json_object_get(o, "steps")), n);
	json_t *s0 = json_array_get(json_object_get(o, "steps"), 0);
	CHECK(json_is_true(json_object_get(s0, "pass")));
	CHECK(json_real_value(json_object_get(s0, "p99_ms")) == 5);
	json_decref(o);
	iac_lt_cap_result_free(&r);
}

static const iac_test tests[] = {
	TEST(test_doubling_then_bisecting),
	TEST(test_additive_steps_and_max_rate),
	TEST(test_start_rate_fails),
	TEST(test_noise_above_a_failure_is_ignored),
	TEST(test_precision_and_step_limit),
	TEST(test_first_to_saturate),
	TEST(test_parse),
	TEST(test_json),
	{ 0 },
};

int main(void)
{
	return iac_test_run(tests);
}
