/* slurm.c — Slurm job scripts for a grid (slurm.h). */
#include "slurm.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qkd_file.h"

/* 'text' for a POSIX shell. */
static const char *sq(qkd_arena *a, const char *s) {
  char *out = qkd_arena_alloc(a, strlen(s) * 4 + 3), *p = out;
  *p++ = '\'';
  for (; *s; s++) {
    if (*s == '\'') { memcpy(p, "'\\''", 4); p += 4; }
    else *p++ = *s;
  }
  *p++ = '\'';
  *p = 0;
  return out;
}

static int positive(const char *s, long max, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || *end || v < 1 || v > max) return -1;
  *out = v;
  return 0;
}

typedef struct {
  const char *text;
} script;

static int emit_text(FILE *f, const void *ctx) { return fputs(((const script *)ctx)->text, f) < 0 ? -1 : 0; }

static int write_script(qkd_arena *a, const char *dir, const char *name, const char *text) {
  char *path = qkd_arena_printf(a, "%s/%s", dir, name);
  qkd_error err;
  script s = {text};
  if (qkd_file_write_atomic(path, emit_text, &s, &err) != 0) {
    qkd_error_print(&err, stderr);
    return -1;
  }
  if (chmod(path, 0755) != 0) { /* scripts are also run by hand */ }
  return 0;
}

/* Runs `sbatch --parsable ARGS` and returns the job id, or NULL after a message. */
static const char *sbatch(qkd_arena *a, const char *args) {
  char *cmd = qkd_arena_printf(a, "sbatch --parsable %s", args);
  FILE *p = popen(cmd, "r");
  if (!p) {
    fprintf(stderr, "qkdc: error: cannot run sbatch: %s\n", strerror(errno));
    return NULL;
  }
  char line[256] = "";
  if (!fgets(line, sizeof line, p)) line[0] = 0;
  int rc = pclose(p);
  char *semi = strpbrk(line, ";\n");
  if (semi) *semi = 0;
  if (rc != 0 || !line[0]) {
    fprintf(stderr, "qkdc: error: '%s' failed (exit %d): is Slurm reachable from here (sinfo)?\n", cmd,
            WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
    return NULL;
  }
  return qkd_arena_strdup(a, line);
}

int qkd_slurm_write(qkd_arena *a, const qkd_model *m, const qkd_slurm_opts *o) {
  if (!o->out_dir) {
    fprintf(stderr, "qkdc: error: slurm needs --out DIR: the run directory every job shares (on a shared file system)\n");
    return 1;
  }
  if (m->n_cells == 0) {
    fprintf(stderr, "%s: error: qkdc slurm runs grids, and the program declares none (for plain experiments, submit a "
                    "script that runs qkdc run)\n", m->path);
    return 1;
  }
  long tasks = m->n_cells, cpus = 2;
  if (o->tasks && positive(o->tasks, 1000000, &tasks) != 0) {
    fprintf(stderr, "qkdc: error: --tasks takes a positive number, not '%s'\n", o->tasks);
    return 1;
  }
  if (tasks > m->n_cells) tasks = m->n_cells;
  if (o->cpus && positive(o->cpus, 4096, &cpus) != 0) {
    fprintf(stderr, "qkdc: error: --cpus takes a positive number, not '%s'\n", o->cpus);
    return 1;
  }
  char abs_file[PATH_MAX], abs_dir[PATH_MAX], exe[PATH_MAX];
  qkd_error err;
  char *sdir_rel = qkd_arena_printf(a, "%s/slurm", o->out_dir);
  if (qkd_file_mkdir_p(sdir_rel, &err) != 0) {
    qkd_error_print(&err, stderr);
    return 1;
  }
  if (!realpath(o->file, abs_file) || !realpath(o->out_dir, abs_dir)) {
    fprintf(stderr, "%s: error: cannot resolve the path: %s\n", o->file, strerror(errno));
    return 1;
  }
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    fprintf(stderr, "qkdc: error: cannot find the running qkdc (/proc/self/exe)\n");
    return 1;
  }
  exe[n] = 0;
  const char *sdir = qkd_arena_printf(a, "%s/slurm", abs_dir);
  char *sets = "";
  for (int i = 0; i < o->n_sets; i++) sets = qkd_arena_printf(a, "%s --set %s", sets, sq(a, o->sets[i]));
  const char *stem = strrchr(abs_file, '/') + 1;
  char *head = qkd_arena_printf(a, "#SBATCH --cpus-per-task=%ld\n", cpus);
  if (o->partition) head = qkd_arena_printf(a, "%s#SBATCH --partition=%s\n", head, o->partition);
  if (o->time_limit) head = qkd_arena_printf(a, "%s#SBATCH --time=%s\n", head, o->time_limit);
  if (o->mem) head = qkd_arena_printf(a, "%s#SBATCH --mem=%s\n", head, o->mem);
  const char *data = getenv("QKD_DATA");
  char *env = data && *data ? qkd_arena_printf(a, "export QKD_DATA=%s\n", sq(a, data)) : "";
  const char *q = sq(a, exe), *f = sq(a, abs_file), *d = sq(a, abs_dir);
  char *teachers = qkd_arena_printf(a,
      "#!/bin/bash\n# qkd: train and cache every teacher of %s (written by qkdc slurm)\n"
      "#SBATCH --job-name=qkd-teachers-%s\n#SBATCH --output=%s/teachers-%%j.out\n%s"
      "set -eu\n%sexec %s run %s --teachers-only --out %s --threads \"${SLURM_CPUS_PER_TASK:-%ld}\"%s\n",
      stem, stem, sdir, head, env, q, f, d, cpus, sets);
  char *cells = qkd_arena_printf(a,
      "#!/bin/bash\n# qkd: the %d cells of %s as %ld array tasks; task i runs slice i/%ld (written by qkdc slurm).\n"
      "# A task stopped by its time limit, scancel or pre-emption (SIGTERM) keeps its finished cells and a\n"
      "# checkpoint of the cell in progress: submit this script again and only the unfinished cells run.\n"
      "#SBATCH --job-name=qkd-cells-%s\n#SBATCH --array=1-%ld\n#SBATCH --output=%s/cells-%%A_%%a.out\n%s"
      "set -eu\n%sexec %s run %s --cells \"${SLURM_ARRAY_TASK_ID}/%ld\" --out %s --threads \"${SLURM_CPUS_PER_TASK:-%ld}\"%s\n",
      m->n_cells, stem, tasks, tasks, stem, tasks, sdir, head, env, q, f, tasks, d, cpus, sets);
  char *report = qkd_arena_printf(a,
      "#!/bin/bash\n# qkd: merge the cells of %s into %s/results.{json,md} and one chart per grid\n"
      "#SBATCH --job-name=qkd-report-%s\n#SBATCH --output=%s/report-%%j.out\n#SBATCH --cpus-per-task=1\n%s%s%s"
      "set -eu\nexec %s report %s\n",
      stem, abs_dir, stem, sdir, o->partition ? qkd_arena_printf(a, "#SBATCH --partition=%s\n", o->partition) : "",
      o->time_limit ? "#SBATCH --time=00:30:00\n" : "", o->mem ? qkd_arena_printf(a, "#SBATCH --mem=%s\n", o->mem) : "", q, d);
  const char *ts = sq(a, qkd_arena_printf(a, "%s/teachers.sbatch", sdir)), *cs = sq(a, qkd_arena_printf(a, "%s/cells.sbatch", sdir)),
             *rs = sq(a, qkd_arena_printf(a, "%s/report.sbatch", sdir));
  char *submit = qkd_arena_printf(a,
      "#!/bin/sh\n# qkd: submit the three jobs of %s, chained (written by qkdc slurm)\nset -eu\n"
      "t=$(sbatch --parsable %s | cut -d';' -f1)\n"
      "c=$(sbatch --parsable --dependency=afterok:$t %s | cut -d';' -f1)\n"
      "r=$(sbatch --parsable --dependency=afterany:$c %s | cut -d';' -f1)\n"
      "echo \"teachers $t\"; echo \"cells $c\"; echo \"report $r\"\n",
      stem, ts, cs, rs);
  if (write_script(a, sdir, "teachers.sbatch", teachers) || write_script(a, sdir, "cells.sbatch", cells) ||
      write_script(a, sdir, "report.sbatch", report) || write_script(a, sdir, "submit.sh", submit))
    return 1;
  if (!o->submit) {
    printf("wrote %s/{teachers,cells,report}.sbatch (%d cells in %ld tasks); to submit:\n  sh %s/submit.sh\n", sdir,
           m->n_cells, tasks, sdir);
    return 0;
  }
  const char *t = sbatch(a, ts);
  const char *c = t ? sbatch(a, qkd_arena_printf(a, "--dependency=afterok:%s %s", t, cs)) : NULL;
  const char *r = c ? sbatch(a, qkd_arena_printf(a, "--dependency=afterany:%s %s", c, rs)) : NULL;
  if (!r) return 1;
  printf("teachers %s\ncells %s\nreport %s\n", t, c, r);
  return 0;
}
