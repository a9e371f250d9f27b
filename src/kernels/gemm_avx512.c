/* AVX-512 microkernels: a 12 x 32 register tile over two B panels (24 zmm accumulators) where two full panels
 * remain, else a 12 x 16 tile (12 zmm accumulators, one 16-wide B row per depth step, A broadcast into the FMA
 * from memory), each compiled per row count. B panels are the AVX2 path's 16-wide ones, so
 * packed weights, edge tiles up to 8 columns (the AVX2 12 x 8 kernel) and the K blocking are shared with it:
 * every C element is the same FMA chain with the same finishing operations, and results equal the AVX2
 * path's bit for bit. */
#include "finish_avx512.h"
#include "transpose_avx512.h"
#include "kernels.h"

#include <assert.h>
#include <immintrin.h>
#include <sleef.h>
#include <stdint.h>

#define MR 12
#define NR 16
/* `panels` value of the 12 x 24 tile: a full 16-column panel and the first 8 columns of the next one. */
#define HALF_PANEL 3
/* C at most this narrow (over many rows) is computed as C^T (gemm.c, compute_transposed): up to 28 columns the
 * 32-column tiles of C^T beat the tiles over C's own width (N = 28 1.07x, N = 31 0.97x; m = 400, K = 128). */
#ifndef TRANSPOSED_C_MAX_N
#define TRANSPOSED_C_MAX_N 28
#endif
/* Widest tile the 16 + 8 tile serves. */
#define NR_HALF (NR + 8)
/* The C tile is fetched when a tile starts and again this many depth steps before it ends: where C's row
 * stride is a multiple of 4 KiB (2048 floats), the tile's rows share two L1 sets, the B panels streaming
 * through evict them, and the finishing loads would wait on L2 or memory (2048^3: +4-5 %). */
#ifndef C_REFETCH_STEPS
#define C_REFETCH_STEPS 64
#endif

/* Scalars of the store phase shared by all rows of a tile. */
typedef struct {
    float alpha, beta;
    const float *bias;  /* NULL or the tile's bias */
    float *preact;      /* NULL or the pre-activation output at the tile origin */
    size_t ld_preact;
    const float *saved; /* NULL or the forward's saved values at the tile origin (grad) */
    size_t ld_saved;
    elbo_activation act, grad;
    float slope;
    __mmask16 cols;     /* the tile's valid columns */
} store_params;

/* sigmoid(v) as the other tables compute it: (v >= 0 ? 1 : e) / (1 + e), e = exp(-|v|); SLEEF's AVX-512 expf
 * gives the AVX2 one's bits on every x <= 0 (elbo_sleef_avx512_mismatches), so the lanes are the AVX2 path's. */
static inline __m512 sigmoid_zmm(__m512 v)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512 e = Sleef_expf16_u10avx512f(_mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(v), sign)));
    __m512 num = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ), e, one);
    return _mm512_div_ps(num, _mm512_add_ps(one, e));
}

/* act(v) for the activations past ReLU (gemm.h's definitions, the AVX2 path's operations); tanh is SLEEF's,
 * the AVX2 one's bits on every input (elbo_sleef_avx512_tanh_mismatches). */
static inline __m512 activate_zmm(__m512 v, elbo_activation act, float slope)
{
    switch (act) {
    case ELBO_ACT_LEAKY_RELU:
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ),
                                    _mm512_mul_ps(v, _mm512_set1_ps(slope)), v);
    case ELBO_ACT_TANH:
        return Sleef_tanhf16_u10avx512f(v);
    case ELBO_ACT_SIGMOID:
        return sigmoid_zmm(v);
    case ELBO_ACT_SILU:
        return _mm512_mul_ps(v, sigmoid_zmm(v));
    default:
        return v;
    }
}

/* g times the derivative of `grad` past ReLU at the x whose forward saved y (gemm.h's definitions). */
static inline __m512 times_derivative_zmm(__m512 g, __m512 y, elbo_activation grad, float slope)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    switch (grad) {
    case ELBO_ACT_LEAKY_RELU:
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_GT_OQ),
                                    _mm512_mul_ps(g, _mm512_set1_ps(slope)), g);
    case ELBO_ACT_TANH:
        return _mm512_mul_ps(g, _mm512_sub_ps(one, _mm512_mul_ps(y, y)));
    case ELBO_ACT_SIGMOID:
        return _mm512_mul_ps(_mm512_mul_ps(g, _mm512_sub_ps(one, y)), y);
    case ELBO_ACT_SILU: {
        const __m512 s = sigmoid_zmm(y);
        return _mm512_mul_ps(_mm512_mul_ps(g, s), _mm512_add_ps(one, _mm512_mul_ps(y, _mm512_sub_ps(one, s))));
    }
    default:
        return g;
    }
}

/* Finishes and stores tile row i from its accumulator v: alpha, beta * C, bias, pre-activation, activation,
 * derivative mask (the AVX2 path's operations per element), loads and stores masked to the valid columns (masked
 * lanes are never touched). The one epilogue of every tile shape; with `full` 0 (a compile-time constant) only
 * the basic epilogue (elbo_tile_epilogue_is_basic) is compiled in, for the tiles that finish in registers. */
static inline __attribute__((always_inline)) void finish_row(float *c, size_t ldc, size_t i, __m512 v,
                                                              const store_params *sp, const int full)
{
    float *cr = c + i * ldc;
    const __mmask16 m = sp->cols;
    v = elbo_avx512_alpha_beta(v, cr, m, sp->alpha, sp->beta);
    if (sp->bias)
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, sp->bias));
    if (full && sp->preact)
        _mm512_mask_storeu_ps(sp->preact + i * sp->ld_preact, m, v);
    if (sp->act == ELBO_ACT_RELU) /* max(0, v) keeps NaN, as PyTorch's relu does */
        v = _mm512_max_ps(_mm512_setzero_ps(), v);
    else if (full)
        v = activate_zmm(v, sp->act, sp->slope);
    if (sp->grad == ELBO_ACT_RELU) {
        __m512 mrow = _mm512_maskz_loadu_ps(m, sp->saved + i * sp->ld_saved);
        v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(mrow, _mm512_setzero_ps(), _CMP_GT_OQ), v);
    } else if (full && sp->grad) {
        v = times_derivative_zmm(v, _mm512_maskz_loadu_ps(m, sp->saved + i * sp->ld_saved), sp->grad, sp->slope);
    }
    _mm512_mask_storeu_ps(cr, m, v);
}

/* The store-phase scalars of a tile's left (panel 0) or right (panel 1) 16 columns, nr valid columns in all, from
 * alpha, beta and the tile epilogue (NULL: none). */
static inline __attribute__((always_inline)) store_params make_store_params(float alpha, float beta,
                                                                            const elbo_tile_epilogue *epi, int panel,
                                                                            size_t left_cols, size_t nr)
{
    const size_t cols = panel ? nr - left_cols : left_cols, off = panel ? NR : 0;
    store_params sp = {.alpha = alpha, .beta = beta, .cols = (__mmask16)((1u << cols) - 1)};
    if (epi) {
        sp.bias = epi->bias ? epi->bias + off : NULL;
        sp.preact = epi->preact ? epi->preact + off : NULL;
        sp.saved = epi->saved ? epi->saved + off : NULL;
        sp.ld_preact = epi->ld_preact;
        sp.ld_saved = epi->ld_saved;
        sp.act = epi->act;
        sp.grad = epi->grad;
        sp.slope = epi->slope;
    }
    return sp;
}

/* Finishes and stores the rows x nr tile (16 * panels columns at most) whose row i is acc[2 i] (and acc[2 i + 1]
 * for the second panel, whose first column is left_cols) with the whole epilogue: out of line, so the SLEEF
 * calls spill no accumulator of the tile loops. */
static __attribute__((noinline)) void finish_tile_full(float *c, size_t ldc, int rows, int panels, const __m512 *acc,
                                                       size_t left_cols, size_t nr, float alpha, float beta,
                                                       const elbo_tile_epilogue *epi)
{
    const store_params left = make_store_params(alpha, beta, epi, 0, left_cols, nr);
    const store_params right = make_store_params(alpha, beta, epi, 1, left_cols, nr);
    for (int i = 0; i < rows; i++) {
        finish_row(c, ldc, (size_t)i, acc[2 * i], &left, 1);
        if (panels > 1)
            finish_row(c + NR, ldc, (size_t)i, acc[2 * i + 1], &right, 1);
    }
}

/* One depth step of row I: the broadcast A (I, p) times the B row of each panel the tile covers (the second
 * panel's first 8 columns only, in a ymm accumulator, for the 16 + 8 tile). */
#define ROW_STEP(I, BASE, OFF)                                                                                 \
    if (rows > I) {                                                                                            \
        const __m512 x = _mm512_set1_ps(BASE[OFF]);                                                            \
        c##I = _mm512_fmadd_ps(x, b0, c##I);                                                                   \
        if (panels == HALF_PANEL)                                                                              \
            h##I = _mm256_fmadd_ps(_mm512_castps512_ps256(x), bh, h##I);                                       \
        else if (panels > 1)                                                                                   \
            d##I = _mm512_fmadd_ps(x, b1, d##I);                                                               \
    }

/* Row I's accumulator of the second panel: d##I, or h##I widened with zeros (its columns past 8 are never
 * stored: the tile is at most NR_HALF wide). */
#define RIGHT_ACC(I) (panels == HALF_PANEL ? _mm512_zextps256_ps512(h##I) : d##I)

/* Stores tile row I's accumulators (c##I, and the second panel's) to C as they are, masked to the valid
 * columns. */
#define STORE_ROW(I)                                                                                           \
    if (rows > I) {                                                                                            \
        _mm512_mask_storeu_ps(c + (size_t)I * ldc, left.cols, c##I);                                           \
        if (panels > 1)                                                                                        \
            _mm512_mask_storeu_ps(c + (size_t)I * ldc + NR, right.cols, RIGHT_ACC(I));                         \
    }

/* Finishes and stores tile row I (finish_row on each panel's accumulator). */
#define FINISH_ROW(I)                                                                                          \
    if (rows > I) {                                                                                            \
        finish_row(c, ldc, I, c##I, &left, 0);                                                                 \
        if (panels > 1)                                                                                        \
            finish_row(c + NR, ldc, I, RIGHT_ACC(I), &right, 0);                                               \
    }

/* Fetches the rows x (16 * panels) C tile at c towards L1. */
static inline __attribute__((always_inline)) void prefetch_c_tile(const int rows, const int panels, const float *c,
                                                                   size_t ldc)
{
    for (int i = 0; i < rows; i++)
        for (int q = 0; q < panels && q < 2; q++)
            _mm_prefetch((const char *)(c + (size_t)i * ldc + (size_t)q * NR), _MM_HINT_T0);
}

/* C (rows x nr of 12 x 16 panels) = alpha * A (rows x kc, element (i,p) at a[i*a_rs + p*a_cs]) * `panels` B
 * panels (kc x 16 each, depth step p at b + p*b_rs, the second b_ps floats after the first) + beta * C, then
 * epi. rows (1..12) and panels (1, 2, HALF_PANEL) are compile-time constants, so no FMA or register is spent past the
 * tile. One panel: 12 accumulators, and one load or broadcast per FMA bounds the loop to about 82 % of a Zen 5
 * core's FMA peak; two panels: 24 accumulators, two FMAs per broadcast, about 97 % in L1 (the second panel
 * is loaded whole: full, or packed and zero-padded; nr > 16 then); HALF_PANEL: 12 zmm and 12 ymm
 * accumulators over 16 + 8 columns (a ymm FMA costs half a zmm one on Zen 4 and 5, so a 17..24-column strip, e.g.
 * a weight gradient with N = 20, runs 20 of 24 lanes instead of 20 of 32). Every element is one FMA chain over p from
 * zero, then the same finishing operations, whatever the tile, so the bits do not depend on it. */
static inline __attribute__((always_inline)) void tile_body(const int rows, const int panels, size_t kc,
                                                             const float *restrict a, size_t a_rs, size_t a_cs,
                                                             const float *restrict b, size_t b_rs, size_t b_ps,
                                                             float *restrict c, size_t ldc, size_t nr, float alpha,
                                                             float beta, const elbo_tile_epilogue *epi)
{
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0;
    __m512 c9 = c0, c10 = c0, c11 = c0, d0 = c0, d1 = c0, d2 = c0, d3 = c0, d4 = c0, d5 = c0, d6 = c0, d7 = c0;
    __m512 d8 = c0, d9 = c0, d10 = c0, d11 = c0;
    __m256 h0 = _mm256_setzero_ps(), h1 = h0, h2 = h0, h3 = h0, h4 = h0, h5 = h0, h6 = h0, h7 = h0, h8 = h0;
    __m256 h9 = h0, h10 = h0, h11 = h0;
    prefetch_c_tile(rows, panels, c, ldc);
    const size_t o1 = a_rs, o2 = 2 * a_rs, o3 = 3 * a_rs, o4 = 4 * a_rs, o5 = 5 * a_rs;
    const float *a6 = a + 6 * a_rs, *b2 = b + b_ps;
    /* Two parts: C is fetched again between them, C_REFETCH_STEPS depth steps before the end. */
    const size_t refetch_at = kc > C_REFETCH_STEPS ? kc - C_REFETCH_STEPS : 0;
    size_t p = 0;
    for (int part = 0; part < 2; part++) {
        const size_t end = part == 0 ? refetch_at : kc;
#pragma GCC unroll 2
        for (; p < end; p++) {
            const __m512 b0 = _mm512_loadu_ps(b), b1 = panels == 2 ? _mm512_loadu_ps(b2) : b0;
            const __m256 bh = panels == HALF_PANEL ? _mm256_loadu_ps(b2) : _mm512_castps512_ps256(b0);
            ROW_STEP(0, a, 0)
            ROW_STEP(1, a, o1)
            ROW_STEP(2, a, o2)
            ROW_STEP(3, a, o3)
            ROW_STEP(4, a, o4)
            ROW_STEP(5, a, o5)
            ROW_STEP(6, a6, 0)
            ROW_STEP(7, a6, o1)
            ROW_STEP(8, a6, o2)
            ROW_STEP(9, a6, o3)
            ROW_STEP(10, a6, o4)
            ROW_STEP(11, a6, o5)
            a += a_cs;
            if (rows > 6)
                a6 += a_cs;
            b += b_rs;
            if (panels > 1)
                b2 += b_rs;
        }
        if (part == 0 && refetch_at > 0)
            prefetch_c_tile(rows, panels, c, ldc);
    }
    const size_t left_cols = panels > 1 ? NR : nr;
    const store_params left = make_store_params(alpha, beta, epi, 0, left_cols, nr);
    const store_params right = make_store_params(alpha, beta, epi, 1, left_cols, nr);
    /* Row by row with the accumulators named (an array of them would go through the stack); without alpha,
     * beta or an epilogue the rows are stored as they are; the activations past ReLU go out of line. */
    if (alpha == 1.0f && beta == 0.0f && !epi) {
        STORE_ROW(0) STORE_ROW(1) STORE_ROW(2) STORE_ROW(3) STORE_ROW(4) STORE_ROW(5)
        STORE_ROW(6) STORE_ROW(7) STORE_ROW(8) STORE_ROW(9) STORE_ROW(10) STORE_ROW(11)
    } else if (elbo_tile_epilogue_is_basic(epi)) {
        FINISH_ROW(0) FINISH_ROW(1) FINISH_ROW(2) FINISH_ROW(3) FINISH_ROW(4) FINISH_ROW(5)
        FINISH_ROW(6) FINISH_ROW(7) FINISH_ROW(8) FINISH_ROW(9) FINISH_ROW(10) FINISH_ROW(11)
    } else {
        const __m512 acc[2 * MR] = {c0, RIGHT_ACC(0), c1, RIGHT_ACC(1), c2,  RIGHT_ACC(2),  c3,  RIGHT_ACC(3),
                                    c4, RIGHT_ACC(4), c5, RIGHT_ACC(5), c6,  RIGHT_ACC(6),  c7,  RIGHT_ACC(7),
                                    c8, RIGHT_ACC(8), c9, RIGHT_ACC(9), c10, RIGHT_ACC(10), c11, RIGHT_ACC(11)};
        finish_tile_full(c, ldc, rows, panels, acc, left_cols, nr, alpha, beta, epi);
    }
}

typedef void (*tile_fn)(size_t kc, const float *a, size_t a_rs, size_t a_cs, const float *b, size_t b_rs,
                        size_t b_ps, float *c, size_t ldc, size_t nr, float alpha, float beta,
                        const elbo_tile_epilogue *epi);

/* Defines NAME: tile_body compiled for ROWS rows over PANELS panels, out of line (edge tiles; the full-height
 * tiles are inlined in the kernel entry points so their loops and register allocation stay those of one
 * body). */
#define DEFINE_TILE(NAME, ROWS, PANELS)                                                                        \
    static void NAME(size_t kc, const float *a, size_t a_rs, size_t a_cs, const float *b, size_t b_rs,          \
                     size_t b_ps, float *c, size_t ldc, size_t nr, float alpha, float beta,                     \
                     const elbo_tile_epilogue *epi)                                                            \
    {                                                                                                          \
        tile_body(ROWS, PANELS, kc, a, a_rs, a_cs, b, b_rs, b_ps, c, ldc, nr, alpha, beta, epi);               \
    }

DEFINE_TILE(zmm16_rows1, 1, 1)
DEFINE_TILE(zmm16_rows2, 2, 1)
DEFINE_TILE(zmm16_rows3, 3, 1)
DEFINE_TILE(zmm16_rows4, 4, 1)
DEFINE_TILE(zmm16_rows5, 5, 1)
DEFINE_TILE(zmm16_rows6, 6, 1)
DEFINE_TILE(zmm16_rows7, 7, 1)
DEFINE_TILE(zmm16_rows8, 8, 1)
DEFINE_TILE(zmm16_rows9, 9, 1)
DEFINE_TILE(zmm16_rows10, 10, 1)
DEFINE_TILE(zmm16_rows11, 11, 1)
DEFINE_TILE(zmm32_rows1, 1, 2)
DEFINE_TILE(zmm32_rows2, 2, 2)
DEFINE_TILE(zmm32_rows3, 3, 2)
DEFINE_TILE(zmm32_rows4, 4, 2)
DEFINE_TILE(zmm32_rows5, 5, 2)
DEFINE_TILE(zmm32_rows6, 6, 2)
DEFINE_TILE(zmm32_rows7, 7, 2)
DEFINE_TILE(zmm32_rows8, 8, 2)
DEFINE_TILE(zmm32_rows9, 9, 2)
DEFINE_TILE(zmm32_rows10, 10, 2)
DEFINE_TILE(zmm32_rows11, 11, 2)
DEFINE_TILE(zmm24_rows1, 1, HALF_PANEL)
DEFINE_TILE(zmm24_rows2, 2, HALF_PANEL)
DEFINE_TILE(zmm24_rows3, 3, HALF_PANEL)
DEFINE_TILE(zmm24_rows4, 4, HALF_PANEL)
DEFINE_TILE(zmm24_rows5, 5, HALF_PANEL)
DEFINE_TILE(zmm24_rows6, 6, HALF_PANEL)
DEFINE_TILE(zmm24_rows7, 7, HALF_PANEL)
DEFINE_TILE(zmm24_rows8, 8, HALF_PANEL)
DEFINE_TILE(zmm24_rows9, 9, HALF_PANEL)
DEFINE_TILE(zmm24_rows10, 10, HALF_PANEL)
DEFINE_TILE(zmm24_rows11, 11, HALF_PANEL)

/* Edge tiles by row count (index mr; the full-height entries are unused): one panel, two panels, 16 + 8 columns. */
static const tile_fn edge16[MR] = {NULL,        zmm16_rows1, zmm16_rows2, zmm16_rows3, zmm16_rows4,  zmm16_rows5,
                                   zmm16_rows6, zmm16_rows7, zmm16_rows8, zmm16_rows9, zmm16_rows10, zmm16_rows11};
static const tile_fn edge32[MR] = {NULL,        zmm32_rows1, zmm32_rows2, zmm32_rows3, zmm32_rows4,  zmm32_rows5,
                                   zmm32_rows6, zmm32_rows7, zmm32_rows8, zmm32_rows9, zmm32_rows10, zmm32_rows11};
static const tile_fn edge24[MR] = {NULL,        zmm24_rows1, zmm24_rows2, zmm24_rows3, zmm24_rows4,  zmm24_rows5,
                                   zmm24_rows6, zmm24_rows7, zmm24_rows8, zmm24_rows9, zmm24_rows10, zmm24_rows11};

/* C (mr x nr of 12 x 16) = alpha * A panel (12 x kc, packed) * B panel (kc x 16) + beta * C, then epi. */
static void f32_gemm_ukernel_12x16__avx512f(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                            size_t mr, size_t nr, float alpha, float beta,
                                            const elbo_tile_epilogue *epi)
{
    assert(mr >= 1 && mr <= MR && nr >= 1 && nr <= NR);
    if (mr == MR)
        tile_body(MR, 1, kc, a, 1, MR, b, NR, 0, c, ldc, nr, alpha, beta, epi);
    else
        edge16[mr](kc, a, 1, MR, b, NR, 0, c, ldc, nr, alpha, beta, epi);
}

/* As above with A read in place (strides a_rs, a_cs) instead of packed, and B's depth stride b_rs. */
static void f32_gemm_ukernel_12x16_strided_a__avx512f(size_t kc, const float *a, size_t a_rs, size_t a_cs,
                                                      const float *b, size_t b_rs, float *c, size_t ldc, size_t mr,
                                                      size_t nr, float alpha, float beta, const elbo_tile_epilogue *epi)
{
    assert(mr >= 1 && mr <= MR && nr >= 1 && nr <= NR);
    if (mr == MR)
        tile_body(MR, 1, kc, a, a_rs, a_cs, b, b_rs, 0, c, ldc, nr, alpha, beta, epi);
    else
        edge16[mr](kc, a, a_rs, a_cs, b, b_rs, 0, c, ldc, nr, alpha, beta, epi);
}

/* elbo_gemm_ukernel_wide_fn: C (mr x nr of 12 x 32) over two 16-column B panels, A packed or in place; up to
 * 24 columns, the 16 + 8 tile (the second panel's first 8 columns: in the panel, whether packed or in place). */
static void f32_gemm_ukernel_12x32__avx512f(size_t kc, const float *a, size_t a_rs, size_t a_cs, const float *b,
                                            size_t b_rs, size_t b_ps, float *c, size_t ldc, size_t mr, size_t nr,
                                            float alpha, float beta, const elbo_tile_epilogue *epi)
{
    assert(mr >= 1 && mr <= MR && nr > NR && nr <= 2 * NR);
    if (nr <= NR_HALF) {
        if (mr == MR)
            tile_body(MR, HALF_PANEL, kc, a, a_rs, a_cs, b, b_rs, b_ps, c, ldc, nr, alpha, beta, epi);
        else
            edge24[mr](kc, a, a_rs, a_cs, b, b_rs, b_ps, c, ldc, nr, alpha, beta, epi);
    } else if (mr == MR)
        tile_body(MR, 2, kc, a, a_rs, a_cs, b, b_rs, b_ps, c, ldc, nr, alpha, beta, epi);
    else
        edge32[mr](kc, a, a_rs, a_cs, b, b_rs, b_ps, c, ldc, nr, alpha, beta, epi);
}

/* elbo_gemm_ukernel_wide_strip_fn: f32_gemm_ukernel_12x32__avx512f's tiles down a strip, the full ones inlined. */
static void f32_gemm_strip_12x32__avx512f(size_t kc, const float *a, size_t a_rs, size_t a_cs, size_t a_ts,
                                          const float *b, size_t b_rs, size_t b_ps, float *c, size_t ldc, size_t m,
                                          int split_tail, size_t nr, float alpha, float beta)
{
    assert(nr > NR && nr <= 2 * NR);
    for (size_t ir = 0, mr; ir < m; ir += mr) {
        mr = split_tail ? elbo_tile_rows(m - ir, MR) : (m - ir < MR ? m - ir : MR);
        const float *at = a + ir * a_ts;
        float *ct = c + ir * ldc;
        if (mr == MR && nr > NR_HALF)
            tile_body(MR, 2, kc, at, a_rs, a_cs, b, b_rs, b_ps, ct, ldc, nr, alpha, beta, NULL);
        else
            f32_gemm_ukernel_12x32__avx512f(kc, at, a_rs, a_cs, b, b_rs, b_ps, ct, ldc, mr, nr, alpha, beta, NULL);
    }
}

/* elbo_transpose_fn: 16 x 16 blocks through registers, edge blocks with masked loads and stores (nothing outside
 * either matrix is read or written). */
static void x32_transpose_ukernel__16x16_avx512f(float *dst, size_t ldd, const float *src, size_t lds, size_t rows,
                                                 size_t cols)
{
    for (size_t i0 = 0; i0 < rows; i0 += 16) {
        const size_t rr = rows - i0 < 16 ? rows - i0 : 16;
        const __mmask16 row_mask = (__mmask16)((1u << rr) - 1);
        for (size_t j0 = 0; j0 < cols; j0 += 16) {
            const size_t cc = cols - j0 < 16 ? cols - j0 : 16;
            const __mmask16 col_mask = (__mmask16)((1u << cc) - 1);
            __m512 r[16];
            for (size_t i = 0; i < 16; i++)
                r[i] = i < rr ? _mm512_maskz_loadu_ps(col_mask, src + (i0 + i) * lds + j0) : _mm512_setzero_ps();
            transpose_16x16(r);
            for (size_t j = 0; j < cc; j++)
                _mm512_mask_storeu_ps(dst + (j0 + j) * ldd + i0, row_mask, r[j]);
        }
    }
}

/* Depth steps [d, d + n) (n <= 16) of the `rows` (<= 16) stored rows of x at x + i * ld (the others zero), loaded as
 * whole zmm rows and transposed: r[t] holds depth step d + t of the 16 rows. */
static inline __attribute__((always_inline)) void load_rows_transposed(__m512 r[16], const float *x, size_t ld,
                                                                       size_t rows, size_t d, size_t n)
{
    const __mmask16 depth_mask = (__mmask16)((1u << n) - 1);
    for (size_t i = 0; i < 16; i++)
        r[i] = i < rows ? _mm512_maskz_loadu_ps(depth_mask, x + i * ld + d) : _mm512_setzero_ps();
    transpose_16x16(r);
}

/* The AVX2 table's elbo_pack_b_fn, for the operands pack_b_panel_avx512 leaves to it (set at registration). */
static elbo_pack_b_fn pack_b_avx2;

/* One packed B panel (kc x 16, dst[p * 16 + j]) from an f32 B stored N x K (transposed: a layer's W read as W^T):
 * 16 depth steps of the panel's `cols` stored rows (the others zero) loaded as whole zmm rows, transposed in
 * registers and stored as 16 depth steps, each one 64-byte line of the panel. */
static void pack_b_panel_trans_f32(float *dst, const float *b, size_t ld, size_t k0, size_t j0, size_t kc,
                                   size_t cols, int stream)
{
    for (size_t p = 0; p < kc; p += 16) {
        const size_t n = kc - p < 16 ? kc - p : 16;
        __m512 r[16];
        load_rows_transposed(r, b + j0 * ld, ld, cols, k0 + p, n);
        if (stream)
            for (size_t t = 0; t < n; t++)
                _mm512_stream_ps(dst + (p + t) * NR, r[t]);
        else
            for (size_t t = 0; t < n; t++)
                _mm512_storeu_ps(dst + (p + t) * NR, r[t]);
    }
}

/* elbo_pack_b_fn of the AVX-512 table: a transposed f32 B (the forward's W^T, repacked after every optimizer
 * update) 16 x 16 at a time in zmm registers, reading whole cache lines of W's rows (the AVX2 routine's 8 x 8
 * blocks read half lines, 16 rows apart, and spill); an f32 B stored K x N one zmm per depth step; a U8 B through
 * the AVX2 routine. Bitwise the generic packing (a copy). */
static void pack_b_panel_avx512(float *dst, elbo_operand b, size_t k0, size_t j0, size_t kc, size_t nc, size_t nr)
{
    if (nr != NR || b.dtype != ELBO_DTYPE_F32) {
        pack_b_avx2(dst, b, k0, j0, kc, nc, nr);
        return;
    }
    for (size_t jr = 0; jr < nc; jr += NR) {
        const size_t cols = nc - jr < NR ? nc - jr : NR;
        if (b.trans == ELBO_TRANS) {
            pack_b_panel_trans_f32(dst + jr * kc, b.data, b.ld, k0, j0 + jr, kc, cols, 0);
            continue;
        }
        /* B stored K x N: each depth step is one zmm row piece (the columns past N zero) */
        const __mmask16 col_mask = (__mmask16)((1u << cols) - 1);
        const float *src = (const float *)b.data + k0 * b.ld + j0 + jr;
        float *d = dst + jr * kc;
        for (size_t p = 0; p < kc; p++)
            _mm512_storeu_ps(d + p * NR, _mm512_maskz_loadu_ps(col_mask, src + p * b.ld));
    }
}

/* elbo_kernels.pack_b_stream of the AVX-512 table: as pack_b_panel_avx512, a transposed f32 B into 64-byte aligned
 * panels written with non-temporal stores (each depth step one whole line), then a store fence so that they are
 * visible to every thread before anything after it; every other operand or alignment as pack_b_panel_avx512. */
static void pack_b_panel_stream_avx512(float *dst, elbo_operand b, size_t k0, size_t j0, size_t kc, size_t nc,
                                       size_t nr)
{
    if (nr != NR || b.trans != ELBO_TRANS || b.dtype != ELBO_DTYPE_F32 || (uintptr_t)dst % 64 != 0) {
        pack_b_panel_avx512(dst, b, k0, j0, kc, nc, nr);
        return;
    }
    for (size_t jr = 0; jr < nc; jr += NR)
        pack_b_panel_trans_f32(dst + jr * kc, b.data, b.ld, k0, j0 + jr, kc, nc - jr < NR ? nc - jr : NR, 1);
    _mm_sfence();
}

/* The AVX2 table's elbo_pack_a_fn, for the operands pack_a_block_avx512 leaves to it (set at registration). */
static elbo_pack_a_fn pack_a_avx2;

/* One packed A panel (12 x kc, dst[p * 12 + i]) from an f32 A stored M x K: 16 depth steps of the panel's `rows`
 * stored rows (the others zero) loaded as whole zmm rows, transposed in registers, and stored as 16 depth steps
 * of 12 lanes each. */
static void pack_a_panel_rows_f32(float *dst, const float *a, size_t ld, size_t i0, size_t k0, size_t rows, size_t kc)
{
    const __mmask16 step_mask = (__mmask16)((1u << MR) - 1);
    for (size_t p = 0; p < kc; p += 16) {
        const size_t n = kc - p < 16 ? kc - p : 16;
        __m512 r[16];
        load_rows_transposed(r, a + i0 * ld, ld, rows, k0 + p, n);
        for (size_t t = 0; t < n; t++)
            _mm512_mask_storeu_ps(dst + (p + t) * MR, step_mask, r[t]);
    }
}

/* elbo_pack_a_fn of the AVX-512 table: an f32 A stored M x K (a layer's input or output gradient) 16 depth steps
 * at a time in zmm registers, reading whole cache lines of A's rows (the AVX2 routine's 8 x 8 blocks read half
 * lines and spill); every other operand through the AVX2 routine. Bitwise the generic packing (a copy). */
static void pack_a_block_avx512(float *dst, elbo_operand a, size_t i0, size_t k0, size_t mc, size_t kc, size_t mr)
{
    if (mr != MR || a.trans != ELBO_NOTRANS || a.dtype != ELBO_DTYPE_F32) {
        pack_a_avx2(dst, a, i0, k0, mc, kc, mr);
        return;
    }
    for (size_t ir = 0; ir < mc; ir += MR)
        pack_a_panel_rows_f32(dst + ir * kc, a.data, a.ld, i0 + ir, k0, mc - ir < MR ? mc - ir : MR, kc);
}

/* The AVX2 path's table (packing, the 12 x 8 edge kernel, its K blocking) with the zmm tiles. MC, NC and the
 * flags come from the chip config (chips.c; its MC must be a multiple of 12, which chips.c checks). */
void elbo_gemm_register_avx512(elbo_kernels *k)
{
    elbo_gemm_register_avx2(k);
    pack_b_avx2 = k->pack_b;
    pack_a_avx2 = k->pack_a;
    k->pack_b = pack_b_panel_avx512;
    k->pack_a = pack_a_block_avx512;
    k->pack_b_stream = pack_b_panel_stream_avx512;
    k->gemm_ukernel = f32_gemm_ukernel_12x16__avx512f;
    k->gemm_ukernel_strided_a = f32_gemm_ukernel_12x16_strided_a__avx512f;
    k->gemm_ukernel_wide = f32_gemm_ukernel_12x32__avx512f;
    k->gemm_ukernel_wide_strip = f32_gemm_strip_12x32__avx512f;
    k->gemm_ukernel_name = "f32_gemm_ukernel_12x32__avx512f";
    k->blocking.mr = MR;
    k->blocking.transposed_c_max_n = TRANSPOSED_C_MAX_N;
    k->transpose = x32_transpose_ukernel__16x16_avx512f;
    elbo_gemm_lanes_register_avx512(k);
    assert(k->blocking.nr == NR);
}

/* 1 when the 16 lanes of a and the two 8-lane halves b0, b1 hold the same bits (any NaN matching any NaN). */
static int same_lanes(__m512 a, __m256 b0, __m256 b1)
{
    uint32_t ra[NR], rb[NR];
    _mm512_storeu_ps((float *)ra, a);
    _mm256_storeu_ps((float *)rb, b0);
    _mm256_storeu_ps((float *)(rb + 8), b1);
    for (int k = 0; k < NR; k++) {
        const int nan_a = (ra[k] & 0x7fffffffu) > 0x7f800000u, nan_b = (rb[k] & 0x7fffffffu) > 0x7f800000u;
        if (ra[k] != rb[k] && !(nan_a && nan_b))
            return 0;
    }
    return 1;
}

size_t elbo_sleef_avx512_tanh_mismatches(uint32_t first, uint32_t last, uint32_t step)
{
    size_t bad = 0;
    for (uint64_t u = first; u <= last; u += (uint64_t)step * NR) {
        uint32_t w[NR];
        for (int k = 0; k < NR; k++)
            w[k] = u + (uint64_t)k * step > last ? last : (uint32_t)(u + (uint64_t)k * step);
        const __m512 x = _mm512_loadu_ps((const float *)w);
        const __m256 lo = _mm256_loadu_ps((const float *)w), hi = _mm256_loadu_ps((const float *)w + 8);
        bad += !same_lanes(Sleef_tanhf16_u10avx512f(x), Sleef_tanhf8_u10avx2(lo), Sleef_tanhf8_u10avx2(hi));
    }
    return bad;
}

void elbo_avx512_finish_tile(float *c, size_t ldc, int rows, int panels, const __m512 *acc, size_t nr, float alpha,
                             float beta, const elbo_tile_epilogue *epi)
{
    assert(rows >= 1 && rows <= MR && (panels == 1 || panels == 2) && nr >= 1 && nr <= (size_t)panels * NR);
    finish_tile_full(c, ldc, rows, panels, acc, panels > 1 ? NR : nr, nr, alpha, beta, epi);
}
