/* The human summary printed after the Google Benchmark output: one line per row with its median. */
#ifndef ELBO_BENCH_SUMMARY_H
#define ELBO_BENCH_SUMMARY_H

#include <stdio.h>

/* Prints the rows of the last gbench_run (medians when repetitions were aggregated): time per iteration,
 * GFLOP/s, samples/s or GB/s, % of the FMA peak, % of the reference bandwidth, and a ratio (elbo vs OpenBLAS,
 * N threads vs 1). peak_gflops and membw_gbs are the start-of-run references shown in the header. */
void bench_summary_print(FILE *f, double peak_gflops, double membw_gbs);

#endif
