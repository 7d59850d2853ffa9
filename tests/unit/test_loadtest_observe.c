/* Unit tests for the load tester's server-side parsing: HAProxy `show stat`
 * CSV and /proc/stat + /proc/meminfo. */
#include <math.h>

#include "harness.h"
#include "iac/core/err.h"
#include "iac/loadtest/observe.h"

static const char *csv =
	"# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,"
	"weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,"
	"rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,"
	"hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,"
	"lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,\n"
	"web,FRONTEND,,,16,16,2000,100,,,,,,,,,,OPEN,,,,,,,,,1,2,0,,,,0,5,0,9,,,,0,90,0,0,0,0,,120,130,100,,,0,0,0,0,,,,,,,,\n"
	"app,n1,14,14,2,2,2,50,,,,,,,,,,UP,1,1,0,,,,,,1,3,1,,50,,2,3,,5,,,,0,50,0,0,0,0,,,,,0,0,,,,,1,,,0,0,300,1500,\n"
	"app,BACKEND,14,14,2,2,200,50,,,,,,,,,,UP,1,1,0,,,,,,1,3,0,,50,,1,3,,5,,,,0,50,0,0,0,0,,,,,0,0,0,0,0,0,1,,,800,0,302,1500,\n"
	"stats,BACKEND,0,0,1,1,200,3,,,,,,,,,,UP,0,0,0,,,,,,1,4,0,,0,,1,0,,1,,,,0,0,0,0,0,0,,,,,0,0,0,0,0,0,0,,,0,0,0,0,\n";

static void test_haproxy_csv(void)
{
	iac_lt_hap_sample s;
	CHECK_INT(iac_lt_haproxy_parse(&s, csv), 0);
	CHECK_INT(s.backends, 1);          /* the stats backend is not a service */
	CHECK(s.qcur == 14);
	CHECK(s.scur == 2);
	CHECK(s.rtime_ms == 302);
	CHECK(s.rate == 120);
	/* each server on its own, named backend/server; not the stats backend's */
	CHECK_INT(s.nservers, 1);
	CHECK_STR(s.servers[0].name, "app/n1");
	CHECK(s.servers[0].qcur == 14);
	CHECK(s.servers[0].scur == 2);
	CHECK(s.servers[0].rtime_ms == 300);
	CHECK(iac_lt_haproxy_parse(&s, "Unknown command\n") < 0);
	CHECK_CONTAINS(iac_err_last(), "does not start with the CSV header");
	CHECK(iac_lt_haproxy_parse(&s, "# a,b,c\n1,2,3\n") < 0);
	CHECK_CONTAINS(iac_err_last(), "lacks pxname");
}

static void test_proc_parse(void)
{
	iac_lt_cpu_prev prev = { 0, 0, 0 };
	double cpu, mem;
	const char *t1 = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n"
			 "MemTotal:       1000 kB\nMemFree:  100 kB\nMemAvailable:    750 kB\n";
	const char *t2 = "cpu  400 0 200 800 100 0 0 0 0 0\n"
			 "MemTotal:       1000 kB\nMemAvailable:    500 kB\n";
	CHECK_INT(iac_lt_host_parse(&cpu, &mem, &prev, t1), 0);
	CHECK(isnan(cpu));                 /* no previous sample yet */
	CHECK(fabs(mem - 25) < 1e-9);
	CHECK_INT(iac_lt_host_parse(&cpu, &mem, &prev, t2), 0);
	/* busy went 200 -> 600 (+400) of total 1000 -> 1500 (+500) */
	CHECK(fabs(cpu - 80) < 1e-9);
	CHECK(fabs(mem - 50) < 1e-9);
	CHECK(iac_lt_host_parse(&cpu, &mem, &prev, "nothing here") < 0);
}

/* Patroni 3's GET /cluster: the leader, the replica furthest behind; a
 * replica whose lag is "unknown" (not streaming) is as far as it gets. */
static void test_patroni_cluster(void)
{
	iac_lt_db_sample s;
	json_t *c = json_loads("{\"members\": [{\"name\": \"h1\", \"role\": \"leader\", \"state\": \"running\"},"
			       "{\"name\": \"h2\", \"role\": \"replica\", \"state\": \"streaming\", \"lag\": 0},"
			       "{\"name\": \"h3\", \"role\": \"replica\", \"state\": \"streaming\", \"lag\": 2097152}]}",
			       0, NULL);
	CHECK_INT(iac_lt_patroni_parse(&s, c), 0);
	CHECK_STR(s.leader, "h1");
	CHECK_STR(s.lagging, "h3");
	CHECK(s.lag_bytes == 2097152);
	CHECK_INT(s.replicas, 2);
	json_decref(c);
	c = json_loads("{\"members\": [{\"name\": \"h2\", \"role\": \"replica\", \"lag\": \"unknown\"}]}", 0, NULL);
	CHECK_INT(iac_lt_patroni_parse(&s, c), 0);
	CHECK_STR(s.leader, "");
	CHECK(isinf(s.lag_bytes));
	json_decref(c);
	c = json_loads("{\"members\": [{\"name\": \"h1\", \"role\": \"master\"}]}", 0, NULL);
	CHECK_INT(iac_lt_patroni_parse(&s, c), 0);
	CHECK_STR(s.leader, "h1");
	CHECK(s.lag_bytes == 0);
	json_decref(c);
	c = json_loads("{\"error\": 1}", 0, NULL);
	CHECK(iac_lt_patroni_parse(&s, c) < 0);
	json_decref(c);
}

static const iac_test tests[] = {
	TEST(test_haproxy_csv),
	TEST(test_proc_parse),
	TEST(test_patroni_cluster),
	{ 0 },
};

int main(void)
{
	return iac_test_run(tests);
}
