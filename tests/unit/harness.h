/* harness: a tiny unit-test runner. A test file defines test functions and a
 * table, then `int main(void) { return iac_test_run(tests); }`.
 *
 *   static void test_sort(void) { CHECK(x == 1); CHECK_STR(a, "b"); }
 *   static const iac_test tests[] = { TEST(test_sort), { 0 } };
 */
#ifndef IAC_TEST_HARNESS_H
#define IAC_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

typedef struct {
	const char *name;
	void (*fn)(void);
} iac_test;

#define TEST(fn) { #fn, fn }

extern int iac_test_failures;

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
	iac_test_failures++; } } while (0)

#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
	if (!a_ || !b_ || strcmp(a_, b_) != 0) { \
	fprintf(stderr, "%s:%d: expected \"%s\", got \"%s\"\n", __FILE__, __LINE__, \
		b_ ? b_ : "(null)", a_ ? a_ : "(null)"); iac_test_failures++; } } while (0)

#define CHECK_CONTAINS(hay, needle) do { const char *h_ = (hay), *n_ = (needle); \
	if (!h_ || !strstr(h_, n_)) { \
	fprintf(stderr, "%s:%d: expected to find \"%s\" in \"%s\"\n", __FILE__, __LINE__, \
		n_, h_ ? h_ : "(null)"); iac_test_failures++; } } while (0)

#define CHECK_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
	if (a_ != b_) { fprintf(stderr, "%s:%d: %s: expected %lld, got %lld\n", \
		__FILE__, __LINE__, #a, b_, a_); iac_test_failures++; } } while (0)

/* Runs each test, prints "ok"/"FAIL" lines, returns the process exit code. */
int iac_test_run(const iac_test *tests);

/* A fresh temporary directory for this test process (removed at exit). */
const char *iac_test_tmpdir(void);

#endif
