/* sema.c — semantic checks and construction of the program model (sema.h). */
#include "sema.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lower.h"
#include "qkd_data.h"

#define MAX_NET_NESTING 8

typedef struct {
  qkd_arena *A;
  qkd_diag *D;
  qkd_eval ev;
  const qkd_program_ast *prog;
  qkd_model *model;
  qkd_vec ds_ast, ds_model; /* parallel: dataset DECL → qkd_m_dataset */
  qkd_vec te_ast, te_model; /* teacher DECL → qkd_m_teacher */
  int loss_depth;
} sema;

/* ---- declarations and fields ------------------------------------------------------------ */

static qkd_ast *find_decl(sema *S, const char *name) {
  for (int i = 0; i < S->prog->decls.len; i++) {
    qkd_ast *d = S->prog->decls.items[i];
    if (strcmp(d->name, name) == 0) return d;
  }
  return NULL;
}

/* The declaration `ref` (IDENT or CALL) names, which must be of `kind`; NULL after an error. */
static qkd_ast *resolve(sema *S, const qkd_ast *ref, qkd_decl_kind kind) {
  const char *what = qkd_decl_kind_names[kind];
  if (ref->kind != QKD_AST_IDENT && ref->kind != QKD_AST_CALL) {
    qkd_diag_error(S->D, ref->span, "expected the name of a %s", what);
    return NULL;
  }
  qkd_ast *d = find_decl(S, ref->name);
  if (!d) {
    qkd_diag_error(S->D, ref->name_span, "unknown %s '%s'", what, ref->name);
    return NULL;
  }
  if (d->decl_kind != kind) {
    qkd_diag_error(S->D, ref->name_span, "'%s' is a %s, not a %s", ref->name, qkd_decl_kind_names[d->decl_kind], what);
    return NULL;
  }
  return d;
}

static int name_in(const char *name, const char *const *list) {
  for (int i = 0; list[i]; i++)
    if (strcmp(list[i], name) == 0) return 1;
  return 0;
}

static const char *join(sema *S, const char *const *list) {
  char *s = "";
  for (int i = 0; list[i]; i++) s = qkd_arena_printf(S->A, "%s%s%s", s, i ? ", " : "", list[i]);
  return s;
}

/* Checks a field list against `allowed` (and `blocks`, the names that are `name { … }` blocks):
 * unknown and duplicate fields are errors. */
static void check_fields(sema *S, const qkd_vec *items, const char *what, const char *const *allowed,
                         const char *const *blocks) {
  for (int i = 0; i < items->len; i++) {
    const qkd_ast *f = items->items[i];
    int is_block = f->kind == QKD_AST_BLOCK;
    if (is_block ? !name_in(f->name, blocks) : !name_in(f->name, allowed)) {
      if (!is_block && name_in(f->name, blocks))
        qkd_diag_error(S->D, f->name_span, "'%s' is a block: write %s { … }", f->name, f->name);
      else if (is_block && name_in(f->name, allowed))
        qkd_diag_error(S->D, f->name_span, "'%s' is a field: write %s: value", f->name, f->name);
      else
        qkd_diag_error(S->D, f->name_span, "unknown %s '%s' in %s (expected one of: %s)", is_block ? "block" : "field",
                       f->name, what, join(S, is_block ? blocks : allowed));
      continue;
    }
    for (int j = 0; j < i; j++) {
      const qkd_ast *g = items->items[j];
      if (strcmp(g->name, f->name) == 0) {
        qkd_diag_error(S->D, f->name_span, "field '%s' is given twice", f->name);
        break;
      }
    }
  }
}

/* The field `name: value` (kind FIELD) or block `name { … }` (kind BLOCK) of a list; a field
 * written as a block or the other way round was reported by check_fields and is not found. */
static const qkd_ast *item(const qkd_vec *items, const char *name, qkd_ast_kind kind) {
  for (int i = 0; i < items->len; i++) {
    const qkd_ast *f = items->items[i];
    if (f->kind == kind && strcmp(f->name, name) == 0) return f;
  }
  return NULL;
}

static const qkd_ast *field(const qkd_vec *items, const char *name) { return item(items, name, QKD_AST_FIELD); }

static const qkd_ast *require(sema *S, const qkd_ast *decl, const qkd_vec *items, const char *name, const char *what) {
  const qkd_ast *f = field(items, name);
  if (!f) qkd_diag_error(S->D, decl->name_span, "%s '%s' needs a '%s' field", what, decl->name ? decl->name : "", name);
  return f;
}

/* Integer field value in [lo, hi]; returns -1 after reporting. */
static int int_in(sema *S, const qkd_ast *f, long lo, long hi, const char *rule, long *out) {
  if (qkd_eval_int(&S->ev, NULL, f->a, out) != 0) return -1;
  if (*out < lo || *out > hi) {
    qkd_diag_error(S->D, f->a->span, "%s must be %s, not %ld", f->name, rule, *out);
    return -1;
  }
  return 0;
}

/* An identifier value among `choices`; returns its index or -1 after reporting. */
static int choice(sema *S, const qkd_ast *v, const char *const *choices, const char *what) {
  if (v->kind == QKD_AST_IDENT || (v->kind == QKD_AST_CALL && v->items.len == 0))
    for (int i = 0; choices[i]; i++)
      if (strcmp(v->name, choices[i]) == 0) return i;
  qkd_diag_error(S->D, v->span, "%s must be one of: %s", what, join(S, choices));
  return -1;
}

/* Binds a built-in call `name(p0, p1: d1, …)`: params[i] with defaults (NAN = required). */
static int bind_builtin(sema *S, const qkd_env *env, const qkd_ast *call, const char *const *params, const double *defaults,
                        double *out) {
  int np = 0;
  while (params[np]) np++;
  int set[8] = {0}, pos = 0, rc = 0;
  for (int i = 0; call->kind == QKD_AST_CALL && i < call->items.len; i++) {
    const qkd_ast *a = call->items.items[i];
    int slot = -1;
    if (!a->name) {
      if (pos >= np) {
        qkd_diag_error(S->D, a->span, "too many arguments: %s takes %d", call->name, np);
        rc = -1;
        continue;
      }
      slot = pos++;
    } else {
      for (int p = 0; p < np; p++)
        if (strcmp(params[p], a->name) == 0) slot = p;
      if (slot < 0) {
        qkd_diag_error(S->D, a->name_span, "%s has no parameter '%s' (parameters: %s)", call->name, a->name, join(S, params));
        rc = -1;
        continue;
      }
    }
    if (set[slot]) {
      qkd_diag_error(S->D, a->span, "argument '%s' given twice", params[slot]);
      rc = -1;
      continue;
    }
    set[slot] = 1;
    if (qkd_eval_num(&S->ev, env, a->a, &out[slot]) != 0) rc = -1;
  }
  for (int p = 0; p < np && rc == 0; p++) {
    if (set[p]) continue;
    if (isnan(defaults[p])) {
      qkd_diag_error(S->D, call->span, "%s needs the argument '%s'", call->name, params[p]);
      rc = -1;
    } else {
      out[p] = defaults[p];
    }
  }
  return rc;
}

static const char *dir_of(sema *S, int file) {
  const char *p = S->D->files[file]->path;
  const char *slash = strrchr(p, '/');
  return slash ? qkd_arena_strndup(S->A, p, (size_t)(slash - p)) : ".";
}

static const char *resolve_path(sema *S, const qkd_ast *at, const char *path) {
  if (path[0] == '/' || !strchr(S->D->files[at->span.file]->path, '/')) return path;
  return qkd_arena_printf(S->A, "%s/%s", dir_of(S, at->span.file), path);
}

/* ---- data sets ---------------------------------------------------------------------------- */

/* Reads the image shape of a directory source from its headers (runtime/data.c does the reading). */
static int probe_dir(sema *S, const qkd_ast *at, const char *dir, qkd_m_dataset *ds) {
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    qkd_diag_error(S->D, at->span, "data directory '%s' does not exist", dir);
    return -1;
  }
  char err[1024];
  int n_train, n_test;
  if (qkd_data_probe(dir, &ds->c, &ds->h, &ds->w, &ds->source_classes, &n_train, &n_test, err, sizeof err) != 0) {
    const char *msg = strstr(err, ": error: "); /* "PATH: error: what" → "PATH: what" */
    if (msg) qkd_diag_error(S->D, at->span, "%.*s: %s", (int)(msg - err), err, msg + 9);
    else qkd_diag_error(S->D, at->span, "%s", err);
    return -1;
  }
  return 0;
}

static qkd_m_dataset *check_dataset(sema *S, const qkd_ast *d) {
  static const char *const allowed[] = {"source", "classes", "per_class", "train_limit", "test_limit",
                                        "validation", "scale", "shape", "seed", NULL};
  static const char *const none[] = {NULL};
  check_fields(S, &d->items, "dataset", allowed, none);
  qkd_m_dataset *ds = qkd_arena_alloc(S->A, sizeof *ds);
  ds->name = d->name;
  ds->seed = 1;
  const qkd_ast *f = require(S, d, &d->items, "source", "dataset");
  int ok = f != NULL;
  if (f) {
    qkd_value v = qkd_eval_expr(&S->ev, NULL, f->a);
    if (v.kind != QKD_V_STR) {
      if (v.kind != QKD_V_ERR) qkd_diag_error(S->D, f->a->span, "source must be a string: \"mnist\", \"fashion-mnist\", \"cifar10\", \"synthetic\" or a directory");
      ok = 0;
    } else {
      ds->source = v.str;
      if (!strcmp(v.str, "mnist") || !strcmp(v.str, "fashion-mnist")) {
        ds->source_kind = QKD_SRC_NAMED, ds->c = 1, ds->h = ds->w = 28, ds->source_classes = 10;
      } else if (!strcmp(v.str, "cifar10")) {
        ds->source_kind = QKD_SRC_NAMED, ds->c = 3, ds->h = ds->w = 32, ds->source_classes = 10;
      } else if (!strcmp(v.str, "synthetic")) {
        ds->source_kind = QKD_SRC_SYNTHETIC, ds->c = 1, ds->h = ds->w = 28, ds->source_classes = 10;
      } else if (strchr(v.str, '/') || v.str[0] == '.') {
        ds->source_kind = QKD_SRC_DIR;
        ds->dir = resolve_path(S, f, v.str);
        if (probe_dir(S, f->a, ds->dir, ds) != 0) ok = 0;
      } else {
        qkd_diag_error(S->D, f->a->span, "unknown data source \"%s\" (known: \"mnist\", \"fashion-mnist\", \"cifar10\", \"synthetic\"; a directory path contains '/')", v.str);
        ok = 0;
      }
    }
  }
  long x;
  if ((f = field(&d->items, "shape"))) {
    if (ok && ds->source_kind != QKD_SRC_SYNTHETIC) qkd_diag_error(S->D, f->name_span, "'shape' is only for synthetic sources");
    qkd_value v = qkd_eval_expr(&S->ev, NULL, f->a);
    if (v.kind == QKD_V_LIST && v.n == 3) {
      int dims[3] = {1, 1, 1};
      for (int i = 0; i < 3; i++) {
        dims[i] = v.items[i].kind == QKD_V_NUM && v.items[i].num == floor(v.items[i].num) ? (int)v.items[i].num : -1;
        if (dims[i] < 1 || dims[i] > 4096) {
          qkd_diag_error(S->D, f->a->span, "shape must be [channels, height, width] of positive integers");
          ok = 0;
          break;
        }
      }
      ds->c = dims[0], ds->h = dims[1], ds->w = dims[2];
    } else if (v.kind != QKD_V_ERR) {
      qkd_diag_error(S->D, f->a->span, "shape must be a list [channels, height, width]");
    }
  }
  if ((f = field(&d->items, "seed"))) {
    if (ok && ds->source_kind != QKD_SRC_SYNTHETIC) qkd_diag_error(S->D, f->name_span, "'seed' is only for synthetic sources");
    if (int_in(S, f, 0, 2147483647, ">= 0", &x) == 0) ds->seed = (int)x;
  }
  if (!ok) return NULL;
  int C = ds->source_classes;
  if ((f = field(&d->items, "classes"))) {
    qkd_value v = qkd_eval_expr(&S->ev, NULL, f->a);
    if (v.kind == QKD_V_RANGE) {
      if (v.lo > v.hi) {
        qkd_diag_error(S->D, f->a->span, "class range %g..%g is reversed", v.lo, v.hi);
        return NULL;
      }
      if (v.lo < 0 || v.hi >= C) {
        qkd_diag_error(S->D, f->a->span, "classes %g..%g are outside the source's labels 0..%d", v.lo, v.hi, C - 1);
        return NULL;
      }
      ds->n_classes = (int)(v.hi - v.lo) + 1;
      ds->classes = qkd_arena_alloc(S->A, sizeof(int) * (size_t)ds->n_classes);
      for (int i = 0; i < ds->n_classes; i++) ds->classes[i] = (int)v.lo + i;
    } else if (v.kind == QKD_V_LIST && v.n > 0) {
      ds->n_classes = v.n;
      ds->classes = qkd_arena_alloc(S->A, sizeof(int) * (size_t)v.n);
      for (int i = 0; i < v.n; i++) {
        double c = v.items[i].kind == QKD_V_NUM ? v.items[i].num : -1;
        if (c != floor(c) || c < 0 || c >= C) {
          qkd_diag_error(S->D, f->a->span, "class list entries must be labels 0..%d", C - 1);
          return NULL;
        }
        for (int j = 0; j < i; j++)
          if (ds->classes[j] == (int)c) {
            qkd_diag_error(S->D, f->a->span, "class %d is listed twice", (int)c);
            return NULL;
          }
        ds->classes[i] = (int)c;
      }
    } else {
      if (v.kind != QKD_V_ERR) qkd_diag_error(S->D, f->a->span, "classes must be a range (0..9) or a non-empty list ([0, 3, 5])");
      return NULL;
    }
    if (ds->n_classes < 2) {
      qkd_diag_error(S->D, f->a->span, "a classification task needs at least 2 classes");
      return NULL;
    }
  } else {
    ds->n_classes = C;
    ds->classes = qkd_arena_alloc(S->A, sizeof(int) * (size_t)C);
    for (int i = 0; i < C; i++) ds->classes[i] = i;
  }
  struct { const char *name; int *dst; long lo; const char *rule; } ints[] = {
      {"per_class", &ds->per_class, 1, ">= 1"}, {"train_limit", &ds->train_limit, 1, ">= 1"},
      {"test_limit", &ds->test_limit, 1, ">= 1"}, {"validation", &ds->validation, 0, ">= 0"}};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
    if ((f = field(&d->items, ints[i].name)) && int_in(S, f, ints[i].lo, 100000000, ints[i].rule, &x) == 0)
      *ints[i].dst = (int)x;
  if ((f = field(&d->items, "scale"))) {
    static const char *const scales[] = {"unit", "standard", NULL};
    int k = choice(S, f->a, scales, "scale");
    if (k >= 0) ds->scale = (qkd_scale_kind)k;
  }
  if (ds->train_limit && ds->validation >= ds->train_limit && (f = field(&d->items, "validation")))
    qkd_diag_error(S->D, f->a->span, "validation (%d) must be smaller than train_limit (%d)", ds->validation, ds->train_limit);
  return ds;
}

static qkd_m_dataset *dataset_ref(sema *S, const qkd_ast *ref) {
  qkd_ast *d = resolve(S, ref, QKD_DECL_DATASET);
  if (!d) return NULL;
  for (int i = 0; i < S->ds_ast.len; i++)
    if (S->ds_ast.items[i] == d) return S->ds_model.items[i];
  return NULL;
}

/* ---- nets ------------------------------------------------------------------------------------ */

/* Layers from CALL nodes, args evaluated in env. Spans of each layer go to spans[]. */
static int build_layers(sema *S, const qkd_env *env, const qkd_vec *items, qkd_layer_spec **out, qkd_span **spans) {
  int n = items->len, rc = 0;
  qkd_layer_spec *L = qkd_arena_alloc(S->A, sizeof *L * (size_t)(n ? n : 1));
  qkd_span *sp = qkd_arena_alloc(S->A, sizeof *sp * (size_t)(n ? n : 1));
  for (int i = 0; i < n; i++) {
    const qkd_ast *c = items->items[i];
    sp[i] = c->span;
    int k = qkd_layer_lookup(c->name);
    if (k < 0) {
      qkd_diag_error(S->D, c->name_span, "unknown layer '%s'", c->name);
      rc = -1;
      continue;
    }
    const qkd_layer_info *info = &qkd_layer_table[k];
    L[i] = (qkd_layer_spec){.kind = (qkd_layer_kind)k, .stride = 1};
    int line, col;
    qkd_diag_linecol(S->D, c->span.file, c->span.start, &line, &col);
    L[i].line = line, L[i].col = col;
    int pos = 0;
    double vals[2] = {0, 0};
    for (int j = 0; j < c->items.len; j++) {
      const qkd_ast *a = c->items.items[j];
      double v;
      if (qkd_eval_num(&S->ev, env, a->a, &v) != 0) { rc = -1; continue; }
      if (a->name) {
        int is_int = v == floor(v);
        if (k == QKD_LAYER_CONV && (!strcmp(a->name, "stride") || !strcmp(a->name, "padding"))) {
          if (!is_int || v < (a->name[0] == 's' ? 1 : 0) || v > 1024) {
            qkd_diag_error(S->D, a->span, "conv %s must be an integer %s", a->name, a->name[0] == 's' ? ">= 1" : ">= 0");
            rc = -1;
          } else if (a->name[0] == 's') {
            L[i].stride = (int)v;
          } else {
            L[i].padding = (int)v;
          }
        } else {
          qkd_diag_error(S->D, a->name_span, "layer '%s' has no parameter '%s'", c->name, a->name);
          rc = -1;
        }
        continue;
      }
      if (pos >= info->max_args) {
        qkd_diag_error(S->D, a->span, "layer '%s' takes %d argument%s", c->name, info->max_args, info->max_args == 1 ? "" : "s");
        rc = -1;
        continue;
      }
      vals[pos++] = v;
    }
    if (pos < info->min_args) {
      qkd_diag_error(S->D, c->span, "layer '%s' needs %d argument%s", c->name, info->min_args, info->min_args == 1 ? "" : "s");
      rc = -1;
      continue;
    }
    if (k == QKD_LAYER_DROPOUT || k == QKD_LAYER_SCALE) {
      L[i].value = vals[0];
    } else {
      for (int j = 0; j < pos; j++)
        if (vals[j] != floor(vals[j]) || vals[j] < 1 || vals[j] > 1e8) {
          qkd_diag_error(S->D, c->span, "layer '%s' needs positive integer sizes", c->name);
          rc = -1;
          break;
        }
      L[i].units = (int)vals[0];
      L[i].kernel = (int)vals[1];
    }
  }
  *out = L;
  *spans = sp;
  return rc;
}

/* Checks shapes through layers; reports at the failing layer. */
static int check_shapes(sema *S, const qkd_layer_spec *L, const qkd_span *sp, int n, qkd_shape in, int implicit,
                        qkd_shape *result, qkd_span site) {
  char err[256];
  int bad = qkd_net_shapes(L, n, in, implicit, NULL, result, err, sizeof err);
  if (bad < 0) return 0;
  qkd_diag_error(S->D, sp[bad], "%s", err);
  if (site.file >= 0 && site.file != sp[bad].file) qkd_diag_note(S->D, site, "for the input shape %dx%dx%d used here", in.c, in.h, in.w);
  return -1;
}

/* Instantiates the net named by `ref` (IDENT or CALL), checks it on `in`, and requires `classes`
 * logits when classes > 0. */
static int build_net(sema *S, const qkd_ast *ref, qkd_shape in, int classes, qkd_net_spec *out, long *params, int depth) {
  qkd_ast *d = resolve(S, ref, QKD_DECL_NET);
  if (!d) return -1;
  if (depth > MAX_NET_NESTING) {
    qkd_diag_error(S->D, ref->span, "net '%s' refers to itself (or nests more than %d levels)", d->name, MAX_NET_NESTING);
    return -1;
  }
  qkd_env *env;
  if (qkd_bind_args(&S->ev, d, ref->kind == QKD_AST_CALL ? ref : NULL, ref->span, NULL, &env) != 0) return -1;
  memset(out, 0, sizeof *out);
  out->name = d->name;
  if (d->a) { /* = mean(net, net, …) */
    const qkd_ast *m = d->a;
    if (m->kind != QKD_AST_CALL || strcmp(m->name, "mean") != 0 || m->items.len < 1) {
      qkd_diag_error(S->D, m->span, "a net defined with '=' must be mean(net, net, …)");
      return -1;
    }
    out->n_members = m->items.len;
    out->members = qkd_arena_alloc(S->A, sizeof *out->members * (size_t)m->items.len);
    *params = 0;
    for (int i = 0; i < m->items.len; i++) {
      const qkd_ast *a = m->items.items[i];
      /* member arguments are evaluated in this net's environment: rebuild the call with values */
      const qkd_ast *member = a->a;
      qkd_ast *call = qkd_ast_new(S->A, member->kind == QKD_AST_CALL ? QKD_AST_CALL : QKD_AST_IDENT, member->span);
      call->name = member->name;
      call->name_span = member->name_span;
      for (int j = 0; member->kind == QKD_AST_CALL && j < member->items.len; j++) {
        const qkd_ast *arg = member->items.items[j];
        double v;
        if (qkd_eval_num(&S->ev, env, arg->a, &v) != 0) return -1;
        qkd_ast *num = qkd_ast_new(S->A, QKD_AST_NUM, arg->a->span);
        num->num = v;
        qkd_ast *na = qkd_ast_new(S->A, QKD_AST_ARG, arg->span);
        na->name = arg->name;
        na->name_span = arg->name_span;
        qkd_ast_set(na, num, NULL);
        qkd_ast_push(S->A, call, na);
      }
      long p = 0;
      if (build_net(S, call, in, classes, &out->members[i], &p, depth + 1) != 0) return -1;
      *params += p;
    }
    return 0;
  }
  qkd_span *spans;
  if (build_layers(S, env, &d->items, &out->layers, &spans) != 0) return -1;
  out->n_layers = d->items.len;
  qkd_shape res;
  if (check_shapes(S, out->layers, spans, out->n_layers, in, 0, &res, ref->span) != 0) return -1;
  if (classes > 0 && (!res.flat || res.c != classes)) {
    qkd_diag_error(S->D, ref->span, "net '%s' produces %ld output%s, but the data set has %d classes", d->name,
                   qkd_shape_size(res), qkd_shape_size(res) == 1 ? "" : "s", classes);
    return -1;
  }
  *params = qkd_net_param_count(out->layers, out->n_layers, in, 0);
  return 0;
}

/* ---- training recipes ------------------------------------------------------------------------ */

/* augment: [crop(pad: p), flip] (a list, or one of them) and schedule: constant | cosine, into
 * fit; a train block without a fit (an experiment's) takes neither. */
static void check_fit(sema *S, const qkd_ast *b, qkd_fit *fit) {
  const qkd_ast *f;
  if ((f = field(&b->items, "augment"))) {
    const qkd_ast *v = f->a;
    int n = v->kind == QKD_AST_LIST ? v->items.len : 1;
    for (int i = 0; fit && i < n; i++) {
      const qkd_ast *a = v->kind == QKD_AST_LIST ? v->items.items[i] : v;
      const char *name = a->kind == QKD_AST_CALL || a->kind == QKD_AST_IDENT ? a->name : "";
      static const char *const pad[] = {"pad", NULL};
      static const double nodef[] = {NAN};
      double p;
      if (!strcmp(name, "crop") && bind_builtin(S, NULL, a, pad, nodef, &p) == 0) {
        if (fit->crop_pad) qkd_diag_error(S->D, a->span, "crop is given twice");
        else if (p != floor(p) || p < 1 || p > 1024) qkd_diag_error(S->D, a->span, "crop needs an integer pad >= 1, not %g", p);
        else fit->crop_pad = (int)p;
      } else if (!strcmp(name, "flip")) {
        if (a->kind == QKD_AST_CALL && a->items.len) qkd_diag_error(S->D, a->span, "flip takes no arguments");
        else if (fit->flip) qkd_diag_error(S->D, a->span, "flip is given twice");
        fit->flip = 1;
      } else if (strcmp(name, "crop") != 0) {
        qkd_diag_error(S->D, a->span, "unknown augmentation: use crop(pad: p) or flip");
      }
    }
    if (!fit) qkd_diag_error(S->D, f->name_span, "augment applies to a teacher's training only");
  }
  if ((f = field(&b->items, "schedule"))) {
    const qkd_ast *v = f->a;
    int bare = v->kind == QKD_AST_IDENT || (v->kind == QKD_AST_CALL && v->items.len == 0);
    if (!fit) qkd_diag_error(S->D, f->name_span, "schedule applies to a teacher's training only");
    else if (bare && !strcmp(v->name, "cosine")) fit->schedule = QKD_SCHEDULE_COSINE;
    else if (!(bare && !strcmp(v->name, "constant"))) qkd_diag_error(S->D, v->span, "unknown schedule: use constant or cosine");
  }
}

static int check_train(sema *S, const qkd_ast *owner, qkd_m_train *t, qkd_fit *fit) {
  const qkd_ast *b = item(&owner->items, "train", QKD_AST_BLOCK);
  if (!b) {
    qkd_diag_error(S->D, owner->name_span, "%s '%s' needs a train { … } block", qkd_decl_kind_names[owner->decl_kind], owner->name);
    return -1;
  }
  static const char *const allowed[] = {"optimizer", "epochs", "batch", "seed", "augment", "schedule", NULL};
  static const char *const none[] = {NULL};
  int errs = S->D->errors;
  check_fields(S, &b->items, "train", allowed, none);
  *t = (qkd_m_train){.optimizer = QKD_OPT_ADAM, .lr = 0.001, .beta1 = 0.9, .beta2 = 0.999, .seed = 1};
  const qkd_ast *f;
  long x;
  if ((f = require(S, b, &b->items, "optimizer", "train block"))) {
    const qkd_ast *v = f->a;
    if ((v->kind == QKD_AST_CALL || v->kind == QKD_AST_IDENT) && !strcmp(v->name, "adam")) {
      static const char *const p[] = {"lr", "beta1", "beta2", NULL};
      const double def[] = {NAN, 0.9, 0.999};
      double o[3];
      if (bind_builtin(S, NULL, v, p, def, o) == 0) {
        t->lr = o[0], t->beta1 = o[1], t->beta2 = o[2];
        if (!(o[1] >= 0 && o[1] < 1 && o[2] >= 0 && o[2] < 1)) qkd_diag_error(S->D, v->span, "adam betas must be in [0, 1)");
      }
    } else if ((v->kind == QKD_AST_CALL || v->kind == QKD_AST_IDENT) && !strcmp(v->name, "sgd")) {
      static const char *const p[] = {"lr", "momentum", NULL};
      const double def[] = {NAN, 0.0};
      double o[2];
      t->optimizer = QKD_OPT_SGD;
      if (bind_builtin(S, NULL, v, p, def, o) == 0) {
        t->lr = o[0], t->momentum = o[1];
        if (!(o[1] >= 0 && o[1] < 1)) qkd_diag_error(S->D, v->span, "sgd momentum must be in [0, 1)");
      }
    } else {
      qkd_diag_error(S->D, v->span, "unknown optimizer: use adam(lr: …) or sgd(lr: …)");
    }
    if (!(t->lr > 0)) qkd_diag_error(S->D, v->span, "the learning rate must be > 0, not %g", t->lr);
  }
  if ((f = require(S, b, &b->items, "epochs", "train block")) && int_in(S, f, 1, 100000, ">= 1", &x) == 0) t->epochs = (int)x;
  if ((f = require(S, b, &b->items, "batch", "train block")) && int_in(S, f, 1, 1000000, ">= 1", &x) == 0) t->batch = (int)x;
  if ((f = field(&b->items, "seed")) && int_in(S, f, 0, 2147483647, ">= 0", &x) == 0) t->seed = (int)x;
  check_fit(S, b, fit);
  return S->D->errors == errs ? 0 : -1;
}

/* ---- teachers --------------------------------------------------------------------------------- */

static qkd_m_teacher *check_teacher(sema *S, const qkd_ast *d) {
  static const char *const allowed[] = {"net", "data", "cache", NULL};
  static const char *const blocks[] = {"train", NULL};
  check_fields(S, &d->items, "teacher", allowed, blocks);
  qkd_m_teacher *t = qkd_arena_alloc(S->A, sizeof *t);
  t->name = d->name;
  int ok = 1;
  const qkd_ast *f = require(S, d, &d->items, "data", "teacher");
  if (f && !(t->data = dataset_ref(S, f->a))) ok = 0;
  if (!f) ok = 0;
  f = require(S, d, &d->items, "net", "teacher");
  if (f && t->data) {
    qkd_shape in = {t->data->c, t->data->h, t->data->w, 0};
    if (build_net(S, f->a, in, t->data->n_classes, &t->net, &t->params, 0) != 0) ok = 0;
  }
  if (!f) ok = 0;
  if (check_train(S, d, &t->train, &t->net.fit) != 0) ok = 0;
  else if (t->data && (t->net.fit.crop_pad >= t->data->h || t->net.fit.crop_pad >= t->data->w))
    qkd_diag_error(S->D, field(&item(&d->items, "train", QKD_AST_BLOCK)->items, "augment")->a->span,
                   "crop pad %d is not smaller than the %dx%d images",
                   t->net.fit.crop_pad, t->data->h, t->data->w), ok = 0;
  if ((f = field(&d->items, "cache"))) {
    qkd_value v = qkd_eval_expr(&S->ev, NULL, f->a);
    if (v.kind == QKD_V_STR && v.str[0]) t->cache = resolve_path(S, f, v.str);
    else if (v.kind != QKD_V_ERR) qkd_diag_error(S->D, f->a->span, "cache must be a file name (a string)"), ok = 0;
  }
  return ok ? t : NULL;
}

/* ---- losses ----------------------------------------------------------------------------------- */

static qkd_loss *loss_node(sema *S, qkd_loss_kind k, double v, qkd_loss *a, qkd_loss *b) {
  qkd_loss *l = qkd_arena_alloc(S->A, sizeof *l);
  l->kind = k, l->value = v, l->a = a, l->b = b;
  return l;
}

static qkd_loss *build_loss(sema *S, const qkd_env *env, const qkd_ast *e, int has_teacher, int *uses_teacher) {
  if (e->depth > QKD_AST_MAX_DEPTH) {
    qkd_diag_error(S->D, e->span, "loss expression nested too deeply");
    return NULL;
  }
  switch (e->kind) {
  case QKD_AST_NUM: return loss_node(S, QKD_LOSS_NUM, e->num, NULL, NULL);
  case QKD_AST_NEG: {
    qkd_loss *a = build_loss(S, env, e->a, has_teacher, uses_teacher);
    return a ? loss_node(S, QKD_LOSS_NEG, 0, a, NULL) : NULL;
  }
  case QKD_AST_BIN: {
    qkd_loss *a = build_loss(S, env, e->a, has_teacher, uses_teacher);
    qkd_loss *b = build_loss(S, env, e->b, has_teacher, uses_teacher);
    if (!a || !b) return NULL;
    if ((e->op == '/' || e->op == '%') && b->kind == QKD_LOSS_NUM && b->value == 0) {
      qkd_diag_error(S->D, e->span, "%s by zero", e->op == '/' ? "division" : "modulo");
      return NULL;
    }
    if (e->op == '%') {
      qkd_diag_error(S->D, e->span, "'%%' is not defined for losses");
      return NULL;
    }
    qkd_loss_kind k = e->op == '+' ? QKD_LOSS_ADD : e->op == '-' ? QKD_LOSS_SUB : e->op == '*' ? QKD_LOSS_MUL
                    : e->op == '/' ? QKD_LOSS_DIV : QKD_LOSS_POW;
    if (a->kind == QKD_LOSS_NUM && b->kind == QKD_LOSS_NUM) { /* fold */
      double x = a->value, y = b->value;
      double r = k == QKD_LOSS_ADD ? x + y : k == QKD_LOSS_SUB ? x - y : k == QKD_LOSS_MUL ? x * y
               : k == QKD_LOSS_DIV ? x / y : pow(x, y);
      return loss_node(S, QKD_LOSS_NUM, r, NULL, NULL);
    }
    return loss_node(S, k, 0, a, b);
  }
  case QKD_AST_IDENT:
  case QKD_AST_CALL: {
    const qkd_value *v = e->kind == QKD_AST_IDENT ? qkd_env_lookup(env, e->name) : NULL;
    if (v) {
      if (v->kind != QKD_V_NUM) {
        qkd_diag_error(S->D, e->span, "'%s' is not a number", e->name);
        return NULL;
      }
      return loss_node(S, QKD_LOSS_NUM, v->num, NULL, NULL);
    }
    int is_ce = !strcmp(e->name, "ce"), is_mse = !strcmp(e->name, "mse"), is_kl = !strcmp(e->name, "kl");
    if (is_ce || is_mse || is_kl) {
      if ((is_kl || is_mse) && !has_teacher) {
        qkd_diag_error(S->D, e->span, "%s(…) compares with a teacher, but this experiment has no teacher", e->name);
        return NULL;
      }
      if (is_kl) {
        static const char *const p[] = {"T", NULL};
        double T;
        /* kl's T may use loss parameters (kd(T, alpha)): evaluated in the loss's environment */
        if (e->kind != QKD_AST_CALL || e->items.len != 1) {
          qkd_diag_error(S->D, e->span, "kl needs a temperature: kl(T: 3)");
          return NULL;
        }
        const qkd_ast *a = e->items.items[0];
        if (a->name && strcmp(a->name, "T") != 0) {
          qkd_diag_error(S->D, a->name_span, "kl has no parameter '%s' (parameters: %s)", a->name, join(S, p));
          return NULL;
        }
        if (qkd_eval_num(&S->ev, env, a->a, &T) != 0) return NULL;
        if (!(T > 0)) {
          qkd_diag_error(S->D, a->span, "the temperature T must be > 0, not %g", T);
          return NULL;
        }
        *uses_teacher = 1;
        return loss_node(S, QKD_LOSS_KL, T, NULL, NULL);
      }
      if (e->kind == QKD_AST_CALL && e->items.len) {
        qkd_diag_error(S->D, e->span, "%s takes no arguments", e->name);
        return NULL;
      }
      if (is_mse) *uses_teacher = 1;
      return loss_node(S, is_ce ? QKD_LOSS_CE : QKD_LOSS_MSE, 0, NULL, NULL);
    }
    if (e->kind == QKD_AST_IDENT && !strcmp(e->name, "pi")) return loss_node(S, QKD_LOSS_NUM, M_PI, NULL, NULL);
    qkd_ast *d = find_decl(S, e->name);
    if (!d || d->decl_kind != QKD_DECL_LOSS) {
      qkd_diag_error(S->D, e->name_span, d ? "'%s' is not a loss" : "unknown loss '%s' (built in: ce, kl(T: …), mse)", e->name);
      return NULL;
    }
    if (S->loss_depth > MAX_NET_NESTING) {
      qkd_diag_error(S->D, e->span, "loss '%s' refers to itself", d->name);
      return NULL;
    }
    qkd_env *lenv;
    if (qkd_bind_args(&S->ev, d, e->kind == QKD_AST_CALL ? e : NULL, e->span, env, &lenv) != 0) return NULL;
    S->loss_depth++;
    qkd_loss *l = build_loss(S, lenv, d->a, has_teacher, uses_teacher);
    S->loss_depth--;
    if (!l && S->D->errors) qkd_diag_note(S->D, e->span, "in loss '%s' used here", d->name);
    return l;
  }
  default:
    qkd_diag_error(S->D, e->span, "a loss is an expression of ce, kl(T: …), mse, numbers and named losses");
    return NULL;
  }
}

/* ---- students ------------------------------------------------------------------------------- */

static int build_student(sema *S, const qkd_ast *d, const qkd_m_dataset *data, int classes, qkd_m_student *st,
                         qkd_span site) {
  memset(st, 0, sizeof *st);
  st->name = d->name;
  st->n_classes = classes;
  int errs = S->D->errors;
  const qkd_ast *f;
  long x;
  if ((f = require(S, d, &d->items, "qubits", "student")) && int_in(S, f, 1, QKD_MAX_QUBITS, "between 1 and 20", &x) == 0)
    st->qubits = (int)x;
  if (!st->qubits) return -1;
  int n = st->qubits;
  const qkd_env qubits_env = {"qubits", {.kind = QKD_V_NUM, .num = n}, NULL}; /* `pre: dense(2^qubits)` (spec §9) */
  qkd_shape img = {data->c, data->h, data->w, 0};
  long F = qkd_shape_size(img);
  const qkd_ast *pre = field(&d->items, "pre");
  if (pre) {
    const qkd_ast *v = pre->a;
    static const char *const reds[] = {"dense", "pca", "avgpool_to", "maxpool_to", "crop", NULL};
    if (v->kind == QKD_AST_NETLIT) {
      st->pre = QKD_PRE_NET;
      qkd_span *spans;
      qkd_shape res;
      if (build_layers(S, &qubits_env, &v->items, &st->pre_net.layers, &spans) == 0) {
        st->pre_net.n_layers = v->items.len;
        st->pre_net.name = "pre";
        if (check_shapes(S, st->pre_net.layers, spans, st->pre_net.n_layers, img, 0, &res, site) == 0) F = qkd_shape_size(res);
      }
    } else if ((v->kind == QKD_AST_IDENT || v->kind == QKD_AST_CALL) && !strcmp(v->name, "none")) {
      st->pre = QKD_PRE_NONE;
    } else if ((v->kind == QKD_AST_IDENT || v->kind == QKD_AST_CALL) && name_in(v->name, reds)) {
      int is_crop = !strcmp(v->name, "crop");
      static const char *const pk[] = {"k", NULL}, *const ph[] = {"h", "w", NULL};
      const double def[] = {NAN, NAN};
      double o[2];
      if (bind_builtin(S, &qubits_env, v, is_crop ? ph : pk, def, o) == 0) {
        for (int i = 0; i < 1 + is_crop; i++)
          if (o[i] != floor(o[i]) || o[i] < 1) {
            qkd_diag_error(S->D, v->span, "%s needs positive integer sizes", v->name);
            o[0] = -1;
          }
        if (o[0] >= 1) {
          if (!strcmp(v->name, "dense")) st->pre = QKD_PRE_DENSE;
          else if (!strcmp(v->name, "pca")) st->pre = QKD_PRE_PCA;
          else if (!strcmp(v->name, "avgpool_to")) st->pre = QKD_PRE_AVGPOOL_TO;
          else if (!strcmp(v->name, "maxpool_to")) st->pre = QKD_PRE_MAXPOOL_TO;
          else st->pre = QKD_PRE_CROP;
          int k = (int)o[0];
          st->pre_k = k;
          if (is_crop) {
            st->pre_h = (int)o[0], st->pre_w = (int)o[1];
            if (st->pre_h > data->h || st->pre_w > data->w)
              qkd_diag_error(S->D, v->span, "crop(%d, %d) is larger than the %dx%d images", st->pre_h, st->pre_w, data->h, data->w);
            F = (long)data->c * st->pre_h * st->pre_w;
          } else if (st->pre == QKD_PRE_AVGPOOL_TO || st->pre == QKD_PRE_MAXPOOL_TO) {
            int g = (int)lround(sqrt((double)k));
            if (g * g != k) qkd_diag_error(S->D, v->span, "%s(%d): the number of regions must be a square (a g x g grid)", v->name, k);
            else if (g > data->h || g > data->w) qkd_diag_error(S->D, v->span, "%s(%d): a %dx%d grid is finer than the %dx%d images", v->name, k, g, g, data->h, data->w);
            F = k;
          } else {
            if (st->pre == QKD_PRE_PCA && k > F)
              qkd_diag_error(S->D, v->span, "pca(%d) asks for more components than the %ld input features", k, F);
            F = k;
          }
        }
      }
    } else {
      qkd_diag_error(S->D, v->span, "pre must be dense(k), pca(k), avgpool_to(k), maxpool_to(k), crop(h, w), net { … } or none");
    }
  }
  st->n_features = (int)F;
  if (S->D->errors != errs) return -1; /* no feature-count checks against a broken pre */
  qkd_lower L = {.arena = S->A, .diag = S->D, .n_qubits = n, .max_feature = -1};
  qkd_ir_circuit *c = &st->circuit;
  c->name = d->name;
  c->n_qubits = n;
  const qkd_ast *enc = field(&d->items, "encode");
  qkd_span enc_site = enc ? enc->a->span : d->name_span;
  int lower_ok = 1;
  if (enc && !((enc->a->kind == QKD_AST_IDENT || enc->a->kind == QKD_AST_CALL) && !strcmp(enc->a->name, "none"))) {
    const qkd_ast *v = enc->a;
    if ((v->kind == QKD_AST_IDENT || v->kind == QKD_AST_CALL) && !strcmp(v->name, "amplitude") && !find_decl(S, "amplitude")) {
      if (v->kind == QKD_AST_CALL && v->items.len) qkd_diag_error(S->D, v->span, "amplitude takes no arguments");
      c->encode = QKD_ENCODE_AMPLITUDE;
      if (F > (1L << n)) {
        qkd_diag_error(S->D, v->span, "amplitude encoding on %d qubit%s holds at most %ld features, but %s gives %ld",
                       n, n == 1 ? "" : "s", 1L << n, pre ? "pre" : "the flattened image", F);
      } else if (F < (1L << n)) {
        qkd_diag_warning(S->D, v->span, "amplitude encoding zero-pads %ld features to %ld amplitudes", F, 1L << n);
      }
    } else {
      qkd_ast *ed = resolve(S, v, QKD_DECL_ENCODING);
      if (!ed || qkd_lower_call(&L, ed, v->kind == QKD_AST_CALL ? v : NULL, v->span) != 0) lower_ok = 0;
      c->n_encoding_gates = L.n_gates;
    }
  }
  int enc_max = L.max_feature;
  if ((f = require(S, d, &d->items, "circuit", "student"))) {
    qkd_ast *cd = resolve(S, f->a, QKD_DECL_CIRCUIT);
    if (!cd || qkd_lower_call(&L, cd, f->a->kind == QKD_AST_CALL ? f->a : NULL, f->a->span) != 0) lower_ok = 0;
  }
  if (lower_ok && L.max_feature >= F) {
    qkd_diag_error(S->D, L.max_feature_span, "x[%d] reads past the %ld feature%s that %s gives", L.max_feature, F,
                   F == 1 ? "" : "s", pre ? "pre" : "the flattened image");
    if (L.max_feature_span.file != site.file) qkd_diag_note(S->D, enc_site, "for student '%s'", d->name);
  } else if (lower_ok && c->encode != QKD_ENCODE_AMPLITUDE && enc_max >= 0 && L.max_feature + 1 < F) {
    qkd_diag_warning(S->D, enc_site, "the encoding reads %d of the %ld features that %s gives", L.max_feature + 1, F,
                     pre ? "pre" : "the flattened image");
  }
  c->gates = L.gates;
  c->n_gates = L.n_gates;
  c->n_params = L.n_params;
  c->n_features = c->encode == QKD_ENCODE_AMPLITUDE ? (int)(F < (1L << n) ? F : (1L << n)) : (int)F;
  if ((f = require(S, d, &d->items, "measure", "student"))) {
    static const char *const ms[] = {"z", "probs", NULL};
    int k = choice(S, f->a, ms, "measure");
    if (k >= 0) c->measure = (qkd_measure_kind)k;
  }
  if ((f = field(&d->items, "shots")) && int_in(S, f, 1, 100000000, ">= 1", &x) == 0) c->shots = (int)x;
  if ((f = field(&d->items, "precision"))) {
    static const char *const ps[] = {"f64", "f32", NULL};
    int k = choice(S, f->a, ps, "precision");
    if (k >= 0) c->precision = (qkd_precision)k;
  }
  int outputs = qkd_ir_outputs(c);
  if ((f = require(S, d, &d->items, "head", "student"))) {
    const qkd_ast *v = f->a;
    if ((v->kind == QKD_AST_IDENT || v->kind == QKD_AST_CALL) && !strcmp(v->name, "none")) {
      if (classes > 0 && outputs < classes)
        qkd_diag_error(S->D, v->span, "head none uses the first %d outputs as logits, but measure %s gives %d",
                       classes, c->measure == QKD_MEASURE_Z ? "z" : "probs", outputs);
    } else if ((v->kind == QKD_AST_IDENT || v->kind == QKD_AST_CALL) && !strcmp(v->name, "dense")) {
      static const char *const p[] = {"k", NULL};
      const double def[] = {NAN};
      double k;
      if (bind_builtin(S, &qubits_env, v, p, def, &k) == 0) {
        if (k != floor(k) || k < 1) qkd_diag_error(S->D, v->span, "dense needs a positive integer size");
        else if (classes > 0 && (int)k != classes)
          qkd_diag_error(S->D, v->span, "head dense(%g) must give one logit per class: the data set has %d classes", k, classes);
        st->head_dense = (int)k;
      }
    } else {
      qkd_diag_error(S->D, v->span, "head must be dense(k) or none");
    }
  }
  if (S->D->errors != errs) return -1;
  char msg[256];
  if (qkd_ir_validate(c, msg, sizeof msg) != 0) {
    qkd_diag_error(S->D, d->name_span, "internal error: lowered circuit is invalid: %s", msg);
    return -1;
  }
  return 0;
}

static void check_student_fields(sema *S, const qkd_ast *d) {
  static const char *const allowed[] = {"qubits", "pre", "encode", "circuit", "measure", "shots", "head", "precision", NULL};
  static const char *const none[] = {NULL};
  check_fields(S, &d->items, "student", allowed, none);
}

/* ---- experiments -------------------------------------------------------------------------------- */

static qkd_m_experiment *check_experiment(sema *S, const qkd_ast *d) {
  static const char *const allowed[] = {"data", "teacher", "student", "loss", "baseline", "gradient", "control", NULL};
  static const char *const blocks[] = {"train", NULL};
  check_fields(S, &d->items, "experiment", allowed, blocks);
  int errs = S->D->errors;
  qkd_m_experiment *e = qkd_arena_alloc(S->A, sizeof *e);
  e->name = d->name;
  const qkd_ast *f;
  if ((f = require(S, d, &d->items, "data", "experiment"))) e->data = dataset_ref(S, f->a);
  if ((f = field(&d->items, "teacher"))) {
    qkd_ast *td = resolve(S, f->a, QKD_DECL_TEACHER);
    for (int i = 0; td && i < S->te_ast.len; i++)
      if (S->te_ast.items[i] == td) e->teacher = S->te_model.items[i];
    if (td && !e->teacher) errs = -1; /* the teacher itself had errors */
    if (e->teacher && e->data) {
      const qkd_m_dataset *td_data = e->teacher->data;
      if (td_data->n_classes != e->data->n_classes)
        qkd_diag_error(S->D, f->a->span, "teacher '%s' knows %d classes, but data set '%s' has %d", e->teacher->name,
                       td_data->n_classes, e->data->name, e->data->n_classes);
      else if (td_data->c != e->data->c || td_data->h != e->data->h || td_data->w != e->data->w)
        qkd_diag_error(S->D, f->a->span, "teacher '%s' was trained on %dx%dx%d images, but data set '%s' has %dx%dx%d",
                       e->teacher->name, td_data->c, td_data->h, td_data->w, e->data->name, e->data->c, e->data->h, e->data->w);
    }
  }
  if ((f = require(S, d, &d->items, "student", "experiment"))) {
    qkd_ast *sd = resolve(S, f->a, QKD_DECL_STUDENT);
    if (sd && e->data) build_student(S, sd, e->data, e->data->n_classes, &e->student, f->a->span);
  }
  if ((f = require(S, d, &d->items, "loss", "experiment")))
    e->loss = build_loss(S, NULL, f->a, e->teacher != NULL || field(&d->items, "teacher") != NULL, &e->uses_teacher);
  check_train(S, d, &e->train, NULL);
  if ((f = field(&d->items, "baseline"))) {
    static const char *const tf[] = {"false", "true", NULL};
    int k = choice(S, f->a, tf, "baseline");
    e->baseline = k == 1;
  }
  if ((f = field(&d->items, "gradient"))) {
    static const char *const gs[] = {"adjoint", "parameter_shift", NULL};
    int k = choice(S, f->a, gs, "gradient");
    if (k >= 0) e->gradient = (qkd_grad_kind)k;
  }
  if ((f = field(&d->items, "control"))) {
    static const char *const cs[] = {"none", "classical", "matched", NULL};
    int k = choice(S, f->a, cs, "control");
    if (k >= 0) e->control = (qkd_control_kind)k;
  }
  /* a data set or teacher that failed its own checks leaves parts unset without a new error */
  return S->D->errors == errs && e->data && e->student.name && e->loss ? e : NULL;
}

/* ---- the program ------------------------------------------------------------------------------ */

/* Gate names in circuit/encoding bodies are checked once per declaration, instantiated or not. */
static void check_gate_names(sema *S, const qkd_vec *stmts) {
  for (int i = 0; i < stmts->len; i++) {
    const qkd_ast *s = stmts->items[i];
    if (s->kind == QKD_AST_FOR) check_gate_names(S, &s->items);
    else if (strcmp(s->name, "rot") != 0 && qkd_gate_lookup(s->name) < 0)
      qkd_diag_error(S->D, s->name_span, "unknown gate '%s'", s->name);
  }
}

static void check_params(sema *S, const qkd_ast *d) {
  if ((d->decl_kind == QKD_DECL_CIRCUIT || d->decl_kind == QKD_DECL_ENCODING) && d->depth <= QKD_AST_MAX_DEPTH)
    check_gate_names(S, &d->items);
  static const char *const reserved[] = {"n", "qubits", "x", "pi", NULL};
  for (int i = 0; i < d->params.len; i++) {
    const qkd_ast *p = d->params.items[i];
    if ((d->decl_kind == QKD_DECL_CIRCUIT || d->decl_kind == QKD_DECL_ENCODING) && name_in(p->name, reserved))
      qkd_diag_error(S->D, p->span, "parameter '%s' would hide the built-in name '%s'", p->name, p->name);
    for (int j = 0; j < i; j++)
      if (!strcmp(((qkd_ast *)d->params.items[j])->name, p->name))
        qkd_diag_error(S->D, p->span, "parameter '%s' is declared twice", p->name);
  }
}

/* Whether some experiment names this student (checked there, errors included). */
static int student_used(const qkd_program_ast *prog, const char *name) {
  for (int i = 0; i < prog->decls.len; i++) {
    const qkd_ast *x = prog->decls.items[i];
    const qkd_ast *f = x->decl_kind == QKD_DECL_EXPERIMENT ? field(&x->items, "student") : NULL;
    if (f && (f->a->kind == QKD_AST_IDENT || f->a->kind == QKD_AST_CALL) && !strcmp(f->a->name, name)) return 1;
  }
  return 0;
}

qkd_model *qkd_sema_check(qkd_arena *a, qkd_diag *d, const qkd_program_ast *prog, const char *root_path) {
  sema S = {.A = a, .D = d, .prog = prog};
  S.ev = (qkd_eval){.arena = a, .diag = d, .max_feature = -1};
  qkd_model *m = qkd_arena_alloc(a, sizeof *m);
  m->path = root_path;
  S.model = m;
  static const char *const builtin[] = {"amplitude", "ce", "kl", "mse", "mean", "pi", "adam", "sgd", "none", NULL};
  for (int i = 0; i < prog->decls.len; i++) {
    qkd_ast *x = prog->decls.items[i];
    if (name_in(x->name, builtin))
      qkd_diag_error(d, x->name_span, "'%s' is a built-in name and cannot be redefined", x->name);
    for (int j = 0; j < i; j++) {
      qkd_ast *y = prog->decls.items[j];
      if (!strcmp(x->name, y->name)) {
        qkd_diag_error(d, x->name_span, "'%s' is already defined", x->name);
        qkd_diag_note(d, y->name_span, "previous definition of '%s' is here", y->name);
        break;
      }
    }
    check_params(&S, x);
  }
  qkd_vec exps = {0}, students = {0}, teachers = {0}, datasets = {0};
  for (int i = 0; i < prog->decls.len; i++) {
    qkd_ast *x = prog->decls.items[i];
    if (x->decl_kind == QKD_DECL_DATASET) {
      qkd_m_dataset *ds = check_dataset(&S, x);
      if (ds) {
        qkd_vec_push(a, &S.ds_ast, x);
        qkd_vec_push(a, &S.ds_model, ds);
        qkd_vec_push(a, &datasets, ds);
      }
    }
  }
  for (int i = 0; i < prog->decls.len; i++) {
    qkd_ast *x = prog->decls.items[i];
    if (x->decl_kind == QKD_DECL_TEACHER) {
      qkd_m_teacher *t = check_teacher(&S, x);
      if (t) {
        qkd_vec_push(a, &S.te_ast, x);
        qkd_vec_push(a, &S.te_model, t);
        qkd_vec_push(a, &teachers, t);
      }
    } else if (x->decl_kind == QKD_DECL_STUDENT) {
      check_student_fields(&S, x);
    }
  }
  for (int i = 0; i < prog->decls.len; i++) {
    qkd_ast *x = prog->decls.items[i];
    if (x->decl_kind == QKD_DECL_EXPERIMENT) {
      qkd_m_experiment *e = check_experiment(&S, x);
      if (e) qkd_vec_push(a, &exps, e);
    }
  }
  /* Every student once more, for draw/emit-llvm: with its first experiment's data, or a default. */
  for (int i = 0; i < prog->decls.len; i++) {
    qkd_ast *x = prog->decls.items[i];
    if (x->decl_kind != QKD_DECL_STUDENT) continue;
    qkd_m_student *st = NULL;
    for (int k = 0; k < exps.len && !st; k++) {
      qkd_m_experiment *e = exps.items[k];
      if (!strcmp(e->student.name, x->name)) st = &e->student;
    }
    if (!st && student_used(prog, x->name)) continue; /* its experiment already reported */
    if (!st) {
      static const qkd_m_dataset fallback = {.name = "default", .c = 1, .h = 28, .w = 28, .n_classes = 0};
      const qkd_m_dataset *data = datasets.len ? datasets.items[0] : &fallback;
      st = qkd_arena_alloc(a, sizeof *st);
      if (build_student(&S, x, data, 0, st, x->name_span) != 0) continue;
    }
    qkd_vec_push(a, &students, st);
  }
  if (d->errors) return NULL;
  m->n_datasets = datasets.len, m->datasets = (qkd_m_dataset **)datasets.items;
  m->n_teachers = teachers.len, m->teachers = (qkd_m_teacher **)teachers.items;
  m->n_experiments = exps.len, m->experiments = (qkd_m_experiment **)exps.items;
  m->n_students = students.len, m->students = (qkd_m_student **)students.items;
  return m;
}

/* Parses a lone call given on the command line (its own source, named after the option). */
static const qkd_ast *parse_call(qkd_arena *a, qkd_diag *d, const char *option, const char *text) {
  char *src = qkd_arena_printf(a, "dataset __cli__ { v: %s\n}", text);
  qkd_vec parsed = {0};
  if (qkd_parse_text(a, d, option, src, (uint32_t)strlen(src), &parsed) != 0) return NULL;
  const qkd_ast *w = parsed.len == 1 ? parsed.items[0] : NULL;
  if (!w || w->items.len != 1) {
    qkd_diag_error(d, (qkd_span){-1, 0, 0}, "%s: expected one call, as in 'strong(layers: 2)'", option);
    return NULL;
  }
  return ((const qkd_ast *)w->items.items[0])->a;
}

int qkd_sema_sim_circuit(qkd_arena *a, qkd_diag *d, const qkd_program_ast *prog, const char *circuit_call,
                         const char *encode, int n, int amp_features, qkd_ir_circuit *out) {
  sema S = {.A = a, .D = d, .prog = prog};
  S.ev = (qkd_eval){.arena = a, .diag = d, .max_feature = -1};
  for (int i = 0; i < prog->decls.len; i++) check_params(&S, prog->decls.items[i]);
  if (d->errors) return -1;
  memset(out, 0, sizeof *out);
  out->n_qubits = n;
  out->measure = QKD_MEASURE_PROBS;
  qkd_lower L = {.arena = a, .diag = d, .n_qubits = n, .max_feature = -1};
  if (encode && !strcmp(encode, "amplitude")) {
    out->encode = QKD_ENCODE_AMPLITUDE;
  } else if (encode) {
    const qkd_ast *e = parse_call(a, d, "--encode", encode);
    qkd_ast *ed = e ? resolve(&S, e, QKD_DECL_ENCODING) : NULL;
    if (!ed || qkd_lower_call(&L, ed, e->kind == QKD_AST_CALL ? e : NULL, e->span) != 0) return -1;
    out->n_encoding_gates = L.n_gates;
  }
  const qkd_ast *c = parse_call(a, d, "--circuit", circuit_call);
  qkd_ast *cd = c ? resolve(&S, c, QKD_DECL_CIRCUIT) : NULL;
  if (!cd || qkd_lower_call(&L, cd, c->kind == QKD_AST_CALL ? c : NULL, c->span) != 0) return -1;
  out->name = cd->name;
  out->gates = L.gates;
  out->n_gates = L.n_gates;
  out->n_params = L.n_params;
  int reads = L.max_feature + 1;
  out->n_features = out->encode == QKD_ENCODE_AMPLITUDE ? (amp_features > reads ? amp_features : reads) : reads;
  char msg[256];
  if (qkd_ir_validate(out, msg, sizeof msg) != 0) {
    qkd_diag_error(d, (qkd_span){-1, 0, 0}, "internal error: lowered circuit is invalid: %s", msg);
    return -1;
  }
  return 0;
}
