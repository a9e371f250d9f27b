/* Full-epoch rows: a fresh model and trainer per repetition, then elbo_trainer_epoch timed as one iteration. */
#include "bench_epoch.h"

#include "bench_train.h"
#include "train.h"
#include "vae.h"

#define EPOCH_BATCH 128

static const bench_env *g_env;

/* The row: trainer at (batch, threads) made untimed, then one whole shuffled epoch per iteration. */
static void run_epoch(gbench_state *st, void *user)
{
    (void)user;
    const char *why = NULL;
    const elbo_dataset *ds = bench_train_data(&why);
    if (!ds) {
        gbench_skip_with_error(st, why);
        return;
    }
    size_t batch = (size_t)gbench_arg(st, 0), threads = (size_t)gbench_arg(st, 1);
    elbo_images_view train = {ds->train.pixels, ds->train.n, ds->train.dim, ds->train.labels};
    elbo_vae_config cfg = elbo_vae_config_default(train.dim);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
    char err[256];
    elbo_vae m;
    elbo_trainer tr;
    if (elbo_vae_init(&m, &cfg, g_env->kern, err, sizeof err)) {
        gbench_skip_with_error(st, err);
        return;
    }
    elbo_params_init(m.params, &m.layout, 1);
    elbo_vae_pack_weights(&m);
    elbo_model mm = elbo_vae_model(&m);
    if (elbo_trainer_init(&tr, &mm, &oc, batch, 1, train.n, threads, g_env->topo, err, sizeof err)) {
        elbo_vae_free(&m);
        gbench_skip_with_error(st, err);
        return;
    }
    elbo_loss_means means = {0};
    int rc = 0;
    while (gbench_keep_running(st))
        if (rc == 0)
            rc = elbo_trainer_epoch(&tr, &train, 0, NULL, NULL, &means, err, sizeof err);
    if (rc != 0) {
        gbench_skip_with_error(st, err);
    } else {
        double samples = (double)gbench_iterations(st) * (double)train.n;
        gbench_set_items_processed(st, (int64_t)samples);
        gbench_set_label(st, ds->name);
        gbench_set_counter(st, "samples_per_s", samples, GBENCH_COUNTER_RATE);
        gbench_set_counter(st, "train_loss", means.loss, GBENCH_COUNTER_DEFAULT);
        bench_set_flops(st, g_env, elbo_vae_train_flops_per_sample(&m) * (double)train.n, threads);
    }
    elbo_trainer_free(&tr);
    elbo_vae_free(&m);
}

void bench_epoch_register(const bench_env *env, int repetitions)
{
    g_env = env;
    for (size_t t = 1; t <= env->cores; t++) {
        gbench_def d = {.name = "epoch", .run = run_epoch, .n_args = 2, .args = {EPOCH_BATCH, (int64_t)t},
                        .arg_names = {"b", "t"}, .unit = GBENCH_S, .repetitions = repetitions};
        gbench_register(&d);
    }
}
