/* qkd_err.h — the runtime's one way to report an error: a small struct, filled by the function
 * that failed and read by its caller (the CLI prints it and exits 1). Nothing in runtime/ prints
 * errors or exits itself.
 *
 * Promises:
 *  - every runtime function that says why it failed takes a `qkd_error *err` (may be NULL: the
 *    caller does not want the reason) and, on failure, fills all of it through qkd_fail: kind,
 *    path, msg. On success err is left as it was. (Functions whose only failure is memory
 *    return NULL or -1 without one.)
 *  - path is what the error is about: a file or directory path, or a declaration's name (a
 *    teacher's, "synthetic", "qkdc"); empty when the message needs no subject (a net's layer,
 *    a circuit's gate), and then the caller that prints it supplies one (the program's path) with
 *    qkd_error_about.
 *  - msg is the message alone, without path or "error:"; callers that reword an error (a cache
 *    warning, a diagnostic at a source span) read path and msg, never text.
 *  - qkd_error_text is the one place the text form is made: "PATH: error: MSG", or "error: MSG"
 *    without a path. */
#ifndef QKD_ERR_H
#define QKD_ERR_H
#include <stddef.h>
#include <stdio.h>

typedef enum {
  QKD_ERR_NONE = 0,  /* no error (a zeroed qkd_error) */
  QKD_ERR_IO,        /* a file or directory is missing or could not be opened, read, written or
                        created: the file system said no (a teacher cache that cannot be opened
                        is the normal first run, not a warning) */
  QKD_ERR_FORMAT,    /* a file was read but its contents are not what they must be: magic,
                        version, header against length, checksum, JSON syntax, labels */
  QKD_ERR_MEMORY,    /* out of memory */
  QKD_ERR_INPUT,     /* what was asked cannot be done: options, shapes or sizes that do not fit
                        (a data set's classes, a net on its input, a weights file's counts) */
  QKD_ERR_INTERNAL,  /* a broken invariant: the gate table, an invalid circuit IR, the JIT */
} qkd_err_kind;

typedef struct {
  qkd_err_kind kind;
  char path[1024];   /* what the error is about (see above); "" for none */
  char msg[1024];    /* the message, without "PATH: error: " */
} qkd_error;

/* A buffer size that holds any qkd_error_text. */
#define QKD_ERROR_TEXT_MAX (2 * 1024 + 16)

/* Fills *e (when e is not NULL) with kind, path (NULL: none) and the formatted message; returns
 * -1. path and the arguments may point into *e. */
int qkd_fail(qkd_error *e, qkd_err_kind kind, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sets e's path to `path` when it has none (the caller's subject for a message without one);
 * returns e. */
qkd_error *qkd_error_about(qkd_error *e, const char *path);
/* "PATH: error: MSG" (or "error: MSG" when path is empty) into buf[len]; returns buf. */
const char *qkd_error_text(const qkd_error *e, char *buf, size_t len);
/* qkd_error_text and a newline on f. */
void qkd_error_print(const qkd_error *e, FILE *f);
#endif
