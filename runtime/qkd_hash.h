/* qkd_hash.h — the one 64-bit hash of the tree: FNV-1a over bytes. Used for cache keys, cell
 * keys, circuit fingerprints, file checksums and diagnostic de-duplication. Not cryptographic:
 * it detects change and corruption, not tampering. Stable across machines and versions (cache
 * files and cell keys depend on it). */
#ifndef QKD_HASH_H
#define QKD_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define QKD_HASH_INIT 0xcbf29ce484222325ull

static inline uint64_t qkd_hash_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

static inline uint64_t qkd_hash_str(uint64_t h, const char *s) { return qkd_hash_bytes(h, s, strlen(s) + 1); }

#endif
