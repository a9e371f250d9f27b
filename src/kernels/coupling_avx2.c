/* The affine coupling's AVX2 + FMA kernels (coupling.h), also the AVX-512 table's: 8 pixels at a time with SLEEF's
 * 1-ulp tanhf and expf, the row's last partial block through masked loads and stores (a lane past the row reads
 * keep = 0 and raw = 0, so its s is 0 and it adds nothing); each row's log-determinant summed in two double
 * accumulators of 4 lanes, then lanes in a fixed order. */
#include "kernels.h"

#include <immintrin.h>
#include <sleef.h>

/* The lane mask of the first n (< 8) lanes, for a row's last partial block. */
static __m256i first_lanes(size_t n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
}

/* 8 floats at p: all of them, or the first n under mask m (0 elsewhere). */
static __m256 load8(const float *p, size_t n, __m256i m)
{
    return n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}

/* Stores v at p: all 8 lanes, or the first n under mask m. */
static void store8(float *p, __m256 v, size_t n, __m256i m)
{
    if (n == 8)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, m, v);
}

/* The kept lanes (keep != 0) as an all-ones mask. */
static __m256 kept_lanes(__m256 keep)
{
    return _mm256_cmp_ps(keep, _mm256_setzero_ps(), _CMP_NEQ_OQ);
}

/* elbo_coupling_forward_fn. */
static void coupling_forward_avx2(const float *h, const float *raw, const float *scale, const float *keep,
                                  float *hout, double *logdet, size_t rows, size_t d)
{
    for (size_t r = 0; r < rows; r++) {
        const float *hr = h + r * d, *rs = raw + r * 2 * d, *rt = rs + d;
        float *o = hout + r * d;
        __m256d acc_lo = _mm256_setzero_pd(), acc_hi = _mm256_setzero_pd();
        for (size_t j = 0; j < d; j += 8) {
            size_t n = d - j < 8 ? d - j : 8;
            __m256i m = first_lanes(n);
            __m256 kept = kept_lanes(load8(keep + j, n, m)), hv = load8(hr + j, n, m);
            __m256 th = Sleef_tanhf8_u10avx2(load8(rs + j, n, m));
            __m256 s = _mm256_andnot_ps(kept, _mm256_mul_ps(load8(scale + j, n, m), th));
            __m256 t = _mm256_andnot_ps(kept, load8(rt + j, n, m));
            __m256 out = _mm256_fmadd_ps(hv, Sleef_expf8_u10avx2(s), t);
            store8(o + j, _mm256_blendv_ps(out, hv, kept), n, m);
            acc_lo = _mm256_add_pd(acc_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(s)));
            acc_hi = _mm256_add_pd(acc_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(s, 1)));
        }
        double lanes[8];
        _mm256_storeu_pd(lanes, acc_lo);
        _mm256_storeu_pd(lanes + 4, acc_hi);
        logdet[r] = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
    }
}

/* elbo_coupling_inverse_fn. */
static void coupling_inverse_avx2(const float *hout, const float *raw, const float *scale, const float *keep,
                                  float *h, size_t rows, size_t d)
{
    for (size_t r = 0; r < rows; r++) {
        const float *o = hout + r * d, *rs = raw + r * 2 * d, *rt = rs + d;
        float *hr = h + r * d;
        for (size_t j = 0; j < d; j += 8) {
            size_t n = d - j < 8 ? d - j : 8;
            __m256i m = first_lanes(n);
            __m256 kept = kept_lanes(load8(keep + j, n, m)), ov = load8(o + j, n, m);
            __m256 th = Sleef_tanhf8_u10avx2(load8(rs + j, n, m));
            __m256 s = _mm256_andnot_ps(kept, _mm256_mul_ps(load8(scale + j, n, m), th));
            __m256 back = _mm256_mul_ps(_mm256_sub_ps(ov, load8(rt + j, n, m)),
                                        Sleef_expf8_u10avx2(_mm256_xor_ps(s, _mm256_set1_ps(-0.0f))));
            store8(hr + j, _mm256_blendv_ps(back, ov, kept), n, m);
        }
    }
}

/* elbo_coupling_backward_fn. */
static void coupling_backward_avx2(const float *h, float *raw, const float *scale, const float *keep, float *g,
                                   float *dscale, float w, size_t rows, size_t d)
{
    const __m256 one = _mm256_set1_ps(1.0f), wv = _mm256_set1_ps(w);
    for (size_t r = 0; r < rows; r++) {
        const float *hr = h + r * d;
        float *rs = raw + r * 2 * d, *rt = rs + d, *gr = g + r * d, *dsc = dscale + r * d;
        for (size_t j = 0; j < d; j += 8) {
            size_t n = d - j < 8 ? d - j : 8;
            __m256i m = first_lanes(n);
            __m256 kept = kept_lanes(load8(keep + j, n, m)), sc = load8(scale + j, n, m);
            __m256 th = Sleef_tanhf8_u10avx2(load8(rs + j, n, m));
            __m256 e = Sleef_expf8_u10avx2(_mm256_andnot_ps(kept, _mm256_mul_ps(sc, th)));
            __m256 gv = load8(gr + j, n, m);
            __m256 ds = _mm256_andnot_ps(kept, _mm256_fmsub_ps(_mm256_mul_ps(gv, load8(hr + j, n, m)), e, wv));
            __m256 dth = _mm256_fnmadd_ps(th, th, one);
            store8(rs + j, _mm256_mul_ps(_mm256_mul_ps(ds, sc), dth), n, m);
            store8(rt + j, _mm256_andnot_ps(kept, gv), n, m);
            store8(dsc + j, _mm256_mul_ps(ds, th), n, m);
            store8(gr + j, _mm256_blendv_ps(_mm256_mul_ps(gv, e), gv, kept), n, m);
        }
    }
}

void elbo_coupling_register_avx2(elbo_kernels *k)
{
    k->coupling_forward = coupling_forward_avx2;
    k->coupling_inverse = coupling_inverse_avx2;
    k->coupling_backward = coupling_backward_avx2;
}
