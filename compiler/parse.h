/* parse.h — reading .qkd files into ASTs, and resolving `use`.
 * qkd_parse_program loads the root file and, depth-first, every file it uses (relative to the
 * importing file, or `std/…` in the stdlib directory), each once; a cycle of `use` is an error.
 * The result is every declaration of every file in load order (imports before importers).
 * Lexer and parser errors are located diagnostics; the bytes are checked first (UTF-8, no NUL).
 * Nesting deeper than QKD_PARSE_MAX_NESTING brackets is an error, not a stack overflow. */
#ifndef QKD_PARSE_H
#define QKD_PARSE_H
#include "ast.h"

#define QKD_PARSE_MAX_NESTING 64

/* Shared by the flex scanner and the bison parser (yyextra / parse-param). */
typedef struct {
  qkd_arena *arena;
  qkd_diag *diag;
  int file;          /* the file being scanned */
  uint32_t offset;   /* scanner position (byte offset) */
  int nesting;       /* open ( [ { */
  int nesting_reported;
  void *scanner;
  qkd_vec decls;     /* the file's top-level nodes (DECL and USE) */
} qkd_parse_ctx;

typedef struct {
  qkd_vec decls;     /* qkd_ast* DECL nodes of all files */
} qkd_program_ast;

/* Parses `text` (registered under `path`) alone, without following `use`. Returns the error
 * count of this parse; the declarations go to *out. Used by the fuzzer and by the loader. */
int qkd_parse_text(qkd_arena *a, qkd_diag *d, const char *path, const char *text, uint32_t len,
                   qkd_vec *out);
/* Loads `path` and everything it uses. Returns 0, or -1 after reporting errors. `stdlib_dir` is
 * where `std/…` resolves. */
int qkd_parse_program(qkd_arena *a, qkd_diag *d, const char *path, const char *stdlib_dir,
                      qkd_program_ast *out);
/* An in-memory file system for built executables: when set, qkd_parse_program reads files only
 * from it (paths compared as strings, exactly as they were resolved when it was recorded). */
typedef struct {
  int n;
  const char *const *paths;
  const char *const *texts;
} qkd_vfs;
void qkd_parse_set_vfs(const qkd_vfs *vfs);

/* The stdlib directory: $QKD_STDLIB, else stdlib/ next to (or one level above) the running
 * executable, else the source tree's stdlib/. */
const char *qkd_parse_stdlib_dir(qkd_arena *a);
#endif
