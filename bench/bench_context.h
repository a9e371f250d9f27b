/* Where a run happened, for the JSON context, and the per-CPU, per-day name of its results file. */
#ifndef ELBO_BENCH_CONTEXT_H
#define ELBO_BENCH_CONTEXT_H

#include <stddef.h>

#include "bench_common.h"

/* Adds cpu_model, cores, threads_used, isa, gemm_microkernel, cache_sizes, numa_nodes, compiler, build_flags,
 * git_commit, openblas, dataset and fma_peak_gflops to the run's context. */
void bench_context_add(const bench_env *env, const char *dataset);

/* DIR/<cpu-slug>-<yyyymmdd>.json into out (e.g. "results/amd-epyc-20261123.json"), with -2, -3, ... before
 * .json when that file exists already. Creates DIR (one level). Returns 0, or -1 when DIR cannot be made. */
int bench_results_path(const char *dir, char *out, size_t outlen);

#endif
