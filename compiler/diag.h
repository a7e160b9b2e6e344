/* diag.h — source files and diagnostics.
 * Owns: the loaded source texts (bytes + line map), byte-offset spans, and the rendering of
 * `PATH:LINE:COL: error|warning|note: message`, then the source line and a caret line
 * (`^~~~` under the whole span, clipped to the line). Lines and columns are 1-based; columns
 * count bytes. A warning is shown once per (span, text). Counts errors; stops printing (but keeps counting) after QKD_DIAG_MAX_ERRORS. */
#ifndef QKD_DIAG_H
#define QKD_DIAG_H
#include <stdint.h>
#include <stdio.h>

#include "arena.h"

#define QKD_DIAG_MAX_ERRORS 50

typedef struct {
  int file;       /* index into qkd_diag.files, -1 = no location */
  uint32_t start; /* byte offsets [start, end) */
  uint32_t end;
} qkd_span;

typedef struct {
  const char *path;  /* as the user gave it, or the resolved path of an import */
  const char *text;  /* NUL-terminated copy */
  uint32_t len;
  uint32_t *lines;   /* byte offset of each line start */
  int n_lines;
} qkd_source;

typedef struct {
  qkd_arena *arena;
  qkd_source *files[256];
  int n_files;
  int errors, warnings;
  uint64_t *seen;    /* hashes of the warnings shown (each is shown once) */
  int n_seen, cap_seen;
  FILE *out;         /* stderr by default */
} qkd_diag;

void qkd_diag_init(qkd_diag *d, qkd_arena *a);
/* Registers a source text (copied); returns its file index, or -1 when too many files. */
int qkd_diag_add_source(qkd_diag *d, const char *path, const char *text, uint32_t len);
void qkd_diag_error(qkd_diag *d, qkd_span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void qkd_diag_warning(qkd_diag *d, qkd_span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void qkd_diag_note(qkd_diag *d, qkd_span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Line and column (1-based) of a byte offset in a file. */
void qkd_diag_linecol(const qkd_diag *d, int file, uint32_t off, int *line, int *col);
qkd_span qkd_span_join(qkd_span a, qkd_span b);
#endif
