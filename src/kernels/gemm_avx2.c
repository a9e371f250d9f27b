/* AVX2 + FMA microkernel: a 6 x 16 register tile (12 ymm accumulators), BLIS Haswell/Zen blocking. */
#include "kernels.h"

#include <assert.h>
#include <immintrin.h>
#include <math.h>

#define MR 6
#define NR 16

/* Scalars of the store phase shared by all rows of a tile. */
typedef struct {
    float alpha, beta;
    const float *bias; /* NULL or the tile's bias */
    int relu;
    const float *mask; /* NULL or ReLU mask at tile origin */
    size_t ld_mask;
} store_params;

/* Finishes one full 16-wide tile row i (lo = columns 0..7, hi = 8..15): alpha, beta, bias, ReLU, mask, store.
 * Only unmasked full-width loads and stores: masked stores are slow on several x86 cores. */
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
    if (sp->relu) { /* max(0, v) keeps NaN, as PyTorch's relu does */
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

/* Finishes an mr x nr (nr < 16) edge tile from its spilled accumulator, one element at a time,
 * with the same operation order as finish_full_row. */
static void finish_edge_tile(float *c, size_t ldc, size_t mr, size_t nr, const float acc[MR][NR],
                             const store_params *sp)
{
    for (size_t i = 0; i < mr; i++) {
        float *cr = c + i * ldc;
        for (size_t j = 0; j < nr; j++) {
            float v = acc[i][j];
            if (sp->alpha != 1.0f)
                v *= sp->alpha;
            if (sp->beta == 1.0f)
                v += cr[j];
            else if (sp->beta != 0.0f)
                v = fmaf(sp->beta, cr[j], v);
            if (sp->bias)
                v += sp->bias[j];
            if (sp->relu && v < 0.0f)
                v = 0.0f;
            if (sp->mask && !(sp->mask[i * sp->ld_mask + j] > 0.0f))
                v = 0.0f;
            cr[j] = v;
        }
    }
}

/* C (mr x nr of 6 x 16) = alpha * A (6 x kc, element (i,p) at a[i*a_rs + p*a_cs]) * B panel (kc x 16)
 * + beta * C, then epi. Rows of A past mr are not read (their pointers alias row 0). */
static inline __attribute__((always_inline)) void gemm_6x16_body(int wide, size_t kc, const float *restrict a, size_t a_rs,
                                                                  size_t a_cs, const float *restrict b,
                                                                  float *restrict c, size_t ldc, size_t mr,
                                                                  size_t nr, float alpha, float beta,
                                                                  const elbo_tile_epilogue *epi)
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
    const size_t o1 = mr > 1 ? a_rs : 0, o2 = mr > 2 ? 2 * a_rs : 0, o3 = mr > 3 ? 3 * a_rs : 0;
    const size_t o4 = mr > 4 ? 4 * a_rs : 0, o5 = mr > 5 ? 5 * a_rs : 0;
#pragma GCC unroll 4
    for (size_t p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_load_ps(b), b1 = wide ? _mm256_load_ps(b + 8) : b0;
        __m256 ai = _mm256_broadcast_ss(a);
        c00 = _mm256_fmadd_ps(ai, b0, c00);
        if (wide)
            c01 = _mm256_fmadd_ps(ai, b1, c01);
        ai = _mm256_broadcast_ss(a + o1);
        c10 = _mm256_fmadd_ps(ai, b0, c10);
        if (wide)
            c11 = _mm256_fmadd_ps(ai, b1, c11);
        ai = _mm256_broadcast_ss(a + o2);
        c20 = _mm256_fmadd_ps(ai, b0, c20);
        if (wide)
            c21 = _mm256_fmadd_ps(ai, b1, c21);
        ai = _mm256_broadcast_ss(a + o3);
        c30 = _mm256_fmadd_ps(ai, b0, c30);
        if (wide)
            c31 = _mm256_fmadd_ps(ai, b1, c31);
        ai = _mm256_broadcast_ss(a + o4);
        c40 = _mm256_fmadd_ps(ai, b0, c40);
        if (wide)
            c41 = _mm256_fmadd_ps(ai, b1, c41);
        ai = _mm256_broadcast_ss(a + o5);
        c50 = _mm256_fmadd_ps(ai, b0, c50);
        if (wide)
            c51 = _mm256_fmadd_ps(ai, b1, c51);
        a += a_cs;
        b += NR;
    }

    store_params sp = {.alpha = alpha, .beta = beta};
    if (epi) {
        sp.bias = epi->bias;
        sp.relu = epi->relu;
        sp.mask = epi->mask;
        sp.ld_mask = epi->ld_mask;
    }
    if (nr == NR) {
        finish_full_row(c, ldc, 0, c00, c01, &sp);
        if (mr > 1) finish_full_row(c, ldc, 1, c10, c11, &sp);
        if (mr > 2) finish_full_row(c, ldc, 2, c20, c21, &sp);
        if (mr > 3) finish_full_row(c, ldc, 3, c30, c31, &sp);
        if (mr > 4) finish_full_row(c, ldc, 4, c40, c41, &sp);
        if (mr > 5) finish_full_row(c, ldc, 5, c50, c51, &sp);
        return;
    }
    float acc[MR][NR] __attribute__((aligned(32)));
    _mm256_store_ps(acc[0], c00), _mm256_store_ps(acc[0] + 8, c01);
    _mm256_store_ps(acc[1], c10), _mm256_store_ps(acc[1] + 8, c11);
    _mm256_store_ps(acc[2], c20), _mm256_store_ps(acc[2] + 8, c21);
    _mm256_store_ps(acc[3], c30), _mm256_store_ps(acc[3] + 8, c31);
    _mm256_store_ps(acc[4], c40), _mm256_store_ps(acc[4] + 8, c41);
    _mm256_store_ps(acc[5], c50), _mm256_store_ps(acc[5] + 8, c51);
    finish_edge_tile(c, ldc, mr, nr, (const float(*)[NR])acc, &sp);
}

/* C (mr x nr of 6 x 16) = alpha * A panel (6 x kc, packed) * B panel (kc x 16) + beta * C, then epi. */
static void f32_gemm_ukernel_6x16__avx2_fma(size_t kc, const float *a, const float *b, float *c, size_t ldc,
                                            size_t mr, size_t nr, float alpha, float beta,
                                            const elbo_tile_epilogue *epi)
{
    gemm_6x16_body(1, kc, a, 1, MR, b, c, ldc, mr, nr, alpha, beta, epi);
}

/* As above with A read in place (strides a_rs, a_cs) instead of packed. */
static void f32_gemm_ukernel_6x16_strided_a__avx2_fma(size_t kc, const float *a, size_t a_rs, size_t a_cs,
                                                      const float *b, float *c, size_t ldc, size_t mr, size_t nr,
                                                      float alpha, float beta, const elbo_tile_epilogue *epi)
{
    gemm_6x16_body(1, kc, a, a_rs, a_cs, b, c, ldc, mr, nr, alpha, beta, epi);
}

/* As above for edge tiles with nr <= 8: only the first 8 columns of the 16-wide B panel are computed. */
static void f32_gemm_ukernel_6x8_strided_a__avx2_fma(size_t kc, const float *a, size_t a_rs, size_t a_cs,
                                                     const float *b, float *c, size_t ldc, size_t mr, size_t nr,
                                                     float alpha, float beta, const elbo_tile_epilogue *epi)
{
    assert(nr <= 8);
    gemm_6x16_body(0, kc, a, a_rs, a_cs, b, c, ldc, mr, nr, alpha, beta, epi);
}

/* Zen 3 / Haswell-class blocking (32 KiB L1d, 512 KiB L2 per core, large shared L3): a KC x NR B panel
 * (25 KiB) stays in L1, an MC x KC A block (262 KiB) in L2, a KC x NC B panel in L3. KC = 400 rather than
 * BLIS's 256: the VAE's depths 400 and 784 then take 1 and 2 K blocks (C is re-read once per block), which
 * measured 5-15 % faster on its shapes and no slower on 2048^3. */
#define AVX2_MC 168  /* multiple of MR */
#define AVX2_KC 400
#define AVX2_NC 4080 /* multiple of NR */

void elbo_gemm_register_avx2(elbo_kernels *k)
{
    k->gemm_ukernel = f32_gemm_ukernel_6x16__avx2_fma;
    k->gemm_ukernel_strided_a = f32_gemm_ukernel_6x16_strided_a__avx2_fma;
    k->gemm_ukernel_narrow = f32_gemm_ukernel_6x8_strided_a__avx2_fma;
    k->narrow_nr = 8;
    elbo_gemm_pack_register_avx2(k);
    k->gemm_ukernel_name = "f32_gemm_ukernel_6x16__avx2_fma";
    k->blocking = (elbo_gemm_blocking){.mr = MR, .nr = NR, .mc = AVX2_MC, .kc = AVX2_KC, .nc = AVX2_NC};
}
