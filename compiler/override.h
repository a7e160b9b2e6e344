/* override.h — `--set PATH=VALUE` (spec §7): before checking, replace (or add) the field PATH
 * of a declaration with VALUE, a .qkd expression. PATH is the declaration's name then field
 * names: `exp.train.epochs`, `mnist.train_limit`, `qnn.circuit`. The value is parsed as its own
 * source named "--set PATH", so its errors are located there; sema checks it like any field. */
#ifndef QKD_OVERRIDE_H
#define QKD_OVERRIDE_H
#include "parse.h"

/* Returns 0, or -1 after reporting. */
int qkd_override_apply(qkd_arena *a, qkd_diag *d, qkd_program_ast *prog, const char *assignment);
#endif
