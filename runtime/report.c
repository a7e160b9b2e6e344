/* report.c — results.json, curves.csv, curves.svg, the summary table and the student weights
 * files of qkd_report.h. */
#include "qkd_blas.h"
#include "qkd_err.h"
#include "qkd_report.h"

#include "qkd_file.h"
#include "qkd_hash.h"
#include "qkd_json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef QKD_VERSION
#define QKD_VERSION "unknown"
#endif


/* ---- text ---- */

static double last(const double *v, int n) { return v && n > 0 ? v[n - 1] : NAN; }
static double at(const double *v, int n, int i) { return v && i < n ? v[i] : NAN; }

/* ---- results.json ---- */

static void json_run(qkd_jw *w, const char *key, const qkd_student_result *r) {
  if (!r) { qkd_jw_null(w, key); return; }
  qkd_jw_open(w, key, '{');
  qkd_jw_num(w, "test_accuracy", last(r->test_accuracy, r->epochs));
  qkd_jw_nums(w, "test_accuracy_per_epoch", r->test_accuracy, r->epochs);
  qkd_jw_nums(w, "train_loss", r->train_loss, r->epochs);
  if (r->validation_accuracy) qkd_jw_nums(w, "validation_accuracy_per_epoch", r->validation_accuracy, r->epochs);
  qkd_jw_num(w, "seconds", r->seconds);
  qkd_jw_close(w, '}');
}

static void json_cell(qkd_jw *w, const qkd_report_cell *c) {
  qkd_jw_str(w, "qkdc", QKD_VERSION);
  qkd_jw_str(w, "cell", c->name);
  qkd_jw_str(w, "grid", c->grid);
  qkd_jw_str(w, "key", c->key);
  qkd_jw_open(w, "axes", '{');
  for (int i = 0; i < c->n_axes; i++) qkd_jw_str(w, c->labels[i], c->values[i]);
  qkd_jw_close(w, '}');
  qkd_jw_int(w, "seed", c->seed);
  const qkd_teacher_result *t = c->teacher;
  if (t) {
    qkd_jw_open(w, "teacher_training", '{');
    qkd_jw_str(w, "name", c->teacher_name);
    qkd_jw_int(w, "seed", c->teacher_seed);
    qkd_jw_num(w, "test_accuracy", last(t->test_accuracy, t->epochs));
    qkd_jw_nums(w, "test_accuracy_per_epoch", t->test_accuracy, t->epochs);
    qkd_jw_num(w, "seconds", t->seconds);
    qkd_jw_bool(w, "cached", t->cached);
    qkd_jw_close(w, '}');
  } else {
    qkd_jw_null(w, "teacher_training");
  }
}

static void json_experiment(qkd_jw *w, const qkd_report *rep, const qkd_report_experiment *e, const qkd_report_cell *cell) {
  const qkd_student_result *s = e->distilled ? e->distilled : e->baseline;
  qkd_jw_open(w, NULL, '{');
  if (cell) json_cell(w, cell);
  qkd_jw_str(w, "experiment", e->experiment);
  qkd_jw_str(w, "dataset", e->dataset);
  qkd_jw_str(w, "source", e->source);
  qkd_jw_int(w, "classes", e->classes);
  qkd_jw_int(w, "qubits", e->qubits);
  if (e->teacher.name) {
    qkd_jw_open(w, "teacher", '{');
    qkd_jw_str(w, "name", e->teacher.name);
    if (e->teacher.params >= 0) qkd_jw_int(w, "params", e->teacher.params);
    else qkd_jw_null(w, "params"); /* given by its logits */
    qkd_jw_num(w, "test_accuracy", e->teacher.test_accuracy);
    qkd_jw_close(w, '}');
  } else {
    qkd_jw_null(w, "teacher");
  }
  if (s) {
    qkd_jw_open(w, "student", '{');
    qkd_jw_int(w, "quantum_params", s->quantum_params);
    qkd_jw_int(w, "classical_params", s->classical_params);
    if (e->control) qkd_jw_int(w, "control_params", e->control->classical_params);
    else qkd_jw_null(w, "control_params");
    qkd_jw_close(w, '}');
  } else {
    qkd_jw_null(w, "student");
  }
  qkd_jw_str(w, "loss", e->loss);
  json_run(w, "distilled", e->distilled);
  json_run(w, "baseline", e->baseline);
  json_run(w, "control", e->control);
  qkd_jw_open(w, "seconds", '{');
  qkd_jw_num(w, "teacher", e->seconds.teacher);
  qkd_jw_num(w, "baseline", e->seconds.baseline);
  qkd_jw_num(w, "distilled", e->seconds.distilled);
  qkd_jw_num(w, "control", e->seconds.control);
  qkd_jw_num(w, "jit", e->seconds.jit);
  qkd_jw_num(w, "total", e->seconds.total);
  qkd_jw_close(w, '}');
  qkd_jw_num(w, "samples_per_s", s ? s->samples_per_s : NAN);
  qkd_jw_int(w, "zero_vectors", s ? s->zero_vectors : 0);
  qkd_jw_open(w, "provenance", '{');
  qkd_jw_int(w, "seed", e->seed);
  qkd_jw_int(w, "threads", rep->threads);
  qkd_jw_str(w, "blas", qkd_blas_core());
  qkd_jw_open(w, "overrides", '[');
  for (int i = 0; i < rep->n_overrides; i++) qkd_jw_str(w, NULL, rep->overrides[i]);
  qkd_jw_close(w, ']');
  qkd_jw_open(w, "data", '[');
  for (int i = 0; i < e->n_data_files; i++) {
    qkd_jw_open(w, NULL, '{');
    qkd_jw_str(w, "file", e->data_files[i].path);
    qkd_jw_int(w, "size", e->data_files[i].size);
    qkd_jw_close(w, '}');
  }
  qkd_jw_close(w, ']');
  qkd_jw_close(w, '}');
  qkd_jw_bool(w, "completed", e->completed);
  qkd_jw_close(w, '}');
}

static int emit_json(FILE *f, const void *ctx) {
  const qkd_report *rep = ctx;
  qkd_jw w = {.f = f};
  qkd_jw_open(&w, NULL, '{');
  qkd_jw_str(&w, "qkdc", rep->qkdc ? rep->qkdc : QKD_VERSION);
  qkd_jw_open(&w, "teachers", '[');
  for (int i = 0; i < rep->n_teachers; i++) {
    const qkd_report_teacher *t = &rep->teachers[i];
    const qkd_teacher_result *r = t->result;
    qkd_jw_open(&w, NULL, '{');
    qkd_jw_str(&w, "name", t->name);
    qkd_jw_str(&w, "dataset", t->dataset);
    if (r) {
      if (r->logits) qkd_jw_null(&w, "params");
      else qkd_jw_int(&w, "params", r->params);
      if (r->logits) qkd_jw_str(&w, "logits", r->logits);
      qkd_jw_num(&w, "test_accuracy", last(r->test_accuracy, r->epochs));
      qkd_jw_nums(&w, "test_accuracy_per_epoch", r->test_accuracy, r->epochs);
      qkd_jw_num(&w, "seconds", r->seconds);
      qkd_jw_bool(&w, "cached", r->cached);
    } else { /* not trained (the run stopped first) */
      qkd_jw_null(&w, "params");
      qkd_jw_null(&w, "test_accuracy");
      qkd_jw_nums(&w, "test_accuracy_per_epoch", NULL, 0);
      qkd_jw_null(&w, "seconds");
      qkd_jw_bool(&w, "cached", 0);
    }
    qkd_jw_close(&w, '}');
  }
  qkd_jw_close(&w, ']');
  qkd_jw_open(&w, "experiments", '[');
  for (int i = 0; i < rep->n_experiments; i++) json_experiment(&w, rep, &rep->experiments[i], NULL);
  qkd_jw_close(&w, ']');
  qkd_jw_close(&w, '}');
  fputc('\n', f);
  return 0;
}

typedef struct {
  const qkd_report *rep;
  const qkd_report_experiment *e;
  const qkd_report_cell *cell;
} cell_ctx;

static int emit_cell(FILE *f, const void *ctx) {
  const cell_ctx *c = ctx;
  qkd_jw w = {.f = f};
  json_experiment(&w, c->rep, c->e, c->cell);
  fputc('\n', f);
  return 0;
}

int qkd_report_write_cell(const char *path, const qkd_report *report, const qkd_report_experiment *e,
                          const qkd_report_cell *cell, qkd_error *err) {
  cell_ctx c = {report, e, cell};
  return qkd_file_write_atomic(path, emit_cell, &c, err);
}

/* ---- curves.csv ---- */

static int epochs_of(const qkd_student_result *r) { return r ? r->epochs : 0; }
static int max_epochs(const qkd_report_experiment *e) {
  int a = epochs_of(e->distilled), b = epochs_of(e->baseline);
  return a > b ? a : b;
}

static void csv_str(FILE *f, const char *s) {
  if (!s) return;
  if (!strpbrk(s, ",\"\r\n")) { fputs(s, f); return; }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}
static void csv_num(FILE *f, double v) {
  char b[40];
  fputc(',', f);
  if (qkd_fmt_num(b, sizeof b, v)) fputs(b, f);
}

static int emit_csv(FILE *f, const void *ctx) {
  const qkd_report *rep = ctx;
  fputs("experiment,epoch,teacher_test_accuracy,baseline_train_loss,baseline_test_accuracy,"
        "distilled_train_loss,distilled_test_accuracy,distilled_validation_accuracy\n", f);
  for (int i = 0; i < rep->n_experiments; i++) {
    const qkd_report_experiment *e = &rep->experiments[i];
    const qkd_student_result *b = e->baseline, *d = e->distilled;
    int E = max_epochs(e), be = epochs_of(b), de = epochs_of(d);
    for (int ep = 0; ep < E; ep++) {
      csv_str(f, e->experiment);
      fprintf(f, ",%d", ep + 1);
      csv_num(f, e->teacher.name ? e->teacher.test_accuracy : NAN);
      csv_num(f, b ? at(b->train_loss, be, ep) : NAN);
      csv_num(f, b ? at(b->test_accuracy, be, ep) : NAN);
      csv_num(f, d ? at(d->train_loss, de, ep) : NAN);
      csv_num(f, d ? at(d->test_accuracy, de, ep) : NAN);
      csv_num(f, d ? at(d->validation_accuracy, de, ep) : NAN);
      fputc('\n', f);
    }
  }
  return 0;
}

/* ---- curves.svg ---- */

static void xml_str(FILE *f, const char *s) { qkd_xml_escape(f, s); }

enum { SVG_W = 720, SVG_PANEL_H = 320, SVG_LEFT = 70, SVG_RIGHT = 190, SVG_TOP = 46, SVG_BOTTOM = 56 };

typedef struct {
  double x0, x1, y0, y1; /* plot area in pixels (y0 top) */
  int E;                 /* epochs: the x axis runs 1..E */
} svg_plot;

static double svg_x(const svg_plot *p, double epoch) {
  if (p->E <= 1) return (p->x0 + p->x1) / 2;
  return p->x0 + (epoch - 1) / (double)(p->E - 1) * (p->x1 - p->x0);
}
static double svg_y(const svg_plot *p, double acc) {
  if (acc < 0) acc = 0;
  if (acc > 1) acc = 1;
  return p->y1 - acc * (p->y1 - p->y0);
}

/* A series as polylines over its finite points (a gap breaks the line), with markers when few. */
static void svg_series(FILE *f, const svg_plot *p, const double *v, int n, const char *color, const char *dash,
                       const char *name) {
  fprintf(f, "<g class=\"series\" data-name=\"%s\">\n", name);
  int i = 0;
  while (i < n) {
    while (i < n && !isfinite(v[i])) i++;
    if (i >= n) break;
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s%s%s points=\"", color,
            dash ? " stroke-dasharray=\"" : "", dash ? dash : "", dash ? "\"" : "");
    int first = 1;
    for (; i < n && isfinite(v[i]); i++, first = 0)
      fprintf(f, "%s%.2f,%.2f", first ? "" : " ", svg_x(p, i + 1), svg_y(p, v[i]));
    fputs("\"/>\n", f);
  }
  if (n <= 40 && !dash)
    for (int k = 0; k < n; k++)
      if (isfinite(v[k]))
        fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\" fill=\"%s\"/>\n", svg_x(p, k + 1), svg_y(p, v[k]), color);
  fputs("</g>\n", f);
}

/* Epoch ticks: 1 and multiples of a 1-2-5 step, at most about 10. */
static int tick_step(int E) {
  int step = 1;
  for (int m = 1;; m *= 10) {
    if (E / m <= 10) { step = m; break; }
    if (E / (2 * m) <= 10) { step = 2 * m; break; }
    if (E / (5 * m) <= 10) { step = 5 * m; break; }
  }
  return step;
}

static void svg_panel(FILE *f, const qkd_report_experiment *e, double top) {
  svg_plot p = {SVG_LEFT, SVG_W - SVG_RIGHT, top + SVG_TOP, top + SVG_PANEL_H - SVG_BOTTOM, max_epochs(e)};
  fprintf(f, "<g class=\"panel\">\n<text x=\"%d\" y=\"%.0f\" font-size=\"15\" font-weight=\"bold\">", SVG_LEFT,
          top + 26);
  xml_str(f, e->experiment);
  fputs("</text>\n", f);
  fprintf(f, "<text x=\"%d\" y=\"%.0f\" font-size=\"11\" fill=\"#555\">", SVG_LEFT, top + 40);
  xml_str(f, e->dataset);
  fprintf(f, ", %d classes, %d qubits%s</text>\n", e->classes, e->qubits, e->completed ? "" : " (interrupted)");
  /* grid and y axis: accuracy 0..1 */
  for (int k = 0; k <= 5; k++) {
    double y = svg_y(&p, k / 5.0);
    fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#e5e5e5\"/>\n", p.x0, y, p.x1, y);
    fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#000\"/>\n", p.x0 - 5, y, p.x0, y);
    fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\" text-anchor=\"end\">%.1f</text>\n", p.x0 - 8, y + 4,
            k / 5.0);
  }
  fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#000\"/>\n", p.x0, p.y0, p.x0, p.y1);
  fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#000\"/>\n", p.x0, p.y1, p.x1, p.y1);
  fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 %.2f %.2f)\">"
             "test accuracy</text>\n", p.x0 - 44, (p.y0 + p.y1) / 2, p.x0 - 44, (p.y0 + p.y1) / 2);
  fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"12\" text-anchor=\"middle\">epoch</text>\n", (p.x0 + p.x1) / 2,
          p.y1 + 38);
  if (p.E < 1) {
    fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"12\" text-anchor=\"middle\" fill=\"#555\">no finished epoch"
               "</text>\n</g>\n", (p.x0 + p.x1) / 2, (p.y0 + p.y1) / 2);
    return;
  }
  /* x axis: epochs */
  int step = tick_step(p.E);
  for (int ep = 1; ep <= p.E; ep = ep == 1 && step > 1 ? step : ep + step) {
    double x = svg_x(&p, ep);
    fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#000\"/>\n", x, p.y1, x, p.y1 + 5);
    fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\" text-anchor=\"middle\">%d</text>\n", x, p.y1 + 18, ep);
  }
  /* series and legend */
  static const char *const names[3] = {"teacher", "baseline", "distilled"};
  static const char *const colors[3] = {"#7f7f7f", "#1f77b4", "#d62728"};
  double tv[2] = {e->teacher.test_accuracy, e->teacher.test_accuracy};
  const qkd_student_result *runs[3] = {NULL, e->baseline, e->distilled};
  double legend_y = p.y0 + 8;
  for (int s = 0; s < 3; s++) {
    double final;
    if (s == 0) {
      if (!e->teacher.name || !isfinite(e->teacher.test_accuracy)) continue;
      svg_plot flat = p;
      flat.E = 2; /* the teacher's accuracy, a horizontal line across the plot */
      svg_series(f, &flat, tv, 2, colors[0], "6 4", names[0]);
      final = tv[0];
    } else {
      const qkd_student_result *r = runs[s];
      if (!r || r->epochs < 1 || !r->test_accuracy) continue;
      svg_series(f, &p, r->test_accuracy, r->epochs, colors[s], NULL, names[s]);
      final = r->test_accuracy[r->epochs - 1];
    }
    double lx = p.x1 + 16;
    fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n", lx,
            legend_y, lx + 24, legend_y, colors[s], s == 0 ? " stroke-dasharray=\"6 4\"" : "");
    fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"12\">%s</text>\n", lx + 30, legend_y + 4, names[s]);
    if (isfinite(final))
      fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\" fill=\"#555\">%.2f%%</text>\n", lx + 100,
              legend_y + 4, 100 * final);
    legend_y += 20;
  }
  fputs("</g>\n", f);
}

static int emit_svg(FILE *f, const void *ctx) {
  const qkd_report *rep = ctx;
  int panels = rep->n_experiments > 0 ? rep->n_experiments : 1;
  long h = (long)panels * SVG_PANEL_H;
  fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%ld\" "
             "viewBox=\"0 0 %d %ld\" font-family=\"sans-serif\">\n", SVG_W, h, SVG_W, h);
  fputs("<title>qkd test accuracy per epoch</title>\n", f);
  fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%ld\" fill=\"#fff\"/>\n", SVG_W, h);
  if (rep->n_experiments == 0)
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"14\" text-anchor=\"middle\">no experiments</text>\n", SVG_W / 2,
            SVG_PANEL_H / 2);
  for (int i = 0; i < rep->n_experiments; i++) svg_panel(f, &rep->experiments[i], (double)i * SVG_PANEL_H);
  fputs("</svg>\n", f);
  return 0;
}

/* ---- the run directory ---- */

int qkd_report_write(const char *dir, const qkd_report *report, qkd_error *err) {
  if (!dir || !*dir) return qkd_fail(err, QKD_ERR_INPUT, "qkdc", "no output directory");
  if (qkd_file_mkdir_p(dir, err) != 0) return -1;
  static const char *const names[3] = {"curves.csv", "curves.svg", "results.json"};
  static const qkd_emit_fn emit[3] = {emit_csv, emit_svg, emit_json};
  for (int i = 0; i < 3; i++) {
    char *path = qkd_file_join(dir, names[i]);
    if (!path) return qkd_fail(err, QKD_ERR_MEMORY, dir, "out of memory");
    int rc = qkd_file_write_atomic(path, emit[i], report, err);
    free(path);
    if (rc != 0) return -1;
  }
  return 0;
}

/* ---- summary ---- */

static void pct(char *b, size_t n, double v) {
  if (isfinite(v)) snprintf(b, n, "%.2f%%", 100 * v);
  else snprintf(b, n, "-");
}

/* Prints a name on one line (control characters as '?', invalid UTF-8 as U+FFFD) when out is
 * not NULL; returns the columns it takes (one per code point). */
static int summary_name(FILE *out, const char *s) {
  int cols = 0;
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    uint32_t cp;
    int len = qkd_utf8_next(p, &cp);
    if (out) {
      if (cp < 0x20 || cp == 0x7F) fputc('?', out);
      else if (cp == 0xFFFD && len == 1) fputs("\xEF\xBF\xBD", out);
      else fwrite(p, 1, (size_t)len, out);
    }
    p += len;
    cols++;
  }
  return cols;
}

void qkd_report_summary(const qkd_report *rep, FILE *out) {
  if (rep->n_experiments == 0) {
    fputs("no experiments\n", out);
    return;
  }
  int w = (int)strlen("experiment"), interrupted = 0;
  for (int i = 0; i < rep->n_experiments; i++) {
    const qkd_report_experiment *e = &rep->experiments[i];
    int l = summary_name(NULL, e->experiment ? e->experiment : "?") + !e->completed;
    if (l > w) w = l;
    interrupted |= !e->completed;
  }
  /* "Δ" is two bytes for one column: pad its field by one more byte */
  fprintf(out, "%-*s  %6s  %9s  %9s  %9s  %8s  %9s\n", w, "experiment", "qubits", "teacher", "baseline", "distilled",
          "\xCE\x94 pts", "seconds");
  for (int i = 0; i < rep->n_experiments; i++) {
    const qkd_report_experiment *e = &rep->experiments[i];
    double t = e->teacher.name ? e->teacher.test_accuracy : NAN;
    double b = e->baseline ? last(e->baseline->test_accuracy, e->baseline->epochs) : NAN;
    double d = e->distilled ? last(e->distilled->test_accuracy, e->distilled->epochs) : NAN;
    char ts[32], bs[32], ds[32], delta[32], secs[32];
    pct(ts, sizeof ts, t), pct(bs, sizeof bs, b), pct(ds, sizeof ds, d);
    if (isfinite(b) && isfinite(d)) snprintf(delta, sizeof delta, "%+.2f", 100 * (d - b));
    else snprintf(delta, sizeof delta, "-");
    if (isfinite(e->seconds.total)) snprintf(secs, sizeof secs, "%.1f", e->seconds.total);
    else snprintf(secs, sizeof secs, "-");
    int cols = summary_name(out, e->experiment ? e->experiment : "?");
    if (!e->completed) fputc('*', out), cols++;
    fprintf(out, "%*s  %6d  %9s  %9s  %9s  %7s  %9s\n", w - cols, "", e->qubits, ts, bs, ds, delta, secs);
  }
  if (interrupted) fputs("* interrupted: figures from the finished epochs\n", out);
}

/* ---- weights files ---- */

#define WEIGHTS_FIXED 40 /* magic 4, version 4, tag 4, name length 4, P 8, n 8, checksum 8 */
#define WEIGHTS_MAX_NAME 65535u

static uint64_t fnv(const unsigned char *b, size_t n) { return qkd_hash_bytes(QKD_HASH_INIT, b, n); }
static void le_put(unsigned char *b, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t le_get(const unsigned char *b, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = v << 8 | b[i];
  return v;
}

int qkd_report_write_weights(const char *path, const char *name, const double *circuit_params, long P,
                             const float *classical, long n, qkd_error *err) {
  size_t nl = name ? strlen(name) : 0;
  if (nl > WEIGHTS_MAX_NAME) return qkd_fail(err, QKD_ERR_INPUT, path, "weights name longer than %u bytes", WEIGHTS_MAX_NAME);
  if (P < 0 || n < 0 || (uint64_t)P > (SIZE_MAX / 16) || (uint64_t)n > (SIZE_MAX / 16) ||
      (P > 0 && !circuit_params) || (n > 0 && !classical))
    return qkd_fail(err, QKD_ERR_INPUT, path, "invalid weight counts (%ld circuit, %ld classical)", P, n);
  size_t len = WEIGHTS_FIXED + nl + 8 * (size_t)P + 4 * (size_t)n;
  unsigned char *b = malloc(len);
  if (!b) return qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory");
  memcpy(b, "QKDW", 4);
  le_put(b + 4, QKD_REPORT_WEIGHTS_VERSION, 4);
  memcpy(b + 8, "STDN", 4);
  le_put(b + 12, nl, 4);
  if (nl) memcpy(b + 16, name, nl);
  size_t off = 16 + nl;
  le_put(b + off, (uint64_t)P, 8);
  le_put(b + off + 8, (uint64_t)n, 8);
  off += 16;
  for (long i = 0; i < P; i++, off += 8) {
    uint64_t bits;
    memcpy(&bits, &circuit_params[i], 8);
    le_put(b + off, bits, 8);
  }
  for (long i = 0; i < n; i++, off += 4) {
    uint32_t bits;
    memcpy(&bits, &classical[i], 4);
    le_put(b + off, bits, 4);
  }
  le_put(b + off, fnv(b, off), 8);
  int rc = qkd_file_write_bytes(path, b, len, err);
  free(b);
  return rc;
}

void qkd_report_weights_free(qkd_report_weights *w) {
  free(w->name);
  free(w->circuit_params);
  free(w->classical);
  memset(w, 0, sizeof *w);
}

static int read_all(const char *path, unsigned char **out, size_t *len, qkd_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return qkd_fail(err, QKD_ERR_IO, path, "cannot read: %s", strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return qkd_fail(err, QKD_ERR_IO, path, "not a regular file");
  }
  size_t n = (size_t)st.st_size;
  unsigned char *b = malloc(n + 1);
  if (!b) {
    fclose(f);
    return qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory");
  }
  size_t got = fread(b, 1, n + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad || got != n) {
    free(b);
    return qkd_fail(err, QKD_ERR_IO, path, "cannot read: the file changed while being read");
  }
  *out = b;
  *len = n;
  return 0;
}

int qkd_report_read_weights(const char *path, qkd_report_weights *w, qkd_error *err) {
  memset(w, 0, sizeof *w);
  unsigned char *b = NULL;
  size_t len = 0;
  if (read_all(path, &b, &len, err) != 0) return -1;
  int rc = -1;
  uint64_t nl = len >= 16 ? le_get(b + 12, 4) : 0;
  uint64_t P = 0, n = 0;
  if (len < 12 || memcmp(b, "QKDW", 4) != 0) {
    qkd_fail(err, QKD_ERR_FORMAT, path, "not a qkd weights file");
  } else if (le_get(b + 4, 4) != QKD_REPORT_WEIGHTS_VERSION) {
    qkd_fail(err, QKD_ERR_FORMAT, path, "weights format version %u (this qkd reads %d)", (unsigned)le_get(b + 4, 4),
         QKD_REPORT_WEIGHTS_VERSION);
  } else if (memcmp(b + 8, "STDN", 4) != 0) {
    qkd_fail(err, QKD_ERR_FORMAT, path, "not a student weights file (a teacher cache?)");
  } else if (len < WEIGHTS_FIXED || nl > WEIGHTS_MAX_NAME || nl > len - WEIGHTS_FIXED) {
    qkd_fail(err, QKD_ERR_FORMAT, path, "truncated or corrupted weights file (header)");
  } else if ((P = le_get(b + 16 + nl, 8)) > (len - WEIGHTS_FIXED - nl) / 8 ||
             (n = le_get(b + 24 + nl, 8)) > (len - WEIGHTS_FIXED - nl) / 4 ||
             WEIGHTS_FIXED + nl + 8 * P + 4 * n != len) {
    qkd_fail(err, QKD_ERR_FORMAT, path, "weights file has the wrong length (truncated or padded)");
  } else if (le_get(b + len - 8, 8) != fnv(b, len - 8)) {
    qkd_fail(err, QKD_ERR_FORMAT, path, "weights checksum failure (corrupted)");
  } else {
    w->name = malloc(nl + 1);
    w->circuit_params = P ? malloc(8 * P) : NULL;
    w->classical = n ? malloc(4 * n) : NULL;
    if (!w->name || (P && !w->circuit_params) || (n && !w->classical)) {
      qkd_report_weights_free(w);
      qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory");
    } else {
      memcpy(w->name, b + 16, nl);
      w->name[nl] = '\0';
      w->n_circuit = (long)P;
      w->n_classical = (long)n;
      size_t off = WEIGHTS_FIXED - 8 + nl;
      for (uint64_t i = 0; i < P; i++, off += 8) {
        uint64_t bits = le_get(b + off, 8);
        memcpy(&w->circuit_params[i], &bits, 8);
      }
      for (uint64_t i = 0; i < n; i++, off += 4) {
        uint32_t bits = (uint32_t)le_get(b + off, 4);
        memcpy(&w->classical[i], &bits, 4);
      }
      rc = 0;
    }
  }
  free(b);
  return rc;
}
