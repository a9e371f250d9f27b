/* `elbo eval --load FLOW`: the test set's bits per dimension of the discrete pixels. */
#ifndef ELBO_EVAL_FLOW_H
#define ELBO_EVAL_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "flow.h"
#include "topology.h"
#include "train.h"

/* Evaluates the flow checkpoint at load on data's test split with `samples` dequantization draws per image (noise of
 * seed; samples > 1: -log of the mean of p over the draws, a tighter bound); prints the result (JSON with json) or
 * the error; returns the exit status. */
int cli_eval_flow(const char *load, const char *data, size_t threads, int threads_seen, size_t samples, uint64_t seed,
                  int json, const char *precision);

/* nll (n) = each image of test's -log p of its discrete pixels in nats under the flow m, with `samples` dequantization
 * draws per image (noise of (seed, ELBO_STREAM_EVAL, image, draw); samples > 1: -log of the mean of p over the
 * draws), on `threads` threads (the same bits for any count). Returns 0, or 1 when out of memory (one "elbo COMMAND:"
 * line printed). */
int cli_flow_image_nll(const elbo_flow *m, const elbo_images_view *test, size_t threads, const elbo_topology *topo,
                       uint64_t seed, size_t samples, double *nll, const char *command);

#endif
