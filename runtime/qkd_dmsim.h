/* qkd_dmsim.h — the exact density-matrix engine ("dm"): the reference for noisy circuits, as
 * the state-vector interpreter (qsim.h) is for noiseless ones. One sample at a time, ρ as a
 * plain double-complex 2^n × 2^n matrix, one gate or channel at a time; simple on purpose (it
 * is the oracle, speed is not its job).
 *
 * Owns: running a qkd_ir_circuit (qkd_ir.h) with its noise — channels (qkd_channels.h) and
 * read-out — exactly, and the adjoint vector–Jacobian product of its exact outputs.
 * Promises:
 *   - Encoding as in qkd_ir.h: AMPLITUDE ρ0 = |ψ0><ψ0|, ψ0 = x/|x| zero-padded (|0…0> for an
 *     all-zero x); NONE ρ0 = |0…0><0…0|. A gate is ρ → UρU† with U its gate-table matrix
 *     (qkd_gates.h, never re-derived here); a channel ρ → Σ_k K_k ρ K_k† with the channel
 *     table's Kraus operators, at its place in the gate list (`after`).
 *   - Outputs (exact; ir->shots is ignored by qkd_dm_forward and qkd_dm_vjp): MEASURE_Z
 *     <Z_q>_read = P(read 0) − P(read 1) = (1 − 2 p01) P(q = 0) − (1 − 2 p10) P(q = 1);
 *     MEASURE_PROBS the distribution of the read bits, diag(ρ) through every qubit's confusion
 *     matrix C_q[r][t] = P(read r | true t). Without readout these are Tr(Z_q ρ) and diag(ρ).
 *   - With no channels and no readout (or all of them at 0) the outputs and gradients are the
 *     interpreter's up to rounding (the tests check 1e-12).
 *   - qkd_dm_vjp: d_params += Σ_o d_o ∂O_o/∂p; d_features (if not NULL) overwritten, exactly as
 *     qsim.h promises for the state-vector engine: the chain rule through `scale` for every
 *     FEATURE angle (summed over the gates a feature feeds) plus, for AMPLITUDE encoding, the
 *     gradient through the L2 normalisation (zero for an all-zero feature vector).
 *   - Memory: ρ takes qkd_dm_bytes(n) = 16·4^n bytes (1 MiB at n = 8, 256 MiB at n = 12). The
 *     forward pass holds one ρ; the VJP holds ρ, the cotangent Λ and one copy of ρ for every
 *     distinct `after` at which channels act (see dmsim.c): (2 + R)·16·4^n bytes.
 *   - n_qubits above QKD_DM_MAX_QUBITS is refused (kind INPUT); running out of memory is kind
 *     MEMORY. ir must pass qkd_ir_validate; nothing here re-validates it.
 *   - qkd_dm_kernel: a qkd_kernel (qkd_kernel.h ABI, engine "dm") whose entry points run these
 *     per sample. Forward with ir->shots > 0 samples the read-bit distribution through k->sample
 *     (NULL: qkd_kernel_sample_f64), keyed by (seed, first_sample + i), as the interpreter does.
 *     The f32 entry points compute in double (qkd_kernel_fwd_f32_in_f64). The entry points ignore `workspace` (they allocate
 *     their own, per call) and abort (exit 2) when memory runs out. */
#ifndef QKD_DMSIM_H
#define QKD_DMSIM_H

#include "qkd_kernel.h"

#define QKD_DM_MAX_QUBITS 12

/* 0 when ir fits the density-matrix engines (at most QKD_DM_MAX_QUBITS qubits), else -1 with err
 * (INPUT) saying so. */
int qkd_dm_check_size(const qkd_ir_circuit *ir, qkd_error *err);

/* Bytes of one density matrix on n qubits: 16·4^n. */
size_t qkd_dm_bytes(int n_qubits);

/* One sample forward: outputs[qkd_ir_outputs(ir)] exact; rho (may be NULL) receives the final ρ
 * before read-out, rho[2*(r*2^n + c)] and [+1] = Re, Im of row r, column c (qubit 0 the most
 * significant bit of r and c). features may be NULL when n_features == 0. 0, or -1 with err
 * (INPUT: too many qubits; MEMORY). */
int qkd_dm_forward(const qkd_ir_circuit *ir, const double *params, const double *features,
                   double *outputs, double *rho, qkd_error *err);

/* One sample's adjoint vector–Jacobian product for upstream d_outputs[qkd_ir_outputs(ir)]:
 * d_params[n_params] += …, d_features[n_features] (if not NULL) overwritten. 0, or -1 with err
 * as qkd_dm_forward. */
int qkd_dm_vjp(const qkd_ir_circuit *ir, const double *params, const double *features,
               const double *d_outputs, double *d_params, double *d_features, qkd_error *err);

/* Read-out, shared with the fast kernel (qkd_dmk.h) so its arithmetic lives here only. diag is
 * diag(ρ) (2^n true-bit probabilities). qkd_dm_outputs_of_diag: the exact outputs into
 * out[qkd_ir_outputs(ir)] (diag is overwritten: scratch). qkd_dm_read_probs_of_diag: diag becomes
 * the read-bit distribution. qkd_dm_observable: the diagonal w[2^n] of the observable
 * Λ = Σ_o d_out[o] M_o (read-out included), so that Σ_o d_out[o] O_o = Σ_i w[i] ρ_ii. */
void qkd_dm_outputs_of_diag(const qkd_ir_circuit *ir, double *diag, double *out);
void qkd_dm_read_probs_of_diag(const qkd_ir_circuit *ir, double *diag);
/* z[t] = the read-out value of Z_q (the mean of (−1)^(read bit)) given true bit t (1, −1 without
 * read-out). */
void qkd_dm_readout_z(const qkd_ir_circuit *ir, int q, double z[2]);
void qkd_dm_observable(const qkd_ir_circuit *ir, const double *d_out, double *w);

/* The density-matrix kernel for `ir` into *k (ir not copied: it must outlive the kernel; no
 * cleanup). 0, or -1 with err (INPUT) when ir has more than QKD_DM_MAX_QUBITS qubits. */
int qkd_dm_kernel(const qkd_ir_circuit *ir, qkd_kernel *k, qkd_error *err);

#endif
