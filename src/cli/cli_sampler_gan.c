/* Samples of a GAN checkpoint: G(z) for z ~ N(0, I), its image shape from the checkpoint. */
#include <stdio.h>
#include <stdlib.h>

#include "cli_sampler.h"
#include "gan.h"

/* The GAN and its activations for CLI_MODEL_BATCH rows. */
typedef struct {
    elbo_gan gan;
    elbo_gan_activations act;
} gan_sampler;

/* Opens a GAN checkpoint with activations for CLI_MODEL_BATCH rows; returns the command's status. */
static int gan_open(cli_sampler *s, const char *command, const char *load, const char *data, int with_data,
                    const elbo_kernels *k)
{
    (void)data;
    (void)with_data;
    char err[512];
    gan_sampler *g = calloc(1, sizeof *g);
    if (!g) {
        fprintf(stderr, "elbo %s: out of memory\n", command);
        return 1;
    }
    s->impl = g;
    if (elbo_gan_load(load, &g->gan, k, NULL, err, sizeof err)) {
        fprintf(stderr, "elbo %s: %s\n", command, err);
        return 2;
    }
    if (elbo_gan_activations_init(&g->act, &g->gan, CLI_MODEL_BATCH)) {
        fprintf(stderr, "elbo %s: out of memory\n", command);
        return 1;
    }
    s->dim = g->gan.cfg.input_dim;
    s->rows = g->gan.cfg.image_rows;
    s->cols = g->gan.cfg.image_cols;
    return 0;
}

/* Samples first .. first + n - 1 as G(z). */
static void gan_draw(cli_sampler *s, size_t first, size_t n, uint64_t seed, float *probs, uint8_t *pixels)
{
    gan_sampler *g = s->impl;
    elbo_gan_sample_pixels(&g->gan, &g->act, first, n, seed, probs, pixels);
}

/* Frees the GAN and its activations. */
static void gan_close(cli_sampler *s)
{
    gan_sampler *g = s->impl;
    if (g) {
        elbo_gan_activations_free(&g->act);
        elbo_gan_free(&g->gan);
        free(g);
    }
    s->impl = NULL;
}

const cli_sampler_kind cli_sampler_gan = {"gan", gan_open, gan_draw, gan_close};
