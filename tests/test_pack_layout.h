/* The packed GEMM operand layouts written out as index formulas, for the packing tests to compare every pack
 * routine's output against (instead of against another pack routine).
 *
 *   A block (pack_a: rows [i0, i0+mc) x depth [k0, k0+kc) of op(A), panels mr rows wide):
 *     dst[(q*kc + p)*mr + i] = op(A)[i0 + q*mr + i][k0 + p]   if q*mr + i < mc, else +0.0f
 *   B panel (pack_b: depth [k0, k0+kc) x columns [j0, j0+nc) of op(B), panels nr columns wide):
 *     dst[(q*kc + p)*nr + j] = op(B)[k0 + p][j0 + q*nr + j]   if q*nr + j < nc, else +0.0f
 *   Whole packed B (elbo_pack_b of op(B), K x N): K cut into blocks (K <= kc_single: one block; else
 *   ceil(K / kc) blocks of depth ceil(K / blocks), the last one shorter); the block at depth kb, of depth kcb,
 *   starts at kb * round_up(N, nr) and holds a B panel of depth kcb over all N columns:
 *     data[kb*round_up(N, nr) + (q*kcb + (p - kb))*nr + j] = op(B)[p][q*nr + j]   if q*nr + j < N, else +0.0f
 *
 * for q < ceil(rows / width), p < depth, i < mr, j < nr. op(X)[r][c] is the stored element (r, c) when not
 * transposed, (c, r) when transposed; a uint8 element u reads as (float)u / 255.0f (gemm.h: value / 255,
 * correctly rounded in float). */
#ifndef ELBO_TEST_PACK_LAYOUT_H
#define ELBO_TEST_PACK_LAYOUT_H

#include "gemm.h"
#include "kernels.h"

#include <stddef.h>
#include <stdint.h>

/* op(X)[r][c] as a float, as the layouts above define it. */
static inline float layout_op(elbo_operand x, size_t r, size_t c)
{
    size_t sr = x.trans == ELBO_NOTRANS ? r : c, sc = x.trans == ELBO_NOTRANS ? c : r;
    if (x.dtype == ELBO_DTYPE_U8)
        return (float)((const uint8_t *)x.data)[sr * x.ld + sc] / 255.0f;
    return ((const float *)x.data)[sr * x.ld + sc];
}

/* Writes the expected A block (ceil(mc / mr) * mr * kc floats) into want. */
static inline void layout_a_block(float *want, elbo_operand a, size_t i0, size_t k0, size_t mc, size_t kc,
                                  size_t mr)
{
    for (size_t q = 0; q * mr < mc; q++)
        for (size_t p = 0; p < kc; p++)
            for (size_t i = 0; i < mr; i++)
                want[(q * kc + p) * mr + i] = q * mr + i < mc ? layout_op(a, i0 + q * mr + i, k0 + p) : 0.0f;
}

/* Writes the expected B panels (ceil(nc / nr) * nr * kc floats) into want. */
static inline void layout_b_panel(float *want, elbo_operand b, size_t k0, size_t j0, size_t kc, size_t nc,
                                  size_t nr)
{
    for (size_t q = 0; q * nr < nc; q++)
        for (size_t p = 0; p < kc; p++)
            for (size_t j = 0; j < nr; j++)
                want[(q * kc + p) * nr + j] = q * nr + j < nc ? layout_op(b, k0 + p, j0 + q * nr + j) : 0.0f;
}

/* Depth of the K blocks of a whole packed B of depth k under a table's blocking (the rule above). */
static inline size_t layout_k_block(const elbo_kernels *kern, size_t k)
{
    const elbo_gemm_blocking *bl = &kern->blocking;
    if (k == 0 || k <= bl->kc_single)
        return k;
    size_t blocks = (k + bl->kc - 1) / bl->kc;
    return (k + blocks - 1) / blocks;
}

/* Writes the expected whole packed B of op(B) (K x N; elbo_packed_b_floats(kern, k, n) floats) into want. */
static inline void layout_packed_b(float *want, const elbo_kernels *kern, elbo_operand b, size_t k, size_t n)
{
    const size_t nr = kern->blocking.nr, npad = (n + nr - 1) / nr * nr, kcb = layout_k_block(kern, k);
    for (size_t p = 0; p < k; p++) {
        size_t kb = p / kcb * kcb, depth = k - kb < kcb ? k - kb : kcb;
        for (size_t q = 0; q * nr < n; q++)
            for (size_t j = 0; j < nr; j++)
                want[kb * npad + (q * depth + (p - kb)) * nr + j] = q * nr + j < n ? layout_op(b, p, q * nr + j) : 0.0f;
    }
}

/* Index of the first float where got and want differ in any bit, or n if none. */
static inline size_t layout_first_mismatch(const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        union { float f; uint32_t u; } g = {got[i]}, w = {want[i]};
        if (g.u != w.u)
            return i;
    }
    return n;
}

#endif
