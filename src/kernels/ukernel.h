/* The contract between the GEMM framework and per-ISA microkernels. */
#ifndef ELBO_UKERNEL_H
#define ELBO_UKERNEL_H

#include <stddef.h>

#include "gemm.h"

/* Epilogue for one MR x NR tile, already offset to the tile's origin (elbo_epilogue's, shorthands resolved). */
typedef struct {
    const float *bias;   /* NULL or the tile's nr bias values */
    float *preact;       /* NULL or the tile's pre-activation output (row stride ld_preact) */
    size_t ld_preact;
    const float *saved;  /* NULL or the forward's saved values at the tile origin (grad != NONE) */
    size_t ld_saved;
    elbo_activation act;
    elbo_activation grad;
    float slope;
    /* bf16 microkernels whose table sets bf16_tile_io only (elbo_epilogue's out_bf16 and saved_bf16 at the tile
     * origin; NULL otherwise): the tile is stored to out16 in bf16 instead of to C (alpha 1, beta 0, no
     * pre-activation), and the derivative's saved values are read from saved16 (row stride ld_saved). */
    uint16_t *out16;
    size_t ld_out16;
    const uint16_t *saved16;
} elbo_tile_epilogue;

/* 1 when a tile epilogue needs at most the bias, ReLU and the ReLU mask: the ISAs finish those inline with the
 * accumulators in registers, and the other activations (calls into SLEEF) out of line. */
static inline int elbo_tile_epilogue_is_basic(const elbo_tile_epilogue *e)
{
    return !e || (!e->preact && e->act <= ELBO_ACT_RELU && e->grad <= ELBO_ACT_RELU);
}

/* C tile (mr x nr valid of MR x NR, row stride ldc) = alpha * a_panel * b_panel + beta * C, then epi.
 * a is packed MR x kc (a[p*MR + i]), b is packed kc x NR (b[p*NR + j]); padding rows/cols are zero.
 * beta == 0 must not read C. epi is NULL on every K block but the last. */
typedef void (*elbo_gemm_ukernel_fn)(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                     size_t mr, size_t nr, float alpha, float beta,
                                     const elbo_tile_epilogue *epi);

/* As elbo_gemm_ukernel_fn, but A is read in place: element (i, p) at a[i*a_rs + p*a_cs], i < mr only
 * (rows past mr are never read), which lets small-N products skip packing A; and B's depth step p starts at
 * b + p*b_rs (NR for a packed panel; B's row stride when a full-width B is read in place). */
typedef void (*elbo_gemm_ukernel_strided_a_fn)(size_t kc, const float *a, size_t a_rs, size_t a_cs,
                                               const float *b, size_t b_rs, float *c, size_t ldc, size_t mr,
                                               size_t nr, float alpha, float beta, const elbo_tile_epilogue *epi);

/* As elbo_gemm_ukernel_strided_a_fn over two adjacent NR-column panels at once (a tile 2 NR wide, nr valid
 * columns, NR < nr <= 2 NR): the second panel's depth step p starts at b + b_ps + p*b_rs (b_ps = NR*kc for
 * packed panels, NR for B read in place), and is loaded whole (a partial one only when packed, zero-padded).
 * Packed A is a_rs = 1, a_cs = MR. Every element gets the bits the one-panel kernels give it. */
typedef void (*elbo_gemm_ukernel_wide_fn)(size_t kc, const float *a, size_t a_rs, size_t a_cs, const float *b,
                                          size_t b_rs, size_t b_ps, float *c, size_t ldc, size_t mr, size_t nr,
                                          float alpha, float beta, const elbo_tile_epilogue *epi);

/* Tiles with C's rows on the vector lanes, for a narrow C under a transposed A: C (m x n, row stride ldc; n in
 * [gemm_lanes_min_n, gemm_lanes_max_n] of the table) = alpha * sum over depth p < kc of A[p][i] B[p][j] + beta * C,
 * A's depth step p at a + p * a_rs (C's rows contiguous there), B's element (p, j) at b[p * b_rs + j * b_cs]. Every
 * element gets the bits the other tiles give it. beta == 0 does not read C. */
typedef void (*elbo_gemm_lanes_fn)(size_t kc, const float *a, size_t a_rs, const float *b, size_t b_rs, size_t b_cs,
                                   float *c, size_t ldc, size_t m, size_t n, float alpha, float beta);

/* As elbo_gemm_ukernel_wide_fn over every row tile of a strip: C (m x nr, m any) in tiles of up to MR rows, tile t's
 * A at a + (its first row) * a_ts (a_ts = kc for packed panels, a_rs for A in place), each tile's rows
 * elbo_tile_rows(rows left, MR) when split_tail, else min(rows left, MR); no epilogue. One call for a strip instead
 * of one per tile: the same tiles, the same bits. */
typedef void (*elbo_gemm_ukernel_wide_strip_fn)(size_t kc, const float *a, size_t a_rs, size_t a_cs, size_t a_ts,
                                                const float *b, size_t b_rs, size_t b_ps, float *c, size_t ldc,
                                                size_t m, int split_tail, size_t nr, float alpha, float beta);

/* Fewest rows of C for which a narrow C under a transposed A (a weight gradient of a layer with few inputs) takes a
 * narrow route, C^T or a tile with C's rows on the lanes (gemm.c, gemm_bf16.c): fewer rows would leave their lanes
 * or transposed tiles part empty. */
#define ELBO_NARROW_C_MIN_M 64

/* Rows of the next register tile when `left` rows of A (read in place) remain and a tile holds up to max: a remainder
 * that would leave a thin last tile is split into two near-equal tiles, which keeps enough independent FMA chains in
 * flight. Any row tiling gives the same bits (each element is one FMA chain). */
static inline size_t elbo_tile_rows(size_t left, size_t max)
{
    return left <= max ? left : left < 2 * max ? (left + 1) / 2 : max;
}

/* Register tile and cache blocking of one microkernel (BLIS names). */
typedef struct {
    size_t mr, nr;   /* register tile */
    size_t mc;       /* rows of A per packed block (multiple of mr), sized for L2 */
    size_t kc;       /* depth per packed block, sized so a kc x NR B panel stays in L1 */
    size_t kc_single; /* depths up to this are one block (0: kc), sparing extra passes over C */
    size_t nc;       /* columns of B per packed panel (multiple of nr), sized for L3 */
    int prefetch_next_b; /* the macro-kernel fetches the next column strip of packed B towards L2 (gemm.c) */
    int in_place_trans_a; /* a transposed op(A) under a wide C may be read in place when small (gemm.c) */
    int a_panel_outer;   /* each packed A panel runs over every B strip of the block before the next (gemm.c) */
    size_t transposed_c_max_n; /* a C at most this narrow (over a tall op(A)^T) is computed as C^T (gemm.c); 0: never */
} elbo_gemm_blocking;

#endif
