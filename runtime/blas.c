/* blas.c — pinning OpenBLAS's kernel type (qkd_blas.h). */
#include "qkd_blas.h"

#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

char *openblas_get_corename(void); /* OpenBLAS's own, not in cblas.h */

void qkd_blas_pin(char **argv) {
  if (getenv("OPENBLAS_CORETYPE")) return;
  const char *now = openblas_get_corename();
  if (now && strcasecmp(now, QKD_BLAS_CORE) == 0) return; /* already (and under valgrind, whose CPU has no AVX-512) */
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;
  if (setenv("OPENBLAS_CORETYPE", QKD_BLAS_CORE, 1) != 0) return;
  execv("/proc/self/exe", argv);
  unsetenv("OPENBLAS_CORETYPE"); /* exec failed: go on as we are, and say so in the provenance */
#else
  (void)argv;
#endif
}

const char *qkd_blas_core(void) {
  const char *c = openblas_get_corename();
  return c ? c : "unknown";
}
