/* VAE forward and backward passes along the data path: fused GEMM epilogues, fused reparameterization
 * + KL, fused sigmoid + loss + gradient, and the ReLU mask fused into the data-gradient GEMMs. */
#include "vae.h"

#include "rng.h"


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void elbo_vae_layout_build(elbo_param_layout *l, const elbo_vae_config *c)
{
    char prefix[ELBO_TENSOR_NAME_MAX];
    const char *p = prefix;
    memset(l, 0, sizeof *l);
    size_t in = c->input_dim;
    for (size_t i = 0; i < c->n_enc; i++) {
        snprintf(prefix, sizeof prefix, "encoder.%zu", i);
        elbo_param_layout_add_linear(l, in, c->enc_hidden[i], 1, 1, &p);
        in = c->enc_hidden[i];
    }
    /* Both heads in one (2Z, in) weight and one (2Z) bias, exposed as fc_mu and fc_logvar. */
    static const char *const heads[] = {"fc_mu", "fc_logvar"};
    elbo_param_layout_add_linear(l, in, 2 * c->latent, 0, 2, heads);
    in = c->latent;
    for (size_t i = 0; i < c->n_dec; i++) {
        snprintf(prefix, sizeof prefix, "decoder.%zu", i);
        elbo_param_layout_add_linear(l, in, c->dec_hidden[i], 1, 1, &p);
        in = c->dec_hidden[i];
    }
    static const char *const out[] = {"fc_out"};
    elbo_param_layout_add_linear(l, in, c->input_dim, 0, 1, out);
}

int elbo_vae_init(elbo_vae *m, const elbo_vae_config *cfg, const elbo_kernels *kern, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (elbo_vae_config_validate(cfg, err, errlen) != 0)
        return -1;
    m->cfg = *cfg;
    m->kern = kern;
    elbo_vae_layout_build(&m->layout, cfg);
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

/* The encoder MLP (x (B, D) -> [mu | logvar] (B, 2Z)) and the decoder MLP (z (B, Z) -> logits (B, D), whose
 * gradient the fused loss writes in place) over a's buffers. */
static void build_mlps(const elbo_vae *m, elbo_vae_activations *a)
{
    const elbo_param_layout *l = &m->layout;
    size_t heads = m->cfg.n_enc; /* the layer of [mu | logvar] */
    elbo_mlp *enc = &a->enc, *dec = &a->dec;
    memset(enc, 0, sizeof *enc);
    memset(dec, 0, sizeof *dec);
    enc->n = heads + 1;
    enc->layer = m->layer;
    for (size_t i = 0; i < heads; i++) {
        enc->out[i] = a->h[i];
        enc->dout[i] = a->dh[i];
    }
    enc->out[heads] = a->mulv;
    enc->dout[heads] = a->dmulv;
    dec->n = l->n_layers - 1 - heads;
    dec->layer = m->layer + heads + 1;
    dec->first_index = heads + 1;
    for (size_t j = 0; j + 1 < dec->n; j++) {
        dec->out[j] = a->h[heads + 1 + j];
        dec->dout[j] = a->dh[heads + 1 + j];
    }
    dec->out[dec->n - 1] = a->logits;
    dec->dout[dec->n - 1] = a->logits;
    dec->dx = a->dz;
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
    build_mlps(m, a);
    return 0;
}

void elbo_vae_activations_free(elbo_vae_activations *a)
{
    elbo_act_arena_free(&a->arena);
    elbo_gemm_workspace_free(&a->ws);
    memset(a, 0, sizeof *a);
}

/* The encoder's input: the pixels as floats (xf, B x D, when not NULL) or as uint8 (x): the same values. */
static elbo_operand encoder_input(const elbo_vae *m, const uint8_t *x, const float *xf)
{
    size_t d = m->cfg.input_dim;
    return xf ? elbo_operand_f32(xf, d, ELBO_NOTRANS) : elbo_operand_u8(x, d, ELBO_NOTRANS);
}

/* The decoder's input: z (B, Z). */
static elbo_operand decoder_input(const elbo_vae *m, const elbo_vae_activations *a)
{
    return elbo_operand_f32(a->z, m->cfg.latent, ELBO_NOTRANS);
}

void elbo_vae_encode_rows(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                          size_t r0, size_t r1)
{
    elbo_mlp_forward_rows(&a->enc, ws, encoder_input(m, x, NULL), r0, r1, m->params);
}

void elbo_vae_decode_rows(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, size_t r0, size_t r1)
{
    elbo_mlp_forward_rows(&a->dec, ws, decoder_input(m, a), r0, r1, m->params);
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
    (void)m;
    return elbo_mlp_output_grads_finite(&a->enc, r0, r1) && elbo_mlp_output_grads_finite(&a->dec, r0, r1);
}

void elbo_vae_backward_rows(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, size_t r0,
                            size_t r1)
{
    size_t z = m->cfg.latent;
    if (r1 == r0)
        return;
    elbo_mlp_backward_rows(&a->dec, ws, r0, r1, NULL, ELBO_ACT_NONE);
    m->kern->reparam_backward(a->dmulv + r0 * 2 * z, a->dz + r0 * z, a->mulv + r0 * 2 * z, a->eps + r0 * z,
                              a->sigma + r0 * z, (float)m->cfg.beta, r1 - r0, z);
    elbo_mlp_backward_rows(&a->enc, ws, r0, r1, NULL, ELBO_ACT_NONE);
}

void elbo_vae_forward_part(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                           const float *xf, size_t b, size_t r0, size_t r1, size_t part, size_t nparts)
{
    elbo_mlp_forward_part(&a->enc, ws, encoder_input(m, x, xf), b, r0, r1, part, nparts, m->params);
    reparam_rows(m, a, r0, r1);
    elbo_mlp_forward_part(&a->dec, ws, decoder_input(m, a), b, r0, r1, part, nparts, m->params);
    output_loss_rows(m, a, x, r0, r1, NULL);
}

/* Every layer as the tail sees it (ELBO_MAX_LAYERS entries at most): its output gradient and its input over all
 * rows, the encoder's from x/xf; returns how many. */
static size_t trainables(const elbo_vae *m, const elbo_vae_activations *a, const uint8_t *x, const float *xf,
                         elbo_trainable *out)
{
    size_t n = 0;
    const elbo_mlp *mlps[2] = {&a->enc, &a->dec};
    elbo_operand inputs[2] = {encoder_input(m, x, xf), decoder_input(m, a)};
    for (size_t k = 0; k < 2; k++)
        for (size_t i = 0; i < mlps[k]->n; i++, n++)
            out[n] = (elbo_trainable){.layer = (elbo_linear *)&m->layer[n], .dy = mlps[k]->dout[i],
                                      .x = elbo_mlp_layer_input(mlps[k], inputs[k], i, 0), .rotate = n};
    return n;
}

void elbo_vae_param_grads_part(elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                               size_t b, size_t part, size_t nparts)
{
    elbo_trainable t[ELBO_MAX_LAYERS];
    size_t n = trainables(m, a, x, NULL, t);
    elbo_tail_grads_part(t, n, ws, m->grads, b, part, nparts);
}

size_t elbo_vae_tail_plan(const elbo_vae *m, const elbo_vae_activations *a, size_t part, size_t nparts,
                          elbo_tail_chunk *out)
{
    elbo_trainable t[ELBO_MAX_LAYERS];
    size_t n = trainables(m, a, NULL, NULL, t);
    return elbo_tail_plan(t, n, part, nparts, out);
}

void elbo_vae_tail_chunk_run(elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                             const float *xf, size_t b, const elbo_tail_chunk *c, elbo_param_update_fn update,
                             void *ctx)
{
    elbo_trainable t[ELBO_MAX_LAYERS];
    trainables(m, a, x, xf, t);
    elbo_tail_chunk_run(t, ws, m->params, m->grads, NULL, 0, b, c, update, ctx);
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

/* ---- the VAE as the trainer sees it ---- */

/* Fills eps (n, Z): row r gets the normals of (seed, stream, first_index + r, step). */
static void fill_noise(float *eps, size_t n, size_t z, uint64_t seed, elbo_rng_stream stream, size_t first_index,
                       uint32_t step)
{
    for (size_t r = 0; r < n; r++)
        elbo_rng_normals(eps + r * z, z, seed, stream, (uint32_t)(first_index + r), step);
}

/* elbo_model_ops.act_new, act_free and act_arena. */
ELBO_MODEL_ACTIVATION_OPS(vae, elbo_vae_activations, elbo_vae_activations_init, elbo_vae_activations_free)

/* elbo_model_ops.train_rows: the rows' training noise (seed, step, batch row), forward part and data gradients
 * (those rows' forward values are complete when the forward part returns: no barrier before the backward). */
static void vae_train_rows(const void *impl, void *act, elbo_gemm_workspace *ws, const elbo_batch *bt, size_t r0,
                           size_t r1, size_t part, size_t nparts)
{
    const elbo_vae *m = impl;
    elbo_vae_activations *a = act;
    size_t z = m->cfg.latent;
    fill_noise(a->eps + r0 * z, r1 - r0, z, bt->seed, ELBO_STREAM_EPS, bt->row0 + r0, bt->step);
    elbo_vae_forward_part(m, a, ws, bt->x, bt->xf, bt->b, r0, r1, part, nparts);
    elbo_vae_backward_rows(m, a, ws, r0, r1);
}

/* elbo_model_ops.grads_finite. */
static int vae_grads_finite(const void *impl, const void *act, size_t r0, size_t r1)
{
    return elbo_vae_output_grads_finite(impl, act, r0, r1);
}

/* elbo_model_ops.batch_loss: recon + beta KL, with recon and KL as the parts. */
static elbo_step_loss vae_batch_loss(const void *impl, const void *act, size_t b)
{
    elbo_batch_loss l = elbo_vae_batch_loss(impl, act, b);
    return (elbo_step_loss){l.loss, {l.recon, l.kl}};
}

/* elbo_model_ops.rows_loss: as vae_batch_loss over rows [r0, r1). */
static elbo_step_loss vae_rows_loss(const void *impl, const void *act, size_t r0, size_t r1)
{
    const elbo_vae_activations *a = act;
    elbo_step_loss l = {0, {0, 0}};
    for (size_t r = r0; r < r1; r++) {
        l.part[0] += a->recon[r];
        l.part[1] += a->kl[r];
    }
    l.loss = l.part[0] + ((const elbo_vae *)impl)->cfg.beta * l.part[1];
    return l;
}

/* elbo_model_ops.trainables. */
static size_t vae_trainables(const void *impl, void *act, const elbo_batch *bt, elbo_trainable *out)
{
    return trainables(impl, act, bt->x, bt->xf, out);
}

/* elbo_model_ops.eval_rows: one posterior sample per image, its noise from (seed, sample index). */
static void vae_eval_rows(const void *impl, void *act, elbo_gemm_workspace *ws, const elbo_batch *bt, size_t r0,
                          size_t r1)
{
    const elbo_vae *m = impl;
    elbo_vae_activations *a = act;
    size_t z = m->cfg.latent;
    fill_noise(a->eps + r0 * z, r1 - r0, z, bt->seed, ELBO_STREAM_EVAL, bt->first_index + r0, 0);
    elbo_vae_forward_rows(m, a, ws, bt->x, r0, r1, NULL);
}

/* elbo_model_ops.write_config: widths, sizes, likelihood, sigma0 and beta. */
static size_t vae_write_config(const void *impl, const char **keys, char (*v)[96])
{
    const elbo_vae_config *c = &((const elbo_vae *)impl)->cfg;
    static const char *const names[] = {"encoder_hidden", "decoder_hidden", "input_dim", "latent", "recon", "sigma0",
                                        "beta"};
    elbo_format_widths(v[0], 96, c->enc_hidden, c->n_enc);
    elbo_format_widths(v[1], 96, c->dec_hidden, c->n_dec);
    snprintf(v[2], 96, "%zu", c->input_dim);
    snprintf(v[3], 96, "%zu", c->latent);
    snprintf(v[4], 96, "%s", elbo_recon_name(c->recon));
    snprintf(v[5], 96, "%.17g", c->sigma0);
    snprintf(v[6], 96, "%.17g", c->beta);
    for (size_t i = 0; i < 7; i++)
        keys[i] = names[i];
    return 7;
}

static const elbo_model_ops VAE_OPS = {
    .kind = "vae",
    .part_names = {"recon", "kl"},
    .act_new = vae_act_new,
    .act_free = vae_act_free,
    .act_arena = vae_act_arena,
    .train_rows = vae_train_rows,
    .grads_finite = vae_grads_finite,
    .batch_loss = vae_batch_loss,
    .rows_loss = vae_rows_loss,
    .trainables = vae_trainables,
    .eval_rows = vae_eval_rows,
    .write_config = vae_write_config,
};

elbo_model elbo_vae_model(elbo_vae *m)
{
    return (elbo_model){.ops = &VAE_OPS, .impl = m, .kern = m->kern, .layout = &m->layout, .params = m->params,
                        .grads = m->grads, .n_layers = m->layout.n_layers, .layer = m->layer,
                        .input_dim = m->cfg.input_dim};
}
