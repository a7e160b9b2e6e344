/* sema_fields.c — fields of the block declarations and their values (sema_int.h). */
#include <string.h>

#include "sema_int.h"

/* Checks a field list against `allowed` (and `blocks`, the names that are `name { … }` blocks):
 * unknown and duplicate fields are errors. */
void sema_check_fields(sema *S, const qkd_vec *items, const char *what, const char *const *allowed,
                       const char *const *blocks) {
  for (int i = 0; i < items->len; i++) {
    const qkd_ast *f = items->items[i];
    int is_block = f->kind == QKD_AST_BLOCK;
    if (is_block ? !sema_name_in(f->name, blocks) : !sema_name_in(f->name, allowed)) {
      if (!is_block && sema_name_in(f->name, blocks))
        qkd_diag_error(S->D, f->name_span, "'%s' is a block: write %s { … }", f->name, f->name);
      else if (is_block && sema_name_in(f->name, allowed))
        qkd_diag_error(S->D, f->name_span, "'%s' is a field: write %s: value", f->name, f->name);
      else
        qkd_diag_error(S->D, f->name_span, "unknown %s '%s' in %s (expected one of: %s)", is_block ? "block" : "field",
                       f->name, what, sema_join(S, is_block ? blocks : allowed));
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
const qkd_ast *sema_item(const qkd_vec *items, const char *name, qkd_ast_kind kind) {
  for (int i = 0; i < items->len; i++) {
    const qkd_ast *f = items->items[i];
    if (f->kind == kind && strcmp(f->name, name) == 0) return f;
  }
  return NULL;
}

const qkd_ast *sema_field(const qkd_vec *items, const char *name) { return sema_item(items, name, QKD_AST_FIELD); }

const qkd_ast *sema_require(sema *S, const qkd_ast *decl, const qkd_vec *items, const char *name, const char *what) {
  const qkd_ast *f = sema_field(items, name);
  if (!f) qkd_diag_error(S->D, decl->name_span, "%s '%s' needs a '%s' field", what, decl->name ? decl->name : "", name);
  return f;
}

/* Integer field value in [lo, hi]; returns -1 after reporting. */
int sema_int_in(sema *S, const qkd_ast *f, long lo, long hi, const char *rule, long *out) {
  if (qkd_eval_int(&S->ev, NULL, f->a, out) != 0) return -1;
  if (*out < lo || *out > hi) {
    qkd_diag_error(S->D, f->a->span, "%s must be %s, not %ld", f->name, rule, *out);
    return -1;
  }
  return 0;
}

