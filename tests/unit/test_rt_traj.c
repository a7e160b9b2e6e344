/* test_rt_traj.c — Monte-Carlo trajectories (runtime/traj.c) against the exact density-matrix
 * engine (runtime/dmsim.c, itself held against an independent Kraus-sum reference in
 * test_rt_dmsim.c).
 *
 * Checked:
 *   - the Pauli probabilities the channel table's Kraus operators give, against the closed forms
 *     written here (depolarizing p/3 each, bit_flip p on X, phase_flip p on Z, phase_damping
 *     (1 − √(1−γ))/2 on Z); amplitude_damping is refused, by qkd_traj_init too, naming it;
 *   - on random circuits (circgen: every gate kind, every encoding, Z and probabilities) with
 *     random Pauli channels at random places and random read-out: the mean of N single-trajectory
 *     estimates of the outputs, of the VJP's d_params and of d_features lies within 5 standard
 *     errors of the exact outputs and exact VJP (qkd_dm_forward, qkd_dm_vjp) — unbiased
 *     outputs and gradients; the kernel is the state-vector interpreter on the trajectory
 *     circuit;
 *   - every channel at p = 0: no slot, the trajectory circuit is the noiseless one and its
 *     outputs are the interpreter's on the noiseless circuit, bit for bit;
 *   - shots (with and without read-out, Z and probabilities, 1 and 3 trajectories): every
 *     sampled output is a multiple of 1/S (S shots a sample, not S a trajectory); the mean of
 *     N samples' sampled outputs lies within 5 standard errors of the exact read-out values
 *     (qkd_dm_forward), and the gradient (spread + the rows' VJP) of the exact VJP; with every
 *     p = 0 the sampled outputs are the noiseless interpreter's with the same shot keys, bit
 *     for bit;
 *   - draws keyed by sample: a batch expanded whole, in two parts (first_sample) or on pools of
 *     1, 2 and 3 threads, and run through the thread pool on 1 and 2 threads, gives the same bits. Links only qkdrt. */
#include "circgen.h"
#include "qkd_dmsim.h"
#include "qkd_par.h"
#include "qkd_rng.h"
#include "qkd_traj.h"
#include "qsim.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_CIRCUITS 36
#define N_TRAJ 3000
#define SIGMAS 5.0

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) abort();
  return p;
}

static void check_pauli_table(void) {
  double p[3];
  CHECK(qkd_traj_pauli(QKD_CHAN_DEPOLARIZING, 0.3, p) == 0);
  for (int i = 0; i < 3; i++) CHECK_NEAR(p[i], 0.1, 1e-15);
  CHECK(qkd_traj_pauli(QKD_CHAN_BIT_FLIP, 0.2, p) == 0);
  CHECK_NEAR(p[0], 0.2, 1e-15);
  CHECK_NEAR(p[1], 0.0, 1e-15);
  CHECK_NEAR(p[2], 0.0, 1e-15);
  CHECK(qkd_traj_pauli(QKD_CHAN_PHASE_FLIP, 0.2, p) == 0);
  CHECK_NEAR(p[0], 0.0, 1e-15);
  CHECK_NEAR(p[1], 0.0, 1e-15);
  CHECK_NEAR(p[2], 0.2, 1e-15);
  CHECK(qkd_traj_pauli(QKD_CHAN_PHASE_DAMPING, 0.36, p) == 0);
  CHECK_NEAR(p[0], 0.0, 1e-15);
  CHECK_NEAR(p[1], 0.0, 1e-15);
  CHECK_NEAR(p[2], (1 - sqrt(1 - 0.36)) / 2, 1e-15);
  CHECK(qkd_traj_pauli(QKD_CHAN_AMPLITUDE_DAMPING, 0.1, p) != 0);
  CHECK(qkd_traj_pauli(QKD_CHAN_AMPLITUDE_DAMPING, 0.0, p) == 0); /* the identity is a Pauli channel */

  qkd_ir_circuit *c = circgen_hea(2, 1, QKD_MEASURE_Z, QKD_PREC_F64);
  qkd_ir_channel ch[2] = {{QKD_CHAN_DEPOLARIZING, 0, 0.1, 1}, {QKD_CHAN_AMPLITUDE_DAMPING, 1, 0.1, 2}};
  c->channels = ch, c->n_channels = 2, c->trajectories = 1;
  qkd_traj t;
  qkd_error err;
  CHECK(qkd_traj_init(&t, c, 1, &err) != 0);
  CHECK(err.kind == QKD_ERR_INPUT && strstr(err.msg, "amplitude_damping") != NULL);
  c->channels = NULL, c->n_channels = 0;
  circgen_free(c);
}

static const int pauli_kinds[4] = {QKD_CHAN_DEPOLARIZING, QKD_CHAN_BIT_FLIP, QKD_CHAN_PHASE_FLIP, QKD_CHAN_PHASE_DAMPING};

/* Random Pauli channels (and maybe read-out) onto c; arrays owned by the caller. */
static void add_noise(qkd_ir_circuit *c, uint64_t seed, qkd_ir_channel *ch, qkd_ir_readout *ro, int zero) {
  int m = 1 + (int)(qkd_rng_uniform(seed, 77, 0) * 8);
  for (int i = 0; i < m; i++) {
    int after = (int)(qkd_rng_uniform(seed, 77, 10 + i) * (c->n_gates + 1));
    ch[i] = (qkd_ir_channel){pauli_kinds[(int)(qkd_rng_uniform(seed, 77, 30 + i) * 4)],
                             (int)(qkd_rng_uniform(seed, 77, 50 + i) * c->n_qubits),
                             zero ? 0.0 : 0.02 + 0.28 * qkd_rng_uniform(seed, 77, 70 + i), after};
  }
  for (int i = 1; i < m; i++) /* sorted by after (insertion sort keeps equal ones in order) */
    for (int j = i; j > 0 && ch[j - 1].after > ch[j].after; j--) {
      qkd_ir_channel t = ch[j];
      ch[j] = ch[j - 1], ch[j - 1] = t;
    }
  c->channels = ch, c->n_channels = m, c->readout = NULL;
  if (qkd_rng_uniform(seed, 77, 99) < 0.5) {
    for (int q = 0; q < c->n_qubits; q++)
      ro[q] = zero ? (qkd_ir_readout){0, 0}
                   : (qkd_ir_readout){0.2 * qkd_rng_uniform(seed, 77, 100 + q), 0.2 * qkd_rng_uniform(seed, 77, 200 + q)};
    c->readout = ro;
  }
  c->trajectories = 1;
}

typedef struct {
  double sum, sq;
} moments;
static void acc(moments *m, double x) { m->sum += x, m->sq += x * x; }
/* |mean − want| within SIGMAS standard errors (plus rounding) */
static int within(const moments *m, int n, double want) {
  double mean = m->sum / n, var = m->sq / n - mean * mean;
  double se = sqrt((var > 0 ? var : 0) / n);
  return fabs(mean - want) <= SIGMAS * se + 1e-9 * (1 + fabs(want));
}

static void check_unbiased(uint64_t seed) {
  circgen_opts o = circgen_defaults();
  o.min_qubits = 1, o.max_qubits = 4, o.max_gates = 14;
  qkd_ir_circuit *c = circgen_random(seed, &o);
  qkd_ir_channel ch[8];
  qkd_ir_readout ro[QKD_MAX_QUBITS];
  add_noise(c, seed, ch, ro, 0);
  qkd_error err;
  CHECK(qkd_ir_validate(c, &err) == 0);
  qkd_traj t;
  if (qkd_traj_init(&t, c, 1, &err) != 0) {
    CHECK(!"qkd_traj_init failed");
    circgen_free(c);
    return;
  }
  int P = c->n_params, F = c->n_features, O = qkd_ir_outputs(c), W = t.W;
  double *params = xcalloc((size_t)P + 1, sizeof(double)), *x = xcalloc((size_t)F + 1, sizeof(double));
  circgen_inputs(c, seed + 1, 1, params, x);
  double *d = xcalloc((size_t)O, sizeof(double));
  for (int i = 0; i < O; i++) d[i] = 2 * qkd_rng_uniform(seed, 78, (uint64_t)i) - 1;
  /* the exact answer */
  double *want = xcalloc((size_t)O, sizeof(double)), *want_dp = xcalloc((size_t)P + 1, sizeof(double));
  double *want_dx = xcalloc((size_t)F + 1, sizeof(double));
  CHECK(qkd_dm_forward(c, params, F ? x : NULL, want, NULL, &err) == 0);
  CHECK(qkd_dm_vjp(c, params, F ? x : NULL, d, want_dp, F ? want_dx : NULL, &err) == 0);
  /* N single trajectories of the sample: N copies of it, each keyed by its own sample index */
  double *xs = xcalloc((size_t)N_TRAJ * (F + 1), sizeof(double)), *rows = xcalloc((size_t)N_TRAJ * (W + 1), sizeof(double));
  for (int r = 0; r < N_TRAJ; r++) memcpy(xs + (size_t)r * F, x, sizeof(double) * (size_t)F);
  qkd_traj_expand(&t, NULL, xs, N_TRAJ, seed, 0, rows);
  qkd_kernel k = qkd_qsim_kernel(&t.circuit);
  void *ws = xcalloc(qkd_kernel_workspace_bytes(&t.circuit), 1);
  double *rout = xcalloc((size_t)O, sizeof(double)), *out = xcalloc((size_t)O, sizeof(double));
  double *rd = xcalloc((size_t)O, sizeof(double)), *dp = xcalloc((size_t)P + 1, sizeof(double));
  double *rdx = xcalloc((size_t)W + 1, sizeof(double)), *dx = xcalloc((size_t)F + 1, sizeof(double));
  moments *mo = xcalloc((size_t)O, sizeof(moments)), *mp = xcalloc((size_t)P + 1, sizeof(moments));
  moments *mx = xcalloc((size_t)F + 1, sizeof(moments));
  for (int r = 0; r < N_TRAJ; r++) {
    const double *row = rows + (size_t)r * W;
    k.fwd_f64(&k, params, row, 1, 0, 0, rout, ws);
    qkd_traj_reduce(&t, rout, 1, 0, 0, out);
    for (int i = 0; i < O; i++) acc(&mo[i], out[i]);
    qkd_traj_spread(&t, d, 1, rd);
    memset(dp, 0, sizeof(double) * (size_t)(P + 1));
    k.bwd_f64(&k, params, row, 1, rd, dp, F ? rdx : NULL, ws);
    for (int i = 0; i < P; i++) acc(&mp[i], dp[i]);
    if (F) {
      qkd_traj_gather(&t, rdx, 1, dx);
      for (int i = 0; i < F; i++) acc(&mx[i], dx[i]);
    }
  }
  int bad = 0;
  for (int i = 0; i < O; i++) bad += !within(&mo[i], N_TRAJ, want[i]);
  for (int i = 0; i < P; i++) bad += !within(&mp[i], N_TRAJ, want_dp[i]);
  for (int i = 0; i < F; i++) bad += !within(&mx[i], N_TRAJ, want_dx[i]);
  if (bad) fprintf(stderr, "circuit seed %llu: %d estimates beyond %g standard errors\n", (unsigned long long)seed, bad, SIGMAS);
  CHECK(bad == 0);
  free(params), free(x), free(d), free(want), free(want_dp), free(want_dx), free(xs), free(rows), free(ws);
  free(rout), free(out), free(rd), free(dp), free(rdx), free(dx), free(mo), free(mp), free(mx);
  qkd_traj_free(&t);
  c->channels = NULL, c->n_channels = 0, c->readout = NULL;
  circgen_free(c);
}

/* Every p = 0: the noiseless circuit, bit for bit. */
static void check_zero(uint64_t seed) {
  circgen_opts o = circgen_defaults();
  o.min_qubits = 1, o.max_qubits = 5;
  qkd_ir_circuit *c = circgen_random(seed, &o), *clean = circgen_copy(c);
  qkd_ir_channel ch[8];
  qkd_ir_readout ro[QKD_MAX_QUBITS];
  add_noise(c, seed, ch, ro, 1);
  qkd_traj t;
  qkd_error err;
  CHECK(qkd_traj_init(&t, c, 3, &err) == 0);
  CHECK(t.n_draws == 0 && t.n_bits == 0 && t.W == c->n_features && t.circuit.n_gates == c->n_gates && t.trajectories == 1);
  CHECK(qkd_ir_hash(&t.circuit) == qkd_ir_hash(clean));
  int B = 5, F = c->n_features, O = qkd_ir_outputs(c);
  double *params = xcalloc((size_t)c->n_params + 1, sizeof(double)), *x = xcalloc((size_t)B * F + 1, sizeof(double));
  circgen_inputs(c, seed + 2, B, params, x);
  double *rows = xcalloc((size_t)B * F + 1, sizeof(double)), *rout = xcalloc((size_t)B * O, sizeof(double));
  double *out = xcalloc((size_t)B * O, sizeof(double)), *ref = xcalloc((size_t)B * O, sizeof(double));
  qkd_traj_expand(&t, NULL, x, B, 7, 0, rows);
  qkd_kernel k = qkd_qsim_kernel(&t.circuit), kc = qkd_qsim_kernel(clean);
  void *ws = xcalloc(qkd_kernel_workspace_bytes(clean), 1);
  k.fwd_f64(&k, params, rows, B, 9, 0, rout, ws);
  qkd_traj_reduce(&t, rout, B, 0, 0, out);
  kc.fwd_f64(&kc, params, x, B, 9, 0, ref, ws); /* (circgen's defaults: exact outputs, no shots) */
  CHECK(memcmp(out, ref, sizeof(double) * (size_t)B * O) == 0);
  free(params), free(x), free(rows), free(rout), free(out), free(ref), free(ws);
  qkd_traj_free(&t);
  c->channels = NULL, c->n_channels = 0, c->readout = NULL;
  circgen_free(c), circgen_free(clean);
}

/* Shots on trajectories: S a sample whatever T is, drawn from the read-bit distribution. */
#define SHOT_SAMPLES 4000
static void check_shots(uint64_t seed, int T, int zero) {
  circgen_opts o = circgen_defaults();
  o.min_qubits = 1, o.max_qubits = 3, o.max_gates = 10;
  qkd_ir_circuit *c = circgen_random(seed, &o);
  qkd_ir_channel ch[8];
  qkd_ir_readout ro[QKD_MAX_QUBITS];
  add_noise(c, seed, ch, ro, zero);
  int S = 7 + (int)(seed % 5); /* few shots: the sampled values are coarse */
  qkd_error err;
  qkd_traj t;
  c->shots = S;
  CHECK(qkd_ir_validate(c, &err) == 0);
  if (qkd_traj_init(&t, c, T, &err) != 0) {
    CHECK(!"qkd_traj_init failed");
    c->channels = NULL, c->n_channels = 0, c->readout = NULL;
    circgen_free(c);
    return;
  }
  int n = c->n_qubits, P = c->n_params, F = c->n_features, O = qkd_ir_outputs(c), W = t.W, RO = t.RO, Tn = t.trajectories;
  CHECK(RO == 1 << n && t.circuit.shots == 0 && t.circuit.measure == QKD_MEASURE_PROBS);
  double *params = xcalloc((size_t)P + 1, sizeof(double)), *x = xcalloc((size_t)F + 1, sizeof(double));
  circgen_inputs(c, seed + 1, 1, params, x);
  double *d = xcalloc((size_t)O, sizeof(double));
  for (int i = 0; i < O; i++) d[i] = 2 * qkd_rng_uniform(seed, 78, (uint64_t)i) - 1;
  double *want = xcalloc((size_t)O, sizeof(double)), *want_dp = xcalloc((size_t)P + 1, sizeof(double));
  c->shots = 0; /* the exact values */
  CHECK(qkd_dm_forward(c, params, F ? x : NULL, want, NULL, &err) == 0);
  CHECK(qkd_dm_vjp(c, params, F ? x : NULL, d, want_dp, NULL, &err) == 0);
  c->shots = S;
  int N = SHOT_SAMPLES;
  double *xs = xcalloc((size_t)N * (F + 1), sizeof(double)), *rows = xcalloc((size_t)N * Tn * (W + 1), sizeof(double));
  for (int r = 0; r < N; r++) memcpy(xs + (size_t)r * F, x, sizeof(double) * (size_t)F);
  qkd_traj_expand(&t, NULL, xs, N, seed, 0, rows);
  qkd_kernel k = qkd_qsim_kernel(&t.circuit);
  void *ws = xcalloc(qkd_kernel_workspace_bytes(&t.circuit), 1);
  double *rout = xcalloc((size_t)N * Tn * RO, sizeof(double)), *out = xcalloc((size_t)N * O, sizeof(double));
  double *rd = xcalloc((size_t)Tn * RO, sizeof(double)), *dp = xcalloc((size_t)P + 1, sizeof(double));
  k.fwd_f64(&k, params, rows, N * Tn, 0, 0, rout, ws);
  qkd_traj_reduce(&t, rout, N, 31, 500, out);
  moments *mo = xcalloc((size_t)O, sizeof(moments)), *mp = xcalloc((size_t)P + 1, sizeof(moments));
  int coarse = 1;
  for (int r = 0; r < N; r++) {
    for (int i = 0; i < O; i++) {
      double v = out[(size_t)r * O + i] * S; /* a count (probabilities) or S − 2·count (Z) */
      coarse &= fabs(v - nearbyint(v)) < 1e-9;
      acc(&mo[i], out[(size_t)r * O + i]);
    }
    qkd_traj_spread(&t, d, 1, rd);
    memset(dp, 0, sizeof(double) * (size_t)(P + 1));
    k.bwd_f64(&k, params, rows + (size_t)r * Tn * W, Tn, rd, dp, NULL, ws);
    for (int i = 0; i < P; i++) acc(&mp[i], dp[i]);
  }
  CHECK(coarse);
  int bad = 0;
  for (int i = 0; i < O; i++) bad += !within(&mo[i], N, want[i]);
  for (int i = 0; i < P; i++) bad += !within(&mp[i], N, want_dp[i]);
  if (bad) fprintf(stderr, "shots, circuit seed %llu, T %d: %d estimates beyond %g standard errors\n", (unsigned long long)seed, T, bad, SIGMAS);
  CHECK(bad == 0);
  if (zero) { /* nothing drawn: the noiseless interpreter's shots, same keys */
    qkd_ir_circuit *clean = circgen_copy(c);
    clean->channels = NULL, clean->n_channels = 0, clean->readout = NULL, clean->trajectories = 0;
    qkd_kernel kc = qkd_qsim_kernel(clean);
    void *wc = xcalloc(qkd_kernel_workspace_bytes(clean), 1);
    double *ref = xcalloc((size_t)N * O, sizeof(double));
    kc.fwd_f64(&kc, params, xs, N, 31, 500, ref, wc);
    CHECK(Tn == 1 && memcmp(ref, out, sizeof(double) * (size_t)N * O) == 0);
    free(ref), free(wc);
    circgen_free(clean);
  }
  free(params), free(x), free(d), free(want), free(want_dp), free(xs), free(rows), free(ws), free(rout), free(out);
  free(rd), free(dp), free(mo), free(mp);
  qkd_traj_free(&t);
  c->channels = NULL, c->n_channels = 0, c->readout = NULL;
  circgen_free(c);
}

/* Draws keyed by sample: split batches and thread counts give the same bits. */
static void check_bits(void) {
  qkd_ir_circuit *c = circgen_hea(5, 3, QKD_MEASURE_Z, QKD_PREC_F64);
  qkd_ir_channel ch[64];
  int m = 0;
  for (int g = 0; g < c->n_gates && m < 64; g++) ch[m++] = (qkd_ir_channel){QKD_CHAN_DEPOLARIZING, c->gates[g].q[0], 0.05, g + 1};
  c->channels = ch, c->n_channels = m, c->trajectories = 4;
  qkd_traj t;
  qkd_error err;
  CHECK(qkd_traj_init(&t, c, 4, &err) == 0);
  int B = 37, F = c->n_features, W = t.W, O = qkd_ir_outputs(c), R = B * 4;
  double *params = xcalloc((size_t)c->n_params, sizeof(double)), *x = xcalloc((size_t)B * F, sizeof(double));
  circgen_hea_data(c, B, x, params);
  double *rows = xcalloc((size_t)R * W, sizeof(double)), *rows2 = xcalloc((size_t)R * W, sizeof(double));
  qkd_traj_expand(&t, NULL, x, B, 11, 100, rows);
  qkd_traj_expand(&t, NULL, x, 20, 11, 100, rows2);
  qkd_traj_expand(&t, NULL, x + (size_t)20 * F, B - 20, 11, 120, rows2 + (size_t)20 * 4 * W);
  CHECK(memcmp(rows, rows2, sizeof(double) * (size_t)R * W) == 0);
  for (int th = 1; th <= 3; th++) { /* the draws on a pool: slices of samples, the same rows */
    qkd_par_pool *pp = qkd_par_create(th);
    memset(rows2, 0, sizeof(double) * (size_t)R * W);
    qkd_traj_expand(&t, pp, x, B, 11, 100, rows2);
    CHECK(memcmp(rows, rows2, sizeof(double) * (size_t)R * W) == 0);
    qkd_par_destroy(pp);
  }
  int flips = 0;
  for (int r = 0; r < R; r++)
    for (int j = F; j < W; j++) flips += rows[(size_t)r * W + j] != 0;
  CHECK(flips > 0); /* (p = 0.05 on 30 slots × 148 rows) */
  qkd_kernel k = qkd_qsim_kernel(&t.circuit);
  double *o1 = xcalloc((size_t)R * O, sizeof(double)), *o2 = xcalloc((size_t)R * O, sizeof(double));
  double *g1 = xcalloc((size_t)c->n_params, sizeof(double)), *g2 = xcalloc((size_t)c->n_params, sizeof(double));
  double *dout = xcalloc((size_t)R * O, sizeof(double));
  for (int i = 0; i < R * O; i++) dout[i] = qkd_rng_uniform(3, 79, (uint64_t)i) - 0.5;
  qkd_par_pool *p1 = qkd_par_create(1), *p2 = qkd_par_create(2);
  CHECK(qkd_par_fwd_f64(p1, &k, params, rows, R, 0, 0, o1) == 0);
  CHECK(qkd_par_fwd_f64(p2, &k, params, rows, R, 0, 0, o2) == 0);
  CHECK(memcmp(o1, o2, sizeof(double) * (size_t)R * O) == 0);
  CHECK(qkd_par_bwd_f64(p1, &k, params, rows, R, dout, g1, NULL) == 0);
  CHECK(qkd_par_bwd_f64(p2, &k, params, rows, R, dout, g2, NULL) == 0);
  CHECK(memcmp(g1, g2, sizeof(double) * (size_t)c->n_params) == 0);
  qkd_par_destroy(p1), qkd_par_destroy(p2);
  free(params), free(x), free(rows), free(rows2), free(o1), free(o2), free(g1), free(g2), free(dout);
  qkd_traj_free(&t);
  c->channels = NULL, c->n_channels = 0, c->trajectories = 0;
  circgen_free(c);
}

int main(void) {
  check_pauli_table();
  for (int i = 0; i < N_CIRCUITS; i++) check_unbiased(1000 + (uint64_t)i);
  for (int i = 0; i < 40; i++) check_zero(5000 + (uint64_t)i);
  for (int i = 0; i < 12; i++) check_shots(7000 + (uint64_t)i, 1 + 2 * (i % 2), 0);
  for (int i = 0; i < 6; i++) check_shots(7100 + (uint64_t)i, 3, 1);
  check_bits();
  return test_done("test_rt_traj");
}
