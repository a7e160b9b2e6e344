/* gridreport.c — the grid manifest and `qkdc report` (qkd_gridreport.h). */
#include "qkd_gridreport.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qkd_err.h"
#include "qkd_file.h"
#include "qkd_hash.h"
#include "qkd_json.h"

#ifndef QKD_VERSION
#define QKD_VERSION "unknown"
#endif

/* ---- manifest ------------------------------------------------------------------------------ */

typedef struct {
  const qkd_model *m;
  const char (*keys)[17];
} manifest_ctx;

static uint64_t program_hash(const qkd_model *m, const char (*keys)[17]) {
  uint64_t h = qkd_hash_str(QKD_HASH_INIT, "qkd grids");
  for (int g = 0; g < m->n_grids; g++) {
    const qkd_m_grid *G = m->grids[g];
    h = qkd_hash_str(h, G->name);
    for (int i = G->first_cell; i < G->first_cell + G->n_cells; i++) {
      h = qkd_hash_str(h, m->cells[i].name);
      h = qkd_hash_str(h, keys[i]);
    }
  }
  return h;
}

static int emit_manifest(FILE *f, const void *ctx) {
  const manifest_ctx *c = ctx;
  const qkd_model *m = c->m;
  qkd_jw w = {.f = f};
  char hash[17];
  snprintf(hash, sizeof hash, "%016llx", (unsigned long long)program_hash(m, c->keys));
  qkd_jw_open(&w, NULL, '{');
  qkd_jw_str(&w, "qkdc", QKD_VERSION);
  qkd_jw_str(&w, "program", hash);
  qkd_jw_open(&w, "grids", '[');
  for (int g = 0; g < m->n_grids; g++) {
    const qkd_m_grid *G = m->grids[g];
    qkd_jw_open(&w, NULL, '{');
    qkd_jw_str(&w, "name", G->name);
    qkd_jw_str(&w, "experiment", G->experiment);
    qkd_jw_open(&w, "axes", '[');
    for (int a = 0; a < G->n_axes; a++) {
      qkd_jw_open(&w, NULL, '{');
      qkd_jw_str(&w, "label", G->axes[a].label);
      qkd_jw_open(&w, "values", '[');
      for (int v = 0; v < G->axes[a].n_values; v++) qkd_jw_str(&w, NULL, G->axes[a].names[v]);
      qkd_jw_close(&w, ']');
      qkd_jw_close(&w, '}');
    }
    qkd_jw_close(&w, ']');
    qkd_jw_open(&w, "seeds", '[');
    for (int s = 0; s < G->n_seeds; s++) qkd_jw_int(&w, NULL, G->seeds[s]);
    qkd_jw_close(&w, ']');
    qkd_jw_bool(&w, "seed_teachers", G->seed_teachers);
    qkd_jw_open(&w, "cells", '[');
    for (int i = G->first_cell; i < G->first_cell + G->n_cells; i++) {
      qkd_jw_open(&w, NULL, '{');
      qkd_jw_str(&w, "name", m->cells[i].name);
      qkd_jw_str(&w, "key", c->keys[i]);
      qkd_jw_close(&w, '}');
    }
    qkd_jw_close(&w, ']');
    qkd_jw_close(&w, '}');
  }
  qkd_jw_close(&w, ']');
  qkd_jw_close(&w, '}');
  fputc('\n', f);
  return 0;
}

int qkd_gridreport_write_manifest(const char *dir, const qkd_model *m, const char (*keys)[17], qkd_error *err) {
  char *path = qkd_file_join(dir, "grid.json");
  if (!path) return qkd_fail(err, QKD_ERR_MEMORY, dir, "out of memory");
  manifest_ctx c = {m, keys};
  int rc = qkd_file_write_atomic(path, emit_manifest, &c, err);
  free(path);
  return rc;
}

/* ---- statistics ------------------------------------------------------------------------------ */

typedef struct {
  int n;
  double sum, sum2;
  double v[64]; /* for the sample std, computed two-pass */
  int nv;
} stat;

static void stat_add(stat *s, double x) {
  if (!isfinite(x)) return;
  s->n++;
  s->sum += x;
  if (s->nv < 64) s->v[s->nv++] = x;
  s->sum2 += x * x;
}
static double stat_mean(const stat *s) { return s->n ? s->sum / s->n : NAN; }
static double stat_std(const stat *s) {
  if (s->n < 2) return NAN;
  double m = stat_mean(s), acc = 0;
  if (s->nv == s->n) {
    for (int i = 0; i < s->nv; i++) acc += (s->v[i] - m) * (s->v[i] - m);
  } else {
    acc = s->sum2 - s->n * m * m;
  }
  return sqrt(acc > 0 ? acc / (s->n - 1) : 0);
}

/* ---- merging -------------------------------------------------------------------------------- */

typedef struct {
  const char *name, *key;
  qkd_json *cell;           /* the finished cell's file, or NULL (missing) */
  int stale;                /* a file was there, from another key or unfinished */
} cell_slot;

typedef struct {
  stat distilled, baseline, control, gain, teacher, seconds;
  stat distilled_best, baseline_best; /* the best epoch on the test set: the v1 paper's selection */
  int n_teachers;
  char teacher_ids[64][80];
  double quantum, classical, control_params;
  int present;
} row;

static double run_acc(const qkd_json *cell, const char *kind) {
  return qkd_json_num(qkd_json_get(qkd_json_get(cell, kind), "test_accuracy"), NAN);
}

/* The largest per-epoch test accuracy of a run (selection on the test set, for comparison only). */
static double run_best_at(const qkd_json *cell, const char *kind, int *epoch) {
  const qkd_json *l = qkd_json_get(qkd_json_get(cell, kind), "test_accuracy_per_epoch");
  double best = NAN;
  if (epoch) *epoch = 0;
  for (int i = 0; l && l->kind == QKD_JSON_ARR && i < l->n; i++) {
    double v = qkd_json_num(l->items[i], NAN);
    if (isfinite(v) && !(v <= best)) {
      best = v;
      if (epoch) *epoch = i + 1;
    }
  }
  return best;
}
static double run_best(const qkd_json *cell, const char *kind) { return run_best_at(cell, kind, NULL); }

static void row_add(row *r, const qkd_json *c) {
  stat_add(&r->distilled_best, run_best(c, "distilled"));
  stat_add(&r->baseline_best, run_best(c, "baseline"));
  double d = run_acc(c, "distilled"), b = run_acc(c, "baseline"), k = run_acc(c, "control");
  stat_add(&r->distilled, d);
  stat_add(&r->baseline, b);
  stat_add(&r->control, k);
  if (isfinite(d) && isfinite(b)) stat_add(&r->gain, d - b);
  const qkd_json *tt = qkd_json_get(c, "teacher_training");
  if (tt && tt->kind == QKD_JSON_OBJ) {
    stat_add(&r->teacher, qkd_json_num(qkd_json_get(tt, "test_accuracy"), NAN));
    char id[80];
    snprintf(id, sizeof id, "%.60s/%.0f", qkd_json_s(qkd_json_get(tt, "name")) ? qkd_json_s(qkd_json_get(tt, "name")) : "?",
             qkd_json_num(qkd_json_get(tt, "seed"), 0));
    int seen = 0;
    for (int i = 0; i < r->n_teachers && !seen; i++) seen = !strcmp(r->teacher_ids[i], id);
    if (!seen && r->n_teachers < 64) snprintf(r->teacher_ids[r->n_teachers++], 80, "%s", id);
  }
  stat_add(&r->seconds, qkd_json_num(qkd_json_get(qkd_json_get(c, "seconds"), "total"), NAN));
  if (!r->present++) {
    const qkd_json *st = qkd_json_get(c, "student");
    r->quantum = qkd_json_num(qkd_json_get(st, "quantum_params"), NAN);
    r->classical = qkd_json_num(qkd_json_get(st, "classical_params"), NAN);
    r->control_params = qkd_json_num(qkd_json_get(st, "control_params"), NAN);
  }
}

typedef struct {
  const qkd_json *g;        /* the manifest's grid */
  int n_axes, n_seeds, n_cells, n_rows;
  const qkd_json *axes;
  cell_slot *cells;
  row *rows;
} grid_view;

/* The value name of axis a in row r (rows enumerate combinations, the last axis fastest). */
static const char *row_value(const grid_view *g, int r, int a) {
  long div = 1;
  for (int k = g->n_axes - 1; k > a; k--) div *= qkd_json_get(g->axes->items[k], "values")->n;
  const qkd_json *vals = qkd_json_get(g->axes->items[a], "values");
  return qkd_json_s(vals->items[(r / div) % vals->n]);
}
static const char *axis_label(const grid_view *g, int a) { return qkd_json_s(qkd_json_get(g->axes->items[a], "label")); }

/* ---- replication axes ---------------------------------------------------------------------- */

/* An axis whose label ends in "_seed" replicates the experiment (teacher_seed: which of several
 * teachers of one recipe a student distils from). For one combination of the other axes (a
 * group) the distilled accuracies x[a][s] (a: the axis's values, s: the grid's seeds) give the
 * spread over the axis — the sample std, over a, of the means over s — beside the spread over
 * the seeds — the std, over s, of the means over a — and the mean of the group's cells. */
typedef struct {
  stat all, over_axis, over_seeds;
} spread;

static int is_replication(const grid_view *G, int k) {
  const char *l = axis_label(G, k);
  size_t n = l ? strlen(l) : 0;
  return n > 5 && !strcmp(l + n - 5, "_seed");
}

static long axis_div(const grid_view *G, int k) {
  long div = 1;
  for (int j = G->n_axes - 1; j > k; j--) div *= qkd_json_get(G->axes->items[j], "values")->n;
  return div;
}

static int axis_count(const grid_view *G, int k) { return qkd_json_get(G->axes->items[k], "values")->n; }

/* The spread over axis k of the group whose first row (axis-k value 0) is r0. */
static spread spread_of(const grid_view *G, int k, int r0) {
  spread sp = {0};
  long div = axis_div(G, k);
  int nv = axis_count(G, k), S = G->n_seeds;
  for (int pass = 0; pass < 2; pass++) /* 0: means over seeds per value; 1: means over values per seed */
    for (int i = 0; i < (pass ? S : nv); i++) {
      stat m = {0};
      for (int j = 0; j < (pass ? nv : S); j++) {
        int a = pass ? j : i, si = pass ? i : j;
        const qkd_json *c = G->cells[(r0 + a * div) * S + si].cell;
        if (!c) continue;
        stat_add(&m, run_acc(c, "distilled"));
        if (!pass) stat_add(&sp.all, run_acc(c, "distilled"));
      }
      stat_add(pass ? &sp.over_seeds : &sp.over_axis, stat_mean(&m));
    }
  return sp;
}

static void json_spreads(qkd_jw *w, const grid_view *G) {
  qkd_jw_open(w, "spreads", '[');
  for (int k = 0; k < G->n_axes; k++)
    for (int r = 0; is_replication(G, k) && r < G->n_rows; r++) {
      if ((r / axis_div(G, k)) % axis_count(G, k)) continue;
      spread sp = spread_of(G, k, r);
      qkd_jw_open(w, NULL, '{');
      qkd_jw_str(w, "axis", axis_label(G, k));
      for (int a = 0; a < G->n_axes; a++)
        if (a != k) qkd_jw_str(w, axis_label(G, a), row_value(G, r, a));
      qkd_jw_int(w, "n", sp.all.n);
      qkd_jw_num(w, "distilled_mean", stat_mean(&sp.all));
      qkd_jw_num(w, "std_over_axis", stat_std(&sp.over_axis));
      qkd_jw_num(w, "std_over_seeds", stat_std(&sp.over_seeds));
      qkd_jw_num(w, "std_all", stat_std(&sp.all));
      qkd_jw_close(w, '}');
    }
  qkd_jw_close(w, ']');
}

typedef struct {
  const qkd_json *first_results; /* the first DIR's results.json (plain experiments), or NULL */
  grid_view *grids;
  int n_grids;
  const qkd_json *compare;
  int runs; /* results.md lists every run after its grid's table */
} merged;

static void jw_stat(qkd_jw *w, const char *name, const stat *s) {
  char k[64];
  snprintf(k, sizeof k, "%s_mean", name);
  qkd_jw_num(w, k, stat_mean(s));
  snprintf(k, sizeof k, "%s_std", name);
  qkd_jw_num(w, k, stat_std(s));
}

/* The reference value (an accuracy) that `compare` gives for row r of grid G, and its label. */
static double compare_value(const qkd_json *cmp, const grid_view *G, int r, const char **label) {
  for (int i = 0; cmp && cmp->kind == QKD_JSON_ARR && i < cmp->n; i++) {
    const qkd_json *e = cmp->items[i];
    if (e->kind != QKD_JSON_OBJ) continue;
    const char *grid = qkd_json_s(qkd_json_get(e, "grid"));
    if (grid && strcmp(grid, qkd_json_s(qkd_json_get(G->g, "name")))) continue;
    int match = 1, keyed = 0;
    for (int k = 0; k < e->n && match; k++) {
      const char *key = e->keys[k];
      if (!strcmp(key, "grid") || !strcmp(key, "accuracy") || !strcmp(key, "error") || !strcmp(key, "label")) continue;
      int found = 0;
      for (int a = 0; a < G->n_axes && !found; a++)
        if (!strcmp(axis_label(G, a), key)) {
          found = 1;
          char num[32];
          const char *want = qkd_json_s(e->items[k]);
          if (!want && e->items[k]->kind == QKD_JSON_NUM) {
            snprintf(num, sizeof num, "%g", e->items[k]->num);
            want = num;
          }
          match = want && !strcmp(want, row_value(G, r, a));
        }
      if (!found) match = 0;
      keyed++;
    }
    if (!match || !keyed) continue;
    double acc = qkd_json_num(qkd_json_get(e, "accuracy"), NAN);
    if (!isfinite(acc)) acc = 1 - qkd_json_num(qkd_json_get(e, "error"), NAN);
    if (!isfinite(acc)) continue;
    *label = qkd_json_s(qkd_json_get(e, "label"));
    return acc;
  }
  return NAN;
}

static int emit_results(FILE *f, const void *ctx) {
  const merged *M = ctx;
  qkd_jw w = {.f = f};
  qkd_jw_open(&w, NULL, '{');
  qkd_jw_str(&w, "qkdc", QKD_VERSION);
  const qkd_json *teachers = qkd_json_get(M->first_results, "teachers");
  if (teachers) qkd_jw_value(&w, "teachers", teachers);
  else { qkd_jw_open(&w, "teachers", '['); qkd_jw_close(&w, ']'); }
  qkd_jw_open(&w, "experiments", '[');
  const qkd_json *plain = qkd_json_get(M->first_results, "experiments");
  for (int i = 0; plain && plain->kind == QKD_JSON_ARR && i < plain->n; i++)
    if (!qkd_json_get(plain->items[i], "cell")) qkd_jw_value(&w, NULL, plain->items[i]);
  for (int g = 0; g < M->n_grids; g++)
    for (int i = 0; i < M->grids[g].n_cells; i++)
      if (M->grids[g].cells[i].cell) qkd_jw_value(&w, NULL, M->grids[g].cells[i].cell);
  qkd_jw_close(&w, ']');
  qkd_jw_open(&w, "grids", '[');
  for (int g = 0; g < M->n_grids; g++) {
    const grid_view *G = &M->grids[g];
    qkd_jw_open(&w, NULL, '{');
    qkd_jw_value(&w, "name", qkd_json_get(G->g, "name"));
    qkd_jw_value(&w, "experiment", qkd_json_get(G->g, "experiment"));
    qkd_jw_value(&w, "axes", G->axes);
    qkd_jw_value(&w, "seeds", qkd_json_get(G->g, "seeds"));
    qkd_jw_int(&w, "cells", G->n_cells);
    qkd_jw_open(&w, "missing", '[');
    for (int i = 0; i < G->n_cells; i++)
      if (!G->cells[i].cell) qkd_jw_str(&w, NULL, G->cells[i].name);
    qkd_jw_close(&w, ']');
    qkd_jw_open(&w, "rows", '[');
    for (int r = 0; r < G->n_rows; r++) {
      const row *R = &G->rows[r];
      qkd_jw_open(&w, NULL, '{');
      for (int a = 0; a < G->n_axes; a++) qkd_jw_str(&w, axis_label(G, a), row_value(G, r, a));
      qkd_jw_int(&w, "n", R->distilled.n);
      jw_stat(&w, "distilled", &R->distilled);
      jw_stat(&w, "baseline", &R->baseline);
      jw_stat(&w, "control", &R->control);
      jw_stat(&w, "kd_gain", &R->gain);
      jw_stat(&w, "teacher", &R->teacher);
      /* selected on the test set (the v1 notebooks' "best accuracy"): for comparison only */
      jw_stat(&w, "distilled_best", &R->distilled_best);
      jw_stat(&w, "baseline_best", &R->baseline_best);
      qkd_jw_int(&w, "teachers", R->n_teachers);
      qkd_jw_num(&w, "quantum_params", R->present ? R->quantum : NAN);
      qkd_jw_num(&w, "classical_params", R->present ? R->classical : NAN);
      qkd_jw_num(&w, "control_params", R->present ? R->control_params : NAN);
      qkd_jw_num(&w, "seconds", stat_mean(&R->seconds));
      const char *lab = NULL;
      double paper = compare_value(M->compare, G, r, &lab); /* NaN (null) when --compare has none */
      qkd_jw_num(&w, "paper", paper);
      if (isfinite(paper) && lab) qkd_jw_str(&w, "paper_label", lab);
      qkd_jw_close(&w, '}');
    }
    qkd_jw_close(&w, ']');
    json_spreads(&w, G);
    qkd_jw_close(&w, '}');
  }
  qkd_jw_close(&w, ']');
  qkd_jw_close(&w, '}');
  fputc('\n', f);
  return 0;
}

static void md_pm(FILE *f, const stat *s, int points) {
  double m = stat_mean(s), sd = stat_std(s);
  if (!isfinite(m)) { fputs(" – |", f); return; }
  if (points) fprintf(f, " %+.2f", 100 * m);
  else fprintf(f, " %.2f", 100 * m);
  if (isfinite(sd)) fprintf(f, " ± %.2f", 100 * sd);
  fputs(" |", f);
}

/* A fraction as a percent cell, or – when it is missing. */
static void md_pct(FILE *f, double v) {
  if (isfinite(v)) fprintf(f, " %.2f |", 100 * v);
  else fputs(" – |", f);
}

static void md_count(FILE *f, double v) {
  if (isfinite(v)) fprintf(f, " %.0f |", v);
  else fputs(" – |", f);
}

/* Every run of G one by one: last-epoch accuracies, and the best epoch on the test set beside
 * them (the v1 notebooks' selection), so a collapse or an outlier seed is not hidden in a mean. */
static void md_runs(FILE *f, const grid_view *G) {
  const qkd_json *seeds = qkd_json_get(G->g, "seeds");
  fprintf(f, "\nEvery run of `%s`: test accuracy %% after the last epoch; \"best\" is the largest per-epoch test "
             "accuracy (epoch) — selected on the test set, for comparison with the paper only; chance is 100/classes.\n\n|",
          qkd_json_s(qkd_json_get(G->g, "name")));
  for (int a = 0; a < G->n_axes; a++) fprintf(f, " %s |", axis_label(G, a));
  fputs(" seed | classes | teacher | distilled | best (epoch) | baseline | best (epoch) | control |\n|", f);
  for (int a = 0; a < G->n_axes + 8; a++) fputs(a < G->n_axes + 1 ? "---|" : "--:|", f);
  fputc('\n', f);
  for (int i = 0; i < G->n_cells; i++) {
    const qkd_json *c = G->cells[i].cell;
    if (!c) continue;
    fputc('|', f);
    for (int a = 0; a < G->n_axes; a++) fprintf(f, " %s |", row_value(G, i / G->n_seeds, a));
    fprintf(f, " %.0f |", qkd_json_num(seeds->items[i % G->n_seeds], NAN));
    md_count(f, qkd_json_num(qkd_json_get(c, "classes"), NAN));
    const qkd_json *tt = qkd_json_get(c, "teacher_training");
    const char *tn = qkd_json_s(qkd_json_get(tt, "name"));
    if (tn) fprintf(f, " %s/%.0f %.2f |", tn, qkd_json_num(qkd_json_get(tt, "seed"), 0),
                    100 * qkd_json_num(qkd_json_get(tt, "test_accuracy"), NAN));
    else fputs(" – |", f);
    static const char *const kinds[] = {"distilled", "baseline", "control"};
    for (int k = 0; k < 3; k++) {
      md_pct(f, run_acc(c, kinds[k]));
      if (k == 2) break;
      int ep;
      double b = run_best_at(c, kinds[k], &ep);
      if (isfinite(b)) fprintf(f, " %.2f (%d) |", 100 * b, ep);
      else fputs(" – |", f);
    }
    fputc('\n', f);
  }
}

static void md_grid(FILE *f, const grid_view *G, const qkd_json *compare, int runs) {
  int has_paper = 0;
  const char *lab = NULL;
  for (int r = 0; r < G->n_rows; r++) has_paper |= isfinite(compare_value(compare, G, r, &lab));
  fprintf(f, "## %s\n\nexperiment `%s`; test accuracy after the last epoch, %% (mean ± sample std over seeds); "
             "KD gain = distilled − baseline, paired by seed, in points.\n\n|",
          qkd_json_s(qkd_json_get(G->g, "name")), qkd_json_s(qkd_json_get(G->g, "experiment")));
  for (int a = 0; a < G->n_axes; a++) fprintf(f, " %s |", axis_label(G, a));
  fputs(" n | distilled | baseline | control | KD gain | teacher |", f);
  if (has_paper) fputs(" paper |", f);
  fputs(" quantum params | classical params | control params | s / cell |\n|", f);
  for (int a = 0; a < G->n_axes + 10 + has_paper; a++) fputs(a < G->n_axes ? "---|" : "--:|", f);
  fputc('\n', f);
  for (int r = 0; r < G->n_rows; r++) {
    const row *R = &G->rows[r];
    fputc('|', f);
    for (int a = 0; a < G->n_axes; a++) fprintf(f, " %s |", row_value(G, r, a));
    fprintf(f, " %d |", R->distilled.n);
    md_pm(f, &R->distilled, 0);
    md_pm(f, &R->baseline, 0);
    md_pm(f, &R->control, 0);
    md_pm(f, &R->gain, 1);
    md_pm(f, &R->teacher, 0);
    if (has_paper) md_pct(f, compare_value(compare, G, r, &lab));
    md_count(f, R->present ? R->quantum : NAN);
    md_count(f, R->present ? R->classical : NAN);
    md_count(f, R->present ? R->control_params : NAN);
    double s = stat_mean(&R->seconds);
    if (isfinite(s)) fprintf(f, " %.1f |\n", s);
    else fputs(" – |\n", f);
  }
  for (int k = 0; k < G->n_axes; k++) {
    if (!is_replication(G, k)) continue;
    const char *K = axis_label(G, k);
    fprintf(f, "\nSpread of the distilled accuracy over `%s` (the std of its values' means over the seeds) beside "
               "the spread over the seeds (the std of the seeds' means over `%s`), %%:\n\n|", K, K);
    for (int a = 0; a < G->n_axes; a++)
      if (a != k) fprintf(f, " %s |", axis_label(G, a));
    fprintf(f, " n | distilled | over %s | over seeds |\n|", K);
    for (int a = 0; a < G->n_axes + 3; a++) fputs(a < G->n_axes - 1 ? "---|" : "--:|", f);
    fputc('\n', f);
    for (int r = 0; r < G->n_rows; r++) {
      if ((r / axis_div(G, k)) % axis_count(G, k)) continue;
      spread sp = spread_of(G, k, r);
      fputc('|', f);
      for (int a = 0; a < G->n_axes; a++)
        if (a != k) fprintf(f, " %s |", row_value(G, r, a));
      fprintf(f, " %d |", sp.all.n);
      md_pm(f, &sp.all, 0);
      double v[2] = {stat_std(&sp.over_axis), stat_std(&sp.over_seeds)};
      for (int i = 0; i < 2; i++) md_pct(f, v[i]);
      fputc('\n', f);
    }
  }
  if (runs) md_runs(f, G);
  int missing = 0;
  for (int i = 0; i < G->n_cells; i++) missing += !G->cells[i].cell;
  if (missing) {
    fprintf(f, "\n%d of %d cells missing:\n\n", missing, G->n_cells);
    for (int i = 0; i < G->n_cells; i++)
      if (!G->cells[i].cell) fprintf(f, "- `%s`%s\n", G->cells[i].name, G->cells[i].stale ? " (a stale or unfinished file is there)" : "");
  }
  fputc('\n', f);
}

static int emit_md(FILE *f, const void *ctx) {
  const merged *M = ctx;
  fputs("# qkd grid report\n\n", f);
  for (int g = 0; g < M->n_grids; g++) md_grid(f, &M->grids[g], M->compare, M->runs);
  return 0;
}

/* ---- the chart -------------------------------------------------------------------------------- */


enum { CH_LEFT = 70, CH_RIGHT = 250, CH_TOP = 50, CH_PLOT = 300, CH_LABELS = 150, CH_BAR = 14, CH_GAP = 16 };

static int emit_svg(FILE *f, const void *ctx) {
  const merged *M = ctx;
  const grid_view *G = &M->grids[0]; /* emit_svg is called once per grid with M->grids pointing at it */
  static const char *const kinds[3] = {"distilled", "baseline", "control"};
  static const char *const colors[3] = {"#d62728", "#1f77b4", "#7f7f7f"};
  int present[3] = {0, 0, 0};
  double top = 0;
  for (int r = 0; r < G->n_rows; r++) {
    const stat *s[3] = {&G->rows[r].distilled, &G->rows[r].baseline, &G->rows[r].control};
    for (int k = 0; k < 3; k++)
      if (s[k]->n) {
        present[k] = 1;
        double e = 1 - stat_mean(s[k]) + (isfinite(stat_std(s[k])) ? stat_std(s[k]) : 0);
        if (e > top) top = e;
      }
    const char *lab;
    double c = compare_value(M->compare, G, r, &lab);
    if (isfinite(c) && 1 - c > top) top = 1 - c;
  }
  int nk = present[0] + present[1] + present[2];
  if (nk == 0) nk = 1;
  /* the y axis: error 0..ymax, ymax a multiple of 0.1 */
  double ymax = ceil((top > 0 ? top : 0.1) * 10 + 1e-9) / 10;
  if (ymax > 1) ymax = 1;
  int gw = nk * CH_BAR + CH_GAP;
  int W = CH_LEFT + G->n_rows * gw + CH_RIGHT, H = CH_TOP + CH_PLOT + CH_LABELS;
  if (W < 480) W = 480;
  double y0 = CH_TOP, y1 = CH_TOP + CH_PLOT;
#define YPOS(e) (y1 - ((e) < 0 ? 0 : (e) > ymax ? ymax : (e)) / ymax * (y1 - y0))
  fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
             "font-family=\"sans-serif\">\n<title>", W, H, W, H);
  qkd_xml_escape(f, qkd_json_s(qkd_json_get(G->g, "name")));
  fputs(": test error per combination</title>\n", f);
  fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n", W, H);
  fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"15\" font-weight=\"bold\">", CH_LEFT);
  qkd_xml_escape(f, qkd_json_s(qkd_json_get(G->g, "name")));
  fputs(": test error (1 − accuracy after the last epoch), mean ± std over seeds</text>\n", f);
  for (int k = 0; k <= 5; k++) {
    double e = ymax * k / 5, y = YPOS(e);
    fprintf(f, "<line class=\"grid\" x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#e5e5e5\"/>\n", CH_LEFT, y,
            CH_LEFT + G->n_rows * gw, y);
    fprintf(f, "<text x=\"%d\" y=\"%.2f\" font-size=\"11\" text-anchor=\"end\">%.2f</text>\n", CH_LEFT - 6, y + 4, e);
  }
  fprintf(f, "<line x1=\"%d\" y1=\"%.0f\" x2=\"%d\" y2=\"%.0f\" stroke=\"#000\"/>\n", CH_LEFT, y0, CH_LEFT, y1);
  fprintf(f, "<line x1=\"%d\" y1=\"%.0f\" x2=\"%d\" y2=\"%.0f\" stroke=\"#000\"/>\n", CH_LEFT, y1, CH_LEFT + G->n_rows * gw, y1);
  fprintf(f, "<text x=\"%d\" y=\"%.0f\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 %d %.0f)\">test error</text>\n",
          CH_LEFT - 46, (y0 + y1) / 2, CH_LEFT - 46, (y0 + y1) / 2);
  int has_ref = 0;
  for (int r = 0; r < G->n_rows; r++) {
    const row *R = &G->rows[r];
    double gx = CH_LEFT + r * gw + CH_GAP / 2.0;
    fputs("<g class=\"group\" data-combination=\"", f);
    for (int a = 0; a < G->n_axes; a++) {
      if (a) fputc('/', f);
      qkd_xml_escape(f, axis_label(G, a));
      fputc('=', f);
      qkd_xml_escape(f, row_value(G, r, a));
    }
    fputs("\">\n", f);
    const stat *s[3] = {&R->distilled, &R->baseline, &R->control};
    int slot = 0;
    for (int k = 0; k < 3; k++) {
      if (!present[k]) continue;
      double x = gx + slot++ * CH_BAR;
      if (!s[k]->n) continue;
      double e = 1 - stat_mean(s[k]), sd = stat_std(s[k]);
      fprintf(f, "<rect class=\"bar\" data-kind=\"%s\" data-error=\"%.6f\" x=\"%.2f\" y=\"%.2f\" width=\"%d\" height=\"%.2f\" fill=\"%s\"/>\n",
              kinds[k], e, x, YPOS(e), CH_BAR - 2, y1 - YPOS(e), colors[k]);
      if (isfinite(sd)) {
        double xc = x + (CH_BAR - 2) / 2.0, ya = YPOS(e - sd), yb = YPOS(e + sd);
        fprintf(f, "<path class=\"whisker\" d=\"M%.2f %.2fV%.2fM%.2f %.2fH%.2fM%.2f %.2fH%.2f\" stroke=\"#000\" fill=\"none\"/>\n",
                xc, ya, yb, xc - 3, ya, xc + 3, xc - 3, yb, xc + 3);
      }
    }
    const char *lab = NULL;
    double c = compare_value(M->compare, G, r, &lab);
    if (isfinite(c)) {
      has_ref = 1;
      double y = YPOS(1 - c);
      fprintf(f, "<path class=\"reference\" data-error=\"%.6f\" d=\"M%.2f %.2fH%.2f\" stroke=\"#000\" stroke-width=\"2.5\" "
                 "stroke-dasharray=\"4 2\"/>\n", 1 - c, gx - 2, y, gx + nk * CH_BAR);
    }
    /* the combination's label, one line per axis, under the group */
    double lx = gx + nk * CH_BAR / 2.0;
    fprintf(f, "<text font-size=\"10\" text-anchor=\"end\" transform=\"rotate(-60 %.2f %.2f)\" x=\"%.2f\" y=\"%.2f\">", lx,
            y1 + 12, lx, y1 + 12);
    for (int a = 0; a < G->n_axes; a++) {
      if (a) fputs(" · ", f);
      qkd_xml_escape(f, row_value(G, r, a));
    }
    fputs("</text>\n</g>\n", f);
  }
  /* legend */
  double ly = y0 + 10, lx = CH_LEFT + G->n_rows * gw + 16;
  for (int k = 0; k < 3; k++) {
    if (!present[k]) continue;
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%.0f\" y=\"%.0f\" font-size=\"12\">%s</text>\n",
            lx, ly - 10, colors[k], lx + 18, ly, kinds[k]);
    ly += 20;
  }
  if (has_ref) {
    const char *lab = "reference";
    for (int r = 0; r < G->n_rows; r++) {
      const char *l = NULL;
      if (isfinite(compare_value(M->compare, G, r, &l)) && l) { lab = l; break; }
    }
    fprintf(f, "<path d=\"M%.0f %.0fH%.0f\" stroke=\"#000\" stroke-width=\"2.5\" stroke-dasharray=\"4 2\"/><text x=\"%.0f\" y=\"%.0f\" font-size=\"12\">",
            lx, ly - 4, lx + 12, lx + 18, ly);
    qkd_xml_escape(f, lab);
    fputs("</text>\n", f);
    ly += 20;
  }
  fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#555\">whiskers: ± 1 std</text>\n", lx, ly);
  fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#555\">groups: ", lx, ly + 18);
  for (int a = 0; a < G->n_axes; a++) {
    if (a) fputs(" · ", f);
    qkd_xml_escape(f, axis_label(G, a));
  }
  fputs("</text>\n", f);
  fputs("</svg>\n", f);
#undef YPOS
  return 0;
}

/* ---- the command ----------------------------------------------------------------------------- */

static void free_views(grid_view *v, int n) {
  for (int g = 0; g < n; g++) {
    for (int i = 0; i < v[g].n_cells; i++) qkd_json_free(v[g].cells[i].cell);
    free(v[g].cells);
    free(v[g].rows);
  }
  free(v);
}

int qkd_gridreport(const char *const *dirs, int n_dirs, const char *out, const char *compare, int runs,
                   FILE *log, qkd_error *err) {
  qkd_json **man = calloc((size_t)n_dirs + 1, sizeof *man);
  qkd_json *first_results = NULL, *cmp = NULL;
  grid_view *views = NULL;
  int n_views = 0, rc = -1;
  char *path = NULL;
  if (!man) return qkd_fail(err, QKD_ERR_MEMORY, out, "out of memory");
  for (int d = 0; d < n_dirs; d++) {
    free(path);
    path = qkd_file_join(dirs[d], "grid.json");
    if (!path) goto oom;
    if (!(man[d] = qkd_json_read_file(path, err))) {
      FILE *probe = fopen(path, "rb");
      if (!probe) qkd_fail(err, QKD_ERR_IO, dirs[d], "no grid.json here: not the run directory of a program with grids "
                                                 "(qkdc run FILE.qkd --out DIR writes it)");
      else fclose(probe);
      goto done;
    }
    const char *p0 = qkd_json_s(qkd_json_get(man[0], "program")), *pd = qkd_json_s(qkd_json_get(man[d], "program"));
    if (!pd || !qkd_json_get(man[d], "grids")) {
      qkd_fail(err, QKD_ERR_FORMAT, path, "not a qkd grid manifest (no \"program\" or \"grids\")");
      goto done;
    }
    if (d > 0 && strcmp(p0, pd) != 0) {
      qkd_fail(err, QKD_ERR_INPUT, dirs[d], "holds cells of another program than %s (program %s, not %s): other grids, "
                                     "another version of the program or other --set values; report them separately",
               dirs[0], pd, p0);
      goto done;
    }
  }
  if (compare && !(cmp = qkd_json_read_file(compare, err))) goto done;
  if (cmp && cmp->kind != QKD_JSON_ARR) {
    qkd_fail(err, QKD_ERR_FORMAT, compare, "--compare takes a JSON array of {\"grid\", axis label: value, \"accuracy\", \"label\"}");
    goto done;
  }
  free(path);
  path = qkd_file_join(dirs[0], "results.json");
  if (!path) goto oom;
  first_results = qkd_json_read_file(path, NULL); /* absent or unreadable: no plain experiments */
  const qkd_json *grids = qkd_json_get(man[0], "grids");
  views = calloc((size_t)grids->n + 1, sizeof *views);
  if (!views) goto oom;
  for (int g = 0; g < grids->n; g++, n_views++) {
    grid_view *G = &views[g];
    G->g = grids->items[g];
    G->axes = qkd_json_get(G->g, "axes");
    const qkd_json *cells = qkd_json_get(G->g, "cells"), *seeds = qkd_json_get(G->g, "seeds");
    if (!G->axes || !cells || !seeds || cells->kind != QKD_JSON_ARR || seeds->n < 1) {
      qkd_fail(err, QKD_ERR_FORMAT, dirs[0], "grid.json: a grid without axes, seeds or cells");
      goto done;
    }
    G->n_axes = G->axes->n;
    G->n_seeds = seeds->n;
    G->n_cells = cells->n;
    G->n_rows = G->n_cells / G->n_seeds;
    G->cells = calloc((size_t)G->n_cells + 1, sizeof *G->cells);
    G->rows = calloc((size_t)G->n_rows + 1, sizeof *G->rows);
    if (!G->cells || !G->rows) goto oom;
    for (int i = 0; i < G->n_cells; i++) {
      cell_slot *c = &G->cells[i];
      c->name = qkd_json_s(qkd_json_get(cells->items[i], "name"));
      c->key = qkd_json_s(qkd_json_get(cells->items[i], "key"));
      if (!c->name || !c->key) {
        qkd_fail(err, QKD_ERR_FORMAT, dirs[0], "grid.json: a cell without a name or key");
        goto done;
      }
      for (int d = 0; d < n_dirs && !c->cell; d++) {
        char *cd = qkd_file_join(dirs[d], "cells"), *stem = cd ? qkd_file_join(cd, c->name) : NULL;
        char *file = stem ? malloc(strlen(stem) + 8) : NULL;
        free(cd);
        if (!file) { free(stem); goto oom; }
        sprintf(file, "%s.json", stem);
        free(stem);
        FILE *probe = fopen(file, "rb");
        if (probe) {
          fclose(probe);
          qkd_error e2;
          qkd_json *v = qkd_json_read_file(file, &e2);
          const char *key = qkd_json_s(qkd_json_get(v, "key"));
          const qkd_json *done = qkd_json_get(v, "completed");
          if (v && key && !strcmp(key, c->key) && done && done->kind == QKD_JSON_BOOL && done->num != 0) c->cell = v;
          else {
            c->stale = 1;
            if (log && !v) qkd_error_print(&e2, log);
            qkd_json_free(v);
          }
        }
        free(file);
      }
      if (c->cell) row_add(&G->rows[i / G->n_seeds], c->cell);
    }
  }
  merged M = {first_results, views, n_views, cmp, runs};
  static const struct { const char *name; qkd_emit_fn emit; } outs[] = {{"results.json", emit_results}, {"results.md", emit_md}};
  for (int i = 0; i < 2; i++) {
    free(path);
    path = qkd_file_join(out, outs[i].name);
    if (!path) goto oom;
    if (qkd_file_write_atomic(path, outs[i].emit, &M, err) != 0) goto done;
  }
  for (int g = 0; g < n_views; g++) {
    char name[256];
    snprintf(name, sizeof name, "%.200s.svg", qkd_json_s(qkd_json_get(views[g].g, "name")));
    free(path);
    path = qkd_file_join(out, name);
    if (!path) goto oom;
    merged one = {first_results, &views[g], 1, cmp, runs};
    if (qkd_file_write_atomic(path, emit_svg, &one, err) != 0) goto done;
  }
  if (log) {
    fputc('\n', log);
    emit_md(log, &M);
    fprintf(log, "report in %s/results.md, results.json", out);
    for (int g = 0; g < n_views; g++) fprintf(log, ", %s.svg", qkd_json_s(qkd_json_get(views[g].g, "name")));
    fputc('\n', log);
  }
  rc = 0;
  goto done;
oom:
  qkd_fail(err, QKD_ERR_MEMORY, out, "out of memory");
done:
  free(path);
  free_views(views, n_views);
  for (int d = 0; d < n_dirs; d++) qkd_json_free(man[d]);
  free(man);
  qkd_json_free(first_results);
  qkd_json_free(cmp);
  return rc;
}
