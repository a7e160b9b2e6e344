/* json.c — JSON writer and reader (qkd_json.h). */
#include "qkd_json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qkd_err.h"
#include "qkd_file.h"

/* ---- text ---- */

int qkd_utf8_next(const unsigned char *s, uint32_t *cp) {
  unsigned c = s[0];
  if (c < 0x80) { *cp = c; return 1; }
  int len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? (c <= 0xEF ? 3 : 0) : c >= 0xC2 ? 2 : 0;
  if (len == 0) { *cp = 0xFFFD; return 1; }
  uint32_t v = c & (0x7Fu >> len);
  for (int i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) { *cp = 0xFFFD; return 1; }
    v = v << 6 | (s[i] & 0x3Fu);
  }
  static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < min[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *cp = 0xFFFD; return 1; }
  *cp = v;
  return len;
}

void qkd_text_escape(FILE *f, const char *s, const char *(*esc)(uint32_t cp, char buf[16])) {
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  char buf[16];
  while (*p) {
    uint32_t cp;
    int len = qkd_utf8_next(p, &cp);
    const char *r = esc ? esc(cp, buf) : NULL;
    if (r) fputs(r, f);
    else if (cp == 0xFFFD && len == 1) fputs("\xEF\xBF\xBD", f); /* an invalid byte */
    else fwrite(p, 1, (size_t)len, f);
    p += len;
  }
}

int qkd_fmt_num(char *buf, size_t n, double v) {
  if (!isfinite(v)) return 0;
  for (int p = 15; p <= 17; p++) {
    snprintf(buf, n, "%.*g", p, v);
    for (char *c = buf; *c; c++)
      if (*c == ',') *c = '.'; /* a locale's decimal comma */
    if (strtod(buf, NULL) == v) break;
  }
  return 1;
}

static const char *xml_esc(uint32_t cp, char buf[16]) {
  (void)buf;
  switch (cp) {
  case '&': return "&amp;";
  case '<': return "&lt;";
  case '>': return "&gt;";
  case '"': return "&quot;";
  case '\'': return "&apos;";
  default: return cp < 0x20 || cp == 0x7F ? " " : NULL; /* in a <text>, a line break would vanish */
  }
}

void qkd_xml_escape(FILE *f, const char *s) { qkd_text_escape(f, s, xml_esc); }

/* ---- writer ---- */

static const char *json_esc(uint32_t cp, char buf[16]) {
  switch (cp) {
  case '"': return "\\\"";
  case '\\': return "\\\\";
  case '\n': return "\\n";
  case '\r': return "\\r";
  case '\t': return "\\t";
  case '\b': return "\\b";
  case '\f': return "\\f";
  default:
    if (cp < 0x20 || cp == 0x7F) {
      snprintf(buf, 16, "\\u%04x", (unsigned)cp);
      return buf;
    }
    return NULL;
  }
}

void qkd_json_str(FILE *f, const char *s) {
  if (!s) { fputs("null", f); return; }
  fputc('"', f);
  qkd_text_escape(f, s, json_esc);
  fputc('"', f);
}

/* Separator, newline and indentation before a member, then its key. */
static void jw_sep(qkd_jw *w, const char *key) {
  if (w->depth > 0) {
    if (w->count[w->depth]++) fputc(',', w->f);
    fprintf(w->f, "\n%*s", 2 * w->depth, "");
  }
  if (key) { qkd_json_str(w->f, key); fputs(": ", w->f); }
}
void qkd_jw_open(qkd_jw *w, const char *key, char c) {
  jw_sep(w, key);
  fputc(c, w->f);
  if (w->depth + 1 < QKD_JW_MAX_DEPTH) w->depth++;
  w->count[w->depth] = 0;
}
void qkd_jw_close(qkd_jw *w, char c) {
  int had = w->count[w->depth];
  w->depth--;
  if (had) fprintf(w->f, "\n%*s", 2 * w->depth, "");
  fputc(c, w->f);
}
static void raw_num(FILE *f, double v) {
  char b[40];
  fputs(qkd_fmt_num(b, sizeof b, v) ? b : "null", f);
}
void qkd_jw_num(qkd_jw *w, const char *key, double v) { jw_sep(w, key); raw_num(w->f, v); }
void qkd_jw_int(qkd_jw *w, const char *key, long long v) { jw_sep(w, key); fprintf(w->f, "%lld", v); }
void qkd_jw_bool(qkd_jw *w, const char *key, int v) { jw_sep(w, key); fputs(v ? "true" : "false", w->f); }
void qkd_jw_null(qkd_jw *w, const char *key) { jw_sep(w, key); fputs("null", w->f); }
void qkd_jw_str(qkd_jw *w, const char *key, const char *s) { jw_sep(w, key); qkd_json_str(w->f, s); }
void qkd_jw_nums(qkd_jw *w, const char *key, const double *v, int n) {
  jw_sep(w, key);
  if (!v && n > 0) { fputs("null", w->f); return; }
  fputc('[', w->f);
  for (int i = 0; i < n; i++) {
    if (i) fputs(", ", w->f);
    raw_num(w->f, v[i]);
  }
  fputc(']', w->f);
}

static int all_nums(const qkd_json *v) {
  for (int i = 0; i < v->n; i++)
    if (v->items[i]->kind != QKD_JSON_NUM && v->items[i]->kind != QKD_JSON_NULL) return 0;
  return 1;
}

void qkd_jw_value(qkd_jw *w, const char *key, const qkd_json *v) {
  switch (v ? v->kind : QKD_JSON_NULL) {
  case QKD_JSON_NULL: qkd_jw_null(w, key); break;
  case QKD_JSON_BOOL: qkd_jw_bool(w, key, v->num != 0); break;
  case QKD_JSON_NUM: qkd_jw_num(w, key, v->num); break;
  case QKD_JSON_STR: qkd_jw_str(w, key, v->str); break;
  case QKD_JSON_ARR:
    if (all_nums(v) && v->n > 0) { /* per-epoch lists stay on one line */
      jw_sep(w, key);
      fputc('[', w->f);
      for (int i = 0; i < v->n; i++) {
        if (i) fputs(", ", w->f);
        raw_num(w->f, v->items[i]->kind == QKD_JSON_NUM ? v->items[i]->num : NAN);
      }
      fputc(']', w->f);
      break;
    }
    qkd_jw_open(w, key, '[');
    for (int i = 0; i < v->n; i++) qkd_jw_value(w, NULL, v->items[i]);
    qkd_jw_close(w, ']');
    break;
  case QKD_JSON_OBJ:
    qkd_jw_open(w, key, '{');
    for (int i = 0; i < v->n; i++) qkd_jw_value(w, v->keys[i], v->items[i]);
    qkd_jw_close(w, '}');
    break;
  }
}

/* ---- reader ---- */

typedef struct {
  const char *begin, *s, *end, *path;
  qkd_error *err;
  int failed;
} rd;

static int line_of(const rd *r, const char *at) {
  int line = 1;
  for (const char *p = r->begin; p < at && p < r->end; p++) line += *p == '\n';
  return line;
}

static qkd_json *fail_kind(rd *r, qkd_err_kind kind, const char *at, const char *what) {
  if (!r->failed) qkd_fail(r->err, kind, r->path, "line %d: %s", line_of(r, at), what);
  r->failed = 1;
  return NULL;
}

static qkd_json *fail_at(rd *r, const char *at, const char *what) { return fail_kind(r, QKD_ERR_FORMAT, at, what); }
static qkd_json *oom_at(rd *r, const char *at) { return fail_kind(r, QKD_ERR_MEMORY, at, "out of memory"); }

static void ws(rd *r) {
  while (r->s < r->end && (*r->s == ' ' || *r->s == '\t' || *r->s == '\n' || *r->s == '\r')) r->s++;
}

static qkd_json *node(qkd_json_kind k) {
  qkd_json *v = calloc(1, sizeof *v);
  if (v) v->kind = k;
  return v;
}

static int push(qkd_json *v, char *key, qkd_json *item) {
  if ((v->n & (v->n - 1)) == 0) { /* grow at powers of two */
    int cap = v->n ? 2 * v->n : 1;
    qkd_json **ni = realloc(v->items, sizeof *ni * (size_t)cap);
    if (!ni) return -1;
    v->items = ni;
    if (v->kind == QKD_JSON_OBJ) {
      char **nk = realloc(v->keys, sizeof *nk * (size_t)cap);
      if (!nk) return -1;
      v->keys = nk;
    }
  }
  if (v->kind == QKD_JSON_OBJ) v->keys[v->n] = key;
  v->items[v->n++] = item;
  return 0;
}

static void put_utf8(char **o, uint32_t cp) {
  char *p = *o;
  if (cp < 0x80) *p++ = (char)cp;
  else if (cp < 0x800) *p++ = (char)(0xC0 | cp >> 6), *p++ = (char)(0x80 | (cp & 0x3F));
  else if (cp < 0x10000) *p++ = (char)(0xE0 | cp >> 12), *p++ = (char)(0x80 | (cp >> 6 & 0x3F)), *p++ = (char)(0x80 | (cp & 0x3F));
  else *p++ = (char)(0xF0 | cp >> 18), *p++ = (char)(0x80 | (cp >> 12 & 0x3F)), *p++ = (char)(0x80 | (cp >> 6 & 0x3F)), *p++ = (char)(0x80 | (cp & 0x3F));
  *o = p;
}

static int hex4(const char *p, uint32_t *v) {
  *v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    *v = *v << 4 | (uint32_t)d;
  }
  return 0;
}

static char *string(rd *r) {
  const char *start = r->s++; /* the opening quote */
  size_t cap = 16;
  for (const char *p = r->s; p < r->end && *p != '"'; p++) cap++;
  char *out = malloc(cap * 2), *o = out;
  if (!out) return oom_at(r, start), NULL;
  while (r->s < r->end && *r->s != '"') {
    unsigned char c = (unsigned char)*r->s;
    if (c < 0x20) { free(out); fail_at(r, r->s, "a control character inside a string"); return NULL; }
    if (c != '\\') { *o++ = (char)c; r->s++; continue; }
    if (r->s + 1 >= r->end) break;
    char e = r->s[1];
    r->s += 2;
    switch (e) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '/': *o++ = '/'; break;
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'n': *o++ = '\n'; break;
    case 'r': *o++ = '\r'; break;
    case 't': *o++ = '\t'; break;
    case 'u': {
      uint32_t cp, lo;
      if (r->end - r->s < 4 || hex4(r->s, &cp) != 0) { free(out); fail_at(r, r->s, "a bad \\u escape"); return NULL; }
      r->s += 4;
      if (cp >= 0xD800 && cp < 0xDC00 && r->end - r->s >= 6 && r->s[0] == '\\' && r->s[1] == 'u' &&
          hex4(r->s + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        r->s += 6;
      } else if (cp >= 0xD800 && cp < 0xE000) {
        cp = 0xFFFD;
      }
      put_utf8(&o, cp);
      break;
    }
    default: free(out); fail_at(r, r->s - 1, "an unknown escape in a string"); return NULL;
    }
  }
  if (r->s >= r->end) { free(out); fail_at(r, start, "an unterminated string"); return NULL; }
  r->s++;
  *o = 0;
  return out;
}

static qkd_json *value(rd *r, int depth);

static qkd_json *container(rd *r, int depth, int obj) {
  const char *start = r->s++;
  qkd_json *v = node(obj ? QKD_JSON_OBJ : QKD_JSON_ARR);
  if (!v) return oom_at(r, start);
  ws(r);
  if (r->s < r->end && *r->s == (obj ? '}' : ']')) { r->s++; return v; }
  for (;;) {
    char *key = NULL;
    ws(r);
    if (obj) {
      if (r->s >= r->end || *r->s != '"') { qkd_json_free(v); return fail_at(r, r->s, "expected a key (a string)"); }
      if (!(key = string(r))) { qkd_json_free(v); return NULL; }
      ws(r);
      if (r->s >= r->end || *r->s != ':') { free(key); qkd_json_free(v); return fail_at(r, r->s, "expected ':'"); }
      r->s++;
    }
    qkd_json *item = value(r, depth + 1);
    if (!item || push(v, key, item) != 0) {
      free(key);
      qkd_json_free(item);
      qkd_json_free(v);
      return r->failed ? NULL : oom_at(r, r->s);
    }
    ws(r);
    if (r->s < r->end && *r->s == ',') { r->s++; continue; }
    if (r->s < r->end && *r->s == (obj ? '}' : ']')) { r->s++; return v; }
    qkd_json_free(v);
    return fail_at(r, r->s, obj ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static qkd_json *value(rd *r, int depth) {
  ws(r);
  if (depth > 64) return fail_at(r, r->s, "nested more than 64 levels");
  if (r->s >= r->end) return fail_at(r, r->s, "unexpected end of the file");
  char c = *r->s;
  if (c == '{' || c == '[') return container(r, depth, c == '{');
  if (c == '"') {
    char *s = string(r);
    if (!s) return NULL;
    qkd_json *v = node(QKD_JSON_STR);
    if (!v) { free(s); return oom_at(r, r->s); }
    v->str = s;
    return v;
  }
  static const struct { const char *w; qkd_json_kind k; double n; } words[] = {
      {"null", QKD_JSON_NULL, 0}, {"true", QKD_JSON_BOOL, 1}, {"false", QKD_JSON_BOOL, 0}};
  for (int i = 0; i < 3; i++) {
    size_t l = strlen(words[i].w);
    if ((size_t)(r->end - r->s) >= l && !strncmp(r->s, words[i].w, l)) {
      r->s += l;
      qkd_json *v = node(words[i].k);
      if (!v) return oom_at(r, r->s);
      v->num = words[i].n;
      return v;
    }
  }
  if (c == '-' || (c >= '0' && c <= '9')) {
    char buf[64];
    size_t n = 0;
    while (r->s + n < r->end && n < sizeof buf - 1 && strchr("+-.eE0123456789", r->s[n])) n++;
    memcpy(buf, r->s, n);
    buf[n] = 0;
    char *e;
    double x = strtod(buf, &e);
    if (e != buf + n) return fail_at(r, r->s, "a malformed number");
    r->s += n;
    qkd_json *v = node(QKD_JSON_NUM);
    if (!v) return oom_at(r, r->s);
    v->num = x;
    return v;
  }
  return fail_at(r, r->s, "unexpected character");
}

qkd_json *qkd_json_parse(const char *text, size_t len, const char *path, qkd_error *err) {
  rd r = {text, text, text + len, path, err, 0};
  qkd_json *v = value(&r, 0);
  if (!v) return NULL;
  ws(&r);
  if (r.s != r.end) {
    qkd_json_free(v);
    return fail_at(&r, r.s, "text after the end of the document");
  }
  return v;
}

qkd_json *qkd_json_read_file(const char *path, qkd_error *err) {
  size_t len;
  char *text = qkd_file_read(path, (size_t)1 << 30, &len, err);
  if (!text) return NULL;
  qkd_json *v = qkd_json_parse(text, len, path, err);
  free(text);
  return v;
}

void qkd_json_free(qkd_json *v) {
  if (!v) return;
  for (int i = 0; i < v->n; i++) {
    qkd_json_free(v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->str);
  free(v);
}

const qkd_json *qkd_json_get(const qkd_json *v, const char *key) {
  if (!v || v->kind != QKD_JSON_OBJ) return NULL;
  for (int i = 0; i < v->n; i++)
    if (!strcmp(v->keys[i], key)) return v->items[i];
  return NULL;
}

double qkd_json_num(const qkd_json *v, double def) { return v && v->kind == QKD_JSON_NUM ? v->num : def; }
const char *qkd_json_s(const qkd_json *v) { return v && v->kind == QKD_JSON_STR ? v->str : NULL; }
