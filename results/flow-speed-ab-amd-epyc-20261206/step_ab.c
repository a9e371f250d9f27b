/* A/B timing of flow training steps in one process: one trainer per variant (elbo_flow_ab_variant set while it is
 * built and while it steps), interleaved. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dataset.h"
#include "flow.h"
#include "rng.h"
#include "train.h"
#include "topology.h"

extern int elbo_flow_ab_variant;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv)
{
    size_t batch = argc > 1 ? (size_t)atoi(argv[1]) : 128, threads = argc > 2 ? (size_t)atoi(argv[2]) : 2;
    int reps = argc > 3 ? atoi(argv[3]) : 15, steps = argc > 4 ? atoi(argv[4]) : 6, nvar = argc > 5 ? atoi(argv[5]) : 2;
    char err[256];
    elbo_dataset ds;
    if (elbo_dataset_load(&ds, "/usr/share/datasets/fashion-mnist", err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
    const elbo_kernels *k = elbo_kernels_select();
    elbo_topology *topo = elbo_topology_open(NULL, err, sizeof err);
    elbo_flow m[4];
    elbo_model model[4];
    elbo_trainer tr[4];
    elbo_flow_config cfg = elbo_flow_config_default(ds.train.rows, ds.train.cols);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
    for (int v = 0; v < nvar; v++) {
        elbo_flow_ab_variant = v;
        if (elbo_flow_init(&m[v], &cfg, k, err, sizeof err)) return 1;
        elbo_flow_init_params(&m[v], 1);
        model[v] = elbo_flow_model(&m[v]);
        if (elbo_trainer_init(&tr[v], &model[v], &oc, batch, 1, ds.train.n, threads, topo, err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
        elbo_rng_permutation(tr[v].perm, ds.train.n, 1, 0);
    }
    elbo_images_view train = {ds.train.pixels, ds.train.n, ds.train.dim, ds.train.labels};
    size_t pos[4] = {0};
    double *t = calloc((size_t)(reps * nvar), sizeof *t);
    for (int r = -1; r < reps; r++)
        for (int i = 0; i < nvar; i++) {
            int v = (r + 1 + i) % nvar; /* alternate which goes first */
            elbo_flow_ab_variant = v;
            double t0 = now();
            for (int s = 0; s < steps; s++) {
                if (pos[v] + batch > train.n) pos[v] = 0;
                elbo_trainer_step(&tr[v], &train, tr[v].perm + pos[v], batch);
                pos[v] += batch;
            }
            if (r >= 0) t[v * reps + r] = (now() - t0) / steps;
        }
    for (int v = 0; v < nvar; v++) {
        qsort(t + v * reps, (size_t)reps, sizeof *t, cmpd);
        double med = t[v * reps + reps / 2];
        printf("variant %d: median %.2f ms/step (q1 %.2f q3 %.2f) = %.0f samples/s\n", v, 1e3 * med,
               1e3 * t[v * reps + reps / 4], 1e3 * t[v * reps + 3 * reps / 4], batch / med);
    }
    return 0;
}
