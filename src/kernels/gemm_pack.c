/* Packing routines: read op(A) / op(B) in any layout and dtype, write microkernel panels. */
#include "gemm_pack.h"

#include <string.h>

/* Copies n contiguous elements of row r starting at column c0 into dst[q * stride] (gather-free). */
static void copy_row_strided(float *dst, size_t stride, elbo_operand x, size_t r, size_t c0, size_t n)
{
    if (x.dtype == ELBO_DTYPE_U8) {
        const uint8_t *src = (const uint8_t *)x.data + r * x.ld + c0;
        for (size_t q = 0; q < n; q++)
            dst[q * stride] = (float)src[q] / 255.0f;
    } else {
        const float *src = (const float *)x.data + r * x.ld + c0;
        for (size_t q = 0; q < n; q++)
            dst[q * stride] = src[q];
    }
}

/* Copies n contiguous elements of row r from column c0 into contiguous dst. */
static void copy_row(float *dst, elbo_operand x, size_t r, size_t c0, size_t n)
{
    if (x.dtype == ELBO_DTYPE_U8) {
        const uint8_t *src = (const uint8_t *)x.data + r * x.ld + c0;
        for (size_t q = 0; q < n; q++)
            dst[q] = (float)src[q] / 255.0f;
    } else {
        memcpy(dst, (const float *)x.data + r * x.ld + c0, n * sizeof(float));
    }
}

/* Packs one panel: dst[p*w + i] = element (outer0 + i, depth0 + p) for i < rows, p < depth, zero for
 * rows <= i < w. depth_contiguous: that element is stored at X[outer][depth], else at X[depth][outer]. */
static void pack_panel(float *dst, elbo_operand x, int depth_contiguous, size_t outer0, size_t depth0,
                       size_t rows, size_t depth, size_t w)
{
    if (depth_contiguous) {
        /* Each panel row lies along a stored row: walk it once, write with stride w. */
        for (size_t i = 0; i < rows; i++)
            copy_row_strided(dst + i, w, x, outer0 + i, depth0, depth);
    } else {
        /* Each depth step is a stored row: copy `rows` contiguous elements per step. */
        for (size_t p = 0; p < depth; p++)
            copy_row(dst + p * w, x, depth0 + p, outer0, rows);
    }
    if (rows < w)
        for (size_t p = 0; p < depth; p++)
            memset(dst + p * w + rows, 0, (w - rows) * sizeof(float));
}

void elbo_pack_a_block(float *dst, elbo_operand a, size_t i0, size_t k0, size_t mc, size_t kc, size_t mr)
{
    /* op(A)[i][p]: NOTRANS stores A as M x K (depth contiguous); TRANS stores K x M. */
    int depth_contiguous = a.trans == ELBO_NOTRANS;
    for (size_t ir = 0; ir < mc; ir += mr) {
        size_t rows = mc - ir < mr ? mc - ir : mr;
        pack_panel(dst + ir * kc, a, depth_contiguous, i0 + ir, k0, rows, kc, mr);
    }
}

void x32_transpose_ukernel__scalar(float *dst, size_t ldd, const float *src, size_t lds, size_t rows, size_t cols)
{
    for (size_t i0 = 0; i0 < rows; i0 += 16) {
        size_t i1 = rows - i0 < 16 ? rows : i0 + 16;
        for (size_t j = 0; j < cols; j++)
            for (size_t i = i0; i < i1; i++)
                dst[j * ldd + i] = src[i * lds + j];
    }
}

void elbo_pack_b_panel(float *dst, elbo_operand b, size_t k0, size_t j0, size_t kc, size_t nc, size_t nr)
{
    /* op(B)[p][j]: NOTRANS stores B as K x N (panel columns contiguous); TRANS stores N x K. */
    int depth_contiguous = b.trans == ELBO_TRANS;
    for (size_t jr = 0; jr < nc; jr += nr) {
        size_t cols = nc - jr < nr ? nc - jr : nr;
        pack_panel(dst + jr * kc, b, depth_contiguous, j0 + jr, k0, cols, kc, nr);
    }
}
