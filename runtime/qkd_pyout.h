/* qkd_pyout.h — the outputs of a run for Python (issue J item 4, docs/python.md): beside each
 * student weights file STEM.RUN.qkw (RUN = distilled, baseline, control),
 *   STEM.RUN.npz              the run's parameters as named arrays (numpy.load reads it)
 *   STEM.RUN.test_logits.npy  its logits on the test split after the last epoch
 * and, once per experiment (the runs share the test split), STEM.test_labels.npy; and a teacher's
 * weights, named the same way.
 *
 * Owns: the array names, shapes and dtypes (one place; docs/python.md lists them). Nothing else.
 *
 * Promises:
 *  - names: `pre.weight`/`pre.bias` (pre: dense(k)); `pre.I.weight`, `pre.I.bias` and, for a
 *    batchnorm, `pre.I.running_mean`, `pre.I.running_var` (pre: net { … }, I = the layer's
 *    0-based index in the written list, activations and pools counted, as in a PyTorch
 *    nn.Sequential's state_dict); `pre.mean` [D], `pre.basis` [D][k] (pre: pca(k));
 *    `circuit.theta` [P] float64 (not in a control run); `control.weight` [O][R],
 *    `control.bias` [O] and, for a matched control that projects, `control.projection` [R][F];
 *    `head.weight` [C][O], `head.bias` [C] (head: dense); `classes` [C] int64, the original label
 *    of each renumbered class. Weights are float32, row-major, in qkd's (PyTorch's) layouts:
 *    dense [out][in], conv [filters][in channels][k][k]. The arrays' sizes add up to the run's
 *    parameter counts, or the write is an internal error.
 *  - test logits [test n][C]: the values the run's last test accuracy was counted from (argmax,
 *    first maximum on ties = numpy.argmax), float32 when they are float32 values in qkd (head:
 *    dense, precision: f32, a control run), else float64. Labels: int64 [test n], 0..C−1.
 *  - every file goes through qkd_npy_save / qkd_npz_save (atomic: temp file + rename); a failure
 *    returns -1 with err naming the file, and leaves that file as it was. */
#ifndef QKD_PYOUT_H
#define QKD_PYOUT_H

#include "qkd_data.h"
#include "qkd_err.h"
#include "qkd_model.h"
#include "qkd_nn.h"
#include "qkd_train.h"

/* STEM.RUN.npz and STEM.RUN.test_logits.npy for one finished run of e on ds; run names the kind
 * ("distilled", …). */
int qkd_pyout_write_run(const char *stem, const char *run, qkd_run_kind kind, const qkd_m_experiment *e,
                        const qkd_dataset *ds, const qkd_student_result *res, qkd_error *err);
/* STEM.test_labels.npy: ds's test labels. */
int qkd_pyout_write_labels(const char *stem, const qkd_dataset *ds, qkd_error *err);
/* PATH (.npz): teacher t's trained (or loaded) net on ds, named like a pre net with the prefix
 * `net` (`net.I.weight`, …; a mean net's members `net.members.M.I.weight`, …), and `classes`. */
int qkd_pyout_write_teacher(const char *path, const qkd_m_teacher *t, const qkd_dataset *ds, qkd_nn *net,
                            qkd_error *err);

#endif
