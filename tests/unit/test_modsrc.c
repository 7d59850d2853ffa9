/* modsrc: parsing module sources (a pure function) and the tree checksum. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "iac/core/util.h"
#include "iac/load/modsrc.h"

static void parses(const char *source, const char *scheme, const char *url, const char *subdir, const char *ref)
{
	iac_modsrc s;
	char err[512] = "";
	CHECK_INT(iac_modsrc_parse(&s, source, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	if (!s.url)
		return;
	CHECK_STR(s.scheme, scheme);
	CHECK_STR(s.url, url);
	CHECK_STR(s.subdir, subdir);
	if (ref)
		CHECK_STR(s.ref, ref);
	else
		CHECK(s.ref == NULL);
	iac_modsrc_free(&s);
}

static void refuses(const char *source, const char *why)
{
	iac_modsrc s;
	char err[512] = "";
	CHECK_INT(iac_modsrc_parse(&s, source, err, sizeof(err)), -1);
	CHECK_CONTAINS(err, why);
	CHECK(s.url == NULL && s.ref == NULL);
}

static void test_parse(void)
{
	parses("git+https://git.example.com/infra/modules.git//redis?ref=v1.4.0", "https",
	       "https://git.example.com/infra/modules.git", "redis", "v1.4.0");
	parses("git+ssh://git@10.0.0.5/srv/git/modules.git//haproxy?ref=main", "ssh",
	       "ssh://git@10.0.0.5/srv/git/modules.git", "haproxy", "main");
	parses("git+file:///srv/git/modules.git//web?ref=3f2c1e9", "file", "file:///srv/git/modules.git", "web", "3f2c1e9");
	parses("git+ssh://git@h:2222/r.git//a/b/?ref=release/1.x", "ssh", "ssh://git@h:2222/r.git", "a/b", "release/1.x");
	parses("git+git://127.0.0.1:9418/m.git", "git", "git://127.0.0.1:9418/m.git", "", NULL);
	parses("git+https://h/r.git?ref=v1", "https", "https://h/r.git", "", "v1");
	CHECK(iac_modsrc_is_remote("git+file:///x"));
	CHECK(iac_modsrc_is_remote("https://x/y"));
	CHECK(!iac_modsrc_is_remote("./modules/web"));
	CHECK(!iac_modsrc_is_remote("app_pool"));
}

static void test_refuse(void)
{
	refuses("git+http://h/r.git", "unsupported scheme 'http': use https");
	refuses("git+ftp://h/r.git", "unsupported scheme 'ftp'");
	refuses("https://h/r.tgz", "unsupported source 'https://h/r.tgz'");
	refuses("git::https://h/r.git", "write git sources as 'git+https://h/r.git'");
	refuses("git+h/r.git", "expected a URL after 'git+'");
	refuses("git+https:///r.git", "names no host");
	refuses("git+file://host/r.git", "a file URL names no host");
	refuses("git+https://h", "names no repository path");
	refuses("git+https://u:pw@h/r.git", "a password in the source");
	refuses("git+https://h/r.git//", "nothing after '//'");
	refuses("git+https://h/r.git//a/../../x", "must stay inside the repository");
	refuses("git+https://h/r.git//./x", "must stay inside the repository");
	refuses("git+https://h/r.git//x?ref=", "is not a valid tag");
	refuses("git+https://h/r.git//x?ref=a..b", "is not a valid tag");
	refuses("git+https://h/r.git//x?ref=--upload-pack=x", "is not a valid tag");
	refuses("git+https://h/r.git//x?ref=a&ref=b", "ref given twice");
	refuses("git+https://h/r.git//x?depth=1", "unknown parameter 'depth'");
	refuses("git+https://h/r.git//x?", "'?' with no ref=");
}

static void test_checksum(void)
{
	char tmpl[] = "/tmp/iac-modsrc-XXXXXX";
	char *d = mkdtemp(tmpl), *a = NULL, *b = NULL, *c = NULL;
	CHECK(d != NULL);
	char *sub = iac_path_join(d, "s"), *f = iac_path_join(d, "s/main.lua");
	mkdir(sub, 0700);
	CHECK_INT(iac_file_replace(f, "x", 1, 0600), 0);
	CHECK_INT(iac_modsrc_tree_checksum(&a, d), 0);
	CHECK_INT(iac_modsrc_tree_checksum(&b, d), 0);
	CHECK_STR(a, b);
	CHECK(a && !strncmp(a, "sha256:", 7) && strlen(a) == 7 + 64);
	chmod(f, 0700);   /* the executable bit is part of the tree */
	CHECK_INT(iac_modsrc_tree_checksum(&c, d), 0);
	CHECK(strcmp(a, c) != 0);
	unlink(f);
	rmdir(sub);
	rmdir(d);
	free(a);
	free(b);
	free(c);
	free(sub);
	free(f);
}

static const iac_test tests[] = { TEST(test_parse), TEST(test_refuse), TEST(test_checksum), { 0 } };

int main(void)
{
	return iac_test_run(tests);
}
