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
#include <sleef.h>
#include <string.h>

/* Register tile. */
#define NEON_MR 8
#define NEON_NR 12

/* Store-phase parameters shared by every row of one tile. */
typedef struct {
    float alpha, beta;
    int has_bias;
    float32x4_t bias0, bias1, bias2; /* columns 0..11 of the tile's bias, zero past nr */
    elbo_activation act, grad;
    float slope;
} neon_store_params;

/* sigmoid(v) as the other tables compute it: (v >= 0 ? 1 : e) / (1 + e), e = exp(-|v|) (SLEEF, 1 ulp). */
static inline float32x4_t neon_sigmoid(float32x4_t v)
{
    const float32x4_t one = vdupq_n_f32(1.0f);
    float32x4_t e = Sleef_expf4_u10advsimd(vnegq_f32(vabsq_f32(v)));
    return vdivq_f32(vbslq_f32(vcgezq_f32(v), one, e), vaddq_f32(one, e));
}

/* act(v) for the activations past ReLU (gemm.h's definitions; tanh from SLEEF, 1 ulp). */
static inline float32x4_t neon_activate(float32x4_t v, elbo_activation act, float slope)
{
    switch (act) {
    case ELBO_ACT_LEAKY_RELU:
        return vbslq_f32(vcgtzq_f32(v), v, vmulq_n_f32(v, slope));
    case ELBO_ACT_TANH:
        return Sleef_tanhf4_u10advsimd(v);
    case ELBO_ACT_SIGMOID:
        return neon_sigmoid(v);
    case ELBO_ACT_SILU:
        return vmulq_f32(v, neon_sigmoid(v));
    default:
        return v;
    }
}

/* g times the derivative of `grad` past ReLU at the x whose forward saved y (gemm.h's definitions). */
static inline float32x4_t neon_times_derivative(float32x4_t g, float32x4_t y, elbo_activation grad, float slope)
{
    const float32x4_t one = vdupq_n_f32(1.0f);
    switch (grad) {
    case ELBO_ACT_LEAKY_RELU:
        return vbslq_f32(vcgtzq_f32(y), g, vmulq_n_f32(g, slope));
    case ELBO_ACT_TANH:
        return vmulq_f32(g, vsubq_f32(one, vmulq_f32(y, y)));
    case ELBO_ACT_SIGMOID:
        return vmulq_f32(vmulq_f32(g, vsubq_f32(one, y)), y);
    case ELBO_ACT_SILU: {
        const float32x4_t s = neon_sigmoid(y);
        return vmulq_f32(vmulq_f32(g, s), vaddq_f32(one, vmulq_f32(y, vsubq_f32(one, s))));
    }
    default:
        return g;
    }
}

/* Four columns of a row of C from their accumulators r (c, saved and pre hold 4 floats): alpha * r + beta * c
 * (c unread when beta == 0), + bias, pre-activation to pre (unless NULL), activation, derivative mask from saved
 * (read only for grad). The one epilogue of the table; with `full` 0 (a compile-time constant) only the basic
 * epilogue (elbo_tile_epilogue_is_basic) is compiled in, for the tiles that finish in registers. */
static inline __attribute__((always_inline)) float32x4_t neon_finish_vec(float32x4_t r, const float *c,
                                                                          float32x4_t bias, const float *saved,
                                                                          float *pre, const neon_store_params *p,
                                                                          const int full)
{
    r = vmulq_n_f32(r, p->alpha);
    if (p->beta != 0.0f)
        r = vfmaq_n_f32(r, vld1q_f32(c), p->beta);
    if (p->has_bias)
        r = vaddq_f32(r, bias);
    if (full && pre)
        vst1q_f32(pre, r);
    if (p->act == ELBO_ACT_RELU) /* 0 where v < 0: NaN propagates and -0 stays, as the scalar reference (and PyTorch) */
        r = vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(r), vcltzq_f32(r)));
    else if (full)
        r = neon_activate(r, p->act, p->slope);
    if (p->grad == ELBO_ACT_RELU) /* keep only the lanes where saved > 0 (a NaN clears its lane, as !(saved > 0)) */
        r = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(r), vcgtzq_f32(vld1q_f32(saved))));
    else if (full && p->grad)
        r = neon_times_derivative(r, vld1q_f32(saved), p->grad, p->slope);
    return r;
}

/* One 12-column row of C (c, saved and pre hold 12 floats; saved read only for grad, pre may be NULL) through
 * neon_finish_vec. */
static inline __attribute__((always_inline)) void neon_finish_row(float *c, const float *saved, float *pre,
                                                                   float32x4_t r0, float32x4_t r1, float32x4_t r2,
                                                                   const neon_store_params *p, const int full)
{
    r0 = neon_finish_vec(r0, c, p->bias0, saved, pre, p, full);
    r1 = neon_finish_vec(r1, c + 4, p->bias1, saved ? saved + 4 : NULL, pre ? pre + 4 : NULL, p, full);
    r2 = neon_finish_vec(r2, c + 8, p->bias2, saved ? saved + 8 : NULL, pre ? pre + 8 : NULL, p, full);
    vst1q_f32(c, r0);
    vst1q_f32(c + 4, r1);
    vst1q_f32(c + 8, r2);
}

/* Finishes the mr x nr valid part of the 8 x 12 tile held in `tile` into C (row stride ldc), with saved and pre
 * at the tile origin (row strides ld_saved, ld_pre): whole epilogue, rows with nr < 12 through 12-float stack
 * copies so that nothing past column nr-1 is read or written. Out of line, so the SLEEF calls spill no
 * accumulator. */
static __attribute__((noinline)) void neon_finish_tile(float *c, size_t ldc, const float tile[NEON_MR][NEON_NR],
                                                       size_t mr, size_t nr, const float *saved, size_t ld_saved,
                                                       float *pre, size_t ld_pre, const neon_store_params *p)
{
    for (size_t i = 0; i < mr; i++) {
        const float32x4_t r0 = vld1q_f32(tile[i]), r1 = vld1q_f32(tile[i] + 4), r2 = vld1q_f32(tile[i] + 8);
        float *crow = c + i * ldc, *prow = pre ? pre + i * ld_pre : NULL;
        const float *srow = p->grad ? saved + i * ld_saved : NULL;
        if (nr == NEON_NR) {
            neon_finish_row(crow, srow, prow, r0, r1, r2, p, 1);
            continue;
        }
        float cbuf[NEON_NR] = {0}, sbuf[NEON_NR] = {0}, pbuf[NEON_NR];
        if (p->beta != 0.0f)
            memcpy(cbuf, crow, nr * sizeof *crow);
        if (srow)
            memcpy(sbuf, srow, nr * sizeof *srow);
        neon_finish_row(cbuf, sbuf, prow ? pbuf : NULL, r0, r1, r2, p, 1);
        memcpy(crow, cbuf, nr * sizeof *crow);
        if (prow)
            memcpy(prow, pbuf, nr * sizeof *prow);
    }
}

/* The store-phase parameters of a tile with nr valid columns from alpha, beta and its epilogue (NULL: none). */
static neon_store_params neon_params(float alpha, float beta, const elbo_tile_epilogue *epi, size_t nr)
{
    neon_store_params p = {
        .alpha = alpha, .beta = beta, .has_bias = 0, .act = ELBO_ACT_NONE, .grad = ELBO_ACT_NONE,
        .bias0 = vdupq_n_f32(0.0f), .bias1 = vdupq_n_f32(0.0f), .bias2 = vdupq_n_f32(0.0f),
    };
    if (epi) {
        p.act = epi->act;
        p.grad = epi->grad;
        p.slope = epi->slope;
        if (epi->bias) {
            p.has_bias = 1;
            float bbuf[NEON_NR] = {0};
            memcpy(bbuf, epi->bias, nr * sizeof *bbuf);
            p.bias0 = vld1q_f32(bbuf);
            p.bias1 = vld1q_f32(bbuf + 4);
            p.bias2 = vld1q_f32(bbuf + 8);
        }
    }
    return p;
}

void elbo_neon_finish_tile(float *c, size_t ldc, const float tile[8][12], size_t mr, size_t nr, float alpha,
                           float beta, const elbo_tile_epilogue *epi)
{
    assert(mr >= 1 && mr <= NEON_MR && nr >= 1 && nr <= NEON_NR);
    const neon_store_params p = neon_params(alpha, beta, epi, nr);
    neon_finish_tile(c, ldc, tile, mr, nr, epi ? epi->saved : NULL, epi ? epi->ld_saved : 0,
                     epi ? epi->preact : NULL, epi ? epi->ld_preact : 0, &p);
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
 * * B (kc x 12, packed b[p*12+j]) + beta * C, then the epilogue epi (bias, activation, mask) if non-NULL. */
static void f32_gemm_ukernel_8x12__neon(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                        size_t mr, size_t nr, float alpha, float beta,
                                        const elbo_tile_epilogue *epi)
{
    assert(mr >= 1 && mr <= NEON_MR);
    assert(nr >= 1 && nr <= NEON_NR);
    assert(c != NULL);
    assert(kc == 0 || (a != NULL && b != NULL));
    assert(mr == 1 || ldc >= nr);
    assert(epi == NULL || epi->saved == NULL || mr == 1 || epi->ld_saved >= nr);
    assert(epi == NULL || epi->preact == NULL || mr == 1 || epi->ld_preact >= nr);

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

    const neon_store_params p = neon_params(alpha, beta, epi, nr);
    const float *saved = epi ? epi->saved : NULL;
    float *pre = epi ? epi->preact : NULL;
    const size_t ld_saved = epi ? epi->ld_saved : 0, ld_pre = epi ? epi->ld_preact : 0;

    if (mr == NEON_MR && nr == NEON_NR && elbo_tile_epilogue_is_basic(epi)) {
        /* Full tile, basic epilogue: straight from the accumulators to C. */
#define NEON_FINISH(i) \
        neon_finish_row(c + (i) * ldc, saved ? saved + (i) * ld_saved : NULL, NULL, c##i##0, c##i##1, c##i##2, &p, 0)
        NEON_FINISH(0); NEON_FINISH(1); NEON_FINISH(2); NEON_FINISH(3);
        NEON_FINISH(4); NEON_FINISH(5); NEON_FINISH(6); NEON_FINISH(7);
#undef NEON_FINISH
        return;
    }

    /* Edge tile or whole epilogue: store the accumulators to a stack tile, then finish only the mr valid rows. */
    float tile[NEON_MR][NEON_NR];
#define NEON_TO_TILE(i) \
    (vst1q_f32(tile[i], c##i##0), vst1q_f32(tile[i] + 4, c##i##1), vst1q_f32(tile[i] + 8, c##i##2))
    NEON_TO_TILE(0); NEON_TO_TILE(1); NEON_TO_TILE(2); NEON_TO_TILE(3);
    NEON_TO_TILE(4); NEON_TO_TILE(5); NEON_TO_TILE(6); NEON_TO_TILE(7);
#undef NEON_TO_TILE
    neon_finish_tile(c, ldc, (const float(*)[NEON_NR])tile, mr, nr, saved, ld_saved, pre, ld_pre, &p);
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
