/* jit_internal.h — private to compiler/jit*.c: the kernel plan (what the generated code does, in
 * which order) and the code generator's entry point.
 *
 * Owns: jit_plan (jit_plan.c) — the circuit's gates scheduled into "ops", each one state pass:
 *   PAIR  a 2×2 (possibly fused) matrix on amplitude pairs (p, p ^ flip) restricted to a
 *         subspace: one of the pairs of a gate's matrix (qkd_gate_pairs: a one-qubit gate's
 *         (0, 1); the control = 1 block of a controlled gate; |01> ↔ |10> for SWAP; two
 *         pairs, or one when they carry the same matrix, for RXX/RYY);
 *   DIAG  a run of diagonal gates with fixed or PARAM angles whose phases have a jit_diag_form,
 *         applied as one multiply by a phase table (built once per kernel call);
 *   PERM  a gate whose matrix is a GF(2)-linear permutation (CNOT, SWAP) folded into the
 *         amplitude addressing: no pass, the plan's basis map changes.
 * Everything about a gate comes from the gate table (qkd_gates.h); the plan and the emitter work
 * on gates of at most one angle: a gate of several angles is first replaced by its
 * decomposition steps (jit_expand; equal up to a global phase, which no output sees).
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
   * of the group whose angle is PARAM/FEATURE (the last one, or followed only by Pauli slots
   * when its generator is a Pauli: jit_pauli_slot), or -1. */
  int target;            /* a one-qubit gate's qubit (fusion), a controlled gate's target, else -1 */
  uint32_t fixed_mask, fixed_val, flip;
  int blk[2];            /* the basis patterns of (p, p ^ flip) in the gates' matrices */
  int grad_gate;
  /* physical form at this op's position: pairs (p, p ^ pflip) for p = pbase ^ (Gray-code walk
   * over D[0..nfree)); D has nfree + 1 entries (the last is 0). */
  uint32_t pbase, pflip;
  int nfree;
  uint32_t D[QKD_MAX_QUBITS + 1];
  /* the physical row masks at this position (logical bit j of p = parity(p & row[j])) */
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

/* A diagonal gate's phase on logical basis index k as a DIAG run needs it:
 * (cm == 0 || parity(k & cm)) ? (parity(k & tm) ? D[p1] : D[p0]) : 1, D the gate's diagonal
 * (patterns p0, p1; tm, cm logical masks). The generator's diagonal has the same form (0 where
 * the control is 0). Returns 0, or -1 if the gate's diagonal has no such form. */
typedef struct {
  uint32_t tm, cm;
  int p0, p1;
} jit_diag_form;
int jit_diag_form_of(const qkd_ir_gate *g, int n_qubits, jit_diag_form *f);

/* 1, 2, 3 when g is a one-qubit, one-angle gate whose generator is X, Y, Z (RX, RY, RZ); else 0.
 * jit_pauli_slot: the same for a gate that is a Pauli or the identity per sample: a BIT angle
 * of scale ±π and offset 0 (exp(∓iπG/2) ∝ G, a trajectory's Pauli slot, qkd_traj.h); else 0. */
int jit_pauli_axis(const qkd_ir_gate *g);
/* 1, 2, 3 when the 2×2 matrix v (re, im of v00 v01 v10 v11) is X, Y, Z exactly; else 0. */
int jit_pauli_of(const double v[4][2]);
int jit_pauli_slot(const qkd_ir_gate *g);

/* *out = ir with every gate of several angles replaced by its decomposition steps (out->gates
 * malloc'd, free with free()); returns 1 then, 0 when ir has no such gate (*out = *ir, nothing
 * allocated), -1 if out of memory. */
int jit_expand(const qkd_ir_circuit *ir, qkd_ir_circuit *out);

/* Schedules ir (gates of at most one angle) into ops. for_bwd: a fused group holds at most one angle gate (PARAM/FEATURE),
 * last. Returns 0, or -1 on allocation failure. */
int jit_plan_build(const qkd_ir_circuit *ir, unsigned opts, int for_bwd, jit_plan *plan);
void jit_plan_free(jit_plan *plan);
void jit_plan_dump(const qkd_ir_circuit *ir, const jit_plan *plan, FILE *out);

/* Cache blocking (jit_block_plan): the ops cut into groups. A blocked group (dim ≥ 1) is a run
 * of PAIR ops that each cover the whole state (one fixed bit: a one-qubit gate, or two pairs
 * sharing a matrix), with DIAG and PERM ops among them, whose flips span at most dim dimensions:
 * the state splits into the 2^(n-dim) cosets c + W of a dim-dimensional subspace W holding every
 * flip, each op maps every coset to itself, so the group is applied coset by coset while one
 * coset (2^dim amplitudes) stays in cache. W and H are Gray-code step tables (W: dim basis
 * vectors of W; H: n - dim vectors completing a basis, walking the coset representatives c),
 * each ending in 0. For a PAIR op k of a blocked group, ob[k]: its pairs in coset c are
 * (p, p ^ pflip), p = c' ^ (Gray walk over D[0..dim-1)), c' = c or c ^ pflip so that
 * parity(c' & r) == v (r: the physical row of the op's fixed bit, v: its fixed value).
 * A group with dim 0 runs its ops over the whole state, as without blocking. */
typedef struct {
  int first, count, dim;
  uint32_t W[QKD_MAX_QUBITS + 1], H[QKD_MAX_QUBITS + 1];
} jit_group;
typedef struct {
  uint32_t r, v;
  uint32_t D[QKD_MAX_QUBITS + 1];
} jit_opblk;
typedef struct {
  int n_groups;
  jit_group *g;   /* n_groups */
  jit_opblk *ob;  /* one per op of the plan */
} jit_blocking;
/* Groups of plan pl (n qubits) for blocks of 2^dim amplitudes; dim ≤ 0 or dim ≥ n: one
 * unblocked group. Returns 0, or -1 on allocation failure. */
int jit_block_plan(const jit_plan *pl, int n, int dim, jit_blocking *out);
void jit_blocking_free(jit_blocking *b);

/* Options from QKD_JIT_OPTS (a number, default JIT_OPT_ALL) and lane bytes from QKD_JIT_VBYTES
 * (16, 32 or 64; 0 = from the target's features). */
unsigned jit_env_opts(void);
int jit_env_vbytes(void);
/* Blocking from QKD_JIT_BLOCK: 0 (default) by size, -1 never, k ≥ 1 blocks of 2^k amplitudes. */
int jit_env_block(void);

#endif
