/* kernel.c — the engine-independent helpers of the kernel ABI (qkd_kernel.h): workspace size and
 * shot sampling. Both are shared by the interpreter (qsim.c) and generated code.
 *
 * Shot sampling, exactly (generated code calls this very function, so engines agree bit for bit):
 *   key  = qkd_rng_u64(seed, QKD_STREAM_SHOTS, sample)
 *   u_j  = qkd_rng_uniform(key, QKD_STREAM_SHOTS, j)        j = 0 .. shots-1
 *   draw = the first basis index i with cdf[i] > u_j * cdf[dim-1]  (binary search, O(log dim)),
 *          cdf the running sum of probs in index order (so rounding in probs never biases).
 * Zero-probability states are never drawn. Cost O(dim + shots·(log dim + n)).
 * qkd_kernel_sample_counts_f64 draws the same distribution as outcome counts (a binary split of
 * the outcomes with binomial children, see qkd_kernel.h). */
#include "qkd_kernel.h"
#include "qkd_rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static size_t round64(size_t b) { return (b + 63) & ~(size_t)63; }

#define HUGE_PAGE ((size_t)2 << 20)
void *qkd_kernel_alloc(size_t bytes) {
  size_t align = 64, size = round64(bytes ? bytes : 1);
#ifdef MADV_HUGEPAGE
  if (bytes >= HUGE_PAGE) align = HUGE_PAGE, size = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
#endif
  void *p = NULL;
  if (posix_memalign(&p, align, size) != 0) return NULL;
#ifdef MADV_HUGEPAGE
  if (align == HUGE_PAGE) (void)madvise(p, size, MADV_HUGEPAGE); /* advice only: a refusal costs nothing */
#endif
  return p;
}

size_t qkd_kernel_workspace_bytes(const qkd_ir_circuit *ir) {
  size_t dim = (size_t)1 << ir->n_qubits;
  size_t b = 64;                                    /* slack to align the start */
  b += 3 * round64(dim * 2 * sizeof(double));       /* three complex state vectors */
  b += 2 * round64(dim * sizeof(double));           /* two real vectors (probabilities, …) */
  b += 2 * round64((size_t)ir->n_params * sizeof(double) + 8);
  b += 2 * round64((size_t)ir->n_features * sizeof(double) + 8);
  b += 2 * round64((size_t)qkd_ir_outputs(ir) * sizeof(double) + 8);
  return b;
}

void qkd_kernel_sample_f64(int n_qubits, qkd_measure_kind measure, int shots, const double *probs,
                           uint64_t seed, uint64_t sample, double *outputs) {
  size_t dim = (size_t)1 << n_qubits;
  double stack_cdf[1024];
  double *cdf = dim <= 1024 ? stack_cdf : malloc(dim * sizeof(double));
  if (!cdf) abort();
  double run = 0.0;
  for (size_t i = 0; i < dim; i++) {
    double p = probs[i] > 0.0 ? probs[i] : 0.0;
    run += p;
    cdf[i] = run;
  }
  double total = run;
  /* the last index that can be drawn (clamp target for u*total rounding up to total) */
  size_t last = dim - 1;
  while (last > 0 && !(probs[last] > 0.0)) last--;

  int n_out = measure == QKD_MEASURE_Z ? n_qubits : (int)dim;
  memset(outputs, 0, (size_t)n_out * sizeof(double));
  if (shots <= 0 || !(total > 0.0)) {
    if (cdf != stack_cdf) free(cdf);
    return;
  }
  uint64_t key = qkd_rng_u64(seed, QKD_STREAM_SHOTS, sample);
  double w = 1.0 / shots;
  for (int j = 0; j < shots; j++) {
    double target = qkd_rng_uniform(key, QKD_STREAM_SHOTS, (uint64_t)j) * total;
    size_t lo = 0, hi = dim - 1; /* first i with cdf[i] > target */
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (cdf[mid] > target) hi = mid;
      else lo = mid + 1;
    }
    if (lo > last || !(cdf[lo] > target)) lo = last;
    if (measure == QKD_MEASURE_Z) {
      for (int q = 0; q < n_qubits; q++) /* count the draws with qubit q = 1 */
        outputs[q] += (double)((lo >> (n_qubits - 1 - q)) & 1);
    } else {
      outputs[lo] += 1.0;
    }
  }
  if (measure == QKD_MEASURE_Z)
    for (int q = 0; q < n_qubits; q++) outputs[q] = (shots - 2.0 * outputs[q]) * w;
  else
    for (size_t i = 0; i < dim; i++) outputs[i] *= w;
  if (cdf != stack_cdf) free(cdf);
}

/* ---- counts sampling ---------------------------------------------------------------------- */

/* log of the Stirling series tail: log(k!) − [(k + ½) log(k + 1) − (k + 1) + ½ log(2π)] */
static double stirling_tail(double k) {
  static const double tail[10] = {0.0810614667953272, 0.0413406959554092, 0.0276779256849983,
                                  0.02079067210376509, 0.0166446911898211, 0.0138761288230707,
                                  0.0118967099458917, 0.0104112652619720, 0.00925546218271273,
                                  0.00833056343336287};
  if (k <= 9) return tail[(int)k];
  double kp1sq = (k + 1) * (k + 1);
  return (1.0 / 12 - (1.0 / 360 - 1.0 / 1260 / kp1sq) / kp1sq) / (k + 1);
}

long qkd_kernel_binomial(long n, double p, uint64_t key, uint64_t base) {
  if (n <= 0 || !(p > 0.0)) return 0;
  if (!(p < 1.0)) return n;
  int flip = p > 0.5;
  double q = flip ? 1.0 - p : p, nd = (double)n;
  uint64_t j = 0;
  long k;
  if (nd * q < 10.0) { /* BINV: invert the cdf from 0, pmf by its recurrence (expected n·q + 1 steps) */
    double u = qkd_rng_uniform(key, QKD_STREAM_SHOTS, base), f = exp(nd * log1p(-q)), r = q / (1.0 - q);
    k = 0;
    while (u > f && k < n) {
      u -= f;
      f *= r * (double)(n - k) / (double)(k + 1);
      k++;
    }
  } else { /* BTRS (Hörmann 1993): transformed rejection with squeeze, p ≤ ½, n·p ≥ 10 */
    double sd = sqrt(nd * q * (1.0 - q)), b = 1.15 + 2.53 * sd, a = -0.0873 + 0.0248 * b + 0.01 * q;
    double c = nd * q + 0.5, vr = 0.92 - 4.2 / b, r = q / (1.0 - q), alpha = (2.83 + 5.1 / b) * sd;
    double m = floor((nd + 1) * q);
    for (;;) {
      double u = qkd_rng_uniform(key, QKD_STREAM_SHOTS, base + j++) - 0.5;
      double v = qkd_rng_uniform(key, QKD_STREAM_SHOTS, base + j++);
      double us = 0.5 - fabs(u), kd = floor((2 * a / us + b) * u + c);
      if (us >= 0.07 && v <= vr) { k = (long)kd; break; }
      if (kd < 0 || kd > nd) continue;
      v = log(v * alpha / (a / (us * us) + b));
      double ub = (m + 0.5) * log((m + 1) / (r * (nd - m + 1))) + (nd + 1) * log((nd - m + 1) / (nd - kd + 1)) +
                  (kd + 0.5) * log(r * (nd - kd + 1) / (kd + 1)) + stirling_tail(m) + stirling_tail(nd - m) -
                  stirling_tail(kd) - stirling_tail(nd - kd);
      if (v <= ub) { k = (long)kd; break; }
      if (j > 4000) { k = (long)floor(nd * q + 0.5); break; } /* ~0.3^2000: never in practice */
    }
  }
  return flip ? n - k : k;
}

/* Counts of the outcomes [lo, hi) out of `n` draws into counts[], node = heap index. */
static void split_counts(const double *cdf, size_t lo, size_t hi, long n, uint64_t key, uint64_t node,
                         double *counts) {
  if (n == 0) return;
  if (hi - lo == 1) {
    counts[lo] = (double)n;
    return;
  }
  size_t mid = lo + (hi - lo) / 2;
  double base = lo ? cdf[lo - 1] : 0.0, all = cdf[hi - 1] - base, left = cdf[mid - 1] - base;
  double p = all > 0.0 ? left / all : 0.5;
  long nl = qkd_kernel_binomial(n, p, key, node << 32);
  split_counts(cdf, lo, mid, nl, key, 2 * node, counts);
  split_counts(cdf, mid, hi, n - nl, key, 2 * node + 1, counts);
}

void qkd_kernel_sample_counts_f64(int n_qubits, qkd_measure_kind measure, int shots, const double *probs,
                                  uint64_t seed, uint64_t sample, double *outputs) {
  size_t dim = (size_t)1 << n_qubits;
  double stack[2 * 1024];
  double *cdf = dim <= 1024 ? stack : malloc(2 * dim * sizeof(double)), *counts = cdf + dim;
  if (!cdf) abort();
  double run = 0.0;
  for (size_t i = 0; i < dim; i++) {
    run += probs[i] > 0.0 ? probs[i] : 0.0;
    cdf[i] = run;
    counts[i] = 0.0;
  }
  int n_out = measure == QKD_MEASURE_Z ? n_qubits : (int)dim;
  memset(outputs, 0, (size_t)n_out * sizeof(double));
  if (shots > 0 && run > 0.0) {
    split_counts(cdf, 0, dim, shots, qkd_rng_u64(seed, QKD_STREAM_SHOTS, sample), 1, counts);
    double w = 1.0 / shots;
    if (measure == QKD_MEASURE_Z) {
      for (size_t i = 0; i < dim; i++)
        if (counts[i] > 0.0)
          for (int q = 0; q < n_qubits; q++) /* draws with qubit q = 1 */
            outputs[q] += counts[i] * (double)((i >> (n_qubits - 1 - q)) & 1);
      for (int q = 0; q < n_qubits; q++) outputs[q] = (shots - 2.0 * outputs[q]) * w;
    } else {
      for (size_t i = 0; i < dim; i++) outputs[i] = counts[i] * w;
    }
  }
  if (cdf != stack) free(cdf);
}

/* ---- f32 through f64 ---------------------------------------------------------------------- */

/* count doubles (at least one), zeroed; exits when memory runs out. */
static double *doubles(size_t count) {
  double *d = calloc(count ? count : 1, sizeof(double));
  if (!d) {
    fprintf(stderr, "qkd kernel: out of memory\n");
    exit(2);
  }
  return d;
}

/* A double copy of f[count] (NULL for NULL). */
static double *widen(const float *f, size_t count) {
  if (!f) return NULL;
  double *d = doubles(count);
  for (size_t i = 0; i < count; i++) d[i] = f[i];
  return d;
}

static void narrow(const double *d, size_t count, float *f) {
  for (size_t i = 0; f && i < count; i++) f[i] = (float)d[i];
}

void qkd_kernel_fwd_f32_in_f64(const qkd_kernel *k, const float *params, const float *features, int batch,
                               uint64_t seed, uint64_t first_sample, float *outputs, void *workspace) {
  const qkd_ir_circuit *ir = k->ir;
  size_t no = (size_t)batch * qkd_ir_outputs(ir);
  double *p = widen(params, (size_t)ir->n_params), *x = widen(features, (size_t)batch * ir->n_features);
  double *out = doubles(no);
  k->fwd_f64(k, p, x, batch, seed, first_sample, out, workspace);
  narrow(out, no, outputs);
  free(p), free(x), free(out);
}

void qkd_kernel_bwd_f32_in_f64(const qkd_kernel *k, const float *params, const float *features, int batch,
                               const float *d_outputs, float *d_params, float *d_features, void *workspace) {
  const qkd_ir_circuit *ir = k->ir;
  size_t np = (size_t)ir->n_params, nx = (size_t)batch * ir->n_features;
  double *p = widen(params, np), *x = widen(features, nx), *dout = widen(d_outputs, (size_t)batch * qkd_ir_outputs(ir));
  double *dp = doubles(np), *dx = d_features ? doubles(nx) : NULL;
  k->bwd_f64(k, p, x, batch, dout, dp, dx, workspace);
  for (size_t i = 0; i < np; i++) d_params[i] += (float)dp[i];
  narrow(dx, nx, d_features);
  free(p), free(x), free(dout), free(dp), free(dx);
}
