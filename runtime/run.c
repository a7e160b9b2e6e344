/* run.c — running a checked program (qkd_run.h). */
#include "qkd_run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qkd_data.h"
#include "qkd_loss.h"
#include "qkd_nn.h"
#include "qkd_report.h"
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

/* Writes results.json, curves.csv and curves.svg for everything finished so far. */
static int write_report(runner *r, const qkd_report_experiment *ex, int n_ex) {
  const qkd_model *m = r->m;
  qkd_report_teacher *tr = calloc((size_t)m->n_teachers + 1, sizeof *tr);
  int nt = 0;
  for (int i = 0; i < m->n_teachers; i++)
    if (r->trained[i]) tr[nt++] = (qkd_report_teacher){m->teachers[i]->name, m->teachers[i]->data->name, &r->tres[i]};
  qkd_report rep = {.teachers = tr, .n_teachers = nt, .experiments = ex, .n_experiments = n_ex,
                    .threads = r->o->threads, .overrides = r->o->overrides, .n_overrides = r->o->n_overrides};
  char err[1200];
  int rc = qkd_report_write(r->o->out_dir, &rep, err, sizeof err);
  if (rc != 0) fprintf(r->o->log, "%s\n", err);
  free(tr);
  return rc;
}

static void write_weights(runner *r, const char *exp, const char *kind, const qkd_student_result *res) {
  char err[1200];
  size_t n = strlen(r->o->out_dir) + strlen(exp) + 32;
  char *path = malloc(n);
  snprintf(path, n, "%s/%s.%s.qkw", r->o->out_dir, exp, kind);
  if (qkd_report_write_weights(path, exp, res->circuit_params, res->quantum_params, res->classical,
                               res->classical_params, err, sizeof err) != 0)
    fprintf(r->o->log, "%s\n", err);
  free(path);
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
  double teacher_s = now_s() - t0;
  int ne = m->n_experiments;
  qkd_student_result (*res)[2] = calloc((size_t)ne + 1, sizeof *res);
  qkd_report_experiment *ex = calloc((size_t)ne + 1, sizeof *ex);
  char (*loss_text)[256] = calloc((size_t)ne + 1, sizeof *loss_text);
  int done = 0;
  if (rc == 0 && write_report(&r, ex, 0) != 0) rc = 1; /* creates the run directory */
  for (int i = 0; i < ne && rc == 0; i++) {
    const qkd_m_experiment *e = m->experiments[i];
    double te = now_s();
    qkd_dataset *ds = dataset(&r, e->data);
    if (!ds) { rc = 1; break; }
    qkd_report_experiment *x = &ex[i];
    qkd_loss_format(e->loss, loss_text[i], sizeof loss_text[i]);
    *x = (qkd_report_experiment){.experiment = e->name, .dataset = e->data->name, .source = e->data->source,
                                 .classes = ds->n_classes, .qubits = e->student.qubits, .loss = loss_text[i],
                                 .seed = e->train.seed, .data_files = ds->files, .n_data_files = ds->n_files};
    x->seconds.teacher = teacher_s;
    float *tl = NULL; /* the teacher's logits on the training split, computed once */
    int ti = e->teacher ? teacher_index(&r, e->teacher) : -1;
    if (ti >= 0) {
      if (e->uses_teacher && !(tl = qkd_teacher_logits(r.tres[ti].net, ds, &ds->train))) {
        fprintf(o->log, "%s: error: out of memory for the teacher's logits\n", m->path);
        rc = 1;
        break;
      }
      double acc = qkd_nn_evaluate(r.tres[ti].net, ds, &ds->test, NULL);
      x->teacher = (qkd_report_exp_teacher){e->teacher->name, r.tres[ti].params, acc};
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
      x->seconds.jit = jit_ms / 1e3;
      progress_ctx pc = {.o = o, .tty = isatty(fileno(o->log)), .what = e->name};
      qkd_train_opts to = {.threads = o->threads, .stop = o->stop, .progress = progress, .progress_ud = &pc};
      int runs = e->baseline ? 2 : 1;
      for (int run = 0; run < runs && rc == 0; run++) {
        int st = qkd_train_student(e, ds, &k, run == 0, tl, &to, &res[i][run], err, sizeof err);
        if (pc.tty) fputs("\r\033[K", o->log);
        const char *kind = run == 0 ? "distilled" : "baseline";
        if (st < 0) {
          fprintf(o->log, "%s: error: %s\n", m->path, err);
          rc = 1;
          break;
        }
        if (run == 0) x->distilled = &res[i][0], x->seconds.distilled = res[i][0].seconds;
        else x->baseline = &res[i][1], x->seconds.baseline = res[i][1].seconds;
        if (st == 1) {
          rc = 130;
          break;
        }
        write_weights(&r, e->name, kind, &res[i][run]);
        fprintf(o->log, "experiment '%s' %s: test accuracy %.4f after %d epochs (%.1f s, %.0f samples/s)\n", e->name,
                kind, res[i][run].test_accuracy[res[i][run].epochs - 1], res[i][run].epochs, res[i][run].seconds,
                res[i][run].samples_per_s);
      }
      if (res[i][0].zero_vectors)
        fprintf(o->log, "experiment '%s': %ld all-zero feature vectors were encoded as |0...0>\n", e->name,
                res[i][0].zero_vectors);
      if (o->kernel_release) o->kernel_release(o->kernel_ud, &k);
    }
    free(tl);
    x->seconds.total = now_s() - te + teacher_s;
    x->completed = rc == 0;
    done = i + 1;
    if (rc == 0 || rc == 130) write_report(&r, ex, done);
  }
  if (rc == 0 && done) {
    qkd_report rep = {.experiments = ex, .n_experiments = done};
    fputc('\n', o->log);
    qkd_report_summary(&rep, o->log);
    fprintf(o->log, "results in %s/results.json\n", o->out_dir);
  }
  for (int i = 0; i < ne; i++)
    for (int run = 0; run < 2; run++) qkd_student_result_free(&res[i][run]);
  free(res);
  free(ex);
  free(loss_text);
  fprintf(o->log, "total %.1f s\n", now_s() - t0);
  for (int i = 0; i < m->n_teachers; i++)
    if (r.trained[i]) qkd_teacher_result_free(&r.tres[i]);
  for (int i = 0; i < m->n_datasets; i++)
    if (r.loaded[i]) qkd_data_free(&r.data[i]);
  free(r.data); free(r.dopts); free(r.loaded); free(r.tres); free(r.trained);
  return rc;
}
