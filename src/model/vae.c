/* VAE forward and backward passes along the data path: fused GEMM epilogues, fused reparameterization
 * + KL, fused sigmoid + loss + gradient, and the ReLU mask fused into the data-gradient GEMMs. */
#include "vae.h"

#include "finite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int elbo_vae_init(elbo_vae *m, const elbo_vae_config *cfg, const elbo_kernels *kern, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (elbo_vae_config_validate(cfg, err, errlen) != 0)
        return -1;
    m->cfg = *cfg;
    m->kern = kern;
    elbo_param_layout_build(&m->layout, cfg);
    m->params = elbo_arena_alloc(&m->layout);
    m->grads = elbo_arena_alloc(&m->layout);
    int ok = m->params && m->grads;
    /* every layer but the first needs its data gradient */
    for (size_t i = 0; ok && i < m->layout.n_layers; i++) {
        const elbo_linear_layout *ly = &m->layout.layer[i];
        ok = elbo_linear_init(&m->layer[i], kern, ly->in, ly->out, ly->w_off, ly->b_off,
                              ly->relu ? ELBO_ACT_RELU : ELBO_ACT_NONE, m->params, i > 0) == 0;
    }
    if (!ok) {
        elbo_vae_free(m);
        snprintf(err, errlen, "out of memory allocating the model");
        return -1;
    }
    return 0;
}

void elbo_vae_free(elbo_vae *m)
{
    for (size_t i = 0; i < ELBO_MAX_LAYERS; i++)
        elbo_linear_free(&m->layer[i]);
    free(m->params);
    free(m->grads);
    memset(m, 0, sizeof *m);
}

void elbo_vae_pack_weights(elbo_vae *m)
{
    for (size_t i = 0; i < m->layout.n_layers; i++)
        elbo_linear_pack(&m->layer[i], m->params);
}

/* Declares a view of `floats` floats per row in a's arena; fills *slot with its index. */
static void add_view(elbo_vae_activations *a, int *slot, const char *name, size_t floats)
{
    *slot = elbo_act_arena_add(&a->arena, name, floats * sizeof(float));
}

int elbo_vae_activations_init(elbo_vae_activations *a, const elbo_vae *m, size_t max_batch)
{
    const elbo_param_layout *l = &m->layout;
    size_t z = m->cfg.latent, d = m->cfg.input_dim;
    int h[ELBO_MAX_LAYERS], dh[ELBO_MAX_LAYERS], mulv, eps, sigma, zz, kl, recon, logits, dz, dmulv;
    memset(a, 0, sizeof *a);
    elbo_act_arena_init(&a->arena);
    a->max_batch = max_batch;
    for (size_t i = 0; i < l->n_layers; i++) {
        char name[ELBO_ACT_VIEW_NAME_MAX];
        h[i] = dh[i] = -1;
        if (l->layer[i].relu) {
            snprintf(name, sizeof name, "h%zu", i);
            add_view(a, &h[i], name, l->layer[i].out);
            snprintf(name, sizeof name, "dh%zu", i);
            add_view(a, &dh[i], name, l->layer[i].out);
        }
    }
    add_view(a, &mulv, "mulv", 2 * z);
    add_view(a, &eps, "eps", z);
    add_view(a, &sigma, "sigma", z);
    add_view(a, &zz, "z", z);
    add_view(a, &kl, "kl", 1);
    add_view(a, &recon, "recon", 1);
    add_view(a, &logits, "logits", d);
    add_view(a, &dz, "dz", z);
    add_view(a, &dmulv, "dmulv", 2 * z);
    if (elbo_act_arena_alloc(&a->arena, max_batch) != 0 || elbo_gemm_workspace_init(&a->ws, m->kern) != 0) {
        elbo_vae_activations_free(a);
        return -1;
    }
    for (size_t i = 0; i < l->n_layers; i++) {
        a->h[i] = elbo_act_arena_view(&a->arena, h[i]);
        a->dh[i] = elbo_act_arena_view(&a->arena, dh[i]);
    }
    a->mulv = elbo_act_arena_view(&a->arena, mulv);
    a->eps = elbo_act_arena_view(&a->arena, eps);
    a->sigma = elbo_act_arena_view(&a->arena, sigma);
    a->z = elbo_act_arena_view(&a->arena, zz);
    a->kl = elbo_act_arena_view(&a->arena, kl);
    a->recon = elbo_act_arena_view(&a->arena, recon);
    a->logits = elbo_act_arena_view(&a->arena, logits);
    a->dz = elbo_act_arena_view(&a->arena, dz);
    a->dmulv = elbo_act_arena_view(&a->arena, dmulv);
    return 0;
}

void elbo_vae_activations_free(elbo_vae_activations *a)
{
    elbo_act_arena_free(&a->arena);
    elbo_gemm_workspace_free(&a->ws);
    memset(a, 0, sizeof *a);
}

/* Row r0 of layer i's input: the pixels for the first layer (xf, B x D floats, when not NULL, else x, B x D
 * uint8: the same values), z for the first decoder layer, else the previous layer's activation. */
static elbo_operand layer_input(const elbo_vae *m, const elbo_vae_activations *a, const uint8_t *x,
                                const float *xf, size_t i, size_t r0)
{
    const elbo_linear_layout *ly = &m->layout.layer[i];
    if (i == 0)
        return xf ? elbo_operand_f32(xf + r0 * ly->in, ly->in, ELBO_NOTRANS)
                  : elbo_operand_u8(x + r0 * ly->in, ly->in, ELBO_NOTRANS);
    if (i == m->layout.heads + 1)
        return elbo_operand_f32(a->z + r0 * ly->in, ly->in, ELBO_NOTRANS);
    return elbo_operand_f32(a->h[i - 1] + r0 * ly->in, ly->in, ELBO_NOTRANS);
}

/* Output (B, out) of layer i's forward GEMM: its hidden activation, mulv for the heads, logits for the output. */
static float *layer_output(const elbo_vae *m, const elbo_vae_activations *a, size_t i)
{
    if (i == m->layout.heads)
        return a->mulv;
    if (i == m->layout.out_layer)
        return a->logits;
    return a->h[i];
}

/* Gradient (B, out) of the loss with respect to layer i's output. */
static float *layer_output_grad(const elbo_vae *m, const elbo_vae_activations *a, size_t i)
{
    if (i == m->layout.heads)
        return a->dmulv;
    if (i == m->layout.out_layer)
        return a->logits;
    return a->dh[i];
}

/* Rows [r0, r1) of layer i's output (B, out) = act(input . W^T + bias), in one GEMM. */
static void linear_forward(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                           const float *xf, size_t i, size_t r0, size_t r1)
{
    const elbo_linear *l = &m->layer[i];
    elbo_linear_forward(l, ws, layer_output(m, a, i) + r0 * l->out, layer_input(m, a, x, xf, i, r0), r1 - r0,
                        m->params);
}

void elbo_vae_encode_rows(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                          size_t r0, size_t r1)
{
    for (size_t i = 0; i <= m->layout.heads; i++)
        linear_forward(m, a, ws, x, NULL, i, r0, r1);
}

void elbo_vae_decode_rows(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, size_t r0, size_t r1)
{
    for (size_t i = m->layout.heads + 1; i <= m->layout.out_layer; i++)
        linear_forward(m, a, ws, NULL, NULL, i, r0, r1);
}

/* Rows [r0, r1) of the reparameterization: z, sigma and the per-sample KL from mulv and eps. */
static void reparam_rows(const elbo_vae *m, elbo_vae_activations *a, size_t r0, size_t r1)
{
    size_t z = m->cfg.latent;
    if (r1 > r0)
        m->kern->reparam_forward(a->z + r0 * z, a->sigma + r0 * z, a->kl + r0, a->mulv + r0 * 2 * z,
                                 a->eps + r0 * z, r1 - r0, z);
}

/* Rows [r0, r1) of the decoder output: sigmoid, per-sample reconstruction loss, d loss / d logits in place of
 * the logits, and the probabilities into probs (B, D) if not NULL. */
static void output_loss_rows(const elbo_vae *m, elbo_vae_activations *a, const uint8_t *x, size_t r0, size_t r1,
                             float *probs)
{
    const elbo_vae_config *c = &m->cfg;
    size_t d = c->input_dim, n = r1 - r0;
    float *logits = a->logits + r0 * d, *p = probs ? probs + r0 * d : NULL;
    if (n == 0)
        return;
    if (c->recon == ELBO_RECON_MSE) {
        float scale = (float)(1.0 / (2.0 * c->sigma0 * c->sigma0));
        m->kern->sigmoid_mse(logits, a->recon + r0, p, logits, x + r0 * d, scale, 1.0f, n, d);
    } else {
        m->kern->sigmoid_bce(logits, a->recon + r0, p, logits, x + r0 * d, 1.0f, n, d);
    }
}

void elbo_vae_forward_rows(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                           size_t r0, size_t r1, float *probs)
{
    if (r1 == r0)
        return;
    elbo_vae_encode_rows(m, a, ws, x, r0, r1);
    reparam_rows(m, a, r0, r1);
    elbo_vae_decode_rows(m, a, ws, r0, r1);
    output_loss_rows(m, a, x, r0, r1, probs);
}

elbo_batch_loss elbo_vae_batch_loss(const elbo_vae *m, const elbo_vae_activations *a, size_t b)
{
    elbo_batch_loss out = {0, 0, 0};
    for (size_t r = 0; r < b; r++) {
        out.recon += a->recon[r];
        out.kl += a->kl[r];
    }
    out.loss = out.recon + m->cfg.beta * out.kl;
    return out;
}

int elbo_vae_output_grads_finite(const elbo_vae *m, const elbo_vae_activations *a, size_t r0, size_t r1)
{
    for (size_t i = 0; i < m->layout.n_layers; i++) {
        size_t out = m->layout.layer[i].out;
        if (!elbo_floats_finite(layer_output_grad(m, a, i) + r0 * out, (r1 - r0) * out))
            return 0;
    }
    return 1;
}

/* Rows [r0, r1) of layer i's data gradient: dx (B, in) = dY (B, out) . W, times the ReLU mask of the input
 * when it has one; dx is dz for the first decoder layer. */
static void linear_data_grad(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, size_t i,
                             size_t r0, size_t r1)
{
    const elbo_linear *l = &m->layer[i];
    float *dx = (i == m->layout.heads + 1) ? a->dz : a->dh[i - 1];
    elbo_activation x_act = i == m->layout.heads + 1 ? ELBO_ACT_NONE : m->layer[i - 1].act;
    const float *x_saved = x_act != ELBO_ACT_NONE ? a->h[i - 1] + r0 * l->in : NULL;
    elbo_linear_data_grad(l, ws, dx + r0 * l->in, layer_output_grad(m, a, i) + r0 * l->out, x_saved, x_act, r1 - r0);
}

void elbo_vae_backward_rows(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, size_t r0,
                            size_t r1)
{
    const elbo_param_layout *l = &m->layout;
    size_t z = m->cfg.latent;
    if (r1 == r0)
        return;
    for (size_t i = l->out_layer; i > 0; i--) {
        linear_data_grad(m, a, ws, i, r0, r1);
        if (i == l->heads + 1)
            m->kern->reparam_backward(a->dmulv + r0 * 2 * z, a->dz + r0 * z, a->mulv + r0 * 2 * z, a->eps + r0 * z,
                                      a->sigma + r0 * z, (float)m->cfg.beta, r1 - r0, z);
    }
}

/* Output features [lo, hi) of layer i that part p of nparts owns in a training step: rows [lo, hi) of its
 * weight gradient dW (out, in), with their optimizer update and repacking, and the same bias features. */
static void layer_rows_of_part(const elbo_vae *m, size_t i, size_t p, size_t nparts, size_t *lo, size_t *hi)
{
    elbo_linear_features_of_part(&m->layer[i], p, nparts, i, lo, hi);
}

/* Layer i's gradients of output features [lo, hi) over b rows: rows [lo, hi) of dW = dY^T . input, and the
 * bias gradient of those features (column sums of dY). */
static void layer_grads_rows(elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                             const float *xf, size_t i, size_t b, size_t lo, size_t hi)
{
    elbo_linear_param_grads(&m->layer[i], ws, m->grads, layer_output_grad(m, a, i), layer_input(m, a, x, xf, i, 0), b,
                            lo, hi);
}

/* Applies `update` to layer i's output features [lo, hi) (weight rows, then biases) and repacks those rows
 * for the forward (W^T: K = in, N = out) and data-gradient (W: K = out, N = in; a no-op when that GEMM reads
 * W in place) GEMMs. */
static void layer_update_pack_rows(elbo_vae *m, size_t i, size_t lo, size_t hi, elbo_param_update_fn update,
                                   void *ctx)
{
    const elbo_linear *l = &m->layer[i];
    if (hi == lo)
        return;
    update(ctx, m, l->w_off + lo * l->in, 1, (hi - lo) * l->in, l->in);
    update(ctx, m, l->b_off + lo, 1, hi - lo, l->out);
    elbo_linear_pack_features(&m->layer[i], m->params, lo, hi);
}

/* Output features [lo, hi) of layer i's forward for all b rows (as linear_forward gives them). */
static void linear_forward_features(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws,
                                    const uint8_t *x, const float *xf, size_t i, size_t b, size_t lo, size_t hi)
{
    elbo_linear_forward_features(&m->layer[i], ws, layer_output(m, a, i), layer_input(m, a, x, xf, i, 0), b, lo, hi,
                                 m->params);
}

void elbo_vae_forward_part(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                           const float *xf, size_t b, size_t r0, size_t r1, size_t part, size_t nparts)
{
    const elbo_param_layout *l = &m->layout;
    int input_by_features = 0; /* x arrives by rows */
    for (size_t i = 0; i <= l->out_layer; i++) {
        int by_features = elbo_linear_forward_by_features(&m->layer[i], b, nparts);
        if (by_features || input_by_features) {
            /* a feature block needs every row of its input; a row needs every feature block of its input */
#pragma omp barrier
        }
        if (by_features) {
            size_t lo, hi;
            layer_rows_of_part(m, i, part, nparts, &lo, &hi);
            if (hi > lo)
                linear_forward_features(m, a, ws, x, xf, i, b, lo, hi);
        } else if (r1 > r0) {
            linear_forward(m, a, ws, x, xf, i, r0, r1);
        }
        input_by_features = by_features;
        if (i == l->heads) {
            if (input_by_features) {
#pragma omp barrier
            }
            reparam_rows(m, a, r0, r1);
            input_by_features = 0;
        }
    }
    if (input_by_features) {
#pragma omp barrier
    }
    output_loss_rows(m, a, x, r0, r1, NULL);
}

void elbo_vae_param_grads_part(elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                               size_t b, size_t part, size_t nparts)
{
    for (size_t i = 0; i < m->layout.n_layers; i++) {
        size_t lo, hi;
        layer_rows_of_part(m, i, part, nparts, &lo, &hi);
        layer_grads_rows(m, a, ws, x, NULL, i, b, lo, hi);
    }
}

/* Panels per tail block when several threads share the tail: 64 rows, 14-15 blocks per thread of a 784-400-20
 * step on two threads. Smaller blocks balance better; on one thread, where nothing is to balance, a layer is
 * one block (the blocks' extra calls cost 2 % of a one-thread step). */
#ifndef TAIL_CHUNK_PANELS
#define TAIL_CHUNK_PANELS 4
#endif

size_t elbo_vae_tail_plan(const elbo_vae *m, size_t part, size_t nparts, elbo_tail_chunk *out)
{
    size_t count = 0;
    for (size_t i = 0; i < m->layout.n_layers; i++) {
        size_t lo, hi;
        layer_rows_of_part(m, i, part, nparts, &lo, &hi);
        size_t step = nparts > 1 ? TAIL_CHUNK_PANELS * m->kern->blocking.nr : hi - lo + 1;
        for (size_t r = lo; r < hi; r += step, count++)
            if (out)
                out[count] = (elbo_tail_chunk){(uint32_t)i, (uint32_t)r, (uint32_t)(hi - r < step ? hi : r + step)};
    }
    return count;
}

void elbo_vae_tail_chunk_run(elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                             const float *xf, size_t b, const elbo_tail_chunk *c, elbo_param_update_fn update,
                             void *ctx)
{
    layer_grads_rows(m, a, ws, x, xf, c->layer, b, c->lo, c->hi);
    layer_update_pack_rows(m, c->layer, c->lo, c->hi, update, ctx);
}

elbo_batch_loss elbo_vae_forward(const elbo_vae *m, elbo_vae_activations *a, const uint8_t *x, size_t b,
                                 float *probs)
{
    elbo_vae_forward_rows(m, a, &a->ws, x, 0, b, probs);
    return elbo_vae_batch_loss(m, a, b);
}

void elbo_vae_backward(elbo_vae *m, elbo_vae_activations *a, const uint8_t *x, size_t b)
{
    elbo_vae_backward_rows(m, a, &a->ws, 0, b);
    elbo_vae_param_grads_part(m, a, &a->ws, x, b, 0, 1);
}

double elbo_vae_train_flops_per_sample(const elbo_vae *m)
{
    const elbo_linear_layout *first = &m->layout.layer[0];
    double macs = (double)elbo_param_layout_macs(&m->layout);
    return 2.0 * (3.0 * macs - (double)(first->in * first->out));
}
