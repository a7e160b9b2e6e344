/* build.h — `qkdc build`: a standalone executable for a checked program (see build.c). */
#ifndef QKD_BUILD_H
#define QKD_BUILD_H
#include "diag.h"
#include "qkd_model.h"
/* d holds the program's sources (as loaded); cpu is "native" or "generic". Returns the exit code. */
int qkd_build_executable(qkd_arena *a, const qkd_diag *d, const qkd_model *m, const char *stdlib_dir,
                         const char *out, const char *cpu);
#endif
