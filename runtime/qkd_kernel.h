/* qkd_kernel.h — the kernel ABI: the C signature every circuit engine has (the reference
 * interpreter in qsim.c, the LLVM-JIT'd kernels, the kernels linked into a `qkdc build`
 * executable). The trainer and the tests only ever call through a qkd_kernel, so any test can
 * run the same call against every engine.
 *
 * Layout (row-major, per batch):
 *   params     [n_params]
 *   features   [batch][n_features]
 *   outputs    [batch][qkd_ir_outputs(ir)]
 *   d_outputs  [batch][qkd_ir_outputs(ir)]   upstream gradient (dLoss/dOutput)
 *   d_params   [n_params]                    ACCUMULATED (+=) over the batch
 *   d_features [batch][n_features]           OVERWRITTEN; may be NULL (not wanted)
 * Forward with ir->shots > 0 samples each sample's outputs from `shots` measurements, drawing
 * from qkd_rng keyed by (seed, first_sample + i): results never depend on how a batch is split.
 * The sampler is k->sample (NULL: qkd_kernel_sample_f64, one draw per shot); the forward entry
 * points call it once per sample with that sample's exact probabilities.
 * Backward (adjoint VJP) differentiates the exact outputs; it recomputes the forward state
 * itself, so fwd and bwd may be called independently. For AMPLITUDE encoding, d_features is the
 * gradient through the L2 normalisation (zero for an all-zero feature vector).
 * `workspace` is scratch of at least qkd_kernel_workspace_bytes(ir) bytes, private to the
 * calling thread. Kernels are single-threaded; callers split the batch across threads. */
#ifndef QKD_KERNEL_H
#define QKD_KERNEL_H

#include "qkd_ir.h"

typedef struct qkd_kernel qkd_kernel;

/* A shot sampler: replaces one sample's outputs by those of `shots` measurements of `probs`
 * (2^n entries, logical order), keyed by (seed, sample). */
typedef void (*qkd_sample_fn)(int n_qubits, qkd_measure_kind measure, int shots, const double *probs,
                              uint64_t seed, uint64_t sample, double *outputs);

typedef void (*qkd_fwd_f64_fn)(const qkd_kernel *k, const double *params, const double *features,
                               int batch, uint64_t seed, uint64_t first_sample, double *outputs,
                               void *workspace);
typedef void (*qkd_bwd_f64_fn)(const qkd_kernel *k, const double *params, const double *features,
                               int batch, const double *d_outputs, double *d_params,
                               double *d_features, void *workspace);
typedef void (*qkd_fwd_f32_fn)(const qkd_kernel *k, const float *params, const float *features,
                               int batch, uint64_t seed, uint64_t first_sample, float *outputs,
                               void *workspace);
typedef void (*qkd_bwd_f32_fn)(const qkd_kernel *k, const float *params, const float *features,
                               int batch, const float *d_outputs, float *d_params,
                               float *d_features, void *workspace);

struct qkd_kernel {
  const qkd_ir_circuit *ir; /* the circuit these functions run; not owned */
  const char *engine;       /* "interp", "jit" or "aot" */
  qkd_fwd_f64_fn fwd_f64;
  qkd_bwd_f64_fn bwd_f64;
  qkd_fwd_f32_fn fwd_f32;
  qkd_bwd_f32_fn bwd_f32;
  void *engine_data;        /* engine-private (the JIT's session); not touched by callers */
  qkd_sample_fn sample;     /* shot sampler of the forward entry points; NULL: qkd_kernel_sample_f64
                               (generated code reads it at a fixed offset; keep it last) */
};

/* f32 entry points for an engine that computes in double: they widen the arguments, call
 * k->fwd_f64 / k->bwd_f64 and narrow the results (d_params += as the ABI says). They allocate
 * per call and abort (exit 2) when memory runs out. The density-matrix engines use them. */
void qkd_kernel_fwd_f32_in_f64(const qkd_kernel *k, const float *params, const float *features, int batch,
                               uint64_t seed, uint64_t first_sample, float *outputs, void *workspace);
void qkd_kernel_bwd_f32_in_f64(const qkd_kernel *k, const float *params, const float *features, int batch,
                               const float *d_outputs, float *d_params, float *d_features, void *workspace);

/* Memory for kernel states: 64-byte aligned; from 2 MiB up, 2 MiB aligned with transparent huge
 * pages asked for (MADV_HUGEPAGE: the kernels walk a large state with strides of many pages,
 * which 4 KiB pages turn into TLB misses; where they are not granted it is ordinary memory).
 * NULL when out of memory; release with free(). The thread pool's workspaces and the JIT's
 * per-thread scratch come from here. */
void *qkd_kernel_alloc(size_t bytes);

/* Scratch bytes one thread needs for any kernel call on this circuit (any batch size). */
size_t qkd_kernel_workspace_bytes(const qkd_ir_circuit *ir);

/* Shared helper (called by the interpreter and by generated code): replace the exact outputs of
 * one sample by the frequencies of `shots` draws from `probs` (2^n entries). For MEASURE_Z the
 * outputs become the sampled <Z_q> (mean of ±1). Draws come from qkd_rng(seed, sample, ·). */
void qkd_kernel_sample_f64(int n_qubits, qkd_measure_kind measure, int shots, const double *probs,
                           uint64_t seed, uint64_t sample, double *outputs);

/* The same distribution (the outputs of `shots` independent measurements), drawn as the counts of
 * the 2^n outcomes: a binary split of the outcomes, each node's count a binomial of its parent's
 * (exact: BINV inversion for small means, Hörmann's BTRS rejection otherwise), from
 * qkd_rng(key(seed, sample), QKD_STREAM_SHOTS, node·2^32 + draw). Cost O(min(shots, 2^n)·n)
 * binomials instead of shots draws; the draws differ from qkd_kernel_sample_f64's. */
void qkd_kernel_sample_counts_f64(int n_qubits, qkd_measure_kind measure, int shots, const double *probs,
                                  uint64_t seed, uint64_t sample, double *outputs);
/* One exact Binomial(n, p) draw from the uniforms qkd_rng(key, QKD_STREAM_SHOTS, base + j). */
long qkd_kernel_binomial(long n, double p, uint64_t key, uint64_t base);

#endif
