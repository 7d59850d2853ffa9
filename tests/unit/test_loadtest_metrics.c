/* Unit tests for k6-style metrics: the four types' semantics once threads'
 * figures are merged, thresholds on them in k6's form, and their
 * Prometheus exposition. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "iac/loadtest/agent.h"
#include "iac/loadtest/prom.h"
#include "iac/loadtest/report.h"
#include "iac/loadtest/scenario.h"

static iac_lt_macc *add(iac_lt_stats *s, const char *name, enum iac_lt_mtype t, double v, uint64_t at)
{
	size_t i = iac_lt_stats_metric(s, name, t);
	iac_lt_macc_add(&s->macc[i], v, at);
	return &s->macc[i];
}

static void test_merge_semantics(void)
{
	iac_lt_stats a, b, total;
	iac_lt_stats_init(&a);
	iac_lt_stats_init(&b);
	iac_lt_stats_init(&total);
	add(&a, "orders", IAC_LT_COUNTER, 2, 1);
	add(&b, "orders", IAC_LT_COUNTER, 3, 1);
	add(&a, "depth", IAC_LT_GAUGE, 9, 10);   /* set later on thread b: b's value is the last */
	add(&b, "depth", IAC_LT_GAUGE, 4, 20);
	add(&a, "depth", IAC_LT_GAUGE, 1, 5);
	add(&a, "good", IAC_LT_RATE, 1, 1);
	add(&a, "good", IAC_LT_RATE, 0, 1);
	add(&b, "good", IAC_LT_RATE, 1, 1);
	for (int i = 1; i <= 100; i++)
		add(i % 2 ? &a : &b, "wait", IAC_LT_TREND, i, 1);
	iac_lt_stats_merge(&total, &a);
	iac_lt_stats_merge(&total, &b);
	const iac_lt_macc *m = iac_lt_stats_find_metric(&total, "orders");
	CHECK(m && m->sum == 5 && m->n == 2);
	m = iac_lt_stats_find_metric(&total, "depth");
	CHECK(m && m->last == 4 && m->min == 1 && m->max == 9);
	m = iac_lt_stats_find_metric(&total, "good");
	CHECK(m && m->n == 3 && m->nonzero == 2);
	m = iac_lt_stats_find_metric(&total, "wait");
	CHECK(m && m->hist && m->hist->count == 100);
	CHECK(fabs((double)iac_lt_hist_percentile(m->hist, 99) / 1e3 - 99) < 1);   /* merged, not averaged */

	/* a cleared thread's figures add nothing; names stay */
	iac_lt_stats_clear(&a);
	CHECK_INT(a.nmacc, 4);
	iac_lt_stats_merge(&total, &a);
	CHECK(iac_lt_stats_find_metric(&total, "orders")->sum == 5);

	/* thresholds in k6's form on the totals */
	iac_lt_config cfg;
	CHECK_INT(iac_lt_scenario_load_string(&cfg, "s.lua",
					      "target 'http://h'\n"
					      "counter('orders') gauge('depth') rate('good') trend('wait', true)\n"
					      "thresholds { orders = { 'count == 5', 'rate > 0.4' }, depth = 'value == 4',\n"
					      "  good = 'rate > 60%', wait = { 'p(50) < 51ms', 'max >= 100' },\n"
					      "  ['orders{kind:x}'] = 'count == 0', ['wait{k:v}'] = 'avg < 1' }\n"), 0);
	CHECK_INT(cfg.nsubs, 2);
	size_t failed = iac_lt_thresholds_eval(cfg.thresholds, cfg.nthresholds, &total, 10);
	for (size_t i = 0; i < cfg.nthresholds; i++)
		if (!strcmp(cfg.thresholds[i].key, "wait{k:v}"))
			CHECK(!cfg.thresholds[i].ok && !cfg.thresholds[i].have_value);   /* no sample: fails */
		else
			CHECK(cfg.thresholds[i].ok);
	CHECK_INT(failed, 1);

	/* the exposition */
	iac_buf out = IAC_BUF_INIT;
	total.requests = 7;
	iac_lt_prom_render(&out, &cfg, &total, 3, 1.5);
	const char *t = iac_buf_cstr(&out);
	CHECK_CONTAINS(t, "# TYPE iac_loadtest_http_reqs_total counter\niac_loadtest_http_reqs_total 7\n");
	CHECK_CONTAINS(t, "iac_loadtest_orders_total 5\n");
	CHECK_CONTAINS(t, "iac_loadtest_depth 4\n");
	CHECK_CONTAINS(t, "iac_loadtest_good{result=\"true\"} 2\niac_loadtest_good{result=\"false\"} 1\n");
	CHECK_CONTAINS(t, "iac_loadtest_wait_count 100\n");
	CHECK_CONTAINS(t, "iac_loadtest_vus 3\n");
	iac_buf_free(&out);
	iac_lt_config_free(&cfg);
	iac_lt_stats_free(&a);
	iac_lt_stats_free(&b);
	iac_lt_stats_free(&total);
}

/* -agents: an agent's raw figures merge losslessly: two agents' histograms
 * added bucket by bucket give the percentiles of all samples together. */
static void test_raw_merge_lossless(void)
{
	iac_lt_stats a, b, all, merged;
	iac_lt_stats_init(&a);
	iac_lt_stats_init(&b);
	iac_lt_stats_init(&all);
	iac_lt_stats_init(&merged);
	for (uint64_t v = 1; v <= 20000; v++) {
		iac_lt_stats *s = v % 3 ? &a : &b;   /* uneven halves: averaging percentiles would be wrong */
		uint64_t us = v % 3 ? v * 7 : v * 50;
		iac_lt_hist_record(&s->hist, us);
		iac_lt_hist_record(&all.hist, us);
		s->requests++;
		size_t e = iac_lt_stats_endpoint(s, "GET /x");
		s->eps[e]->requests++;
		iac_lt_hist_record(&s->eps[e]->hist, us);
	}
	add(&a, "orders", IAC_LT_COUNTER, 2, 1);
	add(&b, "wait", IAC_LT_TREND, 12.5, 1);
	json_t *ra = iac_lt_raw_json(&a, 2, 4, 1, 30, NULL), *rb = iac_lt_raw_json(&b, 2, 4, 0, 95, "cpu");
	/* through text, as it comes back from an agent */
	char *ta = json_dumps(ra, JSON_COMPACT), *tb = json_dumps(rb, JSON_COMPACT);
	json_t *pa = json_loads(ta, 0, NULL), *pb = json_loads(tb, 0, NULL);
	CHECK_INT(iac_lt_raw_merge(&merged, pa), 0);
	CHECK_INT(iac_lt_raw_merge(&merged, pb), 0);
	CHECK_INT(merged.requests, 20000);
	CHECK_INT(merged.hist.count, all.hist.count);
	for (double p = 1; p <= 100; p += 0.5)
		CHECK_INT(iac_lt_hist_percentile(&merged.hist, p), iac_lt_hist_percentile(&all.hist, p));
	CHECK(merged.hist.min == all.hist.min && merged.hist.max == all.hist.max && merged.hist.sum == all.hist.sum);
	CHECK_INT(iac_lt_stats_find_endpoint(&merged, "GET /x")->hist.count, 20000);
	CHECK(iac_lt_stats_find_metric(&merged, "orders")->sum == 2);
	CHECK_INT(iac_lt_stats_find_metric(&merged, "wait")->hist->count, 1);
	json_t *bad = json_pack("{s:i}", "requests", 3);
	CHECK(iac_lt_raw_merge(&merged, bad) < 0);
	json_decref(bad);
	free(ta);
	free(tb);
	json_decref(ra);
	json_decref(rb);
	json_decref(pa);
	json_decref(pb);
	iac_lt_stats_free(&a);
	iac_lt_stats_free(&b);
	iac_lt_stats_free(&all);
	iac_lt_stats_free(&merged);
}

static const iac_test tests[] = {
	TEST(test_merge_semantics),
	TEST(test_raw_merge_lossless),
	{ 0 },
};

int main(void)
{
	return iac_test_run(tests);
}
