/* The trainer's chunked step, for data-parallel training whose bits do not depend on the number of ranks.
 *
 * A step's b rows are cut into N = ceil(b / C) chunks of C rows (the last one shorter); P ranks own contiguous
 * chunk ranges (sizes differ by at most one; the last partial batch too, so a rank may own none). A rank runs the
 * forward and backward passes of its rows only (its threads split them as usual), then each weight and bias
 * gradient is one GEMM per chunk (K = C rows) summed in the fixed tree of grad_tree.h: the rank forms its pieces
 * (the maximal tree nodes inside its range, its threads split by output features), the exchange forms the nodes
 * above them and every rank gets the same root, which the optimizer then applies (threads split as the pieces).
 * Loss sums are per chunk, summed in the same tree. A model of several optimizer phases (the GAN) runs each phase
 * so in turn; a layer with a second block of rows (the GAN's D: fake rows, then real rows) adds the chunk's rows of
 * that block in a second GEMM; a layer's fix_rows (the spectral norm's <dy, y - b>) are summed per chunk and over the
 * same tree, and its fix is applied to the reduced gradient. The parameters after N steps are byte-identical for any P and
 * any thread count; they differ from the one-GEMM-per-layer step of elbo_trainer_step (another summation order).
 *
 * Without an exchange, one process computes every rank's pieces and the tree over them (P simulated ranks): what
 * the tests compare across P. With one (the MPI layer, src/dist), the process is one rank. */
#ifndef ELBO_TRAIN_CHUNKED_H
#define ELBO_TRAIN_CHUNKED_H

#include <stddef.h>

#include "grad_tree.h"
#include "train.h"

/* Flags a rank folds into a step's agreement: its rows' loss or output gradients were not finite; it stopped (an
 * error, or it left training); it was asked to stop after this step (a signal). */
enum {
    ELBO_STEP_LOSS_NONFINITE = 1u,
    ELBO_STEP_GRADS_NONFINITE = 2u,
    ELBO_STEP_PEER_FAILED = 4u,
};

/* How the ranks of a chunked step talk; every member is called by one thread of each rank, in the same order. */
typedef struct {
    void *ctx;
    /* This rank's step flags in, the OR over every rank's out (ELBO_STEP_*). */
    unsigned (*agree)(void *ctx, unsigned flags);
    /* Every rank's chunk values: chunk c's `width` doubles at chunk + c width, this rank's chunks [t->range[rank],
     * t->range[rank + 1]) filled in; fills the others'. */
    void (*losses)(void *ctx, const elbo_grad_tree *t, double *chunk, size_t width);
    /* The tree's root over n floats into grads, from this rank's pieces (mine[i]: its i-th piece, n floats). */
    void (*grads)(void *ctx, const elbo_grad_tree *t, float *const *mine, float *grads, size_t n);
    /* Optional, in place of grads: the root over the arena's elements [lo, hi) (a bucket: one layer's weights or
     * biases), begun as soon as this rank's pieces hold them, while the pieces of the next layers are formed; called
     * for the buckets in the same order on every rank. grads_finish completes every bucket begun this step. */
    void (*grads_begin)(void *ctx, const elbo_grad_tree *t, float *const *mine, float *grads, size_t lo, size_t hi);
    void (*grads_finish)(void *ctx);
} elbo_grad_exchange;

typedef struct {
    size_t chunk_rows;                  /* C (0: ELBO_CHUNK_ROWS_DEFAULT) */
    size_t ranks, rank;                 /* P and this process's rank */
    const elbo_grad_exchange *exchange; /* NULL: this process simulates all P ranks */
} elbo_chunked_config;

/* Switches tr (initialized, not yet stepped) to chunked steps. Refuses, with a message in err, a model
 * without rows_loss (in any of its phases), and more ranks than the chunks of a full batch. Returns 0 or -1. */
int elbo_trainer_use_chunks(elbo_trainer *tr, const elbo_chunked_config *cfg, char *err, size_t errlen);

/* elbo_trainer_step for a chunked trainer (elbo_trainer_step calls it). */
elbo_step_loss elbo_trainer_step_chunked(elbo_trainer *tr, const elbo_images_view *data, const uint32_t *rows,
                                         size_t b);

/* Frees a trainer's chunked state (elbo_trainer_free calls it; NULL is fine). */
void elbo_chunked_free(struct elbo_chunked *c);

#endif
