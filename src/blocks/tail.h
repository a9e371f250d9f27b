/* A training step's tail over any list of linear layers: each layer's weight and bias gradients, the optimizer's
 * update of those parameters and their repacking, cut into blocks of output features that any thread may run, in
 * any order, with the same bits (every element is computed whole, in a fixed order). */
#ifndef ELBO_TAIL_H
#define ELBO_TAIL_H

#include <stddef.h>
#include <stdint.h>

#include "linear.h"

/* A layer as the tail sees it: where its output gradient dy (B, out) and its input x (B, in, at row 0) are, and
 * which part gets a larger block when its panels do not divide evenly (rotate); rows, when not 0, is the number of
 * rows its gradients sum over instead of the step's b (a GAN's discriminator sees b fake and b real rows). */
typedef struct {
    elbo_linear *layer;
    const float *dy;
    elbo_operand x;
    size_t rotate;
    size_t rows;
    /* NULL, or what turns the weight gradient rows [lo, hi) just summed into grads into the gradient the optimizer
     * applies (a spectral-normalized layer's path through sigma), before the update; called with fix_ctx and
     * row_sum, the sum over the layer's rows of fix_rows (in row order here; in the chunked step, per chunk and
     * over the chunk tree) */
    void (*fix_weight_grads)(const void *ctx, float *grads, size_t lo, size_t hi, double row_sum);
    const void *fix_ctx;
    const double *fix_rows;
    /* 0, or where a second block of this layer's rows starts (the GAN's D: fake rows [0, b), real rows [b, 2b)):
     * the chunked step's chunk of batch rows [r0, r1) is then rows [r0, r1) and [second_rows + r0, second_rows +
     * r1) of dy and x (rows counts both blocks) */
    size_t second_rows;
    /* 1 when the layer's packed weights are not packed from params but refreshed before their next use by the
     * model (a spectral-normalized layer packs W / sigma): the tail then does not repack them */
    int packed_elsewhere;
    /* NULL, or x packed as the B of dW = dy^T x (elbo_linear_param_grads_packed: K = the step's rows, FP32 layers),
     * which the tail's blocks then read instead of each packing x (the chunked step reads x) */
    const elbo_packed_b *x_packed;
} elbo_trainable;

/* fp32 panels (NR output features each) per tail block when several threads share the tail: 64 rows, 14-15 blocks
 * per thread of a 784-400-20 VAE step on two threads. Smaller blocks balance better; on one thread, where nothing
 * is to balance, a layer is one block (the blocks' extra calls cost 2 % of a one-thread step). The bench's
 * multi-threaded weight-gradient rows claim blocks of this size too. */
#ifndef ELBO_TAIL_BLOCK_PANELS
#define ELBO_TAIL_BLOCK_PANELS 4
#endif

/* A block of a tail: output features [lo, hi) (whole NR panels) of trainable `layer` (an index into the list). */
typedef struct {
    uint32_t layer, lo, hi;
} elbo_tail_chunk;

/* Applies an optimizer to the rows x cols block of the parameter arena at offset off (row stride ld) from g, that
 * block's gradient (the same shape and row stride). */
typedef void (*elbo_param_update_fn)(void *ctx, size_t off, const float *g, size_t rows, size_t cols, size_t ld);

/* The tail blocks part `part` of nparts owns, in order: each layer's output features of elbo_linear_features_of_part
 * (the split a feature-split forward uses, so a thread repacks the weights it reads next), cut into blocks of a few
 * panels when nparts > 1 (one block per layer on one thread). Written to out when not NULL; returns how many. */
size_t elbo_tail_plan(const elbo_trainable *t, size_t n, size_t part, size_t nparts, elbo_tail_chunk *out);

/* The floats of scratch elbo_tail_chunk_run can hold block c's gradients in (hi - lo rows of W and of b), or 0 for
 * a layer whose gradients must be in the gradient arena (one with fix_weight_grads). */
size_t elbo_tail_chunk_scratch(const elbo_trainable *t, const elbo_tail_chunk *c);

/* One block over b rows, after every row's backward pass: its rows of dW = dy^T . x and its bias gradients, then,
 * a few panels at a time, `update` on those parameters and their repacking from params (unless
 * packed_elsewhere). The gradients go to
 * scratch when it holds elbo_tail_chunk_scratch floats (scratch_floats; a buffer every block of a thread reuses,
 * so they stay in its cache and never reach memory: a model whose parameters outgrow the caches, 7 M of a flow,
 * saves writing them and reading them back), else to grads at the arena's offsets. */
void elbo_tail_chunk_run(const elbo_trainable *t, elbo_gemm_workspace *ws, const float *params, float *grads,
                         float *scratch, size_t scratch_floats, size_t b, const elbo_tail_chunk *c,
                         elbo_param_update_fn update, void *ctx);

/* Every layer's gradients over b rows, part `part` of nparts of the output features (no update). */
void elbo_tail_grads_part(const elbo_trainable *t, size_t n, elbo_gemm_workspace *ws, float *grads, size_t b,
                          size_t part, size_t nparts);

#endif
