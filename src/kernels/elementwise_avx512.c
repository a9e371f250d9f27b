/* AVX-512 fused elementwise kernels: the AVX2 table (elementwise_avx2.c) with the sigmoid + loss kernels on
 * 16-wide zmm vectors. SLEEF's AVX-512 expf and log1pf give the AVX2 ones' bits on every input these kernels
 * pass them (checked over all of them: exp of every x <= 0, log1p of every x in [0, 1]), division is correctly
 * rounded and every other step is the same product or sum, so dlogits and probs are the AVX2 kernels' bit for
 * bit. Each row's loss keeps the AVX2 kernels' 8-lane accumulator (a zmm's low half added before its high
 * half: lane k still adds the elements j = k mod 8 in increasing j) and the shared final tree. */
#include "kernels.h"
#include "lanes_avx2.h"

#include <immintrin.h>
#include <sleef.h>
#include <stdint.h>
#include <string.h>

#define VEC 16

/* Lanes 8..15 of v. */
static inline __m256 high_half(__m512 v)
{
    return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}

/* Targets x / 255 (correctly rounded division) of the 16 pixels at px, or of the first r of them (lanes past r
 * are 0, bytes past r are not read). */
static inline __m512 load_targets(const uint8_t *px, size_t r)
{
    __m128i bytes;
    if (r >= VEC) {
        bytes = _mm_loadu_si128((const __m128i *)px);
    } else {
        uint8_t buf[VEC] = {0};
        memcpy(buf, px, r);
        bytes = _mm_loadu_si128((const __m128i *)buf);
    }
    __m512 x = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes));
    return _mm512_div_ps(x, _mm512_set1_ps(255.0f));
}

/* Stable logistic of l: returns p and sets *e = exp(-|l|), *dp = p (1 - p) = e / (1 + e)^2. */
static inline __m512 stable_sigmoid(__m512 l, __m512 *e, __m512 *dp)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512 ex = Sleef_expf16_u10avx512f(_mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(l), sign)));
    __m512 q = _mm512_div_ps(one, _mm512_add_ps(one, ex));
    __m512 eq = _mm512_mul_ps(ex, q);
    *e = ex;
    *dp = _mm512_mul_ps(eq, q);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(l, _mm512_setzero_ps(), _CMP_GE_OQ), eq, q);
}

/* MSE block: p = sigmoid(l), dlogits = coef (p - t) p (1 - p); returns the squared errors (p - t)^2. */
static inline __m512 mse_block(__m512 l, __m512 t, __m512 coef, __m512 *p, __m512 *dl)
{
    __m512 e, dp;
    *p = stable_sigmoid(l, &e, &dp);
    __m512 diff = _mm512_sub_ps(*p, t);
    *dl = _mm512_mul_ps(_mm512_mul_ps(coef, diff), dp);
    return _mm512_mul_ps(diff, diff);
}

/* BCE block: p = sigmoid(l), dlogits = gs (p - t); returns max(l, 0) - t l + log1p(exp(-|l|)). */
static inline __m512 bce_block(__m512 l, __m512 t, __m512 gs, __m512 *p, __m512 *dl)
{
    __m512 e, dp;
    *p = stable_sigmoid(l, &e, &dp);
    *dl = _mm512_mul_ps(gs, _mm512_sub_ps(*p, t));
    __m512 lin = _mm512_fnmadd_ps(t, l, _mm512_max_ps(l, _mm512_setzero_ps()));
    return _mm512_add_ps(lin, Sleef_log1pf16_u10avx512f(e));
}

/* acc (8 lanes) + the first `valid` (1..16) terms, eight at a time in element order, as the AVX2 kernels add
 * them (lanes past `valid` are not added). */
static inline __m256 add_terms(__m256 acc, __m512 term, size_t valid)
{
    const __m256 lo = _mm512_castps512_ps256(term);
    const __m256 hi = high_half(term);
    if (valid >= 8) {
        acc = _mm256_add_ps(acc, lo);
    } else {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        acc = _mm256_add_ps(acc, _mm256_and_ps(lo, _mm256_castsi256_ps(
                                                       _mm256_cmpgt_epi32(_mm256_set1_epi32((int)valid), lane))));
    }
    if (valid > 8) {
        const __m256i lane = _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15);
        acc = _mm256_add_ps(acc, valid >= VEC ? hi
                                              : _mm256_and_ps(hi, _mm256_castsi256_ps(_mm256_cmpgt_epi32(
                                                                      _mm256_set1_epi32((int)valid), lane))));
    }
    return acc;
}

/* Sigmoid loss rows: dlogits, probs (B, D), loss (B) from logits (B, D) and pixels x (B, D); with bce (a
 * compile-time constant) the BCE block and loss = row sum, else the MSE block and loss = loss_scale * row
 * sum; coef is the per-block gradient scale. The last 1..15 elements of a row are masked (not read or
 * written past D). */
static inline __attribute__((always_inline)) void
sigmoid_loss_rows(float *dlogits, float *loss, float *probs, const float *logits, const uint8_t *x,
                  __m512 coef, float loss_scale, size_t b, size_t d, int bce)
{
    for (size_t i = 0; i < b; i++) {
        const size_t row = i * d;
        const float *li = logits + row;
        const uint8_t *xi = x + row;
        float *dli = dlogits + row, *pi = probs ? probs + row : NULL;
        __m256 acc = _mm256_setzero_ps();
        for (size_t j = 0; j < d; j += VEC) {
            const size_t valid = d - j < VEC ? d - j : VEC;
            const __mmask16 m = (__mmask16)((1u << valid) - 1);
            __m512 l = _mm512_maskz_loadu_ps(m, li + j), t = load_targets(xi + j, valid), p, dl;
            __m512 term = bce ? bce_block(l, t, coef, &p, &dl) : mse_block(l, t, coef, &p, &dl);
            acc = add_terms(acc, term, valid);
            if (pi)
                _mm512_mask_storeu_ps(pi + j, m, p);
            _mm512_mask_storeu_ps(dli + j, m, dl);
        }
        loss[i] = bce ? sum_lanes(acc) : loss_scale * sum_lanes(acc);
    }
}

/* MSE on sigmoid outputs: dlogits, probs (B, D), loss (B) from logits (B, D) and pixels x (B, D). */
static void sigmoid_mse_avx512(float *dlogits, float *loss, float *probs, const float *logits, const uint8_t *x,
                               float recon_scale, float grad_scale, size_t b, size_t d)
{
    sigmoid_loss_rows(dlogits, loss, probs, logits, x, _mm512_set1_ps(grad_scale * recon_scale * 2.0f), recon_scale,
                      b, d, 0);
}

/* BCE from logits: dlogits, probs (B, D), loss (B) from logits (B, D) and pixels x (B, D). */
static void sigmoid_bce_avx512(float *dlogits, float *loss, float *probs, const float *logits, const uint8_t *x,
                               float grad_scale, size_t b, size_t d)
{
    sigmoid_loss_rows(dlogits, loss, probs, logits, x, _mm512_set1_ps(grad_scale), 1.0f, b, d, 1);
}

/* The AVX2 table's elementwise kernels with the zmm sigmoid + loss kernels in place of the AVX2 ones. */
void elbo_elementwise_register_avx512(elbo_kernels *k)
{
    elbo_elementwise_register_avx2(k);
    k->sigmoid_mse = sigmoid_mse_avx512;
    k->sigmoid_bce = sigmoid_bce_avx512;
    elbo_losses_register_avx512(k);
}

/* 1 when the 16 lanes of a and the two 8-lane halves b0, b1 hold the same bits (any NaN matching any NaN). */
static int same_lanes(__m512 a, __m256 b0, __m256 b1)
{
    uint32_t ra[VEC], rb[VEC]; /* unaligned stores: no 64-byte-aligned stack slot is needed */
    _mm512_storeu_ps((float *)ra, a);
    _mm256_storeu_ps((float *)rb, b0);
    _mm256_storeu_ps((float *)(rb + 8), b1);
    for (int k = 0; k < VEC; k++) {
        const int nan_a = (ra[k] & 0x7fffffffu) > 0x7f800000u, nan_b = (rb[k] & 0x7fffffffu) > 0x7f800000u;
        if (ra[k] != rb[k] && !(nan_a && nan_b))
            return 0;
    }
    return 1;
}

/* The 16 floats whose bit patterns are first .. first + 15, capped at last. */
static __m512 bit_patterns(uint64_t first, uint32_t last)
{
    uint32_t w[VEC];
    for (int k = 0; k < VEC; k++)
        w[k] = first + (uint64_t)k > last ? last : (uint32_t)(first + (uint64_t)k);
    return _mm512_loadu_ps((const float *)w);
}

/* Groups of 16 inputs where SLEEF's AVX-512 expf (x <= 0) or log1pf (x in [0, 1]) differs from the AVX2 one. */
size_t elbo_sleef_avx512_mismatches(void)
{
    size_t bad = 0;
    for (uint64_t u = 0x80000000u; u <= 0xffffffffu; u += VEC) { /* exp of every x <= 0 (and -NaN) */
        const __m512 x = bit_patterns(u, 0xffffffffu);
        const __m256 lo = _mm512_castps512_ps256(x), hi = high_half(x);
        bad += !same_lanes(Sleef_expf16_u10avx512f(x), Sleef_expf8_u10avx2(lo), Sleef_expf8_u10avx2(hi));
    }
    for (uint64_t u = 0; u <= 0x3f800000u; u += VEC) { /* log1p of every x in [0, 1] */
        const __m512 x = bit_patterns(u, 0x3f800000u);
        const __m256 lo = _mm512_castps512_ps256(x), hi = high_half(x);
        bad += !same_lanes(Sleef_log1pf16_u10avx512f(x), Sleef_log1pf8_u10avx2(lo), Sleef_log1pf8_u10avx2(hi));
    }
    return bad;
}
