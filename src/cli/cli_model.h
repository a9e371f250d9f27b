/* What the inference subcommands share: a checkpoint and the dataset it is used on, checked against each
 * other, with activations for single-threaded inference. */
#ifndef ELBO_CLI_MODEL_H
#define ELBO_CLI_MODEL_H

#include <stddef.h>

#include "vae_checkpoint.h"
#include "dataset.h"
#include "vae.h"

#define CLI_MODEL_BATCH 512   /* rows per inference chunk */

typedef struct {
    elbo_vae model;
    elbo_train_state state;
    elbo_dataset data;
    elbo_vae_activations act;
} cli_model;

/* Loads the checkpoint `load` (required) and the dataset `data` (NULL: the default), checks that the images
 * fit the model, allocates the activations. Prints one "elbo CMD: ..." line and returns 2 on bad input, 1 when
 * out of memory, 0 when ready. */
int cli_model_open(cli_model *cm, const char *command, const char *load, const char *data);

/* Frees everything cli_model_open allocated (safe on a zeroed struct). */
void cli_model_close(cli_model *cm);

/* The name of class c of the data ("class N" when the data has no names). */
const char *cli_class_name(const cli_model *cm, size_t c, char *buf, size_t buflen);

#endif
