/* Unit tests for the etcd client pieces that need no server: base64, the
 * endpoint list and the errors when etcd cannot be reached. The tests
 * against a real etcd are in tests/flags/test_etcd.sh. */
#include "harness.h"

#include "iac/core/err.h"
#include "iac/core/base64.h"
#include "iac/flags/etcd.h"

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

static const iac_test tests[] = {
	TEST(test_base64),
	TEST(test_open_and_unreachable),
	{ 0 },
};

int main(void)
{
	return iac_test_run(tests);
}
