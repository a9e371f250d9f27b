/* elbo's benchmark, on Google Benchmark: the FMA peak (measured first: every pct_peak of the run is taken
 * against it), memory bandwidth, the VAE's GEMM shapes against OpenBLAS and oneDNN, the fused elementwise kernels and
 * end-to-end training steps and whole epochs. With --peer=NAME (internal) it is a GEMM peer's child process
 * (bench_peer.h). Every --benchmark_* flag works; besides them:
 *   --results-dir=DIR   write DIR/<cpu-slug>-<yyyymmdd>.json (Google Benchmark JSON) unless --benchmark_out is given
 *   --data=SPEC         the training rows' dataset (as `elbo train --data`; default Fashion-MNIST)
 * A summary table follows the console output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_bf16.h"
#include "bench_common.h"
#include "bench_context.h"
#include "bench_elementwise.h"
#include "bench_epoch.h"
#include "bench_fma.h"
#include "bench_gemm.h"
#include "bench_membw.h"
#include "bench_peer.h"
#include "bench_summary.h"
#include "bench_train.h"
#include "bench_triad.h"

/* Value of our own option --NAME=VALUE at argv[i], or NULL when argv[i] is not that option. */
static const char *own_option(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : NULL;
}

/* Non-zero when the console is what prints (not --benchmark_format=json or csv). */
static int console_format(int argc, char **argv)
{
    int console = 1;
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--benchmark_format=", 19) == 0)
            console = strcmp(argv[i] + 19, "console") == 0;
    return console;
}

/* Non-zero when argv asks for anything but running (help, listing). */
static int not_running(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strncmp(argv[i], "--benchmark_list_tests", 22) == 0)
            return 1;
    return 0;
}

/* Non-zero when argv holds --benchmark_out=... or asks for anything but running. */
static int no_results_file(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--benchmark_out=", 16) == 0)
            return 1;
    return not_running(argc, argv);
}

/* Repetitions of the full-epoch rows, since one is a whole epoch (seconds): 0 (those of --benchmark_repetitions)
 * up to EPOCH_MAX_REPS of them, else EPOCH_MAX_REPS. */
#define EPOCH_MAX_REPS 3
static int epoch_repetitions(int argc, char **argv)
{
    int reps = 1;
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--benchmark_repetitions=", 24) == 0)
            reps = atoi(argv[i] + 24);
    return reps > EPOCH_MAX_REPS ? EPOCH_MAX_REPS : 0;
}

/* Measures the peak, registers every row, adds the context, runs, prints the summary. */
int main(int argc, char **argv)
{
    int peer_status = bench_peer_child_main(argc, argv); /* the hidden --peer=NAME mode (bench_peer.h) */
    if (peer_status >= 0)
        return peer_status;
    const char *results_dir = NULL, *data = NULL;
    char **args = calloc((size_t)argc + 3, sizeof *args);
    int nargs = 0;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (i > 0 && (v = own_option(argv[i], "--results-dir")))
            results_dir = v;
        else if (i > 0 && (v = own_option(argv[i], "--data")))
            data = v;
        else
            args[nargs++] = argv[i];
    }
    bench_env env = {.kern = elbo_kernels_select()};
    if (!env.kern)
        return 2;
    char err[256];
    env.topo = elbo_topology_open(NULL, err, sizeof err);
    env.cores = env.topo ? elbo_topology_cores(env.topo) : 1;
    env.peak_gflops = bench_fma_peak_measure(5, 0.05);
    if (bench_fma_path_vector_bits(env.kern))
        env.path_peak_gflops = bench_fma_peak_measure_bits(bench_fma_path_vector_bits(env.kern), 5, 0.05);
    env.membw_gbs = bench_triad_gbs(3 * bench_membw_array_bytes(&env), 3, 0.1);

    char out_flag[600], path[512];
    if (results_dir && !no_results_file(nargs, args)) {
        if (bench_results_path(results_dir, path, sizeof path) != 0) {
            fprintf(stderr, "elbo_bench: cannot create the results directory '%s'\n", results_dir);
            return 2;
        }
        snprintf(out_flag, sizeof out_flag, "--benchmark_out=%s", path);
        args[nargs++] = out_flag;
        args[nargs++] = "--benchmark_out_format=json";
    } else {
        path[0] = '\0';
    }
    args[nargs] = NULL;

    bench_fma_register(&env);
    bench_membw_register(&env);
    bench_gemm_register(&env);
    bench_bf16_register(&env);
    bench_elementwise_register(&env);
    bench_train_register(&env, data);
    bench_epoch_register(&env, epoch_repetitions(nargs, args));
    if (!not_running(nargs, args)) { /* load the training data now, so the context can describe it */
        const char *why;
        bench_train_data(&why);
    }
    bench_context_add(&env, bench_train_dataset());
    if (!not_running(nargs, args))
        bench_gemm_peers_start(nargs, args);
    fprintf(stderr,
            "elbo bench: isa %s, microkernel %s, FMA peak %.1f GFLOP/s per core (%d-bit FMA), memory bandwidth "
            "%.1f GB/s (triad, one core) (measured now)\n",
            env.kern->isa, env.kern->gemm_ukernel_name, env.peak_gflops, bench_fma_peak_vector_bits(),
            env.membw_gbs);
    if (env.path_peak_gflops > 0)
        fprintf(stderr, "elbo bench: the %s path runs %d-bit FMAs: their peak %.1f GFLOP/s per core (pct_path_peak)\n",
                env.kern->isa, bench_fma_path_vector_bits(env.kern), env.path_peak_gflops);
    int console = console_format(nargs, args);
    int rc = gbench_run(nargs, args);
    if (rc == 0 && console) {
        bench_summary_print(stdout, &env);
        if (path[0])
            printf("\nresults: %s\n", path);
    }
    bench_train_free();
    bench_elementwise_free();
    bench_gemm_free();
    bench_bf16_free();
    bench_membw_free();
    if (env.topo)
        elbo_topology_close(env.topo);
    free(args);
    return rc;
}
