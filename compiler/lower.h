/* lower.h — lowering of `encoding` and `circuit` bodies into the flat circuit IR (qkd_ir.h):
 * binds the call's arguments to the declaration's parameters, unrolls `for` loops, folds
 * constants, numbers trainable parameters in order of appearance, and gives each gate its kind,
 * qubits and angle source. Two passes over a body:
 *  - qkd_lower_check, once per definition where it is written (no call, no student): the
 *    parameters, loop variables, `n` and `qubits` are symbolic (eval.h) and every statement is
 *    checked once — unknown gates and names, arity, named arguments, constant qubit indices
 *    (integers, not negative, not repeated in one gate), constant division or modulo by zero,
 *    non-affine angles, loops over what is not a range or a list;
 *  - qkd_lower_call, per use with the student's qubit count (errors point at the gate and name
 *    the loop values): qubit indices out of range or repeated in one gate, non-constant
 *    divisions by zero, circuits of more than QKD_LOWER_MAX_GATES gates. A definition that
 *    fails its check is never lowered (sema), so its errors are reported once. */
#ifndef QKD_LOWER_H
#define QKD_LOWER_H
#include "eval.h"
#include "qkd_ir.h"

#define QKD_LOWER_MAX_GATES 1000000

typedef struct {
  qkd_arena *arena;
  qkd_diag *diag;
  int n_qubits;
  qkd_ir_gate *gates;
  int n_gates, cap;
  int n_params;
  int max_feature;         /* largest x[i] read, -1 if none */
  qkd_span max_feature_span;
  int symbolic;            /* set by qkd_lower_check: no student, no gates kept */
} qkd_lower;

/* Checks the body of `decl` (ENCODING or CIRCUIT) where it is written; reports every error it
 * finds. Returns 0, or -1 after reporting. */
int qkd_lower_check(qkd_arena *arena, qkd_diag *diag, const qkd_ast *decl);

/* Binds `args` (CALL node or NULL for no arguments; `site` for messages) to the parameters of
 * `decl` (ENCODING or CIRCUIT) and appends its gates. The arguments may use `qubits` (the
 * qubit count, spec §9); inside the body `qubits` is the range 0..n and `n` the count. Returns 0, or -1 after reporting. */
int qkd_lower_call(qkd_lower *L, const qkd_ast *decl, const qkd_ast *args, qkd_span site);
/* Only binds the call's arguments (for a definition that failed its check: the call's own
 * errors are still reported). Returns 0, or -1 after reporting. */
int qkd_lower_bind(qkd_lower *L, const qkd_ast *decl, const qkd_ast *args, qkd_span site);
/* Binds a call's arguments (positional, then named) to a declaration's parameters into an
 * environment; reports unknown/missing/duplicate arguments. Shared with sema (nets, losses). */
int qkd_bind_args(qkd_eval *ev, const qkd_ast *decl, const qkd_ast *call, qkd_span site,
                  const qkd_env *outer, qkd_env **out);
/* The same, with the arguments evaluated in `arg_env` and the bindings chained onto `outer`. */
int qkd_bind_args_in(qkd_eval *ev, const qkd_ast *decl, const qkd_ast *call, qkd_span site,
                     const qkd_env *arg_env, const qkd_env *outer, qkd_env **out);
#endif
