/* `elbo eval --load FLOW`: per image, -log p of the discrete pixels in nats with uniform dequantization; with K draws
 * of the noise per image, -log (1/K sum_k p_k) (log-mean-exp, a bound at least as tight as one draw's); reported as
 * bits per dimension. */
#include "eval_flow.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "flow.h"
#include "team.h"

#define EVAL_BATCH 1024

/* nll (n) = each test image's -log p with the noise of draw `draw`, over team's threads in chunks of EVAL_BATCH. */
static void nll_of_draw(const elbo_flow *m, elbo_flow_activations *act, elbo_team *team, const elbo_images_view *test,
                        uint64_t seed, uint32_t draw, double *nll)
{
    size_t nt = team->n, d = test->dim;
    for (size_t c0 = 0; c0 < test->n; c0 += EVAL_BATCH) {
        size_t b = test->n - c0 < EVAL_BATCH ? test->n - c0 : EVAL_BATCH;
        const uint8_t *x = test->pixels + c0 * d;
#pragma omp parallel num_threads((int)nt) default(none) shared(m, act, team, x, b, nt, seed, draw, nll, c0)
        {
            size_t t = (size_t)omp_get_thread_num(), r0, r1;
            elbo_team_rows(b, t, nt, &r0, &r1);
            if (r1 > r0)
                elbo_flow_nll_rows(m, act, &team->ws[t], x, r0, r1, seed, c0, draw, nll + c0);
        }
    }
}

/* out (n) = each image's -log (1/K sum_k exp(-nll_k)) from K draws' nll (K, n). */
static void log_mean_exp_rows(const double *nll, size_t n, size_t k, double *out)
{
    for (size_t i = 0; i < n; i++) {
        double lo = nll[i];
        for (size_t q = 1; q < k; q++)
            lo = nll[q * n + i] < lo ? nll[q * n + i] : lo;
        double s = 0;
        for (size_t q = 0; q < k; q++)
            s += exp(-(nll[q * n + i] - lo));
        out[i] = lo - log(s / (double)k);
    }
}

/* The mean over the test set of -log (1/K sum_k exp(-nll_k)) from K draws' nll (K, n), in image order; per (n) is
 * scratch. */
static double log_mean_exp_nll(const double *nll, size_t n, size_t k, double *per)
{
    double sum = 0;
    log_mean_exp_rows(nll, n, k, per);
    for (size_t i = 0; i < n; i++)
        sum += per[i];
    return sum / (double)n;
}

int cli_flow_image_nll(const elbo_flow *m, const elbo_images_view *test, size_t threads, const elbo_topology *topo,
                       uint64_t seed, size_t samples, double *nll, const char *command)
{
    elbo_flow_activations act;
    elbo_team team;
    memset(&act, 0, sizeof act);
    memset(&team, 0, sizeof team);
    double *draws = malloc(samples * (test->n ? test->n : 1) * sizeof *draws);
    int status = 0;
    if (!draws || elbo_flow_activations_init(&act, m, EVAL_BATCH) || elbo_team_init(&team, threads, m->kern, topo)) {
        fprintf(stderr, "elbo %s: out of memory\n", command);
        status = 1;
    } else {
        for (size_t q = 0; q < samples; q++)
            nll_of_draw(m, &act, &team, test, seed, (uint32_t)q, draws + q * test->n);
        log_mean_exp_rows(draws, test->n, samples, nll);
    }
    free(draws);
    elbo_flow_activations_free(&act);
    elbo_team_free(&team);
    return status;
}

int cli_eval_flow(const char *load, const char *data, size_t threads, int threads_seen, size_t samples, uint64_t seed,
                  int json, const char *precision)
{
    char err[512];
    const elbo_kernels *k = cli_kernels_for("eval", precision, load);
    if (!k)
        return 2;
    elbo_flow m;
    if (elbo_flow_load(load, &m, k, NULL, err, sizeof err)) {
        fprintf(stderr, "elbo eval: %s\n", err);
        return 2;
    }
    elbo_dataset ds;
    if (cli_load_dataset("eval", data, &ds)) {
        elbo_flow_free(&m);
        return 2;
    }
    int status = 0;
    elbo_topology *topo = cli_open_topology("eval");
    if (!threads_seen)
        threads = cli_default_threads(topo);
    elbo_flow_activations act;
    memset(&act, 0, sizeof act);
    elbo_team team;
    memset(&team, 0, sizeof team);
    double *nll = NULL;
    if (ds.test.rows != m.cfg.image_rows || ds.test.cols != m.cfg.image_cols) {
        fprintf(stderr, "elbo eval: %s: images of %zux%zu pixels, but %s has image_rows %zu and image_cols %zu\n",
                ds.name, ds.test.rows, ds.test.cols, load, m.cfg.image_rows, m.cfg.image_cols);
        status = 2;
    } else if (!(nll = malloc((samples + 1) * (ds.test.n ? ds.test.n : 1) * sizeof *nll)) ||
               elbo_flow_activations_init(&act, &m, EVAL_BATCH) || elbo_team_init(&team, threads, k, topo)) {
        fprintf(stderr, "elbo eval: out of memory\n");
        status = 1;
    } else {
        elbo_images_view test = cli_view(&ds.test);
        double t0 = cli_now();
        for (size_t q = 0; q < samples; q++)
            nll_of_draw(&m, &act, &team, &test, seed, (uint32_t)q, nll + q * test.n);
        double one = 0;
        for (size_t i = 0; i < test.n; i++)
            one += nll[i];
        one /= test.n ? (double)test.n : 1;
        double lme = log_mean_exp_nll(nll, test.n, samples, nll + samples * test.n), secs = cli_now() - t0;
        double bpd = elbo_flow_bits_per_dim(&m.cfg, lme), bpd_one = elbo_flow_bits_per_dim(&m.cfg, one);
        if (json) {
            const char *keys[] = {"test_bits_per_dim", "test_nll", "test_bits_per_dim_one_draw", "dequant_samples",
                                  "samples", "seconds"};
            double vals[] = {bpd, lme, bpd_one, (double)samples, (double)test.n, secs};
            cli_print_json_numbers(keys, vals, 6, "dataset", ds.name);
        } else if (samples > 1) {
            printf("test %.4f bits/dim (%.2f nats per image, log-mean-exp over %zu dequantization draws; one draw: "
                   "%.4f bits/dim) over %zu images of %s\n", bpd, lme, samples, bpd_one, test.n, ds.name);
        } else {
            printf("test %.4f bits/dim (%.2f nats per image) over %zu images of %s\n", bpd, lme, test.n, ds.name);
        }
    }
    free(nll);
    elbo_flow_activations_free(&act);
    elbo_team_free(&team);
    elbo_dataset_free(&ds);
    elbo_flow_free(&m);
    if (topo)
        elbo_topology_close(topo);
    return status;
}
