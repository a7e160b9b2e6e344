/* jit.c — the LLVM backend's driver (jit.h): target machines, the pass pipeline, ORC LLJIT
 * sessions, LLVM IR text and object files. Code generation itself is jit_gen.c.
 * Every ownership transfer to LLVM is commented; every LLVMErrorRef is consumed (jit_error). */
#include "jit.h"

#include <pthread.h>
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

#include "jit_gen.h"

#include <time.h>

/* QKD_JIT_TIMING=1: phase times on stderr (measurements only). */
static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}
static int timing_on(void) {
  const char *s = getenv("QKD_JIT_TIMING");
  return s && *s && strcmp(s, "0") != 0;
}

static void set_err(char *err, size_t errlen, const char *what, const char *msg) {
  if (err && errlen) snprintf(err, errlen, "jit: %s%s%s", what, msg ? ": " : "", msg ? msg : "");
}

/* Consumes e (an LLVMErrorRef) into err; returns -1. */
static int jit_error(LLVMErrorRef e, const char *what, char *err, size_t errlen) {
  char *m = LLVMGetErrorMessage(e); /* consumes e */
  set_err(err, errlen, what, m);
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

/* Vector register bytes the features allow. */
static int vbytes_for(const char *features) {
  const char *p = features;
  int avx512 = 0, avx = 0;
  while (p && *p) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == 8 && strncmp(p, "+avx512f", 8) == 0) avx512 = 1;
    if (len == 4 && strncmp(p, "+avx", 4) == 0) avx = 1;
    p = e ? e + 1 : NULL;
  }
  return avx512 ? 64 : avx ? 32 : 16;
}

/* A target machine for cpu/features (NULL = host). Returns NULL with err set on failure. */
static LLVMTargetMachineRef make_tm(const char *cpu, const char *features, LLVMRelocMode reloc,
                                    LLVMCodeModel cm, int *vbytes, char *err, size_t errlen) {
  pthread_once(&init_once, init_llvm);
  if (init_failed) { set_err(err, errlen, "cannot initialise the native target", NULL); return NULL; }
  char *triple = LLVMGetDefaultTargetTriple(); /* ours: disposed below */
  char *hcpu = NULL, *hfeat = NULL;
  if (!cpu) { cpu = hcpu = LLVMGetHostCPUName(); features = hfeat = LLVMGetHostCPUFeatures(); }
  LLVMTargetRef target;
  char *msg = NULL;
  LLVMTargetMachineRef tm = NULL;
  if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
    set_err(err, errlen, "no target for the host triple", msg);
  } else {
    const char *cgl = getenv("QKD_JIT_CGLEVEL");
    LLVMCodeGenOptLevel lvl = cgl && *cgl ? (LLVMCodeGenOptLevel)atoi(cgl) : LLVMCodeGenLevelDefault;
    tm = LLVMCreateTargetMachine(target, triple, cpu, features, lvl, reloc, cm);
    if (!tm) set_err(err, errlen, "cannot create a target machine", NULL);
    if (vbytes) *vbytes = vbytes_for(features);
  }
  if (msg) LLVMDisposeMessage(msg);
  LLVMDisposeMessage(triple);
  if (hcpu) LLVMDisposeMessage(hcpu);
  if (hfeat) LLVMDisposeMessage(hfeat);
  return tm;
}

/* Generates, verifies and optimises the module for ir into M (triple/layout from tm). */
static int build_module(LLVMModuleRef M, LLVMContextRef C, LLVMTargetMachineRef tm,
                        const qkd_ir_circuit *ir, const jit_gen_cfg *cfg, char *err, size_t errlen) {
  char *triple = LLVMGetTargetMachineTriple(tm);
  LLVMSetTarget(M, triple);
  LLVMDisposeMessage(triple);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  LLVMSetModuleDataLayout(M, td); /* copies the layout */
  LLVMDisposeTargetData(td);
  double t0 = now_ms();
  if (jit_gen_module(C, M, ir, cfg, err, errlen) != 0) return -1;
  double t1 = now_ms();
  for (LLVMValueRef f = LLVMGetFirstFunction(M); f; f = LLVMGetNextFunction(f))
    if (!LLVMIsDeclaration(f) && LLVMVerifyFunction(f, LLVMReturnStatusAction)) {
      set_err(err, errlen, "generated function fails verification", LLVMGetValueName(f));
      return -1;
    }
  char *msg = NULL;
  int bad = LLVMVerifyModule(M, LLVMReturnStatusAction, &msg);
  if (bad) set_err(err, errlen, "generated module fails verification", msg);
  if (msg) LLVMDisposeMessage(msg); /* allocated even when there is no error */
  if (bad) return -1;
  LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
  const char *unr = getenv("QKD_JIT_UNROLL"), *pipe = getenv("QKD_JIT_PASSES");
  LLVMPassBuilderOptionsSetLoopUnrolling(po, unr && *unr == '1');
  /* the generated code is explicitly vectorised (lanes across samples): the auto-vectorisers
   * only cost compile time */
  LLVMPassBuilderOptionsSetLoopVectorization(po, 0);
  LLVMPassBuilderOptionsSetSLPVectorization(po, 0);
  LLVMErrorRef e = LLVMRunPasses(M, pipe && *pipe ? pipe : "default<O2>", tm, po);
  LLVMDisposePassBuilderOptions(po);
  if (e) return jit_error(e, "optimisation failed", err, errlen);
  if (timing_on()) fprintf(stderr, "jit: generate %.1f ms, verify+O2 %.1f ms\n", t1 - t0, now_ms() - t1);
  return 0;
}

static void cfg_defaults(jit_gen_cfg *cfg, const qkd_jit_options *opt, int host_vbytes) {
  cfg->precisions = JIT_PREC_F64 | JIT_PREC_F32;
  if (opt && opt->precisions == 1) cfg->precisions = JIT_PREC_F64;
  if (opt && opt->precisions == 2) cfg->precisions = JIT_PREC_F32;
  cfg->opts = opt && opt->specialise >= 0 ? (unsigned)opt->specialise & JIT_OPT_ALL : jit_env_opts();
  int vb = opt && opt->vector_bytes ? opt->vector_bytes : jit_env_vbytes();
  if (vb != 16 && vb != 32 && vb != 64) vb = host_vbytes;
  if (vb > host_vbytes) vb = host_vbytes;
  cfg->vbytes = vb;
  cfg->scratch = JIT_SCRATCH_TLS;
  cfg->prefix = "qkd_k";
}

/* ---- JIT ---------------------------------------------------------------------------------- */

typedef struct {
  LLVMOrcLLJITRef jit;
} jit_session;

/* Defines name → addr as an absolute symbol in jd. */
static int define_abs(LLVMOrcLLJITRef J, LLVMOrcJITDylibRef jd, const char *name, void *addr,
                      char *err, size_t errlen) {
  LLVMOrcCSymbolMapPair pair;
  pair.Name = LLVMOrcLLJITMangleAndIntern(J, name); /* retained once: owned by the MU below */
  pair.Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)addr;
  pair.Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
  pair.Sym.Flags.TargetFlags = 0;
  LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(&pair, 1); /* takes the name */
  LLVMErrorRef e = LLVMOrcJITDylibDefine(jd, mu); /* on success jd owns mu */
  if (e) {
    LLVMOrcDisposeMaterializationUnit(mu); /* on failure it is still ours */
    return jit_error(e, "cannot define a runtime symbol", err, errlen);
  }
  return 0;
}

int qkd_jit_compile_ex(const qkd_ir_circuit *ir, const qkd_jit_options *opt, qkd_kernel *out,
                       char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (qkd_ir_validate(ir, err, errlen) != 0) return -1;
  int host_vb = 16;
  /* tm_opt: for the pass pipeline (ours); tm_jit: handed to the JIT's target machine builder */
  LLVMTargetMachineRef tm_opt = make_tm(NULL, NULL, LLVMRelocDefault, LLVMCodeModelJITDefault, &host_vb, err, errlen);
  if (!tm_opt) return -1;
  jit_gen_cfg cfg;
  cfg_defaults(&cfg, opt, host_vb);

  LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext(); /* ours until the TSM */
  LLVMContextRef C = LLVMOrcThreadSafeContextGetContext(tsc);
  LLVMModuleRef M = LLVMModuleCreateWithNameInContext(ir->name ? ir->name : "qkd", C); /* ours */
  int rc = build_module(M, C, tm_opt, ir, &cfg, err, errlen);
  LLVMDisposeTargetMachine(tm_opt);
  if (rc != 0) {
    LLVMDisposeModule(M);
    LLVMOrcDisposeThreadSafeContext(tsc);
    return -1;
  }

  LLVMTargetMachineRef tm_jit = make_tm(NULL, NULL, LLVMRelocDefault, LLVMCodeModelJITDefault, NULL, err, errlen);
  if (!tm_jit) {
    LLVMDisposeModule(M);
    LLVMOrcDisposeThreadSafeContext(tsc);
    return -1;
  }
  LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
  /* tm_jit → jtmb → jb → LLJIT: each call takes ownership of its argument */
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm_jit));
  LLVMOrcLLJITRef J = NULL;
  LLVMErrorRef e = LLVMOrcCreateLLJIT(&J, jb); /* consumes jb, even on failure */
  if (e) {
    LLVMDisposeModule(M);
    LLVMOrcDisposeThreadSafeContext(tsc);
    return jit_error(e, "cannot create the LLJIT", err, errlen);
  }
  LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(J);
  LLVMOrcDefinitionGeneratorRef pg = NULL;
  e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&pg, LLVMOrcLLJITGetGlobalPrefix(J), NULL, NULL);
  if (e) {
    rc = jit_error(e, "cannot search the process's symbols", err, errlen);
  } else {
    LLVMOrcJITDylibAddGenerator(jd, pg); /* jd owns pg */
    /* the runtime helpers generated code calls (not necessarily exported by the executable) */
    rc = define_abs(J, jd, "qkd_kernel_sample_f64", (void *)qkd_kernel_sample_f64, err, errlen);
    if (rc == 0) rc = define_abs(J, jd, "qkd_jit_scratch", (void *)qkd_jit_scratch, err, errlen);
  }
  if (rc != 0) {
    LLVMDisposeModule(M);
    LLVMOrcDisposeThreadSafeContext(tsc);
    LLVMErrorRef d = LLVMOrcDisposeLLJIT(J);
    if (d) LLVMConsumeError(d);
    return -1;
  }
  LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(M, tsc); /* tsm owns M */
  LLVMOrcDisposeThreadSafeContext(tsc); /* the context lives on inside tsm */
  e = LLVMOrcLLJITAddLLVMIRModule(J, jd, tsm); /* on success J owns tsm */
  if (e) {
    LLVMOrcDisposeThreadSafeModule(tsm); /* on failure it is still ours */
    rc = jit_error(e, "cannot add the module", err, errlen);
  }
  void *fns[4] = {NULL, NULL, NULL, NULL};
  double tc0 = now_ms();
  static const char *names[4] = {"qkd_k_fwd_f64", "qkd_k_bwd_f64", "qkd_k_fwd_f32", "qkd_k_bwd_f32"};
  for (int i = 0; i < 4 && rc == 0; i++) {
    if (!(cfg.precisions & (i < 2 ? JIT_PREC_F64 : JIT_PREC_F32))) continue;
    LLVMOrcExecutorAddress addr = 0;
    e = LLVMOrcLLJITLookup(J, &addr, names[i]); /* materialises (codegen) on first lookup */
    if (e) rc = jit_error(e, "symbol lookup failed", err, errlen);
    fns[i] = (void *)(uintptr_t)addr;
  }
  if (timing_on()) fprintf(stderr, "jit: codegen+link %.1f ms\n", now_ms() - tc0);
  jit_session *s = rc == 0 ? malloc(sizeof *s) : NULL;
  if (rc != 0 || !s) {
    if (rc == 0) set_err(err, errlen, "out of memory", NULL);
    LLVMErrorRef d = LLVMOrcDisposeLLJIT(J);
    if (d) LLVMConsumeError(d);
    return -1;
  }
  s->jit = J;
  out->ir = ir;
  out->engine = "jit";
  /* object pointers → function pointers: the documented ORC idiom on POSIX */
  memcpy(&out->fwd_f64, &fns[0], sizeof fns[0]);
  memcpy(&out->bwd_f64, &fns[1], sizeof fns[1]);
  memcpy(&out->fwd_f32, &fns[2], sizeof fns[2]);
  memcpy(&out->bwd_f32, &fns[3], sizeof fns[3]);
  out->engine_data = s;
  return 0;
}

int qkd_jit_compile(const qkd_ir_circuit *ir, qkd_kernel *out, char *err, size_t errlen) {
  return qkd_jit_compile_ex(ir, NULL, out, err, errlen);
}

void qkd_jit_release(qkd_kernel *k) {
  if (!k) return;
  jit_session *s = k->engine_data;
  if (s) {
    LLVMErrorRef e = LLVMOrcDisposeLLJIT(s->jit);
    if (e) LLVMConsumeError(e);
    free(s);
  }
  memset(k, 0, sizeof *k);
}

/* ---- text IR and objects ------------------------------------------------------------------ */

int qkd_jit_emit_llvm(const qkd_ir_circuit *ir, FILE *out) {
  char err[512];
  if (qkd_ir_validate(ir, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return -1; }
  int host_vb = 16;
  LLVMTargetMachineRef tm = make_tm(NULL, NULL, LLVMRelocDefault, LLVMCodeModelJITDefault, &host_vb, err, sizeof err);
  if (!tm) { fprintf(stderr, "%s\n", err); return -1; }
  jit_gen_cfg cfg;
  cfg_defaults(&cfg, NULL, host_vb);
  LLVMContextRef C = LLVMContextCreate(); /* ours */
  LLVMModuleRef M = LLVMModuleCreateWithNameInContext(ir->name ? ir->name : "qkd", C);
  int rc = build_module(M, C, tm, ir, &cfg, err, sizeof err);
  if (rc == 0) {
    char *s = LLVMPrintModuleToString(M);
    fputs(s, out);
    LLVMDisposeMessage(s);
  } else {
    fprintf(stderr, "%s\n", err);
  }
  LLVMDisposeModule(M);
  LLVMContextDispose(C);
  LLVMDisposeTargetMachine(tm);
  return rc;
}

int qkd_jit_emit_object(const qkd_ir_circuit *ir, const char *path, const char *cpu,
                        const char *symbol_prefix, char *err, size_t errlen) {
  if (qkd_ir_validate(ir, err, errlen) != 0) return -1;
  int native = !cpu || strcmp(cpu, "native") == 0;
  if (!native && strcmp(cpu, "generic") != 0) {
    set_err(err, errlen, "cpu must be \"native\" or \"generic\"", cpu);
    return -1;
  }
  int vb = 16;
  LLVMTargetMachineRef tm = native ? make_tm(NULL, NULL, LLVMRelocPIC, LLVMCodeModelDefault, &vb, err, errlen)
                                   : make_tm("x86-64", "", LLVMRelocPIC, LLVMCodeModelDefault, &vb, err, errlen);
  if (!tm) return -1;
  jit_gen_cfg cfg;
  cfg_defaults(&cfg, NULL, vb);
  cfg.scratch = JIT_SCRATCH_MALLOC;
  cfg.prefix = symbol_prefix && *symbol_prefix ? symbol_prefix : "qkd_k";
  LLVMContextRef C = LLVMContextCreate(); /* ours */
  LLVMModuleRef M = LLVMModuleCreateWithNameInContext(ir->name ? ir->name : "qkd", C);
  int rc = build_module(M, C, tm, ir, &cfg, err, errlen);
  if (rc == 0) {
    char *msg = NULL;
    if (LLVMTargetMachineEmitToFile(tm, M, path, LLVMObjectFile, &msg)) {
      set_err(err, errlen, "cannot write the object file", msg);
      rc = -1;
    }
    if (msg) LLVMDisposeMessage(msg);
  }
  LLVMDisposeModule(M);
  LLVMContextDispose(C);
  LLVMDisposeTargetMachine(tm);
  return rc;
}
