/* qkd_file.h — the runtime's one way to create directories and to replace a file atomically.
 *
 * Promises:
 *  - qkd_file_mkdir_p creates DIR and its parents (mkdir -p); an existing directory is fine.
 *  - qkd_file_write_atomic writes through `emit` into "PATH.tmp.<host>.<pid>.<tid>" in PATH's directory
 *    (the thread id: threads writing one PATH do not share a file),
 *    flushes and fsyncs it and renames it over PATH: a reader (on this machine or, over NFS,
 *    another) sees the old file or the new one, never a torn one; a failed write leaves no
 *    temporary file and the old file in place, and is an error naming PATH and the reason
 *    (a full disk is "No space left on device"). A process killed mid-write may leave a stale
 *    PATH.tmp.* file, never a torn PATH.
 *  - qkd_file_read reads a whole file (NUL-terminated, at most `max` bytes).
 *  - errors fill err (qkd_err.h: path = the file or directory; kind IO, MEMORY, or FORMAT for a
 *    file larger than qkd_file_read's max), -1 (or NULL) returned; nothing prints. */
#ifndef QKD_FILE_H
#define QKD_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "qkd_err.h"

typedef int (*qkd_emit_fn)(FILE *f, const void *ctx);

int qkd_file_mkdir_p(const char *dir, qkd_error *err);
/* Creates PATH's parent directories, then writes PATH atomically. */
int qkd_file_write_atomic(const char *path, qkd_emit_fn emit, const void *ctx, qkd_error *err);
/* The same for a buffer of len bytes. */
int qkd_file_write_bytes(const char *path, const void *buf, size_t len, qkd_error *err);
/* "dir/name" (malloc'd; NULL on out of memory). */
char *qkd_file_join(const char *dir, const char *name);
/* The whole file, malloc'd and NUL-terminated, its length in *len (may be NULL). */
char *qkd_file_read(const char *path, size_t max, size_t *len, qkd_error *err);

#endif
