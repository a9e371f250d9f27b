/* The samples of a VAE or GAN checkpoint as pixels. */
#include "cli_sampler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "infer.h"

/* Opens a GAN checkpoint with activations for CLI_MODEL_BATCH rows; returns the command's status. */
static int open_gan(cli_sampler *s, const char *command, const char *load, const elbo_kernels *k)
{
    char err[512];
    if (elbo_gan_load(load, &s->gan, k, NULL, err, sizeof err)) {
        fprintf(stderr, "elbo %s: %s\n", command, err);
        return 2;
    }
    s->is_gan = 1;
    if (elbo_gan_activations_init(&s->gan_act, &s->gan, CLI_MODEL_BATCH)) {
        fprintf(stderr, "elbo %s: out of memory\n", command);
        return 1;
    }
    s->dim = s->gan.cfg.input_dim;
    s->rows = s->gan.cfg.image_rows;
    s->cols = s->gan.cfg.image_cols;
    return 0;
}

/* Opens a VAE checkpoint (with its data when with_data) and its noise buffer; returns the command's status. */
static int open_vae(cli_sampler *s, const char *command, const char *load, const char *data, int with_data,
                    const elbo_kernels *k)
{
    char err[512];
    cli_model *cm = &s->vae;
    if (with_data) {
        int status = cli_model_open(cm, command, load, data);
        if (status)
            return status;
        s->rows = cm->data.test.rows;
        s->cols = cm->data.test.cols;
    } else {
        if (elbo_checkpoint_load(load, &cm->model, k, NULL, err, sizeof err)) {
            fprintf(stderr, "elbo %s: %s\n", command, err);
            return 2;
        }
        if (elbo_vae_activations_init(&cm->act, &cm->model, CLI_MODEL_BATCH)) {
            fprintf(stderr, "elbo %s: out of memory\n", command);
            return 1;
        }
    }
    s->dim = cm->model.cfg.input_dim;
    s->zs = malloc(CLI_MODEL_BATCH * cm->model.cfg.latent * sizeof *s->zs);
    if (!s->zs) {
        fprintf(stderr, "elbo %s: out of memory\n", command);
        return 1;
    }
    return 0;
}

int cli_sampler_open(cli_sampler *s, const char *command, const char *load, const char *data, int with_data)
{
    char err[512], kind[32];
    memset(s, 0, sizeof *s);
    if (!load) {
        fprintf(stderr, "elbo %s: --load: required (a checkpoint written by elbo train --save)\n", command);
        return 2;
    }
    const elbo_kernels *k = cli_kernels(command);
    if (!k)
        return 2;
    if (elbo_checkpoint_model_kind(load, kind, sizeof kind, err, sizeof err)) {
        fprintf(stderr, "elbo %s: %s\n", command, err);
        return 2;
    }
    int status;
    if (strcmp(kind, "gan") == 0)
        status = open_gan(s, command, load, k);
    else if (strcmp(kind, "vae") == 0)
        status = open_vae(s, command, load, data, with_data, k);
    else {
        fprintf(stderr, "elbo %s: %s: __metadata__.model: '%.32s' is not a vae checkpoint or a gan checkpoint (%s "
                        "takes either)\n", command, load, kind, command);
        status = 2;
    }
    if (status)
        cli_sampler_close(s);
    return status;
}

void cli_sampler_draw(cli_sampler *s, size_t first, size_t n, uint64_t seed, float *probs, uint8_t *pixels)
{
    if (s->is_gan)
        elbo_gan_sample_pixels(&s->gan, &s->gan_act, first, n, seed, probs, pixels);
    else
        elbo_infer_sample_pixels(&s->vae.model, &s->vae.act, first, n, seed, s->zs, probs, pixels);
}

void cli_sampler_close(cli_sampler *s)
{
    elbo_gan_activations_free(&s->gan_act);
    elbo_gan_free(&s->gan);
    cli_model_close(&s->vae);
    free(s->zs);
    memset(s, 0, sizeof *s);
}
