/* test_jit_tier.c — the tiered compile (compiler/jit.h, "Tiers"): on random circuits from
 * circgen.h (every gate, all angle kinds, encodings, measurements, shots, partial vector tiles,
 * 9-10 qubits with cache blocking), the quick-tier kernels and the O2 kernels give bit-identical
 * outputs, d_params and d_features (memcmp) for f64 and f32, also at the other vector widths;
 * a tiered kernel gives those same bits before and after its swap, also while two threads call
 * it through the swap; qkd_jit_wait/qkd_jit_optimised report the swap; QKD_JIT_TIER=0/1 select
 * O2 only / quick only; a kernel released while its background compile runs (with and without a
 * cache directory), and a process that exits without releasing one, neither crash nor leak (the
 * sanitizer build runs this too); with a cache the released kernel's O2 objects are stored and
 * the next compile is a hit at O2 at once. */
#include "circgen.h"
#include "jit.h"
#include "qkd_rng.h"
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef QKD_FULL_SWEEP
#define N_CIRCUITS 120
#else
#define N_CIRCUITS 24
#endif

static void *xcalloc(size_t n) {
  void *p = calloc(n ? n : 1, 1);
  if (!p) abort();
  return p;
}

/* What one kernel computes on fixed inputs: both precisions, forward and backward. */
typedef struct {
  double *out, *dp, *dx;
  float *out32, *dp32, *dx32;
} results;

static void free_results(results *r) {
  free(r->out); free(r->dp); free(r->dx); free(r->out32); free(r->dp32); free(r->dx32);
}

static results run(const qkd_kernel *k, const qkd_ir_circuit *c, int batch, uint64_t seed) {
  int np = c->n_params, nf = c->n_features, no = qkd_ir_outputs(c);
  size_t nout = (size_t)batch * (size_t)no, nfe = (size_t)batch * (size_t)nf;
  double *params = xcalloc((size_t)(np + 1) * 8), *feat = xcalloc((nfe + 1) * 8), *dout = xcalloc(nout * 8);
  circgen_inputs(c, seed, batch, params, feat);
  for (size_t i = 0; i < nout; i++) dout[i] = 2.0 * qkd_rng_uniform(seed, 5, i) - 1.0;
  results r = {xcalloc(nout * 8), xcalloc((size_t)(np + 1) * 8), xcalloc((nfe + 1) * 8),
               xcalloc(nout * 4), xcalloc((size_t)(np + 1) * 4), xcalloc((nfe + 1) * 4)};
  void *ws = xcalloc(qkd_kernel_workspace_bytes(c));
  for (int i = 0; i < np; i++) r.dp[i] = 0.25 * i, r.dp32[i] = 0.25f * (float)i; /* d_params accumulates */
  k->fwd_f64(k, params, feat, batch, seed, 7, r.out, ws);
  k->bwd_f64(k, params, feat, batch, dout, r.dp, nf ? r.dx : NULL, ws);
  float *p32 = xcalloc((size_t)(np + 1) * 4), *x32 = xcalloc((nfe + 1) * 4), *d32 = xcalloc(nout * 4);
  for (int i = 0; i < np; i++) p32[i] = (float)params[i];
  for (size_t i = 0; i < nfe; i++) x32[i] = (float)feat[i];
  for (size_t i = 0; i < nout; i++) d32[i] = (float)dout[i];
  k->fwd_f32(k, p32, x32, batch, seed, 7, r.out32, ws);
  k->bwd_f32(k, p32, x32, batch, d32, r.dp32, nf ? r.dx32 : NULL, ws);
  free(params); free(feat); free(dout); free(p32); free(x32); free(d32); free(ws);
  return r;
}

/* a and b bit for bit; names what differs */
static int same(const results *a, const results *b, const qkd_ir_circuit *c, int batch, const char *what) {
  size_t no = (size_t)batch * (size_t)qkd_ir_outputs(c), np = (size_t)c->n_params, nfe = (size_t)batch * (size_t)c->n_features;
  const char *bad = memcmp(a->out, b->out, no * 8) ? "f64 outputs"
                    : memcmp(a->dp, b->dp, np * 8) ? "f64 d_params"
                    : memcmp(a->dx, b->dx, nfe * 8) ? "f64 d_features"
                    : memcmp(a->out32, b->out32, no * 4) ? "f32 outputs"
                    : memcmp(a->dp32, b->dp32, np * 4) ? "f32 d_params"
                    : memcmp(a->dx32, b->dx32, nfe * 4) ? "f32 d_features" : NULL;
  if (bad) fprintf(stderr, "%s: %s differ (n %d, %d gates)\n", what, bad, c->n_qubits, c->n_gates);
  return !bad;
}

static int compile(const qkd_ir_circuit *c, int tier, int vbytes, const char *cache, qkd_kernel *k) {
  qkd_jit_options o = {.specialise = -1, .tier = tier, .vector_bytes = vbytes, .cache_dir = cache};
  qkd_error err;
  int rc = qkd_jit_compile_ex(c, &o, k, &err);
  if (rc != 0) fprintf(stderr, "compile: %s\n", err.msg);
  return rc;
}

/* Quick only and O2 only: the same bits. */
static int quick_vs_o2(uint64_t seed, const qkd_ir_circuit *c, int batch, int vbytes) {
  qkd_kernel kq, ko;
  if (compile(c, QKD_JIT_TIER_QUICK, vbytes, NULL, &kq) != 0) { CHECK(0); return 0; }
  if (compile(c, QKD_JIT_TIER_O2, vbytes, NULL, &ko) != 0) { CHECK(0); qkd_jit_release(&kq); return 0; }
  results rq = run(&kq, c, batch, seed), ro = run(&ko, c, batch, seed);
  CHECK(qkd_jit_optimised(&kq) == 0);
  CHECK(qkd_jit_optimised(&ko) == 3);
  char what[64];
  snprintf(what, sizeof what, "seed %llu vbytes %d", (unsigned long long)seed, vbytes);
  int ok = same(&rq, &ro, c, batch, what);
  CHECK(ok);
  free_results(&rq);
  free_results(&ro);
  qkd_jit_release(&kq);
  qkd_jit_release(&ko);
  return ok;
}

typedef struct {
  const qkd_kernel *k;
  const qkd_ir_circuit *c;
  const results *want;
  int batch, rounds, ok;
} caller_arg;

/* Calls the kernel `rounds` times, each time comparing with want. */
static void *caller(void *p) {
  caller_arg *a = p;
  a->ok = 1;
  for (int i = 0; i < a->rounds; i++) {
    results r = run(a->k, a->c, a->batch, 99);
    a->ok &= same(&r, a->want, a->c, a->batch, "through the swap");
    free_results(&r);
  }
  return NULL;
}

/* A tiered kernel: quick now, O2 after the wait (both precisions), the same bits throughout,
 * also for two threads calling it while the swap happens. */
static void check_swap(const qkd_ir_circuit *c, int batch) {
  qkd_kernel kq, kt;
  if (compile(c, QKD_JIT_TIER_QUICK, 0, NULL, &kq) != 0) { CHECK(0); return; }
  results want = run(&kq, c, batch, 99);
  qkd_jit_release(&kq);
  if (compile(c, QKD_JIT_TIERED, 0, NULL, &kt) != 0) { CHECK(0); free_results(&want); return; }
  CHECK(qkd_jit_optimised(&kt) == 0 || qkd_jit_optimised(&kt) == 1); /* f64 may already be in */
  caller_arg a[2] = {{&kt, c, &want, batch, 6, 0}, {&kt, c, &want, batch, 6, 0}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, caller, &a[i]) == 0);
  for (int i = 0; i < 2; i++) {
    pthread_join(th[i], NULL);
    CHECK(a[i].ok);
  }
  CHECK(qkd_jit_wait(&kt) == 3); /* the calls compiled f32 (tiered) too */
  CHECK(qkd_jit_optimised(&kt) == 3);
  results r = run(&kt, c, batch, 99);
  CHECK(same(&r, &want, c, batch, "after the swap"));
  free_results(&r);
  free_results(&want);
  qkd_jit_release(&kt);
}

/* Releases while the background compile runs: no crash, no leak (sanitizers); with a cache
 * directory the release waits for the O2 objects and stores them. */
static void check_release(const qkd_ir_circuit *w, const char *root) {
  for (int i = 0; i < 3; i++) { /* released at once, after a call, after the other precision's lazy compile */
    qkd_kernel k;
    if (compile(w, QKD_JIT_TIERED, 0, NULL, &k) != 0) { CHECK(0); return; }
    if (i >= 1) {
      results r = run(&k, w, 3, 1);
      free_results(&r);
    }
    qkd_jit_release(&k);
    CHECK(k.engine_data == NULL && k.fwd_f64 == NULL);
  }
  char dir[600];
  snprintf(dir, sizeof dir, "%s/cache", root);
  qkd_kernel k;
  if (compile(w, QKD_JIT_TIERED, 0, dir, &k) != 0) { CHECK(0); return; }
  CHECK(qkd_jit_cached(&k) == 0);
  qkd_jit_release(&k); /* waits for the f64 O2 objects and stores them */
  if (compile(w, QKD_JIT_TIERED, 0, dir, &k) != 0) { CHECK(0); return; }
  CHECK(qkd_jit_cached(&k) == 1);    /* both f64 objects were stored */
  CHECK(qkd_jit_optimised(&k) == 1); /* a warm hit: O2 at once, no tier */
  qkd_jit_release(&k);
}

/* QKD_JIT_TIER when the options leave the tier to the environment. */
static void check_env(const qkd_ir_circuit *c) {
  qkd_kernel k;
  setenv("QKD_JIT_TIER", "0", 1);
  if (compile(c, QKD_JIT_TIER_DEFAULT, 0, NULL, &k) == 0) {
    CHECK(qkd_jit_optimised(&k) == 1); /* O2, synchronously */
    qkd_jit_release(&k);
  } else CHECK(0);
  setenv("QKD_JIT_TIER", "1", 1);
  if (compile(c, QKD_JIT_TIER_DEFAULT, 0, NULL, &k) == 0) {
    CHECK(qkd_jit_wait(&k) == 0); /* quick only: nothing to wait for */
    qkd_jit_release(&k);
  } else CHECK(0);
  unsetenv("QKD_JIT_TIER");
  if (compile(c, QKD_JIT_TIER_DEFAULT, 0, NULL, &k) == 0) {
    CHECK(qkd_jit_wait(&k) == 1); /* tiered */
    qkd_jit_release(&k);
  } else CHECK(0);
}

/* A process that exits with a background compile running and its kernel never released. */
static void check_exit(const qkd_ir_circuit *w) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    qkd_kernel k;
    if (compile(w, QKD_JIT_TIERED, 0, NULL, &k) != 0) _exit(3);
    results r = run(&k, w, 2, 3);
    free_results(&r);
    exit(0); /* atexit: cancel and join, then LLVM's destructors */
  }
  int st = 0;
  CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) fprintf(stderr, "exit child: status %d\n", st);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void) {
  char root[256];
  snprintf(root, sizeof root, "/tmp/qkd_test_jit_tier_%ld", (long)getpid());
  circgen_opts go = circgen_defaults();
  go.p_shots = 0.25;
  int identical = 0;
  for (int i = 0; i < N_CIRCUITS; i++) {
    uint64_t seed = 31000 + (uint64_t)i;
    qkd_ir_circuit *c = circgen_random(seed, &go);
    int batch = 1 + (int)(qkd_rng_u64(seed, 3, 0) % 21); /* partial tiles */
    identical += quick_vs_o2(seed, c, batch, 0);
    if (i % 6 == 0) identical += quick_vs_o2(seed, c, batch, 16) + quick_vs_o2(seed, c, batch, 32);
    circgen_free(c);
  }
  go.min_qubits = 9, go.max_qubits = 10, go.min_gates = 20, go.max_gates = 40; /* cache blocking */
  for (int i = 0; i < N_CIRCUITS / 6; i++) {
    uint64_t seed = 32000 + (uint64_t)i;
    qkd_ir_circuit *c = circgen_random(seed, &go);
    identical += quick_vs_o2(seed, c, 5, 0);
    circgen_free(c);
  }
  qkd_ir_circuit *w = circgen_hea(6, 6, QKD_MEASURE_PROBS, QKD_PREC_F64);
  check_swap(w, 11);
  qkd_ir_circuit *big = circgen_hea(8, 10, QKD_MEASURE_PROBS, QKD_PREC_F64); /* a long O2 compile */
  check_release(big, root);
  check_env(w);
  check_exit(big);
  circgen_free(w);
  circgen_free(big);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
  printf("quick vs O2: %d kernel pairs bit-identical\n", identical);
  return test_done("test_jit_tier");
}
