/* `elbo train --model vae` (the default): the VAE built from --hidden, --decoder-hidden, --latent, --recon, --sigma0
 * and --beta; each epoch reports the test -ELBO with its reconstruction and KL parts. */
#include <stdio.h>
#include <stdlib.h>

#include "cli_common.h"
#include "train_kinds.h"
#include "vae_checkpoint.h"

/* Builds the VAE's config from the flags and the data's image size; prints the error and returns -1. */
static int build_config(const train_args *a, size_t input_dim, elbo_vae_config *c)
{
    char err[256];
    *c = elbo_vae_config_default(input_dim);
    c->latent = a->latent;
    c->beta = a->beta;
    if (elbo_parse_widths(a->hidden ? a->hidden : "400", c->enc_hidden, &c->n_enc, err, sizeof err)) {
        fprintf(stderr, "elbo train: --hidden: %s\n", err);
        return -1;
    }
    if (a->decoder_hidden) {
        if (elbo_parse_widths(a->decoder_hidden, c->dec_hidden, &c->n_dec, err, sizeof err)) {
            fprintf(stderr, "elbo train: --decoder-hidden: %s\n", err);
            return -1;
        }
    } else {
        c->n_dec = c->n_enc;
        for (size_t i = 0; i < c->n_enc; i++)
            c->dec_hidden[i] = c->enc_hidden[c->n_enc - 1 - i];
    }
    if (elbo_recon_parse(a->recon, &c->recon)) {
        fprintf(stderr, "elbo train: --recon: '%s' is not mse or bce\n", a->recon);
        return -1;
    }
    if (a->sigma0 > 0)
        c->sigma0 = a->sigma0;
    if (elbo_vae_config_validate(c, err, sizeof err)) {
        fprintf(stderr, "elbo train: %s\n", err);
        return -1;
    }
    return 0;
}

/* A fresh VAE from the flags, initialized from --seed and packed. */
static int vae_create(const train_args *a, const elbo_dataset *ds, const elbo_kernels *k, train_model *tm)
{
    char err[512];
    elbo_vae_config cfg;
    if (build_config(a, ds->train.dim, &cfg))
        return 2;
    elbo_vae *m = calloc(1, sizeof *m);
    if (!m || elbo_vae_init(m, &cfg, k, err, sizeof err)) {
        train_kind_fail(m ? err : "out of memory");
        free(m);
        return 1;
    }
    elbo_params_init(m->params, &m->layout, a->seed);
    elbo_vae_pack_weights(m);
    tm->impl = m;
    tm->model = elbo_vae_model(m);
    return 0;
}

/* The VAE of a checkpoint and its training state. */
static int vae_load(const char *path, const elbo_kernels *k, train_model *tm, elbo_train_state *st, char *err,
                    size_t errlen)
{
    elbo_vae *m = calloc(1, sizeof *m);
    if (!m || elbo_checkpoint_load(path, m, k, st, err, errlen)) {
        if (!m)
            snprintf(err, errlen, "out of memory");
        free(m);
        return -1;
    }
    tm->impl = m;
    tm->model = elbo_vae_model(m);
    return 0;
}

/* Frees the VAE. */
static void vae_free(train_model *tm)
{
    if (tm->impl)
        elbo_vae_free(tm->impl);
    free(tm->impl);
    tm->impl = NULL;
}

/* The VAE's config in words. */
static void vae_describe(const train_model *tm, char *buf, size_t len)
{
    elbo_vae_config_describe(&((const elbo_vae *)tm->impl)->cfg, buf, len);
}

/* The epoch line: train loss, test -ELBO with its reconstruction and KL parts, throughput. */
static void vae_report_epoch(const train_args *a, const train_epoch *e)
{
    const elbo_loss_means *tr = e->train, *te = e->test;
    if (a->json) {
        const char *keys[] = {"epoch", "steps", "samples", "train_loss", "test_neg_elbo", "test_recon", "test_kl",
                              "samples_per_s", "seconds", "eval_seconds", "threads", "batch"};
        double vals[] = {(double)e->epoch, (double)e->steps, (double)tr->samples, tr->loss, te->loss, te->part[0],
                         te->part[1], e->samples_per_s, e->train_s, e->eval_s, (double)a->threads, (double)a->batch};
        cli_print_json_numbers(keys, vals, sizeof vals / sizeof vals[0], NULL, NULL);
    } else {
        printf("epoch %zu/%zu  train loss %.4f  test -ELBO %.4f (recon %.4f, KL %.4f)  %.0f samples/s  %.2f s\n",
               e->epoch, a->epochs, tr->loss, te->loss, te->part[0], te->part[1], e->samples_per_s, e->train_s);
        fflush(stdout);
    }
}

static const char *const vae_flags[] = {"hidden", "decoder-hidden", "latent", "recon", "sigma0", "beta", NULL};

const train_kind train_kind_vae = {
    .name = "vae",
    .title = "VAE",
    .flags = vae_flags,
    .evaluates = 1,
    .target_metric = "test -ELBO",
    .target_keys = {"target_neg_elbo", "test_neg_elbo"},
    .create = vae_create,
    .load = vae_load,
    .free = vae_free,
    .describe = vae_describe,
    .report_epoch = vae_report_epoch,
};
