/* AVX2 + FMA fused losses (elementwise.h); exp and log1p from SLEEF (1.0 ulp each), the one log per softmax row
 * from libm.
 *
 * Every kernel walks a row 8 floats at a time; the last 1..7 elements go through the same vector code with masked
 * loads and stores (masked-off lanes are neither read nor written), so tails compute exactly what full vectors do.
 * Per-row sums: one 8-lane accumulator (lane k adds the elements j = k mod 8 in increasing j), then the fixed tree
 * of sum_lanes — the order of the scalar and NEON kernels, independent of how a batch is split. */
#include "kernels.h"
#include "lanes_avx2.h"

#include <assert.h>
#include <immintrin.h>
#include <math.h>
#include <sleef.h>

#define VEC 8

/* Lane mask selecting the first r (0..8) lanes. */
static inline __m256i first_lanes(size_t r)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), lane);
}

/* BCE block against label y: dlogits = gs (sigmoid(l) - y); returns max(l, 0) - y l + log1p(exp(-|l|)). */
static inline __m256 bce_const_block(__m256 l, __m256 y, __m256 gs, __m256 *dl)
{
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    __m256 e = Sleef_expf8_u10avx2(_mm256_or_ps(l, _mm256_set1_ps(-0.0f)));
    __m256 q = _mm256_div_ps(one, _mm256_add_ps(one, e));
    __m256 p = _mm256_blendv_ps(_mm256_mul_ps(e, q), q, _mm256_cmp_ps(l, zero, _CMP_GE_OQ));
    *dl = _mm256_mul_ps(gs, _mm256_sub_ps(p, y));
    __m256 lin = _mm256_fnmadd_ps(y, l, _mm256_max_ps(l, zero));
    return _mm256_add_ps(lin, Sleef_log1pf8_u10avx2(e));
}

/* BCE with logits against the constant label y: dlogits (B, N) (NULL: not written), loss (B) from logits (B, N). */
static void bce_logits_const_avx2(float *dlogits, float *loss, const float *logits, float label,
                                  float grad_scale, size_t b, size_t n)
{
    assert(loss && logits && label >= 0.0f && label <= 1.0f);
    const __m256 y = _mm256_set1_ps(label), gs = _mm256_set1_ps(grad_scale);
    for (size_t i = 0; i < b; i++) {
        const float *li = logits + i * n;
        float *dli = dlogits ? dlogits + i * n : NULL;
        __m256 acc = _mm256_setzero_ps(), dl;
        size_t j = 0;
        for (; j + VEC <= n; j += VEC) {
            acc = _mm256_add_ps(acc, bce_const_block(_mm256_loadu_ps(li + j), y, gs, &dl));
            if (dli)
                _mm256_storeu_ps(dli + j, dl);
        }
        if (j < n) {
            const __m256i m = first_lanes(n - j);
            __m256 term = bce_const_block(_mm256_maskload_ps(li + j, m), y, gs, &dl);
            acc = _mm256_add_ps(acc, _mm256_and_ps(term, _mm256_castsi256_ps(m)));
            if (dli)
                _mm256_maskstore_ps(dli + j, m, dl);
        }
        loss[i] = sum_lanes(acc);
    }
}

/* Squared error: dpred (B, N) (NULL: not written), loss (B) from pred and target (B, N). */
static void mse_avx2(float *dpred, float *loss, const float *pred, const float *target, float grad_scale,
                     size_t b, size_t n)
{
    assert(loss && pred && target);
    const __m256 coef = _mm256_set1_ps(2.0f * grad_scale);
    for (size_t i = 0; i < b; i++) {
        const float *pi = pred + i * n, *ti = target + i * n;
        float *dpi = dpred ? dpred + i * n : NULL;
        __m256 acc = _mm256_setzero_ps();
        size_t j = 0;
        for (; j + VEC <= n; j += VEC) {
            const __m256 diff = _mm256_sub_ps(_mm256_loadu_ps(pi + j), _mm256_loadu_ps(ti + j));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(diff, diff));
            if (dpi)
                _mm256_storeu_ps(dpi + j, _mm256_mul_ps(coef, diff));
        }
        if (j < n) {
            const __m256i m = first_lanes(n - j);
            const __m256 diff = _mm256_sub_ps(_mm256_maskload_ps(pi + j, m), _mm256_maskload_ps(ti + j, m));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(diff, diff)); /* masked-off lanes are 0 - 0 */
            if (dpi)
                _mm256_maskstore_ps(dpi + j, m, _mm256_mul_ps(coef, diff));
        }
        loss[i] = sum_lanes(acc);
    }
}

/* Largest of the 8 lanes of v (NaN lanes aside: callers track NaN themselves). */
static inline float max_lanes(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The maximum of row (C), or NaN if the row holds a NaN; masked-off tail lanes count as -inf. */
static float row_max(const float *row, size_t c)
{
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    __m256 mx = neg_inf, nan = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + VEC <= c; j += VEC) {
        const __m256 l = _mm256_loadu_ps(row + j);
        mx = _mm256_max_ps(mx, l);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(l, l, _CMP_UNORD_Q));
    }
    if (j < c) {
        const __m256i m = first_lanes(c - j);
        const __m256 l = _mm256_blendv_ps(neg_inf, _mm256_maskload_ps(row + j, m), _mm256_castsi256_ps(m));
        mx = _mm256_max_ps(mx, l);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(l, l, _CMP_UNORD_Q));
    }
    return _mm256_movemask_ps(nan) ? NAN : max_lanes(mx);
}

/* Lanes of l that are the row maximum m or NaN, as bits of an int (the argmax candidates). */
static inline int max_candidates(__m256 l, __m256 m)
{
    return _mm256_movemask_ps(_mm256_or_ps(_mm256_cmp_ps(l, m, _CMP_EQ_OQ), _mm256_cmp_ps(l, l, _CMP_UNORD_Q)));
}

/* Softmax cross-entropy: dlogits (B, C, stride ld) (NULL: not written), loss (B), argmax (B) (NULL: not written)
 * from logits (B, C, stride ld) and labels (B). Three passes over a row: its maximum; exp(l - max), their sum and
 * the first maximum (the exponentials parked in dlogits, so dlogits may alias logits); the gradient. */
static void softmax_ce_avx2(float *dlogits, float *loss, uint32_t *argmax, const float *logits,
                            const uint8_t *labels, float grad_scale, size_t b, size_t c, size_t ld)
{
    assert(loss && logits && labels && c >= 1 && ld >= c);
    const __m256 gs = _mm256_set1_ps(grad_scale), one = _mm256_set1_ps(1.0f);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (size_t i = 0; i < b; i++) {
        const float *row = logits + i * ld;
        float *drow = dlogits ? dlogits + i * ld : NULL;
        const size_t label = labels[i];
        assert(label < c);
        const float mx = row_max(row, c), target = row[label];
        const __m256 m = _mm256_set1_ps(mx);
        __m256 acc = _mm256_setzero_ps();
        size_t first = c;
        for (size_t j = 0; j < c; j += VEC) {
            const size_t valid = c - j < VEC ? c - j : VEC;
            const __m256i k = first_lanes(valid);
            const __m256 l = valid == VEC ? _mm256_loadu_ps(row + j) : _mm256_maskload_ps(row + j, k);
            const __m256 e = Sleef_expf8_u10avx2(_mm256_sub_ps(l, m));
            const int cand = max_candidates(l, m) & ((1 << valid) - 1);
            if (first == c && cand)
                first = j + (size_t)__builtin_ctz((unsigned)cand);
            acc = _mm256_add_ps(acc, _mm256_and_ps(e, _mm256_castsi256_ps(k)));
            if (drow && valid == VEC)
                _mm256_storeu_ps(drow + j, e);
            else if (drow)
                _mm256_maskstore_ps(drow + j, k, e);
        }
        const float s = sum_lanes(acc);
        loss[i] = (mx - target) + logf(s);
        if (argmax)
            argmax[i] = (uint32_t)first;
        if (!drow)
            continue;
        const __m256 sv = _mm256_set1_ps(s);
        for (size_t j = 0; j < c; j += VEC) {
            const size_t valid = c - j < VEC ? c - j : VEC;
            const __m256i k = first_lanes(valid);
            const __m256 hot = _mm256_and_ps(one, _mm256_castsi256_ps(_mm256_cmpeq_epi32(
                                                       _mm256_add_epi32(lane, _mm256_set1_epi32((int)j)),
                                                       _mm256_set1_epi32((int)label))));
            if (valid == VEC) {
                const __m256 p = _mm256_div_ps(_mm256_loadu_ps(drow + j), sv);
                _mm256_storeu_ps(drow + j, _mm256_mul_ps(gs, _mm256_sub_ps(p, hot)));
            } else {
                const __m256 p = _mm256_div_ps(_mm256_maskload_ps(drow + j, k), sv);
                _mm256_maskstore_ps(drow + j, k, _mm256_mul_ps(gs, _mm256_sub_ps(p, hot)));
            }
        }
    }
}

void elbo_losses_register_avx2(elbo_kernels *k)
{
    k->bce_logits_const = bce_logits_const_avx2;
    k->mse = mse_avx2;
    k->softmax_ce = softmax_ce_avx2;
}
