/* What every bench row shares: the kernels, the machine, the FMA peak measured at start, and helpers that
 * turn a row's work into the counters compare.py and the summary read (GFLOP/s, pct_peak, GB/s, pct_bw). */
#ifndef ELBO_BENCH_COMMON_H
#define ELBO_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "gbench.h"
#include "kernels.h"
#include "topology.h"

typedef struct {
    const elbo_kernels *kern;
    elbo_topology *topo; /* NULL when hwloc failed */
    size_t cores;        /* physical cores available: the largest thread count the rows use */
    double peak_gflops;  /* FP32 FMA peak of one core, measured at start; 0 when unknown */
    double path_peak_gflops; /* the same at the kernel path's narrower width (bench_fma_path_vector_bits); 0: none */
    double membw_gbs;    /* one-core triad bandwidth over the membw rows' arrays (DRAM), measured at start */
} bench_env;

/* Sets GFLOP/s and (with a known peak) pct_peak = GFLOP/s / (peak x threads), from the flops of one
 * iteration, as rate counters over the row's wall time; with a narrower kernel path's peak also
 * pct_path_peak = GFLOP/s / (path peak x threads). */
void bench_set_flops(gbench_state *st, const bench_env *env, double flops_per_iter, size_t threads);

/* As bench_set_flops, for work timed elsewhere (a peer's child process): GFLOP/s and pct_peak (pct_path_peak)
 * over `seconds`, that work's own time, rather than the row's wall time. */
void bench_set_flops_over(gbench_state *st, const bench_env *env, double flops, double seconds, size_t threads);

/* Sets bytes processed and GB/s from the bytes one iteration reads and writes, and with a reference bandwidth
 * (ref_gbs > 0) pct_bw = GB/s / ref_gbs, as rate counters over the row's wall time. */
void bench_set_bytes(gbench_state *st, double bytes_per_iter, double ref_gbs);

/* n floats in [-1, 1) from a fixed seed, 64-byte aligned (free with free()); NULL when out of memory. */
float *bench_random_floats(size_t n, uint32_t seed);

#endif
