/* The shared HTTP client (iac/http): the circuit breaker's three states
 * against a real socket server, and the single-exchange layer under it
 * (xfer: status, ETag, Retry-After, unsent vs sent failures). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "iac/core/err.h"
#include "iac/http/http.h"
#include "iac/http/xfer.h"

/* ---- a server: one thread per connection, one answer per connection ---- */

typedef struct {
	int fd, port;
	atomic_int stop;
	atomic_int status;        /* what every request gets */
	atomic_int delay_ms;      /* before answering */
	atomic_long count;        /* requests that reached it */
	pthread_t th;
} server;

typedef struct {
	server *s;
	int c;
} conn;

static void *conn_main(void *arg)
{
	conn *k = arg;
	char buf[4096];
	size_t len = 0;
	ssize_t r;
	while (len < sizeof(buf) - 1 && (r = read(k->c, buf + len, sizeof(buf) - 1 - len)) > 0) {
		len += (size_t)r;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n"))
			break;
	}
	atomic_fetch_add(&k->s->count, 1);
	int d = atomic_load(&k->s->delay_ms);
	if (d > 0) {
		struct timespec ts = { d / 1000, (long)(d % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
	int st = atomic_load(&k->s->status);
	char resp[512];
	const char *body = st < 300 ? "{\"ok\":true}" : "{\"error\":\"backend down\"}";
	int n = snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nETag: \"v7\"\r\n"
			 "Retry-After: 0\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s", st, strlen(body), body);
	if (write(k->c, resp, (size_t)n) < 0)
		perror("server write");
	close(k->c);
	free(k);
	return NULL;
}

static void *server_main(void *arg)
{
	server *s = arg;
	while (!atomic_load(&s->stop)) {
		int c = accept(s->fd, NULL, NULL);
		if (c < 0)
			continue;
		if (atomic_load(&s->stop)) {
			close(c);
			break;
		}
		conn *k = malloc(sizeof(*k));
		k->s = s;
		k->c = c;
		pthread_t t;
		pthread_create(&t, NULL, conn_main, k);
		pthread_detach(t);
	}
	return NULL;
}

static void server_start(server *s, int status)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	memset(s, 0, sizeof(*s));
	atomic_store(&s->status, status);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s->fd, 64) < 0 ||
	    getsockname(s->fd, (struct sockaddr *)&a, &al) < 0) {
		perror("server");
		exit(1);
	}
	s->port = ntohs(a.sin_port);
	pthread_create(&s->th, NULL, server_main, s);
}

static void server_stop(server *s)
{
	atomic_store(&s->stop, 1);
	/* wake accept() */
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (connect(c, (struct sockaddr *)&a, sizeof(a)) == 0)
		close(c);
	else
		close(c);
	pthread_join(s->th, NULL);
	close(s->fd);
	usleep(400 * 1000);   /* let answering threads finish */
}

static void nap_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- the breaker ---- */

typedef struct {
	iac_http *h;
	int rc;
	char msg[512];
} caller;

static void *call_main(void *arg)
{
	caller *c = arg;
	iac_http_resp r;
	c->rc = iac_http_request(&r, c->h, "GET", "/thing", NULL, NULL);
	snprintf(c->msg, sizeof(c->msg), "%s", c->rc < 0 ? iac_err_last() : "");
	iac_http_resp_free(&r);
	return NULL;
}

/* closed -> open after N failures (fail fast, nothing sent) -> after the
 * cool-down half-open: one trial goes, the others still fail fast -> the
 * trial's failure re-opens it; a later trial's success closes it. */
static void test_breaker_half_open(void)
{
	server s;
	char base[64];
	iac_http *h = NULL;
	iac_http_resp r;
	server_start(&s, 503);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", s.port);
	iac_http_opts o = { .name = "provider 'http' \"t\"", .base_url = base, .retries = 0,
			    .breaker_failures = 2, .breaker_cooldown_ms = 300, .timeout_ms = 5000 };
	CHECK_INT(iac_http_new(&h, &o), 0);

	CHECK_INT(iac_http_request(&r, h, "GET", "/thing", NULL, NULL), IAC_ERR);
	iac_http_resp_free(&r);
	CHECK_INT(iac_http_request(&r, h, "GET", "/thing", NULL, NULL), IAC_ERR);
	iac_http_resp_free(&r);
	CHECK_INT(atomic_load(&s.count), 2);
	CHECK_INT(iac_http_request(&r, h, "GET", "/thing", NULL, NULL), IAC_ERR);
	CHECK_CONTAINS(iac_err_last(), "is open after 2 consecutive failures");
	iac_http_resp_free(&r);
	CHECK_INT(atomic_load(&s.count), 2);

	/* half-open: 4 callers at once, the trial is slow; only it is sent */
	nap_ms(350);
	atomic_store(&s.delay_ms, 300);
	caller c[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		c[i] = (caller){ .h = h };
		pthread_create(&t[i], NULL, call_main, &c[i]);
		if (i == 0)
			nap_ms(100);   /* the first one is the trial */
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_INT(atomic_load(&s.count), 3);
	int half = 0;
	for (int i = 1; i < 4; i++)
		half += strstr(c[i].msg, "is half-open after 2 consecutive failures and one trial request is under way") != NULL;
	CHECK_INT(half, 3);
	CHECK_CONTAINS(c[0].msg, "answered 503: backend down");

	/* the trial failed: open again at once */
	CHECK_INT(iac_http_request(&r, h, "GET", "/thing", NULL, NULL), IAC_ERR);
	CHECK_CONTAINS(iac_err_last(), "is open after 3 consecutive failures");
	iac_http_resp_free(&r);
	CHECK_INT(atomic_load(&s.count), 3);

	/* the API is back: the next trial closes the breaker */
	atomic_store(&s.delay_ms, 0);
	atomic_store(&s.status, 200);
	nap_ms(350);
	CHECK_INT(iac_http_request(&r, h, "GET", "/thing", NULL, NULL), 0);
	CHECK_INT(r.status, 200);
	CHECK_STR(r.etag, "\"v7\"");
	iac_http_resp_free(&r);
	CHECK_INT(iac_http_request(&r, h, "GET", "/thing", NULL, NULL), 0);
	iac_http_resp_free(&r);
	CHECK_INT(atomic_load(&s.count), 5);
	iac_http_free(h);
	server_stop(&s);
}

/* ---- xfer ---- */

static void test_xfer_exchange(void)
{
	server s;
	char url[96];
	iac_xfer *x = NULL;
	iac_xfer_res r;
	server_start(&s, 429);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v3/kv/range", s.port);
	CHECK_INT(iac_xfer_new(&x), 0);
	const char *hdr[] = { "Content-Type: application/json", NULL };
	iac_xfer_req q = { .method = "POST", .url = url, .body = "{}", .body_len = 2, .headers = hdr,
			   .timeout_ms = 2000 };
	CHECK_INT(iac_xfer_run(&r, x, &q), IAC_XFER_OK);
	CHECK_INT(r.status, 429);
	CHECK_STR(r.body, "{\"error\":\"backend down\"}");
	CHECK_STR(r.etag, "\"v7\"");
	CHECK(r.retry_after_ms == 0);
	CHECK_INT(r.sent, 1);
	iac_xfer_res_free(&r);
	server_stop(&s);

	/* nobody listens: unreachable, provably never sent */
	CHECK_INT(iac_xfer_run(&r, x, &q), IAC_XFER_UNREACHABLE);
	CHECK_INT(r.sent, 0);
	char *w = iac_xfer_words(&r, 2000);
	CHECK_STR(w, "connection refused");
	free(w);
	iac_xfer_res_free(&r);

	/* a slow answer: a timeout after the request left is "sent" */
	server_start(&s, 200);
	atomic_store(&s.delay_ms, 600);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow", s.port);
	q.timeout_ms = 200;
	CHECK_INT(iac_xfer_run(&r, x, &q), IAC_XFER_TIMEOUT);
	CHECK_INT(r.sent, 1);
	w = iac_xfer_words(&r, 200);
	CHECK_STR(w, "timed out after 200 ms");
	free(w);
	iac_xfer_res_free(&r);
	server_stop(&s);
	iac_xfer_free(x);

	char *e = iac_xfer_escape("rate(x[1m]) > 0");
	CHECK_STR(e, "rate%28x%5B1m%5D%29%20%3E%200");
	free(e);
}

static const iac_test tests[] = {
	TEST(test_breaker_half_open),
	TEST(test_xfer_exchange),
	{ 0 },
};

int main(void)
{
	return iac_test_run(tests);
}
