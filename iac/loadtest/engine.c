/* lt_engine: worker threads, sockets, HTTP/1.1 and executors (see engine.h).
 *
 * Per request the plain path costs one send() and usually one read(): the
 * socket stays registered for EPOLLIN only, EPOLLOUT is asked for just while
 * connecting or when the kernel refused part of a request. About 90 % of a
 * load generator's CPU per request is kernel time, so saving epoll_ctl()
 * calls matters more than anything in user space.
 */
#include "iac/loadtest/engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stddef.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "iac/core/err.h"
#include "iac/core/log.h"
#include "iac/core/util.h"

#define SCAN_US 100000       /* timeout scan and schedule check period */
#define MAX_EVENTS 512

uint64_t lt_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t lt_rand(iac_lt_worker *w)
{
	/* xorshift64*: fast, per thread, good enough for picking paths */
	uint64_t x = w->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	w->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static double rand01(iac_lt_worker *w)
{
	return (double)(lt_rand(w) >> 11) / 9007199254740992.0;
}

int iac_lt_url_split(const char *url, char **host, int *port, char **path)
{
	if (!iac_str_starts(url, "http://"))
		return iac_err_set("URL '%s' must start with http://", url);
	const char *h = url + 7;
	const char *slash = strchr(h, '/');
	size_t hl = slash ? (size_t)(slash - h) : strlen(h);
	char *hp = iac_xstrndup(h, hl);
	char *colon = strrchr(hp, ':');
	int p = 80;
	if (colon && !strchr(colon, ']')) {
		char *end;
		long v = strtol(colon + 1, &end, 10);
		if (*end || v <= 0 || v > 65535) {
			free(hp);
			return iac_err_set("URL '%s' has an invalid port", url);
		}
		p = (int)v;
		*colon = 0;
	}
	if (!*hp) {
		free(hp);
		return iac_err_set("URL '%s' has no host", url);
	}
	*host = hp;
	*port = p;
	*path = iac_xstrdup(slash ? slash : "/");
	return 0;
}

/* ---- statistics ---------------------------------------------------- */

static long sec_of(iac_lt_worker *w, uint64_t t)
{
	uint64_t s = w->run->start_us;
	return t > s ? (long)((t - s) / 1000000u) : 0;
}

static iac_lt_second *slot_locked(iac_lt_run *run, long s)
{
	if ((size_t)s >= run->nsecs) {
		size_t n = (size_t)s + 1;
		run->secs = iac_xrealloc(run->secs, n * sizeof(*run->secs));
		for (size_t i = run->nsecs; i < n; i++) {
			iac_lt_second *x = &run->secs[i];
			memset(x, 0, sizeof(*x));
			x->hap_qcur = x->hap_scur = x->hap_rtime_ms = x->hap_rate = NAN;
			x->cpu_pct = x->wait_pct = NAN;
			x->vus = -1;
		}
		run->nsecs = n;
	}
	return &run->secs[s];
}

static void flush(iac_lt_worker *w, long now_sec)
{
	iac_lt_run *run = w->run;
	iac_lt_stats *d = &w->d;
	int any = d->requests || d->iterations || d->dropped || d->script_errors || d->nchecks;
	int active = atomic_load(&w->active);
	if (any || active) {
		pthread_mutex_lock(&run->mu);
		iac_lt_stats_merge(&run->total, d);
		iac_lt_second *x = slot_locked(run, w->dsec);
		/* VUs at the end of the second, as each worker sees them */
		x->vus = (x->vus < 0 ? 0 : x->vus) + active;
		x->requests += d->requests;
		x->failed += d->failed;
		x->dropped += d->dropped;
		x->iterations += d->iterations;
		if (!x->final && d->hist.count) {
			if (!x->hist) {
				x->hist = iac_xmalloc(sizeof(*x->hist));
				iac_lt_hist_init(x->hist);
			}
			iac_lt_hist_merge(x->hist, &d->hist);
		}
		pthread_mutex_unlock(&run->mu);
		iac_lt_stats_clear(d);
	}
	w->dsec = now_sec;
	atomic_store(&w->done_sec, now_sec);
}

static inline void stats_at(iac_lt_worker *w)
{
	long s = sec_of(w, w->now);
	if (s != w->dsec)
		flush(w, s);
}

static void record_response(lt_vu *vu, int status, uint64_t us)
{
	iac_lt_worker *w = vu->w;
	stats_at(w);
	iac_lt_stats *d = &w->d;
	iac_lt_endpoint *e = d->eps[vu->ep];
	d->requests++;
	e->requests++;
	iac_lt_hist_record(&d->hist, us);
	iac_lt_hist_record(&e->hist, us);
	if (status >= 0 && status < 600)
		d->status[status]++;
	if (status >= 400) {
		d->failed++;
		e->failed++;
	}
}

static void record_failure(lt_vu *vu, enum iac_lt_errkind k)
{
	iac_lt_worker *w = vu->w;
	stats_at(w);
	iac_lt_stats *d = &w->d;
	d->requests++;
	d->failed++;
	d->transport[k]++;
	d->eps[vu->ep]->requests++;
	d->eps[vu->ep]->failed++;
}

void lt_record_check(iac_lt_worker *w, const char *name, int ok)
{
	stats_at(w);
	size_t i = iac_lt_stats_check(&w->d, name);   /* may move w->d.checks */
	iac_lt_check *c = &w->d.checks[i];
	if (ok)
		c->pass++;
	else
		c->fail++;
}

/* ---- addresses and endpoints -------------------------------------- */

static int addr_add(iac_lt_worker *w, const char *host, int port)
{
	char *hp = port == 80 ? iac_xstrdup(host) : iac_xasprintf("%s:%d", host, port);
	for (size_t i = 0; i < w->naddrs; i++)
		if (!strcmp(w->addrs[i].hostport, hp)) {
			free(hp);
			return (int)i;
		}
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	int rc = getaddrinfo(host, ps, &hints, &res);
	if (rc || !res) {
		iac_err_set("cannot resolve '%s': %s", host, gai_strerror(rc));
		free(hp);
		return -1;
	}
	w->addrs = iac_xrealloc(w->addrs, (w->naddrs + 1) * sizeof(*w->addrs));
	lt_addr *a = &w->addrs[w->naddrs];
	a->hostport = hp;
	memcpy(&a->sa, res->ai_addr, res->ai_addrlen);
	a->salen = res->ai_addrlen;
	freeaddrinfo(res);
	return (int)w->naddrs++;
}

int lt_addr_for(iac_lt_worker *w, const char *url, const char **path)
{
	if (url[0] == '/') {
		*path = url;
		return 0;    /* the target is always address 0 */
	}
	if (!iac_str_starts(url, "http://"))
		return iac_err_set("URL '%s' must be a path starting with '/' or an http:// URL", url);
	const char *h = url + 7;
	const char *slash = strchr(h, '/');
	*path = slash ? slash : "/";
	char *host, *p;
	int port;
	if (iac_lt_url_split(url, &host, &port, &p) < 0)
		return IAC_ERR;
	int a = addr_add(w, host, port);
	free(host);
	free(p);
	return a;
}

size_t lt_endpoint_for(iac_lt_worker *w, const char *method, const char *path, const char *name)
{
	if (name)
		return iac_lt_stats_endpoint(&w->d, name);
	/* without a name, requests group by method and path without the query */
	char key[512];
	size_t pl = strcspn(path, "?#");
	snprintf(key, sizeof(key), "%s %.*s", method, (int)(pl > 400 ? 400 : pl), path);
	return iac_lt_stats_endpoint(&w->d, key);
}

/* ---- timers and the ready list ------------------------------------ */

static void heap_push(iac_lt_worker *w, uint64_t at, lt_vu *vu)
{
	if (w->nheap == w->capheap) {
		w->capheap = w->capheap ? w->capheap * 2 : 64;
		w->heap = iac_xrealloc(w->heap, w->capheap * sizeof(*w->heap));
	}
	size_t i = w->nheap++;
	lt_timer t = { at, vu, ++vu->timer_gen };
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (w->heap[p].at <= at)
			break;
		w->heap[i] = w->heap[p];
		i = p;
	}
	w->heap[i] = t;
}

static lt_timer heap_pop(iac_lt_worker *w)
{
	lt_timer top = w->heap[0];
	lt_timer last = w->heap[--w->nheap];
	size_t i = 0, n = w->nheap;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && w->heap[c + 1].at < w->heap[c].at)
			c++;
		if (last.at <= w->heap[c].at)
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	if (n)
		w->heap[i] = last;
	return top;
}

static void make_ready(lt_vu *vu)
{
	iac_lt_worker *w = vu->w;
	vu->state = VU_READY;
	if (vu->queued)
		return;
	vu->queued = 1;
	if (w->nready == w->capready) {
		w->capready = w->capready ? w->capready * 2 : 64;
		w->ready = iac_xrealloc(w->ready, w->capready * sizeof(*w->ready));
	}
	w->ready[w->nready++] = vu;
}

void lt_vu_sleep(lt_vu *vu, double ms)
{
	vu->did_io = 1;
	vu->state = VU_TIMER;
	heap_push(vu->w, vu->w->now + (uint64_t)(ms * 1e3), vu);
}

/* ---- connections --------------------------------------------------- */

static void conn_close(lt_vu *vu)
{
	if (vu->fd >= 0) {
		close(vu->fd);   /* also removes it from epoll */
		vu->fd = -1;
	}
	vu->reused = 0;
}

static void on_request_done(lt_vu *vu, int status, enum iac_lt_errkind err, int failed);

static void make_ready(lt_vu *vu);

static void vu_fail(lt_vu *vu, enum iac_lt_errkind k)
{
	conn_close(vu);
	record_failure(vu, k);
	if (vu->in_send) {
		/* the coroutine that asked is still running (it has not yielded
		 * yet): hand it the failure from the loop instead */
		vu->deferred = 1 + (int)k;
		make_ready(vu);
		return;
	}
	on_request_done(vu, 0, k, 1);
}

static int epoll_set(lt_vu *vu, int op, uint32_t events)
{
	struct epoll_event ev;
	ev.events = events;
	ev.data.ptr = vu;
	return epoll_ctl(vu->w->ep, op, vu->fd, &ev);
}

static void vu_connect(lt_vu *vu)
{
	iac_lt_worker *w = vu->w;
	lt_addr *a = &w->addrs[vu->want_addr];
	int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		vu_fail(vu, IAC_LT_E_OTHER);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	vu->fd = fd;
	vu->addr = vu->want_addr;
	vu->reused = 0;
	if (connect(fd, (struct sockaddr *)&a->sa, a->salen) < 0 && errno != EINPROGRESS) {
		vu_fail(vu, IAC_LT_E_CONNECT);
		return;
	}
	vu->state = VU_CONNECTING;
	if (epoll_set(vu, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT) < 0)
		vu_fail(vu, IAC_LT_E_OTHER);
}

static void try_write(lt_vu *vu)
{
	while (vu->woff < vu->reqlen) {
		ssize_t n = send(vu->fd, vu->req + vu->woff, vu->reqlen - vu->woff, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				if (vu->state != VU_SENDING) {
					vu->state = VU_SENDING;
					if (epoll_set(vu, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT) < 0)
						vu_fail(vu, IAC_LT_E_OTHER);
				}
				return;
			}
			/* a keep-alive connection the server dropped while idle */
			if (vu->reused && !vu->retried && !vu->woff) {
				vu->retried = 1;
				conn_close(vu);
				vu_connect(vu);
				return;
			}
			vu_fail(vu, IAC_LT_E_CLOSED);
			return;
		}
		vu->woff += (size_t)n;
		vu->w->d.bytes_out += (uint64_t)n;
	}
	if (vu->state == VU_SENDING || vu->state == VU_CONNECTING)
		if (epoll_set(vu, EPOLL_CTL_MOD, EPOLLIN) < 0) {
			vu_fail(vu, IAC_LT_E_OTHER);
			return;
		}
	vu->state = VU_WAITING;
}

/* Send vu->req to vu->want_addr; latency counts from vu->t_start. */
static void vu_send(lt_vu *vu)
{
	vu->woff = 0;
	vu->retried = 0;
	vu->got_bytes = 0;
	vu->msg_done = 0;
	vu->t_sent = vu->w->now;
	llhttp_reset(&vu->parser);
	if (vu->fd >= 0 && vu->addr != vu->want_addr)
		conn_close(vu);
	if (vu->fd < 0) {
		vu_connect(vu);
		return;
	}
	vu->state = VU_WAITING;   /* try_write moves it to SENDING if needed */
	try_write(vu);
}

static uint64_t start_time(lt_vu *vu)
{
	/* open model: the first request of an iteration counts from when the
	 * iteration should have started, so a stalled server shows (wrk2) */
	uint64_t t = vu->w->now;
	if (vu->intended && vu->intended < t)
		t = vu->intended;
	vu->intended = 0;
	return t;
}

void lt_vu_request(lt_vu *vu, int addr, size_t ep)
{
	lt_vu_request_raw(vu, vu->out.ptr, vu->out.len, addr, ep);
}

void lt_vu_request_raw(lt_vu *vu, const char *bytes, size_t len, int addr, size_t ep)
{
	vu->did_io = 1;
	vu->want_addr = addr;
	vu->ep = ep;
	vu->req = bytes;
	vu->reqlen = len;
	vu->t_start = start_time(vu);
	iac_buf_clear(&vu->hbuf);
	iac_buf_clear(&vu->bbuf);
	vu->in_send = 1;
	vu_send(vu);
	vu->in_send = 0;
}

/* ---- HTTP parsing -------------------------------------------------- */

static int on_complete(llhttp_t *p)
{
	((lt_vu *)p->data)->msg_done = 1;
	return HPE_PAUSED;   /* one response per request: stop here */
}

static int on_hfield(llhttp_t *p, const char *at, size_t len)
{
	lt_vu *vu = p->data;
	iac_buf_put(&vu->hbuf, at, len);
	return 0;
}

static int on_hfield_done(llhttp_t *p)
{
	iac_buf_put(&((lt_vu *)p->data)->hbuf, ": ", 2);
	return 0;
}

static int on_hvalue(llhttp_t *p, const char *at, size_t len)
{
	iac_buf_put(&((lt_vu *)p->data)->hbuf, at, len);
	return 0;
}

static int on_hvalue_done(llhttp_t *p)
{
	iac_buf_put(&((lt_vu *)p->data)->hbuf, "\n", 1);
	return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	lt_vu *vu = p->data;
	if (vu->bbuf.len + len <= (64u << 20))   /* keep at most 64 MiB of a body */
		iac_buf_put(&vu->bbuf, at, len);
	return 0;
}

static llhttp_settings_t plain_settings, capture_settings;
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

static void settings_init(void)
{
	llhttp_settings_init(&plain_settings);
	plain_settings.on_message_complete = on_complete;
	llhttp_settings_init(&capture_settings);
	capture_settings.on_message_complete = on_complete;
	capture_settings.on_header_field = on_hfield;
	capture_settings.on_header_field_complete = on_hfield_done;
	capture_settings.on_header_value = on_hvalue;
	capture_settings.on_header_value_complete = on_hvalue_done;
	capture_settings.on_body = on_body;
}

static void response_complete(lt_vu *vu)
{
	iac_lt_worker *w = vu->w;
	int status = llhttp_get_status_code(&vu->parser);
	int keep = llhttp_should_keep_alive(&vu->parser);
	record_response(vu, status, w->now - vu->t_start);
	if (!keep)
		conn_close(vu);
	else
		vu->reused = 1;
	on_request_done(vu, status, IAC_LT_NERR, status >= 400);
}

static void on_readable(lt_vu *vu)
{
	iac_lt_worker *w = vu->w;
	for (;;) {
		ssize_t n = read(vu->fd, w->rbuf, sizeof(w->rbuf));
		if (n > 0) {
			w->d.bytes_in += (uint64_t)n;
			if (vu->state != VU_WAITING && vu->state != VU_SENDING) {
				conn_close(vu);   /* bytes nobody asked for: drop the connection */
				return;
			}
			vu->got_bytes = 1;
			llhttp_errno_t e = llhttp_execute(&vu->parser, w->rbuf, (size_t)n);
			if (vu->msg_done) {
				response_complete(vu);
				return;
			}
			if (e != HPE_OK) {
				vu_fail(vu, IAC_LT_E_PARSE);
				return;
			}
			if ((size_t)n < sizeof(w->rbuf))
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		/* end of stream or an error */
		if (vu->state != VU_WAITING && vu->state != VU_SENDING) {
			conn_close(vu);   /* the server closed an idle keep-alive connection */
			return;
		}
		if (n == 0 && vu->got_bytes && llhttp_message_needs_eof(&vu->parser)) {
			llhttp_finish(&vu->parser);
			if (vu->msg_done) {
				response_complete(vu);
				return;
			}
		}
		if (!vu->got_bytes && vu->reused && !vu->retried) {
			vu->retried = 1;
			conn_close(vu);
			vu->woff = 0;
			vu_connect(vu);
			return;
		}
		vu_fail(vu, IAC_LT_E_CLOSED);
		return;
	}
}

static void on_event(lt_vu *vu, uint32_t ev)
{
	if (vu->state == VU_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);
		if (getsockopt(vu->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err) {
			vu_fail(vu, IAC_LT_E_CONNECT);
			return;
		}
		if (!(ev & (EPOLLOUT | EPOLLIN)) && (ev & (EPOLLERR | EPOLLHUP))) {
			vu_fail(vu, IAC_LT_E_CONNECT);
			return;
		}
		try_write(vu);
		return;
	}
	if ((ev & EPOLLOUT) && vu->state == VU_SENDING)
		try_write(vu);
	if (vu->fd >= 0 && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		on_readable(vu);
}

/* ---- iterations ---------------------------------------------------- */

static int pick_scenario(iac_lt_worker *w)
{
	const iac_lt_config *cfg = w->run->cfg;
	if (cfg->nscenarios == 1)
		return 0;
	/* smooth weighted round-robin: exact proportions, no randomness */
	w->scen_total++;
	double wsum = 0;
	for (size_t i = 0; i < cfg->nscenarios; i++)
		wsum += w->scen_weight[i];
	int best = 0;
	double bestd = -1e300;
	for (size_t i = 0; i < cfg->nscenarios; i++) {
		double deficit = w->scen_weight[i] / wsum * (double)w->scen_total - (double)w->scen_count[i];
		if (deficit > bestd) {
			bestd = deficit;
			best = (int)i;
		}
	}
	w->scen_count[best]++;
	return best;
}

static void vu_stop(lt_vu *vu)
{
	iac_lt_worker *w = vu->w;
	conn_close(vu);
	vu->timer_gen++;
	vu->busy = 0;
	if (vu->state != VU_OFF && !vu->stopping)
		atomic_fetch_sub(&w->active, 1);
	vu->stopping = 0;
	vu->state = VU_OFF;
}

static void resume(lt_vu *vu, int nargs);

static void start_iteration(lt_vu *vu)
{
	iac_lt_worker *w = vu->w;
	vu->busy = 1;
	vu->did_io = 0;
	vu->iteration++;
	if (w->flow_ref[vu->scen] == LUA_NOREF) {
		vu->want_addr = w->pre_addr[vu->scen];
		vu->ep = w->pre_ep[vu->scen];
		vu->req = w->pre[vu->scen];
		vu->reqlen = w->prelen[vu->scen];
		vu->t_start = start_time(vu);
		vu_send(vu);
		return;
	}
	lua_rawgeti(vu->co, LUA_REGISTRYINDEX, w->flow_ref[vu->scen]);
	lua_rawgeti(vu->co, LUA_REGISTRYINDEX, vu->u_ref);
	resume(vu, 1);
}

/* counted: the iteration ran to its end (not a script error); failed: its
 * last request hit a transport error, so a plain VU must not reconnect in
 * the same call (connection refused would recurse without end) */
static void iteration_done(lt_vu *vu, int counted, int failed)
{
	iac_lt_worker *w = vu->w;
	const iac_lt_scenario *s = &w->run->cfg->scenarios[vu->scen];
	stats_at(w);
	if (counted)
		w->d.iterations++;
	vu->busy = 0;
	if (w->open) {
		atomic_fetch_sub(&w->active, 1);
		vu->state = VU_IDLE;
		w->idle[w->nidle++] = vu;
		return;
	}
	if (vu->stopping || w->ending) {
		vu_stop(vu);
		return;
	}
	if (s->think_max_ms > 0) {
		double ms = s->think_min_ms + (s->think_max_ms - s->think_min_ms) * rand01(w);
		/* a thinking user does not hold big buffers */
		if (vu->bbuf.cap > 16384)
			iac_buf_free(&vu->bbuf);
		lt_vu_sleep(vu, ms);
		return;
	}
	/* the next iteration right away, unless the last one never waited (a
	 * flow without requests, or a refused connect): that could recurse
	 * without end, so it goes through the ready list */
	if (w->flow_ref[vu->scen] == LUA_NOREF ? !failed : vu->did_io)
		start_iteration(vu);
	else
		make_ready(vu);
}

static void resume(lt_vu *vu, int nargs)
{
	iac_lt_worker *w = vu->w;
	int nres = 0;
	vu->in_lua = 0;
	int rc = lua_resume(vu->co, w->L, nargs, &nres);
	if (rc == LUA_YIELD) {
		lua_pop(vu->co, nres);
		vu->in_lua = 1;
		return;
	}
	if (rc == LUA_OK) {
		lua_pop(vu->co, nres);
		iteration_done(vu, 1, 0);
		return;
	}
	const char *msg = lua_tostring(vu->co, -1);
	stats_at(w);
	iac_lt_stats_script_error(&w->d, msg ? msg : "error object is not a string");
	lua_resetthread(vu->co);
	iteration_done(vu, 0, 0);
}

static void on_request_done(lt_vu *vu, int status, enum iac_lt_errkind err, int failed)
{
	iac_lt_worker *w = vu->w;
	vu->state = VU_BUSY;
	if (w->flow_ref[vu->scen] == LUA_NOREF) {
		iteration_done(vu, 1, err < IAC_LT_NERR);
		return;
	}
	double ms = (double)(w->now - vu->t_start) / 1e3;
	int n = lt_lua_push_response(vu, status, err < IAC_LT_NERR ? iac_lt_errkind_name(err) : NULL, ms);
	if (vu->bbuf.cap > 65536)
		iac_buf_free(&vu->bbuf);
	resume(vu, n);
}

static void on_timer(lt_vu *vu)
{
	if (vu->in_lua) {
		resume(vu, 0);   /* u:sleep() returns */
		return;
	}
	if (vu->stopping || vu->w->ending) {
		vu_stop(vu);
		return;
	}
	start_iteration(vu);   /* think time is over */
}

/* ---- VUs and schedules --------------------------------------------- */

/* Give vu scenario scen: a flow needs a coroutine (made on first use) and
 * a parser that keeps headers and body; a plain request needs neither. */
static void vu_assign(lt_vu *vu, int scen)
{
	iac_lt_worker *w = vu->w;
	int capture = w->flow_ref[scen] != LUA_NOREF;
	vu->scen = scen;
	vu->parser.settings = (void *)(capture ? &capture_settings : &plain_settings);
	if (capture && !vu->co)
		lt_lua_vu_init(vu);
}

static lt_vu *vu_new(iac_lt_worker *w, int scen)
{
	lt_vu *vu = iac_xcalloc(1, sizeof(*vu));
	vu->w = w;
	vu->idx = (uint32_t)w->nvus;
	vu->id = (uint32_t)(w->nvus * (size_t)w->run->nthreads + (size_t)w->id + 1);
	vu->fd = -1;
	vu->state = VU_OFF;
	llhttp_init(&vu->parser, HTTP_RESPONSE, &plain_settings);
	vu->parser.data = vu;
	vu->co_ref = vu->u_ref = LUA_NOREF;
	vu_assign(vu, scen);
	w->vus = iac_xrealloc(w->vus, (w->nvus + 1) * sizeof(*w->vus));
	w->vus[w->nvus++] = vu;
	atomic_fetch_add(&w->allocated, 1);
	return vu;
}

static int share(int total, int nthreads, int id)
{
	return total / nthreads + (id < total % nthreads);
}

/* VUs wanted in total at ms since start (closed model). */
/* Wait for events until `wake`. When the thread has been waking up often
 * (its sleeps were short), poll for up to POLL_MAX_US first, as the
 * kernel's haltpoll does for idle CPUs: a thread that sleeps between every
 * pair of responses makes the server's CPU send it a wake-up interrupt
 * each time, which on a virtual machine costs the server more than the
 * request itself (measured: 40k interrupts/s, 10-15 % of nginx's req/s).
 * Sleeps longer than POLL_SLEEP_US switch polling off until the load comes
 * back, and so does sharing the CPU with another busy process (polling
 * would then take CPU from the server under test); the time polled is
 * counted so that the saturation check can ignore it. */
#define POLL_MAX_US 50
#define POLL_SLEEP_US 200
#define POLL_YIELDED_US 250    /* sched_yield() took this long: someone else ran */
#define POLL_OFF_US 100000
#define POLL_RAN_US 5          /* longer than a bare sched_yield() */

static int wait_events(iac_lt_worker *w, struct epoll_event *evs, const struct timespec *ts)
{
	int n = epoll_pwait2(w->ep, evs, MAX_EVENTS, ts, NULL);
	if (n < 0 && errno == ENOSYS)
		n = epoll_wait(w->ep, evs, MAX_EVENTS, (int)((ts->tv_sec * 1000) + (ts->tv_nsec + 999999) / 1000000));
	return n;
}

static int poll_then_wait(iac_lt_worker *w, struct epoll_event *evs, const struct timespec *ts, uint64_t wake)
{
	static const struct timespec zero = { 0, 0 };
	int n = 0;
	if (!ts->tv_sec && !ts->tv_nsec)
		return wait_events(w, evs, ts);
	if (w->poll_us && !w->run->cfg->no_poll) {
		uint64_t t0 = lt_now_us(), t = t0, until = t0 + w->poll_us, yielded = 0;
		if (until > wake)
			until = wake;
		while (n == 0 && t < until) {
			n = wait_events(w, evs, &zero);
			if (n)
				break;
			/* a neighbour that wants this CPU (the server on the same
			 * core?) gets it, and polling stops for a while: it would
			 * take CPU from the very server being measured */
			uint64_t y = lt_now_us();
			sched_yield();
			t = lt_now_us();
			if (t - y > POLL_RAN_US)
				yielded += t - y;   /* someone else ran: not a wait the load caused */
			if (t - y > POLL_YIELDED_US) {
				w->poll_us = 0;
				w->poll_off_until = t + POLL_OFF_US;
				break;
			}
		}
		atomic_fetch_add_explicit(&w->polled_us, t - t0 - yielded, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->yielded_us, yielded, memory_order_relaxed);
		if (n != 0)
			return n;
		if (t >= wake)
			return 0;
		struct timespec rest = { (time_t)((wake - t) / 1000000u), (long)((wake - t) % 1000000u) * 1000 };
		n = wait_events(w, evs, &rest);
		if (w->poll_us)
			w->poll_us = lt_now_us() - t <= POLL_SLEEP_US ? POLL_MAX_US : 0;
		return n;
	}
	uint64_t t0 = lt_now_us();
	n = wait_events(w, evs, ts);
	uint64_t t1 = lt_now_us();
	if (n > 0 && t1 - t0 <= POLL_SLEEP_US && t1 >= w->poll_off_until)
		w->poll_us = POLL_MAX_US;
	return n;
}

/* The User-Agent line every request carries unless the scenario sets its
 * own: iac-loadtest/VERSION, or the `user_agent` option ("" = none, which
 * makes the request the same bytes wrk sends). */
void lt_put_user_agent(iac_buf *b, const iac_lt_config *cfg)
{
	if (!cfg->user_agent)
		iac_buf_printf(b, "User-Agent: iac-loadtest/%s\r\n", IAC_VERSION);
	else if (cfg->user_agent[0])
		iac_buf_printf(b, "User-Agent: %s\r\n", cfg->user_agent);
}

static double closed_target(const iac_lt_config *cfg, double ms)
{
	if (cfg->executor == IAC_LT_CONSTANT_VUS)
		return cfg->vus;
	double prev = cfg->vus, t = 0;
	for (size_t i = 0; i < cfg->nstages; i++) {
		const iac_lt_stage *s = &cfg->stages[i];
		if (ms < t + s->dur_ms)
			return prev + (s->target - prev) * (ms - t) / s->dur_ms;
		t += s->dur_ms;
		prev = s->target;
	}
	return prev;
}

static void closed_schedule(iac_lt_worker *w)
{
	const iac_lt_config *cfg = w->run->cfg;
	double ms = (double)(w->now - w->run->start_us) / 1e3;
	int total = (int)floor(closed_target(cfg, ms) + 0.5);
	int want = share(total, w->run->nthreads, w->id);
	int have = atomic_load(&w->active);
	w->target = want;
	for (size_t i = 0; i < w->nvus && have < want; i++) {
		lt_vu *vu = w->vus[i];
		if (vu->stopping) {   /* still finishing an iteration: keep it */
			vu->stopping = 0;
			atomic_fetch_add(&w->active, 1);
			have++;
		}
	}
	for (size_t i = 0; i < w->nvus && have < want; i++) {
		lt_vu *vu = w->vus[i];
		if (vu->state == VU_OFF) {
			atomic_fetch_add(&w->active, 1);
			have++;
			make_ready(vu);
		}
	}
	while (have < want) {
		lt_vu *vu = vu_new(w, pick_scenario(w));
		atomic_fetch_add(&w->active, 1);
		have++;
		make_ready(vu);
	}
	/* ramp down from the newest VU, letting iterations finish (k6's
	 * gracefulRampDown); a thinking VU stops at once */
	for (size_t i = w->nvus; i-- > 0 && have > want;) {
		lt_vu *vu = w->vus[i];
		if (vu->state == VU_OFF || vu->stopping)
			continue;
		have--;
		if (!vu->busy) {
			vu_stop(vu);
		} else {
			vu->stopping = 1;
			atomic_fetch_sub(&w->active, 1);
		}
	}
}

/* When iteration k should start (ms), or INFINITY past the load phase. */
static double arrival_time(const iac_lt_config *cfg, double k)
{
	if (cfg->executor == IAC_LT_CONSTANT_RATE) {
		if (cfg->rate <= 0)
			return INFINITY;
		return k * cfg->time_unit_ms / cfg->rate;
	}
	double prev = cfg->rate / cfg->time_unit_ms, t = 0, c = 0;
	for (size_t i = 0; i < cfg->nstages; i++) {
		const iac_lt_stage *s = &cfg->stages[i];
		double r1 = s->target / cfg->time_unit_ms;
		double d = s->dur_ms;
		double cs = (prev + r1) * d / 2;
		if (k < c + cs) {
			double need = k - c;   /* solve prev*x + (r1-prev)/(2d) x^2 = need */
			double a = (r1 - prev) / (2 * d);
			double x;
			if (fabs(a) < 1e-15)
				x = need / prev;
			else
				x = (-prev + sqrt(prev * prev + 4 * a * need)) / (2 * a);
			if (x < 0)
				x = 0;
			if (x > d)
				x = d;
			return t + x;
		}
		c += cs;
		t += d;
		prev = r1;
	}
	return INFINITY;
}

static void open_schedule(iac_lt_worker *w)
{
	const iac_lt_config *cfg = w->run->cfg;
	iac_lt_run *run = w->run;
	for (;;) {
		double at = arrival_time(cfg, (double)w->next_k);
		if (!(at < run->load_ms))
			return;
		uint64_t at_us = run->start_us + (uint64_t)(at * 1e3);
		if (at_us > w->now)
			return;
		w->next_k += (uint64_t)run->nthreads;
		lt_vu *vu = NULL;
		if (w->nidle) {
			vu = w->idle[--w->nidle];
		} else if ((int)w->nvus < w->cap) {
			vu = vu_new(w, 0);
			w->idle = iac_xrealloc(w->idle, w->nvus * sizeof(*w->idle));
		}
		stats_at(w);
		if (!vu) {
			w->d.dropped++;
			continue;
		}
		/* each iteration picks its scenario by weight */
		vu_assign(vu, pick_scenario(w));
		vu->intended = at_us;
		atomic_fetch_add(&w->active, 1);
		start_iteration(vu);
	}
}

static uint64_t next_arrival_us(iac_lt_worker *w)
{
	double at = arrival_time(w->run->cfg, (double)w->next_k);
	if (!(at < w->run->load_ms))
		return UINT64_MAX;
	return w->run->start_us + (uint64_t)(at * 1e3);
}

static void scan_timeouts(iac_lt_worker *w)
{
	uint64_t limit = (uint64_t)(w->run->cfg->timeout_ms * 1e3);
	for (size_t i = 0; i < w->nvus; i++) {
		lt_vu *vu = w->vus[i];
		if ((vu->state == VU_CONNECTING || vu->state == VU_SENDING || vu->state == VU_WAITING) &&
		    w->now - vu->t_sent > limit)
			vu_fail(vu, IAC_LT_E_TIMEOUT);
	}
}

/* ---- the worker ---------------------------------------------------- */

static int worker_setup(iac_lt_worker *w)
{
	iac_lt_run *run = w->run;
	const iac_lt_config *cfg = run->cfg;
	size_t ns = cfg->nscenarios;
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	if (w->ep < 0)
		return iac_err_sys("cannot create an epoll instance");
	w->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)(w->id + 1) * 0xD1B54A32D192ED03ULL) ^ lt_now_us();
	iac_lt_stats_init(&w->d);
	w->open = cfg->executor == IAC_LT_CONSTANT_RATE || cfg->executor == IAC_LT_RAMPING_RATE;
	w->flow_ref = iac_xcalloc(ns, sizeof(*w->flow_ref));
	w->pre = iac_xcalloc(ns, sizeof(*w->pre));
	w->prelen = iac_xcalloc(ns, sizeof(*w->prelen));
	w->pre_addr = iac_xcalloc(ns, sizeof(*w->pre_addr));
	w->pre_ep = iac_xcalloc(ns, sizeof(*w->pre_ep));
	w->scen_weight = iac_xcalloc(ns, sizeof(*w->scen_weight));
	w->scen_count = iac_xcalloc(ns, sizeof(*w->scen_count));
	for (size_t i = 0; i < ns; i++)
		w->scen_weight[i] = cfg->scenarios[i].weight;

	/* address 0 is always the target */
	if (addr_add(w, run->host, run->port) < 0)
		return IAC_ERR;

	int any_flow = 0;
	for (size_t i = 0; i < ns; i++)
		any_flow |= cfg->scenarios[i].has_flow;
	if (any_flow) {
		w->L = iac_lt_scenario_open(cfg);
		if (!w->L)
			return IAC_ERR;
		lt_lua_setup(w->L);
		/* responses are garbage a moment after they arrive: the
		 * generational collector handles that with far less work */
		lua_gc(w->L, LUA_GCGEN, 0, 0);
	}
	for (size_t i = 0; i < ns; i++) {
		const iac_lt_scenario *s = &cfg->scenarios[i];
		w->flow_ref[i] = LUA_NOREF;
		if (s->has_flow) {
			iac_lt_push_flow(w->L, i);
			w->flow_ref[i] = luaL_ref(w->L, LUA_REGISTRYINDEX);
			continue;
		}
		/* a flow-less scenario: build the bytes once */
		char *url = s->url[0] == '/' ? iac_xasprintf("%s%s", run->base_path, s->url) : iac_xstrdup(s->url);
		const char *path;
		int a = lt_addr_for(w, url, &path);
		if (a < 0) {
			free(url);
			return IAC_ERR;
		}
		iac_buf b = IAC_BUF_INIT;
		int has_ua = 0;
		iac_buf_printf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", s->method, path, w->addrs[a].hostport);
		for (size_t h = 0; h < s->headers.n; h++) {
			iac_buf_printf(&b, "%s\r\n", s->headers.items[h]);
			has_ua |= !strncasecmp(s->headers.items[h], "user-agent:", 11);
		}
		if (!has_ua)
			lt_put_user_agent(&b, cfg);
		if (s->body || strcmp(s->method, "GET"))
			iac_buf_printf(&b, "Content-Length: %zu\r\n", s->body_len);
		iac_buf_puts(&b, "\r\n");
		if (s->body)
			iac_buf_put(&b, s->body, s->body_len);
		w->pre_addr[i] = a;
		w->pre_ep[i] = lt_endpoint_for(w, s->method, path, s->endpoint);
		w->prelen[i] = b.len;
		w->pre[i] = iac_buf_detach(&b);
		free(url);
	}
	if (w->open) {
		w->cap = share(cfg->max_vus, run->nthreads, w->id);
		int pre = share(cfg->pre_vus, run->nthreads, w->id);
		w->idle = iac_xcalloc((size_t)(w->cap > 0 ? w->cap : 1), sizeof(*w->idle));
		for (int i = 0; i < pre; i++) {
			lt_vu *vu = vu_new(w, 0);
			vu->state = VU_IDLE;
			w->idle[w->nidle++] = vu;
		}
		w->next_k = (uint64_t)w->id;
	}
	return 0;
}

static int all_idle(iac_lt_worker *w)
{
	for (size_t i = 0; i < w->nvus; i++)
		if (w->vus[i]->busy)
			return 0;
	return 1;
}

static void worker_loop(iac_lt_worker *w)
{
	iac_lt_run *run = w->run;
	struct epoll_event evs[MAX_EVENTS];
	uint64_t load_end = run->start_us + (uint64_t)(run->load_ms * 1e3);
	uint64_t hard_end = load_end + (uint64_t)(run->cfg->graceful_stop_ms * 1e3);
	w->now = lt_now_us();
	w->dsec = 0;
	w->last_scan = w->now;
	if (!w->open)
		closed_schedule(w);

	for (;;) {
		/* how long may we sleep? */
		uint64_t wake = w->now + SCAN_US;
		if (w->nready)
			wake = w->now;
		if (w->nheap && w->heap[0].at < wake)
			wake = w->heap[0].at;
		if (w->open && !w->ending) {
			uint64_t a = next_arrival_us(w);
			if (a < wake)
				wake = a;
		}
		uint64_t next_sec = run->start_us + (uint64_t)(w->dsec + 1) * 1000000u;
		if (next_sec < wake)
			wake = next_sec;
		struct timespec ts = { 0, 0 };
		if (wake > w->now) {
			uint64_t d = wake - w->now;
			ts.tv_sec = (time_t)(d / 1000000u);
			ts.tv_nsec = (long)(d % 1000000u) * 1000;
		}
		int n = poll_then_wait(w, evs, &ts, wake);
		w->now = lt_now_us();
		for (int i = 0; i < n; i++) {
			w->now = lt_now_us();   /* per event: latency to the microsecond */
			on_event(evs[i].data.ptr, evs[i].events);
		}
		w->now = lt_now_us();

		while (w->nheap && w->heap[0].at <= w->now) {
			lt_timer t = heap_pop(w);
			if (t.gen == t.vu->timer_gen && t.vu->state == VU_TIMER)
				on_timer(t.vu);
		}
		size_t nr = w->nready;
		if (nr) {
			/* only those queued before this pass: a flow that never waits
			 * must not keep the loop from its other work */
			lt_vu **batch = iac_xmalloc(nr * sizeof(*batch));
			memcpy(batch, w->ready, nr * sizeof(*batch));
			memmove(w->ready, w->ready + nr, (w->nready - nr) * sizeof(*w->ready));
			w->nready -= nr;
			for (size_t i = 0; i < nr; i++) {
				lt_vu *vu = batch[i];
				vu->queued = 0;
				if (vu->deferred) {
					enum iac_lt_errkind k = (enum iac_lt_errkind)(vu->deferred - 1);
					vu->deferred = 0;
					on_request_done(vu, 0, k, 1);
					continue;
				}
				if (vu->state != VU_READY)
					continue;
				if (w->ending || vu->stopping)
					vu_stop(vu);
				else
					start_iteration(vu);
			}
			free(batch);
		}

		/* arrivals due before the end still start, even when the loop
		 * wakes up after it */
		if (w->open && !w->ending && !run->stop)
			open_schedule(w);
		if (!w->ending && (w->now >= load_end || run->stop)) {
			w->ending = 1;
			/* nobody starts anew; thinking users leave now */
			for (size_t i = 0; i < w->nvus; i++) {
				lt_vu *vu = w->vus[i];
				if (!vu->busy && (vu->state == VU_TIMER || vu->state == VU_READY))
					vu_stop(vu);
			}
		}
		if (!w->ending && !w->open) {
			if (w->now - w->last_sched >= SCAN_US / 10) {
				w->last_sched = w->now;
				closed_schedule(w);
			}
		}
		if (w->now - w->last_scan >= SCAN_US) {
			w->last_scan = w->now;
			scan_timeouts(w);
		}
		long s = sec_of(w, w->now);
		if (s != w->dsec)
			flush(w, s);
		if (w->ending && all_idle(w))
			break;
		if (w->ending && (w->now >= hard_end || run->stop >= 2))
			break;
	}
	flush(w, sec_of(w, w->now) + 1);
}

static void *worker_main(void *arg)
{
	iac_lt_worker *w = arg;
	int ok = worker_setup(w) == 0;
	if (!ok) {
		pthread_mutex_lock(&w->run->mu);
		if (!w->run->fatal)
			w->run->fatal = iac_xstrdup(iac_err_last());
		pthread_mutex_unlock(&w->run->mu);
	}
	pthread_barrier_wait(&w->run->barrier);   /* everyone is set up */
	pthread_barrier_wait(&w->run->barrier);   /* main has set start_us */
	if (ok && !w->run->fatal)
		worker_loop(w);
	atomic_store(&w->done_sec, (long)1 << 40);
	atomic_store(&w->finished, 1);
	return NULL;
}

int iac_lt_engine_start(iac_lt_run *run, const iac_lt_config *cfg, int nthreads)
{
	memset(run, 0, sizeof(*run));
	run->cfg = cfg;
	run->nthreads = nthreads < 1 ? 1 : nthreads;
	pthread_mutex_init(&run->mu, NULL);
	iac_lt_stats_init(&run->total);
	run->load_ms = iac_lt_config_duration_ms(cfg);

	const char *t = cfg->target;
	if (!t)
		for (size_t i = 0; i < cfg->nscenarios && !t; i++)
			if (cfg->scenarios[i].url && iac_str_starts(cfg->scenarios[i].url, "http://"))
				t = cfg->scenarios[i].url;
	if (!t)
		return iac_err_set("%s: no target: add target \"http://host:port\"", cfg->file);
	char *path;
	if (iac_lt_url_split(t, &run->host, &run->port, &path) < 0)
		return IAC_ERR;
	size_t pl = strlen(path);
	while (pl && path[pl - 1] == '/')
		path[--pl] = 0;
	run->base_path = path;   /* relative paths are appended to it */
	run->hostport = run->port == 80 ? iac_xstrdup(run->host) : iac_xasprintf("%s:%d", run->host, run->port);

	pthread_once(&settings_once, settings_init);
	pthread_barrier_init(&run->barrier, NULL, (unsigned)run->nthreads + 1);
	run->workers = iac_xcalloc((size_t)run->nthreads, sizeof(*run->workers));
	for (int i = 0; i < run->nthreads; i++) {
		iac_lt_worker *w = iac_xcalloc(1, sizeof(*w));
		w->run = run;
		w->id = i;
		w->ep = -1;
		run->workers[i] = w;
		if (pthread_create(&w->th, NULL, worker_main, w) != 0) {
			iac_log_error("cannot start worker thread %d", i);
			abort();
		}
		w->started = 1;
	}
	pthread_barrier_wait(&run->barrier);
	run->start_us = lt_now_us();
	pthread_barrier_wait(&run->barrier);
	if (run->fatal) {
		iac_lt_engine_join(run);
		return iac_err_set("%s", run->fatal);
	}
	return 0;
}

double iac_lt_engine_elapsed(const iac_lt_run *run)
{
	return (double)(lt_now_us() - run->start_us) / 1e6;
}

int iac_lt_engine_active_vus(const iac_lt_run *run)
{
	int n = 0;
	for (int i = 0; i < run->nthreads; i++)
		n += atomic_load(&run->workers[i]->active);
	return n;
}

int iac_lt_engine_running(const iac_lt_run *run)
{
	int n = 0;
	for (int i = 0; i < run->nthreads; i++)
		n += !atomic_load(&run->workers[i]->finished);
	return n;
}

size_t iac_lt_engine_collect(iac_lt_run *run, int all)
{
	long upto = LONG_MAX;
	if (!all)
		for (int i = 0; i < run->nthreads; i++) {
			long d = atomic_load(&run->workers[i]->done_sec);
			if (d < upto)
				upto = d;
		}
	pthread_mutex_lock(&run->mu);
	size_t nfinal = 0;
	for (size_t s = 0; s < run->nsecs; s++) {
		iac_lt_second *x = &run->secs[s];
		if (!x->final && (long)s < upto) {
			if (x->hist) {
				x->p50_ms = (double)iac_lt_hist_percentile(x->hist, 50) / 1e3;
				x->p90_ms = (double)iac_lt_hist_percentile(x->hist, 90) / 1e3;
				x->p99_ms = (double)iac_lt_hist_percentile(x->hist, 99) / 1e3;
				x->max_ms = (double)x->hist->max / 1e3;
				free(x->hist);
				x->hist = NULL;
			}
			x->final = 1;
		}
		if (x->final)
			nfinal = s + 1;
	}
	pthread_mutex_unlock(&run->mu);
	return nfinal;
}

iac_lt_second *iac_lt_engine_slot(iac_lt_run *run, long s)
{
	return slot_locked(run, s);
}

void iac_lt_engine_join(iac_lt_run *run)
{
	for (int i = 0; i < run->nthreads; i++) {
		iac_lt_worker *w = run->workers[i];
		if (w && w->started) {
			pthread_join(w->th, NULL);
			w->started = 0;
		}
	}
}

static void worker_free(iac_lt_worker *w)
{
	const iac_lt_config *cfg = w->run->cfg;
	for (size_t i = 0; i < w->nvus; i++) {
		lt_vu *vu = w->vus[i];
		if (vu->fd >= 0)
			close(vu->fd);
		iac_buf_free(&vu->out);
		iac_buf_free(&vu->hbuf);
		iac_buf_free(&vu->bbuf);
		free(vu);
	}
	free(w->vus);
	free(w->idle);
	free(w->ready);
	free(w->heap);
	if (w->L)
		lua_close(w->L);
	for (size_t i = 0; w->pre && i < cfg->nscenarios; i++)
		free(w->pre[i]);
	free(w->pre);
	free(w->prelen);
	free(w->pre_addr);
	free(w->pre_ep);
	free(w->flow_ref);
	free(w->scen_weight);
	free(w->scen_count);
	for (size_t i = 0; i < w->reqcache.cap; i++)
		if (w->reqcache.slots[i].key) {
			lt_prebuilt *p = w->reqcache.slots[i].value;
			free(p->bytes);
			free(p);
		}
	iac_map_free(&w->reqcache);
	for (size_t i = 0; i < w->naddrs; i++)
		free(w->addrs[i].hostport);
	free(w->addrs);
	iac_lt_stats_free(&w->d);
	if (w->ep >= 0)
		close(w->ep);
	free(w);
}

void iac_lt_engine_free(iac_lt_run *run)
{
	int had_barrier = run->workers != NULL;   /* made just before the workers */
	for (int i = 0; run->workers && i < run->nthreads; i++)
		if (run->workers[i])
			worker_free(run->workers[i]);
	free(run->workers);
	for (size_t s = 0; s < run->nsecs; s++) {
		free(run->secs[s].hist);
		free(run->secs[s].host_cpu);
		free(run->secs[s].host_mem);
	}
	free(run->secs);
	iac_lt_stats_free(&run->total);
	free(run->host);
	free(run->hostport);
	free(run->base_path);
	free(run->fatal);
	pthread_mutex_destroy(&run->mu);
	if (had_barrier)
		pthread_barrier_destroy(&run->barrier);
	memset(run, 0, sizeof(*run));
}

static double sum_us(iac_lt_run *run, size_t off)
{
	unsigned long long us = 0;
	for (int i = 0; i < run->nthreads; i++)
		if (run->workers && run->workers[i])
			us += atomic_load_explicit((atomic_ullong *)((char *)run->workers[i] + off), memory_order_relaxed);
	return (double)us / 1e6;
}

double iac_lt_engine_polled_s(iac_lt_run *run)
{
	return sum_us(run, offsetof(iac_lt_worker, polled_us));
}

double iac_lt_engine_yielded_s(iac_lt_run *run)
{
	return sum_us(run, offsetof(iac_lt_worker, yielded_us));
}
