/* eval.c — constant and affine-feature expression evaluation (eval.h). */
#include "eval.h"

#include <math.h>
#include <string.h>

static qkd_value err_value(void) { return (qkd_value){.kind = QKD_V_ERR}; }
static qkd_value num_value(double x) { return (qkd_value){.kind = QKD_V_NUM, .num = x}; }

const char *qkd_value_kind_name(qkd_vkind k) {
  static const char *names[] = {"error", "number", "string", "range", "list", "feature expression", "value"};
  return names[k];
}

qkd_value qkd_value_unknown(qkd_vkind kind) { return (qkd_value){.kind = kind, .unknown = kind != QKD_V_ANY}; }

qkd_env *qkd_env_symbolic(qkd_arena *a, const qkd_vec *params, const qkd_env *outer) {
  const qkd_env *env = outer;
  for (int i = 0; i < params->len; i++) {
    qkd_env *b = qkd_arena_alloc(a, sizeof *b);
    *b = (qkd_env){((const qkd_ast *)params->items[i])->name, qkd_value_unknown(QKD_V_ANY), env};
    env = b;
  }
  return (qkd_env *)env;
}

const qkd_value *qkd_env_lookup(const qkd_env *env, const char *name) {
  for (; env; env = env->next)
    if (strcmp(env->name, name) == 0) return &env->value;
  return NULL;
}

static qkd_value affine(int feat, double scale, double offset) {
  return (qkd_value){.kind = QKD_V_FEAT, .feat = feat, .scale = scale, .offset = offset};
}

/* Whether b is a known 0 that a / b or a % b divides by (reported). */
static int by_zero(qkd_eval *ev, const qkd_ast *e, int op, qkd_value b) {
  if ((op != '/' && op != '%') || b.unknown || b.num != 0) return 0;
  qkd_diag_error(ev->diag, e->span, "%s by zero", op == '/' ? "division" : "modulo");
  return 1;
}

/* Affine feature arithmetic (scale * x[i] + offset with a number); 0 when op is not affine. */
static int affine_op(int op, qkd_value f, qkd_value c, int feat_left, qkd_value *out) {
  switch (op) {
  case '+': *out = affine(f.feat, f.scale, f.offset + c.num); break;
  case '-': *out = feat_left ? affine(f.feat, f.scale, f.offset - c.num) : affine(f.feat, -f.scale, c.num - f.offset); break;
  case '*': *out = affine(f.feat, f.scale * c.num, f.offset * c.num); break;
  case '/':
    if (!feat_left) return 0;
    *out = affine(f.feat, f.scale / c.num, f.offset / c.num);
    break;
  default: return 0;
  }
  out->unknown = f.unknown || c.unknown;
  return 1;
}

static qkd_value binary(qkd_eval *ev, const qkd_ast *e, int op, qkd_value a, qkd_value b) {
  if (a.kind == QKD_V_ERR || b.kind == QKD_V_ERR) return err_value();
  /* an operand of unknown kind is a number here: any other kind fails at the use */
  if (a.kind == QKD_V_ANY) a = qkd_value_unknown(QKD_V_NUM);
  if (b.kind == QKD_V_ANY) b = qkd_value_unknown(QKD_V_NUM);
  if (a.kind == QKD_V_NUM && b.kind == QKD_V_NUM) {
    if (by_zero(ev, e, op, b)) return err_value();
    if (a.unknown || b.unknown) return qkd_value_unknown(QKD_V_NUM);
    double x = a.num, y = b.num, r;
    switch (op) {
    case '+': r = x + y; break;
    case '-': r = x - y; break;
    case '*': r = x * y; break;
    case '/': r = x / y; break;
    case '%': r = x - y * floor(x / y); break; /* floor modulo: never negative for y > 0 */
    default: r = pow(x, y); break;
    }
    if (!isfinite(r)) { qkd_diag_error(ev->diag, e->span, "the value of this expression is not a finite number"); return err_value(); }
    return num_value(r);
  }
  qkd_value r;
  if (a.kind == QKD_V_FEAT && b.kind == QKD_V_NUM) {
    if (op == '/' && by_zero(ev, e, op, b)) return err_value();
    if (affine_op(op, a, b, 1, &r)) return r;
  } else if (a.kind == QKD_V_NUM && b.kind == QKD_V_FEAT) {
    if (affine_op(op, b, a, 0, &r)) return r;
  }
  if (a.kind == QKD_V_FEAT || b.kind == QKD_V_FEAT) {
    qkd_diag_error(ev->diag, e->span, "an angle must be affine in one feature (a * x[i] + b)");
    return err_value();
  }
  const qkd_value *bad = a.kind != QKD_V_NUM ? &a : &b;
  qkd_diag_error(ev->diag, e->span, "operator '%c' needs numbers, not a %s", op, qkd_value_kind_name(bad->kind));
  return err_value();
}

qkd_value qkd_eval_expr(qkd_eval *ev, const qkd_env *env, const qkd_ast *e) {
  if (e->depth > QKD_AST_MAX_DEPTH) {
    qkd_diag_error(ev->diag, e->span, "expression nested too deeply (more than %d levels)", QKD_AST_MAX_DEPTH);
    return err_value();
  }
  switch (e->kind) {
  case QKD_AST_NUM: return num_value(e->num);
  case QKD_AST_STR: return (qkd_value){.kind = QKD_V_STR, .str = e->name};
  case QKD_AST_IDENT: {
    const qkd_value *v = qkd_env_lookup(env, e->name);
    if (v) return *v;
    if (strcmp(e->name, "pi") == 0) return num_value(M_PI);
    if (strcmp(e->name, "x") == 0 && ev->features_allowed) {
      qkd_diag_error(ev->diag, e->span, "'x' is the feature vector: index it, as in x[0]");
      return err_value();
    }
    qkd_diag_error(ev->diag, e->span, "unknown name '%s'", e->name);
    return err_value();
  }
  case QKD_AST_NEG: {
    qkd_value v = qkd_eval_expr(ev, env, e->a);
    if (v.kind == QKD_V_ANY) return qkd_value_unknown(QKD_V_NUM);
    if (v.kind == QKD_V_NUM || v.kind == QKD_V_FEAT) {
      v.num = -v.num, v.scale = -v.scale, v.offset = -v.offset;
      return v;
    }
    if (v.kind != QKD_V_ERR) qkd_diag_error(ev->diag, e->span, "unary '-' needs a number, not a %s", qkd_value_kind_name(v.kind));
    return err_value();
  }
  case QKD_AST_BIN: {
    qkd_value a = qkd_eval_expr(ev, env, e->a);
    qkd_value b = qkd_eval_expr(ev, env, e->b);
    return binary(ev, e, e->op, a, b);
  }
  case QKD_AST_RANGE: {
    qkd_value a = qkd_eval_expr(ev, env, e->a), b = qkd_eval_expr(ev, env, e->b);
    if (a.kind == QKD_V_ERR || b.kind == QKD_V_ERR) return err_value();
    if (a.kind == QKD_V_ANY) a = qkd_value_unknown(QKD_V_NUM);
    if (b.kind == QKD_V_ANY) b = qkd_value_unknown(QKD_V_NUM);
    if (a.kind != QKD_V_NUM || b.kind != QKD_V_NUM || (!a.unknown && a.num != floor(a.num)) ||
        (!b.unknown && b.num != floor(b.num))) {
      qkd_diag_error(ev->diag, e->span, "a range needs integer bounds");
      return err_value();
    }
    return (qkd_value){.kind = QKD_V_RANGE, .lo = a.num, .hi = b.num, .unknown = a.unknown || b.unknown};
  }
  case QKD_AST_LIST: {
    qkd_value v = {.kind = QKD_V_LIST, .n = e->items.len};
    v.items = qkd_arena_alloc(ev->arena, sizeof(qkd_value) * (size_t)(v.n ? v.n : 1));
    for (int i = 0; i < v.n; i++) {
      v.items[i] = qkd_eval_expr(ev, env, e->items.items[i]);
      if (v.items[i].kind == QKD_V_ERR) return err_value();
    }
    return v;
  }
  case QKD_AST_INDEX: {
    if (strcmp(e->name, "x") != 0 || qkd_env_lookup(env, e->name)) {
      qkd_diag_error(ev->diag, e->name_span, "only the feature vector x can be indexed");
      return err_value();
    }
    if (!ev->features_allowed) {
      qkd_diag_error(ev->diag, e->span, "x[…] is only available inside encoding and circuit bodies");
      return err_value();
    }
    long i;
    int known = qkd_eval_int(ev, env, e->a, &i);
    if (known < 0) return err_value();
    if (known > 0) { /* x[q] in a definition: the feature is read at each use */
      qkd_value v = affine(0, 1.0, 0.0);
      v.unknown = 1;
      return v;
    }
    if (i < 0 || i > (1 << 24)) {
      qkd_diag_error(ev->diag, e->span, "feature index %ld is out of range", i);
      return err_value();
    }
    if (i > ev->max_feature) {
      ev->max_feature = (int)i;
      ev->max_feature_span = e->span;
    }
    return affine((int)i, 1.0, 0.0);
  }
  case QKD_AST_CALL:
    qkd_diag_error(ev->diag, e->name_span, "'%s(…)' is not a value here", e->name);
    return err_value();
  default:
    qkd_diag_error(ev->diag, e->span, "this is not a value");
    return err_value();
  }
}

int qkd_eval_num(qkd_eval *ev, const qkd_env *env, const qkd_ast *e, double *out) {
  qkd_value v = qkd_eval_expr(ev, env, e);
  if (v.kind == QKD_V_ERR) return -1;
  if (v.kind == QKD_V_ANY || (v.kind == QKD_V_NUM && v.unknown)) {
    *out = NAN;
    return 1;
  }
  if (v.kind != QKD_V_NUM) {
    qkd_diag_error(ev->diag, e->span, "expected a number, found a %s", qkd_value_kind_name(v.kind));
    return -1;
  }
  *out = v.num;
  return 0;
}

int qkd_eval_int(qkd_eval *ev, const qkd_env *env, const qkd_ast *e, long *out) {
  double x;
  int rc = qkd_eval_num(ev, env, e, &x);
  if (rc != 0) {
    *out = 0;
    return rc;
  }
  if (x != floor(x) || fabs(x) > 1e15) {
    qkd_diag_error(ev->diag, e->span, "expected an integer, found %g", x);
    return -1;
  }
  *out = (long)x;
  return 0;
}
