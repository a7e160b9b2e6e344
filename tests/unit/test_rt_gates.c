/* test_rt_gates.c — the gate table (runtime/qkd_gates.h) against the independent dense reference
 * (dense_ref.c keeps its own matrices): every row's matrix at random angles, embedded in 3 qubits
 * at every qubit placement, equals the reference's; its derivatives equal central finite
 * differences of the reference; qubit and angle counts agree; the table's self-check passes;
 * the structural analyses (pairs, linear permutations) on known gates; an unknown kind is an
 * internal error, never a matrix. Links only qkdrt + qkdtestsupport. */
#include "dense_ref.h"
#include "qkd_gates.h"
#include "qkd_rng.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 3
#define DIM (1 << N)

/* The table's matrix of gate g (angles a) embedded in N qubits, re/im interleaved like dense_ref. */
static void table_full(const qkd_ir_gate *g, const double *a, int d, double *full) {
  const qkd_gate_info *info = qkd_gate(g->kind);
  double m[16][2];
  qkd_gate_matrix(g->kind, a, d, m);
  int D = 1 << info->qubits;
  for (int i = 0; i < DIM; i++)
    for (int j = 0; j < DIM; j++) {
      int pi = 0, pj = 0, same = 1;
      for (int q = 0; q < N; q++) {
        int bi = i >> (N - 1 - q) & 1, bj = j >> (N - 1 - q) & 1, k = -1;
        for (int w = 0; w < info->qubits; w++)
          if (g->q[w] == q) k = w;
        if (k < 0) same &= bi == bj;
        else pi |= bi << (info->qubits - 1 - k), pj |= bj << (info->qubits - 1 - k);
      }
      double *o = full + 2 * (i * DIM + j);
      o[0] = same ? m[pi * D + pj][0] : 0.0;
      o[1] = same ? m[pi * D + pj][1] : 0.0; /* U ⊗ I (or dU ⊗ I) */
    }
}

static void test_matrices(void) {
  double full[2 * DIM * DIM], ref[2 * DIM * DIM], rp[2 * DIM * DIM], rm[2 * DIM * DIM];
  int placements = 0;
  for (int k = 0; k < QKD_GATE_COUNT; k++) {
    const qkd_gate_info *info = qkd_gate(k);
    CHECK(dense_ref_gate_qubits((qkd_gate_kind)k) == info->qubits);
    CHECK(dense_ref_gate_angles((qkd_gate_kind)k) == info->angles);
    for (int q0 = 0; q0 < N; q0++)
      for (int q1 = 0; q1 < N; q1++) {
        if (info->qubits == 1 ? q1 != 0 : q1 == q0) continue;
        qkd_ir_gate g;
        memset(&g, 0, sizeof g);
        g.kind = (qkd_gate_kind)k;
        g.q[0] = q0;
        g.q[1] = q1;
        placements++;
        for (int t = 0; t < 4; t++) {
          double a[3];
          for (int s = 0; s < 3; s++) a[s] = 8.0 * (qkd_rng_uniform(99, (uint64_t)k, (uint64_t)(16 * t + 3 * q0 + q1 + s)) - 0.5);
          table_full(&g, a, -1, full);
          dense_ref_gate_matrix(N, &g, a, ref);
          double e = 0;
          for (int i = 0; i < 2 * DIM * DIM; i++) e = fmax(e, fabs(full[i] - ref[i]));
          CHECK(e <= 1e-14);
          if (e > 1e-14) fprintf(stderr, "  gate %s on (%d, %d): matrix differs by %.3g\n", info->name, q0, q1, e);
          /* derivatives (the interpreter's Jacobian uses them) vs finite differences of the reference */
          for (int d = 0; d < info->angles; d++) {
            const double h = 1e-6;
            double ap[3], am[3];
            memcpy(ap, a, sizeof ap);
            memcpy(am, a, sizeof am);
            ap[d] += h;
            am[d] -= h;
            dense_ref_gate_matrix(N, &g, ap, rp);
            dense_ref_gate_matrix(N, &g, am, rm);
            table_full(&g, a, d, full);
            double ed = 0;
            for (int i = 0; i < 2 * DIM * DIM; i++) ed = fmax(ed, fabs(full[i] - (rp[i] - rm[i]) / (2 * h)));
            CHECK(ed <= 1e-8);
            if (ed > 1e-8) fprintf(stderr, "  gate %s angle %d: derivative differs by %.3g\n", info->name, d, ed);
          }
        }
      }
  }
  printf("matrices: %d gates, %d placements in %d qubits\n", QKD_GATE_COUNT, placements, N);
}

static void test_structure(void) {
  qkd_error err;
  int rc = qkd_gate_table_check(&err);
  CHECK(rc == 0);
  if (rc) fprintf(stderr, "  %s\n", err.msg);
  int f[4], s[4], map[2];
  /* pairs: the blocks the JIT walks */
  CHECK(qkd_gate_pairs(QKD_GATE_RY, f, s) == 1 && f[0] == 0 && s[0] == 1);
  CHECK(qkd_gate_pairs(QKD_GATE_CNOT, f, s) == 1 && f[0] == 2 && s[0] == 3);
  CHECK(qkd_gate_pairs(QKD_GATE_SWAP, f, s) == 1 && f[0] == 1 && s[0] == 2);
  CHECK(qkd_gate_pairs(QKD_GATE_CZ, f, s) == 1 && f[0] == 2 && s[0] == 3);
  CHECK(qkd_gate_pairs(QKD_GATE_RXX, f, s) == 2 && f[0] == 0 && s[0] == 3 && f[1] == 1 && s[1] == 2);
  CHECK(qkd_gate_pairs(QKD_GATE_RZZ, f, s) == 2 && f[0] == 0 && s[0] == 1 && f[1] == 2 && s[1] == 3);
  CHECK(qkd_gate_pairs(QKD_GATE_CPHASE, f, s) == 1 && f[0] == 2 && s[0] == 3);
  /* linear permutations: CNOT and SWAP, not X (it moves |0>), not CZ (not a permutation) */
  CHECK(qkd_gate_linear_perm(QKD_GATE_CNOT, map) == 0 && map[0] == 1 && map[1] == 3);
  CHECK(qkd_gate_linear_perm(QKD_GATE_SWAP, map) == 0 && map[0] == 2 && map[1] == 1);
  CHECK(qkd_gate_linear_perm(QKD_GATE_X, map) != 0);
  CHECK(qkd_gate_linear_perm(QKD_GATE_CZ, map) != 0);
  /* names, lookups and the new rows' facts */
  CHECK(qkd_gate_lookup("u3") == QKD_GATE_U3 && qkd_gate_lookup("nope") == -1);
  CHECK(qkd_gate(QKD_GATE_U3)->angles == 3 && qkd_gate(QKD_GATE_U3)->n_steps == 3);
  CHECK(qkd_gate(QKD_GATE_CPHASE)->structure == QKD_GS_DIAGONAL && qkd_gate(QKD_GATE_CPHASE)->controlled);
  CHECK(qkd_gate(QKD_GATE_CPHASE)->shift == QKD_SHIFT_TWO && qkd_gate(QKD_GATE_CRZ)->shift == QKD_SHIFT_FOUR);
  CHECK(qkd_gate(QKD_GATE_RXX)->shift == QKD_SHIFT_TWO && qkd_gate(QKD_GATE_CY)->angles == 0);
  CHECK(!strcmp(qkd_gate(QKD_GATE_CNOT)->qasm, "cx") && !strcmp(qkd_gate(QKD_GATE_CPHASE)->qasm, "cp"));
}

/* qkd_gate of a kind outside the table stops the process with exit code 2 */
static void test_unknown_kind(void) {
  for (int t = 0; t < 2; t++) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
      freopen("/dev/null", "w", stderr);
      const qkd_gate_info *g = qkd_gate(t ? -1 : QKD_GATE_COUNT);
      _exit(g ? 0 : 1);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
  }
}

int main(void) {
  test_structure();
  test_matrices();
  test_unknown_kind();
  return test_done("test_rt_gates");
}
