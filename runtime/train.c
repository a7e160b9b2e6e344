/* train.c — the hybrid student trainer (qkd_train.h). */
#include "qkd_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qkd_file.h"
#include "qkd_hash.h"
#include "qkd_loss.h"
#include "qkd_nn.h"
#include "qkd_par.h"
#include "qkd_loop.h"
#include "qkd_rng.h"
#include "qkd_time.h"
#include "qsim.h"

/* Seeds of the independent parts of one run, all from the recipe's seed. */
enum { SEED_PRE = 1, SEED_HEAD = 2, SEED_CIRCUIT = 3, SEED_SHOTS = 4, SEED_EVAL_SHOTS = 5, SEED_CONTROL = 6,
       SEED_PROJECTION = 7 };
static uint64_t sub_seed(int seed, int part) { return qkd_rng_u64((uint64_t)seed, QKD_STREAM_INIT, 0x100 + part); }

/* The recipe's optimizer over n parameters, float (nets) or double (the circuit). */
static int recipe_optim(qkd_nn_optim *o, const qkd_m_train *t, long n, int f64) {
  int kind = t->optimizer == QKD_OPT_SGD ? QKD_NN_SGD : QKD_NN_ADAM;
  return (f64 ? qkd_nn_optim_init_f64 : qkd_nn_optim_init)(o, kind, t->lr, t->beta1, t->beta2, t->momentum, n);
}

struct student {
  const qkd_m_experiment *e;
  const qkd_m_student *st;
  const qkd_dataset *ds;
  const qkd_kernel *k;
  const qkd_traj *traj;      /* the circuit runs as trajectories: k runs traj->circuit (NULL: k runs it) */
  double *tfeat, *tout, *tdout, *tdfeat; /* trajectory rows [B·T][W], [B·T][O] (NULL without) */
  int B, C, F, O, P, img;
  qkd_nn *pre, *head;        /* trainable pre (dense, net) and head (dense) */
  qkd_nn *mid;               /* a control run: dense(O) tanh in place of the circuit */
  float *proj;               /* matched control: a fixed projection [R][F] of the features, or NULL */
  int R;                     /* its width */
  float *proj_out, *dproj;   /* [B][R] */
  qkd_nn_optim mid_opt;
  qkd_nn_reduce red;         /* fixed pre */
  int has_red;
  qkd_nn_optim pre_opt, head_opt;
  qkd_nn_optim circ_opt;
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
  qkd_nn_free(s->mid);
  qkd_nn_optim_free(&s->mid_opt);
  free(s->proj); free(s->proj_out); free(s->dproj);
  if (s->has_red) qkd_nn_reduce_free(&s->red);
  qkd_nn_optim_free(&s->pre_opt);
  qkd_nn_optim_free(&s->head_opt);
  qkd_nn_optim_free(&s->circ_opt);
  free(s->theta); free(s->dtheta);
  free(s->tfeat); free(s->tout); free(s->tdout); free(s->tdfeat);
  free(s->x); free(s->feat_f); free(s->out_f); free(s->dout_f); free(s->dfeat_f); free(s->dlogits_f);
  free(s->feat); free(s->out); free(s->dout); free(s->dfeat); free(s->logits); free(s->dlogits); free(s->tlogits);
  free(s->y); free(s->idx);
  free(s->feat32); free(s->out32); free(s->dout32); free(s->dfeat32); free(s->theta32); free(s->dtheta32);
  qkd_par_destroy(s->pool);
}

#define ALLOC(p, n) do { (p) = calloc((size_t)(n) + 1, sizeof *(p)); if (!(p)) goto oom; } while (0)

/* The width of a matched control's projection: the largest R with R*O + O <= P (dense(O) on R
 * inputs has no more trainable parameters than the circuit), at least 1; F (no projection) when
 * dense(O) on all F features already fits. */
int qkd_train_matched_width(int F, int O, int P) {
  if ((long)F * O + O <= P) return F;
  int R = P / O - 1;
  return R < 1 ? 1 : R > F ? F : R;
}

/* ---- fitted PCAs shared between runs (qkd_train_cache) ---- */

struct qkd_train_cache {
  struct { const qkd_dataset *ds; int n, k; qkd_nn_reduce red; } *pca;
  int n_pca;
};

qkd_train_cache *qkd_train_cache_new(void) { return calloc(1, sizeof(qkd_train_cache)); }

void qkd_train_cache_free(qkd_train_cache *c) {
  if (!c) return;
  for (int i = 0; i < c->n_pca; i++) qkd_nn_reduce_free(&c->pca[i].red);
  free(c->pca);
  free(c);
}

static int copy_floats(float **dst, const float *src, long n) {
  if (!(*dst = malloc(sizeof(float) * (size_t)(n + 1)))) return -1;
  memcpy(*dst, src, sizeof(float) * (size_t)n);
  return 0;
}

/* A fitted reduction r (PCA) from the cache: 0 when found (r filled), -1 otherwise. */
static int pca_from_cache(const qkd_train_cache *c, const qkd_dataset *ds, qkd_nn_reduce *r) {
  for (int i = 0; c && i < c->n_pca; i++) {
    const qkd_nn_reduce *f = &c->pca[i].red;
    if (c->pca[i].ds != ds || c->pca[i].n != ds->train.n || c->pca[i].k != r->k) continue;
    long D = qkd_shape_size(r->in);
    if (copy_floats(&r->mean, f->mean, D) != 0 || copy_floats(&r->basis, f->basis, D * r->k) != 0 ||
        !(r->eigenvalues = malloc(sizeof(double) * (size_t)r->k + 1)))
      return -1;
    memcpy(r->eigenvalues, f->eigenvalues, sizeof(double) * (size_t)r->k);
    return 0;
  }
  return -1;
}

static void pca_to_cache(qkd_train_cache *c, const qkd_dataset *ds, const qkd_nn_reduce *r) {
  if (!c) return;
  void *p = realloc(c->pca, sizeof *c->pca * (size_t)(c->n_pca + 1));
  if (!p) return;
  c->pca = p;
  qkd_nn_reduce *f = &c->pca[c->n_pca].red;
  *f = *r;
  long D = qkd_shape_size(r->in);
  f->mean = NULL, f->basis = NULL, f->eigenvalues = NULL;
  if (copy_floats(&f->mean, r->mean, D) != 0 || copy_floats(&f->basis, r->basis, D * r->k) != 0 ||
      !(f->eigenvalues = malloc(sizeof(double) * (size_t)r->k + 1))) {
    qkd_nn_reduce_free(f);
    return;
  }
  memcpy(f->eigenvalues, r->eigenvalues, sizeof(double) * (size_t)r->k);
  c->pca[c->n_pca].ds = ds, c->pca[c->n_pca].n = ds->train.n, c->pca[c->n_pca].k = r->k;
  c->n_pca++;
}

void qkd_student_initial_circuit(const qkd_m_experiment *e, double *theta) {
  uint64_t cs = sub_seed(e->train.seed, SEED_CIRCUIT);
  for (int i = 0; i < e->student.circuit.n_params; i++)
    theta[i] = 2 * M_PI * qkd_rng_uniform(cs, QKD_STREAM_INIT, (uint64_t)i);
}

static int student_init(student *s, const qkd_m_experiment *e, const qkd_dataset *ds, const qkd_kernel *k,
                        const qkd_traj *traj, const qkd_traj *eval_traj, int control, int threads,
                        qkd_train_cache *cache, qkd_error *err) {
  memset(s, 0, sizeof *s);
  s->e = e, s->st = &e->student, s->ds = ds, s->k = k, s->traj = control ? NULL : traj;
  const qkd_m_student *st = s->st;
  s->B = e->train.batch;
  s->C = ds->n_classes;
  s->img = ds->c * ds->h * ds->w;
  s->F = st->circuit.n_features;
  s->O = qkd_ir_outputs(&st->circuit);
  s->P = control ? 0 : st->circuit.n_params;
  qkd_shape in = {ds->c, ds->h, ds->w, 0};
  int seed = e->train.seed;
  if (control) {
    int F = s->F, O = s->O;
    s->R = control == QKD_CONTROL_MATCHED ? qkd_train_matched_width(F, O, st->circuit.n_params) : F;
    if (s->R < F) { /* a fixed Gaussian projection, N(0, 1/F) entries, from the seed */
      ALLOC(s->proj, (long)s->R * F);
      uint64_t ps = sub_seed(seed, SEED_PROJECTION);
      for (long i = 0; i < (long)s->R * F; i++) {
        double u1 = qkd_rng_uniform(ps, QKD_STREAM_INIT, 2 * (uint64_t)i), u2 = qkd_rng_uniform(ps, QKD_STREAM_INIT, 2 * (uint64_t)i + 1);
        s->proj[i] = (float)(sqrt(-2 * log(1 - u1)) * cos(2 * M_PI * u2) / sqrt((double)F));
      }
      ALLOC(s->proj_out, (long)s->B * s->R);
      ALLOC(s->dproj, (long)s->B * s->R);
    }
    qkd_layer_spec ml[2] = {{.kind = QKD_LAYER_DENSE, .units = O, .stride = 1}, {.kind = QKD_LAYER_TANH, .stride = 1}};
    qkd_net_spec spec = {.name = "control", .n_layers = 2, .layers = ml};
    if (!(s->mid = qkd_nn_create(&spec, (qkd_shape){s->R, 1, 1, 1}, 1, s->B, err))) return -1;
    qkd_nn_init(s->mid, sub_seed(seed, SEED_CONTROL));
    if (recipe_optim(&s->mid_opt, &e->train, qkd_nn_param_count(s->mid), 0) != 0)
      goto oom;
  }
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
    if (!(s->pre = qkd_nn_create(&spec, in, 1, s->B, err))) return -1;
    qkd_nn_init(s->pre, sub_seed(seed, SEED_PRE));
    if (recipe_optim(&s->pre_opt, &e->train, qkd_nn_param_count(s->pre), 0) != 0)
      goto oom;
  } else if (st->pre != QKD_PRE_NONE) {
    int kind = st->pre == QKD_PRE_PCA ? QKD_NN_RED_PCA : st->pre == QKD_PRE_AVGPOOL_TO ? QKD_NN_RED_AVGPOOL_TO
             : st->pre == QKD_PRE_MAXPOOL_TO ? QKD_NN_RED_MAXPOOL_TO : QKD_NN_RED_CROP;
    if (qkd_nn_reduce_init(&s->red, kind, in, st->pre_k, st->pre_h, st->pre_w, err) != 0) return -1;
    s->has_red = 1;
    if (kind == QKD_NN_RED_PCA && pca_from_cache(cache, ds, &s->red) != 0) {
      int n = ds->train.n;
      float *all = malloc(sizeof(float) * (size_t)n * s->img + 1);
      if (!all) goto oom;
      qkd_data_batch(ds, &ds->train, NULL, n, all, NULL);
      int rc = qkd_nn_reduce_fit(&s->red, all, n, err);
      free(all);
      if (rc != 0) return -1;
      pca_to_cache(cache, ds, &s->red);
    }
  }
  if (st->head_dense) {
    qkd_layer_spec hl = dense_tmpl;
    hl.units = st->head_dense;
    qkd_net_spec spec = {.name = "head", .n_layers = 1, .layers = &hl};
    if (!(s->head = qkd_nn_create(&spec, (qkd_shape){s->O, 1, 1, 1}, 1, s->B, err))) return -1;
    qkd_nn_init(s->head, sub_seed(seed, SEED_HEAD));
    if (recipe_optim(&s->head_opt, &e->train, qkd_nn_param_count(s->head), 0) != 0)
      goto oom;
  }
  ALLOC(s->theta, s->P);
  ALLOC(s->dtheta, s->P);
  if (recipe_optim(&s->circ_opt, &e->train, s->P, 1) != 0) goto oom;
  if (!control) qkd_student_initial_circuit(e, s->theta);
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
  long kw = (long)B * W, ko = (long)B * s->O; /* the kernel's rows: samples, or trajectories */
  const qkd_traj *tj[2] = {s->traj, control ? NULL : eval_traj};
  for (int i = 0; i < 2; i++)
    if (tj[i]) {
      long rows = (long)B * tj[i]->trajectories;
      if (rows * tj[i]->W > kw) kw = rows * tj[i]->W;
      if (rows * tj[i]->RO > ko) ko = rows * tj[i]->RO;
    }
  if (tj[0] || tj[1]) {
    ALLOC(s->tfeat, kw);
    ALLOC(s->tdfeat, kw);
    ALLOC(s->tout, ko);
    ALLOC(s->tdout, ko);
  }
  s->f32 = st->circuit.precision == QKD_PREC_F32;
  if (s->f32) {
    ALLOC(s->feat32, kw);
    ALLOC(s->dfeat32, kw);
    ALLOC(s->out32, ko);
    ALLOC(s->dout32, ko);
    ALLOC(s->theta32, s->P);
    ALLOC(s->dtheta32, s->P);
  }
  if (!(s->pool = qkd_par_create(threads))) goto oom;
  return 0;
oom:
  qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory setting up student '%s'", st->name);
  return -1;
}

/* Features (float, [n][F]) → circuit outputs s->out through the kernel (as trajectories: the
 * kernel runs n·T rows of the trajectory circuit, qkd_traj.h). */
static void forward_circuit(student *s, const float *f, int n, uint64_t shot_seed, uint64_t first_sample) {
  for (long i = 0; i < (long)n * s->F; i++) s->feat[i] = f[i];
  if (s->st->circuit.encode == QKD_ENCODE_AMPLITUDE && s->count_zero)
    for (int b = 0; b < n; b++) {
      int zero = 1;
      for (int j = 0; j < s->F && zero; j++) zero = s->feat[(long)b * s->F + j] == 0.0;
      s->zero_vectors += zero;
    }
  const qkd_traj *t = s->traj;
  const double *x = s->feat;
  double *o = s->out;
  long rows = n, W = s->F, RO = s->O;
  if (t) { /* the rows have no shots (qkd_traj_reduce draws them) */
    qkd_traj_expand(t, s->pool, s->feat, n, shot_seed, first_sample, s->tfeat);
    x = s->tfeat, o = s->tout, rows = (long)n * t->trajectories, W = t->W, RO = t->RO;
  }
  if (s->f32) {
    for (long i = 0; i < rows * W; i++) s->feat32[i] = (float)x[i];
    for (int i = 0; i < s->P; i++) s->theta32[i] = (float)s->theta[i];
    qkd_par_fwd_f32(s->pool, s->k, s->theta32, s->feat32, (int)rows, shot_seed, first_sample, s->out32);
    for (long i = 0; i < rows * RO; i++) o[i] = s->out32[i];
  } else {
    qkd_par_fwd_f64(s->pool, s->k, s->theta, x, (int)rows, shot_seed, first_sample, o);
  }
  if (t) qkd_traj_reduce(t, s->tout, n, shot_seed, first_sample, s->out);
}

/* A control run: features → (fixed projection) → dense(O) tanh → s->out. */
static void forward_control(student *s, const float *f, int n, int training, uint64_t step) {
  const float *in = f;
  if (s->proj) {
    for (int b = 0; b < n; b++)
      for (int r = 0; r < s->R; r++) {
        const float *row = s->proj + (long)r * s->F, *x = f + (long)b * s->F;
        float acc = 0;
        for (int j = 0; j < s->F; j++) acc += row[j] * x[j];
        s->proj_out[(long)b * s->R + r] = acc;
      }
    in = s->proj_out;
  }
  const float *o = qkd_nn_forward(s->mid, in, n, training, step);
  for (long i = 0; i < (long)n * s->O; i++) s->out[i] = o[i];
}

/* Forward of n images (already in s->x) to logits; training enables dropout. */
static void forward(student *s, int n, int training, uint64_t step, uint64_t shot_seed, uint64_t first_sample) {
  const float *f = s->x;
  if (s->pre) f = qkd_nn_forward(s->pre, s->x, n, training, step);
  else if (s->has_red) {
    qkd_nn_reduce_forward(&s->red, s->x, n, s->feat_f);
    f = s->feat_f;
  }
  if (s->mid) forward_control(s, f, n, training, step);
  else forward_circuit(s, f, n, shot_seed, first_sample);
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
  if (s->mid) { /* a control run */
    for (long i = 0; i < (long)n * s->O; i++) s->dout_f[i] = (float)s->dout[i];
    qkd_nn_backward(s->mid, s->dout_f, s->pre ? (s->proj ? s->dproj : s->dfeat_f) : NULL);
    if (s->pre && s->proj)
      for (int b = 0; b < n; b++)
        for (int j = 0; j < s->F; j++) {
          float acc = 0;
          for (int r = 0; r < s->R; r++) acc += s->dproj[(long)b * s->R + r] * s->proj[(long)r * s->F + j];
          s->dfeat_f[(long)b * s->F + j] = acc;
        }
    if (s->pre) qkd_nn_backward(s->pre, s->dfeat_f, NULL);
    return;
  }
  double *dfeat = s->pre ? s->dfeat : NULL;
  const qkd_traj *t = s->traj;
  const double *x = s->feat, *dout = s->dout;
  double *df = dfeat;
  long rows = n, W = s->F, RO = s->O;
  if (t) { /* the rows forward_circuit ran: their features are still in s->tfeat */
    qkd_traj_spread(t, s->dout, n, s->tdout);
    x = s->tfeat, dout = s->tdout, df = dfeat ? s->tdfeat : NULL, rows = (long)n * t->trajectories, W = t->W, RO = t->RO;
  }
  if (s->e->gradient == QKD_GRAD_PARAMETER_SHIFT) /* never with noise (sema), so never with trajectories */
    qkd_par_pshift(s->pool, s->k, s->theta, s->feat, n, s->dout, shot_seed, first_sample, s->dtheta, dfeat);
  else if (s->f32) {
    for (long i = 0; i < rows * RO; i++) s->dout32[i] = (float)dout[i];
    memset(s->dtheta32, 0, sizeof(float) * (size_t)s->P);
    qkd_par_bwd_f32(s->pool, s->k, s->theta32, s->feat32, (int)rows, s->dout32, s->dtheta32, df ? s->dfeat32 : NULL);
    for (int i = 0; i < s->P; i++) s->dtheta[i] += s->dtheta32[i];
    if (df)
      for (long i = 0; i < rows * W; i++) df[i] = s->dfeat32[i];
  } else {
    qkd_par_bwd_f64(s->pool, s->k, s->theta, x, (int)rows, dout, s->dtheta, df);
  }
  if (t && dfeat) qkd_traj_gather(t, s->tdfeat, n, dfeat);
  if (s->pre) {
    for (long i = 0; i < (long)n * s->F; i++) s->dfeat_f[i] = (float)s->dfeat[i];
    qkd_nn_backward(s->pre, s->dfeat_f, NULL);
  }
}

/* Accuracy on a split (NULL-safe for empty splits); logits (may be NULL) receives the split's
 * logits [sp->n][C], the very values the accuracy is counted from. */
static double evaluate(student *s, const qkd_split *sp, uint64_t shot_seed, double *logits) {
  int correct = 0;
  for (int i = 0; i < sp->n; i += s->B) {
    int n = sp->n - i < s->B ? sp->n - i : s->B;
    for (int b = 0; b < n; b++) s->idx[b] = i + b;
    qkd_data_batch(s->ds, sp, s->idx, n, s->x, s->y);
    forward(s, n, 0, 0, shot_seed, (uint64_t)i);
    if (logits) memcpy(logits + (long)i * s->C, s->logits, sizeof(double) * (size_t)n * (size_t)s->C);
    for (int b = 0; b < n; b++) {
      int best = 0;
      for (int c = 1; c < s->C; c++)
        if (s->logits[(long)b * s->C + c] > s->logits[(long)b * s->C + best]) best = c;
      correct += best == s->y[b];
    }
  }
  return sp->n ? (double)correct / sp->n : 0.0;
}

/* ---- checkpoints (qkd_train.h) ---------------------------------------------------------------- */

typedef struct {
  unsigned char *b;
  size_t n, cap;
  int oom;
} buf;

static void put(buf *w, const void *p, size_t n) {
  if (w->oom) return;
  if (w->n + n > w->cap) {
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->n + n) cap *= 2;
    unsigned char *nb = realloc(w->b, cap);
    if (!nb) { w->oom = 1; return; }
    w->b = nb, w->cap = cap;
  }
  memcpy(w->b + w->n, p, n);
  w->n += n;
}
static void put_i64(buf *w, int64_t v) { put(w, &v, 8); }

typedef struct {
  const unsigned char *b;
  size_t n, at;
  int bad;
} cur;

static void get(cur *r, void *p, size_t n) {
  if (r->bad || r->at + n > r->n) { r->bad = 1; memset(p, 0, n); return; }
  memcpy(p, r->b + r->at, n);
  r->at += n;
}
static int64_t get_i64(cur *r) { int64_t v; get(r, &v, 8); return v; }

/* A net's parameters and state and its optimizer's moments; NULL nets write a count of 0. */
static void put_net(buf *w, qkd_nn *nn, const qkd_nn_optim *o) {
  long n = nn ? qkd_nn_param_count(nn) : 0, ns = nn ? qkd_nn_state_count(nn) : 0;
  put_i64(w, n);
  put_i64(w, ns);
  if (!nn) return;
  put(w, qkd_nn_params(nn), sizeof(float) * (size_t)n);
  put(w, qkd_nn_state(nn), sizeof(float) * (size_t)ns);
  put_i64(w, o->t);
  put(w, o->m, sizeof(float) * (size_t)n);
  put_i64(w, o->v != NULL);
  if (o->v) put(w, o->v, sizeof(float) * (size_t)n);
}

static void get_net(cur *r, qkd_nn *nn, qkd_nn_optim *o) {
  long n = nn ? qkd_nn_param_count(nn) : 0, ns = nn ? qkd_nn_state_count(nn) : 0;
  if (get_i64(r) != n || get_i64(r) != ns) { r->bad = 1; return; }
  if (!nn) return;
  get(r, qkd_nn_params(nn), sizeof(float) * (size_t)n);
  get(r, qkd_nn_state(nn), sizeof(float) * (size_t)ns);
  o->t = get_i64(r);
  get(r, o->m, sizeof(float) * (size_t)n);
  if (get_i64(r) != (o->v != NULL)) { r->bad = 1; return; }
  if (o->v) get(r, o->v, sizeof(float) * (size_t)n);
}

#define CKPT_MAGIC "QKDK"
#define CKPT_VERSION 1

typedef struct {
  int epochs;               /* epochs done */
  long step;
  double train_time;
} progress_state;

static void ckpt_build(buf *w, const student *s, uint64_t key, const progress_state *ps, const qkd_student_result *out) {
  put(w, CKPT_MAGIC, 4);
  put_i64(w, CKPT_VERSION);
  put(w, &key, 8);
  put_i64(w, ps->epochs);
  put_i64(w, ps->step);
  put(w, &ps->train_time, 8);
  put_i64(w, s->zero_vectors);
  put_i64(w, out->validation_accuracy != NULL);
  put(w, out->test_accuracy, sizeof(double) * (size_t)ps->epochs);
  put(w, out->train_loss, sizeof(double) * (size_t)ps->epochs);
  if (out->validation_accuracy) put(w, out->validation_accuracy, sizeof(double) * (size_t)ps->epochs);
  put_net(w, s->pre, &s->pre_opt);
  put_net(w, s->mid, &s->mid_opt);
  put_net(w, s->head, &s->head_opt);
  put_i64(w, s->P);
  put(w, s->theta, sizeof(double) * (size_t)s->P);
  put_i64(w, s->circ_opt.t);
  put(w, s->circ_opt.dm, sizeof(double) * (size_t)s->P);
  put(w, s->circ_opt.dv, sizeof(double) * (size_t)s->P);
  uint64_t h = qkd_hash_bytes(QKD_HASH_INIT, w->b, w->n);
  put(w, &h, 8);
}

static int emit_buf(FILE *f, const void *ctx) {
  const buf *w = ctx;
  return fwrite(w->b, 1, w->n, f) == w->n ? 0 : -1;
}

/* Loads a checkpoint into s and out; returns the epochs done (0: none usable, reason in why).
 * why is the text of a note ("PATH: what", or qkd_error_text when the file cannot be read);
 * -1 (a checkpoint of another shape) becomes the caller's error. */
static int ckpt_load(const char *path, student *s, uint64_t key, int epochs, progress_state *ps, qkd_student_result *out,
                     char *why, size_t whylen) {
  size_t len;
  qkd_error err;
  unsigned char *b = (unsigned char *)qkd_file_read(path, (size_t)1 << 34, &len, &err);
  if (!b) return qkd_error_text(&err, why, whylen), 0;
  cur r = {b, len, 0, 0};
  char magic[4];
  uint64_t k = 0, h = 0;
  get(&r, magic, 4);
  int64_t version = get_i64(&r);
  get(&r, &k, 8);
  int ok = len >= 8 && !memcmp(magic, CKPT_MAGIC, 4) && version == CKPT_VERSION;
  if (ok) memcpy(&h, b + len - 8, 8);
  if (!ok || h != qkd_hash_bytes(QKD_HASH_INIT, b, len - 8)) {
    free(b);
    return snprintf(why, whylen, "%s: not a valid checkpoint (torn or corrupted)", path), 0;
  }
  if (k != key) {
    free(b);
    return snprintf(why, whylen, "%s: a checkpoint of another run (the program, data or thread count changed)", path), 0;
  }
  r.n = len - 8;
  progress_state st;
  st.epochs = (int)get_i64(&r);
  st.step = (long)get_i64(&r);
  get(&r, &st.train_time, 8);
  long zero = (long)get_i64(&r);
  int has_val = (int)get_i64(&r);
  if (st.epochs < 1 || st.epochs > epochs || has_val != (out->validation_accuracy != NULL)) r.bad = 1;
  if (!r.bad) {
    get(&r, out->test_accuracy, sizeof(double) * (size_t)st.epochs);
    get(&r, out->train_loss, sizeof(double) * (size_t)st.epochs);
    if (has_val) get(&r, out->validation_accuracy, sizeof(double) * (size_t)st.epochs);
    get_net(&r, s->pre, &s->pre_opt);
    get_net(&r, s->mid, &s->mid_opt);
    get_net(&r, s->head, &s->head_opt);
    if (get_i64(&r) != s->P) r.bad = 1;
    get(&r, s->theta, sizeof(double) * (size_t)s->P);
    s->circ_opt.t = (long)get_i64(&r);
    get(&r, s->circ_opt.dm, sizeof(double) * (size_t)s->P);
    get(&r, s->circ_opt.dv, sizeof(double) * (size_t)s->P);
  }
  free(b);
  if (r.bad || r.at != r.n) return snprintf(why, whylen, "%s: a checkpoint of another shape", path), -1;
  s->zero_vectors = zero;
  *ps = st;
  return st.epochs;
}

/* One run's state for the loop's callbacks (qkd_loop.h). */
typedef struct {
  student *s;
  const qkd_m_experiment *e;
  const qkd_dataset *ds;
  const qkd_train_opts *opts;
  qkd_student_result *out;
  const qkd_loss *loss;
  const float *teacher_train;  /* [train rows][C] when the loss uses the teacher, else NULL */
  qkd_run_kind kind;
  uint64_t shot_seed, eval_seed;
  long total_steps;
} run_ctx;

static double run_step(void *ud, int epoch, const int *idx, int b, long step, uint64_t first) {
  run_ctx *r = ud;
  student *s = r->s;
  int C = s->C;
  s->count_zero = epoch == 0; /* all-zero amplitude inputs are counted over the first epoch */
  memcpy(s->idx, idx, sizeof(int) * (size_t)b);
  qkd_data_batch(r->ds, &r->ds->train, s->idx, b, s->x, s->y);
  forward(s, b, 1, (uint64_t)step, r->shot_seed, first);
  if (r->teacher_train)
    for (int i = 0; i < b; i++)
      for (int c = 0; c < C; c++) s->tlogits[(long)i * C + c] = r->teacher_train[(long)s->idx[i] * C + c];
  double l = qkd_loss_eval_par(r->loss, s->logits, r->teacher_train ? s->tlogits : NULL, s->y, b, C, s->dlogits, s->pool);
  if (s->pre) qkd_nn_zero_grad(s->pre);
  if (s->head) qkd_nn_zero_grad(s->head);
  if (s->mid) qkd_nn_zero_grad(s->mid);
  memset(s->dtheta, 0, sizeof(double) * (size_t)s->P);
  backward(s, b, r->shot_seed + 1, first);
  qkd_nn_optim_step_f64(&s->circ_opt, s->theta, s->dtheta);
  if (s->pre) qkd_nn_optim_step(&s->pre_opt, qkd_nn_params(s->pre), qkd_nn_grads(s->pre));
  if (s->head) qkd_nn_optim_step(&s->head_opt, qkd_nn_params(s->head), qkd_nn_grads(s->head));
  if (s->mid) qkd_nn_optim_step(&s->mid_opt, qkd_nn_params(s->mid), qkd_nn_grads(s->mid));
  s->count_zero = 0;
  return l;
}

static void run_batch_done(void *ud, int epoch, long step, double loss, long samples, double elapsed) {
  run_ctx *r = ud;
  static const char *const phase[3] = {"baseline", "distilled", "control"};
  r->opts->progress(r->opts->progress_ud, phase[r->kind], epoch + 1, r->e->train.epochs, step + 1, r->total_steps, loss,
                    elapsed > 0 ? (double)samples / elapsed : 0);
}

static int run_epoch_done(void *ud, int ep, double loss, const qkd_loop *L) {
  run_ctx *r = ud;
  qkd_student_result *out = r->out;
  out->train_loss[ep] = loss;
  /* eval_noise: the test split on the circuit with those channels (a control has no circuit) */
  const qkd_kernel *train_k = r->s->k;
  const qkd_traj *train_t = r->s->traj;
  if (r->opts->eval_kernel && r->kind != QKD_RUN_CONTROL) r->s->k = r->opts->eval_kernel, r->s->traj = r->opts->eval_traj;
  out->test_accuracy[ep] = evaluate(r->s, &r->ds->test, r->eval_seed, out->test_logits);
  r->s->k = train_k, r->s->traj = train_t;
  out->test_logits_epoch = ep + 1;
  if (out->validation_accuracy) out->validation_accuracy[ep] = evaluate(r->s, &r->ds->val, r->eval_seed + 1, NULL);
  out->epochs = ep + 1;
  if (r->opts->checkpoint) {
    buf w = {0};
    progress_state ps = {ep + 1, L->step, L->train_time};
    ckpt_build(&w, r->s, r->opts->checkpoint_key, &ps, out);
    qkd_error werr;
    if (w.oom || qkd_file_write_atomic(r->opts->checkpoint, emit_buf, &w, &werr) != 0) {
      char text[QKD_ERROR_TEXT_MAX];
      if (r->opts->note)
        r->opts->note(r->opts->progress_ud, w.oom ? "out of memory writing a checkpoint" : qkd_error_text(&werr, text, sizeof text));
      out->checkpoint_failed = 1;
    }
    free(w.b);
  }
  return 0;
}

/* Copies what the result keeps besides the trained parameters: pre's state block, and the fixed
 * values (a PCA's mean and basis, a matched control's projection). 0, or -1 on out of memory. */
static int keep_untrained(const student *s, qkd_student_result *out) {
  long D = s->has_red && s->red.kind == QKD_NN_RED_PCA ? qkd_shape_size(s->red.in) : 0, K = D ? s->red.k : 0;
  long np = s->proj ? (long)s->R * s->F : 0;
  out->n_state = s->pre ? qkd_nn_state_count(s->pre) : 0;
  out->n_fixed = D + D * K + np;
  if (!(out->state = malloc(sizeof(float) * (size_t)(out->n_state + 1))) ||
      !(out->fixed = malloc(sizeof(float) * (size_t)(out->n_fixed + 1))))
    return -1;
  if (out->n_state) memcpy(out->state, qkd_nn_state(s->pre), sizeof(float) * (size_t)out->n_state);
  if (D) {
    memcpy(out->fixed, s->red.mean, sizeof(float) * (size_t)D);
    memcpy(out->fixed + D, s->red.basis, sizeof(float) * (size_t)(D * K));
  }
  if (np) memcpy(out->fixed + D + D * K, s->proj, sizeof(float) * (size_t)np);
  return 0;
}

int qkd_train_student(const qkd_m_experiment *e, const qkd_dataset *ds, const qkd_kernel *kernel,
                      qkd_run_kind kind, const float *teacher_train, const qkd_train_opts *opts,
                      qkd_student_result *out, qkd_error *err) {
  int use_program_loss = kind != QKD_RUN_BASELINE;
  int control = kind == QKD_RUN_CONTROL ? (e->control ? (int)e->control : QKD_CONTROL_CLASSICAL) : 0;
  memset(out, 0, sizeof *out);
  double t0 = qkd_now_s();
  student s;
  if (student_init(&s, e, ds, kernel, opts->traj, opts->eval_traj, control, opts->threads, opts->cache, err) != 0) {
    student_free(&s);
    return -1;
  }
  static const qkd_loss ce = {QKD_LOSS_CE, 0, NULL, NULL};
  const qkd_loss *loss = use_program_loss ? e->loss : &ce;
  int needs_teacher = qkd_loss_uses_teacher(loss);
  if (needs_teacher && !teacher_train) {
    qkd_fail(err, QKD_ERR_INPUT, NULL, "experiment '%s': the loss needs teacher logits", e->name);
    student_free(&s);
    return -1;
  }
  int epochs = e->train.epochs, n = ds->train.n;
  out->test_accuracy = calloc((size_t)epochs, sizeof(double));
  out->train_loss = calloc((size_t)epochs, sizeof(double));
  if (ds->val.n) out->validation_accuracy = calloc((size_t)epochs, sizeof(double));
  out->n_test_logits = (long)ds->test.n * s.C;
  out->test_logits = malloc(sizeof(double) * (size_t)(out->n_test_logits + 1));
  out->quantum_params = s.P;
  out->classical_params = (s.pre ? qkd_nn_param_count(s.pre) : 0) + (s.mid ? qkd_nn_param_count(s.mid) : 0) +
                          (s.head ? qkd_nn_param_count(s.head) : 0);
  uint64_t shot_seed = sub_seed(e->train.seed, SEED_SHOTS), eval_seed = sub_seed(e->train.seed, SEED_EVAL_SHOTS);
  long steps_per_epoch = (n + s.B - 1) / s.B, step = 0;
  double train_time = 0;
  int stopped = 0, first = 0;
  if (opts->checkpoint) { /* resume from the last finished epoch */
    char why[1400];
    progress_state ps;
    int done = ckpt_load(opts->checkpoint, &s, opts->checkpoint_key, epochs, &ps, out, why, sizeof why);
    if (done < 0) { /* a torn-in-the-middle state cannot be: start over from a fresh student */
      student_free(&s);
      qkd_student_result_free(out);
      qkd_fail(err, QKD_ERR_FORMAT, NULL, "%s (remove it to start over)", why);
      return -1;
    }
    if (done > 0) {
      first = done, step = ps.step, train_time = ps.train_time;
      out->epochs = done;
      if (opts->note) {
        char msg[1200];
        snprintf(msg, sizeof msg, "resuming '%s' %s from epoch %d", opts->name ? opts->name : e->name,
                 kind == QKD_RUN_BASELINE ? "baseline" : kind == QKD_RUN_CONTROL ? "control" : "distilled", done);
        opts->note(opts->progress_ud, msg);
      }
    } else if (why[0] && access(opts->checkpoint, F_OK) == 0 && opts->note) {
      opts->note(opts->progress_ud, why);
    }
  }
  run_ctx rc = {&s, e, ds, opts, out, loss, needs_teacher ? teacher_train : NULL, kind, shot_seed, eval_seed,
                steps_per_epoch * epochs};
  qkd_loop L = {.n = n, .batch = s.B, .epochs = epochs, .seed = (uint64_t)e->train.seed,
                .stream = QKD_STREAM_SHUFFLE_STUDENT, .first_epoch = first, .step = step, .train_time = train_time,
                .stop = opts->stop};
  qkd_loop_model model = {&rc, run_step, opts->progress ? run_batch_done : NULL, run_epoch_done};
  if (qkd_loop_run(&L, &model, &stopped) < 0) {
    student_free(&s);
    qkd_student_result_free(out);
    qkd_fail(err, QKD_ERR_MEMORY, NULL, "experiment '%s': out of memory for training", e->name);
    return -1;
  }
  train_time = L.train_time;
  out->train_seconds = train_time;
  out->samples_per_s = train_time > 0 ? (double)out->epochs * n / train_time : 0;
  out->zero_vectors = s.zero_vectors;
  out->circuit_params = malloc(sizeof(double) * (size_t)(s.P + 1));
  memcpy(out->circuit_params, s.theta, sizeof(double) * (size_t)s.P);
  out->classical = malloc(sizeof(float) * (size_t)(out->classical_params + 1));
  long at = 0;
  qkd_nn *parts[3] = {s.pre, s.mid, s.head}; /* pre, the control's layer, head */
  for (int i = 0; i < 3; i++)
    if (parts[i]) {
      memcpy(out->classical + at, qkd_nn_params(parts[i]), sizeof(float) * (size_t)qkd_nn_param_count(parts[i]));
      at += qkd_nn_param_count(parts[i]);
    }
  if (out->epochs > 0 && out->test_logits_epoch != out->epochs) /* resumed after the last epoch */
    evaluate(&s, &ds->test, eval_seed, out->test_logits), out->test_logits_epoch = out->epochs;
  int kept = keep_untrained(&s, out);
  student_free(&s);
  out->seconds = qkd_now_s() - t0;
  if (kept != 0 || !out->test_logits || !out->circuit_params || !out->classical) {
    qkd_student_result_free(out);
    qkd_fail(err, QKD_ERR_MEMORY, NULL, "experiment '%s': out of memory for the results", e->name);
    return -1;
  }
  return stopped ? 1 : 0;
}

static void *dup_bytes(const void *src, size_t n) {
  void *p = malloc(n + 1);
  if (p) memcpy(p, src, n);
  return p;
}

int qkd_student_result_copy(qkd_student_result *dst, const qkd_student_result *src) {
  *dst = *src;
  dst->test_logits = NULL, dst->state = NULL, dst->fixed = NULL; /* src's until copied below */
  int E = src->epochs > 0 ? src->epochs : 1;
  dst->test_accuracy = malloc(sizeof(double) * (size_t)E);
  dst->train_loss = malloc(sizeof(double) * (size_t)E);
  dst->validation_accuracy = src->validation_accuracy ? malloc(sizeof(double) * (size_t)E) : NULL;
  dst->circuit_params = malloc(sizeof(double) * (size_t)(src->quantum_params + 1));
  dst->classical = malloc(sizeof(float) * (size_t)(src->classical_params + 1));
  if (!dst->test_accuracy || !dst->train_loss || (src->validation_accuracy && !dst->validation_accuracy) ||
      !dst->circuit_params || !dst->classical) {
    qkd_student_result_free(dst);
    return -1;
  }
  memcpy(dst->test_accuracy, src->test_accuracy, sizeof(double) * (size_t)src->epochs);
  memcpy(dst->train_loss, src->train_loss, sizeof(double) * (size_t)src->epochs);
  if (src->validation_accuracy) memcpy(dst->validation_accuracy, src->validation_accuracy, sizeof(double) * (size_t)src->epochs);
  if (src->circuit_params) memcpy(dst->circuit_params, src->circuit_params, sizeof(double) * (size_t)src->quantum_params);
  if (src->classical) memcpy(dst->classical, src->classical, sizeof(float) * (size_t)src->classical_params);
  if ((src->test_logits && !(dst->test_logits = dup_bytes(src->test_logits, sizeof(double) * (size_t)src->n_test_logits))) ||
      (src->state && !(dst->state = dup_bytes(src->state, sizeof(float) * (size_t)src->n_state))) ||
      (src->fixed && !(dst->fixed = dup_bytes(src->fixed, sizeof(float) * (size_t)src->n_fixed)))) {
    qkd_student_result_free(dst);
    return -1;
  }
  return 0;
}

void qkd_student_result_free(qkd_student_result *r) {
  free(r->test_accuracy);
  free(r->validation_accuracy);
  free(r->train_loss);
  free(r->circuit_params);
  free(r->classical);
  free(r->test_logits);
  free(r->state);
  free(r->fixed);
  memset(r, 0, sizeof *r);
}

/* ---- a student outside the training loop (qkd_train.h) ---------------------------------------- */

qkd_student *qkd_student_create(const qkd_m_experiment *e, const qkd_dataset *ds, const qkd_kernel *kernel,
                                int threads, qkd_error *err) {
  return qkd_student_create_run(e, ds, kernel, QKD_RUN_DISTILLED, threads, err);
}

qkd_student *qkd_student_create_run(const qkd_m_experiment *e, const qkd_dataset *ds, const qkd_kernel *kernel,
                                    qkd_run_kind kind, int threads, qkd_error *err) {
  student *s = malloc(sizeof *s);
  if (!s) {
    qkd_fail(err, QKD_ERR_MEMORY, NULL, "out of memory");
    return NULL;
  }
  int control = kind == QKD_RUN_CONTROL ? (e->control ? (int)e->control : QKD_CONTROL_CLASSICAL) : 0;
  if (student_init(s, e, ds, kernel, NULL, NULL, control, threads, NULL, err) != 0) {
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
static long n_mid(const student *s) { return s->mid ? qkd_nn_param_count(s->mid) : 0; }
static long n_head(const student *s) { return s->head ? qkd_nn_param_count(s->head) : 0; }

long qkd_student_param_count(const qkd_student *s) { return n_pre(s) + s->P + n_mid(s) + n_head(s); }

/* The flat vector: pre, circuit (double), the control's layer, head. */
static void params_io(qkd_student *s, double *v, int get, int grads) {
  qkd_nn *parts[3] = {s->pre, s->mid, s->head};
  long at = 0;
  for (int k = 0; k < 3; k++) {
    if (k == 1) {
      for (int i = 0; i < s->P; i++, at++)
        if (grads) v[at] = s->dtheta[i];
        else if (get) v[at] = s->theta[i];
        else s->theta[i] = v[at];
    }
    if (!parts[k]) continue;
    float *p = grads ? qkd_nn_grads(parts[k]) : qkd_nn_params(parts[k]);
    long n = qkd_nn_param_count(parts[k]);
    for (long i = 0; i < n; i++, at++)
      if (get || grads) v[at] = p[i];
      else p[i] = (float)v[at];
  }
}

void qkd_student_get_params(qkd_student *s, double *out) { params_io(s, out, 1, 0); }
void qkd_student_set_params(qkd_student *s, const double *in) { params_io(s, (double *)in, 0, 0); }

double qkd_student_loss_grad(qkd_student *s, const qkd_loss *loss, const int *idx, int n, const float *teacher,
                             double *grad) {
  memcpy(s->idx, idx, sizeof(int) * (size_t)n);
  qkd_data_batch(s->ds, &s->ds->train, s->idx, n, s->x, s->y);
  forward(s, n, 0, 0, 0, 0);
  if (teacher)
    for (int r = 0; r < n; r++)
      for (int c = 0; c < s->C; c++) s->tlogits[(long)r * s->C + c] = teacher[(long)idx[r] * s->C + c];
  double l = qkd_loss_eval_par(loss, s->logits, teacher ? s->tlogits : NULL, s->y, n, s->C, grad ? s->dlogits : NULL, s->pool);
  if (!grad) return l;
  if (s->pre) qkd_nn_zero_grad(s->pre);
  if (s->head) qkd_nn_zero_grad(s->head);
  if (s->mid) qkd_nn_zero_grad(s->mid);
  memset(s->dtheta, 0, sizeof(double) * (size_t)s->P);
  backward(s, n, 0, 0);
  params_io(s, grad, 0, 1);
  return l;
}

int qkd_student_sample_features(const qkd_m_experiment *e, const qkd_dataset *ds, const qkd_split *sp, int row,
                                const float *classical, long n_classical, double *features, qkd_error *err) {
  if (row < 0 || row >= sp->n)
    return qkd_fail(err, QKD_ERR_INPUT, NULL, "sample %d is not in the split (it has %d images: 0..%d)", row, sp->n,
                    sp->n - 1);
  qkd_kernel k = qkd_qsim_kernel(&e->student.circuit); /* never run: the features come before it */
  student s;
  if (student_init(&s, e, ds, &k, NULL, NULL, 0, 1, NULL, err) != 0) {
    student_free(&s);
    return -1;
  }
  if (classical) {
    if (n_classical != n_pre(&s) + n_head(&s)) {
      qkd_fail(err, QKD_ERR_INPUT, NULL, "the weights hold %ld classical parameters, student '%s' has %ld (pre %ld, head %ld)",
               n_classical, s.st->name, n_pre(&s) + n_head(&s), n_pre(&s), n_head(&s));
      student_free(&s);
      return -1;
    }
    if (s.pre) memcpy(qkd_nn_params(s.pre), classical, sizeof(float) * (size_t)n_pre(&s));
  }
  qkd_data_batch(ds, sp, &row, 1, s.x, s.y);
  const float *f = s.x;
  if (s.pre) f = qkd_nn_forward(s.pre, s.x, 1, 0, 0);
  else if (s.has_red) {
    qkd_nn_reduce_forward(&s.red, s.x, 1, s.feat_f);
    f = s.feat_f;
  }
  for (int i = 0; i < s.F; i++) features[i] = f[i];
  student_free(&s);
  return 0;
}
