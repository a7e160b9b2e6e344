/* driver.h — the steps `qkdc` and a built executable share: compile a program (parse, --set,
 * check) and run it with a given source of kernels. Also the fingerprint that ties a compiled
 * kernel to the circuit it was compiled for. */
#ifndef QKD_DRIVER_H
#define QKD_DRIVER_H
#include "parse.h"
#include "qkd_model.h"
#include "qkd_run.h"

/* Parse + overrides + checks; NULL after diagnostics. */
qkd_model *qkd_driver_compile(qkd_arena *a, qkd_diag *d, const char *path, const char *stdlib_dir,
                              const char *const *sets, int n_sets);
/* A 64-bit fingerprint of a lowered circuit (every field that shapes its kernels). */
uint64_t qkd_driver_ir_hash(const qkd_ir_circuit *ir);
/* Parses --cells K/N; -1 after printing the error. */
int qkd_driver_parse_slice(const char *v, int *k, int *n);
/* The default run directory runs/<file stem>. */
const char *qkd_driver_out_dir(qkd_arena *a, const char *file);
/* Installs the SIGINT and SIGTERM handlers (stop after the current batch, outputs consistent;
 * a second signal stops at once) and runs the program; returns the exit code: 130 after SIGINT,
 * 143 after SIGTERM. */
int qkd_driver_run(const qkd_model *m, qkd_run_opts *ro);
#endif
