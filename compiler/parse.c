/* parse.c — file loading, byte checks, the flex/bison driver and `use` resolution (parse.h). */
#include "parse.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qkd_parser.h"
#define YYSTYPE QKD_YYSTYPE
#define YYLTYPE QKD_YYLTYPE
#include "qkd_lexer.h"

int qkd_yyparse(qkd_parse_ctx *ctx);

#define QKD_MAX_SOURCE_BYTES (64u << 20)

/* Length of the UTF-8 sequence at s (n bytes left), or 0 if invalid. */
static int utf8_len(const unsigned char *s, uint32_t n) {
  if (s[0] < 0x80) return 1;
  int len = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
  if (len == 0 || (uint32_t)len > n) return 0;
  for (int i = 1; i < len; i++)
    if ((s[i] & 0xc0) != 0x80) return 0;
  if (len == 3 && s[0] == 0xe0 && s[1] < 0xa0) return 0;  /* overlong */
  if (len == 3 && s[0] == 0xed && s[1] >= 0xa0) return 0; /* surrogates */
  if (len == 4 && s[0] == 0xf0 && s[1] < 0x90) return 0;
  if (len == 4 && s[0] == 0xf4 && s[1] >= 0x90) return 0;
  return len;
}

/* Reports the first NUL or invalid UTF-8 byte; returns 0 if the text is clean. */
static int check_bytes(qkd_diag *d, int file) {
  const qkd_source *s = d->files[file];
  const unsigned char *t = (const unsigned char *)s->text;
  for (uint32_t i = 0; i < s->len;) {
    if (t[i] == 0) {
      qkd_diag_error(d, (qkd_span){file, i, i + 1}, "NUL byte in source (is this a binary file?)");
      return -1;
    }
    int n = utf8_len(t + i, s->len - i);
    if (n == 0) {
      qkd_diag_error(d, (qkd_span){file, i, i + 1}, "invalid UTF-8 byte 0x%02x (source files are UTF-8)", t[i]);
      return -1;
    }
    i += (uint32_t)n;
  }
  return 0;
}

static int parse_registered(qkd_arena *a, qkd_diag *d, int file, qkd_vec *out) {
  int before = d->errors;
  if (check_bytes(d, file) != 0) return d->errors - before;
  qkd_parse_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.arena = a;
  ctx.diag = d;
  ctx.file = file;
  yyscan_t scanner;
  if (qkd_yylex_init_extra(&ctx, &scanner) != 0) {
    qkd_diag_error(d, (qkd_span){-1, 0, 0}, "cannot start the scanner");
    return 1;
  }
  ctx.scanner = scanner;
  const qkd_source *s = d->files[file];
  YY_BUFFER_STATE buf = qkd_yy_scan_bytes(s->text, (int)s->len, scanner);
  qkd_yyparse(&ctx);
  qkd_yy_delete_buffer(buf, scanner);
  qkd_yylex_destroy(scanner);
  *out = ctx.decls;
  return d->errors - before;
}

int qkd_parse_text(qkd_arena *a, qkd_diag *d, const char *path, const char *text, uint32_t len,
                   qkd_vec *out) {
  int file = qkd_diag_add_source(d, path, text, len);
  if (file < 0) {
    qkd_diag_error(d, (qkd_span){-1, 0, 0}, "%s: too many source files", path);
    return 1;
  }
  return parse_registered(a, d, file, out);
}

/* Reads a whole file; NULL with errno on failure. */
static char *read_file(const char *path, uint32_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
    fclose(f);
    errno = EISDIR;
    return NULL;
  }
  if (st.st_size > (off_t)QKD_MAX_SOURCE_BYTES) {
    fclose(f);
    errno = EFBIG;
    return NULL;
  }
  char *buf = malloc((size_t)st.st_size + 1);
  size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
  fclose(f);
  if (!buf) return NULL;
  buf[n] = 0;
  *len = (uint32_t)n;
  return buf;
}

static const qkd_vfs *vfs;
void qkd_parse_set_vfs(const qkd_vfs *v) { vfs = v; }

typedef struct {
  qkd_arena *arena;
  qkd_diag *diag;
  const char *stdlib_dir;
  qkd_vec loaded;   /* canonical paths, finished */
  qkd_vec active;   /* canonical paths, being loaded (cycle detection) */
  qkd_program_ast *out;
} loader;

static int vec_has(const qkd_vec *v, const char *s) {
  for (int i = 0; i < v->len; i++)
    if (strcmp(v->items[i], s) == 0) return 1;
  return 0;
}

static int load(loader *L, const char *path, qkd_span from);

static int load_uses(loader *L, int file, const qkd_vec *decls) {
  int rc = 0;
  const char *importer = L->diag->files[file]->path;
  for (int i = 0; i < decls->len; i++) {
    qkd_ast *n = decls->items[i];
    if (n->kind != QKD_AST_USE) continue;
    const char *name = n->name;
    char *target;
    if (strncmp(name, "std/", 4) == 0) {
      target = qkd_arena_printf(L->arena, "%s/%s", L->stdlib_dir, name + 4);
    } else if (name[0] == '/') {
      target = qkd_arena_strdup(L->arena, name);
    } else {
      const char *slash = strrchr(importer, '/');
      target = slash ? qkd_arena_printf(L->arena, "%.*s/%s", (int)(slash - importer), importer, name)
                     : qkd_arena_strdup(L->arena, name);
    }
    size_t tl = strlen(target);
    if (tl < 4 || strcmp(target + tl - 4, ".qkd") != 0) target = qkd_arena_printf(L->arena, "%s.qkd", target);
    if (load(L, target, n->span) != 0) rc = -1;
  }
  return rc;
}

static int load(loader *L, const char *path, qkd_span from) {
  char canon[PATH_MAX];
  const char *vtext = NULL;
  for (int i = 0; vfs && i < vfs->n; i++)
    if (!strcmp(vfs->paths[i], path)) vtext = vfs->texts[i];
  if (vfs && vtext) {
    snprintf(canon, sizeof canon, "%s", path);
  } else if (vfs) {
    qkd_diag_error(L->diag, from, "'%s' was not built into this executable", path);
    return -1;
  } else if (!realpath(path, canon)) {
    if (from.file >= 0)
      qkd_diag_error(L->diag, from, "cannot find '%s' (%s)", path, strerror(errno));
    else
      qkd_diag_error(L->diag, from, "%s: cannot open (%s)", path, strerror(errno));
    return -1;
  }
  if (vec_has(&L->active, canon)) {
    qkd_diag_error(L->diag, from, "'use' cycle: '%s' is already being loaded", path);
    return -1;
  }
  if (vec_has(&L->loaded, canon)) return 0;
  uint32_t len = 0;
  char *text = vtext ? strdup(vtext) : read_file(path, &len);
  if (vtext && text) len = (uint32_t)strlen(text);
  if (!text) {
    qkd_diag_error(L->diag, from.file >= 0 ? from : (qkd_span){-1, 0, 0}, "%s: cannot read (%s)", path,
                   errno == EFBIG ? "larger than 64 MB" : strerror(errno));
    return -1;
  }
  int file = qkd_diag_add_source(L->diag, path, text, len);
  free(text);
  if (file < 0) {
    qkd_diag_error(L->diag, from, "too many source files");
    return -1;
  }
  char *key = qkd_arena_strdup(L->arena, canon);
  qkd_vec_push(L->arena, &L->active, key);
  qkd_vec decls = {0};
  int errs = parse_registered(L->arena, L->diag, file, &decls);
  int rc = errs ? -1 : load_uses(L, file, &decls);
  L->active.len--;
  qkd_vec_push(L->arena, &L->loaded, key);
  for (int i = 0; i < decls.len; i++) {
    qkd_ast *n = decls.items[i];
    if (n->kind == QKD_AST_DECL) qkd_vec_push(L->arena, &L->out->decls, n);
  }
  return rc;
}

int qkd_parse_program(qkd_arena *a, qkd_diag *d, const char *path, const char *stdlib_dir,
                      qkd_program_ast *out) {
  loader L = {.arena = a, .diag = d, .stdlib_dir = stdlib_dir, .out = out};
  memset(out, 0, sizeof *out);
  int rc = load(&L, path, (qkd_span){-1, 0, 0});
  return rc == 0 && d->errors == 0 ? 0 : -1;
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static const char *canonical(qkd_arena *a, const char *p) {
  char buf[PATH_MAX];
  return realpath(p, buf) ? qkd_arena_strdup(a, buf) : p;
}

const char *qkd_parse_stdlib_dir(qkd_arena *a) {
  const char *env = getenv("QKD_STDLIB");
  if (env && *env) return canonical(a, env);
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = 0;
      const char *cands[] = {"%s/stdlib", "%s/../stdlib", "%s/../share/qkd/stdlib"};
      for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        char *p = qkd_arena_printf(a, cands[i], exe);
        if (is_dir(p)) return canonical(a, p);
      }
    }
  }
  return QKD_SOURCE_STDLIB_DIR;
}
