/* The VAE's checkpoints: its config in the metadata of the model-agnostic checkpoint format (checkpoint.h). */
#ifndef ELBO_VAE_CHECKPOINT_H
#define ELBO_VAE_CHECKPOINT_H

#include "checkpoint.h"
#include "vae.h"

/* Writes the VAE m's parameters, config and st to path atomically. Returns 0 or -1 with a message in err. */
int elbo_checkpoint_save(const char *path, const elbo_vae *m, const elbo_train_state *st, char *err,
                         size_t errlen);

/* As elbo_checkpoint_save, plus the optimizer's state (if opt is not NULL). */
int elbo_checkpoint_save_training(const char *path, const elbo_vae *m, const elbo_train_state *st,
                                  const elbo_optimizer *opt, char *err, size_t errlen);

/* Reads a VAE checkpoint: validates the format (elbo-vae-1, -2 or elbo-3 of kind vae; keys an older file lacks
 * are read as stated in checkpoint.c's META_SINCE), every config field and every tensor, then initializes m (with
 * kernels kern) and packs its weights; st may be NULL. Returns 0, or -1 with a one-line message in err naming the
 * file and the field. */
int elbo_checkpoint_load(const char *path, elbo_vae *m, const elbo_kernels *kern, elbo_train_state *st,
                         char *err, size_t errlen);

#endif
