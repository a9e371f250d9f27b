/* Checkpoints: a model's parameters as a safetensors file (PyTorch state_dict names, F32), with its kind, its
 * config and the training state in __metadata__. checkpoint.c knows no model kind: each kind writes its config
 * through its ops (write_config) and reads it back with the elbo_meta_* readers (vae_checkpoint.c, ...). */
#ifndef ELBO_CHECKPOINT_H
#define ELBO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "optim.h"
#include "safetensors.h"

/* The format tag written in __metadata__.format. elbo-3 files hold every key the writer writes, the model kind
 * ("model": "vae", "classifier") included; elbo-vae-2 files are VAEs with every other key; elbo-vae-1 (all files
 * before it) may lack epoch_step and momentum (and the optimizer state: such files load but cannot resume) or
 * classes (read as all); any other tag is refused. */
#define ELBO_CHECKPOINT_FORMAT "elbo-3"

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
    elbo_precision precision; /* of the linear layers' GEMMs: metadata "precision", written only by a bf16 model
                               * ("bf16"; a file without the key was trained in fp32, so fp32 files keep their
                               * bytes) */
} elbo_train_state;

/* A checkpoint's metadata being read: the file, its path and its format version (an index into checkpoint.c's
 * table of formats). */
typedef struct {
    const elbo_st_file *f;
    const char *path;
    size_t format;
} elbo_meta_reader;

/* The metadata string of key (a stated stand-in when the file's format predates the key), or NULL with a message
 * naming the key and the file's format. */
const char *elbo_meta_string(const elbo_meta_reader *r, const char *key, char *err, size_t errlen);
/* Metadata key as a non-negative integer / a finite double; 0 or -1 with a message naming the key. */
int elbo_meta_ull(const elbo_meta_reader *r, const char *key, unsigned long long *out, char *err, size_t errlen);
int elbo_meta_double(const elbo_meta_reader *r, const char *key, double *out, char *err, size_t errlen);

/* Writes m's parameters (and, when opt is not NULL, the optimizer's state as tensors named after PyTorch's:
 * optimizer.exp_avg.<param> and optimizer.exp_avg_sq.<param> for Adam, optimizer.momentum_buffer.<param> for SGD,
 * so that training can resume exactly), its kind, config and st to path atomically (the precision: m's kernels'). A NaN or infinity anywhere is
 * refused (the file is not written). Returns 0 or -1 with a message in err. */
int elbo_checkpoint_write(const char *path, const elbo_model *m, const elbo_train_state *st,
                          const elbo_optimizer *opt, char *err, size_t errlen);

/* A checkpoint opened for reading. */
typedef struct {
    elbo_st_file f;
    elbo_meta_reader r;
} elbo_checkpoint_file;

/* Reads and validates path's format, its model kind (which must be `kind` unless kind is NULL: else one line
 * naming both) and its training state into st (may be NULL). Returns 0, or -1 with a one-line message. */
int elbo_checkpoint_open(elbo_checkpoint_file *cf, const char *path, const char *kind, elbo_train_state *st,
                         char *err, size_t errlen);
/* Checks the file's tensors against layout l (before anything of the layout's size is allocated): every
 * parameter present with its shape and finite values, nothing but parameters and optimizer state of their sizes. */
int elbo_checkpoint_check_tensors(const elbo_checkpoint_file *cf, const elbo_param_layout *l, char *err,
                                  size_t errlen);
/* Copies every parameter tensor (checked) into params (an arena of layout l). */
void elbo_checkpoint_copy_params(const elbo_checkpoint_file *cf, const elbo_param_layout *l, float *params);
/* Releases the file. */
void elbo_checkpoint_close(elbo_checkpoint_file *cf);

/* How a model kind is read back: its config from the metadata into cfg, the parameter layout of a config (to check the
 * tensors before anything of the config's size is allocated), a model allocated for a config (zeroed parameters,
 * message in err on failure), and the model's trainer view (its arena and layout) to copy the tensors into. */
typedef struct {
    const char *kind;
    int (*read_config)(const elbo_meta_reader *r, void *cfg, char *err, size_t errlen);
    void (*layout)(elbo_param_layout *l, const void *cfg);
    int (*init)(void *model, const void *cfg, const elbo_kernels *kern, char *err, size_t errlen);
    elbo_model (*as_model)(void *model);
    void (*pack)(void *model);
} elbo_checkpoint_reader;

/* Reads a checkpoint of r->kind into model (its config into cfg, scratch of the kind's config type): format and kind,
 * the training state into st (may be NULL), the config, every tensor against the config's layout, then the model
 * allocated, filled and packed. Returns 0, or -1 with a one-line message naming the file and the field. */
int elbo_checkpoint_load_model(const char *path, const elbo_checkpoint_reader *r, void *cfg, void *model,
                               const elbo_kernels *kern, elbo_train_state *st, char *err, size_t errlen);

/* The model kind of the checkpoint at path ("vae", "classifier") into kind; 0 or -1 with a one-line message. */
int elbo_checkpoint_model_kind(const char *path, char *kind, size_t kindlen, char *err, size_t errlen);

/* Reads the optimizer state of a checkpoint into opt (initialized for layout l and the checkpoint's optimizer
 * kind); fails naming the metadata key when the file's format version lacks the training position, or the tensor
 * when the state is missing or does not match. */
int elbo_checkpoint_load_optimizer(const char *path, const elbo_param_layout *l, elbo_optimizer *opt, char *err,
                                   size_t errlen);

#endif
