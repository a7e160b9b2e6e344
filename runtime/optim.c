/* optim.c — softmax cross-entropy, Adam / SGD with momentum, shuffling and argmax of qkd_nn.h. */
#include "qkd_nn.h"
#include "qkd_rng.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#ifdef __SSE__
#include <immintrin.h>
#endif
#include <string.h>

double qkd_nn_softmax_ce(const float *logits, const int *labels, int batch, int classes, float *dlogits) {
  double total = 0.0;
  for (int s = 0; s < batch; s++) {
    const float *z = logits + (long)s * classes;
    double mx = z[0];
    for (int c = 1; c < classes; c++) if (z[c] > mx) mx = z[c];
    double sum = 0.0;
    for (int c = 0; c < classes; c++) sum += exp((double)z[c] - mx);
    double lse = mx + log(sum);
    total += lse - (double)z[labels[s]];
    if (dlogits) {
      float *d = dlogits + (long)s * classes;
      for (int c = 0; c < classes; c++)
        d[c] = (float)((exp((double)z[c] - lse) - (c == labels[s] ? 1.0 : 0.0)) / batch);
    }
  }
  return total / batch;
}

int qkd_nn_optim_init(qkd_nn_optim *o, int kind, double lr, double beta1, double beta2, double momentum, long n) {
  memset(o, 0, sizeof *o);
  o->kind = kind;
  o->lr = lr;
  o->beta1 = beta1;
  o->beta2 = beta2;
  o->eps = 1e-8;
  o->momentum = momentum;
  o->n = n;
  o->m = calloc((size_t)n + 1, sizeof(float));
  if (kind == QKD_NN_ADAM) o->v = calloc((size_t)n + 1, sizeof(float));
  if (!o->m || (kind == QKD_NN_ADAM && !o->v)) { qkd_nn_optim_free(o); return -1; }
  return 0;
}

int qkd_nn_optim_init_f64(qkd_nn_optim *o, int kind, double lr, double beta1, double beta2, double momentum, long n) {
  *o = (qkd_nn_optim){.kind = kind, .lr = lr, .beta1 = beta1, .beta2 = beta2, .eps = 1e-8, .momentum = momentum, .n = n};
  o->dm = calloc((size_t)n + 1, sizeof(double));
  o->dv = calloc((size_t)n + 1, sizeof(double));
  if (!o->dm || !o->dv) { qkd_nn_optim_free(o); return -1; }
  return 0;
}

void qkd_nn_optim_step_f64(qkd_nn_optim *o, double *p, const double *g) {
  o->t++;
  if (o->kind == QKD_NN_SGD) {
    for (long i = 0; i < o->n; i++) {
      o->dm[i] = o->t == 1 ? g[i] : o->momentum * o->dm[i] + g[i];
      p[i] -= o->lr * o->dm[i];
    }
    return;
  }
  double bc1 = 1 - pow(o->beta1, (double)o->t), sb2 = sqrt(1 - pow(o->beta2, (double)o->t));
  for (long i = 0; i < o->n; i++) {
    o->dm[i] = o->beta1 * o->dm[i] + (1 - o->beta1) * g[i];
    o->dv[i] = o->beta2 * o->dv[i] + (1 - o->beta2) * g[i] * g[i];
    p[i] -= o->lr / bc1 * o->dm[i] / (sqrt(o->dv[i]) / sb2 + o->eps);
  }
}

double qkd_nn_schedule(int kind, long t, long T) {
  if (kind == QKD_SCHEDULE_COSINE && T > 0) return 0.5 * (1.0 + cos(3.14159265358979323846 * (double)t / (double)T));
  return 1.0;
}

typedef struct {
  const qkd_nn_optim *o;
  float *p;
  const float *g;
  float b1, b2, step, isb2, eps, mu, lr;
  int parts;
} optim_job;

/* sqrtf of a negative sets errno, which keeps compilers from vectorising the loop: the body runs
 * with sqrt/div vector instructions (correctly rounded, like sqrtf: same results), eight lanes at
 * a time with AVX when the CPU has it (chosen at run time), else four with SSE. The AVX body is
 * compiled without FMA, so no multiply-add is ever contracted: every lane computes exactly the
 * scalar formula's operations in its order, and the bits do not depend on the width.
 * ADAM_LANES: one loop for both widths, W lanes of type T with the intrinsics prefixed X. */
#define ADAM_LANES(W, T, X)                                                                               \
  for (; i + (W) <= n; i += (W)) {                                                                         \
    T gi = X##_loadu_ps(g + i);                                                                            \
    T mi = X##_add_ps(X##_mul_ps(X##_set1_ps(b1), X##_loadu_ps(m + i)), X##_mul_ps(X##_set1_ps(c1), gi));   \
    T vi = X##_add_ps(X##_mul_ps(X##_set1_ps(b2), X##_loadu_ps(v + i)),                                    \
                      X##_mul_ps(X##_mul_ps(X##_set1_ps(c2), gi), gi));                                    \
    X##_storeu_ps(m + i, mi);                                                                              \
    X##_storeu_ps(v + i, vi);                                                                              \
    T den = X##_add_ps(X##_mul_ps(X##_sqrt_ps(vi), X##_set1_ps(isb2)), X##_set1_ps(eps));                  \
    X##_storeu_ps(p + i, X##_sub_ps(X##_loadu_ps(p + i), X##_div_ps(X##_mul_ps(X##_set1_ps(step), mi), den))); \
  }

#if defined(__SSE__) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define ADAM_AVX 1
__attribute__((target("avx"))) static long adam_avx(float *restrict p, const float *restrict g, float *restrict m,
                                                    float *restrict v, long n, float b1, float b2, float step,
                                                    float isb2, float eps) {
  float c1 = 1.0f - b1, c2 = 1.0f - b2;
  long i = 0;
  ADAM_LANES(8, __m256, _mm256)
  return i;
}

/* qkd_nn_simd, asked once (it reads the environment and the CPU): every thread gets the same */
static int has_avx(void) {
  static _Atomic int known = -1;
  int k = atomic_load_explicit(&known, memory_order_relaxed);
  if (k < 0) {
    k = qkd_nn_simd() >= 1;
    atomic_store_explicit(&known, k, memory_order_relaxed);
  }
  return k;
}
#else
#define ADAM_AVX 0
#endif

static void adam_range(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, long n, float b1,
                       float b2, float step, float isb2, float eps) {
  float c1 = 1.0f - b1, c2 = 1.0f - b2;
  long i = 0;
#if ADAM_AVX
  if (has_avx()) i = adam_avx(p, g, m, v, n, b1, b2, step, isb2, eps);
#endif
#ifdef __SSE__
  ADAM_LANES(4, __m128, _mm)
#endif
  for (; i < n; i++) {
    float mi = b1 * m[i] + c1 * g[i], vi = b2 * v[i] + c2 * g[i] * g[i];
    m[i] = mi;
    v[i] = vi;
    p[i] -= step * mi / (sqrtf(vi) * isb2 + eps);
  }
}

/* Blocks of at least this many parameters are split over the threads (a student's dense(784 -> 256)
 * has 200,960: its Adam step is a fifth of the student's training time on one thread). */
#define OPTIM_SPLIT (1L << 15)

static void sgd_range(float *restrict p, const float *restrict g, float *restrict b, long n, float mu, float lr, int first) {
  if (mu == 0.0f) {
    for (long i = 0; i < n; i++) p[i] -= lr * g[i];
  } else if (first) {
    for (long i = 0; i < n; i++) { b[i] = g[i]; p[i] -= lr * b[i]; }
  } else {
    for (long i = 0; i < n; i++) { b[i] = mu * b[i] + g[i]; p[i] -= lr * b[i]; }
  }
}

static void optim_part(void *ctx, int t) {
  const optim_job *j = ctx;
  const qkd_nn_optim *o = j->o;
  long lo = o->n * t / j->parts, hi = o->n * (t + 1) / j->parts;
  if (o->kind == QKD_NN_ADAM)
    adam_range(j->p + lo, j->g + lo, o->m + lo, o->v + lo, hi - lo, j->b1, j->b2, j->step, j->isb2, j->eps);
  else
    sgd_range(j->p + lo, j->g + lo, o->m + lo, hi - lo, j->mu, j->lr, o->t == 1);
}

void qkd_nn_optim_step(qkd_nn_optim *o, float *p, const float *g) {
  o->t++;
  optim_job j = {o, p, g, (float)o->beta1, (float)o->beta2, 0, 0, (float)o->eps, (float)o->momentum, (float)o->lr, 1};
  if (o->kind == QKD_NN_ADAM) {
    double bc1 = 1.0 - pow(o->beta1, (double)o->t), bc2 = 1.0 - pow(o->beta2, (double)o->t);
    j.step = (float)(o->lr / bc1);
    j.isb2 = (float)(1.0 / sqrt(bc2));
  }
  if (o->n >= OPTIM_SPLIT) j.parts = qkd_nn_get_threads();
  qkd_nn_run_threads(j.parts, optim_part, &j);
}

void qkd_nn_optim_free(qkd_nn_optim *o) {
  free(o->m);
  free(o->v);
  free(o->dm);
  free(o->dv);
  o->m = o->v = NULL;
  o->dm = o->dv = NULL;
}

void qkd_nn_shuffle(int *perm, int n, uint64_t seed, int stream, uint64_t epoch) {
  for (int i = 0; i < n; i++) perm[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)(qkd_rng_u64(seed, (uint64_t)stream, (epoch << 32) + (uint64_t)i) % (uint64_t)(i + 1));
    int t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

int qkd_nn_argmax_count(const float *logits, int n, int classes, const int *labels, int *pred, long *confusion) {
  int correct = 0;
  for (int s = 0; s < n; s++) {
    const float *z = logits + (long)s * classes;
    int best = 0;
    for (int c = 1; c < classes; c++) if (z[c] > z[best]) best = c;
    if (pred) pred[s] = best;
    if (labels) {
      correct += best == labels[s];
      if (confusion) confusion[(long)labels[s] * classes + best]++;
    }
  }
  return correct;
}
