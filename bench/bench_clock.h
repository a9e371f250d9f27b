/* The monotonic clock and the ascending order of doubles that the bench's timed loops share. */
#ifndef ELBO_BENCH_CLOCK_H
#define ELBO_BENCH_CLOCK_H

#include <time.h>

/* Seconds on the monotonic clock. */
static inline double bench_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Ascending comparison of doubles for qsort. */
static inline int bench_cmp_double(const void *x, const void *y)
{
    double u = *(const double *)x, v = *(const double *)y;
    return (u > v) - (u < v);
}

#endif
