/* sema_student.c — `student` declarations: pre, encoding and circuit (lowered), measurement,
 * head, noise (sema_noise.c) (sema_int.h). */
#include <math.h>
#include <string.h>

#include "lower.h"
#include "sema_int.h"

/* Appends the gates of definition `decl` called as `ref`; one that failed its own check only has
 * the call's arguments checked. 0, or -1 (after reporting, or for such a definition). */
static int lower_use(sema *S, qkd_lower *L, const qkd_ast *decl, const qkd_ast *ref) {
  if (!decl) return -1;
  const qkd_ast *args = ref->kind == QKD_AST_CALL ? ref : NULL;
  if (sema_failed(S, decl)) {
    qkd_lower_bind(L, decl, args, ref->span);
    return -1;
  }
  return qkd_lower_call(L, decl, args, ref->span);
}

int sema_build_student(sema *S, const qkd_ast *d, const qkd_m_dataset *data, int classes, qkd_m_student *st,
                       qkd_span site) {
  memset(st, 0, sizeof *st);
  st->name = d->name;
  st->n_classes = classes;
  int errs = S->D->errors;
  const qkd_ast *f;
  long x;
  if (sema_int_field(S, d, SEMA_IN_STUDENT, "qubits", &x) == 0) st->qubits = (int)x;
  if (!st->qubits) return -1;
  int n = st->qubits;
  const qkd_env qubits_env = {"qubits", {.kind = QKD_V_NUM, .num = n}, NULL}; /* `pre: dense(2^qubits)` (spec §9) */
  qkd_shape img = {data->c, data->h, data->w, 0};
  long F = qkd_shape_size(img);
  const qkd_ast *pre = sema_get(S, d, SEMA_IN_STUDENT, "pre");
  if (pre) {
    const qkd_ast *v = pre->a;
    static const char *const reds[] = {"dense", "pca", "avgpool_to", "maxpool_to", "crop", NULL};
    if (v->kind == QKD_AST_NETLIT) {
      st->pre = QKD_PRE_NET;
      qkd_span *spans;
      qkd_shape res;
      if (sema_build_layers(S, &qubits_env, &v->items, &st->pre_net.layers, &spans) == 0) {
        st->pre_net.n_layers = v->items.len;
        st->pre_net.name = "pre";
        if (sema_check_shapes(S, st->pre_net.layers, spans, st->pre_net.n_layers, img, 0, &res, site) == 0) F = qkd_shape_size(res);
      }
    } else if ((v->kind == QKD_AST_IDENT || v->kind == QKD_AST_CALL) && !strcmp(v->name, "none")) {
      st->pre = QKD_PRE_NONE;
    } else if ((v->kind == QKD_AST_IDENT || v->kind == QKD_AST_CALL) && sema_name_in(v->name, reds)) {
      int is_crop = !strcmp(v->name, "crop");
      static const char *const pk[] = {"k", NULL}, *const ph[] = {"h", "w", NULL};
      const double def[] = {NAN, NAN};
      double o[2];
      if (sema_bind_builtin(S, &qubits_env, v, is_crop ? ph : pk, def, o) == 0) {
        for (int i = 0; i < 1 + is_crop; i++)
          if (o[i] != floor(o[i]) || o[i] < 1) {
            qkd_diag_error(S->D, v->span, "%s needs positive integer sizes", v->name);
            o[0] = -1;
          }
        if (o[0] >= 1) {
          if (!strcmp(v->name, "dense")) st->pre = QKD_PRE_DENSE;
          else if (!strcmp(v->name, "pca")) st->pre = QKD_PRE_PCA;
          else if (!strcmp(v->name, "avgpool_to")) st->pre = QKD_PRE_AVGPOOL_TO;
          else if (!strcmp(v->name, "maxpool_to")) st->pre = QKD_PRE_MAXPOOL_TO;
          else st->pre = QKD_PRE_CROP;
          int k = (int)o[0];
          st->pre_k = k;
          if (is_crop) {
            st->pre_h = (int)o[0], st->pre_w = (int)o[1];
            if (st->pre_h > data->h || st->pre_w > data->w)
              qkd_diag_error(S->D, v->span, "crop(%d, %d) is larger than the %dx%d images", st->pre_h, st->pre_w, data->h, data->w);
            F = (long)data->c * st->pre_h * st->pre_w;
          } else if (st->pre == QKD_PRE_AVGPOOL_TO || st->pre == QKD_PRE_MAXPOOL_TO) {
            int g = (int)lround(sqrt((double)k));
            if (g * g != k) qkd_diag_error(S->D, v->span, "%s(%d): the number of regions must be a square (a g x g grid)", v->name, k);
            else if (g > data->h || g > data->w) qkd_diag_error(S->D, v->span, "%s(%d): a %dx%d grid is finer than the %dx%d images", v->name, k, g, g, data->h, data->w);
            F = k;
          } else {
            if (st->pre == QKD_PRE_PCA && k > F)
              qkd_diag_error(S->D, v->span, "pca(%d) asks for more components than the %ld input features", k, F);
            F = k;
          }
        }
      }
    } else {
      qkd_diag_error(S->D, v->span, "pre must be dense(k), pca(k), avgpool_to(k), maxpool_to(k), crop(h, w), net { … } or none");
    }
  }
  st->n_features = (int)F;
  if (S->D->errors != errs) return -1; /* no feature-count checks against a broken pre */
  qkd_lower L = {.arena = S->A, .diag = S->D, .n_qubits = n, .max_feature = -1};
  qkd_ir_circuit *c = &st->circuit;
  c->name = d->name;
  c->n_qubits = n;
  const qkd_ast *enc = sema_get(S, d, SEMA_IN_STUDENT, "encode");
  qkd_span enc_site = enc ? enc->a->span : d->name_span;
  int lower_ok = 1;
  if (enc && !((enc->a->kind == QKD_AST_IDENT || enc->a->kind == QKD_AST_CALL) && !strcmp(enc->a->name, "none"))) {
    const qkd_ast *v = enc->a;
    if ((v->kind == QKD_AST_IDENT || v->kind == QKD_AST_CALL) && !strcmp(v->name, "amplitude") && !sema_find_decl(S, "amplitude")) {
      if (v->kind == QKD_AST_CALL && v->items.len) qkd_diag_error(S->D, v->span, "amplitude takes no arguments");
      c->encode = QKD_ENCODE_AMPLITUDE;
      if (F > (1L << n)) {
        qkd_diag_error(S->D, v->span, "amplitude encoding on %d qubit%s holds at most %ld features, but %s gives %ld",
                       n, n == 1 ? "" : "s", 1L << n, pre ? "pre" : "the flattened image", F);
      } else if (F < (1L << n)) {
        qkd_diag_warning(S->D, v->span, "amplitude encoding zero-pads %ld features to %ld amplitudes", F, 1L << n);
      }
    } else {
      qkd_ast *ed = sema_resolve(S, v, QKD_DECL_ENCODING);
      if (lower_use(S, &L, ed, v) != 0) lower_ok = 0;
      c->n_encoding_gates = L.n_gates;
    }
  }
  int enc_max = L.max_feature;
  if ((f = sema_get(S, d, SEMA_IN_STUDENT, "circuit"))) {
    qkd_ast *cd = sema_ref(S, SEMA_IN_STUDENT, f);
    if (lower_use(S, &L, cd, f->a) != 0) lower_ok = 0;
  }
  if (lower_ok && L.max_feature >= F) {
    qkd_diag_error(S->D, L.max_feature_span, "x[%d] reads past the %ld feature%s that %s gives", L.max_feature, F,
                   F == 1 ? "" : "s", pre ? "pre" : "the flattened image");
    if (L.max_feature_span.file != site.file) qkd_diag_note(S->D, enc_site, "for student '%s'", d->name);
  } else if (lower_ok && c->encode != QKD_ENCODE_AMPLITUDE && enc_max >= 0 && L.max_feature + 1 < F) {
    qkd_diag_warning(S->D, enc_site, "the encoding reads %d of the %ld features that %s gives", L.max_feature + 1, F,
                     pre ? "pre" : "the flattened image");
  }
  c->gates = L.gates;
  c->n_gates = L.n_gates;
  c->n_params = L.n_params;
  c->n_features = c->encode == QKD_ENCODE_AMPLITUDE ? (int)(F < (1L << n) ? F : (1L << n)) : (int)F;
  int k = sema_choice_field(S, d, SEMA_IN_STUDENT, "measure");
  if (k >= 0) c->measure = (qkd_measure_kind)k;
  if (sema_int_field(S, d, SEMA_IN_STUDENT, "shots", &x) == 0) c->shots = (int)x;
  if ((k = sema_choice_field(S, d, SEMA_IN_STUDENT, "precision")) >= 0) c->precision = (qkd_precision)k;
  int outputs = qkd_ir_outputs(c);
  if ((f = sema_get(S, d, SEMA_IN_STUDENT, "head"))) {
    const qkd_ast *v = f->a;
    if ((v->kind == QKD_AST_IDENT || v->kind == QKD_AST_CALL) && !strcmp(v->name, "none")) {
      if (classes > 0 && outputs < classes)
        qkd_diag_error(S->D, v->span, "head none uses the first %d outputs as logits, but measure %s gives %d",
                       classes, c->measure == QKD_MEASURE_Z ? "z" : "probs", outputs);
    } else if ((v->kind == QKD_AST_IDENT || v->kind == QKD_AST_CALL) && !strcmp(v->name, "dense")) {
      static const char *const p[] = {"k", NULL};
      const double def[] = {NAN};
      double size;
      if (sema_bind_builtin(S, &qubits_env, v, p, def, &size) == 0) {
        if (size != floor(size) || size < 1) qkd_diag_error(S->D, v->span, "dense needs a positive integer size");
        else if (classes > 0 && (int)size != classes)
          qkd_diag_error(S->D, v->span, "head dense(%g) must give one logit per class: the data set has %d classes", size, classes);
        st->head_dense = (int)size;
      }
    } else {
      qkd_diag_error(S->D, v->span, "head must be dense(k) or none");
    }
  }
  if (S->D->errors == errs && lower_ok && (f = sema_get(S, d, SEMA_IN_STUDENT, "noise"))) sema_lower_noise(S, f->a, c);
  if ((k = sema_choice_field(S, d, SEMA_IN_STUDENT, "noise_engine")) >= 0) st->noise_engine = (qkd_noise_engine)k;
  if (sema_int_field(S, d, SEMA_IN_STUDENT, "trajectories", &x) == 0) st->n_trajectories = (int)x;
  if (S->D->errors == errs && lower_ok) {
    const qkd_ast *fe = sema_get(S, d, SEMA_IN_STUDENT, "noise_engine"), *fn = sema_get(S, d, SEMA_IN_STUDENT, "noise");
    sema_noise_engine(S, st, c, fe ? fe->a->span : fn ? fn->a->span : d->name_span);
  }
  if (S->D->errors != errs || !lower_ok) return -1;
  qkd_error err;
  if (qkd_ir_validate(c, &err) != 0) {
    qkd_diag_error(S->D, d->name_span, "internal error: lowered circuit is invalid: %s", err.msg);
    return -1;
  }
  return 0;
}

