/* FMA peak of one core: 12 independent FMA chains of the widest vectors the CPU runs (fma_peak_avx512.c,
 * fma_peak_avx2.c), whatever kernel path is chosen, so that efficiencies are against the machine's peak; and,
 * for a kernel path narrower than that, the peak at the path's width. */
#include "bench_fma.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "cpu_features.h"
#include "fma_peak.h"

#define PROBE_ITERS ((size_t)1 << 16) /* ~0.1 ms per call on a 3 GHz core */

/* 1 when the probe can run on this CPU. */
static int have_probe(void)
{
#if defined(__x86_64__)
    const elbo_cpu_features *f = elbo_cpu_features_get();
    return f->avx2 && f->fma;
#else
    return 0;
#endif
}

int bench_fma_peak_vector_bits(void)
{
    if (!have_probe())
        return 0;
#if defined(__x86_64__)
    return elbo_cpu_features_get()->avx512f ? 512 : 256;
#else
    return 0;
#endif
}

int bench_fma_path_vector_bits(const elbo_kernels *kern)
{
    if (!have_probe())
        return 0;
    int bits = strcmp(kern->isa, "avx512") == 0 ? 512 : strcmp(kern->isa, "avx2") == 0 ? 256 : 0;
    return bits && bits < bench_fma_peak_vector_bits() ? bits : 0;
}

/* Flops of one call of the probe (PROBE_ITERS iterations) with `bits`-wide vectors (512 or 256). */
static double probe_bits(int bits)
{
#if defined(__x86_64__)
    return bits == 512 ? fma_peak_avx512_run(PROBE_ITERS) : fma_peak_avx2_run(PROBE_ITERS);
#else
    (void)bits;
    return 0;
#endif
}

/* Flops of one call of the probe at the width bench_fma_peak_vector_bits names. */
static double probe(void)
{
    return probe_bits(bench_fma_peak_vector_bits());
}

double bench_fma_peak_measure(int rounds, double seconds)
{
    return bench_fma_peak_measure_bits(bench_fma_peak_vector_bits(), rounds, seconds);
}

double bench_fma_peak_measure_bits(int bits, int rounds, double seconds)
{
    if (!have_probe() || rounds < 1 || (bits != 256 && bits != 512) || bits > bench_fma_peak_vector_bits())
        return 0;
    double *rate = malloc((size_t)rounds * sizeof *rate);
    if (!rate)
        return 0;
    for (int r = -1; r < rounds; r++) { /* round -1 warms the core up */
        double flops = 0, t0 = bench_seconds(), t;
        do {
            flops += probe_bits(bits);
            t = bench_seconds() - t0;
        } while (t < seconds);
        if (r >= 0)
            rate[r] = flops / t / 1e9;
    }
    qsort(rate, (size_t)rounds, sizeof *rate, bench_cmp_double);
    double median = rounds % 2 ? rate[rounds / 2] : 0.5 * (rate[rounds / 2 - 1] + rate[rounds / 2]);
    free(rate);
    return median;
}

/* The row: probe calls as iterations (at the machine's width, so no pct_path_peak). */
static void run_fma_peak(gbench_state *st, void *user)
{
    bench_env env = *(const bench_env *)user;
    env.path_peak_gflops = 0;
    double flops = 0;
    while (gbench_keep_running(st))
        flops = probe();
    bench_set_flops(st, &env, flops, 1);
}

void bench_fma_register(const bench_env *env)
{
    if (!have_probe())
        return;
    gbench_def d = {.name = "fma_peak", .run = run_fma_peak, .user = (void *)env, .unit = GBENCH_US};
    gbench_register(&d);
}
