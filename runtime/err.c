/* err.c — see qkd_err.h. */
#include "qkd_err.h"

#include <stdarg.h>
#include <stdio.h>

int qkd_fail(char *err, size_t errlen, const char *path, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (err && errlen) snprintf(err, errlen, "%s: error: %s", path, msg);
  return -1;
}
