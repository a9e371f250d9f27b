/* The fixed dyadic summation tree over a batch's chunks (grad_tree.h). */
#include "grad_tree.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "team.h"

/* Chunks [lo, hi) of node (k, j) over n chunks. */
static void node_range(size_t n, uint32_t k, size_t j, size_t *lo, size_t *hi)
{
    size_t a = j << k, e = (j + 1) << k;
    *lo = a < n ? a : n;
    *hi = e < n ? e : n;
}

void elbo_tree_node_chunks(const elbo_grad_tree *t, elbo_tree_node n, size_t *lo, size_t *hi)
{
    node_range(t->n_chunks, n.k, n.j, lo, hi);
}

/* Writes the maximal nodes inside chunks [a, b) of n (levels at most K) into out when not NULL; returns how
 * many. */
static size_t range_pieces(size_t n, uint32_t levels, size_t a, size_t b, elbo_tree_node *out)
{
    size_t count = 0;
    while (a < b) {
        uint32_t k = 0;
        for (;;) {
            size_t lo, hi;
            if (k + 1 > levels || a % ((size_t)1 << (k + 1)) != 0)
                break;
            node_range(n, k + 1, a >> (k + 1), &lo, &hi);
            if (hi > b)
                break;
            k++;
        }
        if (out)
            out[count] = (elbo_tree_node){k, (uint32_t)(a >> k)};
        count++;
        size_t lo, hi;
        node_range(n, k, a >> k, &lo, &hi);
        a = hi;
    }
    return count;
}

int elbo_grad_tree_init(elbo_grad_tree *t, size_t n_chunks, size_t n_ranks)
{
    assert(n_chunks >= 1 && n_ranks >= 1);
    memset(t, 0, sizeof *t);
    t->n_chunks = n_chunks;
    t->n_ranks = n_ranks;
    while (((size_t)1 << t->levels) < n_chunks)
        t->levels++;
    t->range = malloc((n_ranks + 1) * sizeof *t->range);
    t->piece_first = malloc((n_ranks + 1) * sizeof *t->piece_first);
    if (!t->range || !t->piece_first) {
        elbo_grad_tree_free(t);
        return -1;
    }
    t->piece_first[0] = 0;
    for (size_t r = 0; r < n_ranks; r++) {
        size_t lo, hi;
        elbo_team_rows(n_chunks, r, n_ranks, &lo, &hi);
        t->range[r] = lo;
        t->range[r + 1] = hi;
        t->piece_first[r + 1] = t->piece_first[r] + range_pieces(n_chunks, t->levels, lo, hi, NULL);
    }
    t->n_pieces = t->piece_first[n_ranks];
    t->piece = malloc(t->n_pieces * sizeof *t->piece);
    if (!t->piece) {
        elbo_grad_tree_free(t);
        return -1;
    }
    for (size_t r = 0; r < n_ranks; r++)
        range_pieces(n_chunks, t->levels, t->range[r], t->range[r + 1], t->piece + t->piece_first[r]);
    return 0;
}

void elbo_grad_tree_free(elbo_grad_tree *t)
{
    free(t->range);
    free(t->piece);
    free(t->piece_first);
    memset(t, 0, sizeof *t);
}

/* 1 when node (k, j) has a non-empty right child. */
static int has_right(size_t n, uint32_t k, size_t j)
{
    return k > 0 && ((2 * j + 1) << (k - 1)) < n;
}

void elbo_grad_tree_piece(const elbo_grad_tree *t, elbo_tree_node n, elbo_tree_leaf_fn leaf, elbo_tree_add_fn add,
                          void *ctx, float *out, float *const *scratch)
{
    if (n.k == 0) {
        leaf(ctx, n.j, out);
        return;
    }
    elbo_grad_tree_piece(t, (elbo_tree_node){n.k - 1, 2 * n.j}, leaf, add, ctx, out, scratch);
    if (!has_right(t->n_chunks, n.k, n.j))
        return;
    elbo_grad_tree_piece(t, (elbo_tree_node){n.k - 1, 2 * n.j + 1}, leaf, add, ctx, scratch[n.k - 1], scratch);
    add(ctx, out, scratch[n.k - 1]);
}

/* Index of node n among t's pieces, or -1. */
static long find_piece(const elbo_grad_tree *t, uint32_t k, size_t j)
{
    for (size_t i = 0; i < t->n_pieces; i++)
        if (t->piece[i].k == k && t->piece[i].j == j)
            return (long)i;
    return -1;
}

/* Node (k, j)'s values over the slice: a piece's own, or left + right written into out (the left child may use
 * out, the right one scratch[k - 1]); scratch below k - 1 is for the descendants. */
static const float *combine_node(const elbo_grad_tree *t, uint32_t k, size_t j, const float *const *piece, size_t len,
                                 float *const *scratch, float *out)
{
    long p = find_piece(t, k, j);
    if (p >= 0)
        return piece[p];
    assert(k > 0); /* every chunk lies in some rank's piece */
    const float *l = combine_node(t, k - 1, 2 * j, piece, len, scratch, out);
    if (!has_right(t->n_chunks, k, j))
        return l;
    const float *r = combine_node(t, k - 1, 2 * j + 1, piece, len, scratch, scratch[k - 1]);
    for (size_t i = 0; i < len; i++)
        out[i] = l[i] + r[i];
    return out;
}

void elbo_grad_tree_combine(const elbo_grad_tree *t, const float *const *piece, size_t len, float *const *scratch,
                            float *out)
{
    const float *root = combine_node(t, t->levels, 0, piece, len, scratch, out);
    if (root != out)
        memcpy(out, root, len * sizeof *out);
}

/* Node (k, j) of the tree over n chunk values of width doubles, into out. */
static void sum_node(size_t n, uint32_t k, size_t j, const double *chunk, size_t width, double *out)
{
    if (k == 0) {
        memcpy(out, chunk + j * width, width * sizeof *out);
        return;
    }
    sum_node(n, k - 1, 2 * j, chunk, width, out);
    if (!has_right(n, k, j))
        return;
    double right[ELBO_TREE_MAX_WIDTH];
    assert(width <= ELBO_TREE_MAX_WIDTH);
    sum_node(n, k - 1, 2 * j + 1, chunk, width, right);
    for (size_t i = 0; i < width; i++)
        out[i] += right[i];
}

void elbo_grad_tree_sum_doubles(size_t n_chunks, const double *chunk, size_t width, double *out)
{
    uint32_t levels = 0;
    while (((size_t)1 << levels) < n_chunks)
        levels++;
    sum_node(n_chunks, levels, 0, chunk, width, out);
}

size_t elbo_grad_tree_bytes_sent(const elbo_grad_tree *t, size_t n)
{
    size_t most = 0, p = t->n_ranks;
    for (size_t r = 0; r < p; r++) {
        size_t pieces = t->piece_first[r + 1] - t->piece_first[r];
        size_t slice_lo, slice_hi, bytes = 0;
        elbo_team_rows(n, r, p, &slice_lo, &slice_hi);
        /* every piece's slices but its own, then its root slice to every other rank */
        bytes = (pieces * (n - (slice_hi - slice_lo)) + (p - 1) * (slice_hi - slice_lo)) * sizeof(float);
        if (bytes > most)
            most = bytes;
    }
    return most;
}
