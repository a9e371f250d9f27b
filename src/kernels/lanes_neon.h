/* The NEON kernels' 8-float blocks: two quads, loads and stores of whole and partial blocks (NEON has no masked
 * loads: partial blocks go through a padded stack block), and the 8 partial sums reduced in the fixed tree order
 * ((p0+p4) + (p2+p6)) + ((p1+p5) + (p3+p7)) that the scalar and AVX2 kernels share. For the NEON kernel files. */
#ifndef ELBO_LANES_NEON_H
#define ELBO_LANES_NEON_H

#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 8

/* Eight floats as two quads (elements 0..3 and 4..7). */
typedef struct {
    float32x4_t lo, hi;
} f32x8;

/* Loads 8 floats. */
static inline f32x8 load8(const float *p)
{
    return (f32x8){vld1q_f32(p), vld1q_f32(p + 4)};
}

/* Stores 8 floats. */
static inline void store8(float *p, f32x8 v)
{
    vst1q_f32(p, v.lo);
    vst1q_f32(p + 4, v.hi);
}

/* Loads r (<= 8) floats; the rest of the block is fill. */
static inline f32x8 load_part(const float *p, size_t r, float fill)
{
    float buf[BLOCK];
    for (size_t k = 0; k < BLOCK; k++)
        buf[k] = fill;
    memcpy(buf, p, r * sizeof(float));
    return load8(buf);
}

/* Stores the first r (<= 8) floats of v. */
static inline void store_part(float *p, f32x8 v, size_t r)
{
    float buf[BLOCK];
    store8(buf, v);
    memcpy(p, buf, r * sizeof(float));
}

/* Keeps the first r lanes of v, zeroes the others. */
static inline f32x8 keep_first(f32x8 v, size_t r)
{
    const uint32_t idx[BLOCK] = {0, 1, 2, 3, 4, 5, 6, 7};
    uint32x4_t n = vdupq_n_u32((uint32_t)r);
    uint32x4_t mlo = vcltq_u32(vld1q_u32(idx), n), mhi = vcltq_u32(vld1q_u32(idx + 4), n);
    return (f32x8){vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v.lo), mlo)),
                   vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v.hi), mhi))};
}

/* Lane-wise a + b (adds a block into the two accumulators). */
static inline f32x8 add8(f32x8 a, f32x8 b)
{
    return (f32x8){vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)};
}

/* Sum of the 8 partial sums in the fixed tree order shared by every ISA. */
static inline float sum_partials(f32x8 acc)
{
    float32x4_t s = vaddq_f32(acc.lo, acc.hi);
    float32x2_t u = vadd_f32(vget_low_f32(s), vget_high_f32(s));
    return vpadds_f32(u);
}

#endif
