/* sema_int.h — private to compiler/sema*.c: the checker's state and what its files share.
 *
 * Owns: the `sema` state of one check (the compile's arena and diagnostics, the program, the
 * declarations already checked, the definitions that failed their own check); the shared
 * helpers (sema.c: declarations by name, references of a given kind, built-in calls, paths);
 * the field schema (sema_fields.c: one table of every field of the block declarations, and the
 * only code that reads it); one entry point per declaration kind, in the file of that kind:
 *   sema.c         the driver: names, duplicates, definitions checked where they are written
 *   sema_data.c    datasets
 *   sema_net.c     nets (definitions and uses), training recipes, teachers
 *   sema_student.c students (their circuits and encodings lowered by lower.c)
 *   sema_noise.c   noise: and eval_noise: (channels lowered onto a student's circuit)
 *   sema_exp.c     losses (definitions and uses), experiments
 * Promises: every check reports located errors through the compile's qkd_diag and returns a
 * failure (NULL or -1) only once an error has been reported — by itself, or where a definition
 * it uses is written (that definition is then not checked again at the use); nothing here
 * prints otherwise or keeps global state. */
#ifndef QKD_SEMA_INT_H
#define QKD_SEMA_INT_H
#include "eval.h"
#include "parse.h"
#include "qkd_model.h"

#define SEMA_MAX_NET_NESTING 8

typedef struct {
  qkd_arena *A;
  qkd_diag *D;
  qkd_eval ev;
  const qkd_program_ast *prog;
  qkd_model *model;
  qkd_vec ds_ast, ds_model; /* parallel: dataset DECL → qkd_m_dataset */
  qkd_vec te_ast, te_model; /* teacher DECL → qkd_m_teacher */
  qkd_vec failed;           /* definitions whose own check failed: never instantiated */
  int loss_depth;
  int definition;           /* checking a loss definition (named losses are not entered) */
} sema;

/* ---- sema.c: names, references, built-in calls -------------------------------------------- */
qkd_ast *sema_find_decl(sema *S, const char *name);
/* The declaration `ref` (IDENT or CALL) names, which must be of `kind`; NULL after an error. */
qkd_ast *sema_resolve(sema *S, const qkd_ast *ref, qkd_decl_kind kind);
int sema_name_in(const char *name, const char *const *list);
/* "a, b, c" (in the arena). */
const char *sema_join(sema *S, const char *const *list);
/* Binds a built-in call `name(p0, p1: d1, …)`: params[i] with defaults (NAN = required). */
int sema_bind_builtin(sema *S, const qkd_env *env, const qkd_ast *call, const char *const *params, const double *defaults,
                      double *out);
/* Whether definition `d` failed its own check (reported where it is written): a use of it fails
 * without a new message. */
int sema_failed(const sema *S, const qkd_ast *d);
/* `path` relative to the directory of the file `at` is in (absolute paths unchanged). */
const char *sema_resolve_path(sema *S, const qkd_ast *at, const char *path);

/* ---- sema_fields.c: the field schema ------------------------------------------------------
 * One table lists every field and block of the block declarations (and of train { }): its
 * scope, name, whether it is required, and its value kind with what is checked uniformly (an
 * integer's range, a choice's names, a string's minimum length and message, a reference's
 * declaration kind). The readers below are the only code that reads it; every message about
 * unknown, misplaced, duplicate, missing or out-of-range fields comes from them. */
typedef enum { SEMA_IN_DATASET, SEMA_IN_TEACHER, SEMA_IN_STUDENT, SEMA_IN_EXPERIMENT, SEMA_IN_TRAIN, SEMA_IN_COUNT } sema_scope;

typedef enum {
  SEMA_F_BLOCK,  /* name { fields } */
  SEMA_F_STRING, /* a string of at least `lo` bytes; `rule` is the message otherwise */
  SEMA_F_INT,    /* an integer in [lo, hi]; `rule` is the range in words (">= 1") */
  SEMA_F_CHOICE, /* one of the bare names `choices`, read as its index */
  SEMA_F_REF,    /* the name (or call) of a declaration of kind `ref` */
  SEMA_F_EXPR    /* any other value: read by the declaration's own checker */
} sema_value;

typedef struct {
  sema_scope scope;
  const char *name;
  int required;
  sema_value value;
  long lo, hi;
  const char *rule;
  const char *const *choices;
  qkd_decl_kind ref;
} sema_field_schema;

/* Unknown fields and blocks (listing the scope's names), a field written as a block or the
 * other way round, duplicates. */
void sema_check_fields(sema *S, const qkd_vec *items, sema_scope scope);
/* The field `name` of `owner` (a block when the schema says so); reports a missing required one. */
const qkd_ast *sema_get(sema *S, const qkd_ast *owner, sema_scope scope, const char *name);
/* The value of a field found in `scope`, checked as its row says: 0 (or the choice's index), or
 * -1 / NULL after reporting. */
int sema_int(sema *S, sema_scope scope, const qkd_ast *f, long *out);
int sema_choice(sema *S, sema_scope scope, const qkd_ast *f);
const char *sema_string(sema *S, sema_scope scope, const qkd_ast *f);
qkd_ast *sema_ref(sema *S, sema_scope scope, const qkd_ast *f);
/* sema_get, then the value: 1 / -2 when the field is absent (a missing required one reported). */
int sema_int_field(sema *S, const qkd_ast *owner, sema_scope scope, const char *name, long *out);
int sema_choice_field(sema *S, const qkd_ast *owner, sema_scope scope, const char *name);
/* Plain look-ups, reporting nothing: the field `name: value` (kind FIELD) or block `name { … }`
 * (kind BLOCK) of a list; one written the other way round is not found. */
const qkd_ast *sema_item(const qkd_vec *items, const char *name, qkd_ast_kind kind);
const qkd_ast *sema_field(const qkd_vec *items, const char *name);

/* ---- sema_data.c ------------------------------------------------------------------------------ */
qkd_m_dataset *sema_check_dataset(sema *S, const qkd_ast *d);
/* The checked data set the field `f` (of `scope`) names; NULL after an error (or when the data
 * set failed its own checks). */
qkd_m_dataset *sema_dataset_ref(sema *S, sema_scope scope, const qkd_ast *f);

/* ---- sema_net.c ------------------------------------------------------------------------------- */
/* Layers from CALL nodes, args evaluated in env. Spans of each layer go to spans[]. */
int sema_build_layers(sema *S, const qkd_env *env, const qkd_vec *items, qkd_layer_spec **out, qkd_span **spans);
/* Checks shapes through layers; reports at the failing layer, with a note at `site`. */
int sema_check_shapes(sema *S, const qkd_layer_spec *L, const qkd_span *sp, int n, qkd_shape in, int implicit,
                      qkd_shape *result, qkd_span site);
/* The train { … } block of `owner` (a declaration of `scope`) into t, and a teacher's augment
 * and schedule into fit (NULL: an experiment's, which takes neither). 0, or -1 after reporting. */
int sema_check_train(sema *S, const qkd_ast *owner, sema_scope scope, qkd_m_train *t, qkd_fit *fit);
qkd_m_teacher *sema_check_teacher(sema *S, const qkd_ast *d);
/* A net's definition where it is written, its parameters symbolic: layers, their arguments and
 * constant sizes, or the members of `= mean(…)` (each bound, not entered). 0, or -1 after
 * reporting. */
int sema_check_net_definition(sema *S, const qkd_ast *d);

/* ---- sema_student.c --------------------------------------------------------------------------- */
/* Builds student `d` against `data` (classes > 0: the class count heads must match); `site` is
 * the use, for notes. Returns 0, or -1 after reporting (or when its circuit or encoding failed
 * its own check). */
int sema_build_student(sema *S, const qkd_ast *d, const qkd_m_dataset *data, int classes, qkd_m_student *st,
                       qkd_span site);
/* ---- sema_noise.c ----------------------------------------------------------------------------
 * `value` (a noise: or eval_noise: field's value, or NULL) lowered onto the lowered circuit c:
 * sets c->n_channels, c->channels and c->readout (none: all empty). 0, or -1 (reported). */
int sema_lower_noise(sema *S, const qkd_ast *value, qkd_ir_circuit *c);
/* After the noise of c (the student's circuit, or eval_noise's) is lowered: c->trajectories from
 * st's noise_engine and trajectories (0 for a noiseless circuit or the exact engine). Errors (at
 * site): trajectories asked for with a channel that is not a Pauli channel, the exact engine past
 * its qubit limit, shots with read-out on trajectories. 0, or -1 (reported). */
int sema_noise_engine(sema *S, const qkd_m_student *st, qkd_ir_circuit *c, qkd_span site);

/* ---- sema_exp.c ------------------------------------------------------------------------------- */
/* A loss's definition where it is written, its parameters symbolic (kl and mse allowed: the
 * teacher is checked at each use). 0, or -1 after reporting. */
int sema_check_loss_definition(sema *S, const qkd_ast *d);
qkd_m_experiment *sema_check_experiment(sema *S, const qkd_ast *d);
#endif
