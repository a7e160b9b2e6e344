/* jit_plan.c — schedules a circuit's gates into the ops the code generator emits (see
 * jit_internal.h). Rules, in gate order:
 *   - a diagonal gate without a FEATURE angle and with a jit_diag_form joins the pending diagonal
 *     run D (JIT_OPT_DIAG_RUNS); D floats later past every gate on qubits disjoint from it (they
 *     commute) and is flushed as one DIAG op before the first gate that shares a qubit with it,
 *     and at the end;
 *   - GF(2)-linear permutations (CNOT, SWAP) become PERM ops (JIT_OPT_PERM): the basis map
 *     absorbs them;
 *   - a single-qubit gate fuses into the last op touching its qubit when that op is an
 *     uncontrolled PAIR on the same qubit (JIT_OPT_FUSE); for backward plans only while the group
 *     has no angle gate yet, so the one PARAM/FEATURE gate of a group is its last gate (its
 *     generator overlap is taken right after the group) — or is followed only by Pauli slots
 *     (jit_pauli_slot) when its generator is a Pauli: a slot S maps the generator G to
 *     S G S† = ±G, so the overlap after the group is the one after G times a sign per lane;
 *   - anything else is its own PAIR op, one per pair of its matrix (two pairs with the same
 *     matrix and generator that differ in one fixed bit share one op).
 * Reordering only ever swaps commuting gates, so the plan computes the same unitary, and the
 * adjoint method is exact for any product decomposition of it. */
#include "jit_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t lbit(int n, int q) { return (uint32_t)1 << (n - 1 - q); }

static uint32_t qmask(const qkd_ir_gate *g) {
  uint32_t m = (uint32_t)1 << g->q[0];
  if (qkd_gate(g->kind)->qubits == 2) m |= (uint32_t)1 << g->q[1];
  return m;
}

static int is_angle_gate(const qkd_ir_gate *g) {
  return g->angle[0].kind == QKD_ANGLE_PARAM || g->angle[0].kind == QKD_ANGLE_FEATURE;
}

int jit_pauli_of(const double v[4][2]) {
  static const double P[3][4][2] = {{{0, 0}, {1, 0}, {1, 0}, {0, 0}}, {{0, 0}, {0, -1}, {0, 1}, {0, 0}},
                                    {{1, 0}, {0, 0}, {0, 0}, {-1, 0}}};
  for (int a = 0; a < 3; a++)
    if (!memcmp(v, P[a], sizeof P[a])) return a + 1;
  return 0;
}

int jit_pauli_axis(const qkd_ir_gate *g) {
  const qkd_gate_info *info = qkd_gate(g->kind);
  if (info->qubits != 1 || info->angles != 1) return 0;
  double v[4][2];
  for (int e = 0; e < 4; e++) v[e][0] = info->gen[e].re, v[e][1] = info->gen[e].im;
  return jit_pauli_of(v);
}

int jit_pauli_slot(const qkd_ir_gate *g) {
  const qkd_angle *a = &g->angle[0];
  if (a->kind != QKD_ANGLE_BIT || a->offset != 0.0 || fabs(a->scale) != M_PI) return 0;
  return jit_pauli_axis(g);
}

/* The logical mask of a basis pattern of gate g (pattern bit 0 = the last qubit of the gate). */
static uint32_t pattern_mask(const qkd_ir_gate *g, int n, int pattern) {
  int nq = qkd_gate(g->kind)->qubits;
  uint32_t m = 0;
  for (int i = 0; i < nq; i++)
    if (pattern >> i & 1) m |= lbit(n, g->q[nq - 1 - i]);
  return m;
}

int jit_diag_form_of(const qkd_ir_gate *g, int n, jit_diag_form *f) {
  const qkd_gate_info *info = qkd_gate(g->kind);
  if (info->structure != QKD_GS_DIAGONAL) return -1;
  const qkd_gate_entry *m = info->m;
  if (info->qubits == 1) {
    *f = (jit_diag_form){lbit(n, g->q[0]), 0, 0, 1};
  } else if (info->controlled) {
    *f = (jit_diag_form){lbit(n, g->q[1]), lbit(n, g->q[0]), 2, 3};
  } else if (qkd_gate_entry_same(&m[0], &m[15]) && qkd_gate_entry_same(&m[5], &m[10]) &&
             qkd_gate_entry_same(&info->gen[0], &info->gen[15]) && qkd_gate_entry_same(&info->gen[5], &info->gen[10])) {
    *f = (jit_diag_form){lbit(n, g->q[0]) | lbit(n, g->q[1]), 0, 0, 1}; /* a function of the parity */
  } else {
    return -1;
  }
  return 0;
}

int jit_expand(const qkd_ir_circuit *ir, qkd_ir_circuit *out) {
  *out = *ir;
  int ng = 0, multi = 0;
  for (int i = 0; i < ir->n_gates; i++) {
    const qkd_gate_info *info = qkd_gate(ir->gates[i].kind);
    ng += info->angles > 1 ? info->n_steps : 1;
    multi |= info->angles > 1;
  }
  if (!multi) return 0;
  qkd_ir_gate *gs = calloc((size_t)ng, sizeof *gs);
  if (!gs) return -1;
  int k = 0, enc = 0;
  for (int i = 0; i < ir->n_gates; i++) {
    const qkd_ir_gate *g = &ir->gates[i];
    const qkd_gate_info *info = qkd_gate(g->kind);
    if (info->angles <= 1) {
      gs[k++] = *g;
    } else {
      for (int s = 0; s < info->n_steps; s++) {
        qkd_ir_gate *t = &gs[k++];
        *t = *g;
        t->kind = info->steps[s].kind;
        memset(t->angle, 0, sizeof t->angle);
        t->angle[0] = g->angle[info->steps[s].slot];
      }
    }
    if (i + 1 == ir->n_encoding_gates) enc = k;
  }
  out->gates = gs;
  out->n_gates = ng;
  out->n_encoding_gates = enc;
  return 1;
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

/* Two pairs of a gate's matrix that one op can walk: same flip, first patterns one bit apart
 * (outside the flip), same matrix entries and generator entries. Returns that bit, or 0. */
static int pairs_merge(const qkd_gate_info *info, int f1, int s1, int f2, int s2) {
  int D = 1 << info->qubits, d = f1 ^ f2;
  if ((f1 ^ s1) != (f2 ^ s2) || (d & (d - 1)) || (d & (f1 ^ s1))) return 0;
  int a[4] = {f1 * D + f1, f1 * D + s1, s1 * D + f1, s1 * D + s1}, b[4] = {f2 * D + f2, f2 * D + s2, s2 * D + f2, s2 * D + s2};
  for (int i = 0; i < 4; i++)
    if (!qkd_gate_entry_same(&info->m[a[i]], &info->m[b[i]]) || !qkd_gate_entry_same(&info->gen[a[i]], &info->gen[b[i]]))
      return 0;
  return d;
}

/* The PAIR ops of gate gi: one per pair of its matrix (merged where pairs_merge allows). */
static void pair_ops(builder *b, const qkd_ir_circuit *ir, int gi, int for_bwd) {
  const qkd_ir_gate *g = &ir->gates[gi];
  const qkd_gate_info *info = qkd_gate(g->kind);
  int n = ir->n_qubits, fs[QKD_GATE_DIM], ss[QKD_GATE_DIM], np = qkd_gate_pairs(g->kind, fs, ss);
  if (np < 0) { /* the table check rules this out */
    fprintf(stderr, "qkd jit: internal error: gate '%s' has no pair structure\n", info->name);
    exit(2);
  }
  int done[QKD_GATE_DIM] = {0};
  uint32_t all = pattern_mask(g, n, (1 << info->qubits) - 1);
  for (int p = 0; p < np; p++) {
    if (done[p]) continue;
    uint32_t free_bit = 0;
    for (int p2 = p + 1; p2 < np && !free_bit; p2++) {
      int d = done[p2] ? 0 : pairs_merge(info, fs[p], ss[p], fs[p2], ss[p2]);
      if (d) free_bit = pattern_mask(g, n, d), done[p2] = 1;
    }
    jit_op *op = new_op(b, JIT_OP_PAIR, qmask(g));
    op->target = info->qubits == 1 ? g->q[0] : info->controlled ? g->q[1] : -1;
    op->fixed_mask = all & ~free_bit;
    op->fixed_val = pattern_mask(g, n, fs[p]) & ~free_bit;
    op->flip = pattern_mask(g, n, fs[p] ^ ss[p]);
    op->blk[0] = fs[p];
    op->blk[1] = ss[p];
    b->pool_used += JIT_MAX_FUSE;
    add_gate(b, op, gi);
    if (for_bwd && is_angle_gate(g)) op->grad_gate = gi;
  }
}

/* A PERM gate's update of the basis map: P' = P∘C, P'^-1 = C^-1∘P^-1 for the gate's linear map C
 * on its qubits' logical bits (map[i]: image of pattern bit i). */
static void perm_update(const qkd_ir_gate *g, int n, const int *map, uint32_t *col, uint32_t *row) {
  int nq = qkd_gate(g->kind)->qubits, L[QKD_GATE_MAX_QUBITS], inv[QKD_GATE_MAX_QUBITS] = {0};
  for (int i = 0; i < nq; i++) L[i] = n - 1 - g->q[nq - 1 - i]; /* logical bit of pattern bit i */
  /* C^-1 by search over the linear maps of nq bits: images inv[i] of pattern bit i */
  for (int cand = 0; cand < 1 << (nq * nq); cand++) {
    int ok = 1;
    for (int c = 0; c < 1 << nq && ok; c++) {
      int img = 0, back = 0;
      for (int i = 0; i < nq; i++) if (c >> i & 1) img ^= map[i];
      for (int i = 0; i < nq; i++) if (img >> i & 1) back ^= cand >> (nq * i) & ((1 << nq) - 1);
      ok = back == c;
    }
    if (ok) {
      for (int i = 0; i < nq; i++) inv[i] = cand >> (nq * i) & ((1 << nq) - 1);
      break;
    }
  }
  uint32_t oc[QKD_GATE_MAX_QUBITS], orow[QKD_GATE_MAX_QUBITS];
  for (int i = 0; i < nq; i++) oc[i] = col[L[i]], orow[i] = row[L[i]];
  for (int i = 0; i < nq; i++) {
    uint32_t c = 0, r = 0;
    for (int j = 0; j < nq; j++) {
      if (map[i] >> j & 1) c ^= oc[j];    /* col'[i] = P(C(e_i)) */
      if (inv[j] >> i & 1) r ^= orow[j];  /* bit i of C^-1(k) = parity over j of k_j·inv[j]_i */
    }
    col[L[i]] = c;
    row[L[i]] = r;
  }
}

int jit_plan_build(const qkd_ir_circuit *ir, unsigned opts, int for_bwd, jit_plan *plan) {
  memset(plan, 0, sizeof *plan);
  int ng = ir->n_gates, n = ir->n_qubits;
  size_t max_ops = (size_t)ng * (QKD_GATE_DIM / 2) + 1; /* a gate makes at most D/2 PAIR ops */
  plan->ops = calloc(max_ops, sizeof(jit_op));
  plan->pool = calloc(max_ops * JIT_MAX_FUSE, sizeof(int));
  builder b = {plan, calloc(max_ops, sizeof(uint32_t)), 0};
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
    jit_diag_form df;
    if ((opts & JIT_OPT_DIAG_RUNS) && g->angle[0].kind != QKD_ANGLE_FEATURE && g->angle[0].kind != QKD_ANGLE_BIT &&
        jit_diag_form_of(g, n, &df) == 0) {
      run[nrun++] = gi;
      runmask |= m;
      continue;
    }
    if (runmask & m) FLUSH_RUN();
    int map[QKD_GATE_MAX_QUBITS];
    if ((opts & JIT_OPT_PERM) && qkd_gate_linear_perm(g->kind, map) == 0) {
      jit_op *op = new_op(&b, JIT_OP_PERM, m);
      op->gates[op->n_gates++] = gi;
      b.pool_used += 1;
      continue;
    }
    if ((opts & JIT_OPT_FUSE) && qkd_gate(g->kind)->qubits == 1) {
      int last = -1;
      for (int o = plan->n_ops - 1; o >= 0; o--)
        if (b.opmask[o] & m) { last = o; break; }
      if (last >= 0) {
        jit_op *L = &plan->ops[last];
        if (L->kind == JIT_OP_PAIR && L->target == g->q[0] && L->fixed_mask == L->flip &&
            L->n_gates < JIT_MAX_FUSE &&
            (!for_bwd || L->grad_gate < 0 || (jit_pauli_slot(g) && jit_pauli_axis(&ir->gates[L->grad_gate])))) {
          add_gate(&b, L, gi);
          if (for_bwd && is_angle_gate(g)) L->grad_gate = gi;
          continue;
        }
      }
    }
    pair_ops(&b, ir, gi, for_bwd);
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
      memcpy(op->row, row, sizeof row);
    } else if (op->kind == JIT_OP_DIAG) {
      memcpy(op->row, row, sizeof row);
    } else {
      const qkd_ir_gate *g = &ir->gates[op->gates[0]];
      int map[QKD_GATE_MAX_QUBITS];
      qkd_gate_linear_perm(g->kind, map);
      perm_update(g, n, map, col, row);
    }
  }
  memcpy(plan->col, col, sizeof col);
  memcpy(plan->row, row, sizeof row);
  plan->identity_final = 1;
  for (int j = 0; j < n; j++)
    if (col[j] != (uint32_t)1 << j) plan->identity_final = 0;
  return 0;
}

/* ---- cache blocking ----------------------------------------------------------------------- */

/* GF(2) vectors: basis b[0..nb) in echelon form (distinct leading bits). */
static uint32_t gf2_reduce(const uint32_t *b, int nb, uint32_t v) {
  for (int i = 0; i < nb; i++) {
    uint32_t lead = (uint32_t)1 << (31 - __builtin_clz(b[i]));
    if (v & lead) v ^= b[i];
  }
  return v;
}
/* Adds v (independent of b) keeping the echelon form: every vector's leading bit appears in no
 * other (a reduced basis), so one pass of gf2_reduce suffices. */
static void gf2_insert(uint32_t *b, int *nb, uint32_t v) {
  v = gf2_reduce(b, *nb, v);
  uint32_t lead = (uint32_t)1 << (31 - __builtin_clz(v));
  for (int i = 0; i < *nb; i++)
    if (b[i] & lead) b[i] ^= v;
  b[(*nb)++] = v;
}

/* A PAIR op that covers the whole state: one fixed bit, and its flip changes that bit. */
static int blockable(const jit_op *op, int n, int *jf) {
  if (op->kind != JIT_OP_PAIR || op->nfree != n - 1 || __builtin_popcount(op->fixed_mask) != 1) return 0;
  *jf = __builtin_ctz(op->fixed_mask);
  return __builtin_parity(op->pflip & op->row[*jf]);
}

int jit_block_plan(const jit_plan *pl, int n, int dim, jit_blocking *out) {
  memset(out, 0, sizeof *out);
  out->g = calloc((size_t)pl->n_ops + 1, sizeof *out->g);
  out->ob = calloc((size_t)pl->n_ops + 1, sizeof *out->ob);
  if (!out->g || !out->ob) { jit_blocking_free(out); return -1; }
  if (dim <= 0 || dim >= n) {
    out->g[0] = (jit_group){.first = 0, .count = pl->n_ops, .dim = 0};
    out->n_groups = 1;
    return 0;
  }
  for (int o = 0; o < pl->n_ops;) {
    jit_group *G = &out->g[out->n_groups++];
    G->first = o;
    int jf;
    if (pl->ops[o].kind == JIT_OP_PAIR && !blockable(&pl->ops[o], n, &jf)) {
      G->count = 1, G->dim = 0, o++;
      continue;
    }
    uint32_t w[QKD_MAX_QUBITS];
    int nw = 0, npair = 0, k = o;
    for (; k < pl->n_ops; k++) {
      const jit_op *op = &pl->ops[k];
      if (op->kind != JIT_OP_PAIR) continue;
      if (!blockable(op, n, &jf)) break;
      if (gf2_reduce(w, nw, op->pflip)) {
        if (nw == dim) break;
        gf2_insert(w, &nw, op->pflip);
      }
      npair++;
    }
    G->count = k - o;
    o = k;
    if (npair == 0) { G->dim = 0; continue; } /* DIAG/PERM only: one pass each, as unblocked */
    G->dim = dim;
    for (int j = 0; j < n && nw < dim; j++) /* W completed with the lowest bits (locality) */
      if (gf2_reduce(w, nw, (uint32_t)1 << j)) gf2_insert(w, &nw, (uint32_t)1 << j);
    memcpy(G->W, w, (size_t)dim * sizeof(uint32_t));
    G->W[dim] = 0;
    uint32_t all[QKD_MAX_QUBITS];
    int na = nw, nh = 0;
    memcpy(all, w, (size_t)nw * sizeof(uint32_t));
    for (int j = 0; j < n; j++)
      if (gf2_reduce(all, na, (uint32_t)1 << j)) {
        gf2_insert(all, &na, (uint32_t)1 << j);
        G->H[nh++] = (uint32_t)1 << j;
      }
    G->H[nh] = 0; /* nh == n - dim */
    for (int q = G->first; q < G->first + G->count; q++) {
      const jit_op *op = &pl->ops[q];
      if (op->kind != JIT_OP_PAIR) continue;
      blockable(op, n, &jf);
      jit_opblk *b = &out->ob[q];
      b->r = op->row[jf];
      b->v = op->fixed_val >> jf & 1;
      /* W0 = {x in W : parity(x & r) = 0}: each basis vector, plus pflip where it has r-parity 1 */
      uint32_t d[QKD_MAX_QUBITS];
      int nd = 0;
      for (int i = 0; i < dim; i++) {
        uint32_t x = G->W[i] ^ (__builtin_parity(G->W[i] & b->r) ? op->pflip : 0);
        if (gf2_reduce(d, nd, x)) gf2_insert(d, &nd, x);
      }
      memcpy(b->D, d, (size_t)nd * sizeof(uint32_t)); /* nd == dim - 1 */
      b->D[nd] = 0;
    }
  }
  return 0;
}

void jit_blocking_free(jit_blocking *b) {
  free(b->g);
  free(b->ob);
  memset(b, 0, sizeof *b);
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
      fprintf(out, " %s%d", qkd_gate(ir->gates[op->gates[i]].kind)->name, op->gates[i]);
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

int jit_env_block(void) {
  const char *s = getenv("QKD_JIT_BLOCK");
  if (!s || !*s) return 0;
  int v = atoi(s);
  return v < 0 ? -1 : v > QKD_MAX_QUBITS ? QKD_MAX_QUBITS : v;
}

int jit_env_vbytes(void) {
  const char *s = getenv("QKD_JIT_VBYTES");
  if (!s || !*s) return 0;
  int v = atoi(s);
  return v == 16 || v == 32 || v == 64 ? v : 0;
}
