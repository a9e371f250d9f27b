/* Optimizers over a parameter arena (or a group of it), elementwise in fused passes: Adam (default) and SGD with
 * momentum. The state has the arena's layout, so any block of the arena updates on its own. */
#ifndef ELBO_OPTIM_H
#define ELBO_OPTIM_H

#include "kernels.h"
#include "params.h"

typedef enum { ELBO_OPT_ADAM = 0, ELBO_OPT_SGD = 1 } elbo_optimizer_kind;

/* A block of the arena [begin, end) (floats) updated with its own learning rate and, when every > 1, only at every
 * every-th step (steps every, 2 every, ...; the caller runs its update only then), its Adam bias corrections
 * counting its own updates (step / every): a GAN generator's step after every --d-steps discriminator steps. */
typedef struct {
    size_t begin, end;
    double lr;
    long every;              /* 0 or 1: every step */
} elbo_block_lr;

typedef struct {
    elbo_optimizer_kind kind;
    elbo_adam_hparams adam;  /* step is ignored: the optimizer counts its own */
    elbo_sgd_hparams sgd;
    size_t n_block_lr;       /* blocks whose learning rate is not adam.lr / sgd.lr (a GAN's discriminator) */
    elbo_block_lr block_lr[ELBO_MAX_GROUPS];
} elbo_optimizer_config;

typedef struct {
    elbo_optimizer_config cfg;
    float *m, *v;            /* Adam moments (exp_avg, exp_avg_sq) or SGD momentum buffer (m), arena layout */
    long step;               /* steps taken */
} elbo_optimizer;

/* PyTorch's defaults: Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8; SGD lr 1e-3 momentum 0.9 when kind is SGD. */
elbo_optimizer_config elbo_optimizer_config_default(elbo_optimizer_kind kind, double lr);

/* Name of an optimizer kind ("adam", "sgd"). */
const char *elbo_optimizer_name(elbo_optimizer_kind k);

/* Allocates zeroed state for the layout; returns 0 or -1 on out-of-memory. */
int elbo_optimizer_init(elbo_optimizer *o, const elbo_optimizer_config *cfg, const elbo_param_layout *l);
/* Frees the state (safe on a zeroed struct). */
void elbo_optimizer_free(elbo_optimizer *o);
/* Multi-threaded step: one thread calls begin (counts the step), then the threads update disjoint blocks
 * with update_block (elementwise, so the result does not depend on how the arena is split). */
void elbo_optimizer_begin_step(elbo_optimizer *o);
/* Updates the rows x cols block at arena offset off (row stride ld) of params and the optimizer state from g, that
 * block's gradient (the same shape and row stride: the gradient arena + off, or a copy of the block elsewhere),
 * with kern's optimizer kernels, at the learning rate of the cfg.block_lr block holding off (the config's own
 * elsewhere). */
void elbo_optimizer_update_block(const elbo_optimizer *o, const elbo_kernels *kern, float *params, const float *g,
                                 size_t off, size_t rows, size_t cols, size_t ld);

#endif
