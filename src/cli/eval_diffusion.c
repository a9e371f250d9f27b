/* `elbo eval --load diff.safetensors`: the variational bound of a diffusion model on the test split, in bits per
 * dimension of the discrete pixels, on its moving-average weights, with the sum over t estimated from --eval-steps K
 * stratified steps (K = T: the whole sum), and the test simple loss. */
#include "eval_diffusion.h"

#include <stdio.h>
#include <string.h>

#include "cli_common.h"
#include "diffusion.h"

#define EVAL_BATCH 256

int cli_eval_diffusion(const char *load, const char *data, size_t threads, int threads_seen, size_t eval_steps,
                       size_t count, uint64_t seed, int json, const char *precision)
{
    char err[512];
    const elbo_kernels *k = cli_kernels_for("eval", precision, load);
    if (!k)
        return 2;
    elbo_diffusion m;
    if (elbo_diffusion_load(load, &m, k, NULL, err, sizeof err)) {
        fprintf(stderr, "elbo eval: %s\n", err);
        return 2;
    }
    elbo_diffusion_use_ema(&m);
    elbo_dataset ds;
    if (cli_load_dataset("eval", data, &ds)) {
        elbo_diffusion_free(&m);
        return 2;
    }
    int status = 0;
    elbo_topology *topo = cli_open_topology("eval");
    if (!threads_seen)
        threads = cli_default_threads(topo);
    elbo_diffusion_activations act;
    elbo_team team;
    memset(&act, 0, sizeof act);
    memset(&team, 0, sizeof team);
    size_t K = eval_steps ? eval_steps : 100, n = count < ds.test.n ? count : ds.test.n;
    if (K > m.cfg.T) {
        fprintf(stderr, "elbo eval: --eval-steps: %zu is more than the model's %zu steps\n", K, m.cfg.T);
        status = 2;
    } else if (ds.test.dim != m.cfg.input_dim) {
        fprintf(stderr, "elbo eval: %s: %zu pixels, but %s has input_dim %zu\n", ds.name, ds.test.dim, load,
                m.cfg.input_dim);
        status = 2;
    } else if (elbo_diffusion_activations_init(&act, &m, EVAL_BATCH) || elbo_team_init(&team, threads, k, topo)) {
        fprintf(stderr, "elbo eval: out of memory\n");
        status = 1;
    } else {
        elbo_team_place_arena(&team, &act.arena);
        double t0 = cli_now();
        double bpd = elbo_diffusion_bound_bpd(&m, &act, &team, ds.test.pixels, n, K, seed);
        double secs = cli_now() - t0;
        elbo_model mm = elbo_diffusion_model(&m);
        elbo_images_view test = cli_view(&ds.test);
        test.n = n;
        elbo_loss_means r = elbo_evaluate(&mm, &act, EVAL_BATCH, &team, &test, seed);
        if (json) {
            const char *keys[] = {"test_bpd", "test_loss", "eval_steps", "images", "seconds", "threads"};
            double vals[] = {bpd, r.loss, (double)K, (double)n, secs, (double)threads};
            cli_print_json_numbers(keys, vals, 6, "dataset", ds.name);
        } else {
            printf("test bound %.4f bits/dim (%zu of %zu steps, stratified), simple loss %.4f over %zu images of %s "
                   "(moving average) in %.1f s\n", bpd, K, m.cfg.T, r.loss, n, ds.name, secs);
        }
    }
    elbo_diffusion_activations_free(&act);
    elbo_team_free(&team);
    elbo_dataset_free(&ds);
    elbo_diffusion_free(&m);
    if (topo)
        elbo_topology_close(topo);
    return status;
}
