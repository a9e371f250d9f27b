/* AVX2 + FMA microkernel: a 6 x 16 register tile (12 ymm accumulators), BLIS Haswell/Zen blocking. */
#include "kernels.h"

#include <assert.h>
#include <immintrin.h>

#define MR 6
#define NR 16

/* Lane masks selecting columns j < nr of the two 8-wide halves of a 16-wide tile row. */
typedef struct {
    __m256i lo, hi;
} column_mask;

/* Builds the masks for the first nr (1..16) columns. */
static inline column_mask make_column_mask(size_t nr)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i n = _mm256_set1_epi32((int)nr);
    column_mask m = {_mm256_cmpgt_epi32(n, idx), _mm256_cmpgt_epi32(n, _mm256_add_epi32(idx, _mm256_set1_epi32(8)))};
    return m;
}

/* Loads 8 floats, all of them or only the masked lanes (others read as 0, never touched in memory). */
static inline __m256 load8(const float *p, int full, __m256i mask)
{
    return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask);
}

/* Stores 8 floats, all of them or only the masked lanes. */
static inline void store8(float *p, __m256 v, int full, __m256i mask)
{
    if (full)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, mask, v);
}

/* Scalars and vectors of the store phase shared by all rows of a tile. */
typedef struct {
    float alpha, beta;
    __m256 bias_lo, bias_hi;   /* zero when there is no bias */
    int has_bias, relu;
    const float *mask;         /* NULL or ReLU mask at tile origin */
    size_t ld_mask;
    column_mask cols;
    int full_lo, full_hi;      /* nr >= 8, nr == 16 */
    int any_hi;                /* nr > 8 */
} store_params;

/* Finishes one 8-wide half-row v at C row pointer c (mask row m): alpha, beta, bias, ReLU, mask, store. */
static inline void finish_half(float *c, const float *m, __m256 v, __m256 bias, int full, __m256i lanes,
                               const store_params *sp)
{
    if (sp->alpha != 1.0f)
        v = _mm256_mul_ps(v, _mm256_set1_ps(sp->alpha));
    if (sp->beta == 1.0f)
        v = _mm256_add_ps(v, load8(c, full, lanes));
    else if (sp->beta != 0.0f)
        v = _mm256_fmadd_ps(_mm256_set1_ps(sp->beta), load8(c, full, lanes), v);
    if (sp->has_bias)
        v = _mm256_add_ps(v, bias);
    if (sp->relu)
        v = _mm256_max_ps(_mm256_setzero_ps(), v); /* NaN propagates, as in PyTorch */
    if (m)
        v = _mm256_and_ps(v, _mm256_cmp_ps(load8(m, full, lanes), _mm256_setzero_ps(), _CMP_GT_OQ));
    store8(c, v, full, lanes);
}

/* Finishes one 16-wide tile row (lo = columns 0..7, hi = 8..15). */
static inline void finish_row(float *c, size_t i, __m256 lo, __m256 hi, const store_params *sp, size_t ldc)
{
    float *crow = c + i * ldc;
    const float *mrow = sp->mask ? sp->mask + i * sp->ld_mask : NULL;
    finish_half(crow, mrow, lo, sp->bias_lo, sp->full_lo, sp->cols.lo, sp);
    if (sp->any_hi)
        finish_half(crow + 8, mrow ? mrow + 8 : NULL, hi, sp->bias_hi, sp->full_hi, sp->cols.hi, sp);
}

/* C (mr x nr of 6 x 16) = alpha * A panel (6 x kc) * B panel (kc x 16) + beta * C, then epi. */
static void f32_gemm_ukernel_6x16__avx2_fma(size_t kc, const float *restrict a, const float *restrict b,
                                            float *restrict c, size_t ldc, size_t mr, size_t nr, float alpha,
                                            float beta, const elbo_tile_epilogue *epi)
{
    assert(mr >= 1 && mr <= MR && nr >= 1 && nr <= NR);
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (size_t i = 0; i < mr; i++)
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 4
    for (size_t p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        __m256 ai = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(ai, b0, c00);
        c01 = _mm256_fmadd_ps(ai, b1, c01);
        ai = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(ai, b0, c10);
        c11 = _mm256_fmadd_ps(ai, b1, c11);
        ai = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(ai, b0, c20);
        c21 = _mm256_fmadd_ps(ai, b1, c21);
        ai = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(ai, b0, c30);
        c31 = _mm256_fmadd_ps(ai, b1, c31);
        ai = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(ai, b0, c40);
        c41 = _mm256_fmadd_ps(ai, b1, c41);
        ai = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(ai, b0, c50);
        c51 = _mm256_fmadd_ps(ai, b1, c51);
        a += MR;
        b += NR;
    }

    store_params sp = {.alpha = alpha, .beta = beta, .bias_lo = _mm256_setzero_ps(), .bias_hi = _mm256_setzero_ps()};
    sp.cols = make_column_mask(nr);
    sp.full_lo = nr >= 8;
    sp.full_hi = nr == NR;
    sp.any_hi = nr > 8;
    if (epi) {
        sp.relu = epi->relu;
        sp.mask = epi->mask;
        sp.ld_mask = epi->ld_mask;
        if (epi->bias) {
            sp.has_bias = 1;
            sp.bias_lo = load8(epi->bias, sp.full_lo, sp.cols.lo);
            if (sp.any_hi)
                sp.bias_hi = load8(epi->bias + 8, sp.full_hi, sp.cols.hi);
        }
    }
    finish_row(c, 0, c00, c01, &sp, ldc);
    if (mr > 1) finish_row(c, 1, c10, c11, &sp, ldc);
    if (mr > 2) finish_row(c, 2, c20, c21, &sp, ldc);
    if (mr > 3) finish_row(c, 3, c30, c31, &sp, ldc);
    if (mr > 4) finish_row(c, 4, c40, c41, &sp, ldc);
    if (mr > 5) finish_row(c, 5, c50, c51, &sp, ldc);
}

/* Zen 3 / Haswell-class blocking (32 KiB L1d, 512 KiB L2 per core, large shared L3):
 * a KC x NR B panel (16 KiB) stays in L1, an MC x KC A block (168 KiB) in L2, a KC x NC B panel in L3. */
#define AVX2_MC 168  /* multiple of MR */
#define AVX2_KC 256
#define AVX2_NC 4080 /* multiple of NR */

void elbo_gemm_register_avx2(elbo_kernels *k)
{
    k->gemm_ukernel = f32_gemm_ukernel_6x16__avx2_fma;
    k->gemm_ukernel_name = "f32_gemm_ukernel_6x16__avx2_fma";
    k->blocking = (elbo_gemm_blocking){.mr = MR, .nr = NR, .mc = AVX2_MC, .kc = AVX2_KC, .nc = AVX2_NC};
}
