/* export.c — `qkdc export` (export.h): finds the experiment and its weights as `qkdc run` wrote
 * them, the sample's features through the student's pre (runtime/train.c), and writes the circuit
 * with runtime/qasm.c. */
#include "export.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qkd_data.h"
#include "qkd_file.h"
#include "qkd_qasm.h"
#include "qkd_report.h"
#include "qkd_run.h"
#include "qkd_train.h"

/* Numbers separated by commas or white space, all of text; -1 when something else is there. */
static int parse_numbers(qkd_arena *a, const char *text, double **out) {
  int n = 0, cap = 16;
  double *v = qkd_arena_alloc(a, sizeof *v * (size_t)cap);
  for (const char *p = text;;) {
    while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (!*p) break;
    char *end;
    errno = 0;
    double x = strtod(p, &end);
    if (end == p || errno == ERANGE) return -1;
    if (*end && *end != ',' && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') return -1;
    if (n == cap) {
      double *w = qkd_arena_alloc(a, sizeof *w * (size_t)(cap *= 2));
      memcpy(w, v, sizeof *v * (size_t)n);
      v = w;
    }
    v[n++] = x;
    p = end;
  }
  *out = v;
  return n;
}

static int fail_print(qkd_error *err, const char *about) {
  qkd_error_print(qkd_error_about(err, about), stderr);
  return 1;
}

/* --format npz: the classical parts (and θ) as `qkdc run` wrote them beside the weights, in
 * the names of qkd_pyout.h — STEM.RUN.npz — copied to -o (or its path printed). */
static int export_npz(qkd_arena *a, const qkd_export_opts *o, const char *dir, int cell, const char *name, const char *run) {
  const char *src = o->weights ? o->weights : qkd_arena_printf(a, "%s/%s%s.%s.qkw", dir, cell ? "cells/" : "", name, run);
  size_t n = strlen(src);
  if (n > 4 && !strcmp(src + n - 4, ".qkw")) src = qkd_arena_printf(a, "%.*s.npz", (int)(n - 4), src);
  qkd_error err;
  size_t len;
  char *bytes = qkd_file_read(src, (size_t)1 << 34, &len, &err);
  if (!bytes) {
    fprintf(stderr, "%s: error: %s (qkdc run writes it beside the run's .qkw; run the experiment first)\n", src, err.msg);
    return 1;
  }
  int rc = 0;
  if (!o->out) printf("%s\n", src);
  else if (qkd_file_write_bytes(o->out, bytes, len, &err) != 0) rc = fail_print(&err, o->out);
  free(bytes);
  return rc;
}

int qkd_export_command(qkd_arena *a, const qkd_model *m, const qkd_export_opts *o) {
  /* the experiment (or grid cell) and where `qkdc run` put its weights */
  const qkd_m_experiment *e = NULL;
  const char *name = NULL, *dir = o->out_dir;
  int cell = 0;
  for (int i = 0; i < m->n_experiments && !e; i++)
    if (o->experiment ? !strcmp(m->experiments[i]->name, o->experiment) : !m->experiments[i]->grid_base)
      e = m->experiments[i], name = e->name;
  for (int i = 0; i < m->n_cells && !e; i++)
    if (!o->experiment || !strcmp(m->cells[i].name, o->experiment)) e = m->cells[i].experiment, name = m->cells[i].name, cell = 1;
  if (!e) {
    fprintf(stderr, "%s: error: %s\n", m->path,
            o->experiment ? "no experiment or grid cell of that name (qkdc cells FILE lists the cells)"
                          : "the program declares no experiment");
    return 1;
  }
  const char *run = o->run ? o->run : "distilled";
  if (strcmp(run, "distilled") && strcmp(run, "baseline")) {
    fprintf(stderr, "qkdc: error: --run takes distilled or baseline, not '%s'\n", run);
    return 1;
  }
  const char *format = o->format ? o->format : "qasm3";
  if (strcmp(format, "qasm3") && strcmp(format, "qasm2") && strcmp(format, "npz")) {
    fprintf(stderr, "qkdc: error: --format takes qasm3, qasm2 or npz, not '%s'\n", format);
    return 1;
  }
  if (!strcmp(format, "npz")) return export_npz(a, o, dir, cell, name, run);
  if (o->sample && o->features) {
    fprintf(stderr, "qkdc: error: give --sample K or --features F, not both\n");
    return 1;
  }
  const qkd_ir_circuit *c = &e->student.circuit;
  const char *wpath = o->weights ? o->weights : qkd_arena_printf(a, "%s/%s%s.%s.qkw", dir, cell ? "cells/" : "", name, run);
  /* parameters: the run's, or the initial ones */
  qkd_report_weights w = {0};
  qkd_error err;
  double *params = qkd_arena_alloc(a, sizeof(double) * ((size_t)c->n_params + 1));
  int have_weights = 0;
  if (o->weights || access(wpath, F_OK) == 0) {
    if (qkd_report_read_weights(wpath, &w, &err) != 0) return fail_print(&err, wpath);
    if (w.n_circuit != c->n_params) {
      fprintf(stderr, "%s: error: the weights hold %ld circuit parameters, the circuit of '%s' has %d (weights of "
                      "another program?)\n", wpath, w.n_circuit, name, c->n_params);
      qkd_report_weights_free(&w);
      return 1;
    }
    memcpy(params, w.circuit_params, sizeof(double) * (size_t)c->n_params);
    have_weights = 1;
  } else {
    fprintf(stderr, "%s: warning: no weights (qkdc run writes them): exporting the initial parameters\n", wpath);
    qkd_student_initial_circuit(e, params);
  }
  /* the features: given, or of a test image through the student's pre */
  double *x = NULL;
  int rc = 1;
  const char *what = "no sample: data-driven angles are inputs";
  if (o->features) {
    const char *text = o->features;
    if (o->features[0] == '@' && !(text = qkd_file_read(o->features + 1, 1 << 26, NULL, &err))) {
      fail_print(&err, o->features + 1);
      goto done;
    }
    int nf = parse_numbers(a, text, &x);
    if (text != o->features) free((char *)text);
    if (nf < 0 || nf != c->n_features) {
      fprintf(stderr, "%s: error: --features takes the %d features the circuit reads (after pre), as numbers "
                      "separated by commas (or @FILE); %s\n", o->features[0] == '@' ? o->features + 1 : "qkdc",
              c->n_features, nf < 0 ? "something there is not a number" : qkd_arena_printf(a, "it holds %d", nf));
      goto done;
    }
    what = "features given on the command line";
  } else if (o->sample) {
    char *end;
    long k = strtol(o->sample, &end, 10);
    if (*end || end == o->sample || k < 0 || k > 1000000000) {
      fprintf(stderr, "qkdc: error: --sample takes the index of a test image (0, 1, ...), not '%s'\n", o->sample);
      goto done;
    }
    qkd_data_opts dopts;
    qkd_dataset ds;
    qkd_run_data_opts(e->data, &dopts);
    if (qkd_data_load(&dopts, &ds, &err) != 0) {
      fail_print(&err, m->path);
      goto done;
    }
    x = qkd_arena_alloc(a, sizeof(double) * ((size_t)c->n_features + 1));
    int st = qkd_student_sample_features(e, &ds, &ds.test, (int)k, have_weights ? w.classical : NULL,
                                         have_weights ? w.n_classical : 0, x, &err);
    if (st == 0) what = qkd_arena_printf(a, "features of test sample %ld (label %d) of data set '%s'", k, ds.test.y[k], e->data->name);
    qkd_data_free(&ds);
    if (st != 0) {
      fail_print(&err, have_weights ? wpath : m->path);
      goto done;
    }
  }
  char *note = qkd_arena_printf(a, "program %s, %s '%s', %s run, %s%s\n%s", m->path, cell ? "grid cell" : "experiment",
                                name, run, have_weights ? "weights " : "initial parameters (no weights file)",
                                have_weights ? wpath : "", what);
  qkd_qasm_opts qo = {strcmp(format, "qasm2") ? QKD_QASM3 : QKD_QASM2, params, x, note};
  if (o->out ? qkd_qasm_write_file(o->out, c, &qo, &err) : qkd_qasm_write(stdout, c, &qo, &err)) {
    fail_print(&err, o->out ? o->out : m->path);
    goto done;
  }
  rc = 0;
done:
  qkd_report_weights_free(&w);
  return rc;
}
