/* NEON fp32 -> bf16 conversion by integer rounding (bf16.h's rules), 8 floats a step, the tail by the scalar
 * reference; and the NEON table's bf16 entries. Not BFCVTN: its handling of fp32 denormals follows FPCR.FZ
 * (rounded to bf16 denormals by default), where the x86 instruction and bf16.h flush them; integer rounding gives
 * every ISA the same bits without FEAT_BF16. */
#include "bf16.h"
#include "kernels.h"

#include <arm_neon.h>

#include "cpu_features.h"

/* 4 floats' bf16 bits (bf16.h), narrowed to 16-bit lanes. */
static inline uint16x4_t bf16_bits4(uint32x4_t u)
{
    const uint32x4_t hi = vshrq_n_u32(u, 16);
    uint32x4_t r = vshrq_n_u32(vaddq_u32(vaddq_u32(u, vdupq_n_u32(0x7fff)), vandq_u32(hi, vdupq_n_u32(1))), 16);
    const uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
    const uint32x4_t tiny = vceqq_u32(vandq_u32(u, vdupq_n_u32(0x7f800000)), vdupq_n_u32(0));
    r = vbslq_u32(nan, vorrq_u32(hi, vdupq_n_u32(0x40)), r);
    r = vbslq_u32(tiny, vandq_u32(hi, vdupq_n_u32(0x8000)), r);
    return vmovn_u32(r);
}

/* elbo_f32_to_bf16_fn for NEON. */
static void f32_to_bf16_neon(elbo_bf16 *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x4_t lo = bf16_bits4(vreinterpretq_u32_f32(vld1q_f32(x + i)));
        const uint16x4_t hi = bf16_bits4(vreinterpretq_u32_f32(vld1q_f32(x + i + 4)));
        vst1q_u16(y + i, vcombine_u16(lo, hi));
    }
    elbo_f32_to_bf16_scalar(y + i, x + i, n - i);
}

/* The NEON table's bf16 entries: the conversion; the BFDOT kernel where the CPU has FEAT_BF16. */
void elbo_bf16_register_neon(elbo_kernels *k)
{
    k->f32_to_bf16 = f32_to_bf16_neon;
    if (!elbo_cpu_features_get()->arm_bf16) {
        k->gemm_bf16_ukernel = NULL;
        k->gemm_bf16_ukernel_strided_a = NULL;
        k->gemm_bf16_ukernel_name = NULL;
        k->bf16_missing = "bf16 (FEAT_BF16: BFDOT)";
        return;
    }
    elbo_bf16_neon_gemm_install(k);
}
