/* The measured peak on several threads: each thread runs the single-core probe (fma_peak_*.c, bf16_peak_*.c) for
 * the round's seconds; the round's rate is the threads' flops over the slowest thread's time. */
#include "peak.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bf16_peak.h"
#include "cpu_features.h"
#include "fma_peak.h"

#define PROBE_ITERS ((size_t)1 << 16) /* ~0.1 ms per call on a 3 GHz core, as elbo_bench's */

/* Monotonic wall clock in seconds. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int elbo_peak_probe_for(const elbo_kernels *k, elbo_peak_kind kind, elbo_peak_probe *out)
{
    memset(out, 0, sizeof *out);
#if defined(__x86_64__)
    const elbo_cpu_features *f = elbo_cpu_features_get();
    out->kind = kind;
    if (kind == ELBO_PEAK_BF16) {
        const elbo_kernels *twin = elbo_kernels_with_precision(k, ELBO_PRECISION_BF16);
        if (!f->avx512bf16 || !twin || !twin->gemm_bf16_ukernel_name ||
            !strstr(twin->gemm_bf16_ukernel_name, "__avx512bf16"))
            return -1;
        out->vector_bits = 512;
        out->name = "bf16_peak_avx512_run";
        return 0;
    }
    if (!f->avx2 || !f->fma)
        return -1;
    if (strcmp(k->isa, "avx512") == 0 && f->avx512f) {
        out->vector_bits = 512;
        out->name = "fma_peak_avx512_run";
        return 0;
    }
    if (strcmp(k->isa, "avx2") == 0) {
        out->vector_bits = 256;
        out->name = "fma_peak_avx2_run";
        return 0;
    }
#else
    (void)k;
    (void)kind;
#endif
    return -1;
}

/* Flops of one call of probe p (PROBE_ITERS iterations). */
static double probe_once(const elbo_peak_probe *p)
{
#if defined(__x86_64__)
    if (p->kind == ELBO_PEAK_BF16)
        return bf16_peak_avx512_run(PROBE_ITERS);
    return p->vector_bits == 512 ? fma_peak_avx512_run(PROBE_ITERS) : fma_peak_avx2_run(PROBE_ITERS);
#else
    (void)p;
    return 0;
#endif
}

/* Ascending comparison of doubles for qsort. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* GFLOP/s of one round: `threads` threads each calling the probe for at least `seconds`. */
static double one_round(const elbo_peak_probe *p, size_t threads, double seconds)
{
    double flops = 0, slowest = 0;
#pragma omp parallel num_threads((int)threads) reduction(+ : flops) reduction(max : slowest)
    {
#pragma omp barrier
        double t0 = now(), t, mine = 0;
        do {
            mine += probe_once(p);
            t = now() - t0;
        } while (t < seconds);
        flops += mine;
        slowest = t;
    }
    return slowest > 0 ? flops / slowest / 1e9 : 0;
}

double elbo_peak_measure(const elbo_peak_probe *p, size_t threads, int rounds, double seconds)
{
    assert(p && threads >= 1 && rounds >= 1 && seconds > 0);
    if (!p->name)
        return 0;
    double *rate = malloc((size_t)rounds * sizeof *rate);
    if (!rate)
        return 0;
    one_round(p, threads, seconds); /* warms the cores up */
    for (int r = 0; r < rounds; r++)
        rate[r] = one_round(p, threads, seconds);
    qsort(rate, (size_t)rounds, sizeof *rate, cmp_double);
    double median = rounds % 2 ? rate[rounds / 2] : 0.5 * (rate[rounds / 2 - 1] + rate[rounds / 2]);
    free(rate);
    return median;
}
