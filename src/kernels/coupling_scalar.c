/* The affine coupling's reference kernels (coupling.h): one pixel at a time with libm's tanhf and expf, each row's
 * log-determinant summed in double in pixel order. */
#include "kernels.h"

#include <math.h>

/* elbo_coupling_forward_fn. */
static void coupling_forward_scalar(const float *h, const float *raw, const float *scale, const float *keep,
                                    float *hout, double *logdet, size_t rows, size_t d)
{
    for (size_t r = 0; r < rows; r++) {
        const float *hr = h + r * d, *rs = raw + r * 2 * d, *rt = rs + d;
        float *o = hout + r * d;
        double sum = 0;
        for (size_t j = 0; j < d; j++) {
            if (keep[j] != 0.0f) {
                o[j] = hr[j];
                continue;
            }
            float s = scale[j] * tanhf(rs[j]);
            o[j] = hr[j] * expf(s) + rt[j];
            sum += s;
        }
        logdet[r] = sum;
    }
}

/* elbo_coupling_inverse_fn. */
static void coupling_inverse_scalar(const float *hout, const float *raw, const float *scale, const float *keep,
                                    float *h, size_t rows, size_t d)
{
    for (size_t r = 0; r < rows; r++) {
        const float *o = hout + r * d, *rs = raw + r * 2 * d, *rt = rs + d;
        float *hr = h + r * d;
        for (size_t j = 0; j < d; j++) {
            if (keep[j] != 0.0f) {
                hr[j] = o[j];
                continue;
            }
            float s = scale[j] * tanhf(rs[j]);
            hr[j] = (o[j] - rt[j]) * expf(-s);
        }
    }
}

/* elbo_coupling_backward_fn. */
static void coupling_backward_scalar(const float *h, float *raw, const float *scale, const float *keep, float *g,
                                     float *dscale, float w, size_t rows, size_t d)
{
    for (size_t r = 0; r < rows; r++) {
        const float *hr = h + r * d;
        float *rs = raw + r * 2 * d, *rt = rs + d, *gr = g + r * d, *dsc = dscale + r * d;
        for (size_t j = 0; j < d; j++) {
            if (keep[j] != 0.0f) {
                rs[j] = 0.0f;
                rt[j] = 0.0f;
                dsc[j] = 0.0f;
                continue;
            }
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
