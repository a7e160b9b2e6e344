/* testutil.h — a tiny assertion layer for the C unit tests: every CHECK counts, a failure
 * prints file:line and the values, and test_done() returns the exit code CTest reads. */
#ifndef QKD_TESTUTIL_H
#define QKD_TESTUTIL_H
#include <stdio.h>

#include "qkd_err.h"

extern int test_failures, test_checks;

#define CHECK(cond) do { test_checks++; if (!(cond)) { test_failures++; \
  fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_NEAR(a, b, tol) do { double a_ = (a), b_ = (b); test_checks++; \
  if (!(a_ - b_ <= (tol) && b_ - a_ <= (tol))) { test_failures++; \
  fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.17g, %s = %.17g (tol %g)\n", \
          __FILE__, __LINE__, #a, a_, #b, b_, (double)(tol)); } } while (0)

/* qkd_error_text of e (the text a user sees), in a static buffer valid until the next call. */
const char *test_err_text(const qkd_error *e);

/* Prints "N checks, M failed" and returns 0 only when something was checked and nothing failed. */
int test_done(const char *name);
#endif
