/* `elbo eval --classifier CLF (--images FILE.idx | --load CKPT)`: Fréchet distance and class coverage of generated
 * images in the reference classifier's last hidden layer. */
#include "eval_score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_sampler.h"
#include "vae_checkpoint.h"
#include "classifier.h"
#include "cli_common.h"
#include "idx.h"
#include "infer.h"
#include "scoring.h"


/* The images being scored: owned pixels (n, D). */
typedef struct {
    uint8_t *pixels;
    size_t n;
    double sample_seconds; /* wall time of drawing them (0: read from a file) */
    char source[1100];
} scored_images;

/* Reads the IDX file path for a classifier of input_dim pixels; prints one line and returns -1 on failure. */
static int read_images(const char *path, size_t input_dim, scored_images *out)
{
    char err[512];
    elbo_idx_images im;
    if (elbo_idx_read_images(path, &im, err, sizeof err)) {
        fprintf(stderr, "elbo eval: %s\n", err);
        return -1;
    }
    if (im.rows * im.cols != input_dim || im.count < 2) {
        fprintf(stderr, "elbo eval: %s: %zu images of %zux%zu, the classifier takes %zu pixels (and FD 2 images or more)\n",
                path, im.count, im.rows, im.cols, input_dim);
        elbo_idx_images_free(&im);
        return -1;
    }
    out->n = im.count;
    out->pixels = malloc(im.count * input_dim);
    if (!out->pixels) {
        fprintf(stderr, "elbo eval: out of memory\n");
        elbo_idx_images_free(&im);
        return -1;
    }
    memcpy(out->pixels, im.pixels, im.count * input_dim);
    elbo_idx_images_free(&im);
    snprintf(out->source, sizeof out->source, "%s", path);
    return 0;
}

/* Draws count samples (seed) of the VAE or GAN checkpoint at path, as `elbo sample --format idx` writes them;
 * prints one line and returns -1 on failure. */
static int sample_images(const eval_score_args *a, const char *path, size_t input_dim, size_t count, uint64_t seed,
                         scored_images *out)
{
    cli_sampler sm;
    if (cli_sampler_open_in(&sm, "eval", path, NULL, 0, a->precision))
        return -1;
    sm.method = a->method;
    sm.method_steps = a->method_steps;
    sm.threads = a->threads_seen ? a->threads : 0;
    if (cli_sampler_check_method(&sm, "eval")) {
        cli_sampler_close(&sm);
        return -1;
    }
    int rc = -1;
    float *probs = malloc(CLI_MODEL_BATCH * sm.dim * sizeof *probs);
    out->pixels = malloc(count * input_dim);
    if (sm.dim != input_dim) {
        fprintf(stderr, "elbo eval: %s: input_dim %zu, the classifier takes %zu pixels\n", path, sm.dim, input_dim);
    } else if (!probs || !out->pixels) {
        fprintf(stderr, "elbo eval: out of memory\n");
    } else {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (size_t first = 0; first < count; first += CLI_MODEL_BATCH) {
            size_t n = count - first < CLI_MODEL_BATCH ? count - first : CLI_MODEL_BATCH;
            cli_sampler_draw(&sm, first, n, seed, probs, out->pixels + first * input_dim);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        out->sample_seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        out->n = count;
        snprintf(out->source, sizeof out->source, "%s (%zu samples, seed %llu)", path, count,
                 (unsigned long long)seed);
        rc = 0;
    }
    free(probs);
    cli_sampler_close(&sm);
    return rc;
}

/* Prints the scores: one JSON object, or lines. */
static void report(const eval_score_args *a, const scored_images *im, const elbo_classifier *clf, uint64_t hash,
                   double fd, double floor, size_t n_floor, size_t n_test, const elbo_class_coverage *cov)
{
    size_t f = clf->cfg.hidden[clf->cfg.n_hidden - 1];
    if (a->json) {
        printf("{\"fd\":%.17g,\"fd_floor\":%.17g,\"images\":%zu,\"test_images\":%zu,\"floor_train_images\":%zu,"
               "\"features\":%zu,\"coverage_entropy_bits\":%.17g,\"coverage_max_bits\":%.17g,"
               "\"smallest_class\":%zu,\"smallest_class_share\":%.17g,\"class_counts\":[",
               fd, floor, im->n, n_test, n_floor, f, cov->entropy_bits, log2((double)cov->classes), cov->min_class,
               cov->min_share);
        for (size_t c = 0; c < cov->classes; c++)
            printf("%s%zu", c ? "," : "", cov->counts[c]);
        printf("],\"classifier\":\"%s\",\"classifier_hash\":\"%016llx\"", a->classifier, (unsigned long long)hash);
        if (im->sample_seconds > 0)
            printf(",\"sample_seconds\":%.17g,\"sample_images_per_s\":%.17g", im->sample_seconds,
                   (double)im->n / im->sample_seconds);
        printf("}\n");
        return;
    }
    printf("images:     %s\n", im->source);
    if (im->sample_seconds > 0)
        printf("sampling    %.3f s, %.1f images/s\n", im->sample_seconds, (double)im->n / im->sample_seconds);
    printf("FD          %.4f to %zu test images (floor %.4f: %zu training images), %zu features\n", fd, n_test, floor,
           n_floor, f);
    printf("coverage    %.4f of %.4f bits; smallest class %zu with %.2f %% of the images; counts", cov->entropy_bits,
           log2((double)cov->classes), cov->min_class, 100.0 * cov->min_share);
    for (size_t c = 0; c < cov->classes; c++)
        printf(" %zu", cov->counts[c]);
    printf("\nclassifier: %s (tensors %016llx)\n", a->classifier, (unsigned long long)hash);
}

/* Features (n, F) and predictions of n images; NULL on out-of-memory (message printed). */
static float *features_of(const elbo_classifier *clf, elbo_team *team, const uint8_t *x, size_t n, uint8_t *pred)
{
    size_t f = clf->cfg.hidden[clf->cfg.n_hidden - 1];
    float *feat = malloc(n * f * sizeof *feat);
    if (!feat || elbo_classifier_features(clf, team, x, n, feat, pred) != 0) {
        fprintf(stderr, "elbo eval: out of memory\n");
        free(feat);
        return NULL;
    }
    return feat;
}

int cli_eval_score(const eval_score_args *a)
{
    char err[512];
    const elbo_kernels *k = cli_kernels_for("eval", NULL, a->classifier);
    if (!k)
        return 2;
    elbo_classifier clf;
    if (elbo_classifier_load(a->classifier, &clf, k, NULL, err, sizeof err)) {
        fprintf(stderr, "elbo eval: --classifier: %s\n", err);
        return 2;
    }
    elbo_dataset ds;
    scored_images im = {0};
    int status = 2;
    if (cli_load_dataset("eval", a->data, &ds)) {
        elbo_classifier_free(&clf);
        return 2;
    }
    elbo_topology *topo = cli_open_topology("eval");
    size_t threads = a->threads_seen ? a->threads : cli_default_threads(topo);
    elbo_team team;
    memset(&team, 0, sizeof team);
    size_t d = clf.cfg.input_dim, f = clf.cfg.hidden[clf.cfg.n_hidden - 1];
    float *fg = NULL, *ft = NULL, *ftr = NULL;
    uint8_t *pg = NULL, *pt = NULL, *ptr = NULL;
    if (ds.test.dim != d || ds.test.n < 2) {
        fprintf(stderr, "elbo eval: %s: %zu test images of %zu pixels; the classifier takes %zu\n", ds.name, ds.test.n,
                ds.test.dim, d);
    } else if ((a->images ? read_images(a->images, d, &im) : sample_images(a, a->load, d, a->count, a->seed, &im)) != 0) {
        status = 2;
    } else if (elbo_team_init(&team, threads, k, topo) != 0) {
        fprintf(stderr, "elbo eval: out of memory\n");
        status = 1;
    } else {
        /* the floor: as many training images as images scored (all of them when there are fewer) */
        size_t n_floor = im.n < ds.train.n ? im.n : ds.train.n;
        pg = malloc(im.n), pt = malloc(ds.test.n), ptr = malloc(n_floor);
        status = 1;
        if (pg && pt && ptr && (fg = features_of(&clf, &team, im.pixels, im.n, pg)) &&
            (ft = features_of(&clf, &team, ds.test.pixels, ds.test.n, pt)) &&
            (ftr = features_of(&clf, &team, ds.train.pixels, n_floor, ptr))) {
            double fd, floor;
            elbo_class_coverage cov;
            if (elbo_score_features(fg, im.n, ft, ds.test.n, f, &fd, err, sizeof err) ||
                elbo_score_features(ftr, n_floor, ft, ds.test.n, f, &floor, err, sizeof err) ||
                elbo_class_coverage_compute(pg, im.n, clf.cfg.classes, &cov, err, sizeof err)) {
                fprintf(stderr, "elbo eval: %s\n", err);
            } else {
                report(a, &im, &clf, elbo_params_hash(clf.params, &clf.layout), fd, floor, n_floor, ds.test.n, &cov);
                status = 0;
            }
        }
    }
    free(fg);
    free(ft);
    free(ftr);
    free(pg);
    free(pt);
    free(ptr);
    free(im.pixels);
    elbo_team_free(&team);
    elbo_dataset_free(&ds);
    elbo_classifier_free(&clf);
    if (topo)
        elbo_topology_close(topo);
    return status;
}
