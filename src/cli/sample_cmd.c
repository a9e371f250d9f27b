/* `elbo sample`: z ~ N(0, I) through the decoder, as an n x n grid of images. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "args.h"
#include "cli.h"
#include "cli_model.h"
#include "cli_output.h"
#include "image_grid.h"
#include "infer.h"
#include "rng.h"

/* Decodes n*n prior samples (normals of (seed, ELBO_STREAM_SAMPLE, sample index)) into grid g, row by row. */
static int draw_samples(cli_model *cm, image_grid *g, size_t n, uint64_t seed)
{
    size_t z = cm->model.cfg.latent, d = cm->model.cfg.input_dim, count = n * n;
    float *zs = malloc(count * z * sizeof *zs), *probs = malloc(count * d * sizeof *probs);
    if (!zs || !probs) {
        free(zs);
        free(probs);
        return -1;
    }
    for (size_t i = 0; i < count; i++)
        elbo_rng_normals(zs + i * z, z, seed, ELBO_STREAM_SAMPLE, (uint32_t)i, 0);
    elbo_infer_decode(&cm->model, &cm->act, zs, count, probs);
    for (size_t i = 0; i < count; i++)
        image_grid_put_probs(g, i / n, i % n, probs + i * d);
    free(zs);
    free(probs);
    return 0;
}

int cli_sample(int argc, char **argv)
{
    const char *load = NULL, *data = NULL, *out = NULL;
    size_t n = 8;
    uint64_t seed = 1;
    cli_option opts[] = {
        {"load", ARG_STRING, &load, "PATH", "checkpoint (required)", 0, 0, "none", 0, 0},
        {"data", ARG_STRING, &data, "DIR", "dataset giving the image shape: a directory of IDX files, or synthetic:N",
         0, 0, ELBO_DEFAULT_DATA_DIR, 0, 0},
        {"count", ARG_SIZE, &n, "N", "grid side: N x N samples", 1, 64, NULL, 0, 'n'},
        {"seed", ARG_U64, &seed, "S", "seed of the prior samples", 0, 0, NULL, 0, 0},
        {"output", ARG_STRING, &out, "PNG", "output image (required)", 0, 0, "none", 0, 'o'},
    };
    cli_parse_result pr = cli_parse("sample", argc, argv, opts, sizeof opts / sizeof opts[0],
                                    "Draws z ~ N(0, I), decodes it, and writes the decoder means as an N x N grid "
                                    "of grayscale images (PNG).");
    if (pr != CLI_PARSE_OK)
        return pr == CLI_PARSE_HELP ? 0 : 2;
    if (!out) {
        fprintf(stderr, "elbo sample: --output: required (a PNG path)\n");
        return 2;
    }
    if (cli_check_output("sample", "output", out))
        return 2;
    cli_model cm;
    int status = cli_model_open(&cm, "sample", load, data);
    if (status)
        return status;
    image_grid g;
    char err[512];
    if (image_grid_init(&g, n, n, cm.data.test.rows, cm.data.test.cols) || draw_samples(&cm, &g, n, seed)) {
        fprintf(stderr, "elbo sample: out of memory\n");
        status = 1;
    } else if (image_grid_write_png(&g, out, err, sizeof err)) {
        fprintf(stderr, "elbo sample: %s\n", err);
        status = 1;
    } else {
        printf("wrote %s: %zu x %zu samples from N(0, I), %zux%zu pixels\n", out, n, n, g.width, g.height);
    }
    image_grid_free(&g);
    cli_model_close(&cm);
    return status;
}
