/* `elbo eval`: a checkpoint on the test split: a VAE's test -ELBO with its reconstruction and KL parts (and the
 * importance-weighted bound), a classifier's test accuracy and cross-entropy. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "vae_checkpoint.h"
#include "classifier.h"
#include "eval_diffusion.h"
#include "eval_flow.h"
#include "eval_score.h"
#include "cli.h"
#include "cli_common.h"
#include "infer.h"
#include "train.h"

/* Mean importance-weighted bound and ELBO (both with the normalized likelihood) over the test set. */
typedef struct {
    double iw, elbo;
} iw_means;

/* Computes the test set's mean IW-K bound and ELBO; returns 0 or -1 when out of memory. */
static int iw_evaluate(const elbo_vae *m, elbo_vae_activations *act, elbo_team *team, const elbo_images_view *test,
                       size_t k, uint64_t seed, iw_means *out)
{
    double *iw = malloc(test->n * sizeof *iw), *elbo = malloc(test->n * sizeof *elbo);
    int rc = -1;
    if (iw && elbo && elbo_infer_iw(m, act, team, test->pixels, test->n, k, seed, iw, elbo) == 0) {
        out->iw = out->elbo = 0;
        for (size_t i = 0; i < test->n; i++) {
            out->iw += iw[i];
            out->elbo += elbo[i];
        }
        out->iw /= (double)test->n;
        out->elbo /= (double)test->n;
        rc = 0;
    }
    free(iw);
    free(elbo);
    return rc;
}

/* Prints the -ELBO line (and with k > 0 the importance-weighted line) or one JSON object. */
static void report(const elbo_loss_means *r, const iw_means *w, size_t k, double log_norm, double beta, double secs,
                   const char *dataset, int json)
{
    if (json) {
        const char *keys[] = {"test_neg_elbo", "test_recon", "test_kl", "samples", "seconds", "iw_k",
                              "test_log_px_iw", "test_elbo", "log_norm"};
        double vals[] = {r->loss, r->part[0], r->part[1], (double)r->samples, secs, (double)k, w->iw, w->elbo, log_norm};
        cli_print_json_numbers(keys, vals, k ? 9 : 5, "dataset", dataset);
        return;
    }
    printf("test -ELBO %.4f (recon %.4f, KL %.4f) over %zu images of %s\n", r->loss, r->part[0], r->part[1], r->samples,
           dataset);
    if (k)
        printf("log p(x) >= %.4f (importance-weighted bound, K = %zu); ELBO %.4f (both with log p(x|z) = -recon - %.4f%s)\n",
               w->iw, k, w->elbo, log_norm, beta != 1.0 ? " and KL weight 1" : "");
}

/* Evaluates the classifier checkpoint at load on the test split: accuracy and cross-entropy per image. Prints the
 * result or the error; returns the exit status. */
static int eval_classifier(const char *load, const char *data, size_t threads, int threads_seen, int json,
                           const char *precision)
{
    char err[512];
    const elbo_kernels *k = cli_kernels_for("eval", precision, load);
    if (!k)
        return 2;
    elbo_classifier m;
    if (elbo_classifier_load(load, &m, k, NULL, err, sizeof err)) {
        fprintf(stderr, "elbo eval: %s\n", err);
        return 2;
    }
    elbo_dataset ds;
    if (cli_load_dataset("eval", data, &ds)) {
        elbo_classifier_free(&m);
        return 2;
    }
    int status = 0;
    elbo_topology *topo = cli_open_topology("eval");
    if (!threads_seen)
        threads = cli_default_threads(topo);
    elbo_model mm = elbo_classifier_model(&m);
    void *act = NULL;
    elbo_team team;
    memset(&team, 0, sizeof team);
    if (ds.test.dim != m.cfg.input_dim || ds.num_classes > m.cfg.classes) {
        fprintf(stderr, "elbo eval: %s: %zu pixels and %zu classes, but %s has input_dim %zu and %zu classes\n",
                ds.name, ds.test.dim, ds.num_classes, load, m.cfg.input_dim, m.cfg.classes);
        status = 2;
    } else if (!(act = mm.ops->act_new(mm.impl, 1024)) || elbo_team_init(&team, threads, k, topo)) {
        fprintf(stderr, "elbo eval: out of memory\n");
        status = 1;
    } else {
        elbo_images_view test = cli_view(&ds.test);
        double t0 = cli_now();
        elbo_loss_means r = elbo_evaluate(&mm, act, 1024, &team, &test, 0);
        double secs = cli_now() - t0;
        if (json) {
            const char *keys[] = {"test_accuracy", "test_cross_entropy", "samples", "seconds"};
            double vals[] = {r.part[1], r.part[0], (double)r.samples, secs};
            cli_print_json_numbers(keys, vals, 4, "dataset", ds.name);
        } else {
            printf("test accuracy %.4f, cross-entropy %.4f over %zu images of %s\n", r.part[1], r.part[0], r.samples,
                   ds.name);
        }
    }
    if (act)
        mm.ops->act_free(act);
    elbo_team_free(&team);
    elbo_dataset_free(&ds);
    elbo_classifier_free(&m);
    if (topo)
        elbo_topology_close(topo);
    return status;
}

int cli_eval(int argc, char **argv)
{
    const char *load = NULL, *data = NULL, *classifier = NULL, *images = NULL;
    uint64_t seed = 1;
    size_t threads = 1, iw_k = 0, count = 10000, eval_steps = 0, sample_steps = 0, dequant_samples = 1;
    const char *method = NULL, *precision = NULL;
    int json = 0;
    cli_option opts[] = {
        {"load", ARG_STRING, &load, "PATH", "checkpoint to evaluate (required unless --images)", 0, 0, "none", 0, 0},
        {"classifier", ARG_STRING, &classifier, "PATH",
         "score generated images with this classifier checkpoint (make classifier): FD and class coverage", 0, 0,
         "none", 0, 0},
        {"images", ARG_STRING, &images, "FILE",
         "with --classifier: score the images of this IDX file instead of --load's samples", 0, 0, "none", 0, 0},
        {"count", ARG_SIZE, &count, "N",
         "with --classifier --load: samples drawn and scored; a diffusion model's bound: its first N test images", 2,
         1000000, NULL, 0, 0},
        {"data", ARG_STRING, &data, "DIR", "dataset: a directory of IDX files, or synthetic:N", 0, 0,
         ELBO_DEFAULT_DATA_DIR, 0, 0},
        {"seed", ARG_U64, &seed, "N", "seed of the posterior samples (with --classifier: of the prior samples)", 0, 0,
         NULL, 0, 0},
        {"threads", ARG_SIZE, &threads, "N", "OpenMP threads", 1, 4096, "one per physical core, or OMP_NUM_THREADS", 0, 0},
        {"iw", ARG_SIZE, &iw_k, "K", "also the importance-weighted bound on log p(x) with K posterior samples", 1,
         1e6, "off", 0, 0},
        {"samples", ARG_SIZE, &dequant_samples, "K",
         "flow: K dequantization draws per image, -log of their mean likelihood", 1, 1000, "1", 0, 0},
        {"json", ARG_FLAG, &json, "", "print one JSON object", 0, 0, NULL, 0, 0},
        {"eval-steps", ARG_SIZE, &eval_steps, "K",
         "diffusion: the bound's sum over t from K stratified steps (K = T: whole)", 1, 100000, "100", 0, 0},
        {"sampler", ARG_STRING, &method, "ddpm|ddim", "diffusion, with --classifier: the sampler of the scored images",
         0, 0, "ddim", 0, 0},
        {"sample-steps", ARG_SIZE, &sample_steps, "S", "diffusion, with --classifier: DDIM's steps", 1, 100000, "50", 0,
         0},
        {"precision", ARG_STRING, &precision, "fp32|bf16",
         "the GEMMs of --load's model: fp32, or bf16 operands with fp32 accumulation", 0, 0, "the checkpoint's", 0, 0},
    };
    cli_parse_result pr = cli_parse("eval", argc, argv, opts, sizeof opts / sizeof opts[0],
                                    "Evaluates a checkpoint on the test split: -ELBO per sample (one posterior "
                                    "sample per image),\nwith its reconstruction and KL parts. With --iw K also the "
                                    "mean importance-weighted bound\nlog (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x) <= "
                                    "log p(x) beside the ELBO, both with the normalized\nlikelihood log p(x|z) = "
                                    "-recon - (D/2) log(2 pi sigma0^2) (MSE) or -recon (BCE), in nats per image.\n"
                                    "A classifier checkpoint: test accuracy and cross-entropy. With --classifier CLF: "
                                    "the Frechet\ndistance of --load's samples (or of --images) to the test images in "
                                    "CLF's last hidden\nlayer, the floor (as many training images), and the class "
                                    "coverage of CLF's predictions.\nA flow checkpoint: test bits per dimension of "
                                    "the discrete pixels (--samples K: log-mean-exp over K\ndequantization draws).");
    if (pr != CLI_PARSE_OK)
        return pr == CLI_PARSE_HELP ? 0 : 2;
    int threads_seen = cli_find(opts, sizeof opts / sizeof opts[0], "threads")->seen;
    if (classifier || images) {
        if (!classifier) {
            fprintf(stderr, "elbo eval: --images: needs --classifier PATH (the network that scores them)\n");
            return 2;
        }
        if (!images == !load) {
            fprintf(stderr, "elbo eval: --classifier: needs exactly one of --load CKPT (its samples) or --images FILE\n");
            return 2;
        }
        if (iw_k) {
            fprintf(stderr, "elbo eval: --iw: not with --classifier\n");
            return 2;
        }
        eval_score_args sa = {classifier, images, load, data, count, seed, threads, threads_seen, json, method,
                              sample_steps, precision};
        return cli_eval_score(&sa);
    }
    if (!load) {
        fprintf(stderr, "elbo eval: --load: required (a checkpoint written by elbo train --save)\n");
        return 2;
    }
    char err[512], kind[32];
    int is_flow = elbo_checkpoint_model_kind(load, kind, sizeof kind, err, sizeof err) == 0 && !strcmp(kind, "flow");
    if (dequant_samples > 1 && !is_flow) {
        fprintf(stderr, "elbo eval: --samples: a flow's dequantization draws (%s is not a flow)\n", load);
        return 2;
    }
    if (is_flow) {
        if (iw_k) {
            fprintf(stderr, "elbo eval: --iw: a VAE's bound (%s is a flow: use --samples)\n", load);
            return 2;
        }
        return cli_eval_flow(load, data, threads, threads_seen, dequant_samples, seed, json, precision);
    }
    if (elbo_checkpoint_model_kind(load, kind, sizeof kind, err, sizeof err) == 0 && !strcmp(kind, "classifier")) {
        if (iw_k) {
            fprintf(stderr, "elbo eval: --iw: a VAE's bound (%s is a classifier)\n", load);
            return 2;
        }
        return eval_classifier(load, data, threads, threads_seen, json, precision);
    }
    if (elbo_checkpoint_model_kind(load, kind, sizeof kind, err, sizeof err) == 0 && !strcmp(kind, "diffusion")) {
        if (iw_k) {
            fprintf(stderr, "elbo eval: --iw: a VAE's bound (%s is a diffusion model: its bound is the default)\n",
                    load);
            return 2;
        }
        /* the bound runs on the whole test split, or on its first --count images */
        size_t n = cli_find(opts, sizeof opts / sizeof opts[0], "count")->seen ? count : (size_t)-1;
        return cli_eval_diffusion(load, data, threads, threads_seen, eval_steps, n, seed, json, precision);
    }
    const elbo_kernels *k = cli_kernels_for("eval", precision, load);
    if (!k)
        return 2;
    elbo_vae m;
    if (elbo_checkpoint_load(load, &m, k, NULL, err, sizeof err)) {
        fprintf(stderr, "elbo eval: %s\n", err);
        return 2;
    }
    elbo_dataset ds;
    if (cli_load_dataset("eval", data, &ds)) {
        elbo_vae_free(&m);
        return 2;
    }
    int status = 0;
    elbo_topology *topo = cli_open_topology("eval");
    if (!cli_find(opts, sizeof opts / sizeof opts[0], "threads")->seen)
        threads = cli_default_threads(topo);
    elbo_vae_activations act;
    memset(&act, 0, sizeof act);
    elbo_team team;
    memset(&team, 0, sizeof team);
    if (ds.test.dim != m.cfg.input_dim) {
        fprintf(stderr, "elbo eval: %s: image size %zux%zu = %zu pixels, but %s has input_dim %zu\n", ds.name,
                ds.test.rows, ds.test.cols, ds.test.dim, load, m.cfg.input_dim);
        status = 2;
    } else if (elbo_vae_activations_init(&act, &m, 1024) || elbo_team_init(&team, threads, k, topo)) {
        fprintf(stderr, "elbo eval: out of memory\n");
        status = 1;
    } else {
        elbo_images_view test = cli_view(&ds.test);
        double t0 = cli_now();
        elbo_model mm = elbo_vae_model(&m);
        elbo_loss_means r = elbo_evaluate(&mm, &act, 1024, &team, &test, seed);
        iw_means w = {0, 0};
        if (iw_k && iw_evaluate(&m, &act, &team, &test, iw_k, seed, &w)) {
            fprintf(stderr, "elbo eval: out of memory\n");
            status = 1;
        } else {
            report(&r, &w, iw_k, elbo_recon_log_norm(&m.cfg), m.cfg.beta, cli_now() - t0, ds.name, json);
        }
    }
    elbo_vae_activations_free(&act);
    elbo_team_free(&team);
    elbo_dataset_free(&ds);
    elbo_vae_free(&m);
    if (topo)
        elbo_topology_close(topo);
    return status;
}
