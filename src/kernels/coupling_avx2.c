/* The affine coupling's AVX2 + FMA kernels (coupling.h), also the AVX-512 table's: 8 pixels at a time with SLEEF's
 * 1-ulp tanhf and expf, the row's last partial block through masked loads and stores (a lane past the row reads
 * scale = 0 and raw = 0, so its s is 0 and it adds nothing); each row's log-determinant summed in two double
 * accumulators of 4 lanes, then lanes in a fixed order. */
#include "kernels.h"

#include <assert.h>

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

/* The forward of rows rows (coupling_forward_avx2); with save non-NULL also tanh(raw_s) over raw_s (rows x 2n, the
 * first n of each row) and exp(s) into save (rows x n), for a backward that reads them instead of recomputing. */
static void forward_rows(const float *h, size_t ldh, float *raw, const float *scale, float *hout, size_t ldo,
                         float *save, double *logdet, size_t rows, size_t n)
{
    assert(ldh >= n && ldo >= n);
    for (size_t r = 0; r < rows; r++) {
        const float *hr = h + r * ldh, *rt = raw + r * 2 * n + n;
        float *rs = raw + r * 2 * n, *o = hout + r * ldo;
        __m256d acc_lo = _mm256_setzero_pd(), acc_hi = _mm256_setzero_pd();
        for (size_t j = 0; j < n; j += 8) {
            size_t c = n - j < 8 ? n - j : 8;
            __m256i m = first_lanes(c);
            __m256 th = Sleef_tanhf8_u10avx2(load8(rs + j, c, m));
            __m256 s = _mm256_mul_ps(load8(scale + j, c, m), th);
            __m256 ev = Sleef_expf8_u10avx2(s);
            store8(o + j, _mm256_fmadd_ps(load8(hr + j, c, m), ev, load8(rt + j, c, m)), c, m);
            if (save) {
                store8(rs + j, th, c, m);
                store8(save + r * n + j, ev, c, m);
            }
            acc_lo = _mm256_add_pd(acc_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(s)));
            acc_hi = _mm256_add_pd(acc_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(s, 1)));
        }
        double lanes[8];
        _mm256_storeu_pd(lanes, acc_lo);
        _mm256_storeu_pd(lanes + 4, acc_hi);
        logdet[r] = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
    }
}

/* elbo_coupling_forward_fn. */
static void coupling_forward_avx2(const float *h, size_t ldh, const float *raw, const float *scale, float *hout,
                                  size_t ldo, double *logdet, size_t rows, size_t n)
{
    forward_rows(h, ldh, (float *)raw, scale, hout, ldo, NULL, logdet, rows, n); /* raw is only read without save */
}

/* elbo_coupling_inverse_fn. */
static void coupling_inverse_avx2(const float *hout, size_t ldo, const float *raw, const float *scale, float *h,
                                  size_t ldh, size_t rows, size_t n)
{
    assert(ldh >= n && ldo >= n);
    for (size_t r = 0; r < rows; r++) {
        const float *o = hout + r * ldo, *rs = raw + r * 2 * n, *rt = rs + n;
        float *hr = h + r * ldh;
        for (size_t j = 0; j < n; j += 8) {
            size_t c = n - j < 8 ? n - j : 8;
            __m256i m = first_lanes(c);
            __m256 th = Sleef_tanhf8_u10avx2(load8(rs + j, c, m));
            __m256 s = _mm256_mul_ps(load8(scale + j, c, m), th);
            __m256 back = _mm256_mul_ps(_mm256_sub_ps(load8(o + j, c, m), load8(rt + j, c, m)),
                                        Sleef_expf8_u10avx2(_mm256_xor_ps(s, _mm256_set1_ps(-0.0f))));
            store8(hr + j, back, c, m);
        }
    }
}

/* elbo_coupling_backward_fn. */
static void coupling_backward_avx2(const float *h, size_t ldh, float *raw, const float *scale, float *g, size_t ldg,
                                   float *dscale, float w, size_t rows, size_t n)
{
    assert(ldh >= n && ldg >= n);
    const __m256 one = _mm256_set1_ps(1.0f), wv = _mm256_set1_ps(w);
    for (size_t r = 0; r < rows; r++) {
        const float *hr = h + r * ldh;
        float *rs = raw + r * 2 * n, *rt = rs + n, *gr = g + r * ldg, *dsc = dscale + r * n;
        for (size_t j = 0; j < n; j += 8) {
            size_t c = n - j < 8 ? n - j : 8;
            __m256i m = first_lanes(c);
            __m256 sc = load8(scale + j, c, m);
            __m256 th = Sleef_tanhf8_u10avx2(load8(rs + j, c, m));
            __m256 e = Sleef_expf8_u10avx2(_mm256_mul_ps(sc, th));
            __m256 gv = load8(gr + j, c, m);
            __m256 ds = _mm256_fmsub_ps(_mm256_mul_ps(gv, load8(hr + j, c, m)), e, wv);
            __m256 dth = _mm256_fnmadd_ps(th, th, one);
            store8(rs + j, _mm256_mul_ps(_mm256_mul_ps(ds, sc), dth), c, m);
            store8(rt + j, gv, c, m);
            store8(dsc + j, _mm256_mul_ps(ds, th), c, m);
            store8(gr + j, _mm256_mul_ps(gv, e), c, m);
        }
    }
}

/* elbo_coupling_forward_saving_fn: coupling_forward_avx2 keeping th (over raw_s) and e. */
static void coupling_forward_saving_avx2(const float *h, size_t ldh, float *raw, const float *scale, float *hout,
                                         size_t ldo, float *e, double *logdet, size_t rows, size_t n)
{
    forward_rows(h, ldh, raw, scale, hout, ldo, e, logdet, rows, n);
}

/* elbo_coupling_backward_saved_fn: coupling_backward_avx2 from the saved th and e. */
static void coupling_backward_saved_avx2(const float *h, size_t ldh, float *raw, const float *scale, const float *e,
                                         float *g, size_t ldg, float *dscale, float w, size_t rows, size_t n)
{
    assert(ldh >= n && ldg >= n);
    const __m256 one = _mm256_set1_ps(1.0f), wv = _mm256_set1_ps(w);
    for (size_t r = 0; r < rows; r++) {
        const float *hr = h + r * ldh, *er = e + r * n;
        float *rs = raw + r * 2 * n, *rt = rs + n, *gr = g + r * ldg, *dsc = dscale + r * n;
        for (size_t j = 0; j < n; j += 8) {
            size_t c = n - j < 8 ? n - j : 8;
            __m256i m = first_lanes(c);
            __m256 sc = load8(scale + j, c, m), th = load8(rs + j, c, m), ev = load8(er + j, c, m);
            __m256 gv = load8(gr + j, c, m);
            __m256 ds = _mm256_fmsub_ps(_mm256_mul_ps(gv, load8(hr + j, c, m)), ev, wv);
            __m256 dth = _mm256_fnmadd_ps(th, th, one);
            store8(rs + j, _mm256_mul_ps(_mm256_mul_ps(ds, sc), dth), c, m);
            store8(rt + j, gv, c, m);
            store8(dsc + j, _mm256_mul_ps(ds, th), c, m);
            store8(gr + j, _mm256_mul_ps(gv, ev), c, m);
        }
    }
}

void elbo_coupling_register_avx2(elbo_kernels *k)
{
    k->coupling_forward = coupling_forward_avx2;
    k->coupling_inverse = coupling_inverse_avx2;
    k->coupling_backward = coupling_backward_avx2;
    k->coupling_forward_saving = coupling_forward_saving_avx2;
    k->coupling_backward_saved = coupling_backward_saved_avx2;
}
