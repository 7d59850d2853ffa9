/* Unit tests for the load tester's latency histogram: bounded relative
 * error, percentiles against exact ones, merging. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "iac/loadtest/hist.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_buckets_cover_values(void)
{
	/* every value lands in a bucket whose range holds it, and the range is
	 * narrower than 1/128 of the value */
	for (uint64_t v = 0; v < 5000000; v = v < 1000 ? v + 1 : v + v / 97) {
		int i = iac_lt_hist_index(v);
		CHECK(i >= 0 && i < IAC_LT_HIST_LEN);
		CHECK(iac_lt_hist_lowest(i) <= v && v <= iac_lt_hist_highest(i));
		if (v >= 256)
			CHECK((double)(iac_lt_hist_highest(i) - iac_lt_hist_lowest(i)) <= (double)v / 128.0);
	}
	CHECK(iac_lt_hist_index(IAC_LT_HIST_MAX_US) == IAC_LT_HIST_LEN - 1);
	CHECK(iac_lt_hist_index(UINT64_MAX) == IAC_LT_HIST_LEN - 1);   /* clamped */
}

static void test_percentiles_match_exact(void)
{
	enum { N = 100000 };
	static uint64_t v[N];
	iac_lt_hist h;
	iac_lt_hist_init(&h);
	srand(7);
	for (int i = 0; i < N; i++) {
		/* a long-tailed mix: mostly ~1 ms, some 10-500 ms */
		v[i] = (uint64_t)(rand() % 100 < 95 ? 500 + rand() % 1500 : 10000 + rand() % 490000);
		iac_lt_hist_record(&h, v[i]);
	}
	qsort(v, N, sizeof(v[0]), cmp_u64);
	CHECK_INT(h.count, N);
	CHECK_INT(h.min, v[0]);
	CHECK_INT(h.max, v[N - 1]);
	const double ps[] = { 1, 50, 90, 95, 99, 99.9, 99.99 };
	for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
		size_t rank = (size_t)ceil(ps[k] / 100.0 * N);
		double exact = (double)v[rank - 1];
		double got = (double)iac_lt_hist_percentile(&h, ps[k]);
		if (fabs(got - exact) > exact / 128.0 + 1) {
			fprintf(stderr, "p(%g): exact %.0f, histogram %.0f\n", ps[k], exact, got);
			iac_test_failures++;
		}
	}
	CHECK_INT(iac_lt_hist_percentile(&h, 100), v[N - 1]);
	double mean = 0;
	for (int i = 0; i < N; i++)
		mean += (double)v[i];
	mean /= N;
	CHECK(fabs(iac_lt_hist_mean(&h) - mean) < 1e-6 * mean);
}

static void test_merge_equals_single(void)
{
	iac_lt_hist a, b, all;
	iac_lt_hist_init(&a);
	iac_lt_hist_init(&b);
	iac_lt_hist_init(&all);
	for (uint64_t i = 1; i <= 20000; i++) {
		uint64_t x = (i * 7919) % 300000;
		iac_lt_hist_record(i % 3 ? &a : &b, x);
		iac_lt_hist_record(&all, x);
	}
	iac_lt_hist_merge(&a, &b);
	CHECK_INT(a.count, all.count);
	CHECK_INT(a.min, all.min);
	CHECK_INT(a.max, all.max);
	CHECK(memcmp(a.counts, all.counts, sizeof(a.counts)) == 0);
	for (double p = 0; p <= 100; p += 12.5)
		CHECK_INT(iac_lt_hist_percentile(&a, p), iac_lt_hist_percentile(&all, p));
	/* merging an empty histogram changes nothing */
	iac_lt_hist empty;
	iac_lt_hist_init(&empty);
	iac_lt_hist_merge(&a, &empty);
	CHECK_INT(a.min, all.min);
}

static void test_empty_and_small(void)
{
	iac_lt_hist h;
	iac_lt_hist_init(&h);
	CHECK_INT(iac_lt_hist_percentile(&h, 99), 0);
	CHECK(iac_lt_hist_mean(&h) == 0);
	iac_lt_hist_record(&h, 42);
	CHECK_INT(iac_lt_hist_percentile(&h, 0), 42);
	CHECK_INT(iac_lt_hist_percentile(&h, 50), 42);
	CHECK_INT(iac_lt_hist_percentile(&h, 100), 42);
	/* a single huge value is reported clamped to what was recorded */
	iac_lt_hist_record(&h, 1000000);
	CHECK_INT(iac_lt_hist_percentile(&h, 99), 1000000);
	CHECK_INT(iac_lt_hist_percentile(&h, 50), 42);
	iac_lt_hist_record_n(&h, 7, 0);   /* n = 0 records nothing */
	CHECK_INT(h.count, 2);
}

static void test_fixed_memory(void)
{
	/* the whole point: memory does not grow with the number of samples */
	CHECK(sizeof(iac_lt_hist) < 32 * 1024);
}

static const iac_test tests[] = {
	TEST(test_buckets_cover_values),
	TEST(test_percentiles_match_exact),
	TEST(test_merge_equals_single),
	TEST(test_empty_and_small),
	TEST(test_fixed_memory),
	{ 0 },
};

int main(void)
{
	return iac_test_run(tests);
}
