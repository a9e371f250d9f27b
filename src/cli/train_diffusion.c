/* `elbo train --model diffusion`: the DDPM of diffusion.h built from --hidden (the residual stream's width, one
 * number), --schedule and --ema, trained with Adam on the simple loss; each epoch reports the training and test
 * simple loss (the test set at one t and eps per image, from the seed) and samples/s. The checkpoint keeps the
 * moving average (ema.<tensor>) that `elbo sample` and `elbo eval` run on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "config.h"
#include "diffusion.h"
#include "train_kinds.h"

/* Builds the model's config from the flags and the data's image shape; prints the error and returns -1. */
static int build_config(const train_args *a, const elbo_dataset *ds, elbo_diffusion_config *c)
{
    char err[256];
    *c = elbo_diffusion_config_default(ds->train.rows, ds->train.cols);
    c->ema_decay = a->ema;
    if (a->schedule && elbo_schedule_parse(a->schedule, &c->schedule)) {
        fprintf(stderr, "elbo train: --schedule: '%s' is not linear or cosine\n", a->schedule);
        return -1;
    }
    if (a->hidden) {
        size_t w[ELBO_MAX_HIDDEN], n;
        if (elbo_parse_widths(a->hidden, w, &n, err, sizeof err) || n != 1) {
            fprintf(stderr, "elbo train: --hidden: '%s' is not one width (the diffusion model's residual stream)\n",
                    a->hidden);
            return -1;
        }
        c->hidden = w[0];
    }
    if (elbo_diffusion_config_validate(c, err, sizeof err)) {
        fprintf(stderr, "elbo train: %s: %s\n", ds->name, err);
        return -1;
    }
    return 0;
}

/* A fresh model from the flags, initialized from --seed (the moving average starts at the weights) and packed. */
static int diffusion_create(const train_args *a, const elbo_dataset *ds, const elbo_kernels *k, train_model *tm)
{
    char err[512];
    elbo_diffusion_config cfg;
    if (build_config(a, ds, &cfg))
        return 2;
    elbo_diffusion *m = calloc(1, sizeof *m);
    if (!m || elbo_diffusion_init(m, &cfg, k, err, sizeof err)) {
        train_kind_fail(m ? err : "out of memory");
        free(m);
        return 1;
    }
    elbo_params_init(m->params, &m->layout, a->seed);
    memcpy(m->ema, m->params, m->layout.total * sizeof(float));
    elbo_diffusion_pack_weights(m);
    tm->impl = m;
    tm->model = elbo_diffusion_model(m);
    return 0;
}

/* The model of a checkpoint (its moving average included) and its training state. */
static int diffusion_load(const char *path, const elbo_kernels *k, train_model *tm, elbo_train_state *st, char *err,
                          size_t errlen)
{
    elbo_diffusion *m = calloc(1, sizeof *m);
    if (!m || elbo_diffusion_load(path, m, k, st, err, errlen)) {
        if (!m)
            snprintf(err, errlen, "out of memory");
        free(m);
        return -1;
    }
    tm->impl = m;
    tm->model = elbo_diffusion_model(m);
    return 0;
}

/* The resumed model's moving-average decay. */
static void diffusion_resumed(const train_model *tm, train_args *a)
{
    a->ema = ((const elbo_diffusion *)tm->impl)->cfg.ema_decay;
}

/* Frees the model. */
static void diffusion_free(train_model *tm)
{
    if (tm->impl)
        elbo_diffusion_free(tm->impl);
    free(tm->impl);
    tm->impl = NULL;
}

/* The model's config in words. */
static void diffusion_describe(const train_model *tm, char *buf, size_t len)
{
    elbo_diffusion_config_describe(&((const elbo_diffusion *)tm->impl)->cfg, buf, len);
}

/* The epoch line: train and test simple loss (mean squared error of the noise per pixel), throughput. */
static void diffusion_report_epoch(const train_args *a, const train_epoch *e)
{
    const elbo_loss_means *tr = e->train, *te = e->test;
    if (a->json) {
        const char *keys[] = {"epoch", "steps", "samples", "train_loss", "test_loss", "samples_per_s", "seconds",
                              "eval_seconds", "threads", "batch"};
        double vals[] = {(double)e->epoch, (double)e->steps, (double)tr->samples, tr->loss, te->loss,
                         e->samples_per_s, e->train_s, e->eval_s, (double)a->threads, (double)a->batch};
        cli_print_json_numbers(keys, vals, sizeof vals / sizeof vals[0], "model", "diffusion");
    } else {
        printf("epoch %zu/%zu  train loss %.4f  test loss %.4f  %.0f samples/s  %.2f s\n", e->epoch, a->epochs,
               tr->loss, te->loss, e->samples_per_s, e->train_s);
        fflush(stdout);
    }
}

static const char *const diffusion_flags[] = {"hidden", "schedule", "ema", NULL};

const train_kind train_kind_diffusion = {
    .name = "diffusion",
    .title = "diffusion",
    .flags = diffusion_flags,
    .evaluates = 1,
    .target_metric = NULL,
    .create = diffusion_create,
    .load = diffusion_load,
    .resumed = diffusion_resumed,
    .free = diffusion_free,
    .describe = diffusion_describe,
    .report_epoch = diffusion_report_epoch,
};
