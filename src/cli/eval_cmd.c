/* `elbo eval`: test -ELBO of a checkpoint with its reconstruction and KL parts. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "checkpoint.h"
#include "cli.h"
#include "cli_common.h"
#include "train.h"

int cli_eval(int argc, char **argv)
{
    const char *load = NULL, *data = NULL;
    uint64_t seed = 1;
    size_t threads = 1;
    int json = 0;
    cli_option opts[] = {
        {"load", ARG_STRING, &load, "PATH", "checkpoint to evaluate (required)", 0, 0, "none", 0},
        {"data", ARG_STRING, &data, "DIR", "dataset: a directory of IDX files, or synthetic:N", 0, 0,
         ELBO_DEFAULT_DATA_DIR, 0},
        {"seed", ARG_U64, &seed, "N", "seed of the posterior samples", 0, 0, NULL, 0},
        {"threads", ARG_SIZE, &threads, "N", "OpenMP threads", 1, 4096, "one per physical core, or OMP_NUM_THREADS", 0},
        {"json", ARG_FLAG, &json, "", "print one JSON object", 0, 0, NULL, 0},
    };
    cli_parse_result pr = cli_parse("eval", argc, argv, opts, sizeof opts / sizeof opts[0],
                                    "Evaluates a checkpoint on the test split: -ELBO per sample (one posterior "
                                    "sample per image),\nwith its reconstruction and KL parts.");
    if (pr != CLI_PARSE_OK)
        return pr == CLI_PARSE_HELP ? 0 : 2;
    if (!load) {
        fprintf(stderr, "elbo eval: --load: required (a checkpoint written by elbo train --save)\n");
        return 2;
    }
    const elbo_kernels *k = cli_kernels("eval");
    if (!k)
        return 2;
    char err[512];
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
        elbo_loss_means r = elbo_evaluate(&m, &act, &team, &test, seed);
        double secs = cli_now() - t0;
        if (json) {
            const char *keys[] = {"test_neg_elbo", "test_recon", "test_kl", "samples", "seconds"};
            double vals[] = {r.loss, r.recon, r.kl, (double)r.samples, secs};
            cli_print_json_numbers(keys, vals, 5, "dataset", ds.name);
        } else {
            printf("test -ELBO %.4f (recon %.4f, KL %.4f) over %zu images of %s\n", r.loss, r.recon, r.kl,
                   r.samples, ds.name);
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
