/* The AVX-512 table's tile epilogue (gemm_avx512.c), for the other AVX-512 microkernels (the bf16 one). */
#ifndef ELBO_FINISH_AVX512_H
#define ELBO_FINISH_AVX512_H

#include <immintrin.h>
#include <stddef.h>

#include "ukernel.h"

/* alpha * v + beta * C for one row piece of a tile (C's valid lanes `m` at cr, read only when beta is not 0): the
 * first operations of every AVX-512 tile finish, fp32 and bf16 alike. */
static inline __attribute__((always_inline)) __m512 elbo_avx512_alpha_beta(__m512 v, const float *cr, __mmask16 m,
                                                                           float alpha, float beta)
{
    if (alpha != 1.0f)
        v = _mm512_mul_ps(v, _mm512_set1_ps(alpha));
    if (beta == 1.0f)
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, cr));
    else if (beta != 0.0f)
        v = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(m, cr), v);
    return v;
}

/* Finishes and stores a rows x nr tile (nr <= 16 * panels) whose row i is acc[2 i] (columns 0..15) and
 * acc[2 i + 1] (columns 16..31, when panels is 2) exactly as the fp32 AVX-512 tiles finish theirs: alpha, beta,
 * then epi (NULL: none). */
void elbo_avx512_finish_tile(float *c, size_t ldc, int rows, int panels, const __m512 *acc, size_t nr, float alpha,
                             float beta, const elbo_tile_epilogue *epi);

#endif
