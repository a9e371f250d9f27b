/* `elbo anomaly`: scores every test image by reconstruction error and by -ELBO under a model trained on the
 * "normal" classes, and reports how well each score separates the other classes (AUROC, the threshold at a
 * false-positive rate), with the per-image scores as CSV and a histogram of both scores. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "classes.h"
#include "cli.h"
#include "cli_common.h"
#include "cli_model.h"
#include "cli_output.h"
#include "infer.h"
#include "plot_script.h"
#include "roc.h"

/* One score's detection quality. */
typedef struct {
    const char *name;
    double auroc;
    elbo_roc_point at_fpr;
} score_report;

/* Writes index,label,is_normal,recon_error,neg_elbo per test image to path atomically; returns 0 or -1. */
static int write_scores(const char *path, const elbo_split *test, const uint8_t *anomalous, const double *recon,
                        const double *neg_elbo, char *err, size_t errlen)
{
    cli_tmpfile t;
    FILE *f = cli_tmpfile_open(&t, path, err, errlen);
    if (!f)
        return -1;
    fputs("index,label,is_normal,recon_error,neg_elbo\n", f);
    for (size_t i = 0; i < test->n; i++)
        fprintf(f, "%zu,%u,%d,%.9g,%.9g\n", i, test->labels[i], !anomalous[i], recon[i], neg_elbo[i]);
    return cli_tmpfile_commit(&t, f, err, errlen);
}

/* Draws the histogram PNG of both scores from the CSV; returns 0 or -1 (message printed). */
static int plot_histogram(const char *script, const char *csv, const char *png, const score_report r[2],
                          const char *title, double fpr)
{
    char a0[32], a1[32], t0[32], t1[32], f[32];
    snprintf(a0, sizeof a0, "%.6f", r[0].auroc);
    snprintf(a1, sizeof a1, "%.6f", r[1].auroc);
    snprintf(t0, sizeof t0, "%.9g", r[0].at_fpr.threshold);
    snprintf(t1, sizeof t1, "%.9g", r[1].at_fpr.threshold);
    snprintf(f, sizeof f, "%g", fpr);
    const char *args[] = {"histogram", csv, png, "--title", title, "--auroc", a0, a1, "--threshold", t0, t1,
                          "--fpr", f, NULL};
    return plot_script_run("anomaly", script, args);
}

/* Prints the reports: one JSON object, or one line per score. */
static void print_reports(const score_report r[2], size_t n_normal, size_t n_anom, const char *normal, double fpr,
                          int json)
{
    if (json) {
        const char *keys[] = {"auroc_recon_error", "auroc_neg_elbo", "threshold_recon_error", "threshold_neg_elbo",
                              "tpr_recon_error", "tpr_neg_elbo", "fpr_recon_error", "fpr_neg_elbo", "max_fpr",
                              "normal_images", "anomalous_images"};
        double vals[] = {r[0].auroc, r[1].auroc, r[0].at_fpr.threshold, r[1].at_fpr.threshold, r[0].at_fpr.tpr,
                         r[1].at_fpr.tpr, r[0].at_fpr.fpr, r[1].at_fpr.fpr, fpr, (double)n_normal, (double)n_anom};
        cli_print_json_numbers(keys, vals, sizeof vals / sizeof vals[0], "normal_classes", normal);
        return;
    }
    printf("normal classes %s: %zu normal and %zu anomalous test images\n", normal, n_normal, n_anom);
    for (int i = 0; i < 2; i++)
        printf("%-11s AUROC %.4f; threshold %.4f flags %.1f %% of anomalies at %.1f %% false positives (max %g %%)\n",
               r[i].name, r[i].auroc, r[i].at_fpr.threshold, 100 * r[i].at_fpr.tpr, 100 * r[i].at_fpr.fpr,
               100 * fpr);
}

/* The normal classes: --normal if given, else the checkpoint's training classes. Prints the error and returns
 * -1 when neither names a proper subset of the data's classes. */
static int normal_classes(const cli_model *cm, const char *given, const char *load, elbo_class_set *set)
{
    char err[256];
    const char *text = given ? given : cm->state.classes;
    if (!*text) {
        fprintf(stderr, "elbo anomaly: --normal: required: %s was trained on all classes (train with --classes)\n",
                load);
        return -1;
    }
    if (elbo_class_set_parse(set, text, cm->data.num_classes, err, sizeof err)) {
        if (given)
            fprintf(stderr, "elbo anomaly: --normal: %s\n", err);
        else
            fprintf(stderr, "elbo anomaly: %s: __metadata__.classes: %s\n", load, err);
        return -1;
    }
    if (set->count == cm->data.num_classes) {
        fprintf(stderr, "elbo anomaly: --normal: '%s' lists every class of %s; nothing is anomalous\n", text,
                cm->data.name);
        return -1;
    }
    return 0;
}

int cli_anomaly(int argc, char **argv)
{
    const char *load = NULL, *data = NULL, *prefix = NULL, *normal = NULL;
    double fpr = 0.05;
    uint64_t seed = 1;
    int json = 0;
    cli_option opts[] = {
        {"load", ARG_STRING, &load, "PATH", "checkpoint trained on the normal classes (required)", 0, 0, "none", 0, 0},
        {"data", ARG_STRING, &data, "DIR", "dataset: a directory of IDX files, or synthetic:N", 0, 0,
         ELBO_DEFAULT_DATA_DIR, 0, 0},
        {"normal", ARG_STRING, &normal, "C[,C...]", "normal classes", 0, 0, "the checkpoint's training classes", 0, 0},
        {"fpr", ARG_DOUBLE, &fpr, "X", "false-positive rate of the reported threshold", 1e-9, 1, NULL, 0, 0},
        {"seed", ARG_U64, &seed, "N", "seed of the posterior sample of -ELBO", 0, 0, NULL, 0, 0},
        {"output", ARG_STRING, &prefix, "PREFIX", "writes PREFIX-scores.csv and PREFIX-hist.png (required)", 0, 0,
         "none", 0, 'o'},
        {"json", ARG_FLAG, &json, "", "print one JSON object", 0, 0, NULL, 0, 0},
    };
    cli_parse_result pr = cli_parse("anomaly", argc, argv, opts, sizeof opts / sizeof opts[0],
                                    "Scores every test image by reconstruction error (sum of squared pixel errors "
                                    "of the decoded posterior\nmean, pixels in [0, 1]) and by -ELBO (as elbo eval), "
                                    "and reports each score's AUROC for normal against\nanomalous (all other) "
                                    "classes and the threshold at a false-positive rate.");
    if (pr != CLI_PARSE_OK)
        return pr == CLI_PARSE_HELP ? 0 : 2;
    if (!prefix) {
        fprintf(stderr, "elbo anomaly: --output: required (a path prefix)\n");
        return 2;
    }
    char csv[4096], png[4096], script[4096], err[512], names[1024];
    snprintf(csv, sizeof csv, "%s-scores.csv", prefix);
    snprintf(png, sizeof png, "%s-hist.png", prefix);
    if (cli_check_output("anomaly", "output", csv) || plot_script_find("anomaly", script, sizeof script))
        return 2;
    cli_model cm;
    int status = cli_model_open(&cm, "anomaly", load, data);
    if (status)
        return status;
    elbo_class_set set;
    if (normal_classes(&cm, normal, load, &set)) {
        cli_model_close(&cm);
        return 2;
    }
    elbo_class_set_format(&set, names, sizeof names);
    const elbo_split *test = &cm.data.test;
    double *recon = malloc(test->n * sizeof *recon), *neg_elbo = malloc(test->n * sizeof *neg_elbo);
    uint8_t *anomalous = malloc(test->n);
    size_t n_anom = 0;
    score_report r[2] = {{"recon error", 0, {0, 0, 0}}, {"-ELBO", 0, {0, 0, 0}}};
    if (!recon || !neg_elbo || !anomalous) {
        fprintf(stderr, "elbo anomaly: out of memory\n");
        status = 1;
        goto done;
    }
    for (size_t i = 0; i < test->n; i++)
        n_anom += anomalous[i] = !set.member[test->labels[i]];
    if (n_anom == 0 || n_anom == test->n) {
        fprintf(stderr, "elbo anomaly: %s: the test split has no %s images\n", cm.data.name,
                n_anom ? "normal" : "anomalous");
        status = 2;
        goto done;
    }
    elbo_infer_scores(&cm.model, &cm.act, test->pixels, test->n, seed, recon, neg_elbo);
    for (int i = 0; i < 2; i++) {
        const double *s = i ? neg_elbo : recon;
        r[i].auroc = elbo_auroc(s, anomalous, test->n);
        if (!isfinite(r[i].auroc) || elbo_roc_at_fpr(s, anomalous, test->n, fpr, &r[i].at_fpr)) {
            fprintf(stderr, "elbo anomaly: out of memory\n");
            status = 1;
            goto done;
        }
    }
    char title[1400], anomalies[1024] = "", buf[32];
    for (size_t c = 0, used = 0; c < cm.data.num_classes && used + 64 < sizeof anomalies; c++)
        if (!set.member[c])
            used += (size_t)snprintf(anomalies + used, sizeof anomalies - used, "%s%s", used ? ", " : "",
                                     cli_class_name(&cm, c, buf, sizeof buf));
    snprintf(title, sizeof title, "%s: normal classes %s; anomalous: %s", cm.data.name, names, anomalies);
    if (write_scores(csv, test, anomalous, recon, neg_elbo, err, sizeof err)) {
        fprintf(stderr, "elbo anomaly: %s\n", err);
        status = 1;
    } else if (plot_histogram(script, csv, png, r, title, fpr)) {
        unlink(csv);   /* all outputs or none */
        status = 1;
    } else {
        print_reports(r, test->n - n_anom, n_anom, names, fpr, json);
        if (!json)
            printf("wrote %s, %s\n", csv, png);
    }
done:
    free(recon);
    free(neg_elbo);
    free(anomalous);
    cli_model_close(&cm);
    return status;
}
