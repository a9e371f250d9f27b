/* Rows of the fused elementwise kernels at batch 128 of the 784-400-20 model, in GB/s of the bytes each
 * kernel must read and write (Adam and SGD over the whole parameter arena). */
#ifndef ELBO_BENCH_ELEMENTWISE_H
#define ELBO_BENCH_ELEMENTWISE_H

#include "bench_common.h"

/* Registers elementwise/KERNEL/b:128 rows with bytes processed and GB/s. */
void bench_elementwise_register(const bench_env *env);
/* Frees the buffers (after gbench_run). */
void bench_elementwise_free(void);

#endif
