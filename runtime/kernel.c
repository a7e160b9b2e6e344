/* kernel.c — the engine-independent helpers of the kernel ABI (qkd_kernel.h): workspace size and
 * shot sampling. Both are shared by the interpreter (qsim.c) and generated code.
 *
 * Shot sampling, exactly (generated code calls this very function, so engines agree bit for bit):
 *   key  = qkd_rng_u64(seed, QKD_STREAM_SHOTS, sample)
 *   u_j  = qkd_rng_uniform(key, QKD_STREAM_SHOTS, j)        j = 0 .. shots-1
 *   draw = the first basis index i with cdf[i] > u_j * cdf[dim-1]  (binary search, O(log dim)),
 *          cdf the running sum of probs in index order (so rounding in probs never biases).
 * Zero-probability states are never drawn. Cost O(dim + shots·(log dim + n)). */
#include "qkd_kernel.h"
#include "qkd_rng.h"

#include <stdlib.h>
#include <string.h>

static size_t round64(size_t b) { return (b + 63) & ~(size_t)63; }

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
