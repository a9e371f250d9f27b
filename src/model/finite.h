/* Divergence checks: whether gradients and parameters are still finite numbers (no NaN, no infinity). */
#ifndef ELBO_FINITE_H
#define ELBO_FINITE_H

#include <stddef.h>

#include "vae.h"

/* 1 when x[0..n) holds no NaN or infinity, else 0. */
int elbo_floats_finite(const float *x, size_t n);

/* 1 when every bias gradient of m (one per output feature of each layer: 1624 floats for 784-400-20) is
 * finite. Each is the batch sum of a layer's output gradient dY (B, out), so a NaN or infinity anywhere in
 * the backward pass shows here: a cheap test of the whole gradient, run at every step. */
int elbo_bias_grads_finite(const elbo_vae *m);

/* 1 when every parameter of m is finite (checked before a checkpoint is written). */
int elbo_params_finite(const elbo_vae *m);

#endif
