/* The VAE: parameters, gradients, packed weights, and the forward and backward passes on the kernels.
 * Shapes: B = batch rows, D = input_dim, Z = latent. Weights are (out, in) row-major like nn.Linear. */
#ifndef ELBO_VAE_H
#define ELBO_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "act_arena.h"
#include "config.h"
#include "gemm.h"
#include "kernels.h"
#include "linear.h"
#include "model.h"
#include "mlp.h"
#include "params.h"
#include "tail.h"

typedef struct {
    elbo_vae_config cfg;
    elbo_param_layout layout;
    const elbo_kernels *kern;
    float *params;                          /* arena (layout.total) */
    float *grads;                           /* arena: d (sum over the batch of the loss) / d params */
    elbo_linear layer[ELBO_MAX_LAYERS];     /* the layers of layout.layer with their packed weights */
} elbo_vae;

/* Activations and gradients of up to max_batch rows (views of one arena), shared by the threads of a step: each
 * thread writes its own rows in the forward and data-gradient passes and reads all rows for the weight gradients. */
typedef struct {
    size_t max_batch;
    float *h[ELBO_MAX_LAYERS];  /* outputs of the hidden layers (B, out), post-ReLU; NULL for heads/output */
    float *dh[ELBO_MAX_LAYERS]; /* d loss / d h[i] (B, out), masked by the ReLU; NULL for heads/output */
    float *mulv;                /* (B, 2Z) [mu | logvar] */
    float *eps, *sigma, *z;     /* (B, Z) */
    float *kl, *recon;          /* (B) per-sample KL and reconstruction loss */
    float *logits;              /* (B, D) output logits, then d loss / d logits */
    float *dz, *dmulv;          /* (B, Z), (B, 2Z) */
    elbo_gemm_workspace ws;     /* for single-threaded callers */
    elbo_act_arena arena;       /* holds every buffer above: one allocation, one placement loop */
    elbo_mlp enc, dec;          /* the encoder (x -> mulv) and decoder (z -> logits) over these buffers */
} elbo_vae_activations;

/* Loss terms of one batch, summed over its rows. */
typedef struct {
    double recon, kl, loss;     /* loss = recon + beta * kl */
} elbo_batch_loss;

/* The VAE's parameter layout: encoder hidden layers, the two heads as one layer (out = 2Z: [mu | logvar], views
 * fc_mu and fc_logvar), decoder hidden layers, the output layer fc_out. */
void elbo_vae_layout_build(elbo_param_layout *l, const elbo_vae_config *c);

/* Allocates a model for a valid config with zeroed parameters; returns 0 or -1 (message in err). */
int elbo_vae_init(elbo_vae *m, const elbo_vae_config *cfg, const elbo_kernels *kern, char *err, size_t errlen);
/* Frees everything elbo_vae_init allocated (safe on a zeroed struct). */
void elbo_vae_free(elbo_vae *m);
/* Packs every weight for the forward and data-gradient GEMMs; call after the parameters change. */
void elbo_vae_pack_weights(elbo_vae *m);

/* Allocates activations for up to max_batch rows; returns 0 or -1 on out-of-memory. */
int elbo_vae_activations_init(elbo_vae_activations *a, const elbo_vae *m, size_t max_batch);
/* Frees activations (safe on a zeroed struct). */
void elbo_vae_activations_free(elbo_vae_activations *a);

/* Encoder for rows [r0, r1): mulv rows from x (B, D) contiguous uint8 pixels; keeps the hidden activations. */
void elbo_vae_encode_rows(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                          size_t r0, size_t r1);

/* Decoder for rows [r0, r1): logits rows from a->z; keeps the hidden activations. */
void elbo_vae_decode_rows(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, size_t r0, size_t r1);

/* Forward pass of rows [r0, r1) with the noise already in a->eps: encoder, reparameterization, decoder, fused
 * sigmoid + loss + d loss / d logits. Fills a->recon, a->kl for those rows; probs (B, D) gets the decoder
 * means of those rows if not NULL. */
void elbo_vae_forward_rows(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                           size_t r0, size_t r1, float *probs);

/* Part `part` of `nparts` of a training step's forward pass over b rows (pixels x, B x D uint8, and, when xf is
 * not NULL, the same pixels as floats x / 255, which the GEMMs read in place), called by every thread of an OpenMP
 * team (it holds team barriers): the part's rows [r0, r1) of the elementwise stages, and of each layer either
 * those rows or, where that moves fewer bytes between cores, the output features the part owns in
 * elbo_vae_tail_plan for all rows. Leaves the same bits as elbo_vae_forward_rows over [0, b). */
void elbo_vae_forward_part(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                           const float *xf, size_t b, size_t r0, size_t r1, size_t part, size_t nparts);

/* Batch sums of rows [0, b) of a->recon and a->kl, in row order. */
elbo_batch_loss elbo_vae_batch_loss(const elbo_vae *m, const elbo_vae_activations *a, size_t b);

/* Data gradients of rows [r0, r1) after their forward pass: d loss / d h for every hidden layer, dz, dmulv. */
void elbo_vae_backward_rows(const elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, size_t r0,
                            size_t r1);

/* 1 when rows [r0, r1) of every layer's output gradient dY (what all weight and bias gradients are summed
 * from) hold no NaN or infinity, after those rows' backward pass; else 0. */
int elbo_vae_output_grads_finite(const elbo_vae *m, const elbo_vae_activations *a, size_t r0, size_t r1);

/* Part `part` of `nparts` of the parameter gradients over all b rows (after every row's backward pass):
 * each layer's output features (rows of dW = dY^T . input, and their biases) are split into blocks of whole
 * panels, so every gradient element is computed whole, in the same order, for any nparts. */
void elbo_vae_param_grads_part(elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                               size_t b, size_t part, size_t nparts);

/* The tail blocks part `part` of nparts owns, in order: each layer's output features of the split
 * elbo_vae_forward_part uses, cut into blocks of a few panels. Written to out when not NULL; returns how many. */
size_t elbo_vae_tail_plan(const elbo_vae *m, const elbo_vae_activations *a, size_t part, size_t nparts,
                          elbo_tail_chunk *out);

/* One block of a training step's tail over b rows, after every row's backward pass (x and xf as for
 * elbo_vae_forward_part): its rows of dW = dY^T . input and its bias gradients, then `update` on those
 * parameters, then their repacking. Blocks are disjoint and each element is computed whole in a fixed order,
 * so any thread may run any block, in any order, with the same bits. */
void elbo_vae_tail_chunk_run(elbo_vae *m, elbo_vae_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                             const float *xf, size_t b, const elbo_tail_chunk *c, elbo_param_update_fn update,
                             void *ctx);


/* Single-threaded forward pass of b rows (noise in a->eps); returns the batch sums. */
elbo_batch_loss elbo_vae_forward(const elbo_vae *m, elbo_vae_activations *a, const uint8_t *x, size_t b,
                                 float *probs);

/* Single-threaded backward pass after elbo_vae_forward: m->grads = d (sum of the b rows' losses) / d params. */
void elbo_vae_backward(elbo_vae *m, elbo_vae_activations *a, const uint8_t *x, size_t b);

/* The model as the trainer, the evaluation loop and the checkpoint see it (pointers into m, which must outlive it). */
elbo_model elbo_vae_model(elbo_vae *m);

/* FLOPs of one training sample (forward + backward, the first layer's data gradient excluded). */
double elbo_vae_train_flops_per_sample(const elbo_vae *m);

#endif
