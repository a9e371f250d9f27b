/* Samples of a diffusion checkpoint: its moving-average weights through the DDPM (default for `elbo sample`) or
 * DDIM sampler, batched over a team of threads, x_0 in [-1, 1] as p = (x_0 + 1) / 2; and the denoising trajectory
 * picture. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "cli_sampler.h"
#include "diffusion.h"
#include "image_grid.h"

/* The model (on its moving average), its activations for CLI_MODEL_BATCH rows, the team (once drawn) and a buffer
 * of CLI_MODEL_BATCH samples in [-1, 1]. */
typedef struct {
    elbo_diffusion model;
    elbo_diffusion_activations act;
    elbo_team team;
    int team_ready;
    float *x;
} diffusion_sampler;

/* Opens a diffusion checkpoint and switches it to its moving average; returns the command's status. */
static int diffusion_open(cli_sampler *s, const char *command, const char *load, const char *data, int with_data,
                          const elbo_kernels *k)
{
    (void)data;
    (void)with_data;
    char err[512];
    diffusion_sampler *g = calloc(1, sizeof *g);
    if (!g) {
        fprintf(stderr, "elbo %s: out of memory\n", command);
        return 1;
    }
    s->impl = g;
    if (elbo_diffusion_load(load, &g->model, k, NULL, err, sizeof err)) {
        fprintf(stderr, "elbo %s: %s\n", command, err);
        return 2;
    }
    elbo_diffusion_use_ema(&g->model);
    g->x = malloc(CLI_MODEL_BATCH * g->model.cfg.input_dim * sizeof *g->x);
    if (!g->x || elbo_diffusion_activations_init(&g->act, &g->model, CLI_MODEL_BATCH)) {
        fprintf(stderr, "elbo %s: out of memory\n", command);
        return 1;
    }
    s->dim = g->model.cfg.input_dim;
    s->rows = g->model.cfg.image_rows;
    s->cols = g->model.cfg.image_cols;
    return 0;
}

/* The team of s->threads threads (or the default), made on first use; 0 or -1 when out of memory. */
static int ready_team(cli_sampler *s, diffusion_sampler *g)
{
    if (g->team_ready)
        return 0;
    size_t nt = s->threads ? s->threads : cli_default_threads(NULL);
    if (elbo_team_init(&g->team, nt, g->model.kern, NULL))
        return -1;
    g->team_ready = 1;
    return 0;
}

/* The sampler of s->method (default DDIM) and its steps (default 50). */
static elbo_sampler_kind method_of(const cli_sampler *s, size_t *steps)
{
    *steps = s->method_steps ? s->method_steps : 50;
    return s->method && !strcmp(s->method, "ddpm") ? ELBO_SAMPLER_DDPM : ELBO_SAMPLER_DDIM;
}

/* Samples first .. first + n - 1 (n <= CLI_MODEL_BATCH). */
static void diffusion_draw(cli_sampler *s, size_t first, size_t n, uint64_t seed, float *probs, uint8_t *pixels)
{
    diffusion_sampler *g = s->impl;
    size_t steps, d = s->dim;
    elbo_sampler_kind kind = method_of(s, &steps);
    if (ready_team(s, g)) {
        fprintf(stderr, "elbo: out of memory allocating the sampler's threads\n");
        exit(1);
    }
    elbo_diffusion_sample(&g->model, &g->act, &g->team, kind, steps, seed, first, n, g->x, NULL, 0);
    for (size_t i = 0; i < n * d; i++) {
        if (probs)
            probs[i] = 0.5f * (g->x[i] + 1.0f);
        if (pixels)
            pixels[i] = elbo_diffusion_gray(g->x[i]);
    }
}

/* Frees the model, its activations and team. */
static void diffusion_close(cli_sampler *s)
{
    diffusion_sampler *g = s->impl;
    if (g) {
        if (g->team_ready)
            elbo_team_free(&g->team);
        elbo_diffusion_activations_free(&g->act);
        elbo_diffusion_free(&g->model);
        free(g->x);
        free(g);
    }
    s->impl = NULL;
}

int cli_sampler_trajectory(cli_sampler *s, const char *command, const char *out, size_t n, size_t n_frames,
                           uint64_t seed)
{
    if (s->kind != &cli_sampler_diffusion) {
        fprintf(stderr, "elbo %s: --trajectory: the denoising of a diffusion model (this is a %s)\n", command,
                s->kind->kind);
        return 2;
    }
    diffusion_sampler *g = s->impl;
    size_t steps, d = s->dim;
    elbo_sampler_kind kind = method_of(s, &steps);
    size_t n_steps = kind == ELBO_SAMPLER_DDPM ? g->model.cfg.T : steps;
    if (n_frames > n_steps + 1)
        n_frames = n_steps + 1;
    float *traj = malloc(n_frames * n * d * sizeof *traj), *probs = malloc(d * sizeof *probs);
    image_grid grid;
    char err[512];
    int status = 0;
    if (!traj || !probs || n > CLI_MODEL_BATCH || ready_team(s, g) || image_grid_init(&grid, n, n_frames, s->rows, s->cols)) {
        fprintf(stderr, "elbo %s: out of memory\n", command);
        free(traj);
        free(probs);
        return 1;
    }
    elbo_diffusion_sample(&g->model, &g->act, &g->team, kind, steps, seed, 0, n, g->x, traj, n_frames);
    for (size_t f = 0; f < n_frames; f++)
        for (size_t i = 0; i < n; i++) {
            const float *x = traj + (f * n + i) * d;
            for (size_t j = 0; j < d; j++) {
                float p = 0.5f * (x[j] + 1.0f);
                probs[j] = p < 0 ? 0 : p > 1 ? 1 : p;
            }
            image_grid_put_probs(&grid, i, f, probs);
        }
    if (image_grid_write_png(&grid, out, err, sizeof err)) {
        fprintf(stderr, "elbo %s: %s\n", command, err);
        status = 1;
    } else {
        printf("wrote %s: the denoising of %zu images, %zu frames x_T ... x_0 (%s, %zu steps)\n", out, n, n_frames,
               kind == ELBO_SAMPLER_DDPM ? "ddpm" : "ddim", n_steps);
    }
    image_grid_free(&grid);
    free(traj);
    free(probs);
    return status;
}

const cli_sampler_kind cli_sampler_diffusion = {"diffusion", diffusion_open, diffusion_draw, diffusion_close};
