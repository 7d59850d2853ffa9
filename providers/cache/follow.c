/* follow: `iac cache follow CLUSTER` (see cache_int.h). Sentinel tells
 * every subscriber "+switch-master NAME OLD-IP OLD-PORT NEW-IP NEW-PORT" the
 * moment it promotes a replica; waiting for that message instead of polling
 * makes the ring and proxies follow within the time of one apply. The
 * follow-up itself is a normal `iac apply` of the cluster's ring and proxy
 * resources (they read each node's primary from Sentinel at plan time), so
 * state, locking and `nutcracker -t` checks stay the engine's. */
#include "providers/cache/cache_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "providers/cache/client.h"
#include "iac/core/err.h"
#include "iac/core/json.h"
#include "iac/core/log.h"
#include "iac/core/util.h"

#define MAX_SENTINELS 16

typedef struct {
	const char *addr;     /* "ADDRESS:PORT", borrowed */
	iac_cache_conn *c;    /* NULL: not connected (retried every second) */
} sentinel;

static int subscribe(sentinel *s)
{
	char host[256];
	const char *colon = strrchr(s->addr, ':');
	if (!colon || (size_t)(colon - s->addr) >= sizeof(host))
		return iac_err_set("sentinel address '%s' is not ADDRESS:PORT", s->addr);
	memcpy(host, s->addr, (size_t)(colon - s->addr));
	host[colon - s->addr] = 0;
	iac_resp r = { 0 };
	const char *argv[] = { "SUBSCRIBE", "+switch-master" };
	if (iac_cache_conn_open(&s->c, host, (unsigned)atoi(colon + 1), 3000) < 0 ||
	    iac_resp_call(&r, s->c, 2, argv, NULL) < 0) {
		iac_cache_conn_close(s->c);
		s->c = NULL;
		return IAC_ERR;
	}
	iac_resp_clear(&r);
	return 0;
}

/* NAME of "+switch-master NAME OLD-IP OLD-PORT NEW-IP NEW-PORT" when it is a
 * node of the cluster; its new "IP:PORT" into to. */
static int event_of(char *to, size_t tolen, const json_t *cluster, const iac_resp *m, const char **node)
{
	if (m->type != IAC_RESP_ARRAY || m->n != 3 || m->elems[2].type != IAC_RESP_BULK ||
	    strcmp(m->elems[0].str ?: "", "message"))
		return 0;
	char name[256], oip[64], nip[64];
	unsigned oport, nport;
	if (sscanf(m->elems[2].str, "%255s %63s %u %63s %u", name, oip, &oport, nip, &nport) != 5)
		return 0;
	const json_t *n;
	size_t i;
	json_array_foreach(json_object_get(cluster, "nodes"), i, n) {
		if (!strcmp(iac_json_str(n, "name") ?: "", name)) {
			snprintf(to, tolen, "%s:%u", nip, nport);
			*node = iac_json_str(n, "name");
			return 1;
		}
	}
	return 0;
}

/* iac apply -auto-approve -target ... ARGS, as this same binary; its exit code. */
static int run_apply(const iac_strlist *targets, const iac_strlist *apply_args)
{
	iac_strlist argv = { 0 };
	iac_strlist_push(&argv, "iac");
	iac_strlist_push(&argv, "-no-color");
	iac_strlist_push(&argv, "apply");
	iac_strlist_push(&argv, "-auto-approve");
	for (size_t i = 0; i < targets->n; i++) {
		iac_strlist_push(&argv, "-target");
		iac_strlist_push(&argv, targets->items[i]);
	}
	for (size_t i = 0; i < apply_args->n; i++)
		iac_strlist_push(&argv, apply_args->items[i]);
	char **v = iac_xcalloc(argv.n + 1, sizeof(char *));
	for (size_t i = 0; i < argv.n; i++)
		v[i] = argv.items[i];
	fflush(stdout);
	fflush(stderr);
	int rc = 1;
	pid_t pid = fork();
	if (pid == 0) {
		execv("/proc/self/exe", v);
		_exit(127);
	}
	int st = 0;
	if (pid > 0) {
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		rc = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
	} else {
		iac_log_error("cannot start 'iac apply': %s", strerror(errno));
	}
	free(v);
	iac_strlist_free(&argv);
	return rc;
}

/* One message from s: a promotion of the cluster joins pending (once;
 * *first_event set at the first); a broken connection is closed, to be
 * subscribed again. */
static void read_event(sentinel *s, const json_t *cluster, char *pending, size_t pendlen, double *first_event)
{
	iac_resp m = { 0 };
	if (iac_resp_read(&m, s->c) < 0) {
		iac_log_warn("sentinel '%s': %s; reconnecting", s->addr, iac_err_last());
		iac_cache_conn_close(s->c);
		s->c = NULL;
		return;
	}
	char to[128];
	const char *node = NULL;
	if (event_of(to, sizeof(to), cluster, &m, &node)) {
		char item[400];
		snprintf(item, sizeof(item), "%s now at %s", node, to);
		if (!strstr(pending, item) && strlen(pending) + strlen(item) + 3 < pendlen) {
			iac_log("sentinel %s: %s", s->addr, item);
			snprintf(pending + strlen(pending), pendlen - strlen(pending), "%s%s", *pending ? ", " : "", item);
		}
		if (!*first_event)
			*first_event = iac_now_ms();
	}
	iac_resp_clear(&m);
}

int iac_cache_follow(const json_t *cluster, const iac_strlist *targets, const iac_strlist *apply_args, int once,
		     double timeout_ms)
{
	const char *name = iac_json_str(cluster, "cluster") ?: "?";
	const json_t *list = json_object_get(cluster, "sentinels"), *v;
	sentinel ss[MAX_SENTINELS];
	size_t ns = 0, i;
	json_array_foreach(list, i, v)
		if (json_is_string(v) && ns < MAX_SENTINELS)
			ss[ns++] = (sentinel){ .addr = json_string_value(v), .c = NULL };
	if (!ns) {
		iac_log_error("cache '%s' has no Sentinels to follow (replicas = 1 starts them)", name);
		return 1;
	}
	size_t up = 0;
	for (i = 0; i < ns; i++)
		if (subscribe(&ss[i]) == 0)
			up++;
		else
			iac_log_warn("%s; retrying every second", iac_err_last());
	iac_log("following cache '%s': subscribed to +switch-master on %zu of %zu sentinels", name, up, ns);
	double start = iac_now_ms(), last_try = start, first_event = 0;
	char pending[4096] = "", done_to[4096] = "";
	int rc = 0;
	for (;;) {
		struct pollfd pfd[MAX_SENTINELS];
		size_t map[MAX_SENTINELS], np = 0;
		int buffered = 0;
		for (i = 0; i < ns; i++)
			if (ss[i].c) {
				buffered |= iac_cache_conn_buffered(ss[i].c);
				pfd[np] = (struct pollfd){ .fd = iac_cache_conn_fd(ss[i].c), .events = POLLIN };
				map[np++] = i;
			}
		/* the sentinels announce a promotion within milliseconds of each
		 * other: gather for 300 ms, then follow once */
		int wait = first_event ? 50 : 250;
		if (poll(pfd, np, buffered ? 0 : wait) < 0 && errno != EINTR)
			break;
		for (size_t k = 0; k < np; k++) {
			sentinel *s = &ss[map[k]];
			if (iac_cache_conn_buffered(s->c) || (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
				read_event(s, cluster, pending, sizeof(pending), &first_event);
		}
		double now = iac_now_ms();
		if (first_event && now - first_event >= 300) {
			if (strcmp(pending, done_to)) {
				iac_log("cache '%s': %s; applying the ring and proxies", name, pending);
				rc = run_apply(targets, apply_args);
				iac_log("cache '%s': %s %.0f ms after Sentinel's announcement", name,
					rc == 0 ? "followed" : "the follow-up apply failed", iac_now_ms() - first_event);
				snprintf(done_to, sizeof(done_to), "%s", pending);
			}
			*pending = 0;
			first_event = 0;
			if (once)
				break;
			start = iac_now_ms();
		}
		if (timeout_ms > 0 && !first_event && now - start > timeout_ms) {
			iac_log_error("cache '%s': no failover within %.0f s", name, timeout_ms / 1000);
			rc = 1;
			break;
		}
		if (now - last_try >= 1000) {
			last_try = now;
			for (i = 0; i < ns; i++)
				if (!ss[i].c && subscribe(&ss[i]) == 0)
					iac_log("sentinel %s: subscribed again", ss[i].addr);
		}
	}
	for (i = 0; i < ns; i++)
		iac_cache_conn_close(ss[i].c);
	return rc;
}
