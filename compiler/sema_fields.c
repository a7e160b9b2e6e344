/* sema_fields.c — the field schema of the block declarations and its readers (sema_int.h). */
#include <limits.h>
#include <string.h>

#include "sema_int.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define REQUIRED 1
#define OPTIONAL 0
#define INT(lo, hi, rule) SEMA_F_INT, lo, hi, rule, NULL, 0
#define STRING(min_len, message) SEMA_F_STRING, min_len, 0, message, NULL, 0
#define CHOICE(list) SEMA_F_CHOICE, 0, 0, NULL, list, 0
#define REF(kind) SEMA_F_REF, 0, 0, NULL, NULL, kind
#define EXPR SEMA_F_EXPR, 0, 0, NULL, NULL, 0
#define BLOCK SEMA_F_BLOCK, 0, 0, NULL, NULL, 0

/* A choice is read as its index: each list is in the order of its model enum. */
static const char *const scales[] = {"unit", "standard", NULL};             /* qkd_scale_kind */
static const char *const measures[] = {"z", "probs", NULL};                 /* qkd_measure_kind */
static const char *const precisions[] = {"f64", "f32", NULL};               /* qkd_precision */
static const char *const booleans[] = {"false", "true", NULL};
static const char *const gradients[] = {"adjoint", "parameter_shift", NULL}; /* qkd_grad_kind */
static const char *const controls[] = {"none", "classical", "matched", NULL}; /* qkd_control_kind */
static const char *const noise_engines[] = {"auto", "exact", "trajectories", NULL}; /* qkd_noise_engine */

/* Every field and block of each scope, in the order messages list them. */
static const sema_field_schema schema[] = {
    {SEMA_IN_DATASET, "source", REQUIRED,
     STRING(0, "source must be a string: \"mnist\", \"fashion-mnist\", \"cifar10\", \"synthetic\" or a directory")},
    {SEMA_IN_DATASET, "classes", OPTIONAL, EXPR},
    {SEMA_IN_DATASET, "per_class", OPTIONAL, INT(1, 100000000, ">= 1")},
    {SEMA_IN_DATASET, "train_limit", OPTIONAL, INT(1, 100000000, ">= 1")},
    {SEMA_IN_DATASET, "test_limit", OPTIONAL, INT(1, 100000000, ">= 1")},
    {SEMA_IN_DATASET, "validation", OPTIONAL, INT(0, 100000000, ">= 0")},
    {SEMA_IN_DATASET, "scale", OPTIONAL, CHOICE(scales)},
    {SEMA_IN_DATASET, "shape", OPTIONAL, EXPR},
    {SEMA_IN_DATASET, "seed", OPTIONAL, INT(0, INT_MAX, ">= 0")},

    {SEMA_IN_TEACHER, "net", REQUIRED, REF(QKD_DECL_NET)},
    {SEMA_IN_TEACHER, "data", REQUIRED, REF(QKD_DECL_DATASET)},
    {SEMA_IN_TEACHER, "cache", OPTIONAL, STRING(1, "cache must be a file name (a string)")},
    {SEMA_IN_TEACHER, "train", REQUIRED, BLOCK},
    /* a teacher from logits has these two instead of net, train and cache (sema_net.c) */
    {SEMA_IN_TEACHER, "logits", OPTIONAL, STRING(1, "logits must be a .npy file name (a string)")},
    {SEMA_IN_TEACHER, "test_logits", OPTIONAL, STRING(1, "test_logits must be a .npy file name (a string)")},

    {SEMA_IN_STUDENT, "qubits", REQUIRED, INT(1, QKD_MAX_QUBITS, "between 1 and " STR(QKD_MAX_QUBITS))},
    {SEMA_IN_STUDENT, "pre", OPTIONAL, EXPR},
    {SEMA_IN_STUDENT, "encode", OPTIONAL, EXPR},
    {SEMA_IN_STUDENT, "circuit", REQUIRED, REF(QKD_DECL_CIRCUIT)},
    {SEMA_IN_STUDENT, "measure", REQUIRED, CHOICE(measures)},
    {SEMA_IN_STUDENT, "shots", OPTIONAL, INT(1, 100000000, ">= 1")},
    {SEMA_IN_STUDENT, "head", REQUIRED, EXPR},
    {SEMA_IN_STUDENT, "precision", OPTIONAL, CHOICE(precisions)},
    {SEMA_IN_STUDENT, "noise", OPTIONAL, EXPR},
    {SEMA_IN_STUDENT, "noise_engine", OPTIONAL, CHOICE(noise_engines)},
    {SEMA_IN_STUDENT, "trajectories", OPTIONAL, INT(1, 1000000, ">= 1")},

    {SEMA_IN_EXPERIMENT, "data", REQUIRED, REF(QKD_DECL_DATASET)},
    {SEMA_IN_EXPERIMENT, "teacher", OPTIONAL, REF(QKD_DECL_TEACHER)},
    {SEMA_IN_EXPERIMENT, "student", REQUIRED, REF(QKD_DECL_STUDENT)},
    {SEMA_IN_EXPERIMENT, "loss", REQUIRED, EXPR},
    {SEMA_IN_EXPERIMENT, "baseline", OPTIONAL, CHOICE(booleans)},
    {SEMA_IN_EXPERIMENT, "gradient", OPTIONAL, CHOICE(gradients)},
    {SEMA_IN_EXPERIMENT, "control", OPTIONAL, CHOICE(controls)},
    {SEMA_IN_EXPERIMENT, "eval_noise", OPTIONAL, EXPR},
    {SEMA_IN_EXPERIMENT, "train", REQUIRED, BLOCK},

    {SEMA_IN_TRAIN, "optimizer", REQUIRED, EXPR},
    {SEMA_IN_TRAIN, "epochs", REQUIRED, INT(1, 100000, ">= 1")},
    {SEMA_IN_TRAIN, "batch", REQUIRED, INT(1, 1000000, ">= 1")},
    {SEMA_IN_TRAIN, "seed", OPTIONAL, INT(0, INT_MAX, ">= 0")},
    {SEMA_IN_TRAIN, "augment", OPTIONAL, EXPR},
    {SEMA_IN_TRAIN, "schedule", OPTIONAL, EXPR},
};
#define N_SCHEMA ((int)(sizeof schema / sizeof schema[0]))

/* How a scope is named in "unknown field 'x' in NAME" and in "NAME 'y' needs a 'z' field". */
static const char *const scope_names[SEMA_IN_COUNT] = {"dataset", "teacher", "student", "experiment", "train"};
static const char *const owner_names[SEMA_IN_COUNT] = {"dataset", "teacher", "student", "experiment", "train block"};

static const sema_field_schema *row(sema_scope scope, const char *name) {
  for (int i = 0; i < N_SCHEMA; i++)
    if (schema[i].scope == scope && !strcmp(schema[i].name, name)) return &schema[i];
  return NULL;
}

/* The names of a scope's blocks (blocks = 1) or fields (blocks = 0), comma-separated. */
static const char *names(sema *S, sema_scope scope, int blocks) {
  const char *list[N_SCHEMA + 1];
  int n = 0;
  for (int i = 0; i < N_SCHEMA; i++)
    if (schema[i].scope == scope && (schema[i].value == SEMA_F_BLOCK) == blocks) list[n++] = schema[i].name;
  list[n] = NULL;
  return sema_join(S, list);
}

void sema_check_fields(sema *S, const qkd_vec *items, sema_scope scope) {
  for (int i = 0; i < items->len; i++) {
    const qkd_ast *f = items->items[i];
    int is_block = f->kind == QKD_AST_BLOCK;
    const sema_field_schema *r = row(scope, f->name);
    if (!r || (r->value == SEMA_F_BLOCK) != is_block) {
      if (r && !is_block)
        qkd_diag_error(S->D, f->name_span, "'%s' is a block: write %s { … }", f->name, f->name);
      else if (r)
        qkd_diag_error(S->D, f->name_span, "'%s' is a field: write %s: value", f->name, f->name);
      else
        qkd_diag_error(S->D, f->name_span, "unknown %s '%s' in %s (expected one of: %s)", is_block ? "block" : "field",
                       f->name, scope_names[scope], names(S, scope, is_block));
      continue;
    }
    for (int j = 0; j < i; j++) {
      const qkd_ast *g = items->items[j];
      if (strcmp(g->name, f->name) == 0) {
        qkd_diag_error(S->D, f->name_span, "field '%s' is given twice", f->name);
        break;
      }
    }
  }
}

const qkd_ast *sema_item(const qkd_vec *items, const char *name, qkd_ast_kind kind) {
  for (int i = 0; i < items->len; i++) {
    const qkd_ast *f = items->items[i];
    if (f->kind == kind && strcmp(f->name, name) == 0) return f;
  }
  return NULL;
}

const qkd_ast *sema_field(const qkd_vec *items, const char *name) { return sema_item(items, name, QKD_AST_FIELD); }

const qkd_ast *sema_get(sema *S, const qkd_ast *owner, sema_scope scope, const char *name) {
  const sema_field_schema *r = row(scope, name);
  if (!r) {
    qkd_diag_error(S->D, owner->name_span, "internal error: no field '%s' in the %s schema", name, scope_names[scope]);
    return NULL;
  }
  int is_block = r->value == SEMA_F_BLOCK;
  const qkd_ast *f = sema_item(&owner->items, name, is_block ? QKD_AST_BLOCK : QKD_AST_FIELD);
  if (f || !r->required) return f;
  const char *who = owner->name ? owner->name : "";
  if (is_block)
    qkd_diag_error(S->D, owner->name_span, "%s '%s' needs a %s { … } block", qkd_decl_kind_names[owner->decl_kind], who, name);
  else
    qkd_diag_error(S->D, owner->name_span, "%s '%s' needs a '%s' field", owner_names[scope], who, name);
  return f;
}

/* The schema row of a field found in `scope` (check_fields reported the others). */
static const sema_field_schema *row_of(sema *S, sema_scope scope, const qkd_ast *f, sema_value want) {
  const sema_field_schema *r = row(scope, f->name);
  if (r && r->value == want) return r;
  qkd_diag_error(S->D, f->name_span, "internal error: field '%s' is not read as the %s schema says", f->name, scope_names[scope]);
  return NULL;
}

int sema_int(sema *S, sema_scope scope, const qkd_ast *f, long *out) {
  const sema_field_schema *r = row_of(S, scope, f, SEMA_F_INT);
  if (!r || qkd_eval_int(&S->ev, NULL, f->a, out) != 0) return -1;
  if (*out < r->lo || *out > r->hi) {
    qkd_diag_error(S->D, f->a->span, "%s must be %s, not %ld", f->name, r->rule, *out);
    return -1;
  }
  return 0;
}

int sema_int_field(sema *S, const qkd_ast *owner, sema_scope scope, const char *name, long *out) {
  const qkd_ast *f = sema_get(S, owner, scope, name);
  return f ? sema_int(S, scope, f, out) : 1;
}

int sema_choice(sema *S, sema_scope scope, const qkd_ast *f) {
  const sema_field_schema *r = row_of(S, scope, f, SEMA_F_CHOICE);
  if (!r) return -1;
  const qkd_ast *v = f->a;
  if (v->kind == QKD_AST_IDENT || (v->kind == QKD_AST_CALL && v->items.len == 0))
    for (int i = 0; r->choices[i]; i++)
      if (strcmp(v->name, r->choices[i]) == 0) return i;
  qkd_diag_error(S->D, v->span, "%s must be one of: %s", f->name, sema_join(S, r->choices));
  return -1;
}

int sema_choice_field(sema *S, const qkd_ast *owner, sema_scope scope, const char *name) {
  const qkd_ast *f = sema_get(S, owner, scope, name);
  return f ? sema_choice(S, scope, f) : -2;
}

const char *sema_string(sema *S, sema_scope scope, const qkd_ast *f) {
  const sema_field_schema *r = row_of(S, scope, f, SEMA_F_STRING);
  if (!r) return NULL;
  qkd_value v = qkd_eval_expr(&S->ev, NULL, f->a);
  if (v.kind == QKD_V_STR && (long)strlen(v.str) >= r->lo) return v.str;
  if (v.kind != QKD_V_ERR) qkd_diag_error(S->D, f->a->span, "%s", r->rule);
  return NULL;
}

qkd_ast *sema_ref(sema *S, sema_scope scope, const qkd_ast *f) {
  const sema_field_schema *r = row_of(S, scope, f, SEMA_F_REF);
  return r ? sema_resolve(S, f->a, r->ref) : NULL;
}
