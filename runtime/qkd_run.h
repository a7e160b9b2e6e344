/* qkd_run.h — running a checked program (qkd_model.h): what `qkdc run` and the executables of
 * `qkdc build` do once the program is checked. Loads each data set once, trains (or loads from
 * the cache) every teacher, computes each teacher's logits once per data set, trains every
 * experiment's student with the program's loss ("distilled") and, with `baseline: true`, on `ce`
 * alone from the same initialisation, then writes the outputs into the run directory
 * (results.json, curves.csv, curves.svg, <experiment>.distilled.qkw / .baseline.qkw / .control.qkw,
 * and beside each the Python outputs of qkd_pyout.h; with export_qasm, <experiment>.distilled.qasm;
 * at the end DIR/teachers/NAME.KEY.npz, each teacher's weights) and prints a summary table on the
 * log. An output that cannot be written is reported and the run ends with exit 1; the experiment's
 * checkpoints stay (and a grid cell is not marked done), so the next run redoes it from them.
 *
 * The circuit kernels come from the caller (the JIT in qkdc, compiled-in kernels in a built
 * executable, or the interpreter), through kernel_for.
 * Returns the process exit code: 0, 1 (a data or user error, printed on the log as
 * qkd_error_text, "PATH: error: …", with the program's path when the error names no file),
 * 130 when stopped through *stop (finished outputs stay valid). */
#ifndef QKD_RUN_H
#define QKD_RUN_H

#include <stdio.h>

#include "qkd_data.h"
#include "qkd_err.h"
#include "qkd_kernel.h"
#include "qkd_model.h"

typedef struct {
  int threads;                  /* kernel and BLAS threads (>= 1) */
  volatile int *stop;           /* set by a signal handler to stop cleanly (may be NULL) */
  const char *out_dir;          /* the run directory */
  const char *const *overrides; /* the --set list, for provenance */
  int n_overrides;
  /* kernels for a student's circuit: 0, or -1 with err filled (a path is not needed: the run
   names the program); ms = compile time */
  int (*kernel_for)(void *ud, const qkd_ir_circuit *ir, qkd_kernel *k, double *ms, qkd_error *err);
  void (*kernel_release)(void *ud, qkd_kernel *k);
  void *kernel_ud;
  FILE *log;                    /* progress and summary (stderr) */
  int slice_k, slice_n;         /* --cells K/N: only the K-th of N slices of the cells (0: all,
                                   plus the plain experiments) */
  int fresh;                    /* --fresh: run finished cells again */
  int teachers_only;            /* --teachers-only: train (and cache) every teacher the program's
                                   experiments and cells need, then stop */
  int export_qasm;              /* --export qasm3|qasm2: 3 or 2 also writes <stem>.distilled.qasm, the
                                   distilled student's circuit for test sample 0 (qkd_qasm.h) */
} qkd_run_opts;

int qkd_run_program(const qkd_model *m, const qkd_run_opts *o);
/* The data-set options a run loads a checked data set with (qkd_data_load). */
void qkd_run_data_opts(const qkd_m_dataset *d, qkd_data_opts *o);

#endif
