/* jit.c — the LLVM backend's driver (jit.h): target machines, the pass pipeline, ORC LLJIT
 * sessions, LLVM IR text and object files. Code generation itself is jit_gen.c.
 * Every ownership transfer to LLVM is commented; every LLVMErrorRef is consumed (jit_error). */
#include "jit.h"
#include "qkd_time.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "jit_cache.h"
#include "jit_gen.h"

#include <time.h>

/* QKD_JIT_TIMING=1: phase times on stderr (measurements only). */
static int timing_on(void) {
  const char *s = getenv("QKD_JIT_TIMING");
  return s && *s && strcmp(s, "0") != 0;
}

/* "jit: WHAT: MSG" into err (an internal error: the backend failed); returns -1. */
static int set_err(qkd_error *err, const char *what, const char *msg) {
  return qkd_fail(err, QKD_ERR_INTERNAL, NULL, "jit: %s%s%s", what, msg ? ": " : "", msg ? msg : "");
}

/* Consumes e (an LLVMErrorRef) into err; returns -1. */
static int jit_error(LLVMErrorRef e, const char *what, qkd_error *err) {
  char *m = LLVMGetErrorMessage(e); /* consumes e */
  set_err(err, what, m);
  LLVMDisposeErrorMessage(m);
  return -1;
}

int qkd_jit_enabled(void) {
  const char *s = getenv("QKD_JIT");
  return !(s && strcmp(s, "0") == 0);
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_failed;
static void init_llvm(void) {
  init_failed = LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter();
}

/* What a target's features allow: vector register bytes, fused multiply-add. */
typedef struct { int vbytes, fma; } target_caps;
static target_caps caps_of(const char *features) {
  const char *p = features;
  int avx512 = 0, avx = 0, fma = 0;
  while (p && *p) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == 8 && strncmp(p, "+avx512f", 8) == 0) avx512 = 1;
    if (len == 4 && strncmp(p, "+avx", 4) == 0) avx = 1;
    if (len == 4 && strncmp(p, "+fma", 4) == 0) fma = 1;
    p = e ? e + 1 : NULL;
  }
  target_caps c = {avx512 ? 64 : avx ? 32 : 16, fma || avx512};
  return c;
}

/* A target machine for cpu/features (NULL = host). Returns NULL with err set on failure. */
static LLVMTargetMachineRef make_tm(const char *cpu, const char *features, LLVMRelocMode reloc,
                                    LLVMCodeModel cm, target_caps *caps, qkd_error *err) {
  pthread_once(&init_once, init_llvm);
  if (init_failed) { set_err(err, "cannot initialise the native target", NULL); return NULL; }
  char *triple = LLVMGetDefaultTargetTriple(); /* ours: disposed below */
  char *hcpu = NULL, *hfeat = NULL;
  if (!cpu) { cpu = hcpu = LLVMGetHostCPUName(); features = hfeat = LLVMGetHostCPUFeatures(); }
  LLVMTargetRef target;
  char *msg = NULL;
  LLVMTargetMachineRef tm = NULL;
  if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
    set_err(err, "no target for the host triple", msg);
  } else {
    tm = LLVMCreateTargetMachine(target, triple, cpu, features, LLVMCodeGenLevelDefault, reloc, cm);
    if (!tm) set_err(err, "cannot create a target machine", NULL);
    if (caps) *caps = caps_of(features);
  }
  if (msg) LLVMDisposeMessage(msg);
  LLVMDisposeMessage(triple);
  if (hcpu) LLVMDisposeMessage(hcpu);
  if (hfeat) LLVMDisposeMessage(hfeat);
  return tm;
}

/* Generates, verifies and optimises the module for ir into M (triple/layout from tm). */
static int build_module(LLVMModuleRef M, LLVMContextRef C, LLVMTargetMachineRef tm,
                        const qkd_ir_circuit *ir, const jit_gen_cfg *cfg, qkd_error *err) {
  char *triple = LLVMGetTargetMachineTriple(tm);
  LLVMSetTarget(M, triple);
  LLVMDisposeMessage(triple);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  LLVMSetModuleDataLayout(M, td); /* copies the layout */
  LLVMDisposeTargetData(td);
  double t0 = 1e3 * qkd_now_s();
  if (jit_gen_module(C, M, ir, cfg, err) != 0) return -1;
  double t1 = 1e3 * qkd_now_s();
  for (LLVMValueRef f = LLVMGetFirstFunction(M); f; f = LLVMGetNextFunction(f))
    if (!LLVMIsDeclaration(f) && LLVMVerifyFunction(f, LLVMReturnStatusAction)) {
      set_err(err, "generated function fails verification", LLVMGetValueName(f));
      return -1;
    }
  char *msg = NULL;
  int bad = LLVMVerifyModule(M, LLVMReturnStatusAction, &msg);
  if (bad) set_err(err, "generated module fails verification", msg);
  if (msg) LLVMDisposeMessage(msg); /* allocated even when there is no error */
  if (bad) return -1;
  LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
  /* loops over amplitudes stay loops: unrolling them costs compile time */
  LLVMPassBuilderOptionsSetLoopUnrolling(po, 0);
  /* the generated code is explicitly vectorised (lanes across samples): the auto-vectorisers
   * only cost compile time */
  LLVMPassBuilderOptionsSetLoopVectorization(po, 0);
  LLVMPassBuilderOptionsSetSLPVectorization(po, 0);
  LLVMErrorRef e = LLVMRunPasses(M, "default<O2>", tm, po);
  LLVMDisposePassBuilderOptions(po);
  if (e) return jit_error(e, "optimisation failed", err);
  if (timing_on()) fprintf(stderr, "jit: generate %.1f ms, verify+O2 %.1f ms\n", t1 - t0, 1e3 * qkd_now_s() - t1);
  return 0;
}

static void cfg_defaults(jit_gen_cfg *cfg, const qkd_jit_options *opt, const target_caps *caps) {
  cfg->precisions = JIT_PREC_F64 | JIT_PREC_F32;
  if (opt && opt->precisions == 1) cfg->precisions = JIT_PREC_F64;
  if (opt && opt->precisions == 2) cfg->precisions = JIT_PREC_F32;
  cfg->opts = opt && opt->specialise >= 0 ? (unsigned)opt->specialise & JIT_OPT_ALL : jit_env_opts();
  int vb = opt && opt->vector_bytes ? opt->vector_bytes : jit_env_vbytes();
  if (vb != 16 && vb != 32 && vb != 64) vb = caps->vbytes;
  if (vb > caps->vbytes) vb = caps->vbytes;
  cfg->fma = caps->fma;
  cfg->vbytes = vb;
  cfg->block = opt && opt->block ? opt->block : jit_env_block();
  cfg->scratch = JIT_SCRATCH_TLS;
  cfg->prefix = "qkd_k";
  cfg->parts = JIT_PART_FWD | JIT_PART_BWD;
}

/* ---- JIT ---------------------------------------------------------------------------------- */

/* A compiled kernel's JIT state. fns[] are looked up under mu; trampolines read them with
 * acquire loads (the second precision is compiled on its first call). */
typedef struct {
  LLVMOrcLLJITRef jit;
  const qkd_ir_circuit *ir;
  jit_gen_cfg cfg;
  pthread_mutex_t mu;
  void *_Atomic fns[4]; /* fwd_f64, bwd_f64, fwd_f32, bwd_f32 */
  char *cache_dir;      /* NULL: no object cache */
  char *cpu, *features; /* the host's, from LLVM */
  int cached;           /* JIT_PREC_* whose object code came from the cache */
} jit_session;

/* Frees what a session owns besides its LLJIT. */
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
  LLVMTargetMachineRef tm_jit = make_tm(NULL, NULL, LLVMRelocDefault, LLVMCodeModelJITDefault, NULL, err);
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

/* Object code for the entry points `part` (JIT_PART_*) of precision mask `prec` (JIT_PREC_*):
 * from s's cache directory, or generated, optimised and compiled for the host (and then stored
 * there). *buf is ours. Sets *cached on a hit. Thread-safe (its own LLVM context). */
static int object_for(const jit_session *s, int prec, int part, LLVMMemoryBufferRef *buf, int *cached,
                      qkd_error *err) {
  *buf = NULL;
  *cached = 0;
  const char *cpu = s->cpu, *feat = s->features;
  jit_gen_cfg cfg = s->cfg;
  cfg.precisions = prec;
  cfg.parts = part;
  int rc = 0;
  size_t key_len = 0, obj_len = 0;
  char *key = s->cache_dir ? jit_cache_key(s->ir, &cfg, cpu, feat, &key_len) : NULL;
  void *obj = key ? jit_cache_load(s->cache_dir, key, key_len, &obj_len) : NULL;
  if (obj) {
    *buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(obj, obj_len, "qkd-kernel-object");
    free(obj);
    if (!*buf) rc = qkd_fail(err, QKD_ERR_MEMORY, NULL, "jit: out of memory");
    else *cached = 1;
  } else {
    /* position independent, small code model: JITLink reaches the process's symbols through
     * its own stubs wherever it places the code */
    LLVMTargetMachineRef tm = make_tm(cpu, feat, LLVMRelocPIC, LLVMCodeModelDefault, NULL, err);
    if (!tm) rc = -1;
    LLVMContextRef C = tm ? LLVMContextCreate() : NULL; /* ours */
    LLVMModuleRef M = C ? LLVMModuleCreateWithNameInContext(s->ir->name ? s->ir->name : "qkd", C) : NULL;
    if (tm && build_module(M, C, tm, s->ir, &cfg, err) != 0) rc = -1;
    if (rc == 0) {
      double t0 = 1e3 * qkd_now_s();
      char *msg = NULL;
      if (LLVMTargetMachineEmitToMemoryBuffer(tm, M, LLVMObjectFile, &msg, buf)) {
        rc = set_err(err, "code generation failed", msg);
        *buf = NULL;
      }
      if (msg) LLVMDisposeMessage(msg);
      if (timing_on()) fprintf(stderr, "jit: codegen %.1f ms\n", 1e3 * qkd_now_s() - t0);
    }
    if (M) LLVMDisposeModule(M);
    if (C) LLVMContextDispose(C);
    if (tm) LLVMDisposeTargetMachine(tm);
    if (rc == 0 && key)
      jit_cache_store(s->cache_dir, key, key_len, LLVMGetBufferStart(*buf), LLVMGetBufferSize(*buf));
  }
  free(key);
  return rc;
}

typedef struct {
  const jit_session *s;
  int prec, part, cached, rc;
  LLVMMemoryBufferRef buf;
  qkd_error err;
} part_job;

static void *part_thread(void *p) {
  part_job *j = p;
  j->rc = object_for(j->s, j->prec, j->part, &j->buf, &j->cached, &j->err);
  return NULL;
}

/* Adds the object code of precision mask `prec` to s's LLJIT and looks its kernels up into
 * s->fns. The forward and the backward entry points are separate objects (and cache entries),
 * compiled at the same time on two threads: the backward one is the larger. Caller holds s->mu
 * (or owns s alone). */
static int add_precision(jit_session *s, int prec, qkd_error *err) {
  part_job jobs[2] = {{.s = s, .prec = prec, .part = JIT_PART_FWD}, {.s = s, .prec = prec, .part = JIT_PART_BWD}};
  pthread_t th;
  int threaded = pthread_create(&th, NULL, part_thread, &jobs[1]) == 0;
  part_thread(&jobs[0]);
  if (threaded) pthread_join(th, NULL);
  else part_thread(&jobs[1]);
  double t0 = 1e3 * qkd_now_s();
  int rc = 0;
  for (int i = 0; i < 2; i++) {
    if (jobs[i].rc != 0) {
      if (rc == 0 && err) *err = jobs[i].err;
      rc = -1;
      continue;
    }
    if (rc != 0) { LLVMDisposeMemoryBuffer(jobs[i].buf); continue; }
    LLVMErrorRef e = LLVMOrcLLJITAddObjectFile(s->jit, LLVMOrcLLJITGetMainJITDylib(s->jit), jobs[i].buf); /* takes buf */
    if (e) rc = jit_error(e, "cannot add the object code", err);
  }
  if (rc != 0) return -1;
  if (jobs[0].cached && jobs[1].cached) s->cached |= prec;
  static const char *names[4] = {"qkd_k_fwd_f64", "qkd_k_bwd_f64", "qkd_k_fwd_f32", "qkd_k_bwd_f32"};
  for (int i = 0; i < 4; i++) {
    if (!(prec & (i < 2 ? JIT_PREC_F64 : JIT_PREC_F32))) continue;
    LLVMOrcExecutorAddress addr = 0;
    LLVMErrorRef e = LLVMOrcLLJITLookup(s->jit, &addr, names[i]); /* links the object on first lookup */
    if (e) return jit_error(e, "symbol lookup failed", err);
    atomic_store_explicit(&s->fns[i], (void *)(uintptr_t)addr, memory_order_release);
  }
  if (timing_on()) fprintf(stderr, "jit: link %.1f ms%s\n", 1e3 * qkd_now_s() - t0, s->cached & prec ? " (cached objects)" : "");
  return 0;
}

/* The kernel entry i of s, compiling its precision on first use (aborts if that fails: the ABI
 * has no error path, and the same circuit already compiled for the other precision). */
static void *lazy_fn(const qkd_kernel *k, int i) {
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

/* The trampolines: entry I of the session (compiled on first use) called with the arguments. */
#define LAZY_CALL(FN_T, I, ...) \
  do { FN_T f_; void *p_ = lazy_fn(k, I); memcpy(&f_, &p_, sizeof f_); f_(k, __VA_ARGS__); } while (0)
static void lazy_fwd_f64(const qkd_kernel *k, const double *p, const double *x, int n, uint64_t seed,
                         uint64_t first, double *out, void *ws) { LAZY_CALL(qkd_fwd_f64_fn, 0, p, x, n, seed, first, out, ws); }
static void lazy_bwd_f64(const qkd_kernel *k, const double *p, const double *x, int n, const double *dout,
                         double *dp, double *dx, void *ws) { LAZY_CALL(qkd_bwd_f64_fn, 1, p, x, n, dout, dp, dx, ws); }
static void lazy_fwd_f32(const qkd_kernel *k, const float *p, const float *x, int n, uint64_t seed,
                         uint64_t first, float *out, void *ws) { LAZY_CALL(qkd_fwd_f32_fn, 2, p, x, n, seed, first, out, ws); }
static void lazy_bwd_f32(const qkd_kernel *k, const float *p, const float *x, int n, const float *dout,
                         float *dp, float *dx, void *ws) { LAZY_CALL(qkd_bwd_f32_fn, 3, p, x, n, dout, dp, dx, ws); }
#undef LAZY_CALL

/* The kernels apply gates alone: never a noiseless kernel for a noisy circuit. */
static int refuse_noisy(const qkd_ir_circuit *ir, qkd_error *err) {
  if (!qkd_ir_noisy(ir)) return 0;
  qkd_fail(err, QKD_ERR_INPUT, NULL, "circuit '%s' has noise: the compiled kernels run noiseless circuits only "
           "(noisy ones run on the density-matrix engine, qkd_dmsim.h)", ir->name ? ir->name : "?");
  return 1;
}

int qkd_jit_compile_ex(const qkd_ir_circuit *ir, const qkd_jit_options *opt, qkd_kernel *out,
                       qkd_error *err) {
  memset(out, 0, sizeof *out);
  if (qkd_ir_validate(ir, err) != 0) return -1;
  if (refuse_noisy(ir, err)) return -1;
  pthread_once(&init_once, init_llvm);
  if (init_failed) return set_err(err, "cannot initialise the native target", NULL);
  jit_session *s = calloc(1, sizeof *s);
  if (!s) return qkd_fail(err, QKD_ERR_MEMORY, NULL, "jit: out of memory");
  s->cpu = LLVMGetHostCPUName();       /* ours: disposed with the session */
  s->features = LLVMGetHostCPUFeatures();
  target_caps host = caps_of(s->features);
  s->ir = ir;
  cfg_defaults(&s->cfg, opt, &host);
  pthread_mutex_init(&s->mu, NULL);
  for (int i = 0; i < 4; i++) atomic_init(&s->fns[i], NULL);
  if (opt && opt->cache_dir && !(s->cache_dir = strdup(opt->cache_dir))) {
    session_free(s);
    return qkd_fail(err, QKD_ERR_MEMORY, NULL, "jit: out of memory");
  }
  double t0 = 1e3 * qkd_now_s();
  s->jit = make_lljit(err);
  if (timing_on()) fprintf(stderr, "jit: session %.1f ms\n", 1e3 * qkd_now_s() - t0);
  /* both precisions wanted: the circuit's own now, the other on its first call */
  int all = s->cfg.precisions == (JIT_PREC_F64 | JIT_PREC_F32);
  int eager = all ? (ir->precision == QKD_PREC_F32 ? JIT_PREC_F32 : JIT_PREC_F64) : s->cfg.precisions;
  if (!s->jit || add_precision(s, eager, err) != 0) {
    if (s->jit) {
      LLVMErrorRef d = LLVMOrcDisposeLLJIT(s->jit);
      if (d) LLVMConsumeError(d);
    }
    session_free(s);
    return -1;
  }
  out->ir = ir;
  out->engine = "jit";
  out->engine_data = s;
  void *fns[4];
  for (int i = 0; i < 4; i++) fns[i] = atomic_load(&s->fns[i]);
  /* object pointers → function pointers: the documented ORC idiom on POSIX */
  if (fns[0]) { memcpy(&out->fwd_f64, &fns[0], sizeof fns[0]); memcpy(&out->bwd_f64, &fns[1], sizeof fns[1]); }
  else if (all) { out->fwd_f64 = lazy_fwd_f64; out->bwd_f64 = lazy_bwd_f64; }
  if (fns[2]) { memcpy(&out->fwd_f32, &fns[2], sizeof fns[2]); memcpy(&out->bwd_f32, &fns[3], sizeof fns[3]); }
  else if (all) { out->fwd_f32 = lazy_fwd_f32; out->bwd_f32 = lazy_bwd_f32; }
  return 0;
}

int qkd_jit_compile(const qkd_ir_circuit *ir, qkd_kernel *out, qkd_error *err) {
  return qkd_jit_compile_ex(ir, NULL, out, err);
}

void qkd_jit_release(qkd_kernel *k) {
  if (!k) return;
  jit_session *s = k->engine_data;
  if (s) {
    LLVMErrorRef e = LLVMOrcDisposeLLJIT(s->jit);
    if (e) LLVMConsumeError(e);
    session_free(s);
  }
  memset(k, 0, sizeof *k);
}

int qkd_jit_cached(const qkd_kernel *k) {
  const jit_session *s = k && k->engine && strcmp(k->engine, "jit") == 0 ? k->engine_data : NULL;
  return s ? s->cached : 0;
}

/* ---- text IR and objects ------------------------------------------------------------------ */

int qkd_jit_emit_llvm(const qkd_ir_circuit *ir, FILE *out) {
  qkd_error err; /* printed as the message alone, as emit-llvm always has */
  if (qkd_ir_validate(ir, &err) != 0 || refuse_noisy(ir, &err)) { fprintf(stderr, "%s\n", err.msg); return -1; }
  target_caps host;
  LLVMTargetMachineRef tm = make_tm(NULL, NULL, LLVMRelocDefault, LLVMCodeModelJITDefault, &host, &err);
  if (!tm) { fprintf(stderr, "%s\n", err.msg); return -1; }
  jit_gen_cfg cfg;
  cfg_defaults(&cfg, NULL, &host);
  LLVMContextRef C = LLVMContextCreate(); /* ours */
  LLVMModuleRef M = LLVMModuleCreateWithNameInContext(ir->name ? ir->name : "qkd", C);
  int rc = build_module(M, C, tm, ir, &cfg, &err);
  if (rc == 0) {
    char *s = LLVMPrintModuleToString(M);
    fputs(s, out);
    LLVMDisposeMessage(s);
  } else {
    fprintf(stderr, "%s\n", err.msg);
  }
  LLVMDisposeModule(M);
  LLVMContextDispose(C);
  LLVMDisposeTargetMachine(tm);
  return rc;
}

int qkd_jit_emit_object(const qkd_ir_circuit *ir, const char *path, const char *cpu,
                        const char *symbol_prefix, qkd_error *err) {
  if (qkd_ir_validate(ir, err) != 0 || refuse_noisy(ir, err)) return -1;
  int native = !cpu || strcmp(cpu, "native") == 0;
  if (!native && strcmp(cpu, "generic") != 0) {
    return qkd_fail(err, QKD_ERR_INPUT, NULL, "jit: cpu must be \"native\" or \"generic\": %s", cpu);
  }
  target_caps caps;
  LLVMTargetMachineRef tm = native ? make_tm(NULL, NULL, LLVMRelocPIC, LLVMCodeModelDefault, &caps, err)
                                   : make_tm("x86-64", "", LLVMRelocPIC, LLVMCodeModelDefault, &caps, err);
  if (!tm) return -1;
  jit_gen_cfg cfg;
  cfg_defaults(&cfg, NULL, &caps);
  cfg.scratch = JIT_SCRATCH_MALLOC;
  cfg.prefix = symbol_prefix && *symbol_prefix ? symbol_prefix : "qkd_k";
  LLVMContextRef C = LLVMContextCreate(); /* ours */
  LLVMModuleRef M = LLVMModuleCreateWithNameInContext(ir->name ? ir->name : "qkd", C);
  int rc = build_module(M, C, tm, ir, &cfg, err);
  if (rc == 0) {
    char *msg = NULL;
    if (LLVMTargetMachineEmitToFile(tm, M, path, LLVMObjectFile, &msg)) {
      set_err(err, "cannot write the object file", msg);
      rc = -1;
    }
    if (msg) LLVMDisposeMessage(msg);
  }
  LLVMDisposeModule(M);
  LLVMContextDispose(C);
  LLVMDisposeTargetMachine(tm);
  return rc;
}
