/* iac-deploy-tool: a test and benchmark driver for iac/deploy (not part of
 * the iac CLI). Each subcommand calls one building block and prints its
 * result, so shell tests and bench/cutover exercise the C code directly:
 *
 *   render DESC.json                 HAProxy config on stdout
 *   check CFG                        haproxy -c -f CFG
 *   start CFG PIDFILE [MASTER_SOCK]  start master-worker HAProxy, print the master pid
 *   stop PID
 *   reload -api A (-master M | -pid P) [-state-file F] [-check CFG]
 *   cmd ADDR COMMAND...              one command, or a batch when several
 *   stat ADDR [BACKEND]              show stat as JSON
 *   state ADDR BACKEND ready|drain|maint SERVER...
 *   weight ADDR BACKEND SERVER W
 *   save-state ADDR FILE
 *   switch ADDR BACKEND -to a,b -from c,d [-rollback] [-state-file F] [-verify URL]... [-wait-check]
 *          [-watch URL -new-body TEXT [-watch-after 500ms]]
 *   finish ADDR BACKEND SERVER... [-timeout 30s] [-force]   drained servers -> maint
 *   health URL... [-path /health] [-expect 200] [-interval 500ms] [-healthy 3] [-timeout 30s]
 *   analysis URL... [-duration 10s] [-concurrency 4] [-rate N] [-max-error-rate 0.01] [-max-p99 300ms]
 *   prom URL QUERY [-max X] [-min Y]
 *
 * Exit status: 0 ok / gate passed, 1 failed (message on stderr), 2 usage,
 * 3 a switch found its servers changed by someone else (IAC_ECONFLICT).
 */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/args.h"
#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/deploy/cutover.h"
#include "iac/deploy/haproxy_api.h"
#include "iac/deploy/haproxy_cfg.h"
#include "iac/deploy/haproxy_ctl.h"
#include "iac/deploy/probe.h"

static int fail(void)
{
	fprintf(stderr, "error: %s\n", iac_err_last());
	return 1;
}

static int usage(const char *msg)
{
	fprintf(stderr, "usage: %s (see the comment at the top of iac/deploy/tool.c)\n", msg);
	return 2;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
	puts(s);
	free(s);
	json_decref(j);
}

/* "a,b" and repeated flags -> one list */
static void split_commas(iac_strlist *out, const iac_strlist *in)
{
	for (size_t i = 0; i < in->n; i++) {
		char *copy = iac_xstrdup(in->items[i]), *save = NULL;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
			iac_strlist_push(out, t);
		free(copy);
	}
}

static int cmd_render(int argc, char **argv)
{
	json_error_t je;
	json_t *desc;
	char *cfg = NULL;
	if (argc != 2)
		return usage("render DESC.json");
	desc = json_load_file(argv[1], 0, &je);
	if (!desc) {
		fprintf(stderr, "error: %s:%d: %s\n", argv[1], je.line, je.text);
		return 1;
	}
	int rc = iac_haproxy_cfg_render(&cfg, desc);
	json_decref(desc);
	if (rc < 0)
		return fail();
	fputs(cfg, stdout);
	free(cfg);
	return 0;
}

static int cmd_check(int argc, char **argv)
{
	if (argc != 2)
		return usage("check CFG");
	if (iac_haproxy_check(getenv("HAPROXY"), argv[1]) < 0)
		return fail();
	puts("valid");
	return 0;
}

static int cmd_start(int argc, char **argv)
{
	iac_haproxy_run run = { 0 };
	pid_t pid;
	if (argc < 3 || argc > 4)
		return usage("start CFG PIDFILE [MASTER_SOCK]");
	run.haproxy = getenv("HAPROXY");
	run.cfg_path = argv[1];
	run.pidfile = argv[2];
	run.master_socket = argc == 4 ? argv[3] : NULL;
	if (iac_haproxy_start(&pid, &run) < 0)
		return fail();
	printf("%d\n", (int)pid);
	return 0;
}

static int cmd_stop(int argc, char **argv)
{
	if (argc != 2)
		return usage("stop PID");
	if (iac_haproxy_stop((pid_t)atol(argv[1]), 10000) < 0)
		return fail();
	return 0;
}

static int cmd_reload(int argc, char **argv)
{
	const char *api = NULL, *master = NULL, *state = NULL, *cfg = NULL;
	int pid = 0;
	iac_opt opts[] = {
		{ "api", IAC_OPT_STRING, &api, "stats socket" },
		{ "master", IAC_OPT_STRING, &master, "master CLI socket" },
		{ "pid", IAC_OPT_INT, &pid, "master pid (SIGUSR2)" },
		{ "state-file", IAC_OPT_STRING, &state, "server-state-file" },
		{ "check", IAC_OPT_STRING, &cfg, "validate this config first" },
		{ NULL, 0, NULL, NULL },
	};
	iac_strlist pos = { 0 };
	iac_haproxy_reload_opts ro = { 0 };
	iac_haproxy_reload_result rr;
	int rc = 1;

	if (iac_args_parse(opts, "reload", argc, argv, &pos) < 0) {
		rc = fail();
		goto done;
	}
	if ((api && iac_haproxy_open(&ro.api, api, 0) < 0) ||
	    (master && iac_haproxy_open(&ro.master, master, 0) < 0)) {
		rc = fail();
		goto done;
	}
	ro.master_pid = pid;
	ro.state_file = state;
	ro.cfg_path = cfg;
	ro.haproxy = getenv("HAPROXY");
	if (iac_haproxy_reload(&rr, &ro) < 0) {
		rc = fail();
		goto done;
	}
	print_json(json_pack("{s:i,s:i,s:f,s:f,s:f}", "old_worker", (int)rr.old_worker,
			     "new_worker", (int)rr.new_worker, "save_ms", rr.save_ms,
			     "reload_ms", rr.reload_ms, "total_ms", rr.total_ms));
	rc = 0;
done:
	iac_haproxy_free(ro.api);
	iac_haproxy_free(ro.master);
	iac_strlist_free(&pos);
	return rc;
}

static int open_api(iac_haproxy **h, const char *addr)
{
	const char *target = getenv("IAC_HAPROXY_TARGET");
	if (iac_haproxy_open(h, addr, 0) < 0)
		return IAC_ERR;
	if (target)
		iac_haproxy_set_target(*h, target);
	return 0;
}

static int cmd_cmd(int argc, char **argv)
{
	iac_haproxy *h = NULL;
	int rc = 1;
	if (argc < 3)
		return usage("cmd ADDR COMMAND...");
	if (open_api(&h, argv[1]) < 0)
		return fail();
	if (argc == 3) {
		char *out = NULL;
		if (iac_haproxy_cmd(&out, h, argv[2]) == 0) {
			fputs(out, stdout);
			rc = 0;
		}
		free(out);
	} else {
		iac_strlist ans = { 0 };
		if (iac_haproxy_batch(&ans, h, (const char *const *)argv + 2, (size_t)argc - 2) == 0) {
			for (size_t i = 0; i < ans.n; i++)
				printf("[%zu] %s\n", i, ans.items[i]);
			rc = 0;
		}
		iac_strlist_free(&ans);
	}
	if (rc)
		fail();
	iac_haproxy_free(h);
	return rc;
}

static int cmd_stat(int argc, char **argv)
{
	iac_haproxy *h = NULL;
	iac_haproxy_stat *rows = NULL;
	size_t n = 0;
	if (argc < 2 || argc > 3)
		return usage("stat ADDR [BACKEND]");
	if (open_api(&h, argv[1]) < 0 || iac_haproxy_show_stat(&rows, &n, h, argc == 3 ? argv[2] : NULL) < 0) {
		iac_haproxy_free(h);
		return fail();
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}",
			"pxname", rows[i].pxname, "svname", rows[i].svname, "status", rows[i].status,
			"check_status", rows[i].check_status, "scur", (json_int_t)rows[i].scur,
			"qcur", (json_int_t)rows[i].qcur, "weight", (json_int_t)rows[i].weight,
			"stot", (json_int_t)rows[i].stot, "lbtot", (json_int_t)rows[i].lbtot,
			"rtime", (json_int_t)rows[i].rtime));
	print_json(arr);
	free(rows);
	iac_haproxy_free(h);
	return 0;
}

static int cmd_state(int argc, char **argv)
{
	iac_haproxy *h = NULL;
	enum iac_haproxy_admin st;
	int rc = 0;
	if (argc < 5)
		return usage("state ADDR BACKEND ready|drain|maint SERVER...");
	if (iac_haproxy_admin_parse(&st, argv[3]) < 0 || open_api(&h, argv[1]) < 0)
		return fail();
	if (iac_haproxy_set_state(h, argv[2], (const char *const *)argv + 4, (size_t)argc - 4, st) < 0)
		rc = fail();
	iac_haproxy_free(h);
	return rc;
}

static int cmd_weight(int argc, char **argv)
{
	iac_haproxy *h = NULL;
	int rc = 0;
	if (argc != 5)
		return usage("weight ADDR BACKEND SERVER W");
	if (open_api(&h, argv[1]) < 0)
		return fail();
	if (iac_haproxy_set_weight(h, argv[2], argv[3], argv[4]) < 0)
		rc = fail();
	iac_haproxy_free(h);
	return rc;
}

static int cmd_save_state(int argc, char **argv)
{
	iac_haproxy *h = NULL;
	int rc = 0;
	if (argc != 3)
		return usage("save-state ADDR FILE");
	if (open_api(&h, argv[1]) < 0)
		return fail();
	if (iac_haproxy_save_state(h, argv[2]) < 0)
		rc = fail();
	iac_haproxy_free(h);
	return rc;
}

static int cmd_finish(int argc, char **argv)
{
	double timeout = 30000;
	int force = 0;
	iac_opt opts[] = {
		{ "timeout", IAC_OPT_DURATION, &timeout, "" },
		{ "force", IAC_OPT_BOOL, &force, "" },
		{ NULL, 0, NULL, NULL },
	};
	iac_strlist pos = { 0 };
	iac_haproxy *h = NULL;
	int rc = 0;

	if (iac_args_parse(opts, "finish", argc, argv, &pos) < 0)
		return fail();
	if (pos.n < 3) {
		iac_strlist_free(&pos);
		return usage("finish ADDR BACKEND SERVER... [-timeout 30s] [-force]");
	}
	if (open_api(&h, pos.items[0]) < 0 ||
	    iac_cutover_finish(h, pos.items[1], (const char *const *)pos.items + 2, pos.n - 2, timeout, force) != 0)
		rc = fail();
	iac_haproxy_free(h);
	iac_strlist_free(&pos);
	return rc;
}

/* ---- switch with a watcher measuring when 100 % reach the new colour ---- */

typedef struct {
	double start_ms;
	int outcome;   /* 1 new colour, 0 old colour, -1 error */
} sample;

typedef struct {
	const char *url, *new_body;
	int concurrency;
	volatile int stop;
	sample *samples;
	size_t n, cap;
	long errors;
} watcher;

typedef struct {
	CURL *easy;
	int busy;
	double start_ms;
	iac_buf body;
} wslot;

static size_t wbody(char *p, size_t s, size_t n, void *ud)
{
	iac_buf *b = ud;
	if (b->len < 256)
		iac_buf_put(b, p, s * n);
	return s * n;
}

static void *watch_main(void *arg)
{
	watcher *w = arg;
	CURLM *m = curl_multi_init();
	wslot *slots = iac_xcalloc((size_t)w->concurrency, sizeof(*slots));
	size_t nb = strlen(w->new_body);

	for (int i = 0; i < w->concurrency; i++) {
		slots[i].easy = curl_easy_init();
		curl_easy_setopt(slots[i].easy, CURLOPT_URL, w->url);
		curl_easy_setopt(slots[i].easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(slots[i].easy, CURLOPT_TIMEOUT_MS, 5000L);
		curl_easy_setopt(slots[i].easy, CURLOPT_WRITEFUNCTION, wbody);
		curl_easy_setopt(slots[i].easy, CURLOPT_WRITEDATA, &slots[i].body);
		curl_easy_setopt(slots[i].easy, CURLOPT_PRIVATE, (void *)&slots[i]);
	}
	for (;;) {
		int running, busy = 0, left;
		for (int i = 0; i < w->concurrency && !w->stop; i++) {
			if (slots[i].busy)
				continue;
			iac_buf_clear(&slots[i].body);
			slots[i].busy = 1;
			slots[i].start_ms = iac_now_ms();
			curl_multi_add_handle(m, slots[i].easy);
		}
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(m, &left))) {
			wslot *s = NULL;
			long status = 0;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			if (w->n == w->cap) {
				w->cap = w->cap ? w->cap * 2 : 65536;
				w->samples = iac_xrealloc(w->samples, w->cap * sizeof(*w->samples));
			}
			sample *sm = &w->samples[w->n++];
			sm->start_ms = s->start_ms;
			if (msg->data.result != CURLE_OK || status != 200) {
				sm->outcome = -1;
				w->errors++;
			} else {
				sm->outcome = s->body.len >= nb && !memcmp(s->body.ptr, w->new_body, nb);
			}
			curl_multi_remove_handle(m, msg->easy_handle);
			s->busy = 0;
		}
		for (int i = 0; i < w->concurrency; i++)
			busy += slots[i].busy;
		if (w->stop && !busy)
			break;
		if (busy < w->concurrency && !w->stop)
			continue;   /* refill the free slot at once */
		curl_multi_poll(m, NULL, 0, 20, NULL);
	}
	for (int i = 0; i < w->concurrency; i++) {
		curl_easy_cleanup(slots[i].easy);
		iac_buf_free(&slots[i].body);
	}
	free(slots);
	curl_multi_cleanup(m);
	return NULL;
}

static int by_start(const void *a, const void *b)
{
	double x = ((const sample *)a)->start_ms, y = ((const sample *)b)->start_ms;
	return x < y ? -1 : x > y;
}

/* What a watcher saw, relative to the switch: requests started before and
 * after it, and when 100 % reached the new colour (from the first new
 * answer after the last non-new one: old colour or error). Sorts samples. */
static json_t *watch_summary(sample *samples, size_t n, long errors, double t_switch)
{
	double last_bad = -1e18, to_new = -1;
	long after = 0, after_new = 0, before = 0;

	qsort(samples, n, sizeof(*samples), by_start);
	for (size_t i = 0; i < n; i++) {
		if (samples[i].start_ms < t_switch) {
			before++;
			continue;
		}
		after++;
		after_new += samples[i].outcome == 1;
		if (samples[i].outcome != 1)
			last_bad = samples[i].start_ms;
	}
	for (size_t i = 0; i < n; i++)
		if (samples[i].start_ms > last_bad && samples[i].start_ms >= t_switch && samples[i].outcome == 1) {
			to_new = samples[i].start_ms - t_switch;
			break;
		}
	return json_pack("{s:I,s:I,s:I,s:I,s:f,s:f}",
		"requests_before", (json_int_t)before, "requests_after", (json_int_t)after,
		"on_new_after", (json_int_t)after_new, "errors", (json_int_t)errors,
		"last_old_ms", last_bad > -1e17 ? last_bad - t_switch : -1.0,
		"to_new_ms", to_new);
}

/* switch's command line. */
typedef struct {
	iac_strlist to, from, verify, pos;
	const char *state_file, *watch_url, *new_body;
	int rollback, wait_check, leave_drain;
	double drain_timeout, up_timeout, watch_after;
} switch_args;

static void switch_args_free(switch_args *a)
{
	iac_strlist_free(&a->verify);
	iac_strlist_free(&a->to);
	iac_strlist_free(&a->from);
	iac_strlist_free(&a->pos);
}

/* 0, or the exit status after the message (1 bad option, 2 usage). */
static int switch_args_parse(switch_args *a, int argc, char **argv)
{
	iac_strlist to_raw = { 0 }, from_raw = { 0 };
	iac_opt opts[] = {
		{ "to", IAC_OPT_LIST, &to_raw, "servers that take the traffic" },
		{ "from", IAC_OPT_LIST, &from_raw, "servers that give it up" },
		{ "rollback", IAC_OPT_BOOL, &a->rollback, "emergency budget" },
		{ "state-file", IAC_OPT_STRING, &a->state_file, "persist here" },
		{ "drain-timeout", IAC_OPT_DURATION, &a->drain_timeout, "" },
		{ "up-timeout", IAC_OPT_DURATION, &a->up_timeout, "" },
		{ "leave-drain", IAC_OPT_BOOL, &a->leave_drain, "" },
		{ "wait-check", IAC_OPT_BOOL, &a->wait_check, "" },
		{ "verify", IAC_OPT_LIST, &a->verify, "health URL of a `to` instance" },
		{ "watch", IAC_OPT_STRING, &a->watch_url, "URL through the load balancer" },
		{ "new-body", IAC_OPT_STRING, &a->new_body, "body prefix of the new colour" },
		{ "watch-after", IAC_OPT_DURATION, &a->watch_after, "keep watching after the switch" },
		{ NULL, 0, NULL, NULL },
	};
	int rc = 0;

	memset(a, 0, sizeof(*a));
	a->watch_after = 500;
	if (iac_args_parse(opts, "switch", argc, argv, &a->pos) < 0)
		rc = fail();
	else if (a->pos.n != 2 || (a->watch_url && !a->new_body))
		rc = usage("switch ADDR BACKEND -to a,b -from c,d [-rollback] [-watch URL -new-body TEXT]");
	if (rc == 0) {
		split_commas(&a->to, &to_raw);
		split_commas(&a->from, &from_raw);
	}
	iac_strlist_free(&to_raw);
	iac_strlist_free(&from_raw);
	return rc;
}

/* Start the watcher and let it reach a steady state on the old colour. */
static int watch_start(watcher *w, pthread_t *th, const switch_args *a)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	w->url = a->watch_url;
	w->new_body = a->new_body;
	w->concurrency = 4;
	if (pthread_create(th, NULL, watch_main, w) != 0) {
		fprintf(stderr, "error: cannot start the watcher thread\n");
		return -1;
	}
	struct timespec ts = { 0, 300 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	return 0;
}

static int cmd_switch(int argc, char **argv)
{
	switch_args a;
	iac_haproxy *h = NULL;
	iac_cutover_result res;
	watcher w = { 0 };
	pthread_t th;
	int rc, started = 0;

	if ((rc = switch_args_parse(&a, argc, argv)) != 0)
		goto done;
	rc = 1;
	if (open_api(&h, a.pos.items[0]) < 0) {
		rc = fail();
		goto done;
	}
	iac_cutover_opts co = {
		.backend = a.pos.items[1], .to = (const char *const *)a.to.items, .n_to = a.to.n,
		.from = (const char *const *)a.from.items, .n_from = a.from.n,
		.up_timeout_ms = a.up_timeout, .drain_timeout_ms = a.drain_timeout,
		.leave_drain = a.leave_drain, .wait_check = a.wait_check, .state_file = a.state_file,
		.verify_urls = (const char *const *)a.verify.items, .n_verify = a.verify.n,
	};
	if (a.watch_url) {
		if (watch_start(&w, &th, &a) < 0)
			goto done;
		started = 1;
	}
	double t_switch = iac_now_ms();
	int sw = a.rollback ? iac_cutover_rollback(&res, h, &co) : iac_cutover_switch(&res, h, &co);
	double t_done = iac_now_ms();
	char saved_err[4096];
	snprintf(saved_err, sizeof(saved_err), "%s", iac_err_last());
	json_t *out = json_pack("{s:o}", "cutover", iac_cutover_result_json(&res));
	json_object_set_new(out, "wall_ms", json_real(t_done - t_switch));
	if (started) {
		struct timespec ts = { (time_t)(a.watch_after / 1e3), (long)fmod(a.watch_after, 1e3) * 1000000L };
		nanosleep(&ts, NULL);
		w.stop = 1;
		pthread_join(th, NULL);
		json_object_set_new(out, "watch", watch_summary(w.samples, w.n, w.errors, t_switch));
	}
	print_json(out);
	if (sw < 0) {
		fprintf(stderr, "error: %s\n", saved_err);
		rc = sw == IAC_ECONFLICT ? 3 : 1;
		goto done;
	}
	rc = 0;
done:
	free(w.samples);
	iac_haproxy_free(h);
	switch_args_free(&a);
	return rc;
}

/* ---- gates ---- */

static int cmd_health(int argc, char **argv)
{
	const char *path = "/health";
	int expect = 200, healthy = 3;
	double interval = 500, timeout = 30000;
	iac_opt opts[] = {
		{ "path", IAC_OPT_STRING, &path, "" },
		{ "expect", IAC_OPT_INT, &expect, "" },
		{ "interval", IAC_OPT_DURATION, &interval, "" },
		{ "healthy", IAC_OPT_INT, &healthy, "" },
		{ "timeout", IAC_OPT_DURATION, &timeout, "" },
		{ NULL, 0, NULL, NULL },
	};
	iac_strlist pos = { 0 };
	iac_probe_health_result r;
	int rc;

	if (iac_args_parse(opts, "health", argc, argv, &pos) < 0)
		return fail();
	iac_probe_health_opts o = { .urls = (const char *const *)pos.items, .n_urls = pos.n,
				    .path = path, .expect = expect, .interval_ms = interval,
				    .healthy = healthy, .timeout_ms = timeout };
	rc = iac_probe_health(&r, &o);
	print_json(iac_probe_health_json(&r));
	if (rc < 0)
		fail();
	iac_probe_health_free(&r);
	iac_strlist_free(&pos);
	return rc < 0;
}

static int cmd_analysis(int argc, char **argv)
{
	double duration = 10000, rate = 0, max_err = 0.01, max_p99 = 300;
	int conc = 4;
	iac_opt opts[] = {
		{ "duration", IAC_OPT_DURATION, &duration, "" },
		{ "concurrency", IAC_OPT_INT, &conc, "" },
		{ "rate", IAC_OPT_DOUBLE, &rate, "" },
		{ "max-error-rate", IAC_OPT_DOUBLE, &max_err, "" },
		{ "max-p99", IAC_OPT_DURATION, &max_p99, "" },
		{ NULL, 0, NULL, NULL },
	};
	iac_strlist pos = { 0 };
	iac_probe_analysis_result r;
	int rc;

	if (iac_args_parse(opts, "analysis", argc, argv, &pos) < 0)
		return fail();
	iac_probe_analysis_opts o = { .urls = (const char *const *)pos.items, .n_urls = pos.n,
				      .duration_ms = duration, .concurrency = conc, .rate = rate,
				      .max_error_rate = max_err, .max_p99_ms = max_p99 };
	rc = iac_probe_analysis(&r, &o);
	print_json(iac_probe_analysis_json(&r));
	if (rc < 0)
		fail();
	iac_strlist_free(&pos);
	return rc < 0;
}

static int cmd_prom(int argc, char **argv)
{
	double max = NAN, min = NAN;
	iac_opt opts[] = {
		{ "max", IAC_OPT_DOUBLE, &max, "" },
		{ "min", IAC_OPT_DOUBLE, &min, "" },
		{ NULL, 0, NULL, NULL },
	};
	iac_strlist pos = { 0 };
	iac_probe_prom_result r;
	int rc;

	if (iac_args_parse(opts, "prom", argc, argv, &pos) < 0)
		return fail();
	if (pos.n != 2) {
		iac_strlist_free(&pos);
		return usage("prom URL QUERY [-max X] [-min Y]");
	}
	iac_probe_prom_opts o = { .url = pos.items[0], .query = pos.items[1], .max = max, .min = min };
	rc = iac_probe_prometheus(&r, &o);
	print_json(iac_probe_prom_json(&r));
	if (rc < 0)
		fail();
	iac_strlist_free(&pos);
	return rc < 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "render", cmd_render }, { "check", cmd_check }, { "start", cmd_start },
		{ "stop", cmd_stop }, { "reload", cmd_reload }, { "cmd", cmd_cmd },
		{ "stat", cmd_stat }, { "state", cmd_state }, { "weight", cmd_weight },
		{ "save-state", cmd_save_state }, { "switch", cmd_switch }, { "finish", cmd_finish },
		{ "health", cmd_health }, { "analysis", cmd_analysis }, { "prom", cmd_prom },
	};
	if (argc < 2)
		return usage("iac-deploy-tool COMMAND ...");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	return usage("iac-deploy-tool COMMAND ... (unknown command)");
}
