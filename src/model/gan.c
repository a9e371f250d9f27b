/* The MLP GAN on the training blocks: G and D as two MLPs over one parameter arena, the D and G phases of a
 * training step, sampling and its checkpoint. */
#include "gan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "rng.h"

elbo_gan_config elbo_gan_config_default(size_t image_rows, size_t image_cols)
{
    elbo_gan_config c;
    memset(&c, 0, sizeof c);
    c.image_rows = image_rows;
    c.image_cols = image_cols;
    c.input_dim = image_rows * image_cols;
    c.latent = 64;
    c.n_g = 2;
    c.g_hidden[0] = 256;
    c.g_hidden[1] = 512;
    c.n_d = 2;
    c.d_hidden[0] = 512;
    c.d_hidden[1] = 256;
    c.slope = 0.2;
    c.adam_beta1 = 0.5;
    c.adam_beta2 = 0.999;
    c.real_label = 1.0;
    c.d_lr_scale = 1.0;
    c.d_steps = 1;
    c.spectral_norm = 1; /* the recipe that keeps every class (results/gan-recipes-amd-epyc-20261206.md) */
    return c;
}

/* 0 when n widths are each in 1..max, else -1 with a message naming field. */
static int check_widths(const char *field, const size_t *w, size_t n, size_t max, char *err, size_t errlen)
{
    if (n == 0 || n > ELBO_MAX_HIDDEN) {
        snprintf(err, errlen, "%s: %zu layers, expected 1..%d", field, n, ELBO_MAX_HIDDEN);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (w[i] == 0 || w[i] > max) {
            snprintf(err, errlen, "%s: width %zu is not in 1..%zu", field, w[i], max);
            return -1;
        }
    return 0;
}

int elbo_gan_config_validate(const elbo_gan_config *c, char *err, size_t errlen)
{
    const size_t max_width = (size_t)1 << 20;
    if (c->image_rows == 0 || c->image_cols == 0 || c->input_dim != c->image_rows * c->image_cols ||
        c->input_dim > max_width) {
        snprintf(err, errlen, "input_dim: %zu is not image_rows x image_cols = %zu x %zu in 1..%zu", c->input_dim,
                 c->image_rows, c->image_cols, max_width);
        return -1;
    }
    if (c->latent == 0 || c->latent > 4096) {
        snprintf(err, errlen, "latent: %zu is not in 1..4096", c->latent);
        return -1;
    }
    if (check_widths("generator_hidden", c->g_hidden, c->n_g, max_width, err, errlen) ||
        check_widths("discriminator_hidden", c->d_hidden, c->n_d, max_width, err, errlen))
        return -1;
    if (!(c->slope >= 0 && c->slope < 1)) {
        snprintf(err, errlen, "leaky_slope: %g is not in [0, 1)", c->slope);
        return -1;
    }
    if (!(c->adam_beta1 >= 0 && c->adam_beta1 < 1) || !(c->adam_beta2 >= 0 && c->adam_beta2 < 1)) {
        snprintf(err, errlen, "adam_beta1, adam_beta2: %g, %g are not in [0, 1)", c->adam_beta1, c->adam_beta2);
        return -1;
    }
    if (!(c->real_label > 0.5 && c->real_label <= 1)) {
        snprintf(err, errlen, "real_label: %g is not in (0.5, 1]", c->real_label);
        return -1;
    }
    if (!(c->d_lr_scale > 0 && c->d_lr_scale <= 100)) {
        snprintf(err, errlen, "d_lr_scale: %g is not in (0, 100]", c->d_lr_scale);
        return -1;
    }
    if (c->d_steps < 1 || c->d_steps > 100) {
        snprintf(err, errlen, "d_steps: %zu is not in 1..100", c->d_steps);
        return -1;
    }
    if (c->spectral_norm != 0 && c->spectral_norm != 1) {
        snprintf(err, errlen, "spectral_norm: %d is not 0 or 1", c->spectral_norm);
        return -1;
    }
    return 0;
}

void elbo_gan_config_describe(const elbo_gan_config *c, char *out, size_t outlen)
{
    char g[96], d[96];
    elbo_format_widths(g, sizeof g, c->g_hidden, c->n_g);
    elbo_format_widths(d, sizeof d, c->d_hidden, c->n_d);
    for (char *p = g; *p; p++)
        *p = *p == ',' ? '-' : *p;
    for (char *p = d; *p; p++)
        *p = *p == ',' ? '-' : *p;
    snprintf(out, outlen, "GAN G %zu-%s-%zu, D %zu-%s-1%s", c->latent, g, c->input_dim, c->input_dim, d,
             c->spectral_norm ? " (spectral norm)" : "");
}

/* Appends the linears of an nn.Sequential called name (Linear, LeakyReLU, Linear, ...: indices 0, 2, 4, ...) mapping
 * in -> widths[0..n) -> out to layout l. */
static void add_sequential(elbo_param_layout *l, const char *name, size_t in, const size_t *widths, size_t n,
                           size_t out)
{
    char prefix[ELBO_TENSOR_NAME_MAX];
    const char *p = prefix;
    for (size_t i = 0; i <= n; i++) {
        size_t w = i < n ? widths[i] : out;
        snprintf(prefix, sizeof prefix, "%s.%zu", name, 2 * i);
        elbo_param_layout_add_linear(l, in, w, 0, 1, &p);
        in = w;
    }
}

void elbo_gan_layout_build(elbo_param_layout *l, const elbo_gan_config *c)
{
    memset(l, 0, sizeof *l);
    elbo_param_layout_begin_group(l, "generator");
    add_sequential(l, "generator", c->latent, c->g_hidden, c->n_g, c->input_dim);
    elbo_param_layout_begin_group(l, "discriminator");
    add_sequential(l, "discriminator", c->input_dim, c->d_hidden, c->n_d, 1);
    for (size_t i = 0; c->spectral_norm && i <= c->n_d; i++) {
        const elbo_linear_layout *ly = &l->layer[c->n_g + 1 + i];
        char name[ELBO_TENSOR_NAME_MAX];
        snprintf(name, sizeof name, "discriminator.%zu.weight_u", 2 * i);
        elbo_param_layout_add_vector(l, name, ly->out);
        snprintf(name, sizeof name, "discriminator.%zu.weight_v", 2 * i);
        elbo_param_layout_add_vector(l, name, ly->in);
    }
}

/* The spectral norms of D's layers (at their layer index) over m's layout, with their scratch; 0, or -1 when out of
 * memory. */
static int make_spectral_norms(elbo_gan *m)
{
    const elbo_param_layout *l = &m->layout;
    size_t doubles = 0;
    for (size_t i = m->cfg.n_g + 1; i < l->n_layers; i++)
        doubles += elbo_spectral_norm_scratch_doubles(l->layer[i].in, l->layer[i].out);
    m->sn_scratch = malloc(doubles * sizeof(double));
    if (!m->sn_scratch)
        return -1;
    double *scratch = m->sn_scratch;
    for (size_t i = m->cfg.n_g + 1; i < l->n_layers; i++) {
        const elbo_linear_layout *ly = &l->layer[i];
        /* the layout's last tensors: u, v of each D layer in order */
        const elbo_tensor_view *u = &l->tensor[l->n_tensors - 2 * (l->n_layers - i)];
        m->sn[i] = elbo_spectral_norm_make(ly->in, ly->out, ly->w_off, ly->b_off, u->offset, u[1].offset, scratch);
        scratch += elbo_spectral_norm_scratch_doubles(ly->in, ly->out);
    }
    return 0;
}

void elbo_gan_optimizer_blocks(const elbo_gan *m, elbo_optimizer_config *oc)
{
    const elbo_param_group *g = &m->layout.group[0], *d = &m->layout.group[1];
    double lr = oc->kind == ELBO_OPT_SGD ? oc->sgd.lr : oc->adam.lr;
    if (m->cfg.d_lr_scale != 1.0)
        oc->block_lr[oc->n_block_lr++] = (elbo_block_lr){d->offset, d->offset + d->floats, lr * m->cfg.d_lr_scale, 1};
    if (m->cfg.d_steps > 1)
        oc->block_lr[oc->n_block_lr++] = (elbo_block_lr){g->offset, g->offset + g->floats, lr, (long)m->cfg.d_steps};
}

int elbo_gan_init(elbo_gan *m, const elbo_gan_config *cfg, const elbo_kernels *kern, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (elbo_gan_config_validate(cfg, err, errlen) != 0)
        return -1;
    m->cfg = *cfg;
    m->kern = kern;
    elbo_gan_layout_build(&m->layout, cfg);
    m->params = elbo_arena_alloc(&m->layout);
    m->grads = elbo_arena_alloc(&m->layout);
    int ok = m->params && m->grads;
    if (ok && cfg->spectral_norm) {
        m->wsn = elbo_arena_alloc(&m->layout);
        ok = m->wsn != NULL && make_spectral_norms(m) == 0;
    }
    size_t ng = cfg->n_g + 1;
    /* G: LeakyReLU hidden, sigmoid output, no input gradient; D: LeakyReLU hidden, a logit, and the input gradient
     * of its first layer (the G step backpropagates through it) */
    for (size_t i = 0; ok && i < m->layout.n_layers; i++) {
        const elbo_linear_layout *ly = &m->layout.layer[i];
        int last_of_g = i == ng - 1, last_of_d = i == m->layout.n_layers - 1;
        elbo_activation act = last_of_g ? ELBO_ACT_SIGMOID : last_of_d ? ELBO_ACT_NONE : ELBO_ACT_LEAKY_RELU;
        /* under spectral norm D's layers read W / sigma (the data gradient's in place where it can) */
        const float *w = cfg->spectral_norm && i >= ng ? m->wsn : m->params;
        ok = elbo_linear_init(&m->layer[i], kern, ly->in, ly->out, ly->w_off, ly->b_off, act, w, i != 0) == 0;
        m->layer[i].slope = (float)cfg->slope;
    }
    if (!ok) {
        elbo_gan_free(m);
        snprintf(err, errlen, "out of memory allocating the model");
        return -1;
    }
    return 0;
}

void elbo_gan_free(elbo_gan *m)
{
    for (size_t i = 0; i < ELBO_MAX_LAYERS; i++)
        elbo_linear_free(&m->layer[i]);
    free(m->params);
    free(m->grads);
    free(m->wsn);
    free(m->sn_scratch);
    memset(m, 0, sizeof *m);
}

/* D's spectral norms refreshed (one power iteration when iterate, else from the stored u and v) and D's layers
 * packed from W / sigma. One thread; the same bits as refresh_spectral_norms_part on any team. */
static void refresh_spectral_norms(const elbo_gan *m, int iterate)
{
    elbo_gan *mm = (elbo_gan *)m;
    for (size_t i = m->cfg.n_g + 1; i < m->layout.n_layers; i++) {
        elbo_spectral_norm_refresh(&mm->sn[i], m->params, m->wsn, iterate);
        elbo_linear_pack(&mm->layer[i], m->wsn);
    }
}

/* Part `part` of nparts of one power iteration of every D layer's spectral norm, then of W / sigma and its packing
 * (holds team barriers; the caller's barrier must follow before D's weights are read). W^T u is split by columns,
 * W v, W / sigma and the packing by output features; the normalizations run on part 0. */
static void refresh_spectral_norms_part(const elbo_gan *m, size_t part, size_t nparts)
{
    elbo_gan *mm = (elbo_gan *)m;
    size_t first = m->cfg.n_g + 1, n = m->layout.n_layers;
    for (size_t i = first; i < n; i++)
        elbo_spectral_norm_left(&m->sn[i], m->params, m->sn[i].in * part / nparts,
                                m->sn[i].in * (part + 1) / nparts);
#pragma omp barrier
    for (size_t i = first; part == 0 && i < n; i++)
        elbo_spectral_norm_set_v(&m->sn[i], m->params, 1);
#pragma omp barrier
    for (size_t i = first; i < n; i++) {
        size_t lo, hi;
        elbo_linear_features_of_part(&m->layer[i], part, nparts, i, &lo, &hi);
        elbo_spectral_norm_right(&m->sn[i], m->params, lo, hi);
    }
#pragma omp barrier
    for (size_t i = first; part == 0 && i < n; i++)
        elbo_spectral_norm_set_u_sigma(&mm->sn[i], m->params, 1);
#pragma omp barrier
    for (size_t i = first; i < n; i++) {
        size_t lo, hi;
        elbo_linear_features_of_part(&m->layer[i], part, nparts, i, &lo, &hi);
        elbo_spectral_norm_scale(&m->sn[i], m->params, m->wsn, lo, hi);
        elbo_linear_pack_features(&mm->layer[i], m->wsn, lo, hi);
    }
}

void elbo_gan_pack_weights(elbo_gan *m)
{
    size_t n = m->cfg.spectral_norm ? m->cfg.n_g + 1 : m->layout.n_layers;
    for (size_t i = 0; i < n; i++)
        elbo_linear_pack(&m->layer[i], m->params);
    if (m->cfg.spectral_norm)
        refresh_spectral_norms(m, 0);
}

/* G's MLP (z -> xd rows [0, b)) and D's two MLPs over a's buffers (the same layers and buffers; dg also writes the
 * input gradient). */
static void build_mlps(const elbo_gan *m, elbo_gan_activations *a)
{
    const elbo_gan_config *c = &m->cfg;
    size_t ng = c->n_g + 1;
    memset(&a->g, 0, sizeof a->g);
    memset(&a->d, 0, sizeof a->d);
    a->g.n = ng;
    a->g.layer = m->layer;
    for (size_t i = 0; i < c->n_g; i++) {
        a->g.out[i] = a->gh[i];
        a->g.dout[i] = a->dgh[i];
    }
    a->g.out[c->n_g] = a->xd;
    a->g.dout[c->n_g] = a->dgout;
    a->d.n = c->n_d + 1;
    a->d.layer = m->layer + ng;
    a->d.first_index = ng;
    for (size_t i = 0; i < c->n_d; i++) {
        a->d.out[i] = a->dh[i];
        a->d.dout[i] = a->ddh[i];
    }
    a->d.out[c->n_d] = a->logit;
    a->d.dout[c->n_d] = a->logit; /* the loss writes its gradient over the logits */
    for (size_t i = 0; i <= c->n_d; i++)
        a->d.pre[i] = a->dpre[i]; /* NULL without spectral norm */
    a->dg = a->d;
    a->dg.dx = a->dgout;
}

/* Declares a view of `floats` floats per row in a's arena; returns its index. */
static int add_view(elbo_gan_activations *a, const char *name, size_t floats)
{
    return elbo_act_arena_add(&a->arena, name, floats * sizeof(float));
}

int elbo_gan_activations_init(elbo_gan_activations *a, const elbo_gan *m, size_t max_batch)
{
    const elbo_gan_config *c = &m->cfg;
    size_t d = c->input_dim;
    int gh[ELBO_MAX_HIDDEN], dgh[ELBO_MAX_HIDDEN], dh[ELBO_MAX_HIDDEN], ddh[ELBO_MAX_HIDDEN];
    char name[ELBO_ACT_VIEW_NAME_MAX];
    memset(a, 0, sizeof *a);
    elbo_act_arena_init(&a->arena);
    a->max_batch = max_batch;
    int z = add_view(a, "z", c->latent);
    for (size_t i = 0; i < c->n_g; i++) {
        snprintf(name, sizeof name, "g_h%zu", i);
        gh[i] = add_view(a, name, c->g_hidden[i]);
        snprintf(name, sizeof name, "g_dh%zu", i);
        dgh[i] = add_view(a, name, c->g_hidden[i]);
    }
    /* D's views hold two rows per batch row: G(z), then the real images */
    int xd = add_view(a, "d_in", 2 * d), dgout = add_view(a, "g_dout", d);
    for (size_t i = 0; i < c->n_d; i++) {
        snprintf(name, sizeof name, "d_h%zu", i);
        dh[i] = add_view(a, name, 2 * c->d_hidden[i]);
        snprintf(name, sizeof name, "d_dh%zu", i);
        ddh[i] = add_view(a, name, 2 * c->d_hidden[i]);
    }
    int logit = add_view(a, "logit", 2), d_loss = add_view(a, "d_loss", 2), d_prob = add_view(a, "d_prob", 2);
    int g_loss = add_view(a, "g_loss", 1);
    int dpre[ELBO_MAX_HIDDEN + 1], dots[ELBO_MAX_HIDDEN + 1];
    for (size_t i = 0; c->spectral_norm && i <= c->n_d; i++) {
        snprintf(name, sizeof name, "d_pre%zu", i);
        dpre[i] = add_view(a, name, 2 * (i < c->n_d ? c->d_hidden[i] : 1));
        snprintf(name, sizeof name, "sn_dots%zu", i);
        dots[i] = elbo_act_arena_add(&a->arena, name, 2 * sizeof(double));
    }
    if (elbo_act_arena_alloc(&a->arena, max_batch) != 0 || elbo_gemm_workspace_init(&a->ws, m->kern) != 0) {
        elbo_gan_activations_free(a);
        return -1;
    }
    a->z = elbo_act_arena_view(&a->arena, z);
    for (size_t i = 0; i < c->n_g; i++) {
        a->gh[i] = elbo_act_arena_view(&a->arena, gh[i]);
        a->dgh[i] = elbo_act_arena_view(&a->arena, dgh[i]);
    }
    a->xd = elbo_act_arena_view(&a->arena, xd);
    a->dgout = elbo_act_arena_view(&a->arena, dgout);
    for (size_t i = 0; i < c->n_d; i++) {
        a->dh[i] = elbo_act_arena_view(&a->arena, dh[i]);
        a->ddh[i] = elbo_act_arena_view(&a->arena, ddh[i]);
    }
    a->logit = elbo_act_arena_view(&a->arena, logit);
    a->d_loss = elbo_act_arena_view(&a->arena, d_loss);
    a->d_prob = elbo_act_arena_view(&a->arena, d_prob);
    a->g_loss = elbo_act_arena_view(&a->arena, g_loss);
    for (size_t i = 0; c->spectral_norm && i <= c->n_d; i++) {
        a->dpre[i] = elbo_act_arena_view(&a->arena, dpre[i]);
        a->sn_dots[i] = elbo_act_arena_view(&a->arena, dots[i]);
    }
    build_mlps(m, a);
    return 0;
}

void elbo_gan_activations_free(elbo_gan_activations *a)
{
    elbo_act_arena_free(&a->arena);
    elbo_gemm_workspace_free(&a->ws);
    memset(a, 0, sizeof *a);
}

/* G's input operand: z (B, Z). */
static elbo_operand g_input(const elbo_gan *m, const elbo_gan_activations *a)
{
    return elbo_operand_f32(a->z, m->cfg.latent, ELBO_NOTRANS);
}

/* D's input operand: xd (2B, D). */
static elbo_operand d_input(const elbo_gan *m, const elbo_gan_activations *a)
{
    return elbo_operand_f32(a->xd, m->cfg.input_dim, ELBO_NOTRANS);
}

/* Rows [r0, r1) of z: the normals of (seed, stream, first + r, counter). */
static void fill_noise(const elbo_gan *m, elbo_gan_activations *a, size_t r0, size_t r1, uint64_t seed,
                       elbo_rng_stream stream, size_t first, uint32_t counter)
{
    size_t z = m->cfg.latent;
    for (size_t r = r0; r < r1; r++)
        elbo_rng_normals(a->z + r * z, z, seed, stream, (uint32_t)(first + r), counter);
}

/* Rows [r0, r1) (of 2b) of the D step's loss after D's forward: D's probability, the BCE against 0 (fake rows
 * below b) or the real label (real rows), and its gradient (scale 1/b_step: a batch mean of each half over the whole
 * step's rows, b_step = b unless ranks share the step) over the logits. */
static void d_loss_rows(const elbo_gan *m, elbo_gan_activations *a, size_t b, size_t b_step, size_t r0, size_t r1)
{
    for (size_t r = r0; r < r1; r++)
        a->d_prob[r] = (float)(1.0 / (1.0 + exp(-(double)a->logit[r])));
    size_t mid = r1 < b ? r1 : b < r0 ? r0 : b;
    float scale = 1.0f / (float)b_step;
    if (mid > r0)
        m->kern->bce_logits_const(a->logit + r0, a->d_loss + r0, a->logit + r0, 0.0f, scale, mid - r0, 1);
    if (r1 > mid)
        m->kern->bce_logits_const(a->logit + mid, a->d_loss + mid, a->logit + mid, (float)m->cfg.real_label, scale,
                                  r1 - mid, 1);
}

/* Rows [r0, r1) (of 2b) of each D layer's <dy, pre - b> after D's backward (what its weight gradient's path
 * through sigma sums). */
static void spectral_norm_dots(const elbo_gan *m, elbo_gan_activations *a, size_t r0, size_t r1)
{
    for (size_t i = 0; i < a->d.n; i++) {
        const elbo_linear *l = &a->d.layer[i];
        for (size_t r = r0; r < r1; r++)
            a->sn_dots[i][r] = elbo_spectral_norm_row_dot(a->d.dout[i] + r * l->out, a->dpre[i] + r * l->out,
                                                          m->params + l->b_off, l->out);
    }
}

/* Rows [r0, r1) of the D phase over b rows (part `part` of nparts of a team: it holds team barriers): z of this
 * step unless the caller filled it (noise 0), G's forward, the real rows into D's input, then D's forward over 2b
 * rows (this part's rows [2 r0, 2 r1)), the loss and D's data gradients. */
static void d_phase_rows(const elbo_gan *m, elbo_gan_activations *a, elbo_gemm_workspace *ws, const elbo_batch *bt,
                         size_t r0, size_t r1, size_t part, size_t nparts, int noise)
{
    size_t b = bt->b, d = m->cfg.input_dim;
    if (part == 0) { /* read after the barrier below */
        a->b = b;
        a->b_step = bt->b_step ? bt->b_step : b;
    }
    if (noise) /* per batch row: the same noise on any number of ranks */
        fill_noise(m, a, r0, r1, bt->seed, ELBO_STREAM_EPS, bt->row0, bt->step);
    elbo_mlp_forward_part(&a->g, ws, g_input(m, a), b, r0, r1, part, nparts, m->params);
    if (r1 > r0)
        m->kern->unit_from_u8(a->xd + (b + r0) * d, bt->x + r0 * d, (r1 - r0) * d);
    if (m->cfg.spectral_norm) /* D's weights are read after the barrier below */
        refresh_spectral_norms_part(m, part, nparts);
    /* D's rows [2 r0, 2 r1) hold fake and real rows other parts wrote */
#pragma omp barrier
    elbo_mlp_forward_part(&a->d, ws, d_input(m, a), 2 * b, 2 * r0, 2 * r1, part, nparts, m->params);
    d_loss_rows(m, a, b, a->b_step, 2 * r0, 2 * r1);
    elbo_mlp_backward_rows(&a->d, ws, 2 * r0, 2 * r1, NULL, ELBO_ACT_NONE);
    if (m->cfg.spectral_norm)
        spectral_norm_dots(m, a, 2 * r0, 2 * r1);
}

/* Rows [r0, r1) of the G phase over b rows (after the D phase and D's update; holds team barriers): D's forward of
 * G(z) (rows [0, b) of D's input), the non-saturating BCE against 1 (scale 1/b_step), D's data gradients down to its
 * input (masked by G's sigmoid), then G's. */
static void g_phase_rows(const elbo_gan *m, elbo_gan_activations *a, elbo_gemm_workspace *ws, size_t b, size_t r0,
                         size_t r1, size_t part, size_t nparts)
{
    if (m->cfg.spectral_norm) {
        /* D as the D phase updated it, one more power iteration (torch's training-mode forward) */
        refresh_spectral_norms_part(m, part, nparts);
#pragma omp barrier
    }
    elbo_mlp_forward_part(&a->dg, ws, d_input(m, a), b, r0, r1, part, nparts, m->params);
    if (r1 == r0)
        return;
    m->kern->bce_logits_const(a->logit + r0, a->g_loss + r0, a->logit + r0, 1.0f, 1.0f / (float)a->b_step, r1 - r0,
                              1);
    elbo_mlp_backward_rows(&a->dg, ws, r0, r1, a->xd, ELBO_ACT_SIGMOID);
    elbo_mlp_backward_rows(&a->g, ws, r0, r1, NULL, ELBO_ACT_NONE);
}

/* D's layers as the tail sees them (gradients over 2b rows); returns how many. */
static size_t d_trainables(const elbo_gan *m, const elbo_gan_activations *a, size_t b, elbo_trainable *out)
{
    for (size_t i = 0; i < a->d.n; i++) {
        out[i] = (elbo_trainable){.layer = (elbo_linear *)&a->d.layer[i], .dy = a->d.dout[i],
                                  .x = elbo_mlp_layer_input(&a->d, d_input(m, a), i, 0),
                                  .rotate = a->d.first_index + i, .rows = 2 * b, .second_rows = b};
        if (m->cfg.spectral_norm) {
            elbo_spectral_norm *s = (elbo_spectral_norm *)&m->sn[a->d.first_index + i];
            s->params = m->params;
            out[i].fix_weight_grads = elbo_spectral_norm_weight_grads;
            out[i].fix_ctx = s;
            out[i].fix_rows = a->sn_dots[i];
            out[i].packed_elsewhere = 1; /* W / sigma, packed by the next refresh */
        }
    }
    return a->d.n;
}

/* G's layers as the tail sees them; returns how many. */
static size_t g_trainables(const elbo_gan *m, const elbo_gan_activations *a, elbo_trainable *out)
{
    for (size_t i = 0; i < a->g.n; i++)
        out[i] = (elbo_trainable){.layer = (elbo_linear *)&a->g.layer[i], .dy = a->g.dout[i],
                                  .x = elbo_mlp_layer_input(&a->g, g_input(m, a), i, 0), .rotate = i};
    return a->g.n;
}

/* Sums over batch rows [r0, r1) of the D step: D loss (the fake rows, then the real rows b + r), D(x) and D(G(z)),
 * in row order. */
static elbo_step_loss d_sums_rows(const elbo_gan_activations *a, size_t b, size_t r0, size_t r1)
{
    elbo_step_loss s = {0, {0, 0, 0, 0}};
    for (size_t r = r0; r < r1; r++)
        s.part[0] += a->d_loss[r];
    for (size_t r = r0; r < r1; r++)
        s.part[0] += a->d_loss[b + r];
    for (size_t r = r0; r < r1; r++) {
        s.part[3] += a->d_prob[r];
        s.part[2] += a->d_prob[b + r];
    }
    s.loss = s.part[0];
    return s;
}

/* d_sums_rows plus the G step's loss sum over the rows (part 1), counted d_steps times as gan_g_loss does. */
static elbo_step_loss g_sums_rows(const elbo_gan *m, const elbo_gan_activations *a, size_t b, size_t r0, size_t r1)
{
    elbo_step_loss s = d_sums_rows(a, b, r0, r1);
    for (size_t r = r0; r < r1; r++)
        s.part[1] += a->g_loss[r];
    double n = (double)m->cfg.d_steps;
    s.part[1] *= n;
    s.loss = s.part[0] + s.part[1];
    return s;
}

/* Batch sums over rows [0, b) of the D step: D loss (both halves), D(x) and D(G(z)), in row order. */
static elbo_step_loss d_sums(const elbo_gan_activations *a, size_t b)
{
    elbo_step_loss s = {0, {0, 0, 0, 0}};
    for (size_t r = 0; r < 2 * b; r++)
        s.part[0] += a->d_loss[r];
    for (size_t r = 0; r < b; r++) {
        s.part[3] += a->d_prob[r];
        s.part[2] += a->d_prob[b + r];
    }
    s.loss = s.part[0];
    return s;
}

/* d_sums plus the G step's loss sum (part 1); the loss is D's plus G's. */
static elbo_step_loss all_sums(const elbo_gan_activations *a, size_t b)
{
    elbo_step_loss s = d_sums(a, b);
    for (size_t r = 0; r < b; r++)
        s.part[1] += a->g_loss[r];
    s.loss = s.part[0] + s.part[1];
    return s;
}

double elbo_gan_d_grads(elbo_gan *m, elbo_gan_activations *a, const uint8_t *x, const float *z, size_t b)
{
    elbo_batch bt = {.x = x, .b = b};
    elbo_trainable t[ELBO_MAX_LAYERS];
    memcpy(a->z, z, b * m->cfg.latent * sizeof(float));
    d_phase_rows(m, a, &a->ws, &bt, 0, b, 0, 1, 0);
    size_t n = d_trainables(m, a, b, t);
    elbo_tail_grads_part(t, n, &a->ws, m->grads, b, 0, 1);
    return d_sums(a, b).loss / (double)b;
}

double elbo_gan_g_grads(elbo_gan *m, elbo_gan_activations *a, size_t b)
{
    elbo_trainable t[ELBO_MAX_LAYERS];
    g_phase_rows(m, a, &a->ws, b, 0, b, 0, 1);
    elbo_tail_grads_part(t, g_trainables(m, a, t), &a->ws, m->grads, b, 0, 1);
    double s = 0;
    for (size_t r = 0; r < b; r++)
        s += a->g_loss[r];
    return s / (double)b;
}

void elbo_gan_sample_pixels(const elbo_gan *m, elbo_gan_activations *a, size_t first, size_t n, uint64_t seed,
                            float *probs, uint8_t *pixels)
{
    size_t d = m->cfg.input_dim;
    fill_noise(m, a, 0, n, seed, ELBO_STREAM_SAMPLE, first, 0);
    elbo_mlp_forward_rows(&a->g, &a->ws, g_input(m, a), 0, n, m->params);
    if (probs)
        memcpy(probs, a->xd, n * d * sizeof(float));
    if (pixels)
        for (size_t i = 0; i < n * d; i++)
            pixels[i] = elbo_gray_level(a->xd[i]);
}

double elbo_gan_train_flops_per_sample(const elbo_gan *m)
{
    const elbo_param_layout *l = &m->layout;
    double g = 0, d = 0, d_first = (double)(l->layer[m->cfg.n_g + 1].in * l->layer[m->cfg.n_g + 1].out);
    for (size_t i = 0; i < l->n_layers; i++)
        *(i <= m->cfg.n_g ? &g : &d) += (double)(l->layer[i].in * l->layer[i].out);
    /* G forward; D step: forward + weight and data gradients over 2 rows (no input gradient); G step: D forward and
     * data gradients (with the input's), G's weight and data gradients (not the first layer's) */
    double macs = g + 2 * (3 * d - d_first) + 2 * d + (2 * g - (double)(l->layer[0].in * l->layer[0].out));
    return 2.0 * macs;
}

/* ---- the GAN as the trainer sees it ---- */

/* elbo_model_ops.act_new, act_free and act_arena. */
ELBO_MODEL_ACTIVATION_OPS(gan, elbo_gan_activations, elbo_gan_activations_init, elbo_gan_activations_free)

/* elbo_train_phase.train_rows of the D phase: the step's noise (seed, EPS, batch row, step) and d_phase_rows. */
static void gan_d_rows(const void *impl, void *act, elbo_gemm_workspace *ws, const elbo_batch *bt, size_t r0,
                       size_t r1, size_t part, size_t nparts)
{
    d_phase_rows(impl, act, ws, bt, r0, r1, part, nparts, 1);
}

/* elbo_train_phase.grads_finite of the D phase: D's output gradients of this part's rows [2 r0, 2 r1). */
static int gan_d_finite(const void *impl, const void *act, size_t r0, size_t r1)
{
    (void)impl;
    return elbo_mlp_output_grads_finite(&((const elbo_gan_activations *)act)->d, 2 * r0, 2 * r1);
}

/* elbo_train_phase.batch_loss of the D phase. */
static elbo_step_loss gan_d_loss(const void *impl, const void *act, size_t b)
{
    (void)impl;
    return d_sums(act, b);
}

/* elbo_train_phase.trainables of the D phase. */
static size_t gan_d_trainables(const void *impl, void *act, const elbo_batch *bt, elbo_trainable *out)
{
    return d_trainables(impl, act, bt->b, out);
}

/* elbo_train_phase.train_rows of the G phase. */
static void gan_g_rows(const void *impl, void *act, elbo_gemm_workspace *ws, const elbo_batch *bt, size_t r0,
                       size_t r1, size_t part, size_t nparts)
{
    g_phase_rows(impl, act, ws, bt->b, r0, r1, part, nparts);
}

/* elbo_train_phase.grads_finite of the G phase: G's output gradients of rows [r0, r1). */
static int gan_g_finite(const void *impl, const void *act, size_t r0, size_t r1)
{
    (void)impl;
    return elbo_mlp_output_grads_finite(&((const elbo_gan_activations *)act)->g, r0, r1);
}

/* elbo_train_phase.runs of the G phase: after every d_steps-th step. */
static int gan_g_runs(const void *impl, long step)
{
    return (size_t)(step + 1) % ((const elbo_gan *)impl)->cfg.d_steps == 0;
}

/* elbo_model_ops.batch_loss (the evaluation's): every part. */
static elbo_step_loss gan_batch_loss(const void *impl, const void *act, size_t b)
{
    (void)impl;
    return all_sums(act, b);
}

/* elbo_train_phase.batch_loss of the G phase: every part, the G loss counted d_steps times (the steps without a G
 * phase count none), so that an epoch's per-sample mean is the G steps' mean (batches of equal size). */
static elbo_step_loss gan_g_loss(const void *impl, const void *act, size_t b)
{
    elbo_step_loss s = all_sums(act, b);
    double n = (double)((const elbo_gan *)impl)->cfg.d_steps;
    s.loss += (n - 1) * s.part[1];
    s.part[1] *= n;
    return s;
}

/* elbo_train_phase.rows_loss of the D phase: rows [r0, r1) of the last step's batch. */
static elbo_step_loss gan_d_rows_loss(const void *impl, const void *act, size_t r0, size_t r1)
{
    (void)impl;
    const elbo_gan_activations *a = act;
    return d_sums_rows(a, a->b, r0, r1);
}

/* elbo_train_phase.rows_loss of the G phase: rows [r0, r1) of the last step's batch. */
static elbo_step_loss gan_g_rows_loss(const void *impl, const void *act, size_t r0, size_t r1)
{
    const elbo_gan_activations *a = act;
    return g_sums_rows(impl, a, a->b, r0, r1);
}

/* elbo_train_phase.trainables of the G phase. */
static size_t gan_g_trainables(const void *impl, void *act, const elbo_batch *bt, elbo_trainable *out)
{
    (void)bt;
    return g_trainables(impl, act, out);
}

/* elbo_model_ops.eval_rows: the D and G losses of rows [r0, r1) of real images and of G's samples of the noise
 * (seed, EVAL, sample index), no gradients kept (no team barrier). */
static void gan_eval_rows(const void *impl, void *act, elbo_gemm_workspace *ws, const elbo_batch *bt, size_t r0,
                          size_t r1)
{
    const elbo_gan *m = impl;
    elbo_gan_activations *a = act;
    size_t b = bt->b, d = m->cfg.input_dim;
    fill_noise(m, a, r0, r1, bt->seed, ELBO_STREAM_EVAL, bt->first_index, 0);
    elbo_mlp_forward_rows(&a->g, ws, g_input(m, a), r0, r1, m->params);
    m->kern->unit_from_u8(a->xd + (b + r0) * d, bt->x + r0 * d, (r1 - r0) * d);
    elbo_mlp_forward_rows(&a->d, ws, d_input(m, a), r0, r1, m->params);
    elbo_mlp_forward_rows(&a->d, ws, d_input(m, a), b + r0, b + r1, m->params);
    m->kern->bce_logits_const(NULL, a->g_loss + r0, a->logit + r0, 1.0f, 1.0f, r1 - r0, 1);
    d_loss_rows(m, a, b, b, r0, r1);
    d_loss_rows(m, a, b, b, b + r0, b + r1);
}

/* elbo_model_ops.write_config: image shape, latent, widths, the LeakyReLU slope, the Adam betas, D's real label
 * and D's learning-rate scale. */
static size_t gan_write_config(const void *impl, const char **keys, char (*v)[96])
{
    const elbo_gan_config *c = &((const elbo_gan *)impl)->cfg;
    static const char *const names[] = {"input_dim", "image_rows", "image_cols", "latent", "generator_hidden",
                                        "discriminator_hidden", "leaky_slope", "adam_beta1", "adam_beta2",
                                        "real_label", "d_lr_scale", "spectral_norm", "d_steps"};
    snprintf(v[0], 96, "%zu", c->input_dim);
    snprintf(v[1], 96, "%zu", c->image_rows);
    snprintf(v[2], 96, "%zu", c->image_cols);
    snprintf(v[3], 96, "%zu", c->latent);
    elbo_format_widths(v[4], 96, c->g_hidden, c->n_g);
    elbo_format_widths(v[5], 96, c->d_hidden, c->n_d);
    snprintf(v[6], 96, "%.17g", c->slope);
    snprintf(v[7], 96, "%.17g", c->adam_beta1);
    snprintf(v[8], 96, "%.17g", c->adam_beta2);
    snprintf(v[9], 96, "%.17g", c->real_label);
    snprintf(v[10], 96, "%.17g", c->d_lr_scale);
    snprintf(v[11], 96, "%d", c->spectral_norm);
    snprintf(v[12], 96, "%zu", c->d_steps);
    for (size_t i = 0; i < 13; i++)
        keys[i] = names[i];
    return 13;
}

static const elbo_train_phase GAN_PHASES[] = {
    {"discriminator", gan_d_rows, gan_d_finite, gan_d_loss, gan_d_trainables, NULL, gan_d_rows_loss},
    {"generator", gan_g_rows, gan_g_finite, gan_g_loss, gan_g_trainables, gan_g_runs, gan_g_rows_loss},
};

static const elbo_model_ops GAN_OPS = {
    .kind = "gan",
    .part_names = {"d_loss", "g_loss", "d_real", "d_fake"},
    .act_new = gan_act_new,
    .act_free = gan_act_free,
    .act_arena = gan_act_arena,
    .batch_loss = gan_batch_loss,
    .eval_rows = gan_eval_rows,
    .write_config = gan_write_config,
    .n_phases = 2,
    .phases = GAN_PHASES,
};

elbo_model elbo_gan_model(elbo_gan *m)
{
    return (elbo_model){.ops = &GAN_OPS, .impl = m, .kern = m->kern, .layout = &m->layout, .params = m->params,
                        .grads = m->grads, .n_layers = m->layout.n_layers, .layer = m->layer,
                        .input_dim = m->cfg.input_dim};
}

/* Reads a width list from metadata key into w and *n; 0 or -1 with a message naming the key. */
static int meta_widths(const elbo_meta_reader *r, const char *key, size_t *w, size_t *n, char *err, size_t errlen)
{
    char why[160];
    const char *s = elbo_meta_string(r, key, err, errlen);
    if (!s)
        return -1;
    if (elbo_parse_widths(s, w, n, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.%s: %s", r->path, key, why);
        return -1;
    }
    return 0;
}

/* elbo_checkpoint_reader.read_config: the config from the metadata, checked. */
static int gan_read_config(const elbo_meta_reader *r, void *cfg, char *err, size_t errlen)
{
    elbo_gan_config *c = cfg;
    char why[160];
    unsigned long long u[4];
    static const char *const sizes[] = {"input_dim", "image_rows", "image_cols", "latent"};
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < 4; i++)
        if (elbo_meta_ull(r, sizes[i], &u[i], err, errlen))
            return -1;
    c->input_dim = (size_t)u[0];
    c->image_rows = (size_t)u[1];
    c->image_cols = (size_t)u[2];
    c->latent = (size_t)u[3];
    if (meta_widths(r, "generator_hidden", c->g_hidden, &c->n_g, err, errlen) ||
        meta_widths(r, "discriminator_hidden", c->d_hidden, &c->n_d, err, errlen) ||
        elbo_meta_double(r, "leaky_slope", &c->slope, err, errlen) ||
        elbo_meta_double(r, "adam_beta1", &c->adam_beta1, err, errlen) ||
        elbo_meta_double(r, "adam_beta2", &c->adam_beta2, err, errlen))
        return -1;
    /* GAN checkpoints written before these options have no real_label or d_lr_scale: they trained with 1 and 1 */
    c->real_label = 1.0;
    c->d_lr_scale = 1.0;
    if ((elbo_st_meta_get(r->f, "real_label") && elbo_meta_double(r, "real_label", &c->real_label, err, errlen)) ||
        (elbo_st_meta_get(r->f, "d_lr_scale") && elbo_meta_double(r, "d_lr_scale", &c->d_lr_scale, err, errlen)))
        return -1;
    /* nor spectral_norm: they trained without it */
    unsigned long long sn = 0;
    if (elbo_st_meta_get(r->f, "spectral_norm") && elbo_meta_ull(r, "spectral_norm", &sn, err, errlen))
        return -1;
    c->spectral_norm = sn > 1 ? 2 : (int)sn;
    unsigned long long d_steps = 1; /* nor d_steps: one D step per G step */
    if (elbo_st_meta_get(r->f, "d_steps") && elbo_meta_ull(r, "d_steps", &d_steps, err, errlen))
        return -1;
    c->d_steps = d_steps > 1000 ? 1000 : (size_t)d_steps;
    if (elbo_gan_config_validate(c, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.%s", r->path, why);
        return -1;
    }
    return 0;
}

/* elbo_checkpoint_reader's other callbacks for the GAN. */
static void gan_layout(elbo_param_layout *l, const void *cfg)
{
    elbo_gan_layout_build(l, cfg);
}

static int gan_init(void *model, const void *cfg, const elbo_kernels *kern, char *err, size_t errlen)
{
    return elbo_gan_init(model, cfg, kern, err, errlen);
}

static elbo_model gan_as_model(void *model)
{
    return elbo_gan_model(model);
}

static void gan_pack(void *model)
{
    elbo_gan_pack_weights(model);
}

int elbo_gan_load(const char *path, elbo_gan *m, const elbo_kernels *kern, elbo_train_state *st, char *err,
                  size_t errlen)
{
    static const elbo_checkpoint_reader reader = {"gan", gan_read_config, gan_layout, gan_init, gan_as_model,
                                                  gan_pack};
    elbo_gan_config cfg;
    memset(m, 0, sizeof *m);
    return elbo_checkpoint_load_model(path, &reader, &cfg, m, kern, st, err, errlen);
}
