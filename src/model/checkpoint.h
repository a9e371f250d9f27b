/* Checkpoints: the model's parameters as a safetensors file (PyTorch state_dict names, F32), with the
 * config and the training state in __metadata__. */
#ifndef ELBO_CHECKPOINT_H
#define ELBO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "vae.h"

#define ELBO_CHECKPOINT_FORMAT "elbo-vae-1"

/* Training state stored beside the parameters. */
typedef struct {
    uint64_t seed;
    long step;              /* optimizer steps taken */
    long epoch;             /* full epochs completed */
    char optimizer[16];     /* "adam" or "sgd" */
    double lr;
    size_t batch;
    char dataset[64];
} elbo_train_state;

/* Writes m's parameters, config and st to path atomically. Returns 0 or -1 with a message in err. */
int elbo_checkpoint_save(const char *path, const elbo_vae *m, const elbo_train_state *st, char *err,
                         size_t errlen);

/* Reads a checkpoint: validates the format, every config field and every tensor (names, shapes; no
 * missing or extra tensors), then initializes m (with kernels kern) and packs its weights; st may be NULL.
 * Returns 0, or -1 with a one-line message in err naming the file and the field. */
int elbo_checkpoint_load(const char *path, elbo_vae *m, const elbo_kernels *kern, elbo_train_state *st,
                         char *err, size_t errlen);

#endif
