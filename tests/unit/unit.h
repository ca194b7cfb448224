/*
 * unit.h - the smallest test framework that does the job.  A test file
 * defines static void test_x(void) functions and lists them in main() with
 * RUN(test_x); CHECK records a failure with file:line and keeps going.
 * main() ends with `return unit_done();`, which prints the closing line
 * "N passed, N failed" and returns the exit status.
 */
#ifndef KT_UNIT_H
#define KT_UNIT_H
#include <stdio.h>
#include <string.h>

static int unit_failed_checks, unit_passed, unit_failed;

#define CHECK(cond) do { if (!(cond)) { unit_failed_checks++; \
	fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_EQ_U(a, b) do { unsigned long long a_ = (a), b_ = (b); if (a_ != b_) { \
	unit_failed_checks++; fprintf(stderr, "  %s:%d: %s == %llu, expected %llu\n", \
	__FILE__, __LINE__, #a, a_, b_); } } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); if (!a_ || strcmp(a_, b_)) { \
	unit_failed_checks++; fprintf(stderr, "  %s:%d: %s == \"%s\", expected \"%s\"\n", \
	__FILE__, __LINE__, #a, a_ ? a_ : "(null)", b_); } } while (0)
#define CHECK_CONTAINS(hay, needle) do { const char *h_ = (hay); if (!h_ || !strstr(h_, (needle))) { \
	unit_failed_checks++; fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n", \
	__FILE__, __LINE__, h_ ? h_ : "(null)", (needle)); } } while (0)

#define RUN(fn) do { int before_ = unit_failed_checks; fn(); \
	if (unit_failed_checks == before_) { unit_passed++; } \
	else { unit_failed++; fprintf(stderr, "FAIL %s\n", #fn); } } while (0)

static inline int unit_done(void)
{
	printf("%d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}
#endif
