/* qkd_json.h — JSON for the run directory: a writer (what results.json, cell files and reports
 * are written with) and a small reader (what `qkdc report` and resuming read back).
 *
 * Writer promises: output is valid UTF-8 JSON, indented two spaces per level; strings are
 * escaped (quotes, backslashes, control characters; an invalid UTF-8 byte becomes U+FFFD);
 * numbers are printed in the shortest form that reads back as the same double (at most 17
 * significant digits); NaN and ±Inf are written as null; a NULL string as null.
 *
 * Reader promises: RFC 8259 input (nesting at most 64 levels, a document of any size the
 * caller read); a syntax error returns NULL with err (qkd_err.h) filled: path PATH, kind FORMAT,
 * msg "line L: what" (a file that cannot be read: qkd_file_read's error). Values
 * live in one malloc'd tree freed by qkd_json_free. Lookups never fail on a wrong kind: they
 * return NULL (or the given default), so a reader checks once, where it matters. */
#ifndef QKD_JSON_H
#define QKD_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qkd_err.h"

/* ---- text helpers shared with the SVG and the summary table ---- */

/* The code point at s (0xFFFD for a byte that starts no valid UTF-8 sequence) and its bytes. */
int qkd_utf8_next(const unsigned char *s, uint32_t *cp);
/* Writes s with each code point passed through `esc` (a replacement, or NULL to copy it; an
 * invalid byte is written as U+FFFD). */
void qkd_text_escape(FILE *f, const char *s, const char *(*esc)(uint32_t cp, char buf[16]));
/* Text for XML/SVG (&<>"' as entities, control characters as spaces). */
void qkd_xml_escape(FILE *f, const char *s);
/* The shortest of %.15g..%.17g that reads back as v, in buf; 0 when v is not finite. */
int qkd_fmt_num(char *buf, size_t n, double v);

/* ---- writer ---- */

#define QKD_JW_MAX_DEPTH 16
typedef struct {
  FILE *f;
  int depth;
  int count[QKD_JW_MAX_DEPTH];
} qkd_jw;

void qkd_json_str(FILE *f, const char *s);
/* Members of the innermost object (key) or elements of an array (key NULL). */
void qkd_jw_open(qkd_jw *w, const char *key, char c); /* '{' or '[' */
void qkd_jw_close(qkd_jw *w, char c);
void qkd_jw_num(qkd_jw *w, const char *key, double v);
void qkd_jw_int(qkd_jw *w, const char *key, long long v);
void qkd_jw_bool(qkd_jw *w, const char *key, int v);
void qkd_jw_null(qkd_jw *w, const char *key);
void qkd_jw_str(qkd_jw *w, const char *key, const char *s);
/* A list of numbers on one line; null when v is NULL and n > 0. */
void qkd_jw_nums(qkd_jw *w, const char *key, const double *v, int n);

/* ---- reader ---- */

typedef enum { QKD_JSON_NULL, QKD_JSON_BOOL, QKD_JSON_NUM, QKD_JSON_STR, QKD_JSON_ARR, QKD_JSON_OBJ } qkd_json_kind;

typedef struct qkd_json {
  qkd_json_kind kind;
  double num;                /* NUM; BOOL: 0 or 1 */
  char *str;                 /* STR */
  int n;                     /* ARR, OBJ: element count */
  struct qkd_json **items;   /* ARR, OBJ: elements (values) */
  char **keys;               /* OBJ: keys, parallel to items */
} qkd_json;

qkd_json *qkd_json_parse(const char *text, size_t len, const char *path, qkd_error *err);
/* Reads and parses a file. */
qkd_json *qkd_json_read_file(const char *path, qkd_error *err);
void qkd_json_free(qkd_json *v);
/* The member `key` of an object (NULL when v is not an object or has no such member). */
const qkd_json *qkd_json_get(const qkd_json *v, const char *key);
/* A number, or def when v is not a number. */
double qkd_json_num(const qkd_json *v, double def);
/* A string, or NULL when v is not a string. */
const char *qkd_json_s(const qkd_json *v);
/* Writes a parsed value back (a member of an object when key is set). */
void qkd_jw_value(qkd_jw *w, const char *key, const qkd_json *v);

#endif
