/* dense_ref.h — an INDEPENDENT dense-matrix reference simulator for the circuit IR, used by the
 * tests to check every engine (interpreter, JIT, AOT). It shares no code with runtime/qsim.c:
 * every gate becomes its full 2^n × 2^n complex matrix (Kronecker products of 2×2 matrices for
 * one-qubit gates, an explicit 4×4 matrix embedded on the two qubits for two-qubit gates, each
 * derived from the PennyLane/Qiskit definitions: R_P(θ) = cos(θ/2) I − i sin(θ/2) P, Ising
 * R_PP(θ) = cos(θ/2) I − i sin(θ/2) P⊗P, U3, controlled phase), and the state is multiplied by it.
 * It never reads the runtime's gate table (it is the oracle the table is checked against).
 * Slow (O(4^n) per gate) and obviously right; keep n ≤ 10.
 *
 * Promises: outputs are exact (ir->shots is ignored); qubit 0 is the most significant bit of a
 * basis index; amplitude encoding L2-normalises features[0..n_features), zero-pads, and maps an
 * all-zero vector to |0…0>. All functions take one sample (params[n_params], features[n_features];
 * features may be NULL when n_features == 0) and allocate their own scratch. */
#ifndef QKD_DENSE_REF_H
#define QKD_DENSE_REF_H

#include "qkd_ir.h"

/* The full unitary of one gate at angles theta[0..angles) (ignored by fixed gates):
 * mat[2*(r*dim+c)] and [+1] are Re, Im of row r, column c, dim = 2^n_qubits. */
void dense_ref_gate_matrix(int n_qubits, const qkd_ir_gate *g, const double *theta, double *mat);
/* The reference's own qubit and angle counts of a gate kind (aborts for a kind it lacks). */
int dense_ref_gate_qubits(qkd_gate_kind kind);
int dense_ref_gate_angles(qkd_gate_kind kind);

/* Final state: state[2*i], state[2*i+1] = Re, Im of amplitude i. */
void dense_ref_state(const qkd_ir_circuit *c, const double *params, const double *features,
                     double *state);

/* Exact <Z_q> for every qubit (z[n], may be NULL) and basis probabilities (probs[2^n], may be
 * NULL). */
void dense_ref_z_probs(const qkd_ir_circuit *c, const double *params, const double *features,
                       double *z, double *probs);

/* <Z_q> (z, may be NULL) and probabilities (probs, may be NULL) of a given final state. */
void dense_ref_measure(const qkd_ir_circuit *c, const double *state, double *z, double *probs);

/* The exact outputs c->measure asks for: n (Z) or 2^n (PROBS) numbers. */
void dense_ref_outputs(const qkd_ir_circuit *c, const double *params, const double *features,
                       double *out);

typedef enum { DENSE_WRT_PARAM = 0, DENSE_WRT_FEATURE = 1 } dense_wrt;

/* Central finite difference d out / d (params or features)[index] with step h:
 * (out(+h) − out(−h)) / 2h for every output of c->measure (d_out has qkd_ir_outputs(c) entries). */
void dense_ref_fd(const qkd_ir_circuit *c, const double *params, const double *features,
                  dense_wrt wrt, int index, double h, double *d_out);

#endif
