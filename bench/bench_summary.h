/* The human summary printed after the Google Benchmark output: one line per row with its median. */
#ifndef ELBO_BENCH_SUMMARY_H
#define ELBO_BENCH_SUMMARY_H

#include <stdio.h>

#include "bench_common.h"

/* Prints the rows of the last gbench_run (medians when repetitions were aggregated): time per iteration,
 * GFLOP/s, samples/s or GB/s, % of the FMA peak (and of a narrower kernel path's peak when env has one), % of
 * the reference bandwidth, and a ratio (elbo's GEMM vs the best peer of the same run, named: "0.97x onednn";
 * N threads vs 1). The header shows env's start-of-run references. */
void bench_summary_print(FILE *f, const bench_env *env);

#endif
