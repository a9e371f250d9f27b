/* NEON (AArch64 Advanced SIMD) GEMM microkernel: an 8 x 12 float32 register tile.
 *
 * The tile lives in 24 float32x4 accumulators (8 rows x 3 vectors of 4 columns). Each k step
 * loads one column of the packed A panel (8 floats, 2 q-registers) and one row of the packed
 * B panel (12 floats, 3 q-registers) and issues 24 fmla-by-element: row i of the tile gets
 * B row * A[i] with A[i] taken as a lane of the A register, so no broadcasts are needed.
 * 24 accumulators + 5 operands = 29 of the 32 vector registers. */
#include "gemm_depth.h"
#include "kernels.h"

#include <arm_neon.h>
#include <assert.h>
#include <string.h>

/* Register tile. */
#define NEON_MR 8
#define NEON_NR 12

/* Store-phase parameters shared by every row of one tile. */
typedef struct {
    float alpha, beta;
    int has_bias, relu;
    float32x4_t bias0, bias1, bias2; /* columns 0..11 of the tile's bias, zero past nr */
} neon_store_params;

/* One 12-column row of C (c and mask hold 12 readable floats): c = alpha*r + beta*c (c unread when
 * beta == 0), + bias, ReLU, then 0 where !(mask > 0) (mask may be NULL). */
static inline void neon_finish_row(float *c, const float *mask, float32x4_t r0, float32x4_t r1,
                                   float32x4_t r2, const neon_store_params *p)
{
    r0 = vmulq_n_f32(r0, p->alpha);
    r1 = vmulq_n_f32(r1, p->alpha);
    r2 = vmulq_n_f32(r2, p->alpha);
    if (p->beta != 0.0f) {
        r0 = vfmaq_n_f32(r0, vld1q_f32(c), p->beta);
        r1 = vfmaq_n_f32(r1, vld1q_f32(c + 4), p->beta);
        r2 = vfmaq_n_f32(r2, vld1q_f32(c + 8), p->beta);
    }
    if (p->has_bias) {
        r0 = vaddq_f32(r0, p->bias0);
        r1 = vaddq_f32(r1, p->bias1);
        r2 = vaddq_f32(r2, p->bias2);
    }
    if (p->relu) {
        /* 0 where v < 0: NaN propagates and -0 stays, bit for bit as the scalar reference (and PyTorch). */
        r0 = vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(r0), vcltzq_f32(r0)));
        r1 = vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(r1), vcltzq_f32(r1)));
        r2 = vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(r2), vcltzq_f32(r2)));
    }
    if (mask) {
        /* Keep only the lanes where mask > 0 (a NaN mask clears its lane, as !(mask > 0) does). */
        r0 = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(r0), vcgtzq_f32(vld1q_f32(mask))));
        r1 = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(r1), vcgtzq_f32(vld1q_f32(mask + 4))));
        r2 = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(r2), vcgtzq_f32(vld1q_f32(mask + 8))));
    }
    vst1q_f32(c, r0);
    vst1q_f32(c + 4, r1);
    vst1q_f32(c + 8, r2);
}

/* One row of C with only nr < 12 valid columns: as neon_finish_row, through 12-float stack copies
 * so that nothing past c[nr-1] or mask[nr-1] is read or written. */
static void neon_finish_row_partial(float *c, const float *mask, size_t nr, float32x4_t r0,
                                    float32x4_t r1, float32x4_t r2, const neon_store_params *p)
{
    float cbuf[NEON_NR] = {0};
    float mbuf[NEON_NR] = {0};
    if (p->beta != 0.0f)
        memcpy(cbuf, c, nr * sizeof *c);
    if (mask)
        memcpy(mbuf, mask, nr * sizeof *mask);
    neon_finish_row(cbuf, mask ? mbuf : NULL, r0, r1, r2, p);
    memcpy(c, cbuf, nr * sizeof *c);
}

/* One k step: acc (8x12) += A column (8, at ap) * B row (12, at bp), as 24 fmla-by-element. */
#define NEON_GEMM_STEP(ap, bp)                                                       \
    do {                                                                             \
        const float32x4_t a0 = vld1q_f32(ap), a1 = vld1q_f32((ap) + 4);              \
        const float32x4_t b0 = vld1q_f32(bp), b1 = vld1q_f32((bp) + 4),              \
                          b2 = vld1q_f32((bp) + 8);                                  \
        c00 = vfmaq_laneq_f32(c00, b0, a0, 0); c01 = vfmaq_laneq_f32(c01, b1, a0, 0); \
        c02 = vfmaq_laneq_f32(c02, b2, a0, 0);                                       \
        c10 = vfmaq_laneq_f32(c10, b0, a0, 1); c11 = vfmaq_laneq_f32(c11, b1, a0, 1); \
        c12 = vfmaq_laneq_f32(c12, b2, a0, 1);                                       \
        c20 = vfmaq_laneq_f32(c20, b0, a0, 2); c21 = vfmaq_laneq_f32(c21, b1, a0, 2); \
        c22 = vfmaq_laneq_f32(c22, b2, a0, 2);                                       \
        c30 = vfmaq_laneq_f32(c30, b0, a0, 3); c31 = vfmaq_laneq_f32(c31, b1, a0, 3); \
        c32 = vfmaq_laneq_f32(c32, b2, a0, 3);                                       \
        c40 = vfmaq_laneq_f32(c40, b0, a1, 0); c41 = vfmaq_laneq_f32(c41, b1, a1, 0); \
        c42 = vfmaq_laneq_f32(c42, b2, a1, 0);                                       \
        c50 = vfmaq_laneq_f32(c50, b0, a1, 1); c51 = vfmaq_laneq_f32(c51, b1, a1, 1); \
        c52 = vfmaq_laneq_f32(c52, b2, a1, 1);                                       \
        c60 = vfmaq_laneq_f32(c60, b0, a1, 2); c61 = vfmaq_laneq_f32(c61, b1, a1, 2); \
        c62 = vfmaq_laneq_f32(c62, b2, a1, 2);                                       \
        c70 = vfmaq_laneq_f32(c70, b0, a1, 3); c71 = vfmaq_laneq_f32(c71, b1, a1, 3); \
        c72 = vfmaq_laneq_f32(c72, b2, a1, 3);                                       \
    } while (0)

/* C tile (mr x nr valid of 8 x 12, row stride ldc) = alpha * A (8 x kc, packed a[p*8+i])
 * * B (kc x 12, packed b[p*12+j]) + beta * C, then the epilogue epi (bias, ReLU, mask) if non-NULL. */
static void f32_gemm_ukernel_8x12__neon(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                        size_t mr, size_t nr, float alpha, float beta,
                                        const elbo_tile_epilogue *epi)
{
    assert(mr >= 1 && mr <= NEON_MR);
    assert(nr >= 1 && nr <= NEON_NR);
    assert(c != NULL);
    assert(kc == 0 || (a != NULL && b != NULL));
    assert(mr == 1 || ldc >= nr);
    assert(epi == NULL || epi->mask == NULL || mr == 1 || epi->ld_mask >= nr);

    float32x4_t c00 = vdupq_n_f32(0.0f), c01 = c00, c02 = c00;
    float32x4_t c10 = c00, c11 = c00, c12 = c00;
    float32x4_t c20 = c00, c21 = c00, c22 = c00;
    float32x4_t c30 = c00, c31 = c00, c32 = c00;
    float32x4_t c40 = c00, c41 = c00, c42 = c00;
    float32x4_t c50 = c00, c51 = c00, c52 = c00;
    float32x4_t c60 = c00, c61 = c00, c62 = c00;
    float32x4_t c70 = c00, c71 = c00, c72 = c00;

    /* k loop, unrolled by 4 by the compiler. The unroll is left to the RTL unroller on purpose: with
     * the steps unrolled by hand, GCC 12's pre-RA scheduler hoists the next steps' loads above the
     * current fmlas, needs more than the 3 free registers and spills accumulators inside the loop;
     * unrolled after that point it interleaves each step's loads as the previous step frees its
     * operands, with no spills and no register moves (checked for generic, neoverse-n1, cortex-a76). */
#pragma GCC unroll 4
    for (size_t k = 0; k < kc; k++) {
        NEON_GEMM_STEP(a, b);
        a += NEON_MR;
        b += NEON_NR;
    }

    neon_store_params p = {
        .alpha = alpha, .beta = beta, .has_bias = 0, .relu = 0,
        .bias0 = vdupq_n_f32(0.0f), .bias1 = vdupq_n_f32(0.0f), .bias2 = vdupq_n_f32(0.0f),
    };
    const float *mask = NULL;
    size_t ld_mask = 0;
    if (epi) {
        p.relu = epi->relu != 0;
        mask = epi->mask;
        ld_mask = epi->ld_mask;
        if (epi->bias) {
            p.has_bias = 1;
            if (nr == NEON_NR) {
                p.bias0 = vld1q_f32(epi->bias);
                p.bias1 = vld1q_f32(epi->bias + 4);
                p.bias2 = vld1q_f32(epi->bias + 8);
            } else {
                float bbuf[NEON_NR] = {0};
                memcpy(bbuf, epi->bias, nr * sizeof *bbuf);
                p.bias0 = vld1q_f32(bbuf);
                p.bias1 = vld1q_f32(bbuf + 4);
                p.bias2 = vld1q_f32(bbuf + 8);
            }
        }
    }

    if (mr == NEON_MR && nr == NEON_NR) {
        /* Full tile: straight from the accumulators to C. */
#define NEON_FINISH(i) \
        neon_finish_row(c + (i) * ldc, mask ? mask + (i) * ld_mask : NULL, c##i##0, c##i##1, c##i##2, &p)
        NEON_FINISH(0); NEON_FINISH(1); NEON_FINISH(2); NEON_FINISH(3);
        NEON_FINISH(4); NEON_FINISH(5); NEON_FINISH(6); NEON_FINISH(7);
#undef NEON_FINISH
        return;
    }

    /* Edge tile: store the accumulators to a stack tile, then finish only the mr valid rows. */
    float tile[NEON_MR][NEON_NR];
#define NEON_TO_TILE(i) \
    (vst1q_f32(tile[i], c##i##0), vst1q_f32(tile[i] + 4, c##i##1), vst1q_f32(tile[i] + 8, c##i##2))
    NEON_TO_TILE(0); NEON_TO_TILE(1); NEON_TO_TILE(2); NEON_TO_TILE(3);
    NEON_TO_TILE(4); NEON_TO_TILE(5); NEON_TO_TILE(6); NEON_TO_TILE(7);
#undef NEON_TO_TILE
    for (size_t i = 0; i < mr; i++) {
        const float32x4_t r0 = vld1q_f32(tile[i]), r1 = vld1q_f32(tile[i] + 4), r2 = vld1q_f32(tile[i] + 8);
        float *crow = c + i * ldc;
        const float *mrow = mask ? mask + i * ld_mask : NULL;
        if (nr == NEON_NR)
            neon_finish_row(crow, mrow, r0, r1, r2, &p);
        else
            neon_finish_row_partial(crow, mrow, nr, r0, r1, r2, &p);
    }
}

/* Installs the 8x12 NEON microkernel, its register tile and the shared K blocking (gemm_depth.h) into the
 * kernel table k; MC, NC and the flags come from the chip config (chips.c), applied by dispatch.c. */
void elbo_gemm_register_neon(elbo_kernels *k)
{
    k->gemm_ukernel = f32_gemm_ukernel_8x12__neon;
    k->gemm_ukernel_name = "f32_gemm_ukernel_8x12__neon";
    k->blocking = (elbo_gemm_blocking){
        .mr = NEON_MR, .nr = NEON_NR, .kc = ELBO_GEMM_FMA_KC, .kc_single = ELBO_GEMM_FMA_KC_SINGLE,
    };
}
