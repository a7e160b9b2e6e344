/* benchutil.h — what the bench drivers (bench/NAME_bench.c) share: sorting timings for a median,
 * and the load the machine showed. */
#ifndef QKD_BENCHUTIL_H
#define QKD_BENCHUTIL_H

/* qsort comparator for doubles, ascending. */
int bench_cmp_double(const void *a, const void *b);
/* The 1-minute load average from /proc/loadavg, or -1 when it cannot be read. */
double bench_load_1m(void);

#endif
