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
 *   - Target: the host CPU (LLVMGetHostCPUName + LLVMGetHostCPUFeatures); functions and module
 *     verified before any pass. The JIT compiles each precision's forward and backward entry
 *     points as two position-independent objects (on two threads) and links them into the
 *     kernel's LLJIT (so the same bytes can come from the object cache below).
 *   - Tiers (compiler/jit_backend.h): quick = passes "function(early-cse)" and code generation
 *     without optimisation (FastISel); O2 = "default<O2>" (no unrolling, no auto-vectorisers) and
 *     the default code generation level. By default the compile is tiered: qkd_jit_compile
 *     returns once the circuit's precision is compiled at the quick tier (objects found in the
 *     cache are O2 and skip both tiers); one background thread then compiles the O2 objects,
 *     stores them in the cache and swaps each entry point in (trampolines load it with acquire,
 *     the swap is a release store). Both tiers compile the same IR without fast-math flags, so
 *     they give bit-identical outputs and gradients: which tier ran a call never shows in a result.
 *     qkd_jit_release joins the background compile: with a cache directory after it finished
 *     and stored its objects, else cancelled at its next phase boundary (generation, passes,
 *     code generation); at exit, running background compiles are cancelled and joined.
 *     The quick code stays linked after the swap (a caller may still be in it).
 *   - Errors: functions returning int give 0 on success, -1 on failure with err filled (when
 *     not NULL; runtime/qkd_err.h): no path, msg "jit: what[: LLVM's message]" (kind INTERNAL,
 *     MEMORY, or INPUT for a bad cpu), or qkd_ir_validate's. LLVM errors are consumed here and
 *     never escape.
 *   - Environment: QKD_JIT=0 means "use the interpreter"; the CALLER checks qkd_jit_enabled().
 *     QKD_JIT_TIER (when qkd_jit_options.tier is 0): 0 = O2 only, synchronously (no background
 *     thread); 1 = the quick tier only (measurements); unset or anything else = tiered.
 *     QKD_JIT_OPTS (bit mask: 1 diagonal runs, 2 CNOT/SWAP permutations, 4 fusion; default 7) and
 *     QKD_JIT_VBYTES (16/32/64) override the defaults, for measurements only; QKD_JIT_TIMING=1
 *     prints the phase times of each object (tier, generate, verify, passes, codegen, thread CPU
 *     time), the session and link times, and when each O2 entry point came into use, on stderr.
 *   - Compile time is linear in the circuit: passes and instruction selection over straight-line
 *     code. W(8, 10) per precision, bench/qsim_bench under load 1.3: the quick tier ~30 ms
 *     (jit_ms), the O2 kernels in use ~450 ms after the start (jit_o2_ms; O2 alone ~320 ms);
 *     the LLJIT session is ~1.5 ms. A hit in the object cache skips all of it (about 2–3 ms,
 *     jit_warm_ms). The quick kernels run at ~55–60 % of O2's samples/s. */
#ifndef QKD_JIT_H
#define QKD_JIT_H

#include <stddef.h>
#include <stdio.h>

#include "qkd_err.h"
#include "qkd_kernel.h"

/* 0 if the environment says QKD_JIT=0, else 1. */
int qkd_jit_enabled(void);

/* Fills fwd/bwd for f64 and f32 in *out (engine "jit", out->ir = ir). The kernels of
 * ir->precision are compiled now (tiered: the quick tier now, O2 in the background); the other
 * precision's entry points compile on their first call, the same way (thread-safe; aborts with
 * a message if that compile fails, which would be a backend bug). On
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
  int tier;            /* QKD_JIT_TIER_*: 0 = default (QKD_JIT_TIER, else tiered) */
} qkd_jit_options;
enum {
  QKD_JIT_TIER_DEFAULT = 0,
  QKD_JIT_TIERED = 1, /* the quick tier now, O2 in the background (swapped in when done) */
  QKD_JIT_TIER_O2 = 2,    /* O2 only, synchronously */
  QKD_JIT_TIER_QUICK = 3  /* the quick tier only: no O2, no object cache (tests, measurements) */
};
int qkd_jit_compile_ex(const qkd_ir_circuit *ir, const qkd_jit_options *opt, qkd_kernel *out,
                       qkd_error *err);

/* The object cache (compiler/jit_cache.h): with opt->cache_dir set, each precision's O2 object
 * code (forward and backward: two entries) is looked up there by a key holding the whole
 * circuit, the code generation options, the host CPU and its features, and the qkdc and LLVM
 * versions; a hit is linked without compiling (and skips both tiers); on a miss the O2 object
 * is stored, atomically, once compiled (tiered: by the background compile). Quick-tier objects
 * are never stored, and QKD_JIT_TIER_QUICK does not read the cache. The directory stays under
 * QKD_CACHE_MAX_MB, default 256, least recently used entries removed first. A corrupt entry is a miss with a warning; a
 * cache that cannot be written warns once and is ignored. qkd_jit_cache_dir() is the default
 * directory: $QKD_CACHE_DIR (empty or "off": none), else $XDG_CACHE_HOME/qkd/kernels, else
 * $HOME/.cache/qkd/kernels. qkd_jit_cached(k): the precisions (1 f64, 2 f32) of k whose object
 * code came from the cache so far. */
const char *qkd_jit_cache_dir(void);
int qkd_jit_cached(const qkd_kernel *k);

/* Waits until the background O2 compiles started so far for k are done (and their objects
 * stored and in use); returns qkd_jit_optimised(k). Not concurrently with qkd_jit_release. */
int qkd_jit_wait(const qkd_kernel *k);
/* The precisions (1 f64, 2 f32) both of whose entry points run O2 code now (from the cache, an
 * O2-only compile or a finished background compile). */
int qkd_jit_optimised(const qkd_kernel *k);

/* Frees the JIT session of a kernel from qkd_jit_compile and zeroes *k (NULL/zeroed is fine);
 * joins its background compile first (see Tiers above). */
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
