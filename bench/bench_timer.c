#include "bench_timer.h"

#include <stdlib.h>
#include <time.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Calls to make per batch so that one batch of fn lasts about target seconds (at least 1). */
static long calibrate(bench_fn fn, void *ctx, double target)
{
    long calls = 1;
    for (;;) {
        double t0 = bench_now();
        for (long i = 0; i < calls; i++)
            fn(ctx);
        double dt = bench_now() - t0;
        if (dt >= target / 4 || calls > (1L << 30))
            return dt > 0 ? (long)(calls * target / dt) + 1 : calls;
        calls *= 4;
    }
}

/* Ascending comparison of doubles for qsort. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_interleaved(bench_fn *fns, void **ctxs, size_t n, int rounds, double batch_seconds,
                       double *median_seconds)
{
    long *calls = malloc(n * sizeof *calls);
    double *samples = malloc(n * (size_t)rounds * sizeof *samples);
    for (size_t f = 0; f < n; f++)
        calls[f] = calibrate(fns[f], ctxs[f], batch_seconds);
    for (int r = 0; r < rounds; r++) {
        for (size_t f = 0; f < n; f++) {
            double t0 = bench_now();
            for (long i = 0; i < calls[f]; i++)
                fns[f](ctxs[f]);
            samples[f * (size_t)rounds + (size_t)r] = (bench_now() - t0) / (double)calls[f];
        }
    }
    for (size_t f = 0; f < n; f++) {
        double *s = samples + f * (size_t)rounds;
        qsort(s, (size_t)rounds, sizeof *s, cmp_double);
        median_seconds[f] = rounds % 2 ? s[rounds / 2] : 0.5 * (s[rounds / 2 - 1] + s[rounds / 2]);
    }
    free(calls);
    free(samples);
}
