/* test_rt_report.c — the run outputs of qkd_report.h: results.json read back with a strict
 * recursive-descent JSON parser (RFC 8259: grammar, escapes, UTF-8, no NaN/Infinity, no
 * duplicate keys), curves.csv with an RFC 4180 record reader, curves.svg with a tag-balance
 * check, the summary table, the atomic replacement of files, and the .qkw weights files
 * (round trip; every flipped byte, every truncation and a teacher cache are rejected). */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qkd_report.h"
#include "testutil.h"

/* ---- a strict JSON parser (test only) ---- */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;
typedef struct jv {
  jtype t;
  int b;
  double num;
  char *str;
  int n;            /* items (array) or members (object) */
  struct jv *items;
  char **keys;
} jv;

typedef struct {
  const char *p, *end;
  int depth;
  const char *error;
} jp;

static void jv_free(jv *v) {
  free(v->str);
  for (int i = 0; i < v->n; i++) {
    jv_free(&v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
}

static void ws(jp *p) {
  while (p->p < p->end && (*p->p == ' ' || *p->p == '\t' || *p->p == '\n' || *p->p == '\r')) p->p++;
}
static int bad(jp *p, const char *why) {
  if (!p->error) p->error = why;
  return -1;
}

static void put_utf8(char **o, uint32_t cp) {
  unsigned char *b = (unsigned char *)*o;
  if (cp < 0x80) *b++ = (unsigned char)cp;
  else if (cp < 0x800) *b++ = (unsigned char)(0xC0 | cp >> 6), *b++ = (unsigned char)(0x80 | (cp & 0x3F));
  else if (cp < 0x10000)
    *b++ = (unsigned char)(0xE0 | cp >> 12), *b++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F)),
    *b++ = (unsigned char)(0x80 | (cp & 0x3F));
  else
    *b++ = (unsigned char)(0xF0 | cp >> 18), *b++ = (unsigned char)(0x80 | (cp >> 12 & 0x3F)),
    *b++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F)), *b++ = (unsigned char)(0x80 | (cp & 0x3F));
  *o = (char *)b;
}

static int hex4(jp *p, uint32_t *v) {
  *v = 0;
  for (int i = 0; i < 4; i++, p->p++) {
    if (p->p >= p->end) return bad(p, "short \\u escape");
    char c = *p->p;
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return bad(p, "bad hex digit");
    *v = *v << 4 | (uint32_t)d;
  }
  return 0;
}

/* A string at p->p (after the opening quote has been seen). */
static int parse_string(jp *p, char **out) {
  p->p++;
  char *o = malloc((size_t)(p->end - p->p) * 2 + 8), *start = o;
  for (;;) {
    if (p->p >= p->end) { free(start); return bad(p, "unterminated string"); }
    unsigned char c = (unsigned char)*p->p;
    if (c == '"') { p->p++; break; }
    if (c < 0x20) { free(start); return bad(p, "raw control character in a string"); }
    if (c == '\\') {
      p->p++;
      if (p->p >= p->end) { free(start); return bad(p, "bad escape"); }
      char e = *p->p++;
      const char *map = strchr("\"\\/bfnrt", e);
      if (map && e) {
        static const char out_of[] = "\"\\/\b\f\n\r\t";
        *o++ = out_of[map - "\"\\/bfnrt"];
      } else if (e == 'u') {
        uint32_t cp, lo;
        if (hex4(p, &cp)) { free(start); return -1; }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (p->end - p->p < 6 || p->p[0] != '\\' || p->p[1] != 'u') { free(start); return bad(p, "lone surrogate"); }
          p->p += 2;
          if (hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) { free(start); return bad(p, "bad surrogate pair"); }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          free(start);
          return bad(p, "lone low surrogate");
        }
        put_utf8(&o, cp);
      } else {
        free(start);
        return bad(p, "unknown escape");
      }
      continue;
    }
    /* UTF-8: validate one sequence */
    int len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!len || p->end - p->p < len) { free(start); return bad(p, "invalid UTF-8"); }
    uint32_t cp = c & (0x7Fu >> len);
    for (int i = 1; i < len; i++) {
      unsigned char k = (unsigned char)p->p[i];
      if ((k & 0xC0) != 0x80) { free(start); return bad(p, "invalid UTF-8"); }
      cp = cp << 6 | (k & 0x3Fu);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) { free(start); return bad(p, "invalid UTF-8"); }
    memcpy(o, p->p, (size_t)len);
    o += len, p->p += len;
  }
  *o = '\0';
  *out = start;
  return 0;
}

static int digits(jp *p) {
  const char *s = p->p;
  while (p->p < p->end && *p->p >= '0' && *p->p <= '9') p->p++;
  return p->p > s ? 0 : bad(p, "digits expected");
}

static int parse_value(jp *p, jv *v);

static int parse_number(jp *p, jv *v) {
  const char *s = p->p;
  if (*p->p == '-') p->p++;
  if (p->p < p->end && *p->p == '0') p->p++;
  else if (digits(p)) return -1;
  if (p->p < p->end && *p->p == '.') { p->p++; if (digits(p)) return -1; }
  if (p->p < p->end && (*p->p == 'e' || *p->p == 'E')) {
    p->p++;
    if (p->p < p->end && (*p->p == '+' || *p->p == '-')) p->p++;
    if (digits(p)) return -1;
  }
  char buf[64];
  size_t n = (size_t)(p->p - s);
  if (n >= sizeof buf) return bad(p, "number too long");
  memcpy(buf, s, n);
  buf[n] = '\0';
  v->t = J_NUM;
  v->num = strtod(buf, NULL);
  return 0;
}

static int parse_container(jp *p, jv *v, int object) {
  char close = object ? '}' : ']';
  p->p++;
  v->t = object ? J_OBJ : J_ARR;
  int cap = 0;
  ws(p);
  if (p->p < p->end && *p->p == close) { p->p++; return 0; }
  for (;;) {
    if (v->n == cap) {
      cap = cap ? 2 * cap : 8;
      v->items = realloc(v->items, (size_t)cap * sizeof *v->items);
      if (object) v->keys = realloc(v->keys, (size_t)cap * sizeof *v->keys);
    }
    jv *item = &v->items[v->n];
    memset(item, 0, sizeof *item);
    ws(p);
    if (object) {
      v->keys[v->n] = NULL;
      if (p->p >= p->end || *p->p != '"') return bad(p, "key expected");
      if (parse_string(p, &v->keys[v->n])) return -1;
      for (int i = 0; i < v->n; i++)
        if (strcmp(v->keys[i], v->keys[v->n]) == 0) { v->n++; return bad(p, "duplicate key"); }
      ws(p);
      if (p->p >= p->end || *p->p != ':') { v->n++; return bad(p, "':' expected"); }
      p->p++;
    }
    v->n++;
    if (parse_value(p, item)) return -1;
    ws(p);
    if (p->p < p->end && *p->p == ',') { p->p++; continue; }
    if (p->p < p->end && *p->p == close) { p->p++; return 0; }
    return bad(p, "',' or close expected");
  }
}

static int parse_value(jp *p, jv *v) {
  memset(v, 0, sizeof *v);
  ws(p);
  if (p->p >= p->end) return bad(p, "value expected");
  if (++p->depth > 64) return bad(p, "too deep");
  int rc;
  char c = *p->p;
  size_t left = (size_t)(p->end - p->p);
  if (c == '{' || c == '[') rc = parse_container(p, v, c == '{');
  else if (c == '"') { v->t = J_STR; rc = parse_string(p, &v->str); }
  else if (c == '-' || (c >= '0' && c <= '9')) rc = parse_number(p, v);
  else if (left >= 4 && !memcmp(p->p, "null", 4)) { v->t = J_NULL; p->p += 4; rc = 0; }
  else if (left >= 4 && !memcmp(p->p, "true", 4)) { v->t = J_BOOL; v->b = 1; p->p += 4; rc = 0; }
  else if (left >= 5 && !memcmp(p->p, "false", 5)) { v->t = J_BOOL; p->p += 5; rc = 0; }
  else rc = bad(p, "unexpected character");
  p->depth--;
  return rc;
}

/* Parses a whole document; -1 (and *why) when it is not valid JSON. */
static int json_parse(const char *text, size_t n, jv *root, const char **why) {
  jp p = {text, text + n, 0, NULL};
  int rc = parse_value(&p, root);
  ws(&p);
  if (rc == 0 && p.p != p.end) rc = bad(&p, "trailing characters");
  *why = p.error;
  return rc;
}

static const jv *get(const jv *o, const char *key) {
  if (!o || o->t != J_OBJ) return NULL;
  for (int i = 0; i < o->n; i++)
    if (strcmp(o->keys[i], key) == 0) return &o->items[i];
  return NULL;
}
static const jv *idx(const jv *a, int i) { return a && a->t == J_ARR && i < a->n ? &a->items[i] : NULL; }
static double num(const jv *v) { return v && v->t == J_NUM ? v->num : NAN; }
static int is(const jv *v, jtype t) { return v && v->t == t; }

/* Every value under a key containing "accuracy" is null, or a number in [0, 1], or a list of them. */
static int accuracies_ok(const jv *v, int under_acc) {
  if (!v) return 1;
  if (v->t == J_NUM) return !under_acc || (v->num >= 0 && v->num <= 1);
  if (v->t == J_ARR) {
    for (int i = 0; i < v->n; i++)
      if (!accuracies_ok(&v->items[i], under_acc)) return 0;
  }
  if (v->t == J_OBJ) {
    for (int i = 0; i < v->n; i++)
      if (!accuracies_ok(&v->items[i], strstr(v->keys[i], "accuracy") != NULL)) return 0;
  }
  return 1;
}

/* ---- files ---- */

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  size_t got = fread(b, 1, (size_t)n, f);
  fclose(f);
  b[got] = '\0';
  if (len) *len = got;
  return b;
}
static void spit(const char *path, const void *b, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return;
  fwrite(b, 1, n, f);
  fclose(f);
}
static char *pjoin(const char *dir, const char *name) {
  static char buf[4][1200];
  static int k;
  char *b = buf[k++ & 3], tmp[sizeof buf[0]];
  size_t m = strlen(dir), n = strlen(name);
  if (m + n + 2 > sizeof tmp) abort();
  memcpy(tmp, dir, m);
  tmp[m] = '/';
  memcpy(tmp + m + 1, name, n + 1);
  memcpy(b, tmp, m + n + 2);
  return b;
}
/* Files in dir whose name contains sub. */
static int count_names(const char *dir, const char *sub) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strstr(e->d_name, sub)) n++;
  closedir(d);
  return n;
}
static int count_sub(const char *s, const char *sub) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, sub)); p += strlen(sub)) n++;
  return n;
}

/* ---- CSV (RFC 4180) ---- */

typedef struct {
  int rows;
  int fields[32];   /* per record */
  char cell[32][8][128];
} csv_doc;

static int csv_read(const char *s, csv_doc *d) {
  memset(d, 0, sizeof *d);
  while (*s) {
    if (d->rows == 32) return -1;
    int f = 0;
    for (;;) {
      char *o = d->cell[d->rows][f < 8 ? f : 7];
      size_t k = 0;
      if (*s == '"') {
        s++;
        for (;;) {
          if (!*s) return -1;
          if (*s == '"' && s[1] == '"') { if (k < 127) o[k++] = '"'; s += 2; continue; }
          if (*s == '"') { s++; break; }
          if (k < 127) o[k++] = *s;
          s++;
        }
      } else {
        while (*s && *s != ',' && *s != '\n') {
          if (*s == '"') return -1;
          if (k < 127) o[k++] = *s;
          s++;
        }
      }
      o[k] = '\0';
      f++;
      if (*s == ',') { s++; continue; }
      if (*s == '\n') { s++; break; }
      if (!*s) break;
      return -1;
    }
    d->fields[d->rows++] = f;
  }
  return 0;
}

/* ---- SVG: every opened element is closed, in order ---- */

static int tags_balanced(const char *s) {
  char stack[64][32];
  int depth = 0;
  while ((s = strchr(s, '<'))) {
    const char *e = strchr(s, '>');
    if (!e) return 0;
    int closing = s[1] == '/', self = e[-1] == '/';
    const char *nm = s + 1 + closing;
    size_t n = strcspn(nm, " \t\n/>");
    if (n == 0 || n >= 32) return 0;
    if (closing) {
      if (depth == 0 || strncmp(stack[depth - 1], nm, n) != 0 || stack[depth - 1][n]) return 0;
      depth--;
    } else if (!self) {
      if (depth == 64) return 0;
      memcpy(stack[depth], nm, n);
      stack[depth++][n] = '\0';
    }
    s = e + 1;
  }
  return depth == 0;
}

/* ---- the fixture: two experiments ---- */

#define WEIRD "exp \"q\" \\ back\nnew\tline"
#define BADUTF "/data/bad\xff name-idx3-ubyte"

static double t_acc[3] = {0.9, 0.95, 0.975};
static qkd_teacher_result t_res = {.params = 1234, .epochs = 3, .test_accuracy = t_acc, .seconds = 12.5, .cached = 1};
static qkd_report_teacher teachers[1] = {{"cnn", "mnist", &t_res}};

/* experiment 1: a teacher, no baseline, no validation, a NaN epoch */
static double d1_acc[3] = {0.5, NAN, 0.75}, d1_loss[3] = {1.25, 0.9, 0.7};
static qkd_student_result d1 = {.epochs = 3, .test_accuracy = d1_acc, .train_loss = d1_loss, .seconds = 3.5,
                                .samples_per_s = 1500.25, .quantum_params = 24, .classical_params = 50,
                                .zero_vectors = 2};
/* experiment 2: no teacher, a baseline that stopped after 2 epochs, validation, interrupted */
static double d2_acc[4] = {0.3, 0.4, 0.5, 0.6}, d2_loss[4] = {2.0, 1.5, 1.25, 1.0};
static double d2_val[4] = {0.25, 0.375, 0.5, 0.625};
static double b2_acc[2] = {0.35, 0.45}, b2_loss[2] = {2.1, 1.7};
static qkd_student_result d2 = {.epochs = 4, .test_accuracy = d2_acc, .validation_accuracy = d2_val,
                                .train_loss = d2_loss, .seconds = 8.0, .samples_per_s = 800.0,
                                .quantum_params = 48, .classical_params = 0};
static qkd_student_result b2 = {.epochs = 2, .test_accuracy = b2_acc, .train_loss = b2_loss, .seconds = 4.0,
                                .samples_per_s = 810.0, .quantum_params = 48, .classical_params = 0};
static qkd_data_file files2[2] = {{"/data/mnist/train-images-idx3-ubyte", 47040016}, {BADUTF, 60008}};
static const char *const overrides[2] = {"mnist.train_limit=2000", "e2.train.epochs=\"4\""};

static qkd_report_experiment exps[2];

static void fixture(qkd_report *r) {
  memset(exps, 0, sizeof exps);
  exps[0] = (qkd_report_experiment){.experiment = WEIRD, .dataset = "mnist", .source = "mnist", .classes = 10,
                                    .qubits = 4, .teacher = {"cnn", 1234, 0.97}, .distilled = &d1,
                                    .loss = "((0.1 * ce) + (8.1 * kl(T: 3)))", .seed = 7, .completed = 1};
  exps[0].seconds.teacher = 12.5, exps[0].seconds.distilled = 3.5, exps[0].seconds.jit = INFINITY;
  exps[0].seconds.total = 16.25;
  exps[1] = (qkd_report_experiment){.experiment = "e2", .dataset = "small", .source = BADUTF, .classes = 2,
                                    .qubits = 6, .teacher = {NULL, 0, NAN}, .distilled = &d2, .baseline = &b2,
                                    .loss = "ce", .seed = 42, .data_files = files2, .n_data_files = 2,
                                    .completed = 0};
  exps[1].seconds.baseline = 4, exps[1].seconds.distilled = 8, exps[1].seconds.jit = 0.125;
  exps[1].seconds.total = 12.5;
  *r = (qkd_report){.qkdc = "0.1.0-test", .teachers = teachers, .n_teachers = 1, .experiments = exps,
                    .n_experiments = 2, .threads = 3, .overrides = overrides, .n_overrides = 2};
}

static int has_keys(const jv *o, const char *const *keys) {
  for (; *keys; keys++)
    if (!get(o, *keys)) { fprintf(stderr, "missing key %s\n", *keys); return 0; }
  return 1;
}

static void check_results_json(const char *dir) {
  size_t n;
  char *text = slurp(pjoin(dir, "results.json"), &n);
  CHECK(text != NULL);
  if (!text) return;
  jv root;
  const char *why = NULL;
  int rc = json_parse(text, n, &root, &why);
  CHECK(rc == 0);
  if (rc) { fprintf(stderr, "results.json: %s\n", why); jv_free(&root); free(text); return; }
  /* (the parser already rejects bare nan/inf tokens; this names the failure) */
  static const char *const nonfinite[] = {" nan", "[nan", "-nan", " NaN", "[NaN", " inf", "[inf", "-inf", " Inf", "[Inf"};
  for (size_t i = 0; i < sizeof nonfinite / sizeof nonfinite[0]; i++) CHECK(strstr(text, nonfinite[i]) == NULL);
  CHECK(root.t == J_OBJ && root.n == 3);
  CHECK(is(get(&root, "qkdc"), J_STR) && strcmp(get(&root, "qkdc")->str, "0.1.0-test") == 0);
  CHECK(accuracies_ok(&root, 0));

  const jv *ts = get(&root, "teachers");
  CHECK(is(ts, J_ARR) && ts->n == 1);
  const jv *t = idx(ts, 0);
  static const char *const tkeys[] = {"name", "dataset", "params", "test_accuracy", "test_accuracy_per_epoch",
                                      "seconds", "cached", NULL};
  CHECK(has_keys(t, tkeys));
  CHECK(num(get(t, "params")) == 1234);
  CHECK(num(get(t, "test_accuracy")) == 0.975);
  CHECK(is(get(t, "test_accuracy_per_epoch"), J_ARR) && get(t, "test_accuracy_per_epoch")->n == 3);
  CHECK(num(get(t, "test_accuracy")) == num(idx(get(t, "test_accuracy_per_epoch"), 2)));
  CHECK(is(get(t, "cached"), J_BOOL) && get(t, "cached")->b == 1);

  const jv *es = get(&root, "experiments");
  CHECK(is(es, J_ARR) && es->n == 2);
  static const char *const ekeys[] = {"experiment", "dataset", "source", "classes", "qubits", "teacher", "student",
                                      "distilled", "baseline", "seconds", "samples_per_s", "provenance", "loss",
                                      "zero_vectors", "completed", NULL};
  static const char *const runkeys[] = {"test_accuracy", "test_accuracy_per_epoch", "train_loss", "seconds", NULL};
  static const char *const seckeys[] = {"teacher", "baseline", "distilled", "jit", "total", NULL};
  static const char *const provkeys[] = {"seed", "threads", "overrides", "data", NULL};
  for (int i = 0; i < 2; i++) {
    const jv *e = idx(es, i);
    CHECK(has_keys(e, ekeys));
    CHECK(has_keys(get(e, "seconds"), seckeys));
    CHECK(has_keys(get(e, "provenance"), provkeys));
    CHECK(is(get(get(e, "student"), "quantum_params"), J_NUM) && is(get(get(e, "student"), "classical_params"), J_NUM));
    for (int k = 0; k < 2; k++) {
      const jv *run = get(e, k ? "baseline" : "distilled");
      if (is(run, J_NULL)) continue;
      CHECK(has_keys(run, runkeys));
      const jv *list = get(run, "test_accuracy_per_epoch");
      CHECK(is(list, J_ARR) && list->n > 0);
      /* the reported accuracy is the last epoch's */
      if (list && list->n > 0) CHECK(num(get(run, "test_accuracy")) == num(idx(list, list->n - 1)));
      CHECK(get(run, "train_loss")->n == list->n);
    }
  }
  const jv *e1 = idx(es, 0), *e2 = idx(es, 1);
  /* escaped strings come back exactly */
  CHECK(is(get(e1, "experiment"), J_STR) && strcmp(get(e1, "experiment")->str, WEIRD) == 0);
  CHECK(strstr(text, "\\\"q\\\" \\\\ back\\nnew\\tline") != NULL);
  CHECK(strcmp(get(e1, "loss")->str, "((0.1 * ce) + (8.1 * kl(T: 3)))") == 0);
  CHECK(is(get(e1, "baseline"), J_NULL));
  CHECK(strcmp(get(get(e1, "teacher"), "name")->str, "cnn") == 0);
  CHECK(num(get(get(e1, "teacher"), "test_accuracy")) == 0.97);
  CHECK(num(get(get(e1, "teacher"), "params")) == 1234);
  const jv *dist1 = get(e1, "distilled");
  CHECK(is(idx(get(dist1, "test_accuracy_per_epoch"), 1), J_NULL)); /* NaN became null */
  CHECK(num(get(dist1, "test_accuracy")) == 0.75);
  CHECK(num(idx(get(dist1, "train_loss"), 0)) == 1.25);
  CHECK(get(dist1, "validation_accuracy_per_epoch") == NULL);
  CHECK(is(get(get(e1, "seconds"), "jit"), J_NULL)); /* Inf became null */
  CHECK(num(get(get(e1, "seconds"), "total")) == 16.25);
  CHECK(num(get(e1, "samples_per_s")) == 1500.25);
  CHECK(num(get(e1, "zero_vectors")) == 2);
  CHECK(num(get(get(e1, "student"), "quantum_params")) == 24);
  CHECK(num(get(get(e1, "student"), "classical_params")) == 50);
  CHECK(get(e1, "completed")->b == 1);

  CHECK(is(get(e2, "teacher"), J_NULL));
  const jv *dist2 = get(e2, "distilled"), *base2 = get(e2, "baseline");
  CHECK(is(get(dist2, "validation_accuracy_per_epoch"), J_ARR) && get(dist2, "validation_accuracy_per_epoch")->n == 4);
  CHECK(num(idx(get(dist2, "validation_accuracy_per_epoch"), 3)) == 0.625);
  CHECK(num(get(dist2, "test_accuracy")) == 0.6);
  CHECK(num(get(base2, "test_accuracy")) == 0.45 && get(base2, "test_accuracy_per_epoch")->n == 2);
  CHECK(num(get(base2, "seconds")) == 4.0);
  CHECK(num(idx(get(dist2, "train_loss"), 2)) == 1.25);
  CHECK(get(e2, "completed")->t == J_BOOL && get(e2, "completed")->b == 0);
  CHECK(num(get(e2, "classes")) == 2 && num(get(e2, "qubits")) == 6);
  const jv *prov = get(e2, "provenance");
  CHECK(num(get(prov, "seed")) == 42 && num(get(prov, "threads")) == 3);
  CHECK(get(prov, "overrides")->n == 2 && strcmp(idx(get(prov, "overrides"), 1)->str, "e2.train.epochs=\"4\"") == 0);
  const jv *data = get(prov, "data");
  CHECK(is(data, J_ARR) && data->n == 2);
  CHECK(num(get(idx(data, 0), "size")) == 47040016);
  CHECK(strcmp(get(idx(data, 0), "file")->str, "/data/mnist/train-images-idx3-ubyte") == 0);
  /* an invalid UTF-8 byte became U+FFFD */
  CHECK(strcmp(get(idx(data, 1), "file")->str, "/data/bad\xEF\xBF\xBD name-idx3-ubyte") == 0);
  CHECK(strcmp(get(e2, "source")->str, "/data/bad\xEF\xBF\xBD name-idx3-ubyte") == 0);
  jv_free(&root);
  free(text);
}

static void check_csv(const char *dir) {
  char *text = slurp(pjoin(dir, "curves.csv"), NULL);
  CHECK(text != NULL);
  if (!text) return;
  static csv_doc d;
  CHECK(csv_read(text, &d) == 0);
  const char *header = "experiment,epoch,teacher_test_accuracy,baseline_train_loss,baseline_test_accuracy,"
                       "distilled_train_loss,distilled_test_accuracy,distilled_validation_accuracy\n";
  CHECK(strncmp(text, header, strlen(header)) == 0);
  CHECK(d.rows == 1 + 3 + 4);
  for (int r = 0; r < d.rows; r++) CHECK(d.fields[r] == 8);
  CHECK(strcmp(d.cell[1][0], WEIRD) == 0);           /* quoted, newline and all */
  CHECK(strcmp(d.cell[1][1], "1") == 0 && strcmp(d.cell[3][1], "3") == 0);
  CHECK(strcmp(d.cell[1][2], "0.97") == 0);          /* teacher, every row */
  CHECK(strcmp(d.cell[3][2], "0.97") == 0);
  CHECK(d.cell[1][3][0] == '\0' && d.cell[1][4][0] == '\0'); /* no baseline */
  CHECK(strcmp(d.cell[1][5], "1.25") == 0 && strcmp(d.cell[1][6], "0.5") == 0);
  CHECK(d.cell[2][6][0] == '\0');                    /* NaN: empty */
  CHECK(d.cell[1][7][0] == '\0');                    /* no validation */
  CHECK(strcmp(d.cell[4][0], "e2") == 0 && d.cell[4][2][0] == '\0');
  CHECK(strcmp(d.cell[4][3], "2.1") == 0 && strcmp(d.cell[5][4], "0.45") == 0);
  CHECK(d.cell[6][3][0] == '\0' && d.cell[6][4][0] == '\0'); /* the baseline stopped after 2 epochs */
  CHECK(strcmp(d.cell[7][1], "4") == 0 && strcmp(d.cell[7][6], "0.6") == 0 && strcmp(d.cell[7][7], "0.625") == 0);
  free(text);
}

static void check_svg(const char *dir) {
  char *text = slurp(pjoin(dir, "curves.svg"), NULL);
  CHECK(text != NULL);
  if (!text) return;
  CHECK(strncmp(text, "<svg", 4) == 0);
  CHECK(strstr(text, "xmlns=\"http://www.w3.org/2000/svg\"") != NULL);
  CHECK(tags_balanced(text));
  CHECK(count_sub(text, "class=\"panel\"") == 2);
  /* series: teacher + distilled (split by the NaN epoch into 2 lines), baseline + distilled */
  CHECK(count_sub(text, "class=\"series\"") == 4);
  CHECK(count_sub(text, "<polyline") == 5);
  CHECK(count_sub(text, ">teacher</text>") == 1);
  CHECK(count_sub(text, ">baseline</text>") == 1);
  CHECK(count_sub(text, ">distilled</text>") == 2);
  CHECK(strstr(text, ">epoch</text>") != NULL && strstr(text, ">test accuracy</text>") != NULL);
  CHECK(strstr(text, ">1.0</text>") != NULL && strstr(text, ">0.0</text>") != NULL);
  CHECK(strstr(text, "exp &quot;q&quot; \\ back new line") != NULL); /* the name escaped */
  CHECK(strstr(text, "NaN") == NULL && strstr(text, "nan") == NULL && strstr(text, "inf") == NULL);
  CHECK(strstr(text, "(interrupted)") != NULL);
  free(text);
}

static void check_summary(qkd_report *rep) {
  FILE *f = tmpfile();
  CHECK(f != NULL);
  if (!f) return;
  qkd_report_summary(rep, f);
  long n = ftell(f);
  rewind(f);
  char *text = calloc((size_t)n + 1, 1);
  CHECK(fread(text, 1, (size_t)n, f) == (size_t)n);
  fclose(f);
  /* header, 2 rows, the footnote; the table lines are equally wide (in code points) */
  char *lines[8];
  int k = 0;
  for (char *s = strtok(text, "\n"); s && k < 8; s = strtok(NULL, "\n")) lines[k++] = s;
  CHECK(k == 4);
  int width[4] = {0};
  for (int i = 0; i < k && i < 4; i++)
    for (const unsigned char *p = (const unsigned char *)lines[i]; *p; p++) width[i] += (*p & 0xC0) != 0x80;
  CHECK(k >= 3 && width[0] == width[1] && width[0] == width[2]);
  CHECK(k >= 1 && strstr(lines[0], "experiment") && strstr(lines[0], "\xCE\x94") && strstr(lines[0], "seconds"));
  CHECK(k >= 2 && strstr(lines[1], "exp \"q\" \\ back?new?line") && strstr(lines[1], "97.00%") &&
        strstr(lines[1], "75.00%") && strstr(lines[1], "16.2"));
  CHECK(k >= 3 && strstr(lines[2], "e2*") && strstr(lines[2], "45.00%") && strstr(lines[2], "60.00%") &&
        strstr(lines[2], "+15.00"));
  CHECK(k >= 4 && strstr(lines[3], "interrupted"));
  free(text);
  /* no experiments */
  qkd_report empty = {0};
  f = tmpfile();
  qkd_report_summary(&empty, f);
  CHECK(ftell(f) > 0);
  fclose(f);
}

/* ---- weights ---- */

static void check_weights(const char *dir) {
  qkd_error err;
  char path[1300], bad[1300], p0[1300];
  snprintf(path, sizeof path, "%s/e2.distilled.qkw", dir);
  snprintf(bad, sizeof bad, "%s/bad.qkw", dir);
  snprintf(p0, sizeof p0, "%s/empty.qkw", dir);
  double cp[5] = {0.5, -0.0, 1e-300, -3.25e10, M_PI};
  float cl[7] = {1.5f, -2.0f, 0.0f, 1e-20f, 3.0e30f, -0.125f, 7.0f};
  CHECK(qkd_report_write_weights(path, "e2.distilled", cp, 5, cl, 7, &err) == 0);
  qkd_report_weights w;
  CHECK(qkd_report_read_weights(path, &w, &err) == 0);
  CHECK(w.name && strcmp(w.name, "e2.distilled") == 0);
  CHECK(w.n_circuit == 5 && w.n_classical == 7);
  CHECK(w.circuit_params && memcmp(w.circuit_params, cp, sizeof cp) == 0);
  CHECK(w.classical && memcmp(w.classical, cl, sizeof cl) == 0);
  qkd_report_weights_free(&w);
  CHECK(count_names(dir, ".tmp") == 0);

  size_t n;
  unsigned char *orig = (unsigned char *)slurp(path, &n);
  CHECK(n == 40 + strlen("e2.distilled") + 5 * 8 + 7 * 4);
  /* every flipped byte (two different bit flips) is rejected */
  int rejected = 0, empty_on_fail = 1;
  for (size_t i = 0; i < n; i++)
    for (int bit = 0; bit < 2; bit++) {
      orig[i] ^= bit ? 0x80 : 0x01;
      spit(bad, orig, n);
      orig[i] ^= bit ? 0x80 : 0x01;
      err = (qkd_error){0};
      if (qkd_report_read_weights(bad, &w, &err) != 0) rejected++;
      else qkd_report_weights_free(&w);
      empty_on_fail &= w.name == NULL && w.circuit_params == NULL && w.classical == NULL;
      empty_on_fail &= strstr(test_err_text(&err), "bad.qkw: error: ") != NULL;
    }
  CHECK(rejected == (int)(2 * n));
  CHECK(empty_on_fail);
  /* every truncation, and one byte too many */
  rejected = 0;
  for (size_t len = 0; len < n; len++) {
    spit(bad, orig, len);
    if (qkd_report_read_weights(bad, &w, &err) != 0) rejected++;
    else qkd_report_weights_free(&w);
  }
  CHECK(rejected == (int)n);
  unsigned char *longer = malloc(n + 1);
  memcpy(longer, orig, n);
  longer[n] = 0;
  spit(bad, longer, n + 1);
  CHECK(qkd_report_read_weights(bad, &w, &err) != 0);
  CHECK(strstr(err.msg, "wrong length") != NULL);
  free(longer);
  /* a checksum failure is named */
  orig[n - 20] ^= 0x10;
  spit(bad, orig, n);
  CHECK(qkd_report_read_weights(bad, &w, &err) != 0 && strstr(err.msg, "checksum") != NULL);
  CHECK(err.kind == QKD_ERR_FORMAT && !strcmp(err.path, bad));
  orig[n - 20] ^= 0x10;
  /* a teacher cache ("QKDW", version 1, then a key) is not a student's weights */
  unsigned char cache[36] = "QKDW\x01\x00\x00\x00\x12\x34\x56\x78";
  spit(bad, cache, sizeof cache);
  CHECK(qkd_report_read_weights(bad, &w, &err) != 0 && strstr(err.msg, "not a student weights") != NULL);
  /* another version */
  orig[4] = 2;
  spit(bad, orig, n);
  CHECK(qkd_report_read_weights(bad, &w, &err) != 0 && strstr(err.msg, "version 2") != NULL);
  free(orig);
  remove(bad);
  /* a missing file */
  CHECK(qkd_report_read_weights(pjoin(dir, "missing.qkw"), &w, &err) != 0);
  CHECK(strstr(test_err_text(&err), "missing.qkw: error: ") != NULL && err.kind == QKD_ERR_IO);

  /* empty weights and an empty name */
  CHECK(qkd_report_write_weights(p0, "", NULL, 0, NULL, 0, &err) == 0);
  CHECK(qkd_report_read_weights(p0, &w, &err) == 0);
  CHECK(w.name && w.name[0] == '\0' && w.n_circuit == 0 && w.n_classical == 0);
  qkd_report_weights_free(&w);
  remove(p0);
  /* bad arguments */
  CHECK(qkd_report_write_weights(p0, "x", NULL, 3, NULL, 0, &err) != 0);
  CHECK(qkd_report_write_weights(p0, "x", cp, -1, NULL, 0, &err) != 0);
  /* an unwritable place (a "directory" that is a file): nothing is left behind */
  FILE *plain = fopen(pjoin(dir, "plain"), "w");
  CHECK(plain != NULL);
  if (plain) fclose(plain);
  CHECK(qkd_report_write_weights(pjoin(dir, "plain/dir.qkw"), "x", cp, 5, cl, 7, &err) != 0);
  CHECK(strstr(test_err_text(&err), "dir.qkw: error: ") != NULL || strstr(test_err_text(&err), "plain: error: ") != NULL);
  remove(pjoin(dir, "plain"));
  remove(path);
}

int main(void) {
  char root[] = "/tmp/qkd_report_XXXXXX";
  CHECK(mkdtemp(root) != NULL);
  char dir[1200];
  qkd_error err;
  snprintf(dir, sizeof dir, "%s/runs/nested//demo/", root); /* mkdir -p, doubled and trailing slashes */
  qkd_report rep;
  fixture(&rep);
  err = (qkd_error){0};
  int rc = qkd_report_write(dir, &rep, &err);
  CHECK(rc == 0);
  if (rc) qkd_error_print(&err, stderr);
  check_results_json(dir);
  check_csv(dir);
  check_svg(dir);
  check_summary(&rep);
  CHECK(count_names(dir, ".tmp") == 0);
  CHECK(count_names(dir, ".") == 2 + 3); /* ".", "..", the three files */

  /* rewriting replaces the files and leaves no temporary file */
  rep.qkdc = "0.2.0";
  CHECK(qkd_report_write(dir, &rep, &err) == 0);
  CHECK(count_names(dir, ".tmp") == 0);
  char *before = slurp(pjoin(dir, "results.json"), NULL);
  CHECK(before && strstr(before, "\"0.2.0\"") != NULL);

  /* a write that fails keeps the previous valid file: block results.json's temporary name */
  char blocker[160], host[64] = "";
  gethostname(host, sizeof host - 1);
  for (char *h = host; *h; h++)
    if (*h == '/' || *h == '.') *h = '_';
  snprintf(blocker, sizeof blocker, "results.json.tmp.%s.%ld.%ld", host, (long)getpid(), (long)getpid()); /* main thread: tid = pid */
  CHECK(mkdir(pjoin(dir, blocker), 0777) == 0);
  rep.qkdc = "0.3.0";
  err = (qkd_error){0};
  CHECK(qkd_report_write(dir, &rep, &err) != 0);
  CHECK(strstr(test_err_text(&err), "results.json: error: cannot write") != NULL);
  char *after = slurp(pjoin(dir, "results.json"), NULL);
  CHECK(before && after && strcmp(before, after) == 0);
  rmdir(pjoin(dir, blocker));
  CHECK(count_names(dir, ".tmp") == 0);
  free(before);
  free(after);

  /* errors: the directory is a file; no directory */
  char file[1300];
  snprintf(file, sizeof file, "%s/afile", root);
  spit(file, "x", 1);
  snprintf(dir, sizeof dir, "%s/afile/sub", root);
  CHECK(qkd_report_write(dir, &rep, &err) != 0 && strstr(test_err_text(&err), "afile/sub: error: ") != NULL);
  CHECK(qkd_report_write(file, &rep, &err) != 0 && strstr(err.msg, "not a directory") != NULL);
  CHECK(qkd_report_write("", &rep, &err) != 0);
  remove(file);

  /* an empty report is valid JSON and a valid SVG */
  snprintf(dir, sizeof dir, "%s/empty", root);
  qkd_report empty = {0};
  CHECK(qkd_report_write(dir, &empty, &err) == 0);
  {
    size_t n;
    char *text = slurp(pjoin(dir, "results.json"), &n);
    jv v;
    const char *why;
    CHECK(text && json_parse(text, n, &v, &why) == 0);
    CHECK(is(get(&v, "qkdc"), J_STR) && get(&v, "teachers")->n == 0 && get(&v, "experiments")->n == 0);
    jv_free(&v);
    free(text);
    text = slurp(pjoin(dir, "curves.svg"), NULL);
    CHECK(text && strncmp(text, "<svg", 4) == 0 && tags_balanced(text));
    free(text);
    text = slurp(pjoin(dir, "curves.csv"), NULL);
    CHECK(text && count_sub(text, "\n") == 1);
    free(text);
  }
  /* the validator itself rejects what it must */
  {
    static const char *const invalid[] = {"{\"a\": NaN}", "[1,]", "{\"a\" 1}", "\"a\nb\"", "[01]", "{\"a\":1,\"a\":2}",
                                          "[1.]", "\"\\x\"", "\"\xff\"", "[Infinity]", "", "[1] x"};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
      jv v;
      const char *why;
      CHECK(json_parse(invalid[i], strlen(invalid[i]), &v, &why) != 0);
      jv_free(&v);
    }
    jv v;
    const char *why, *ok = "{\"a\": [1, -0.5e-3, true, null, \"\\u00e9\\ud83d\\ude00\"]}";
    CHECK(json_parse(ok, strlen(ok), &v, &why) == 0);
    CHECK(strcmp(idx(get(&v, "a"), 4)->str, "\xC3\xA9\xF0\x9F\x98\x80") == 0);
    jv_free(&v);
  }

  check_weights(pjoin(root, "runs/nested/demo"));

  /* clean up */
  const char *const names[] = {"results.json", "curves.csv", "curves.svg"};
  for (int i = 0; i < 3; i++) {
    remove(pjoin(pjoin(root, "runs/nested/demo"), names[i]));
    remove(pjoin(pjoin(root, "empty"), names[i]));
  }
  rmdir(pjoin(root, "runs/nested/demo"));
  rmdir(pjoin(root, "runs/nested"));
  rmdir(pjoin(root, "runs"));
  rmdir(pjoin(root, "empty"));
  CHECK(rmdir(root) == 0);
  return test_done("test_rt_report");
}
