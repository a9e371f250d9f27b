/* One-core triad bandwidth over a chosen footprint (the reference of the pct_bw counters). */
#include "bench_triad.h"

#include <stdlib.h>
#include <time.h>

#include "bench_clock.h"
#include "cpu_features.h"

/* a[i] = b[i] + s*c[i] for i < n, in the baseline ISA. */
static void triad_generic(float *restrict a, const float *restrict b, const float *restrict c, size_t n, float s)
{
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] + s * c[i];
}

#if defined(__x86_64__)
/* a[i] = b[i] + s*c[i] for i < n, compiled for AVX2 + FMA (as the elementwise kernels are). */
__attribute__((target("avx2,fma"))) static void triad_avx2(float *restrict a, const float *restrict b,
                                                          const float *restrict c, size_t n, float s)
{
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] + s * c[i];
}
#endif

double bench_triad_gbs(size_t footprint_bytes, int rounds, double seconds)
{
    void (*triad)(float *restrict, const float *restrict, const float *restrict, size_t, float) = triad_generic;
#if defined(__x86_64__)
    const elbo_cpu_features *f = elbo_cpu_features_get();
    if (f->avx2 && f->fma)
        triad = triad_avx2;
#endif
    size_t n = footprint_bytes / (3 * sizeof(float));
    n = n < 64 ? 64 : (n + 15) / 16 * 16;
    size_t bytes = n * sizeof(float);
    float *a = aligned_alloc(64, bytes), *b = aligned_alloc(64, bytes), *c = aligned_alloc(64, bytes);
    double *rate = malloc((size_t)(rounds > 0 ? rounds : 1) * sizeof *rate);
    double gbs = 0;
    if (a && b && c && rate && rounds > 0) {
        for (size_t i = 0; i < n; i++)
            a[i] = 0.0f, b[i] = 1.0f, c[i] = 2.0f;
        for (int r = -1; r < rounds; r++) { /* round -1 warms the caches and the core up */
            double moved = 0, t0 = bench_seconds(), t;
            do {
                triad(a, b, c, n, 3.0f);
                moved += 3.0 * (double)bytes;
                t = bench_seconds() - t0;
            } while (t < seconds);
            if (r >= 0)
                rate[r] = moved / t / 1e9;
        }
        qsort(rate, (size_t)rounds, sizeof *rate, bench_cmp_double);
        gbs = rounds % 2 ? rate[rounds / 2] : 0.5 * (rate[rounds / 2 - 1] + rate[rounds / 2]);
    }
    free(a), free(b), free(c), free(rate);
    return gbs;
}
