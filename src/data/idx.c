/* IDX reader: header checks, bounded allocation, streaming gzread into the final array. */
#include "idx.h"

#include "errmsg.h"
#include "lazy_alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_DIMS 3
#define GZ_BUFFER_BYTES (256u << 10)   /* zlib's input buffer (its default is 8 KiB) */
#define READ_CHUNK ((size_t)1 << 30)   /* gzread takes an unsigned and returns an int */
#define TRAILING_SCAN_MAX ((size_t)1 << 20)

/* An open IDX file and what it should hold. */
typedef struct {
    const char *path;
    gzFile gz;
    struct stat st;
    uint32_t magic;
    size_t ndims;
    const char *const *dim_names;  /* field name of each dimension */
    uint32_t dims[MAX_DIMS];
    size_t header_bytes;
} idx_file;

/* The big-endian uint32 at p. */
static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Reads up to len bytes (any size) into buf; returns the number read (short at end of data or error). */
static size_t read_full(gzFile gz, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        size_t want = len - got < READ_CHUNK ? len - got : READ_CHUNK;
        int n = gzread(gz, (uint8_t *)buf + got, (unsigned)want);
        if (n <= 0)
            break;
        got += (size_t)n;
        if ((size_t)n < want)
            break;
    }
    return got;
}

/* If the stream is in error, writes "path: gzip: ..." (or the system error) into err and returns 1;
 * pos/total (total 0: unknown) say where in the uncompressed data a cut-off stream ended. */
static int stream_failed(const idx_file *f, size_t pos, size_t total, char *err, size_t errlen)
{
    int code = Z_OK;
    const char *msg = gzerror(f->gz, &code);
    if (code == Z_OK)
        return 0;
    const char *sep = strstr(msg, ": ");
    if (msg[0] == '<' && sep)
        msg = sep + 2;  /* zlib prefixes "<fd:N>: "; the path is ours to name */
    if (code == Z_ERRNO)
        elbo_errf(err, errlen, "%s: read: %s", f->path, strerror(errno));
    else if (code == Z_BUF_ERROR && total)
        elbo_errf(err, errlen, "%s: gzip: stream truncated at byte %zu of %zu of the data (%s)", f->path, pos,
                  total, msg);
    else if (code == Z_BUF_ERROR)
        elbo_errf(err, errlen, "%s: gzip: stream truncated after the data (%s)", f->path, msg);
    else if (code == Z_MEM_ERROR)
        elbo_errf(err, errlen, "%s: gzip: out of memory", f->path);
    else
        elbo_errf(err, errlen, "%s: gzip: corrupt (%s)", f->path, msg);
    return 1;
}

/* Opens path for gzip-or-plain reading; refuses anything that is not a regular file or a stream. */
static int open_file(idx_file *f, char *err, size_t errlen)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        elbo_errf(err, errlen, "%s: %s", f->path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &f->st) != 0 || S_ISDIR(f->st.st_mode)) {
        elbo_errf(err, errlen, "%s: %s", f->path, S_ISDIR(f->st.st_mode) ? "is a directory" : strerror(errno));
        close(fd);
        return -1;
    }
    f->gz = gzdopen(fd, "rb");
    if (!f->gz) {
        elbo_errf(err, errlen, "%s: gzip: cannot open (out of memory)", f->path);
        close(fd);
        return -1;
    }
    gzbuffer(f->gz, GZ_BUFFER_BYTES);
    return 0;
}

/* A hint naming what a wrong magic number looks like. */
static const char *magic_hint(uint32_t magic)
{
    switch (magic) {
    case ELBO_IDX_IMAGES_MAGIC: return " (an IDX image file)";
    case ELBO_IDX_LABELS_MAGIC: return " (an IDX label file)";
    default: return (magic >> 8) == 0x08 ? " (an IDX file of another shape)" : " (not an IDX file of bytes)";
    }
}

/* Reads and checks the header: magic, then every dimension (non-zero). */
static int read_header(idx_file *f, uint32_t expected_magic, char *err, size_t errlen)
{
    uint8_t h[4 + 4 * MAX_DIMS];
    f->header_bytes = 4 + 4 * f->ndims;
    size_t got = read_full(f->gz, h, f->header_bytes);
    if (got < f->header_bytes && stream_failed(f, got, f->header_bytes, err, errlen))
        return -1;
    if (got == 0) {
        elbo_errf(err, errlen, "%s: header: empty file (expected an IDX header of %zu bytes)", f->path,
                  f->header_bytes);
        return -1;
    }
    if (got >= 4) {
        f->magic = be32(h);
        if (f->magic != expected_magic) {
            elbo_errf(err, errlen, "%s: magic: expected 0x%08x, got 0x%08x%s", f->path, (unsigned)expected_magic,
                      (unsigned)f->magic, magic_hint(f->magic));
            return -1;
        }
    }
    if (got < f->header_bytes) {
        const char *field = got < 4 ? "magic" : f->dim_names[(got - 4) / 4];
        elbo_errf(err, errlen, "%s: header: truncated at byte %zu of %zu (in field %s)", f->path, got,
                  f->header_bytes, field);
        return -1;
    }
    for (size_t d = 0; d < f->ndims; d++) {
        f->dims[d] = be32(h + 4 + 4 * d);
        if (f->dims[d] == 0) {
            elbo_errf(err, errlen, "%s: %s: 0 (must be at least 1)", f->path, f->dim_names[d]);
            return -1;
        }
    }
    return 0;
}

/* Product of the dimensions in bytes, or -1 (with a message) if it exceeds ELBO_IDX_MAX_BYTES or size_t. */
static int body_bytes(const idx_file *f, size_t *bytes, char *err, size_t errlen)
{
    uint64_t total = 1;
    int over = 0;
    for (size_t d = 0; d < f->ndims; d++) {
        /* total <= 2^32 and dims[d] < 2^32, so the product fits in 64 bits */
        total *= f->dims[d];
        if (total > ELBO_IDX_MAX_BYTES) {
            over = 1;
            break;
        }
    }
    if (over || total > (uint64_t)SIZE_MAX) {
        char shape[64] = "";
        size_t len = 0;
        char names[64] = "";
        size_t nlen = 0;
        for (size_t d = 0; d < f->ndims; d++) {
            len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%u", d ? " x " : "", (unsigned)f->dims[d]);
            nlen += (size_t)snprintf(names + nlen, sizeof names - nlen, "%s%s", d ? " x " : "", f->dim_names[d]);
        }
        elbo_errf(err, errlen, "%s: %s: %s bytes exceeds the limit of %llu bytes", f->path, names, shape,
                  (unsigned long long)ELBO_IDX_MAX_BYTES);
        return -1;
    }
    *bytes = (size_t)total;
    return 0;
}

/* Plain regular files: checks the size against header + body before anything is allocated. */
static int check_plain_size(const idx_file *f, size_t bytes, char *err, size_t errlen)
{
    if (!gzdirect(f->gz) || !S_ISREG(f->st.st_mode))
        return 0;
    uint64_t want = (uint64_t)f->header_bytes + bytes;
    uint64_t have = (uint64_t)f->st.st_size;
    if (have < want) {
        elbo_errf(err, errlen, "%s: body: truncated at byte %llu of %llu", f->path, (unsigned long long)have,
                  (unsigned long long)want);
        return -1;
    }
    if (have > want) {
        elbo_errf(err, errlen, "%s: trailing data: %llu bytes after the %llu bytes of header and body", f->path,
                  (unsigned long long)(have - want), (unsigned long long)want);
        return -1;
    }
    return 0;
}

/* Reads exactly `bytes` body bytes into a new elbo_lazy_alloc array, reserved whole: memory is committed as
 * the data arrives, so a header that lies about the size costs no more than the data that is there. */
static int read_body(idx_file *f, size_t bytes, uint8_t **data, char *err, size_t errlen)
{
    uint8_t *buf = elbo_lazy_alloc(bytes);
    if (!buf) {
        elbo_errf(err, errlen, "%s: body: cannot reserve %zu bytes", f->path, bytes);
        return -1;
    }
    size_t got = read_full(f->gz, buf, bytes);
    if (got < bytes) {
        if (!stream_failed(f, f->header_bytes + got, f->header_bytes + bytes, err, errlen))
            elbo_errf(err, errlen, "%s: body: truncated at byte %zu of %zu", f->path, f->header_bytes + got,
                      f->header_bytes + bytes);
        elbo_lazy_free(buf);
        return -1;
    }
    *data = buf;
    return 0;
}

/* Reads past the body to the end of the stream: trailing bytes and late gzip errors (CRC) are errors. */
static int check_end(idx_file *f, size_t bytes, char *err, size_t errlen)
{
    uint8_t scratch[4096];
    size_t extra = 0;
    int n;
    while (extra <= TRAILING_SCAN_MAX && (n = gzread(f->gz, scratch, sizeof scratch)) > 0)
        extra += (size_t)n;
    if (extra <= TRAILING_SCAN_MAX && stream_failed(f, 0, 0, err, errlen))
        return -1;
    if (extra > 0) {
        elbo_errf(err, errlen, "%s: trailing data: %s%zu bytes after the %zu bytes of header and body", f->path,
                  extra > TRAILING_SCAN_MAX ? "more than " : "", extra > TRAILING_SCAN_MAX ? TRAILING_SCAN_MAX : extra,
                  f->header_bytes + bytes);
        return -1;
    }
    return 0;
}

/* Reads a whole IDX file of the given magic and dimensions into *data (an elbo_lazy_alloc array owned by the
 * caller on success). */
static int read_idx(idx_file *f, uint32_t magic, uint8_t **data, char *err, size_t errlen)
{
    size_t bytes = 0;
    *data = NULL;
    if (open_file(f, err, errlen) != 0)
        return -1;
    int rc = read_header(f, magic, err, errlen);
    if (rc == 0)
        rc = body_bytes(f, &bytes, err, errlen);
    if (rc == 0)
        rc = check_plain_size(f, bytes, err, errlen);
    if (rc == 0)
        rc = read_body(f, bytes, data, err, errlen);
    if (rc == 0 && (rc = check_end(f, bytes, err, errlen)) != 0) {
        elbo_lazy_free(*data);
        *data = NULL;
    }
    gzclose_r(f->gz);
    return rc;
}

/* Reads an IDX image file into *out (see idx.h). */
int elbo_idx_read_images(const char *path, elbo_idx_images *out, char *err, size_t errlen)
{
    static const char *const names[] = {"count", "rows", "cols"};
    idx_file f = {.path = path, .ndims = 3, .dim_names = names};
    uint8_t *pixels = NULL;
    memset(out, 0, sizeof *out);
    if (read_idx(&f, ELBO_IDX_IMAGES_MAGIC, &pixels, err, errlen) != 0)
        return -1;
    out->count = f.dims[0];
    out->rows = f.dims[1];
    out->cols = f.dims[2];
    out->pixels = pixels;
    return 0;
}

/* Reads an IDX label file into *labels and *count (see idx.h). */
int elbo_idx_read_labels(const char *path, uint8_t **labels, size_t *count, char *err, size_t errlen)
{
    static const char *const names[] = {"count"};
    idx_file f = {.path = path, .ndims = 1, .dim_names = names};
    *labels = NULL;
    *count = 0;
    if (read_idx(&f, ELBO_IDX_LABELS_MAGIC, labels, err, errlen) != 0)
        return -1;
    *count = f.dims[0];
    return 0;
}

/* Frees labels read by elbo_idx_read_labels. */
void elbo_idx_labels_free(uint8_t *labels)
{
    elbo_lazy_free(labels);
}

/* Frees an image set and zeroes it. */
void elbo_idx_images_free(elbo_idx_images *im)
{
    elbo_lazy_free(im->pixels);
    memset(im, 0, sizeof *im);
}
