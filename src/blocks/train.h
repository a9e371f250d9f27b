/* Training and evaluation loops for any model (elbo_model): shuffled minibatches (the last partial one included),
 * the model's forward and backward passes, the optimizer step in the tail; per-sample means of the loss and its
 * parts over a data set. */
#ifndef ELBO_TRAIN_H
#define ELBO_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "optim.h"
#include "team.h"
#include "model.h"

/* n images of dim uint8 pixels, contiguous rows, and their labels (NULL when the data have none). */
typedef struct {
    const uint8_t *pixels;
    size_t n, dim;
    const uint8_t *labels;
} elbo_images_view;

/* Index of the next unclaimed tail block of one part, alone on its cache line. */
typedef struct {
    _Alignas(64) _Atomic size_t next;
} elbo_tail_cursor;

typedef struct {
    elbo_model model;
    elbo_optimizer opt;
    void *act;              /* the model's activations for `batch` rows */
    elbo_team team;
    uint64_t seed;
    size_t batch;
    long step;              /* optimizer steps taken */
    long epoch;             /* epochs completed */
    size_t epoch_pos;       /* samples already trained in the unfinished epoch (resuming mid-epoch) */
    uint32_t *perm;         /* this epoch's order of the training set */
    uint8_t *xbatch;        /* (batch, dim) gathered rows */
    float *xf;              /* (batch, dim) the same pixels as floats x / 255, the first layer's input */
    uint8_t *ybatch;        /* (batch) the gathered rows' labels */
    elbo_act_arena batch_arena; /* holds xbatch and xf */
    size_t n_phases;        /* the model's optimizer phases per step (1 unless its ops list several) */
    elbo_train_phase phase[ELBO_MAX_PHASES];
    elbo_trainable trainable[ELBO_MAX_LAYERS]; /* the model's trainable layers for this step's buffers: phase q's
                                                * are [trainable_first[q], trainable_first[q + 1]) */
    size_t trainable_first[ELBO_MAX_PHASES + 1];
    int nonfinite_grads;    /* the last step's gradients held a NaN or infinity (the step was not taken) */
    size_t stop_phase;      /* the phase the last step stopped in when its loss or gradients were not finite */
    elbo_tail_chunk *tail;  /* every phase's and part's tail blocks; part p of phase q has
                             * [tail_first[q (threads + 1) + p], tail_first[q (threads + 1) + p + 1]) */
    size_t *tail_first;     /* (phases (threads + 1)) */
    elbo_tail_cursor *tail_next; /* (phases threads) */
    float *tail_scratch;    /* (threads, tail_scratch_floats): each thread's tail blocks' gradients (tail.h) */
    size_t tail_scratch_floats;
    int keep_grads;         /* 1: each step's weight and bias gradients stay in the model's gradient arena, for a
                             * caller that reads them (the parity tests); 0 (default): in tail_scratch, which stays
                             * in cache (the same bits) */
    struct elbo_chunked *chunked; /* NULL, or the chunked step's state (train_chunked.h) */
} elbo_trainer;

/* Per-sample means over a set of samples: the loss and its parts (the model's ops name them). */
typedef struct {
    double loss;
    double part[ELBO_LOSS_PARTS];
    size_t samples;
} elbo_loss_means;

/* Called after each step with the epoch's samples done so far; return non-zero to stop after this step. */
typedef int (*elbo_step_callback)(void *ctx, const elbo_trainer *tr, size_t done, size_t total,
                                  const elbo_loss_means *running);

/* Prepares a trainer for model (parameters already set and packed) on n_train samples, with n_threads
 * OpenMP threads (results are bitwise the same for any n_threads), bound to cores and with each thread's rows
 * of the activations on its NUMA node when topo is not NULL.
 * Returns 0 or -1 with a message in err. */
int elbo_trainer_init(elbo_trainer *tr, const elbo_model *model, const elbo_optimizer_config *opt, size_t batch,
                      uint64_t seed, size_t n_train, size_t n_threads, const elbo_topology *topo, char *err,
                      size_t errlen);
/* Frees the trainer's own buffers (not the model). */
void elbo_trainer_free(elbo_trainer *tr);

/* The trainer's optimizer step on the rows x cols block at arena offset off (row stride ld) of its model from its
 * gradient g (the same shape and row stride), then the
 * model's after_update on that block (an elbo_param_update_fn with tr as ctx). */
void elbo_trainer_update_block(void *tr, size_t off, const float *g, size_t rows, size_t cols, size_t ld);

/* One optimizer step on the rows rows[0..b) of data (b <= batch): noise for (seed, step, row), forward,
 * backward, update, for each of the model's phases in turn. Returns the (last phase's) batch loss sums; a
 * non-finite loss, or non-finite gradients (then tr->nonfinite_grads is set), stop the step there: the parameters
 * and optimizer state of that phase and of the phases after it are untouched (an earlier phase's update stays),
 * and the step count does not advance. */
elbo_step_loss elbo_trainer_step(elbo_trainer *tr, const elbo_images_view *data, const uint32_t *rows, size_t b);

/* One epoch (shuffled from (seed, epoch)), from sample epoch_pos of its order, stopping early after max_steps total steps if max_steps > 0 or
 * when cb asks. Fills the per-sample train means of the samples trained in this call. Returns 0, 1 if stopped early, or -1 if the loss
 * or the gradients became non-finite (message in err naming the step and suggesting a lower --lr). */
int elbo_trainer_epoch(elbo_trainer *tr, const elbo_images_view *data, long max_steps, elbo_step_callback cb,
                       void *ctx, elbo_loss_means *out, char *err, size_t errlen);

/* Per-sample means of the model's loss and its parts over data (the VAE: the -ELBO with one posterior sample per
 * image, noise from (seed, sample index)), using act (the model's activations for max_batch rows) for the forward
 * passes, split over team's threads. */
elbo_loss_means elbo_evaluate(const elbo_model *model, void *act, size_t max_batch, elbo_team *team,
                              const elbo_images_view *data, uint64_t seed);

#endif
