/* Unit tests for iac/deploy/probe: percentiles, Prometheus answers and
 * verdicts, URL encoding, and the health/analysis gates against a small
 * keep-alive HTTP server in a thread (real nginx/Prometheus: tests/haproxy). */
#include "harness.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/deploy/probe.h"

static void test_percentile(void)
{
	double v[100];
	for (int i = 0; i < 100; i++)
		v[i] = 100 - i;   /* unsorted on purpose */
	CHECK(iac_probe_percentile(v, 100, 50) == 50);
	CHECK(iac_probe_percentile(v, 100, 99) == 99);
	CHECK(iac_probe_percentile(v, 100, 100) == 100);
	CHECK(iac_probe_percentile(v, 100, 0) == 1);
	double one = 7;
	CHECK(iac_probe_percentile(&one, 1, 99) == 7);
	CHECK(iac_probe_percentile(NULL, 0, 99) == 0);
}

static void test_prom_url(void)
{
	char *u = iac_probe_prom_url("http://127.0.0.1:9090/", "sum(rate(x{code=~\"5..\"}[1m])) / 2");
	CHECK_STR(u, "http://127.0.0.1:9090/api/v1/query?query="
		  "sum%28rate%28x%7Bcode%3D~%225..%22%7D%5B1m%5D%29%29%20%2F%202");
	free(u);
	u = iac_probe_prom_url("http://p:9090", "up");
	CHECK_STR(u, "http://p:9090/api/v1/query?query=up");
	free(u);
}

#define VEC(vals) "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[" vals "]}}"
#define SAMPLE(v) "{\"metric\":{\"job\":\"x\"},\"value\":[1700000000.1,\"" v "\"]}"

static void test_prom_judge(void)
{
	iac_probe_prom_result r;

	CHECK_INT(iac_probe_prom_judge(&r, VEC(SAMPLE("0.02")), "err", NAN, 0.05), 0);
	CHECK_INT(r.verdict, IAC_PROBE_PASSED);
	CHECK(fabs(r.value - 0.02) < 1e-12);
	CHECK_STR(r.result_type, "vector");
	CHECK_INT(r.n_values, 1);

	CHECK_INT(iac_probe_prom_judge(&r, VEC(SAMPLE("0.02") "," SAMPLE("0.07")), "err", NAN, 0.05), -1);
	CHECK_INT(r.verdict, IAC_PROBE_FAILED);
	CHECK(fabs(r.value - 0.07) < 1e-12);
	CHECK_CONTAINS(iac_err_last(), "prometheus gate failed: query 'err' = 0.07 > max 0.05");

	CHECK_INT(iac_probe_prom_judge(&r, VEC(SAMPLE("0.98")), "ok", 0.99, NAN), -1);
	CHECK_INT(r.verdict, IAC_PROBE_FAILED);
	CHECK_CONTAINS(iac_err_last(), "< min 0.99");
	CHECK_INT(iac_probe_prom_judge(&r, VEC(SAMPLE("0.995")), "ok", 0.99, 1.0), 0);

	/* Argo: no data is Inconclusive, not Successful */
	CHECK_INT(iac_probe_prom_judge(&r, VEC(""), "none", NAN, 1), -1);
	CHECK_INT(r.verdict, IAC_PROBE_INCONCLUSIVE);
	CHECK(isnan(r.value));
	CHECK_CONTAINS(iac_err_last(), "inconclusive: query 'none' returned no data");
	CHECK_INT(iac_probe_prom_judge(&r, VEC(SAMPLE("NaN")), "ratio", NAN, 1), -1);
	CHECK_INT(r.verdict, IAC_PROBE_INCONCLUSIVE);

	CHECK_INT(iac_probe_prom_judge(&r, "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
				       "\"result\":[1700000000,\"3\"]}}", "scalar(3)", NAN, 2), -1);
	CHECK_INT(r.verdict, IAC_PROBE_FAILED);
	CHECK_STR(r.result_type, "scalar");
	CHECK(r.value == 3);
	CHECK_INT(iac_probe_prom_judge(&r, VEC(SAMPLE("+Inf")), "inf", NAN, 1), -1);
	CHECK_INT(r.verdict, IAC_PROBE_FAILED);

	CHECK_INT(iac_probe_prom_judge(&r, "{\"status\":\"error\",\"errorType\":\"bad_data\","
				       "\"error\":\"1:5: parse error: unexpected <EOF>\"}", "up{", NAN, 1), -1);
	CHECK_INT(r.verdict, IAC_PROBE_ERROR);
	CHECK_CONTAINS(iac_err_last(), "could not run: query 'up{': bad_data: 1:5: parse error");
	CHECK_INT(iac_probe_prom_judge(&r, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\","
				       "\"result\":[]}}", "up[1m]", NAN, 1), -1);
	CHECK_INT(r.verdict, IAC_PROBE_ERROR);
	CHECK_CONTAINS(iac_err_last(), "instant vector or a scalar");
	CHECK_INT(iac_probe_prom_judge(&r, "<html>", "up", NAN, 1), -1);
	CHECK_INT(r.verdict, IAC_PROBE_ERROR);

	/* the JSON form has no NaN */
	iac_probe_prom_judge(&r, VEC(""), "none", NAN, 1);
	json_t *j = iac_probe_prom_json(&r);
	CHECK(json_is_null(json_object_get(j, "value")));
	CHECK_STR(json_string_value(json_object_get(j, "verdict")), "inconclusive");
	json_decref(j);
}

/* ---- a tiny keep-alive HTTP server ---- */

typedef struct {
	int fd, port;
	volatile int stop;
	volatile int health_status;   /* answer to /health */
	int fail_every;               /* every Nth other request answers 500 (0: never) */
	int prom_503s;                /* this many queries answer 503 first */
	long prom_count;
	long count, health_count;
	char last_request[512];
	pthread_t th;
} http_fake;

static void answer(int c, int status, const char *body)
{
	char resp[1024];
	int n = snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\n\r\n%s", status, strlen(body), body);
	if (write(c, resp, (size_t)n) < 0)
		perror("http_fake write");
}

static void *http_main(void *arg)
{
	http_fake *f = arg;
	struct pollfd p[65];
	char buf[65][2048];
	size_t len[65];
	int n = 1;
	p[0].fd = f->fd;
	p[0].events = POLLIN;
	while (!f->stop) {
		if (poll(p, (nfds_t)n, 20) <= 0)
			continue;
		if ((p[0].revents & POLLIN) && n < 65) {
			int c = accept(f->fd, NULL, NULL);
			if (c >= 0) {
				p[n].fd = c;
				p[n].events = POLLIN;
				p[n].revents = 0;
				len[n] = 0;
				n++;
			}
		}
		for (int i = 1; i < n; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			ssize_t r = read(p[i].fd, buf[i] + len[i], sizeof(buf[i]) - 1 - len[i]);
			if (r <= 0) {
				close(p[i].fd);
				p[i] = p[n - 1];
				memcpy(buf[i], buf[n - 1], len[n - 1]);
				len[i] = len[n - 1];
				n--;
				i--;
				continue;
			}
			len[i] += (size_t)r;
			buf[i][len[i]] = '\0';
			char *end;
			while ((end = strstr(buf[i], "\r\n\r\n"))) {
				snprintf(f->last_request, sizeof(f->last_request), "%.*s", (int)(end - buf[i]), buf[i]);
				if (strstr(f->last_request, "GET /health")) {
					f->health_count++;
					answer(p[i].fd, f->health_status, "ok");
				} else if (strstr(f->last_request, "GET /api/v1/query")) {
					if (f->prom_count++ < f->prom_503s)
						answer(p[i].fd, 503, "Service Unavailable");
					else
						answer(p[i].fd, 200, VEC(SAMPLE("0.07")));
				} else {
					f->count++;
					int fail = f->fail_every && f->count % f->fail_every == 0;
					answer(p[i].fd, fail ? 500 : 200, "hello");
				}
				size_t used = (size_t)(end + 4 - buf[i]);
				memmove(buf[i], end + 4, len[i] - used + 1);
				len[i] -= used;
			}
		}
	}
	for (int i = 1; i < n; i++)
		close(p[i].fd);
	return NULL;
}

static void http_start(http_fake *f)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	f->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(f->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(f->fd, 64) < 0 ||
	    getsockname(f->fd, (struct sockaddr *)&a, &al) < 0) {
		perror("http_fake");
		exit(1);
	}
	f->port = ntohs(a.sin_port);
	if (!f->health_status)
		f->health_status = 200;
	pthread_create(&f->th, NULL, http_main, f);
}

static void http_stop(http_fake *f)
{
	f->stop = 1;
	pthread_join(f->th, NULL);
	close(f->fd);
}

static void test_health_gate(void)
{
	http_fake f = { 0 };
	char base[64];
	const char *urls[1] = { base };
	iac_probe_health_result r;

	http_start(&f);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", f.port);
	iac_probe_health_opts o = { .urls = urls, .n_urls = 1, .interval_ms = 20, .healthy = 3, .timeout_ms = 2000 };
	CHECK_INT(iac_probe_health(&r, &o), 0);
	CHECK_INT(r.verdict, IAC_PROBE_PASSED);
	CHECK_INT(r.instances[0].streak, 3);
	CHECK_INT(r.instances[0].attempts, 3);
	CHECK_INT(f.health_count, 3);
	/* 3 polls 20 ms apart: at least 40 ms (and not stuck for long) */
	CHECK(r.elapsed_ms >= 35 && r.elapsed_ms < 3000);
	json_t *j = iac_probe_health_json(&r);
	CHECK_STR(json_string_value(json_object_get(j, "verdict")), "passed");
	json_decref(j);
	iac_probe_health_free(&r);

	f.health_status = 500;
	o.timeout_ms = 200;
	double t0 = iac_now_ms();
	CHECK_INT(iac_probe_health(&r, &o), -1);
	CHECK(iac_now_ms() - t0 < 3000);
	CHECK_INT(r.verdict, IAC_PROBE_FAILED);
	CHECK_INT(r.instances[0].last_status, 500);
	CHECK_CONTAINS(iac_err_last(), "health gate failed after");
	CHECK_CONTAINS(iac_err_last(), "/health' answered 500 (expected 200), 0 of 3 consecutive successes");
	iac_probe_health_free(&r);
	http_stop(&f);

	/* nobody listens any more */
	CHECK_INT(iac_probe_health(&r, &o), -1);
	CHECK_INT(r.instances[0].last_status, 0);
	CHECK_CONTAINS(iac_err_last(), "onnect");
	iac_probe_health_free(&r);

	o.n_urls = 0;
	CHECK_INT(iac_probe_health(&r, &o), -1);
	CHECK_INT(r.verdict, IAC_PROBE_ERROR);
}

static void test_analysis_gate(void)
{
	http_fake f = { .fail_every = 20 };
	char url[64];
	const char *urls[1] = { url };
	iac_probe_analysis_result r;

	http_start(&f);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", f.port);
	iac_probe_analysis_opts o = { .urls = urls, .n_urls = 1, .duration_ms = 500, .concurrency = 4,
				      .max_error_rate = 0.01, .max_p99_ms = 300 };
	CHECK_INT(iac_probe_analysis(&r, &o), -1);
	CHECK_INT(r.verdict, IAC_PROBE_FAILED);
	CHECK(r.requests > 100);
	CHECK_INT(r.requests, f.count);
	CHECK_INT(r.status_5xx, f.count / 20);
	CHECK(fabs(r.error_rate - 0.05) < 0.01);
	CHECK_CONTAINS(iac_err_last(), "analysis failed: error rate");
	CHECK_CONTAINS(iac_err_last(), "> 1.00%");
	CHECK(r.p50_ms > 0 && r.p50_ms <= r.p99_ms && r.p99_ms <= r.max_ms);

	json_t *j = iac_probe_analysis_json(&r);
	CHECK_STR(json_string_value(json_object_get(j, "verdict")), "failed");
	CHECK(json_integer_value(json_object_get(j, "requests")) == r.requests);
	CHECK(json_is_real(json_object_get(j, "p99_ms")));
	CHECK(json_is_real(json_object_get(j, "error_rate")));
	json_decref(j);

	/* the same traffic passes with a 10 % budget; a rate cap is honoured */
	f.count = 0;
	o.max_error_rate = 0.10;
	o.rate = 200;
	CHECK_INT(iac_probe_analysis(&r, &o), 0);
	CHECK_INT(r.verdict, IAC_PROBE_PASSED);
	CHECK(r.requests >= 20 && r.requests <= 110);

	/* a p99 limit below any possible latency fails on latency */
	o.rate = 0;
	o.max_p99_ms = 0.0001;
	CHECK_INT(iac_probe_analysis(&r, &o), -1);
	CHECK_CONTAINS(iac_err_last(), "p99");
	http_stop(&f);

	/* nothing answers: every request is an error */
	o.max_p99_ms = 300;
	o.duration_ms = 200;
	CHECK_INT(iac_probe_analysis(&r, &o), -1);
	CHECK_INT(r.errors, r.requests);
	CHECK_INT(r.transport_errors, r.requests);
}

static void test_prometheus_over_http(void)
{
	http_fake f = { 0 };
	char base[64];
	iac_probe_prom_result r;

	http_start(&f);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", f.port);
	iac_probe_prom_opts o = { .url = base, .query = "rate(x[1m]) > 0", .max = 0.05, .min = NAN };
	CHECK_INT(iac_probe_prometheus(&r, &o), -1);
	CHECK_INT(r.verdict, IAC_PROBE_FAILED);
	CHECK_CONTAINS(f.last_request, "GET /api/v1/query?query=rate%28x%5B1m%5D%29%20%3E%200 HTTP/1.1");
	o.max = 0.1;
	CHECK_INT(iac_probe_prometheus(&r, &o), 0);
	/* a Prometheus that is restarting (503) is asked again through the
	 * shared HTTP layer's retries, not failed at once */
	f.prom_count = 0;
	f.prom_503s = 2;
	CHECK_INT(iac_probe_prometheus(&r, &o), 0);
	CHECK_INT(f.prom_count, 3);
	f.prom_count = 0;
	f.prom_503s = 5;
	CHECK_INT(iac_probe_prometheus(&r, &o), -1);
	CHECK_INT(r.verdict, IAC_PROBE_ERROR);
	CHECK_CONTAINS(iac_err_last(), "answered 503");
	CHECK_CONTAINS(iac_err_last(), "after 3 attempts");
	http_stop(&f);
	CHECK_INT(iac_probe_prometheus(&r, &o), -1);
	CHECK_INT(r.verdict, IAC_PROBE_ERROR);
	CHECK_CONTAINS(iac_err_last(), "prometheus gate could not run: cannot query");
}

/* The verdict from the figures alone, in the order the gate decides. */
static void test_analysis_judge(void)
{
	iac_probe_analysis_opts o = { .max_error_rate = 0.01, .max_p99_ms = 300 };
	iac_probe_analysis_result r = { .requests = 100, .errors = 5, .status_5xx = 3, .transport_errors = 2,
					.error_rate = 0.05, .p50_ms = 10, .p99_ms = 400, .elapsed_ms = 1000 };

	snprintf(r.reason, sizeof(r.reason), "Connection refused");
	CHECK_INT(iac_probe_analysis_judge(&r, &o, 0), -1);
	CHECK_INT(r.verdict, IAC_PROBE_FAILED);
	CHECK_STR(iac_err_last(), "analysis failed: error rate 5.00% > 1.00% (5 of 100 requests: 3 5xx, "
		  "2 without answer, Connection refused)");

	/* errors within budget: latency decides */
	o.max_error_rate = 0.10;
	r.reason[0] = '\0';
	CHECK_INT(iac_probe_analysis_judge(&r, &o, 0), -1);
	CHECK_STR(iac_err_last(), "analysis failed: p99 400 ms > 300 ms (p50 10 ms, 100 requests)");

	/* limits off (< 0, <= 0): passes */
	o.max_error_rate = -1;
	o.max_p99_ms = 0;
	CHECK_INT(iac_probe_analysis_judge(&r, &o, 0), 0);
	CHECK_INT(r.verdict, IAC_PROBE_PASSED);
	CHECK_STR(r.reason, "error rate 5.00%, p99 400 ms over 100 requests");

	/* too few answers to judge, with the default minimum and a set one */
	r.requests = 9;
	CHECK_INT(iac_probe_analysis_judge(&r, &o, 0), -1);
	CHECK_INT(r.verdict, IAC_PROBE_INCONCLUSIVE);
	CHECK_STR(iac_err_last(), "analysis inconclusive: only 9 requests completed in 1000 ms (at least 10 needed)");
	o.min_requests = 5;
	CHECK_INT(iac_probe_analysis_judge(&r, &o, 0), 0);

	/* a cancel wins over everything */
	CHECK_INT(iac_probe_analysis_judge(&r, &o, 1), -1);
	CHECK_INT(r.verdict, IAC_PROBE_ERROR);
	CHECK_STR(iac_err_last(), "analysis stopped: cancelled after 1000 ms (9 requests)");
}

/* Several instances down: the first three named, then a count. */
static void test_health_gate_summary(void)
{
	const char *urls[5] = { "http://127.0.0.1:1", "http://127.0.0.1:1/", "http://127.0.0.1:1",
				"http://127.0.0.1:1", "http://127.0.0.1:1" };
	iac_probe_health_result r;
	iac_probe_health_opts o = { .urls = urls, .n_urls = 5, .interval_ms = 20, .timeout_ms = 100 };
	CHECK_INT(iac_probe_health(&r, &o), -1);
	CHECK_INT(r.verdict, IAC_PROBE_FAILED);
	CHECK_INT(r.n, 5);
	CHECK_STR(r.instances[1].url, "http://127.0.0.1:1/health");
	CHECK(r.instances[0].attempts >= 1 && r.instances[0].healthy_ms == -1);
	CHECK_CONTAINS(iac_err_last(), "health gate failed after ");
	CHECK_CONTAINS(iac_err_last(), "'http://127.0.0.1:1/health' ");
	CHECK_CONTAINS(iac_err_last(), ", 0 of 3 consecutive successes; and 2 more");
	iac_probe_health_free(&r);

	volatile int cancel = 1;
	o.cancel = &cancel;
	CHECK_INT(iac_probe_health(&r, &o), -1);
	CHECK_INT(r.verdict, IAC_PROBE_ERROR);
	CHECK_CONTAINS(iac_err_last(), "health gate cancelled after ");
	iac_probe_health_free(&r);
}

static const iac_test tests[] = {
	TEST(test_percentile),
	TEST(test_prom_url),
	TEST(test_prom_judge),
	TEST(test_health_gate),
	TEST(test_analysis_gate),
	TEST(test_prometheus_over_http),
	TEST(test_analysis_judge),
	TEST(test_health_gate_summary),
	{ 0 },
};

int main(void)
{
	return iac_test_run(tests);
}
