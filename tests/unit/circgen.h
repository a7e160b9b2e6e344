/* circgen.h — seeded random circuits for engine tests (the interpreter's and the LLVM JIT's).
 *
 * Owns: building random, VALID (qkd_ir_validate passes) flat circuits and random inputs for them.
 * Promises:
 *   - circgen_random(seed, opts) is a pure function of (seed, *opts): same arguments, same circuit.
 *   - Circuits use every gate kind of the gate table (two-qubit gates only when n ≥ 2), PARAM angles
 *     (numbered in order of appearance, each used once), FEATURE angles (a feature may feed
 *     several gates), CONST angles, with random scale (|scale| in [0.25, 2], either sign) and
 *     offset in [-π, π] (each angle of a gate of several angles drawn on its own); encodings:
 *     none, gate encoding (n_encoding_gates leading gates with FEATURE angles, data
 *     re-uploading possible later) or AMPLITUDE (n_features in 1..2^n);
 *     measurements Z or PROBS; optionally shots > 0.
 *   - n_features follows the qkd_ir.h contract: AMPLITUDE → the amplitude count; otherwise
 *     1 + the largest FEATURE index (0 if none).
 *   - The circuit and its gates are one heap block: free it with circgen_free (also for copies).
 * Randomness comes from qkd_rng (its own stream), never from rand(). */
#ifndef QKD_CIRCGEN_H
#define QKD_CIRCGEN_H

#include "qkd_ir.h"

typedef struct {
  int min_qubits, max_qubits; /* range of n_qubits, within 1..QKD_MAX_QUBITS (default 1..10) */
  int min_gates, max_gates;   /* range of ansatz gates, encoding gates not counted (default 1..30) */
  double p_amplitude;         /* probability of AMPLITUDE encoding (default 0.35) */
  double p_gate_encoding;     /* probability of a gate encoding when not amplitude (default 0.7) */
  double p_probs;             /* probability of MEASURE_PROBS, else MEASURE_Z (default 0.5) */
  double p_shots;             /* probability of shots > 0 (default 0: exact circuits) */
  int max_shots;              /* shots drawn uniformly in 1..max_shots when sampled (default 2000) */
  double p_param, p_feature;  /* angle kinds of ansatz rotations: PARAM, FEATURE, else CONST
                                 (defaults 0.6, 0.2); FEATURE only if the circuit has features */
  int amp_feature_angles;     /* allow FEATURE angles in AMPLITUDE circuits (default 1) */
  double p_extra_features;    /* AMPLITUDE: probability of 1–3 features past the amplitudes
                                 (n_amplitudes < n_features), read by gates only (default 0) */
  qkd_precision precision;    /* copied into the circuit (default QKD_PREC_F64) */
} circgen_opts;

/* The defaults listed above. */
circgen_opts circgen_defaults(void);

/* A random valid circuit (never NULL; aborts if it would be invalid — a generator bug). opts may
 * be NULL for the defaults. */
qkd_ir_circuit *circgen_random(uint64_t seed, const circgen_opts *opts);

/* A deep copy (gates included) that the caller may modify; free with circgen_free. */
qkd_ir_circuit *circgen_copy(const qkd_ir_circuit *c);

/* Frees a circuit from circgen_random or circgen_copy (NULL is fine). */
void circgen_free(qkd_ir_circuit *c);

/* The benchmark's hardware-efficient ansatz W(n, L): L × [RY then RZ on every qubit, each its own
 * parameter; CNOT ring q -> (q+1) mod n], amplitude encoding of 2^n features. One allocation:
 * release with circgen_free. Shared by bench/qsim_bench.c and the kernel tests. */
qkd_ir_circuit *circgen_hea(int n, int L, qkd_measure_kind measure, qkd_precision precision);

/* The benchmark's data for W(n, L) = c (circgen_hea): features[batch][2^n] uniform in [0, 1),
 * each sample L2-normalised, from qkd_rng(12345, QKD_STREAM_DATA, b·2^n + j); params[n_params]
 * uniform in [0, 2π) from qkd_rng(12345, QKD_STREAM_INIT, i). Shared by bench/qsim_bench.c and
 * bench/noise_bench.c, so both time the same samples. */
void circgen_hea_data(const qkd_ir_circuit *c, int batch, double *features, double *params);

/* Random inputs: params[n_params] uniform in [-π, π] (if params is not NULL) and
 * features[batch][n_features] uniform in [-1, 1] (if features is not NULL). Pure in seed. */
void circgen_inputs(const qkd_ir_circuit *c, uint64_t seed, int batch, double *params,
                    double *features);

/* Six-sigma bounds of a sampled parameter-shift gradient (c->shots > 0) around the exact one,
 * for upstream gradients dout[batch][outputs]: each shifted evaluation Σ_o d_o out_o has std
 * ≤ D/√shots (D: Σ|d_o| for Z, max|d_o| for probabilities, the largest over the batch) and a
 * gradient entry sums Σ coef² ≤ ½ of them per angle times scale², over the batch for a
 * parameter (tol_params[n_params]) and per sample for a feature (tol_features[n_features]; may
 * be NULL). */
void circgen_pshift_tolerances(const qkd_ir_circuit *c, const double *dout, int batch, double *tol_params,
                               double *tol_features);

/* 1 if some gate has a FEATURE angle. */
int circgen_has_feature_angles(const qkd_ir_circuit *c);

#endif
