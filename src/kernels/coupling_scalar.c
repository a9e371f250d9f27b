/* The affine coupling's reference kernels (coupling.h): one pixel at a time with libm's tanhf and expf, each row's
 * log-determinant summed in double in pixel order. */
#include "kernels.h"

#include <assert.h>
#include <math.h>

/* elbo_coupling_forward_fn. */
static void coupling_forward_scalar(const float *h, size_t ldh, const float *raw, const float *scale, float *hout,
                                    size_t ldo, double *logdet, size_t rows, size_t n)
{
    assert(ldh >= n && ldo >= n);
    for (size_t r = 0; r < rows; r++) {
        const float *hr = h + r * ldh, *rs = raw + r * 2 * n, *rt = rs + n;
        float *o = hout + r * ldo;
        double sum = 0;
        for (size_t j = 0; j < n; j++) {
            float s = scale[j] * tanhf(rs[j]);
            o[j] = hr[j] * expf(s) + rt[j];
            sum += s;
        }
        logdet[r] = sum;
    }
}

/* elbo_coupling_inverse_fn. */
static void coupling_inverse_scalar(const float *hout, size_t ldo, const float *raw, const float *scale, float *h,
                                    size_t ldh, size_t rows, size_t n)
{
    assert(ldh >= n && ldo >= n);
    for (size_t r = 0; r < rows; r++) {
        const float *o = hout + r * ldo, *rs = raw + r * 2 * n, *rt = rs + n;
        float *hr = h + r * ldh;
        for (size_t j = 0; j < n; j++) {
            float s = scale[j] * tanhf(rs[j]);
            hr[j] = (o[j] - rt[j]) * expf(-s);
        }
    }
}

/* elbo_coupling_backward_fn. */
static void coupling_backward_scalar(const float *h, size_t ldh, float *raw, const float *scale, float *g, size_t ldg,
                                     float *dscale, float w, size_t rows, size_t n)
{
    assert(ldh >= n && ldg >= n);
    for (size_t r = 0; r < rows; r++) {
        const float *hr = h + r * ldh;
        float *rs = raw + r * 2 * n, *rt = rs + n, *gr = g + r * ldg, *dsc = dscale + r * n;
        for (size_t j = 0; j < n; j++) {
            float th = tanhf(rs[j]), e = expf(scale[j] * th), gj = gr[j];
            float ds = gj * hr[j] * e - w;
            rs[j] = ds * scale[j] * (1.0f - th * th);
            rt[j] = gj;
            dsc[j] = ds * th;
            gr[j] = gj * e;
        }
    }
}

void elbo_coupling_register_scalar(elbo_kernels *k)
{
    k->coupling_forward = coupling_forward_scalar;
    k->coupling_inverse = coupling_inverse_scalar;
    k->coupling_backward = coupling_backward_scalar;
}
