/* The samples of a generative checkpoint as pixels, whatever its kind: a VAE's decoder means of z ~ N(0, I), or a
 * GAN's G(z). Sample i comes from the normals of (seed, ELBO_STREAM_SAMPLE, i) for either kind, so any chunking
 * gives the same images. */
#ifndef ELBO_CLI_SAMPLER_H
#define ELBO_CLI_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "cli_model.h"
#include "gan.h"

typedef struct {
    int is_gan;
    cli_model vae;              /* the VAE (with its data when opened with data) */
    elbo_gan gan;
    elbo_gan_activations gan_act;
    float *zs;                  /* VAE: (CLI_MODEL_BATCH, Z) */
    size_t dim, rows, cols;     /* pixels per image and the image shape (rows, cols 0: unknown) */
} cli_sampler;

/* Opens the checkpoint `load` of a VAE or a GAN for `command`. A VAE takes its image shape from the dataset `data`
 * (NULL: the default) when with_data, and is checked against it; a GAN's checkpoint holds its shape (data unused).
 * Prints one "elbo CMD: ..." line and returns 2 on bad input (another kind included), 1 when out of memory, 0. */
int cli_sampler_open(cli_sampler *s, const char *command, const char *load, const char *data, int with_data);

/* Samples first .. first + n - 1 (n <= CLI_MODEL_BATCH) into probs (n, dim, in [0, 1]) and, when pixels is not
 * NULL, their gray levels round(255 p). */
void cli_sampler_draw(cli_sampler *s, size_t first, size_t n, uint64_t seed, float *probs, uint8_t *pixels);

/* Frees everything (safe on a zeroed struct). */
void cli_sampler_close(cli_sampler *s);

#endif
