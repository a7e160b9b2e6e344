/* test_jit_kernels.c — the LLVM-JIT'd kernels (compiler/jit.h) against two independent
 * references: the interpreter (runtime/qsim.h) and the dense-matrix simulator (dense_ref.h),
 * plus finite differences for the gradients, on random circuits from circgen.h (every gate, all
 * angle kinds, all encodings and measurements, shots, batches with partial vector tiles).
 * Also: every specialisation switched off one at a time and every vector width (same numbers),
 * bit-identical reruns, the qkd_par driver at 1/2/3 threads (bit-identical), cache blocking
 * (forced block sizes on small circuits; 9-14 qubits as chosen by size), parameter shift
 * through the kernels (qkd_par_pshift), emit-llvm and object emission. Without QKD_FULL_SWEEP (the sanitizer build) the sweep is smaller. */
#include "circgen.h"
#include "dense_ref.h"
#include "jit.h"
#include "qkd_par.h"
#include "qkd_rng.h"
#include "qkd_traj.h"
#include "qsim.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef QKD_FULL_SWEEP
#define N_CIRCUITS 240
#define MAX_QUBITS 10
#else
#define N_CIRCUITS 48
#define MAX_QUBITS 8
#endif

static double maxabs_diff(const double *a, const double *b, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs(a[i] - b[i]);
    if (!(d <= m)) m = d; /* NaN propagates as failure */
  }
  return m;
}
static double maxabs(const double *a, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++) if (fabs(a[i]) > m) m = fabs(a[i]);
  return m;
}

static void *xmalloc(size_t n) {
  void *p = calloc(n ? n : 1, 1);
  if (!p) abort();
  return p;
}

/* Random upstream gradient in [-1, 1]. */
static void rand_dout(uint64_t seed, double *d, size_t n) {
  for (size_t i = 0; i < n; i++) d[i] = 2.0 * qkd_rng_uniform(seed, 77, i) - 1.0;
}

typedef struct {
  int checks_fwd, checks_bwd, fd, f32, variants, par, pshift, pshift_shots, large, traj;
} counts;
static counts cnt;

/* kj's f32 entry points against the f64 interpreter on the same float-rounded inputs: outputs to
 * 1e-4 (plus the shot noise), d_params and d_features to 1e-4 of their scale. */
static void check_f32(uint64_t seed, const qkd_ir_circuit *c, const qkd_kernel *kj, const double *params,
                      const double *feat, const double *dout, int batch) {
  qkd_kernel ki = qkd_qsim_kernel(c);
  int np = c->n_params, nf = c->n_features, no = qkd_ir_outputs(c);
  size_t nout = (size_t)batch * (size_t)no, nfe = (size_t)batch * (size_t)nf;
  float *pf = xmalloc((size_t)(np + 1) * 4), *ff = xmalloc((nfe + 1) * 4);
  float *of = xmalloc(nout * 4), *dof = xmalloc(nout * 4), *gf = xmalloc((size_t)(np + 1) * 4);
  float *dff = xmalloc((nfe + 1) * 4);
  double *pr = xmalloc((size_t)(np + 1) * 8), *fr = xmalloc((nfe + 1) * 8), *dor = xmalloc(nout * 8);
  double *oi = xmalloc(nout * 8), *gi = xmalloc((size_t)(np + 1) * 8), *fi = xmalloc((nfe + 1) * 8);
  void *ws = xmalloc(qkd_kernel_workspace_bytes(c));
  for (int i = 0; i < np; i++) { pf[i] = (float)params[i]; pr[i] = pf[i]; gi[i] = 0.0; gf[i] = 0.0f; }
  for (size_t i = 0; i < nfe; i++) { ff[i] = (float)feat[i]; fr[i] = ff[i]; }
  for (size_t i = 0; i < nout; i++) { dof[i] = (float)dout[i]; dor[i] = dof[i]; }
  ki.fwd_f64(&ki, pr, fr, batch, seed, 100, oi, ws);
  kj->fwd_f32(kj, pf, ff, batch, seed, 100, of, ws);
  double m = 0.0;
  for (size_t i = 0; i < nout; i++) if (fabs(of[i] - oi[i]) > m) m = fabs(of[i] - oi[i]);
  double tol = c->shots ? (c->measure == QKD_MEASURE_Z ? 2.0 : 1.0) / c->shots + 1e-4 : 1e-4;
  if (!(m <= tol)) fprintf(stderr, "seed %llu n %d: fwd f32 %g\n", (unsigned long long)seed, c->n_qubits, m);
  CHECK(m <= tol);
  ki.bwd_f64(&ki, pr, fr, batch, dor, gi, fi, ws);
  kj->bwd_f32(kj, pf, ff, batch, dof, gf, dff, ws);
  double sg = 1.0 + maxabs(gi, (size_t)np), sf = 1.0 + maxabs(fi, nfe);
  m = 0.0;
  for (int i = 0; i < np; i++) if (fabs(gf[i] - gi[i]) > m) m = fabs(gf[i] - gi[i]);
  if (!(m <= 1e-4 * sg)) fprintf(stderr, "seed %llu n %d: bwd f32 d_params %g (scale %g)\n", (unsigned long long)seed, c->n_qubits, m, sg);
  CHECK(m <= 1e-4 * sg);
  m = 0.0;
  for (size_t i = 0; i < nfe; i++) if (fabs(dff[i] - fi[i]) > m) m = fabs(dff[i] - fi[i]);
  if (!(m <= 1e-4 * sf)) fprintf(stderr, "seed %llu n %d: bwd f32 d_features %g (scale %g)\n", (unsigned long long)seed, c->n_qubits, m, sf);
  CHECK(m <= 1e-4 * sf);
  cnt.f32++;
  free(pf); free(ff); free(of); free(dof); free(gf); free(dff); free(pr); free(fr); free(dor);
  free(oi); free(gi); free(fi); free(ws);
}

/* One circuit: JIT (f64, f32) vs interpreter vs dense reference, and gradients. */
/* 1 if feature j is read by a BIT angle (a trajectory's Pauli slot). */
static int bit_feature(const qkd_ir_circuit *c, int j) {
  for (int i = 0; i < c->n_gates; i++)
    for (int s = 0; s < QKD_GATE_MAX_ANGLES; s++)
      if (c->gates[i].angle[s].kind == QKD_ANGLE_BIT && c->gates[i].angle[s].index == j) return 1;
  return 0;
}

static void check_circuit(uint64_t seed, const qkd_ir_circuit *c, int batch) {
  qkd_error err;
  qkd_kernel kj;
  if (qkd_jit_compile(c, &kj, &err) != 0) {
    fprintf(stderr, "seed %llu: compile failed: %s\n", (unsigned long long)seed, err.msg);
    CHECK(0);
    return;
  }
  qkd_kernel ki = qkd_qsim_kernel(c);
  int np = c->n_params, nf = c->n_features, no = qkd_ir_outputs(c);
  double *params = xmalloc((size_t)(np + 1) * 8), *feat = xmalloc((size_t)batch * (size_t)(nf + 1) * 8);
  circgen_inputs(c, seed * 31 + 7, batch, params, feat);
  for (int j = 0; j < nf; j++) /* the features BIT angles read: 0 or 1, both met */
    if (bit_feature(c, j))
      for (int b = 0; b < batch; b++) feat[(size_t)b * nf + j] = qkd_rng_uniform(seed, 91, (uint64_t)(b * nf + j)) < 0.5;
  size_t nout = (size_t)batch * (size_t)no;
  double *oj = xmalloc(nout * 8), *oi = xmalloc(nout * 8), *od = xmalloc((size_t)no * 8);
  void *ws = xmalloc(qkd_kernel_workspace_bytes(c));

  /* forward f64 */
  kj.fwd_f64(&kj, params, feat, batch, seed, 100, oj, ws);
  ki.fwd_f64(&ki, params, feat, batch, seed, 100, oi, ws);
  if (c->shots == 0) {
    double d = maxabs_diff(oj, oi, nout);
    if (!(d <= 1e-10)) {
      fprintf(stderr, "seed %llu: fwd f64 jit vs interp %g (n=%d gates=%d)\n", (unsigned long long)seed, d, c->n_qubits, c->n_gates);
      qkd_ir_dump(c, stderr);
    }
    CHECK(d <= 1e-10);
    for (int b = 0; b < batch; b++) {
      dense_ref_outputs(c, params, nf ? feat + (size_t)b * nf : NULL, od);
      double dd = maxabs_diff(oj + (size_t)b * no, od, (size_t)no);
      if (!(dd <= 1e-10)) fprintf(stderr, "seed %llu: fwd f64 jit vs dense %g\n", (unsigned long long)seed, dd);
      CHECK(dd <= 1e-10);
    }
  } else {
    /* sampled: same draws from (seed, sample); probabilities that differ by rounding may move a
     * draw across a cdf boundary only with negligible probability, so allow one draw of slack */
    double d = maxabs_diff(oj, oi, nout);
    double tol = (c->measure == QKD_MEASURE_Z ? 2.0 : 1.0) / c->shots + 1e-12;
    if (!(d <= tol)) fprintf(stderr, "seed %llu: shots fwd jit vs interp %g\n", (unsigned long long)seed, d);
    CHECK(d <= tol);
  }
  cnt.checks_fwd++;

  /* backward f64 */
  double *dout = xmalloc(nout * 8);
  rand_dout(seed, dout, nout);
  double *gj = xmalloc((size_t)(np + 1) * 8), *gi = xmalloc((size_t)(np + 1) * 8);
  double *fj = xmalloc((size_t)batch * (size_t)(nf + 1) * 8), *fi = xmalloc((size_t)batch * (size_t)(nf + 1) * 8);
  for (int i = 0; i < np; i++) gj[i] = gi[i] = 0.5 * i; /* d_params accumulates */
  memset(fj, 0x7f, (size_t)batch * (size_t)nf * 8);      /* d_features is overwritten */
  kj.bwd_f64(&kj, params, feat, batch, dout, gj, fj, ws);
  ki.bwd_f64(&ki, params, feat, batch, dout, gi, fi, ws);
  double sc = 1.0 + maxabs(gi, (size_t)np);
  double dg = maxabs_diff(gj, gi, (size_t)np);
  if (!(dg <= 1e-10 * sc)) fprintf(stderr, "seed %llu: bwd d_params jit vs interp %g\n", (unsigned long long)seed, dg);
  CHECK(dg <= 1e-10 * sc);
  double scf = 1.0 + maxabs(fi, (size_t)batch * nf);
  double df = maxabs_diff(fj, fi, (size_t)batch * nf);
  if (!(df <= 1e-10 * scf)) fprintf(stderr, "seed %llu: bwd d_features jit vs interp %g\n", (unsigned long long)seed, df);
  CHECK(df <= 1e-10 * scf);
  /* d_features NULL: same d_params */
  double *gn = xmalloc((size_t)(np + 1) * 8);
  for (int i = 0; i < np; i++) gn[i] = 0.5 * i;
  kj.bwd_f64(&kj, params, feat, batch, dout, gn, NULL, ws);
  CHECK(memcmp(gn, gj, (size_t)np * 8) == 0);
  cnt.checks_bwd++;

  /* finite differences of the dense reference, sample 0 only (VJP = Σ_o dout_o dO_o/dx) */
  {
    double *g1 = xmalloc((size_t)(np + 1) * 8), *f1 = xmalloc((size_t)(nf + 1) * 8), *fdv = xmalloc((size_t)no * 8);
    kj.bwd_f64(&kj, params, feat, 1, dout, g1, f1, ws);
    for (int t = 0; t < 3 && t < np; t++) {
      int idx = (int)((seed + (uint64_t)t * 7) % (uint64_t)np);
      dense_ref_fd(c, params, nf ? feat : NULL, DENSE_WRT_PARAM, idx, 1e-5, fdv);
      double v = 0.0;
      for (int o = 0; o < no; o++) v += dout[o] * fdv[o];
      if (!(fabs(v - g1[idx]) <= 1e-6 * (1 + fabs(v)))) fprintf(stderr, "seed %llu: fd param %d: %g vs %g\n", (unsigned long long)seed, idx, g1[idx], v);
      CHECK_NEAR(g1[idx], v, 1e-6 * (1 + fabs(v)));
      cnt.fd++;
    }
    for (int t = 0; t < 2 && t < nf; t++) {
      int idx = (int)((seed * 3 + (uint64_t)t * 5) % (uint64_t)nf);
      /* all-zero amplitude vectors are a kink: skip them */
      double ss = 0.0;
      for (int j = 0; j < nf; j++) ss += feat[j] * feat[j];
      if (c->encode == QKD_ENCODE_AMPLITUDE && ss < 1e-6) continue;
      if (bit_feature(c, idx)) { /* no gradient by definition, and a step at 0 */
        CHECK(f1[idx] == 0.0);
        continue;
      }
      dense_ref_fd(c, params, feat, DENSE_WRT_FEATURE, idx, 1e-5, fdv);
      double v = 0.0;
      for (int o = 0; o < no; o++) v += dout[o] * fdv[o];
      if (!(fabs(v - f1[idx]) <= 1e-6 * (1 + fabs(v)))) fprintf(stderr, "seed %llu: fd feature %d: %g vs %g\n", (unsigned long long)seed, idx, f1[idx], v);
      CHECK_NEAR(f1[idx], v, 1e-6 * (1 + fabs(v)));
      cnt.fd++;
    }
    free(g1); free(f1); free(fdv);
  }

  /* bit-identical rerun */
  {
    double *o2 = xmalloc(nout * 8), *g2 = xmalloc((size_t)(np + 1) * 8), *f2 = xmalloc((size_t)batch * (size_t)(nf + 1) * 8);
    for (int i = 0; i < np; i++) g2[i] = 0.5 * i;
    kj.fwd_f64(&kj, params, feat, batch, seed, 100, o2, ws);
    kj.bwd_f64(&kj, params, feat, batch, dout, g2, f2, ws);
    CHECK(memcmp(o2, oj, nout * 8) == 0);
    CHECK(memcmp(g2, gj, (size_t)np * 8) == 0);
    CHECK(memcmp(f2, fj, (size_t)batch * nf * 8) == 0);
    free(o2); free(g2); free(f2);
  }

  check_f32(seed, c, &kj, params, feat, dout, batch);
  free(params); free(feat); free(oj); free(oi); free(od); free(ws); free(dout); free(gj); free(gi);
  free(fj); free(fi); free(gn);
  qkd_jit_release(&kj);
  CHECK(kj.fwd_f64 == NULL && kj.engine_data == NULL);
}

/* The kernels compiled with each of opts[0..nopts) (f64 only): same numbers as the interpreter. */
static void check_options(uint64_t seed, const qkd_ir_circuit *c, int batch, const qkd_jit_options *opts, int nopts) {
  int np = c->n_params, nf = c->n_features, no = qkd_ir_outputs(c);
  double *params = xmalloc((size_t)(np + 1) * 8), *feat = xmalloc((size_t)batch * (size_t)(nf + 1) * 8);
  circgen_inputs(c, seed, batch, params, feat);
  size_t nout = (size_t)batch * no;
  double *oi = xmalloc(nout * 8), *oj = xmalloc(nout * 8), *dout = xmalloc(nout * 8);
  double *gi = xmalloc((size_t)(np + 1) * 8), *gj = xmalloc((size_t)(np + 1) * 8);
  double *fi = xmalloc((size_t)batch * (size_t)(nf + 1) * 8), *fj = xmalloc((size_t)batch * (size_t)(nf + 1) * 8);
  void *ws = xmalloc(qkd_kernel_workspace_bytes(c));
  rand_dout(seed + 1, dout, nout);
  qkd_kernel ki = qkd_qsim_kernel(c);
  ki.fwd_f64(&ki, params, feat, batch, 1, 0, oi, ws);
  ki.bwd_f64(&ki, params, feat, batch, dout, gi, fi, ws);
  double sc = 1.0 + maxabs(gi, (size_t)np), scf = 1.0 + maxabs(fi, (size_t)batch * nf);
  for (int s = 0; s < nopts; s++) {
    qkd_jit_options o = opts[s];
    o.precisions = 1;
    qkd_kernel kj;
    qkd_error err;
    if (qkd_jit_compile_ex(c, &o, &kj, &err) != 0) { qkd_error_print(&err, stderr); CHECK(0); continue; }
    CHECK(kj.fwd_f32 == NULL && kj.fwd_f64 != NULL);
    kj.fwd_f64(&kj, params, feat, batch, 1, 0, oj, ws);
    memset(gj, 0, (size_t)(np + 1) * 8);
    kj.bwd_f64(&kj, params, feat, batch, dout, gj, fj, ws);
    double d1 = maxabs_diff(oi, oj, nout), d2 = maxabs_diff(gi, gj, (size_t)np), d3 = maxabs_diff(fi, fj, (size_t)batch * nf);
    if (!(d1 <= 1e-10 && d2 <= 1e-10 * sc && d3 <= 1e-10 * scf))
      fprintf(stderr, "seed %llu n %d spec %d vb %d block %d: fwd %g bwd %g d_features %g\n", (unsigned long long)seed,
              c->n_qubits, o.specialise, o.vector_bytes, o.block, d1, d2, d3);
    CHECK(d1 <= 1e-10);
    CHECK(d2 <= 1e-10 * sc);
    CHECK(d3 <= 1e-10 * scf);
    cnt.variants++;
    qkd_jit_release(&kj);
    if (s % 4) continue;
    o.precisions = 2; /* two of the option sets (blocks 1 and 6 in check_blocks): the f32 kernel too */
    if (qkd_jit_compile_ex(c, &o, &kj, &err) != 0) { qkd_error_print(&err, stderr); CHECK(0); continue; }
    CHECK(kj.fwd_f64 == NULL && kj.fwd_f32 != NULL);
    check_f32(seed, c, &kj, params, feat, dout, batch);
    qkd_jit_release(&kj);
  }
  free(params); free(feat); free(oi); free(oj); free(dout); free(gi); free(gj); free(fi); free(fj); free(ws);
}

/* Specialisations off one at a time, and every vector width: same numbers as the interpreter. */
static void check_variants(uint64_t seed, const qkd_ir_circuit *c, int batch) {
  /* (specialisation mask, vector bytes): each switch off at least once, each width at least twice */
  static const int specs[] = {0, 1, 2, 4, 3, 6, 5};
  static const int vbs[] = {16, 32, 64, 16, 64, 32, 16};
  qkd_jit_options o[7];
  for (int s = 0; s < 7; s++) o[s] = (qkd_jit_options){.specialise = specs[s], .vector_bytes = vbs[s]};
  check_options(seed, c, batch, o, 7);
}

/* Cache blocking forced at every small block size (and off), with each vector width and with
 * the specialisations that shape the blocked groups (permutations, diagonal runs) switched off. */
static void check_blocks(uint64_t seed, const qkd_ir_circuit *c, int batch) {
  static const int blocks[] = {1, 2, 3, 4, 6, -1, 2, 3};
  static const int specs[] = {-1, -1, -1, -1, -1, -1, 5, 6};
  static const int vbs[] = {16, 32, 64, 16, 32, 64, 32, 16};
  qkd_jit_options o[8];
  for (int s = 0; s < 8; s++) o[s] = (qkd_jit_options){.specialise = specs[s], .vector_bytes = vbs[s], .block = blocks[s]};
  check_options(seed, c, batch, o, 8);
}

/* 9 ≤ n ≤ 14 with the default options (cache blocking chosen by size): against the interpreter
 * (f64 outputs, d_params, d_features), the dense reference at n ≤ 10, central finite differences
 * of the kernel's own loss Σ dout·outputs for a few parameters, and 1 vs 2 threads bit-identical. */
static void check_large(uint64_t seed, const qkd_ir_circuit *c, int batch, qkd_par_pool **pools) {
  qkd_error err;
  qkd_kernel kj;
  qkd_jit_options opt = {.precisions = 0, .specialise = -1};
  if (qkd_jit_compile_ex(c, &opt, &kj, &err) != 0) { qkd_error_print(&err, stderr); CHECK(0); return; }
  qkd_kernel ki = qkd_qsim_kernel(c);
  int np = c->n_params, nf = c->n_features, no = qkd_ir_outputs(c);
  size_t nout = (size_t)batch * no, nfe = (size_t)batch * nf;
  double *params = xmalloc((size_t)(np + 1) * 8), *feat = xmalloc((nfe + 1) * 8), *dout = xmalloc(nout * 8);
  circgen_inputs(c, seed, batch, params, feat);
  rand_dout(seed + 3, dout, nout);
  double *oj = xmalloc(nout * 8), *oi = xmalloc(nout * 8), *o2 = xmalloc(nout * 8), *od = xmalloc((size_t)no * 8);
  double *gj = xmalloc((size_t)(np + 1) * 8), *gi = xmalloc((size_t)(np + 1) * 8), *g2 = xmalloc((size_t)(np + 1) * 8);
  double *fj = xmalloc((nfe + 1) * 8), *fi = xmalloc((nfe + 1) * 8), *f2 = xmalloc((nfe + 1) * 8);
  void *ws = xmalloc(qkd_kernel_workspace_bytes(c));
  CHECK(qkd_par_fwd_f64(pools[0], &kj, params, feat, batch, seed, 0, oj) == 0);
  CHECK(qkd_par_bwd_f64(pools[0], &kj, params, feat, batch, dout, gj, fj) == 0);
  CHECK(qkd_par_fwd_f64(pools[1], &kj, params, feat, batch, seed, 0, o2) == 0);
  CHECK(qkd_par_bwd_f64(pools[1], &kj, params, feat, batch, dout, g2, f2) == 0);
  CHECK(memcmp(oj, o2, nout * 8) == 0);
  CHECK(memcmp(gj, g2, (size_t)np * 8) == 0);
  CHECK(memcmp(fj, f2, nfe * 8) == 0);
  ki.fwd_f64(&ki, params, feat, batch, seed, 0, oi, ws);
  ki.bwd_f64(&ki, params, feat, batch, dout, gi, fi, ws);
  double d1 = maxabs_diff(oj, oi, nout), d2 = maxabs_diff(gj, gi, (size_t)np), d3 = maxabs_diff(fj, fi, nfe);
  double sc = 1.0 + maxabs(gi, (size_t)np), scf = 1.0 + maxabs(fi, nfe);
  if (!(d1 <= 1e-10 && d2 <= 1e-10 * sc && d3 <= 1e-10 * scf))
    fprintf(stderr, "seed %llu n %d: jit vs interp fwd %g bwd %g d_features %g\n", (unsigned long long)seed, c->n_qubits, d1, d2, d3);
  CHECK(d1 <= 1e-10);
  CHECK(d2 <= 1e-10 * sc);
  CHECK(d3 <= 1e-10 * scf);
  if (c->n_qubits <= 10) {
    dense_ref_outputs(c, params, nf ? feat : NULL, od);
    double dd = maxabs_diff(oj, od, (size_t)no);
    if (!(dd <= 1e-10)) fprintf(stderr, "seed %llu n %d: jit vs dense %g\n", (unsigned long long)seed, c->n_qubits, dd);
    CHECK(dd <= 1e-10);
  }
  /* central differences of L(θ) = Σ dout·outputs(θ), three parameters */
  for (int t = 0; t < 3 && t < np; t++) {
    int i = (int)((seed + 7 * (uint64_t)t) % (uint64_t)np);
    double h = 1e-5, keep = params[i], lp = 0, lm = 0;
    params[i] = keep + h;
    kj.fwd_f64(&kj, params, feat, batch, seed, 0, o2, ws);
    for (size_t k = 0; k < nout; k++) lp += dout[k] * o2[k];
    params[i] = keep - h;
    kj.fwd_f64(&kj, params, feat, batch, seed, 0, o2, ws);
    for (size_t k = 0; k < nout; k++) lm += dout[k] * o2[k];
    params[i] = keep;
    double fd = (lp - lm) / (2 * h);
    if (!(fabs(fd - gj[i]) <= 1e-6 * (1 + fabs(fd)))) fprintf(stderr, "seed %llu n %d: fd %g adjoint %g\n", (unsigned long long)seed, c->n_qubits, fd, gj[i]);
    CHECK(fabs(fd - gj[i]) <= 1e-6 * (1 + fabs(fd)));
    cnt.fd++;
  }
  check_f32(seed, c, &kj, params, feat, dout, batch);
  cnt.large++;
  free(params); free(feat); free(dout); free(oj); free(oi); free(o2); free(od); free(gj); free(gi); free(g2);
  free(fj); free(fi); free(f2); free(ws);
  qkd_jit_release(&kj);
}

/* qkd_par at 1, 2, 3 threads: bit-identical; and equal (to rounding) to the interpreter. */
static void check_par(uint64_t seed, const qkd_ir_circuit *c, qkd_par_pool **pools) {
  qkd_error err;
  qkd_kernel kj;
  if (qkd_jit_compile(c, &kj, &err) != 0) { CHECK(0); return; }
  qkd_kernel ki = qkd_qsim_kernel(c);
  int batch = 3 * QKD_PAR_CHUNK + 11;
  int np = c->n_params, nf = c->n_features, no = qkd_ir_outputs(c);
  size_t nout = (size_t)batch * no, nfe = (size_t)batch * nf;
  double *params = xmalloc((size_t)(np + 1) * 8), *feat = xmalloc((nfe + 1) * 8);
  circgen_inputs(c, seed, batch, params, feat);
  double *dout = xmalloc(nout * 8);
  rand_dout(seed + 2, dout, nout);
  double *o[3], *g[3], *f[3];
  float *pf = xmalloc((size_t)(np + 1) * 4), *ff = xmalloc((nfe + 1) * 4), *df = xmalloc(nout * 4);
  for (int i = 0; i < np; i++) pf[i] = (float)params[i];
  for (size_t i = 0; i < nfe; i++) ff[i] = (float)feat[i];
  for (size_t i = 0; i < nout; i++) df[i] = (float)dout[i];
  float *o32[3], *g32[3], *f32[3];
  for (int t = 0; t < 3; t++) {
    o[t] = xmalloc(nout * 8); g[t] = xmalloc((size_t)(np + 1) * 8); f[t] = xmalloc((nfe + 1) * 8);
    o32[t] = xmalloc(nout * 4); g32[t] = xmalloc((size_t)(np + 1) * 4); f32[t] = xmalloc((nfe + 1) * 4);
    CHECK(qkd_par_threads(pools[t]) == t + 1);
    CHECK(qkd_par_fwd_f64(pools[t], &kj, params, feat, batch, seed, 5, o[t]) == 0);
    CHECK(qkd_par_bwd_f64(pools[t], &kj, params, feat, batch, dout, g[t], f[t]) == 0);
    CHECK(qkd_par_fwd_f32(pools[t], &kj, pf, ff, batch, seed, 5, o32[t]) == 0);
    CHECK(qkd_par_bwd_f32(pools[t], &kj, pf, ff, batch, df, g32[t], f32[t]) == 0);
  }
  for (int t = 1; t < 3; t++) {
    CHECK(memcmp(o[0], o[t], nout * 8) == 0);
    CHECK(memcmp(g[0], g[t], (size_t)np * 8) == 0);
    CHECK(memcmp(f[0], f[t], nfe * 8) == 0);
    CHECK(memcmp(o32[0], o32[t], nout * 4) == 0);
    CHECK(memcmp(g32[0], g32[t], (size_t)np * 4) == 0);
    CHECK(memcmp(f32[0], f32[t], nfe * 4) == 0);
  }
  /* against the interpreter over the whole batch (sampled outputs: same draws) */
  double *oi = xmalloc(nout * 8), *gi = xmalloc((size_t)(np + 1) * 8), *fi = xmalloc((nfe + 1) * 8);
  void *ws = xmalloc(qkd_kernel_workspace_bytes(c));
  ki.fwd_f64(&ki, params, feat, batch, seed, 5, oi, ws);
  ki.bwd_f64(&ki, params, feat, batch, dout, gi, fi, ws);
  double tol = c->shots ? 2.0 / c->shots + 1e-12 : 1e-10;
  CHECK(maxabs_diff(o[0], oi, nout) <= tol);
  CHECK(maxabs_diff(g[0], gi, (size_t)np) <= 1e-10 * (1 + maxabs(gi, (size_t)np)));
  CHECK(maxabs_diff(f[0], fi, nfe) <= 1e-10 * (1 + maxabs(fi, nfe)));
  cnt.par++;
  for (int t = 0; t < 3; t++) { free(o[t]); free(g[t]); free(f[t]); free(o32[t]); free(g32[t]); free(f32[t]); }
  free(params); free(feat); free(dout); free(pf); free(ff); free(df); free(oi); free(gi); free(fi); free(ws);
  qkd_jit_release(&kj);
}

/* Parameter shift through the kernels (qkd_par_pshift on the JIT kernel) against the
 * interpreter's exact shift, the adjoint and finite differences of the dense reference (exact
 * circuits), in f64 and f32; bit-identical at 1/2/3 threads; with shots, statistically at the
 * exact gradient, deterministic and independent of how the batch is split. */
static void check_pshift(uint64_t seed, const qkd_ir_circuit *c0, qkd_par_pool **pools, int batch) {
  qkd_error err;
  for (int prec = 0; prec < 2; prec++) {
    qkd_ir_circuit *c = circgen_copy(c0);
    c->precision = prec ? QKD_PREC_F32 : QKD_PREC_F64;
    qkd_kernel kj;
    if (qkd_jit_compile(c, &kj, &err) != 0) { CHECK(0); circgen_free(c); return; }
    qkd_kernel ki = qkd_qsim_kernel(c);
    int np = c->n_params, nf = c->n_features, no = qkd_ir_outputs(c);
    size_t nout = (size_t)batch * no, nfe = (size_t)batch * nf;
    double *params = xmalloc((size_t)(np + 1) * 8), *feat = xmalloc((nfe + 1) * 8), *dout = xmalloc(nout * 8);
    circgen_inputs(c, seed, batch, params, feat);
    if (prec) { /* f32 kernels see float-rounded inputs: give the references the same */
      for (int i = 0; i < np; i++) params[i] = (float)params[i];
      for (size_t i = 0; i < nfe; i++) feat[i] = (float)feat[i];
    }
    rand_dout(seed + 3, dout, nout);
    double *g[3], *f[3];
    for (int t = 0; t < 3; t++) {
      g[t] = xmalloc((size_t)(np + 1) * 8);
      f[t] = xmalloc((nfe + 1) * 8);
      for (int i = 0; i < np; i++) g[t][i] = 0.25; /* accumulates */
      memset(f[t], 0x7f, nfe * 8);                /* overwritten */
      CHECK(qkd_par_pshift(pools[t], &kj, params, feat, batch, dout, seed, 40, g[t], f[t]) == 0);
      for (int i = 0; i < np; i++) g[t][i] -= 0.25;
    }
    for (int t = 1; t < 3; t++) {
      CHECK(memcmp(g[0], g[t], (size_t)np * 8) == 0);
      CHECK(memcmp(f[0], f[t], nfe * 8) == 0);
    }
    double *gs = xmalloc((size_t)(np + 1) * 8), *fs = xmalloc((nfe + 1) * 8);
    double *ga = xmalloc((size_t)(np + 1) * 8), *fa = xmalloc((nfe + 1) * 8);
    void *ws = xmalloc(qkd_kernel_workspace_bytes(c));
    qkd_qsim_grad_pshift(c, params, feat, batch, dout, seed, 40, gs, fs);
    ki.bwd_f64(&ki, params, feat, batch, dout, ga, fa, ws);
    double tol = prec ? 1e-4 : 1e-9;
    if (c->shots == 0) {
      double sg = 1 + maxabs(gs, (size_t)np), sf = 1 + maxabs(fs, nfe);
      double dg = maxabs_diff(g[0], gs, (size_t)np), df = maxabs_diff(f[0], fs, nfe);
      if (!(dg <= tol * sg && df <= tol * sf))
        fprintf(stderr, "seed %llu %s: pshift kernel vs interp: params %g features %g\n", (unsigned long long)seed,
                prec ? "f32" : "f64", dg, df);
      CHECK(dg <= tol * sg);
      CHECK(df <= tol * sf);
      CHECK(maxabs_diff(g[0], ga, (size_t)np) <= tol * (1 + maxabs(ga, (size_t)np))); /* = adjoint */
      if (c->encode != QKD_ENCODE_AMPLITUDE) CHECK(maxabs_diff(f[0], fa, nfe) <= tol * (1 + maxabs(fa, nfe)));
      /* finite differences of the dense reference: sample 0 alone */
      double *g1 = xmalloc((size_t)(np + 1) * 8), *f1 = xmalloc((size_t)(nf + 1) * 8), *fdv = xmalloc((size_t)no * 8);
      CHECK(qkd_par_pshift(pools[1], &kj, params, feat, 1, dout, seed, 40, g1, f1) == 0);
      for (int t = 0; t < 3 && t < np; t++) {
        int idx = (int)((seed + (uint64_t)t * 5) % (uint64_t)np);
        dense_ref_fd(c, params, nf ? feat : NULL, DENSE_WRT_PARAM, idx, 1e-5, fdv);
        double v = 0;
        for (int o = 0; o < no; o++) v += dout[o] * fdv[o];
        CHECK_NEAR(g1[idx], v, (prec ? 1e-3 : 1e-6) * (1 + fabs(v)));
        cnt.fd++;
      }
      for (int t = 0; t < 2 && t < nf && c->encode != QKD_ENCODE_AMPLITUDE; t++) {
        int idx = (int)((seed * 3 + (uint64_t)t) % (uint64_t)nf);
        dense_ref_fd(c, params, feat, DENSE_WRT_FEATURE, idx, 1e-5, fdv);
        double v = 0;
        for (int o = 0; o < no; o++) v += dout[o] * fdv[o];
        CHECK_NEAR(f1[idx], v, (prec ? 1e-3 : 1e-6) * (1 + fabs(v)));
        cnt.fd++;
      }
      free(g1); free(f1); free(fdv);
      cnt.pshift++;
    } else {
      /* each shifted evaluation Σ_o d_o out_o has std ≤ D/√shots; a gradient entry sums
       * Σ coef² ≤ ½ of them (per sample for features, over the batch for parameters) */
      double *tp = xmalloc((size_t)(np + 1) * 8), *tf = xmalloc((size_t)(nf + 1) * 8);
      circgen_pshift_tolerances(c, dout, batch, tp, tf);
      for (int i = 0; i < np; i++) CHECK_NEAR(g[0][i], ga[i], tp[i] + 1e-9);
      if (c->encode != QKD_ENCODE_AMPLITUDE)
        for (int b = 0; b < batch; b++)
          for (int j = 0; j < nf; j++) CHECK_NEAR(f[0][(size_t)b * nf + j], fa[(size_t)b * nf + j], tf[j] + 1e-9);
      free(tp); free(tf);
      /* deterministic, and the same draws when the batch is split (features bit for bit) */
      double *g2 = xmalloc((size_t)(np + 1) * 8), *f2 = xmalloc((nfe + 1) * 8);
      for (int i = 0; i < np; i++) g2[i] = 0.25; /* as g[0] was made */
      CHECK(qkd_par_pshift(pools[2], &kj, params, feat, batch, dout, seed, 40, g2, f2) == 0);
      for (int i = 0; i < np; i++) g2[i] -= 0.25;
      CHECK(memcmp(g2, g[0], (size_t)np * 8) == 0 && memcmp(f2, f[0], nfe * 8) == 0);
      int h = batch / 2;
      memset(g2, 0, (size_t)(np + 1) * 8);
      CHECK(qkd_par_pshift(pools[1], &kj, params, feat, h, dout, seed, 40, g2, f2) == 0);
      CHECK(qkd_par_pshift(pools[1], &kj, params, feat + (size_t)h * nf, batch - h, dout + (size_t)h * no, seed,
                           40 + (uint64_t)h, g2, f2 + (size_t)h * nf) == 0);
      CHECK(memcmp(f2, f[0], nfe * 8) == 0);
      CHECK(maxabs_diff(g2, g[0], (size_t)np) <= 1e-9 * (1 + maxabs(g[0], (size_t)np)));
      /* another seed, other draws */
      memset(g2, 0, (size_t)(np + 1) * 8);
      CHECK(qkd_par_pshift(pools[0], &kj, params, feat, batch, dout, seed + 1, 40, g2, f2) == 0);
      int shifted = 0; /* any angle that is shifted at all */
      for (int i = 0; i < c->n_gates; i++)
        for (int sl = 0; sl < QKD_GATE_MAX_ANGLES; sl++)
          shifted |= (c->gates[i].angle[sl].kind == QKD_ANGLE_PARAM || c->gates[i].angle[sl].kind == QKD_ANGLE_FEATURE) &&
                     c->gates[i].angle[sl].scale != 0.0;
      if (shifted) CHECK(memcmp(f2, f[0], nfe * 8) != 0 || memcmp(g2, g[0], (size_t)np * 8) != 0);
      free(g2); free(f2);
      cnt.pshift_shots++;
    }
    for (int t = 0; t < 3; t++) { free(g[t]); free(f[t]); }
    free(params); free(feat); free(dout); free(gs); free(fs); free(ga); free(fa); free(ws);
    qkd_jit_release(&kj);
    circgen_free(c);
  }
}

static void check_emit(const qkd_ir_circuit *c) {
  FILE *f = tmpfile();
  CHECK(f != NULL);
  if (!f) return;
  CHECK(qkd_jit_emit_llvm(c, f) == 0);
  long len = ftell(f);
  CHECK(len > 1000);
  rewind(f);
  char *buf = xmalloc((size_t)len + 1);
  CHECK(fread(buf, 1, (size_t)len, f) == (size_t)len);
  CHECK(strstr(buf, "define void @qkd_k_fwd_f64(") != NULL);
  CHECK(strstr(buf, "define void @qkd_k_bwd_f32(") != NULL);
  free(buf);
  fclose(f);
  char path[64];
  qkd_error err;
  snprintf(path, sizeof path, "/tmp/qkd_jit_test_%d.o", (int)getpid());
  for (int cpu = 0; cpu < 2; cpu++) {
    CHECK(qkd_jit_emit_object(c, path, cpu ? "generic" : "native", "hea8", &err) == 0);
    FILE *o = fopen(path, "rb");
    CHECK(o != NULL);
    if (o) {
      unsigned char mag[4] = {0};
      CHECK(fread(mag, 1, 4, o) == 4);
      CHECK(mag[0] == 0x7f && mag[1] == 'E' && mag[2] == 'L' && mag[3] == 'F');
      fclose(o);
    }
    remove(path);
  }
  CHECK(qkd_jit_emit_object(c, path, "pentium", "x", &err) == -1);
}

int main(void) {
  circgen_opts o = circgen_defaults();
  o.max_qubits = MAX_QUBITS;
  o.p_shots = 0.1;
  int batches[] = {1, 2, 3, 5, 8, 13};
  for (int i = 0; i < N_CIRCUITS; i++) {
    qkd_ir_circuit *c = circgen_random(1000 + (uint64_t)i, &o);
    check_circuit(1000 + (uint64_t)i, c, batches[i % 6]);
    circgen_free(c);
  }
  /* amplitude encoding with features past the amplitudes (n_amplitudes: trajectories' Pauli
   * choices, qkd_traj.h), read by gates only */
  circgen_opts ao = o;
  ao.p_amplitude = 1.0, ao.p_extra_features = 1.0, ao.p_feature = 0.4, ao.p_shots = 0.0;
  for (int i = 0; i < N_CIRCUITS / 4; i++) {
    qkd_ir_circuit *c = circgen_random(3000 + (uint64_t)i, &ao);
    CHECK(c->n_amplitudes > 0 && c->n_amplitudes < c->n_features);
    check_circuit(3000 + (uint64_t)i, c, batches[i % 6]);
    circgen_free(c);
  }
  /* trajectory circuits (qkd_traj.h): random circuits with random Pauli channels, carried
   * through Clifford gates into slots of BIT angles, fused after grad gates in backward plans */
  for (int i = 0; i < N_CIRCUITS / 2; i++) {
    circgen_opts to = o;
    to.p_shots = 0.0;
    qkd_ir_circuit *c = circgen_random(4000 + (uint64_t)i, &to);
    qkd_ir_channel ch[24];
    int m = 0;
    for (int g = 0; g < c->n_gates && m < 24; g++)
      if (qkd_rng_uniform(4000 + (uint64_t)i, 92, (uint64_t)g) < 0.6)
        ch[m++] = (qkd_ir_channel){g % 3 == 0 ? QKD_CHAN_DEPOLARIZING : g % 3 == 1 ? QKD_CHAN_BIT_FLIP : QKD_CHAN_PHASE_DAMPING,
                                   c->gates[g].q[0], 0.1, g + 1};
    c->channels = ch, c->n_channels = m, c->trajectories = 1;
    qkd_traj t;
    qkd_error err;
    CHECK(qkd_traj_init(&t, c, 1, &err) == 0);
    if (t.n_bits) cnt.traj++;
    check_circuit(4000 + (uint64_t)i, &t.circuit, batches[i % 6]);
    qkd_traj_free(&t);
    c->channels = NULL, c->n_channels = 0, c->trajectories = 0;
    circgen_free(c);
  }
  /* long circuits on few qubits exercise long diagonal runs, fusion and permutations, and
   * (forced block sizes) long blocked groups */
  circgen_opts lo = o;
  lo.min_gates = 60;
  lo.max_gates = 120;
  lo.max_qubits = 7;
  lo.p_shots = 0.0;
  for (int i = 0; i < N_CIRCUITS / 8; i++) {
    qkd_ir_circuit *c = circgen_random(5000 + (uint64_t)i, &lo);
    check_circuit(5000 + (uint64_t)i, c, 7);
    if (i % 3 == 0) check_variants(5000 + (uint64_t)i, c, 9);
    if (i % 2 == 1) check_blocks(5000 + (uint64_t)i, c, 1 + i % 10);
    circgen_free(c);
  }
  for (int i = 0; i < N_CIRCUITS / 24; i++) {
    qkd_ir_circuit *c = circgen_random(7000 + (uint64_t)i, &o);
    check_variants(7000 + (uint64_t)i, c, 6);
    circgen_free(c);
  }
  /* the benchmark circuit family */
  for (int n = 1; n <= (MAX_QUBITS < 8 ? MAX_QUBITS : 8); n++) {
    qkd_ir_circuit *c = circgen_hea(n, 3, n % 2 ? QKD_MEASURE_Z : QKD_MEASURE_PROBS, QKD_PREC_F64);
    check_circuit(9000 + (uint64_t)n, c, 11);
    if (n % 2 == 0) check_variants(9000 + (uint64_t)n, c, 5);
    circgen_free(c);
  }
  qkd_par_pool *pools[3];
  for (int t = 0; t < 3; t++) pools[t] = qkd_par_create(t + 1);
  CHECK(pools[0] && pools[1] && pools[2]);
  circgen_opts po = o;
  po.p_shots = 0.25;
  po.max_qubits = 6;
  for (int i = 0; i < N_CIRCUITS / 8 && pools[2]; i++) {
    qkd_ir_circuit *c = circgen_random(8000 + (uint64_t)i, &po);
    check_par(8000 + (uint64_t)i, c, pools);
    circgen_free(c);
  }
  circgen_opts so = o;
  so.max_qubits = 6;
  so.max_gates = 16;
  so.p_feature = 0.35;
  for (int i = 0; i < N_CIRCUITS / 4 && pools[2]; i++) {
    so.p_shots = i % 3 == 0 ? 1.0 : 0.0;
    qkd_ir_circuit *c = circgen_random(11000 + (uint64_t)i, &so);
    check_pshift(11000 + (uint64_t)i, c, pools, 1 + i % 7);
    circgen_free(c);
  }
  /* cache blocking at 9 ≤ n ≤ 14 with the blocking chosen by size (random and benchmark
   * circuits); forced block sizes are checked on the long circuits above */
  circgen_opts lg = o;
  lg.p_shots = 0.0;
  lg.min_gates = 30;
  lg.max_gates = 80;
  for (int n = 9; n <= 14 && pools[1]; n++) {
    lg.min_qubits = lg.max_qubits = n;
    qkd_ir_circuit *c = circgen_random(13000 + (uint64_t)n, &lg);
    check_large(13000 + (uint64_t)n, c, n <= 11 ? 9 : 3, pools);
    circgen_free(c);
    c = circgen_hea(n, 2, n % 2 ? QKD_MEASURE_Z : QKD_MEASURE_PROBS, QKD_PREC_F64);
    check_large(13100 + (uint64_t)n, c, n <= 11 ? 9 : 3, pools);
    if (n <= 10) check_blocks(13100 + (uint64_t)n, c, 5);
    circgen_free(c);
  }
  qkd_ir_circuit *h = circgen_hea(8, 10, QKD_MEASURE_PROBS, QKD_PREC_F64);
  if (pools[2]) check_par(8999, h, pools);
  check_emit(h);
  circgen_free(h);
  for (int t = 0; t < 3; t++) qkd_par_destroy(pools[t]);
  printf("circuits: %d fwd, %d bwd, %d finite-difference, %d f32, %d variants, %d par, %d pshift exact, "
         "%d pshift shots, %d at 9-14 qubits, %d trajectory circuits with slots\n", cnt.checks_fwd, cnt.checks_bwd, cnt.fd,
         cnt.f32, cnt.variants, cnt.par, cnt.pshift, cnt.pshift_shots, cnt.large, cnt.traj);
  CHECK(cnt.large == 12);
  CHECK(cnt.traj >= N_CIRCUITS / 4);
  CHECK(cnt.pshift > 0 && cnt.pshift_shots > 0);
  return test_done("test_jit_kernels");
}
