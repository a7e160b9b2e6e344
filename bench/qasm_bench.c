/* qasm_bench.c — the time to export an 8-qubit amplitude-encoded student as OpenQASM (issue G's
 * target: ≤ 10 ms), state preparation included: the benchmark ansatz W(8, L) (circgen_hea) with
 * random parameters and 256 random features, written by qkd_qasm_write_file (Möttönen
 * preparation, every gate, the atomic file write) to a temporary directory.
 * Usage: qasm_bench [L] (default 2). Stdout: one JSON object: qubits, gates, the file's bytes,
 * first_ms (the first export, cold), median_ms (of 7 more), the load average when it ran. */
#include "circgen.h"
#include "qkd_qasm.h"
#include "qkd_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int L = argc > 1 ? atoi(argv[1]) : 2;
  qkd_ir_circuit *c = circgen_hea(8, L < 1 ? 1 : L, QKD_MEASURE_Z, QKD_PREC_F64);
  double *p = calloc((size_t)c->n_params + 1, sizeof *p), *x = calloc((size_t)c->n_features + 1, sizeof *x);
  circgen_inputs(c, 5, 1, p, x);
  char dir[] = "/tmp/qasm_bench.XXXXXX", path[64];
  if (!mkdtemp(dir)) return 1;
  snprintf(path, sizeof path, "%s/e.qasm", dir);
  qkd_qasm_opts o = {QKD_QASM3, p, x, "qasm_bench"};
  qkd_error err;
  double t[8];
  for (int r = 0; r < 8; r++) {
    double t0 = qkd_now_s();
    if (qkd_qasm_write_file(path, c, &o, &err) != 0) { qkd_error_print(&err, stderr); return 1; }
    t[r] = 1e3 * (qkd_now_s() - t0);
  }
  struct stat st;
  stat(path, &st);
  double first = t[0];
  qsort(t + 1, 7, sizeof *t, cmp);
  char load[64] = "";
  FILE *f = fopen("/proc/loadavg", "r");
  if (f && fgets(load, sizeof load, f)) load[strcspn(load, "\n")] = 0;
  if (f) fclose(f);
  printf("{\"qubits\": 8, \"layers\": %d, \"gates\": %d, \"prep_gates\": %d, \"bytes\": %lld, \"first_ms\": %.3f, "
         "\"median_ms\": %.3f, \"loadavg\": \"%s\"}\n", L, c->n_gates, QKD_QASM_PREP_MAX(8), (long long)st.st_size, first,
         t[4], load);
  unlink(path);
  rmdir(dir);
  circgen_free(c);
  free(p);
  free(x);
  return 0;
}
