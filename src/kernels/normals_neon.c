/* Box-Muller normals on Advanced SIMD (normals.h): 2 pairs per step through SLEEF's deterministic double log
 * and sincos. */
#include "normals.h"

#include <arm_neon.h>
#include <assert.h>
#include <sleef.h>

/* (w + 1) / 2^32 for 2 uint32 words, exact in double. */
static inline float64x2_t open_unit2(uint32x2_t w)
{
    return vmulq_n_f64(vaddq_f64(vcvtq_f64_u64(vmovl_u32(w)), vdupq_n_f64(1.0)), 1.0 / 4294967296.0);
}

/* 4 normals (2 pairs, cos and sin halves interleaved) from 4 words. */
static inline void two_pairs(float *out, const uint32_t *words)
{
    const uint32x2x2_t w = vld2_u32(words); /* val[0] = u words, val[1] = v words */
    const float64x2_t u = open_unit2(w.val[0]), v = open_unit2(w.val[1]);
    const float64x2_t r = vsqrtq_f64(vmulq_n_f64(Sleef_finz_logd2_u10advsimd(u), -2.0));
    const Sleef_float64x2_t_2 sc = Sleef_finz_sincosd2_u10advsimd(vmulq_n_f64(v, 6.283185307179586476925286766559));
    float32x2x2_t z;
    z.val[0] = vcvt_f32_f64(vmulq_f64(r, sc.y));
    z.val[1] = vcvt_f32_f64(vmulq_f64(r, sc.x));
    vst2_f32(out, z);
}

void elbo_box_muller_neon(float *out, const uint32_t *words, size_t n)
{
    assert(n % 4 == 0);
    for (size_t j = 0; j < n; j += 4)
        two_pairs(out + j, words + j);
}
