/* test_rt_nn.c — runtime/qkd_nn.h against independent references: every layer's forward against
 * a direct double-precision computation, every layer's backward (params and inputs) against
 * central finite differences, softmax CE against known values, Adam and SGD against
 * hand-computed steps, PCA against a known eigendecomposition and the eigen-equation, the
 * fixed reductions against known answers, `mean` nets, and a tiny net learning synthetic data.
 * Batchnorm: against a double-precision reference (forward, running statistics, and backward
 * against central differences of the reference in double), in nets through finite differences,
 * and bit-for-bit across thread counts. */
#include "qkd_data.h"
#include "qkd_nn.h"
#include "qkd_rng.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static qkd_layer_spec L(qkd_layer_kind k, int units, int kernel, int stride, int pad, double value) {
  qkd_layer_spec s = {k, units, kernel, stride, pad, value, 0, 0};
  return s;
}

static void fill(float *x, long n, uint64_t seed, double scale) {
  for (long i = 0; i < n; i++) x[i] = (float)(scale * (2.0 * qkd_rng_uniform(seed, 99, (uint64_t)i) - 1.0));
}

/* loss = sum_j r_j * y_j in double */
static double probe_loss(qkd_nn *nn, const float *x, int batch, const float *r, long nout, int training) {
  const float *y = qkd_nn_forward(nn, x, batch, training, 7);
  double s = 0;
  for (long j = 0; j < nout; j++) s += (double)r[j] * y[j];
  return s;
}

/* Checks d(probe)/dparams and d(probe)/dx against central differences with step eps. With
 * kinks (relu, maxpool), a coordinate whose second difference shows that +-eps crossed a kink
 * (|l+ - 2 l0 + l-| > 1e-5) is skipped; at most a quarter may be. */
static void grad_check_eps(const char *what, const qkd_layer_spec *layers, int n, qkd_shape in, int batch, int training,
                           double xscale, double eps, int kinks) {
  qkd_net_spec spec = {what, n, (qkd_layer_spec *)layers, 0, NULL, {0}};
  qkd_error err;
  qkd_nn *nn = qkd_nn_create(&spec, in, 1, batch, &err);
  CHECK(nn != NULL);
  if (!nn) { fprintf(stderr, "%s: %s\n", what, err.msg); return; }
  qkd_nn_init(nn, 11);
  long nin = qkd_shape_size(in) * batch, nout = qkd_shape_size(qkd_nn_out(nn)) * batch;
  float *x = malloc(sizeof(float) * (size_t)nin), *dx = malloc(sizeof(float) * (size_t)nin);
  float *r = malloc(sizeof(float) * (size_t)nout);
  fill(x, nin, 5, xscale);
  fill(r, nout, 6, 1.0);
  double l0 = probe_loss(nn, x, batch, r, nout, training);
  qkd_nn_zero_grad(nn);
  qkd_nn_backward(nn, r, dx);
  long np = qkd_nn_param_count(nn);
  float *p = qkd_nn_params(nn), *g = qkd_nn_grads(nn);
  int bad = 0, skipped = 0, checked = 0;
  double worst = 0, atol = kinks ? 1e-3 : 1e-4;
  long pstep = np > 300 ? np / 300 : 1, xstep = nin > 300 ? nin / 300 : 1;
  for (int pass = 0; pass < 2; pass++) {
    float *v = pass ? x : p;
    const float *an = pass ? dx : g;
    long cnt = pass ? nin : np, step = pass ? xstep : pstep;
    for (long i = 0; i < cnt; i += step) {
      float keep = v[i];
      v[i] = keep + (float)eps;
      double lp = probe_loss(nn, x, batch, r, nout, training);
      v[i] = keep - (float)eps;
      double lm = probe_loss(nn, x, batch, r, nout, training);
      v[i] = keep;
      if (kinks && fabs(lp - 2 * l0 + lm) > 1e-5) { skipped++; continue; }
      checked++;
      double num = (lp - lm) / (2 * eps), e = fabs(num - an[i]) / (atol / 2e-2 + fabs(num));
      if (e > worst) worst = e;
      if (e > 2e-2 && bad++ < 4) fprintf(stderr, "%s: d%s[%ld] = %g, numeric %g\n", what, pass ? "x" : "param", i, an[i], num);
    }
  }
  CHECK(bad == 0);
  CHECK(skipped * 4 <= checked + skipped);
  if (bad || skipped * 4 > checked + skipped)
    fprintf(stderr, "%s: %d gradient mismatches (worst relative %g), %d of %d skipped at kinks\n", what, bad, worst, skipped,
            checked + skipped);
  free(x); free(dx); free(r);
  qkd_nn_free(nn);
}

static void grad_check(const char *what, const qkd_layer_spec *layers, int n, qkd_shape in, int batch, int training,
                       double xscale) {
  grad_check_eps(what, layers, n, in, batch, training, xscale, 1e-2, 0);
}

static void grad_check_kinks(const char *what, const qkd_layer_spec *layers, int n, qkd_shape in, int batch) {
  grad_check_eps(what, layers, n, in, batch, 0, 1.0, 1e-3, 1);
}

static void test_gradients(void) {
  qkd_shape img = {2, 7, 6, 0};
  qkd_layer_spec a[] = {L(QKD_LAYER_CONV, 3, 3, 1, 0, 0)};
  grad_check("conv k3", a, 1, img, 2, 0, 1.0);
  qkd_layer_spec b[] = {L(QKD_LAYER_CONV, 4, 3, 2, 1, 0)};
  grad_check("conv k3 s2 p1", b, 1, img, 3, 0, 1.0);
  /* maxpool: well-separated inputs so ±eps never changes the argmax */
  qkd_layer_spec c[] = {L(QKD_LAYER_MAXPOOL, 2, 0, 1, 0, 0)};
  grad_check("maxpool 2", c, 1, img, 2, 0, 10.0);
  qkd_layer_spec d[] = {L(QKD_LAYER_AVGPOOL, 3, 0, 1, 0, 0)};
  grad_check("avgpool 3", d, 1, img, 2, 0, 1.0);
  qkd_layer_spec d2[] = {L(QKD_LAYER_AVGPOOL, 2, 0, 1, 0, 0)}; /* 7 rows: the last is left over */
  grad_check("avgpool 2", d2, 1, img, 2, 0, 1.0);
  qkd_layer_spec e[] = {L(QKD_LAYER_FLATTEN, 0, 0, 1, 0, 0), L(QKD_LAYER_DENSE, 5, 0, 1, 0, 0)};
  grad_check("flatten dense", e, 2, img, 4, 0, 1.0);
  qkd_layer_spec f[] = {L(QKD_LAYER_DENSE, 5, 0, 1, 0, 0), L(QKD_LAYER_TANH, 0, 0, 1, 0, 0)};
  grad_check("dense tanh", f, 2, img, 2, 0, 1.0);
  qkd_layer_spec g[] = {L(QKD_LAYER_DENSE, 5, 0, 1, 0, 0), L(QKD_LAYER_SIGMOID, 0, 0, 1, 0, 0)};
  grad_check("dense sigmoid", g, 2, img, 2, 0, 1.0);
  qkd_layer_spec h[] = {L(QKD_LAYER_DENSE, 9, 0, 1, 0, 0), L(QKD_LAYER_RELU, 0, 0, 1, 0, 0), L(QKD_LAYER_SCALE, 0, 0, 1, 0, 2.5)};
  grad_check("dense relu scale", h, 3, img, 2, 0, 1.0);
  qkd_layer_spec i[] = {L(QKD_LAYER_DENSE, 20, 0, 1, 0, 0), L(QKD_LAYER_DROPOUT, 0, 0, 1, 0, 0.5), L(QKD_LAYER_DENSE, 3, 0, 1, 0, 0)};
  grad_check("dense dropout(training) dense", i, 3, img, 3, 1, 1.0);
  qkd_shape mn = {1, 16, 16, 0};
  qkd_layer_spec lenet[] = {L(QKD_LAYER_CONV, 3, 5, 1, 0, 0), L(QKD_LAYER_TANH, 0, 0, 1, 0, 0), L(QKD_LAYER_AVGPOOL, 2, 0, 1, 0, 0),
                            L(QKD_LAYER_CONV, 4, 3, 1, 1, 0), L(QKD_LAYER_RELU, 0, 0, 1, 0, 0), L(QKD_LAYER_MAXPOOL, 2, 0, 1, 0, 0),
                            L(QKD_LAYER_FLATTEN, 0, 0, 1, 0, 0), L(QKD_LAYER_DENSE, 7, 0, 1, 0, 0), L(QKD_LAYER_TANH, 0, 0, 1, 0, 0),
                            L(QKD_LAYER_DENSE, 4, 0, 1, 0, 0)};
  grad_check_kinks("small cnn", lenet, 10, mn, 2);
  qkd_layer_spec crm[] = {L(QKD_LAYER_CONV, 3, 5, 1, 0, 0), L(QKD_LAYER_RELU, 0, 0, 1, 0, 0), L(QKD_LAYER_MAXPOOL, 2, 0, 1, 0, 0)};
  grad_check_kinks("conv relu maxpool", crm, 3, mn, 2);
  qkd_layer_spec smooth[] = {L(QKD_LAYER_CONV, 3, 5, 1, 0, 0), L(QKD_LAYER_TANH, 0, 0, 1, 0, 0), L(QKD_LAYER_AVGPOOL, 2, 0, 1, 0, 0),
                             L(QKD_LAYER_CONV, 4, 3, 2, 1, 0), L(QKD_LAYER_SIGMOID, 0, 0, 1, 0, 0), L(QKD_LAYER_FLATTEN, 0, 0, 1, 0, 0),
                             L(QKD_LAYER_DENSE, 6, 0, 1, 0, 0), L(QKD_LAYER_TANH, 0, 0, 1, 0, 0), L(QKD_LAYER_DENSE, 3, 0, 1, 0, 0)};
  grad_check("smooth cnn", smooth, 9, mn, 3, 0, 1.0);
  /* batchnorm in nets: training mode (batch statistics, through the stats' gradient) and
   * evaluation mode; after a conv (per channel), after a dense (per feature), fused with an
   * activation or not */
  qkd_layer_spec bn[] = {L(QKD_LAYER_CONV, 3, 3, 1, 1, 0), L(QKD_LAYER_BATCHNORM, 0, 0, 1, 0, 0), L(QKD_LAYER_TANH, 0, 0, 1, 0, 0),
                         L(QKD_LAYER_AVGPOOL, 2, 0, 1, 0, 0), L(QKD_LAYER_CONV, 4, 3, 1, 0, 0), L(QKD_LAYER_BATCHNORM, 0, 0, 1, 0, 0),
                         L(QKD_LAYER_FLATTEN, 0, 0, 1, 0, 0), L(QKD_LAYER_DENSE, 6, 0, 1, 0, 0), L(QKD_LAYER_BATCHNORM, 0, 0, 1, 0, 0),
                         L(QKD_LAYER_SIGMOID, 0, 0, 1, 0, 0), L(QKD_LAYER_DENSE, 3, 0, 1, 0, 0), L(QKD_LAYER_BATCHNORM, 0, 0, 1, 0, 0)};
  grad_check("batchnorm cnn (training)", bn, 12, mn, 4, 1, 1.0);
  grad_check("batchnorm cnn (evaluation)", bn, 12, mn, 3, 0, 1.0);
  qkd_layer_spec bn0[] = {L(QKD_LAYER_BATCHNORM, 0, 0, 1, 0, 0), L(QKD_LAYER_CONV, 2, 3, 1, 0, 0), L(QKD_LAYER_TANH, 0, 0, 1, 0, 0),
                          L(QKD_LAYER_FLATTEN, 0, 0, 1, 0, 0), L(QKD_LAYER_DENSE, 5, 0, 1, 0, 0), L(QKD_LAYER_BATCHNORM, 0, 0, 1, 0, 0)};
  grad_check("batchnorm first and last (training)", bn0, 6, img, 8, 1, 2.0);
}

/* ------------------------------------------------------------------------------ batchnorm */

static void run_threads(int threads, qkd_nn *nn, const float *x, const float *r, int B, float *y, float *g, float *dx);

/* y = g (x - mean) / sqrt(var + 1e-5) + b per channel over x [B][C][P], in double; mean and var
 * (biased) are the batch's (mean, var NULL) or given */
static void bn_ref(const double *x, int B, int C, int P, const double *g, const double *b, const double *rm,
                   const double *rv, double *y, double *mean_out, double *var_out) {
  for (int c = 0; c < C; c++) {
    double m = 0, v = 0;
    if (rm) {
      m = rm[c], v = rv[c];
    } else {
      for (int s = 0; s < B; s++) for (int p = 0; p < P; p++) m += x[((long)s * C + c) * P + p];
      m /= (double)B * P;
      for (int s = 0; s < B; s++) for (int p = 0; p < P; p++) v += pow(x[((long)s * C + c) * P + p] - m, 2);
      v /= (double)B * P;
    }
    if (mean_out) mean_out[c] = m, var_out[c] = v;
    for (int s = 0; s < B; s++)
      for (int p = 0; p < P; p++) {
        long i = ((long)s * C + c) * P + p;
        y[i] = g[c] * (x[i] - m) / sqrt(v + 1e-5) + b[c];
      }
  }
}

static double bn_ref_loss(const double *x, int B, int C, int P, const double *g, const double *b, const double *rm,
                          const double *rv, const float *r, double *y) {
  bn_ref(x, B, C, P, g, b, rm, rv, y, NULL, NULL);
  double l = 0;
  for (long i = 0; i < (long)B * C * P; i++) l += r[i] * y[i];
  return l;
}

/* One batchnorm layer on [B][C][H][W] (flat: C features) against bn_ref: training forward, the
 * running statistics after one step (momentum 0.1, unbiased variance), evaluation forward with
 * them, and both modes' backward against central differences (step 1e-5) of bn_ref in double. */
static void bn_check(const char *what, qkd_shape in, int B) {
  qkd_layer_spec ls[] = {L(QKD_LAYER_BATCHNORM, 0, 0, 1, 0, 0)};
  qkd_net_spec spec = {what, 1, ls, 0, NULL, {0}};
  qkd_error err;
  qkd_nn *nn = qkd_nn_create(&spec, in, 0, B, &err);
  CHECK(nn != NULL);
  if (!nn) return;
  int C = in.c, P = in.h * in.w;
  long n = (long)B * C * P;
  CHECK(qkd_nn_param_count(nn) == 2 * C && qkd_nn_state_count(nn) == 2 * C);
  qkd_nn_init(nn, 1);
  float *p = qkd_nn_params(nn), *st = qkd_nn_state(nn);
  CHECK(p[0] == 1.0f && p[C] == 0.0f && st[0] == 0.0f && st[C] == 1.0f);
  fill(p, 2 * C, 31, 1.5); /* gamma, beta anywhere in ±1.5 */
  float *x = malloc(sizeof(float) * (size_t)n), *r = malloc(sizeof(float) * (size_t)n), *dx = malloc(sizeof(float) * (size_t)n);
  double *xd = malloc(sizeof(double) * (size_t)n), *yd = malloc(sizeof(double) * (size_t)n);
  fill(x, n, 32, 3.0);
  for (long i = 0; i < n; i++) x[i] += 2.0f + (float)((i / P) % C); /* per-channel offsets */
  fill(r, n, 33, 1.0);
  for (long i = 0; i < n; i++) xd[i] = x[i];
  double g[64], b[64], mean[64], var[64], rm[64], rv[64];
  for (int c = 0; c < C; c++) g[c] = p[c], b[c] = p[C + c];
  for (int mode = 1; mode >= 0; mode--) { /* training, then evaluation with the statistics it left */
    const float *y = qkd_nn_forward(nn, x, B, mode, 0);
    bn_ref(xd, B, C, P, g, b, mode ? NULL : rm, mode ? NULL : rv, yd, mean, var);
    double fw = 0;
    for (long i = 0; i < n; i++) fw = fmax(fw, fabs(y[i] - yd[i]));
    CHECK(fw < 2e-5);
    if (mode) { /* the running statistics after one training step */
      double M = (double)B * P, worst = 0;
      for (int c = 0; c < C; c++) {
        rm[c] = st[c], rv[c] = st[C + c];
        worst = fmax(worst, fabs(rm[c] - 0.1 * mean[c]) + fabs(rv[c] - (0.9 + 0.1 * var[c] * M / (M - 1))));
      }
      CHECK(worst < 1e-5);
    } else {
      for (int c = 0; c < C; c++) CHECK(st[c] == (float)rm[c] && st[C + c] == (float)rv[c]); /* evaluation moves nothing */
    }
    qkd_nn_zero_grad(nn);
    qkd_nn_backward(nn, r, dx);
    const float *gr = qkd_nn_grads(nn);
    int bad = 0;
    double h = 1e-5;
    for (long i = 0; i < n + 2 * C; i++) {
      double *v = i < n ? &xd[i] : i < n + C ? &g[i - n] : &b[i - n - C], keep = *v;
      *v = keep + h;
      double lp = bn_ref_loss(xd, B, C, P, g, b, mode ? NULL : rm, mode ? NULL : rv, r, yd);
      *v = keep - h;
      double lm = bn_ref_loss(xd, B, C, P, g, b, mode ? NULL : rm, mode ? NULL : rv, r, yd);
      *v = keep;
      double num = (lp - lm) / (2 * h), an = i < n ? dx[i] : gr[i - n];
      if (fabs(an - num) > 2e-4 * (1.0 + fabs(num)) && bad++ < 4)
        fprintf(stderr, "%s (%s): d[%ld] = %.8g, numeric %.8g\n", what, mode ? "training" : "evaluation", i, an, num);
    }
    CHECK(bad == 0);
  }
  free(x); free(r); free(dx); free(xd); free(yd);
  qkd_nn_free(nn);
}

static void test_batchnorm(void) {
  bn_check("batchnorm image", (qkd_shape){3, 5, 4, 0}, 6);
  bn_check("batchnorm flat", (qkd_shape){7, 1, 1, 1}, 5);
  bn_check("batchnorm one sample", (qkd_shape){2, 3, 3, 0}, 1);
  /* shapes and counts: gamma/beta are parameters, running statistics are state */
  qkd_layer_spec ls[] = {L(QKD_LAYER_CONV, 4, 3, 1, 1, 0), L(QKD_LAYER_BATCHNORM, 0, 0, 1, 0, 0), L(QKD_LAYER_FLATTEN, 0, 0, 1, 0, 0),
                         L(QKD_LAYER_DENSE, 5, 0, 1, 0, 0), L(QKD_LAYER_BATCHNORM, 0, 0, 1, 0, 0)};
  qkd_shape in = {2, 6, 6, 0};
  CHECK(qkd_net_param_count(ls, 5, in, 0) == 4 * 18 + 4 + 8 + 5 * 144 + 5 + 10);
  CHECK(qkd_net_state_count(ls, 5, in, 0) == 8 + 10);
  CHECK(qkd_net_state_count(ls, 1, in, 0) == 0);
  /* members of a mean net keep their state inside the parent's block, in order */
  qkd_layer_spec ls2[] = {L(QKD_LAYER_FLATTEN, 0, 0, 1, 0, 0), L(QKD_LAYER_DENSE, 5, 0, 1, 0, 0), L(QKD_LAYER_BATCHNORM, 0, 0, 1, 0, 0)};
  qkd_net_spec mem[2] = {{"a", 5, ls, 0, NULL, {0}}, {"b", 3, ls2, 0, NULL, {0}}};
  qkd_net_spec mean = {"m", 0, NULL, 2, mem, {0}};
  qkd_error err;
  qkd_nn *m = qkd_nn_create(&mean, in, 0, 2, &err);
  CHECK(m && qkd_nn_state_count(m) == 18 + 10);
  if (m) {
    qkd_nn_init(m, 1);
    float x[144];
    fill(x, 144, 3, 1.0);
    qkd_nn_forward(m, x, 1, 1, 0);
    const float *st = qkd_nn_state(m);
    /* one sample: the second member's running mean (state[18..23)) moved to 0.1 x its dense
     * outputs; its running variance (state[23..28)) to 0.9 (one value per feature: variance 0) */
    CHECK(st[18] != 0.0f && st[23] == 0.9f && st[27] == 0.9f);
    qkd_nn_free(m);
  }
}

/* a batchnorm net on 1, 2 and 3 threads: outputs, running statistics, input gradients and every
 * parameter gradient are bit-identical (a sliced pass has the same slices on any thread count) */
static void test_batchnorm_threads(void) {
  qkd_shape in = {3, 8, 8, 0};
  qkd_layer_spec ls[] = {L(QKD_LAYER_CONV, 16, 3, 1, 1, 0), L(QKD_LAYER_BATCHNORM, 0, 0, 1, 0, 0), L(QKD_LAYER_RELU, 0, 0, 1, 0, 0),
                         L(QKD_LAYER_CONV, 16, 3, 1, 1, 0), L(QKD_LAYER_BATCHNORM, 0, 0, 1, 0, 0), L(QKD_LAYER_TANH, 0, 0, 1, 0, 0)};
  qkd_net_spec spec = {"bn sliced", 6, ls, 0, NULL, {0}};
  int B = 96;
  long ni = qkd_shape_size(in) * B, no = 16L * 64 * B;
  float *x = malloc(sizeof(float) * (size_t)ni), *r = malloc(sizeof(float) * (size_t)no);
  fill(x, ni, 41, 1.0);
  fill(r, no, 42, 1.0);
  float *y[3], *g[3], *dx[3], *st[3];
  long np = 0, ns = 0;
  for (int k = 0; k < 3; k++) {
    qkd_error err;
    qkd_nn *nn = qkd_nn_create(&spec, in, 0, B, &err);
    CHECK(nn != NULL);
    if (!nn) return;
    qkd_nn_init(nn, 6);
    np = qkd_nn_param_count(nn), ns = qkd_nn_state_count(nn);
    y[k] = malloc(sizeof(float) * (size_t)no), g[k] = malloc(sizeof(float) * (size_t)np);
    dx[k] = malloc(sizeof(float) * (size_t)ni), st[k] = malloc(sizeof(float) * (size_t)ns);
    for (int rep = 0; rep < 2; rep++) run_threads(k + 1, nn, x, r, B, y[k], g[k], dx[k]); /* twice: state moves twice */
    memcpy(st[k], qkd_nn_state(nn), sizeof(float) * (size_t)ns);
    qkd_nn_free(nn);
  }
  long bn1 = 16L * 27 + 16, bn2 = bn1 + 32 + 16L * 144 + 16; /* gamma offsets */
  for (int k = 1; k < 3; k++) {
    CHECK(memcmp(y[k], y[0], sizeof(float) * (size_t)no) == 0);
    CHECK(memcmp(st[k], st[0], sizeof(float) * (size_t)ns) == 0);
    CHECK(memcmp(dx[k], dx[0], sizeof(float) * (size_t)ni) == 0);
    CHECK(memcmp(g[k] + bn1, g[0] + bn1, sizeof(float) * 32) == 0);
    CHECK(memcmp(g[k] + bn2, g[0] + bn2, sizeof(float) * 32) == 0);
    CHECK(memcmp(g[k], g[0], sizeof(float) * (size_t)np) == 0);
  }
  for (int k = 0; k < 3; k++) { free(y[k]); free(g[k]); free(dx[k]); free(st[k]); }
  free(x); free(r);
}

/* Threads: a net big enough to be cut into batch slices gives bit-for-bit the 1-thread outputs,
 * gradients and dx on 2 and 3 threads, and so does an unsliced pass (a batch too small to
 * slice: OpenBLAS's GEMMs on 1 or 2 threads); dropout included. */
static void run_threads(int threads, qkd_nn *nn, const float *x, const float *r, int B, float *y, float *g, float *dx) {
  qkd_nn_set_threads(threads);
  long no = qkd_shape_size(qkd_nn_out(nn)) * B, np = qkd_nn_param_count(nn);
  memcpy(y, qkd_nn_forward(nn, x, B, 1, 3), sizeof(float) * (size_t)no);
  qkd_nn_zero_grad(nn);
  qkd_nn_backward(nn, r, dx);
  memcpy(g, qkd_nn_grads(nn), sizeof(float) * (size_t)np);
  qkd_nn_set_threads(1);
}

static void test_threads(void) {
  qkd_shape in = {1, 28, 28, 0};
  qkd_layer_spec ls[] = {L(QKD_LAYER_CONV, 6, 5, 1, 0, 0), L(QKD_LAYER_TANH, 0, 0, 1, 0, 0), L(QKD_LAYER_AVGPOOL, 2, 0, 1, 0, 0),
                         L(QKD_LAYER_CONV, 8, 3, 1, 1, 0), L(QKD_LAYER_RELU, 0, 0, 1, 0, 0), L(QKD_LAYER_MAXPOOL, 2, 0, 1, 0, 0),
                         L(QKD_LAYER_FLATTEN, 0, 0, 1, 0, 0), L(QKD_LAYER_DROPOUT, 0, 0, 1, 0, 0.3),
                         L(QKD_LAYER_DENSE, 32, 0, 1, 0, 0), L(QKD_LAYER_SIGMOID, 0, 0, 1, 0, 0), L(QKD_LAYER_DENSE, 10, 0, 1, 0, 0)};
  qkd_net_spec spec = {"sliced", 11, ls, 0, NULL, {0}};
  qkd_error err;
  int B = 96;
  qkd_nn *nn = qkd_nn_create(&spec, in, 0, B, &err);
  CHECK(nn != NULL);
  if (!nn) return;
  qkd_nn_init(nn, 5);
  long ni = qkd_shape_size(in) * B, no = 10L * B, np = qkd_nn_param_count(nn);
  float *x = malloc(sizeof(float) * (size_t)ni), *r = malloc(sizeof(float) * (size_t)no);
  float *y[3], *g[3], *dx[3];
  for (int k = 0; k < 3; k++) {
    y[k] = malloc(sizeof(float) * (size_t)no);
    g[k] = malloc(sizeof(float) * (size_t)np);
    dx[k] = malloc(sizeof(float) * (size_t)ni);
  }
  fill(x, ni, 8, 1.0);
  fill(r, no, 9, 1.0);
  for (int b = 0; b < 2; b++) { /* b = 1: 6 samples, an unsliced pass */
    int nb = b ? 6 : B;
    long nob = 10L * nb, nib = qkd_shape_size(in) * nb;
    for (int k = 0; k < 3; k++) run_threads(k + 1, nn, x, r, nb, y[k], g[k], dx[k]);
    for (int k = 1; k < 3; k++) {
      CHECK(memcmp(y[k], y[0], sizeof(float) * (size_t)nob) == 0);
      CHECK(memcmp(g[k], g[0], sizeof(float) * (size_t)np) == 0);
      CHECK(memcmp(dx[k], dx[0], sizeof(float) * (size_t)nib) == 0);
    }
  }
  CHECK(qkd_nn_get_threads() == 1);
  for (int k = 0; k < 3; k++) { free(y[k]); free(g[k]); free(dx[k]); }
  free(x); free(r);
  qkd_nn_free(nn);
}

/* conv forward and backward (weights, bias, input) against double loops for shapes that take the
 * direct (stride-1, few taps) path — full and partial 8-column vectors, padding, k 3/4/5 — and
 * the im2col path (stride 2, many taps, or an unsliced pass on 2 threads), with the SIMD kernels and
 * with QKD_NN_SIMD=0. */
static void test_conv_direct(void) {
  static const int shapes[][8] = {/* C H W F k stride pad B */
                                  {1, 28, 28, 6, 5, 1, 0, 3}, {6, 12, 12, 16, 5, 1, 0, 2}, {3, 9, 10, 5, 3, 1, 1, 2},
                                  {4, 11, 13, 7, 5, 1, 2, 3}, {2, 8, 9, 3, 4, 1, 0, 2},   {1, 5, 4, 2, 3, 1, 2, 1},
                                  {3, 7, 9, 4, 5, 1, 1, 2},
                                  {2, 7, 6, 3, 3, 2, 1, 2},   {20, 6, 6, 3, 5, 1, 2, 2}};
  for (int mode = 0; mode < 3; mode++) { /* SIMD kernels, baseline kernels, 2 threads (unsliced: im2col) */
    int simd = mode == 1;
    if (simd) setenv("QKD_NN_SIMD", "0", 1);
    else unsetenv("QKD_NN_SIMD");
    qkd_nn_set_threads(mode == 2 ? 2 : 1);
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
      const int *h = shapes[t];
      int C = h[0], H = h[1], W = h[2], F = h[3], k = h[4], st = h[5], pad = h[6], B = h[7];
      qkd_shape in = {C, H, W, 0};
      qkd_layer_spec ls[] = {L(QKD_LAYER_CONV, F, k, st, pad, 0)};
      qkd_net_spec spec = {"c", 1, ls, 0, NULL, {0}};
      qkd_error err;
      qkd_nn *nn = qkd_nn_create(&spec, in, 0, B, &err);
      CHECK(nn != NULL);
      if (!nn) continue;
      qkd_nn_init(nn, 5 + (uint64_t)t);
      qkd_shape out = qkd_nn_out(nn);
      long nin = (long)B * C * H * W, nout = (long)B * qkd_shape_size(out), np = qkd_nn_param_count(nn);
      float *x = malloc(sizeof(float) * (size_t)nin), *r = malloc(sizeof(float) * (size_t)nout);
      float *dx = malloc(sizeof(float) * (size_t)nin);
      double *rdx = calloc((size_t)nin, sizeof(double)), *rg = calloc((size_t)np, sizeof(double));
      fill(x, nin, 20 + (uint64_t)t, 1.0);
      fill(r, nout, 40 + (uint64_t)t, 1.0);
      const float *y = qkd_nn_forward(nn, x, B, 1, 0);
      const float *w = qkd_nn_params(nn), *bias = w + (long)F * C * k * k;
      double worst = 0, gworst = 0;
      for (int s = 0; s < B; s++)
        for (int f = 0; f < F; f++)
          for (int oh = 0; oh < out.h; oh++)
            for (int ow = 0; ow < out.w; ow++) {
              double acc = bias[f];
              long o = ((long)(s * F + f) * out.h + oh) * out.w + ow;
              for (int c = 0; c < C; c++)
                for (int i = 0; i < k; i++)
                  for (int j = 0; j < k; j++) {
                    int ih = oh * st - pad + i, iw = ow * st - pad + j;
                    if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
                    long wi = ((long)(f * C + c) * k + i) * k + j, xi = ((long)(s * C + c) * H + ih) * W + iw;
                    acc += (double)w[wi] * x[xi];
                    rg[wi] += (double)r[o] * x[xi];
                    rdx[xi] += (double)r[o] * w[wi];
                  }
              rg[(long)F * C * k * k + f] += r[o];
              if (fabs(y[o] - acc) > worst) worst = fabs(y[o] - acc);
            }
      qkd_nn_zero_grad(nn);
      qkd_nn_backward(nn, r, dx);
      const float *g = qkd_nn_grads(nn);
      for (long i = 0; i < np; i++) gworst = fmax(gworst, fabs(g[i] - rg[i]) / (1.0 + fabs(rg[i])));
      for (long i = 0; i < nin; i++) gworst = fmax(gworst, fabs(dx[i] - rdx[i]) / (1.0 + fabs(rdx[i])));
      CHECK(worst < 1e-5);
      CHECK(gworst < 2e-5);
      if (worst >= 1e-5 || gworst >= 2e-5)
        fprintf(stderr, "conv shape %zu mode %d: forward %g, gradients %g\n", t, mode, worst, gworst);
      free(x); free(r); free(dx); free(rdx); free(rg);
      qkd_nn_free(nn);
    }
  }
  unsetenv("QKD_NN_SIMD");
  qkd_nn_set_threads(1);
}

/* forward of conv / pools / dense against direct double loops */
static void test_forward_reference(void) {
  qkd_shape in = {3, 9, 8, 0};
  int F = 4, k = 3, st = 2, pad = 1, B = 2;
  qkd_layer_spec ls[] = {L(QKD_LAYER_CONV, F, k, st, pad, 0)};
  qkd_net_spec spec = {"c", 1, ls, 0, NULL, {0}};
  qkd_error err;
  qkd_nn *nn = qkd_nn_create(&spec, in, 0, B, &err);
  qkd_nn_init(nn, 3);
  qkd_shape out = qkd_nn_out(nn);
  CHECK(out.c == 4 && out.h == 5 && out.w == 4);
  float x[2 * 3 * 9 * 8];
  fill(x, 2 * 216, 1, 1.0);
  const float *y = qkd_nn_forward(nn, x, B, 0, 0);
  const float *w = qkd_nn_params(nn), *bias = w + F * 3 * k * k;
  double worst = 0;
  for (int s = 0; s < B; s++)
    for (int f = 0; f < F; f++)
      for (int oh = 0; oh < out.h; oh++)
        for (int ow = 0; ow < out.w; ow++) {
          double acc = bias[f];
          for (int c = 0; c < 3; c++)
            for (int i = 0; i < k; i++)
              for (int j = 0; j < k; j++) {
                int ih = oh * st - pad + i, iw = ow * st - pad + j;
                if (ih < 0 || iw < 0 || ih >= 9 || iw >= 8) continue;
                acc += (double)w[((f * 3 + c) * k + i) * k + j] * x[s * 216 + (c * 9 + ih) * 8 + iw];
              }
          double got = y[((s * F + f) * out.h + oh) * out.w + ow];
          if (fabs(got - acc) > worst) worst = fabs(got - acc);
        }
  CHECK(worst < 1e-5);
  qkd_nn_free(nn);
  /* init bounds: ±1/sqrt(fan_in), fan_in = 27 */
  nn = qkd_nn_create(&spec, in, 0, B, &err);
  qkd_nn_init(nn, 3);
  float mx = 0;
  for (long i = 0; i < qkd_nn_param_count(nn); i++) mx = fabsf(qkd_nn_params(nn)[i]) > mx ? fabsf(qkd_nn_params(nn)[i]) : mx;
  CHECK(mx <= 1.0 / sqrt(27.0) && mx > 0.8 / sqrt(27.0));
  CHECK(qkd_nn_param_count(nn) == 4 * 27 + 4);
  qkd_nn_free(nn);
  /* maxpool / avgpool / dense / tanh */
  qkd_shape pin = {1, 5, 5, 0};
  qkd_layer_spec mp[] = {L(QKD_LAYER_MAXPOOL, 2, 0, 1, 0, 0)}, ap[] = {L(QKD_LAYER_AVGPOOL, 2, 0, 1, 0, 0)};
  qkd_net_spec ms = {"m", 1, mp, 0, NULL, {0}}, as = {"a", 1, ap, 0, NULL, {0}};
  qkd_nn *m = qkd_nn_create(&ms, pin, 0, 1, &err), *a = qkd_nn_create(&as, pin, 0, 1, &err);
  float px[25];
  for (int i = 0; i < 25; i++) px[i] = (float)((i * 7) % 11);
  const float *my = qkd_nn_forward(m, px, 1, 0, 0);
  /* window (0,0): 0,7,5*7%11=2,6*7%11=9 -> max 9; window (1,1): idx 12,13,17,18 -> 7,3,9,5 */
  CHECK(my[0] == 9.0f && my[3] == 9.0f);
  const float *ay = qkd_nn_forward(a, px, 1, 0, 0);
  CHECK_NEAR(ay[0], (0 + 7 + 2 + 9) / 4.0, 1e-6);
  qkd_nn_free(m);
  qkd_nn_free(a);
  qkd_shape din = {6, 1, 1, 1};
  qkd_layer_spec dl[] = {L(QKD_LAYER_DENSE, 3, 0, 1, 0, 0), L(QKD_LAYER_TANH, 0, 0, 1, 0, 0)};
  qkd_net_spec ds = {"d", 2, dl, 0, NULL, {0}};
  qkd_nn *dn = qkd_nn_create(&ds, din, 0, 2, &err);
  qkd_nn_init(dn, 9);
  float dx[12];
  fill(dx, 12, 4, 3.0);
  const float *dy = qkd_nn_forward(dn, dx, 2, 0, 0);
  const float *W = qkd_nn_params(dn);
  for (int s = 0; s < 2; s++)
    for (int u = 0; u < 3; u++) {
      double acc = W[18 + u];
      for (int i = 0; i < 6; i++) acc += (double)W[u * 6 + i] * dx[s * 6 + i];
      CHECK_NEAR(dy[s * 3 + u], tanh(acc), 1e-6);
    }
  qkd_nn_free(dn);
  /* the fast tanh over a wide range */
  qkd_shape tin = {2001, 1, 1, 1};
  qkd_layer_spec tl[] = {L(QKD_LAYER_TANH, 0, 0, 1, 0, 0), L(QKD_LAYER_SIGMOID, 0, 0, 1, 0, 0)};
  qkd_net_spec ts = {"t", 1, tl, 0, NULL, {0}}, ss = {"s", 1, tl + 1, 0, NULL, {0}};
  qkd_nn *tn = qkd_nn_create(&ts, tin, 0, 1, &err), *sn = qkd_nn_create(&ss, tin, 0, 1, &err);
  float tx[2001];
  for (int i = 0; i < 2001; i++) tx[i] = (float)((i - 1000) * 0.02);
  const float *ty = qkd_nn_forward(tn, tx, 1, 0, 0);
  double tw = 0, sw = 0;
  for (int i = 0; i < 2001; i++) tw = fmax(tw, fabs(ty[i] - tanh(tx[i])));
  const float *sy = qkd_nn_forward(sn, tx, 1, 0, 0);
  for (int i = 0; i < 2001; i++) sw = fmax(sw, fabs(sy[i] - 1.0 / (1.0 + exp(-tx[i]))));
  CHECK(tw < 3e-7);
  CHECK(sw < 3e-7);
  qkd_nn_free(tn);
  qkd_nn_free(sn);
}

static void test_dropout(void) {
  qkd_shape in = {10000, 1, 1, 1};
  qkd_layer_spec l[] = {L(QKD_LAYER_DROPOUT, 0, 0, 1, 0, 0.25)};
  qkd_net_spec s = {"d", 1, l, 0, NULL, {0}};
  qkd_error err;
  qkd_nn *nn = qkd_nn_create(&s, in, 0, 1, &err);
  qkd_nn_init(nn, 1);
  float *x = malloc(sizeof(float) * 10000);
  for (int i = 0; i < 10000; i++) x[i] = 1.0f;
  const float *y = qkd_nn_forward(nn, x, 1, 1, 3);
  int zeros = 0, kept = 0;
  for (int i = 0; i < 10000; i++) { zeros += y[i] == 0.0f; kept += fabsf(y[i] - 1.0f / 0.75f) < 1e-6f; }
  CHECK(zeros + kept == 10000);
  CHECK(zeros > 2300 && zeros < 2700);
  float first = y[0], second;
  y = qkd_nn_forward(nn, x, 1, 1, 3);
  second = y[0];
  CHECK(first == second); /* same step, same mask */
  int diff = 0;
  float *y3 = malloc(sizeof(float) * 10000);
  memcpy(y3, qkd_nn_forward(nn, x, 1, 1, 3), sizeof(float) * 10000);
  y = qkd_nn_forward(nn, x, 1, 1, 4);
  for (int i = 0; i < 10000; i++) diff += y[i] != y3[i];
  CHECK(diff > 1000); /* another step, another mask */
  y = qkd_nn_forward(nn, x, 1, 0, 4);
  int ident = 1;
  for (int i = 0; i < 10000; i++) ident &= y[i] == 1.0f;
  CHECK(ident); /* evaluation: identity */
  free(x);
  free(y3);
  qkd_nn_free(nn);
}

static void test_ce(void) {
  float z[6] = {0, 0, 1000, 0, -1000, 1};
  int lab[3] = {0, 0, 0};
  float d[6];
  double loss = qkd_nn_softmax_ce(z, lab, 2, 2, d);
  /* sample 0: log 2; sample 1: lse(1000, 0) - 1000 = log(1 + e^-1000) ~ 0 */
  CHECK_NEAR(loss, log(2.0) / 2, 1e-12);
  CHECK_NEAR(d[0], -0.25, 1e-7);
  CHECK_NEAR(d[1], 0.25, 1e-7);
  CHECK_NEAR(d[2], 0.0, 1e-7);
  lab[0] = 1;
  loss = qkd_nn_softmax_ce(z + 4, lab, 1, 2, NULL);
  CHECK_NEAR(loss, log1p(exp(-1001.0)), 1e-12);
  lab[0] = 0;
  loss = qkd_nn_softmax_ce(z + 4, lab, 1, 2, NULL);
  CHECK_NEAR(loss, 1001.0, 1e-9);
  /* dlogits against finite differences, 3 samples x 4 classes */
  float zz[12], dd[12];
  int ll[3] = {2, 0, 3};
  fill(zz, 12, 8, 3.0);
  qkd_nn_softmax_ce(zz, ll, 3, 4, dd);
  for (int i = 0; i < 12; i++) {
    float k = zz[i];
    zz[i] = k + 1e-3f;
    double lp = qkd_nn_softmax_ce(zz, ll, 3, 4, NULL);
    zz[i] = k - 1e-3f;
    double lm = qkd_nn_softmax_ce(zz, ll, 3, 4, NULL);
    zz[i] = k;
    CHECK_NEAR(dd[i], (lp - lm) / 2e-3, 1e-4);
  }
  /* argmax and confusion */
  long conf[4] = {0, 0, 0, 0};
  float lg[6] = {1, 2, 3, 0, 0, 5};
  int yl[3] = {1, 0, 0}, pr[3];
  CHECK(qkd_nn_argmax_count(lg, 3, 2, yl, pr, conf) == 2);
  CHECK(pr[0] == 1 && pr[1] == 0 && pr[2] == 1);
  CHECK(conf[0] == 1 && conf[1] == 1 && conf[2] == 0 && conf[3] == 1);
}

static void test_optim(void) {
  qkd_nn_optim o;
  float p = 1.0f, g;
  CHECK(qkd_nn_optim_init(&o, QKD_NN_ADAM, 0.1, 0.9, 0.999, 0, 1) == 0);
  /* hand-computed: step 1 moves by exactly lr (mhat / sqrt(vhat) = 1), then 0.93661035, 0.95027942 */
  g = 0.5f; qkd_nn_optim_step(&o, &p, &g); CHECK_NEAR(p, 0.900000002, 1e-6);
  g = -1.0f; qkd_nn_optim_step(&o, &p, &g); CHECK_NEAR(p, 0.9366103542405654, 1e-6);
  g = 0.25f; qkd_nn_optim_step(&o, &p, &g); CHECK_NEAR(p, 0.9502794203389762, 1e-6);
  qkd_nn_optim_free(&o);
  CHECK(qkd_nn_optim_init(&o, QKD_NN_SGD, 0.1, 0, 0, 0.9, 1) == 0);
  p = 1.0f;
  g = 0.5f; qkd_nn_optim_step(&o, &p, &g); CHECK_NEAR(p, 0.95, 1e-7);    /* buf = 0.5 */
  g = -1.0f; qkd_nn_optim_step(&o, &p, &g); CHECK_NEAR(p, 1.005, 1e-7);  /* buf = 0.45 - 1 */
  qkd_nn_optim_free(&o);
  /* schedules: cosine from 1 toward 0 over the run, constant 1 */
  CHECK(qkd_nn_schedule(QKD_SCHEDULE_CONSTANT, 17, 100) == 1.0);
  CHECK(qkd_nn_schedule(QKD_SCHEDULE_COSINE, 0, 100) == 1.0);
  CHECK_NEAR(qkd_nn_schedule(QKD_SCHEDULE_COSINE, 50, 100), 0.5, 1e-15);
  CHECK_NEAR(qkd_nn_schedule(QKD_SCHEDULE_COSINE, 25, 100), (1 + sqrt(0.5)) / 2, 1e-15);
  CHECK_NEAR(qkd_nn_schedule(QKD_SCHEDULE_COSINE, 99, 100), (1 + cos(M_PI * 0.99)) / 2, 1e-15);
  /* shuffle: a permutation, deterministic, epoch-dependent */
  /* shuffle: a permutation, deterministic, epoch- and stream-dependent (teacher and student
   * with one seed get different orders) */
  int a[100], b[100], c[100], d[100], seen[100] = {0};
  qkd_nn_shuffle(a, 100, 1, QKD_STREAM_SHUFFLE, 0);
  qkd_nn_shuffle(b, 100, 1, QKD_STREAM_SHUFFLE, 0);
  qkd_nn_shuffle(c, 100, 1, QKD_STREAM_SHUFFLE, 1);
  qkd_nn_shuffle(d, 100, 1, QKD_STREAM_SHUFFLE_STUDENT, 0);
  int same = 1, diff = 0, sdiff = 0;
  for (int i = 0; i < 100; i++) { seen[a[i]]++; same &= a[i] == b[i]; diff += a[i] != c[i]; sdiff += a[i] != d[i]; }
  int perm = 1;
  for (int i = 0; i < 100; i++) perm &= seen[i] == 1;
  CHECK(perm && same && diff > 50 && sdiff > 50);
}

/* blocks big enough for the vector loops (AVX or SSE, and the scalar tail: n = 8k + 3) and the
 * thread split: the float formula element by element, in its order, gives the same bits (no
 * multiply-add is contracted on either side), on 1 thread and on 2 */
static void test_optim_big(void) {
  long sizes[2] = {100003, (1L << 20) + 3};
  for (int z = 0; z < 2; z++) {
    long n = sizes[z];
    float *p = malloc(sizeof(float) * (size_t)n), *g = malloc(sizeof(float) * (size_t)n), *q = malloc(sizeof(float) * (size_t)n);
    float *p1 = malloc(sizeof(float) * (size_t)n);
    float *m = calloc((size_t)n, sizeof(float)), *v = calloc((size_t)n, sizeof(float));
    fill(p, n, 21, 1.0);
    memcpy(q, p, sizeof(float) * (size_t)n);
    memcpy(p1, p, sizeof(float) * (size_t)n);
    qkd_nn_optim o, o1;
    CHECK(qkd_nn_optim_init(&o, QKD_NN_ADAM, 1e-2, 0.9, 0.999, 0, n) == 0);
    CHECK(qkd_nn_optim_init(&o1, QKD_NN_ADAM, 1e-2, 0.9, 0.999, 0, n) == 0);
    int bad = 0, moved = 0;
    for (int t = 1; t <= 3; t++) {
      fill(g, n, 30 + (uint64_t)t, 0.5);
      qkd_nn_set_threads(2);
      qkd_nn_optim_step(&o, p, g);
      qkd_nn_set_threads(1);
      qkd_nn_optim_step(&o1, p1, g);
      float step = (float)(1e-2 / (1.0 - pow(0.9, t))), isb2 = (float)(1.0 / sqrt(1.0 - pow(0.999, t)));
      for (long i = 0; i < n; i++) {
        m[i] = 0.9f * m[i] + (1.0f - 0.9f) * g[i];
        v[i] = 0.999f * v[i] + (1.0f - 0.999f) * g[i] * g[i];
        float before = q[i];
        q[i] -= step * m[i] / (sqrtf(v[i]) * isb2 + 1e-8f);
        moved += q[i] != before;
        if ((q[i] != p[i] || p1[i] != p[i]) && bad++ < 3)
          fprintf(stderr, "adam n=%ld [%ld]: %.9g (2 threads) %.9g (1) vs %.9g\n", n, i, p[i], p1[i], q[i]);
      }
    }
    CHECK(bad == 0 && moved > n);
    qkd_nn_optim_free(&o);
    qkd_nn_optim_free(&o1);
    free(p); free(p1); free(g); free(q); free(m); free(v);
  }
}

static void test_pca(void) {
  /* 4 points (±2, 0), (0, ±1) rotated by 30 degrees, plus an offset: covariance eigenvalues 8/3
   * and 2/3 along (cos, sin) and (-sin, cos). */
  double th = M_PI / 6, cs = cos(th), sn = sin(th);
  float x[8];
  double pts[4][2] = {{2, 0}, {-2, 0}, {0, 1}, {0, -1}};
  for (int i = 0; i < 4; i++) {
    x[2 * i] = (float)(cs * pts[i][0] - sn * pts[i][1] + 5);
    x[2 * i + 1] = (float)(sn * pts[i][0] + cs * pts[i][1] - 3);
  }
  qkd_nn_reduce r;
  qkd_error err;
  qkd_shape in = {1, 1, 2, 0};
  CHECK(qkd_nn_reduce_init(&r, QKD_NN_RED_PCA, in, 2, 0, 0, &err) == 0);
  CHECK(qkd_nn_reduce_fit(&r, x, 4, &err) == 0);
  CHECK_NEAR(r.eigenvalues[0], 8.0 / 3, 1e-5);
  CHECK_NEAR(r.eigenvalues[1], 2.0 / 3, 1e-5);
  CHECK_NEAR(r.mean[0], 5, 1e-5);
  CHECK_NEAR(r.mean[1], -3, 1e-5);
  /* sign rule: the largest-magnitude entry is positive */
  CHECK_NEAR(r.basis[0 * 2 + 0], cs, 1e-5);
  CHECK_NEAR(r.basis[1 * 2 + 0], sn, 1e-5);
  CHECK_NEAR(r.basis[0 * 2 + 1], -sn, 1e-5);
  CHECK_NEAR(r.basis[1 * 2 + 1], cs, 1e-5);
  float out[8];
  qkd_nn_reduce_forward(&r, x, 4, out);
  CHECK_NEAR(out[0], 2, 1e-5);
  CHECK_NEAR(out[1], 0, 1e-5);
  CHECK_NEAR(out[5], 1, 1e-5);
  qkd_nn_reduce_free(&r);
  /* random data, D = 12, k = 3: C v = lambda v with C computed here in double, orthonormal basis,
   * lambdas descending and each >= every Rayleigh quotient of a random unit vector */
  int n = 200, D = 12;
  float *xr = malloc(sizeof(float) * (size_t)(n * D));
  for (int i = 0; i < n; i++)
    for (int d = 0; d < D; d++)
      xr[i * D + d] = (float)((d + 1) * qkd_rng_normal(3, 9, (uint64_t)(i * D + d)) + 0.5 * qkd_rng_normal(4, 9, (uint64_t)i));
  qkd_shape in2 = {3, 2, 2, 0};
  CHECK(qkd_nn_reduce_init(&r, QKD_NN_RED_PCA, in2, 3, 0, 0, &err) == 0);
  CHECK(qkd_nn_reduce_fit(&r, xr, n, &err) == 0);
  double mean[12] = {0}, C[12][12] = {{0}};
  for (int i = 0; i < n; i++) for (int d = 0; d < D; d++) mean[d] += xr[i * D + d] / (double)n;
  for (int i = 0; i < n; i++)
    for (int a = 0; a < D; a++)
      for (int b = 0; b < D; b++) C[a][b] += (xr[i * D + a] - mean[a]) * (xr[i * D + b] - mean[b]) / (n - 1);
  for (int j = 0; j < 3; j++) {
    double nrm = 0, res = 0;
    for (int a = 0; a < D; a++) {
      double cv = 0;
      for (int b = 0; b < D; b++) cv += C[a][b] * r.basis[b * 3 + j];
      res = fmax(res, fabs(cv - r.eigenvalues[j] * r.basis[a * 3 + j]));
      nrm += (double)r.basis[a * 3 + j] * r.basis[a * 3 + j];
    }
    CHECK_NEAR(nrm, 1.0, 1e-5);
    CHECK(res < 1e-4 * r.eigenvalues[0]);
    if (j) CHECK(r.eigenvalues[j] <= r.eigenvalues[j - 1]);
  }
  for (int t = 0; t < 50; t++) {
    double v[12], nv = 0, q = 0;
    for (int a = 0; a < D; a++) { v[a] = qkd_rng_normal(77, 1, (uint64_t)(t * D + a)); nv += v[a] * v[a]; }
    for (int a = 0; a < D; a++) for (int b = 0; b < D; b++) q += v[a] * C[a][b] * v[b];
    CHECK(q / nv <= r.eigenvalues[0] * (1 + 1e-6));
  }
  qkd_nn_reduce_free(&r);
  free(xr);
}

static void test_reductions(void) {
  qkd_shape in = {1, 28, 28, 0};
  float *x = malloc(sizeof(float) * 784), out[256];
  for (int i = 0; i < 784; i++) x[i] = (float)i;
  qkd_nn_reduce r;
  qkd_error err;
  CHECK(qkd_nn_reduce_init(&r, QKD_NN_RED_AVGPOOL_TO, in, 16, 0, 0, &err) == 0);
  qkd_nn_reduce_forward(&r, x, 1, out);
  /* region (i, j) = rows 7i..7i+6, cols 7j..7j+6: mean = (7i+3)*28 + 7j+3 */
  CHECK_NEAR(out[0], 3 * 28 + 3, 1e-4);
  CHECK_NEAR(out[2 * 4 + 3], 17 * 28 + 24, 1e-4);
  CHECK(qkd_nn_reduce_init(&r, QKD_NN_RED_MAXPOOL_TO, in, 256, 0, 0, &err) == 0);
  qkd_nn_reduce_forward(&r, x, 1, out);
  /* region (i, j): last row floor((i+1)*28/16)-1, last col likewise */
  CHECK(out[0] == 0 * 28 + 0);           /* rows 0..0, cols 0..0 */
  CHECK(out[1] == 0 * 28 + 2);           /* cols 1..2 */
  CHECK(out[15 * 16 + 15] == 27 * 28 + 27);
  CHECK(out[5 * 16 + 9] == 9 * 28 + 16); /* rows 8..9, cols 15..16 */
  CHECK(qkd_nn_reduce_init(&r, QKD_NN_RED_AVGPOOL_TO, in, 15, 0, 0, &err) == -1);
  CHECK(qkd_nn_reduce_init(&r, QKD_NN_RED_CROP, in, 0, 4, 4, &err) == 0 && r.n_features == 16);
  qkd_nn_reduce_forward(&r, x, 1, out);
  CHECK(out[0] == 12 * 28 + 12 && out[15] == 15 * 28 + 15);
  /* CIFAR-shaped: crop keeps all channels; pools span them */
  qkd_shape cin = {3, 32, 32, 0};
  float *cx = malloc(sizeof(float) * 3072), cout[48];
  for (int i = 0; i < 3072; i++) cx[i] = (float)(i / 1024); /* channel index */
  CHECK(qkd_nn_reduce_init(&r, QKD_NN_RED_CROP, cin, 0, 4, 4, &err) == 0 && r.n_features == 48);
  qkd_nn_reduce_forward(&r, cx, 1, cout);
  CHECK(cout[0] == 0 && cout[16] == 1 && cout[47] == 2);
  CHECK(qkd_nn_reduce_init(&r, QKD_NN_RED_AVGPOOL_TO, cin, 16, 0, 0, &err) == 0);
  qkd_nn_reduce_forward(&r, cx, 1, cout);
  CHECK_NEAR(cout[7], 1.0, 1e-6);
  free(x);
  free(cx);
}

static void test_mean_and_counts(void) {
  qkd_layer_spec a[] = {L(QKD_LAYER_FLATTEN, 0, 0, 1, 0, 0), L(QKD_LAYER_DENSE, 4, 0, 1, 0, 0)};
  qkd_layer_spec b[] = {L(QKD_LAYER_CONV, 2, 3, 1, 0, 0), L(QKD_LAYER_TANH, 0, 0, 1, 0, 0), L(QKD_LAYER_FLATTEN, 0, 0, 1, 0, 0),
                        L(QKD_LAYER_DENSE, 4, 0, 1, 0, 0)};
  qkd_net_spec mem[2] = {{"a", 2, a, 0, NULL, {0}}, {"b", 4, b, 0, NULL, {0}}};
  qkd_net_spec mean = {"m", 0, NULL, 2, mem, {0}};
  qkd_shape in = {1, 5, 5, 0};
  qkd_error err;
  qkd_nn *m = qkd_nn_create(&mean, in, 0, 3, &err);
  qkd_nn *na = qkd_nn_create(&mem[0], in, 0, 3, &err), *nb = qkd_nn_create(&mem[1], in, 0, 3, &err);
  CHECK(m && na && nb);
  CHECK(qkd_nn_param_count(m) == qkd_nn_param_count(na) + qkd_nn_param_count(nb));
  qkd_nn_init(m, 2);
  memcpy(qkd_nn_params(na), qkd_nn_params(m), sizeof(float) * (size_t)qkd_nn_param_count(na));
  memcpy(qkd_nn_params(nb), qkd_nn_params(m) + qkd_nn_param_count(na), sizeof(float) * (size_t)qkd_nn_param_count(nb));
  float x[75];
  fill(x, 75, 2, 1.0);
  float ya[12], yb[12];
  memcpy(ya, qkd_nn_forward(na, x, 3, 0, 0), sizeof ya);
  memcpy(yb, qkd_nn_forward(nb, x, 3, 0, 0), sizeof yb);
  const float *ym = qkd_nn_forward(m, x, 3, 0, 0);
  for (int i = 0; i < 12; i++) CHECK_NEAR(ym[i], (ya[i] + yb[i]) / 2, 1e-6);
  qkd_nn_free(m);
  qkd_nn_free(na);
  qkd_nn_free(nb);
  grad_check("empty net (identity)", NULL, 0, in, 1, 0, 1.0);
  /* gradient check of the mean net through the probe */
  {
    qkd_nn *mm = qkd_nn_create(&mean, in, 0, 2, &err);
    qkd_nn_init(mm, 4);
    float xx[50], r[8], dx[50];
    fill(xx, 50, 3, 1.0);
    fill(r, 8, 4, 1.0);
    probe_loss(mm, xx, 2, r, 8, 0);
    qkd_nn_zero_grad(mm);
    qkd_nn_backward(mm, r, dx);
    int bad = 0;
    for (long i = 0; i < qkd_nn_param_count(mm); i++) {
      float *p = qkd_nn_params(mm), k = p[i];
      p[i] = k + 1e-2f;
      double lp = probe_loss(mm, xx, 2, r, 8, 0);
      p[i] = k - 1e-2f;
      double lm = probe_loss(mm, xx, 2, r, 8, 0);
      p[i] = k;
      double num = (lp - lm) / 2e-2;
      bad += fabs(num - qkd_nn_grads(mm)[i]) > 2e-2 * (1e-2 + fabs(num));
    }
    for (int i = 0; i < 50; i++) {
      float k = xx[i];
      xx[i] = k + 1e-2f;
      double lp = probe_loss(mm, xx, 2, r, 8, 0);
      xx[i] = k - 1e-2f;
      double lm = probe_loss(mm, xx, 2, r, 8, 0);
      xx[i] = k;
      double num = (lp - lm) / 2e-2;
      bad += fabs(num - dx[i]) > 2e-2 * (1e-2 + fabs(num));
    }
    CHECK(bad == 0);
    qkd_nn_free(mm);
  }
  /* paper §4.1/§4.2 parameter counts (C = 8) */
  qkd_layer_spec lenet[] = {L(QKD_LAYER_CONV, 6, 5, 1, 0, 0), L(QKD_LAYER_TANH, 0, 0, 1, 0, 0), L(QKD_LAYER_AVGPOOL, 2, 0, 1, 0, 0),
                            L(QKD_LAYER_CONV, 16, 5, 1, 0, 0), L(QKD_LAYER_TANH, 0, 0, 1, 0, 0), L(QKD_LAYER_AVGPOOL, 2, 0, 1, 0, 0),
                            L(QKD_LAYER_FLATTEN, 0, 0, 1, 0, 0), L(QKD_LAYER_DENSE, 120, 0, 1, 0, 0), L(QKD_LAYER_TANH, 0, 0, 1, 0, 0),
                            L(QKD_LAYER_DENSE, 84, 0, 1, 0, 0), L(QKD_LAYER_TANH, 0, 0, 1, 0, 0), L(QKD_LAYER_DENSE, 8, 0, 1, 0, 0)};
  qkd_net_spec ls = {"lenet5", 12, lenet, 0, NULL, {0}};
  qkd_shape mn = {1, 28, 28, 0};
  qkd_nn *ln = qkd_nn_create(&ls, mn, 0, 4, &err);
  CHECK(ln && qkd_nn_param_count(ln) == 44256);
  qkd_nn_free(ln);
  qkd_layer_spec alex[] = {L(QKD_LAYER_CONV, 64, 3, 1, 1, 0), L(QKD_LAYER_RELU, 0, 0, 1, 0, 0), L(QKD_LAYER_MAXPOOL, 2, 0, 1, 0, 0),
                           L(QKD_LAYER_CONV, 192, 3, 1, 1, 0), L(QKD_LAYER_RELU, 0, 0, 1, 0, 0), L(QKD_LAYER_MAXPOOL, 2, 0, 1, 0, 0),
                           L(QKD_LAYER_CONV, 384, 3, 1, 1, 0), L(QKD_LAYER_RELU, 0, 0, 1, 0, 0), L(QKD_LAYER_FLATTEN, 0, 0, 1, 0, 0),
                           L(QKD_LAYER_DROPOUT, 0, 0, 1, 0, 0.5), L(QKD_LAYER_DENSE, 4096, 0, 1, 0, 0), L(QKD_LAYER_RELU, 0, 0, 1, 0, 0),
                           L(QKD_LAYER_DROPOUT, 0, 0, 1, 0, 0.5), L(QKD_LAYER_DENSE, 4096, 0, 1, 0, 0), L(QKD_LAYER_RELU, 0, 0, 1, 0, 0),
                           L(QKD_LAYER_DENSE, 8, 0, 1, 0, 0)};
  CHECK(qkd_net_param_count(alex, 16, mn, 0) == 94663880);
  qkd_net_spec both[2] = {{"alexnet_small", 16, alex, 0, NULL, {0}}, ls};
  qkd_net_spec ens = {"ensemble", 0, NULL, 2, both, {0}};
  qkd_nn *en = qkd_nn_create(&ens, mn, 0, 2, &err);
  CHECK(en && qkd_nn_param_count(en) == 94708136);
  qkd_nn_free(en);
  /* errors come back as messages */
  qkd_layer_spec badl[] = {L(QKD_LAYER_CONV, 2, 9, 1, 0, 0)};
  qkd_net_spec bad = {"tiny", 1, badl, 0, NULL, {0}};
  qkd_shape small = {1, 4, 4, 0};
  CHECK(qkd_nn_create(&bad, small, 0, 1, &err) == NULL && strstr(err.msg, "larger") != NULL);
}

/* a small CNN learns the synthetic data set */
static void test_learns(void) {
  qkd_data_opts o = {.source = "synthetic", .c = 1, .h = 8, .w = 8, .seed = 4};
  qkd_dataset ds;
  qkd_error err;
  CHECK(qkd_data_load(&o, &ds, &err) == 0);
  qkd_layer_spec l[] = {L(QKD_LAYER_CONV, 4, 3, 1, 1, 0), L(QKD_LAYER_RELU, 0, 0, 1, 0, 0), L(QKD_LAYER_MAXPOOL, 2, 0, 1, 0, 0),
                        L(QKD_LAYER_FLATTEN, 0, 0, 1, 0, 0), L(QKD_LAYER_DENSE, 10, 0, 1, 0, 0)};
  qkd_net_spec s = {"small", 5, l, 0, NULL, {0}};
  qkd_shape in = {1, 8, 8, 0};
  int B = 32;
  qkd_nn *nn = qkd_nn_create(&s, in, 0, B, &err);
  qkd_nn_init(nn, 1);
  qkd_nn_optim opt;
  qkd_nn_optim_init(&opt, QKD_NN_ADAM, 3e-3, 0.9, 0.999, 0, qkd_nn_param_count(nn));
  float *x = malloc(sizeof(float) * 64 * (size_t)(ds.test.n > B ? ds.test.n : B)), d[320];
  int y[200], *perm = malloc(sizeof(int) * (size_t)ds.train.n);
  double first = 0, last = 0;
  for (int ep = 0; ep < 3; ep++) {
    qkd_nn_shuffle(perm, ds.train.n, 1, QKD_STREAM_SHUFFLE, (uint64_t)ep);
    double tot = 0;
    int nb = 0;
    for (int i = 0; i + B <= ds.train.n; i += B, nb++) {
      qkd_data_batch(&ds, &ds.train, perm + i, B, x, y);
      const float *z = qkd_nn_forward(nn, x, B, 1, (uint64_t)nb);
      tot += qkd_nn_softmax_ce(z, y, B, 10, d);
      qkd_nn_zero_grad(nn);
      qkd_nn_backward(nn, d, NULL);
      qkd_nn_optim_step(&opt, qkd_nn_params(nn), qkd_nn_grads(nn));
    }
    if (ep == 0) first = tot / nb;
    last = tot / nb;
  }
  int correct = 0;
  for (int i = 0; i < ds.test.n; i += B) {
    int n = ds.test.n - i < B ? ds.test.n - i : B;
    qkd_data_batch(&ds, &ds.test, NULL, 0, x, NULL); /* n = 0: no-op */
    int idx[32];
    for (int j = 0; j < n; j++) idx[j] = i + j;
    qkd_data_batch(&ds, &ds.test, idx, n, x, y);
    correct += qkd_nn_argmax_count(qkd_nn_forward(nn, x, n, 0, 0), n, 10, y, NULL, NULL);
  }
  double acc = (double)correct / ds.test.n;
  fprintf(stderr, "synthetic: loss %.3f -> %.3f, test accuracy %.3f\n", first, last, acc);
  CHECK(last < first);
  CHECK(acc > 0.8);
  free(x);
  free(perm);
  qkd_nn_optim_free(&opt);
  qkd_nn_free(nn);
  qkd_data_free(&ds);
}

int main(void) {
  qkd_nn_set_threads(1);
  test_gradients();
  test_forward_reference();
  test_conv_direct();
  test_threads();
  test_batchnorm();
  test_batchnorm_threads();
  test_dropout();
  test_ce();
  test_optim();
  test_optim_big();
  test_pca();
  test_reductions();
  test_mean_and_counts();
  test_learns();
  return test_done("test_rt_nn");
}
