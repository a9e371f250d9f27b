/* Reader and writer of IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
 *
 * Format: a big-endian header (magic 0x000008NN where 08 = unsigned bytes and NN = number of
 * dimensions, then one uint32 per dimension) followed by the data, row-major, nothing after it.
 * Compression is detected by content (gzip magic), never by file name.
 *
 * The files come from others, so every field is checked: wrong magic, a count or a dimension of 0,
 * sizes whose product overflows or exceeds ELBO_IDX_MAX_BYTES, truncated headers and bodies,
 * trailing bytes after the data, and corrupt or cut-off gzip streams are errors. Errors return -1,
 * leave the outputs zeroed, free everything, and write one line into err naming the file and the
 * field, e.g. "data/x.gz: magic: expected 0x00000803, got 0x00000801 (an IDX label file)".
 * Bytes after the end of a gzip stream that are not another gzip member are ignored (zlib's rule). */
#ifndef ELBO_IDX_H
#define ELBO_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "atomic_file.h"

#define ELBO_IDX_IMAGES_MAGIC 0x00000803u
#define ELBO_IDX_LABELS_MAGIC 0x00000801u
/* Largest data section accepted (bytes), checked before anything is allocated. */
#define ELBO_IDX_MAX_BYTES ((uint64_t)1 << 32)

typedef struct {
    size_t count;      /* number of images */
    size_t rows, cols; /* each image is rows x cols uint8 pixels, row-major */
    uint8_t *pixels;   /* count * rows * cols bytes, owned (elbo_lazy_alloc) */
} elbo_idx_images;

/* Reads an IDX image file (magic 0x00000803), plain or gzip. Returns 0, or -1 with a message in err. */
int elbo_idx_read_images(const char *path, elbo_idx_images *out, char *err, size_t errlen);

/* Reads an IDX label file (magic 0x00000801) into *labels (count bytes, owned: elbo_idx_labels_free).
 * Same error contract. */
int elbo_idx_read_labels(const char *path, uint8_t **labels, size_t *count, char *err, size_t errlen);

/* ---- writing (idx_write.c): atomic, see atomic_file.h; errors are one line naming the file ---- */

/* An IDX image file being written in pieces: the header is written first, then images in any number of calls
 * to elbo_idx_writer_put; elbo_idx_writer_commit puts the file in place only when all `count` were written. */
typedef struct {
    elbo_atomic_file file;
    size_t count, image_bytes, written;
} elbo_idx_writer;

/* Starts an image file of count images of rows x cols (each dimension in [1, 2^32), the total within
 * ELBO_IDX_MAX_BYTES so that elbo_idx_read_images reads it back). Returns 0, or -1 with a message in err. */
int elbo_idx_writer_open(elbo_idx_writer *w, const char *path, size_t count, size_t rows, size_t cols, char *err,
                         size_t errlen);

/* Appends n images (n * rows * cols bytes). Returns 0, or -1 with a message in err (more images than the
 * header's count, or the write failed); the writer must then be aborted. */
int elbo_idx_writer_put(elbo_idx_writer *w, const uint8_t *pixels, size_t n, char *err, size_t errlen);

/* Checks that count images were written and renames the file into place. Returns 0, or -1 with a message in
 * err (nothing at the path changed). Releases the writer either way. */
int elbo_idx_writer_commit(elbo_idx_writer *w, char *err, size_t errlen);

/* Drops the file being written (nothing at the path changes) and releases the writer. */
void elbo_idx_writer_abort(elbo_idx_writer *w);

/* Writes count images of rows x cols pixels (magic 0x00000803) to path in one call. Returns 0 or -1 (err). */
int elbo_idx_write_images(const char *path, const uint8_t *pixels, size_t count, size_t rows, size_t cols,
                          char *err, size_t errlen);

/* Writes count labels (magic 0x00000801; count in [1, 2^32)) to path. Returns 0 or -1 (err). */
int elbo_idx_write_labels(const char *path, const uint8_t *labels, size_t count, char *err, size_t errlen);

/* Frees the pixels and zeroes *im (safe on a zeroed struct). */
void elbo_idx_images_free(elbo_idx_images *im);

/* Frees labels from elbo_idx_read_labels (NULL is a no-op). */
void elbo_idx_labels_free(uint8_t *labels);

#endif
