/* ast.h — the syntax tree the parser builds and sema reads.
 * One fat node type (chibicc style): which fields are meaningful depends on `kind`, as listed at
 * each enum constant. Every node keeps the byte span of its source text (diag.h), so any later
 * phase can point at it. Nodes live in the compile's arena; nothing is freed individually.
 * `depth` is the height of the subtree, kept at construction so later recursive phases can
 * refuse pathological nesting before they recurse (QKD_AST_MAX_DEPTH). */
#ifndef QKD_AST_H
#define QKD_AST_H
#include "arena.h"
#include "diag.h"

#define QKD_AST_MAX_DEPTH 200

typedef enum {
  QKD_AST_NUM,    /* num, is_int */
  QKD_AST_STR,    /* name = the string's contents */
  QKD_AST_IDENT,  /* name */
  QKD_AST_NEG,    /* -a */
  QKD_AST_BIN,    /* a op b, op in + - * / % ^ */
  QKD_AST_RANGE,  /* a..b */
  QKD_AST_LIST,   /* [items] */
  QKD_AST_CALL,   /* name(items), items are ARG; has_parens = 0 for a bare layer name */
  QKD_AST_ARG,    /* name (NULL when positional): a */
  QKD_AST_INDEX,  /* name[a]  (x[i]) */
  QKD_AST_NETLIT, /* net { items = layer CALLs } */
  QKD_AST_FOR,    /* for name in a { items = statements } */
  QKD_AST_FIELD,  /* name: a (name may be a dotted path, `qnn.qubits:`, inside grid axes) */
  QKD_AST_BLOCK,  /* name { items = FIELD/BLOCK }, or name LABEL { … } with b = the LABEL IDENT */
  QKD_AST_USE,    /* use "name" */
  QKD_AST_DECL    /* decl_kind name(params) { items } or = a */
} qkd_ast_kind;

typedef enum {
  QKD_DECL_DATASET,
  QKD_DECL_NET,
  QKD_DECL_ENCODING,
  QKD_DECL_CIRCUIT,
  QKD_DECL_LOSS,
  QKD_DECL_TEACHER,
  QKD_DECL_STUDENT,
  QKD_DECL_EXPERIMENT,
  QKD_DECL_GRID,
  QKD_DECL_COUNT
} qkd_decl_kind;

extern const char *const qkd_decl_kind_names[QKD_DECL_COUNT];

typedef struct qkd_ast qkd_ast;
struct qkd_ast {
  qkd_ast_kind kind;
  qkd_span span;      /* the whole construct */
  qkd_span name_span; /* the name, where there is one */
  const char *name;
  double num;
  int is_int;
  int op;
  int has_parens;
  qkd_decl_kind decl_kind;
  qkd_ast *a, *b;
  qkd_vec items;      /* qkd_ast* */
  qkd_vec params;     /* DECL: IDENT nodes */
  int depth;
};

qkd_ast *qkd_ast_new(qkd_arena *ar, qkd_ast_kind kind, qkd_span span);
/* Appends a child to items, keeping depth. */
void qkd_ast_push(qkd_arena *ar, qkd_ast *parent, qkd_ast *child);
/* Sets a/b and depth. */
qkd_ast *qkd_ast_set(qkd_ast *n, qkd_ast *a, qkd_ast *b);
#endif
