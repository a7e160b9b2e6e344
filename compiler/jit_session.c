/* jit_session.c — JIT'd kernels (jit.h): one ORC LLJIT per kernel, its entry points, the object
 * cache lookups and the tiered compile.
 *
 * A precision's two entry points (forward, backward) are compiled as two objects on two threads.
 * Tiered (the default): each object is the O2 one from the object cache, or else a quick-tier
 * compile now (jit_backend.h), and a background thread then compiles the missing O2 objects one
 * after the other, stores them in the cache, links them into the same LLJIT and swaps each entry
 * point in with a release store into fns[] (the trampolines load it with acquire). Quick and O2
 * objects name their symbols apart (prefixes qkd_q / qkd_k), so both live in one JITDylib; the
 * quick code stays linked (a caller may still be running it). The kernels give the same bits at
 * either tier (jit_backend.h), so which one a call runs never shows in a result.
 * Background threads end before their session is freed: release joins them (with a cache
 * directory after their store, else cancelled at their next phase boundary), and at exit a
 * handler cancels and joins every live session's before LLVM's static destructors run (stop_all).
 * Locks: s->mu (a precision's compile, linking, the background thread handles); live_mu (the
 * registry of live sessions), taken before s->mu and never held by a compile. */
#include "jit_backend.h"
#include "jit_cache.h"
#include "qkd_time.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>

typedef enum { MODE_TIERED, MODE_O2, MODE_QUICK } tier_mode;

struct jit_session;
typedef struct {
  struct jit_session *s;
  int prec;       /* JIT_PREC_* */
  int parts;      /* JIT_PART_* still to compile at O2 */
  pthread_t th;
  int live;       /* th started and not yet joined (under s->mu) */
} bg_job;

/* A compiled kernel's JIT state. fns[i] (fn_index) are written under mu with release stores;
 * trampolines read them with acquire loads. */
typedef struct jit_session {
  LLVMOrcLLJITRef jit;
  const qkd_ir_circuit *ir;
  jit_gen_cfg cfg;
  tier_mode mode;
  pthread_mutex_t mu;
  void *_Atomic fns[4]; /* fwd_f64, bwd_f64, fwd_f32, bwd_f32 */
  atomic_int o2;        /* bit i: fns[i] is O2 code */
  atomic_int cancel;    /* background compiles stop at their next phase boundary */
  char *cache_dir;      /* NULL: no object cache */
  char *cpu, *features; /* the host's, from LLVM */
  int cached;           /* JIT_PREC_* whose object code came from the cache */
  bg_job bg[2];         /* the background O2 compile of f64, f32 */
  double t0;            /* ms, when the compile began (timing) */
  struct jit_session *next_live;
} jit_session;

static int fn_index(int prec, int part) { return (prec == JIT_PREC_F32 ? 2 : 0) + (part == JIT_PART_BWD); }

static const char *label_of(int prec, int part) {
  static const char *l[4] = {"f64 fwd", "f64 bwd", "f32 fwd", "f32 bwd"};
  return l[fn_index(prec, part)];
}

/* ---- the registry of live sessions (joined at exit) --------------------------------------- */

static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static jit_session *live;

/* Takes s's background threads (cancelling them first if `cancel`) and joins them; with
 * `patience` > 0, waits at most that many seconds for each. Caller holds neither lock (or
 * live_mu alone). */
static void join_background(jit_session *s, int cancel, int patience) {
  pthread_t th[2];
  int n = 0;
  pthread_mutex_lock(&s->mu);
  if (cancel) atomic_store(&s->cancel, 1);
  for (int p = 0; p < 2; p++)
    if (s->bg[p].live) { th[n++] = s->bg[p].th; s->bg[p].live = 0; }
  pthread_mutex_unlock(&s->mu);
  for (int i = 0; i < n; i++) {
    if (patience <= 0) { pthread_join(th[i], NULL); continue; }
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += patience;
    if (pthread_timedjoin_np(th[i], NULL, &t) != 0) pthread_detach(th[i]); /* exit ends it */
  }
}

/* At exit: every running background compile cancelled and joined before LLVM's static objects
 * are destroyed. Exit handlers run in reverse order of registration, and LLVM creates some of
 * its statics lazily (their destructors registered on first use), so this is registered again
 * each time a background compile starts: after every static an earlier compile created. Should
 * a thread not finish its phase within 5 s (a static it needs already gone), exit goes on. */
static void stop_all(void) {
  pthread_mutex_lock(&live_mu);
  for (jit_session *s = live; s; s = s->next_live) join_background(s, 1, 5);
  pthread_mutex_unlock(&live_mu);
}

static void live_add(jit_session *s) {
  pthread_mutex_lock(&live_mu);
  s->next_live = live;
  live = s;
  pthread_mutex_unlock(&live_mu);
}
static void live_remove(jit_session *s) {
  pthread_mutex_lock(&live_mu);
  for (jit_session **p = &live; *p; p = &(*p)->next_live)
    if (*p == s) { *p = s->next_live; break; }
  pthread_mutex_unlock(&live_mu);
}

/* ---- sessions ----------------------------------------------------------------------------- */

/* Frees what a session owns besides its LLJIT (no background thread may be running). */
static void session_free(jit_session *s) {
  pthread_mutex_destroy(&s->mu);
  free(s->cache_dir);
  if (s->cpu) LLVMDisposeMessage(s->cpu);
  if (s->features) LLVMDisposeMessage(s->features);
  free(s);
}

/* Defines name → addr as an absolute symbol in jd. */
static int define_abs(LLVMOrcLLJITRef J, LLVMOrcJITDylibRef jd, const char *name, void *addr,
                      qkd_error *err) {
  LLVMOrcCSymbolMapPair pair;
  pair.Name = LLVMOrcLLJITMangleAndIntern(J, name); /* retained once: owned by the MU below */
  pair.Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)addr;
  pair.Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
  pair.Sym.Flags.TargetFlags = 0;
  LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(&pair, 1); /* takes the name */
  LLVMErrorRef e = LLVMOrcJITDylibDefine(jd, mu); /* on success jd owns mu */
  if (e) {
    LLVMOrcDisposeMaterializationUnit(mu); /* on failure it is still ours */
    return jit_error(e, "cannot define a runtime symbol", err);
  }
  return 0;
}

/* A new LLJIT for the host with the process's symbols and the runtime helpers. */
static LLVMOrcLLJITRef make_lljit(qkd_error *err) {
  LLVMTargetMachineRef tm_jit = jit_host_tm(err);
  if (!tm_jit) return NULL;
  LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
  /* tm_jit → jtmb → jb → LLJIT: each call takes ownership of its argument */
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm_jit));
  LLVMOrcLLJITRef J = NULL;
  LLVMErrorRef e = LLVMOrcCreateLLJIT(&J, jb); /* consumes jb, even on failure */
  if (e) { jit_error(e, "cannot create the LLJIT", err); return NULL; }
  LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(J);
  LLVMOrcDefinitionGeneratorRef pg = NULL;
  int rc;
  e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&pg, LLVMOrcLLJITGetGlobalPrefix(J), NULL, NULL);
  if (e) {
    rc = jit_error(e, "cannot search the process's symbols", err);
  } else {
    LLVMOrcJITDylibAddGenerator(jd, pg); /* jd owns pg */
    /* the runtime helpers generated code calls (not necessarily exported by the executable) */
    rc = define_abs(J, jd, "qkd_kernel_sample_f64", (void *)qkd_kernel_sample_f64, err);
    if (rc == 0) rc = define_abs(J, jd, "qkd_jit_scratch", (void *)qkd_jit_scratch, err);
  }
  if (rc != 0) {
    LLVMErrorRef d = LLVMOrcDisposeLLJIT(J);
    if (d) LLVMConsumeError(d);
    return NULL;
  }
  return J;
}

/* The code generation options of one object: entry points `part` of precision `prec` at `tier`
 * (the symbol prefix tells the tiers apart). */
static jit_gen_cfg object_cfg(const jit_session *s, int prec, int part, jit_tier tier) {
  jit_gen_cfg c = s->cfg;
  c.precisions = prec;
  c.parts = part;
  c.prefix = tier == JIT_TIER_O2 ? "qkd_k" : "qkd_q";
  return c;
}

/* The cached O2 object for cfg into *buf (ours): 1 on a hit, else 0. */
static int cache_get(const jit_session *s, const jit_gen_cfg *cfg, LLVMMemoryBufferRef *buf) {
  size_t key_len = 0, obj_len = 0;
  char *key = s->cache_dir ? jit_cache_key(s->ir, cfg, s->cpu, s->features, &key_len) : NULL;
  void *obj = key ? jit_cache_load(s->cache_dir, key, key_len, &obj_len) : NULL;
  *buf = obj ? LLVMCreateMemoryBufferWithMemoryRangeCopy(obj, obj_len, "qkd-kernel-object") : NULL;
  free(obj);
  free(key);
  return *buf != NULL;
}

/* Stores the O2 object buf for cfg in the cache (if any; failures are the cache's business). */
static void cache_put(const jit_session *s, const jit_gen_cfg *cfg, LLVMMemoryBufferRef buf) {
  size_t key_len = 0;
  char *key = s->cache_dir ? jit_cache_key(s->ir, cfg, s->cpu, s->features, &key_len) : NULL;
  if (key) jit_cache_store(s->cache_dir, key, key_len, LLVMGetBufferStart(buf), LLVMGetBufferSize(buf));
  free(key);
}

/* Adds object buf (taken) of (prec, part) at tier to s's LLJIT and publishes its entry point in
 * s->fns. Caller holds s->mu (or owns s alone). */
static int link_object(jit_session *s, LLVMMemoryBufferRef buf, int prec, int part, jit_tier tier,
                       qkd_error *err) {
  LLVMErrorRef e = LLVMOrcLLJITAddObjectFile(s->jit, LLVMOrcLLJITGetMainJITDylib(s->jit), buf); /* takes buf */
  if (e) return jit_error(e, "cannot add the object code", err);
  char name[32];
  snprintf(name, sizeof name, "%s_%s_%s", tier == JIT_TIER_O2 ? "qkd_k" : "qkd_q", part == JIT_PART_BWD ? "bwd" : "fwd",
           prec == JIT_PREC_F32 ? "f32" : "f64");
  LLVMOrcExecutorAddress addr = 0;
  e = LLVMOrcLLJITLookup(s->jit, &addr, name); /* links the object on first lookup */
  if (e) return jit_error(e, "symbol lookup failed", err);
  int i = fn_index(prec, part);
  if (tier == JIT_TIER_O2) atomic_fetch_or(&s->o2, 1 << i);
  atomic_store_explicit(&s->fns[i], (void *)(uintptr_t)addr, memory_order_release);
  return 0;
}

/* The background O2 tier of one precision: compiles, stores, links and swaps in its parts. */
static void *background(void *p) {
  bg_job *b = p;
  jit_session *s = b->s;
  for (int part = JIT_PART_FWD; part <= JIT_PART_BWD; part <<= 1) {
    if (!(b->parts & part)) continue;
    jit_gen_cfg cfg = object_cfg(s, b->prec, part, JIT_TIER_O2);
    LLVMMemoryBufferRef buf;
    qkd_error err;
    int rc = jit_compile_object(s->ir, &cfg, s->cpu, s->features, JIT_TIER_O2, &s->cancel,
                                label_of(b->prec, part), &buf, &err);
    if (rc == 1) break; /* cancelled */
    if (rc == 0) {
      cache_put(s, &cfg, buf);
      pthread_mutex_lock(&s->mu);
      rc = link_object(s, buf, b->prec, part, JIT_TIER_O2, &err);
      pthread_mutex_unlock(&s->mu);
    }
    if (rc != 0) { /* a backend bug: the quick kernels compute the same bits, so carry on */
      fprintf(stderr, "qkd jit: the background O2 compile failed (the quick-tier kernels stay): %s\n", err.msg);
      break;
    }
    if (jit_timing_on())
      fprintf(stderr, "jit: O2 %s in use %.1f ms after the compile began\n", label_of(b->prec, part), 1e3 * qkd_now_s() - s->t0);
  }
  return NULL;
}

/* One object of a precision, compiled in the foreground. */
typedef struct {
  jit_session *s;
  int prec, part, cached, rc;
  jit_tier tier;
  LLVMMemoryBufferRef buf;
  qkd_error err;
} part_job;

/* The object of a part: the cached O2 one, else compiled at the session's first tier (and stored
 * when that is O2). */
static void *part_thread(void *p) {
  part_job *j = p;
  jit_session *s = j->s;
  j->tier = s->mode == MODE_QUICK ? JIT_TIER_QUICK : JIT_TIER_O2;
  jit_gen_cfg cfg = object_cfg(s, j->prec, j->part, JIT_TIER_O2);
  if (s->mode != MODE_QUICK && cache_get(s, &cfg, &j->buf)) {
    j->cached = 1;
    return NULL;
  }
  if (s->mode == MODE_TIERED) j->tier = JIT_TIER_QUICK;
  cfg = object_cfg(s, j->prec, j->part, j->tier);
  j->rc = jit_compile_object(s->ir, &cfg, s->cpu, s->features, j->tier, NULL, label_of(j->prec, j->part), &j->buf,
                             &j->err);
  if (j->rc == 0 && j->tier == JIT_TIER_O2) cache_put(s, &cfg, j->buf);
  return NULL;
}

/* Compiles (or finds in the cache) both entry points of precision `prec` (JIT_PREC_*), links
 * them into s->fns, and starts the background O2 tier for the parts compiled quick. The forward
 * and backward objects are compiled at the same time on two threads (the backward one is the
 * larger). Caller holds s->mu (or owns s alone). */
static int add_precision(jit_session *s, int prec, qkd_error *err) {
  part_job jobs[2] = {{.s = s, .prec = prec, .part = JIT_PART_FWD}, {.s = s, .prec = prec, .part = JIT_PART_BWD}};
  pthread_t th;
  int threaded = pthread_create(&th, NULL, part_thread, &jobs[1]) == 0;
  part_thread(&jobs[0]);
  if (threaded) pthread_join(th, NULL);
  else part_thread(&jobs[1]);
  double t0 = 1e3 * qkd_now_s();
  int rc = 0, quick = 0;
  for (int i = 0; i < 2; i++) {
    if (jobs[i].rc != 0) {
      if (rc == 0 && err) *err = jobs[i].err;
      rc = -1;
      continue;
    }
    if (rc != 0) { LLVMDisposeMemoryBuffer(jobs[i].buf); continue; }
    rc = link_object(s, jobs[i].buf, prec, jobs[i].part, jobs[i].tier, err);
    if (jobs[i].tier == JIT_TIER_QUICK) quick |= jobs[i].part;
  }
  if (rc != 0) return -1;
  if (jobs[0].cached && jobs[1].cached) s->cached |= prec;
  if (jit_timing_on()) fprintf(stderr, "jit: link %.1f ms%s\n", 1e3 * qkd_now_s() - t0, s->cached & prec ? " (cached objects)" : "");
  bg_job *b = &s->bg[prec == JIT_PREC_F32];
  if (s->mode == MODE_TIERED && quick && !b->live && !atomic_load(&s->cancel)) {
    b->s = s;
    b->prec = prec;
    b->parts = quick;
    if (atexit(stop_all) == 0) /* else (no memory) no background compile: the quick kernels stay */
      b->live = pthread_create(&b->th, NULL, background, b) == 0;
  }
  return 0;
}

/* The kernel entry i of s, compiling its precision on first use (aborts if that fails: the ABI
 * has no error path, and the same circuit already compiled for the other precision). */
static void *entry_fn(const qkd_kernel *k, int i) {
  jit_session *s = k->engine_data;
  void *f = atomic_load_explicit(&s->fns[i], memory_order_acquire);
  if (f) return f;
  pthread_mutex_lock(&s->mu);
  f = atomic_load_explicit(&s->fns[i], memory_order_acquire);
  if (!f) {
    qkd_error err;
    if (add_precision(s, i < 2 ? JIT_PREC_F64 : JIT_PREC_F32, &err) != 0) {
      fprintf(stderr, "qkd jit: lazy compile failed: %s\n", err.msg);
      abort();
    }
    f = atomic_load_explicit(&s->fns[i], memory_order_acquire);
  }
  pthread_mutex_unlock(&s->mu);
  return f;
}

/* The trampolines: entry I of the session (the latest tier; compiled on first use) called with
 * the arguments. */
#define ENTRY_CALL(FN_T, I, ...) \
  do { FN_T f_; void *p_ = entry_fn(k, I); memcpy(&f_, &p_, sizeof f_); f_(k, __VA_ARGS__); } while (0)
static void tramp_fwd_f64(const qkd_kernel *k, const double *p, const double *x, int n, uint64_t seed,
                          uint64_t first, double *out, void *ws) { ENTRY_CALL(qkd_fwd_f64_fn, 0, p, x, n, seed, first, out, ws); }
static void tramp_bwd_f64(const qkd_kernel *k, const double *p, const double *x, int n, const double *dout,
                          double *dp, double *dx, void *ws) { ENTRY_CALL(qkd_bwd_f64_fn, 1, p, x, n, dout, dp, dx, ws); }
static void tramp_fwd_f32(const qkd_kernel *k, const float *p, const float *x, int n, uint64_t seed,
                          uint64_t first, float *out, void *ws) { ENTRY_CALL(qkd_fwd_f32_fn, 2, p, x, n, seed, first, out, ws); }
static void tramp_bwd_f32(const qkd_kernel *k, const float *p, const float *x, int n, const float *dout,
                          float *dp, float *dx, void *ws) { ENTRY_CALL(qkd_bwd_f32_fn, 3, p, x, n, dout, dp, dx, ws); }
#undef ENTRY_CALL

static tier_mode mode_of(const qkd_jit_options *opt) {
  int t = opt ? opt->tier : QKD_JIT_TIER_DEFAULT;
  if (t == QKD_JIT_TIER_DEFAULT) {
    const char *e = getenv("QKD_JIT_TIER");
    t = e && strcmp(e, "0") == 0 ? QKD_JIT_TIER_O2 : e && strcmp(e, "1") == 0 ? QKD_JIT_TIER_QUICK : QKD_JIT_TIERED;
  }
  return t == QKD_JIT_TIER_O2 ? MODE_O2 : t == QKD_JIT_TIER_QUICK ? MODE_QUICK : MODE_TIERED;
}

/* Disposes s's LLJIT and frees s, after its background threads (cancelled unless `finish`). */
static void session_end(jit_session *s, int finish) {
  join_background(s, !finish, 0);
  live_remove(s);
  if (s->jit) {
    LLVMErrorRef e = LLVMOrcDisposeLLJIT(s->jit);
    if (e) LLVMConsumeError(e);
  }
  session_free(s);
}

int qkd_jit_compile_ex(const qkd_ir_circuit *ir, const qkd_jit_options *opt, qkd_kernel *out,
                       qkd_error *err) {
  memset(out, 0, sizeof *out);
  if (qkd_ir_validate(ir, err) != 0) return -1;
  if (jit_refuse_noisy(ir, err)) return -1;
  if (jit_init(err) != 0) return -1;
  jit_session *s = calloc(1, sizeof *s);
  if (!s) return qkd_fail(err, QKD_ERR_MEMORY, NULL, "jit: out of memory");
  s->t0 = 1e3 * qkd_now_s();
  s->cpu = LLVMGetHostCPUName(); /* ours: disposed with the session */
  s->features = LLVMGetHostCPUFeatures();
  s->ir = ir;
  jit_cfg_defaults(&s->cfg, opt, s->features);
  s->mode = mode_of(opt);
  pthread_mutex_init(&s->mu, NULL);
  for (int i = 0; i < 4; i++) atomic_init(&s->fns[i], NULL);
  atomic_init(&s->o2, 0);
  atomic_init(&s->cancel, 0);
  if (opt && opt->cache_dir && !(s->cache_dir = strdup(opt->cache_dir))) {
    session_free(s);
    return qkd_fail(err, QKD_ERR_MEMORY, NULL, "jit: out of memory");
  }
  live_add(s);
  s->jit = make_lljit(err);
  if (jit_timing_on()) fprintf(stderr, "jit: session %.1f ms\n", 1e3 * qkd_now_s() - s->t0);
  /* both precisions wanted: the circuit's own now, the other on its first call */
  int all = s->cfg.precisions == (JIT_PREC_F64 | JIT_PREC_F32);
  int eager = all ? (ir->precision == QKD_PREC_F32 ? JIT_PREC_F32 : JIT_PREC_F64) : s->cfg.precisions;
  pthread_mutex_lock(&s->mu);
  int rc = s->jit ? add_precision(s, eager, err) : -1;
  pthread_mutex_unlock(&s->mu);
  if (rc != 0) {
    session_end(s, 0);
    return -1;
  }
  out->ir = ir;
  out->engine = "jit";
  out->engine_data = s;
  /* an entry point that stays what it is now is called directly (object pointers → function
   * pointers: the documented ORC idiom on POSIX); the others through their trampolines */
  int o2 = atomic_load(&s->o2);
  void *fns[4];
  for (int i = 0; i < 4; i++) fns[i] = atomic_load(&s->fns[i]);
  int fixed64 = fns[0] && (s->mode != MODE_TIERED || (o2 & 3) == 3);
  int fixed32 = fns[2] && (s->mode != MODE_TIERED || (o2 & 12) == 12);
  if (fixed64) { memcpy(&out->fwd_f64, &fns[0], sizeof fns[0]); memcpy(&out->bwd_f64, &fns[1], sizeof fns[1]); }
  else if (fns[0] || all) { out->fwd_f64 = tramp_fwd_f64; out->bwd_f64 = tramp_bwd_f64; }
  if (fixed32) { memcpy(&out->fwd_f32, &fns[2], sizeof fns[2]); memcpy(&out->bwd_f32, &fns[3], sizeof fns[3]); }
  else if (fns[2] || all) { out->fwd_f32 = tramp_fwd_f32; out->bwd_f32 = tramp_bwd_f32; }
  return 0;
}

int qkd_jit_compile(const qkd_ir_circuit *ir, qkd_kernel *out, qkd_error *err) {
  return qkd_jit_compile_ex(ir, NULL, out, err);
}

static jit_session *session_of(const qkd_kernel *k) {
  return k && k->engine && strcmp(k->engine, "jit") == 0 ? k->engine_data : NULL;
}

void qkd_jit_release(qkd_kernel *k) {
  if (!k) return;
  jit_session *s = k->engine_data;
  if (s) session_end(s, s->cache_dir != NULL);
  memset(k, 0, sizeof *k);
}

int qkd_jit_wait(const qkd_kernel *k) {
  jit_session *s = session_of(k);
  if (!s) return 0;
  join_background(s, 0, 0);
  return qkd_jit_optimised(k);
}

int qkd_jit_optimised(const qkd_kernel *k) {
  jit_session *s = session_of(k);
  int o2 = s ? atomic_load(&s->o2) : 0;
  return ((o2 & 3) == 3 ? JIT_PREC_F64 : 0) | ((o2 & 12) == 12 ? JIT_PREC_F32 : 0);
}

int qkd_jit_cached(const qkd_kernel *k) {
  jit_session *s = session_of(k);
  return s ? s->cached : 0;
}
