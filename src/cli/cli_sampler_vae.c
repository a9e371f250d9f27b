/* Samples of a VAE checkpoint: the decoder's means of z ~ N(0, I); the image shape from the dataset when opened
 * with data. */
#include <stdio.h>
#include <stdlib.h>

#include "cli_sampler.h"
#include "infer.h"

/* The VAE (with its data when opened with data) and its noise buffer. */
typedef struct {
    cli_model vae;
    float *zs;                  /* (CLI_MODEL_BATCH, Z) */
} vae_sampler;

/* Opens a VAE checkpoint (with its data when with_data) and its noise buffer; returns the command's status. */
static int vae_open(cli_sampler *s, const char *command, const char *load, const char *data, int with_data,
                    const elbo_kernels *k)
{
    char err[512];
    vae_sampler *v = calloc(1, sizeof *v);
    if (!v) {
        fprintf(stderr, "elbo %s: out of memory\n", command);
        return 1;
    }
    s->impl = v;
    cli_model *cm = &v->vae;
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
    v->zs = malloc(CLI_MODEL_BATCH * cm->model.cfg.latent * sizeof *v->zs);
    if (!v->zs) {
        fprintf(stderr, "elbo %s: out of memory\n", command);
        return 1;
    }
    return 0;
}

/* Samples first .. first + n - 1 as the decoder's means. */
static void vae_draw(cli_sampler *s, size_t first, size_t n, uint64_t seed, float *probs, uint8_t *pixels)
{
    vae_sampler *v = s->impl;
    elbo_infer_sample_pixels(&v->vae.model, &v->vae.act, first, n, seed, v->zs, probs, pixels);
}

/* Frees the VAE, its data and the noise buffer. */
static void vae_close(cli_sampler *s)
{
    vae_sampler *v = s->impl;
    if (v) {
        cli_model_close(&v->vae);
        free(v->zs);
        free(v);
    }
    s->impl = NULL;
}

const cli_sampler_kind cli_sampler_vae = {"vae", vae_open, vae_draw, vae_close};
