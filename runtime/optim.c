/* optim.c — softmax cross-entropy, Adam / SGD with momentum, shuffling and argmax of qkd_nn.h. */
#include "qkd_nn.h"
#include "qkd_rng.h"

#include <math.h>
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

/* sqrtf of a negative sets errno, which keeps compilers from vectorising the loop: with SSE the
 * body runs four lanes at a time with sqrtps (correctly rounded, like sqrtf: same results). */
static void adam_range(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, long n, float b1,
                       float b2, float step, float isb2, float eps) {
  float c1 = 1.0f - b1, c2 = 1.0f - b2;
  long i = 0;
#ifdef __SSE__
  const __m128 vb1 = _mm_set1_ps(b1), vb2 = _mm_set1_ps(b2), vc1 = _mm_set1_ps(c1), vc2 = _mm_set1_ps(c2);
  const __m128 vst = _mm_set1_ps(step), vis = _mm_set1_ps(isb2), veps = _mm_set1_ps(eps);
  for (; i + 4 <= n; i += 4) {
    __m128 gi = _mm_loadu_ps(g + i);
    __m128 mi = _mm_add_ps(_mm_mul_ps(vb1, _mm_loadu_ps(m + i)), _mm_mul_ps(vc1, gi));
    __m128 vi = _mm_add_ps(_mm_mul_ps(vb2, _mm_loadu_ps(v + i)), _mm_mul_ps(_mm_mul_ps(vc2, gi), gi));
    _mm_storeu_ps(m + i, mi);
    _mm_storeu_ps(v + i, vi);
    __m128 den = _mm_add_ps(_mm_mul_ps(_mm_sqrt_ps(vi), vis), veps);
    _mm_storeu_ps(p + i, _mm_sub_ps(_mm_loadu_ps(p + i), _mm_div_ps(_mm_mul_ps(vst, mi), den)));
  }
#endif
  for (; i < n; i++) {
    float mi = b1 * m[i] + c1 * g[i], vi = b2 * v[i] + c2 * g[i] * g[i];
    m[i] = mi;
    v[i] = vi;
    p[i] -= step * mi / (sqrtf(vi) * isb2 + eps);
  }
}

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
  if (o->n >= (1L << 20)) j.parts = qkd_nn_get_threads();
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
