/* traj_bench.c — forward + gradient throughput of Monte-Carlo trajectories (runtime/qkd_traj.h)
 * on the JIT, next to the noiseless JIT kernel on the same circuit, batch and thread count, in
 * the same run; and a statistical check of the trajectories against the exact density-matrix
 * kernel (qkd_dmk.h).
 *
 * The workload: noise_bench's W(n, L, B) — circgen_hea(n, L) (amplitude encoding of 2^n features,
 * L layers of RY then RZ on every qubit, CNOT ring), MEASURE_PROBS, f64, with depolarizing(p) on
 * every qubit of every gate right after it — the data of qsim_bench / noise_bench (qkd_rng seed
 * 12345) and a fixed upstream gradient d_outputs uniform [−1, 1).
 * One trajectory repetition is what the trainer does per batch (runtime/train.c):
 * qkd_traj_expand, qkd_par_fwd_f64 on the B·T rows, qkd_traj_reduce, qkd_traj_spread,
 * qkd_par_bwd_f64 on the rows. One noiseless repetition is qkd_par_fwd_f64 + qkd_par_bwd_f64 on
 * the B samples of the circuit without its channels. Both kernels are the JIT's O2 kernels
 * (qkd_jit_wait before timing).
 *
 * Check (every row, untimed): sample 0 run as CHECK_T = 4000 single trajectories (4000 copies,
 * each keyed by its own sample index) against the exact outputs of dmk: z = max over the 2^n
 * outputs of |mean − exact| / standard error; "ok" when z ≤ 5.
 *
 * Usage: traj_bench                    the default table: W(4,10,1000) and W(8,10,1000), p 0.01,
 *                                      T = 1, threads 2 then 1
 *        traj_bench N L B THREADS P T  one row
 * Environment: QKD_BENCH_REPS (≥ 3; default 5).
 * Stdout: one JSON object per row, nothing else: samples_per_s (trajectories, B / median
 * repetition), noiseless_samples_per_s, ratio = samples_per_s / noiseless_samples_per_s,
 * load_1m (the 1-minute load average before the row). Progress on stderr. Exits 0 unless the
 * arguments are wrong (1). */
#include "benchutil.h"
#include "circgen.h"
#include "jit.h"
#include "qkd_dmk.h"
#include "qkd_par.h"
#include "qkd_rng.h"
#include "qkd_time.h"
#include "qkd_traj.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_T 4000

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) abort();
  return p;
}

/* max over outputs of |mean of CHECK_T trajectories of sample 0 − exact| / standard error */
static double check_z(const qkd_ir_circuit *c, const qkd_traj *t, const qkd_kernel *k, qkd_par_pool *pool,
                      const double *x, const double *th) {
  int F = c->n_features, O = qkd_ir_outputs(c), W = t->W;
  qkd_traj one;
  qkd_error err;
  if (qkd_traj_init(&one, c, 1, &err) != 0) return INFINITY;
  double *xs = xmalloc(sizeof(double) * (size_t)CHECK_T * F), *rows = xmalloc(sizeof(double) * (size_t)CHECK_T * W);
  double *ro = xmalloc(sizeof(double) * (size_t)CHECK_T * O), *exact = xmalloc(sizeof(double) * (size_t)O);
  for (int r = 0; r < CHECK_T; r++) memcpy(xs + (size_t)r * F, x, sizeof(double) * (size_t)F);
  qkd_traj_expand(&one, pool, xs, CHECK_T, 777, 0, rows);
  qkd_par_fwd_f64(pool, k, th, rows, CHECK_T, 0, 0, ro);
  qkd_kernel dk;
  double z = INFINITY;
  if (qkd_dmk_kernel(c, &dk, &err) == 0) {
    void *ws = xmalloc(qkd_kernel_workspace_bytes(c));
    dk.fwd_f64(&dk, th, x, 1, 0, 0, exact, ws);
    free(ws);
    qkd_dmk_free(&dk);
    z = 0;
    for (int i = 0; i < O; i++) {
      double s = 0, q = 0;
      for (int r = 0; r < CHECK_T; r++) s += ro[(size_t)r * O + i], q += ro[(size_t)r * O + i] * ro[(size_t)r * O + i];
      double mean = s / CHECK_T, var = q / CHECK_T - mean * mean, se = sqrt((var > 0 ? var : 0) / CHECK_T);
      double d = fabs(mean - exact[i]), zi = se > 0 ? d / se : (d < 1e-12 ? 0 : INFINITY);
      if (zi > z) z = zi;
    }
  }
  free(xs), free(rows), free(ro), free(exact);
  qkd_traj_free(&one);
  return z;
}

static int row(int n, int L, int B, int threads, double p, int T) {
  double load = bench_load_1m();
  qkd_ir_circuit *c = circgen_hea(n, L, QKD_MEASURE_PROBS, QKD_PREC_F64);
  int nc = 0;
  for (int g = 0; g < c->n_gates; g++) nc += qkd_gate(c->gates[g].kind)->qubits;
  qkd_ir_channel *ch = xmalloc(sizeof *ch * (size_t)nc);
  nc = 0;
  for (int g = 0; g < c->n_gates; g++)
    for (int k = 0; k < qkd_gate(c->gates[g].kind)->qubits; k++)
      ch[nc++] = (qkd_ir_channel){QKD_CHAN_DEPOLARIZING, c->gates[g].q[k], p, g + 1};
  qkd_ir_circuit clean = *c;
  c->channels = ch, c->n_channels = nc, c->trajectories = T;
  qkd_error err;
  qkd_traj t;
  if (qkd_ir_validate(c, &err) != 0 || qkd_traj_init(&t, c, T, &err) != 0) {
    fprintf(stderr, "traj_bench: %s\n", err.msg);
    return -1;
  }
  int dim = 1 << n, np = c->n_params, R = B * t.trajectories;
  double *x = xmalloc(sizeof(double) * (size_t)B * dim), *th = xmalloc(sizeof(double) * (size_t)np);
  double *d = xmalloc(sizeof(double) * (size_t)B * dim);
  circgen_hea_data(c, B, x, th);
  for (size_t i = 0; i < (size_t)B * dim; i++) d[i] = 2.0 * qkd_rng_uniform(12345, QKD_STREAM_DATA, 3000000000ull + i) - 1.0;
  double *rows = xmalloc(sizeof(double) * (size_t)R * t.W), *ro = xmalloc(sizeof(double) * (size_t)R * dim);
  double *rd = xmalloc(sizeof(double) * (size_t)R * dim), *out = xmalloc(sizeof(double) * (size_t)B * dim);
  double *g = xmalloc(sizeof(double) * (size_t)np);
  qkd_kernel kt, kc;
  qkd_jit_options o = {.precisions = 1, .specialise = -1};
  if (qkd_jit_compile_ex(&t.circuit, &o, &kt, &err) != 0 || qkd_jit_compile_ex(&clean, &o, &kc, &err) != 0) {
    fprintf(stderr, "traj_bench: %s\n", err.msg);
    return -1;
  }
  qkd_jit_wait(&kt), qkd_jit_wait(&kc);
  qkd_par_pool *pool = qkd_par_create(threads);
  if (!pool) abort();
  const char *rs = getenv("QKD_BENCH_REPS");
  int reps = rs && atoi(rs) >= 3 ? atoi(rs) : 5;
  double *tt = xmalloc(sizeof(double) * (size_t)(reps + 1)), *tc = xmalloc(sizeof(double) * (size_t)(reps + 1));
  for (int r = 0; r <= reps; r++) { /* repetition 0 warms up; trajectories and noiseless interleaved */
    double t0 = qkd_now_s();
    qkd_traj_expand(&t, pool, x, B, 99, (uint64_t)r * (uint64_t)B, rows);
    qkd_par_fwd_f64(pool, &kt, th, rows, R, 0, 0, ro);
    qkd_traj_reduce(&t, ro, B, 0, 0, out);
    qkd_traj_spread(&t, d, B, rd);
    memset(g, 0, sizeof(double) * (size_t)np);
    qkd_par_bwd_f64(pool, &kt, th, rows, R, rd, g, NULL);
    double t1 = qkd_now_s();
    qkd_par_fwd_f64(pool, &kc, th, x, B, 0, 0, out);
    memset(g, 0, sizeof(double) * (size_t)np);
    qkd_par_bwd_f64(pool, &kc, th, x, B, d, g, NULL);
    double t2 = qkd_now_s();
    if (r) tt[r - 1] = t1 - t0, tc[r - 1] = t2 - t1;
  }
  qsort(tt, (size_t)reps, sizeof(double), bench_cmp_double);
  qsort(tc, (size_t)reps, sizeof(double), bench_cmp_double);
  double sps = B / tt[reps / 2], csps = B / tc[reps / 2];
  fprintf(stderr, "traj_bench: W(%d,%d,%d) %d threads p %g T %d: %.0f vs noiseless %.0f samples/s; checking\n", n, L, B,
          threads, p, T, sps, csps);
  double z = check_z(c, &t, &kt, pool, x, th);
  printf("{\"bench\": \"trajectories\", \"qubits\": %d, \"layers\": %d, \"batch\": %d, \"threads\": %d, \"p\": %g, "
         "\"trajectories\": %d, \"channels\": %d, \"slot_bits\": %d, \"samples_per_s\": %.1f, \"noiseless_samples_per_s\": %.1f, "
         "\"ratio\": %.3f, \"check_max_z\": %.2f, \"ok\": %s, \"load_1m\": %.2f}\n",
         n, L, B, threads, p, t.trajectories, nc, t.n_bits, sps, csps, sps / csps, z, z <= 5 ? "true" : "false", load);
  fflush(stdout);
  qkd_par_destroy(pool);
  qkd_jit_release(&kt), qkd_jit_release(&kc);
  free(x), free(th), free(d), free(rows), free(ro), free(rd), free(out), free(g), free(tt), free(tc);
  qkd_traj_free(&t);
  c->channels = NULL, c->n_channels = 0, c->trajectories = 0;
  free(ch);
  circgen_free(c);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 7) {
    int n = atoi(argv[1]), L = atoi(argv[2]), B = atoi(argv[3]), th = atoi(argv[4]), T = atoi(argv[6]);
    double p = atof(argv[5]);
    if (n < 1 || n > 12 || L < 1 || B < 1 || th < 1 || T < 1 || !(p >= 0 && p <= 1)) {
      fprintf(stderr, "traj_bench: N (1..12) L B THREADS P (0..1) T, all positive\n");
      return 1;
    }
    return row(n, L, B, th, p, T) == 0 ? 0 : 1;
  }
  if (argc != 1) {
    fprintf(stderr, "usage: traj_bench [N L B THREADS P T]\n");
    return 1;
  }
  int ns[2] = {4, 8};
  for (int i = 0; i < 2; i++)
    for (int th = 2; th >= 1; th--) row(ns[i], 10, 1000, th, 0.01, 1);
  return 0;
}
