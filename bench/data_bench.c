/* data_bench.c — how long qkd_data_load takes for one source (bench/data.sh): loads it R times
 * and prints one JSON line {source, repeats, median_s, min_s, train, test, item, features}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkd_data.h"
#include "qkd_time.h"

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: data_bench SOURCE [REPEATS]\n");
    return 1;
  }
  int R = argc > 2 ? atoi(argv[2]) : 5;
  if (R < 1 || R > 1000) R = 5;
  double *t = malloc(sizeof(double) * (size_t)R);
  qkd_dataset ds;
  qkd_error err;
  for (int i = 0; i < R; i++) {
    qkd_data_opts o = {.source = argv[1]};
    double t0 = qkd_now_s();
    if (qkd_data_load(&o, &ds, &err) != 0) {
      qkd_error_print(&err, stderr);
      return 1;
    }
    t[i] = qkd_now_s() - t0;
    if (i + 1 < R) qkd_data_free(&ds);
  }
  qsort(t, (size_t)R, sizeof *t, cmp);
  printf("{\"source\": \"%s\", \"repeats\": %d, \"median_s\": %.4f, \"min_s\": %.4f, \"train\": %d, \"test\": %d, "
         "\"item\": [%d, %d, %d], \"features\": \"%s\"}\n",
         argv[1], R, R % 2 ? t[R / 2] : 0.5 * (t[R / 2 - 1] + t[R / 2]), t[0], ds.train.n, ds.test.n, ds.c, ds.h, ds.w,
         ds.features == QKD_DATA_F32 ? "float32" : "uint8");
  qkd_data_free(&ds);
  free(t);
  return 0;
}
