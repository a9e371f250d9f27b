/* Philox4x32-10 streams: normals, uniforms and permutations. */
#include "rng.h"

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

/* Maps 32 random bits to a double in (0, 1] with 32 bits of resolution. */
static double open_unit(uint32_t bits)
{
    return ((double)bits + 1.0) * (1.0 / 4294967296.0);
}

void elbo_rng_normals(float *out, size_t n, uint64_t seed, elbo_rng_stream stream, uint32_t a, uint32_t b)
{
    const double two_pi = 6.283185307179586476925286766559;
    for (size_t j = 0; j < n; j += 4) {
        uint32_t w[4];
        double z[4];
        elbo_rng_block(seed, stream, (uint32_t)(j / 4), a, b, w);
        for (int p = 0; p < 2; p++) {
            double r = sqrt(-2.0 * log(open_unit(w[2 * p])));
            double theta = two_pi * open_unit(w[2 * p + 1]);
            z[2 * p] = r * cos(theta);
            z[2 * p + 1] = r * sin(theta);
        }
        for (size_t i = 0; i < 4 && j + i < n; i++)
            out[j + i] = (float)z[i];
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
