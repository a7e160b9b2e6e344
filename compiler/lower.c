/* lower.c — encoding/circuit bodies → flat IR gates (lower.h). */
#include "lower.h"

#include <math.h>
#include <string.h>

typedef struct loopvar {
  const char *name;
  double value;
  const struct loopvar *next;
} loopvar;

int qkd_bind_args(qkd_eval *ev, const qkd_ast *decl, const qkd_ast *call, qkd_span site,
                  const qkd_env *outer, qkd_env **out) {
  return qkd_bind_args_in(ev, decl, call, site, outer, outer, out);
}

int qkd_bind_args_in(qkd_eval *ev, const qkd_ast *decl, const qkd_ast *call, qkd_span site,
                     const qkd_env *arg_env, const qkd_env *outer, qkd_env **out) {
  int np = decl->params.len;
  qkd_value *vals = qkd_arena_alloc(ev->arena, sizeof(qkd_value) * (size_t)(np + 1));
  int *set = qkd_arena_alloc(ev->arena, sizeof(int) * (size_t)(np + 1));
  int rc = 0, pos = 0;
  const char *what = qkd_decl_kind_names[decl->decl_kind];
  for (int i = 0; call && i < call->items.len; i++) {
    const qkd_ast *arg = call->items.items[i];
    int slot = -1;
    if (!arg->name) {
      if (pos >= np) {
        qkd_diag_error(ev->diag, arg->span, "too many arguments: %s '%s' takes %d", what, decl->name, np);
        rc = -1;
        continue;
      }
      slot = pos++;
    } else {
      for (int p = 0; p < np; p++)
        if (strcmp(((qkd_ast *)decl->params.items[p])->name, arg->name) == 0) slot = p;
      if (slot < 0) {
        qkd_diag_error(ev->diag, arg->name_span, "%s '%s' has no parameter '%s'", what, decl->name, arg->name);
        rc = -1;
        continue;
      }
    }
    if (set[slot]) {
      qkd_diag_error(ev->diag, arg->span, "argument '%s' given twice", ((qkd_ast *)decl->params.items[slot])->name);
      rc = -1;
      continue;
    }
    set[slot] = 1;
    int fa = ev->features_allowed;
    ev->features_allowed = 0;
    vals[slot] = qkd_eval_expr(ev, arg_env, arg->a);
    ev->features_allowed = fa;
    if (vals[slot].kind == QKD_V_ERR) rc = -1;
  }
  qkd_env *env = (qkd_env *)outer;
  for (int p = 0; p < np; p++) {
    const qkd_ast *param = decl->params.items[p];
    if (!set[p] && rc == 0) {
      qkd_diag_error(ev->diag, site, "missing argument '%s' for %s '%s'", param->name, what, decl->name);
      rc = -1;
    }
    qkd_env *b = qkd_arena_alloc(ev->arena, sizeof *b);
    b->name = param->name;
    b->value = vals[p];
    b->next = env;
    env = b;
  }
  *out = env;
  return rc;
}

static const char *loop_note(qkd_lower *L, const loopvar *lv) {
  if (!lv) return "";
  char *s = qkd_arena_strdup(L->arena, " (with ");
  for (const loopvar *v = lv; v; v = v->next)
    s = qkd_arena_printf(L->arena, "%s%s = %g%s", s, v->name, v->value, v->next ? ", " : ")");
  return s;
}

static int push_gate(qkd_lower *L, qkd_ir_gate g, qkd_span sp) {
  if (L->symbolic) return 0;
  if (L->n_gates >= QKD_LOWER_MAX_GATES) {
    qkd_diag_error(L->diag, sp, "the circuit has more than %d gates after unrolling", QKD_LOWER_MAX_GATES);
    return -1;
  }
  if (L->n_gates == L->cap) {
    int cap = L->cap ? L->cap * 2 : 64;
    qkd_ir_gate *gs = qkd_arena_alloc(L->arena, sizeof *gs * (size_t)cap);
    if (L->n_gates) memcpy(gs, L->gates, sizeof *gs * (size_t)L->n_gates);
    L->gates = gs;
    L->cap = cap;
  }
  L->gates[L->n_gates++] = g;
  return 0;
}

/* *q = the qubit, or -1 when it is symbolic (checked at each use). */
static int qubit_arg(qkd_lower *L, qkd_eval *ev, const qkd_env *env, const qkd_ast *arg, const loopvar *lv, int *q) {
  long v;
  int known = qkd_eval_int(ev, env, arg->a, &v);
  *q = -1;
  if (known != 0) return known < 0 ? -1 : 0;
  if (L->symbolic && v < 0) {
    qkd_diag_error(L->diag, arg->span, "qubit index %ld is negative", v);
    return -1;
  }
  if (!L->symbolic && (v < 0 || v >= L->n_qubits)) {
    qkd_diag_error(L->diag, arg->span, "qubit index %ld is out of range for %d qubit%s%s", v, L->n_qubits,
                   L->n_qubits == 1 ? "" : "s", loop_note(L, lv));
    return -1;
  }
  *q = (int)v;
  return 0;
}

static int angle_arg(qkd_lower *L, qkd_eval *ev, const qkd_env *env, const qkd_ast *arg, qkd_angle *out) {
  if (!arg) {
    *out = (qkd_angle){QKD_ANGLE_PARAM, L->n_params++, 1.0, 0.0};
    return 0;
  }
  qkd_value v = qkd_eval_expr(ev, env, arg->a);
  if (v.kind == QKD_V_ERR) return -1;
  if (v.kind == QKD_V_NUM || v.kind == QKD_V_ANY) { *out = (qkd_angle){QKD_ANGLE_CONST, 0, 0.0, v.num}; return 0; }
  if (v.kind == QKD_V_FEAT) { *out = (qkd_angle){QKD_ANGLE_FEATURE, v.feat, v.scale, v.offset}; return 0; }
  qkd_diag_error(L->diag, arg->span, "an angle must be a number or an affine feature expression, not a %s",
                 qkd_value_kind_name(v.kind));
  return -1;
}

static int gate_call(qkd_lower *L, qkd_eval *ev, const qkd_env *env, const qkd_ast *c, const loopvar *lv) {
  int is_rot = strcmp(c->name, "rot") == 0;
  int kind = is_rot ? QKD_GATE_RZ : qkd_gate_lookup(c->name);
  if (kind < 0) { /* a definition with errors is never lowered for a student */
    if (L->symbolic) qkd_diag_error(L->diag, c->name_span, "unknown gate '%s'", c->name);
    return -1;
  }
  const qkd_gate_info *info = qkd_gate(kind);
  int nq = info->qubits, na = is_rot ? 0 : info->angles, max_args = is_rot ? 1 : nq + na;
  int nargs = c->items.len;
  for (int i = 0; i < nargs; i++) {
    const qkd_ast *a = c->items.items[i];
    if (a->name) {
      qkd_diag_error(L->diag, a->name_span, "gate arguments are positional ('%s:' is not a parameter of %s)", a->name, c->name);
      return -1;
    }
  }
  if (nargs < nq || nargs > max_args) {
    if (max_args == nq)
      qkd_diag_error(L->diag, c->span, "gate '%s' takes %d argument%s, got %d", c->name, nq, nq == 1 ? "" : "s", nargs);
    else if (na == 1)
      qkd_diag_error(L->diag, c->span, "gate '%s' takes %d or %d arguments (qubit%s, then an optional angle), got %d",
                     c->name, nq, max_args, nq == 1 ? "" : "s", nargs);
    else
      qkd_diag_error(L->diag, c->span, "gate '%s' takes %d to %d arguments (qubit%s, then up to %d optional angles), got %d",
                     c->name, nq, max_args, nq == 1 ? "" : "s", na, nargs);
    return -1;
  }
  qkd_ir_gate g = {.kind = kind};
  for (int i = 0; i < nq; i++)
    if (qubit_arg(L, ev, env, c->items.items[i], lv, &g.q[i]) != 0) return -1;
  if (nq == 2 && g.q[0] >= 0 && g.q[0] == g.q[1]) {
    qkd_diag_error(L->diag, c->span, "gate '%s' uses qubit %d twice%s", c->name, g.q[0], loop_note(L, lv));
    return -1;
  }
  int line, col;
  qkd_diag_linecol(L->diag, c->span.file, c->span.start, &line, &col);
  g.line = line;
  if (is_rot) { /* rot(q) = RZ(a) RY(b) RZ(c), three fresh parameters */
    static const qkd_gate_kind seq[3] = {QKD_GATE_RZ, QKD_GATE_RY, QKD_GATE_RZ};
    for (int k = 0; k < 3; k++) {
      g.kind = seq[k];
      angle_arg(L, ev, env, NULL, &g.angle[0]);
      if (push_gate(L, g, c->span) != 0) return -1;
    }
    return 0;
  }
  for (int k = 0; k < na; k++) /* omitted angles: trainable, numbered in slot order */
    if (angle_arg(L, ev, env, nargs > nq + k ? c->items.items[nq + k] : NULL, &g.angle[k]) != 0) return -1;
  return push_gate(L, g, c->span);
}

static int exec_stmts(qkd_lower *L, qkd_eval *ev, const qkd_env *env, const qkd_vec *stmts, const loopvar *lv) {
  for (int i = 0; i < stmts->len; i++) {
    const qkd_ast *s = stmts->items[i];
    if (s->kind == QKD_AST_CALL) {
      if (gate_call(L, ev, env, s, lv) != 0) return -1;
      continue;
    }
    /* for NAME in RANGE|LIST { … } */
    qkd_value it = qkd_eval_expr(ev, env, s->a);
    if (it.kind == QKD_V_ERR) return -1;
    if (it.kind != QKD_V_RANGE && it.kind != QKD_V_LIST) {
      qkd_diag_error(L->diag, s->a->span, "'for' needs a range or a list, not a %s", qkd_value_kind_name(it.kind));
      return -1;
    }
    long count = it.kind == QKD_V_RANGE ? (long)(it.hi - it.lo) : it.n;
    for (long k = 0; k < count; k++) {
      qkd_env b = {.name = s->name, .next = env};
      b.value = it.kind == QKD_V_RANGE ? (qkd_value){.kind = QKD_V_NUM, .num = it.lo + (double)k} : it.items[k];
      loopvar v = {s->name, b.value.kind == QKD_V_NUM ? b.value.num : NAN, lv};
      if (exec_stmts(L, ev, &b, &s->items, &v) != 0) return -1;
    }
  }
  return 0;
}

/* The loop variable of `for NAME in it` in a definition: a symbolic number, or of unknown kind. */
static qkd_value loop_value(qkd_value it) {
  int numbers = it.kind == QKD_V_RANGE || it.kind == QKD_V_LIST;
  for (int i = 0; it.kind == QKD_V_LIST && i < it.n; i++) numbers &= it.items[i].kind == QKD_V_NUM;
  return qkd_value_unknown(numbers ? QKD_V_NUM : QKD_V_ANY);
}

/* Every statement once, reporting each error; a loop's body once with its variable symbolic. */
static int check_stmts(qkd_lower *L, qkd_eval *ev, const qkd_env *env, const qkd_vec *stmts) {
  int rc = 0;
  for (int i = 0; i < stmts->len; i++) {
    const qkd_ast *s = stmts->items[i];
    if (s->kind == QKD_AST_CALL) {
      if (gate_call(L, ev, env, s, NULL) != 0) rc = -1;
      continue;
    }
    qkd_value it = qkd_eval_expr(ev, env, s->a);
    if (it.kind == QKD_V_ERR) {
      rc = -1;
    } else if (it.kind != QKD_V_RANGE && it.kind != QKD_V_LIST && it.kind != QKD_V_ANY) {
      qkd_diag_error(L->diag, s->a->span, "'for' needs a range or a list, not a %s", qkd_value_kind_name(it.kind));
      rc = -1;
    }
    qkd_env b = {.name = s->name, .value = loop_value(it), .next = env};
    if (check_stmts(L, ev, &b, &s->items) != 0) rc = -1;
  }
  return rc;
}

int qkd_lower_check(qkd_arena *arena, qkd_diag *diag, const qkd_ast *decl) {
  if (decl->depth > QKD_AST_MAX_DEPTH) {
    qkd_diag_error(diag, decl->name_span, "'%s' is nested too deeply", decl->name);
    return -1;
  }
  qkd_lower L = {.arena = arena, .diag = diag, .symbolic = 1, .max_feature = -1};
  qkd_eval ev = {.arena = arena, .diag = diag, .features_allowed = 1, .max_feature = -1};
  qkd_env nb[2] = {{"n", qkd_value_unknown(QKD_V_NUM), NULL}, {"qubits", qkd_value_unknown(QKD_V_RANGE), &nb[0]}};
  return check_stmts(&L, &ev, qkd_env_symbolic(arena, &decl->params, &nb[1]), &decl->items);
}

/* The environment of a call: the body sees n and qubits = 0..n; the call's arguments see
 * qubits = n (spec §9). */
static int bind_call(qkd_lower *L, qkd_eval *ev, const qkd_ast *decl, const qkd_ast *args, qkd_span site, qkd_env **env) {
  qkd_env *nb = qkd_arena_alloc(L->arena, sizeof *nb * 3);
  nb[0] = (qkd_env){"n", {.kind = QKD_V_NUM, .num = L->n_qubits}, NULL};
  nb[1] = (qkd_env){"qubits", {.kind = QKD_V_RANGE, .lo = 0, .hi = L->n_qubits}, &nb[0]};
  nb[2] = (qkd_env){"qubits", {.kind = QKD_V_NUM, .num = L->n_qubits}, &nb[0]};
  return qkd_bind_args_in(ev, decl, args, site, &nb[2], &nb[1], env);
}

int qkd_lower_bind(qkd_lower *L, const qkd_ast *decl, const qkd_ast *args, qkd_span site) {
  qkd_eval ev = {.arena = L->arena, .diag = L->diag, .max_feature = -1};
  qkd_env *env;
  return bind_call(L, &ev, decl, args, site, &env);
}

int qkd_lower_call(qkd_lower *L, const qkd_ast *decl, const qkd_ast *args, qkd_span site) {
  qkd_eval ev = {.arena = L->arena, .diag = L->diag, .features_allowed = 1, .max_feature = L->max_feature,
                 .max_feature_span = L->max_feature_span};
  qkd_env *env;
  if (bind_call(L, &ev, decl, args, site, &env) != 0) return -1;
  if (decl->depth > QKD_AST_MAX_DEPTH) {
    qkd_diag_error(L->diag, decl->name_span, "'%s' is nested too deeply", decl->name);
    return -1;
  }
  int rc = exec_stmts(L, &ev, env, &decl->items, NULL);
  L->max_feature = ev.max_feature;
  L->max_feature_span = ev.max_feature_span;
  return rc;
}
