/* `elbo train --model classifier`: an MLP classifier of the labels built from --hidden (softmax cross-entropy);
 * each epoch reports the test accuracy and cross-entropy. */
#include <stdio.h>
#include <stdlib.h>

#include "classifier.h"
#include "cli_common.h"
#include "train_kinds.h"

/* Builds the classifier's config from --hidden (default 256,256) and the data; prints the error and returns -1. */
static int build_config(const train_args *a, const elbo_dataset *ds, elbo_classifier_config *c)
{
    char err[256];
    *c = elbo_classifier_config_default(ds->train.dim, ds->num_classes);
    if (a->hidden && elbo_parse_widths(a->hidden, c->hidden, &c->n_hidden, err, sizeof err)) {
        fprintf(stderr, "elbo train: --hidden: %s\n", err);
        return -1;
    }
    if (elbo_classifier_config_validate(c, err, sizeof err)) {
        fprintf(stderr, "elbo train: %s: %s\n", ds->name, err);
        return -1;
    }
    return 0;
}

/* A fresh classifier from the flags, initialized from --seed and packed. */
static int classifier_create(const train_args *a, const elbo_dataset *ds, const elbo_kernels *k, train_model *tm)
{
    char err[512];
    elbo_classifier_config cfg;
    if (build_config(a, ds, &cfg))
        return 2;
    elbo_classifier *m = calloc(1, sizeof *m);
    if (!m || elbo_classifier_init(m, &cfg, k, err, sizeof err)) {
        train_kind_fail(m ? err : "out of memory");
        free(m);
        return 1;
    }
    elbo_params_init(m->params, &m->layout, a->seed);
    elbo_classifier_pack_weights(m);
    tm->impl = m;
    tm->model = elbo_classifier_model(m);
    return 0;
}

/* The classifier of a checkpoint and its training state. */
static int classifier_load(const char *path, const elbo_kernels *k, train_model *tm, elbo_train_state *st,
                           char *err, size_t errlen)
{
    elbo_classifier *m = calloc(1, sizeof *m);
    if (!m || elbo_classifier_load(path, m, k, st, err, errlen)) {
        if (!m)
            snprintf(err, errlen, "out of memory");
        free(m);
        return -1;
    }
    tm->impl = m;
    tm->model = elbo_classifier_model(m);
    return 0;
}

/* "classes_out" when the resumed classifier has fewer outputs than the data have classes. */
static const char *classifier_mismatch(const train_model *tm, const elbo_dataset *ds)
{
    return ((const elbo_classifier *)tm->impl)->cfg.classes < ds->num_classes ? "classes_out" : NULL;
}

/* Frees the classifier. */
static void classifier_free(train_model *tm)
{
    if (tm->impl)
        elbo_classifier_free(tm->impl);
    free(tm->impl);
    tm->impl = NULL;
}

/* The classifier's config in words. */
static void classifier_describe(const train_model *tm, char *buf, size_t len)
{
    elbo_classifier_config_describe(&((const elbo_classifier *)tm->impl)->cfg, buf, len);
}

/* The epoch line: train loss, test accuracy and cross-entropy (the parts' means), throughput. */
static void classifier_report_epoch(const train_args *a, const train_epoch *e)
{
    const elbo_loss_means *tr = e->train, *te = e->test;
    if (a->json) {
        const char *keys[] = {"epoch", "steps", "samples", "train_loss", "train_accuracy", "test_cross_entropy",
                              "test_accuracy", "samples_per_s", "seconds", "eval_seconds", "threads", "batch"};
        double vals[] = {(double)e->epoch, (double)e->steps, (double)tr->samples, tr->loss, tr->part[1],
                         te->part[0], te->part[1], e->samples_per_s, e->train_s, e->eval_s, (double)a->threads,
                         (double)a->batch};
        cli_print_json_numbers(keys, vals, sizeof vals / sizeof vals[0], "model", "classifier");
    } else {
        printf("epoch %zu/%zu  train loss %.4f  test accuracy %.4f (cross-entropy %.4f)  %.0f samples/s  %.2f s\n",
               e->epoch, a->epochs, tr->loss, te->part[1], te->part[0], e->samples_per_s, e->train_s);
        fflush(stdout);
    }
}

static const char *const classifier_flags[] = {"hidden", NULL};

const train_kind train_kind_classifier = {
    .name = "classifier",
    .title = "classifier",
    .flags = classifier_flags,
    .evaluates = 1,
    .target_metric = "test cross-entropy",
    .target_keys = {"target_cross_entropy", "test_cross_entropy"},
    .create = classifier_create,
    .load = classifier_load,
    .mismatch = classifier_mismatch,
    .free = classifier_free,
    .describe = classifier_describe,
    .report_epoch = classifier_report_epoch,
};
