/* qkd_gates.h — the gate table: the one place that says what a gate is. The interpreter
 * (qsim.c), the IR (ir.c: validation, dump), the LLVM planner and emitter (compiler/jit_*.c),
 * lowering (compiler/lower.c) and `qkdc draw` (compiler/draw.c) read every gate fact from here;
 * none of them switches on a gate kind. Adding a gate is one QKD_GATE_LIST row (plus, optionally,
 * a JIT fast path); the engines derive the rest (block structure, diagonal form, permutation map)
 * from the row's matrix. The tests' dense reference (tests/unit/dense_ref.c) keeps its own
 * matrices on purpose and never reads this table.
 *
 * Owns: qkd_gate_kind, the table, evaluating a row's matrix (and its derivatives) at angles, the
 * structural analysis every engine shares, and a self-check of every row.
 * Promises:
 *   - Angles of a gate are a[0..angles); a matrix entry is
 *       coef · T(a[0]) · exp(i/2 · Σ_k w_k a_k),   T ∈ {1, cos(a[0]/2), sin(a[0]/2)},
 *     coef a complex constant; coef = 0 means a structural zero (never nonzero at any angle).
 *   - Matrix layout: m[r*D + c], D = 2^qubits, basis pattern = 2·bit(q[0]) + bit(q[1]) for two
 *     qubits (q[0] the more significant, as in the circuit IR), bit(q[0]) for one.
 *   - A one-angle gate has U(a) = exp(−i a G / 2) with the constant Hermitian generator `gen`
 *     (U(0) = I); its parameter shift follows `shift`. A gate of several angles gives instead a
 *     decomposition into one-angle gates (applied in order, each reading one angle slot) equal to
 *     it up to the global phase exp(i/2 · Σ phase_k a_k); gradients use the steps' generators.
 *   - structure: DIAGONAL (only diagonal entries nonzero), PERMUTATION (a 0/1 permutation
 *     matrix), GENERAL; controlled: the matrix is I ⊕ U with q[0] the control (U acts on q[1]).
 *     qkd_gate_table_check verifies every one of these claims against the matrix.
 *   - Conventions as PennyLane/Qiskit (see docs/language.md): RX(θ) = exp(−iθX/2), …,
 *     RXX(θ) = exp(−iθ X⊗X/2), U3(θ, φ, λ) = [[c, −e^{iλ}s], [e^{iφ}s, e^{i(φ+λ)}c]],
 *     CPHASE(θ) = diag(1, 1, 1, e^{iθ}).
 *   - qkd_gate(k) never returns a row for a kind outside the table: it stops the process with
 *     an internal error (exit 2), so an unknown kind can never act as a zero or an identity.
 *   - OpenQASM: `qasm` is the gate's name in stdgates.inc (OpenQASM 3), `qasm2` in qelib1.inc when
 *     it differs; where an include lacks the gate, `qasm_def` / `qasm2_def` is a `gate`
 *     definition (of the same name) equal to the matrix up to a global phase (runtime/qasm.c
 *     writes it into the file; tests/interop/qasm.sh checks it in an independent simulator).
 *   - qkd_gate_table_check reports a bad row in a qkd_error (qkd_err.h): kind INTERNAL, no path,
 *     the message naming the row. */
#ifndef QKD_GATES_H
#define QKD_GATES_H

#include <stddef.h>

#include "qkd_err.h"

#define QKD_GATE_MAX_QUBITS 2
#define QKD_GATE_MAX_ANGLES 3
#define QKD_GATE_DIM 4 /* 2^QKD_GATE_MAX_QUBITS */

typedef enum { QKD_TRIG_ONE = 0, QKD_TRIG_COS, QKD_TRIG_SIN } qkd_gate_trig;

typedef struct {
  double re, im;                        /* coef; 0, 0 = structural zero */
  signed char trig;                     /* qkd_gate_trig of a[0]/2 */
  signed char w[QKD_GATE_MAX_ANGLES];   /* phase weights (in halves of each angle) */
} qkd_gate_entry;

typedef enum { QKD_GS_DIAGONAL = 0, QKD_GS_PERMUTATION, QKD_GS_GENERAL } qkd_gate_structure;
/* NONE: no angle. TWO: f' = ½[f(a + π/2) − f(a − π/2)] (generator eigenvalues one gap of 2).
 * FOUR: f' = c₊[f(a + π/2) − f(a − π/2)] − c₋[f(a + 3π/2) − f(a − 3π/2)],
 * c± = (√2 ± 1)/(4√2) (eigenvalues 0, ±1: gaps 1 and 2, the controlled rotations). */
typedef enum { QKD_SHIFT_NONE = 0, QKD_SHIFT_TWO, QKD_SHIFT_FOUR } qkd_shift_rule;

/* entries */
#define QG_O {0, 0, 0, {0, 0, 0}}                      /* structural zero */
#define QG_K(re, im) {re, im, QKD_TRIG_ONE, {0, 0, 0}} /* constant */
#define QG_1 QG_K(1, 0)
#define QG_C(re, im) {re, im, QKD_TRIG_COS, {0, 0, 0}} /* coef · cos(a0/2) */
#define QG_S(re, im) {re, im, QKD_TRIG_SIN, {0, 0, 0}} /* coef · sin(a0/2) */
#define QG_E(w0) {1, 0, QKD_TRIG_ONE, {w0, 0, 0}}      /* exp(i w0 a0 / 2) */
#define QG_X(re, im, trig, w0, w1, w2) {re, im, trig, {w0, w1, w2}}
#define QG_R2 0.70710678118654752440
/* matrices */
#define QG_CTRL(a, b, c, d) {QG_1, QG_O, QG_O, QG_O, QG_O, QG_1, QG_O, QG_O, QG_O, QG_O, a, b, QG_O, QG_O, c, d}
#define QG_P1(a, b, c, d) {QG_O, QG_O, QG_O, QG_O, QG_O, QG_O, QG_O, QG_O, QG_O, QG_O, a, b, QG_O, QG_O, c, d} /* |1><1| ⊗ */
#define QG_DIAG4(a, b, c, d) {a, QG_O, QG_O, QG_O, QG_O, b, QG_O, QG_O, QG_O, QG_O, c, QG_O, QG_O, QG_O, QG_O, d}
#define QG_PX {QG_O, QG_1, QG_1, QG_O}
#define QG_PY {QG_O, QG_K(0, -1), QG_K(0, 1), QG_O}
#define QG_PZ {QG_1, QG_O, QG_O, QG_K(-1, 0)}
#define QG_RX {QG_C(1, 0), QG_S(0, -1), QG_S(0, -1), QG_C(1, 0)}
#define QG_RY {QG_C(1, 0), QG_S(-1, 0), QG_S(1, 0), QG_C(1, 0)}
#define QG_RZ {QG_E(-1), QG_O, QG_O, QG_E(1)}
/* OpenQASM definitions (equal up to a global phase) of the gates the standard includes lack */
#define QG_DEF_RXX "gate rxx(t) a, b { h a; h b; cx a, b; rz(t) b; cx a, b; h a; h b; }"
#define QG_DEF_RYY \
  "gate ryy(t) a, b { rx(pi/2) a; rx(pi/2) b; cx a, b; rz(t) b; cx a, b; rx(-pi/2) a; rx(-pi/2) b; }"
#define QG_DEF_RZZ "gate rzz(t) a, b { cx a, b; rz(t) b; cx a, b; }"

/* QKD_GATE_LIST(G_): G_(KIND, designated initializers of its qkd_gate_info). ORDER GATE: the
 * enum values are positions in this list (fingerprints hash them): append new gates at the end.
 * Drawing: draw[i] is the symbol on q[i]; a symbol ending in '(' is followed by the angles. */
#define QKD_GATE_LIST(G_)                                                                          \
  G_(H, .name = "h", .qubits = 1, .structure = QKD_GS_GENERAL, .draw = {"H"}, .qasm = "h",         \
     .m = {QG_K(QG_R2, 0), QG_K(QG_R2, 0), QG_K(QG_R2, 0), QG_K(-QG_R2, 0)})                       \
  G_(X, .name = "x", .qubits = 1, .structure = QKD_GS_PERMUTATION, .draw = {"X"}, .qasm = "x",     \
     .m = QG_PX)                                                                                   \
  G_(Y, .name = "y", .qubits = 1, .structure = QKD_GS_GENERAL, .draw = {"Y"}, .qasm = "y",         \
     .m = QG_PY)                                                                                   \
  G_(Z, .name = "z", .qubits = 1, .structure = QKD_GS_DIAGONAL, .draw = {"Z"}, .qasm = "z",        \
     .m = QG_PZ)                                                                                   \
  G_(S, .name = "s", .qubits = 1, .structure = QKD_GS_DIAGONAL, .draw = {"S"}, .qasm = "s",        \
     .m = {QG_1, QG_O, QG_O, QG_K(0, 1)})                                                          \
  G_(T, .name = "t", .qubits = 1, .structure = QKD_GS_DIAGONAL, .draw = {"T"}, .qasm = "t",        \
     .m = {QG_1, QG_O, QG_O, QG_K(QG_R2, QG_R2)})                                                  \
  G_(SX, .name = "sx", .qubits = 1, .structure = QKD_GS_GENERAL, .draw = {"SX"}, .qasm = "sx",     \
     .qasm2_def = "gate sx a { sdg a; h a; sdg a; }",                                              \
     .m = {QG_K(.5, .5), QG_K(.5, -.5), QG_K(.5, -.5), QG_K(.5, .5)})                              \
  G_(RX, .name = "rx", .qubits = 1, .angles = 1, .structure = QKD_GS_GENERAL, .draw = {"RX("},     \
     .qasm = "rx", .m = QG_RX, .gen = QG_PX, .shift = QKD_SHIFT_TWO)                               \
  G_(RY, .name = "ry", .qubits = 1, .angles = 1, .structure = QKD_GS_GENERAL, .draw = {"RY("},     \
     .qasm = "ry", .m = QG_RY, .gen = QG_PY, .shift = QKD_SHIFT_TWO)                               \
  G_(RZ, .name = "rz", .qubits = 1, .angles = 1, .structure = QKD_GS_DIAGONAL, .draw = {"RZ("},    \
     .qasm = "rz", .m = QG_RZ, .gen = QG_PZ, .shift = QKD_SHIFT_TWO)                               \
  G_(CNOT, .name = "cnot", .qubits = 2, .structure = QKD_GS_PERMUTATION, .controlled = 1,          \
     .draw = {"*", "X"}, .qasm = "cx", .m = QG_CTRL(QG_O, QG_1, QG_1, QG_O))                       \
  G_(CZ, .name = "cz", .qubits = 2, .structure = QKD_GS_DIAGONAL, .controlled = 1,                 \
     .draw = {"*", "*"}, .qasm = "cz", .m = QG_CTRL(QG_1, QG_O, QG_O, QG_K(-1, 0)))                \
  G_(SWAP, .name = "swap", .qubits = 2, .structure = QKD_GS_PERMUTATION, .draw = {"x", "x"},       \
     .qasm = "swap", .qasm2_def = "gate swap a, b { cx a, b; cx b, a; cx a, b; }",                 \
     .m = {QG_1, QG_O, QG_O, QG_O, QG_O, QG_O, QG_1, QG_O, QG_O, QG_1, QG_O, QG_O, QG_O, QG_O,     \
           QG_O, QG_1})                                                                            \
  G_(CRX, .name = "crx", .qubits = 2, .angles = 1, .structure = QKD_GS_GENERAL, .controlled = 1,   \
     .draw = {"*", "RX("}, .qasm = "crx", .qasm2_def = "gate crx(t) a, b { h b; crz(t) a, b; h b; }", \
     .m = QG_CTRL(QG_C(1, 0), QG_S(0, -1), QG_S(0, -1), QG_C(1, 0)),                               \
     .gen = QG_P1(QG_O, QG_1, QG_1, QG_O), .shift = QKD_SHIFT_FOUR)                                \
  G_(CRY, .name = "cry", .qubits = 2, .angles = 1, .structure = QKD_GS_GENERAL, .controlled = 1,   \
     .draw = {"*", "RY("}, .qasm = "cry",                                                          \
     .qasm2_def = "gate cry(t) a, b { ry(t/2) b; cx a, b; ry(-t/2) b; cx a, b; }",                 \
     .m = QG_CTRL(QG_C(1, 0), QG_S(-1, 0), QG_S(1, 0), QG_C(1, 0)),                                \
     .gen = QG_P1(QG_O, QG_K(0, -1), QG_K(0, 1), QG_O), .shift = QKD_SHIFT_FOUR)                   \
  G_(CRZ, .name = "crz", .qubits = 2, .angles = 1, .structure = QKD_GS_DIAGONAL, .controlled = 1,  \
     .draw = {"*", "RZ("}, .qasm = "crz", .m = QG_CTRL(QG_E(-1), QG_O, QG_O, QG_E(1)),             \
     .gen = QG_P1(QG_1, QG_O, QG_O, QG_K(-1, 0)), .shift = QKD_SHIFT_FOUR)                         \
  G_(RXX, .name = "rxx", .qubits = 2, .angles = 1, .structure = QKD_GS_GENERAL,                    \
     .draw = {"RXX(", "RXX("}, .qasm = "rxx", .qasm_def = QG_DEF_RXX, .qasm2_def = QG_DEF_RXX,     \
     .m = {QG_C(1, 0), QG_O, QG_O, QG_S(0, -1), QG_O, QG_C(1, 0), QG_S(0, -1), QG_O,               \
           QG_O, QG_S(0, -1), QG_C(1, 0), QG_O, QG_S(0, -1), QG_O, QG_O, QG_C(1, 0)},              \
     .gen = {QG_O, QG_O, QG_O, QG_1, QG_O, QG_O, QG_1, QG_O, QG_O, QG_1, QG_O, QG_O, QG_1, QG_O,   \
             QG_O, QG_O}, .shift = QKD_SHIFT_TWO)                                                  \
  G_(RYY, .name = "ryy", .qubits = 2, .angles = 1, .structure = QKD_GS_GENERAL,                    \
     .draw = {"RYY(", "RYY("}, .qasm = "ryy", .qasm_def = QG_DEF_RYY, .qasm2_def = QG_DEF_RYY,     \
     .m = {QG_C(1, 0), QG_O, QG_O, QG_S(0, 1), QG_O, QG_C(1, 0), QG_S(0, -1), QG_O,                \
           QG_O, QG_S(0, -1), QG_C(1, 0), QG_O, QG_S(0, 1), QG_O, QG_O, QG_C(1, 0)},               \
     .gen = {QG_O, QG_O, QG_O, QG_K(-1, 0), QG_O, QG_O, QG_1, QG_O, QG_O, QG_1, QG_O, QG_O,        \
             QG_K(-1, 0), QG_O, QG_O, QG_O}, .shift = QKD_SHIFT_TWO)                               \
  G_(RZZ, .name = "rzz", .qubits = 2, .angles = 1, .structure = QKD_GS_DIAGONAL,                   \
     .draw = {"RZZ(", "RZZ("}, .qasm = "rzz",                                                      \
     .qasm_def = QG_DEF_RZZ, .qasm2_def = QG_DEF_RZZ,                                              \
     .m = QG_DIAG4(QG_E(-1), QG_E(1), QG_E(1), QG_E(-1)),                                          \
     .gen = QG_DIAG4(QG_1, QG_K(-1, 0), QG_K(-1, 0), QG_1), .shift = QKD_SHIFT_TWO)                \
  G_(CY, .name = "cy", .qubits = 2, .structure = QKD_GS_GENERAL, .controlled = 1,                  \
     .draw = {"*", "Y"}, .qasm = "cy", .m = QG_CTRL(QG_O, QG_K(0, -1), QG_K(0, 1), QG_O))          \
  G_(CH, .name = "ch", .qubits = 2, .structure = QKD_GS_GENERAL, .controlled = 1,                  \
     .draw = {"*", "H"}, .qasm = "ch",                                                             \
     .m = QG_CTRL(QG_K(QG_R2, 0), QG_K(QG_R2, 0), QG_K(QG_R2, 0), QG_K(-QG_R2, 0)))                \
  G_(U3, .name = "u3", .qubits = 1, .angles = 3, .structure = QKD_GS_GENERAL, .draw = {"U3("},     \
     .qasm = "u3",                                                                                 \
     .m = {QG_C(1, 0), QG_X(-1, 0, QKD_TRIG_SIN, 0, 0, 2), QG_X(1, 0, QKD_TRIG_SIN, 0, 2, 0),      \
           QG_X(1, 0, QKD_TRIG_COS, 0, 2, 2)},                                                     \
     .shift = QKD_SHIFT_TWO, .n_steps = 3,                                                         \
     .steps = {{QKD_GATE_RZ, 2}, {QKD_GATE_RY, 0}, {QKD_GATE_RZ, 1}}, .phase = {0, 1, 1})          \
  G_(CPHASE, .name = "cphase", .qubits = 2, .angles = 1, .structure = QKD_GS_DIAGONAL,             \
     .controlled = 1, .draw = {"*", "P("}, .qasm = "cp", .qasm2 = "cu1",                           \
     .m = QG_CTRL(QG_1, QG_O, QG_O, QG_E(2)), .gen = QG_P1(QG_O, QG_O, QG_O, QG_K(-2, 0)),         \
     .shift = QKD_SHIFT_TWO)

typedef enum {
#define QKD_GATE_ENUM(e, ...) QKD_GATE_##e,
  QKD_GATE_LIST(QKD_GATE_ENUM)
#undef QKD_GATE_ENUM
  QKD_GATE_COUNT
} qkd_gate_kind;

typedef struct {
  qkd_gate_kind kind; /* a one-angle gate on the same qubits */
  int slot;           /* the angle slot it reads */
} qkd_gate_step;

typedef struct {
  const char *name;                 /* as written in .qkd */
  int qubits;                       /* 1 or 2 */
  int angles;                       /* 0..QKD_GATE_MAX_ANGLES */
  qkd_gate_structure structure;
  int controlled;                   /* I ⊕ U, q[0] the control */
  const char *draw[QKD_GATE_MAX_QUBITS];
  const char *qasm;                 /* OpenQASM 3 name (stdgates.inc, or Qiskit's for rxx ryy rzz) */
  const char *qasm_def;             /* its `gate` definition when stdgates.inc lacks it, else NULL */
  const char *qasm2;                /* OpenQASM 2 name (qelib1.inc) when it differs, else NULL */
  const char *qasm2_def;            /* its `gate` definition when qelib1.inc lacks it, else NULL */
  qkd_gate_entry m[QKD_GATE_DIM * QKD_GATE_DIM];
  qkd_gate_entry gen[QKD_GATE_DIM * QKD_GATE_DIM]; /* one-angle gates */
  qkd_shift_rule shift;             /* every angle of the gate */
  int n_steps;                      /* several angles: the decomposition */
  qkd_gate_step steps[QKD_GATE_MAX_ANGLES];
  signed char phase[QKD_GATE_MAX_ANGLES];
} qkd_gate_info;

extern const qkd_gate_info qkd_gate_table[QKD_GATE_COUNT];

/* The row of kind k; an internal error (message on stderr, exit 2) if k is not in the table. */
const qkd_gate_info *qkd_gate(int k);
/* The gate called `name`, or -1. */
int qkd_gate_lookup(const char *name);
/* 1 if entry e is a structural zero. */
int qkd_gate_entry_zero(const qkd_gate_entry *e);
/* 1 if entries a and b are the same function of the angles. */
int qkd_gate_entry_same(const qkd_gate_entry *a, const qkd_gate_entry *b);
/* The value of entry e at angles a (out[0] = Re, out[1] = Im); with d >= 0 its derivative
 * with respect to a[d]. */
void qkd_gate_entry_eval(const qkd_gate_entry *e, const double *a, int d, double out[2]);
/* The matrix of k at angles a into m[D*D][2] (D = 2^qubits); d >= 0: its derivative w.r.t. a[d]. */
void qkd_gate_matrix(int k, const double *a, int d, double (*m)[2]);

/* The pairs (two-dimensional blocks) a gate's matrix acts on: the matrix is, up to row and column
 * order, a direct sum of these 2×2 blocks and 1×1 identity entries. Pair i is basis patterns
 * (first[i], second[i]), first < second; a one-qubit gate has the one pair (0, 1); a pattern
 * with a non-identity diagonal entry and no partner is paired with pattern ^ 1. Returns the
 * count, or -1 if the matrix does not have that structure (qkd_gate_table_check reports it). */
int qkd_gate_pairs(int k, int first[QKD_GATE_DIM], int second[QKD_GATE_DIM]);

/* A permutation gate as a linear map over GF(2) of its qubits' bits: map[i] = the pattern that
 * single-bit pattern (1 << i) goes to (i = 0: bit of q[qubits-1], …). Returns 0, or -1 if the
 * gate is not a permutation fixing pattern 0 and linear. */
int qkd_gate_linear_perm(int k, int map[QKD_GATE_MAX_QUBITS]);

/* Checks every row: unitarity at random angles, the structure and controlled claims, U(0) = I and
 * ∂U/∂a = −i/2 G U for one-angle gates, decompositions (up to their phase), shift rules against
 * the generator spectrum, pairs and drawing symbols. 0, or -1 with err filled: kind INTERNAL, no
 * path, msg "gate table row 'NAME': what". */
int qkd_gate_table_check(qkd_error *err);

#endif
