/* Checkpoints: the model's parameters as a safetensors file (PyTorch state_dict names, F32), with the
 * config and the training state in __metadata__. */
#ifndef ELBO_CHECKPOINT_H
#define ELBO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "optim.h"
#include "vae.h"

/* The format tag written in __metadata__.format. elbo-vae-2 files hold every key the writer writes;
 * elbo-vae-1 (all files before it) may lack epoch_step and momentum (and the optimizer state: such files load
 * but cannot resume) or classes (read as all); any other tag is refused. */
#define ELBO_CHECKPOINT_FORMAT "elbo-vae-2"

/* Training state stored beside the parameters. */
typedef struct {
    uint64_t seed;
    long step;              /* optimizer steps taken */
    long epoch;             /* full epochs completed */
    long epoch_step;        /* steps already taken in the unfinished epoch epoch + 1 (0 at an epoch boundary) */
    char optimizer[16];     /* "adam" or "sgd" */
    double lr;
    double momentum;        /* SGD only */
    size_t batch;
    char dataset[64];
    char classes[1024];     /* training classes as "0,1,4" ("" = all); metadata "classes", "all" when empty (or
                             * absent from an elbo-vae-1 file) */
} elbo_train_state;

/* Writes m's parameters, config and st to path atomically. Returns 0 or -1 with a message in err. */
int elbo_checkpoint_save(const char *path, const elbo_vae *m, const elbo_train_state *st, char *err,
                         size_t errlen);

/* As elbo_checkpoint_save, plus the optimizer's state (if opt is not NULL) as tensors named after PyTorch's
 * optimizer state: optimizer.exp_avg.<param> and optimizer.exp_avg_sq.<param> (Adam) or
 * optimizer.momentum_buffer.<param> (SGD), so that training can resume exactly. */
int elbo_checkpoint_save_training(const char *path, const elbo_vae *m, const elbo_train_state *st,
                                  const elbo_optimizer *opt, char *err, size_t errlen);

/* Reads the optimizer state of a checkpoint into opt (initialized for m's layout and the checkpoint's
 * optimizer kind); fails naming the metadata key when the file's format version lacks the training position,
 * or the tensor when the state is missing or does not match. */
int elbo_checkpoint_load_optimizer(const char *path, const elbo_vae *m, elbo_optimizer *opt, char *err,
                                   size_t errlen);

/* Reads a checkpoint: validates the format (elbo-vae-1 or -2; keys an elbo-vae-1 file lacks are read as
 * stated in checkpoint.c's META_SINCE), every config field and every tensor (names, shapes; no
 * missing or extra tensors other than the optimizer.* state, which must match the parameters), then initializes m (with kernels kern) and packs its weights; st may be NULL.
 * Returns 0, or -1 with a one-line message in err naming the file and the field. */
int elbo_checkpoint_load(const char *path, elbo_vae *m, const elbo_kernels *kern, elbo_train_state *st,
                         char *err, size_t errlen);

#endif
