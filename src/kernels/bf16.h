/* bfloat16: the upper 16 bits of an IEEE fp32 (sign, 8-bit exponent, 7-bit fraction).
 *
 * Conversion from fp32 (every ISA gives these bits; tests/test_kernel_bf16_convert.c sweeps all 2^32 inputs):
 *   normal x    rounded to nearest, ties to even (integer rounding: x + 0x7fff + bit 16, upper half);
 *               past the largest bf16 it rounds to Inf
 *   zero, fp32 denormal   signed zero (as VCVTNEPS2BF16 does; the bf16 dot products treat bf16 denormals as
 *               zero anyway, so no product sees the difference)
 *   Inf         Inf
 *   NaN         a quiet NaN: the upper 16 bits with the quiet bit (bit 6) set, sign and top payload kept
 * Conversion to fp32 is exact (the 16 bits shifted up). */
#ifndef ELBO_BF16_H
#define ELBO_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef uint16_t elbo_bf16;

/* Converts n floats at x to bf16 at y (the rules above); x and y do not overlap. */
typedef void (*elbo_f32_to_bf16_fn)(elbo_bf16 *y, const float *x, size_t n);

/* The bits of a float. */
static inline uint32_t elbo_f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* The float of given bits. */
static inline float elbo_f32_from_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* The scalar reference of the conversion (the rules above) on fp32 bits u. */
static inline elbo_bf16 elbo_bf16_from_f32_bits(uint32_t u)
{
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: quiet, upper payload kept */
        return (elbo_bf16)((u >> 16) | 0x0040u);
    if ((u & 0x7f800000u) == 0) /* zero or denormal: signed zero */
        return (elbo_bf16)((u >> 16) & 0x8000u);
    return (elbo_bf16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* x rounded to bf16 (the rules above). */
static inline elbo_bf16 elbo_bf16_from_f32(float x)
{
    return elbo_bf16_from_f32_bits(elbo_f32_bits(x));
}

/* The fp32 value of a bf16 (exact). */
static inline float elbo_bf16_to_f32(elbo_bf16 h)
{
    return elbo_f32_from_bits((uint32_t)h << 16);
}

/* The scalar reference conversion of n floats (what every ISA's elbo_f32_to_bf16_fn equals bit for bit). */
void elbo_f32_to_bf16_scalar(elbo_bf16 *y, const float *x, size_t n);

/* One lane of x86's VDPBF16PS as the Intel SDM defines it, and as measured on AMD Zen 4 (tests/
 * test_kernel_gemm_bf16.c compares it with the instruction): acc + x[1] y[1], then + x[0] y[0], each an fp32
 * FMA rounded to nearest even with bf16 and fp32 denormal inputs read as zero (the accumulator too) and tiny
 * results flushed to signed zero, tininess detected after rounding (a result that rounds to 2^-126 at 24 bits
 * with an unbounded exponent is kept). x = (x[0] | x[1] << 16) is the instruction's first source, y its second,
 * acc and the result fp32 bits. A NaN result is the first NaN among x's element, y's element and acc of the step
 * that meets it, quieted, else the default NaN 0xffc00000 (Inf * 0, Inf - Inf). */
uint32_t elbo_bf16_dot2_emulate(uint32_t acc, uint32_t x, uint32_t y);

#if defined(__x86_64__)
/* acc[i] = VDPBF16PS lane (acc[i], x[i], y[i]) for i < n, on the instruction itself (for the tests; call only
 * where the CPU has AVX512_BF16: elbo_kernels_by_name("avx512") runs the bf16 GEMM). */
void elbo_bf16_dot2_hw(uint32_t *acc, const uint32_t *x, const uint32_t *y, size_t n);
#endif

#endif
