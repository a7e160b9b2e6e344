/* qkd_train.h — training and evaluating a hybrid student (spec §2 `student`, issue D):
 *   image → pre (none | dense | net | pca | pools | crop) → features → circuit kernel (exact or
 *   shot-sampled) → outputs → head (dense(C) | none) → logits → loss (qkd_loss.h).
 * Backward runs through all of it: the loss gradient flows into the head, the adjoint VJP of the
 * circuit (or parameter shift, `gradient: parameter_shift`) gives the gradients of the circuit
 * parameters and of the features, and a trainable pre trains with the circuit.
 *
 * Promises:
 *  - Every random choice derives from the recipe's seed: the initialisation (pre, circuit, head),
 *    the epoch shuffles, dropout masks and shot draws. Same seed, same bits (for a given kernel
 *    engine and thread count; BLAS reductions aside).
 *  - A baseline run (use_program_loss = 0: `ce` alone) starts from the same initialisation as the
 *    distilled run.
 *  - Accuracies are measured after every epoch on the test split (and on the validation split
 *    when it is not empty); the reported accuracy is the last epoch's. Nothing is selected on
 *    the test set.
 *  - Teacher logits, when the loss needs them, are given once for the training split (computed
 *    by the caller in evaluation mode), indexed by the split's row.
 *  - Errors are returned in a qkd_error (qkd_err.h) without a path (the caller names the
 *    program): "experiment 'E': …", a net's or a reduction's message, a checkpoint's
 *    ("PATH: a checkpoint of another shape (remove it to start over)"); nothing here prints
 *    except the progress and note callbacks. */
#ifndef QKD_TRAIN_H
#define QKD_TRAIN_H

#include "qkd_data.h"
#include "qkd_err.h"
#include "qkd_kernel.h"
#include "qkd_model.h"
#include "qkd_traj.h"

/* What runs of one process share: fitted PCAs (per data set and k), so a grid's baseline,
 * distilled and control runs and its seeds fit each PCA once. Owned by the caller. */
typedef struct qkd_train_cache qkd_train_cache;
qkd_train_cache *qkd_train_cache_new(void);
void qkd_train_cache_free(qkd_train_cache *c);

typedef struct {
  int threads;                       /* kernel threads (batch split) */
  qkd_train_cache *cache;            /* may be NULL; its data sets must outlive it */
  volatile int *stop;                /* set asynchronously (Ctrl-C): training stops after the
                                        current batch and returns 1 */
  /* progress: called after every batch and every epoch (may be NULL) */
  void (*progress)(void *ud, const char *phase, int epoch, int epochs, long step, long steps, double loss,
                   double samples_per_s);
  void *progress_ud;
  /* Checkpoints: when set, the run writes its whole state there (atomically) after every epoch —
   * parameters, batchnorm statistics, optimizer moments and step counts, the global step (every
   * random stream is keyed by seed, epoch and step, so this is their position), the curves so
   * far and the training time — and, when a checkpoint with checkpoint_key is already there,
   * resumes from it (saying "resuming 'NAME' KIND from epoch K" through note) and finishes
   * bit-identical to a run that was never interrupted. A checkpoint with another key (another
   * program, data or thread count) is ignored with a note. */
  const char *checkpoint;
  uint64_t checkpoint_key;
  const char *name;                  /* for the resume message (the cell or experiment) */
  void (*note)(void *ud, const char *text); /* called with progress_ud */
  /* eval_noise: the kernel of the same circuit with other noise, for the test split only (NULL:
   * the training kernel); validation and training use the training kernel; a control ignores it */
  const qkd_kernel *eval_kernel;
  /* Trajectories (qkd_traj.h): when the student's circuit (or eval_noise's) runs as Monte-Carlo
   * trajectories, its plan; the kernel (eval_kernel) then runs traj->circuit (eval_traj->circuit).
   * NULL: the kernel runs the circuit itself. */
  const qkd_traj *traj, *eval_traj;
} qkd_train_opts;

typedef struct {
  int epochs;                        /* epochs completed */
  double *test_accuracy;             /* [epochs] */
  double *validation_accuracy;       /* [epochs], NULL when there is no validation split */
  double *train_loss;                /* [epochs] mean loss over the epoch's samples */
  double seconds;                    /* the whole run (training and evaluation) */
  double train_seconds;              /* the training loop only */
  double samples_per_s;              /* training samples / train_seconds */
  long quantum_params, classical_params; /* a control run: 0 and all of its parameters */
  long zero_vectors;                 /* amplitude-encoded all-zero feature vectors met */
  int checkpoint_failed;             /* a checkpoint could not be written (noted; the run went on) */
  double *circuit_params;            /* [quantum_params] final values (for the .qkw file) */
  float *classical;                  /* [classical_params] pre then head (for the .qkw file) */
  /* For the Python outputs (qkd_pyout.h): */
  double *test_logits;               /* [n_test_logits] = [test n][C]: the logits on the test split
                                        after epoch test_logits_epoch (the last finished one),
                                        exactly those its test accuracy was counted from */
  long n_test_logits;
  int test_logits_epoch;
  float *state;                      /* [n_state] pre's state block (batchnorm running statistics) */
  long n_state;
  float *fixed;                      /* [n_fixed] untrained values: a pca pre's mean [D] and basis
                                        [D][k], then a matched control's projection [R][F] */
  long n_fixed;
} qkd_student_result;

/* Which run of an experiment: the baseline (ce alone), the distilled run (the program's loss) or
 * the classical control (spec §9, the program's loss): encoding, circuit and measurement replaced
 * by dense(O) tanh from the same F pre features to the circuit's O outputs. `control: classical`
 * uses all F features; `control: matched` keeps the layer within the circuit's P trainable
 * parameters: when F·O + O > P, a fixed (seeded, untrained) Gaussian projection N(0, 1/F) maps
 * the F features to R = qkd_train_matched_width(F, O, P) values first, the largest R with
 * R·O + O <= P (at least 1). Pre and head are initialised exactly as in the other runs. */
typedef enum { QKD_RUN_BASELINE = 0, QKD_RUN_DISTILLED = 1, QKD_RUN_CONTROL = 2 } qkd_run_kind;
int qkd_train_matched_width(int F, int O, int P);

/* Trains e->student on ds with e->train; `kernel` runs e->student.circuit. teacher_train:
 * the teacher's logits on the training split [train n][C] (float), or NULL when the loss reads
 * no teacher. Returns 0, 1 when stopped by opts->stop (the result holds the finished epochs), or
 * -1 with err filled. */
int qkd_train_student(const qkd_m_experiment *e, const qkd_dataset *ds, const qkd_kernel *kernel,
                      qkd_run_kind kind, const float *teacher_train, const qkd_train_opts *opts,
                      qkd_student_result *out, qkd_error *err);
void qkd_student_result_free(qkd_student_result *r);
/* A deep copy (for runs shared between cells); 0, or -1 on out of memory (dst empty). */
int qkd_student_result_copy(qkd_student_result *dst, const qkd_student_result *src);

/* A student held outside a training loop: for gradient checks (tests) and tools. Parameters are
 * one flat vector: pre (float), then circuit (double), then head (float). */
typedef struct student qkd_student;
qkd_student *qkd_student_create(const qkd_m_experiment *e, const qkd_dataset *ds, const qkd_kernel *kernel,
                                int threads, qkd_error *err);
/* The same for one kind of run (QKD_RUN_CONTROL: the experiment's control, classical when it has
 * none); parameters are pre, circuit, the control's layer, head. */
qkd_student *qkd_student_create_run(const qkd_m_experiment *e, const qkd_dataset *ds, const qkd_kernel *kernel,
                                    qkd_run_kind kind, int threads, qkd_error *err);
void qkd_student_destroy(qkd_student *s);
long qkd_student_param_count(const qkd_student *s);
void qkd_student_get_params(qkd_student *s, double *out);
void qkd_student_set_params(qkd_student *s, const double *in);
/* Loss of training rows idx[0..n) (n <= batch) in evaluation mode (no dropout, exact outputs),
 * and, when grad is not NULL, its gradient w.r.t. every parameter (same order). teacher: logits
 * of the whole training split, or NULL. */
double qkd_student_loss_grad(qkd_student *s, const qkd_loss *loss, const int *idx, int n, const float *teacher,
                             double *grad);

/* The circuit parameters every run of e starts from (the recipe's seed), into theta[P]. */
void qkd_student_initial_circuit(const qkd_m_experiment *e, double *theta);
/* The features (after pre, as the circuit reads them) of image `row` of split sp of ds, into
 * features[e->student.circuit.n_features]: with a trained pre's weights `classical` (a .qkw's
 * classical parameters: pre, then head) or, when classical is NULL, its initialisation; a PCA
 * is fitted on ds's training split as training fits it. 0, or -1 with err (kind INPUT, no path:
 * a row outside the split, a count that is not the student's; a net's error; MEMORY). */
int qkd_student_sample_features(const qkd_m_experiment *e, const qkd_dataset *ds, const qkd_split *sp, int row,
                                const float *classical, long n_classical, double *features, qkd_error *err);

#endif
