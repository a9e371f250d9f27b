/* The VAE's GEMM shapes (and 2048^3) that the bench's GEMM rows (fp32: bench_gemm.c; bf16: bench_bf16.c) and the A/B
 * comparison (bench/ab/gemm_ab.c) run, and the batches the batched ones run at. */
#ifndef ELBO_BENCH_GEMM_SHAPES_H
#define ELBO_BENCH_GEMM_SHAPES_H

#include <stddef.h>

#include "gemm.h"

typedef struct {
    const char *name;
    size_t m, n, k; /* 0 stands for the batch */
    elbo_trans ta, tb;
    int b_is_weight; /* the trainer packs B once per optimizer step */
    int forward;     /* a layer's forward (C = X W^T over the batch): the trainer may split it by output features */
} gemm_shape;

static const gemm_shape SHAPES[] = {
    {"enc1.fwd", 0, 400, 784, ELBO_NOTRANS, ELBO_TRANS, 1, 1},
    {"dec2.fwd", 0, 784, 400, ELBO_NOTRANS, ELBO_TRANS, 1, 1},
    {"enc_heads.fwd", 0, 40, 400, ELBO_NOTRANS, ELBO_TRANS, 1, 1},
    {"dec2.dgrad", 0, 400, 784, ELBO_NOTRANS, ELBO_NOTRANS, 1, 0},
    {"enc1.wgrad", 400, 784, 0, ELBO_TRANS, ELBO_NOTRANS, 0, 0},
    {"dec2.wgrad", 784, 400, 0, ELBO_TRANS, ELBO_NOTRANS, 0, 0},
    {"dec1.wgrad", 400, 20, 0, ELBO_TRANS, ELBO_NOTRANS, 0, 0},
    {"square2048", 2048, 2048, 2048, ELBO_NOTRANS, ELBO_NOTRANS, 0, 0},
};
#define N_SHAPES (sizeof SHAPES / sizeof SHAPES[0])
static const size_t BATCHES[] = {32, 128, 256, 1024};
#define N_BATCHES (sizeof BATCHES / sizeof BATCHES[0])

typedef struct {
    const char *name;
    size_t m, n, k; /* 0 stands for the batch */
    elbo_trans ta, tb;
    int b_is_weight; /* packed once (bf16 panels; fp32 as the gemm/elbo row) */
    int a_bf16;      /* A stored in bf16 (activations); else fp32 (gradients), rounded while packed */
    int b_bf16;      /* B (not a weight) stored in bf16 */
} bf16_shape;

/* The gemm rows' shapes (bench_gemm.c) with what bf16 training stores in bf16. */
static const bf16_shape BF16_SHAPES[] = {
    {"enc1.fwd", 0, 400, 784, ELBO_NOTRANS, ELBO_TRANS, 1, 1, 0},
    {"dec2.fwd", 0, 784, 400, ELBO_NOTRANS, ELBO_TRANS, 1, 1, 0},
    {"enc_heads.fwd", 0, 40, 400, ELBO_NOTRANS, ELBO_TRANS, 1, 1, 0},
    {"dec2.dgrad", 0, 400, 784, ELBO_NOTRANS, ELBO_NOTRANS, 1, 0, 0},
    {"enc1.wgrad", 400, 784, 0, ELBO_TRANS, ELBO_NOTRANS, 0, 0, 1},
    {"dec2.wgrad", 784, 400, 0, ELBO_TRANS, ELBO_NOTRANS, 0, 0, 1},
    {"dec1.wgrad", 400, 20, 0, ELBO_TRANS, ELBO_NOTRANS, 0, 0, 1},
    {"square2048", 2048, 2048, 2048, ELBO_NOTRANS, ELBO_NOTRANS, 0, 1, 1},
};
#define N_BF16_SHAPES (sizeof BF16_SHAPES / sizeof BF16_SHAPES[0])
static const size_t BF16_BATCHES[] = {128, 1024};
#define N_BF16_BATCHES (sizeof BF16_BATCHES / sizeof BF16_BATCHES[0])

#endif
