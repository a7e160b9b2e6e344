/* sema_int.h — private to compiler/sema*.c: the checker's state and what its files share.
 *
 * Owns: the `sema` state of one check (the compile's arena and diagnostics, the program, the
 * declarations already checked); the shared helpers (sema.c: declarations by name, references
 * of a given kind, built-in calls, choices, paths; sema_fields.c: the fields of the block
 * declarations); one entry point per declaration kind, in the file of that kind:
 *   sema_data.c    datasets
 *   sema_net.c     nets, training recipes, teachers
 *   sema_student.c students (their circuits and encodings lowered by lower.c)
 *   sema_exp.c     losses, experiments
 * Promises: every check reports located errors through the compile's qkd_diag and returns a
 * failure (NULL or -1) after reporting; nothing here prints otherwise or keeps global state. */
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
  int loss_depth;
} sema;

/* ---- sema.c: names, references, built-in calls -------------------------------------------- */
qkd_ast *sema_find_decl(sema *S, const char *name);
/* The declaration `ref` (IDENT or CALL) names, which must be of `kind`; NULL after an error. */
qkd_ast *sema_resolve(sema *S, const qkd_ast *ref, qkd_decl_kind kind);
int sema_name_in(const char *name, const char *const *list);
/* "a, b, c" (in the arena). */
const char *sema_join(sema *S, const char *const *list);
/* An identifier value among `choices`; returns its index or -1 after reporting. */
int sema_choice(sema *S, const qkd_ast *v, const char *const *choices, const char *what);
/* Binds a built-in call `name(p0, p1: d1, …)`: params[i] with defaults (NAN = required). */
int sema_bind_builtin(sema *S, const qkd_env *env, const qkd_ast *call, const char *const *params, const double *defaults,
                      double *out);
/* `path` relative to the directory of the file `at` is in (absolute paths unchanged). */
const char *sema_resolve_path(sema *S, const qkd_ast *at, const char *path);

/* ---- sema_fields.c: fields ------------------------------------------------------------------ */
void sema_check_fields(sema *S, const qkd_vec *items, const char *what, const char *const *allowed,
                       const char *const *blocks);
const qkd_ast *sema_item(const qkd_vec *items, const char *name, qkd_ast_kind kind);
const qkd_ast *sema_field(const qkd_vec *items, const char *name);
const qkd_ast *sema_require(sema *S, const qkd_ast *decl, const qkd_vec *items, const char *name, const char *what);
int sema_int_in(sema *S, const qkd_ast *f, long lo, long hi, const char *rule, long *out);

/* ---- sema_data.c ------------------------------------------------------------------------------ */
qkd_m_dataset *sema_check_dataset(sema *S, const qkd_ast *d);
/* The checked data set `ref` names; NULL after an error (or when it failed its own checks). */
qkd_m_dataset *sema_dataset_ref(sema *S, const qkd_ast *ref);

/* ---- sema_net.c ------------------------------------------------------------------------------- */
/* Layers from CALL nodes, args evaluated in env. Spans of each layer go to spans[]. */
int sema_build_layers(sema *S, const qkd_env *env, const qkd_vec *items, qkd_layer_spec **out, qkd_span **spans);
/* Checks shapes through layers; reports at the failing layer, with a note at `site`. */
int sema_check_shapes(sema *S, const qkd_layer_spec *L, const qkd_span *sp, int n, qkd_shape in, int implicit,
                      qkd_shape *result, qkd_span site);
/* The train { … } block of `owner` into t (and a teacher's augment/schedule into fit). */
int sema_check_train(sema *S, const qkd_ast *owner, qkd_m_train *t, qkd_fit *fit);
qkd_m_teacher *sema_check_teacher(sema *S, const qkd_ast *d);

/* ---- sema_student.c --------------------------------------------------------------------------- */
/* Builds student `d` against `data` (classes > 0: the class count heads must match); `site` is
 * the use, for notes. Returns 0, or -1 after reporting. */
int sema_build_student(sema *S, const qkd_ast *d, const qkd_m_dataset *data, int classes, qkd_m_student *st,
                       qkd_span site);
void sema_check_student_fields(sema *S, const qkd_ast *d);

/* ---- sema_exp.c ------------------------------------------------------------------------------- */
qkd_m_experiment *sema_check_experiment(sema *S, const qkd_ast *d);
#endif
