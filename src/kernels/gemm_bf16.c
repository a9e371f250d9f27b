/* The bf16 GEMM framework (gemm_bf16.h), the fp32 one's BLIS loop order: jc over N by NC, pc over K by KC (pack
 * B into pair panels), ic over M by MC (pack A into pair panels), then the register tiles. The microkernels read
 * pairs along K: B is always packed (no stored layout gives its pairs side by side along N), and so is A but where
 * it already holds them (bf16, stored M x K) and reading it in place pays (bf16_read_a_in_place), which the table's
 * strided-A microkernel does. */
#include "gemm_bf16.h"

#include "gemm_depth.h"
#include "kernels.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALIGNMENT 64

elbo_operand elbo_operand_bf16(const elbo_bf16 *data, size_t ld, elbo_trans trans)
{
    return (elbo_operand){.data = data, .ld = ld, .trans = trans, .dtype = ELBO_DTYPE_BF16};
}

const char *elbo_gemm_bf16_missing(const elbo_kernels *kern)
{
    return kern->gemm_bf16_ukernel ? NULL : kern->bf16_missing ? kern->bf16_missing : "a bf16 GEMM";
}

/* The bf16 cache blocking of kern: its register tile, the table's MC and NC rounded down to it, the FMA tables'
 * K depths. */
static elbo_gemm_blocking bf16_blocking(const elbo_kernels *kern)
{
    elbo_gemm_blocking bl = kern->blocking;
    bl.mr = kern->bf16_mr;
    bl.nr = kern->bf16_nr;
    bl.mc = bl.mc / bl.mr * bl.mr;
    bl.nc = bl.nc / bl.nr * bl.nr;
    bl.kc = ELBO_GEMM_FMA_KC;
    bl.kc_single = ELBO_GEMM_FMA_KC_SINGLE;
    assert(bl.mr > 0 && bl.nr > 0 && bl.mc >= bl.mr && bl.nc >= bl.nr && bl.kc % 2 == 0);
    return bl;
}

/* Depth of every K block: K in one block up to kc_single, else ceil(K/KC) near-equal blocks, rounded up to even
 * (a pair never straddles two blocks). Depends on K alone. */
static size_t k_block_depth(size_t k, const elbo_gemm_blocking *bl)
{
    if (k == 0 || k <= bl->kc_single)
        return k;
    size_t blocks = (k + bl->kc - 1) / bl->kc, depth = (k + blocks - 1) / blocks;
    return depth + (depth & 1);
}

/* Rows (step mr) or columns (step nr) per cache block for K blocks of depth kcb: blk, shrunk in proportion when
 * kcb exceeds kc so that a packed block keeps its cache footprint (and fits the workspace). */
static size_t scaled_block(size_t blk, size_t step, size_t kc, size_t kcb)
{
    if (kcb <= kc)
        return blk;
    size_t b = blk * kc / kcb / step * step;
    return b ? b : step;
}

/* Pair words of a packed panel of `rows` (padded to w) over depth: w * ceil(depth / 2). */
static size_t panel_words(size_t w, size_t depth)
{
    return w * ((depth + 1) / 2);
}

/* 64-byte aligned allocation of n words (at least one cache line). */
static uint32_t *alloc_words(size_t n)
{
    size_t bytes = (n * sizeof(uint32_t) + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    return aligned_alloc(ALIGNMENT, bytes ? bytes : ALIGNMENT);
}

int elbo_gemm_bf16_workspace_init(elbo_gemm_bf16_workspace *ws, const elbo_kernels *kern)
{
    assert(kern->gemm_bf16_ukernel);
    const elbo_gemm_blocking bl = bf16_blocking(kern);
    ws->packed_a_words = panel_words(bl.mc, bl.kc);
    ws->packed_b_words = panel_words(bl.nc, bl.kc);
    ws->packed_a = alloc_words(ws->packed_a_words);
    ws->packed_b = alloc_words(ws->packed_b_words);
    if (!ws->packed_a || !ws->packed_b) {
        elbo_gemm_bf16_workspace_free(ws);
        return -1;
    }
    return 0;
}

void elbo_gemm_bf16_workspace_free(elbo_gemm_bf16_workspace *ws)
{
    free(ws->packed_a);
    free(ws->packed_b);
    memset(ws, 0, sizeof *ws);
}

/* Element X(o, d) of a panel source as bf16 (ukernel_bf16.h): stored at [o][d] when depth_contiguous, else
 * [d][o]. */
static elbo_bf16 panel_elem(elbo_operand x, int depth_contiguous, size_t o, size_t d)
{
    size_t idx = depth_contiguous ? o * x.ld + d : d * x.ld + o;
    switch (x.dtype) {
    case ELBO_DTYPE_BF16:
        return ((const elbo_bf16 *)x.data)[idx];
    case ELBO_DTYPE_U8:
        return elbo_bf16_from_f32((float)((const uint8_t *)x.data)[idx] / 255.0f);
    default:
        return elbo_bf16_from_f32(((const float *)x.data)[idx]);
    }
}

void elbo_pack_bf16_panel(uint32_t *dst, elbo_operand x, int depth_contiguous, size_t outer0, size_t depth0,
                          size_t rows, size_t depth, size_t w)
{
    for (size_t q = 0; 2 * q < depth; q++) {
        for (size_t i = 0; i < rows; i++) {
            uint32_t lo = panel_elem(x, depth_contiguous, outer0 + i, depth0 + 2 * q);
            uint32_t hi = 2 * q + 1 < depth ? panel_elem(x, depth_contiguous, outer0 + i, depth0 + 2 * q + 1) : 0;
            dst[q * w + i] = lo | hi << 16;
        }
        for (size_t i = rows; i < w; i++)
            dst[q * w + i] = 0;
    }
}

#ifndef BF16_PACK_PASS
#define BF16_PACK_PASS 8
#endif

/* Packs outer indices [o0, o0 + count) x depth [d0, d0 + depth) of x into ceil(count / w) pair panels of w (panel
 * p at dst + p * panel_words(w, depth)). A source whose pairs run along its stored rows is packed panel by panel;
 * one whose pairs run across stored rows in passes of BF16_PACK_PASS stored rows, each pass read into L1 once
 * while every panel takes its pairs from it (panel by panel, each pair step read two rows' pieces that the panel
 * before had pulled in and lost). */
static void pack_panels(const elbo_kernels *kern, uint32_t *dst, elbo_operand x, int depth_contiguous, size_t o0,
                        size_t d0, size_t count, size_t depth, size_t w)
{
    const size_t stride = panel_words(w, depth);
    const size_t pass = depth_contiguous ? depth : BF16_PACK_PASS;
    for (size_t d = 0; d < depth; d += pass) {
        const size_t dn = depth - d < pass ? depth - d : pass;
        for (size_t o = 0; o < count; o += w)
            kern->pack_bf16(dst + o / w * stride + d / 2 * w, x, depth_contiguous, o0 + o, d0 + d,
                            count - o < w ? count - o : w, dn, w);
    }
}

/* Packs rows [i0, i0+mc) x depth [k0, k0+kc) of op(A) into ceil(mc/mr) pair panels of mr rows. */
static void pack_a(const elbo_kernels *kern, uint32_t *dst, elbo_operand a, size_t i0, size_t k0, size_t mc,
                   size_t kc, size_t mr)
{
    pack_panels(kern, dst, a, a.trans == ELBO_NOTRANS, i0, k0, mc, kc, mr);
}

/* Packs depth [k0, k0+kc) x columns [j0, j0+nc) of op(B) into ceil(nc/nr) pair panels of nr columns. */
static void pack_b(const elbo_kernels *kern, uint32_t *dst, elbo_operand b, size_t k0, size_t j0, size_t kc,
                   size_t nc, size_t nr)
{
    pack_panels(kern, dst, b, b.trans == ELBO_TRANS, j0, k0, nc, kc, nr);
}

size_t elbo_packed_b_bf16_words(const elbo_kernels *kern, size_t k, size_t n)
{
    const elbo_gemm_blocking bl = bf16_blocking(kern);
    size_t kcb = k_block_depth(k, &bl), words = 0, n_padded = (n + bl.nr - 1) / bl.nr * bl.nr;
    for (size_t k0 = 0; k0 < k; k0 += kcb)
        words += panel_words(n_padded, k - k0 < kcb ? k - k0 : kcb);
    return words;
}

int elbo_packed_b_bf16_alloc(elbo_packed_b_bf16 *pb, const elbo_kernels *kern, size_t k, size_t n)
{
    pb->kernels = kern;
    pb->k = k;
    pb->n = n;
    pb->data = alloc_words(elbo_packed_b_bf16_words(kern, k, n));
    return pb->data ? 0 : -1;
}

void elbo_packed_b_bf16_free(elbo_packed_b_bf16 *pb)
{
    free(pb->data);
    memset(pb, 0, sizeof *pb);
}

/* Start of the packed block for depth k0 (a K block boundary, depth kc) and column j0 (a multiple of NR) in pb.
 * Layout: K blocks in order; inside a block of depth kc, ceil(N/NR) panels of ceil(kc/2) x NR words. */
static const uint32_t *packed_b_block(const elbo_packed_b_bf16 *pb, const elbo_gemm_blocking *bl, size_t k0,
                                      size_t kc, size_t j0)
{
    size_t n_padded = (pb->n + bl->nr - 1) / bl->nr * bl->nr;
    return pb->data + n_padded * (k0 / 2) + panel_words(1, kc) * j0; /* K blocks before k0 are even */
}

void elbo_pack_b_bf16_part(elbo_packed_b_bf16 *pb, elbo_operand b, size_t part, size_t nparts)
{
    const elbo_gemm_blocking bl = bf16_blocking(pb->kernels);
    size_t panels = (pb->n + bl.nr - 1) / bl.nr;
    size_t j_lo = panels * part / nparts * bl.nr, j_hi = panels * (part + 1) / nparts * bl.nr;
    j_hi = j_hi < pb->n ? j_hi : pb->n;
    if (j_lo >= j_hi)
        return;
    size_t kcb = k_block_depth(pb->k, &bl);
    for (size_t k0 = 0; k0 < pb->k; k0 += kcb) {
        size_t kc = pb->k - k0 < kcb ? pb->k - k0 : kcb;
        pack_b(pb->kernels, (uint32_t *)packed_b_block(pb, &bl, k0, kc, j_lo), b, k0, j_lo, kc, j_hi - j_lo, bl.nr);
    }
}

void elbo_pack_b_bf16_region(elbo_packed_b_bf16 *pb, elbo_operand b, size_t k0, size_t k1, size_t j0, size_t j1)
{
    const elbo_gemm_blocking bl = bf16_blocking(pb->kernels);
    assert(j0 % bl.nr == 0 && (j1 % bl.nr == 0 || j1 == pb->n) && j1 <= pb->n && k1 <= pb->k);
    assert(k0 % 2 == 0 && (k1 % 2 == 0 || k1 == pb->k));
    if (k0 >= k1 || j0 >= j1)
        return;
    const size_t kcb = k_block_depth(pb->k, &bl);
    /* Each K block the region crosses: its pairs of every panel, one panel at a time (a panel's pairs are
     * contiguous only inside the panel). */
    for (size_t kb = k0 / kcb * kcb; kb < k1; kb += kcb) {
        const size_t kc = pb->k - kb < kcb ? pb->k - kb : kcb, kp = (kc + 1) / 2;
        const size_t ks = k0 > kb ? k0 : kb, ke = k1 < kb + kc ? k1 : kb + kc;
        uint32_t *block = (uint32_t *)packed_b_block(pb, &bl, kb, kc, 0);
        for (size_t j = j0; j < j1; j += bl.nr)
            pb->kernels->pack_bf16(block + j * kp + (ks - kb) / 2 * bl.nr, b, b.trans == ELBO_TRANS, j, ks,
                                   j1 - j < bl.nr ? j1 - j : bl.nr, ke - ks, bl.nr);
    }
}

void elbo_pack_b_bf16(elbo_packed_b_bf16 *pb, elbo_operand b)
{
    elbo_pack_b_bf16_part(pb, b, 0, 1);
}

/* Whether epi asks for anything past C (a bf16 output included; saved_bf16 counts only with grad). */
static int has_epilogue(const elbo_epilogue *epi)
{
    return epi && (epi->bias || epi->relu || epi->relu_mask || epi->act || epi->grad || epi->preact || epi->out_bf16);
}

/* epi with its shorthands (relu, relu_mask) written as act, grad and saved (as the fp32 GEMM reads them). */
static elbo_epilogue resolve_epilogue(const elbo_epilogue *epi)
{
    elbo_epilogue r = *epi;
    if (r.act == ELBO_ACT_NONE && r.relu)
        r.act = ELBO_ACT_RELU;
    if (r.grad == ELBO_ACT_NONE && r.relu_mask) {
        r.grad = ELBO_ACT_RELU;
        r.saved = r.relu_mask;
        r.ld_saved = r.ld_mask;
    }
    assert(r.act >= ELBO_ACT_NONE && r.act <= ELBO_ACT_SILU && r.grad >= ELBO_ACT_NONE && r.grad <= ELBO_ACT_SILU);
    assert(r.grad == ELBO_ACT_NONE || r.saved || r.saved_bf16);
    assert(!(r.saved && r.saved_bf16) && !(r.out_bf16 && r.preact));
    if (r.grad == ELBO_ACT_NONE)
        r.saved = NULL, r.saved_bf16 = NULL;
    return r;
}

/* The largest register tile of any bf16 microkernel (MR x NR floats), for the tile buffers of bf16 activations. */
#define TILE_FLOATS_MAX (16 * 64)

/* rows x cols bf16 at x (row stride ldx) as floats at y (row stride ldy): exact. */
static void bf16_tile_to_f32(float *y, size_t ldy, const elbo_bf16 *x, size_t ldx, size_t rows, size_t cols)
{
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++)
            y[i * ldy + j] = elbo_bf16_to_f32(x[i * ldx + j]);
}

/* Where the macro-kernel reads A's pair words: packed panels (rs 0: panel ir at base + ir * kp), or a bf16 A in place
 * (pair (i, q) of the block at base[i * rs + q * cs]). */
typedef struct {
    const uint32_t *base;
    size_t rs, cs;
} a_pairs;

/* Widest C for which a bf16 A is read in place whatever its size (as the fp32 GEMM's ELBO_GEMM_IN_PLACE_A_MAX_N),
 * and the largest A read in place under a wider C. */
#define BF16_IN_PLACE_A_MAX_N 64
#define BF16_IN_PLACE_A_MAX_BYTES (2u << 20)

/* Whether the blocked loops read op(A) (m x k) in place: the table can, A is bf16 stored M x K whose pair words are
 * whole aligned 32-bit words (even row stride, even K, 4-byte aligned), and C is narrow, or A is at most 2 MiB with
 * a row stride that is not a multiple of 4 KiB (whose rows would share L1 sets). The pairs are the words packing
 * would copy, so the products and the bits are the same. Measured with the AVX512_BF16 tile on Zen 4 (make
 * bench-ab): N = 40 1.5x; N = 400 and 784 over K = 784 and 400 at batch 128 and 1024 (A up to 1.6 MB) 1.01-1.05x;
 * 2048^3 (8 MiB, a 4 KiB stride) read in place 0.89-0.91x. */
static int bf16_read_a_in_place(const elbo_kernels *kern, elbo_operand a, size_t m, size_t n, size_t k)
{
    const size_t a_bytes = m * a.ld * sizeof(elbo_bf16), stride_bytes = a.ld * sizeof(elbo_bf16);
    return kern->gemm_bf16_ukernel_strided_a && a.dtype == ELBO_DTYPE_BF16 && a.trans == ELBO_NOTRANS &&
           a.ld % 2 == 0 && k % 2 == 0 && (uintptr_t)a.data % sizeof(uint32_t) == 0 &&
           (n <= BF16_IN_PLACE_A_MAX_N || (a_bytes <= BF16_IN_PLACE_A_MAX_BYTES && stride_bytes % 4096 != 0));
}

/* Runs the register tiles of one (mc x kc) A block (packed, or in place) against one packed (kc x nc) B block,
 * writing the C block at c (rows i0.., columns j0.. of the whole C, for the epilogue's pointers); epi only on the
 * last K block.
 * With epi->out_bf16 (one K block) and epi->saved_bf16, a microkernel with bf16_tile_io stores and reads bf16
 * itself; for the others each tile is finished into a buffer in L1 and stored from there in bf16, and its saved
 * values are read into one first. */
static void macro_kernel(const elbo_kernels *kern, const elbo_gemm_blocking *bl, size_t mc, size_t nc, size_t kc,
                         float alpha, a_pairs as, const uint32_t *pb, float beta, float *c, size_t ldc,
                         const elbo_epilogue *epi, size_t i0, size_t j0)
{
    const size_t mr = bl->mr, nr = bl->nr, kp = (kc + 1) / 2;
    elbo_tile_epilogue tile = {0}, *const tp = epi ? &tile : NULL;
    _Alignas(64) float out_tile[TILE_FLOATS_MAX], saved_tile[TILE_FLOATS_MAX];
    const int tile_io = kern->bf16_tile_io; /* the microkernel reads and writes bf16 tiles itself */
    if (epi)
        tile = (elbo_tile_epilogue){.act = epi->act, .grad = epi->grad, .slope = epi->slope, .ld_preact = epi->ld_preact,
                                    .ld_saved = epi->saved_bf16 && !tile_io ? nr : epi->ld_saved,
                                    .ld_out16 = epi->ld_out_bf16};
    for (size_t jr = 0; jr < nc; jr += nr) {
        size_t nrr = nc - jr < nr ? nc - jr : nr;
        for (size_t ir = 0; ir < mc; ir += mr) {
            size_t mrr = mc - ir < mr ? mc - ir : mr;
            const size_t i = i0 + ir, j = j0 + jr;
            if (epi) {
                tile.bias = epi->bias ? epi->bias + j : NULL;
                tile.preact = epi->preact ? epi->preact + i * epi->ld_preact + j : NULL;
                tile.saved = epi->saved ? epi->saved + i * epi->ld_saved + j : NULL;
                if (epi->saved_bf16 && tile_io) {
                    tile.saved16 = epi->saved_bf16 + i * epi->ld_saved + j;
                } else if (epi->saved_bf16) {
                    bf16_tile_to_f32(saved_tile, nr, epi->saved_bf16 + i * epi->ld_saved + j, epi->ld_saved, mrr, nrr);
                    tile.saved = saved_tile;
                }
                tile.out16 = epi->out_bf16 && tile_io ? epi->out_bf16 + i * epi->ld_out_bf16 + j : NULL;
            }
            const int out_tile_buffer = epi && epi->out_bf16; /* C is the tile buffer: the microkernel's own bf16
                                                                * store, or rounded here */
            float *ct = out_tile_buffer ? out_tile : c + ir * ldc + jr;
            const size_t ldct = out_tile_buffer ? nr : ldc;
            if (as.rs)
                kern->gemm_bf16_ukernel_strided_a(kp, as.base + ir * as.rs, as.rs, as.cs, pb + jr * kp, ct, ldct, mrr,
                                                  nrr, alpha, beta, tp);
            else
                kern->gemm_bf16_ukernel(kp, as.base + ir * kp, pb + jr * kp, ct, ldct, mrr, nrr, alpha, beta, tp);
            for (size_t r = 0; out_tile_buffer && !tile_io && r < mrr; r++)
                kern->f32_to_bf16(epi->out_bf16 + (i + r) * epi->ld_out_bf16 + j, out_tile + r * nr, nrr);
        }
    }
}

int elbo_gemm_bf16_one_block(const elbo_kernels *kern, size_t k)
{
    const elbo_gemm_blocking bl = bf16_blocking(kern);
    return k <= k_block_depth(k, &bl);
}

/* The blocked loops over columns [j_begin, n) of C, B packed here per block (pre == NULL) or taken from pre. */
static void gemm_blocked(const elbo_kernels *kern, elbo_gemm_bf16_workspace *ws, size_t m, size_t j_begin,
                         size_t n, size_t k, float alpha, elbo_operand a, elbo_operand b,
                         const elbo_packed_b_bf16 *pre, float beta, float *c, size_t ldc, const elbo_epilogue *epi)
{
    assert(kern->gemm_bf16_ukernel && ws && ws->packed_a && ws->packed_b);
    const elbo_gemm_blocking bl = bf16_blocking(kern);
    if (m == 0 || n <= j_begin)
        return;
    if (alpha == 0.0f)
        k = 0; /* BLAS semantics: A and B are not read */
    elbo_epilogue resolved;
    int has_epi = has_epilogue(epi);
    if (has_epi) {
        resolved = resolve_epilogue(epi);
        epi = &resolved;
    }
    const size_t kcb = k_block_depth(k, &bl);
    const int to_bf16 = has_epi && epi->out_bf16, from_bf16 = has_epi && epi->saved_bf16;
    assert(!to_bf16 || (k <= kcb && epi->act <= ELBO_ACT_LEAKY_RELU && !epi->grad));
    assert(!from_bf16 || (epi->grad == ELBO_ACT_RELU || epi->grad == ELBO_ACT_LEAKY_RELU));
    assert(!(to_bf16 || from_bf16) || (alpha == 1.0f && beta == 0.0f && bl.mr * bl.nr <= TILE_FLOATS_MAX));
    const size_t kcb_even = kcb + (kcb & 1); /* an odd single block packs its last pair padded */
    const size_t mc_blk = scaled_block(bl.mc, bl.mr, bl.kc, kcb_even);
    const size_t nc_blk = scaled_block(bl.nc, bl.nr, bl.kc, kcb_even);
    assert(panel_words(mc_blk, kcb) <= ws->packed_a_words && panel_words(nc_blk, kcb) <= ws->packed_b_words);
    const int in_place = k > 0 && bf16_read_a_in_place(kern, a, m, n - j_begin, k);
    for (size_t j0 = j_begin; j0 < n; j0 += nc_blk) {
        size_t nc = n - j0 < nc_blk ? n - j0 : nc_blk;
        size_t k0 = 0;
        do { /* at least once, so K == 0 still applies beta and the epilogue */
            size_t kc = k - k0 < kcb ? k - k0 : kcb;
            int last = k0 + kc >= k;
            const uint32_t *pb = ws->packed_b;
            if (pre)
                pb = packed_b_block(pre, &bl, k0, kc, j0);
            else if (kc > 0)
                pack_b(kern, ws->packed_b, b, k0, j0, kc, nc, bl.nr);
            float beta_blk = k0 == 0 ? beta : 1.0f;
            for (size_t i0 = 0; i0 < m; i0 += mc_blk) {
                size_t mc = m - i0 < mc_blk ? m - i0 : mc_blk;
                a_pairs as = {ws->packed_a, 0, 0};
                if (in_place)
                    as = (a_pairs){(const uint32_t *)a.data + i0 * (a.ld / 2) + k0 / 2, a.ld / 2, 1};
                else if (kc > 0)
                    pack_a(kern, ws->packed_a, a, i0, k0, mc, kc, bl.mr);
                macro_kernel(kern, &bl, mc, nc, kc, alpha, as, pb, beta_blk, to_bf16 ? NULL : c + i0 * ldc + j0,
                             ldc, last && has_epi ? epi : NULL, i0, j0);
            }
            k0 += kc;
        } while (k0 < k);
    }
}

/* Whether elbo_gemm_bf16 computes C (m x n) with the table's tile that puts C's rows on the lanes (gemm_bf16_lanes):
 * a C of its widths over enough rows, with a transposed fp32 A (a weight gradient dY^T X: A's stored rows are op(A)'s
 * columns, which it rounds as it reads them instead of packing them), f32 or bf16 B and no epilogue. */
static int bf16_compute_on_lanes(const elbo_kernels *kern, size_t m, size_t n, size_t k, float alpha, elbo_operand a,
                                 elbo_operand b, const elbo_epilogue *epi)
{
    return kern->gemm_bf16_lanes && n >= kern->bf16_lanes_min_n && n <= kern->bf16_lanes_max_n &&
           m >= ELBO_NARROW_C_MIN_M && k > 0 && alpha != 0.0f && !has_epilogue(epi) && a.trans == ELBO_TRANS &&
           a.dtype == ELBO_DTYPE_F32 && b.dtype != ELBO_DTYPE_U8;
}

/* C (m x n) = alpha op(A) op(B) + beta C through gemm_bf16_lanes: per K block (beta on the first, 1 after), B's pair
 * words packed into one panel of w = n, then one call for all of C's rows. */
static void gemm_bf16_on_lanes(const elbo_kernels *kern, elbo_gemm_bf16_workspace *ws, size_t m, size_t n, size_t k,
                               float alpha, elbo_operand a, elbo_operand b, float beta, float *c, size_t ldc)
{
    const elbo_gemm_blocking bl = bf16_blocking(kern);
    const size_t kcb = k_block_depth(k, &bl);
    const float *af = a.data;
    for (size_t k0 = 0; k0 < k; k0 += kcb) {
        const size_t kc = k - k0 < kcb ? k - k0 : kcb;
        assert(panel_words(n, kc) <= ws->packed_b_words);
        kern->pack_bf16(ws->packed_b, b, b.trans == ELBO_TRANS, 0, k0, n, kc, n);
        kern->gemm_bf16_lanes(kc, af + k0 * a.ld, a.ld, ws->packed_b, c, ldc, m, n, alpha, k0 == 0 ? beta : 1.0f);
    }
}

void elbo_gemm_bf16(const elbo_kernels *kern, elbo_gemm_bf16_workspace *ws, size_t m, size_t n, size_t k,
                    float alpha, elbo_operand a, elbo_operand b, float beta, float *c, size_t ldc,
                    const elbo_epilogue *epi)
{
    if (bf16_compute_on_lanes(kern, m, n, k, alpha, a, b, epi)) {
        gemm_bf16_on_lanes(kern, ws, m, n, k, alpha, a, b, beta, c, ldc);
        return;
    }
    gemm_blocked(kern, ws, m, 0, n, k, alpha, a, b, NULL, beta, c, ldc, epi);
}

void elbo_gemm_bf16_packed(const elbo_kernels *kern, elbo_gemm_bf16_workspace *ws, size_t m, size_t n, size_t k,
                           float alpha, elbo_operand a, const elbo_packed_b_bf16 *b, float beta, float *c,
                           size_t ldc, const elbo_epilogue *epi)
{
    assert(b->kernels == kern && b->k == k && b->n == n);
    gemm_blocked(kern, ws, m, 0, n, k, alpha, a, (elbo_operand){0}, b, beta, c, ldc, epi);
}

void elbo_gemm_bf16_packed_cols(const elbo_kernels *kern, elbo_gemm_bf16_workspace *ws, size_t m, size_t j0,
                                size_t j1, size_t k, float alpha, elbo_operand a, const elbo_packed_b_bf16 *b,
                                float beta, float *c, size_t ldc, const elbo_epilogue *epi)
{
    assert(b->kernels == kern && b->k == k && j0 % kern->bf16_nr == 0 && j0 <= j1 && j1 <= b->n);
    gemm_blocked(kern, ws, m, j0, j1, k, alpha, a, (elbo_operand){0}, b, beta, c, ldc, epi);
}
