/* qsim.c — the reference circuit interpreter (see qsim.h). One sample at a time, one gate at a
 * time, double precision throughout; every gate is its matrix from the gate table (qkd_gates.h):
 * a 2×2 on amplitude pairs (controlled gates: only the pairs whose control bit is 1) or a 4×4
 * on amplitude quadruples. Nothing here depends on which gate it is.
 *
 * Adjoint backward for one sample, outputs O_o = <ψ|M_o|ψ> with diagonal M_o, upstream d_o:
 *   f = Σ_o d_o O_o = <ψ|M|ψ>, M = Σ_o d_o M_o (diagonal, weights w_i);
 *   φ = ψ, λ = Mψ; for gates k = N..1: with U_k = exp(-iθ G/2) (G the row's generator)
 *   df/dθ_k = Im<λ|G|φ>; then φ ← U_k†φ, λ ← U_k†λ. A gate of several angles runs its
 *   decomposition steps backwards the same way, then both states are multiplied by the conjugate
 *   of the decomposition's global phase (so φ, λ are exactly U_k†φ, U_k†λ again). At the end λ = V†Mψ and, for amplitude encoding ψ0 = x/|x| (real), df/dψ0 = 2 Re λ
 *   and df/dx = (g − ψ0 (ψ0·g)) / |x|. */
#include "qsim.h"
#include "qkd_rng.h"

#include <complex.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef double complex cplx;

static size_t bit_of(int n, int q) { return (size_t)1 << (n - 1 - q); }

/* The D×D matrix of gate g (its row in the gate table) at angles a, or with d >= 0 its
 * derivative with respect to a[d]. */
static void gate_matrix(const qkd_ir_gate *g, const double *a, int d, cplx m[QKD_GATE_DIM * QKD_GATE_DIM]) {
  double mm[QKD_GATE_DIM * QKD_GATE_DIM][2];
  qkd_gate_matrix(g->kind, a, d, mm);
  int D = 1 << qkd_gate(g->kind)->qubits;
  for (int i = 0; i < D * D; i++) m[i] = mm[i][0] + I * mm[i][1];
}

static void dagger(int D, cplx *m) {
  for (int r = 0; r < D; r++)
    for (int c = r; c < D; c++) {
      cplx t = m[r * D + c];
      m[r * D + c] = conj(m[c * D + r]);
      m[c * D + r] = conj(t);
    }
}

/* psi ← m psi on the gate's qubits. `structured`: m has the gate's own structure (a unitary of
 * the gate), so a controlled gate only touches the amplitudes whose control is 1; otherwise (a
 * derivative) every amplitude of the gate's qubits is transformed. */
static void apply_matrix(cplx *psi, int n, const qkd_ir_gate *g, const cplx *m, int structured) {
  const qkd_gate_info *info = qkd_gate(g->kind);
  size_t dim = (size_t)1 << n;
  if (info->qubits == 1 || (structured && info->controlled)) { /* 2×2 on (i, i|tb) */
    int one = info->qubits == 1;
    size_t tb = bit_of(n, g->q[one ? 0 : 1]), cb = one ? 0 : bit_of(n, g->q[0]);
    const cplx *u = one ? m : m + 10; /* the controlled block: rows/columns 2, 3 of 4 */
    int st = one ? 2 : 4;
    for (size_t i = 0; i < dim; i++) {
      if ((i & tb) || (cb && !(i & cb))) continue;
      size_t j = i | tb;
      cplx x = psi[i], y = psi[j];
      psi[i] = u[0] * x + u[1] * y;
      psi[j] = u[st] * x + u[st + 1] * y;
    }
    return;
  }
  size_t b0 = bit_of(n, g->q[0]), b1 = bit_of(n, g->q[1]);
  for (size_t i = 0; i < dim; i++) {
    if (i & (b0 | b1)) continue;
    size_t idx[4] = {i, i | b1, i | b0, i | b0 | b1}; /* pattern 2·bit(q0) + bit(q1) */
    cplx v[4], w[4];
    for (int p = 0; p < 4; p++) v[p] = psi[idx[p]];
    for (int r = 0; r < 4; r++) {
      w[r] = 0;
      for (int c = 0; c < 4; c++)
        if (m[r * 4 + c] != 0) w[r] += m[r * 4 + c] * v[c];
    }
    for (int p = 0; p < 4; p++) psi[idx[p]] = w[p];
  }
}

static void apply_gate(cplx *psi, int n, const qkd_ir_gate *g, const double *a, int inverse) {
  cplx m[QKD_GATE_DIM * QKD_GATE_DIM];
  gate_matrix(g, a, -1, m);
  if (inverse) dagger(1 << qkd_gate(g->kind)->qubits, m);
  apply_matrix(psi, n, g, m, 1);
}

/* <a| G |b> for a constant D×D matrix G (table entries) on the gate's qubits. */
static cplx overlap(const cplx *a, const cplx *b, int n, const qkd_ir_gate *g, const qkd_gate_entry *G) {
  const qkd_gate_info *info = qkd_gate(g->kind);
  int D = 1 << info->qubits;
  cplx gm[QKD_GATE_DIM * QKD_GATE_DIM];
  for (int i = 0; i < D * D; i++) gm[i] = G[i].re + I * G[i].im;
  size_t dim = (size_t)1 << n, b0 = bit_of(n, g->q[0]), b1 = D == 4 ? bit_of(n, g->q[1]) : 0;
  cplx sum = 0;
  for (size_t i = 0; i < dim; i++) {
    if (i & (b0 | b1)) continue;
    size_t idx[4] = {i, D == 4 ? i | b1 : i | b0, i | b0, i | b0 | b1};
    for (int r = 0; r < D; r++) {
      cplx row = 0;
      for (int c = 0; c < D; c++)
        if (gm[r * D + c] != 0) row += gm[r * D + c] * b[idx[c]];
      sum += conj(a[idx[r]]) * row;
    }
  }
  return sum;
}

/* The initial state; returns |x| for amplitude encoding (0 for a zero vector), else 1. */
static double init_state(const qkd_ir_circuit *ir, const double *features, cplx *psi) {
  size_t dim = (size_t)1 << ir->n_qubits;
  memset(psi, 0, dim * sizeof(cplx));
  if (ir->encode == QKD_ENCODE_AMPLITUDE) {
    int na = qkd_ir_amplitudes(ir);
    double ss = 0.0;
    for (int i = 0; i < na; i++) ss += features[i] * features[i];
    if (ss > 0.0) {
      double r = sqrt(ss);
      for (int i = 0; i < na; i++) psi[i] = features[i] / r;
      return r;
    }
    psi[0] = 1;
    return 0.0;
  }
  psi[0] = 1;
  return 1.0;
}

/* Runs gates [from, to) on psi; angle `over_slot` of gate `over` (if ≥ 0) is `over_th` instead. */
static void run_gates(const qkd_ir_circuit *ir, const double *params, const double *features,
                      cplx *psi, int from, int to, int over, int over_slot, double over_th) {
  for (int k = from; k < to; k++) {
    const qkd_ir_gate *g = &ir->gates[k];
    double a[QKD_GATE_MAX_ANGLES];
    qkd_ir_gate_angles(g, params, features, a);
    if (k == over) a[over_slot] = over_th;
    apply_gate(psi, ir->n_qubits, g, a, 0);
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
                           int over, int over_slot, double over_th, qkd_sample_fn sampler, uint64_t seed,
                           uint64_t sample, cplx *psi, double *probs, double *out) {
  init_state(ir, features, psi);
  run_gates(ir, params, features, psi, 0, ir->n_gates, over, over_slot, over_th);
  if (ir->shots > 0) {
    state_outputs(ir, psi, probs, NULL);
    sampler(ir->n_qubits, ir->measure, ir->shots, probs, seed, sample, out);
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
  run_gates(ir, params, features, phi, 0, ir->n_gates, -1, 0, 0.0);
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
    const qkd_gate_info *info = qkd_gate(g->kind);
    double a[QKD_GATE_MAX_ANGLES];
    qkd_ir_gate_angles(g, params, features, a);
    int nsteps = info->angles > 1 ? info->n_steps : 1;
    for (int st = nsteps - 1; st >= 0; st--) {
      /* step st: the gate itself (one angle or none) or one gate of its decomposition */
      qkd_ir_gate sg = *g;
      double sa[QKD_GATE_MAX_ANGLES] = {a[0], 0, 0};
      if (info->angles > 1) {
        sg.kind = info->steps[st].kind;
        sg.angle[0] = g->angle[info->steps[st].slot];
        sa[0] = a[info->steps[st].slot];
      }
      const qkd_angle *an = &sg.angle[0];
      if (qkd_gate(sg.kind)->angles == 1 && (an->kind == QKD_ANGLE_PARAM || an->kind == QKD_ANGLE_FEATURE)) {
        double dth = cimag(overlap(lam, phi, n, &sg, qkd_gate(sg.kind)->gen));
        if (an->kind == QKD_ANGLE_PARAM) d_params[an->index] += an->scale * dth;
        else if (d_feat) d_feat[an->index] += an->scale * dth;
      }
      apply_gate(phi, n, &sg, sa, 1);
      apply_gate(lam, n, &sg, sa, 1);
    }
    if (info->angles > 1) { /* undo the decomposition's global phase */
      double ph = 0.0;
      for (int s = 0; s < info->angles; s++) ph += 0.5 * info->phase[s] * a[s];
      cplx u = cos(ph) - I * sin(ph);
      for (size_t i = 0; i < dim; i++) phi[i] *= u, lam[i] *= u;
    }
  }
  if (d_feat && ir->encode == QKD_ENCODE_AMPLITUDE && r > 0.0) {
    /* ψ0_i = x_i / r; g_i = 2 Re λ_i; df/dx = (g − ψ0 (ψ0·g)) / r */
    int na = qkd_ir_amplitudes(ir);
    double dot = 0.0;
    for (int i = 0; i < na; i++) dot += (features[i] / r) * 2.0 * creal(lam[i]);
    for (int i = 0; i < na; i++)
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

static qkd_sample_fn sampler_of(const qkd_kernel *k) { return k->sample ? k->sample : qkd_kernel_sample_f64; }

static void fwd_f64(const qkd_kernel *k, const double *params, const double *features, int batch,
                    uint64_t seed, uint64_t first_sample, double *outputs, void *workspace) {
  const qkd_ir_circuit *ir = k->ir;
  qsim_ws w = carve(ir, workspace);
  int no = qkd_ir_outputs(ir);
  for (int b = 0; b < batch; b++)
    sample_outputs(ir, params, row(features, b, ir->n_features), -1, 0, 0.0, sampler_of(k), seed,
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
    sample_outputs(ir, w.pd, w.fd, -1, 0, 0.0, sampler_of(k), seed, first_sample + (uint64_t)b, w.phi, w.probs, w.od);
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
  k.sample = NULL;
  return k;
}

/* ---- tools -------------------------------------------------------------------------------- */

void qkd_qsim_state(const qkd_ir_circuit *ir, const double *params, const double *features,
                    double *state) {
  cplx *psi = malloc(((size_t)1 << ir->n_qubits) * sizeof(cplx));
  if (!psi) abort();
  init_state(ir, features, psi);
  run_gates(ir, params, features, psi, 0, ir->n_gates, -1, 0, 0.0);
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
  run_gates(ir, params, features, psi, 0, ir->n_gates, -1, 0, 0.0);
  init_state(ir, features, pre); /* pre = state before gate k */
  for (int k = 0; k < ir->n_gates; k++) {
    const qkd_ir_gate *g = &ir->gates[k];
    double a[QKD_GATE_MAX_ANGLES];
    qkd_ir_gate_angles(g, params, features, a);
    for (int s = 0; s < qkd_gate(g->kind)->angles; s++) {
      if (g->angle[s].kind != QKD_ANGLE_PARAM) continue;
      /* d|ψ>/dp = scale · U_N…U_{k+1} (∂U_k/∂a_s) |pre>, ∂U_k/∂a_s from the table's matrix */
      cplx dm[QKD_GATE_DIM * QKD_GATE_DIM];
      gate_matrix(g, a, s, dm);
      memcpy(tan, pre, dim * sizeof(cplx));
      apply_matrix(tan, n, g, dm, 0);
      for (size_t i = 0; i < dim; i++) tan[i] *= g->angle[s].scale;
      run_gates(ir, params, features, tan, k + 1, ir->n_gates, -1, 0, 0.0);
      int p = g->angle[s].index;
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
    apply_gate(pre, n, g, a, 0);
  }
  free(pre); free(tan); free(psi); free(dp);
}

void qkd_qsim_grad_pshift(const qkd_ir_circuit *ir, const double *params, const double *features,
                          int batch, const double *d_outputs, uint64_t seed, uint64_t first_sample,
                          double *d_params, double *d_features) {
  qkd_qsim_grad_pshift_select(ir, params, features, batch, d_outputs, seed, first_sample, d_params,
                              d_features, NULL);
}

void qkd_qsim_grad_pshift_select(const qkd_ir_circuit *ir, const double *params, const double *features,
                                 int batch, const double *d_outputs, uint64_t seed, uint64_t first_sample,
                                 double *d_params, double *d_features, const unsigned char *want) {
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
    for (int f = 0; dfeat && f < nf; f++)
      if (!want || want[f]) dfeat[f] = 0.0;
    uint64_t sample = first_sample + (uint64_t)b;
    for (int k = 0; k < ir->n_gates; k++) {
      const qkd_ir_gate *g = &ir->gates[k];
      const qkd_gate_info *info = qkd_gate(g->kind);
      double a[QKD_GATE_MAX_ANGLES];
      qkd_ir_gate_angles(g, params, x, a);
      for (int s = 0; s < info->angles; s++) {
        const qkd_angle *an = &g->angle[s];
        if (an->kind != QKD_ANGLE_PARAM && an->kind != QKD_ANGLE_FEATURE) continue;
        if (an->kind == QKD_ANGLE_FEATURE && (!dfeat || (want && !want[an->index]))) continue;
        if (an->kind == QKD_ANGLE_PARAM && !d_params) continue;
        int four = info->shift == QKD_SHIFT_FOUR;
        int nt = four ? 4 : 2;
        const double *sh = four ? shift4 : shift2, *co = four ? coef4 : coef2;
        double dth = 0.0;
        for (int t = 0; t < nt; t++) {
          /* shifted evaluation number e = 4(k + n_gates·s) + t: its own seed, so its draws are
           * distinct */
          uint64_t e = 4 * ((uint64_t)k + (uint64_t)ir->n_gates * (uint64_t)s) + (uint64_t)t;
          uint64_t eseed = qkd_rng_u64(seed, QKD_STREAM_SHOTS | ((uint64_t)1 << 32), e);
          sample_outputs(ir, params, x, k, s, a[s] + sh[t], qkd_kernel_sample_f64, eseed, sample, w.phi, w.probs, w.od);
          double v = 0.0;
          for (int o = 0; o < no; o++) v += dout[o] * w.od[o];
          dth += co[t] * v;
        }
        if (an->kind == QKD_ANGLE_PARAM) d_params[an->index] += an->scale * dth;
        else dfeat[an->index] += an->scale * dth;
      }
    }
  }
  free(wsmem);
}
