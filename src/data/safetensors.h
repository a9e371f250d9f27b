/* The safetensors file format: 8-byte little-endian header length, a JSON header mapping tensor names to
 * {dtype, shape, data_offsets} plus an optional "__metadata__" map of strings, then the raw data.
 * Only F32 tensors are read and written (the host must be little-endian). */
#ifndef ELBO_SAFETENSORS_H
#define ELBO_SAFETENSORS_H

#include <stddef.h>

#define ELBO_ST_MAX_DIMS 4
#define ELBO_ST_NAME_MAX 128

typedef struct {
    char name[ELBO_ST_NAME_MAX];
    size_t ndim;
    size_t shape[ELBO_ST_MAX_DIMS];
    size_t count;          /* elements: the product of shape */
    const float *data;     /* into the file's data region (may be unaligned for SIMD; read with memcpy) */
} elbo_st_tensor;

typedef struct {
    char key[64];
    char *value;           /* owned */
} elbo_st_meta;

typedef struct {
    size_t n_tensors;
    elbo_st_tensor *tensors;
    size_t n_meta;
    elbo_st_meta *meta;
    unsigned char *buf;    /* whole file */
} elbo_st_file;

/* Reads and validates a whole safetensors file: every header field, dtype F32, offsets in range and
 * consistent with the shape, no overlaps, no duplicate names. Returns 0, or -1 with a one-line message in
 * err naming the file and the field; *f is zeroed on failure. */
int elbo_st_read(const char *path, elbo_st_file *f, char *err, size_t errlen);
/* Releases what elbo_st_read allocated (safe on a zeroed struct). */
void elbo_st_free(elbo_st_file *f);
/* The tensor called name, or NULL. */
const elbo_st_tensor *elbo_st_find(const elbo_st_file *f, const char *name);
/* The metadata value of key, or NULL. */
const char *elbo_st_meta_get(const elbo_st_file *f, const char *key);

/* One tensor to write: shape[0..ndim) and count = product(shape) floats at data. */
typedef struct {
    const char *name;
    size_t ndim;
    size_t shape[ELBO_ST_MAX_DIMS];
    const float *data;
} elbo_st_out_tensor;

/* Writes tensors (in the given order) and string metadata to path atomically: a temporary file in the
 * same directory, fsync, rename, fsync of the directory. On failure nothing at path changes. */
int elbo_st_write(const char *path, const elbo_st_out_tensor *t, size_t n, const char *const *meta_kv,
                  size_t n_meta, char *err, size_t errlen);

/* Removes the temporary files elbo_st_write leaves beside path when it is killed mid-write
 * ("<path>.tmp.XXXXXX"); returns how many were removed. Call only when no other writer of path runs. */
size_t elbo_st_remove_stale_temps(const char *path);

#endif
