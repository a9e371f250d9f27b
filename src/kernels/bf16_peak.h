/* Measured bf16 dot-product peak of one core: the reference of the bf16 GEMM rows' pct_peak. */
#ifndef ELBO_BF16_PEAK_H
#define ELBO_BF16_PEAK_H

#include <stddef.h>

/* Runs `iters` iterations of 24 independent zmm VDPBF16PS chains (AVX512_BF16 CPUs); returns the flops executed,
 * 2 per bf16 product: 16 lanes x 2 products x 2 = 64 per instruction, so that a GEMM's 2 M N K compares with it. */
double bf16_peak_avx512_run(size_t iters);

#endif
