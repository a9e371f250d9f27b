/* VAE forward and backward passes along the data path: fused GEMM epilogues, fused reparameterization
 * + KL, fused sigmoid + loss + gradient, and the ReLU mask fused into the data-gradient GEMMs. */
#include "vae.h"

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
    for (size_t i = 0; ok && i < m->layout.n_layers; i++) {
        const elbo_linear_layout *ly = &m->layout.layer[i];
        ok = elbo_packed_b_alloc(&m->fwd[i], kern, ly->in, ly->out) == 0;
        if (ok && i > 0)
            ok = elbo_packed_b_alloc(&m->bwd[i], kern, ly->out, ly->in) == 0;
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
    for (size_t i = 0; i < ELBO_MAX_LAYERS; i++) {
        elbo_packed_b_free(&m->fwd[i]);
        elbo_packed_b_free(&m->bwd[i]);
    }
    free(m->params);
    free(m->grads);
    memset(m, 0, sizeof *m);
}

void elbo_vae_pack_weights(elbo_vae *m)
{
    for (size_t i = 0; i < m->layout.n_layers; i++) {
        const elbo_linear_layout *ly = &m->layout.layer[i];
        const float *w = m->params + ly->w_off;
        elbo_pack_b(&m->fwd[i], elbo_operand_f32(w, ly->in, ELBO_TRANS));
        if (i > 0)
            elbo_pack_b(&m->bwd[i], elbo_operand_f32(w, ly->in, ELBO_NOTRANS));
    }
}

/* Allocates n floats, 64-byte aligned; NULL if n is 0 or on failure. */
static float *alloc_floats(size_t n)
{
    if (n == 0)
        return NULL;
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    return aligned_alloc(64, bytes);
}

int elbo_vae_activations_init(elbo_vae_activations *a, const elbo_vae *m, size_t max_batch)
{
    const elbo_param_layout *l = &m->layout;
    size_t z = m->cfg.latent, d = m->cfg.input_dim, widest = 0;
    memset(a, 0, sizeof *a);
    a->max_batch = max_batch;
    int ok = 1;
    for (size_t i = 0; i < l->n_layers; i++) {
        if (l->layer[i].relu) {
            a->h[i] = alloc_floats(max_batch * l->layer[i].out);
            ok &= a->h[i] != NULL;
        }
        if (l->layer[i].in > widest)
            widest = l->layer[i].in;
    }
    a->mulv = alloc_floats(max_batch * 2 * z);
    a->eps = alloc_floats(max_batch * z);
    a->sigma = alloc_floats(max_batch * z);
    a->z = alloc_floats(max_batch * z);
    a->kl = alloc_floats(max_batch);
    a->recon = alloc_floats(max_batch);
    a->logits = alloc_floats(max_batch * d);
    a->dh[0] = alloc_floats(max_batch * widest);
    a->dh[1] = alloc_floats(max_batch * widest);
    a->dz = alloc_floats(max_batch * z);
    a->dmulv = alloc_floats(max_batch * 2 * z);
    ok &= a->mulv && a->eps && a->sigma && a->z && a->kl && a->recon && a->logits && a->dh[0] && a->dh[1] &&
          a->dz && a->dmulv;
    ok = ok && elbo_gemm_workspace_init(&a->ws, m->kern) == 0;
    if (!ok) {
        elbo_vae_activations_free(a);
        return -1;
    }
    return 0;
}

void elbo_vae_activations_free(elbo_vae_activations *a)
{
    for (size_t i = 0; i < ELBO_MAX_LAYERS; i++)
        free(a->h[i]);
    free(a->mulv);
    free(a->eps);
    free(a->sigma);
    free(a->z);
    free(a->kl);
    free(a->recon);
    free(a->logits);
    free(a->dh[0]);
    free(a->dh[1]);
    free(a->dz);
    free(a->dmulv);
    elbo_gemm_workspace_free(&a->ws);
    memset(a, 0, sizeof *a);
}

/* The input operand of layer i: x (uint8, B x D) for the first layer, z for the first decoder layer,
 * else the previous layer's activation. */
static elbo_operand layer_input(const elbo_vae *m, const elbo_vae_activations *a, const uint8_t *x, size_t i)
{
    const elbo_linear_layout *ly = &m->layout.layer[i];
    if (i == 0)
        return elbo_operand_u8(x, ly->in, ELBO_NOTRANS);
    if (i == m->layout.heads + 1)
        return elbo_operand_f32(a->z, ly->in, ELBO_NOTRANS);
    return elbo_operand_f32(a->h[i - 1], ly->in, ELBO_NOTRANS);
}

/* Output (B, out) of layer i's forward GEMM: its hidden activation, mulv for the heads, logits for the output. */
static float *layer_output(const elbo_vae *m, elbo_vae_activations *a, size_t i)
{
    if (i == m->layout.heads)
        return a->mulv;
    if (i == m->layout.out_layer)
        return a->logits;
    return a->h[i];
}

/* y (B, out) = input (B, in) . W^T + bias, then ReLU if the layer has one, in one GEMM. */
static void linear_forward(const elbo_vae *m, elbo_vae_activations *a, const uint8_t *x, size_t i, size_t b)
{
    const elbo_linear_layout *ly = &m->layout.layer[i];
    elbo_epilogue epi = {.bias = m->params + ly->b_off, .relu = ly->relu};
    elbo_gemm_packed(m->kern, &a->ws, b, ly->out, ly->in, 1.0f, layer_input(m, a, x, i), &m->fwd[i], 0.0f,
                     layer_output(m, a, i), ly->out, &epi);
}

void elbo_vae_encode(const elbo_vae *m, elbo_vae_activations *a, const uint8_t *x, size_t b)
{
    for (size_t i = 0; i <= m->layout.heads; i++)
        linear_forward(m, a, x, i, b);
}

void elbo_vae_decode_logits(const elbo_vae *m, elbo_vae_activations *a, size_t b)
{
    for (size_t i = m->layout.heads + 1; i <= m->layout.out_layer; i++)
        linear_forward(m, a, NULL, i, b);
}

elbo_batch_loss elbo_vae_forward(const elbo_vae *m, elbo_vae_activations *a, const uint8_t *x, size_t b,
                                 float *probs)
{
    const elbo_vae_config *c = &m->cfg;
    elbo_batch_loss out = {0, 0, 0};
    elbo_vae_encode(m, a, x, b);
    m->kern->reparam_forward(a->z, a->sigma, a->kl, a->mulv, a->eps, b, c->latent);
    elbo_vae_decode_logits(m, a, b);
    if (c->recon == ELBO_RECON_MSE) {
        float scale = (float)(1.0 / (2.0 * c->sigma0 * c->sigma0));
        m->kern->sigmoid_mse(a->logits, a->recon, probs, a->logits, x, scale, 1.0f, b, c->input_dim);
    } else {
        m->kern->sigmoid_bce(a->logits, a->recon, probs, a->logits, x, 1.0f, b, c->input_dim);
    }
    for (size_t r = 0; r < b; r++) {
        out.recon += a->recon[r];
        out.kl += a->kl[r];
    }
    out.loss = out.recon + c->beta * out.kl;
    return out;
}

/* Weight and bias gradients of layer i: dW (out, in) = dY^T . input, db (out) = column sums of dY (B, out). */
static void linear_param_grads(elbo_vae *m, elbo_vae_activations *a, const uint8_t *x, size_t i,
                               const float *dy, size_t b)
{
    const elbo_linear_layout *ly = &m->layout.layer[i];
    elbo_gemm(m->kern, &a->ws, ly->out, ly->in, b, 1.0f, elbo_operand_f32(dy, ly->out, ELBO_TRANS),
              layer_input(m, a, x, i), 0.0f, m->grads + ly->w_off, ly->in, NULL);
    m->kern->column_sum(m->grads + ly->b_off, dy, b, ly->out, ly->out, 0);
}

/* Data gradient of layer i: dx (B, in) = dY (B, out) . W, times the ReLU mask of the input when it has one. */
static void linear_data_grad(const elbo_vae *m, elbo_vae_activations *a, size_t i, const float *dy, float *dx,
                             size_t b)
{
    const elbo_linear_layout *ly = &m->layout.layer[i];
    elbo_epilogue epi = {0};
    if (m->layout.layer[i - 1].relu) {
        epi.relu_mask = a->h[i - 1];
        epi.ld_mask = ly->in;
    }
    elbo_gemm_packed(m->kern, &a->ws, b, ly->in, ly->out, 1.0f, elbo_operand_f32(dy, ly->out, ELBO_NOTRANS),
                     &m->bwd[i], 0.0f, dx, ly->in, &epi);
}

void elbo_vae_backward(elbo_vae *m, elbo_vae_activations *a, const uint8_t *x, size_t b)
{
    const elbo_param_layout *l = &m->layout;
    const float *dy = a->logits;
    int next = 0;
    for (size_t i = l->out_layer + 1; i-- > 0;) {
        linear_param_grads(m, a, x, i, dy, b);
        if (i == 0)
            break;
        float *dx = (i == l->heads + 1) ? a->dz : a->dh[next];
        linear_data_grad(m, a, i, dy, dx, b);
        if (i == l->heads + 1) {
            m->kern->reparam_backward(a->dmulv, a->dz, a->mulv, a->eps, a->sigma, (float)m->cfg.beta, b,
                                      m->cfg.latent);
            dy = a->dmulv;
        } else {
            dy = dx;
            next ^= 1;
        }
    }
}

double elbo_vae_train_flops_per_sample(const elbo_vae *m)
{
    const elbo_linear_layout *first = &m->layout.layer[0];
    double macs = (double)elbo_param_layout_macs(&m->layout);
    return 2.0 * (3.0 * macs - (double)(first->in * first->out));
}
