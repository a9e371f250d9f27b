/* The GAN: a generator G (z ~ N(0, I), Z -> hidden -> D pixels, LeakyReLU hidden, sigmoid output) and a
 * discriminator D (D pixels -> hidden -> 1 logit, LeakyReLU hidden), two parameter groups of one arena, trained in
 * two optimizer phases per step (elbo_train_phase): D on BCE-with-logits(D(x), 1) + BCE-with-logits(D(G(z)), 0), then
 * G on the non-saturating BCE-with-logits(D(G(z)), 1) through the updated D, on the same z and G(z). Both losses are
 * batch means, as PyTorch's BCEWithLogitsLoss. Tensor names are those of nn.Sequential models called generator and
 * discriminator (generator.0.weight, generator.2.weight, ..., discriminator.4.bias).
 *
 * Shapes: B = batch rows, Z = latent, D = input_dim = image_rows * image_cols. Weights are (out, in) row-major. */
#ifndef ELBO_GAN_H
#define ELBO_GAN_H

#include <stddef.h>
#include <stdint.h>

#include "act_arena.h"
#include "checkpoint.h"
#include "config.h"
#include "linear.h"
#include "mlp.h"
#include "model.h"
#include "optim.h"
#include "params.h"
#include "spectral_norm.h"

typedef struct {
    size_t input_dim, image_rows, image_cols; /* D = rows * cols (the image shape sampling writes) */
    size_t latent;                            /* Z */
    size_t n_g, g_hidden[ELBO_MAX_HIDDEN];    /* G's hidden widths, latent side first */
    size_t n_d, d_hidden[ELBO_MAX_HIDDEN];    /* D's hidden widths, input side first */
    double slope;                             /* LeakyReLU's negative slope */
    double adam_beta1, adam_beta2;            /* the recipe's Adam betas (both networks), kept for --resume */
    double real_label;                        /* D's target for real images (1; below 1: one-sided label smoothing) */
    double d_lr_scale;                        /* D's learning rate over G's (1; the optimizer's block_lr applies it) */
    int spectral_norm;                        /* 1: D's weights spectrally normalized (spectral_norm.h), one power
                                               * iteration per D forward of a training phase */
    size_t d_steps;                           /* D steps per G step (1): each step trains D on its real batch and a
                                               * fresh z; G's phase runs after every d_steps-th, on that step's z */
} elbo_gan_config;

typedef struct {
    elbo_gan_config cfg;
    elbo_param_layout layout;                 /* group 0 "generator", group 1 "discriminator" */
    const elbo_kernels *kern;
    float *params, *grads;                    /* arenas (layout.total) */
    float *wsn;                               /* spectral norm: an arena whose D weights are W / sigma (what D's
                                               * layers pack and read), else NULL */
    elbo_linear layer[ELBO_MAX_LAYERS];       /* G's n_g + 1 layers, then D's n_d + 1 */
    elbo_spectral_norm sn[ELBO_MAX_LAYERS];   /* spectral norm: D's layers' (at their layer index) */
    double *sn_scratch;                       /* spectral norm: their power iterations' sums */
} elbo_gan;

/* Activations of up to max_batch rows (views of one arena). D sees 2B rows in the D phase: rows [0, b) are G(z),
 * rows [b, 2b) the real images x / 255; in the G phase it sees rows [0, b) again. */
typedef struct {
    size_t max_batch;
    size_t b, b_step;  /* training: the last step's rows here (D's real rows start at b) and in the whole step */
    float *z;                                 /* (B, Z) */
    float *gh[ELBO_MAX_HIDDEN], *dgh[ELBO_MAX_HIDDEN]; /* (B, g_hidden[i]) G's hidden outputs, their gradients */
    float *xd;                                /* (2B, D) D's input: G's output (post-sigmoid), then the real x */
    float *dgout;                             /* (B, D) d G loss / d G's pre-sigmoid output (D's data gradient) */
    float *dh[ELBO_MAX_HIDDEN], *ddh[ELBO_MAX_HIDDEN]; /* (2B, d_hidden[i]) D's hidden outputs, their gradients */
    float *logit;                             /* (2B) D's logits, then their gradients */
    float *d_loss;                            /* (2B) the D step's BCE per row */
    float *d_prob;                            /* (2B) sigmoid of the D step's logits: D(G(z)), then D(x) */
    float *g_loss;                            /* (B) the G step's BCE per row */
    float *dpre[ELBO_MAX_HIDDEN + 1];         /* spectral norm: (2B, width) D's layers' pre-activations */
    double *sn_dots[ELBO_MAX_HIDDEN + 1];     /* spectral norm: (2B) per row <dy, pre - b> of D's layers */
    elbo_mlp g;                               /* z -> G(z) into xd rows [0, b) */
    elbo_mlp d;                               /* xd -> logit, no input gradient (the D phase) */
    elbo_mlp dg;                              /* the same layers and buffers with the input gradient into dgout */
    elbo_act_arena arena;
    elbo_gemm_workspace ws;                   /* for single-threaded callers */
} elbo_gan_activations;

/* G 64-256-512-784 (sigmoid), D 784-512-256-1 spectrally normalized, LeakyReLU 0.2, Adam betas 0.5 / 0.999, D's real
 * label 1, one D step per G step, for rows x cols images. */
elbo_gan_config elbo_gan_config_default(size_t image_rows, size_t image_cols);
/* Checks every field; returns 0, or -1 with a message in err naming the field. */
int elbo_gan_config_validate(const elbo_gan_config *c, char *err, size_t errlen);
/* "GAN G 64-256-512-784, D 784-512-256-1". */
void elbo_gan_config_describe(const elbo_gan_config *c, char *out, size_t outlen);
/* The parameter layout: group "generator" (generator.0, .2, ...), then group "discriminator" (with spectral norm,
 * after D's layers: discriminator.<k>.weight_u (out) and .weight_v (in) of each, torch's names). */
void elbo_gan_layout_build(elbo_param_layout *l, const elbo_gan_config *c);

/* The optimizer's per-block settings of the recipe into oc (whose lr is G's): D's learning rate d_lr_scale x lr,
 * and G's block updated every d_steps steps with Adam steps of its own. */
void elbo_gan_optimizer_blocks(const elbo_gan *m, elbo_optimizer_config *oc);

/* Allocates a model for a valid config with zeroed parameters; returns 0 or -1 (message in err). */
int elbo_gan_init(elbo_gan *m, const elbo_gan_config *cfg, const elbo_kernels *kern, char *err, size_t errlen);
/* Frees everything elbo_gan_init allocated (safe on a zeroed struct). */
void elbo_gan_free(elbo_gan *m);
/* Packs every weight for the GEMMs (D's as W / sigma of the stored u and v under spectral norm); call after the
 * parameters change. */
void elbo_gan_pack_weights(elbo_gan *m);

/* Allocates activations for up to max_batch rows; returns 0 or -1 on out-of-memory. */
int elbo_gan_activations_init(elbo_gan_activations *a, const elbo_gan *m, size_t max_batch);
/* Frees activations (safe on a zeroed struct). */
void elbo_gan_activations_free(elbo_gan_activations *a);

/* Single-threaded D step's gradients over b rows (x (b, D) uint8 real images, z (b, Z)): the D phase's forward,
 * losses and backward, and grads of D's group = d (D loss) / d D's parameters (G's group untouched). Returns the D
 * loss (mean BCE of the real rows plus mean BCE of the fake rows). */
double elbo_gan_d_grads(elbo_gan *m, elbo_gan_activations *a, const uint8_t *x, const float *z, size_t b);
/* Single-threaded G step's gradients after elbo_gan_d_grads on the same rows (its G(z), D's parameters as they are
 * now): grads of G's group = d (G loss) / d G's parameters, a->dgout = d G loss / d G's pre-sigmoid output (D's
 * first layer's data gradient). Returns the G loss (mean BCE of D(G(z)) against 1). */
double elbo_gan_g_grads(elbo_gan *m, elbo_gan_activations *a, size_t b);

/* Pixels of n <= max_batch samples: G of the normals of (seed, ELBO_STREAM_SAMPLE, first + i) into probs (n, D,
 * in [0, 1]) and, when pixels is not NULL, their gray levels round(255 p) (n, D). Single-threaded. */
void elbo_gan_sample_pixels(const elbo_gan *m, elbo_gan_activations *a, size_t first, size_t n, uint64_t seed,
                            float *probs, uint8_t *pixels);

/* The model as the trainer, the evaluation loop and the checkpoint see it (pointers into m, which must outlive it).
 * Its loss is D loss + G loss; its parts D loss, G loss, D(x) and D(G(z)) (batch sums of per-row means). */
elbo_model elbo_gan_model(elbo_gan *m);

/* Reads a GAN checkpoint (kind "gan"; every config field and tensor checked), initializes m with kernels kern and
 * packs its weights; st may be NULL. Returns 0, or -1 with a one-line message naming the field. */
int elbo_gan_load(const char *path, elbo_gan *m, const elbo_kernels *kern, elbo_train_state *st, char *err,
                  size_t errlen);

/* FLOPs of one training iteration per real image: G forward, D forward and backward over 2 rows (D step), D forward
 * and backward with the input gradient and G's backward (G step). */
double elbo_gan_train_flops_per_sample(const elbo_gan *m);

#endif
