/* loadgate: the load-test stage of a deployment (analysis.loadtest), see
 * deploy.h.
 *
 * Why a child `iac loadtest` per instance rather than the engine in this
 * process: the load generator takes every core it may use and a Lua state
 * per thread, and a scenario is the operator's own file; in a child it runs
 * exactly as `iac loadtest` does at a terminal, with the same thresholds,
 * verdict and JSON report, and an apply stays small and cancellable (the
 * children die with it: iac_proc_run's guard).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "providers/deploy/deploy.h"

#include "iac/core/buf.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/proc.h"
#include "iac/core/util.h"
#include "iac/host/ssh_conn.h"

/* This very binary: the stage runs the same iac. */
static char *self_exe(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		return iac_xstrdup("iac");
	buf[n] = '\0';
	return iac_xstrdup(buf);
}

/* One shell command starting every run at once, then waiting for each and
 * printing their exit statuses on one line. */
static char *stage_command(const char *exe, const char *scenario, const char *const *urls, size_t n,
			   double rate, double duration_ms, const char *dir)
{
	iac_buf b = IAC_BUF_INIT;
	char *qe = iac_ssh_quote(exe), *qs = iac_ssh_quote(scenario);
	for (size_t i = 0; i < n; i++) {
		char *qu = iac_ssh_quote(urls[i]);
		char *out = iac_xasprintf("%s/%zu.json", dir, i);
		char *qo = iac_ssh_quote(out);
		iac_buf_printf(&b, "%s -no-color loadtest %s -target %s -quiet -json %s -duration %.0fms", qe, qs, qu,
			       qo, duration_ms);
		if (rate > 0)
			iac_buf_printf(&b, " -rate %.3f", rate / (double)n);
		iac_buf_printf(&b, " 2>%s/%zu.err & p%zu=$!\n", dir, i, i);
		free(qu);
		free(out);
		free(qo);
	}
	iac_buf_puts(&b, "s=''\n");
	for (size_t i = 0; i < n; i++)
		iac_buf_printf(&b, "wait $p%zu; s=\"$s $?\"\n", i);
	iac_buf_puts(&b, "echo $s\n");
	free(qe);
	free(qs);
	return iac_buf_detach(&b);
}

/* What one run said (new ref): its figures from the JSON report, or the
 * tail of its stderr when it wrote none. */
static json_t *run_summary(const char *dir, size_t i, const char *name, int status)
{
	char *path = iac_xasprintf("%s/%zu.json", dir, i);
	json_t *r = json_load_file(path, 0, NULL);
	json_t *out = json_pack("{s:s,s:i}", "instance", name, "exit", status);
	free(path);
	if (r) {
		const json_t *lat = json_object_get(r, "latency_ms"), *v = json_object_get(r, "verdict");
		json_object_set(out, "requests", json_object_get(r, "requests"));
		json_object_set(out, "rps", json_object_get(r, "rps"));
		json_object_set(out, "failed_rate", json_object_get(v, "http_req_failed"));
		json_object_set(out, "p99_ms", json_object_get(lat, "p99"));
		json_object_set(out, "verdict", json_object_get(v, "result"));
		json_object_set(out, "reasons", json_object_get(v, "reasons"));
		json_decref(r);
	} else {
		char *err = NULL;
		size_t len;
		path = iac_xasprintf("%s/%zu.err", dir, i);
		if (iac_file_read(&err, &len, path) == 0)
			json_object_set_new(out, "error", json_string(iac_proc_tail(err, 300)));
		free(err);
		free(path);
	}
	return out;
}

/* "blue1: thresholds failed (...); blue2: ..." for the runs that failed. */
static void failure_text(iac_buf *b, const json_t *runs)
{
	size_t i, j;
	const json_t *r, *why;
	json_array_foreach(runs, i, r) {
		if (json_integer_value(json_object_get(r, "exit")) == 0)
			continue;
		iac_buf_printf(b, "%s%s: ", b->len ? "; " : "", iac_json_str(r, "instance") ?: "?");
		if (json_object_get(r, "error")) {
			iac_buf_puts(b, iac_json_str(r, "error"));
			continue;
		}
		/* the verdict's reasons say it best ("threshold 'http_req_failed'
		 * failed: 5.00% (rate<0.01)"); the bare verdict when there are none */
		json_array_foreach(json_object_get(r, "reasons"), j, why)
			iac_buf_printf(b, "%s%s", j ? ", " : "", json_string_value(why) ?: "?");
		if (!json_array_size(json_object_get(r, "reasons")))
			iac_buf_printf(b, "%s (exit %lld)", iac_json_str(r, "verdict") ?: "failed",
				       (long long)json_integer_value(json_object_get(r, "exit")));
	}
}

int iac_deploy_gate_loadtest(const iac_rctx *ctx, json_t *last, const json_t *an, const char *const *urls,
			     const char *const *names, size_t n)
{
	const char *file = iac_json_str(an, "loadtest");
	double rate = json_is_number(json_object_get(an, "rate")) ? json_number_value(json_object_get(an, "rate")) : 0;
	double duration_ms = 10e3;
	char tmpl[] = "/tmp/iac-loadgate-XXXXXX";
	iac_proc_result res = { 0 };
	json_t *runs = json_array();
	int rc = IAC_ERR;

	if (!file || !n) {
		json_decref(runs);
		return 0;
	}
	if (iac_json_str(an, "duration") && iac_duration_parse(&duration_ms, iac_json_str(an, "duration")) < 0) {
		json_decref(runs);
		return iac_err_set("analysis.duration '%s' is not a duration", iac_json_str(an, "duration"));
	}
	char *scenario = file[0] == '/' ? iac_xstrdup(file) : iac_xasprintf("%s/%s", ctx->config_dir, file);
	char *exe = self_exe();
	char *dir = mkdtemp(tmpl);
	if (!dir) {
		iac_err_sys("cannot create a directory for the load test's reports");
		goto done;
	}
	char *cmd = stage_command(exe, scenario, urls, n, rate, duration_ms, dir);
	int started = iac_proc_run(&res, cmd, ctx->config_dir, NULL, NULL, duration_ms + 120e3, ctx->cancel);
	free(cmd);
	if (started < 0)
		goto done;
	const char *p = res.out ? res.out : "";
	for (size_t i = 0; i < n; i++) {
		char *end;
		long st = strtol(p, &end, 10);
		int ok = end != p;
		p = end;
		json_array_append_new(runs, run_summary(dir, i, names[i], ok ? (int)st : -1));
	}
	json_object_set(last, "loadtest", runs);
	iac_buf why = IAC_BUF_INIT;
	failure_text(&why, runs);
	if (res.timed_out)
		iac_err_set("load test '%s' did not finish within %.0f s", file, (duration_ms + 120e3) / 1e3);
	else if (why.len)
		iac_err_set("load test '%s' failed on %s", file, iac_buf_cstr(&why));
	else
		rc = 0;
	iac_buf_free(&why);
	for (size_t i = 0; i < n; i++) {
		char *f = iac_xasprintf("%s/%zu.json", dir, i), *e = iac_xasprintf("%s/%zu.err", dir, i);
		unlink(f);
		unlink(e);
		free(f);
		free(e);
	}
	rmdir(dir);
done:
	iac_proc_result_free(&res);
	json_decref(runs);
	free(scenario);
	free(exe);
	return rc;
}
