/* qkd_model.h — the checked program model: what the front end (compiler/sema.c) produces and
 * the trainer, the reports and `qkdc build` executables consume. Plain structs, no behaviour.
 * Every value here has passed the semantic checks: counts are in range, shapes agree, names
 * resolve. Lines are 1-based source lines kept for run-time messages. Strings and arrays live
 * in the compile's arena (or the executable's static data); nothing is freed individually. */
#ifndef QKD_MODEL_H
#define QKD_MODEL_H

#include "qkd_ir.h"
#include "qkd_net.h"

typedef enum {
  QKD_SRC_NAMED,     /* "mnist", "fashion-mnist", "cifar10": found on the data path */
  QKD_SRC_DIR,       /* a directory holding the standard files (IDX, CIFAR-10, .npy), or a .npz */
  QKD_SRC_SYNTHETIC  /* generated from `seed` */
} qkd_source_kind;

typedef enum { QKD_SCALE_UNIT = 0, QKD_SCALE_STANDARD } qkd_scale_kind;

typedef struct {
  const char *name;
  const char *source;      /* as written ("mnist", a path, "synthetic") */
  qkd_source_kind source_kind;
  const char *dir;         /* QKD_SRC_DIR: resolved relative to the .qkd file */
  int n_classes;           /* C: labels are renumbered 0..C-1 */
  int *classes;            /* [C] original labels, in order */
  int per_class;           /* 0 = all */
  int train_limit, test_limit; /* 0 = no limit */
  int validation;          /* images held out of the training split */
  qkd_scale_kind scale;
  int c, h, w;             /* image shape */
  int seed;                /* synthetic only */
  int source_classes;      /* label range of the source (10 for the named sets) */
  int n_train_source, n_test_source; /* rows of the source's splits before any option */
} qkd_m_dataset;

typedef enum { QKD_OPT_ADAM = 0, QKD_OPT_SGD } qkd_opt_kind;

typedef struct {
  qkd_opt_kind optimizer;
  double lr, beta1, beta2, momentum;
  int epochs, batch;
  int seed;
} qkd_m_train;

typedef struct {
  const char *name;
  qkd_net_spec net;        /* input: the dataset's image shape; output: n_classes logits */
  const qkd_m_dataset *data;
  qkd_m_train train;
  const char *cache;       /* resolved path, or NULL */
  long params;
  /* A teacher given by its logits (no net, no train): resolved .npy paths of (N, C) float arrays
   * whose rows are those of the data set's source splits before its options; C is the data set's
   * class count or its source's label count (then the selected classes' columns are used). */
  const char *logits, *test_logits;
  int logits_classes;      /* C */
} qkd_m_teacher;

/* A loss is an expression over scalar terms, evaluated per batch. */
typedef enum {
  QKD_LOSS_NUM,  /* value */
  QKD_LOSS_CE,   /* softmax cross-entropy with the labels */
  QKD_LOSS_KL,   /* KL(softmax(teacher/T) || softmax(student/T)), T = value */
  QKD_LOSS_MSE,  /* mean squared error between student and teacher logits */
  QKD_LOSS_ADD, QKD_LOSS_SUB, QKD_LOSS_MUL, QKD_LOSS_DIV, QKD_LOSS_POW, QKD_LOSS_NEG
} qkd_loss_kind;

typedef struct qkd_loss {
  qkd_loss_kind kind;
  double value;
  struct qkd_loss *a, *b;
} qkd_loss;

typedef enum {
  QKD_PRE_NONE = 0, /* the flattened image */
  QKD_PRE_DENSE,    /* dense(k): trainable, flattens */
  QKD_PRE_PCA,      /* pca(k): fitted on the training split */
  QKD_PRE_AVGPOOL_TO, QKD_PRE_MAXPOOL_TO, /* k regions */
  QKD_PRE_CROP,     /* crop(h, w): centre crop, flattened */
  QKD_PRE_NET       /* net { layers }, output flattened */
} qkd_pre_kind;

/* `noise_engine:` — auto: trajectories from QKD_TRAJ_AUTO_QUBITS qubits when every channel is a
 * Pauli channel (qkd_traj.h), else the exact density matrix (qkd_dmk.h). */
typedef enum { QKD_NOISE_AUTO = 0, QKD_NOISE_EXACT, QKD_NOISE_TRAJECTORIES } qkd_noise_engine;
#define QKD_TRAJ_AUTO_QUBITS 8

typedef struct {
  const char *name;
  int qubits;
  qkd_pre_kind pre;
  int pre_k, pre_h, pre_w;   /* k for dense/pca/pools; h, w for crop */
  qkd_net_spec pre_net;      /* QKD_PRE_NET */
  int n_features;            /* features after pre */
  qkd_ir_circuit circuit;    /* encoding + circuit + measurement, lowered */
  int head_dense;            /* 0: head none (the first C outputs are the logits); else k = C */
  int n_classes;
  qkd_noise_engine noise_engine; /* how a noisy circuit runs (the circuits carry the outcome: */
  int n_trajectories;            /* qkd_ir_circuit.trajectories); trajectories per sample [1] */
} qkd_m_student;

typedef enum { QKD_GRAD_ADJOINT = 0, QKD_GRAD_PARAMETER_SHIFT } qkd_grad_kind;

/* `control:` (spec §9): a classical stand-in for encoding + circuit + measurement, from the same
 * pre features to the same number of outputs (construction in qkd_train.h). */
typedef enum { QKD_CONTROL_NONE = 0, QKD_CONTROL_CLASSICAL, QKD_CONTROL_MATCHED } qkd_control_kind;

typedef struct {
  const char *name;
  const qkd_m_dataset *data;
  const qkd_m_teacher *teacher; /* NULL = none */
  qkd_m_student student;        /* instantiated for this experiment's data */
  qkd_loss *loss;
  qkd_m_train train;
  int baseline;
  qkd_grad_kind gradient;
  qkd_control_kind control;
  int uses_teacher;             /* the loss reads teacher logits (kl, mse) */
  int eval_noise;               /* eval_noise: given — the test split is evaluated on eval_circuit */
  qkd_ir_circuit eval_circuit;  /* the student's circuit with eval_noise's channels instead of its own */
  int grid_base;                /* named by a grid's `experiment:`: runs only as its cells */
  const char *key_text;         /* canonical text of the checked experiment (resume keys) */
  const char *baseline_key_text; /* the same for its baseline run alone (no teacher, loss, control) */
} qkd_m_experiment;

/* Grids (spec §9). A grid crosses its axes in the order written (the last varies fastest), then
 * its seeds; each point is a cell, checked as a whole program of its own. */
typedef struct {
  const char *label;            /* `axis LABEL { … }`, or the first field's last name */
  int n_values;
  const char **names;           /* [n_values]: `names:`, or the source text of the first field's values */
} qkd_m_axis;

typedef struct qkd_m_grid qkd_m_grid;

typedef struct {
  const char *name;             /* GRID/LABEL=NAME/…/seed=S */
  const qkd_m_grid *grid;
  int *value;                   /* [grid->n_axes]: the index of this cell's value on each axis */
  int seed;
  const qkd_m_experiment *experiment; /* the checked cell (its own data set, teacher, student) */
  const char *key_text;         /* canonical text of the checked cell (the resume key's core) */
} qkd_m_cell;

struct qkd_m_grid {
  const char *name;
  const char *experiment;       /* the experiment every cell starts from */
  int n_axes;
  qkd_m_axis *axes;
  int n_seeds;
  int *seeds;
  int seed_teachers;            /* each seed is also the teacher's train seed */
  int first_cell, n_cells;      /* its cells: model->cells[first_cell .. first_cell + n_cells) */
};

typedef struct {
  const char *path;             /* the root .qkd file */
  int n_datasets, n_teachers, n_experiments;
  qkd_m_dataset **datasets;
  qkd_m_teacher **teachers;
  qkd_m_experiment **experiments;
  /* every student declaration, instantiated for the first experiment that uses it (or, when none
   * does, for a 28x28 image), for `qkdc draw` and `qkdc emit-llvm` */
  int n_students;
  qkd_m_student **students;
  /* grids and all their cells, in the stable order of `qkdc cells` (grids as declared) */
  int n_grids;
  qkd_m_grid **grids;
  int n_cells;
  qkd_m_cell *cells;
} qkd_model;

#endif
