/* AVX512_BF16: the bf16 GEMM microkernel (VDPBF16PS, a 12 x 32 tile in 24 zmm accumulators), its pair-panel
 * packing (VCVTNE2PS2BF16 / VCVTNEPS2BF16 while packing fp32, 16 x 16 word transposes where pairs run along a
 * stored row) and the fp32 -> bf16 conversion.
 *
 * Each depth step loads a 32-column row of B pairs (two zmm) and issues two VDPBF16PS per tile row with the row's
 * A pair broadcast from memory (embedded {1to16}): 24 dot products per 14 loads. A strip of up to 8 or of 17..24
 * columns takes its last 8 on ymm VDPBF16PS (half the zmm cost). A is a packed panel, or a bf16 A read in place (the
 * strided-A entry). B's pair is the instruction's first source, A's its second, which the scalar emulation mirrors
 * (only NaN payloads could tell). */
#include "bf16_pairs_avx512.h"
#include "finish_avx512.h"
#include "kernels.h"

#include <assert.h>
#include <immintrin.h>
#include <string.h>

#include "cpu_features.h"

#define MR 12
#define NR 32

/* acc + the pair products of B pair vector b and the A pair word at a, broadcast (VDPBF16PS). */
#define DOT(acc, b, a) acc = _mm512_dpbf16_ps(acc, (__m512bh)(b), (__m512bh)_mm512_set1_epi32((int)*(a)))

/* `panels` of the tiles with a ymm accumulator per row (VDPBF16PS on ymm costs half the zmm one): 8 columns, or
 * 16 + 8. A strip of up to 8 columns (the last 8 of N = 40) or of 17..24 (N = 20) then runs its lanes at the full
 * rate instead of on half a zmm. */
#define EIGHT_COLS 3
#define SIXTEEN_EIGHT 4

/* One depth step of row I over the tile's panels; the 8 columns in ymm (e##I) take the low half of the row's pair
 * broadcast into a zmm (from memory: a load, where the same pair moved through a general register costs a shuffle
 * more). */
#define ROW_STEP(I)                                                                                            \
    if (rows > I) {                                                                                            \
        if (panels < EIGHT_COLS) {                                                                             \
            DOT(c##I, b0, a + I * a_rs);                                                                       \
            if (panels == 2)                                                                                   \
                DOT(d##I, b1, a + I * a_rs);                                                                   \
        } else {                                                                                               \
            const __m512i x = _mm512_set1_epi32((int)a[I * a_rs]);                                             \
            if (panels == SIXTEEN_EIGHT)                                                                       \
                c##I = _mm512_dpbf16_ps(c##I, (__m512bh)b0, (__m512bh)x);                                      \
            e##I = _mm256_dpbf16_ps(e##I, (__m256bh)b8, (__m256bh)_mm512_castsi512_si256(x));                  \
        }                                                                                                      \
    }

/* Pair steps before a tile's end at which its C is fetched again. */
#define C_REFETCH_PAIRS 32

/* Fetches the rows x (16 * panels) C tile at c towards L1. */
static inline __attribute__((always_inline)) void prefetch_c_tile(const int rows, const int panels, const float *c,
                                                                   size_t ldc)
{
    for (int i = 0; i < rows; i++)
        for (int h = 0; h < panels; h++)
            _mm_prefetch((const char *)(c + (size_t)i * ldc + (size_t)h * 16), _MM_HINT_T0);
}

/* Finishes the rows x nr tile whose row i is acc[2 i] (and acc[2 i + 1] for columns 16..31) with the epilogue of a
 * layer whose activations are kept in bf16 (alpha 1, beta 0): + bias, then ReLU or LeakyReLU, or the derivative of
 * either read from the bf16 saved16, with the operations of the fp32 finish (finish_avx512.h); stored to out16 in
 * bf16 (VCVTNEPS2BF16: bf16.h's rules) or to C. Out of line, as the fp32 finish. */
static __attribute__((noinline)) void finish_tile_bf16_io(float *c, size_t ldc, int rows, int panels,
                                                          const __m512 *acc, size_t nr, const elbo_tile_epilogue *epi)
{
    const __m512 zero = _mm512_setzero_ps(), slope = _mm512_set1_ps(epi->slope);
    for (int h = 0; h < panels; h++) {
        const size_t cols = panels > 1 ? (h ? nr - 16 : 16) : nr, off = (size_t)h * 16;
        const __mmask16 m = (__mmask16)((1u << cols) - 1);
        const __m512 bias = epi->bias ? _mm512_maskz_loadu_ps(m, epi->bias + off) : zero;
        for (int i = 0; i < rows; i++) {
            __m512 v = acc[2 * i + h];
            if (epi->bias)
                v = _mm512_add_ps(v, bias);
            if (epi->act == ELBO_ACT_RELU)
                v = _mm512_max_ps(zero, v);
            else if (epi->act == ELBO_ACT_LEAKY_RELU)
                v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), _mm512_mul_ps(v, slope), v);
            if (epi->saved16 && epi->grad) {
                const __m512i s16 = _mm512_cvtepu16_epi32(
                    _mm256_maskz_loadu_epi16(m, epi->saved16 + (size_t)i * epi->ld_saved + off));
                const __mmask16 pos = _mm512_cmp_ps_mask(_mm512_castsi512_ps(_mm512_slli_epi32(s16, 16)), zero, _CMP_GT_OQ);
                v = epi->grad == ELBO_ACT_RELU ? _mm512_maskz_mov_ps(pos, v)
                                               : _mm512_mask_blend_ps(pos, _mm512_mul_ps(v, slope), v);
            }
            if (epi->out16)
                _mm256_mask_storeu_epi16(epi->out16 + (size_t)i * epi->ld_out16 + off, m, (__m256i)_mm512_cvtneps_pbh(v));
            else
                _mm512_mask_storeu_ps(c + (size_t)i * ldc + off, m, v);
        }
    }
}

/* C (rows x nr of 12 x 32) = alpha * A (rows x kp pair words, pair (i, q) at a[i*a_rs + q*a_cs]: a packed panel or
 * a bf16 A in place) * B panel (kp x 32) + beta * C, then epi, for compile-time rows (1..12) and panels (1: nr <= 16;
 * 2: two zmm; EIGHT_COLS: nr <= 8 on ymm; SIXTEEN_EIGHT: 17..24 columns, the last 8 on ymm). Every element is one
 * chain of pair steps from zero, whatever the tile. */
static inline __attribute__((always_inline)) void tile_body(const int rows, const int panels, size_t kp,
                                                             const uint32_t *restrict a, size_t a_rs, size_t a_cs,
                                                             const uint32_t *restrict b, float *restrict c, size_t ldc,
                                                             size_t nr, float alpha, float beta,
                                                             const elbo_tile_epilogue *epi)
{
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0;
    __m512 c9 = c0, c10 = c0, c11 = c0, d0 = c0, d1 = c0, d2 = c0, d3 = c0, d4 = c0, d5 = c0, d6 = c0, d7 = c0;
    __m512 d8 = c0, d9 = c0, d10 = c0, d11 = c0;
    __m256 e0 = _mm256_setzero_ps(), e1 = e0, e2 = e0, e3 = e0, e4 = e0, e5 = e0, e6 = e0, e7 = e0, e8 = e0;
    __m256 e9 = e0, e10 = e0, e11 = e0;
    const int halves = panels == 2 || panels == SIXTEEN_EIGHT ? 2 : 1; /* 16-column halves of C it stores */
    prefetch_c_tile(rows, halves, c, ldc);
    /* Two parts: C is fetched again between them, C_REFETCH_PAIRS steps before the end (gemm_avx512.c's reason:
     * a C row stride of a multiple of 4 KiB puts the tile's rows in two L1 sets, which the streaming B evicts). */
    const size_t refetch_at = kp > C_REFETCH_PAIRS ? kp - C_REFETCH_PAIRS : 0;
    size_t q = 0;
    for (int part = 0; part < 2; part++) {
        const size_t end = part == 0 ? refetch_at : kp;
#pragma GCC unroll 2
        for (; q < end; q++) {
            const __m512i b0 = panels == EIGHT_COLS ? _mm512_setzero_si512() : _mm512_loadu_si512(b);
            const __m512i b1 = panels == 2 ? _mm512_loadu_si512(b + 16) : b0;
            const __m256i b8 = panels == EIGHT_COLS      ? _mm256_loadu_si256((const __m256i *)b)
                               : panels == SIXTEEN_EIGHT ? _mm256_loadu_si256((const __m256i *)(b + 16))
                                                         : _mm256_setzero_si256();
            ROW_STEP(0) ROW_STEP(1) ROW_STEP(2) ROW_STEP(3) ROW_STEP(4) ROW_STEP(5)
            ROW_STEP(6) ROW_STEP(7) ROW_STEP(8) ROW_STEP(9) ROW_STEP(10) ROW_STEP(11)
            a += a_cs;
            b += NR;
        }
        if (part == 0 && refetch_at > 0)
            prefetch_c_tile(rows, halves, c, ldc);
    }
    if (panels >= EIGHT_COLS) { /* the ymm accumulators as their half's zmm ones, the upper lanes zero */
#define WIDEN(I)                                                                                               \
    if (panels == EIGHT_COLS)                                                                                  \
        c##I = _mm512_zextps256_ps512(e##I);                                                                   \
    else                                                                                                       \
        d##I = _mm512_zextps256_ps512(e##I);
        WIDEN(0) WIDEN(1) WIDEN(2) WIDEN(3) WIDEN(4) WIDEN(5) WIDEN(6) WIDEN(7) WIDEN(8) WIDEN(9) WIDEN(10) WIDEN(11)
#undef WIDEN
    }
    if (alpha == 1.0f && beta == 0.0f && !epi) { /* stored as they are, masked to the valid columns */
        const __mmask16 left = (__mmask16)(halves > 1 ? 0xffff : (1u << nr) - 1);
        const __mmask16 right = (__mmask16)(halves > 1 ? (1u << (nr - 16)) - 1 : 0);
#define STORE_ROW(I)                                                                                           \
    if (rows > I) {                                                                                            \
        _mm512_mask_storeu_ps(c + (size_t)I * ldc, left, c##I);                                                \
        if (halves > 1)                                                                                        \
            _mm512_mask_storeu_ps(c + (size_t)I * ldc + 16, right, d##I);                                      \
    }
        STORE_ROW(0) STORE_ROW(1) STORE_ROW(2) STORE_ROW(3) STORE_ROW(4) STORE_ROW(5)
        STORE_ROW(6) STORE_ROW(7) STORE_ROW(8) STORE_ROW(9) STORE_ROW(10) STORE_ROW(11)
#undef STORE_ROW
        return;
    }
    if (!epi) { /* alpha and beta only (a K block after the first): in registers, with the fp32 finish's operations */
        const __mmask16 left = (__mmask16)(halves > 1 ? 0xffff : (1u << nr) - 1);
        const __mmask16 right = (__mmask16)(halves > 1 ? (1u << (nr - 16)) - 1 : 0);
#define FINISH_HALF(I, V, OFF, MASK)                                                                            \
    {                                                                                                          \
        float *cr = c + (size_t)I * ldc + (OFF);                                                               \
        _mm512_mask_storeu_ps(cr, MASK, elbo_avx512_alpha_beta(V, cr, MASK, alpha, beta));                     \
    }
#define FINISH_ROW(I)                                                                                          \
    if (rows > I) {                                                                                            \
        FINISH_HALF(I, c##I, 0, left)                                                                         \
        if (halves > 1)                                                                                        \
            FINISH_HALF(I, d##I, 16, right)                                                                   \
    }
        FINISH_ROW(0) FINISH_ROW(1) FINISH_ROW(2) FINISH_ROW(3) FINISH_ROW(4) FINISH_ROW(5)
        FINISH_ROW(6) FINISH_ROW(7) FINISH_ROW(8) FINISH_ROW(9) FINISH_ROW(10) FINISH_ROW(11)
#undef FINISH_ROW
#undef FINISH_HALF
        return;
    }
    const __m512 acc[2 * MR] = {c0, d0, c1, d1, c2, d2, c3, d3, c4,  d4,  c5,  d5,
                                c6, d6, c7, d7, c8, d8, c9, d9, c10, d10, c11, d11};
    if (epi && (epi->out16 || epi->saved16))
        finish_tile_bf16_io(c, ldc, rows, halves, acc, nr, epi);
    else
        elbo_avx512_finish_tile(c, ldc, rows, halves, acc, nr, alpha, beta, epi);
}

typedef void (*tile_fn)(size_t kp, const uint32_t *a, size_t a_rs, size_t a_cs, const uint32_t *b, float *c,
                        size_t ldc, size_t nr, float alpha, float beta, const elbo_tile_epilogue *epi);

/* Defines NAME: tile_body for ROWS rows over PANELS (tile_body's values). */
#define DEFINE_TILE(NAME, ROWS, PANELS)                                                                        \
    static void NAME(size_t kp, const uint32_t *a, size_t a_rs, size_t a_cs, const uint32_t *b, float *c,      \
                     size_t ldc, size_t nr, float alpha, float beta, const elbo_tile_epilogue *epi)            \
    {                                                                                                          \
        tile_body(ROWS, PANELS, kp, a, a_rs, a_cs, b, c, ldc, nr, alpha, beta, epi);                           \
    }

DEFINE_TILE(rows1x16, 1, 1)
DEFINE_TILE(rows2x16, 2, 1)
DEFINE_TILE(rows3x16, 3, 1)
DEFINE_TILE(rows4x16, 4, 1)
DEFINE_TILE(rows5x16, 5, 1)
DEFINE_TILE(rows6x16, 6, 1)
DEFINE_TILE(rows7x16, 7, 1)
DEFINE_TILE(rows8x16, 8, 1)
DEFINE_TILE(rows9x16, 9, 1)
DEFINE_TILE(rows10x16, 10, 1)
DEFINE_TILE(rows11x16, 11, 1)
DEFINE_TILE(rows12x16, 12, 1)
DEFINE_TILE(rows1x8, 1, EIGHT_COLS)
DEFINE_TILE(rows2x8, 2, EIGHT_COLS)
DEFINE_TILE(rows3x8, 3, EIGHT_COLS)
DEFINE_TILE(rows4x8, 4, EIGHT_COLS)
DEFINE_TILE(rows5x8, 5, EIGHT_COLS)
DEFINE_TILE(rows6x8, 6, EIGHT_COLS)
DEFINE_TILE(rows7x8, 7, EIGHT_COLS)
DEFINE_TILE(rows8x8, 8, EIGHT_COLS)
DEFINE_TILE(rows9x8, 9, EIGHT_COLS)
DEFINE_TILE(rows10x8, 10, EIGHT_COLS)
DEFINE_TILE(rows11x8, 11, EIGHT_COLS)
DEFINE_TILE(rows12x8, 12, EIGHT_COLS)
DEFINE_TILE(rows1x24, 1, SIXTEEN_EIGHT)
DEFINE_TILE(rows2x24, 2, SIXTEEN_EIGHT)
DEFINE_TILE(rows3x24, 3, SIXTEEN_EIGHT)
DEFINE_TILE(rows4x24, 4, SIXTEEN_EIGHT)
DEFINE_TILE(rows5x24, 5, SIXTEEN_EIGHT)
DEFINE_TILE(rows6x24, 6, SIXTEEN_EIGHT)
DEFINE_TILE(rows7x24, 7, SIXTEEN_EIGHT)
DEFINE_TILE(rows8x24, 8, SIXTEEN_EIGHT)
DEFINE_TILE(rows9x24, 9, SIXTEEN_EIGHT)
DEFINE_TILE(rows10x24, 10, SIXTEEN_EIGHT)
DEFINE_TILE(rows11x24, 11, SIXTEEN_EIGHT)
DEFINE_TILE(rows12x24, 12, SIXTEEN_EIGHT)
DEFINE_TILE(rows1x32, 1, 2)
DEFINE_TILE(rows2x32, 2, 2)
DEFINE_TILE(rows3x32, 3, 2)
DEFINE_TILE(rows4x32, 4, 2)
DEFINE_TILE(rows5x32, 5, 2)
DEFINE_TILE(rows6x32, 6, 2)
DEFINE_TILE(rows7x32, 7, 2)
DEFINE_TILE(rows8x32, 8, 2)
DEFINE_TILE(rows9x32, 9, 2)
DEFINE_TILE(rows10x32, 10, 2)
DEFINE_TILE(rows11x32, 11, 2)

/* Tiles by row count (index mr, 1..12): up to 8 columns, one 16-column half, 16 + 8, two halves. */
static const tile_fn tiles8[MR + 1] = {NULL,     rows1x8, rows2x8, rows3x8,  rows4x8,  rows5x8, rows6x8,
                                       rows7x8,  rows8x8, rows9x8, rows10x8, rows11x8, rows12x8};
static const tile_fn tiles16[MR + 1] = {NULL,      rows1x16, rows2x16, rows3x16,  rows4x16,  rows5x16, rows6x16,
                                        rows7x16,  rows8x16, rows9x16, rows10x16, rows11x16, rows12x16};
static const tile_fn tiles24[MR + 1] = {NULL,      rows1x24, rows2x24, rows3x24,  rows4x24,  rows5x24, rows6x24,
                                        rows7x24,  rows8x24, rows9x24, rows10x24, rows11x24, rows12x24};
static const tile_fn tiles32[MR + 1] = {NULL,     rows1x32, rows2x32, rows3x32,  rows4x32,  rows5x32, rows6x32,
                                        rows7x32, rows8x32, rows9x32, rows10x32, rows11x32, NULL};

/* elbo_gemm_bf16_ukernel_fn: C (mr x nr of 12 x 32) from a packed A panel; the full tile inlined here, edge tiles
 * out of line. */
static void bf16_gemm_ukernel_12x32__avx512bf16(size_t kp, const uint32_t *a, const uint32_t *b, float *c,
                                                size_t ldc, size_t mr, size_t nr, float alpha, float beta,
                                                const elbo_tile_epilogue *epi)
{
    assert(mr >= 1 && mr <= MR && nr >= 1 && nr <= NR);
    if (mr == MR && nr > 24)
        tile_body(MR, 2, kp, a, 1, MR, b, c, ldc, nr, alpha, beta, epi);
    else if (nr > 24)
        tiles32[mr](kp, a, 1, MR, b, c, ldc, nr, alpha, beta, epi);
    else if (nr > 16)
        tiles24[mr](kp, a, 1, MR, b, c, ldc, nr, alpha, beta, epi);
    else if (nr > 8)
        tiles16[mr](kp, a, 1, MR, b, c, ldc, nr, alpha, beta, epi);
    else
        tiles8[mr](kp, a, 1, MR, b, c, ldc, nr, alpha, beta, epi);
}

/* elbo_gemm_bf16_ukernel_strided_a_fn: as above with A's pairs at a[i*a_rs + q*a_cs]. */
static void bf16_gemm_ukernel_12x32_strided_a__avx512bf16(size_t kp, const uint32_t *a, size_t a_rs, size_t a_cs,
                                                          const uint32_t *b, float *c, size_t ldc, size_t mr,
                                                          size_t nr, float alpha, float beta,
                                                          const elbo_tile_epilogue *epi)
{
    assert(mr >= 1 && mr <= MR && nr >= 1 && nr <= NR);
    if (mr == MR && nr > 24)
        tile_body(MR, 2, kp, a, a_rs, a_cs, b, c, ldc, nr, alpha, beta, epi);
    else if (nr > 24)
        tiles32[mr](kp, a, a_rs, a_cs, b, c, ldc, nr, alpha, beta, epi);
    else if (nr > 16)
        tiles24[mr](kp, a, a_rs, a_cs, b, c, ldc, nr, alpha, beta, epi);
    else if (nr > 8)
        tiles16[mr](kp, a, a_rs, a_cs, b, c, ldc, nr, alpha, beta, epi);
    else
        tiles8[mr](kp, a, a_rs, a_cs, b, c, ldc, nr, alpha, beta, epi);
}

/* 16 floats' bf16 bits (VCVTNEPS2BF16: bf16.h's rules) from the floats at x, lanes past n (< 16) zero. */
static inline __m256i bf16_of16(const float *x, size_t n)
{
    const __m512 v = n >= 16 ? _mm512_loadu_ps(x) : _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), x);
    return (__m256i)_mm512_cvtneps_pbh(v);
}

/* 16 bf16 at x as 16-bit lanes, lanes past n (< 16) zero. */
static inline __m256i bf16_load16(const elbo_bf16 *x, size_t n)
{
    return n >= 16 ? _mm256_loadu_si256((const __m256i *)x) : _mm256_maskz_loadu_epi16((__mmask16)((1u << n) - 1), x);
}

/* Elements [d, d + n) (n <= 32) of a stored row of F32 or BF16 x as 32 bf16 in order (16 pair words), zero past n. */
static inline __m512i row_pairs(elbo_operand x, size_t row, size_t d, size_t n)
{
    if (x.dtype == ELBO_DTYPE_BF16) {
        const elbo_bf16 *s = (const elbo_bf16 *)x.data + row * x.ld + d;
        return n >= 32 ? _mm512_loadu_si512(s) : _mm512_maskz_loadu_epi16((__mmask32)((1ull << n) - 1), s);
    }
    const float *s = (const float *)x.data + row * x.ld + d;
    const __m256i lo = bf16_of16(s, n < 16 ? n : 16), hi = n > 16 ? bf16_of16(s + 16, n - 16) : _mm256_setzero_si256();
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* Transposes 16 x 16 words in place (r[i] word t <-> r[t] word i). */
static inline void transpose16(__m512i r[16])
{
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* r[4g + s] now holds, per 128-bit lane L, words s of rows 4g..4g+3 in lane L's order: rows 4g..4g+3 at
     * word 4L + s. Gather the lanes: output row 4L + s = lanes L of r[s], r[4 + s], r[8 + s], r[12 + s]. */
    for (int s = 0; s < 4; s++) {
        const __m512i x0 = r[s], x1 = r[4 + s], x2 = r[8 + s], x3 = r[12 + s];
        const __m512i y0 = _mm512_shuffle_i32x4(x0, x1, 0x44), y1 = _mm512_shuffle_i32x4(x0, x1, 0xee);
        const __m512i y2 = _mm512_shuffle_i32x4(x2, x3, 0x44), y3 = _mm512_shuffle_i32x4(x2, x3, 0xee);
        t[s] = _mm512_shuffle_i32x4(y0, y2, 0x88);      /* lane 0 */
        t[4 + s] = _mm512_shuffle_i32x4(y0, y2, 0xdd);  /* lane 1 */
        t[8 + s] = _mm512_shuffle_i32x4(y1, y3, 0x88);  /* lane 2 */
        t[12 + s] = _mm512_shuffle_i32x4(y1, y3, 0xdd); /* lane 3 */
    }
    for (int i = 0; i < 16; i++)
        r[i] = t[i];
}

/* Pair panel rows [o0, o0 + rows) (rows <= 16), written to dst lanes [l0, l0 + rows) of each depth pair (row
 * stride w words), from a source whose pairs run along stored rows: 16 pairs at a time, transposed. */
static void pack_depth_contiguous16(uint32_t *dst, elbo_operand x, size_t o0, size_t d0, size_t rows, size_t depth,
                                    size_t w, size_t l0)
{
    const __mmask16 lanes = (__mmask16)((1u << rows) - 1);
    for (size_t d = 0; d < depth; d += 32) {
        const size_t n = depth - d < 32 ? depth - d : 32, pairs = (n + 1) / 2;
        __m512i r[16];
        for (size_t i = 0; i < 16; i++)
            r[i] = i < rows ? row_pairs(x, o0 + i, d0 + d, n) : _mm512_setzero_si512();
        transpose16(r);
        for (size_t t = 0; t < pairs; t++)
            _mm512_mask_storeu_epi32(dst + (d / 2 + t) * w + l0, lanes, r[t]);
    }
}

/* 16 pair words from stored rows d and d + 1 (has_hi 0: zero) of F32 or BF16 x at columns [o, o + n), n <= 16. */
static inline __m512i pairs_across(elbo_operand x, size_t d, int has_hi, size_t o, size_t n)
{
    if (x.dtype == ELBO_DTYPE_BF16) {
        const elbo_bf16 *s = (const elbo_bf16 *)x.data + d * x.ld + o;
        const __m256i lo = bf16_load16(s, n), hi = has_hi ? bf16_load16(s + x.ld, n) : _mm256_setzero_si256();
        return _mm512_or_si512(_mm512_cvtepu16_epi32(lo), _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
    }
    const float *s = (const float *)x.data + d * x.ld + o;
    const __mmask16 m = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
    const __m512 lo = _mm512_maskz_loadu_ps(m, s), hi = has_hi ? _mm512_maskz_loadu_ps(m, s + x.ld) : _mm512_setzero_ps();
    return elbo_bf16_pair_words(lo, hi);
}

/* elbo_pack_bf16_fn: vector packing of F32 and BF16 sources, the generic routine for U8. */
static void pack_bf16_avx512bf16(uint32_t *dst, elbo_operand x, int depth_contiguous, size_t outer0, size_t depth0,
                                 size_t rows, size_t depth, size_t w)
{
    if (x.dtype == ELBO_DTYPE_U8) {
        elbo_pack_bf16_panel(dst, x, depth_contiguous, outer0, depth0, rows, depth, w);
        return;
    }
    const size_t kp = (depth + 1) / 2;
    for (size_t l0 = 0; l0 < w; l0 += 16) {
        const size_t n = l0 < rows ? (rows - l0 < 16 ? rows - l0 : 16) : 0, lanes = w - l0 < 16 ? w - l0 : 16;
        const __mmask16 out = (__mmask16)((1u << lanes) - 1);
        if (n == 0) {
            for (size_t q = 0; q < kp; q++)
                _mm512_mask_storeu_epi32(dst + q * w + l0, out, _mm512_setzero_si512());
        } else if (depth_contiguous) {
            pack_depth_contiguous16(dst, x, outer0 + l0, depth0, n, depth, w, l0);
            if (n < lanes) /* the padding lanes past rows */
                for (size_t q = 0; q < kp; q++)
                    _mm512_mask_storeu_epi32(dst + q * w + l0, (__mmask16)(out & ~((1u << n) - 1)), _mm512_setzero_si512());
        } else {
            for (size_t q = 0; q < kp; q++)
                _mm512_mask_storeu_epi32(dst + q * w + l0, out,
                                         pairs_across(x, depth0 + 2 * q, 2 * q + 1 < depth, outer0 + l0, n));
        }
    }
}

/* elbo_f32_to_bf16_fn: VCVTNE2PS2BF16 over 32 floats a step, the tail masked. */
static void f32_to_bf16_avx512bf16(elbo_bf16 *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
        _mm512_storeu_si512(y + i, (__m512i)v);
    }
    for (; i < n; i += 16) {
        const size_t m = n - i < 16 ? n - i : 16;
        _mm256_mask_storeu_epi16(y + i, (__mmask16)((1u << m) - 1), bf16_of16(x + i, m));
    }
}

/* The AVX-512 table's bf16 entries: the VDPBF16PS kernel where the CPU has AVX512_BF16 and AVX-512BW, else the
 * AVX2 conversion and no bf16 GEMM (bf16_missing names the feature). */
void elbo_bf16_register_avx512(elbo_kernels *k)
{
    const elbo_cpu_features *f = elbo_cpu_features_get();
    elbo_bf16_register_avx2(k);
    if (!f->avx512bf16 || !f->avx512bw || !f->avx512vl) {
        k->bf16_missing = !f->avx512bf16 ? "avx512_bf16" : !f->avx512bw ? "avx512bw" : "avx512vl";
        return;
    }
    k->f32_to_bf16 = f32_to_bf16_avx512bf16;
    k->gemm_bf16_ukernel = bf16_gemm_ukernel_12x32__avx512bf16;
    k->gemm_bf16_ukernel_strided_a = bf16_gemm_ukernel_12x32_strided_a__avx512bf16;
    k->gemm_bf16_ukernel_name = "bf16_gemm_ukernel_12x32__avx512bf16";
    k->bf16_missing = NULL;
    k->bf16_mr = MR;
    k->bf16_nr = NR;
    k->bf16_tile_io = 1;
    k->pack_bf16 = pack_bf16_avx512bf16;
    elbo_gemm_bf16_lanes_register_avx512bf16(k);
}

void elbo_bf16_dot2_hw(uint32_t *acc, const uint32_t *x, const uint32_t *y, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = (__mmask16)(n - i < 16 ? (1u << (n - i)) - 1 : 0xffff);
        const __m512 r = _mm512_dpbf16_ps(_mm512_maskz_loadu_ps(m, acc + i), (__m512bh)_mm512_maskz_loadu_epi32(m, x + i),
                                          (__m512bh)_mm512_maskz_loadu_epi32(m, y + i));
        _mm512_mask_storeu_ps(acc + i, m, r);
    }
}
