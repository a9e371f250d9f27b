/* The samples of a generative checkpoint as pixels, whatever its kind, through one table of sampler kinds (one file
 * each: cli_sampler_vae.c, cli_sampler_gan.c): a VAE's decoder means of z ~ N(0, I), a GAN's G(z). Sample i comes
 * from the normals of (seed, ELBO_STREAM_SAMPLE, i), so any chunking gives the same images. */
#ifndef ELBO_CLI_SAMPLER_H
#define ELBO_CLI_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "cli_model.h"
#include "kernels.h"

typedef struct cli_sampler cli_sampler;

/* How one model kind draws samples. */
typedef struct {
    const char *kind;           /* the checkpoint's __metadata__.model */
    /* Opens the checkpoint load for command (see cli_sampler_open) and sets s->impl, dim, rows, cols; returns the
     * command's status (2 bad input, 1 out of memory, 0) after printing one line. */
    int (*open)(cli_sampler *s, const char *command, const char *load, const char *data, int with_data,
                const elbo_kernels *k);
    /* As cli_sampler_draw. */
    void (*draw)(cli_sampler *s, size_t first, size_t n, uint64_t seed, float *probs, uint8_t *pixels);
    /* Frees s->impl and what it holds (safe when open failed half-way). */
    void (*close)(cli_sampler *s);
} cli_sampler_kind;

struct cli_sampler {
    const cli_sampler_kind *kind;
    void *impl;                 /* the kind's own state */
    size_t dim, rows, cols;     /* pixels per image and the image shape (rows, cols 0: unknown) */
    /* Set by the caller after cli_sampler_open, for a kind of several sampling methods (the diffusion model's ddpm
     * and ddim): the method (NULL: the kind's default), its number of steps (0: its default), the threads (0: one
     * per physical core, or OMP_NUM_THREADS). */
    const char *method;
    size_t method_steps, threads;
    double temperature;         /* a flow's z ~ N(0, T^2 I) (0: 1); set after opening */
};

extern const cli_sampler_kind cli_sampler_vae, cli_sampler_gan, cli_sampler_flow, cli_sampler_diffusion;

/* 0 when method names a sampling method of s's kind (NULL: any kind's default), else -1 after one "elbo CMD: --sampler"
 * line naming the kind's methods. */
int cli_sampler_check_method(const cli_sampler *s, const char *command);

/* A diffusion checkpoint's denoising of n images as frames x_T ... x_0 (n_frames of them, image i's frames on row i)
 * into a PNG at out; prints one line and returns the command's status (2 when s is not a diffusion model). */
int cli_sampler_trajectory(cli_sampler *s, const char *command, const char *out, size_t n, size_t n_frames,
                           uint64_t seed);

/* Opens the generative checkpoint `load` for `command`. A VAE takes its image shape from the dataset `data` (NULL:
 * the default) when with_data, and is checked against it; other kinds' checkpoints hold their shape (data unused).
 * Prints one "elbo CMD: ..." line and returns 2 on bad input (a kind that does not sample included), 1 when out of
 * memory, 0. */
int cli_sampler_open(cli_sampler *s, const char *command, const char *load, const char *data, int with_data);
/* As cli_sampler_open in the precision named by `precision` ("fp32", "bf16"; NULL: the checkpoint's). */
int cli_sampler_open_in(cli_sampler *s, const char *command, const char *load, const char *data, int with_data,
                        const char *precision);

/* Samples first .. first + n - 1 (n <= CLI_MODEL_BATCH) into probs (n, dim, in [0, 1]) and, when pixels is not
 * NULL, their gray levels round(255 p). */
void cli_sampler_draw(cli_sampler *s, size_t first, size_t n, uint64_t seed, float *probs, uint8_t *pixels);

/* Frees everything (safe on a zeroed struct). */
void cli_sampler_close(cli_sampler *s);

#endif
