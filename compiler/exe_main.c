/* exe_main.c — see exe_main.h. */
#include "qkd_blas.h"
#include "exe_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"

typedef struct {
  const qkd_exe_program *p;
} exe_ctx;

static int kernel_for(void *ud, const qkd_ir_circuit *ir, qkd_kernel *k, double *ms, qkd_error *err) {
  const exe_ctx *x = ud;
  uint64_t h = qkd_driver_ir_hash(ir);
  for (int i = 0; i < x->p->n_kernels; i++) {
    const qkd_exe_kernel *e = &x->p->kernels[i];
    if (e->ir_hash != h) continue;
    *k = (qkd_kernel){.ir = ir, .engine = "aot", .fwd_f64 = e->fwd_f64, .bwd_f64 = e->bwd_f64,
                      .fwd_f32 = e->fwd_f32, .bwd_f32 = e->bwd_f32};
    *ms = 0;
    return 0;
  }
  return qkd_fail(err, QKD_ERR_INPUT, NULL,
                  "the circuit of student '%s' is not the one this executable was built with; rebuild it with qkdc build",
                  ir->name ? ir->name : "?");
}

static void usage(const char *argv0, FILE *out) {
  fprintf(out, "usage: %s [--out DIR] [--threads N] [--set PATH=VALUE]... [--cells K/N] [--fresh]\n"
               "Runs the experiments built into this executable (see qkdc build).\n", argv0);
}

int qkd_exe_main(int argc, char **argv, const qkd_exe_program *p) {
  qkd_blas_pin(argv); /* the same BLAS kernels on every machine: same bits (qkd_blas.h) */
  const char *out = NULL;
  int threads = 0, n_sets = 0, fresh = 0, slice_k = 0, slice_n = 0;
  const char **sets = calloc((size_t)argc + 1, sizeof *sets);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(argv[0], stdout);
      free(sets);
      return 0;
    } else if (!strcmp(a, "--out") && i + 1 < argc) {
      out = argv[++i];
    } else if (!strcmp(a, "--threads") && i + 1 < argc) {
      char *end;
      long t = strtol(argv[++i], &end, 10);
      if (*end || t < 1 || t > 256) {
        fprintf(stderr, "%s: error: --threads takes a number from 1 to 256, not '%s'\n", argv[0], argv[i]);
        free(sets);
        return 1;
      }
      threads = (int)t;
    } else if (!strcmp(a, "--fresh")) {
      fresh = 1;
    } else if (!strcmp(a, "--cells") && i + 1 < argc) {
      if (qkd_driver_parse_slice(argv[++i], &slice_k, &slice_n) != 0) {
        free(sets);
        return 1;
      }
    } else if (!strcmp(a, "--set") && i + 1 < argc) {
      sets[n_sets++] = argv[++i];
    } else {
      fprintf(stderr, "%s: error: unknown argument '%s'\n", argv[0], a);
      usage(argv[0], stderr);
      free(sets);
      return 1;
    }
  }
  qkd_vfs vfs = {p->n_files, p->paths, p->texts};
  qkd_parse_set_vfs(&vfs);
  qkd_arena arena = {0};
  qkd_diag diag;
  qkd_diag_init(&diag, &arena);
  int rc = 1;
  /* --set on a student would change its compiled circuit: refuse it by name first */
  qkd_program_ast prog;
  if (qkd_parse_program(&arena, &diag, p->root_path, p->stdlib_dir, &prog) != 0) goto done;
  for (int i = 0; i < n_sets; i++) {
    const char *dot = strchr(sets[i], '.');
    size_t len = dot ? (size_t)(dot - sets[i]) : strlen(sets[i]);
    for (int j = 0; j < prog.decls.len; j++) {
      const qkd_ast *d = prog.decls.items[j];
      if (strlen(d->name) == len && !strncmp(d->name, sets[i], len) &&
          (d->decl_kind == QKD_DECL_STUDENT || d->decl_kind == QKD_DECL_CIRCUIT || d->decl_kind == QKD_DECL_ENCODING)) {
        fprintf(stderr, "%s: error: --set %s changes a compiled circuit; this executable accepts --set only for fields "
                        "that keep its kernels (epochs, batch, optimizer, seed, data limits, ...): rebuild with qkdc build\n",
                argv[0], sets[i]);
        goto done;
      }
    }
  }
  qkd_arena_free(&arena);
  qkd_diag_init(&diag, &arena);
  qkd_model *m = qkd_driver_compile(&arena, &diag, p->root_path, p->stdlib_dir, sets, n_sets);
  if (!m) goto done;
  exe_ctx x = {p};
  qkd_run_opts ro = {.threads = threads, .out_dir = out ? out : qkd_driver_out_dir(&arena, p->root_path),
                     .overrides = sets, .n_overrides = n_sets, .kernel_for = kernel_for, .kernel_ud = &x,
                     .slice_k = slice_k, .slice_n = slice_n, .fresh = fresh};
  rc = qkd_driver_run(m, &ro);
done:
  qkd_arena_free(&arena);
  free(sets);
  return rc;
}
