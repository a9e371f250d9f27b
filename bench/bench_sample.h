/* Sampling rows of the diffusion model: images/s of DDPM (1000 steps) and DDIM-50 at batch 128. */
#ifndef ELBO_BENCH_SAMPLE_H
#define ELBO_BENCH_SAMPLE_H

#include "bench_common.h"

/* Registers sample/diffusion/ddpm/b:128/t:T and sample/diffusion/ddim50/b:128/t:T for T = 1 and the cores: counters
 * images_per_s, GFLOP/s and pct_peak. */
void bench_sample_register(const bench_env *env);

#endif
