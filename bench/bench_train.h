/* End-to-end training-step benchmark: samples/s of the default VAE on Fashion-MNIST per batch size and
 * thread count. */
#ifndef ELBO_BENCH_TRAIN_H
#define ELBO_BENCH_TRAIN_H

#include "kernels.h"

/* Prints one row per (batch, threads): samples/s, GFLOP/s, % of threads x peak_per_core, speedup over 1 thread.
 * Rows whose name ("train.b128.t2") lacks filter are skipped; rounds is the number of timed rounds. */
void bench_training(const elbo_kernels *kern, double peak_per_core, int rounds, int quick, const char *filter);

#endif
