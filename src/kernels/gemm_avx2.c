/* AVX2 + FMA microkernels: a 6 x 16 register tile (12 ymm accumulators) and a 12 x 8 one for narrow edges,
 * each compiled per row count. */
#include "gemm_depth.h"
#include "kernels.h"

#include <assert.h>
#include <immintrin.h>
#include <sleef.h>

#define MR 6
#define NR 16
#define NARROW_MR 12 /* rows of the 8-wide edge kernel when A is read in place */

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
} store_params;

/* sigmoid(v) as the other tables compute it: (v >= 0 ? 1 : e) / (1 + e), e = exp(-|v|) (SLEEF, 1 ulp). */
static inline __m256 sigmoid_ymm(__m256 v)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = Sleef_expf8_u10avx2(_mm256_or_ps(v, _mm256_set1_ps(-0.0f)));
    __m256 num = _mm256_blendv_ps(e, one, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ));
    return _mm256_div_ps(num, _mm256_add_ps(one, e));
}

/* act(v) for the activations past ReLU (gemm.h's definitions; tanh from SLEEF, 1 ulp). */
static inline __m256 activate_ymm(__m256 v, elbo_activation act, float slope)
{
    switch (act) {
    case ELBO_ACT_LEAKY_RELU:
        return _mm256_blendv_ps(_mm256_mul_ps(v, _mm256_set1_ps(slope)), v,
                                _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
    case ELBO_ACT_TANH:
        return Sleef_tanhf8_u10avx2(v);
    case ELBO_ACT_SIGMOID:
        return sigmoid_ymm(v);
    case ELBO_ACT_SILU:
        return _mm256_mul_ps(v, sigmoid_ymm(v));
    default:
        return v;
    }
}

/* g times the derivative of `grad` past ReLU at the x whose forward saved y (gemm.h's definitions). */
static inline __m256 times_derivative_ymm(__m256 g, __m256 y, elbo_activation grad, float slope)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    switch (grad) {
    case ELBO_ACT_LEAKY_RELU:
        return _mm256_blendv_ps(_mm256_mul_ps(g, _mm256_set1_ps(slope)), g,
                                _mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_GT_OQ));
    case ELBO_ACT_TANH:
        return _mm256_mul_ps(g, _mm256_sub_ps(one, _mm256_mul_ps(y, y)));
    case ELBO_ACT_SIGMOID:
        return _mm256_mul_ps(_mm256_mul_ps(g, _mm256_sub_ps(one, y)), y);
    case ELBO_ACT_SILU: {
        const __m256 s = sigmoid_ymm(y);
        return _mm256_mul_ps(_mm256_mul_ps(g, s), _mm256_add_ps(one, _mm256_mul_ps(y, _mm256_sub_ps(one, s))));
    }
    default:
        return g;
    }
}

/* The first w (1..8) floats at p (lanes past w are 0): a full load, or a masked one that reads nothing past
 * p[w-1] (only partial-width rows pay for it; masked stores, not loads, are the slow ones on several x86 cores). */
static inline __attribute__((always_inline)) __m256 load_cols(const float *p, size_t w)
{
    if (w == 8)
        return _mm256_loadu_ps(p);
    const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)w), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_maskload_ps(p, lanes);
}

/* Stores the first w (1..8) lanes of v at p: a full store, or 4-, 2- and 1-float stores (no masked store). */
static inline __attribute__((always_inline)) void store_cols(float *p, __m256 v, size_t w)
{
    if (w == 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    __m128 q = _mm256_castps256_ps128(v);
    if (w >= 4) {
        _mm_storeu_ps(p, q);
        q = _mm256_extractf128_ps(v, 1);
        p += 4, w -= 4;
    }
    if (w >= 2) {
        _mm_storel_pi((__m64 *)p, q);
        q = _mm_movehl_ps(q, q);
        p += 2, w -= 2;
    }
    if (w)
        _mm_store_ss(p, q);
}

/* Finishes and stores columns [j, j + 8 (nv - 1) + w) of tile row i from the nv (1 or 2) vectors v0, v1 of their
 * accumulators (all 8 wide but the last, w <= 8 wide): alpha, beta * C, bias, pre-activation, activation,
 * derivative mask. The one epilogue of every tile shape; nv, `full` and w == 8 are compile-time constants where
 * they can be: each test is then made once for both halves of a 16-wide row (short-K tiles feel every cycle of
 * this), every load and store of a full row is a plain full-width one, and with `full` 0 only the basic
 * epilogue (elbo_tile_epilogue_is_basic) is compiled in, for the tiles that finish in registers. */
static inline __attribute__((always_inline)) void finish_vecs(float *c, size_t ldc, size_t i, size_t j, const int nv,
                                                               size_t w, __m256 v0, __m256 v1,
                                                               const store_params *sp, const int full)
{
    __m256 v[2] = {v0, v1};
    float *cr = c + i * ldc + j;
#define EACH_VEC for (int q = 0; q < nv; q++)
#define COLS(q) ((q) == nv - 1 ? w : 8)
    if (sp->alpha != 1.0f)
        EACH_VEC v[q] = _mm256_mul_ps(v[q], _mm256_set1_ps(sp->alpha));
    if (sp->beta == 1.0f)
        EACH_VEC v[q] = _mm256_add_ps(v[q], load_cols(cr + 8 * q, COLS(q)));
    else if (sp->beta != 0.0f)
        EACH_VEC v[q] = _mm256_fmadd_ps(_mm256_set1_ps(sp->beta), load_cols(cr + 8 * q, COLS(q)), v[q]);
    if (sp->bias)
        EACH_VEC v[q] = _mm256_add_ps(v[q], load_cols(sp->bias + j + 8 * q, COLS(q)));
    if (full && sp->preact)
        EACH_VEC store_cols(sp->preact + i * sp->ld_preact + j + 8 * q, v[q], COLS(q));
    if (sp->act == ELBO_ACT_RELU) /* max(0, v) keeps NaN, as PyTorch's relu does */
        EACH_VEC v[q] = _mm256_max_ps(_mm256_setzero_ps(), v[q]);
    else if (full)
        EACH_VEC v[q] = activate_ymm(v[q], sp->act, sp->slope);
    if (sp->grad == ELBO_ACT_RELU) {
        const float *srow = sp->saved + i * sp->ld_saved + j;
        EACH_VEC v[q] = _mm256_and_ps(v[q], _mm256_cmp_ps(load_cols(srow + 8 * q, COLS(q)), _mm256_setzero_ps(),
                                                          _CMP_GT_OQ));
    } else if (full && sp->grad) {
        const float *srow = sp->saved + i * sp->ld_saved + j;
        EACH_VEC v[q] = times_derivative_ymm(v[q], load_cols(srow + 8 * q, COLS(q)), sp->grad, sp->slope);
    }
    EACH_VEC store_cols(cr + 8 * q, v[q], COLS(q));
#undef COLS
#undef EACH_VEC
}

/* Finishes and stores the first nr (<= 16) columns of tile row i (lo = columns 0..7, hi = 8..15), whole
 * epilogue. */
static inline __attribute__((always_inline)) void finish_row(float *c, size_t ldc, size_t i, __m256 lo, __m256 hi,
                                                              size_t nr, const store_params *sp)
{
    if (nr == 16)
        finish_vecs(c, ldc, i, 0, 2, 8, lo, hi, sp, 1);
    else if (nr > 8)
        finish_vecs(c, ldc, i, 0, 2, nr - 8, lo, hi, sp, 1);
    else if (nr == 8)
        finish_vecs(c, ldc, i, 0, 1, 8, lo, lo, sp, 1);
    else
        finish_vecs(c, ldc, i, 0, 1, nr, lo, lo, sp, 1);
}

/* The store-phase scalars from alpha, beta and the tile epilogue. */
static inline store_params make_store_params(float alpha, float beta, const elbo_tile_epilogue *epi)
{
    store_params sp = {.alpha = alpha, .beta = beta};
    if (epi) {
        sp.bias = epi->bias;
        sp.preact = epi->preact;
        sp.ld_preact = epi->ld_preact;
        sp.saved = epi->saved;
        sp.ld_saved = epi->ld_saved;
        sp.act = epi->act;
        sp.grad = epi->grad;
        sp.slope = epi->slope;
    }
    return sp;
}

/* Finishes and stores the rows x nr tile whose row i is acc[i*vecs] (and acc[i*vecs + 1] when vecs == 2), whole
 * epilogue. Kept out of line so the accumulation loops carry no register pressure from the store phase, and the
 * SLEEF calls spill none of their accumulators. */
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
    if (nr == NR && elbo_tile_epilogue_is_basic(epi)) { /* full-width rows finish inline: short tiles (K = 128)
                                                            * feel every cycle here */
        const store_params sp = make_store_params(alpha, beta, epi);
#define FINISH_FULL_ROW(I, LO, HI) finish_vecs(c, ldc, I, 0, 2, 8, LO, HI, &sp, 0)
        FINISH_FULL_ROW(0, c00, c01);
        if (rows > 1) FINISH_FULL_ROW(1, c10, c11);
        if (rows > 2) FINISH_FULL_ROW(2, c20, c21);
        if (rows > 3) FINISH_FULL_ROW(3, c30, c31);
        if (rows > 4) FINISH_FULL_ROW(4, c40, c41);
        if (rows > 5) FINISH_FULL_ROW(5, c50, c51);
#undef FINISH_FULL_ROW
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
    if ((nr == 8 || nr == 4) && elbo_tile_epilogue_is_basic(epi)) { /* the VAE's narrow edges (N = 40, 20):
                                                                      * vector stores, tests once per tile */
        const store_params sp = make_store_params(alpha, beta, epi);
        for (int i = 0; i < rows; i++) {
            if (nr == 8)
                finish_vecs(c, ldc, (size_t)i, 0, 1, 8, acc[i], acc[i], &sp, 0);
            else
                finish_vecs(c, ldc, (size_t)i, 0, 1, 4, acc[i], acc[i], &sp, 0);
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
