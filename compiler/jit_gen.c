/* jit_gen.c — LLVM IR for a circuit's batched forward and adjoint-backward kernels (jit_gen.h).
 *
 * Structure of the generated code (one pair of entry points per precision T):
 *   entry     scratch carving; the prologue computes every fixed group matrix (from params and
 *             constant angles, once per call) and builds each diagonal run's phase table;
 *   tile loop V samples at a time: encode → forward ops → outputs (fwd) or λ-init and the
 *             reverse sweep with generator overlaps (bwd) → d_features for amplitude encoding;
 *   exit      (bwd) lane sums of the gradient accumulators added to d_params in lane order.
 * Ops run in the groups of jit_block_plan: a blocked group is a loop over cosets (Gray-code
 * walk of the representatives) calling each op's helper on that coset only, so the coset stays
 * in L1 across the group (block_dim chooses the size from the state's bytes).
 * Each op is a call to an internal helper specialised on its constants (physical masks, Gray-code
 * step table, which matrix entries are zero/constant/variable, generator), cached by key, so
 * equal ops share one helper and the module stays small (compile time). Values of the 2×2
 * matrices are LLVMValueRef, NULL meaning an exact zero, so zero entries cost nothing.
 * Naming: v_ for values, b_ for blocks (PostgreSQL llvmjit style). */
#include "jit_gen.h"

#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "qkd_kernel.h"

typedef struct { LLVMValueRef re, im; } cx; /* NULL part = exact 0 */

typedef struct {
  char *key;
  LLVMValueRef fn;
  LLVMTypeRef ty;
} fcache;

typedef struct {
  LLVMContextRef C;
  LLVMModuleRef M;
  LLVMBuilderRef B;
  const qkd_ir_circuit *ir;
  const jit_gen_cfg *cfg;
  int f32, V, VB, n;
  uint32_t N;
  LLVMTypeRef T, VT, D, VD, i1, i32, i64, ptr, vd;
  LLVMValueRef fn; /* function being built */
  LLVMValueRef cs; /* entry function's table of cos/sin(θ/2) of PARAM gates, [gate][2] of T */
  fcache *cache;
  int ncache, capcache;
  int counter;
  int failed;
} gen;

/* ---- small emit helpers ----------------------------------------------------------------- */

static LLVMValueRef ci32(gen *g, long long v) { return LLVMConstInt(g->i32, (unsigned long long)v, 0); }
static LLVMValueRef ci64(gen *g, long long v) { return LLVMConstInt(g->i64, (unsigned long long)v, 0); }
static LLVMValueRef cT(gen *g, double v) { return LLVMConstReal(g->T, v); }
static int is_vec(LLVMValueRef v) { return LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMVectorTypeKind; }

static fcache *cache_find(gen *g, const char *key);
static fcache *cache_add(gen *g, const char *key, LLVMValueRef fn, LLVMTypeRef ty);
static LLVMValueRef load(gen *g, LLVMTypeRef ty, LLVMValueRef p, unsigned align);

/* Vector constant c as a load from a private global (one per constant). The quick tier's
 * instruction selector (FastISel) cannot materialise vector constants: one in a block (or in a
 * phi of its successor) hands the whole block to SelectionDAG, the bulk of that tier's compile
 * time. The global is not marked constant, so the quick tier's early-cse keeps the load; O2's
 * globalopt sees it is never written and folds it back into the constant: the same value. */
static LLVMValueRef vconst(gen *g, LLVMValueRef c) {
  char key[48];
  snprintf(key, sizeof key, "V|%p", (void *)c); /* constants are unique in their context */
  fcache *e = cache_find(g, key);
  LLVMValueRef gv = e ? e->fn : NULL;
  if (!gv) {
    gv = LLVMAddGlobal(g->M, LLVMTypeOf(c), "qkd.vc");
    LLVMSetInitializer(gv, c);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetUnnamedAddr(gv, 1);
    LLVMSetAlignment(gv, 64);
    cache_add(g, key, gv, LLVMTypeOf(c));
  }
  return load(g, LLVMTypeOf(c), gv, 64);
}
static LLVMValueRef vzero(gen *g, LLVMTypeRef vty) { return vconst(g, LLVMConstNull(vty)); }

static LLVMValueRef splat_n(gen *g, LLVMValueRef s, int lanes) {
  if (is_vec(s)) return s;
  LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(s), (unsigned)lanes);
  if (LLVMIsConstant(s)) {
    LLVMValueRef el[64];
    for (int i = 0; i < lanes; i++) el[i] = s;
    return vconst(g, LLVMConstVector(el, (unsigned)lanes));
  }
  LLVMValueRef v = LLVMBuildInsertElement(g->B, LLVMGetPoison(vt), s, ci32(g, 0), "");
  return LLVMBuildShuffleVector(g->B, v, LLVMGetPoison(vt),
                                LLVMConstNull(LLVMVectorType(g->i32, (unsigned)lanes)), "splat");
}
static LLVMValueRef splat(gen *g, LLVMValueRef s) { return splat_n(g, s, g->V); }

/* Brings a and b to the same shape (scalar T or <V x T>). */
static void unify(gen *g, LLVMValueRef *a, LLVMValueRef *b) {
  if (is_vec(*a) && !is_vec(*b)) *b = splat(g, *b);
  else if (!is_vec(*a) && is_vec(*b)) *a = splat(g, *a);
}
/* Floating-point arithmetic carries no fast-math flags (not even `contract`): every rounding is
 * fixed by the IR, so any pass pipeline and any instruction selector give the same bits (the
 * tiers of jit.c rely on it). Multiply-adds are fused here, explicitly: with cfg->fma, F_add and
 * F_sub of a product (an fmul instruction, the left operand's first) emit llvm.fma on the
 * product's operands, rounded once; the fmul, if nothing else uses it, is dead code. */
static LLVMValueRef F_mul(gen *g, LLVMValueRef a, LLVMValueRef b) {
  if (!a || !b) return NULL;
  unify(g, &a, &b);
  return LLVMBuildFMul(g->B, a, b, "");
}
static LLVMValueRef F_neg(gen *g, LLVMValueRef a) { return a ? LLVMBuildFNeg(g->B, a, "") : NULL; }
/* x · y + z, one rounding */
static LLVMValueRef F_fma(gen *g, LLVMValueRef x, LLVMValueRef y, LLVMValueRef z) {
  if (is_vec(x) || is_vec(y) || is_vec(z)) { x = splat(g, x); y = splat(g, y); z = splat(g, z); }
  LLVMTypeRef ty = LLVMTypeOf(x), fty;
  unsigned id = LLVMLookupIntrinsicID("llvm.fma", 8);
  fty = LLVMIntrinsicGetType(g->C, id, &ty, 1);
  LLVMValueRef a[3] = {x, y, z};
  return LLVMBuildCall2(g->B, fty, LLVMGetIntrinsicDeclaration(g->M, id, &ty, 1), a, 3, "");
}
/* v is a product to fuse: its factors in *x, *y */
static int fusable(gen *g, LLVMValueRef v, LLVMValueRef *x, LLVMValueRef *y) {
  if (!g->cfg->fma || !LLVMIsAInstruction(v) || LLVMGetInstructionOpcode(v) != LLVMFMul) return 0;
  *x = LLVMGetOperand(v, 0);
  *y = LLVMGetOperand(v, 1);
  return 1;
}
static LLVMValueRef F_add(gen *g, LLVMValueRef a, LLVMValueRef b) {
  if (!a) return b;
  if (!b) return a;
  LLVMValueRef x, y;
  if (fusable(g, a, &x, &y)) return F_fma(g, x, y, b);
  if (fusable(g, b, &x, &y)) return F_fma(g, x, y, a);
  unify(g, &a, &b);
  return LLVMBuildFAdd(g->B, a, b, "");
}
static LLVMValueRef F_sub(gen *g, LLVMValueRef a, LLVMValueRef b) {
  if (!b) return a;
  if (!a) return F_neg(g, b);
  LLVMValueRef x, y;
  if (fusable(g, a, &x, &y)) return F_fma(g, x, y, F_neg(g, b));
  if (fusable(g, b, &x, &y)) return F_fma(g, F_neg(g, x), y, a);
  unify(g, &a, &b);
  return LLVMBuildFSub(g->B, a, b, "");
}
static cx C_mul(gen *g, cx x, cx y) {
  cx r = {F_sub(g, F_mul(g, x.re, y.re), F_mul(g, x.im, y.im)),
          F_add(g, F_mul(g, x.re, y.im), F_mul(g, x.im, y.re))};
  return r;
}
static cx C_add(gen *g, cx x, cx y) { cx r = {F_add(g, x.re, y.re), F_add(g, x.im, y.im)}; return r; }
static cx C_conj(gen *g, cx x) { cx r = {x.re, F_neg(g, x.im)}; return r; }
static LLVMValueRef or_zero(gen *g, LLVMValueRef v, LLVMTypeRef ty) {
  if (v) return v;
  return LLVMGetTypeKind(ty) == LLVMVectorTypeKind ? vzero(g, ty) : LLVMConstNull(ty);
}

static LLVMValueRef intrinsic(gen *g, const char *name, LLVMTypeRef *tys, int ntys, LLVMTypeRef *fty) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  *fty = LLVMIntrinsicGetType(g->C, id, tys, (size_t)ntys);
  return LLVMGetIntrinsicDeclaration(g->M, id, tys, (size_t)ntys);
}
static LLVMValueRef call1(gen *g, const char *name, LLVMValueRef x) {
  LLVMTypeRef ty = LLVMTypeOf(x), fty;
  LLVMValueRef f = intrinsic(g, name, &ty, 1, &fty);
  return LLVMBuildCall2(g->B, fty, f, &x, 1, "");
}
static LLVMValueRef cttz(gen *g, LLVMValueRef x) {
  LLVMTypeRef ty = g->i32, fty;
  LLVMValueRef f = intrinsic(g, "llvm.cttz", &ty, 1, &fty);
  LLVMValueRef a[2] = {x, LLVMConstInt(g->i1, 1, 0)};
  return LLVMBuildCall2(g->B, fty, f, a, 2, "");
}
static void memzero(gen *g, LLVMValueRef p, uint64_t bytes) {
  LLVMTypeRef tys[2] = {g->ptr, g->i64}, fty;
  LLVMValueRef f = intrinsic(g, "llvm.memset", tys, 2, &fty);
  LLVMValueRef a[4] = {p, LLVMConstInt(LLVMInt8TypeInContext(g->C), 0, 0), ci64(g, (long long)bytes),
                       LLVMConstInt(g->i1, 0, 0)};
  LLVMBuildCall2(g->B, fty, f, a, 4, "");
}

static LLVMValueRef gep(gen *g, LLVMTypeRef ty, LLVMValueRef base, LLVMValueRef idx) {
  if (LLVMTypeOf(idx) != g->i64) idx = LLVMBuildZExt(g->B, idx, g->i64, "");
  return LLVMBuildGEP2(g->B, ty, base, &idx, 1, "");
}
static LLVMValueRef gepc(gen *g, LLVMTypeRef ty, LLVMValueRef base, long long idx) {
  return gep(g, ty, base, ci64(g, idx));
}
static LLVMValueRef load(gen *g, LLVMTypeRef ty, LLVMValueRef p, unsigned align) {
  LLVMValueRef v = LLVMBuildLoad2(g->B, ty, p, "");
  LLVMSetAlignment(v, align);
  return v;
}
static void store(gen *g, LLVMValueRef v, LLVMValueRef p, unsigned align) {
  LLVMValueRef s = LLVMBuildStore(g->B, v, p);
  LLVMSetAlignment(s, align);
}

/* Amplitude idx (i32) of a tile state: re at 2*idx, im at 2*idx+1 (units of <V x T>). */
static cx amp_load(gen *g, LLVMValueRef st, LLVMValueRef idx) {
  LLVMValueRef i2 = LLVMBuildShl(g->B, LLVMBuildZExt(g->B, idx, g->i64, ""), ci64(g, 1), "");
  cx r;
  r.re = load(g, g->VT, gep(g, g->VT, st, i2), (unsigned)g->VB);
  r.im = load(g, g->VT, gep(g, g->VT, st, LLVMBuildOr(g->B, i2, ci64(g, 1), "")), (unsigned)g->VB);
  return r;
}
static void amp_store(gen *g, LLVMValueRef st, LLVMValueRef idx, cx v) {
  LLVMValueRef i2 = LLVMBuildShl(g->B, LLVMBuildZExt(g->B, idx, g->i64, ""), ci64(g, 1), "");
  store(g, or_zero(g, v.re, g->VT), gep(g, g->VT, st, i2), (unsigned)g->VB);
  store(g, or_zero(g, v.im, g->VT), gep(g, g->VT, st, LLVMBuildOr(g->B, i2, ci64(g, 1), "")),
        (unsigned)g->VB);
}

/* parity(p & mask) as i1 */
static LLVMValueRef parity(gen *g, LLVMValueRef p, uint32_t mask) {
  if ((mask & (mask - 1)) == 0)
    return LLVMBuildICmp(g->B, LLVMIntNE, LLVMBuildAnd(g->B, p, ci32(g, mask), ""), ci32(g, 0), "");
  LLVMValueRef c = call1(g, "llvm.ctpop", LLVMBuildAnd(g->B, p, ci32(g, mask), ""));
  return LLVMBuildTrunc(g->B, c, g->i1, "par");
}

/* ---- loops -------------------------------------------------------------------------------- */

#define MAXPHI 24
typedef struct {
  LLVMBasicBlockRef b_pre, b_body, b_exit;
  LLVMValueRef iv, count;
  int nphi;
  LLVMValueRef phi[MAXPHI];
} loop;

/* Starts `for (iv = 0; iv < count; iv++)` (count ≥ 1 required) with extra phis (initial values).
 * A loop that carries vectors is entered from a block of its own, where initial values that are
 * vector constants (vconst loads) are loaded: FastISel (the quick tier) handles neither phis nor
 * loads of some vector types (<16 x double>), and a miss hands the rest of its block to
 * SelectionDAG — better that one-branch block than a long one before it. */
static void loop_begin(gen *g, loop *L, LLVMValueRef count, int nphi, LLVMValueRef *init) {
  int vec = 0;
  for (int k = 0; k < nphi; k++) vec |= is_vec(init[k]);
  if (vec) {
    LLVMBasicBlockRef b = LLVMAppendBasicBlockInContext(g->C, g->fn, "loop.pre");
    LLVMBuildBr(g->B, b);
    LLVMPositionBuilderAtEnd(g->B, b);
    for (int k = 0; k < nphi; k++) {
      LLVMValueRef v = init[k], gv = LLVMIsALoadInst(v) ? LLVMGetOperand(v, 0) : NULL;
      if (!gv || !LLVMIsAGlobalVariable(gv)) continue;
      init[k] = load(g, LLVMTypeOf(v), gv, LLVMGetAlignment(v));
      if (!LLVMGetFirstUse(v)) LLVMInstructionEraseFromParent(v);
    }
  }
  L->b_pre = LLVMGetInsertBlock(g->B);
  L->b_body = LLVMAppendBasicBlockInContext(g->C, g->fn, "loop");
  L->b_exit = LLVMAppendBasicBlockInContext(g->C, g->fn, "loop.end");
  L->count = count;
  LLVMBuildBr(g->B, L->b_body);
  LLVMPositionBuilderAtEnd(g->B, L->b_body);
  L->iv = LLVMBuildPhi(g->B, LLVMTypeOf(count), "i");
  LLVMAddIncoming(L->iv, &(LLVMValueRef){LLVMConstNull(LLVMTypeOf(count))}, &L->b_pre, 1);
  L->nphi = nphi;
  for (int k = 0; k < nphi; k++) {
    L->phi[k] = LLVMBuildPhi(g->B, LLVMTypeOf(init[k]), "");
    LLVMAddIncoming(L->phi[k], &init[k], &L->b_pre, 1);
  }
}
/* Closes the loop with the phis' next values; the builder continues after the loop. */
static void loop_end(gen *g, loop *L, LLVMValueRef *next) {
  LLVMValueRef inc = LLVMBuildAdd(g->B, L->iv, LLVMConstInt(LLVMTypeOf(L->count), 1, 0), "");
  LLVMBasicBlockRef b_latch = LLVMGetInsertBlock(g->B);
  LLVMAddIncoming(L->iv, &inc, &b_latch, 1);
  for (int k = 0; k < L->nphi; k++) LLVMAddIncoming(L->phi[k], &next[k], &b_latch, 1);
  LLVMBuildCondBr(g->B, LLVMBuildICmp(g->B, LLVMIntULT, inc, L->count, ""), L->b_body, L->b_exit);
  LLVMPositionBuilderAtEnd(g->B, L->b_exit);
}

/* ---- function creation -------------------------------------------------------------------- */

static void fn_attrs(gen *g, LLVMValueRef fn) {
  char w[16];
  snprintf(w, sizeof w, "%d", g->VB * 8);
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                          LLVMCreateStringAttribute(g->C, "min-legal-vector-width", 22, w, (unsigned)strlen(w)));
  unsigned nu = LLVMGetEnumAttributeKindForName("nounwind", 8);
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(g->C, nu, 0));
}

static fcache *cache_find(gen *g, const char *key) {
  for (int i = 0; i < g->ncache; i++)
    if (strcmp(g->cache[i].key, key) == 0) return &g->cache[i];
  return NULL;
}
static fcache *cache_add(gen *g, const char *key, LLVMValueRef fn, LLVMTypeRef ty) {
  if (g->ncache == g->capcache) {
    int cap = g->capcache ? 2 * g->capcache : 64;
    fcache *c = realloc(g->cache, (size_t)cap * sizeof *c);
    if (!c) { g->failed = 1; return NULL; }
    g->cache = c;
    g->capcache = cap;
  }
  fcache *e = &g->cache[g->ncache++];
  e->key = strdup(key);
  e->fn = fn;
  e->ty = ty;
  if (!e->key) g->failed = 1;
  return e;
}

/* Saves/restores the builder position around building a helper. */
typedef struct { LLVMBasicBlockRef bb; LLVMValueRef fn; } savepos;
static savepos pos_save(gen *g) { savepos s = {LLVMGetInsertBlock(g->B), g->fn}; return s; }
static void pos_restore(gen *g, savepos s) { LLVMPositionBuilderAtEnd(g->B, s.bb); g->fn = s.fn; }

/* ---- gate matrices ------------------------------------------------------------------------ */

/* k · x for a constant k (NULL for k = 0 or x = NULL; ±1 cost nothing). */
static LLVMValueRef K_mul(gen *g, double k, LLVMValueRef x) {
  if (k == 0.0 || !x) return NULL;
  if (k == 1.0) return x;
  if (k == -1.0) return F_neg(g, x);
  return F_mul(g, cT(g, k), x);
}

/* The value of gate-table entry e (qkd_gates.h) for a gate of at most one angle, from
 * c = cos(a/2), s = sin(a/2): coef · T · e^{i w a / 2}, the phase as (c + i s)^w. */
static cx entry_val(gen *g, const qkd_gate_entry *e, LLVMValueRef c, LLVMValueRef s) {
  cx r = {NULL, NULL};
  if (qkd_gate_entry_zero(e)) return r;
  if (e->w[1] || e->w[2]) { /* jit_expand leaves no gate of several angles */
    fprintf(stderr, "qkd jit: internal error: a gate-table entry of several angles reached the emitter\n");
    exit(2);
  }
  if (e->trig == QKD_TRIG_ONE && e->w[0] == 0) {
    r.re = e->re != 0.0 ? cT(g, e->re) : NULL;
    r.im = e->im != 0.0 ? cT(g, e->im) : NULL;
    return r;
  }
  cx v = {e->trig == QKD_TRIG_COS ? c : e->trig == QKD_TRIG_SIN ? s : NULL, NULL};
  if (e->w[0]) {
    int w = e->w[0] < 0 ? -e->w[0] : e->w[0];
    cx u = {c, e->w[0] < 0 ? F_neg(g, s) : s}, p = u;
    for (int k = 1; k < w; k++) p = C_mul(g, p, u);
    v = v.re ? (cx){F_mul(g, v.re, p.re), F_mul(g, v.re, p.im)} : p;
  }
  r.re = F_sub(g, K_mul(g, e->re, v.re), K_mul(g, e->im, v.im));
  r.im = F_add(g, K_mul(g, e->re, v.im), K_mul(g, e->im, v.re));
  return r;
}

/* m[0..3] = the 2×2 block of gate kind k on its basis patterns blk (rows/columns blk[0], blk[1]). */
static void gate_block(gen *g, qkd_gate_kind k, const int *blk, LLVMValueRef c, LLVMValueRef s, cx m[4]) {
  const qkd_gate_info *info = qkd_gate(k);
  int D = 1 << info->qubits;
  for (int r = 0; r < 2; r++)
    for (int q = 0; q < 2; q++) m[2 * r + q] = entry_val(g, &info->m[blk[r] * D + blk[q]], c, s);
}

/* Per-tile context: the tile's features, transposed: featbuf[j] = <V x T> of feature j. */
typedef struct {
  LLVMValueRef featbuf;
} tilectx;

/* cos and sin of half the gate's angle: scalars T (CONST: folded constants; PARAM: from params,
 * computed in double) or <V x T> (FEATURE: per lane, needs tc). */
static void gate_cs(gen *g, const qkd_ir_gate *gt, LLVMValueRef params, const tilectx *tc,
                    LLVMValueRef *c, LLVMValueRef *s) {
  const qkd_angle *a = &gt->angle[0];
  if (a->kind == QKD_ANGLE_NONE) { *c = *s = NULL; return; }
  if (a->kind == QKD_ANGLE_CONST) {
    *c = cT(g, cos(0.5 * a->offset));
    *s = cT(g, sin(0.5 * a->offset));
    return;
  }
  if (a->kind == QKD_ANGLE_BIT) { /* one of two constant angles per lane: a select, no sin/cos */
    LLVMValueRef v = load(g, g->VT, gepc(g, g->VT, tc->featbuf, a->index), (unsigned)g->VB);
    LLVMValueRef on = LLVMBuildFCmp(g->B, LLVMRealUNE, v, LLVMConstNull(g->VT), "bit");
    double h1 = 0.5 * (a->scale + a->offset), h0 = 0.5 * a->offset;
    *c = LLVMBuildSelect(g->B, on, splat(g, cT(g, cos(h1))), splat(g, cT(g, cos(h0))), "");
    *s = LLVMBuildSelect(g->B, on, splat(g, cT(g, sin(h1))), splat(g, cT(g, sin(h0))), "");
    return;
  }
  LLVMValueRef th;
  if (a->kind == QKD_ANGLE_PARAM) {
    (void)params;
    long long gi = gt - g->ir->gates;
    *c = load(g, g->T, gepc(g, g->T, g->cs, 2 * gi), g->f32 ? 4 : 8);
    *s = load(g, g->T, gepc(g, g->T, g->cs, 2 * gi + 1), g->f32 ? 4 : 8);
    return;
  } else {
    LLVMValueRef v = load(g, g->VT, gepc(g, g->VT, tc->featbuf, a->index), (unsigned)g->VB);
    if (g->f32) v = LLVMBuildFPExt(g->B, v, g->VD, "");
    th = v;
  }
  LLVMValueRef sc = LLVMConstReal(g->D, 0.5 * a->scale), of = LLVMConstReal(g->D, 0.5 * a->offset);
  if (is_vec(th)) { sc = splat(g, sc); of = splat(g, of); }
  LLVMValueRef half = F_add(g, F_mul(g, th, sc), of);
  LLVMValueRef cc = call1(g, "llvm.cos", half), ss = call1(g, "llvm.sin", half);
  if (g->f32) {
    cc = LLVMBuildFPTrunc(g->B, cc, is_vec(cc) ? g->VT : g->T, "");
    ss = LLVMBuildFPTrunc(g->B, ss, is_vec(ss) ? g->VT : g->T, "");
  }
  *c = cc;
  *s = ss;
}

static int group_has_feature(const qkd_ir_circuit *ir, const jit_op *op) {
  for (int i = 0; i < op->n_gates; i++)
    if (ir->gates[op->gates[i]].angle[0].kind == QKD_ANGLE_FEATURE || ir->gates[op->gates[i]].angle[0].kind == QKD_ANGLE_BIT)
      return 1;
  return 0;
}

/* A bwd group's overlap at its output, taken back to its grad gate's output: the Pauli slots
 * after the grad gate (jit_plan.c) flip its sign in the lanes where a slot's bit is set and the
 * slot's axis differs from the generator's (S G S† = −G). ov unchanged when there are none. */
static LLVMValueRef post_slot_sign(gen *g, const jit_op *op, const tilectx *tc, LLVMValueRef ov) {
  int at = -1;
  for (int i = 0; i < op->n_gates; i++)
    if (op->gates[i] == op->grad_gate) at = i;
  int axis = jit_pauli_axis(&g->ir->gates[op->grad_gate]);
  for (int i = at + 1; i < op->n_gates; i++) {
    const qkd_ir_gate *s = &g->ir->gates[op->gates[i]];
    if (jit_pauli_slot(s) == axis) continue; /* commutes */
    LLVMValueRef v = load(g, g->VT, gepc(g, g->VT, tc->featbuf, s->angle[0].index), (unsigned)g->VB);
    LLVMValueRef on = LLVMBuildFCmp(g->B, LLVMRealUNE, v, LLVMConstNull(g->VT), "slot");
    ov = LLVMBuildSelect(g->B, on, LLVMBuildFNeg(g->B, ov, ""), ov, "");
  }
  return ov;
}

/* The product matrix of a PAIR op's gates (last gate leftmost) on the op's pair. */
static void group_mat(gen *g, const jit_op *op, LLVMValueRef params, const tilectx *tc, cx M[4]) {
  for (int i = 0; i < op->n_gates; i++) {
    const qkd_ir_gate *gt = &g->ir->gates[op->gates[i]];
    LLVMValueRef c, s;
    gate_cs(g, gt, params, tc, &c, &s);
    cx m[4];
    gate_block(g, gt->kind, op->blk, c, s, m);
    if (i == 0) { memcpy(M, m, sizeof m); continue; }
    cx r[4];
    r[0] = C_add(g, C_mul(g, m[0], M[0]), C_mul(g, m[1], M[2]));
    r[1] = C_add(g, C_mul(g, m[0], M[1]), C_mul(g, m[1], M[3]));
    r[2] = C_add(g, C_mul(g, m[2], M[0]), C_mul(g, m[3], M[2]));
    r[3] = C_add(g, C_mul(g, m[2], M[1]), C_mul(g, m[3], M[3]));
    memcpy(M, r, sizeof r);
  }
}

static void mat_dagger(gen *g, const cx M[4], cx R[4]) {
  R[0] = C_conj(g, M[0]);
  R[1] = C_conj(g, M[2]);
  R[2] = C_conj(g, M[1]);
  R[3] = C_conj(g, M[3]);
}

/* ---- PAIR helpers ------------------------------------------------------------------------- */

enum { GEN_NONE = 0, GEN_X = 1, GEN_Y = 2, GEN_Z = 3, GEN_ANY = 4 };

/* A generator restricted to a PAIR op's pair: X, Y, Z (their own code, as for RX/RY/RZ and the
 * controlled rotations) or any constant Hermitian 2×2 v (re, im of g00 g01 g10 g11). */
typedef struct {
  int code;
  double v[4][2];
} genblk;

static genblk gen_block(qkd_gate_kind k, const int *blk) {
  const qkd_gate_info *info = qkd_gate(k);
  int D = 1 << info->qubits;
  genblk b;
  for (int r = 0; r < 2; r++)
    for (int q = 0; q < 2; q++) {
      const qkd_gate_entry *e = &info->gen[blk[r] * D + blk[q]];
      b.v[2 * r + q][0] = e->re;
      b.v[2 * r + q][1] = e->im;
    }
  int axis = jit_pauli_of((const double(*)[2])b.v); /* 1, 2, 3 = GEN_X, GEN_Y, GEN_Z */
  b.code = axis ? axis : GEN_ANY;
  return b;
}

/* Applies matrix parts (8 values: re/im of m00 m01 m10 m11, NULL = 0) to pair (a, b). */
static void pair_apply(gen *g, LLVMValueRef *mp, cx *a, cx *b) {
  cx m00 = {mp[0], mp[1]}, m01 = {mp[2], mp[3]}, m10 = {mp[4], mp[5]}, m11 = {mp[6], mp[7]};
  cx na = C_add(g, C_mul(g, m00, *a), C_mul(g, m01, *b));
  cx nb = C_add(g, C_mul(g, m10, *a), C_mul(g, m11, *b));
  *a = na;
  *b = nb;
}

/* Im<λ|G|φ> contribution of one pair (a: the pair's first pattern, b: its second). */
static LLVMValueRef overlap(gen *g, const genblk *gb, cx fa, cx fb, cx la, cx lb) {
#define IMC(l, f) F_sub(g, F_mul(g, (l).re, (f).im), F_mul(g, (l).im, (f).re)) /* Im(conj(l) f) */
#define REC(l, f) F_add(g, F_mul(g, (l).re, (f).re), F_mul(g, (l).im, (f).im)) /* Re(conj(l) f) */
  switch (gb->code) {
  case GEN_Z: return F_sub(g, IMC(la, fa), IMC(lb, fb));
  case GEN_X: return F_add(g, IMC(la, fb), IMC(lb, fa));
  case GEN_Y: return F_sub(g, REC(lb, fa), REC(la, fb));
  default: { /* g00 Im(l̄a fa) + g11 Im(l̄b fb) + Im(l̄a g01 fb) + Im(l̄b conj(g01) fa) */
    double x = gb->v[1][0], y = gb->v[1][1];
    LLVMValueRef t = K_mul(g, gb->v[0][0], IMC(la, fa));
    t = F_add(g, t, K_mul(g, gb->v[3][0], IMC(lb, fb)));
    t = F_add(g, t, K_mul(g, x, F_add(g, IMC(la, fb), IMC(lb, fa))));
    t = F_add(g, t, K_mul(g, y, F_sub(g, REC(la, fb), REC(lb, fa))));
    return t ? t : vzero(g, g->VT);
  }
  }
#undef IMC
#undef REC
}

/* A private constant i32 array (deduplicated by content). */
static LLVMValueRef const_table(gen *g, const uint32_t *v, int n) {
  char key[512];
  int kl = snprintf(key, sizeof key, "T|");
  for (int j = 0; j < n && kl < (int)sizeof key - 16; j++) kl += snprintf(key + kl, sizeof key - (size_t)kl, "%x,", v[j]);
  if (kl >= (int)sizeof key - 16) snprintf(key, sizeof key, "T|unique%d", g->counter++);
  fcache *e = cache_find(g, key);
  if (e) return e->fn;
  LLVMValueRef *el = malloc(sizeof(LLVMValueRef) * (size_t)(n + 1));
  if (!el) { g->failed = 1; return LLVMConstNull(g->ptr); }
  for (int j = 0; j < n; j++) el[j] = ci32(g, v[j]);
  LLVMTypeRef ty = LLVMArrayType(g->i32, (unsigned)n);
  LLVMValueRef gv = LLVMAddGlobal(g->M, ty, "qkd.tab");
  LLVMSetInitializer(gv, LLVMConstArray(g->i32, el, (unsigned)n));
  free(el);
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  LLVMSetUnnamedAddr(gv, 1);
  cache_add(g, key, gv, ty);
  return gv;
}

static void no_inline(gen *g, LLVMValueRef fn) {
  unsigned k = LLVMGetEnumAttributeKindForName("noinline", 8);
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(g->C, k, 0));
}

/* Starts an internal, never-inlined helper: saves the builder position (*sp) and positions the
 * builder in its entry block. */
static LLVMValueRef begin_helper(gen *g, const char *base, LLVMTypeRef fty, savepos *sp) {
  char name[64];
  snprintf(name, sizeof name, "qkd.%s.%s.%d", base, g->f32 ? "f32" : "f64", g->counter++);
  LLVMValueRef fn = LLVMAddFunction(g->M, name, fty);
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  fn_attrs(g, fn);
  no_inline(g, fn);
  *sp = pos_save(g);
  g->fn = fn;
  LLVMPositionBuilderAtEnd(g->B, LLVMAppendBasicBlockInContext(g->C, fn, "entry"));
  return fn;
}

/* Returns (creating on first use) the helper for a PAIR op in `mode` (0 fwd on one state, 1 bwd
 * on φ and λ, 2 bwd with the overlap of generator gk, returned). The helper is specialised on the
 * arithmetic only (which of the 8 matrix parts are zero, constant or variable); the amplitude
 * walk (base, flip mask, pair count, Gray-code step table) comes as arguments, so one helper
 * serves every qubit and basis map (keeps the module, and compile time, small). Variable matrix
 * parts become <V x T> arguments, listed in args[] (count in *nargs). */
static LLVMValueRef pair_helper(gen *g, int mode, const genblk *gb, LLVMValueRef *parts, LLVMValueRef *args,
                                int *nargs, LLVMTypeRef *fty_out) {
  char key[512];
  int vec = 0;
  for (int i = 0; i < 8; i++) vec |= parts[i] && !LLVMIsAConstantFP(parts[i]) && is_vec(parts[i]);
  int kl = snprintf(key, sizeof key, "P%d|%d|%d|%d", g->f32, mode, gb ? gb->code : GEN_NONE, vec);
  if (gb && gb->code == GEN_ANY)
    for (int i = 0; i < 4; i++) kl += snprintf(key + kl, sizeof key - (size_t)kl, "|g%a,%a", gb->v[i][0], gb->v[i][1]);
  *nargs = 0;
  for (int i = 0; i < 8; i++) {
    LLVMValueRef v = parts[i];
    if (!v) { kl += snprintf(key + kl, sizeof key - (size_t)kl, "|0"); continue; }
    if (LLVMIsAConstantFP(v)) {
      LLVMBool lose;
      kl += snprintf(key + kl, sizeof key - (size_t)kl, "|c%a", LLVMConstRealGetDouble(v, &lose));
      continue;
    }
    kl += snprintf(key + kl, sizeof key - (size_t)kl, "|a");
    args[(*nargs)++] = v;
  }
  fcache *e = cache_find(g, key);
  if (e) { *fty_out = e->ty; return e->fn; }

  int nst = mode == 0 ? 1 : 2;
  LLVMTypeRef pt[2 + 4 + 8];
  int np = 0;
  for (int i = 0; i < nst; i++) pt[np++] = g->ptr;
  pt[np++] = g->i32; /* pbase */
  pt[np++] = g->i32; /* pflip */
  pt[np++] = g->i32; /* pairs */
  pt[np++] = g->ptr; /* Gray-code steps */
  for (int i = 0; i < *nargs; i++) pt[np++] = vec ? g->VT : g->T; /* scalars splat inside */
  LLVMTypeRef fty = LLVMFunctionType(mode == 2 ? g->VT : g->vd, pt, (unsigned)np, 0);
  savepos sp;
  LLVMValueRef fn = begin_helper(g, "pair", fty, &sp);
  LLVMValueRef pbase = LLVMGetParam(fn, (unsigned)nst), pflip = LLVMGetParam(fn, (unsigned)nst + 1),
               pairs = LLVMGetParam(fn, (unsigned)nst + 2), dtab = LLVMGetParam(fn, (unsigned)nst + 3);
  LLVMValueRef mp[8];
  int ai = 0;
  for (int i = 0; i < 8; i++) {
    if (!parts[i]) mp[i] = NULL;
    else if (LLVMIsAConstantFP(parts[i])) mp[i] = splat(g, parts[i]);
    else mp[i] = splat(g, LLVMGetParam(fn, (unsigned)(nst + 4 + ai++)));
  }
  LLVMValueRef st[2] = {LLVMGetParam(fn, 0), nst > 1 ? LLVMGetParam(fn, 1) : NULL};
  loop L;
  LLVMValueRef init[2] = {pbase, vzero(g, g->VT)};
  loop_begin(g, &L, pairs, mode == 2 ? 2 : 1, init);
  LLVMValueRef p = L.phi[0], q = LLVMBuildXor(g->B, p, pflip, "");
  cx a[2], b[2];
  for (int s = 0; s < nst; s++) { a[s] = amp_load(g, st[s], p); b[s] = amp_load(g, st[s], q); }
  LLVMValueRef acc = NULL;
  if (mode == 2) acc = F_add(g, L.phi[1], overlap(g, gb, a[0], b[0], a[1], b[1]));
  for (int s = 0; s < nst; s++) {
    pair_apply(g, mp, &a[s], &b[s]);
    amp_store(g, st[s], p, a[s]);
    amp_store(g, st[s], q, b[s]);
  }
  LLVMValueRef inc = LLVMBuildAdd(g->B, L.iv, ci32(g, 1), "");
  LLVMValueRef step = load(g, g->i32, gep(g, g->i32, dtab, cttz(g, inc)), 4);
  LLVMValueRef next[2] = {LLVMBuildXor(g->B, p, step, ""), acc};
  loop_end(g, &L, next);
  if (mode == 2) LLVMBuildRet(g->B, acc);
  else LLVMBuildRetVoid(g->B);
  pos_restore(g, sp);
  cache_add(g, key, fn, fty);
  *fty_out = fty;
  return fn;
}

/* Emits the call of a PAIR helper with matrix M (fwd: U on s0; bwd: U† on φ = s0, λ = s1, maybe
 * the overlap) on the pairs (p, p ^ pflip), p = pbase ^ (Gray-code walk over D[0..log2 pairs)). */
static LLVMValueRef pair_call_at(gen *g, int mode, const genblk *gb, const cx M[4], LLVMValueRef s0,
                                 LLVMValueRef s1, LLVMValueRef pbase, uint32_t pflip, int nD, const uint32_t *D) {
  LLVMValueRef parts[8] = {M[0].re, M[0].im, M[1].re, M[1].im, M[2].re, M[2].im, M[3].re, M[3].im};
  LLVMValueRef vargs[8];
  int nargs;
  LLVMTypeRef fty;
  LLVMValueRef fn = pair_helper(g, mode, gb, parts, vargs, &nargs, &fty);
  LLVMValueRef a[14];
  int na = 0;
  a[na++] = s0;
  if (mode) a[na++] = s1;
  a[na++] = pbase;
  a[na++] = ci32(g, pflip);
  a[na++] = ci32(g, 1LL << nD);
  a[na++] = const_table(g, D, nD + 1);
  int vec = 0;
  for (int i = 0; i < nargs; i++) vec |= is_vec(vargs[i]);
  for (int i = 0; i < nargs; i++) a[na++] = vec ? splat(g, vargs[i]) : vargs[i];
  return LLVMBuildCall2(g->B, fty, fn, a, (unsigned)na, "");
}

/* A PAIR op over the whole state. */
static LLVMValueRef pair_call(gen *g, const jit_op *op, int mode, const genblk *gb, const cx M[4],
                              LLVMValueRef s0, LLVMValueRef s1) {
  return pair_call_at(g, mode, gb, M, s0, s1, ci32(g, op->pbase), op->pflip, op->nfree, op->D);
}

/* A PAIR op of a blocked group (jit_internal.h) in the coset of representative c (i32). */
static LLVMValueRef pair_call_coset(gen *g, const jit_op *op, const jit_opblk *ob, int dim, int mode,
                                    const genblk *gb, const cx M[4], LLVMValueRef s0, LLVMValueRef s1,
                                    LLVMValueRef c) {
  LLVMValueRef off = parity(g, c, ob->r);
  if (ob->v) off = LLVMBuildNot(g->B, off, "");
  LLVMValueRef pb = LLVMBuildXor(g->B, c, LLVMBuildSelect(g->B, off, ci32(g, op->pflip), ci32(g, 0), ""), "");
  return pair_call_at(g, mode, gb, M, s0, s1, pb, op->pflip, dim - 1, ob->D);
}

/* ---- DIAG helpers ------------------------------------------------------------------------- */

/* The amplitude loop of a DIAG helper: linear over the whole state (walk == 0), or (walk == 1) a
 * Gray-code walk of one coset: p = base ^ ..., count amplitudes, steps table (count = 2^k,
 * steps[k] = 0), from the helper's parameters wp[0..3). L->phi[0] is p; extra phis follow. */
static LLVMValueRef walk_begin(gen *g, loop *L, int walk, const LLVMValueRef *wp, int nphi, LLVMValueRef *init) {
  if (!walk) {
    loop_begin(g, L, ci32(g, g->N), nphi, init);
    return L->iv;
  }
  LLVMValueRef all[MAXPHI];
  all[0] = wp[0];
  for (int k = 0; k < nphi; k++) all[k + 1] = init[k];
  loop_begin(g, L, wp[1], nphi + 1, all);
  return L->phi[0];
}
static void walk_end(gen *g, loop *L, int walk, const LLVMValueRef *wp, LLVMValueRef p, LLVMValueRef *next) {
  if (!walk) { loop_end(g, L, next); return; }
  LLVMValueRef all[MAXPHI];
  LLVMValueRef inc = LLVMBuildAdd(g->B, L->iv, ci32(g, 1), "");
  all[0] = LLVMBuildXor(g->B, p, load(g, g->i32, gep(g, g->i32, wp[2], cttz(g, inc)), 4), "");
  for (int k = 1; k < L->nphi; k++) all[k] = next[k - 1];
  loop_end(g, L, all);
}

/* Forward: st[p] *= table[p] (scalar complex table, physical order), over the whole state or
 * (walk) one coset: extra parameters base, count, steps. Shared by all runs. */
static LLVMValueRef diag_fwd_helper(gen *g, int walk, LLVMTypeRef *fty_out) {
  char key[32];
  snprintf(key, sizeof key, "Df%d|%d", g->f32, walk);
  fcache *e = cache_find(g, key);
  if (e) { *fty_out = e->ty; return e->fn; }
  LLVMTypeRef pt[5] = {g->ptr, g->ptr, g->i32, g->i32, g->ptr};
  LLVMTypeRef fty = LLVMFunctionType(g->vd, pt, walk ? 5 : 2, 0);
  savepos sp;
  LLVMValueRef fn = begin_helper(g, "diag", fty, &sp);
  LLVMValueRef st = LLVMGetParam(fn, 0), tab = LLVMGetParam(fn, 1);
  LLVMValueRef wp[3] = {walk ? LLVMGetParam(fn, 2) : NULL, walk ? LLVMGetParam(fn, 3) : NULL, walk ? LLVMGetParam(fn, 4) : NULL};
  loop L;
  LLVMValueRef p = walk_begin(g, &L, walk, wp, 0, NULL);
  unsigned ts = g->f32 ? 4 : 8;
  LLVMValueRef i2 = LLVMBuildShl(g->B, p, ci32(g, 1), "");
  cx t = {splat(g, load(g, g->T, gep(g, g->T, tab, i2), ts)),
          splat(g, load(g, g->T, gep(g, g->T, tab, LLVMBuildOr(g->B, i2, ci32(g, 1), "")), ts))};
  amp_store(g, st, p, C_mul(g, amp_load(g, st, p), t));
  walk_end(g, &L, walk, wp, p, NULL);
  LLVMBuildRetVoid(g->B);
  pos_restore(g, sp);
  cache_add(g, key, fn, fty);
  *fty_out = fty;
  return fn;
}

/* parity(p & m) as i1 for a run-time mask */
static LLVMValueRef parity_rt(gen *g, LLVMValueRef p, LLVMValueRef m) {
  return LLVMBuildTrunc(g->B, call1(g, "llvm.ctpop", LLVMBuildAnd(g->B, p, m, "")), g->i1, "");
}

/* A logical mask at an op's position: the XOR of the op's physical rows of its bits. */
static uint32_t phys_mask(gen *g, const jit_op *op, uint32_t logical) {
  uint32_t m = 0;
  for (int j = 0; j < g->n; j++)
    if (logical >> j & 1) m ^= op->row[j];
  return m;
}

/* The generator of a gate in a DIAG run, in its jit_diag_form: Im<λ|G|φ> sums, over the basis
 * states where the control mask (if any) has parity 1, (parity of the target mask ? g1 : g0)
 * times Im(conj λ φ). type: 'z' (no control, g0 = 1, g1 = −1: Z, Z⊗Z), 'c' (controlled, 1, −1:
 * CRZ), 'g' / 'h' (no control / controlled, any constants). */
typedef struct {
  char type;
  double g0, g1;
} dgrad;

/* The (target, control) physical masks and generators of a run's PARAM gates. */
static int diag_grad_masks(gen *g, const jit_op *op, uint32_t *m, dgrad *dg) {
  int ng = 0, n = g->n;
  for (int i = 0; i < op->n_gates; i++) {
    const qkd_ir_gate *gt = &g->ir->gates[op->gates[i]];
    if (gt->angle[0].kind != QKD_ANGLE_PARAM) continue;
    const qkd_gate_info *info = qkd_gate(gt->kind);
    jit_diag_form f;
    jit_diag_form_of(gt, n, &f); /* the planner put it in the run: it has a form */
    int D = 1 << info->qubits;
    double g0 = info->gen[f.p0 * D + f.p0].re, g1 = info->gen[f.p1 * D + f.p1].re;
    m[2 * ng] = phys_mask(g, op, f.tm);
    m[2 * ng + 1] = phys_mask(g, op, f.cm);
    int std = g0 == 1.0 && g1 == -1.0;
    dg[ng++] = (dgrad){f.cm ? (std ? 'c' : 'h') : (std ? 'z' : 'g'), g0, g1};
  }
  return ng;
}

/* Backward over a run: the overlaps Im<λ|G_j|φ> of its PARAM gates (G_j diagonal, dgrad) written
 * to out[j] (<V x T>), then φ, λ *= conj(table). Specialised on the gate count and the gates'
 * dgrad; the masks come as a table argument. walk: over one coset (extra parameters base,
 * count, steps), the overlaps added to out[j]. */
static LLVMValueRef diag_bwd_helper(gen *g, const dgrad *dg, int ng, int walk, LLVMTypeRef *fty_out) {
  size_t cap = 32 + (size_t)ng * 64, kl;
  char *key = malloc(cap);
  if (!key) { g->failed = 1; key = NULL; }
  kl = key ? (size_t)snprintf(key, cap, "Db%d|%d|", g->f32, walk) : 0;
  for (int j = 0; key && j < ng; j++) {
    if (dg[j].type == 'z' || dg[j].type == 'c') kl += (size_t)snprintf(key + kl, cap - kl, "%c", dg[j].type);
    else kl += (size_t)snprintf(key + kl, cap - kl, "%c(%a,%a)", dg[j].type, dg[j].g0, dg[j].g1);
  }
  fcache *e = key ? cache_find(g, key) : NULL;
  if (e) { free(key); *fty_out = e->ty; return e->fn; }
  LLVMTypeRef pt[8] = {g->ptr, g->ptr, g->ptr, g->ptr, g->ptr, g->i32, g->i32, g->ptr};
  LLVMTypeRef fty = LLVMFunctionType(g->vd, pt, walk ? 8 : 5, 0);
  savepos sp;
  LLVMValueRef fn = begin_helper(g, "diagbwd", fty, &sp);
  LLVMValueRef phi = LLVMGetParam(fn, 0), lam = LLVMGetParam(fn, 1), tab = LLVMGetParam(fn, 2),
               out = LLVMGetParam(fn, 3), masks = LLVMGetParam(fn, 4);
  LLVMValueRef wp[3] = {walk ? LLVMGetParam(fn, 5) : NULL, walk ? LLVMGetParam(fn, 6) : NULL, walk ? LLVMGetParam(fn, 7) : NULL};
  /* accumulators: in registers (phis) when few, else in the out[] array */
  int inreg = ng + walk <= MAXPHI;
  LLVMValueRef init[MAXPHI], tm[MAXPHI], cm[MAXPHI];
  for (int j = 0; j < ng && inreg; j++) {
    init[j] = walk ? load(g, g->VT, gepc(g, g->VT, out, j), (unsigned)g->VB) : vzero(g, g->VT);
    tm[j] = load(g, g->i32, gepc(g, g->i32, masks, 2 * j), 4);
    cm[j] = load(g, g->i32, gepc(g, g->i32, masks, 2 * j + 1), 4);
  }
  if (!inreg && !walk)
    for (int j = 0; j < ng; j++) store(g, vzero(g, g->VT), gepc(g, g->VT, out, j), (unsigned)g->VB);
  loop L;
  LLVMValueRef p = walk_begin(g, &L, walk, wp, inreg ? ng : 0, init);
  cx f = amp_load(g, phi, p), l = amp_load(g, lam, p);
  LLVMValueRef w = ng ? F_sub(g, F_mul(g, l.re, f.im), F_mul(g, l.im, f.re)) : NULL;
  LLVMValueRef next[MAXPHI];
  for (int j = 0; j < ng; j++) {
    LLVMValueRef acc = inreg ? L.phi[j + walk] : load(g, g->VT, gepc(g, g->VT, out, j), (unsigned)g->VB);
    LLVMValueRef tmj = inreg ? tm[j] : load(g, g->i32, gepc(g, g->i32, masks, 2 * j), 4);
    LLVMValueRef nv;
    if (dg[j].type == 'z' || dg[j].type == 'c') {
      nv = LLVMBuildSelect(g->B, parity_rt(g, p, tmj), F_sub(g, acc, w), F_add(g, acc, w), "");
    } else {
      LLVMValueRef v0 = K_mul(g, dg[j].g0, w), v1 = K_mul(g, dg[j].g1, w);
      nv = F_add(g, acc, LLVMBuildSelect(g->B, parity_rt(g, p, tmj), or_zero(g, v1, g->VT), or_zero(g, v0, g->VT), ""));
    }
    if (dg[j].type == 'c' || dg[j].type == 'h') {
      LLVMValueRef cmj = inreg ? cm[j] : load(g, g->i32, gepc(g, g->i32, masks, 2 * j + 1), 4);
      nv = LLVMBuildSelect(g->B, parity_rt(g, p, cmj), nv, acc, "");
    }
    if (inreg) next[j] = nv;
    else store(g, nv, gepc(g, g->VT, out, j), (unsigned)g->VB);
  }
  unsigned ts = g->f32 ? 4 : 8;
  LLVMValueRef i2 = LLVMBuildShl(g->B, p, ci32(g, 1), "");
  cx t = {splat(g, load(g, g->T, gep(g, g->T, tab, i2), ts)),
          F_neg(g, splat(g, load(g, g->T, gep(g, g->T, tab, LLVMBuildOr(g->B, i2, ci32(g, 1), "")), ts)))};
  amp_store(g, phi, p, C_mul(g, f, t));
  amp_store(g, lam, p, C_mul(g, l, t));
  walk_end(g, &L, walk, wp, p, next);
  if (inreg)
    for (int j = 0; j < ng; j++) store(g, next[j], gepc(g, g->VT, out, j), (unsigned)g->VB);
  LLVMBuildRetVoid(g->B);
  pos_restore(g, sp);
  if (key) cache_add(g, key, fn, fty);
  free(key);
  *fty_out = fty;
  return fn;
}

/* The phase-table helper: tab[p] = Π_j (parity(p & cm_j) or cm_j == 0 ? (parity(p & tm_j) ? d1_j : d0_j) : 1)
 * for p < 2^n, with ph[j] = {d0.re, d0.im, d1.re, d1.im} (T) and masks[j] = {tm_j, cm_j}. One
 * helper per precision; the gates are a run-time loop (built once per kernel call). */
static LLVMValueRef diag_table_helper(gen *g, LLVMTypeRef *fty_out) {
  char key[32];
  snprintf(key, sizeof key, "Dt%d", g->f32);
  fcache *e = cache_find(g, key);
  if (e) { *fty_out = e->ty; return e->fn; }
  LLVMTypeRef pt[4] = {g->ptr, g->ptr, g->ptr, g->i32};
  LLVMTypeRef fty = LLVMFunctionType(g->vd, pt, 4, 0);
  savepos sp;
  LLVMValueRef fn = begin_helper(g, "diagtab", fty, &sp);
  LLVMValueRef tab = LLVMGetParam(fn, 0), ph = LLVMGetParam(fn, 1), masks = LLVMGetParam(fn, 2),
               ng = LLVMGetParam(fn, 3);
  unsigned ts = g->f32 ? 4 : 8;
  loop L;
  loop_begin(g, &L, ci32(g, g->N), 0, NULL);
  LLVMValueRef p = L.iv;
  loop J;
  LLVMValueRef init[2] = {cT(g, 1.0), cT(g, 0.0)};
  loop_begin(g, &J, ng, 2, init); /* ng ≥ 1 */
  LLVMValueRef j2 = LLVMBuildShl(g->B, J.iv, ci32(g, 1), ""), j4 = LLVMBuildShl(g->B, J.iv, ci32(g, 2), "");
  LLVMValueRef tm = load(g, g->i32, gep(g, g->i32, masks, j2), 4);
  LLVMValueRef cm = load(g, g->i32, gep(g, g->i32, masks, LLVMBuildOr(g->B, j2, ci32(g, 1), "")), 4);
  LLVMValueRef tb = parity_rt(g, p, tm);
  LLVMValueRef on = LLVMBuildOr(g->B, LLVMBuildICmp(g->B, LLVMIntEQ, cm, ci32(g, 0), ""), parity_rt(g, p, cm), "");
  LLVMValueRef sel = LLVMBuildSelect(g->B, tb, ci32(g, 2), ci32(g, 0), "");
  LLVMValueRef re = load(g, g->T, gep(g, g->T, ph, LLVMBuildAdd(g->B, j4, sel, "")), ts);
  LLVMValueRef im = load(g, g->T, gep(g, g->T, ph, LLVMBuildAdd(g->B, j4, LLVMBuildOr(g->B, sel, ci32(g, 1), ""), "")), ts);
  cx d = {LLVMBuildSelect(g->B, on, re, cT(g, 1.0), ""), LLVMBuildSelect(g->B, on, im, cT(g, 0.0), "")};
  cx acc = {J.phi[0], J.phi[1]};
  cx r = C_mul(g, acc, d);
  LLVMValueRef nx[2] = {r.re, r.im};
  loop_end(g, &J, nx);
  LLVMValueRef i2 = LLVMBuildShl(g->B, p, ci32(g, 1), "");
  store(g, nx[0], gep(g, g->T, tab, i2), ts);
  store(g, nx[1], gep(g, g->T, tab, LLVMBuildOr(g->B, i2, ci32(g, 1), "")), ts);
  loop_end(g, &L, NULL);
  LLVMBuildRetVoid(g->B);
  pos_restore(g, sp);
  cache_add(g, key, fn, fty);
  *fty_out = fty;
  return fn;
}

/* A diagonal gate's entries {d0.re, d0.im, d1.re, d1.im} (the patterns of its jit_diag_form f)
 * from c = cos, s = sin of half its angle. */
static void diag_entries(gen *g, const qkd_ir_gate *gt, const jit_diag_form *f, LLVMValueRef c, LLVMValueRef s,
                         LLVMValueRef v[4]) {
  const qkd_gate_info *info = qkd_gate(gt->kind);
  int D = 1 << info->qubits;
  cx d0 = entry_val(g, &info->m[f->p0 * D + f->p0], c, s), d1 = entry_val(g, &info->m[f->p1 * D + f->p1], c, s);
  v[0] = or_zero(g, d0.re, g->T);
  v[1] = or_zero(g, d0.im, g->T);
  v[2] = or_zero(g, d1.re, g->T);
  v[3] = or_zero(g, d1.im, g->T);
}

/* Builds a run's phase table (prologue): the gates' diagonal entries into ph (scratch, 4 T per
 * gate), then the table helper. PARAM gates of one kind and form share one loop over a table of
 * (cos/sin slot, ph slot) pairs instead of a copy of the code each (compile time). */
static void diag_table(gen *g, const jit_op *op, LLVMValueRef params, LLVMValueRef tab, LLVMValueRef ph) {
  const qkd_ir_circuit *ir = g->ir;
  int n = g->n, ng = op->n_gates;
  unsigned ts = g->f32 ? 4 : 8;
  uint32_t *mk = calloc((size_t)ng * 2 + 2, sizeof(uint32_t)), *sl = calloc((size_t)ng * 2 + 2, sizeof(uint32_t));
  jit_diag_form *f = calloc((size_t)ng + 1, sizeof *f);
  char *done = calloc((size_t)ng + 1, 1);
  if (!mk || !sl || !f || !done) { free(mk); free(sl); free(f); free(done); g->failed = 1; return; }
  for (int i = 0; i < ng; i++) {
    jit_diag_form_of(&ir->gates[op->gates[i]], n, &f[i]); /* the planner put it in the run: it has a form */
    mk[2 * i] = phys_mask(g, op, f[i].tm);
    mk[2 * i + 1] = phys_mask(g, op, f[i].cm);
  }
  for (int i = 0; i < ng; i++) {
    if (done[i]) continue;
    const qkd_ir_gate *gt = &ir->gates[op->gates[i]];
    int same = 0;
    for (int j = i; j < ng && gt->angle[0].kind == QKD_ANGLE_PARAM; j++) {
      const qkd_ir_gate *gj = &ir->gates[op->gates[j]];
      if (gj->kind != gt->kind || gj->angle[0].kind != QKD_ANGLE_PARAM || f[j].p0 != f[i].p0 || f[j].p1 != f[i].p1)
        continue;
      sl[2 * same] = (uint32_t)(2 * (gj - ir->gates));
      sl[2 * same + 1] = (uint32_t)(4 * j);
      same++;
      done[j] = 1;
    }
    LLVMValueRef c, s, v[4];
    if (same < 2) {
      gate_cs(g, gt, params, NULL, &c, &s);
      diag_entries(g, gt, &f[i], c, s, v);
      for (int k = 0; k < 4; k++) store(g, v[k], gepc(g, g->T, ph, 4 * i + k), ts);
      done[i] = 1;
      continue;
    }
    LLVMValueRef st = const_table(g, sl, 2 * same);
    loop L;
    loop_begin(g, &L, ci32(g, same), 0, NULL);
    LLVMValueRef k2 = LLVMBuildShl(g->B, L.iv, ci32(g, 1), "");
    LLVMValueRef ci = load(g, g->i32, gep(g, g->i32, st, k2), 4);
    LLVMValueRef pi = load(g, g->i32, gep(g, g->i32, st, LLVMBuildOr(g->B, k2, ci32(g, 1), "")), 4);
    c = load(g, g->T, gep(g, g->T, g->cs, ci), ts);
    s = load(g, g->T, gep(g, g->T, g->cs, LLVMBuildOr(g->B, ci, ci32(g, 1), "")), ts);
    diag_entries(g, gt, &f[i], c, s, v);
    for (int k = 0; k < 4; k++) store(g, v[k], gep(g, g->T, ph, LLVMBuildAdd(g->B, pi, ci32(g, k), "")), ts);
    loop_end(g, &L, NULL);
  }
  LLVMTypeRef fty;
  LLVMValueRef fn = diag_table_helper(g, &fty);
  LLVMValueRef a[4] = {tab, ph, const_table(g, mk, 2 * ng), ci32(g, ng)};
  LLVMBuildCall2(g->B, fty, fn, a, 4, "");
  free(mk);
  free(sl);
  free(f);
  free(done);
}

/* ---- workspace layout --------------------------------------------------------------------- */

typedef struct {
  uint64_t phi, lam, tab_f, tab_b, ph, cs, featbuf, dfacc, outbuf, gacc, dout, probs, outd, total;
} layout;

static uint64_t r64(uint64_t x) { return (x + 63) & ~(uint64_t)63; }

static layout make_layout(gen *g, const jit_plan *pf, const jit_plan *pb) {
  const qkd_ir_circuit *ir = g->ir;
  uint64_t ts = g->f32 ? 4 : 8, off = 0, st = (uint64_t)g->N * 2 * (uint64_t)g->VB;
  uint64_t nout = (uint64_t)qkd_ir_outputs(ir), nf = (uint64_t)ir->n_features;
  uint64_t nob = nout > g->N ? nout : g->N;
  layout L;
  L.phi = off; off += r64(st);
  L.lam = off; off += r64(st);
  L.tab_f = off; off += r64((uint64_t)pf->n_tables * g->N * 2 * ts);
  L.tab_b = off; off += r64((uint64_t)pb->n_tables * g->N * 2 * ts);
  L.ph = off; off += r64((uint64_t)(ir->n_gates + 1) * 4 * ts);
  L.cs = off; off += r64((uint64_t)(ir->n_gates + 1) * 2 * ts);
  L.featbuf = off; off += r64((nf + 1) * (uint64_t)g->VB);
  L.dfacc = off; off += r64((nf + 1) * (uint64_t)g->VB);
  L.outbuf = off; off += r64((nob + 1) * (uint64_t)g->VB);
  L.gacc = off; off += r64((uint64_t)(ir->n_params + 1) * (uint64_t)g->VB);
  L.dout = off; off += r64((uint64_t)(ir->n_gates + 1) * (uint64_t)g->VB);
  L.probs = off; off += ir->shots > 0 ? r64((uint64_t)g->N * 8) : 0;
  L.outd = off; off += ir->shots > 0 ? r64(nout * 8) : 0;
  L.total = off + 64;
  return L;
}

/* Entry: the 64-aligned scratch base (the workspace, or qkd_jit_scratch / malloc). */
static LLVMValueRef scratch_base(gen *g, LLVMValueRef ws, const layout *L, LLVMValueRef *to_free) {
  *to_free = NULL;
  size_t have = qkd_kernel_workspace_bytes(g->ir);
  LLVMValueRef base = ws;
  if (L->total > have) {
    LLVMTypeRef at = g->i64;
    LLVMTypeRef fty = LLVMFunctionType(g->ptr, &at, 1, 0);
    const char *fname = g->cfg->scratch == JIT_SCRATCH_TLS ? "qkd_jit_scratch" : "malloc";
    LLVMValueRef f = LLVMGetNamedFunction(g->M, fname);
    if (!f) f = LLVMAddFunction(g->M, fname, fty);
    LLVMValueRef a = ci64(g, (long long)L->total);
    base = LLVMBuildCall2(g->B, fty, f, &a, 1, "scratch");
    if (g->cfg->scratch != JIT_SCRATCH_TLS) *to_free = base;
  }
  LLVMValueRef pi = LLVMBuildPtrToInt(g->B, base, g->i64, "");
  pi = LLVMBuildAnd(g->B, LLVMBuildAdd(g->B, pi, ci64(g, 63), ""), ci64(g, ~63LL), "");
  return LLVMBuildIntToPtr(g->B, pi, g->ptr, "ws");
}
static void scratch_free(gen *g, LLVMValueRef to_free) {
  if (!to_free) return;
  LLVMTypeRef at = g->ptr;
  LLVMTypeRef fty = LLVMFunctionType(g->vd, &at, 1, 0);
  LLVMValueRef f = LLVMGetNamedFunction(g->M, "free");
  if (!f) f = LLVMAddFunction(g->M, "free", fty);
  LLVMBuildCall2(g->B, fty, f, &to_free, 1, "");
}
static LLVMValueRef region(gen *g, LLVMValueRef base, uint64_t off) {
  LLVMValueRef o = ci64(g, (long long)off);
  return LLVMBuildGEP2(g->B, LLVMInt8TypeInContext(g->C), base, &o, 1, "");
}

/* ---- shared pieces of the entry points ---------------------------------------------------- */

static int same_run(const jit_op *a, const jit_op *b, int n) {
  if (a->n_gates != b->n_gates || memcmp(a->row, b->row, (size_t)n * sizeof(uint32_t)) != 0) return 0;
  return memcmp(a->gates, b->gates, (size_t)a->n_gates * sizeof(int)) == 0;
}

/* Prologue for one plan: fixed group matrices (into mats[op][4]) and diagonal tables (tabp[t]
 * points at table t; a run identical to one of plan `other` reuses that plan's table). */
static void prologue(gen *g, const jit_plan *pl, LLVMValueRef params, LLVMValueRef tabs, LLVMValueRef ph,
                     cx (*mats)[4], LLVMValueRef *tabp, const jit_plan *other, LLVMValueRef *other_tabp) {
  for (int o = 0; o < pl->n_ops; o++) {
    const jit_op *op = &pl->ops[o];
    if (op->kind == JIT_OP_PAIR && mats && !group_has_feature(g->ir, op)) {
      group_mat(g, op, params, NULL, mats[o]);
    } else if (op->kind == JIT_OP_DIAG) {
      tabp[op->table] = NULL;
      for (int k = 0; other && k < other->n_ops && !tabp[op->table]; k++)
        if (other->ops[k].kind == JIT_OP_DIAG && same_run(op, &other->ops[k], g->n))
          tabp[op->table] = other_tabp[other->ops[k].table];
      if (!tabp[op->table]) {
        tabp[op->table] = region(g, tabs, (uint64_t)op->table * g->N * 2 * (g->f32 ? 4 : 8));
        diag_table(g, op, params, tabp[op->table], ph);
      }
    }
  }
}

/* rows_a[l] = base + (b0+l)*width  (rows_a: [V x ptr]; only lanes < the live count are used). */
static void tile_rows(gen *g, LLVMValueRef rows_a, LLVMValueRef base, LLVMValueRef b0, int width) {
  for (int l = 0; l < g->V; l++) {
    LLVMValueRef idx = LLVMBuildMul(g->B, LLVMBuildZExt(g->B, LLVMBuildAdd(g->B, b0, ci32(g, l), ""), g->i64, ""),
                                    ci64(g, width), "");
    store(g, LLVMBuildGEP2(g->B, g->T, base, &idx, 1, "row"), gepc(g, g->ptr, rows_a, l), 8);
  }
}

/* dir 0: buf[k] (<V x T>) lane l = rows[l][k]; dir 1: rows[l][k] = buf[k] lane l; for k < count
 * and l < nlanes (a run-time count, may be 0). */
static void transpose(gen *g, LLVMValueRef buf, LLVMValueRef rows_a, int count, int dir, LLVMValueRef nlanes) {
  if (count <= 0) return;
  unsigned ts = g->f32 ? 4 : 8;
  LLVMBasicBlockRef b_go = LLVMAppendBasicBlockInContext(g->C, g->fn, "tr");
  LLVMBasicBlockRef b_after = LLVMAppendBasicBlockInContext(g->C, g->fn, "tr.end");
  LLVMBuildCondBr(g->B, LLVMBuildICmp(g->B, LLVMIntSGT, nlanes, ci32(g, 0), ""), b_go, b_after);
  LLVMPositionBuilderAtEnd(g->B, b_go);
  loop L;
  loop_begin(g, &L, nlanes, 0, NULL);
  LLVMValueRef row = load(g, g->ptr, gep(g, g->ptr, rows_a, L.iv), 8);
  loop K;
  loop_begin(g, &K, ci32(g, count), 0, NULL);
  LLVMValueRef bi = gep(g, g->T, buf, LLVMBuildAdd(g->B, LLVMBuildMul(g->B, K.iv, ci32(g, g->V), ""), L.iv, ""));
  LLVMValueRef ri = gep(g, g->T, row, K.iv);
  if (dir == 0) store(g, load(g, g->T, ri, ts), bi, ts);
  else store(g, load(g, g->T, bi, ts), ri, ts);
  loop_end(g, &K, NULL);
  loop_end(g, &L, NULL);
  LLVMBuildBr(g->B, b_after);
  LLVMPositionBuilderAtEnd(g->B, b_after);
}

/* Squared norm (as <V x double>) of the tile's amplitude-encoded features. */
static LLVMValueRef feat_norm2(gen *g, LLVMValueRef featbuf) {
  loop L;
  LLVMValueRef z = vzero(g, g->VD);
  loop_begin(g, &L, ci32(g, qkd_ir_amplitudes(g->ir)), 1, &z);
  LLVMValueRef x = load(g, g->VT, gep(g, g->VT, featbuf, L.iv), (unsigned)g->VB);
  if (g->f32) x = LLVMBuildFPExt(g->B, x, g->VD, "");
  LLVMValueRef nx = F_add(g, L.phi[0], F_mul(g, x, x));
  loop_end(g, &L, &nx);
  return nx;
}
/* 1/|x| per lane, 0 for an all-zero vector; *pos = |x| > 0. */
static LLVMValueRef inv_norm(gen *g, LLVMValueRef ss, LLVMValueRef *pos) {
  *pos = LLVMBuildFCmp(g->B, LLVMRealOGT, ss, vzero(g, g->VD), "");
  LLVMValueRef r = LLVMBuildFDiv(g->B, splat(g, LLVMConstReal(g->D, 1.0)), call1(g, "llvm.sqrt", ss), "");
  return LLVMBuildSelect(g->B, *pos, r, vzero(g, g->VD), "inv");
}
static LLVMValueRef to_T(gen *g, LLVMValueRef vd) { return g->f32 ? LLVMBuildFPTrunc(g->B, vd, g->VT, "") : vd; }
static LLVMValueRef to_D(gen *g, LLVMValueRef vt) { return g->f32 ? LLVMBuildFPExt(g->B, vt, g->VD, "") : vt; }

/* Initial tile state from featbuf. */
static void encode(gen *g, LLVMValueRef st, const tilectx *tc) {
  const qkd_ir_circuit *ir = g->ir;
  memzero(g, st, (uint64_t)g->N * 2 * (uint64_t)g->VB);
  LLVMValueRef one = splat(g, cT(g, 1.0));
  if (ir->encode != QKD_ENCODE_AMPLITUDE) {
    store(g, one, st, (unsigned)g->VB);
    return;
  }
  LLVMValueRef pos, inv = inv_norm(g, feat_norm2(g, tc->featbuf), &pos);
  loop L;
  loop_begin(g, &L, ci32(g, qkd_ir_amplitudes(ir)), 0, NULL);
  LLVMValueRef x = to_D(g, load(g, g->VT, gep(g, g->VT, tc->featbuf, L.iv), (unsigned)g->VB));
  store(g, to_T(g, LLVMBuildFMul(g->B, x, inv, "")),
        gep(g, g->VT, st, LLVMBuildShl(g->B, L.iv, ci32(g, 1), "")), (unsigned)g->VB);
  loop_end(g, &L, NULL);
  LLVMValueRef v0 = load(g, g->VT, st, (unsigned)g->VB);
  store(g, LLVMBuildSelect(g->B, pos, v0, one, ""), st, (unsigned)g->VB);
}

/* Physical position of logical index k under the final basis map. */
static LLVMValueRef phys(gen *g, const jit_plan *pl, LLVMValueRef k) {
  if (pl->identity_final) return k;
  LLVMValueRef p = ci32(g, 0);
  for (int j = 0; j < g->n; j++) {
    LLVMValueRef bit = LLVMBuildAnd(g->B, LLVMBuildLShr(g->B, k, ci32(g, j), ""), ci32(g, 1), "");
    LLVMValueRef m = LLVMBuildAnd(g->B, LLVMBuildNeg(g->B, bit, ""), ci32(g, (long long)pl->col[j]), "");
    p = LLVMBuildXor(g->B, p, m, "");
  }
  return p;
}

static layout make_layout(gen *g, const jit_plan *pf, const jit_plan *pb);

/* Cache blocking (jit_internal.h): the block dimension for a sweep over nstates tile states —
 * the largest whose block (2^dim amplitudes of each state) fits JIT_BLOCK_BYTES, used when the
 * states hold at least 4 blocks; cfg->block overrides (-1 never, k ≥ 1 always 2^k amplitudes). */
#define JIT_BLOCK_BYTES 32768
static int block_dim(gen *g, int nstates) {
  int req = g->cfg->block;
  if (req < 0) return 0;
  int d = req;
  if (req == 0) {
    uint64_t amp = 2 * (uint64_t)g->VB * (uint64_t)nstates;
    for (d = 0; (amp << (d + 1)) <= JIT_BLOCK_BYTES; d++) {}
    if (d < 1 || g->n < d + 2) return 0;
  }
  return d < g->n ? d : 0;
}

/* The coset loop of blocked group G: returns the representative c (i32); close with coset_end. */
static LLVMValueRef coset_begin(gen *g, loop *L, const jit_group *G) {
  LLVMValueRef z = ci32(g, 0);
  loop_begin(g, L, ci32(g, 1LL << (g->n - G->dim)), 1, &z);
  return L->phi[0];
}
static void coset_end(gen *g, loop *L, const jit_group *G) {
  LLVMValueRef inc = LLVMBuildAdd(g->B, L->iv, ci32(g, 1), "");
  LLVMValueRef step = load(g, g->i32, gep(g, g->i32, const_table(g, G->H, g->n - G->dim + 1), cttz(g, inc)), 4);
  LLVMValueRef next = LLVMBuildXor(g->B, L->phi[0], step, "");
  loop_end(g, L, &next);
}

/* A DIAG op's forward phase multiply: over the whole state, or (G blocked) the coset of c. */
static void diag_fwd_call(gen *g, LLVMValueRef st, LLVMValueRef tab, const jit_group *G, LLVMValueRef c) {
  int walk = G && G->dim > 0;
  LLVMTypeRef dty;
  LLVMValueRef df = diag_fwd_helper(g, walk, &dty);
  LLVMValueRef a[5] = {st, tab, c, walk ? ci32(g, 1LL << G->dim) : NULL, walk ? const_table(g, G->W, G->dim + 1) : NULL};
  LLVMBuildCall2(g->B, dty, df, a, walk ? 5 : 2, "");
}

/* The forward op sequence of plan pf as one internal function fwdops(st, base), shared by the
 * fwd and bwd entry points (the sequence is emitted once per precision: compile time). It reads
 * cos/sin from the angle table, the phase tables and the transposed features at their fixed
 * offsets from the scratch base (the entry's prologue fills them). Blocked groups run coset by
 * coset. */
static LLVMValueRef fwd_ops_fn(gen *g, const jit_plan *pf, const jit_plan *pb, LLVMTypeRef *fty_out) {
  char key[32];
  snprintf(key, sizeof key, "F%d", g->f32);
  fcache *e = cache_find(g, key);
  if (e) { *fty_out = e->ty; return e->fn; }
  LLVMTypeRef pt[2] = {g->ptr, g->ptr};
  LLVMTypeRef fty = LLVMFunctionType(g->vd, pt, 2, 0);
  savepos sp;
  LLVMValueRef fn = begin_helper(g, "fwdops", fty, &sp);
  LLVMValueRef st = LLVMGetParam(fn, 0), base = LLVMGetParam(fn, 1), cs_saved = g->cs;
  layout L = make_layout(g, pf, pb);
  g->cs = region(g, base, L.cs);
  tilectx tc = {region(g, base, L.featbuf)};
  jit_blocking bk;
  cx (*mats)[4] = calloc((size_t)pf->n_ops + 1, sizeof *mats);
  if (!mats || jit_block_plan(pf, g->n, block_dim(g, 1), &bk) != 0) {
    free(mats);
    g->failed = 1;
    LLVMBuildRetVoid(g->B);
    pos_restore(g, sp);
    return fn;
  }
  uint64_t tsz = (uint64_t)g->N * 2 * (g->f32 ? 4 : 8);
  for (int gi = 0; gi < bk.n_groups; gi++) {
    const jit_group *G = &bk.g[gi];
    for (int o = G->first; G->dim && o < G->first + G->count; o++) /* before the coset loop */
      if (pf->ops[o].kind == JIT_OP_PAIR) group_mat(g, &pf->ops[o], NULL, &tc, mats[o]);
    loop C;
    LLVMValueRef c = G->dim ? coset_begin(g, &C, G) : NULL;
    for (int o = G->first; o < G->first + G->count; o++) {
      const jit_op *op = &pf->ops[o];
      if (op->kind == JIT_OP_PAIR) {
        if (G->dim) {
          pair_call_coset(g, op, &bk.ob[o], G->dim, 0, NULL, mats[o], st, NULL, c);
        } else {
          group_mat(g, op, NULL, &tc, mats[o]);
          pair_call(g, op, 0, NULL, mats[o], st, NULL);
        }
      } else if (op->kind == JIT_OP_DIAG) {
        diag_fwd_call(g, st, region(g, base, L.tab_f + (uint64_t)op->table * tsz), G, c);
      }
    }
    if (G->dim) coset_end(g, &C, G);
  }
  free(mats);
  jit_blocking_free(&bk);
  LLVMBuildRetVoid(g->B);
  g->cs = cs_saved;
  pos_restore(g, sp);
  cache_add(g, key, fn, fty);
  *fty_out = fty;
  return fn;
}

static void run_fwd_ops(gen *g, const jit_plan *pf, const jit_plan *pb, LLVMValueRef st, LLVMValueRef base) {
  LLVMTypeRef fty;
  LLVMValueRef fn = fwd_ops_fn(g, pf, pb, &fty);
  LLVMValueRef a[2] = {st, base};
  LLVMBuildCall2(g->B, fty, fn, a, 2, "");
}

/* |amplitude|^2 of the tile state in logical order into buf[k] (<V x T>). */
static void probs_to_buf(gen *g, const jit_plan *pl, LLVMValueRef st, LLVMValueRef buf) {
  loop L;
  loop_begin(g, &L, ci32(g, g->N), 0, NULL);
  cx a = amp_load(g, st, phys(g, pl, L.iv));
  store(g, F_add(g, F_mul(g, a.re, a.re), F_mul(g, a.im, a.im)), gep(g, g->VT, buf, L.iv), (unsigned)g->VB);
  loop_end(g, &L, NULL);
}

/* cs[2g], cs[2g+1] = cos, sin of half the angle of every PARAM gate g: one loop over constant
 * tables (gate, parameter, ½scale, ½offset), computed in double; keeps the entry functions
 * short (compile time). */
static void angle_table(gen *g, LLVMValueRef params, LLVMValueRef cs) {
  const qkd_ir_circuit *ir = g->ir;
  int na = 0;
  for (int i = 0; i < ir->n_gates; i++) na += ir->gates[i].angle[0].kind == QKD_ANGLE_PARAM;
  if (na == 0) return;
  uint32_t *gp = calloc((size_t)na * 2, sizeof(uint32_t));
  LLVMValueRef *so = calloc((size_t)na * 2, sizeof(LLVMValueRef));
  if (!gp || !so) { free(gp); free(so); g->failed = 1; return; }
  int k = 0;
  for (int i = 0; i < ir->n_gates; i++) {
    const qkd_angle *a = &ir->gates[i].angle[0];
    if (a->kind != QKD_ANGLE_PARAM) continue;
    gp[2 * k] = (uint32_t)i;
    gp[2 * k + 1] = (uint32_t)a->index;
    so[2 * k] = LLVMConstReal(g->D, 0.5 * a->scale);
    so[2 * k + 1] = LLVMConstReal(g->D, 0.5 * a->offset);
    k++;
  }
  LLVMValueRef gpt = const_table(g, gp, 2 * na);
  LLVMTypeRef sty = LLVMArrayType(g->D, (unsigned)(2 * na));
  LLVMValueRef sot = LLVMAddGlobal(g->M, sty, "qkd.angles");
  LLVMSetInitializer(sot, LLVMConstArray(g->D, so, (unsigned)(2 * na)));
  LLVMSetGlobalConstant(sot, 1);
  LLVMSetLinkage(sot, LLVMPrivateLinkage);
  free(gp);
  free(so);
  unsigned ts = g->f32 ? 4 : 8;
  loop L;
  loop_begin(g, &L, ci32(g, na), 0, NULL);
  LLVMValueRef i2 = LLVMBuildShl(g->B, L.iv, ci32(g, 1), ""), i21 = LLVMBuildOr(g->B, i2, ci32(g, 1), "");
  LLVMValueRef gi = load(g, g->i32, gep(g, g->i32, gpt, i2), 4), pi = load(g, g->i32, gep(g, g->i32, gpt, i21), 4);
  LLVMValueRef th = load(g, g->T, gep(g, g->T, params, pi), ts);
  if (g->f32) th = LLVMBuildFPExt(g->B, th, g->D, "");
  LLVMValueRef half = F_add(g, F_mul(g, th, load(g, g->D, gep(g, g->D, sot, i2), 8)),
                            load(g, g->D, gep(g, g->D, sot, i21), 8));
  LLVMValueRef c = call1(g, "llvm.cos", half), sn = call1(g, "llvm.sin", half);
  if (g->f32) { c = LLVMBuildFPTrunc(g->B, c, g->T, ""); sn = LLVMBuildFPTrunc(g->B, sn, g->T, ""); }
  LLVMValueRef o = LLVMBuildShl(g->B, gi, ci32(g, 1), "");
  store(g, c, gep(g, g->T, cs, o), ts);
  store(g, sn, gep(g, g->T, cs, LLVMBuildOr(g->B, o, ci32(g, 1), "")), ts);
  loop_end(g, &L, NULL);
}

/* Function header shared by fwd and bwd: the entry block, scratch, regions. */
typedef struct {
  LLVMValueRef fn, base, to_free, rows_a, rows_b, rows_c;
  layout L;
} entry;

static void begin_entry(gen *g, entry *e, const char *name, int bwd, const jit_plan *pf, const jit_plan *pb) {
  LLVMTypeRef pt[8] = {g->ptr, g->ptr, g->ptr, g->i32, bwd ? g->ptr : g->i64, bwd ? g->ptr : g->i64, g->ptr, g->ptr};
  LLVMTypeRef fty = LLVMFunctionType(g->vd, pt, 8, 0);
  e->fn = LLVMAddFunction(g->M, name, fty);
  fn_attrs(g, e->fn);
  g->fn = e->fn;
  LLVMPositionBuilderAtEnd(g->B, LLVMAppendBasicBlockInContext(g->C, e->fn, "entry"));
  LLVMTypeRef rt = LLVMArrayType(g->ptr, (unsigned)g->V);
  e->rows_a = LLVMBuildAlloca(g->B, rt, "rows.a");
  e->rows_b = LLVMBuildAlloca(g->B, rt, "rows.b");
  e->rows_c = LLVMBuildAlloca(g->B, rt, "rows.c");
  e->L = make_layout(g, pf, pb);
  e->base = scratch_base(g, LLVMGetParam(e->fn, 7), &e->L, &e->to_free);
  g->cs = region(g, e->base, e->L.cs);
  angle_table(g, LLVMGetParam(e->fn, 1), g->cs);
}

/* The tile loop's head: skips everything for batch ≤ 0, then for each tile of V samples sets
 * b0 (first sample), lanes (live lanes, 1..V) and featbuf (features transposed, zero for lanes
 * past the batch). The caller ends the loop with loop_end(T) and a branch to *b_done. */
static void tile_loop_begin(gen *g, entry *E, LLVMValueRef batch, LLVMValueRef features, loop *T,
                            LLVMValueRef *b0, LLVMValueRef *lanes, LLVMBasicBlockRef *b_done) {
  int nf = g->ir->n_features;
  LLVMBasicBlockRef b_tiles = LLVMAppendBasicBlockInContext(g->C, E->fn, "tiles");
  *b_done = LLVMAppendBasicBlockInContext(g->C, E->fn, "done");
  LLVMBuildCondBr(g->B, LLVMBuildICmp(g->B, LLVMIntSGT, batch, ci32(g, 0), ""), b_tiles, *b_done);
  LLVMPositionBuilderAtEnd(g->B, b_tiles);
  LLVMValueRef ntile = LLVMBuildUDiv(g->B, LLVMBuildAdd(g->B, batch, ci32(g, g->V - 1), ""), ci32(g, g->V), "");
  loop_begin(g, T, ntile, 0, NULL);
  *b0 = LLVMBuildMul(g->B, T->iv, ci32(g, g->V), "b0");
  LLVMValueRef rem = LLVMBuildSub(g->B, batch, *b0, "");
  *lanes = LLVMBuildSelect(g->B, LLVMBuildICmp(g->B, LLVMIntSLT, rem, ci32(g, g->V), ""), rem, ci32(g, g->V), "lanes");
  if (nf > 0) {
    LLVMValueRef featbuf = region(g, E->base, E->L.featbuf);
    memzero(g, featbuf, (uint64_t)nf * (uint64_t)g->VB);
    tile_rows(g, E->rows_a, features, *b0, nf);
    transpose(g, featbuf, E->rows_a, nf, 0, *lanes);
  }
}

/* ---- entry points ------------------------------------------------------------------------- */

static LLVMTypeRef sample_fn_type(gen *g) {
  LLVMTypeRef st[7] = {g->i32, g->i32, g->i32, g->ptr, g->i64, g->i64, g->ptr};
  return LLVMFunctionType(g->vd, st, 7, 0);
}

/* The shot sampler of a call: k->sample (qkd_kernel.h), or qkd_kernel_sample_f64 when k or its
 * sample field is NULL (object files are called with a kernel the caller builds). Branch-free:
 * a NULL k reads a private null slot instead. */
static LLVMValueRef sampler_of(gen *g, LLVMValueRef k) {
  LLVMValueRef sf = LLVMGetNamedFunction(g->M, "qkd_kernel_sample_f64");
  if (!sf) sf = LLVMAddFunction(g->M, "qkd_kernel_sample_f64", sample_fn_type(g));
  LLVMValueRef none = LLVMGetNamedGlobal(g->M, "qkd.nosampler");
  if (!none) {
    none = LLVMAddGlobal(g->M, g->ptr, "qkd.nosampler");
    LLVMSetInitializer(none, LLVMConstNull(g->ptr));
    LLVMSetGlobalConstant(none, 1);
    LLVMSetLinkage(none, LLVMPrivateLinkage);
  }
  LLVMValueRef off = ci64(g, (long long)offsetof(qkd_kernel, sample));
  LLVMValueRef field = LLVMBuildGEP2(g->B, LLVMInt8TypeInContext(g->C), k, &off, 1, "");
  LLVMValueRef knull = LLVMBuildICmp(g->B, LLVMIntEQ, k, LLVMConstNull(g->ptr), "");
  LLVMValueRef fp = load(g, g->ptr, LLVMBuildSelect(g->B, knull, none, field, ""), 8);
  LLVMValueRef fnull = LLVMBuildICmp(g->B, LLVMIntEQ, fp, LLVMConstNull(g->ptr), "");
  return LLVMBuildSelect(g->B, fnull, sf, fp, "sampler");
}

static void emit_fwd(gen *g, const jit_plan *pf, const jit_plan *pb, const char *name) {
  const qkd_ir_circuit *ir = g->ir;
  entry E;
  begin_entry(g, &E, name, 0, pf, pb);
  LLVMValueRef fn = E.fn;
  LLVMValueRef params = LLVMGetParam(fn, 1), features = LLVMGetParam(fn, 2), batch = LLVMGetParam(fn, 3),
               seed = LLVMGetParam(fn, 4), first = LLVMGetParam(fn, 5), outputs = LLVMGetParam(fn, 6);
  LLVMValueRef phi = region(g, E.base, E.L.phi), tabs = region(g, E.base, E.L.tab_f),
               featbuf = region(g, E.base, E.L.featbuf), outbuf = region(g, E.base, E.L.outbuf);
  int nout = qkd_ir_outputs(ir), n = g->n;
  unsigned ts = g->f32 ? 4 : 8;
  LLVMValueRef *tabp = calloc((size_t)pf->n_tables + 1, sizeof *tabp);
  if (!tabp) { g->failed = 1; LLVMBuildRetVoid(g->B); return; }
  prologue(g, pf, params, tabs, region(g, E.base, E.L.ph), NULL, tabp, NULL, NULL);
  LLVMValueRef sampler = ir->shots > 0 ? sampler_of(g, LLVMGetParam(fn, 0)) : NULL;

  LLVMBasicBlockRef b_done;
  loop T;
  LLVMValueRef b0, lanes;
  tile_loop_begin(g, &E, batch, features, &T, &b0, &lanes, &b_done);
  tilectx tc = {featbuf};
  tile_rows(g, E.rows_b, outputs, b0, nout);
  encode(g, phi, &tc);
  run_fwd_ops(g, pf, pb, phi, E.base);

  if (ir->shots > 0) {
    LLVMValueRef probs = region(g, E.base, E.L.probs), outd = region(g, E.base, E.L.outd);
    probs_to_buf(g, pf, phi, outbuf);
    LLVMTypeRef sty = sample_fn_type(g);
    LLVMValueRef sf = sampler;
    loop Lc;
    loop_begin(g, &Lc, lanes, 0, NULL); /* lanes ≥ 1 */
    loop K;
    loop_begin(g, &K, ci32(g, g->N), 0, NULL);
    LLVMValueRef x = load(g, g->T, gep(g, g->T, outbuf, LLVMBuildAdd(g->B, LLVMBuildMul(g->B, K.iv, ci32(g, g->V), ""), Lc.iv, "")), ts);
    if (g->f32) x = LLVMBuildFPExt(g->B, x, g->D, "");
    store(g, x, gep(g, g->D, probs, K.iv), 8);
    loop_end(g, &K, NULL);
    LLVMValueRef row = load(g, g->ptr, gep(g, g->ptr, E.rows_b, Lc.iv), 8);
    LLVMValueRef smp = LLVMBuildAdd(g->B, first, LLVMBuildZExt(g->B, LLVMBuildAdd(g->B, b0, Lc.iv, ""), g->i64, ""), "");
    LLVMValueRef a[7] = {ci32(g, ir->n_qubits), ci32(g, ir->measure), ci32(g, ir->shots), probs, seed, smp,
                         g->f32 ? outd : row};
    LLVMBuildCall2(g->B, sty, sf, a, 7, "");
    if (g->f32) {
      loop C;
      loop_begin(g, &C, ci32(g, nout), 0, NULL);
      LLVMValueRef y = load(g, g->D, gep(g, g->D, outd, C.iv), 8);
      store(g, LLVMBuildFPTrunc(g->B, y, g->T, ""), gep(g, g->T, row, C.iv), 4);
      loop_end(g, &C, NULL);
    }
    loop_end(g, &Lc, NULL);
  } else if (ir->measure == QKD_MEASURE_PROBS) {
    probs_to_buf(g, pf, phi, outbuf);
    transpose(g, outbuf, E.rows_b, nout, 1, lanes);
  } else {
    LLVMValueRef init[QKD_MAX_QUBITS];
    for (int q = 0; q < n; q++) init[q] = vzero(g, g->VT);
    loop L;
    loop_begin(g, &L, ci32(g, g->N), n, init);
    cx a = amp_load(g, phi, L.iv);
    LLVMValueRef pr = F_add(g, F_mul(g, a.re, a.re), F_mul(g, a.im, a.im));
    LLVMValueRef next[QKD_MAX_QUBITS];
    for (int q = 0; q < n; q++) {
      LLVMValueRef bit = parity(g, L.iv, pf->row[n - 1 - q]);
      next[q] = LLVMBuildSelect(g->B, bit, F_sub(g, L.phi[q], pr), F_add(g, L.phi[q], pr), "");
    }
    loop_end(g, &L, next);
    for (int q = 0; q < n; q++) store(g, next[q], gepc(g, g->VT, outbuf, q), (unsigned)g->VB);
    transpose(g, outbuf, E.rows_b, n, 1, lanes);
  }
  loop_end(g, &T, NULL);
  LLVMBuildBr(g->B, b_done);
  LLVMPositionBuilderAtEnd(g->B, b_done);
  scratch_free(g, E.to_free);
  LLVMBuildRetVoid(g->B);
  free(tabp);
}

/* gacc[param] += scale × the overlap sums dsum[j] of DIAG op's PARAM gates, in gate order. */
static void diag_grads(gen *g, const jit_op *op, LLVMValueRef gacc, LLVMValueRef dsum) {
  unsigned vb = (unsigned)g->VB;
  int j = 0;
  for (int i = 0; i < op->n_gates; i++) {
    const qkd_ir_gate *gt = &g->ir->gates[op->gates[i]];
    if (gt->angle[0].kind != QKD_ANGLE_PARAM) continue;
    LLVMValueRef v = K_mul(g, gt->angle[0].scale, load(g, g->VT, gepc(g, g->VT, dsum, j), vb));
    LLVMValueRef ap = gepc(g, g->VT, gacc, gt->angle[0].index);
    store(g, F_add(g, load(g, g->VT, ap, vb), v), ap, vb);
    j++;
  }
}

static void emit_bwd(gen *g, const jit_plan *pf, const jit_plan *pb, const char *name) {
  const qkd_ir_circuit *ir = g->ir;
  entry E;
  begin_entry(g, &E, name, 1, pf, pb);
  LLVMValueRef fn = E.fn;
  LLVMValueRef params = LLVMGetParam(fn, 1), features = LLVMGetParam(fn, 2), batch = LLVMGetParam(fn, 3),
               d_outputs = LLVMGetParam(fn, 4), d_params = LLVMGetParam(fn, 5), d_features = LLVMGetParam(fn, 6);
  LLVMValueRef base = E.base;
  LLVMValueRef phi = region(g, base, E.L.phi), lam = region(g, base, E.L.lam),
               tabf = region(g, base, E.L.tab_f), tabb = region(g, base, E.L.tab_b),
               featbuf = region(g, base, E.L.featbuf), dfacc = region(g, base, E.L.dfacc),
               outbuf = region(g, base, E.L.outbuf), gacc = region(g, base, E.L.gacc),
               dout = region(g, base, E.L.dout);
  int nout = qkd_ir_outputs(ir), nf = ir->n_features, n = g->n;
  unsigned vb = (unsigned)g->VB;
  memzero(g, gacc, (uint64_t)(ir->n_params + 1) * (uint64_t)g->VB);
  cx (*matb)[4] = calloc((size_t)pb->n_ops + 1, sizeof *matb), (*mdag)[4] = calloc((size_t)pb->n_ops + 1, sizeof *mdag);
  LLVMValueRef *tpf = calloc((size_t)pf->n_tables + 1, sizeof *tpf), *tpb = calloc((size_t)pb->n_tables + 1, sizeof *tpb);
  struct { int ngrad, off; } *dinfo = calloc((size_t)pb->n_ops + 1, sizeof *dinfo);
  uint32_t *dmask = calloc((size_t)ir->n_gates * 2 + 2, sizeof(uint32_t));
  dgrad *dctl = calloc((size_t)ir->n_gates + 2, sizeof(dgrad));
  jit_blocking bk = {0};
  if (!matb || !mdag || !tpf || !tpb || !dinfo || !dmask || !dctl || jit_block_plan(pb, n, block_dim(g, 2), &bk) != 0) {
    free(matb); free(mdag); free(tpf); free(tpb); free(dinfo); free(dmask); free(dctl);
    g->failed = 1;
    LLVMBuildRetVoid(g->B);
    return;
  }
  LLVMValueRef ph = region(g, base, E.L.ph);
  prologue(g, pf, params, tabf, ph, NULL, tpf, NULL, NULL);
  prologue(g, pb, params, tabb, ph, matb, tpb, pf, tpf);

  LLVMValueRef have_df = LLVMBuildICmp(g->B, LLVMIntNE, d_features, LLVMConstNull(g->ptr), "");
  LLVMBasicBlockRef b_done;
  loop T;
  LLVMValueRef b0, lanes;
  tile_loop_begin(g, &E, batch, features, &T, &b0, &lanes, &b_done);
  tilectx tc = {featbuf};
  if (nf > 0) memzero(g, dfacc, (uint64_t)nf * (uint64_t)g->VB);

  /* forward */
  encode(g, phi, &tc);
  run_fwd_ops(g, pf, pb, phi, base);

  /* upstream gradient, transposed (zero for lanes past the batch) */
  memzero(g, outbuf, (uint64_t)nout * (uint64_t)g->VB);
  tile_rows(g, E.rows_b, d_outputs, b0, nout);
  transpose(g, outbuf, E.rows_b, nout, 0, lanes);
  /* λ = M φ with M = diag(d_outputs) (PROBS) or Σ_q d_q Z_q (Z) */
  if (ir->measure == QKD_MEASURE_PROBS) {
    loop L;
    loop_begin(g, &L, ci32(g, g->N), 0, NULL);
    LLVMValueRef p = phys(g, pf, L.iv);
    LLVMValueRef w = load(g, g->VT, gep(g, g->VT, outbuf, L.iv), vb);
    cx a = amp_load(g, phi, p);
    cx r = {F_mul(g, w, a.re), F_mul(g, w, a.im)};
    amp_store(g, lam, p, r);
    loop_end(g, &L, NULL);
  } else {
    LLVMValueRef gq[QKD_MAX_QUBITS];
    for (int q = 0; q < n; q++) gq[q] = load(g, g->VT, gepc(g, g->VT, outbuf, q), vb);
    loop L;
    loop_begin(g, &L, ci32(g, g->N), 0, NULL);
    LLVMValueRef w = NULL;
    for (int q = 0; q < n; q++) {
      LLVMValueRef bit = parity(g, L.iv, pf->row[n - 1 - q]);
      w = F_add(g, w, LLVMBuildSelect(g->B, bit, LLVMBuildFNeg(g->B, gq[q], ""), gq[q], ""));
    }
    cx a = amp_load(g, phi, L.iv);
    cx r = {F_mul(g, w, a.re), F_mul(g, w, a.im)};
    amp_store(g, lam, L.iv, r);
    loop_end(g, &L, NULL);
  }

  /* reverse sweep, blocked groups coset by coset */
  for (int gi = bk.n_groups - 1; gi >= 0; gi--) {
    const jit_group *G = &bk.g[gi];
    int last = G->first + G->count - 1;
    /* before a coset loop: every op's U† and DIAG gradient masks, and the DIAG overlap sums zeroed */
    int doff = 0;
    for (int o = last; o >= G->first; o--) {
      const jit_op *op = &pb->ops[o];
      if (op->kind == JIT_OP_PAIR && G->dim) {
        cx Mt[4];
        const cx *M = matb[o];
        if (group_has_feature(ir, op)) { group_mat(g, op, params, &tc, Mt); M = Mt; }
        mat_dagger(g, M, mdag[o]);
      } else if (op->kind == JIT_OP_DIAG) {
        dinfo[o].ngrad = diag_grad_masks(g, op, dmask + 2 * (size_t)doff, dctl + doff);
        dinfo[o].off = doff;
        doff += dinfo[o].ngrad;
        if (G->dim && dinfo[o].ngrad)
          memzero(g, gepc(g, g->VT, dout, dinfo[o].off), (uint64_t)dinfo[o].ngrad * (uint64_t)g->VB);
      }
    }
    loop C;
    LLVMValueRef c = G->dim ? coset_begin(g, &C, G) : NULL;
    for (int o = last; o >= G->first; o--) {
      const jit_op *op = &pb->ops[o];
      if (op->kind == JIT_OP_PAIR) {
        if (!G->dim) {
          cx Mt[4];
          const cx *M = matb[o];
          if (group_has_feature(ir, op)) { group_mat(g, op, params, &tc, Mt); M = Mt; }
          mat_dagger(g, M, mdag[o]);
        }
        const qkd_ir_gate *gt = op->grad_gate >= 0 ? &ir->gates[op->grad_gate] : NULL;
        genblk gb = gt ? gen_block(gt->kind, op->blk) : (genblk){0};
        int mode = gt ? 2 : 1;
        LLVMValueRef ov = G->dim ? pair_call_coset(g, op, &bk.ob[o], G->dim, mode, gt ? &gb : NULL, mdag[o], phi, lam, c)
                                 : pair_call(g, op, mode, gt ? &gb : NULL, mdag[o], phi, lam);
        if (!gt) continue;
        ov = post_slot_sign(g, op, &tc, ov);
        LLVMValueRef v = K_mul(g, gt->angle[0].scale, ov);
        LLVMValueRef ap = gepc(g, g->VT, gt->angle[0].kind == QKD_ANGLE_PARAM ? gacc : dfacc, gt->angle[0].index);
        store(g, F_add(g, load(g, g->VT, ap, vb), v), ap, vb);
      } else if (op->kind == JIT_OP_DIAG) {
        int ngrad = dinfo[o].ngrad, walk = G->dim > 0;
        LLVMTypeRef hty;
        LLVMValueRef hf = diag_bwd_helper(g, dctl + dinfo[o].off, ngrad, walk, &hty);
        LLVMValueRef a[8] = {phi, lam, tpb[op->table], gepc(g, g->VT, dout, dinfo[o].off),
                             ngrad ? const_table(g, dmask + 2 * (size_t)dinfo[o].off, 2 * ngrad) : LLVMConstNull(g->ptr),
                             c, walk ? ci32(g, 1LL << G->dim) : NULL, walk ? const_table(g, G->W, G->dim + 1) : NULL};
        LLVMBuildCall2(g->B, hty, hf, a, walk ? 8 : 5, "");
        if (!walk) diag_grads(g, op, gacc, gepc(g, g->VT, dout, dinfo[o].off));
      }
    }
    if (!G->dim) continue;
    coset_end(g, &C, G);
    for (int o = last; o >= G->first; o--)
      if (pb->ops[o].kind == JIT_OP_DIAG) diag_grads(g, &pb->ops[o], gacc, gepc(g, g->VT, dout, dinfo[o].off));
  }

  if (nf > 0) {
    /* amplitude encoding: d x = (g − ψ0 (ψ0·g)) / |x|, g = 2 Re λ (in double) */
    if (ir->encode == QKD_ENCODE_AMPLITUDE) {
      LLVMValueRef pos, inv = inv_norm(g, feat_norm2(g, featbuf), &pos);
      LLVMValueRef two = LLVMConstReal(g->D, 2.0); /* splatted in the loops (F_mul), not before them */
      loop L;
      LLVMValueRef z = vzero(g, g->VD);
      int na = qkd_ir_amplitudes(ir);
      loop_begin(g, &L, ci32(g, na), 1, &z);
      LLVMValueRef x = to_D(g, load(g, g->VT, gep(g, g->VT, featbuf, L.iv), vb));
      LLVMValueRef lr = to_D(g, load(g, g->VT, gep(g, g->VT, lam, LLVMBuildShl(g->B, L.iv, ci32(g, 1), "")), vb));
      LLVMValueRef nd = F_add(g, L.phi[0], F_mul(g, F_mul(g, x, inv), F_mul(g, lr, two)));
      loop_end(g, &L, &nd);
      LLVMValueRef dot = nd;
      loop L3;
      loop_begin(g, &L3, ci32(g, na), 0, NULL);
      LLVMValueRef x3 = to_D(g, load(g, g->VT, gep(g, g->VT, featbuf, L3.iv), vb));
      LLVMValueRef lr3 = to_D(g, load(g, g->VT, gep(g, g->VT, lam, LLVMBuildShl(g->B, L3.iv, ci32(g, 1), "")), vb));
      LLVMValueRef gi = F_mul(g, lr3, two);
      LLVMValueRef psi0 = F_mul(g, x3, inv);
      LLVMValueRef dx = F_mul(g, F_sub(g, gi, F_mul(g, psi0, dot)), inv);
      LLVMValueRef ap = gep(g, g->VT, dfacc, L3.iv);
      LLVMValueRef nv = F_add(g, to_D(g, load(g, g->VT, ap, vb)), dx);
      store(g, to_T(g, nv), ap, vb);
      loop_end(g, &L3, NULL);
    }
    /* d_features rows (overwritten; lanes past the batch or d_features == NULL: a sink) */
    tile_rows(g, E.rows_c, d_features, b0, nf);
    transpose(g, dfacc, E.rows_c, nf, 1, LLVMBuildSelect(g->B, have_df, lanes, ci32(g, 0), ""));
  }
  loop_end(g, &T, NULL);
  LLVMBuildBr(g->B, b_done);
  LLVMPositionBuilderAtEnd(g->B, b_done);

  /* d_params[i] += lane sum of gacc[i], lanes in order */
  if (ir->n_params > 0) {
    unsigned ts = g->f32 ? 4 : 8;
    loop L;
    loop_begin(g, &L, ci32(g, ir->n_params), 0, NULL);
    LLVMValueRef v = load(g, g->VT, gep(g, g->VT, gacc, L.iv), vb);
    LLVMValueRef s = LLVMBuildExtractElement(g->B, v, ci32(g, 0), "");
    for (int l = 1; l < g->V; l++) s = LLVMBuildFAdd(g->B, s, LLVMBuildExtractElement(g->B, v, ci32(g, l), ""), "");
    LLVMValueRef ap = gep(g, g->T, d_params, L.iv);
    store(g, LLVMBuildFAdd(g->B, load(g, g->T, ap, ts), s, ""), ap, ts);
    loop_end(g, &L, NULL);
  }
  scratch_free(g, E.to_free);
  LLVMBuildRetVoid(g->B);
  free(matb); free(mdag); free(tpf); free(tpb); free(dinfo); free(dmask); free(dctl);
  jit_blocking_free(&bk);
}

int jit_gen_module(LLVMContextRef C, LLVMModuleRef M, const qkd_ir_circuit *ir_in,
                   const jit_gen_cfg *cfg, qkd_error *err) {
  qkd_ir_circuit xir; /* gates of several angles replaced by their steps */
  int expanded = jit_expand(ir_in, &xir);
  const qkd_ir_circuit *ir = &xir;
  jit_plan pf, pb;
  if (expanded < 0 || jit_plan_build(ir, cfg->opts, 0, &pf) != 0) {
    if (expanded > 0) free(xir.gates);
    qkd_fail(err, QKD_ERR_MEMORY, NULL, "jit: out of memory planning the circuit");
    return -1;
  }
  if (jit_plan_build(ir, cfg->opts, 1, &pb) != 0) {
    jit_plan_free(&pf);
    if (expanded > 0) free(xir.gates);
    qkd_fail(err, QKD_ERR_MEMORY, NULL, "jit: out of memory planning the circuit");
    return -1;
  }
  gen g;
  memset(&g, 0, sizeof g);
  g.C = C;
  g.M = M;
  g.B = LLVMCreateBuilderInContext(C); /* owned here, disposed below */
  g.ir = ir;
  g.cfg = cfg;
  g.n = ir->n_qubits;
  g.N = (uint32_t)1 << ir->n_qubits;
  g.i1 = LLVMInt1TypeInContext(C);
  g.i32 = LLVMInt32TypeInContext(C);
  g.i64 = LLVMInt64TypeInContext(C);
  g.ptr = LLVMPointerTypeInContext(C, 0);
  g.vd = LLVMVoidTypeInContext(C);
  g.D = LLVMDoubleTypeInContext(C);
  for (int prec = 0; prec < 2; prec++) {
    if (!(cfg->precisions & (prec ? JIT_PREC_F32 : JIT_PREC_F64))) continue;
    g.f32 = prec;
    g.T = prec ? LLVMFloatTypeInContext(C) : g.D;
    g.VB = cfg->vbytes;
    g.V = g.VB / (prec ? 4 : 8);
    g.VT = LLVMVectorType(g.T, (unsigned)g.V);
    g.VD = LLVMVectorType(g.D, (unsigned)g.V);
    char name[256];
    snprintf(name, sizeof name, "%s_fwd_%s", cfg->prefix, prec ? "f32" : "f64");
    if (cfg->parts & JIT_PART_FWD) emit_fwd(&g, &pf, &pb, name);
    snprintf(name, sizeof name, "%s_bwd_%s", cfg->prefix, prec ? "f32" : "f64");
    if (cfg->parts & JIT_PART_BWD) emit_bwd(&g, &pf, &pb, name);
  }
  for (int i = 0; i < g.ncache; i++) free(g.cache[i].key);
  free(g.cache);
  LLVMDisposeBuilder(g.B);
  jit_plan_free(&pf);
  jit_plan_free(&pb);
  if (expanded > 0) free(xir.gates);
  if (g.failed) {
    qkd_fail(err, QKD_ERR_MEMORY, NULL, "jit: out of memory generating code");
    return -1;
  }
  return 0;
}

/* ---- per-thread scratch ------------------------------------------------------------------- */

typedef struct { void *p; uint64_t size; } scratch_buf;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static void scratch_destroy(void *v) {
  scratch_buf *s = v;
  free(s->p);
  free(s);
}
static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_destroy); }

void *qkd_jit_scratch(uint64_t bytes) {
  pthread_once(&scratch_once, scratch_init);
  scratch_buf *s = pthread_getspecific(scratch_key);
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s) abort();
    pthread_setspecific(scratch_key, s);
  }
  if (s->size < bytes) {
    free(s->p);
    s->p = qkd_kernel_alloc((size_t)r64(bytes));
    if (!s->p) abort();
    s->size = bytes;
  }
  return s->p;
}
