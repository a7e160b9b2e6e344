/* qkd_hash.h — the one hash of the tree: 64-bit FNV-1a, for fingerprints and checksums (the
 * teacher cache key and file checksum, circuit fingerprints of built executables). Promises:
 * qkd_hash_fnv(QKD_HASH_FNV_OFFSET, p, n) is FNV-1a of the n bytes at p; chaining calls hashes
 * the concatenation. Not a cryptographic hash. Header-only. */
#ifndef QKD_HASH_H
#define QKD_HASH_H

#include <stddef.h>
#include <stdint.h>

#define QKD_HASH_FNV_OFFSET 0xcbf29ce484222325ull
#define QKD_HASH_FNV_PRIME 0x100000001b3ull

static inline uint64_t qkd_hash_fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * QKD_HASH_FNV_PRIME;
  return h;
}

#endif
