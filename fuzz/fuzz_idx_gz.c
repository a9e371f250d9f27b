/* libFuzzer target: the IDX reader on gzip files. The input is [flags, cut, flip, payload...]: the target
 * gzips the payload (so the mutator works on the IDX fields beneath the compression), then, by the flags,
 * cuts the stream short, flips one byte of it, or appends trailing bytes or a second gzip member. An intact
 * stream must read back as the payload itself would, plain. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz_file.h"
#include "fuzz_idx_check.h"

enum { CUT = 1, FLIP = 2, TRAILING = 4, SECOND_MEMBER = 8 };

/* gzip of payload into a new buffer (*len bytes, room for one more copy of it after); NULL on failure. */
static uint8_t *gzip(const uint8_t *payload, size_t n, size_t *len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&z, n);
    uint8_t *out = malloc(2 * cap + 16);
    if (!out) {
        deflateEnd(&z);
        return NULL;
    }
    z.next_in = (Bytef *)payload;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    *len = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size > (1 << 20))
        return 0;
    uint8_t flags = data[0], cut = data[1], flip = data[2];
    const uint8_t *payload = data + 3;
    size_t n = size - 3, len = 0;
    uint8_t *gz = gzip(payload, n, &len);
    if (!gz)
        abort();
    size_t whole = len;
    if (flags & SECOND_MEMBER) {
        memcpy(gz + len, gz, whole);
        len += whole;
    }
    if (flags & TRAILING) {
        memcpy(gz + len, "\x00\x01garbage", 9);
        len += 9;
    }
    if (flags & FLIP)
        gz[flip % len] ^= (uint8_t)(1u << (cut & 7));
    if (flags & CUT)
        len = len * cut / 256;
    const char *path = fuzz_file(gz, len);
    int intact = !(flags & (CUT | FLIP | TRAILING | SECOND_MEMBER));
    fuzz_idx_check_images(path, payload, n, intact);
    fuzz_idx_check_labels(path, payload, n, intact);
    if (intact) {
        /* what the payload holds, read plain, must be what its gzip gives: same outcome */
        char e1[512], e2[512];
        elbo_idx_images a, b;
        int ra = elbo_idx_read_images(path, &a, e1, sizeof e1);
        const char *plain = fuzz_file(payload, n);
        int rb = elbo_idx_read_images(plain, &b, e2, sizeof e2);
        if (!(n >= 2 && payload[0] == 0x1f && payload[1] == 0x8b))
            FUZZ_REQUIRE(ra == rb, "gzip and plain copies of one file disagree: %s / %s", ra ? e1 : "ok",
                         rb ? e2 : "ok");
        elbo_idx_images_free(&a);
        elbo_idx_images_free(&b);
    }
    free(gz);
    return 0;
}
