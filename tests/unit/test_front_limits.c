/* test_front_limits.c — the front end on hostile inputs: a 1 MB program, 10,000-deep nesting of
 * brackets, of unary minus and of left-associative chains, a huge loop. Each must end in
 * located errors (or a clean check), never a crash, a stack overflow or a hang. */
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "sema.h"
#include "testutil.h"

/* Parses and checks `text`; returns the error count and copies the first message's text. */
static int run(const char *text, int *errors_out) {
  qkd_arena a = {0};
  qkd_diag d;
  qkd_diag_init(&d, &a);
  d.out = fopen("/dev/null", "w");
  qkd_program_ast prog = {0};
  qkd_parse_text(&a, &d, "limits.qkd", text, (uint32_t)strlen(text), &prog.decls);
  /* keep only declarations, as the loader does */
  qkd_vec decls = {0};
  for (int i = 0; i < prog.decls.len; i++)
    if (((qkd_ast *)prog.decls.items[i])->kind == QKD_AST_DECL) qkd_vec_push(&a, &decls, prog.decls.items[i]);
  prog.decls = decls;
  qkd_model *m = d.errors ? NULL : qkd_sema_check(&a, &d, &prog, "limits.qkd");
  int ok = m != NULL;
  fclose(d.out);
  *errors_out = d.errors;
  qkd_arena_free(&a);
  return ok;
}

static char *repeat(const char *head, const char *unit, int n, const char *mid, const char *unit2, int n2, const char *tail) {
  size_t len = strlen(head) + strlen(unit) * n + strlen(mid) + strlen(unit2) * n2 + strlen(tail) + 1;
  char *s = malloc(len), *p = s;
  p += sprintf(p, "%s", head);
  for (int i = 0; i < n; i++) p += sprintf(p, "%s", unit);
  p += sprintf(p, "%s", mid);
  for (int i = 0; i < n2; i++) p += sprintf(p, "%s", unit2);
  sprintf(p, "%s", tail);
  return s;
}

int main(void) {
  int errs;
  const char *student = "student s { qubits: 2 circuit: c measure: z head: none }\n";
  char *big = repeat("circuit c() {\n", "  h(0) ry(1) cnot(0, 1) rz(1, 0.5)\n", 30000, "}\n", "", 0, student);
  CHECK(strlen(big) > 1000000);
  CHECK(run(big, &errs) == 1 && errs == 0); /* a 1 MB program checks clean */
  free(big);

  char *parens = repeat("circuit c() { ry(0, ", "(", 10000, "1", ")", 10000, ") }\n");
  CHECK(run(parens, &errs) == 0 && errs >= 1 && errs <= 2);
  free(parens);

  char *braces = repeat("circuit c() { ", "for q in qubits { ", 10000, "h(q)", "}", 10000, " }\n");
  CHECK(run(braces, &errs) == 0 && errs >= 1 && errs <= 2);
  free(braces);

  char *lists = repeat("dataset d { source: \"synthetic\" shape: ", "[", 10000, "1", "]", 10000, " }\n");
  CHECK(run(lists, &errs) == 0 && errs >= 1 && errs <= 2);
  free(lists);

  char *negs = repeat("circuit c() { ry(0, ", "-", 10000, "1", "", 0, ") }\n");
  char *negs2 = repeat(negs, "", 0, student, "", 0, "");
  CHECK(run(negs2, &errs) == 0 && errs >= 1);
  free(negs);
  free(negs2);

  char *chain = repeat("circuit c() { ry(0, 1", " + 1", 100000, ") }\n", "", 0, student);
  CHECK(run(chain, &errs) == 0 && errs >= 1);
  free(chain);

  /* 10^12 gates after unrolling: refused quickly, not unrolled */
  const char *huge = "circuit c() { for a in 0..1000000 { for b in 0..1000000 { h(0) } } }\n"
                     "student s { qubits: 1 circuit: c measure: z head: none }\n";
  CHECK(run(huge, &errs) == 0 && errs == 1);
  return test_done("test_front_limits");
}
