/* AVX2 + FMA fused elementwise kernels (elementwise.h); exp and log1p from SLEEF (1.0 ulp each).
 *
 * Every kernel walks its memory once, 8 floats at a time; the last 1..7 elements of a row go
 * through the same vector code with masked loads and stores (masked-off lanes are neither read
 * nor written), so tails compute exactly what full vectors do.
 *
 * Per-row loss sums: one 8-lane float accumulator (lane k adds the elements j = k mod 8 in
 * increasing j), then the fixed tree ((p0+p4) + (p2+p6)) + ((p1+p5) + (p3+p7)) — the same order
 * as the scalar and NEON kernels. It depends only on the row, so a row gives the same bits however
 * a batch is split across threads. */
#include "kernels.h"
#include "lanes_avx2.h"

#include <immintrin.h>
#include <math.h>
#include <sleef.h>
#include <string.h>

#define VEC 8

/* Lane mask selecting the first r (0..8) lanes. */
static inline __m256i first_lanes(size_t r)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), lane);
}

/* Targets x / 255 (correctly rounded division) of 8 pixels. */
static inline __m256 targets_from_pixels(__m128i bytes)
{
    __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
    return _mm256_div_ps(x, _mm256_set1_ps(255.0f));
}

/* Targets of 8 pixels at px. */
static inline __m256 load_targets(const uint8_t *px)
{
    return targets_from_pixels(_mm_loadl_epi64((const __m128i *)px));
}

/* Targets of the r < 8 pixels at px; lanes past r are 0. */
static inline __m256 load_targets_tail(const uint8_t *px, size_t r)
{
    uint8_t buf[16] = {0};
    memcpy(buf, px, r);
    return targets_from_pixels(_mm_loadu_si128((const __m128i *)buf));
}

/* Stable logistic of l: returns p and sets *e = exp(-|l|), *dp = p (1 - p) = e / (1 + e)^2. */
static inline __m256 stable_sigmoid(__m256 l, __m256 *e, __m256 *dp)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 ex = Sleef_expf8_u10avx2(_mm256_or_ps(l, _mm256_set1_ps(-0.0f)));
    __m256 q = _mm256_div_ps(one, _mm256_add_ps(one, ex));
    __m256 eq = _mm256_mul_ps(ex, q);
    *e = ex;
    *dp = _mm256_mul_ps(eq, q);
    return _mm256_blendv_ps(eq, q, _mm256_cmp_ps(l, _mm256_setzero_ps(), _CMP_GE_OQ));
}

/* One block of the reparameterization: stores sigma, z; returns the 8 KL terms
 * mu^2 + sigma^2 - logvar - 1 (exp(logvar) taken as sigma * sigma, about 3 ulp). */
static inline __m256 reparam_block(__m256 mu, __m256 logvar, __m256 eps, __m256 *sigma, __m256 *z)
{
    __m256 s = Sleef_expf8_u10avx2(_mm256_mul_ps(_mm256_set1_ps(0.5f), logvar));
    *sigma = s;
    *z = _mm256_fmadd_ps(s, eps, mu);
    __m256 t = _mm256_fmadd_ps(mu, mu, _mm256_mul_ps(s, s));
    return _mm256_sub_ps(_mm256_sub_ps(t, logvar), _mm256_set1_ps(1.0f));
}

/* z, sigma (B, Z); kl (B) from mulv (B, 2Z) = [mu | logvar] and eps (B, Z). */
static void reparam_forward_avx2(float *z, float *sigma, float *kl, const float *mulv,
                                 const float *eps, size_t b, size_t zdim)
{
    for (size_t i = 0; i < b; i++) {
        const float *mu = mulv + i * 2 * zdim, *logvar = mu + zdim, *ei = eps + i * zdim;
        float *zi = z + i * zdim, *si = sigma + i * zdim;
        __m256 acc = _mm256_setzero_ps(), s, zz;
        size_t j = 0;
        for (; j + VEC <= zdim; j += VEC) {
            __m256 term = reparam_block(_mm256_loadu_ps(mu + j), _mm256_loadu_ps(logvar + j),
                                        _mm256_loadu_ps(ei + j), &s, &zz);
            _mm256_storeu_ps(si + j, s);
            _mm256_storeu_ps(zi + j, zz);
            acc = _mm256_add_ps(acc, term);
        }
        if (j < zdim) {
            __m256i m = first_lanes(zdim - j);
            __m256 term = reparam_block(_mm256_maskload_ps(mu + j, m), _mm256_maskload_ps(logvar + j, m),
                                        _mm256_maskload_ps(ei + j, m), &s, &zz);
            _mm256_maskstore_ps(si + j, m, s);
            _mm256_maskstore_ps(zi + j, m, zz);
            acc = _mm256_add_ps(acc, _mm256_and_ps(term, _mm256_castsi256_ps(m)));
        }
        kl[i] = 0.5f * sum_lanes(acc);
    }
}

/* dmu = dz + w mu; dlogvar = 0.5 (dz eps sigma + w (sigma^2 - 1)) for 8 elements (sigma^2 - 1 fused). */
static inline void reparam_backward_block(__m256 dz, __m256 mu, __m256 eps, __m256 s, __m256 w,
                                          __m256 *dmu, __m256 *dlogvar)
{
    __m256 s2m1 = _mm256_fmsub_ps(s, s, _mm256_set1_ps(1.0f));
    __m256 noise = _mm256_mul_ps(_mm256_mul_ps(dz, eps), s);
    *dmu = _mm256_fmadd_ps(w, mu, dz);
    *dlogvar = _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_fmadd_ps(w, s2m1, noise));
}

/* dmulv (B, 2Z) = [dmu | dlogvar] from dz, eps, sigma (B, Z), mulv (B, 2Z) and the KL weight. */
static void reparam_backward_avx2(float *dmulv, const float *dz, const float *mulv,
                                  const float *eps, const float *sigma, float kl_weight,
                                  size_t b, size_t zdim)
{
    const __m256 w = _mm256_set1_ps(kl_weight);
    for (size_t i = 0; i < b; i++) {
        const float *mu = mulv + i * 2 * zdim;
        const float *dzi = dz + i * zdim, *ei = eps + i * zdim, *si = sigma + i * zdim;
        float *dmu = dmulv + i * 2 * zdim, *dlogvar = dmu + zdim;
        __m256 gm, gl;
        size_t j = 0;
        for (; j + VEC <= zdim; j += VEC) {
            reparam_backward_block(_mm256_loadu_ps(dzi + j), _mm256_loadu_ps(mu + j),
                                   _mm256_loadu_ps(ei + j), _mm256_loadu_ps(si + j), w, &gm, &gl);
            _mm256_storeu_ps(dmu + j, gm);
            _mm256_storeu_ps(dlogvar + j, gl);
        }
        if (j < zdim) {
            __m256i m = first_lanes(zdim - j);
            reparam_backward_block(_mm256_maskload_ps(dzi + j, m), _mm256_maskload_ps(mu + j, m),
                                   _mm256_maskload_ps(ei + j, m), _mm256_maskload_ps(si + j, m), w,
                                   &gm, &gl);
            _mm256_maskstore_ps(dmu + j, m, gm);
            _mm256_maskstore_ps(dlogvar + j, m, gl);
        }
    }
}

/* MSE block: p = sigmoid(l), dlogits = coef (p - t) p (1 - p); returns the squared errors (p - t)^2. */
static inline __m256 mse_block(__m256 l, __m256 t, __m256 coef, __m256 *p, __m256 *dl)
{
    __m256 e, dp;
    *p = stable_sigmoid(l, &e, &dp);
    __m256 diff = _mm256_sub_ps(*p, t);
    *dl = _mm256_mul_ps(_mm256_mul_ps(coef, diff), dp);
    return _mm256_mul_ps(diff, diff);
}

/* BCE block: p = sigmoid(l), dlogits = gs (p - t); returns max(l, 0) - t l + log1p(exp(-|l|)). */
static inline __m256 bce_block(__m256 l, __m256 t, __m256 gs, __m256 *p, __m256 *dl)
{
    __m256 e, dp;
    *p = stable_sigmoid(l, &e, &dp);
    *dl = _mm256_mul_ps(gs, _mm256_sub_ps(*p, t));
    __m256 lin = _mm256_fnmadd_ps(t, l, _mm256_max_ps(l, _mm256_setzero_ps()));
    return _mm256_add_ps(lin, Sleef_log1pf8_u10avx2(e));
}

/* Sigmoid loss rows: dlogits, probs (B, D), loss (B) from logits (B, D) and pixels x (B, D); with
 * bce (a compile-time constant) the BCE block and loss = row sum, else the MSE block and
 * loss = loss_scale * row sum; coef is the per-block gradient scale. */
static inline __attribute__((always_inline)) void
sigmoid_loss_rows(float *dlogits, float *loss, float *probs, const float *logits, const uint8_t *x,
                  __m256 coef, float loss_scale, size_t b, size_t d, int bce)
{
    for (size_t i = 0; i < b; i++) {
        const size_t row = i * d;
        const float *li = logits + row;
        const uint8_t *xi = x + row;
        float *dli = dlogits + row, *pi = probs ? probs + row : NULL;
        __m256 acc = _mm256_setzero_ps(), p, dl;
        size_t j = 0;
        for (; j + VEC <= d; j += VEC) {
            __m256 l = _mm256_loadu_ps(li + j), t = load_targets(xi + j);
            __m256 term = bce ? bce_block(l, t, coef, &p, &dl) : mse_block(l, t, coef, &p, &dl);
            acc = _mm256_add_ps(acc, term);
            if (pi)
                _mm256_storeu_ps(pi + j, p);
            _mm256_storeu_ps(dli + j, dl);
        }
        if (j < d) {
            __m256i m = first_lanes(d - j);
            __m256 l = _mm256_maskload_ps(li + j, m), t = load_targets_tail(xi + j, d - j);
            __m256 term = bce ? bce_block(l, t, coef, &p, &dl) : mse_block(l, t, coef, &p, &dl);
            acc = _mm256_add_ps(acc, _mm256_and_ps(term, _mm256_castsi256_ps(m)));
            if (pi)
                _mm256_maskstore_ps(pi + j, m, p);
            _mm256_maskstore_ps(dli + j, m, dl);
        }
        loss[i] = bce ? sum_lanes(acc) : loss_scale * sum_lanes(acc);
    }
}

/* MSE on sigmoid outputs: dlogits, probs (B, D), loss (B) from logits (B, D) and pixels x (B, D). */
static void sigmoid_mse_avx2(float *dlogits, float *loss, float *probs, const float *logits,
                             const uint8_t *x, float recon_scale, float grad_scale,
                             size_t b, size_t d)
{
    sigmoid_loss_rows(dlogits, loss, probs, logits, x,
                      _mm256_set1_ps(grad_scale * recon_scale * 2.0f), recon_scale, b, d, 0);
}

/* BCE from logits: dlogits, probs (B, D), loss (B) from logits (B, D) and pixels x (B, D). */
static void sigmoid_bce_avx2(float *dlogits, float *loss, float *probs, const float *logits,
                             const uint8_t *x, float grad_scale, size_t b, size_t d)
{
    sigmoid_loss_rows(dlogits, loss, probs, logits, x, _mm256_set1_ps(grad_scale), 1.0f, b, d, 1);
}

/* dst (n) = src (n) / 255, 8 pixels per division. */
static void unit_from_u8_avx2(float *dst, const uint8_t *src, size_t n)
{
    size_t i = 0;
    for (; i + VEC <= n; i += VEC)
        _mm256_storeu_ps(dst + i, load_targets(src + i));
    for (; i < n; i++)
        dst[i] = (float)src[i] / 255.0f;
}

/* db (N) = [db +] sum over rows i of dy (B, N, stride ldy): rows added in order from zero, 32 columns
 * per pass (4 accumulators), then 8, then a masked tail. */
static void column_sum_avx2(float *db, const float *dy, size_t b, size_t n, size_t ldy,
                            int accumulate)
{
    size_t j = 0;
    for (; j + 4 * VEC <= n; j += 4 * VEC) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t i = 0; i < b; i++) {
            const float *r = dy + i * ldy + j;
            a0 = _mm256_add_ps(a0, _mm256_loadu_ps(r));
            a1 = _mm256_add_ps(a1, _mm256_loadu_ps(r + VEC));
            a2 = _mm256_add_ps(a2, _mm256_loadu_ps(r + 2 * VEC));
            a3 = _mm256_add_ps(a3, _mm256_loadu_ps(r + 3 * VEC));
        }
        if (accumulate) {
            a0 = _mm256_add_ps(_mm256_loadu_ps(db + j), a0);
            a1 = _mm256_add_ps(_mm256_loadu_ps(db + j + VEC), a1);
            a2 = _mm256_add_ps(_mm256_loadu_ps(db + j + 2 * VEC), a2);
            a3 = _mm256_add_ps(_mm256_loadu_ps(db + j + 3 * VEC), a3);
        }
        _mm256_storeu_ps(db + j, a0);
        _mm256_storeu_ps(db + j + VEC, a1);
        _mm256_storeu_ps(db + j + 2 * VEC, a2);
        _mm256_storeu_ps(db + j + 3 * VEC, a3);
    }
    for (; j < n; j += VEC) {
        __m256i m = first_lanes(n - j < VEC ? n - j : VEC);
        __m256 a = _mm256_setzero_ps();
        for (size_t i = 0; i < b; i++)
            a = _mm256_add_ps(a, _mm256_maskload_ps(dy + i * ldy + j, m));
        if (accumulate)
            a = _mm256_add_ps(_mm256_maskload_ps(db + j, m), a);
        _mm256_maskstore_ps(db + j, m, a);
    }
}

/* Per-call Adam constants, broadcast: step = lr / bc1 * sqrt(bc2) and eps_s = eps * sqrt(bc2), from double. */
typedef struct {
    __m256 b1, one_b1, b2, one_b2, wd, eps_s, step;
} adam_consts;

/* One Adam block: updates p, m, v in place. m and v as PyTorch computes them; the parameter step is PyTorch's
 * lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps) rearranged to step * m / (sqrt(v) + eps_s) (equal in exact
 * arithmetic), with 1 / (sqrt(v) + eps_s) from the 12-bit reciprocal estimate and one Newton step (within 2 ulp
 * of the division) instead of two divisions: Adam's divisions were 4 % of a one-thread training step. */
static inline void adam_block(__m256 *p, __m256 *m, __m256 *v, __m256 grad, const adam_consts *c)
{
    __m256 g = _mm256_fmadd_ps(c->wd, *p, grad);
    *m = _mm256_fmadd_ps(c->b1, *m, _mm256_mul_ps(c->one_b1, g));
    *v = _mm256_fmadd_ps(c->b2, *v, _mm256_mul_ps(_mm256_mul_ps(c->one_b2, g), g));
    __m256 denom = _mm256_add_ps(_mm256_sqrt_ps(*v), c->eps_s);
    __m256 r = _mm256_rcp_ps(denom);
    r = _mm256_mul_ps(r, _mm256_fnmadd_ps(denom, r, _mm256_set1_ps(2.0f)));
    *p = _mm256_fnmadd_ps(c->step, _mm256_mul_ps(*m, r), *p);
}

/* Adam over one row of n parameters with the step's constants. */
static void adam_row(float *param, float *m, float *v, const float *grad, size_t n, const adam_consts *c)
{
    size_t j = 0;
    for (; j + VEC <= n; j += VEC) {
        __m256 p = _mm256_loadu_ps(param + j), mj = _mm256_loadu_ps(m + j), vj = _mm256_loadu_ps(v + j);
        adam_block(&p, &mj, &vj, _mm256_loadu_ps(grad + j), c);
        _mm256_storeu_ps(param + j, p);
        _mm256_storeu_ps(m + j, mj);
        _mm256_storeu_ps(v + j, vj);
    }
    if (j < n) {
        __m256i k = first_lanes(n - j);
        __m256 p = _mm256_maskload_ps(param + j, k), mj = _mm256_maskload_ps(m + j, k);
        __m256 vj = _mm256_maskload_ps(v + j, k);
        adam_block(&p, &mj, &vj, _mm256_maskload_ps(grad + j, k), c);
        _mm256_maskstore_ps(param + j, k, p);
        _mm256_maskstore_ps(m + j, k, mj);
        _mm256_maskstore_ps(v + j, k, vj);
    }
}

/* Adam step over a rows x cols block, row stride ld (PyTorch torch.optim.Adam, L2 weight decay added to
 * the gradient); bias corrections in double once per call. */
static void adam_avx2(float *param, float *m, float *v, const float *grad, size_t rows, size_t cols, size_t ld,
                      const elbo_adam_hparams *h)
{
    const double bc1 = 1.0 - pow(h->beta1, (double)h->step);
    const double bc2 = 1.0 - pow(h->beta2, (double)h->step);
    const adam_consts c = {
        .b1 = _mm256_set1_ps((float)h->beta1), .one_b1 = _mm256_set1_ps((float)(1.0 - h->beta1)),
        .b2 = _mm256_set1_ps((float)h->beta2), .one_b2 = _mm256_set1_ps((float)(1.0 - h->beta2)),
        .wd = _mm256_set1_ps((float)h->weight_decay), .eps_s = _mm256_set1_ps((float)(h->eps * sqrt(bc2))),
        .step = _mm256_set1_ps((float)(h->lr / bc1 * sqrt(bc2))),
    };
    for (size_t r = 0; r < rows; r++)
        adam_row(param + r * ld, m + r * ld, v + r * ld, grad + r * ld, cols, &c);
}

/* Which SGD update applies this call (fixed per call, so the loops branch predictably). */
typedef enum { SGD_PLAIN, SGD_MOMENTUM, SGD_NESTEROV } sgd_kind;

/* Per-call SGD constants, broadcast. */
typedef struct {
    __m256 lr, mom, damp, wd;
    sgd_kind kind;
    int first_step;
} sgd_consts;

/* One SGD block: updates p and (with momentum) buf in place. */
static inline void sgd_block(__m256 *p, __m256 *buf, __m256 grad, const sgd_consts *c)
{
    __m256 g = _mm256_fmadd_ps(c->wd, *p, grad), step = g;
    if (c->kind != SGD_PLAIN) {
        *buf = c->first_step ? g : _mm256_fmadd_ps(c->mom, *buf, _mm256_mul_ps(c->damp, g));
        step = c->kind == SGD_NESTEROV ? _mm256_fmadd_ps(c->mom, *buf, g) : *buf;
    }
    *p = _mm256_fnmadd_ps(c->lr, step, *p);
}

/* SGD over one row of n parameters with the step's constants. */
static void sgd_row(float *param, float *buf, const float *grad, size_t n, const sgd_consts *c)
{
    const int with_buf = c->kind != SGD_PLAIN, read_buf = with_buf && !c->first_step;
    size_t j = 0;
    for (; j + VEC <= n; j += VEC) {
        __m256 p = _mm256_loadu_ps(param + j);
        __m256 bj = read_buf ? _mm256_loadu_ps(buf + j) : _mm256_setzero_ps();
        sgd_block(&p, &bj, _mm256_loadu_ps(grad + j), c);
        _mm256_storeu_ps(param + j, p);
        if (with_buf)
            _mm256_storeu_ps(buf + j, bj);
    }
    if (j < n) {
        __m256i k = first_lanes(n - j);
        __m256 p = _mm256_maskload_ps(param + j, k);
        __m256 bj = read_buf ? _mm256_maskload_ps(buf + j, k) : _mm256_setzero_ps();
        sgd_block(&p, &bj, _mm256_maskload_ps(grad + j, k), c);
        _mm256_maskstore_ps(param + j, k, p);
        if (with_buf)
            _mm256_maskstore_ps(buf + j, k, bj);
    }
}

/* SGD (momentum, dampening, Nesterov) step over a rows x cols block, row stride ld (PyTorch
 * torch.optim.SGD). With momentum == 0 it is plain SGD and buf is neither read nor written, as in PyTorch. */
static void sgd_avx2(float *param, float *buf, const float *grad, size_t rows, size_t cols, size_t ld,
                     const elbo_sgd_hparams *h, int first_step)
{
    const sgd_consts c = {
        .lr = _mm256_set1_ps((float)h->lr), .mom = _mm256_set1_ps((float)h->momentum),
        .damp = _mm256_set1_ps((float)(1.0 - h->dampening)), .wd = _mm256_set1_ps((float)h->weight_decay),
        .kind = h->momentum == 0.0 ? SGD_PLAIN : h->nesterov ? SGD_NESTEROV : SGD_MOMENTUM,
        .first_step = first_step,
    };
    for (size_t r = 0; r < rows; r++)
        sgd_row(param + r * ld, buf ? buf + r * ld : NULL, grad + r * ld, cols, &c);
}

void elbo_elementwise_register_avx2(elbo_kernels *k)
{
    k->reparam_forward = reparam_forward_avx2;
    k->reparam_backward = reparam_backward_avx2;
    k->sigmoid_mse = sigmoid_mse_avx2;
    k->sigmoid_bce = sigmoid_bce_avx2;
    k->column_sum = column_sum_avx2;
    k->unit_from_u8 = unit_from_u8_avx2;
    k->adam = adam_avx2;
    k->sgd = sgd_avx2;
    elbo_losses_register_avx2(k);
    elbo_coupling_register_avx2(k);
}
