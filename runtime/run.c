/* run.c — running a checked program (qkd_run.h). */
#include "qkd_run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qkd_data.h"
#include "qkd_nn.h"
#include "qkd_teacher.h"
#include "qkd_train.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
  const qkd_run_opts *o;
  int tty;
  double last_print, start;
  const char *what, *phase;
} progress_ctx;

static void note(void *ud, const char *text) {
  progress_ctx *p = ud;
  if (p->tty) fputs("\r\033[K", p->o->log);
  fprintf(p->o->log, "  %s\n", text);
}

/* One line per 5 s (redrawn in place every 0.2 s on a terminal): epoch, step, loss, speed, ETA. */
static void progress(void *ud, const char *phase, int epoch, int epochs, long step, long steps, double loss,
                     double samples_per_s) {
  progress_ctx *p = ud;
  double t = now_s();
  if (p->phase != phase) p->phase = phase, p->start = t, p->last_print = t;
  if (step != steps && t - p->last_print < (p->tty ? 0.2 : 5.0)) return;
  p->last_print = t;
  double eta = step > 0 ? (t - p->start) / (double)step * (double)(steps - step) : 0;
  fprintf(p->o->log, "%s%s %s: epoch %d/%d step %ld/%ld loss %.4f %.0f samples/s ETA %d:%02d%s",
          p->tty ? "\r\033[K" : "", p->what, phase, epoch, epochs, step, steps, loss, samples_per_s,
          (int)eta / 60, (int)eta % 60, p->tty ? "" : "\n");
  fflush(p->o->log);
}

static void data_opts(const qkd_m_dataset *d, qkd_data_opts *o) {
  memset(o, 0, sizeof *o);
  o->source = d->source_kind == QKD_SRC_DIR ? d->dir : d->source;
  o->n_classes = d->n_classes;
  o->classes = d->classes;
  o->per_class = d->per_class;
  o->train_limit = d->train_limit;
  o->test_limit = d->test_limit;
  o->validation = d->validation;
  o->scale = d->scale == QKD_SCALE_STANDARD ? QKD_DATA_SCALE_STANDARD : QKD_DATA_SCALE_UNIT;
  o->seed = (uint64_t)d->seed;
  o->c = d->c, o->h = d->h, o->w = d->w;
  o->source_classes = d->source_classes;
}

static qkd_recipe recipe(const qkd_m_train *t) {
  return (qkd_recipe){t->optimizer == QKD_OPT_SGD ? QKD_NN_SGD : QKD_NN_ADAM, t->lr, t->beta1, t->beta2, t->momentum,
                      t->epochs, t->batch, (uint64_t)t->seed};
}

typedef struct {
  const qkd_model *m;
  const qkd_run_opts *o;
  qkd_dataset *data;       /* [n_datasets], loaded lazily */
  qkd_data_opts *dopts;
  int *loaded;
  qkd_teacher_result *tres; /* [n_teachers] */
  int *trained;
} runner;

static int index_of_dataset(const runner *r, const qkd_m_dataset *d) {
  for (int i = 0; i < r->m->n_datasets; i++)
    if (r->m->datasets[i] == d) return i;
  return -1;
}

static qkd_dataset *dataset(runner *r, const qkd_m_dataset *d) {
  int i = index_of_dataset(r, d);
  if (r->loaded[i]) return &r->data[i];
  char err[1024];
  data_opts(d, &r->dopts[i]);
  fprintf(r->o->log, "loading data set '%s' (%s)\n", d->name, d->source);
  if (qkd_data_load(&r->dopts[i], &r->data[i], err, sizeof err) != 0) {
    fprintf(r->o->log, "%s\n", err);
    return NULL;
  }
  r->loaded[i] = 1;
  qkd_dataset *ds = &r->data[i];
  fprintf(r->o->log, "  %d training, %d validation, %d test images of %dx%dx%d, %d classes\n", ds->train.n, ds->val.n,
          ds->test.n, ds->c, ds->h, ds->w, ds->n_classes);
  return ds;
}

static int teacher_index(const runner *r, const qkd_m_teacher *t) {
  for (int i = 0; i < r->m->n_teachers; i++)
    if (r->m->teachers[i] == t) return i;
  return -1;
}

static int train_teacher(runner *r, int i) {
  if (r->trained[i]) return 0;
  const qkd_m_teacher *t = r->m->teachers[i];
  qkd_dataset *ds = dataset(r, t->data);
  if (!ds) return -1;
  progress_ctx pc = {.o = r->o, .tty = isatty(fileno(r->o->log)), .what = t->name};
  qkd_teacher_job job = {.name = t->name, .net = &t->net, .data = ds, .data_opts = &r->dopts[index_of_dataset(r, t->data)],
                         .recipe = recipe(&t->train), .cache_path = t->cache, .threads = r->o->threads,
                         .note = note, .note_ctx = &pc};
  char err[1024];
  fprintf(r->o->log, "teacher '%s': %ld parameters\n", t->name, t->params);
  if (qkd_teacher_train(&job, &r->tres[i], err, sizeof err) != 0) {
    fprintf(r->o->log, "%s\n", err);
    return -1;
  }
  r->trained[i] = 1;
  const qkd_teacher_result *res = &r->tres[i];
  fprintf(r->o->log, "teacher '%s': test accuracy %.4f%s (%.1f s)\n", t->name,
          res->epochs ? res->test_accuracy[res->epochs - 1] : 0.0, res->cached ? " (cached)" : "", res->seconds);
  return 0;
}

int qkd_run_program(const qkd_model *m, const qkd_run_opts *o) {
  double t0 = now_s();
  runner r = {.m = m, .o = o};
  int nd = m->n_datasets ? m->n_datasets : 1, nt = m->n_teachers ? m->n_teachers : 1;
  r.data = calloc((size_t)nd, sizeof *r.data);
  r.dopts = calloc((size_t)nd, sizeof *r.dopts);
  r.loaded = calloc((size_t)nd, sizeof *r.loaded);
  r.tres = calloc((size_t)nt, sizeof *r.tres);
  r.trained = calloc((size_t)nt, sizeof *r.trained);
  qkd_nn_set_threads(o->threads);
  int rc = 0;
  for (int i = 0; i < m->n_teachers && rc == 0; i++) {
    if (train_teacher(&r, i) != 0) rc = 1;
    if (o->stop && *o->stop) rc = 130;
  }
  for (int i = 0; i < m->n_experiments && rc == 0; i++) {
    const qkd_m_experiment *e = m->experiments[i];
    qkd_dataset *ds = dataset(&r, e->data);
    if (!ds) { rc = 1; break; }
    float *tl[3] = {NULL, NULL, NULL};
    int ti = e->teacher ? teacher_index(&r, e->teacher) : -1;
    if (ti >= 0) {
      const qkd_split *splits[3] = {&ds->train, &ds->val, &ds->test};
      for (int k = 0; k < 3; k++) tl[k] = qkd_teacher_logits(r.tres[ti].net, ds, splits[k]);
      double acc = qkd_nn_evaluate(r.tres[ti].net, ds, &ds->test, NULL);
      fprintf(o->log, "experiment '%s': teacher '%s' test accuracy %.4f on '%s'\n", e->name, e->teacher->name, acc,
              e->data->name);
    }
    qkd_kernel k;
    double jit_ms = 0;
    char err[1024];
    if (o->kernel_for(o->kernel_ud, &e->student.circuit, &k, &jit_ms, err, sizeof err) != 0) {
      fprintf(o->log, "%s: error: %s\n", m->path, err);
      rc = 2;
    } else {
      progress_ctx pc = {.o = o, .tty = isatty(fileno(o->log)), .what = e->name};
      qkd_train_opts to = {.threads = o->threads, .stop = o->stop, .progress = progress, .progress_ud = &pc};
      qkd_student_result res[2];
      memset(res, 0, sizeof res);
      int runs = e->baseline ? 2 : 1;
      for (int run = 0; run < runs && rc == 0; run++) {
        int st = qkd_train_student(e, ds, &k, run == 0, tl[0], tl[1], tl[2], &to, &res[run], err, sizeof err);
        if (pc.tty) fputs("\r\033[K", o->log);
        if (st < 0) {
          fprintf(o->log, "%s: error: %s\n", m->path, err);
          rc = 1;
        } else if (st == 1) {
          rc = 130;
        } else {
          fprintf(o->log, "experiment '%s' %s: test accuracy %.4f after %d epochs (%.1f s, %.0f samples/s)\n", e->name,
                  run == 0 ? "distilled" : "baseline", res[run].test_accuracy[res[run].epochs - 1], res[run].epochs,
                  res[run].seconds, res[run].samples_per_s);
        }
      }
      if (res[0].zero_vectors)
        fprintf(o->log, "experiment '%s': %ld all-zero feature vectors were encoded as |0...0>\n", e->name,
                res[0].zero_vectors);
      for (int run = 0; run < 2; run++) qkd_student_result_free(&res[run]);
      if (o->kernel_release) o->kernel_release(o->kernel_ud, &k);
    }
    for (int k2 = 0; k2 < 3; k2++) free(tl[k2]);
  }
  fprintf(o->log, "total %.1f s\n", now_s() - t0);
  for (int i = 0; i < m->n_teachers; i++)
    if (r.trained[i]) qkd_teacher_result_free(&r.tres[i]);
  for (int i = 0; i < m->n_datasets; i++)
    if (r.loaded[i]) qkd_data_free(&r.data[i]);
  free(r.data); free(r.dopts); free(r.loaded); free(r.tres); free(r.trained);
  return rc;
}
