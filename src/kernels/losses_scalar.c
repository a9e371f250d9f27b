/* Portable scalar reference of the fused losses (elementwise.h), on plain libm.
 *
 * Per-row loss sums use the order every ISA shares: eight interleaved float partial sums (element j goes to
 * partial j % 8, in increasing j), then the fixed tree ((p0+p4) + (p2+p6)) + ((p1+p5) + (p3+p7)). It depends
 * only on the row, so a row gives the same bits however a batch is split. */
#include "kernels.h"

#include <assert.h>
#include <math.h>

#define SUM_LANES 8

/* Reduces the eight interleaved partial sums in the fixed tree order shared with the SIMD kernels. */
static float reduce_partials(const float p[SUM_LANES])
{
    float s0 = p[0] + p[4], s1 = p[1] + p[5], s2 = p[2] + p[6], s3 = p[3] + p[7];
    return (s0 + s2) + (s1 + s3);
}

/* BCE with logits against the constant label y: dlogits (B, N) (NULL: not written), loss (B) from logits (B, N). */
static void bce_logits_const_scalar(float *dlogits, float *loss, const float *logits, float label,
                                    float grad_scale, size_t b, size_t n)
{
    assert(loss && logits && label >= 0.0f && label <= 1.0f);
    for (size_t i = 0; i < b; i++) {
        const float *li = logits + i * n;
        float *dli = dlogits ? dlogits + i * n : NULL;
        float partial[SUM_LANES] = {0};
        for (size_t j = 0; j < n; j++) {
            const float l = li[j], e = expf(-fabsf(l)), q = 1.0f / (1.0f + e);
            const float p = l >= 0.0f ? q : e * q;
            partial[j % SUM_LANES] += (fmaxf(l, 0.0f) - label * l) + log1pf(e);
            if (dli)
                dli[j] = grad_scale * (p - label);
        }
        loss[i] = reduce_partials(partial);
    }
}

/* Squared error: dpred (B, N) (NULL: not written), loss (B) from pred and target (B, N). */
static void mse_scalar(float *dpred, float *loss, const float *pred, const float *target, float grad_scale,
                       size_t b, size_t n)
{
    assert(loss && pred && target);
    const float coef = 2.0f * grad_scale;
    for (size_t i = 0; i < b; i++) {
        const float *pi = pred + i * n, *ti = target + i * n;
        float *dpi = dpred ? dpred + i * n : NULL;
        float partial[SUM_LANES] = {0};
        for (size_t j = 0; j < n; j++) {
            const float diff = pi[j] - ti[j];
            partial[j % SUM_LANES] += diff * diff;
            if (dpi)
                dpi[j] = coef * diff;
        }
        loss[i] = reduce_partials(partial);
    }
}

/* The row's maximum (NaN if the row holds a NaN) of row (C). */
static float row_max(const float *row, size_t c)
{
    float m = row[0];
    int nan = 0;
    for (size_t j = 0; j < c; j++) {
        m = row[j] > m ? row[j] : m;
        nan |= isnan(row[j]);
    }
    return nan ? NAN : m;
}

/* Softmax cross-entropy: dlogits (B, C, stride ld) (NULL: not written), loss (B), argmax (B) (NULL: not written)
 * from logits (B, C, stride ld) and labels (B). Exponentials go to dlogits first, then become the gradient, so
 * dlogits may alias logits. */
static void softmax_ce_scalar(float *dlogits, float *loss, uint32_t *argmax, const float *logits,
                              const uint8_t *labels, float grad_scale, size_t b, size_t c, size_t ld)
{
    assert(loss && logits && labels && c >= 1 && ld >= c);
    for (size_t i = 0; i < b; i++) {
        const float *row = logits + i * ld;
        float *drow = dlogits ? dlogits + i * ld : NULL;
        const size_t label = labels[i];
        assert(label < c);
        const float m = row_max(row, c), target = row[label];
        float partial[SUM_LANES] = {0};
        size_t first = c;
        for (size_t j = 0; j < c; j++) {
            const float l = row[j], e = expf(l - m);
            if (first == c && (l == m || isnan(l)))
                first = j;
            partial[j % SUM_LANES] += e;
            if (drow)
                drow[j] = e;
        }
        const float s = reduce_partials(partial);
        loss[i] = (m - target) + logf(s);
        if (argmax)
            argmax[i] = (uint32_t)first;
        if (drow)
            for (size_t j = 0; j < c; j++)
                drow[j] = grad_scale * (drow[j] / s - (j == label ? 1.0f : 0.0f));
    }
}

void elbo_losses_register_scalar(elbo_kernels *k)
{
    k->bce_logits_const = bce_logits_const_scalar;
    k->mse = mse_scalar;
    k->softmax_ce = softmax_ce_scalar;
}
