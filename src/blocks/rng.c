/* Philox4x32-10 streams: normals, uniforms and permutations. */
#include "rng.h"

#include "normals.h"

#include <math.h>
#include <Random123/philox.h>

void elbo_rng_block(uint64_t seed, elbo_rng_stream stream, uint32_t c0, uint32_t c1, uint32_t c2,
                    uint32_t out[4])
{
    philox4x32_ctr_t ctr = {{c0, c1, c2, (uint32_t)stream}};
    philox4x32_key_t key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    philox4x32_ctr_t r = philox4x32(ctr, key);
    for (int i = 0; i < 4; i++)
        out[i] = r.v[i];
}

/* Normals per Box-Muller call: 16 Philox blocks of words on the stack. */
#define NORMALS_CHUNK 64

void elbo_rng_normals(float *out, size_t n, uint64_t seed, elbo_rng_stream stream, uint32_t a, uint32_t b)
{
    uint32_t words[NORMALS_CHUNK];
    for (size_t j = 0; j < n; j += NORMALS_CHUNK) {
        size_t m = n - j < NORMALS_CHUNK ? n - j : NORMALS_CHUNK;
        for (size_t q = 0; 4 * q < m; q++)
            elbo_rng_block(seed, stream, (uint32_t)(j / 4 + q), a, b, words + 4 * q);
        elbo_box_muller(out + j, words, m);
    }
}

void elbo_rng_uniforms(float *out, size_t n, float lo, float hi, uint64_t seed, elbo_rng_stream stream,
                       uint32_t a, uint32_t b)
{
    for (size_t j = 0; j < n; j += 4) {
        uint32_t w[4];
        elbo_rng_block(seed, stream, (uint32_t)(j / 4), a, b, w);
        for (size_t i = 0; i < 4 && j + i < n; i++) {
            float u = (float)(w[i] >> 8) * (1.0f / 16777216.0f);
            float v = lo + (hi - lo) * u;
            /* lo + (hi - lo) * (1 - 2^-24) can round up to hi; keep the result inside [lo, hi) */
            out[j + i] = v < hi ? v : nextafterf(hi, lo);
        }
    }
}

void elbo_rng_permutation(uint32_t *perm, size_t n, uint64_t seed, uint32_t epoch)
{
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) {
        uint32_t w[4];
        elbo_rng_block(seed, ELBO_STREAM_SHUFFLE, (uint32_t)(i - 1), epoch, 0, w);
        uint64_t r = ((uint64_t)w[0] << 32) | w[1];
        /* Multiply-shift maps 64 random bits onto 0..i-1; the bias is below 2^-32 for i < 2^32. */
        size_t j = (size_t)(((unsigned __int128)r * i) >> 64);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}
