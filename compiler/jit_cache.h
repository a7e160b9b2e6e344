/* jit_cache.h — private to compiler/jit*.c: the on-disk cache of compiled kernel object code.
 *
 * Owns: the entry files of one cache directory, DIR/<16 hex digits>.qko, one per (circuit,
 * precision, forward or backward part, code generation options, CPU, qkdc and LLVM versions), and their format:
 *   "QKDKO1\n" "<key bytes> <object bytes> <16 hex digits: FNV-1a of key then object>\n"
 *   key (text, below), object (an ELF relocatable object, as the JIT links it).
 * Promises:
 *   - jit_cache_key makes the key: a text that holds every input of code generation exactly
 *     (doubles as C99 hex floats), so two circuits share an entry only if their kernels would be
 *     the same code. The file name is the key's 64-bit hash; a load compares the whole key, so a
 *     hash collision is a miss, never a wrong kernel.
 *   - jit_cache_load returns the object bytes of a valid entry (malloc'd) and marks the entry
 *     used (its mtime); a missing entry, or one for another key, is a miss (NULL, silent); a
 *     truncated or corrupt entry is a miss with a warning on stderr naming the file, and the
 *     entry is removed (the next store replaces it).
 *   - jit_cache_store writes an entry atomically (runtime/qkd_file.h), so processes and threads
 *     sharing a directory see a whole entry or none; then keeps the directory under its size
 *     bound (QKD_CACHE_MAX_MB, default 256; fractions allowed) by removing the least recently used entries, and
 *     removes temporary files of killed writers older than a day. A failed write (read-only
 *     directory, full disk) warns once per process and is otherwise ignored: the cache never
 *     fails a compile.
 *   - qkd_jit_cache_dir (declared in jit.h, defined here): the directory a run uses by default —
 *     $QKD_CACHE_DIR if set (empty or "off": no cache), else $XDG_CACHE_HOME/qkd/kernels, else
 *     $HOME/.cache/qkd/kernels, else none (NULL). The string is static or the environment's. */
#ifndef QKD_JIT_CACHE_H
#define QKD_JIT_CACHE_H

#include <stddef.h>

#include "jit_gen.h"

/* The key (malloc'd, NUL-terminated; its length in *len) for ir's kernels of precision mask
 * cfg->precisions and parts cfg->parts under cfg, for the target cpu/features. NULL on out of memory. */
char *jit_cache_key(const qkd_ir_circuit *ir, const jit_gen_cfg *cfg, const char *cpu,
                    const char *features, size_t *len);

void *jit_cache_load(const char *dir, const char *key, size_t key_len, size_t *obj_len);
void jit_cache_store(const char *dir, const char *key, size_t key_len, const void *obj, size_t obj_len);

#endif
