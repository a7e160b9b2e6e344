/* teacher.c — the training loop, evaluation and teacher logits of qkd_teacher.h. */
#include "qkd_teacher.h"
#include "qkd_npy.h"
#include "qkd_time.h"
#include "qkd_loop.h"
#include "qkd_rng.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void note(const qkd_teacher_job *job, const char *fmt, ...) {
  if (!job->note) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  job->note(job->note_ctx, msg);
}

double qkd_nn_evaluate(qkd_nn *net, const qkd_dataset *ds, const qkd_split *split, long *confusion) {
  int B = qkd_nn_max_batch(net), C = (int)qkd_shape_size(qkd_nn_out(net));
  long npix = (long)ds->c * ds->h * ds->w;
  float *x = malloc(sizeof(float) * (size_t)(B * npix));
  int *y = malloc(sizeof(int) * (size_t)B), *idx = malloc(sizeof(int) * (size_t)B);
  if (!x || !y || !idx || split->n == 0) { free(x); free(y); free(idx); return 0.0; }
  long correct = 0;
  for (int i = 0; i < split->n; i += B) {
    int n = split->n - i < B ? split->n - i : B;
    for (int j = 0; j < n; j++) idx[j] = i + j;
    qkd_data_batch(ds, split, idx, n, x, y);
    const float *z = qkd_nn_forward(net, x, n, 0, 0);
    correct += qkd_nn_argmax_count(z, n, C, y, NULL, confusion);
  }
  free(x); free(y); free(idx);
  return (double)correct / split->n;
}

float *qkd_teacher_logits(qkd_nn *net, const qkd_dataset *ds, const qkd_split *split) {
  int B = qkd_nn_max_batch(net), C = (int)qkd_shape_size(qkd_nn_out(net));
  long npix = (long)ds->c * ds->h * ds->w;
  float *out = malloc(sizeof(float) * (size_t)split->n * (size_t)C + 1);
  float *x = malloc(sizeof(float) * (size_t)(B * npix));
  int *idx = malloc(sizeof(int) * (size_t)B);
  if (!out || !x || !idx) { free(out); free(x); free(idx); return NULL; }
  for (int i = 0; i < split->n; i += B) {
    int n = split->n - i < B ? split->n - i : B;
    for (int j = 0; j < n; j++) idx[j] = i + j;
    qkd_data_batch(ds, split, idx, n, x, NULL);
    memcpy(out + (size_t)i * C, qkd_nn_forward(net, x, n, 0, 0), sizeof(float) * (size_t)n * C);
  }
  free(x); free(idx);
  return out;
}

/* Rows split->orig_index[i], columns col[k], of one logits file into out [split->n][C]. */
static int pick_logits(const char *path, const qkd_split *split, long cols, const int *col, int C, float *out, qkd_error *err) {
  qkd_npy a;
  if (qkd_npy_load(path, NULL, 0, &a, err) != 0) return -1;
  int rc = 0;
  if (a.ndim != 2 || (a.type != QKD_NPY_F32 && a.type != QKD_NPY_F64))
    rc = qkd_fail(err, QKD_ERR_FORMAT, path, "logits must be a 2-dimensional float32 or float64 array (rows, classes), not %s of %d dimension%s",
                  qkd_npy_descr(a.type), a.ndim, a.ndim == 1 ? "" : "s");
  else if (a.shape[1] != cols)
    rc = qkd_fail(err, QKD_ERR_FORMAT, path, "has %ld columns, but the training logits have %ld", a.shape[1], cols);
  for (long i = 0; rc == 0 && i < a.count; i++)
    if (!isfinite(qkd_npy_get(&a, i)))
      rc = qkd_fail(err, QKD_ERR_FORMAT, path, "logit %ld of row %ld is not finite", i % a.shape[1], i / a.shape[1]);
  for (int i = 0; rc == 0 && i < split->n; i++) {
    long r = split->orig_index[i];
    if (r >= a.shape[0]) {
      rc = qkd_fail(err, QKD_ERR_FORMAT, path, "has %ld rows, but the data set has item %ld of this split", a.shape[0], r);
      break;
    }
    for (int k = 0; k < C; k++) out[(size_t)i * C + k] = (float)qkd_npy_get(&a, r * a.shape[1] + col[k]);
  }
  qkd_npy_free(&a);
  return rc;
}

int qkd_teacher_from_logits(const char *train_path, const char *test_path, const qkd_dataset *ds, const qkd_data_opts *o,
                            float **train_logits, double *test_accuracy, qkd_error *err) {
  *train_logits = NULL;
  int C = ds->n_classes;
  qkd_npy h;
  if (qkd_npy_load(train_path, NULL, 1, &h, err) != 0) return -1;
  long cols = h.ndim == 2 ? h.shape[1] : -1;
  int *col = malloc(sizeof(int) * (size_t)C + 1);
  float *tr = malloc(sizeof(float) * (size_t)ds->train.n * (size_t)C + 1);
  float *te = malloc(sizeof(float) * (size_t)ds->test.n * (size_t)C + 1);
  int rc = 0;
  if (!col || !tr || !te) rc = qkd_fail(err, QKD_ERR_MEMORY, train_path, "out of memory");
  for (int k = 0; rc == 0 && k < C; k++) col[k] = cols == ds->source_classes && o->n_classes > 0 ? o->classes[k] : k;
  if (rc == 0 && h.ndim == 2 && cols != ds->source_classes && cols != C)
    rc = qkd_fail(err, QKD_ERR_FORMAT, train_path, "has %ld columns, but the data set has %d classes (%d labels in its source)", cols, C,
                  ds->source_classes);
  if (rc == 0) rc = pick_logits(train_path, &ds->train, cols, col, C, tr, err);
  if (rc == 0) rc = pick_logits(test_path, &ds->test, cols, col, C, te, err);
  if (rc == 0) *test_accuracy = (double)qkd_nn_argmax_count(te, ds->test.n, C, ds->test.y, NULL, NULL) / ds->test.n;
  free(col);
  free(te);
  if (rc != 0) free(tr);
  else *train_logits = tr;
  return rc;
}

void qkd_teacher_result_free(qkd_teacher_result *r) {
  qkd_nn_free(r->net);
  free(r->test_accuracy);
  free(r->val_accuracy);
  free(r->train_loss);
  memset(r, 0, sizeof *r);
}

/* One training's state for the loop's callbacks (qkd_loop.h). */
typedef struct {
  const qkd_teacher_job *job;
  const char *name;
  qkd_nn *net;
  const qkd_dataset *ds;
  qkd_teacher_result *res;
  qkd_nn_optim *opt;
  float *x, *dz;
  int *y;
  long steps;      /* of the whole run, for the schedule */
  double t_epoch;  /* when the current epoch began */
} fit_ctx;

static double fit_step(void *ud, int epoch, const int *idx, int b, long step, uint64_t first) {
  (void)first;
  fit_ctx *f = ud;
  const qkd_fit *fit = &f->job->net->fit;
  const qkd_recipe *rc = &f->job->recipe;
  qkd_data_batch(f->ds, &f->ds->train, idx, b, f->x, f->y);
  if (fit->crop_pad || fit->flip)
    qkd_data_augment(f->x, b, f->ds->c, f->ds->h, f->ds->w, idx, fit->crop_pad, fit->flip, rc->seed, (uint64_t)epoch);
  f->opt->lr = rc->lr * qkd_nn_schedule(fit->schedule, step, f->steps);
  const float *z = qkd_nn_forward(f->net, f->x, b, 1, (uint64_t)step);
  double loss = qkd_nn_softmax_ce(z, f->y, b, f->ds->n_classes, f->dz);
  qkd_nn_zero_grad(f->net);
  qkd_nn_backward(f->net, f->dz, NULL);
  qkd_nn_optim_step(f->opt, qkd_nn_params(f->net), qkd_nn_grads(f->net));
  return loss;
}

static int fit_epoch_done(void *ud, int e, double loss, const qkd_loop *L) {
  fit_ctx *f = ud;
  qkd_teacher_result *res = f->res;
  res->train_images += f->ds->train.n;
  res->train_loss[e] = loss;
  res->test_accuracy[e] = qkd_nn_evaluate(f->net, f->ds, &f->ds->test, NULL);
  if (res->val_accuracy) res->val_accuracy[e] = qkd_nn_evaluate(f->net, f->ds, &f->ds->val, NULL);
  double t = qkd_now_s();
  note(f->job, "%s: epoch %d/%d loss %.4f test accuracy %.4f (%.0f images/s)", f->name, e + 1, L->epochs,
       res->train_loss[e], res->test_accuracy[e], f->ds->train.n / (t - f->t_epoch));
  f->t_epoch = t;
  return 0;
}

int qkd_teacher_train(const qkd_teacher_job *job, qkd_teacher_result *res, qkd_error *err) {
  memset(res, 0, sizeof *res);
  double t0 = qkd_now_s();
  const qkd_dataset *ds = job->data;
  const qkd_recipe *rc = &job->recipe;
  const char *name = job->name ? job->name : "teacher";
  if (rc->epochs < 1 || rc->batch < 1) return qkd_fail(err, QKD_ERR_INPUT, name, "epochs and batch must be >= 1");
  if (job->threads > 0) qkd_nn_set_threads(job->threads);
  qkd_shape in = {ds->c, ds->h, ds->w, 0};
  int B = rc->batch;
  qkd_nn *net = qkd_nn_create(job->net, in, 0, B, err);
  if (!net) return qkd_error_about(err, name), -1;
  qkd_shape out = qkd_nn_out(net);
  if (qkd_shape_size(out) != ds->n_classes) {
    qkd_fail(err, QKD_ERR_INPUT, name, "the net has %ld outputs but the data set has %d classes", qkd_shape_size(out),
             ds->n_classes);
    qkd_nn_free(net);
    return -1;
  }
  int E = rc->epochs, C = ds->n_classes;
  res->net = net;
  res->params = qkd_nn_param_count(net);
  res->epochs = E;
  res->test_accuracy = calloc((size_t)E, sizeof(double));
  if (ds->val.n > 0) res->val_accuracy = calloc((size_t)E, sizeof(double));
  if (!res->test_accuracy || (ds->val.n > 0 && !res->val_accuracy)) { qkd_teacher_result_free(res); return qkd_fail(err, QKD_ERR_MEMORY, name, "out of memory"); }
  uint64_t key = qkd_cache_key(job->net, in, rc, job->data_opts, ds);
  qkd_error why;
  if (job->cache_path) {
    if (qkd_cache_load(job->cache_path, key, qkd_nn_params(net), res->params, qkd_nn_state(net), qkd_nn_state_count(net),
                       res->test_accuracy, E, &why) == 0) {
      res->cached = 1;
      if (res->val_accuracy) res->val_accuracy[E - 1] = qkd_nn_evaluate(net, ds, &ds->val, NULL);
      res->seconds = qkd_now_s() - t0;
      note(job, "%s: loaded from %s", name, job->cache_path);
      return 0;
    }
    /* a file that cannot be opened is the normal first run; anything else deserves a warning */
    if (why.kind != QKD_ERR_IO) note(job, "%s: warning: %s; retraining %s", why.path, why.msg, name);
    memset(res->test_accuracy, 0, sizeof(double) * (size_t)E);
  }
  res->train_loss = calloc((size_t)E, sizeof(double));
  long npix = (long)ds->c * ds->h * ds->w;
  float *x = malloc(sizeof(float) * (size_t)(B * npix)), *dz = malloc(sizeof(float) * (size_t)(B * C));
  int *y = malloc(sizeof(int) * (size_t)B);
  qkd_nn_optim opt;
  int ok = res->train_loss && x && dz && y &&
           qkd_nn_optim_init(&opt, rc->optimizer, rc->lr, rc->beta1, rc->beta2, rc->momentum, res->params) == 0;
  if (!ok) {
    free(x); free(dz); free(y);
    qkd_fail(err, QKD_ERR_MEMORY, name, "out of memory for training (%ld parameters)", res->params);
    qkd_teacher_result_free(res);
    return -1;
  }
  qkd_nn_init(net, rc->seed);
  fit_ctx fc = {job, name, net, ds, res, &opt, x, dz, y, (long)E * ((ds->train.n + B - 1) / B), 0};
  qkd_loop L = {.n = ds->train.n, .batch = B, .epochs = E, .seed = rc->seed, .stream = QKD_STREAM_SHUFFLE};
  qkd_loop_model model = {&fc, fit_step, NULL, fit_epoch_done};
  int stopped;
  fc.t_epoch = qkd_now_s();
  if (qkd_loop_run(&L, &model, &stopped) < 0) {
    free(x); free(dz); free(y);
    qkd_nn_optim_free(&opt);
    qkd_teacher_result_free(res);
    return qkd_fail(err, QKD_ERR_MEMORY, name, "out of memory for training");
  }
  res->train_seconds = L.train_time;
  free(x); free(dz); free(y);
  qkd_nn_optim_free(&opt);
  if (job->cache_path &&
      qkd_cache_save(job->cache_path, key, qkd_nn_params(net), res->params, qkd_nn_state(net), qkd_nn_state_count(net),
                     res->test_accuracy, E, &why) != 0) {
    char text[QKD_ERROR_TEXT_MAX];
    note(job, "%s (continuing without the cache)", qkd_error_text(&why, text, sizeof text));
  }
  res->seconds = qkd_now_s() - t0;
  return 0;
}
