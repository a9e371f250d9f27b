/* AVX-512 fused losses (elementwise.h): BCE and softmax on 16-wide zmm vectors (MSE is the AVX2 kernel), giving
 * the AVX2 kernels' bits (losses_avx2.c). SLEEF's AVX-512 expf and log1pf equal the AVX2 ones on every input these
 * kernels pass them (exp of x <= 0 or NaN, log1p of x in [0, 1]: elbo_sleef_avx512_mismatches), division is
 * correctly rounded, the softmax row's one log is the same libm call, and every other step is the same product,
 * sum or fused multiply-add. Each row's sum keeps the AVX2 kernels' 8-lane accumulator (a zmm's low half added
 * before its high half: lane k still adds the elements j = k mod 8 in increasing j) and the shared final tree.
 * Tails are masked loads and stores. */
#include "kernels.h"
#include "lanes_avx2.h"

#include <assert.h>
#include <immintrin.h>
#include <math.h>
#include <sleef.h>

#define VEC 16

/* Mask of the first r (0..16) lanes. */
static inline __mmask16 first_lanes(size_t r)
{
    return (__mmask16)((1u << r) - 1);
}

/* acc (8 lanes) + the first `valid` (1..16) lanes of term, eight at a time in element order, as the AVX2 kernels
 * add them (lanes past `valid` add +0, as the AVX2 kernels' masked tails do). */
static inline __m256 add_terms(__m256 acc, __m512 term, size_t valid)
{
    const __m512 kept = _mm512_maskz_mov_ps(first_lanes(valid), term);
    acc = _mm256_add_ps(acc, _mm512_castps512_ps256(kept));
    if (valid > 8)
        acc = _mm256_add_ps(acc, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(kept), 1)));
    return acc;
}

/* BCE block against label y: dlogits = gs (sigmoid(l) - y); returns max(l, 0) - y l + log1p(exp(-|l|)). */
static inline __m512 bce_const_block(__m512 l, __m512 y, __m512 gs, __m512 *dl)
{
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512 e = Sleef_expf16_u10avx512f(_mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(l), sign)));
    __m512 q = _mm512_div_ps(one, _mm512_add_ps(one, e));
    __m512 p = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(l, zero, _CMP_GE_OQ), _mm512_mul_ps(e, q), q);
    *dl = _mm512_mul_ps(gs, _mm512_sub_ps(p, y));
    __m512 lin = _mm512_fnmadd_ps(y, l, _mm512_max_ps(l, zero));
    return _mm512_add_ps(lin, Sleef_log1pf16_u10avx512f(e));
}

/* BCE with logits against the constant label y: dlogits (B, N) (NULL: not written), loss (B) from logits (B, N). */
static void bce_logits_const_avx512(float *dlogits, float *loss, const float *logits, float label,
                                    float grad_scale, size_t b, size_t n)
{
    assert(loss && logits && label >= 0.0f && label <= 1.0f);
    const __m512 y = _mm512_set1_ps(label), gs = _mm512_set1_ps(grad_scale);
    for (size_t i = 0; i < b; i++) {
        const float *li = logits + i * n;
        float *dli = dlogits ? dlogits + i * n : NULL;
        __m256 acc = _mm256_setzero_ps();
        for (size_t j = 0; j < n; j += VEC) {
            const size_t valid = n - j < VEC ? n - j : VEC;
            const __mmask16 k = first_lanes(valid);
            __m512 dl, term = bce_const_block(_mm512_maskz_loadu_ps(k, li + j), y, gs, &dl);
            acc = add_terms(acc, term, valid);
            if (dli)
                _mm512_mask_storeu_ps(dli + j, k, dl);
        }
        loss[i] = sum_lanes(acc);
    }
}

/* The maximum of row (C), or NaN if the row holds a NaN (masked-off tail lanes count as -inf). */
static float row_max(const float *row, size_t c)
{
    const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
    __m512 mx = neg_inf;
    __mmask16 nan = 0;
    for (size_t j = 0; j < c; j += VEC) {
        const __m512 l = _mm512_mask_loadu_ps(neg_inf, first_lanes(c - j < VEC ? c - j : VEC), row + j);
        mx = _mm512_max_ps(mx, l);
        nan |= _mm512_cmp_ps_mask(l, l, _CMP_UNORD_Q);
    }
    return nan ? NAN : _mm512_reduce_max_ps(mx);
}

/* Softmax cross-entropy: dlogits (B, C, stride ld) (NULL: not written), loss (B), argmax (B) (NULL: not written)
 * from logits (B, C, stride ld) and labels (B). The passes of the AVX2 kernel: the row maximum; exp(l - max),
 * their sum and the first maximum (exponentials parked in dlogits, so it may alias logits); the gradient. */
static void softmax_ce_avx512(float *dlogits, float *loss, uint32_t *argmax, const float *logits,
                              const uint8_t *labels, float grad_scale, size_t b, size_t c, size_t ld)
{
    assert(loss && logits && labels && c >= 1 && ld >= c);
    const __m512 gs = _mm512_set1_ps(grad_scale), one = _mm512_set1_ps(1.0f);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (size_t i = 0; i < b; i++) {
        const float *row = logits + i * ld;
        float *drow = dlogits ? dlogits + i * ld : NULL;
        const size_t label = labels[i];
        assert(label < c);
        const float mx = row_max(row, c), target = row[label];
        const __m512 m = _mm512_set1_ps(mx);
        __m256 acc = _mm256_setzero_ps();
        size_t first = c;
        for (size_t j = 0; j < c; j += VEC) {
            const size_t valid = c - j < VEC ? c - j : VEC;
            const __mmask16 k = first_lanes(valid);
            const __m512 l = _mm512_maskz_loadu_ps(k, row + j);
            const __m512 e = Sleef_expf16_u10avx512f(_mm512_sub_ps(l, m));
            const unsigned cand = k & (_mm512_cmp_ps_mask(l, m, _CMP_EQ_OQ) | _mm512_cmp_ps_mask(l, l, _CMP_UNORD_Q));
            if (first == c && cand)
                first = j + (size_t)__builtin_ctz(cand);
            acc = add_terms(acc, e, valid);
            if (drow)
                _mm512_mask_storeu_ps(drow + j, k, e);
        }
        const float s = sum_lanes(acc);
        loss[i] = (mx - target) + logf(s);
        if (argmax)
            argmax[i] = (uint32_t)first;
        if (!drow)
            continue;
        const __m512 sv = _mm512_set1_ps(s);
        for (size_t j = 0; j < c; j += VEC) {
            const __mmask16 k = first_lanes(c - j < VEC ? c - j : VEC);
            const __mmask16 hot = _mm512_cmpeq_epi32_mask(_mm512_add_epi32(lane, _mm512_set1_epi32((int)j)),
                                                          _mm512_set1_epi32((int)label));
            const __m512 p = _mm512_div_ps(_mm512_maskz_loadu_ps(k, drow + j), sv);
            const __m512 d = _mm512_sub_ps(p, _mm512_maskz_mov_ps(hot, one));
            _mm512_mask_storeu_ps(drow + j, k, _mm512_mul_ps(gs, d));
        }
    }
}

/* The AVX2 losses (already registered by elbo_elementwise_register_avx2) with BCE and softmax in zmm form. MSE
 * stays the AVX2 kernel: it is bound by memory, not arithmetic (128 x 784: 13.6 us in ymm, 13.9 us in zmm). */
void elbo_losses_register_avx512(elbo_kernels *k)
{
    k->bce_logits_const = bce_logits_const_avx512;
    k->softmax_ce = softmax_ce_avx512;
}
