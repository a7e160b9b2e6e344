/* qkd_err.h — the runtime's one way to report an error: "PATH: error: message" into a caller's
 * buffer (the CLI prints it and exits 1). Nothing in runtime/ prints errors or exits itself. */
#ifndef QKD_ERR_H
#define QKD_ERR_H
#include <stddef.h>
/* Writes "PATH: error: <fmt…>" into err (when err && errlen) and returns -1. */
int qkd_fail(char *err, size_t errlen, const char *path, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#endif
