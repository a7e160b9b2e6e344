/* qasm_tool.c — the qkd side of tests/interop/qasm.sh: `qasm_tool DIR` writes test cases into
 * DIR, each NAME as NAME.qasm2 and NAME.qasm3 (features bound), NAME.in.qasm3 (features as
 * inputs, when the circuit has no amplitude encoding) and NAME.json {"n", "features", "state"}
 * with the interpreter's state (qkd_qsim_state, qubit 0 the most significant bit). Cases: every
 * gate kind alone at random angles and placements, seeded random circuits (tests/unit/circgen:
 * every gate kind, trainable, constant and data-driven angles, gate and amplitude encodings) with
 * random parameters and features, and amplitude state preparations of random vectors at
 * n = 1..8 (signed, with zeros, short, all zero). Prints the number of cases. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "circgen.h"
#include "qkd_qasm.h"
#include "qkd_rng.h"
#include "qsim.h"

static const char *dir;

static void fail(const char *what) {
  fprintf(stderr, "qasm_tool: %s\n", what);
  exit(1);
}

static void one(const char *name, const qkd_ir_circuit *c, const double *p, const double *x) {
  char path[4096];
  qkd_error err;
  qkd_qasm_opts o = {QKD_QASM2, p, x, "a qasm_tool case"};
  snprintf(path, sizeof path, "%s/%s.qasm2", dir, name);
  if (qkd_qasm_write_file(path, c, &o, &err) != 0) fail(err.msg);
  o.format = QKD_QASM3;
  snprintf(path, sizeof path, "%s/%s.qasm3", dir, name);
  if (qkd_qasm_write_file(path, c, &o, &err) != 0) fail(err.msg);
  if (c->encode != QKD_ENCODE_AMPLITUDE) {
    o.features = NULL;
    snprintf(path, sizeof path, "%s/%s.in.qasm3", dir, name);
    if (qkd_qasm_write_file(path, c, &o, &err) != 0) fail(err.msg);
  }
  int D = 1 << c->n_qubits;
  double *st = malloc(sizeof(double) * 2 * (size_t)D);
  qkd_qsim_state(c, p, x, st);
  snprintf(path, sizeof path, "%s/%s.json", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) fail("cannot write a case");
  fprintf(f, "{\"n\": %d, \"features\": [", c->n_qubits);
  for (int i = 0; i < c->n_features; i++) fprintf(f, "%s%.17g", i ? ", " : "", x[i]);
  fprintf(f, "], \"state\": [");
  for (int i = 0; i < D; i++) fprintf(f, "%s[%.17g, %.17g]", i ? ", " : "", st[2 * i], st[2 * i + 1]);
  fprintf(f, "]}\n");
  if (fclose(f) != 0) fail("cannot write a case");
  free(st);
}

static double uni(uint64_t s, uint64_t k) { return qkd_rng_uniform(0x9a5e11, s, k); }

int main(int argc, char **argv) {
  if (argc != 2) fail("usage: qasm_tool DIR");
  dir = argv[1];
  int cases = 0;
  char name[64];
  /* every gate kind alone, three placements on 3 qubits, every angle kind */
  for (int k = 0; k < QKD_GATE_COUNT; k++)
    for (int t = 0; t < 3; t++) {
      const qkd_gate_info *info = qkd_gate(k);
      uint64_t s = (uint64_t)(k * 3 + t);
      qkd_ir_gate g = {.kind = k, .q = {(int)(uni(s, 0) * 3), 0}};
      g.q[1] = (g.q[0] + 1 + (int)(uni(s, 1) * 2)) % 3;
      double p[QKD_GATE_MAX_ANGLES], x[2] = {2 * uni(s, 2) - 1, 2 * uni(s, 3) - 1};
      for (int a = 0; a < info->angles; a++) {
        int kind = (a + t) % 3;
        p[a] = (2 * uni(s, 10 + a) - 1) * M_PI;
        g.angle[a] = kind == 0 ? (qkd_angle){QKD_ANGLE_PARAM, a, 1.0, 0.0}
                   : kind == 1 ? (qkd_angle){QKD_ANGLE_FEATURE, a % 2, 1.5 - 3 * uni(s, 20 + a), uni(s, 30 + a) - 0.5}
                               : (qkd_angle){QKD_ANGLE_CONST, 0, 0.0, (2 * uni(s, 40 + a) - 1) * M_PI};
      }
      /* parameters numbered in order of appearance */
      int np = 0;
      for (int a = 0; a < info->angles; a++)
        if (g.angle[a].kind == QKD_ANGLE_PARAM) p[np] = p[a], g.angle[a].index = np++;
      qkd_ir_gate pre[3] = {{.kind = QKD_GATE_H, .q = {0, 0}}, {.kind = QKD_GATE_RY, .q = {1, 0},
                            .angle = {{QKD_ANGLE_CONST, 0, 0, 0.7}}}, {.kind = QKD_GATE_SX, .q = {2, 0}}};
      qkd_ir_gate all[4] = {pre[0], pre[1], pre[2], g}; /* a generic state first */
      qkd_ir_circuit c = {.name = info->name, .n_qubits = 3, .n_params = np, .n_features = 2, .n_gates = 4,
                          .gates = all};
      qkd_error err;
      if (qkd_ir_validate(&c, &err) != 0) fail(err.msg);
      snprintf(name, sizeof name, "gate_%s_%d", info->name, t);
      one(name, &c, p, x);
      cases++;
    }
  /* seeded random circuits */
  circgen_opts co = circgen_defaults();
  co.max_qubits = 6;
  co.max_gates = 40;
  for (int s = 0; s < 60; s++) {
    qkd_ir_circuit *c = circgen_random(1000 + (uint64_t)s, &co);
    double *p = calloc((size_t)c->n_params + 1, sizeof(double)), *x = calloc((size_t)c->n_features + 1, sizeof(double));
    circgen_inputs(c, 77 + (uint64_t)s, 1, p, x);
    snprintf(name, sizeof name, "random_%d", s);
    one(name, c, p, x);
    cases++;
    free(p);
    free(x);
    circgen_free(c);
  }
  /* amplitude state preparations, n = 1..8 */
  for (int n = 1; n <= 8; n++)
    for (int t = 0; t < 4; t++) {
      int D = 1 << n, m = t == 1 ? 1 + (int)(uni(100 + n, 0) * D) % D : D;
      double *x = calloc((size_t)D, sizeof(double));
      for (int i = 0; i < m; i++) {
        double u = uni((uint64_t)(n * 8 + t), (uint64_t)i);
        x[i] = t == 3 ? 0.0 : t == 2 && u < 0.3 ? 0.0 : 2 * u - 1;
      }
      qkd_ir_circuit c = {.name = "prep", .n_qubits = n, .n_features = m, .encode = QKD_ENCODE_AMPLITUDE};
      snprintf(name, sizeof name, "amplitude_%d_%d", n, t);
      one(name, &c, NULL, x);
      cases++;
      free(x);
    }
  printf("%d\n", cases);
  return 0;
}
