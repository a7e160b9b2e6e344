/* override.h — setting a field of a declaration before checking: `--set PATH=VALUE` (spec §7)
 * and the values of grid axes and seeds (spec §9). PATH is the declaration's name then one or
 * two field names: `exp.train.epochs`, `mnist.train_limit`, `qnn.circuit`.
 *
 * Promises: a set is copy-on-write — the declaration (and the block holding the field) is
 * copied into the arena and the copy replaces the original in `prog->decls` only; any other
 * program that shares the original nodes (another grid cell) is unaffected. A field that is
 * absent is added. Errors are located at `at` (a span of -1 means "no location": --set). */
#ifndef QKD_OVERRIDE_H
#define QKD_OVERRIDE_H
#include "parse.h"

/* --set PATH=VALUE: VALUE is parsed as its own source named "--set PATH", so its errors are
 * located there. Returns 0, or -1 after reporting. */
int qkd_override_apply(qkd_arena *a, qkd_diag *d, qkd_program_ast *prog, const char *assignment);

/* Sets PATH to the expression `value` (its span is kept, so sema's errors point at it). `what`
 * names the setter in messages ("--set x.y", "axis field 'qnn.qubits'"). Returns 0, or -1. */
int qkd_override_set(qkd_arena *a, qkd_diag *d, qkd_program_ast *prog, const char *path, qkd_ast *value,
                     qkd_span at, const char *what);

/* Checks PATH's shape (a declaration and one or two field names) and that the declaration
 * exists and has fields; returns the declaration, or NULL after reporting. */
qkd_ast *qkd_override_target(qkd_diag *d, const qkd_program_ast *prog, const char *path, qkd_span at,
                             const char *what);
#endif
