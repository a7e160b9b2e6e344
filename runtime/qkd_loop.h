/* qkd_loop.h — the one training loop, shared by teachers (teacher.c) and students (train.c):
 * epochs of shuffled batches over the training split, a callback per batch and per epoch.
 *
 * Owns: the batch order (perm) and the clock of the training time. The model — its forward,
 * loss, backward and optimizer steps, its evaluation and checkpoints — is the caller's, behind
 * qkd_loop_model.
 *
 * Promises:
 *  - epoch e visits the rows qkd_nn_shuffle(seed, stream, e) in batches of `batch`, the last one
 *    partial (PyTorch's drop_last = False); batch k of the run (0-based, counted over epochs) is
 *    step k, and its first sample has the global number e * n + offset. Nothing here draws any
 *    other random number, so a run is a function of the model and (seed, stream).
 *  - a run resumed at first_epoch with the step and training time of that point repeats the
 *    remaining epochs exactly (the orders depend on the epoch only).
 *  - the loss passed to epoch_done is the mean over the epoch's samples of the batches' mean losses;
 *    train_time counts the batches' time only (not epoch_done's evaluation or checkpoint).
 *  - *stop (when set, e.g. by a signal handler) is read after every batch: the run stops there,
 *    without calling epoch_done for the unfinished epoch. */
#ifndef QKD_LOOP_H
#define QKD_LOOP_H

#include <stdint.h>

typedef struct {
  int n, batch, epochs;             /* training rows, batch size, epochs of the whole run */
  uint64_t seed;                    /* batch orders: qkd_nn_shuffle(seed, stream, epoch) */
  int stream;
  int first_epoch;                  /* 0, or the finished epochs of a resumed run */
  long step;                        /* in: the first step (resumed: batches already run); out: steps run */
  double train_time;                /* in: seconds already trained (resumed); out: the total */
  const volatile int *stop;         /* may be NULL */
} qkd_loop;

typedef struct {
  void *ud;
  /* One optimisation step on training rows idx[0..b): returns the batch's mean loss. */
  double (*step)(void *ud, int epoch, const int *idx, int b, long step, uint64_t first);
  /* After each batch (may be NULL): samples = samples trained in the run so far, from epoch 0,
   * elapsed = training seconds so far (train_time in, plus this run's). */
  void (*batch_done)(void *ud, int epoch, long step, double loss, long samples, double elapsed);
  /* After each finished epoch: evaluate, record, checkpoint (L->step and L->train_time are
   * current). Returns 0, or nonzero to end the run there (as a stop). */
  int (*epoch_done)(void *ud, int epoch, double loss, const qkd_loop *L);
} qkd_loop_model;

/* Runs epochs first_epoch..epochs-1. Returns the epochs finished in all (first_epoch when none
 * ran), -1 when out of memory. *stopped = 1 when *stop or epoch_done ended it early. */
int qkd_loop_run(qkd_loop *L, const qkd_loop_model *m, int *stopped);

#endif
