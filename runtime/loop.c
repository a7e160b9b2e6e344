/* loop.c — the training loop of qkd_loop.h. */
#include "qkd_loop.h"
#include "qkd_nn.h"
#include "qkd_time.h"

#include <stdlib.h>

int qkd_loop_run(qkd_loop *L, const qkd_loop_model *m, int *stopped) {
  *stopped = 0;
  int n = L->n, B = L->batch, done = L->first_epoch;
  int *perm = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
  if (!perm) return -1;
  for (int ep = L->first_epoch; ep < L->epochs; ep++) {
    double te = qkd_now_s(), loss_sum = 0;
    qkd_nn_shuffle(perm, n, L->seed, L->stream, (uint64_t)ep);
    for (int i = 0; i < n; i += B) {
      int b = n - i < B ? n - i : B;
      double l = m->step(m->ud, ep, perm + i, b, L->step, (uint64_t)ep * (uint64_t)n + (uint64_t)i);
      loss_sum += l * b;
      if (m->batch_done) m->batch_done(m->ud, ep, L->step, l, (long)ep * n + i + b, L->train_time + qkd_now_s() - te);
      L->step++;
      if (L->stop && *L->stop) {
        *stopped = 1;
        break;
      }
    }
    L->train_time += qkd_now_s() - te;
    if (*stopped) break;
    done = ep + 1;
    if (m->epoch_done(m->ud, ep, n ? loss_sum / n : 0, L) != 0) {
      *stopped = 1;
      break;
    }
  }
  free(perm);
  return done;
}
