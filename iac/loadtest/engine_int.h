/* lt_engine internals: what the files of the load generator share. Not for
 * other modules (engine.h is the engine's public side).
 *
 * The files, each calling only those below it, so that no two of them call
 * each other (a flow's Lua side, in particular, never calls back into the
 * loop that runs it):
 *
 *   engine.c   the run: start, join, collect and free the workers (engine.h)
 *   worker.c   one worker thread: its setup, its event loop, its teardown
 *   exec.c     executors: how many VUs run when (closed model) and when
 *              iterations arrive (open model)
 *   vu.c       a virtual user: its connection, its requests and responses,
 *              its iterations; resumes its flow's coroutine
 *   vu_lua.c   what a flow sees: the `u` object and the responses
 *   http.c     request bytes and the llhttp parser's settings
 *   tls.c      https: the worker's SSL_CTX, a connection's non-blocking
 *              handshake, reads and writes, its session for resumption
 *   net.c      addresses, sockets, the wait for events
 *   tally.c    a worker's figures, handed to the run once a second
 *
 * Everything here belongs to one worker thread and is touched by that
 * thread only, except the atomics in iac_lt_worker (read by the main
 * thread) and what tally.c hands over under run->mu.
 */
#ifndef IAC_LOADTEST_ENGINE_INT_H
#define IAC_LOADTEST_ENGINE_INT_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include <lua.h>
#include <llhttp.h>

#include "iac/core/buf.h"
#include "iac/core/map.h"
#include "iac/loadtest/engine.h"

/* OpenSSL's types, without its headers in every file (tls.c has them) */
struct ssl_st;
struct ssl_ctx_st;
struct ssl_session_st;

enum lt_vu_state {
	VU_OFF,          /* not running (closed model: above the target) */
	VU_IDLE,         /* open model: in the pool, waiting for an iteration */
	VU_READY,        /* queued to start its next iteration */
	VU_CONNECTING,
	VU_HANDSHAKE,    /* https: connected, TLS handshake under way */
	VU_SENDING,      /* part of the request is still to be written */
	VU_WAITING,      /* request sent, response not complete */
	VU_TIMER,        /* thinking or u:sleep() */
	VU_BUSY,         /* between requests: running Lua or deciding what next */
};

/* What a flow yielded for: vu_lua.c sets it just before lua_yield() and
 * vu.c acts on it once lua_resume() has returned, so the Lua side never
 * calls into the loop. */
enum lt_ask {
	LT_ASK_NONE,
	LT_ASK_REQUEST,  /* send vu->req (vu->reqlen bytes) to vu->want_addr as endpoint vu->ep */
	LT_ASK_SLEEP,    /* resume after vu->ask_ms */
};

typedef struct {
	char *hostport;  /* "host:port", the Host header (no port when the scheme's own) */
	char *host;      /* https: SNI and the name verified: the URL's host (the target: tls.server_name if set) */
	int tls;         /* https */
	struct sockaddr_storage sa;
	socklen_t salen;
} lt_addr;

#define LT_TLS_SESSIONS 4      /* https sessions a VU keeps, one per address */
#define LT_MAX_TAGS 16         /* tags of one request or sample */

typedef struct lt_vu {
	struct iac_lt_worker *w;
	uint32_t idx;               /* in w->vus */
	uint32_t id;                /* unique in the run */
	int scen;
	enum lt_vu_state state;
	int busy;                   /* inside an iteration */
	int stopping;               /* stop at the end of this iteration */
	int in_lua;                 /* the coroutine is suspended in a u: call */
	int queued;                 /* in w->ready */
	int did_io;                 /* this iteration waited for something */
	int in_send;                /* sending what a flow asked for, still inside resume() */
	int deferred;               /* 1 + the error kind of a failed request the loop hands over */
	uint32_t backoff_ms;        /* connect failures in a row: the last back-off step, 0 after a response */
	enum lt_ask ask;
	double ask_ms;              /* LT_ASK_SLEEP: how long */
	int fd;
	int addr;                   /* w->addrs index the socket is connected to */
	int reused;                 /* the connection already carried a response */
	int retried;
	int got_bytes;              /* some response bytes arrived */
	int msg_done;
	llhttp_t parser;
	struct ssl_st *ssl;         /* https: the connection's TLS, NULL on plain ones */
	/* the last session each of a few addresses gave, for the VU's next
	 * connection there (a flow may alternate between hosts) */
	struct ssl_session_st *sess[LT_TLS_SESSIONS];
	int sess_addr[LT_TLS_SESSIONS];
	unsigned sess_next;         /* the slot a new address takes */
	uint64_t t_hs;              /* the handshake started (us) */

	uint64_t t_start;           /* latency is measured from here (us) */
	uint64_t t_sent;            /* for the timeout */
	uint64_t intended;          /* open model: the iteration's intended start, 0 once used */
	uint64_t timer_gen;
	size_t ep;                  /* endpoint index in w->d */
	int want_addr;              /* address of the request in flight */

	const char *req;            /* the request in flight (prebuilt or out.ptr) */
	size_t reqlen, woff;
	iac_buf out;                /* a flow's request bytes */
	iac_buf hbuf, bbuf;         /* a flow's response headers and body */

	lua_State *co;
	int co_ref, u_ref;
	uint64_t iteration;

	/* the request's tags (k6's): the method, the user's tags (strings of
	 * the options table on the suspended coroutine's stack, valid until
	 * it resumes), the group the flow is in ("::a::b", empty outside) */
	const char *method;
	char method_buf[16];
	const char *tagk[LT_MAX_TAGS], *tagv[LT_MAX_TAGS];
	int ntags;
	iac_buf group;
	iac_buf cookies;            /* the VU's cookie jar: "a=1; b=2" as sent back */
} lt_vu;

typedef struct {
	uint64_t at;
	lt_vu *vu;
	uint64_t gen;
} lt_timer;

/* The bytes of a request built once and sent again as they are. */
typedef struct {
	char *bytes;
	size_t len;
	int addr;
	size_t ep;
} lt_prebuilt;

#define LT_REQCACHE_MAX 256   /* distinct URLs kept per thread */
#define LT_MAX_EVENTS 512     /* epoll events taken per wait */

struct iac_lt_worker {
	iac_lt_run *run;
	int id;
	pthread_t th;
	int started;
	atomic_long done_sec;       /* all figures of seconds below this are flushed */
	atomic_int active;          /* VUs running */
	int active_peak;            /* most VUs running at once in second dsec (lt_active_add) */
	atomic_int allocated;
	atomic_int finished;
	atomic_ullong polled_us;    /* time spent polling before sleeping (see lt_net_wait) */
	atomic_ullong yielded_us;   /* ... and in sched_yield() while polling */
	uint64_t poll_us;           /* current poll window, 0 = sleep at once */
	uint64_t poll_off_until;    /* no polling before this time (CPU shared) */

	int ep;
	struct ssl_ctx_st *tls;     /* https: this thread's SSL_CTX, made with the first https address */
	lua_State *L;
	int *flow_ref;              /* per scenario; LUA_NOREF for plain ones */
	int data_ref;               /* setup()'s data in L, LUA_NOREF without a setup() */
	char **pre;                 /* prebuilt request per plain scenario */
	size_t *prelen;
	int *pre_addr;
	size_t *pre_ep;
	double *scen_weight;
	uint64_t *scen_count;
	uint64_t scen_total;

	lt_addr *addrs;
	size_t naddrs;

	lt_vu **vus;
	size_t nvus;
	lt_vu **idle;               /* open model pool */
	size_t nidle;
	lt_vu **ready;
	size_t nready, capready;
	lt_timer *heap;
	size_t nheap, capheap;

	iac_lt_stats d;             /* this second's figures */
	long dsec;

	uint64_t rng;
	int open;                   /* arrival-rate executor */
	int target;                 /* closed model: VUs wanted on this thread */
	int cap;                    /* open model: VUs allowed on this thread */
	uint64_t next_k;            /* open model: next global iteration index */
	uint64_t now;               /* cached monotonic time, us */
	iac_map reqcache;           /* url -> lt_prebuilt: option-less requests a flow repeats */
	uint64_t last_scan, last_sched;
	int ending;                 /* past the load phase: no new iterations */
	char rbuf[65536];
};

/* ---- shared by all: inline, they run for every request ------------- */

static inline uint64_t lt_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* xorshift64*: fast, per thread, good enough for picking paths */
static inline uint64_t lt_rand(struct iac_lt_worker *w)
{
	uint64_t x = w->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	w->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, 1), from the top 53 bits. */
static inline double lt_rand01(struct iac_lt_worker *w)
{
	return (double)(lt_rand(w) >> 11) / 9007199254740992.0;
}

/* One more VU running. The per-second VU figure is the peak, not the count
 * at the second's end: a VU that ran for part of a second (a short run, the
 * open model's busy VUs) must not show as 0. */
static inline void lt_active_add(struct iac_lt_worker *w)
{
	int a = atomic_fetch_add(&w->active, 1) + 1;
	if (a > w->active_peak)
		w->active_peak = a;
}

/* ---- worker.c, for engine.c ---------------------------------------- */

/* The thread: set up, meet the others at run->barrier twice (set up; t = 0
 * known), run the loop, mark itself finished. A setup error goes to
 * run->fatal and the loop does not run. */
void *lt_worker_main(void *arg);
/* Close and free everything the worker holds (the thread has ended). */
void lt_worker_free(struct iac_lt_worker *w);

/* ---- exec.c, for worker.c ------------------------------------------ */

/* Executor state (w->open; the open model's cap and pre-allocated VUs).
 * After the flows are loaded: VUs made here get their coroutines. */
void lt_exec_init(struct iac_lt_worker *w);
/* Closed model: bring this thread's running VUs to the target for now,
 * starting new ones, or stopping the newest (a busy one after its
 * iteration). */
void lt_exec_closed(struct iac_lt_worker *w);
/* Open model: start every iteration due by w->now; one with no free VU
 * is counted as dropped. */
void lt_exec_open(struct iac_lt_worker *w);
/* Open model: when this thread's next iteration is due (us, monotonic),
 * UINT64_MAX when past the load phase. */
uint64_t lt_exec_next_arrival(struct iac_lt_worker *w);

/* ---- vu.c, for worker.c and exec.c --------------------------------- */

/* A new VU (VU_OFF) running scenario scen; w owns it. */
lt_vu *lt_vu_new(struct iac_lt_worker *w, int scen);
/* Give vu scenario scen (a flow gets its coroutine on first use). */
void lt_vu_assign(lt_vu *vu, int scen);
/* Queue vu to start its next iteration from the loop. */
void lt_vu_ready(lt_vu *vu);
/* Start an iteration now: send the prebuilt request or resume the flow. */
void lt_vu_start(lt_vu *vu);
/* Stop vu: close its connection, forget its timer, count it inactive. */
void lt_vu_stop(lt_vu *vu);
/* epoll reported ev on vu's socket. */
void lt_vu_event(lt_vu *vu, uint32_t ev);
/* Fire the timers due by w->now. */
void lt_vu_run_timers(struct iac_lt_worker *w);
/* Run the VUs queued before this call (not those they queue). */
void lt_vu_run_ready(struct iac_lt_worker *w);
/* Fail requests older than the timeout option. */
void lt_vu_scan_timeouts(struct iac_lt_worker *w);
/* Close vu's socket and free it (at teardown). */
void lt_vu_free(lt_vu *vu);

/* ---- vu_lua.c, for vu.c and worker.c ------------------------------- */

/* Register the `u` and response metatables in a worker's Lua state. */
void lt_lua_setup(lua_State *L);
/* Create vu->co and vu->u_ref in w->L. */
void lt_lua_vu_init(lt_vu *vu);
/* Push setup()'s data (JSON text) on L: a copy of plain data in this
 * state. 0, or -1 with a message. */
int lt_lua_push_data(lua_State *L, const char *json);
/* The value at idx as JSON text (malloc'd; raises a Lua error for what
 * JSON cannot hold: functions, userdata). */
char *lt_lua_to_json(lua_State *L, int idx);
/* Add vu's scenario's tags (the scenario's tags option) to the request's,
 * after the flow's own (those win: a tag is looked up first to last). */
void lt_vu_scenario_tags(lt_vu *vu);
/* The response's Set-Cookie headers (vu->hbuf) into vu->cookies. */
void lt_cookies_update(lt_vu *vu);
/* Push the response of the finished request on vu->co; returns values pushed. */
int lt_lua_push_response(lt_vu *vu, int status, const char *error, double ms);

/* ---- http.c -------------------------------------------------------- */

/* Make the parser settings (once per process; before any lt_http_settings). */
void lt_http_init(void);
/* Capture settings keep a response's headers and body in vu->hbuf and
 * vu->bbuf for a flow; plain ones only find the response's end. Both
 * pause the parser there (one response per request) and set vu->msg_done;
 * parser.data is the VU. */
const llhttp_settings_t *lt_http_settings(int capture);
/* Begin a request: "METHOD path HTTP/1.1" and the Host header. The caller
 * adds its own headers, then ends it with lt_http_end. */
void lt_http_head(iac_buf *b, const char *method, const char *path, const char *hostport);
/* End a request: the User-Agent option's header unless the caller sent
 * one (has_ua), Content-Length when there is a body or the method is not
 * GET, the blank line, the body (when body is not NULL). */
void lt_http_end(iac_buf *b, const iac_lt_config *cfg, int has_ua, const char *method, const char *body,
		 size_t blen);

/* ---- net.c --------------------------------------------------------- */

/* Index of host:port (https when tls) in w->addrs, resolved and added
 * when new (an https one makes w->tls when it is the first). -1 with a
 * message when it does not resolve or TLS cannot be set up. */
int lt_net_addr(struct iac_lt_worker *w, const char *host, int port, int tls);
/* "host:port", or "host" when port is the scheme's own (the Host header). */
char *lt_net_hostport(const char *host, int port, int tls);
/* The address a request URL goes to: a path ("/x") goes to the target
 * (address 0); an http:// or https:// URL is resolved. *path points into url. */
int lt_net_addr_for(struct iac_lt_worker *w, const char *url, const char **path);
/* Start a non-blocking connect to a. IAC_LT_NERR and *fd, or the error
 * kind (nothing left open). */
enum iac_lt_errkind lt_net_connect(int *fd, const lt_addr *a);
/* Wait on w->ep for events until `wake` (us, monotonic; w->now is the
 * present), polling first when the load is busy (see net.c for why).
 * Returns the number of events in evs (LT_MAX_EVENTS at most), 0 at
 * `wake`, or -1 as epoll_wait() does. */
int lt_net_wait(struct iac_lt_worker *w, struct epoll_event *evs, uint64_t wake);

/* ---- tls.c --------------------------------------------------------- */

/* What a step of TLS work needs next. */
enum lt_tls_rc {
	LT_TLS_DONE,         /* the handshake is complete */
	LT_TLS_WANT_READ,    /* wait until the socket is readable */
	LT_TLS_WANT_WRITE,   /* ... writable */
	LT_TLS_FAILED,       /* counted as IAC_LT_E_TLS with its message (lt_tally_tls_failure) */
};

/* This thread's SSL_CTX (w->tls), once: verification against the system
 * store or cfg->tls_ca_file unless cfg->tls_insecure, TLS 1.2 at least,
 * client sessions handed to their VU. 0, or -1 with a message. */
int lt_tls_ctx(struct iac_lt_worker *w);
void lt_tls_ctx_free(struct iac_lt_worker *w);
/* Put TLS on vu's connected socket to address a (SNI, the name verified,
 * the VU's last session to a when it has one) and start the handshake. */
enum lt_tls_rc lt_tls_start(lt_vu *vu, const lt_addr *a);
/* Go on with the handshake. */
enum lt_tls_rc lt_tls_handshake(lt_vu *vu);
/* read()/send() on vu->ssl: bytes, 0 at the end of the stream, or -1
 * with errno EAGAIN (TLS wants the socket; the loop's level-triggered
 * epoll calls back) or EPIPE (failed: counted as a TLS failure when the
 * cause is TLS, *tls_failed set). */
ssize_t lt_tls_read(lt_vu *vu, void *buf, size_t n, int *tls_failed);
ssize_t lt_tls_write(lt_vu *vu, const void *buf, size_t n, int *tls_failed);
/* Free vu->ssl; clean: the stream ended well (close_notify sent, the
 * session stays resumable). */
void lt_tls_close(lt_vu *vu, int clean);
/* Free vu's kept session (at teardown). */
void lt_tls_vu_free(lt_vu *vu);

/* ---- tally.c ------------------------------------------------------- */

/* The second of the run time t falls in. */
static inline long lt_sec_of(struct iac_lt_worker *w, uint64_t t)
{
	uint64_t s = w->run->start_us;
	return t > s ? (long)((t - s) / 1000000u) : 0;
}

/* Hand w->d (the figures of second w->dsec) to the run and start second
 * now_sec. The only place a worker takes run->mu. */
void lt_tally_flush(struct iac_lt_worker *w, long now_sec);

/* Before recording anything: a new second flushes the last one first. */
static inline void lt_tally_at(struct iac_lt_worker *w)
{
	long s = lt_sec_of(w, w->now);
	if (s != w->dsec)
		lt_tally_flush(w, s);
}

/* The slot of second s, created when new; run->mu held. */
iac_lt_second *lt_tally_slot(iac_lt_run *run, long s);
/* A response (any status) to vu's request, us after it started. */
void lt_tally_response(lt_vu *vu, int status, uint64_t us);
/* vu's request failed below HTTP. */
void lt_tally_failure(lt_vu *vu, enum iac_lt_errkind k);
/* A TLS handshake of vu's ended after us (resumed: an abbreviated one). */
void lt_tally_tls(lt_vu *vu, uint64_t us, int resumed);
/* Why vu's TLS failed (the failure itself goes through vu.c's vu_fail). */
void lt_tally_tls_error(lt_vu *vu, const char *msg);
/* u:check(ok, name). */
void lt_tally_check(struct iac_lt_worker *w, const char *name, int ok);
/* A sample v of custom metric `name` (type) from vu, with the tags its
 * add() gave (n pairs) and vu's scenario and group: into the metric and
 * into every sub-metric of it whose tags match. */
void lt_tally_metric(lt_vu *vu, const char *name, int type, double v, const char *const *k, const char *const *val,
		     int n);
/* vu's group `path` ("::a::b") took ms. */
void lt_tally_group(lt_vu *vu, const char *path, double ms);
/* The endpoint a request is counted under: its name, else the method and
 * the path without its query. */
size_t lt_tally_endpoint(struct iac_lt_worker *w, const char *method, const char *path, const char *name);

#endif
