/* jit_cache.c — the on-disk kernel object cache (jit_cache.h). */
#include "jit_cache.h"
#include "jit.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <llvm-c/Core.h>

#include "qkd_file.h"
#include "qkd_hash.h"

#define MAGIC "QKDKO1\n"
#define SUFFIX ".qko"
#define MAX_ENTRY ((size_t)1 << 30)

const char *qkd_jit_cache_dir(void) {
  static char buf[4096];
  const char *d = getenv("QKD_CACHE_DIR");
  if (d) return *d && strcmp(d, "off") != 0 ? d : NULL;
  const char *x = getenv("XDG_CACHE_HOME");
  const char *h = getenv("HOME");
  int n;
  if (x && *x) n = snprintf(buf, sizeof buf, "%s/qkd/kernels", x);
  else if (h && *h) n = snprintf(buf, sizeof buf, "%s/.cache/qkd/kernels", h);
  else return NULL;
  return n > 0 && (size_t)n < sizeof buf ? buf : NULL;
}

char *jit_cache_key(const qkd_ir_circuit *ir, const jit_gen_cfg *cfg, const char *cpu,
                    const char *features, size_t *len) {
  char *s = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&s, &n);
  if (!f) return NULL;
  unsigned maj, min, pat;
  LLVMGetVersion(&maj, &min, &pat);
  fprintf(f, "qkd kernel object\nqkdc %s\nllvm %u.%u.%u\ncpu %s\nfeatures %s\n", QKD_VERSION, maj, min,
          pat, cpu, features);
  fprintf(f, "cfg %s %d %d %u %d %d %d %d\n", cfg->prefix, cfg->precisions, cfg->vbytes, cfg->opts, cfg->scratch,
          cfg->parts, cfg->block, cfg->fma);
  fprintf(f, "circuit %d %d %d %d %d %d %d %d\n", ir->n_qubits, ir->n_params, ir->n_features,
          (int)ir->encode, (int)ir->measure, ir->shots, ir->n_gates, ir->n_encoding_gates);
  for (int i = 0; i < ir->n_gates; i++) {
    const qkd_ir_gate *g = &ir->gates[i];
    fprintf(f, "%d %d %d", (int)g->kind, g->q[0], g->q[1]);
    for (int a = 0; a < QKD_GATE_MAX_ANGLES; a++)
      fprintf(f, " %d %d %a %a", (int)g->angle[a].kind, g->angle[a].index, g->angle[a].scale, g->angle[a].offset);
    fputc('\n', f);
  }
  if (fclose(f) != 0) { free(s); return NULL; }
  *len = n;
  return s;
}

/* DIR/<hash of key>.qko, malloc'd. */
static char *entry_path(const char *dir, const char *key, size_t key_len) {
  char name[32];
  snprintf(name, sizeof name, "%016" PRIx64 SUFFIX, qkd_hash_bytes(QKD_HASH_INIT, key, key_len));
  return qkd_file_join(dir, name);
}

static uint64_t checksum(const void *key, size_t key_len, const void *obj, size_t obj_len) {
  return qkd_hash_bytes(qkd_hash_bytes(QKD_HASH_INIT, key, key_len), obj, obj_len);
}

void *jit_cache_load(const char *dir, const char *key, size_t key_len, size_t *obj_len) {
  char *path = entry_path(dir, key, key_len);
  if (!path) return NULL;
  struct stat st;
  if (stat(path, &st) != 0) { free(path); return NULL; } /* a miss */
  qkd_error err;
  size_t len = 0;
  char *b = qkd_file_read(path, MAX_ENTRY, &len, &err);
  void *obj = NULL;
  const char *why = NULL;
  if (!b) {
    why = err.msg;
  } else {
    size_t ml = strlen(MAGIC), kl = 0, ol = 0;
    uint64_t sum = 0;
    int used = 0;
    if (len < ml || memcmp(b, MAGIC, ml) != 0) why = "not a qkd kernel cache entry";
    else if (sscanf(b + ml, "%zu %zu %16" SCNx64 "\n%n", &kl, &ol, &sum, &used) != 3 || used == 0)
      why = "bad header";
    else if (ml + (size_t)used + kl + ol != len || kl > len || ol > len) why = "truncated";
    else {
      const char *k = b + ml + used, *o = k + kl;
      if (checksum(k, kl, o, ol) != sum) why = "checksum mismatch";
      else if (kl == key_len && memcmp(k, key, kl) == 0 && (obj = malloc(ol ? ol : 1))) {
        memcpy(obj, o, ol);
        *obj_len = ol;
        utimensat(AT_FDCWD, path, NULL, 0); /* most recently used */
      }
      /* another key with the same hash: a miss; the store will replace it */
    }
  }
  if (why) {
    fprintf(stderr, "qkdc: warning: %s: corrupt kernel cache entry (%s); removed, recompiling\n", path, why);
    unlink(path);
  }
  free(b);
  free(path);
  return obj;
}

typedef struct {
  const char *key;
  size_t key_len;
  const void *obj;
  size_t obj_len;
} entry;

static int emit_entry(FILE *f, const void *ctx) {
  const entry *e = ctx;
  fputs(MAGIC, f);
  fprintf(f, "%zu %zu %016" PRIx64 "\n", e->key_len, e->obj_len, checksum(e->key, e->key_len, e->obj, e->obj_len));
  fwrite(e->key, 1, e->key_len, f);
  fwrite(e->obj, 1, e->obj_len, f);
  return ferror(f) ? -1 : 0;
}

typedef struct {
  char *name;
  off_t size;
  struct timespec mtime;
} file_info;

static int by_age(const void *a, const void *b) {
  const file_info *x = a, *y = b;
  if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
  if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* QKD_CACHE_MAX_MB (a number ≥ 0, fractions allowed), else 256 MB. */
static long long max_bytes(void) {
  const char *s = getenv("QKD_CACHE_MAX_MB");
  char *end = NULL;
  double mb = s && *s ? strtod(s, &end) : 256;
  if (!s || !*s || *end || !(mb >= 0) || mb > 1e9) mb = 256;
  return (long long)(mb * 1024 * 1024);
}

/* Removes least recently used entries until the directory's entries fit the bound, and stale
 * temporary files. Races with other processes are harmless: a removed entry is a later miss. */
static void trim(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  file_info *v = NULL;
  size_t n = 0, cap = 0;
  long long total = 0;
  time_t now = time(NULL);
  struct dirent *de;
  while ((de = readdir(d))) {
    const char *nm = de->d_name;
    size_t l = strlen(nm);
    int is_entry = l > strlen(SUFFIX) && strcmp(nm + l - strlen(SUFFIX), SUFFIX) == 0;
    int is_tmp = strstr(nm, SUFFIX ".tmp.") != NULL;
    if (!is_entry && !is_tmp) continue;
    char *p = qkd_file_join(dir, nm);
    struct stat st;
    if (!p || stat(p, &st) != 0) { free(p); continue; }
    if (is_tmp) {
      if (now - st.st_mtime > 86400) unlink(p);
      free(p);
      continue;
    }
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      file_info *nv = realloc(v, cap * sizeof *v);
      if (!nv) { free(p); break; }
      v = nv;
    }
    v[n++] = (file_info){p, st.st_size, st.st_mtim};
    total += st.st_size;
  }
  closedir(d);
  long long lim = max_bytes();
  if (total > lim) {
    qsort(v, n, sizeof *v, by_age);
    for (size_t i = 0; i < n && total > lim; i++)
      if (unlink(v[i].name) == 0) total -= v[i].size;
  }
  for (size_t i = 0; i < n; i++) free(v[i].name);
  free(v);
}

void jit_cache_store(const char *dir, const char *key, size_t key_len, const void *obj, size_t obj_len) {
  static int warned;
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  char *path = entry_path(dir, key, key_len);
  if (!path) return;
  entry e = {key, key_len, obj, obj_len};
  qkd_error err;
  if (qkd_file_write_atomic(path, emit_entry, &e, &err) != 0) {
    pthread_mutex_lock(&mu);
    if (!warned) {
      warned = 1;
      fprintf(stderr, "qkdc: warning: kernel cache %s: %s; compiling without the cache (set QKD_CACHE_DIR, or --no-cache)\n",
              dir, err.msg);
    }
    pthread_mutex_unlock(&mu);
  } else {
    trim(dir);
  }
  free(path);
}
