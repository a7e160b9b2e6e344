/* sema_data.c — `dataset` declarations: sources, image shapes, class selections (sema_int.h). */
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "qkd_data.h"
#include "sema_int.h"

/* Reads the item shape of a directory or .npz source from its headers (runtime/data.c does the reading). */
static int probe_dir(sema *S, const qkd_ast *at, const char *dir, qkd_m_dataset *ds) {
  struct stat st;
  size_t n = strlen(dir);
  int npz = n > 4 && strcmp(dir + n - 4, ".npz") == 0;
  if (stat(dir, &st) != 0 || !(npz ? S_ISREG(st.st_mode) : S_ISDIR(st.st_mode))) {
    qkd_diag_error(S->D, at->span, npz ? "data file '%s' does not exist" : "data directory '%s' does not exist", dir);
    return -1;
  }
  qkd_error err;
  if (qkd_data_probe(dir, &ds->c, &ds->h, &ds->w, &ds->source_classes, &ds->n_train_source, &ds->n_test_source, &err) != 0) {
    /* at the source's span: "PATH: what" */
    if (err.path[0]) qkd_diag_error(S->D, at->span, "%s: %s", err.path, err.msg);
    else qkd_diag_error(S->D, at->span, "%s", err.msg);
    return -1;
  }
  return 0;
}

qkd_m_dataset *sema_check_dataset(sema *S, const qkd_ast *d) {
  sema_check_fields(S, &d->items, SEMA_IN_DATASET);
  qkd_m_dataset *ds = qkd_arena_alloc(S->A, sizeof *ds);
  ds->name = d->name;
  ds->seed = 1;
  const qkd_ast *f = sema_get(S, d, SEMA_IN_DATASET, "source");
  const char *src = f ? sema_string(S, SEMA_IN_DATASET, f) : NULL;
  int ok = src != NULL;
  if (src) {
    ds->source = src;
    if (!strcmp(src, "mnist") || !strcmp(src, "fashion-mnist")) {
      ds->source_kind = QKD_SRC_NAMED, ds->c = 1, ds->h = ds->w = 28, ds->source_classes = 10;
      ds->n_train_source = 60000, ds->n_test_source = 10000;
    } else if (!strcmp(src, "cifar10")) {
      ds->source_kind = QKD_SRC_NAMED, ds->c = 3, ds->h = ds->w = 32, ds->source_classes = 10;
      ds->n_train_source = 50000, ds->n_test_source = 10000;
    } else if (!strcmp(src, "synthetic")) {
      ds->source_kind = QKD_SRC_SYNTHETIC, ds->c = 1, ds->h = ds->w = 28, ds->source_classes = 10;
    } else if (strchr(src, '/') || src[0] == '.') {
      ds->source_kind = QKD_SRC_DIR;
      ds->dir = sema_resolve_path(S, f, src);
      if (probe_dir(S, f->a, ds->dir, ds) != 0) ok = 0;
    } else {
      qkd_diag_error(S->D, f->a->span, "unknown data source \"%s\" (known: \"mnist\", \"fashion-mnist\", \"cifar10\", \"synthetic\"; a directory path contains '/')", src);
      ok = 0;
    }
  }
  long x;
  if ((f = sema_get(S, d, SEMA_IN_DATASET, "shape"))) {
    if (ok && ds->source_kind != QKD_SRC_SYNTHETIC) qkd_diag_error(S->D, f->name_span, "'shape' is only for synthetic sources");
    qkd_value v = qkd_eval_expr(&S->ev, NULL, f->a);
    if (v.kind == QKD_V_LIST && v.n == 3) {
      int dims[3] = {1, 1, 1};
      for (int i = 0; i < 3; i++) {
        dims[i] = v.items[i].kind == QKD_V_NUM && v.items[i].num == floor(v.items[i].num) ? (int)v.items[i].num : -1;
        if (dims[i] < 1 || dims[i] > 4096) {
          qkd_diag_error(S->D, f->a->span, "shape must be [channels, height, width] of positive integers");
          ok = 0;
          break;
        }
      }
      ds->c = dims[0], ds->h = dims[1], ds->w = dims[2];
    } else if (v.kind != QKD_V_ERR) {
      qkd_diag_error(S->D, f->a->span, "shape must be a list [channels, height, width]");
    }
  }
  if ((f = sema_get(S, d, SEMA_IN_DATASET, "seed"))) {
    if (ok && ds->source_kind != QKD_SRC_SYNTHETIC) qkd_diag_error(S->D, f->name_span, "'seed' is only for synthetic sources");
    if (sema_int(S, SEMA_IN_DATASET, f, &x) == 0) ds->seed = (int)x;
  }
  if (!ok) return NULL;
  int C = ds->source_classes;
  if ((f = sema_get(S, d, SEMA_IN_DATASET, "classes"))) {
    qkd_value v = qkd_eval_expr(&S->ev, NULL, f->a);
    if (v.kind == QKD_V_RANGE) {
      if (v.lo > v.hi) {
        qkd_diag_error(S->D, f->a->span, "class range %g..%g is reversed", v.lo, v.hi);
        return NULL;
      }
      if (v.lo < 0 || v.hi >= C) {
        qkd_diag_error(S->D, f->a->span, "classes %g..%g are outside the source's labels 0..%d", v.lo, v.hi, C - 1);
        return NULL;
      }
      ds->n_classes = (int)(v.hi - v.lo) + 1;
      ds->classes = qkd_arena_alloc(S->A, sizeof(int) * (size_t)ds->n_classes);
      for (int i = 0; i < ds->n_classes; i++) ds->classes[i] = (int)v.lo + i;
    } else if (v.kind == QKD_V_LIST && v.n > 0) {
      ds->n_classes = v.n;
      ds->classes = qkd_arena_alloc(S->A, sizeof(int) * (size_t)v.n);
      for (int i = 0; i < v.n; i++) {
        double c = v.items[i].kind == QKD_V_NUM ? v.items[i].num : -1;
        if (c != floor(c) || c < 0 || c >= C) {
          qkd_diag_error(S->D, f->a->span, "class list entries must be labels 0..%d", C - 1);
          return NULL;
        }
        for (int j = 0; j < i; j++)
          if (ds->classes[j] == (int)c) {
            qkd_diag_error(S->D, f->a->span, "class %d is listed twice", (int)c);
            return NULL;
          }
        ds->classes[i] = (int)c;
      }
    } else {
      if (v.kind != QKD_V_ERR) qkd_diag_error(S->D, f->a->span, "classes must be a range (0..9) or a non-empty list ([0, 3, 5])");
      return NULL;
    }
    if (ds->n_classes < 2) {
      qkd_diag_error(S->D, f->a->span, "a classification task needs at least 2 classes");
      return NULL;
    }
  } else {
    ds->n_classes = C;
    ds->classes = qkd_arena_alloc(S->A, sizeof(int) * (size_t)C);
    for (int i = 0; i < C; i++) ds->classes[i] = i;
  }
  struct { const char *name; int *dst; } ints[] = {{"per_class", &ds->per_class}, {"train_limit", &ds->train_limit},
                                                   {"test_limit", &ds->test_limit}, {"validation", &ds->validation}};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
    if (sema_int_field(S, d, SEMA_IN_DATASET, ints[i].name, &x) == 0) *ints[i].dst = (int)x;
  if (ds->source_kind == QKD_SRC_SYNTHETIC) { /* generated to the limits (runtime/data.c) */
    ds->n_train_source = ds->train_limit ? ds->train_limit : 1000;
    ds->n_test_source = ds->test_limit ? ds->test_limit : 200;
  }
  int k = sema_choice_field(S, d, SEMA_IN_DATASET, "scale");
  if (k >= 0) ds->scale = (qkd_scale_kind)k;
  if (ds->train_limit && ds->validation >= ds->train_limit && (f = sema_field(&d->items, "validation")))
    qkd_diag_error(S->D, f->a->span, "validation (%d) must be smaller than train_limit (%d)", ds->validation, ds->train_limit);
  return ds;
}

qkd_m_dataset *sema_dataset_ref(sema *S, sema_scope scope, const qkd_ast *f) {
  qkd_ast *d = sema_ref(S, scope, f);
  if (!d) return NULL;
  for (int i = 0; i < S->ds_ast.len; i++)
    if (S->ds_ast.items[i] == d) return S->ds_model.items[i];
  return NULL;
}

