/* qkd_qasm.h — a flat circuit (qkd_ir.h) as an OpenQASM 3 or OpenQASM 2 program, for hardware
 * and other simulators (`qkdc export`, `qkdc run --export qasm3`; docs/export.md).
 *
 * Owns: writing a circuit with its parameters bound, its features bound or (OpenQASM 3 only)
 * declared as inputs, and the state preparation of an amplitude encoding. Gate names and
 * definitions come from the gate table (qkd_gates.h: qasm, qasm_def, qasm2, qasm2_def); nothing
 * here switches on a gate kind.
 * Promises:
 *   - Qubit order: qkd's qubit j is q[n-1-j]. A basis index is then the same number in both
 *     (qkd's qubit 0 is the most significant bit, OpenQASM's q[0] the least), and so is the
 *     measured bit string c[n-1]…c[0]. The file says so in a comment.
 *   - The program's state before measurement equals qkd's (qkd_qsim_state) up to a global phase
 *     (stdgates.inc's u3 and qelib1.inc's rz, u1, u3 differ from qkd's matrices by one).
 *   - Angles: trainable ones are params[index] (scale and offset applied) written as numbers,
 *     constants as numbers, data-driven ones as numbers from features (after pre) or, when
 *     features is NULL in OpenQASM 3, as affine expressions of `input float[64] x_I;` (one
 *     declaration per feature read). Numbers are the shortest decimal that reads back as the
 *     same double, always with a decimal point (OpenQASM 2's real).
 *   - AMPLITUDE encoding becomes a state preparation of the encoded vector for the given
 *     features (Möttönen et al., quant-ph/0407010): uniformly controlled RY rotations, each
 *     decomposed with Gray-code CNOTs; real signed amplitudes need no RZ stage. On n qubits it
 *     has exactly 2^n − 1 RY and 2^n − 2 CNOT (RY(0) gates included); an all-zero feature vector
 *     is |0…0> (spec): all angles are 0. Gate encodings are their gates with bound angles.
 *   - Every qubit is measured into c (c[m] from q[m]).
 *   - Errors (nothing is written then): kind INPUT, no path — features missing where they are
 *     needed (OpenQASM 2 with data-driven angles, any amplitude encoding). */
#ifndef QKD_QASM_H
#define QKD_QASM_H

#include <stdio.h>

#include "qkd_err.h"
#include "qkd_ir.h"

typedef enum { QKD_QASM2 = 2, QKD_QASM3 = 3 } qkd_qasm_format;

typedef struct {
  qkd_qasm_format format;
  const double *params;   /* [n_params]; may be NULL when n_params == 0 */
  const double *features; /* [n_features] after pre, or NULL: OpenQASM 3 inputs */
  const char *comment;    /* lines for the header comment (provenance), or NULL */
} qkd_qasm_opts;

/* The most gates qkd_qasm_state_prep writes for n qubits (2^n − 1 RY + 2^n − 2 CNOT). */
#define QKD_QASM_PREP_MAX(n) ((2 << (n)) - 3)

/* The state preparation of the amplitude encoding of amp[0..n_amp) (n_amp <= 2^n; L2-normalised
 * and zero-padded, as qkd_ir.h says) on n qubits, as IR gates (RY with CONST angles, CNOT; qubit
 * numbers as in the IR) into out[QKD_QASM_PREP_MAX(n)]. Returns the gate count. */
int qkd_qasm_state_prep(int n, const double *amp, int n_amp, qkd_ir_gate *out);

/* 0, or -1 with err filled when o cannot be written for c (see Errors above). */
int qkd_qasm_check(const qkd_ir_circuit *c, const qkd_qasm_opts *o, qkd_error *err);
/* Writes the program to f after qkd_qasm_check; -1 with err on its failure or on out of memory
 * (write errors are the stream's). */
int qkd_qasm_write(FILE *f, const qkd_ir_circuit *c, const qkd_qasm_opts *o, qkd_error *err);
/* The same into path, atomically (qkd_file.h): on any error no file is left (err names path). */
int qkd_qasm_write_file(const char *path, const qkd_ir_circuit *c, const qkd_qasm_opts *o, qkd_error *err);

#endif
