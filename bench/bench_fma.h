/* The FMA peak: measured once before any row (the reference for every pct_peak of the run) and as a row. */
#ifndef ELBO_BENCH_FMA_H
#define ELBO_BENCH_FMA_H

#include "bench_common.h"

/* Median GFLOP/s of one core running the FMA probe over `rounds` rounds of about `seconds` each; 0 when this
 * CPU has no probe (no AVX2+FMA). */
double bench_fma_peak_measure(int rounds, double seconds);

/* As bench_fma_peak_measure with `bits`-wide vectors (256, or 512 where the CPU runs them); 0 otherwise. */
double bench_fma_peak_measure_bits(int bits, int rounds, double seconds);

/* Width in bits of the FMA vectors the peak is measured with (512 on AVX-512F CPUs, else 256; 0: no probe). */
int bench_fma_peak_vector_bits(void);

/* Width of the FMA vectors kern's GEMM runs when it is narrower than bench_fma_peak_vector_bits (the AVX2
 * path on an AVX-512 CPU: 256), else 0. */
int bench_fma_path_vector_bits(const elbo_kernels *kern);

/* Registers the row "fma_peak" (GFLOP/s of one core; pct_peak against the start-of-run figure). */
void bench_fma_register(const bench_env *env);

#endif
