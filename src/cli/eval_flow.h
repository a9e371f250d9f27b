/* `elbo eval --load FLOW`: the test set's bits per dimension of the discrete pixels. */
#ifndef ELBO_EVAL_FLOW_H
#define ELBO_EVAL_FLOW_H

#include <stddef.h>
#include <stdint.h>

/* Evaluates the flow checkpoint at load on data's test split with `samples` dequantization draws per image (noise of
 * seed; samples > 1: -log of the mean of p over the draws, a tighter bound); prints the result (JSON with json) or
 * the error; returns the exit status. */
int cli_eval_flow(const char *load, const char *data, size_t threads, int threads_seen, size_t samples, uint64_t seed,
                  int json, const char *precision);

#endif
