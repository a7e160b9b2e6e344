/* jit.h — the LLVM backend: compiles one qkd_ir_circuit into batched forward and adjoint-backward
 * kernels with the qkd_kernel ABI (runtime/qkd_kernel.h), JIT'd with ORC LLJIT or written to an
 * object file for `qkdc build`.
 *
 * Contract:
 *   - Callers: qkdc (emit-llvm, build, run/train through the trainer), tests, bench. Runtime code
 *     never includes this header (runtime/ does not depend on compiler/ or LLVM).
 *   - ir must pass qkd_ir_validate and must outlive the kernel (the kernel keeps the pointer).
 *   - The kernels have exactly the qkd_kernel.h semantics: outputs per sample; d_params
 *     accumulated (+=), d_features overwritten (NULL allowed); shots sampled through k->sample
 *     (NULL: qkd_kernel_sample_f64) keyed by (seed, first_sample + i); backward recomputes the
 *     forward.
 *     Results are deterministic: same inputs and same batch → bit-identical outputs/gradients.
 *     Every rounding is fixed by the generated IR (no fast-math flags, not even `contract`;
 *     multiply-adds are explicit llvm.fma where the target has FMA), so optimisation level and
 *     instruction selection never change a bit. They agree with the interpreter
 *     (runtime/qsim.c) to rounding, not bit for bit (gates may be fused, reordered where they
 *     commute, and computed with FMA).
 *   - Generated code: one tile of V samples per pass ("lanes across samples": amplitude p of a
 *     tile holds V real parts, then V imaginary parts), V = vector register bytes / sizeof(T)
 *     (host features: 64 with AVX-512F, 32 with AVX, else 16). Specialisations: one pass per run
 *     of diagonal gates (phase table built once per call), CNOT/SWAP folded into the amplitude
 *     addressing (no pass), consecutive single-qubit gates on one qubit fused into one 2×2
 *     matrix; constants (strides, masks, fixed angles, gate sequence) are IR constants.
 *   - Scratch: the caller's workspace (qkd_kernel_workspace_bytes) when it is large enough, else a
 *     per-thread buffer owned by this library (JIT) or malloc/free per call (object files).
 *   - Thread safety: compile/release/emit may be called from any thread (each compile has its own
 *     LLVM context and LLJIT); compiled kernels are re-entrant (per-call scratch is per thread).
 *   - Target: the host CPU (LLVMGetHostCPUName + LLVMGetHostCPUFeatures), passes
 *     "default<O2>" (new pass manager), functions and module verified before codegen. The JIT
 *     compiles each precision to position-independent object code and links that into the
 *     kernel's LLJIT (so the same bytes can come from the object cache below).
 *   - Errors: functions returning int give 0 on success, -1 on failure with err filled (when
 *     not NULL; runtime/qkd_err.h): no path, msg "jit: what[: LLVM's message]" (kind INTERNAL,
 *     MEMORY, or INPUT for a bad cpu), or qkd_ir_validate's. LLVM errors are consumed here and
 *     never escape.
 *   - Environment: QKD_JIT=0 means "use the interpreter"; the CALLER checks qkd_jit_enabled().
 *     QKD_JIT_OPTS (bit mask: 1 diagonal runs, 2 CNOT/SWAP permutations, 4 fusion; default 7) and
 *     QKD_JIT_VBYTES (16/32/64) override the defaults, for measurements only; QKD_JIT_TIMING=1
 *     prints the phase times of each compile (session, generate, verify + O2, codegen, link) on
 *     stderr.
 *   - Compile time is linear in the circuit: O2 and instruction selection over straight-line
 *     code, a few hundred ms for W(8, 10) per precision; the LLJIT session is ~1 ms. A hit in
 *     the object cache skips all of it (about 3 ms for W(8, 10), bench/qsim_bench's jit_warm_ms). */
#ifndef QKD_JIT_H
#define QKD_JIT_H

#include <stddef.h>
#include <stdio.h>

#include "qkd_err.h"
#include "qkd_kernel.h"

/* 0 if the environment says QKD_JIT=0, else 1. */
int qkd_jit_enabled(void);

/* Fills fwd/bwd for f64 and f32 in *out (engine "jit", out->ir = ir). The kernels of
 * ir->precision are compiled now; the other precision's entry points compile on their first call
 * (thread-safe; aborts with a message if that compile fails, which would be a backend bug). On
 * failure *out is zeroed. The caller releases a successful kernel with qkd_jit_release. A circuit
 * with noise (qkd_ir_noisy) is refused with an error here, by emit-llvm and by emit-object: the
 * kernels would apply its gates only (the runtime runs noisy circuits on qkd_dmsim.h's engine). */
int qkd_jit_compile(const qkd_ir_circuit *ir, qkd_kernel *out, qkd_error *err);

/* Tuning knobs for measurements (qkd_jit_compile uses all defaults). */
typedef struct {
  int precisions;      /* 0 = both; 1 = f64 only; 2 = f32 only (other pointers left NULL) */
  int specialise;      /* -1 = default (QKD_JIT_OPTS or all); else a mask as in QKD_JIT_OPTS */
  int vector_bytes;    /* 0 = default (QKD_JIT_VBYTES or host); else 16, 32 or 64 */
  const char *cache_dir; /* NULL = no object cache; else the directory (created when needed) */
  int block;           /* 0 = default (QKD_JIT_BLOCK, else cache blocking chosen by the state's
                          size); -1 = never; k ≥ 1 = blocks of 2^k amplitudes wherever possible */
} qkd_jit_options;
int qkd_jit_compile_ex(const qkd_ir_circuit *ir, const qkd_jit_options *opt, qkd_kernel *out,
                       qkd_error *err);

/* The object cache (compiler/jit_cache.h): with opt->cache_dir set, each precision's object code
 * is looked up there by a key holding the whole circuit, the code generation options, the host
 * CPU and its features, and the qkdc and LLVM versions; a hit is linked without compiling, a
 * miss compiles and stores it (atomically; the directory stays under QKD_CACHE_MAX_MB, default
 * 256, least recently used entries removed first). A corrupt entry is a miss with a warning; a
 * cache that cannot be written warns once and is ignored. qkd_jit_cache_dir() is the default
 * directory: $QKD_CACHE_DIR (empty or "off": none), else $XDG_CACHE_HOME/qkd/kernels, else
 * $HOME/.cache/qkd/kernels. qkd_jit_cached(k): the precisions (1 f64, 2 f32) of k whose object
 * code came from the cache so far. */
const char *qkd_jit_cache_dir(void);
int qkd_jit_cached(const qkd_kernel *k);

/* Frees the JIT session of a kernel from qkd_jit_compile and zeroes *k (NULL/zeroed is fine). */
void qkd_jit_release(qkd_kernel *k);

/* Prints the optimised LLVM module (both precisions) to out. */
int qkd_jit_emit_llvm(const qkd_ir_circuit *ir, FILE *out);

/* Writes an object file with external functions <prefix>_fwd_f64, <prefix>_bwd_f64,
 * <prefix>_fwd_f32, <prefix>_bwd_f32 (qkd_kernel.h signatures; of their `k` argument only the
 * `sample` field is read, and k may be NULL: then shots go through qkd_kernel_sample_f64).
 * cpu: "native" (host CPU and features) or "generic" (baseline x86-64). Position independent;
 * needs qkd_kernel_workspace_bytes / qkd_kernel_sample_f64 (libqkdrt) and malloc/free at link. */
int qkd_jit_emit_object(const qkd_ir_circuit *ir, const char *path, const char *cpu,
                        const char *symbol_prefix, qkd_error *err);

#endif
