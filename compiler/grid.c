/* grid.c — grid declarations → checked cells (grid.h). */
#include "grid.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "override.h"
#include "qkd_hash.h"
#include "qkd_loss.h"
#include "sema.h"

/* ---- canonical text ------------------------------------------------------------------------- */

typedef struct {
  qkd_arena *a;
  char *s;
  size_t len, cap;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
    va_end(ap);
    if (n >= 0 && t->s && t->len + (size_t)n < t->cap) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = t->cap ? t->cap * 2 : 1024;
    while (cap < t->len + (size_t)(n > 0 ? n : 0) + 1) cap *= 2;
    char *s = qkd_arena_alloc(t->a, cap);
    if (t->len) memcpy(s, t->s, t->len);
    s[t->len] = 0;
    t->s = s, t->cap = cap;
  }
}

static void put_net(text *t, const qkd_net_spec *n) {
  put(t, "{");
  for (int i = 0; i < n->n_members; i++) put_net(t, &n->members[i]);
  for (int i = 0; i < n->n_layers; i++) {
    const qkd_layer_spec *l = &n->layers[i];
    put(t, " %s(%d,%d,%d,%d,%.17g)", qkd_layer_table[l->kind].name, l->units, l->kernel, l->stride, l->padding, l->value);
  }
  put(t, " }");
}

static void put_data(text *t, const qkd_m_dataset *d) {
  put(t, "dataset %s source=\"%s\" dir=\"%s\" classes=[", d->name, d->source, d->dir ? d->dir : "");
  for (int i = 0; i < d->n_classes; i++) put(t, "%s%d", i ? "," : "", d->classes[i]);
  put(t, "] per_class=%d train_limit=%d test_limit=%d validation=%d scale=%d shape=%dx%dx%d seed=%d\n", d->per_class,
      d->train_limit, d->test_limit, d->validation, (int)d->scale, d->c, d->h, d->w, d->seed);
}

static void put_train(text *t, const qkd_m_train *r) {
  put(t, "optimizer=%d lr=%.17g beta1=%.17g beta2=%.17g momentum=%.17g epochs=%d batch=%d seed=%d\n", (int)r->optimizer,
      r->lr, r->beta1, r->beta2, r->momentum, r->epochs, r->batch, r->seed);
}

static void put_teacher(text *t, const qkd_m_teacher *te) {
  if (te->logits) { /* the files' contents are the run's business (run.c keys them by size too) */
    put(t, "teacher %s logits=\"%s\" test_logits=\"%s\"\n  ", te->name, te->logits, te->test_logits);
    put_data(t, te->data);
    return;
  }
  put(t, "teacher %s net=", te->name);
  put_net(t, &te->net);
  put(t, "\n  ");
  put_data(t, te->data);
  put(t, "  ");
  put_train(t, &te->train);
}

/* The canonical text; `baseline`: only what the ce-only baseline run depends on (no teacher,
 * no loss, no control), so cells that differ only in those share their baseline. */
static const char *describe(qkd_arena *a, const qkd_m_experiment *e, int baseline) {
  text t = {.a = a};
  put(&t, "experiment %s%s\n", e->name, baseline ? " (baseline run)" : "");
  put_data(&t, e->data);
  if (baseline) put(&t, "teacher -\n");
  else if (e->teacher) put_teacher(&t, e->teacher);
  else put(&t, "teacher none\n");
  const qkd_m_student *s = &e->student;
  const qkd_ir_circuit *c = &s->circuit;
  put(&t, "student %s qubits=%d pre=%d(%d,%d,%d) pre_net=", s->name, s->qubits, (int)s->pre, s->pre_k, s->pre_h, s->pre_w);
  put_net(&t, &s->pre_net);
  put(&t, " features=%d circuit=%016llx gates=%d params=%d encode=%d measure=%d shots=%d precision=%d head=%d\n",
      s->n_features, (unsigned long long)qkd_driver_ir_hash(c), c->n_gates, c->n_params, (int)c->encode,
      (int)c->measure, c->shots, (int)c->precision, s->head_dense);
  char loss[512];
  qkd_loss_format(e->loss, loss, sizeof loss);
  put(&t, "loss %s\ntrain ", baseline ? "ce" : loss);
  put_train(&t, &e->train);
  if (baseline) put(&t, "gradient=%d\n", (int)e->gradient);
  else put(&t, "baseline=%d control=%d gradient=%d\n", e->baseline, (int)e->control, (int)e->gradient);
  if (e->eval_noise) /* only when given: the keys of noiseless experiments stay as they were */
    put(&t, "eval_noise circuit=%016llx\n", (unsigned long long)qkd_driver_ir_hash(&e->eval_circuit));
  return t.s;
}

const char *qkd_grid_describe(qkd_arena *a, const qkd_m_experiment *e) { return describe(a, e, 0); }

static void set_keys(qkd_arena *a, qkd_m_experiment *e) {
  e->key_text = describe(a, e, 0);
  e->baseline_key_text = describe(a, e, 1);
}

static uint64_t teacher_hash(qkd_arena *a, const qkd_m_teacher *te) {
  text t = {.a = a};
  put_teacher(&t, te);
  return qkd_hash_str(QKD_HASH_INIT, t.s);
}

/* ---- grid declarations ------------------------------------------------------------------------ */

typedef struct {
  const char *path;
  const qkd_ast *field;        /* the axis field (its name is the path) */
  const qkd_ast *values;       /* its LIST */
} axis_field;

typedef struct {
  const char *label;
  qkd_span at;
  int n_fields;
  axis_field *fields;
  int n_values;
  const char **names;
} axis;

static const char *source_text(const qkd_diag *d, qkd_span sp) {
  if (sp.file < 0 || sp.file >= d->n_files) return "?";
  return qkd_arena_strndup(d->arena, d->files[sp.file]->text + sp.start, sp.end - sp.start);
}

static int is_true_false(const qkd_ast *v, int *out) {
  if (v->kind != QKD_AST_IDENT) return 0;
  if (!strcmp(v->name, "true")) return *out = 1, 1;
  if (!strcmp(v->name, "false")) return *out = 0, 1;
  return 0;
}

/* A name usable as one part of a cell name (and a file name under DIR/cells/). */
static int name_ok(const char *s) {
  if (!*s || s[0] == '.' || strlen(s) > 100) return 0;
  for (; *s; s++)
    if (*s == '/' || *s == '\\' || (unsigned char)*s < 32) return 0;
  return 1;
}

static const char *name_of(qkd_diag *d, const qkd_ast *v) {
  if (v->kind == QKD_AST_IDENT || v->kind == QKD_AST_STR) return v->name;
  return source_text(d, v->span);
}

/* Checks one `axis [LABEL] { … }` block. Returns 0, or -1 after reporting. */
static int check_axis(qkd_arena *a, qkd_diag *d, const qkd_program_ast *prog, const qkd_ast *b, axis *ax) {
  memset(ax, 0, sizeof *ax);
  ax->at = b->name_span;
  ax->fields = qkd_arena_alloc(a, sizeof *ax->fields * (size_t)(b->items.len + 1));
  const qkd_ast *names = NULL;
  int rc = 0;
  for (int i = 0; i < b->items.len; i++) {
    const qkd_ast *f = b->items.items[i];
    if (f->kind != QKD_AST_FIELD) {
      qkd_diag_error(d, f->name_span, "an axis holds fields PATH: [values] and names: [...], not a block");
      rc = -1;
      continue;
    }
    for (int j = 0; j < i; j++)
      if (!strcmp(((qkd_ast *)b->items.items[j])->name, f->name)) {
        qkd_diag_error(d, f->name_span, "'%s' is given twice in this axis", f->name);
        rc = -1;
      }
    if (f->a->kind != QKD_AST_LIST || f->a->items.len == 0) {
      qkd_diag_error(d, f->a->span, "'%s' takes a non-empty list of values: [v1, v2, …]", f->name);
      rc = -1;
      continue;
    }
    if (!strcmp(f->name, "names")) {
      names = f;
      continue;
    }
    if (!strchr(f->name, '.')) {
      qkd_diag_error(d, f->name_span, "'%s' is not a path: write declaration.field (qnn.qubits, v2.train.seed)", f->name);
      rc = -1;
      continue;
    }
    char *what = qkd_arena_printf(a, "axis field '%s'", f->name);
    size_t pl = strlen(f->name);
    if (pl > 11 && !strcmp(f->name + pl - 11, ".train.seed")) {
      qkd_diag_error(d, f->name_span, "an axis cannot set a train seed: the grid's seeds: set the experiment's (and, with "
                                      "seed_teachers: true, the teacher's)");
      rc = -1;
      continue;
    }
    if (!qkd_override_target(d, prog, f->name, f->name_span, what)) {
      rc = -1;
      continue;
    }
    ax->fields[ax->n_fields++] = (axis_field){f->name, f, f->a};
  }
  if (rc != 0) return rc;
  if (ax->n_fields == 0) {
    qkd_diag_error(d, b->name_span, "an axis needs at least one field PATH: [values]");
    return -1;
  }
  const axis_field *first = &ax->fields[0];
  ax->n_values = first->values->items.len;
  for (int i = 1; i < ax->n_fields; i++)
    if (ax->fields[i].values->items.len != ax->n_values) {
      qkd_diag_error(d, ax->fields[i].values->span, "'%s' has %d values but '%s' has %d: the fields of one axis vary together",
                     ax->fields[i].path, ax->fields[i].values->items.len, first->path, ax->n_values);
      qkd_diag_note(d, first->values->span, "the first field of this axis is here");
      rc = -1;
    }
  if (names && names->a->items.len != ax->n_values) {
    qkd_diag_error(d, names->a->span, "names: has %d entries but the axis has %d values", names->a->items.len, ax->n_values);
    rc = -1;
  }
  if (rc != 0) return rc;
  if (b->b) ax->label = b->b->name;
  else {
    const char *dot = strrchr(first->path, '.');
    ax->label = dot + 1;
  }
  ax->names = qkd_arena_alloc(a, sizeof *ax->names * (size_t)ax->n_values);
  const qkd_ast *src = names ? names->a : first->values;
  for (int i = 0; i < ax->n_values; i++) {
    const qkd_ast *v = src->items.items[i];
    ax->names[i] = name_of(d, v);
    if (!name_ok(ax->names[i])) {
      qkd_diag_error(d, v->span, "'%s' cannot name a cell (no '/', no leading '.', at most 100 characters): give the axis names: [...]",
                     ax->names[i]);
      rc = -1;
    }
    for (int j = 0; j < i && rc == 0; j++)
      if (!strcmp(ax->names[i], ax->names[j])) {
        qkd_diag_error(d, v->span, "two values of axis '%s' are both named '%s': give the axis names: [...]", ax->label,
                       ax->names[i]);
        rc = -1;
      }
  }
  return rc;
}

static qkd_ast *decl_named(const qkd_program_ast *prog, const char *name) {
  for (int i = 0; i < prog->decls.len; i++) {
    qkd_ast *x = prog->decls.items[i];
    if (!strcmp(x->name, name)) return x;
  }
  return NULL;
}

static const qkd_ast *field_of(const qkd_ast *decl, const char *name) {
  for (int i = 0; i < decl->items.len; i++) {
    const qkd_ast *f = decl->items.items[i];
    if (f->kind == QKD_AST_FIELD && !strcmp(f->name, name)) return f;
  }
  return NULL;
}

static qkd_ast *num_node(qkd_arena *a, double v, qkd_span sp) {
  qkd_ast *n = qkd_ast_new(a, QKD_AST_NUM, sp);
  n->num = v;
  n->is_int = 1;
  return n;
}

typedef struct {
  qkd_arena *a;
  qkd_diag *d;
  const qkd_program_ast *prog;
  qkd_model *m;
  const char *root;
  qkd_vec grids, cells;    /* qkd_m_grid*, qkd_m_cell* */
} expander;

static const qkd_m_experiment *experiment_named(const qkd_model *m, const char *name) {
  for (int i = 0; i < m->n_experiments; i++)
    if (!strcmp(m->experiments[i]->name, name)) return m->experiments[i];
  return NULL;
}

/* Gives a cell's teacher its own cache file when it differs from the declared teacher. */
static void own_cache(expander *X, qkd_m_experiment *e) {
  qkd_m_teacher *t = (qkd_m_teacher *)e->teacher;
  if (!t || !t->cache) return;
  for (int i = 0; i < X->m->n_teachers; i++) {
    const qkd_m_teacher *base = X->m->teachers[i];
    if (strcmp(base->name, t->name) != 0) continue;
    uint64_t h = teacher_hash(X->a, t);
    if (h == teacher_hash(X->a, base)) return;
    const char *slash = strrchr(t->cache, '/'), *dot = strrchr(t->cache, '.');
    if (!dot || (slash && dot < slash)) dot = t->cache + strlen(t->cache);
    t->cache = qkd_arena_printf(X->a, "%.*s.%016llx%s", (int)(dot - t->cache), t->cache, (unsigned long long)h, dot);
    return;
  }
}

static int expand_grid(expander *X, const qkd_ast *G) {
  qkd_arena *a = X->a;
  qkd_diag *d = X->d;
  int errs = d->errors;
  const qkd_ast *exp_f = NULL, *seeds_f = NULL, *st_f = NULL;
  axis *axes = qkd_arena_alloc(a, sizeof *axes * (size_t)(G->items.len + 1));
  int n_axes = 0;
  for (int i = 0; i < G->items.len; i++) {
    const qkd_ast *f = G->items.items[i];
    const qkd_ast **slot = NULL;
    if (f->kind == QKD_AST_BLOCK && !strcmp(f->name, "axis")) {
      if (check_axis(a, d, X->prog, f, &axes[n_axes]) == 0) {
        for (int j = 0; j < n_axes; j++)
          if (!strcmp(axes[j].label, axes[n_axes].label)) {
            qkd_diag_error(d, f->b ? f->b->span : f->name_span, "two axes are labelled '%s': give one a label (axis LABEL { … })",
                           axes[j].label);
            qkd_diag_note(d, axes[j].at, "the other axis '%s' is here", axes[j].label);
          }
        n_axes++;
      }
      continue;
    }
    if (f->kind == QKD_AST_FIELD && !strcmp(f->name, "experiment")) slot = &exp_f;
    else if (f->kind == QKD_AST_FIELD && !strcmp(f->name, "seeds")) slot = &seeds_f;
    else if (f->kind == QKD_AST_FIELD && !strcmp(f->name, "seed_teachers")) slot = &st_f;
    if (!slot) {
      qkd_diag_error(d, f->name_span, "unknown %s '%s' in grid (expected experiment:, axis { … }, seeds:, seed_teachers:)",
                     f->kind == QKD_AST_BLOCK ? "block" : "field", f->name);
      continue;
    }
    if (*slot) qkd_diag_error(d, f->name_span, "field '%s' is given twice", f->name);
    *slot = f;
  }
  if (!exp_f) {
    qkd_diag_error(d, G->name_span, "grid '%s' needs an 'experiment' field", G->name);
    return -1;
  }
  const qkd_ast *xd = NULL;
  if (exp_f->a->kind != QKD_AST_IDENT || !(xd = decl_named(X->prog, exp_f->a->name)) ||
      xd->decl_kind != QKD_DECL_EXPERIMENT) {
    qkd_diag_error(d, exp_f->a->span, xd ? "'%s' is a %s, not an experiment" : "unknown experiment '%s'",
                   exp_f->a->kind == QKD_AST_IDENT ? exp_f->a->name : "?", xd ? qkd_decl_kind_names[xd->decl_kind] : "");
    return -1;
  }
  qkd_m_experiment *base = (qkd_m_experiment *)experiment_named(X->m, xd->name);
  if (!base) return -1; /* reported by sema */
  int seed_teachers = 0;
  if (st_f && !is_true_false(st_f->a, &seed_teachers)) qkd_diag_error(d, st_f->a->span, "seed_teachers must be true or false");
  if (seed_teachers && !base->teacher) qkd_diag_error(d, st_f->a->span, "seed_teachers: experiment '%s' has no teacher", xd->name);
  else if (seed_teachers && base->teacher->logits)
    qkd_diag_error(d, st_f->a->span, "seed_teachers: teacher '%s' is given by its logits and has no training seed", base->teacher->name);
  int n_seeds = 1, *seeds;
  if (seeds_f) {
    const qkd_ast *l = seeds_f->a;
    if (l->kind != QKD_AST_LIST || l->items.len == 0) {
      qkd_diag_error(d, l->span, "seeds takes a non-empty list of integers: [1, 2, 3]");
      return -1;
    }
    n_seeds = l->items.len;
    seeds = qkd_arena_alloc(a, sizeof *seeds * (size_t)n_seeds);
    for (int i = 0; i < n_seeds; i++) {
      const qkd_ast *v = l->items.items[i];
      if (v->kind != QKD_AST_NUM || !v->is_int || v->num > 2147483647) {
        qkd_diag_error(d, v->span, "a seed is an integer from 0 to 2147483647");
        return -1;
      }
      seeds[i] = (int)v->num;
      for (int j = 0; j < i; j++)
        if (seeds[j] == seeds[i]) {
          qkd_diag_error(d, v->span, "seed %d is listed twice", seeds[i]);
          return -1;
        }
    }
  } else {
    seeds = qkd_arena_alloc(a, sizeof *seeds);
    seeds[0] = base->train.seed;
  }
  if (d->errors != errs) return -1;
  base->grid_base = 1;
  qkd_m_grid *g = qkd_arena_alloc(a, sizeof *g);
  g->name = G->name;
  g->experiment = xd->name;
  g->n_axes = n_axes;
  g->axes = qkd_arena_alloc(a, sizeof *g->axes * (size_t)(n_axes + 1));
  long total = n_seeds;
  for (int i = 0; i < n_axes; i++) {
    g->axes[i] = (qkd_m_axis){axes[i].label, axes[i].n_values, axes[i].names};
    total *= axes[i].n_values;
    if (total > 100000) {
      qkd_diag_error(d, G->name_span, "grid '%s' has more than 100,000 cells", G->name);
      return -1;
    }
  }
  g->n_seeds = n_seeds;
  g->seeds = seeds;
  g->seed_teachers = seed_teachers;
  g->first_cell = X->cells.len;
  g->n_cells = (int)total;
  int *idx = qkd_arena_alloc(a, sizeof *idx * (size_t)(n_axes + 1));
  int bad = 0;
  for (long c = 0; c < total; c++) {
    long r = c;
    int si = (int)(r % n_seeds);
    r /= n_seeds;
    for (int k = n_axes - 1; k >= 0; k--) {
      idx[k] = (int)(r % axes[k].n_values);
      r /= axes[k].n_values;
    }
    qkd_m_cell *cell = qkd_arena_alloc(a, sizeof *cell);
    cell->grid = g;
    cell->seed = seeds[si];
    cell->value = qkd_arena_alloc(a, sizeof *cell->value * (size_t)(n_axes + 1));
    char *name = qkd_arena_strdup(a, G->name);
    for (int k = 0; k < n_axes; k++) {
      cell->value[k] = idx[k];
      name = qkd_arena_printf(a, "%s/%s=%s", name, axes[k].label, axes[k].names[idx[k]]);
    }
    cell->name = qkd_arena_printf(a, "%s/seed=%d", name, cell->seed);
    /* the cell's program: the grid's values set on a private copy of the declarations */
    qkd_program_ast cp = *X->prog;
    int ok = 1;
    for (int k = 0; k < n_axes && ok; k++)
      for (int j = 0; j < axes[k].n_fields && ok; j++) {
        const axis_field *af = &axes[k].fields[j];
        qkd_ast *v = af->values->items.items[idx[k]];
        char *what = qkd_arena_printf(a, "axis field '%s'", af->path);
        if (qkd_override_set(a, d, &cp, af->path, v, v->span, what) != 0) ok = 0;
      }
    qkd_span seed_at = seeds_f ? ((qkd_ast *)seeds_f->a->items.items[si])->span : G->name_span;
    char *path = qkd_arena_printf(a, "%s.train.seed", xd->name);
    if (ok && qkd_override_set(a, d, &cp, path, num_node(a, cell->seed, seed_at), seed_at, "seeds") != 0) ok = 0;
    if (ok && seed_teachers) {
      /* the teacher this cell's experiment names (an axis may have changed it) */
      const qkd_ast *cx = decl_named(&cp, xd->name), *ctf = cx ? field_of(cx, "teacher") : NULL;
      const qkd_ast *td = ctf && ctf->a->kind == QKD_AST_IDENT ? decl_named(&cp, ctf->a->name) : NULL;
      if (td && td->decl_kind == QKD_DECL_TEACHER) {
        path = qkd_arena_printf(a, "%s.train.seed", td->name);
        if (qkd_override_set(a, d, &cp, path, num_node(a, cell->seed, seed_at), seed_at, "seed_teachers") != 0) ok = 0;
      }
    }
    qkd_model *cm = ok ? qkd_sema_check(a, d, &cp, X->root) : NULL;
    const qkd_m_experiment *ce = cm ? experiment_named(cm, xd->name) : NULL;
    if (!ce) {
      qkd_diag_note(d, G->name_span, "in cell '%s' of grid '%s'", cell->name, G->name);
      bad++;
      continue;
    }
    own_cache(X, (qkd_m_experiment *)ce);
    cell->experiment = ce;
    set_keys(a, (qkd_m_experiment *)ce);
    cell->key_text = ce->key_text;
    qkd_vec_push(a, &X->cells, cell);
  }
  if (bad) {
    qkd_diag_error(d, G->name_span, "%d of the %ld cells of grid '%s' do not check", bad, total, G->name);
    return -1;
  }
  qkd_vec_push(a, &X->grids, g);
  return 0;
}

int qkd_grid_expand(qkd_arena *a, qkd_diag *d, const qkd_program_ast *prog, qkd_model *m, const char *root_path) {
  expander X = {.a = a, .d = d, .prog = prog, .m = m, .root = root_path};
  int rc = 0;
  for (int i = 0; i < m->n_experiments; i++) set_keys(a, m->experiments[i]);
  for (int i = 0; i < prog->decls.len; i++) {
    const qkd_ast *x = prog->decls.items[i];
    if (x->kind == QKD_AST_DECL && x->decl_kind == QKD_DECL_GRID && expand_grid(&X, x) != 0) rc = -1;
  }
  if (rc != 0) return -1;
  m->n_grids = X.grids.len;
  m->grids = (qkd_m_grid **)X.grids.items;
  m->n_cells = X.cells.len;
  m->cells = qkd_arena_alloc(a, sizeof *m->cells * (size_t)(X.cells.len + 1));
  for (int i = 0; i < X.cells.len; i++) m->cells[i] = *(qkd_m_cell *)X.cells.items[i];
  /* cell names are unique by construction within a grid; grids have distinct names */
  return 0;
}
