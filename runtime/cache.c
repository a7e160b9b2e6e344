/* cache.c — the teacher weights cache of qkd_teacher.h: key, atomic save, verified load. */
#include "qkd_teacher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qkd_hash.h"

static uint64_t h_i64(uint64_t h, int64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)v >> (8 * i));
  return qkd_hash_fnv(h, b, 8);
}
static uint64_t h_f64(uint64_t h, double v) {
  int64_t bits;
  memcpy(&bits, &v, 8);
  return h_i64(h, bits);
}
static uint64_t h_str(uint64_t h, const char *s) {
  s = s ? s : "";
  h = h_i64(h, (int64_t)strlen(s));
  return qkd_hash_fnv(h, s, strlen(s));
}

static uint64_t h_net(uint64_t h, const qkd_net_spec *n) {
  h = h_i64(h, n->n_members);
  for (int i = 0; i < n->n_members; i++) h = h_net(h, &n->members[i]);
  h = h_i64(h, n->n_layers);
  for (int i = 0; i < n->n_layers; i++) {
    const qkd_layer_spec *l = &n->layers[i];
    h = h_i64(h, l->kind);
    h = h_i64(h, l->units);
    h = h_i64(h, l->kernel);
    h = h_i64(h, l->stride);
    h = h_i64(h, l->padding);
    h = h_f64(h, l->value);
  }
  return h;
}

uint64_t qkd_cache_key(const qkd_net_spec *net, qkd_shape in, const qkd_recipe *r, const qkd_data_opts *o,
                       const qkd_dataset *ds) {
  uint64_t h = h_str(QKD_HASH_FNV_OFFSET, "qkd teacher weights");
  h = h_i64(h, QKD_CACHE_VERSION);
  h = h_net(h, net);
  h = h_i64(h, in.c); h = h_i64(h, in.h); h = h_i64(h, in.w); h = h_i64(h, in.flat);
  h = h_i64(h, r->optimizer);
  h = h_f64(h, r->lr); h = h_f64(h, r->beta1); h = h_f64(h, r->beta2); h = h_f64(h, r->momentum);
  h = h_i64(h, r->epochs); h = h_i64(h, r->batch); h = h_i64(h, (int64_t)r->seed);
  if (o) {
    h = h_str(h, o->source);
    h = h_i64(h, o->n_classes);
    for (int i = 0; i < o->n_classes; i++) h = h_i64(h, o->classes[i]);
    h = h_i64(h, o->per_class); h = h_i64(h, o->train_limit); h = h_i64(h, o->test_limit);
    h = h_i64(h, o->validation); h = h_i64(h, o->scale); h = h_i64(h, (int64_t)o->seed);
    h = h_i64(h, o->c); h = h_i64(h, o->h); h = h_i64(h, o->w); h = h_i64(h, o->source_classes);
  }
  if (ds) {
    h = h_i64(h, ds->n_classes);
    h = h_i64(h, ds->train.n); h = h_i64(h, ds->val.n); h = h_i64(h, ds->test.n);
    h = h_i64(h, ds->n_files);
    for (int i = 0; i < ds->n_files; i++) {
      const char *base = strrchr(ds->files[i].path, '/');
      h = h_str(h, base ? base + 1 : ds->files[i].path);
      h = h_i64(h, ds->files[i].size);
    }
  }
  return h;
}

static int fail(char *err, size_t errlen, const char *path, const char *fmt, const char *detail) {
  char msg[512];
  snprintf(msg, sizeof msg, fmt, detail ? detail : "");
  snprintf(err, errlen, "%s: error: %s", path, msg);
  return -1;
}

static void put_u32(unsigned char *b, uint32_t v) { for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i)); }
static void put_u64(unsigned char *b, uint64_t v) { for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i)); }
static uint32_t get_u32(const unsigned char *b) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | b[i]; return v; }
static uint64_t get_u64(const unsigned char *b) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | b[i]; return v; }

#define HEADER 28 /* magic 4, version 4, key 8, n 8, epochs 4 */

int qkd_cache_save(const char *path, uint64_t key, const float *params, long n, const double *acc, int epochs,
                   char *err, size_t errlen) {
  size_t len = HEADER + 8 * (size_t)epochs + 4 * (size_t)n + 8;
  unsigned char *b = malloc(len);
  if (!b) return fail(err, errlen, path, "out of memory writing the cache%s", NULL);
  memcpy(b, "QKDW", 4);
  put_u32(b + 4, QKD_CACHE_VERSION);
  put_u64(b + 8, key);
  put_u64(b + 16, (uint64_t)n);
  put_u32(b + 24, (uint32_t)epochs);
  size_t off = HEADER;
  for (int e = 0; e < epochs; e++, off += 8) {
    uint64_t bits;
    memcpy(&bits, &acc[e], 8);
    put_u64(b + off, bits);
  }
  for (long i = 0; i < n; i++, off += 4) {
    uint32_t bits;
    memcpy(&bits, &params[i], 4);
    put_u32(b + off, bits);
  }
  put_u64(b + off, qkd_hash_fnv(QKD_HASH_FNV_OFFSET, b, off));
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%.4000s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) { free(b); return fail(err, errlen, path, "cannot write the cache: %s", strerror(errno)); }
  size_t w = fwrite(b, 1, len, f);
  free(b);
  int bad = w != len;
  bad |= fflush(f) != 0;
  bad |= fsync(fileno(f)) != 0;
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    return fail(err, errlen, path, "cannot write the cache: %s", strerror(e));
  }
  return 0;
}

int qkd_cache_load(const char *path, uint64_t key, float *params, long n, double *acc, int epochs, char *err,
                   size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) return fail(err, errlen, path, "cannot read the cache: %s", strerror(errno));
  size_t want = HEADER + 8 * (size_t)epochs + 4 * (size_t)n + 8;
  unsigned char *b = malloc(want + 1);
  if (!b) { fclose(f); return fail(err, errlen, path, "out of memory reading the cache%s", NULL); }
  size_t got = fread(b, 1, want + 1, f);
  fclose(f);
  int rc = -1;
  if (got < HEADER || memcmp(b, "QKDW", 4) != 0) fail(err, errlen, path, "not a qkd weights cache%s", NULL);
  else if (get_u32(b + 4) != QKD_CACHE_VERSION) fail(err, errlen, path, "cache format version differs%s", NULL);
  else if (get_u64(b + 8) != key) fail(err, errlen, path, "cache key differs (the net, recipe, seed or data changed)%s", NULL);
  else if (get_u64(b + 16) != (uint64_t)n || get_u32(b + 24) != (uint32_t)epochs) fail(err, errlen, path, "cache holds another parameter or epoch count%s", NULL);
  else if (got != want) fail(err, errlen, path, "cache file has the wrong length (torn or padded)%s", NULL);
  else if (get_u64(b + want - 8) != qkd_hash_fnv(QKD_HASH_FNV_OFFSET, b, want - 8)) fail(err, errlen, path, "cache checksum failure (corrupted)%s", NULL);
  else {
    size_t off = HEADER;
    for (int e = 0; e < epochs; e++, off += 8) {
      uint64_t bits = get_u64(b + off);
      memcpy(&acc[e], &bits, 8);
    }
    for (long i = 0; i < n; i++, off += 4) {
      uint32_t bits = get_u32(b + off);
      memcpy(&params[i], &bits, 4);
    }
    rc = 0;
  }
  free(b);
  return rc;
}
