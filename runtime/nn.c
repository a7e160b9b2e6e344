/* nn.c — layers, nets (lists and `mean`), forward and backward of qkd_nn.h. */
#include "qkd_nn.h"
#include "qkd_rng.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* im2col scratch cap (floats): a conv processes as many samples at once as fit. */
#define COLS_FLOATS (1L << 22)

typedef struct {
  qkd_layer_spec s;
  qkd_shape in, out;
  long in_size, out_size;  /* per sample */
  long n_params;
  float *w, *b, *dw, *db;  /* into the net's blocks */
  float *y;                /* [max_batch][out_size]; flatten aliases its input */
  float *aux;              /* dropout: mask [max_batch][out_size] */
  int *arg;                /* maxpool: argmax [max_batch][out_size] (index in the input sample) */
} layer;

struct qkd_nn {
  qkd_shape in, out;
  int max_batch;
  long n_params;
  float *params, *grads;
  int owns_blocks;
  /* a layer list */
  int n_layers;
  layer *layers;
  /* or a mean of members */
  int n_members;
  qkd_nn **members;
  float *mean_out;         /* [max_batch][out] */
  float *dmember;          /* [max_batch][out] */
  float *dx_accum;         /* [max_batch][in] for mean nets with dx */
  /* last forward */
  const float *x;
  int batch;
  uint64_t seed, step;
  /* scratch */
  float *cols, *tmp, *d0, *d1;
  long cols_len, tmp_len, d_len;
};

void qkd_nn_set_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }

/* ------------------------------------------------------------------------- fast exp / tanh */

/* e^x for x in [-80, 88] (clamped: results stay normal floats, never slow denormals), relative error ~2e-7, four lanes at a time with GCC/Clang
 * vector extensions (plain SSE2 code on x86-64). Cephes' polynomial after x = n ln2 + r. */
typedef float v4f __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));

static inline v4f vsel(v4i mask, v4f a, v4f b) { return (v4f)((mask & (v4i)a) | (~mask & (v4i)b)); }

static inline v4f vexp(v4f x) {
  const v4f lo = {-80.0f, -80.0f, -80.0f, -80.0f}, hi = {88.0f, 88.0f, 88.0f, 88.0f};
  x = vsel(x < lo, lo, x);
  x = vsel(x > hi, hi, x);
  v4f t = x * 1.44269504088896341f;
  v4f fn = (t + 12582912.0f) - 12582912.0f; /* round to nearest */
  v4f r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
  v4f p = r * 1.9875691500E-4f + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.0f;
  v4i n = __builtin_convertvector(fn, v4i);
  return p * (v4f)((n + 127) << 23);
}

/* n >= 4: one unaligned vector (fixed-size memcpy compiles to a single load/store); the tail
 * goes element by element. */
static inline v4f vload(const float *p, long n) {
  v4f v = {0, 0, 0, 0};
  if (n >= 4) memcpy(&v, p, 16);
  else for (long i = 0; i < n; i++) v[i] = p[i];
  return v;
}
static inline void vstore(float *p, v4f v, long n) {
  if (n >= 4) memcpy(p, &v, 16);
  else for (long i = 0; i < n; i++) p[i] = v[i];
}

/* tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|) */
static void tanh_fwd(const float *x, float *y, long n) {
  const v4i signbit = {(int)0x80000000u, (int)0x80000000u, (int)0x80000000u, (int)0x80000000u};
  for (long i = 0; i < n; i += 4) {
    v4f v = vload(x + i, n - i);
    v4i sign = (v4i)v & signbit;
    v4f a = (v4f)((v4i)v & ~signbit);
    v4f e = vexp(a * -2.0f); /* |x| > 44: e ~ 1e-35, t rounds to 1 */
    v4f t = (1.0f - e) / (1.0f + e);
    vstore(y + i, (v4f)((v4i)t | sign), n - i);
  }
}

static void sigmoid_fwd(const float *x, float *y, long n) {
  for (long i = 0; i < n; i += 4) {
    v4f v = vload(x + i, n - i);
    vstore(y + i, 1.0f / (1.0f + vexp(-v)), n - i);
  }
}

/* ------------------------------------------------------------------------------- creation */

static long spec_params(const qkd_net_spec *s, qkd_shape in, int implicit_flatten) {
  if (s->n_members > 0) {
    long t = 0;
    for (int i = 0; i < s->n_members; i++) {
      long p = spec_params(&s->members[i], in, implicit_flatten);
      if (p < 0) return -1;
      t += p;
    }
    return t;
  }
  return qkd_net_param_count(s->layers, s->n_layers, in, implicit_flatten);
}

static qkd_nn *create_in(const qkd_net_spec *spec, qkd_shape in, int implicit_flatten, int max_batch, float *params,
                         float *grads, char *err, size_t errlen);

static int alloc_scratch(qkd_nn *nn) {
  long cols = 0, tmp = 0, d = qkd_shape_size(nn->in);
  for (int i = 0; i < nn->n_layers; i++) {
    layer *l = &nn->layers[i];
    if (l->out_size > d) d = l->out_size;
    if (l->s.kind == QKD_LAYER_CONV) {
      long K = (long)l->in.c * l->s.kernel * l->s.kernel, P = (long)l->out.h * l->out.w;
      long per = K * P > (long)l->s.units * P ? K * P : (long)l->s.units * P;
      long nb = COLS_FLOATS / per;
      if (nb < 1) nb = 1;
      if (nb > nn->max_batch) nb = nn->max_batch;
      if (nb * K * P > cols) cols = nb * K * P;
      if (nb * l->s.units * P > tmp) tmp = nb * l->s.units * P;
    }
  }
  nn->cols_len = cols;
  nn->tmp_len = tmp;
  nn->d_len = d * nn->max_batch;
  nn->cols = malloc(sizeof(float) * (size_t)(cols + 1));
  nn->tmp = malloc(sizeof(float) * (size_t)(tmp + 1));
  nn->d0 = malloc(sizeof(float) * (size_t)nn->d_len);
  nn->d1 = malloc(sizeof(float) * (size_t)nn->d_len);
  return nn->cols && nn->tmp && nn->d0 && nn->d1 ? 0 : -1;
}

static qkd_nn *create_in(const qkd_net_spec *spec, qkd_shape in, int implicit_flatten, int max_batch, float *params,
                         float *grads, char *err, size_t errlen) {
  qkd_nn *nn = calloc(1, sizeof *nn);
  if (!nn) { snprintf(err, errlen, "out of memory"); return NULL; }
  nn->in = in;
  nn->max_batch = max_batch;
  nn->n_params = spec_params(spec, in, implicit_flatten);
  nn->params = params;
  nn->grads = grads;
  if (spec->n_members > 0) {
    nn->n_members = spec->n_members;
    nn->members = calloc((size_t)spec->n_members, sizeof(qkd_nn *));
    if (!nn->members) { snprintf(err, errlen, "out of memory"); qkd_nn_free(nn); return NULL; }
    long off = 0;
    for (int i = 0; i < spec->n_members; i++) {
      nn->members[i] = create_in(&spec->members[i], in, implicit_flatten, max_batch, params + off, grads + off, err, errlen);
      if (!nn->members[i]) { qkd_nn_free(nn); return NULL; }
      qkd_shape o = nn->members[i]->out;
      if (i > 0 && (o.c != nn->out.c || o.h != nn->out.h || o.w != nn->out.w)) {
        snprintf(err, errlen, "mean: member %d has %ld outputs but member 1 has %ld", i + 1, qkd_shape_size(o),
                 qkd_shape_size(nn->out));
        qkd_nn_free(nn);
        return NULL;
      }
      nn->out = o;
      off += nn->members[i]->n_params;
    }
    long osz = qkd_shape_size(nn->out);
    nn->mean_out = malloc(sizeof(float) * (size_t)(osz * max_batch));
    nn->dmember = malloc(sizeof(float) * (size_t)(osz * max_batch));
    nn->dx_accum = malloc(sizeof(float) * (size_t)(qkd_shape_size(in) * max_batch));
    if (!nn->mean_out || !nn->dmember || !nn->dx_accum) { snprintf(err, errlen, "out of memory"); qkd_nn_free(nn); return NULL; }
    return nn;
  }
  int n = spec->n_layers;
  qkd_shape *shapes = malloc(sizeof(qkd_shape) * (size_t)(n + 1));
  if (!shapes) { snprintf(err, errlen, "out of memory"); qkd_nn_free(nn); return NULL; }
  char why[200];
  int bad = qkd_net_shapes(spec->layers, n, in, implicit_flatten, shapes, &nn->out, why, sizeof why);
  if (bad >= 0) {
    snprintf(err, errlen, "%s: layer %d: %s", spec->name ? spec->name : "net", bad + 1, why);
    free(shapes);
    qkd_nn_free(nn);
    return NULL;
  }
  nn->n_layers = n;
  nn->layers = calloc((size_t)(n ? n : 1), sizeof(layer));
  if (!nn->layers) { free(shapes); snprintf(err, errlen, "out of memory"); qkd_nn_free(nn); return NULL; }
  long off = 0;
  qkd_shape cur = in;
  for (int i = 0; i < n; i++) {
    layer *l = &nn->layers[i];
    l->s = spec->layers[i];
    l->in = cur;
    l->out = shapes[i];
    l->in_size = qkd_shape_size(l->in);
    l->out_size = qkd_shape_size(l->out);
    if (l->s.kind == QKD_LAYER_CONV) {
      long wn = (long)l->s.units * l->in.c * l->s.kernel * l->s.kernel;
      l->w = params + off; l->dw = grads + off; off += wn;
      l->b = params + off; l->db = grads + off; off += l->s.units;
      l->n_params = wn + l->s.units;
    } else if (l->s.kind == QKD_LAYER_DENSE) {
      long wn = (long)l->s.units * l->in_size;
      l->w = params + off; l->dw = grads + off; off += wn;
      l->b = params + off; l->db = grads + off; off += l->s.units;
      l->n_params = wn + l->s.units;
    }
    size_t act = sizeof(float) * (size_t)(l->out_size * max_batch);
    if (l->s.kind != QKD_LAYER_FLATTEN) {
      l->y = malloc(act);
      if (!l->y) { free(shapes); snprintf(err, errlen, "out of memory (%zu bytes of activations)", act); qkd_nn_free(nn); return NULL; }
    }
    if (l->s.kind == QKD_LAYER_DROPOUT && !(l->aux = malloc(act))) { free(shapes); snprintf(err, errlen, "out of memory"); qkd_nn_free(nn); return NULL; }
    if (l->s.kind == QKD_LAYER_MAXPOOL && !(l->arg = malloc(sizeof(int) * (size_t)(l->out_size * max_batch)))) {
      free(shapes); snprintf(err, errlen, "out of memory"); qkd_nn_free(nn); return NULL;
    }
    cur = l->out;
  }
  free(shapes);
  if (alloc_scratch(nn) != 0) { snprintf(err, errlen, "out of memory"); qkd_nn_free(nn); return NULL; }
  return nn;
}

qkd_nn *qkd_nn_create(const qkd_net_spec *spec, qkd_shape in, int implicit_flatten, int max_batch, char *err,
                      size_t errlen) {
  if (max_batch < 1) { snprintf(err, errlen, "batch must be >= 1"); return NULL; }
  char why[200];
  qkd_shape out;
  if (spec->n_members == 0) {
    int bad = qkd_net_shapes(spec->layers, spec->n_layers, in, implicit_flatten, NULL, &out, why, sizeof why);
    if (bad >= 0) { snprintf(err, errlen, "%s: layer %d: %s", spec->name ? spec->name : "net", bad + 1, why); return NULL; }
  }
  long np = spec_params(spec, in, implicit_flatten);
  if (np < 0) { snprintf(err, errlen, "%s: a member's layers do not fit the input", spec->name ? spec->name : "net"); return NULL; }
  float *p = calloc((size_t)np + 1, sizeof(float)), *g = calloc((size_t)np + 1, sizeof(float));
  if (!p || !g) { free(p); free(g); snprintf(err, errlen, "out of memory (%ld parameters)", np); return NULL; }
  qkd_nn *nn = create_in(spec, in, implicit_flatten, max_batch, p, g, err, errlen);
  if (!nn) { free(p); free(g); return NULL; }
  nn->owns_blocks = 1;
  return nn;
}

void qkd_nn_free(qkd_nn *nn) {
  if (!nn) return;
  for (int i = 0; i < nn->n_members; i++) qkd_nn_free(nn->members ? nn->members[i] : NULL);
  free(nn->members);
  for (int i = 0; i < nn->n_layers; i++) {
    if (nn->layers[i].s.kind != QKD_LAYER_FLATTEN) free(nn->layers[i].y); /* flatten aliases */
    free(nn->layers[i].aux);
    free(nn->layers[i].arg);
  }
  free(nn->layers);
  free(nn->mean_out);
  free(nn->dmember);
  free(nn->dx_accum);
  free(nn->cols);
  free(nn->tmp);
  free(nn->d0);
  free(nn->d1);
  if (nn->owns_blocks) {
    free(nn->params);
    free(nn->grads);
  }
  free(nn);
}

long qkd_nn_param_count(const qkd_nn *nn) { return nn->n_params; }
float *qkd_nn_params(qkd_nn *nn) { return nn->params; }
float *qkd_nn_grads(qkd_nn *nn) { return nn->grads; }
qkd_shape qkd_nn_out(const qkd_nn *nn) { return nn->out; }
int qkd_nn_max_batch(const qkd_nn *nn) { return nn->max_batch; }
void qkd_nn_zero_grad(qkd_nn *nn) { memset(nn->grads, 0, sizeof(float) * (size_t)nn->n_params); }

static void init_rec(qkd_nn *nn, uint64_t seed, float *base) {
  nn->seed = seed;
  for (int i = 0; i < nn->n_members; i++) init_rec(nn->members[i], seed, base);
  for (int i = 0; i < nn->n_layers; i++) {
    layer *l = &nn->layers[i];
    if (!l->w) continue;
    long fan_in = l->s.kind == QKD_LAYER_CONV ? (long)l->in.c * l->s.kernel * l->s.kernel : l->in_size;
    double bound = 1.0 / sqrt((double)fan_in);
    for (long j = 0; j < l->n_params; j++) {
      long gi = (l->w - base) + j; /* w and b are adjacent */
      l->w[j] = (float)((2.0 * qkd_rng_uniform(seed, QKD_STREAM_INIT, (uint64_t)gi) - 1.0) * bound);
    }
  }
}

void qkd_nn_init(qkd_nn *nn, uint64_t seed) { init_rec(nn, seed, nn->params); }

/* ---------------------------------------------------------------------------------- conv */

/* cols[K][nb*P] for samples x[0..nb) */
static void im2col(const float *x, int nb, qkd_shape in, int k, int stride, int pad, qkd_shape out, float *cols) {
  long P = (long)out.h * out.w, NP = nb * P;
  long in_size = qkd_shape_size(in);
  for (int c = 0; c < in.c; c++)
    for (int ki = 0; ki < k; ki++)
      for (int kj = 0; kj < k; kj++) {
        float *row = cols + ((long)(c * k + ki) * k + kj) * NP;
        for (int s = 0; s < nb; s++) {
          const float *xs = x + s * in_size + (long)c * in.h * in.w;
          float *rs = row + s * P;
          for (int oh = 0; oh < out.h; oh++) {
            int ih = oh * stride - pad + ki;
            float *ro = rs + (long)oh * out.w;
            if (ih < 0 || ih >= in.h) { memset(ro, 0, sizeof(float) * (size_t)out.w); continue; }
            const float *xr = xs + (long)ih * in.w;
            if (stride == 1) {
              int lo = pad - kj, hi = in.w + pad - kj; /* ow range with 0 <= iw < in.w */
              if (lo < 0) lo = 0;
              if (hi > out.w) hi = out.w;
              for (int ow = 0; ow < lo && ow < out.w; ow++) ro[ow] = 0;
              const float *xs_ = xr - pad + kj; /* rows are short: a loop beats a memcpy call */
              for (int ow = lo; ow < hi; ow++) ro[ow] = xs_[ow];
              for (int ow = hi > lo ? hi : lo; ow < out.w; ow++) ro[ow] = 0;
            } else {
              for (int ow = 0; ow < out.w; ow++) {
                int iw = ow * stride - pad + kj;
                ro[ow] = iw >= 0 && iw < in.w ? xr[iw] : 0.0f;
              }
            }
          }
        }
      }
}

/* dx += col2im(dcols) */
static void col2im(const float *cols, int nb, qkd_shape in, int k, int stride, int pad, qkd_shape out, float *dx) {
  long P = (long)out.h * out.w, NP = nb * P;
  long in_size = qkd_shape_size(in);
  for (int c = 0; c < in.c; c++)
    for (int ki = 0; ki < k; ki++)
      for (int kj = 0; kj < k; kj++) {
        const float *row = cols + ((long)(c * k + ki) * k + kj) * NP;
        for (int s = 0; s < nb; s++) {
          float *xs = dx + s * in_size + (long)c * in.h * in.w;
          const float *rs = row + s * P;
          for (int oh = 0; oh < out.h; oh++) {
            int ih = oh * stride - pad + ki;
            if (ih < 0 || ih >= in.h) continue;
            float *xr = xs + (long)ih * in.w;
            const float *ro = rs + (long)oh * out.w;
            for (int ow = 0; ow < out.w; ow++) {
              int iw = ow * stride - pad + kj;
              if (iw >= 0 && iw < in.w) xr[iw] += ro[ow];
            }
          }
        }
      }
}

static int conv_chunk(const qkd_nn *nn, const layer *l) {
  long K = (long)l->in.c * l->s.kernel * l->s.kernel, P = (long)l->out.h * l->out.w;
  long per = K * P > (long)l->s.units * P ? K * P : (long)l->s.units * P;
  long nb = COLS_FLOATS / per;
  if (nb < 1) nb = 1;
  if (nb > nn->max_batch) nb = nn->max_batch;
  return (int)nb;
}

static void conv_fwd(qkd_nn *nn, layer *l, const float *x, int batch) {
  int F = l->s.units, k = l->s.kernel;
  long K = (long)l->in.c * k * k, P = (long)l->out.h * l->out.w;
  int chunk = conv_chunk(nn, l);
  for (int s0 = 0; s0 < batch; s0 += chunk) {
    int nb = batch - s0 < chunk ? batch - s0 : chunk;
    im2col(x + s0 * l->in_size, nb, l->in, k, l->s.stride, l->s.padding, l->out, nn->cols);
    float *dst = nb == 1 ? l->y + s0 * l->out_size : nn->tmp;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, F, (int)(nb * P), (int)K, 1.0f, l->w, (int)K, nn->cols,
                (int)(nb * P), 0.0f, dst, (int)(nb * P));
    for (int s = 0; s < nb; s++) {
      float *ys = l->y + (s0 + s) * l->out_size;
      for (int f = 0; f < F; f++) {
        const float *src = dst + (long)f * nb * P + s * P;
        float *yf = ys + (long)f * P, bf = l->b[f];
        for (long p = 0; p < P; p++) yf[p] = src[p] + bf;
      }
    }
  }
}

static void conv_bwd(qkd_nn *nn, layer *l, const float *x, const float *dy, float *dx, int batch) {
  int F = l->s.units, k = l->s.kernel;
  long K = (long)l->in.c * k * k, P = (long)l->out.h * l->out.w;
  int chunk = conv_chunk(nn, l);
  if (dx) memset(dx, 0, sizeof(float) * (size_t)(batch * l->in_size));
  for (int s0 = 0; s0 < batch; s0 += chunk) {
    int nb = batch - s0 < chunk ? batch - s0 : chunk;
    long NP = nb * P;
    /* tmp[F][nb*P] <- dy in the cols layout; bias grads */
    for (int s = 0; s < nb; s++) {
      const float *ds = dy + (s0 + s) * l->out_size;
      for (int f = 0; f < F; f++) {
        const float *src = ds + (long)f * P;
        float *t = nn->tmp + (long)f * NP + s * P, acc = 0;
        for (long p = 0; p < P; p++) { t[p] = src[p]; acc += src[p]; }
        l->db[f] += acc;
      }
    }
    im2col(x + s0 * l->in_size, nb, l->in, k, l->s.stride, l->s.padding, l->out, nn->cols);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, F, (int)K, (int)NP, 1.0f, nn->tmp, (int)NP, nn->cols,
                (int)NP, 1.0f, l->dw, (int)K);
    if (dx) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)NP, F, 1.0f, l->w, (int)K, nn->tmp, (int)NP,
                  0.0f, nn->cols, (int)NP);
      col2im(nn->cols, nb, l->in, k, l->s.stride, l->s.padding, l->out, dx + s0 * l->in_size);
    }
  }
}

/* --------------------------------------------------------------------------------- pools */

static void pool_fwd(layer *l, const float *x, int batch) {
  int k = l->s.units, max = l->s.kind == QKD_LAYER_MAXPOOL;
  int H = l->in.h, W = l->in.w, Ho = l->out.h, Wo = l->out.w;
  float inv = 1.0f / (float)(k * k);
  for (long sc = 0; sc < (long)batch * l->in.c; sc++) {
    const float *xp = x + sc * H * W;
    float *yp = l->y + sc * Ho * Wo;
    int *ap = max ? l->arg + sc * Ho * Wo : NULL;
    for (int oh = 0; oh < Ho; oh++)
      for (int ow = 0; ow < Wo; ow++) {
        int base = oh * k * W + ow * k;
        if (max) {
          int best = base;
          float bv = xp[base];
          for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
              int q = base + i * W + j;
              if (xp[q] > bv) { bv = xp[q]; best = q; }
            }
          yp[oh * Wo + ow] = bv;
          ap[oh * Wo + ow] = best;
        } else {
          float acc = 0;
          for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) acc += xp[base + i * W + j];
          yp[oh * Wo + ow] = acc * inv;
        }
      }
  }
}

static void pool_bwd(layer *l, const float *dy, float *dx, int batch) {
  int k = l->s.units, max = l->s.kind == QKD_LAYER_MAXPOOL;
  int H = l->in.h, W = l->in.w, Ho = l->out.h, Wo = l->out.w;
  float inv = 1.0f / (float)(k * k);
  memset(dx, 0, sizeof(float) * (size_t)(batch * l->in_size));
  for (long sc = 0; sc < (long)batch * l->in.c; sc++) {
    float *xp = dx + sc * H * W;
    const float *dp = dy + sc * Ho * Wo;
    if (max) {
      const int *ap = l->arg + sc * Ho * Wo;
      for (int o = 0; o < Ho * Wo; o++) xp[ap[o]] += dp[o];
    } else {
      for (int oh = 0; oh < Ho; oh++)
        for (int ow = 0; ow < Wo; ow++) {
          float g = dp[oh * Wo + ow] * inv;
          int base = oh * k * W + ow * k;
          for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) xp[base + i * W + j] += g;
        }
    }
  }
}

/* ------------------------------------------------------------------------- forward/backward */

static const float *list_forward(qkd_nn *nn, const float *x, int batch, int training, uint64_t step) {
  const float *cur = x;
  for (int i = 0; i < nn->n_layers; i++) {
    layer *l = &nn->layers[i];
    long n = (long)batch * l->out_size;
    switch (l->s.kind) {
    case QKD_LAYER_CONV: conv_fwd(nn, l, cur, batch); break;
    case QKD_LAYER_MAXPOOL:
    case QKD_LAYER_AVGPOOL: pool_fwd(l, cur, batch); break;
    case QKD_LAYER_DENSE:
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, l->s.units, (int)l->in_size, 1.0f, cur,
                  (int)l->in_size, l->w, (int)l->in_size, 0.0f, l->y, l->s.units);
      for (int s = 0; s < batch; s++) {
        float *ys = l->y + (long)s * l->s.units;
        for (int u = 0; u < l->s.units; u++) ys[u] += l->b[u];
      }
      break;
    case QKD_LAYER_FLATTEN: l->y = (float *)cur; break;
    case QKD_LAYER_RELU:
      for (long j = 0; j < n; j++) l->y[j] = cur[j] > 0 ? cur[j] : 0.0f;
      break;
    case QKD_LAYER_TANH: tanh_fwd(cur, l->y, n); break;
    case QKD_LAYER_SIGMOID: sigmoid_fwd(cur, l->y, n); break;
    case QKD_LAYER_SCALE: {
      float c = (float)l->s.value;
      for (long j = 0; j < n; j++) l->y[j] = cur[j] * c;
      break;
    }
    case QKD_LAYER_DROPOUT:
      if (!training || l->s.value <= 0.0) {
        for (long j = 0; j < n; j++) l->aux[j] = 1.0f;
      } else {
        double p = l->s.value;
        float keep = (float)(1.0 / (1.0 - p));
        for (int s = 0; s < batch; s++) {
          /* one key per (step, layer, sample): element e draws counter key + e */
          uint64_t key = qkd_rng_mix(qkd_rng_mix(step * 4096u + (uint64_t)i) ^ (uint64_t)s) << 24;
          float *m = l->aux + (long)s * l->out_size;
          for (long e = 0; e < l->out_size; e++)
            m[e] = qkd_rng_uniform(nn->seed, QKD_STREAM_DROPOUT, key + (uint64_t)e) >= p ? keep : 0.0f;
        }
      }
      for (long j = 0; j < n; j++) l->y[j] = cur[j] * l->aux[j];
      break;
    default: break;
    }
    cur = l->y;
  }
  return cur;
}

const float *qkd_nn_forward(qkd_nn *nn, const float *x, int batch, int training, uint64_t step) {
  if (batch < 1 || batch > nn->max_batch) return NULL;
  nn->x = x;
  nn->batch = batch;
  nn->step = step;
  if (nn->n_members == 0) return nn->n_layers ? list_forward(nn, x, batch, training, step) : x;
  long osz = qkd_shape_size(nn->out) * batch;
  float inv = 1.0f / (float)nn->n_members;
  for (int m = 0; m < nn->n_members; m++) {
    const float *o = qkd_nn_forward(nn->members[m], x, batch, training, step * 64u + (uint64_t)m);
    for (long j = 0; j < osz; j++) nn->mean_out[j] = (m ? nn->mean_out[j] : 0.0f) + o[j] * inv;
  }
  return nn->mean_out;
}

static void list_backward(qkd_nn *nn, const float *dout, float *dx) {
  int batch = nn->batch;
  const float *dy = dout;
  for (int i = nn->n_layers - 1; i >= 0; i--) {
    layer *l = &nn->layers[i];
    const float *xin = i ? nn->layers[i - 1].y : nn->x;
    int need_dx = i > 0 || dx;
    float *d = i == 0 ? dx : (dy == nn->d0 ? nn->d1 : nn->d0);
    long n = (long)batch * l->out_size;
    switch (l->s.kind) {
    case QKD_LAYER_CONV: conv_bwd(nn, l, xin, dy, need_dx ? d : NULL, batch); break;
    case QKD_LAYER_MAXPOOL:
    case QKD_LAYER_AVGPOOL:
      if (need_dx) pool_bwd(l, dy, d, batch);
      break;
    case QKD_LAYER_DENSE: {
      int U = l->s.units, In = (int)l->in_size;
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, U, In, batch, 1.0f, dy, U, xin, In, 1.0f, l->dw, In);
      for (int s = 0; s < batch; s++)
        for (int u = 0; u < U; u++) l->db[u] += dy[(long)s * U + u];
      if (need_dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, batch, In, U, 1.0f, dy, U, l->w, In, 0.0f, d, In);
      break;
    }
    case QKD_LAYER_FLATTEN: /* the gradient passes through unchanged */
      if (i == 0 && dx) memcpy(dx, dy, sizeof(float) * (size_t)n);
      continue;
    case QKD_LAYER_RELU:
      if (need_dx) for (long j = 0; j < n; j++) d[j] = l->y[j] > 0 ? dy[j] : 0.0f;
      break;
    case QKD_LAYER_TANH:
      if (need_dx) for (long j = 0; j < n; j++) d[j] = dy[j] * (1.0f - l->y[j] * l->y[j]);
      break;
    case QKD_LAYER_SIGMOID:
      if (need_dx) for (long j = 0; j < n; j++) d[j] = dy[j] * l->y[j] * (1.0f - l->y[j]);
      break;
    case QKD_LAYER_SCALE: {
      float c = (float)l->s.value;
      if (need_dx) for (long j = 0; j < n; j++) d[j] = dy[j] * c;
      break;
    }
    case QKD_LAYER_DROPOUT:
      if (need_dx) for (long j = 0; j < n; j++) d[j] = dy[j] * l->aux[j];
      break;
    default: break;
    }
    if (!need_dx) break;
    dy = d;
  }
}

void qkd_nn_backward(qkd_nn *nn, const float *dout, float *dx) {
  int batch = nn->batch;
  if (nn->n_members == 0) {
    if (nn->n_layers == 0) {
      if (dx) memcpy(dx, dout, sizeof(float) * (size_t)(batch * qkd_shape_size(nn->in)));
      return;
    }
    list_backward(nn, dout, dx);
    return;
  }
  long osz = qkd_shape_size(nn->out) * batch, isz = qkd_shape_size(nn->in) * batch;
  float inv = 1.0f / (float)nn->n_members;
  for (long j = 0; j < osz; j++) nn->dmember[j] = dout[j] * inv;
  if (dx) memset(dx, 0, sizeof(float) * (size_t)isz);
  for (int m = 0; m < nn->n_members; m++) {
    qkd_nn_backward(nn->members[m], nn->dmember, dx ? nn->dx_accum : NULL);
    if (dx) for (long j = 0; j < isz; j++) dx[j] += nn->dx_accum[j];
  }
}
