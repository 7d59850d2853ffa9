/* Unit tests for the bottleneck findings (iac/loadtest/findings.h): each
 * deliberately built bottleneck, as series, is named by the right rule
 * and ranked first; a healthy run has no finding. */
#include "harness.h"

#include <math.h>
#include <string.h>

#include "iac/loadtest/findings.h"

#define N 30

static double p99[N], ccpu[N], cwait[N], queue[N], cpu1[N], cpu2[N], rt1[N], rt2[N], rt3[N];

/* A healthy 30 s: p99 5 ms, the generator at 30 %, hosts at 40 %, no queue,
 * servers answering in 4 ms. */
static void healthy(void)
{
	for (int s = 0; s < N; s++) {
		p99[s] = 5;
		ccpu[s] = 30;
		cwait[s] = 1;
		queue[s] = 0;
		cpu1[s] = cpu2[s] = 40;
		rt1[s] = rt2[s] = rt3[s] = 4;
	}
}

/* From second `from` on, p99 is 80 ms (the knee). */
static void knee_at(int from)
{
	for (int s = from; s < N; s++)
		p99[s] = 80;
}

static size_t run(iac_lt_finding **f)
{
	static const char *const hosts[] = { "web1", "web2" };
	static const char *const servers[] = { "app/web1", "app/web2", "app/web3" };
	const double *hc[] = { cpu1, cpu2 };
	const double *rt[] = { rt1, rt2, rt3 };
	iac_lt_signals s = { .n = N, .p99_ms = p99, .client_cpu = ccpu, .client_wait = cwait, .lb_queue = queue,
			     .nhosts = 2, .host = hosts, .host_cpu = hc, .nservers = 3, .server = servers,
			     .server_rtime = rt };
	return iac_lt_findings(f, &s);
}

static void test_healthy(void)
{
	iac_lt_finding *f;
	healthy();
	size_t n = run(&f);
	CHECK_INT((int)n, 0);
	iac_lt_findings_free(f, n);
}

static void test_slow_server(void)
{
	iac_lt_finding *f;
	healthy();
	knee_at(12);
	for (int s = 10; s < N; s++)
		rt2[s] = 250;
	size_t n = run(&f);
	CHECK(n >= 1);
	CHECK_STR(f[0].kind, "server");
	CHECK(strstr(f[0].text, "server 'app/web2' answered slowly") != NULL);
	CHECK(strstr(f[0].text, "p99 rose from 5.0 ms to 80.0 ms at t=12 s") != NULL);
	iac_lt_findings_free(f, n);
}

static void test_starved_host(void)
{
	iac_lt_finding *f;
	healthy();
	knee_at(14);
	for (int s = 14; s < N; s++)
		cpu2[s] = 97;
	size_t n = run(&f);
	CHECK(n >= 1);
	CHECK_STR(f[0].kind, "cpu");
	CHECK(strstr(f[0].text, "CPU on web2 (97 % from t=14 s) while web1 stayed at 40 %: uneven balancing") != NULL);
	iac_lt_findings_free(f, n);
}

static void test_all_hosts_hot(void)
{
	iac_lt_finding *f;
	healthy();
	knee_at(10);
	for (int s = 9; s < N; s++)
		cpu1[s] = cpu2[s] = 95;
	size_t n = run(&f);
	CHECK(n >= 1);
	CHECK_STR(f[0].kind, "cpu");
	CHECK(strstr(f[0].text, "CPU on every busy host web1 95 %, web2 95 % (from t=9 s): add capacity") != NULL);
	iac_lt_findings_free(f, n);
}

static void test_queue(void)
{
	iac_lt_finding *f;
	healthy();
	knee_at(8);
	for (int s = 8; s < N; s++)
		queue[s] = 31;
	size_t n = run(&f);
	CHECK(n >= 1);
	CHECK_STR(f[0].kind, "queue");
	CHECK(strstr(f[0].text, "up to 31 waiting, from t=8 s") != NULL);
	iac_lt_findings_free(f, n);
}

/* The generator saturated ranks above what the servers show: its figures
 * are the suspect ones. */
static void test_client_first(void)
{
	iac_lt_finding *f;
	healthy();
	knee_at(10);
	for (int s = 5; s < N; s++)
		ccpu[s] = 99;
	for (int s = 10; s < N; s++)
		queue[s] = 2;
	size_t n = run(&f);
	CHECK_INT((int)n, 2);
	CHECK_STR(f[0].kind, "client");
	CHECK_STR(f[1].kind, "queue");
	CHECK(strstr(f[0].text, "the load generator (its CPU at 99 % from t=5 s)") != NULL);
	iac_lt_findings_free(f, n);
	/* waiting for a CPU, not busy: starved, same verdict */
	healthy();
	for (int s = 3; s < N; s++)
		cwait[s] = 60;
	n = run(&f);
	CHECK_INT((int)n, 1);
	CHECK_STR(f[0].kind, "client");
	iac_lt_findings_free(f, n);
	/* a shared machine: running 70 %, waiting 25 %, neither threshold
	 * alone; together the thread never idled */
	healthy();
	for (int s = 4; s < N; s++) {
		ccpu[s] = 70;
		cwait[s] = 25;
	}
	n = run(&f);
	CHECK_INT((int)n, 1);
	CHECK_STR(f[0].kind, "client");
	CHECK(strstr(f[0].text, "ran or waited for a CPU 95 % of the time from t=4 s") != NULL);
	iac_lt_findings_free(f, n);
	/* half busy, a little waiting: not saturated */
	healthy();
	for (int s = 4; s < N; s++) {
		ccpu[s] = 50;
		cwait[s] = 20;
	}
	n = run(&f);
	CHECK_INT((int)n, 0);
	iac_lt_findings_free(f, n);
}

/* A short blip (one second hot, one second queued) is not a bottleneck. */
static void test_blips_ignored(void)
{
	iac_lt_finding *f;
	healthy();
	cpu2[7] = 99;
	queue[9] = 4;
	ccpu[3] = 100;
	rt2[5] = 300;
	size_t n = run(&f);
	CHECK_INT((int)n, 0);
	iac_lt_findings_free(f, n);
}

/* Latency rose and nothing observed explains it: say so, and what to observe. */
static void test_unexplained(void)
{
	iac_lt_finding *f;
	healthy();
	knee_at(20);
	size_t n = run(&f);
	CHECK_INT((int)n, 1);
	CHECK_STR(f[0].kind, "latency");
	CHECK(strstr(f[0].text, "with nothing observed saturated") != NULL);
	iac_lt_findings_free(f, n);
}

/* Nothing sampled (NaN everywhere, no HAProxy): no crash, no finding. */
static void test_unsampled(void)
{
	iac_lt_finding *f;
	double nan_s[N];
	for (int s = 0; s < N; s++)
		nan_s[s] = NAN;
	iac_lt_signals s = { .n = N, .p99_ms = nan_s, .client_cpu = nan_s };
	size_t n = iac_lt_findings(&f, &s);
	CHECK_INT((int)n, 0);
	iac_lt_findings_free(f, n);
	iac_lt_signals empty = { 0 };
	n = iac_lt_findings(&f, &empty);
	CHECK_INT((int)n, 0);
	iac_lt_findings_free(f, n);
}

/* A replica falling behind by more than 1 MB for 3 s, or not streaming at all. */
static void test_db_lag(void)
{
	iac_lt_finding *f;
	double lag[N];
	healthy();
	for (int s = 0; s < N; s++)
		lag[s] = s < 6 ? 1000 : 12.5 * 1048576;
	iac_lt_signals s = { .n = N, .p99_ms = p99, .db_lag_bytes = lag, .db_lagging = "h3" };
	size_t n = iac_lt_findings(&f, &s);
	CHECK_INT((int)n, 1);
	CHECK_STR(f[0].kind, "db");
	CHECK_CONTAINS(f[0].text, "database replica 'h3' fell behind its leader (up to 12.5 MB from t=6 s)");
	iac_lt_findings_free(f, n);
	for (int k = 10; k < N; k++)
		lag[k] = INFINITY;
	for (int k = 0; k < 10; k++)
		lag[k] = 0;
	n = iac_lt_findings(&f, &s);
	CHECK_INT((int)n, 1);
	CHECK_CONTAINS(f[0].text, "database replica 'h3' stopped replicating (from t=10 s)");
	iac_lt_findings_free(f, n);
	/* a finite lag for good, then one second not streaming later: the
	 * finding is about the lag, its peak from its own run */
	for (int k = 0; k < N; k++)
		lag[k] = k < 5 ? 0 : 3 * 1048576;
	lag[25] = INFINITY;
	lag[26] = 0;
	n = iac_lt_findings(&f, &s);
	CHECK_INT((int)n, 1);
	CHECK_CONTAINS(f[0].text, "fell behind its leader (up to 3.0 MB from t=5 s)");
	iac_lt_findings_free(f, n);
	for (int k = 0; k < N; k++)
		lag[k] = k < 10 ? 0 : INFINITY;
	lag[12] = 0;   /* blips: never 3 s in a row */
	lag[15] = 0;
	lag[18] = 0;
	for (int k = 19; k < N; k += 2)
		lag[k] = 0;
	n = iac_lt_findings(&f, &s);
	CHECK_INT((int)n, 0);
	iac_lt_findings_free(f, n);
}

static const iac_test tests[] = {
	TEST(test_healthy), TEST(test_slow_server), TEST(test_starved_host), TEST(test_all_hosts_hot), TEST(test_queue),
	TEST(test_client_first), TEST(test_blips_ignored), TEST(test_unexplained), TEST(test_unsampled), TEST(test_db_lag), { 0 },
};

int main(void)
{
	return iac_test_run(tests);
}
