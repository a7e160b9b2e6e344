/* test_rt_dmsim.c — the density-matrix engine (runtime/dmsim.c) and the noise in the circuit IR
 * (channels, read-out: runtime/qkd_ir.h, channels.c) against an independent dense reference
 * written in this file. The reference shares nothing with the engine: its own gate matrices
 * (PennyLane/Qiskit conventions, written out below), its own Kraus operators (PennyLane's),
 * every gate and channel as a full 2^n × 2^n matrix built by Kronecker products, ρ' = GρG† and
 * ρ' = Σ KρK† by full matrix products, and read-out as the full confusion of the read bit
 * pattern (⟨Z_q⟩ the marginal of the read distribution). It reads neither the gate table nor
 * the channel table, nor qkd_ir_angle.
 *
 * Checked on random circuits of 1–5 qubits (every gate kind below, random channels of every kind
 * at random places, random read-out, Z and probability outputs, no/gate/amplitude encoding):
 * outputs and ρ against the reference (1e-10); trace 1, Hermitian, diag ≥ −1e-12; the adjoint
 * VJP (d_params, d_features) against central finite differences of the reference's loss Σ d_o O_o
 * and against the parameter-shift rule on the reference (exact under parameter-independent
 * noise); with every p = 0 (and without noise at all) equality with the state-vector
 * interpreter (qsim.h) to 1e-12; the batch kernel; known values of every channel; the IR's
 * validation, dump and fingerprint (unchanged for noiseless circuits).
 * The fast kernel (dmk.c) on every random circuit: a batch of samples (not a multiple of its
 * lanes) against the reference per sample (outputs 1e-10) and against dmsim's VJP summed
 * (d_params, d_features 1e-9), also forced into segments of 1 and 2 ops, f32 close, and through
 * the thread pool on 1 and 2 threads bit-identical. Links only qkdrt. */
#include "qkd_dmk.h"
#include "qkd_dmsim.h"
#include "qkd_par.h"
#include "qkd_rng.h"
#include "qsim.h"
#include "testutil.h"

#include <complex.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef double complex cplx;

#define PI 3.14159265358979323846
#define N_CIRCUITS 160
#define MAX_Q 5
#define MAX_GATES 14
#define MAX_CHANNELS 10
#define TOL_OUT 1e-10
#define TOL_SV 1e-12
#define FD_STEP 1e-5
#define FD_TOL 1e-6

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) abort();
  return p;
}

/* ==== the reference ========================================================================= */

/* The reference's own gate list: qubits, angles, and which parameter-shift rule its angles take
 * (four-term for the controlled rotations, whose generator has eigenvalues 0, ±1/2). */
typedef struct {
  qkd_gate_kind kind;
  int qubits, angles, four_term;
} ref_gate_row;

static const ref_gate_row REF_GATES[] = {
    {QKD_GATE_H, 1, 0, 0},     {QKD_GATE_X, 1, 0, 0},      {QKD_GATE_Y, 1, 0, 0},    {QKD_GATE_Z, 1, 0, 0},
    {QKD_GATE_S, 1, 0, 0},     {QKD_GATE_T, 1, 0, 0},      {QKD_GATE_SX, 1, 0, 0},   {QKD_GATE_RX, 1, 1, 0},
    {QKD_GATE_RY, 1, 1, 0},    {QKD_GATE_RZ, 1, 1, 0},     {QKD_GATE_CNOT, 2, 0, 0}, {QKD_GATE_CZ, 2, 0, 0},
    {QKD_GATE_SWAP, 2, 0, 0},  {QKD_GATE_CRX, 2, 1, 1},    {QKD_GATE_CRY, 2, 1, 1},  {QKD_GATE_CRZ, 2, 1, 1},
    {QKD_GATE_RXX, 2, 1, 0},   {QKD_GATE_RYY, 2, 1, 0},    {QKD_GATE_RZZ, 2, 1, 0},  {QKD_GATE_CY, 2, 0, 0},
    {QKD_GATE_CH, 2, 0, 0},    {QKD_GATE_U3, 1, 3, 0},     {QKD_GATE_CPHASE, 2, 1, 0},
};
#define N_REF_GATES ((int)(sizeof REF_GATES / sizeof REF_GATES[0]))

static const ref_gate_row *ref_row(qkd_gate_kind k) {
  for (int i = 0; i < N_REF_GATES; i++)
    if (REF_GATES[i].kind == k) return &REF_GATES[i];
  abort();
}

static const cplx P_I[4] = {1, 0, 0, 1}, P_X[4] = {0, 1, 1, 0}, P_Y[4] = {0, -I, I, 0}, P_Z[4] = {1, 0, 0, -1};

/* out (4×4, pattern 2a + b) = A ⊗ B */
static void kron2(const cplx *A, const cplx *B, cplx *out) {
  for (int a = 0; a < 2; a++)
    for (int b = 0; b < 2; b++)
      for (int c = 0; c < 2; c++)
        for (int d = 0; d < 2; d++) out[(2 * a + b) * 4 + 2 * c + d] = A[a * 2 + c] * B[b * 2 + d];
}

/* |0><0| ⊗ I + |1><1| ⊗ U */
static void controlled(const cplx *U, cplx *out) {
  const cplx P0[4] = {1, 0, 0, 0}, P1[4] = {0, 0, 0, 1};
  cplx a[16], b[16];
  kron2(P0, P_I, a);
  kron2(P1, U, b);
  for (int i = 0; i < 16; i++) out[i] = a[i] + b[i];
}

/* cos(θ/2) 1 − i sin(θ/2) P, P of dimension D */
static void rotation(int D, const cplx *P, double th, cplx *out) {
  for (int r = 0; r < D; r++)
    for (int c = 0; c < D; c++) out[r * D + c] = cos(th / 2) * (r == c) - I * sin(th / 2) * P[r * D + c];
}

/* The gate's own small matrix (2×2, or 4×4 on the pattern 2·bit(q0) + bit(q1)). */
static void ref_local(qkd_gate_kind k, const double *th, cplx *m) {
  const double r2 = 1.0 / sqrt(2.0);
  cplx u[4], pp[16];
  switch (k) {
  case QKD_GATE_H: { const cplx h[4] = {r2, r2, r2, -r2}; memcpy(m, h, sizeof h); return; }
  case QKD_GATE_X: memcpy(m, P_X, sizeof P_X); return;
  case QKD_GATE_Y: memcpy(m, P_Y, sizeof P_Y); return;
  case QKD_GATE_Z: memcpy(m, P_Z, sizeof P_Z); return;
  case QKD_GATE_S: { const cplx s[4] = {1, 0, 0, I}; memcpy(m, s, sizeof s); return; }
  case QKD_GATE_T: { const cplx t[4] = {1, 0, 0, cexp(I * PI / 4)}; memcpy(m, t, sizeof t); return; }
  case QKD_GATE_SX: { const cplx s[4] = {(1 + I) / 2, (1 - I) / 2, (1 - I) / 2, (1 + I) / 2}; memcpy(m, s, sizeof s); return; }
  case QKD_GATE_RX: rotation(2, P_X, th[0], m); return;
  case QKD_GATE_RY: rotation(2, P_Y, th[0], m); return;
  case QKD_GATE_RZ: rotation(2, P_Z, th[0], m); return;
  case QKD_GATE_CNOT: controlled(P_X, m); return;
  case QKD_GATE_CZ: controlled(P_Z, m); return;
  case QKD_GATE_CY: controlled(P_Y, m); return;
  case QKD_GATE_CH: { const cplx h[4] = {r2, r2, r2, -r2}; controlled(h, m); return; }
  case QKD_GATE_SWAP: {
    memset(m, 0, 16 * sizeof(cplx));
    m[0] = m[1 * 4 + 2] = m[2 * 4 + 1] = m[15] = 1;
    return;
  }
  case QKD_GATE_CRX: rotation(2, P_X, th[0], u); controlled(u, m); return;
  case QKD_GATE_CRY: rotation(2, P_Y, th[0], u); controlled(u, m); return;
  case QKD_GATE_CRZ: rotation(2, P_Z, th[0], u); controlled(u, m); return;
  case QKD_GATE_RXX: kron2(P_X, P_X, pp); rotation(4, pp, th[0], m); return;
  case QKD_GATE_RYY: kron2(P_Y, P_Y, pp); rotation(4, pp, th[0], m); return;
  case QKD_GATE_RZZ: kron2(P_Z, P_Z, pp); rotation(4, pp, th[0], m); return;
  case QKD_GATE_U3: { /* [[c, −e^{iλ}s], [e^{iφ}s, e^{i(φ+λ)}c]] */
    double c = cos(th[0] / 2), s = sin(th[0] / 2);
    m[0] = c;
    m[1] = -cexp(I * th[2]) * s;
    m[2] = cexp(I * th[1]) * s;
    m[3] = cexp(I * (th[1] + th[2])) * c;
    return;
  }
  case QKD_GATE_CPHASE: { const cplx p[4] = {1, 0, 0, cexp(I * th[0])}; controlled(p, m); return; }
  default: abort();
  }
}

/* out (dim × dim) = ops[0] ⊗ ops[1] ⊗ … ⊗ ops[n−1] (qubit 0 the most significant factor). */
static void kron_chain(int n, const cplx *const *ops, cplx *out) {
  size_t dim = (size_t)1 << n;
  for (size_t r = 0; r < dim; r++)
    for (size_t c = 0; c < dim; c++) {
      cplx v = 1;
      for (int q = 0; q < n && v != 0; q++) {
        int rb = (int)(r >> (n - 1 - q)) & 1, cb = (int)(c >> (n - 1 - q)) & 1;
        v *= ops[q][rb * 2 + cb];
      }
      out[r * dim + c] = v;
    }
}

/* The full matrix of a one-qubit operator A on qubit q. */
static void full_one(int n, int q, const cplx *A, cplx *out) {
  const cplx *ops[MAX_Q];
  for (int k = 0; k < n; k++) ops[k] = k == q ? A : P_I;
  kron_chain(n, ops, out);
}

/* The full matrix of a two-qubit operator M (pattern 2·bit(q0) + bit(q1)) on (q0, q1):
 * Σ_{a,b,c,d} M[2a+b][2c+d] · (… ⊗ |a><c| at q0 ⊗ … ⊗ |b><d| at q1 ⊗ …). */
static void full_two(int n, int q0, int q1, const cplx *M, cplx *out, cplx *tmp) {
  size_t dim = (size_t)1 << n;
  memset(out, 0, dim * dim * sizeof(cplx));
  for (int a = 0; a < 2; a++)
    for (int b = 0; b < 2; b++)
      for (int c = 0; c < 2; c++)
        for (int d = 0; d < 2; d++) {
          cplx coef = M[(2 * a + b) * 4 + 2 * c + d];
          if (coef == 0) continue;
          cplx E0[4] = {0}, E1[4] = {0};
          E0[a * 2 + c] = 1;
          E1[b * 2 + d] = 1;
          const cplx *ops[MAX_Q];
          for (int k = 0; k < n; k++) ops[k] = k == q0 ? E0 : k == q1 ? E1 : P_I;
          kron_chain(n, ops, tmp);
          for (size_t i = 0; i < dim * dim; i++) out[i] += coef * tmp[i];
        }
}

/* out = A B (dim × dim), row by row: out[r] = Σ_k A[r][k] B[k] */
static void mat_mul(size_t dim, const cplx *A, const cplx *B, cplx *out) {
  memset(out, 0, dim * dim * sizeof(cplx));
  for (size_t r = 0; r < dim; r++)
    for (size_t k = 0; k < dim; k++)
      if (A[r * dim + k] != 0)
        for (size_t c = 0; c < dim; c++) out[r * dim + c] += A[r * dim + k] * B[k * dim + c];
}

/* acc += A rho A† (t1, t2 scratch) */
static void add_conjugated(size_t dim, const cplx *A, const cplx *rho, cplx *acc, cplx *t1, cplx *t2) {
  mat_mul(dim, A, rho, t1);
  for (size_t r = 0; r < dim; r++)
    for (size_t c = 0; c < dim; c++) t2[r * dim + c] = conj(A[c * dim + r]);
  mat_mul(dim, t1, t2, t1 + dim * dim); /* t1 holds 2 matrices */
  for (size_t i = 0; i < dim * dim; i++) acc[i] += t1[dim * dim + i];
}

/* The reference's Kraus operators (PennyLane's definitions), count returned. */
static int ref_kraus(qkd_chan_kind k, double p, cplx K[4][4]) {
  switch (k) {
  case QKD_CHAN_DEPOLARIZING:
    for (int e = 0; e < 4; e++) {
      K[0][e] = sqrt(1 - p) * P_I[e];
      K[1][e] = sqrt(p / 3) * P_X[e];
      K[2][e] = sqrt(p / 3) * P_Y[e];
      K[3][e] = sqrt(p / 3) * P_Z[e];
    }
    return 4;
  case QKD_CHAN_AMPLITUDE_DAMPING: {
    const cplx k0[4] = {1, 0, 0, sqrt(1 - p)}, k1[4] = {0, sqrt(p), 0, 0};
    memcpy(K[0], k0, sizeof k0), memcpy(K[1], k1, sizeof k1);
    return 2;
  }
  case QKD_CHAN_PHASE_DAMPING: {
    const cplx k0[4] = {1, 0, 0, sqrt(1 - p)}, k1[4] = {0, 0, 0, sqrt(p)};
    memcpy(K[0], k0, sizeof k0), memcpy(K[1], k1, sizeof k1);
    return 2;
  }
  case QKD_CHAN_BIT_FLIP:
    for (int e = 0; e < 4; e++) K[0][e] = sqrt(1 - p) * P_I[e], K[1][e] = sqrt(p) * P_X[e];
    return 2;
  case QKD_CHAN_PHASE_FLIP:
    for (int e = 0; e < 4; e++) K[0][e] = sqrt(1 - p) * P_I[e], K[1][e] = sqrt(p) * P_Z[e];
    return 2;
  default: abort();
  }
}

static double ref_angle(const qkd_angle *a, const double *params, const double *x) {
  if (a->kind == QKD_ANGLE_PARAM) return a->scale * params[a->index] + a->offset;
  if (a->kind == QKD_ANGLE_FEATURE) return a->scale * x[a->index] + a->offset;
  return a->offset; /* CONST */
}

typedef struct {
  size_t dim;
  cplx *rho, *acc, *G, *t; /* t: 3 matrices of scratch */
} ref_ws;

static ref_ws ref_ws_new(int n) {
  ref_ws w;
  w.dim = (size_t)1 << n;
  size_t m = w.dim * w.dim;
  w.rho = xcalloc(m, sizeof(cplx));
  w.acc = xcalloc(m, sizeof(cplx));
  w.G = xcalloc(m, sizeof(cplx));
  w.t = xcalloc(3 * m, sizeof(cplx));
  return w;
}

static void ref_ws_free(ref_ws *w) { free(w->rho), free(w->acc), free(w->G), free(w->t); }

/* rho ← Σ_i A_i rho A_i† for full matrices A_i = the one-qubit Kraus K_i on q */
static void ref_channel(ref_ws *w, int n, const qkd_ir_channel *ch) {
  cplx K[4][4];
  int nk = ref_kraus(ch->kind, ch->p, K);
  size_t m = w->dim * w->dim;
  memset(w->acc, 0, m * sizeof(cplx));
  for (int i = 0; i < nk; i++) {
    full_one(n, ch->qubit, K[i], w->G);
    add_conjugated(w->dim, w->G, w->rho, w->acc, w->t, w->t + 2 * m);
  }
  memcpy(w->rho, w->acc, m * sizeof(cplx));
}

static void ref_gate(ref_ws *w, int n, const qkd_ir_gate *g, const double *th) {
  const ref_gate_row *row = ref_row(g->kind);
  cplx loc[16];
  ref_local(g->kind, th, loc);
  size_t m = w->dim * w->dim;
  if (row->qubits == 1) full_one(n, g->q[0], loc, w->G);
  else full_two(n, g->q[0], g->q[1], loc, w->G, w->acc);
  memset(w->acc, 0, m * sizeof(cplx));
  add_conjugated(w->dim, w->G, w->rho, w->acc, w->t, w->t + 2 * m);
  memcpy(w->rho, w->acc, m * sizeof(cplx));
}

/* The final ρ of one sample into w->rho; angle `slot` of gate `over` (if ≥ 0) is `val`. */
static void ref_run(const qkd_ir_circuit *c, const double *params, const double *x, int over, int slot, double val,
                    ref_ws *w) {
  int n = c->n_qubits;
  size_t dim = w->dim;
  memset(w->rho, 0, dim * dim * sizeof(cplx));
  double nrm = 0.0;
  if (c->encode == QKD_ENCODE_AMPLITUDE)
    for (int i = 0; i < c->n_features; i++) nrm += x[i] * x[i];
  if (nrm > 0.0) {
    nrm = sqrt(nrm);
    for (int i = 0; i < c->n_features; i++)
      for (int j = 0; j < c->n_features; j++) w->rho[i * dim + j] = x[i] * x[j] / (nrm * nrm);
  } else {
    w->rho[0] = 1;
  }
  int ch = 0;
  for (int k = 0; k <= c->n_gates; k++) {
    for (; ch < c->n_channels && c->channels[ch].after == k; ch++) ref_channel(w, n, &c->channels[ch]);
    if (k == c->n_gates) break;
    const qkd_ir_gate *g = &c->gates[k];
    double th[3] = {0, 0, 0};
    for (int s = 0; s < ref_row(g->kind)->angles; s++)
      th[s] = k == over && s == slot ? val : ref_angle(&g->angle[s], params, x);
    ref_gate(w, n, g, th);
  }
}

/* Outputs of w->rho: the read distribution P_read(r) = Σ_t Π_q C(r_q | t_q) P(t), and for Z
 * the marginals Σ_r (−1)^{r_q} P_read(r). */
static void ref_outputs(const qkd_ir_circuit *c, const ref_ws *w, double *out) {
  int n = c->n_qubits;
  size_t dim = w->dim;
  double *pr = xcalloc(dim, sizeof(double));
  for (size_t r = 0; r < dim; r++)
    for (size_t t = 0; t < dim; t++) {
      double f = 1.0;
      for (int q = 0; q < n; q++) {
        int rb = (int)(r >> (n - 1 - q)) & 1, tb = (int)(t >> (n - 1 - q)) & 1;
        double p01 = c->readout ? c->readout[q].p01 : 0.0, p10 = c->readout ? c->readout[q].p10 : 0.0;
        f *= tb == 0 ? (rb ? p01 : 1 - p01) : (rb ? 1 - p10 : p10);
      }
      pr[r] += f * creal(w->rho[t * dim + t]);
    }
  if (c->measure == QKD_MEASURE_PROBS) {
    memcpy(out, pr, dim * sizeof(double));
  } else {
    for (int q = 0; q < n; q++) {
      out[q] = 0.0;
      for (size_t r = 0; r < dim; r++) out[q] += ((r >> (n - 1 - q)) & 1 ? -1.0 : 1.0) * pr[r];
    }
  }
  free(pr);
}

/* Σ_o d_o O_o of the reference. */
static double ref_loss(const qkd_ir_circuit *c, const double *params, const double *x, const double *dout, int over,
                       int slot, double val, ref_ws *w) {
  double out[1 << MAX_Q], L = 0.0;
  ref_run(c, params, x, over, slot, val, w);
  ref_outputs(c, w, out);
  int no = c->measure == QKD_MEASURE_PROBS ? 1 << c->n_qubits : c->n_qubits;
  for (int o = 0; o < no; o++) L += dout[o] * out[o];
  return L;
}

/* ==== random noisy circuits ================================================================= */

typedef struct {
  qkd_ir_circuit c;
  qkd_ir_gate g[MAX_GATES + MAX_Q];
  qkd_ir_channel ch[MAX_CHANNELS];
  qkd_ir_readout ro[MAX_Q];
} noisy;

typedef struct {
  uint64_t seed, ctr;
} rng;

static double unif(rng *r) { return qkd_rng_uniform(r->seed, 0xd5, r->ctr++); }
static int irange(rng *r, int lo, int hi) { return lo + (int)(unif(r) * (hi - lo + 1)); }

static qkd_angle rand_angle(rng *r, qkd_angle_kind k, int index) {
  double sc = (0.25 + 1.75 * unif(r)) * (unif(r) < 0.5 ? -1 : 1);
  return (qkd_angle){k, index, k == QKD_ANGLE_CONST ? 1.0 : sc, (2 * unif(r) - 1) * PI};
}

/* A random valid noisy circuit: enc 0 none, 1 gate encoding, 2 amplitude. */
static void rand_circuit(uint64_t seed, noisy *nc) {
  rng r = {seed, 0};
  memset(nc, 0, sizeof *nc);
  qkd_ir_circuit *c = &nc->c;
  int n = irange(&r, 1, MAX_Q), enc = irange(&r, 0, 2), ng = 0, np = 0;
  c->name = "noisy";
  c->n_qubits = n;
  c->measure = unif(&r) < 0.5 ? QKD_MEASURE_Z : QKD_MEASURE_PROBS;
  c->gates = nc->g;
  int pool = 0; /* features FEATURE angles may read */
  if (enc == 2) {
    c->encode = QKD_ENCODE_AMPLITUDE;
    c->n_features = irange(&r, 1, 1 << n);
    pool = unif(&r) < 0.5 ? c->n_features : 0;
  } else if (enc == 1) {
    pool = irange(&r, 1, n + 1);
    for (int q = 0; q < n; q++) {
      qkd_ir_gate *g = &nc->g[ng++];
      static const qkd_gate_kind rot[3] = {QKD_GATE_RX, QKD_GATE_RY, QKD_GATE_RZ};
      g->kind = rot[irange(&r, 0, 2)];
      g->q[0] = q;
      g->angle[0] = rand_angle(&r, QKD_ANGLE_FEATURE, irange(&r, 0, pool - 1));
    }
    c->n_encoding_gates = ng;
  }
  int n_ansatz = irange(&r, 1, MAX_GATES);
  for (int i = 0; i < n_ansatz; i++) {
    const ref_gate_row *row;
    do row = &REF_GATES[irange(&r, 0, N_REF_GATES - 1)];
    while (row->qubits > n);
    qkd_ir_gate *g = &nc->g[ng++];
    g->kind = row->kind;
    g->q[0] = irange(&r, 0, n - 1);
    if (row->qubits == 2) {
      g->q[1] = irange(&r, 0, n - 2);
      if (g->q[1] >= g->q[0]) g->q[1]++;
    }
    for (int s = 0; s < row->angles; s++) {
      double u = unif(&r);
      if (u < 0.6) g->angle[s] = rand_angle(&r, QKD_ANGLE_PARAM, np++);
      else if (u < 0.8 && pool > 0) g->angle[s] = rand_angle(&r, QKD_ANGLE_FEATURE, irange(&r, 0, pool - 1));
      else g->angle[s] = rand_angle(&r, QKD_ANGLE_CONST, 0);
    }
  }
  c->n_gates = ng;
  c->n_params = np;
  if (enc != 2) {
    int top = -1;
    for (int i = 0; i < ng; i++)
      for (int s = 0; s < 3; s++)
        if (nc->g[i].angle[s].kind == QKD_ANGLE_FEATURE && nc->g[i].angle[s].index > top) top = nc->g[i].angle[s].index;
    c->n_features = top + 1;
  }
  /* channels: every kind, random qubit and place, p anywhere in [0, 1] (the ends included) */
  int nch = irange(&r, 0, MAX_CHANNELS), after[MAX_CHANNELS];
  for (int i = 0; i < nch; i++) after[i] = irange(&r, 0, ng);
  for (int i = 1; i < nch; i++) /* sort the places */
    for (int j = i; j > 0 && after[j - 1] > after[j]; j--) {
      int t = after[j];
      after[j] = after[j - 1];
      after[j - 1] = t;
    }
  for (int i = 0; i < nch; i++) {
    qkd_ir_channel *ch = &nc->ch[i];
    do ch->kind = (qkd_chan_kind)irange(&r, 0, QKD_CHAN_COUNT - 1);
    while (ch->kind == QKD_CHAN_READOUT);
    ch->qubit = irange(&r, 0, n - 1);
    double u = unif(&r);
    ch->p = u < 0.05 ? 0.0 : u < 0.1 ? 1.0 : u < 0.55 ? 0.3 * unif(&r) : unif(&r);
    ch->after = after[i];
  }
  c->n_channels = nch;
  c->channels = nch ? nc->ch : NULL;
  if (unif(&r) < 0.6) {
    for (int q = 0; q < n; q++) {
      nc->ro[q].p01 = unif(&r) < 0.8 ? 0.3 * unif(&r) : unif(&r);
      nc->ro[q].p10 = unif(&r) < 0.8 ? 0.3 * unif(&r) : unif(&r);
    }
    c->readout = nc->ro;
  }
}

static void rand_inputs(const qkd_ir_circuit *c, uint64_t seed, double *params, double *x, double *dout) {
  for (int i = 0; i < c->n_params; i++) params[i] = (2 * qkd_rng_uniform(seed, 0xa1, i) - 1) * PI;
  for (int i = 0; i < c->n_features; i++) x[i] = 2 * qkd_rng_uniform(seed, 0xa2, i) - 1;
  for (int o = 0; o < qkd_ir_outputs(c); o++) dout[o] = 2 * qkd_rng_uniform(seed, 0xa3, o) - 1;
}

/* ==== checks on one random circuit ========================================================== */

typedef struct {
  int circuits, chan_kind[QKD_CHAN_COUNT], enc[3], z, probs, readout, fd, pshift, sv, differs, noisy_p, dmk;
  int max_n;
} coverage;

/* |a − b| ≤ tol (1 + |b|): relative and absolute */
static int close_to(double a, double b, double tol) { return fabs(a - b) <= tol * (1.0 + fabs(b)); }

static void check_rho(const double *rho, const ref_ws *w) {
  size_t dim = w->dim;
  double tr = 0.0, min_diag = 1.0, herm = 0.0, diff = 0.0;
  for (size_t i = 0; i < dim; i++) {
    tr += rho[2 * (i * dim + i)];
    if (rho[2 * (i * dim + i)] < min_diag) min_diag = rho[2 * (i * dim + i)];
    for (size_t j = 0; j < dim; j++) {
      const double *a = rho + 2 * (i * dim + j), *b = rho + 2 * (j * dim + i);
      herm = fmax(herm, fabs(a[0] - b[0]) + fabs(a[1] + b[1]));
      cplx ref = w->rho[i * dim + j];
      diff = fmax(diff, cabs(a[0] + I * a[1] - ref));
    }
  }
  CHECK_NEAR(tr, 1.0, 1e-12);
  CHECK(min_diag >= -1e-12);
  CHECK(herm <= 1e-13);
  CHECK(diff <= TOL_OUT);
}

/* The engine's VJP against central differences of the reference's loss: every parameter and,
 * with `features`, every feature. */
static void check_fd(const qkd_ir_circuit *c, double *params, double *x, const double *dout, const double *dp,
                     const double *dx, int features, ref_ws *w, coverage *cov) {
  for (int i = 0; i < c->n_params + (features ? c->n_features : 0); i++) {
    double *v = i < c->n_params ? &params[i] : &x[i - c->n_params], v0 = *v;
    *v = v0 + FD_STEP;
    double lp = ref_loss(c, params, x, dout, -1, 0, 0, w);
    *v = v0 - FD_STEP;
    double lm = ref_loss(c, params, x, dout, -1, 0, 0, w);
    *v = v0;
    double fd = (lp - lm) / (2 * FD_STEP), ad = i < c->n_params ? dp[i] : dx[i - c->n_params];
    if (!close_to(ad, fd, FD_TOL))
      fprintf(stderr, "  fd: %s %d adjoint %.12g fd %.12g\n", i < c->n_params ? "param" : "feature",
              i < c->n_params ? i : i - c->n_params, ad, fd);
    CHECK(close_to(ad, fd, FD_TOL));
    cov->fd++;
  }
}

/* The parameter-shift rule on the reference: two terms (±π/2, ½) or four (the controlled
 * rotations: ±π/2 with (√2+1)/(4√2), ±3π/2 with (√2−1)/(4√2)), times scale; a FEATURE index sums
 * the terms of every gate it feeds (not for amplitude circuits, whose encoding has no rule). */
static void check_pshift(const qkd_ir_circuit *c, const double *params, const double *x, const double *dout,
                         const double *dp, const double *dx, ref_ws *w, coverage *cov) {
  const double c1 = (sqrt(2.0) + 1) / (4 * sqrt(2.0)), c2 = (sqrt(2.0) - 1) / (4 * sqrt(2.0));
  const double sh2[2] = {PI / 2, -PI / 2}, co2[2] = {0.5, -0.5};
  const double sh4[4] = {PI / 2, -PI / 2, 3 * PI / 2, -3 * PI / 2}, co4[4] = {c1, -c1, -c2, c2};
  double *gp = xcalloc((size_t)c->n_params, sizeof(double)), *gx = xcalloc((size_t)c->n_features, sizeof(double));
  for (int k = 0; k < c->n_gates; k++) {
    const qkd_ir_gate *g = &c->gates[k];
    const ref_gate_row *row = ref_row(g->kind);
    for (int s = 0; s < row->angles; s++) {
      const qkd_angle *a = &g->angle[s];
      if (a->kind == QKD_ANGLE_CONST) continue;
      double th = ref_angle(a, params, x), d = 0.0;
      for (int t = 0; t < (row->four_term ? 4 : 2); t++)
        d += (row->four_term ? co4[t] : co2[t]) *
             ref_loss(c, params, x, dout, k, s, th + (row->four_term ? sh4[t] : sh2[t]), w);
      if (a->kind == QKD_ANGLE_PARAM) gp[a->index] += a->scale * d;
      else gx[a->index] += a->scale * d;
    }
  }
  for (int i = 0; i < c->n_params; i++, cov->pshift++) CHECK(close_to(dp[i], gp[i], 1e-9));
  for (int i = 0; c->encode != QKD_ENCODE_AMPLITUDE && i < c->n_features; i++, cov->pshift++)
    CHECK(close_to(dx[i], gx[i], 1e-9));
  free(gp), free(gx);
}

/* With every p = 0 (read-out kept, at zero) and with the noise removed: the state-vector
 * interpreter's outputs, |ψ><ψ| and adjoint gradients, to 1e-12. */
static void check_noiseless(const noisy *orig, const double *params, const double *x, const double *dout,
                            coverage *cov) {
  for (int variant = 0; variant < 2; variant++) {
    noisy z = *orig;
    qkd_ir_circuit *c = &z.c;
    c->gates = z.g;
    c->channels = c->n_channels ? z.ch : NULL;
    c->readout = orig->c.readout ? z.ro : NULL;
    for (int i = 0; i < c->n_channels; i++) z.ch[i].p = 0.0;
    for (int q = 0; q < c->n_qubits; q++) z.ro[q].p01 = z.ro[q].p10 = 0.0;
    if (variant == 1) c->n_channels = 0, c->channels = NULL, c->readout = NULL;
    qkd_error err;
    CHECK(qkd_ir_validate(c, &err) == 0);
    int no = qkd_ir_outputs(c), np = c->n_params, nf = c->n_features;
    size_t dim = (size_t)1 << c->n_qubits;
    double *o_dm = xcalloc((size_t)no, sizeof(double)), *o_sv = xcalloc((size_t)no, sizeof(double));
    double *rho = xcalloc(2 * dim * dim, sizeof(double)), *psi = xcalloc(2 * dim, sizeof(double));
    double *dp_dm = xcalloc((size_t)np, sizeof(double)), *dp_sv = xcalloc((size_t)np, sizeof(double));
    double *dx_dm = xcalloc((size_t)nf, sizeof(double)), *dx_sv = xcalloc((size_t)nf, sizeof(double));
    void *ws = xcalloc(qkd_kernel_workspace_bytes(c), 1);
    qkd_kernel sv = qkd_qsim_kernel(c);
    sv.fwd_f64(&sv, params, x, 1, 0, 0, o_sv, ws);
    sv.bwd_f64(&sv, params, x, 1, dout, dp_sv, dx_sv, ws);
    qkd_qsim_state(c, params, x, psi);
    CHECK(qkd_dm_forward(c, params, x, o_dm, rho, &err) == 0);
    CHECK(qkd_dm_vjp(c, params, x, dout, dp_dm, dx_dm, &err) == 0);
    for (int o = 0; o < no; o++) CHECK(close_to(o_dm[o], o_sv[o], TOL_SV));
    double d = 0.0;
    for (size_t i = 0; i < dim; i++)
      for (size_t j = 0; j < dim; j++) {
        cplx pi = psi[2 * i] + I * psi[2 * i + 1], pj = psi[2 * j] + I * psi[2 * j + 1];
        d = fmax(d, cabs(rho[2 * (i * dim + j)] + I * rho[2 * (i * dim + j) + 1] - pi * conj(pj)));
      }
    CHECK(d <= TOL_SV);
    for (int i = 0; i < np; i++) CHECK(close_to(dp_dm[i], dp_sv[i], TOL_SV));
    for (int i = 0; i < nf; i++) CHECK(close_to(dx_dm[i], dx_sv[i], TOL_SV));
    cov->sv++;
    free(o_dm), free(o_sv), free(rho), free(psi), free(dp_dm), free(dp_sv), free(dx_dm), free(dx_sv), free(ws);
  }
}

/* The batch kernel: f64 rows equal the per-sample functions, f32 close, an odd batch. */
static void check_kernel(const qkd_ir_circuit *c, const double *params, uint64_t seed) {
  enum { B = 3 };
  int no = qkd_ir_outputs(c), np = c->n_params, nf = c->n_features;
  double *x = xcalloc((size_t)B * nf, sizeof(double)), *dout = xcalloc((size_t)B * no, sizeof(double));
  double *out = xcalloc((size_t)B * no, sizeof(double)), *one = xcalloc((size_t)no, sizeof(double));
  double *dp = xcalloc((size_t)np, sizeof(double)), *dp1 = xcalloc((size_t)np, sizeof(double));
  double *dx = xcalloc((size_t)B * nf, sizeof(double)), *dx1 = xcalloc((size_t)nf, sizeof(double));
  float *pf = xcalloc((size_t)np, sizeof(float)), *xf = xcalloc((size_t)B * nf, sizeof(float));
  float *dof = xcalloc((size_t)B * no, sizeof(float)), *of = xcalloc((size_t)B * no, sizeof(float));
  float *dpf = xcalloc((size_t)np, sizeof(float)), *dxf = xcalloc((size_t)B * nf, sizeof(float));
  for (int i = 0; i < B * nf; i++) x[i] = 2 * qkd_rng_uniform(seed, 0xb1, i) - 1, xf[i] = (float)x[i];
  for (int i = 0; i < B * no; i++) dout[i] = 2 * qkd_rng_uniform(seed, 0xb2, i) - 1, dof[i] = (float)dout[i];
  for (int i = 0; i < np; i++) pf[i] = (float)params[i];
  qkd_kernel k;
  qkd_error err;
  CHECK(qkd_dm_kernel(c, &k, &err) == 0);
  CHECK(!strcmp(k.engine, "dm"));
  k.fwd_f64(&k, params, nf ? x : NULL, B, 7, 0, out, NULL);
  k.bwd_f64(&k, params, nf ? x : NULL, B, dout, dp, nf ? dx : NULL, NULL);
  k.fwd_f32(&k, pf, nf ? xf : NULL, B, 7, 0, of, NULL);
  k.bwd_f32(&k, pf, nf ? xf : NULL, B, dof, dpf, nf ? dxf : NULL, NULL);
  double worst = 0.0, worst32 = 0.0;
  for (int b = 0; b < B; b++) {
    CHECK(qkd_dm_forward(c, params, x + (size_t)b * nf, one, NULL, &err) == 0);
    CHECK(qkd_dm_vjp(c, params, x + (size_t)b * nf, dout + (size_t)b * no, dp1, dx1, &err) == 0);
    for (int o = 0; o < no; o++) {
      worst = fmax(worst, fabs(out[(size_t)b * no + o] - one[o]));
      worst32 = fmax(worst32, fabs(of[(size_t)b * no + o] - one[o]));
    }
    for (int f = 0; f < nf; f++) {
      worst = fmax(worst, fabs(dx[(size_t)b * nf + f] - dx1[f]));
      worst32 = fmax(worst32, fabs(dxf[(size_t)b * nf + f] - dx1[f]) / (1 + fabs(dx1[f])));
    }
  }
  for (int i = 0; i < np; i++) {
    worst = fmax(worst, fabs(dp[i] - dp1[i]));
    worst32 = fmax(worst32, fabs(dpf[i] - dp1[i]) / (1 + fabs(dp1[i])));
  }
  CHECK(worst == 0.0); /* the same arithmetic */
  CHECK(worst32 < 1e-4);
  free(x), free(dout), free(out), free(one), free(dp), free(dp1), free(dx), free(dx1);
  free(pf), free(xf), free(dof), free(of), free(dpf), free(dxf);
}

/* The fast kernel (dmk.c) on circuit c: B samples against the dense reference and dmsim. */
static void check_dmk(const qkd_ir_circuit *c, const double *params, uint64_t seed, coverage *cov) {
  enum { B = 6 };
  int no = qkd_ir_outputs(c), np = c->n_params, nf = c->n_features;
  double *x = xcalloc((size_t)B * nf + 1, sizeof(double)), *dout = xcalloc((size_t)B * no, sizeof(double));
  double *out = xcalloc((size_t)B * no, sizeof(double)), *ref = xcalloc((size_t)no, sizeof(double));
  double *dp = xcalloc((size_t)np + 1, sizeof(double)), *dp1 = xcalloc((size_t)np + 1, sizeof(double));
  double *dps = xcalloc((size_t)np + 1, sizeof(double));
  double *dx = xcalloc((size_t)B * nf + 1, sizeof(double)), *dx1 = xcalloc((size_t)nf + 1, sizeof(double));
  for (int i = 0; i < B * nf; i++) x[i] = 2 * qkd_rng_uniform(seed, 0xc1, i) - 1;
  if (c->encode == QKD_ENCODE_AMPLITUDE) memset(x + (size_t)(B - 1) * nf, 0, (size_t)nf * sizeof(double));
  for (int i = 0; i < B * no; i++) dout[i] = 2 * qkd_rng_uniform(seed, 0xc2, i) - 1;
  qkd_error err;
  ref_ws w = ref_ws_new(c->n_qubits);
  for (int b = 0; b < B; b++) { /* the reference: outputs; dmsim: the summed VJP */
    CHECK(qkd_dm_vjp(c, params, x + (size_t)b * nf, dout + (size_t)b * no, dps, NULL, &err) == 0);
  }
  for (int seg = 0; seg <= 2; seg++) {
    char v[8];
    snprintf(v, sizeof v, "%d", seg);
    if (seg) setenv("QKD_DMK_SEGMENT", v, 1);
    qkd_kernel k;
    int ok = qkd_dmk_kernel(c, &k, &err) == 0;
    unsetenv("QKD_DMK_SEGMENT");
    CHECK(ok);
    if (!ok) break;
    CHECK(!strcmp(k.engine, "dmk"));
    k.fwd_f64(&k, params, nf ? x : NULL, B, 7, 0, out, NULL);
    for (int i = 0; i < np; i++) dp[i] = 0.5; /* accumulates */
    k.bwd_f64(&k, params, nf ? x : NULL, B, dout, dp, nf ? dx : NULL, NULL);
    double worst = 0.0, worst_d = 0.0;
    for (int b = 0; b < B; b++) {
      ref_run(c, params, x + (size_t)b * nf, -1, 0, 0, &w);
      ref_outputs(c, &w, ref);
      for (int o = 0; o < no; o++) worst = fmax(worst, fabs(out[(size_t)b * no + o] - ref[o]));
      CHECK(qkd_dm_vjp(c, params, x + (size_t)b * nf, dout + (size_t)b * no, dp1, dx1, &err) == 0);
      for (int f = 0; f < nf; f++) worst_d = fmax(worst_d, fabs(dx[(size_t)b * nf + f] - dx1[f]) / (1 + fabs(dx1[f])));
    }
    for (int i = 0; i < np; i++) worst_d = fmax(worst_d, fabs(dp[i] - 0.5 - dps[i]) / (1 + fabs(dps[i])));
    if (worst > TOL_OUT || worst_d > 1e-9)
      fprintf(stderr, "dmk on %s (%d qubits, segments %d): outputs off by %.3g, gradients by %.3g\n", c->name,
              c->n_qubits, seg, worst, worst_d);
    CHECK(worst <= TOL_OUT);
    CHECK(worst_d <= 1e-9);
    cov->dmk++;
    if (seg == 0) { /* f32 entry points; the pool on 1 and 2 threads */
      float *pf = xcalloc((size_t)np + 1, sizeof(float)), *xf = xcalloc((size_t)B * nf + 1, sizeof(float));
      float *of = xcalloc((size_t)B * no, sizeof(float)), *dof = xcalloc((size_t)B * no, sizeof(float));
      float *dpf = xcalloc((size_t)np + 1, sizeof(float));
      for (int i = 0; i < np; i++) pf[i] = (float)params[i];
      for (int i = 0; i < B * nf; i++) xf[i] = (float)x[i];
      for (int i = 0; i < B * no; i++) dof[i] = (float)dout[i];
      k.fwd_f32(&k, pf, nf ? xf : NULL, B, 7, 0, of, NULL);
      k.bwd_f32(&k, pf, nf ? xf : NULL, B, dof, dpf, NULL, NULL);
      double w32 = 0.0;
      for (int i = 0; i < B * no; i++) w32 = fmax(w32, fabs(of[i] - out[i]));
      for (int i = 0; i < np; i++) w32 = fmax(w32, fabs(dpf[i] - (dp[i] - 0.5)) / (1 + fabs(dp[i] - 0.5)));
      CHECK(w32 < 1e-4);
      enum { BP = 150 }; /* three of the pool's chunks */
      double *xp = xcalloc((size_t)BP * nf + 1, sizeof(double)), *dop = xcalloc((size_t)BP * no, sizeof(double));
      double *o1 = xcalloc((size_t)BP * no, sizeof(double)), *o2 = xcalloc((size_t)BP * no, sizeof(double));
      double *g1 = xcalloc((size_t)np + 1, sizeof(double)), *g2 = xcalloc((size_t)np + 1, sizeof(double));
      double *h1 = xcalloc((size_t)BP * nf + 1, sizeof(double)), *h2 = xcalloc((size_t)BP * nf + 1, sizeof(double));
      for (int i = 0; i < BP * nf; i++) xp[i] = 2 * qkd_rng_uniform(seed, 0xc3, i) - 1;
      for (int i = 0; i < BP * no; i++) dop[i] = 2 * qkd_rng_uniform(seed, 0xc4, i) - 1;
      for (int t = 1; t <= 2; t++) {
        qkd_par_pool *pool = qkd_par_create(t);
        CHECK(pool != NULL);
        if (!pool) break;
        CHECK(qkd_par_fwd_f64(pool, &k, params, nf ? xp : NULL, BP, 3, 0, t == 1 ? o1 : o2) == 0);
        CHECK(qkd_par_bwd_f64(pool, &k, params, nf ? xp : NULL, BP, dop, t == 1 ? g1 : g2, nf ? (t == 1 ? h1 : h2) : NULL) == 0);
        qkd_par_destroy(pool);
      }
      CHECK(!memcmp(o1, o2, (size_t)BP * no * sizeof(double)));
      CHECK(!memcmp(g1, g2, (size_t)np * sizeof(double)));
      CHECK(!memcmp(h1, h2, (size_t)BP * nf * sizeof(double)));
      free(pf), free(xf), free(of), free(dof), free(dpf), free(xp), free(dop), free(o1), free(o2), free(g1), free(g2);
      free(h1), free(h2);
    }
    qkd_dmk_free(&k);
  }
  ref_ws_free(&w);
  free(x), free(dout), free(out), free(ref), free(dp), free(dp1), free(dps), free(dx), free(dx1);
}

static void sweep_one(int i, coverage *cov) {
  noisy nc;
  rand_circuit(0x5eed0000u + (uint64_t)i, &nc);
  qkd_ir_circuit *c = &nc.c;
  qkd_error err;
  int ok = qkd_ir_validate(c, &err) == 0;
  if (!ok) fprintf(stderr, "circuit %d invalid: %s\n", i, test_err_text(&err));
  CHECK(ok);
  if (!ok) return;
  int n = c->n_qubits, no = qkd_ir_outputs(c), np = c->n_params, nf = c->n_features;
  size_t dim = (size_t)1 << n;
  double *params = xcalloc((size_t)np, sizeof(double)), *x = xcalloc((size_t)nf, sizeof(double));
  double *dout = xcalloc((size_t)no, sizeof(double)), *out = xcalloc((size_t)no, sizeof(double));
  double *ref = xcalloc((size_t)no, sizeof(double)), *rho = xcalloc(2 * dim * dim, sizeof(double));
  double *dp = xcalloc((size_t)np, sizeof(double)), *dx = xcalloc((size_t)nf, sizeof(double));
  rand_inputs(c, 0xfeed0000u + (uint64_t)i, params, x, dout);
  if (c->encode == QKD_ENCODE_AMPLITUDE && i % 17 == 0) memset(x, 0, (size_t)nf * sizeof(double)); /* |0…0> */
  ref_ws w = ref_ws_new(n);

  CHECK(qkd_dm_forward(c, params, x, out, rho, &err) == 0);
  ref_run(c, params, x, -1, 0, 0, &w);
  ref_outputs(c, &w, ref);
  for (int o = 0; o < no; o++) {
    if (fabs(out[o] - ref[o]) > TOL_OUT) fprintf(stderr, "circuit %d output %d: %.15g vs %.15g\n", i, o, out[o], ref[o]);
    CHECK_NEAR(out[o], ref[o], TOL_OUT);
  }
  check_rho(rho, &w);

  for (int p = 0; p < np; p++) dp[p] = 0.25; /* d_params accumulates */
  CHECK(qkd_dm_vjp(c, params, x, dout, dp, dx, &err) == 0);
  for (int p = 0; p < np; p++) dp[p] -= 0.25;
  int zero_row = 1;
  for (int f = 0; f < nf; f++) zero_row &= x[f] == 0.0;
  int amp_zero = c->encode == QKD_ENCODE_AMPLITUDE && zero_row;
  int feat_angles = 0;
  for (int k = 0; k < c->n_gates; k++)
    for (int s = 0; s < 3; s++) feat_angles |= c->gates[k].angle[s].kind == QKD_ANGLE_FEATURE;
  for (int f = 0; amp_zero && !feat_angles && f < nf; f++) CHECK(dx[f] == 0.0); /* the promise for |0…0> */
  check_fd(c, params, x, dout, dp, dx, !amp_zero, &w, cov); /* the normalisation has no derivative at 0 */
  check_pshift(c, params, x, dout, dp, dx, &w, cov);
  check_noiseless(&nc, params, x, dout, cov);
  if (i % 8 == 0) check_kernel(c, params, (uint64_t)i);
  check_dmk(c, params, (uint64_t)i, cov);

  /* noise that does something changes the outputs */
  int active = 0;
  for (int k = 0; k < c->n_channels; k++) active |= c->channels[k].p > 0.0;
  for (int q = 0; c->readout && q < n; q++) active |= c->readout[q].p01 > 0.0 || c->readout[q].p10 > 0.0;
  if (active) {
    noisy z = nc;
    z.c.gates = z.g;
    z.c.n_channels = 0, z.c.channels = NULL, z.c.readout = NULL;
    double *clean = xcalloc((size_t)no, sizeof(double)), diff = 0.0;
    CHECK(qkd_dm_forward(&z.c, params, x, clean, NULL, &err) == 0);
    for (int o = 0; o < no; o++) diff = fmax(diff, fabs(clean[o] - out[o]));
    cov->noisy_p++;
    cov->differs += diff > 1e-9;
    free(clean);
  }

  cov->circuits++;
  cov->enc[c->encode == QKD_ENCODE_AMPLITUDE ? 2 : c->n_encoding_gates ? 1 : 0]++;
  cov->z += c->measure == QKD_MEASURE_Z;
  cov->probs += c->measure == QKD_MEASURE_PROBS;
  cov->readout += c->readout != NULL;
  for (int k = 0; k < c->n_channels; k++) cov->chan_kind[c->channels[k].kind]++;
  if (n > cov->max_n) cov->max_n = n;
  ref_ws_free(&w);
  free(params), free(x), free(dout), free(out), free(ref), free(rho), free(dp), free(dx);
}

/* ==== known values, the channel table, the IR ============================================== */

typedef struct {
  qkd_ir_circuit c;
  qkd_ir_gate g[4];
  qkd_ir_channel ch[2];
  qkd_ir_readout ro[2];
} spot;

static void spot_init(spot *s, int n, qkd_measure_kind m) {
  *s = (spot){.c = {.name = "spot", .n_qubits = n, .measure = m, .gates = s->g, .channels = s->ch}};
}

static void spot_gate(spot *s, qkd_gate_kind k, int q, double th) {
  qkd_ir_gate *g = &s->g[s->c.n_gates++];
  g->kind = k;
  g->q[0] = q;
  if (ref_row(k)->angles) g->angle[0] = (qkd_angle){QKD_ANGLE_CONST, 0, 1.0, th};
}

static void spot_channel(spot *s, qkd_chan_kind k, int q, double p) {
  s->ch[s->c.n_channels++] = (qkd_ir_channel){k, q, p, s->c.n_gates};
}

/* One-qubit outputs of a spot circuit (Z, then probabilities). */
static void spot_run(spot *s, double *z, double probs[2]) {
  qkd_error err;
  CHECK(qkd_ir_validate(&s->c, &err) == 0);
  s->c.measure = QKD_MEASURE_Z;
  CHECK(qkd_dm_forward(&s->c, NULL, NULL, z, NULL, &err) == 0);
  s->c.measure = QKD_MEASURE_PROBS;
  CHECK(qkd_dm_forward(&s->c, NULL, NULL, probs, NULL, &err) == 0);
}

/* Known values of every channel, and noise always changing a circuit that it can reach. */
static void test_known(void) {
  const double p = 0.3;
  double z, pr[2];
  spot s;
  /* depolarizing on |0>: P(1) = 2p/3, <Z> = 1 − 4p/3 (Qiskit's λ = 4p/3) */
  spot_init(&s, 1, QKD_MEASURE_Z);
  spot_channel(&s, QKD_CHAN_DEPOLARIZING, 0, p);
  spot_run(&s, &z, pr);
  CHECK_NEAR(z, 1 - 4 * p / 3, 1e-15);
  CHECK_NEAR(pr[1], 2 * p / 3, 1e-15);
  /* amplitude damping of |1>: P(1) = 1 − γ */
  spot_init(&s, 1, QKD_MEASURE_Z);
  spot_gate(&s, QKD_GATE_X, 0, 0);
  spot_channel(&s, QKD_CHAN_AMPLITUDE_DAMPING, 0, p);
  spot_run(&s, &z, pr);
  CHECK_NEAR(pr[1], 1 - p, 1e-15);
  /* phase damping of |+>, then H: <Z> = 2 Re ρ01 = √(1 − γ) */
  spot_init(&s, 1, QKD_MEASURE_Z);
  spot_gate(&s, QKD_GATE_H, 0, 0);
  spot_channel(&s, QKD_CHAN_PHASE_DAMPING, 0, p);
  spot_gate(&s, QKD_GATE_H, 0, 0);
  spot_run(&s, &z, pr);
  CHECK_NEAR(z, sqrt(1 - p), 1e-15);
  /* bit flip of |0>: <Z> = 1 − 2p; phase flip of |+>, then H: <Z> = 1 − 2p */
  spot_init(&s, 1, QKD_MEASURE_Z);
  spot_channel(&s, QKD_CHAN_BIT_FLIP, 0, p);
  spot_run(&s, &z, pr);
  CHECK_NEAR(z, 1 - 2 * p, 1e-15);
  spot_init(&s, 1, QKD_MEASURE_Z);
  spot_gate(&s, QKD_GATE_H, 0, 0);
  spot_channel(&s, QKD_CHAN_PHASE_FLIP, 0, p);
  spot_gate(&s, QKD_GATE_H, 0, 0);
  spot_run(&s, &z, pr);
  CHECK_NEAR(z, 1 - 2 * p, 1e-15);
  /* read-out of |1> with p10 = 0.2: read 0 with 0.2, <Z> = 0.2 − 0.8; of |0> with p01 = 0.1 */
  spot_init(&s, 2, QKD_MEASURE_Z);
  spot_gate(&s, QKD_GATE_X, 0, 0);
  s.ro[0] = (qkd_ir_readout){0.05, 0.2};
  s.ro[1] = (qkd_ir_readout){0.1, 0.4};
  s.c.readout = s.ro;
  double z2[2], pr4[4];
  qkd_error err;
  s.c.measure = QKD_MEASURE_Z;
  CHECK(qkd_dm_forward(&s.c, NULL, NULL, z2, NULL, &err) == 0);
  CHECK_NEAR(z2[0], 0.2 - 0.8, 1e-15);
  CHECK_NEAR(z2[1], 0.9 - 0.1, 1e-15);
  s.c.measure = QKD_MEASURE_PROBS; /* true |10>: read q0 = 1 w.p. 0.8, q1 = 1 w.p. 0.1 */
  CHECK(qkd_dm_forward(&s.c, NULL, NULL, pr4, NULL, &err) == 0);
  CHECK_NEAR(pr4[0], 0.2 * 0.9, 1e-15);
  CHECK_NEAR(pr4[1], 0.2 * 0.1, 1e-15);
  CHECK_NEAR(pr4[2], 0.8 * 0.9, 1e-15);
  CHECK_NEAR(pr4[3], 0.8 * 0.1, 1e-15);
  /* every kind changes RY(0.9); channel; RY(0.8) measured in Z (and p = 0 does not) */
  for (int k = 0; k < QKD_CHAN_COUNT; k++) {
    if (k == QKD_CHAN_READOUT) continue;
    double zs[2];
    for (int on = 0; on < 2; on++) {
      spot_init(&s, 1, QKD_MEASURE_Z);
      spot_gate(&s, QKD_GATE_RY, 0, 0.9);
      spot_channel(&s, (qkd_chan_kind)k, 0, on ? p : 0.0);
      spot_gate(&s, QKD_GATE_RY, 0, 0.8);
      spot_run(&s, &zs[on], pr);
    }
    CHECK_NEAR(zs[0], cos(1.7), 1e-15);
    if (fabs(zs[1] - zs[0]) <= 1e-3) fprintf(stderr, "channel %s changes nothing\n", qkd_chan(k)->name);
    CHECK(fabs(zs[1] - zs[0]) > 1e-3);
  }
}

/* The channel table: its self-check, names, and its Kraus operators against the reference's. */
static void test_table(void) {
  qkd_error err;
  int ok = qkd_chan_table_check(&err) == 0;
  if (!ok) fprintf(stderr, "%s\n", test_err_text(&err));
  CHECK(ok);
  static const char *names[] = {"depolarizing", "amplitude_damping", "phase_damping", "bit_flip", "phase_flip", "readout"};
  for (int k = 0; k < QKD_CHAN_COUNT; k++) {
    CHECK(qkd_chan_lookup(names[k]) == k);
    CHECK(qkd_chan(k)->lo == 0.0 && qkd_chan(k)->hi == 1.0);
    CHECK(qkd_chan_is_quantum(k) == (k != QKD_CHAN_READOUT));
    if (k == QKD_CHAN_READOUT) continue;
    for (double p = 0.0; p <= 1.0; p += 0.125) {
      cplx K[4][4];
      double T[QKD_CHAN_MAX_KRAUS][4][2];
      int nk = ref_kraus((qkd_chan_kind)k, p, K);
      CHECK(qkd_chan(k)->n_kraus == nk);
      qkd_chan_kraus(k, p, T);
      double d = 0.0;
      for (int i = 0; i < nk; i++)
        for (int e = 0; e < 4; e++) d = fmax(d, cabs(T[i][e][0] + I * T[i][e][1] - K[i][e]));
      CHECK(d < 1e-15);
    }
  }
  CHECK(qkd_chan_lookup("amplitude") == -1);
  CHECK(!qkd_chan_param_ok(QKD_CHAN_BIT_FLIP, -1e-17) && !qkd_chan_param_ok(QKD_CHAN_BIT_FLIP, 1.0000001));
  CHECK(!qkd_chan_param_ok(QKD_CHAN_BIT_FLIP, NAN));
  double m[2][2];
  qkd_chan_readout_matrix(0.1, 0.3, m);
  CHECK(m[1][0] == 0.1 && m[0][1] == 0.3 && m[0][0] == 0.9 && m[1][1] == 0.7);
}

/* Validation, dump and fingerprint of channels and read-out. */
static void test_ir(void) {
  qkd_ir_gate g[3];
  memset(g, 0, sizeof g);
  g[0].kind = QKD_GATE_RY;
  g[0].angle[0] = (qkd_angle){QKD_ANGLE_PARAM, 0, 1.5, 0.25};
  g[1].kind = QKD_GATE_CNOT;
  g[1].q[1] = 1;
  g[2].kind = QKD_GATE_U3;
  g[2].q[0] = 1;
  g[2].angle[0] = (qkd_angle){QKD_ANGLE_FEATURE, 0, 1, 0};
  g[2].angle[1] = (qkd_angle){QKD_ANGLE_CONST, 0, 1, 0.5};
  g[2].angle[2] = (qkd_angle){QKD_ANGLE_PARAM, 1, -1, 0};
  qkd_ir_circuit c = {.name = "h", .n_qubits = 2, .n_params = 2, .n_features = 1, .measure = QKD_MEASURE_PROBS,
                      .n_gates = 3, .gates = g};
  qkd_error err;
  CHECK(qkd_ir_validate(&c, &err) == 0);
  CHECK(!qkd_ir_noisy(&c));
  /* the fingerprint of this noiseless circuit as computed before noise existed */
  uint64_t h0 = qkd_ir_hash(&c);
  CHECK(h0 == 0x53bbe827045ef8d6ull);

  qkd_ir_channel ch[3] = {{QKD_CHAN_DEPOLARIZING, 0, 0.1, 0}, {QKD_CHAN_AMPLITUDE_DAMPING, 1, 0.2, 2},
                          {QKD_CHAN_PHASE_FLIP, 1, 0.3, 2}};
  qkd_ir_readout ro[2] = {{0.01, 0.02}, {0.03, 0.04}};
  c.n_channels = 3;
  c.channels = ch;
  CHECK(qkd_ir_validate(&c, &err) == 0);
  CHECK(qkd_ir_noisy(&c));
  uint64_t h1 = qkd_ir_hash(&c);
  CHECK(h1 != h0);
  ch[1].p = 0.25;
  CHECK(qkd_ir_hash(&c) != h1);
  ch[1].p = 0.2;
  ch[1].after = 1;
  CHECK(qkd_ir_hash(&c) != h1);
  ch[1].after = 2;
  ch[2].kind = QKD_CHAN_BIT_FLIP;
  CHECK(qkd_ir_hash(&c) != h1);
  ch[2].kind = QKD_CHAN_PHASE_FLIP;
  CHECK(qkd_ir_hash(&c) == h1);
  c.readout = ro;
  CHECK(qkd_ir_validate(&c, &err) == 0);
  uint64_t h2 = qkd_ir_hash(&c);
  CHECK(h2 != h1);
  ro[1].p10 = 0.05;
  CHECK(qkd_ir_hash(&c) != h2);
  ro[1].p10 = 0.04;
  c.n_channels = 0;
  c.channels = NULL;
  CHECK(qkd_ir_noisy(&c)); /* read-out alone is noise */
  CHECK(qkd_ir_hash(&c) != h0);
  c.readout = NULL;
  CHECK(qkd_ir_hash(&c) == h0);

  /* dump: each channel where it acts, then the read-out */
  c.n_channels = 3;
  c.channels = ch;
  c.readout = ro;
  char buf[4096] = {0};
  FILE *f = fmemopen(buf, sizeof buf - 1, "w");
  CHECK(f != NULL);
  if (f) {
    qkd_ir_dump(&c, f);
    fclose(f);
  }
  const char *a = strstr(buf, "~ depolarizing q0 p=0.10000000000000001"), *b = strstr(buf, "  0 ry");
  const char *d = strstr(buf, "~ amplitude_damping q1 gamma=0.20000000000000001"), *e = strstr(buf, "  2 u3");
  const char *p = strstr(buf, "~ phase_flip q1 p=0.29999999999999999"), *r = strstr(buf, "readout q1 p01=0.029999999999999999");
  CHECK(a && b && a < b);
  CHECK(d && e && d < e && p && d < p && p < e);
  CHECK(r && r > e);
  if (!(a && b && d && e && p && r)) fprintf(stderr, "dump:\n%s", buf);

  /* every broken invariant is reported */
  struct {
    int field;
    double v;
    const char *msg;
  } bad[] = {{0, QKD_CHAN_READOUT, "bad kind"},  {0, QKD_CHAN_COUNT, "bad kind"}, {0, -1, "bad kind"},
             {1, 2, "qubit 2 out of range"},     {1, -1, "out of range"},      {2, 1.5, "outside [0, 1]"},
             {2, -0.01, "outside [0, 1]"},       {2, NAN, "outside [0, 1]"},    {3, 4, "after 4 outside 0..3"},
             {3, -1, "outside 0..3"},            {3, 0, "precedes"},           {4, 1.01, "readout of qubit 1: p10"},
             {5, -0.5, "readout of qubit 1: p01"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    qkd_ir_channel cc[3];
    qkd_ir_readout rr[2];
    memcpy(cc, ch, sizeof cc);
    memcpy(rr, ro, sizeof rr);
    c.channels = cc;
    c.readout = rr;
    switch (bad[i].field) {
    case 0: cc[2].kind = (qkd_chan_kind)(int)bad[i].v; break;
    case 1: cc[2].qubit = (int)bad[i].v; break;
    case 2: cc[2].p = bad[i].v; break;
    case 3: cc[2].after = (int)bad[i].v; break;
    case 4: rr[1].p10 = bad[i].v; break;
    case 5: rr[1].p01 = bad[i].v; break;
    }
    memset(&err, 0, sizeof err);
    int failed = qkd_ir_validate(&c, &err) != 0;
    CHECK(failed && err.kind == QKD_ERR_INTERNAL && strstr(err.msg, bad[i].msg));
    if (!failed || !strstr(err.msg, bad[i].msg)) fprintf(stderr, "bad %zu: '%s'\n", i, err.msg);
  }
  c.channels = NULL;
  c.readout = NULL;
  CHECK(qkd_ir_validate(&c, &err) != 0 && strstr(err.msg, "no channel array"));
  c.n_channels = -1;
  CHECK(qkd_ir_validate(&c, &err) != 0 && strstr(err.msg, "negative channel count"));
}

/* Sizes beyond the engine are refused, not attempted. */
static void test_limits(void) {
  qkd_ir_circuit c = {.name = "big", .n_qubits = QKD_DM_MAX_QUBITS + 1};
  qkd_error err;
  double out[QKD_DM_MAX_QUBITS + 1];
  qkd_kernel k;
  memset(&err, 0, sizeof err);
  CHECK(qkd_dm_forward(&c, NULL, NULL, out, NULL, &err) == -1 && err.kind == QKD_ERR_INPUT);
  memset(&err, 0, sizeof err);
  CHECK(qkd_dm_vjp(&c, NULL, NULL, out, NULL, NULL, &err) == -1 && err.kind == QKD_ERR_INPUT);
  memset(&err, 0, sizeof err);
  CHECK(qkd_dm_kernel(&c, &k, &err) == -1 && err.kind == QKD_ERR_INPUT);
  CHECK(qkd_dm_bytes(8) == 16u << 16);
}

/* Shots: the kernel samples the read-bit distribution, deterministically in (seed, sample). */
static void test_shots(void) {
  spot s;
  spot_init(&s, 2, QKD_MEASURE_PROBS);
  spot_gate(&s, QKD_GATE_H, 0, 0);
  spot_channel(&s, QKD_CHAN_AMPLITUDE_DAMPING, 0, 0.4);
  s.ro[1] = (qkd_ir_readout){0.25, 0.0};
  s.c.readout = s.ro;
  double exact[4], a[8], b[8];
  qkd_error err;
  CHECK(qkd_dm_forward(&s.c, NULL, NULL, exact, NULL, &err) == 0);
  s.c.shots = 20000;
  qkd_kernel k;
  CHECK(qkd_dm_kernel(&s.c, &k, &err) == 0);
  k.fwd_f64(&k, NULL, NULL, 2, 11, 0, a, NULL);
  k.fwd_f64(&k, NULL, NULL, 1, 11, 1, b + 4, NULL); /* the second sample alone */
  for (int i = 0; i < 4; i++) {
    CHECK_NEAR(a[i], exact[i], 5 * sqrt(exact[i] * (1 - exact[i]) / 20000) + 1e-12);
    CHECK(a[4 + i] == b[4 + i]);
  }
}

int main(void) {
  test_table();
  test_ir();
  test_known();
  test_limits();
  test_shots();
  int spot_checks = test_checks;
  coverage cov;
  memset(&cov, 0, sizeof cov);
  for (int i = 0; i < N_CIRCUITS; i++) sweep_one(i, &cov);
  for (int k = 0; k < QKD_CHAN_COUNT; k++)
    if (k != QKD_CHAN_READOUT) CHECK(cov.chan_kind[k] > 0);
  CHECK(cov.enc[0] > 0 && cov.enc[1] > 0 && cov.enc[2] > 0 && cov.z > 0 && cov.probs > 0 && cov.readout > 0);
  CHECK(cov.max_n == MAX_Q);
  CHECK(cov.differs > cov.noisy_p / 2); /* active noise mostly shows (not on states it leaves alone) */
  printf("sweep: %d circuits (1..%d qubits; %d plain, %d gate-encoded, %d amplitude; %d Z, %d probs; %d with "
         "read-out), channels",
         cov.circuits, cov.max_n, cov.enc[0], cov.enc[1], cov.enc[2], cov.z, cov.probs, cov.readout);
  for (int k = 0; k < QKD_CHAN_COUNT; k++)
    if (k != QKD_CHAN_READOUT) printf(" %s %d", qkd_chan(k)->name, cov.chan_kind[k]);
  printf("; %d finite differences, %d parameter shifts, %d state-vector comparisons, %d fast-kernel batches; noise "
         "changed %d of %d\n",
         cov.fd, cov.pshift, cov.sv, cov.dmk, cov.differs, cov.noisy_p);
  printf("checks: %d spot, %d sweep\n", spot_checks, test_checks - spot_checks);
  return test_done("test_rt_dmsim");
}
