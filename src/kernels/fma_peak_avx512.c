/* FMA throughput probe: 12 independent zmm FMA chains (enough to cover latency x pipes on AVX-512 cores). */
#include "fma_peak.h"

#include <immintrin.h>

#define CHAIN(x) x = _mm512_fmadd_ps(x, mul, add)

double fma_peak_avx512_run(size_t iters)
{
    __m512 a0 = _mm512_set1_ps(1.00f), a1 = _mm512_set1_ps(1.01f), a2 = _mm512_set1_ps(1.02f);
    __m512 a3 = _mm512_set1_ps(1.03f), a4 = _mm512_set1_ps(1.04f), a5 = _mm512_set1_ps(1.05f);
    __m512 a6 = _mm512_set1_ps(1.06f), a7 = _mm512_set1_ps(1.07f), a8 = _mm512_set1_ps(1.08f);
    __m512 a9 = _mm512_set1_ps(1.09f), a10 = _mm512_set1_ps(1.10f), a11 = _mm512_set1_ps(1.11f);
    const __m512 mul = _mm512_set1_ps(0.9999999f), add = _mm512_set1_ps(1e-7f);
    for (size_t it = 0; it < iters; it++) {
        CHAIN(a0); CHAIN(a1); CHAIN(a2); CHAIN(a3); CHAIN(a4); CHAIN(a5);
        CHAIN(a6); CHAIN(a7); CHAIN(a8); CHAIN(a9); CHAIN(a10); CHAIN(a11);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return (double)iters * 12.0 * 16.0 * 2.0;
}
