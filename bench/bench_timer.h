/* Timing helpers for the bench: calibrated batches, repetitions, medians, interleaving. */
#ifndef ELBO_BENCH_TIMER_H
#define ELBO_BENCH_TIMER_H

#include <stddef.h>

typedef void (*bench_fn)(void *ctx);

/* Monotonic wall clock in seconds. */
double bench_now(void);

/* Median seconds per call for each of n functions, measured in interleaved rounds (so drift on a
 * shared machine hits all of them alike): each round runs every function for a batch of calls
 * calibrated to take about batch_seconds. */
void bench_interleaved(bench_fn *fns, void **ctxs, size_t n, int rounds, double batch_seconds,
                       double *median_seconds);

#endif
