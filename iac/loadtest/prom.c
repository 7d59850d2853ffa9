/* lt_prom: the Prometheus exposition endpoint (see prom.h). */
#include "iac/loadtest/prom.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <llhttp.h>

#include "iac/core/err.h"
#include "iac/core/util.h"

struct iac_lt_prom {
	int fd;
	pthread_t th;
	atomic_int stop;
	pthread_mutex_t mu;      /* guards run and last */
	iac_lt_run *run;
	iac_buf last;            /* the last figures rendered, served once the run is gone */
};

/* ---- rendering ------------------------------------------------------ */

/* A label value with \, " and newlines escaped, as the format wants. */
static void label(iac_buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			iac_buf_putc(b, '\\');
		if (*v == '\n') {
			iac_buf_puts(b, "\\n");
			continue;
		}
		iac_buf_putc(b, *v);
	}
}

static void head(iac_buf *b, const char *name, const char *type, const char *help)
{
	iac_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A summary of a histogram kept in us (or values x 1000): quantiles in
 * seconds (scale 1e-6) or as plain numbers (1e-3). lbl: "" or `k="v"`. */
static void summary(iac_buf *b, const char *name, const char *lbl, const iac_lt_hist *h, double scale)
{
	static const double qs[] = { 0.5, 0.9, 0.95, 0.99 };
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
		iac_buf_printf(b, "%s{%s%squantile=\"%g\"} %.9g\n", name, lbl, *lbl ? "," : "", qs[i],
			       h->count ? (double)iac_lt_hist_percentile(h, qs[i] * 100) * scale : 0.0);
	iac_buf_printf(b, "%s_sum%s%s%s %.9g\n", name, *lbl ? "{" : "", lbl, *lbl ? "}" : "", h->sum * scale);
	iac_buf_printf(b, "%s_count%s%s%s %llu\n", name, *lbl ? "{" : "", lbl, *lbl ? "}" : "",
		       (unsigned long long)h->count);
}

/* "orders{kind:book}" -> name "orders", labels `kind="book"` */
static void split_metric(char *name, size_t nn, iac_buf *lbl, const char *full)
{
	const char *brace = strchr(full, '{');
	size_t n = brace ? (size_t)(brace - full) : strlen(full);
	snprintf(name, nn, "%.*s", (int)n, full);
	iac_buf_clear(lbl);
	if (!brace)
		return;
	char *tags = iac_xstrndup(brace + 1, strlen(brace + 1) - 1);
	for (char *save = NULL, *t = strtok_r(tags, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(t, ':');
		if (!colon)
			continue;
		*colon = 0;
		iac_buf_printf(lbl, "%s%s=\"", lbl->len ? "," : "", t);
		label(lbl, colon + 1);
		iac_buf_putc(lbl, '"');
	}
	free(tags);
}

/* One sample line (or a summary's lines) of metric m, whose family is full. */
static void render_one(iac_buf *b, const char *full, const char *l, const iac_lt_macc *m)
{
	const char *o = *l ? "{" : "", *c = *l ? "}" : "";
	switch (m->type) {
	case IAC_LT_COUNTER:
		iac_buf_printf(b, "%s%s%s%s %.17g\n", full, o, l, c, m->sum);
		break;
	case IAC_LT_GAUGE:
		iac_buf_printf(b, "%s%s%s%s %.17g\n", full, o, l, c, m->last);
		break;
	case IAC_LT_RATE:
		iac_buf_printf(b, "%s{%s%sresult=\"true\"} %llu\n", full, l, *l ? "," : "", (unsigned long long)m->nonzero);
		iac_buf_printf(b, "%s{%s%sresult=\"false\"} %llu\n", full, l, *l ? "," : "",
			       (unsigned long long)(m->n - m->nonzero));
		break;
	case IAC_LT_TREND: {
		iac_lt_hist empty;
		iac_lt_hist_init(&empty);
		summary(b, full, l, m->hist ? m->hist : &empty, 1e-3);
		break;
	}
	}
}

/* The family of m: "iac_loadtest_orders_total" (and its labels in lbl). */
static void family(char *full, size_t n, iac_buf *lbl, const iac_lt_macc *m)
{
	char name[128];
	split_metric(name, sizeof(name), lbl, m->name);
	snprintf(full, n, "iac_loadtest_%s%s", name, m->type == IAC_LT_COUNTER ? "_total" : "");
}

/* Custom metrics, sub-metrics by tag and groups: iac_loadtest_NAME with
 * the tags as labels; a family's lines together, as the format wants. */
static void render_macc(iac_buf *b, const iac_lt_stats *s)
{
	static const char *types[] = { "counter", "gauge", "counter", "summary" };
	iac_buf lbl = IAC_BUF_INIT;
	char *done = iac_xcalloc(s->nmacc + 1, 1);
	for (size_t i = 0; i < s->nmacc; i++) {
		if (done[i])
			continue;
		char full[192], other[192];
		family(full, sizeof(full), &lbl, &s->macc[i]);
		head(b, full, types[s->macc[i].type],
		     "k6 metric: a custom one, a sub-metric by tag or a group's duration (trends in their own unit, ms for times)");
		for (size_t j = i; j < s->nmacc; j++) {
			family(other, sizeof(other), &lbl, &s->macc[j]);
			if (done[j] || strcmp(other, full) || s->macc[j].type != s->macc[i].type)
				continue;
			done[j] = 1;
			render_one(b, full, iac_buf_cstr(&lbl), &s->macc[j]);
		}
	}
	free(done);
	iac_buf_free(&lbl);
}

void iac_lt_prom_render(iac_buf *b, const iac_lt_config *cfg, const iac_lt_stats *s, int vus, double elapsed_s)
{
	head(b, "iac_loadtest_http_reqs_total", "counter", "requests completed (a response or a transport error)");
	iac_buf_printf(b, "iac_loadtest_http_reqs_total %llu\n", (unsigned long long)s->requests);
	head(b, "iac_loadtest_http_req_failed_total", "counter", "failed requests (k6's http_req_failed)");
	iac_buf_printf(b, "iac_loadtest_http_req_failed_total %llu\n", (unsigned long long)s->failed);
	head(b, "iac_loadtest_http_responses_total", "counter", "responses by status");
	for (int st = 0; st < 600; st++)
		if (s->status[st])
			iac_buf_printf(b, "iac_loadtest_http_responses_total{status=\"%d\"} %llu\n", st,
				       (unsigned long long)s->status[st]);
	head(b, "iac_loadtest_http_transport_errors_total", "counter", "requests without a response, by kind");
	for (int k = 0; k < IAC_LT_NERR; k++)
		iac_buf_printf(b, "iac_loadtest_http_transport_errors_total{kind=\"%s\"} %llu\n", iac_lt_errkind_name(k),
			       (unsigned long long)s->transport[k]);
	head(b, "iac_loadtest_http_req_duration_seconds", "summary", "latency of responses, over the run so far");
	summary(b, "iac_loadtest_http_req_duration_seconds", "", &s->hist, 1e-6);
	iac_buf lbl = IAC_BUF_INIT;
	static const char *const ep_series[] = { "iac_loadtest_endpoint_reqs_total", "iac_loadtest_endpoint_failed_total",
						 "iac_loadtest_endpoint_duration_seconds" };
	static const char *const ep_help[] = { "requests by endpoint name", "failed requests by endpoint name",
					       "latency of responses by endpoint name" };
	for (int k = 0; k < 3; k++) {
		head(b, ep_series[k], k < 2 ? "counter" : "summary", ep_help[k]);
		for (size_t i = 0; i < s->neps; i++) {
			const iac_lt_endpoint *e = s->eps[i];
			iac_buf_clear(&lbl);
			iac_buf_puts(&lbl, "name=\"");
			label(&lbl, e->name);
			iac_buf_putc(&lbl, '"');
			if (k < 2)
				iac_buf_printf(b, "%s{%s} %llu\n", ep_series[k], iac_buf_cstr(&lbl),
					       (unsigned long long)(k ? e->failed : e->requests));
			else
				summary(b, ep_series[k], iac_buf_cstr(&lbl), &e->hist, 1e-6);
		}
	}
	head(b, "iac_loadtest_checks_total", "counter", "u:check() results");
	for (size_t i = 0; i < s->nchecks; i++) {
		iac_buf_clear(&lbl);
		label(&lbl, s->checks[i].name);
		iac_buf_printf(b, "iac_loadtest_checks_total{check=\"%s\",result=\"pass\"} %llu\n", iac_buf_cstr(&lbl),
			       (unsigned long long)s->checks[i].pass);
		iac_buf_printf(b, "iac_loadtest_checks_total{check=\"%s\",result=\"fail\"} %llu\n", iac_buf_cstr(&lbl),
			       (unsigned long long)s->checks[i].fail);
	}
	iac_buf_free(&lbl);
	head(b, "iac_loadtest_iterations_total", "counter", "iterations completed");
	iac_buf_printf(b, "iac_loadtest_iterations_total %llu\n", (unsigned long long)s->iterations);
	head(b, "iac_loadtest_dropped_iterations_total", "counter", "open model: iterations with no free VU");
	iac_buf_printf(b, "iac_loadtest_dropped_iterations_total %llu\n", (unsigned long long)s->dropped);
	head(b, "iac_loadtest_vus", "gauge", "VUs running now");
	iac_buf_printf(b, "iac_loadtest_vus %d\n", vus);
	head(b, "iac_loadtest_elapsed_seconds", "gauge", "time since the load started");
	iac_buf_printf(b, "iac_loadtest_elapsed_seconds %.3f\n", elapsed_s);
	(void)cfg;
	render_macc(b, s);
}

/* ---- serving -------------------------------------------------------- */

typedef struct {
	char url[256];
	size_t ulen;
	int done;
} req_state;

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	req_state *r = p->data;
	size_t n = len < sizeof(r->url) - 1 - r->ulen ? len : sizeof(r->url) - 1 - r->ulen;
	memcpy(r->url + r->ulen, at, n);
	r->ulen += n;
	r->url[r->ulen] = 0;
	return 0;
}

static int on_headers_done(llhttp_t *p)
{
	((req_state *)p->data)->done = 1;
	return HPE_PAUSED;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void answer(int fd, int status, const char *reason, const char *body, size_t blen)
{
	char h[256];
	int n = snprintf(h, sizeof(h),
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n", status, reason, blen);
	write_all(fd, h, (size_t)n);
	write_all(fd, body, blen);
}

/* One connection: one request (parsed by llhttp), one answer, close. */
static void serve(iac_lt_prom *p, int fd)
{
	llhttp_settings_t st;
	llhttp_settings_init(&st);
	st.on_url = on_url;
	st.on_headers_complete = on_headers_done;
	llhttp_t parser;
	llhttp_init(&parser, HTTP_REQUEST, &st);
	req_state r = { .ulen = 0 };
	parser.data = &r;
	struct timeval tv = { .tv_sec = 2 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char buf[4096];
	while (!r.done) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return;
		enum llhttp_errno e = llhttp_execute(&parser, buf, (size_t)n);
		if (e != HPE_OK && e != HPE_PAUSED) {
			answer(fd, 400, "Bad Request", "bad request\n", 12);
			return;
		}
	}
	if (strcmp(r.url, "/metrics") && strncmp(r.url, "/metrics?", 9)) {
		answer(fd, 404, "Not Found", "only /metrics here\n", 19);
		return;
	}
	iac_buf b = IAC_BUF_INIT;
	pthread_mutex_lock(&p->mu);
	if (p->run) {
		iac_lt_run *run = p->run;
		int vus = iac_lt_engine_active_vus(run);
		double el = iac_lt_engine_elapsed(run);
		pthread_mutex_lock(&run->mu);
		iac_lt_prom_render(&b, run->cfg, &run->total, vus, el);
		pthread_mutex_unlock(&run->mu);
		iac_buf_clear(&p->last);
		iac_buf_put(&p->last, b.ptr, b.len);
	} else {
		iac_buf_put(&b, iac_buf_cstr(&p->last), p->last.len);
	}
	pthread_mutex_unlock(&p->mu);
	answer(fd, 200, "OK", iac_buf_cstr(&b), b.len);
	iac_buf_free(&b);
}

static void *prom_main(void *arg)
{
	iac_lt_prom *p = arg;
	while (!atomic_load(&p->stop)) {
		struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		int c = accept4(p->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		serve(p, c);
		close(c);
	}
	return NULL;
}

int iac_lt_prom_start(iac_lt_prom **out, const char *addr)
{
	*out = NULL;
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || !colon[1])
		return iac_err_set("invalid -metrics-listen '%s': expected HOST:PORT (127.0.0.1:9464)", addr);
	char *host = iac_xstrndup(addr, (size_t)(colon - addr));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(host, colon + 1, &hints, &ai);
	free(host);
	if (rc)
		return iac_err_set("cannot listen on '%s': %s", addr, gai_strerror(rc));
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return iac_err_set("cannot listen on '%s': %s", addr, strerror(e));
	}
	freeaddrinfo(ai);
	iac_lt_prom *p = iac_xcalloc(1, sizeof(*p));
	p->fd = fd;
	pthread_mutex_init(&p->mu, NULL);
	if (pthread_create(&p->th, NULL, prom_main, p)) {
		close(fd);
		pthread_mutex_destroy(&p->mu);
		free(p);
		return iac_err_set("cannot start the metrics server thread");
	}
	*out = p;
	return 0;
}

void iac_lt_prom_attach(iac_lt_prom *p, iac_lt_run *run)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->run = run;
	pthread_mutex_unlock(&p->mu);
}

void iac_lt_prom_detach(iac_lt_prom *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	if (p->run) {   /* the final figures, for scrapes while -metrics-linger lasts */
		iac_lt_run *run = p->run;
		iac_buf_clear(&p->last);
		pthread_mutex_lock(&run->mu);
		iac_lt_prom_render(&p->last, run->cfg, &run->total, 0, iac_lt_engine_elapsed(run));
		pthread_mutex_unlock(&run->mu);
	}
	p->run = NULL;
	pthread_mutex_unlock(&p->mu);
}

void iac_lt_prom_stop(iac_lt_prom *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, 1);
	pthread_join(p->th, NULL);
	close(p->fd);
	pthread_mutex_destroy(&p->mu);
	iac_buf_free(&p->last);
	free(p);
}
