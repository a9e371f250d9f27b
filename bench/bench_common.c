/* Counters and test data shared by the bench rows. */
#include "bench_common.h"

#include <stdlib.h>

void bench_set_flops(gbench_state *st, const bench_env *env, double flops_per_iter, size_t threads)
{
    double flops = flops_per_iter * (double)gbench_iterations(st);
    gbench_set_counter(st, "GFLOP/s", flops / 1e9, GBENCH_COUNTER_RATE);
    if (env->peak_gflops > 0)
        gbench_set_counter(st, "pct_peak", 100.0 * flops / (env->peak_gflops * 1e9 * (double)threads),
                           GBENCH_COUNTER_RATE);
    if (env->path_peak_gflops > 0)
        gbench_set_counter(st, "pct_path_peak", 100.0 * flops / (env->path_peak_gflops * 1e9 * (double)threads),
                           GBENCH_COUNTER_RATE);
}

void bench_set_flops_over(gbench_state *st, const bench_env *env, double flops, double seconds, size_t threads)
{
    double gflops = seconds > 0 ? flops / seconds / 1e9 : 0;
    gbench_set_counter(st, "GFLOP/s", gflops, GBENCH_COUNTER_DEFAULT);
    if (env->peak_gflops > 0)
        gbench_set_counter(st, "pct_peak", 100.0 * gflops / (env->peak_gflops * (double)threads),
                           GBENCH_COUNTER_DEFAULT);
    if (env->path_peak_gflops > 0)
        gbench_set_counter(st, "pct_path_peak", 100.0 * gflops / (env->path_peak_gflops * (double)threads),
                           GBENCH_COUNTER_DEFAULT);
}

void bench_set_bytes(gbench_state *st, double bytes_per_iter, double ref_gbs)
{
    double bytes = bytes_per_iter * (double)gbench_iterations(st);
    gbench_set_bytes_processed(st, (int64_t)bytes);
    gbench_set_counter(st, "GB/s", bytes / 1e9, GBENCH_COUNTER_RATE);
    if (ref_gbs > 0)
        gbench_set_counter(st, "pct_bw", 100.0 * bytes / (ref_gbs * 1e9), GBENCH_COUNTER_RATE);
}

float *bench_random_floats(size_t n, uint32_t seed)
{
    float *x = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64 + 64);
    if (!x)
        return NULL;
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 17, s ^= s << 5; /* xorshift32 */
        x[i] = (float)(s >> 8) * (2.0f / 16777216.0f) - 1.0f;
    }
    return x;
}
