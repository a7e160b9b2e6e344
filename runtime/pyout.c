/* pyout.c — a run's outputs for Python (qkd_pyout.h): named .npz weights, test logits, labels. */
#include "qkd_pyout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkd_ir.h"
#include "qkd_npy.h"

/* The arrays of one .npz, in order; data is borrowed. */
typedef struct {
  char **names;
  qkd_npy *a;
  int n, cap, oom;
} arrays;

static void add(arrays *L, const char *name, qkd_npy_type type, const void *data, int ndim, long d0, long d1, long d2,
                long d3) {
  if (L->oom) return;
  if (L->n == L->cap) {
    int cap = L->cap ? 2 * L->cap : 16;
    char **nn = realloc(L->names, sizeof *nn * (size_t)cap);
    if (nn) L->names = nn;
    qkd_npy *na = nn ? realloc(L->a, sizeof *na * (size_t)cap) : NULL;
    if (!na) { L->oom = 1; return; }
    L->a = na, L->cap = cap;
  }
  qkd_npy *a = &L->a[L->n];
  long d[4] = {d0, d1, d2, d3};
  memset(a, 0, sizeof *a);
  a->type = type, a->ndim = ndim, a->count = 1, a->data = (void *)data;
  for (int i = 0; i < ndim; i++) a->shape[i] = d[i], a->count *= d[i];
  if (!(L->names[L->n] = strdup(name))) { L->oom = 1; return; }
  L->n++;
}

static void arrays_free(arrays *L) {
  for (int i = 0; i < L->n; i++) free(L->names[i]);
  free(L->names);
  free(L->a);
}

/* Adds the parameters of net spec on input `in` — PREFIX.I.weight … (indexed: I = the layer's
 * index) or PREFIX.weight … — from p (parameters) and st + *ns (state; *ns advances). Returns the
 * parameters used, or -1 when the layers do not fit `in`. */
static long add_net(arrays *L, const char *prefix, int indexed, const qkd_net_spec *spec, qkd_shape in,
                    int implicit_flatten, const float *p, const float *st, long *ns) {
  long used = 0;
  char name[512];
  for (int m = 0; m < spec->n_members; m++) { /* mean(a, b, …): members in order, like nn.ModuleList */
    snprintf(name, sizeof name, "%s.members.%d", prefix, m);
    long u = add_net(L, name, 1, &spec->members[m], in, implicit_flatten, p + used, st, ns);
    if (u < 0) return -1;
    used += u;
  }
  qkd_shape s = in;
  for (int i = 0; i < spec->n_layers; i++) {
    const qkd_layer_spec *l = &spec->layers[i];
    char base[480];
    if (indexed) snprintf(base, sizeof base, "%s.%d", prefix, i);
    else snprintf(base, sizeof base, "%s", prefix);
    long w = 0, b = 0; /* the weight's and the bias's sizes */
    if (l->kind == QKD_LAYER_CONV) {
      w = (long)l->units * s.c * l->kernel * l->kernel, b = l->units;
      snprintf(name, sizeof name, "%s.weight", base);
      add(L, name, QKD_NPY_F32, p + used, 4, l->units, s.c, l->kernel, l->kernel);
    } else if (l->kind == QKD_LAYER_DENSE) {
      w = (long)l->units * qkd_shape_size(s), b = l->units;
      snprintf(name, sizeof name, "%s.weight", base);
      add(L, name, QKD_NPY_F32, p + used, 2, l->units, qkd_shape_size(s), 0, 0);
    } else if (l->kind == QKD_LAYER_BATCHNORM) {
      w = b = s.c;
      snprintf(name, sizeof name, "%s.weight", base);
      add(L, name, QKD_NPY_F32, p + used, 1, s.c, 0, 0, 0);
    }
    if (b) {
      snprintf(name, sizeof name, "%s.bias", base);
      add(L, name, QKD_NPY_F32, p + used + w, 1, b, 0, 0, 0);
    }
    if (l->kind == QKD_LAYER_BATCHNORM) { /* the state block: running mean [C], variance [C] */
      snprintf(name, sizeof name, "%s.running_mean", base);
      add(L, name, QKD_NPY_F32, st + *ns, 1, s.c, 0, 0, 0);
      snprintf(name, sizeof name, "%s.running_var", base);
      add(L, name, QKD_NPY_F32, st + *ns + s.c, 1, s.c, 0, 0, 0);
      *ns += 2L * s.c;
    }
    used += w + b;
    qkd_shape next;
    if (qkd_net_shapes(l, 1, s, implicit_flatten, NULL, &next, NULL) >= 0) return -1;
    s = next;
  }
  return used;
}

/* PREFIX.weight [units][inputs], PREFIX.bias [units]: a lone dense layer (pre: dense(k), the
 * head, a control's layer). */
static long add_dense(arrays *L, const char *prefix, int units, long inputs, const float *p) {
  qkd_layer_spec dl = {.kind = QKD_LAYER_DENSE, .units = units, .stride = 1};
  qkd_net_spec spec = {.name = prefix, .n_layers = 1, .layers = &dl};
  long ns = 0;
  return add_net(L, prefix, 0, &spec, (qkd_shape){(int)inputs, 1, 1, 1}, 1, p, NULL, &ns);
}

/* `classes` [C] int64: the original label of each class; returns its buffer (the caller frees). */
static int64_t *add_classes(arrays *L, const qkd_m_dataset *d, long C) {
  int64_t *classes = malloc(sizeof(int64_t) * (size_t)(C + 1));
  for (long k = 0; classes && k < C; k++) classes[k] = k < d->n_classes ? d->classes[k] : k;
  add(L, "classes", QKD_NPY_I64, classes, 1, C, 0, 0, 0);
  return classes;
}

static char *path_of(const char *stem, const char *run, const char *ext) {
  size_t n = strlen(stem) + (run ? strlen(run) : 0) + strlen(ext) + 4;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s.%s%s%s", stem, run ? run : "", run ? "." : "", ext);
  return p;
}

/* The test logits as float32 when `as_f32` and every value is a float32 value, else float64. */
static int save_logits(const char *path, const qkd_student_result *res, long n, long C, int as_f32, qkd_error *err) {
  float *f = as_f32 ? malloc(sizeof(float) * (size_t)(n * C + 1)) : NULL;
  for (long i = 0; f && i < n * C; i++) {
    f[i] = (float)res->test_logits[i];
    if (f[i] != res->test_logits[i] && f[i] == f[i]) { /* not exact (NaN is NaN either way) */
      free(f);
      f = NULL;
    }
  }
  qkd_npy a = {f ? QKD_NPY_F32 : QKD_NPY_F64, 2, {n, C}, n * C, f ? (void *)f : (void *)res->test_logits};
  int rc = qkd_npy_save(path, &a, err);
  free(f);
  return rc;
}

int qkd_pyout_write_run(const char *stem, const char *run, qkd_run_kind kind, const qkd_m_experiment *e,
                        const qkd_dataset *ds, const qkd_student_result *res, qkd_error *err) {
  const qkd_m_student *st = &e->student;
  qkd_shape in = {ds->c, ds->h, ds->w, 0};
  long D = qkd_shape_size(in), C = ds->n_classes, n = ds->test.n, used = 0, ns = 0, nf = 0;
  long F = st->circuit.n_features, O = qkd_ir_outputs(&st->circuit);
  const float *cl = res->classical;
  arrays L = {0};
  if (st->pre == QKD_PRE_DENSE) used += add_dense(&L, "pre", st->pre_k, D, cl);
  else if (st->pre == QKD_PRE_NET) used += add_net(&L, "pre", 1, &st->pre_net, in, 1, cl, res->state, &ns);
  else if (st->pre == QKD_PRE_PCA) {
    add(&L, "pre.mean", QKD_NPY_F32, res->fixed, 1, D, 0, 0, 0);
    add(&L, "pre.basis", QKD_NPY_F32, res->fixed + D, 2, D, st->pre_k, 0, 0);
    nf = D + D * st->pre_k;
  }
  if (kind == QKD_RUN_CONTROL) {
    long np = res->n_fixed - nf, R = np > 0 ? np / F : F;
    if (np > 0) add(&L, "control.projection", QKD_NPY_F32, res->fixed + nf, 2, R, F, 0, 0);
    nf += np;
    used += add_dense(&L, "control", (int)O, R, cl + used);
  } else {
    add(&L, "circuit.theta", QKD_NPY_F64, res->circuit_params, 1, res->quantum_params, 0, 0, 0);
  }
  if (st->head_dense) used += add_dense(&L, "head", st->head_dense, O, cl + used);
  int64_t *classes = add_classes(&L, e->data, C);
  char *npz = path_of(stem, run, "npz"), *lg = path_of(stem, run, "test_logits.npy");
  int rc = -1;
  if (L.oom || !classes || !npz || !lg) qkd_fail(err, QKD_ERR_MEMORY, npz, "out of memory");
  else if (used != res->classical_params || ns != res->n_state || nf != res->n_fixed ||
           res->n_test_logits != n * C || res->test_logits_epoch != res->epochs)
    qkd_fail(err, QKD_ERR_INTERNAL, npz, "the run's parameters (%ld classical, %ld state, %ld fixed) do not match its "
             "student (%ld, %ld, %ld)", res->classical_params, res->n_state, res->n_fixed, used, ns, nf);
  else if (qkd_npz_save(npz, (const char *const *)L.names, L.a, L.n, 0, err) == 0)
    rc = save_logits(lg, res, n, C, st->head_dense || st->circuit.precision == QKD_PREC_F32 || kind == QKD_RUN_CONTROL, err);
  arrays_free(&L);
  free(classes), free(npz), free(lg);
  return rc;
}

int qkd_pyout_write_labels(const char *stem, const qkd_dataset *ds, qkd_error *err) {
  long n = ds->test.n;
  int64_t *y = malloc(sizeof(int64_t) * (size_t)(n + 1));
  char *path = path_of(stem, NULL, "test_labels.npy");
  int rc = -1;
  if (!y || !path) qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory");
  else {
    for (long i = 0; i < n; i++) y[i] = ds->test.y[i];
    qkd_npy a = {QKD_NPY_I64, 1, {n}, n, y};
    rc = qkd_npy_save(path, &a, err);
  }
  free(y), free(path);
  return rc;
}

int qkd_pyout_write_teacher(const char *path, const qkd_m_teacher *t, const qkd_dataset *ds, qkd_nn *net,
                            qkd_error *err) {
  arrays L = {0};
  long ns = 0;
  long used = add_net(&L, "net", 1, &t->net, (qkd_shape){ds->c, ds->h, ds->w, 0}, 0, qkd_nn_params(net),
                      qkd_nn_state(net), &ns);
  int64_t *classes = add_classes(&L, t->data, ds->n_classes);
  int rc = -1;
  if (L.oom || !classes) qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory");
  else if (used != qkd_nn_param_count(net) || ns != qkd_nn_state_count(net))
    qkd_fail(err, QKD_ERR_INTERNAL, path, "teacher '%s': %ld parameters and %ld state values, its net names %ld and %ld",
             t->name, qkd_nn_param_count(net), qkd_nn_state_count(net), used, ns);
  else rc = qkd_npz_save(path, (const char *const *)L.names, L.a, L.n, 0, err);
  arrays_free(&L);
  free(classes);
  return rc;
}
