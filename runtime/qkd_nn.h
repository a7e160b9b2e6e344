/* qkd_nn.h — the classical network runtime: a qkd_net_spec instantiated as float32 layers with
 * forward and backward over a batch, the student reductions (`pre:`), softmax cross-entropy,
 * Adam / SGD-with-momentum (PyTorch semantics), seeded shuffling and evaluation.
 *
 * Owns: one contiguous parameter block and a mirrored gradient block per net (members of a `mean`
 * net live inside their parent's blocks), a state block (batchnorm's running statistics, not
 * trained by the optimizer), the activations of the last forward pass and the scratch for
 * im2col. Layout everywhere is row-major, NCHW per sample:
 *   input   x      [batch][in.c * in.h * in.w]
 *   output  logits [batch][out.c]                   (a net ends flat; see qkd_nn_out)
 *   conv    weight [filters][in.c][k][k], bias [filters]
 *   dense   weight [units][inputs] (PyTorch's Linear layout), bias [units]
 *   batchnorm  gamma [C], beta [C]; state: running mean [C], running variance [C]
 * Parameters are ordered layer by layer, weight before bias; members of a `mean` net in order;
 * the state block likewise.
 *
 * Promises:
 *  - results depend only on (spec, init seed, data, step numbers): initialisation and dropout
 *    masks come from qkd_rng (QKD_STREAM_INIT / QKD_STREAM_DROPOUT), never from call order or
 *    thread count (BLAS reductions and gradient sums over batch slices aside, see
 *    qkd_nn_set_threads; batchnorm's batch statistics are exact across thread counts).
 *  - qkd_nn_backward ACCUMULATES (+=) into the gradient block; it uses the activations of the
 *    last qkd_nn_forward, whose input x must still be alive and unchanged.
 *  - nothing here prints or exits; constructors return NULL (functions -1) with err filled
 *    (qkd_err.h): no path, msg "NET: layer I: what" for a layer that does not fit (kind INPUT),
 *    "out of memory" (MEMORY), a reduction's own message ("pca(…) needs …"). */
#ifndef QKD_NN_H
#define QKD_NN_H

#include <stddef.h>
#include <stdint.h>

#include "qkd_net.h"

/* --------------------------------------------------------------------------------- threads */
/* Threads for the runtime (n < 1 means 1, at most 16), process-wide; OpenBLAS always runs
 * single-threaded. A net with at most 4M parameters and enough work per batch cuts each
 * forward/backward batch into 2 contiguous slices whatever n is (run on min(2, n) threads);
 * each slice accumulates into its own gradient block and the blocks are added in slice order.
 * Other passes cut their big GEMMs into column blocks fixed by the sizes. Results are therefore
 * bit-equal across thread counts (nn.c, docs/runtime.md). Set it before training, not while
 * another thread is inside the runtime. */
void qkd_nn_set_threads(int n);
int qkd_nn_get_threads(void);
/* The vector ISA of the nets' kernels and the optimizer, from the CPU: 2 AVX2 + FMA, 1 AVX only,
 * 0 the baseline build (also whenever QKD_NN_SIMD=0 is in the environment). */
int qkd_nn_simd(void);
/* The runtime's fork-join: fn(ctx, t) once for each t in [0, n), on up to n threads (the caller's
 * included; persistent workers, so which thread runs which t is not fixed: t alone must decide
 * what a call does); returns when all are done. */
void qkd_nn_run_threads(int n, void (*fn)(void *ctx, int t), void *ctx);

/* ------------------------------------------------------------------------------------- net */
typedef struct qkd_nn qkd_nn;

/* Instantiates `spec` for inputs of shape `in` and batches of at most max_batch samples.
 * implicit_flatten: dense flattens an image input (student reductions). A `mean` spec averages
 * its members' logits (members must agree on the output shape). */
qkd_nn *qkd_nn_create(const qkd_net_spec *spec, qkd_shape in, int implicit_flatten, int max_batch,
                      qkd_error *err);
void qkd_nn_free(qkd_nn *nn);

long qkd_nn_param_count(const qkd_nn *nn);
float *qkd_nn_params(qkd_nn *nn);  /* [param_count] */
float *qkd_nn_grads(qkd_nn *nn);   /* [param_count], mirrors params */
/* The state block: values a training forward updates but the optimizer never sees (batchnorm's
 * running mean and variance, used in evaluation mode). Save and load it with the parameters. */
long qkd_nn_state_count(const qkd_nn *nn);
float *qkd_nn_state(qkd_nn *nn);   /* [state_count] */
qkd_shape qkd_nn_out(const qkd_nn *nn);
int qkd_nn_max_batch(const qkd_nn *nn);
void qkd_nn_zero_grad(qkd_nn *nn);

/* PyTorch's default init: conv and dense weights and biases uniform in ±1/sqrt(fan_in)
 * (kaiming_uniform with a = sqrt(5)); the value of parameter i is a function of (seed, i);
 * batchnorm gamma 1, beta 0, running mean 0, running variance 1. Also sets the dropout seed. */
void qkd_nn_init(qkd_nn *nn, uint64_t seed);

/* Forward over batch <= max_batch samples. training = 1 applies dropout with masks keyed by
 * (seed, step, layer, sample, element): pass a distinct step per batch (e.g. the global batch
 * number); batchnorm then normalises with this batch's statistics and moves its running
 * statistics once per call (training = 0: the running statistics, nothing moves). Returns the
 * output [batch][out], owned by nn, valid until the next forward; NULL if batch is out of range. */
const float *qkd_nn_forward(qkd_nn *nn, const float *x, int batch, int training, uint64_t step);

/* Backward from dout [batch][out] (the batch of the last forward): grads += dL/dparams;
 * dx [batch][in] receives dL/dx when not NULL. */
void qkd_nn_backward(qkd_nn *nn, const float *dout, float *dx);

/* ---------------------------------------------------------------------------------- losses */
/* Mean softmax cross-entropy over the batch, computed with log-sum-exp in double. dlogits
 * (may be NULL) receives d(mean loss)/dlogits = (softmax - onehot) / batch. */
double qkd_nn_softmax_ce(const float *logits, const int *labels, int batch, int classes, float *dlogits);

/* ------------------------------------------------------------------------------- optimizers */
enum { QKD_NN_ADAM = 0, QKD_NN_SGD = 1 };

typedef struct {
  int kind;            /* QKD_NN_ADAM or QKD_NN_SGD */
  double lr, beta1, beta2, eps, momentum;
  long n;              /* parameters */
  long t;              /* steps taken */
  float *m, *v;        /* [n] Adam moments / SGD momentum buffer (m) */
  double *dm, *dv;     /* the same, for an optimizer over double parameters (qkd_nn_optim_init_f64) */
} qkd_nn_optim;

/* Adam: PyTorch defaults eps = 1e-8, no weight decay; m and v start at 0 and
 * p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
 * Element-wise in float (SSE or AVX lanes, never a contracted multiply-add); blocks of >= 32,768
 * parameters are split over qkd_nn_get_threads() threads (the result depends on neither).
 * SGD: buf = momentum * buf + g (buf = g on the first step), p -= lr * buf. Returns -1 on OOM. */
int qkd_nn_optim_init(qkd_nn_optim *o, int kind, double lr, double beta1, double beta2, double momentum, long n);
/* The same optimizer over double parameters (a circuit's angles): moments dm, dv in double (both
 * allocated for either kind, so a checkpoint has one shape) and the formulas above evaluated in
 * double, element by element. One qkd_nn_optim is either float (step) or double (step_f64). */
int qkd_nn_optim_init_f64(qkd_nn_optim *o, int kind, double lr, double beta1, double beta2, double momentum, long n);
void qkd_nn_optim_step_f64(qkd_nn_optim *o, double *p, const double *g);
/* The factor on the base learning rate for step t (0-based) of a run of T steps:
 * QKD_SCHEDULE_CONSTANT 1; QKD_SCHEDULE_COSINE (1 + cos(pi t / T)) / 2, from 1 at the first step
 * toward 0 (PyTorch's CosineAnnealingLR with T_max = T and eta_min = 0, stepped every batch). */
double qkd_nn_schedule(int kind, long t, long T);
void qkd_nn_optim_step(qkd_nn_optim *o, float *params, const float *grads);
void qkd_nn_optim_free(qkd_nn_optim *o);

/* ------------------------------------------------------------------------------- utilities */
/* perm[0..n) = a permutation of 0..n-1, a function of (seed, stream, epoch) only (Fisher–Yates
 * on qkd_rng stream `stream`: QKD_STREAM_SHUFFLE for teachers, QKD_STREAM_SHUFFLE_STUDENT for
 * students, so a student and a teacher with the same seed see different batch orders). */
void qkd_nn_shuffle(int *perm, int n, uint64_t seed, int stream, uint64_t epoch);

/* argmax per row of logits [n][classes] into pred[n]; returns the number equal to labels
 * (labels may be NULL: returns 0). confusion (may be NULL) [classes][classes] += counts,
 * row = true label, column = prediction. */
int qkd_nn_argmax_count(const float *logits, int n, int classes, const int *labels, int *pred, long *confusion);

/* ------------------------------------------------------------------------------- reductions */
/* Student reductions (spec §2 `pre:`). DENSE and NET are trainable qkd_nn nets (build them with
 * qkd_nn_create(…, implicit_flatten = 1, …)); the fixed ones are here:
 *   PCA(k)        (x - mean) · V, V = the k leading eigenvectors (descending eigenvalue) of the
 *                 covariance of the training images (flattened, all channels); no whitening;
 *                 each eigenvector's sign makes its largest-magnitude entry positive.
 *   AVGPOOL_TO(k) / MAXPOOL_TO(k)  k = g*g regions of a g x g grid, each spanning all channels;
 *                 region (i, j) covers rows floor(i*H/g) .. floor((i+1)*H/g)-1 and the same for
 *                 columns. 28x28: k = 16 -> 7x7 regions; k = 256 -> rows/cols of 1 or 2 pixels
 *                 (boundaries 0,1,3,5,7,8,10,12,14,15,17,19,21,22,24,26,28). 32x32: k = 16 -> 8x8,
 *                 k = 256 -> 2x2. Output index = i*g + j.
 *   CROP(h, w)    the centre h x w window (top = (H-h)/2, left = (W-w)/2, floor), all channels,
 *                 flattened in CHW order: c*h*w features.
 * None has trainable parameters, so no backward is needed (their input is the image). */
enum { QKD_NN_RED_PCA = 0, QKD_NN_RED_AVGPOOL_TO, QKD_NN_RED_MAXPOOL_TO, QKD_NN_RED_CROP };

typedef struct {
  int kind;
  qkd_shape in;        /* the image shape */
  int k, h, w;         /* PCA/pools: k; crop: h, w */
  int g;               /* pools: grid side */
  int n_features;      /* output size */
  float *mean;         /* PCA: [in size] */
  float *basis;        /* PCA: [in size][k] */
  double *eigenvalues; /* PCA: [k], descending */
} qkd_nn_reduce;

/* Checks k/h/w against the image shape (pools need k a perfect square g*g with g <= min(H, W);
 * pca needs 1 <= k <= c*h*w; crop needs h <= H, w <= W). -1 with err filled otherwise. */
int qkd_nn_reduce_init(qkd_nn_reduce *r, int kind, qkd_shape in, int k, int h, int w, qkd_error *err);
/* PCA only: fits mean and basis on n training images x [n][c*h*w] (LAPACK dsyev on the
 * covariance, in double). */
int qkd_nn_reduce_fit(qkd_nn_reduce *r, const float *x, int n, qkd_error *err);
/* out [batch][n_features] */
void qkd_nn_reduce_forward(const qkd_nn_reduce *r, const float *x, int batch, float *out);
void qkd_nn_reduce_free(qkd_nn_reduce *r);

#endif
