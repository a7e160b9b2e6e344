/* err.c — see qkd_err.h. */
#include "qkd_err.h"

#include <stdarg.h>
#include <string.h>

int qkd_fail(qkd_error *e, qkd_err_kind kind, const char *path, const char *fmt, ...) {
  if (!e) return -1;
  char msg[sizeof e->msg], subject[sizeof e->path];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(subject, sizeof subject, "%s", path ? path : "");
  e->kind = kind;
  memcpy(e->path, subject, sizeof e->path);
  memcpy(e->msg, msg, sizeof e->msg);
  return -1;
}

qkd_error *qkd_error_about(qkd_error *e, const char *path) {
  if (e && !e->path[0] && path) snprintf(e->path, sizeof e->path, "%s", path);
  return e;
}

const char *qkd_error_text(const qkd_error *e, char *buf, size_t len) {
  if (!len) return buf;
  if (!e) buf[0] = 0;
  else if (e->path[0]) snprintf(buf, len, "%s: error: %s", e->path, e->msg);
  else snprintf(buf, len, "error: %s", e->msg);
  return buf;
}

void qkd_error_print(const qkd_error *e, FILE *f) {
  char buf[QKD_ERROR_TEXT_MAX];
  fprintf(f, "%s\n", qkd_error_text(e, buf, sizeof buf));
}
