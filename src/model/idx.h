/* Reader for IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
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

/* Frees the pixels and zeroes *im (safe on a zeroed struct). */
void elbo_idx_images_free(elbo_idx_images *im);

/* Frees labels from elbo_idx_read_labels (NULL is a no-op). */
void elbo_idx_labels_free(uint8_t *labels);

#endif
