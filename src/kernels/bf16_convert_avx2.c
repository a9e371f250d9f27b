/* AVX2 fp32 -> bf16 conversion by integer rounding (bf16.h's rules; AVX2 has no conversion instruction), 16
 * floats per step, the tail by the scalar reference. */
#include "bf16.h"
#include "kernels.h"

#include <immintrin.h>

/* 8 floats' bf16 bits (bf16.h), one per 32-bit lane. */
static inline __m256i bf16_bits8(__m256i u)
{
    const __m256i abs = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    const __m256i hi = _mm256_srli_epi32(u, 16);
    const __m256i lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
    const __m256i nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f800000));
    const __m256i tiny = _mm256_cmpeq_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7f800000)), _mm256_setzero_si256());
    r = _mm256_blendv_epi8(r, _mm256_or_si256(hi, _mm256_set1_epi32(0x40)), nan);
    return _mm256_blendv_epi8(r, _mm256_and_si256(hi, _mm256_set1_epi32(0x8000)), tiny);
}

/* elbo_f32_to_bf16_fn for AVX2. */
static void f32_to_bf16_avx2(elbo_bf16 *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i lo = bf16_bits8(_mm256_loadu_si256((const __m256i *)(x + i)));
        __m256i hi = bf16_bits8(_mm256_loadu_si256((const __m256i *)(x + i + 8)));
        /* packus interleaves the 128-bit halves: lo0 hi0 lo1 hi1; the permute puts them in order */
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xd8);
        _mm256_storeu_si256((__m256i *)(y + i), packed);
    }
    elbo_f32_to_bf16_scalar(y + i, x + i, n - i);
}

void elbo_bf16_register_avx2(elbo_kernels *k)
{
    k->f32_to_bf16 = f32_to_bf16_avx2;
    k->gemm_bf16_ukernel = NULL; /* the scalar emulation registered first is not this table's */
    k->gemm_bf16_ukernel_strided_a = NULL;
    k->gemm_bf16_ukernel_name = NULL;
    k->bf16_missing = "avx512_bf16"; /* AVX2 has no bf16 dot product */
}
