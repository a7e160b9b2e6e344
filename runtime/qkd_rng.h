/* qkd_rng.h — the one source of randomness: a counter-based generator. A draw is a pure
 * function of (seed, stream, counter), so results never depend on thread count, batch splits or
 * call order. Every random choice of an experiment (initialisation, shuffling, dropout masks,
 * shot sampling, synthetic data) derives from the experiment's seed through a distinct stream.
 * Header-only; no state. */
#ifndef QKD_RNG_H
#define QKD_RNG_H

#include <math.h>
#include <stdint.h>

/* Streams: distinct uses of one seed. */
enum {
  QKD_STREAM_INIT = 1,     /* parameter initialisation */
  QKD_STREAM_SHUFFLE = 2,  /* epoch shuffles of a classical net's training (teachers) */
  QKD_STREAM_DROPOUT = 3,  /* dropout masks */
  QKD_STREAM_SHOTS = 4,    /* shot sampling */
  QKD_STREAM_DATA = 5,     /* synthetic data sets */
  QKD_STREAM_SPLIT = 6,    /* validation hold-out */
  QKD_STREAM_AUGMENT = 7,  /* training-image augmentation (crop offsets, flips) */
  QKD_STREAM_SHUFFLE_STUDENT = 8, /* epoch shuffles of a student's training: never a teacher's with the same seed */
  QKD_STREAM_TRAJ = 9             /* Monte-Carlo trajectories' Pauli choices (qkd_traj.h) */
};

static inline uint64_t qkd_rng_mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* 64 random bits for (seed, stream, counter). */
static inline uint64_t qkd_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter) {
  return qkd_rng_mix(qkd_rng_mix(qkd_rng_mix(seed) ^ stream) ^ counter);
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double qkd_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
  return (double)(qkd_rng_u64(seed, stream, counter) >> 11) * 0x1.0p-53;
}

/* Standard normal (Box–Muller on two consecutive counters 2c, 2c+1). */
static inline double qkd_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter) {
  double u1 = qkd_rng_uniform(seed, stream, 2 * counter);
  double u2 = qkd_rng_uniform(seed, stream, 2 * counter + 1);
  if (u1 < 0x1.0p-60) u1 = 0x1.0p-60;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
