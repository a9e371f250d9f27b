/* Portable scalar reference of the fused elementwise kernels (elementwise.h), on plain libm.
 *
 * Per-row loss sums use the summation order every ISA shares: eight interleaved float partial
 * sums (element j goes to partial j % 8, in increasing j), then the fixed tree
 * ((p0+p4) + (p2+p6)) + ((p1+p5) + (p3+p7)). The order depends only on the row contents and its
 * length, so a row gives the same bits however a batch is split, and each partial adds at most
 * ceil(d / 8) terms (relative error below (d/8 + 3) * 2^-24 for the nonnegative terms summed here). */
#include "kernels.h"

#include <math.h>

#define SUM_LANES 8

/* Reduces the eight interleaved partial sums in the fixed tree order shared with the SIMD kernels. */
static float reduce_partials(const float p[SUM_LANES])
{
    float s0 = p[0] + p[4], s1 = p[1] + p[5], s2 = p[2] + p[6], s3 = p[3] + p[7];
    return (s0 + s2) + (s1 + s3);
}

/* Stable logistic of l from e = exp(-|l|): p = 1/(1+e) for l >= 0 else e/(1+e); *dp = p(1-p) = e/(1+e)^2. */
static float stable_sigmoid(float l, float e, float *dp)
{
    float q = 1.0f / (1.0f + e);
    *dp = e * q * q;
    return l >= 0.0f ? q : e * q;
}

/* z, sigma (B, Z); kl (B) from mulv (B, 2Z) = [mu | logvar] and eps (B, Z).
 * exp(logvar) in the KL term is computed as sigma * sigma (about 3 ulp instead of 1). */
static void reparam_forward_scalar(float *z, float *sigma, float *kl, const float *mulv,
                                   const float *eps, size_t b, size_t zdim)
{
    for (size_t i = 0; i < b; i++) {
        const float *mu = mulv + i * 2 * zdim, *logvar = mu + zdim;
        const float *e = eps + i * zdim;
        float *zi = z + i * zdim, *si = sigma + i * zdim;
        float partial[SUM_LANES] = {0};
        for (size_t j = 0; j < zdim; j++) {
            float s = expf(0.5f * logvar[j]);
            si[j] = s;
            zi[j] = mu[j] + s * e[j];
            partial[j % SUM_LANES] += (mu[j] * mu[j] + s * s) - logvar[j] - 1.0f;
        }
        kl[i] = 0.5f * reduce_partials(partial);
    }
}

/* dmulv (B, 2Z) = [dmu | dlogvar] from dz, eps, sigma (B, Z), mulv (B, 2Z) and the KL weight. */
static void reparam_backward_scalar(float *dmulv, const float *dz, const float *mulv,
                                    const float *eps, const float *sigma, float kl_weight,
                                    size_t b, size_t zdim)
{
    for (size_t i = 0; i < b; i++) {
        const float *mu = mulv + i * 2 * zdim;
        const float *dzi = dz + i * zdim, *ei = eps + i * zdim, *si = sigma + i * zdim;
        float *dmu = dmulv + i * 2 * zdim, *dlogvar = dmu + zdim;
        for (size_t j = 0; j < zdim; j++) {
            float s = si[j];
            dmu[j] = dzi[j] + kl_weight * mu[j];
            dlogvar[j] = 0.5f * (dzi[j] * ei[j] * s + kl_weight * (s * s - 1.0f));
        }
    }
}

/* Sigmoid loss rows: dlogits, probs (B, D), loss (B) from logits (B, D) and pixels x (B, D); with
 * bce (a compile-time constant) BCE terms, dlogits = coef (p - t) and loss = row sum, else squared
 * errors, dlogits = coef (p - t) p (1 - p) and loss = loss_scale * row sum. */
static inline __attribute__((always_inline)) void
sigmoid_loss_rows(float *dlogits, float *loss, float *probs, const float *logits, const uint8_t *x,
                  float coef, float loss_scale, size_t b, size_t d, int bce)
{
    for (size_t i = 0; i < b; i++) {
        const size_t row = i * d;
        float partial[SUM_LANES] = {0};
        for (size_t j = 0; j < d; j++) {
            float l = logits[row + j];
            float t = (float)x[row + j] / 255.0f;
            float e = expf(-fabsf(l));
            float dp, p = stable_sigmoid(l, e, &dp);
            float diff = p - t;
            partial[j % SUM_LANES] += bce ? (fmaxf(l, 0.0f) - t * l) + log1pf(e) : diff * diff;
            if (probs)
                probs[row + j] = p;
            dlogits[row + j] = bce ? coef * diff : coef * diff * dp;
        }
        loss[i] = bce ? reduce_partials(partial) : loss_scale * reduce_partials(partial);
    }
}

/* MSE on sigmoid outputs: dlogits, probs (B, D), loss (B) from logits (B, D) and pixels x (B, D). */
static void sigmoid_mse_scalar(float *dlogits, float *loss, float *probs, const float *logits,
                               const uint8_t *x, float recon_scale, float grad_scale,
                               size_t b, size_t d)
{
    sigmoid_loss_rows(dlogits, loss, probs, logits, x, grad_scale * recon_scale * 2.0f, recon_scale,
                      b, d, 0);
}

/* BCE from logits: dlogits, probs (B, D), loss (B) from logits (B, D) and pixels x (B, D). */
static void sigmoid_bce_scalar(float *dlogits, float *loss, float *probs, const float *logits,
                               const uint8_t *x, float grad_scale, size_t b, size_t d)
{
    sigmoid_loss_rows(dlogits, loss, probs, logits, x, grad_scale, 1.0f, b, d, 1);
}

/* dst (n) = src (n) / 255. */
static void unit_from_u8_scalar(float *dst, const uint8_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)src[i] / 255.0f;
}

/* db (N) = [db +] sum over rows i of dy (B, N, stride ldy), rows added in order from zero. */
static void column_sum_scalar(float *db, const float *dy, size_t b, size_t n, size_t ldy,
                              int accumulate)
{
    for (size_t j = 0; j < n; j++) {
        float s = 0.0f;
        for (size_t i = 0; i < b; i++)
            s += dy[i * ldy + j];
        db[j] = accumulate ? db[j] + s : s;
    }
}

/* Adam step over a rows x cols block, row stride ld (PyTorch torch.optim.Adam, L2 weight decay added to
 * the gradient). */
static void adam_scalar(float *param, float *m, float *v, const float *grad, size_t rows, size_t cols, size_t ld,
                        const elbo_adam_hparams *h)
{
    const double bc1 = 1.0 - pow(h->beta1, (double)h->step);
    const double bc2 = 1.0 - pow(h->beta2, (double)h->step);
    const float step_size = (float)(h->lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float b1 = (float)h->beta1, b2 = (float)h->beta2, one_b1 = (float)(1.0 - h->beta1), one_b2 = (float)(1.0 - h->beta2);
    const float wd = (float)h->weight_decay, eps = (float)h->eps;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            size_t j = r * ld + c;
            float g = grad[j] + wd * param[j];
            float mj = b1 * m[j] + one_b1 * g;
            float vj = b2 * v[j] + one_b2 * g * g;
            float denom = sqrtf(vj) / bc2_sqrt + eps;
            m[j] = mj;
            v[j] = vj;
            param[j] -= step_size * (mj / denom);
        }
}

/* SGD (momentum, dampening, Nesterov) step over a rows x cols block, row stride ld (PyTorch
 * torch.optim.SGD). With momentum == 0 it is plain SGD and buf is neither read nor written, as in PyTorch. */
static void sgd_scalar(float *param, float *buf, const float *grad, size_t rows, size_t cols, size_t ld,
                       const elbo_sgd_hparams *h, int first_step)
{
    const float lr = (float)h->lr, mom = (float)h->momentum, damp = (float)(1.0 - h->dampening), wd = (float)h->weight_decay;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            size_t j = r * ld + c;
            float g = grad[j] + wd * param[j];
            float step = g;
            if (mom != 0.0f) {
                float bj = first_step ? g : mom * buf[j] + damp * g;
                buf[j] = bj;
                step = h->nesterov ? g + mom * bj : bj;
            }
            param[j] -= lr * step;
        }
}

void elbo_elementwise_register_scalar(elbo_kernels *k)
{
    k->reparam_forward = reparam_forward_scalar;
    k->reparam_backward = reparam_backward_scalar;
    k->sigmoid_mse = sigmoid_mse_scalar;
    k->sigmoid_bce = sigmoid_bce_scalar;
    k->column_sum = column_sum_scalar;
    k->unit_from_u8 = unit_from_u8_scalar;
    k->adam = adam_scalar;
    k->sgd = sgd_scalar;
    elbo_losses_register_scalar(k);
    elbo_coupling_register_scalar(k);
}
