/* qkd_npy.h — NumPy's .npy and .npz files, read and written (issue J).
 *
 * Owns: the arrays it reads (free with qkd_npy_free); nothing else.
 *
 * Promises:
 *  - .npy format versions 1.0, 2.0 and 3.0; dtypes |u1 <i4 <i8 <f4 <f8 (also written by NumPy as
 *    u1/i4/…, with '<' or '=' on this little-endian machine); C order; shapes of 0 to
 *    QKD_NPY_MAX_DIMS dimensions. The header is parsed as the Python dict literal NumPy writes
 *    (keys in any order, either quote, trailing comma) and is at most NumPy's own 10,000 bytes.
 *  - .npz: the zip members "NAME.npy" that numpy.savez (stored) and numpy.savez_compressed
 *    (deflated) write, zip64 fields included; each member's CRC-32 is verified.
 *  - everything the header sizes is validated against the file (or member) before any buffer it
 *    sizes is allocated: a truncated or padded file, a wrong magic, Fortran order, big-endian or
 *    object dtypes, an unknown member are errors naming the file (and member), -1 returned,
 *    nothing allocated. header_only reads validate the same and leave data NULL.
 *  - writing goes through qkd_file_write_atomic: .npy version 1.0 (2.0 when the header needs it),
 *    header padded to 64 bytes as NumPy does; .npz members stored or deflated, no zip64 (a
 *    member of 4 GiB or more is an error). NumPy reads what qkd writes and vice versa.
 *  - errors fill a qkd_error (qkd_err.h): path = the file (FILE[MEMBER] for a .npz member),
 *    kind IO (cannot open or read), FORMAT (anything wrong inside), MEMORY or INPUT (too large
 *    to write). */
#ifndef QKD_NPY_H
#define QKD_NPY_H

#include <stddef.h>

#include "qkd_err.h"

#define QKD_NPY_MAX_DIMS 8

typedef enum { QKD_NPY_U8 = 0, QKD_NPY_I32, QKD_NPY_I64, QKD_NPY_F32, QKD_NPY_F64 } qkd_npy_type;

typedef struct {
  qkd_npy_type type;
  int ndim;
  long shape[QKD_NPY_MAX_DIMS];
  long count;  /* elements: the product of shape (1 for a 0-d array) */
  void *data;  /* count elements in C order, or NULL (header-only read) */
} qkd_npy;

size_t qkd_npy_itemsize(qkd_npy_type t);
const char *qkd_npy_descr(qkd_npy_type t); /* "|u1", "<i4", … */
/* Element i as a double (integers exactly up to 2^53). */
double qkd_npy_get(const qkd_npy *a, long i);

/* Reads PATH: a .npy file (member NULL), or member MEMBER (without ".npy") of a .npz file. */
int qkd_npy_load(const char *path, const char *member, int header_only, qkd_npy *a, qkd_error *err);
/* The member names of a .npz (without ".npy"), malloc'd (free each and the array); *n their count. */
int qkd_npz_members(const char *path, char ***names, int *n, qkd_error *err);
void qkd_npy_free(qkd_npy *a);

int qkd_npy_save(const char *path, const qkd_npy *a, qkd_error *err);
int qkd_npz_save(const char *path, const char *const *names, const qkd_npy *arrays, int n, int deflate, qkd_error *err);

#endif
