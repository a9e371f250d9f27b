/* GEMM rows: every GEMM shape one training step of the 784-400-20 VAE runs, at batch 32/128/256/1024, and
 * 2048^3, each as elbo and as OpenBLAS (cblas_sgemm, one thread) so compare.py can pair them. */
#ifndef ELBO_BENCH_GEMM_H
#define ELBO_BENCH_GEMM_H

#include "bench_common.h"

/* Registers gemm/elbo/SHAPE/b:B (as the trainer calls it: a weight B packed once beforehand),
 * gemm/elbo_packB/SHAPE/b:B (packing B inside every call; weight operands only) and gemm/openblas/SHAPE/b:B;
 * 2048^3 is gemm/VARIANT/square2048. Counters GFLOP/s and pct_peak (one core); the label is "MxNxK op". */
void bench_gemm_register(const bench_env *env);
/* Frees the operands kept between calls (after gbench_run). */
void bench_gemm_free(void);

#endif
