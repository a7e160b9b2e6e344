/* qsim_bench.c — forward + gradient throughput of the JIT'd circuit kernels on the benchmark
 * workload W(n, L, B), next to the PyTorch peer (../shared/bench/ref_torch.py) run in the same
 * process run.
 *
 * W(n, L, B), exactly as ref_torch.py: amplitude-encoded inputs (uniform [0,1) features, unit L2
 * norm, 2^n of them), L layers of [RY(θ) then RZ(θ) on every qubit (its own parameter), then a
 * CNOT ring q → (q+1) mod n], probabilities of the first 10 basis states renormalised, cross-
 * entropy (mean over the batch, −log(p_y + 1e-12)) against random labels, gradient of all 2nL
 * parameters. One repetition = forward over the batch (qkd_par_fwd), loss and upstream gradient,
 * backward (qkd_par_bwd, which recomputes the forward as the kernel ABI says).
 *
 * Usage: qsim_bench                      the default table (rows below)
 *        qsim_bench N L B f64|f32 T     one row
 * Environment: QKD_PEER_DIR (default ../shared/bench), QKD_BENCH_REPS (default 7, ≥ 5),
 * QKD_BENCH_NO_PEER=1 skips the peer (fields null), QKD_BENCH_NO_QUICK=1 the quick tier's kernels
 * (quick_samples_per_s null; bench/scale.sh, which reads only the O2 figures).
 * Stdout: one JSON object per row, nothing else. samples_per_s = B / median repetition time
 * (after one warm-up) of the O2 kernels; quick_samples_per_s the same for the quick tier's
 * (compiled with QKD_JIT_TIER_QUICK); jit_ms = time of qkd_jit_compile_ex for the row's
 * precision (fwd + bwd), without the object cache: the cold compile, which returns after the
 * quick tier (tiered, the default; QKD_JIT_TIER=0: after O2); jit_o2_ms = from the same start
 * until qkd_jit_wait returned (the O2 kernels in use); jit_warm_ms = the median of 5 compiles
 * found in a filled cache;
 * the peer is reported at its best of 1 and 2 threads (its own median of 5 after a warm-up);
 * ratio = samples_per_s / peer_samples_per_s. Always exits 0 unless the JIT itself fails. */
#include "benchutil.h"
#include "circgen.h"
#include "jit.h"
#include "qkd_par.h"
#include "qkd_rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLASSES 10

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}


/* Loss (mean CE over the first 10 renormalised probabilities) and d loss / d probs. */
static double loss_grad(const double *probs, const int *y, int B, int dim, double *d) {
  double loss = 0.0;
  for (int b = 0; b < B; b++) {
    const double *p = probs + (size_t)b * dim;
    double *g = d + (size_t)b * dim;
    double S = 0.0;
    for (int k = 0; k < CLASSES && k < dim; k++) S += p[k];
    double py = p[y[b]] / S;
    loss += -log(py + 1e-12);
    double f = -1.0 / ((py + 1e-12) * B);
    for (int k = 0; k < dim; k++) g[k] = k < CLASSES ? f * ((k == y[b]) / S - p[y[b]] / (S * S)) : 0.0;
  }
  return loss / B;
}

/* Median time of 5 compiles of c from a filled object cache (a temporary directory). */
static double warm_compile_ms(const qkd_ir_circuit *c, const qkd_jit_options *base) {
  char dir[] = "/tmp/qsim_bench_cache_XXXXXX";
  if (!mkdtemp(dir)) return -1;
  qkd_jit_options o = *base;
  o.cache_dir = dir;
  qkd_kernel k;
  qkd_error err;
  double t[5];
  int ok = qkd_jit_compile_ex(c, &o, &k, &err) == 0; /* fills the cache */
  if (ok) qkd_jit_release(&k);
  for (int i = 0; i < 5 && ok; i++) {
    double s = now_s();
    ok = qkd_jit_compile_ex(c, &o, &k, &err) == 0 && qkd_jit_cached(&k);
    t[i] = (now_s() - s) * 1e3;
    if (ok) qkd_jit_release(&k);
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "qsim_bench: cannot remove %s\n", dir);
  if (!ok) return -1;
  qsort(t, 5, sizeof *t, bench_cmp_double);
  return t[2];
}

/* The peer's samples/s at `threads`, or -1 if it cannot run. */
static double peer_run(int n, int L, int B, int f64, int threads) {
  const char *dir = getenv("QKD_PEER_DIR");
  if (!dir || !*dir) dir = "../shared/bench";
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 %s/ref_torch.py --qubits %d --layers %d --batch %d --threads %d --iters 5%s 2>/dev/null",
           dir, n, L, B, threads, f64 ? " --f64" : "");
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  char line[4096];
  double sps = -1;
  while (fgets(line, sizeof line, p)) {
    const char *s = strstr(line, "\"samples_per_s\":");
    if (s) sps = atof(s + strlen("\"samples_per_s\":"));
  }
  if (pclose(p) != 0) return -1;
  return sps;
}

typedef struct { int n, f64; double sps; } peer_cache;
static peer_cache cache[16];
static int ncache;

static double peer_best(int n, int L, int B, int f64) {
  const char *skip = getenv("QKD_BENCH_NO_PEER");
  if (skip && *skip == '1') return -1;
  for (int i = 0; i < ncache; i++)
    if (cache[i].n == n && cache[i].f64 == f64) return cache[i].sps;
  double a = peer_run(n, L, B, f64, 1), b = peer_run(n, L, B, f64, 2);
  double best = a > b ? a : b;
  if (ncache < 16) cache[ncache++] = (peer_cache){n, f64, best};
  return best;
}

/* One row's data and buffers. */
typedef struct {
  int n, L, B, dim, np, f64;
  double *x, *th, *probs, *dp, *gp;
  float *xf, *thf, *pf, *dpf, *gpf;
  int *y;
} work;

/* Median seconds of `reps` repetitions (after a warm-up) of forward, loss, backward through k. */
static double time_kernel(const work *w, const qkd_kernel *k, qkd_par_pool *pool, int reps, double *loss) {
  double *times = malloc((size_t)reps * sizeof(double));
  if (!times) abort();
  size_t all = (size_t)w->B * w->dim;
  for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
    double s = now_s();
    if (w->f64) {
      qkd_par_fwd_f64(pool, k, w->th, w->x, w->B, 1, 0, w->probs);
      *loss = loss_grad(w->probs, w->y, w->B, w->dim, w->dp);
      memset(w->gp, 0, (size_t)w->np * sizeof(double));
      qkd_par_bwd_f64(pool, k, w->th, w->x, w->B, w->dp, w->gp, NULL);
    } else {
      qkd_par_fwd_f32(pool, k, w->thf, w->xf, w->B, 1, 0, w->pf);
      for (size_t i = 0; i < all; i++) w->probs[i] = w->pf[i];
      *loss = loss_grad(w->probs, w->y, w->B, w->dim, w->dp);
      for (size_t i = 0; i < all; i++) w->dpf[i] = (float)w->dp[i];
      memset(w->gpf, 0, (size_t)w->np * sizeof(float));
      qkd_par_bwd_f32(pool, k, w->thf, w->xf, w->B, w->dpf, w->gpf, NULL);
    }
    if (r >= 0) times[r] = now_s() - s;
  }
  qsort(times, (size_t)reps, sizeof(double), bench_cmp_double);
  double med = times[reps / 2];
  fprintf(stderr, "qsim_bench: W(%d,%d,%d) %s %s loss %.6f median %.3f ms (min %.3f, max %.3f)\n", w->n, w->L, w->B,
          w->f64 ? "f64" : "f32", qkd_jit_optimised(k) ? "O2" : "quick", *loss, med * 1e3, times[0] * 1e3,
          times[reps - 1] * 1e3);
  free(times);
  return med;
}

static int row(int n, int L, int B, int f64, int threads) {
  qkd_ir_circuit *c = circgen_hea(n, L, QKD_MEASURE_PROBS, f64 ? QKD_PREC_F64 : QKD_PREC_F32);
  work w = {.n = n, .L = L, .B = B, .dim = 1 << n, .np = c->n_params, .f64 = f64};
  int dim = w.dim, np = w.np;
  /* data: features uniform [0,1) normalised, labels in 0..9, params uniform [0, 2π) */
  w.x = malloc((size_t)B * dim * sizeof(double)), w.th = malloc((size_t)np * sizeof(double));
  w.y = malloc((size_t)B * sizeof(int));
  w.probs = malloc((size_t)B * dim * sizeof(double)), w.dp = malloc((size_t)B * dim * sizeof(double));
  w.gp = malloc((size_t)np * sizeof(double));
  w.xf = malloc((size_t)B * dim * sizeof(float)), w.thf = malloc((size_t)np * sizeof(float));
  w.pf = malloc((size_t)B * dim * sizeof(float)), w.dpf = malloc((size_t)B * dim * sizeof(float));
  w.gpf = malloc((size_t)np * sizeof(float));
  if (!w.x || !w.th || !w.y || !w.probs || !w.dp || !w.gp || !w.xf || !w.thf || !w.pf || !w.dpf || !w.gpf) abort();
  circgen_hea_data(c, B, w.x, w.th);
  for (int b = 0; b < B; b++) w.y[b] = (int)(qkd_rng_u64(12345, QKD_STREAM_DATA, 1000000000ull + (uint64_t)b) % CLASSES);
  for (size_t i = 0; i < (size_t)B * dim; i++) w.xf[i] = (float)w.x[i];
  for (int i = 0; i < np; i++) w.thf[i] = (float)w.th[i];

  qkd_kernel k, kq;
  qkd_error err;
  qkd_jit_options o = {.precisions = f64 ? 1 : 2, .specialise = -1};
  double t0 = now_s();
  if (qkd_jit_compile_ex(c, &o, &k, &err) != 0) {
    fprintf(stderr, "qsim_bench: %s\n", err.msg);
    return -1;
  }
  double jit_ms = (now_s() - t0) * 1e3;
  qkd_jit_wait(&k);
  double o2_ms = (now_s() - t0) * 1e3;
  double warm_ms = warm_compile_ms(c, &o);
  const char *nq = getenv("QKD_BENCH_NO_QUICK");
  int quick = !(nq && !strcmp(nq, "1"));
  qkd_jit_options oq = o;
  oq.tier = QKD_JIT_TIER_QUICK;
  if (quick && qkd_jit_compile_ex(c, &oq, &kq, &err) != 0) {
    fprintf(stderr, "qsim_bench: %s\n", err.msg);
    return -1;
  }
  qkd_par_pool *pool = qkd_par_create(threads);
  if (!pool) abort();
  const char *rs = getenv("QKD_BENCH_REPS");
  int reps = rs && atoi(rs) >= 5 ? atoi(rs) : 7;
  double loss = 0.0, loss_q = 0.0;
  double sps = B / time_kernel(&w, &k, pool, reps, &loss);
  char qs[64] = "null";
  if (quick) {
    snprintf(qs, sizeof qs, "%.1f", B / time_kernel(&w, &kq, pool, reps, &loss_q));
    if (memcmp(&loss, &loss_q, sizeof loss) != 0) fprintf(stderr, "qsim_bench: the tiers' losses differ\n");
  }
  double peer = peer_best(n, L, B, f64);
  char ps[64], rt[64];
  if (peer > 0) {
    snprintf(ps, sizeof ps, "%.1f", peer);
    snprintf(rt, sizeof rt, "%.2f", sps / peer);
  } else {
    snprintf(ps, sizeof ps, "null");
    snprintf(rt, sizeof rt, "null");
  }
  printf("{\"qubits\": %d, \"layers\": %d, \"batch\": %d, \"precision\": \"%s\", \"threads\": %d, "
         "\"samples_per_s\": %.1f, \"quick_samples_per_s\": %s, \"peer\": \"torch\", \"peer_samples_per_s\": %s, "
         "\"ratio\": %s, \"jit_ms\": %.1f, \"jit_o2_ms\": %.1f, \"jit_warm_ms\": %.2f}\n",
         n, L, B, f64 ? "f64" : "f32", threads, sps, qs, ps, rt, jit_ms, o2_ms, warm_ms);
  fflush(stdout);
  qkd_par_destroy(pool);
  qkd_jit_release(&k);
  if (quick) qkd_jit_release(&kq);
  free(w.x); free(w.th); free(w.y); free(w.probs); free(w.dp); free(w.gp);
  free(w.xf); free(w.thf); free(w.pf); free(w.dpf); free(w.gpf);
  circgen_free(c);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 6) {
    row(atoi(argv[1]), atoi(argv[2]), atoi(argv[3]), strcmp(argv[4], "f32") != 0, atoi(argv[5]));
    return 0;
  }
  static const int ns[2] = {4, 8};
  for (int i = 0; i < 2; i++)
    for (int f = 1; f >= 0; f--)
      for (int t = 1; t <= 2; t++) row(ns[i], 10, 1000, f, t);
  return 0;
}
