/* arena.c — see arena.h. */
#include "arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qkd_arena_block {
  qkd_arena_block *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

void *qkd_arena_alloc(qkd_arena *a, size_t size) {
  size = (size + 15) & ~(size_t)15;
  qkd_arena_block *b = a->head;
  if (!b || b->used + size > b->cap) {
    size_t cap = size > 65536 ? size : 65536;
    b = malloc(sizeof *b + cap);
    if (!b) {
      fprintf(stderr, "qkdc: internal error: out of memory (%zu bytes)\n", size);
      exit(2);
    }
    b->used = 0;
    b->cap = cap;
    b->next = a->head;
    a->head = b;
  }
  void *p = b->data + b->used;
  b->used += size;
  memset(p, 0, size);
  return p;
}

char *qkd_arena_strndup(qkd_arena *a, const char *s, size_t n) {
  char *p = qkd_arena_alloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

char *qkd_arena_strdup(qkd_arena *a, const char *s) { return qkd_arena_strndup(a, s, strlen(s)); }

char *qkd_arena_printf(qkd_arena *a, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = qkd_arena_alloc(a, (size_t)n + 1);
  vsnprintf(p, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  return p;
}

void qkd_arena_free(qkd_arena *a) {
  qkd_arena_block *b = a->head;
  while (b) {
    qkd_arena_block *next = b->next;
    free(b);
    b = next;
  }
  a->head = NULL;
}

void qkd_vec_push(qkd_arena *a, qkd_vec *v, void *item) {
  if (v->len == v->cap) {
    int cap = v->cap ? v->cap * 2 : 8;
    void **items = qkd_arena_alloc(a, sizeof(void *) * (size_t)cap);
    if (v->len) memcpy(items, v->items, sizeof(void *) * (size_t)v->len);
    v->items = items;
    v->cap = cap;
  }
  v->items[v->len++] = item;
}
