/* cache.c — the teacher weights cache of qkd_teacher.h: key, atomic save, verified load. */
#include "qkd_teacher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkd_err.h"
#include "qkd_file.h"
#include "qkd_hash.h"

static uint64_t h_i64(uint64_t h, int64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)v >> (8 * i));
  return qkd_hash_bytes(h, b, 8);
}
static uint64_t h_f64(uint64_t h, double v) {
  int64_t bits;
  memcpy(&bits, &v, 8);
  return h_i64(h, bits);
}
static uint64_t h_str(uint64_t h, const char *s) {
  s = s ? s : "";
  h = h_i64(h, (int64_t)strlen(s));
  return qkd_hash_bytes(h, s, strlen(s));
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
  uint64_t h = h_str(QKD_HASH_INIT, "qkd teacher weights");
  h = h_i64(h, QKD_CACHE_VERSION);
  h = h_net(h, net);
  h = h_i64(h, in.c); h = h_i64(h, in.h); h = h_i64(h, in.w); h = h_i64(h, in.flat);
  h = h_i64(h, r->optimizer);
  h = h_f64(h, r->lr); h = h_f64(h, r->beta1); h = h_f64(h, r->beta2); h = h_f64(h, r->momentum);
  h = h_i64(h, r->epochs); h = h_i64(h, r->batch); h = h_i64(h, (int64_t)r->seed);
  h = h_i64(h, net->fit.crop_pad); h = h_i64(h, net->fit.flip); h = h_i64(h, net->fit.schedule);
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

static void put_u32(unsigned char *b, uint32_t v) { for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i)); }
static void put_u64(unsigned char *b, uint64_t v) { for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i)); }
static uint32_t get_u32(const unsigned char *b) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | b[i]; return v; }
static uint64_t get_u64(const unsigned char *b) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | b[i]; return v; }

#define HEADER 36 /* magic 4, version 4, key 8, n 8, n_state 8, epochs 4 */

static void put_floats(unsigned char *b, const float *v, long n) {
  for (long i = 0; i < n; i++) {
    uint32_t bits;
    memcpy(&bits, &v[i], 4);
    put_u32(b + 4 * i, bits);
  }
}

static void get_floats(const unsigned char *b, float *v, long n) {
  for (long i = 0; i < n; i++) {
    uint32_t bits = get_u32(b + 4 * i);
    memcpy(&v[i], &bits, 4);
  }
}

int qkd_cache_save(const char *path, uint64_t key, const float *params, long n, const float *state, long n_state,
                   const double *acc, int epochs, qkd_error *err) {
  size_t len = HEADER + 8 * (size_t)epochs + 4 * (size_t)(n + n_state) + 8;
  unsigned char *b = malloc(len);
  if (!b) return qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory writing the cache");
  memcpy(b, "QKDW", 4);
  put_u32(b + 4, QKD_CACHE_VERSION);
  put_u64(b + 8, key);
  put_u64(b + 16, (uint64_t)n);
  put_u64(b + 24, (uint64_t)n_state);
  put_u32(b + 32, (uint32_t)epochs);
  size_t off = HEADER;
  for (int e = 0; e < epochs; e++, off += 8) {
    uint64_t bits;
    memcpy(&bits, &acc[e], 8);
    put_u64(b + off, bits);
  }
  put_floats(b + off, params, n);
  off += 4 * (size_t)n;
  put_floats(b + off, state, n_state);
  off += 4 * (size_t)n_state;
  put_u64(b + off, qkd_hash_bytes(QKD_HASH_INIT, b, off));
  int rc = qkd_file_write_bytes(path, b, len, err);
  free(b);
  return rc;
}

int qkd_cache_load(const char *path, uint64_t key, float *params, long n, float *state, long n_state, double *acc,
                   int epochs, qkd_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return qkd_fail(err, QKD_ERR_IO, path, "cannot read the cache: %s", strerror(errno));
  size_t want = HEADER + 8 * (size_t)epochs + 4 * (size_t)(n + n_state) + 8;
  unsigned char *b = malloc(want + 1);
  if (!b) { fclose(f); return qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory reading the cache"); }
  size_t got = fread(b, 1, want + 1, f);
  fclose(f);
  int rc = -1;
  if (got < HEADER || memcmp(b, "QKDW", 4) != 0) qkd_fail(err, QKD_ERR_FORMAT, path, "not a qkd weights cache");
  else if (get_u32(b + 4) != QKD_CACHE_VERSION) qkd_fail(err, QKD_ERR_FORMAT, path, "cache format version differs");
  else if (get_u64(b + 8) != key) qkd_fail(err, QKD_ERR_FORMAT, path, "cache key differs (the net, recipe, seed or data changed)");
  else if (get_u64(b + 16) != (uint64_t)n || get_u64(b + 24) != (uint64_t)n_state || get_u32(b + 32) != (uint32_t)epochs)
    qkd_fail(err, QKD_ERR_FORMAT, path, "cache holds another parameter, state or epoch count");
  else if (got != want) qkd_fail(err, QKD_ERR_FORMAT, path, "cache file has the wrong length (torn or padded)");
  else if (get_u64(b + want - 8) != qkd_hash_bytes(QKD_HASH_INIT, b, want - 8)) qkd_fail(err, QKD_ERR_FORMAT, path, "cache checksum failure (corrupted)");
  else {
    size_t off = HEADER;
    for (int e = 0; e < epochs; e++, off += 8) {
      uint64_t bits = get_u64(b + off);
      memcpy(&acc[e], &bits, 8);
    }
    get_floats(b + off, params, n);
    get_floats(b + off + 4 * (size_t)n, state, n_state);
    rc = 0;
  }
  free(b);
  return rc;
}
