/* test_jit_cache.c — the JIT's on-disk object cache (compiler/jit_cache.h via qkd_jit_options):
 * a miss compiles and stores one entry per precision; a hit links the stored object (no compile)
 * and gives bit-identical outputs and gradients, which agree with the interpreter; any change of
 * the circuit (one ulp of an angle) is a miss; corrupt, truncated and foreign entries are misses
 * (corrupt ones warned about and replaced); the size bound removes the least recently used
 * entries; an unwritable directory compiles without the cache; threads and processes that share
 * a directory all get working kernels and leave valid entries; stale temporary files go.
 * Entries are stored by the background O2 tier: compile() and run() wait for it (qkd_jit_wait). */
#include "circgen.h"
#include "jit.h"
#include "qkd_rng.h"
#include "qsim.h"
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH 13
#define PARTS 2 /* entries per precision: the forward and the backward entry points */

static char root[512];

static void *xcalloc(size_t n) {
  void *p = calloc(n ? n : 1, 1);
  if (!p) abort();
  return p;
}

/* Entries (*.qko) in dir; their names into names[] (up to 16) when not NULL. */
static int entries(const char *dir, char names[][256]) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t l = strlen(de->d_name);
    if (l > 4 && strcmp(de->d_name + l - 4, ".qko") == 0) {
      if (names && n < 16) snprintf(names[n], 256, "%s", de->d_name);
      n++;
    }
  }
  closedir(d);
  return n;
}

static int count_files(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d))) n += de->d_name[0] != '.';
  closedir(d);
  return n;
}

typedef struct {
  double *out, *dp, *dx;
  float *out32;
} results;

/* Forward and backward (f64), forward f32, through k on fixed inputs. */
static results run(const qkd_kernel *k, const qkd_ir_circuit *c, int with_f32) {
  int np = c->n_params, nf = c->n_features, no = qkd_ir_outputs(c);
  double *params = xcalloc((size_t)(np + 1) * 8), *feat = xcalloc((size_t)BATCH * (size_t)(nf + 1) * 8);
  circgen_inputs(c, 4242, BATCH, params, feat);
  results r = {xcalloc((size_t)BATCH * no * 8), xcalloc((size_t)(np + 1) * 8), xcalloc((size_t)BATCH * (nf + 1) * 8), NULL};
  double *dout = xcalloc((size_t)BATCH * no * 8);
  for (int i = 0; i < BATCH * no; i++) dout[i] = 2 * qkd_rng_uniform(9, 1, (uint64_t)i) - 1;
  void *ws = xcalloc(qkd_kernel_workspace_bytes(c));
  k->fwd_f64(k, params, feat, BATCH, 1, 0, r.out, ws);
  k->bwd_f64(k, params, feat, BATCH, dout, r.dp, nf ? r.dx : NULL, ws);
  if (with_f32) {
    float *p32 = xcalloc((size_t)(np + 1) * 4), *x32 = xcalloc((size_t)BATCH * (nf + 1) * 4);
    for (int i = 0; i < np; i++) p32[i] = (float)params[i];
    for (int i = 0; i < BATCH * nf; i++) x32[i] = (float)feat[i];
    r.out32 = xcalloc((size_t)BATCH * no * 4);
    k->fwd_f32(k, p32, x32, BATCH, 1, 0, r.out32, ws);
    free(p32);
    free(x32);
  }
  qkd_jit_wait(k); /* a lazily compiled f32 has stored its O2 objects */
  free(params); free(feat); free(dout); free(ws);
  return r;
}

static void free_results(results *r) { free(r->out); free(r->dp); free(r->dx); free(r->out32); }

static int same(const results *a, const results *b, const qkd_ir_circuit *c) {
  size_t no = (size_t)BATCH * qkd_ir_outputs(c);
  int ok = memcmp(a->out, b->out, no * 8) == 0 && memcmp(a->dp, b->dp, (size_t)c->n_params * 8) == 0 &&
           memcmp(a->dx, b->dx, (size_t)BATCH * c->n_features * 8) == 0;
  if (a->out32 && b->out32) ok = ok && memcmp(a->out32, b->out32, no * 4) == 0;
  return ok;
}

/* Outputs and parameter gradient of the JIT against the interpreter (an independent engine). */
static void check_against_interpreter(const results *r, const qkd_ir_circuit *c) {
  qkd_kernel ki = qkd_qsim_kernel(c);
  results ri = run(&ki, c, 0);
  size_t no = (size_t)BATCH * qkd_ir_outputs(c);
  double m = 0;
  for (size_t i = 0; i < no; i++) m = fmax(m, fabs(r->out[i] - ri.out[i]));
  for (int i = 0; i < c->n_params; i++) m = fmax(m, fabs(r->dp[i] - ri.dp[i]) / (1 + fabs(ri.dp[i])));
  CHECK(m < 1e-10);
  free_results(&ri);
}

/* A tiered compile (the default) whose background O2 tier has finished: its objects stored. */
static int compile(const qkd_ir_circuit *c, const char *dir, qkd_kernel *k) {
  qkd_jit_options o = {.specialise = -1, .cache_dir = dir};
  qkd_error err;
  int rc = qkd_jit_compile_ex(c, &o, k, &err);
  if (rc != 0) fprintf(stderr, "compile: %s\n", err.msg);
  else qkd_jit_wait(k);
  return rc;
}

static void path_of(char *out, size_t n, const char *dir, const char *name) {
  if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n) abort();
}

static long file_size(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static void set_age(const char *p, time_t secs_ago) {
  struct timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = time(NULL) - secs_ago;
  ts[0].tv_nsec = ts[1].tv_nsec = 0;
  utimensat(AT_FDCWD, p, ts, 0);
}

/* The outputs of r and want agree bit for bit. */
static int same_out(const results *r, const results *want, const qkd_ir_circuit *c) {
  return memcmp(r->out, want->out, (size_t)BATCH * qkd_ir_outputs(c) * 8) == 0;
}

/* Ages every entry names[0..n) of dir by `secs`, compiles c (a hit), and puts in out the path of
 * the entry the hit marked used (the newest: one of the circuit's two f64 parts). */
static void entry_of(const qkd_ir_circuit *c, const char *dir, char names[][256], int n, time_t secs,
                     char *out, size_t out_len) {
  char p[800];
  for (int i = 0; i < n; i++) {
    path_of(p, sizeof p, dir, names[i]);
    set_age(p, secs);
  }
  qkd_kernel k;
  CHECK(compile(c, dir, &k) == 0 && qkd_jit_cached(&k) == 1);
  qkd_jit_release(&k);
  time_t newest = 0;
  out[0] = 0;
  for (int i = 0; i < n; i++) {
    struct stat st;
    path_of(p, sizeof p, dir, names[i]);
    if (stat(p, &st) == 0 && st.st_mtime > newest) newest = st.st_mtime, snprintf(out, out_len, "%s", p);
  }
  CHECK(newest > time(NULL) - secs / 2); /* a hit marks its entry used */
}

typedef struct {
  const qkd_ir_circuit *c;
  const char *dir;
  const results *want;
  int ok;
} thread_arg;

static void *compile_thread(void *p) {
  thread_arg *a = p;
  qkd_kernel k;
  if (compile(a->c, a->dir, &k) != 0) return NULL;
  results r = run(&k, a->c, 0);
  a->ok = same_out(&r, a->want, a->c);
  free_results(&r);
  qkd_jit_release(&k);
  return NULL;
}

int main(void) {
  snprintf(root, sizeof root, "/tmp/qkd_test_jit_cache_%ld", (long)getpid());
  char dir[600], p[800];
  snprintf(dir, sizeof dir, "%s/kernels", root); /* created by the first store */

  circgen_opts go = circgen_defaults();
  go.min_qubits = 3, go.max_qubits = 5, go.min_gates = 12, go.max_gates = 20, go.p_amplitude = 0, go.p_gate_encoding = 1;
  qkd_ir_circuit *c = circgen_random(11, &go);

  /* a miss compiles and stores the circuit's precision (f32 waits for its first call) */
  qkd_kernel k1;
  CHECK(compile(c, dir, &k1) == 0);
  CHECK(qkd_jit_cached(&k1) == 0);
  CHECK(entries(dir, NULL) == PARTS);
  results r1 = run(&k1, c, 1); /* the f32 call compiles f32 and stores its entry */
  CHECK(entries(dir, NULL) == 2 * PARTS);
  CHECK(qkd_jit_cached(&k1) == 0);
  check_against_interpreter(&r1, c);

  /* a hit links both stored objects: same bits */
  qkd_kernel k2;
  CHECK(compile(c, dir, &k2) == 0);
  CHECK(qkd_jit_cached(&k2) == 1);
  results r2 = run(&k2, c, 1);
  CHECK(qkd_jit_cached(&k2) == 3);
  CHECK(same(&r1, &r2, c));
  free_results(&r2);
  qkd_jit_release(&k2);

  /* the cached object is the code a compile without the cache makes */
  qkd_kernel k0;
  CHECK(compile(c, NULL, &k0) == 0);
  CHECK(qkd_jit_cached(&k0) == 0);
  results r0 = run(&k0, c, 1);
  CHECK(same(&r1, &r0, c));
  free_results(&r0);
  qkd_jit_release(&k0);
  CHECK(entries(dir, NULL) == 2 * PARTS);

  /* one ulp of one angle's offset is another circuit: a miss, new entries */
  qkd_ir_circuit *c2 = circgen_copy(c);
  for (int i = 0; i < c2->n_gates; i++)
    if (c2->gates[i].angle[0].kind != QKD_ANGLE_NONE) {
      c2->gates[i].angle[0].offset = nextafter(c2->gates[i].angle[0].offset, 10.0);
      break;
    }
  qkd_kernel k3;
  CHECK(compile(c2, dir, &k3) == 0);
  CHECK(qkd_jit_cached(&k3) == 0);
  CHECK(entries(dir, NULL) == 3 * PARTS);
  qkd_jit_release(&k3);

  /* so is the other precision as the eager one: f32 first, found in the cache from k1's call */
  qkd_ir_circuit *c32 = circgen_copy(c);
  c32->precision = QKD_PREC_F32;
  qkd_kernel k4;
  CHECK(compile(c32, dir, &k4) == 0);
  CHECK(qkd_jit_cached(&k4) == 2);
  qkd_jit_release(&k4);

  /* one of c's f64 entries: the one a hit of c marks used */
  char names[16][256];
  int n = entries(dir, names);
  char f64_entry[800];
  entry_of(c, dir, names, n, 1000, f64_entry, sizeof f64_entry);

  /* corruption: one flipped byte in the object → a miss (warned), recompiled, entry replaced */
  long size = file_size(f64_entry);
  CHECK(size > 1000);
  FILE *f = fopen(f64_entry, "r+b");
  CHECK(f != NULL);
  if (f) {
    fseek(f, size - 100, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, size - 100, SEEK_SET);
    fputc(ch ^ 0x40, f);
    fclose(f);
  }
  qkd_kernel k6;
  CHECK(compile(c, dir, &k6) == 0);
  CHECK(qkd_jit_cached(&k6) == 0);
  results r6 = run(&k6, c, 0);
  CHECK(same_out(&r6, &r1, c));
  free_results(&r6);
  qkd_jit_release(&k6);
  CHECK(file_size(f64_entry) == size); /* rewritten whole */
  qkd_kernel k7;
  CHECK(compile(c, dir, &k7) == 0 && qkd_jit_cached(&k7) == 1);
  qkd_jit_release(&k7);

  /* truncation → a miss; garbage → a miss; an empty file → a miss */
  const long cut[3] = {size / 2, 5, 0};
  for (int t = 0; t < 3; t++) {
    CHECK(truncate(f64_entry, cut[t]) == 0);
    if (t == 1) {
      FILE *g = fopen(f64_entry, "wb");
      if (g) { fputs("hello", g); fclose(g); }
    }
    qkd_kernel kt;
    CHECK(compile(c, dir, &kt) == 0 && qkd_jit_cached(&kt) == 0);
    results rt = run(&kt, c, 0);
    CHECK(same_out(&rt, &r1, c));
    free_results(&rt);
    qkd_jit_release(&kt);
    CHECK(file_size(f64_entry) == size);
  }

  /* a valid entry of another circuit under c's name (a hash collision): a miss, never its code */
  char other[800];
  entry_of(c2, dir, names, n, 2000, other, sizeof other);
  CHECK(strcmp(other, f64_entry) != 0);
  char cmd[2000];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", other, f64_entry);
  CHECK(system(cmd) == 0);
  qkd_kernel k9;
  CHECK(compile(c, dir, &k9) == 0 && qkd_jit_cached(&k9) == 0);
  results r9 = run(&k9, c, 0);
  CHECK(same_out(&r9, &r1, c));
  free_results(&r9);
  qkd_jit_release(&k9);

  /* the size bound: only the newest entries that fit stay; stale temporary files go */
  path_of(p, sizeof p, dir, "0123456789abcdef.qko.tmp.host.1.1");
  FILE *g = fopen(p, "wb");
  if (g) { fputs("partial", g); fclose(g); }
  set_age(p, 3 * 86400);
  n = entries(dir, names);
  CHECK(n == 3 * PARTS);
  long old_total = 0;
  for (int i = 0; i < n; i++) {
    path_of(p, sizeof p, dir, names[i]);
    set_age(p, 5000 + 100 * i); /* names[2] the least recently used */
    old_total += file_size(p);
  }
  char bound[64];
  snprintf(bound, sizeof bound, "%.9f", (double)old_total / (1024.0 * 1024.0));
  setenv("QKD_CACHE_MAX_MB", bound, 1); /* the old entries fit; with c3's they do not */
  qkd_ir_circuit *c3 = circgen_random(12, &go);
  qkd_kernel k10;
  CHECK(compile(c3, dir, &k10) == 0);
  qkd_jit_release(&k10);
  long total = 0;
  int kept[16] = {0}, n_kept = 0;
  char after[16][256];
  int n_after = entries(dir, after);
  for (int i = 0; i < n_after; i++) {
    path_of(p, sizeof p, dir, after[i]);
    total += file_size(p);
    for (int j = 0; j < n; j++) if (strcmp(after[i], names[j]) == 0) kept[j] = 1, n_kept++;
  }
  CHECK(total <= old_total);
  CHECK(n_after == n_kept + PARTS); /* c3's new entries stay */
  CHECK(n_kept < n);
  for (int j = 0; j + 1 < n; j++) CHECK(kept[j] >= kept[j + 1]); /* the oldest go first */
  CHECK(count_files(dir) == n_after); /* the stale temporary file is gone */
  setenv("QKD_CACHE_MAX_MB", "0", 1); /* a bound of 0: a store empties the directory */
  qkd_ir_circuit *c4 = circgen_random(13, &go);
  qkd_kernel k11;
  CHECK(compile(c4, dir, &k11) == 0);
  qkd_jit_release(&k11);
  CHECK(entries(dir, NULL) == 0);
  unsetenv("QKD_CACHE_MAX_MB");

  /* an unwritable cache (a file where the directory should be): kernels still compile */
  path_of(p, sizeof p, root, "afile");
  g = fopen(p, "wb");
  if (g) { fputs("x", g); fclose(g); }
  char bad[900];
  snprintf(bad, sizeof bad, "%s/sub", p);
  qkd_kernel k12;
  CHECK(compile(c, bad, &k12) == 0 && qkd_jit_cached(&k12) == 0);
  results r12 = run(&k12, c, 0);
  CHECK(same_out(&r12, &r1, c));
  free_results(&r12);
  qkd_jit_release(&k12);

  /* 4 threads and 3 processes at once on an empty directory: every kernel right, entries valid */
  char shared[700];
  snprintf(shared, sizeof shared, "%s/shared", root);
  pid_t kids[3];
  for (int i = 0; i < 3; i++) {
    kids[i] = fork();
    if (kids[i] == 0) {
      qkd_kernel kc;
      if (compile(c, shared, &kc) != 0) _exit(1);
      results rc = run(&kc, c, 0);
      _exit(same_out(&rc, &r1, c) ? 0 : 1);
    }
  }
  pthread_t th[4];
  thread_arg ta[4];
  for (int i = 0; i < 4; i++) {
    ta[i] = (thread_arg){c, shared, &r1, 0};
    pthread_create(&th[i], NULL, compile_thread, &ta[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    CHECK(ta[i].ok);
  }
  for (int i = 0; i < 3; i++) {
    int st = 0;
    CHECK(waitpid(kids[i], &st, 0) == kids[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  CHECK(entries(shared, NULL) == PARTS && count_files(shared) == PARTS);
  qkd_kernel k13;
  CHECK(compile(c, shared, &k13) == 0 && qkd_jit_cached(&k13) == 1);
  qkd_jit_release(&k13);

  /* the default directory follows QKD_CACHE_DIR, then XDG_CACHE_HOME, then HOME */
  setenv("QKD_CACHE_DIR", "/x/y", 1);
  CHECK(strcmp(qkd_jit_cache_dir(), "/x/y") == 0);
  setenv("QKD_CACHE_DIR", "off", 1);
  CHECK(qkd_jit_cache_dir() == NULL);
  setenv("QKD_CACHE_DIR", "", 1);
  CHECK(qkd_jit_cache_dir() == NULL);
  unsetenv("QKD_CACHE_DIR");
  setenv("XDG_CACHE_HOME", "/c", 1);
  CHECK(strcmp(qkd_jit_cache_dir(), "/c/qkd/kernels") == 0);
  unsetenv("XDG_CACHE_HOME");
  setenv("HOME", "/h", 1);
  CHECK(strcmp(qkd_jit_cache_dir(), "/h/.cache/qkd/kernels") == 0);

  free_results(&r1);
  qkd_jit_release(&k1);
  circgen_free(c);
  circgen_free(c2);
  circgen_free(c3);
  circgen_free(c4);
  circgen_free(c32);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
  return test_done("test_jit_cache");
}
