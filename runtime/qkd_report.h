/* qkd_report.h — the outputs of `qkdc run` (spec §7, §8): results.json, curves.csv and
 * curves.svg in the run directory, the summary table printed at the end of a run, and the student
 * weights files (<experiment>.distilled.qkw / .baseline.qkw).
 *
 * Owns: nothing. A qkd_report is a plain description that the driver fills; every pointer in it
 * (names, per-epoch arrays, results) is borrowed and must stay valid until the call returns.
 *
 * Promises:
 *  - qkd_report_write creates DIR with mkdir -p semantics and writes curves.csv, curves.svg, then
 *    results.json. Every file is written with qkd_file_write_atomic (qkd_file.h) and renamed
 *    over FILE: a reader never sees a torn file, a previous valid file stays until its
 *    replacement is complete, and no temporary file is left behind when a write fails (a process
 *    killed mid-write may leave a stale FILE.tmp.*, never a torn FILE).
 *  - results.json follows spec §8: {"qkdc", "teachers", "experiments"}. Every accuracy is the
 *    LAST epoch's value (null when no epoch finished), next to the per-epoch list it came from.
 *    Experiments carry "control" like "baseline" and "student.control_params" (null without a
 *    control). The JSON is valid UTF-8 JSON (qkd_json.h): strings escaped (quotes, backslashes, control characters,
 *    invalid UTF-8 bytes become U+FFFD), numbers printed in the shortest form that round-trips
 *    (at most 17 significant digits), NaN and ±Inf written as null, NULL strings as null.
 *  - curves.csv: a header, then one row per experiment per epoch (1-based):
 *    experiment,epoch,teacher_test_accuracy,baseline_train_loss,baseline_test_accuracy,
 *    distilled_train_loss,distilled_test_accuracy,distilled_validation_accuracy; a cell is empty
 *    where the value is absent or not finite; names are quoted per RFC 4180 when needed. The
 *    teacher column is the teacher's accuracy on the experiment's test split (the teacher does not
 *    change while the student trains), repeated on every row.
 *  - curves.svg: a self-contained SVG 1.1 document (starts with "<svg"), one panel per
 *    experiment stacked vertically: test accuracy (0..1) against epoch, with axes, ticks, labels,
 *    one <polyline> per present series (teacher dashed, baseline, distilled) and a legend.
 *  - qkd_report_summary prints an aligned text table; it never fails (write errors are the
 *    stream's).
 *  - Weights files, little-endian: "QKDW", u32 version (QKD_REPORT_WEIGHTS_VERSION), "STDN" (a
 *    student's weights, as opposed to a teacher cache, qkd_teacher.h), u32 name length, the name
 *    bytes, u64 P, u64 n, f64 circuit_params[P], f32 classical[n], u64 FNV-1a checksum of every
 *    byte before it. Written like the reports (temp file + rename); the reader checks the magic,
 *    version, tag, sizes against the file length (before allocating anything proportional to the
 *    header) and the checksum.
 *  - Nothing prints (except qkd_report_summary on its stream) or exits: errors return -1 with
 *    err (qkd_err.h) filled, path = the file (or directory) concerned. */
#ifndef QKD_REPORT_H
#define QKD_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "qkd_data.h"
#include "qkd_teacher.h"
#include "qkd_train.h"

#define QKD_REPORT_WEIGHTS_VERSION 1

/* One entry of "teachers". */
typedef struct {
  const char *name;
  const char *dataset;              /* the teacher's data set declaration */
  const qkd_teacher_result *result; /* params, epochs, test_accuracy[], seconds, cached */
} qkd_report_teacher;

typedef struct {
  const char *name;                 /* NULL: the experiment has no teacher ("teacher": null) */
  long params;
  double test_accuracy;             /* on this experiment's test split (NaN: null) */
} qkd_report_exp_teacher;

/* One entry of "experiments". */
typedef struct {
  const char *experiment, *dataset, *source;
  int classes, qubits;
  qkd_report_exp_teacher teacher;
  /* The distilled and baseline runs. NULL writes null: baseline when the experiment has none;
   * distilled only when the run stopped before it began. "student" {quantum_params,
   * classical_params}, "samples_per_s" and "zero_vectors" come from distilled (else baseline). */
  const qkd_student_result *distilled;
  const qkd_student_result *baseline;
  const qkd_student_result *control; /* the classical control (spec §9), or NULL: null */
  struct { double teacher, baseline, distilled, control, jit, total; } seconds;
  const char *loss;                 /* the loss, formatted (qkd_loss_format) */
  long long seed;                   /* provenance: the experiment's training seed */
  const qkd_data_file *data_files;  /* provenance: the data set's files (qkd_dataset.files) */
  int n_data_files;
  int completed;                    /* 0 when interrupted: the lists hold the finished epochs */
} qkd_report_experiment;

typedef struct {
  const char *qkdc;                 /* version; NULL: QKD_VERSION (the build's) */
  const qkd_report_teacher *teachers;
  int n_teachers;
  const qkd_report_experiment *experiments;
  int n_experiments;
  int threads;                      /* provenance, the same for every experiment */
  const char *const *overrides;     /* provenance: the --set list, as given */
  int n_overrides;
} qkd_report;

/* A finished grid cell (spec §9), written by qkd_report_write_cell to DIR/cells/<name>.json: its
 * experiment entry (as in results.json) with "cell", "grid", "key", "axes" {label: value name},
 * "seed" and "teacher_training" (the teacher's own training: name, seed, test_accuracy,
 * test_accuracy_per_epoch, seconds, cached) in front. */
typedef struct {
  const char *name, *grid, *key;
  int n_axes;
  const char *const *labels, *const *values;
  int seed;
  const char *teacher_name;
  int teacher_seed;
  const qkd_teacher_result *teacher; /* NULL: no teacher */
} qkd_report_cell;

int qkd_report_write_cell(const char *path, const qkd_report *report, const qkd_report_experiment *e,
                          const qkd_report_cell *cell, qkd_error *err);

/* Writes DIR/results.json, DIR/curves.csv, DIR/curves.svg. 0, or -1 with err set. */
int qkd_report_write(const char *dir, const qkd_report *report, qkd_error *err);

/* The table for the end of `qkdc run`: experiment, qubits, teacher / baseline / distilled test
 * accuracy (percent), Δ = distilled − baseline in points, seconds (total). */
void qkd_report_summary(const qkd_report *report, FILE *out);

/* Writes a student's final weights (qkd_student_result.circuit_params / .classical) to path. */
int qkd_report_write_weights(const char *path, const char *name, const double *circuit_params, long P,
                             const float *classical, long n, qkd_error *err);

typedef struct {
  char *name;
  long n_circuit;
  double *circuit_params;           /* [n_circuit] (NULL when 0) */
  long n_classical;
  float *classical;                 /* [n_classical] (NULL when 0) */
} qkd_report_weights;

/* Reads and validates a weights file into w (malloc'd; free with qkd_report_weights_free). On
 * failure returns -1 with err set and *w empty. */
int qkd_report_read_weights(const char *path, qkd_report_weights *w, qkd_error *err);
void qkd_report_weights_free(qkd_report_weights *w);

#endif
