/* Unit tests for the etcd client pieces that need no server: base64, the
 * endpoint list and the errors when etcd cannot be reached. The tests
 * against a real etcd are in tests/flags/test_etcd.sh. */
#include "harness.h"

#include "iac/core/err.h"
#include "iac/core/base64.h"
#include "iac/etcd/etcd.h"

#include <stdlib.h>

static void check_b64(const char *plain, const char *encoded)
{
	char *e = iac_base64_encode(plain, strlen(plain)), *d = NULL;
	size_t n = 0;
	CHECK_STR(e, encoded);
	CHECK_INT(iac_base64_decode(&d, &n, encoded, strlen(encoded)), 0);
	CHECK_INT(n, strlen(plain));
	CHECK_STR(d, plain);
	free(e);
	free(d);
}

static void test_base64(void)
{
	/* RFC 4648 section 10 */
	check_b64("", "");
	check_b64("f", "Zg==");
	check_b64("fo", "Zm8=");
	check_b64("foo", "Zm9v");
	check_b64("foob", "Zm9vYg==");
	check_b64("fooba", "Zm9vYmE=");
	check_b64("foobar", "Zm9vYmFy");

	unsigned char bin[256];
	for (int i = 0; i < 256; i++)
		bin[i] = (unsigned char)i;
	char *e = iac_base64_encode(bin, sizeof(bin)), *d = NULL;
	size_t n = 0;
	CHECK_INT(iac_base64_decode(&d, &n, e, strlen(e)), 0);
	CHECK_INT(n, 256);
	CHECK(d && memcmp(d, bin, 256) == 0);
	free(e);
	free(d);

	CHECK_INT(iac_base64_decode(&d, &n, "Zm9v!", 5), -1);
	CHECK_CONTAINS(iac_err_last(), "invalid base64");
	CHECK_INT(iac_base64_decode(&d, &n, "Z", 1), -1);
}

static void test_open_and_unreachable(void)
{
	iac_etcd *e = NULL;
	iac_etcd_kv kv;

	CHECK_INT(iac_etcd_open(&e, "", 1000), -1);
	CHECK_CONTAINS(iac_err_last(), "no etcd endpoints");
	CHECK_INT(iac_etcd_open(&e, " , ", 1000), -1);

	/* Port 1 on loopback: nothing listens, the kernel refuses at once. */
	CHECK_INT(iac_etcd_open(&e, "127.0.0.1:1/", 1000), 0);
	CHECK_STR(iac_etcd_endpoint(e), "http://127.0.0.1:1");
	CHECK_INT(iac_etcd_get(&kv, e, "k"), -1);
	CHECK_STR(iac_err_last(), "cannot reach etcd at 'http://127.0.0.1:1': connection refused");
	CHECK_INT(iac_etcd_put(e, "k", "v", 1, 0), -1);
	CHECK_STR(iac_err_last(), "cannot put 'k': cannot reach etcd at 'http://127.0.0.1:1': connection refused");
	iac_etcd_close(e);

	CHECK_INT(iac_etcd_open(&e, "http://127.0.0.1:1,http://127.0.0.1:2", 1000), 0);
	CHECK_INT(iac_etcd_delete(NULL, e, "k", 1), -1);
	CHECK_STR(iac_err_last(), "cannot delete 'k': cannot reach etcd at any endpoint: "
				  "'http://127.0.0.1:1': connection refused; 'http://127.0.0.1:2': connection refused");
	iac_etcd_close(e);
	iac_etcd_close(NULL);
}

/* Answers captured from etcd 3.4's gateway (tests/fuzz/corpus/etcd). */
static void test_parse_answers(void)
{
	static const char range[] =
		"{\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":\"3319814642761637952\","
		"\"revision\":\"4\",\"raft_term\":\"2\"},\"kvs\":[{\"key\":\"bG9jay9hcHAvYWJj\","
		"\"create_revision\":\"4\",\"mod_revision\":\"4\",\"version\":\"1\",\"value\":\"cGlkIDEgb24gdm0=\","
		"\"lease\":\"2324035759727337994\"}],\"count\":\"1\"}";
	static const char conflict[] =
		"{\"header\":{\"revision\":\"5\"},\"responses\":[{\"response_range\":{\"header\":{\"revision\":\"5\"},"
		"\"kvs\":[{\"key\":\"L2lhYy9uZXc=\",\"create_revision\":\"5\",\"mod_revision\":\"5\",\"version\":\"1\","
		"\"value\":\"djE=\"}],\"count\":\"1\"}}]}";
	iac_etcd_kv *kvs = NULL;
	size_t n = 0;
	int64_t rev = 0;

	CHECK_INT(iac_etcd_parse_range(&kvs, &n, &rev, range, strlen(range)), 0);
	CHECK_INT(n, 1);
	CHECK_INT(rev, 4);
	if (n == 1) {
		CHECK_STR(kvs[0].key, "lock/app/abc");
		CHECK_STR(kvs[0].value, "pid 1 on vm");
		CHECK_INT(kvs[0].value_len, 11);
		CHECK_INT(kvs[0].lease, 2324035759727337994LL);
	}
	iac_etcd_kvs_free(kvs, n);
	const char *bad_key = "{\"kvs\":[{\"key\":\"a!\"}]}", *ok = "{\"header\":{\"revision\":\"8\"},\"succeeded\":true}";
	const char *gone = "{\"responses\":[{\"response_range\":{}}]}";
	CHECK_INT(iac_etcd_parse_range(&kvs, &n, NULL, bad_key, strlen(bad_key)), -1);
	CHECK_CONTAINS(iac_err_last(), "undecodable key or value");
	CHECK(kvs == NULL && n == 0);
	CHECK_INT(iac_etcd_parse_range(&kvs, &n, NULL, "{\"kvs\":", 7), -1);
	CHECK_CONTAINS(iac_err_last(), "etcd sent invalid JSON for 'kv/range'");

	CHECK_INT(iac_etcd_parse_txn(&rev, ok, strlen(ok)), 0);
	CHECK_INT(rev, 8);
	CHECK_INT(iac_etcd_parse_txn(&rev, conflict, strlen(conflict)), IAC_ECONFLICT);
	CHECK_INT(rev, 5);
	CHECK_STR(iac_err_last(), "etcd txn compare failed: the key is at revision 5 now");
	CHECK_INT(iac_etcd_parse_txn(&rev, gone, strlen(gone)), IAC_ECONFLICT);
	CHECK_INT(rev, 0);
}

static const iac_test tests[] = {
	TEST(test_base64),
	TEST(test_open_and_unreachable),
	TEST(test_parse_answers),
	{ 0 },
};

int main(void)
{
	return iac_test_run(tests);
}
