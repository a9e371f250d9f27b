/* elbo's kernel benchmark (single thread): FMA peak, the VAE's GEMM shapes and 2048^3 against OpenBLAS,
 * and the fused elementwise kernels in GB/s. Usage: elbo_bench [--quick] [--filter SUBSTRING] */
#include "bench_timer.h"
#include "bench_train.h"
#include "fma_peak.h"
#include "gemm.h"
#include "kernels.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int quick;
    const char *filter;
    int rounds;
    double batch_seconds;
} bench_options;

/* ---- FMA peak ---- */

/* One batch of the FMA probe (ctx: iterations per call; flops written back through it). */
static void run_fma_probe(void *ctx)
{
    fma_peak_avx2_run(*(size_t *)ctx);
}

/* Median single-core FMA peak in GFLOP/s. */
static double measure_fma_peak(const bench_options *opt)
{
    size_t iters = 1u << 20;
    bench_fn fn = run_fma_probe;
    void *ctx = &iters;
    double sec;
    bench_interleaved(&fn, &ctx, 1, opt->rounds, opt->batch_seconds, &sec);
    return (double)iters * 12.0 * 16.0 / sec / 1e9;
}

/* ---- GEMM ---- */

typedef struct {
    const char *name;
    size_t m, n, k;
    elbo_trans ta, tb;
    int b_is_weight; /* the trainer packs B once per optimizer step */
} gemm_shape;

typedef struct {
    const gemm_shape *s;
    const elbo_kernels *kern;
    elbo_gemm_workspace ws;
    elbo_packed_b packed;
    float *a, *b, *c;
    size_t lda, ldb;
} gemm_ctx;

/* elbo GEMM packing both operands inside the call. */
static void run_elbo_gemm(void *p)
{
    gemm_ctx *g = p;
    const gemm_shape *s = g->s;
    elbo_gemm(g->kern, &g->ws, s->m, s->n, s->k, 1.0f, elbo_operand_f32(g->a, g->lda, s->ta),
              elbo_operand_f32(g->b, g->ldb, s->tb), 0.0f, g->c, s->n, NULL);
}

/* elbo GEMM with B packed beforehand (how the trainer runs weight operands). */
static void run_elbo_gemm_prepacked(void *p)
{
    gemm_ctx *g = p;
    const gemm_shape *s = g->s;
    elbo_gemm_packed(g->kern, &g->ws, s->m, s->n, s->k, 1.0f, elbo_operand_f32(g->a, g->lda, s->ta), &g->packed,
                     0.0f, g->c, s->n, NULL);
}

/* OpenBLAS cblas_sgemm on the same operands. */
static void run_openblas_gemm(void *p)
{
    gemm_ctx *g = p;
    const gemm_shape *s = g->s;
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, (int)s->m,
                (int)s->n, (int)s->k, 1.0f, g->a, (int)g->lda, g->b, (int)g->ldb, 0.0f, g->c, (int)s->n);
}

/* Random floats in [-1, 1). */
static float *random_floats(size_t n, unsigned seed)
{
    float *x = aligned_alloc(64, ((n * sizeof(float)) + 63) / 64 * 64);
    srand(seed);
    for (size_t i = 0; i < n; i++)
        x[i] = 2.0f * (float)rand() / (float)RAND_MAX - 1.0f;
    return x;
}

/* Times one shape (elbo, elbo prepacked if B is a weight, OpenBLAS) and prints its row. */
static void bench_gemm_shape(const gemm_shape *s, const elbo_kernels *kern, double peak, const bench_options *opt)
{
    gemm_ctx g = {.s = s, .kern = kern};
    g.lda = s->ta ? s->m : s->k;
    g.ldb = s->tb ? s->k : s->n;
    g.a = random_floats(s->m * s->k, 1);
    g.b = random_floats(s->k * s->n, 2);
    g.c = random_floats(s->m * s->n, 3);
    if (elbo_gemm_workspace_init(&g.ws, kern) != 0 || elbo_packed_b_alloc(&g.packed, kern, s->k, s->n) != 0) {
        fprintf(stderr, "elbo_bench: out of memory for %s\n", s->name);
        exit(1);
    }
    elbo_pack_b(&g.packed, elbo_operand_f32(g.b, g.ldb, s->tb));
    const char *pack_a = getenv("ELBO_BENCH_PACK_A");
    if (pack_a && *pack_a)
        g.ws.pack_a = pack_a[0] == '1' ? ELBO_PACK_A_ALWAYS : ELBO_PACK_A_NEVER;
    bench_fn fns[3] = {run_elbo_gemm, run_openblas_gemm, run_elbo_gemm_prepacked};
    void *ctxs[3] = {&g, &g, &g};
    double sec[3];
    bench_interleaved(fns, ctxs, s->b_is_weight ? 3 : 2, opt->rounds, opt->batch_seconds, sec);
    double flops = 2.0 * (double)s->m * (double)s->n * (double)s->k;
    double g_pack = flops / sec[0] / 1e9, g_blas = flops / sec[1] / 1e9;
    double g_run = s->b_is_weight ? flops / sec[2] / 1e9 : g_pack;
    char shape[64];
    snprintf(shape, sizeof shape, "%zux%zux%zu %c%c", s->m, s->n, s->k, s->ta ? 'T' : 'N', s->tb ? 'T' : 'N');
    printf("%-18s %-18s %9.1f %6.1f%% %10.1f %10.1f %7.2fx %s\n", s->name, shape, g_run, 100.0 * g_run / peak,
           g_pack, g_blas, g_run / g_blas, s->b_is_weight ? "(B prepacked)" : "");
    fflush(stdout);
    elbo_packed_b_free(&g.packed);
    elbo_gemm_workspace_free(&g.ws);
    free(g.a), free(g.b), free(g.c);
}

static const gemm_shape GEMM_SHAPES[] = {
    {"enc1.fwd", 128, 400, 784, ELBO_NOTRANS, ELBO_TRANS, 1},
    {"dec2.fwd", 128, 784, 400, ELBO_NOTRANS, ELBO_TRANS, 1},
    {"enc_heads.fwd", 128, 40, 400, ELBO_NOTRANS, ELBO_TRANS, 1},
    {"dec2.dgrad", 128, 400, 784, ELBO_NOTRANS, ELBO_NOTRANS, 1},
    {"enc1.wgrad", 400, 784, 128, ELBO_TRANS, ELBO_NOTRANS, 0},
    {"dec2.wgrad", 784, 400, 128, ELBO_TRANS, ELBO_NOTRANS, 0},
    {"dec1.wgrad", 400, 20, 128, ELBO_TRANS, ELBO_NOTRANS, 0},
    {"square", 2048, 2048, 2048, ELBO_NOTRANS, ELBO_NOTRANS, 0},
};

/* ---- elementwise kernels ---- */

typedef struct {
    const elbo_kernels *kern;
    size_t b, z, d, params;
    float *mulv, *eps, *zv, *sigma, *kl, *dz, *dmulv, *logits, *dlogits, *loss, *db;
    uint8_t *x;
    float *param, *m, *v, *grad;
    elbo_adam_hparams adam;
    elbo_sgd_hparams sgd;
} elementwise_ctx;

/* Reparameterization forward over the batch. */
static void run_reparam_forward(void *p)
{
    elementwise_ctx *e = p;
    e->kern->reparam_forward(e->zv, e->sigma, e->kl, e->mulv, e->eps, e->b, e->z);
}

/* Reparameterization backward over the batch. */
static void run_reparam_backward(void *p)
{
    elementwise_ctx *e = p;
    e->kern->reparam_backward(e->dmulv, e->dz, e->mulv, e->eps, e->sigma, 1.0f, e->b, e->z);
}

/* Sigmoid + MSE + gradient over the decoder output. */
static void run_sigmoid_mse(void *p)
{
    elementwise_ctx *e = p;
    e->kern->sigmoid_mse(e->dlogits, e->loss, NULL, e->logits, e->x, 1.0f, 1.0f, e->b, e->d);
}

/* Sigmoid + BCE + gradient over the decoder output. */
static void run_sigmoid_bce(void *p)
{
    elementwise_ctx *e = p;
    e->kern->sigmoid_bce(e->dlogits, e->loss, NULL, e->logits, e->x, 1.0f, e->b, e->d);
}

/* Bias gradient of the decoder output layer. */
static void run_column_sum(void *p)
{
    elementwise_ctx *e = p;
    e->kern->column_sum(e->db, e->logits, e->b, e->d, e->d, 0);
}

/* One Adam step over the whole 784-400-20 parameter arena. */
static void run_adam(void *p)
{
    elementwise_ctx *e = p;
    e->adam.step = 1 + e->adam.step % 1000;
    e->kern->adam(e->param, e->m, e->v, e->grad, e->params, &e->adam);
}

/* One SGD-with-momentum step over the whole arena. */
static void run_sgd(void *p)
{
    elementwise_ctx *e = p;
    e->kern->sgd(e->param, e->m, e->grad, e->params, &e->sgd, 0);
}

/* Times every fused elementwise kernel at batch 128 of the 784-400-20 model and prints GB/s. */
static void bench_elementwise(const elbo_kernels *kern, const bench_options *opt)
{
    elementwise_ctx e = {.kern = kern, .b = 128, .z = 20, .d = 784};
    e.params = 784 * 400 + 400 + 400 * 40 + 40 + 20 * 400 + 400 + 400 * 784 + 784;
    size_t bz = e.b * e.z, bd = e.b * e.d;
    e.mulv = random_floats(2 * bz, 4), e.eps = random_floats(bz, 5), e.zv = random_floats(bz, 6);
    e.sigma = random_floats(bz, 7), e.kl = random_floats(e.b, 8), e.dz = random_floats(bz, 9);
    e.dmulv = random_floats(2 * bz, 10), e.logits = random_floats(bd, 11), e.dlogits = random_floats(bd, 12);
    e.loss = random_floats(e.b, 13), e.db = random_floats(e.d, 14);
    e.x = malloc(bd);
    for (size_t i = 0; i < bd; i++)
        e.x[i] = (uint8_t)(i * 37);
    e.param = random_floats(e.params, 15), e.m = random_floats(e.params, 16), e.grad = random_floats(e.params, 17);
    e.v = random_floats(e.params, 18);
    for (size_t i = 0; i < e.params; i++)
        e.v[i] = e.v[i] * e.v[i];
    e.adam = (elbo_adam_hparams){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    e.sgd = (elbo_sgd_hparams){.lr = 1e-3, .momentum = 0.9};
    struct {
        const char *name;
        bench_fn fn;
        double bytes;
    } rows[] = {
        {"reparam.forward", run_reparam_forward, 4.0 * (double)(bz * 5 + e.b)},
        {"reparam.backward", run_reparam_backward, 4.0 * (double)(bz * 7)},
        {"sigmoid_mse", run_sigmoid_mse, 9.0 * (double)bd + 4.0 * (double)e.b},
        {"sigmoid_bce", run_sigmoid_bce, 9.0 * (double)bd + 4.0 * (double)e.b},
        {"column_sum", run_column_sum, 4.0 * (double)(bd + e.d)},
        {"adam", run_adam, 28.0 * (double)e.params},
        {"sgd", run_sgd, 16.0 * (double)e.params},
    };
    printf("\n%-18s %-18s %9s %10s\n", "elementwise", "size", "GB/s", "us/call");
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        if (opt->filter && !strstr(rows[r].name, opt->filter))
            continue;
        void *ctx = &e;
        double sec;
        bench_interleaved(&rows[r].fn, &ctx, 1, opt->rounds, opt->batch_seconds, &sec);
        char size[32];
        snprintf(size, sizeof size, "%.1f KiB", rows[r].bytes / 1024.0);
        printf("%-18s %-18s %9.1f %10.2f\n", rows[r].name, size, rows[r].bytes / sec / 1e9, sec * 1e6);
        fflush(stdout);
    }
    free(e.mulv), free(e.eps), free(e.zv), free(e.sigma), free(e.kl), free(e.dz), free(e.dmulv);
    free(e.logits), free(e.dlogits), free(e.loss), free(e.db), free(e.x);
    free(e.param), free(e.m), free(e.v), free(e.grad);
}

int main(int argc, char **argv)
{
    bench_options opt = {.rounds = 9, .batch_seconds = 0.05};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            opt.quick = 1;
            opt.rounds = 3;
            opt.batch_seconds = 0.02;
        } else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
            opt.filter = argv[++i];
        } else {
            fprintf(stderr, "elbo_bench: unknown argument '%s' (usage: elbo_bench [--quick] [--filter SUBSTRING])\n",
                    argv[i]);
            return 2;
        }
    }
    const elbo_kernels *kern = elbo_kernels_select();
    if (!kern)
        return 2;
    openblas_set_num_threads(1);
    double peak = measure_fma_peak(&opt);
    printf("elbo kernel bench: isa %s, microkernel %s, 1 thread, %d rounds (median)\n", kern->isa,
           kern->gemm_ukernel_name, opt.rounds);
    printf("FMA peak (measured, 1 core, AVX2): %.1f GFLOP/s\n\n", peak);
    printf("%-18s %-18s %9s %7s %10s %10s %8s\n", "gemm", "MxNxK op", "GFLOP/s", "%peak", "packB/call",
           "OpenBLAS", "ratio");
    for (size_t i = 0; i < sizeof GEMM_SHAPES / sizeof GEMM_SHAPES[0]; i++) {
        if (opt.filter && !strstr(GEMM_SHAPES[i].name, opt.filter))
            continue;
        bench_gemm_shape(&GEMM_SHAPES[i], kern, peak, &opt);
    }
    bench_elementwise(kern, &opt);
    bench_training(kern, peak, opt.rounds, opt.quick, opt.filter);
    return 0;
}
