/* ast.c — node construction (see ast.h). */
#include "ast.h"

const char *const qkd_decl_kind_names[QKD_DECL_COUNT] = {
    "dataset", "net", "encoding", "circuit", "loss", "teacher", "student", "experiment", "grid"};

qkd_ast *qkd_ast_new(qkd_arena *ar, qkd_ast_kind kind, qkd_span span) {
  qkd_ast *n = qkd_arena_alloc(ar, sizeof *n);
  n->kind = kind;
  n->span = span;
  n->name_span = span;
  n->depth = 1;
  return n;
}

static void grow(qkd_ast *n, const qkd_ast *c) {
  if (c && c->depth + 1 > n->depth) n->depth = c->depth + 1;
}

void qkd_ast_push(qkd_arena *ar, qkd_ast *parent, qkd_ast *child) {
  qkd_vec_push(ar, &parent->items, child);
  grow(parent, child);
}

qkd_ast *qkd_ast_set(qkd_ast *n, qkd_ast *a, qkd_ast *b) {
  n->a = a;
  n->b = b;
  grow(n, a);
  grow(n, b);
  return n;
}
