/* npy.c — .npy and .npz reading and writing of qkd_npy.h. */
#include "qkd_npy.h"
#include "qkd_err.h"
#include "qkd_file.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c reads and writes little-endian arrays in place: port it before using a big-endian host"
#endif

#define NPY_MAX_HEADER 10000 /* numpy.lib.format's own limit on the header's length */

static const struct { const char *descr; size_t size; } types[] = {
    [QKD_NPY_U8] = {"|u1", 1}, [QKD_NPY_I32] = {"<i4", 4}, [QKD_NPY_I64] = {"<i8", 8},
    [QKD_NPY_F32] = {"<f4", 4}, [QKD_NPY_F64] = {"<f8", 8}};

size_t qkd_npy_itemsize(qkd_npy_type t) { return types[t].size; }
const char *qkd_npy_descr(qkd_npy_type t) { return types[t].descr; }

double qkd_npy_get(const qkd_npy *a, long i) {
  switch (a->type) {
  case QKD_NPY_U8: return ((const uint8_t *)a->data)[i];
  case QKD_NPY_I32: return ((const int32_t *)a->data)[i];
  case QKD_NPY_I64: return (double)((const int64_t *)a->data)[i];
  case QKD_NPY_F32: return ((const float *)a->data)[i];
  case QKD_NPY_F64: return ((const double *)a->data)[i];
  }
  return 0;
}

void qkd_npy_free(qkd_npy *a) {
  free(a->data);
  a->data = NULL;
}

/* ---- a byte stream: a file region, stored or deflated, with its CRC-32 --------------------- */

typedef struct {
  FILE *f;
  uint64_t left;      /* bytes of the (uncompressed) content not yet read */
  uint64_t in_left;   /* deflated: compressed bytes not yet fed to zlib */
  int deflated, z_open;
  int check_crc;      /* a zip member: its CRC-32 is kept as it is read */
  z_stream z;
  unsigned char in[1 << 16];
  uLong crc;
} stream;

/* Reads exactly n bytes; -1 when the content ends first or the file is short or corrupt. */
static int s_read(stream *s, void *buf, size_t n) {
  if ((uint64_t)n > s->left) return -1;
  if (!s->deflated) {
    if (fread(buf, 1, n, s->f) != n) return -1;
  } else {
    s->z.next_out = buf;
    s->z.avail_out = (uInt)n;
    while (s->z.avail_out > 0) {
      if (s->z.avail_in == 0 && s->in_left > 0) {
        size_t want = s->in_left < sizeof s->in ? (size_t)s->in_left : sizeof s->in;
        if (fread(s->in, 1, want, s->f) != want) return -1;
        s->in_left -= want;
        s->z.next_in = s->in;
        s->z.avail_in = (uInt)want;
      }
      int rc = inflate(&s->z, Z_NO_FLUSH);
      if (rc == Z_STREAM_END && s->z.avail_out > 0) return -1;
      if (rc != Z_OK && rc != Z_STREAM_END) return -1;
    }
  }
  s->left -= n;
  if (s->check_crc) s->crc = crc32(s->crc, buf, (uInt)n);
  return 0;
}

/* Reads n bytes (n may exceed what uInt holds) in chunks. */
static int s_read_big(stream *s, unsigned char *buf, uint64_t n) {
  while (n > 0) {
    size_t k = n > (1u << 30) ? (1u << 30) : (size_t)n;
    if (s_read(s, buf, k) != 0) return -1;
    buf += k;
    n -= k;
  }
  return 0;
}

/* ---- the header ------------------------------------------------------------------------------ */

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* A quoted Python string at p into out (at most cap-1 chars); returns the position after it. */
static const char *py_string(const char *p, const char *end, char *out, size_t cap) {
  if (p >= end || (*p != '\'' && *p != '"')) return NULL;
  char q = *p++;
  size_t n = 0;
  while (p < end && *p != q) {
    if (*p == '\\' || n + 1 >= cap) return NULL;
    out[n++] = *p++;
  }
  if (p >= end) return NULL;
  out[n] = 0;
  return p + 1;
}

static int parse_header(const char *h, size_t len, qkd_npy *a, const char *what, qkd_error *err) {
  const char *p = skip_ws(h, h + len), *end = h + len;
  int have_descr = 0, have_order = 0, have_shape = 0;
  if (p >= end || *p++ != '{') return qkd_fail(err, QKD_ERR_FORMAT, what, "the .npy header is not a Python dict");
  for (;;) {
    p = skip_ws(p, end);
    if (p < end && *p == '}') break;
    char key[32], val[64];
    if (!(p = py_string(p, end, key, sizeof key))) return qkd_fail(err, QKD_ERR_FORMAT, what, "a malformed .npy header");
    p = skip_ws(p, end);
    if (p >= end || *p++ != ':') return qkd_fail(err, QKD_ERR_FORMAT, what, "a malformed .npy header");
    p = skip_ws(p, end);
    if (!strcmp(key, "descr")) {
      if (p < end && (*p == '[' || *p == '(' || *p == '{'))
        return qkd_fail(err, QKD_ERR_FORMAT, what, "a structured dtype (qkd reads |u1 <i4 <i8 <f4 <f8)");
      if (!(p = py_string(p, end, val, sizeof val))) return qkd_fail(err, QKD_ERR_FORMAT, what, "a malformed dtype in the .npy header");
      const char *d = val;
      char order = '|';
      if (*d == '<' || *d == '>' || *d == '|' || *d == '=') order = *d++;
      if (order == '>' && strcmp(d, "u1") && strcmp(d, "i1"))
        return qkd_fail(err, QKD_ERR_FORMAT, what, "big-endian dtype '%s' (save it little-endian: a.astype('<%s'))", val, d);
      if (!strcmp(d, "u1")) a->type = QKD_NPY_U8;
      else if (!strcmp(d, "i4")) a->type = QKD_NPY_I32;
      else if (!strcmp(d, "i8")) a->type = QKD_NPY_I64;
      else if (!strcmp(d, "f4")) a->type = QKD_NPY_F32;
      else if (!strcmp(d, "f8")) a->type = QKD_NPY_F64;
      else if (!strcmp(d, "O"))
        return qkd_fail(err, QKD_ERR_FORMAT, what, "an object array (dtype 'O'): qkd reads numeric arrays only");
      else
        return qkd_fail(err, QKD_ERR_FORMAT, what, "unsupported dtype '%s' (qkd reads |u1 <i4 <i8 <f4 <f8)", val);
      have_descr = 1;
    } else if (!strcmp(key, "fortran_order")) {
      if (end - p >= 5 && !strncmp(p, "False", 5)) p += 5;
      else if (end - p >= 4 && !strncmp(p, "True", 4))
        return qkd_fail(err, QKD_ERR_FORMAT, what, "Fortran order (save it in C order: numpy.ascontiguousarray)");
      else return qkd_fail(err, QKD_ERR_FORMAT, what, "a malformed fortran_order in the .npy header");
      have_order = 1;
    } else if (!strcmp(key, "shape")) {
      if (p >= end || *p++ != '(') return qkd_fail(err, QKD_ERR_FORMAT, what, "a malformed shape in the .npy header");
      a->ndim = 0;
      a->count = 1;
      for (;;) {
        p = skip_ws(p, end);
        if (p < end && *p == ')') { p++; break; }
        if (p >= end || *p < '0' || *p > '9') return qkd_fail(err, QKD_ERR_FORMAT, what, "a malformed shape in the .npy header");
        if (a->ndim == QKD_NPY_MAX_DIMS) return qkd_fail(err, QKD_ERR_FORMAT, what, "more than %d dimensions", QKD_NPY_MAX_DIMS);
        long v = 0;
        while (p < end && *p >= '0' && *p <= '9') {
          if (v > (LONG_MAX - 9) / 10) return qkd_fail(err, QKD_ERR_FORMAT, what, "a dimension too large");
          v = v * 10 + (*p++ - '0');
        }
        if (p < end && *p == 'L') p++; /* Python 2's long suffix */
        if (v > 0 && a->count > LONG_MAX / v) return qkd_fail(err, QKD_ERR_FORMAT, what, "an array too large");
        a->shape[a->ndim++] = v;
        a->count *= v;
        p = skip_ws(p, end);
        if (p < end && *p == ',') p++;
        else if (p < end && *p != ')') return qkd_fail(err, QKD_ERR_FORMAT, what, "a malformed shape in the .npy header");
      }
      have_shape = 1;
    } else {
      return qkd_fail(err, QKD_ERR_FORMAT, what, "unknown key '%s' in the .npy header", key);
    }
    p = skip_ws(p, end);
    if (p < end && *p == ',') p++;
    else if (p < end && *p == '}') break;
    else return qkd_fail(err, QKD_ERR_FORMAT, what, "a malformed .npy header");
  }
  if (!have_descr || !have_order || !have_shape)
    return qkd_fail(err, QKD_ERR_FORMAT, what, "the .npy header lacks %s", !have_descr ? "'descr'" : !have_order ? "'fortran_order'" : "'shape'");
  return 0;
}

/* Reads one array from s (its whole content). */
static int read_array(stream *s, int header_only, qkd_npy *a, const char *what, qkd_error *err) {
  memset(a, 0, sizeof *a);
  unsigned char pre[12];
  if (s_read(s, pre, 8) != 0 || memcmp(pre, "\x93NUMPY", 6) != 0)
    return qkd_fail(err, QKD_ERR_FORMAT, what, "not a .npy array (no \\x93NUMPY magic)");
  int major = pre[6];
  uint32_t hlen;
  if (major == 1) {
    if (s_read(s, pre + 8, 2) != 0) return qkd_fail(err, QKD_ERR_FORMAT, what, "truncated .npy header");
    hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
  } else if (major == 2 || major == 3) {
    if (s_read(s, pre + 8, 4) != 0) return qkd_fail(err, QKD_ERR_FORMAT, what, "truncated .npy header");
    hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
  } else {
    return qkd_fail(err, QKD_ERR_FORMAT, what, ".npy format version %d.%d (qkd reads 1.0 to 3.0)", major, pre[7]);
  }
  if (hlen > NPY_MAX_HEADER)
    return qkd_fail(err, QKD_ERR_FORMAT, what, "a .npy header of %u bytes, over NumPy's own limit of %d", hlen, NPY_MAX_HEADER);
  char h[NPY_MAX_HEADER + 1];
  if (s_read(s, h, hlen) != 0) return qkd_fail(err, QKD_ERR_FORMAT, what, "truncated .npy header");
  h[hlen] = 0;
  if (parse_header(h, hlen, a, what, err) != 0) return -1;
  uint64_t need = (uint64_t)a->count * qkd_npy_itemsize(a->type);
  if (s->left != need)
    return qkd_fail(err, QKD_ERR_FORMAT, what, "holds %llu data bytes, but its header's shape needs %llu (truncated or padded)",
                    (unsigned long long)s->left, (unsigned long long)need);
  if (header_only) return 0;
  a->data = malloc(need ? (size_t)need : 1);
  if (!a->data) return qkd_fail(err, QKD_ERR_MEMORY, what, "out of memory for %llu bytes", (unsigned long long)need);
  if (s_read_big(s, a->data, need) != 0) {
    qkd_npy_free(a);
    return qkd_fail(err, QKD_ERR_FORMAT, what, "truncated or corrupt array data");
  }
  return 0;
}

/* ---- zip ------------------------------------------------------------------------------------- */

static uint16_t u16(const unsigned char *b) { return (uint16_t)(b[0] | b[1] << 8); }
static uint32_t u32(const unsigned char *b) { return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }
static uint64_t u64(const unsigned char *b) { return (uint64_t)u32(b) | (uint64_t)u32(b + 4) << 32; }

typedef struct {
  char name[256];
  int method;
  uint32_t crc;
  uint64_t comp, size, offset;
} member;

/* The central directory of the zip at f (size bytes): its members, malloc'd. */
static int zip_members(FILE *f, uint64_t size, const char *path, member **out, int *n_out, qkd_error *err) {
  *out = NULL;
  *n_out = 0;
  size_t tail = size < 65557 ? (size_t)size : 65557;
  unsigned char *t = malloc(tail + 1);
  if (!t) return qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory");
  if (fseeko(f, (off_t)(size - tail), SEEK_SET) != 0 || fread(t, 1, tail, f) != tail) {
    free(t);
    return qkd_fail(err, QKD_ERR_IO, path, "cannot read: %s", strerror(errno ? errno : EIO));
  }
  long e = -1;
  for (long i = (long)tail - 22; i >= 0; i--)
    if (u32(t + i) == 0x06054b50) { e = i; break; }
  if (e < 0) {
    free(t);
    return qkd_fail(err, QKD_ERR_FORMAT, path, "not a .npz (zip) file: no end of central directory");
  }
  uint64_t entries = u16(t + e + 10), cd_size = u32(t + e + 12), cd_off = u32(t + e + 16);
  if (entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_off == 0xFFFFFFFF) { /* zip64 */
    if (e < 20 || u32(t + e - 20) != 0x07064b50) {
      free(t);
      return qkd_fail(err, QKD_ERR_FORMAT, path, "a zip64 archive without its locator");
    }
    uint64_t z64 = u64(t + e - 20 + 8);
    unsigned char r[56];
    if (z64 + 56 > size || fseeko(f, (off_t)z64, SEEK_SET) != 0 || fread(r, 1, 56, f) != 56 || u32(r) != 0x06064b50) {
      free(t);
      return qkd_fail(err, QKD_ERR_FORMAT, path, "a corrupt zip64 end of central directory");
    }
    entries = u64(r + 32), cd_size = u64(r + 40), cd_off = u64(r + 48);
  }
  free(t);
  if (cd_off > size || cd_size > size - cd_off || entries > cd_size / 46)
    return qkd_fail(err, QKD_ERR_FORMAT, path, "a corrupt zip central directory");
  unsigned char *cd = malloc(cd_size + 1);
  member *m = calloc(entries + 1, sizeof *m);
  if (!cd || !m) {
    free(cd);
    free(m);
    return qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory");
  }
  if (fseeko(f, (off_t)cd_off, SEEK_SET) != 0 || fread(cd, 1, cd_size, f) != cd_size) {
    free(cd);
    free(m);
    return qkd_fail(err, QKD_ERR_FORMAT, path, "cannot read the zip central directory");
  }
  uint64_t at = 0;
  int n = 0;
  for (uint64_t k = 0; k < entries; k++) {
    if (at + 46 > cd_size || u32(cd + at) != 0x02014b50) goto corrupt;
    const unsigned char *c = cd + at;
    unsigned nl = u16(c + 28), xl = u16(c + 30), cl = u16(c + 32);
    if (at + 46 + nl + xl + cl > cd_size) goto corrupt;
    if (u16(c + 8) & 1) {
      free(cd);
      free(m);
      return qkd_fail(err, QKD_ERR_FORMAT, path, "an encrypted zip member");
    }
    member *x = &m[n];
    x->method = u16(c + 10);
    x->crc = u32(c + 16);
    x->comp = u32(c + 20);
    x->size = u32(c + 24);
    x->offset = u32(c + 42);
    const unsigned char *xp = c + 46 + nl, *xe = xp + xl;
    while (xp + 4 <= xe) { /* zip64 extra: the 0xFFFFFFFF fields, in order */
      unsigned id = u16(xp), len = u16(xp + 2);
      const unsigned char *v = xp + 4;
      if (v + len > xe) goto corrupt;
      if (id == 1) {
        const unsigned char *ve = v + len;
        if (x->size == 0xFFFFFFFF) { if (v + 8 > ve) goto corrupt; x->size = u64(v); v += 8; }
        if (x->comp == 0xFFFFFFFF) { if (v + 8 > ve) goto corrupt; x->comp = u64(v); v += 8; }
        if (x->offset == 0xFFFFFFFF) { if (v + 8 > ve) goto corrupt; x->offset = u64(v); v += 8; }
      }
      xp += 4 + len;
    }
    if (nl < sizeof x->name) {
      memcpy(x->name, c + 46, nl);
      x->name[nl] = 0;
      n++;
    }
    at += 46 + nl + xl + cl;
  }
  free(cd);
  *out = m;
  *n_out = n;
  return 0;
corrupt:
  free(cd);
  free(m);
  return qkd_fail(err, QKD_ERR_FORMAT, path, "a corrupt zip central directory");
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

int qkd_npz_members(const char *path, char ***names, int *n, qkd_error *err) {
  *names = NULL;
  *n = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return qkd_fail(err, QKD_ERR_IO, path, "cannot open: %s", strerror(errno));
  struct stat st;
  member *m = NULL;
  int nm = 0;
  int rc = fstat(fileno(f), &st) != 0 ? qkd_fail(err, QKD_ERR_IO, path, "cannot stat: %s", strerror(errno))
                                       : zip_members(f, (uint64_t)st.st_size, path, &m, &nm, err);
  fclose(f);
  if (rc != 0) return -1;
  char **out = calloc((size_t)nm + 1, sizeof *out);
  if (!out) { free(m); return qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory"); }
  int k = 0;
  for (int i = 0; i < nm; i++)
    if (ends_with(m[i].name, ".npy")) {
      size_t len = strlen(m[i].name) - 4;
      if (!(out[k] = malloc(len + 1))) break;
      memcpy(out[k], m[i].name, len);
      out[k++][len] = 0;
    }
  free(m);
  *names = out;
  *n = k;
  return 0;
}

int qkd_npy_load(const char *path, const char *want, int header_only, qkd_npy *a, qkd_error *err) {
  memset(a, 0, sizeof *a);
  FILE *f = fopen(path, "rb");
  if (!f) return qkd_fail(err, QKD_ERR_IO, path, "cannot open: %s", strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0) {
    fclose(f);
    return qkd_fail(err, QKD_ERR_IO, path, "cannot stat: %s", strerror(errno));
  }
  stream *s = calloc(1, sizeof *s);
  if (!s) { fclose(f); return qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory"); }
  s->f = f;
  s->crc = crc32(0L, Z_NULL, 0);
  s->check_crc = want != NULL;
  int rc;
  if (!want) {
    s->left = (uint64_t)st.st_size;
    rc = read_array(s, header_only, a, path, err);
  } else {
    char what[1400], name[300];
    snprintf(what, sizeof what, "%s[%s]", path, want);
    snprintf(name, sizeof name, "%s.npy", want);
    member *m = NULL, *x = NULL;
    int nm = 0;
    rc = zip_members(f, (uint64_t)st.st_size, path, &m, &nm, err);
    for (int i = 0; rc == 0 && i < nm && !x; i++)
      if (!strcmp(m[i].name, name)) x = &m[i];
    unsigned char lh[30];
    if (rc != 0) {
    } else if (!x) {
      rc = qkd_fail(err, QKD_ERR_FORMAT, path, "has no array '%s'", want);
    } else if (x->method != 0 && x->method != 8) {
      rc = qkd_fail(err, QKD_ERR_FORMAT, what, "zip compression method %d (qkd reads stored and deflated members)", x->method);
    } else if (x->offset + 30 > (uint64_t)st.st_size || fseeko(f, (off_t)x->offset, SEEK_SET) != 0 ||
               fread(lh, 1, 30, f) != 30 || u32(lh) != 0x04034b50) {
      rc = qkd_fail(err, QKD_ERR_FORMAT, what, "a corrupt zip local header");
    } else {
      uint64_t data = x->offset + 30 + u16(lh + 26) + u16(lh + 28);
      if (data > (uint64_t)st.st_size || x->comp > (uint64_t)st.st_size - data || fseeko(f, (off_t)data, SEEK_SET) != 0 ||
          (x->method == 0 && x->comp != x->size)) {
        rc = qkd_fail(err, QKD_ERR_FORMAT, what, "a zip member past the end of the file (truncated)");
      } else {
        s->left = x->size;
        s->deflated = x->method == 8;
        s->in_left = x->comp;
        if (s->deflated) {
          if (inflateInit2(&s->z, -MAX_WBITS) != Z_OK) rc = qkd_fail(err, QKD_ERR_INPUT, what, "zlib cannot start");
          else s->z_open = 1;
        }
        if (rc == 0) rc = read_array(s, header_only, a, what, err);
        if (rc == 0 && !header_only && s->crc != x->crc) {
          qkd_npy_free(a);
          rc = qkd_fail(err, QKD_ERR_FORMAT, what, "CRC-32 mismatch (the member is corrupt)");
        }
        if (s->z_open) inflateEnd(&s->z);
      }
    }
    free(m);
  }
  fclose(f);
  free(s);
  return rc;
}

/* ---- writing --------------------------------------------------------------------------------- */

/* The .npy bytes of a (header and data), malloc'd. */
static unsigned char *npy_bytes(const qkd_npy *a, size_t *len) {
  char dict[NPY_MAX_HEADER], shape[QKD_NPY_MAX_DIMS * 24 + 4];
  size_t k = 0;
  shape[k++] = '(';
  for (int i = 0; i < a->ndim; i++) k += (size_t)snprintf(shape + k, sizeof shape - k, i ? ", %ld" : "%ld", a->shape[i]);
  if (a->ndim == 1) shape[k++] = ',';
  shape[k++] = ')';
  shape[k] = 0;
  int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", qkd_npy_descr(a->type), shape);
  size_t pre = 10, hl = (size_t)n + 1; /* + '\n' */
  if (pre + hl > 65535 + 10) pre = 12;
  size_t total_h = (pre + hl + 63) / 64 * 64, data = (size_t)a->count * qkd_npy_itemsize(a->type);
  unsigned char *b = malloc(total_h + data + 1);
  if (!b) return NULL;
  memcpy(b, "\x93NUMPY", 6);
  size_t h = total_h - pre;
  b[6] = pre == 10 ? 1 : 2;
  b[7] = 0;
  for (size_t i = 0; i < pre - 8; i++) b[8 + i] = (unsigned char)(h >> (8 * i));
  memcpy(b + pre, dict, (size_t)n);
  memset(b + pre + n, ' ', h - (size_t)n - 1);
  b[total_h - 1] = '\n';
  if (data) memcpy(b + total_h, a->data, data);
  *len = total_h + data;
  return b;
}

int qkd_npy_save(const char *path, const qkd_npy *a, qkd_error *err) {
  size_t len;
  unsigned char *b = npy_bytes(a, &len);
  if (!b) return qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory");
  int rc = qkd_file_write_bytes(path, b, len, err);
  free(b);
  return rc;
}

typedef struct {
  const char *const *names;
  unsigned char **bytes; /* each member's stored bytes (deflated or not) */
  size_t *len, *raw;
  uint32_t *crc;
  int n, deflate;
} npz_job;

static void p16(FILE *f, unsigned v) { fputc((int)(v & 255), f), fputc((int)(v >> 8 & 255), f); }
static void p32(FILE *f, uint32_t v) { p16(f, v & 0xFFFF), p16(f, v >> 16); }

static int emit_npz(FILE *f, const void *ctx) {
  const npz_job *j = ctx;
  uint32_t off = 0;
  uint32_t *offs = malloc(sizeof(uint32_t) * (size_t)(j->n + 1));
  if (!offs) return -1;
  for (int pass = 0; pass < 2; pass++) {
    uint32_t cd_start = off;
    for (int i = 0; i < j->n; i++) {
      size_t nl = strlen(j->names[i]) + 4;
      p32(f, pass ? 0x02014b50 : 0x04034b50);
      if (pass) p16(f, 20);                 /* version made by */
      p16(f, 20), p16(f, 0);                /* version needed, flags */
      p16(f, j->deflate ? 8 : 0);
      p16(f, 0), p16(f, 0x21);              /* 00:00, 1980-01-01 */
      p32(f, j->crc[i]), p32(f, (uint32_t)j->len[i]), p32(f, (uint32_t)j->raw[i]);
      p16(f, (unsigned)nl), p16(f, 0);
      if (pass) { p16(f, 0), p16(f, 0), p16(f, 0), p32(f, 0), p32(f, offs[i]); }
      fputs(j->names[i], f), fputs(".npy", f);
      if (!pass) {
        offs[i] = off;
        fwrite(j->bytes[i], 1, j->len[i], f);
        off += (uint32_t)(30 + nl + j->len[i]);
      } else {
        off += (uint32_t)(46 + nl);
      }
    }
    if (pass) {
      p32(f, 0x06054b50), p16(f, 0), p16(f, 0), p16(f, (unsigned)j->n), p16(f, (unsigned)j->n);
      p32(f, off - cd_start), p32(f, cd_start), p16(f, 0);
    }
  }
  free(offs);
  return ferror(f) ? -1 : 0;
}

int qkd_npz_save(const char *path, const char *const *names, const qkd_npy *arrays, int n, int deflated, qkd_error *err) {
  npz_job j = {names, calloc((size_t)n + 1, sizeof(unsigned char *)), calloc((size_t)n + 1, sizeof(size_t)),
               calloc((size_t)n + 1, sizeof(size_t)), calloc((size_t)n + 1, sizeof(uint32_t)), n, deflated};
  int rc = 0;
  uint64_t total = 22;
  if (!j.bytes || !j.len || !j.raw || !j.crc) rc = qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory");
  for (int i = 0; rc == 0 && i < n; i++) {
    if (strlen(names[i]) > 200) { rc = qkd_fail(err, QKD_ERR_INPUT, path, "array name '%.40s…' too long", names[i]); break; }
    size_t len;
    unsigned char *b = npy_bytes(&arrays[i], &len);
    if (!b) { rc = qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory"); break; }
    if (len >= 0xFFFFFFFFu) { free(b); rc = qkd_fail(err, QKD_ERR_INPUT, path, "array '%s' of 4 GiB or more (qkd writes no zip64)", names[i]); break; }
    j.raw[i] = len;
    j.crc[i] = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)len);
    if (!deflated) {
      j.bytes[i] = b, j.len[i] = len;
    } else {
      z_stream z = {0};
      uLong cap = deflateBound(&z, (uLong)len) + 64;
      unsigned char *c = malloc(cap);
      if (!c || deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(b), free(c);
        rc = qkd_fail(err, QKD_ERR_MEMORY, path, "out of memory");
        break;
      }
      z.next_in = b, z.avail_in = (uInt)len, z.next_out = c, z.avail_out = (uInt)cap;
      int zr = deflate(&z, Z_FINISH);
      j.len[i] = z.total_out;
      deflateEnd(&z);
      free(b);
      if (zr != Z_STREAM_END) { free(c); rc = qkd_fail(err, QKD_ERR_INPUT, path, "zlib cannot compress array '%s'", names[i]); break; }
      j.bytes[i] = c;
    }
    total += 30 + 46 + 2 * (strlen(names[i]) + 4) + j.len[i];
  }
  if (rc == 0 && total >= 0xFFFFFFFFu) rc = qkd_fail(err, QKD_ERR_INPUT, path, "an archive of 4 GiB or more (qkd writes no zip64)");
  if (rc == 0) rc = qkd_file_write_atomic(path, emit_npz, &j, err);
  for (int i = 0; j.bytes && i < n; i++) free(j.bytes[i]);
  free(j.bytes), free(j.len), free(j.raw), free(j.crc);
  return rc;
}
