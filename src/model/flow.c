/* The RealNVP flow on the training blocks: the logit preprocessing, K affine couplings each with its MLP, the exact
 * log-likelihood and its gradients as one training phase, the exact inverse for sampling, and its checkpoint. */
#include "flow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "finite.h"
#include "rng.h"

elbo_flow_config elbo_flow_config_default(size_t image_rows, size_t image_cols)
{
    elbo_flow_config c;
    memset(&c, 0, sizeof c);
    c.image_rows = image_rows;
    c.image_cols = image_cols;
    c.input_dim = image_rows * image_cols;
    c.n_hidden = 2;
    c.hidden[0] = 512;
    c.hidden[1] = 512;
    c.couplings = 8;
    c.mask = ELBO_FLOW_MASK_CHECKERBOARD;
    c.alpha = 0.05;
    return c;
}

const char *elbo_flow_mask_name(elbo_flow_mask m)
{
    return m == ELBO_FLOW_MASK_HALF ? "half" : "checkerboard";
}

int elbo_flow_mask_parse(const char *s, elbo_flow_mask *m)
{
    if (strcmp(s, "checkerboard") == 0)
        *m = ELBO_FLOW_MASK_CHECKERBOARD;
    else if (strcmp(s, "half") == 0)
        *m = ELBO_FLOW_MASK_HALF;
    else
        return -1;
    return 0;
}

/* 1 when pixel j is in c's mask pattern (kept by the even couplings). */
static int in_pattern(const elbo_flow_config *c, size_t j)
{
    size_t r = j / c->image_cols, col = j % c->image_cols;
    return c->mask == ELBO_FLOW_MASK_HALF ? j < c->input_dim / 2 : (r + col) % 2 == 0;
}

void elbo_flow_mask_fill(const elbo_flow_config *c, size_t k, float *keep)
{
    for (size_t j = 0; j < c->input_dim; j++)
        keep[j] = (float)(k % 2 == 0 ? in_pattern(c, j) : !in_pattern(c, j));
}

/* How many pixels c's mask pattern holds. */
static size_t pattern_size(const elbo_flow_config *c)
{
    size_t n = 0;
    for (size_t j = 0; j < c->input_dim; j++)
        n += (size_t)in_pattern(c, j);
    return n;
}

/* Coupling k's blocks (elbo_flow_blocks) for a pattern of n_first of the config's pixels. */
static void blocks_of(const elbo_flow_config *c, size_t n_first, size_t k, size_t *kept, size_t *n_kept,
                      size_t *transformed, size_t *n_transformed)
{
    size_t d = c->input_dim;
    *kept = k % 2 == 0 ? 0 : n_first;
    *n_kept = k % 2 == 0 ? n_first : d - n_first;
    *transformed = k % 2 == 0 ? n_first : 0;
    *n_transformed = d - *n_kept;
}

void elbo_flow_blocks(const elbo_flow *m, size_t k, size_t *kept, size_t *n_kept, size_t *transformed,
                      size_t *n_transformed)
{
    blocks_of(&m->cfg, m->n_first, k, kept, n_kept, transformed, n_transformed);
}

/* Layers per coupling: the net's n_hidden + 1, then the scale. */
static size_t layers_per_coupling(const elbo_flow_config *c)
{
    return c->n_hidden + 2;
}

int elbo_flow_config_validate(const elbo_flow_config *c, char *err, size_t errlen)
{
    const size_t max_width = (size_t)1 << 20;
    if (c->image_rows == 0 || c->image_cols == 0 || c->input_dim != c->image_rows * c->image_cols ||
        c->input_dim > max_width) {
        snprintf(err, errlen, "input_dim: %zu is not image_rows x image_cols = %zu x %zu in 1..%zu", c->input_dim,
                 c->image_rows, c->image_cols, max_width);
        return -1;
    }
    if (c->n_hidden == 0 || c->n_hidden > ELBO_MAX_HIDDEN) {
        snprintf(err, errlen, "hidden: %zu layers, expected 1..%d", c->n_hidden, ELBO_MAX_HIDDEN);
        return -1;
    }
    for (size_t i = 0; i < c->n_hidden; i++)
        if (c->hidden[i] == 0 || c->hidden[i] > max_width) {
            snprintf(err, errlen, "hidden: width %zu is not in 1..%zu", c->hidden[i], max_width);
            return -1;
        }
    size_t max_k = ELBO_MAX_LAYERS / layers_per_coupling(c);
    max_k = max_k < ELBO_FLOW_MAX_COUPLINGS ? max_k : ELBO_FLOW_MAX_COUPLINGS;
    if (c->couplings == 0 || c->couplings > max_k) {
        snprintf(err, errlen, "couplings: %zu is not in 1..%zu (for %zu hidden layers)", c->couplings, max_k,
                 c->n_hidden);
        return -1;
    }
    if (c->mask != ELBO_FLOW_MASK_CHECKERBOARD && c->mask != ELBO_FLOW_MASK_HALF) {
        snprintf(err, errlen, "mask: %d is not checkerboard or half", (int)c->mask);
        return -1;
    }
    size_t kept = pattern_size(c);
    if (kept == 0 || kept == c->input_dim) {
        snprintf(err, errlen, "mask: %s leaves the %s half of a %zux%zu image empty", elbo_flow_mask_name(c->mask),
                 kept == 0 ? "kept" : "transformed", c->image_rows, c->image_cols);
        return -1;
    }
    if (!(c->alpha > 0 && c->alpha < 0.5)) {
        snprintf(err, errlen, "alpha: %g is not in (0, 0.5)", c->alpha);
        return -1;
    }
    return 0;
}

void elbo_flow_config_describe(const elbo_flow_config *c, char *out, size_t outlen)
{
    char h[96];
    elbo_format_widths(h, sizeof h, c->hidden, c->n_hidden);
    for (char *p = h; *p; p++)
        *p = *p == ',' ? '-' : *p;
    snprintf(out, outlen, "flow %zu couplings (%s) of %zu-%s-%zu", c->couplings, elbo_flow_mask_name(c->mask),
             c->input_dim, h, 2 * c->input_dim);
}

/* Appends coupling k's scale to layout l: a layer of one input whose bias, viewed as couplings.k.scale, is the
 * vector of its d transformed pixels (its weight, never viewed, stays 0: its input is a column of zeros). */
static void add_scale(elbo_param_layout *l, size_t k, size_t d)
{
    char prefix[ELBO_TENSOR_NAME_MAX];
    const char *p = prefix;
    snprintf(prefix, sizeof prefix, "couplings.%zu.scale_layer", k);
    elbo_param_layout_add_linear(l, 1, d, 0, 1, &p);
    elbo_tensor_view bias = l->tensor[l->n_tensors - 1];
    snprintf(bias.name, sizeof bias.name, "couplings.%zu.scale", k);
    l->tensor[l->n_tensors - 2] = bias;
    l->n_tensors--;
}

void elbo_flow_layout_build(elbo_param_layout *l, const elbo_flow_config *c)
{
    size_t n_first = pattern_size(c);
    memset(l, 0, sizeof *l);
    for (size_t k = 0; k < c->couplings; k++) {
        char prefix[ELBO_TENSOR_NAME_MAX];
        const char *p = prefix;
        size_t kept, in, tr, nt;
        blocks_of(c, n_first, k, &kept, &in, &tr, &nt);
        for (size_t i = 0; i <= c->n_hidden; i++) {
            size_t w = i < c->n_hidden ? c->hidden[i] : 2 * nt;
            snprintf(prefix, sizeof prefix, "couplings.%zu.net.%zu", k, 2 * i);
            elbo_param_layout_add_linear(l, in, w, i < c->n_hidden, 1, &p);
            if (i == 0) /* nn.Linear(D, hidden)'s init bound, as the full-width layer's */
                l->tensor[l->n_tensors - 2].fan_in = l->tensor[l->n_tensors - 1].fan_in = c->input_dim;
            in = w;
        }
        add_scale(l, k, nt);
    }
}

int elbo_flow_init(elbo_flow *m, const elbo_flow_config *cfg, const elbo_kernels *kern, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (elbo_flow_config_validate(cfg, err, errlen) != 0)
        return -1;
    m->cfg = *cfg;
    m->kern = kern;
    elbo_flow_layout_build(&m->layout, cfg);
    m->params = elbo_arena_alloc(&m->layout);
    m->grads = elbo_arena_alloc(&m->layout);
    m->order = malloc(cfg->input_dim * sizeof *m->order);
    int ok = m->params && m->grads && m->order;
    size_t per = layers_per_coupling(cfg);
    /* net layers: ReLU hidden, a linear output, an input gradient except for the first coupling's first layer (its
     * input is the data); the scale layer: no activation, no input gradient. In a bf16 model the output layers (raw s
     * and t) run in fp32: with them in bf16 the flow trained to 4.49 test bits/dim where fp32 reaches 3.97 (seed 1,
     * 20 epochs; 4.92 against 4.49 after 4), with them in fp32 4.07 (4.53 after 4); over 6 seeds 4.157 against fp32's
     * 4.292 on the mean (results/bf16-quality-amd-epyc-20261206/families.md) */
    const elbo_kernels *output_kern = elbo_kernels_with_precision(kern, ELBO_PRECISION_FP32);
    for (size_t i = 0; ok && i < m->layout.n_layers; i++) {
        const elbo_linear_layout *ly = &m->layout.layer[i];
        size_t in_coupling = i % per;
        int is_scale = in_coupling == per - 1, hidden = in_coupling < cfg->n_hidden;
        int data_grad = !is_scale && i != 0;
        ok = elbo_linear_init(&m->layer[i], hidden ? kern : output_kern, ly->in, ly->out, ly->w_off, ly->b_off,
                              hidden ? ELBO_ACT_RELU : ELBO_ACT_NONE, m->params, data_grad) == 0;
        /* ~170 MB of weights, packed copies, gradients and Adam moments a step: a net's panels repacked after the
         * update are read from memory by the next step's forward whatever the caches did with them */
        m->layer[i].stream_packs = !is_scale;
    }
    if (!ok) {
        elbo_flow_free(m);
        snprintf(err, errlen, "out of memory allocating the model");
        return -1;
    }
    m->n_first = pattern_size(cfg);
    for (size_t j = 0, first = 0, second = m->n_first; j < cfg->input_dim; j++)
        m->order[in_pattern(cfg, j) ? first++ : second++] = j;
    return 0;
}

void elbo_flow_free(elbo_flow *m)
{
    for (size_t i = 0; i < ELBO_MAX_LAYERS; i++)
        elbo_linear_free(&m->layer[i]);
    free(m->params);
    free(m->grads);
    free(m->order);
    memset(m, 0, sizeof *m);
}

void elbo_flow_pack_weights(elbo_flow *m)
{
    for (size_t i = 0; i < m->layout.n_layers; i++)
        elbo_linear_pack(&m->layer[i], m->params);
}

/* Coupling k's scale layer. */
static const elbo_linear *scale_layer(const elbo_flow *m, size_t k)
{
    size_t per = layers_per_coupling(&m->cfg);
    return &m->layer[k * per + per - 1];
}

/* Coupling k's scale vector (Dt) in the parameter arena. */
static const float *scale_of(const elbo_flow *m, size_t k)
{
    return m->params + scale_layer(m, k)->b_off;
}

void elbo_flow_init_params(elbo_flow *m, uint64_t seed)
{
    const elbo_flow_config *c = &m->cfg;
    size_t per = layers_per_coupling(c);
    elbo_params_init(m->params, &m->layout, seed);
    for (size_t k = 0; k < c->couplings; k++) {
        const elbo_linear *last = &m->layer[k * per + c->n_hidden], *sc = scale_layer(m, k);
        size_t d = sc->out; /* Dt */
        memset(m->params + last->w_off + d * last->in, 0, d * last->in * sizeof(float));
        memset(m->params + last->b_off + d, 0, d * sizeof(float));
        memset(m->params + sc->w_off, 0, d * sizeof(float));
        memset(m->params + sc->b_off, 0, d * sizeof(float));
    }
    elbo_flow_pack_weights(m);
}

/* Each coupling's net over a's buffers: h[k]'s kept block -> hid[k][..] -> raw[k], whose gradient the coupling's
 * backward writes in place; the input gradient into dmi except for coupling 0. */
static void build_nets(const elbo_flow *m, elbo_flow_activations *a)
{
    const elbo_flow_config *c = &m->cfg;
    size_t per = layers_per_coupling(c);
    for (size_t k = 0; k < c->couplings; k++) {
        elbo_mlp *n = &a->net[k];
        memset(n, 0, sizeof *n);
        n->n = c->n_hidden + 1;
        n->layer = m->layer + k * per;
        n->first_index = k * per;
        for (size_t i = 0; i < c->n_hidden; i++) {
            n->out[i] = a->hid[k][i];
            n->dout[i] = a->dhid[k][i];
        }
        n->out[c->n_hidden] = a->raw[k];
        n->dout[c->n_hidden] = a->raw[k];
        n->dx = k > 0 ? a->dmi : NULL;
    }
}

/* Declares a view of `floats` floats per row in a's arena; returns its index. */
static int add_view(elbo_flow_activations *a, const char *name, size_t k, size_t floats)
{
    char full[ELBO_ACT_VIEW_NAME_MAX];
    snprintf(full, sizeof full, "%s%zu", name, k);
    return elbo_act_arena_add(&a->arena, full, floats * sizeof(float));
}

int elbo_flow_activations_init(elbo_flow_activations *a, const elbo_flow *m, size_t max_batch)
{
    const elbo_flow_config *c = &m->cfg;
    size_t d = c->input_dim, nk = c->couplings, nh = c->n_hidden, max_kept = 0;
    int h[ELBO_FLOW_MAX_COUPLINGS + 1], raw[ELBO_FLOW_MAX_COUPLINGS],
        dsc[ELBO_FLOW_MAX_COUPLINGS], hid[ELBO_FLOW_MAX_COUPLINGS][ELBO_MAX_HIDDEN],
        dhid[ELBO_FLOW_MAX_COUPLINGS][ELBO_MAX_HIDDEN];
    memset(a, 0, sizeof *a);
    elbo_act_arena_init(&a->arena);
    a->max_batch = max_batch;
    for (size_t k = 0; k <= nk; k++)
        h[k] = add_view(a, "h", k, d);
    for (size_t k = 0; k < nk; k++) {
        size_t kept, n_kept, tr, nt;
        elbo_flow_blocks(m, k, &kept, &n_kept, &tr, &nt);
        max_kept = n_kept > max_kept ? n_kept : max_kept;
        for (size_t i = 0; i < nh; i++) {
            char name[16];
            snprintf(name, sizeof name, "h%zu_", i);
            hid[k][i] = add_view(a, name, k, c->hidden[i]);
            snprintf(name, sizeof name, "dh%zu_", i);
            dhid[k][i] = add_view(a, name, k, c->hidden[i]);
        }
        raw[k] = add_view(a, "raw", k, 2 * nt);
        dsc[k] = add_view(a, "dscale", k, nt);
    }
    int dh = add_view(a, "dh", 0, d), dmi = add_view(a, "dmi", 0, max_kept), zeros = add_view(a, "zeros", 0, 1);
    int nll_z = elbo_act_arena_add(&a->arena, "nll_z", sizeof(double));
    int log_det = elbo_act_arena_add(&a->arena, "log_det", sizeof(double));
    int pre = elbo_act_arena_add(&a->arena, "pre", sizeof(double));
    int ld_k = elbo_act_arena_add(&a->arena, "ld_k", sizeof(double));
    int packed_ok = 1;
    for (size_t k = 0; k < nk && m->kern->precision == ELBO_PRECISION_FP32; k++)
        for (size_t i = 0; i <= nh; i++) {
            const elbo_linear *l = &m->layer[k * layers_per_coupling(c) + i];
            packed_ok = packed_ok && elbo_packed_b_alloc(&a->x_packed[k][i], m->kern, max_batch, l->in) == 0;
        }
    if (ld_k < 0 || !packed_ok || elbo_act_arena_alloc(&a->arena, max_batch) != 0 ||
        elbo_gemm_workspace_init(&a->ws, m->kern) != 0) {
        elbo_flow_activations_free(a);
        return -1;
    }
    for (size_t k = 0; k <= nk; k++)
        a->h[k] = elbo_act_arena_view(&a->arena, h[k]);
    for (size_t k = 0; k < nk; k++) {
        for (size_t i = 0; i < nh; i++) {
            a->hid[k][i] = elbo_act_arena_view(&a->arena, hid[k][i]);
            a->dhid[k][i] = elbo_act_arena_view(&a->arena, dhid[k][i]);
        }
        a->raw[k] = elbo_act_arena_view(&a->arena, raw[k]);
        a->dscale[k] = elbo_act_arena_view(&a->arena, dsc[k]);
    }
    a->dh = elbo_act_arena_view(&a->arena, dh);
    a->dmi = elbo_act_arena_view(&a->arena, dmi);
    a->zeros = elbo_act_arena_view(&a->arena, zeros);
    a->nll_z = elbo_act_arena_view(&a->arena, nll_z);
    a->log_det = elbo_act_arena_view(&a->arena, log_det);
    a->pre = elbo_act_arena_view(&a->arena, pre);
    a->ld_k = elbo_act_arena_view(&a->arena, ld_k);
    build_nets(m, a);
    return 0;
}

void elbo_flow_activations_free(elbo_flow_activations *a)
{
    elbo_act_arena_free(&a->arena);
    elbo_gemm_workspace_free(&a->ws);
    for (size_t k = 0; k < ELBO_FLOW_MAX_COUPLINGS; k++)
        for (size_t i = 0; i <= ELBO_MAX_HIDDEN; i++)
            elbo_packed_b_free(&a->x_packed[k][i]);
    memset(a, 0, sizeof *a);
}

void elbo_flow_preprocess(const elbo_flow_config *c, const uint8_t *pixels, const float *u, float *y, double *pre,
                          size_t n)
{
    size_t d = c->input_dim;
    double alpha = c->alpha, span = 1 - 2 * alpha, base = (double)d * (log(256.0) - log(span));
    for (size_t r = 0; r < n; r++) {
        double sum = 0;
        for (size_t j = 0; j < d; j++) {
            double x = ((double)pixels[r * d + j] + (double)u[r * d + j]) / 256.0;
            double v = alpha + span * x, lv = log(v), l1v = log1p(-v);
            y[r * d + j] = (float)(lv - l1v);
            sum += lv + l1v;
        }
        if (pre)
            pre[r] = base + sum;
    }
}

/* Net k's input operand: the kept block of h[j] (B, Dk; row stride D), j = k in the forward pass, k + 1 in the
 * inverse (the coupling leaves those pixels unchanged). */
static elbo_operand net_input(const elbo_flow *m, const elbo_flow_activations *a, size_t k, size_t j)
{
    size_t kept, n_kept, tr, nt;
    elbo_flow_blocks(m, k, &kept, &n_kept, &tr, &nt);
    return elbo_operand_f32(a->h[j] + kept, m->cfg.input_dim, ELBO_NOTRANS);
}

/* Rows [r0, r1) of coupling k's kept block of dst (B, D) = that of src. */
static void copy_kept(const elbo_flow *m, size_t k, const float *src, float *dst, size_t r0, size_t r1)
{
    size_t d = m->cfg.input_dim, kept, n_kept, tr, nt;
    elbo_flow_blocks(m, k, &kept, &n_kept, &tr, &nt);
    for (size_t r = r0; r < r1; r++)
        memcpy(dst + r * d + kept, src + r * d + kept, n_kept * sizeof(float));
}

/* 1 when the kernels have the coupling pair that keeps tanh and exp from the forward for the backward. */
static int keeps_coupling_terms(const elbo_flow *m)
{
    return m->kern->coupling_forward_saving && m->kern->coupling_backward_saved;
}

/* Rows [r0, r1) of coupling k after its net's forward: h[k + 1] from h[k] and raw[k], the log-determinant added into
 * log_det; in a training step (train), where the kernels can, raw[k]'s s half left holding tanh(raw_s) and
 * dscale[k] exp(s) for the backward (keeps_coupling_terms). */
static void coupling_rows(const elbo_flow *m, elbo_flow_activations *a, size_t k, size_t r0, size_t r1, int train)
{
    size_t d = m->cfg.input_dim, kept, n_kept, tr, nt;
    if (r1 == r0)
        return;
    elbo_flow_blocks(m, k, &kept, &n_kept, &tr, &nt);
    if (train && keeps_coupling_terms(m))
        m->kern->coupling_forward_saving(a->h[k] + r0 * d + tr, d, a->raw[k] + r0 * 2 * nt, scale_of(m, k),
                                         a->h[k + 1] + r0 * d + tr, d, a->dscale[k] + r0 * nt, a->ld_k + r0, r1 - r0,
                                         nt);
    else
        m->kern->coupling_forward(a->h[k] + r0 * d + tr, d, a->raw[k] + r0 * 2 * nt, scale_of(m, k),
                                  a->h[k + 1] + r0 * d + tr, d, a->ld_k + r0, r1 - r0, nt);
    copy_kept(m, k, a->h[k], a->h[k + 1], r0, r1);
    for (size_t r = r0; r < r1; r++)
        a->log_det[r] = k == 0 ? a->ld_k[r] : a->log_det[r] + a->ld_k[r];
}

/* Rows [r0, r1): nll_z = 0.5 |z|^2 + D/2 ln(2 pi), and, when dz_scale > 0, dh = dz_scale z (the gradient of the
 * batch mean of the loss). */
static void prior_rows(const elbo_flow *m, elbo_flow_activations *a, size_t r0, size_t r1, float dz_scale)
{
    size_t d = m->cfg.input_dim, nk = m->cfg.couplings;
    const double half_log_2pi = 0.91893853320467274178;
    for (size_t r = r0; r < r1; r++) {
        const float *z = a->h[nk] + r * d;
        double sum = 0;
        for (size_t j = 0; j < d; j++)
            sum += (double)z[j] * (double)z[j];
        a->nll_z[r] = 0.5 * sum + (double)d * half_log_2pi;
        if (dz_scale > 0)
            for (size_t j = 0; j < d; j++)
                a->dh[r * d + j] = dz_scale * z[j];
    }
}

/* Rows [r0, r1) of net k's layer inputs (B, in_i) into their x_packed (K = b rows) where the activations have them:
 * the weight gradients' B operand, packed once per step instead of once per block of the tail. */
static void pack_net_inputs(const elbo_flow *m, elbo_flow_activations *a, size_t k, size_t b, size_t r0, size_t r1)
{
    const elbo_mlp *net = &a->net[k];
    for (size_t i = 0; i < net->n && a->x_packed[k][i].data; i++) {
        elbo_packed_b pb = a->x_packed[k][i];
        pb.k = b;
        elbo_pack_b_region(&pb, elbo_mlp_layer_input(net, net_input(m, a, k, k), i, 0), r0, r1, 0, pb.n);
    }
}

/* Rows [r0, r1) of the backward pass over this process's b rows of a step of b_step (the loss's mean), from
 * dh = d loss / d z: each coupling's backward on its
 * transformed block, its net's data gradients, and the gradient through the net's input added to dh's kept block
 * (but for coupling 0); then the rows of its layer inputs packed for the weight gradients (pack_net_inputs). */
static void backward_rows(const elbo_flow *m, elbo_flow_activations *a, elbo_gemm_workspace *ws, size_t b,
                          size_t b_step, size_t r0, size_t r1)
{
    size_t d = m->cfg.input_dim;
    if (r1 == r0)
        return;
    for (size_t k = m->cfg.couplings; k-- > 0;) {
        size_t kept, n_kept, tr, nt;
        elbo_flow_blocks(m, k, &kept, &n_kept, &tr, &nt);
        if (keeps_coupling_terms(m)) /* exp(s) in dscale, each element read before it is overwritten */
            m->kern->coupling_backward_saved(a->h[k] + r0 * d + tr, d, a->raw[k] + r0 * 2 * nt, scale_of(m, k),
                                             a->dscale[k] + r0 * nt, a->dh + r0 * d + tr, d, a->dscale[k] + r0 * nt,
                                             1.0f / (float)b_step, r1 - r0, nt);
        else
            m->kern->coupling_backward(a->h[k] + r0 * d + tr, d, a->raw[k] + r0 * 2 * nt, scale_of(m, k),
                                       a->dh + r0 * d + tr, d, a->dscale[k] + r0 * nt, 1.0f / (float)b_step, r1 - r0, nt);
        elbo_mlp_backward_rows(&a->net[k], ws, r0, r1, NULL, ELBO_ACT_NONE);
        if (k > 0)
            for (size_t r = r0; r < r1; r++) {
                float *g = a->dh + r * d + kept;
                const float *dx = a->dmi + r * n_kept;
                for (size_t j = 0; j < n_kept; j++)
                    g[j] += dx[j];
            }
        pack_net_inputs(m, a, k, b, r0, r1);
    }
}

/* Rows [r0, r1) of y (B, D) in the flow's order from rows of `pixel_order` (B, D) in pixel order. */
static void to_flow_order(const elbo_flow *m, const float *pixel_order, float *y, size_t r0, size_t r1)
{
    size_t d = m->cfg.input_dim;
    for (size_t r = r0; r < r1; r++)
        for (size_t i = 0; i < d; i++)
            y[r * d + i] = pixel_order[r * d + m->order[i]];
}

/* Rows [0, n) of out (n, D) in pixel order from rows of y (n, D) in the flow's order. */
static void to_pixel_order(const elbo_flow *m, const float *y, float *out, size_t n)
{
    size_t d = m->cfg.input_dim;
    for (size_t r = 0; r < n; r++)
        for (size_t i = 0; i < d; i++)
            out[r * d + m->order[i]] = y[r * d + i];
}

/* Rows [r0, r1) of h[0] (in the flow's order) and pre from pixels x (row 0 of x is batch row 0) with the uniforms of
 * (seed, stream, first + r, counter); dh's rows are the scratch of the logit in pixel order. */
static void input_rows(const elbo_flow *m, elbo_flow_activations *a, const uint8_t *x, size_t r0, size_t r1,
                       uint64_t seed, elbo_rng_stream stream, size_t first, uint32_t counter)
{
    size_t d = m->cfg.input_dim;
    for (size_t r = r0; r < r1; r++) {
        float *row = a->dh + r * d;
        elbo_rng_uniforms(row, d, 0.0f, 1.0f, seed, stream, (uint32_t)(first + r), counter);
        elbo_flow_preprocess(&m->cfg, x + r * d, row, row, a->pre + r, 1);
    }
    to_flow_order(m, a->dh, a->h[0], r0, r1);
}

/* Rows [r0, r1) of the forward pass (no barrier), after h[0]: z, each row's nll_z and log_det, and, when
 * dz_scale > 0 (a training step), dh = dz_scale z (prior_rows) and what the couplings keep for the backward. */
static void forward_rows(const elbo_flow *m, elbo_flow_activations *a, elbo_gemm_workspace *ws, size_t r0, size_t r1,
                         float dz_scale)
{
    for (size_t k = 0; k < m->cfg.couplings; k++) {
        elbo_mlp_forward_rows(&a->net[k], ws, net_input(m, a, k, k), r0, r1, m->params);
        coupling_rows(m, a, k, r0, r1, dz_scale > 0);
    }
    prior_rows(m, a, r0, r1, dz_scale);
}

/* Rows [r0, r1) of a training step's forward and backward over this process's b rows of a step of b_step rows (the
 * loss is the mean over b_step; b_step = b but when ranks share the step), after those rows of h[0] and pre are in
 * place. The forward runs by rows, as the backward does, rather than split by output features
 * (elbo_mlp_forward_part): that split needs a team barrier before and after every layer, 32 a step for 8 couplings,
 * and the bytes it saves are the weights' share another thread rewrote, which a flow's nets (7 M parameters, their
 * packed copies, gradients and Adam moments: ~170 MB) never keep in a core's cache anyway. The same bits either way
 * (elbo_mlp_forward_part leaves those of elbo_mlp_forward_rows). */
static void step_rows(const elbo_flow *m, elbo_flow_activations *a, elbo_gemm_workspace *ws, size_t b,
                      size_t b_step, size_t r0, size_t r1)
{
    forward_rows(m, a, ws, r0, r1, 1.0f / (float)b_step);
    backward_rows(m, a, ws, b, b_step, r0, r1);
}

/* Each coupling's layers as the tail sees them over a step of b rows: the net's (with their packed inputs, whose K
 * becomes b), then the scale layer on the zeros column; returns how many. */
static size_t flow_trainables(const elbo_flow *m, elbo_flow_activations *a, size_t b, elbo_trainable *out)
{
    size_t n = 0;
    for (size_t k = 0; k < m->cfg.couplings; k++) {
        const elbo_mlp *net = &a->net[k];
        for (size_t i = 0; i < net->n; i++, n++) {
            elbo_packed_b *xp = &a->x_packed[k][i];
            xp->k = b;
            out[n] = (elbo_trainable){.layer = (elbo_linear *)&net->layer[i], .dy = net->dout[i],
                                      .x = elbo_mlp_layer_input(net, net_input(m, a, k, k), i, 0), .rotate = n,
                                      .x_packed = xp->data ? xp : NULL};
        }
        out[n] = (elbo_trainable){.layer = (elbo_linear *)scale_layer(m, k), .dy = a->dscale[k],
                                  .x = elbo_operand_f32(a->zeros, 1, ELBO_NOTRANS), .rotate = n};
        n++;
    }
    return n;
}

/* Sums over rows [r0, r1) in row order: the loss and nll_z, log_det, preprocess. */
static elbo_step_loss flow_sums(const elbo_flow_activations *a, size_t r0, size_t r1)
{
    elbo_step_loss s = {0, {0, 0, 0, 0}};
    for (size_t r = r0; r < r1; r++) {
        s.part[0] += a->nll_z[r];
        s.part[1] += a->log_det[r];
        s.part[2] += a->pre[r];
        s.loss += a->nll_z[r] - a->log_det[r] + a->pre[r];
    }
    return s;
}

void elbo_flow_forward_y(const elbo_flow *m, elbo_flow_activations *a, const float *y, size_t n, float *z,
                         double *logdet)
{
    size_t nk = m->cfg.couplings;
    to_flow_order(m, y, a->h[0], 0, n);
    forward_rows(m, a, &a->ws, 0, n, 0.0f);
    to_pixel_order(m, a->h[nk], z, n);
    memcpy(logdet, a->log_det, n * sizeof(double));
}

void elbo_flow_inverse(const elbo_flow *m, elbo_flow_activations *a, const float *z, size_t n, float *y)
{
    size_t d = m->cfg.input_dim, nk = m->cfg.couplings;
    to_flow_order(m, z, a->h[nk], 0, n);
    for (size_t k = nk; k-- > 0;) {
        size_t kept, n_kept, tr, nt;
        elbo_flow_blocks(m, k, &kept, &n_kept, &tr, &nt);
        elbo_mlp_forward_rows(&a->net[k], &a->ws, net_input(m, a, k, k + 1), 0, n, m->params);
        m->kern->coupling_inverse(a->h[k + 1] + tr, d, a->raw[k], scale_of(m, k), a->h[k] + tr, d, n, nt);
        copy_kept(m, k, a->h[k + 1], a->h[k], 0, n);
    }
    to_pixel_order(m, a->h[0], y, n);
}

double elbo_flow_grads(elbo_flow *m, elbo_flow_activations *a, const uint8_t *x, const float *u, size_t b)
{
    elbo_trainable t[ELBO_MAX_LAYERS];
    elbo_flow_preprocess(&m->cfg, x, u, a->dh, a->pre, b);
    to_flow_order(m, a->dh, a->h[0], 0, b);
    step_rows(m, a, &a->ws, b, b, 0, b);
    elbo_tail_grads_part(t, flow_trainables(m, a, b, t), &a->ws, m->grads, b, 0, 1);
    return flow_sums(a, 0, b).loss / (double)b;
}

void elbo_flow_nll_rows(const elbo_flow *m, elbo_flow_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                        size_t r0, size_t r1, uint64_t seed, size_t first, uint32_t draw, double *nll)
{
    input_rows(m, a, x, r0, r1, seed, ELBO_STREAM_EVAL, first, draw);
    forward_rows(m, a, ws, r0, r1, 0.0f);
    for (size_t r = r0; r < r1; r++)
        nll[r] = a->nll_z[r] - a->log_det[r] + a->pre[r];
}

void elbo_flow_sample(const elbo_flow *m, elbo_flow_activations *a, size_t first, size_t n, uint64_t seed,
                      double temperature, float *unit, uint8_t *pixels)
{
    size_t d = m->cfg.input_dim;
    float *z = a->dh, *y = a->dh; /* scratch rows of the backward pass; the inverse reads z before it writes y */
    for (size_t i = 0; i < n; i++) {
        elbo_rng_normals(z + i * d, d, seed, ELBO_STREAM_SAMPLE, (uint32_t)(first + i), 0);
        for (size_t j = 0; j < d; j++)
            z[i * d + j] = (float)(temperature * z[i * d + j]);
    }
    elbo_flow_inverse(m, a, z, n, y);
    double alpha = m->cfg.alpha, span = 1 - 2 * alpha;
    for (size_t i = 0; i < n * d; i++) {
        double x = (1.0 / (1.0 + exp(-(double)y[i])) - alpha) / span;
        x = x < 0 ? 0 : x > 1 ? 1 : x;
        if (unit)
            unit[i] = (float)x;
        if (pixels) {
            double p = floor(256.0 * x);
            pixels[i] = (uint8_t)(p > 255 ? 255 : p);
        }
    }
}

double elbo_flow_bits_per_dim(const elbo_flow_config *c, double nll_nats)
{
    return nll_nats / ((double)c->input_dim * log(2.0));
}

size_t elbo_flow_full_index(const elbo_flow *m, size_t t, size_t e, size_t *full_size)
{
    const elbo_flow_config *c = &m->cfg;
    size_t d = c->input_dim, per = 2 * (c->n_hidden + 1) + 1, k = t / per, role = t % per;
    size_t kept, n_kept, tr, nt;
    elbo_flow_blocks(m, k, &kept, &n_kept, &tr, &nt);
    const elbo_tensor_view *v = &m->layout.tensor[t];
    size_t cols = v->cols ? v->cols : 1, row = e / cols, col = e % cols, out_full = v->rows, in_full = cols, idx;
    if (role == 0) { /* net.0.weight (hidden, Dk) of (hidden, D) */
        in_full = d;
        idx = row * d + m->order[kept + col];
    } else if (role == per - 3 || role == per - 2) { /* the last layer (2 Dt, ...) of (2 D, ...): s rows, t rows */
        out_full = 2 * d;
        idx = ((row < nt ? 0 : d) + m->order[tr + row % nt]) * cols + col;
    } else if (role == per - 1) { /* scale (Dt) of (D) */
        out_full = d;
        idx = m->order[tr + e];
    } else {
        idx = e;
    }
    if (full_size)
        *full_size = out_full * (v->cols ? in_full : 1);
    return idx;
}

/* Multiply-accumulates of every net's forward for one image, and of the first net's first layer. */
static double net_macs(const elbo_flow *m, double *first)
{
    size_t per = layers_per_coupling(&m->cfg);
    double macs = 0;
    for (size_t i = 0; i < m->layout.n_layers; i++)
        if (i % per != per - 1)
            macs += (double)(m->layout.layer[i].in * m->layout.layer[i].out);
    *first = (double)(m->layout.layer[0].in * m->layout.layer[0].out);
    return macs;
}

double elbo_flow_train_flops_per_sample(const elbo_flow *m)
{
    double first, macs = net_macs(m, &first);
    return 2.0 * (3.0 * macs - first);
}

double elbo_flow_sample_flops_per_sample(const elbo_flow *m)
{
    double first;
    return 2.0 * net_macs(m, &first);
}

/* ---- the flow as the trainer sees it ---- */

/* elbo_model_ops.act_new, act_free and act_arena. */
ELBO_MODEL_ACTIVATION_OPS(flow, elbo_flow_activations, elbo_flow_activations_init, elbo_flow_activations_free)

/* elbo_model_ops.train_rows: the dequantization noise of (seed, EPS, the step's batch row row0 + r, step) (the same
 * noise on any number of ranks), the logit, then the step's forward and backward (the loss a mean over the step's
 * rows). */
static void flow_train_rows(const void *impl, void *act, elbo_gemm_workspace *ws, const elbo_batch *bt, size_t r0,
                            size_t r1, size_t part, size_t nparts)
{
    const elbo_flow *m = impl;
    (void)part;
    (void)nparts;
    input_rows(m, act, bt->x, r0, r1, bt->seed, ELBO_STREAM_EPS, bt->row0, bt->step);
    step_rows(m, act, ws, bt->b, bt->b_step ? bt->b_step : bt->b, r0, r1);
}

/* elbo_model_ops.grads_finite: every net's output gradients and the scale gradients (B, Dt) of rows [r0, r1). */
static int flow_grads_finite(const void *impl, const void *act, size_t r0, size_t r1)
{
    const elbo_flow *m = impl;
    const elbo_flow_activations *a = act;
    for (size_t k = 0; k < m->cfg.couplings; k++) {
        size_t kept, n_kept, tr, nt;
        elbo_flow_blocks(m, k, &kept, &n_kept, &tr, &nt);
        if (!elbo_mlp_output_grads_finite(&a->net[k], r0, r1) ||
            !elbo_floats_finite(a->dscale[k] + r0 * nt, (r1 - r0) * nt))
            return 0;
    }
    return 1;
}

/* elbo_model_ops.batch_loss. */
static elbo_step_loss flow_batch_loss(const void *impl, const void *act, size_t b)
{
    (void)impl;
    return flow_sums(act, 0, b);
}

/* elbo_model_ops.rows_loss: the sums of rows [r0, r1) (the chunked step's per-chunk loss). */
static elbo_step_loss flow_rows_loss(const void *impl, const void *act, size_t r0, size_t r1)
{
    (void)impl;
    return flow_sums(act, r0, r1);
}

/* elbo_model_ops.trainables. */
static size_t flow_ops_trainables(const void *impl, void *act, const elbo_batch *bt, elbo_trainable *out)
{
    return flow_trainables(impl, act, bt->b, out);
}

/* elbo_model_ops.eval_rows: the loss of rows [r0, r1) with the noise of (seed, EVAL, sample index, bt->step). */
static void flow_eval_rows(const void *impl, void *act, elbo_gemm_workspace *ws, const elbo_batch *bt, size_t r0,
                           size_t r1)
{
    const elbo_flow *m = impl;
    input_rows(m, act, bt->x, r0, r1, bt->seed, ELBO_STREAM_EVAL, bt->first_index, bt->step);
    forward_rows(m, act, ws, r0, r1, 0.0f);
}

/* The value of __metadata__.coupling_layout: the nets' tensors hold only the entries the model uses (flow.h). */
static const char COUPLING_LAYOUT[] = "trimmed";

/* elbo_model_ops.write_config: image shape, hidden widths, couplings, mask, alpha, the tensors' layout. */
static size_t flow_write_config(const void *impl, const char **keys, char (*v)[96])
{
    const elbo_flow_config *c = &((const elbo_flow *)impl)->cfg;
    static const char *const names[] = {"input_dim", "image_rows", "image_cols", "hidden", "couplings", "mask",
                                        "alpha", "coupling_layout"};
    snprintf(v[0], 96, "%zu", c->input_dim);
    snprintf(v[1], 96, "%zu", c->image_rows);
    snprintf(v[2], 96, "%zu", c->image_cols);
    elbo_format_widths(v[3], 96, c->hidden, c->n_hidden);
    snprintf(v[4], 96, "%zu", c->couplings);
    snprintf(v[5], 96, "%s", elbo_flow_mask_name(c->mask));
    snprintf(v[6], 96, "%.17g", c->alpha);
    snprintf(v[7], 96, "%s", COUPLING_LAYOUT);
    for (size_t i = 0; i < 8; i++)
        keys[i] = names[i];
    return 8;
}

static const elbo_model_ops FLOW_OPS = {
    .kind = "flow",
    .part_names = {"nll_z", "log_det", "preprocess"},
    .act_new = flow_act_new,
    .act_free = flow_act_free,
    .act_arena = flow_act_arena,
    .train_rows = flow_train_rows,
    .grads_finite = flow_grads_finite,
    .batch_loss = flow_batch_loss,
    .rows_loss = flow_rows_loss,
    .trainables = flow_ops_trainables,
    .eval_rows = flow_eval_rows,
    .write_config = flow_write_config,
};

elbo_model elbo_flow_model(elbo_flow *m)
{
    return (elbo_model){.ops = &FLOW_OPS, .impl = m, .kern = m->kern, .layout = &m->layout, .params = m->params,
                        .grads = m->grads, .n_layers = m->layout.n_layers, .layer = m->layer,
                        .input_dim = m->cfg.input_dim};
}

/* elbo_checkpoint_reader.read_config: the config from the metadata, checked. */
static int flow_read_config(const elbo_meta_reader *r, void *cfg, char *err, size_t errlen)
{
    elbo_flow_config *c = cfg;
    char why[160];
    unsigned long long u[4];
    static const char *const sizes[] = {"input_dim", "image_rows", "image_cols", "couplings"};
    memset(c, 0, sizeof *c);
    const char *layout = elbo_st_meta_get(r->f, "coupling_layout");
    if (!layout || strcmp(layout, COUPLING_LAYOUT) != 0) {
        snprintf(err, errlen, "%s: __metadata__.coupling_layout: %s%.32s%s, not '%s': a flow checkpoint of "
                 "full-width coupling nets (every pixel in, s and t of every pixel out), the format before the nets "
                 "were trimmed to the pixels they use; it cannot be loaded: retrain it", r->path, layout ? "'" : "",
                 layout ? layout : "missing", layout ? "'" : "", COUPLING_LAYOUT);
        return -1;
    }
    for (size_t i = 0; i < 4; i++)
        if (elbo_meta_ull(r, sizes[i], &u[i], err, errlen))
            return -1;
    c->input_dim = (size_t)u[0];
    c->image_rows = (size_t)u[1];
    c->image_cols = (size_t)u[2];
    c->couplings = (size_t)u[3];
    const char *hidden = elbo_meta_string(r, "hidden", err, errlen);
    if (!hidden)
        return -1;
    if (elbo_parse_widths(hidden, c->hidden, &c->n_hidden, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.hidden: %s", r->path, why);
        return -1;
    }
    const char *mask = elbo_meta_string(r, "mask", err, errlen);
    if (!mask)
        return -1;
    if (elbo_flow_mask_parse(mask, &c->mask)) {
        snprintf(err, errlen, "%s: __metadata__.mask: '%s' is not checkerboard or half", r->path, mask);
        return -1;
    }
    if (elbo_meta_double(r, "alpha", &c->alpha, err, errlen))
        return -1;
    if (elbo_flow_config_validate(c, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.%s", r->path, why);
        return -1;
    }
    return 0;
}

/* elbo_checkpoint_reader's other callbacks for the flow. */
static void flow_layout(elbo_param_layout *l, const void *cfg)
{
    elbo_flow_layout_build(l, cfg);
}

static int flow_init(void *model, const void *cfg, const elbo_kernels *kern, char *err, size_t errlen)
{
    return elbo_flow_init(model, cfg, kern, err, errlen);
}

static elbo_model flow_as_model(void *model)
{
    return elbo_flow_model(model);
}

static void flow_pack(void *model)
{
    elbo_flow_pack_weights(model);
}

int elbo_flow_load(const char *path, elbo_flow *m, const elbo_kernels *kern, elbo_train_state *st, char *err,
                   size_t errlen)
{
    static const elbo_checkpoint_reader reader = {"flow", flow_read_config, flow_layout, flow_init, flow_as_model,
                                                  flow_pack};
    elbo_flow_config cfg;
    memset(m, 0, sizeof *m);
    return elbo_checkpoint_load_model(path, &reader, &cfg, m, kern, st, err, errlen);
}
