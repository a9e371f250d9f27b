/* AArch64 NEON fused elementwise kernels (elementwise.h); exp and log1p from SLEEF (1.0 ulp each).
 *
 * Every kernel walks its memory once, 8 floats (two quads) at a time; the last 1..7 elements go
 * through the same vector code via a zero-padded stack block (NEON has no masked loads), of which
 * only the valid elements are copied back, so tails compute exactly what full blocks do.
 *
 * Per-row loss sums: two 4-lane float accumulators, so partial k of 8 adds the elements j = k mod 8
 * in increasing j, then the fixed tree ((p0+p4) + (p2+p6)) + ((p1+p5) + (p3+p7)) — the same order
 * as the scalar and AVX2 kernels. It depends only on the row, so a row gives the same bits however
 * a batch is split across threads. */
#include "kernels.h"

#include <arm_neon.h>
#include <math.h>
#include <sleef.h>
#include <string.h>

#include "lanes_neon.h"

/* Targets x / 255 (correctly rounded division) of 8 pixels. */
static inline f32x8 targets_from_pixels(uint8x8_t px)
{
    uint16x8_t w = vmovl_u8(px);
    const float32x4_t k = vdupq_n_f32(255.0f);
    return (f32x8){vdivq_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(w))), k),
                   vdivq_f32(vcvtq_f32_u32(vmovl_u16(vget_high_u16(w))), k)};
}

/* Targets of 8 pixels at px. */
static inline f32x8 load_targets(const uint8_t *px)
{
    return targets_from_pixels(vld1_u8(px));
}

/* Targets of the r < 8 pixels at px; the rest are 0. */
static inline f32x8 load_targets_tail(const uint8_t *px, size_t r)
{
    uint8_t buf[BLOCK] = {0};
    memcpy(buf, px, r);
    return targets_from_pixels(vld1_u8(buf));
}

/* Stable logistic of 4 logits: returns p, sets *e = exp(-|l|), *dp = p (1 - p) = e / (1 + e)^2. */
static inline float32x4_t stable_sigmoid4(float32x4_t l, float32x4_t *e, float32x4_t *dp)
{
    const float32x4_t one = vdupq_n_f32(1.0f);
    float32x4_t ex = Sleef_expf4_u10advsimd(vnegq_f32(vabsq_f32(l)));
    float32x4_t q = vdivq_f32(one, vaddq_f32(one, ex));
    float32x4_t eq = vmulq_f32(ex, q);
    *e = ex;
    *dp = vmulq_f32(eq, q);
    return vbslq_f32(vcgeq_f32(l, vdupq_n_f32(0.0f)), q, eq);
}

/* 4 elements of the reparameterization: sigma, z, and the KL terms mu^2 + sigma^2 - logvar - 1
 * (exp(logvar) taken as sigma * sigma, about 3 ulp). */
static inline float32x4_t reparam4(float32x4_t mu, float32x4_t logvar, float32x4_t eps,
                                   float32x4_t *sigma, float32x4_t *z)
{
    float32x4_t s = Sleef_expf4_u10advsimd(vmulq_n_f32(logvar, 0.5f));
    *sigma = s;
    *z = vfmaq_f32(mu, s, eps);
    float32x4_t t = vfmaq_f32(vmulq_f32(s, s), mu, mu);
    return vsubq_f32(vsubq_f32(t, logvar), vdupq_n_f32(1.0f));
}

/* 8 elements of the reparameterization (see reparam4); returns the KL terms. */
static inline f32x8 reparam_block(f32x8 mu, f32x8 logvar, f32x8 eps, f32x8 *sigma, f32x8 *z)
{
    f32x8 t;
    t.lo = reparam4(mu.lo, logvar.lo, eps.lo, &sigma->lo, &z->lo);
    t.hi = reparam4(mu.hi, logvar.hi, eps.hi, &sigma->hi, &z->hi);
    return t;
}

/* z, sigma (B, Z); kl (B) from mulv (B, 2Z) = [mu | logvar] and eps (B, Z). */
static void reparam_forward_neon(float *z, float *sigma, float *kl, const float *mulv,
                                 const float *eps, size_t b, size_t zdim)
{
    for (size_t i = 0; i < b; i++) {
        const float *mu = mulv + i * 2 * zdim, *logvar = mu + zdim, *ei = eps + i * zdim;
        float *zi = z + i * zdim, *si = sigma + i * zdim;
        f32x8 acc = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}, s, zz;
        size_t j = 0;
        for (; j + BLOCK <= zdim; j += BLOCK) {
            acc = add8(acc, reparam_block(load8(mu + j), load8(logvar + j), load8(ei + j), &s, &zz));
            store8(si + j, s);
            store8(zi + j, zz);
        }
        if (j < zdim) {
            size_t r = zdim - j;
            f32x8 t = reparam_block(load_part(mu + j, r, 0.0f), load_part(logvar + j, r, 0.0f),
                                    load_part(ei + j, r, 0.0f), &s, &zz);
            acc = add8(acc, keep_first(t, r));
            store_part(si + j, s, r);
            store_part(zi + j, zz, r);
        }
        kl[i] = 0.5f * sum_partials(acc);
    }
}

/* dmu = dz + w mu; dlogvar = 0.5 (dz eps sigma + w (sigma^2 - 1)) for 4 elements (sigma^2 - 1 fused). */
static inline void reparam_backward4(float32x4_t dz, float32x4_t mu, float32x4_t eps, float32x4_t s,
                                     float w, float32x4_t *dmu, float32x4_t *dlogvar)
{
    float32x4_t s2m1 = vfmaq_f32(vdupq_n_f32(-1.0f), s, s);
    float32x4_t noise = vmulq_f32(vmulq_f32(dz, eps), s);
    *dmu = vfmaq_n_f32(dz, mu, w);
    *dlogvar = vmulq_n_f32(vfmaq_n_f32(noise, s2m1, w), 0.5f);
}

/* 8 elements of the reparameterization backward (see reparam_backward4). */
static inline void reparam_backward_block(f32x8 dz, f32x8 mu, f32x8 eps, f32x8 s, float w,
                                          f32x8 *dmu, f32x8 *dlogvar)
{
    reparam_backward4(dz.lo, mu.lo, eps.lo, s.lo, w, &dmu->lo, &dlogvar->lo);
    reparam_backward4(dz.hi, mu.hi, eps.hi, s.hi, w, &dmu->hi, &dlogvar->hi);
}

/* dmulv (B, 2Z) = [dmu | dlogvar] from dz, eps, sigma (B, Z), mulv (B, 2Z) and the KL weight. */
static void reparam_backward_neon(float *dmulv, const float *dz, const float *mulv,
                                  const float *eps, const float *sigma, float kl_weight,
                                  size_t b, size_t zdim)
{
    for (size_t i = 0; i < b; i++) {
        const float *mu = mulv + i * 2 * zdim;
        const float *dzi = dz + i * zdim, *ei = eps + i * zdim, *si = sigma + i * zdim;
        float *dmu = dmulv + i * 2 * zdim, *dlogvar = dmu + zdim;
        f32x8 gm, gl;
        size_t j = 0;
        for (; j + BLOCK <= zdim; j += BLOCK) {
            reparam_backward_block(load8(dzi + j), load8(mu + j), load8(ei + j), load8(si + j),
                                   kl_weight, &gm, &gl);
            store8(dmu + j, gm);
            store8(dlogvar + j, gl);
        }
        if (j < zdim) {
            size_t r = zdim - j;
            reparam_backward_block(load_part(dzi + j, r, 0.0f), load_part(mu + j, r, 0.0f), load_part(ei + j, r, 0.0f),
                                   load_part(si + j, r, 0.0f), kl_weight, &gm, &gl);
            store_part(dmu + j, gm, r);
            store_part(dlogvar + j, gl, r);
        }
    }
}

/* 4 MSE elements: p = sigmoid(l), dlogits = coef (p - t) p (1 - p); returns (p - t)^2. */
static inline float32x4_t mse4(float32x4_t l, float32x4_t t, float coef, float32x4_t *p,
                               float32x4_t *dl)
{
    float32x4_t e, dp;
    *p = stable_sigmoid4(l, &e, &dp);
    float32x4_t diff = vsubq_f32(*p, t);
    *dl = vmulq_f32(vmulq_n_f32(diff, coef), dp);
    return vmulq_f32(diff, diff);
}

/* 8 MSE elements (see mse4); returns the squared errors. */
static inline f32x8 mse_block(f32x8 l, f32x8 t, float coef, f32x8 *p, f32x8 *dl)
{
    f32x8 sq;
    sq.lo = mse4(l.lo, t.lo, coef, &p->lo, &dl->lo);
    sq.hi = mse4(l.hi, t.hi, coef, &p->hi, &dl->hi);
    return sq;
}

/* 4 BCE elements: p = sigmoid(l), dlogits = gs (p - t); returns max(l, 0) - t l + log1p(exp(-|l|)). */
static inline float32x4_t bce4(float32x4_t l, float32x4_t t, float gs, float32x4_t *p,
                               float32x4_t *dl)
{
    float32x4_t e, dp;
    *p = stable_sigmoid4(l, &e, &dp);
    *dl = vmulq_n_f32(vsubq_f32(*p, t), gs);
    float32x4_t lin = vfmsq_f32(vmaxq_f32(l, vdupq_n_f32(0.0f)), t, l);
    return vaddq_f32(lin, Sleef_log1pf4_u10advsimd(e));
}

/* 8 BCE elements (see bce4); returns the loss terms. */
static inline f32x8 bce_block(f32x8 l, f32x8 t, float gs, f32x8 *p, f32x8 *dl)
{
    f32x8 term;
    term.lo = bce4(l.lo, t.lo, gs, &p->lo, &dl->lo);
    term.hi = bce4(l.hi, t.hi, gs, &p->hi, &dl->hi);
    return term;
}

/* Sigmoid loss rows: dlogits, probs (B, D), loss (B) from logits (B, D) and pixels x (B, D); with
 * bce (a compile-time constant) the BCE block and loss = row sum, else the MSE block and
 * loss = loss_scale * row sum; coef is the per-block gradient scale. */
static inline __attribute__((always_inline)) void
sigmoid_loss_rows(float *dlogits, float *loss, float *probs, const float *logits, const uint8_t *x,
                  float coef, float loss_scale, size_t b, size_t d, int bce)
{
    for (size_t i = 0; i < b; i++) {
        const size_t row = i * d;
        const float *li = logits + row;
        const uint8_t *xi = x + row;
        float *dli = dlogits + row, *pi = probs ? probs + row : NULL;
        f32x8 acc = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}, p, dl;
        size_t j = 0;
        for (; j + BLOCK <= d; j += BLOCK) {
            f32x8 l = load8(li + j), t = load_targets(xi + j);
            acc = add8(acc, bce ? bce_block(l, t, coef, &p, &dl) : mse_block(l, t, coef, &p, &dl));
            if (pi)
                store8(pi + j, p);
            store8(dli + j, dl);
        }
        if (j < d) {
            size_t r = d - j;
            f32x8 l = load_part(li + j, r, 0.0f), t = load_targets_tail(xi + j, r);
            f32x8 term = bce ? bce_block(l, t, coef, &p, &dl) : mse_block(l, t, coef, &p, &dl);
            acc = add8(acc, keep_first(term, r));
            if (pi)
                store_part(pi + j, p, r);
            store_part(dli + j, dl, r);
        }
        loss[i] = bce ? sum_partials(acc) : loss_scale * sum_partials(acc);
    }
}

/* MSE on sigmoid outputs: dlogits, probs (B, D), loss (B) from logits (B, D) and pixels x (B, D). */
static void sigmoid_mse_neon(float *dlogits, float *loss, float *probs, const float *logits,
                             const uint8_t *x, float recon_scale, float grad_scale,
                             size_t b, size_t d)
{
    sigmoid_loss_rows(dlogits, loss, probs, logits, x, grad_scale * recon_scale * 2.0f, recon_scale,
                      b, d, 0);
}

/* BCE from logits: dlogits, probs (B, D), loss (B) from logits (B, D) and pixels x (B, D). */
static void sigmoid_bce_neon(float *dlogits, float *loss, float *probs, const float *logits,
                             const uint8_t *x, float grad_scale, size_t b, size_t d)
{
    sigmoid_loss_rows(dlogits, loss, probs, logits, x, grad_scale, 1.0f, b, d, 1);
}

/* dst (n) = src (n) / 255, 8 pixels per step. */
static void unit_from_u8_neon(float *dst, const uint8_t *src, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        f32x8 t = load_targets(src + i);
        vst1q_f32(dst + i, t.lo);
        vst1q_f32(dst + i + 4, t.hi);
    }
    for (; i < n; i++)
        dst[i] = (float)src[i] / 255.0f;
}

/* db (N) = [db +] sum over rows i of dy (B, N, stride ldy): rows added in order from zero,
 * 16 columns per pass (4 accumulators), then 4, then one column at a time. */
static void column_sum_neon(float *db, const float *dy, size_t b, size_t n, size_t ldy,
                            int accumulate)
{
    size_t j = 0;
    for (; j + 16 <= n; j += 16) {
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (size_t i = 0; i < b; i++) {
            const float *r = dy + i * ldy + j;
            a0 = vaddq_f32(a0, vld1q_f32(r));
            a1 = vaddq_f32(a1, vld1q_f32(r + 4));
            a2 = vaddq_f32(a2, vld1q_f32(r + 8));
            a3 = vaddq_f32(a3, vld1q_f32(r + 12));
        }
        if (accumulate) {
            a0 = vaddq_f32(vld1q_f32(db + j), a0);
            a1 = vaddq_f32(vld1q_f32(db + j + 4), a1);
            a2 = vaddq_f32(vld1q_f32(db + j + 8), a2);
            a3 = vaddq_f32(vld1q_f32(db + j + 12), a3);
        }
        vst1q_f32(db + j, a0);
        vst1q_f32(db + j + 4, a1);
        vst1q_f32(db + j + 8, a2);
        vst1q_f32(db + j + 12, a3);
    }
    for (; j + 4 <= n; j += 4) {
        float32x4_t a = vdupq_n_f32(0.0f);
        for (size_t i = 0; i < b; i++)
            a = vaddq_f32(a, vld1q_f32(dy + i * ldy + j));
        vst1q_f32(db + j, accumulate ? vaddq_f32(vld1q_f32(db + j), a) : a);
    }
    for (; j < n; j++) {
        float s = 0.0f;
        for (size_t i = 0; i < b; i++)
            s += dy[i * ldy + j];
        db[j] = accumulate ? db[j] + s : s;
    }
}

/* Per-call Adam constants. */
typedef struct {
    float b1, one_b1, b2, one_b2, wd, step_size;
    float32x4_t eps, bc2_sqrt;
} adam_consts;

/* One Adam quad: updates p, m, v in place (PyTorch order of operations). */
static inline void adam4(float32x4_t *p, float32x4_t *m, float32x4_t *v, float32x4_t grad,
                         const adam_consts *c)
{
    float32x4_t g = vfmaq_n_f32(grad, *p, c->wd);
    *m = vfmaq_n_f32(vmulq_n_f32(g, c->one_b1), *m, c->b1);
    *v = vfmaq_n_f32(vmulq_f32(vmulq_n_f32(g, c->one_b2), g), *v, c->b2);
    float32x4_t denom = vaddq_f32(vdivq_f32(vsqrtq_f32(*v), c->bc2_sqrt), c->eps);
    *p = vfmsq_n_f32(*p, vdivq_f32(*m, denom), c->step_size);
}

/* One Adam block of 8 (see adam4). */
static inline void adam_block(f32x8 *p, f32x8 *m, f32x8 *v, f32x8 grad, const adam_consts *c)
{
    adam4(&p->lo, &m->lo, &v->lo, grad.lo, c);
    adam4(&p->hi, &m->hi, &v->hi, grad.hi, c);
}

/* Adam over one row of n parameters with the step's constants. */
static void adam_row(float *param, float *m, float *v, const float *grad, size_t n, const adam_consts *c)
{
    size_t j = 0;
    for (; j + BLOCK <= n; j += BLOCK) {
        f32x8 p = load8(param + j), mj = load8(m + j), vj = load8(v + j);
        adam_block(&p, &mj, &vj, load8(grad + j), c);
        store8(param + j, p);
        store8(m + j, mj);
        store8(v + j, vj);
    }
    if (j < n) {
        size_t r = n - j;
        f32x8 p = load_part(param + j, r, 0.0f), mj = load_part(m + j, r, 0.0f), vj = load_part(v + j, r, 0.0f);
        adam_block(&p, &mj, &vj, load_part(grad + j, r, 0.0f), c);
        store_part(param + j, p, r);
        store_part(m + j, mj, r);
        store_part(v + j, vj, r);
    }
}

/* Adam step over a rows x cols block, row stride ld (PyTorch torch.optim.Adam, L2 weight decay added to
 * the gradient); bias corrections in double once per call. */
static void adam_neon(float *param, float *m, float *v, const float *grad, size_t rows, size_t cols, size_t ld,
                      const elbo_adam_hparams *h)
{
    const double bc1 = 1.0 - pow(h->beta1, (double)h->step);
    const double bc2 = 1.0 - pow(h->beta2, (double)h->step);
    const adam_consts c = {
        .b1 = (float)h->beta1, .one_b1 = (float)(1.0 - h->beta1), .b2 = (float)h->beta2, .one_b2 = (float)(1.0 - h->beta2),
        .wd = (float)h->weight_decay, .step_size = (float)(h->lr / bc1),
        .eps = vdupq_n_f32((float)h->eps), .bc2_sqrt = vdupq_n_f32((float)sqrt(bc2)),
    };
    for (size_t r = 0; r < rows; r++)
        adam_row(param + r * ld, m + r * ld, v + r * ld, grad + r * ld, cols, &c);
}

/* Which SGD update applies this call (fixed per call, so the loops branch predictably). */
typedef enum { SGD_PLAIN, SGD_MOMENTUM, SGD_NESTEROV } sgd_kind;

/* Per-call SGD constants. */
typedef struct {
    float lr, mom, damp, wd;
    sgd_kind kind;
    int first_step;
} sgd_consts;

/* One SGD quad: updates p and (with momentum) buf in place. */
static inline void sgd4(float32x4_t *p, float32x4_t *buf, float32x4_t grad, const sgd_consts *c)
{
    float32x4_t g = vfmaq_n_f32(grad, *p, c->wd), step = g;
    if (c->kind != SGD_PLAIN) {
        *buf = c->first_step ? g : vfmaq_n_f32(vmulq_n_f32(g, c->damp), *buf, c->mom);
        step = c->kind == SGD_NESTEROV ? vfmaq_n_f32(g, *buf, c->mom) : *buf;
    }
    *p = vfmsq_n_f32(*p, step, c->lr);
}

/* One SGD block of 8 (see sgd4). */
static inline void sgd_block(f32x8 *p, f32x8 *buf, f32x8 grad, const sgd_consts *c)
{
    sgd4(&p->lo, &buf->lo, grad.lo, c);
    sgd4(&p->hi, &buf->hi, grad.hi, c);
}

/* SGD over one row of n parameters with the step's constants. */
static void sgd_row(float *param, float *buf, const float *grad, size_t n, const sgd_consts *c)
{
    const int with_buf = c->kind != SGD_PLAIN, read_buf = with_buf && !c->first_step;
    const f32x8 zero = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
    size_t j = 0;
    for (; j + BLOCK <= n; j += BLOCK) {
        f32x8 p = load8(param + j), bj = read_buf ? load8(buf + j) : zero;
        sgd_block(&p, &bj, load8(grad + j), c);
        store8(param + j, p);
        if (with_buf)
            store8(buf + j, bj);
    }
    if (j < n) {
        size_t r = n - j;
        f32x8 p = load_part(param + j, r, 0.0f), bj = read_buf ? load_part(buf + j, r, 0.0f) : zero;
        sgd_block(&p, &bj, load_part(grad + j, r, 0.0f), c);
        store_part(param + j, p, r);
        if (with_buf)
            store_part(buf + j, bj, r);
    }
}

/* SGD (momentum, dampening, Nesterov) step over a rows x cols block, row stride ld (PyTorch
 * torch.optim.SGD). With momentum == 0 it is plain SGD and buf is neither read nor written, as in PyTorch. */
static void sgd_neon(float *param, float *buf, const float *grad, size_t rows, size_t cols, size_t ld,
                     const elbo_sgd_hparams *h, int first_step)
{
    const sgd_consts c = {
        .lr = (float)h->lr, .mom = (float)h->momentum, .damp = (float)(1.0 - h->dampening), .wd = (float)h->weight_decay,
        .kind = h->momentum == 0.0 ? SGD_PLAIN : h->nesterov ? SGD_NESTEROV : SGD_MOMENTUM,
        .first_step = first_step,
    };
    for (size_t r = 0; r < rows; r++)
        sgd_row(param + r * ld, buf ? buf + r * ld : NULL, grad + r * ld, cols, &c);
}

void elbo_elementwise_register_neon(elbo_kernels *k)
{
    k->reparam_forward = reparam_forward_neon;
    k->reparam_backward = reparam_backward_neon;
    k->sigmoid_mse = sigmoid_mse_neon;
    k->sigmoid_bce = sigmoid_bce_neon;
    k->column_sum = column_sum_neon;
    k->unit_from_u8 = unit_from_u8_neon;
    k->adam = adam_neon;
    k->sgd = sgd_neon;
    elbo_losses_register_neon(k);
    elbo_coupling_register_neon(k);
}
