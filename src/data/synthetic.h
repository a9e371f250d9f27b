/* The synthetic dataset: 28x28 images of 10 shape classes, generated with integer arithmetic only, so
 * the bytes are the same on every platform and compiler.
 *
 * Classes (u, v = offsets from a jittered centre): 0 horizontal bar above, 1 horizontal bar below,
 * 2 vertical bar left, 3 vertical bar right, 4 diagonal "\", 5 diagonal "/", 6 ring, 7 filled disc,
 * 8 cross "+", 9 checkerboard of 2-pixel cells. Each sample jitters the centre (+-2 px), stroke width, size and ink,
 * and adds pixel noise. Labels are balanced (i mod 10, then shuffled). Each sample is drawn from its
 * own splitmix64 stream derived from the split's seed and its index. */
#ifndef ELBO_SYNTHETIC_H
#define ELBO_SYNTHETIC_H

#include "dataset.h"

#include <stdint.h>

#define ELBO_SYNTHETIC_SIDE 28
#define ELBO_SYNTHETIC_CLASSES 10
#define ELBO_SYNTHETIC_TRAIN_SEED 0x243f6a8885a308d3ull
#define ELBO_SYNTHETIC_TEST_SEED 0x13198a2e03707344ull

/* "class 0".."class 9", NULL-terminated. */
extern const char *const elbo_synthetic_class_names[ELBO_SYNTHETIC_CLASSES + 1];

/* Fills *s with n synthetic samples drawn from the stream `seed`. Returns 0, or -1 (out of memory). */
int elbo_synthetic_split(elbo_split *s, size_t n, uint64_t seed);

#endif
