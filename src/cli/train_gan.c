/* `elbo train --model gan`: the MLP GAN built from --latent, --hidden (the generator), --d-hidden, --real-label and
 * --d-lr-scale, trained with Adam (--adam-beta1, --adam-beta2); each epoch reports its training means (D and G
 * losses, D's outputs on real and generated images): a GAN has no test metric (score its samples with
 * `elbo eval --classifier`). */
#include <stdio.h>
#include <stdlib.h>

#include "cli_common.h"
#include "gan.h"
#include "train_kinds.h"

/* The GAN's defaults of the shared flags: lr 2e-4, 64 latent dimensions, beta1 0.5. */
static void gan_set_defaults(train_args *a, const cli_option *opts, size_t n_opts)
{
    if (!cli_find(opts, n_opts, "lr")->seen)
        a->lr = 2e-4;
    if (!cli_find(opts, n_opts, "latent")->seen)
        a->latent = 64;
    if (!cli_find(opts, n_opts, "adam-beta1")->seen)
        a->adam_beta1 = 0.5;
}

/* Builds the GAN's config from the flags and the data's image shape; prints the error and returns -1. */
static int build_config(const train_args *a, const elbo_dataset *ds, elbo_gan_config *c)
{
    char err[256];
    *c = elbo_gan_config_default(ds->train.rows, ds->train.cols);
    c->latent = a->latent;
    c->adam_beta1 = a->adam_beta1;
    c->adam_beta2 = a->adam_beta2;
    c->real_label = a->real_label;
    c->d_lr_scale = a->d_lr_scale;
    c->spectral_norm = (int)a->spectral_norm;
    c->d_steps = a->d_steps;
    if (a->hidden && elbo_parse_widths(a->hidden, c->g_hidden, &c->n_g, err, sizeof err)) {
        fprintf(stderr, "elbo train: --hidden: %s\n", err);
        return -1;
    }
    if (a->d_hidden && elbo_parse_widths(a->d_hidden, c->d_hidden, &c->n_d, err, sizeof err)) {
        fprintf(stderr, "elbo train: --d-hidden: %s\n", err);
        return -1;
    }
    if (elbo_gan_config_validate(c, err, sizeof err)) {
        fprintf(stderr, "elbo train: %s: %s\n", ds->name, err);
        return -1;
    }
    return 0;
}

/* A fresh GAN from the flags, initialized from --seed and packed. */
static int gan_create(const train_args *a, const elbo_dataset *ds, const elbo_kernels *k, train_model *tm)
{
    char err[512];
    elbo_gan_config cfg;
    if (build_config(a, ds, &cfg))
        return 2;
    elbo_gan *m = calloc(1, sizeof *m);
    if (!m || elbo_gan_init(m, &cfg, k, err, sizeof err)) {
        train_kind_fail(m ? err : "out of memory");
        free(m);
        return 1;
    }
    elbo_params_init(m->params, &m->layout, a->seed);
    elbo_gan_pack_weights(m);
    tm->impl = m;
    tm->model = elbo_gan_model(m);
    return 0;
}

/* The GAN of a checkpoint and its training state. */
static int gan_load(const char *path, const elbo_kernels *k, train_model *tm, elbo_train_state *st, char *err,
                    size_t errlen)
{
    elbo_gan *m = calloc(1, sizeof *m);
    if (!m || elbo_gan_load(path, m, k, st, err, errlen)) {
        if (!m)
            snprintf(err, errlen, "out of memory");
        free(m);
        return -1;
    }
    tm->impl = m;
    tm->model = elbo_gan_model(m);
    return 0;
}

/* Adam's betas of the resumed GAN. */
static void gan_resumed(const train_model *tm, train_args *a)
{
    const elbo_gan *m = tm->impl;
    a->adam_beta1 = m->cfg.adam_beta1;
    a->adam_beta2 = m->cfg.adam_beta2;
}

/* Frees the GAN. */
static void gan_free(train_model *tm)
{
    if (tm->impl)
        elbo_gan_free(tm->impl);
    free(tm->impl);
    tm->impl = NULL;
}

/* The GAN's config in words. */
static void gan_describe(const train_model *tm, char *buf, size_t len)
{
    elbo_gan_config_describe(&((const elbo_gan *)tm->impl)->cfg, buf, len);
}

/* Adam's betas for both networks, and the networks' optimizer blocks (D's lr scaled by --d-lr-scale, G updated every
 * --d-steps steps). */
static void gan_tune_optimizer(const train_model *tm, const train_args *a, elbo_optimizer_config *oc)
{
    oc->adam.beta1 = a->adam_beta1;
    oc->adam.beta2 = a->adam_beta2;
    elbo_gan_optimizer_blocks(tm->impl, oc);
}

/* The epoch line: the per-image means of the D and G losses and of D's outputs on real and generated images. */
static void gan_report_epoch(const train_args *a, const train_epoch *e)
{
    const elbo_loss_means *tr = e->train;
    if (a->json) {
        const char *keys[] = {"epoch", "steps", "samples", "d_loss", "g_loss", "d_real", "d_fake", "samples_per_s",
                              "seconds", "threads", "batch"};
        double vals[] = {(double)e->epoch, (double)e->steps, (double)tr->samples, tr->part[0], tr->part[1],
                         tr->part[2], tr->part[3], e->samples_per_s, e->train_s, (double)a->threads,
                         (double)a->batch};
        cli_print_json_numbers(keys, vals, sizeof vals / sizeof vals[0], "model", "gan");
    } else {
        printf("epoch %zu/%zu  D loss %.4f  G loss %.4f  D(x) %.3f  D(G(z)) %.3f  %.0f samples/s  %.2f s\n", e->epoch,
               a->epochs, tr->part[0], tr->part[1], tr->part[2], tr->part[3], e->samples_per_s, e->train_s);
        fflush(stdout);
    }
}

static const char *const gan_flags[] = {"hidden",     "latent",     "adam-beta1", "adam-beta2",    "d-hidden",
                                        "real-label", "d-lr-scale", "d-steps",    "spectral-norm", NULL};

const train_kind train_kind_gan = {
    .name = "gan",
    .title = "GAN",
    .flags = gan_flags,
    .evaluates = 0,
    .target_metric = NULL,
    .set_defaults = gan_set_defaults,
    .create = gan_create,
    .load = gan_load,
    .resumed = gan_resumed,
    .free = gan_free,
    .describe = gan_describe,
    .tune_optimizer = gan_tune_optimizer,
    .report_epoch = gan_report_epoch,
};
