/* qsim.c — the reference circuit interpreter (see qsim.h). One sample at a time, one gate at a
 * time, double precision throughout; every gate is a 2×2 matrix applied to amplitude pairs
 * (controlled gates: only the pairs whose control bit is 1), SWAP exchanges amplitudes.
 *
 * Adjoint backward for one sample, outputs O_o = <ψ|M_o|ψ> with diagonal M_o, upstream d_o:
 *   f = Σ_o d_o O_o = <ψ|M|ψ>, M = Σ_o d_o M_o (diagonal, weights w_i);
 *   φ = ψ, λ = Mψ; for gates k = N..1: with U_k = exp(-iθ G/2) (G = Pauli on the target, times
 *   |1><1| on the control for controlled rotations) df/dθ_k = Im<λ|G|φ>; then φ ← U_k†φ,
 *   λ ← U_k†λ. At the end λ = V†Mψ and, for amplitude encoding ψ0 = x/|x| (real), df/dψ0 = 2 Re λ
 *   and df/dx = (g − ψ0 (ψ0·g)) / |x|. */
#include "qsim.h"
#include "qkd_rng.h"

#include <complex.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef double complex cplx;

#define SQRT1_2 0.70710678118654752440

static int is_controlled(qkd_gate_kind k) {
  return k == QKD_GATE_CNOT || k == QKD_GATE_CZ || k == QKD_GATE_CRX || k == QKD_GATE_CRY ||
         k == QKD_GATE_CRZ;
}

/* The 2×2 matrix a gate applies to its target (for controlled gates: when the control is 1). */
static void gate_matrix(qkd_gate_kind kind, double th, cplx m[2][2]) {
  double c = cos(0.5 * th), s = sin(0.5 * th);
  m[0][0] = 1; m[0][1] = 0; m[1][0] = 0; m[1][1] = 1;
  switch (kind) {
  case QKD_GATE_H: m[0][0] = SQRT1_2; m[0][1] = SQRT1_2; m[1][0] = SQRT1_2; m[1][1] = -SQRT1_2; break;
  case QKD_GATE_X:
  case QKD_GATE_CNOT: m[0][0] = 0; m[0][1] = 1; m[1][0] = 1; m[1][1] = 0; break;
  case QKD_GATE_Y: m[0][0] = 0; m[0][1] = -I; m[1][0] = I; m[1][1] = 0; break;
  case QKD_GATE_Z:
  case QKD_GATE_CZ: m[1][1] = -1; break;
  case QKD_GATE_S: m[1][1] = I; break;
  case QKD_GATE_T: m[1][1] = SQRT1_2 + SQRT1_2 * I; break;
  case QKD_GATE_SX:
    m[0][0] = 0.5 + 0.5 * I; m[0][1] = 0.5 - 0.5 * I;
    m[1][0] = 0.5 - 0.5 * I; m[1][1] = 0.5 + 0.5 * I;
    break;
  case QKD_GATE_RX:
  case QKD_GATE_CRX: m[0][0] = c; m[0][1] = -I * s; m[1][0] = -I * s; m[1][1] = c; break;
  case QKD_GATE_RY:
  case QKD_GATE_CRY: m[0][0] = c; m[0][1] = -s; m[1][0] = s; m[1][1] = c; break;
  case QKD_GATE_RZ:
  case QKD_GATE_CRZ: m[0][0] = c - I * s; m[1][1] = c + I * s; break;
  default: break; /* SWAP is handled by apply_gate */
  }
}

/* The Pauli generator G of a rotation gate: U(θ) = exp(-iθG/2) on the target. */
static void gate_generator(qkd_gate_kind kind, cplx m[2][2]) {
  switch (kind) {
  case QKD_GATE_RX: case QKD_GATE_CRX: gate_matrix(QKD_GATE_X, 0, m); break;
  case QKD_GATE_RY: case QKD_GATE_CRY: gate_matrix(QKD_GATE_Y, 0, m); break;
  default: gate_matrix(QKD_GATE_Z, 0, m); break;
  }
}

static size_t bit_of(int n, int q) { return (size_t)1 << (n - 1 - q); }

/* psi ← m psi on `target`, only where `control` (if ≥ 0) is 1. */
static void apply_1q(cplx *psi, int n, int target, int control, cplx m[2][2]) {
  size_t dim = (size_t)1 << n, tb = bit_of(n, target), cb = control >= 0 ? bit_of(n, control) : 0;
  for (size_t i = 0; i < dim; i++) {
    if ((i & tb) || (cb && !(i & cb))) continue;
    size_t j = i | tb;
    cplx a = psi[i], b = psi[j];
    psi[i] = m[0][0] * a + m[0][1] * b;
    psi[j] = m[1][0] * a + m[1][1] * b;
  }
}

static void apply_gate(cplx *psi, int n, const qkd_ir_gate *g, double th, int inverse) {
  if (g->kind == QKD_GATE_SWAP) {
    size_t dim = (size_t)1 << n, ab = bit_of(n, g->q[0]), bb = bit_of(n, g->q[1]);
    for (size_t i = 0; i < dim; i++)
      if ((i & ab) && !(i & bb)) {
        size_t j = (i & ~ab) | bb;
        cplx t = psi[i]; psi[i] = psi[j]; psi[j] = t;
      }
    return;
  }
  cplx m[2][2];
  gate_matrix(g->kind, th, m);
  if (inverse) {
    cplx t = m[0][1];
    m[0][0] = conj(m[0][0]); m[1][1] = conj(m[1][1]);
    m[0][1] = conj(m[1][0]); m[1][0] = conj(t);
  }
  if (is_controlled(g->kind)) apply_1q(psi, n, g->q[1], g->q[0], m);
  else apply_1q(psi, n, g->q[0], -1, m);
}

/* <a| G |b> for the generator of rotation gate g (with the control projector). */
static cplx generator_overlap(const cplx *a, const cplx *b, int n, const qkd_ir_gate *g) {
  cplx m[2][2];
  gate_generator(g->kind, m);
  int ctl = is_controlled(g->kind);
  int target = ctl ? g->q[1] : g->q[0];
  size_t dim = (size_t)1 << n, tb = bit_of(n, target), cb = ctl ? bit_of(n, g->q[0]) : 0;
  cplx sum = 0;
  for (size_t i = 0; i < dim; i++) {
    if ((i & tb) || (cb && !(i & cb))) continue;
    size_t j = i | tb;
    sum += conj(a[i]) * (m[0][0] * b[i] + m[0][1] * b[j]) + conj(a[j]) * (m[1][0] * b[i] + m[1][1] * b[j]);
  }
  return sum;
}

/* psi ← G psi (generator with control projector: amplitudes with control 0 become 0). */
static void apply_generator(cplx *psi, int n, const qkd_ir_gate *g) {
  cplx m[2][2];
  gate_generator(g->kind, m);
  if (is_controlled(g->kind)) {
    size_t dim = (size_t)1 << n, cb = bit_of(n, g->q[0]);
    for (size_t i = 0; i < dim; i++)
      if (!(i & cb)) psi[i] = 0;
    apply_1q(psi, n, g->q[1], g->q[0], m);
  } else {
    apply_1q(psi, n, g->q[0], -1, m);
  }
}

/* The initial state; returns |x| for amplitude encoding (0 for a zero vector), else 1. */
static double init_state(const qkd_ir_circuit *ir, const double *features, cplx *psi) {
  size_t dim = (size_t)1 << ir->n_qubits;
  memset(psi, 0, dim * sizeof(cplx));
  if (ir->encode == QKD_ENCODE_AMPLITUDE) {
    double ss = 0.0;
    for (int i = 0; i < ir->n_features; i++) ss += features[i] * features[i];
    if (ss > 0.0) {
      double r = sqrt(ss);
      for (int i = 0; i < ir->n_features; i++) psi[i] = features[i] / r;
      return r;
    }
    psi[0] = 1;
    return 0.0;
  }
  psi[0] = 1;
  return 1.0;
}

static double gate_angle(const qkd_ir_gate *g, const double *params, const double *features) {
  return g->angle.kind == QKD_ANGLE_NONE ? 0.0 : qkd_ir_angle(&g->angle, params, features);
}

/* Runs gates [from, to) on psi; gate `over` (if ≥ 0) uses angle `over_th` instead. */
static void run_gates(const qkd_ir_circuit *ir, const double *params, const double *features,
                      cplx *psi, int from, int to, int over, double over_th) {
  for (int k = from; k < to; k++) {
    const qkd_ir_gate *g = &ir->gates[k];
    double th = k == over ? over_th : gate_angle(g, params, features);
    apply_gate(psi, ir->n_qubits, g, th, 0);
  }
}

/* Exact outputs (and probabilities into probs[2^n]) of a final state. */
static void state_outputs(const qkd_ir_circuit *ir, const cplx *psi, double *probs, double *out) {
  int n = ir->n_qubits;
  size_t dim = (size_t)1 << n;
  for (size_t i = 0; i < dim; i++) probs[i] = creal(psi[i]) * creal(psi[i]) + cimag(psi[i]) * cimag(psi[i]);
  if (!out) return;
  if (ir->measure == QKD_MEASURE_PROBS) {
    memcpy(out, probs, dim * sizeof(double));
    return;
  }
  for (int q = 0; q < n; q++) {
    double z = 0.0;
    size_t b = bit_of(n, q);
    for (size_t i = 0; i < dim; i++) z += (i & b) ? -probs[i] : probs[i];
    out[q] = z;
  }
}

/* One sample's outputs, exact or (ir->shots > 0) sampled with (seed, sample). */
static void sample_outputs(const qkd_ir_circuit *ir, const double *params, const double *features,
                           int over, double over_th, uint64_t seed, uint64_t sample, cplx *psi,
                           double *probs, double *out) {
  init_state(ir, features, psi);
  run_gates(ir, params, features, psi, 0, ir->n_gates, over, over_th);
  if (ir->shots > 0) {
    state_outputs(ir, psi, probs, NULL);
    qkd_kernel_sample_f64(ir->n_qubits, ir->measure, ir->shots, probs, seed, sample, out);
  } else {
    state_outputs(ir, psi, probs, out);
  }
}

/* Adjoint VJP of one sample: d_params += …, d_feat (if not NULL) overwritten. */
static void adjoint_sample(const qkd_ir_circuit *ir, const double *params, const double *features,
                           const double *d_out, double *d_params, double *d_feat, cplx *phi,
                           cplx *lam) {
  int n = ir->n_qubits;
  size_t dim = (size_t)1 << n;
  if (d_feat) memset(d_feat, 0, (size_t)ir->n_features * sizeof(double));
  double r = init_state(ir, features, phi);
  run_gates(ir, params, features, phi, 0, ir->n_gates, -1, 0.0);
  for (size_t i = 0; i < dim; i++) {
    double w;
    if (ir->measure == QKD_MEASURE_PROBS) {
      w = d_out[i];
    } else {
      w = 0.0;
      for (int q = 0; q < n; q++) w += (i & bit_of(n, q)) ? -d_out[q] : d_out[q];
    }
    lam[i] = w * phi[i];
  }
  for (int k = ir->n_gates - 1; k >= 0; k--) {
    const qkd_ir_gate *g = &ir->gates[k];
    double th = gate_angle(g, params, features);
    if (g->angle.kind == QKD_ANGLE_PARAM || g->angle.kind == QKD_ANGLE_FEATURE) {
      double dth = cimag(generator_overlap(lam, phi, n, g));
      if (g->angle.kind == QKD_ANGLE_PARAM) d_params[g->angle.index] += g->angle.scale * dth;
      else if (d_feat) d_feat[g->angle.index] += g->angle.scale * dth;
    }
    apply_gate(phi, n, g, th, 1);
    apply_gate(lam, n, g, th, 1);
  }
  if (d_feat && ir->encode == QKD_ENCODE_AMPLITUDE && r > 0.0) {
    /* ψ0_i = x_i / r; g_i = 2 Re λ_i; df/dx = (g − ψ0 (ψ0·g)) / r */
    double dot = 0.0;
    for (int i = 0; i < ir->n_features; i++) dot += (features[i] / r) * 2.0 * creal(lam[i]);
    for (int i = 0; i < ir->n_features; i++)
      d_feat[i] += (2.0 * creal(lam[i]) - (features[i] / r) * dot) / r;
  }
}

/* ---- workspace ---------------------------------------------------------------------------- */

typedef struct {
  cplx *phi, *lam;
  double *probs, *pd, *dpd, *fd, *dfd, *od, *dod;
} qsim_ws;

static unsigned char *take(unsigned char **p, size_t bytes) {
  unsigned char *r = *p;
  *p += (bytes + 63) & ~(size_t)63;
  return r;
}

/* Carves the workspace (layout fits qkd_kernel_workspace_bytes). */
static qsim_ws carve(const qkd_ir_circuit *ir, void *workspace) {
  size_t dim = (size_t)1 << ir->n_qubits;
  unsigned char *p = (unsigned char *)(((uintptr_t)workspace + 63) & ~(uintptr_t)63);
  qsim_ws w;
  w.phi = (cplx *)(void *)take(&p, dim * sizeof(cplx));
  w.lam = (cplx *)(void *)take(&p, dim * sizeof(cplx));
  (void)take(&p, dim * sizeof(cplx)); /* third state vector: unused here */
  w.probs = (double *)(void *)take(&p, dim * sizeof(double));
  (void)take(&p, dim * sizeof(double));
  w.pd = (double *)(void *)take(&p, (size_t)ir->n_params * sizeof(double) + 8);
  w.dpd = (double *)(void *)take(&p, (size_t)ir->n_params * sizeof(double) + 8);
  w.fd = (double *)(void *)take(&p, (size_t)ir->n_features * sizeof(double) + 8);
  w.dfd = (double *)(void *)take(&p, (size_t)ir->n_features * sizeof(double) + 8);
  w.od = (double *)(void *)take(&p, (size_t)qkd_ir_outputs(ir) * sizeof(double) + 8);
  w.dod = (double *)(void *)take(&p, (size_t)qkd_ir_outputs(ir) * sizeof(double) + 8);
  return w;
}

static void *ws_alloc(const qkd_ir_circuit *ir) {
  void *p = malloc(qkd_kernel_workspace_bytes(ir));
  if (!p) abort();
  return p;
}

static const double *row(const double *base, int i, int width) {
  return base ? base + (size_t)i * (size_t)width : NULL;
}

/* ---- kernel entry points ------------------------------------------------------------------ */

static void fwd_f64(const qkd_kernel *k, const double *params, const double *features, int batch,
                    uint64_t seed, uint64_t first_sample, double *outputs, void *workspace) {
  const qkd_ir_circuit *ir = k->ir;
  qsim_ws w = carve(ir, workspace);
  int no = qkd_ir_outputs(ir);
  for (int b = 0; b < batch; b++)
    sample_outputs(ir, params, row(features, b, ir->n_features), -1, 0.0, seed,
                   first_sample + (uint64_t)b, w.phi, w.probs, outputs + (size_t)b * no);
}

static void bwd_f64(const qkd_kernel *k, const double *params, const double *features, int batch,
                    const double *d_outputs, double *d_params, double *d_features,
                    void *workspace) {
  const qkd_ir_circuit *ir = k->ir;
  qsim_ws w = carve(ir, workspace);
  int no = qkd_ir_outputs(ir), nf = ir->n_features;
  for (int b = 0; b < batch; b++)
    adjoint_sample(ir, params, row(features, b, nf), d_outputs + (size_t)b * no, d_params,
                   d_features ? d_features + (size_t)b * nf : NULL, w.phi, w.lam);
}

static void fwd_f32(const qkd_kernel *k, const float *params, const float *features, int batch,
                    uint64_t seed, uint64_t first_sample, float *outputs, void *workspace) {
  const qkd_ir_circuit *ir = k->ir;
  qsim_ws w = carve(ir, workspace);
  int no = qkd_ir_outputs(ir), nf = ir->n_features;
  for (int p = 0; p < ir->n_params; p++) w.pd[p] = params[p];
  for (int b = 0; b < batch; b++) {
    for (int f = 0; f < nf; f++) w.fd[f] = features[(size_t)b * nf + f];
    sample_outputs(ir, w.pd, w.fd, -1, 0.0, seed, first_sample + (uint64_t)b, w.phi, w.probs, w.od);
    for (int o = 0; o < no; o++) outputs[(size_t)b * no + o] = (float)w.od[o];
  }
}

static void bwd_f32(const qkd_kernel *k, const float *params, const float *features, int batch,
                    const float *d_outputs, float *d_params, float *d_features, void *workspace) {
  const qkd_ir_circuit *ir = k->ir;
  qsim_ws w = carve(ir, workspace);
  int no = qkd_ir_outputs(ir), nf = ir->n_features;
  for (int p = 0; p < ir->n_params; p++) { w.pd[p] = params[p]; w.dpd[p] = 0.0; }
  for (int b = 0; b < batch; b++) {
    for (int f = 0; f < nf; f++) w.fd[f] = features[(size_t)b * nf + f];
    for (int o = 0; o < no; o++) w.dod[o] = d_outputs[(size_t)b * no + o];
    adjoint_sample(ir, w.pd, w.fd, w.dod, w.dpd, d_features ? w.dfd : NULL, w.phi, w.lam);
    if (d_features)
      for (int f = 0; f < nf; f++) d_features[(size_t)b * nf + f] = (float)w.dfd[f];
  }
  for (int p = 0; p < ir->n_params; p++) d_params[p] += (float)w.dpd[p];
}

qkd_kernel qkd_qsim_kernel(const qkd_ir_circuit *ir) {
  qkd_kernel k;
  k.ir = ir;
  k.engine = "interp";
  k.fwd_f64 = fwd_f64;
  k.bwd_f64 = bwd_f64;
  k.fwd_f32 = fwd_f32;
  k.bwd_f32 = bwd_f32;
  k.engine_data = NULL;
  return k;
}

/* ---- tools -------------------------------------------------------------------------------- */

void qkd_qsim_state(const qkd_ir_circuit *ir, const double *params, const double *features,
                    double *state) {
  cplx *psi = malloc(((size_t)1 << ir->n_qubits) * sizeof(cplx));
  if (!psi) abort();
  init_state(ir, features, psi);
  run_gates(ir, params, features, psi, 0, ir->n_gates, -1, 0.0);
  size_t dim = (size_t)1 << ir->n_qubits;
  for (size_t i = 0; i < dim; i++) { state[2 * i] = creal(psi[i]); state[2 * i + 1] = cimag(psi[i]); }
  free(psi);
}

void qkd_qsim_jacobian(const qkd_ir_circuit *ir, const double *params, const double *features,
                       double *jac_z, double *jac_probs) {
  int n = ir->n_qubits, np = ir->n_params;
  size_t dim = (size_t)1 << n;
  cplx *pre = malloc(dim * sizeof(cplx)), *tan = malloc(dim * sizeof(cplx)),
       *psi = malloc(dim * sizeof(cplx));
  double *dp = malloc(dim * sizeof(double));
  if (!pre || !tan || !psi || !dp) abort();
  if (jac_z) memset(jac_z, 0, (size_t)n * np * sizeof(double));
  if (jac_probs) memset(jac_probs, 0, dim * np * sizeof(double));
  init_state(ir, features, psi);
  run_gates(ir, params, features, psi, 0, ir->n_gates, -1, 0.0);
  init_state(ir, features, pre); /* pre = state before gate k */
  for (int k = 0; k < ir->n_gates; k++) {
    const qkd_ir_gate *g = &ir->gates[k];
    double th = gate_angle(g, params, features);
    if (g->angle.kind == QKD_ANGLE_PARAM) {
      /* d|ψ>/dp = scale · U_N…U_{k+1} (−i/2) G U_k |pre> */
      memcpy(tan, pre, dim * sizeof(cplx));
      apply_gate(tan, n, g, th, 0);
      apply_generator(tan, n, g);
      for (size_t i = 0; i < dim; i++) tan[i] *= -0.5 * I * g->angle.scale;
      run_gates(ir, params, features, tan, k + 1, ir->n_gates, -1, 0.0);
      int p = g->angle.index;
      for (size_t i = 0; i < dim; i++) dp[i] = 2.0 * creal(conj(psi[i]) * tan[i]);
      if (jac_probs)
        for (size_t i = 0; i < dim; i++) jac_probs[i * np + p] = dp[i];
      if (jac_z)
        for (int q = 0; q < n; q++) {
          double z = 0.0;
          for (size_t i = 0; i < dim; i++) z += (i & bit_of(n, q)) ? -dp[i] : dp[i];
          jac_z[(size_t)q * np + p] = z;
        }
    }
    apply_gate(pre, n, g, th, 0);
  }
  free(pre); free(tan); free(psi); free(dp);
}

void qkd_qsim_grad_pshift(const qkd_ir_circuit *ir, const double *params, const double *features,
                          int batch, const double *d_outputs, uint64_t seed, uint64_t first_sample,
                          double *d_params, double *d_features) {
  static const double pi = 3.14159265358979323846;
  const double c1 = (sqrt(2.0) + 1.0) / (4.0 * sqrt(2.0)), c2 = (sqrt(2.0) - 1.0) / (4.0 * sqrt(2.0));
  const double shift2[2] = {pi / 2, -pi / 2}, coef2[2] = {0.5, -0.5};
  const double shift4[4] = {pi / 2, -pi / 2, 3 * pi / 2, -3 * pi / 2}, coef4[4] = {c1, -c1, -c2, c2};
  int no = qkd_ir_outputs(ir), nf = ir->n_features;
  void *wsmem = ws_alloc(ir);
  qsim_ws w = carve(ir, wsmem);
  for (int b = 0; b < batch; b++) {
    const double *x = row(features, b, nf), *dout = d_outputs + (size_t)b * no;
    double *dfeat = d_features ? d_features + (size_t)b * nf : NULL;
    if (dfeat) memset(dfeat, 0, (size_t)nf * sizeof(double));
    uint64_t sample = first_sample + (uint64_t)b;
    for (int k = 0; k < ir->n_gates; k++) {
      const qkd_ir_gate *g = &ir->gates[k];
      if (g->angle.kind != QKD_ANGLE_PARAM && g->angle.kind != QKD_ANGLE_FEATURE) continue;
      if (g->angle.kind == QKD_ANGLE_FEATURE && !dfeat) continue;
      int four = is_controlled(g->kind);
      int nt = four ? 4 : 2;
      const double *sh = four ? shift4 : shift2, *co = four ? coef4 : coef2;
      double th = gate_angle(g, params, x), dth = 0.0;
      for (int t = 0; t < nt; t++) {
        /* shifted evaluation number e = 4k + t: its own seed, so its draws are distinct */
        uint64_t eseed = qkd_rng_u64(seed, QKD_STREAM_SHOTS | ((uint64_t)1 << 32), 4 * (uint64_t)k + t);
        sample_outputs(ir, params, x, k, th + sh[t], eseed, sample, w.phi, w.probs, w.od);
        double v = 0.0;
        for (int o = 0; o < no; o++) v += dout[o] * w.od[o];
        dth += co[t] * v;
      }
      if (g->angle.kind == QKD_ANGLE_PARAM) d_params[g->angle.index] += g->angle.scale * dth;
      else dfeat[g->angle.index] += g->angle.scale * dth;
    }
  }
  free(wsmem);
}
