/* lt_engine internals shared by engine.c (threads, sockets, HTTP) and
 * vu_lua.c (the `u` object a flow sees). Not for other modules. */
#ifndef IAC_LOADTEST_ENGINE_INT_H
#define IAC_LOADTEST_ENGINE_INT_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include <lua.h>
#include <llhttp.h>

#include "iac/core/buf.h"
#include "iac/core/map.h"
#include "iac/loadtest/engine.h"

enum lt_vu_state {
	VU_OFF,          /* not running (closed model: above the target) */
	VU_IDLE,         /* open model: in the pool, waiting for an iteration */
	VU_READY,        /* queued to start its next iteration */
	VU_CONNECTING,
	VU_SENDING,      /* part of the request is still to be written */
	VU_WAITING,      /* request sent, response not complete */
	VU_TIMER,        /* thinking or u:sleep() */
	VU_BUSY,         /* between requests: running Lua or deciding what next */
};

typedef struct {
	char *hostport;  /* "host:port", the Host header */
	struct sockaddr_storage sa;
	socklen_t salen;
} lt_addr;

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
	int in_send;                /* inside lt_vu_request: the coroutine is running */
	int deferred;               /* 1 + the error kind of a request that failed in_send */
	int fd;
	int addr;                   /* w->addrs index the socket is connected to */
	int reused;                 /* the connection already carried a response */
	int retried;
	int got_bytes;              /* some response bytes arrived */
	int msg_done;
	llhttp_t parser;

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

struct iac_lt_worker {
	iac_lt_run *run;
	int id;
	pthread_t th;
	int started;
	atomic_long done_sec;       /* all figures of seconds below this are flushed */
	atomic_int active;          /* VUs running */
	atomic_int allocated;
	atomic_int finished;
	atomic_ullong polled_us;    /* time spent polling before sleeping (see poll_then_wait) */
	atomic_ullong yielded_us;   /* ... and in sched_yield() while polling */
	uint64_t poll_us;           /* current poll window, 0 = sleep at once */
	uint64_t poll_off_until;    /* no polling before this time (CPU shared) */

	int ep;
	lua_State *L;
	int *flow_ref;              /* per scenario; LUA_NOREF for plain ones */
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

/* engine.c, for vu_lua.c */
uint64_t lt_now_us(void);
int lt_addr_for(struct iac_lt_worker *w, const char *url, const char **path);
size_t lt_endpoint_for(struct iac_lt_worker *w, const char *method, const char *path, const char *name);
/* "User-Agent: ...\r\n" from the user_agent option (nothing when it is "") */
void lt_put_user_agent(iac_buf *b, const iac_lt_config *cfg);
/* Send vu->out as the next request to w->addrs[addr], recorded as endpoint ep. */
void lt_vu_request(lt_vu *vu, int addr, size_t ep);
/* The same with bytes that outlive the request (a prebuilt one). */
void lt_vu_request_raw(lt_vu *vu, const char *bytes, size_t len, int addr, size_t ep);
void lt_vu_sleep(lt_vu *vu, double ms);
uint64_t lt_rand(struct iac_lt_worker *w);
void lt_record_check(struct iac_lt_worker *w, const char *name, int ok);

/* vu_lua.c */
void lt_lua_setup(lua_State *L);
/* Create vu->co and vu->u_ref in w->L. */
void lt_lua_vu_init(lt_vu *vu);
/* Push the response of the finished request on vu->co; returns values pushed. */
int lt_lua_push_response(lt_vu *vu, int status, const char *error, double ms);

#endif
