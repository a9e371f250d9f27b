/* The finish of the AVX-512 tiles with C's rows on the vector lanes (gemm_lanes_avx512.c, fp32; gemm_bf16_lanes_
 * avx512bf16.c, bf16): their accumulators, one column of the tile each, transposed in registers into C's rows, with
 * the fp32 tiles' alpha and beta (finish_avx512.h). */
#ifndef ELBO_LANES_FINISH_AVX512_H
#define ELBO_LANES_FINISH_AVX512_H

#include <immintrin.h>
#include <stddef.h>

#include "finish_avx512.h"
#include "transpose_avx512.h"

#define ELBO_LANES 16 /* rows of C per tile: one per lane */

/* Interleaves four columns r[0..3] of the tile (lanes = rows) so that 128-bit lane l of u[q] holds row 4 l + q of
 * them: the first two steps of transpose_16x16. */
static inline __attribute__((always_inline)) void elbo_lanes_interleave_4(const __m512 r[4], __m512 u[4])
{
    const __m512d t0 = _mm512_castps_pd(_mm512_unpacklo_ps(r[0], r[1]));
    const __m512d t1 = _mm512_castps_pd(_mm512_unpackhi_ps(r[0], r[1]));
    const __m512d t2 = _mm512_castps_pd(_mm512_unpacklo_ps(r[2], r[3]));
    const __m512d t3 = _mm512_castps_pd(_mm512_unpackhi_ps(r[2], r[3]));
    u[0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
}

/* Finishes and stores columns [j0, j0 + w) (w <= 4) of the tile's `rows` rows from the four columns acc[0..3]
 * (zero past w): each row's w elements sit in one 128-bit lane, stored with a mask at an address shifted back
 * by the lane's offset. */
static inline __attribute__((always_inline)) void elbo_lanes_store_group(float *c, size_t ldc, size_t rows, size_t j0,
                                                                         int w, const __m512 acc[4], float alpha,
                                                                         float beta)
{
    __m512 u[4];
    elbo_lanes_interleave_4(acc, u);
    const unsigned cols = (1u << w) - 1;
#pragma GCC unroll 16
    for (size_t i = 0; i < rows; i++) {
        const size_t l = i / 4, q = i % 4;
        const __mmask16 m = (__mmask16)(cols << (4 * l));
        float *cr = c + i * ldc + j0 - 4 * l;
        _mm512_mask_storeu_ps(cr, m, elbo_avx512_alpha_beta(u[q], cr, m, alpha, beta));
    }
}

/* C (rows x n, rows <= 16, 16 < n <= acc's count - 3, row stride ldc) = alpha * the tile + beta * C, the tile's column
 * j in acc[j] (lane i = row i; acc[n .. n + 2] zero): columns past the first 16 first (in groups of 4), so that their
 * accumulators are free before the 16 x 16 transpose needs registers, then the first 16, row i of C in r[i]. */
static inline __attribute__((always_inline)) void elbo_lanes_store(const int n, const __m512 *acc, float *c, size_t ldc,
                                                                   size_t rows, float alpha, float beta)
{
#pragma GCC unroll 8
    for (int j0 = ELBO_LANES; j0 < n; j0 += 4)
        elbo_lanes_store_group(c, ldc, rows, (size_t)j0, n - j0 < 4 ? n - j0 : 4, acc + j0, alpha, beta);
    __m512 r[ELBO_LANES];
#pragma GCC unroll 16
    for (int j = 0; j < ELBO_LANES; j++)
        r[j] = acc[j];
    transpose_16x16(r);
    for (size_t i = 0; i < rows; i++) {
        float *cr = c + i * ldc;
        _mm512_storeu_ps(cr, elbo_avx512_alpha_beta(r[i], cr, 0xffff, alpha, beta));
    }
}

#endif
