/* qkd_channels.h — the channel table: the one place that says what a noise channel is. The
 * circuit IR (ir.c: validation, dump, hash), the density-matrix engine (dmsim.c) and the
 * language's noise lowering (compiler/) read every channel fact from here; none of them switches
 * on a channel kind. The tests' density-matrix reference (tests/unit/test_rt_dmsim.c) keeps its own
 * Kraus matrices on purpose and never reads this table.
 *
 * Owns: qkd_chan_kind, the table (name, parameters and their range, Kraus operators), evaluating
 * a row's Kraus matrices at its parameter, the read-out confusion matrix, and a self-check.
 * Promises:
 *   - Every quantum channel here acts on one qubit: ρ → Σ_k K_k ρ K_k†, with the Kraus operators
 *     exactly as PennyLane defines them (qml.DepolarizingChannel, AmplitudeDamping,
 *     PhaseDamping, BitFlip, PhaseFlip):
 *       depolarizing(p)       K0 = √(1−p) I, K1 = √(p/3) X, K2 = √(p/3) Y, K3 = √(p/3) Z
 *       amplitude_damping(γ)  K0 = [[1, 0], [0, √(1−γ)]], K1 = [[0, √γ], [0, 0]]
 *       phase_damping(γ)      K0 = [[1, 0], [0, √(1−γ)]], K1 = [[0, 0], [0, √γ]]
 *       bit_flip(p)           K0 = √(1−p) I, K1 = √p X
 *       phase_flip(p)         K0 = √(1−p) I, K1 = √p Z
 *     Every parameter lies in [lo, hi] = [0, 1]; at 0 every channel is the identity.
 *   - Qiskit Aer's depolarizing_error(λ, 1) is ρ → (1 − λ) ρ + λ I/2; it equals
 *     depolarizing(p) here for λ = 4p/3 (so p = 3/4 is the fully depolarizing channel, and
 *     p ∈ (3/4, 1] over-rotates towards the opposite Bloch vector, as in PennyLane).
 *   - readout(p01, p10) is not a quantum channel but the classical confusion of one measured
 *     bit: p01 = P(read 1 | true 0), p10 = P(read 0 | true 1), both in [0, 1]. Its row has
 *     n_kraus = 0 and two parameters; qkd_chan_readout_matrix gives the 2×2 column-stochastic
 *     matrix C[r][t] = P(read r | true t).
 *   - Kraus matrix layout: k[i][r*2 + c][0], [1] = Re, Im of row r, column c of K_i (i <
 *     n_kraus), basis |0>, |1> of the qubit, as in qkd_gates.h.
 *   - An entry of a Kraus matrix is (re + i·im) · √(a + b·p): the table is data, so the self-check
 *     and every engine see the same numbers.
 *   - qkd_chan(k) never returns a row for a kind outside the table: it stops the process with an
 *     internal error (exit 2), as qkd_gate does.
 *   - qkd_chan_table_check reports a bad row in a qkd_error (qkd_err.h): kind INTERNAL, no path,
 *     the message naming the row. */
#ifndef QKD_CHANNELS_H
#define QKD_CHANNELS_H

#include "qkd_err.h"

#define QKD_CHAN_MAX_KRAUS 4
#define QKD_CHAN_MAX_PARAMS 2

typedef struct {
  double re, im; /* coef; 0, 0 = structural zero */
  double a, b;   /* the entry is coef · √(a + b·p) */
} qkd_chan_entry;

/* entries */
#define QC_O {0, 0, 0, 0}                /* structural zero */
#define QC_1 {1, 0, 1, 0}                /* 1 */
#define QC_S(re, im, a, b) {re, im, a, b} /* (re + i im) √(a + b p) */
#define QC_KEEP QC_S(1, 0, 1, -1)         /* √(1−p) */
/* matrices {K[0][0], K[0][1], K[1][0], K[1][1]} */
#define QC_I(a, b) {QC_S(1, 0, a, b), QC_O, QC_O, QC_S(1, 0, a, b)}
#define QC_X(a, b) {QC_O, QC_S(1, 0, a, b), QC_S(1, 0, a, b), QC_O}
#define QC_Y(a, b) {QC_O, QC_S(0, -1, a, b), QC_S(0, 1, a, b), QC_O}
#define QC_Z(a, b) {QC_S(1, 0, a, b), QC_O, QC_O, QC_S(-1, 0, a, b)}
#define QC_DAMP_K0 {QC_1, QC_O, QC_O, QC_KEEP}
#define QC_UNIT .lo = 0, .hi = 1 /* parameters in [0, 1] */

/* QKD_CHAN_LIST(C_): C_(KIND, designated initializers of its qkd_chan_info). ORDER MATTERS: the
 * enum values are positions in this list (circuit fingerprints hash them): append at the end. */
#define QKD_CHAN_LIST(C_)                                                                          \
  C_(DEPOLARIZING, .name = "depolarizing", .pennylane = "DepolarizingChannel", .n_params = 1,      \
     .param = {"p"}, QC_UNIT, .n_kraus = 4,                                                        \
     .k = {QC_I(1, -1), QC_X(0, 1.0 / 3.0), QC_Y(0, 1.0 / 3.0), QC_Z(0, 1.0 / 3.0)})               \
  C_(AMPLITUDE_DAMPING, .name = "amplitude_damping", .pennylane = "AmplitudeDamping",              \
     .n_params = 1, .param = {"gamma"}, QC_UNIT, .n_kraus = 2,                                     \
     .k = {QC_DAMP_K0, {QC_O, QC_S(1, 0, 0, 1), QC_O, QC_O}})                                      \
  C_(PHASE_DAMPING, .name = "phase_damping", .pennylane = "PhaseDamping", .n_params = 1,           \
     .param = {"gamma"}, QC_UNIT, .n_kraus = 2,                                                    \
     .k = {QC_DAMP_K0, {QC_O, QC_O, QC_O, QC_S(1, 0, 0, 1)}})                                      \
  C_(BIT_FLIP, .name = "bit_flip", .pennylane = "BitFlip", .n_params = 1, .param = {"p"},          \
     QC_UNIT, .n_kraus = 2, .k = {QC_I(1, -1), QC_X(0, 1)})                                        \
  C_(PHASE_FLIP, .name = "phase_flip", .pennylane = "PhaseFlip", .n_params = 1, .param = {"p"},    \
     QC_UNIT, .n_kraus = 2, .k = {QC_I(1, -1), QC_Z(0, 1)})                                        \
  C_(READOUT, .name = "readout", .pennylane = NULL, .n_params = 2, .param = {"p01", "p10"},        \
     QC_UNIT, .n_kraus = 0)

typedef enum {
#define QKD_CHAN_ENUM(e, ...) QKD_CHAN_##e,
  QKD_CHAN_LIST(QKD_CHAN_ENUM)
#undef QKD_CHAN_ENUM
  QKD_CHAN_COUNT
} qkd_chan_kind;

typedef struct {
  const char *name;                         /* as the language will spell it */
  const char *pennylane;                    /* PennyLane's class of the same channel; NULL: none */
  int n_params;                             /* 1; readout: 2 (p01, p10) */
  const char *param[QKD_CHAN_MAX_PARAMS];   /* their names */
  double lo, hi;                            /* every parameter's range (all [0, 1] today) */
  int n_kraus;                              /* 0 for readout (classical, not a Kraus channel) */
  qkd_chan_entry k[QKD_CHAN_MAX_KRAUS][4];  /* K_i, row-major 2×2 */
} qkd_chan_info;

extern const qkd_chan_info qkd_chan_table[QKD_CHAN_COUNT];

/* The row of kind k; an internal error (message on stderr, exit 2) if k is not in the table. */
const qkd_chan_info *qkd_chan(int k);
/* The channel called `name`, or -1. */
int qkd_chan_lookup(const char *name);
/* 1 if kind k is a quantum channel an IR circuit may carry (n_kraus > 0): every kind but readout. */
int qkd_chan_is_quantum(int k);
/* 1 if p lies in the range of kind k's parameters. */
int qkd_chan_param_ok(int k, double p);
/* The Kraus matrices of quantum channel k at parameter p into kraus[n_kraus][4][2] (layout
 * above); p must be in range (an internal error otherwise, as for an unknown kind). */
void qkd_chan_kraus(int k, double p, double (*kraus)[4][2]);
/* The read-out confusion matrix m[r][t] = P(read r | true t) of one bit. */
void qkd_chan_readout_matrix(double p01, double p10, double m[2][2]);

/* Checks every row: name unique and found by lookup, parameter count and names, Kraus count, no
 * entry √ of a negative number over the range, completeness Σ K†K = I (to 1e-14) at several p
 * in range, and every channel the identity at p = 0. 0, or -1 with err filled: kind INTERNAL, no
 * path, msg "channel table row 'NAME': what". */
int qkd_chan_table_check(qkd_error *err);

#endif
