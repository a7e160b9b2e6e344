#include "testutil.h"
int test_failures = 0, test_checks = 0;
int test_done(const char *name) {
  printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
  if (test_checks == 0) { fprintf(stderr, "%s: no checks ran\n", name); return 1; }
  return test_failures ? 1 : 0;
}
