/* exe_main.h — the `main` of an executable made by `qkdc build`: the program's sources are
 * built in (an in-memory file system), the kernels are compiled in (no LLVM at run time). It
 * accepts --out, --threads and --set like `qkdc run`; a --set on a student (or anything else that
 * would change a compiled circuit) is refused, and every circuit is checked against the
 * fingerprint of the kernels compiled for it before it runs. */
#ifndef QKD_EXE_MAIN_H
#define QKD_EXE_MAIN_H
#include <stdint.h>

#include "qkd_kernel.h"

typedef struct {
  const char *experiment;  /* the experiment whose student these kernels run */
  uint64_t ir_hash;        /* qkd_driver_ir_hash of the circuit at build time */
  qkd_fwd_f64_fn fwd_f64;
  qkd_bwd_f64_fn bwd_f64;
  qkd_fwd_f32_fn fwd_f32;
  qkd_bwd_f32_fn bwd_f32;
} qkd_exe_kernel;

typedef struct {
  const char *root_path;   /* the .qkd file as given to qkdc build */
  const char *stdlib_dir;  /* where std/… resolved at build time */
  int n_files;
  const char *const *paths; /* the sources, as resolved at build time */
  const char *const *texts;
  int n_kernels;
  const qkd_exe_kernel *kernels;
} qkd_exe_program;

int qkd_exe_main(int argc, char **argv, const qkd_exe_program *p);
#endif
