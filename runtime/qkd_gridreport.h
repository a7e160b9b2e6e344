/* qkd_gridreport.h — the grid side of a run directory (spec §9): the manifest DIR/grid.json
 * that every `qkdc run` of a program with grids writes, and `qkdc report`, which merges the
 * finished cells (DIR/cells/<cell>.json) of one or more run directories.
 *
 * Manifest: {"qkdc", "program" (a hash of every grid's cells and their keys), "grids": [{"name",
 * "experiment", "axes": [{"label", "values"}], "seeds", "seed_teachers", "cells": [{"name",
 * "key"}]}]}. Written atomically; identical for every slice of one program, so concurrent
 * `--cells K/N` runs (many nodes over NFS) may all write it.
 *
 * Report promises:
 *  - refuses directories whose manifests differ (another program, another version of it, other
 *    --set values), naming both; a cell counts only when its file has the manifest's key and
 *    finished; the others are named as missing (or stale: there, but from another key).
 *  - OUT/results.json: {"qkdc", "teachers", "experiments" (the plain experiments of the first
 *    DIR's results.json, then every cell's entry), "grids": [{"name", "experiment", "axes",
 *    "seeds", "cells", "missing", "rows"}]}; one row per combination of axis values, in the
 *    order the axes are written, with the axis labels as keys and n (seeds present),
 *    distilled_mean/std, baseline_mean/std, control_mean/std, kd_gain_mean/std (the paired
 *    distilled − baseline difference over seeds), teacher_mean/std (the teachers' own test
 *    accuracy), distilled_best_* and baseline_best_* (the best epoch on the test set: the v1
 *    notebooks' selection, for comparison only), teachers (distinct teachers), quantum_params, classical_params, control_params,
 *    seconds (mean per cell). Means and sample standard deviations (n − 1); a std of fewer than
 *    two values, or a mean of none, is null. Accuracies are last-epoch test accuracies.
 *    "spreads": for each axis whose label ends in "_seed" (a replication axis: teacher_seed) and
 *    each combination of the other axes, {"axis", the other axes' labels: values, n (cells),
 *    distilled_mean, std_over_axis (the std over the axis's values of their means over the
 *    seeds), std_over_seeds (the std over the seeds of their means over the axis), std_all};
 *    results.md shows them as a table under the grid's.
 *  - OUT/results.md: a table per grid (percent, mean ± std), with `runs` every run one by one
 *    (seed, teacher, last-epoch accuracies and the best epoch beside them), then the missing cells.
 *  - OUT/<grid>.svg: grouped bars of test error (1 − accuracy), one group per combination, one
 *    bar per run kind (distilled, baseline, control), whiskers of ± one std; with `compare`
 *    (a JSON array of {"grid"?, axis label: value name…, "accuracy" | "error", "label"?}) a
 *    marked reference value on each matching group.
 *  - all files written atomically (qkd_file.h); errors fill err (qkd_err.h) with the file or directory
 *    they are about. */
#ifndef QKD_GRIDREPORT_H
#define QKD_GRIDREPORT_H

#include <stddef.h>
#include <stdio.h>

#include "qkd_err.h"
#include "qkd_model.h"

int qkd_gridreport_write_manifest(const char *dir, const qkd_model *m, const char (*keys)[17], qkd_error *err);

/* Merges dirs[0..n) into out; prints a summary on log (may be NULL); runs != 0 adds every run's
 * table to results.md. 0, or -1 with err set. */
int qkd_gridreport(const char *const *dirs, int n_dirs, const char *out, const char *compare, int runs,
                   FILE *log, qkd_error *err);

#endif
