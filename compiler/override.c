/* override.c — see override.h. */
#include "override.h"

#include <string.h>

static int find_item(const qkd_vec *items, const char *name) {
  for (int i = 0; i < items->len; i++) {
    const qkd_ast *f = items->items[i];
    if ((f->kind == QKD_AST_FIELD || f->kind == QKD_AST_BLOCK) && !strcmp(f->name, name)) return i;
  }
  return -1;
}

/* Splits "a.b.c" into at most 3 segments (in place); returns the count, or -1 when malformed. */
static int split_path(char *path, char *segs[3]) {
  int n = 0;
  for (char *s = path;; ) {
    if (n == 3 || !*s) return -1;
    segs[n++] = s;
    char *dot = strchr(s, '.');
    if (!dot) break;
    *dot = 0;
    s = dot + 1;
  }
  return n >= 2 ? n : -1;
}

static int decl_index(const qkd_program_ast *prog, const char *name) {
  for (int i = 0; i < prog->decls.len; i++)
    if (!strcmp(((qkd_ast *)prog->decls.items[i])->name, name)) return i;
  return -1;
}

qkd_ast *qkd_override_target(qkd_diag *d, const qkd_program_ast *prog, const char *path, qkd_span at,
                             const char *what) {
  char buf[512], *segs[3];
  snprintf(buf, sizeof buf, "%s", path);
  if (strlen(path) >= sizeof buf || split_path(buf, segs) < 0) {
    qkd_diag_error(d, at, "%s: a path is a declaration then one or two field names (exp.train.epochs)", what);
    return NULL;
  }
  int i = decl_index(prog, segs[0]);
  if (i < 0) {
    qkd_diag_error(d, at, "%s: the program declares nothing named '%s'", what, segs[0]);
    return NULL;
  }
  qkd_ast *decl = prog->decls.items[i];
  if (decl->a || decl->kind != QKD_AST_DECL || decl->decl_kind == QKD_DECL_NET || decl->decl_kind == QKD_DECL_CIRCUIT ||
      decl->decl_kind == QKD_DECL_ENCODING || decl->decl_kind == QKD_DECL_LOSS) {
    qkd_diag_error(d, at, "%s: '%s' is a %s and has no fields", what, segs[0], qkd_decl_kind_names[decl->decl_kind]);
    return NULL;
  }
  return decl;
}

static qkd_ast *clone(qkd_arena *a, const qkd_ast *n) {
  qkd_ast *c = qkd_arena_alloc(a, sizeof *c);
  *c = *n;
  c->items.items = qkd_arena_alloc(a, sizeof(void *) * (size_t)(n->items.len + 1));
  c->items.cap = n->items.len + 1;
  memcpy(c->items.items, n->items.items, sizeof(void *) * (size_t)n->items.len);
  return c;
}

int qkd_override_set(qkd_arena *a, qkd_diag *d, qkd_program_ast *prog, const char *path, qkd_ast *value,
                     qkd_span at, const char *what) {
  if (!qkd_override_target(d, prog, path, at, what)) return -1;
  char *buf = qkd_arena_strdup(a, path), *segs[3];
  int n = split_path(buf, segs), di = decl_index(prog, segs[0]);
  /* the program's own declaration vector is private to it; copy it before the first change */
  void **decls = qkd_arena_alloc(a, sizeof(void *) * (size_t)(prog->decls.len + 1));
  memcpy(decls, prog->decls.items, sizeof(void *) * (size_t)prog->decls.len);
  prog->decls.items = decls;
  prog->decls.cap = prog->decls.len + 1;
  qkd_ast *decl = clone(a, prog->decls.items[di]);
  prog->decls.items[di] = decl;
  qkd_ast *holder = decl;
  if (n == 3) {
    int bi = find_item(&decl->items, segs[1]);
    if (bi < 0 || ((qkd_ast *)decl->items.items[bi])->kind != QKD_AST_BLOCK) {
      qkd_diag_error(d, at, "%s: '%s' has no block '%s'", what, segs[0], segs[1]);
      return -1;
    }
    holder = clone(a, decl->items.items[bi]);
    decl->items.items[bi] = holder;
  }
  qkd_ast *f = qkd_ast_new(a, QKD_AST_FIELD, value->span);
  f->name = segs[n - 1];
  f->name_span = value->span;
  qkd_ast_set(f, value, NULL);
  int fi = find_item(&holder->items, segs[n - 1]);
  if (fi >= 0) holder->items.items[fi] = f;
  else qkd_vec_push(a, &holder->items, f);
  return 0;
}

int qkd_override_apply(qkd_arena *a, qkd_diag *d, qkd_program_ast *prog, const char *assignment) {
  const qkd_span none = {-1, 0, 0};
  const char *eq = strchr(assignment, '=');
  if (!eq || eq == assignment || !eq[1]) {
    qkd_diag_error(d, none, "--set %s: expected PATH=VALUE, as in --set exp.train.epochs=1", assignment);
    return -1;
  }
  char *path = qkd_arena_strndup(a, assignment, (size_t)(eq - assignment));
  char *what = qkd_arena_printf(a, "--set %s", assignment);
  if (!qkd_override_target(d, prog, path, none, what)) return -1;
  char *text = qkd_arena_printf(a, "dataset __set__ { v: %s\n}", eq + 1);
  char *name = qkd_arena_printf(a, "--set %s", path);
  qkd_vec parsed = {0};
  if (qkd_parse_text(a, d, name, text, (uint32_t)strlen(text), &parsed) != 0) return -1;
  qkd_ast *wrapper = parsed.len == 1 ? parsed.items[0] : NULL;
  if (!wrapper || wrapper->items.len != 1 || ((qkd_ast *)wrapper->items.items[0])->kind != QKD_AST_FIELD) {
    qkd_diag_error(d, none, "--set %s: VALUE must be one expression", assignment);
    return -1;
  }
  qkd_ast *value = ((qkd_ast *)wrapper->items.items[0])->a;
  return qkd_override_set(a, d, prog, path, value, none, what);
}
