/* AArch64 NEON fused losses (elementwise.h); exp and log1p from SLEEF (1.0 ulp each), the one log per softmax row
 * from libm.
 *
 * Every kernel walks a row 8 floats (two quads) at a time; the last 1..7 elements go through the same vector code
 * via a padded stack block (NEON has no masked loads), of which only the valid elements are copied back. Per-row
 * sums: two 4-lane accumulators, so partial k of 8 adds the elements j = k mod 8 in increasing j, then the fixed
 * tree ((p0+p4) + (p2+p6)) + ((p1+p5) + (p3+p7)) — the scalar and AVX2 kernels' order. */
#include "kernels.h"

#include <arm_neon.h>
#include <assert.h>
#include <math.h>
#include <sleef.h>
#include <string.h>

#include "lanes_neon.h"

/* 4 BCE elements against label y: dlogits = gs (sigmoid(l) - y); returns max(l, 0) - y l + log1p(exp(-|l|)). */
static inline float32x4_t bce_const4(float32x4_t l, float32x4_t y, float gs, float32x4_t *dl)
{
    const float32x4_t one = vdupq_n_f32(1.0f), zero = vdupq_n_f32(0.0f);
    float32x4_t e = Sleef_expf4_u10advsimd(vnegq_f32(vabsq_f32(l)));
    float32x4_t q = vdivq_f32(one, vaddq_f32(one, e));
    float32x4_t p = vbslq_f32(vcgeq_f32(l, zero), q, vmulq_f32(e, q));
    *dl = vmulq_n_f32(vsubq_f32(p, y), gs);
    float32x4_t lin = vfmsq_f32(vmaxq_f32(l, zero), y, l);
    return vaddq_f32(lin, Sleef_log1pf4_u10advsimd(e));
}

/* 8 BCE elements (see bce_const4); returns the loss terms. */
static inline f32x8 bce_const_block(f32x8 l, float32x4_t y, float gs, f32x8 *dl)
{
    return (f32x8){bce_const4(l.lo, y, gs, &dl->lo), bce_const4(l.hi, y, gs, &dl->hi)};
}

/* BCE with logits against the constant label y: dlogits (B, N) (NULL: not written), loss (B) from logits (B, N). */
static void bce_logits_const_neon(float *dlogits, float *loss, const float *logits, float label,
                                  float grad_scale, size_t b, size_t n)
{
    assert(loss && logits && label >= 0.0f && label <= 1.0f);
    const float32x4_t y = vdupq_n_f32(label);
    for (size_t i = 0; i < b; i++) {
        const float *li = logits + i * n;
        float *dli = dlogits ? dlogits + i * n : NULL;
        f32x8 acc = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}, dl;
        size_t j = 0;
        for (; j + BLOCK <= n; j += BLOCK) {
            acc = add8(acc, bce_const_block(load8(li + j), y, grad_scale, &dl));
            if (dli)
                store8(dli + j, dl);
        }
        if (j < n) {
            const size_t r = n - j;
            acc = add8(acc, keep_first(bce_const_block(load_part(li + j, r, 0.0f), y, grad_scale, &dl), r));
            if (dli)
                store_part(dli + j, dl, r);
        }
        loss[i] = sum_partials(acc);
    }
}

/* 8 squared errors of pred - target; sets *grad = coef (pred - target). */
static inline f32x8 mse_block(f32x8 p, f32x8 t, float coef, f32x8 *grad)
{
    const float32x4_t dlo = vsubq_f32(p.lo, t.lo), dhi = vsubq_f32(p.hi, t.hi);
    *grad = (f32x8){vmulq_n_f32(dlo, coef), vmulq_n_f32(dhi, coef)};
    return (f32x8){vmulq_f32(dlo, dlo), vmulq_f32(dhi, dhi)};
}

/* Squared error: dpred (B, N) (NULL: not written), loss (B) from pred and target (B, N). */
static void mse_neon(float *dpred, float *loss, const float *pred, const float *target, float grad_scale,
                     size_t b, size_t n)
{
    assert(loss && pred && target);
    const float coef = 2.0f * grad_scale;
    for (size_t i = 0; i < b; i++) {
        const float *pi = pred + i * n, *ti = target + i * n;
        float *dpi = dpred ? dpred + i * n : NULL;
        f32x8 acc = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}, g;
        size_t j = 0;
        for (; j + BLOCK <= n; j += BLOCK) {
            acc = add8(acc, mse_block(load8(pi + j), load8(ti + j), coef, &g));
            if (dpi)
                store8(dpi + j, g);
        }
        if (j < n) {
            const size_t r = n - j; /* padding lanes are 0 - 0 */
            acc = add8(acc, mse_block(load_part(pi + j, r, 0.0f), load_part(ti + j, r, 0.0f), coef, &g));
            if (dpi)
                store_part(dpi + j, g, r);
        }
        loss[i] = sum_partials(acc);
    }
}

/* Nonzero when some lane of the block is NaN. */
static inline int any_nan(f32x8 v)
{
    return vmaxvq_u32(vorrq_u32(vmvnq_u32(vceqq_f32(v.lo, v.lo)), vmvnq_u32(vceqq_f32(v.hi, v.hi)))) != 0;
}

/* The maximum of row (C), or NaN if the row holds a NaN (tail padding counts as -inf). */
static float row_max(const float *row, size_t c)
{
    float32x4_t mx = vdupq_n_f32(-INFINITY);
    int nan = 0;
    for (size_t j = 0; j < c; j += BLOCK) {
        const f32x8 l = c - j >= BLOCK ? load8(row + j) : load_part(row + j, c - j, -INFINITY);
        mx = vmaxq_f32(mx, vmaxq_f32(l.lo, l.hi));
        nan |= any_nan(l);
    }
    return nan ? NAN : vmaxvq_f32(mx);
}

/* The first of the r (<= 8) lanes of l equal to m or NaN, or r if none. */
static inline size_t first_candidate(f32x8 l, float m, size_t r)
{
    float v[BLOCK];
    store8(v, l);
    for (size_t k = 0; k < r; k++)
        if (v[k] == m || isnan(v[k]))
            return k;
    return r;
}

/* Softmax cross-entropy: dlogits (B, C, stride ld) (NULL: not written), loss (B), argmax (B) (NULL: not written)
 * from logits (B, C, stride ld) and labels (B). Three passes over a row: its maximum; exp(l - max), their sum and
 * the first maximum (exponentials parked in dlogits, so it may alias logits); the gradient. */
static void softmax_ce_neon(float *dlogits, float *loss, uint32_t *argmax, const float *logits,
                            const uint8_t *labels, float grad_scale, size_t b, size_t c, size_t ld)
{
    assert(loss && logits && labels && c >= 1 && ld >= c);
    const uint32_t idx[BLOCK] = {0, 1, 2, 3, 4, 5, 6, 7};
    const uint32x4_t idx_lo = vld1q_u32(idx), idx_hi = vld1q_u32(idx + 4);
    const float32x4_t one = vdupq_n_f32(1.0f);
    for (size_t i = 0; i < b; i++) {
        const float *row = logits + i * ld;
        float *drow = dlogits ? dlogits + i * ld : NULL;
        const size_t label = labels[i];
        assert(label < c);
        const float mx = row_max(row, c), target = row[label];
        const float32x4_t m = vdupq_n_f32(mx);
        f32x8 acc = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
        size_t first = c;
        for (size_t j = 0; j < c; j += BLOCK) {
            const size_t r = c - j < BLOCK ? c - j : BLOCK;
            const f32x8 l = r == BLOCK ? load8(row + j) : load_part(row + j, r, 0.0f);
            const f32x8 e = {Sleef_expf4_u10advsimd(vsubq_f32(l.lo, m)), Sleef_expf4_u10advsimd(vsubq_f32(l.hi, m))};
            if (first == c) {
                const size_t k = first_candidate(l, mx, r);
                first = k < r ? j + k : c;
            }
            acc = add8(acc, r == BLOCK ? e : keep_first(e, r));
            if (drow && r == BLOCK)
                store8(drow + j, e);
            else if (drow)
                store_part(drow + j, e, r);
        }
        const float s = sum_partials(acc);
        loss[i] = (mx - target) + logf(s);
        if (argmax)
            argmax[i] = (uint32_t)first;
        if (!drow)
            continue;
        const float32x4_t sv = vdupq_n_f32(s);
        for (size_t j = 0; j < c; j += BLOCK) {
            const size_t r = c - j < BLOCK ? c - j : BLOCK;
            const uint32x4_t at = vdupq_n_u32((uint32_t)(label - j)); /* wraps past the label: never a lane */
            const float32x4_t hot_lo = vreinterpretq_f32_u32(vandq_u32(vceqq_u32(idx_lo, at), vreinterpretq_u32_f32(one)));
            const float32x4_t hot_hi = vreinterpretq_f32_u32(vandq_u32(vceqq_u32(idx_hi, at), vreinterpretq_u32_f32(one)));
            const f32x8 e = r == BLOCK ? load8(drow + j) : load_part(drow + j, r, 0.0f);
            const f32x8 g = {vmulq_n_f32(vsubq_f32(vdivq_f32(e.lo, sv), hot_lo), grad_scale),
                             vmulq_n_f32(vsubq_f32(vdivq_f32(e.hi, sv), hot_hi), grad_scale)};
            if (r == BLOCK)
                store8(drow + j, g);
            else
                store_part(drow + j, g, r);
        }
    }
}

void elbo_losses_register_neon(elbo_kernels *k)
{
    k->bce_logits_const = bce_logits_const_neon;
    k->mse = mse_neon;
    k->softmax_ce = softmax_ce_neon;
}
