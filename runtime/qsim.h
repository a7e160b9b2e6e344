/* qsim.h — the reference circuit interpreter ("interp" engine): the oracle every other engine
 * (LLVM JIT, AOT) is tested against. Plain double-precision state-vector simulation, one sample
 * at a time, one gate at a time; it stays simple on purpose (speed is the JIT's job).
 *
 * Owns: running a qkd_ir_circuit (qkd_ir.h) exactly as documented there, and three gradient
 * methods for it.
 * Promises:
 *   - qkd_qsim_kernel: a qkd_kernel (qkd_kernel.h ABI, engine "interp") whose fwd/bwd entry
 *     points run k->ir. The f32 entry points convert to double, compute in double and round the
 *     results to float. Forward with ir->shots > 0 samples through k->sample (NULL:
 *     qkd_kernel_sample_f64), keyed by (seed, first_sample + i), so results never depend on batch
 *     splitting.
 *   - Backward is adjoint differentiation (Jones & Gacon): a vector–Jacobian product of the EXACT
 *     outputs (shots are ignored), recomputing the forward state itself. d_params += over the
 *     batch; d_features (if not NULL) is overwritten: the chain rule through `scale` for every
 *     FEATURE angle (summed when one feature feeds several gates), plus, for AMPLITUDE encoding,
 *     the gradient through the L2 normalisation (zero for an all-zero feature vector).
 *   - The workspace passed to the kernel must hold qkd_kernel_workspace_bytes(ir) bytes; the
 *     other functions below allocate their own scratch (they are for tools and tests).
 *   - ir must pass qkd_ir_validate; nothing here re-validates it.
 */
#ifndef QKD_QSIM_H
#define QKD_QSIM_H

#include "qkd_kernel.h"

/* The interpreter's kernel for `ir` (not copied: ir must outlive the kernel). No cleanup. */
qkd_kernel qkd_qsim_kernel(const qkd_ir_circuit *ir);

/* The final state of one sample: state[2*i], state[2*i+1] = Re, Im of amplitude i (2^n of them;
 * qubit 0 is the most significant bit of i). features: one row of n_features (may be NULL when
 * n_features == 0). */
void qkd_qsim_state(const qkd_ir_circuit *ir, const double *params, const double *features,
                    double *state);

/* Exact Jacobians of one sample's outputs w.r.t. the parameters, computed by forward-mode
 * tangent propagation (independent of the adjoint code):
 *   jac_z     [n_qubits][n_params]   d<Z_q>/dp
 *   jac_probs [2^n][n_params]        dP(i)/dp
 * Either may be NULL. Shots are ignored (exact outputs). Used by `qkdc sim --grad`. */
void qkd_qsim_jacobian(const qkd_ir_circuit *ir, const double *params, const double *features,
                       double *jac_z, double *jac_probs);

/* Parameter-shift gradient in VJP form over a batch (same layouts as the kernel ABI):
 * d_params += sum_b sum_o d_outputs[b][o] dO_o/dp, d_features (may be NULL) overwritten.
 *   - Every angle (PARAM and FEATURE, every slot of a gate of several angles) takes its row's
 *     shift rule (qkd_gates.h): two-term, shifts ±π/2 of the angle, factor ½·scale; four-term
 *     (the controlled rotations), shifts ±π/2 and ±3π/2 with coefficients (√2+1)/(4√2) and
 *     (√2−1)/(4√2), times scale. A FEATURE index feeding several gates gets the sum of their
 *     terms.
 *   - With ir->shots > 0 every shifted circuit is sampled with ir->shots measurements through
 *     qkd_kernel_sample_f64, with a seed derived from (seed, shifted-evaluation number
 *     4(gate + n_gates·slot) + term) and the
 *     sample number first_sample + b: deterministic in (seed, sample), distinct RNG counters for
 *     every shifted evaluation and distinct from the forward pass's draws.
 *   - AMPLITUDE encoding has no shift rule: its contribution to d_features is 0 (only FEATURE
 *     angles, if any, contribute). Use the adjoint backward for amplitude-feature gradients. */
void qkd_qsim_grad_pshift(const qkd_ir_circuit *ir, const double *params, const double *features,
                          int batch, const double *d_outputs, uint64_t seed, uint64_t first_sample,
                          double *d_params, double *d_features);
/* The same restricted: PARAM angles only when d_params is not NULL, FEATURE angles only of the
 * features f with want[f] (want NULL: all); only those columns of d_features are overwritten. */
void qkd_qsim_grad_pshift_select(const qkd_ir_circuit *ir, const double *params, const double *features,
                                 int batch, const double *d_outputs, uint64_t seed, uint64_t first_sample,
                                 double *d_params, double *d_features, const unsigned char *want);

#endif
