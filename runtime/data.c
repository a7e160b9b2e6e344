/* data.c — loaders, the synthetic source, the data path and the data-set options of qkd_data.h. */
#include "qkd_err.h"
#include "qkd_data.h"
#include "qkd_npy.h"
#include "qkd_rng.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#ifndef QKD_SOURCE_DATA_DIR
#define QKD_SOURCE_DATA_DIR "data"
#endif

#define IDX_MAX_SIDE 4096
#define CIFAR_RECORD 3073
#define FILE_LABELS 10 /* labels of IDX and CIFAR-10 sources are 0..9 */
#define ARRAY_MAX_CHANNELS 4 /* (N, C, H, W) arrays: C <= 4, like the other sources */


static int file_size(const char *path, long long *size) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
  *size = (long long)st.st_size;
  return 0;
}

/* out = a "/" b c, truncated to outlen (paths longer than PATH_MAX fail to open anyway). */
static void path_join(char *out, size_t outlen, const char *a, const char *b, const char *c) {
  const char *parts[4] = {a, b ? "/" : NULL, b, c};
  size_t n = 0;
  for (int i = 0; i < 4; i++)
    for (const char *p = parts[i]; p && *p && n + 1 < outlen; p++) out[n++] = *p;
  out[n] = 0;
}

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---------------------------------------------------------------------------------------- IDX */

static int is_gzip(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  unsigned char b[2] = {0, 0};
  size_t n = fread(b, 1, 2, f);
  fclose(f);
  return n == 2 && b[0] == 0x1f && b[1] == 0x8b;
}

/* Reads exactly len bytes; returns the count read (< len at end of stream) or -1 on a gzip error
 * (message copied into why[GZ_WHY]: zlib's own text dies with the gzFile). */
#define GZ_WHY 200
static long long gz_read_all(gzFile g, uint8_t *buf, unsigned long long len, char *why) {
  unsigned long long got = 0;
  while (got < len) {
    unsigned long long want = len - got;
    unsigned chunk = want > (1u << 20) ? (1u << 20) : (unsigned)want;
    int r = gzread(g, buf + got, chunk);
    if (r < 0) {
      int code;
      snprintf(why, GZ_WHY, "%s", gzerror(g, &code));
      return -1;
    }
    if (r == 0) {
      int code;
      const char *m = gzerror(g, &code);
      if (code != Z_OK && code != Z_BUF_ERROR) { snprintf(why, GZ_WHY, "%s", m); return -1; }
      if (code == Z_BUF_ERROR) { snprintf(why, GZ_WHY, "unexpected end of the compressed stream"); return -1; }
      break;
    }
    got += (unsigned)r;
  }
  return (long long)got;
}

int qkd_idx_read(const char *path, int want_ndim, int max_label, int dims[3], uint8_t **data,
                 qkd_error *err) {
  *data = NULL;
  long long fsize;
  if (file_size(path, &fsize) != 0) return qkd_fail(err, QKD_ERR_IO, path, "cannot open: %s", errno ? strerror(errno) : "not a regular file");
  int gz = is_gzip(path);
  gzFile g = gzopen(path, "rb");
  if (!g) return qkd_fail(err, QKD_ERR_IO, path, "cannot open: %s", strerror(errno));
  char why[GZ_WHY] = "";
  uint8_t head[16];
  long long got = gz_read_all(g, head, 4, why);
  if (got < 0) { gzclose(g); return qkd_fail(err, QKD_ERR_FORMAT, path, "corrupt gzip data: %s", why); }
  if (got < 4) { gzclose(g); return qkd_fail(err, QKD_ERR_FORMAT, path, "truncated: %lld bytes, too short for an IDX header", got); }
  unsigned magic = (unsigned)head[0] << 24 | (unsigned)head[1] << 16 | (unsigned)head[2] << 8 | head[3];
  if (head[0] != 0 || head[1] != 0 || head[2] != 0x08) {
    gzclose(g);
    return qkd_fail(err, QKD_ERR_FORMAT, path, "not an unsigned-byte IDX file (magic 0x%08x; expected 0x%08x)", magic,
                0x800u | (unsigned)want_ndim);
  }
  int ndim = head[3];
  if (ndim != want_ndim) {
    gzclose(g);
    return qkd_fail(err, QKD_ERR_FORMAT, path, "expected an IDX file of %d dimension%s (%s), found %d (magic 0x%08x)", want_ndim,
                want_ndim == 1 ? "" : "s", want_ndim == 1 ? "labels" : "images", ndim, magic);
  }
  got = gz_read_all(g, head + 4, 4u * (unsigned)ndim, why);
  if (got < 0) { gzclose(g); return qkd_fail(err, QKD_ERR_FORMAT, path, "corrupt gzip data: %s", why); }
  if (got < 4 * ndim) { gzclose(g); return qkd_fail(err, QKD_ERR_FORMAT, path, "truncated inside the IDX header"); }
  unsigned long long payload = 1;
  unsigned long long d[3] = {0, 0, 0};
  for (int i = 0; i < ndim; i++) {
    const uint8_t *p = head + 4 + 4 * i;
    d[i] = (unsigned long long)p[0] << 24 | (unsigned long long)p[1] << 16 | (unsigned long long)p[2] << 8 | p[3];
    payload *= d[i] ? d[i] : 1;
  }
  if (d[0] == 0) { gzclose(g); return qkd_fail(err, QKD_ERR_FORMAT, path, "the header says the file holds no items"); }
  if (ndim == 3 && (d[1] == 0 || d[2] == 0 || d[1] > IDX_MAX_SIDE || d[2] > IDX_MAX_SIDE)) {
    gzclose(g);
    return qkd_fail(err, QKD_ERR_FORMAT, path, "implausible image size %llux%llu in the header", d[1], d[2]);
  }
  unsigned long long hsize = 4 + 4ull * (unsigned)ndim;
  const char *what = ndim == 1 ? "labels" : "images";
  if (!gz) {
    if ((unsigned long long)fsize != hsize + payload) {
      gzclose(g);
      if ((unsigned long long)fsize < hsize + payload)
        return qkd_fail(err, QKD_ERR_FORMAT, path, "truncated: the header claims %llu %s (%llu bytes of data) but the file holds %lld bytes after the header",
                    d[0], what, payload, fsize - (long long)hsize);
      return qkd_fail(err, QKD_ERR_FORMAT, path, "the file is %lld bytes longer than its header (%llu %s) says",
                  fsize - (long long)(hsize + payload), d[0], what);
    }
  }
  if (d[0] > (unsigned long long)INT_MAX || payload > (1ull << 34)) {
    gzclose(g);
    return qkd_fail(err, QKD_ERR_FORMAT, path, "the header claims %llu %s, more than this loader accepts", d[0], what);
  }
  /* Read with a growing buffer: memory follows the data actually present, never the header. */
  unsigned long long cap = gz ? (payload < (1u << 22) ? payload : (1u << 22)) : payload;
  uint8_t *buf = malloc(cap ? cap : 1);
  if (!buf) { gzclose(g); return qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory (%llu bytes)", cap); }
  unsigned long long have = 0;
  for (;;) {
    long long r = gz_read_all(g, buf + have, cap - have, why);
    if (r < 0) { free(buf); gzclose(g); return qkd_fail(err, QKD_ERR_FORMAT, path, "corrupt gzip data: %s", why); }
    have += (unsigned long long)r;
    if (have < cap) break; /* end of stream */
    if (have == payload) break;
    unsigned long long ncap = cap * 2 > payload ? payload : cap * 2;
    uint8_t *nb = realloc(buf, ncap);
    if (!nb) { free(buf); gzclose(g); return qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory (%llu bytes)", ncap); }
    buf = nb;
    cap = ncap;
  }
  if (have < payload) {
    free(buf);
    gzclose(g);
    return qkd_fail(err, QKD_ERR_FORMAT, path, "truncated: the header claims %llu %s (%llu bytes of data) but the %s holds %llu",
                d[0], what, payload, gz ? "decompressed stream" : "file", have);
  }
  uint8_t extra;
  long long more = gz_read_all(g, &extra, 1, why);
  gzclose(g);
  if (more < 0) { free(buf); return qkd_fail(err, QKD_ERR_FORMAT, path, "corrupt gzip data: %s", why); }
  if (more > 0) { free(buf); return qkd_fail(err, QKD_ERR_FORMAT, path, "the data is longer than its header (%llu %s) says", d[0], what); }
  if (max_label >= 0) {
    for (unsigned long long i = 0; i < payload; i++)
      if (buf[i] > max_label) {
        int bad = buf[i];
        free(buf);
        return qkd_fail(err, QKD_ERR_FORMAT, path, "label %d of item %llu is outside 0..%d", bad, i, max_label);
      }
  }
  for (int i = 0; i < 3; i++) dims[i] = i < ndim ? (int)d[i] : 1;
  *data = buf;
  return 0;
}

/* -------------------------------------------------------------------------------------- CIFAR */

int qkd_cifar_read(const char *path, uint8_t **x, int **y, int *n, qkd_error *err) {
  long long fsize;
  errno = 0;
  if (file_size(path, &fsize) != 0) return qkd_fail(err, QKD_ERR_IO, path, "cannot open: %s", errno ? strerror(errno) : "not a regular file");
  if (fsize == 0 || fsize % CIFAR_RECORD != 0)
    return qkd_fail(err, QKD_ERR_FORMAT, path, "size %lld is not a whole number of 3073-byte CIFAR-10 records (1 label + 3x32x32 pixels)", fsize);
  long long recs = fsize / CIFAR_RECORD;
  if (recs + *n > INT_MAX / 2) return qkd_fail(err, QKD_ERR_FORMAT, path, "too many records");
  FILE *f = fopen(path, "rb");
  if (!f) return qkd_fail(err, QKD_ERR_IO, path, "cannot open: %s", strerror(errno));
  uint8_t *nx = realloc(*x, (size_t)(*n + recs) * 3072);
  if (!nx) { fclose(f); return qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory"); }
  *x = nx;
  int *ny = realloc(*y, (size_t)(*n + recs) * sizeof(int));
  if (!ny) { fclose(f); return qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory"); }
  *y = ny;
  uint8_t rec[CIFAR_RECORD];
  for (long long i = 0; i < recs; i++) {
    if (fread(rec, 1, CIFAR_RECORD, f) != CIFAR_RECORD) {
      fclose(f);
      return qkd_fail(err, QKD_ERR_IO, path, "read failed at record %lld", i);
    }
    if (rec[0] >= FILE_LABELS) {
      fclose(f);
      return qkd_fail(err, QKD_ERR_FORMAT, path, "label %d of record %lld is outside 0..%d", rec[0], i, FILE_LABELS - 1);
    }
    (*y)[*n + i] = rec[0];
    memcpy(*x + (size_t)(*n + i) * 3072, rec + 1, 3072);
  }
  fclose(f);
  *n += (int)recs;
  return 0;
}

/* ------------------------------------------------------------------------------- data path */

static const char *const IDX_STEMS[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
static const char *const CIFAR_TRAIN[5] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                           "data_batch_4.bin", "data_batch_5.bin"};

/* <dir>/<stem> or <dir>/<stem>.gz, whichever exists (raw first). */
static int find_idx(const char *dir, const char *stem, char *out, size_t outlen) {
  long long sz;
  path_join(out, outlen, dir, stem, NULL);
  if (file_size(out, &sz) == 0) return 0;
  path_join(out, outlen, dir, stem, ".gz");
  if (file_size(out, &sz) == 0) return 0;
  path_join(out, outlen, dir, stem, NULL);
  return -1;
}

static int dir_has_cifar(const char *dir) {
  char p[1200];
  long long sz;
  path_join(p, sizeof p, dir, CIFAR_TRAIN[0], NULL);
  return file_size(p, &sz) == 0;
}

static int dir_has_idx(const char *dir) {
  char p[1200];
  return find_idx(dir, IDX_STEMS[0], p, sizeof p) == 0;
}

int qkd_data_find(const char *name, char *dir, size_t dirlen, qkd_error *err) {
  char roots[2048] = "";
  size_t used = 0;
  const char *cands[64];
  char env[4096] = "";
  int nc = 0;
  const char *e = getenv("QKD_DATA");
  if (e && *e) {
    snprintf(env, sizeof env, "%s", e);
    for (char *tok = strtok(env, ":"); tok && nc < 60; tok = strtok(NULL, ":"))
      if (*tok) cands[nc++] = tok;
  }
  cands[nc++] = "./data";
  cands[nc++] = QKD_SOURCE_DATA_DIR;
  cands[nc++] = "/usr/share/datasets";
  for (int i = 0; i < nc; i++) {
    char d[1200];
    path_join(d, sizeof d, cands[i], name, NULL);
    if (dir_has_idx(d) || dir_has_cifar(d)) {
      snprintf(dir, dirlen, "%s", d);
      return 0;
    }
    int w = snprintf(roots + used, sizeof roots - used, "%s%s", i ? ", " : "", d);
    if (w > 0 && used + (size_t)w < sizeof roots) used += (size_t)w;
  }
  const char *how = strcmp(name, "fashion-mnist") == 0
                        ? "apt-get install dataset-fashion-mnist (or run scripts/setup.sh)"
                        : "run scripts/setup.sh (it fetches MNIST and decompresses CIFAR-10 into data/), or set QKD_DATA";
  return qkd_fail(err, QKD_ERR_IO, name, "data set not found; looked in %s; to get it: %s", roots, how);
}

static int is_named(const char *s) {
  return strcmp(s, "mnist") == 0 || strcmp(s, "fashion-mnist") == 0 || strcmp(s, "cifar10") == 0;
}

static int array_source_files(const char *src, qkd_data_file *files, int *n);

int qkd_data_identify(const qkd_data_opts *o, qkd_data_file *files, int *n, qkd_error *err) {
  *n = 0;
  const char *src = o->source ? o->source : "";
  if (strcmp(src, "synthetic") == 0) return 0;
  char dir[1200];
  if (is_named(src) && !is_dir(src)) {
    if (qkd_data_find(src, dir, sizeof dir, err) != 0) return -1;
  } else {
    snprintf(dir, sizeof dir, "%s", src);
  }
  char p[1200];
  if (array_source_files(dir, files, n)) return 0;
  if (dir_has_cifar(dir)) {
    for (int i = 0; i < 6; i++) {
      path_join(p, sizeof p, dir, i < 5 ? CIFAR_TRAIN[i] : "test_batch.bin", NULL);
      qkd_data_file *f = &files[(*n)++];
      snprintf(f->path, sizeof f->path, "%.1000s", p);
      if (file_size(p, &f->size) != 0) f->size = -1;
    }
    return 0;
  }
  for (int i = 0; i < 4; i++) {
    find_idx(dir, IDX_STEMS[i], p, sizeof p);
    qkd_data_file *f = &files[(*n)++];
    snprintf(f->path, sizeof f->path, "%.1000s", p);
    if (file_size(p, &f->size) != 0) f->size = -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------------ raw splits */

typedef struct {
  int n;
  uint8_t *x;
  int *y;
} raw_split;

static void raw_free(raw_split *r) {
  free(r->x);
  free(r->y);
  memset(r, 0, sizeof *r);
}

static void add_file(qkd_dataset *ds, const char *path) {
  if (ds->n_files >= QKD_DATA_MAX_FILES) return;
  qkd_data_file *f = &ds->files[ds->n_files++];
  path_join(f->path, sizeof f->path, path, NULL, NULL);
  if (file_size(path, &f->size) != 0) f->size = -1;
}

static int load_idx_pair(qkd_dataset *ds, const char *dir, const char *img_stem, const char *lab_stem,
                         raw_split *out, qkd_error *err) {
  char ip[1200], lp[1200];
  if (find_idx(dir, img_stem, ip, sizeof ip) != 0) return qkd_fail(err, QKD_ERR_IO, ip, "missing (also tried %s.gz)", ip);
  if (find_idx(dir, lab_stem, lp, sizeof lp) != 0) return qkd_fail(err, QKD_ERR_IO, lp, "missing (also tried %s.gz)", lp);
  int idims[3], ldims[3];
  uint8_t *imgs = NULL, *labs = NULL;
  if (qkd_idx_read(ip, 3, -1, idims, &imgs, err) != 0) return -1;
  if (qkd_idx_read(lp, 1, FILE_LABELS - 1, ldims, &labs, err) != 0) { free(imgs); return -1; }
  if (idims[0] != ldims[0]) {
    free(imgs);
    free(labs);
    return qkd_fail(err, QKD_ERR_FORMAT, lp, "holds %d labels but %s holds %d images", ldims[0], ip, idims[0]);
  }
  if (ds->h && (ds->h != idims[1] || ds->w != idims[2])) {
    free(imgs);
    free(labs);
    return qkd_fail(err, QKD_ERR_FORMAT, ip, "images are %dx%d but the other split's are %dx%d", idims[1], idims[2], ds->h, ds->w);
  }
  ds->c = 1;
  ds->h = idims[1];
  ds->w = idims[2];
  out->n = idims[0];
  out->x = imgs;
  out->y = malloc((size_t)out->n * sizeof(int));
  if (!out->y) { free(labs); return qkd_fail(err, QKD_ERR_MEMORY, lp, "out of memory"); }
  for (int i = 0; i < out->n; i++) out->y[i] = labs[i];
  free(labs);
  add_file(ds, ip);
  add_file(ds, lp);
  return 0;
}

/* ------------------------------------------------------------------------------ NumPy arrays */

/* An array source is a directory holding x_train.npy, y_train.npy, x_test.npy, y_test.npy, or
 * one .npz with those members. x: (N, D), (N, H, W) or (N, C, H, W), uint8 or float; y: (N,)
 * integer labels 0..K-1, K <= QKD_DATA_MAX_CLASSES. */
static const char *const ARRAY_NAMES[4] = {"x_train", "y_train", "x_test", "y_test"};

static int is_npz_file(const char *path) {
  size_t n = strlen(path);
  long long sz;
  return n > 4 && strcmp(path + n - 4, ".npz") == 0 && file_size(path, &sz) == 0;
}

static int dir_has_arrays(const char *dir) {
  char p[1200];
  long long sz;
  path_join(p, sizeof p, dir, "x_train", ".npy");
  return file_size(p, &sz) == 0;
}

/* Array k of source src: its file (src itself for a .npz), its member (NULL for a .npy) and the
 * name errors give it ("FILE[MEMBER]" for a .npz member, as qkd_npy.h does). */
typedef struct {
  char file[1100], shown[1200];
  const char *member;
} array_ref;

static void array_ref_of(const char *src, int k, array_ref *r) {
  if (is_npz_file(src)) {
    snprintf(r->file, sizeof r->file, "%.1000s", src);
    r->member = ARRAY_NAMES[k];
    snprintf(r->shown, sizeof r->shown, "%s[%s]", r->file, r->member);
  } else {
    path_join(r->file, sizeof r->file, src, ARRAY_NAMES[k], ".npy");
    r->member = NULL;
    snprintf(r->shown, sizeof r->shown, "%s", r->file);
  }
}

static int array_load(const char *src, int k, int header_only, qkd_npy *a, array_ref *r, qkd_error *err) {
  array_ref_of(src, k, r);
  long long sz;
  if (!r->member && file_size(r->file, &sz) != 0)
    return qkd_fail(err, QKD_ERR_IO, r->file, "missing: an array data set needs x_train.npy, y_train.npy, x_test.npy and y_test.npy");
  return qkd_npy_load(r->file, r->member, header_only, a, err);
}

/* Validates the headers of all four arrays: shapes, dtypes, equal row counts, equal item shapes.
 * Fills the item shape, whether x is float, and the row counts n[2]; reads no payload. */
static int array_headers(const char *src, int *c, int *h, int *w, int *is_float, int n[2], qkd_error *err) {
  for (int s = 0; s < 2; s++) {
    qkd_npy x, y;
    array_ref rx, ry;
    if (array_load(src, 2 * s, 1, &x, &rx, err) != 0 || array_load(src, 2 * s + 1, 1, &y, &ry, err) != 0) return -1;
    if (x.ndim < 2 || x.ndim > 4)
      return qkd_fail(err, QKD_ERR_FORMAT, rx.shown, "features must have shape (N, D), (N, H, W) or (N, C, H, W); this array has %d dimension%s",
                      x.ndim, x.ndim == 1 ? "" : "s");
    if (x.type != QKD_NPY_U8 && x.type != QKD_NPY_F32 && x.type != QKD_NPY_F64)
      return qkd_fail(err, QKD_ERR_FORMAT, rx.shown, "features must be uint8, float32 or float64, not %s", qkd_npy_descr(x.type));
    if (y.ndim != 1 || (y.type != QKD_NPY_U8 && y.type != QKD_NPY_I32 && y.type != QKD_NPY_I64))
      return qkd_fail(err, QKD_ERR_FORMAT, ry.shown, "labels must be a 1-dimensional integer array (uint8, int32 or int64), not %s of %d dimension%s",
                      qkd_npy_descr(y.type), y.ndim, y.ndim == 1 ? "" : "s");
    if (y.shape[0] != x.shape[0])
      return qkd_fail(err, QKD_ERR_FORMAT, ry.shown, "holds %ld labels but %s holds %ld rows", y.shape[0], rx.shown, x.shape[0]);
    if (x.shape[0] < 1 || x.shape[0] > INT_MAX / 2)
      return qkd_fail(err, QKD_ERR_FORMAT, rx.shown, "holds %ld rows; expected 1..%d", x.shape[0], INT_MAX / 2);
    int d[3] = {1, 1, 1};
    for (int i = 1; i < x.ndim; i++) d[3 - x.ndim + i] = x.shape[i] > INT_MAX ? INT_MAX : (int)x.shape[i];
    if (d[0] > ARRAY_MAX_CHANNELS)
      return qkd_fail(err, QKD_ERR_FORMAT, rx.shown, "has %d channels (shape (N, C, H, W)); at most %d are supported — reshape to (N, D) for flat features",
                      d[0], ARRAY_MAX_CHANNELS);
    if (d[1] < 1 || d[2] < 1 || (long long)d[1] * d[2] > (1 << 24))
      return qkd_fail(err, QKD_ERR_FORMAT, rx.shown, "items of %d x %d values are outside 1..2^24 values", d[1], d[2]);
    int fl = x.type != QKD_NPY_U8;
    if (s == 0) {
      *c = d[0], *h = d[1], *w = d[2], *is_float = fl;
    } else if (d[0] != *c || d[1] != *h || d[2] != *w || fl != *is_float) {
      array_ref r0;
      array_ref_of(src, 0, &r0);
      return qkd_fail(err, QKD_ERR_FORMAT, rx.shown, "items are %s %dx%dx%d but %s's are %s %dx%dx%d", fl ? "float" : "uint8", d[0], d[1], d[2],
                      r0.shown, *is_float ? "float" : "uint8", *c, *h, *w);
    }
    n[s] = (int)x.shape[0];
  }
  return 0;
}

/* The labels of split s (0 train, 1 test) as ints, each checked to be in 0..QKD_DATA_MAX_CLASSES-1;
 * *max_label receives the largest. */
static int array_labels(const char *src, int s, int **y, int *max_label, qkd_error *err) {
  qkd_npy a;
  array_ref r;
  *y = NULL;
  if (array_load(src, 2 * s + 1, 0, &a, &r, err) != 0) return -1;
  int *out = malloc((size_t)a.count * sizeof(int) + 1);
  if (!out) { qkd_npy_free(&a); return qkd_fail(err, QKD_ERR_MEMORY, r.shown, "out of memory"); }
  for (long i = 0; i < a.count; i++) {
    double v = qkd_npy_get(&a, i);
    if (v < 0 || v >= QKD_DATA_MAX_CLASSES) {
      qkd_npy_free(&a);
      free(out);
      return qkd_fail(err, QKD_ERR_FORMAT, r.shown, "label %.0f of row %ld is outside 0..%d", v, i, QKD_DATA_MAX_CLASSES - 1);
    }
    out[i] = (int)v;
    if (out[i] > *max_label) *max_label = out[i];
  }
  qkd_npy_free(&a);
  *y = out;
  return 0;
}

/* The features of split s: uint8 bytes as they are, float32 as they are, float64 rounded to
 * float32; every float must be finite. */
static int array_features(const char *src, int s, uint8_t **x, qkd_error *err) {
  qkd_npy a;
  array_ref r;
  *x = NULL;
  if (array_load(src, 2 * s, 0, &a, &r, err) != 0) return -1;
  long per = a.count / a.shape[0];
  if (a.type == QKD_NPY_F64) {
    float *f = malloc((size_t)a.count * sizeof(float) + 1);
    if (!f) { qkd_npy_free(&a); return qkd_fail(err, QKD_ERR_MEMORY, r.shown, "out of memory"); }
    const double *d = a.data;
    for (long i = 0; i < a.count; i++) f[i] = (float)d[i];
    qkd_npy_free(&a);
    a.data = f;
    a.type = QKD_NPY_F32;
  }
  if (a.type == QKD_NPY_F32) {
    const float *f = a.data;
    for (long i = 0; i < a.count; i++)
      if (!isfinite(f[i])) {
        const char *what = isnan(f[i]) ? "NaN" : "infinite";
        free(a.data);
        return qkd_fail(err, QKD_ERR_FORMAT, r.shown, "value %ld of row %ld is %s; features must be finite", i % per, i / per, what);
      }
  }
  *x = a.data;
  return 0;
}

/* The files of an array source with their sizes; 0 when src is not one. */
static int array_source_files(const char *src, qkd_data_file *files, int *n) {
  if (!is_npz_file(src) && !dir_has_arrays(src)) return 0;
  for (int k = 0; k < (is_npz_file(src) ? 1 : 4); k++) {
    array_ref r;
    array_ref_of(src, k, &r);
    qkd_data_file *f = &files[(*n)++];
    snprintf(f->path, sizeof f->path, "%.1000s", r.file);
    if (file_size(r.file, &f->size) != 0) f->size = -1;
  }
  return 1;
}

static int load_arrays(qkd_dataset *ds, const char *src, raw_split *tr, raw_split *te, int *n_classes, qkd_error *err) {
  int n[2], is_float, max_label = -1;
  if (array_headers(src, &ds->c, &ds->h, &ds->w, &is_float, n, err) != 0) return -1;
  ds->features = is_float ? QKD_DATA_F32 : QKD_DATA_U8;
  snprintf(ds->source, sizeof ds->source, "%s", src);
  raw_split *sp[2] = {tr, te};
  for (int s = 0; s < 2; s++) {
    if (array_labels(src, s, &sp[s]->y, &max_label, err) != 0 || array_features(src, s, &sp[s]->x, err) != 0) return -1;
    sp[s]->n = n[s];
  }
  *n_classes = max_label + 1;
  array_source_files(src, ds->files, &ds->n_files);
  return 0;
}

static int load_dir(qkd_dataset *ds, const char *dir, raw_split *tr, raw_split *te, int *n_classes, qkd_error *err) {
  *n_classes = FILE_LABELS;
  if (is_npz_file(dir) || dir_has_arrays(dir)) return load_arrays(ds, dir, tr, te, n_classes, err);
  snprintf(ds->source, sizeof ds->source, "%s", dir);
  if (dir_has_cifar(dir)) {
    ds->c = 3;
    ds->h = ds->w = 32;
    for (int i = 0; i < 5; i++) {
      char p[1200];
      path_join(p, sizeof p, dir, CIFAR_TRAIN[i], NULL);
      if (qkd_cifar_read(p, &tr->x, &tr->y, &tr->n, err) != 0) return -1;
      add_file(ds, p);
    }
    char p[1200];
    path_join(p, sizeof p, dir, "test_batch.bin", NULL);
    if (qkd_cifar_read(p, &te->x, &te->y, &te->n, err) != 0) return -1;
    add_file(ds, p);
    return 0;
  }
  if (dir_has_idx(dir)) {
    if (load_idx_pair(ds, dir, IDX_STEMS[0], IDX_STEMS[1], tr, err) != 0) return -1;
    return load_idx_pair(ds, dir, IDX_STEMS[2], IDX_STEMS[3], te, err);
  }
  if (!is_dir(dir))
    return qkd_fail(err, QKD_ERR_IO, dir, strchr(dir, '/') ? "no such directory"
                                                   : "no such directory (the named sources are \"mnist\", \"fashion-mnist\", \"cifar10\" and \"synthetic\")");
  return qkd_fail(err, QKD_ERR_IO, dir,
              "no data set here: expected train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
              "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] (IDX), data_batch_1..5.bin + "
              "test_batch.bin (CIFAR-10 binary) or x_train.npy, y_train.npy, x_test.npy, y_test.npy (NumPy arrays)");
}

/* Synthetic: every class k has a mean image m_k (pixels uniform in [48, 208)); an image of class
 * k is m_k + N(0, 40^2) per pixel, clamped to 0..255. Labels are uniform over the classes. All
 * draws are qkd_rng(seed, QKD_STREAM_DATA, ·) with disjoint counter ranges. */
static int make_synthetic(qkd_dataset *ds, const qkd_data_opts *o, raw_split *tr, raw_split *te, qkd_error *err) {
  int C = o->source_classes ? o->source_classes : 10;
  if (o->c < 1 || o->c > 4 || o->h < 1 || o->w < 1 || o->h > 1024 || o->w > 1024)
    return qkd_fail(err, QKD_ERR_INPUT, "synthetic", "shape [%d, %d, %d] is outside [1..4, 1..1024, 1..1024]", o->c, o->h, o->w);
  if (C < 2 || C > QKD_DATA_MAX_CLASSES) return qkd_fail(err, QKD_ERR_INPUT, "synthetic", "class count %d is outside 2..%d", C, QKD_DATA_MAX_CLASSES);
  ds->c = o->c;
  ds->h = o->h;
  ds->w = o->w;
  snprintf(ds->source, sizeof ds->source, "synthetic");
  size_t npix = (size_t)o->c * o->h * o->w;
  uint64_t seed = o->seed;
  float *means = malloc((size_t)C * npix * sizeof(float));
  if (!means) return qkd_fail(err, QKD_ERR_MEMORY, "synthetic", "out of memory");
  for (size_t i = 0; i < (size_t)C * npix; i++)
    means[i] = (float)(48.0 + 160.0 * qkd_rng_uniform(seed, QKD_STREAM_DATA, (1ull << 60) + i));
  raw_split *sp[2] = {tr, te};
  int counts[2] = {o->train_limit > 0 ? o->train_limit : 1000, o->test_limit > 0 ? o->test_limit : 200};
  for (int s = 0; s < 2; s++) {
    raw_split *r = sp[s];
    r->n = counts[s];
    r->x = malloc((size_t)r->n * npix);
    r->y = malloc((size_t)r->n * sizeof(int));
    if (!r->x || !r->y) { free(means); return qkd_fail(err, QKD_ERR_MEMORY, "synthetic", "out of memory"); }
    uint64_t base = (uint64_t)(s + 1) << 56;
    for (int i = 0; i < r->n; i++) {
      int k = (int)(qkd_rng_u64(seed, QKD_STREAM_DATA, (3ull << 60) + base + (uint64_t)i) % (uint64_t)C);
      r->y[i] = k;
      for (size_t p = 0; p < npix; p++) {
        double v = means[(size_t)k * npix + p] + 40.0 * qkd_rng_normal(seed, QKD_STREAM_DATA, base + (uint64_t)i * npix + p);
        r->x[(size_t)i * npix + p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
      }
    }
  }
  free(means);
  return 0;
}

/* classes -> per_class -> limit on one split; fills out (renumbered labels). */
static int filter_split(const raw_split *r, size_t item, const int *map, int C, int per_class, int limit,
                        qkd_split *out) {
  int *keep = malloc(((size_t)r->n + 1) * sizeof(int));
  int *seen = calloc((size_t)C, sizeof(int));
  if (!keep || !seen) { free(keep); free(seen); return -1; }
  int n = 0;
  for (int i = 0; i < r->n; i++) {
    int k = r->y[i] < QKD_DATA_MAX_CLASSES ? map[r->y[i]] : -1;
    if (k < 0) continue;
    if (per_class > 0 && seen[k] >= per_class) continue;
    if (limit > 0 && n >= limit) break;
    seen[k]++;
    keep[n++] = i;
  }
  free(seen);
  out->n = n;
  out->x = malloc((size_t)n * item + 1);
  out->y = malloc((size_t)n * sizeof(int) + 1);
  out->orig_index = malloc((size_t)n * sizeof(int) + 1);
  if (!out->x || !out->y || !out->orig_index) { free(keep); return -1; }
  for (int j = 0; j < n; j++) {
    memcpy(out->x + (size_t)j * item, r->x + (size_t)keep[j] * item, item);
    out->y[j] = map[r->y[keep[j]]];
    out->orig_index[j] = keep[j];
  }
  free(keep);
  return 0;
}

static void split_free(qkd_split *s) {
  free(s->x);
  free(s->y);
  free(s->orig_index);
  memset(s, 0, sizeof *s);
}

void qkd_data_free(qkd_dataset *ds) {
  split_free(&ds->train);
  split_free(&ds->val);
  split_free(&ds->test);
}

/* Moves `v` images chosen by a seeded partial Fisher–Yates draw from train into val; both keep
 * file order. */
static int hold_out(qkd_split *train, qkd_split *val, int v, uint64_t seed, size_t item) {
  int n = train->n;
  int *perm = malloc((size_t)n * sizeof(int) + 1);
  char *held = calloc((size_t)n + 1, 1);
  if (!perm || !held) { free(perm); free(held); return -1; }
  for (int i = 0; i < n; i++) perm[i] = i;
  for (int i = 0; i < v; i++) {
    int j = i + (int)(qkd_rng_u64(seed, QKD_STREAM_SPLIT, (uint64_t)i) % (uint64_t)(n - i));
    int t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
    held[perm[i]] = 1;
  }
  free(perm);
  qkd_split t = {0}, h = {0};
  t.n = n - v;
  h.n = v;
  t.x = malloc((size_t)t.n * item + 1); t.y = malloc((size_t)t.n * sizeof(int) + 1); t.orig_index = malloc((size_t)t.n * sizeof(int) + 1);
  h.x = malloc((size_t)h.n * item + 1); h.y = malloc((size_t)h.n * sizeof(int) + 1); h.orig_index = malloc((size_t)h.n * sizeof(int) + 1);
  if (!t.x || !t.y || !t.orig_index || !h.x || !h.y || !h.orig_index) {
    free(held); split_free(&t); split_free(&h);
    return -1;
  }
  int a = 0, b = 0;
  for (int i = 0; i < n; i++) {
    qkd_split *d = held[i] ? &h : &t;
    int j = held[i] ? b++ : a++;
    memcpy(d->x + (size_t)j * item, train->x + (size_t)i * item, item);
    d->y[j] = train->y[i];
    d->orig_index[j] = train->orig_index[i];
  }
  free(held);
  split_free(train);
  *train = t;
  *val = h;
  return 0;
}

int qkd_data_load(const qkd_data_opts *o, qkd_dataset *ds, qkd_error *err) {
  memset(ds, 0, sizeof *ds);
  const char *src = o->source ? o->source : "";
  raw_split tr = {0}, te = {0};
  int rc = -1, src_classes = FILE_LABELS;
  if (strcmp(src, "synthetic") == 0) {
    src_classes = o->source_classes ? o->source_classes : 10;
    if (make_synthetic(ds, o, &tr, &te, err) != 0) goto done;
  } else if (is_named(src) && !is_dir(src)) {
    char dir[1200];
    if (qkd_data_find(src, dir, sizeof dir, err) != 0) goto done;
    if (load_dir(ds, dir, &tr, &te, &src_classes, err) != 0) goto done;
  } else {
    if (load_dir(ds, src, &tr, &te, &src_classes, err) != 0) goto done;
  }
  /* classes: map original label -> new index */
  int map[QKD_DATA_MAX_CLASSES];
  for (int i = 0; i < QKD_DATA_MAX_CLASSES; i++) map[i] = -1;
  int C;
  if (o->n_classes > 0) {
    C = o->n_classes;
    for (int i = 0; i < C; i++) {
      int k = o->classes[i];
      if (k < 0 || k >= src_classes) { qkd_fail(err, QKD_ERR_INPUT, src, "class %d is outside the source's labels 0..%d", k, src_classes - 1); goto done; }
      if (map[k] >= 0) { qkd_fail(err, QKD_ERR_INPUT, src, "class %d is listed twice", k); goto done; }
      map[k] = i;
    }
  } else {
    C = src_classes;
    for (int i = 0; i < C; i++) map[i] = i;
  }
  ds->n_classes = C;
  ds->source_classes = src_classes;
  size_t item = qkd_data_item_bytes(ds);
  if (o->per_class < 0 || o->train_limit < 0 || o->test_limit < 0 || o->validation < 0) {
    qkd_fail(err, QKD_ERR_INPUT, src, "per_class, limits and validation must not be negative");
    goto done;
  }
  if (filter_split(&tr, item, map, C, o->per_class, o->train_limit, &ds->train) != 0 ||
      filter_split(&te, item, map, C, o->per_class, o->test_limit, &ds->test) != 0) {
    qkd_fail(err, QKD_ERR_MEMORY, src, "out of memory");
    goto done;
  }
  if (ds->train.n == 0 || ds->test.n == 0) {
    qkd_fail(err, QKD_ERR_INPUT, src, "no %s images left after selecting classes", ds->train.n == 0 ? "training" : "test");
    goto done;
  }
  if (o->validation > 0) {
    if (o->validation >= ds->train.n) {
      qkd_fail(err, QKD_ERR_INPUT, src, "validation %d must be smaller than the %d training images", o->validation, ds->train.n);
      goto done;
    }
    if (hold_out(&ds->train, &ds->val, o->validation, o->seed, item) != 0) { qkd_fail(err, QKD_ERR_MEMORY, src, "out of memory"); goto done; }
  }
  int fl = ds->features == QKD_DATA_F32;
  for (int c = 0; c < ds->c; c++) {
    ds->mean[c] = 0.0f;
    ds->inv_std[c] = fl ? 1.0f : 1.0f / 255.0f; /* scale: unit divides only bytes by 255 */
  }
  if (o->scale == QKD_DATA_SCALE_STANDARD) {
    size_t plane = (size_t)ds->h * ds->w;
    for (int c = 0; c < ds->c; c++) {
      double s = 0, s2 = 0;
      for (int i = 0; i < ds->train.n; i++) {
        const uint8_t *p = ds->train.x + (size_t)i * item + (size_t)c * plane * (fl ? sizeof(float) : 1);
        if (fl) {
          const float *q = (const float *)(const void *)p;
          for (size_t j = 0; j < plane; j++) { s += q[j]; s2 += (double)q[j] * q[j]; }
          continue;
        }
        unsigned long long a = 0, a2 = 0; /* bytes: exact integer sums */
        for (size_t j = 0; j < plane; j++) { a += p[j]; a2 += (unsigned)p[j] * p[j]; }
        s += (double)a;
        s2 += (double)a2;
      }
      double cnt = (double)ds->train.n * (double)plane;
      double mean = s / cnt, var = s2 / cnt - mean * mean;
      double sd = var > 0 ? sqrt(var) : 0.0;
      ds->mean[c] = (float)mean;
      ds->inv_std[c] = sd > 1e-6 ? (float)(1.0 / sd) : 1.0f;
    }
  }
  rc = 0;
done:
  raw_free(&tr);
  raw_free(&te);
  if (rc != 0) qkd_data_free(ds);
  return rc;
}

size_t qkd_data_item_bytes(const qkd_dataset *ds) {
  return (size_t)ds->c * ds->h * ds->w * (ds->features == QKD_DATA_F32 ? sizeof(float) : 1);
}

void qkd_data_batch(const qkd_dataset *ds, const qkd_split *split, const int *idx, int n, float *x, int *y) {
  size_t plane = (size_t)ds->h * ds->w, npix = plane * (size_t)ds->c, item = qkd_data_item_bytes(ds);
  for (int i = 0; i < n; i++) {
    int s = idx ? idx[i] : i;
    const uint8_t *p = split->x + (size_t)s * item;
    float *o = x + (size_t)i * npix;
    for (int c = 0; c < ds->c; c++) {
      float m = ds->mean[c], k = ds->inv_std[c];
      float *oc = o + (size_t)c * plane;
      if (ds->features == QKD_DATA_F32) {
        const float *pc = (const float *)(const void *)p + (size_t)c * plane;
        for (size_t j = 0; j < plane; j++) oc[j] = (pc[j] - m) * k;
      } else {
        const uint8_t *pc = p + (size_t)c * plane;
        for (size_t j = 0; j < plane; j++) oc[j] = ((float)pc[j] - m) * k;
      }
    }
    if (y) y[i] = split->y[s];
  }
}

void qkd_data_augment(float *x, int n, int c, int h, int w, const int *idx, int crop_pad, int flip, uint64_t seed,
                      uint64_t epoch) {
  long plane = (long)h * w;
  for (int i = 0; i < n; i++) {
    uint64_t r = qkd_rng_u64(seed, QKD_STREAM_AUGMENT, (epoch << 32) + (uint64_t)idx[i]);
    int span = 2 * crop_pad + 1;
    int dy = crop_pad ? (int)(r % (uint64_t)span) - crop_pad : 0;
    int dx = crop_pad ? (int)((r >> 20) % (uint64_t)span) - crop_pad : 0;
    int mirror = flip && ((r >> 40) & 1);
    for (int ch = 0; ch < c; ch++) {
      float *pl = x + ((long)i * c + ch) * plane;
      if (dy || dx) {
        /* row oi reads row oi + dy: ascending when dy > 0, descending otherwise, so every row is
         * read before it is overwritten; memmove shifts within a row */
        int lo = dx > 0 ? dx : 0, keep = w - (dx > 0 ? dx : -dx), at = dx < 0 ? -dx : 0;
        for (int k = 0; k < h; k++) {
          int oi = dy > 0 ? k : h - 1 - k, ii = oi + dy;
          float *row = pl + (long)oi * w;
          if (ii < 0 || ii >= h || keep <= 0) {
            memset(row, 0, sizeof(float) * (size_t)w);
            continue;
          }
          memmove(row + at, pl + (long)ii * w + lo, sizeof(float) * (size_t)keep);
          if (at) memset(row, 0, sizeof(float) * (size_t)at);
          if (at + keep < w) memset(row + at + keep, 0, sizeof(float) * (size_t)(w - at - keep));
        }
      }
      if (mirror)
        for (int k = 0; k < h; k++) {
          float *row = pl + (long)k * w;
          for (int j = 0; j < w / 2; j++) {
            float t = row[j];
            row[j] = row[w - 1 - j];
            row[w - 1 - j] = t;
          }
        }
    }
  }
}

/* ---------------------------------------------------------------------------------- probe */

static int idx_header(const char *path, int want_ndim, int d[3], qkd_error *err) {
  gzFile g = gzopen(path, "rb");
  if (!g) return qkd_fail(err, QKD_ERR_IO, path, "cannot open: %s", strerror(errno));
  uint8_t h[16];
  char why[GZ_WHY] = "";
  long long got = gz_read_all(g, h, 4 + 4u * (unsigned)want_ndim, why);
  gzclose(g);
  if (got < 0) return qkd_fail(err, QKD_ERR_FORMAT, path, "corrupt gzip data: %s", why);
  if (got < 4 + 4 * want_ndim) return qkd_fail(err, QKD_ERR_FORMAT, path, "truncated inside the IDX header");
  if (h[0] || h[1] || h[2] != 8 || h[3] != want_ndim)
    return qkd_fail(err, QKD_ERR_FORMAT, path, "not an unsigned-byte IDX file of %d dimensions", want_ndim);
  for (int i = 0; i < want_ndim; i++) {
    const uint8_t *p = h + 4 + 4 * i;
    unsigned long v = (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
    if (v == 0 || v > INT_MAX || (i > 0 && v > IDX_MAX_SIDE)) return qkd_fail(err, QKD_ERR_FORMAT, path, "implausible size %lu in the header", v);
    d[i] = (int)v;
  }
  return 0;
}

int qkd_data_probe(const char *source, int *c, int *h, int *w, int *n_classes, int *n_train, int *n_test,
                   qkd_error *err) {
  *n_classes = FILE_LABELS;
  if (is_named(source) && !is_dir(source)) {
    int cifar = strcmp(source, "cifar10") == 0;
    *c = cifar ? 3 : 1;
    *h = *w = cifar ? 32 : 28;
    *n_train = cifar ? 50000 : 60000;
    *n_test = 10000;
    return 0;
  }
  if (is_npz_file(source) || dir_has_arrays(source)) {
    int n[2], is_float, max_label = -1;
    if (array_headers(source, c, h, w, &is_float, n, err) != 0) return -1;
    for (int s = 0; s < 2; s++) { /* the labels (not the features): their range is the class count */
      int *y;
      if (array_labels(source, s, &y, &max_label, err) != 0) return -1;
      free(y);
    }
    *n_classes = max_label + 1;
    *n_train = n[0];
    *n_test = n[1];
    return 0;
  }
  if (dir_has_cifar(source)) {
    *c = 3;
    *h = *w = 32;
    *n_train = 0;
    for (int i = 0; i < 6; i++) {
      char p[1200];
      long long sz;
      path_join(p, sizeof p, source, i < 5 ? CIFAR_TRAIN[i] : "test_batch.bin", NULL);
      if (file_size(p, &sz) != 0) return qkd_fail(err, QKD_ERR_IO, p, "missing");
      if (sz == 0 || sz % CIFAR_RECORD) return qkd_fail(err, QKD_ERR_FORMAT, p, "size %lld is not a whole number of 3073-byte CIFAR-10 records", sz);
      if (i < 5) *n_train += (int)(sz / CIFAR_RECORD);
      else *n_test = (int)(sz / CIFAR_RECORD);
    }
    return 0;
  }
  if (dir_has_idx(source)) {
    char p[1200];
    int d[3] = {0, 0, 0}, e[3] = {0, 0, 0};
    for (int s = 0; s < 2; s++) {
      if (find_idx(source, IDX_STEMS[2 * s], p, sizeof p) != 0) return qkd_fail(err, QKD_ERR_IO, p, "missing");
      if (idx_header(p, 3, d, err) != 0) return -1;
      if (find_idx(source, IDX_STEMS[2 * s + 1], p, sizeof p) != 0) return qkd_fail(err, QKD_ERR_IO, p, "missing");
      if (idx_header(p, 1, e, err) != 0) return -1;
      if (e[0] != d[0]) return qkd_fail(err, QKD_ERR_FORMAT, p, "holds %d labels but the images file holds %d images", e[0], d[0]);
      if (s == 0) { *n_train = d[0]; *h = d[1]; *w = d[2]; }
      else *n_test = d[0];
    }
    *c = 1;
    return 0;
  }
  return qkd_fail(err, QKD_ERR_IO, source, is_dir(source) ? "no IDX, CIFAR-10 or NumPy (x_train.npy …) files here" : "no such directory");
}
