/* run.c — running a checked program (qkd_run.h). Phases: teachers declared on their own, plain
 * experiments, then grid cells; data sets, teachers, teacher logits and kernels are shared
 * through registries keyed by content, so a grid loads, trains and compiles each once. */
#include "qkd_run.h"
#include "qkd_time.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>

#include "qkd_data.h"
#include "qkd_dmk.h"
#include "qkd_traj.h"
#include "qkd_file.h"
#include "qkd_gridreport.h"
#include "qkd_hash.h"
#include "qkd_json.h"
#include "qkd_loss.h"
#include "qkd_nn.h"
#include "qkd_pyout.h"
#include "qkd_qasm.h"
#include "qkd_report.h"
#include "qkd_teacher.h"
#include "qkd_train.h"

#ifndef QKD_VERSION
#define QKD_VERSION "unknown"
#endif

/* ---- progress ---------------------------------------------------------------------------------- */

typedef struct {
  const qkd_run_opts *o;
  int tty;
  double last_print, start;
  const char *what, *phase;
  double rest_s;            /* estimated seconds of the grid after this cell (< 0: unknown / none) */
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
  double t = qkd_now_s();
  if (p->phase != phase) p->phase = phase, p->start = t, p->last_print = t;
  if (step != steps && t - p->last_print < (p->tty ? 0.2 : 5.0)) return;
  p->last_print = t;
  double eta = step > 0 ? (t - p->start) / (double)step * (double)(steps - step) : 0;
  char grid[64] = "";
  if (p->rest_s >= 0) {
    int g = (int)(eta + p->rest_s);
    snprintf(grid, sizeof grid, ", grid %d:%02d:%02d", g / 3600, g / 60 % 60, g % 60);
  }
  fprintf(p->o->log, "%s%s %s: epoch %d/%d step %ld/%ld loss %.4f %.0f samples/s ETA %d:%02d%s%s",
          p->tty ? "\r\033[K" : "", p->what, phase, epoch, epochs, step, steps, loss, samples_per_s,
          (int)eta / 60, (int)eta % 60, grid, p->tty ? "" : "\n");
  fflush(p->o->log);
}

/* ---- registries -------------------------------------------------------------------------------- */

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

void qkd_run_data_opts(const qkd_m_dataset *d, qkd_data_opts *o) { data_opts(d, o); }

static uint64_t data_key(const qkd_data_opts *o) {
  uint64_t h = qkd_hash_str(QKD_HASH_INIT, o->source ? o->source : "");
  int v[11] = {o->n_classes, o->per_class, o->train_limit, o->test_limit, o->validation, o->scale, o->c, o->h, o->w,
               o->source_classes, (int)o->seed};
  h = qkd_hash_bytes(h, v, sizeof v);
  return qkd_hash_bytes(h, o->classes, sizeof(int) * (size_t)o->n_classes);
}

static qkd_recipe recipe(const qkd_m_train *t) {
  return (qkd_recipe){t->optimizer == QKD_OPT_SGD ? QKD_NN_SGD : QKD_NN_ADAM, t->lr, t->beta1, t->beta2, t->momentum,
                      t->epochs, t->batch, (uint64_t)t->seed};
}

typedef struct {
  uint64_t key;
  const char *name, *source;
  qkd_data_opts opts;
  qkd_dataset ds;
} data_slot;

typedef struct {
  uint64_t key;
  const qkd_m_teacher *t;   /* the first declaration met with this key */
  int data;                 /* its data set's slot */
  qkd_teacher_result res;
  char *cache;              /* the cache file used (malloc'd), or NULL */
} teacher_slot;

typedef struct {
  int teacher, data;
  float *logits;            /* on the training split; NULL until a loss needs them */
  double test_accuracy;     /* on the data set's test split */
} logits_slot;

typedef struct {
  uint64_t key;
  qkd_kernel k;
  double ms;
  int noisy; /* k is the density-matrix kernel (qkd_dmk.h), released here */
  qkd_traj *traj; /* a noisy circuit run by trajectories: k runs traj->circuit; NULL otherwise */
} kernel_slot;

typedef struct {
  const qkd_model *m;
  const qkd_run_opts *o;
  data_slot **data;         /* each its own allocation: pointers to a data set stay valid */
  int n_data;
  teacher_slot *teachers;
  int n_teachers;
  logits_slot *logits;
  int n_logits;
  kernel_slot *kernels;
  int n_kernels;
  struct shared_run { uint64_t key; qkd_student_result res; } *shared; /* finished baseline runs */
  int n_shared;
  qkd_train_cache *cache;   /* fitted PCAs */
  int write_failed;         /* outputs that could not be written: the run ends non-zero */
  char failed[512];         /* their names, for the closing message */
} runner;

/* Prints an error of the run itself (kind, what it is about, the message) on log; returns -1. */
static int log_fail(FILE *log, qkd_err_kind kind, const char *path, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int log_fail(FILE *log, qkd_err_kind kind, const char *path, const char *fmt, ...) {
  char msg[sizeof ((qkd_error *)0)->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  qkd_error e;
  qkd_fail(&e, kind, path, "%s", msg);
  qkd_error_print(&e, log);
  return -1;
}

/* Prints e on the log; an error that names nothing (a net's, the trainer's, the kernels') is
 * about the program. */
static void log_error(const runner *r, qkd_error *e) { qkd_error_print(qkd_error_about(e, r->m->path), r->o->log); }

#define GROW(arr, n) do { void *p_ = realloc((arr), sizeof *(arr) * (size_t)((n) + 1)); if (!p_) goto oom; (arr) = p_; } while (0)

static int dataset_slot(runner *r, const qkd_m_dataset *d) {
  qkd_data_opts o;
  data_opts(d, &o);
  uint64_t key = data_key(&o);
  for (int i = 0; i < r->n_data; i++)
    if (r->data[i]->key == key) return i;
  GROW(r->data, r->n_data);
  data_slot *s = calloc(1, sizeof *s);
  if (!s) goto oom;
  r->data[r->n_data] = s;
  s->key = key, s->name = d->name, s->source = d->source, s->opts = o;
  qkd_error err;
  fprintf(r->o->log, "loading data set '%s' (%s)\n", d->name, d->source);
  if (qkd_data_load(&s->opts, &s->ds, &err) != 0) {
    log_error(r, &err);
    free(s);
    return -1;
  }
  qkd_dataset *ds = &s->ds;
  fprintf(r->o->log, "  %d training, %d validation, %d test images of %dx%dx%d, %d classes\n", ds->train.n, ds->val.n,
          ds->test.n, ds->c, ds->h, ds->w, ds->n_classes);
  return r->n_data++;
oom:
  return log_fail(r->o->log, QKD_ERR_MEMORY, r->m->path, "out of memory");
}

/* DIR/teachers/NAME.KEY.EXT (malloc'd): a teacher's files in the run directory. */
static char *teacher_file(const runner *r, const char *name, uint64_t key, const char *ext) {
  size_t n = strlen(r->o->out_dir) + strlen(name) + strlen(ext) + 40;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/teachers/%s.%016llx.%s", r->o->out_dir, name, (unsigned long long)key, ext);
  return p;
}

/* A teacher file of this key in DIR/teachers/ under any teacher's name (malloc'd), or NULL: the
 * key never covers the name, so two teachers of one recipe share one training, in one process
 * and across the processes (slices, tasks, later runs) that share the directory. */
static char *teacher_file_by_key(const runner *r, uint64_t key, const char *ext) {
  char *dir = qkd_file_join(r->o->out_dir, "teachers");
  DIR *d = dir ? opendir(dir) : NULL;
  char tail[64], *found = NULL;
  snprintf(tail, sizeof tail, ".%016llx.%s", (unsigned long long)key, ext);
  size_t tn = strlen(tail);
  for (struct dirent *de; d && !found && (de = readdir(d));) {
    size_t n = strlen(de->d_name);
    if (n > tn && de->d_name[0] != '.' && !strcmp(de->d_name + n - tn, tail)) found = qkd_file_join(dir, de->d_name);
  }
  if (d) closedir(d);
  free(dir);
  return found;
}

/* Trains (or loads) teacher t once per distinct (architecture, recipe, data); returns its slot.
 * own_cache: the cache file to use when the teacher declares none (grid cells), or NULL. */
/* A file's identity in a key: its base name and size. */
static uint64_t hash_file(uint64_t h, const char *path, long long size) {
  const char *base = strrchr(path, '/');
  h = qkd_hash_str(h, base ? base + 1 : path);
  return qkd_hash_bytes(h, &size, sizeof size);
}

static long long file_bytes(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* The slot with this key (< n_teachers), or a new zeroed one at n_teachers (not yet counted);
 * -1 when out of memory. */
static int teacher_slot_find(runner *r, uint64_t key, const qkd_m_teacher *t, int di) {
  for (int i = 0; i < r->n_teachers; i++)
    if (r->teachers[i].key == key) return i;
  GROW(r->teachers, r->n_teachers);
  r->teachers[r->n_teachers] = (teacher_slot){.key = key, .t = t, .data = di};
  return r->n_teachers;
oom:
  return log_fail(r->o->log, QKD_ERR_MEMORY, r->m->path, "out of memory");
}

/* A teacher given by its logits: its slot, keyed by the two files' paths and sizes and its data
 * set; its accuracy on its own data set's test split. */
static int logits_teacher_slot(runner *r, const qkd_m_teacher *t, int di) {
  const char *files[2] = {t->logits, t->test_logits};
  uint64_t key = qkd_hash_str(r->data[di]->key, t->name);
  for (int k = 0; k < 2; k++) key = hash_file(qkd_hash_str(key, files[k]), files[k], file_bytes(files[k]));
  int ti = teacher_slot_find(r, key, t, di);
  if (ti != r->n_teachers) return ti; /* an earlier slot, or -1 */
  teacher_slot *s = &r->teachers[ti];
  double t0 = qkd_now_s();
  float *lg = NULL;
  double acc;
  qkd_error err;
  if (!(s->res.test_accuracy = malloc(sizeof(double))) ||
      qkd_teacher_from_logits(t->logits, t->test_logits, &r->data[di]->ds, &r->data[di]->opts, &lg, &acc, &err) != 0) {
    if (s->res.test_accuracy) log_error(r, &err);
    else log_fail(r->o->log, QKD_ERR_MEMORY, r->m->path, "out of memory");
    free(s->res.test_accuracy);
    return -1;
  }
  free(lg);
  s->res = (qkd_teacher_result){.params = -1, .epochs = 1, .test_accuracy = s->res.test_accuracy, .logits = t->logits,
                                .seconds = qkd_now_s() - t0};
  s->res.test_accuracy[0] = acc;
  fprintf(r->o->log, "teacher '%s': given by its logits (%s), test accuracy %.4f\n", t->name, t->logits, acc);
  return r->n_teachers++;
}

static int teacher_slot_of(runner *r, const qkd_m_teacher *t, int for_cell) {
  int di = dataset_slot(r, t->data);
  if (di < 0) return -1;
  if (t->logits) return logits_teacher_slot(r, t, di);
  const qkd_dataset *ds = &r->data[di]->ds;
  qkd_recipe rc = recipe(&t->train);
  qkd_shape in = {ds->c, ds->h, ds->w, 0};
  uint64_t key = qkd_cache_key(&t->net, in, &rc, &r->data[di]->opts, ds);
  key = qkd_hash_str(key, t->cache ? t->cache : ""); /* not the name: a teacher is its net, recipe and data */
  int ti = teacher_slot_find(r, key, t, di);
  if (ti != r->n_teachers) return ti; /* an earlier slot, or -1 */
  teacher_slot *s = &r->teachers[ti];
  if (t->cache) s->cache = strdup(t->cache);
  else if (for_cell) { /* grid cells keep their teachers in the run directory */
    s->cache = teacher_file(r, t->name, key, "qkw");
    char *other = s->cache && file_bytes(s->cache) < 0 ? teacher_file_by_key(r, key, "qkw") : NULL;
    if (other) { /* trained before under another name */
      fprintf(r->o->log, "teacher '%s': the same net, recipe and data as %s\n", t->name, other);
      free(s->cache);
      s->cache = other;
    }
    qkd_error err;
    char *dir = s->cache ? qkd_file_join(r->o->out_dir, "teachers") : NULL;
    if (dir && qkd_file_mkdir_p(dir, &err) != 0) {
      log_error(r, &err);
      free(dir);
      return -1;
    }
    free(dir);
  }
  progress_ctx pc = {.o = r->o, .tty = isatty(fileno(r->o->log)), .what = t->name, .rest_s = -1};
  qkd_teacher_job job = {.name = t->name, .net = &t->net, .data = ds, .data_opts = &r->data[di]->opts,
                         .recipe = rc, .cache_path = s->cache, .threads = r->o->threads, .note = note, .note_ctx = &pc};
  qkd_error err;
  fprintf(r->o->log, "teacher '%s': %ld parameters, seed %d\n", t->name, t->params, t->train.seed);
  if (qkd_teacher_train(&job, &s->res, &err) != 0) {
    log_error(r, &err);
    free(s->cache);
    return -1;
  }
  const qkd_teacher_result *res = &s->res;
  fprintf(r->o->log, "teacher '%s': test accuracy %.4f%s (%.1f s)\n", t->name,
          res->epochs ? res->test_accuracy[res->epochs - 1] : 0.0, res->cached ? " (cached)" : "", res->seconds);
  return r->n_teachers++;
}

/* Teacher logits files: beside a cached teacher, its logits on one data set's training split
 * and its accuracy on the test split, so that every later process (every grid slice) reads them
 * instead of running the teacher over the data again. "QKDL", u32 version, u64 key (teacher and
 * data set), i64 n, i64 C, f64 test accuracy, f32 logits[n][C], u64 FNV-1a of all before. */
typedef struct {
  uint64_t key;
  long n, C;
  double acc;
  const float *logits;
} logits_file;

static int emit_logits(FILE *f, const void *ctx) {
  const logits_file *l = ctx;
  unsigned char head[40];
  uint32_t version = 1;
  int64_t n = l->n, C = l->C;
  memcpy(head, "QKDL", 4);
  memcpy(head + 4, &version, 4);
  memcpy(head + 8, &l->key, 8);
  memcpy(head + 16, &n, 8);
  memcpy(head + 24, &C, 8);
  memcpy(head + 32, &l->acc, 8);
  uint64_t h = qkd_hash_bytes(QKD_HASH_INIT, head, sizeof head);
  h = qkd_hash_bytes(h, l->logits, sizeof(float) * (size_t)(n * C));
  return fwrite(head, 1, sizeof head, f) != sizeof head || fwrite(l->logits, sizeof(float), (size_t)(n * C), f) != (size_t)(n * C) ||
         fwrite(&h, 8, 1, f) != 1;
}

/* Reads a logits file into logits [n][C] (malloc'd); 0, or -1 when absent, torn or another key. */
static int read_logits(const char *path, uint64_t key, long n, long C, float **logits, double *acc) {
  size_t len;
  unsigned char *b = (unsigned char *)qkd_file_read(path, (size_t)1 << 34, &len, NULL);
  if (!b) return -1;
  int64_t fn, fC;
  uint64_t fk, h;
  int ok = len == 40 + sizeof(float) * (size_t)(n * C) + 8 && !memcmp(b, "QKDL", 4);
  if (ok) {
    memcpy(&fk, b + 8, 8), memcpy(&fn, b + 16, 8), memcpy(&fC, b + 24, 8), memcpy(&h, b + len - 8, 8);
    ok = fk == key && fn == n && fC == C && h == qkd_hash_bytes(QKD_HASH_INIT, b, len - 8);
  }
  if (ok && (*logits = malloc(sizeof(float) * (size_t)(n * C) + 1))) {
    memcpy(acc, b + 32, 8);
    memcpy(*logits, b + 40, sizeof(float) * (size_t)(n * C));
  } else {
    ok = 0;
  }
  free(b);
  return ok ? 0 : -1;
}

/* The teacher's logits on a data set's training split (when `logits`) and its test accuracy. */
static logits_slot *teacher_on(runner *r, int ti, int di, int logits) {
  logits_slot *s = NULL;
  for (int i = 0; i < r->n_logits && !s; i++)
    if (r->logits[i].teacher == ti && r->logits[i].data == di) s = &r->logits[i];
  const teacher_slot *t = &r->teachers[ti];
  const qkd_dataset *ds = &r->data[di]->ds;
  uint64_t key = qkd_hash_bytes(t->key, &r->data[di]->key, 8);
  char *path = NULL;
  if (t->cache && (path = malloc(strlen(t->cache) + 40)))
    sprintf(path, "%s.%016llx.logits", t->cache, (unsigned long long)r->data[di]->key);
  if (!s && t->res.logits) { /* a teacher given by its logits, on this data set's items */
    GROW(r->logits, r->n_logits);
    s = &r->logits[r->n_logits++];
    *s = (logits_slot){ti, di, NULL, NAN};
    qkd_error err;
    if (qkd_teacher_from_logits(t->t->logits, t->t->test_logits, ds, &r->data[di]->opts, &s->logits, &s->test_accuracy, &err) != 0) {
      log_error(r, &err);
      r->n_logits--;
      s = NULL;
    }
    free(path);
    return s;
  }
  if (!s) {
    GROW(r->logits, r->n_logits);
    s = &r->logits[r->n_logits++];
    *s = (logits_slot){ti, di, NULL, NAN};
    if (path && read_logits(path, key, ds->train.n, ds->n_classes, &s->logits, &s->test_accuracy) == 0) {
      free(path);
      return s;
    }
    s->test_accuracy = qkd_nn_evaluate(t->res.net, ds, &ds->test, NULL);
  }
  if ((logits || path) && !s->logits) {
    if (!(s->logits = qkd_teacher_logits(t->res.net, ds, &ds->train))) goto oom;
    if (path) { /* for the next process; a failure only costs it the time */
      logits_file lf = {key, ds->train.n, ds->n_classes, s->test_accuracy, s->logits};
      qkd_error err;
      char text[QKD_ERROR_TEXT_MAX];
      if (qkd_file_write_atomic(path, emit_logits, &lf, &err) != 0)
        fprintf(r->o->log, "  note: %s\n", qkd_error_text(&err, text, sizeof text));
    }
  }
  free(path);
  return s;
oom:
  free(path);
  log_fail(r->o->log, QKD_ERR_MEMORY, r->m->path, "out of memory for the teacher's logits");
  return NULL;
}

static uint64_t kernel_key(const qkd_ir_circuit *c) {
  int prec = (int)c->precision;
  return qkd_hash_bytes(qkd_ir_hash(c), &prec, sizeof prec);
}

/* The compiled kernel of a circuit, shared by every run with the same circuit and precision. */
static kernel_slot *kernel_of(runner *r, const qkd_ir_circuit *c, int *fresh) {
  uint64_t key = kernel_key(c);
  *fresh = 0;
  for (int i = 0; i < r->n_kernels; i++)
    if (r->kernels[i].key == key) return &r->kernels[i];
  GROW(r->kernels, r->n_kernels);
  kernel_slot *s = &r->kernels[r->n_kernels];
  qkd_error err;
  /* a noisy circuit runs on the exact density-matrix kernel (qkd_dmk.h) or as trajectories of
   * a noiseless one (qkd_traj.h), the others on the caller's kernels (the JIT, a built
   * executable's, or the interpreter) */
  int noisy = qkd_ir_noisy(c) && !c->trajectories;
  s->ms = 0;
  s->noisy = noisy;
  s->traj = NULL;
  const qkd_ir_circuit *run = c;
  if (c->trajectories) {
    if (!(s->traj = malloc(sizeof *s->traj))) goto oom;
    if (qkd_traj_init(s->traj, c, c->trajectories, &err) != 0) {
      free(s->traj);
      log_error(r, &err);
      return NULL;
    }
    run = &s->traj->circuit;
  }
  if (noisy ? qkd_dmk_kernel(c, &s->k, &err) != 0 : r->o->kernel_for(r->o->kernel_ud, run, &s->k, &s->ms, &err) != 0) {
    if (s->traj) qkd_traj_free(s->traj), free(s->traj);
    log_error(r, &err);
    return NULL;
  }
  s->key = key;
  *fresh = 1;
  r->n_kernels++;
  return s;
oom:
  log_fail(r->o->log, QKD_ERR_MEMORY, r->m->path, "out of memory");
  return NULL;
}

/* The resume key of an experiment or cell: its checked text, its data files and those of a
 * teacher given by its logits (base names and sizes), the version. */
static uint64_t experiment_key(const qkd_m_experiment *e) {
  uint64_t h = qkd_hash_str(QKD_HASH_INIT, e->key_text ? e->key_text : e->name);
  qkd_data_opts o;
  data_opts(e->data, &o);
  qkd_data_file files[QKD_DATA_MAX_FILES];
  int n = 0;
  if (qkd_data_identify(&o, files, &n, NULL) != 0) n = 0; /* loading will report it */
  for (int i = 0; i < n; i++) h = hash_file(h, files[i].path, files[i].size);
  const qkd_m_teacher *t = e->teacher;
  for (int k = 0; t && t->logits && k < 2; k++) h = hash_file(h, k ? t->test_logits : t->logits, file_bytes(k ? t->test_logits : t->logits));
  return qkd_hash_str(h, QKD_VERSION);
}

/* ---- one experiment ---------------------------------------------------------------------------- */

typedef struct {
  qkd_report_experiment x;
  qkd_student_result res[3];  /* baseline, distilled, control (qkd_run_kind) */
  char loss[256];
  int teacher;                /* its teacher slot, or -1 */
} exp_run;

/* Records an output that could not be written. */
static void missing(runner *r, const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t n = strlen(r->failed);
  if (r->write_failed++ < 8 && n + strlen(base) + 3 < sizeof r->failed)
    snprintf(r->failed + n, sizeof r->failed - n, "%s%s", n ? ", " : "", base);
}

static void write_weights(runner *r, const char *stem, const char *name, const char *kind, const qkd_student_result *res) {
  qkd_error err;
  size_t n = strlen(stem) + 32;
  char *path = malloc(n);
  if (!path) { r->write_failed = 1; return; }
  snprintf(path, n, "%s.%s.qkw", stem, kind);
  if (qkd_report_write_weights(path, name, res->circuit_params, res->quantum_params, res->classical,
                               res->classical_params, &err) != 0) {
    log_error(r, &err);
    missing(r, path);
  }
  free(path);
}

/* A finished run's outputs for Python (qkd_pyout.h) beside its .qkw; labels: the experiment's
 * test labels (res NULL). */
static void write_python(runner *r, const char *stem, const qkd_m_experiment *e, const qkd_dataset *ds,
                         qkd_run_kind kind, const char *name, const qkd_student_result *res) {
  qkd_error err;
  if ((res ? qkd_pyout_write_run(stem, name, kind, e, ds, res, &err) : qkd_pyout_write_labels(stem, ds, &err)) != 0) {
    log_error(r, &err);
    missing(r, err.path);
  }
}

/* --export: the distilled student's circuit for the first test sample, <stem>.distilled.qasm. */
static void write_qasm(runner *r, const char *stem, const qkd_m_experiment *e, const qkd_dataset *ds,
                       const qkd_student_result *res) {
  qkd_error err;
  char *path = malloc(strlen(stem) + 32), note[256];
  double *x = calloc((size_t)e->student.circuit.n_features + 1, sizeof *x);
  if (!path || !x) { free(path); free(x); missing(r, "the circuit's .qasm"); return; }
  sprintf(path, "%s.distilled.qasm", stem);
  snprintf(note, sizeof note, "experiment '%s', distilled run, features of test sample 0 (label %d)", e->name,
           ds->test.n ? ds->test.y[0] : -1);
  qkd_qasm_opts qo = {r->o->export_qasm == 2 ? QKD_QASM2 : QKD_QASM3, res->circuit_params, x, note};
  if (qkd_student_sample_features(e, ds, &ds->test, 0, res->classical, res->classical_params, x, &err) != 0 ||
      qkd_qasm_write_file(path, &e->student.circuit, &qo, &err) != 0) {
    log_error(r, &err);
    missing(r, path);
  }
  free(path);
  free(x);
}

/* Runs an experiment's trainings. stem: where the weights go (PATH without ".kind.qkw").
 * Returns 0, 1 (an error, reported), 2 (internal) or 130 (stopped). */
static int run_experiment(runner *r, const qkd_m_experiment *e, int for_cell, const char *what, double rest_s,
                          const char *stem, exp_run *xr) {
  const qkd_run_opts *o = r->o;
  double te = qkd_now_s();
  memset(xr, 0, sizeof *xr);
  xr->teacher = -1;
  qkd_report_experiment *x = &xr->x;
  int di = dataset_slot(r, e->data);
  if (di < 0) return 1;
  const qkd_dataset *ds = &r->data[di]->ds;
  qkd_loss_format(e->loss, xr->loss, sizeof xr->loss);
  *x = (qkd_report_experiment){.experiment = e->name, .dataset = e->data->name, .source = e->data->source,
                               .classes = ds->n_classes, .qubits = e->student.qubits, .loss = xr->loss,
                               .seed = e->train.seed, .data_files = ds->files, .n_data_files = ds->n_files};
  const float *tl = NULL;
  if (e->teacher) {
    double t0 = qkd_now_s();
    int ti = teacher_slot_of(r, e->teacher, for_cell);
    if (ti < 0) return 1;
    xr->teacher = ti;
    logits_slot *ls = teacher_on(r, ti, di, e->uses_teacher);
    if (!ls) return 1;
    tl = ls->logits;
    x->teacher = (qkd_report_exp_teacher){e->teacher->name, r->teachers[ti].res.params, ls->test_accuracy};
    x->seconds.teacher = qkd_now_s() - t0;
    fprintf(o->log, "%s: teacher '%s' test accuracy %.4f on '%s'\n", what, e->teacher->name, ls->test_accuracy,
            e->data->name);
  }
  int fresh, efresh = 0, again;
  kernel_slot *ks = kernel_of(r, &e->student.circuit, &fresh);
  if (!ks) return 2;
  const qkd_kernel *eval_k = NULL; /* eval_noise: the test split runs on the circuit with its channels */
  const qkd_traj *eval_traj = NULL;
  if (e->eval_noise) {
    kernel_slot *es = kernel_of(r, &e->eval_circuit, &efresh);
    if (!es) return 2;
    ks = kernel_of(r, &e->student.circuit, &again); /* r->kernels may have moved */
    eval_k = &es->k;
    eval_traj = es->traj;
  }
  x->seconds.jit = fresh ? ks->ms / 1e3 : 0;
  progress_ctx pc = {.o = o, .tty = isatty(fileno(o->log)), .what = what, .rest_s = rest_s};
  uint64_t key = qkd_hash_bytes(experiment_key(e), &o->threads, sizeof o->threads);
  static const char *const names[3] = {"baseline", "distilled", "control"};
  qkd_run_kind order[3] = {QKD_RUN_DISTILLED, QKD_RUN_BASELINE, QKD_RUN_CONTROL};
  int rc = 0;
  for (int i = 0; i < 3 && rc == 0; i++) {
    qkd_run_kind kind = order[i];
    if ((kind == QKD_RUN_BASELINE && !e->baseline) || (kind == QKD_RUN_CONTROL && !e->control)) continue;
    qkd_error err;
    qkd_student_result *res = &xr->res[kind];
    char *ckpt = malloc(strlen(stem) + 32);
    if (!ckpt) return 1;
    sprintf(ckpt, "%s.%s.ckpt", stem, names[kind]);
    qkd_train_opts to = {.threads = o->threads, .cache = r->cache, .stop = o->stop, .progress = progress, .progress_ud = &pc,
                         .checkpoint = ckpt, .checkpoint_key = qkd_hash_bytes(key, &kind, sizeof kind),
                         .name = for_cell ? what : e->name, .note = note, .eval_kernel = eval_k,
                         .traj = ks->traj, .eval_traj = eval_traj};
    /* a baseline depends on no teacher or loss: cells that differ only there share it */
    uint64_t bkey = qkd_hash_str(qkd_hash_bytes(QKD_HASH_INIT, &o->threads, sizeof o->threads),
                                 e->baseline_key_text ? e->baseline_key_text : "");
    int shared = -1;
    for (int j = 0; kind == QKD_RUN_BASELINE && e->baseline_key_text && j < r->n_shared && shared < 0; j++)
      if (r->shared[j].key == bkey) shared = j;
    int st;
    if (shared >= 0) {
      st = qkd_student_result_copy(res, &r->shared[shared].res) == 0 ? 0 : -1;
      if (st < 0) qkd_fail(&err, QKD_ERR_MEMORY, NULL, "out of memory");
      else fprintf(o->log, "%s baseline: the same run as an earlier cell's (no teacher, same student, data and seed)\n", what);
    } else {
      st = qkd_train_student(e, ds, &ks->k, kind, kind == QKD_RUN_BASELINE ? NULL : tl, &to, res, &err);
      if (st == 0 && kind == QKD_RUN_BASELINE && e->baseline_key_text) {
        void *p = realloc(r->shared, sizeof *r->shared * (size_t)(r->n_shared + 1));
        if (p) {
          r->shared = p;
          r->shared[r->n_shared].key = bkey;
          if (qkd_student_result_copy(&r->shared[r->n_shared].res, res) == 0) r->n_shared++;
        }
      }
    }
    if (res->checkpoint_failed) missing(r, ckpt);
    free(ckpt);
    if (pc.tty) fputs("\r\033[K", o->log);
    if (st < 0) {
      log_error(r, &err);
      return 1;
    }
    if (kind == QKD_RUN_DISTILLED) x->distilled = res, x->seconds.distilled = res->seconds;
    else if (kind == QKD_RUN_BASELINE) x->baseline = res, x->seconds.baseline = res->seconds;
    else x->control = res, x->seconds.control = res->seconds;
    if (st == 1) {
      rc = 130;
      break;
    }
    write_weights(r, stem, e->name, names[kind], res);
    write_python(r, stem, e, ds, kind, names[kind], res);
    if (kind == QKD_RUN_DISTILLED && o->export_qasm) write_qasm(r, stem, e, ds, res);
    fprintf(o->log, "%s %s: test accuracy %.4f after %d epochs (%.1f s, %.0f samples/s)\n", what, names[kind],
            res->test_accuracy[res->epochs - 1], res->epochs, res->seconds, res->samples_per_s);
  }
  if (rc == 0) write_python(r, stem, e, ds, QKD_RUN_DISTILLED, NULL, NULL);
  if (xr->res[QKD_RUN_DISTILLED].zero_vectors)
    fprintf(o->log, "%s: %ld all-zero feature vectors were encoded as |0...0>\n", what,
            xr->res[QKD_RUN_DISTILLED].zero_vectors);
  x->seconds.total = qkd_now_s() - te;
  x->completed = rc == 0;
  return rc;
}

/* Removes an experiment's checkpoints once its results are written. */
static void drop_checkpoints(const char *stem) {
  static const char *const names[3] = {"baseline", "distilled", "control"};
  char *p = malloc(strlen(stem) + 32);
  for (int k = 0; p && k < 3; k++) {
    sprintf(p, "%s.%s.ckpt", stem, names[k]);
    remove(p);
  }
  free(p);
}

static void exp_run_free(exp_run *xr) {
  for (int k = 0; k < 3; k++) qkd_student_result_free(&xr->res[k]);
}

/* ---- plain experiments ---------------------------------------------------------------------------- */

/* Writes results.json, curves.csv and curves.svg for the plain experiments finished so far. */
static int write_report(runner *r, const qkd_report_experiment *ex, int n_ex) {
  qkd_report_teacher *tr = calloc((size_t)r->n_teachers + 1, sizeof *tr);
  if (!tr) return -1;
  for (int i = 0; i < r->n_teachers; i++)
    tr[i] = (qkd_report_teacher){r->teachers[i].t->name, r->teachers[i].t->data->name, &r->teachers[i].res};
  qkd_report rep = {.teachers = tr, .n_teachers = r->n_teachers, .experiments = ex, .n_experiments = n_ex,
                    .threads = r->o->threads, .overrides = r->o->overrides, .n_overrides = r->o->n_overrides};
  qkd_error err;
  int rc = qkd_report_write(r->o->out_dir, &rep, &err);
  if (rc != 0) {
    log_error(r, &err);
    missing(r, "results.json, curves.csv or curves.svg");
  }
  free(tr);
  return rc;
}

/* Whether some grid cell names a teacher called `name` (then it is trained when a cell needs it). */
static int teacher_of_cells(const qkd_model *m, const char *name) {
  for (int i = 0; i < m->n_cells; i++) {
    const qkd_m_teacher *t = m->cells[i].experiment->teacher;
    if (t && !strcmp(t->name, name)) return 1;
  }
  return 0;
}

static int run_plain(runner *r, double t0) {
  const qkd_model *m = r->m;
  const qkd_run_opts *o = r->o;
  int rc = 0;
  for (int i = 0; i < m->n_teachers && rc == 0; i++) {
    if (m->n_cells && teacher_of_cells(m, m->teachers[i]->name)) continue;
    if (teacher_slot_of(r, m->teachers[i], 0) < 0) rc = 1;
    if (o->stop && *o->stop) rc = 130;
  }
  double teacher_s = qkd_now_s() - t0;
  int ne = 0;
  for (int i = 0; i < m->n_experiments; i++) ne += !m->experiments[i]->grid_base;
  if (rc != 0 || (ne == 0 && m->n_cells)) return rc;
  exp_run *xr = calloc((size_t)ne + 1, sizeof *xr);
  qkd_report_experiment *ex = calloc((size_t)ne + 1, sizeof *ex);
  if (!xr || !ex) {
    free(xr), free(ex);
    log_fail(o->log, QKD_ERR_MEMORY, m->path, "out of memory");
    return 1;
  }
  int done = 0;
  if (write_report(r, ex, 0) != 0) rc = 1; /* creates the run directory */
  for (int i = 0, k = 0; i < m->n_experiments && rc == 0; i++) {
    const qkd_m_experiment *e = m->experiments[i];
    if (e->grid_base) continue;
    char *stem = qkd_file_join(o->out_dir, e->name), *what = malloc(strlen(e->name) + 16);
    if (!stem || !what) {
      free(stem), free(what);
      rc = 1;
      break;
    }
    sprintf(what, "experiment '%s'", e->name);
    int failed = r->write_failed;
    rc = run_experiment(r, e, 0, what, -1, stem, &xr[k]);
    free(what);
    if (rc == 1 || rc == 2) {
      exp_run_free(&xr[k]);
      free(stem);
      break;
    }
    ex[k] = xr[k].x;
    ex[k].seconds.total += teacher_s;
    ex[k].seconds.teacher = teacher_s;
    done = ++k;
    /* an output not written keeps the checkpoints: the next run redoes it from the last epoch */
    if (write_report(r, ex, done) == 0 && rc == 0 && r->write_failed == failed) drop_checkpoints(stem);
    free(stem);
  }
  if (rc == 0 && done) {
    qkd_report rep = {.experiments = ex, .n_experiments = done};
    fputc('\n', o->log);
    qkd_report_summary(&rep, o->log);
    fprintf(o->log, "results in %s/results.json\n", o->out_dir);
  }
  for (int i = 0; i < done; i++) exp_run_free(&xr[i]);
  free(xr);
  free(ex);
  return rc;
}

/* ---- grid cells --------------------------------------------------------------------------------- */

static void cell_key(const qkd_m_cell *c, char out[17]) {
  snprintf(out, 17, "%016llx", (unsigned long long)experiment_key(c->experiment));
}

/* DIR/cells/<name> (malloc'd), without extension. */
static char *cell_stem(const runner *r, const qkd_m_cell *c) {
  char *cells = qkd_file_join(r->o->out_dir, "cells");
  char *stem = cells ? qkd_file_join(cells, c->name) : NULL;
  free(cells);
  return stem;
}

/* Whether the cell's file is there with this key (and a finished run). */
static int cell_done(const char *path, const char *key) {
  struct stat st;
  if (stat(path, &st) != 0) return 0;
  qkd_json *v = qkd_json_read_file(path, NULL);
  const char *k = qkd_json_s(qkd_json_get(v, "key"));
  const qkd_json *c = qkd_json_get(v, "completed");
  int done = k && !strcmp(k, key) && c && c->kind == QKD_JSON_BOOL && c->num != 0;
  qkd_json_free(v);
  return done;
}

static int run_cells(runner *r) {
  const qkd_model *m = r->m;
  const qkd_run_opts *o = r->o;
  int N = m->n_cells, lo = 0, hi = N;
  if (o->slice_n > 0) {
    lo = (int)((long)(o->slice_k - 1) * N / o->slice_n);
    hi = (int)((long)o->slice_k * N / o->slice_n);
  }
  char (*keys)[17] = calloc((size_t)N + 1, sizeof *keys);
  if (!keys) return 1;
  for (int i = 0; i < N; i++) cell_key(&m->cells[i], keys[i]);
  qkd_error err;
  if (qkd_gridreport_write_manifest(o->out_dir, m, (const char(*)[17])keys, &err) != 0) {
    log_error(r, &err);
    free(keys);
    return 1;
  }
  int rc = 0, ran = 0, skipped = 0;
  double spent = 0;
  for (int i = lo; i < hi && rc == 0; i++) {
    const qkd_m_cell *c = &m->cells[i];
    char *stem = cell_stem(r, c);
    char *path = stem ? malloc(strlen(stem) + 8) : NULL;
    if (!path) {
      free(stem);
      rc = 1;
      break;
    }
    sprintf(path, "%s.json", stem);
    if (!o->fresh && cell_done(path, keys[i])) {
      skipped++;
      free(stem), free(path);
      continue;
    }
    int todo = hi - i - 1; /* an upper bound: some later cells may be done already */
    double rest = ran ? spent / ran * todo : -1;
    char what[1400];
    snprintf(what, sizeof what, "[%d/%d] %s", i - lo + 1, hi - lo, c->name);
    double t0 = qkd_now_s();
    exp_run xr;
    int failed = r->write_failed;
    rc = run_experiment(r, c->experiment, 1, what, rest, stem, &xr);
    if (rc == 0 && r->write_failed != failed) {
      fprintf(o->log, "%s: not marked done (outputs missing, see above); the next run redoes it from its checkpoints\n", what);
    } else if (rc == 0) {
      const qkd_m_grid *g = c->grid;
      const char **labels = calloc((size_t)g->n_axes + 1, sizeof *labels), **values = calloc((size_t)g->n_axes + 1, sizeof *values);
      for (int k = 0; labels && values && k < g->n_axes; k++)
        labels[k] = g->axes[k].label, values[k] = g->axes[k].names[c->value[k]];
      const qkd_m_teacher *t = c->experiment->teacher;
      qkd_report_cell cell = {c->name, g->name, keys[i], g->n_axes, labels, values, c->seed,
                              t ? t->name : NULL, t ? t->train.seed : 0, xr.teacher >= 0 ? &r->teachers[xr.teacher].res : NULL};
      qkd_report rep = {.threads = o->threads, .overrides = o->overrides, .n_overrides = o->n_overrides};
      if (!labels || !values || qkd_report_write_cell(path, &rep, &xr.x, &cell, &err) != 0) {
        if (labels && values) log_error(r, &err);
        else fputs("out of memory\n", o->log);
        missing(r, path);
      } else {
        drop_checkpoints(stem);
      }
      free(labels);
      free(values);
      ran++;
      spent += qkd_now_s() - t0;
    }
    exp_run_free(&xr);
    free(stem), free(path);
  }
  if (skipped) fprintf(o->log, "%d cell%s already done (same key) in %s/cells; --fresh runs them again\n", skipped,
                       skipped == 1 ? "" : "s", o->out_dir);
  free(keys);
  return rc;
}

/* Each teacher's weights for Python (qkd_pyout.h) beside its cache in DIR/teachers/: written when
 * it was trained here, or when missing (a cached teacher's file from an earlier run stays); a
 * teacher given by its logits has none. */
static void write_teachers(runner *r) {
  for (int i = 0; i < r->n_teachers; i++) {
    const teacher_slot *s = &r->teachers[i];
    if (s->res.logits) continue; /* given by its logits: no weights */
    char *npz = teacher_file(r, s->t->name, s->key, "npz");
    struct stat sb;
    qkd_error err;
    if (!npz) missing(r, "a teacher's .npz");
    else if ((!s->res.cached || stat(npz, &sb) != 0) &&
             qkd_pyout_write_teacher(npz, s->t, &r->data[s->data]->ds, s->res.net, &err) != 0) {
      log_error(r, &err);
      missing(r, npz);
    }
    free(npz);
  }
}

int qkd_run_program(const qkd_model *m, const qkd_run_opts *o) {
  double t0 = qkd_now_s();
  if (o->slice_n > 0 && m->n_cells == 0) {
    log_fail(o->log, QKD_ERR_INPUT, m->path, "--cells slices grid cells, but the program declares no grid");
    return 1;
  }
  runner r = {.m = m, .o = o, .cache = qkd_train_cache_new()};
  qkd_nn_set_threads(o->threads);
  int rc = 0;
  if (o->teachers_only) {
    /* every teacher once: the plain experiments' (declared) and each cell's (per seed) */
    for (int i = 0; i < m->n_teachers && rc == 0; i++)
      if (!(m->n_cells && teacher_of_cells(m, m->teachers[i]->name))) {
        if (!m->teachers[i]->cache)
          fprintf(o->log, "%s: warning: teacher '%s' has no cache: field; --teachers-only trains it but keeps nothing\n",
                  m->path, m->teachers[i]->name);
        if (teacher_slot_of(&r, m->teachers[i], 0) < 0) rc = 1;
      }
    for (int i = 0; i < m->n_cells && rc == 0; i++)
      if (m->cells[i].experiment->teacher && teacher_slot_of(&r, m->cells[i].experiment->teacher, 1) < 0) rc = 1;
    if (rc == 0 && o->stop && *o->stop) rc = 130;
    if (rc == 0) fprintf(o->log, "%d teacher%s ready\n", r.n_teachers, r.n_teachers == 1 ? "" : "s");
  } else if (o->slice_n == 0) {
    rc = run_plain(&r, t0);
  }
  if (rc == 0 && m->n_cells && !o->teachers_only) {
    rc = run_cells(&r);
    if (rc == 0 || rc == 130) {
      qkd_error err;
      const char *dirs[1] = {o->out_dir};
      if (qkd_gridreport(dirs, 1, o->out_dir, NULL, 0, o->log, &err) != 0) {
        log_error(&r, &err);
        if (rc == 0) rc = 1;
      }
    }
  }
  if (rc == 0 || rc == 130) write_teachers(&r);
  if (rc == 0 && r.write_failed) {
    log_fail(o->log, QKD_ERR_IO, o->out_dir,
             "%d output%s could not be written (%s%s; see above): the run's results are incomplete; "
             "free space or fix permissions and run again (finished cells and epochs are kept)",
             r.write_failed, r.write_failed == 1 ? "" : "s", r.failed, r.write_failed > 8 ? ", …" : "");
    rc = 1;
  }
  fprintf(o->log, "total %.1f s\n", qkd_now_s() - t0);
  for (int i = 0; i < r.n_kernels; i++) {
    if (r.kernels[i].noisy) qkd_dmk_free(&r.kernels[i].k);
    else if (o->kernel_release) o->kernel_release(o->kernel_ud, &r.kernels[i].k);
    if (r.kernels[i].traj) qkd_traj_free(r.kernels[i].traj), free(r.kernels[i].traj);
  }
  for (int i = 0; i < r.n_shared; i++) qkd_student_result_free(&r.shared[i].res);
  qkd_train_cache_free(r.cache);
  free(r.shared);
  for (int i = 0; i < r.n_logits; i++) free(r.logits[i].logits);
  for (int i = 0; i < r.n_teachers; i++) {
    qkd_teacher_result_free(&r.teachers[i].res);
    free(r.teachers[i].cache);
  }
  for (int i = 0; i < r.n_data; i++) {
    qkd_data_free(&r.data[i]->ds);
    free(r.data[i]);
  }
  free(r.data); free(r.teachers); free(r.logits); free(r.kernels);
  return rc;
}
