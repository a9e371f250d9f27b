/* The scalar references of bf16.h: the fp32 -> bf16 conversion and one lane of VDPBF16PS. */
#include "bf16.h"

#include <math.h>

void elbo_f32_to_bf16_scalar(elbo_bf16 *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = elbo_bf16_from_f32(x[i]);
}

/* 1 when the fp32 bits u are a NaN. */
static int is_nan_bits(uint32_t u)
{
    return (u & 0x7fffffffu) > 0x7f800000u;
}

/* fp32 bits u with a denormal read as signed zero (DAZ). */
static float daz(uint32_t u)
{
    return elbo_f32_from_bits((u & 0x7f800000u) == 0 ? u & 0x80000000u : u);
}

#define MIN_NORMAL 0x1p-126f

/* acc + x y for bf16 x, y (as fp32 bits in their upper halves) and fp32 acc, all bits: one FMA step of the
 * instruction (bf16.h). */
static uint32_t fma_step(uint32_t acc, uint32_t x, uint32_t y)
{
    if (is_nan_bits(x))
        return x | 0x00400000u;
    if (is_nan_bits(y))
        return y | 0x00400000u;
    if (is_nan_bits(acc))
        return acc | 0x00400000u;
    float fx = daz(x), fy = daz(y), fa = daz(acc);
    float r = fmaf(fx, fy, fa);
    if (isnan(r))
        return 0xffc00000u;
    float mag = fabsf(r);
    if (mag > MIN_NORMAL || mag == 0.0f || isinf(r))
        return elbo_f32_bits(r);
    if (mag == MIN_NORMAL) {
        /* Rounded with gradual underflow this is 2^-126; with an unbounded exponent it may round below it
         * (tiny, flushed). Redo it 2^64 higher, where the rounding is the unbounded one: the operands are small
         * here (a sum that lands near 2^-126 with a non-zero part below it has both terms below ~2^-100), so
         * scaling the smaller factor and acc is exact. */
        float sx = fabsf(fx) <= fabsf(fy) ? ldexpf(fx, 64) : fx, sy = fabsf(fx) <= fabsf(fy) ? fy : ldexpf(fy, 64);
        if (fabsf(fmaf(sx, sy, ldexpf(fa, 64))) >= 0x1p-62f)
            return elbo_f32_bits(r);
    }
    return elbo_f32_bits(r) & 0x80000000u; /* tiny: signed zero */
}

uint32_t elbo_bf16_dot2_emulate(uint32_t acc, uint32_t x, uint32_t y)
{
    acc = fma_step(acc, x & 0xffff0000u, y & 0xffff0000u);
    return fma_step(acc, x << 16, y << 16);
}
