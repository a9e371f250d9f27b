/* Box-Muller normals on AVX2 + FMA (normals.h): 4 pairs per step through SLEEF's deterministic double log
 * and sincos. */
#include "normals.h"

#include <assert.h>
#include <immintrin.h>
#include <sleef.h>

/* (w + 1) / 2^32 for 4 uint32 words, exact: w - 2^31 as a signed int converts exactly, then + 2^31 + 1. */
static inline __m256d open_unit4(__m128i w)
{
    const __m256d v = _mm256_cvtepi32_pd(_mm_xor_si128(w, _mm_set1_epi32((int)0x80000000u)));
    return _mm256_mul_pd(_mm256_add_pd(v, _mm256_set1_pd(2147483649.0)), _mm256_set1_pd(1.0 / 4294967296.0));
}

/* 8 normals (4 pairs, cos and sin halves interleaved) from 8 words. */
static inline void four_pairs(float *out, const uint32_t *words)
{
    /* words u0 v0 u1 v1 ... -> u0 u1 u2 u3 | v0 v1 v2 v3 */
    const __m256i w = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)words),
                                                  _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    const __m256d u = open_unit4(_mm256_castsi256_si128(w)), v = open_unit4(_mm256_extracti128_si256(w, 1));
    const __m256d r = _mm256_sqrt_pd(_mm256_mul_pd(_mm256_set1_pd(-2.0), Sleef_finz_logd4_u10avx2(u)));
    const Sleef___m256d_2 sc = Sleef_finz_sincosd4_u10avx2(_mm256_mul_pd(_mm256_set1_pd(6.283185307179586476925286766559), v));
    const __m128 c = _mm256_cvtpd_ps(_mm256_mul_pd(r, sc.y)), s = _mm256_cvtpd_ps(_mm256_mul_pd(r, sc.x));
    _mm_storeu_ps(out, _mm_unpacklo_ps(c, s));
    _mm_storeu_ps(out + 4, _mm_unpackhi_ps(c, s));
}

void elbo_box_muller_avx2(float *out, const uint32_t *words, size_t n)
{
    assert(n % 8 == 0);
    for (size_t j = 0; j < n; j += 8)
        four_pairs(out + j, words + j);
}
