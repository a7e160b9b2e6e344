/* optim.c — softmax cross-entropy, Adam / SGD with momentum, shuffling and argmax of qkd_nn.h. */
#include "qkd_nn.h"
#include "qkd_rng.h"

#include <math.h>
#include <stdlib.h>
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

void qkd_nn_optim_step(qkd_nn_optim *o, float *p, const float *g) {
  o->t++;
  long n = o->n;
  if (o->kind == QKD_NN_ADAM) {
    float b1 = (float)o->beta1, b2 = (float)o->beta2;
    double bc1 = 1.0 - pow(o->beta1, (double)o->t), bc2 = 1.0 - pow(o->beta2, (double)o->t);
    float step = (float)(o->lr / bc1), isb2 = (float)(1.0 / sqrt(bc2)), eps = (float)o->eps;
    float *m = o->m, *v = o->v;
    for (long i = 0; i < n; i++) {
      m[i] = b1 * m[i] + (1.0f - b1) * g[i];
      v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
      p[i] -= step * m[i] / (sqrtf(v[i]) * isb2 + eps);
    }
  } else {
    float mu = (float)o->momentum, lr = (float)o->lr;
    float *b = o->m;
    if (mu == 0.0f) {
      for (long i = 0; i < n; i++) p[i] -= lr * g[i];
    } else if (o->t == 1) {
      for (long i = 0; i < n; i++) { b[i] = g[i]; p[i] -= lr * b[i]; }
    } else {
      for (long i = 0; i < n; i++) { b[i] = mu * b[i] + g[i]; p[i] -= lr * b[i]; }
    }
  }
}

void qkd_nn_optim_free(qkd_nn_optim *o) {
  free(o->m);
  free(o->v);
  o->m = o->v = NULL;
}

void qkd_nn_shuffle(int *perm, int n, uint64_t seed, uint64_t epoch) {
  for (int i = 0; i < n; i++) perm[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)(qkd_rng_u64(seed, QKD_STREAM_SHUFFLE, (epoch << 32) + (uint64_t)i) % (uint64_t)(i + 1));
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
