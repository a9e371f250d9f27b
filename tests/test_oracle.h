/* Reading the PyTorch oracles' files in the parity tests: tensors looked up by name, elements read where they lie
 * (safetensors data may be unaligned), and the error measure every gradient bound uses. */
#ifndef ELBO_TEST_ORACLE_H
#define ELBO_TEST_ORACLE_H

#include "test_util.h"

#include <math.h>
#include <string.h>

#include "safetensors.h"

/* The oracle tensor called name (fails the test if absent). */
static inline const elbo_st_tensor *oracle_need(const elbo_st_file *f, const char *name)
{
    const elbo_st_tensor *t = elbo_st_find(f, name);
    if (!t)
        test_failf("oracle file lacks tensor %s\n", name);
    return t;
}

/* Element i of an oracle tensor. */
static inline float oracle_at(const elbo_st_tensor *t, size_t i)
{
    float v;
    memcpy(&v, t->data + i, sizeof v);
    return v;
}

/* Largest |a - b| over n floats, relative to the largest |b| (a NaN counts as infinitely far): the gradients of
 * one tensor share a scale, and elementwise relative error is meaningless for entries that cancel to ~0. */
static inline double oracle_scaled_max_error(const float *a, const float *b, size_t n)
{
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= diff))
            diff = isnan(d) ? INFINITY : d;
        scale = fabs((double)b[i]) > scale ? fabs((double)b[i]) : scale;
    }
    return scale > 0 ? diff / scale : diff;
}

#endif
