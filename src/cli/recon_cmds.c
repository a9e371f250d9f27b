/* `elbo reconstruct` (test images over their reconstructions) and `elbo interpolate` (a path in latent
 * space between two test images). Reconstructions decode the posterior mean. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "cli_model.h"
#include "cli_output.h"
#include "image_grid.h"
#include "infer.h"

/* Posterior means (n, Z) of test images first..first+n-1; NULL when out of memory. */
static float *test_means(cli_model *cm, size_t first, size_t n)
{
    size_t z = cm->model.cfg.latent, d = cm->model.cfg.input_dim;
    float *mulv = malloc(n * 2 * z * sizeof *mulv), *mu = malloc(n * z * sizeof *mu);
    if (mulv && mu) {
        elbo_infer_encode(&cm->model, &cm->act, cm->data.test.pixels + first * d, n, mulv);
        for (size_t i = 0; i < n; i++)
            memcpy(mu + i * z, mulv + i * 2 * z, z * sizeof *mu);
    }
    free(mulv);
    if (!mulv) {
        free(mu);
        return NULL;
    }
    return mu;
}

/* Writes grid g to out and reports; returns the exit status. */
static int finish_grid(const char *command, const image_grid *g, const char *out, const char *what)
{
    char err[512];
    if (image_grid_write_png(g, out, err, sizeof err)) {
        fprintf(stderr, "elbo %s: %s\n", command, err);
        return 1;
    }
    printf("wrote %s: %s, %zux%zu pixels\n", out, what, g->width, g->height);
    return 0;
}

/* Checks that a test image index exists; prints the error and returns -1 when not. */
static int check_index(const char *command, const char *option, size_t i, const cli_model *cm)
{
    if (i < cm->data.test.n)
        return 0;
    fprintf(stderr, "elbo %s: --%s: %zu is not a test image of %s (0..%zu)\n", command, option, i, cm->data.name,
            cm->data.test.n - 1);
    return -1;
}

int cli_reconstruct(int argc, char **argv)
{
    const char *load = NULL, *data = NULL, *out = NULL;
    size_t n = 8, first = 0;
    cli_option opts[] = {
        {"load", ARG_STRING, &load, "PATH", "checkpoint (required)", 0, 0, "none", 0, 0},
        {"data", ARG_STRING, &data, "DIR", "dataset: a directory of IDX files, or synthetic:N", 0, 0,
         ELBO_DEFAULT_DATA_DIR, 0, 0},
        {"count", ARG_SIZE, &n, "N", "test images shown", 1, 64, NULL, 0, 'n'},
        {"first", ARG_SIZE, &first, "I", "index of the first test image", 0, 0, NULL, 0, 0},
        {"output", ARG_STRING, &out, "PNG", "output image (required)", 0, 0, "none", 0, 'o'},
    };
    cli_parse_result pr = cli_parse("reconstruct", argc, argv, opts, sizeof opts / sizeof opts[0],
                                    "Writes N test images in one row and their reconstructions (the decoder of the "
                                    "posterior mean) in the row under them (PNG).");
    if (pr != CLI_PARSE_OK)
        return pr == CLI_PARSE_HELP ? 0 : 2;
    if (!out) {
        fprintf(stderr, "elbo reconstruct: --output: required (a PNG path)\n");
        return 2;
    }
    if (cli_check_output("reconstruct", "output", out))
        return 2;
    cli_model cm;
    int status = cli_model_open(&cm, "reconstruct", load, data);
    if (status)
        return status;
    if (check_index("reconstruct", "first", first, &cm) || check_index("reconstruct", "count", first + n - 1, &cm)) {
        cli_model_close(&cm);
        return 2;
    }
    size_t d = cm.model.cfg.input_dim;
    float *mu = test_means(&cm, first, n), *probs = malloc(n * d * sizeof *probs);
    image_grid g = {0};
    if (!mu || !probs || image_grid_init(&g, 2, n, cm.data.test.rows, cm.data.test.cols)) {
        fprintf(stderr, "elbo reconstruct: out of memory\n");
        status = 1;
    } else {
        elbo_infer_decode(&cm.model, &cm.act, mu, n, probs);
        for (size_t i = 0; i < n; i++) {
            image_grid_put_pixels(&g, 0, i, cm.data.test.pixels + (first + i) * d);
            image_grid_put_probs(&g, 1, i, probs + i * d);
        }
        status = finish_grid("reconstruct", &g, out, "test images (top) and reconstructions (bottom)");
    }
    image_grid_free(&g);
    free(mu);
    free(probs);
    cli_model_close(&cm);
    return status;
}

/* out (Z) = the point at t in [0, 1] on the path from a to b (Z each): linear (1-t) a + t b, or spherical
 * sin((1-t) w)/sin(w) a + sin(t w)/sin(w) b with w the angle between a and b (linear when w is tiny).
 * Both give exactly a at t = 0 and b at t = 1. */
static void path_point(float *out, const float *a, const float *b, size_t z, double t, int slerp)
{
    double wa = 1.0 - t, wb = t;
    if (slerp) {
        double ab = 0, aa = 0, bb = 0;
        for (size_t j = 0; j < z; j++) {
            ab += (double)a[j] * b[j];
            aa += (double)a[j] * a[j];
            bb += (double)b[j] * b[j];
        }
        double c = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 1.0;
        double w = acos(c < -1 ? -1 : c > 1 ? 1 : c);
        if (sin(w) > 1e-6) {
            wa = sin((1.0 - t) * w) / sin(w);
            wb = sin(t * w) / sin(w);
        }
    }
    for (size_t j = 0; j < z; j++)
        out[j] = (float)(wa * a[j] + wb * b[j]);
}

int cli_interpolate(int argc, char **argv)
{
    const char *load = NULL, *data = NULL, *out = NULL;
    size_t from = 0, to = 1, steps = 10;
    int slerp = 0;
    cli_option opts[] = {
        {"load", ARG_STRING, &load, "PATH", "checkpoint (required)", 0, 0, "none", 0, 0},
        {"data", ARG_STRING, &data, "DIR", "dataset: a directory of IDX files, or synthetic:N", 0, 0,
         ELBO_DEFAULT_DATA_DIR, 0, 0},
        {"from", ARG_SIZE, &from, "I", "test image at the start", 0, 0, NULL, 0, 0},
        {"to", ARG_SIZE, &to, "J", "test image at the end", 0, 0, NULL, 0, 0},
        {"steps", ARG_SIZE, &steps, "K", "images along the path, both ends included", 2, 256, NULL, 0, 0},
        {"slerp", ARG_FLAG, &slerp, "", "spherical instead of linear interpolation", 0, 0, NULL, 0, 0},
        {"output", ARG_STRING, &out, "PNG", "output image strip (required)", 0, 0, "none", 0, 'o'},
    };
    cli_parse_result pr = cli_parse("interpolate", argc, argv, opts, sizeof opts / sizeof opts[0],
                                    "Decodes K points on the path between the posterior means of two test images "
                                    "(t = 0, 1/(K-1), ..., 1)\nand writes them as one strip (PNG); the ends are the "
                                    "two images' reconstructions.");
    if (pr != CLI_PARSE_OK)
        return pr == CLI_PARSE_HELP ? 0 : 2;
    if (!out) {
        fprintf(stderr, "elbo interpolate: --output: required (a PNG path)\n");
        return 2;
    }
    if (cli_check_output("interpolate", "output", out))
        return 2;
    cli_model cm;
    int status = cli_model_open(&cm, "interpolate", load, data);
    if (status)
        return status;
    if (check_index("interpolate", "from", from, &cm) || check_index("interpolate", "to", to, &cm)) {
        cli_model_close(&cm);
        return 2;
    }
    size_t z = cm.model.cfg.latent, d = cm.model.cfg.input_dim;
    float *a = test_means(&cm, from, 1), *b = test_means(&cm, to, 1);
    float *path = malloc(steps * z * sizeof *path), *probs = malloc(steps * d * sizeof *probs);
    image_grid g = {0};
    if (!a || !b || !path || !probs || image_grid_init(&g, 1, steps, cm.data.test.rows, cm.data.test.cols)) {
        fprintf(stderr, "elbo interpolate: out of memory\n");
        status = 1;
    } else {
        for (size_t s = 0; s < steps; s++)
            path_point(path + s * z, a, b, z, s == steps - 1 ? 1.0 : (double)s / (double)(steps - 1), slerp);
        elbo_infer_decode(&cm.model, &cm.act, path, steps, probs);
        for (size_t s = 0; s < steps; s++)
            image_grid_put_probs(&g, 0, s, probs + s * d);
        char what[128];
        snprintf(what, sizeof what, "%s path from test image %zu to %zu in %zu steps", slerp ? "spherical" : "linear",
                 from, to, steps);
        status = finish_grid("interpolate", &g, out, what);
    }
    image_grid_free(&g);
    free(a);
    free(b);
    free(path);
    free(probs);
    cli_model_close(&cm);
    return status;
}
