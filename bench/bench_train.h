/* End-to-end training steps on Fashion-MNIST per batch size and thread count: the default VAE (784-400-20, MSE,
 * Adam; train/...) and the default classifier (784-256-256-10, Adam; train_classifier/...). */
#ifndef ELBO_BENCH_TRAIN_H
#define ELBO_BENCH_TRAIN_H

#include "bench_common.h"
#include "dataset.h"

/* Registers train/b:B/t:T for B in 32, 128, 256, 1024 and train_classifier/b:B/t:T for B in 128, 1024, T = 1..cores:
 * one optimizer step per iteration,
 * counters samples_per_s, GFLOP/s and pct_peak (against T x the one-core peak). The dataset (spec as for
 * elbo_dataset_load; NULL for the default) is loaded on the first row that runs. */
void bench_train_register(const bench_env *env, const char *dataset);
/* The training rows' dataset, loaded on first use; NULL with the reason in *why when it cannot be loaded. */
const elbo_dataset *bench_train_data(const char **why);
/* What the rows train on: "fashion-mnist, 60000 train images of 28x28" once a row has loaded it,
 * "unavailable: <reason>" when that failed, else the dataset spec or directory. */
const char *bench_train_dataset(void);
/* Frees the dataset (after gbench_run). */
void bench_train_free(void);

#endif
