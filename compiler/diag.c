/* diag.c — see diag.h. */
#include "diag.h"

#include <stdarg.h>
#include <string.h>

#include "qkd_hash.h"

void qkd_diag_init(qkd_diag *d, qkd_arena *a) {
  memset(d, 0, sizeof *d);
  d->arena = a;
  d->out = stderr;
}

int qkd_diag_add_source(qkd_diag *d, const char *path, const char *text, uint32_t len) {
  if (d->n_files == (int)(sizeof d->files / sizeof d->files[0])) return -1;
  qkd_source *s = qkd_arena_alloc(d->arena, sizeof *s);
  s->path = qkd_arena_strdup(d->arena, path);
  s->text = qkd_arena_strndup(d->arena, text, len);
  s->len = len;
  int n = 1;
  for (uint32_t i = 0; i < len; i++) n += text[i] == '\n';
  s->lines = qkd_arena_alloc(d->arena, sizeof(uint32_t) * (size_t)(n + 1));
  s->lines[0] = 0;
  int k = 1;
  for (uint32_t i = 0; i < len; i++)
    if (text[i] == '\n') s->lines[k++] = i + 1;
  s->n_lines = n;
  d->files[d->n_files] = s;
  return d->n_files++;
}

void qkd_diag_linecol(const qkd_diag *d, int file, uint32_t off, int *line, int *col) {
  const qkd_source *s = d->files[file];
  if (off > s->len) off = s->len;
  int lo = 0, hi = s->n_lines - 1;
  while (lo < hi) { /* last line start <= off */
    int mid = (lo + hi + 1) / 2;
    if (s->lines[mid] <= off) lo = mid; else hi = mid - 1;
  }
  *line = lo + 1;
  *col = (int)(off - s->lines[lo]) + 1;
}

qkd_span qkd_span_join(qkd_span a, qkd_span b) {
  if (a.file != b.file) return a;
  qkd_span r = a;
  if (b.start < r.start) r.start = b.start;
  if (b.end > r.end) r.end = b.end;
  return r;
}

static void render_text(qkd_diag *d, const char *kind, qkd_span sp, const char *text) {
  FILE *out = d->out;
  if (sp.file < 0 || sp.file >= d->n_files) {
    fprintf(out, "qkdc: %s: %s\n", kind, text);
    return;
  }
  const qkd_source *s = d->files[sp.file];
  int line, col;
  qkd_diag_linecol(d, sp.file, sp.start, &line, &col);
  fprintf(out, "%s:%d:%d: %s: %s\n", s->path, line, col, kind, text);
  uint32_t ls = s->lines[line - 1], le = ls;
  while (le < s->len && s->text[le] != '\n') le++;
  uint32_t shown = le - ls > 400 ? 400 : le - ls; /* a 1 MB line is not echoed whole */
  fprintf(out, "%.*s%s\n", (int)shown, s->text + ls, shown < le - ls ? "…" : "");
  uint32_t end = sp.end > le ? le : sp.end;
  if (end > ls + shown) end = ls + shown;
  for (uint32_t i = ls; i < sp.start && i < ls + shown; i++) fputc(s->text[i] == '\t' ? '\t' : ' ', out);
  fputc('^', out);
  for (uint32_t i = sp.start + 1; i < end; i++) fputc('~', out);
  fputc('\n', out);
}

static void render(qkd_diag *d, const char *kind, qkd_span sp, const char *fmt, va_list ap) {
  char text[1024];
  vsnprintf(text, sizeof text, fmt, ap);
  render_text(d, kind, sp, text);
}

#define DIAG_FN(name, kind, counter, limit)                                   \
  void name(qkd_diag *d, qkd_span sp, const char *fmt, ...) {                 \
    d->counter++;                                                             \
    if (limit && d->counter > QKD_DIAG_MAX_ERRORS) {                          \
      if (d->counter == QKD_DIAG_MAX_ERRORS + 1)                              \
        fprintf(d->out, "qkdc: note: too many errors; the rest are not shown\n"); \
      return;                                                                 \
    }                                                                         \
    va_list ap;                                                               \
    va_start(ap, fmt);                                                        \
    render(d, kind, sp, fmt, ap);                                             \
    va_end(ap);                                                               \
  }
DIAG_FN(qkd_diag_error, "error", errors, 1)

/* A warning is shown once per (span, text): checking every cell of a grid meets the same ones. */
void qkd_diag_warning(qkd_diag *d, qkd_span sp, const char *fmt, ...) {
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  uint64_t h = qkd_hash_bytes(QKD_HASH_INIT, &sp, sizeof sp);
  h = qkd_hash_bytes(h, text, strlen(text));
  for (int i = 0; i < d->n_seen; i++)
    if (d->seen[i] == h) return;
  if (d->n_seen == d->cap_seen) {
    int cap = d->cap_seen ? 2 * d->cap_seen : 16;
    uint64_t *n = qkd_arena_alloc(d->arena, sizeof *n * (size_t)cap);
    if (d->n_seen) memcpy(n, d->seen, sizeof *n * (size_t)d->n_seen);
    d->seen = n, d->cap_seen = cap;
  }
  d->seen[d->n_seen++] = h;
  d->warnings++;
  render_text(d, "warning", sp, text);
}

void qkd_diag_note(qkd_diag *d, qkd_span sp, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  render(d, "note", sp, fmt, ap);
  va_end(ap);
}
