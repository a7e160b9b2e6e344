/* jit_gen.h — private to compiler/jit*.c: LLVM IR generation for one circuit's kernels.
 *
 * jit_gen_module adds to module M (in context C) the kernel entry points
 *   <prefix>_fwd_f64, <prefix>_bwd_f64, <prefix>_fwd_f32, <prefix>_bwd_f32
 * (those asked for in cfg->precisions), with exactly the qkd_kernel.h signatures and external
 * linkage, plus internal helpers. Generated code layout ("lanes across samples"): a tile of V
 * samples is one state array of 2^n amplitudes, amplitude p holding V real parts then V
 * imaginary parts (<V x T> each), so every gate is pure lane-wise vector arithmetic.
 * Scratch: the caller's workspace if qkd_kernel_workspace_bytes(ir) is large enough, else
 * qkd_jit_scratch(bytes) (cfg->scratch == JIT_SCRATCH_TLS, the JIT) or malloc/free per call
 * (JIT_SCRATCH_MALLOC, object files). The caller owns C and M; nothing here takes ownership.
 * Floating point: no fast-math flags; multiply-adds are explicit llvm.fma (cfg->fma), so any pass
 * pipeline and instruction selector give the same bits (jit_backend.h's two tiers). The IR is
 * shaped for the quick tier's FastISel too: vector constants are loads from private globals. */
#ifndef QKD_JIT_GEN_H
#define QKD_JIT_GEN_H

#include "jit_internal.h"

#include <llvm-c/Core.h>

enum { JIT_PREC_F64 = 1, JIT_PREC_F32 = 2 };
enum { JIT_SCRATCH_TLS = 0, JIT_SCRATCH_MALLOC = 1 };
enum { JIT_PART_FWD = 1, JIT_PART_BWD = 2 };

typedef struct {
  const char *prefix; /* symbol prefix */
  int precisions;     /* JIT_PREC_* mask */
  int vbytes;         /* vector register bytes: 16, 32 or 64 */
  unsigned opts;      /* JIT_OPT_* */
  int scratch;        /* JIT_SCRATCH_* */
  int parts;          /* JIT_PART_* mask: the forward and/or backward entry points */
  int block;          /* cache blocking: 0 by size, -1 never, k ≥ 1 blocks of 2^k amplitudes */
  int fma;            /* the target has fused multiply-add: products feeding sums become llvm.fma */
} jit_gen_cfg;

int jit_gen_module(LLVMContextRef C, LLVMModuleRef M, const qkd_ir_circuit *ir,
                   const jit_gen_cfg *cfg, qkd_error *err);

/* Per-thread scratch for generated code (JIT only): a buffer of at least `bytes`, 64-aligned,
 * owned by the calling thread and freed at thread exit. Aborts on allocation failure. */
void *qkd_jit_scratch(uint64_t bytes);

#endif
