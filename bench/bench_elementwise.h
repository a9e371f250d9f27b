/* Rows of the fused elementwise kernels at batch 128 of the 784-400-20 model, in GB/s of the bytes each
 * kernel must read and write (Adam and SGD over the whole parameter arena). */
#ifndef ELBO_BENCH_ELEMENTWISE_H
#define ELBO_BENCH_ELEMENTWISE_H

#include "bench_common.h"

/* Registers elementwise/KERNEL/b:128 rows with bytes processed, GB/s and pct_bw: the % of the bandwidth a
 * one-core triad reaches over as much data as the kernel touches (so from the memory level that data lives
 * in: L2 for the small kernels, L3 or DRAM for Adam and SGD), measured just before each repetition (counter
 * triad_GB/s). The label is that data size. */
void bench_elementwise_register(const bench_env *env);
/* Frees the buffers (after gbench_run). */
void bench_elementwise_free(void);

#endif
