/* qkd_par.h — the threaded batch driver: runs any qkd_kernel (qkd_kernel.h) over a batch on a
 * small persistent thread pool (and, through qkd_par_for, other per-row work of the trainer's).
 *
 * Contract:
 *   - The batch is cut into fixed chunks of qkd_par_chunk(ir, batch) samples (the last may be
 *     shorter): a function of the circuit and the batch size, never of the thread count; threads take chunks
 *     dynamically. Never threads over the amplitudes of one state: each kernel call is
 *     single-threaded on its own workspace (qkd_kernel_workspace_bytes, one per thread, owned by
 *     the pool).
 *   - Forward: chunk c is one kernel call with first_sample + c*chunk, so shot sampling is
 *     unchanged by the split. Outputs are per sample: identical for every thread count.
 *   - Backward: chunk c accumulates into its own zeroed partial d_params; after all chunks the
 *     partials are added to d_params in chunk order 0, 1, 2, …. d_params (+=) and d_features
 *     (overwritten, may be NULL) are therefore bit-identical for every thread count (for a given
 *     kernel and batch), though not necessarily equal to one kernel call over the whole batch.
 *   - One caller at a time per pool (calls are not re-entrant on one pool); distinct pools are
 *     independent. The caller's thread does a share of the work.
 *   - Functions returning int give 0, or -1 if memory ran out (nothing was computed then).
 *   - Never includes compiler/ or LLVM headers. */
#ifndef QKD_PAR_H
#define QKD_PAR_H

#include "qkd_kernel.h"

#define QKD_PAR_CHUNK 64       /* samples per chunk while a sample's state is small */
#define QKD_PAR_CHUNK_MID 32   /* past QKD_PAR_SMALL_DIM amplitudes, in a batch of < 2 QKD_PAR_CHUNK */
#define QKD_PAR_CHUNK_LARGE 16 /* past QKD_PAR_LARGE_DIM amplitudes per sample */
#define QKD_PAR_SMALL_DIM 64
#define QKD_PAR_LARGE_DIM 1024

/* The chunk of a batch of `batch` samples through a circuit, by the amplitudes a sample's state
 * has (2^n, or 4^n for a noisy circuit's density matrix): QKD_PAR_CHUNK up to QKD_PAR_SMALL_DIM;
 * up to QKD_PAR_LARGE_DIM, QKD_PAR_CHUNK when the batch holds two of them, else
 * QKD_PAR_CHUNK_MID; past it QKD_PAR_CHUNK_LARGE. So the batches of 64 that students are trained
 * with give both threads work from 7 qubits (4 with noise) on, while the smallest circuits and
 * the big batches keep the fewest dispatches; every chunk is a multiple of every kernel's lane
 * count, and it depends on the circuit and the batch, never on the thread count. (A student of 8
 * qubits trains in 38 % less time with 32 than with 64; one of 4 or 5 qubits in 8 % more; one
 * of 4 noisy qubits in 35 % less; W(8, 10, 1000) on 2 threads ran 1–7 % slower with 32.) */
int qkd_par_chunk(const qkd_ir_circuit *ir, int batch);

typedef struct qkd_par_pool qkd_par_pool;

/* A pool running batches on `threads` threads in total (the caller plus threads-1 workers;
 * threads < 1 means 1). NULL if out of memory or threads cannot be started. */
qkd_par_pool *qkd_par_create(int threads);
/* Stops the workers and frees everything (NULL is fine). */
void qkd_par_destroy(qkd_par_pool *pool);
int qkd_par_threads(const qkd_par_pool *pool);

int qkd_par_fwd_f64(qkd_par_pool *pool, const qkd_kernel *k, const double *params,
                    const double *features, int batch, uint64_t seed, uint64_t first_sample,
                    double *outputs);
int qkd_par_bwd_f64(qkd_par_pool *pool, const qkd_kernel *k, const double *params,
                    const double *features, int batch, const double *d_outputs, double *d_params,
                    double *d_features);
int qkd_par_fwd_f32(qkd_par_pool *pool, const qkd_kernel *k, const float *params,
                    const float *features, int batch, uint64_t seed, uint64_t first_sample,
                    float *outputs);
int qkd_par_bwd_f32(qkd_par_pool *pool, const qkd_kernel *k, const float *params,
                    const float *features, int batch, const float *d_outputs, float *d_params,
                    float *d_features);

/* Runs fn(ud, c) for c = 0 … n-1 on the pool's threads (the caller's included; chunks taken
 * dynamically, so fn must make each c's result independent of which thread runs it) and
 * returns when every call has returned (pool NULL: in order on the caller's). The same one-caller-at-a-time rule as the kernels'. */
void qkd_par_for(qkd_par_pool *pool, int n, void (*fn)(void *ud, int c), void *ud);

/* Parameter-shift gradient in VJP form (`gradient: parameter_shift`) through k's FORWARD entry
 * points on this pool (JIT kernels, every thread; f32 entry points when k->ir->precision is
 * f32, inputs given in double): d_params += Σ_b Σ_o d_outputs[b][o] dO_o/dp, d_features (may
 * be NULL) overwritten — the same quantity and shift rules as qkd_qsim_grad_pshift (qsim.h).
 *   - A PARAM angle is shifted through params[index] ± shift/scale: one forward over the batch
 *     per (parameter, term).
 *   - A feature read by exactly one angle is shifted through its own column: every (feature,
 *     term) of a sample is one row of a single stacked forward. A feature read by several angles
 *     (or any feature of an AMPLITUDE circuit, being an amplitude too) cannot be shifted per
 *     angle through the kernel: those take the interpreter's per-angle shift
 *     (qkd_qsim_grad_pshift_select). The amplitudes themselves get 0, as there.
 *   - Shots: every shifted circuit is sampled with ir->shots measurements drawn as outcome counts
 *     (qkd_kernel_sample_counts_f64, k->sample of a private copy of k); parameter (slot, term)
 *     e uses seed' = rng(seed, e) and sample first_sample + b, the stacked row of (sample b,
 *     evaluation e) uses sample (first_sample + b)·E + e: the draws depend on (seed, sample), never
 *     on the thread count or on how the batch is split. Sums run in a fixed order, so the
 *     results are bit-identical for every thread count.
 * Returns 0, or -1 if memory ran out. */
int qkd_par_pshift(qkd_par_pool *pool, const qkd_kernel *k, const double *params,
                   const double *features, int batch, const double *d_outputs, uint64_t seed,
                   uint64_t first_sample, double *d_params, double *d_features);

#endif
