/* Unit tests for the cache ring (iac/core/ketama.c): key hashes and
 * continuum points against vectors computed independently (Python's hashlib
 * and a transcription of twemproxy's arithmetic), weighted point counts,
 * placement of known keys, shares and the movement on add/remove. The
 * placement against a real nutcracker is tests/cache/test_ring_nutcracker.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "harness.h"
#include "iac/core/err.h"
#include "iac/core/ketama.h"

static iac_ketama *make(const char *hash, size_t n, const char *const *pn, const uint32_t *w)
{
	iac_ketama_node nodes[16];
	char names[16][32];
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "n%zu", i + 1);
		nodes[i] = (iac_ketama_node){ names[i], pn[i], w ? w[i] : 1 };
	}
	iac_ketama *r = NULL;
	if (iac_ketama_new(&r, nodes, n, hash, NULL, 160) < 0)
		fprintf(stderr, "ring: %s\n", iac_err_last());
	return r;
}

static const char *const loop3[] = { "127.0.0.1:6380", "127.0.0.1:6381", "127.0.0.1:6382" };

static void test_key_hashes(void)
{
	/* from hashlib.md5 (first little-endian word) and twemproxy's FNV code
	 * transcribed to Python, with its signed-char widening */
	const char *utf8 = "\xc3\xa9t\xc3\xa9";
	iac_ketama *r = make("fnv1a_64", 3, loop3, NULL), *m = make("md5", 3, loop3, NULL),
		       *a32 = make("fnv1a_32", 3, loop3, NULL), *f64 = make("fnv1_64", 3, loop3, NULL);
	CHECK(r && m && a32 && f64);
	if (!r || !m || !a32 || !f64)
		goto done;
	CHECK_INT(iac_ketama_hash(r, "foo", 3), 4275688823u);
	CHECK_INT(iac_ketama_hash(r, "key:1", 5), 2519685833u);
	CHECK_INT(iac_ketama_hash(r, utf8, 5), 3933641815u);
	CHECK_INT(iac_ketama_hash(a32, "foo", 3), 2851307223u);
	CHECK_INT(iac_ketama_hash(a32, utf8, 5), 200187927u);
	CHECK_INT(iac_ketama_hash(f64, "foo", 3), 1805727027u);
	CHECK_INT(iac_ketama_hash(f64, utf8, 5), 3995086359u);
	CHECK_INT(iac_ketama_hash(m, "foo", 3), 3675831724u);
	CHECK_INT(iac_ketama_hash(m, "key:1", 5), 1018217594u);
	CHECK_INT(iac_ketama_hash(m, utf8, 5), 510308318u);
done:
	iac_ketama_free(r);
	iac_ketama_free(m);
	iac_ketama_free(a32);
	iac_ketama_free(f64);
}

static void test_points_and_placement(void)
{
	iac_ketama *r = make("md5", 3, loop3, NULL), *f = make("fnv1a_64", 3, loop3, NULL);
	CHECK(r && f);
	if (!r || !f)
		goto done;
	size_t n = 0;
	const iac_ketama_point *p = iac_ketama_points(r, &n);
	CHECK_INT(n, 480);
	/* MD5("127.0.0.1:6380-0") gives these four points of node 0 */
	const uint32_t want[] = { 576254251u, 847302296u, 1749436441u, 3310822703u };
	for (size_t k = 0; k < 4; k++) {
		int found = 0;
		for (size_t i = 0; i < n; i++)
			found |= p[i].value == want[k] && p[i].node == 0;
		CHECK(found);
	}
	for (size_t i = 1; i < n; i++)
		CHECK(p[i - 1].value <= p[i].value);
	/* "key:0".."key:19" placed by an independent Python ketama */
	const int md5_want[] = { 2, 0, 0, 1, 2, 0, 2, 2, 0, 0, 2, 0, 1, 0, 0, 1, 0, 1, 0, 2 };
	const int fnv_want[] = { 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	for (int i = 0; i < 20; i++) {
		char k[16];
		int len = snprintf(k, sizeof(k), "key:%d", i);
		CHECK_INT(iac_ketama_locate(r, k, (size_t)len), md5_want[i]);
		CHECK_INT(iac_ketama_locate(f, k, (size_t)len), fnv_want[i]);
	}
	/* the wrap: a hash above the last point belongs to the first point */
	CHECK_INT(iac_ketama_owner(r, UINT32_MAX), p[p[n - 1].value == UINT32_MAX ? n - 1 : 0].node);
	CHECK_INT(iac_ketama_owner(r, 0), p[0].node);
done:
	iac_ketama_free(r);
	iac_ketama_free(f);
}

static void test_weights(void)
{
	/* twemproxy's float arithmetic: 1:2:3 -> 80/160/240, 5:7:11 -> 104/144/228 */
	static const char *const pn[] = { "a", "b", "c" };
	const uint32_t w1[] = { 1, 2, 3 }, w2[] = { 5, 7, 11 };
	iac_ketama *r1 = make("md5", 3, pn, w1), *r2 = make("md5", 3, pn, w2);
	CHECK(r1 && r2);
	if (!r1 || !r2)
		goto done;
	json_t *j = iac_ketama_to_json(r1, "iac-cache-ring/1");
	CHECK_INT(json_integer_value(json_object_get(json_array_get(json_object_get(j, "nodes"), 0), "points")), 80);
	CHECK_INT(json_integer_value(json_object_get(json_array_get(json_object_get(j, "nodes"), 2), "points")), 240);
	CHECK_INT(json_array_size(json_object_get(j, "continuum")), 480);
	CHECK_STR(json_string_value(json_object_get(j, "format")), "iac-cache-ring/1");
	json_decref(j);
	j = iac_ketama_to_json(r2, "iac-cache-ring/1");
	CHECK_INT(json_integer_value(json_object_get(json_array_get(json_object_get(j, "nodes"), 0), "points")), 104);
	CHECK_INT(json_integer_value(json_object_get(json_array_get(json_object_get(j, "nodes"), 1), "points")), 144);
	CHECK_INT(json_integer_value(json_object_get(json_array_get(json_object_get(j, "nodes"), 2), "points")), 228);
	json_decref(j);
done:
	iac_ketama_free(r1);
	iac_ketama_free(r2);
}

static void test_bad_input(void)
{
	iac_ketama *r = NULL;
	iac_ketama_node dup[] = { { "a", "x", 1 }, { "b", "x", 1 } };
	CHECK(iac_ketama_new(&r, dup, 2, "md5", NULL, 160) < 0);
	CHECK_CONTAINS(iac_err_last(), "same point name 'x'");
	iac_ketama_node one[] = { { "a", "x", 1 } };
	CHECK(iac_ketama_new(&r, one, 1, "crc99", NULL, 160) < 0);
	CHECK_CONTAINS(iac_err_last(), "unknown key hash 'crc99'");
	CHECK(iac_ketama_new(&r, one, 1, "md5", "{", 160) < 0);
	CHECK(iac_ketama_new(&r, one, 1, "md5", NULL, 161) < 0);
	iac_ketama_node zero[] = { { "a", "x", 0 } };
	CHECK(iac_ketama_new(&r, zero, 1, "md5", NULL, 160) < 0);
	CHECK(r == NULL);
	char buf[64];
	iac_ketama_point_name(buf, sizeof(buf), "10.0.0.2", 11211, NULL);
	CHECK_STR(buf, "10.0.0.2");
	iac_ketama_point_name(buf, sizeof(buf), "10.0.0.2", 6379, "");
	CHECK_STR(buf, "10.0.0.2:6379");
	iac_ketama_point_name(buf, sizeof(buf), "10.0.0.2", 6379, "s1");
	CHECK_STR(buf, "s1");
}

static void test_hash_tag(void)
{
	iac_ketama_node nodes[] = { { "a", "a", 1 }, { "b", "b", 1 } };
	iac_ketama *r = NULL;
	CHECK(iac_ketama_new(&r, nodes, 2, "md5", "{}", 160) == 0);
	if (!r)
		return;
	CHECK_INT(iac_ketama_hash(r, "user:{foo}:cart", 15), 3675831724u);   /* md5("foo") */
	CHECK_INT(iac_ketama_hash(r, "{}foo", 5), iac_ketama_hash(r, "{}foo", 5));
	CHECK(iac_ketama_hash(r, "{}foo", 5) != 3675831724u);   /* empty tag: whole key */
	iac_ketama_free(r);
}

/* Adding a 4th node moves about 1/4 of the keys, all of them to the new
 * node; removing one moves exactly its keys. The exact share from the
 * continua matches the count over 100,000 keys within 2 points. */
static void test_movement(void)
{
	static const char *const pn[] = { "10.0.0.2:6379", "10.0.0.3:6379", "10.0.0.4:6379", "10.0.0.5:6379" };
	iac_ketama *r3 = make("md5", 3, pn, NULL), *r4 = make("md5", 4, pn, NULL);
	CHECK(r3 && r4);
	if (!r3 || !r4)
		goto done;
	double moved = 0, gives[4], gets[4], share3[3];
	iac_ketama_diff(r3, r4, &moved, gives, gets);
	CHECK(fabs(moved - 0.25) < 0.02);
	CHECK(fabs(gets[3] - moved) < 1e-9);
	CHECK(fabs(gives[0] + gives[1] + gives[2] - moved) < 1e-9);
	iac_ketama_shares(r3, share3);
	CHECK(fabs(share3[0] + share3[1] + share3[2] - 1.0) < 1e-9);

	enum { N = 100000 };
	int count = 0, to_new = 0;
	clock_t t0 = clock();
	for (int i = 0; i < N; i++) {
		char k[32];
		int len = snprintf(k, sizeof(k), "session:%d", i);
		size_t a = iac_ketama_locate(r3, k, (size_t)len), b = iac_ketama_locate(r4, k, (size_t)len);
		count += a != b;
		to_new += a != b && b == 3;
	}
	double ms = (double)(clock() - t0) * 1000.0 / CLOCKS_PER_SEC;
	printf("# 2 x 100,000 lookups (md5): %.1f ms; moved %d (%.2f%%), exact share %.2f%%\n", ms,
	       count, count * 100.0 / N, moved * 100);
	CHECK_INT(to_new, count);
	CHECK(fabs(count / (double)N - 0.25) < 0.02);
	CHECK(fabs(count / (double)N - moved) < 0.02);

	/* removal: the reverse diff, and only the removed node gives keys up */
	iac_ketama_diff(r4, r3, &moved, gives, NULL);
	CHECK(fabs(moved - gives[3]) < 1e-9);
	CHECK(gives[0] == 0 && gives[1] == 0 && gives[2] == 0);
done:
	iac_ketama_free(r3);
	iac_ketama_free(r4);
}

static const iac_test tests[] = {
	TEST(test_key_hashes),
	TEST(test_points_and_placement),
	TEST(test_weights),
	TEST(test_bad_input),
	TEST(test_hash_tag),
	TEST(test_movement),
	{ 0 },
};

int main(void)
{
	return iac_test_run(tests);
}
