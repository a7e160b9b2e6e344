/* test_rt_data.c — the loaders and data-set options of runtime/qkd_data.h on files written to a
 * temp dir: good raw and .gz IDX, every kind of damage (each error must name the file), CIFAR
 * sizes, the options (classes, per_class, limits, validation, scale) and the synthetic source;
 * training augmentation (crops shift with zeros, flips mirror, both a function of (seed, epoch,
 * image) only: the same across batch splits and threads). */
#include "qkd_data.h"
#include "qkd_nn.h"
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char tmp[256];

static void put_be(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static void write_bytes(const char *path, const uint8_t *b, size_t n, int gz) {
  if (gz) {
    gzFile g = gzopen(path, "wb");
    gzwrite(g, b, (unsigned)n);
    gzclose(g);
  } else {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
  }
}

/* image i of an IDX test set: pixel j = (i * 7 + j) % 256; label of i = labels[i] */
static uint8_t *idx_images(uint32_t n_claim, int n, int h, int w, size_t *len) {
  *len = 16 + (size_t)n * h * w;
  uint8_t *b = calloc(*len, 1);
  put_be(b, 0x803); put_be(b + 4, n_claim); put_be(b + 8, (uint32_t)h); put_be(b + 12, (uint32_t)w);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < h * w; j++) b[16 + (size_t)i * h * w + j] = (uint8_t)((i * 7 + j) % 256);
  return b;
}

static uint8_t *idx_labels(int n, const int *labels, size_t *len) {
  *len = 8 + (size_t)n;
  uint8_t *b = calloc(*len, 1);
  put_be(b, 0x801); put_be(b + 4, (uint32_t)n);
  for (int i = 0; i < n; i++) b[8 + i] = (uint8_t)labels[i];
  return b;
}

/* a four-file IDX set in tmp/name: train n labels i%10, test m labels (i*3)%10 */
static void make_set(const char *name, int n, int m, int gz) {
  char dir[512], p[600];
  snprintf(dir, sizeof dir, "%s/%s", tmp, name);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
  CHECK(system(cmd) == 0);
  int *lab = malloc(sizeof(int) * (size_t)(n > m ? n : m));
  size_t len;
  const char *ext = gz ? ".gz" : "";
  uint8_t *b = idx_images((uint32_t)n, n, 4, 3, &len);
  snprintf(p, sizeof p, "%s/train-images-idx3-ubyte%s", dir, ext); write_bytes(p, b, len, gz); free(b);
  for (int i = 0; i < n; i++) lab[i] = i % 10;
  b = idx_labels(n, lab, &len);
  snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte%s", dir, ext); write_bytes(p, b, len, gz); free(b);
  b = idx_images((uint32_t)m, m, 4, 3, &len);
  snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte%s", dir, ext); write_bytes(p, b, len, gz); free(b);
  for (int i = 0; i < m; i++) lab[i] = (i * 3) % 10;
  b = idx_labels(m, lab, &len);
  snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte%s", dir, ext); write_bytes(p, b, len, gz); free(b);
  free(lab);
}

/* The error is about `path` (its path field) and its text is "PATH: error: …". */
static int err_names(const qkd_error *err, const char *path) {
  const char *text = test_err_text(err);
  int ok = strstr(err->path, path) != NULL && !strncmp(text, err->path, strlen(err->path)) &&
           strstr(text, ": error: ") != NULL;
  if (!ok) fprintf(stderr, "error text does not name %s: %s\n", path, text);
  return ok;
}

static void test_good_sets(void) {
  for (int gz = 0; gz < 2; gz++) {
    const char *name = gz ? "goodgz" : "good";
    make_set(name, 50, 20, gz);
    char dir[512];
  qkd_error err;
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    qkd_data_opts o = {.source = dir};
    qkd_dataset ds;
    int rc = qkd_data_load(&o, &ds, &err);
    if (rc) qkd_error_print(&err, stderr);
    CHECK(rc == 0);
    if (rc) continue;
    CHECK(ds.c == 1 && ds.h == 4 && ds.w == 3);
    CHECK(ds.train.n == 50 && ds.test.n == 20 && ds.val.n == 0);
    CHECK(ds.n_classes == 10);
    CHECK(ds.train.y[13] == 3 && ds.test.y[5] == 5);
    CHECK(ds.train.x[13 * 12 + 2] == (13 * 7 + 2) % 256);
    CHECK(ds.n_files == 4);
    float x[12];
    int y;
    int idx = 13;
    qkd_data_batch(&ds, &ds.train, &idx, 1, x, &y);
    CHECK_NEAR(x[2], ((13 * 7 + 2) % 256) / 255.0, 1e-6);
    CHECK(y == 3);
    int c, h, w, nc, ntr, nte;
    CHECK(qkd_data_probe(dir, &c, &h, &w, &nc, &ntr, &nte, &err) == 0);
    CHECK(c == 1 && h == 4 && w == 3 && nc == 10 && ntr == 50 && nte == 20);
    qkd_data_free(&ds);
  }
}

/* Loading dir fails with an error of `kind` about bad_file, its message containing `what`. */
static void expect_fail(const char *dir, const char *bad_file, const char *what, qkd_err_kind kind) {
  qkd_error err;
  qkd_data_opts o = {.source = dir};
  qkd_dataset ds;
  int rc = qkd_data_load(&o, &ds, &err);
  CHECK(rc == -1);
  CHECK(err_names(&err, bad_file));
  CHECK(err.kind == kind);
  if (what) {
    CHECK(strstr(err.msg, what) != NULL);
    if (!strstr(err.msg, what)) fprintf(stderr, "expected '%s' in: %s\n", what, err.msg);
  }
  CHECK(ds.train.x == NULL && ds.test.x == NULL);
}

static void test_bad_files(void) {
  char dir[512], p[600];
  size_t len;
  /* truncated raw images */
  make_set("trunc", 30, 10, 0);
  snprintf(dir, sizeof dir, "%s/trunc", tmp);
  snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
  CHECK(truncate(p, 16 + 29 * 12 + 5) == 0);
  expect_fail(dir, p, "truncated", QKD_ERR_FORMAT);
  /* wrong magic */
  make_set("magic", 30, 10, 0);
  snprintf(dir, sizeof dir, "%s/magic", tmp);
  snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir);
  { FILE *f = fopen(p, "r+b"); uint8_t m[4] = {0, 0, 0x08, 0x03}; fwrite(m, 1, 4, f); fclose(f); }
  expect_fail(dir, p, "dimension", QKD_ERR_FORMAT);
  { FILE *f = fopen(p, "r+b"); uint8_t m[4] = {0x12, 0x34, 0x56, 0x78}; fwrite(m, 1, 4, f); fclose(f); }
  expect_fail(dir, p, "magic", QKD_ERR_FORMAT);
  /* oversized header: claims 10^9 images, raw and gz */
  for (int gz = 0; gz < 2; gz++) {
    make_set(gz ? "hugegz" : "huge", 30, 10, gz);
    snprintf(dir, sizeof dir, "%s/%s", tmp, gz ? "hugegz" : "huge");
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte%s", dir, gz ? ".gz" : "");
    uint8_t *b = idx_images(1000000000u, 30, 4, 3, &len);
    write_bytes(p, b, len, gz);
    free(b);
    expect_fail(dir, p, NULL, QKD_ERR_FORMAT);
    /* and 10^9 labels of 1 byte: fits the cap, must still fail on the length */
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte%s", dir, gz ? ".gz" : "");
    b = idx_images(30, 30, 4, 3, &len);
    write_bytes(p, b, len, gz);
    free(b);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte%s", dir, gz ? ".gz" : "");
    int lab[30] = {0};
    b = idx_labels(30, lab, &len);
    put_be(b + 4, 1000000000u);
    write_bytes(p, b, len, gz);
    free(b);
    expect_fail(dir, p, "truncated", QKD_ERR_FORMAT);
  }
  /* count mismatch between images and labels */
  make_set("mismatch", 30, 10, 0);
  snprintf(dir, sizeof dir, "%s/mismatch", tmp);
  snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", dir);
  { int lab[29] = {0}; uint8_t *b = idx_labels(29, lab, &len); write_bytes(p, b, len, 0); free(b); }
  expect_fail(dir, p, "29 labels", QKD_ERR_FORMAT);
  /* bad label */
  make_set("badlabel", 30, 10, 0);
  snprintf(dir, sizeof dir, "%s/badlabel", tmp);
  snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir);
  { int lab[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12}; uint8_t *b = idx_labels(10, lab, &len); write_bytes(p, b, len, 0); free(b); }
  expect_fail(dir, p, "label 12", QKD_ERR_FORMAT);
  /* corrupt gzip: flip bytes in the middle of the deflate stream */
  make_set("corruptgz", 300, 10, 1);
  snprintf(dir, sizeof dir, "%s/corruptgz", tmp);
  snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
  {
    FILE *f = fopen(p, "r+b");
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, sz / 2, SEEK_SET);
    uint8_t junk[8] = {0xde, 0xad, 0xbe, 0xef, 0xff, 0x00, 0x55, 0xaa};
    fwrite(junk, 1, 8, f);
    fclose(f);
  }
  expect_fail(dir, p, NULL, QKD_ERR_FORMAT);
  /* gz stream cut short */
  make_set("shortgz", 300, 10, 1);
  snprintf(dir, sizeof dir, "%s/shortgz", tmp);
  snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
  { FILE *f = fopen(p, "rb"); fseek(f, 0, SEEK_END); long sz = ftell(f); fclose(f); CHECK(truncate(p, sz / 2) == 0); }
  expect_fail(dir, p, NULL, QKD_ERR_FORMAT);
  /* missing directory / empty directory */
  snprintf(dir, sizeof dir, "%s/nothing-here", tmp);
  expect_fail(dir, dir, NULL, QKD_ERR_IO);
}

static void test_cifar(void) {
  char dir[512], p[600], cmd[700];
  snprintf(dir, sizeof dir, "%s/cifar", tmp);
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
  CHECK(system(cmd) == 0);
  uint8_t rec[3073];
  for (int f = 0; f < 6; f++) {
    if (f < 5) snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, f + 1);
    else snprintf(p, sizeof p, "%s/test_batch.bin", dir);
    FILE *o = fopen(p, "wb");
    for (int r = 0; r < 4; r++) {
      rec[0] = (uint8_t)((f * 4 + r) % 10);
      for (int j = 0; j < 3072; j++) rec[1 + j] = (uint8_t)(j / 1024 * 100 + r);
      fwrite(rec, 1, 3073, o);
    }
    fclose(o);
  }
  qkd_error err;
  qkd_data_opts o = {.source = dir, .scale = QKD_DATA_SCALE_STANDARD};
  qkd_dataset ds;
  int rc = qkd_data_load(&o, &ds, &err);
  if (rc) qkd_error_print(&err, stderr);
  CHECK(rc == 0);
  if (rc == 0) {
    CHECK(ds.c == 3 && ds.h == 32 && ds.w == 32 && ds.train.n == 20 && ds.test.n == 4);
    CHECK(ds.train.y[5] == 5 && ds.test.y[3] == (20 + 3) % 10);
    /* channel c pixels are 100c + r, r uniform over 0..3: mean 100c + 1.5, std sqrt(1.25) */
    CHECK_NEAR(ds.mean[2], 201.5, 1e-4);
    CHECK_NEAR(ds.inv_std[1], 1.0 / sqrt(1.25), 1e-4);
    qkd_data_free(&ds);
  }
  snprintf(p, sizeof p, "%s/data_batch_3.bin", dir);
  CHECK(truncate(p, 3073 * 4 - 1) == 0);
  expect_fail(dir, p, "3073", QKD_ERR_FORMAT);
}

static int count_label(const qkd_split *s, int k) {
  int n = 0;
  for (int i = 0; i < s->n; i++) n += s->y[i] == k;
  return n;
}

static void test_options(void) {
  make_set("opts", 200, 60, 0);
  char dir[512];
  qkd_error err;
  snprintf(dir, sizeof dir, "%s/opts", tmp);
  qkd_dataset ds;
  /* classes 7, 2 -> renumbered 0, 1 in that order */
  int cls[2] = {7, 2};
  qkd_data_opts o = {.source = dir, .n_classes = 2, .classes = cls};
  CHECK(qkd_data_load(&o, &ds, &err) == 0);
  CHECK(ds.n_classes == 2 && ds.train.n == 40 && ds.test.n == 12);
  CHECK(ds.train.y[0] == 1 && ds.train.orig_index[0] == 2); /* first label-2 image is #2 */
  CHECK(ds.train.y[1] == 0 && ds.train.orig_index[1] == 7);
  CHECK(count_label(&ds.train, 0) == 20 && count_label(&ds.train, 1) == 20);
  qkd_data_free(&ds);
  /* per_class on both splits: first 3 of each class in file order */
  o.per_class = 3;
  CHECK(qkd_data_load(&o, &ds, &err) == 0);
  CHECK(ds.train.n == 6 && ds.test.n == 6);
  CHECK(ds.train.orig_index[5] == 27); /* label 7 at 7, 17, 27 and label 2 at 2, 12, 22 */
  /* test labels (i*3)%10: 7 at i = 9, 19, 29; 2 at i = 4, 14, 24 */
  CHECK(ds.test.orig_index[0] == 4 && ds.test.orig_index[1] == 9 && ds.test.orig_index[5] == 29);
  qkd_data_free(&ds);
  /* limits after per_class */
  o.per_class = 5;
  o.train_limit = 7;
  o.test_limit = 4;
  CHECK(qkd_data_load(&o, &ds, &err) == 0);
  CHECK(ds.train.n == 7 && ds.test.n == 4);
  CHECK(ds.train.orig_index[6] == 32); /* 2 7 12 17 22 27 32 */
  qkd_data_free(&ds);
  /* validation: held out of the (already limited) training split, deterministic in the seed */
  qkd_data_opts v = {.source = dir, .train_limit = 100, .validation = 30, .seed = 5};
  qkd_dataset a, b, c;
  CHECK(qkd_data_load(&v, &a, &err) == 0);
  CHECK(qkd_data_load(&v, &b, &err) == 0);
  v.seed = 6;
  CHECK(qkd_data_load(&v, &c, &err) == 0);
  CHECK(a.train.n == 70 && a.val.n == 30 && a.test.n == 60);
  int same = 1, differs = 0, disjoint = 1, ordered = 1;
  for (int i = 0; i < 30; i++) {
    same &= a.val.orig_index[i] == b.val.orig_index[i];
    differs |= a.val.orig_index[i] != c.val.orig_index[i];
    if (i) ordered &= a.val.orig_index[i] > a.val.orig_index[i - 1];
    for (int j = 0; j < 70; j++) disjoint &= a.val.orig_index[i] != a.train.orig_index[j];
    CHECK(a.val.orig_index[i] < 100);
    CHECK(a.val.y[i] == a.val.orig_index[i] % 10);
  }
  CHECK(same && differs && disjoint && ordered);
  qkd_data_free(&a);
  qkd_data_free(&b);
  qkd_data_free(&c);
  /* errors at the data-set level name the source */
  int bad[1] = {11};
  qkd_data_opts e = {.source = dir, .n_classes = 1, .classes = bad};
  CHECK(qkd_data_load(&e, &ds, &err) == -1 && err_names(&err, dir));
  qkd_data_opts e2 = {.source = dir, .validation = 200};
  CHECK(qkd_data_load(&e2, &ds, &err) == -1 && err_names(&err, dir));
}

static void test_synthetic_and_path(void) {
  qkd_error err;
  qkd_data_opts o = {.source = "synthetic", .c = 1, .h = 6, .w = 5, .seed = 3};
  qkd_dataset a, b;
  CHECK(qkd_data_load(&o, &a, &err) == 0);
  CHECK(qkd_data_load(&o, &b, &err) == 0);
  CHECK(a.train.n == 1000 && a.test.n == 200 && a.n_classes == 10);
  CHECK(memcmp(a.train.x, b.train.x, 1000 * 30) == 0);
  CHECK(count_label(&a.train, 0) > 50 && count_label(&a.train, 9) > 50);
  qkd_data_free(&a);
  qkd_data_free(&b);
  /* a 2^20-pixel image (20 qubits of amplitudes) is allowed, one side past 1024 is not */
  qkd_data_opts big = {.source = "synthetic", .c = 1, .h = 1024, .w = 1024, .seed = 3, .train_limit = 2, .test_limit = 1};
  CHECK(qkd_data_load(&big, &a, &err) == 0);
  CHECK(a.train.n == 2 && a.h == 1024 && a.w == 1024);
  qkd_data_free(&a);
  big.w = 1025;
  CHECK(qkd_data_load(&big, &a, &err) == -1);
  CHECK(err.kind == QKD_ERR_INPUT && strstr(err.msg, "1..1024") != NULL);
  /* missing named set: says where it looked and how to get it */
  setenv("QKD_DATA", tmp, 1);
  char dir[1024];
  qkd_error e2;
  CHECK(qkd_data_find("opts", dir, sizeof dir, &e2) == 0);
  CHECK(strstr(dir, "/opts") != NULL);
  CHECK(qkd_data_find("no-such-set", dir, sizeof dir, &e2) == -1);
  CHECK(strstr(e2.msg, tmp) != NULL && strstr(e2.msg, "/usr/share/datasets") != NULL && strstr(e2.msg, "setup.sh") != NULL);
  CHECK(e2.kind == QKD_ERR_IO && !strcmp(e2.path, "no-such-set"));
}

/* ---------------------------------------------------------------------------- augmentation */

enum { AC = 3, AH = 7, AW = 9, AN = 600 };

/* image k: pixel (ch, i, j) = 1 + ch * 1000 + i * 10 + j (never 0, each value identifies its place) */
static void aug_images(float *x, int n) {
  for (int k = 0; k < n; k++)
    for (int ch = 0; ch < AC; ch++)
      for (int i = 0; i < AH; i++)
        for (int j = 0; j < AW; j++) x[((k * AC + ch) * AH + i) * AW + j] = (float)(1 + ch * 1000 + i * 10 + j);
}

/* recovers image k's transform: every pixel is 0 or in(i + dy, j' + dx) with j' = j (or w-1-j when
 * mirrored), one (dy, dx, mirror) for all channels, and 0 exactly where i + dy or j' + dx falls
 * outside. Returns 0 and the transform, or -1 when no transform explains the image. */
static int aug_explain(const float *x, int k, int p, int *dy, int *dx, int *mirror) {
  for (int m = 0; m < 2; m++)
    for (int a = -p; a <= p; a++)
      for (int b = -p; b <= p; b++) {
        int ok = 1;
        for (int ch = 0; ch < AC && ok; ch++)
          for (int i = 0; i < AH && ok; i++)
            for (int j = 0; j < AW && ok; j++) {
              int jj = m ? AW - 1 - j : j, si = i + a, sj = jj + b;
              float want = si < 0 || si >= AH || sj < 0 || sj >= AW ? 0.0f : (float)(1 + ch * 1000 + si * 10 + sj);
              ok = x[((k * AC + ch) * AH + i) * AW + j] == want;
            }
        if (ok) { *dy = a, *dx = b, *mirror = m; return 0; }
      }
  return -1;
}

typedef struct { float *x; const int *idx; int half; } aug_job;

static void aug_half(void *ctx, int t) {
  const aug_job *j = ctx;
  qkd_data_augment(j->x + (long)t * j->half * AC * AH * AW, j->half, AC, AH, AW, j->idx + t * j->half, 2, 1, 9, 4);
}

static void test_augment(void) {
  long sz = (long)AN * AC * AH * AW;
  float *x = malloc(sizeof(float) * (size_t)sz), *y = malloc(sizeof(float) * (size_t)sz);
  int *idx = malloc(sizeof(int) * AN);
  for (int k = 0; k < AN; k++) idx[k] = 1000 + 7 * k;
  /* flip only: each image is itself or its exact mirror, about half mirrored */
  aug_images(x, AN);
  qkd_data_augment(x, AN, AC, AH, AW, idx, 0, 1, 9, 4);
  int mirrored = 0, bad = 0, dy, dx, m;
  for (int k = 0; k < AN; k++) {
    if (aug_explain(x, k, 0, &dy, &dx, &m) != 0) bad++;
    else mirrored += m;
  }
  CHECK(bad == 0);
  CHECK(mirrored > AN / 2 - 60 && mirrored < AN / 2 + 60);
  /* crop(pad: 2) only: a shift by (dy, dx) in [-2, 2]^2 with zeros shifted in, never mirrored;
   * every one of the 25 shifts occurs */
  aug_images(x, AN);
  qkd_data_augment(x, AN, AC, AH, AW, idx, 2, 0, 9, 4);
  int seen[5][5] = {{0}};
  bad = 0;
  for (int k = 0; k < AN; k++) {
    if (aug_explain(x, k, 2, &dy, &dx, &m) != 0 || m) bad++;
    else seen[dy + 2][dx + 2]++;
  }
  CHECK(bad == 0);
  int shifts = 0;
  for (int a = 0; a < 5; a++) for (int b = 0; b < 5; b++) shifts += seen[a][b] > 0;
  CHECK(shifts == 25 && seen[2][2] < AN / 10);
  /* both: crop then flip, as torchvision's RandomCrop + RandomHorizontalFlip */
  aug_images(x, AN);
  qkd_data_augment(x, AN, AC, AH, AW, idx, 2, 1, 9, 4);
  bad = mirrored = 0;
  for (int k = 0; k < AN; k++) {
    if (aug_explain(x, k, 2, &dy, &dx, &m) != 0) bad++;
    else mirrored += m;
  }
  CHECK(bad == 0 && mirrored > AN / 2 - 60 && mirrored < AN / 2 + 60);
  /* a function of (seed, epoch, image): the same images in another batch order and split over 2
   * threads give the same results bit for bit; another epoch or seed other ones */
  int *rev = malloc(sizeof(int) * AN);
  aug_images(y, AN);
  for (int k = 0; k < AN; k++) rev[k] = idx[AN - 1 - k];
  float *z = malloc(sizeof(float) * (size_t)sz);
  for (int k = 0; k < AN; k++) memcpy(z + (long)k * AC * AH * AW, y + (long)(AN - 1 - k) * AC * AH * AW, sizeof(float) * AC * AH * AW);
  qkd_data_augment(z, AN, AC, AH, AW, rev, 2, 1, 9, 4);
  int same = 1;
  for (int k = 0; k < AN; k++) same &= memcmp(z + (long)k * AC * AH * AW, x + (long)(AN - 1 - k) * AC * AH * AW, sizeof(float) * AC * AH * AW) == 0;
  CHECK(same);
  aug_images(y, AN);
  aug_job j = {y, idx, AN / 2};
  qkd_nn_run_threads(2, aug_half, &j);
  CHECK(memcmp(x, y, sizeof(float) * (size_t)sz) == 0);
  int moved = 0;
  aug_images(y, AN);
  qkd_data_augment(y, AN, AC, AH, AW, idx, 2, 1, 9, 5);
  for (int k = 0; k < AN; k++) moved += memcmp(x + (long)k * AC * AH * AW, y + (long)k * AC * AH * AW, sizeof(float) * AC * AH * AW) != 0;
  CHECK(moved > AN / 2);
  aug_images(y, AN);
  qkd_data_augment(y, AN, AC, AH, AW, idx, 2, 1, 10, 4);
  moved = 0;
  for (int k = 0; k < AN; k++) moved += memcmp(x + (long)k * AC * AH * AW, y + (long)k * AC * AH * AW, sizeof(float) * AC * AH * AW) != 0;
  CHECK(moved > AN / 2);
  /* shifts larger than the image (pad 12 on 7 x 9): still explained, some images all zeros */
  aug_images(y, 60);
  qkd_data_augment(y, 60, AC, AH, AW, idx, 12, 1, 9, 4);
  int blank = 0;
  bad = 0;
  for (int k = 0; k < 60; k++) {
    int nz = 0;
    for (long i = 0; i < AC * AH * AW; i++) nz += y[k * AC * AH * AW + i] != 0.0f;
    blank += nz == 0;
    if (nz && aug_explain(y, k, 12, &dy, &dx, &m) != 0) bad++;
  }
  CHECK(bad == 0 && blank > 5);
  /* nothing to do leaves the batch alone */
  aug_images(y, 1);
  qkd_data_augment(y, 1, AC, AH, AW, idx, 0, 0, 9, 4);
  aug_images(x, 1);
  CHECK(memcmp(x, y, sizeof(float) * AC * AH * AW) == 0);
  free(x); free(y); free(z); free(idx); free(rev);
}

int main(void) {
  snprintf(tmp, sizeof tmp, "/tmp/qkd_test_rt_data_XXXXXX");
  if (!mkdtemp(tmp)) { perror("mkdtemp"); return 1; }
  test_good_sets();
  test_bad_files();
  test_cifar();
  test_options();
  test_synthetic_and_path();
  test_augment();
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
  return test_done("test_rt_data");
}
