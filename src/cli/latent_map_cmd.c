/* `elbo latent-map`: the test set's posterior means as a CSV and a labelled scatter plot (a 2-D PCA
 * projection when Z > 2), and for Z = 2 the decoded manifold over the N(0, 1) quantiles. When a later output
 * fails, the earlier ones are removed: the command writes all of its files or none. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "cli_model.h"
#include "cli_output.h"
#include "image_grid.h"
#include "infer.h"
#include "plot_script.h"

/* The standard normal quantile of p in (0, 1): bisection on Phi(x) = erfc(-x / sqrt 2) / 2 to double precision. */
static double normal_quantile(double p)
{
    double lo = -40, hi = 40;
    for (int i = 0; i < 200 && hi - lo > 1e-15; i++) {
        double mid = 0.5 * (lo + hi);
        if (0.5 * erfc(-mid / M_SQRT2) < p)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* Writes field s as a CSV field (quoted, with doubled quotes, when it holds a comma or a quote). */
static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* Writes index,label,class,mu_0..mu_{Z-1} for the first n test images to path atomically; returns 0 or -1. */
static int write_latent_csv(const cli_model *cm, const float *mulv, size_t n, const char *path, char *err,
                            size_t errlen)
{
    size_t z = cm->model.cfg.latent;
    cli_tmpfile t;
    FILE *f = cli_tmpfile_open(&t, path, err, errlen);
    if (!f)
        return -1;
    fputs("index,label,class", f);
    for (size_t j = 0; j < z; j++)
        fprintf(f, ",mu_%zu", j);
    fputc('\n', f);
    for (size_t i = 0; i < n; i++) {
        char buf[32];
        fprintf(f, "%zu,%u,", i, cm->data.test.labels[i]);
        csv_field(f, cli_class_name(cm, cm->data.test.labels[i], buf, sizeof buf));
        for (size_t j = 0; j < z; j++)
            fprintf(f, ",%.9g", mulv[i * 2 * z + j]);
        fputc('\n', f);
    }
    return cli_tmpfile_commit(&t, f, err, errlen);
}

/* Decodes the side x side grid of z = (Phi^-1(u_c), Phi^-1(u_r)), u evenly spaced in [0.05, 0.95] (z_1 grows
 * upwards), into a PNG at path. Returns 0 or -1 with a message in err. */
static int write_manifold(cli_model *cm, size_t side, const char *path, char *err, size_t errlen)
{
    size_t d = cm->model.cfg.input_dim, count = side * side;
    float *zs = malloc(count * 2 * sizeof *zs), *probs = malloc(count * d * sizeof *probs);
    image_grid g = {0};
    int rc = -1;
    if (!zs || !probs || image_grid_init(&g, side, side, cm->data.test.rows, cm->data.test.cols)) {
        snprintf(err, errlen, "out of memory");
    } else {
        for (size_t r = 0; r < side; r++)
            for (size_t c = 0; c < side; c++) {
                double ur = 0.05 + 0.9 * (double)(side - 1 - r) / (double)(side - 1);
                double uc = 0.05 + 0.9 * (double)c / (double)(side - 1);
                zs[(r * side + c) * 2] = (float)normal_quantile(uc);
                zs[(r * side + c) * 2 + 1] = (float)normal_quantile(ur);
            }
        elbo_infer_decode(&cm->model, &cm->act, zs, count, probs);
        for (size_t i = 0; i < count; i++)
            image_grid_put_probs(&g, i / side, i % side, probs + i * d);
        rc = image_grid_write_png(&g, path, err, errlen);
    }
    image_grid_free(&g);
    free(zs);
    free(probs);
    return rc;
}

/* Runs the scatter plot of the CSV into png; returns 0 or -1 (message printed). */
static int plot_scatter(const char *script, const char *csv, const char *png, const cli_model *cm)
{
    char title[160];
    snprintf(title, sizeof title, "%s test set: posterior means (Z = %zu%s)", cm->data.name, cm->model.cfg.latent,
             cm->model.cfg.latent > 2 ? ", PCA to 2-D" : "");
    const char *args[] = {"scatter", csv, png, "--title", title, NULL};
    return plot_script_run("latent-map", script, args);
}

int cli_latent_map(int argc, char **argv)
{
    const char *load = NULL, *data = NULL, *prefix = NULL;
    size_t side = 20, count = 0;
    int manifold = 0;
    cli_option opts[] = {
        {"load", ARG_STRING, &load, "PATH", "checkpoint (required)", 0, 0, "none", 0, 0},
        {"data", ARG_STRING, &data, "DIR", "dataset: a directory of IDX files, or synthetic:N", 0, 0,
         ELBO_DEFAULT_DATA_DIR, 0, 0},
        {"count", ARG_SIZE, &count, "N", "test images mapped (0: all)", 0, 0, NULL, 0, 'n'},
        {"grid", ARG_SIZE, &side, "N", "Z = 2: manifold grid side", 2, 64, NULL, 0, 0},
        {"manifold", ARG_FLAG, &manifold, "", "require the manifold grid (an error unless Z = 2)", 0, 0, NULL, 0, 0},
        {"output", ARG_STRING, &prefix, "PREFIX",
         "writes PREFIX-latent.csv, PREFIX-scatter.png and, for Z = 2, PREFIX-manifold.png (required)", 0, 0, "none",
         0, 'o'},
    };
    cli_parse_result pr = cli_parse("latent-map", argc, argv, opts, sizeof opts / sizeof opts[0],
                                    "Maps the test set into latent space: the posterior means (CSV), a scatter "
                                    "plot coloured by class with\nthe class names in a legend (the first two "
                                    "principal components when Z > 2), and for Z = 2 the decoded\nmanifold: an "
                                    "N x N grid of decodings of z at the N(0, 1) quantiles 0.05..0.95.");
    if (pr != CLI_PARSE_OK)
        return pr == CLI_PARSE_HELP ? 0 : 2;
    if (!prefix) {
        fprintf(stderr, "elbo latent-map: --output: required (a path prefix)\n");
        return 2;
    }
    char csv[4096], scatter[4096], grid[4096], script[4096], err[512];
    snprintf(csv, sizeof csv, "%s-latent.csv", prefix);
    snprintf(scatter, sizeof scatter, "%s-scatter.png", prefix);
    snprintf(grid, sizeof grid, "%s-manifold.png", prefix);
    if (cli_check_output("latent-map", "output", csv) || plot_script_find("latent-map", script, sizeof script))
        return 2;
    cli_model cm;
    int status = cli_model_open(&cm, "latent-map", load, data);
    if (status)
        return status;
    size_t z = cm.model.cfg.latent;
    if (z < 2) {
        fprintf(stderr, "elbo latent-map: %s has Z = %zu; a 2-D map needs Z >= 2\n", load, z);
        cli_model_close(&cm);
        return 2;
    }
    if (manifold && z != 2) {
        fprintf(stderr, "elbo latent-map: --manifold: %s has Z = %zu; the manifold grid needs Z = 2\n", load, z);
        cli_model_close(&cm);
        return 2;
    }
    size_t n = count && count < cm.data.test.n ? count : cm.data.test.n;
    float *mulv = malloc(n * 2 * z * sizeof *mulv);
    if (!mulv) {
        fprintf(stderr, "elbo latent-map: out of memory\n");
        status = 1;
    } else {
        elbo_infer_encode(&cm.model, &cm.act, cm.data.test.pixels, n, mulv);
        if (write_latent_csv(&cm, mulv, n, csv, err, sizeof err)) {
            fprintf(stderr, "elbo latent-map: %s\n", err);
            status = 1;
        } else if (plot_scatter(script, csv, scatter, &cm)) {
            unlink(csv);
            status = 1;
        } else if (z == 2 && write_manifold(&cm, side, grid, err, sizeof err)) {
            fprintf(stderr, "elbo latent-map: %s: %s\n", grid, err);
            unlink(csv);
            unlink(scatter);
            status = 1;
        } else {
            printf("wrote %s (%zu test images, Z = %zu), %s%s%s\n", csv, n, z, scatter, z == 2 ? ", " : "",
                   z == 2 ? grid : "");
        }
    }
    free(mulv);
    cli_model_close(&cm);
    return status;
}
