/* A model as the trainer, the evaluation loop and the checkpoint see it: its kind, its parameter arena, its linear
 * layers and the operations of a training step. Each model kind (vae.c, classifier.c) describes itself with one of
 * these (elbo_vae_model, elbo_classifier_model); nothing outside the model's own file knows its layers' roles. */
#ifndef ELBO_MODEL_H
#define ELBO_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <stdlib.h>

#include "act_arena.h"
#include "gemm.h"
#include "kernels.h"
#include "linear.h"
#include "params.h"
#include "tail.h"

#define ELBO_LOSS_PARTS 4
#define ELBO_MAX_PHASES 2

/* Sums over a batch's rows: the objective, and the model's own parts (the VAE: reconstruction and KL; the
 * classifier: cross-entropy and the count of correct predictions; the GAN: D loss, G loss, D(x), D(G(z))); parts a
 * model does not name stay 0. */
typedef struct {
    double loss;
    double part[ELBO_LOSS_PARTS];
} elbo_step_loss;

/* One batch as a model's step sees it. */
typedef struct {
    const uint8_t *x;        /* (b, D) pixels */
    const float *xf;         /* (b, D) the same pixels as floats x / 255 (what the first GEMM reads), or NULL */
    const uint8_t *labels;   /* (b) class labels, or NULL */
    size_t b;
    uint64_t seed;
    uint32_t step;           /* training: the step counter the noise is drawn for */
    size_t first_index;      /* evaluation: the data set's index of row 0 (noise per sample) */
    size_t row0;             /* training: the step's batch row of row 0 (a rank's first row when ranks share the
                              * batch: noise is drawn per batch row); 0 for a whole batch */
    size_t b_step;           /* training: the rows of the whole step when ranks share it (what a batch-mean loss
                              * divides by); 0: b */
} elbo_batch;

/* One optimizer phase of a training step, for a model whose step updates its parameter groups in turn (a GAN: the
 * discriminator, then the generator through the updated discriminator). Each member is as the one-phase member of
 * elbo_model_ops of the same name; trainables lists only the layers this phase updates. The trainer runs every
 * phase as it runs a one-phase step (rows, finiteness, barrier, batch loss, tail over the phase's trainables), with
 * a team barrier between phases, so a phase sees the parameters the previous one updated and repacked. */
typedef struct {
    const char *name;
    void (*train_rows)(const void *impl, void *act, elbo_gemm_workspace *ws, const elbo_batch *bt, size_t r0,
                       size_t r1, size_t part, size_t nparts);
    int (*grads_finite)(const void *impl, const void *act, size_t r0, size_t r1);
    elbo_step_loss (*batch_loss)(const void *impl, const void *act, size_t b);
    size_t (*trainables)(const void *impl, void *act, const elbo_batch *bt, elbo_trainable *out);
    /* NULL, or whether the phase runs in the step after `step` steps taken (a GAN's generator phase once every
     * --d-steps steps); a phase that does not run takes no barrier, loss or update */
    int (*runs)(const void *impl, long step);
    /* As batch_loss over rows [r0, r1) (NULL: the model cannot train in chunks, train_chunked.h) */
    elbo_step_loss (*rows_loss)(const void *impl, const void *act, size_t r0, size_t r1);
} elbo_train_phase;

/* Defines PREFIX##_act_new, PREFIX##_act_free and PREFIX##_act_arena, a model's elbo_model_ops activation entries:
 * a malloc'd TYPE (which has an `arena` member) set up by INIT(TYPE *, the model, max_batch) (0 or -1) and released
 * by FREE(TYPE *). */
#define ELBO_MODEL_ACTIVATION_OPS(PREFIX, TYPE, INIT, FREE)                                                        \
    static void *PREFIX##_act_new(const void *impl, size_t max_batch)                                              \
    {                                                                                                              \
        TYPE *a = malloc(sizeof *a);                                                                               \
        if (a && INIT(a, impl, max_batch) != 0) {                                                                  \
            free(a);                                                                                               \
            a = NULL;                                                                                              \
        }                                                                                                          \
        return a;                                                                                                  \
    }                                                                                                              \
    static void PREFIX##_act_free(void *act)                                                                       \
    {                                                                                                              \
        if (act)                                                                                                   \
            FREE(act);                                                                                             \
        free(act);                                                                                                 \
    }                                                                                                              \
    static const elbo_act_arena *PREFIX##_act_arena(const void *act)                                               \
    {                                                                                                              \
        return &((const TYPE *)act)->arena;                                                                        \
    }

typedef struct elbo_model_ops {
    const char *kind;                              /* "vae", "classifier" */
    const char *part_names[ELBO_LOSS_PARTS];       /* names of elbo_step_loss.part */
    /* Activations for up to max_batch rows (one arena), or NULL on out-of-memory. */
    void *(*act_new)(const void *impl, size_t max_batch);
    void (*act_free)(void *act);
    const elbo_act_arena *(*act_arena)(const void *act);
    /* Part `part` of nparts of a training step over the batch, called by every thread of an OpenMP team (it may
     * hold team barriers): the rows [r0, r1) of the batch were gathered by this thread; draws the part's noise,
     * runs the forward pass, the loss and every data gradient, so that afterwards the output gradients of every
     * trainable layer are complete for rows [r0, r1). */
    void (*train_rows)(const void *impl, void *act, elbo_gemm_workspace *ws, const elbo_batch *bt, size_t r0,
                       size_t r1, size_t part, size_t nparts);
    /* 1 when rows [r0, r1) of every trainable layer's output gradient are finite. */
    int (*grads_finite)(const void *impl, const void *act, size_t r0, size_t r1);
    /* Sums over rows [0, b) of the per-row losses, in row order. */
    elbo_step_loss (*batch_loss)(const void *impl, const void *act, size_t b);
    /* As batch_loss over rows [r0, r1) (NULL: the model cannot train in chunks, train_chunked.h). */
    elbo_step_loss (*rows_loss)(const void *impl, const void *act, size_t r0, size_t r1);
    /* The trainable layers with their output gradients and inputs for this batch (at most ELBO_MAX_LAYERS). */
    size_t (*trainables)(const void *impl, void *act, const elbo_batch *bt, elbo_trainable *out);
    /* Evaluation of rows [r0, r1): noise per sample index, forward pass and per-row losses (no gradients kept). */
    void (*eval_rows)(const void *impl, void *act, elbo_gemm_workspace *ws, const elbo_batch *bt, size_t r0,
                      size_t r1);
    /* The config as checkpoint metadata: keys[i] and values[i] (at most 16); returns how many. */
    size_t (*write_config)(const void *impl, const char **keys, char (*values)[96]);
    /* 0: a step is the one phase of train_rows, grads_finite, batch_loss and trainables above; else a step runs
     * phases[0 .. n_phases) in order (at most ELBO_MAX_PHASES) and returns the last phase's batch loss, and
     * train_rows, grads_finite and trainables above are NULL (batch_loss stays: the evaluation's). */
    size_t n_phases;
    const elbo_train_phase *phases;
    /* NULL, or called by the trainer after the optimizer updated the rows x cols block at arena offset off (row
     * stride ld) in optimizer step `step` (1 for the first), on the same thread: a model's own sweep over the
     * parameters it just changed (the diffusion model's exponential moving average). */
    void (*after_update)(const void *impl, size_t off, size_t rows, size_t cols, size_t ld, long step);
} elbo_model_ops;

typedef struct {
    const elbo_model_ops *ops;
    void *impl;                     /* the model kind's own struct */
    const elbo_kernels *kern;
    const elbo_param_layout *layout;
    float *params, *grads;          /* arenas of layout->total floats */
    size_t n_layers;
    elbo_linear *layer;             /* (n_layers) with their packed weights */
    size_t input_dim;               /* pixels per image */
    float *shadow;                  /* NULL, or a second arena of the layout kept in checkpoints as
                                     * "<shadow_prefix><tensor>" (the diffusion model's moving average "ema.") */
    const char *shadow_prefix;
} elbo_model;

#endif
