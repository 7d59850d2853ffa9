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
#include "iac/loadtest/engine.h"
#include "iac/loadtest/observe.h"
#include "iac/loadtest/report.h"

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
	const char *json, *html, *ca_file;
} lt_flags;

static const iac_opt *options(lt_flags *f)
{
	static iac_opt opts[11];
	iac_opt o[] = {
		{ "duration", IAC_OPT_DURATION, &f->duration_ms, "length of the load phase (constant executors)" },
		{ "vus", IAC_OPT_INT, &f->vus, "virtual users (constant-vus) or max_vus (arrival-rate)" },
		{ "rate", IAC_OPT_DOUBLE, &f->rate, "iterations per second: switches a constant-vus run to constant-arrival-rate" },
		{ "threads", IAC_OPT_INT, &f->threads, "worker threads (default: the CPUs iac may use)" },
		{ "json", IAC_OPT_STRING, &f->json, "write the JSON report to FILE" },
		{ "html", IAC_OPT_STRING, &f->html, "write the HTML report to FILE" },
		{ "quiet", IAC_OPT_BOOL, &f->quiet, "no progress line and no summary; errors only" },
		{ "no-poll", IAC_OPT_BOOL, &f->no_poll, "sleep as soon as there is nothing to do (less client CPU, more wake-ups)" },
		{ "ca-file", IAC_OPT_STRING, &f->ca_file, "https: verify certificates against the CAs in FILE (PEM), not the system's" },
		{ "insecure-skip-tls-verify", IAC_OPT_BOOL, &f->insecure,
		  "https: do not verify certificates (k6's insecureSkipTLSVerify; marked in every report)" },
		{ NULL, 0, NULL, NULL },
	};
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
	       "1 error in the scenario or the tool. See docs/loadtest.md for the scenario language.\n");
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
	iac_lt_run run;
	int have_run;
	iac_lt_result res;
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
	if (iac_lt_scenario_load(&c->cfg, c->file) < 0)
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
	pthread_mutex_lock(&run->mu);
	iac_lt_second *x = iac_lt_engine_slot(run, w->next_sec);
	x->cpu_pct = cpu_pct;
	x->wait_pct = wait_pct;
	if (hap_ok) {
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
	iac_lt_hosts_close(c->hosts);
	iac_lt_result_free(&c->res);
	if (c->have_run)
		iac_lt_engine_free(&c->run);
	if (c->have_cfg)
		iac_lt_config_free(&c->cfg);
	iac_strlist_free(&c->pos);
}

int iac_loadtest_main(int argc, char **argv)
{
	lt_cmd c;
	int rc = 1;
	memset(&c, 0, sizeof(c));
	c.f.duration_ms = -1;
	c.f.vus = -1;
	c.f.rate = -1;

	if (lt_parse(&c, argc, argv) < 0 || lt_configure(&c) < 0 || lt_run(&c) < 0) {
		iac_log_error("%s", iac_err_last());
		goto done;
	}
	rc = lt_report(&c);

done:
	lt_free(&c);
	return rc;
}
