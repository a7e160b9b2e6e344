/* driver.c — see driver.h. */
#include "driver.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "override.h"
#include "qkd_hash.h"
#include "sema.h"

qkd_model *qkd_driver_compile(qkd_arena *a, qkd_diag *d, const char *path, const char *stdlib_dir,
                              const char *const *sets, int n_sets) {
  qkd_program_ast prog;
  if (qkd_parse_program(a, d, path, stdlib_dir, &prog) != 0) return NULL;
  for (int i = 0; i < n_sets; i++) qkd_override_apply(a, d, &prog, sets[i]);
  if (d->errors) return NULL;
  return qkd_sema_check(a, d, &prog, path);
}

uint64_t qkd_driver_ir_hash(const qkd_ir_circuit *ir) {
  uint64_t h = QKD_HASH_FNV_OFFSET;
  int head[7] = {ir->n_qubits, ir->n_params, ir->n_features, (int)ir->encode, (int)ir->measure, ir->shots, ir->n_gates};
  h = qkd_hash_fnv(h, head, sizeof head);
  for (int i = 0; i < ir->n_gates; i++) {
    const qkd_ir_gate *g = &ir->gates[i];
    int na = qkd_gate(g->kind)->angles;
    for (int s = 0; s < (na > 1 ? na : 1); s++) { /* slot 0 always: one-angle fingerprints as before */
      int gi[5] = {(int)g->kind, g->q[0], g->q[1], (int)g->angle[s].kind, g->angle[s].index};
      double gd[2] = {g->angle[s].scale, g->angle[s].offset};
      h = qkd_hash_fnv(h, gi, sizeof gi);
      h = qkd_hash_fnv(h, gd, sizeof gd);
    }
  }
  return h;
}

const char *qkd_driver_out_dir(qkd_arena *a, const char *file) {
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  size_t n = strlen(base);
  if (n > 4 && !strcmp(base + n - 4, ".qkd")) n -= 4;
  return qkd_arena_printf(a, "runs/%.*s", (int)n, base);
}

static volatile int stop_requested;
static void on_sigint(int sig) {
  (void)sig;
  if (stop_requested) _exit(130); /* a second Ctrl-C: stop at once */
  stop_requested = 1;
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
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, NULL);
  ro->stop = &stop_requested;
  if (!ro->log) ro->log = stderr;
  return qkd_run_program(m, ro);
}
