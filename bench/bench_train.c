/* End-to-end training steps (784-400-20, MSE, Adam, Fashion-MNIST) at several batch sizes and thread counts. */
#include "bench_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_timer.h"
#include "dataset.h"
#include "rng.h"
#include "topology.h"
#include "train.h"

/* Median of n doubles (sorts them). */
static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Median samples/s of training steps at this batch and thread count, over rounds of about `seconds` each. */
static double time_steps(const elbo_kernels *kern, const elbo_topology *topo, const elbo_images_view *train,
                         size_t batch, size_t threads, int rounds, double seconds)
{
    char err[256];
    elbo_vae_config cfg = elbo_vae_config_default(train->dim);
    elbo_vae m;
    elbo_trainer tr;
    if (elbo_vae_init(&m, &cfg, kern, err, sizeof err))
        return 0;
    elbo_params_init(m.params, &m.layout, 1);
    elbo_vae_pack_weights(&m);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
    if (elbo_trainer_init(&tr, &m, &oc, batch, 1, train->n, threads, topo, err, sizeof err)) {
        elbo_vae_free(&m);
        return 0;
    }
    elbo_rng_permutation(tr.perm, train->n, 1, 0);
    size_t pos = 0;
    double rate[64];
    if (rounds > 64)
        rounds = 64;
    for (int r = -1; r < rounds; r++) { /* round -1 warms up */
        size_t steps = 0;
        double t0 = bench_now(), t;
        do {
            if (pos + batch > train->n)
                pos = 0;
            elbo_trainer_step(&tr, train, tr.perm + pos, batch);
            pos += batch;
            steps++;
            t = bench_now() - t0;
        } while (t < seconds);
        if (r >= 0)
            rate[r] = (double)(steps * batch) / t;
    }
    elbo_trainer_free(&tr);
    elbo_vae_free(&m);
    return median(rate, rounds);
}

void bench_training(const elbo_kernels *kern, double peak_per_core, int rounds, int quick, const char *filter)
{
    static const size_t batches[] = {64, 128, 1024};
    char err[512];
    elbo_dataset ds;
    if (elbo_dataset_load(&ds, NULL, err, sizeof err)) {
        printf("\ntraining: skipped (%s)\n", err);
        return;
    }
    elbo_topology *topo = elbo_topology_open(NULL, err, sizeof err);
    size_t max_threads = topo ? elbo_topology_cores(topo) : 1;
    elbo_images_view train = {ds.train.pixels, ds.train.n, ds.train.dim};
    elbo_vae_config cfg = elbo_vae_config_default(train.dim);
    elbo_vae probe;
    double flops = 0;
    if (elbo_vae_init(&probe, &cfg, kern, err, sizeof err) == 0) {
        flops = elbo_vae_train_flops_per_sample(&probe);
        elbo_vae_free(&probe);
    }
    printf("\n%-18s %8s %12s %9s %7s %8s   (784-400-20 mse, Adam, Fashion-MNIST; %.2f MFLOP/sample)\n", "training step",
           "threads", "samples/s", "GFLOP/s", "%peak", "speedup", flops / 1e6);
    for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
        double one = 0;
        for (size_t t = 1; t <= max_threads; t++) {
            char name[48];
            snprintf(name, sizeof name, "train.b%zu.t%zu", batches[bi], t);
            if (filter && !strstr(name, filter))
                continue;
            double sps = time_steps(kern, topo, &train, batches[bi], t, rounds, quick ? 0.1 : 0.4);
            if (t == 1)
                one = sps;
            double gf = sps * flops / 1e9;
            printf("%-18s %8zu %12.0f %9.1f %6.1f%% %7.2fx\n", name, t, sps, gf, 100.0 * gf / (peak_per_core * (double)t),
                   one > 0 ? sps / one : 0.0);
            fflush(stdout);
        }
    }
    if (topo)
        elbo_topology_close(topo);
    elbo_dataset_free(&ds);
}
