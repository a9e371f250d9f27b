/* AVX2 + FMA microkernels: a 6 x 16 register tile (12 ymm accumulators) and a 12 x 8 one for narrow edges,
 * each compiled per row count. */
#include "gemm_depth.h"
#include "kernels.h"

#include <assert.h>
#include <immintrin.h>
#include <math.h>

#define MR 6
#define NR 16
#define NARROW_MR 12 /* rows of the 8-wide edge kernel when A is read in place */

/* Scalars of the store phase shared by all rows of a tile. */
typedef struct {
    float alpha, beta;
    const float *bias; /* NULL or the tile's bias */
    int relu;
    const float *mask; /* NULL or ReLU mask at tile origin */
    size_t ld_mask;
} store_params;

/* v (8 columns at cr, all valid) after alpha, beta * C, bias, ReLU and mask; bias and mrow point at the
 * same 8 columns or are NULL. Only unmasked full-width loads: masked moves are slow on several x86 cores. */
static inline __attribute__((always_inline)) __m256 finish8(__m256 v, const float *cr, const float *bias,
                                                             const float *mrow, const store_params *sp)
{
    if (sp->alpha != 1.0f)
        v = _mm256_mul_ps(v, _mm256_set1_ps(sp->alpha));
    if (sp->beta == 1.0f)
        v = _mm256_add_ps(v, _mm256_loadu_ps(cr));
    else if (sp->beta != 0.0f)
        v = _mm256_fmadd_ps(_mm256_set1_ps(sp->beta), _mm256_loadu_ps(cr), v);
    if (bias)
        v = _mm256_add_ps(v, _mm256_loadu_ps(bias));
    if (sp->relu) /* max(0, v) keeps NaN, as PyTorch's relu does */
        v = _mm256_max_ps(_mm256_setzero_ps(), v);
    if (mrow)
        v = _mm256_and_ps(v, _mm256_cmp_ps(_mm256_loadu_ps(mrow), _mm256_setzero_ps(), _CMP_GT_OQ));
    return v;
}

/* As finish8 for 4 columns (128-bit), same operations per element. */
static inline __m128 finish4(__m128 v, const float *cr, const float *bias, const float *mrow, const store_params *sp)
{
    if (sp->alpha != 1.0f)
        v = _mm_mul_ps(v, _mm_set1_ps(sp->alpha));
    if (sp->beta == 1.0f)
        v = _mm_add_ps(v, _mm_loadu_ps(cr));
    else if (sp->beta != 0.0f)
        v = _mm_fmadd_ps(_mm_set1_ps(sp->beta), _mm_loadu_ps(cr), v);
    if (bias)
        v = _mm_add_ps(v, _mm_loadu_ps(bias));
    if (sp->relu)
        v = _mm_max_ps(_mm_setzero_ps(), v);
    if (mrow)
        v = _mm_and_ps(v, _mm_cmpgt_ps(_mm_loadu_ps(mrow), _mm_setzero_ps()));
    return v;
}

/* As finish8 for one element (scalar fmaf matches the vector FMA bit for bit). */
static inline float finish1(float v, const float *cr, const float *bias, const float *mrow, const store_params *sp)
{
    if (sp->alpha != 1.0f)
        v *= sp->alpha;
    if (sp->beta == 1.0f)
        v += *cr;
    else if (sp->beta != 0.0f)
        v = fmaf(sp->beta, *cr, v);
    if (bias)
        v += *bias;
    if (sp->relu && v < 0.0f)
        v = 0.0f;
    if (mrow && !(*mrow > 0.0f))
        v = 0.0f;
    return v;
}

/* Finishes and stores columns [j, j+w) (w < 8) of tile row i from the vector v holding columns j..j+7. */
static void finish_partial(float *cr, const float *bias, const float *mrow, size_t j, size_t w, __m256 v,
                           const store_params *sp)
{
    if (w >= 4) {
        __m128 q = finish4(_mm256_castps256_ps128(v), cr + j, bias ? bias + j : NULL, mrow ? mrow + j : NULL, sp);
        _mm_storeu_ps(cr + j, q);
        v = _mm256_permute2f128_ps(v, v, 0x01);
        j += 4, w -= 4;
    }
    float t[8] __attribute__((aligned(32)));
    _mm256_store_ps(t, v);
    for (size_t q = 0; q < w; q++)
        cr[j + q] = finish1(t[q], cr + j + q, bias ? bias + j + q : NULL, mrow ? mrow + j + q : NULL, sp);
}

/* Finishes and stores the first nr (<= 16) columns of tile row i (lo = columns 0..7, hi = 8..15). */
static inline __attribute__((always_inline)) void finish_row(float *c, size_t ldc, size_t i, __m256 lo, __m256 hi,
                                                              size_t nr, const store_params *sp)
{
    float *cr = c + i * ldc;
    const float *mrow = sp->mask ? sp->mask + i * sp->ld_mask : NULL;
    if (nr < 8) {
        finish_partial(cr, sp->bias, mrow, 0, nr, lo, sp);
        return;
    }
    _mm256_storeu_ps(cr, finish8(lo, cr, sp->bias, mrow, sp));
    if (nr == 16)
        _mm256_storeu_ps(cr + 8, finish8(hi, cr + 8, sp->bias ? sp->bias + 8 : NULL, mrow ? mrow + 8 : NULL, sp));
    else if (nr > 8)
        finish_partial(cr, sp->bias, mrow, 8, nr - 8, hi, sp);
}

/* The store-phase scalars from alpha, beta and the tile epilogue. */
static inline store_params make_store_params(float alpha, float beta, const elbo_tile_epilogue *epi)
{
    store_params sp = {.alpha = alpha, .beta = beta};
    if (epi) {
        sp.bias = epi->bias;
        sp.relu = epi->relu;
        sp.mask = epi->mask;
        sp.ld_mask = epi->ld_mask;
    }
    return sp;
}

/* Finishes one full 16-wide tile row i (lo = columns 0..7, hi = 8..15): alpha, beta, bias, ReLU, mask, store.
 * Each test is made once per row for both halves (same operations per element as finish8). */
static inline __attribute__((always_inline)) void finish_full_row(float *c, size_t ldc, size_t i, __m256 lo,
                                                                   __m256 hi, const store_params *sp)
{
    float *cr = c + i * ldc;
    if (sp->alpha != 1.0f) {
        const __m256 alpha = _mm256_set1_ps(sp->alpha);
        lo = _mm256_mul_ps(lo, alpha);
        hi = _mm256_mul_ps(hi, alpha);
    }
    if (sp->beta == 1.0f) {
        lo = _mm256_add_ps(lo, _mm256_loadu_ps(cr));
        hi = _mm256_add_ps(hi, _mm256_loadu_ps(cr + 8));
    } else if (sp->beta != 0.0f) {
        const __m256 beta = _mm256_set1_ps(sp->beta);
        lo = _mm256_fmadd_ps(beta, _mm256_loadu_ps(cr), lo);
        hi = _mm256_fmadd_ps(beta, _mm256_loadu_ps(cr + 8), hi);
    }
    if (sp->bias) {
        lo = _mm256_add_ps(lo, _mm256_loadu_ps(sp->bias));
        hi = _mm256_add_ps(hi, _mm256_loadu_ps(sp->bias + 8));
    }
    if (sp->relu) {
        lo = _mm256_max_ps(_mm256_setzero_ps(), lo);
        hi = _mm256_max_ps(_mm256_setzero_ps(), hi);
    }
    if (sp->mask) {
        const float *mr = sp->mask + i * sp->ld_mask;
        lo = _mm256_and_ps(lo, _mm256_cmp_ps(_mm256_loadu_ps(mr), _mm256_setzero_ps(), _CMP_GT_OQ));
        hi = _mm256_and_ps(hi, _mm256_cmp_ps(_mm256_loadu_ps(mr + 8), _mm256_setzero_ps(), _CMP_GT_OQ));
    }
    _mm256_storeu_ps(cr, lo);
    _mm256_storeu_ps(cr + 8, hi);
}

/* Finishes and stores the rows x nr tile whose row i is acc[i*vecs] (and acc[i*vecs + 1] when vecs == 2).
 * Kept out of line so the accumulation loops carry no register pressure from the store phase. */
static __attribute__((noinline)) void finish_tile(float *c, size_t ldc, size_t rows, const __m256 *acc, size_t vecs,
                                                  size_t nr, float alpha, float beta, const elbo_tile_epilogue *epi)
{
    const store_params sp = make_store_params(alpha, beta, epi);
    for (size_t i = 0; i < rows; i++)
        finish_row(c, ldc, i, acc[i * vecs], vecs == 2 ? acc[i * vecs + 1] : _mm256_setzero_ps(), nr, &sp);
}

/* One depth step of row I of a 16-wide tile: broadcast A (I, p) and accumulate it times both B halves. */
#define WIDE_ROW_STEP(I)                                                                                       \
    if (rows > I) {                                                                                            \
        const __m256 ai = _mm256_broadcast_ss(a + o##I);                                                       \
        c##I##0 = _mm256_fmadd_ps(ai, b0, c##I##0);                                                            \
        c##I##1 = _mm256_fmadd_ps(ai, b1, c##I##1);                                                            \
    }

/* C (rows x nr of 6 x 16) = alpha * A (rows x kc, element (i,p) at a[i*a_rs + p*a_cs]) * B panel (kc x 16)
 * + beta * C, then epi. rows (1..6) is a compile-time constant, so no FMA is spent on rows past the tile.
 * Every element is one FMA chain over p from zero, then the same finishing operations, whatever the tile. */
static inline __attribute__((always_inline)) void wide_body(const int rows, size_t kc, const float *restrict a,
                                                             size_t a_rs, size_t a_cs, const float *restrict b,
                                                             size_t b_rs, float *restrict c, size_t ldc, size_t nr, float alpha,
                                                             float beta, const elbo_tile_epilogue *epi)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps();
    __m256 c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps();
    __m256 c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (int i = 0; i < rows; i++)
        _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
    const size_t o0 = 0, o1 = a_rs, o2 = 2 * a_rs, o3 = 3 * a_rs, o4 = 4 * a_rs, o5 = 5 * a_rs;
#pragma GCC unroll 4
    for (size_t p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        WIDE_ROW_STEP(0)
        WIDE_ROW_STEP(1)
        WIDE_ROW_STEP(2)
        WIDE_ROW_STEP(3)
        WIDE_ROW_STEP(4)
        WIDE_ROW_STEP(5)
        a += a_cs;
        b += b_rs;
    }
    if (nr == NR) { /* full-width rows finish inline: short tiles (K = 128) feel every cycle here */
        const store_params sp = make_store_params(alpha, beta, epi);
        finish_full_row(c, ldc, 0, c00, c01, &sp);
        if (rows > 1) finish_full_row(c, ldc, 1, c10, c11, &sp);
        if (rows > 2) finish_full_row(c, ldc, 2, c20, c21, &sp);
        if (rows > 3) finish_full_row(c, ldc, 3, c30, c31, &sp);
        if (rows > 4) finish_full_row(c, ldc, 4, c40, c41, &sp);
        if (rows > 5) finish_full_row(c, ldc, 5, c50, c51, &sp);
        return;
    }
    const __m256 acc[2 * MR] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    finish_tile(c, ldc, (size_t)rows, acc, 2, nr, alpha, beta, epi);
}

/* One depth step of row I of an 8-wide tile (rows 6..11 are addressed from a6 = row 6). */
#define NARROW_ROW_STEP(I, BASE, OFF)                                                                          \
    if (rows > I)                                                                                              \
        c##I = _mm256_fmadd_ps(_mm256_broadcast_ss(BASE + OFF), b0, c##I);

/* C (rows x nr, rows <= 12, nr <= 8) = alpha * A (rows x kc, strided as in wide_body) * the first 8 columns
 * of a 16-wide B panel + beta * C, then epi; rows is a compile-time constant. Same per-element operations. */
static inline __attribute__((always_inline)) void narrow_body(const int rows, size_t kc, const float *restrict a,
                                                               size_t a_rs, size_t a_cs, const float *restrict b,
                                                               size_t b_rs, float *restrict c, size_t ldc, size_t nr,
                                                               float alpha, float beta,
                                                               const elbo_tile_epilogue *epi)
{
    __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps(), c2 = _mm256_setzero_ps();
    __m256 c3 = _mm256_setzero_ps(), c4 = _mm256_setzero_ps(), c5 = _mm256_setzero_ps();
    __m256 c6 = _mm256_setzero_ps(), c7 = _mm256_setzero_ps(), c8 = _mm256_setzero_ps();
    __m256 c9 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    for (int i = 0; i < rows; i++)
        _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
    const size_t o1 = a_rs, o2 = 2 * a_rs, o3 = 3 * a_rs, o4 = 4 * a_rs, o5 = 5 * a_rs;
    const float *a6 = a + 6 * a_rs;
#pragma GCC unroll 4
    for (size_t p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_loadu_ps(b);
        NARROW_ROW_STEP(0, a, 0)
        NARROW_ROW_STEP(1, a, o1)
        NARROW_ROW_STEP(2, a, o2)
        NARROW_ROW_STEP(3, a, o3)
        NARROW_ROW_STEP(4, a, o4)
        NARROW_ROW_STEP(5, a, o5)
        NARROW_ROW_STEP(6, a6, 0)
        NARROW_ROW_STEP(7, a6, o1)
        NARROW_ROW_STEP(8, a6, o2)
        NARROW_ROW_STEP(9, a6, o3)
        NARROW_ROW_STEP(10, a6, o4)
        NARROW_ROW_STEP(11, a6, o5)
        a += a_cs;
        if (rows > 6)
            a6 += a_cs;
        b += b_rs;
    }
    const __m256 acc[NARROW_MR] = {c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11};
    if (nr == 8 || nr == 4) { /* the VAE's narrow edges (N = 40, 20): vector stores, tests once per tile */
        const store_params sp = make_store_params(alpha, beta, epi);
        for (int i = 0; i < rows; i++) {
            float *cr = c + (size_t)i * ldc;
            const float *mrow = sp.mask ? sp.mask + (size_t)i * sp.ld_mask : NULL;
            if (nr == 8)
                _mm256_storeu_ps(cr, finish8(acc[i], cr, sp.bias, mrow, &sp));
            else
                _mm_storeu_ps(cr, finish4(_mm256_castps256_ps128(acc[i]), cr, sp.bias, mrow, &sp));
        }
        return;
    }
    finish_tile(c, ldc, (size_t)rows, acc, 1, nr, alpha, beta, epi);
}

typedef void (*tile_fn)(size_t kc, const float *a, size_t a_rs, size_t a_cs, const float *b, size_t b_rs, float *c,
                        size_t ldc, size_t nr, float alpha, float beta, const elbo_tile_epilogue *epi);

/* Defines NAME: the body BODY compiled for ROWS rows, out of line (edge tiles; the full-height tile is
 * inlined in the kernel entry points so its loop and register allocation stay those of one body). */
#define DEFINE_TILE(NAME, BODY, ROWS)                                                                          \
    static void NAME(size_t kc, const float *a, size_t a_rs, size_t a_cs, const float *b, size_t b_rs, float *c, \
                     size_t ldc, size_t nr, float alpha, float beta, const elbo_tile_epilogue *epi)             \
    {                                                                                                          \
        BODY(ROWS, kc, a, a_rs, a_cs, b, b_rs, c, ldc, nr, alpha, beta, epi);                                        \
    }

DEFINE_TILE(wide_rows1, wide_body, 1)
DEFINE_TILE(wide_rows2, wide_body, 2)
DEFINE_TILE(wide_rows3, wide_body, 3)
DEFINE_TILE(wide_rows4, wide_body, 4)
DEFINE_TILE(wide_rows5, wide_body, 5)
DEFINE_TILE(narrow_rows1, narrow_body, 1)
DEFINE_TILE(narrow_rows2, narrow_body, 2)
DEFINE_TILE(narrow_rows3, narrow_body, 3)
DEFINE_TILE(narrow_rows4, narrow_body, 4)
DEFINE_TILE(narrow_rows5, narrow_body, 5)
DEFINE_TILE(narrow_rows6, narrow_body, 6)
DEFINE_TILE(narrow_rows7, narrow_body, 7)
DEFINE_TILE(narrow_rows8, narrow_body, 8)
DEFINE_TILE(narrow_rows9, narrow_body, 9)
DEFINE_TILE(narrow_rows10, narrow_body, 10)
DEFINE_TILE(narrow_rows11, narrow_body, 11)

/* Edge tiles by row count (index mr; the full-height entries are unused). */
static const tile_fn wide_edge[MR] = {NULL, wide_rows1, wide_rows2, wide_rows3, wide_rows4, wide_rows5};
static const tile_fn narrow_edge[NARROW_MR] = {NULL,         narrow_rows1, narrow_rows2,  narrow_rows3,
                                               narrow_rows4, narrow_rows5, narrow_rows6,  narrow_rows7,
                                               narrow_rows8, narrow_rows9, narrow_rows10, narrow_rows11};

/* C (mr x nr of 6 x 16) = alpha * A panel (6 x kc, packed) * B panel (kc x 16) + beta * C, then epi. */
static void f32_gemm_ukernel_6x16__avx2_fma(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                            size_t mr, size_t nr, float alpha, float beta,
                                            const elbo_tile_epilogue *epi)
{
    assert(mr >= 1 && mr <= MR && nr >= 1 && nr <= NR);
    if (mr == MR)
        wide_body(MR, kc, a, 1, MR, b, NR, c, ldc, nr, alpha, beta, epi);
    else
        wide_edge[mr](kc, a, 1, MR, b, NR, c, ldc, nr, alpha, beta, epi);
}

/* As above with A read in place (strides a_rs, a_cs) instead of packed. */
static void f32_gemm_ukernel_6x16_strided_a__avx2_fma(size_t kc, const float *a, size_t a_rs, size_t a_cs,
                                                      const float *b, size_t b_rs, float *c, size_t ldc, size_t mr,
                                                      size_t nr, float alpha, float beta, const elbo_tile_epilogue *epi)
{
    assert(mr >= 1 && mr <= MR && nr >= 1 && nr <= NR);
    if (mr == MR)
        wide_body(MR, kc, a, a_rs, a_cs, b, b_rs, c, ldc, nr, alpha, beta, epi);
    else
        wide_edge[mr](kc, a, a_rs, a_cs, b, b_rs, c, ldc, nr, alpha, beta, epi);
}

/* Edge tiles with nr <= 8: C (mr x nr, mr <= 12) from the first 8 columns of the 16-wide B panel. Up to 12
 * rows keep 12 independent FMA chains in flight (a 6 x 8 tile has only 6, below the FMA latency x width). */
static void f32_gemm_ukernel_12x8_strided_a__avx2_fma(size_t kc, const float *a, size_t a_rs, size_t a_cs,
                                                      const float *b, size_t b_rs, float *c, size_t ldc, size_t mr,
                                                      size_t nr, float alpha, float beta, const elbo_tile_epilogue *epi)
{
    assert(mr >= 1 && mr <= NARROW_MR && nr >= 1 && nr <= 8);
    if (mr == NARROW_MR)
        narrow_body(NARROW_MR, kc, a, a_rs, a_cs, b, b_rs, c, ldc, nr, alpha, beta, epi);
    else
        narrow_edge[mr](kc, a, a_rs, a_cs, b, b_rs, c, ldc, nr, alpha, beta, epi);
}

void elbo_gemm_register_avx2(elbo_kernels *k)
{
    k->gemm_ukernel = f32_gemm_ukernel_6x16__avx2_fma;
    k->gemm_ukernel_strided_a = f32_gemm_ukernel_6x16_strided_a__avx2_fma;
    k->gemm_ukernel_narrow = f32_gemm_ukernel_12x8_strided_a__avx2_fma;
    k->narrow_nr = 8;
    k->narrow_mr = NARROW_MR;
    elbo_gemm_pack_register_avx2(k);
    k->gemm_ukernel_name = "f32_gemm_ukernel_6x16__avx2_fma";
    /* The register tile and the shared K blocking (gemm_depth.h); MC, NC and the flags come from the chip
     * config (chips.c), applied over this table by dispatch.c. */
    k->blocking = (elbo_gemm_blocking){.mr = MR, .nr = NR, .kc = ELBO_GEMM_FMA_KC, .kc_single = ELBO_GEMM_FMA_KC_SINGLE};
}
