/* jit.c — the LLVM backend's driver (jit.h, jit_backend.h): target machines, the two tiers'
 * pass pipelines and code generation to object code, LLVM IR text and object files. IR
 * generation is jit_gen.c; JIT sessions (ORC LLJIT, the background O2 tier) are jit_session.c.
 * Every ownership transfer to LLVM is commented; every LLVMErrorRef is consumed (jit_error). */
#include "jit_backend.h"
#include "qkd_time.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include <time.h>

/* QKD_JIT_TIMING=1: phase times on stderr (measurements only). */
int jit_timing_on(void) {
  const char *s = getenv("QKD_JIT_TIMING");
  return s && *s && strcmp(s, "0") != 0;
}

double jit_thread_cpu_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

/* "jit: WHAT: MSG" into err (an internal error: the backend failed); returns -1. */
int jit_set_err(qkd_error *err, const char *what, const char *msg) {
  return qkd_fail(err, QKD_ERR_INTERNAL, NULL, "jit: %s%s%s", what, msg ? ": " : "", msg ? msg : "");
}
#define set_err jit_set_err

int jit_error(LLVMErrorRef e, const char *what, qkd_error *err) {
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
int jit_init(qkd_error *err) {
  pthread_once(&init_once, init_llvm);
  return init_failed ? set_err(err, "cannot initialise the native target", NULL) : 0;
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

/* A target machine for cpu/features (NULL = host) generating code at `level`. Returns NULL with
 * err set on failure. */
static LLVMTargetMachineRef make_tm(const char *cpu, const char *features, LLVMRelocMode reloc,
                                    LLVMCodeModel cm, LLVMCodeGenOptLevel level, qkd_error *err) {
  if (jit_init(err) != 0) return NULL;
  char *triple = LLVMGetDefaultTargetTriple(); /* ours: disposed below */
  char *hcpu = NULL, *hfeat = NULL;
  if (!cpu) { cpu = hcpu = LLVMGetHostCPUName(); features = hfeat = LLVMGetHostCPUFeatures(); }
  LLVMTargetRef target;
  char *msg = NULL;
  LLVMTargetMachineRef tm = NULL;
  if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
    set_err(err, "no target for the host triple", msg);
  } else {
    tm = LLVMCreateTargetMachine(target, triple, cpu, features, level, reloc, cm);
    if (!tm) set_err(err, "cannot create a target machine", NULL);
  }
  if (msg) LLVMDisposeMessage(msg);
  LLVMDisposeMessage(triple);
  if (hcpu) LLVMDisposeMessage(hcpu);
  if (hfeat) LLVMDisposeMessage(hfeat);
  return tm;
}

LLVMTargetMachineRef jit_host_tm(qkd_error *err) {
  return make_tm(NULL, NULL, LLVMRelocDefault, LLVMCodeModelJITDefault, LLVMCodeGenLevelDefault, err);
}

/* Phase times of one object (QKD_JIT_TIMING): wall and thread CPU ms of generate, verify,
 * passes, codegen, each from the marks before and after it. */
typedef struct { double wall[5], cpu[5]; } phase_times;
static void mark(phase_times *pt, int i) {
  if (!pt) return;
  pt->wall[i] = 1e3 * qkd_now_s();
  pt->cpu[i] = jit_thread_cpu_ms();
}

static int cancelled(const atomic_int *cancel) { return cancel && atomic_load_explicit(cancel, memory_order_relaxed); }

/* Generates, verifies and optimises (tier's passes) the module for ir into M (triple/layout from
 * tm). Returns 0, -1 with err set, or 1 if *cancel was set after generation. */
static int build_module(LLVMModuleRef M, LLVMContextRef C, LLVMTargetMachineRef tm, const qkd_ir_circuit *ir,
                        const jit_gen_cfg *cfg, jit_tier tier, const atomic_int *cancel, phase_times *pt,
                        qkd_error *err) {
  char *triple = LLVMGetTargetMachineTriple(tm);
  LLVMSetTarget(M, triple);
  LLVMDisposeMessage(triple);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
  LLVMSetModuleDataLayout(M, td); /* copies the layout */
  LLVMDisposeTargetData(td);
  mark(pt, 0);
  if (jit_gen_module(C, M, ir, cfg, err) != 0) return -1;
  mark(pt, 1);
  char *msg = NULL;
  int bad = LLVMVerifyModule(M, LLVMReturnStatusAction, &msg);
  if (msg) LLVMDisposeMessage(msg); /* allocated even when there is no error */
  if (bad) { /* name the function at fault, if one is */
    for (LLVMValueRef f = LLVMGetFirstFunction(M); f; f = LLVMGetNextFunction(f))
      if (!LLVMIsDeclaration(f) && LLVMVerifyFunction(f, LLVMReturnStatusAction))
        return set_err(err, "generated function fails verification", LLVMGetValueName(f));
    LLVMVerifyModule(M, LLVMReturnStatusAction, &msg);
    set_err(err, "generated module fails verification", msg);
    LLVMDisposeMessage(msg);
    return -1;
  }
  if (cancelled(cancel)) return 1;
  mark(pt, 2);
  LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
  /* loops over amplitudes stay loops: unrolling them costs compile time */
  LLVMPassBuilderOptionsSetLoopUnrolling(po, 0);
  /* the generated code is explicitly vectorised (lanes across samples): the auto-vectorisers
   * only cost compile time */
  LLVMPassBuilderOptionsSetLoopVectorization(po, 0);
  LLVMPassBuilderOptionsSetSLPVectorization(po, 0);
  LLVMErrorRef e = LLVMRunPasses(M, tier == JIT_TIER_O2 ? "default<O2>" : JIT_QUICK_PASSES, tm, po);
  LLVMDisposePassBuilderOptions(po);
  if (e) return jit_error(e, "optimisation failed", err);
  mark(pt, 3);
  return 0;
}

void jit_cfg_defaults(jit_gen_cfg *cfg, const qkd_jit_options *opt, const char *features) {
  target_caps caps = caps_of(features);
  cfg->precisions = JIT_PREC_F64 | JIT_PREC_F32;
  if (opt && opt->precisions == 1) cfg->precisions = JIT_PREC_F64;
  if (opt && opt->precisions == 2) cfg->precisions = JIT_PREC_F32;
  cfg->opts = opt && opt->specialise >= 0 ? (unsigned)opt->specialise & JIT_OPT_ALL : jit_env_opts();
  int vb = opt && opt->vector_bytes ? opt->vector_bytes : jit_env_vbytes();
  if (vb != 16 && vb != 32 && vb != 64) vb = caps.vbytes;
  if (vb > caps.vbytes) vb = caps.vbytes;
  cfg->fma = caps.fma;
  cfg->vbytes = vb;
  cfg->block = opt && opt->block ? opt->block : jit_env_block();
  cfg->scratch = JIT_SCRATCH_TLS;
  cfg->prefix = "qkd_k";
  cfg->parts = JIT_PART_FWD | JIT_PART_BWD;
}

int jit_compile_object(const qkd_ir_circuit *ir, const jit_gen_cfg *cfg, const char *cpu, const char *features,
                       jit_tier tier, const atomic_int *cancel, const char *label, LLVMMemoryBufferRef *buf,
                       qkd_error *err) {
  *buf = NULL;
  double c0 = jit_thread_cpu_ms();
  /* position independent, small code model: JITLink reaches the process's symbols through its
   * own stubs wherever it places the code */
  LLVMTargetMachineRef tm = make_tm(cpu, features, LLVMRelocPIC, LLVMCodeModelDefault,
                                    tier == JIT_TIER_O2 ? LLVMCodeGenLevelDefault : LLVMCodeGenLevelNone, err);
  if (!tm) return -1;
  LLVMContextRef C = LLVMContextCreate(); /* ours */
  LLVMModuleRef M = LLVMModuleCreateWithNameInContext(ir->name ? ir->name : "qkd", C);
  phase_times pt;
  int rc = build_module(M, C, tm, ir, cfg, tier, cancel, &pt, err);
  if (rc == 0 && cancelled(cancel)) rc = 1;
  if (rc == 0) {
    char *msg = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, M, LLVMObjectFile, &msg, buf)) {
      rc = set_err(err, "code generation failed", msg);
      *buf = NULL;
    }
    if (msg) LLVMDisposeMessage(msg);
  }
  mark(&pt, 4);
  if (rc == 0 && jit_timing_on()) {
    double *w = pt.wall, *c = pt.cpu;
    fprintf(stderr, "jit: %s %s: generate %.1f, verify %.1f, passes %.1f, codegen %.1f ms; thread cpu %.1f, %.1f, "
            "%.1f, %.1f ms, in all %.1f\n", tier == JIT_TIER_O2 ? "O2" : "quick", label, w[1] - w[0], w[2] - w[1],
            w[3] - w[2], w[4] - w[3], c[1] - c[0], c[2] - c[1], c[3] - c[2], c[4] - c[3], c[4] - c0);
  }
  LLVMDisposeModule(M);
  LLVMContextDispose(C);
  LLVMDisposeTargetMachine(tm);
  return rc;
}

/* ---- text IR and objects ------------------------------------------------------------------ */

int jit_refuse_noisy(const qkd_ir_circuit *ir, qkd_error *err) {
  if (!qkd_ir_noisy(ir)) return 0;
  qkd_fail(err, QKD_ERR_INPUT, NULL, "circuit '%s' has noise: the compiled kernels run noiseless circuits only "
           "(noisy ones run on the density-matrix engine, qkd_dmsim.h)", ir->name ? ir->name : "?");
  return 1;
}

int qkd_jit_emit_llvm(const qkd_ir_circuit *ir, FILE *out) {
  qkd_error err; /* printed as the message alone, as emit-llvm always has */
  if (qkd_ir_validate(ir, &err) != 0 || jit_refuse_noisy(ir, &err)) { fprintf(stderr, "%s\n", err.msg); return -1; }
  char *feat = NULL;
  LLVMTargetMachineRef tm = make_tm(NULL, NULL, LLVMRelocDefault, LLVMCodeModelJITDefault, LLVMCodeGenLevelDefault, &err);
  if (!tm) { fprintf(stderr, "%s\n", err.msg); return -1; }
  jit_gen_cfg cfg;
  jit_cfg_defaults(&cfg, NULL, feat = LLVMGetHostCPUFeatures());
  LLVMDisposeMessage(feat);
  LLVMContextRef C = LLVMContextCreate(); /* ours */
  LLVMModuleRef M = LLVMModuleCreateWithNameInContext(ir->name ? ir->name : "qkd", C);
  int rc = build_module(M, C, tm, ir, &cfg, JIT_TIER_O2, NULL, NULL, &err);
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
  if (qkd_ir_validate(ir, err) != 0 || jit_refuse_noisy(ir, err)) return -1;
  int native = !cpu || strcmp(cpu, "native") == 0;
  if (!native && strcmp(cpu, "generic") != 0) {
    return qkd_fail(err, QKD_ERR_INPUT, NULL, "jit: cpu must be \"native\" or \"generic\": %s", cpu);
  }
  char *hfeat = native ? LLVMGetHostCPUFeatures() : NULL;
  LLVMTargetMachineRef tm = native ? make_tm(NULL, NULL, LLVMRelocPIC, LLVMCodeModelDefault, LLVMCodeGenLevelDefault, err)
                                   : make_tm("x86-64", "", LLVMRelocPIC, LLVMCodeModelDefault, LLVMCodeGenLevelDefault, err);
  jit_gen_cfg cfg;
  jit_cfg_defaults(&cfg, NULL, native ? hfeat : "");
  if (hfeat) LLVMDisposeMessage(hfeat);
  if (!tm) return -1;
  cfg.scratch = JIT_SCRATCH_MALLOC;
  cfg.prefix = symbol_prefix && *symbol_prefix ? symbol_prefix : "qkd_k";
  LLVMContextRef C = LLVMContextCreate(); /* ours */
  LLVMModuleRef M = LLVMModuleCreateWithNameInContext(ir->name ? ir->name : "qkd", C);
  int rc = build_module(M, C, tm, ir, &cfg, JIT_TIER_O2, NULL, NULL, err);
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
