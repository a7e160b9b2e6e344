/* qkd_time.h — the one monotonic clock: seconds since an arbitrary start, for durations only
 * (never a random choice: timings go to reports and progress lines, nothing else). */
#ifndef QKD_TIME_H
#define QKD_TIME_H

#include <time.h>

static inline double qkd_now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#endif
