/* eval.h — compile-time evaluation of .qkd expressions (sema and lowering share it).
 * Values are numbers, strings, ranges, lists, or — in circuit bodies — an affine function of one
 * input feature (scale * x[i] + offset). Division and modulo by zero, non-affine angles and
 * unknown names are located errors; an error yields a value of kind QKD_V_ERR, which callers
 * propagate silently (one diagnostic per mistake).
 * Symbolic values, for checking a definition where it is written (no call, no student): a
 * parameter is QKD_V_ANY (its kind is not known either); `n`, `qubits` and loop variables are
 * numbers or ranges whose value is `unknown`. Whatever depends on them is unknown too (an
 * operator on ANY treats it as a number: any other kind fails at the use), so only what is
 * constant is checked — a division by a constant 0 is an error, a division by `n - n` is not. */
#ifndef QKD_EVAL_H
#define QKD_EVAL_H
#include "ast.h"

typedef enum { QKD_V_ERR, QKD_V_NUM, QKD_V_STR, QKD_V_RANGE, QKD_V_LIST, QKD_V_FEAT, QKD_V_ANY } qkd_vkind;

typedef struct qkd_value {
  qkd_vkind kind;
  double num;                 /* NUM */
  double lo, hi;              /* RANGE: lo..hi as written */
  const char *str;            /* STR */
  int n;                      /* LIST */
  struct qkd_value *items;
  int feat;                   /* FEAT: scale * x[feat] + offset */
  double scale, offset;
  int unknown;                /* NUM, RANGE, FEAT: the payload is not known (symbolic) */
} qkd_value;

/* A binding of a name to a value; environments are linked lists (innermost first). */
typedef struct qkd_env {
  const char *name;
  qkd_value value;
  const struct qkd_env *next;
} qkd_env;

typedef struct {
  qkd_arena *arena;
  qkd_diag *diag;
  int features_allowed; /* x[i] is legal (encoding/circuit bodies) */
  int max_feature;      /* largest x index read so far (-1 none) */
  qkd_span max_feature_span;
} qkd_eval;

qkd_value qkd_eval_expr(qkd_eval *ev, const qkd_env *env, const qkd_ast *e);
const qkd_value *qkd_env_lookup(const qkd_env *env, const char *name);
/* Numeric helpers: report at `e` and return -1 on a non-number / non-integer; return 1 (and
 * *out = NAN or 0) for a symbolic number or an ANY, whose value is checked at each use. */
int qkd_eval_int(qkd_eval *ev, const qkd_env *env, const qkd_ast *e, long *out);
int qkd_eval_num(qkd_eval *ev, const qkd_env *env, const qkd_ast *e, double *out);
/* A number whose value is not known, and a value whose kind is not known (symbolic values). */
qkd_value qkd_value_unknown(qkd_vkind kind);
/* `params` (IDENT nodes, a definition's) bound to ANY values, innermost first, onto `outer`. */
qkd_env *qkd_env_symbolic(qkd_arena *a, const qkd_vec *params, const qkd_env *outer);
const char *qkd_value_kind_name(qkd_vkind k);
#endif
