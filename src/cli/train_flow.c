/* `elbo train --model flow`: the RealNVP flow built from --hidden (each coupling net's widths), --couplings and
 * --mask, trained by exact maximum likelihood with Adam; each epoch reports the train and test bits per dimension of
 * the discrete pixels (the test set with one dequantization draw per image from --seed) and samples/s. */
#include <stdio.h>
#include <stdlib.h>

#include "cli_common.h"
#include "flow.h"
#include "train_kinds.h"

/* The flow's defaults of the shared flags: 512,512 hidden, 8 couplings, the checkerboard. */
static void flow_set_defaults(train_args *a, const cli_option *opts, size_t n_opts)
{
    if (!cli_find(opts, n_opts, "hidden")->seen)
        a->hidden = "512,512";
    if (!cli_find(opts, n_opts, "couplings")->seen)
        a->couplings = 8;
    if (!cli_find(opts, n_opts, "mask")->seen)
        a->mask = "checkerboard";
}

/* Builds the flow's config from the flags and the data's image shape; prints the error and returns -1. */
static int build_config(const train_args *a, const elbo_dataset *ds, elbo_flow_config *c)
{
    char err[256];
    *c = elbo_flow_config_default(ds->train.rows, ds->train.cols);
    c->couplings = a->couplings;
    if (elbo_parse_widths(a->hidden, c->hidden, &c->n_hidden, err, sizeof err)) {
        fprintf(stderr, "elbo train: --hidden: %s\n", err);
        return -1;
    }
    if (elbo_flow_mask_parse(a->mask, &c->mask)) {
        fprintf(stderr, "elbo train: --mask: '%s' is not checkerboard or half\n", a->mask);
        return -1;
    }
    if (elbo_flow_config_validate(c, err, sizeof err)) {
        fprintf(stderr, "elbo train: %s: --%s\n", ds->name, err);
        return -1;
    }
    return 0;
}

/* A fresh flow from the flags, initialized from --seed (each coupling the identity) and packed. */
static int flow_create(const train_args *a, const elbo_dataset *ds, const elbo_kernels *k, train_model *tm)
{
    char err[512];
    elbo_flow_config cfg;
    if (build_config(a, ds, &cfg))
        return 2;
    elbo_flow *m = calloc(1, sizeof *m);
    if (!m || elbo_flow_init(m, &cfg, k, err, sizeof err)) {
        train_kind_fail(m ? err : "out of memory");
        free(m);
        return 1;
    }
    elbo_flow_init_params(m, a->seed);
    tm->impl = m;
    tm->model = elbo_flow_model(m);
    return 0;
}

/* The flow of a checkpoint and its training state. */
static int flow_load(const char *path, const elbo_kernels *k, train_model *tm, elbo_train_state *st, char *err,
                     size_t errlen)
{
    elbo_flow *m = calloc(1, sizeof *m);
    if (!m || elbo_flow_load(path, m, k, st, err, errlen)) {
        if (!m)
            snprintf(err, errlen, "out of memory");
        free(m);
        return -1;
    }
    tm->impl = m;
    tm->model = elbo_flow_model(m);
    return 0;
}

/* The metadata field of a resumed flow whose image shape does not fit the data, or NULL. */
static const char *flow_mismatch(const train_model *tm, const elbo_dataset *ds)
{
    const elbo_flow *m = tm->impl;
    if (m->cfg.image_rows != ds->train.rows)
        return "image_rows";
    return m->cfg.image_cols != ds->train.cols ? "image_cols" : NULL;
}

/* Frees the flow. */
static void flow_free(train_model *tm)
{
    if (tm->impl)
        elbo_flow_free(tm->impl);
    free(tm->impl);
    tm->impl = NULL;
}

/* The flow's config in words. */
static void flow_describe(const train_model *tm, char *buf, size_t len)
{
    elbo_flow_config_describe(&((const elbo_flow *)tm->impl)->cfg, buf, len);
}

/* The epoch line: train and test bits per dimension, the test set's parts in nats per image, throughput. */
static void flow_report_epoch(const train_args *a, const train_epoch *e)
{
    const elbo_loss_means *tr = e->train, *te = e->test;
    double dims_ln2 = (double)e->input_dim * 0.69314718055994530942;
    double train_bpd = tr->loss / dims_ln2, test_bpd = te->loss / dims_ln2;
    if (a->json) {
        const char *keys[] = {"epoch", "steps", "samples", "train_loss", "train_bits_per_dim", "test_bits_per_dim",
                              "test_nll", "test_nll_z", "test_log_det", "samples_per_s", "seconds", "eval_seconds",
                              "threads", "batch"};
        double vals[] = {(double)e->epoch, (double)e->steps, (double)tr->samples, tr->loss, train_bpd, test_bpd,
                         te->loss, te->part[0], te->part[1], e->samples_per_s, e->train_s, e->eval_s,
                         (double)a->threads, (double)a->batch};
        cli_print_json_numbers(keys, vals, sizeof vals / sizeof vals[0], "model", "flow");
    } else {
        printf("epoch %zu/%zu  train %.4f bits/dim  test %.4f bits/dim (%.1f nats: -log N(z) %.1f, log-det %.1f)  "
               "%.0f samples/s  %.2f s\n", e->epoch, a->epochs, train_bpd, test_bpd, te->loss, te->part[0],
               te->part[1], e->samples_per_s, e->train_s);
        fflush(stdout);
    }
}

static const char *const flow_flags[] = {"hidden", "couplings", "mask", NULL};

const train_kind train_kind_flow = {
    .name = "flow",
    .title = "flow",
    .flags = flow_flags,
    .evaluates = 1,
    .target_metric = NULL,
    .set_defaults = flow_set_defaults,
    .create = flow_create,
    .load = flow_load,
    .mismatch = flow_mismatch,
    .free = flow_free,
    .describe = flow_describe,
    .report_epoch = flow_report_epoch,
};
