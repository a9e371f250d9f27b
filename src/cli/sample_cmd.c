/* `elbo sample`: z ~ N(0, I) through a VAE's decoder or a GAN's generator, as an n x n grid of images (PNG) or as
 * n images in an IDX file (the input of the scoring commands). Sample i comes from the normals of (seed,
 * ELBO_STREAM_SAMPLE, i) in either format, so the IDX file's first n*n images are the grid's tiles. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "cli_sampler.h"
#include "cli_output.h"
#include "idx.h"
#include "image_grid.h"
#include "infer.h"
#include "rng.h"

#define SAMPLE_GRID_MAX 64        /* largest grid side */
#define SAMPLE_IDX_MAX 1000000    /* most images in one IDX file */

/* Draws n*n samples into grid g, row by row, CLI_MODEL_BATCH at a time. Returns 0, or -1 when out of memory. */
static int draw_grid(cli_sampler *sm, image_grid *g, size_t n, uint64_t seed)
{
    size_t d = sm->dim, count = n * n;
    float *probs = malloc(CLI_MODEL_BATCH * d * sizeof *probs);
    if (!probs)
        return -1;
    for (size_t first = 0; first < count; first += CLI_MODEL_BATCH) {
        size_t m = count - first < CLI_MODEL_BATCH ? count - first : CLI_MODEL_BATCH;
        cli_sampler_draw(sm, first, m, seed, probs, NULL);
        for (size_t i = 0; i < m; i++)
            image_grid_put_probs(g, (first + i) / n, (first + i) % n, probs + i * d);
    }
    free(probs);
    return 0;
}

/* Writes count samples to the IDX file out, decoded CLI_MODEL_BATCH at a time. Prints one line and returns 1
 * on failure (nothing at out changes), 0 when written. */
static int write_idx(cli_sampler *sm, const char *out, size_t count, uint64_t seed)
{
    size_t d = sm->dim, batch = CLI_MODEL_BATCH;
    float *probs = malloc(batch * d * sizeof *probs);
    uint8_t *pix = malloc(batch * d);
    char err[512];
    elbo_idx_writer w;
    int rc = 1;
    if (!probs || !pix) {
        fprintf(stderr, "elbo sample: out of memory\n");
        goto done;
    }
    if (elbo_idx_writer_open(&w, out, count, sm->rows, sm->cols, err, sizeof err) != 0) {
        fprintf(stderr, "elbo sample: %s\n", err);
        goto done;
    }
    for (size_t first = 0; first < count; first += batch) {
        size_t n = count - first < batch ? count - first : batch;
        cli_sampler_draw(sm, first, n, seed, probs, pix);
        if (elbo_idx_writer_put(&w, pix, n, err, sizeof err) != 0) {
            elbo_idx_writer_abort(&w);
            fprintf(stderr, "elbo sample: %s\n", err);
            goto done;
        }
    }
    if (elbo_idx_writer_commit(&w, err, sizeof err) != 0)
        fprintf(stderr, "elbo sample: %s\n", err);
    else
        rc = 0;
done:
    free(probs);
    free(pix);
    return rc;
}

/* Writes the n x n grid as a PNG at out; returns the command's status. */
static int write_png(cli_sampler *sm, const char *out, size_t n, uint64_t seed)
{
    image_grid g;
    char err[512];
    int status = 0;
    if (image_grid_init(&g, n, n, sm->rows, sm->cols) || draw_grid(sm, &g, n, seed)) {
        fprintf(stderr, "elbo sample: out of memory\n");
        status = 1;
    } else if (image_grid_write_png(&g, out, err, sizeof err)) {
        fprintf(stderr, "elbo sample: %s\n", err);
        status = 1;
    } else {
        printf("wrote %s: %zu x %zu samples from N(0, I), %zux%zu pixels\n", out, n, n, g.width, g.height);
    }
    image_grid_free(&g);
    return status;
}

int cli_sample(int argc, char **argv)
{
    const char *load = NULL, *data = NULL, *out = NULL, *format = "png", *method = NULL, *precision = NULL;
    size_t n = 8, sample_steps = 0, threads = 0;
    int trajectory = 0;
    uint64_t seed = 1;
    double temperature = 1.0;
    cli_option opts[] = {
        {"load", ARG_STRING, &load, "PATH", "checkpoint (required)", 0, 0, "none", 0, 0},
        {"data", ARG_STRING, &data, "DIR", "dataset giving the image shape: a directory of IDX files, or synthetic:N",
         0, 0, ELBO_DEFAULT_DATA_DIR, 0, 0},
        {"count", ARG_SIZE, &n, "N", "png: grid side, N x N samples (N <= 64); idx: number of images (N <= 1000000)",
         1, SAMPLE_IDX_MAX, NULL, 0, 'n'},
        {"format", ARG_STRING, &format, "F", "output format: png (an image grid) or idx (uint8 images)", 0, 0, NULL,
         0, 0},
        {"seed", ARG_U64, &seed, "S", "seed of the prior samples", 0, 0, NULL, 0, 0},
        {"temperature", ARG_DOUBLE, &temperature, "T", "flow: z ~ N(0, T^2 I)", 1e-6, 100, "1", 0, 0},
        {"output", ARG_STRING, &out, "FILE", "output file (required)", 0, 0, "none", 0, 'o'},
        {"sampler", ARG_STRING, &method, "ddpm|ddim", "diffusion: ancestral DDPM (T steps) or DDIM (eta 0)", 0, 0,
         "ddpm", 0, 0},
        {"sample-steps", ARG_SIZE, &sample_steps, "S", "diffusion: DDIM's steps, uniformly spaced", 1, 100000, "50", 0,
         0},
        {"trajectory", ARG_FLAG, &trajectory, "",
         "diffusion: a PNG of the denoising of N images, x_T ... x_0 left to right (10 frames)", 0, 0, NULL, 0, 0},
        {"threads", ARG_SIZE, &threads, "N", "diffusion: OpenMP threads (the same images for any N)", 1, 4096,
         "one per physical core, or OMP_NUM_THREADS", 0, 0},
        {"precision", ARG_STRING, &precision, "fp32|bf16",
         "the model's GEMMs: fp32, or bf16 operands with fp32 accumulation", 0, 0, "the checkpoint's", 0, 0},
    };
    cli_parse_result pr = cli_parse("sample", argc, argv, opts, sizeof opts / sizeof opts[0],
                                    "Draws z ~ N(0, I) through a VAE's decoder (its means p) or a GAN's generator "
                                    "(p = G(z)) and writes\ngray levels round(255 p): an N x N grid of images (PNG), "
                                    "or N images in an IDX file. A GAN's\ncheckpoint holds its image shape; a VAE's "
                                    "comes from --data. A flow's samples are the exact inverse of its couplings at "
                                    "z ~ N(0, T^2 I),\nthen floor(256 x) of the inverse logit.");
    if (pr != CLI_PARSE_OK)
        return pr == CLI_PARSE_HELP ? 0 : 2;
    int idx = strcmp(format, "idx") == 0;
    if (!idx && strcmp(format, "png") != 0) {
        fprintf(stderr, "elbo sample: --format: '%s' is not png or idx\n", format);
        return 2;
    }
    if (!idx && n > SAMPLE_GRID_MAX) {
        fprintf(stderr, "elbo sample: --count: '%zu' is out of range [1, %d] for --format png (the grid side)\n", n,
                SAMPLE_GRID_MAX);
        return 2;
    }
    if (!out) {
        fprintf(stderr, "elbo sample: --output: required (a %s path)\n", idx ? "IDX" : "PNG");
        return 2;
    }
    if (cli_check_output("sample", "output", out))
        return 2;
    cli_sampler sm;
    int status = cli_sampler_open_in(&sm, "sample", load, data, 1, precision);
    if (status)
        return status;
    if (temperature != 1.0 && strcmp(sm.kind->kind, "flow") != 0) {
        fprintf(stderr, "elbo sample: --temperature: only a flow's samples take it (%s is a %s)\n", load,
                sm.kind->kind);
        cli_sampler_close(&sm);
        return 2;
    }
    sm.temperature = temperature;
    sm.method = method ? method : "ddpm";
    sm.method_steps = sample_steps;
    sm.threads = threads;
    if ((method || sample_steps) && cli_sampler_check_method(&sm, "sample")) {
        status = 2;
    } else if (trajectory) {
        status = idx ? 2 : cli_sampler_trajectory(&sm, "sample", out, n, 10, seed);
        if (idx)
            fprintf(stderr, "elbo sample: --trajectory: writes a PNG (not with --format idx)\n");
    } else if (!idx) {
        status = write_png(&sm, out, n, seed);
    } else if ((status = write_idx(&sm, out, n, seed)) == 0) {
        printf("wrote %s: %zu samples from N(0, I), %zux%zu pixels each (IDX)\n", out, n, sm.rows, sm.cols);
    }
    cli_sampler_close(&sm);
    return status;
}
