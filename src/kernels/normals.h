/* Box-Muller: standard normals from pairs of 32-bit random words, in double precision, vectorized where the
 * CPU allows. Not part of the ELBO_ISA kernel tables: the noise a seed gives does not depend on which GEMM
 * and elementwise path a run selects. */
#ifndef ELBO_NORMALS_H
#define ELBO_NORMALS_H

#include <stddef.h>
#include <stdint.h>

/* out (n floats) from words (n rounded up to even): out[2k] = r cos t and out[2k + 1] = r sin t (the last one
 * dropped when n is odd), r = sqrt(-2 ln u), t = 2 pi v, u = (words[2k] + 1) / 2^32 and
 * v = (words[2k + 1] + 1) / 2^32, computed in double and rounded to float. Runs SLEEF's deterministic
 * ("finz") 1-ulp double log and sincos on x86 with AVX2 and FMA (4 pairs per call) and on arm64 (2 pairs),
 * which give the same bits on both; libm's elsewhere (a result can then differ in its last bit, rarely). */
void elbo_box_muller(float *out, const uint32_t *words, size_t n);

/* The same transform with libm's log, sin and cos, one pair at a time: the fallback, and the reference the
 * vector implementations are tested against. */
void elbo_box_muller_libm(float *out, const uint32_t *words, size_t n);

#if defined(__x86_64__)
/* elbo_box_muller on AVX2 + FMA for n a multiple of 8 (the caller checks the CPU and pads the tail). */
void elbo_box_muller_avx2(float *out, const uint32_t *words, size_t n);
#endif
#if defined(__aarch64__)
/* elbo_box_muller on Advanced SIMD for n a multiple of 4 (the caller pads the tail). */
void elbo_box_muller_neon(float *out, const uint32_t *words, size_t n);
#endif

#endif
