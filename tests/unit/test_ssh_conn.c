/* ssh_conn against real sshd on test-bed hosts: host keys (unknown,
 * accepted on request, changed), logins refused (user, key, agent),
 * unreachable and killed hosts failing fast, timeouts and cancel, many
 * threads sharing one connection; iac_host_read and iac_host_stat over SSH
 * saying what they say on this machine. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/host/host.h"
#include "iac/host/ssh_conn.h"
#include "test_ssh_bed.h"

static char key[300], kh[300];

/* the test bed exists (bed_dir is set) once tests run */
static void paths(void)
{
	snprintf(key, sizeof(key), "%s/id_ed25519", bed_dir);
	snprintf(kh, sizeof(kh), "%s/known_hosts", bed_dir);
}

static iac_ssh_pool *pool_with(const char *known_hosts, const char *private_key, int accept_new)
{
	paths();
	iac_ssh_options o = { .private_key = private_key, .known_hosts = known_hosts, .accept_new = accept_new,
			      .connect_timeout_ms = 10000 };
	iac_ssh_pool *p = NULL;
	CHECK(iac_ssh_pool_new(&p, &o) == 0);
	return p;
}

static int try_connect(iac_ssh_pool *p, int host, const char *user, int port)
{
	iac_ssh_conn *c;
	char name[8];
	snprintf(name, sizeof(name), "h%d", host);
	iac_ssh_target t = { .name = name, .address = bed_addr[host - 1], .user = user, .port = port };
	return iac_ssh_pool_get(&c, p, &t, NULL);
}

static iac_ssh_conn *conn(iac_ssh_pool *p, int host)
{
	iac_ssh_conn *c = NULL;
	char name[8];
	snprintf(name, sizeof(name), "h%d", host);
	iac_ssh_target t = { .name = name, .address = bed_addr[host - 1] };
	if (iac_ssh_pool_get(&c, p, &t, NULL) != 0)
		fprintf(stderr, "connect: %s\n", iac_err_last());
	CHECK(c != NULL);
	return c;
}

/* "SHA256:..." of host hN's key, as ssh-keygen prints it. */
static void host_fp(int host, char *out, size_t len)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "ssh-keygen -lf %s/hosts/h%d/upper/etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2",
		 bed_dir, host);
	FILE *f = popen(cmd, "r");
	out[0] = '\0';
	if (f && fgets(out, (int)len, f))
		out[strcspn(out, "\n")] = '\0';
	if (f)
		pclose(f);
}

static void test_exec_basics(void)
{
	iac_ssh_pool *p = pool_with(kh, key, 0);
	iac_ssh_conn *c = conn(p, 1);
	iac_ssh_result r;
	if (!c)
		goto done;
	CHECK_CONTAINS(iac_ssh_conn_label(c), "'h1' (");
	CHECK(iac_ssh_exec(&r, c, "cat; echo err >&2; exit 7", "in put", 6, 10000, NULL) == 0);
	CHECK_INT(r.status, 7);
	CHECK_STR(r.out, "in put");
	CHECK_STR(r.err, "err\n");
	iac_ssh_result_free(&r);
	CHECK(iac_ssh_exec(&r, c, "kill -9 $$", NULL, 0, 10000, NULL) == 0);
	CHECK_INT(r.status, 128 + 9);
	CHECK_STR(r.signal, "KILL");
	iac_ssh_result_free(&r);
	/* big in, big out: windows and partial writes */
	size_t big = 3u << 20;
	char *data = iac_xmalloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)('a' + i % 26);
	char hex[65];
	iac_sha256_hex(hex, data, big);
	CHECK(iac_ssh_exec(&r, c, "sha256sum | cut -c1-64; head -c 2000000 /dev/zero", data, big, 30000, NULL) == 0);
	CHECK_INT(r.status, 0);
	CHECK_INT(r.out_len, 65 + 2000000);
	if (r.out_len > 64)
		CHECK(memcmp(r.out, hex, 64) == 0);
	iac_ssh_result_free(&r);
	free(data);
	/* SFTP write */
	CHECK(iac_ssh_sftp_write(c, "/tmp/sftp-test", "sftp!", 5, 0600, 10000, NULL) == 0);
	CHECK(iac_ssh_exec(&r, c, "stat -c %a /tmp/sftp-test; cat /tmp/sftp-test", NULL, 0, 10000, NULL) == 0);
	CHECK_STR(r.out, "600\nsftp!");
	iac_ssh_result_free(&r);
	CHECK(iac_ssh_sftp_write(c, "/nonexistent/dir/f", "x", 1, 0600, 10000, NULL) == IAC_ENOTFOUND);
	iac_ssh_stats s;
	iac_ssh_pool_stats(&s, p);
	CHECK_INT(s.connects, 1);
done:
	iac_ssh_pool_free(p);
}

static void test_timeout_and_cancel(void)
{
	iac_ssh_pool *p = pool_with(kh, key, 0);
	iac_ssh_conn *c = conn(p, 1);
	iac_ssh_result r;
	if (!c)
		goto done;
	double t0 = iac_now_ms();
	CHECK(iac_ssh_exec(&r, c, "sleep 20", NULL, 0, 500, NULL) == IAC_ETIMEOUT);
	CHECK(iac_now_ms() - t0 < 4000);
	iac_ssh_result_free(&r);
	/* killed on the host too, not only abandoned here */
	CHECK_INT(bed_on(1, NULL, 0, "pgrep -f \"sleep 20\""), 1);
	/* the connection survives an abandoned channel */
	CHECK(iac_ssh_exec(&r, c, "echo still here", NULL, 0, 10000, NULL) == 0);
	CHECK_STR(r.out, "still here\n");
	iac_ssh_result_free(&r);
	volatile int cancel = 1;
	t0 = iac_now_ms();
	CHECK(iac_ssh_exec(&r, c, "sleep 20", NULL, 0, 30000, &cancel) == IAC_EINTR);
	CHECK(iac_now_ms() - t0 < 4000);
	iac_ssh_result_free(&r);
done:
	iac_ssh_pool_free(p);
}

static void test_unknown_host_key(void)
{
	char empty[300], fp[128];
	snprintf(empty, sizeof(empty), "%s/kh_empty", bed_dir);
	FILE *f = fopen(empty, "w");
	fclose(f);
	host_fp(2, fp, sizeof(fp));
	iac_ssh_pool *p = pool_with(empty, key, 0);
	CHECK(try_connect(p, 2, NULL, 0) != 0);
	CHECK_CONTAINS(iac_err_last(), "host key of 'h2'");
	CHECK_CONTAINS(iac_err_last(), "unknown");
	CHECK_CONTAINS(iac_err_last(), fp);
	CHECK_CONTAINS(iac_err_last(), "ssh-keyscan");
	CHECK_CONTAINS(iac_err_last(), "-ssh-accept-new");
	iac_ssh_pool_free(p);

	/* -ssh-accept-new: trusted on first use and written down */
	p = pool_with(empty, key, 1);
	CHECK(try_connect(p, 2, NULL, 0) == 0);
	iac_ssh_pool_free(p);
	p = pool_with(empty, key, 0);
	CHECK(try_connect(p, 2, NULL, 0) == 0);
	iac_ssh_pool_free(p);
}

static void test_changed_host_key(void)
{
	char bad[300], cmd[1024];
	snprintf(bad, sizeof(bad), "%s/kh_changed", bed_dir);
	/* h2's address with some other host's key */
	snprintf(cmd, sizeof(cmd), "echo \"%s $(cut -d' ' -f1,2 %s/hosts/h1/upper/etc/ssh/ssh_host_ed25519_key.pub)\" > %s",
		 bed_addr[1], bed_dir, bad);
	CHECK(system(cmd) == 0);
	for (int accept = 0; accept <= 1; accept++) {
		iac_ssh_pool *p = pool_with(bad, key, accept);
		CHECK(try_connect(p, 2, NULL, 0) != 0);
		CHECK_CONTAINS(iac_err_last(), "CHANGED");
		CHECK_CONTAINS(iac_err_last(), "ssh-keygen -R");
		iac_ssh_pool_free(p);
	}
}

/* A machine iac has just created at an address another one had
 * (iac_ssh_pool_renew): the old key's lines for that address go, its key
 * is trusted once and recorded; every other line stays as written. */
static void test_renewed_host_key(void)
{
	char path[300], cmd[2048], *text = NULL;
	size_t len = 0;
	const char *a = bed_addr[1];
	snprintf(path, sizeof(path), "%s/kh_renew", bed_dir);
	snprintf(cmd, sizeof(cmd),
		 "k=$(cut -d' ' -f1,2 %s/hosts/h1/upper/etc/ssh/ssh_host_ed25519_key.pub); "
		 "printf '%%s\\n' \"%s $k\" \"10.9.9.9 $k\" \"old.example,%s $k\" \"[%s]:2222 $k\" "
		 "\"%s3 $k\" > %s",
		 bed_dir, a, a, a, a, path);
	CHECK(system(cmd) == 0);
	iac_ssh_pool *p = pool_with(path, key, 0);
	CHECK(try_connect(p, 2, NULL, 0) != 0);
	CHECK_CONTAINS(iac_err_last(), "CHANGED");
	iac_ssh_pool_free(p);

	p = pool_with(path, key, 0);
	CHECK(iac_ssh_pool_renew(p, a, 22) == 0);
	CHECK(try_connect(p, 2, NULL, 0) == 0);
	iac_ssh_pool_free(p);
	CHECK(iac_file_read(&text, &len, path) == 0);
	char line[128];
	snprintf(line, sizeof(line), "\n%s ssh-ed25519 ", a);
	CHECK(strstr(text, line) != NULL);            /* the new key, recorded */
	snprintf(line, sizeof(line), "old.example,%s ", a);
	CHECK(strstr(text, line) == NULL);            /* a list naming it goes too */
	CHECK(strstr(text, "10.9.9.9 ") == text);     /* the others stay, in order */
	snprintf(line, sizeof(line), "[%s]:2222 ", a);
	CHECK(strstr(text, line) != NULL);
	snprintf(line, sizeof(line), "\n%s3 ", a);
	CHECK(strstr(text, line) != NULL);
	free(text);

	/* trusted once: the next pool meets the recorded key, nothing renewed */
	p = pool_with(path, key, 0);
	CHECK(try_connect(p, 2, NULL, 0) == 0);
	iac_ssh_pool_free(p);
}

static void test_login_refused(void)
{
	paths();
	char other[300], cmd[600];
	iac_ssh_pool *p = pool_with(kh, key, 0);
	CHECK(try_connect(p, 1, "nobody", 0) != 0);
	CHECK_CONTAINS(iac_err_last(), "as 'nobody'");
	CHECK_CONTAINS(iac_err_last(), "authorized_keys");
	iac_ssh_pool_free(p);

	snprintf(other, sizeof(other), "%s/other_key", bed_dir);
	snprintf(cmd, sizeof(cmd), "ssh-keygen -q -t ed25519 -N '' -f %s", other);
	CHECK(system(cmd) == 0);
	p = pool_with(kh, other, 0);
	CHECK(try_connect(p, 1, NULL, 0) != 0);
	CHECK_CONTAINS(iac_err_last(), "refused key");
	CHECK(strstr(iac_err_last(), "PRIVATE KEY") == NULL);
	iac_ssh_pool_free(p);

	p = pool_with(kh, "/nonexistent/key", 0);
	CHECK(try_connect(p, 1, NULL, 0) != 0);
	CHECK_CONTAINS(iac_err_last(), "cannot read private key");
	iac_ssh_pool_free(p);
}

static void test_agent(void)
{
	paths();
	char sock[300], cmd[700], pidbuf[32] = "";
	snprintf(sock, sizeof(sock), "%s/agent.sock", bed_dir);
	char *old = getenv("SSH_AUTH_SOCK") ? iac_xstrdup(getenv("SSH_AUTH_SOCK")) : NULL;
	unsetenv("SSH_AUTH_SOCK");
	iac_ssh_pool *p = pool_with(kh, NULL, 0);
	CHECK(try_connect(p, 1, NULL, 0) != 0);
	CHECK_CONTAINS(iac_err_last(), "ssh-agent");
	iac_ssh_pool_free(p);

	snprintf(cmd, sizeof(cmd), "ssh-agent -a %s -s | sed -n 's/^SSH_AGENT_PID=\\([0-9]*\\);.*/\\1/p'", sock);
	FILE *f = popen(cmd, "r");
	if (f && fgets(pidbuf, sizeof(pidbuf), f))
		pidbuf[strcspn(pidbuf, "\n")] = '\0';
	if (f)
		pclose(f);
	CHECK(atoi(pidbuf) > 0);
	snprintf(cmd, sizeof(cmd), "SSH_AUTH_SOCK=%s ssh-add -q %s 2>/dev/null", sock, key);
	CHECK(system(cmd) == 0);
	setenv("SSH_AUTH_SOCK", sock, 1);
	p = pool_with(kh, NULL, 0);
	CHECK(try_connect(p, 1, NULL, 0) == 0);
	iac_ssh_pool_free(p);
	if (atoi(pidbuf) > 0)
		kill(atoi(pidbuf), SIGTERM);
	if (old)
		setenv("SSH_AUTH_SOCK", old, 1);
	else
		unsetenv("SSH_AUTH_SOCK");
	free(old);
}

static void test_unreachable_fails_fast(void)
{
	iac_ssh_pool *p = pool_with(kh, key, 0);
	double t0 = iac_now_ms();
	CHECK(try_connect(p, 1, NULL, 2222) != 0);
	CHECK_CONTAINS(iac_err_last(), "cannot connect to 'h1'");
	CHECK_CONTAINS(iac_err_last(), ":2222): Connection refused");
	/* the failure is remembered: no second attempt */
	double t1 = iac_now_ms();
	CHECK(try_connect(p, 1, NULL, 2222) != 0);
	CHECK_CONTAINS(iac_err_last(), "Connection refused");
	CHECK(iac_now_ms() - t1 < 5);
	CHECK(t1 - t0 < 3000);
	iac_ssh_pool_free(p);
}

static void test_host_killed(void)
{
	char cmd[1200];
	iac_ssh_pool *p = pool_with(kh, key, 0);
	iac_ssh_conn *c = conn(p, 2);
	iac_ssh_result r;
	if (!c)
		goto done;
	CHECK(iac_ssh_exec(&r, c, "true", NULL, 0, 10000, NULL) == 0);
	iac_ssh_result_free(&r);
	snprintf(cmd, sizeof(cmd), "bash %s kill %s h2", bed_script, bed_dir);
	CHECK(system(cmd) == 0);
	double t0 = iac_now_ms();
	CHECK(iac_ssh_exec(&r, c, "true", NULL, 0, 10000, NULL) == IAC_ERR);
	CHECK_CONTAINS(iac_err_last(), "lost the connection to 'h2'");
	iac_ssh_result_free(&r);
	CHECK(iac_now_ms() - t0 < 8000);
	t0 = iac_now_ms();
	CHECK(iac_ssh_exec(&r, c, "true", NULL, 0, 10000, NULL) == IAC_ERR);
	CHECK(iac_now_ms() - t0 < 5);
	iac_ssh_result_free(&r);
	snprintf(cmd, sizeof(cmd), "bash %s start %s h2", bed_script, bed_dir);
	CHECK(system(cmd) == 0);
done:
	iac_ssh_pool_free(p);
}

/* Threads sharing one connection each get their own answers. */
#define NT 16
#define NR 12
static iac_ssh_conn *shared;
static int thread_bad;

static void *runner(void *arg)
{
	long k = (long)arg;
	for (int i = 0; i < NR; i++) {
		char cmd[128], want[64];
		iac_ssh_result r;
		snprintf(cmd, sizeof(cmd), "echo %ld-%d; echo e%ld >&2; %s", k, i, k,
			 i % 4 == 0 ? "sleep 0.2" : "true");
		snprintf(want, sizeof(want), "%ld-%d\n", k, i);
		if (iac_ssh_exec(&r, shared, cmd, NULL, 0, 30000, NULL) != 0 || strcmp(r.out, want) || r.status) {
			fprintf(stderr, "thread %ld run %d: got '%s' (%s)\n", k, i, r.out ? r.out : "", iac_err_last());
			__atomic_add_fetch(&thread_bad, 1, __ATOMIC_RELAXED);
		}
		iac_ssh_result_free(&r);
	}
	return NULL;
}

static void test_threads_share_connection(void)
{
	iac_ssh_pool *p = pool_with(kh, key, 0);
	pthread_t th[NT];
	shared = conn(p, 1);
	if (!shared)
		goto done;
	double t0 = iac_now_ms();
	for (long k = 0; k < NT; k++)
		pthread_create(&th[k], NULL, runner, (void *)k);
	for (long k = 0; k < NT; k++)
		pthread_join(th[k], NULL);
	CHECK_INT(thread_bad, 0);
	iac_ssh_stats s;
	iac_ssh_pool_stats(&s, p);
	CHECK_INT(s.connects, 1);
	CHECK_INT(s.channels, NT * NR);
	/* sleeps of 0.2 s overlap across channels: far less than 16 * 3 * 0.2 s */
	fprintf(stderr, "  %d commands on one connection in %.0f ms\n", NT * NR, iac_now_ms() - t0);
done:
	iac_ssh_pool_free(p);
}


/* The same files on h1 and in a local directory: both backends agree. */
static void test_host_read_stat(void)
{
	static const char bin[] = { 'a', 0, 'b', 0, 0, '\n', (char)0xff, 'c' };
	iac_ssh_options o = { .private_key = key, .known_hosts = kh, .connect_timeout_ms = 10000 };
	char *local = iac_xasprintf("%s/host-files", iac_test_tmpdir());
	json_t *remote = json_pack("{s:s,s:s}", "name", "h1", "address", bed_addr[0]);
	iac_hosts *h = NULL;
	paths();
	iac_mkdir_p(local, 0755);
	iac_hosts_new(&h, local, NULL, NULL);
	CHECK_INT(iac_hosts_set_ssh(h, &o), 0);
	const json_t *where[2] = { NULL, remote };
	const char *dir[2] = { local, "/tmp/host-files" };
	for (int k = 0; k < 2; k++) {
		char p[300], q[300], *out = NULL;
		size_t len = 0;
		iac_host_stat_info st;
		snprintf(p, sizeof(p), "%s/blob", dir[k]);
		CHECK_INT(iac_host_write(h, where[k], p, bin, sizeof(bin), "0600", NULL), 0);
		CHECK_INT(iac_host_read(&out, &len, h, where[k], p, 0, 0, NULL), 0);
		CHECK_INT(len, sizeof(bin));
		CHECK(out && memcmp(out, bin, sizeof(bin)) == 0);
		free(out);
		CHECK_INT(iac_host_read(&out, &len, h, where[k], p, sizeof(bin) - 1, 0, NULL), IAC_ERR);
		CHECK_CONTAINS(iac_err_last(), "larger than 7 bytes");
		CHECK_INT(iac_host_stat(&st, h, where[k], p, 0, NULL), 0);
		CHECK_STR(st.type, "regular file");
		CHECK_STR(st.mode, "0600");
		CHECK_STR(st.owner, "root");
		CHECK_INT(st.size, sizeof(bin));
		char hex[65];
		iac_sha256_hex(hex, bin, sizeof(bin));
		CHECK_STR(st.sha256, hex);
		/* missing */
		snprintf(q, sizeof(q), "%s/none", dir[k]);
		CHECK_INT(iac_host_read(&out, &len, h, where[k], q, 0, 0, NULL), IAC_ENOTFOUND);
		CHECK_CONTAINS(iac_err_last(), "does not exist on");
		CHECK_INT(iac_host_stat(&st, h, where[k], q, 0, NULL), 0);
		CHECK_INT(st.exists, 0);
		/* a directory */
		CHECK_INT(iac_host_stat(&st, h, where[k], dir[k], 0, NULL), 0);
		CHECK_INT(st.is_dir, 1);
		CHECK_STR(st.type, "directory");
		CHECK_INT(iac_host_read(&out, &len, h, where[k], dir[k], 0, 0, NULL), IAC_ERR);
		CHECK_CONTAINS(iac_err_last(), "directory");
		/* a symbolic link, not followed by stat, followed by read */
		snprintf(q, sizeof(q), "ln -sfn 'blob' %s/link", dir[k]);
		CHECK_INT(iac_host_run(NULL, h, where[k], q, 0, NULL), 0);
		snprintf(q, sizeof(q), "%s/link", dir[k]);
		CHECK_INT(iac_host_stat(&st, h, where[k], q, 0, NULL), 0);
		CHECK_INT(st.is_link, 1);
		CHECK_INT(st.is_file, 0);
		CHECK_STR(st.type, "symbolic link");
		CHECK_STR(st.target, "blob");
		CHECK_STR(st.sha256, "");
		CHECK_INT(iac_host_read(&out, &len, h, where[k], q, 0, 0, NULL), 0);
		CHECK_INT(len, sizeof(bin));
		free(out);
	}
	iac_hosts_free(h);
	json_decref(remote);
	free(local);
}

static const iac_test tests[] = {
	TEST(test_exec_basics),
	TEST(test_host_read_stat),
	TEST(test_timeout_and_cancel),
	TEST(test_unknown_host_key),
	TEST(test_changed_host_key),
	TEST(test_renewed_host_key),
	TEST(test_login_refused),
	TEST(test_agent),
	TEST(test_unreachable_fails_fast),
	TEST(test_host_killed),
	TEST(test_threads_share_connection),
	{ 0 },
};

int main(void)
{
	static iac_test only[2];
	const char *want = getenv("IAC_TEST_ONLY");
	for (const iac_test *t = tests; want && t->name; t++)
		if (!strcmp(t->name, want))
			only[0] = *t;
	return iac_bed_main(only[0].name ? only : tests, 2);
}
