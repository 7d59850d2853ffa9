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
#include "iac/flags/etcd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t num(const char *s)
{
	return (int64_t)strtoll(s, NULL, 10);
}

static int run(iac_etcd *e, int argc, char **argv)
{
	const char *cmd = argv[0];
	int64_t v = 0;
	int rc;

#define NEED(n) do { if (argc < (n)) { fprintf(stderr, "error: '%s' needs %d arguments\n", cmd, (n) - 1); return -1; } } while (0)
	if (strcmp(cmd, "put") == 0) {
		NEED(3);
		rc = iac_etcd_put_rev(&v, e, argv[1], argv[2], strlen(argv[2]), argc > 3 ? num(argv[3]) : 0);
		if (rc == 0)
			printf("%" PRId64 "\n", v);
	} else if (strcmp(cmd, "get") == 0 || strcmp(cmd, "meta") == 0) {
		iac_etcd_kv kv;
		NEED(2);
		rc = iac_etcd_get(&kv, e, argv[1]);
		if (rc == 0) {
			if (cmd[0] == 'g')
				printf("%s\n", kv.value);
			else
				printf("%" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n", kv.create_revision,
				       kv.mod_revision, kv.version, kv.lease);
			iac_etcd_kv_free(&kv);
		}
	} else if (strcmp(cmd, "range") == 0) {
		iac_etcd_kv *kvs;
		size_t n;
		NEED(2);
		rc = iac_etcd_range(&kvs, &n, NULL, e, argv[1]);
		for (size_t i = 0; rc == 0 && i < n; i++)
			printf("%s=%s\n", kvs[i].key, kvs[i].value);
		if (rc == 0)
			iac_etcd_kvs_free(kvs, n);
	} else if (strcmp(cmd, "del") == 0 || strcmp(cmd, "delprefix") == 0) {
		NEED(2);
		rc = iac_etcd_delete(&v, e, argv[1], cmd[3] == 'p');
		if (rc == 0)
			printf("%" PRId64 "\n", v);
	} else if (strcmp(cmd, "cas") == 0) {
		NEED(4);
		rc = iac_etcd_cas(&v, e, argv[1], num(argv[2]), argv[3], strlen(argv[3]), argc > 4 ? num(argv[4]) : 0);
		if (rc == 0)
			printf("%" PRId64 "\n", v);
	} else if (strcmp(cmd, "casdel") == 0) {
		NEED(3);
		rc = iac_etcd_cas_delete(e, argv[1], num(argv[2]));
	} else if (strcmp(cmd, "grant") == 0) {
		NEED(2);
		rc = iac_etcd_lease_grant(&v, e, num(argv[1]));
		if (rc == 0)
			printf("%" PRId64 "\n", v);
	} else if (strcmp(cmd, "keepalive") == 0 || strcmp(cmd, "ttl") == 0) {
		NEED(2);
		rc = cmd[0] == 'k' ? iac_etcd_lease_keepalive(&v, e, num(argv[1])) : iac_etcd_lease_ttl(&v, e, num(argv[1]));
		if (rc == 0)
			printf("%" PRId64 "\n", v);
	} else if (strcmp(cmd, "revoke") == 0) {
		NEED(2);
		rc = iac_etcd_lease_revoke(e, num(argv[1]));
	} else if (strcmp(cmd, "lock") == 0) {
		char *key;
		NEED(4);
		rc = iac_etcd_lock(&key, e, argv[1], num(argv[2]), argc > 4 ? argv[4] : NULL, strtod(argv[3], NULL));
		if (rc == 0) {
			printf("%s\n", key);
			free(key);
		}
	} else if (strcmp(cmd, "unlock") == 0) {
		NEED(2);
		rc = iac_etcd_unlock(e, argv[1]);
	} else if (strcmp(cmd, "wait") == 0 || strcmp(cmd, "waitprefix") == 0) {
		NEED(4);
		rc = iac_etcd_wait(&v, e, argv[1], cmd[4] == 'p', num(argv[2]), strtod(argv[3], NULL));
		if (rc == 0)
			printf("%" PRId64 "\n", v);
	} else if (strcmp(cmd, "hold") == 0) {
		iac_etcd_keeper *k;
		char *key, *msg = NULL;
		int64_t lease;
		NEED(4);
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
			if (iac_etcd_keeper_status(k, &msg) != 0) {
				rc = iac_err_set("keep-alive failed: %s", msg ? msg : "?");
				free(msg);
			}
		}
		iac_etcd_keeper_stop(k, 1);
	} else {
		fprintf(stderr, "error: unknown command '%s'\n", cmd);
		return -1;
	}
	return rc;
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
