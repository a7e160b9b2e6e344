/* sema.c — the checking driver (sema.h): names and duplicates, every declaration in its phase,
 * the program model; shared helpers for the declaration checkers (sema_int.h). */
#include "sema.h"

#include <math.h>
#include <string.h>

#include "lower.h"
#include "sema_int.h"

/* ---- names, references, built-in calls -------------------------------------------------- */

qkd_ast *sema_find_decl(sema *S, const char *name) {
  for (int i = 0; i < S->prog->decls.len; i++) {
    qkd_ast *d = S->prog->decls.items[i];
    if (strcmp(d->name, name) == 0) return d;
  }
  return NULL;
}

/* The declaration `ref` (IDENT or CALL) names, which must be of `kind`; NULL after an error. */
qkd_ast *sema_resolve(sema *S, const qkd_ast *ref, qkd_decl_kind kind) {
  const char *what = qkd_decl_kind_names[kind];
  if (ref->kind != QKD_AST_IDENT && ref->kind != QKD_AST_CALL) {
    qkd_diag_error(S->D, ref->span, "expected the name of a %s", what);
    return NULL;
  }
  qkd_ast *d = sema_find_decl(S, ref->name);
  if (!d) {
    qkd_diag_error(S->D, ref->name_span, "unknown %s '%s'", what, ref->name);
    return NULL;
  }
  if (d->decl_kind != kind) {
    qkd_diag_error(S->D, ref->name_span, "'%s' is a %s, not a %s", ref->name, qkd_decl_kind_names[d->decl_kind], what);
    return NULL;
  }
  return d;
}

int sema_name_in(const char *name, const char *const *list) {
  for (int i = 0; list[i]; i++)
    if (strcmp(list[i], name) == 0) return 1;
  return 0;
}

const char *sema_join(sema *S, const char *const *list) {
  char *s = "";
  for (int i = 0; list[i]; i++) s = qkd_arena_printf(S->A, "%s%s%s", s, i ? ", " : "", list[i]);
  return s;
}

/* Binds a built-in call `name(p0, p1: d1, …)`: params[i] with defaults (NAN = required). */
int sema_bind_builtin(sema *S, const qkd_env *env, const qkd_ast *call, const char *const *params, const double *defaults,
                      double *out) {
  int np = 0;
  while (params[np]) np++;
  int set[8] = {0}, pos = 0, rc = 0;
  for (int i = 0; call->kind == QKD_AST_CALL && i < call->items.len; i++) {
    const qkd_ast *a = call->items.items[i];
    int slot = -1;
    if (!a->name) {
      if (pos >= np) {
        qkd_diag_error(S->D, a->span, "too many arguments: %s takes %d", call->name, np);
        rc = -1;
        continue;
      }
      slot = pos++;
    } else {
      for (int p = 0; p < np; p++)
        if (strcmp(params[p], a->name) == 0) slot = p;
      if (slot < 0) {
        qkd_diag_error(S->D, a->name_span, "%s has no parameter '%s' (parameters: %s)", call->name, a->name, sema_join(S, params));
        rc = -1;
        continue;
      }
    }
    if (set[slot]) {
      qkd_diag_error(S->D, a->span, "argument '%s' given twice", params[slot]);
      rc = -1;
      continue;
    }
    set[slot] = 1;
    if (qkd_eval_num(&S->ev, env, a->a, &out[slot]) != 0) rc = -1;
  }
  for (int p = 0; p < np && rc == 0; p++) {
    if (set[p]) continue;
    if (isnan(defaults[p])) {
      qkd_diag_error(S->D, call->span, "%s needs the argument '%s'", call->name, params[p]);
      rc = -1;
    } else {
      out[p] = defaults[p];
    }
  }
  return rc;
}

static const char *dir_of(sema *S, int file) {
  const char *p = S->D->files[file]->path;
  const char *slash = strrchr(p, '/');
  return slash ? qkd_arena_strndup(S->A, p, (size_t)(slash - p)) : ".";
}

const char *sema_resolve_path(sema *S, const qkd_ast *at, const char *path) {
  if (path[0] == '/' || !strchr(S->D->files[at->span.file]->path, '/')) return path;
  return qkd_arena_printf(S->A, "%s/%s", dir_of(S, at->span.file), path);
}

/* ---- the program ------------------------------------------------------------------------------ */

int sema_failed(const sema *S, const qkd_ast *d) {
  for (int i = 0; i < S->failed.len; i++)
    if (S->failed.items[i] == d) return 1;
  return 0;
}

/* A definition (circuit, encoding, net, loss), used or not, where it is written: its parameters,
 * then its body with them symbolic. One with errors goes to S->failed and is never instantiated
 * at a use, so each of its errors is reported once, here. */
static void check_definition(sema *S, const qkd_ast *d) {
  int errs = S->D->errors, gates = d->decl_kind == QKD_DECL_CIRCUIT || d->decl_kind == QKD_DECL_ENCODING;
  static const char *const reserved[] = {"n", "qubits", "x", "pi", NULL};
  for (int i = 0; i < d->params.len; i++) {
    const qkd_ast *p = d->params.items[i];
    if (gates && sema_name_in(p->name, reserved))
      qkd_diag_error(S->D, p->span, "parameter '%s' would hide the built-in name '%s'", p->name, p->name);
    for (int j = 0; j < i; j++)
      if (!strcmp(((qkd_ast *)d->params.items[j])->name, p->name))
        qkd_diag_error(S->D, p->span, "parameter '%s' is declared twice", p->name);
  }
  if (gates) qkd_lower_check(S->A, S->D, d);
  else if (d->decl_kind == QKD_DECL_NET) sema_check_net_definition(S, d);
  else if (d->decl_kind == QKD_DECL_LOSS) sema_check_loss_definition(S, d);
  if (S->D->errors != errs) qkd_vec_push(S->A, &S->failed, (void *)d);
}

/* Whether some experiment names this student (checked there, errors included). */
static int student_used(const qkd_program_ast *prog, const char *name) {
  for (int i = 0; i < prog->decls.len; i++) {
    const qkd_ast *x = prog->decls.items[i];
    const qkd_ast *f = x->decl_kind == QKD_DECL_EXPERIMENT ? sema_field(&x->items, "student") : NULL;
    if (f && (f->a->kind == QKD_AST_IDENT || f->a->kind == QKD_AST_CALL) && !strcmp(f->a->name, name)) return 1;
  }
  return 0;
}

qkd_model *qkd_sema_check(qkd_arena *a, qkd_diag *d, const qkd_program_ast *prog, const char *root_path) {
  sema S = {.A = a, .D = d, .prog = prog};
  S.ev = (qkd_eval){.arena = a, .diag = d, .max_feature = -1};
  qkd_model *m = qkd_arena_alloc(a, sizeof *m);
  m->path = root_path;
  S.model = m;
  static const char *const builtin[] = {"amplitude", "ce", "kl", "mse", "mean", "pi", "adam", "sgd", "none", NULL};
  for (int i = 0; i < prog->decls.len; i++) {
    qkd_ast *x = prog->decls.items[i];
    if (sema_name_in(x->name, builtin))
      qkd_diag_error(d, x->name_span, "'%s' is a built-in name and cannot be redefined", x->name);
    for (int j = 0; j < i; j++) {
      qkd_ast *y = prog->decls.items[j];
      if (!strcmp(x->name, y->name)) {
        qkd_diag_error(d, x->name_span, "'%s' is already defined", x->name);
        qkd_diag_note(d, y->name_span, "previous definition of '%s' is here", y->name);
        break;
      }
    }
    check_definition(&S, x);
  }
  qkd_vec exps = {0}, students = {0}, teachers = {0}, datasets = {0};
  for (int i = 0; i < prog->decls.len; i++) {
    qkd_ast *x = prog->decls.items[i];
    if (x->decl_kind == QKD_DECL_DATASET) {
      qkd_m_dataset *ds = sema_check_dataset(&S, x);
      if (ds) {
        qkd_vec_push(a, &S.ds_ast, x);
        qkd_vec_push(a, &S.ds_model, ds);
        qkd_vec_push(a, &datasets, ds);
      }
    }
  }
  for (int i = 0; i < prog->decls.len; i++) {
    qkd_ast *x = prog->decls.items[i];
    if (x->decl_kind == QKD_DECL_TEACHER) {
      qkd_m_teacher *t = sema_check_teacher(&S, x);
      if (t) {
        qkd_vec_push(a, &S.te_ast, x);
        qkd_vec_push(a, &S.te_model, t);
        qkd_vec_push(a, &teachers, t);
      }
    } else if (x->decl_kind == QKD_DECL_STUDENT) {
      sema_check_fields(&S, &x->items, SEMA_IN_STUDENT);
    }
  }
  for (int i = 0; i < prog->decls.len; i++) {
    qkd_ast *x = prog->decls.items[i];
    if (x->decl_kind == QKD_DECL_EXPERIMENT) {
      qkd_m_experiment *e = sema_check_experiment(&S, x);
      if (e) qkd_vec_push(a, &exps, e);
    }
  }
  /* Every student once more, for draw/emit-llvm: with its first experiment's data, or a default. */
  for (int i = 0; i < prog->decls.len; i++) {
    qkd_ast *x = prog->decls.items[i];
    if (x->decl_kind != QKD_DECL_STUDENT) continue;
    qkd_m_student *st = NULL;
    for (int k = 0; k < exps.len && !st; k++) {
      qkd_m_experiment *e = exps.items[k];
      if (!strcmp(e->student.name, x->name)) st = &e->student;
    }
    if (!st && student_used(prog, x->name)) continue; /* its experiment already reported */
    if (!st) {
      static const qkd_m_dataset fallback = {.name = "default", .c = 1, .h = 28, .w = 28, .n_classes = 0};
      const qkd_m_dataset *data = datasets.len ? datasets.items[0] : &fallback;
      st = qkd_arena_alloc(a, sizeof *st);
      if (sema_build_student(&S, x, data, 0, st, x->name_span) != 0) continue;
    }
    qkd_vec_push(a, &students, st);
  }
  if (d->errors) return NULL;
  m->n_datasets = datasets.len, m->datasets = (qkd_m_dataset **)datasets.items;
  m->n_teachers = teachers.len, m->teachers = (qkd_m_teacher **)teachers.items;
  m->n_experiments = exps.len, m->experiments = (qkd_m_experiment **)exps.items;
  m->n_students = students.len, m->students = (qkd_m_student **)students.items;
  return m;
}

/* Parses a lone call given on the command line (its own source, named after the option). */
static const qkd_ast *parse_call(qkd_arena *a, qkd_diag *d, const char *option, const char *text) {
  char *src = qkd_arena_printf(a, "dataset __cli__ { v: %s\n}", text);
  qkd_vec parsed = {0};
  if (qkd_parse_text(a, d, option, src, (uint32_t)strlen(src), &parsed) != 0) return NULL;
  const qkd_ast *w = parsed.len == 1 ? parsed.items[0] : NULL;
  if (!w || w->items.len != 1) {
    qkd_diag_error(d, (qkd_span){-1, 0, 0}, "%s: expected one call, as in 'strong(layers: 2)'", option);
    return NULL;
  }
  return ((const qkd_ast *)w->items.items[0])->a;
}

int qkd_sema_sim_circuit(qkd_arena *a, qkd_diag *d, const qkd_program_ast *prog, const char *circuit_call,
                         const char *encode, const char *noise, int n, int amp_features, qkd_ir_circuit *out) {
  sema S = {.A = a, .D = d, .prog = prog};
  S.ev = (qkd_eval){.arena = a, .diag = d, .max_feature = -1};
  for (int i = 0; i < prog->decls.len; i++) check_definition(&S, prog->decls.items[i]);
  if (d->errors) return -1;
  memset(out, 0, sizeof *out);
  out->n_qubits = n;
  out->measure = QKD_MEASURE_PROBS;
  qkd_lower L = {.arena = a, .diag = d, .n_qubits = n, .max_feature = -1};
  if (encode && !strcmp(encode, "amplitude")) {
    out->encode = QKD_ENCODE_AMPLITUDE;
  } else if (encode) {
    const qkd_ast *e = parse_call(a, d, "--encode", encode);
    qkd_ast *ed = e ? sema_resolve(&S, e, QKD_DECL_ENCODING) : NULL;
    if (!ed || qkd_lower_call(&L, ed, e->kind == QKD_AST_CALL ? e : NULL, e->span) != 0) return -1;
    out->n_encoding_gates = L.n_gates;
  }
  const qkd_ast *c = parse_call(a, d, "--circuit", circuit_call);
  qkd_ast *cd = c ? sema_resolve(&S, c, QKD_DECL_CIRCUIT) : NULL;
  if (!cd || qkd_lower_call(&L, cd, c->kind == QKD_AST_CALL ? c : NULL, c->span) != 0) return -1;
  out->name = cd->name;
  out->gates = L.gates;
  out->n_gates = L.n_gates;
  out->n_params = L.n_params;
  int reads = L.max_feature + 1;
  out->n_features = out->encode == QKD_ENCODE_AMPLITUDE ? (amp_features > reads ? amp_features : reads) : reads;
  if (noise) {
    const qkd_ast *nv = parse_call(a, d, "--noise", noise);
    if (!nv || sema_lower_noise(&S, nv, out) != 0) return -1;
  }
  qkd_error err;
  if (qkd_ir_validate(out, &err) != 0) {
    qkd_diag_error(d, (qkd_span){-1, 0, 0}, "internal error: lowered circuit is invalid: %s", err.msg);
    return -1;
  }
  return 0;
}
