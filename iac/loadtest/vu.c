/* lt_vu: a virtual user's connection, requests and iterations (see
 * engine_int.h).
 *
 * Per request the plain path costs one send() and usually one read(): the
 * socket stays registered for EPOLLIN only, EPOLLOUT is asked for just while
 * connecting or when the kernel refused part of a request. About 90 % of a
 * load generator's CPU per request is kernel time, so saving epoll_ctl()
 * calls matters more than anything in user space.
 *
 * A flow runs in the VU's coroutine; what it asks for (a request, a sleep)
 * is done here once it has yielded, and its response resumes it.
 */
#include "iac/loadtest/engine_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "iac/core/util.h"

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

void lt_vu_ready(lt_vu *vu)
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

static void vu_sleep(lt_vu *vu, double ms)
{
	vu->did_io = 1;
	vu->state = VU_TIMER;
	heap_push(vu->w, vu->w->now + (uint64_t)(ms * 1e3), vu);
}

/* ---- connections --------------------------------------------------- */

static void on_request_done(lt_vu *vu, int status, enum iac_lt_errkind err, int failed);

/* clean: the connection ended as HTTP allows (an https one keeps its
 * session resumable); not after a failure. */
static void conn_close(lt_vu *vu, int clean)
{
	lt_tls_close(vu, clean);
	if (vu->fd >= 0) {
		close(vu->fd);   /* also removes it from epoll */
		vu->fd = -1;
	}
	vu->reused = 0;
}

/* read() or send() on vu's connection, through TLS on an https one;
 * *tls_failed says a failure was TLS's own (its message recorded). */
static ssize_t conn_read(lt_vu *vu, void *buf, size_t n, int *tls_failed)
{
	return vu->ssl ? lt_tls_read(vu, buf, n, tls_failed) : read(vu->fd, buf, n);
}

static ssize_t conn_write(lt_vu *vu, const void *buf, size_t n, int *tls_failed)
{
	return vu->ssl ? lt_tls_write(vu, buf, n, tls_failed) : send(vu->fd, buf, n, MSG_NOSIGNAL);
}

#define LT_BACKOFF_MIN_MS 10
#define LT_BACKOFF_MAX_MS 1000

/* A refused connect fails within microseconds: retrying at once turns a
 * dead target into ~100,000 "requests" a second of pure client CPU (k6 and
 * Locust users never see that). So the VU waits before it learns of the
 * failure: 10 ms doubling to 1 s, drawn from the upper half of the step so
 * that VUs do not retry in lockstep; the next response resets it. Not once
 * the load phase is over: the run must not outlast it by a back-off. */
static void vu_backoff(lt_vu *vu, enum iac_lt_errkind k)
{
	uint32_t step = vu->backoff_ms ? vu->backoff_ms * 2 : LT_BACKOFF_MIN_MS;
	vu->backoff_ms = step > LT_BACKOFF_MAX_MS ? LT_BACKOFF_MAX_MS : step;
	vu->deferred = 1 + (int)k;   /* handed to the VU when the timer fires */
	vu_sleep(vu, (double)vu->backoff_ms * (0.5 + 0.5 * lt_rand01(vu->w)));
}

static void vu_fail(lt_vu *vu, enum iac_lt_errkind k)
{
	conn_close(vu, 0);
	lt_tally_failure(vu, k);
	/* a refused certificate is refused again at once: back off too */
	if ((k == IAC_LT_E_CONNECT || k == IAC_LT_E_TLS) && !vu->w->ending) {
		vu_backoff(vu, k);
		return;
	}
	if (vu->in_send) {
		/* we are still inside the resume() that sent it: resuming the
		 * coroutine again from here would nest without end when every
		 * connect is refused, so the loop hands it the failure */
		vu->deferred = 1 + (int)k;
		lt_vu_ready(vu);
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
	int fd;
	enum iac_lt_errkind k = lt_net_connect(&fd, &vu->w->addrs[vu->want_addr]);
	if (k != IAC_LT_NERR) {
		vu_fail(vu, k);
		return;
	}
	vu->fd = fd;
	vu->addr = vu->want_addr;
	vu->reused = 0;
	vu->state = VU_CONNECTING;
	if (epoll_set(vu, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT) < 0)
		vu_fail(vu, IAC_LT_E_OTHER);
}

static void try_write(lt_vu *vu)
{
	while (vu->woff < vu->reqlen) {
		int tls_failed = 0;
		ssize_t n = conn_write(vu, vu->req + vu->woff, vu->reqlen - vu->woff, &tls_failed);
		if (n <= 0 && tls_failed) {
			vu_fail(vu, IAC_LT_E_TLS);
			return;
		}
		if (n == 0)
			errno = EPIPE;   /* TLS: the server ended the stream */
		if (n <= 0) {
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
				conn_close(vu, 0);
				vu_connect(vu);
				return;
			}
			vu_fail(vu, IAC_LT_E_CLOSED);
			return;
		}
		vu->woff += (size_t)n;
		vu->w->d.bytes_out += (uint64_t)n;
	}
	if (vu->state == VU_SENDING || vu->state == VU_CONNECTING || vu->state == VU_HANDSHAKE)
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
		conn_close(vu, 1);
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

/* ---- responses ----------------------------------------------------- */

static void response_complete(lt_vu *vu)
{
	iac_lt_worker *w = vu->w;
	int status = llhttp_get_status_code(&vu->parser);
	int keep = llhttp_should_keep_alive(&vu->parser);
	lt_tally_response(vu, status, w->now - vu->t_start);
	vu->backoff_ms = 0;
	if (!keep)
		conn_close(vu, 1);
	else
		vu->reused = 1;
	on_request_done(vu, status, IAC_LT_NERR, status >= 400);
}

/* The socket ended (n == 0) or failed while vu was reading. */
static void on_eof(lt_vu *vu, ssize_t n)
{
	if (vu->state != VU_WAITING && vu->state != VU_SENDING) {
		conn_close(vu, 1);   /* the server closed an idle keep-alive connection */
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
		conn_close(vu, 0);
		vu->woff = 0;
		vu_connect(vu);
		return;
	}
	vu_fail(vu, IAC_LT_E_CLOSED);
}

static void on_readable(lt_vu *vu)
{
	iac_lt_worker *w = vu->w;
	for (;;) {
		int tls_failed = 0;
		ssize_t n = conn_read(vu, w->rbuf, sizeof(w->rbuf), &tls_failed);
		if (n > 0) {
			w->d.bytes_in += (uint64_t)n;
			if (vu->state != VU_WAITING && vu->state != VU_SENDING) {
				conn_close(vu, 0);   /* bytes nobody asked for: drop the connection */
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
			/* TLS may hold more than the socket says: read on until
			 * it wants the socket */
			if ((size_t)n < sizeof(w->rbuf) && !vu->ssl)
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (tls_failed) {
			if (vu->state == VU_WAITING || vu->state == VU_SENDING)
				vu_fail(vu, IAC_LT_E_TLS);
			else
				conn_close(vu, 0);
			return;
		}
		on_eof(vu, n);
		return;
	}
}

/* The handshake's next step said rc: wait for what it wants, or send the
 * request once it is done. */
static void tls_step(lt_vu *vu, enum lt_tls_rc rc)
{
	switch (rc) {
	case LT_TLS_DONE:
		try_write(vu);
		break;
	case LT_TLS_WANT_READ:
	case LT_TLS_WANT_WRITE:
		if (epoll_set(vu, EPOLL_CTL_MOD, rc == LT_TLS_WANT_READ ? EPOLLIN : EPOLLIN | EPOLLOUT) < 0)
			vu_fail(vu, IAC_LT_E_OTHER);
		break;
	case LT_TLS_FAILED:
		vu_fail(vu, IAC_LT_E_TLS);
		break;
	}
}

void lt_vu_event(lt_vu *vu, uint32_t ev)
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
		const lt_addr *a = &vu->w->addrs[vu->addr];
		if (a->tls) {
			vu->state = VU_HANDSHAKE;
			tls_step(vu, lt_tls_start(vu, a));
			return;
		}
		try_write(vu);
		return;
	}
	if (vu->state == VU_HANDSHAKE) {
		tls_step(vu, lt_tls_handshake(vu));
		return;
	}
	if ((ev & EPOLLOUT) && vu->state == VU_SENDING)
		try_write(vu);
	if (vu->fd >= 0 && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		on_readable(vu);
}

/* ---- iterations ---------------------------------------------------- */

void lt_vu_stop(lt_vu *vu)
{
	iac_lt_worker *w = vu->w;
	conn_close(vu, 1);
	vu->timer_gen++;
	vu->deferred = 0;
	vu->busy = 0;
	if (vu->state != VU_OFF && !vu->stopping)
		atomic_fetch_sub(&w->active, 1);
	vu->stopping = 0;
	vu->state = VU_OFF;
}

static void resume(lt_vu *vu, int nargs);

void lt_vu_start(lt_vu *vu)
{
	iac_lt_worker *w = vu->w;
	vu->busy = 1;
	vu->did_io = 0;
	vu->iteration++;
	if (w->flow_ref[vu->scen] == LUA_NOREF) {
		vu->method = w->run->cfg->scenarios[vu->scen].method;
		vu->ntags = 0;
		lt_vu_scenario_tags(vu);
		vu->want_addr = w->pre_addr[vu->scen];
		vu->ep = w->pre_ep[vu->scen];
		vu->req = w->pre[vu->scen];
		vu->reqlen = w->prelen[vu->scen];
		vu->t_start = start_time(vu);
		vu_send(vu);
		return;
	}
	iac_buf_clear(&vu->group);   /* a script error may have left one open */
	lua_rawgeti(vu->co, LUA_REGISTRYINDEX, w->flow_ref[vu->scen]);
	lua_rawgeti(vu->co, LUA_REGISTRYINDEX, vu->u_ref);
	if (w->data_ref == LUA_NOREF) {
		resume(vu, 1);
		return;
	}
	lua_rawgeti(vu->co, LUA_REGISTRYINDEX, w->data_ref);   /* setup()'s data: flow(u, data) */
	resume(vu, 2);
}

/* counted: the iteration ran to its end (not a script error); failed: its
 * last request hit a transport error, so a plain VU must not reconnect in
 * the same call (connection refused would recurse without end) */
static void iteration_done(lt_vu *vu, int counted, int failed)
{
	iac_lt_worker *w = vu->w;
	const iac_lt_scenario *s = &w->run->cfg->scenarios[vu->scen];
	lt_tally_at(w);
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
		lt_vu_stop(vu);
		return;
	}
	if (s->think_max_ms > 0) {
		double ms = s->think_min_ms + (s->think_max_ms - s->think_min_ms) * lt_rand01(w);
		/* a thinking user does not hold big buffers */
		if (vu->bbuf.cap > 16384)
			iac_buf_free(&vu->bbuf);
		vu_sleep(vu, ms);
		return;
	}
	/* the next iteration right away, unless the last one never waited (a
	 * flow without requests, or a refused connect): that could recurse
	 * without end, so it goes through the ready list */
	if (w->flow_ref[vu->scen] == LUA_NOREF ? !failed : vu->did_io)
		lt_vu_start(vu);
	else
		lt_vu_ready(vu);
}

/* Do what the flow yielded for (see enum lt_ask). */
static void do_ask(lt_vu *vu)
{
	enum lt_ask ask = vu->ask;
	vu->ask = LT_ASK_NONE;
	if (ask == LT_ASK_SLEEP) {
		vu_sleep(vu, vu->ask_ms);
		return;
	}
	if (ask != LT_ASK_REQUEST)
		return;
	vu->did_io = 1;
	vu->t_start = start_time(vu);
	iac_buf_clear(&vu->hbuf);
	iac_buf_clear(&vu->bbuf);
	vu->in_send = 1;
	vu_send(vu);
	vu->in_send = 0;
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
		do_ask(vu);
		return;
	}
	if (rc == LUA_OK) {
		lua_pop(vu->co, nres);
		iteration_done(vu, 1, 0);
		return;
	}
	const char *msg = lua_tostring(vu->co, -1);
	lt_tally_at(w);
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
	if (w->run->cfg->cookies)
		lt_cookies_update(vu);
	int n = lt_lua_push_response(vu, status, err < IAC_LT_NERR ? iac_lt_errkind_name(err) : NULL, ms);
	if (vu->bbuf.cap > 65536)
		iac_buf_free(&vu->bbuf);
	resume(vu, n);
}

/* Hand vu the failure of its request that vu_fail deferred. */
static void deliver_deferred(lt_vu *vu)
{
	enum iac_lt_errkind k = (enum iac_lt_errkind)(vu->deferred - 1);
	vu->deferred = 0;
	on_request_done(vu, 0, k, 1);
}

static void on_timer(lt_vu *vu)
{
	if (vu->deferred) {   /* a connect back-off is over */
		deliver_deferred(vu);
		return;
	}
	if (vu->in_lua) {
		resume(vu, 0);   /* u:sleep() returns */
		return;
	}
	if (vu->stopping || vu->w->ending) {
		lt_vu_stop(vu);
		return;
	}
	lt_vu_start(vu);   /* think time is over */
}

/* ---- the loop's side ------------------------------------------------ */

void lt_vu_run_timers(iac_lt_worker *w)
{
	while (w->nheap && w->heap[0].at <= w->now) {
		lt_timer t = heap_pop(w);
		/* the VU stopped or set another timer since: a stale entry */
		if (t.gen == t.vu->timer_gen && t.vu->state == VU_TIMER)
			on_timer(t.vu);
	}
}

void lt_vu_run_ready(iac_lt_worker *w)
{
	size_t nr = w->nready;
	if (!nr)
		return;
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
			deliver_deferred(vu);
			continue;
		}
		if (vu->state != VU_READY)
			continue;
		if (w->ending || vu->stopping)
			lt_vu_stop(vu);
		else
			lt_vu_start(vu);
	}
	free(batch);
}

void lt_vu_scan_timeouts(iac_lt_worker *w)
{
	uint64_t limit = (uint64_t)(w->run->cfg->timeout_ms * 1e3);
	for (size_t i = 0; i < w->nvus; i++) {
		lt_vu *vu = w->vus[i];
		if ((vu->state == VU_CONNECTING || vu->state == VU_HANDSHAKE || vu->state == VU_SENDING ||
		     vu->state == VU_WAITING) &&
		    w->now - vu->t_sent > limit)
			vu_fail(vu, IAC_LT_E_TIMEOUT);
	}
}

/* ---- VUs ------------------------------------------------------------ */

/* A flow needs a coroutine (made on first use) and a parser that keeps
 * headers and body; a plain request needs neither. */
void lt_vu_assign(lt_vu *vu, int scen)
{
	iac_lt_worker *w = vu->w;
	int capture = w->flow_ref[scen] != LUA_NOREF;
	vu->scen = scen;
	vu->parser.settings = (void *)lt_http_settings(capture);
	if (capture && !vu->co)
		lt_lua_vu_init(vu);
}

lt_vu *lt_vu_new(iac_lt_worker *w, int scen)
{
	lt_vu *vu = iac_xcalloc(1, sizeof(*vu));
	vu->w = w;
	vu->idx = (uint32_t)w->nvus;
	vu->id = (uint32_t)(w->nvus * (size_t)w->run->nthreads + (size_t)w->id + 1);
	vu->fd = -1;
	vu->state = VU_OFF;
	llhttp_init(&vu->parser, HTTP_RESPONSE, lt_http_settings(0));
	vu->parser.data = vu;
	vu->co_ref = vu->u_ref = LUA_NOREF;
	lt_vu_assign(vu, scen);
	w->vus = iac_xrealloc(w->vus, (w->nvus + 1) * sizeof(*w->vus));
	w->vus[w->nvus++] = vu;
	atomic_fetch_add(&w->allocated, 1);
	return vu;
}

void lt_vu_free(lt_vu *vu)
{
	lt_tls_vu_free(vu);
	if (vu->fd >= 0)
		close(vu->fd);
	iac_buf_free(&vu->out);
	iac_buf_free(&vu->hbuf);
	iac_buf_free(&vu->bbuf);
	iac_buf_free(&vu->group);
	iac_buf_free(&vu->cookies);
	free(vu);
}
