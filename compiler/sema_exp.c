/* sema_exp.c — losses and `experiment` declarations (sema_int.h). */
#include <math.h>
#include <string.h>

#include "lower.h"
#include "sema_int.h"

static qkd_loss *loss_node(sema *S, qkd_loss_kind k, double v, qkd_loss *a, qkd_loss *b) {
  qkd_loss *l = qkd_arena_alloc(S->A, sizeof *l);
  l->kind = k, l->value = v, l->a = a, l->b = b;
  return l;
}

/* The loss `e` in env. Checking a definition (S->definition), its parameters are symbolic
 * (numbers of unknown value, NAN here) and the named losses it calls are bound, not entered:
 * each is checked at its own definition. */
static qkd_loss *build_loss(sema *S, const qkd_env *env, const qkd_ast *e, int has_teacher, int *uses_teacher) {
  if (e->depth > QKD_AST_MAX_DEPTH) {
    qkd_diag_error(S->D, e->span, "loss expression nested too deeply");
    return NULL;
  }
  switch (e->kind) {
  case QKD_AST_NUM: return loss_node(S, QKD_LOSS_NUM, e->num, NULL, NULL);
  case QKD_AST_NEG: {
    qkd_loss *a = build_loss(S, env, e->a, has_teacher, uses_teacher);
    return a ? loss_node(S, QKD_LOSS_NEG, 0, a, NULL) : NULL;
  }
  case QKD_AST_BIN: {
    qkd_loss *a = build_loss(S, env, e->a, has_teacher, uses_teacher);
    qkd_loss *b = build_loss(S, env, e->b, has_teacher, uses_teacher);
    if (!a || !b) return NULL;
    if ((e->op == '/' || e->op == '%') && b->kind == QKD_LOSS_NUM && b->value == 0) {
      qkd_diag_error(S->D, e->span, "%s by zero", e->op == '/' ? "division" : "modulo");
      return NULL;
    }
    if (e->op == '%') {
      qkd_diag_error(S->D, e->span, "'%%' is not defined for losses");
      return NULL;
    }
    qkd_loss_kind k = e->op == '+' ? QKD_LOSS_ADD : e->op == '-' ? QKD_LOSS_SUB : e->op == '*' ? QKD_LOSS_MUL
                    : e->op == '/' ? QKD_LOSS_DIV : QKD_LOSS_POW;
    if (a->kind == QKD_LOSS_NUM && b->kind == QKD_LOSS_NUM) { /* fold */
      double x = a->value, y = b->value;
      double r = k == QKD_LOSS_ADD ? x + y : k == QKD_LOSS_SUB ? x - y : k == QKD_LOSS_MUL ? x * y
               : k == QKD_LOSS_DIV ? x / y : pow(x, y);
      return loss_node(S, QKD_LOSS_NUM, r, NULL, NULL);
    }
    return loss_node(S, k, 0, a, b);
  }
  case QKD_AST_IDENT:
  case QKD_AST_CALL: {
    const qkd_value *v = e->kind == QKD_AST_IDENT ? qkd_env_lookup(env, e->name) : NULL;
    if (v) {
      if (v->kind == QKD_V_ANY || (v->kind == QKD_V_NUM && v->unknown)) return loss_node(S, QKD_LOSS_NUM, NAN, NULL, NULL);
      if (v->kind != QKD_V_NUM) {
        qkd_diag_error(S->D, e->span, "'%s' is not a number", e->name);
        return NULL;
      }
      return loss_node(S, QKD_LOSS_NUM, v->num, NULL, NULL);
    }
    int is_ce = !strcmp(e->name, "ce"), is_mse = !strcmp(e->name, "mse"), is_kl = !strcmp(e->name, "kl");
    if (is_ce || is_mse || is_kl) {
      if ((is_kl || is_mse) && !has_teacher) {
        qkd_diag_error(S->D, e->span, "%s(…) compares with a teacher, but this experiment has no teacher", e->name);
        return NULL;
      }
      if (is_kl) {
        static const char *const p[] = {"T", NULL};
        double T;
        /* kl's T may use loss parameters (kd(T, alpha)): evaluated in the loss's environment */
        if (e->kind != QKD_AST_CALL || e->items.len != 1) {
          qkd_diag_error(S->D, e->span, "kl needs a temperature: kl(T: 3)");
          return NULL;
        }
        const qkd_ast *a = e->items.items[0];
        if (a->name && strcmp(a->name, "T") != 0) {
          qkd_diag_error(S->D, a->name_span, "kl has no parameter '%s' (parameters: %s)", a->name, sema_join(S, p));
          return NULL;
        }
        int known = qkd_eval_num(&S->ev, env, a->a, &T);
        if (known < 0) return NULL;
        if (known == 0 && !(T > 0)) {
          qkd_diag_error(S->D, a->span, "the temperature T must be > 0, not %g", T);
          return NULL;
        }
        *uses_teacher = 1;
        return loss_node(S, QKD_LOSS_KL, T, NULL, NULL);
      }
      if (e->kind == QKD_AST_CALL && e->items.len) {
        qkd_diag_error(S->D, e->span, "%s takes no arguments", e->name);
        return NULL;
      }
      if (is_mse) *uses_teacher = 1;
      return loss_node(S, is_ce ? QKD_LOSS_CE : QKD_LOSS_MSE, 0, NULL, NULL);
    }
    if (e->kind == QKD_AST_IDENT && !strcmp(e->name, "pi")) return loss_node(S, QKD_LOSS_NUM, M_PI, NULL, NULL);
    qkd_ast *d = sema_find_decl(S, e->name);
    if (!d || d->decl_kind != QKD_DECL_LOSS) {
      qkd_diag_error(S->D, e->name_span, d ? "'%s' is not a loss" : "unknown loss '%s' (built in: ce, kl(T: …), mse)", e->name);
      return NULL;
    }
    if (S->loss_depth > SEMA_MAX_NET_NESTING) {
      qkd_diag_error(S->D, e->span, "loss '%s' refers to itself", d->name);
      return NULL;
    }
    qkd_env *lenv;
    if (qkd_bind_args(&S->ev, d, e->kind == QKD_AST_CALL ? e : NULL, e->span, env, &lenv) != 0) return NULL;
    if (S->definition) return loss_node(S, QKD_LOSS_NUM, NAN, NULL, NULL);
    if (sema_failed(S, d)) return NULL; /* reported at the definition; the call's own errors above */
    int errs = S->D->errors;
    S->loss_depth++;
    qkd_loss *l = build_loss(S, lenv, d->a, has_teacher, uses_teacher);
    S->loss_depth--;
    if (!l && S->D->errors != errs) qkd_diag_note(S->D, e->span, "in loss '%s' used here", d->name);
    return l;
  }
  default:
    qkd_diag_error(S->D, e->span, "a loss is an expression of ce, kl(T: …), mse, numbers and named losses");
    return NULL;
  }
}

int sema_check_loss_definition(sema *S, const qkd_ast *d) {
  int uses_teacher = 0;
  S->definition = 1;
  qkd_loss *l = build_loss(S, qkd_env_symbolic(S->A, &d->params, NULL), d->a, 1, &uses_teacher);
  S->definition = 0;
  return l ? 0 : -1;
}

/* ---- experiments -------------------------------------------------------------------------------- */

/* Whether two data sets draw their images and labels from the same source and classes (a
 * teacher trained on the full set and a student on a subset of it, or a differently sized
 * one, is fine: that is the small-data setting). */
static int same_source(const qkd_m_dataset *a, const qkd_m_dataset *b) {
  if (a->source_kind != b->source_kind) return 0;
  const char *sa = a->dir ? a->dir : a->source, *sb = b->dir ? b->dir : b->source;
  if (!sa || !sb || strcmp(sa, sb) != 0) return 0;
  return a->source_kind != QKD_SRC_SYNTHETIC || (a->seed == b->seed && a->n_train_source == b->n_train_source &&
                                                 a->n_test_source == b->n_test_source);
}

static int same_images(const qkd_m_dataset *a, const qkd_m_dataset *b) {
  if (a->n_classes != b->n_classes || !same_source(a, b)) return 0;
  for (int i = 0; i < a->n_classes; i++)
    if (a->classes && b->classes && a->classes[i] != b->classes[i]) return 0;
  return 1;
}

qkd_m_experiment *sema_check_experiment(sema *S, const qkd_ast *d) {
  sema_check_fields(S, &d->items, SEMA_IN_EXPERIMENT);
  int errs = S->D->errors;
  qkd_m_experiment *e = qkd_arena_alloc(S->A, sizeof *e);
  e->name = d->name;
  const qkd_ast *f;
  if ((f = sema_get(S, d, SEMA_IN_EXPERIMENT, "data"))) e->data = sema_dataset_ref(S, SEMA_IN_EXPERIMENT, f);
  if ((f = sema_get(S, d, SEMA_IN_EXPERIMENT, "teacher"))) {
    qkd_ast *td = sema_ref(S, SEMA_IN_EXPERIMENT, f);
    for (int i = 0; td && i < S->te_ast.len; i++)
      if (S->te_ast.items[i] == td) e->teacher = S->te_model.items[i];
    if (td && !e->teacher) errs = -1; /* the teacher itself had errors */
    if (e->teacher && e->data && e->teacher->logits) {
      /* logits index the source's rows: the experiment must draw from the same source */
      const qkd_m_teacher *t = e->teacher;
      if (!same_source(t->data, e->data))
        qkd_diag_error(S->D, f->a->span, "teacher '%s' is given by logits for the rows of '%s' (%s), but experiment '%s' trains on '%s' (%s)",
                       t->name, t->data->source, t->data->name, e->name, e->data->source, e->data->name);
      else if (t->logits_classes != e->data->n_classes && t->logits_classes != e->data->source_classes)
        qkd_diag_error(S->D, f->a->span, "teacher '%s' gives %d logits per item, but data set '%s' has %d classes (%d labels in its source)",
                       t->name, t->logits_classes, e->data->name, e->data->n_classes, e->data->source_classes);
    } else if (e->teacher && e->data) {
      const qkd_m_dataset *td_data = e->teacher->data;
      if (td_data->n_classes != e->data->n_classes)
        qkd_diag_error(S->D, f->a->span, "teacher '%s' knows %d classes, but data set '%s' has %d", e->teacher->name,
                       td_data->n_classes, e->data->name, e->data->n_classes);
      else if (td_data->c != e->data->c || td_data->h != e->data->h || td_data->w != e->data->w)
        qkd_diag_error(S->D, f->a->span, "teacher '%s' was trained on %dx%dx%d images, but data set '%s' has %dx%dx%d",
                       e->teacher->name, td_data->c, td_data->h, td_data->w, e->data->name, e->data->c, e->data->h, e->data->w);
      else if (!same_images(td_data, e->data))
        qkd_diag_warning(S->D, f->a->span, "teacher '%s' was trained on data set '%s' (%s), but experiment '%s' trains on '%s' "
                         "(%s): its soft targets describe other images or classes", e->teacher->name, td_data->name,
                         td_data->source, e->name, e->data->name, e->data->source);
    }
  }
  if ((f = sema_get(S, d, SEMA_IN_EXPERIMENT, "student"))) {
    qkd_ast *sd = sema_ref(S, SEMA_IN_EXPERIMENT, f);
    if (sd && e->data && sema_build_student(S, sd, e->data, e->data->n_classes, &e->student, f->a->span) != 0)
      errs = -1; /* also when the student's circuit failed its own checks */
  }
  if ((f = sema_get(S, d, SEMA_IN_EXPERIMENT, "eval_noise")) && e->student.name && errs >= 0) {
    e->eval_circuit = e->student.circuit; /* the same gates; eval_noise's channels instead */
    if (sema_lower_noise(S, f->a, &e->eval_circuit) == 0 && sema_noise_engine(S, &e->student, &e->eval_circuit, f->a->span) == 0)
      e->eval_noise = 1;
  }
  if ((f = sema_get(S, d, SEMA_IN_EXPERIMENT, "loss")))
    e->loss = build_loss(S, NULL, f->a, e->teacher != NULL || sema_field(&d->items, "teacher") != NULL, &e->uses_teacher);
  sema_check_train(S, d, SEMA_IN_EXPERIMENT, &e->train, NULL);
  e->baseline = sema_choice_field(S, d, SEMA_IN_EXPERIMENT, "baseline") == 1;
  int k = sema_choice_field(S, d, SEMA_IN_EXPERIMENT, "gradient");
  if (k >= 0) e->gradient = (qkd_grad_kind)k;
  if (e->gradient == QKD_GRAD_PARAMETER_SHIFT && e->student.name && qkd_ir_noisy(&e->student.circuit))
    qkd_diag_error(S->D, sema_get(S, d, SEMA_IN_EXPERIMENT, "gradient")->a->span,
                   "gradient: parameter_shift runs the noiseless circuit, but student '%s' has noise: use adjoint "
                   "(the density-matrix engine's adjoint gradient is exact)", e->student.name);
  if ((k = sema_choice_field(S, d, SEMA_IN_EXPERIMENT, "control")) >= 0) e->control = (qkd_control_kind)k;
  /* a data set or teacher that failed its own checks leaves parts unset without a new error */
  return S->D->errors == errs && e->data && e->student.name && e->loss ? e : NULL;
}

