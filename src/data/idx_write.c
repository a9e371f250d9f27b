/* IDX writer: big-endian header, then the bytes, through an atomic file (temporary + fsync + rename). */
#include "idx.h"

#include "errmsg.h"

#include <string.h>

/* Stores v big-endian at p (4 bytes). */
static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Checks dims[0..ndims) (each in [1, 2^32), product within ELBO_IDX_MAX_BYTES, names[d] for messages) and
 * returns their product in *bytes; 0, or -1 with a message. */
static int check_dims(const char *path, const size_t *dims, const char *const *names, size_t ndims, size_t *bytes,
                      char *err, size_t errlen)
{
    uint64_t total = 1;
    for (size_t d = 0; d < ndims; d++) {
        if (dims[d] == 0 || (uint64_t)dims[d] > UINT32_MAX) {
            elbo_errf(err, errlen, "%s: %s: %zu (must be in [1, %u])", path, names[d], dims[d], (unsigned)UINT32_MAX);
            return -1;
        }
        /* total <= 2^32 before the product and dims[d] < 2^32: no overflow in 64 bits */
        total *= dims[d];
        if (total > ELBO_IDX_MAX_BYTES) {
            elbo_errf(err, errlen, "%s: %s: %zu makes the data exceed the limit of %llu bytes", path, names[d], dims[d],
                      (unsigned long long)ELBO_IDX_MAX_BYTES);
            return -1;
        }
    }
    *bytes = (size_t)total;
    return 0;
}

/* Opens the atomic file and writes the header (magic, then the dimensions); 0, or -1 with a message. */
static int start_file(elbo_atomic_file *f, const char *path, uint32_t magic, const size_t *dims, size_t ndims,
                      char *err, size_t errlen)
{
    uint8_t header[16];
    put_be32(header, magic);
    for (size_t d = 0; d < ndims; d++)
        put_be32(header + 4 + 4 * d, (uint32_t)dims[d]);
    if (elbo_atomic_open(f, path, err, errlen) != 0)
        return -1;
    if (elbo_atomic_write(f, header, 4 + 4 * ndims) != 0)
        return elbo_atomic_commit(f, err, errlen);  /* fails: reports the error, removes the file */
    return 0;
}

int elbo_idx_writer_open(elbo_idx_writer *w, const char *path, size_t count, size_t rows, size_t cols, char *err,
                         size_t errlen)
{
    static const char *const names[] = {"count", "rows", "cols"};
    const size_t dims[3] = {count, rows, cols};
    size_t bytes = 0;
    memset(w, 0, sizeof *w);
    w->file.fd = -1;
    if (check_dims(path, dims, names, 3, &bytes, err, errlen) != 0 ||
        start_file(&w->file, path, ELBO_IDX_IMAGES_MAGIC, dims, 3, err, errlen) != 0)
        return -1;
    w->count = count;
    w->image_bytes = rows * cols;
    return 0;
}

int elbo_idx_writer_put(elbo_idx_writer *w, const uint8_t *pixels, size_t n, char *err, size_t errlen)
{
    if (n > w->count - w->written) {
        elbo_errf(err, errlen, "%s: %zu images written after %zu, more than the header's count of %zu",
                  w->file.path, n, w->written, w->count);
        return -1;
    }
    if (elbo_atomic_write(&w->file, pixels, n * w->image_bytes) != 0) {
        elbo_errf(err, errlen, "%s: write failed: %s", w->file.path, strerror(w->file.error));
        return -1;
    }
    w->written += n;
    return 0;
}

int elbo_idx_writer_commit(elbo_idx_writer *w, char *err, size_t errlen)
{
    if (w->written != w->count) {
        elbo_errf(err, errlen, "%s: %zu of the header's %zu images written", w->file.path, w->written, w->count);
        elbo_atomic_abort(&w->file);
        return -1;
    }
    return elbo_atomic_commit(&w->file, err, errlen);
}

void elbo_idx_writer_abort(elbo_idx_writer *w)
{
    elbo_atomic_abort(&w->file);
}

int elbo_idx_write_images(const char *path, const uint8_t *pixels, size_t count, size_t rows, size_t cols,
                          char *err, size_t errlen)
{
    elbo_idx_writer w;
    if (elbo_idx_writer_open(&w, path, count, rows, cols, err, errlen) != 0)
        return -1;
    if (elbo_idx_writer_put(&w, pixels, count, err, errlen) != 0) {
        elbo_idx_writer_abort(&w);
        return -1;
    }
    return elbo_idx_writer_commit(&w, err, errlen);
}

int elbo_idx_write_labels(const char *path, const uint8_t *labels, size_t count, char *err, size_t errlen)
{
    static const char *const names[] = {"count"};
    elbo_atomic_file f;
    size_t bytes = 0;
    if (check_dims(path, &count, names, 1, &bytes, err, errlen) != 0 ||
        start_file(&f, path, ELBO_IDX_LABELS_MAGIC, &count, 1, err, errlen) != 0)
        return -1;
    elbo_atomic_write(&f, labels, bytes);
    return elbo_atomic_commit(&f, err, errlen);
}
