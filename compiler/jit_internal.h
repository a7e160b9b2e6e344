/* jit_internal.h — private to compiler/jit*.c: the kernel plan (what the generated code does, in
 * which order) and the code generator's entry point.
 *
 * Owns: jit_plan (jit_plan.c) — the circuit's gates scheduled into "ops", each one state pass:
 *   PAIR  a 2×2 (possibly fused) matrix on the amplitude pairs of one logical target qubit,
 *         restricted to a subspace (control = 1 for controlled gates; for SWAP the pair
 *         |..0_a..1_b..> ↔ |..1_a..0_b..>);
 *   DIAG  a run of diagonal gates with fixed or PARAM angles, applied as one multiply by a phase
 *         table (built once per kernel call);
 *   PERM  CNOT/SWAP folded into the amplitude addressing: no pass, the plan's basis map changes.
 * The basis map: logical basis index k lives at physical position P(k), P linear over GF(2) (a
 * product of CNOT/SWAP maps). P's columns are col[j] = P(e_j); its inverse's rows are row[j]
 * (logical bit j of the amplitude at physical p is parity(p & row[j])). Every op carries the
 * physical masks valid at its position, so generated loops never compute P at run time.
 * Qubit q is logical bit (n-1-q) (qubit 0 = most significant bit, qkd_ir.h). */
#ifndef QKD_JIT_INTERNAL_H
#define QKD_JIT_INTERNAL_H

#include "qkd_ir.h"

#include <stdint.h>
#include <stdio.h>

/* Specialisation switches (all on by default; QKD_JIT_OPTS can turn them off for measurements). */
enum {
  JIT_OPT_DIAG_RUNS = 1, /* one pass per run of diagonal gates (commuted past disjoint gates) */
  JIT_OPT_PERM = 2,      /* CNOT/SWAP as index permutations (no pass) */
  JIT_OPT_FUSE = 4,      /* fuse consecutive single-qubit gates on one qubit */
  JIT_OPT_ALL = 7
};

typedef enum { JIT_OP_PAIR, JIT_OP_DIAG, JIT_OP_PERM } jit_op_kind;

#define JIT_MAX_FUSE 32 /* gates in one fused PAIR op */

typedef struct {
  jit_op_kind kind;
  int n_gates;   /* source gates, in application order */
  int *gates;    /* indices into ir->gates (points into the plan's index pool) */
  /* PAIR: the op enumerates logical k with bits `fixed_mask` equal to `fixed_val` (target bit 0,
   * control bit 1, ...) and pairs k with k ^ flip. `grad_gate` (bwd plans only) is the one gate
   * of the group whose angle is PARAM/FEATURE (always the last one), or -1. */
  int target;            /* logical target qubit (for the generator), or -1 (SWAP) */
  uint32_t fixed_mask, fixed_val, flip;
  int grad_gate;
  /* physical form at this op's position: pairs (p, p ^ pflip) for p = pbase ^ (Gray-code walk
   * over D[0..nfree)); D has nfree + 1 entries (the last is 0). */
  uint32_t pbase, pflip;
  int nfree;
  uint32_t D[QKD_MAX_QUBITS + 1];
  /* DIAG: the physical row masks at this position (logical bit j of p = parity(p & row[j])). */
  uint32_t row[QKD_MAX_QUBITS];
  int table; /* DIAG: index of its phase table */
} jit_op;

typedef struct {
  int n_ops;
  jit_op *ops;
  int n_tables;          /* DIAG ops */
  int identity_final;    /* the final basis map is the identity */
  uint32_t col[QKD_MAX_QUBITS], row[QKD_MAX_QUBITS]; /* the final basis map P and P^-1 */
  int *pool;             /* gate index storage */
} jit_plan;

/* Schedules ir into ops. for_bwd: a fused group holds at most one angle gate (PARAM/FEATURE),
 * last. Returns 0, or -1 on allocation failure. */
int jit_plan_build(const qkd_ir_circuit *ir, unsigned opts, int for_bwd, jit_plan *plan);
void jit_plan_free(jit_plan *plan);
void jit_plan_dump(const qkd_ir_circuit *ir, const jit_plan *plan, FILE *out);

/* Options from QKD_JIT_OPTS (a number, default JIT_OPT_ALL) and lane bytes from QKD_JIT_VBYTES
 * (16, 32 or 64; 0 = from the target's features). */
unsigned jit_env_opts(void);
int jit_env_vbytes(void);

#endif
