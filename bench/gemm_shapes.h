/* The VAE's GEMM shapes (and 2048^3) that the bench's GEMM rows and the A/B comparison (bench/ab/gemm_ab.c) run,
 * and the batches the batched ones run at. */
#ifndef ELBO_BENCH_GEMM_SHAPES_H
#define ELBO_BENCH_GEMM_SHAPES_H

#include <stddef.h>

#include "gemm.h"

typedef struct {
    const char *name;
    size_t m, n, k; /* 0 stands for the batch */
    elbo_trans ta, tb;
    int b_is_weight; /* the trainer packs B once per optimizer step */
} gemm_shape;

static const gemm_shape SHAPES[] = {
    {"enc1.fwd", 0, 400, 784, ELBO_NOTRANS, ELBO_TRANS, 1},
    {"dec2.fwd", 0, 784, 400, ELBO_NOTRANS, ELBO_TRANS, 1},
    {"enc_heads.fwd", 0, 40, 400, ELBO_NOTRANS, ELBO_TRANS, 1},
    {"dec2.dgrad", 0, 400, 784, ELBO_NOTRANS, ELBO_NOTRANS, 1},
    {"enc1.wgrad", 400, 784, 0, ELBO_TRANS, ELBO_NOTRANS, 0},
    {"dec2.wgrad", 784, 400, 0, ELBO_TRANS, ELBO_NOTRANS, 0},
    {"dec1.wgrad", 400, 20, 0, ELBO_TRANS, ELBO_NOTRANS, 0},
    {"square2048", 2048, 2048, 2048, ELBO_NOTRANS, ELBO_NOTRANS, 0},
};
#define N_SHAPES (sizeof SHAPES / sizeof SHAPES[0])
static const size_t BATCHES[] = {32, 128, 256, 1024};
#define N_BATCHES (sizeof BATCHES / sizeof BATCHES[0])

#endif
