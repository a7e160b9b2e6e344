/* draw.h — a text diagram of a lowered circuit: one row per qubit, gates packed into columns
 * (a gate takes the first column where its qubits, and the wires between them, are free).
 * Labels: RY(p3) trainable parameter 3, RY(x0) feature 0 (affine forms shown), RZ(1.571)
 * constants; '*' control, 'X' CNOT target, '*'-'*' CZ, 'x'-'x' SWAP, '|' a wire crossed. */
#ifndef QKD_DRAW_H
#define QKD_DRAW_H
#include <stdio.h>
#include "qkd_ir.h"
void qkd_draw_circuit(const qkd_ir_circuit *c, FILE *out);
#endif
