/* reduce.c — the fixed student reductions of qkd_nn.h: pca(k) (LAPACK dsyev), avgpool_to(k),
 * maxpool_to(k), crop(h, w). */
#include "qkd_nn.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK from the liblapack that OpenBLAS ships (no lapacke.h needed). */
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                   double *work, const int *lwork, int *info);

int qkd_nn_reduce_init(qkd_nn_reduce *r, int kind, qkd_shape in, int k, int h, int w, qkd_error *err) {
  memset(r, 0, sizeof *r);
  r->kind = kind;
  r->in = in;
  r->k = k;
  r->h = h;
  r->w = w;
  long D = qkd_shape_size(in);
  switch (kind) {
  case QKD_NN_RED_PCA:
    if (k < 1 || k > D) { qkd_fail(err, QKD_ERR_INPUT, NULL, "pca(%d) needs 1 <= k <= %ld (the image size)", k, D); return -1; }
    r->n_features = k;
    return 0;
  case QKD_NN_RED_AVGPOOL_TO:
  case QKD_NN_RED_MAXPOOL_TO: {
    const char *name = kind == QKD_NN_RED_AVGPOOL_TO ? "avgpool_to" : "maxpool_to";
    int g = (int)lround(sqrt((double)(k > 0 ? k : 0)));
    if (k < 1 || g * g != k) { qkd_fail(err, QKD_ERR_INPUT, NULL, "%s(%d): k must be a perfect square (a g x g grid of regions)", name, k); return -1; }
    if (g > in.h || g > in.w) { qkd_fail(err, QKD_ERR_INPUT, NULL, "%s(%d): a %dx%d grid does not fit a %dx%d image", name, k, g, g, in.h, in.w); return -1; }
    r->g = g;
    r->n_features = k;
    return 0;
  }
  case QKD_NN_RED_CROP:
    if (h < 1 || w < 1 || h > in.h || w > in.w) { qkd_fail(err, QKD_ERR_INPUT, NULL, "crop(%d, %d) does not fit a %dx%d image", h, w, in.h, in.w); return -1; }
    r->n_features = in.c * h * w;
    return 0;
  default:
    qkd_fail(err, QKD_ERR_INTERNAL, NULL, "unknown reduction %d", kind);
    return -1;
  }
}

int qkd_nn_reduce_fit(qkd_nn_reduce *r, const float *x, int n, qkd_error *err) {
  if (r->kind != QKD_NN_RED_PCA) return 0;
  int D = (int)qkd_shape_size(r->in), k = r->k;
  if (n < 2) { qkd_fail(err, QKD_ERR_INPUT, NULL, "pca needs at least 2 training images"); return -1; }
  double *mean = calloc((size_t)D, sizeof(double));
  double *cov = calloc((size_t)D * D, sizeof(double));
  double *ev = malloc(sizeof(double) * (size_t)D);
  int chunk = 512;
  double *buf = malloc(sizeof(double) * (size_t)chunk * D);
  if (!mean || !cov || !ev || !buf) { free(mean); free(cov); free(ev); free(buf); qkd_fail(err, QKD_ERR_MEMORY, NULL, "pca: out of memory"); return -1; }
  for (int i = 0; i < n; i++)
    for (int d = 0; d < D; d++) mean[d] += x[(long)i * D + d];
  for (int d = 0; d < D; d++) mean[d] /= n;
  for (int i0 = 0; i0 < n; i0 += chunk) {
    int nb = n - i0 < chunk ? n - i0 : chunk;
    for (int i = 0; i < nb; i++)
      for (int d = 0; d < D; d++) buf[(long)i * D + d] = x[(long)(i0 + i) * D + d] - mean[d];
    /* upper triangle (row-major) = lower triangle in LAPACK's column-major view */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, D, nb, 1.0 / (n - 1), buf, D, 1.0, cov, D);
  }
  free(buf);
  int lwork = -1, info = 0;
  double wq;
  dsyev_("V", "L", &D, cov, &D, ev, &wq, &lwork, &info);
  lwork = info == 0 ? (int)wq : 3 * D;
  double *work = malloc(sizeof(double) * (size_t)(lwork > 1 ? lwork : 1));
  if (!work) { free(mean); free(cov); free(ev); qkd_fail(err, QKD_ERR_MEMORY, NULL, "pca: out of memory"); return -1; }
  dsyev_("V", "L", &D, cov, &D, ev, work, &lwork, &info);
  free(work);
  if (info != 0) { free(mean); free(cov); free(ev); qkd_fail(err, QKD_ERR_INTERNAL, NULL, "pca: LAPACK dsyev failed (info %d)", info); return -1; }
  /* eigenvalues ascending; eigenvector j is column j of the column-major result = row j here */
  r->mean = malloc(sizeof(float) * (size_t)D);
  r->basis = malloc(sizeof(float) * (size_t)D * k);
  r->eigenvalues = malloc(sizeof(double) * (size_t)k);
  if (!r->mean || !r->basis || !r->eigenvalues) { free(mean); free(cov); free(ev); qkd_fail(err, QKD_ERR_MEMORY, NULL, "pca: out of memory"); return -1; }
  for (int d = 0; d < D; d++) r->mean[d] = (float)mean[d];
  for (int j = 0; j < k; j++) {
    const double *v = cov + (long)(D - 1 - j) * D;
    int big = 0;
    for (int d = 1; d < D; d++) if (fabs(v[d]) > fabs(v[big])) big = d;
    double sign = v[big] < 0 ? -1.0 : 1.0;
    for (int d = 0; d < D; d++) r->basis[(long)d * k + j] = (float)(sign * v[d]);
    r->eigenvalues[j] = ev[D - 1 - j];
  }
  free(mean);
  free(cov);
  free(ev);
  return 0;
}

void qkd_nn_reduce_forward(const qkd_nn_reduce *r, const float *x, int batch, float *out) {
  int C = r->in.c, H = r->in.h, W = r->in.w;
  long D = qkd_shape_size(r->in);
  switch (r->kind) {
  case QKD_NN_RED_PCA: {
    float *c = malloc(sizeof(float) * (size_t)D);
    for (int s = 0; s < batch; s++) {
      for (long d = 0; d < D; d++) c[d] = x[s * D + d] - r->mean[d];
      cblas_sgemv(CblasRowMajor, CblasTrans, (int)D, r->k, 1.0f, r->basis, r->k, c, 1, 0.0f, out + (long)s * r->k, 1);
    }
    free(c);
    break;
  }
  case QKD_NN_RED_AVGPOOL_TO:
  case QKD_NN_RED_MAXPOOL_TO: {
    int g = r->g, mx = r->kind == QKD_NN_RED_MAXPOOL_TO;
    for (int s = 0; s < batch; s++)
      for (int i = 0; i < g; i++)
        for (int j = 0; j < g; j++) {
          int r0 = i * H / g, r1 = (i + 1) * H / g, c0 = j * W / g, c1 = (j + 1) * W / g;
          double acc = 0;
          float best = x[s * D + (long)r0 * W + c0];
          for (int c = 0; c < C; c++)
            for (int y = r0; y < r1; y++)
              for (int xx = c0; xx < c1; xx++) {
                float v = x[s * D + ((long)c * H + y) * W + xx];
                acc += v;
                if (v > best) best = v;
              }
          out[(long)s * g * g + i * g + j] = mx ? best : (float)(acc / ((double)C * (r1 - r0) * (c1 - c0)));
        }
    break;
  }
  case QKD_NN_RED_CROP: {
    int top = (H - r->h) / 2, left = (W - r->w) / 2;
    for (int s = 0; s < batch; s++)
      for (int c = 0; c < C; c++)
        for (int y = 0; y < r->h; y++)
          memcpy(out + (long)s * r->n_features + ((long)c * r->h + y) * r->w, x + s * D + ((long)c * H + top + y) * W + left,
                 sizeof(float) * (size_t)r->w);
    break;
  }
  default: break;
  }
}

void qkd_nn_reduce_free(qkd_nn_reduce *r) {
  free(r->mean);
  free(r->basis);
  free(r->eigenvalues);
  r->mean = r->basis = NULL;
  r->eigenvalues = NULL;
}
