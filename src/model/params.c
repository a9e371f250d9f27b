/* Parameter arena layout, allocation and PyTorch-style initialization. */
#include "params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* Floats per alignment unit (64 bytes). */
#define ARENA_ALIGN_FLOATS 16

/* Rounds n up to the arena alignment. */
static size_t align_up(size_t n)
{
    return (n + ARENA_ALIGN_FLOATS - 1) / ARENA_ALIGN_FLOATS * ARENA_ALIGN_FLOATS;
}

/* Appends a tensor view (name, rows, cols) at offset. */
static void add_view(elbo_param_layout *l, const char *name, size_t rows, size_t cols, size_t offset,
                     size_t fan_in)
{
    elbo_tensor_view *t = &l->tensor[l->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows;
    t->cols = cols;
    t->offset = offset;
    t->fan_in = fan_in;
}

/* Appends a dense layer named prefix (views prefix.weight, prefix.bias) at the arena's end. */
static void add_layer(elbo_param_layout *l, const char *prefix, size_t in, size_t out, int relu)
{
    char name[ELBO_TENSOR_NAME_MAX];
    elbo_linear_layout *ly = &l->layer[l->n_layers++];
    ly->in = in;
    ly->out = out;
    ly->relu = relu;
    ly->w_off = l->total;
    l->total = align_up(l->total + in * out);
    ly->b_off = l->total;
    l->total = align_up(l->total + out);
    snprintf(name, sizeof name, "%.32s.weight", prefix);
    add_view(l, name, out, in, ly->w_off, in);
    snprintf(name, sizeof name, "%.32s.bias", prefix);
    add_view(l, name, out, 0, ly->b_off, in);
}

void elbo_param_layout_build(elbo_param_layout *l, const elbo_vae_config *c)
{
    char prefix[ELBO_TENSOR_NAME_MAX];
    memset(l, 0, sizeof *l);
    size_t in = c->input_dim;
    for (size_t i = 0; i < c->n_enc; i++) {
        snprintf(prefix, sizeof prefix, "encoder.%zu", i);
        add_layer(l, prefix, in, c->enc_hidden[i], 1);
        in = c->enc_hidden[i];
    }
    /* Both heads in one (2Z, in) weight and one (2Z) bias, exposed as fc_mu and fc_logvar. */
    l->heads = l->n_layers;
    elbo_linear_layout *h = &l->layer[l->n_layers++];
    size_t z = c->latent;
    h->in = in;
    h->out = 2 * z;
    h->relu = 0;
    h->w_off = l->total;
    l->total = align_up(l->total + 2 * z * in);
    h->b_off = l->total;
    l->total = align_up(l->total + 2 * z);
    add_view(l, "fc_mu.weight", z, in, h->w_off, in);
    add_view(l, "fc_mu.bias", z, 0, h->b_off, in);
    add_view(l, "fc_logvar.weight", z, in, h->w_off + z * in, in);
    add_view(l, "fc_logvar.bias", z, 0, h->b_off + z, in);
    in = z;
    for (size_t i = 0; i < c->n_dec; i++) {
        snprintf(prefix, sizeof prefix, "decoder.%zu", i);
        add_layer(l, prefix, in, c->dec_hidden[i], 1);
        in = c->dec_hidden[i];
    }
    l->out_layer = l->n_layers;
    add_layer(l, "fc_out", in, c->input_dim, 0);
}

size_t elbo_tensor_view_size(const elbo_tensor_view *t)
{
    return t->rows * (t->cols ? t->cols : 1);
}

const elbo_tensor_view *elbo_param_layout_find(const elbo_param_layout *l, const char *name)
{
    for (size_t i = 0; i < l->n_tensors; i++)
        if (strcmp(l->tensor[i].name, name) == 0)
            return &l->tensor[i];
    return NULL;
}

float *elbo_arena_alloc(const elbo_param_layout *l)
{
    size_t bytes = align_up(l->total ? l->total : 1) * sizeof(float);
    float *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void elbo_params_init(float *params, const elbo_param_layout *l, uint64_t seed)
{
    for (size_t t = 0; t < l->n_tensors; t++) {
        const elbo_tensor_view *v = &l->tensor[t];
        float bound = (float)(1.0 / sqrt((double)v->fan_in));
        size_t n = elbo_tensor_view_size(v);
        /* Counter word 1 carries the high bits of the element block so huge tensors never repeat. */
        for (size_t j = 0; j < n; j += (size_t)4 << 20) {
            size_t len = n - j < ((size_t)4 << 20) ? n - j : ((size_t)4 << 20);
            elbo_rng_uniforms(params + v->offset + j, len, -bound, bound, seed, ELBO_STREAM_INIT,
                              (uint32_t)(j >> 22), (uint32_t)t);
        }
    }
}

size_t elbo_param_layout_macs(const elbo_param_layout *l)
{
    size_t macs = 0;
    for (size_t i = 0; i < l->n_layers; i++)
        macs += l->layer[i].in * l->layer[i].out;
    return macs;
}

size_t elbo_param_layout_count(const elbo_param_layout *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n_tensors; i++)
        n += elbo_tensor_view_size(&l->tensor[i]);
    return n;
}
