/* jit_backend.h — private to compiler/jit*.c: what the driver (jit.c: target machines, pass
 * pipelines, code generation) offers the JIT sessions (jit_session.c).
 *
 * Owns: the two compile tiers and their object code.
 *   JIT_TIER_QUICK  a cheap pipeline (JIT_QUICK_PASSES) and instruction selection without
 *                   optimisation (LLVMCodeGenLevelNone: FastISel, the fast register allocator);
 *   JIT_TIER_O2     "default<O2>" (loop unrolling and the auto-vectorisers off) and the default
 *                   code generation level.
 * Promises:
 *   - Both tiers compile the same generated IR, whose floating-point operations carry no
 *     fast-math flags (jit_gen.c): their kernels give bit-identical outputs and gradients.
 *   - jit_compile_object is thread-safe (its own LLVM context and target machine) and polls
 *     *cancel (when not NULL) between its phases (generate, passes, code generation): a set flag
 *     ends it early with 1, nothing allocated.
 *   - The error helpers fill err as jit.h describes ("jit: what[: LLVM's message]"). */
#ifndef QKD_JIT_BACKEND_H
#define QKD_JIT_BACKEND_H

#include <stdatomic.h>

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/TargetMachine.h>

#include "jit.h"
#include "jit_gen.h"

typedef enum { JIT_TIER_QUICK = 0, JIT_TIER_O2 = 1 } jit_tier;

/* The quick tier's passes: CSE of the generator's repeated loads, splats and products (cheap;
 * the instruction selector then sees a smaller function). */
#define JIT_QUICK_PASSES "function(early-cse)"

/* QKD_JIT_TIMING is set: phase times on stderr. */
int jit_timing_on(void);
/* Thread CPU time in ms (timing output only). */
double jit_thread_cpu_ms(void);
/* "jit: WHAT[: MSG]" into err (QKD_ERR_INTERNAL); returns -1. */
int jit_set_err(qkd_error *err, const char *what, const char *msg);
/* Consumes e into err; returns -1. */
int jit_error(LLVMErrorRef e, const char *what, qkd_error *err);
/* Initialises LLVM's native target once; 0, or -1 with err set. */
int jit_init(qkd_error *err);

/* A circuit with noise: err filled (QKD_ERR_INPUT), 1; else 0. The kernels apply gates alone. */
int jit_refuse_noisy(const qkd_ir_circuit *ir, qkd_error *err);

/* A target machine for the host with the JIT's code model (for an LLJIT); NULL with err set. */
LLVMTargetMachineRef jit_host_tm(qkd_error *err);

/* cfg for the kernels of opt (NULL: defaults) on a target with these features. */
void jit_cfg_defaults(jit_gen_cfg *cfg, const qkd_jit_options *opt, const char *features);

/* Position-independent object code (*buf, ours) of ir's entry points cfg->parts of precisions
 * cfg->precisions for cpu/features at `tier`. Returns 0, -1 with err set, or 1 if *cancel was
 * seen set (then *buf is NULL). `label` names the object in QKD_JIT_TIMING lines. */
int jit_compile_object(const qkd_ir_circuit *ir, const jit_gen_cfg *cfg, const char *cpu, const char *features,
                       jit_tier tier, const atomic_int *cancel, const char *label, LLVMMemoryBufferRef *buf,
                       qkd_error *err);

#endif
