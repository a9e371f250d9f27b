/* The GEMM framework (BLIS loop order): jc over N by NC, pc over K by KC (pack B),
 * ic over M by MC (pack A), then the macro-kernel loops jr/ir over register tiles. */
#include "gemm.h"
#include "gemm_bf16.h"

#include "kernels.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define ALIGNMENT 64

/* Widest C for which A is read in place instead of packed (when the ISA can). */
#ifndef ELBO_GEMM_IN_PLACE_A_MAX_N
#define ELBO_GEMM_IN_PLACE_A_MAX_N 64
#endif
/* Largest op(A) read in place whatever N. */
#ifndef ELBO_GEMM_IN_PLACE_A_MAX_BYTES
#define ELBO_GEMM_IN_PLACE_A_MAX_BYTES (1u << 20)
#endif

elbo_operand elbo_operand_f32(const float *data, size_t ld, elbo_trans trans)
{
    return (elbo_operand){.data = data, .ld = ld, .trans = trans, .dtype = ELBO_DTYPE_F32};
}

elbo_operand elbo_operand_u8(const uint8_t *data, size_t ld, elbo_trans trans)
{
    return (elbo_operand){.data = data, .ld = ld, .trans = trans, .dtype = ELBO_DTYPE_U8};
}

/* 64-byte aligned allocation of n floats (at least one cache line). */
static float *alloc_floats(size_t n)
{
    size_t bytes = (n * sizeof(float) + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    return aligned_alloc(ALIGNMENT, bytes ? bytes : ALIGNMENT);
}

/* Depth of every K block: K in one block up to kc_single, else split into ceil(K/KC) near-equal blocks.
 * Depends on K and the blocking only, so each C element sums its products in the same order whatever M, N
 * and the tiling. */
static size_t k_block_depth(size_t k, const elbo_gemm_blocking *bl)
{
    if (k == 0 || k <= bl->kc_single)
        return k;
    size_t blocks = (k + bl->kc - 1) / bl->kc;
    return (k + blocks - 1) / blocks;
}

/* Rows (step mr) or columns (step nr) per cache block for K blocks of depth kcb: the table's mc / nc, shrunk
 * when kcb exceeds kc so that a packed block keeps the size the table sized for its cache (and the
 * workspace). Only the traversal changes, not any element's sum. */
static size_t scaled_block(size_t blk, size_t step, size_t kc, size_t kcb)
{
    if (kcb <= kc)
        return blk;
    size_t b = blk * kc / kcb / step * step;
    return b ? b : step;
}

int elbo_gemm_workspace_init(elbo_gemm_workspace *ws, const elbo_kernels *kern)
{
    const elbo_gemm_blocking *bl = &kern->blocking;
    ws->pack_a = ELBO_PACK_A_AUTO;
    ws->pack_b = ELBO_PACK_B_AUTO;
    ws->packed_a_floats = bl->mc * bl->kc;
    ws->packed_b_floats = bl->kc * bl->nc;
    ws->packed_a = alloc_floats(ws->packed_a_floats);
    ws->packed_b = alloc_floats(ws->packed_b_floats);
    ws->bf16 = NULL;
    int bf16_failed = 0;
    if (kern->precision == ELBO_PRECISION_BF16) {
        ws->bf16 = calloc(1, sizeof *ws->bf16);
        bf16_failed = !ws->bf16 || elbo_gemm_bf16_workspace_init(ws->bf16, kern) != 0;
    }
    if (!ws->packed_a || !ws->packed_b || bf16_failed) {
        elbo_gemm_workspace_free(ws);
        return -1;
    }
    return 0;
}

void elbo_gemm_workspace_free(elbo_gemm_workspace *ws)
{
    free(ws->packed_a);
    free(ws->packed_b);
    if (ws->bf16)
        elbo_gemm_bf16_workspace_free(ws->bf16);
    free(ws->bf16);
    memset(ws, 0, sizeof *ws);
}

/* Rounds n up to a multiple of m. */
static size_t round_up(size_t n, size_t m)
{
    return (n + m - 1) / m * m;
}

size_t elbo_packed_b_floats(const elbo_kernels *kern, size_t k, size_t n)
{
    return k * round_up(n, kern->blocking.nr);
}

int elbo_packed_b_alloc(elbo_packed_b *pb, const elbo_kernels *kern, size_t k, size_t n)
{
    pb->kernels = kern;
    pb->k = k;
    pb->n = n;
    pb->view_ld = 0;
    pb->data = alloc_floats(elbo_packed_b_floats(kern, k, n));
    return pb->data ? 0 : -1;
}

int elbo_packed_b_view(elbo_packed_b *pb, const elbo_kernels *kern, size_t k, size_t n, const float *b, size_t ld)
{
    memset(pb, 0, sizeof *pb);
    if (!kern->gemm_ukernel_strided_a || n % kern->blocking.nr != 0 || ld < n || ld == 0)
        return -1;
    pb->kernels = kern;
    pb->k = k;
    pb->n = n;
    pb->data = (float *)b;
    pb->view_ld = ld;
    return 0;
}

void elbo_packed_b_free(elbo_packed_b *pb)
{
    if (!pb->view_ld)
        free(pb->data);
    memset(pb, 0, sizeof *pb);
}

/* Start of the packed (kc x NR panels) block for depth k0 and column j0 inside a full packed B.
 * Layout: K blocks in order; inside a block of depth kc, ceil(N/NR) panels of kc x NR. */
static const float *packed_b_block(const elbo_packed_b *pb, size_t k0, size_t kc, size_t j0)
{
    size_t n_padded = round_up(pb->n, pb->kernels->blocking.nr);
    return pb->data + k0 * n_padded + j0 * kc;
}

void elbo_pack_b_part(elbo_packed_b *pb, elbo_operand b, size_t part, size_t nparts)
{
    if (pb->view_ld)
        return;
    const elbo_gemm_blocking *bl = &pb->kernels->blocking;
    size_t panels = (pb->n + bl->nr - 1) / bl->nr;
    size_t j_lo = panels * part / nparts * bl->nr, j_hi = panels * (part + 1) / nparts * bl->nr;
    if (j_hi > pb->n)
        j_hi = pb->n;
    if (j_lo >= j_hi)
        return;
    size_t kcb = k_block_depth(pb->k, bl);
    for (size_t k0 = 0; k0 < pb->k; k0 += kcb) {
        size_t kc = pb->k - k0 < kcb ? pb->k - k0 : kcb;
        pb->kernels->pack_b((float *)packed_b_block(pb, k0, kc, j_lo), b, k0, j_lo, kc, j_hi - j_lo, bl->nr);
    }
}

/* elbo_pack_b_region through the pack routine `pack`. */
static void pack_b_region_with(elbo_pack_b_fn pack, elbo_packed_b *pb, elbo_operand b, size_t k0, size_t k1,
                               size_t j0, size_t j1)
{
    if (pb->view_ld)
        return;
    const elbo_gemm_blocking *bl = &pb->kernels->blocking;
    assert(j0 % bl->nr == 0 && (j1 % bl->nr == 0 || j1 == pb->n) && k1 <= pb->k && j1 <= pb->n);
    if (k0 >= k1 || j0 >= j1)
        return;
    size_t kcb = k_block_depth(pb->k, bl);
    /* Each K block the region crosses: its rows of every panel, one panel at a time (a panel's rows are
     * contiguous only inside the panel). */
    for (size_t kb = k0 / kcb * kcb; kb < k1; kb += kcb) {
        size_t kc = pb->k - kb < kcb ? pb->k - kb : kcb;
        size_t ks = k0 > kb ? k0 : kb, ke = k1 < kb + kc ? k1 : kb + kc;
        float *block = (float *)packed_b_block(pb, kb, kc, 0);
        for (size_t j = j0; j < j1; j += bl->nr)
            pack(block + j * kc + (ks - kb) * bl->nr, b, ks, j, ke - ks, j1 - j < bl->nr ? j1 - j : bl->nr, bl->nr);
    }
}

void elbo_pack_b_region(elbo_packed_b *pb, elbo_operand b, size_t k0, size_t k1, size_t j0, size_t j1)
{
    pack_b_region_with(pb->kernels->pack_b, pb, b, k0, k1, j0, j1);
}

void elbo_pack_b_region_stream(elbo_packed_b *pb, elbo_operand b, size_t k0, size_t k1, size_t j0, size_t j1)
{
    const elbo_kernels *k = pb->kernels;
    pack_b_region_with(k->pack_b_stream ? k->pack_b_stream : k->pack_b, pb, b, k0, k1, j0, j1);
}

void elbo_pack_b(elbo_packed_b *pb, elbo_operand b)
{
    elbo_pack_b_part(pb, b, 0, 1);
}

/* Where the macro-kernel reads A: packed panels, or the f32 operand in place (a_rs, a_cs strides). */
typedef struct {
    const float *base; /* packed block, or op(A) element (i0, k0) in place */
    size_t a_rs, a_cs; /* in-place strides; 0 when packed */
} a_source;

/* Where the macro-kernel reads B: column j0 of a packed block (panel jr at base + jr * kc, NR floats per depth
 * step), or of B in place (panel jr at base + jr, rs floats per depth step). */
typedef struct {
    const float *base;
    size_t rs;       /* floats between consecutive depth steps of a panel */
    int in_place;
} b_source;

/* Prefetches bytes [from, to) of the packed B panel at next towards L2, a cache line at a time. */
static void prefetch_b_slice(const float *next, size_t from, size_t to)
{
    const char *p = (const char *)next;
    for (size_t off = from & ~(size_t)63; off < to; off += 64)
        __builtin_prefetch(p + off, 0, 2);
}

/* Runs the register tiles of one (mc x kc) A block against one packed (kc x nc) B panel,
 * writing C block (mc x nc) at c; epi (already offset to the block) only on the last K block. */
static void macro_kernel(const elbo_kernels *kern, size_t mc, size_t nc, size_t kc, float alpha,
                         a_source as, b_source bs, float beta, float *c, size_t ldc,
                         const elbo_epilogue *epi, size_t i0, size_t j0)
{
    const size_t mr = kern->blocking.mr, nr = kern->blocking.nr;
    /* The tile epilogue: its pointers move with each tile, the rest is the call's. */
    elbo_tile_epilogue tile = {0}, *const tp = epi ? &tile : NULL;
    if (epi)
        tile = (elbo_tile_epilogue){.act = epi->act, .grad = epi->grad, .slope = epi->slope,
                                    .ld_preact = epi->ld_preact, .ld_saved = epi->ld_saved};
    for (size_t jr = 0, strip; jr < nc; jr += strip) {
        /* A strip is two panels where the table has a two-panel tile and two full panels remain, or one full
         * and one partial packed panel (zero-padded, so the tile may load it whole; B read in place may not
         * be read past N); else one panel. */
        int wide = kern->gemm_ukernel_wide && (nc - jr >= 2 * nr || (!bs.in_place && nc - jr > nr));
        strip = wide ? 2 * nr : nr;
        size_t nrr = nc - jr < strip ? nc - jr : strip;
        int narrow = kern->gemm_ukernel_narrow && nrr <= kern->narrow_nr;
        size_t max_rows = narrow && as.a_rs ? kern->narrow_mr : mr; /* packed A: one mr-row panel per tile */
        size_t mrr;
        /* The next column strip's B panels come from L3 or memory: where the table asks for it, fetch a slice
         * of them during each tile of this strip, so its first tile does not wait on them. */
        const float *pb = bs.in_place ? bs.base + jr : bs.base + jr * kc;
        const int prefetch = kern->blocking.prefetch_next_b && jr + strip < nc && !bs.in_place;
        const float *next_b = prefetch ? pb + strip * kc : NULL;
        size_t next_panels = next_b ? (nc - jr - strip + nr - 1) / nr : 0, max_panels = kern->gemm_ukernel_wide ? 2 : 1;
        next_panels = next_panels < max_panels ? next_panels : max_panels;
        size_t next_bytes = kc * nr * next_panels * sizeof(float), tiles = (mc + mr - 1) / mr;
        size_t slice = next_bytes / tiles + 64;
        if (wide && !epi && !next_b && mc > mr && kern->gemm_ukernel_wide_strip) { /* the strip's tiles in one call */
            kern->gemm_ukernel_wide_strip(kc, as.base, as.a_rs ? as.a_rs : 1, as.a_rs ? as.a_cs : mr,
                                          as.a_rs ? as.a_rs : kc, pb, bs.rs, bs.in_place ? nr : nr * kc, c + jr, ldc,
                                          mc, as.a_rs != 0, nrr, alpha, beta);
            continue;
        }
        for (size_t ir = 0, t = 0; ir < mc; ir += mrr, t++) {
            mrr = as.a_rs ? elbo_tile_rows(mc - ir, max_rows) : (mc - ir < mr ? mc - ir : mr);
            if (next_b && t * slice < next_bytes)
                prefetch_b_slice(next_b, t * slice, (t + 1) * slice < next_bytes ? (t + 1) * slice : next_bytes);
            if (epi) {
                const size_t i = i0 + ir, j = j0 + jr;
                tile.bias = epi->bias ? epi->bias + j : NULL;
                tile.preact = epi->preact ? epi->preact + i * epi->ld_preact + j : NULL;
                tile.saved = epi->saved ? epi->saved + i * epi->ld_saved + j : NULL;
            }
            const float *at = as.a_rs ? as.base + ir * as.a_rs : as.base + ir * kc;
            size_t a_rs = as.a_rs ? as.a_rs : 1, a_cs = as.a_rs ? as.a_cs : mr;
            float *ct = c + ir * ldc + jr;
            if (wide)
                kern->gemm_ukernel_wide(kc, at, a_rs, a_cs, pb, bs.rs, bs.in_place ? nr : nr * kc, ct, ldc, mrr, nrr,
                                        alpha, beta, tp);
            else if (narrow)
                kern->gemm_ukernel_narrow(kc, at, a_rs, a_cs, pb, bs.rs, ct, ldc, mrr, nrr, alpha, beta, tp);
            else if (kern->gemm_ukernel_strided_a && (as.a_rs || bs.in_place)) /* packed A: a_rs 1, a_cs mr */
                kern->gemm_ukernel_strided_a(kc, at, a_rs, a_cs, pb, bs.rs, ct, ldc, mrr, nrr, alpha, beta, tp);
            else
                kern->gemm_ukernel(kc, at, pb, ct, ldc, mrr, nrr, alpha, beta, tp);
        }
    }
}

/* Whether to read A in place rather than pack it: packing A pays off only when each packed element
 * is reused across enough column tiles; for narrow C (few NR panels) it costs more than it saves. */
static int read_a_in_place(const elbo_kernels *kern, const elbo_gemm_workspace *ws, elbo_operand a, size_t m,
                           size_t n, size_t k)
{
    if (!kern->gemm_ukernel_strided_a || a.dtype != ELBO_DTYPE_F32 || ws->pack_a == ELBO_PACK_A_ALWAYS)
        return 0;
    if (ws->pack_a == ELBO_PACK_A_NEVER)
        return 1;
    /* Measured on Zen 3: in place wins for narrow C and while a non-transposed op(A) stays cache-resident
     * (the VAE's forward and data-gradient layers, up to ~1 MiB). Packing wins for large A, for row strides
     * that alias in L1 (multiples of 4 KiB), and, with the AVX2 tiles, for transposed A under a wide C (weight
     * gradients: in place, each depth step of a tile reads a different cache line; packed, the panel is
     * contiguous; 3-5 %). Tables that set in_place_trans_a read such an A in place too (the AVX-512 12 x 32
     * tile on Zen 5: the K = 128 weight gradients 2-6 % faster than with the per-call packing). */
    size_t a_bytes = m * k * sizeof(float), stride_bytes = a.ld * sizeof(float);
    int trans_ok = a.trans == ELBO_NOTRANS || kern->blocking.in_place_trans_a;
    return n <= ELBO_GEMM_IN_PLACE_A_MAX_N ||
           (trans_ok && a_bytes <= ELBO_GEMM_IN_PLACE_A_MAX_BYTES && stride_bytes % 4096 != 0);
}

/* Whether epi asks for anything past C (NULL or all fields unset: no). */
static int has_epilogue(const elbo_epilogue *epi)
{
    return epi && (epi->bias || epi->relu || epi->relu_mask || epi->act || epi->grad || epi->preact);
}

/* epi with its shorthands (relu, relu_mask) written as act, grad and saved. */
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
    assert(r.grad == ELBO_ACT_NONE || r.saved);
    if (r.grad == ELBO_ACT_NONE)
        r.saved = NULL;
    return r;
}

/* The blocked loops over columns [j_begin, n) of C, with B either packed here per panel (pre == NULL) or taken
 * from pre. */
static void gemm_blocked(const elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t j_begin, size_t n,
                         size_t k, float alpha, elbo_operand a, elbo_operand b, const elbo_packed_b *pre, float beta,
                         float *c, size_t ldc, const elbo_epilogue *epi)
{
    const elbo_gemm_blocking *bl = &kern->blocking;
    assert(ws && ws->packed_a && ws->packed_b);
    assert(ws->packed_a_floats >= bl->mc * bl->kc && ws->packed_b_floats >= bl->kc * bl->nc);
    assert(a.dtype != ELBO_DTYPE_BF16 && b.dtype != ELBO_DTYPE_BF16); /* bf16 operands: gemm_bf16.h */
    assert(!epi || (!epi->out_bf16 && !epi->saved_bf16));           /* bf16 activations: gemm_bf16.h */
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
    size_t kcb = k_block_depth(k, bl);
    const size_t mc_blk = scaled_block(bl->mc, bl->mr, bl->kc, kcb), nc_blk = scaled_block(bl->nc, bl->nr, bl->kc, kcb);
    assert(mc_blk * kcb <= ws->packed_a_floats && kcb * nc_blk <= ws->packed_b_floats);
    int in_place = k > 0 && read_a_in_place(kern, ws, a, m, n - j_begin, k);
    for (size_t j0 = j_begin; j0 < n; j0 += nc_blk) {
        size_t nc = n - j0 < nc_blk ? n - j0 : nc_blk;
        size_t k0 = 0;
        do { /* at least once, so K == 0 still applies beta and the epilogue */
            size_t kc = k - k0 < kcb ? k - k0 : kcb;
            int last = k0 + kc >= k;
            b_source bs = {ws->packed_b, bl->nr, 0};
            if (pre && pre->view_ld) {
                bs = (b_source){pre->data + k0 * pre->view_ld + j0, pre->view_ld, 1};
            } else if (pre) {
                bs.base = packed_b_block(pre, k0, kc, j0);
            } else {
                kern->pack_b(ws->packed_b, b, k0, j0, kc, nc, bl->nr);
            }
            float beta_blk = k0 == 0 ? beta : 1.0f;
            for (size_t i0 = 0; i0 < m; i0 += mc_blk) {
                size_t mc = m - i0 < mc_blk ? m - i0 : mc_blk;
                a_source as = {ws->packed_a, 0, 0};
                if (in_place) {
                    const float *af = a.data;
                    as.a_rs = a.trans == ELBO_NOTRANS ? a.ld : 1;
                    as.a_cs = a.trans == ELBO_NOTRANS ? 1 : a.ld;
                    as.base = af + i0 * as.a_rs + k0 * as.a_cs;
                } else {
                    kern->pack_a(ws->packed_a, a, i0, k0, mc, kc, bl->mr);
                }
                if (bl->a_panel_outer && !as.a_rs) { /* one packed A panel over every strip, then the next */
                    for (size_t ir = 0; ir < mc; ir += bl->mr) {
                        a_source ap = {as.base + ir * kc, 0, 0};
                        macro_kernel(kern, mc - ir < bl->mr ? mc - ir : bl->mr, nc, kc, alpha, ap, bs, beta_blk,
                                     c + (i0 + ir) * ldc + j0, ldc, last && has_epi ? epi : NULL, i0 + ir, j0);
                    }
                } else {
                    macro_kernel(kern, mc, nc, kc, alpha, as, bs, beta_blk, c + i0 * ldc + j0, ldc,
                                 last && has_epi ? epi : NULL, i0, j0);
                }
            }
            k0 += kc;
        } while (k0 < k);
    }
}

/* Whether elbo_gemm reads a row-major f32 B in place (as a view) rather than packing it per call: when the
 * kernels can, and B's row stride spreads a panel's depth steps over the L1 sets (a stride of an odd multiple
 * of 64 bytes, or twice one; a multiple of 256 bytes puts a panel's rows in a quarter of the sets or fewer,
 * where they evict each other, e.g. 2048 floats). */
static int read_b_in_place(const elbo_kernels *kern, const elbo_gemm_workspace *ws, elbo_operand b, size_t n)
{
    const size_t line = 64 / sizeof(float);
    if (!kern->gemm_ukernel_strided_a || b.dtype != ELBO_DTYPE_F32 || b.trans != ELBO_NOTRANS ||
        n % kern->blocking.nr != 0 || ws->pack_b == ELBO_PACK_B_ALWAYS)
        return 0;
    return ws->pack_b == ELBO_PACK_B_NEVER || (b.ld % line == 0 && (b.ld / line) % 4 != 0);
}

/* Whether C (m x n) is a narrow C under a transposed A that the C^T route or the tile with C's rows on the lanes
 * may take: not exactly one register panel wide (the tiles over C's own width then run every lane already), over
 * enough rows to fill the lanes, with a transposed A (a weight gradient dY^T X: op(A)'s rows lie along A's stored
 * rows), f32 operands, no epilogue (bias and activations are per column of C), and neither operand's packing forced
 * (tests force it to reach the packed paths). */
static int narrow_c_under_trans_a(const elbo_kernels *kern, const elbo_gemm_workspace *ws, size_t m, size_t n,
                                  size_t k, float alpha, elbo_operand a, elbo_operand b, const elbo_epilogue *epi)
{
    return n != kern->blocking.nr && m >= ELBO_NARROW_C_MIN_M && k > 0 && alpha != 0.0f && !has_epilogue(epi) &&
           a.trans == ELBO_TRANS && a.dtype == ELBO_DTYPE_F32 && b.dtype == ELBO_DTYPE_F32 &&
           ws->pack_a != ELBO_PACK_A_ALWAYS && ws->pack_b != ELBO_PACK_B_ALWAYS;
}

/* Whether elbo_gemm computes a narrow C (narrow_c_under_trans_a) with the table's tile that puts C's rows on the
 * vector lanes (gemm_lanes): every lane useful at any width up to its limit, A read in place, no scratch. */
static int compute_on_lanes(const elbo_kernels *kern, const elbo_gemm_workspace *ws, size_t m, size_t n, size_t k,
                            float alpha, elbo_operand a, elbo_operand b, const elbo_epilogue *epi)
{
    return kern->gemm_lanes && n >= kern->gemm_lanes_min_n && n <= kern->gemm_lanes_max_n &&
           narrow_c_under_trans_a(kern, ws, m, n, k, alpha, a, b, epi);
}

/* C (m x n) = alpha op(A) op(B) + beta C through gemm_lanes: one call for all of C's rows per K block, the blocks in
 * order (beta on the first, 1 after), so each element sums as the blocked loops sum it (one call for all rows: a
 * call per 16-row tile cost 7 % at 400 x 20 x 32). */
static void gemm_on_lanes(const elbo_kernels *kern, size_t m, size_t n, size_t k, float alpha, elbo_operand a,
                          elbo_operand b, float beta, float *c, size_t ldc)
{
    const size_t kcb = k_block_depth(k, &kern->blocking);
    const float *af = a.data, *bf = b.data;
    const size_t b_rs = b.trans == ELBO_NOTRANS ? b.ld : 1, b_cs = b.trans == ELBO_NOTRANS ? 1 : b.ld;
    for (size_t k0 = 0; k0 < k; k0 += kcb) {
        const size_t kc = k - k0 < kcb ? k - k0 : kcb;
        kern->gemm_lanes(kc, af + k0 * a.ld, a.ld, bf + k0 * b_rs, b_rs, b_cs, c, ldc, m, n, alpha,
                         k0 == 0 ? beta : 1.0f);
    }
}

/* Whether elbo_gemm computes a narrow C (narrow_c_under_trans_a) as C^T = op(B)^T op(A)^T: where the table asks
 * for it, up to the table's limit, with a C^T that fits the packed-A scratch (op(B)^T, the transposed product's A,
 * is read in place, so that scratch is free). op(A)^T is then A as stored, which the transposed product reads in
 * place as its B. Each element is then the same FMA chain over the same K blocks (a b = b a exactly, and the FMA
 * rounds once), finished with the same alpha and beta: the same bits, with the wide dimension on the vector lanes.
 * Measured with the AVX-512 tiles on Zen 4 (m = 400, K = 128, against the tiles over C's own width): N = 20 1.27x,
 * N = 4..28 1.07-2x, N = 16 0.95x, N = 31 0.97x; m = 64 1.05x. */
static int compute_transposed(const elbo_kernels *kern, const elbo_gemm_workspace *ws, size_t m, size_t n, size_t k,
                              float alpha, elbo_operand a, elbo_operand b, const elbo_epilogue *epi)
{
    return n <= kern->blocking.transposed_c_max_n && kern->gemm_ukernel_strided_a && m * n <= ws->packed_a_floats &&
           narrow_c_under_trans_a(kern, ws, m, n, k, alpha, a, b, epi);
}

/* The operand op(X)^T: the same storage read the other way. */
static elbo_operand transposed(elbo_operand x)
{
    x.trans = x.trans == ELBO_NOTRANS ? ELBO_TRANS : ELBO_NOTRANS;
    return x;
}

static void gemm_dispatch(const elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t n, size_t k,
                          float alpha, elbo_operand a, elbo_operand b, float beta, float *c, size_t ldc,
                          const elbo_epilogue *epi);

void elbo_gemm(const elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t n, size_t k, float alpha,
               elbo_operand a, elbo_operand b, float beta, float *c, size_t ldc, const elbo_epilogue *epi)
{
    if (compute_on_lanes(kern, ws, m, n, k, alpha, a, b, epi)) {
        gemm_on_lanes(kern, m, n, k, alpha, a, b, beta, c, ldc);
        return;
    }
    if (!compute_transposed(kern, ws, m, n, k, alpha, a, b, epi)) {
        gemm_dispatch(kern, ws, m, n, k, alpha, a, b, beta, c, ldc, epi);
        return;
    }
    /* C^T (n x m, row stride m) in the packed-A scratch: C's values first when beta reads them, then the
     * transposed product with op(B)^T read in place (nothing packs A), then back into C. */
    float *ct = ws->packed_a;
    if (beta != 0.0f)
        kern->transpose(ct, m, c, ldc, m, n);
    elbo_gemm_workspace in_place = *ws;
    in_place.pack_a = ELBO_PACK_A_NEVER;
    gemm_dispatch(kern, &in_place, n, m, k, alpha, transposed(b), transposed(a), beta, ct, m, NULL);
    kern->transpose(c, ldc, ct, m, n, m);
}

/* elbo_gemm without the transposed route: B read in place where it can be, else packed per call. */
static void gemm_dispatch(const elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t n, size_t k,
                          float alpha, elbo_operand a, elbo_operand b, float beta, float *c, size_t ldc,
                          const elbo_epilogue *epi)
{
    elbo_packed_b view;
    if (k > 0 && read_b_in_place(kern, ws, b, n) && elbo_packed_b_view(&view, kern, k, n, b.data, b.ld) == 0)
        gemm_blocked(kern, ws, m, 0, n, k, alpha, a, (elbo_operand){0}, &view, beta, c, ldc, epi);
    else
        gemm_blocked(kern, ws, m, 0, n, k, alpha, a, b, NULL, beta, c, ldc, epi);
}

void elbo_gemm_packed(const elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t n, size_t k,
                      float alpha, elbo_operand a, const elbo_packed_b *b, float beta, float *c, size_t ldc,
                      const elbo_epilogue *epi)
{
    assert(b->kernels == kern && b->k == k && b->n == n);
    gemm_blocked(kern, ws, m, 0, n, k, alpha, a, (elbo_operand){0}, b, beta, c, ldc, epi);
}

void elbo_gemm_packed_cols(const struct elbo_kernels *kern, elbo_gemm_workspace *ws, size_t m, size_t j0,
                           size_t j1, size_t k, float alpha, elbo_operand a, const elbo_packed_b *b, float beta,
                           float *c, size_t ldc, const elbo_epilogue *epi)
{
    assert(b->kernels == kern && b->k == k && j0 % kern->blocking.nr == 0 && j0 <= j1 && j1 <= b->n);
    gemm_blocked(kern, ws, m, j0, j1, k, alpha, a, (elbo_operand){0}, b, beta, c, ldc, epi);
}
