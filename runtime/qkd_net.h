/* qkd_net.h — the description of a classical network as a list of layer specs, shared by the
 * front end (which builds it from `net { … }` and checks shapes with qkd_net_shapes) and the
 * classical runtime (which instantiates, trains and runs it).
 *
 * Owns: the layer table and the shape rules (one place: sema and the runtime agree).
 * Shapes are (c, h, w) images or flat vectors (flat = 1, the length in c, h = w = 1).
 * A layer that does not fit its input is reported in a qkd_error (qkd_err.h): kind INPUT, no
 * path (the caller knows the net's name or the layer's span), the message. */
#ifndef QKD_NET_H
#define QKD_NET_H

#include <stddef.h>

#include "qkd_err.h"

/* X(ENUM, name, min_args, max_args) — positional args; conv also has named stride/padding.
 * batchnorm normalises each channel (image input) or feature (flat input) with the batch's mean
 * and biased variance when training and with running statistics otherwise (PyTorch's
 * BatchNorm2d/1d: eps 1e-5, momentum 0.1), then scales by a trainable gamma and adds beta. */
#define QKD_LAYER_LIST(LAYER_)  \
  LAYER_(CONV,    "conv",    2, 2)   \
  LAYER_(MAXPOOL, "maxpool", 1, 1)   \
  LAYER_(AVGPOOL, "avgpool", 1, 1)   \
  LAYER_(DENSE,   "dense",   1, 1)   \
  LAYER_(FLATTEN, "flatten", 0, 0)   \
  LAYER_(RELU,    "relu",    0, 0)   \
  LAYER_(TANH,    "tanh",    0, 0)   \
  LAYER_(SIGMOID, "sigmoid", 0, 0)   \
  LAYER_(DROPOUT, "dropout", 1, 1)   \
  LAYER_(SCALE,   "scale",   1, 1)   \
  LAYER_(BATCHNORM, "batchnorm", 0, 0)

typedef enum {
#define QKD_LAYER_ENUM(e, name, lo, hi) QKD_LAYER_##e,
  QKD_LAYER_LIST(QKD_LAYER_ENUM)
#undef QKD_LAYER_ENUM
  QKD_LAYER_COUNT
} qkd_layer_kind;

typedef struct {
  const char *name;
  int min_args, max_args;
} qkd_layer_info;

extern const qkd_layer_info qkd_layer_table[QKD_LAYER_COUNT];
int qkd_layer_lookup(const char *name); /* -1 if unknown */

typedef struct {
  qkd_layer_kind kind;
  int units;     /* conv: filters; dense: units; pools: window k (stride k) */
  int kernel;    /* conv only */
  int stride;    /* conv only [1] */
  int padding;   /* conv only [0] */
  double value;  /* dropout: p in [0,1); scale: the constant */
  int line, col; /* where it was written (0 if synthesised) */
} qkd_layer_spec;

typedef struct {
  int c, h, w;
  int flat; /* 1: a vector of c values (h = w = 1) */
} qkd_shape;

/* How a teacher is fitted beyond its optimizer, epochs, batch and seed: its train { } block's
 * `augment:` and `schedule:`. It travels with the teacher's net spec, so every caller that
 * builds a teacher job from the program model passes it on, and it enters the weights cache key
 * with the architecture. All zero: no augmentation, a constant learning rate. */
typedef enum { QKD_SCHEDULE_CONSTANT = 0, QKD_SCHEDULE_COSINE } qkd_schedule_kind;

typedef struct {
  int crop_pad;               /* augment crop(pad: p): random shifts of up to p pixels (qkd_data_augment); 0 = off */
  int flip;                   /* augment flip: mirrored left-right with probability 1/2 */
  qkd_schedule_kind schedule; /* the learning rate over the run (qkd_nn_schedule) */
} qkd_fit;

/* A net: either a layer list, or (n_members > 0) the mean of the members' logits, trained
 * jointly (the paper's ensemble). */
typedef struct qkd_net_spec {
  const char *name;
  int n_layers;
  qkd_layer_spec *layers;
  int n_members;
  struct qkd_net_spec *members;
  qkd_fit fit;                /* when trained as a teacher (members: unused) */
} qkd_net_spec;

/* Shape inference through a layer list from `in`. Writes the output shape of each layer to
 * out[i] (may be NULL) and the final shape to *result. `implicit_flatten`: dense flattens an
 * image input (pre: reductions) instead of failing. Returns -1 when every layer fits; otherwise
 * the index of the first bad layer with err filled (msg "conv kernel 5 is larger than its 4x4
 * input" …; kind INPUT, no path). */
int qkd_net_shapes(const qkd_layer_spec *layers, int n, qkd_shape in, int implicit_flatten,
                   qkd_shape *out, qkd_shape *result, qkd_error *err);
/* The number of values in a shape. */
long qkd_shape_size(qkd_shape s);
/* Trainable parameter count of a layer list from `in` (after a successful qkd_net_shapes):
 * conv and dense weights and biases, batchnorm's gamma and beta (one each per channel). */
long qkd_net_param_count(const qkd_layer_spec *layers, int n, qkd_shape in, int implicit_flatten);
/* Non-trainable state values of a layer list: batchnorm's running mean and variance (one each per
 * channel). -1 when the layers do not fit `in`. */
long qkd_net_state_count(const qkd_layer_spec *layers, int n, qkd_shape in, int implicit_flatten);

#endif
