/* override.c — see override.h. */
#include "override.h"

#include <string.h>

static qkd_ast *find_item(qkd_vec *items, const char *name) {
  for (int i = 0; i < items->len; i++) {
    qkd_ast *f = items->items[i];
    if ((f->kind == QKD_AST_FIELD || f->kind == QKD_AST_BLOCK) && !strcmp(f->name, name)) return f;
  }
  return NULL;
}

int qkd_override_apply(qkd_arena *a, qkd_diag *d, qkd_program_ast *prog, const char *assignment) {
  const qkd_span none = {-1, 0, 0};
  const char *eq = strchr(assignment, '=');
  if (!eq || eq == assignment || !eq[1]) {
    qkd_diag_error(d, none, "--set %s: expected PATH=VALUE, as in --set exp.train.epochs=1", assignment);
    return -1;
  }
  char *path = qkd_arena_strndup(a, assignment, (size_t)(eq - assignment));
  char *segs[4];
  int n = 0;
  for (char *s = path, *dot; n < 4; s = dot + 1) {
    segs[n++] = s;
    if (!(dot = strchr(s, '.'))) break;
    *dot = 0;
  }
  if (n < 2 || n > 3 || strchr(segs[n - 1], '.')) {
    qkd_diag_error(d, none, "--set %s: PATH is a declaration then one or two field names (exp.train.epochs)", assignment);
    return -1;
  }
  qkd_ast *decl = NULL;
  for (int i = 0; i < prog->decls.len; i++) {
    qkd_ast *x = prog->decls.items[i];
    if (!strcmp(x->name, segs[0])) decl = x;
  }
  if (!decl) {
    qkd_diag_error(d, none, "--set %s: the program declares nothing named '%s'", assignment, segs[0]);
    return -1;
  }
  if (decl->a) {
    qkd_diag_error(d, none, "--set %s: '%s' is defined by an expression and has no fields", assignment, segs[0]);
    return -1;
  }
  qkd_vec *items = &decl->items;
  if (n == 3) {
    qkd_ast *block = find_item(items, segs[1]);
    if (!block || block->kind != QKD_AST_BLOCK) {
      qkd_diag_error(d, none, "--set %s: '%s' has no block '%s'", assignment, segs[0], segs[1]);
      return -1;
    }
    items = &block->items;
  }
  const char *field = segs[n - 1];
  char *text = qkd_arena_printf(a, "dataset __set__ { %s: %s\n}", field, eq + 1);
  char *name = qkd_arena_printf(a, "--set %.*s", (int)(eq - assignment), assignment);
  qkd_vec parsed = {0};
  if (qkd_parse_text(a, d, name, text, (uint32_t)strlen(text), &parsed) != 0) return -1;
  qkd_ast *wrapper = parsed.len == 1 ? parsed.items[0] : NULL;
  if (!wrapper || wrapper->items.len != 1) {
    qkd_diag_error(d, none, "--set %s: VALUE must be one expression", assignment);
    return -1;
  }
  qkd_ast *value = wrapper->items.items[0];
  for (int i = 0; i < items->len; i++) {
    qkd_ast *f = items->items[i];
    if (!strcmp(f->name, field)) {
      items->items[i] = value;
      return 0;
    }
  }
  qkd_vec_push(a, items, value);
  return 0;
}
