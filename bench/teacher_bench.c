/* teacher_bench.c — trains a teacher net on a data set with the runtime of runtime/qkd_teacher.h
 * and prints one JSON line: test accuracy per epoch, training images/s, parameter count and peak
 * RSS. Used by bench/teacher.sh.
 *   teacher_bench [--model lenet5|alexnet_small] [--dataset mnist] [--threads N] [--epochs E]
 *                 [--batch B] [--lr LR] [--seed S] [--train-limit N]
 *                 [--test-limit N]
 *                 [--init P.npy --order O.npy --losses L.npy]
 * With --init and --order (bench/lenet_lockstep.py) the net starts from the given float32
 * parameters (qkd_nn.h's order: layer by layer, weight before bias — PyTorch's parameters()
 * order, same layouts) instead of qkd_nn_init, and epoch e visits the training images in row e
 * of the int32 [epochs][n] order instead of qkd_nn_shuffle's; the loss of every step goes to
 * --losses (float64 [steps]). The step is the one qkd_teacher_train takes (forward, mean softmax
 * CE, backward, optimizer), so a peer fed the same start and order follows the same path up to
 * rounding. */
#include "qkd_data.h"
#include "qkd_npy.h"
#include "qkd_teacher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define LS(k, u, ker, s, p, v) {QKD_LAYER_##k, u, ker, s, p, v, 0, 0}

static void progress(void *ctx, const char *text) {
  (void)ctx;
  fprintf(stderr, "%s\n", text);
}

/* The training loop of qkd_teacher_train (teacher.c fit_step, constant schedule, no
 * augmentation) from a given start and batch order. */
static int lockstep(const qkd_net_spec *spec, const qkd_dataset *ds, const char *init_path, const char *order_path,
                    const char *losses_path, int epochs, int batch, double lr, int threads, const char *model,
                    const char *dataset) {
  qkd_error err;
  qkd_npy init = {0}, order = {0};
  int rc = 1, n = ds->train.n;
  qkd_nn *net = NULL;
  qkd_nn_optim opt = {0};
  float *x = NULL, *dz = NULL;
  int *y = NULL;
  double *losses = NULL;
  qkd_nn_set_threads(threads);
  if (qkd_npy_load(init_path, NULL, 0, &init, &err) != 0 || qkd_npy_load(order_path, NULL, 0, &order, &err) != 0) {
    qkd_error_print(&err, stderr);
    goto out;
  }
  net = qkd_nn_create(spec, (qkd_shape){.c = ds->c, .h = ds->h, .w = ds->w}, 0, batch, &err);
  if (!net) { qkd_error_print(&err, stderr); goto out; }
  long P = qkd_nn_param_count(net), C = ds->n_classes;
  if (init.type != QKD_NPY_F32 || init.count != P) {
    fprintf(stderr, "%s: error: want %ld float32 parameters\n", init_path, P);
    goto out;
  }
  if (order.type != QKD_NPY_I32 || order.ndim != 2 || order.shape[0] < epochs || order.shape[1] != n) {
    fprintf(stderr, "%s: error: want int32 [%d][%d]\n", order_path, epochs, n);
    goto out;
  }
  const int *ord = order.data;
  for (long i = 0; i < (long)epochs * n; i++)
    if (ord[i] < 0 || ord[i] >= n) { fprintf(stderr, "%s: error: index %d out of range\n", order_path, ord[i]); goto out; }
  qkd_nn_init(net, 1); /* batchnorm state; the parameters are overwritten */
  memcpy(qkd_nn_params(net), init.data, sizeof(float) * (size_t)P);
  long per_epoch = (n + batch - 1) / batch, steps = per_epoch * epochs;
  x = malloc(sizeof(float) * (size_t)batch * ds->c * ds->h * ds->w);
  dz = malloc(sizeof(float) * (size_t)batch * C);
  y = malloc(sizeof(int) * (size_t)batch);
  losses = malloc(sizeof(double) * (size_t)steps);
  if (!x || !dz || !y || !losses || qkd_nn_optim_init(&opt, QKD_NN_ADAM, lr, 0.9, 0.999, 0.0, P) != 0) {
    fprintf(stderr, "teacher_bench: error: out of memory\n");
    goto out;
  }
  printf("{\"model\": \"%s\", \"dataset\": \"%s\", \"threads\": %d, \"epochs\": %d, \"lockstep\": true", model,
         dataset, threads, epochs);
  long step = 0;
  for (int e = 0; e < epochs; e++) {
    for (int i = 0; i < n; i += batch, step++) {
      int b = n - i < batch ? n - i : batch;
      qkd_data_batch(ds, &ds->train, ord + (size_t)e * n + i, b, x, y);
      const float *z = qkd_nn_forward(net, x, b, 1, (uint64_t)step);
      losses[step] = qkd_nn_softmax_ce(z, y, b, (int)C, dz);
      qkd_nn_zero_grad(net);
      qkd_nn_backward(net, dz, NULL);
      qkd_nn_optim_step(&opt, qkd_nn_params(net), qkd_nn_grads(net));
    }
    printf(", \"acc_epoch%d\": %.4f", e + 1, qkd_nn_evaluate(net, ds, &ds->test, NULL));
  }
  printf("}\n");
  qkd_npy L = {QKD_NPY_F64, 1, {steps}, steps, losses};
  if (qkd_npy_save(losses_path, &L, &err) != 0) { qkd_error_print(&err, stderr); goto out; }
  rc = 0;
out:
  qkd_nn_optim_free(&opt);
  qkd_nn_free(net);
  qkd_npy_free(&init);
  qkd_npy_free(&order);
  free(x); free(dz); free(y); free(losses);
  return rc;
}

int main(int argc, char **argv) {
  const char *model = "lenet5", *dataset = "mnist";
  int threads = 1, epochs = 5, batch = 128, train_limit = 0, test_limit = 0;
  double lr = 1e-3;
  long seed = 1;
  const char *init_path = NULL, *order_path = NULL, *losses_path = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!strcmp(argv[i], "--dataset")) dataset = argv[i + 1];
    else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--epochs")) epochs = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--lr")) lr = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--seed")) seed = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--train-limit")) train_limit = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--test-limit")) test_limit = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--init")) init_path = argv[i + 1];
    else if (!strcmp(argv[i], "--order")) order_path = argv[i + 1];
    else if (!strcmp(argv[i], "--losses")) losses_path = argv[i + 1];
    else { fprintf(stderr, "teacher_bench: error: unknown option %s\n", argv[i]); return 1; }
  }
  qkd_layer_spec lenet[] = {LS(CONV, 6, 5, 1, 0, 0), LS(TANH, 0, 0, 1, 0, 0), LS(AVGPOOL, 2, 0, 1, 0, 0),
                            LS(CONV, 16, 5, 1, 0, 0), LS(TANH, 0, 0, 1, 0, 0), LS(AVGPOOL, 2, 0, 1, 0, 0),
                            LS(FLATTEN, 0, 0, 1, 0, 0), LS(DENSE, 120, 0, 1, 0, 0), LS(TANH, 0, 0, 1, 0, 0),
                            LS(DENSE, 84, 0, 1, 0, 0), LS(TANH, 0, 0, 1, 0, 0), LS(DENSE, 10, 0, 1, 0, 0)};
  qkd_layer_spec alex[] = {LS(CONV, 64, 3, 1, 1, 0), LS(RELU, 0, 0, 1, 0, 0), LS(MAXPOOL, 2, 0, 1, 0, 0),
                           LS(CONV, 192, 3, 1, 1, 0), LS(RELU, 0, 0, 1, 0, 0), LS(MAXPOOL, 2, 0, 1, 0, 0),
                           LS(CONV, 384, 3, 1, 1, 0), LS(RELU, 0, 0, 1, 0, 0), LS(FLATTEN, 0, 0, 1, 0, 0),
                           LS(DROPOUT, 0, 0, 1, 0, 0.5), LS(DENSE, 4096, 0, 1, 0, 0), LS(RELU, 0, 0, 1, 0, 0),
                           LS(DROPOUT, 0, 0, 1, 0, 0.5), LS(DENSE, 4096, 0, 1, 0, 0), LS(RELU, 0, 0, 1, 0, 0),
                           LS(DENSE, 10, 0, 1, 0, 0)};
  qkd_net_spec spec;
  if (!strcmp(model, "lenet5")) spec = (qkd_net_spec){"lenet5", 12, lenet, 0, NULL, {0}};
  else if (!strcmp(model, "alexnet_small")) spec = (qkd_net_spec){"alexnet_small", 16, alex, 0, NULL, {0}};
  else { fprintf(stderr, "teacher_bench: error: unknown model %s\n", model); return 1; }
  qkd_error err;
  qkd_data_opts o = {.source = dataset, .train_limit = train_limit, .test_limit = test_limit, .scale = QKD_DATA_SCALE_UNIT};
  qkd_dataset ds;
  if (qkd_data_load(&o, &ds, &err) != 0) { qkd_error_print(&err, stderr); return 1; }
  if (init_path || order_path) {
    if (!init_path || !order_path || !losses_path) {
      fprintf(stderr, "teacher_bench: error: --init, --order and --losses go together\n");
      qkd_data_free(&ds);
      return 1;
    }
    int rc = lockstep(&spec, &ds, init_path, order_path, losses_path, epochs, batch, lr, threads, model, dataset);
    qkd_data_free(&ds);
    return rc;
  }
  qkd_teacher_job job = {.name = model, .net = &spec, .data = &ds, .data_opts = &o, .threads = threads,
                         .recipe = {QKD_NN_ADAM, lr, 0.9, 0.999, 0.0, epochs, batch, (uint64_t)seed},
                         .note = progress};
  qkd_teacher_result r;
  if (qkd_teacher_train(&job, &r, &err) != 0) { qkd_error_print(&err, stderr); qkd_data_free(&ds); return 1; }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("{\"model\": \"%s\", \"dataset\": \"%s\", \"threads\": %d, \"epochs\": %d, \"params\": %ld, "
         "\"train_images\": %ld, \"images_per_s\": %.1f, \"train_seconds\": %.2f, \"peak_rss_mb\": %.1f",
         model, dataset, threads, epochs, r.params, r.train_images, r.train_images / r.train_seconds, r.train_seconds,
         ru.ru_maxrss / 1024.0);
  for (int e = 0; e < r.epochs; e++) printf(", \"acc_epoch%d\": %.4f", e + 1, r.test_accuracy[e]);
  printf("}\n");
  qkd_teacher_result_free(&r);
  qkd_data_free(&ds);
  return 0;
}
