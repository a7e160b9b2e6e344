/* npy_tool.c — a test driver for runtime/npy.c (tests/interop/npy.sh holds it against NumPy):
 *   npy_tool dump FILE [MEMBER]     descr and shape on one line, then every element (%.17g)
 *   npy_tool header FILE [MEMBER]   the same first line from a header-only read
 *   npy_tool members FILE.npz       the member names, one per line
 *   npy_tool write DIR              DIR/<descr>.npy for every dtype, DIR/all.npz (stored) and
 *                                   DIR/allz.npz (deflated) with the same arrays: element i of
 *                                   the T array is pattern(T, i) (see below; npy.py repeats it)
 * Errors: the message on stderr, exit 1. */
#include "qkd_npy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void head_line(const qkd_npy *a) {
  printf("%s", qkd_npy_descr(a->type));
  for (int i = 0; i < a->ndim; i++) printf(" %ld", a->shape[i]);
  printf("\n");
}

static double pattern(qkd_npy_type t, long i) {
  switch (t) {
  case QKD_NPY_U8: return (double)((i * 7) % 251);
  case QKD_NPY_I32: return (double)(i * 7919 - 50000);
  case QKD_NPY_I64: return (double)(i * 1000003LL - 4000000000LL);
  case QKD_NPY_F32: return (double)(float)(i * 0.37 - 11.5);
  case QKD_NPY_F64: return i * 0.37 - 11.5;
  }
  return 0;
}

static void fill(qkd_npy *a, qkd_npy_type t, int ndim, const long *shape) {
  memset(a, 0, sizeof *a);
  a->type = t;
  a->ndim = ndim;
  a->count = 1;
  for (int i = 0; i < ndim; i++) a->shape[i] = shape[i], a->count *= shape[i];
  a->data = malloc(qkd_npy_itemsize(t) * (size_t)(a->count + 1));
  for (long i = 0; i < a->count; i++) {
    double v = pattern(t, i);
    switch (t) {
    case QKD_NPY_U8: ((uint8_t *)a->data)[i] = (uint8_t)v; break;
    case QKD_NPY_I32: ((int32_t *)a->data)[i] = (int32_t)v; break;
    case QKD_NPY_I64: ((int64_t *)a->data)[i] = (int64_t)(i * 1000003LL - 4000000000LL); break;
    case QKD_NPY_F32: ((float *)a->data)[i] = (float)v; break;
    case QKD_NPY_F64: ((double *)a->data)[i] = v; break;
    }
  }
}

int main(int argc, char **argv) {
  qkd_error err;
  if (argc >= 3 && (!strcmp(argv[1], "dump") || !strcmp(argv[1], "header"))) {
    int header = !strcmp(argv[1], "header");
    qkd_npy a;
    if (qkd_npy_load(argv[2], argc > 3 ? argv[3] : NULL, header, &a, &err) != 0) {
      qkd_error_print(&err, stderr);
      return 1;
    }
    head_line(&a);
    for (long i = 0; !header && i < a.count; i++) {
      if (a.type == QKD_NPY_I64) printf("%lld\n", (long long)((int64_t *)a.data)[i]);
      else printf("%.17g\n", qkd_npy_get(&a, i));
    }
    qkd_npy_free(&a);
    return 0;
  }
  if (argc == 3 && !strcmp(argv[1], "members")) {
    char **names;
    int n;
    if (qkd_npz_members(argv[2], &names, &n, &err) != 0) {
      qkd_error_print(&err, stderr);
      return 1;
    }
    for (int i = 0; i < n; i++) printf("%s\n", names[i]), free(names[i]);
    free(names);
    return 0;
  }
  if (argc == 3 && !strcmp(argv[1], "write")) {
    static const long shapes[5][3] = {{3, 4, 5}, {7}, {2, 3}, {100, 1000}, {0, 3}};
    static const int ndims[5] = {3, 1, 2, 2, 2};
    qkd_npy a[5];
    const char *names[5];
    char path[4096], nm[5][16];
    for (int t = 0; t < 5; t++) {
      fill(&a[t], (qkd_npy_type)t, ndims[t], shapes[t]);
      snprintf(nm[t], sizeof nm[t], "%s", qkd_npy_descr((qkd_npy_type)t) + 1);
      names[t] = nm[t];
      snprintf(path, sizeof path, "%s/%s.npy", argv[2], nm[t]);
      if (qkd_npy_save(path, &a[t], &err) != 0) { qkd_error_print(&err, stderr); return 1; }
    }
    snprintf(path, sizeof path, "%s/all.npz", argv[2]);
    if (qkd_npz_save(path, names, a, 5, 0, &err) != 0) { qkd_error_print(&err, stderr); return 1; }
    snprintf(path, sizeof path, "%s/allz.npz", argv[2]);
    if (qkd_npz_save(path, names, a, 5, 1, &err) != 0) { qkd_error_print(&err, stderr); return 1; }
    for (int t = 0; t < 5; t++) qkd_npy_free(&a[t]);
    return 0;
  }
  fprintf(stderr, "usage: npy_tool dump|header FILE [MEMBER] | members FILE | write DIR\n");
  return 2;
}
