/* lt_prom: the run's figures for Prometheus while the test runs, as an
 * exposition endpoint that Prometheus scrapes (`-metrics-listen
 * 127.0.0.1:9464`, GET /metrics, text format 0.0.4).
 *
 * Why scraped and not remote-write: remote-write needs protobuf and snappy
 * (two more dependencies, for one feature) and a receiver switched on with
 * --web.enable-remote-write-receiver; a scrape target is what every
 * Prometheus already does with node_exporter and haproxy's exporter, so the
 * load test's series sit next to the servers' on one dashboard with one more
 * scrape job. The cost: the resolution is the scrape interval (1 s is fine
 * for a load test), and the last figures must be scraped before iac exits
 * (-metrics-linger keeps the endpoint up after the run).
 *
 * The server is one thread: it takes run->mu for each scrape (the workers
 * take it once a second each), renders, and answers. Only 127.0.0.0/8 or an
 * address the user gives; nothing is secret in the figures.
 */
#ifndef IAC_LOADTEST_PROM_H
#define IAC_LOADTEST_PROM_H

#include "iac/core/buf.h"
#include "iac/loadtest/engine.h"

typedef struct iac_lt_prom iac_lt_prom;

/* Listen on "HOST:PORT" (an IPv4 or IPv6 address, or localhost) and serve
 * from a thread; until iac_lt_prom_attach, scrapes answer with no series.
 * 0, or -1 with a message ("cannot listen on '127.0.0.1:9464': ..."). */
int iac_lt_prom_start(iac_lt_prom **out, const char *addr);
/* Serve run's figures from now on (run started: its mutex exists). */
void iac_lt_prom_attach(iac_lt_prom *p, iac_lt_run *run);
/* Stop serving the run (before it is freed); later scrapes get the last
 * figures rendered. */
void iac_lt_prom_detach(iac_lt_prom *p);
/* Stop the thread, close the socket, free. NULL is fine. */
void iac_lt_prom_stop(iac_lt_prom *p);

/* The exposition text of the figures s of a run of cfg (vus running now,
 * elapsed seconds): a pure function, for tests. */
void iac_lt_prom_render(iac_buf *out, const iac_lt_config *cfg, const iac_lt_stats *s, int vus, double elapsed_s);

#endif
