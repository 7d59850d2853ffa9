/* iac-etcd: a command-line driver for iac/flags/etcd, used by tests/flags/test_*.sh scripts
 * and handy to poke at a cluster by hand.
 *
 *   iac-etcd [-e ENDPOINTS] [-t TIMEOUT_MS] [-u USER:PASSWORD] COMMAND ARGS...
 *     put KEY VALUE [LEASE]        get KEY            meta KEY
 *     range PREFIX                 del KEY            delprefix PREFIX
 *     cas KEY EXPECT_REV VALUE [LEASE]                casdel KEY EXPECT_REV
 *     grant TTL    keepalive ID    ttl ID             revoke ID
 *     lock NAME LEASE WAIT_MS [INFO]                  unlock KEY
 *     wait KEY AFTER_REV WAIT_MS   waitprefix PREFIX AFTER_REV WAIT_MS
 *     hold NAME TTL SECONDS [INFO] lock NAME with a fresh TTL lease kept alive
 *                                  in the background for SECONDS, then revoke
 * ENDPOINTS defaults to $ETCD_ENDPOINTS. Exit status: 0 ok, 1 error,
 * 3 not found, 4 locked, 5 conflict, 7 timeout (the negated iac code).
 */
#include "iac/core/err.h"
#include "iac/etcd/etcd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t num(const char *s)
{
	return (int64_t)strtoll(s, NULL, 10);
}

/* A command prints its result on success and returns the iac code. argv[0]
 * is the command name; run() has checked there are enough arguments. */
typedef int (*command_fn)(iac_etcd *e, int argc, char **argv);

/* Most commands answer with one number (a revision, a count, a TTL). The
 * caller stores rc first: print_num(call(&v), v) could read v before the
 * call, as argument order is unspecified. */
static int print_num(int rc, int64_t v)
{
	if (rc == 0)
		printf("%" PRId64 "\n", v);
	return rc;
}

static int cmd_put(iac_etcd *e, int argc, char **argv)
{
	int64_t v = 0;
	int rc = iac_etcd_put_rev(&v, e, argv[1], argv[2], strlen(argv[2]), argc > 3 ? num(argv[3]) : 0);
	return print_num(rc, v);
}

/* get prints the value, meta the revisions, version and lease. */
static int cmd_get(iac_etcd *e, int argc, char **argv)
{
	iac_etcd_kv kv;
	int rc = iac_etcd_get(&kv, e, argv[1]);
	if (rc == 0) {
		if (argv[0][0] == 'g')
			printf("%s\n", kv.value);
		else
			printf("%" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n", kv.create_revision,
			       kv.mod_revision, kv.version, kv.lease);
		iac_etcd_kv_free(&kv);
	}
	return rc;
}

static int cmd_range(iac_etcd *e, int argc, char **argv)
{
	iac_etcd_kv *kvs;
	size_t n;
	int rc = iac_etcd_range(&kvs, &n, NULL, e, argv[1]);
	for (size_t i = 0; rc == 0 && i < n; i++)
		printf("%s=%s\n", kvs[i].key, kvs[i].value);
	if (rc == 0)
		iac_etcd_kvs_free(kvs, n);
	return rc;
}

/* del and delprefix */
static int cmd_del(iac_etcd *e, int argc, char **argv)
{
	int64_t v = 0;
	int rc = iac_etcd_delete(&v, e, argv[1], argv[0][3] == 'p');
	return print_num(rc, v);
}

static int cmd_cas(iac_etcd *e, int argc, char **argv)
{
	int64_t v = 0;
	int rc = iac_etcd_cas(&v, e, argv[1], num(argv[2]), argv[3], strlen(argv[3]), argc > 4 ? num(argv[4]) : 0);
	return print_num(rc, v);
}

static int cmd_casdel(iac_etcd *e, int argc, char **argv)
{
	return iac_etcd_cas_delete(e, argv[1], num(argv[2]));
}

static int cmd_grant(iac_etcd *e, int argc, char **argv)
{
	int64_t v = 0;
	int rc = iac_etcd_lease_grant(&v, e, num(argv[1]));
	return print_num(rc, v);
}

/* keepalive and ttl */
static int cmd_lease(iac_etcd *e, int argc, char **argv)
{
	int64_t v = 0;
	int rc = argv[0][0] == 'k' ? iac_etcd_lease_keepalive(&v, e, num(argv[1]))
				   : iac_etcd_lease_ttl(&v, e, num(argv[1]));
	return print_num(rc, v);
}

static int cmd_revoke(iac_etcd *e, int argc, char **argv)
{
	return iac_etcd_lease_revoke(e, num(argv[1]));
}

static int cmd_lock(iac_etcd *e, int argc, char **argv)
{
	char *key;
	int rc = iac_etcd_lock(&key, e, argv[1], num(argv[2]), argc > 4 ? argv[4] : NULL, strtod(argv[3], NULL));
	if (rc == 0) {
		printf("%s\n", key);
		free(key);
	}
	return rc;
}

static int cmd_unlock(iac_etcd *e, int argc, char **argv)
{
	return iac_etcd_unlock(e, argv[1]);
}

/* wait and waitprefix */
static int cmd_wait(iac_etcd *e, int argc, char **argv)
{
	int64_t v = 0;
	int rc = iac_etcd_wait(&v, e, argv[1], argv[0][4] == 'p', num(argv[2]), strtod(argv[3], NULL));
	return print_num(rc, v);
}

/* hold: lock under a fresh lease that a keeper renews every third of its
 * TTL, for SECONDS, then revoke it. The key is flushed before the sleep:
 * a script reads it while the lock is still held. */
static int cmd_hold(iac_etcd *e, int argc, char **argv)
{
	iac_etcd_keeper *k;
	char *key, *msg = NULL;
	int64_t lease;
	int rc;

	if ((rc = iac_etcd_lease_grant(&lease, e, num(argv[2]))) < 0)
		return rc;
	if ((rc = iac_etcd_keeper_start(&k, e, lease, (double)num(argv[2]) * 1000 / 3)) < 0)
		return rc;
	rc = iac_etcd_lock(&key, e, argv[1], lease, argc > 4 ? argv[4] : NULL, 0);
	if (rc == 0) {
		printf("%s\n", key);
		fflush(stdout);
		free(key);
		usleep((useconds_t)(strtod(argv[3], NULL) * 1e6));
		if (iac_etcd_keeper_status(&msg, k) != 0) {
			rc = iac_err_set("keep-alive failed: %s", msg ? msg : "?");
			free(msg);
		}
	}
	iac_etcd_keeper_stop(k, 1);
	return rc;
}

/* argc counts the command name, as in main(). */
static const struct {
	const char *name;
	int argc;
	command_fn fn;
} commands[] = {
	{ "put", 3, cmd_put },         { "get", 2, cmd_get },
	{ "meta", 2, cmd_get },        { "range", 2, cmd_range },
	{ "del", 2, cmd_del },         { "delprefix", 2, cmd_del },
	{ "cas", 4, cmd_cas },         { "casdel", 3, cmd_casdel },
	{ "grant", 2, cmd_grant },     { "keepalive", 2, cmd_lease },
	{ "ttl", 2, cmd_lease },       { "revoke", 2, cmd_revoke },
	{ "lock", 4, cmd_lock },       { "unlock", 2, cmd_unlock },
	{ "wait", 4, cmd_wait },       { "waitprefix", 4, cmd_wait },
	{ "hold", 4, cmd_hold },
};

static int run(iac_etcd *e, int argc, char **argv)
{
	const char *cmd = argv[0];

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(cmd, commands[i].name) != 0)
			continue;
		/* Usage errors are reported here; they set no iac error. */
		if (argc < commands[i].argc) {
			fprintf(stderr, "error: '%s' needs %d arguments\n", cmd, commands[i].argc - 1);
			return -1;
		}
		return commands[i].fn(e, argc, argv);
	}
	fprintf(stderr, "error: unknown command '%s'\n", cmd);
	return -1;
}

int main(int argc, char **argv)
{
	const char *endpoints = getenv("ETCD_ENDPOINTS"), *auth = NULL;
	double timeout = 5000;
	iac_etcd *e;
	int i = 1, rc;

	while (i + 1 < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-e") == 0)
			endpoints = argv[i + 1];
		else if (strcmp(argv[i], "-t") == 0)
			timeout = strtod(argv[i + 1], NULL);
		else if (strcmp(argv[i], "-u") == 0)
			auth = argv[i + 1];
		else
			break;
		i += 2;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: iac-etcd [-e ENDPOINTS] [-t TIMEOUT_MS] [-u USER:PASSWORD] COMMAND ARGS...\n");
		return 1;
	}
	if (iac_etcd_open(&e, endpoints ? endpoints : "http://127.0.0.1:2379", timeout) < 0) {
		fprintf(stderr, "error: %s\n", iac_err_last());
		return 1;
	}
	if (auth) {
		char *user = strdup(auth), *colon = strchr(user, ':');
		if (colon)
			*colon = '\0';
		rc = iac_etcd_set_auth(e, user, colon ? colon + 1 : "");
		free(user);
		if (rc < 0) {
			fprintf(stderr, "error: %s\n", iac_err_last());
			iac_etcd_close(e);
			return -rc;
		}
	}
	rc = run(e, argc - i, argv + i);
	if (rc < 0 && *iac_err_last())
		fprintf(stderr, "error: %s\n", iac_err_last());
	iac_etcd_close(e);
	return rc < 0 ? -rc : 0;
}
