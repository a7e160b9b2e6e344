/* test_rt_teacher.c — runtime/qkd_teacher.h: training on the synthetic set (learns, deterministic,
 * ensemble trains jointly), the weights cache (round trip, key mismatch, a flipped byte, a torn
 * file, another format version: each rejected with a warning and retrained; a batchnorm net's
 * running statistics round-trip), teacher logits and evaluation. */
#include "qkd_data.h"
#include "qkd_teacher.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LS(k, u, ker, s, p, v) {QKD_LAYER_##k, u, ker, s, p, v, 0, 0}

static int n_notes, n_warnings;
static char last_note[1200];
static void on_note(void *ctx, const char *text) {
  (void)ctx;
  n_notes++;
  if (strstr(text, "warning:")) {
    n_warnings++;
    snprintf(last_note, sizeof last_note, "%s", text);
  }
}

static qkd_layer_spec small[] = {LS(CONV, 4, 3, 1, 1, 0), LS(RELU, 0, 0, 1, 0, 0), LS(MAXPOOL, 2, 0, 1, 0, 0),
                                 LS(FLATTEN, 0, 0, 1, 0, 0), LS(DROPOUT, 0, 0, 1, 0, 0.2), LS(DENSE, 5, 0, 1, 0, 0)};
static qkd_layer_spec lin[] = {LS(FLATTEN, 0, 0, 1, 0, 0), LS(DENSE, 5, 0, 1, 0, 0)};

int main(void) {
  char dir[] = "/tmp/qkd_test_rt_teacher_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char cache[256];
  qkd_error err;
  snprintf(cache, sizeof cache, "%s/t.qkw", dir);
  qkd_data_opts o = {.source = "synthetic", .c = 1, .h = 8, .w = 8, .seed = 2, .source_classes = 5,
                     .train_limit = 600, .test_limit = 200, .validation = 100};
  qkd_dataset ds;
  CHECK(qkd_data_load(&o, &ds, &err) == 0);
  CHECK(ds.train.n == 500 && ds.val.n == 100 && ds.test.n == 200);
  qkd_net_spec spec = {"small", 6, small, 0, NULL, {0}};
  qkd_teacher_job job = {.name = "small", .net = &spec, .data = &ds, .data_opts = &o, .threads = 1,
                         .recipe = {QKD_NN_ADAM, 3e-3, 0.9, 0.999, 0, 3, 32, 1}, .note = on_note};
  /* trains, learns, and writes the cache */
  qkd_teacher_result a, b;
  CHECK(qkd_teacher_train(&job, &a, &err) == 0);
  CHECK(!a.cached && a.epochs == 3 && a.params == 4 * 9 + 4 + 5 * 64 + 5);
  CHECK(a.test_accuracy[2] > 0.8);
  CHECK(a.val_accuracy && a.val_accuracy[2] > 0.8);
  CHECK(a.train_loss[2] < a.train_loss[0]);
  CHECK(a.train_images == 1500);
  /* deterministic: the same job gives the same weights */
  CHECK(qkd_teacher_train(&job, &b, &err) == 0);
  CHECK(memcmp(qkd_nn_params(a.net), qkd_nn_params(b.net), sizeof(float) * (size_t)a.params) == 0);
  qkd_teacher_result_free(&b);
  /* cache: round trip */
  job.cache_path = cache;
  n_warnings = 0;
  CHECK(qkd_teacher_train(&job, &b, &err) == 0 && !b.cached); /* first run writes it */
  CHECK(n_warnings == 0); /* no cache yet (kind IO): the normal first run, no warning */
  CHECK(access(cache, F_OK) == 0);
  qkd_teacher_result_free(&b);
  n_warnings = 0;
  CHECK(qkd_teacher_train(&job, &b, &err) == 0);
  CHECK(b.cached && n_warnings == 0);
  CHECK(memcmp(qkd_nn_params(a.net), qkd_nn_params(b.net), sizeof(float) * (size_t)a.params) == 0);
  CHECK(b.test_accuracy[2] == a.test_accuracy[2] && b.test_accuracy[0] == a.test_accuracy[0]);
  CHECK(qkd_nn_evaluate(b.net, &ds, &ds.test, NULL) == a.test_accuracy[2]);
  /* teacher logits: one row per test image, argmax agrees with evaluation */
  float *lg = qkd_teacher_logits(b.net, &ds, &ds.test);
  CHECK(lg != NULL);
  long conf[25] = {0};
  double acc = qkd_nn_evaluate(b.net, &ds, &ds.test, conf);
  int c = qkd_nn_argmax_count(lg, ds.test.n, 5, ds.test.y, NULL, NULL);
  CHECK((double)c / ds.test.n == acc);
  long tot = 0, diag = 0;
  for (int i = 0; i < 25; i++) { tot += conf[i]; if (i % 6 == 0) diag += conf[i]; }
  CHECK(tot == ds.test.n && diag == c);
  free(lg);
  qkd_teacher_result_free(&b);
  /* key mismatch: another seed -> warning, retrained, cache rewritten */
  job.recipe.seed = 2;
  n_warnings = 0;
  CHECK(qkd_teacher_train(&job, &b, &err) == 0);
  CHECK(!b.cached && n_warnings == 1 && strstr(last_note, "key") != NULL);
  qkd_teacher_result_free(&b);
  n_warnings = 0;
  CHECK(qkd_teacher_train(&job, &b, &err) == 0 && b.cached && n_warnings == 0);
  qkd_teacher_result_free(&b);
  /* the key covers the data options and the recipe */
  qkd_shape in = {1, 8, 8, 0};
  uint64_t k0 = qkd_cache_key(&spec, in, &job.recipe, &o, &ds);
  qkd_data_opts o2 = o;
  o2.per_class = 7;
  qkd_recipe r2 = job.recipe;
  r2.lr = 1e-3;
  qkd_net_spec spec2 = {"small", 2, lin, 0, NULL, {0}};
  CHECK(qkd_cache_key(&spec, in, &job.recipe, &o2, &ds) != k0);
  CHECK(qkd_cache_key(&spec, in, &r2, &o, &ds) != k0);
  CHECK(qkd_cache_key(&spec2, in, &job.recipe, &o, &ds) != k0);
  CHECK(qkd_cache_key(&spec, in, &job.recipe, &o, &ds) == k0);
  /* ... and the fit: augmentation and schedule */
  qkd_net_spec spec3 = spec;
  spec3.fit.crop_pad = 1;
  CHECK(qkd_cache_key(&spec3, in, &job.recipe, &o, &ds) != k0);
  spec3.fit = (qkd_fit){0, 1, QKD_SCHEDULE_CONSTANT};
  CHECK(qkd_cache_key(&spec3, in, &job.recipe, &o, &ds) != k0);
  spec3.fit = (qkd_fit){0, 0, QKD_SCHEDULE_COSINE};
  CHECK(qkd_cache_key(&spec3, in, &job.recipe, &o, &ds) != k0);
  /* corruption: flip one byte in the weights -> checksum failure, retrained */
  {
    FILE *f = fopen(cache, "r+b");
    fseek(f, 100, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 100, SEEK_SET);
    fputc(ch ^ 0x10, f);
    fclose(f);
  }
  float *tmp = malloc(sizeof(float) * (size_t)a.params);
  double accs[3];
  CHECK(qkd_cache_load(cache, qkd_cache_key(&spec, in, &job.recipe, &o, &ds), tmp, a.params, NULL, 0, accs, 3, &err) == -1);
  CHECK(strstr(err.msg, "checksum") != NULL && !strcmp(err.path, cache) && err.kind == QKD_ERR_FORMAT);
  n_warnings = 0;
  CHECK(qkd_teacher_train(&job, &b, &err) == 0);
  CHECK(!b.cached && n_warnings == 1 && strstr(last_note, "checksum") != NULL);
  { /* the warning is made from the cache error's path and message */
    char want[1200];
    snprintf(want, sizeof want, "%s: warning: cache checksum failure (corrupted); retraining small", cache);
    CHECK(!strcmp(last_note, want));
  }
  qkd_teacher_result_free(&b);
  /* torn file: truncated -> rejected */
  CHECK(truncate(cache, 50) == 0);
  CHECK(qkd_cache_load(cache, qkd_cache_key(&spec, in, &job.recipe, &o, &ds), tmp, a.params, NULL, 0, accs, 3, &err) == -1);
  CHECK(strstr(err.msg, "length") != NULL);
  /* direct save/load round trip with a wrong key */
  float w[4] = {1.5f, -2.0f, 3.25f, 0.0f}, sv[3] = {0.25f, -7.0f, 1e-3f};
  double e2[2] = {0.5, 0.75};
  float w2[4], sv2[3];
  double e3[2];
  CHECK(qkd_cache_save(cache, 42, w, 4, sv, 3, e2, 2, &err) == 0);
  CHECK(qkd_cache_load(cache, 42, w2, 4, sv2, 3, e3, 2, &err) == 0);
  CHECK(memcmp(w, w2, sizeof w) == 0 && memcmp(sv, sv2, sizeof sv) == 0 && e3[1] == 0.75);
  CHECK(qkd_cache_load(cache, 43, w2, 4, sv2, 3, e3, 2, &err) == -1 && strstr(err.msg, "key") != NULL);
  CHECK(qkd_cache_load(cache, 42, w2, 5, sv2, 3, e3, 2, &err) == -1);
  CHECK(qkd_cache_load(cache, 42, w2, 4, sv2, 2, e3, 2, &err) == -1 && strstr(err.msg, "state") != NULL);
  /* a file of another format version (byte 4: the version) is rejected as such */
  {
    FILE *f = fopen(cache, "r+b");
    fseek(f, 4, SEEK_SET);
    fputc(QKD_CACHE_VERSION - 1, f);
    fclose(f);
  }
  CHECK(qkd_cache_load(cache, 42, w2, 4, sv2, 3, e3, 2, &err) == -1 && strstr(err.msg, "version") != NULL);
  free(tmp);
  /* a batchnorm net: the cache carries its running statistics, so the loaded net evaluates as
   * the trained one did */
  {
    qkd_layer_spec bn[] = {LS(CONV, 4, 3, 1, 1, 0), LS(BATCHNORM, 0, 0, 1, 0, 0), LS(RELU, 0, 0, 1, 0, 0), LS(MAXPOOL, 2, 0, 1, 0, 0),
                           LS(FLATTEN, 0, 0, 1, 0, 0), LS(DENSE, 5, 0, 1, 0, 0)};
    qkd_net_spec bs = {"small_bn", 6, bn, 0, NULL, {0}};
    qkd_teacher_job bj = job;
    bj.net = &bs;
    remove(cache);
    qkd_teacher_result t1, t2;
    CHECK(qkd_teacher_train(&bj, &t1, &err) == 0 && !t1.cached);
    long ns = qkd_nn_state_count(t1.net);
    CHECK(ns == 8 && qkd_nn_state(t1.net)[4] != 1.0f); /* the running variance moved */
    CHECK(qkd_teacher_train(&bj, &t2, &err) == 0 && t2.cached);
    CHECK(memcmp(qkd_nn_state(t1.net), qkd_nn_state(t2.net), sizeof(float) * (size_t)ns) == 0);
    CHECK(qkd_nn_evaluate(t2.net, &ds, &ds.test, NULL) == t1.test_accuracy[2]);
    qkd_teacher_result_free(&t1);
    qkd_teacher_result_free(&t2);
  }
  /* augmentation and a cosine schedule: deterministic, and not the plain run (the synthetic
   * classes are random pixel patterns, which shifts and flips destroy: no accuracy claim) */
  {
    qkd_net_spec as = spec;
    as.fit = (qkd_fit){1, 1, QKD_SCHEDULE_COSINE};
    qkd_teacher_job aj = job;
    aj.net = &as;
    aj.cache_path = NULL;
    aj.recipe.seed = 1;
    qkd_teacher_result t1, t2;
    CHECK(qkd_teacher_train(&aj, &t1, &err) == 0 && qkd_teacher_train(&aj, &t2, &err) == 0);
    CHECK(memcmp(qkd_nn_params(t1.net), qkd_nn_params(t2.net), sizeof(float) * (size_t)t1.params) == 0);
    CHECK(memcmp(qkd_nn_params(t1.net), qkd_nn_params(a.net), sizeof(float) * (size_t)t1.params) != 0);
    qkd_teacher_result_free(&t2);
    as.fit = (qkd_fit){0, 0, QKD_SCHEDULE_COSINE}; /* the schedule alone changes the weights too */
    CHECK(qkd_teacher_train(&aj, &t2, &err) == 0);
    CHECK(t2.test_accuracy[2] > 0.7);
    CHECK(memcmp(qkd_nn_params(t2.net), qkd_nn_params(a.net), sizeof(float) * (size_t)t1.params) != 0);
    CHECK(memcmp(qkd_nn_params(t2.net), qkd_nn_params(t1.net), sizeof(float) * (size_t)t1.params) != 0);
    qkd_teacher_result_free(&t1);
    qkd_teacher_result_free(&t2);
  }
  /* an ensemble: mean(small, linear) trained jointly; both members' parameters move */
  qkd_net_spec members[2] = {{"small", 6, small, 0, NULL, {0}}, {"lin", 2, lin, 0, NULL, {0}}};
  qkd_net_spec ens = {"ensemble", 0, NULL, 2, members, {0}};
  qkd_teacher_job ej = job;
  ej.net = &ens;
  ej.cache_path = NULL;
  ej.recipe.epochs = 2;
  CHECK(qkd_teacher_train(&ej, &b, &err) == 0);
  CHECK(b.params == a.params + 5 * 64 + 5);
  CHECK(b.test_accuracy[1] > 0.8);
  qkd_nn *fresh = qkd_nn_create(&ens, in, 0, 4, &err);
  qkd_nn_init(fresh, ej.recipe.seed);
  int moved_a = 0, moved_b = 0;
  for (long i = 0; i < b.params; i++) {
    int d = qkd_nn_params(fresh)[i] != qkd_nn_params(b.net)[i];
    if (i < a.params) moved_a += d; else moved_b += d;
  }
  CHECK(moved_a > a.params / 2 && moved_b > (b.params - a.params) / 2);
  qkd_nn_free(fresh);
  qkd_teacher_result_free(&b);
  /* errors: a net whose output does not match the class count */
  qkd_layer_spec wrong[] = {LS(FLATTEN, 0, 0, 1, 0, 0), LS(DENSE, 7, 0, 1, 0, 0)};
  qkd_net_spec ws = {"wrong", 2, wrong, 0, NULL, {0}};
  ej.net = &ws;
  CHECK(qkd_teacher_train(&ej, &b, &err) == -1 && strstr(err.msg, "classes") != NULL);
  CHECK(err.kind == QKD_ERR_INPUT && !strcmp(test_err_text(&err),
        "small: error: the net has 7 outputs but the data set has 5 classes"));
  /* a cache that cannot be opened: kind IO, and the teacher retrains without a warning */
  snprintf(cache, sizeof cache, "%s/none/t.qkw", dir);
  CHECK(qkd_cache_load(cache, 42, w2, 4, sv2, 3, e3, 2, &err) == -1 && err.kind == QKD_ERR_IO);
  qkd_teacher_result_free(&a);
  qkd_data_free(&ds);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return test_done("test_rt_teacher");
}
