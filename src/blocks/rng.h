/* Counter-based random numbers (Philox4x32-10 from Random123): every draw is a pure function of
 * (seed, stream, counter), so results never depend on how work is split across threads. */
#ifndef ELBO_RNG_H
#define ELBO_RNG_H

#include <stddef.h>
#include <stdint.h>

/* Independent streams: the fourth counter word, so that no two purposes ever share a block. */
typedef enum {
    ELBO_STREAM_INIT = 1,    /* parameter initialization: (tensor, element block) */
    ELBO_STREAM_EPS = 2,     /* training noise: (step, batch row, dim block) */
    ELBO_STREAM_SHUFFLE = 3, /* epoch order: (epoch, swap index) */
    ELBO_STREAM_EVAL = 4,    /* evaluation noise: (sample, dim block) */
    ELBO_STREAM_SAMPLE = 5,  /* generation from the prior */
    ELBO_STREAM_TIME = 6,    /* a diffusion model's time steps: (row or sample, step, purpose) */
} elbo_rng_stream;

/* One Philox4x32-10 block: out = philox(ctr = {c0, c1, c2, stream}, key = seed). */
void elbo_rng_block(uint64_t seed, elbo_rng_stream stream, uint32_t c0, uint32_t c1, uint32_t c2,
                    uint32_t out[4]);

/* n standard normals: out[j] comes from block {j / 4, a, b, stream}, words 0-1 giving out[4k], out[4k + 1] and
 * words 2-3 the next two (Box-Muller in double, elbo_box_muller). */
void elbo_rng_normals(float *out, size_t n, uint64_t seed, elbo_rng_stream stream, uint32_t a, uint32_t b);

/* n uniforms in [lo, hi): out[j] = lo + (hi - lo) * u, u from 24 bits of word j % 4 of block {j / 4, a, b}
 * (a result that rounds up to hi becomes the float just below it). */
void elbo_rng_uniforms(float *out, size_t n, float lo, float hi, uint64_t seed, elbo_rng_stream stream,
                       uint32_t a, uint32_t b);

/* perm (n) = a uniform random permutation of 0..n-1 for this (seed, epoch) (Fisher-Yates). */
void elbo_rng_permutation(uint32_t *perm, size_t n, uint64_t seed, uint32_t epoch);

#endif
