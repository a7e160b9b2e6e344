/* main.c — the qkdc driver. Reads top to bottom as the pipeline:
 *   parse (grammar/, parse.c) → check (sema.c, lower.c) → model + flat circuit IR
 *   → draw | dump | sim (runtime interpreter / LLVM JIT) | run (runtime trainer) | build
 *   | export (OpenQASM, export.c).
 * Exit codes (spec §7): 0 success, 1 the user's error, 2 an internal error, 130 after Ctrl-C. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qkd_blas.h"
#include "draw.h"
#include "export.h"
#include "qkd_time.h"
#include "jit.h"
#include "qkd_gridreport.h"
#include "slurm.h"
#include "qkd_run.h"
#include "qkd_dmsim.h"
#include "qsim.h"
#include "build.h"
#include "driver.h"
#include "parse.h"
#include "sema.h"

static void usage(FILE *out) {
  fputs("usage: qkdc <command> FILE.qkd [options]\n"
        "  check FILE [--dump-ir]              parse and check; --dump-ir prints every student's circuit IR\n"
        "  draw FILE [--student NAME | --cell NAME]   a text diagram of a student's circuit\n"
        "  run FILE [--out DIR] [--set P=V]… [--threads N] [--cells K/N] [--fresh] [--no-cache] [--export qasm3|qasm2]\n"
        "                                      train teachers, run every experiment and grid cell\n"
        "  run FILE --teachers-only [--out DIR]   train and cache every teacher the program needs, then stop\n"
        "  cells FILE [--set P=V]…             the grid cells, one per line, in the order --cells slices\n"
        "  slurm FILE --out DIR [--tasks N] [--partition P] [--time HH:MM:SS] [--cpus C] [--mem SIZE] [--submit]\n"
        "                                      Slurm job scripts (teachers, a cells array, report) for a grid\n"
        "  report DIR… [-o OUT] [--compare F] [--runs]\n"
        "                                      merge grid cells of run directories: results.json, .md, .svg\n"
        "  sim FILE --circuit CALL --qubits N [--params F] [--input F] [--encode amplitude|CALL] [--noise N] [--grad]\n"
        "  emit-llvm FILE [--student NAME]     the LLVM IR of the specialised kernels\n"
        "  build FILE -o EXE [--cpu native|generic]   a standalone executable\n"
        "  export FILE [--experiment E] [--run distilled|baseline] [--weights W.qkw] [--format qasm3|qasm2|npz]\n"
        "         [--sample K | --features F] [--out DIR] [-o OUT]\n"
        "                                      a trained student's circuit as OpenQASM (docs/export.md)\n"
        "  --version, --help\n",
        out);
}

#define MAX_SETS 64

typedef struct {
  const char *command, *file, *student, *out_dir, *cell;
  int dump_ir, threads, grad, qubits, fresh, slice_k, slice_n, teachers_only, submit;
  int no_cache; /* --no-cache: compile every kernel, neither read nor write the object cache */
  const char *tasks, *partition, *time_limit, *cpus, *mem; /* qkdc slurm */
  const char *circuit, *params_file, *input_file, *encode, *noise, *exe, *cpu;
  const char *experiment, *run, *weights, *format, *sample, *features; /* qkdc export */
  int export_qasm;                                                    /* qkdc run --export */
  int n_sets;
  const char *sets[MAX_SETS]; /* --set PATH=VALUE, in order */
} options;

static int parse_args(int argc, char **argv, options *o) {
  memset(o, 0, sizeof *o);
  if (argc < 2) return -1;
  o->command = argv[1];
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--dump-ir")) o->dump_ir = 1;
    else if (!strcmp(a, "--student") && i + 1 < argc) o->student = argv[++i];
    else if (!strcmp(a, "--cell") && i + 1 < argc) o->cell = argv[++i];
    else if (!strcmp(a, "--fresh")) o->fresh = 1;
    else if (!strcmp(a, "--no-cache")) o->no_cache = 1;
    else if (!strcmp(a, "--teachers-only")) o->teachers_only = 1;
    else if (!strcmp(a, "--submit")) o->submit = 1;
    else if (!strcmp(a, "--tasks") && i + 1 < argc) o->tasks = argv[++i];
    else if (!strcmp(a, "--partition") && i + 1 < argc) o->partition = argv[++i];
    else if (!strcmp(a, "--time") && i + 1 < argc) o->time_limit = argv[++i];
    else if (!strcmp(a, "--cpus") && i + 1 < argc) o->cpus = argv[++i];
    else if (!strcmp(a, "--mem") && i + 1 < argc) o->mem = argv[++i];
    else if (!strcmp(a, "--cells") && i + 1 < argc) {
      if (qkd_driver_parse_slice(argv[++i], &o->slice_k, &o->slice_n) != 0) return -1;
    }
    else if (!strcmp(a, "--circuit") && i + 1 < argc) o->circuit = argv[++i];
    else if (!strcmp(a, "--params") && i + 1 < argc) o->params_file = argv[++i];
    else if (!strcmp(a, "--input") && i + 1 < argc) o->input_file = argv[++i];
    else if (!strcmp(a, "--encode") && i + 1 < argc) o->encode = argv[++i];
    else if (!strcmp(a, "--noise") && i + 1 < argc) o->noise = argv[++i];
    else if (!strcmp(a, "--grad")) o->grad = 1;
    else if (!strcmp(a, "--experiment") && i + 1 < argc) o->experiment = argv[++i];
    else if (!strcmp(a, "--run") && i + 1 < argc) o->run = argv[++i];
    else if (!strcmp(a, "--weights") && i + 1 < argc) o->weights = argv[++i];
    else if (!strcmp(a, "--format") && i + 1 < argc) o->format = argv[++i];
    else if (!strcmp(a, "--sample") && i + 1 < argc) o->sample = argv[++i];
    else if (!strcmp(a, "--features") && i + 1 < argc) o->features = argv[++i];
    else if (!strcmp(a, "--export") && i + 1 < argc) {
      const char *f = argv[++i];
      o->export_qasm = !strcmp(f, "qasm3") ? 3 : !strcmp(f, "qasm2") ? 2 : 0;
      if (!o->export_qasm) {
        fprintf(stderr, "qkdc: error: --export takes qasm3 or qasm2, not '%s'\n", f);
        return -1;
      }
    }
    else if (!strcmp(a, "-o") && i + 1 < argc) o->exe = argv[++i];
    else if (!strcmp(a, "--cpu") && i + 1 < argc) {
      o->cpu = argv[++i];
      if (strcmp(o->cpu, "native") && strcmp(o->cpu, "generic")) {
        fprintf(stderr, "qkdc: error: --cpu takes native or generic, not '%s'\n", o->cpu);
        return -1;
      }
    }
    else if (!strcmp(a, "--qubits") && i + 1 < argc) {
      char *end;
      long q = strtol(argv[++i], &end, 10);
      if (*end || q < 1 || q > QKD_MAX_QUBITS) {
        fprintf(stderr, "qkdc: error: --qubits takes a number from 1 to %d, not '%s'\n", QKD_MAX_QUBITS, argv[i]);
        return -1;
      }
      o->qubits = (int)q;
    }
    else if (!strcmp(a, "--out") && i + 1 < argc) o->out_dir = argv[++i];
    else if (!strcmp(a, "--set") && i + 1 < argc) {
      if (o->n_sets == MAX_SETS) {
        fprintf(stderr, "qkdc: error: more than %d --set options\n", MAX_SETS);
        return -1;
      }
      o->sets[o->n_sets++] = argv[++i];
    } else if (!strcmp(a, "--threads") && i + 1 < argc) {
      char *end;
      long t = strtol(argv[++i], &end, 10);
      if (*end || t < 1 || t > 256) {
        fprintf(stderr, "qkdc: error: --threads takes a number from 1 to 256, not '%s'\n", argv[i]);
        return -1;
      }
      o->threads = (int)t;
    }
    else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "qkdc: error: unknown option '%s' for '%s'\n", a, o->command);
      return -1;
    } else if (!o->file) o->file = a;
    else {
      fprintf(stderr, "qkdc: error: unexpected argument '%s'\n", a);
      return -1;
    }
  }
  if (!o->file) {
    fprintf(stderr, "qkdc: error: '%s' needs a .qkd file\n", o->command);
    return -1;
  }
  return 0;
}

/* Kernels for the trainer: the LLVM JIT, or the interpreter when QKD_JIT=0. ud: the options
 * (NULL: the defaults); the JIT's object cache unless --no-cache. */
static int kernel_for(void *ud, const qkd_ir_circuit *ir, qkd_kernel *k, double *ms, qkd_error *err) {
  const options *o = ud;
  double t0 = 1e3 * qkd_now_s();
  qkd_jit_options jo = {.specialise = -1, .cache_dir = o && o->no_cache ? NULL : qkd_jit_cache_dir()};
  if (!qkd_jit_enabled()) {
    *k = qkd_qsim_kernel(ir);
  } else if (qkd_jit_compile_ex(ir, &jo, k, err) != 0) {
    return -1;
  }
  *ms = 1e3 * qkd_now_s() - t0;
  return 0;
}

static void kernel_release(void *ud, qkd_kernel *k) {
  (void)ud;
  if (k->engine && !strcmp(k->engine, "jit")) qkd_jit_release(k);
}

/* Reads whitespace-separated numbers from `path` (NULL: none). Returns the count, or -1 after
 * reporting. *out is malloc'd. */
static int read_numbers(const char *path, double **out) {
  *out = NULL;
  if (!path) return 0;
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "%s: error: cannot open (%m)\n", path);
    return -1;
  }
  int n = 0, cap = 0;
  double *v = NULL, x;
  int r;
  while ((r = fscanf(f, "%lf", &x)) == 1) {
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      double *nv = realloc(v, sizeof *v * (size_t)cap);
      if (!nv) { free(v); fclose(f); fprintf(stderr, "%s: error: out of memory\n", path); return -1; }
      v = nv;
    }
    v[n++] = x;
  }
  int bad = r != EOF;
  fclose(f);
  if (bad) {
    fprintf(stderr, "%s: error: number %d is not a number (the file holds whitespace-separated numbers)\n", path, n + 1);
    free(v);
    return -1;
  }
  *out = v;
  return n;
}

static void json_row(const double *v, int n) {
  putchar('[');
  for (int i = 0; i < n; i++) printf("%s%.17g", i ? ", " : "", v[i]);
  putchar(']');
}

static void json_rows(const char *key, const double *m, int rows, int cols) {
  printf(",\n  \"%s\": [", key);
  for (int r = 0; r < rows; r++) {
    printf("%s\n    ", r ? "," : "");
    json_row(m + (size_t)r * cols, cols);
  }
  printf("\n  ]");
}

/* qkdc sim --noise: the density-matrix engine's outputs (qkd_dmsim.h) — the diagonal of ρ (before
 * read-out), the read bits' probabilities and <Z>, and with grad their Jacobians, one VJP per
 * output row. 0, or 1 after a message. */
static int sim_noisy(const qkd_ir_circuit *c, const double *pv, const double *xv, int grad) {
  int n = c->n_qubits, P = c->n_params, dim = 1 << n;
  qkd_ir_circuit cz = *c, cp = *c;
  cz.measure = QKD_MEASURE_Z;
  cp.measure = QKD_MEASURE_PROBS;
  qkd_error err;
  if (n > QKD_DM_MAX_QUBITS) {
    fprintf(stderr, "qkdc: error: --noise simulates at most %d qubits (a density matrix of %d qubits takes %zu bytes)\n",
            QKD_DM_MAX_QUBITS, n, qkd_dm_bytes(n));
    return 1;
  }
  double *rho = malloc(qkd_dm_bytes(n)), *probs = malloc(sizeof(double) * (size_t)dim), *z = malloc(sizeof(double) * (size_t)n);
  double *diag = malloc(sizeof(double) * (size_t)dim), *jz = calloc((size_t)n * P + 1, sizeof(double));
  double *jp = calloc((size_t)dim * P + 1, sizeof(double)), *e = calloc((size_t)dim, sizeof(double));
  int rc = 1;
  if (!rho || !probs || !z || !diag || !jz || !jp || !e) {
    fprintf(stderr, "qkdc: error: out of memory for the density matrix of %d qubits\n", n);
    goto out;
  }
  if (qkd_dm_forward(&cz, pv, xv, z, NULL, &err) != 0 || qkd_dm_forward(&cp, pv, xv, probs, rho, &err) != 0) {
    qkd_error_print(qkd_error_about(&err, "qkdc"), stderr);
    goto out;
  }
  for (int i = 0; i < dim; i++) diag[i] = rho[2 * ((size_t)i * dim + i)];
  printf("{\n  \"rho_diag\": ");
  json_row(diag, dim);
  printf(",\n  \"probs\": ");
  json_row(probs, dim);
  printf(",\n  \"z\": ");
  json_row(z, n);
  for (int which = 0; grad && which < 2; which++) {
    const qkd_ir_circuit *k = which ? &cp : &cz;
    int rows = which ? dim : n;
    double *jac = which ? jp : jz;
    for (int o = 0; o < rows; o++) {
      e[o] = 1.0;
      if (qkd_dm_vjp(k, pv, xv, e, jac + (size_t)o * P, NULL, &err) != 0) {
        qkd_error_print(qkd_error_about(&err, "qkdc"), stderr);
        goto out;
      }
      e[o] = 0.0;
    }
  }
  if (grad) {
    json_rows("jacobian_z", jz, n, P);
    json_rows("jacobian_probs", jp, dim, P);
  }
  printf("\n}\n");
  rc = 0;
out:
  free(rho), free(probs), free(z), free(diag), free(jz), free(jp), free(e);
  return rc;
}

/* qkdc sim: one circuit on one input; prints one JSON object (spec §7). */
static int cmd_sim(qkd_arena *a, qkd_diag *d, const options *o) {
  if (!o->circuit || !o->qubits) {
    fprintf(stderr, "qkdc: error: sim needs --circuit CALL and --qubits N\n");
    return 1;
  }
  int n = o->qubits;
  if (o->grad && n > 14) {
    fprintf(stderr, "qkdc: error: --grad is limited to 14 qubits (the Jacobian of the 2^%d probabilities is too large)\n", n);
    return 1;
  }
  qkd_program_ast prog;
  if (qkd_parse_program(a, d, o->file, qkd_parse_stdlib_dir(a), &prog) != 0) return 1;
  double *params = NULL, *input = NULL;
  int np = read_numbers(o->params_file, &params), ni = read_numbers(o->input_file, &input);
  int rc = 1;
  qkd_ir_circuit c;
  int amp = o->encode && !strcmp(o->encode, "amplitude");
  if (np < 0 || ni < 0) goto done;
  if (amp && ni > (1 << n)) {
    fprintf(stderr, "%s: error: amplitude encoding on %d qubits takes at most %d features, the file holds %d\n",
            o->input_file, n, 1 << n, ni);
    goto done;
  }
  if (qkd_sema_sim_circuit(a, d, &prog, o->circuit, o->encode, o->noise, n, ni > 0 ? ni : 1, &c) != 0) goto done;
  if (o->params_file ? np != c.n_params : 0) {
    fprintf(stderr, "%s: error: the circuit has %d trainable parameters, the file holds %d numbers\n", o->params_file,
            c.n_params, np);
    goto done;
  }
  if (o->input_file && ni < c.n_features) {
    fprintf(stderr, "%s: error: the circuit reads %d features, the file holds %d numbers\n", o->input_file,
            c.n_features, ni);
    goto done;
  }
  int P = c.n_params, F = c.n_features, dim = 1 << n;
  double *pv = calloc((size_t)P + 1, sizeof(double)), *xv = calloc((size_t)F + 1, sizeof(double));
  if (params) memcpy(pv, params, sizeof(double) * (size_t)P);
  if (input) memcpy(xv, input, sizeof(double) * (size_t)F);
  if (qkd_ir_noisy(&c)) {
    rc = sim_noisy(&c, pv, xv, o->grad);
    free(pv), free(xv);
    goto done;
  }
  double *state = malloc(sizeof(double) * 2 * (size_t)dim), *probs = malloc(sizeof(double) * (size_t)dim);
  double *z = malloc(sizeof(double) * (size_t)n);
  qkd_qsim_state(&c, pv, xv, state);
  qkd_ir_circuit cz = c, cp = c;
  cz.measure = QKD_MEASURE_Z;
  cp.measure = QKD_MEASURE_PROBS;
  /* outputs through the kernels the trainer uses (the JIT unless QKD_JIT=0) */
  qkd_kernel kz, kp;
  double ms;
  qkd_error err;
  if (kernel_for((void *)o, &cz, &kz, &ms, &err) != 0 || kernel_for((void *)o, &cp, &kp, &ms, &err) != 0) {
    qkd_error_print(qkd_error_about(&err, "qkdc"), stderr);
    exit(2);
  }
  void *ws = malloc(qkd_kernel_workspace_bytes(&c));
  kz.fwd_f64(&kz, pv, xv, 1, 0, 0, z, ws);
  kp.fwd_f64(&kp, pv, xv, 1, 0, 0, probs, ws);
  kernel_release(NULL, &kz);
  kernel_release(NULL, &kp);
  printf("{\n  \"state\": [");
  for (int i = 0; i < dim; i++) printf("%s[%.17g, %.17g]", i ? ", " : "", state[2 * i], state[2 * i + 1]);
  printf("],\n  \"probs\": ");
  json_row(probs, dim);
  printf(",\n  \"z\": ");
  json_row(z, n);
  if (o->grad) {
    double *jz = calloc((size_t)n * P + 1, sizeof(double)), *jp = calloc((size_t)dim * P + 1, sizeof(double));
    qkd_qsim_jacobian(&c, pv, xv, jz, jp);
    json_rows("jacobian_z", jz, n, P);
    json_rows("jacobian_probs", jp, dim, P);
    free(jz);
    free(jp);
  }
  printf("\n}\n");
  free(pv); free(xv); free(state); free(probs); free(z); free(ws);
  rc = 0;
done:
  free(params);
  free(input);
  return rc;
}

/* ---- run ------------------------------------------------------------------------------------- */

static int cmd_run(qkd_arena *a, const qkd_model *m, const options *o) {
  qkd_run_opts ro = {.threads = o->threads, .out_dir = o->out_dir ? o->out_dir : qkd_driver_out_dir(a, o->file),
                     .overrides = o->sets, .n_overrides = o->n_sets, .kernel_for = kernel_for,
                     .kernel_ud = (void *)o, .kernel_release = kernel_release, .slice_k = o->slice_k, .slice_n = o->slice_n,
                     .fresh = o->fresh, .teachers_only = o->teachers_only, .export_qasm = o->export_qasm};
  return qkd_driver_run(m, &ro);
}

/* The student of --cell NAME, of --student NAME, or the first one. */
static const qkd_m_student *pick_student(const qkd_model *m, const options *o) {
  if (o->cell) {
    for (int i = 0; i < m->n_cells; i++)
      if (!strcmp(m->cells[i].name, o->cell)) return &m->cells[i].experiment->student;
    return NULL;
  }
  for (int i = 0; i < m->n_students; i++)
    if (!o->student || !strcmp(m->students[i]->name, o->student)) return m->students[i];
  return NULL;
}

static const char *no_student(const options *o) {
  return o->cell ? "no grid cell of that name (qkdc cells FILE lists them)"
       : o->student ? "no student of that name" : "the program declares no student";
}

/* --dump-ir: every student, then each distinct circuit of the grid cells once. */
static void dump_ir(const qkd_model *m) {
  for (int i = 0; i < m->n_students; i++) qkd_ir_dump(&m->students[i]->circuit, stdout);
  for (int i = 0; i < m->n_cells; i++) {
    const qkd_ir_circuit *c = &m->cells[i].experiment->student.circuit;
    uint64_t h = qkd_driver_ir_hash(c) ^ (uint64_t)c->precision;
    int seen = 0;
    for (int j = 0; j < i && !seen; j++) {
      const qkd_ir_circuit *p = &m->cells[j].experiment->student.circuit;
      seen = (qkd_driver_ir_hash(p) ^ (uint64_t)p->precision) == h;
    }
    if (seen) continue;
    printf("# cell %s\n", m->cells[i].name);
    qkd_ir_dump(c, stdout);
  }
}

/* qkdc report DIR… [-o OUT] [--compare FILE.json] [--runs] */
static int qkd_report_command(int argc, char **argv) {
  const char *out = NULL, *compare = NULL;
  int runs = 0;
  const char **dirs = calloc((size_t)argc + 1, sizeof *dirs);
  int n = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
    else if (!strcmp(argv[i], "--compare") && i + 1 < argc) compare = argv[++i];
    else if (!strcmp(argv[i], "--runs")) runs = 1;
    else if (argv[i][0] == '-') {
      fprintf(stderr, "qkdc: error: unknown option '%s' for 'report' (report DIR… [-o OUT] [--compare FILE.json] [--runs])\n", argv[i]);
      free(dirs);
      return 1;
    } else dirs[n++] = argv[i];
  }
  if (n == 0) {
    fprintf(stderr, "qkdc: error: report needs at least one run directory: qkdc report DIR… [-o OUT]\n");
    free(dirs);
    return 1;
  }
  qkd_error err;
  int rc = qkd_gridreport(dirs, n, out ? out : dirs[0], compare, runs, stderr, &err);
  if (rc != 0) qkd_error_print(&err, stderr);
  free(dirs);
  return rc ? 1 : 0;
}

int main(int argc, char **argv) {
  qkd_blas_pin(argv); /* the same BLAS kernels on every machine: same bits (qkd_blas.h) */
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    usage(stdout);
    return 0;
  }
  if (argc >= 2 && !strcmp(argv[1], "--version")) {
    printf("qkdc %s\n", QKD_VERSION);
    return 0;
  }
  if (argc >= 2 && !strcmp(argv[1], "report")) return qkd_report_command(argc - 2, argv + 2);
  options o;
  if (parse_args(argc, argv, &o) != 0) {
    usage(stderr);
    return 1;
  }
  const char *known[] = {"check", "draw", "run", "sim", "emit-llvm", "build", "cells", "slurm", "export", NULL};
  int k = 0;
  while (known[k] && strcmp(known[k], o.command)) k++;
  if (!known[k]) {
    fprintf(stderr, "qkdc: error: unknown command '%s'\n", o.command);
    usage(stderr);
    return 1;
  }
  qkd_arena arena = {0};
  qkd_diag diag;
  qkd_diag_init(&diag, &arena);
  if (!strcmp(o.command, "sim")) {
    int rc = cmd_sim(&arena, &diag, &o);
    qkd_arena_free(&arena);
    return rc;
  }
  qkd_model *m = qkd_driver_compile(&arena, &diag, o.file, qkd_parse_stdlib_dir(&arena), o.sets, o.n_sets);
  int rc = 0;
  if (!m) {
    rc = 1;
  } else if (!strcmp(o.command, "check")) {
    if (o.dump_ir) dump_ir(m);
  } else if (!strcmp(o.command, "slurm")) {
    qkd_slurm_opts so = {.file = o.file, .out_dir = o.out_dir, .tasks = o.tasks, .partition = o.partition,
                         .time_limit = o.time_limit, .cpus = o.cpus, .mem = o.mem, .submit = o.submit,
                         .sets = o.sets, .n_sets = o.n_sets, .qkdc = argv[0]};
    rc = qkd_slurm_write(&arena, m, &so);
  } else if (!strcmp(o.command, "cells")) {
    for (int i = 0; i < m->n_cells; i++) printf("%s\n", m->cells[i].name);
  } else if (!strcmp(o.command, "draw")) {
    const qkd_m_student *st = pick_student(m, &o);
    if (!st) {
      fprintf(stderr, "%s: error: %s\n", o.file, no_student(&o));
      rc = 1;
    } else {
      qkd_draw_circuit(&st->circuit, stdout);
    }
  } else if (!strcmp(o.command, "run")) {
    rc = cmd_run(&arena, m, &o);
  } else if (!strcmp(o.command, "export")) {
    qkd_export_opts eo = {.experiment = o.experiment, .run = o.run, .weights = o.weights, .format = o.format,
                          .sample = o.sample, .features = o.features, .out = o.exe,
                          .out_dir = o.out_dir ? o.out_dir : qkd_driver_out_dir(&arena, o.file)};
    rc = qkd_export_command(&arena, m, &eo);
  } else if (!strcmp(o.command, "build")) {
    if (!o.exe) {
      fprintf(stderr, "qkdc: error: build needs -o EXE\n");
      rc = 1;
    } else {
      rc = qkd_build_executable(&arena, &diag, m, qkd_parse_stdlib_dir(&arena), o.exe, o.cpu ? o.cpu : "native");
    }
  } else if (!strcmp(o.command, "emit-llvm")) {
    const qkd_m_student *st = pick_student(m, &o);
    if (!st) {
      fprintf(stderr, "%s: error: %s\n", o.file, no_student(&o));
      rc = 1;
    } else if (qkd_jit_emit_llvm(&st->circuit, stdout) != 0) {
      fprintf(stderr, "%s: error: could not generate the kernels of '%s'\n", o.file, st->name);
      rc = 2;
    }
  } else {
    fprintf(stderr, "qkdc: error: '%s' is not implemented yet in this build\n", o.command);
    rc = 1;
  }
  qkd_arena_free(&arena);
  return rc;
}
