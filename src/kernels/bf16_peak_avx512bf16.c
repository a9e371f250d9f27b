/* bf16 dot-product throughput probe: 24 independent zmm VDPBF16PS chains (the bf16 GEMM tile's 24 accumulators;
 * enough to cover the instruction's latency times its pipes). The products are small (2^-17) against the
 * accumulators (from 1), so the chains stay normal over any run. */
#include "bf16_peak.h"

#include <immintrin.h>

#define CHAIN(x) x = _mm512_dpbf16_ps(x, a, b)

double bf16_peak_avx512_run(size_t iters)
{
    const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3b003b00), b = (__m512bh)_mm512_set1_epi32(0x3b803b80);
    /* distinct starting values, or the compiler merges the identical chains into one */
#define START(i) _mm512_set1_ps(1.0f + 0.01f * (float)(i))
    __m512 c0 = START(0), c1 = START(1), c2 = START(2), c3 = START(3), c4 = START(4), c5 = START(5);
    __m512 c6 = START(6), c7 = START(7), c8 = START(8), c9 = START(9), c10 = START(10), c11 = START(11);
    __m512 c12 = START(12), c13 = START(13), c14 = START(14), c15 = START(15), c16 = START(16), c17 = START(17);
    __m512 c18 = START(18), c19 = START(19), c20 = START(20), c21 = START(21), c22 = START(22), c23 = START(23);
#undef START
    for (size_t it = 0; it < iters; it++) {
        CHAIN(c0); CHAIN(c1); CHAIN(c2); CHAIN(c3); CHAIN(c4); CHAIN(c5); CHAIN(c6); CHAIN(c7);
        CHAIN(c8); CHAIN(c9); CHAIN(c10); CHAIN(c11); CHAIN(c12); CHAIN(c13); CHAIN(c14); CHAIN(c15);
        CHAIN(c16); CHAIN(c17); CHAIN(c18); CHAIN(c19); CHAIN(c20); CHAIN(c21); CHAIN(c22); CHAIN(c23);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)),
                                       _mm512_add_ps(_mm512_add_ps(c12, c13), _mm512_add_ps(c14, c15))));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c16, c17), _mm512_add_ps(c18, c19)),
                                       _mm512_add_ps(_mm512_add_ps(c20, c21), _mm512_add_ps(c22, c23))));
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return (double)iters * 24.0 * 64.0;
}
