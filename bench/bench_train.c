/* Training-step rows through the trainer API, for the VAE (train/...; in bf16: train/bf16/...), the classifier (train_classifier/...), the
 * GAN (train/gan/...), the flow (train/flow/...) and the diffusion model (train/diffusion/...): a fresh model and
 * trainer per call, warmed up by two steps, then one optimizer step per iteration over a shuffled Fashion-MNIST (the
 * GAN's: a D step and a G step; samples are real images); and the flow's sampling (sample/flow: images/s of the exact
 * inverse, one thread). */
#include "bench_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classifier.h"
#include "bench_bf16.h"
#include "dataset.h"
#include "gemm_bf16.h"
#include "diffusion.h"
#include "flow.h"
#include "gan.h"
#include "rng.h"
#include "train.h"
#include "vae.h"

static const bench_env *g_env;
static const char *g_spec;
static elbo_dataset g_ds;
static int g_loaded; /* 0: not tried, 1: loaded, -1: failed */
static char g_desc[320];

/* Loads the dataset on first use; 0 when it is there. */
static int dataset_ready(void)
{
    if (g_loaded == 0) {
        char err[256];
        if (elbo_dataset_load(&g_ds, g_spec, err, sizeof err) == 0) {
            g_loaded = 1;
            snprintf(g_desc, sizeof g_desc, "%s, %zu train images of %zux%zu", g_ds.name, g_ds.train.n,
                     g_ds.train.rows, g_ds.train.cols);
        } else {
            g_loaded = -1;
            snprintf(g_desc, sizeof g_desc, "unavailable: %s", err);
        }
    }
    return g_loaded == 1 ? 0 : -1;
}

/* One optimizer step on the next batch of the permutation (wrapping around at its end). */
static void step(elbo_trainer *tr, const elbo_images_view *train, size_t batch, size_t *pos)
{
    if (*pos + batch > train->n)
        *pos = 0;
    elbo_trainer_step(tr, train, tr->perm + *pos, batch);
    *pos += batch;
}

/* The model kinds a row trains (its gbench user pointer points at one; NULL is the VAE). */
typedef enum { BENCH_VAE, BENCH_CLASSIFIER, BENCH_GAN, BENCH_FLOW, BENCH_DIFFUSION, BENCH_VAE_BF16 } bench_kind;

/* The model a row trains: the default VAE, classifier or GAN. */
typedef struct {
    bench_kind kind;
    elbo_vae vae;
    elbo_classifier clf;
    elbo_gan gan;
    elbo_diffusion diffusion;
    elbo_flow flow;
    elbo_model model;
    double flops_per_sample;
} bench_model;

/* Initializes the row's model (seed 1) for data of dim pixels; 0 or -1 with a message in err. */
static int bench_model_init(bench_model *bm, bench_kind kind, size_t rows, size_t cols, size_t classes, char *err,
                            size_t errlen)
{
    size_t dim = rows * cols;
    bm->kind = kind;
    if (kind == BENCH_GAN) {
        elbo_gan_config cfg = elbo_gan_config_default(rows, cols);
        if (elbo_gan_init(&bm->gan, &cfg, g_env->kern, err, errlen))
            return -1;
        elbo_params_init(bm->gan.params, &bm->gan.layout, 1);
        elbo_gan_pack_weights(&bm->gan);
        bm->model = elbo_gan_model(&bm->gan);
        bm->flops_per_sample = elbo_gan_train_flops_per_sample(&bm->gan);
        return 0;
    }
    if (kind == BENCH_DIFFUSION) {
        elbo_diffusion_config cfg = elbo_diffusion_config_default(rows, cols);
        if (elbo_diffusion_init(&bm->diffusion, &cfg, g_env->kern, err, errlen))
            return -1;
        elbo_params_init(bm->diffusion.params, &bm->diffusion.layout, 1);
        memcpy(bm->diffusion.ema, bm->diffusion.params, bm->diffusion.layout.total * sizeof(float));
        elbo_diffusion_pack_weights(&bm->diffusion);
        bm->model = elbo_diffusion_model(&bm->diffusion);
        bm->flops_per_sample = elbo_diffusion_train_flops_per_sample(&bm->diffusion);
        return 0;
    }
    if (kind == BENCH_FLOW) {
        elbo_flow_config cfg = elbo_flow_config_default(rows, cols);
        if (elbo_flow_init(&bm->flow, &cfg, g_env->kern, err, errlen))
            return -1;
        elbo_flow_init_params(&bm->flow, 1);
        bm->model = elbo_flow_model(&bm->flow);
        bm->flops_per_sample = elbo_flow_train_flops_per_sample(&bm->flow);
        return 0;
    }
    if (kind == BENCH_CLASSIFIER) {
        elbo_classifier_config cfg = elbo_classifier_config_default(dim, classes);
        if (elbo_classifier_init(&bm->clf, &cfg, g_env->kern, err, errlen))
            return -1;
        elbo_params_init(bm->clf.params, &bm->clf.layout, 1);
        elbo_classifier_pack_weights(&bm->clf);
        bm->model = elbo_classifier_model(&bm->clf);
        bm->flops_per_sample = elbo_classifier_train_flops_per_sample(&bm->clf);
        return 0;
    }
    elbo_vae_config cfg = elbo_vae_config_default(dim);
    const elbo_kernels *kern = g_env->kern;
    if (kind == BENCH_VAE_BF16 && !(kern = elbo_kernels_with_precision(g_env->kern, ELBO_PRECISION_BF16))) {
        snprintf(err, errlen, "no bf16 GEMM here: the CPU lacks %s", elbo_gemm_bf16_missing(g_env->kern));
        return -1;
    }
    if (elbo_vae_init(&bm->vae, &cfg, kern, err, errlen))
        return -1;
    elbo_params_init(bm->vae.params, &bm->vae.layout, 1);
    elbo_vae_pack_weights(&bm->vae);
    bm->model = elbo_vae_model(&bm->vae);
    bm->flops_per_sample = elbo_vae_train_flops_per_sample(&bm->vae);
    return 0;
}

/* Frees the row's model. */
static void bench_model_free(bench_model *bm)
{
    if (bm->kind == BENCH_GAN)
        elbo_gan_free(&bm->gan);
    else if (bm->kind == BENCH_DIFFUSION)
        elbo_diffusion_free(&bm->diffusion);
    else if (bm->kind == BENCH_FLOW)
        elbo_flow_free(&bm->flow);
    else if (bm->kind == BENCH_CLASSIFIER)
        elbo_classifier_free(&bm->clf);
    else
        elbo_vae_free(&bm->vae);
}

/* The row: a trainer of the model (user: a bench_kind, NULL for the VAE) at (batch, threads), one step per
 * iteration (the GAN's: Adam lr 2e-4, betas 0.5 / 0.999, its recipe). */
static void run_train(gbench_state *st, void *user)
{
    if (dataset_ready() != 0) {
        gbench_skip_with_error(st, g_desc);
        return;
    }
    size_t batch = (size_t)gbench_arg(st, 0), threads = (size_t)gbench_arg(st, 1);
    elbo_images_view train = {g_ds.train.pixels, g_ds.train.n, g_ds.train.dim, g_ds.train.labels};
    bench_kind kind = user ? *(const bench_kind *)user : BENCH_VAE;
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, kind == BENCH_GAN ? 2e-4 : 1e-3);
    if (kind == BENCH_GAN) {
        oc.adam.beta1 = 0.5;
        oc.adam.beta2 = 0.999;
    }
    char err[256];
    bench_model bm;
    elbo_trainer tr;
    if (bench_model_init(&bm, kind, g_ds.train.rows, g_ds.train.cols, g_ds.num_classes, err, sizeof err)) {
        gbench_skip_with_error(st, err);
        return;
    }
    if (elbo_trainer_init(&tr, &bm.model, &oc, batch, 1, train.n, threads, g_env->topo, err, sizeof err)) {
        bench_model_free(&bm);
        gbench_skip_with_error(st, err);
        return;
    }
    elbo_rng_permutation(tr.perm, train.n, 1, 0);
    size_t pos = 0;
    step(&tr, &train, batch, &pos); /* two warm-up steps (the flow, ~41 MFLOP per image: one) */
    if (kind != BENCH_FLOW)
        step(&tr, &train, batch, &pos);
    while (gbench_keep_running(st))
        step(&tr, &train, batch, &pos);
    double samples = (double)gbench_iterations(st) * (double)batch;
    gbench_set_items_processed(st, (int64_t)samples);
    gbench_set_label(st, g_ds.name);
    gbench_set_counter(st, "samples_per_s", samples, GBENCH_COUNTER_RATE);
    if (kind == BENCH_VAE_BF16) { /* against the bf16 dot-product peak measured in this run (the bf16_peak row) */
        double flops = bm.flops_per_sample * samples;
        gbench_set_counter(st, "GFLOP/s", flops / 1e9, GBENCH_COUNTER_RATE);
        if (bench_bf16_peak_gflops() > 0)
            gbench_set_counter(st, "pct_peak", 100.0 * flops / (bench_bf16_peak_gflops() * 1e9 * (double)threads),
                               GBENCH_COUNTER_RATE);
    } else {
        bench_set_flops(st, g_env, bm.flops_per_sample * (double)batch, threads);
    }
    elbo_trainer_free(&tr);
    bench_model_free(&bm);
}

/* The row sample/flow: the default flow (seed 1, untrained: the inverse costs the same) draws `batch` images per
 * iteration on one thread (z, the inverse couplings, the inverse logit, the pixels). */
static void run_sample_flow(gbench_state *st, void *user)
{
    (void)user;
    size_t batch = (size_t)gbench_arg(st, 0);
    char err[256];
    elbo_flow m;
    elbo_flow_activations a;
    elbo_flow_config cfg = elbo_flow_config_default(28, 28);
    if (elbo_flow_init(&m, &cfg, g_env->kern, err, sizeof err)) {
        gbench_skip_with_error(st, err);
        return;
    }
    elbo_flow_init_params(&m, 1);
    uint8_t *pixels = malloc(batch * cfg.input_dim);
    if (!pixels || elbo_flow_activations_init(&a, &m, batch)) {
        free(pixels);
        elbo_flow_free(&m);
        gbench_skip_with_error(st, "out of memory");
        return;
    }
    size_t first = 0;
    elbo_flow_sample(&m, &a, first, batch, 1, 1.0, NULL, pixels); /* warm-up */
    while (gbench_keep_running(st)) {
        first += batch;
        elbo_flow_sample(&m, &a, first, batch, 1, 1.0, NULL, pixels);
    }
    double images = (double)gbench_iterations(st) * (double)batch;
    gbench_set_items_processed(st, (int64_t)images);
    gbench_set_counter(st, "images_per_s", images, GBENCH_COUNTER_RATE);
    bench_set_flops(st, g_env, elbo_flow_sample_flops_per_sample(&m) * (double)batch, 1);
    free(pixels);
    elbo_flow_activations_free(&a);
    elbo_flow_free(&m);
}

void bench_train_register(const bench_env *env, const char *dataset)
{
    static const int64_t batches[] = {32, 128, 256, 1024};
    g_env = env;
    g_spec = dataset;
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++)
        for (size_t t = 1; t <= env->cores; t++) {
            gbench_def d = {.name = "train", .run = run_train, .n_args = 2, .args = {batches[b], (int64_t)t},
                            .arg_names = {"b", "t"}, .unit = GBENCH_MS};
            gbench_register(&d);
        }
    /* the VAE in bf16 (its pct_peak: of the bf16 peak) */
    static bench_kind vae_bf16 = BENCH_VAE_BF16;
    for (size_t t = 1; t <= env->cores; t++) {
        gbench_def d = {.name = "train/bf16", .run = run_train, .user = &vae_bf16, .n_args = 2, .args = {128, (int64_t)t},
                        .arg_names = {"b", "t"}, .unit = GBENCH_MS};
        gbench_register(&d);
    }
    /* the classifier beside the VAE */
    static const int64_t clf_batches[] = {128, 1024};
    static bench_kind classifier = BENCH_CLASSIFIER;
    for (size_t b = 0; b < sizeof clf_batches / sizeof clf_batches[0]; b++)
        for (size_t t = 1; t <= env->cores; t++) {
            gbench_def d = {.name = "train_classifier", .run = run_train, .user = &classifier, .n_args = 2,
                            .args = {clf_batches[b], (int64_t)t}, .arg_names = {"b", "t"}, .unit = GBENCH_MS};
            gbench_register(&d);
        }
    /* the GAN: samples/s of real images */
    static const int64_t gan_batches[] = {64, 128, 256};
    static bench_kind gan = BENCH_GAN;
    for (size_t b = 0; b < sizeof gan_batches / sizeof gan_batches[0]; b++)
        for (size_t t = 1; t <= env->cores; t++) {
            gbench_def d = {.name = "train/gan", .run = run_train, .user = &gan, .n_args = 2,
                            .args = {gan_batches[b], (int64_t)t}, .arg_names = {"b", "t"}, .unit = GBENCH_MS};
            gbench_register(&d);
        }
    /* the diffusion model (its EMA sweep included) on one core and on all */
    static const int64_t diffusion_batches[] = {128, 256};
    static bench_kind diffusion = BENCH_DIFFUSION;
    for (size_t b = 0; b < sizeof diffusion_batches / sizeof diffusion_batches[0]; b++)
        for (size_t t = 1; t <= env->cores; t = t == env->cores ? t + 1 : env->cores) {
            gbench_def d = {.name = "train/diffusion", .run = run_train, .user = &diffusion, .n_args = 2,
                            .args = {diffusion_batches[b], (int64_t)t}, .arg_names = {"b", "t"}, .unit = GBENCH_MS};
            gbench_register(&d);
        }
    /* the flow (~41 MFLOP per image and step, the trimmed nets' FLOPs): samples/s */
    static const int64_t flow_batches[] = {64, 128, 256};
    static bench_kind flow = BENCH_FLOW;
    for (size_t b = 0; b < sizeof flow_batches / sizeof flow_batches[0]; b++)
        for (size_t t = 1; t <= env->cores; t++) {
            gbench_def d = {.name = "train/flow", .run = run_train, .user = &flow, .n_args = 2,
                            .args = {flow_batches[b], (int64_t)t}, .arg_names = {"b", "t"}, .unit = GBENCH_MS};
            gbench_register(&d);
        }
    gbench_def sf = {.name = "sample/flow", .run = run_sample_flow, .n_args = 1, .args = {128}, .arg_names = {"b"},
                     .unit = GBENCH_MS};
    gbench_register(&sf);
}

const elbo_dataset *bench_train_data(const char **why)
{
    if (dataset_ready() != 0) {
        *why = g_desc;
        return NULL;
    }
    return &g_ds;
}

const char *bench_train_dataset(void)
{
    return g_loaded == 1 || g_loaded == -1 ? g_desc : g_spec ? g_spec : ELBO_DEFAULT_DATA_DIR;
}

void bench_train_free(void)
{
    if (g_loaded == 1)
        elbo_dataset_free(&g_ds);
    g_loaded = 0;
}
