/* A checkpoint and its dataset, opened and checked together for the inference subcommands. */
#include "cli_model.h"

#include <stdio.h>
#include <string.h>

#include "cli_common.h"

int cli_model_open(cli_model *cm, const char *command, const char *load, const char *data)
{
    char err[512];
    memset(cm, 0, sizeof *cm);
    if (!load) {
        fprintf(stderr, "elbo %s: --load: required (a checkpoint written by elbo train --save)\n", command);
        return 2;
    }
    const elbo_kernels *k = cli_kernels_for(command, NULL, load);
    if (!k)
        return 2;
    if (elbo_checkpoint_load(load, &cm->model, k, &cm->state, err, sizeof err)) {
        fprintf(stderr, "elbo %s: %s\n", command, err);
        return 2;
    }
    if (cli_load_dataset(command, data, &cm->data)) {
        cli_model_close(cm);
        return 2;
    }
    if (cm->data.test.dim != cm->model.cfg.input_dim) {
        fprintf(stderr, "elbo %s: %s: image size %zux%zu = %zu pixels, but %s has input_dim %zu\n", command,
                cm->data.name, cm->data.test.rows, cm->data.test.cols, cm->data.test.dim, load,
                cm->model.cfg.input_dim);
        cli_model_close(cm);
        return 2;
    }
    if (elbo_vae_activations_init(&cm->act, &cm->model, CLI_MODEL_BATCH)) {
        fprintf(stderr, "elbo %s: out of memory\n", command);
        cli_model_close(cm);
        return 1;
    }
    return 0;
}

void cli_model_close(cli_model *cm)
{
    elbo_vae_activations_free(&cm->act);
    elbo_dataset_free(&cm->data);
    elbo_vae_free(&cm->model);
}

const char *cli_class_name(const cli_model *cm, size_t c, char *buf, size_t buflen)
{
    if (cm->data.class_names && c < cm->data.num_classes)
        return cm->data.class_names[c];
    snprintf(buf, buflen, "class %zu", c);
    return buf;
}
