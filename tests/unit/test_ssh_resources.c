/* The ssh provider's resource types, called directly against real sshd on
 * test-bed hosts: file, directory, exec, service, facts. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "iac/core/err.h"
#include "iac/core/util.h"
#include "providers/ssh/ssh.h"
#include "test_ssh_bed.h"
#include "test_ssh_provider.h"

static void test_facts(void)
{
	configure(0);
	json_t *cfg = json_pack("{s:o}", "host", host(1));
	json_t *f = readback(&iac_ssh_facts_type, "data.ssh.facts.h1", cfg);
	CHECK(f != NULL);
	if (f) {
		CHECK_STR(json_string_value(json_object_get(f, "hostname")), "h1");
		CHECK(json_integer_value(json_object_get(f, "cpus")) >= 1);
		CHECK(json_integer_value(json_object_get(f, "memory_mb")) > 64);
		CHECK(json_string_value(json_object_get(f, "arch")) != NULL);
		CHECK(json_is_false(json_object_get(f, "systemd")));
	}
	json_decref(f);
	json_decref(cfg);
}

static void file_cycle(int sftp)
{
	char buf[4096];
	const iac_rtype *t = &iac_ssh_file_type;
	configure(sftp);
	json_t *planned = json_pack("{s:o, s:s, s:s, s:s, s:s, s:s}", "host", host(1),
				    "path", "/srv/app/conf/motd", "content", "hello\n", "mode", "640",
				    "owner", "root", "group", "daemon");
	json_t *st = make(t, "ssh.file.motd", planned);
	CHECK(st != NULL);
	if (!st)
		return;
	CHECK_STR(json_string_value(json_object_get(st, "mode")), "0640");
	CHECK_INT(bed_on(1, buf, sizeof(buf), "stat -c \"%a %U %G\" /srv/app/conf/motd; cat /srv/app/conf/motd"), 0);
	CHECK_STR(buf, "640 root daemon\nhello\n");
	CHECK_INT(bed_on(2, NULL, 0, "test -e /srv/app/conf/motd"), 1);   /* hosts are separate */

	/* no drift: read gives back the same attributes */
	json_t *r = readback(t, "ssh.file.motd", st);
	CHECK(r && json_equal(r, st));
	json_decref(r);

	/* drift: edited on the host -> the new text comes back for a diff */
	bed_on(1, NULL, 0, "echo tampered > /srv/app/conf/motd; chmod 600 /srv/app/conf/motd");
	r = readback(t, "ssh.file.motd", st);
	CHECK(r != NULL);
	if (r) {
		CHECK_STR(json_string_value(json_object_get(r, "content")), "tampered\n");
		CHECK_STR(json_string_value(json_object_get(r, "mode")), "0600");
		CHECK(strcmp(json_string_value(json_object_get(r, "sha256")),
			     json_string_value(json_object_get(st, "sha256"))) != 0);
		iac_rctx ctx = ctx_for("ssh.file.motd");
		json_t *fixed = NULL;
		CHECK(t->update(&ctx, &fixed, r, planned) == 0);
		json_decref(fixed);
		CHECK_INT(bed_on(1, buf, sizeof(buf), "stat -c %a /srv/app/conf/motd; cat /srv/app/conf/motd"), 0);
		CHECK_STR(buf, "640\nhello\n");
	}
	json_decref(r);

	/* mode-only change: no rewrite needed, mode follows */
	json_object_set_new(planned, "mode", json_string("0604"));
	{
		iac_rctx ctx = ctx_for("ssh.file.motd");
		json_t *out = NULL;
		CHECK(t->plan(&ctx, planned, st) == 0);
		CHECK(t->update(&ctx, &out, st, planned) == 0);
		json_decref(out);
		CHECK_INT(bed_on(1, buf, sizeof(buf), "stat -c %a /srv/app/conf/motd"), 0);
		CHECK_STR(buf, "604\n");
	}

	/* deleted on the host -> gone */
	bed_on(1, NULL, 0, "rm /srv/app/conf/motd");
	r = readback(t, "ssh.file.motd", st);
	CHECK(r == NULL);
	json_decref(r);

	/* remove is idempotent */
	iac_rctx ctx = ctx_for("ssh.file.motd");
	CHECK(t->remove(&ctx, st) == 0);
	json_decref(st);
	json_decref(planned);
}

static void test_file(void)
{
	file_cycle(0);
}

static void test_file_sftp(void)
{
	file_cycle(1);
}

static void test_file_source_and_errors(void)
{
	char buf[256], src[512];
	const iac_rtype *t = &iac_ssh_file_type;
	configure(0);
	snprintf(src, sizeof(src), "%s/payload.bin", bed_dir);
	FILE *f = fopen(src, "wb");
	for (int i = 0; i < 300000; i++)
		fputc(i % 251, f);
	fclose(f);
	json_t *planned = json_pack("{s:o, s:s, s:s}", "host", host(2), "path", "/opt/payload.bin",
				    "source", "payload.bin");
	json_t *st = make(t, "ssh.file.payload", planned);
	CHECK(st != NULL);
	CHECK_INT(bed_on(2, buf, sizeof(buf), "sha256sum /opt/payload.bin | cut -c1-64"), 0);
	if (st) {
		buf[64] = '\0';
		CHECK_STR(buf, json_string_value(json_object_get(st, "sha256")));
		CHECK(json_object_get(st, "content") == NULL);   /* big sources stay out of state */
	}
	json_decref(st);
	json_decref(planned);

	/* relative path refused at plan time */
	planned = json_pack("{s:o, s:s, s:s}", "host", host(2), "path", "etc/x", "content", "x");
	iac_rctx ctx = ctx_for("ssh.file.bad");
	CHECK(t->plan(&ctx, planned, NULL) != 0);
	CHECK_CONTAINS(iac_err_last(), "must be absolute");
	json_decref(planned);

	/* a directory in the way: the plan (which looks at what is there
	 * before a create) says so, naming host and path */
	planned = json_pack("{s:o, s:s, s:s}", "host", host(2), "path", "/etc", "content", "x");
	CHECK(t->plan(&ctx, planned, NULL) != 0);
	CHECK_CONTAINS(iac_err_last(), "'h2'");
	CHECK_CONTAINS(iac_err_last(), "/etc");
	CHECK_CONTAINS(iac_err_last(), "is a directory, not a file");
	json_decref(planned);
}

static void test_directory(void)
{
	char buf[256];
	const iac_rtype *t = &iac_ssh_directory_type;
	configure(0);
	json_t *planned = json_pack("{s:o, s:s, s:s, s:s}", "host", host(1), "path", "/srv/data/a",
				    "mode", "0750", "owner", "daemon");
	json_t *st = make(t, "ssh.directory.data", planned);
	CHECK(st != NULL);
	CHECK_INT(bed_on(1, buf, sizeof(buf), "stat -c \"%a %U\" /srv/data/a"), 0);
	CHECK_STR(buf, "750 daemon\n");
	json_t *r = readback(t, "ssh.directory.data", st);
	CHECK(r && json_equal(r, st));
	json_decref(r);

	bed_on(1, NULL, 0, "touch /srv/data/a/stray");
	iac_rctx ctx = ctx_for("ssh.directory.data");
	CHECK(t->remove(&ctx, st) != 0);
	CHECK_CONTAINS(iac_err_last(), "not empty");
	json_object_set_new(st, "force_destroy", json_true());
	CHECK(t->remove(&ctx, st) == 0);
	CHECK_INT(bed_on(1, NULL, 0, "test -e /srv/data/a"), 1);
	r = readback(t, "ssh.directory.data", st);
	CHECK(r == NULL);
	CHECK(t->remove(&ctx, st) == 0);
	json_decref(st);
	json_decref(planned);
}

static void test_exec(void)
{
	char buf[256];
	const iac_rtype *t = &iac_ssh_exec_type;
	configure(0);
	json_t *planned = json_pack("{s:o, s:s, s:s, s:s, s:{s:s}, s:s}", "host", host(1),
				    "create", "echo \"$GREETING\" > /srv/seeded; echo done; pwd",
				    "destroy", "rm -f /srv/seeded", "check", "test -f /srv/seeded",
				    "environment", "GREETING", "it's here", "working_dir", "/srv");
	json_t *st = make(t, "ssh.exec.seed", planned);
	CHECK(st != NULL);
	if (!st)
		return;
	CHECK_STR(json_string_value(json_object_get(st, "stdout")), "done\n/srv\n");
	CHECK_INT(bed_on(1, buf, sizeof(buf), "cat /srv/seeded"), 0);
	CHECK_STR(buf, "it's here\n");
	json_t *r = readback(t, "ssh.exec.seed", st);
	CHECK(r != NULL);
	json_decref(r);
	bed_on(1, NULL, 0, "rm /srv/seeded");
	r = readback(t, "ssh.exec.seed", st);
	CHECK(r == NULL);
	iac_rctx ctx = ctx_for("ssh.exec.seed");
	CHECK(t->remove(&ctx, st) == 0);
	json_decref(st);
	json_decref(planned);

	/* a failure names host, command, status and stderr */
	planned = json_pack("{s:o, s:s}", "host", host(2), "create", "echo oops >&2; exit 3");
	json_t *out = NULL;
	CHECK(t->create(&ctx, &out, planned) != 0);
	CHECK_CONTAINS(iac_err_last(), "'h2'");
	CHECK_CONTAINS(iac_err_last(), "exit status 3");
	CHECK_CONTAINS(iac_err_last(), "echo oops >&2; exit 3");
	CHECK_CONTAINS(iac_err_last(), "stderr: oops");
	json_decref(planned);

	/* a command past its deadline is killed on the host too */
	planned = json_pack("{s:o, s:s, s:s}", "host", host(2), "create", "sleep 30; touch /tmp/late",
			    "timeout", "1s");
	double t0 = iac_now_ms();
	CHECK(t->create(&ctx, &out, planned) != 0);
	CHECK(iac_now_ms() - t0 < 10000);
	CHECK_CONTAINS(iac_err_last(), "timed out");
	CHECK_INT(bed_on(2, NULL, 0, "pgrep -f \"sleep 30\""), 1);
	json_decref(planned);
}

/* Many threads on one host: one connection, batched reads, right answers. */
#define NTHREADS 8
#define NFILES 8
static json_t *states[NTHREADS][NFILES];

static void *worker(void *arg)
{
	long k = (long)arg;
	for (int i = 0; i < NFILES; i++) {
		char path[64], content[64];
		snprintf(path, sizeof(path), "/srv/many/%ld/f%d", k, i);
		snprintf(content, sizeof(content), "file %ld.%d\n", k, i);
		json_t *planned = json_pack("{s:o, s:s, s:s}", "host", host(3), "path", path, "content", content);
		iac_rctx ctx = ctx_for("ssh.file.many");
		json_t *out = NULL;
		if (iac_ssh_file_type.plan(&ctx, planned, NULL) == 0 && iac_ssh_file_type.create(&ctx, &out, planned) == 0)
			states[k][i] = out;
		else
			fprintf(stderr, "create %s: %s\n", path, iac_err_last());
		json_decref(planned);
	}
	for (int i = 0; i < NFILES; i++) {
		json_t *r = NULL;
		iac_rctx ctx = ctx_for("ssh.file.many");
		if (!states[k][i] || iac_ssh_file_type.read(&ctx, &r, states[k][i]) != 0 || !r ||
		    !json_equal(r, states[k][i])) {
			fprintf(stderr, "read back %ld/%d wrong: %s\n", k, i, iac_err_last());
			json_decref(states[k][i]);
			states[k][i] = NULL;
		}
		json_decref(r);
	}
	return NULL;
}

static void test_concurrent_one_host(void)
{
	pthread_t th[NTHREADS];
	iac_ssh_stats s;
	configure(0);
	for (long k = 0; k < NTHREADS; k++)
		pthread_create(&th[k], NULL, worker, (void *)k);
	for (long k = 0; k < NTHREADS; k++)
		pthread_join(th[k], NULL);
	int ok = 0;
	for (int k = 0; k < NTHREADS; k++)
		for (int i = 0; i < NFILES; i++) {
			ok += states[k][i] != NULL;
			json_decref(states[k][i]);
		}
	CHECK_INT(ok, NTHREADS * NFILES);
	iac_hosts_stats(&s, iac_providers_hosts(pv));
	CHECK_INT(s.connects, 1);
	/* per file: the takeover check and the write (create), at most one
	 * stat batch for plan and one for the read; batching makes it fewer */
	fprintf(stderr, "  %lu channels for %d writes + %d reads\n", s.channels, NTHREADS * NFILES, NTHREADS * NFILES);
	CHECK(s.channels <= 4 * NTHREADS * NFILES);
	char buf[64];
	CHECK_INT(bed_on(3, buf, sizeof(buf), "ls /srv/many/*/* | wc -l"), 0);
	CHECK_INT(atoi(buf), NTHREADS * NFILES);
}

static void test_close(void)
{
	iac_providers_free(pv);
	pv = NULL;
}

static const iac_test tests[] = {
	TEST(test_facts),
	TEST(test_file),
	TEST(test_file_sftp),
	TEST(test_file_source_and_errors),
	TEST(test_directory),
	TEST(test_exec),
	TEST(test_concurrent_one_host),
	TEST(test_close),
	{ 0 },
};

int main(void)
{
	static iac_test only[2];
	const char *want = getenv("IAC_TEST_ONLY");
	for (const iac_test *t = tests; want && t->name; t++)
		if (!strcmp(t->name, want))
			only[0] = *t;
	int rc = iac_bed_main(only[0].name ? only : tests, 3);
	return rc;
}
