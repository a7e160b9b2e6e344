/* qkd_data.h — data sets for the classical runtime: IDX (raw or .gz), CIFAR-10 binary and NumPy
 * array (.npy directory or one .npz) loaders, the synthetic source, the data path, the data-set
 * options of spec §2/§6 and the conversion of a batch of items to float.
 *
 * Owns: the features of every loaded split (one item = c*h*w values, CHW order; uint8 pixels
 * for IDX, CIFAR-10, synthetic and uint8 arrays, float32 for float arrays — ds->features says
 * which, kept as loaded, never converted) and the labels (renumbered 0..n_classes-1).
 * qkd_data_batch converts a batch to float with the data set's per-channel scale.
 *
 * Array sources: x_train, y_train, x_test, y_test (as NAME.npy in a directory, or members of
 * one .npz). x has shape (N, D) -> item 1x1xD, (N, H, W) -> 1xHxW or (N, C, H, W) with C <= 4;
 * dtype uint8, float32 or float64 (rounded to float32; every value must be finite). y is (N,)
 * uint8/int32/int64 with labels 0..K-1, K <= QKD_DATA_MAX_CLASSES; K = 1 + the largest label of
 * either split. Row i of an array is orig_index i of its split.
 *
 * Promises:
 *  - every file is validated before anything proportional to its header is allocated: magic,
 *    dimension count, sizes against the file length (for .gz, against the decompressed length,
 *    read with a cap), label range, equal image/label counts. A header that claims 10^9 images
 *    never causes a large allocation.
 *  - errors are returned, never printed or exit()ed: the functions return -1 and fill err
 *    (qkd_err.h) with path = the offending file (or the source, for data-set level errors),
 *    the message and its kind (IO: a file or directory missing or unreadable; FORMAT: a file's
 *    contents; INPUT: the options; MEMORY); the CLI prints qkd_error_text and exits 1.
 *  - the options apply in the order classes -> per_class -> limits -> validation; the validation
 *    hold-out is a deterministic function of opts.seed (qkd_rng stream QKD_STREAM_SPLIT).
 *  - qkd_dataset.files lists the files read with their sizes on disk (provenance, cache keys). */
#ifndef QKD_DATA_H
#define QKD_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "qkd_err.h"

#define QKD_DATA_MAX_FILES 8
#define QKD_DATA_MAX_CLASSES 1000

enum { QKD_DATA_SCALE_UNIT = 0, QKD_DATA_SCALE_STANDARD = 1 };
enum { QKD_DATA_U8 = 0, QKD_DATA_F32 = 1 }; /* qkd_dataset.features */

/* What to load (spec §2 `dataset`). Zero means "not set" for every count. */
typedef struct {
  const char *source;     /* "mnist" | "fashion-mnist" | "cifar10" (the data path), "synthetic",
                             a directory or a .npz file (absolute or relative to the cwd; the caller
                             resolves paths relative to the .qkd file). A source containing '/' or
                             naming an existing directory is a path. */
  int n_classes;          /* 0 = all classes of the source */
  const int *classes;     /* [n_classes] original labels, in the order that renumbers them */
  int per_class;          /* first N images of each class in file order, both splits */
  int train_limit, test_limit; /* first N images after classes/per_class */
  int validation;         /* images held out of the training split */
  int scale;              /* QKD_DATA_SCALE_UNIT (uint8 pixels/255, float features as they are)
                             or _STANDARD (per-channel mean/std of the training split) */
  uint64_t seed;          /* synthetic images and the validation draw */
  int c, h, w;            /* synthetic: the image shape (1 <= c <= 4, 1 <= h, w <= 256) */
  int source_classes;     /* synthetic: the number of classes [10]; labels of IDX and CIFAR-10
                             files must be < 10, those of arrays < QKD_DATA_MAX_CLASSES */
} qkd_data_opts;

typedef struct {
  int n;                  /* items */
  uint8_t *x;             /* [n] items of qkd_data_item_bytes(ds) bytes: uint8 or float32 values */
  int *y;                 /* [n] renumbered labels */
  int *orig_index;        /* [n] the image's index in the source split (file order) */
} qkd_split;

typedef struct {
  char path[1024];
  long long size;         /* bytes on disk */
} qkd_data_file;

typedef struct {
  int c, h, w;            /* item shape */
  int features;           /* QKD_DATA_U8 or QKD_DATA_F32: the type of the values in split x */
  int n_classes;          /* labels are 0..n_classes-1 */
  int source_classes;     /* the source's label count (before `classes` renumbers them) */
  qkd_split train, val, test;
  float mean[4], inv_std[4]; /* per channel, in stored units: value = (x - mean) * inv_std */
  char source[1024];      /* the resolved directory, or "synthetic" */
  int n_files;
  qkd_data_file files[QKD_DATA_MAX_FILES];
} qkd_dataset;

/* Loads and filters a data set. On failure returns -1 with err set and *ds empty. */
int qkd_data_load(const qkd_data_opts *opts, qkd_dataset *ds, qkd_error *err);
void qkd_data_free(qkd_dataset *ds);

/* Bytes of one item of a split's x. */
size_t qkd_data_item_bytes(const qkd_dataset *ds);

/* Converts items idx[0..n) of split (all of them in order when idx is NULL) to float [n][c*h*w]
 * with the data set's scale, and copies their labels to y (may be NULL). */
void qkd_data_batch(const qkd_dataset *ds, const qkd_split *split, const int *idx, int n,
                    float *x, int *y);

/* Training augmentation of a float batch x [n][c][h][w] in place. Image k (index idx[k] of its
 * split) draws from qkd_rng(seed, QKD_STREAM_AUGMENT, (epoch << 32) + idx[k]), so its transform
 * is a function of (seed, epoch, image) only — not of the batch, its order or the threads.
 *   crop_pad p > 0: shifted by (dy, dx), each uniform in [-p, p]: out(i, j) = in(i + dy, j + dx),
 *                   0 where that falls outside (the same as zero-padding by p on every side and
 *                   cropping h x w at offset (p + dy, p + dx), torchvision's RandomCrop(padding=p));
 *   flip:           then mirrored left-right, out(i, j) = in(i, w - 1 - j), with probability 1/2.
 * All channels move together. Zero is the value of the scaled input (black with scale: unit). */
void qkd_data_augment(float *x, int n, int c, int h, int w, const int *idx, int crop_pad, int flip, uint64_t seed,
                      uint64_t epoch);

/* Resolves a named data set on the data path ($QKD_DATA colon-separated, ./data,
 * QKD_SOURCE_DATA_DIR, /usr/share/datasets) into dir. -1 with a message that lists the places
 * searched and how to get the data when it is nowhere. */
int qkd_data_find(const char *name, char *dir, size_t dirlen, qkd_error *err);

/* The files qkd_data_load would read for opts, with their sizes (-1: missing), without reading
 * them: the identity of a data set for cache and cell keys. files has QKD_DATA_MAX_FILES slots. */
int qkd_data_identify(const qkd_data_opts *opts, qkd_data_file *files, int *n, qkd_error *err);

/* Header-only probe of a directory or .npz source (or a named source: shape known, no files
 * read): item shape, class count (10 for the standard layouts) and split sizes from the headers.
 * Array sources also have their label arrays read (not their features): K is their range. */
int qkd_data_probe(const char *source, int *c, int *h, int *w, int *n_classes, int *n_train,
                   int *n_test, qkd_error *err);

/* Low-level readers (used by qkd_data_load; exposed for tests). Each validates the whole file.
 * qkd_idx_read: ndim must be `want_ndim` (1: labels, 3: images); dims[0..ndim) receive the sizes;
 * *data receives the payload (malloc'd, prod(dims) bytes). max_label >= 0 checks every byte of a
 * label file against it. */
int qkd_idx_read(const char *path, int want_ndim, int max_label, int dims[3], uint8_t **data,
                 qkd_error *err);
/* One CIFAR-10 binary file: records of 1 label byte + 3072 pixel bytes. Appends to x/y
 * (realloc'd) and updates *n. */
int qkd_cifar_read(const char *path, uint8_t **x, int **y, int *n, qkd_error *err);

#endif
