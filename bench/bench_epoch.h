/* End to end: one whole training epoch of the default VAE (784-400-20, MSE, Adam) on Fashion-MNIST. */
#ifndef ELBO_BENCH_EPOCH_H
#define ELBO_BENCH_EPOCH_H

#include "bench_common.h"

/* Registers epoch/b:128/t:T for T = 1..cores: one iteration is one epoch of the whole training set as
 * `elbo train` runs it (the epoch's shuffle, every batch, the last partial one included) on a trainer made
 * before the clock starts; an epoch takes seconds, so a repetition is one iteration at the usual min times.
 * repetitions: 0 for --benchmark_repetitions, else that many. Counters samples_per_s, GFLOP/s, pct_peak
 * (against T x the one-core peak) and train_loss (the epoch's mean: a check that it trained).
 * Uses the training rows' dataset (bench_train_data). */
void bench_epoch_register(const bench_env *env, int repetitions);

#endif
