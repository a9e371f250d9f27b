/* The checks shared by the IDX fuzz targets: read a file as images and as labels and verify the reader's
 * contract (idx.h) on the result. */
#ifndef ELBO_FUZZ_IDX_CHECK_H
#define ELBO_FUZZ_IDX_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idx.h"

/* Aborts with a message when cond is false (libFuzzer records the input as a crash). */
#define FUZZ_REQUIRE(cond, ...) do { if (!(cond)) { fprintf(stderr, "fuzz check failed: " __VA_ARGS__); \
    fprintf(stderr, "\n"); abort(); } } while (0)

/* Fails unless err is one non-empty line naming path. */
static inline void fuzz_check_error_line(const char *err, const char *path)
{
    FUZZ_REQUIRE(err[0] != '\0', "empty error message");
    FUZZ_REQUIRE(strchr(err, '\n') == NULL, "error message on several lines: %s", err);
    FUZZ_REQUIRE(strstr(err, path) != NULL, "error message does not name the file: %s", err);
}

/* The big-endian uint32 at p. */
static inline uint32_t fuzz_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Reads path as an image file; raw (data, size) is the file itself when plain is set, so a success must
 * return its body byte for byte. */
static inline void fuzz_idx_check_images(const char *path, const uint8_t *data, size_t size, int plain)
{
    char err[512] = "";
    elbo_idx_images im;
    if (elbo_idx_read_images(path, &im, err, sizeof err) != 0) {
        fuzz_check_error_line(err, path);
        FUZZ_REQUIRE(im.pixels == NULL && im.count == 0 && im.rows == 0 && im.cols == 0, "outputs not zeroed");
        return;
    }
    size_t bytes = im.count * im.rows * im.cols;
    FUZZ_REQUIRE(im.pixels && bytes > 0, "success without pixels");
    volatile uint8_t sink = im.pixels[0] ^ im.pixels[bytes - 1];
    (void)sink;
    if (plain && size >= 16 && !(data[0] == 0x1f && data[1] == 0x8b)) {
        FUZZ_REQUIRE(fuzz_be32(data) == ELBO_IDX_IMAGES_MAGIC, "wrong magic accepted");
        FUZZ_REQUIRE(size == 16 + bytes, "plain file of %zu bytes accepted for a body of %zu", size, bytes);
        FUZZ_REQUIRE(memcmp(im.pixels, data + 16, bytes) == 0, "pixels differ from the file's body");
    }
    elbo_idx_images_free(&im);
}

/* Reads path as a label file; same contract as fuzz_idx_check_images. */
static inline void fuzz_idx_check_labels(const char *path, const uint8_t *data, size_t size, int plain)
{
    char err[512] = "";
    uint8_t *labels = NULL;
    size_t count = 0;
    if (elbo_idx_read_labels(path, &labels, &count, err, sizeof err) != 0) {
        fuzz_check_error_line(err, path);
        FUZZ_REQUIRE(labels == NULL && count == 0, "outputs not zeroed");
        return;
    }
    FUZZ_REQUIRE(labels && count > 0, "success without labels");
    volatile uint8_t sink = labels[0] ^ labels[count - 1];
    (void)sink;
    if (plain && size >= 8 && !(data[0] == 0x1f && data[1] == 0x8b)) {
        FUZZ_REQUIRE(fuzz_be32(data) == ELBO_IDX_LABELS_MAGIC, "wrong magic accepted");
        FUZZ_REQUIRE(size == 8 + count, "plain file of %zu bytes accepted for %zu labels", size, count);
        FUZZ_REQUIRE(memcmp(labels, data + 8, count) == 0, "labels differ from the file's body");
    }
    elbo_idx_labels_free(labels);
}

#endif
