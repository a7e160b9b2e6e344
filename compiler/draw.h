/* draw.h — a text diagram of a lowered circuit: one row per qubit, gates packed into columns
 * (a gate takes the first column where its qubits, and the wires between them, are free).
 * Labels: RY(p3) trainable parameter 3, RY(x0) feature 0 (affine forms shown), RZ(1.571)
 * constants; '*' control, 'X' CNOT target, '*'-'*' CZ, 'x'-'x' SWAP, '|' a wire crossed.
 * Noise: a channel's mark ('~' and its name's initials: ~D depolarizing, ~AD amplitude_damping)
 * follows the gate it acts after on its qubit (before the first column when it acts on the
 * encoded state), ~R before the measurement marks a read-out confusion; a legend below lists
 * each channel and parameter with how many times it acts, and each qubit's read-out. */
#ifndef QKD_DRAW_H
#define QKD_DRAW_H
#include <stdio.h>
#include "qkd_ir.h"
void qkd_draw_circuit(const qkd_ir_circuit *c, FILE *out);
#endif
