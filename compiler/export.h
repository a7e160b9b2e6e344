/* export.h — `qkdc export FILE.qkd [--experiment E] [--run distilled|baseline] [--weights W.qkw]
 * [--format qasm3|qasm2] [--sample K | --features F] [--out DIR] [-o OUT]`: a checked
 * experiment's student circuit as OpenQASM (runtime/qkd_qasm.h) with its trained parameters
 * (from the run's .qkw: DIR/<experiment>.<run>.qkw, DIR/cells/<cell>.<run>.qkw for a grid cell;
 * the initial parameters, with a warning, when there is none) and, for a sample, its features
 * after pre (--sample K: image K of the test split, through the trained pre; --features F: a
 * comma-separated list, or @PATH, a file of numbers separated by commas or white space).
 * Writes OUT atomically (stdout without -o). Returns the exit code: 0, or 1 after printing
 * "PATH: error: …" (the file concerned, or the program). */
#ifndef QKD_EXPORT_H
#define QKD_EXPORT_H

#include "arena.h"
#include "qkd_model.h"

typedef struct {
  const char *experiment, *run, *weights, *format, *sample, *features, *out, *out_dir;
} qkd_export_opts;

int qkd_export_command(qkd_arena *a, const qkd_model *m, const qkd_export_opts *o);

#endif
