/* Copy (a = b) and triad (a = b + s*c) over three float arrays of 4x the last-level cache (64 to 256 MiB). */
#include "bench_membw.h"

#include <stdlib.h>

typedef struct {
    const bench_env *env;
    int triad;
} membw_row;

static float *g_a, *g_b, *g_c;
static size_t g_n;
static membw_row g_rows[2];

size_t bench_membw_array_bytes(const bench_env *env)
{
    unsigned long long llc = env->topo ? elbo_topology_cache_bytes(env->topo, 3) : 0;
    if (llc == 0 && env->topo)
        llc = elbo_topology_cache_bytes(env->topo, 2);
    /* Capped: some VMs report the whole socket's L3 to each core (hundreds of MiB), and faulting in 3 x 4x that
     * took a minute of the run; 256 MiB per array still far exceeds any one core's share of a real L3. */
    unsigned long long bytes = 4 * llc;
    if (bytes < (64ull << 20))
        bytes = 64ull << 20;
    if (bytes > (256ull << 20))
        bytes = 256ull << 20;
    return (size_t)bytes;
}

/* Allocates the three arrays once, first-touched by all cores with the loops' own schedule. */
static int arrays_ready(const bench_env *env)
{
    if (g_a)
        return 1;
    g_n = bench_membw_array_bytes(env) / sizeof(float);
    g_a = aligned_alloc(64, g_n * sizeof(float));
    g_b = aligned_alloc(64, g_n * sizeof(float));
    g_c = aligned_alloc(64, g_n * sizeof(float));
    if (!g_a || !g_b || !g_c) {
        bench_membw_free();
        return 0;
    }
    int nt = (int)env->cores;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (size_t i = 0; i < g_n; i++)
        g_a[i] = 0.0f, g_b[i] = 1.0f, g_c[i] = 2.0f;
    return 1;
}

/* a = b on t threads. */
static void copy(size_t n, int t)
{
    float *restrict a = g_a;
    const float *restrict b = g_b;
#pragma omp parallel for num_threads(t) schedule(static)
    for (size_t i = 0; i < n; i++)
        a[i] = b[i];
}

/* a = b + s*c on t threads. */
static void triad(size_t n, int t, float s)
{
    float *restrict a = g_a;
    const float *restrict b = g_b, *restrict c = g_c;
#pragma omp parallel for num_threads(t) schedule(static)
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] + s * c[i];
}

/* The row: one pass over the arrays per iteration. */
static void run_membw(gbench_state *st, void *user)
{
    const membw_row *row = user;
    if (!arrays_ready(row->env)) {
        gbench_skip_with_error(st, "out of memory");
        return;
    }
    int t = (int)gbench_arg(st, 0);
    while (gbench_keep_running(st)) {
        if (row->triad)
            triad(g_n, t, 3.0f);
        else
            copy(g_n, t);
    }
    bench_set_bytes(st, (double)g_n * sizeof(float) * (row->triad ? 3.0 : 2.0), row->env->membw_gbs);
}

void bench_membw_register(const bench_env *env)
{
    static const char *names[] = {"membw/copy", "membw/triad"};
    for (int k = 0; k < 2; k++) {
        g_rows[k] = (membw_row){env, k};
        for (size_t t = 1; t <= env->cores; t++) {
            gbench_def d = {.name = names[k], .run = run_membw, .user = &g_rows[k], .n_args = 1,
                            .args = {(int64_t)t}, .arg_names = {"t"}, .unit = GBENCH_MS};
            gbench_register(&d);
        }
    }
}

void bench_membw_free(void)
{
    free(g_a), free(g_b), free(g_c);
    g_a = g_b = g_c = NULL;
}
