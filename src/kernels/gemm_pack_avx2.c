/* AVX2 packing into the 6 x 16 microkernel's panels: vector copies where the panel runs along a stored
 * row, 8 x 8 in-register transposes where it runs across stored rows. Output is bitwise equal to the
 * generic routines (uint8 is converted as (float)u / 255.0f, the same correctly rounded division). */
#include "kernels.h"

#include <immintrin.h>
#include <string.h>

#define MR 6
#define NR 16

/* Lane masks: loading 8 ints at mask_table + 8 - n enables the first n lanes (0 <= n <= 8). */
static const int mask_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* 8 uint8 values at s (n <= 8 of them valid, the rest zero) as floats value / 255. */
static inline __m256 u8_to_f32(const uint8_t *s, size_t n)
{
    __m128i v;
    if (n == 8) {
        v = _mm_loadl_epi64((const __m128i *)s);
    } else {
        uint8_t t[8] = {0};
        memcpy(t, s, n);
        v = _mm_loadl_epi64((const __m128i *)t);
    }
    return _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)), _mm256_set1_ps(255.0f));
}

/* Elements [c0, c0+n) of x's stored row r (n <= 8) as a vector, lanes past n zero. */
static inline __m256 load_row8(elbo_operand x, size_t r, size_t c0, size_t n)
{
    if (n == 0)
        return _mm256_setzero_ps();
    if (x.dtype == ELBO_DTYPE_U8)
        return u8_to_f32((const uint8_t *)x.data + r * x.ld + c0, n);
    const float *s = (const float *)x.data + r * x.ld + c0;
    if (n == 8)
        return _mm256_loadu_ps(s);
    return _mm256_maskload_ps(s, _mm256_loadu_si256((const __m256i *)(mask_table + 8 - n)));
}

/* In-place transpose of an 8 x 8 block held as 8 row vectors. */
static inline void transpose8(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Loads an 8 (outer) x 8 (depth) block: stored rows outer0 + i (i < rows, others zero), depth columns
 * [d0, d0+n), and transposes it so that r[t] holds depth d0 + t for the 8 outer indices. */
static inline void load_transposed(__m256 r[8], elbo_operand x, size_t outer0, size_t rows, size_t d0, size_t n)
{
    for (size_t i = 0; i < 8; i++)
        r[i] = i < rows ? load_row8(x, outer0 + i, d0, n) : _mm256_setzero_ps();
    transpose8(r);
}

/* Stores the first 6 lanes of v at d; `last` avoids writing the 2 lanes past them. */
static inline void store6(float *d, __m256 v, int last)
{
    if (!last) {
        _mm256_storeu_ps(d, v); /* lanes 6, 7 are rewritten by the next depth step */
        return;
    }
    _mm_storeu_ps(d, _mm256_castps256_ps128(v));
    _mm_storel_pi((__m64 *)(d + 4), _mm256_extractf128_ps(v, 1));
}

/* Stores one packed A depth step of width w (6, or 12: lo holds lanes 0..7, hi lanes 8..11) at d; `last`
 * avoids writing past it (otherwise lanes 6, 7 of a 6-wide step are rewritten by the next one). */
static inline void store_a_step(float *d, size_t w, __m256 lo, __m256 hi, int last)
{
    if (w == 2 * MR) {
        _mm256_storeu_ps(d, lo);
        _mm_storeu_ps(d + 8, _mm256_castps256_ps128(hi));
    } else {
        store6(d, lo, last);
    }
}

/* One A panel (w x kc, dst[p*w + i], w = 6 or 12) from A stored M x K: stored rows walked along depth, 8 x 8
 * blocks transposed in registers. */
static void pack_a_panel_rows(float *dst, elbo_operand a, size_t i0, size_t k0, size_t rows, size_t kc, size_t w)
{
    size_t rows0 = rows < 8 ? rows : 8, rows1 = rows - rows0;
    for (size_t p = 0; p < kc; p += 8) {
        size_t n = kc - p < 8 ? kc - p : 8;
        __m256 lo[8], hi[8];
        load_transposed(lo, a, i0, rows0, k0 + p, n);
        if (w > 8)
            load_transposed(hi, a, i0 + 8, rows1, k0 + p, n);
        for (size_t t = 0; t < n; t++)
            store_a_step(dst + (p + t) * w, w, lo[t], w > 8 ? hi[t] : lo[t], p + t + 1 == kc);
    }
}

/* Stored rows per pass of pack_a_block_cols: a pass's pieces of the block stay in L1 while every panel takes its
 * depth steps from them. */
#define A_COLS_PASS 8

/* An A block (mc x kc as panels of w rows, w = 6 or 12, panel ir at dst + ir * kc) from A stored K x M, in passes
 * of A_COLS_PASS stored rows: each pass's rows are read once into L1, then each panel takes its depth steps of
 * the pass from them, a contiguous run of its own (walking one stored row across all panels instead wrote to
 * every panel in turn, and panels kc x w floats apart map to the same few L1 sets). */
static void pack_a_block_cols(float *dst, elbo_operand a, size_t i0, size_t k0, size_t mc, size_t kc, size_t w)
{
    const int f32_rows = a.dtype == ELBO_DTYPE_F32 && w == 2 * MR;
    for (size_t p0 = 0; p0 < kc; p0 += A_COLS_PASS) {
        size_t p1 = kc - p0 < A_COLS_PASS ? kc : p0 + A_COLS_PASS;
        for (size_t ir = 0; ir < mc; ir += w) {
            size_t rows = mc - ir < w ? mc - ir : w, rows0 = rows < 8 ? rows : 8, rows1 = rows - rows0;
            if (f32_rows && rows == w) { /* whole 12-element pieces: two plain loads and stores each */
                const float *s = (const float *)a.data + (k0 + p0) * a.ld + i0 + ir;
                for (size_t p = p0; p < p1; p++, s += a.ld) {
                    float *d = dst + ir * kc + p * w;
                    _mm256_storeu_ps(d, _mm256_loadu_ps(s));
                    _mm_storeu_ps(d + 8, _mm_loadu_ps(s + 8));
                }
                continue;
            }
            for (size_t p = p0; p < p1; p++) {
                __m256 lo = load_row8(a, k0 + p, i0 + ir, rows0);
                __m256 hi = w > 8 ? load_row8(a, k0 + p, i0 + ir + 8, rows1) : lo;
                store_a_step(dst + ir * kc + p * w, w, lo, hi, p + 1 == kc);
            }
        }
    }
}

/* AVX2 elbo_pack_a_fn for MR = 6 (AVX2 tile) and 12 (AVX-512 tile); the generic routine for another mr. */
static void pack_a_block_avx2(float *dst, elbo_operand a, size_t i0, size_t k0, size_t mc, size_t kc, size_t mr)
{
    if (mr != MR && mr != 2 * MR) {
        elbo_pack_a_block(dst, a, i0, k0, mc, kc, mr);
        return;
    }
    if (a.trans != ELBO_NOTRANS) {
        pack_a_block_cols(dst, a, i0, k0, mc, kc, mr);
        return;
    }
    for (size_t ir = 0; ir < mc; ir += mr) {
        size_t rows = mc - ir < mr ? mc - ir : mr;
        pack_a_panel_rows(dst + ir * kc, a, i0 + ir, k0, rows, kc, mr);
    }
}

/* One B panel (kc x 16, dst[p*16 + j]) from B stored K x N: each depth step copies 16 contiguous elements. */
static void pack_b_panel_rows(float *dst, elbo_operand b, size_t k0, size_t j0, size_t kc, size_t cols)
{
    size_t n0 = cols < 8 ? cols : 8, n1 = cols - n0;
    for (size_t p = 0; p < kc; p++) {
        _mm256_storeu_ps(dst + p * NR, load_row8(b, k0 + p, j0, n0));
        _mm256_storeu_ps(dst + p * NR + 8, load_row8(b, k0 + p, j0 + 8, n1));
    }
}

/* One B panel (kc x 16) from B stored N x K: 16 stored rows, transposed 8 x 8 at a time. */
static void pack_b_panel_cols(float *dst, elbo_operand b, size_t k0, size_t j0, size_t kc, size_t cols)
{
    size_t rows0 = cols < 8 ? cols : 8, rows1 = cols - rows0;
    for (size_t p = 0; p < kc; p += 8) {
        size_t n = kc - p < 8 ? kc - p : 8;
        __m256 lo[8], hi[8];
        load_transposed(lo, b, j0, rows0, k0 + p, n);
        load_transposed(hi, b, j0 + 8, rows1, k0 + p, n);
        for (size_t t = 0; t < n; t++) {
            _mm256_storeu_ps(dst + (p + t) * NR, lo[t]);
            _mm256_storeu_ps(dst + (p + t) * NR + 8, hi[t]);
        }
    }
}

/* AVX2 elbo_pack_b_fn for NR = 16 (falls back to the generic routine for another nr). */
static void pack_b_panel_avx2(float *dst, elbo_operand b, size_t k0, size_t j0, size_t kc, size_t nc, size_t nr)
{
    if (nr != NR) {
        elbo_pack_b_panel(dst, b, k0, j0, kc, nc, nr);
        return;
    }
    for (size_t jr = 0; jr < nc; jr += NR) {
        size_t cols = nc - jr < NR ? nc - jr : NR;
        if (b.trans == ELBO_NOTRANS)
            pack_b_panel_rows(dst + jr * kc, b, k0, j0 + jr, kc, cols);
        else
            pack_b_panel_cols(dst + jr * kc, b, k0, j0 + jr, kc, cols);
    }
}

void elbo_gemm_pack_register_avx2(elbo_kernels *k)
{
    k->pack_a = pack_a_block_avx2;
    k->pack_b = pack_b_panel_avx2;
}
