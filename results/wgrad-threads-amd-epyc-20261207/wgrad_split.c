/* How the two-thread weight-gradient rows split dW (bench/bench_gemm.c): dW (m x n) = A^T B with A stored k x m and
 * B k x n, on two OpenMP threads, C's rows split three ways, alternated call by call in one process:
 *   halves   each thread one elbo_gemm on an even half of the rows (the bench before)
 *   panels   the same on whole 16-row panels (the trainer's part split)
 *   blocks   even halves cut into 64-row blocks, a thread's own half first, then what is left of the other's
 *            (the bench now; the trainer's tail claims its blocks the same way)
 * Prints the median GFLOP/s of each with quartiles. --load forks a process pinned to CPU 1 that spins 2 ms of every
 * 10 ms, standing in for another tenant on one core.
 * Build (from the repository root, after make): gcc -O2 -fopenmp -Isrc -Isrc/kernels -Ibench
 *   results/wgrad-threads-amd-epyc-20261207/wgrad_split.c build/libelbo.a -lhwloc -lsleef -lm -o build/wgrad_split
 * Run: build/wgrad_split M N K SECONDS [--load] */
#define _GNU_SOURCE
#include "bench_clock.h"
#include "kernels.h"

#include <omp.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { HALVES, PANELS, BLOCKS, N_SPLITS };
static const char *SPLIT_NAMES[N_SPLITS] = {"halves", "panels", "blocks"};
#define BLOCK_ROWS 64
#define MAX_CALLS 20000

static size_t M, N, K;
static float *a, *b, *c;
static const elbo_kernels *kern;
static elbo_gemm_workspace ws[2];

/* Rows [lo, hi) of dW on thread t's workspace. */
static void rows(int t, size_t lo, size_t hi)
{
    if (hi > lo)
        elbo_gemm(kern, &ws[t], hi - lo, N, K, 1.0f, elbo_operand_f32(a + lo, M, ELBO_TRANS),
                  elbo_operand_f32(b, N, ELBO_NOTRANS), 0.0f, c + lo * N, N, NULL);
}

/* One dW on two threads split as `split`; returns its wall time in seconds. */
static double run(int split)
{
    size_t mid = split == PANELS ? (M + 15) / 16 / 2 * 16 : M / 2, first[3] = {0, mid, M};
    _Atomic size_t next[2];
    atomic_init(&next[0], first[0]);
    atomic_init(&next[1], first[1]);
    double t0 = bench_seconds();
#pragma omp parallel num_threads(2)
    {
        int t = omp_get_thread_num();
        if (split != BLOCKS) {
            rows(t, first[t], first[t + 1]);
        } else {
            for (int q = 0; q < 2; q++) {
                int p = (t + q) % 2;
                size_t lo;
                while ((lo = atomic_fetch_add(&next[p], BLOCK_ROWS)) < first[p + 1])
                    rows(t, lo, lo + BLOCK_ROWS < first[p + 1] ? lo + BLOCK_ROWS : first[p + 1]);
            }
        }
    }
    return bench_seconds() - t0;
}

/* A child pinned to CPU 1 spinning 2 ms of every 10 ms; its pid. */
static pid_t start_load(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(1, &set);
        sched_setaffinity(0, sizeof set, &set);
        for (volatile double x = 0;; usleep(8000))
            for (double t0 = bench_seconds(); bench_seconds() - t0 < 0.002;)
                x += 1;
    }
    return pid;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s M N K SECONDS [--load]\n", argv[0]);
        return 2;
    }
    M = strtoul(argv[1], NULL, 10), N = strtoul(argv[2], NULL, 10), K = strtoul(argv[3], NULL, 10);
    double seconds = atof(argv[4]);
    kern = elbo_kernels_select();
    if (elbo_gemm_workspace_init(&ws[0], kern) || elbo_gemm_workspace_init(&ws[1], kern))
        return 1;
    a = aligned_alloc(64, (M * K * 4 + 63) / 64 * 64), b = aligned_alloc(64, (K * N * 4 + 63) / 64 * 64);
    c = aligned_alloc(64, (M * N * 4 + 63) / 64 * 64);
    for (size_t i = 0; i < M * K; i++)
        a[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < K * N; i++)
        b[i] = (float)(i % 7) * 0.01f;
    pid_t load = argc > 5 && strcmp(argv[5], "--load") == 0 ? start_load() : 0;
    static double t[N_SPLITS][MAX_CALLS];
    size_t n = 0;
    for (double t0 = bench_seconds(); bench_seconds() - t0 < seconds && n < MAX_CALLS; n++)
        for (int s = 0; s < N_SPLITS; s++)
            t[s][n] = run(s);
    if (load > 0)
        kill(load, SIGKILL);
    double flop = 2.0 * (double)M * (double)N * (double)K;
    printf("%zu x %zu x %zu, %zu calls each%s\n", M, N, K, n, load > 0 ? ", one core loaded 20 %" : "");
    for (int s = 0; s < N_SPLITS; s++) {
        qsort(t[s], n, sizeof(double), bench_cmp_double);
        printf("  %-7s median %6.1f GFLOP/s [%6.1f, %6.1f]\n", SPLIT_NAMES[s], flop / t[s][n / 2] * 1e-9,
               flop / t[s][3 * n / 4] * 1e-9, flop / t[s][n / 4] * 1e-9);
    }
    return 0;
}
