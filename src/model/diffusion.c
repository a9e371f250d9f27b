/* The diffusion model on the training blocks: its residual MLP over one parameter arena, the noising, the simple
 * loss and its backward pass, the moving average of the weights, and its checkpoint. */
#include "diffusion.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "finite.h"
#include "rng.h"
#include "tail.h"

/* Layer indices in the arena (and in m->layer). */
#define L_TIME0 0
#define L_TIME2 1
#define L_INP 2
#define L_U(k) (3 + 3 * (k))
#define L_W1(k) (4 + 3 * (k))
#define L_W2(k) (5 + 3 * (k))
#define L_OUT(n) (3 + 3 * (n))

elbo_diffusion_config elbo_diffusion_config_default(size_t image_rows, size_t image_cols)
{
    elbo_diffusion_config c;
    memset(&c, 0, sizeof c);
    c.image_rows = image_rows;
    c.image_cols = image_cols;
    c.input_dim = image_rows * image_cols;
    c.emb_dim = 128;
    c.time_dim = 256;
    c.hidden = 1024;
    c.n_blocks = 3;
    c.T = 1000;
    c.schedule = ELBO_SCHEDULE_LINEAR;
    c.beta_1 = 1e-4;
    c.beta_T = 0.02;
    c.ema_decay = 0.999;
    return c;
}

int elbo_diffusion_config_validate(const elbo_diffusion_config *c, char *err, size_t errlen)
{
    const size_t max_width = (size_t)1 << 16;
    if (c->image_rows == 0 || c->image_cols == 0 || c->input_dim != c->image_rows * c->image_cols ||
        c->input_dim > ((size_t)1 << 20)) {
        snprintf(err, errlen, "input_dim: %zu is not image_rows x image_cols = %zu x %zu", c->input_dim,
                 c->image_rows, c->image_cols);
        return -1;
    }
    if (c->emb_dim < 2 || c->emb_dim % 2 || c->emb_dim > 4096) {
        snprintf(err, errlen, "emb_dim: %zu is not an even number in 2..4096", c->emb_dim);
        return -1;
    }
    if (c->time_dim == 0 || c->time_dim > max_width || c->hidden == 0 || c->hidden > max_width) {
        snprintf(err, errlen, "time_dim, hidden: %zu, %zu are not in 1..%zu", c->time_dim, c->hidden, max_width);
        return -1;
    }
    if (c->n_blocks == 0 || c->n_blocks > ELBO_DIFFUSION_MAX_BLOCKS) {
        snprintf(err, errlen, "blocks: %zu is not in 1..%d", c->n_blocks, ELBO_DIFFUSION_MAX_BLOCKS);
        return -1;
    }
    if (c->T < 2 || c->T > 100000) {
        snprintf(err, errlen, "steps: %zu is not in 2..100000", c->T);
        return -1;
    }
    if (!(c->beta_1 > 0 && c->beta_1 <= c->beta_T && c->beta_T < 1)) {
        snprintf(err, errlen, "beta_1, beta_T: %g, %g are not 0 < beta_1 <= beta_T < 1", c->beta_1, c->beta_T);
        return -1;
    }
    if (!(c->ema_decay >= 0 && c->ema_decay < 1)) {
        snprintf(err, errlen, "ema_decay: %g is not in [0, 1)", c->ema_decay);
        return -1;
    }
    return 0;
}

void elbo_diffusion_config_describe(const elbo_diffusion_config *c, char *out, size_t outlen)
{
    snprintf(out, outlen, "diffusion %zu-%zux%zu-%zu, T %zu %s", c->input_dim, c->hidden, c->n_blocks, c->input_dim,
             c->T, elbo_schedule_name(c->schedule));
}

/* Appends one nn.Linear called name (in -> out) to layout l. */
static void add_linear(elbo_param_layout *l, const char *name, size_t in, size_t out)
{
    elbo_param_layout_add_linear(l, in, out, 0, 1, &name);
}

void elbo_diffusion_layout_build(elbo_param_layout *l, const elbo_diffusion_config *c)
{
    char name[ELBO_TENSOR_NAME_MAX];
    memset(l, 0, sizeof *l);
    add_linear(l, "time.0", c->emb_dim, c->time_dim);
    add_linear(l, "time.2", c->time_dim, c->time_dim);
    add_linear(l, "inp", c->input_dim, c->hidden);
    for (size_t k = 0; k < c->n_blocks; k++) {
        snprintf(name, sizeof name, "blocks.%zu.u", k);
        add_linear(l, name, c->time_dim, c->hidden);
        snprintf(name, sizeof name, "blocks.%zu.w1", k);
        add_linear(l, name, c->hidden, c->hidden);
        snprintf(name, sizeof name, "blocks.%zu.w2", k);
        add_linear(l, name, c->hidden, c->hidden);
    }
    add_linear(l, "out", c->hidden, c->input_dim);
}

/* The activation fused after layer i of a model of n blocks, and whether its data gradient is ever computed. */
static elbo_activation layer_act(size_t i, size_t n, int *data_grad)
{
    *data_grad = i != L_TIME0 && i != L_INP;
    if (i == L_TIME0 || i == L_INP)
        return ELBO_ACT_SILU;
    if (i == L_TIME2 || i == L_OUT(n))
        return ELBO_ACT_NONE;
    /* u adds into w1's output (no activation of its own); w1 and w2 end in SiLU (w2's on the residual stream) */
    return (i - 3) % 3 == 0 ? ELBO_ACT_NONE : ELBO_ACT_SILU;
}

int elbo_diffusion_init(elbo_diffusion *m, const elbo_diffusion_config *cfg, const elbo_kernels *kern, char *err,
                        size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (elbo_diffusion_config_validate(cfg, err, errlen) != 0)
        return -1;
    m->cfg = *cfg;
    m->kern = kern;
    elbo_diffusion_layout_build(&m->layout, cfg);
    m->params = elbo_arena_alloc(&m->layout);
    m->grads = elbo_arena_alloc(&m->layout);
    m->ema = elbo_arena_alloc(&m->layout);
    m->sqrt_ab = malloc((cfg->T + 1) * sizeof *m->sqrt_ab);
    m->sqrt_1mab = malloc((cfg->T + 1) * sizeof *m->sqrt_1mab);
    int ok = m->params && m->grads && m->ema && m->sqrt_ab && m->sqrt_1mab &&
             elbo_schedule_init(&m->sched, cfg->schedule, cfg->T, cfg->beta_1, cfg->beta_T) == 0;
    for (size_t t = 0; ok && t <= cfg->T; t++) {
        m->sqrt_ab[t] = (float)sqrt(m->sched.alpha_bar[t]);
        m->sqrt_1mab[t] = (float)sqrt(1 - m->sched.alpha_bar[t]);
    }
    for (size_t i = 0; ok && i < m->layout.n_layers; i++) {
        const elbo_linear_layout *ly = &m->layout.layer[i];
        int data_grad;
        elbo_activation act = layer_act(i, cfg->n_blocks, &data_grad);
        ok = elbo_linear_init(&m->layer[i], kern, ly->in, ly->out, ly->w_off, ly->b_off, act, m->params,
                              data_grad) == 0;
    }
    if (!ok) {
        elbo_diffusion_free(m);
        snprintf(err, errlen, "out of memory allocating the model");
        return -1;
    }
    return 0;
}

void elbo_diffusion_free(elbo_diffusion *m)
{
    for (size_t i = 0; i < ELBO_MAX_LAYERS; i++)
        elbo_linear_free(&m->layer[i]);
    elbo_schedule_free(&m->sched);
    free(m->params);
    free(m->grads);
    free(m->ema);
    free(m->sqrt_ab);
    free(m->sqrt_1mab);
    memset(m, 0, sizeof *m);
}

void elbo_diffusion_pack_weights(elbo_diffusion *m)
{
    for (size_t i = 0; i < m->layout.n_layers; i++)
        elbo_linear_pack(&m->layer[i], m->params);
}

void elbo_diffusion_use_ema(elbo_diffusion *m)
{
    memcpy(m->params, m->ema, m->layout.total * sizeof(float));
    elbo_diffusion_pack_weights(m);
}

double elbo_diffusion_ema_rate(double decay, long step)
{
    double warm = (1.0 + (double)step) / (10.0 + (double)step);
    return warm < decay ? warm : decay;
}

/* Declares a view of `floats` floats per row in a's arena; returns its index. */
static int add_view(elbo_diffusion_activations *a, const char *name, size_t floats)
{
    return elbo_act_arena_add(&a->arena, name, floats * sizeof(float));
}

/* Declares n views of `floats` floats per row called <name><k> into idx; returns -1 if any failed. */
static int add_views(elbo_diffusion_activations *a, const char *name, size_t n, size_t floats, int *idx)
{
    char v[ELBO_ACT_VIEW_NAME_MAX];
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        snprintf(v, sizeof v, "%s%zu", name, k);
        idx[k] = add_view(a, v, floats);
        bad |= idx[k] < 0;
    }
    return bad ? -1 : 0;
}

int elbo_diffusion_activations_init(elbo_diffusion_activations *a, const elbo_diffusion *m, size_t max_batch)
{
    const elbo_diffusion_config *c = &m->cfg;
    size_t d = c->input_dim, hd = c->hidden, td = c->time_dim, n = c->n_blocks;
    int h[ELBO_DIFFUSION_MAX_BLOCKS + 1], s[ELBO_DIFFUSION_MAX_BLOCKS + 1], u[ELBO_DIFFUSION_MAX_BLOCKS],
        av[ELBO_DIFFUSION_MAX_BLOCKS], dh[ELBO_DIFFUSION_MAX_BLOCKS + 1], du[ELBO_DIFFUSION_MAX_BLOCKS];
    memset(a, 0, sizeof *a);
    elbo_act_arena_init(&a->arena);
    a->max_batch = max_batch;
    int t = elbo_act_arena_add(&a->arena, "t", sizeof(uint32_t));
    int xt = add_view(a, "xt", d), eps = add_view(a, "eps", d), emb = add_view(a, "emb", c->emb_dim);
    int tu = add_view(a, "tu", td), ts = add_view(a, "ts", td), e = add_view(a, "e", td);
    int bad = add_views(a, "h", n + 1, hd, h) | add_views(a, "s", n + 1, hd, s) | add_views(a, "u", n, hd, u) |
              add_views(a, "a", n, hd, av);
    int out = add_view(a, "out", d), dout = add_view(a, "dout", d);
    bad |= add_views(a, "dh", n + 1, hd, dh) | add_views(a, "du", n, hd, du);
    int tmp = add_view(a, "tmp", hd), de = add_view(a, "de", td), dtu = add_view(a, "dtu", td);
    int loss = add_view(a, "loss", 1);
    if (bad || loss < 0 || elbo_act_arena_alloc(&a->arena, max_batch) != 0 ||
        elbo_gemm_workspace_init(&a->ws, m->kern) != 0) {
        elbo_diffusion_activations_free(a);
        return -1;
    }
    a->t = elbo_act_arena_view(&a->arena, t);
    a->xt = elbo_act_arena_view(&a->arena, xt);
    a->eps = elbo_act_arena_view(&a->arena, eps);
    a->emb = elbo_act_arena_view(&a->arena, emb);
    a->tu = elbo_act_arena_view(&a->arena, tu);
    a->ts = elbo_act_arena_view(&a->arena, ts);
    a->e = elbo_act_arena_view(&a->arena, e);
    for (size_t k = 0; k <= n; k++) {
        a->h[k] = elbo_act_arena_view(&a->arena, h[k]);
        a->s[k] = elbo_act_arena_view(&a->arena, s[k]);
        a->dh[k] = elbo_act_arena_view(&a->arena, dh[k]);
    }
    for (size_t k = 0; k < n; k++) {
        a->u[k] = elbo_act_arena_view(&a->arena, u[k]);
        a->a[k] = elbo_act_arena_view(&a->arena, av[k]);
        a->du[k] = elbo_act_arena_view(&a->arena, du[k]);
    }
    a->out = elbo_act_arena_view(&a->arena, out);
    a->dout = elbo_act_arena_view(&a->arena, dout);
    a->tmp = elbo_act_arena_view(&a->arena, tmp);
    a->de = elbo_act_arena_view(&a->arena, de);
    a->dtu = elbo_act_arena_view(&a->arena, dtu);
    a->loss = elbo_act_arena_view(&a->arena, loss);
    return 0;
}

void elbo_diffusion_activations_free(elbo_diffusion_activations *a)
{
    elbo_act_arena_free(&a->arena);
    elbo_gemm_workspace_free(&a->ws);
    memset(a, 0, sizeof *a);
}

void elbo_diffusion_time_embedding(float *emb, uint32_t t, size_t dim)
{
    size_t half = dim / 2;
    for (size_t k = 0; k < half; k++) {
        double f = exp(-log(10000.0) * (double)k / (double)half), v = (double)t * f;
        emb[k] = (float)sin(v);
        emb[half + k] = (float)cos(v);
    }
}

/* The operand of rows from r0 of a (B, cols) buffer. */
static elbo_operand rows_of(const float *buf, size_t cols, size_t r0)
{
    return elbo_operand_f32(buf + r0 * cols, cols, ELBO_NOTRANS);
}

void elbo_diffusion_predict_rows(const elbo_diffusion *m, elbo_diffusion_activations *a, elbo_gemm_workspace *ws,
                                 size_t r0, size_t r1)
{
    const elbo_diffusion_config *c = &m->cfg;
    const elbo_linear *L = m->layer;
    size_t rows = r1 - r0, hd = c->hidden, td = c->time_dim, n = c->n_blocks;
    const float *p = m->params;
    if (rows == 0)
        return;
    for (size_t r = r0; r < r1; r++)
        elbo_diffusion_time_embedding(a->emb + r * c->emb_dim, a->t[r], c->emb_dim);
    elbo_linear_forward_saving(&L[L_TIME0], ws, a->ts + r0 * td, a->tu + r0 * td, rows_of(a->emb, c->emb_dim, r0),
                               rows, p);
    elbo_linear_forward(&L[L_TIME2], ws, a->e + r0 * td, rows_of(a->ts, td, r0), rows, p);
    elbo_linear_forward_saving(&L[L_INP], ws, a->s[0] + r0 * hd, a->h[0] + r0 * hd,
                               rows_of(a->xt, c->input_dim, r0), rows, p);
    for (size_t k = 0; k < n; k++) {
        /* a_k = SiLU(w1 s_k + u e): u e first, w1's GEMM adds onto it */
        elbo_linear_forward(&L[L_U(k)], ws, a->a[k] + r0 * hd, rows_of(a->e, td, r0), rows, p);
        elbo_linear_forward_accumulate(&L[L_W1(k)], ws, a->a[k] + r0 * hd, a->u[k] + r0 * hd, rows_of(a->s[k], hd, r0),
                                       rows, p);
        /* h_{k+1} = h_k + w2 a_k, s_{k+1} = SiLU(h_{k+1}): w2's GEMM adds onto a copy of h_k */
        memcpy(a->s[k + 1] + r0 * hd, a->h[k] + r0 * hd, rows * hd * sizeof(float));
        elbo_linear_forward_accumulate(&L[L_W2(k)], ws, a->s[k + 1] + r0 * hd, a->h[k + 1] + r0 * hd,
                                       rows_of(a->a[k], hd, r0), rows, p);
    }
    elbo_linear_forward(&L[L_OUT(n)], ws, a->out + r0 * c->input_dim, rows_of(a->s[n], hd, r0), rows, p);
}

/* dst (n) = x (n) + y (n): the residual stream's gradient, one rounding per element. */
static void add_floats(float *dst, const float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = x[i] + y[i];
}

/* Rows [r0, r1) of every data gradient from a->dout: dh_n, then per block (last first) du_k, dh_k = dh_{k+1} +
 * SiLU'(h_k) (w1^T du_k), de summed over the blocks' u in block order n-1 .. 0, and dtu. */
static void backward_rows(const elbo_diffusion *m, elbo_diffusion_activations *a, elbo_gemm_workspace *ws, size_t r0,
                          size_t r1)
{
    const elbo_diffusion_config *c = &m->cfg;
    const elbo_linear *L = m->layer;
    size_t rows = r1 - r0, hd = c->hidden, td = c->time_dim, n = c->n_blocks, o = r0 * hd;
    elbo_linear_data_grad(&L[L_OUT(n)], ws, a->dh[n] + o, a->dout + r0 * c->input_dim, a->h[n] + o, ELBO_ACT_SILU,
                          rows);
    for (size_t k = n; k-- > 0;) {
        elbo_linear_data_grad(&L[L_W2(k)], ws, a->du[k] + o, a->dh[k + 1] + o, a->u[k] + o, ELBO_ACT_SILU, rows);
        elbo_linear_data_grad(&L[L_W1(k)], ws, a->tmp + o, a->du[k] + o, a->h[k] + o, ELBO_ACT_SILU, rows);
        add_floats(a->dh[k] + o, a->dh[k + 1] + o, a->tmp + o, rows * hd);
        if (k == n - 1)
            elbo_linear_data_grad(&L[L_U(k)], ws, a->de + r0 * td, a->du[k] + o, NULL, ELBO_ACT_NONE, rows);
        else
            elbo_linear_data_grad_accumulate(&L[L_U(k)], ws, a->de + r0 * td, a->du[k] + o, rows);
    }
    elbo_linear_data_grad(&L[L_TIME2], ws, a->dtu + r0 * td, a->de + r0 * td, a->tu + r0 * td, ELBO_ACT_SILU, rows);
}

/* Rows [r0, r1) of x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (x0 (rows, D) from x0 at row r0), a->t set. */
static void noise_rows(const elbo_diffusion *m, elbo_diffusion_activations *a, const float *x0, size_t r0,
                       size_t r1)
{
    size_t d = m->cfg.input_dim;
    for (size_t r = r0; r < r1; r++) {
        float sa = m->sqrt_ab[a->t[r]], sb = m->sqrt_1mab[a->t[r]];
        const float *x = x0 + (r - r0) * d, *e = a->eps + r * d;
        float *xt = a->xt + r * d;
        for (size_t j = 0; j < d; j++)
            xt[j] = sa * x[j] + sb * e[j];
    }
}

/* Rows [r0, r1) of the loss of a batch of b rows after the forward: a->loss = the squared error summed over pixels,
 * a->dout = its gradient scaled for the batch mean over b rows and D pixels. */
static void loss_rows(const elbo_diffusion *m, elbo_diffusion_activations *a, size_t b, size_t r0, size_t r1)
{
    size_t d = m->cfg.input_dim;
    if (r1 > r0)
        m->kern->mse(a->dout + r0 * d, a->loss + r0, a->out + r0 * d, a->eps + r0 * d,
                     (float)(1.0 / ((double)b * (double)d)), r1 - r0, d);
}

/* One time step uniform in 1..T from the block (seed, TIME, c0, c1, c2). */
static uint32_t draw_t(const elbo_diffusion *m, uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2)
{
    uint32_t w[4];
    elbo_rng_block(seed, ELBO_STREAM_TIME, c0, c1, c2, w);
    return 1 + (uint32_t)(((uint64_t)w[0] * m->cfg.T) >> 32);
}

/* Rows [r0, r1) of x0 = 2 xf - 1 (xf = pixels / 255) into dst (row r0 first). */
static void scale_rows(float *dst, const float *xf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = 2.0f * xf[i] - 1.0f;
}

/* One layer as the tail sees it: its output gradient dy, its input x, its rotation. */
static elbo_trainable trainable(elbo_linear *layer, const float *dy, elbo_operand x, size_t rotate)
{
    return (elbo_trainable){.layer = layer, .dy = dy, .x = x, .rotate = rotate};
}

/* The layers as the tail sees them, with their output gradients and inputs in a; writes 3 + 3 n + 1. */
static size_t trainables(const elbo_diffusion *m, const elbo_diffusion_activations *a, elbo_trainable *out)
{
    const elbo_diffusion_config *c = &m->cfg;
    size_t n = c->n_blocks, hd = c->hidden, td = c->time_dim;
    elbo_linear *L = (elbo_linear *)m->layer;
    out[L_TIME0] = trainable(&L[L_TIME0], a->dtu, rows_of(a->emb, c->emb_dim, 0), L_TIME0);
    out[L_TIME2] = trainable(&L[L_TIME2], a->de, rows_of(a->ts, td, 0), L_TIME2);
    out[L_INP] = trainable(&L[L_INP], a->dh[0], rows_of(a->xt, c->input_dim, 0), L_INP);
    for (size_t k = 0; k < n; k++) {
        out[L_U(k)] = trainable(&L[L_U(k)], a->du[k], rows_of(a->e, td, 0), L_U(k));
        out[L_W1(k)] = trainable(&L[L_W1(k)], a->du[k], rows_of(a->s[k], hd, 0), L_W1(k));
        out[L_W2(k)] = trainable(&L[L_W2(k)], a->dh[k + 1], rows_of(a->a[k], hd, 0), L_W2(k));
    }
    out[L_OUT(n)] = trainable(&L[L_OUT(n)], a->dout, rows_of(a->s[n], hd, 0), L_OUT(n));
    return L_OUT(n) + 1;
}

double elbo_diffusion_grads(elbo_diffusion *m, elbo_diffusion_activations *a, const float *x0, const uint32_t *t,
                            const float *eps, size_t b)
{
    size_t d = m->cfg.input_dim;
    elbo_trainable tr[ELBO_MAX_LAYERS];
    memcpy(a->t, t, b * sizeof *t);
    memcpy(a->eps, eps, b * d * sizeof(float));
    noise_rows(m, a, x0, 0, b);
    elbo_diffusion_predict_rows(m, a, &a->ws, 0, b);
    loss_rows(m, a, b, 0, b);
    backward_rows(m, a, &a->ws, 0, b);
    elbo_tail_grads_part(tr, trainables(m, a, tr), &a->ws, m->grads, b, 0, 1);
    double s = 0;
    for (size_t r = 0; r < b; r++)
        s += a->loss[r];
    return s / ((double)b * (double)d);
}

uint8_t elbo_diffusion_gray(float v)
{
    double g = floor(255.0 * ((double)v + 1.0) / 2.0 + 0.5);
    return (uint8_t)(g < 0 ? 0 : g > 255 ? 255 : g);
}

double elbo_diffusion_forward_flops(const elbo_diffusion *m)
{
    return 2.0 * (double)elbo_param_layout_macs(&m->layout);
}

double elbo_diffusion_train_flops_per_sample(const elbo_diffusion *m)
{
    const elbo_param_layout *l = &m->layout;
    double macs = (double)elbo_param_layout_macs(l);
    double no_dgrad = (double)(l->layer[L_TIME0].in * l->layer[L_TIME0].out + l->layer[L_INP].in * l->layer[L_INP].out);
    /* forward, weight gradients of every layer, data gradients of all but time.0 and inp */
    return 2.0 * (3 * macs - no_dgrad);
}

/* ---- the diffusion model as the trainer sees it ---- */

/* elbo_model_ops.act_new, act_free and act_arena. */
ELBO_MODEL_ACTIVATION_OPS(diff, elbo_diffusion_activations, elbo_diffusion_activations_init, elbo_diffusion_activations_free)

/* elbo_model_ops.train_rows: rows [r0, r1) draw t (seed, TIME, row, step, 0) and eps (seed, EPS, row, step) for
 * their batch row (row0 + r), are noised, run forward, the loss (a mean over the step's rows) and every data
 * gradient (rows only: no team barrier). */
static void diff_train_rows(const void *impl, void *act, elbo_gemm_workspace *ws, const elbo_batch *bt, size_t r0,
                            size_t r1, size_t part, size_t nparts)
{
    const elbo_diffusion *m = impl;
    elbo_diffusion_activations *a = act;
    size_t d = m->cfg.input_dim;
    (void)part;
    (void)nparts;
    if (r1 == r0)
        return;
    for (size_t r = r0; r < r1; r++) {
        uint32_t row = (uint32_t)(bt->row0 + r); /* the step's batch row: the same noise on any number of ranks */
        a->t[r] = draw_t(m, bt->seed, row, bt->step, 0);
        elbo_rng_normals(a->eps + r * d, d, bt->seed, ELBO_STREAM_EPS, row, bt->step);
    }
    /* x0 goes through out's rows (free until the forward's last GEMM) */
    scale_rows(a->out + r0 * d, bt->xf + r0 * d, (r1 - r0) * d);
    noise_rows(m, a, a->out + r0 * d, r0, r1);
    elbo_diffusion_predict_rows(m, a, ws, r0, r1);
    loss_rows(m, a, bt->b_step ? bt->b_step : bt->b, r0, r1);
    backward_rows(m, a, ws, r0, r1);
}

/* elbo_model_ops.grads_finite: rows [r0, r1) of every gradient a weight gradient is summed from. */
static int diff_grads_finite(const void *impl, const void *act, size_t r0, size_t r1)
{
    const elbo_diffusion *m = impl;
    const elbo_diffusion_activations *a = act;
    size_t rows = r1 - r0, hd = m->cfg.hidden, td = m->cfg.time_dim, n = m->cfg.n_blocks;
    int ok = elbo_floats_finite(a->dout + r0 * m->cfg.input_dim, rows * m->cfg.input_dim) &&
             elbo_floats_finite(a->de + r0 * td, rows * td) && elbo_floats_finite(a->dtu + r0 * td, rows * td);
    for (size_t k = 0; ok && k <= n; k++)
        ok = elbo_floats_finite(a->dh[k] + r0 * hd, rows * hd) &&
             (k == n || elbo_floats_finite(a->du[k] + r0 * hd, rows * hd));
    return ok;
}

/* elbo_model_ops.rows_loss: the sums over rows [r0, r1) of each row's mean squared error over pixels. */
static elbo_step_loss diff_rows_loss(const void *impl, const void *act, size_t r0, size_t r1)
{
    const elbo_diffusion *m = impl;
    const elbo_diffusion_activations *a = act;
    elbo_step_loss s = {0, {0, 0, 0, 0}};
    for (size_t r = r0; r < r1; r++)
        s.loss += (double)a->loss[r] / (double)m->cfg.input_dim;
    s.part[0] = s.loss;
    return s;
}

/* elbo_model_ops.batch_loss: diff_rows_loss over rows [0, b). */
static elbo_step_loss diff_batch_loss(const void *impl, const void *act, size_t b)
{
    return diff_rows_loss(impl, act, 0, b);
}

/* elbo_model_ops.trainables. */
static size_t diff_trainables(const void *impl, void *act, const elbo_batch *bt, elbo_trainable *out)
{
    (void)bt;
    return trainables(impl, act, out);
}

/* elbo_model_ops.eval_rows: the simple loss of rows [r0, r1) at t (seed, TIME, sample, 0, 1) and eps (seed, EVAL,
 * sample, 0), sample = first_index + row. */
static void diff_eval_rows(const void *impl, void *act, elbo_gemm_workspace *ws, const elbo_batch *bt, size_t r0,
                           size_t r1)
{
    const elbo_diffusion *m = impl;
    elbo_diffusion_activations *a = act;
    size_t d = m->cfg.input_dim;
    for (size_t r = r0; r < r1; r++) {
        uint32_t sample = (uint32_t)(bt->first_index + r);
        a->t[r] = draw_t(m, bt->seed, sample, 0, 1);
        elbo_rng_normals(a->eps + r * d, d, bt->seed, ELBO_STREAM_EVAL, sample, 0);
        for (size_t j = 0; j < d; j++)
            a->out[r * d + j] = 2.0f * ((float)bt->x[r * d + j] / 255.0f) - 1.0f;
    }
    noise_rows(m, a, a->out + r0 * d, r0, r1);
    elbo_diffusion_predict_rows(m, a, ws, r0, r1);
    if (r1 > r0)
        m->kern->mse(NULL, a->loss + r0, a->out + r0 * d, a->eps + r0 * d, 1.0f, r1 - r0, d);
}

/* elbo_model_ops.after_update: the moving average of the block just updated, ema = r ema + (1 - r) p with the
 * rate r of this step (elbo_diffusion_ema_rate). */
static void diff_after_update(const void *impl, size_t off, size_t rows, size_t cols, size_t ld, long step)
{
    const elbo_diffusion *m = impl;
    double rate = elbo_diffusion_ema_rate(m->cfg.ema_decay, step);
    float r = (float)rate, q = (float)(1.0 - rate);
    for (size_t i = 0; i < rows; i++) {
        float *e = m->ema + off + i * ld;
        const float *p = m->params + off + i * ld;
        for (size_t j = 0; j < cols; j++)
            e[j] = r * e[j] + q * p[j];
    }
}

static const char *const CONFIG_KEYS[] = {"input_dim", "image_rows", "image_cols", "emb_dim",  "time_dim",
                                          "hidden",    "blocks",     "steps",      "schedule", "beta_1",
                                          "beta_T",    "ema_decay"};
#define N_CONFIG_KEYS (sizeof CONFIG_KEYS / sizeof CONFIG_KEYS[0])

/* elbo_model_ops.write_config: sizes, steps, the schedule and the moving average's decay. */
static size_t diff_write_config(const void *impl, const char **keys, char (*v)[96])
{
    const elbo_diffusion_config *c = &((const elbo_diffusion *)impl)->cfg;
    const size_t sizes[] = {c->input_dim, c->image_rows, c->image_cols, c->emb_dim,
                            c->time_dim,  c->hidden,     c->n_blocks,   c->T};
    for (size_t i = 0; i < 8; i++)
        snprintf(v[i], 96, "%zu", sizes[i]);
    snprintf(v[8], 96, "%s", elbo_schedule_name(c->schedule));
    snprintf(v[9], 96, "%.17g", c->beta_1);
    snprintf(v[10], 96, "%.17g", c->beta_T);
    snprintf(v[11], 96, "%.17g", c->ema_decay);
    for (size_t i = 0; i < N_CONFIG_KEYS; i++)
        keys[i] = CONFIG_KEYS[i];
    return N_CONFIG_KEYS;
}

static const elbo_model_ops DIFFUSION_OPS = {
    .kind = "diffusion",
    .part_names = {"simple_loss"},
    .act_new = diff_act_new,
    .act_free = diff_act_free,
    .act_arena = diff_act_arena,
    .train_rows = diff_train_rows,
    .grads_finite = diff_grads_finite,
    .batch_loss = diff_batch_loss,
    .rows_loss = diff_rows_loss,
    .trainables = diff_trainables,
    .eval_rows = diff_eval_rows,
    .write_config = diff_write_config,
    .after_update = diff_after_update,
};

elbo_model elbo_diffusion_model(elbo_diffusion *m)
{
    return (elbo_model){.ops = &DIFFUSION_OPS, .impl = m, .kern = m->kern, .layout = &m->layout,
                        .params = m->params, .grads = m->grads, .n_layers = m->layout.n_layers, .layer = m->layer,
                        .input_dim = m->cfg.input_dim, .shadow = m->ema, .shadow_prefix = "ema."};
}

/* elbo_checkpoint_reader.read_config: the config from the metadata, checked. */
static int diff_read_config(const elbo_meta_reader *r, void *cfg, char *err, size_t errlen)
{
    elbo_diffusion_config *c = cfg;
    char why[160];
    unsigned long long u[8];
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < 8; i++)
        if (elbo_meta_ull(r, CONFIG_KEYS[i], &u[i], err, errlen))
            return -1;
    c->input_dim = (size_t)u[0];
    c->image_rows = (size_t)u[1];
    c->image_cols = (size_t)u[2];
    c->emb_dim = (size_t)u[3];
    c->time_dim = (size_t)u[4];
    c->hidden = (size_t)u[5];
    c->n_blocks = (size_t)u[6];
    c->T = (size_t)u[7];
    const char *s = elbo_meta_string(r, "schedule", err, errlen);
    if (!s)
        return -1;
    if (elbo_schedule_parse(s, &c->schedule)) {
        snprintf(err, errlen, "%s: __metadata__.schedule: '%.32s' is not linear or cosine", r->path, s);
        return -1;
    }
    if (elbo_meta_double(r, "beta_1", &c->beta_1, err, errlen) ||
        elbo_meta_double(r, "beta_T", &c->beta_T, err, errlen) ||
        elbo_meta_double(r, "ema_decay", &c->ema_decay, err, errlen))
        return -1;
    if (elbo_diffusion_config_validate(c, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.%s", r->path, why);
        return -1;
    }
    return 0;
}

/* elbo_checkpoint_reader's other callbacks for the diffusion model. */
static void diff_layout(elbo_param_layout *l, const void *cfg)
{
    elbo_diffusion_layout_build(l, cfg);
}

static int diff_init(void *model, const void *cfg, const elbo_kernels *kern, char *err, size_t errlen)
{
    return elbo_diffusion_init(model, cfg, kern, err, errlen);
}

static elbo_model diff_as_model(void *model)
{
    return elbo_diffusion_model(model);
}

static void diff_pack(void *model)
{
    elbo_diffusion_pack_weights(model);
}

int elbo_diffusion_load(const char *path, elbo_diffusion *m, const elbo_kernels *kern, elbo_train_state *st,
                        char *err, size_t errlen)
{
    static const elbo_checkpoint_reader reader = {"diffusion", diff_read_config, diff_layout, diff_init,
                                                  diff_as_model, diff_pack};
    elbo_diffusion_config cfg;
    memset(m, 0, sizeof *m);
    return elbo_checkpoint_load_model(path, &reader, &cfg, m, kern, st, err, errlen);
}
