/* The fixed summation tree of data-parallel training: a step's batch is cut into chunks of C rows, each chunk's
 * weight and bias gradients are one GEMM over its C rows, and the chunk gradients are summed in one binary tree over
 * the chunk indices that depends on the number of chunks only, never on how many ranks share them.
 *
 * The tree over N chunks is the dyadic one: node (k, j) covers chunks [j 2^k, min((j + 1) 2^k, N)); a leaf (k = 0)
 * is one chunk's gradient; an inner node is left + right, children (k - 1, 2j) and (k - 1, 2j + 1), or its left child
 * alone when the right one is empty; the root is (K, 0) with 2^K >= N.
 *
 * Ranks own contiguous chunk ranges (sizes differ by at most one). A rank computes the maximal nodes inside its
 * range (its "pieces": at most 2 log2 N); every node above them spans ranks and is formed from the pieces of all
 * ranks, which any process holding those pieces (for a slice of the elements) can do alone: the tree is the same,
 * so the bits are. */
#ifndef ELBO_GRAD_TREE_H
#define ELBO_GRAD_TREE_H

#include <stddef.h>
#include <stdint.h>

/* Rows per chunk by default: a multiple of every kernel table's MR (4 scalar, 6 AVX2, 12 AVX-512, 8 NEON's narrow
 * edge) so a chunk's forward rows are whole microkernel tiles on every table, and small enough that a default batch
 * of 128 has 6 chunks (up to 6 ranks share it; batch 1024 has 43). */
#define ELBO_CHUNK_ROWS_DEFAULT 24

/* A node of the tree: level k (0: one chunk) and index j. */
typedef struct {
    uint32_t k, j;
} elbo_tree_node;

/* The tree over n_chunks chunks for n_ranks ranks: each rank's chunk range and its pieces. */
typedef struct {
    size_t n_chunks, n_ranks;
    uint32_t levels;            /* K: the root is (K, 0) */
    size_t *range;              /* (n_ranks + 1): rank r owns chunks [range[r], range[r + 1]) */
    elbo_tree_node *piece;      /* every rank's pieces, rank by rank, each rank's in chunk order */
    size_t *piece_first;        /* (n_ranks + 1): rank r's pieces are [piece_first[r], piece_first[r + 1]) */
    size_t n_pieces;
} elbo_grad_tree;

/* Plans the tree of n_chunks >= 1 chunks over n_ranks >= 1 ranks (ranks beyond n_chunks get empty ranges).
 * Returns 0 or -1 on out-of-memory. */
int elbo_grad_tree_init(elbo_grad_tree *t, size_t n_chunks, size_t n_ranks);
void elbo_grad_tree_free(elbo_grad_tree *t);

/* Chunks [lo, hi) node n covers (clipped to the tree's chunks). */
void elbo_tree_node_chunks(const elbo_grad_tree *t, elbo_tree_node n, size_t *lo, size_t *hi);

/* Sums one rank's piece from its chunks for a block of elements: leaf(ctx, chunk, out) writes a chunk's values
 * of the block into out; inner nodes add the right child, computed into scratch[depth] (scratch has levels + 1
 * buffers, each addressed like out), into the left one; add(ctx, out, in) adds the block of in into out. */
typedef void (*elbo_tree_leaf_fn)(void *ctx, size_t chunk, float *out);
typedef void (*elbo_tree_add_fn)(void *ctx, float *out, const float *in);
void elbo_grad_tree_piece(const elbo_grad_tree *t, elbo_tree_node n, elbo_tree_leaf_fn leaf, elbo_tree_add_fn add,
                          void *ctx, float *out, float *const *scratch);

/* The root over a slice of len elements from every rank's pieces: piece[i] (i as in t->piece) points at piece i's
 * values of the slice; scratch has levels + 1 buffers of len floats. Writes the root's values into out. */
void elbo_grad_tree_combine(const elbo_grad_tree *t, const float *const *piece, size_t len, float *const *scratch,
                            float *out);

/* The widest chunk value elbo_grad_tree_sum_doubles sums. */
#define ELBO_TREE_MAX_WIDTH 64

/* The same tree over n_chunks values of `width` (<= ELBO_TREE_MAX_WIDTH) doubles each (per-chunk loss sums), into
 * out (width doubles). */
void elbo_grad_tree_sum_doubles(size_t n_chunks, const double *chunk, size_t width, double *out);

/* Bytes one rank sends per step to sum n floats of gradients with this tree (pieces to the slice owners, then the
 * root's slices to everyone): (pieces of rank r + 1) (P - 1) / P n 4, the largest over the ranks. */
size_t elbo_grad_tree_bytes_sent(const elbo_grad_tree *t, size_t n);

#endif
