/* lt_worker: one worker thread (see engine_int.h): its own epoll loop,
 * its own Lua state (as wrk has one per thread), its VUs.
 *
 * The loop is a plain reactor, as Redis's ae.c: wait until the earliest of
 * an event, a timer, an arrival, the next second; handle what is due; go
 * again. Nothing in it blocks but the wait.
 */
#include "iac/loadtest/engine_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <lauxlib.h>

#include "iac/core/err.h"
#include "iac/core/util.h"

#define SCAN_US 100000       /* timeout scan and schedule check period */

/* ---- setup ---------------------------------------------------------- */

/* The scenarios' flows run in this thread's own Lua state, made only when
 * some scenario has a flow. */
static int load_lua(iac_lt_worker *w)
{
	const iac_lt_config *cfg = w->run->cfg;
	int any_flow = 0;
	for (size_t i = 0; i < cfg->nscenarios; i++)
		any_flow |= cfg->scenarios[i].has_flow;
	if (!any_flow)
		return 0;
	w->L = iac_lt_scenario_open(cfg);
	if (!w->L)
		return IAC_ERR;
	lt_lua_setup(w->L);
	if (cfg->setup_data) {
		if (lt_lua_push_data(w->L, cfg->setup_data) < 0)
			return IAC_ERR;
		w->data_ref = luaL_ref(w->L, LUA_REGISTRYINDEX);
	}
	/* responses are garbage a moment after they arrive: the
	 * generational collector handles that with far less work */
	lua_gc(w->L, LUA_GCGEN, 0, 0);
	return 0;
}

/* A flow-less scenario sends the same bytes every time: build them once. */
static int prebuild(iac_lt_worker *w, size_t i)
{
	iac_lt_run *run = w->run;
	const iac_lt_scenario *s = &run->cfg->scenarios[i];
	char *url = s->url[0] == '/' ? iac_xasprintf("%s%s", run->base_path, s->url) : iac_xstrdup(s->url);
	const char *path;
	int a = lt_net_addr_for(w, url, &path);
	if (a < 0) {
		free(url);
		return IAC_ERR;
	}
	iac_buf b = IAC_BUF_INIT;
	int has_ua = 0;
	lt_http_head(&b, s->method, path, w->addrs[a].hostport);
	for (size_t h = 0; h < s->headers.n; h++) {
		iac_buf_printf(&b, "%s\r\n", s->headers.items[h]);
		has_ua |= !strncasecmp(s->headers.items[h], "user-agent:", 11);
	}
	lt_http_end(&b, run->cfg, has_ua, s->method, s->body, s->body_len);
	w->pre_addr[i] = a;
	w->pre_ep[i] = lt_tally_endpoint(w, s->method, path, s->endpoint);
	w->prelen[i] = b.len;
	w->pre[i] = iac_buf_detach(&b);
	free(url);
	return 0;
}

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
	w->flow_ref = iac_xcalloc(ns, sizeof(*w->flow_ref));
	w->data_ref = LUA_NOREF;
	w->pre = iac_xcalloc(ns, sizeof(*w->pre));
	w->prelen = iac_xcalloc(ns, sizeof(*w->prelen));
	w->pre_addr = iac_xcalloc(ns, sizeof(*w->pre_addr));
	w->pre_ep = iac_xcalloc(ns, sizeof(*w->pre_ep));
	w->scen_weight = iac_xcalloc(ns, sizeof(*w->scen_weight));
	w->scen_count = iac_xcalloc(ns, sizeof(*w->scen_count));
	for (size_t i = 0; i < ns; i++)
		w->scen_weight[i] = cfg->scenarios[i].weight;

	/* address 0 is always the target */
	if (lt_net_addr(w, run->host, run->port, run->tls) < 0 || load_lua(w) < 0)
		return IAC_ERR;
	for (size_t i = 0; i < ns; i++) {
		w->flow_ref[i] = LUA_NOREF;
		if (cfg->scenarios[i].has_flow) {
			iac_lt_push_flow(w->L, i);
			w->flow_ref[i] = luaL_ref(w->L, LUA_REGISTRYINDEX);
		} else if (prebuild(w, i) < 0) {
			return IAC_ERR;
		}
	}
	lt_exec_init(w);   /* last: the open model's first VUs need the flows */
	return 0;
}

/* ---- the loop ------------------------------------------------------- */

static int all_idle(iac_lt_worker *w)
{
	for (size_t i = 0; i < w->nvus; i++)
		if (w->vus[i]->busy)
			return 0;
	return 1;
}

/* When the loop must wake up: now when VUs are ready, else the first of
 * a timer, the next arrival, the next second (its figures are due) and
 * the next scan for timeouts. */
static uint64_t next_wake(iac_lt_worker *w)
{
	uint64_t wake = w->now + SCAN_US;
	if (w->nready)
		wake = w->now;
	if (w->nheap && w->heap[0].at < wake)
		wake = w->heap[0].at;
	if (w->open && !w->ending) {
		uint64_t a = lt_exec_next_arrival(w);
		if (a < wake)
			wake = a;
	}
	uint64_t next_sec = w->run->start_us + (uint64_t)(w->dsec + 1) * 1000000u;
	if (next_sec < wake)
		wake = next_sec;
	return wake;
}

/* The load phase is over (or the run stopped): nobody starts anew;
 * thinking users leave now, busy ones when their iteration ends. */
static void begin_ending(iac_lt_worker *w)
{
	w->ending = 1;
	for (size_t i = 0; i < w->nvus; i++) {
		lt_vu *vu = w->vus[i];
		if (!vu->busy && (vu->state == VU_TIMER || vu->state == VU_READY))
			lt_vu_stop(vu);
		else if (vu->deferred && vu->state == VU_TIMER)
			lt_vu_ready(vu);   /* a connect back-off ends with the load phase */
	}
}

/* After the events, timers and ready VUs: what the clock calls for. */
static void on_clock(iac_lt_worker *w, uint64_t load_end)
{
	iac_lt_run *run = w->run;
	/* arrivals due before the end still start, even when the loop
	 * wakes up after it */
	if (w->open && !w->ending && !run->stop)
		lt_exec_open(w);
	if (!w->ending && (w->now >= load_end || run->stop))
		begin_ending(w);
	if (!w->ending && !w->open && w->now - w->last_sched >= SCAN_US / 10) {
		w->last_sched = w->now;
		lt_exec_closed(w);
	}
	if (w->now - w->last_scan >= SCAN_US) {
		w->last_scan = w->now;
		lt_vu_scan_timeouts(w);
	}
	lt_tally_at(w);
}

static void worker_loop(iac_lt_worker *w)
{
	iac_lt_run *run = w->run;
	struct epoll_event evs[LT_MAX_EVENTS];
	uint64_t load_end = run->start_us + (uint64_t)(run->load_ms * 1e3);
	uint64_t hard_end = load_end + (uint64_t)(run->cfg->graceful_stop_ms * 1e3);
	w->now = lt_now_us();
	w->dsec = 0;
	w->last_scan = w->now;
	if (!w->open)
		lt_exec_closed(w);

	for (;;) {
		int n = lt_net_wait(w, evs, next_wake(w));
		w->now = lt_now_us();
		for (int i = 0; i < n; i++) {
			w->now = lt_now_us();   /* per event: latency to the microsecond */
			lt_vu_event(evs[i].data.ptr, evs[i].events);
		}
		w->now = lt_now_us();
		lt_vu_run_timers(w);
		lt_vu_run_ready(w);
		on_clock(w, load_end);
		if (w->ending && all_idle(w))
			break;
		if (w->ending && (w->now >= hard_end || run->stop >= 2))
			break;
	}
	lt_tally_flush(w, lt_sec_of(w, w->now) + 1);
}

void *lt_worker_main(void *arg)
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

/* ---- teardown ------------------------------------------------------- */

static void free_reqcache(iac_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key) {
			lt_prebuilt *p = m->slots[i].value;
			free(p->bytes);
			free(p);
		}
	iac_map_free(m);
}

void lt_worker_free(iac_lt_worker *w)
{
	const iac_lt_config *cfg = w->run->cfg;
	for (size_t i = 0; i < w->nvus; i++)
		lt_vu_free(w->vus[i]);
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
	free_reqcache(&w->reqcache);
	for (size_t i = 0; i < w->naddrs; i++) {
		free(w->addrs[i].hostport);
		free(w->addrs[i].host);
	}
	free(w->addrs);
	lt_tls_ctx_free(w);
	iac_lt_stats_free(&w->d);
	if (w->ep >= 0)
		close(w->ep);
	free(w);
}
