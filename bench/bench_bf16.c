/* bf16 rows (bench_bf16.h): the peak probe and the bf16 GEMM beside the fp32 one, interleaved per iteration. */
#include "bench_bf16.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "bf16_peak.h"
#include "cpu_features.h"
#include "gemm.h"
#include "gemm_bf16.h"
#include "gemm_shapes.h"

#define PROBE_ITERS ((size_t)1 << 15)


/* One shape at one batch and, once made, its operands in both precisions. */
typedef struct {
    const bench_env *env;
    const bf16_shape *s;
    size_t m, n, k, lda, ldb;
    int ready;
    float *a, *b, *c;
    elbo_bf16 *a_h, *b_h;
    elbo_gemm_workspace ws;
    elbo_gemm_bf16_workspace ws_h;
    elbo_packed_b packed;
    elbo_packed_b_bf16 packed_h;
} bf16_case;

static bf16_case g_cases[N_BF16_SHAPES * N_BF16_BATCHES];
static size_t g_n_cases;
static double g_bf16_peak; /* GFLOP/s of one core, measured at registration; 0: no probe */

/* The median over 5 rounds of ~0.05 s of the probe's GFLOP/s after a warm-up round; 0 without AVX512_BF16. */
static double measure_bf16_peak(void)
{
#if defined(__x86_64__)
    if (!elbo_cpu_features_get()->avx512bf16)
        return 0;
    double rate[5];
    for (int r = -1; r < 5; r++) {
        double flops = 0, t0 = bench_seconds(), t;
        do {
            flops += bf16_peak_avx512_run(PROBE_ITERS);
            t = bench_seconds() - t0;
        } while (t < 0.05);
        if (r >= 0)
            rate[r] = flops / t / 1e9;
    }
    for (int i = 0; i < 5; i++) /* insertion sort of 5 */
        for (int j = i; j > 0 && rate[j] < rate[j - 1]; j--) {
            double t = rate[j];
            rate[j] = rate[j - 1], rate[j - 1] = t;
        }
    return rate[2];
#else
    return 0;
#endif
}

/* The row bf16_peak: probe calls as iterations; pct_peak against the start-of-run figure. */
static void run_peak(gbench_state *st, void *user)
{
    (void)user;
    double flops = 0;
#if defined(__x86_64__)
    while (gbench_keep_running(st))
        flops = bf16_peak_avx512_run(PROBE_ITERS);
#else
    while (gbench_keep_running(st))
        ;
#endif
    double total = flops * (double)gbench_iterations(st);
    gbench_set_counter(st, "GFLOP/s", total / 1e9, GBENCH_COUNTER_RATE);
    if (g_bf16_peak > 0)
        gbench_set_counter(st, "pct_peak", 100.0 * total / (g_bf16_peak * 1e9), GBENCH_COUNTER_RATE);
}

/* n bf16 copies of x (allocated; NULL when out of memory). */
static elbo_bf16 *to_bf16(const elbo_kernels *kern, const float *x, size_t n)
{
    elbo_bf16 *h = aligned_alloc(64, (n * sizeof(elbo_bf16) + 63) / 64 * 64 + 64);
    if (h)
        kern->f32_to_bf16(h, x, n);
    return h;
}

/* Makes a case's operands and packs its weights; 0 or -1 when out of memory. */
static int case_ready(bf16_case *g)
{
    const elbo_kernels *kern = g->env->kern;
    if (g->ready)
        return 0;
    g->a = bench_random_floats(g->m * g->k, 1);
    g->b = bench_random_floats(g->k * g->n, 2);
    g->c = bench_random_floats(g->m * g->n, 3);
    if (!g->a || !g->b || !g->c)
        return -1;
    g->a_h = to_bf16(kern, g->a, g->m * g->k);
    g->b_h = to_bf16(kern, g->b, g->k * g->n);
    if (!g->a_h || !g->b_h || elbo_gemm_workspace_init(&g->ws, kern) != 0 ||
        elbo_gemm_bf16_workspace_init(&g->ws_h, kern) != 0 || elbo_packed_b_alloc(&g->packed, kern, g->k, g->n) != 0 ||
        elbo_packed_b_bf16_alloc(&g->packed_h, kern, g->k, g->n) != 0)
        return -1;
    elbo_pack_b(&g->packed, elbo_operand_f32(g->b, g->ldb, g->s->tb));
    elbo_pack_b_bf16(&g->packed_h, elbo_operand_bf16(g->b_h, g->ldb, g->s->tb));
    g->ready = 1;
    return 0;
}

/* One bf16 GEMM of the case. */
static void gemm_bf16_once(bf16_case *g)
{
    const bf16_shape *s = g->s;
    elbo_operand a = s->a_bf16 ? elbo_operand_bf16(g->a_h, g->lda, s->ta) : elbo_operand_f32(g->a, g->lda, s->ta);
    if (s->b_is_weight) {
        elbo_gemm_bf16_packed(g->env->kern, &g->ws_h, g->m, g->n, g->k, 1.0f, a, &g->packed_h, 0.0f, g->c, g->n, NULL);
        return;
    }
    elbo_operand b = s->b_bf16 ? elbo_operand_bf16(g->b_h, g->ldb, s->tb) : elbo_operand_f32(g->b, g->ldb, s->tb);
    elbo_gemm_bf16(g->env->kern, &g->ws_h, g->m, g->n, g->k, 1.0f, a, b, 0.0f, g->c, g->n, NULL);
}

/* One fp32 GEMM of the case, as the gemm/elbo row runs it. */
static void gemm_f32_once(bf16_case *g)
{
    const bf16_shape *s = g->s;
    elbo_operand a = elbo_operand_f32(g->a, g->lda, s->ta);
    if (s->b_is_weight)
        elbo_gemm_packed(g->env->kern, &g->ws, g->m, g->n, g->k, 1.0f, a, &g->packed, 0.0f, g->c, g->n, NULL);
    else
        elbo_gemm(g->env->kern, &g->ws, g->m, g->n, g->k, 1.0f, a, elbo_operand_f32(g->b, g->ldb, s->tb), 0.0f,
                  g->c, g->n, NULL);
}

/* A GEMM row: per iteration the bf16 GEMM (timed as the row's iteration) then the fp32 one. */
static void run_gemm(gbench_state *st, void *user)
{
    bf16_case *g = user;
    if (case_ready(g) != 0) {
        gbench_skip_with_error(st, "out of memory");
        return;
    }
    gemm_bf16_once(g); /* warm the caches */
    gemm_f32_once(g);
    double t_bf16 = 0, t_f32 = 0;
    while (gbench_keep_running(st)) {
        double t0 = bench_seconds();
        gemm_bf16_once(g);
        double t1 = bench_seconds();
        gemm_f32_once(g);
        double t2 = bench_seconds();
        gbench_set_iteration_time(st, t1 - t0);
        t_bf16 += t1 - t0, t_f32 += t2 - t1;
    }
    const double flops = 2.0 * (double)g->m * (double)g->n * (double)g->k * (double)gbench_iterations(st);
    char label[64];
    snprintf(label, sizeof label, "%zux%zux%zu %c%c", g->m, g->n, g->k, g->s->ta ? 'T' : 'N', g->s->tb ? 'T' : 'N');
    gbench_set_label(st, label);
    if (t_bf16 <= 0 || t_f32 <= 0)
        return;
    gbench_set_counter(st, "GFLOP/s", flops / t_bf16 / 1e9, GBENCH_COUNTER_DEFAULT);
    if (g_bf16_peak > 0)
        gbench_set_counter(st, "pct_peak", 100.0 * flops / t_bf16 / 1e9 / g_bf16_peak, GBENCH_COUNTER_DEFAULT);
    gbench_set_counter(st, "fp32_GFLOP/s", flops / t_f32 / 1e9, GBENCH_COUNTER_DEFAULT);
    gbench_set_counter(st, "speedup_vs_fp32", t_f32 / t_bf16, GBENCH_COUNTER_DEFAULT);
}

void bench_bf16_register(const bench_env *env)
{
    if (elbo_gemm_bf16_missing(env->kern)) {
        fprintf(stderr, "elbo bench: no bf16 rows: the %s table has no bf16 GEMM here (missing %s)\n", env->kern->isa,
                elbo_gemm_bf16_missing(env->kern));
        return;
    }
    g_bf16_peak = measure_bf16_peak();
    if (g_bf16_peak > 0) {
        fprintf(stderr, "elbo bench: bf16 dot-product peak %.1f GFLOP/s per core (VDPBF16PS zmm, 2 flops per bf16 "
                        "product; measured now)\n", g_bf16_peak);
        gbench_def d = {.name = "bf16_peak", .run = run_peak, .unit = GBENCH_US};
        gbench_register(&d);
    }
    for (size_t i = 0; i < N_BF16_SHAPES; i++) {
        const bf16_shape *s = &BF16_SHAPES[i];
        int batched = !s->m || !s->n || !s->k;
        for (size_t j = 0; j < (batched ? N_BF16_BATCHES : 1); j++) {
            bf16_case *g = &g_cases[g_n_cases++];
            size_t batch = batched ? BF16_BATCHES[j] : 0;
            *g = (bf16_case){.env = env, .s = s};
            g->m = s->m ? s->m : batch, g->n = s->n ? s->n : batch, g->k = s->k ? s->k : batch;
            g->lda = s->ta ? g->m : g->k;
            g->ldb = s->tb ? g->k : g->n;
            char name[64];
            snprintf(name, sizeof name, "gemm_bf16/elbo/%s", s->name);
            gbench_def d = {.name = name, .run = run_gemm, .user = g, .unit = GBENCH_US, .flags = GBENCH_MANUAL_TIME};
            if (batch) {
                d.n_args = 1;
                d.args[0] = (int64_t)batch;
                d.arg_names[0] = "b";
            }
            gbench_register(&d);
        }
    }
}

double bench_bf16_peak_gflops(void)
{
    return g_bf16_peak;
}

void bench_bf16_free(void)
{
    for (size_t i = 0; i < g_n_cases; i++) {
        bf16_case *g = &g_cases[i];
        free(g->a), free(g->b), free(g->c), free(g->a_h), free(g->b_h);
        if (g->ready) {
            elbo_gemm_workspace_free(&g->ws);
            elbo_gemm_bf16_workspace_free(&g->ws_h);
            elbo_packed_b_free(&g->packed);
            elbo_packed_b_bf16_free(&g->packed_h);
        }
    }
    g_n_cases = 0;
}
