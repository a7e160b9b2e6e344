/* test_rt_qsim.c — the reference interpreter (runtime/qsim.c) against the independent dense
 * reference (dense_ref.c): forward (f64 and f32 entry points), states, adjoint gradients vs
 * central finite differences, adjoint vs parameter shift, Jacobians, shot statistics and
 * batch-split determinism; parameter shift through the kernel interface (qkd_par_pshift) vs the
 * interpreter's; the counts sampler and its binomials against exact statistics; plus
 * hand-checked known values. Links only qkdrt + qkdtestsupport. */
#include "circgen.h"
#include "dense_ref.h"
#include "qkd_par.h"
#include "qkd_rng.h"
#include "qsim.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef QKD_FULL_SWEEP
#define N_CIRCUITS 240
#define MAX_Q 10
#define N_SHOT_CIRCUITS 60
#else
#define N_CIRCUITS 80
#define MAX_Q 8
#define N_SHOT_CIRCUITS 24
#endif

#define PI 3.14159265358979323846
#define TOL_F64 1e-10
#define TOL_F32 1e-4

static qkd_par_pool *pool2; /* two threads, for qkd_par_pshift through the interpreter kernel */

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) abort();
  return p;
}

/* workspace with a deliberately odd start, to prove the kernel aligns it itself */
static void *ws_new(const qkd_ir_circuit *c, unsigned char **base) {
  *base = xcalloc(qkd_kernel_workspace_bytes(c) + 8, 1);
  return *base + 8;
}

/* ---- hand-built circuits ------------------------------------------------------------------ */

typedef struct {
  qkd_ir_circuit c;
  qkd_ir_gate g[16];
} small_circ;

static void sc_init(small_circ *s, int n, qkd_measure_kind m) {
  memset(s, 0, sizeof *s);
  s->c.name = "spot";
  s->c.n_qubits = n;
  s->c.measure = m;
  s->c.gates = s->g;
}

static void sc_gate(small_circ *s, qkd_gate_kind k, int q0, int q1, qkd_angle_kind ak, int idx,
                    double scale, double offset) {
  qkd_ir_gate *g = &s->g[s->c.n_gates++];
  g->kind = k;
  g->q[0] = q0;
  g->q[1] = q1;
  memset(g->angle, 0, sizeof g->angle);
  g->angle[0].kind = ak;
  g->angle[0].index = idx;
  g->angle[0].scale = scale;
  g->angle[0].offset = offset;
  if (ak == QKD_ANGLE_PARAM) s->c.n_params++;
  if (ak == QKD_ANGLE_FEATURE && s->c.encode != QKD_ENCODE_AMPLITUDE && idx + 1 > s->c.n_features)
    s->c.n_features = idx + 1;
}

static void fixed(small_circ *s, qkd_gate_kind k, int q0, int q1) {
  sc_gate(s, k, q0, q1, QKD_ANGLE_NONE, 0, 0, 0);
}

/* exact forward of one sample through the kernel */
static void run1(const qkd_ir_circuit *c, const double *params, const double *features, double *out) {
  qkd_error err;
  CHECK(qkd_ir_validate(c, &err) == 0);
  qkd_kernel k = qkd_qsim_kernel(c);
  unsigned char *base;
  void *ws = ws_new(c, &base);
  k.fwd_f64(&k, params, features, 1, 7, 0, out, ws);
  free(base);
}

static void test_spot(void) {
  small_circ s;
  double out[16], st[32];

  /* RY(θ)|0>: probs cos²(θ/2), sin²(θ/2); angle = scale·p + offset */
  for (int i = 0; i < 7; i++) {
    double p = -3.0 + i, th = 1.5 * p + 0.25;
    sc_init(&s, 1, QKD_MEASURE_PROBS);
    sc_gate(&s, QKD_GATE_RY, 0, 0, QKD_ANGLE_PARAM, 0, 1.5, 0.25);
    run1(&s.c, &p, NULL, out);
    CHECK_NEAR(out[0], cos(th / 2) * cos(th / 2), 1e-14);
    CHECK_NEAR(out[1], sin(th / 2) * sin(th / 2), 1e-14);
    s.c.measure = QKD_MEASURE_Z;
    run1(&s.c, &p, NULL, out);
    CHECK_NEAR(out[0], cos(th), 1e-14);
    /* adjoint: d<Z>/dp = -1.5 sin(θ) */
    qkd_kernel k = qkd_qsim_kernel(&s.c);
    unsigned char *base;
    void *ws = ws_new(&s.c, &base);
    double dp = 1.0, dout = 1.0;
    k.bwd_f64(&k, &p, NULL, 1, &dout, &dp, NULL, ws);
    CHECK_NEAR(dp, 1.0 - 1.5 * sin(th), 1e-13);
    free(base);
    /* RX(θ) too, as a FEATURE angle: d<Z>/dx = -scale sin θ */
    sc_init(&s, 1, QKD_MEASURE_Z);
    sc_gate(&s, QKD_GATE_RX, 0, 0, QKD_ANGLE_FEATURE, 0, 1.5, 0.25);
    run1(&s.c, NULL, &p, out);
    CHECK_NEAR(out[0], cos(th), 1e-14);
    k = qkd_qsim_kernel(&s.c);
    ws = ws_new(&s.c, &base);
    double dx = 99.0;
    k.bwd_f64(&k, NULL, &p, 1, &dout, NULL, &dx, ws);
    CHECK_NEAR(dx, -1.5 * sin(th), 1e-13);
    free(base);
  }

  /* Bell state: H(0), CNOT(0,1) */
  sc_init(&s, 2, QKD_MEASURE_PROBS);
  fixed(&s, QKD_GATE_H, 0, 0);
  fixed(&s, QKD_GATE_CNOT, 0, 1);
  run1(&s.c, NULL, NULL, out);
  CHECK_NEAR(out[0], 0.5, 1e-15); CHECK_NEAR(out[1], 0, 1e-15);
  CHECK_NEAR(out[2], 0, 1e-15); CHECK_NEAR(out[3], 0.5, 1e-15);
  qkd_qsim_state(&s.c, NULL, NULL, st);
  CHECK_NEAR(st[0], sqrt(0.5), 1e-15); CHECK_NEAR(st[6], sqrt(0.5), 1e-15);
  CHECK_NEAR(st[2], 0, 1e-15); CHECK_NEAR(st[4], 0, 1e-15);

  /* qubit 0 is the most significant bit */
  sc_init(&s, 3, QKD_MEASURE_PROBS);
  fixed(&s, QKD_GATE_X, 0, 0);
  run1(&s.c, NULL, NULL, out);
  CHECK(out[4] == 1.0 && out[1] == 0.0);
  s.c.measure = QKD_MEASURE_Z;
  run1(&s.c, NULL, NULL, out);
  CHECK(out[0] == -1.0 && out[1] == 1.0 && out[2] == 1.0);
  sc_init(&s, 3, QKD_MEASURE_PROBS);
  fixed(&s, QKD_GATE_X, 2, 0);
  run1(&s.c, NULL, NULL, out);
  CHECK(out[1] == 1.0);

  /* CNOT(control, target) direction: X(1), CNOT(1,0) → |11>; X(1), CNOT(0,1) → |01> */
  sc_init(&s, 2, QKD_MEASURE_PROBS);
  fixed(&s, QKD_GATE_X, 1, 0);
  fixed(&s, QKD_GATE_CNOT, 1, 0);
  run1(&s.c, NULL, NULL, out);
  CHECK_NEAR(out[3], 1.0, 1e-15);
  s.g[1].q[0] = 0; s.g[1].q[1] = 1;
  run1(&s.c, NULL, NULL, out);
  CHECK_NEAR(out[1], 1.0, 1e-15);
  /* SWAP: X(0), SWAP(0,1) → |01> */
  sc_init(&s, 2, QKD_MEASURE_PROBS);
  fixed(&s, QKD_GATE_X, 0, 0);
  fixed(&s, QKD_GATE_SWAP, 0, 1);
  run1(&s.c, NULL, NULL, out);
  CHECK_NEAR(out[1], 1.0, 1e-15);

  /* SX·SX = X; H S S H = X; H T^4 H = X; H RZ(θ) H: P(1) = sin²(θ/2) */
  sc_init(&s, 1, QKD_MEASURE_PROBS);
  fixed(&s, QKD_GATE_SX, 0, 0); fixed(&s, QKD_GATE_SX, 0, 0);
  run1(&s.c, NULL, NULL, out);
  CHECK_NEAR(out[1], 1.0, 1e-15);
  sc_init(&s, 1, QKD_MEASURE_PROBS);
  fixed(&s, QKD_GATE_H, 0, 0); fixed(&s, QKD_GATE_S, 0, 0); fixed(&s, QKD_GATE_S, 0, 0);
  fixed(&s, QKD_GATE_H, 0, 0);
  run1(&s.c, NULL, NULL, out);
  CHECK_NEAR(out[1], 1.0, 1e-15);
  sc_init(&s, 1, QKD_MEASURE_PROBS);
  fixed(&s, QKD_GATE_H, 0, 0);
  for (int i = 0; i < 4; i++) fixed(&s, QKD_GATE_T, 0, 0);
  fixed(&s, QKD_GATE_H, 0, 0);
  run1(&s.c, NULL, NULL, out);
  CHECK_NEAR(out[1], 1.0, 1e-14);
  sc_init(&s, 1, QKD_MEASURE_PROBS);
  fixed(&s, QKD_GATE_H, 0, 0);
  sc_gate(&s, QKD_GATE_RZ, 0, 0, QKD_ANGLE_CONST, 0, 1, 0.7);
  fixed(&s, QKD_GATE_H, 0, 0);
  run1(&s.c, NULL, NULL, out);
  CHECK_NEAR(out[1], sin(0.35) * sin(0.35), 1e-15);
  /* SX|0> = ½(1+i, 1−i); S after H: amplitude of |1> is i/√2; Y|0> = i|1> */
  sc_init(&s, 1, QKD_MEASURE_PROBS);
  fixed(&s, QKD_GATE_SX, 0, 0);
  qkd_qsim_state(&s.c, NULL, NULL, st);
  CHECK_NEAR(st[0], 0.5, 1e-15); CHECK_NEAR(st[1], 0.5, 1e-15);
  CHECK_NEAR(st[2], 0.5, 1e-15); CHECK_NEAR(st[3], -0.5, 1e-15);
  sc_init(&s, 1, QKD_MEASURE_PROBS);
  fixed(&s, QKD_GATE_H, 0, 0); fixed(&s, QKD_GATE_S, 0, 0);
  qkd_qsim_state(&s.c, NULL, NULL, st);
  CHECK_NEAR(st[2], 0, 1e-15); CHECK_NEAR(st[3], sqrt(0.5), 1e-15);
  sc_init(&s, 1, QKD_MEASURE_PROBS);
  fixed(&s, QKD_GATE_Y, 0, 0);
  qkd_qsim_state(&s.c, NULL, NULL, st);
  CHECK_NEAR(st[2], 0, 1e-15); CHECK_NEAR(st[3], 1, 1e-15);
  /* RZ(θ)|+>: amplitudes e^{∓iθ/2}/√2 */
  sc_init(&s, 1, QKD_MEASURE_PROBS);
  fixed(&s, QKD_GATE_H, 0, 0);
  sc_gate(&s, QKD_GATE_RZ, 0, 0, QKD_ANGLE_CONST, 0, 1, 0.9);
  qkd_qsim_state(&s.c, NULL, NULL, st);
  CHECK_NEAR(st[0], cos(0.45) * sqrt(0.5), 1e-15); CHECK_NEAR(st[1], -sin(0.45) * sqrt(0.5), 1e-15);
  CHECK_NEAR(st[2], cos(0.45) * sqrt(0.5), 1e-15); CHECK_NEAR(st[3], sin(0.45) * sqrt(0.5), 1e-15);

  /* CRY(0,1,θ): acts only when qubit 0 is 1 */
  sc_init(&s, 2, QKD_MEASURE_PROBS);
  sc_gate(&s, QKD_GATE_CRY, 0, 1, QKD_ANGLE_CONST, 0, 1, 1.1);
  run1(&s.c, NULL, NULL, out);
  CHECK_NEAR(out[0], 1.0, 1e-15);
  sc_init(&s, 2, QKD_MEASURE_PROBS);
  fixed(&s, QKD_GATE_X, 0, 0);
  sc_gate(&s, QKD_GATE_CRY, 0, 1, QKD_ANGLE_CONST, 0, 1, 1.1);
  run1(&s.c, NULL, NULL, out);
  CHECK_NEAR(out[2], cos(0.55) * cos(0.55), 1e-15);
  CHECK_NEAR(out[3], sin(0.55) * sin(0.55), 1e-15);
  /* CZ on |11> after H's: phase only; H CZ H on (1) with control 1 = CNOT */
  sc_init(&s, 2, QKD_MEASURE_PROBS);
  fixed(&s, QKD_GATE_X, 0, 0);
  fixed(&s, QKD_GATE_H, 1, 0);
  fixed(&s, QKD_GATE_CZ, 0, 1);
  fixed(&s, QKD_GATE_H, 1, 0);
  run1(&s.c, NULL, NULL, out);
  CHECK_NEAR(out[3], 1.0, 1e-15);

  /* amplitude encoding: [3,4] → (.36, .64); zero vector → |0>; padding of 3 on 2 qubits */
  sc_init(&s, 1, QKD_MEASURE_PROBS);
  s.c.encode = QKD_ENCODE_AMPLITUDE;
  s.c.n_features = 2;
  double x2[2] = {3, 4}, z2[2] = {0, 0};
  run1(&s.c, NULL, x2, out);
  CHECK_NEAR(out[0], 0.36, 1e-15); CHECK_NEAR(out[1], 0.64, 1e-15);
  run1(&s.c, NULL, z2, out);
  CHECK(out[0] == 1.0 && out[1] == 0.0);
  {
    qkd_kernel k = qkd_qsim_kernel(&s.c);
    unsigned char *base;
    void *ws = ws_new(&s.c, &base);
    double dout[2] = {0.3, -1.2}, dx[2] = {5, 5};
    k.bwd_f64(&k, NULL, z2, 1, dout, NULL, dx, ws);
    CHECK(dx[0] == 0.0 && dx[1] == 0.0); /* zero vector: zero gradient */
    /* P1 = x1²/(x0²+x1²): dP1/dx0 = -2 x0 x1²/r⁴, dP1/dx1 = 2 x1 x0²/r⁴ (r² = 25) */
    double d1[2] = {0, 1};
    k.bwd_f64(&k, NULL, x2, 1, d1, NULL, dx, ws);
    CHECK_NEAR(dx[0], -2.0 * 3 * 16 / 625.0, 1e-15);
    CHECK_NEAR(dx[1], 2.0 * 4 * 9 / 625.0, 1e-15);
    free(base);
  }
  sc_init(&s, 2, QKD_MEASURE_PROBS);
  s.c.encode = QKD_ENCODE_AMPLITUDE;
  s.c.n_features = 3;
  double x3[3] = {1, -2, 2};
  run1(&s.c, NULL, x3, out);
  CHECK_NEAR(out[0], 1 / 9.0, 1e-15); CHECK_NEAR(out[1], 4 / 9.0, 1e-15);
  CHECK_NEAR(out[2], 4 / 9.0, 1e-15); CHECK(out[3] == 0.0);

  /* sampled parameter shift draws every shifted evaluation afresh: at RY(0) the two shifted
   * circuits have the same distribution (P1 = ½), so shared draws would give exactly 0 */
  {
    sc_init(&s, 2, QKD_MEASURE_PROBS);
    s.c.shots = 1000;
    fixed(&s, QKD_GATE_X, 0, 0);
    sc_gate(&s, QKD_GATE_RY, 1, 0, QKD_ANGLE_PARAM, 0, 1, 0);
    sc_gate(&s, QKD_GATE_CRY, 0, 1, QKD_ANGLE_PARAM, 1, 1, 0);
    double p0[2] = {0, 0}, dpar[2] = {0, 0}, dsh[8 * 4];
    for (int i = 0; i < 8 * 4; i++) dsh[i] = (i % 4 == 3) ? 1.0 : 0.0; /* d P(|11>) */
    qkd_qsim_grad_pshift(&s.c, p0, NULL, 8, dsh, 42, 0, dpar, NULL);
    CHECK(dpar[0] != 0.0 && dpar[1] != 0.0);
    CHECK(fabs(dpar[0]) < 0.2 && fabs(dpar[1]) < 0.2); /* exact gradients are 0 */
  }

  /* sampling helper: a one-hot distribution is sampled exactly */
  double probs[8] = {0, 0, 0, 0, 0, 1, 0, 0}, o8[8];
  qkd_kernel_sample_f64(3, QKD_MEASURE_PROBS, 100, probs, 1, 2, o8);
  CHECK(o8[5] == 1.0 && o8[0] == 0.0 && o8[7] == 0.0);
  qkd_kernel_sample_f64(3, QKD_MEASURE_Z, 100, probs, 1, 2, o8);
  CHECK(o8[0] == -1.0 && o8[1] == 1.0 && o8[2] == -1.0); /* |101> */
  /* ... and a uniform one is hit everywhere with the right frequencies */
  double pu[4] = {0.25, 0.25, 0.25, 0.25}, ou[4];
  qkd_kernel_sample_f64(2, QKD_MEASURE_PROBS, 40000, pu, 3, 9, ou);
  for (int i = 0; i < 4; i++) CHECK_NEAR(ou[i], 0.25, 5 * sqrt(0.25 * 0.75 / 40000));
}

/* ---- random sweep -------------------------------------------------------------------------- */

typedef struct {
  int gate_seen[QKD_GATE_COUNT];
  int amp, gate_enc, none_enc, z, probs, fd_checks, zero_rows, feat_angle_amp, max_n;
} coverage;

static double vmax(const double *a, int n) {
  double m = 0;
  for (int i = 0; i < n; i++) if (fabs(a[i]) > m) m = fabs(a[i]);
  return m;
}

/* pick up to `want` distinct indices of 0..n-1 (all of them when n ≤ want) */
static int pick(int n, int want, uint64_t seed, int *idx) {
  if (n <= want) {
    for (int i = 0; i < n; i++) idx[i] = i;
    return n;
  }
  int m = 0;
  for (uint64_t t = 0; m < want; t++) {
    int v = (int)(qkd_rng_u64(seed, 77, t) % (uint64_t)n), dup = 0;
    for (int j = 0; j < m; j++) dup |= idx[j] == v;
    if (!dup) idx[m++] = v;
  }
  return m;
}

static void sweep_one(int ci, coverage *cov) {
  /* qubit schedule: every count 1..MAX_Q, the two largest ones rarer (dense 4^n cost) */
  int n = 1 + ci % MAX_Q;
  if (n >= MAX_Q - 1 && (ci / MAX_Q) % 3 != 0) n -= 3;
  circgen_opts o = circgen_defaults();
  o.min_qubits = o.max_qubits = n;
  o.max_gates = n <= 6 ? 36 : n <= 8 ? 24 : 14;
  uint64_t seed = 1000 + (uint64_t)ci;
  qkd_ir_circuit *c = circgen_random(seed, &o);
  int B = n <= 6 ? 4 : n <= 8 ? 3 : 2;
  int np = c->n_params, nf = c->n_features, no = qkd_ir_outputs(c);
  size_t dim = (size_t)1 << n;
  int amp = c->encode == QKD_ENCODE_AMPLITUDE, fangles = circgen_has_feature_angles(c);

  for (int g = 0; g < c->n_gates; g++) cov->gate_seen[c->gates[g].kind]++;
  if (amp) cov->amp++; else if (c->n_encoding_gates) cov->gate_enc++; else cov->none_enc++;
  if (c->measure == QKD_MEASURE_Z) cov->z++; else cov->probs++;
  if (amp && fangles) cov->feat_angle_amp++;
  if (n > cov->max_n) cov->max_n = n;

  double *params = xcalloc((size_t)np + 1, sizeof(double));
  double *feats = xcalloc((size_t)B * nf + 1, sizeof(double));
  circgen_inputs(c, seed, B, params, feats);
  int zero_row = amp && B > 1 && ci % 5 == 0 ? B - 1 : -1;
  if (zero_row >= 0) {
    memset(feats + (size_t)zero_row * nf, 0, (size_t)nf * sizeof(double));
    cov->zero_rows++;
  }
  qkd_kernel k = qkd_qsim_kernel(c);
  CHECK(strcmp(k.engine, "interp") == 0 && k.ir == c);
  unsigned char *wsbase;
  void *ws = ws_new(c, &wsbase);

  /* forward f64 and states vs the dense reference */
  double *out = xcalloc((size_t)B * no, sizeof(double));
  double *ref = xcalloc((size_t)B * no, sizeof(double));
  double *st = xcalloc(2 * dim, sizeof(double)), *rst = xcalloc(2 * dim, sizeof(double));
  k.fwd_f64(&k, params, feats, B, 5, 0, out, ws);
  double err_out = 0, err_state = 0, err_norm = 0;
  for (int b = 0; b < B; b++) {
    const double *x = feats + (size_t)b * nf;
    dense_ref_state(c, params, x, rst);
    qkd_qsim_state(c, params, x, st);
    double nrm = 0;
    for (size_t i = 0; i < 2 * dim; i++) {
      err_state = fmax(err_state, fabs(st[i] - rst[i]));
      nrm += st[i] * st[i];
    }
    err_norm = fmax(err_norm, fabs(nrm - 1.0));
    if (c->measure == QKD_MEASURE_Z) dense_ref_measure(c, rst, ref + (size_t)b * no, NULL);
    else dense_ref_measure(c, rst, NULL, ref + (size_t)b * no);
  }
  for (int i = 0; i < B * no; i++) err_out = fmax(err_out, fabs(out[i] - ref[i]));
  CHECK(err_out <= TOL_F64);
  CHECK(err_state <= TOL_F64);
  CHECK(err_norm <= 1e-12);
  if (err_out > TOL_F64 || err_state > TOL_F64)
    fprintf(stderr, "  circuit %d (n=%d): forward err %.3g state err %.3g\n", ci, n, err_out, err_state);

  /* forward f32 entry point */
  float *pf = xcalloc((size_t)np + 1, sizeof(float)), *xf = xcalloc((size_t)B * nf + 1, sizeof(float));
  float *of = xcalloc((size_t)B * no, sizeof(float));
  for (int p = 0; p < np; p++) pf[p] = (float)params[p];
  for (int i = 0; i < B * nf; i++) xf[i] = (float)feats[i];
  k.fwd_f32(&k, pf, xf, B, 5, 0, of, ws);
  double err32 = 0;
  for (int i = 0; i < B * no; i++) err32 = fmax(err32, fabs(of[i] - ref[i]));
  CHECK(err32 <= TOL_F32);

  /* adjoint backward over the batch: d_params accumulates, d_features overwritten */
  double *dout = xcalloc((size_t)B * no, sizeof(double));
  for (int i = 0; i < B * no; i++) dout[i] = 2.0 * qkd_rng_uniform(seed, 11, (uint64_t)i) - 1.0;
  double *dp = xcalloc((size_t)np + 1, sizeof(double)), *dx = xcalloc((size_t)B * nf + 1, sizeof(double));
  for (int p = 0; p < np; p++) dp[p] = 0.25;
  for (int i = 0; i < B * nf; i++) dx[i] = 1e9;
  k.bwd_f64(&k, params, feats, B, dout, dp, dx, ws);
  for (int p = 0; p < np; p++) dp[p] -= 0.25;
  /* batch = sum of per-sample calls; d_features rows equal the per-sample ones */
  double *dp1 = xcalloc((size_t)np + 1, sizeof(double)), *dx1 = xcalloc((size_t)nf + 1, sizeof(double));
  double *dpsum = xcalloc((size_t)np + 1, sizeof(double));
  double err_split = 0;
  for (int b = 0; b < B; b++) {
    memset(dp1, 0, ((size_t)np + 1) * sizeof(double));
    k.bwd_f64(&k, params, feats + (size_t)b * nf, 1, dout + (size_t)b * no, dp1, dx1, ws);
    for (int p = 0; p < np; p++) dpsum[p] += dp1[p];
    for (int f = 0; f < nf; f++) err_split = fmax(err_split, fabs(dx1[f] - dx[(size_t)b * nf + f]));
  }
  for (int p = 0; p < np; p++) err_split = fmax(err_split, fabs(dpsum[p] - dp[p]));
  CHECK(err_split <= 1e-12);
  /* bwd with d_features NULL gives the same d_params */
  memset(dp1, 0, ((size_t)np + 1) * sizeof(double));
  k.bwd_f64(&k, params, feats, B, dout, dp1, NULL, ws);
  for (int p = 0; p < np; p++) CHECK_NEAR(dp1[p], dp[p], 1e-12);

  /* adjoint (sample 0) vs central finite differences of the dense reference, and the forward-mode
   * Jacobian vs the same finite differences */
  {
    int b = 0;
    const double *x = feats;
    double *dp0 = xcalloc((size_t)np + 1, sizeof(double)), *dx0 = xcalloc((size_t)nf + 1, sizeof(double));
    k.bwd_f64(&k, params, x, 1, dout, dp0, dx0, ws);
    double *jz = xcalloc((size_t)n * np + 1, sizeof(double)), *jp = xcalloc(dim * np + 1, sizeof(double));
    qkd_qsim_jacobian(c, params, x, jz, jp);
    int want = n <= 5 ? 1000 : n <= 7 ? 5 : 2;
    int *idx = xcalloc((size_t)(np > nf ? np : nf) + 1, sizeof(int));
    double *fd = xcalloc((size_t)no, sizeof(double));
    double h = 1e-5;
    int m = pick(np, want, seed, idx);
    for (int j = 0; j < m; j++) {
      int p = idx[j];
      dense_ref_fd(c, params, x, DENSE_WRT_PARAM, p, h, fd);
      double vjp = 0;
      for (int o = 0; o < no; o++) vjp += dout[o] * fd[o];
      CHECK_NEAR(dp0[p], vjp, 1e-6 * (1 + fabs(vjp)));
      const double *jac = c->measure == QKD_MEASURE_Z ? jz : jp;
      double ej = 0;
      for (int o = 0; o < no; o++) ej = fmax(ej, fabs(jac[(size_t)o * np + p] - fd[o]));
      CHECK(ej <= 1e-6 * (1 + vmax(fd, no)));
      cov->fd_checks++;
    }
    if (b != zero_row) {
      m = pick(nf, want, seed + 1, idx);
      for (int j = 0; j < m; j++) {
        int f = idx[j];
        dense_ref_fd(c, params, x, DENSE_WRT_FEATURE, f, h, fd);
        double vjp = 0;
        for (int o = 0; o < no; o++) vjp += dout[o] * fd[o];
        CHECK_NEAR(dx0[f], vjp, 1e-6 * (1 + fabs(vjp)));
        cov->fd_checks++;
      }
    }
    /* the two Jacobians agree with each other and with the adjoint VJP (all params) */
    for (int p = 0; p < np; p++) {
      double vj = 0;
      const double *jac = c->measure == QKD_MEASURE_Z ? jz : jp;
      for (int o = 0; o < no; o++) vj += dout[o] * jac[(size_t)o * np + p];
      CHECK_NEAR(vj, dp0[p], 1e-10 * (1 + fabs(vj)));
      for (int q = 0; q < n; q++) {
        double zq = 0;
        for (size_t i = 0; i < dim; i++) zq += ((i >> (n - 1 - q)) & 1 ? -1 : 1) * jp[i * np + p];
        CHECK_NEAR(zq, jz[(size_t)q * np + p], 1e-10);
      }
    }
    free(dp0); free(dx0); free(jz); free(jp); free(idx); free(fd);
  }

  /* the zero amplitude row: no gradient from the encoding */
  if (zero_row >= 0 && !fangles)
    for (int f = 0; f < nf; f++) CHECK(dx[(size_t)zero_row * nf + f] == 0.0);

  /* f32 backward vs f64 backward on the same (float-rounded) inputs */
  {
    double *pr = xcalloc((size_t)np + 1, sizeof(double)), *xr = xcalloc((size_t)B * nf + 1, sizeof(double));
    for (int p = 0; p < np; p++) pr[p] = pf[p];
    for (int i = 0; i < B * nf; i++) xr[i] = xf[i];
    float *dof = xcalloc((size_t)B * no, sizeof(float)), *dpf = xcalloc((size_t)np + 1, sizeof(float));
    float *dxf = xcalloc((size_t)B * nf + 1, sizeof(float));
    double *dor = xcalloc((size_t)B * no, sizeof(double));
    for (int i = 0; i < B * no; i++) { dof[i] = (float)dout[i]; dor[i] = dof[i]; }
    double *dpr = xcalloc((size_t)np + 1, sizeof(double)), *dxr = xcalloc((size_t)B * nf + 1, sizeof(double));
    k.bwd_f64(&k, pr, xr, B, dor, dpr, dxr, ws);
    for (int p = 0; p < np; p++) dpf[p] = 1.0f;
    k.bwd_f32(&k, pf, xf, B, dof, dpf, dxf, ws);
    for (int p = 0; p < np; p++) CHECK_NEAR(dpf[p] - 1.0, dpr[p], TOL_F32 * (1 + fabs(dpr[p])));
    for (int i = 0; i < B * nf; i++) CHECK_NEAR(dxf[i], dxr[i], TOL_F32 * (1 + fabs(dxr[i])));
    free(pr); free(xr); free(dof); free(dpf); free(dxf); free(dor); free(dpr); free(dxr);
  }

  /* adjoint vs exact parameter shift (whole batch) */
  {
    double *dps = xcalloc((size_t)np + 1, sizeof(double)), *dxs = xcalloc((size_t)B * nf + 1, sizeof(double));
    for (int p = 0; p < np; p++) dps[p] = 0.25;
    for (int i = 0; i < B * nf; i++) dxs[i] = -7;
    qkd_qsim_grad_pshift(c, params, feats, B, dout, 3, 0, dps, dxs);
    for (int p = 0; p < np; p++) CHECK_NEAR(dps[p] - 0.25, dp[p], 1e-9 * (1 + fabs(dp[p])));
    if (!amp) {
      for (int i = 0; i < B * nf; i++) CHECK_NEAR(dxs[i], dx[i], 1e-9 * (1 + fabs(dx[i])));
    } else if (!fangles) {
      for (int i = 0; i < B * nf; i++) CHECK(dxs[i] == 0.0); /* documented: no amplitude shift rule */
    }
    /* the same through the kernel interface (qkd_par_pshift on this interpreter kernel) */
    double *dpk = xcalloc((size_t)np + 1, sizeof(double)), *dxk = xcalloc((size_t)B * nf + 1, sizeof(double));
    for (int p = 0; p < np; p++) dpk[p] = 0.25;
    for (int i = 0; i < B * nf; i++) dxk[i] = -7;
    CHECK(qkd_par_pshift(pool2, &k, params, feats, B, dout, 3, 0, dpk, dxk) == 0);
    for (int p = 0; p < np; p++) CHECK_NEAR(dpk[p], dps[p], 1e-12 * (1 + fabs(dps[p])));
    for (int i = 0; i < B * nf; i++) CHECK_NEAR(dxk[i], dxs[i], 1e-12 * (1 + fabs(dxs[i])));
    free(dpk); free(dxk);
    free(dps); free(dxs);
  }

  free(params); free(feats); free(out); free(ref); free(st); free(rst); free(pf); free(xf); free(of);
  free(dout); free(dp); free(dx); free(dp1); free(dx1); free(dpsum); free(wsbase);
  circgen_free(c);
}

/* ---- shots --------------------------------------------------------------------------------- */

static void shots_one(int ci, int *differs) {
  circgen_opts o = circgen_defaults();
  o.max_qubits = MAX_Q < 7 ? MAX_Q : 7;
  o.max_gates = 24;
  o.p_shots = 1.0;
  o.max_shots = 4000;
  uint64_t seed = 50000 + (uint64_t)ci;
  qkd_ir_circuit *c = circgen_random(seed, &o);
  if (ci % 4 == 0) c->shots = 1 + ci; /* a few tiny shot counts */
  const int B = 8;
  int np = c->n_params, nf = c->n_features, no = qkd_ir_outputs(c), n = c->n_qubits;
  double *params = xcalloc((size_t)np + 1, sizeof(double)), *feats = xcalloc((size_t)B * nf + 1, sizeof(double));
  circgen_inputs(c, seed, B, params, feats);
  qkd_kernel k = qkd_qsim_kernel(c);
  unsigned char *wsbase;
  void *ws = ws_new(c, &wsbase);
  double *full = xcalloc((size_t)B * no, sizeof(double)), *part = xcalloc((size_t)B * no, sizeof(double));
  double *other = xcalloc((size_t)B * no, sizeof(double)), *ref = xcalloc((size_t)no, sizeof(double));
  uint64_t s = 0xabc + (uint64_t)ci, first = 1000;
  k.fwd_f64(&k, params, feats, B, s, first, full, ws);
  /* same seed → bit-identical whatever the split: 8×1 and 2×4 */
  for (int b = 0; b < B; b++)
    k.fwd_f64(&k, params, feats + (size_t)b * nf, 1, s, first + b, part + (size_t)b * no, ws);
  CHECK(memcmp(full, part, (size_t)B * no * sizeof(double)) == 0);
  memset(part, 0, (size_t)B * no * sizeof(double));
  for (int h = 0; h < 2; h++)
    k.fwd_f64(&k, params, feats + (size_t)h * 4 * nf, 4, s, first + 4 * h, part + (size_t)h * 4 * no, ws);
  CHECK(memcmp(full, part, (size_t)B * no * sizeof(double)) == 0);
  /* f32 entry point splits the same way */
  {
    float *pf = xcalloc((size_t)np + 1, sizeof(float)), *xf = xcalloc((size_t)B * nf + 1, sizeof(float));
    float *f1 = xcalloc((size_t)B * no, sizeof(float)), *f2 = xcalloc((size_t)B * no, sizeof(float));
    for (int p = 0; p < np; p++) pf[p] = (float)params[p];
    for (int i = 0; i < B * nf; i++) xf[i] = (float)feats[i];
    k.fwd_f32(&k, pf, xf, B, s, first, f1, ws);
    for (int h = 0; h < 2; h++)
      k.fwd_f32(&k, pf, xf + (size_t)h * 4 * nf, 4, s, first + 4 * h, f2 + (size_t)h * 4 * no, ws);
    CHECK(memcmp(f1, f2, (size_t)B * no * sizeof(float)) == 0);
    /* the draws are the f64 ones: frequencies agree to float rounding, except that a draw
     * within rounding of a cdf boundary may land in the neighbouring outcome: at most one
     * sample of the batch may have one or two draws moved */
    int moved = 0;
    for (int b = 0; b < B; b++) {
      double e = 0;
      for (int o = 0; o < no; o++) e = fmax(e, fabs(f1[(size_t)b * no + o] - full[(size_t)b * no + o]));
      if (e > 1e-6) {
        moved++;
        CHECK(e <= 4.0 / c->shots + 1e-6);
      }
    }
    CHECK(moved <= 1);
    free(pf); free(xf); free(f1); free(f2);
  }
  k.fwd_f64(&k, params, feats, B, s + 1, first, other, ws);
  if (memcmp(full, other, (size_t)B * no * sizeof(double)) != 0) (*differs)++;

  /* statistics: each sampled output within 5σ (+ 3/shots for the non-Gaussian tails of rare
   * outcomes) of the exact value from the dense reference; exact lattice structure */
  double S = c->shots;
  for (int b = 0; b < B; b++) {
    dense_ref_outputs(c, params, feats + (size_t)b * nf, ref);
    const double *v = full + (size_t)b * no;
    double sum = 0;
    for (int o = 0; o < no; o++) {
      double var = c->measure == QKD_MEASURE_Z ? 1 - ref[o] * ref[o] : ref[o] * (1 - ref[o]);
      if (var < 0) var = 0;
      CHECK_NEAR(v[o], ref[o], 5 * sqrt(var / S) + 3 / S);
      double cnt = c->measure == QKD_MEASURE_Z ? (1 - v[o]) * S / 2 : v[o] * S;
      CHECK_NEAR(cnt, nearbyint(cnt), 1e-6);
      sum += v[o];
    }
    if (c->measure == QKD_MEASURE_PROBS) CHECK_NEAR(sum, 1.0, 1e-9);
    (void)n;
  }

  /* parameter shift with shots: deterministic in (seed, sample), split-invariant */
  double *dout = xcalloc((size_t)B * no, sizeof(double));
  for (int i = 0; i < B * no; i++) dout[i] = 2.0 * qkd_rng_uniform(seed, 12, (uint64_t)i) - 1.0;
  double *dpa = xcalloc((size_t)np + 1, sizeof(double)), *dpb = xcalloc((size_t)np + 1, sizeof(double));
  double *dxa = xcalloc((size_t)B * nf + 1, sizeof(double)), *dxb = xcalloc((size_t)B * nf + 1, sizeof(double));
  qkd_qsim_grad_pshift(c, params, feats, B, dout, s, first, dpa, dxa);
  for (int h = 0; h < 2; h++)
    qkd_qsim_grad_pshift(c, params, feats + (size_t)h * 4 * nf, 4, dout + (size_t)h * 4 * no, s,
                         first + 4 * h, dpb, dxb + (size_t)h * 4 * nf);
  CHECK(memcmp(dxa, dxb, (size_t)B * nf * sizeof(double)) == 0);
  for (int p = 0; p < np; p++) CHECK_NEAR(dpa[p], dpb[p], 1e-12 * (1 + fabs(dpa[p])));
  /* ... and statistically close to the exact adjoint gradient: each shifted evaluation
   * v = Σ_o d_o out_o has std ≤ D/√shots, so a gradient entry has std ≤ D·√(½ Σ scale²/shots) */
  {
    double *dpe = xcalloc((size_t)np + 1, sizeof(double)), *dxe = xcalloc((size_t)B * nf + 1, sizeof(double));
    k.bwd_f64(&k, params, feats, B, dout, dpe, dxe, ws);
    double *tp = xcalloc((size_t)np + 1, sizeof(double)), *tf = xcalloc((size_t)nf + 1, sizeof(double));
    circgen_pshift_tolerances(c, dout, B, tp, tf);
    for (int p = 0; p < np; p++) CHECK_NEAR(dpa[p], dpe[p], tp[p] + 1e-12);
    if (c->encode != QKD_ENCODE_AMPLITUDE)
      for (int b = 0; b < B; b++)
        for (int f = 0; f < nf; f++) CHECK_NEAR(dxa[(size_t)b * nf + f], dxe[(size_t)b * nf + f], tf[f] + 1e-12);
    free(tp); free(tf);
    free(dpe); free(dxe);
  }
  free(params); free(feats); free(full); free(part); free(other); free(ref); free(dout);
  free(dpa); free(dpb); free(dxa); free(dxb); free(wsbase);
  circgen_free(c);
}

/* ---- counts sampling ------------------------------------------------------------------------ */

/* log P(Binomial(n, p) = k) */
static double binom_logpmf(long n, double p, long k) {
  return lgamma((double)n + 1) - lgamma((double)k + 1) - lgamma((double)(n - k) + 1) + k * log(p) +
         (n - k) * log1p(-p);
}

static void test_binomial(void) {
  static const struct { long n; double p; } cases[] = {{0, 0.3}, {5, 0.0}, {5, 1.0}, {1, 0.5}, {20, 0.1},
    {2000, 0.003}, {2000, 0.5}, {2000, 0.93}, {37, 0.6}, {100000, 0.27}, {12, 0.97}, {64, 0.16}};
  const int M = 20000;
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    long n = cases[c].n;
    double p = cases[c].p, sum = 0, sum2 = 0;
    int in_range = 1;
    for (int i = 0; i < M; i++) {
      long k = qkd_kernel_binomial(n, p, qkd_rng_u64(17, 5, (uint64_t)(c * M + (size_t)i)), 0);
      in_range &= k >= 0 && k <= n;
      sum += (double)k;
      sum2 += (double)k * (double)k;
    }
    CHECK(in_range);
    double mean = sum / M, var = sum2 / M - mean * mean, ev = n * p * (1 - p);
    CHECK_NEAR(mean, n * p, 5 * sqrt(ev / M) + 1e-12);
    CHECK_NEAR(var, ev, 0.08 * ev + 1e-9);
  }
  /* goodness of fit against the exact pmf: BINV (n·p < 10) and BTRS (n·p ≥ 10) regimes */
  static const struct { long n; double p; } fit[] = {{30, 0.2}, {50, 0.3}, {400, 0.45}, {1000, 0.985}};
  const int F = 60000;
  for (size_t c = 0; c < sizeof fit / sizeof *fit; c++) {
    long n = fit[c].n;
    double p = fit[c].p;
    double *hist = xcalloc((size_t)n + 1, sizeof(double));
    for (int i = 0; i < F; i++) hist[qkd_kernel_binomial(n, p, qkd_rng_u64(23, 6, (uint64_t)(c * F + (size_t)i)), 0)]++;
    /* bins with expectation ≥ 5; the rest pooled into one */
    double chi2 = 0, rest_o = 0, rest_e = 0;
    int dof = -1;
    for (long k = 0; k <= n; k++) {
      double e = F * exp(binom_logpmf(n, p, k));
      if (e >= 5) { chi2 += (hist[k] - e) * (hist[k] - e) / e; dof++; }
      else { rest_o += hist[k]; rest_e += e; }
    }
    if (rest_e >= 5) { chi2 += (rest_o - rest_e) * (rest_o - rest_e) / rest_e; dof++; }
    CHECK(dof > 3);
    if (!(chi2 <= dof + 6 * sqrt(2.0 * dof))) fprintf(stderr, "  binomial(%ld, %g): chi2 %.1f, %d dof\n", n, p, chi2, dof);
    CHECK(chi2 <= dof + 6 * sqrt(2.0 * dof));
    free(hist);
  }
}

/* qkd_kernel_sample_counts_f64: the distribution of `shots` measurements */
static void test_counts(void) {
  double o[64], z[6];
  double onehot[8] = {0, 0, 0, 0, 0, 1, 0, 0};
  qkd_kernel_sample_counts_f64(3, QKD_MEASURE_PROBS, 100, onehot, 1, 2, o);
  CHECK(o[5] == 1.0 && o[0] == 0.0 && o[7] == 0.0);
  qkd_kernel_sample_counts_f64(3, QKD_MEASURE_Z, 100, onehot, 1, 2, o);
  CHECK(o[0] == -1.0 && o[1] == 1.0 && o[2] == -1.0);
  int differs = 0, tests = 0;
  for (int t = 0; t < 120; t++) {
    int n = 1 + t % 6, dim = 1 << n, S = t % 5 == 0 ? 1 + t : 200 + 37 * t;
    double pr[64], tot = 0;
    for (int i = 0; i < dim; i++) { /* some exact zeros, skewed weights */
      double u = qkd_rng_uniform(31, 7, (uint64_t)(64 * t + i));
      pr[i] = u < 0.2 ? 0.0 : u * u * u;
      tot += pr[i];
    }
    if (tot == 0) { pr[0] = 1; tot = 1; }
    for (int i = 0; i < dim; i++) pr[i] /= tot;
    qkd_kernel_sample_counts_f64(n, QKD_MEASURE_PROBS, S, pr, 99, (uint64_t)t, o);
    double sum = 0, zz[6] = {0};
    for (int i = 0; i < dim; i++) {
      CHECK_NEAR(o[i], pr[i], 5 * sqrt(pr[i] * (1 - pr[i]) / S) + 3.0 / S);
      CHECK(pr[i] > 0 || o[i] == 0.0);                  /* impossible outcomes never drawn */
      CHECK_NEAR(o[i] * S, nearbyint(o[i] * S), 1e-6); /* counts */
      sum += o[i];
      for (int q = 0; q < n; q++) zz[q] += ((i >> (n - 1 - q)) & 1 ? -1 : 1) * o[i];
      tests++;
    }
    CHECK_NEAR(sum, 1.0, 1e-9);
    /* Z outputs come from the same counts (same seed and sample) */
    qkd_kernel_sample_counts_f64(n, QKD_MEASURE_Z, S, pr, 99, (uint64_t)t, z);
    for (int q = 0; q < n; q++) CHECK_NEAR(z[q], zz[q], 1e-9);
    double again[64];
    qkd_kernel_sample_counts_f64(n, QKD_MEASURE_PROBS, S, pr, 99, (uint64_t)t, again);
    CHECK(memcmp(again, o, sizeof(double) * (size_t)dim) == 0);
    qkd_kernel_sample_counts_f64(n, QKD_MEASURE_PROBS, S, pr, 100, (uint64_t)t, again);
    differs += memcmp(again, o, sizeof(double) * (size_t)dim) != 0;
  }
  CHECK(differs > 60);
  /* joint law: Cov(c_i, c_j) = −S p_i p_j and Var(c_i) = S p_i (1 − p_i) over repetitions */
  {
    double pr[4] = {0.1, 0.2, 0.3, 0.4}, m[4] = {0}, c01 = 0, v2 = 0;
    const int R = 40000, S = 25;
    for (int r = 0; r < R; r++) {
      qkd_kernel_sample_counts_f64(2, QKD_MEASURE_PROBS, S, pr, 5, (uint64_t)r, o);
      for (int i = 0; i < 4; i++) m[i] += o[i] * S;
      c01 += o[0] * S * o[1] * S;
      v2 += o[2] * S * o[2] * S;
    }
    for (int i = 0; i < 4; i++) m[i] /= R;
    for (int i = 0; i < 4; i++) CHECK_NEAR(m[i], S * pr[i], 5 * sqrt(S * pr[i] * (1 - pr[i]) / R));
    CHECK_NEAR(c01 / R - m[0] * m[1], -S * pr[0] * pr[1], 0.1 * S * pr[0] * pr[1]);
    CHECK_NEAR(v2 / R - m[2] * m[2], S * pr[2] * (1 - pr[2]), 0.05 * S * pr[2] * (1 - pr[2]));
  }
  printf("counts sampling: %d outcome checks\n", tests);
}

int main(void) {
  pool2 = qkd_par_create(2);
  CHECK(pool2 != NULL);
  test_binomial();
  test_counts();
  test_spot();
  int after_spot = test_checks;

  coverage cov;
  memset(&cov, 0, sizeof cov);
  for (int i = 0; i < N_CIRCUITS; i++) sweep_one(i, &cov);
  for (int g = 0; g < QKD_GATE_COUNT; g++) {
    if (!cov.gate_seen[g]) fprintf(stderr, "gate %s never generated\n", qkd_gate_table[g].name);
    CHECK(cov.gate_seen[g] > 0);
  }
  CHECK(cov.amp > 0 && cov.gate_enc > 0 && cov.none_enc > 0 && cov.z > 0 && cov.probs > 0);
  CHECK(cov.zero_rows > 0 && cov.feat_angle_amp > 0 && cov.max_n == MAX_Q);
  printf("sweep: %d circuits (1..%d qubits; %d amplitude, %d gate-encoded, %d plain; %d Z, %d probs), "
         "%d finite-difference derivatives\n",
         N_CIRCUITS, cov.max_n, cov.amp, cov.gate_enc, cov.none_enc, cov.z, cov.probs, cov.fd_checks);
  int after_sweep = test_checks;

  int differs = 0;
  for (int i = 0; i < N_SHOT_CIRCUITS; i++) shots_one(i, &differs);
  CHECK(differs > N_SHOT_CIRCUITS / 2); /* another seed gives other draws */
  printf("checks: %d spot, %d sweep, %d shots\n", after_spot, after_sweep - after_spot,
         test_checks - after_sweep);
  qkd_par_destroy(pool2);
  return test_done("test_rt_qsim");
}
