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
	int vus, threads, quiet, no_poll;
	double rate;
	const char *json, *html;
} lt_flags;

static const iac_opt *options(lt_flags *f)
{
	static iac_opt opts[9];
	iac_opt o[] = {
		{ "duration", IAC_OPT_DURATION, &f->duration_ms, "length of the load phase (constant executors)" },
		{ "vus", IAC_OPT_INT, &f->vus, "virtual users (constant-vus) or max_vus (arrival-rate)" },
		{ "rate", IAC_OPT_DOUBLE, &f->rate, "iterations per second: switches a constant-vus run to constant-arrival-rate" },
		{ "threads", IAC_OPT_INT, &f->threads, "worker threads (default: the CPUs iac may use)" },
		{ "json", IAC_OPT_STRING, &f->json, "write the JSON report to FILE" },
		{ "html", IAC_OPT_STRING, &f->html, "write the HTML report to FILE" },
		{ "quiet", IAC_OPT_BOOL, &f->quiet, "no progress line and no summary; errors only" },
		{ "no-poll", IAC_OPT_BOOL, &f->no_poll, "sleep as soon as there is nothing to do (less client CPU, more wake-ups)" },
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
	printf("\nexit codes: 0 all thresholds passed, 99 a threshold failed, 1 error in the\n"
	       "scenario or the tool. See docs/loadtest.md for the scenario language.\n");
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

int iac_loadtest_main(int argc, char **argv)
{
	lt_flags f = { .duration_ms = -1, .vus = -1, .rate = -1 };
	iac_strlist pos = { NULL, 0 };
	iac_lt_config cfg;
	iac_lt_run run;
	iac_lt_result res;
	iac_lt_hosts *hosts = NULL;
	int rc = 1, have_cfg = 0, have_run = 0;
	memset(&res, 0, sizeof(res));

	if (iac_args_parse(options(&f), "loadtest", argc, argv, &pos) < 0) {
		iac_log_error("%s", iac_err_last());
		goto done;
	}
	if (pos.n != 1) {
		iac_log_error("%s; usage: iac loadtest FILE [flags]",
			      pos.n ? "only one scenario file is accepted" : "missing the scenario file");
		goto done;
	}
	if (iac_lt_scenario_load(&cfg, pos.items[0]) < 0) {
		iac_log_error("%s", iac_err_last());
		goto done;
	}
	have_cfg = 1;
	if (apply_flags(&cfg, &f) < 0) {
		iac_log_error("%s", iac_err_last());
		goto done;
	}
	int cores = cpus_allowed();
	int threads = f.threads > 0 ? f.threads : cores;
	/* a thread without a VU of its own would drop its share of arrivals */
	int most_vus = cfg.vus;
	if (cfg.executor == IAC_LT_CONSTANT_RATE || cfg.executor == IAC_LT_RAMPING_RATE)
		most_vus = cfg.max_vus;
	else
		for (size_t i = 0; i < cfg.nstages; i++)
			if (cfg.stages[i].target > most_vus)
				most_vus = (int)cfg.stages[i].target;
	if (most_vus >= 1 && threads > most_vus)
		threads = most_vus;
	if (f.threads < 0) {
		iac_log_error("flag '-threads' must be at least 1");
		goto done;
	}
	raise_nofile();
	if (cfg.hosts.n)
		hosts = iac_lt_hosts_open(&cfg.hosts, cfg.ssh_key, cfg.known_hosts);
	if (cfg.haproxy) {
		iac_lt_hap_sample hs;
		if (iac_lt_haproxy_sample(&hs, cfg.haproxy, 500) < 0)
			iac_log_warn("%s; the run continues without HAProxy figures", iac_err_last());
	}

	struct sigaction sa, old_sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, &old_sa);
	interrupted = 0;

	iac_time_rfc3339(res.started, sizeof(res.started));
	if (iac_lt_engine_start(&run, &cfg, threads) < 0) {
		iac_log_error("%s", iac_err_last());
		have_run = 1;
		sigaction(SIGINT, &old_sa, NULL);
		goto done;
	}
	have_run = 1;
	int progress = !f.quiet && isatty(STDERR_FILENO) && !getenv("CI");
	/* CPU spent polling for events (instead of sleeping) is idle time */
	double cpu_prev = cpu_seconds() - iac_lt_engine_polled_s(&run), wall_prev = iac_lt_engine_elapsed(&run), wait_prev = runq_wait_seconds() - iac_lt_engine_yielded_s(&run);
	long next_sec = 0;
	int aborted = 0, vus_max = 0;
	while (iac_lt_engine_running(&run)) {
		sleep_ms(50);
		double el = iac_lt_engine_elapsed(&run);
		int vus = iac_lt_engine_active_vus(&run);
		if (vus > vus_max)
			vus_max = vus;
		if (interrupted && run.stop < 1 + (interrupted > 1)) {
			run.stop = 1 + (interrupted > 1);   /* a second Ctrl-C drops in-flight work */
		}
		if (el < (double)(next_sec + 1))
			continue;
		/* one second is over: sample everything for it */
		double cpu_now = cpu_seconds() - iac_lt_engine_polled_s(&run);
		int usable = threads < cores ? threads : cores;
		double cpu_pct = 100.0 * (cpu_now - cpu_prev) / ((el - wall_prev) * usable);
		double wait_now = runq_wait_seconds() - iac_lt_engine_yielded_s(&run);
		double wait_pct = 100.0 * (wait_now - wait_prev) / ((el - wall_prev) * threads);
		if (wait_pct < 0)
			wait_pct = NAN;   /* workers that ended took their counters with them */
		wait_prev = wait_now;
		cpu_prev = cpu_now;
		wall_prev = el;
		iac_lt_hap_sample hs;
		int hap_ok = cfg.haproxy && iac_lt_haproxy_sample(&hs, cfg.haproxy, 300) == 0;
		double *hc = NULL, *hm = NULL;
		if (cfg.hosts.n) {
			hc = iac_xmalloc(cfg.hosts.n * sizeof(double));
			hm = iac_xmalloc(cfg.hosts.n * sizeof(double));
			iac_lt_hosts_sample(hosts, hc, hm);
		}
		pthread_mutex_lock(&run.mu);
		iac_lt_second *x = iac_lt_engine_slot(&run, next_sec);
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
		pthread_mutex_unlock(&run.mu);
		next_sec++;

		size_t nfinal = iac_lt_engine_collect(&run, 0);
		if (!aborted && !run.stop && should_abort(&cfg, &run, el)) {
			aborted = 1;
			run.stop = 1;
		}
		size_t whole = nfinal < (size_t)next_sec ? nfinal : (size_t)next_sec;   /* not a partial tail */
		if (progress && whole) {
			pthread_mutex_lock(&run.mu);
			const iac_lt_second *l = &run.secs[whole - 1];
			char line[200];
			snprintf(line, sizeof(line), "\r  %5.0fs  vus %-6d rps %-9llu errors %-7llu p99 %.2fms   ", el, vus,
				 (unsigned long long)l->requests, (unsigned long long)run.total.failed, l->p99_ms);
			pthread_mutex_unlock(&run.mu);
			iac_log_write(stderr, line);
		}
	}
	double elapsed = iac_lt_engine_elapsed(&run);
	iac_lt_engine_join(&run);
	sigaction(SIGINT, &old_sa, NULL);
	if (progress)
		iac_log_write(stderr, "\r\033[K");
	size_t nsecs = iac_lt_engine_collect(&run, 1);
	/* a drain tail with nothing in it is not part of the run's story */
	while (nsecs > 1 && !run.secs[nsecs - 1].requests && !run.secs[nsecs - 1].iterations &&
	       !run.secs[nsecs - 1].dropped)
		nsecs--;
	/* the last second is usually partial: its rate is per second it covered */
	double covered = elapsed - (double)(nsecs - 1);
	res.last_sec_fraction = covered > 0.05 && covered < 1 ? covered : 1;
	for (size_t i = 0; i < nsecs; i++)
		if (run.secs[i].vus < 0)
			run.secs[i].vus = 0;   /* no worker had a VU running then */
	if (run.vus_max < vus_max)
		run.vus_max = vus_max;

	res.cfg = &cfg;
	res.total = &run.total;
	res.secs = run.secs;
	res.nsecs = nsecs;
	res.elapsed_s = elapsed;
	res.threads = threads;
	res.cores = threads < cores ? threads : cores;
	res.vus_max = run.vus_max;
	res.aborted = aborted;
	res.interrupted = interrupted > 0;
	res.haproxy = cfg.haproxy;
	res.hosts = &cfg.hosts;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	res.rss_mib = (double)ru.ru_maxrss / 1024.0;
	iac_lt_result_judge(&res);
	size_t failed = iac_lt_thresholds_eval(cfg.thresholds, cfg.nthresholds, &run.total, elapsed);
	res.exit_code = failed ? IAC_LT_EXIT_THRESHOLDS : 0;
	if (!f.quiet)
		iac_lt_report_summary(stdout, &res);
	rc = res.exit_code;
	if (f.json && iac_lt_report_write_json(&res, f.json) < 0) {
		iac_log_error("%s", iac_err_last());
		rc = 1;
	}
	if (f.html && iac_lt_report_write_html(&res, f.html) < 0) {
		iac_log_error("%s", iac_err_last());
		rc = 1;
	}

done:
	iac_lt_hosts_close(hosts);
	iac_lt_result_free(&res);
	if (have_run)
		iac_lt_engine_free(&run);
	if (have_cfg)
		iac_lt_config_free(&cfg);
	iac_strlist_free(&pos);
	return rc;
}
