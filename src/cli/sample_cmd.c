/* `elbo sample`: z ~ N(0, I) through the decoder, as an n x n grid of images (PNG) or as n images in an IDX
 * file (the input of the scoring commands). Sample i is the decoding of the normals of (seed,
 * ELBO_STREAM_SAMPLE, i) in either format, so the IDX file's first n*n images are the grid's tiles. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "cli_model.h"
#include "cli_output.h"
#include "idx.h"
#include "image_grid.h"
#include "infer.h"
#include "rng.h"

#define SAMPLE_GRID_MAX 64        /* largest grid side */
#define SAMPLE_IDX_MAX 1000000    /* most images in one IDX file */

/* Decodes n*n samples into grid g, row by row. Returns 0, or -1 when out of memory. */
static int draw_grid(cli_model *cm, image_grid *g, size_t n, uint64_t seed)
{
    size_t z = cm->model.cfg.latent, d = cm->model.cfg.input_dim, count = n * n;
    float *zs = malloc(count * z * sizeof *zs), *probs = malloc(count * d * sizeof *probs);
    int rc = zs && probs ? 0 : -1;
    if (rc == 0) {
        elbo_infer_sample_pixels(&cm->model, &cm->act, 0, count, seed, zs, probs, NULL);
        for (size_t i = 0; i < count; i++)
            image_grid_put_probs(g, i / n, i % n, probs + i * d);
    }
    free(zs);
    free(probs);
    return rc;
}

/* Writes count samples to the IDX file out, decoded CLI_MODEL_BATCH at a time. Prints one line and returns 1
 * on failure (nothing at out changes), 0 when written. */
static int write_idx(cli_model *cm, const char *out, size_t count, uint64_t seed)
{
    size_t z = cm->model.cfg.latent, d = cm->model.cfg.input_dim, batch = CLI_MODEL_BATCH;
    float *zs = malloc(batch * z * sizeof *zs), *probs = malloc(batch * d * sizeof *probs);
    uint8_t *pix = malloc(batch * d);
    char err[512];
    elbo_idx_writer w;
    int rc = 1;
    if (!zs || !probs || !pix) {
        fprintf(stderr, "elbo sample: out of memory\n");
        goto done;
    }
    if (elbo_idx_writer_open(&w, out, count, cm->data.test.rows, cm->data.test.cols, err, sizeof err) != 0) {
        fprintf(stderr, "elbo sample: %s\n", err);
        goto done;
    }
    for (size_t first = 0; first < count; first += batch) {
        size_t n = count - first < batch ? count - first : batch;
        elbo_infer_sample_pixels(&cm->model, &cm->act, first, n, seed, zs, probs, pix);
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
    free(zs);
    free(probs);
    free(pix);
    return rc;
}

/* Writes the n x n grid as a PNG at out; returns the command's status. */
static int write_png(cli_model *cm, const char *out, size_t n, uint64_t seed)
{
    image_grid g;
    char err[512];
    int status = 0;
    if (image_grid_init(&g, n, n, cm->data.test.rows, cm->data.test.cols) || draw_grid(cm, &g, n, seed)) {
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
    const char *load = NULL, *data = NULL, *out = NULL, *format = "png";
    size_t n = 8;
    uint64_t seed = 1;
    cli_option opts[] = {
        {"load", ARG_STRING, &load, "PATH", "checkpoint (required)", 0, 0, "none", 0, 0},
        {"data", ARG_STRING, &data, "DIR", "dataset giving the image shape: a directory of IDX files, or synthetic:N",
         0, 0, ELBO_DEFAULT_DATA_DIR, 0, 0},
        {"count", ARG_SIZE, &n, "N", "png: grid side, N x N samples (N <= 64); idx: number of images (N <= 1000000)",
         1, SAMPLE_IDX_MAX, NULL, 0, 'n'},
        {"format", ARG_STRING, &format, "F", "output format: png (an image grid) or idx (uint8 images)", 0, 0, NULL,
         0, 0},
        {"seed", ARG_U64, &seed, "S", "seed of the prior samples", 0, 0, NULL, 0, 0},
        {"output", ARG_STRING, &out, "FILE", "output file (required)", 0, 0, "none", 0, 'o'},
    };
    cli_parse_result pr = cli_parse("sample", argc, argv, opts, sizeof opts / sizeof opts[0],
                                    "Draws z ~ N(0, I), decodes it, and writes the decoder means p as gray levels "
                                    "round(255 p): an N x N grid of images (PNG), or N images in an IDX file.");
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
    cli_model cm;
    int status = cli_model_open(&cm, "sample", load, data);
    if (status)
        return status;
    if (!idx) {
        status = write_png(&cm, out, n, seed);
    } else if ((status = write_idx(&cm, out, n, seed)) == 0) {
        printf("wrote %s: %zu samples from N(0, I), %zux%zu pixels each (IDX)\n", out, n, cm.data.test.rows,
               cm.data.test.cols);
    }
    cli_model_close(&cm);
    return status;
}
