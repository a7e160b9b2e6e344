/* qkd_teacher.h — training a classical net (a teacher, or any qkd_net_spec) on a data set with a
 * recipe, its weights cache, evaluation, and the teacher logits used for distillation.
 *
 * Owns: the trained qkd_nn in a result (free with qkd_teacher_result_free) and the per-epoch
 * figures. The job's pointers (spec, data set, options) are borrowed.
 *
 * Promises:
 *  - training is a function of (spec, data, recipe): init from recipe.seed, epoch e shuffled by
 *    qkd_nn_shuffle(seed, QKD_STREAM_SHUFFLE, e), dropout step = the global batch number; the last partial batch is
 *    kept (PyTorch's drop_last = False); loss = mean softmax CE (for a `mean` net, CE of the
 *    averaged logits: the members are trained jointly with one optimizer, paper §4.3). The
 *    spec's fit (qkd_net.h) adds augmentation of every training batch (qkd_data_augment with
 *    recipe.seed and the epoch) and the learning rate lr * qkd_nn_schedule(kind, global batch
 *    number, epochs * batches per epoch). Evaluation is in evaluation mode (batchnorm's running
 *    statistics, no dropout, no augmentation).
 *  - the weights cache (when cache_path is set) is used only when its 64-bit key equals the key
 *    of this job — architecture, input shape, the whole recipe and seed (with the spec's fit), the data-set options
 *    and the data files' identity (base names and sizes) — and its checksum verifies; otherwise
 *    the net is retrained with a warning through `note` and the cache rewritten. Files are
 *    written with qkd_file_write_atomic (qkd_file.h), so a reader never sees a torn file.
 *    Format (little-endian): "QKDW" u32 version, u64 key, u64 n_params, u64 n_state, u32 n_epochs,
 *    f64 test_accuracy[n_epochs], f32 params[n_params], f32 state[n_state] (batchnorm's running
 *    statistics, qkd_nn_state), u64 FNV-1a checksum of all before it.
 *  - nothing prints or exits: progress and warnings go to `note` (may be NULL), errors come back
 *    in err (qkd_err.h) with path = the job's name (the recipe, the net against the data,
 *    memory). The cache is never an error: one that cannot be opened (kind IO from
 *    qkd_cache_load) is the normal first run, retrained silently; any other unusable one is
 *    retrained with the note "PATH: warning: MSG; retraining NAME" made from the cache error's
 *    path and message; a failed save is the note "PATH: error: MSG (continuing without the
 *    cache)". */
#ifndef QKD_TEACHER_H
#define QKD_TEACHER_H

#include <stddef.h>
#include <stdint.h>

#include "qkd_data.h"
#include "qkd_err.h"
#include "qkd_nn.h"

#define QKD_CACHE_VERSION 2 /* 2: the state block */

typedef struct {
  int optimizer;            /* QKD_NN_ADAM or QKD_NN_SGD */
  double lr, beta1, beta2;  /* adam(lr, beta1: 0.9, beta2: 0.999) */
  double momentum;          /* sgd(lr, momentum: 0) */
  int epochs, batch;
  uint64_t seed;            /* [1] */
} qkd_recipe;

typedef void (*qkd_note_fn)(void *ctx, const char *text);

typedef struct {
  const char *name;               /* for messages */
  const qkd_net_spec *net;        /* input: the data set's image shape; output: n_classes */
  const qkd_dataset *data;        /* loaded */
  const qkd_data_opts *data_opts; /* the options it was loaded with (cache key); may be NULL */
  qkd_recipe recipe;
  const char *cache_path;         /* NULL: no cache */
  int threads;                    /* BLAS threads; < 1 leaves the setting alone */
  qkd_note_fn note;               /* progress and warnings; may be NULL */
  void *note_ctx;
} qkd_teacher_job;

typedef struct {
  qkd_nn *net;                    /* the trained (or loaded) net */
  long params;
  int epochs;
  double *test_accuracy;          /* [epochs] per epoch (from the cache when cached) */
  double *val_accuracy;           /* [epochs] when the data set has a validation split, else NULL */
  double *train_loss;             /* [epochs] (NULL when cached) */
  double seconds;                 /* wall time of the whole call */
  double train_seconds;           /* time in the training loop only (no evaluation) */
  long train_images;              /* images processed by the training loop */
  int cached;                     /* 1: weights came from the cache */
  const char *logits;             /* a teacher given by its logits: its training logits file
                                     (borrowed); then net is NULL, params -1, one "epoch" whose
                                     accuracy is that of its test logits */
} qkd_teacher_result;

int qkd_teacher_train(const qkd_teacher_job *job, qkd_teacher_result *res, qkd_error *err);
void qkd_teacher_result_free(qkd_teacher_result *res);

/* Accuracy of net on a split (evaluation mode), in batches of the net's max batch; confusion
 * (may be NULL) [C][C] += counts (row = true label). */
double qkd_nn_evaluate(qkd_nn *net, const qkd_dataset *ds, const qkd_split *split, long *confusion);

/* Logits [split->n][C] of net on every image of split, in order (evaluation mode); malloc'd,
 * NULL on OOM. Compute once per data set and reuse for distillation. */
float *qkd_teacher_logits(qkd_nn *net, const qkd_dataset *ds, const qkd_split *split);

/* A teacher given by its logits: train_path and test_path hold (rows, C) float32/float64 arrays
 * (.npy) whose row i is item i of the source's training / test split before the data set's
 * options (orig_index, qkd_data.h). When C is the source's label count (ds->source_classes),
 * column L is original label L and the data set's classes pick their columns; otherwise C must be
 * ds->n_classes and the columns are the data set's classes in order. Gives the logits of ds's
 * training split [ds->train.n][ds->n_classes] (malloc'd) and the accuracy of the test logits on
 * ds's test split (argmax, ties to the first). -1 with err (path = the file) on a missing or
 * malformed file, rows too few for the data set's items, a column count that fits neither rule,
 * or a value that is not finite. */
int qkd_teacher_from_logits(const char *train_path, const char *test_path, const qkd_dataset *ds, const qkd_data_opts *o,
                            float **train_logits, double *test_accuracy, qkd_error *err);

/* The cache key of a job (exposed for tests and provenance). */
uint64_t qkd_cache_key(const qkd_net_spec *net, qkd_shape in, const qkd_recipe *r, const qkd_data_opts *o,
                       const qkd_dataset *ds);
/* Writes a cache file atomically. */
int qkd_cache_save(const char *path, uint64_t key, const float *params, long n_params, const float *state,
                   long n_state, const double *acc, int n_epochs, qkd_error *err);
/* 0: params [n_params], state [n_state] and acc [n_epochs] filled. -1: not usable, the reason in
 * err: kind IO when the file cannot be opened (missing), FORMAT when it is torn or of another
 * version, key or size, or fails its checksum, MEMORY; nothing is written to params, state or
 * acc then. */
int qkd_cache_load(const char *path, uint64_t key, float *params, long n_params, float *state, long n_state,
                   double *acc, int n_epochs, qkd_error *err);

#endif
