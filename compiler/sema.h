/* sema.h — semantic checks and the program model.
 * qkd_sema_check walks every declaration of a parsed program: names and duplicates; every
 * circuit, encoding, net and loss where it is written, used or not, with its parameters
 * symbolic (each error of a definition is reported once, there); fields and their values, net
 * shapes from the data set's image shape, feature counts between `pre`, the encoding and x[i],
 * measurement and head sizes against the class count, losses (kl/mse need a teacher), training
 * recipes, and lowers every student's circuit to the flat IR (lower.h).
 * Reports every error it finds (located, file:line:col); returns the model only when there
 * were none — nothing downstream ever sees an unchecked program. */
#ifndef QKD_SEMA_H
#define QKD_SEMA_H
#include "parse.h"
#include "qkd_model.h"

/* `root_path` is the .qkd file the program was loaded from (relative paths in it resolve
 * against its directory). Returns NULL after reporting errors. */
qkd_model *qkd_sema_check(qkd_arena *a, qkd_diag *d, const qkd_program_ast *prog, const char *root_path);
/* For `qkdc sim`: lowers `circuit_call` (a .qkd call such as "strong(layers: 2)"), preceded by
 * the encoding `encode` ("amplitude", a call of an `encoding`, or NULL for none), on n qubits,
 * measuring `measure`, with the channels of `noise` (a noise: value as text, docs/language.md,
 * or NULL). With amplitude, n_features = `amp_features` (1..2^n). Returns 0, or -1 after
 * reporting. */
int qkd_sema_sim_circuit(qkd_arena *a, qkd_diag *d, const qkd_program_ast *prog, const char *circuit_call,
                         const char *encode, const char *noise, int n, int amp_features, qkd_ir_circuit *out);
#endif
