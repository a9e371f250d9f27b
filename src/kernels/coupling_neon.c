/* The affine coupling's NEON kernels (coupling.h): 8 pixels at a time as two quads with SLEEF's 1-ulp tanhf and
 * expf, the row's last partial block through a padded stack block (a lane past the row reads scale = 0 and raw = 0,
 * so its s is 0 and it adds nothing); each row's log-determinant summed in four double accumulators of 2 lanes (lanes
 * 0-1, 2-3, 4-5, 6-7), then lanes in the AVX2 kernel's order ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)). */
#include "kernels.h"

#include <assert.h>
#include <sleef.h>

#include "lanes_neon.h"

/* tanh of each lane of v. */
static inline f32x8 tanh8(f32x8 v)
{
    return (f32x8){Sleef_tanhf4_u10advsimd(v.lo), Sleef_tanhf4_u10advsimd(v.hi)};
}

/* exp of each lane of v. */
static inline f32x8 exp8(f32x8 v)
{
    return (f32x8){Sleef_expf4_u10advsimd(v.lo), Sleef_expf4_u10advsimd(v.hi)};
}

/* Lane-wise a * b. */
static inline f32x8 mul8(f32x8 a, f32x8 b)
{
    return (f32x8){vmulq_f32(a.lo, b.lo), vmulq_f32(a.hi, b.hi)};
}

/* Lane-wise a * b + c, fused. */
static inline f32x8 fma8(f32x8 a, f32x8 b, f32x8 c)
{
    return (f32x8){vfmaq_f32(c.lo, a.lo, b.lo), vfmaq_f32(c.hi, a.hi, b.hi)};
}

/* The c (<= 8) floats at p as a block, 0 past them. */
static inline f32x8 load_n(const float *p, size_t c)
{
    return c == BLOCK ? load8(p) : load_part(p, c, 0.0f);
}

/* Stores the first c (<= 8) lanes of v at p. */
static inline void store_n(float *p, f32x8 v, size_t c)
{
    if (c == BLOCK)
        store8(p, v);
    else
        store_part(p, v, c);
}

/* elbo_coupling_forward_fn. */
static void coupling_forward_neon(const float *h, size_t ldh, const float *raw, const float *scale, float *hout,
                                  size_t ldo, double *logdet, size_t rows, size_t n)
{
    assert(ldh >= n && ldo >= n);
    for (size_t r = 0; r < rows; r++) {
        const float *hr = h + r * ldh, *rs = raw + r * 2 * n, *rt = rs + n;
        float *o = hout + r * ldo;
        float64x2_t acc[4] = {vdupq_n_f64(0), vdupq_n_f64(0), vdupq_n_f64(0), vdupq_n_f64(0)};
        for (size_t j = 0; j < n; j += BLOCK) {
            size_t c = n - j < BLOCK ? n - j : BLOCK;
            f32x8 s = mul8(load_n(scale + j, c), tanh8(load_n(rs + j, c)));
            store_n(o + j, fma8(load_n(hr + j, c), exp8(s), load_n(rt + j, c)), c);
            acc[0] = vaddq_f64(acc[0], vcvt_f64_f32(vget_low_f32(s.lo)));
            acc[1] = vaddq_f64(acc[1], vcvt_high_f64_f32(s.lo));
            acc[2] = vaddq_f64(acc[2], vcvt_f64_f32(vget_low_f32(s.hi)));
            acc[3] = vaddq_f64(acc[3], vcvt_high_f64_f32(s.hi));
        }
        double l[8];
        for (size_t q = 0; q < 4; q++)
            vst1q_f64(l + 2 * q, acc[q]);
        logdet[r] = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
    }
}

/* elbo_coupling_inverse_fn. */
static void coupling_inverse_neon(const float *hout, size_t ldo, const float *raw, const float *scale, float *h,
                                  size_t ldh, size_t rows, size_t n)
{
    assert(ldh >= n && ldo >= n);
    for (size_t r = 0; r < rows; r++) {
        const float *o = hout + r * ldo, *rs = raw + r * 2 * n, *rt = rs + n;
        float *hr = h + r * ldh;
        for (size_t j = 0; j < n; j += BLOCK) {
            size_t c = n - j < BLOCK ? n - j : BLOCK;
            f32x8 s = mul8(load_n(scale + j, c), tanh8(load_n(rs + j, c)));
            f32x8 ov = load_n(o + j, c), t = load_n(rt + j, c);
            f32x8 diff = {vsubq_f32(ov.lo, t.lo), vsubq_f32(ov.hi, t.hi)};
            store_n(hr + j, mul8(diff, exp8((f32x8){vnegq_f32(s.lo), vnegq_f32(s.hi)})), c);
        }
    }
}

/* elbo_coupling_backward_fn. */
static void coupling_backward_neon(const float *h, size_t ldh, float *raw, const float *scale, float *g, size_t ldg,
                                   float *dscale, float w, size_t rows, size_t n)
{
    assert(ldh >= n && ldg >= n);
    const float32x4_t one = vdupq_n_f32(1.0f), wv = vdupq_n_f32(w);
    for (size_t r = 0; r < rows; r++) {
        const float *hr = h + r * ldh;
        float *rs = raw + r * 2 * n, *rt = rs + n, *gr = g + r * ldg, *dsc = dscale + r * n;
        for (size_t j = 0; j < n; j += BLOCK) {
            size_t c = n - j < BLOCK ? n - j : BLOCK;
            f32x8 sc = load_n(scale + j, c), th = tanh8(load_n(rs + j, c)), gv = load_n(gr + j, c);
            f32x8 e = exp8(mul8(sc, th)), gh = mul8(gv, load_n(hr + j, c));
            f32x8 ds = {vfmaq_f32(vnegq_f32(wv), gh.lo, e.lo), vfmaq_f32(vnegq_f32(wv), gh.hi, e.hi)}; /* g h e - w */
            f32x8 dth = {vfmsq_f32(one, th.lo, th.lo), vfmsq_f32(one, th.hi, th.hi)};
            store_n(rs + j, mul8(mul8(ds, sc), dth), c);
            store_n(rt + j, gv, c);
            store_n(dsc + j, mul8(ds, th), c);
            store_n(gr + j, mul8(gv, e), c);
        }
    }
}

void elbo_coupling_register_neon(elbo_kernels *k)
{
    k->coupling_forward = coupling_forward_neon;
    k->coupling_inverse = coupling_inverse_neon;
    k->coupling_backward = coupling_backward_neon;
}
