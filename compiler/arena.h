/* arena.h — bump allocation for everything a compile creates (sources, AST, model, IR, strings).
 * One arena per compile; qkd_arena_free releases it all at once. Allocation never fails
 * silently: out of memory aborts with a message (exit 2, an internal error). Memory is zeroed. */
#ifndef QKD_ARENA_H
#define QKD_ARENA_H
#include <stddef.h>

typedef struct qkd_arena_block qkd_arena_block;
typedef struct {
  qkd_arena_block *head;
} qkd_arena;

void *qkd_arena_alloc(qkd_arena *a, size_t size);
char *qkd_arena_strndup(qkd_arena *a, const char *s, size_t n);
char *qkd_arena_strdup(qkd_arena *a, const char *s);
char *qkd_arena_printf(qkd_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void qkd_arena_free(qkd_arena *a);

/* A growable array of pointers living in an arena (old storage is simply abandoned). */
typedef struct {
  void **items;
  int len, cap;
} qkd_vec;
void qkd_vec_push(qkd_arena *a, qkd_vec *v, void *item);
#endif
