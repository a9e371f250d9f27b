/* The parameter arena: every weight and bias of a model in one aligned allocation, with named views.
 * Gradients and optimizer moments use the same layout, so optimizers are one flat loop. */
#ifndef ELBO_PARAMS_H
#define ELBO_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#define ELBO_MAX_LAYERS 18 /* a VAE of 8 encoder and 8 decoder hidden layers, its heads and its output */
#define ELBO_MAX_TENSORS (2 * ELBO_MAX_LAYERS + 2)
#define ELBO_TENSOR_NAME_MAX 48

/* One dense layer y = x W^T + b: W is (out, in) row-major at w_off, b is (out) at b_off (float offsets). */
typedef struct {
    size_t in, out;
    size_t w_off, b_off;
    int relu;           /* ReLU after this layer */
} elbo_linear_layout;

/* A named tensor view into the arena, as written to checkpoints (PyTorch state_dict names). */
typedef struct {
    char name[ELBO_TENSOR_NAME_MAX];
    size_t rows, cols;  /* cols == 0: a vector of rows elements */
    size_t offset;      /* in floats */
    size_t fan_in;      /* PyTorch nn.Linear init bound is 1/sqrt(fan_in) */
} elbo_tensor_view;

#define ELBO_MAX_GROUPS 4
#define ELBO_GROUP_NAME_MAX 16

/* A group of consecutive layers whose parameters are one contiguous block of the arena, for an optimizer of its own
 * (a GAN's generator and discriminator). */
typedef struct {
    char name[ELBO_GROUP_NAME_MAX];
    size_t first_layer, n_layers;
    size_t first_tensor, n_tensors;
    size_t offset, floats;   /* the block [offset, offset + floats) of the arena */
} elbo_param_group;

/* The layers in the order the model added them, the named tensor views over the arena, and its groups (none: the
 * whole arena is one group). */
typedef struct {
    size_t n_groups;
    elbo_param_group group[ELBO_MAX_GROUPS];
    size_t n_layers;
    elbo_linear_layout layer[ELBO_MAX_LAYERS];
    size_t n_tensors;
    elbo_tensor_view tensor[ELBO_MAX_TENSORS];
    size_t total;       /* floats in the arena, padding included */
} elbo_param_layout;

/* Starts a group called name: the layers added from now on, up to the next group, are its block of the arena.
 * Returns its index, or -1 when ELBO_MAX_GROUPS are taken. */
int elbo_param_layout_begin_group(elbo_param_layout *l, const char *name);
/* The group's block [offset, offset + floats) of the arena; group 0 of a layout without groups is the whole arena. */
void elbo_param_layout_group_range(const elbo_param_layout *l, size_t g, size_t *offset, size_t *floats);

/* Appends a dense layer (in -> out) at the arena's end: W (out, in), then b (out), each 64-byte aligned; its rows
 * are exposed as n_views equal views named prefixes[k].weight and prefixes[k].bias (n_views > 1: several
 * nn.Linear heads computed as one layer). Returns the layer's index. Start from a zeroed layout. */
size_t elbo_param_layout_add_linear(elbo_param_layout *l, size_t in, size_t out, int relu, size_t n_views,
                                    const char *const *prefixes);

/* Appends a vector of n floats called name at the arena's end (64-byte aligned), in the open group: state a model
 * keeps with its parameters (a spectral norm's u and v) but no layer's weight or bias, so no optimizer step
 * touches it; elbo_params_init fills it uniform in +-1. Returns its tensor index. */
size_t elbo_param_layout_add_vector(elbo_param_layout *l, const char *name, size_t n);

/* Floats of the tensor view (rows * max(cols, 1)). */
size_t elbo_tensor_view_size(const elbo_tensor_view *t);

/* The view named name, or NULL. */
const elbo_tensor_view *elbo_param_layout_find(const elbo_param_layout *l, const char *name);

/* Allocates a zeroed 64-byte aligned arena of l->total floats; NULL on out-of-memory. */
float *elbo_arena_alloc(const elbo_param_layout *l);

/* Fills params (arena) like PyTorch nn.Linear: every weight and bias uniform in +-1/sqrt(fan_in),
 * drawn from (seed, tensor index, element); padding stays zero. */
void elbo_params_init(float *params, const elbo_param_layout *l, uint64_t seed);

/* FNV-1a (64 bits) of every tensor of the arena params: its name, shape and bytes, in layout order. Identifies a
 * trained model in results (e.g. the reference classifier behind a Fréchet distance). */
uint64_t elbo_params_hash(const float *params, const elbo_param_layout *l);

/* Number of parameters (the layers' weights and biases, padding excluded; not elbo_param_layout_add_vector's
 * state). */
size_t elbo_param_layout_count(const elbo_param_layout *l);

/* Multiply-accumulate count of the forward pass for one sample (sum of in * out over layers). */
size_t elbo_param_layout_macs(const elbo_param_layout *l);

#endif
