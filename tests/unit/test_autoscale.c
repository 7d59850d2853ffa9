/* Unit tests for the autoscaler's decision (providers/deploy/autoscale.h):
 * each HPA rule on its own, then a steady load near the target driven
 * through time (no flapping) and a ramp up and down. */
#include "harness.h"

#include <jansson.h>
#include <math.h>

#include "iac/core/err.h"
#include "providers/deploy/autoscale.h"

static iac_autoscale_spec spec(void)
{
	iac_autoscale_spec s;
	json_t *a = json_pack("{s:i,s:i,s:s,s:i,s:f,s:{s:i,s:s},s:{s:s,s:i}}", "min", 2, "max", 8, "metric",
			      "haproxy_scur_per_server", "target", 20, "tolerance", 0.1, "scale_up", "max_step", 2,
			      "period", "15s", "scale_down", "stabilization", "60s", "max_step", 1);
	CHECK(iac_autoscale_spec_parse(&s, a) == 0);
	json_decref(a);
	return s;
}

static int decide(const iac_autoscale_spec *s, int current, double metric, double now,
		  const iac_autoscale_point *recs, size_t nr, const iac_autoscale_point *ev, size_t ne,
		  iac_autoscale_decision *d)
{
	iac_autoscale_input in = { s, current, metric, now, recs, nr, ev, ne };
	iac_autoscale_decide(d, &in);
	return d->desired;
}

/* bad (stolen) is refused with a message containing expect */
static void parse_fails(json_t *bad, const char *expect)
{
	iac_autoscale_spec s;
	CHECK(iac_autoscale_spec_parse(&s, bad) < 0);
	CHECK_CONTAINS(iac_err_last(), expect);
	json_decref(bad);
}

static void test_parse(void)
{
	iac_autoscale_spec s = spec();
	CHECK_INT(s.min, 2);
	CHECK_INT(s.max, 8);
	CHECK(s.target == 20);
	CHECK(s.up_period == 15);
	CHECK_INT(s.up_max_step, 2);
	CHECK(s.down_stabilization == 60);
	CHECK_INT(s.down_max_step, 1);
	CHECK(s.down_period == 15);
	CHECK(s.interval == 15);
	CHECK_STR(s.metric, "haproxy_scur_per_server");

	parse_fails(json_pack("{s:i,s:i,s:i}", "min", 4, "max", 2, "target", 10),
		    "autoscale.max (2) is below autoscale.min (4)");
	parse_fails(json_pack("{s:i,s:i,s:i,s:{s:s}}", "min", 1, "max", 2, "target", 10, "scale_up", "perod", "1s"),
		    "unknown setting 'perod'");
	parse_fails(json_pack("{s:i,s:i}", "min", 1, "max", 2), "autoscale.target");
	parse_fails(json_pack("{s:i,s:i,s:i,s:{s:s}}", "min", 1, "max", 2, "target", 10, "scale_down", "stabilization",
			      "x"), "autoscale.scale_down.stabilization");
	parse_fails(json_pack("{s:i,s:i,s:i,s:f}", "min", 1, "max", 2, "target", 10, "tolerance", 1.5),
		    "autoscale.tolerance");
}

/* desired = ceil(current * metric / target) */
static void test_formula(void)
{
	iac_autoscale_spec s = spec();
	iac_autoscale_decision d;
	s.up_max_step = 100;
	CHECK_INT(decide(&s, 2, 30, 0, NULL, 0, NULL, 0, &d), 3);
	CHECK_INT(d.recommendation, 3);
	CHECK(d.record);
	CHECK_CONTAINS(d.reason, "ceil(2 x 1.50) = 3");
	CHECK_INT(decide(&s, 2, 31, 0, NULL, 0, NULL, 0, &d), 4);   /* 3.1 -> 4 */
	CHECK_INT(decide(&s, 4, 10, 0, NULL, 0, NULL, 0, &d), 3);   /* 2 rec, one step down allowed */
	CHECK_INT(d.recommendation, 2);
}

static void test_tolerance(void)
{
	iac_autoscale_spec s = spec();
	iac_autoscale_decision d;
	CHECK_INT(decide(&s, 4, 21.9, 0, NULL, 0, NULL, 0, &d), 4);   /* ratio 1.095 */
	CHECK_CONTAINS(d.reason, "within tolerance");
	CHECK_INT(decide(&s, 4, 18.1, 0, NULL, 0, NULL, 0, &d), 4);
	CHECK_INT(decide(&s, 4, 22.4, 0, NULL, 0, NULL, 0, &d), 5);   /* ratio 1.12: ceil(4.48) */
}

static void test_clamp(void)
{
	iac_autoscale_spec s = spec();
	iac_autoscale_decision d;
	s.up_max_step = 100;
	CHECK_INT(decide(&s, 6, 100, 0, NULL, 0, NULL, 0, &d), 8);
	CHECK_CONTAINS(d.reason, "capped at max 8");
	s.down_max_step = 100;
	CHECK_INT(decide(&s, 3, 1, 0, NULL, 0, NULL, 0, &d), 2);
	CHECK_CONTAINS(d.reason, "raised to min 2");
	/* below min, with no metric: raised anyway */
	CHECK_INT(decide(&s, 1, NAN, 0, NULL, 0, NULL, 0, &d), 2);
	CHECK_INT(decide(&s, 9, NAN, 0, NULL, 0, NULL, 0, &d), 8);
}

static void test_metric_unknown(void)
{
	iac_autoscale_spec s = spec();
	iac_autoscale_decision d;
	CHECK_INT(decide(&s, 4, NAN, 0, NULL, 0, NULL, 0, &d), 4);
	CHECK_CONTAINS(d.reason, "metric unavailable");
	CHECK(!d.record);
}

/* at most max_step added per period, counting earlier scale-ups in it */
static void test_scale_up_rate(void)
{
	iac_autoscale_spec s = spec();
	iac_autoscale_decision d;
	CHECK_INT(decide(&s, 2, 80, 100, NULL, 0, NULL, 0, &d), 4);   /* wants 8 */
	CHECK_CONTAINS(d.reason, "scale-up limited to +2 per 15s: 4");
	iac_autoscale_point ev[] = { { 95, 2 } };
	CHECK_INT(decide(&s, 4, 40, 100, NULL, 0, ev, 1, &d), 4);   /* 2 added 5 s ago: none more yet */
	CHECK_INT(decide(&s, 4, 40, 110.5, NULL, 0, ev, 1, &d), 6);   /* the period has passed */
	iac_autoscale_point ev1[] = { { 95, 1 } };
	CHECK_INT(decide(&s, 3, 80, 100, NULL, 0, ev1, 1, &d), 4);   /* one more within the period */
}

/* scale-down: the highest recommendation over the window, then max_step */
static void test_scale_down_stabilization(void)
{
	iac_autoscale_spec s = spec();
	iac_autoscale_decision d;
	iac_autoscale_point recs[] = { { 50, 6 }, { 80, 5 }, { 95, 4 } };
	/* now 100: load fell, recommendation 2, but 6 was recommended 50 s ago */
	CHECK_INT(decide(&s, 6, 5, 100, recs, 3, NULL, 0, &d), 6);
	CHECK_CONTAINS(d.reason, "held at 6 by the highest recommendation of the last 60s");
	/* now 115: 6 is out of the window, 5 is the highest */
	CHECK_INT(decide(&s, 6, 5, 115, recs, 3, NULL, 0, &d), 5);
	/* now 150: only 4 (95) within the window; one step at a time */
	iac_autoscale_point ev[] = { { 115, -1 } };
	CHECK_INT(decide(&s, 5, 5, 125, recs, 3, ev, 1, &d), 5);   /* one removed 10 s ago */
	CHECK_INT(decide(&s, 5, 5, 150, recs, 3, ev, 1, &d), 4);
	CHECK_CONTAINS(d.reason, "held at 4");
	/* nothing left in the window: 2 recommended, one step at a time */
	CHECK_INT(decide(&s, 4, 5, 200, recs, 3, ev, 1, &d), 3);
	CHECK_CONTAINS(d.reason, "scale-down limited to -1 per 15s: 3");
	/* a scale-up is not held back by the down window */
	CHECK_INT(decide(&s, 4, 30, 150, recs, 3, ev, 1, &d), 6);
}

static void test_scale_up_stabilization(void)
{
	iac_autoscale_spec s = spec();
	iac_autoscale_decision d;
	s.up_stabilization = 30;
	iac_autoscale_point recs[] = { { 90, 3 } };
	CHECK_INT(decide(&s, 3, 40, 100, recs, 1, NULL, 0, &d), 3);   /* a spike: lowest of the window is 3 */
	CHECK_CONTAINS(d.reason, "held at 3 by the lowest recommendation");
	CHECK_INT(decide(&s, 3, 40, 121, recs, 1, NULL, 0, &d), 5);
}

/* A steady load near the target, with noise inside and just outside the
 * tolerance, over 10 minutes of 15 s steps: after the first adjustment the
 * pool size never changes direction (no flapping). */
static void test_no_flapping(void)
{
	iac_autoscale_spec s = spec();
	iac_autoscale_decision d;
	iac_autoscale_point recs[64], ev[64];
	size_t nr = 0, ne = 0;
	int cur = 4, changes = 0, last_dir = 0, reversals = 0;
	const double total = 84;   /* sessions in all: 21 per server at 4, 16.8 at 5 */
	for (int step = 0; step < 40; step++) {
		double now = 1000 + step * 15.0;
		double noise = (step % 3 == 0 ? 1.5 : step % 3 == 1 ? -1.5 : 0.5);
		double metric = (total + noise * cur) / cur;
		decide(&s, cur, metric, now, recs, nr, ev, ne, &d);
		if (d.record && nr < 64)
			recs[nr++] = (iac_autoscale_point){ now, d.recommendation };
		if (d.desired != cur) {
			int dir = d.desired > cur ? 1 : -1;
			if (last_dir && dir != last_dir)
				reversals++;
			last_dir = dir;
			changes++;
			if (ne < 64)
				ev[ne++] = (iac_autoscale_point){ now, d.desired - cur };
			cur = d.desired;
		}
	}
	CHECK_INT(reversals, 0);
	CHECK(changes <= 1);
	CHECK(cur >= 4 && cur <= 5);
}

/* A ramp: up in steps of 2 per 15 s to max, back down one per period
 * only after 60 s of low recommendations. */
static void test_ramp(void)
{
	iac_autoscale_spec s = spec();
	iac_autoscale_decision d;
	iac_autoscale_point recs[128], ev[128];
	size_t nr = 0, ne = 0;
	int cur = 2, peak_at = -1, first_down = -1;
	for (int step = 0; step < 60; step++) {
		double now = step * 15.0;
		double total = step < 10 ? 200 : 20;   /* sessions across the pool */
		decide(&s, cur, total / cur, now, recs, nr, ev, ne, &d);
		if (d.record && nr < 128)
			recs[nr++] = (iac_autoscale_point){ now, d.recommendation };
		if (d.desired > cur)
			CHECK(d.desired - cur <= 2);
		if (d.desired < cur)
			CHECK(cur - d.desired == 1);
		if (d.desired == 8 && peak_at < 0)
			peak_at = step;
		if (d.desired < cur && first_down < 0)
			first_down = step;
		if (d.desired != cur && ne < 128)
			ev[ne++] = (iac_autoscale_point){ now, d.desired - cur };
		cur = d.desired;
	}
	CHECK_INT(peak_at, 2);      /* 2 -> 4 -> 6 -> 8 at 0, 15, 30 s */
	CHECK_INT(first_down, 13);  /* load fell at step 10 (150 s); step 9's 8 (135 s) leaves the 60 s window at 195 s */
	CHECK_INT(cur, 2);
}

static const iac_test tests[] = {
	TEST(test_parse), TEST(test_formula), TEST(test_tolerance), TEST(test_clamp), TEST(test_metric_unknown),
	TEST(test_scale_up_rate), TEST(test_scale_down_stabilization), TEST(test_scale_up_stabilization),
	TEST(test_no_flapping), TEST(test_ramp), { 0 },
};

int main(void)
{
	return iac_test_run(tests);
}
