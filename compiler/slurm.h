/* slurm.h — `qkdc slurm`: a grid as three Slurm jobs (issue S, docs/cluster.md).
 * Writes DIR/slurm/teachers.sbatch (`qkdc run FILE --teachers-only`), cells.sbatch (a job array
 * of N tasks; task i runs `qkdc run FILE --cells i/N`), report.sbatch (`qkdc report DIR`) and
 * submit.sh (the three sbatch calls chained with --dependency: cells after the teachers
 * succeed, the report after every cell task ends, whatever its state). Every path in them is
 * absolute; the --set list and $QKD_DATA of this call are carried into them. With submit, runs
 * the three sbatch calls itself and prints the job ids. Returns the exit code (0, or 1 after a
 * message). */
#ifndef QKD_SLURM_H
#define QKD_SLURM_H
#include "arena.h"
#include "qkd_model.h"

typedef struct {
  const char *file, *out_dir;
  const char *tasks, *partition, *time_limit, *cpus, *mem; /* as given, or NULL */
  int submit;
  const char *const *sets;
  int n_sets;
  const char *qkdc;              /* argv[0] (the running executable is used) */
} qkd_slurm_opts;

int qkd_slurm_write(qkd_arena *a, const qkd_model *m, const qkd_slurm_opts *o);
#endif
