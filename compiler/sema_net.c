/* sema_net.c — nets (layers, shapes, `mean` ensembles), training recipes and `teacher`
 * declarations (sema_int.h). */
#include <math.h>
#include <string.h>

#include "lower.h"
#include "qkd_npy.h"
#include "sema_int.h"

int sema_build_layers(sema *S, const qkd_env *env, const qkd_vec *items, qkd_layer_spec **out, qkd_span **spans) {
  int n = items->len, rc = 0;
  qkd_layer_spec *L = qkd_arena_alloc(S->A, sizeof *L * (size_t)(n ? n : 1));
  qkd_span *sp = qkd_arena_alloc(S->A, sizeof *sp * (size_t)(n ? n : 1));
  for (int i = 0; i < n; i++) {
    const qkd_ast *c = items->items[i];
    sp[i] = c->span;
    int k = qkd_layer_lookup(c->name);
    if (k < 0) {
      qkd_diag_error(S->D, c->name_span, "unknown layer '%s'", c->name);
      rc = -1;
      continue;
    }
    const qkd_layer_info *info = &qkd_layer_table[k];
    L[i] = (qkd_layer_spec){.kind = (qkd_layer_kind)k, .stride = 1};
    int line, col;
    qkd_diag_linecol(S->D, c->span.file, c->span.start, &line, &col);
    L[i].line = line, L[i].col = col;
    int pos = 0, broken = 0;
    double vals[2] = {0, 0};
    for (int j = 0; j < c->items.len; j++) {
      const qkd_ast *a = c->items.items[j];
      double v;
      int known = qkd_eval_num(&S->ev, env, a->a, &v); /* 1: a parameter in a definition */
      if (known < 0) { rc = -1, broken = 1; continue; }
      if (a->name) {
        int is_int = v == floor(v);
        if (k == QKD_LAYER_CONV && (!strcmp(a->name, "stride") || !strcmp(a->name, "padding"))) {
          if (known > 0) {
            /* symbolic: checked at each use */
          } else if (!is_int || v < (a->name[0] == 's' ? 1 : 0) || v > 1024) {
            qkd_diag_error(S->D, a->span, "conv %s must be an integer %s", a->name, a->name[0] == 's' ? ">= 1" : ">= 0");
            rc = -1;
          } else if (a->name[0] == 's') {
            L[i].stride = (int)v;
          } else {
            L[i].padding = (int)v;
          }
        } else {
          qkd_diag_error(S->D, a->name_span, "layer '%s' has no parameter '%s'", c->name, a->name);
          rc = -1;
        }
        continue;
      }
      if (pos >= info->max_args) {
        qkd_diag_error(S->D, a->span, "layer '%s' takes %d argument%s", c->name, info->max_args, info->max_args == 1 ? "" : "s");
        rc = -1;
        continue;
      }
      vals[pos++] = v;
    }
    if (broken) continue; /* an argument's error is the layer's only one */
    if (pos < info->min_args) {
      qkd_diag_error(S->D, c->span, "layer '%s' needs %d argument%s", c->name, info->min_args, info->min_args == 1 ? "" : "s");
      rc = -1;
      continue;
    }
    if (k == QKD_LAYER_DROPOUT || k == QKD_LAYER_SCALE) {
      L[i].value = vals[0];
    } else {
      for (int j = 0; j < pos; j++)
        if (isnan(vals[j])) {
          vals[j] = 1; /* symbolic: checked at each use */
        } else if (vals[j] != floor(vals[j]) || vals[j] < 1 || vals[j] > 1e8) {
          qkd_diag_error(S->D, c->span, "layer '%s' needs positive integer sizes", c->name);
          rc = -1;
          break;
        }
      L[i].units = (int)vals[0];
      L[i].kernel = (int)vals[1];
    }
  }
  *out = L;
  *spans = sp;
  return rc;
}

int sema_check_shapes(sema *S, const qkd_layer_spec *L, const qkd_span *sp, int n, qkd_shape in, int implicit,
                      qkd_shape *result, qkd_span site) {
  qkd_error err;
  int bad = qkd_net_shapes(L, n, in, implicit, NULL, result, &err);
  if (bad < 0) return 0;
  qkd_diag_error(S->D, sp[bad], "%s", err.msg);
  if (site.file >= 0 && site.file != sp[bad].file) qkd_diag_note(S->D, site, "for the input shape %dx%dx%d used here", in.c, in.h, in.w);
  return -1;
}

/* Instantiates the net named by `ref` (IDENT or CALL), checks it on `in`, and requires `classes`
 * logits when classes > 0. */
static int build_net(sema *S, const qkd_ast *ref, qkd_shape in, int classes, qkd_net_spec *out, long *params, int depth) {
  qkd_ast *d = sema_resolve(S, ref, QKD_DECL_NET);
  if (!d) return -1;
  if (depth > SEMA_MAX_NET_NESTING) {
    qkd_diag_error(S->D, ref->span, "net '%s' refers to itself (or nests more than %d levels)", d->name, SEMA_MAX_NET_NESTING);
    return -1;
  }
  qkd_env *env;
  if (qkd_bind_args(&S->ev, d, ref->kind == QKD_AST_CALL ? ref : NULL, ref->span, NULL, &env) != 0) return -1;
  if (sema_failed(S, d)) return -1; /* reported at the definition; the call's own errors above */
  memset(out, 0, sizeof *out);
  out->name = d->name;
  if (d->a) { /* = mean(net, net, …) */
    const qkd_ast *m = d->a;
    if (m->kind != QKD_AST_CALL || strcmp(m->name, "mean") != 0 || m->items.len < 1) {
      qkd_diag_error(S->D, m->span, "a net defined with '=' must be mean(net, net, …)");
      return -1;
    }
    out->n_members = m->items.len;
    out->members = qkd_arena_alloc(S->A, sizeof *out->members * (size_t)m->items.len);
    *params = 0;
    for (int i = 0; i < m->items.len; i++) {
      const qkd_ast *a = m->items.items[i];
      /* member arguments are evaluated in this net's environment: rebuild the call with values */
      const qkd_ast *member = a->a;
      qkd_ast *call = qkd_ast_new(S->A, member->kind == QKD_AST_CALL ? QKD_AST_CALL : QKD_AST_IDENT, member->span);
      call->name = member->name;
      call->name_span = member->name_span;
      for (int j = 0; member->kind == QKD_AST_CALL && j < member->items.len; j++) {
        const qkd_ast *arg = member->items.items[j];
        double v;
        if (qkd_eval_num(&S->ev, env, arg->a, &v) != 0) return -1;
        qkd_ast *num = qkd_ast_new(S->A, QKD_AST_NUM, arg->a->span);
        num->num = v;
        qkd_ast *na = qkd_ast_new(S->A, QKD_AST_ARG, arg->span);
        na->name = arg->name;
        na->name_span = arg->name_span;
        qkd_ast_set(na, num, NULL);
        qkd_ast_push(S->A, call, na);
      }
      long p = 0;
      if (build_net(S, call, in, classes, &out->members[i], &p, depth + 1) != 0) return -1;
      *params += p;
    }
    return 0;
  }
  qkd_span *spans;
  if (sema_build_layers(S, env, &d->items, &out->layers, &spans) != 0) return -1;
  out->n_layers = d->items.len;
  qkd_shape res;
  if (sema_check_shapes(S, out->layers, spans, out->n_layers, in, 0, &res, ref->span) != 0) return -1;
  if (classes > 0 && (!res.flat || res.c != classes)) {
    qkd_diag_error(S->D, ref->span, "net '%s' produces %ld output%s, but the data set has %d classes", d->name,
                   qkd_shape_size(res), qkd_shape_size(res) == 1 ? "" : "s", classes);
    return -1;
  }
  *params = qkd_net_param_count(out->layers, out->n_layers, in, 0);
  return 0;
}

int sema_check_net_definition(sema *S, const qkd_ast *d) {
  const qkd_env *env = qkd_env_symbolic(S->A, &d->params, NULL);
  if (!d->a) {
    qkd_layer_spec *layers;
    qkd_span *spans;
    return sema_build_layers(S, env, &d->items, &layers, &spans);
  }
  const qkd_ast *m = d->a;
  if (m->kind != QKD_AST_CALL || strcmp(m->name, "mean") != 0 || m->items.len < 1) {
    qkd_diag_error(S->D, m->span, "a net defined with '=' must be mean(net, net, …)");
    return -1;
  }
  int rc = 0;
  for (int i = 0; i < m->items.len; i++) {
    const qkd_ast *member = ((const qkd_ast *)m->items.items[i])->a;
    int ok = 1;
    for (int j = 0; member->kind == QKD_AST_CALL && j < member->items.len; j++) {
      double v;
      if (qkd_eval_num(&S->ev, env, ((const qkd_ast *)member->items.items[j])->a, &v) < 0) ok = 0;
    }
    const qkd_ast *md = sema_resolve(S, member, QKD_DECL_NET);
    qkd_env *bound;
    if (!ok || !md || qkd_bind_args(&S->ev, md, member->kind == QKD_AST_CALL ? member : NULL, member->span, env, &bound) != 0)
      rc = -1;
  }
  return rc;
}

/* ---- training recipes ------------------------------------------------------------------------ */

/* augment: [crop(pad: p), flip] (a list, or one of them) and schedule: constant | cosine, into
 * fit; a train block without a fit (an experiment's) takes neither. */
static void check_fit(sema *S, const qkd_ast *b, qkd_fit *fit) {
  const qkd_ast *f;
  if ((f = sema_get(S, b, SEMA_IN_TRAIN, "augment"))) {
    const qkd_ast *v = f->a;
    int n = v->kind == QKD_AST_LIST ? v->items.len : 1;
    for (int i = 0; fit && i < n; i++) {
      const qkd_ast *a = v->kind == QKD_AST_LIST ? v->items.items[i] : v;
      const char *name = a->kind == QKD_AST_CALL || a->kind == QKD_AST_IDENT ? a->name : "";
      static const char *const pad[] = {"pad", NULL};
      static const double nodef[] = {NAN};
      double p;
      if (!strcmp(name, "crop") && sema_bind_builtin(S, NULL, a, pad, nodef, &p) == 0) {
        if (fit->crop_pad) qkd_diag_error(S->D, a->span, "crop is given twice");
        else if (p != floor(p) || p < 1 || p > 1024) qkd_diag_error(S->D, a->span, "crop needs an integer pad >= 1, not %g", p);
        else fit->crop_pad = (int)p;
      } else if (!strcmp(name, "flip")) {
        if (a->kind == QKD_AST_CALL && a->items.len) qkd_diag_error(S->D, a->span, "flip takes no arguments");
        else if (fit->flip) qkd_diag_error(S->D, a->span, "flip is given twice");
        fit->flip = 1;
      } else if (strcmp(name, "crop") != 0) {
        qkd_diag_error(S->D, a->span, "unknown augmentation: use crop(pad: p) or flip");
      }
    }
    if (!fit) qkd_diag_error(S->D, f->name_span, "augment applies to a teacher's training only");
  }
  if ((f = sema_get(S, b, SEMA_IN_TRAIN, "schedule"))) {
    const qkd_ast *v = f->a;
    int bare = v->kind == QKD_AST_IDENT || (v->kind == QKD_AST_CALL && v->items.len == 0);
    if (!fit) qkd_diag_error(S->D, f->name_span, "schedule applies to a teacher's training only");
    else if (bare && !strcmp(v->name, "cosine")) fit->schedule = QKD_SCHEDULE_COSINE;
    else if (!(bare && !strcmp(v->name, "constant"))) qkd_diag_error(S->D, v->span, "unknown schedule: use constant or cosine");
  }
}

int sema_check_train(sema *S, const qkd_ast *owner, sema_scope scope, qkd_m_train *t, qkd_fit *fit) {
  const qkd_ast *b = sema_get(S, owner, scope, "train");
  if (!b) return -1;
  int errs = S->D->errors;
  sema_check_fields(S, &b->items, SEMA_IN_TRAIN);
  *t = (qkd_m_train){.optimizer = QKD_OPT_ADAM, .lr = 0.001, .beta1 = 0.9, .beta2 = 0.999, .seed = 1};
  const qkd_ast *f;
  long x;
  if ((f = sema_get(S, b, SEMA_IN_TRAIN, "optimizer"))) {
    const qkd_ast *v = f->a;
    if ((v->kind == QKD_AST_CALL || v->kind == QKD_AST_IDENT) && !strcmp(v->name, "adam")) {
      static const char *const p[] = {"lr", "beta1", "beta2", NULL};
      const double def[] = {NAN, 0.9, 0.999};
      double o[3];
      if (sema_bind_builtin(S, NULL, v, p, def, o) == 0) {
        t->lr = o[0], t->beta1 = o[1], t->beta2 = o[2];
        if (!(o[1] >= 0 && o[1] < 1 && o[2] >= 0 && o[2] < 1)) qkd_diag_error(S->D, v->span, "adam betas must be in [0, 1)");
      }
    } else if ((v->kind == QKD_AST_CALL || v->kind == QKD_AST_IDENT) && !strcmp(v->name, "sgd")) {
      static const char *const p[] = {"lr", "momentum", NULL};
      const double def[] = {NAN, 0.0};
      double o[2];
      t->optimizer = QKD_OPT_SGD;
      if (sema_bind_builtin(S, NULL, v, p, def, o) == 0) {
        t->lr = o[0], t->momentum = o[1];
        if (!(o[1] >= 0 && o[1] < 1)) qkd_diag_error(S->D, v->span, "sgd momentum must be in [0, 1)");
      }
    } else {
      qkd_diag_error(S->D, v->span, "unknown optimizer: use adam(lr: …) or sgd(lr: …)");
    }
    if (!(t->lr > 0)) qkd_diag_error(S->D, v->span, "the learning rate must be > 0, not %g", t->lr);
  }
  if (sema_int_field(S, b, SEMA_IN_TRAIN, "epochs", &x) == 0) t->epochs = (int)x;
  if (sema_int_field(S, b, SEMA_IN_TRAIN, "batch", &x) == 0) t->batch = (int)x;
  if (sema_int_field(S, b, SEMA_IN_TRAIN, "seed", &x) == 0) t->seed = (int)x;
  check_fit(S, b, fit);
  return S->D->errors == errs ? 0 : -1;
}

/* ---- teachers --------------------------------------------------------------------------------- */

/* One logits file of a teacher from logits: a float32/float64 (rows, C) array, read to its header
 * only; C must be the data set's class count or its source's label count. */
static int check_logits(sema *S, const qkd_ast *f, const char *path, int rows, const char *split, const qkd_m_dataset *data,
                        int *C) {
  qkd_npy a;
  qkd_error err;
  if (qkd_npy_load(path, NULL, 1, &a, &err) != 0) {
    qkd_diag_error(S->D, f->a->span, "%s: %s", err.path, err.msg);
    return -1;
  }
  if (a.ndim != 2 || (a.type != QKD_NPY_F32 && a.type != QKD_NPY_F64)) {
    qkd_diag_error(S->D, f->a->span, "%s: logits must be a 2-dimensional float32 or float64 array (rows, classes), not %s of %d dimension%s",
                   path, qkd_npy_descr(a.type), a.ndim, a.ndim == 1 ? "" : "s");
    return -1;
  }
  if (a.shape[0] != rows) {
    qkd_diag_error(S->D, f->a->span, "%s: %ld rows, but the %s split of data set '%s' (%s) has %d before its options: row i must be item i of that split",
                   path, a.shape[0], split, data->name, data->source, rows);
    return -1;
  }
  if (a.shape[1] != data->n_classes && a.shape[1] != data->source_classes) {
    qkd_diag_error(S->D, f->a->span, "%s: %ld columns, but data set '%s' has %d classes (%d labels in its source)", path, a.shape[1],
                   data->name, data->n_classes, data->source_classes);
    return -1;
  }
  if (*C && a.shape[1] != *C) {
    qkd_diag_error(S->D, f->a->span, "%s: %ld columns, but the training logits have %d", path, a.shape[1], *C);
    return -1;
  }
  *C = (int)a.shape[1];
  return 0;
}

/* `teacher t { data: d  logits: "train.npy"  test_logits: "test.npy" }`. */
static int check_logits_teacher(sema *S, const qkd_ast *d, qkd_m_teacher *t) {
  static const char *const not_here[] = {"net", "train", "cache"};
  int ok = 1;
  for (int i = 0; i < 3; i++) {
    const qkd_ast *g = sema_item(&d->items, not_here[i], i == 1 ? QKD_AST_BLOCK : QKD_AST_FIELD);
    if (g) qkd_diag_error(S->D, g->name_span, "teacher '%s' is given by its logits: it has no '%s'", t->name, not_here[i]), ok = 0;
  }
  const char *names[2] = {"logits", "test_logits"};
  const char **dst[2] = {&t->logits, &t->test_logits};
  for (int k = 0; k < 2; k++) {
    const qkd_ast *f = sema_field(&d->items, names[k]);
    if (!f) {
      qkd_diag_error(S->D, d->name_span, "teacher '%s' needs a '%s' field (its logits on the %s split)", t->name, names[k],
                     k ? "test" : "training");
      ok = 0;
      continue;
    }
    const char *p = sema_string(S, SEMA_IN_TEACHER, f);
    if (!p) { ok = 0; continue; }
    *dst[k] = sema_resolve_path(S, f, p);
    if (ok && t->data && check_logits(S, f, *dst[k], k ? t->data->n_test_source : t->data->n_train_source, k ? "test" : "training",
                                      t->data, &t->logits_classes) != 0)
      ok = 0;
  }
  return ok ? 0 : -1;
}

qkd_m_teacher *sema_check_teacher(sema *S, const qkd_ast *d) {
  sema_check_fields(S, &d->items, SEMA_IN_TEACHER);
  qkd_m_teacher *t = qkd_arena_alloc(S->A, sizeof *t);
  t->name = d->name;
  int ok = 1;
  const qkd_ast *f = sema_get(S, d, SEMA_IN_TEACHER, "data");
  if (!f || !(t->data = sema_dataset_ref(S, SEMA_IN_TEACHER, f))) ok = 0;
  if (sema_field(&d->items, "logits") || sema_field(&d->items, "test_logits"))
    return check_logits_teacher(S, d, t) == 0 && ok ? t : NULL;
  f = sema_get(S, d, SEMA_IN_TEACHER, "net");
  if (f && t->data) {
    qkd_shape in = {t->data->c, t->data->h, t->data->w, 0};
    if (build_net(S, f->a, in, t->data->n_classes, &t->net, &t->params, 0) != 0) ok = 0;
  }
  if (!f) ok = 0;
  if (sema_check_train(S, d, SEMA_IN_TEACHER, &t->train, &t->net.fit) != 0) ok = 0;
  else if (t->data && (t->net.fit.crop_pad >= t->data->h || t->net.fit.crop_pad >= t->data->w))
    qkd_diag_error(S->D, sema_field(&sema_item(&d->items, "train", QKD_AST_BLOCK)->items, "augment")->a->span,
                   "crop pad %d is not smaller than the %dx%d images",
                   t->net.fit.crop_pad, t->data->h, t->data->w), ok = 0;
  if ((f = sema_get(S, d, SEMA_IN_TEACHER, "cache"))) {
    const char *cache = sema_string(S, SEMA_IN_TEACHER, f);
    if (cache) t->cache = sema_resolve_path(S, f, cache);
    else ok = 0;
  }
  return ok ? t : NULL;
}

