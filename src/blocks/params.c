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

int elbo_param_layout_begin_group(elbo_param_layout *l, const char *name)
{
    if (l->n_groups == ELBO_MAX_GROUPS)
        return -1;
    elbo_param_group *g = &l->group[l->n_groups];
    snprintf(g->name, sizeof g->name, "%s", name);
    g->first_layer = l->n_layers;
    g->first_tensor = l->n_tensors;
    g->offset = l->total;
    g->n_layers = g->n_tensors = g->floats = 0;
    return (int)l->n_groups++;
}

void elbo_param_layout_group_range(const elbo_param_layout *l, size_t g, size_t *offset, size_t *floats)
{
    if (l->n_groups == 0) {
        *offset = 0;
        *floats = l->total;
        return;
    }
    *offset = l->group[g].offset;
    *floats = l->group[g].floats;
}

size_t elbo_param_layout_add_vector(elbo_param_layout *l, const char *name, size_t n)
{
    size_t index = l->n_tensors;
    add_view(l, name, n, 0, l->total, 1);
    l->total = align_up(l->total + n);
    if (l->n_groups) { /* the open group grows by this vector */
        elbo_param_group *g = &l->group[l->n_groups - 1];
        g->n_tensors = l->n_tensors - g->first_tensor;
        g->floats = l->total - g->offset;
    }
    return index;
}

size_t elbo_param_layout_add_linear(elbo_param_layout *l, size_t in, size_t out, int relu, size_t n_views,
                                    const char *const *prefixes)
{
    char name[ELBO_TENSOR_NAME_MAX];
    size_t index = l->n_layers++, part = out / n_views;
    elbo_linear_layout *ly = &l->layer[index];
    ly->in = in;
    ly->out = out;
    ly->relu = relu;
    ly->w_off = l->total;
    l->total = align_up(l->total + in * out);
    ly->b_off = l->total;
    l->total = align_up(l->total + out);
    for (size_t k = 0; k < n_views; k++) {
        snprintf(name, sizeof name, "%.32s.weight", prefixes[k]);
        add_view(l, name, part, in, ly->w_off + k * part * in, in);
        snprintf(name, sizeof name, "%.32s.bias", prefixes[k]);
        add_view(l, name, part, 0, ly->b_off + k * part, in);
    }
    if (l->n_groups) { /* the open group grows by this layer */
        elbo_param_group *g = &l->group[l->n_groups - 1];
        g->n_layers = l->n_layers - g->first_layer;
        g->n_tensors = l->n_tensors - g->first_tensor;
        g->floats = l->total - g->offset;
    }
    return index;
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
    for (size_t i = 0; i < l->n_layers; i++)
        n += l->layer[i].in * l->layer[i].out + l->layer[i].out;
    return n;
}

/* FNV-1a, 64 bits, of n bytes continuing from h. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

uint64_t elbo_params_hash(const float *params, const elbo_param_layout *l)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < l->n_tensors; i++) {
        const elbo_tensor_view *t = &l->tensor[i];
        uint64_t shape[2] = {t->rows, t->cols};
        h = fnv1a(h, t->name, strlen(t->name) + 1);
        h = fnv1a(h, shape, sizeof shape);
        h = fnv1a(h, params + t->offset, elbo_tensor_view_size(t) * sizeof(float));
    }
    return h;
}
