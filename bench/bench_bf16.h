/* bf16 rows: the bf16 dot-product peak (bf16_peak; not fma_peak_bf16, which scripts/bench_check.py's fma_peak prefix
 * would take for the FMA peak) and the bf16 GEMM on the VAE's shapes at batch 128 and 1024
 * and 2048^3 (gemm_bf16/elbo/SHAPE/b:B), one thread, where the chosen kernel table runs a bf16 GEMM. */
#ifndef ELBO_BENCH_BF16_H
#define ELBO_BENCH_BF16_H

#include "bench_common.h"

/* Measures the bf16 peak (AVX512_BF16 CPUs) and registers the rows. A GEMM row times, per iteration, the bf16
 * GEMM (the row's time) and then the fp32 GEMM of the same shape as the gemm/elbo row runs it, interleaved in
 * the same process; counters: GFLOP/s and pct_peak of the bf16 GEMM (pct_peak against the bf16 peak measured at
 * start; 0 where there is no probe), fp32_GFLOP/s, and speedup_vs_fp32 = fp32 time / bf16 time. Operands as
 * bf16 training will hold them: a weight B packed once into bf16 panels; activations (forward A, weight-gradient
 * B) stored in bf16; gradients (data-gradient and weight-gradient A) fp32, rounded while packed. 2048^3: A and B
 * bf16, B packed per call. */
void bench_bf16_register(const bench_env *env);
/* The bf16 peak measured by bench_bf16_register (GFLOP/s of one core), or 0 where there is none. */
double bench_bf16_peak_gflops(void);
/* Frees the rows' operands. */
void bench_bf16_free(void);

#endif
