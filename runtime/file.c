/* file.c — directories and atomic file replacement (qkd_file.h). */
#include "qkd_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "qkd_err.h"

int qkd_file_mkdir_p(const char *dir, qkd_error *err) {
  size_t n = strlen(dir);
  char *p = malloc(n + 1);
  if (!p) return qkd_fail(err, QKD_ERR_MEMORY, dir, "out of memory");
  memcpy(p, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (p[i] != '/' && p[i] != '\0') continue;
    if (p[i - 1] == '/') continue; /* "a//b", trailing "/" */
    char c = p[i];
    p[i] = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      int e = errno;
      qkd_fail(err, QKD_ERR_IO, dir, "cannot create directory '%s': %s", p, strerror(e));
      free(p);
      return -1;
    }
    p[i] = c;
  }
  free(p);
  struct stat st;
  if (stat(dir, &st) != 0) return qkd_fail(err, QKD_ERR_IO, dir, "cannot create directory: %s", strerror(errno));
  if (!S_ISDIR(st.st_mode)) return qkd_fail(err, QKD_ERR_IO, dir, "not a directory");
  return 0;
}

char *qkd_file_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  size_t k = a;
  if (k == 0 || p[k - 1] != '/') p[k++] = '/';
  memcpy(p + k, name, b + 1);
  return p;
}

int qkd_file_write_atomic(const char *path, qkd_emit_fn emit, const void *ctx, qkd_error *err) {
  const char *slash = strrchr(path, '/');
  if (slash && slash != path) {
    char *dir = strndup(path, (size_t)(slash - path));
    if (!dir) return qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory");
    int rc = qkd_file_mkdir_p(dir, err);
    free(dir);
    if (rc != 0) return -1;
  }
  char host[64] = "";
  if (gethostname(host, sizeof host - 1) != 0) host[0] = 0;
  for (char *h = host; *h; h++)
    if (*h == '/' || *h == '.') *h = '_';
  size_t n = strlen(path) + strlen(host) + 40;
  char *tmp = malloc(n);
  if (!tmp) return qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory");
  /* the thread id too: threads of one process writing one PATH get their own files */
  snprintf(tmp, n, "%s.tmp.%s.%ld.%ld", path, host, (long)getpid(), (long)gettid());
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    int e = errno;
    free(tmp);
    return qkd_fail(err, QKD_ERR_IO, path, "cannot write: %s", strerror(e));
  }
  errno = 0;
  int bad = emit(f, ctx) != 0 || ferror(f) || fflush(f) != 0 || fsync(fileno(f)) != 0;
  int e = errno;
  if (fclose(f) != 0 && !bad) bad = 1, e = errno;
  if (!bad && rename(tmp, path) != 0) bad = 1, e = errno;
  if (bad) remove(tmp);
  free(tmp);
  return bad ? qkd_fail(err, QKD_ERR_IO, path, "cannot write: %s", strerror(e ? e : EIO)) : 0;
}

typedef struct {
  const void *b;
  size_t len;
} bytes;

static int emit_bytes(FILE *f, const void *ctx) {
  const bytes *x = ctx;
  return fwrite(x->b, 1, x->len, f) == x->len ? 0 : -1;
}

int qkd_file_write_bytes(const char *path, const void *buf, size_t len, qkd_error *err) {
  bytes x = {buf, len};
  return qkd_file_write_atomic(path, emit_bytes, &x, err);
}

char *qkd_file_read(const char *path, size_t max, size_t *len, qkd_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    qkd_fail(err, QKD_ERR_IO, path, "cannot open: %s", strerror(errno));
    return NULL;
  }
  size_t cap = 4096, n = 0;
  char *b = malloc(cap);
  while (b) {
    if (n + 1 >= cap) {
      if (cap > max) {
        free(b);
        fclose(f);
        qkd_fail(err, QKD_ERR_FORMAT, path, "larger than %zu bytes", max);
        return NULL;
      }
      char *nb = realloc(b, cap * 2);
      if (!nb) { free(b); b = NULL; break; }
      b = nb, cap *= 2;
    }
    size_t r = fread(b + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (!b || bad) {
    free(b);
    qkd_fail(err, b ? QKD_ERR_IO : QKD_ERR_MEMORY, path, b ? "read error" : "out of memory");
    return NULL;
  }
  b[n] = 0;
  if (len) *len = n;
  return b;
}
