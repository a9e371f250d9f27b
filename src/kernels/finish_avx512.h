/* The AVX-512 table's tile epilogue (gemm_avx512.c), for the other AVX-512 microkernels (the bf16 one). */
#ifndef ELBO_FINISH_AVX512_H
#define ELBO_FINISH_AVX512_H

#include <immintrin.h>
#include <stddef.h>

#include "ukernel.h"

/* Finishes and stores a rows x nr tile (nr <= 16 * panels) whose row i is acc[2 i] (columns 0..15) and
 * acc[2 i + 1] (columns 16..31, when panels is 2) exactly as the fp32 AVX-512 tiles finish theirs: alpha, beta,
 * then epi (NULL: none). */
void elbo_avx512_finish_tile(float *c, size_t ldc, int rows, int panels, const __m512 *acc, size_t nr, float alpha,
                             float beta, const elbo_tile_epilogue *epi);

#endif
