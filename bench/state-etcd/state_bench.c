/* iac-state-bench: lock and state-write latencies of the two backends,
 * in-process, so that process start does not hide them.
 *
 *   iac-state-bench lock  ENDPOINTS N        N x (lock + unlock): etcd, local
 *   iac-state-bench write ENDPOINTS STATE N  N x (snapshot of STATE, a state
 *                                            JSON file): etcd, local
 *   iac-state-bench history STATE N          a first history revision of
 *                                            STATE, then N revisions that
 *                                            each change one resource
 * Prints one line per backend: median and p99 in ms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/state/etcd_store.h"
#include "iac/state/gitlog.h"
#include "iac/state/lock.h"
#include "iac/state/state.h"

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void report(const char *what, double *t, int n)
{
	qsort(t, (size_t)n, sizeof(*t), cmp_d);
	printf("%-28s median %8.2f ms   p99 %8.2f ms   (n=%d)\n", what, t[n / 2], t[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1], n);
}

static iac_etcdb *connect(const char *eps, const char *prefix)
{
	iac_etcdb_opts o = { .endpoints = eps, .prefix = prefix, .lock_ttl_ms = 10000 };
	iac_etcdb *b;
	if (iac_etcdb_open(&b, &o) < 0) {
		fprintf(stderr, "error: %s\n", iac_err_last());
		exit(1);
	}
	return b;
}

static int bench_lock(const char *eps, int n)
{
	double *t = calloc((size_t)n, sizeof(double));
	iac_etcdb *b = connect(eps, "bench/lock");
	json_t *info = json_pack("{s:s}", "command", "bench");
	for (int i = 0; i < n; i++) {
		double t0 = iac_now_ms();
		if (iac_etcdb_lock(b, info, 5000) < 0) {
			fprintf(stderr, "error: %s\n", iac_err_last());
			return 1;
		}
		iac_etcdb_unlock(b);
		t[i] = iac_now_ms() - t0;
	}
	report("etcd lock+unlock", t, n);
	iac_etcdb_free(b);
	char dir[] = "/tmp/iac-lockbench.XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	for (int i = 0; i < n; i++) {
		iac_lock *lk;
		double t0 = iac_now_ms();
		if (iac_lock_acquire(&lk, NULL, dir, "bench", 0) < 0)
			return 1;
		iac_lock_release(lk);
		t[i] = iac_now_ms() - t0;
	}
	report("local lock+unlock", t, n);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: cannot remove %s\n", dir);
	json_decref(info);
	free(t);
	return 0;
}

/* n snapshots of doc through state st (each a real write: serial + 1). */
static int time_writes(const char *what, iac_state *st, const json_t *doc, int n)
{
	double *t = calloc((size_t)n, sizeof(double));
	for (int i = 0; i < n; i++) {
		if (iac_state_replace(st, doc) < 0)
			return 1;
		double t0 = iac_now_ms();
		if (iac_state_flush(st) < 0) {
			fprintf(stderr, "error: %s\n", iac_err_last());
			return 1;
		}
		t[i] = iac_now_ms() - t0;
	}
	report(what, t, n);
	free(t);
	return 0;
}

static int bench_write(const char *eps, const char *file, int n)
{
	json_error_t jerr;
	json_t *doc = json_load_file(file, 0, &jerr);
	if (!doc) {
		fprintf(stderr, "error: %s: %s\n", file, jerr.text);
		return 1;
	}
	char label[64];
	snprintf(label, sizeof(label), "etcd write (%zu res)", json_array_size(json_object_get(doc, "resources")));
	iac_etcdb *b = connect(eps, "bench/write");
	iac_state *st;
	char dir[] = "/tmp/iac-writebench.XXXXXX";
	if (!mkdtemp(dir) || iac_state_open_store(&st, iac_etcdb_store(b), dir) < 0 ||
	    time_writes(label, st, doc, n) < 0)
		return 1;
	iac_state_free(st);
	iac_etcdb_free(b);
	snprintf(label, sizeof(label), "local write (%zu res)", json_array_size(json_object_get(doc, "resources")));
	if (iac_state_open(&st, dir) < 0 || time_writes(label, st, doc, n) < 0)
		return 1;
	iac_state_free(st);
	json_decref(doc);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : 1;
}

static int bench_history(const char *file, int n)
{
	json_t *doc = json_load_file(file, 0, NULL);
	char dir[] = "/tmp/iac-histbench.XXXXXX", path[64];
	iac_gitlog *g;
	long rev;
	if (!doc || !mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/history.git", dir);
	json_t *meta = json_pack("{s:s}", "command", "apply");
	double *t = calloc((size_t)n + 1, sizeof(double)), t0 = iac_now_ms();
	if (iac_gitlog_open(&g, path) < 0 || iac_gitlog_record(&rev, g, doc, meta) < 0) {
		fprintf(stderr, "error: %s\n", iac_err_last());
		return 1;
	}
	printf("%-28s %8.2f ms   (%zu resources)\n", "history: first revision", iac_now_ms() - t0,
	       json_array_size(json_object_get(doc, "resources")));
	json_t *res = json_object_get(doc, "resources");
	for (int i = 0; i < n; i++) {
		json_t *e = json_array_get(res, (size_t)i % json_array_size(res));
		json_object_set_new(json_object_get(e, "attributes"), "bench", json_integer(i));
		t0 = iac_now_ms();
		if (iac_gitlog_record(&rev, g, doc, meta) < 0)
			return 1;
		t[i] = iac_now_ms() - t0;
	}
	report("history: one change", t, n);
	iac_gitlog_free(g);
	json_decref(meta);
	json_decref(doc);
	free(t);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "history"))
		return bench_history(argv[2], atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "lock"))
		return bench_lock(argv[2], atoi(argv[3]));
	if (argc == 5 && !strcmp(argv[1], "write"))
		return bench_write(argv[2], argv[3], atoi(argv[4]));
	fprintf(stderr, "usage: iac-state-bench lock ENDPOINTS N | write ENDPOINTS STATE.json N | history STATE.json N\n");
	return 2;
}
