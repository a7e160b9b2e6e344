/* nn.c — layers, nets (lists and `mean`), forward and backward of qkd_nn.h. */
#include "qkd_nn.h"
#include "qkd_par.h"
#include "qkd_rng.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* im2col scratch per thread (floats): a conv processes as many samples at once as fit (1 MB:
 * the chunk's columns stay in L2 between the im2col and the GEMM; see conv_chunk). */
#define COLS_FLOATS (1L << 18)
/* Batch slicing over threads (see slices_for): only nets with at most this many parameters
 * (each extra thread has its own gradient block) and batches of at least this many MACs. */
#define SPLIT_MAX_PARAMS (4L << 20)
#define SPLIT_MIN_MACS 8e6
/* A sliced pass always has this many slices, on however many threads (one slice after the other
 * on one): the gradient is the same sum of the same per-slice blocks, so training gives the same
 * bits at every thread count. 2 = the cores of the machines qkd runs on here. */
#define SPLIT_SLICES 2
#define QKD_NN_MAX_THREADS 16

typedef struct {
  qkd_layer_spec s;
  qkd_shape in, out;
  long in_size, out_size;  /* per sample */
  long n_params;
  float *w, *b, *dw, *db;  /* into the net's blocks */
  float *y;                /* [max_batch][out_size]; flatten aliases its input */
  float *aux;              /* dropout: mask [max_batch][out_size] */
  int *arg;                /* maxpool: argmax [max_batch][out_size] (index in the input sample) */
  /* batchnorm: w = gamma, b = beta [C]; rm, rv = running mean and variance [C] in the state
   * block; per-sample partial sums [max_batch][2C]; the training batch's mean and 1/sqrt(var +
   * eps) [C] (kept for backward); the backward's reduced sums / count [2C] */
  float *rm, *rv;
  double *part, *bmean, *bistd, *gsum;
} layer;

/* one thread's scratch: im2col columns, GEMM output, and (threads > 0) a private gradient block */
typedef struct {
  float *cols, *tmp, *grads;
} work;

struct qkd_nn {
  qkd_shape in, out;
  int max_batch;
  long n_params, n_state;
  float *params, *grads, *state;
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
  int training;            /* the last forward was in training mode */
  int slices;              /* batch slices (threads) of the last forward */
  double macs;             /* multiply-adds per sample, forward */
  /* scratch: work[0] is the caller's; work[t > 0] are allocated when threads first slice a batch */
  work work[QKD_NN_MAX_THREADS];
  float *d0, *d1;          /* [max_batch][d_stride] backward ping-pong (a slice owns its rows) */
  long cols_len, tmp_len, d_stride;
};

static int g_threads = 1;
static int g_sliced; /* a sliced pass is running: its GEMMs are one single-threaded call each */

/* OpenBLAS always runs single-threaded: its results change with its thread count, so every
 * parallel GEMM is qkd's own split (gemm below), fixed by the matrix sizes alone. */
void qkd_nn_set_threads(int n) {
  g_threads = n < 1 ? 1 : n > QKD_NN_MAX_THREADS ? QKD_NN_MAX_THREADS : n;
  openblas_set_num_threads(1);
}

int qkd_nn_get_threads(void) { return g_threads; }

/* ------------------------------------------------------------------------- fast exp / tanh */

/* e^x for x in [-80, 88] (clamped: results stay normal floats, never slow denormals), relative error ~2e-7, four lanes at a time with GCC/Clang
 * vector extensions (plain SSE2 code on x86-64). Cephes' polynomial after x = n ln2 + r. */
typedef float v4f __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));

/* Eight-lane code (vexp8, tanh/sigmoid, the direct conv kernels) is compiled for AVX2+FMA
 * (QKD_AVX2) and chosen at run time (g_avx2); the baseline builds stay the fallback. */
typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define QKD_X86_DISPATCH 1
#if defined(__clang__)
#define QKD_AVX2 __attribute__((target("avx2,fma")))
#else
#define QKD_AVX2 __attribute__((target("avx2,fma"), optimize("fp-contract=fast")))
#endif
#else
#define QKD_X86_DISPATCH 0
#endif
#define QKD_INLINE static inline __attribute__((always_inline))

/* one body for both widths (VF/VI: float and int vectors of one size) */
#define QKD_DEFINE_VEXP(ATTR, NAME, VF, VI)                                                            \
  ATTR static inline VF NAME(VF x) {                                                                  \
    const VF lo = (VF){0} - 80.0f, hi = (VF){0} + 88.0f;                                             \
    VI m = x < lo;                                                                                     \
    x = (VF)((m & (VI)lo) | (~m & (VI)x));                                                             \
    m = x > hi;                                                                                        \
    x = (VF)((m & (VI)hi) | (~m & (VI)x));                                                             \
    VF t = x * 1.44269504088896341f;                                                                   \
    VF fn = (t + 12582912.0f) - 12582912.0f; /* round to nearest */                                    \
    VF r = x - fn * 0.693359375f + fn * 2.12194440e-4f;                                                \
    VF p = r * 1.9875691500E-4f + 1.3981999507E-3f;                                                    \
    p = p * r + 8.3334519073E-3f;                                                                      \
    p = p * r + 4.1665795894E-2f;                                                                      \
    p = p * r + 1.6666665459E-1f;                                                                      \
    p = p * r + 5.0000001201E-1f;                                                                      \
    p = p * r * r + r + 1.0f;                                                                          \
    VI n = __builtin_convertvector(fn, VI);                                                            \
    return p * (VF)((n + 127) << 23);                                                                  \
  }
QKD_DEFINE_VEXP(, vexp, v4f, v4i)
#if QKD_X86_DISPATCH
QKD_DEFINE_VEXP(QKD_AVX2, vexp8, v8f, v8i)
#endif

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

static int g_avx2; /* set by alloc_scratch (before any thread runs); QKD_NN_SIMD=0 turns it off */

#if QKD_X86_DISPATCH
/* tanh_fwd / sigmoid_fwd eight lanes at a time (same maths) */
QKD_AVX2 static void tanh_fwd_avx2(const float *x, float *y, long n) {
  long i = 0;
  for (; i + 8 <= n; i += 8) {
    v8f v;
    memcpy(&v, x + i, 32);
    v8i sign = (v8i)v & (int)0x80000000u;
    v8f a = (v8f)((v8i)v & 0x7fffffff);
    v8f e = vexp8(a * -2.0f);
    v8f t = (1.0f - e) / (1.0f + e);
    t = (v8f)((v8i)t | sign);
    memcpy(y + i, &t, 32);
  }
  if (i < n) tanh_fwd(x + i, y + i, n - i);
}

QKD_AVX2 static void sigmoid_fwd_avx2(const float *x, float *y, long n) {
  long i = 0;
  for (; i + 8 <= n; i += 8) {
    v8f v;
    memcpy(&v, x + i, 32);
    v8f t = 1.0f / (1.0f + vexp8(-v));
    memcpy(y + i, &t, 32);
  }
  if (i < n) sigmoid_fwd(x + i, y + i, n - i);
}
#endif

/* ------------------------------------------------------------------------------- creation */

/* trainable parameters (state = 0) or state values (state = 1) of a spec, members included */
static long spec_count(const qkd_net_spec *s, qkd_shape in, int implicit_flatten, int state) {
  if (s->n_members > 0) {
    long t = 0;
    for (int i = 0; i < s->n_members; i++) {
      long p = spec_count(&s->members[i], in, implicit_flatten, state);
      if (p < 0) return -1;
      t += p;
    }
    return t;
  }
  return state ? qkd_net_state_count(s->layers, s->n_layers, in, implicit_flatten)
               : qkd_net_param_count(s->layers, s->n_layers, in, implicit_flatten);
}
static long spec_params(const qkd_net_spec *s, qkd_shape in, int implicit_flatten) { return spec_count(s, in, implicit_flatten, 0); }
static long spec_state(const qkd_net_spec *s, qkd_shape in, int implicit_flatten) { return spec_count(s, in, implicit_flatten, 1); }

/* The shapes of a plain spec's layers (out may be NULL) and its output; -1 with err filled,
 * "NET: layer I: why", when a layer does not fit its input. */
static int spec_shapes(const qkd_net_spec *spec, qkd_shape in, int implicit_flatten, qkd_shape *out, qkd_shape *result,
                       qkd_error *err) {
  qkd_error why;
  int bad = qkd_net_shapes(spec->layers, spec->n_layers, in, implicit_flatten, out, result, &why);
  if (bad < 0) return 0;
  return qkd_fail(err, why.kind, NULL, "%s: layer %d: %s", spec->name ? spec->name : "net", bad + 1, why.msg);
}

static qkd_nn *create_in(const qkd_net_spec *spec, qkd_shape in, int implicit_flatten, int max_batch, float *params,
                         float *grads, float *state, qkd_error *err);

static int conv_chunk(int max_batch, const layer *l);
static void detect_simd(void);
static int direct_ok(const layer *l);
static long direct_pad_len(const layer *l);
static int direct_dx_ok(const layer *l);
static long direct_dzp_len(const layer *l);

static int alloc_scratch(qkd_nn *nn) {
  long cols = 0, tmp = 0, d = qkd_shape_size(nn->in);
  double macs = 0;
  detect_simd();
  for (int i = 0; i < nn->n_layers; i++) {
    layer *l = &nn->layers[i];
    if (l->out_size > d) d = l->out_size;
    macs += (double)l->out_size;
    if (l->s.kind == QKD_LAYER_CONV) {
      long K = (long)l->in.c * l->s.kernel * l->s.kernel, P = (long)l->out.h * l->out.w;
      long nb = conv_chunk(nn->max_batch, l);
      if (nb * K * P > cols) cols = nb * K * P;
      if (nb * l->s.units * P > tmp) tmp = nb * l->s.units * P;
      if (direct_ok(l) && nb * direct_pad_len(l) > cols) cols = nb * direct_pad_len(l);
      if (direct_dx_ok(l) && direct_dzp_len(l) > cols) cols = direct_dzp_len(l);
      macs += (double)K * (double)l->out_size;
    } else if (l->s.kind == QKD_LAYER_DENSE) {
      macs += (double)l->in_size * (double)l->out_size;
    }
  }
  nn->macs = macs;
  nn->cols_len = cols;
  nn->tmp_len = tmp;
  nn->d_stride = d;
  nn->work[0].cols = malloc(sizeof(float) * (size_t)(cols + 1));
  nn->work[0].tmp = malloc(sizeof(float) * (size_t)(tmp + 8)); /* + 8: direct_dw's 8-lane loads */
  nn->d0 = malloc(sizeof(float) * (size_t)(d * nn->max_batch));
  nn->d1 = malloc(sizeof(float) * (size_t)(d * nn->max_batch));
  return nn->work[0].cols && nn->work[0].tmp && nn->d0 && nn->d1 ? 0 : -1;
}

static qkd_nn *create_in(const qkd_net_spec *spec, qkd_shape in, int implicit_flatten, int max_batch, float *params,
                         float *grads, float *state, qkd_error *err) {
  qkd_nn *nn = calloc(1, sizeof *nn);
  if (!nn) { qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory"); return NULL; }
  nn->in = in;
  nn->max_batch = max_batch;
  nn->n_params = spec_params(spec, in, implicit_flatten);
  nn->n_state = spec_state(spec, in, implicit_flatten);
  nn->params = params;
  nn->grads = grads;
  nn->state = state;
  if (spec->n_members > 0) {
    nn->n_members = spec->n_members;
    nn->members = calloc((size_t)spec->n_members, sizeof(qkd_nn *));
    if (!nn->members) { qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory"); qkd_nn_free(nn); return NULL; }
    long off = 0, soff = 0;
    for (int i = 0; i < spec->n_members; i++) {
      nn->members[i] = create_in(&spec->members[i], in, implicit_flatten, max_batch, params + off, grads + off,
                                 state + soff, err);
      if (!nn->members[i]) { qkd_nn_free(nn); return NULL; }
      qkd_shape o = nn->members[i]->out;
      if (i > 0 && (o.c != nn->out.c || o.h != nn->out.h || o.w != nn->out.w)) {
        qkd_fail(err, QKD_ERR_INPUT, NULL, "mean: member %d has %ld outputs but member 1 has %ld", i + 1, qkd_shape_size(o),
                 qkd_shape_size(nn->out));
        qkd_nn_free(nn);
        return NULL;
      }
      nn->out = o;
      off += nn->members[i]->n_params;
      soff += nn->members[i]->n_state;
    }
    long osz = qkd_shape_size(nn->out);
    nn->mean_out = malloc(sizeof(float) * (size_t)(osz * max_batch));
    nn->dmember = malloc(sizeof(float) * (size_t)(osz * max_batch));
    nn->dx_accum = malloc(sizeof(float) * (size_t)(qkd_shape_size(in) * max_batch));
    if (!nn->mean_out || !nn->dmember || !nn->dx_accum) { qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory"); qkd_nn_free(nn); return NULL; }
    return nn;
  }
  int n = spec->n_layers;
  qkd_shape *shapes = malloc(sizeof(qkd_shape) * (size_t)(n + 1));
  if (!shapes) { qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory"); qkd_nn_free(nn); return NULL; }
  if (spec_shapes(spec, in, implicit_flatten, shapes, &nn->out, err) != 0) {
    free(shapes);
    qkd_nn_free(nn);
    return NULL;
  }
  nn->n_layers = n;
  nn->layers = calloc((size_t)(n ? n : 1), sizeof(layer));
  if (!nn->layers) { free(shapes); qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory"); qkd_nn_free(nn); return NULL; }
  long off = 0, soff = 0;
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
    } else if (l->s.kind == QKD_LAYER_BATCHNORM) {
      long C = l->in.c;
      l->w = params + off; l->dw = grads + off; off += C;
      l->b = params + off; l->db = grads + off; off += C;
      l->n_params = 2 * C;
      l->rm = state + soff; soff += C;
      l->rv = state + soff; soff += C;
      l->part = malloc(sizeof(double) * (size_t)(2 * C * max_batch));
      l->bmean = malloc(sizeof(double) * (size_t)C);
      l->bistd = malloc(sizeof(double) * (size_t)C);
      l->gsum = malloc(sizeof(double) * (size_t)(2 * C));
      if (!l->part || !l->bmean || !l->bistd || !l->gsum) { free(shapes); qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory"); qkd_nn_free(nn); return NULL; }
    }
    size_t act = sizeof(float) * (size_t)(l->out_size * max_batch);
    if (l->s.kind != QKD_LAYER_FLATTEN) {
      l->y = malloc(act);
      if (!l->y) { free(shapes); qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory (%zu bytes of activations)", act); qkd_nn_free(nn); return NULL; }
    }
    if (l->s.kind == QKD_LAYER_DROPOUT && !(l->aux = malloc(act))) { free(shapes); qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory"); qkd_nn_free(nn); return NULL; }
    if (l->s.kind == QKD_LAYER_MAXPOOL && !(l->arg = malloc(sizeof(int) * (size_t)(l->out_size * max_batch)))) {
      free(shapes); qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory"); qkd_nn_free(nn); return NULL;
    }
    cur = l->out;
  }
  free(shapes);
  if (alloc_scratch(nn) != 0) { qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory"); qkd_nn_free(nn); return NULL; }
  return nn;
}

qkd_nn *qkd_nn_create(const qkd_net_spec *spec, qkd_shape in, int implicit_flatten, int max_batch, qkd_error *err) {
  openblas_set_num_threads(1); /* also for callers that never set a thread count (see qkd_nn_set_threads) */
  if (max_batch < 1) { qkd_fail(err, QKD_ERR_INPUT, NULL, "batch must be >= 1"); return NULL; }
  qkd_shape out;
  if (spec->n_members == 0 && spec_shapes(spec, in, implicit_flatten, NULL, &out, err) != 0) return NULL;
  long np = spec_params(spec, in, implicit_flatten), ns = spec_state(spec, in, implicit_flatten);
  if (np < 0 || ns < 0) { qkd_fail(err, QKD_ERR_INPUT, NULL, "%s: a member's layers do not fit the input", spec->name ? spec->name : "net"); return NULL; }
  float *p = calloc((size_t)np + 1, sizeof(float)), *g = calloc((size_t)np + 1, sizeof(float));
  float *st = calloc((size_t)ns + 1, sizeof(float));
  if (!p || !g || !st) { free(p); free(g); free(st); qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory (%ld parameters)", np); return NULL; }
  qkd_nn *nn = create_in(spec, in, implicit_flatten, max_batch, p, g, st, err);
  if (!nn) { free(p); free(g); free(st); return NULL; }
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
    free(nn->layers[i].part);
    free(nn->layers[i].bmean);
    free(nn->layers[i].bistd);
    free(nn->layers[i].gsum);
  }
  free(nn->layers);
  free(nn->mean_out);
  free(nn->dmember);
  free(nn->dx_accum);
  for (int t = 0; t < QKD_NN_MAX_THREADS; t++) {
    free(nn->work[t].cols);
    free(nn->work[t].tmp);
    free(nn->work[t].grads);
  }
  free(nn->d0);
  free(nn->d1);
  if (nn->owns_blocks) {
    free(nn->params);
    free(nn->grads);
    free(nn->state);
  }
  free(nn);
}

long qkd_nn_param_count(const qkd_nn *nn) { return nn->n_params; }
float *qkd_nn_params(qkd_nn *nn) { return nn->params; }
float *qkd_nn_grads(qkd_nn *nn) { return nn->grads; }
long qkd_nn_state_count(const qkd_nn *nn) { return nn->n_state; }
float *qkd_nn_state(qkd_nn *nn) { return nn->state; }
qkd_shape qkd_nn_out(const qkd_nn *nn) { return nn->out; }
int qkd_nn_max_batch(const qkd_nn *nn) { return nn->max_batch; }
void qkd_nn_zero_grad(qkd_nn *nn) { memset(nn->grads, 0, sizeof(float) * (size_t)nn->n_params); }

static void init_rec(qkd_nn *nn, uint64_t seed, float *base) {
  nn->seed = seed;
  for (int i = 0; i < nn->n_members; i++) init_rec(nn->members[i], seed, base);
  for (int i = 0; i < nn->n_layers; i++) {
    layer *l = &nn->layers[i];
    if (l->s.kind == QKD_LAYER_BATCHNORM) { /* gamma 1, beta 0; running mean 0, variance 1 */
      for (long c = 0; c < l->in.c; c++) l->w[c] = 1.0f, l->b[c] = 0.0f, l->rm[c] = 0.0f, l->rv[c] = 1.0f;
      continue;
    }
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
            if (stride == 1) { /* the ow range with 0 <= iw < in.w: one branch-free (vectorised) loop */
              int lo = pad - kj, hi = in.w + pad - kj;
              if (lo < 0) lo = 0;
              if (hi > out.w) hi = out.w;
              float *xs_ = xr - pad + kj;
              for (int ow = lo; ow < hi; ow++) xs_[ow] += ro[ow];
              continue;
            }
            for (int ow = 0; ow < out.w; ow++) {
              int iw = ow * stride - pad + kj;
              if (iw >= 0 && iw < in.w) xr[iw] += ro[ow];
            }
          }
        }
      }
}

/* ---------------------------------------------------------------------- direct conv (stride 1) */

/* A stride-1 conv with few input taps (C*k*k <= DIRECT_MAX_TAPS) skips im2col: each sample's
 * input is copied into a zero-padded scratch (rows of Wq = Wo8 + k - 1 floats, Wo8 = Wo rounded
 * up to 8, so every 8-lane load stays in bounds) and the kernels below run 8 output columns at a
 * time with register tiles: forward 4 filters x 2 output rows, weight gradient 2 filters x the k
 * kernel columns. The input gradient is direct for Wo <= 8 and k 3 or 5 (ddx_rows), else the GEMM +
 * col2im. The bodies are compiled twice: with
 * AVX2+FMA (picked at run time by __builtin_cpu_supports) and for the baseline ISA. Past ~200
 * taps im2col + sgemm wins (32 -> 64 channels, 3x3: 288 taps, 11-15% less CPU time per training
 * image that way); LeNet's convs (25, 150) stay direct. */
#define DIRECT_MAX_TAPS 200


int qkd_nn_simd(void) {
  const char *e = getenv("QKD_NN_SIMD");
  int level = 0;
#if QKD_X86_DISPATCH
  if (!(e && e[0] == '0')) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx")) level = 1;
    if (level && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) level = 2;
  }
#else
  (void)e;
#endif
  return level;
}

static void detect_simd(void) { g_avx2 = qkd_nn_simd() >= 2; }

typedef struct {
  int C, F, k, pad, H, W, Ho, Wo, Hp, Wq, nv;
  long plane, in_size, out_size; /* padded plane (floats); per-sample sizes */
} dgeo;

static int direct_ok(const layer *l) {
  return l->s.stride == 1 && (long)l->in.c * l->s.kernel * l->s.kernel <= DIRECT_MAX_TAPS;
}

static dgeo direct_geo(const layer *l) {
  dgeo g;
  g.C = l->in.c; g.F = l->s.units; g.k = l->s.kernel; g.pad = l->s.padding;
  g.H = l->in.h; g.W = l->in.w; g.Ho = l->out.h; g.Wo = l->out.w;
  g.nv = (g.Wo + 7) / 8;
  g.Hp = g.H + 2 * g.pad;
  g.Wq = g.nv * 8 + g.k - 1;
  g.plane = (long)g.Hp * g.Wq;
  g.in_size = l->in_size; g.out_size = l->out_size;
  return g;
}

/* padded floats per sample, plus slack for the last row's 8-lane loads */
static long direct_pad_len(const layer *l) {
  dgeo g = direct_geo(l);
  return (long)g.C * g.plane;
}

/* xp[nb][C][Hp][Wq] <- x[nb][C][H][W] with `pad` zeros around and zeros right of the image */
static void direct_pad(const dgeo *g, const float *x, int nb, float *xp) {
  for (long sc = 0; sc < (long)nb * g->C; sc++) {
    const float *xs = x + sc * g->H * g->W;
    float *ps = xp + sc * g->plane;
    for (int r = 0; r < g->Hp; r++) {
      float *row = ps + (long)r * g->Wq;
      int ih = r - g->pad;
      if (ih < 0 || ih >= g->H) { memset(row, 0, sizeof(float) * (size_t)g->Wq); continue; }
      for (int j = 0; j < g->pad; j++) row[j] = 0.0f;
      memcpy(row + g->pad, xs + (long)ih * g->W, sizeof(float) * (size_t)g->W);
      for (int j = g->pad + g->W; j < g->Wq; j++) row[j] = 0.0f;
    }
  }
}


/* FB filters x R output rows, output columns [8v, 8v+8) of one sample: y = conv + b */
QKD_INLINE void dfwd_tile(const dgeo *g, const float *xp, const float *w, const float *b, float *y, int f0, int oh,
                          int v, const int FB, const int R) {
  v8f acc[4][2];
  long kk = (long)g->k * g->k;
#pragma GCC unroll 4
  for (int fb = 0; fb < FB; fb++)
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) acc[fb][r] = (v8f){0, 0, 0, 0, 0, 0, 0, 0};
  for (int c = 0; c < g->C; c++)
    for (int ki = 0; ki < g->k; ki++) {
      const float *xr = xp + c * g->plane + (long)(oh + ki) * g->Wq + v * 8;
      const float *wr = w + ((long)f0 * g->C + c) * kk + (long)ki * g->k;
      for (int kj = 0; kj < g->k; kj++) {
        v8f xv[2];
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) memcpy(&xv[r], xr + (long)r * g->Wq + kj, 32);
#pragma GCC unroll 4
        for (int fb = 0; fb < FB; fb++) {
          float wv = wr[fb * g->C * kk + kj];
#pragma GCC unroll 2
          for (int r = 0; r < R; r++) acc[fb][r] += wv * xv[r];
        }
      }
    }
  int n = g->Wo - v * 8 < 8 ? g->Wo - v * 8 : 8;
#pragma GCC unroll 4
  for (int fb = 0; fb < FB; fb++)
#pragma GCC unroll 2
    for (int r = 0; r < R; r++) {
      v8f o = acc[fb][r] + b[f0 + fb];
      float *dst = y + (long)(f0 + fb) * g->Ho * g->Wo + (long)(oh + r) * g->Wo + v * 8;
      if (n == 8) memcpy(dst, &o, 32);
      else for (int j = 0; j < n; j++) dst[j] = o[j];
    }
}

QKD_INLINE void dfwd_rows(const dgeo *g, const float *xp, const float *w, const float *b, float *y, int f0,
                          const int FB) {
  int oh = 0;
  for (; oh + 2 <= g->Ho; oh += 2)
    for (int v = 0; v < g->nv; v++) dfwd_tile(g, xp, w, b, y, f0, oh, v, FB, 2);
  for (; oh < g->Ho; oh++)
    for (int v = 0; v < g->nv; v++) dfwd_tile(g, xp, w, b, y, f0, oh, v, FB, 1);
}

/* y[out_size] = conv(one padded sample) + b */
QKD_INLINE void dfwd_body(const dgeo *g, const float *xp, const float *w, const float *b, float *y) {
  int f0 = 0;
  for (; f0 + 4 <= g->F; f0 += 4) dfwd_rows(g, xp, w, b, y, f0, 4);
  for (; f0 + 2 <= g->F; f0 += 2) dfwd_rows(g, xp, w, b, y, f0, 2);
  for (; f0 < g->F; f0++) dfwd_rows(g, xp, w, b, y, f0, 1);
}

/* dw[f0..f0+FB)[c][ki][kj0..kj0+KK) += sum over samples, rows, columns of dz * x: dz[F][nb*P]
 * (the GEMM layout, read with 8-lane loads, masked past Wo); xp the chunk's padded input */
QKD_INLINE void ddw_tile(const dgeo *g, const float *xp, const float *dz, int nb, float *dw, int f0, int c, int ki,
                         int kj0, const int FB, const int KK) {
  v8f acc[2][5];
  long P = (long)g->Ho * g->Wo, NP = nb * P, kk = (long)g->k * g->k;
  v8i tail;
  int nt = g->Wo - (g->nv - 1) * 8;
  for (int j = 0; j < 8; j++) tail[j] = j < nt ? -1 : 0;
#pragma GCC unroll 2
  for (int fb = 0; fb < FB; fb++)
#pragma GCC unroll 5
    for (int j = 0; j < KK; j++) acc[fb][j] = (v8f){0, 0, 0, 0, 0, 0, 0, 0};
  for (int s = 0; s < nb; s++) {
    const float *xs = xp + ((long)s * g->C + c) * g->plane + (long)ki * g->Wq + kj0;
    const float *ds = dz + (long)f0 * NP + s * P;
    for (int oh = 0; oh < g->Ho; oh++)
      for (int v = 0; v < g->nv; v++) {
        const float *xr = xs + (long)oh * g->Wq + v * 8;
        v8f dv[2];
#pragma GCC unroll 2
        for (int fb = 0; fb < FB; fb++) {
          memcpy(&dv[fb], ds + fb * NP + (long)oh * g->Wo + v * 8, 32);
          if (v == g->nv - 1) dv[fb] = (v8f)((v8i)dv[fb] & tail);
        }
#pragma GCC unroll 5
        for (int j = 0; j < KK; j++) {
          v8f xv;
          memcpy(&xv, xr + j, 32);
#pragma GCC unroll 2
          for (int fb = 0; fb < FB; fb++) acc[fb][j] += dv[fb] * xv;
        }
      }
  }
#pragma GCC unroll 2
  for (int fb = 0; fb < FB; fb++)
#pragma GCC unroll 5
    for (int j = 0; j < KK; j++) {
      v8f a = acc[fb][j];
      float t = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
      dw[((long)(f0 + fb) * g->C + c) * kk + (long)ki * g->k + kj0 + j] += t;
    }
}

QKD_INLINE void ddw_filters(const dgeo *g, const float *xp, const float *dz, int nb, float *dw, int f0,
                            const int FB) {
  for (int c = 0; c < g->C; c++)
    for (int ki = 0; ki < g->k; ki++) {
      if (g->k == 5) ddw_tile(g, xp, dz, nb, dw, f0, c, ki, 0, FB, 5);
      else if (g->k == 3) ddw_tile(g, xp, dz, nb, dw, f0, c, ki, 0, FB, 3);
      else
        for (int kj = 0; kj < g->k; kj++) ddw_tile(g, xp, dz, nb, dw, f0, c, ki, kj, FB, 1);
    }
}

QKD_INLINE void ddw_body(const dgeo *g, const float *xp, const float *dz, int nb, float *dw) {
  int f0 = 0;
  for (; f0 + 2 <= g->F; f0 += 2) ddw_filters(g, xp, dz, nb, dw, f0, 2);
  for (; f0 < g->F; f0++) ddw_filters(g, xp, dz, nb, dw, f0, 1);
}

static void dfwd_generic(const dgeo *g, const float *xp, const float *w, const float *b, float *y) {
  dfwd_body(g, xp, w, b, y);
}
static void ddw_generic(const dgeo *g, const float *xp, const float *dz, int nb, float *dw) {
  ddw_body(g, xp, dz, nb, dw);
}
#if QKD_X86_DISPATCH
QKD_AVX2 static void dfwd_avx2(const dgeo *g, const float *xp, const float *w, const float *b, float *y) {
  dfwd_body(g, xp, w, b, y);
}
QKD_AVX2 static void ddw_avx2(const dgeo *g, const float *xp, const float *dz, int nb, float *dw) {
  ddw_body(g, xp, dz, nb, dw);
}
#endif

static void direct_fwd(const dgeo *g, const float *xp, const float *w, const float *b, float *y) {
#if QKD_X86_DISPATCH
  if (g_avx2) { dfwd_avx2(g, xp, w, b, y); return; }
#endif
  dfwd_generic(g, xp, w, b, y);
}

static void direct_dw(const dgeo *g, const float *xp, const float *dz, int nb, float *dw) {
#if QKD_X86_DISPATCH
  if (g_avx2) { ddw_avx2(g, xp, dz, nb, dw); return; }
#endif
  ddw_generic(g, xp, dz, nb, dw);
}

/* Input gradient of a direct conv with Wo <= 8 (one vector per row) and k 3 or 5, exact (no
 * col2im): for each padded input row r and kernel column kj, U_kj = sum over f and ki of
 * w[f][c][ki][kj] * dz[f][r - ki] (an 8-lane row of dz), then row r = sum over kj of U_kj shifted
 * right by kj (through a zero-bordered buffer), cropped to the unpadded input. dzp: the sample's dz
 * rows, 8 lanes each (zero past Wo), with k - 1 zero rows above and below. */
static int direct_dx_ok(const layer *l) {
  return direct_ok(l) && l->out.w <= 8 && (l->s.kernel == 3 || l->s.kernel == 5);
}

static long direct_dzp_len(const layer *l) {
  return (long)l->s.units * (l->out.h + 2 * (l->s.kernel - 1)) * 8;
}

QKD_INLINE void ddx_rows(const dgeo *g, const float *dzp, const float *w, float *dx, float ub[][24], int c, int r,
                         const int R, const int KK) {
  v8f acc[2][5];
  int Hz = g->Ho + 2 * (KK - 1);
  int lo = r - (g->Ho - 1) > 0 ? r - (g->Ho - 1) : 0, hi = r + R - 1 < KK - 1 ? r + R - 1 : KK - 1;
#pragma GCC unroll 2
  for (int rr = 0; rr < R; rr++)
#pragma GCC unroll 5
    for (int j = 0; j < KK; j++) acc[rr][j] = (v8f){0, 0, 0, 0, 0, 0, 0, 0};
  for (int f = 0; f < g->F; f++)
    for (int ki = lo; ki <= hi; ki++) {
      const float *wr = w + (((long)f * g->C + c) * KK + ki) * KK;
      const float *dr = dzp + ((long)f * Hz + r - ki + KK - 1) * 8;
      v8f dv[2];
#pragma GCC unroll 2
      for (int rr = 0; rr < R; rr++) memcpy(&dv[rr], dr + rr * 8, 32);
#pragma GCC unroll 5
      for (int j = 0; j < KK; j++) {
        float wv = wr[j];
#pragma GCC unroll 2
        for (int rr = 0; rr < R; rr++) acc[rr][j] += wv * dv[rr];
      }
    }
#pragma GCC unroll 2
  for (int rr = 0; rr < R; rr++) {
    int ih = r + rr - g->pad;
    if (ih < 0 || ih >= g->H) continue;
#pragma GCC unroll 5
    for (int j = 0; j < KK; j++) memcpy(ub[j] + 8, &acc[rr][j], 32);
    v8f a, b, t;
    memcpy(&a, ub[0] + 8, 32);
    memcpy(&b, ub[0] + 16, 32);
#pragma GCC unroll 5
    for (int j = 1; j < KK; j++) {
      memcpy(&t, ub[j] + 8 - j, 32);
      a += t;
      memcpy(&t, ub[j] + 16 - j, 32);
      b += t;
    }
    float row[16];
    memcpy(row, &a, 32);
    memcpy(row + 8, &b, 32);
    memcpy(dx + ((long)c * g->H + ih) * g->W, row + g->pad, sizeof(float) * (size_t)g->W);
  }
}

/* dx[nb][in_size] (overwritten) from dz[F][nb*P] (the GEMM layout) */
QKD_INLINE void ddx_body(const dgeo *g, const float *dz, int nb, const float *w, float *dzp, float *dx, const int KK) {
  long P = (long)g->Ho * g->Wo, NP = nb * P;
  int Hz = g->Ho + 2 * (KK - 1);
  float ub[5][24];
  memset(ub, 0, sizeof ub);
  for (int s = 0; s < nb; s++) {
    for (int f = 0; f < g->F; f++) {
      float *zf = dzp + (long)f * Hz * 8;
      memset(zf, 0, sizeof(float) * (size_t)(Hz * 8));
      for (int oh = 0; oh < g->Ho; oh++)
        memcpy(zf + (oh + KK - 1) * 8, dz + f * NP + s * P + (long)oh * g->Wo, sizeof(float) * (size_t)g->Wo);
    }
    float *xs = dx + s * g->in_size;
    for (int c = 0; c < g->C; c++) {
      int r = 0;
      for (; r + 2 <= g->Hp; r += 2) ddx_rows(g, dzp, w, xs, ub, c, r, 2, KK);
      if (r < g->Hp) ddx_rows(g, dzp, w, xs, ub, c, r, 1, KK);
    }
  }
}

static void ddx_generic(const dgeo *g, const float *dz, int nb, const float *w, float *dzp, float *dx) {
  if (g->k == 5) ddx_body(g, dz, nb, w, dzp, dx, 5);
  else ddx_body(g, dz, nb, w, dzp, dx, 3);
}
#if QKD_X86_DISPATCH
QKD_AVX2 static void ddx_avx2(const dgeo *g, const float *dz, int nb, const float *w, float *dzp, float *dx) {
  if (g->k == 5) ddx_body(g, dz, nb, w, dzp, dx, 5);
  else ddx_body(g, dz, nb, w, dzp, dx, 3);
}
#endif

static void direct_dx(const dgeo *g, const float *dz, int nb, const float *w, float *dzp, float *dx) {
#if QKD_X86_DISPATCH
  if (g_avx2) { ddx_avx2(g, dz, nb, w, dzp, dx); return; }
#endif
  ddx_generic(g, dz, nb, w, dzp, dx);
}

/* ---------------------------------------------------------------------------------- gemm */

/* An unsliced pass's GEMM of at least GEMM_SPLIT_MACS multiply-adds is cut into GEMM_PARTS
 * column blocks of C, each a single-threaded OpenBLAS call, run on up to g_threads threads: the
 * blocks, and so the bits, depend on the sizes only. Inside a sliced pass (the slices already
 * use the threads) every GEMM is one single-threaded call. */
#define GEMM_PARTS 4
#define GEMM_SPLIT_MACS 4e6

typedef struct {
  int ta, tb, M, N, K, lda, ldb, ldc, parts, workers;
  float alpha, beta;
  const float *A, *B;
  float *C;
} gemm_job;

static void gemm_block(const gemm_job *j, int part) {
  int j0 = (int)((long)j->N * part / j->parts), j1 = (int)((long)j->N * (part + 1) / j->parts);
  if (j1 <= j0) return;
  const float *B = j->tb ? j->B + (long)j0 * j->ldb : j->B + j0;
  cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, j->M, j1 - j0, j->K,
              j->alpha, j->A, j->lda, B, j->ldb, j->beta, j->C + j0, j->ldc);
}

static void gemm_worker(void *ctx, int w) {
  const gemm_job *j = ctx;
  for (int p = w; p < j->parts; p += j->workers) gemm_block(j, p);
}

/* C[M][N] = alpha op(A) op(B) + beta C, row-major (cblas_sgemm's arguments, ta/tb: transposed) */
static void gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc) {
  gemm_job j = {ta, tb, M, N, K, lda, ldb, ldc, 1, 1, alpha, beta, A, B, C};
  if (!g_sliced && (double)M * N * K >= GEMM_SPLIT_MACS && N >= 8 * GEMM_PARTS) j.parts = GEMM_PARTS;
  j.workers = g_threads < j.parts ? g_threads : j.parts;
  if (j.workers > 1) qkd_nn_run_threads(j.workers, gemm_worker, &j);
  else gemm_worker(&j, 0);
}

/* The direct kernels run on the calling thread: used in the slices of a sliced pass; an
 * unsliced pass keeps the GEMMs (gemm: split by size over the threads). The choice never
 * depends on the thread count, and neither do the bits. */
static int use_direct(const qkd_nn *nn, const layer *l) {
  return direct_ok(l) && nn->slices > 1;
}

/* Samples per im2col chunk: as many as fit COLS_FLOATS (the chunk stays in L2), but at least
 * enough for ~2048 GEMM columns so that big convs still make wide GEMMs. */
static int conv_chunk(int max_batch, const layer *l) {
  long K = (long)l->in.c * l->s.kernel * l->s.kernel, P = (long)l->out.h * l->out.w;
  long per = K * P > (long)l->s.units * P ? K * P : (long)l->s.units * P;
  long nb = COLS_FLOATS / per, lo = (2048 + P - 1) / P;
  if (nb < lo) nb = lo;
  if (nb < 1) nb = 1;
  if (nb > max_batch) nb = max_batch;
  return (int)nb;
}

/* y[n] = act(x[n]) (x may be y); act is a layer kind (anything else: identity) */
static void act_fwd(int act, const float *x, float *y, long n) {
  switch (act) {
  case QKD_LAYER_RELU: for (long j = 0; j < n; j++) y[j] = x[j] > 0 ? x[j] : 0.0f; break;
#if QKD_X86_DISPATCH
  case QKD_LAYER_TANH: if (g_avx2) tanh_fwd_avx2(x, y, n); else tanh_fwd(x, y, n); break;
  case QKD_LAYER_SIGMOID: if (g_avx2) sigmoid_fwd_avx2(x, y, n); else sigmoid_fwd(x, y, n); break;
#else
  case QKD_LAYER_TANH: tanh_fwd(x, y, n); break;
  case QKD_LAYER_SIGMOID: sigmoid_fwd(x, y, n); break;
#endif
  default: if (x != y) memcpy(y, x, sizeof(float) * (size_t)n); break;
  }
}

/* d[n] = dy[n] * act'(from the activation's output y) */
static void act_bwd(int act, const float *y, const float *dy, float *d, long n) {
  switch (act) {
  case QKD_LAYER_RELU: /* both loads unconditional: a select the compiler vectorises, not a branch per element */
    for (long j = 0; j < n; j++) {
      float g = dy[j];
      d[j] = y[j] > 0 ? g : 0.0f;
    }
    break;
  case QKD_LAYER_TANH: for (long j = 0; j < n; j++) d[j] = dy[j] * (1.0f - y[j] * y[j]); break;
  case QKD_LAYER_SIGMOID: for (long j = 0; j < n; j++) d[j] = dy[j] * y[j] * (1.0f - y[j]); break;
  default: memcpy(d, dy, sizeof(float) * (size_t)n); break;
  }
}

static int is_act(int kind) { return kind == QKD_LAYER_RELU || kind == QKD_LAYER_TANH || kind == QKD_LAYER_SIGMOID; }

/* Layer i (conv, dense or batchnorm) computes act(its output) straight into layer i+1's buffer,
 * and layer i+1 (the activation) is skipped. Layer i's own buffer is then never written: nothing
 * reads it (the activation's backward uses its own output). */
static int fused(const qkd_nn *nn, int i) {
  qkd_layer_kind k = i + 1 < nn->n_layers ? nn->layers[i].s.kind : QKD_LAYER_FLATTEN;
  return (k == QKD_LAYER_CONV || k == QKD_LAYER_DENSE || k == QKD_LAYER_BATCHNORM) && is_act(nn->layers[i + 1].s.kind);
}

/* y[nb][out] = act(conv(x) + b) */
static void conv_fwd(const layer *l, const float *x, int nb_all, float *y, int act, const work *w, int chunk,
                     int direct) {
  int F = l->s.units, k = l->s.kernel;
  long K = (long)l->in.c * k * k, P = (long)l->out.h * l->out.w;
  if (direct) {
    dgeo g = direct_geo(l);
    for (int s = 0; s < nb_all; s++) {
      float *ys = y + s * l->out_size;
      direct_pad(&g, x + s * l->in_size, 1, w->cols);
      direct_fwd(&g, w->cols, l->w, l->b, ys);
      act_fwd(act, ys, ys, l->out_size);
    }
    return;
  }
  for (int s0 = 0; s0 < nb_all; s0 += chunk) {
    int nb = nb_all - s0 < chunk ? nb_all - s0 : chunk;
    im2col(x + s0 * l->in_size, nb, l->in, k, l->s.stride, l->s.padding, l->out, w->cols);
    float *dst = nb == 1 ? y + s0 * l->out_size : w->tmp;
    gemm(0, 0, F, (int)(nb * P), (int)K, 1.0f, l->w, (int)K, w->cols, (int)(nb * P), 0.0f, dst, (int)(nb * P));
    for (int s = 0; s < nb; s++) {
      float *ys = y + (s0 + s) * l->out_size;
      for (int f = 0; f < F; f++) {
        const float *src = dst + (long)f * nb * P + s * P;
        float *yf = ys + (long)f * P, bf = l->b[f];
        for (long p = 0; p < P; p++) yf[p] = src[p] + bf;
      }
      act_fwd(act, ys, ys, l->out_size);
    }
  }
}

/* dy is dL/d(conv output), or dL/d(act output) when act_l (the fused activation) is set;
 * dw/db: the gradient block to accumulate into; dx (may be NULL) is overwritten. */
static void conv_bwd(const layer *l, const layer *act_l, long s_off, const float *x, const float *dy, float *dx,
                     int nb_all, const work *w, int chunk, float *dw, float *db, int direct) {
  int F = l->s.units, k = l->s.kernel;
  long K = (long)l->in.c * k * k, P = (long)l->out.h * l->out.w;
  int dx_direct = direct && direct_dx_ok(l);
  if (dx && !dx_direct) memset(dx, 0, sizeof(float) * (size_t)(nb_all * l->in_size)); /* col2im adds */
  for (int s0 = 0; s0 < nb_all; s0 += chunk) {
    int nb = nb_all - s0 < chunk ? nb_all - s0 : chunk;
    long NP = nb * P;
    /* tmp[F][nb*P] <- dz in the cols layout; bias grads */
    for (int s = 0; s < nb; s++) {
      const float *ds = dy + (s0 + s) * l->out_size;
      const float *ay = act_l ? act_l->y + (s_off + s0 + s) * l->out_size : NULL;
      for (int f = 0; f < F; f++) {
        float *t = w->tmp + (long)f * NP + s * P, a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (ay) act_bwd(act_l->s.kind, ay + (long)f * P, ds + (long)f * P, t, P);
        else memcpy(t, ds + (long)f * P, sizeof(float) * (size_t)P);
        long p = 0;
        for (; p + 8 <= P; p += 8) /* eight partial sums: vectorised */
          for (int j = 0; j < 8; j++) a[j] += t[p + j];
        for (; p < P; p++) a[0] += t[p];
        db[f] += ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
      }
    }
    if (direct) {
      dgeo g = direct_geo(l);
      direct_pad(&g, x + s0 * l->in_size, nb, w->cols);
      direct_dw(&g, w->cols, w->tmp, nb, dw);
    } else {
      im2col(x + s0 * l->in_size, nb, l->in, k, l->s.stride, l->s.padding, l->out, w->cols);
      gemm(0, 1, F, (int)K, (int)NP, 1.0f, w->tmp, (int)NP, w->cols, (int)NP, 1.0f, dw, (int)K);
    }
    if (dx && dx_direct) {
      dgeo g = direct_geo(l);
      direct_dx(&g, w->tmp, nb, l->w, w->cols, dx + s0 * l->in_size);
    } else if (dx) {
      gemm(1, 0, (int)K, (int)NP, F, 1.0f, l->w, (int)K, w->tmp, (int)NP, 0.0f, w->cols, (int)NP);
      col2im(w->cols, nb, l->in, k, l->s.stride, l->s.padding, l->out, dx + s0 * l->in_size);
    }
  }
}

/* --------------------------------------------------------------------------------- pools */

/* windows are k x k with stride k (floor): they never overlap */
static void pool_fwd(const layer *l, const float *x, int nb, float *y, int *arg) {
  int k = l->s.units, max = l->s.kind == QKD_LAYER_MAXPOOL;
  int H = l->in.h, W = l->in.w, Ho = l->out.h, Wo = l->out.w;
  float inv = 1.0f / (float)(k * k);
  for (long sc = 0; sc < (long)nb * l->in.c; sc++) {
    const float *xp = x + sc * H * W;
    float *yp = y + sc * Ho * Wo;
    int *ap = max ? arg + sc * Ho * Wo : NULL;
    if (k == 2) {
      for (int oh = 0; oh < Ho; oh++) {
        const float *r0 = xp + 2 * oh * W, *r1 = r0 + W;
        float *yo = yp + oh * Wo;
        if (max) {
          int *ao = ap + oh * Wo;
          for (int ow = 0; ow < Wo; ow++) {
            int q = 2 * ow, best = q;
            float bv = r0[q];
            if (r0[q + 1] > bv) { bv = r0[q + 1]; best = q + 1; }
            if (r1[q] > bv) { bv = r1[q]; best = q + W; }
            if (r1[q + 1] > bv) { bv = r1[q + 1]; best = q + W + 1; }
            yo[ow] = bv;
            ao[ow] = 2 * oh * W + best;
          }
        } else {
          for (int ow = 0; ow < Wo; ow++) yo[ow] = (r0[2 * ow] + r0[2 * ow + 1] + r1[2 * ow] + r1[2 * ow + 1]) * inv;
        }
      }
      continue;
    }
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

/* dx is overwritten */
static void pool_bwd(const layer *l, const float *dy, float *dx, int nb, const int *arg) {
  int k = l->s.units, max = l->s.kind == QKD_LAYER_MAXPOOL;
  int H = l->in.h, W = l->in.w, Ho = l->out.h, Wo = l->out.w;
  float inv = 1.0f / (float)(k * k);
  if (!max && k == 2) { /* every input gets g (covered) or 0 (the floor's leftover): no memset */
    for (long sc = 0; sc < (long)nb * l->in.c; sc++) {
      float *xp = dx + sc * H * W;
      const float *dp = dy + sc * Ho * Wo;
      for (int oh = 0; oh < Ho; oh++) {
        float *r0 = xp + 2 * oh * W, *r1 = r0 + W;
        for (int ow = 0; ow < Wo; ow++) {
          float g = dp[oh * Wo + ow] * inv;
          r0[2 * ow] = g; r0[2 * ow + 1] = g; r1[2 * ow] = g; r1[2 * ow + 1] = g;
        }
        for (int j = 2 * Wo; j < W; j++) r0[j] = r1[j] = 0.0f;
      }
      if (2 * Ho < H) memset(xp + 2 * Ho * W, 0, sizeof(float) * (size_t)((H - 2 * Ho) * W));
    }
    return;
  }
  memset(dx, 0, sizeof(float) * (size_t)(nb * l->in_size));
  for (long sc = 0; sc < (long)nb * l->in.c; sc++) {
    float *xp = dx + sc * H * W;
    const float *dp = dy + sc * Ho * Wo;
    if (max) {
      const int *ap = arg + sc * Ho * Wo;
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

/* ----------------------------------------------------------------------------- batchnorm */

/* Per channel c (image input: over the batch and the plane; flat input: feature c over the
 * batch), training: y = gamma (x - mean) / sqrt(var + eps) + beta with the batch's mean and
 * biased variance; the running statistics move by momentum toward the mean and the unbiased
 * variance. Evaluation uses the running statistics. Batch sums are made of per-sample sums (in
 * double, a fixed order inside the sample) added in sample order, so the statistics (and the
 * layer's outputs and input gradients, given the same inputs) do not depend on how a batch is
 * cut into slices over threads. */
#define BN_EPS 1e-5
#define BN_MOMENTUM 0.1

/* per-sample sums of x and x^2 per channel of samples [s0, s0 + nb) (x: the slice's first sample) */
static void bn_stats_part(const layer *l, const float *x, int s0, int nb) {
  long C = l->in.c, P = (long)l->in.h * l->in.w;
  for (int s = 0; s < nb; s++) {
    const float *xs = x + s * l->in_size;
    double *ps = l->part + 2 * C * (s0 + s);
    for (long c = 0; c < C; c++) {
      const float *xc = xs + c * P;
      double a[4] = {0, 0, 0, 0}, q[4] = {0, 0, 0, 0};
      long p = 0;
      for (; p + 4 <= P; p += 4)
        for (int j = 0; j < 4; j++) {
          double v = xc[p + j];
          a[j] += v;
          q[j] += v * v;
        }
      for (; p < P; p++) {
        double v = xc[p];
        a[0] += v;
        q[0] += v * v;
      }
      ps[c] = (a[0] + a[1]) + (a[2] + a[3]);
      ps[C + c] = (q[0] + q[1]) + (q[2] + q[3]);
    }
  }
}

/* the batch's mean and 1/sqrt(var + eps) from the per-sample sums; the running statistics */
static void bn_reduce_fwd(layer *l, int batch) {
  long C = l->in.c;
  double M = (double)batch * l->in.h * l->in.w;
  for (long c = 0; c < C; c++) l->bmean[c] = l->bistd[c] = 0.0;
  for (int s = 0; s < batch; s++) {
    const double *ps = l->part + 2 * C * s;
    for (long c = 0; c < C; c++) {
      l->bmean[c] += ps[c];
      l->bistd[c] += ps[C + c];
    }
  }
  for (long c = 0; c < C; c++) {
    double mean = l->bmean[c] / M, var = l->bistd[c] / M - mean * mean;
    if (var < 0) var = 0;
    l->bmean[c] = mean;
    l->bistd[c] = 1.0 / sqrt(var + BN_EPS);
    double unbiased = M > 1 ? var * M / (M - 1) : var;
    l->rm[c] = (float)((1.0 - BN_MOMENTUM) * l->rm[c] + BN_MOMENTUM * mean);
    l->rv[c] = (float)((1.0 - BN_MOMENTUM) * l->rv[c] + BN_MOMENTUM * unbiased);
  }
}

static void bn_coeffs(const layer *l, long c, int training, double *mean, double *istd) {
  *mean = training ? l->bmean[c] : l->rm[c];
  *istd = training ? l->bistd[c] : 1.0 / sqrt((double)l->rv[c] + BN_EPS);
}

/* y = act(gamma xhat + beta) for nb samples (x, y: the slice's first sample) */
static void bn_fwd(const layer *l, const float *x, float *y, int nb, int act, int training) {
  long C = l->in.c, P = (long)l->in.h * l->in.w;
  for (long c = 0; c < C; c++) {
    double mean, istd;
    bn_coeffs(l, c, training, &mean, &istd);
    float a = (float)(l->w[c] * istd), b = (float)(l->b[c] - mean * l->w[c] * istd);
    for (int s = 0; s < nb; s++) {
      const float *xc = x + s * l->in_size + c * P;
      float *yc = y + s * l->in_size + c * P;
      for (long p = 0; p < P; p++) yc[p] = xc[p] * a + b;
    }
  }
  act_fwd(act, y, y, (long)nb * l->out_size);
}

/* training backward, first half: per-sample sums of dz and dz (x - mean) per channel */
static void bn_grad_part(const layer *l, const float *x, const float *dz, int s0, int nb) {
  long C = l->in.c, P = (long)l->in.h * l->in.w;
  for (int s = 0; s < nb; s++) {
    double *ps = l->part + 2 * C * (s0 + s);
    for (long c = 0; c < C; c++) {
      const float *xc = x + s * l->in_size + c * P, *dc = dz + s * l->in_size + c * P;
      double mean = l->bmean[c], g[4] = {0, 0, 0, 0}, h[4] = {0, 0, 0, 0};
      long p = 0;
      for (; p + 4 <= P; p += 4)
        for (int j = 0; j < 4; j++) {
          g[j] += dc[p + j];
          h[j] += dc[p + j] * ((double)xc[p + j] - mean);
        }
      for (; p < P; p++) {
        g[0] += dc[p];
        h[0] += dc[p] * ((double)xc[p] - mean);
      }
      ps[c] = (g[0] + g[1]) + (g[2] + g[3]);
      ps[C + c] = (h[0] + h[1]) + (h[2] + h[3]);
    }
  }
}

/* the batch's sums of dz and dz xhat in sample order; dbeta, dgamma += them (into the net's
 * gradient block: the reduction runs once, on the caller) */
static void bn_reduce_bwd(layer *l, int batch) {
  long C = l->in.c;
  for (long c = 0; c < 2 * C; c++) l->gsum[c] = 0.0;
  for (int s = 0; s < batch; s++) {
    const double *ps = l->part + 2 * C * s;
    for (long c = 0; c < 2 * C; c++) l->gsum[c] += ps[c];
  }
  for (long c = 0; c < C; c++) {
    l->gsum[C + c] *= l->bistd[c];
    l->db[c] += (float)l->gsum[c];
    l->dw[c] += (float)l->gsum[C + c];
  }
}

/* dx for nb samples: training, gamma istd (dz - mean(dz) - xhat mean(dz xhat)) with the means
 * over the whole batch (`batch` samples); evaluation, gamma istd dz, and then (evaluation only,
 * the statistics being constants) dgamma += sum dz xhat, dbeta += sum dz over these samples into
 * dw/db. dx may be NULL. */
static void bn_bwd(const layer *l, const float *x, const float *dz, float *dx, int nb, int training, int batch,
                   float *dw, float *db) {
  long C = l->in.c, P = (long)l->in.h * l->in.w;
  double M = (double)batch * P;
  for (long c = 0; c < C; c++) {
    double mean, istd;
    bn_coeffs(l, c, training, &mean, &istd);
    float k = (float)(l->w[c] * istd), fm = (float)mean, fi = (float)istd;
    float mg = training ? (float)(l->gsum[c] / M) : 0.0f, mh = training ? (float)(l->gsum[C + c] / M) : 0.0f;
    double g = 0, h = 0;
    for (int s = 0; s < nb; s++) {
      const float *xc = x + s * l->in_size + c * P, *dc = dz + s * l->in_size + c * P;
      float *oc = dx ? dx + s * l->in_size + c * P : NULL;
      if (training) {
        if (oc)
          for (long p = 0; p < P; p++) oc[p] = k * (dc[p] - mg - (xc[p] - fm) * fi * mh);
      } else {
        if (oc)
          for (long p = 0; p < P; p++) oc[p] = k * dc[p];
        for (long p = 0; p < P; p++) {
          g += dc[p];
          h += dc[p] * ((double)xc[p] - mean) * istd;
        }
      }
    }
    if (!training) {
      db[c] += (float)g;
      dw[c] += (float)h;
    }
  }
}

/* ------------------------------------------------------------------------------- threads */

typedef struct {
  void (*fn)(void *ctx, int t);
  void *ctx;
  int t;
} thread_arg;

static void *thread_main(void *p) {
  thread_arg *a = p;
  a->fn(a->ctx, a->t);
  return NULL;
}

/* a thread that cannot start runs on the caller afterwards (same work, same result) */
static void run_spawned(int n, void (*fn)(void *ctx, int t), void *ctx) {
  pthread_t tid[QKD_NN_MAX_THREADS];
  thread_arg args[QKD_NN_MAX_THREADS];
  int started[QKD_NN_MAX_THREADS] = {0};
  for (int t = 1; t < n; t++) {
    args[t] = (thread_arg){fn, ctx, t};
    started[t] = pthread_create(&tid[t], NULL, thread_main, &args[t]) == 0;
  }
  fn(ctx, 0);
  for (int t = 1; t < n; t++) {
    if (started[t]) pthread_join(tid[t], NULL);
    else fn(ctx, t);
  }
}

/* The nets' persistent workers (qkd_par.h's pool, g_threads threads, made on first use and
 * remade when the count changes; kept to the end of the process): a training step runs a few of
 * these jobs, and a thread created per job cost more than some jobs themselves. One job at a
 * time uses the pool; a job started while it is busy (another thread's) spawns its threads. */
static qkd_par_pool *g_pool;
static pthread_mutex_t g_pool_mu = PTHREAD_MUTEX_INITIALIZER;

static void pool_job(void *ud, int c) {
  const thread_arg *a = ud;
  a->fn(a->ctx, c);
}

void qkd_nn_run_threads(int n, void (*fn)(void *ctx, int t), void *ctx) {
  if (n > QKD_NN_MAX_THREADS) n = QKD_NN_MAX_THREADS;
  if (n <= 1) {
    fn(ctx, 0);
    return;
  }
  if (pthread_mutex_trylock(&g_pool_mu) != 0) {
    run_spawned(n, fn, ctx);
    return;
  }
  if (g_pool && qkd_par_threads(g_pool) != g_threads) {
    qkd_par_destroy(g_pool);
    g_pool = NULL;
  }
  if (!g_pool && g_threads > 1) g_pool = qkd_par_create(g_threads);
  if (g_pool && qkd_par_threads(g_pool) >= n) {
    thread_arg a = {fn, ctx, 0};
    qkd_par_for(g_pool, n, pool_job, &a); /* each t's work is fixed by t: same result on any thread */
  } else {
    run_spawned(n, fn, ctx);
  }
  pthread_mutex_unlock(&g_pool_mu);
}

/* The number of batch slices for a forward/backward of `batch` samples: SPLIT_SLICES when the
 * net is small enough for per-slice gradient blocks and the batch has enough work (at least 8
 * samples a slice), else 1 — a function of the net and the batch, never of the thread count.
 * Each slice's scratch is allocated on first use; if that fails, the process stops (fewer slices
 * would change the bits). */
static int slices_for(qkd_nn *nn, int batch) {
  int n = SPLIT_SLICES;
  if (nn->n_params > SPLIT_MAX_PARAMS || (double)batch * (double)nn->macs < SPLIT_MIN_MACS || batch / 8 < n) return 1;
  for (int t = 1; t < n; t++) {
    work *w = &nn->work[t];
    if (!w->cols) {
      w->cols = malloc(sizeof(float) * (size_t)(nn->cols_len + 1));
      w->tmp = malloc(sizeof(float) * (size_t)(nn->tmp_len + 8));
      w->grads = malloc(sizeof(float) * (size_t)(nn->n_params + 1));
      if (!w->cols || !w->tmp || !w->grads) {
        fprintf(stderr, "qkd: error: out of memory for a batch slice's scratch (%ld parameters)\n", nn->n_params);
        exit(1);
      }
    }
  }
  return n;
}

/* ------------------------------------------------------------------------- forward/backward */

/* A pass runs in stages: a training-mode batchnorm needs the whole batch's statistics, so the
 * slices stop before it (forward: after adding up its input per sample; backward: after its
 * per-sample gradient sums), the caller reduces the sums in sample order, and the next stage
 * goes on from the batchnorm. Without such layers a pass is one stage. */
static int is_sync(const qkd_nn *nn, int i) {
  return nn->training && nn->layers[i].s.kind == QKD_LAYER_BATCHNORM;
}

/* Samples [s0, s0 + nb) of the batch through layers [a, b) (layer a may be a batchnorm whose
 * statistics are ready), then the per-sample sums of layer b's input when b is a stage's end;
 * thread t's scratch. */
static void list_forward_part(qkd_nn *nn, int s0, int nb, int training, uint64_t step, int t, int a, int b) {
  const work *w = &nn->work[t];
  const float *cur = a ? nn->layers[a - 1].y : nn->x; /* layer a - 1 is never fused into a batchnorm */
  for (int i = a; i < b; i++) {
    layer *l = &nn->layers[i];
    const float *xin = cur + s0 * l->in_size;
    int fuse = fused(nn, i);
    layer *dl = fuse ? &nn->layers[i + 1] : l; /* the layer whose buffer receives the output */
    float *y = dl->y + s0 * l->out_size;
    int act = fuse ? dl->s.kind : 0;
    long n = (long)nb * l->out_size;
    switch (l->s.kind) {
    case QKD_LAYER_CONV:
      conv_fwd(l, xin, nb, y, act, w, conv_chunk(nn->max_batch, l), use_direct(nn, l));
      break;
    case QKD_LAYER_MAXPOOL:
    case QKD_LAYER_AVGPOOL: pool_fwd(l, xin, nb, y, l->arg ? l->arg + s0 * l->out_size : NULL); break;
    case QKD_LAYER_DENSE:
      gemm(0, 1, nb, l->s.units, (int)l->in_size, 1.0f, xin, (int)l->in_size, l->w, (int)l->in_size, 0.0f, y, l->s.units);
      for (int s = 0; s < nb; s++) {
        float *ys = y + (long)s * l->s.units;
        for (int u = 0; u < l->s.units; u++) ys[u] += l->b[u];
      }
      act_fwd(act, y, y, n);
      break;
    case QKD_LAYER_FLATTEN: break; /* aliased before the slices start */
    case QKD_LAYER_RELU:
    case QKD_LAYER_TANH:
    case QKD_LAYER_SIGMOID:
      act_fwd(l->s.kind, xin, y, n);
      break;
    case QKD_LAYER_SCALE: {
      float c = (float)l->s.value;
      for (long j = 0; j < n; j++) y[j] = xin[j] * c;
      break;
    }
    case QKD_LAYER_BATCHNORM: bn_fwd(l, xin, y, nb, act, training); break;
    case QKD_LAYER_DROPOUT: {
      float *mask = l->aux + s0 * l->out_size;
      if (!training || l->s.value <= 0.0) {
        for (long j = 0; j < n; j++) mask[j] = 1.0f;
      } else {
        double p = l->s.value;
        float keep = (float)(1.0 / (1.0 - p));
        for (int s = 0; s < nb; s++) {
          /* one key per (step, layer, sample): element e draws counter key + e */
          uint64_t key = qkd_rng_mix(qkd_rng_mix(step * 4096u + (uint64_t)i) ^ (uint64_t)(s0 + s)) << 24;
          float *m = mask + (long)s * l->out_size;
          for (long e = 0; e < l->out_size; e++)
            m[e] = qkd_rng_uniform(nn->seed, QKD_STREAM_DROPOUT, key + (uint64_t)e) >= p ? keep : 0.0f;
        }
      }
      for (long j = 0; j < n; j++) y[j] = xin[j] * mask[j];
      break;
    }
    default: break;
    }
    cur = dl->y;
    if (fuse) i++;
  }
  if (b < nn->n_layers) bn_stats_part(&nn->layers[b], cur + s0 * nn->layers[b].in_size, s0, nb);
}

/* Gradients of samples [s0, s0 + nb) into gbase (a block mirroring nn->grads), from layer `top`
 * down, the incoming gradient in `which` (-1 dout, 0 d0, 1 d1). resume: layer top is the batchnorm
 * that ended the previous stage (its sums are reduced). The stage ends after the per-sample sums
 * of the batchnorm `stop` (>= 0) or at the bottom. Returns where the gradient lives then. */
static int list_backward_part(qkd_nn *nn, const float *dout, float *dx, int s0, int nb, int t, float *gbase, int top,
                              int resume, int stop, int which) {
  const work *w = &nn->work[t];
  float *bufs[2] = {nn->d0, nn->d1};
  const float *dy = which < 0 ? dout + s0 * nn->layers[nn->n_layers - 1].out_size : bufs[which] + s0 * nn->d_stride;
  for (int i = top; i >= 0; i--) {
    layer *l = &nn->layers[i], *act_l = NULL;
    if (i > 0 && fused(nn, i - 1)) { act_l = l; l = &nn->layers[--i]; } /* the pair of a fused forward */
    const float *xin = (i ? nn->layers[i - 1].y : nn->x) + s0 * l->in_size;
    int need_dx = i > 0 || dx;
    int nw = which == 0 ? 1 : 0;
    float *d = i == 0 ? (dx ? dx + s0 * l->in_size : NULL) : bufs[nw] + s0 * nn->d_stride;
    long n = (long)nb * l->out_size;
    float *dw = l->dw ? gbase + (l->dw - nn->grads) : NULL, *db = l->db ? gbase + (l->db - nn->grads) : NULL;
    switch (l->s.kind) {
    case QKD_LAYER_CONV:
      conv_bwd(l, act_l, s0, xin, dy, need_dx ? d : NULL, nb, w, conv_chunk(nn->max_batch, l), dw, db,
               use_direct(nn, l));
      break;
    case QKD_LAYER_MAXPOOL:
    case QKD_LAYER_AVGPOOL:
      if (need_dx) pool_bwd(l, dy, d, nb, l->arg ? l->arg + s0 * l->out_size : NULL);
      break;
    case QKD_LAYER_DENSE: {
      int U = l->s.units, In = (int)l->in_size;
      const float *dz = dy;
      if (act_l) { /* dz = dy * act' into the buffer dy does not use */
        float *z = bufs[nw] + s0 * nn->d_stride;
        act_bwd(act_l->s.kind, act_l->y + s0 * l->out_size, dy, z, n);
        dz = z;
        nw = 1 - nw;
        if (i > 0) d = bufs[nw] + s0 * nn->d_stride;
      }
      gemm(1, 0, U, In, nb, 1.0f, dz, U, xin, In, 1.0f, dw, In);
      for (int s = 0; s < nb; s++)
        for (int u = 0; u < U; u++) db[u] += dz[(long)s * U + u];
      if (need_dx)
        gemm(0, 0, nb, In, U, 1.0f, dz, U, l->w, In, 0.0f, d, In);
      break;
    }
    case QKD_LAYER_FLATTEN: /* the gradient passes through unchanged */
      if (i == 0 && dx) memcpy(d, dy, sizeof(float) * (size_t)n);
      continue;
    case QKD_LAYER_RELU:
    case QKD_LAYER_TANH:
    case QKD_LAYER_SIGMOID:
      if (need_dx) act_bwd(l->s.kind, l->y + s0 * l->out_size, dy, d, n);
      break;
    case QKD_LAYER_SCALE: {
      float c = (float)l->s.value;
      if (need_dx) for (long j = 0; j < n; j++) d[j] = dy[j] * c;
      break;
    }
    case QKD_LAYER_DROPOUT: {
      const float *mask = l->aux + s0 * l->out_size;
      if (need_dx) for (long j = 0; j < n; j++) d[j] = dy[j] * mask[j];
      break;
    }
    case QKD_LAYER_BATCHNORM: {
      const float *dz = dy;
      if (act_l) { /* dz = dy * act' into the buffer dy does not use */
        float *z = bufs[nw] + s0 * nn->d_stride;
        act_bwd(act_l->s.kind, act_l->y + s0 * l->out_size, dy, z, n);
        dz = z;
        which = nw;
        nw = 1 - nw;
        if (i > 0) d = bufs[nw] + s0 * nn->d_stride;
      }
      if (i == stop && !(resume && i == top)) {
        bn_grad_part(l, xin, dz, s0, nb);
        return which;
      }
      bn_bwd(l, xin, dz, need_dx ? d : NULL, nb, nn->training, nn->batch, dw, db);
      break;
    }
    default: break;
    }
    if (!need_dx) break;
    dy = d;
    which = nw;
  }
  return which;
}

typedef struct {
  qkd_nn *nn;
  const float *dout;
  float *dx;
  int batch, slices, training;
  uint64_t step;
  int a, b;                              /* forward stage: layers [a, b) */
  int top, resume, stop, which, first;   /* backward stage (list_backward_part); first: zero the slices' blocks */
  int which_out[QKD_NN_MAX_THREADS];     /* backward: where each slice left its gradient */
} pass;

static void slice_range(const pass *p, int t, int *s0, int *nb) {
  *s0 = (int)((long)p->batch * t / p->slices);
  *nb = (int)((long)p->batch * (t + 1) / p->slices) - *s0;
}

static void forward_slice(void *ctx, int t) {
  const pass *p = ctx;
  int s0, nb;
  slice_range(p, t, &s0, &nb);
  list_forward_part(p->nn, s0, nb, p->training, p->step, t, p->a, p->b);
}

static void backward_slice(void *ctx, int t) {
  pass *p = ctx;
  int s0, nb;
  slice_range(p, t, &s0, &nb);
  float *g = t ? p->nn->work[t].grads : p->nn->grads;
  if (t && p->first) memset(g, 0, sizeof(float) * (size_t)p->nn->n_params);
  p->which_out[t] = list_backward_part(p->nn, p->dout, p->dx, s0, nb, t, g, p->top, p->resume, p->stop, p->which);
}

typedef struct {
  pass *p;
  void (*fn)(void *, int);
  int workers;
} slice_job;

/* worker w runs slices w, w + workers, …: which thread runs a slice never changes what it computes */
static void slice_worker(void *ctx, int w) {
  slice_job *j = ctx;
  for (int t = w; t < j->p->slices; t += j->workers) j->fn(j->p, t);
}

/* runs a pass's slices on min(slices, g_threads) threads */
static void run_slices(pass *p, void (*fn)(void *, int)) {
  if (p->slices <= 1) { fn(p, 0); return; }
  slice_job j = {p, fn, g_threads < p->slices ? g_threads : p->slices};
  g_sliced = 1;
  if (j.workers <= 1) slice_worker(&j, 0);
  else qkd_nn_run_threads(j.workers, slice_worker, &j);
  g_sliced = 0;
}

const float *qkd_nn_forward(qkd_nn *nn, const float *x, int batch, int training, uint64_t step) {
  if (batch < 1 || batch > nn->max_batch) return NULL;
  nn->x = x;
  nn->batch = batch;
  nn->step = step;
  if (nn->n_members == 0) {
    if (nn->n_layers == 0) return x;
    for (int i = 0; i < nn->n_layers; i++) /* flatten aliases its input buffer (as laid out after fusion) */
      if (nn->layers[i].s.kind == QKD_LAYER_FLATTEN) nn->layers[i].y = i ? nn->layers[i - 1].y : (float *)x;
    nn->slices = slices_for(nn, batch);
    nn->training = training;
    pass p = {.nn = nn, .batch = batch, .slices = nn->slices, .training = training, .step = step};
    int n = nn->n_layers, ready = -1; /* ready: the batchnorm whose statistics are reduced */
    for (int a = 0;;) {
      int b = a;
      while (b < n && !(is_sync(nn, b) && b != ready)) b++;
      p.a = a, p.b = b;
      run_slices(&p, forward_slice);
      if (b >= n) break;
      bn_reduce_fwd(&nn->layers[b], batch);
      ready = a = b;
    }
    return nn->layers[n - 1].y;
  }
  long osz = qkd_shape_size(nn->out) * batch;
  float inv = 1.0f / (float)nn->n_members;
  for (int m = 0; m < nn->n_members; m++) {
    const float *o = qkd_nn_forward(nn->members[m], x, batch, training, step * 64u + (uint64_t)m);
    for (long j = 0; j < osz; j++) nn->mean_out[j] = (m ? nn->mean_out[j] : 0.0f) + o[j] * inv;
  }
  return nn->mean_out;
}

void qkd_nn_backward(qkd_nn *nn, const float *dout, float *dx) {
  int batch = nn->batch;
  if (nn->n_members == 0) {
    if (nn->n_layers == 0) {
      if (dx) memcpy(dx, dout, sizeof(float) * (size_t)(batch * qkd_shape_size(nn->in)));
      return;
    }
    pass p = {.nn = nn, .dout = dout, .dx = dx, .batch = batch, .slices = nn->slices, .first = 1};
    p.top = nn->n_layers - 1, p.which = -1;
    for (;;) {
      p.stop = -1;
      for (int j = p.resume ? p.top - 1 : p.top; j >= 0 && p.stop < 0; j--)
        if (is_sync(nn, j)) p.stop = j;
      run_slices(&p, backward_slice);
      if (p.stop < 0) break;
      bn_reduce_bwd(&nn->layers[p.stop], batch);
      if (p.stop == 0 && !dx) break;
      p.top = p.stop, p.resume = 1, p.which = p.which_out[0], p.first = 0;
    }
    /* the slices' partial gradients, added in slice order: the same at every thread count */
    for (int t = 1; t < p.slices; t++) {
      const float *g = nn->work[t].grads;
      for (long j = 0; j < nn->n_params; j++) nn->grads[j] += g[j];
    }
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
