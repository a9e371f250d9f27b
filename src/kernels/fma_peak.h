/* Measured FMA peak of one core: the reference every efficiency figure is taken against (elbo_bench, and elbo zoo
 * through peak.h). */
#ifndef ELBO_FMA_PEAK_H
#define ELBO_FMA_PEAK_H

#include <stddef.h>

/* Runs `iters` iterations of independent 256-bit FMA chains; returns the flops executed (2 per lane-FMA). */
double fma_peak_avx2_run(size_t iters);

/* As fma_peak_avx2_run with 512-bit chains (AVX-512F CPUs). */
double fma_peak_avx512_run(size_t iters);

#endif
