/* lt_engine: the run (see engine.h): it parses the target, starts the
 * workers (worker.c) and lets them go at the same instant, then reads what
 * they hand over (tally.c) until it joins and frees them.
 */
#include "iac/loadtest/engine_int.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/log.h"
#include "iac/core/util.h"

int iac_lt_url_split(const char *url, char **host, int *port, char **path, int *tls)
{
	int https = iac_str_starts(url, "https://");
	if (!https && !iac_str_starts(url, "http://"))
		return iac_err_set("URL '%s' must start with http:// or https://", url);
	const char *h = url + (https ? 8 : 7);
	const char *slash = strchr(h, '/');
	size_t hl = slash ? (size_t)(slash - h) : strlen(h);
	char *hp = iac_xstrndup(h, hl);
	char *colon = strrchr(hp, ':');
	int p = https ? 443 : 80;
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
	if (tls)
		*tls = https;
	return 0;
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
			if (cfg->scenarios[i].url && cfg->scenarios[i].url[0] != '/')
				t = cfg->scenarios[i].url;
	if (!t)
		return iac_err_set("%s: no target: add target \"http://host:port\"", cfg->file);
	char *path;
	if (iac_lt_url_split(t, &run->host, &run->port, &path, &run->tls) < 0)
		return IAC_ERR;
	size_t pl = strlen(path);
	while (pl && path[pl - 1] == '/')
		path[--pl] = 0;
	run->base_path = path;   /* relative paths are appended to it */
	run->hostport = lt_net_hostport(run->host, run->port, run->tls);

	lt_http_init();
	pthread_barrier_init(&run->barrier, NULL, (unsigned)run->nthreads + 1);
	run->workers = iac_xcalloc((size_t)run->nthreads, sizeof(*run->workers));
	for (int i = 0; i < run->nthreads; i++) {
		iac_lt_worker *w = iac_xcalloc(1, sizeof(*w));
		w->run = run;
		w->id = i;
		w->ep = -1;
		run->workers[i] = w;
		if (pthread_create(&w->th, NULL, lt_worker_main, w) != 0) {
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

/* Second x is complete: its endpoints' percentiles, then their
 * histograms go (26 KiB each). */
static void final_endpoints(iac_lt_second *x)
{
	for (int i = 0; i < IAC_LT_CHART_EPS; i++) {
		iac_lt_hist *h = x->ep_hist[i];
		if (!h)
			continue;
		x->ep_n[i] = h->count;
		x->ep_p50[i] = (double)iac_lt_hist_percentile(h, 50) / 1e3;
		x->ep_p90[i] = (double)iac_lt_hist_percentile(h, 90) / 1e3;
		x->ep_p99[i] = (double)iac_lt_hist_percentile(h, 99) / 1e3;
		free(h);
		x->ep_hist[i] = NULL;
	}
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
			final_endpoints(x);
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
	return lt_tally_slot(run, s);
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

void iac_lt_engine_free(iac_lt_run *run)
{
	int had_barrier = run->workers != NULL;   /* made just before the workers */
	for (int i = 0; run->workers && i < run->nthreads; i++)
		if (run->workers[i])
			lt_worker_free(run->workers[i]);
	free(run->workers);
	for (size_t s = 0; s < run->nsecs; s++) {
		free(run->secs[s].hist);
		for (int i = 0; i < IAC_LT_CHART_EPS; i++)
			free(run->secs[s].ep_hist[i]);
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
