/* teacher_bench.c — trains a teacher net on a data set with the runtime of runtime/qkd_teacher.h
 * and prints one JSON line: test accuracy per epoch, training images/s, parameter count and peak
 * RSS. Used by bench/teacher.sh.
 *   teacher_bench [--model lenet5|alexnet_small] [--dataset mnist] [--threads N] [--epochs E]
 *                 [--batch B] [--lr LR] [--seed S] [--train-limit N]
 *                 [--test-limit N] */
#include "qkd_data.h"
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

int main(int argc, char **argv) {
  const char *model = "lenet5", *dataset = "mnist";
  int threads = 1, epochs = 5, batch = 128, train_limit = 0, test_limit = 0;
  double lr = 1e-3;
  long seed = 1;
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
