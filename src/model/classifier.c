/* The MLP classifier on the training blocks: forward, softmax cross-entropy, backward, and its checkpoint. */
#include "classifier.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


elbo_classifier_config elbo_classifier_config_default(size_t input_dim, size_t classes)
{
    elbo_classifier_config c;
    memset(&c, 0, sizeof c);
    c.input_dim = input_dim;
    c.n_hidden = 2;
    c.hidden[0] = c.hidden[1] = 256;
    c.classes = classes;
    return c;
}

int elbo_classifier_config_validate(const elbo_classifier_config *c, char *err, size_t errlen)
{
    const size_t max_width = (size_t)1 << 20;
    if (c->input_dim == 0 || c->input_dim > max_width) {
        snprintf(err, errlen, "input_dim: %zu is not in 1..%zu", c->input_dim, max_width);
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
    if (c->classes < 2 || c->classes > 256) {
        snprintf(err, errlen, "classes: %zu is not in 2..256", c->classes);
        return -1;
    }
    return 0;
}

void elbo_classifier_config_describe(const elbo_classifier_config *c, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "%zu", c->input_dim);
    for (size_t i = 0; i < c->n_hidden && n < outlen; i++)
        n += (size_t)snprintf(out + n, outlen - n, "-%zu", c->hidden[i]);
    if (n < outlen)
        snprintf(out + n, outlen - n, "-%zu classifier", c->classes);
}

void elbo_classifier_layout_build(elbo_param_layout *l, const elbo_classifier_config *c)
{
    char prefix[ELBO_TENSOR_NAME_MAX];
    const char *p = prefix;
    memset(l, 0, sizeof *l);
    size_t in = c->input_dim;
    for (size_t i = 0; i < c->n_hidden; i++) {
        snprintf(prefix, sizeof prefix, "hidden.%zu", i);
        elbo_param_layout_add_linear(l, in, c->hidden[i], 1, 1, &p);
        in = c->hidden[i];
    }
    static const char *const out[] = {"fc_out"};
    elbo_param_layout_add_linear(l, in, c->classes, 0, 1, out);
}

int elbo_classifier_init(elbo_classifier *m, const elbo_classifier_config *cfg, const elbo_kernels *kern, char *err,
                         size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (elbo_classifier_config_validate(cfg, err, errlen) != 0)
        return -1;
    m->cfg = *cfg;
    m->kern = kern;
    elbo_classifier_layout_build(&m->layout, cfg);
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
        elbo_classifier_free(m);
        snprintf(err, errlen, "out of memory allocating the model");
        return -1;
    }
    return 0;
}

void elbo_classifier_free(elbo_classifier *m)
{
    for (size_t i = 0; i < ELBO_MAX_HIDDEN + 1; i++)
        elbo_linear_free(&m->layer[i]);
    free(m->params);
    free(m->grads);
    memset(m, 0, sizeof *m);
}

void elbo_classifier_pack_weights(elbo_classifier *m)
{
    for (size_t i = 0; i < m->layout.n_layers; i++)
        elbo_linear_pack(&m->layer[i], m->params);
}

int elbo_classifier_activations_init(elbo_classifier_activations *a, const elbo_classifier *m, size_t max_batch)
{
    const elbo_classifier_config *c = &m->cfg;
    int h[ELBO_MAX_HIDDEN], dh[ELBO_MAX_HIDDEN];
    memset(a, 0, sizeof *a);
    elbo_act_arena_init(&a->arena);
    a->max_batch = max_batch;
    for (size_t i = 0; i < c->n_hidden; i++) {
        char name[ELBO_ACT_VIEW_NAME_MAX];
        snprintf(name, sizeof name, "h%zu", i);
        h[i] = elbo_act_arena_add(&a->arena, name, c->hidden[i] * sizeof(float));
        snprintf(name, sizeof name, "dh%zu", i);
        dh[i] = elbo_act_arena_add(&a->arena, name, c->hidden[i] * sizeof(float));
    }
    int logits = elbo_act_arena_add(&a->arena, "logits", c->classes * sizeof(float));
    int loss = elbo_act_arena_add(&a->arena, "loss", sizeof(float));
    int correct = elbo_act_arena_add(&a->arena, "correct", sizeof(float));
    int pred = elbo_act_arena_add(&a->arena, "pred", sizeof(uint32_t));
    if (elbo_act_arena_alloc(&a->arena, max_batch) != 0 || elbo_gemm_workspace_init(&a->ws, m->kern) != 0) {
        elbo_classifier_activations_free(a);
        return -1;
    }
    for (size_t i = 0; i < c->n_hidden; i++) {
        a->h[i] = elbo_act_arena_view(&a->arena, h[i]);
        a->dh[i] = elbo_act_arena_view(&a->arena, dh[i]);
    }
    a->logits = elbo_act_arena_view(&a->arena, logits);
    a->loss = elbo_act_arena_view(&a->arena, loss);
    a->correct = elbo_act_arena_view(&a->arena, correct);
    a->pred = elbo_act_arena_view(&a->arena, pred);
    elbo_mlp *mlp = &a->mlp;
    mlp->n = m->layout.n_layers;
    mlp->layer = m->layer;
    for (size_t i = 0; i < c->n_hidden; i++) {
        mlp->out[i] = a->h[i];
        mlp->dout[i] = a->dh[i];
    }
    mlp->out[c->n_hidden] = a->logits;
    mlp->dout[c->n_hidden] = a->logits; /* the loss writes its gradient over the logits */
    return 0;
}

void elbo_classifier_activations_free(elbo_classifier_activations *a)
{
    elbo_act_arena_free(&a->arena);
    elbo_gemm_workspace_free(&a->ws);
    memset(a, 0, sizeof *a);
}

/* The first layer's input: the pixels as floats (xf, B x D, when not NULL) or as uint8 (x): the same values. */
static elbo_operand input_of(const elbo_classifier *m, const uint8_t *x, const float *xf)
{
    size_t d = m->cfg.input_dim;
    return xf ? elbo_operand_f32(xf, d, ELBO_NOTRANS) : elbo_operand_u8(x, d, ELBO_NOTRANS);
}

/* Argmax of rows [r0, r1) of the logits into pred (the first maximum; the first NaN if a row has one). */
static void argmax_rows(const elbo_classifier *m, elbo_classifier_activations *a, size_t r0, size_t r1)
{
    size_t c = m->cfg.classes;
    for (size_t r = r0; r < r1; r++) {
        const float *row = a->logits + r * c;
        size_t best = 0;
        for (size_t j = 1; j < c && row[best] == row[best]; j++)
            if (row[j] > row[best] || row[j] != row[j])
                best = j;
        a->pred[r] = (uint32_t)best;
    }
}

void elbo_classifier_forward_rows(const elbo_classifier *m, elbo_classifier_activations *a, elbo_gemm_workspace *ws,
                                  const uint8_t *x, size_t r0, size_t r1)
{
    if (r1 == r0)
        return;
    elbo_mlp_forward_rows(&a->mlp, ws, input_of(m, x, NULL), r0, r1, m->params);
    argmax_rows(m, a, r0, r1);
}

#define FEATURE_CHUNK 512

int elbo_classifier_features(const elbo_classifier *m, elbo_team *team, const uint8_t *x, size_t n, float *features,
                             uint8_t *pred)
{
    elbo_classifier_activations a;
    size_t d = m->cfg.input_dim, f = m->cfg.hidden[m->cfg.n_hidden - 1], nt = team->n;
    if (elbo_classifier_activations_init(&a, m, FEATURE_CHUNK) != 0)
        return -1;
    const float *h = a.h[m->cfg.n_hidden - 1];
    for (size_t c0 = 0; c0 < n; c0 += FEATURE_CHUNK) {
        size_t b = n - c0 < FEATURE_CHUNK ? n - c0 : FEATURE_CHUNK;
        const uint8_t *xc = x + c0 * d;
#pragma omp parallel num_threads((int)nt) default(none) shared(m, a, team, xc, b, nt)
        {
            size_t t = (size_t)omp_get_thread_num(), r0, r1;
            elbo_team_rows(b, t, nt, &r0, &r1);
            elbo_classifier_forward_rows(m, &a, &team->ws[t], xc, r0, r1);
        }
        memcpy(features + c0 * f, h, b * f * sizeof(float));
        for (size_t r = 0; r < b; r++)
            pred[c0 + r] = (uint8_t)a.pred[r];
    }
    elbo_classifier_activations_free(&a);
    return 0;
}

/* Rows [r0, r1) of the loss after their forward pass: cross-entropy per row against labels (the batch's, row 0
 * first), its gradient (scale 1: the objective is the batch sum) over the logits, pred and correct. */
static void loss_rows(const elbo_classifier *m, elbo_classifier_activations *a, const uint8_t *labels, size_t r0,
                      size_t r1)
{
    size_t c = m->cfg.classes;
    if (r1 == r0)
        return;
    m->kern->softmax_ce(a->logits + r0 * c, a->loss + r0, a->pred + r0, a->logits + r0 * c, labels + r0, 1.0f,
                        r1 - r0, c, c);
    for (size_t r = r0; r < r1; r++)
        a->correct[r] = a->pred[r] == labels[r] ? 1.0f : 0.0f;
}

/* Sums of rows [0, b) of the per-row losses and correct flags, in row order. */
static elbo_step_loss sums(const elbo_classifier_activations *a, size_t b)
{
    elbo_step_loss s = {0, {0, 0}};
    for (size_t r = 0; r < b; r++) {
        s.part[0] += a->loss[r];
        s.part[1] += a->correct[r];
    }
    s.loss = s.part[0];
    return s;
}

/* Every layer as the tail sees it; returns how many. */
static size_t trainables(const elbo_classifier *m, const elbo_classifier_activations *a, const uint8_t *x,
                         const float *xf, elbo_trainable *out)
{
    for (size_t i = 0; i < a->mlp.n; i++)
        out[i] = (elbo_trainable){.layer = (elbo_linear *)&m->layer[i], .dy = a->mlp.dout[i],
                                  .x = elbo_mlp_layer_input(&a->mlp, input_of(m, x, xf), i, 0), .rotate = i};
    return a->mlp.n;
}

double elbo_classifier_forward_backward(elbo_classifier *m, elbo_classifier_activations *a, const uint8_t *x,
                                        const uint8_t *labels, size_t b)
{
    elbo_mlp_forward_rows(&a->mlp, &a->ws, input_of(m, x, NULL), 0, b, m->params);
    loss_rows(m, a, labels, 0, b);
    elbo_mlp_backward_rows(&a->mlp, &a->ws, 0, b, NULL, ELBO_ACT_NONE);
    elbo_trainable t[ELBO_MAX_LAYERS];
    size_t n = trainables(m, a, x, NULL, t);
    elbo_tail_grads_part(t, n, &a->ws, m->grads, b, 0, 1);
    return sums(a, b).loss;
}

double elbo_classifier_train_flops_per_sample(const elbo_classifier *m)
{
    const elbo_linear_layout *first = &m->layout.layer[0];
    double macs = (double)elbo_param_layout_macs(&m->layout);
    return 2.0 * (3.0 * macs - (double)(first->in * first->out));
}

/* ---- the classifier as the trainer sees it ---- */

/* elbo_model_ops.act_new, act_free and act_arena. */
ELBO_MODEL_ACTIVATION_OPS(clf, elbo_classifier_activations, elbo_classifier_activations_init, elbo_classifier_activations_free)

/* elbo_model_ops.train_rows: forward part, loss and data gradients of the rows. */
static void clf_train_rows(const void *impl, void *act, elbo_gemm_workspace *ws, const elbo_batch *bt, size_t r0,
                           size_t r1, size_t part, size_t nparts)
{
    const elbo_classifier *m = impl;
    elbo_classifier_activations *a = act;
    elbo_mlp_forward_part(&a->mlp, ws, input_of(m, bt->x, bt->xf), bt->b, r0, r1, part, nparts, m->params);
    loss_rows(m, a, bt->labels, r0, r1);
    elbo_mlp_backward_rows(&a->mlp, ws, r0, r1, NULL, ELBO_ACT_NONE);
}

/* elbo_model_ops.grads_finite. */
static int clf_grads_finite(const void *impl, const void *act, size_t r0, size_t r1)
{
    (void)impl;
    return elbo_mlp_output_grads_finite(&((const elbo_classifier_activations *)act)->mlp, r0, r1);
}

/* elbo_model_ops.batch_loss: the cross-entropy sum, and the count of correct predictions. */
static elbo_step_loss clf_batch_loss(const void *impl, const void *act, size_t b)
{
    (void)impl;
    return sums(act, b);
}

/* elbo_model_ops.rows_loss: as clf_batch_loss over rows [r0, r1). */
static elbo_step_loss clf_rows_loss(const void *impl, const void *act, size_t r0, size_t r1)
{
    const elbo_classifier_activations *a = act;
    elbo_step_loss s = {0, {0, 0}};
    (void)impl;
    for (size_t r = r0; r < r1; r++) {
        s.part[0] += a->loss[r];
        s.part[1] += a->correct[r];
    }
    s.loss = s.part[0];
    return s;
}

/* elbo_model_ops.trainables. */
static size_t clf_trainables(const void *impl, void *act, const elbo_batch *bt, elbo_trainable *out)
{
    return trainables(impl, act, bt->x, bt->xf, out);
}

/* elbo_model_ops.eval_rows: forward pass and loss of the rows (no noise). */
static void clf_eval_rows(const void *impl, void *act, elbo_gemm_workspace *ws, const elbo_batch *bt, size_t r0,
                          size_t r1)
{
    const elbo_classifier *m = impl;
    elbo_classifier_activations *a = act;
    elbo_mlp_forward_rows(&a->mlp, ws, input_of(m, bt->x, NULL), r0, r1, m->params);
    loss_rows(m, a, bt->labels, r0, r1);
}

/* elbo_model_ops.write_config: input_dim, hidden widths, classes. */
static size_t clf_write_config(const void *impl, const char **keys, char (*v)[96])
{
    const elbo_classifier_config *c = &((const elbo_classifier *)impl)->cfg;
    snprintf(v[0], 96, "%zu", c->input_dim);
    elbo_format_widths(v[1], 96, c->hidden, c->n_hidden);
    snprintf(v[2], 96, "%zu", c->classes);
    keys[0] = "input_dim";
    keys[1] = "hidden";
    keys[2] = "classes_out";
    return 3;
}

static const elbo_model_ops CLASSIFIER_OPS = {
    .kind = "classifier",
    .part_names = {"cross_entropy", "correct"},
    .act_new = clf_act_new,
    .act_free = clf_act_free,
    .act_arena = clf_act_arena,
    .train_rows = clf_train_rows,
    .grads_finite = clf_grads_finite,
    .batch_loss = clf_batch_loss,
    .rows_loss = clf_rows_loss,
    .trainables = clf_trainables,
    .eval_rows = clf_eval_rows,
    .write_config = clf_write_config,
};

elbo_model elbo_classifier_model(elbo_classifier *m)
{
    return (elbo_model){.ops = &CLASSIFIER_OPS, .impl = m, .kern = m->kern, .layout = &m->layout,
                        .params = m->params, .grads = m->grads, .n_layers = m->layout.n_layers, .layer = m->layer,
                        .input_dim = m->cfg.input_dim};
}

/* Rebuilds the config from a checkpoint's metadata; returns 0 or -1 with a message naming the field. */
static int config_from_meta(const elbo_meta_reader *r, elbo_classifier_config *c, char *err, size_t errlen)
{
    char why[160];
    unsigned long long u;
    const char *s;
    memset(c, 0, sizeof *c);
    if (elbo_meta_ull(r, "input_dim", &u, err, errlen))
        return -1;
    c->input_dim = (size_t)u;
    if (!(s = elbo_meta_string(r, "hidden", err, errlen)))
        return -1;
    if (elbo_parse_widths(s, c->hidden, &c->n_hidden, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.hidden: %s", r->path, why);
        return -1;
    }
    if (elbo_meta_ull(r, "classes_out", &u, err, errlen))
        return -1;
    c->classes = (size_t)u;
    if (elbo_classifier_config_validate(c, why, sizeof why)) {
        snprintf(err, errlen, "%s: __metadata__.%s", r->path, why);
        return -1;
    }
    return 0;
}

/* elbo_checkpoint_reader's callbacks for the classifier. */
static int clf_read_config(const elbo_meta_reader *r, void *cfg, char *err, size_t errlen)
{
    return config_from_meta(r, cfg, err, errlen);
}

/* elbo_checkpoint_reader.layout: the classifier's parameter layout of a config. */
static void clf_layout(elbo_param_layout *l, const void *cfg)
{
    elbo_classifier_layout_build(l, cfg);
}

/* elbo_checkpoint_reader.init: a classifier allocated for a config. */
static int clf_init(void *model, const void *cfg, const elbo_kernels *kern, char *err, size_t errlen)
{
    return elbo_classifier_init(model, cfg, kern, err, errlen);
}

/* elbo_checkpoint_reader.as_model: the classifier's trainer view. */
static elbo_model clf_as_model(void *model)
{
    return elbo_classifier_model(model);
}

/* elbo_checkpoint_reader.pack: packs the classifier's weights. */
static void clf_pack(void *model)
{
    elbo_classifier_pack_weights(model);
}

int elbo_classifier_load(const char *path, elbo_classifier *m, const elbo_kernels *kern, elbo_train_state *st,
                         char *err, size_t errlen)
{
    static const elbo_checkpoint_reader reader = {"classifier", clf_read_config, clf_layout, clf_init, clf_as_model,
                                                  clf_pack};
    elbo_classifier_config cfg;
    memset(m, 0, sizeof *m);
    return elbo_checkpoint_load_model(path, &reader, &cfg, m, kern, st, err, errlen);
}
