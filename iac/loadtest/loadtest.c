/* loadtest: the `iac loadtest` command. Loads the scenario, applies the
 * flags, runs the engine while sampling the client's CPU and the server
 * side once a second, then judges and reports. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "iac/cli/commands.h"
#include "iac/core/args.h"
#include "iac/core/err.h"
#include "iac/core/log.h"
#include "iac/core/util.h"
#include "iac/loadtest/agent.h"
#include "iac/loadtest/capacity.h"
#include "iac/loadtest/engine.h"
#include "iac/loadtest/observe.h"
#include "iac/loadtest/prom.h"
#include "iac/loadtest/report.h"
#include "iac/loadtest/setup.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted++;
}

typedef struct {
	double duration_ms;
	int vus, threads, quiet, no_poll, insecure;
	double rate;
	const char *json, *html, *ca_file, *target;
	/* -find-capacity and its options (capacity search) */
	const char *find_capacity;
	double max_rate, cap_start, cap_step, cap_hold_ms, cap_precision;
	/* Prometheus exposition endpoint (prom.h) */
	const char *metrics_listen;
	double metrics_linger_ms;
	/* more than one machine of load (agent.h) */
	const char *agents, *agent_out;
} lt_flags;

static const iac_opt *options(lt_flags *f)
{
	static iac_opt opts[28];
	iac_opt o[] = {
		{ "duration", IAC_OPT_DURATION, &f->duration_ms, "length of the load phase (constant executors)" },
		{ "vus", IAC_OPT_INT, &f->vus, "virtual users (constant-vus) or max_vus (arrival-rate)" },
		{ "rate", IAC_OPT_DOUBLE, &f->rate, "iterations per second: switches a constant-vus run to constant-arrival-rate" },
		{ "threads", IAC_OPT_INT, &f->threads, "worker threads (default: the CPUs iac may use)" },
		{ "json", IAC_OPT_STRING, &f->json, "write the JSON report to FILE" },
		{ "html", IAC_OPT_STRING, &f->html, "write the HTML report to FILE" },
		{ "quiet", IAC_OPT_BOOL, &f->quiet, "no progress line and no summary; errors only" },
		{ "no-poll", IAC_OPT_BOOL, &f->no_poll, "sleep as soon as there is nothing to do (less client CPU, more wake-ups)" },
		{ "target", IAC_OPT_STRING, &f->target, "the URL relative paths go to, instead of the file's target" },
		{ "ca-file", IAC_OPT_STRING, &f->ca_file, "https: verify certificates against the CAs in FILE (PEM), not the system's" },
		{ "insecure-skip-tls-verify", IAC_OPT_BOOL, &f->insecure,
		  "https: do not verify certificates (k6's insecureSkipTLSVerify; marked in every report)" },
		{ "find-capacity", IAC_OPT_STRING, &f->find_capacity,
		  "search the highest arrival rate meeting COND ('p(99)<300ms'; several joined by ',')" },
		{ "max-rate", IAC_OPT_DOUBLE, &f->max_rate, "capacity search: highest rate tried, req/s (default: no limit)" },
		{ "capacity-start", IAC_OPT_DOUBLE, &f->cap_start, "capacity search: first rate, req/s (default 10)" },
		{ "capacity-step", IAC_OPT_DOUBLE, &f->cap_step,
		  "capacity search: req/s added per climbing step (default: double the rate)" },
		{ "capacity-hold", IAC_OPT_DURATION, &f->cap_hold_ms, "capacity search: how long each rate is held (default 10s)" },
		{ "capacity-precision", IAC_OPT_DOUBLE, &f->cap_precision,
		  "capacity search: stop bisecting within this % of the capacity (default 5)" },
		{ "metrics-listen", IAC_OPT_STRING, &f->metrics_listen,
		  "serve the figures for Prometheus to scrape at http://HOST:PORT/metrics while the test runs" },
		{ "metrics-linger", IAC_OPT_DURATION, &f->metrics_linger_ms,
		  "keep serving the final figures this long after the run (a last scrape)" },
		{ "agents", IAC_OPT_STRING, &f->agents,
		  "run the scenario on these hosts over SSH (user@address,...) and merge their figures losslessly" },
		{ "agent-out", IAC_OPT_STRING, &f->agent_out, "an agent's side: write the run's raw figures to FILE" },
		{ NULL, 0, NULL, NULL },
	};
	_Static_assert(sizeof(o) <= sizeof(opts), "opts[] is too small for the options");
	memcpy(opts, o, sizeof(o));
	return opts;
}

void iac_loadtest_help(void)
{
	lt_flags f;
	printf("\nusage: iac loadtest FILE [flags]\n\n"
	       "Runs the Lua scenario in FILE against an HTTP/1.1 service and reports\n"
	       "throughput, latency percentiles, errors, checks and thresholds.\n\nflags:\n");
	iac_args_usage(options(&f));
	printf("\nexit codes: 0 all thresholds passed, 99 a threshold failed, 98 at least\n"
	       "max_failed (default 50%%) of the requests failed (the target did not answer),\n"
	       "1 error in the scenario or the tool; with -find-capacity, 97 when even the start\n"
	       "rate fails the condition. See docs/loadtest.md for the scenario language.\n");
}

static int cpus_allowed(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

static int apply_flags(iac_lt_config *cfg, const lt_flags *f)
{
	int ramp = cfg->executor == IAC_LT_RAMPING_VUS || cfg->executor == IAC_LT_RAMPING_RATE;
	cfg->no_poll = f->no_poll;
	if (f->ca_file) {
		free(cfg->tls_ca_file);
		cfg->tls_ca_file = iac_xstrdup(f->ca_file);
	}
	if (f->insecure)
		cfg->tls_insecure = 1;
	if (f->rate >= 0) {
		if (f->rate <= 0)
			return iac_err_set("flag '-rate' must be above 0");
		if (cfg->executor == IAC_LT_RAMPING_VUS || cfg->executor == IAC_LT_RAMPING_RATE)
			return iac_err_set("flag '-rate' does not apply to executor '%s'; change the stages instead",
					   iac_lt_executor_name(cfg->executor));
		if (cfg->executor == IAC_LT_CONSTANT_VUS) {
			/* like wrk2's -R: the same scenario at a fixed arrival rate */
			int vus = cfg->vus;
			cfg->executor = IAC_LT_CONSTANT_RATE;
			cfg->max_vus = vus > 100 ? vus : 100;
			cfg->pre_vus = vus < cfg->max_vus ? vus : cfg->max_vus;
		}
		cfg->rate = f->rate;
		cfg->time_unit_ms = 1e3;
	}
	if (f->duration_ms >= 0) {
		if (ramp)
			return iac_err_set("flag '-duration' does not apply to executor '%s'; change the stages instead",
					   iac_lt_executor_name(cfg->executor));
		if (f->duration_ms <= 0)
			return iac_err_set("flag '-duration' must be above 0");
		cfg->duration_ms = f->duration_ms;
	}
	if (f->vus >= 0) {
		if (f->vus < 1)
			return iac_err_set("flag '-vus' must be at least 1");
		if (cfg->executor == IAC_LT_RAMPING_VUS)
			return iac_err_set("flag '-vus' does not apply to executor 'ramping-vus'; change the stages instead");
		if (cfg->executor == IAC_LT_CONSTANT_VUS) {
			cfg->vus = f->vus;
		} else {
			cfg->max_vus = f->vus;
			if (cfg->pre_vus > f->vus)
				cfg->pre_vus = f->vus;
		}
	}
	return 0;
}

static void raise_nofile(void)
{
	/* every VU holds a socket: 10,000 VUs need more than the usual 1024 */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

/* Seconds this process's threads spent runnable but waiting for a CPU
 * (schedstat's run_delay): other processes taking the cores delay every
 * request, whatever our own CPU use says. NaN when not available. */
static double runq_wait_seconds(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return NAN;
	double total = 0;
	int any = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[300];
		snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		unsigned long long run, wait;
		if (fscanf(f, "%llu %llu", &run, &wait) == 2) {
			total += (double)wait / 1e9;
			any = 1;
		}
		fclose(f);
	}
	closedir(d);
	return any ? total : NAN;
}

static void sleep_ms(double ms)
{
	struct timespec ts = { (time_t)(ms / 1e3), (long)(fmod(ms, 1e3) * 1e6) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !interrupted)
		;
}

/* abort_on_fail: evaluated once a second on the figures so far. */
static int should_abort(iac_lt_config *cfg, iac_lt_run *run, double elapsed_s)
{
	int any = 0;
	for (size_t i = 0; i < cfg->nthresholds; i++)
		any |= cfg->thresholds[i].abort_on_fail;
	if (!any)
		return 0;
	int abort_now = 0;
	pthread_mutex_lock(&run->mu);
	for (size_t i = 0; i < cfg->nthresholds; i++) {
		iac_lt_threshold *t = &cfg->thresholds[i];
		if (!t->abort_on_fail || elapsed_s * 1e3 < t->delay_abort_ms)
			continue;
		iac_lt_thresholds_eval(t, 1, &run->total, elapsed_s);
		/* no data yet is not a reason to stop */
		if (t->have_value && !t->ok) {
			abort_now = 1;
			iac_log_warn("threshold '%s' failed with abort_on_fail at t=%.0fs: stopping", t->key, elapsed_s);
		}
	}
	pthread_mutex_unlock(&run->mu);
	return abort_now;
}

/* One `iac loadtest` invocation, in the order it is filled: the command
 * line as given, the scenario with the flags applied, then the run and its
 * result. lt_free releases whatever was set. */
typedef struct {
	lt_flags f;              /* -1 / NULL: not given */
	iac_strlist pos;
	const char *file;        /* the scenario file (in pos) */
	iac_lt_config cfg;
	int have_cfg;
	int cores;               /* CPUs iac may run on */
	int threads;             /* worker threads */
	iac_lt_hosts *hosts;     /* observe.hosts, or NULL */
	iac_lt_caches *caches;   /* observe.cache, or NULL */
	iac_lt_dbs *dbs;         /* observe.db, or NULL */
	iac_strlist servers;     /* HAProxy's servers, in the order first seen */
	iac_lt_run run;
	int have_run;
	iac_lt_result res;
	iac_lt_prom *prom;       /* -metrics-listen, or NULL */
} lt_cmd;

/* The flags and the one scenario file. 0, or -1 with a message. */
static int lt_parse(lt_cmd *c, int argc, char **argv)
{
	if (iac_args_parse(options(&c->f), "loadtest", argc, argv, &c->pos) < 0)
		return IAC_ERR;
	if (c->pos.n != 1)
		return iac_err_set("%s; usage: iac loadtest FILE [flags]",
				   c->pos.n ? "only one scenario file is accepted" : "missing the scenario file");
	c->file = c->pos.items[0];
	return 0;
}

/* The flag, or one thread per usable CPU; but never more threads than the
 * run can have VUs: a thread without a VU of its own would drop its share
 * of arrivals. */
static int thread_count(const iac_lt_config *cfg, int flag, int cores)
{
	int threads = flag > 0 ? flag : cores;
	int most_vus = cfg->vus;
	if (cfg->executor == IAC_LT_CONSTANT_RATE || cfg->executor == IAC_LT_RAMPING_RATE)
		most_vus = cfg->max_vus;
	else
		for (size_t i = 0; i < cfg->nstages; i++)
			if (cfg->stages[i].target > most_vus)
				most_vus = (int)cfg->stages[i].target;
	if (most_vus >= 1 && threads > most_vus)
		threads = most_vus;
	return threads;
}

/* Load the scenario, apply the flags and size the run. 0 or -1. Errors in
 * the scenario are reported before those in the flags. */
static int lt_configure(lt_cmd *c)
{
	if (iac_lt_scenario_load_target(&c->cfg, c->file, c->f.target) < 0)
		return IAC_ERR;
	c->have_cfg = 1;
	if (apply_flags(&c->cfg, &c->f) < 0)
		return IAC_ERR;
	if (c->f.threads < 0)
		return iac_err_set("flag '-threads' must be at least 1");
	c->cores = cpus_allowed();
	c->threads = thread_count(&c->cfg, c->f.threads, c->cores);
	return 0;
}

/* Open the server-side observers, catch SIGINT (the previous handler goes
 * to old_sa) and start the engine. 0, or -1 with a message and SIGINT
 * restored. */
static int lt_start(lt_cmd *c, struct sigaction *old_sa)
{
	raise_nofile();
	if (c->cfg.hosts.n)
		c->hosts = iac_lt_hosts_open(&c->cfg.hosts, c->cfg.ssh_key, c->cfg.known_hosts);
	if (c->cfg.caches.n && !c->caches)   /* the baseline: figures are what the run did */
		c->caches = iac_lt_caches_open(&c->cfg.caches, c->cfg.haproxy);
	if (c->cfg.dbs.n && !c->dbs)
		c->dbs = iac_lt_dbs_open(&c->cfg.dbs);
	if (c->cfg.haproxy) {
		/* one probe up front: a wrong address is worth a warning before
		 * the run rather than a report without figures after it */
		iac_lt_hap_sample hs;
		if (iac_lt_haproxy_sample(&hs, c->cfg.haproxy, 500) < 0)
			iac_log_warn("%s; the run continues without HAProxy figures", iac_err_last());
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, old_sa);
	interrupted = 0;

	iac_time_rfc3339(c->res.started, sizeof(c->res.started));
	int rc = iac_lt_engine_start(&c->run, &c->cfg, c->threads);
	c->have_run = 1;   /* freed even when the start failed half-way */
	if (rc == 0)
		iac_lt_prom_attach(c->prom, &c->run);
	if (rc < 0)
		sigaction(SIGINT, old_sa, NULL);
	return rc < 0 ? IAC_ERR : 0;
}

/* What the once-a-second sampling carries from one second to the next. */
typedef struct {
	double cpu_prev, wall_prev, wait_prev;   /* totals when the last second ended */
	long next_sec;                           /* the second not sampled yet */
	int aborted;                             /* stopped by abort_on_fail */
	int vus_max;                             /* most VUs active at once, as polled */
} lt_watch;

/* Each server's response time under its index in c->servers (a server
 * first seen now gets the next one, while there is room). */
static void record_servers(lt_cmd *c, iac_lt_second *x, const iac_lt_hap_sample *hs)
{
	for (int i = 0; i < hs->nservers; i++) {
		size_t k = 0;
		while (k < c->servers.n && strcmp(c->servers.items[k], hs->servers[i].name))
			k++;
		if (k == c->servers.n && k < IAC_LT_HAP_SERVERS)
			iac_strlist_push(&c->servers, hs->servers[i].name);
		if (k < IAC_LT_HAP_SERVERS)
			x->srv_rtime_ms[k] = hs->servers[i].rtime_ms;
	}
}

/* Second w->next_sec is over: record the load generator's CPU and CPU
 * wait over it, and the server side now. */
static void sample_second(lt_cmd *c, lt_watch *w, double el)
{
	iac_lt_run *run = &c->run;
	/* CPU spent polling for events (instead of sleeping) is idle time */
	double cpu_now = cpu_seconds() - iac_lt_engine_polled_s(run);
	int usable = c->threads < c->cores ? c->threads : c->cores;
	double cpu_pct = 100.0 * (cpu_now - w->cpu_prev) / ((el - w->wall_prev) * usable);
	double wait_now = runq_wait_seconds() - iac_lt_engine_yielded_s(run);
	double wait_pct = 100.0 * (wait_now - w->wait_prev) / ((el - w->wall_prev) * c->threads);
	if (wait_pct < 0)
		wait_pct = NAN;   /* workers that ended took their counters with them */
	w->wait_prev = wait_now;
	w->cpu_prev = cpu_now;
	w->wall_prev = el;
	iac_lt_hap_sample hs;
	int hap_ok = c->cfg.haproxy && iac_lt_haproxy_sample(&hs, c->cfg.haproxy, 300) == 0;
	double *hc = NULL, *hm = NULL;
	if (c->cfg.hosts.n) {
		hc = iac_xmalloc(c->cfg.hosts.n * sizeof(double));
		hm = iac_xmalloc(c->cfg.hosts.n * sizeof(double));
		iac_lt_hosts_sample(c->hosts, hc, hm);
	}
	iac_lt_caches_sample(c->caches, w->next_sec);
	iac_lt_dbs_sample(c->dbs, w->next_sec);
	pthread_mutex_lock(&run->mu);
	iac_lt_second *x = iac_lt_engine_slot(run, w->next_sec);
	x->cpu_pct = cpu_pct;
	x->wait_pct = wait_pct;
	if (hap_ok) {
		record_servers(c, x, &hs);
		x->hap_qcur = hs.qcur;
		x->hap_scur = hs.scur;
		x->hap_rtime_ms = hs.rtime_ms;
		x->hap_rate = hs.rate;
	}
	free(x->host_cpu);
	free(x->host_mem);
	x->host_cpu = hc;
	x->host_mem = hm;
	pthread_mutex_unlock(&run->mu);
	w->next_sec++;
}

/* The progress line, from the last whole second. */
static void show_progress(iac_lt_run *run, size_t whole, double el, int vus)
{
	pthread_mutex_lock(&run->mu);
	const iac_lt_second *l = &run->secs[whole - 1];
	char line[200], p99[32] = "-";
	if (!isnan(l->p99_ms))   /* NaN: no response in that second */
		snprintf(p99, sizeof(p99), "%.2fms", l->p99_ms);
	snprintf(line, sizeof(line), "\r  %5.0fs  vus %-6d rps %-9llu errors %-7llu p99 %s   ", el, vus,
		 (unsigned long long)l->requests, (unsigned long long)run->total.failed, p99);
	pthread_mutex_unlock(&run->mu);
	iac_log_write(stderr, line);
}

/* Until the workers are done: poll every 50 ms for VUs and Ctrl-C, and
 * once a second sample, finalise seconds, check abort_on_fail and show
 * progress. */
static void watch(lt_cmd *c, lt_watch *w, int progress)
{
	iac_lt_run *run = &c->run;
	w->cpu_prev = cpu_seconds() - iac_lt_engine_polled_s(run);
	w->wall_prev = iac_lt_engine_elapsed(run);
	w->wait_prev = runq_wait_seconds() - iac_lt_engine_yielded_s(run);
	while (iac_lt_engine_running(run)) {
		sleep_ms(50);
		double el = iac_lt_engine_elapsed(run);
		int vus = iac_lt_engine_active_vus(run);
		if (vus > w->vus_max)
			w->vus_max = vus;
		if (interrupted && run->stop < 1 + (interrupted > 1)) {
			run->stop = 1 + (interrupted > 1);   /* a second Ctrl-C drops in-flight work */
		}
		if (el < (double)(w->next_sec + 1))
			continue;
		sample_second(c, w, el);
		size_t nfinal = iac_lt_engine_collect(run, 0);
		if (!w->aborted && !run->stop && should_abort(&c->cfg, run, el)) {
			w->aborted = 1;
			run->stop = 1;
		}
		size_t whole = nfinal < (size_t)w->next_sec ? nfinal : (size_t)w->next_sec;   /* not a partial tail */
		if (progress && whole)
			show_progress(run, whole, el, vus);
	}
}

/* The seconds worth reporting, once every worker has flushed: fixes up the
 * per-second VU counts and sets res.last_sec_fraction. */
static size_t final_seconds(lt_cmd *c, double elapsed)
{
	iac_lt_run *run = &c->run;
	size_t nsecs = iac_lt_engine_collect(run, 1);
	/* a drain tail with nothing in it is not part of the run's story */
	while (nsecs > 1 && !run->secs[nsecs - 1].requests && !run->secs[nsecs - 1].iterations &&
	       !run->secs[nsecs - 1].dropped)
		nsecs--;
	/* the last second is usually partial: its rate is per second it covered */
	double covered = elapsed - (double)(nsecs - 1);
	c->res.last_sec_fraction = covered > 0.05 && covered < 1 ? covered : 1;
	for (size_t i = 0; i < nsecs; i++)
		if (run->secs[i].vus < 0)
			run->secs[i].vus = 0;   /* no worker had a VU running then */
	return nsecs;
}

/* The result as the reports see it; it borrows from c. */
static void fill_result(lt_cmd *c, const lt_watch *w, double elapsed, size_t nsecs)
{
	iac_lt_result *res = &c->res;
	if (c->run.vus_max < w->vus_max)
		c->run.vus_max = w->vus_max;
	res->cfg = &c->cfg;
	res->total = &c->run.total;
	res->secs = c->run.secs;
	res->nsecs = nsecs;
	res->elapsed_s = elapsed;
	res->threads = c->threads;
	res->cores = c->threads < c->cores ? c->threads : c->cores;
	res->vus_max = c->run.vus_max;
	res->aborted = w->aborted;
	res->interrupted = interrupted > 0;
	res->haproxy = c->cfg.haproxy;
	res->hosts = &c->cfg.hosts;
	res->servers = &c->servers;
	res->caches = c->caches;
	res->dbs = c->dbs;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	res->rss_mib = (double)ru.ru_maxrss / 1024.0;
}

/* Run the load to its end (or Ctrl-C, or abort_on_fail) and fill c->res.
 * 0, or -1 with a message when the engine could not start. */
static int lt_run(lt_cmd *c)
{
	struct sigaction old_sa;
	if (lt_start(c, &old_sa) < 0)
		return IAC_ERR;
	int progress = !c->f.quiet && isatty(STDERR_FILENO) && !getenv("CI");
	lt_watch w;
	memset(&w, 0, sizeof(w));
	watch(c, &w, progress);
	double elapsed = iac_lt_engine_elapsed(&c->run);
	iac_lt_engine_join(&c->run);
	iac_lt_caches_finish(c->caches);   /* the window ends after the last response */
	sigaction(SIGINT, &old_sa, NULL);
	if (progress)
		iac_log_write(stderr, "\r\033[K");
	size_t nsecs = final_seconds(c, elapsed);
	fill_result(c, &w, elapsed, nsecs);
	return 0;
}

/* Judge the result, evaluate the thresholds, decide the verdict and write
 * the reports. Returns the exit code: a report that cannot be written is an
 * error (1) even when the run passed. */
static int lt_report(lt_cmd *c)
{
	iac_lt_result *res = &c->res;
	iac_lt_result_judge(res);
	size_t failed = iac_lt_thresholds_eval(c->cfg.thresholds, c->cfg.nthresholds, &c->run.total, res->elapsed_s);
	iac_lt_result_decide(res, failed);
	if (!c->f.quiet)
		iac_lt_report_summary(stdout, res);
	if (res->failed_msg)   /* on stderr too: CI logs show it even with -quiet */
		iac_log_error("%s", res->failed_msg);
	int rc = res->exit_code;
	if (c->f.json && iac_lt_report_write_json(res, c->f.json) < 0) {
		iac_log_error("%s", iac_err_last());
		rc = 1;
	}
	if (c->f.html && iac_lt_report_write_html(res, c->f.html) < 0) {
		iac_log_error("%s", iac_err_last());
		rc = 1;
	}
	return rc;
}

static void lt_free(lt_cmd *c)
{
	iac_lt_prom_detach(c->prom);   /* before the run it reads is freed */
	iac_lt_prom_stop(c->prom);
	iac_lt_hosts_close(c->hosts);
	iac_lt_caches_close(c->caches);
	iac_lt_dbs_close(c->dbs);
	iac_lt_result_free(&c->res);
	if (c->have_run)
		iac_lt_engine_free(&c->run);
	if (c->have_cfg)
		iac_lt_config_free(&c->cfg);
	iac_strlist_free(&c->pos);
	iac_strlist_free(&c->servers);
}

/* ---- capacity search (-find-capacity) ------------------------------- */

/* The search's settings from the flags, checked. 0 or -1. */
static int cap_plan(iac_lt_cap_plan *p, const lt_flags *f)
{
	if (f->rate >= 0)
		return iac_err_set("flag '-rate' does not apply with '-find-capacity': the search sets the rate; "
				   "use -capacity-start and -max-rate");
	if (f->duration_ms >= 0)
		return iac_err_set("flag '-duration' does not apply with '-find-capacity'; use -capacity-hold");
	if (f->html)
		return iac_err_set("flag '-html' is not supported with '-find-capacity' yet; use -json");
	p->start = !isnan(f->cap_start) ? f->cap_start : 10;
	p->step = !isnan(f->cap_step) ? f->cap_step : 0;
	p->max_rate = !isnan(f->max_rate) ? f->max_rate : 0;
	p->hold_s = !isnan(f->cap_hold_ms) ? f->cap_hold_ms / 1e3 : 10;
	p->precision = (!isnan(f->cap_precision) ? f->cap_precision : 5) / 100.0;
	p->max_steps = 40;
	if (p->start <= 0)
		return iac_err_set("flag '-capacity-start' must be above 0");
	if (!isnan(f->cap_step) && f->cap_step <= 0)
		return iac_err_set("flag '-capacity-step' must be above 0 (leave it out to double the rate)");
	if (!isnan(f->max_rate) && (f->max_rate <= 0 || p->max_rate < p->start))
		return iac_err_set("flag '-max-rate' must be at least the start rate (%g)", p->start);
	if (p->hold_s < 1)
		return iac_err_set("flag '-capacity-hold' must be at least 1s");
	if (p->precision <= 0 || p->precision >= 1)
		return iac_err_set("flag '-capacity-precision' must be above 0 and below 100 (percent)");
	return 0;
}

/* Every step runs the scenario at a constant arrival rate: the open model,
 * so a slow target cannot slow the load down and hide. The scenario's own
 * VU limits stay; -vus sets max_vus. */
static void cap_configure(lt_cmd *c)
{
	iac_lt_config *cfg = &c->cfg;
	if (cfg->executor != IAC_LT_CONSTANT_RATE && cfg->executor != IAC_LT_RAMPING_RATE) {
		int vus = c->f.vus > 0 ? c->f.vus : cfg->executor == IAC_LT_CONSTANT_VUS ? cfg->vus : 0;
		cfg->max_vus = c->f.vus > 0 ? vus : vus > 100 ? vus : 100;
		cfg->pre_vus = cfg->max_vus < 10 ? cfg->max_vus : 10;
	}
	cfg->executor = IAC_LT_CONSTANT_RATE;
	cfg->time_unit_ms = 1e3;
	c->threads = thread_count(cfg, c->f.threads, c->cores);
}

/* Why the step failed, from its judged result; NULL when it passed. */
static char *cap_why(const lt_cmd *c, const iac_lt_threshold *ts, size_t nts, const iac_lt_cap_step *s)
{
	iac_buf b = IAC_BUF_INIT;
	if (c->res.failed_msg)
		iac_buf_printf(&b, "%s", c->res.failed_msg);
	for (size_t i = 0; i < nts; i++) {
		if (ts[i].ok)
			continue;
		if (b.len)
			iac_buf_printf(&b, "; ");
		const char *unit = iac_lt_metric_unit(ts[i].metric);
		if (!ts[i].have_value)
			iac_buf_printf(&b, "%s: no data", ts[i].key);
		else if (!strcmp(unit, "%"))
			iac_buf_printf(&b, "%s %.2f%% (%s)", ts[i].key, ts[i].value * 100, ts[i].conds[0]);
		else
			iac_buf_printf(&b, "%s %.2f%s (%s)", ts[i].key, ts[i].value, unit, ts[i].conds[0]);
	}
	if (s->gen_short)
		iac_buf_printf(&b, "%sachieved %.1f of %g req/s (%llu dropped iterations)", b.len ? "; " : "",
				s->achieved, s->rate, s->dropped);
	if (!b.len) {
		iac_buf_free(&b);
		return NULL;
	}
	char *m = iac_xstrdup(iac_buf_cstr(&b));
	iac_buf_free(&b);
	return m;
}

/* Server-side peaks of the step, from its seconds. */
static void cap_observed(iac_lt_cap_step *s, const lt_cmd *c)
{
	s->hap_qmax = NAN;
	s->host_cpu_max = NAN;
	for (size_t i = 0; i < c->res.nsecs; i++) {
		const iac_lt_second *x = &c->res.secs[i];
		if (!isnan(x->hap_qcur) && (isnan(s->hap_qmax) || x->hap_qcur > s->hap_qmax))
			s->hap_qmax = x->hap_qcur;
		for (size_t h = 0; x->host_cpu && h < c->cfg.hosts.n; h++)
			if (!isnan(x->host_cpu[h]) && (isnan(s->host_cpu_max) || x->host_cpu[h] > s->host_cpu_max)) {
				s->host_cpu_max = x->host_cpu[h];
				free(s->host);
				s->host = iac_xstrdup(c->cfg.hosts.items[h]);
			}
	}
}

/* Run one rate for the hold and judge it on its own figures. 0, or -1
 * when the engine could not start. */
static int cap_step(lt_cmd *c, iac_lt_cap_step *s, double rate, const iac_lt_cap_plan *p, iac_lt_threshold *ts,
		    size_t nts)
{
	memset(s, 0, sizeof(*s));
	s->rate = rate;
	c->cfg.rate = rate;
	c->cfg.duration_ms = p->hold_s * 1e3;
	memset(&c->run, 0, sizeof(c->run));
	memset(&c->res, 0, sizeof(c->res));
	c->have_run = 0;
	int rc = lt_run(c);
	if (rc == 0) {
		iac_lt_result_judge(&c->res);
		size_t failed = iac_lt_thresholds_eval(ts, nts, &c->run.total, p->hold_s);
		iac_lt_result_decide(&c->res, failed);
		const iac_lt_stats *t = &c->run.total;
		s->requests = t->requests;
		s->failed = t->failed;
		s->iterations = t->iterations;
		s->dropped = t->dropped;
		s->achieved = (double)t->iterations / p->hold_s;
		s->p50_ms = t->hist.count ? (double)iac_lt_hist_percentile(&t->hist, 50) / 1e3 : NAN;
		s->p99_ms = t->hist.count ? (double)iac_lt_hist_percentile(&t->hist, 99) / 1e3 : NAN;
		s->metric = ts[0].value;
		s->thresholds_ok = failed == 0;
		s->target_down = c->res.failed_msg != NULL;
		s->client_cpu_max = c->res.cpu_max_pct;
		s->max_vus = c->cfg.max_vus;
		/* the rate was not produced: iterations dropped for want of a
		 * free VU, or the generator's CPU ran out (the run is invalid) */
		s->gen_short = (double)t->dropped > 0.02 * (double)(t->iterations + t->dropped) ||
			       (c->res.cpu_max_pct >= 90 && !c->res.valid);
		s->elapsed_s = c->res.elapsed_s;
		s->valid = c->res.valid;
		if (c->res.invalid.n)
			s->invalid = iac_xstrdup(c->res.invalid.items[0]);
		cap_observed(s, c);
		s->pass = s->thresholds_ok && !s->target_down && !s->gen_short;
		s->why = cap_why(c, ts, nts, s);
	}
	iac_lt_hosts_close(c->hosts);
	c->hosts = NULL;
	iac_lt_result_free(&c->res);
	memset(&c->res, 0, sizeof(c->res));
	if (c->have_run)
		iac_lt_engine_free(&c->run);
	c->have_run = 0;
	return rc;
}

static void cap_show_step(size_t i, const iac_lt_cap_step *s)
{
	char p99[32] = "-";
	if (!isnan(s->p99_ms))
		snprintf(p99, sizeof(p99), "%.2fms", s->p99_ms);
	double er = s->requests ? 100.0 * (double)s->failed / (double)s->requests : 0;
	char line[1200];
	snprintf(line, sizeof(line), "  step %-2zu rate %7g/s  achieved %8.1f/s  p99 %-10s errors %llu (%.2f%%)  dropped %llu  %s%s%s%s\n",
		 i + 1, s->rate, s->achieved, p99, s->failed, er, s->dropped, s->pass ? "pass" : "FAIL",
		 s->why ? ": " : "", s->why ? s->why : "",
		 s->valid ? "" : " (figures not valid: see invalid_reason in -json)");
	iac_log_write(stdout, line);
}

/* The report: every step and the conclusion. 0 or -1. */
static int cap_write_json(const lt_cmd *c, const iac_lt_cap_plan *p, const iac_lt_cap_step *steps, size_t n,
			  const iac_lt_cap_result *r, const char *started, int exit_code)
{
	json_t *o = json_object();
	json_object_set_new(o, "version", json_integer(1));
	json_object_set_new(o, "scenario_file", json_string(c->file));
	json_object_set_new(o, "started", json_string(started));
	json_object_set_new(o, "executor", json_string("constant-arrival-rate"));
	json_object_set_new(o, "threads", json_integer(c->threads));
	json_object_set_new(o, "max_vus", json_integer(c->cfg.max_vus));
	json_object_set_new(o, "capacity", iac_lt_capacity_json(p, c->f.find_capacity, steps, n, r));
	json_object_set_new(o, "exit_code", json_integer(exit_code));
	char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	size_t len = strlen(text);
	text = iac_xrealloc(text, len + 2);
	text[len] = '\n';
	int rc = iac_file_write_atomic(c->f.json, text, len + 1, 0644);
	free(text);
	if (rc < 0)
		iac_err_prefix("cannot write the JSON report '%s'", c->f.json);
	return rc;
}

/* The search thresholds: the -find-capacity conditions, and, unless they
 * name the failed-request rate themselves, http_req_failed < 1 %: a target
 * that answers fast with 503s has not got the capacity. */
static int cap_thresholds(iac_lt_threshold **ts, size_t *nts, const char *expr)
{
	if (iac_lt_capacity_parse(ts, nts, expr) < 0)
		return IAC_ERR;
	for (size_t i = 0; i < *nts; i++)
		if (!(*ts)[i].endpoint &&
		    ((*ts)[i].metric == IAC_LT_M_ERROR_RATE || (*ts)[i].metric == IAC_LT_M_HTTP_REQ_FAILED))
			return 0;
	*ts = iac_xrealloc(*ts, (*nts + 1) * sizeof(**ts));
	iac_lt_threshold *t = &(*ts)[*nts];
	memset(t, 0, sizeof(*t));
	(*nts)++;
	if (iac_lt_threshold_parse_key(t, "http_req_failed") < 0 || iac_lt_threshold_add_cond(t, "<1%") < 0)
		return IAC_ERR;
	return 0;
}

/* `iac loadtest FILE -find-capacity COND`: climb, bisect, conclude.
 * Returns the exit code. */
static void cap_show_plan(const lt_cmd *c, const iac_lt_cap_plan *p)
{
	char line[600], how[64] = "doubling";
	if (p->step > 0)
		snprintf(how, sizeof(how), "adding %g", p->step);
	snprintf(line, sizeof(line), "capacity search: %s, each rate held %gs, from %g req/s %s, bisecting to %g %%\n",
		 c->f.find_capacity, p->hold_s, p->start, how, p->precision * 100);
	iac_log_write(stdout, line);
}

/* The search's conclusion on stdout (or why none); the exit code: 0 when
 * a capacity was found. */
static int cap_report(const lt_cmd *c, const iac_lt_cap_plan *p, const iac_lt_cap_step *steps, size_t n,
		      const iac_lt_cap_result *r)
{
	double total = 0;
	for (size_t i = 0; i < n; i++)
		total += steps[i].elapsed_s;
	if (r->found) {
		char knee[64];
		if (isnan(r->knee))
			snprintf(knee, sizeof(knee), "no knee up to %g req/s", isnan(r->lowest_fail) ? r->capacity : r->lowest_fail);
		else
			snprintf(knee, sizeof(knee), "knee at %g req/s", r->knee);
		char *line = iac_xasprintf("capacity: %s%g req/s (%s held for %gs)%s; %s; first to saturate: %s\n",
					   r->capped ? ">= " : "", r->capacity, c->f.find_capacity, p->hold_s,
					   r->capped ? ", the highest rate tried" : "", knee, r->first);
		if (!c->f.quiet) {
			char sum[200];
			snprintf(sum, sizeof(sum), "search: %zu steps in %.1fs\n", n, total);
			iac_log_write(stdout, sum);
			iac_log_write(stdout, line);
		}
		free(line);
		if (r->generator)
			iac_log_warn("the load generator saturated first: the capacity above is iac's, not the target's");
		return 0;
	}
	if (n) {
		iac_log_error("no capacity found: even the start rate %g req/s fails: %s%s", steps[0].rate,
			      steps[0].why ? steps[0].why : "?",
			      steps[0].target_down ? "" : "; lower -capacity-start or relax the condition");
		return steps[0].target_down ? IAC_LT_EXIT_FAILED : IAC_LT_EXIT_NO_CAPACITY;
	}
	return 1;
}

static int lt_capacity(lt_cmd *c)
{
	iac_lt_cap_plan p;
	iac_lt_threshold *ts = NULL;
	size_t nts = 0;
	iac_lt_cap_step *steps = NULL;
	size_t n = 0;
	iac_lt_cap_result r;
	memset(&r, 0, sizeof(r));
	int rc = 1;
	char started[32];
	iac_time_rfc3339(started, sizeof(started));
	if (cap_plan(&p, &c->f) < 0 || cap_thresholds(&ts, &nts, c->f.find_capacity) < 0) {
		iac_log_error("%s", iac_err_last());
		goto done;
	}
	cap_configure(c);
	/* the scenario's own thresholds (and their abort_on_fail) are not the
	 * search's: the steps are judged on the search conditions only */
	iac_lt_threshold *own = c->cfg.thresholds;
	size_t nown = c->cfg.nthresholds;
	c->cfg.thresholds = NULL;
	c->cfg.nthresholds = 0;
	if (!c->f.quiet)
		cap_show_plan(c, &p);
	int stopped = 0;
	double rate;
	while (!stopped && iac_lt_capacity_next(&rate, &p, steps, n)) {
		steps = iac_xrealloc(steps, (n + 1) * sizeof(*steps));
		if (cap_step(c, &steps[n], rate, &p, ts, nts) < 0) {
			iac_log_error("%s", iac_err_last());
			iac_lt_cap_step_free(&steps[n]);
			goto restore;
		}
		n++;
		if (!c->f.quiet)
			cap_show_step(n - 1, &steps[n - 1]);
		if (interrupted) {
			iac_log_warn("interrupted: the search stops at step %zu", n);
			stopped = 1;
		} else if (!steps[n - 1].pass) {
			/* an overloaded target closes the step's connections and
			 * works off what it held: the next rate starts on a calm one */
			sleep_ms(1000);
			stopped = interrupted > 0;   /* the next step would forget it */
		}
	}
	iac_lt_capacity_conclude(&r, steps, n, c->cfg.haproxy || c->cfg.hosts.n);
	rc = cap_report(c, &p, steps, n, &r);
	if (c->f.json && cap_write_json(c, &p, steps, n, &r, started, rc) < 0) {
		iac_log_error("%s", iac_err_last());
		rc = 1;
	}
restore:
	c->cfg.thresholds = own;
	c->cfg.nthresholds = nown;
done:
	for (size_t i = 0; i < n; i++)
		iac_lt_cap_step_free(&steps[i]);
	free(steps);
	for (size_t i = 0; i < nts; i++)
		iac_lt_threshold_free(&ts[i]);
	free(ts);
	iac_lt_cap_result_free(&r);
	return rc;
}

/* -agent-out: the run's totals, losslessly, for the controller to merge. */
static int write_raw(const lt_cmd *c)
{
	const iac_lt_result *r = &c->res;
	json_t *raw = iac_lt_raw_json(&c->run.total, r->elapsed_s, r->vus_max, r->valid, r->cpu_max_pct,
				      r->invalid.n ? r->invalid.items[0] : NULL);
	int rc = json_dump_file(raw, c->f.agent_out, JSON_COMPACT);
	json_decref(raw);
	return rc < 0 ? iac_err_set("cannot write '%s'", c->f.agent_out) : 0;
}

/* -agents: the scenario on every agent at once, their figures merged into
 * one result (no per-second series: each agent keeps its own), judged and
 * reported as a run's. Returns the exit code. */
/* The command line's overrides, passed on to every agent. */
static void agents_extra(iac_strlist *extra, const lt_cmd *c)
{
	char num[64];
	if (c->f.duration_ms >= 0) {
		snprintf(num, sizeof(num), "%.0fms", c->f.duration_ms);
		iac_strlist_push(extra, "-duration");
		iac_strlist_push(extra, num);
	}
	if (c->f.vus >= 0) {
		snprintf(num, sizeof(num), "%d", c->f.vus);
		iac_strlist_push(extra, "-vus");
		iac_strlist_push(extra, num);
	}
	if (c->f.target) {
		iac_strlist_push(extra, "-target");
		iac_strlist_push(extra, c->f.target);
	}
}

/* One agent's line in the result's notes, or why the run is not valid. */
static void agent_note(iac_lt_result *res, const iac_lt_agent *a)
{
	char line[1024];
	if (!a->ok) {
		snprintf(line, sizeof(line), "agent '%s' failed: %s", a->name, a->error ? a->error : "no figures");
		iac_strlist_push(&res->invalid, line);
		res->valid = 0;
		return;
	}
	if (a->cpu_max_pct > res->cpu_max_pct)   /* the busiest agent's CPU is the client's figure */
		res->cpu_max_pct = a->cpu_max_pct;
	snprintf(line, sizeof(line), "agent '%s': %.1f s, %d VUs, CPU up to %.0f%%%s%s", a->name, a->elapsed_s,
		 a->vus_max, a->cpu_max_pct, a->valid ? "" : "; not valid: ", a->valid ? "" : a->why ? a->why : "?");
	iac_strlist_push(&res->notes, line);
	if (!a->valid) {
		snprintf(line, sizeof(line), "agent '%s' was not valid: %s", a->name, a->why ? a->why : "?");
		iac_strlist_push(&res->invalid, line);
		res->valid = 0;
	}
}

static int lt_agents(lt_cmd *c)
{
	iac_strlist names = { 0 }, extra = { 0 };
	char *key = NULL, *kh = NULL;
	if (iac_lt_is_selector(c->f.agents)) {
		if (iac_lt_agents_select(&names, &key, &kh, c->f.agents, ".") < 0) {
			iac_log_error("%s", iac_err_last());
			iac_strlist_free(&names);
			return 1;
		}
	} else {
		char *list = iac_xstrdup(c->f.agents);
		for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
			iac_strlist_push(&names, t);
		free(list);
	}
	agents_extra(&extra, c);
	iac_lt_agent *a = NULL;
	iac_time_rfc3339(c->res.started, sizeof(c->res.started));
	/* the scenario's observe settings first, else the topology's ssh provider */
	int rc = iac_lt_agents_run(&a, &names, c->file, c->cfg.ssh_key ? c->cfg.ssh_key : key,
				   c->cfg.known_hosts ? c->cfg.known_hosts : kh, &extra);
	iac_lt_stats_init(&c->run.total);
	iac_lt_result *res = &c->res;
	double el = 0;
	int vus = 0;
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		if (a[i].ok && iac_lt_raw_merge(&c->run.total, a[i].raw) < 0) {
			a[i].ok = 0;
			a[i].error = iac_xstrdup(iac_err_last());
		}
		if (a[i].ok) {
			el = a[i].elapsed_s > el ? a[i].elapsed_s : el;
			vus += a[i].vus_max;
		}
	}
	if (rc < 0) {
		iac_log_error("%s", iac_err_last());
		rc = 1;
		goto done;
	}
	res->cfg = &c->cfg;
	res->total = &c->run.total;
	res->elapsed_s = el;
	res->threads = (int)names.n;
	res->cores = (int)names.n;
	res->vus_max = vus;
	iac_lt_result_judge(res);
	for (size_t i = 0; i < names.n; i++)
		agent_note(res, &a[i]);
	size_t failed = iac_lt_thresholds_eval(c->cfg.thresholds, c->cfg.nthresholds, &c->run.total, el);
	iac_lt_result_decide(res, failed);
	if (!c->f.quiet)
		iac_lt_report_summary(stdout, res);
	rc = res->exit_code;
	if (c->f.json && iac_lt_report_write_json(res, c->f.json) < 0) {
		iac_log_error("%s", iac_err_last());
		rc = 1;
	}
done:
	iac_lt_stats_free(&c->run.total);
	iac_lt_agents_free(a, names.n);
	iac_strlist_free(&names);
	iac_strlist_free(&extra);
	free(key);
	free(kh);
	return rc;
}

int iac_loadtest_main(int argc, char **argv)
{
	lt_cmd c;
	int rc = 1;
	memset(&c, 0, sizeof(c));
	c.f.duration_ms = -1;
	c.f.vus = -1;
	c.f.rate = -1;
	/* NAN: not given (any number a user types, negative included, is checked) */
	c.f.max_rate = c.f.cap_start = c.f.cap_step = c.f.cap_hold_ms = c.f.cap_precision = NAN;

	if (lt_parse(&c, argc, argv) < 0 || lt_configure(&c) < 0) {
		iac_log_error("%s", iac_err_last());
		goto done;
	}
	if (c.f.find_capacity && c.f.metrics_listen) {
		iac_log_error("flag '-metrics-listen' does not apply with '-find-capacity' (each step is its own run)");
		goto done;
	}
	if (c.f.agents) {
		rc = lt_agents(&c);
		goto done;
	}
	if (c.f.find_capacity) {
		rc = lt_capacity(&c);
		goto done;
	}
	if (!isnan(c.f.max_rate) || !isnan(c.f.cap_start) || !isnan(c.f.cap_step) || !isnan(c.f.cap_hold_ms) ||
	    !isnan(c.f.cap_precision)) {
		iac_log_error("flags '-max-rate' and '-capacity-*' only apply with '-find-capacity COND'");
		goto done;
	}
	if (c.f.metrics_listen && iac_lt_prom_start(&c.prom, c.f.metrics_listen) < 0) {
		iac_log_error("%s", iac_err_last());
		goto done;
	}
	if (iac_lt_setup_run(&c.cfg) < 0 || lt_run(&c) < 0) {
		iac_log_error("%s", iac_err_last());
		goto done;
	}
	rc = lt_report(&c);
	if (c.f.agent_out && write_raw(&c) < 0) {
		iac_log_error("%s", iac_err_last());
		rc = 1;
	}
	if (iac_lt_teardown_run(&c.cfg) < 0) {
		iac_log_error("%s", iac_err_last());
		rc = rc ? rc : 1;
	}
	if (c.prom && c.f.metrics_linger_ms > 0) {
		iac_lt_prom_detach(c.prom);
		sleep_ms(c.f.metrics_linger_ms);
	}

done:
	lt_free(&c);
	return rc;
}
