#include "testutil.h"
int test_failures = 0, test_checks = 0;
const char *test_err_text(const qkd_error *e) {
  static char buf[QKD_ERROR_TEXT_MAX];
  return qkd_error_text(e, buf, sizeof buf);
}
int test_done(const char *name) {
  printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
  if (test_checks == 0) { fprintf(stderr, "%s: no checks ran\n", name); return 1; }
  return test_failures ? 1 : 0;
}
