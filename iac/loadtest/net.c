/* lt_net: addresses, sockets and the wait for events (see engine_int.h).
 * The I/O on a connection, and what it means, is vu.c's.
 */
#include "iac/loadtest/engine_int.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iac/core/err.h"
#include "iac/core/util.h"

/* ---- addresses ------------------------------------------------------ */

char *lt_net_hostport(const char *host, int port, int tls)
{
	return port == (tls ? 443 : 80) ? iac_xstrdup(host) : iac_xasprintf("%s:%d", host, port);
}

int lt_net_addr(iac_lt_worker *w, const char *host, int port, int tls)
{
	char *hp = lt_net_hostport(host, port, tls);
	for (size_t i = 0; i < w->naddrs; i++)
		if (w->addrs[i].tls == tls && !strcmp(w->addrs[i].hostport, hp)) {
			free(hp);
			return (int)i;
		}
	if (tls && lt_tls_ctx(w) < 0) {
		free(hp);
		return -1;
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
	/* tls.server_name names the target (address 0, added first), whose
	 * URL may be an address; other URLs are verified by their own host */
	const char *sn = w->run->cfg->tls_server_name;
	a->host = iac_xstrdup(w->naddrs == 0 && sn ? sn : host);
	a->tls = tls;
	memcpy(&a->sa, res->ai_addr, res->ai_addrlen);
	a->salen = res->ai_addrlen;
	freeaddrinfo(res);
	return (int)w->naddrs++;
}

int lt_net_addr_for(iac_lt_worker *w, const char *url, const char **path)
{
	if (url[0] == '/') {
		*path = url;
		return 0;    /* the target is always address 0 */
	}
	int tls = iac_str_starts(url, "https://");
	if (!tls && !iac_str_starts(url, "http://"))
		return iac_err_set("URL '%s' must be a path starting with '/' or an http:// or https:// URL", url);
	const char *h = url + (tls ? 8 : 7);
	const char *slash = strchr(h, '/');
	*path = slash ? slash : "/";
	char *host, *p;
	int port;
	if (iac_lt_url_split(url, &host, &port, &p, NULL) < 0)
		return IAC_ERR;
	int a = lt_net_addr(w, host, port, tls);
	free(host);
	free(p);
	return a;
}

/* ---- sockets -------------------------------------------------------- */

enum iac_lt_errkind lt_net_connect(int *fd, const lt_addr *a)
{
	int s = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		return IAC_LT_E_OTHER;
	/* a request is written at once: Nagle would only hold its tail back */
	int one = 1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s, (const struct sockaddr *)&a->sa, a->salen) < 0 && errno != EINPROGRESS) {
		close(s);
		return IAC_LT_E_CONNECT;
	}
	*fd = s;
	return IAC_LT_NERR;
}

/* ---- the wait -------------------------------------------------------- */

/* When the thread has been waking up often (its sleeps were short), it
 * polls for up to POLL_MAX_US before sleeping, as the kernel's haltpoll
 * does for idle CPUs: a thread that sleeps between every pair of responses
 * makes the server's CPU send it a wake-up interrupt each time, which on a
 * virtual machine costs the server more than the request itself
 * (measured: 40k interrupts/s, 10-15 % of nginx's req/s). Sleeps longer
 * than POLL_SLEEP_US switch polling off until the load comes back, and so
 * does sharing the CPU with another busy process (polling would then take
 * CPU from the server under test); the time polled is counted so that the
 * saturation check can ignore it. */
#define POLL_MAX_US 50
#define POLL_SLEEP_US 200
#define POLL_YIELDED_US 250    /* sched_yield() took this long: someone else ran */
#define POLL_OFF_US 100000
#define POLL_RAN_US 5          /* longer than a bare sched_yield() */

static int wait_events(iac_lt_worker *w, struct epoll_event *evs, const struct timespec *ts)
{
	int n = epoll_pwait2(w->ep, evs, LT_MAX_EVENTS, ts, NULL);
	if (n < 0 && errno == ENOSYS)
		n = epoll_wait(w->ep, evs, LT_MAX_EVENTS, (int)((ts->tv_sec * 1000) + (ts->tv_nsec + 999999) / 1000000));
	return n;
}

/* Poll without sleeping until an event, `until`, or a neighbour wants the
 * CPU; returns the events and sets *t to the time it stopped. */
static int poll_events(iac_lt_worker *w, struct epoll_event *evs, uint64_t until, uint64_t *t)
{
	static const struct timespec zero = { 0, 0 };
	uint64_t t0 = *t, yielded = 0;
	int n = 0;
	while (n == 0 && *t < until) {
		n = wait_events(w, evs, &zero);
		if (n)
			break;
		/* a neighbour that wants this CPU (the server on the same
		 * core?) gets it, and polling stops for a while: it would
		 * take CPU from the very server being measured */
		uint64_t y = lt_now_us();
		sched_yield();
		*t = lt_now_us();
		if (*t - y > POLL_RAN_US)
			yielded += *t - y;   /* someone else ran: not a wait the load caused */
		if (*t - y > POLL_YIELDED_US) {
			w->poll_us = 0;
			w->poll_off_until = *t + POLL_OFF_US;
			break;
		}
	}
	atomic_fetch_add_explicit(&w->polled_us, *t - t0 - yielded, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->yielded_us, yielded, memory_order_relaxed);
	return n;
}

int lt_net_wait(iac_lt_worker *w, struct epoll_event *evs, uint64_t wake)
{
	struct timespec ts = { 0, 0 };
	if (wake <= w->now)
		return wait_events(w, evs, &ts);
	uint64_t d = wake - w->now;
	ts.tv_sec = (time_t)(d / 1000000u);
	ts.tv_nsec = (long)(d % 1000000u) * 1000;
	if (w->poll_us && !w->run->cfg->no_poll) {
		uint64_t t = lt_now_us(), until = t + w->poll_us;
		int n = poll_events(w, evs, until > wake ? wake : until, &t);
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
	int n = wait_events(w, evs, &ts);
	uint64_t t1 = lt_now_us();
	if (n > 0 && t1 - t0 <= POLL_SLEEP_US && t1 >= w->poll_off_until)
		w->poll_us = POLL_MAX_US;
	return n;
}
