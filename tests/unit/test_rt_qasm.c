/* test_rt_qasm.c — runtime/qasm.c on its own (the independent simulator's side is
 * tests/interop/qasm.sh): the Möttönen state preparation of random real vectors (signed, with
 * zeros, shorter than 2^n, all zero) at n = 1..8 prepares exactly the normalised vector — run by
 * the dense reference (dense_ref.c, its own matrices), no global phase allowed — within 2^n − 1 RY
 * and 2^n − 2 CNOT; the writer's refusals (OpenQASM 2 or amplitude encoding without features),
 * numbers written as OpenQASM reals, inputs declared once each, qubits mapped to q[n-1-j],
 * definitions written only for gates the include lacks, every qubit measured. */
#include "dense_ref.h"
#include "qkd_qasm.h"
#include "qkd_rng.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void check_prep(int n, const double *v, int m) {
  int D = 1 << n;
  qkd_ir_gate *g = malloc(sizeof *g * (size_t)QKD_QASM_PREP_MAX(n));
  int count = qkd_qasm_state_prep(n, v, m, g), ry = 0, cx = 0;
  CHECK(count >= 0 && count <= QKD_QASM_PREP_MAX(n));
  for (int i = 0; i < count; i++) {
    ry += g[i].kind == QKD_GATE_RY;
    cx += g[i].kind == QKD_GATE_CNOT;
  }
  CHECK(ry + cx == count && ry <= D - 1 && cx <= D - 2);
  qkd_ir_circuit c = {.name = "prep", .n_qubits = n, .n_gates = count, .gates = g};
  qkd_error err;
  CHECK(qkd_ir_validate(&c, &err) == 0);
  double *st = malloc(sizeof(double) * 2 * (size_t)D), ss = 0;
  dense_ref_state(&c, NULL, NULL, st);
  for (int i = 0; i < m; i++) ss += v[i] * v[i];
  double worst = 0;
  for (int i = 0; i < D; i++) {
    double want = ss > 0 ? (i < m ? v[i] / sqrt(ss) : 0) : (i == 0);
    worst = fmax(worst, fabs(st[2 * i] - want) + fabs(st[2 * i + 1]));
  }
  if (worst > 1e-12) fprintf(stderr, "n = %d, %d amplitudes: off by %g\n", n, m, worst);
  CHECK(worst <= 1e-12);
  free(st);
  free(g);
}

static void test_state_prep(void) {
  uint64_t seed = 0x9a5e;
  double v[256];
  for (int n = 1; n <= 8; n++) {
    int D = 1 << n;
    for (int t = 0; t < 6; t++) {
      int m = t == 1 ? 1 + (int)(qkd_rng_uniform(seed, 1, (uint64_t)n) * D) % D : D;
      for (int i = 0; i < m; i++) {
        double u = qkd_rng_uniform(seed, 2 + (uint64_t)t, (uint64_t)(n * 4096 + i));
        v[i] = 2 * u - 1;
        if (t == 2 && u < 0.4) v[i] = 0;       /* zero amplitudes, whole zero subtrees */
        if (t == 3) v[i] = i == D - 1 ? -1 : 0; /* a basis state far from |0…0> */
        if (t == 4) v[i] = 0;                   /* the all-zero vector: |0…0> */
        if (t == 5) v[i] = -fabs(v[i]);         /* all negative */
      }
      check_prep(n, v, m);
    }
  }
}

/* The writer's text for c with o (malloc'd). */
static char *written(const qkd_ir_circuit *c, const qkd_qasm_opts *o, int *rc) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  qkd_error err;
  *rc = qkd_qasm_write(f, c, o, &err);
  fclose(f);
  return buf;
}

static int count_of(const char *s, const char *what) {
  int k = 0;
  for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) k++;
  return k;
}

static void test_writer(void) {
  qkd_ir_gate g[] = {
      {.kind = QKD_GATE_RY, .q = {0, 0}, .angle = {{QKD_ANGLE_FEATURE, 1, 2.0, -0.5}}},
      {.kind = QKD_GATE_RZ, .q = {2, 0}, .angle = {{QKD_ANGLE_FEATURE, 1, 1.0, 0.0}}},
      {.kind = QKD_GATE_RXX, .q = {0, 2}, .angle = {{QKD_ANGLE_PARAM, 0, 1.0, 0.0}}},
      {.kind = QKD_GATE_CPHASE, .q = {1, 2}, .angle = {{QKD_ANGLE_CONST, 0, 0.0, 3.0}}},
      {.kind = QKD_GATE_RX, .q = {1, 0}, .angle = {{QKD_ANGLE_CONST, 0, 0.0, 1e-5}}},
      {.kind = QKD_GATE_CNOT, .q = {0, 1}},
  };
  qkd_ir_circuit c = {.name = "w", .n_qubits = 3, .n_params = 1, .n_features = 2, .n_gates = 6,
                      .n_encoding_gates = 2, .gates = g};
  qkd_error err;
  CHECK(qkd_ir_validate(&c, &err) == 0);
  double p[1] = {0.25}, x[2] = {0.5, -1.5};
  int rc;
  qkd_qasm_opts o3 = {QKD_QASM3, p, NULL, "line one\nline two"};
  char *s = written(&c, &o3, &rc);
  CHECK(rc == 0 && !strncmp(s, "OPENQASM 3.0;\ninclude \"stdgates.inc\";\n", 38));
  CHECK(strstr(s, "// line one\n// line two\n") != NULL);
  CHECK(count_of(s, "input float[64] x_1;\n") == 1 && !strstr(s, "x_0"));
  CHECK(strstr(s, "ry(2.0 * x_1 - 0.5) q[2];\n") && strstr(s, "rz(x_1) q[0];\n"));
  CHECK(strstr(s, "rxx(0.25) q[2], q[0];\n") && strstr(s, "cp(3.0) q[1], q[0];\n"));
  CHECK(strstr(s, "rx(1.0e-05) q[1];\n") && strstr(s, "cx q[2], q[1];\n"));
  CHECK(count_of(s, "gate rxx(") == 1 && count_of(s, "gate ") == 1); /* stdgates.inc has cp */
  CHECK(strstr(s, "qubit[3] q;\nbit[3] c;\n") && strstr(s, "c = measure q;\n"));
  free(s);
  qkd_qasm_opts o2 = {QKD_QASM2, p, NULL, NULL};
  s = written(&c, &o2, &rc);
  CHECK(rc == -1 && s && !*s); /* OpenQASM 2 has no inputs: nothing written */
  free(s);
  o2.features = x;
  s = written(&c, &o2, &rc);
  CHECK(rc == 0 && !strncmp(s, "OPENQASM 2.0;\ninclude \"qelib1.inc\";\n", 36));
  CHECK(strstr(s, "ry(-3.5) q[2];\n") && strstr(s, "rz(-1.5) q[0];\n") && strstr(s, "cu1(3.0) q[1], q[0];\n"));
  CHECK(count_of(s, "gate rxx(") == 1 && !strstr(s, "input") && strstr(s, "measure q -> c;\n"));
  free(s);
  /* amplitude encoding needs the sample; with it, the preparation comes first */
  qkd_ir_circuit a = {.name = "a", .n_qubits = 2, .n_features = 3, .encode = QKD_ENCODE_AMPLITUDE, .n_gates = 1,
                      .gates = g + 5};
  o3.features = NULL;
  s = written(&a, &o3, &rc);
  CHECK(rc == -1 && !*s);
  free(s);
  double amp[3] = {1, -2, 3};
  o3.features = amp;
  s = written(&a, &o3, &rc);
  CHECK(rc == 0 && strstr(s, "3 RY, 2 CNOT") && count_of(s, "\nry(") == 3 && count_of(s, "\ncx ") == 3);
  CHECK(strstr(s, "cx q[1], q[0];\nc = measure q;\n") != NULL);
  free(s);
}

int main(void) {
  test_state_prep();
  test_writer();
  return test_done("test_rt_qasm");
}
