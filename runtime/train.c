/* train.c — the hybrid student trainer (qkd_train.h). */
#include "qkd_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qkd_loss.h"
#include "qkd_nn.h"
#include "qkd_par.h"
#include "qkd_rng.h"
#include "qsim.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Seeds of the independent parts of one run, all from the recipe's seed. */
enum { SEED_PRE = 1, SEED_HEAD = 2, SEED_CIRCUIT = 3, SEED_SHOTS = 4, SEED_EVAL_SHOTS = 5 };
static uint64_t sub_seed(int seed, int part) { return qkd_rng_u64((uint64_t)seed, QKD_STREAM_INIT, 0x100 + part); }

/* Adam / SGD on double parameters (the circuit), same semantics as qkd_nn_optim. */
typedef struct {
  const qkd_m_train *t;
  long step;
  double *m, *v;
} dopt;

static void dopt_step(dopt *o, double *p, const double *g, int n) {
  const qkd_m_train *t = o->t;
  o->step++;
  if (t->optimizer == QKD_OPT_SGD) {
    for (int i = 0; i < n; i++) {
      o->m[i] = o->step == 1 ? g[i] : t->momentum * o->m[i] + g[i];
      p[i] -= t->lr * o->m[i];
    }
    return;
  }
  double b1 = 1 - pow(t->beta1, (double)o->step), b2 = 1 - pow(t->beta2, (double)o->step);
  for (int i = 0; i < n; i++) {
    o->m[i] = t->beta1 * o->m[i] + (1 - t->beta1) * g[i];
    o->v[i] = t->beta2 * o->v[i] + (1 - t->beta2) * g[i] * g[i];
    p[i] -= t->lr / b1 * o->m[i] / (sqrt(o->v[i]) / sqrt(b2) + 1e-8);
  }
}

struct student {
  const qkd_m_experiment *e;
  const qkd_m_student *st;
  const qkd_dataset *ds;
  const qkd_kernel *k;
  int B, C, F, O, P, img;
  qkd_nn *pre, *head;        /* trainable pre (dense, net) and head (dense) */
  qkd_nn_reduce red;         /* fixed pre */
  int has_red;
  qkd_nn_optim pre_opt, head_opt;
  dopt circ_opt;
  double *theta, *dtheta;    /* [P] */
  /* batch buffers */
  float *x, *feat_f, *out_f, *dout_f, *dfeat_f, *dlogits_f;
  double *feat, *out, *dout, *dfeat, *logits, *dlogits, *tlogits;
  int *y, *idx;
  qkd_par_pool *pool;
  int f32;                   /* precision: f32 — the kernel runs in single precision */
  float *feat32, *out32, *dout32, *dfeat32, *theta32, *dtheta32;
  long zero_vectors;
  int count_zero;            /* count all-zero amplitude inputs (first training epoch only) */
};
typedef struct student student;

static void student_free(student *s) {
  qkd_nn_free(s->pre);
  qkd_nn_free(s->head);
  if (s->has_red) qkd_nn_reduce_free(&s->red);
  qkd_nn_optim_free(&s->pre_opt);
  qkd_nn_optim_free(&s->head_opt);
  free(s->circ_opt.m); free(s->circ_opt.v);
  free(s->theta); free(s->dtheta);
  free(s->x); free(s->feat_f); free(s->out_f); free(s->dout_f); free(s->dfeat_f); free(s->dlogits_f);
  free(s->feat); free(s->out); free(s->dout); free(s->dfeat); free(s->logits); free(s->dlogits); free(s->tlogits);
  free(s->y); free(s->idx);
  free(s->feat32); free(s->out32); free(s->dout32); free(s->dfeat32); free(s->theta32); free(s->dtheta32);
  qkd_par_destroy(s->pool);
}

#define ALLOC(p, n) do { (p) = calloc((size_t)(n) + 1, sizeof *(p)); if (!(p)) goto oom; } while (0)

static int student_init(student *s, const qkd_m_experiment *e, const qkd_dataset *ds, const qkd_kernel *k,
                        int threads, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->e = e, s->st = &e->student, s->ds = ds, s->k = k;
  const qkd_m_student *st = s->st;
  s->B = e->train.batch;
  s->C = ds->n_classes;
  s->img = ds->c * ds->h * ds->w;
  s->F = st->circuit.n_features;
  s->O = qkd_ir_outputs(&st->circuit);
  s->P = st->circuit.n_params;
  qkd_shape in = {ds->c, ds->h, ds->w, 0};
  int seed = e->train.seed;
  static const qkd_layer_spec dense_tmpl = {.kind = QKD_LAYER_DENSE, .stride = 1};
  qkd_layer_spec *pre_dense = NULL;
  if (st->pre == QKD_PRE_DENSE || st->pre == QKD_PRE_NET) {
    qkd_net_spec spec = st->pre_net;
    qkd_layer_spec dl = dense_tmpl;
    if (st->pre == QKD_PRE_DENSE) {
      dl.units = st->pre_k;
      pre_dense = &dl;
      spec = (qkd_net_spec){.name = "pre", .n_layers = 1, .layers = pre_dense};
    }
    if (!(s->pre = qkd_nn_create(&spec, in, 1, s->B, err, errlen))) return -1;
    qkd_nn_init(s->pre, sub_seed(seed, SEED_PRE));
    if (qkd_nn_optim_init(&s->pre_opt, e->train.optimizer == QKD_OPT_SGD ? QKD_NN_SGD : QKD_NN_ADAM, e->train.lr,
                          e->train.beta1, e->train.beta2, e->train.momentum, qkd_nn_param_count(s->pre)) != 0)
      goto oom;
  } else if (st->pre != QKD_PRE_NONE) {
    int kind = st->pre == QKD_PRE_PCA ? QKD_NN_RED_PCA : st->pre == QKD_PRE_AVGPOOL_TO ? QKD_NN_RED_AVGPOOL_TO
             : st->pre == QKD_PRE_MAXPOOL_TO ? QKD_NN_RED_MAXPOOL_TO : QKD_NN_RED_CROP;
    if (qkd_nn_reduce_init(&s->red, kind, in, st->pre_k, st->pre_h, st->pre_w, err, errlen) != 0) return -1;
    s->has_red = 1;
    if (kind == QKD_NN_RED_PCA) {
      int n = ds->train.n;
      float *all = malloc(sizeof(float) * (size_t)n * s->img + 1);
      if (!all) goto oom;
      qkd_data_batch(ds, &ds->train, NULL, n, all, NULL);
      int rc = qkd_nn_reduce_fit(&s->red, all, n, err, errlen);
      free(all);
      if (rc != 0) return -1;
    }
  }
  if (st->head_dense) {
    qkd_layer_spec hl = dense_tmpl;
    hl.units = st->head_dense;
    qkd_net_spec spec = {.name = "head", .n_layers = 1, .layers = &hl};
    if (!(s->head = qkd_nn_create(&spec, (qkd_shape){s->O, 1, 1, 1}, 1, s->B, err, errlen))) return -1;
    qkd_nn_init(s->head, sub_seed(seed, SEED_HEAD));
    if (qkd_nn_optim_init(&s->head_opt, e->train.optimizer == QKD_OPT_SGD ? QKD_NN_SGD : QKD_NN_ADAM, e->train.lr,
                          e->train.beta1, e->train.beta2, e->train.momentum, qkd_nn_param_count(s->head)) != 0)
      goto oom;
  }
  ALLOC(s->theta, s->P);
  ALLOC(s->dtheta, s->P);
  ALLOC(s->circ_opt.m, s->P);
  ALLOC(s->circ_opt.v, s->P);
  s->circ_opt.t = &e->train;
  uint64_t cs = sub_seed(seed, SEED_CIRCUIT);
  for (int i = 0; i < s->P; i++) s->theta[i] = 2 * M_PI * qkd_rng_uniform(cs, QKD_STREAM_INIT, (uint64_t)i);
  int B = s->B, W = s->img > s->F ? s->img : s->F;
  ALLOC(s->x, (long)B * s->img);
  ALLOC(s->feat_f, (long)B * W);
  ALLOC(s->dfeat_f, (long)B * W);
  ALLOC(s->feat, (long)B * W);
  ALLOC(s->dfeat, (long)B * W);
  ALLOC(s->out, (long)B * s->O);
  ALLOC(s->dout, (long)B * s->O);
  ALLOC(s->out_f, (long)B * s->O);
  ALLOC(s->dout_f, (long)B * s->O);
  ALLOC(s->logits, (long)B * s->C);
  ALLOC(s->dlogits, (long)B * s->C);
  ALLOC(s->dlogits_f, (long)B * s->C);
  ALLOC(s->tlogits, (long)B * s->C);
  ALLOC(s->y, B);
  ALLOC(s->idx, B);
  s->f32 = st->circuit.precision == QKD_PREC_F32;
  if (s->f32) {
    ALLOC(s->feat32, (long)B * W);
    ALLOC(s->dfeat32, (long)B * W);
    ALLOC(s->out32, (long)B * s->O);
    ALLOC(s->dout32, (long)B * s->O);
    ALLOC(s->theta32, s->P);
    ALLOC(s->dtheta32, s->P);
  }
  if (!(s->pool = qkd_par_create(threads))) goto oom;
  return 0;
oom:
  snprintf(err, errlen, "out of memory setting up student '%s'", st->name);
  return -1;
}

/* Forward of n images (already in s->x) to logits; training enables dropout. */
static void forward(student *s, int n, int training, uint64_t step, uint64_t shot_seed, uint64_t first_sample) {
  const qkd_m_student *st = s->st;
  const float *f = s->x;
  if (s->pre) f = qkd_nn_forward(s->pre, s->x, n, training, step);
  else if (s->has_red) {
    qkd_nn_reduce_forward(&s->red, s->x, n, s->feat_f);
    f = s->feat_f;
  }
  for (long i = 0; i < (long)n * s->F; i++) s->feat[i] = f[i];
  if (st->circuit.encode == QKD_ENCODE_AMPLITUDE && s->count_zero)
    for (int b = 0; b < n; b++) {
      int zero = 1;
      for (int j = 0; j < s->F && zero; j++) zero = s->feat[(long)b * s->F + j] == 0.0;
      s->zero_vectors += zero;
    }
  if (s->f32) {
    for (long i = 0; i < (long)n * s->F; i++) s->feat32[i] = (float)s->feat[i];
    for (int i = 0; i < s->P; i++) s->theta32[i] = (float)s->theta[i];
    qkd_par_fwd_f32(s->pool, s->k, s->theta32, s->feat32, n, shot_seed, first_sample, s->out32);
    for (long i = 0; i < (long)n * s->O; i++) s->out[i] = s->out32[i];
  } else {
    qkd_par_fwd_f64(s->pool, s->k, s->theta, s->feat, n, shot_seed, first_sample, s->out);
  }
  if (s->head) {
    for (long i = 0; i < (long)n * s->O; i++) s->out_f[i] = (float)s->out[i];
    const float *lg = qkd_nn_forward(s->head, s->out_f, n, training, step);
    for (long i = 0; i < (long)n * s->C; i++) s->logits[i] = lg[i];
  } else {
    for (int b = 0; b < n; b++)
      for (int c = 0; c < s->C; c++) s->logits[(long)b * s->C + c] = s->out[(long)b * s->O + c];
  }
}

/* Backward from s->dlogits; accumulates every gradient. */
static void backward(student *s, int n, uint64_t shot_seed, uint64_t first_sample) {
  if (s->head) {
    for (long i = 0; i < (long)n * s->C; i++) s->dlogits_f[i] = (float)s->dlogits[i];
    qkd_nn_backward(s->head, s->dlogits_f, s->dout_f);
    for (long i = 0; i < (long)n * s->O; i++) s->dout[i] = s->dout_f[i];
  } else { /* head none: outputs past the first C never get a gradient (dout was zeroed at init) */
    for (int b = 0; b < n; b++)
      for (int c = 0; c < s->C; c++) s->dout[(long)b * s->O + c] = s->dlogits[(long)b * s->C + c];
  }
  double *dfeat = s->pre ? s->dfeat : NULL;
  if (s->e->gradient == QKD_GRAD_PARAMETER_SHIFT)
    qkd_par_pshift(s->pool, s->k, s->theta, s->feat, n, s->dout, shot_seed, first_sample, s->dtheta, dfeat);
  else if (s->f32) {
    for (long i = 0; i < (long)n * s->O; i++) s->dout32[i] = (float)s->dout[i];
    memset(s->dtheta32, 0, sizeof(float) * (size_t)s->P);
    qkd_par_bwd_f32(s->pool, s->k, s->theta32, s->feat32, n, s->dout32, s->dtheta32, dfeat ? s->dfeat32 : NULL);
    for (int i = 0; i < s->P; i++) s->dtheta[i] += s->dtheta32[i];
    if (dfeat)
      for (long i = 0; i < (long)n * s->F; i++) dfeat[i] = s->dfeat32[i];
  } else {
    qkd_par_bwd_f64(s->pool, s->k, s->theta, s->feat, n, s->dout, s->dtheta, dfeat);
  }
  if (s->pre) {
    for (long i = 0; i < (long)n * s->F; i++) s->dfeat_f[i] = (float)s->dfeat[i];
    qkd_nn_backward(s->pre, s->dfeat_f, NULL);
  }
}

/* Accuracy on a split (NULL-safe for empty splits). */
static double evaluate(student *s, const qkd_split *sp, uint64_t shot_seed) {
  int correct = 0;
  for (int i = 0; i < sp->n; i += s->B) {
    int n = sp->n - i < s->B ? sp->n - i : s->B;
    for (int b = 0; b < n; b++) s->idx[b] = i + b;
    qkd_data_batch(s->ds, sp, s->idx, n, s->x, s->y);
    forward(s, n, 0, 0, shot_seed, (uint64_t)i);
    for (int b = 0; b < n; b++) {
      int best = 0;
      for (int c = 1; c < s->C; c++)
        if (s->logits[(long)b * s->C + c] > s->logits[(long)b * s->C + best]) best = c;
      correct += best == s->y[b];
    }
  }
  return sp->n ? (double)correct / sp->n : 0.0;
}

int qkd_train_student(const qkd_m_experiment *e, const qkd_dataset *ds, const qkd_kernel *kernel,
                      int use_program_loss, const float *teacher_train, const qkd_train_opts *opts,
                      qkd_student_result *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  double t0 = now_s();
  student s;
  if (student_init(&s, e, ds, kernel, opts->threads, err, errlen) != 0) {
    student_free(&s);
    return -1;
  }
  static const qkd_loss ce = {QKD_LOSS_CE, 0, NULL, NULL};
  const qkd_loss *loss = use_program_loss ? e->loss : &ce;
  int needs_teacher = qkd_loss_uses_teacher(loss);
  if (needs_teacher && !teacher_train) {
    snprintf(err, errlen, "experiment '%s': the loss needs teacher logits", e->name);
    student_free(&s);
    return -1;
  }
  int epochs = e->train.epochs, n = ds->train.n, C = s.C;
  out->test_accuracy = calloc((size_t)epochs, sizeof(double));
  out->train_loss = calloc((size_t)epochs, sizeof(double));
  if (ds->val.n) out->validation_accuracy = calloc((size_t)epochs, sizeof(double));
  out->quantum_params = s.P;
  out->classical_params = (s.pre ? qkd_nn_param_count(s.pre) : 0) + (s.head ? qkd_nn_param_count(s.head) : 0);
  int *perm = malloc(sizeof(int) * (size_t)(n ? n : 1));
  uint64_t shot_seed = sub_seed(e->train.seed, SEED_SHOTS), eval_seed = sub_seed(e->train.seed, SEED_EVAL_SHOTS);
  long steps_per_epoch = (n + s.B - 1) / s.B, step = 0;
  double train_time = 0;
  int stopped = 0;
  for (int ep = 0; ep < epochs && !stopped; ep++) {
    double te = now_s(), loss_sum = 0;
    qkd_nn_shuffle(perm, n, (uint64_t)e->train.seed, (uint64_t)ep);
    s.count_zero = ep == 0;
    for (int i = 0; i < n; i += s.B, step++) {
      int b = n - i < s.B ? n - i : s.B;
      memcpy(s.idx, perm + i, sizeof(int) * (size_t)b);
      qkd_data_batch(ds, &ds->train, s.idx, b, s.x, s.y);
      uint64_t first = (uint64_t)ep * (uint64_t)n + (uint64_t)i;
      forward(&s, b, 1, (uint64_t)step, shot_seed, first);
      if (needs_teacher)
        for (int r = 0; r < b; r++)
          for (int c = 0; c < C; c++) s.tlogits[(long)r * C + c] = teacher_train[(long)s.idx[r] * C + c];
      double l = qkd_loss_eval(loss, s.logits, needs_teacher ? s.tlogits : NULL, s.y, b, C, s.dlogits);
      loss_sum += l * b;
      if (s.pre) qkd_nn_zero_grad(s.pre);
      if (s.head) qkd_nn_zero_grad(s.head);
      memset(s.dtheta, 0, sizeof(double) * (size_t)s.P);
      backward(&s, b, shot_seed + 1, first);
      dopt_step(&s.circ_opt, s.theta, s.dtheta, s.P);
      if (s.pre) qkd_nn_optim_step(&s.pre_opt, qkd_nn_params(s.pre), qkd_nn_grads(s.pre));
      if (s.head) qkd_nn_optim_step(&s.head_opt, qkd_nn_params(s.head), qkd_nn_grads(s.head));
      if (opts->progress) {
        double el = train_time + now_s() - te;
        opts->progress(opts->progress_ud, use_program_loss ? "distilled" : "baseline", ep + 1, epochs, step + 1,
                       steps_per_epoch * epochs, l, el > 0 ? (double)(ep * (long)n + i + b) / el : 0);
      }
      if (opts->stop && *opts->stop) {
        stopped = 1;
        break;
      }
    }
    train_time += now_s() - te;
    s.count_zero = 0;
    if (stopped) break;
    out->train_loss[ep] = n ? loss_sum / n : 0;
    out->test_accuracy[ep] = evaluate(&s, &ds->test, eval_seed);
    if (out->validation_accuracy) out->validation_accuracy[ep] = evaluate(&s, &ds->val, eval_seed + 1);
    out->epochs = ep + 1;
  }
  free(perm);
  out->train_seconds = train_time;
  out->samples_per_s = train_time > 0 ? (double)out->epochs * n / train_time : 0;
  out->zero_vectors = s.zero_vectors;
  out->circuit_params = malloc(sizeof(double) * (size_t)(s.P + 1));
  memcpy(out->circuit_params, s.theta, sizeof(double) * (size_t)s.P);
  out->classical = malloc(sizeof(float) * (size_t)(out->classical_params + 1));
  long at = 0;
  if (s.pre) memcpy(out->classical, qkd_nn_params(s.pre), sizeof(float) * (size_t)qkd_nn_param_count(s.pre)), at = qkd_nn_param_count(s.pre);
  if (s.head) memcpy(out->classical + at, qkd_nn_params(s.head), sizeof(float) * (size_t)qkd_nn_param_count(s.head));
  student_free(&s);
  out->seconds = now_s() - t0;
  return stopped ? 1 : 0;
}

void qkd_student_result_free(qkd_student_result *r) {
  free(r->test_accuracy);
  free(r->validation_accuracy);
  free(r->train_loss);
  free(r->circuit_params);
  free(r->classical);
  memset(r, 0, sizeof *r);
}

/* ---- a student outside the training loop (qkd_train.h) ---------------------------------------- */

qkd_student *qkd_student_create(const qkd_m_experiment *e, const qkd_dataset *ds, const qkd_kernel *kernel,
                                int threads, char *err, size_t errlen) {
  student *s = malloc(sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if (student_init(s, e, ds, kernel, threads, err, errlen) != 0) {
    student_free(s);
    free(s);
    return NULL;
  }
  return s;
}

void qkd_student_destroy(qkd_student *s) {
  if (!s) return;
  student_free(s);
  free(s);
}

static long n_pre(const student *s) { return s->pre ? qkd_nn_param_count(s->pre) : 0; }
static long n_head(const student *s) { return s->head ? qkd_nn_param_count(s->head) : 0; }

long qkd_student_param_count(const qkd_student *s) { return n_pre(s) + s->P + n_head(s); }

void qkd_student_get_params(qkd_student *s, double *out) {
  long a = n_pre(s), h = n_head(s);
  for (long i = 0; i < a; i++) out[i] = qkd_nn_params(s->pre)[i];
  for (int i = 0; i < s->P; i++) out[a + i] = s->theta[i];
  for (long i = 0; i < h; i++) out[a + s->P + i] = qkd_nn_params(s->head)[i];
}

void qkd_student_set_params(qkd_student *s, const double *in) {
  long a = n_pre(s), h = n_head(s);
  for (long i = 0; i < a; i++) qkd_nn_params(s->pre)[i] = (float)in[i];
  for (int i = 0; i < s->P; i++) s->theta[i] = in[a + i];
  for (long i = 0; i < h; i++) qkd_nn_params(s->head)[i] = (float)in[a + s->P + i];
}

double qkd_student_loss_grad(qkd_student *s, const qkd_loss *loss, const int *idx, int n, const float *teacher,
                             double *grad) {
  memcpy(s->idx, idx, sizeof(int) * (size_t)n);
  qkd_data_batch(s->ds, &s->ds->train, s->idx, n, s->x, s->y);
  forward(s, n, 0, 0, 0, 0);
  if (teacher)
    for (int r = 0; r < n; r++)
      for (int c = 0; c < s->C; c++) s->tlogits[(long)r * s->C + c] = teacher[(long)idx[r] * s->C + c];
  double l = qkd_loss_eval(loss, s->logits, teacher ? s->tlogits : NULL, s->y, n, s->C, grad ? s->dlogits : NULL);
  if (!grad) return l;
  if (s->pre) qkd_nn_zero_grad(s->pre);
  if (s->head) qkd_nn_zero_grad(s->head);
  memset(s->dtheta, 0, sizeof(double) * (size_t)s->P);
  backward(s, n, 0, 0);
  long a = n_pre(s), h = n_head(s);
  for (long i = 0; i < a; i++) grad[i] = qkd_nn_grads(s->pre)[i];
  for (int i = 0; i < s->P; i++) grad[a + i] = s->dtheta[i];
  for (long i = 0; i < h; i++) grad[a + s->P + i] = qkd_nn_grads(s->head)[i];
  return l;
}
