/* dmsim.c — the exact density-matrix engine (see qkd_dmsim.h). ρ is dim × dim, dim = 2^n,
 * row-major; every gate and channel is a small operator A on its qubits (D = 2 or 4 basis
 * patterns), applied to ρ block by block: for every pair of row and column bases (indices with
 * the operator's qubits' bits clear) the D × D block B of ρ becomes Σ_k A_k B A_k†. Nothing
 * here depends on which gate or channel it is.
 *
 * Adjoint VJP of one sample. The ops are the gates and channels in circuit order, ρ_j the state
 * after op j, f = Σ_o d_o O_o = Tr(Λ ρ_N) with the diagonal observable Λ = Σ_o d_o M_o (M_o the
 * measured operator, read-out included: diag of the weights below). Going backwards, Λ_j (the
 * cotangent of ρ_j) follows the dual maps: a gate Λ → U†ΛU, a channel Λ → Σ_k K_k† Λ K_k. At a
 * gate U(θ), ρ_j = U ρ_{j−1} U†, so
 *   df/dθ = Tr(Λ_j (∂U ρ_{j−1} U† + U ρ_{j−1} ∂U†)) = 2 Re Tr(Λ_j ∂U ρ_{j−1} U†)
 *         = 2 Re Tr(Λ_j X ρ_j),   X = ∂U U† (a D × D matrix; ρ_{j−1} U† = U† ρ_j),
 * with ∂U from the gate table (every angle slot, gates of several angles included). ρ_{j−1} is
 * recovered from ρ_j by the inverse gate (ρ → U†ρU). Channels cannot be undone, so the forward
 * pass stores ρ before each run of channels that share an `after` (channels take no
 * parameters: inside a run only Λ is needed) and the backward pass restores it there.
 * At the start, Λ_0 is the cotangent of ρ0; for AMPLITUDE ρ0 = ψ0ψ0ᵀ with ψ0 = x/|x| real,
 * df/dψ0 = 2 Re(Λ_0 ψ0) = g and df/dx = (g − ψ0 (ψ0·g)) / |x|, as in qsim.c.
 *
 * Read-out: C_q[r][t] = P(read r | true t) (qkd_chan_readout_matrix). MEASURE_PROBS outputs are
 * (⊗_q C_q) diag(ρ), so their weights are w = (⊗_q C_qᵀ) d; MEASURE_Z's observable of qubit q
 * is z_q(t) = C_q[0][t] − C_q[1][t] on the true bit t (1 − 2 p01 on 0, 2 p10 − 1 on 1), so
 * w(i) = Σ_q d_q z_q(bit q of i). */
#include "qkd_dmsim.h"

#include <complex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef double complex cplx;

static size_t bit_of(int n, int q) { return (size_t)1 << (n - 1 - q); }

size_t qkd_dm_bytes(int n_qubits) { return ((size_t)1 << (2 * n_qubits)) * sizeof(cplx); }

/* ---- local operators ---------------------------------------------------------------------- */

/* The qubits an operator acts on: D basis patterns at offsets off[] of a basis index whose
 * bits in `mask` are clear (pattern 2·bit(q[0]) + bit(q[1]) for two qubits, as qkd_gates.h). */
typedef struct {
  int D;
  size_t mask;
  size_t off[QKD_GATE_DIM];
} local;

static local local_of(int n, const int *q, int nq) {
  local L;
  L.D = 1 << nq;
  L.mask = 0;
  for (int k = 0; k < nq; k++) L.mask |= bit_of(n, q[k]);
  for (int s = 0; s < L.D; s++) {
    L.off[s] = 0;
    for (int k = 0; k < nq; k++) /* bit k of the pattern, from the most significant */
      if (s >> (nq - 1 - k) & 1) L.off[s] |= bit_of(n, q[k]);
  }
  return L;
}

static local local_gate(int n, const qkd_ir_gate *g) { return local_of(n, g->q, qkd_gate(g->kind)->qubits); }

static local local_qubit(int n, int q) { return local_of(n, &q, 1); }

/* out = A B (D × D) */
static void matmul(int D, const cplx *A, const cplx *B, cplx *out) {
  for (int r = 0; r < D; r++)
    for (int c = 0; c < D; c++) {
      cplx s = 0;
      for (int k = 0; k < D; k++) s += A[r * D + k] * B[k * D + c];
      out[r * D + c] = s;
    }
}

/* out = A† (D × D) */
static void adjoint(int D, const cplx *A, cplx *out) {
  for (int r = 0; r < D; r++)
    for (int c = 0; c < D; c++) out[r * D + c] = conj(A[c * D + r]);
}

/* rho ← Σ_k A_k rho A_k† on L's qubits, A_k = A + k·D² (nA of them). */
static void sandwich(cplx *rho, int n, const local *L, const cplx *A, int nA) {
  size_t dim = (size_t)1 << n;
  int D = L->D;
  cplx Ad[QKD_CHAN_MAX_KRAUS * QKD_GATE_DIM * QKD_GATE_DIM];
  for (int k = 0; k < nA; k++) adjoint(D, A + k * D * D, Ad + k * D * D);
  for (size_t i = 0; i < dim; i++) {
    if (i & L->mask) continue;
    for (size_t j = 0; j < dim; j++) {
      if (j & L->mask) continue;
      cplx B[QKD_GATE_DIM * QKD_GATE_DIM], T[QKD_GATE_DIM * QKD_GATE_DIM], S[QKD_GATE_DIM * QKD_GATE_DIM];
      cplx out[QKD_GATE_DIM * QKD_GATE_DIM] = {0};
      for (int s = 0; s < D; s++)
        for (int t = 0; t < D; t++) B[s * D + t] = rho[(i + L->off[s]) * dim + j + L->off[t]];
      for (int k = 0; k < nA; k++) {
        matmul(D, A + k * D * D, B, T);
        matmul(D, T, Ad + k * D * D, S);
        for (int e = 0; e < D * D; e++) out[e] += S[e];
      }
      for (int s = 0; s < D; s++)
        for (int t = 0; t < D; t++) rho[(i + L->off[s]) * dim + j + L->off[t]] = out[s * D + t];
    }
  }
}

/* Tr(lam · X · rho), X a D × D operator on L's qubits. */
static cplx trace_local(const cplx *lam, const cplx *rho, int n, const local *L, const cplx *X) {
  size_t dim = (size_t)1 << n;
  int D = L->D;
  cplx sum = 0;
  for (size_t i = 0; i < dim; i++) {
    if (i & L->mask) continue;
    for (int s = 0; s < D; s++) {
      size_t row = i + L->off[s]; /* (X rho)[row][a] = Σ_u X[s][u] rho[i + off[u]][a] */
      for (size_t a = 0; a < dim; a++) {
        cplx xr = 0;
        for (int u = 0; u < D; u++) xr += X[s * D + u] * rho[(i + L->off[u]) * dim + a];
        sum += lam[a * dim + row] * xr;
      }
    }
  }
  return sum;
}

/* ---- gates and channels ------------------------------------------------------------------- */

/* The D × D matrix of gate g at angles a (d >= 0: its derivative w.r.t. a[d]), from the table. */
static void gate_matrix(const qkd_ir_gate *g, const double *a, int d, cplx *m) {
  double mm[QKD_GATE_DIM * QKD_GATE_DIM][2];
  qkd_gate_matrix(g->kind, a, d, mm);
  int D = 1 << qkd_gate(g->kind)->qubits;
  for (int i = 0; i < D * D; i++) m[i] = mm[i][0] + I * mm[i][1];
}

/* rho ← U rho U† (inverse: U† rho U, also the dual map of the gate). */
static void apply_gate(cplx *rho, int n, const qkd_ir_gate *g, const double *a, int inverse) {
  local L = local_gate(n, g);
  cplx u[QKD_GATE_DIM * QKD_GATE_DIM], ud[QKD_GATE_DIM * QKD_GATE_DIM];
  gate_matrix(g, a, -1, u);
  if (inverse) adjoint(L.D, u, ud);
  sandwich(rho, n, &L, inverse ? ud : u, 1);
}

/* rho ← Σ K rho K† (dual: Σ K† rho K, the map cotangents follow). */
static void apply_channel(cplx *rho, int n, const qkd_ir_channel *ch, int dual) {
  int nk = qkd_chan(ch->kind)->n_kraus;
  double kr[QKD_CHAN_MAX_KRAUS][4][2];
  cplx K[QKD_CHAN_MAX_KRAUS * 4], A[QKD_CHAN_MAX_KRAUS * 4];
  qkd_chan_kraus(ch->kind, ch->p, kr);
  for (int k = 0; k < nk; k++)
    for (int e = 0; e < 4; e++) K[k * 4 + e] = kr[k][e][0] + I * kr[k][e][1];
  for (int k = 0; dual && k < nk; k++) adjoint(2, K + k * 4, A + k * 4);
  local L = local_qubit(n, ch->qubit);
  sandwich(rho, n, &L, dual ? A : K, nk);
}

/* The initial ρ; returns |x| for amplitude encoding (0 for a zero vector), else 1. */
static double init_rho(const qkd_ir_circuit *ir, const double *features, cplx *rho) {
  size_t dim = (size_t)1 << ir->n_qubits;
  int na = qkd_ir_amplitudes(ir);
  memset(rho, 0, dim * dim * sizeof(cplx));
  double ss = 0.0;
  if (ir->encode == QKD_ENCODE_AMPLITUDE)
    for (int i = 0; i < na; i++) ss += features[i] * features[i];
  if (ss == 0.0) {
    rho[0] = 1;
    return ir->encode == QKD_ENCODE_AMPLITUDE ? 0.0 : 1.0;
  }
  double r = sqrt(ss);
  for (int i = 0; i < na; i++)
    for (int j = 0; j < na; j++) rho[(size_t)i * dim + j] = (features[i] / r) * (features[j] / r);
  return r;
}

/* Number of runs of channels (maximal groups of equal `after`). */
static int channel_runs(const qkd_ir_circuit *ir) {
  int runs = 0;
  for (int c = 0; c < ir->n_channels; c++) runs += c == 0 || ir->channels[c].after != ir->channels[c - 1].after;
  return runs;
}

/* Runs every gate and channel on rho; snap (if not NULL) receives ρ before each run of channels. */
static void run_forward(const qkd_ir_circuit *ir, const double *params, const double *features, cplx *rho,
                        cplx *snap) {
  int n = ir->n_qubits, ch = 0;
  size_t bytes = qkd_dm_bytes(n);
  for (int k = 0; k <= ir->n_gates; k++) {
    if (ch < ir->n_channels && ir->channels[ch].after == k) {
      if (snap) memcpy(snap, rho, bytes), snap += bytes / sizeof(cplx);
      for (; ch < ir->n_channels && ir->channels[ch].after == k; ch++) apply_channel(rho, n, &ir->channels[ch], 0);
    }
    if (k == ir->n_gates) break;
    double a[QKD_GATE_MAX_ANGLES];
    qkd_ir_gate_angles(&ir->gates[k], params, features, a);
    apply_gate(rho, n, &ir->gates[k], a, 0);
  }
}

/* ---- outputs and read-out ----------------------------------------------------------------- */

static void readout_of(const qkd_ir_circuit *ir, int q, double m[2][2]) {
  if (ir->readout) qkd_chan_readout_matrix(ir->readout[q].p01, ir->readout[q].p10, m);
  else qkd_chan_readout_matrix(0.0, 0.0, m);
}

/* v ← (⊗_q C_q) v, or with `transpose` (⊗_q C_qᵀ) v, over the 2^n basis states. */
static void confuse(const qkd_ir_circuit *ir, double *v, int transpose) {
  int n = ir->n_qubits;
  size_t dim = (size_t)1 << n;
  for (int q = 0; ir->readout && q < n; q++) {
    double m[2][2];
    readout_of(ir, q, m);
    if (transpose) {
      double t = m[0][1];
      m[0][1] = m[1][0];
      m[1][0] = t;
    }
    size_t b = bit_of(n, q);
    for (size_t i = 0; i < dim; i++) {
      if (i & b) continue;
      double x = v[i], y = v[i | b];
      v[i] = m[0][0] * x + m[0][1] * y;
      v[i | b] = m[1][0] * x + m[1][1] * y;
    }
  }
}

void qkd_dm_readout_z(const qkd_ir_circuit *ir, int q, double z[2]) {
  double m[2][2];
  readout_of(ir, q, m);
  for (int t = 0; t < 2; t++) z[t] = m[0][t] - m[1][t];
}

/* The read-bit distribution of rho into probs[2^n]. */
static void read_probs(const qkd_ir_circuit *ir, const cplx *rho, double *probs) {
  size_t dim = (size_t)1 << ir->n_qubits;
  for (size_t i = 0; i < dim; i++) probs[i] = creal(rho[i * dim + i]);
  confuse(ir, probs, 0);
}

void qkd_dm_outputs_of_diag(const qkd_ir_circuit *ir, double *diag, double *out) {
  int n = ir->n_qubits;
  size_t dim = (size_t)1 << n;
  if (ir->measure == QKD_MEASURE_PROBS) {
    confuse(ir, diag, 0);
    memcpy(out, diag, dim * sizeof(double));
    return;
  }
  for (int q = 0; q < n; q++) {
    double z[2], s = 0.0;
    qkd_dm_readout_z(ir, q, z);
    for (size_t i = 0; i < dim; i++) s += z[(i & bit_of(n, q)) != 0] * diag[i];
    out[q] = s;
  }
}

void qkd_dm_read_probs_of_diag(const qkd_ir_circuit *ir, double *diag) { confuse(ir, diag, 0); }

/* The exact outputs of rho (probs: scratch of 2^n). */
static void outputs_of(const qkd_ir_circuit *ir, const cplx *rho, double *probs, double *out) {
  size_t dim = (size_t)1 << ir->n_qubits;
  for (size_t i = 0; i < dim; i++) probs[i] = creal(rho[i * dim + i]);
  qkd_dm_outputs_of_diag(ir, probs, out);
}

void qkd_dm_observable(const qkd_ir_circuit *ir, const double *d_out, double *w) {
  int n = ir->n_qubits;
  size_t dim = (size_t)1 << n;
  if (ir->measure == QKD_MEASURE_PROBS) {
    memcpy(w, d_out, dim * sizeof(double));
    confuse(ir, w, 1);
    return;
  }
  memset(w, 0, dim * sizeof(double));
  for (int q = 0; q < n; q++) {
    double z[2];
    qkd_dm_readout_z(ir, q, z);
    for (size_t i = 0; i < dim; i++) w[i] += d_out[q] * z[(i & bit_of(n, q)) != 0];
  }
}

/* ---- entry points ------------------------------------------------------------------------- */

int qkd_dm_check_size(const qkd_ir_circuit *ir, qkd_error *err) {
  if (ir->n_qubits <= QKD_DM_MAX_QUBITS) return 0;
  return qkd_fail(err, QKD_ERR_INPUT, NULL, "the density-matrix engine takes at most %d qubits, not %d (16·4^n bytes a sample)",
                  QKD_DM_MAX_QUBITS, ir->n_qubits);
}

static int no_memory(qkd_error *err, int n) {
  return qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory for the density matrices of %d qubits", n);
}

/* One sample: outputs exact; probs[2^n] (if not NULL) the read-bit distribution. */
static int forward_sample(const qkd_ir_circuit *ir, const double *params, const double *features, double *outputs,
                          double *rho_out, double *probs, qkd_error *err) {
  if (qkd_dm_check_size(ir, err)) return -1;
  size_t dim = (size_t)1 << ir->n_qubits;
  cplx *rho = malloc(qkd_dm_bytes(ir->n_qubits));
  double *scratch = malloc(dim * sizeof(double));
  if (!rho || !scratch) {
    free(rho), free(scratch);
    return no_memory(err, ir->n_qubits);
  }
  init_rho(ir, features, rho);
  run_forward(ir, params, features, rho, NULL);
  outputs_of(ir, rho, scratch, outputs);
  if (probs) read_probs(ir, rho, probs);
  if (rho_out) memcpy(rho_out, rho, qkd_dm_bytes(ir->n_qubits));
  free(rho);
  free(scratch);
  return 0;
}

int qkd_dm_forward(const qkd_ir_circuit *ir, const double *params, const double *features, double *outputs,
                   double *rho, qkd_error *err) {
  return forward_sample(ir, params, features, outputs, rho, NULL, err);
}

/* d_params and d_feat from gate k, with lam = Λ_k and rho = ρ_k (after the gate). */
static void gate_gradient(const qkd_ir_circuit *ir, int k, const double *a, const cplx *lam, const cplx *rho,
                          double *d_params, double *d_feat) {
  const qkd_ir_gate *g = &ir->gates[k];
  const qkd_gate_info *info = qkd_gate(g->kind);
  local L = local_gate(ir->n_qubits, g);
  cplx u[QKD_GATE_DIM * QKD_GATE_DIM], ud[QKD_GATE_DIM * QKD_GATE_DIM];
  gate_matrix(g, a, -1, u);
  adjoint(L.D, u, ud);
  for (int s = 0; s < info->angles; s++) {
    const qkd_angle *an = &g->angle[s];
    if (an->kind != QKD_ANGLE_PARAM && !(an->kind == QKD_ANGLE_FEATURE && d_feat)) continue;
    cplx du[QKD_GATE_DIM * QKD_GATE_DIM], X[QKD_GATE_DIM * QKD_GATE_DIM];
    gate_matrix(g, a, s, du);
    matmul(L.D, du, ud, X);
    double dth = 2.0 * creal(trace_local(lam, rho, ir->n_qubits, &L, X));
    if (an->kind == QKD_ANGLE_PARAM) d_params[an->index] += an->scale * dth;
    else d_feat[an->index] += an->scale * dth;
  }
}

int qkd_dm_vjp(const qkd_ir_circuit *ir, const double *params, const double *features, const double *d_outputs,
               double *d_params, double *d_features, qkd_error *err) {
  if (qkd_dm_check_size(ir, err)) return -1;
  int n = ir->n_qubits, runs = channel_runs(ir);
  size_t dim = (size_t)1 << n, mat = dim * dim, bytes = qkd_dm_bytes(n);
  cplx *rho = malloc(bytes), *lam = calloc(mat, sizeof(cplx)), *snap = runs ? malloc(bytes * (size_t)runs) : NULL;
  double *w = malloc(dim * sizeof(double));
  if (!rho || !lam || (runs && !snap) || !w) {
    free(rho), free(lam), free(snap), free(w);
    return no_memory(err, n);
  }
  if (d_features) memset(d_features, 0, (size_t)ir->n_features * sizeof(double));
  double r = init_rho(ir, features, rho);
  run_forward(ir, params, features, rho, snap);
  qkd_dm_observable(ir, d_outputs, w);
  for (size_t i = 0; i < dim; i++) lam[i * dim + i] = w[i];
  int ch = ir->n_channels - 1, run = runs - 1;
  for (int k = ir->n_gates; k >= 0; k--) {
    if (k < ir->n_gates) {
      const qkd_ir_gate *g = &ir->gates[k];
      double a[QKD_GATE_MAX_ANGLES];
      qkd_ir_gate_angles(g, params, features, a);
      gate_gradient(ir, k, a, lam, rho, d_params, d_features);
      apply_gate(rho, n, g, a, 1);
      apply_gate(lam, n, g, a, 1);
    }
    if (ch >= 0 && ir->channels[ch].after == k) {
      for (; ch >= 0 && ir->channels[ch].after == k; ch--) apply_channel(lam, n, &ir->channels[ch], 1);
      memcpy(rho, snap + (size_t)run-- * mat, bytes);
    }
  }
  if (d_features && ir->encode == QKD_ENCODE_AMPLITUDE && r > 0.0) {
    /* g_i = 2 Re (Λ_0 ψ0)_i over the encoded amplitudes; df/dx = (g − ψ0 (ψ0·g)) / r */
    int nf = qkd_ir_amplitudes(ir);
    double dot = 0.0;
    for (int i = 0; i < nf; i++) {
      cplx s = 0;
      for (int j = 0; j < nf; j++) s += lam[(size_t)i * dim + j] * (features[j] / r);
      w[i] = 2.0 * creal(s);
      dot += (features[i] / r) * w[i];
    }
    for (int i = 0; i < nf; i++) d_features[i] += (w[i] - (features[i] / r) * dot) / r;
  }
  free(rho), free(lam), free(snap), free(w);
  return 0;
}

/* ---- kernel ------------------------------------------------------------------------------- */

static void or_die(int rc, const qkd_error *err) {
  if (rc == 0) return;
  fprintf(stderr, "qkd dm: ");
  qkd_error_print(err, stderr);
  exit(2);
}

static void fwd_f64(const qkd_kernel *k, const double *params, const double *features, int batch, uint64_t seed,
                    uint64_t first_sample, double *outputs, void *workspace) {
  (void)workspace;
  const qkd_ir_circuit *ir = k->ir;
  int no = qkd_ir_outputs(ir), nf = ir->n_features;
  double *probs = ir->shots > 0 ? malloc(((size_t)1 << ir->n_qubits) * sizeof(double)) : NULL;
  qkd_error err = {0};
  if (ir->shots > 0 && !probs) or_die(no_memory(&err, ir->n_qubits), &err);
  for (int b = 0; b < batch; b++) {
    double *out = outputs + (size_t)b * no;
    or_die(forward_sample(ir, params, features ? features + (size_t)b * nf : NULL, out, NULL, probs, &err), &err);
    if (probs)
      (k->sample ? k->sample : qkd_kernel_sample_f64)(ir->n_qubits, ir->measure, ir->shots, probs, seed,
                                                      first_sample + (uint64_t)b, out);
  }
  free(probs);
}

static void bwd_f64(const qkd_kernel *k, const double *params, const double *features, int batch,
                    const double *d_outputs, double *d_params, double *d_features, void *workspace) {
  (void)workspace;
  const qkd_ir_circuit *ir = k->ir;
  int no = qkd_ir_outputs(ir), nf = ir->n_features;
  qkd_error err = {0};
  for (int b = 0; b < batch; b++)
    or_die(qkd_dm_vjp(ir, params, features ? features + (size_t)b * nf : NULL, d_outputs + (size_t)b * no,
                      d_params, d_features ? d_features + (size_t)b * nf : NULL, &err),
           &err);
}

int qkd_dm_kernel(const qkd_ir_circuit *ir, qkd_kernel *k, qkd_error *err) {
  if (qkd_dm_check_size(ir, err)) return -1;
  memset(k, 0, sizeof *k);
  k->ir = ir;
  k->engine = "dm";
  k->fwd_f64 = fwd_f64;
  k->bwd_f64 = bwd_f64;
  k->fwd_f32 = qkd_kernel_fwd_f32_in_f64;
  k->bwd_f32 = qkd_kernel_bwd_f32_in_f64;
  k->engine_data = NULL;
  k->sample = NULL;
  return 0;
}
