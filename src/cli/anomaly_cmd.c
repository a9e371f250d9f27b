/* `elbo anomaly`: scores every test image under a model trained on the "normal" classes — a VAE by reconstruction
 * error and by -ELBO, a flow by its exact -log p in bits per dimension, or a VAE with a flow beside it (--flow) by
 * all three — and reports how well each score separates the other classes (AUROC, the threshold at a false-positive
 * rate; per held-out class too when several are held out), with the per-image scores as CSV and a histogram of each
 * score. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "checkpoint.h"
#include "classes.h"
#include "cli.h"
#include "cli_common.h"
#include "cli_model.h"
#include "cli_output.h"
#include "eval_flow.h"
#include "flow.h"
#include "infer.h"
#include "plot_script.h"
#include "roc.h"

#define MAX_SCORES 3

/* One score's values over the test images and its detection quality. */
typedef struct {
    const char *name;     /* as printed, 11 wide: "recon error", "-ELBO", "flow -log p" */
    const char *key;      /* the CSV column and the JSON keys' suffix */
    double *s;            /* (n) per test image; higher is more anomalous */
    double auroc;
    elbo_roc_point at_fpr;
} score_report;

/* The models being scored and the data they are scored on. */
typedef struct {
    int have_vae, have_flow;
    cli_model cm;                  /* the VAE and its dataset (have_vae) */
    elbo_flow flow;                /* (have_flow) */
    elbo_train_state flow_state;
    elbo_dataset own;              /* the dataset when there is no VAE */
    const elbo_dataset *data;
    const char *classes;           /* the training classes of --load */
} anomaly_models;

/* Writes index,label,is_normal and each score's column per test image to path atomically; returns 0 or -1. */
static int write_scores(const char *path, const elbo_split *test, const uint8_t *anomalous, const score_report *r,
                        size_t n_scores, char *err, size_t errlen)
{
    cli_tmpfile t;
    FILE *f = cli_tmpfile_open(&t, path, err, errlen);
    if (!f)
        return -1;
    fputs("index,label,is_normal", f);
    for (size_t k = 0; k < n_scores; k++)
        fprintf(f, ",%s", r[k].key);
    fputc('\n', f);
    for (size_t i = 0; i < test->n; i++) {
        fprintf(f, "%zu,%u,%d", i, test->labels[i], !anomalous[i]);
        for (size_t k = 0; k < n_scores; k++)
            fprintf(f, ",%.9g", r[k].s[i]);
        fputc('\n', f);
    }
    return cli_tmpfile_commit(&t, f, err, errlen);
}

/* Draws the histogram PNG of every score from the CSV; returns 0 or -1 (message printed). */
static int plot_histogram(const char *script, const char *csv, const char *png, const score_report *r,
                          size_t n_scores, const char *title, double fpr)
{
    char a[MAX_SCORES][32], t[MAX_SCORES][32], f[32];
    const char *args[14 + 2 * MAX_SCORES];
    size_t n = 0;
    args[n++] = "histogram";
    args[n++] = csv;
    args[n++] = png;
    args[n++] = "--title";
    args[n++] = title;
    args[n++] = "--auroc";
    for (size_t k = 0; k < n_scores; k++) {
        snprintf(a[k], sizeof a[k], "%.6f", r[k].auroc);
        args[n++] = a[k];
    }
    args[n++] = "--threshold";
    for (size_t k = 0; k < n_scores; k++) {
        snprintf(t[k], sizeof t[k], "%.9g", r[k].at_fpr.threshold);
        args[n++] = t[k];
    }
    snprintf(f, sizeof f, "%g", fpr);
    args[n++] = "--fpr";
    args[n++] = f;
    args[n] = NULL;
    return plot_script_run("anomaly", script, args);
}

/* The mean of score s over the test images whose anomalous flag is `which`. */
static double mean_where(const double *s, const uint8_t *anomalous, size_t n, int which)
{
    double sum = 0;
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (anomalous[i] == which) {
            sum += s[i];
            count++;
        }
    return count ? sum / (double)count : NAN;
}

/* AUROC of score s for held-out class c alone against the normal images (sub_s, sub_a: n scratch). */
static double class_auroc(const double *s, const elbo_split *test, const uint8_t *anomalous, unsigned c,
                          double *sub_s, uint8_t *sub_a)
{
    size_t m = 0;
    for (size_t i = 0; i < test->n; i++)
        if (!anomalous[i] || test->labels[i] == c) {
            sub_s[m] = s[i];
            sub_a[m++] = anomalous[i];
        }
    return elbo_auroc(sub_s, sub_a, m);
}

/* The name of class c of data ("class N" when it has no names). */
static const char *class_name(const elbo_dataset *data, size_t c, char *buf, size_t buflen)
{
    if (data->class_names && c < data->num_classes)
        return data->class_names[c];
    snprintf(buf, buflen, "class %zu", c);
    return buf;
}

/* Prints the reports: one JSON object, or one line per score, the flow's mean bits/dim on each side, and per held-out
 * class when several are held out (class_auc: (classes, n_scores), NAN for the normal classes). */
static void print_reports(const score_report *r, size_t n_scores, const anomaly_models *am, const uint8_t *anomalous,
                          const elbo_class_set *set, const double *class_auc, size_t samples, const char *normal,
                          double fpr, int json)
{
    const elbo_split *test = &am->data->test;
    size_t n_anom = 0, held_out = 0;
    for (size_t i = 0; i < test->n; i++)
        n_anom += anomalous[i];
    for (size_t c = 0; c < am->data->num_classes; c++)
        held_out += !set->member[c];
    const score_report *flow = am->have_flow ? &r[n_scores - 1] : NULL;
    double flow_normal = flow ? mean_where(flow->s, anomalous, test->n, 0) : 0;
    double flow_anom = flow ? mean_where(flow->s, anomalous, test->n, 1) : 0;
    if (json) {
        enum { MAX_KEYS = 4 * MAX_SCORES + 6 + 256 * MAX_SCORES };
        static char names[MAX_KEYS][64];
        const char *keys[MAX_KEYS];
        double vals[MAX_KEYS];
        size_t n = 0;
        static const char *const what[] = {"auroc", "threshold", "tpr", "fpr"};
        for (size_t w = 0; w < 4; w++)
            for (size_t k = 0; k < n_scores; k++, n++) {
                snprintf(names[n], sizeof names[n], "%s_%s", what[w], r[k].key);
                vals[n] = w == 0 ? r[k].auroc : w == 1 ? r[k].at_fpr.threshold : w == 2 ? r[k].at_fpr.tpr
                                                                                        : r[k].at_fpr.fpr;
            }
        const char *fixed[] = {"max_fpr", "normal_images", "anomalous_images", "mean_flow_bits_per_dim_normal",
                               "mean_flow_bits_per_dim_anomalous", "dequant_samples"};
        double fixed_vals[] = {fpr, (double)(test->n - n_anom), (double)n_anom, flow_normal, flow_anom,
                               (double)samples};
        for (size_t i = 0; i < (flow ? 6u : 3u); i++, n++) {
            snprintf(names[n], sizeof names[n], "%s", fixed[i]);
            vals[n] = fixed_vals[i];
        }
        for (size_t c = 0; held_out > 1 && c < am->data->num_classes && c < 256; c++)
            for (size_t k = 0; !set->member[c] && k < n_scores; k++, n++) {
                snprintf(names[n], sizeof names[n], "auroc_%s_class_%zu", r[k].key, c);
                vals[n] = class_auc[c * n_scores + k];
            }
        for (size_t i = 0; i < n; i++)
            keys[i] = names[i];
        cli_print_json_numbers(keys, vals, n, "normal_classes", normal);
        return;
    }
    printf("normal classes %s: %zu normal and %zu anomalous test images\n", normal, test->n - n_anom, n_anom);
    for (size_t k = 0; k < n_scores; k++)
        printf("%-11s AUROC %.4f; threshold %.4f flags %.1f %% of anomalies at %.1f %% false positives (max %g %%)\n",
               r[k].name, r[k].auroc, r[k].at_fpr.threshold, 100 * r[k].at_fpr.tpr, 100 * r[k].at_fpr.fpr, 100 * fpr);
    if (flow)
        printf("flow bits/dim (%zu dequantization draw%s): normal images %.4f, anomalous %.4f on average%s\n", samples,
               samples == 1 ? "" : "s, log-mean-exp", flow_normal, flow_anom,
               flow_anom < flow_normal ? " (the flow rates the anomalies MORE likely)" : "");
    for (size_t c = 0; held_out > 1 && c < am->data->num_classes; c++) {
        char buf[32];
        if (set->member[c])
            continue;
        printf("held out %s (%zu): AUROC", class_name(am->data, c, buf, sizeof buf), c);
        for (size_t k = 0; k < n_scores; k++)
            printf("%s %s %.4f", k ? "," : "", r[k].name, class_auc[c * n_scores + k]);
        printf("\n");
    }
}

/* The normal classes: --normal if given, else the --load checkpoint's training classes (with a flow beside a VAE,
 * both must have been trained on the same). Prints the error and returns -1 when they name no proper subset of the
 * data's classes. */
static int normal_classes(const anomaly_models *am, const char *given, const char *load, const char *flow_path,
                          elbo_class_set *set)
{
    char err[256];
    const char *text = given ? given : am->classes;
    if (!given && am->have_vae && am->have_flow && strcmp(am->classes, am->flow_state.classes) != 0) {
        fprintf(stderr, "elbo anomaly: --flow: %s was trained on classes %s but %s on %s; give --normal to score "
                "both against one split\n", flow_path, *am->flow_state.classes ? am->flow_state.classes : "all", load,
                *am->classes ? am->classes : "all");
        return -1;
    }
    if (!*text) {
        fprintf(stderr, "elbo anomaly: --normal: required: %s was trained on all classes (train with --classes)\n",
                load);
        return -1;
    }
    if (elbo_class_set_parse(set, text, am->data->num_classes, err, sizeof err)) {
        if (given)
            fprintf(stderr, "elbo anomaly: --normal: %s\n", err);
        else
            fprintf(stderr, "elbo anomaly: %s: __metadata__.classes: %s\n", load, err);
        return -1;
    }
    if (set->count == am->data->num_classes) {
        fprintf(stderr, "elbo anomaly: --normal: '%s' lists every class of %s; nothing is anomalous\n", text,
                am->data->name);
        return -1;
    }
    return 0;
}

/* Loads the flow at path (flag: the option that named it) into am and checks it against am->data; prints the error
 * and returns 2 on bad input. */
static int open_flow(anomaly_models *am, const char *path, const char *flag, const elbo_kernels *k)
{
    char err[512];
    if (elbo_flow_load(path, &am->flow, k, &am->flow_state, err, sizeof err)) {
        fprintf(stderr, "elbo anomaly: %s: %s\n", flag, err);
        return 2;
    }
    am->have_flow = 1;
    if (am->data->test.rows != am->flow.cfg.image_rows || am->data->test.cols != am->flow.cfg.image_cols) {
        fprintf(stderr, "elbo anomaly: %s: images of %zux%zu pixels, but %s has image_rows %zu and image_cols %zu\n",
                am->data->name, am->data->test.rows, am->data->test.cols, path, am->flow.cfg.image_rows,
                am->flow.cfg.image_cols);
        return 2;
    }
    return 0;
}

/* Frees everything open_models allocated. */
static void close_models(anomaly_models *am)
{
    if (am->have_vae)
        cli_model_close(&am->cm);
    if (am->have_flow)
        elbo_flow_free(&am->flow);
    elbo_dataset_free(&am->own);
}

/* Opens --load (a VAE or a flow), the flow beside a VAE (--flow, may be NULL) and the data; prints one line and
 * returns 2 on bad input, 1 when out of memory, 0 when ready. */
static int open_models(anomaly_models *am, const char *load, const char *flow_path, const char *data)
{
    char err[512], kind[32];
    memset(am, 0, sizeof *am);
    if (!load) {
        fprintf(stderr, "elbo anomaly: --load: required (a checkpoint written by elbo train --save)\n");
        return 2;
    }
    if (elbo_checkpoint_model_kind(load, kind, sizeof kind, err, sizeof err)) {
        fprintf(stderr, "elbo anomaly: %s\n", err);
        return 2;
    }
    if (strcmp(kind, "vae") == 0) {
        int status = cli_model_open(&am->cm, "anomaly", load, data);
        if (status)
            return status;
        am->have_vae = 1;
        am->data = &am->cm.data;
        am->classes = am->cm.state.classes;
        return flow_path ? open_flow(am, flow_path, "--flow", am->cm.model.kern) : 0;
    }
    if (strcmp(kind, "flow") != 0) {
        fprintf(stderr, "elbo anomaly: %s: __metadata__.model: '%.32s' is not a vae checkpoint or a flow checkpoint "
                "(anomaly scores by either)\n", load, kind);
        return 2;
    }
    if (flow_path) {
        fprintf(stderr, "elbo anomaly: --flow: %s is a flow already (--flow scores a flow beside the VAE of --load)\n",
                load);
        return 2;
    }
    const elbo_kernels *k = cli_kernels("anomaly");
    if (!k || cli_load_dataset("anomaly", data, &am->own))
        return 2;
    am->data = &am->own;
    int status = open_flow(am, load, "--load", k);
    am->classes = am->flow_state.classes;
    return status;
}

int cli_anomaly(int argc, char **argv)
{
    const char *load = NULL, *data = NULL, *prefix = NULL, *normal = NULL, *flow_path = NULL;
    double fpr = 0.05;
    uint64_t seed = 1;
    size_t samples = 1;
    int json = 0;
    cli_option opts[] = {
        {"load", ARG_STRING, &load, "PATH", "a VAE or a flow checkpoint trained on the normal classes (required)", 0,
         0, "none", 0, 0},
        {"flow", ARG_STRING, &flow_path, "PATH", "a flow checkpoint scored beside the VAE of --load", 0, 0, "none", 0,
         0},
        {"data", ARG_STRING, &data, "DIR", "dataset: a directory of IDX files, or synthetic:N", 0, 0,
         ELBO_DEFAULT_DATA_DIR, 0, 0},
        {"normal", ARG_STRING, &normal, "C[,C...]", "normal classes", 0, 0, "the checkpoint's training classes", 0, 0},
        {"fpr", ARG_DOUBLE, &fpr, "X", "false-positive rate of the reported threshold", 1e-9, 1, NULL, 0, 0},
        {"seed", ARG_U64, &seed, "N", "seed of the posterior sample of -ELBO and of the flow's dequantization noise", 0,
         0, NULL, 0, 0},
        {"samples", ARG_SIZE, &samples, "K", "a flow's dequantization draws per image (log-mean-exp)", 1, 1000, "1",
         0, 0},
        {"output", ARG_STRING, &prefix, "PREFIX", "writes PREFIX-scores.csv and PREFIX-hist.png (required)", 0, 0,
         "none", 0, 'o'},
        {"json", ARG_FLAG, &json, "", "print one JSON object", 0, 0, NULL, 0, 0},
    };
    cli_parse_result pr = cli_parse("anomaly", argc, argv, opts, sizeof opts / sizeof opts[0],
                                    "Scores every test image under a VAE by reconstruction error (sum of squared "
                                    "pixel errors of the decoded\nposterior mean, pixels in [0, 1]) and by -ELBO (as "
                                    "elbo eval), under a flow by its exact -log p in bits\nper dimension (as elbo "
                                    "eval), and reports each score's AUROC for normal against anomalous (all\nother) "
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
    anomaly_models am;
    int status = open_models(&am, load, flow_path, data);
    if (status) {
        close_models(&am);
        return status;
    }
    if (samples > 1 && !am.have_flow) {
        fprintf(stderr, "elbo anomaly: --samples: a flow's dequantization draws (%s is a vae; add --flow)\n", load);
        close_models(&am);
        return 2;
    }
    elbo_class_set set;
    if (normal_classes(&am, normal, load, flow_path, &set)) {
        close_models(&am);
        return 2;
    }
    elbo_class_set_format(&set, names, sizeof names);
    const elbo_split *test = &am.data->test;
    size_t n_scores = 0, n_anom = 0, nc = am.data->num_classes;
    score_report r[MAX_SCORES];
    memset(r, 0, sizeof r);
    if (am.have_vae) {
        r[n_scores++] = (score_report){.name = "recon error", .key = "recon_error"};
        r[n_scores++] = (score_report){.name = "-ELBO", .key = "neg_elbo"};
    }
    if (am.have_flow)
        r[n_scores++] = (score_report){.name = "flow -log p", .key = "flow_bits_per_dim"};
    int oom = 0;
    for (size_t k = 0; k < n_scores; k++)
        oom |= !(r[k].s = malloc((test->n ? test->n : 1) * sizeof *r[k].s));
    uint8_t *anomalous = malloc(test->n ? test->n : 1), *sub_a = malloc(test->n ? test->n : 1);
    double *sub_s = malloc((test->n ? test->n : 1) * sizeof *sub_s);
    double *class_auc = malloc((nc ? nc : 1) * n_scores * sizeof *class_auc);
    if (oom || !anomalous || !sub_a || !sub_s || !class_auc) {
        fprintf(stderr, "elbo anomaly: out of memory\n");
        status = 1;
        goto done;
    }
    for (size_t i = 0; i < test->n; i++)
        n_anom += anomalous[i] = !set.member[test->labels[i]];
    if (n_anom == 0 || n_anom == test->n) {
        fprintf(stderr, "elbo anomaly: %s: the test split has no %s images\n", am.data->name,
                n_anom ? "normal" : "anomalous");
        status = 2;
        goto done;
    }
    if (am.have_vae)
        elbo_infer_scores(&am.cm.model, &am.cm.act, test->pixels, test->n, seed, r[0].s, r[1].s);
    if (am.have_flow) {
        elbo_topology *topo = cli_open_topology("anomaly");
        elbo_images_view view = cli_view(test);
        double *bpd = r[n_scores - 1].s;
        status = cli_flow_image_nll(&am.flow, &view, cli_default_threads(topo), topo, seed, samples, bpd, "anomaly");
        if (topo)
            elbo_topology_close(topo);
        if (status)
            goto done;
        for (size_t i = 0; i < test->n; i++)
            bpd[i] = elbo_flow_bits_per_dim(&am.flow.cfg, bpd[i]);
    }
    for (size_t k = 0; k < n_scores; k++) {
        r[k].auroc = elbo_auroc(r[k].s, anomalous, test->n);
        if (!isfinite(r[k].auroc) || elbo_roc_at_fpr(r[k].s, anomalous, test->n, fpr, &r[k].at_fpr)) {
            fprintf(stderr, "elbo anomaly: out of memory\n");
            status = 1;
            goto done;
        }
        for (size_t c = 0; c < nc; c++)
            class_auc[c * n_scores + k] = set.member[c] ? NAN
                                                        : class_auroc(r[k].s, test, anomalous, (unsigned)c, sub_s, sub_a);
    }
    char title[1400], anomalies[1024] = "", buf[32];
    for (size_t c = 0, used = 0; c < nc && used + 64 < sizeof anomalies; c++)
        if (!set.member[c])
            used += (size_t)snprintf(anomalies + used, sizeof anomalies - used, "%s%s", used ? ", " : "",
                                     class_name(am.data, c, buf, sizeof buf));
    snprintf(title, sizeof title, "%s: normal classes %s; anomalous: %s", am.data->name, names, anomalies);
    if (write_scores(csv, test, anomalous, r, n_scores, err, sizeof err)) {
        fprintf(stderr, "elbo anomaly: %s\n", err);
        status = 1;
    } else if (plot_histogram(script, csv, png, r, n_scores, title, fpr)) {
        unlink(csv);   /* all outputs or none */
        status = 1;
    } else {
        print_reports(r, n_scores, &am, anomalous, &set, class_auc, samples, names, fpr, json);
        if (!json)
            printf("wrote %s, %s\n", csv, png);
    }
done:
    for (size_t k = 0; k < n_scores; k++)
        free(r[k].s);
    free(anomalous);
    free(sub_a);
    free(sub_s);
    free(class_auc);
    close_models(&am);
    return status;
}
