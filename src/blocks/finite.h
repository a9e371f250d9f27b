/* Divergence checks: whether gradients and parameters are still finite numbers (no NaN, no infinity). */
#ifndef ELBO_FINITE_H
#define ELBO_FINITE_H

#include <stddef.h>

/* 1 when x[0..n) holds no NaN or infinity, else 0. */
int elbo_floats_finite(const float *x, size_t n);

#endif
