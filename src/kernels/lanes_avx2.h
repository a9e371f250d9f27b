/* The 8-lane float sum every ISA's per-row loss and KL reductions end with (for the AVX2 and AVX-512 files). */
#ifndef ELBO_LANES_AVX2_H
#define ELBO_LANES_AVX2_H

#include <immintrin.h>

/* Sum of the 8 lanes of v in the fixed tree order ((p0+p4) + (p2+p6)) + ((p1+p5) + (p3+p7)) shared by every ISA. */
static inline float sum_lanes(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#endif
