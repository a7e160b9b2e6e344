/* driver.c — see driver.h. */
#include "driver.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "grid.h"
#include "override.h"
#include "qkd_hash.h"
#include "sema.h"

qkd_model *qkd_driver_compile(qkd_arena *a, qkd_diag *d, const char *path, const char *stdlib_dir,
                              const char *const *sets, int n_sets) {
  qkd_program_ast prog;
  if (qkd_parse_program(a, d, path, stdlib_dir, &prog) != 0) return NULL;
  for (int i = 0; i < n_sets; i++) qkd_override_apply(a, d, &prog, sets[i]);
  if (d->errors) return NULL;
  qkd_model *m = qkd_sema_check(a, d, &prog, path);
  if (m && qkd_grid_expand(a, d, &prog, m, path) != 0) return NULL;
  return m;
}

uint64_t qkd_driver_ir_hash(const qkd_ir_circuit *ir) { return qkd_ir_hash(ir); }

int qkd_driver_parse_slice(const char *v, int *k, int *n) {
  char *end;
  long kk = strtol(v, &end, 10), nn = 0;
  if (end != v && *end == '/') nn = strtol(end + 1, &end, 10);
  if (*end || nn < 1 || kk < 1 || kk > nn || nn > 1000000) {
    fprintf(stderr, "qkdc: error: --cells takes K/N with 1 <= K <= N (the K-th of N slices of the grid cells), not '%s'\n", v);
    return -1;
  }
  *k = (int)kk, *n = (int)nn;
  return 0;
}

const char *qkd_driver_out_dir(qkd_arena *a, const char *file) {
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  size_t n = strlen(base);
  if (n > 4 && !strcmp(base + n - 4, ".qkd")) n -= 4;
  return qkd_arena_printf(a, "runs/%.*s", (int)n, base);
}

static volatile int stop_requested; /* the signal that asked to stop (SIGINT, SIGTERM), or 0 */
static void on_signal(int sig) {
  if (stop_requested) _exit(128 + stop_requested); /* a second signal: stop at once */
  stop_requested = sig;
}

int qkd_driver_run(const qkd_model *m, qkd_run_opts *ro) {
  if (m->n_teachers == 0 && m->n_experiments == 0) {
    fprintf(stderr, "%s: error: nothing to run: the program declares no teacher and no experiment\n", m->path);
    return 1;
  }
  if (ro->threads < 1) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ro->threads = cores > 0 ? (int)cores : 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL); /* Slurm's time limit, scancel and pre-emption */
  ro->stop = &stop_requested;
  if (!ro->log) ro->log = stderr;
  int rc = qkd_run_program(m, ro);
  if (rc == 130 && stop_requested) rc = 128 + stop_requested; /* 130 after SIGINT, 143 after SIGTERM */
  return rc;
}
