/* fuzz_front.c — libFuzzer target for the whole front end: lexer, parser, semantic checks and
 * circuit lowering on arbitrary bytes (no `use` following: the loader reads files). Any crash,
 * leak, sanitizer report or timeout is a bug. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"
#include "sema.h"

static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20)) return 0;
  if (!devnull) devnull = fopen("/dev/null", "w");
  qkd_arena a = {0};
  qkd_diag d;
  qkd_diag_init(&d, &a);
  d.out = devnull;
  qkd_vec all = {0};
  qkd_parse_text(&a, &d, "fuzz.qkd", (const char *)data, (uint32_t)size, &all);
  if (d.errors == 0) {
    qkd_program_ast prog = {0};
    for (int i = 0; i < all.len; i++)
      if (((qkd_ast *)all.items[i])->kind == QKD_AST_DECL) qkd_vec_push(&a, &prog.decls, all.items[i]);
    qkd_sema_check(&a, &d, &prog, "fuzz.qkd");
  }
  qkd_arena_free(&a);
  return 0;
}
