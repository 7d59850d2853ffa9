/* Unit tests: iac/host on this machine: iac_host_read and iac_host_stat
 * on a regular file, a missing path, a directory, a symbolic link and
 * binary content with NUL bytes (what the SSH backend returns for the same
 * paths is checked by tests/unit/test_ssh_conn.c against a test-bed host);
 * the size bound; relative paths under local_dir; the SSH settings getter
 * running the configure callback without connecting. */
#include "harness.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iac/core/err.h"
#include "iac/core/util.h"
#include "iac/host/host.h"

static iac_hosts *hosts(void)
{
	iac_hosts *h = NULL;
	iac_hosts_new(&h, iac_test_tmpdir(), NULL, NULL);
	return h;
}

static char *tmp(const char *name)
{
	return iac_xasprintf("%s/%s", iac_test_tmpdir(), name);
}

static void test_regular_file(void)
{
	iac_hosts *h = hosts();
	char *p = tmp("motd"), *out = NULL, hex[65];
	size_t len = 99;
	iac_host_stat_info st;
	CHECK_INT(iac_host_write(h, NULL, p, "hello\n", 6, "0640", NULL), 0);
	CHECK_INT(iac_host_read(&out, &len, h, NULL, p, 0, 0, NULL), 0);
	CHECK_INT(len, 6);
	CHECK_STR(out, "hello\n");
	CHECK_INT(iac_host_stat(&st, h, NULL, p, 0, NULL), 0);
	CHECK_INT(st.exists, 1);
	CHECK_INT(st.is_file, 1);
	CHECK_INT(st.is_dir, 0);
	CHECK_INT(st.is_link, 0);
	CHECK_STR(st.type, "regular file");
	CHECK_STR(st.mode, "0640");
	CHECK_INT(st.size, 6);
	iac_sha256_hex(hex, "hello\n", 6);
	CHECK_STR(st.sha256, hex);
	CHECK_STR(st.target, "");
	CHECK(st.owner[0] && st.group[0]);
	if (getuid() == 0)
		CHECK_STR(st.owner, "root");
	free(out);
	/* relative: under local_dir */
	CHECK_INT(iac_host_read(&out, &len, h, NULL, "motd", 0, 0, NULL), 0);
	CHECK_STR(out, "hello\n");
	free(out);
	/* an empty file is named the way GNU stat names it */
	CHECK_INT(iac_host_write(h, NULL, "empty", "", 0, NULL, NULL), 0);
	CHECK_INT(iac_host_stat(&st, h, NULL, "empty", 0, NULL), 0);
	CHECK_STR(st.type, "regular empty file");
	CHECK_INT(st.is_file, 1);
	CHECK_STR(st.mode, "0644");
	free(p);
	iac_hosts_free(h);
}

static void test_missing(void)
{
	iac_hosts *h = hosts();
	char *p = tmp("nothing/here"), *out = (char *)"x";
	size_t len = 5;
	iac_host_stat_info st;
	CHECK_INT(iac_host_read(&out, &len, h, NULL, p, 0, 0, NULL), IAC_ENOTFOUND);
	CHECK(out == NULL);
	CHECK_INT(len, 0);
	CHECK_CONTAINS(iac_err_last(), "does not exist on this machine");
	CHECK_CONTAINS(iac_err_last(), p);
	CHECK_INT(iac_host_stat(&st, h, NULL, p, 0, NULL), 0);
	CHECK_INT(st.exists, 0);
	CHECK_STR(st.type, "");
	free(p);
	iac_hosts_free(h);
}

static void test_directory(void)
{
	iac_hosts *h = hosts();
	char *p = tmp("conf.d"), *out = NULL;
	size_t len;
	iac_host_stat_info st;
	iac_mkdir_p(p, 0750);
	chmod(p, 0750);
	CHECK_INT(iac_host_stat(&st, h, NULL, p, 0, NULL), 0);
	CHECK_INT(st.exists, 1);
	CHECK_INT(st.is_dir, 1);
	CHECK_INT(st.is_file, 0);
	CHECK_STR(st.type, "directory");
	CHECK_STR(st.mode, "0750");
	CHECK_STR(st.sha256, "");
	/* a directory is there but cannot be read: an error, not "missing" */
	CHECK_INT(iac_host_read(&out, &len, h, NULL, p, 0, 0, NULL), IAC_ERR);
	CHECK(out == NULL);
	CHECK_CONTAINS(iac_err_last(), "cannot read");
	CHECK_CONTAINS(iac_err_last(), "directory");
	free(p);
	iac_hosts_free(h);
}

static void test_symlink(void)
{
	iac_hosts *h = hosts();
	char *p = tmp("link"), *dangling = tmp("dangling"), *out = NULL;
	size_t len;
	iac_host_stat_info st;
	CHECK_INT(iac_host_write(h, NULL, "real.conf", "a=1\n", 4, NULL, NULL), 0);
	CHECK_INT(symlink("real.conf", p), 0);
	CHECK_INT(iac_host_stat(&st, h, NULL, p, 0, NULL), 0);
	CHECK_INT(st.exists, 1);
	CHECK_INT(st.is_link, 1);
	CHECK_INT(st.is_file, 0);   /* not followed */
	CHECK_STR(st.type, "symbolic link");
	CHECK_STR(st.target, "real.conf");
	CHECK_STR(st.sha256, "");
	/* reading follows it */
	CHECK_INT(iac_host_read(&out, &len, h, NULL, p, 0, 0, NULL), 0);
	CHECK_STR(out, "a=1\n");
	free(out);
	/* a link to nothing is there for stat, missing for read */
	CHECK_INT(symlink("/nonexistent/target", dangling), 0);
	CHECK_INT(iac_host_stat(&st, h, NULL, dangling, 0, NULL), 0);
	CHECK_INT(st.is_link, 1);
	CHECK_STR(st.target, "/nonexistent/target");
	CHECK_INT(iac_host_read(&out, &len, h, NULL, dangling, 0, 0, NULL), IAC_ENOTFOUND);
	free(p);
	free(dangling);
	iac_hosts_free(h);
}

static void test_binary_and_bound(void)
{
	iac_hosts *h = hosts();
	static const char bin[] = { 'a', 0, 'b', 0, 0, '\n', (char)0xff, 'c' };
	char *out = NULL, hex[65];
	size_t len = 0;
	iac_host_stat_info st;
	CHECK_INT(iac_host_write(h, NULL, "blob", bin, sizeof(bin), NULL, NULL), 0);
	CHECK_INT(iac_host_read(&out, &len, h, NULL, "blob", 0, 0, NULL), 0);
	CHECK_INT(len, sizeof(bin));
	CHECK(out && memcmp(out, bin, sizeof(bin)) == 0);
	CHECK(out && out[len] == '\0');
	free(out);
	CHECK_INT(iac_host_stat(&st, h, NULL, "blob", 0, NULL), 0);
	CHECK_INT(st.size, sizeof(bin));
	iac_sha256_hex(hex, bin, sizeof(bin));
	CHECK_STR(st.sha256, hex);
	/* exactly max is fine, one byte more is an error, never a short read */
	CHECK_INT(iac_host_read(&out, &len, h, NULL, "blob", sizeof(bin), 0, NULL), 0);
	free(out);
	out = NULL;
	CHECK_INT(iac_host_read(&out, &len, h, NULL, "blob", sizeof(bin) - 1, 0, NULL), IAC_ERR);
	CHECK(out == NULL);
	CHECK_CONTAINS(iac_err_last(), "larger than 7 bytes");
	iac_hosts_free(h);
}

static int configure_calls;

static int configure(iac_hosts *h, void *ud)
{
	iac_ssh_options o = { .user = "deploy", .private_key = "/k/id", .known_hosts = "/k/kh",
			      .passphrase = "secret", .port = 2222 };
	(void)ud;
	configure_calls++;
	return iac_hosts_set_ssh(h, &o);
}

static void test_ssh_settings(void)
{
	iac_hosts *h = NULL;
	iac_ssh_options o;
	iac_ssh_stats s;
	iac_hosts_new(&h, ".", configure, NULL);
	CHECK_INT(iac_hosts_ssh(&o, h), 0);
	CHECK_INT(configure_calls, 1);
	CHECK_STR(o.user, "deploy");
	CHECK_STR(o.private_key, "/k/id");
	CHECK_STR(o.known_hosts, "/k/kh");
	CHECK_INT(o.port, 2222);
	CHECK(o.passphrase == NULL);
	CHECK_INT(iac_hosts_ssh(&o, h), 0);
	CHECK_INT(configure_calls, 1);
	iac_hosts_stats(&s, h);
	CHECK_INT(s.connects, 0);   /* nothing connected */
	iac_hosts_free(h);
	/* without a callback: nothing set, the pool's defaults apply */
	iac_hosts_new(&h, ".", NULL, NULL);
	CHECK_INT(iac_hosts_ssh(&o, h), 0);
	CHECK(o.user == NULL && o.private_key == NULL && o.known_hosts == NULL);
	iac_hosts_free(h);
}

static const iac_test tests[] = {
	TEST(test_regular_file), TEST(test_missing), TEST(test_directory), TEST(test_symlink),
	TEST(test_binary_and_bound), TEST(test_ssh_settings), { 0 },
};

int main(void)
{
	return iac_test_run(tests);
}
