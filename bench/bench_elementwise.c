/* The fused elementwise kernels, single-threaded, on buffers made on the first call and shared by the rows. */
#include "bench_elementwise.h"

#include <stdio.h>
#include <stdlib.h>

#include "bench_triad.h"

typedef struct {
    const elbo_kernels *kern;
    int ready;
    size_t b, z, d, params;
    float *mulv, *eps, *zv, *sigma, *kl, *dz, *dmulv, *logits, *dlogits, *loss, *db;
    uint8_t *x;
    float *param, *m, *v, *grad;
    elbo_adam_hparams adam;
    elbo_sgd_hparams sgd;
} elementwise_ctx;

static elementwise_ctx g_ctx = {.b = 128, .z = 20, .d = 784};

/* Reparameterization forward over the batch. */
static void run_reparam_forward(elementwise_ctx *e)
{
    e->kern->reparam_forward(e->zv, e->sigma, e->kl, e->mulv, e->eps, e->b, e->z);
}

/* Reparameterization backward over the batch. */
static void run_reparam_backward(elementwise_ctx *e)
{
    e->kern->reparam_backward(e->dmulv, e->dz, e->mulv, e->eps, e->sigma, 1.0f, e->b, e->z);
}

/* Sigmoid + MSE + gradient over the decoder output. */
static void run_sigmoid_mse(elementwise_ctx *e)
{
    e->kern->sigmoid_mse(e->dlogits, e->loss, NULL, e->logits, e->x, 1.0f, 1.0f, e->b, e->d);
}

/* Sigmoid + BCE + gradient over the decoder output. */
static void run_sigmoid_bce(elementwise_ctx *e)
{
    e->kern->sigmoid_bce(e->dlogits, e->loss, NULL, e->logits, e->x, 1.0f, e->b, e->d);
}

/* Bias gradient of the decoder output layer. */
static void run_column_sum(elementwise_ctx *e)
{
    e->kern->column_sum(e->db, e->logits, e->b, e->d, e->d, 0);
}

/* One Adam step over the whole 784-400-20 parameter arena. */
static void run_adam(elementwise_ctx *e)
{
    e->adam.step = 1 + e->adam.step % 1000;
    e->kern->adam(e->param, e->m, e->v, e->grad, 1, e->params, e->params, &e->adam);
}

/* One SGD-with-momentum step over the whole arena. */
static void run_sgd(elementwise_ctx *e)
{
    e->kern->sgd(e->param, e->m, e->grad, 1, e->params, e->params, &e->sgd, 0);
}

typedef struct {
    const char *name;
    void (*fn)(elementwise_ctx *e);
    double bytes; /* read + written per call, set at registration */
    double data;  /* distinct bytes those accesses touch (less than bytes for in-place updates) */
    char label[32];
} kernel_row;

static kernel_row g_rows[] = {
    {"elementwise/reparam.forward", run_reparam_forward, 0, 0, ""},
    {"elementwise/reparam.backward", run_reparam_backward, 0, 0, ""},
    {"elementwise/sigmoid_mse", run_sigmoid_mse, 0, 0, ""},
    {"elementwise/sigmoid_bce", run_sigmoid_bce, 0, 0, ""},
    {"elementwise/column_sum", run_column_sum, 0, 0, ""},
    {"elementwise/adam", run_adam, 0, 0, ""},
    {"elementwise/sgd", run_sgd, 0, 0, ""},
};

/* Makes the buffers once; 0 or -1 when out of memory. */
static int ctx_ready(elementwise_ctx *e)
{
    if (e->ready)
        return 0;
    size_t bz = e->b * e->z, bd = e->b * e->d;
    e->mulv = bench_random_floats(2 * bz, 4), e->eps = bench_random_floats(bz, 5), e->zv = bench_random_floats(bz, 6);
    e->sigma = bench_random_floats(bz, 7), e->kl = bench_random_floats(e->b, 8), e->dz = bench_random_floats(bz, 9);
    e->dmulv = bench_random_floats(2 * bz, 10), e->logits = bench_random_floats(bd, 11);
    e->dlogits = bench_random_floats(bd, 12), e->loss = bench_random_floats(e->b, 13);
    e->db = bench_random_floats(e->d, 14), e->x = malloc(bd);
    e->param = bench_random_floats(e->params, 15), e->m = bench_random_floats(e->params, 16);
    e->grad = bench_random_floats(e->params, 17), e->v = bench_random_floats(e->params, 18);
    if (!e->mulv || !e->eps || !e->zv || !e->sigma || !e->kl || !e->dz || !e->dmulv || !e->logits || !e->dlogits ||
        !e->loss || !e->db || !e->x || !e->param || !e->m || !e->grad || !e->v)
        return -1;
    for (size_t i = 0; i < bd; i++)
        e->x[i] = (uint8_t)(i * 37);
    for (size_t i = 0; i < e->params; i++)
        e->v[i] = e->v[i] * e->v[i];
    e->adam = (elbo_adam_hparams){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    e->sgd = (elbo_sgd_hparams){.lr = 1e-3, .momentum = 0.9};
    e->ready = 1;
    return 0;
}

/* The row: one kernel call per iteration; GB/s, and pct_bw against a one-core triad over as much data as the
 * kernel touches, measured (untimed) just before, so under the same load (its GB/s: counter triad_GB/s). */
static void run_row(gbench_state *st, void *user)
{
    kernel_row *row = user;
    if (ctx_ready(&g_ctx) != 0) {
        gbench_skip_with_error(st, "out of memory");
        return;
    }
    double ref_gbs = bench_triad_gbs((size_t)row->data, 3, 0.01); /* the reference, just before the row */
    row->fn(&g_ctx);
    while (gbench_keep_running(st))
        row->fn(&g_ctx);
    bench_set_bytes(st, row->bytes, ref_gbs);
    gbench_set_counter(st, "triad_GB/s", ref_gbs, GBENCH_COUNTER_DEFAULT);
    gbench_set_label(st, row->label);
}

void bench_elementwise_register(const bench_env *env)
{
    elementwise_ctx *e = &g_ctx;
    e->kern = env->kern;
    e->params = 784 * 400 + 400 + 400 * 40 + 40 + 20 * 400 + 400 + 400 * 784 + 784;
    double bz = (double)(e->b * e->z), bd = (double)(e->b * e->d), b = (double)e->b, p = (double)e->params;
    const double bytes[] = {4.0 * (bz * 5 + b), 4.0 * bz * 7, 9.0 * bd + 4.0 * b, 9.0 * bd + 4.0 * b,
                            4.0 * (bd + (double)e->d), 28.0 * p, 20.0 * p};
    /* Adam reads param, m, v, grad and writes the first three back; SGD with momentum: param, buffer, grad. */
    const double data[] = {bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], 16.0 * p, 12.0 * p};
    for (size_t r = 0; r < sizeof g_rows / sizeof g_rows[0]; r++) {
        g_rows[r].bytes = bytes[r];
        g_rows[r].data = data[r];
        if (data[r] < 1024.0 * 1024.0)
            snprintf(g_rows[r].label, sizeof g_rows[r].label, "%.0f KiB of data", data[r] / 1024.0);
        else
            snprintf(g_rows[r].label, sizeof g_rows[r].label, "%.1f MiB of data", data[r] / (1024.0 * 1024.0));
        gbench_def d = {.name = g_rows[r].name, .run = run_row, .user = &g_rows[r], .n_args = 1,
                        .args = {(int64_t)e->b}, .arg_names = {"b"}, .unit = GBENCH_US};
        gbench_register(&d);
    }
}

void bench_elementwise_free(void)
{
    elementwise_ctx *e = &g_ctx;
    free(e->mulv), free(e->eps), free(e->zv), free(e->sigma), free(e->kl), free(e->dz), free(e->dmulv);
    free(e->logits), free(e->dlogits), free(e->loss), free(e->db), free(e->x);
    free(e->param), free(e->m), free(e->v), free(e->grad);
    e->ready = 0;
}
