/* main.c — the qkdc driver. Reads top to bottom as the pipeline:
 *   parse (grammar/, parse.c) → check (sema.c, lower.c) → model + flat circuit IR
 *   → draw | dump | sim (runtime interpreter / LLVM JIT) | run (runtime trainer) | build.
 * Exit codes (spec §7): 0 success, 1 the user's error, 2 an internal error, 130 after Ctrl-C. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "override.h"
#include "parse.h"
#include "sema.h"

static void usage(FILE *out) {
  fputs("usage: qkdc <command> FILE.qkd [options]\n"
        "  check FILE [--dump-ir]              parse and check; --dump-ir prints every student's circuit IR\n"
        "  draw FILE [--student NAME]          a text diagram of a student's circuit\n"
        "  run FILE [--out DIR] [--set P=V]… [--threads N]   train teachers and run every experiment\n"
        "  sim FILE --circuit CALL --qubits N [--params F] [--input F] [--encode amplitude|CALL] [--grad]\n"
        "  emit-llvm FILE [--student NAME]     the LLVM IR of the specialised kernels\n"
        "  build FILE -o EXE [--cpu native|generic]   a standalone executable\n"
        "  --version, --help\n",
        out);
}

#define MAX_SETS 64

typedef struct {
  const char *command, *file, *student, *out_dir;
  int dump_ir, threads;
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

/* Front end: file → checked model, or NULL after diagnostics. */
static qkd_model *compile(qkd_arena *a, qkd_diag *d, const options *o) {
  qkd_program_ast prog;
  if (qkd_parse_program(a, d, o->file, qkd_parse_stdlib_dir(a), &prog) != 0) return NULL;
  for (int i = 0; i < o->n_sets; i++) qkd_override_apply(a, d, &prog, o->sets[i]);
  if (d->errors) return NULL;
  return qkd_sema_check(a, d, &prog, o->file);
}

static const qkd_m_student *pick_student(const qkd_model *m, const char *name) {
  for (int i = 0; i < m->n_students; i++)
    if (!name || !strcmp(m->students[i]->name, name)) return m->students[i];
  return NULL;
}

int main(int argc, char **argv) {
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    usage(stdout);
    return 0;
  }
  if (argc >= 2 && !strcmp(argv[1], "--version")) {
    printf("qkdc %s\n", QKD_VERSION);
    return 0;
  }
  options o;
  if (parse_args(argc, argv, &o) != 0) {
    usage(stderr);
    return 1;
  }
  const char *known[] = {"check", "draw", "run", "sim", "emit-llvm", "build", NULL};
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
  qkd_model *m = compile(&arena, &diag, &o);
  int rc = 0;
  if (!m) {
    rc = 1;
  } else if (!strcmp(o.command, "check")) {
    if (o.dump_ir)
      for (int i = 0; i < m->n_students; i++) qkd_ir_dump(&m->students[i]->circuit, stdout);
  } else if (!strcmp(o.command, "draw")) {
    const qkd_m_student *st = pick_student(m, o.student);
    if (!st) {
      fprintf(stderr, "%s: error: %s\n", o.file, o.student ? "no student of that name" : "the program declares no student");
      rc = 1;
    } else {
      qkd_draw_circuit(&st->circuit, stdout);
    }
  } else if (!strcmp(o.command, "run")) {
    fprintf(stderr, "%s: checked: %d teacher%s, %d experiment%s. Training is not implemented yet in this build.\n", o.file,
            m->n_teachers, m->n_teachers == 1 ? "" : "s", m->n_experiments, m->n_experiments == 1 ? "" : "s");
  } else {
    fprintf(stderr, "qkdc: error: '%s' is not implemented yet in this build\n", o.command);
    rc = 1;
  }
  qkd_arena_free(&arena);
  return rc;
}
