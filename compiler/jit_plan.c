/* jit_plan.c — schedules a circuit's gates into the ops the code generator emits (see
 * jit_internal.h). Rules, in gate order:
 *   - a diagonal gate without a FEATURE angle joins the pending diagonal run D (JIT_OPT_DIAG_RUNS);
 *     D floats later past every gate on qubits disjoint from it (they commute) and is flushed as
 *     one DIAG op before the first gate that shares a qubit with it, and at the end;
 *   - CNOT/SWAP become PERM ops (JIT_OPT_PERM): the basis map absorbs them;
 *   - a single-qubit gate fuses into the last op touching its qubit when that op is an
 *     uncontrolled PAIR on the same qubit (JIT_OPT_FUSE); for backward plans only while the group
 *     has no angle gate yet, so the one PARAM/FEATURE gate of a group is always its last gate
 *     (its generator overlap is taken right after the group);
 *   - anything else is its own PAIR op.
 * Reordering only ever swaps commuting gates, so the plan computes the same unitary, and the
 * adjoint method is exact for any product decomposition of it. */
#include "jit_internal.h"

#include <stdlib.h>
#include <string.h>

static uint32_t lbit(int n, int q) { return (uint32_t)1 << (n - 1 - q); }

static uint32_t qmask(const qkd_ir_gate *g) {
  uint32_t m = (uint32_t)1 << g->q[0];
  if (qkd_gate_table[g->kind].qubits == 2) m |= (uint32_t)1 << g->q[1];
  return m;
}

static int is_angle_gate(const qkd_ir_gate *g) {
  return g->angle.kind == QKD_ANGLE_PARAM || g->angle.kind == QKD_ANGLE_FEATURE;
}

static int is_controlled(qkd_gate_kind k) {
  return k == QKD_GATE_CNOT || k == QKD_GATE_CZ || k == QKD_GATE_CRX || k == QKD_GATE_CRY ||
         k == QKD_GATE_CRZ;
}

typedef struct {
  jit_plan *plan;
  uint32_t *opmask; /* qubit mask of each op */
  int pool_used;
} builder;

static jit_op *new_op(builder *b, jit_op_kind kind, uint32_t mask) {
  jit_op *op = &b->plan->ops[b->plan->n_ops];
  b->opmask[b->plan->n_ops] = mask;
  b->plan->n_ops++;
  memset(op, 0, sizeof *op);
  op->kind = kind;
  op->gates = b->plan->pool + b->pool_used;
  op->grad_gate = -1;
  op->target = -1;
  op->table = -1;
  return op;
}

/* Gates of an op must be contiguous in the pool: every op is appended to at the pool's end,
 * except a fused PAIR op, which reserves JIT_MAX_FUSE slots up front. */
static void add_gate(builder *b, jit_op *op, int gi) {
  op->gates[op->n_gates++] = gi;
  (void)b;
}

static void pair_op(builder *b, const qkd_ir_circuit *ir, int gi, int for_bwd) {
  const qkd_ir_gate *g = &ir->gates[gi];
  int n = ir->n_qubits;
  jit_op *op = new_op(b, JIT_OP_PAIR, qmask(g));
  if (g->kind == QKD_GATE_SWAP) {
    op->fixed_mask = lbit(n, g->q[0]) | lbit(n, g->q[1]);
    op->fixed_val = lbit(n, g->q[1]);
    op->flip = op->fixed_mask;
  } else if (is_controlled(g->kind)) {
    op->target = g->q[1];
    op->fixed_mask = lbit(n, g->q[0]) | lbit(n, g->q[1]);
    op->fixed_val = lbit(n, g->q[0]);
    op->flip = lbit(n, g->q[1]);
  } else {
    op->target = g->q[0];
    op->fixed_mask = op->flip = lbit(n, g->q[0]);
    op->fixed_val = 0;
  }
  b->pool_used += JIT_MAX_FUSE;
  add_gate(b, op, gi);
  if (for_bwd && is_angle_gate(g)) op->grad_gate = gi;
}

int jit_plan_build(const qkd_ir_circuit *ir, unsigned opts, int for_bwd, jit_plan *plan) {
  memset(plan, 0, sizeof *plan);
  int ng = ir->n_gates, n = ir->n_qubits;
  plan->ops = calloc((size_t)ng + 1, sizeof(jit_op));
  plan->pool = calloc((size_t)(ng + 1) * JIT_MAX_FUSE, sizeof(int));
  builder b = {plan, calloc((size_t)ng + 1, sizeof(uint32_t)), 0};
  int *run = calloc((size_t)ng + 1, sizeof(int));
  if (!plan->ops || !plan->pool || !b.opmask || !run) {
    free(b.opmask);
    free(run);
    jit_plan_free(plan);
    return -1;
  }
  int nrun = 0;
  uint32_t runmask = 0;
#define FLUSH_RUN()                                                       \
  do {                                                                    \
    if (nrun) {                                                           \
      jit_op *d_ = new_op(&b, JIT_OP_DIAG, runmask);                      \
      for (int r_ = 0; r_ < nrun; r_++) d_->gates[d_->n_gates++] = run[r_]; \
      b.pool_used += nrun;                                                \
      d_->table = plan->n_tables++;                                       \
      nrun = 0;                                                           \
      runmask = 0;                                                        \
    }                                                                     \
  } while (0)

  for (int gi = 0; gi < ng; gi++) {
    const qkd_ir_gate *g = &ir->gates[gi];
    uint32_t m = qmask(g);
    if ((opts & JIT_OPT_DIAG_RUNS) && qkd_gate_table[g->kind].diagonal &&
        g->angle.kind != QKD_ANGLE_FEATURE) {
      run[nrun++] = gi;
      runmask |= m;
      continue;
    }
    if (runmask & m) FLUSH_RUN();
    if ((opts & JIT_OPT_PERM) && (g->kind == QKD_GATE_CNOT || g->kind == QKD_GATE_SWAP)) {
      jit_op *op = new_op(&b, JIT_OP_PERM, m);
      op->gates[op->n_gates++] = gi;
      b.pool_used += 1;
      continue;
    }
    if ((opts & JIT_OPT_FUSE) && qkd_gate_table[g->kind].qubits == 1) {
      int last = -1;
      for (int o = plan->n_ops - 1; o >= 0; o--)
        if (b.opmask[o] & m) { last = o; break; }
      if (last >= 0) {
        jit_op *L = &plan->ops[last];
        if (L->kind == JIT_OP_PAIR && L->target == g->q[0] && L->fixed_mask == L->flip &&
            L->n_gates < JIT_MAX_FUSE && (!for_bwd || L->grad_gate < 0)) {
          add_gate(&b, L, gi);
          if (for_bwd && is_angle_gate(g)) L->grad_gate = gi;
          continue;
        }
      }
    }
    pair_op(&b, ir, gi, for_bwd);
  }
  FLUSH_RUN();
#undef FLUSH_RUN
  free(run);
  free(b.opmask);

  /* Physical masks: walk the ops with the basis map P (columns) and its inverse (rows). */
  uint32_t col[QKD_MAX_QUBITS], row[QKD_MAX_QUBITS];
  for (int j = 0; j < n; j++) col[j] = row[j] = (uint32_t)1 << j;
  for (int o = 0; o < plan->n_ops; o++) {
    jit_op *op = &plan->ops[o];
    if (op->kind == JIT_OP_PAIR) {
      uint32_t pb = 0, pf = 0;
      for (int j = 0; j < n; j++) {
        if (op->fixed_val >> j & 1) pb ^= col[j];
        if (op->flip >> j & 1) pf ^= col[j];
      }
      op->pbase = pb;
      op->pflip = pf;
      op->nfree = 0;
      for (int j = 0; j < n; j++)
        if (!(op->fixed_mask >> j & 1)) op->D[op->nfree++] = col[j];
      op->D[op->nfree] = 0;
    } else if (op->kind == JIT_OP_DIAG) {
      memcpy(op->row, row, sizeof row);
    } else {
      const qkd_ir_gate *g = &ir->gates[op->gates[0]];
      int a = n - 1 - g->q[0], t = n - 1 - g->q[1];
      if (g->kind == QKD_GATE_CNOT) { /* P' = P∘C, P'^-1 = C∘P^-1 */
        col[a] ^= col[t];
        row[t] ^= row[a];
      } else {
        uint32_t x = col[a]; col[a] = col[t]; col[t] = x;
        x = row[a]; row[a] = row[t]; row[t] = x;
      }
    }
  }
  memcpy(plan->col, col, sizeof col);
  memcpy(plan->row, row, sizeof row);
  plan->identity_final = 1;
  for (int j = 0; j < n; j++)
    if (col[j] != (uint32_t)1 << j) plan->identity_final = 0;
  return 0;
}

void jit_plan_free(jit_plan *plan) {
  free(plan->ops);
  free(plan->pool);
  memset(plan, 0, sizeof *plan);
}

void jit_plan_dump(const qkd_ir_circuit *ir, const jit_plan *plan, FILE *out) {
  static const char *kn[] = {"pair", "diag", "perm"};
  for (int o = 0; o < plan->n_ops; o++) {
    const jit_op *op = &plan->ops[o];
    fprintf(out, "; op %d %s gates", o, kn[op->kind]);
    for (int i = 0; i < op->n_gates; i++)
      fprintf(out, " %s%d", qkd_gate_table[ir->gates[op->gates[i]].kind].name, op->gates[i]);
    if (op->kind == JIT_OP_PAIR)
      fprintf(out, " base=%#x flip=%#x free=%d grad=%d", op->pbase, op->pflip, op->nfree,
              op->grad_gate);
    fputc('\n', out);
  }
}

unsigned jit_env_opts(void) {
  const char *s = getenv("QKD_JIT_OPTS");
  if (!s || !*s) return JIT_OPT_ALL;
  return (unsigned)strtoul(s, NULL, 0) & JIT_OPT_ALL;
}

int jit_env_vbytes(void) {
  const char *s = getenv("QKD_JIT_VBYTES");
  if (!s || !*s) return 0;
  int v = atoi(s);
  return v == 16 || v == 32 || v == 64 ? v : 0;
}
