/* dmk.c — the fast exact density-matrix kernel (qkd_dmk.h). The reference is dmsim.c; this file
 * computes the same maps in a different arrangement:
 *
 * Plan. Gates and channels become ops. One-qubit gates and channels on one qubit fuse into one
 * op (ops on other qubits commute with them) until a two-qubit gate touches that qubit; the op is
 * the superoperator S = S_m ⋯ S_1 of its members on the 2 × 2 blocks of ρ, entries e = 2s + t
 * (row pattern s, column pattern t): a gate's S[(s,t),(a,b)] = U[s][a] conj(U[t][b]), a
 * channel's Σ_k K_k[s][a] conj(K_k[t][b]), applied only at its structural non-zeros. Two-qubit
 * gates stay gates: a permutation (CNOT, SWAP) moves entries; any other is B → U B U† on 4 × 4
 * blocks.
 *
 * Lanes. QKD_DMK_LANES samples run together; every complex number is a row of lanes (lc), so
 * every loop is the same vector loop whatever the qubit. An op whose members read no FEATURE
 * angle has one operator per kernel call (all lanes alike); the others one per lane, per group.
 *
 * Gradient. With the pairing <<A|B>> = Σ conj(A_ij) B_ij, f = Σ_o d_o O_o = <<Λ|ρ_N>>,
 * Λ = diag(w) (qkd_dm_observable). Backwards, Λ_in = S† Λ_out, and for an op with angles
 *   df/dθ = Re Σ_{o,i} ∂S[o][i] G[o][i],   G[o][i] = Σ_blocks conj(Λ_out[o]) ρ_in[i],
 * with ∂S = (S_m ⋯ S_{g+1}) ∂S_g (S_{g−1} ⋯ S_1) for member g and ∂S_g = ∂U ⊗ U* + U ⊗ ∂U*.
 * G is summed over lanes and groups first when the op is the same on every lane. A two-qubit
 * gate: df/dθ = 2 Re Σ_{s,a} ∂U[s][a] H[s][a], H[s][a] = Σ_blocks Σ_t conj(Λ_out[s][t]) M[a][t],
 * M = ρ_in U†. ρ_in of every op with angles is kept from a forward pass (when that exceeds the
 * memory budget, ops are cut into segments: ρ kept at segment starts, each segment re-run before
 * its backward walk). The encoded state's cotangent gives the amplitude gradient as in dmsim.c.
 *
 * Everything about a gate or channel comes from the tables (qkd_gates.h, qkd_channels.h) and
 * read-out from dmsim.c; compiled without FP contraction, so every ISA clone gives the same bits. */
#include "qkd_dmk.h"

#include "qkd_dmsim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define L QKD_DMK_LANES
#define MAX_MEMBERS 64

#ifdef QKD_HAVE_TARGET_CLONES
#define HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define HOT
#endif

typedef double vd __attribute__((vector_size(L * sizeof(double)))); /* GCC/Clang vectors */
typedef struct {
  vd r, i;
} lc; /* one complex number per lane: every op below is one vector op whatever the ISA */

typedef struct {
  double r, i;
} sc;

static sc sc_mul(sc a, sc b) { return (sc){a.r * b.r - a.i * b.i, a.r * b.i + a.i * b.r}; }
static sc sc_conj(sc a) { return (sc){a.r, -a.i}; }

/* ---- plan --------------------------------------------------------------------------------- */

typedef enum { OP_ONE, OP_PERM, OP_TWO } op_kind;

typedef struct {
  int chan; /* 0: gates[index], 1: channels[index] */
  int index;
} member;

typedef struct {
  op_kind kind;
  size_t bit[2]; /* strides of q[0] (and q[1]) in a basis index */
  int first, count; /* members, in application order */
  int lanes;        /* some member reads a FEATURE angle */
  int params;       /* some member reads a PARAM angle */
  int nnz;          /* ONE: structural non-zeros (o[k], in[k]) of S, row-major */
  unsigned char o[16], in[16], tr[16]; /* tr[k]: the index of pair (o_k, in_k) transposed */
  unsigned char ford[16], frow[5];      /* the pairs by o (row u: ford[frow[u] .. frow[u+1])) */
  unsigned char dord[16], drow[5];      /* by in, for the dual */
  int perm[4];      /* PERM: pattern s moves to pattern perm[s] */
  int slot;         /* ONE, TWO: operator storage index */
  int save;         /* with angles: its ρ_in slot within its segment; else -1 */
} op;

typedef struct {
  const qkd_ir_circuit *ir;
  int n_ops, n_members, n_slots, n_grad;
  op *ops;
  member *members;
  int n_segs, max_saves;
  int *seg_start; /* n_segs + 1 */
} plan;

static size_t bit_of(int n, int q) { return (size_t)1 << (n - 1 - q); }

static int gate_has(const qkd_ir_gate *g, qkd_angle_kind kind) {
  for (int s = 0; s < qkd_gate(g->kind)->angles; s++)
    if (g->angle[s].kind == kind) return 1;
  return 0;
}

/* The structural non-zero pattern of a gate's D × D matrix. */
static void gate_pattern(int kind, int *nz) {
  const qkd_gate_info *gi = qkd_gate(kind);
  int D = 1 << gi->qubits;
  for (int e = 0; e < D * D; e++) nz[e] = !qkd_gate_entry_zero(&gi->m[e]);
}

static void member_super(const qkd_ir_circuit *ir, member m, const double *a, int d, sc S[16]);

/* The non-zero pattern of a member's 4 × 4 superoperator. */
static void member_pattern(const qkd_ir_circuit *ir, member m, int nz[16]) {
  if (!m.chan) {
    int u[4];
    gate_pattern(ir->gates[m.index].kind, u);
    for (int s = 0; s < 2; s++)
      for (int t = 0; t < 2; t++)
        for (int a = 0; a < 2; a++)
          for (int b = 0; b < 2; b++) nz[(2 * s + t) * 4 + 2 * a + b] = u[2 * s + a] && u[2 * t + b];
    return;
  }
  sc S[16]; /* a channel's zeros are numeric (p = 0 or 1 zeroes Kraus operators) */
  member_super(ir, m, NULL, -1, S);
  for (int e = 0; e < 16; e++) nz[e] = S[e].r != 0.0 || S[e].i != 0.0;
}

/* A two-qubit gate's permutation (perm[s] = the pattern s goes to), or -1 when it is not one. */
static int gate_perm(int kind, int perm[4]) {
  const qkd_gate_info *gi = qkd_gate(kind);
  if (gi->qubits != 2 || gi->angles != 0) return -1;
  double m[16][2], a[QKD_GATE_MAX_ANGLES] = {0};
  qkd_gate_matrix(kind, a, -1, m);
  for (int c = 0; c < 4; c++) {
    perm[c] = -1;
    for (int r = 0; r < 4; r++) {
      double re = m[r * 4 + c][0], im = m[r * 4 + c][1];
      if (re == 1.0 && im == 0.0 && perm[c] < 0) perm[c] = r;
      else if (re != 0.0 || im != 0.0) return -1;
    }
    if (perm[c] < 0) return -1;
  }
  return 0;
}

typedef struct {
  plan *p;
  member pending[QKD_MAX_QUBITS][MAX_MEMBERS]; /* each qubit's one-qubit members not yet in an op */
  int n_pending[QKD_MAX_QUBITS];
} builder;

static op *new_op(plan *p, op_kind kind) {
  op *o = &p->ops[p->n_ops++];
  memset(o, 0, sizeof *o);
  o->kind = kind;
  o->save = -1;
  o->first = p->n_members;
  return o;
}

static void add_member(plan *p, op *o, member m) {
  p->members[p->n_members++] = m;
  o->count++;
  if (!m.chan) {
    const qkd_ir_gate *g = &p->ir->gates[m.index];
    o->lanes |= gate_has(g, QKD_ANGLE_FEATURE) || gate_has(g, QKD_ANGLE_BIT);
    o->params |= gate_has(g, QKD_ANGLE_PARAM);
  }
}

/* Emits qubit q's pending one-qubit members as one op. */
static void flush(builder *b, int q) {
  if (b->n_pending[q] == 0) return;
  plan *p = b->p;
  op *o = new_op(p, OP_ONE);
  o->bit[0] = bit_of(p->ir->n_qubits, q);
  int nz[16];
  for (int e = 0; e < 16; e++) nz[e] = e % 5 == 0; /* identity */
  for (int k = 0; k < b->n_pending[q]; k++) {
    member m = b->pending[q][k];
    add_member(p, o, m);
    int mz[16], out[16];
    member_pattern(p->ir, m, mz);
    for (int r = 0; r < 4; r++)
      for (int c = 0; c < 4; c++) {
        out[r * 4 + c] = 0;
        for (int k2 = 0; k2 < 4; k2++) out[r * 4 + c] |= mz[r * 4 + k2] && nz[k2 * 4 + c];
      }
    memcpy(nz, out, sizeof nz);
  }
  for (int e = 0; e < 16; e++)
    if (nz[e]) o->o[o->nnz] = (unsigned char)(e / 4), o->in[o->nnz] = (unsigned char)(e % 4), o->nnz++;
  for (int u = 0, j = 0, jd = 0; u < 4; u++) { /* rows of the pattern by o and by in */
    o->frow[u] = (unsigned char)j, o->drow[u] = (unsigned char)jd;
    for (int k = 0; k < o->nnz; k++) {
      if (o->o[k] == u) o->ford[j++] = (unsigned char)k;
      if (o->in[k] == u) o->dord[jd++] = (unsigned char)k;
    }
    o->frow[u + 1] = (unsigned char)j, o->drow[u + 1] = (unsigned char)jd;
  }
  for (int k = 0; k < o->nnz; k++) /* entry (s, t) of a block is 2s + t; its transpose 2t + s */
    for (int j = (o->tr[k] = (unsigned char)k, 0); j < o->nnz; j++) {
      int ot = (o->o[k] & 1) << 1 | o->o[k] >> 1, it = (o->in[k] & 1) << 1 | o->in[k] >> 1;
      if (o->o[j] == ot && o->in[j] == it) o->tr[k] = (unsigned char)j;
    }
  o->slot = p->n_slots++;
  b->n_pending[q] = 0;
}

static void pend(builder *b, int q, member m) {
  if (b->n_pending[q] == MAX_MEMBERS) flush(b, q);
  b->pending[q][b->n_pending[q]++] = m;
}

static void plan_free(plan *p) {
  free(p->ops), free(p->members), free(p->seg_start);
  free(p);
}

/* Segments: ops with angles cut into runs of at most `per` (per = n_grad: one segment). */
static int plan_segments(plan *p, int per) {
  p->seg_start = malloc(((size_t)p->n_ops + 2) * sizeof(int));
  if (!p->seg_start) return -1;
  p->n_segs = 0;
  p->max_saves = 0;
  int in_seg = 0;
  p->seg_start[p->n_segs++] = 0;
  for (int k = 0; k < p->n_ops; k++) {
    op *o = &p->ops[k];
    int grad = o->lanes || o->params;
    if (grad && in_seg == per) p->seg_start[p->n_segs++] = k, in_seg = 0;
    o->save = grad ? in_seg++ : -1;
    if (in_seg > p->max_saves) p->max_saves = in_seg;
  }
  p->seg_start[p->n_segs] = p->n_ops;
  return 0;
}

static size_t rho_bytes(int n) { return ((size_t)1 << (2 * n)) * sizeof(lc); }

/* The memory budget of one kernel call in bytes: QKD_DMK_MEM MiB (default 1024). */
static size_t budget(void) {
  const char *s = getenv("QKD_DMK_MEM");
  long mb = s && *s ? strtol(s, NULL, 10) : 1024;
  return (size_t)(mb > 0 ? mb : 1024) << 20;
}

static plan *plan_build(const qkd_ir_circuit *ir) {
  plan *p = calloc(1, sizeof *p);
  builder *b = calloc(1, sizeof *b);
  size_t cap = (size_t)ir->n_gates + (size_t)ir->n_channels + 1;
  if (!p || !b) goto fail;
  p->ir = ir;
  p->ops = malloc(cap * sizeof(op)); /* an op holds at least one member */
  p->members = malloc(cap * sizeof(member));
  if (!p->ops || !p->members) goto fail;
  b->p = p;
  int n = ir->n_qubits, ch = 0;
  for (int k = 0; k <= ir->n_gates; k++) {
    for (; ch < ir->n_channels && ir->channels[ch].after == k; ch++) pend(b, ir->channels[ch].qubit, (member){1, ch});
    if (k == ir->n_gates) break;
    const qkd_ir_gate *g = &ir->gates[k];
    if (qkd_gate(g->kind)->qubits == 1) {
      pend(b, g->q[0], (member){0, k});
      continue;
    }
    flush(b, g->q[0]);
    flush(b, g->q[1]);
    int perm[4];
    op *o = new_op(p, gate_perm(g->kind, perm) == 0 ? OP_PERM : OP_TWO);
    o->bit[0] = bit_of(n, g->q[0]), o->bit[1] = bit_of(n, g->q[1]);
    memcpy(o->perm, perm, sizeof perm);
    add_member(p, o, (member){0, k});
    if (o->kind == OP_TWO) o->slot = p->n_slots++;
  }
  for (int q = 0; q < n; q++) flush(b, q);
  for (int k = 0; k < p->n_ops; k++) p->n_grad += p->ops[k].lanes || p->ops[k].params;
  size_t rb = rho_bytes(n);
  int per = p->n_grad;
  const char *force = getenv("QKD_DMK_SEGMENT"); /* tests: at most this many ops with angles a segment */
  if ((size_t)(p->n_grad + 2) * rb > budget()) per = (int)ceil(sqrt((double)p->n_grad));
  if (force && atoi(force) > 0) per = atoi(force);
  if (plan_segments(p, per ? per : 1) != 0) goto fail;
  free(b);
  return p;
fail:
  free(b);
  if (p) plan_free(p);
  return NULL;
}

/* ---- operators (one lane at a time, in scalar complex) ----------------------------------- */

/* S[(s,t),(x,y)] += A[s][x] conj(B[t][y]) — one term of a superoperator, A ⊗ B* on the 2 × 2
 * blocks (entries 2s + t), A and B 2 × 2 row-major as the tables give them. */
static void kron_conj_add(const double (*A)[2], const double (*B)[2], sc S[16]) {
  for (int s = 0; s < 2; s++)
    for (int t = 0; t < 2; t++)
      for (int x = 0; x < 2; x++)
        for (int y = 0; y < 2; y++) {
          sc v = sc_mul((sc){A[2 * s + x][0], A[2 * s + x][1]}, sc_conj((sc){B[2 * t + y][0], B[2 * t + y][1]}));
          S[(2 * s + t) * 4 + 2 * x + y].r += v.r, S[(2 * s + t) * 4 + 2 * x + y].i += v.i;
        }
}

/* A member's 4 × 4 superoperator at angles a (d >= 0: the derivative w.r.t. a[d]; gates only;
 * a channel reads no angles, a may be NULL): a gate's U ⊗ U* (∂U ⊗ U* + U ⊗ ∂U*), a channel's
 * Σ_k K_k ⊗ K_k*. */
static void member_super(const qkd_ir_circuit *ir, member m, const double *a, int d, sc S[16]) {
  memset(S, 0, 16 * sizeof *S);
  if (!m.chan) {
    double u[4][2], du[4][2];
    qkd_gate_matrix(ir->gates[m.index].kind, a, -1, u);
    if (d < 0) {
      kron_conj_add(u, u, S);
      return;
    }
    qkd_gate_matrix(ir->gates[m.index].kind, a, d, du);
    kron_conj_add(du, u, S);
    kron_conj_add(u, du, S);
    return;
  }
  const qkd_ir_channel *ch = &ir->channels[m.index];
  double kr[QKD_CHAN_MAX_KRAUS][4][2];
  qkd_chan_kraus(ch->kind, ch->p, kr);
  for (int k = 0; k < qkd_chan(ch->kind)->n_kraus; k++) kron_conj_add(kr[k], kr[k], S);
}

/* C = A B (4 × 4) */
static void mul4(const sc *A, const sc *B, sc *C) {
  sc T[16];
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < 4; c++) {
      sc s = {0, 0};
      for (int k = 0; k < 4; k++) {
        sc x = sc_mul(A[r * 4 + k], B[k * 4 + c]);
        s.r += x.r, s.i += x.i;
      }
      T[r * 4 + c] = s;
    }
  memcpy(C, T, sizeof T);
}

static void member_angles(const qkd_ir_circuit *ir, member m, const double *params, const double *feat, double *a) {
  if (m.chan) memset(a, 0, QKD_GATE_MAX_ANGLES * sizeof(double));
  else qkd_ir_gate_angles(&ir->gates[m.index], params, feat, a);
}

/* A ONE op's superoperator for one sample. */
static void one_super(const plan *p, const op *o, const double *params, const double *feat, sc S[16]) {
  for (int e = 0; e < 16; e++) S[e] = (sc){e % 5 == 0, 0};
  for (int k = 0; k < o->count; k++) {
    member m = p->members[o->first + k];
    double a[QKD_GATE_MAX_ANGLES];
    sc M[16];
    member_angles(p->ir, m, params, feat, a);
    member_super(p->ir, m, a, -1, M);
    mul4(M, S, S);
  }
}

/* Adds df/dθ = Re Σ ∂S G of every angle of a ONE op's members to d_params and (if not NULL)
 * d_feat, for one sample (or, for an op without FEATURE angles, G summed over samples). */
static void one_contract(const plan *p, const op *o, const double *params, const double *feat, const sc G[16],
                         double *d_params, double *d_feat) {
  const qkd_ir_circuit *ir = p->ir;
  sc pre[MAX_MEMBERS][16], Q[16], M[16];
  double ang[MAX_MEMBERS][QKD_GATE_MAX_ANGLES];
  for (int e = 0; e < 16; e++) pre[0][e] = Q[e] = (sc){e % 5 == 0, 0};
  for (int k = 0; k < o->count; k++) {
    member_angles(ir, p->members[o->first + k], params, feat, ang[k]);
    if (k + 1 < o->count) {
      member_super(ir, p->members[o->first + k], ang[k], -1, M);
      mul4(M, pre[k], pre[k + 1]);
    }
  }
  for (int k = o->count - 1; k >= 0; k--) {
    member m = p->members[o->first + k];
    if (!m.chan) {
      const qkd_ir_gate *g = &ir->gates[m.index];
      for (int s = 0; s < qkd_gate(g->kind)->angles; s++) {
        const qkd_angle *an = &g->angle[s];
        int want = an->kind == QKD_ANGLE_PARAM || (an->kind == QKD_ANGLE_FEATURE && d_feat);
        if (!want) continue;
        sc dS[16];
        member_super(ir, m, ang[k], s, dS);
        mul4(Q, dS, dS);
        mul4(dS, pre[k], dS);
        double df = 0.0;
        for (int e = 0; e < o->nnz; e++) {
          int x = o->o[e] * 4 + o->in[e];
          df += dS[x].r * G[e].r - dS[x].i * G[e].i;
        }
        if (an->kind == QKD_ANGLE_PARAM) d_params[an->index] += an->scale * df;
        else d_feat[an->index] += an->scale * df;
      }
    }
    if (k > 0) {
      member_super(ir, m, ang[k], -1, M);
      mul4(Q, M, Q);
    }
  }
}

/* A TWO op's matrix U (d >= 0: ∂U/∂a[d]) for one sample. */
static void two_matrix(const plan *p, const op *o, const double *params, const double *feat, int d, sc U[16]) {
  const qkd_ir_gate *g = &p->ir->gates[p->members[o->first].index];
  double a[QKD_GATE_MAX_ANGLES], m[16][2];
  qkd_ir_gate_angles(g, params, feat, a);
  qkd_gate_matrix(g->kind, a, d, m);
  for (int e = 0; e < 16; e++) U[e] = (sc){m[e][0], m[e][1]};
}

static void two_contract(const plan *p, const op *o, const double *params, const double *feat, const sc H[16],
                         double *d_params, double *d_feat) {
  const qkd_ir_gate *g = &p->ir->gates[p->members[o->first].index];
  for (int s = 0; s < qkd_gate(g->kind)->angles; s++) {
    const qkd_angle *an = &g->angle[s];
    if (!(an->kind == QKD_ANGLE_PARAM || (an->kind == QKD_ANGLE_FEATURE && d_feat))) continue;
    sc dU[16];
    two_matrix(p, o, params, feat, s, dU);
    double df = 0.0;
    for (int e = 0; e < 16; e++) df += 2.0 * (dU[e].r * H[e].r - dU[e].i * H[e].i);
    if (an->kind == QKD_ANGLE_PARAM) d_params[an->index] += an->scale * df;
    else d_feat[an->index] += an->scale * df;
  }
}

/* ---- the passes (all lanes at once) ------------------------------------------------------- */

/* per op slot: fwd[16] and dual[16] operators (ONE: S at its non-zeros, k = 0..nnz; dual entry k
 * is conj(S[k]), applied transposed; TWO: U and U†, row-major) */
typedef struct {
  lc fwd[16], dual[16];
} opstore;

static void lane_set(lc *x, int l, sc v) { x->r[l] = v.r, x->i[l] = v.i; }

/* ρ and Λ are Hermitian, and so is every map here (Φ(B†) = Φ(B)†): the passes compute the
 * blocks at or above the diagonal (row base ≤ column base) and write each block below as the
 * conjugate transpose of its mirror. */

static inline void cmac(lc *restrict y, const lc *restrict s, const lc *restrict x) {
  y->r += s->r * x->r - s->i * x->i;
  y->i += s->r * x->i + s->i * x->r;
}

/* y += conj(a) b */
static inline void cjmac(lc *restrict y, const lc *restrict a, const lc *restrict b) {
  y->r += a->r * b->r + a->i * b->i;
  y->i += a->r * b->i - a->i * b->r;
}

static inline void conj_to(lc *restrict y, const lc *restrict x) {
  y->r = x->r;
  y->i = -x->i;
}

/* out[o_k] += S_k x[in_k] (dual: out[in_k] += conj(S_k) x[o_k]), on every 2 × 2 block; each
 * output's sum is built in registers, row by row of the pattern (rows: by o, dual: by in). */
HOT static void apply_one(lc *rho, int n, const op *o, const lc *S, int dual) {
  size_t dim = (size_t)1 << n, b = o->bit[0];
  const unsigned char *ord = dual ? o->dord : o->ford, *rs = dual ? o->drow : o->frow, *src = dual ? o->o : o->in;
  for (size_t r = 0; r < dim; r++) {
    if (r & b) continue;
    for (size_t c = r; c < dim; c++) {
      if (c & b) continue;
      lc *p[4] = {rho + r * dim + c, rho + r * dim + c + b, rho + (r + b) * dim + c, rho + (r + b) * dim + c + b};
      lc x[4], y[4];
      for (int e = 0; e < 4; e++) x[e] = *p[e];
      if (o->nnz == 16) {
        memset(y, 0, sizeof y);
        for (int u = 0; u < 4; u++)
          for (int v = 0; v < 4; v++) {
            if (dual) cmac(&y[u], &S[v * 4 + u], &x[v]);
            else cmac(&y[u], &S[u * 4 + v], &x[v]);
          }
      } else
        for (int u = 0; u < 4; u++) {
          lc acc;
          memset(&acc, 0, sizeof acc);
          for (int j = rs[u]; j < rs[u + 1]; j++) cmac(&acc, &S[ord[j]], &x[src[ord[j]]]);
          y[u] = acc;
        }
      for (int e = 0; e < 4; e++) *p[e] = y[e];
      if (c != r) { /* block (c, r): entry (s, t) = conj(y[(t, s)]) */
        conj_to(rho + c * dim + r, &y[0]);
        conj_to(rho + c * dim + r + b, &y[2]);
        conj_to(rho + (c + b) * dim + r, &y[1]);
        conj_to(rho + (c + b) * dim + r + b, &y[3]);
      }
    }
  }
}

/* G_k += conj(Λ[o_k]) ρ[in_k] over every 2 × 2 block (the blocks below the diagonal from their
 * mirrors: G_k += conj(Gu_kᵀ), kᵀ the transposed pair, which the pattern holds). */
HOT static void acc_one(const lc *lam, const lc *rho, int n, const op *o, lc *G) {
  size_t dim = (size_t)1 << n, b = o->bit[0];
  lc Gu[16];
  memset(Gu, 0, sizeof Gu);
  for (size_t r = 0; r < dim; r++) {
    if (r & b) continue;
    for (size_t c = r; c < dim; c++) {
      if (c & b) continue;
      size_t at[4] = {r * dim + c, r * dim + c + b, (r + b) * dim + c, (r + b) * dim + c + b};
      lc *acc = c == r ? G : Gu;
      if (o->nnz == 16) {
        for (int u = 0; u < 4; u++)
          for (int v = 0; v < 4; v++) cjmac(&acc[u * 4 + v], &lam[at[u]], &rho[at[v]]);
      } else
        for (int k = 0; k < o->nnz; k++) cjmac(&acc[k], &lam[at[o->o[k]]], &rho[at[o->in[k]]]);
    }
  }
  for (int k = 0; k < o->nnz; k++) {
    int t = o->tr[k];
    G[k].r += Gu[k].r + Gu[t].r;
    G[k].i += Gu[k].i - Gu[t].i;
  }
}

/* The 16 entries of the 4 × 4 block at (r, c) of a two-qubit op: index s*4 + t. */
static void two_index(const op *o, size_t dim, size_t r, size_t c, size_t at[16]) {
  size_t off[4] = {0, o->bit[1], o->bit[0], o->bit[0] | o->bit[1]};
  for (int s = 0; s < 4; s++)
    for (int t = 0; t < 4; t++) at[s * 4 + t] = (r + off[s]) * dim + c + off[t];
}

/* The basis indices with the op's qubits' bits clear (the blocks' row and column bases). */
static size_t bases(const op *o, size_t dim, size_t *out) {
  size_t mask = o->bit[0] | o->bit[1], m = 0;
  for (size_t r = 0; r < dim; r++)
    if (!(r & mask)) out[m++] = r;
  return m;
}

#define MAX_BASES (((size_t)1 << QKD_DM_MAX_QUBITS) / 4)
/* every 4 × 4 block (upper: those at or above the diagonal), at[] its entries */
#define TWO_BLOCKS(o, dim, upper, ...)                                                             \
  do {                                                                                             \
    size_t base_[MAX_BASES], nb_ = bases((o), (dim), base_);                                       \
    for (size_t ri_ = 0; ri_ < nb_; ri_++)                                                         \
      for (size_t ci_ = (upper) ? ri_ : 0; ci_ < nb_; ci_++) {                                     \
        size_t at[16];                                                                             \
        two_index((o), (dim), base_[ri_], base_[ci_], at);                                         \
        __VA_ARGS__                                                                                \
      }                                                                                            \
  } while (0)

/* B → U B U† on every 4 × 4 block. */
HOT static void apply_two(lc *rho, int n, const op *o, const lc *U) {
  size_t dim = (size_t)1 << n, off_[4] = {0, o->bit[1], o->bit[0], o->bit[0] | o->bit[1]};
  TWO_BLOCKS(o, dim, 1, {
    lc T[16];
    memset(T, 0, sizeof T);
    for (int s = 0; s < 4; s++)
      for (int a = 0; a < 4; a++) {
        const lc *u = &U[s * 4 + a];
        for (int t = 0; t < 4; t++) {
          const lc *x = &rho[at[a * 4 + t]];
          cmac(&T[s * 4 + t], u, x);
        }
      }
    for (int s = 0; s < 4; s++)
      for (int t = 0; t < 4; t++) {
        lc y;
        memset(&y, 0, sizeof y);
        for (int b = 0; b < 4; b++) { /* Σ_b T[s][b] conj(U[t][b]) */
          const lc *x = &T[s * 4 + b], *u = &U[t * 4 + b];
          cjmac(&y, u, x);
        }
        rho[at[s * 4 + t]] = y;
        if (ci_ != ri_) conj_to(&rho[(base_[ci_] + off_[t]) * dim + base_[ri_] + off_[s]], &y);
      }
  });
}

/* H[s][a] += Σ_t conj(Λ[s][t]) M[a][t], M = ρ U†, over every 4 × 4 block. */
HOT static void acc_two(const lc *lam, const lc *rho, int n, const op *o, const lc *U, lc *H) {
  size_t dim = (size_t)1 << n;
  TWO_BLOCKS(o, dim, 0, {
    lc M[16];
    memset(M, 0, sizeof M);
    for (int a = 0; a < 4; a++)
      for (int t = 0; t < 4; t++)
        for (int b = 0; b < 4; b++) {
          const lc *x = &rho[at[a * 4 + b]], *u = &U[t * 4 + b];
          cjmac(&M[a * 4 + t], u, x);
        }
    for (int s = 0; s < 4; s++)
      for (int a = 0; a < 4; a++)
        for (int t = 0; t < 4; t++) {
          const lc *x = &lam[at[s * 4 + t]], *y = &M[a * 4 + t];
          cjmac(&H[s * 4 + a], x, y);
        }
  });
}

/* Entry (s, t) of every 4 × 4 block moves to (perm[s], perm[t]) (inverse: back). */
HOT static void apply_perm(lc *rho, int n, const op *o, int inverse) {
  size_t dim = (size_t)1 << n;
  TWO_BLOCKS(o, dim, 0, {
    lc T[16];
    for (int e = 0; e < 16; e++) T[e] = rho[at[e]];
    for (int s = 0; s < 4; s++)
      for (int t = 0; t < 4; t++) {
        int ps = o->perm[s], pt = o->perm[t];
        if (inverse) rho[at[s * 4 + t]] = T[ps * 4 + pt];
        else rho[at[ps * 4 + pt]] = T[s * 4 + t];
      }
  });
}

/* ---- a group of lanes --------------------------------------------------------------------- */

typedef struct {
  const plan *p;
  const double *params;
  const double *feat[L]; /* per lane (NULL: no features) */
  int live;              /* lanes holding samples */
  opstore *store;        /* n_slots */
} group;

/* Fills the operators of every op (lanes: 1 = only FEATURE ops, per lane; 0 = only the others,
 * broadcast — once per call). */
static void fill_ops(const group *gr, int lanes) {
  const plan *p = gr->p;
  for (int k = 0; k < p->n_ops; k++) {
    const op *o = &p->ops[k];
    if (o->kind == OP_PERM || o->lanes != lanes) continue;
    opstore *st = &gr->store[o->slot];
    for (int l = 0; l < L; l++) {
      if (lanes == 0 && l > 0) {
        for (int e = 0; e < (o->kind == OP_ONE ? o->nnz : 16); e++) {
          st->fwd[e].r[l] = st->fwd[e].r[0], st->fwd[e].i[l] = st->fwd[e].i[0];
          st->dual[e].r[l] = st->dual[e].r[0], st->dual[e].i[l] = st->dual[e].i[0];
        }
        continue;
      }
      const double *feat = lanes && l < gr->live ? gr->feat[l] : gr->feat[0];
      sc M[16];
      if (o->kind == OP_ONE) {
        one_super(p, o, gr->params, feat, M);
        for (int e = 0; e < o->nnz; e++) {
          sc v = M[o->o[e] * 4 + o->in[e]];
          lane_set(&st->fwd[e], l, v), lane_set(&st->dual[e], l, sc_conj(v));
        }
      } else {
        two_matrix(p, o, gr->params, feat, -1, M);
        for (int r = 0; r < 4; r++)
          for (int c = 0; c < 4; c++) lane_set(&st->fwd[r * 4 + c], l, M[r * 4 + c]), lane_set(&st->dual[c * 4 + r], l, sc_conj(M[r * 4 + c]));
      }
    }
  }
}

static void apply_op(const group *gr, lc *rho, const op *o, int dual) {
  int n = gr->p->ir->n_qubits;
  if (o->kind == OP_PERM) apply_perm(rho, n, o, dual);
  else if (o->kind == OP_ONE) apply_one(rho, n, o, dual ? gr->store[o->slot].dual : gr->store[o->slot].fwd, dual);
  else apply_two(rho, n, o, dual ? gr->store[o->slot].dual : gr->store[o->slot].fwd);
}

/* ρ0 of every lane; r[l] = |x| for amplitude encoding (0 for a zero vector), else 1. */
static void init_rho(const group *gr, lc *rho, double r[L]) {
  const qkd_ir_circuit *ir = gr->p->ir;
  size_t dim = (size_t)1 << ir->n_qubits;
  int na = qkd_ir_amplitudes(ir);
  memset(rho, 0, dim * dim * sizeof(lc));
  for (int l = 0; l < L; l++) {
    r[l] = 1.0;
    const double *x = gr->feat[l];
    double ss = 0.0;
    if (ir->encode == QKD_ENCODE_AMPLITUDE && x && l < gr->live)
      for (int i = 0; i < na; i++) ss += x[i] * x[i];
    if (ss == 0.0) {
      rho[0].r[l] = 1.0;
      r[l] = ir->encode == QKD_ENCODE_AMPLITUDE ? 0.0 : 1.0;
      continue;
    }
    r[l] = sqrt(ss);
    for (int i = 0; i < na; i++)
      for (int j = 0; j < na; j++) rho[(size_t)i * dim + j].r[l] = (x[i] / r[l]) * (x[j] / r[l]);
  }
}

static void run_ops(const group *gr, lc *rho, int from, int to) {
  for (int k = from; k < to; k++) apply_op(gr, rho, &gr->p->ops[k], 0);
}

/* ---- entry points ------------------------------------------------------------------------- */

static void die_memory(void) {
  fprintf(stderr, "qkd dmk: out of memory for the density matrices\n");
  exit(2);
}

/* 64-byte aligned (the lane vectors) */
static void *alloc(size_t bytes) {
  void *p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64 * !bytes);
  if (!p) die_memory();
  return p;
}

static void group_begin(group *gr, const plan *p, const double *params, const double *features, int b0, int batch) {
  gr->p = p;
  gr->params = params;
  gr->live = batch - b0 < L ? batch - b0 : L;
  for (int l = 0; l < L; l++)
    gr->feat[l] = features && p->ir->n_features ? features + (size_t)(b0 + (l < gr->live ? l : 0)) * p->ir->n_features : NULL;
}

static void fwd_f64(const qkd_kernel *k, const double *params, const double *features, int batch, uint64_t seed,
                    uint64_t first_sample, double *outputs, void *workspace) {
  (void)workspace;
  const plan *p = k->engine_data;
  const qkd_ir_circuit *ir = p->ir;
  int n = ir->n_qubits, no = qkd_ir_outputs(ir);
  size_t dim = (size_t)1 << n;
  group gr;
  gr.store = alloc((size_t)(p->n_slots ? p->n_slots : 1) * sizeof(opstore));
  lc *rho = alloc(rho_bytes(n));
  double *diag = alloc(dim * sizeof(double)), r[L];
  group_begin(&gr, p, params, features, 0, batch);
  fill_ops(&gr, 0);
  for (int b0 = 0; b0 < batch; b0 += L) {
    group_begin(&gr, p, params, features, b0, batch);
    fill_ops(&gr, 1);
    init_rho(&gr, rho, r);
    run_ops(&gr, rho, 0, p->n_ops);
    for (int l = 0; l < gr.live; l++) {
      double *out = outputs + (size_t)(b0 + l) * no;
      for (size_t i = 0; i < dim; i++) diag[i] = rho[i * dim + i].r[l];
      if (ir->shots > 0) {
        qkd_dm_read_probs_of_diag(ir, diag);
        (k->sample ? k->sample : qkd_kernel_sample_f64)(n, ir->measure, ir->shots, diag, seed,
                                                        first_sample + (uint64_t)(b0 + l), out);
      } else qkd_dm_outputs_of_diag(ir, diag, out);
    }
  }
  free(gr.store), free(rho), free(diag);
}

static void bwd_f64(const qkd_kernel *k, const double *params, const double *features, int batch,
                    const double *d_outputs, double *d_params, double *d_features, void *workspace) {
  (void)workspace;
  const plan *p = k->engine_data;
  const qkd_ir_circuit *ir = p->ir;
  int n = ir->n_qubits, no = qkd_ir_outputs(ir), nf = ir->n_features;
  size_t dim = (size_t)1 << n, rb = rho_bytes(n);
  group gr;
  gr.store = alloc((size_t)(p->n_slots ? p->n_slots : 1) * sizeof(opstore));
  lc *rho = alloc(rb), *lam = alloc(rb);
  lc *ckpt = p->n_segs > 1 ? alloc(rb * (size_t)(p->n_segs - 1)) : NULL;
  lc *save = alloc(rb * (size_t)(p->max_saves ? p->max_saves : 1));
  double *w = alloc(dim * sizeof(double)), r[L];
  sc(*Gsum)[16] = alloc((size_t)(p->n_ops ? p->n_ops : 1) * sizeof *Gsum); /* ops without FEATURE angles */
  memset(Gsum, 0, (size_t)(p->n_ops ? p->n_ops : 1) * sizeof *Gsum);
  size_t cells = dim * dim;
  group_begin(&gr, p, params, features, 0, batch);
  fill_ops(&gr, 0);
  for (int b0 = 0; b0 < batch; b0 += L) {
    group_begin(&gr, p, params, features, b0, batch);
    fill_ops(&gr, 1);
    double *dfeat[L];
    for (int l = 0; l < L; l++) {
      dfeat[l] = d_features && l < gr.live ? d_features + (size_t)(b0 + l) * nf : NULL;
      if (dfeat[l]) memset(dfeat[l], 0, (size_t)nf * sizeof(double));
    }
    /* checkpoints at segment starts 1.. */
    if (p->n_segs > 1) {
      init_rho(&gr, rho, r);
      for (int s = 1; s < p->n_segs; s++) {
        run_ops(&gr, rho, p->seg_start[s - 1], p->seg_start[s]);
        memcpy(ckpt + (size_t)(s - 1) * cells, rho, rb);
      }
    }
    /* Λ_N = diag(w) per lane (dead lanes: 0) */
    memset(lam, 0, rb);
    for (int l = 0; l < gr.live; l++) {
      qkd_dm_observable(ir, d_outputs + (size_t)(b0 + l) * no, w);
      for (size_t i = 0; i < dim; i++) lam[i * dim + i].r[l] = w[i];
    }
    for (int s = p->n_segs - 1; s >= 0; s--) {
      int from = p->seg_start[s], to = p->seg_start[s + 1], last = -1;
      if (s == 0) init_rho(&gr, rho, r);
      else memcpy(rho, ckpt + (size_t)(s - 1) * cells, rb);
      for (int j = from; j < to; j++)
        if (p->ops[j].save >= 0) last = j;
      for (int j = from; j < last; j++) {
        const op *o = &p->ops[j];
        if (o->save >= 0) memcpy(save + (size_t)o->save * cells, rho, rb);
        apply_op(&gr, rho, o, 0);
      }
      if (last >= 0) memcpy(save + (size_t)p->ops[last].save * cells, rho, rb);
      for (int j = to - 1; j >= from; j--) {
        const op *o = &p->ops[j];
        int want = o->params || (o->lanes && d_features);
        if (o->save >= 0 && want) {
          const lc *rin = save + (size_t)o->save * cells;
          lc G[16];
          memset(G, 0, sizeof G);
          if (o->kind == OP_ONE) acc_one(lam, rin, n, o, G);
          else acc_two(lam, rin, n, o, gr.store[o->slot].fwd, G);
          int count = o->kind == OP_ONE ? o->nnz : 16;
          if (!o->lanes) {
            for (int e = 0; e < count; e++)
              for (int l = 0; l < gr.live; l++) Gsum[j][e].r += G[e].r[l], Gsum[j][e].i += G[e].i[l];
          } else
            for (int l = 0; l < gr.live; l++) {
              sc g[16];
              for (int e = 0; e < count; e++) g[e] = (sc){G[e].r[l], G[e].i[l]};
              if (o->kind == OP_ONE) one_contract(p, o, params, gr.feat[l], g, d_params, dfeat[l]);
              else two_contract(p, o, params, gr.feat[l], g, d_params, dfeat[l]);
            }
        }
        apply_op(&gr, lam, o, 1);
      }
    }
    if (ir->encode == QKD_ENCODE_AMPLITUDE)
      for (int l = 0; l < gr.live; l++) { /* g_i = 2 Σ_j Re Λ0[i][j] ψ_j; df/dx = (g − ψ (ψ·g)) / r */
        if (!dfeat[l] || r[l] <= 0.0) continue;
        const double *x = gr.feat[l];
        double dot = 0.0;
        for (int i = 0; i < nf; i++) {
          double s = 0.0;
          for (int j = 0; j < nf; j++) s += lam[(size_t)i * dim + j].r[l] * (x[j] / r[l]);
          w[i] = 2.0 * s;
          dot += (x[i] / r[l]) * w[i];
        }
        for (int i = 0; i < nf; i++) dfeat[l][i] += (w[i] - (x[i] / r[l]) * dot) / r[l];
      }
  }
  for (int j = 0; j < p->n_ops; j++) {
    const op *o = &p->ops[j];
    if (o->lanes || !o->params) continue;
    if (o->kind == OP_ONE) one_contract(p, o, params, NULL, Gsum[j], d_params, NULL);
    else two_contract(p, o, params, NULL, Gsum[j], d_params, NULL);
  }
  free(gr.store), free(rho), free(lam), free(ckpt), free(save), free(w), free(Gsum);
}

int qkd_dmk_kernel(const qkd_ir_circuit *ir, qkd_kernel *k, qkd_error *err) {
  if (qkd_dm_check_size(ir, err)) return -1;
  plan *p = plan_build(ir);
  if (!p) return qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory for the density-matrix kernel's plan");
  memset(k, 0, sizeof *k);
  k->ir = ir;
  k->engine = "dmk";
  k->fwd_f64 = fwd_f64;
  k->bwd_f64 = bwd_f64;
  k->fwd_f32 = qkd_kernel_fwd_f32_in_f64;
  k->bwd_f32 = qkd_kernel_bwd_f32_in_f64;
  k->engine_data = p;
  return 0;
}

void qkd_dmk_free(qkd_kernel *k) {
  if (k && k->engine_data && k->engine && strcmp(k->engine, "dmk") == 0) plan_free(k->engine_data);
  if (k) k->engine_data = NULL;
}
