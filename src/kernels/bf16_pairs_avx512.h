/* fp32 rows rounded into bf16 pair words in registers, shared by the AVX512_BF16 packing (gemm_bf16_avx512bf16.c)
 * and the tile that rounds A as it reads it (gemm_bf16_lanes_avx512bf16.c). Needs AVX512_BF16 and AVX-512BW. */
#ifndef ELBO_BF16_PAIRS_AVX512_H
#define ELBO_BF16_PAIRS_AVX512_H

#include <immintrin.h>

/* 16 pair words, word i = bf16(lo[i]) | bf16(hi[i]) << 16 (ukernel_bf16.h's layout): both rows rounded in one
 * VCVTNE2PS2BF16 (VCVTNEPS2BF16's rules, bf16.h's), which puts them side by side, then interleaved in one VPERMW. */
static inline __attribute__((always_inline)) __m512i elbo_bf16_pair_words(__m512 lo, __m512 hi)
{
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                                6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

#endif
