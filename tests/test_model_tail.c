/* The blocks of a training step's tail (weight gradients, optimizer update, repacking): every thread count's
 * plan covers each layer's output features exactly once in whole panels, running the blocks in any order (as
 * threads that help each other do) gives the same bits, and so do weight gradients from an input packed once. */
#include "test_util.h"

#include <string.h>

#include "linear.h"
#include "optim.h"
#include "vae.h"

#define IN 784
#define B 64

/* The default 784-400-20 MSE model, initialized from seed 7 and packed. */
static void make_model(elbo_vae *m)
{
    elbo_vae_config c = elbo_vae_config_default(IN);
    char err[256];
    if (elbo_vae_init(m, &c, test_kernels(), err, sizeof err))
        test_failf("init: %s\n", err);
    elbo_params_init(m->params, &m->layout, 7);
    elbo_vae_pack_weights(m);
}

/* For 1 to 5 parts: the blocks of all parts tile [0, out) of every layer once, each on whole panels, the
 * parts' own blocks in order; one part has one block per layer. */
static void test_tail_plan_covers_each_feature_once(void **state)
{
    (void)state;
    elbo_vae m;
    make_model(&m);
    elbo_vae_activations a;
    assert_int_equal(elbo_vae_activations_init(&a, &m, B), 0);
    size_t nr = m.kern->blocking.nr;
    for (size_t nparts = 1; nparts <= 5; nparts++) {
        unsigned char *seen[ELBO_MAX_LAYERS];
        for (size_t i = 0; i < m.layout.n_layers; i++)
            seen[i] = calloc(m.layout.layer[i].out, 1);
        for (size_t p = 0; p < nparts; p++) {
            size_t n = elbo_vae_tail_plan(&m, &a, p, nparts, NULL);
            elbo_tail_chunk *c = malloc((n ? n : 1) * sizeof *c);
            assert_int_equal(elbo_vae_tail_plan(&m, &a, p, nparts, c), n);
            if (nparts == 1)
                assert_int_equal(n, m.layout.n_layers);
            for (size_t q = 0; q < n; q++) {
                size_t out = m.layout.layer[c[q].layer].out;
                if (c[q].lo % nr != 0 || (c[q].hi % nr != 0 && c[q].hi != out) || c[q].lo >= c[q].hi || c[q].hi > out)
                    test_failf("%zu parts: part %zu block %zu: layer %u rows [%u, %u) not whole panels of %zu\n",
                               nparts, p, q, c[q].layer, c[q].lo, c[q].hi, out);
                for (size_t r = c[q].lo; r < c[q].hi; r++)
                    seen[c[q].layer][r]++;
            }
            free(c);
        }
        for (size_t i = 0; i < m.layout.n_layers; i++) {
            for (size_t r = 0; r < m.layout.layer[i].out; r++)
                if (seen[i][r] != 1)
                    test_failf("%zu parts: layer %zu feature %zu is in %u blocks\n", nparts, i, r, seen[i][r]);
            free(seen[i]);
        }
    }
    elbo_vae_activations_free(&a);
    elbo_vae_free(&m);
}

/* The optimizer and the model an update applies to. */
typedef struct {
    elbo_optimizer *opt;
    elbo_vae *model;
} update_ctx;

/* elbo_param_update_fn: Adam through the optimizer in ctx. */
static void update(void *ctx, size_t off, const float *g, size_t rows, size_t cols, size_t ld)
{
    update_ctx *u = ctx;
    elbo_optimizer_update_block(u->opt, u->model->kern, u->model->params, g, off, rows, cols, ld);
}

/* One Adam step of a fresh model on a fixed batch, running the tail blocks of a 3-part plan in plan order or
 * in reverse; returns the parameters afterwards (caller frees). */
static float *step_params(int reverse)
{
    elbo_vae m;
    make_model(&m);
    elbo_vae_activations a;
    assert_int_equal(elbo_vae_activations_init(&a, &m, B), 0);
    uint8_t *x = malloc(B * IN);
    test_rng r = {21};
    for (size_t i = 0; i < B * IN; i++)
        x[i] = (uint8_t)test_rng_below(&r, 256);
    test_fill(&r, a.eps, B * m.cfg.latent, -2.0f, 2.0f);
    elbo_vae_forward(&m, &a, x, B, NULL);
    elbo_vae_backward_rows(&m, &a, &a.ws, 0, B);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
    elbo_optimizer o;
    assert_int_equal(elbo_optimizer_init(&o, &oc, &m.layout), 0);
    elbo_optimizer_begin_step(&o);
    update_ctx u = {&o, &m};
    size_t first[4] = {0}, n = 0;
    for (size_t p = 0; p < 3; p++)
        first[p + 1] = first[p] + elbo_vae_tail_plan(&m, &a, p, 3, NULL);
    elbo_tail_chunk *c = malloc(first[3] * sizeof *c);
    for (size_t p = 0; p < 3; p++)
        n += elbo_vae_tail_plan(&m, &a, p, 3, c + first[p]);
    for (size_t q = 0; q < n; q++)
        elbo_vae_tail_chunk_run(&m, &a, &a.ws, x, NULL, B, &c[reverse ? n - 1 - q : q], update, &u);
    float *params = malloc(m.layout.total * sizeof(float));
    memcpy(params, m.params, m.layout.total * sizeof(float));
    free(c);
    free(x);
    elbo_optimizer_free(&o);
    elbo_vae_activations_free(&a);
    elbo_vae_free(&m);
    return params;
}

/* The tail's blocks in reverse order leave the parameters of plan order bit for bit (and the step changed
 * them). */
static void test_tail_blocks_any_order_same_bits(void **state)
{
    (void)state;
    elbo_vae m;
    make_model(&m);
    size_t total = m.layout.total;
    float *init = malloc(total * sizeof(float));
    memcpy(init, m.params, total * sizeof(float));
    elbo_vae_free(&m);
    float *in_order = step_params(0), *reversed = step_params(1);
    assert_true(memcmp(in_order, init, total * sizeof(float)) != 0);
    assert_memory_equal(in_order, reversed, total * sizeof(float));
    free(init);
    free(in_order);
    free(reversed);
}

/* Fills n floats with values of both signs and many magnitudes from a small LCG (seed). */
static void fill_values(float *x, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((int32_t)(seed >> 8) - (1 << 23)) / (float)(1 << 20) * (float)(1 + i % 7);
    }
}

/* elbo_linear_param_grads_packed over x packed by row ranges (as threads pack their rows) leaves the bits of
 * elbo_linear_param_grads on x itself, for every block of whole panels of the features, on every ISA table: a layer
 * of 392 inputs (a partial last panel) and 70 outputs, x read with a row stride of 784 (the flow's kept block), over
 * 1 to 900 rows (one K block up to 800 rows, several past it). */
static void test_packed_x_weight_grads_same_bits(void **state)
{
    (void)state;
    enum { IN_K = 392, OUT_K = 70, LD = 784, MAX_B = 900 };
    static const size_t rows[] = {1, 5, 37, 128, 801, 900};
    float *x = malloc(MAX_B * LD * sizeof(float)), *dy = malloc(MAX_B * OUT_K * sizeof(float));
    size_t total = OUT_K * IN_K + OUT_K;
    float *params = calloc(total, sizeof(float)), *g0 = malloc(total * sizeof(float)),
          *g1 = malloc(total * sizeof(float));
    fill_values(x, MAX_B * LD, 3);
    fill_values(dy, MAX_B * OUT_K, 5);
    for (size_t i = 0; elbo_kernels_available(i); i++) {
        const elbo_kernels *k = elbo_kernels_available(i);
        elbo_linear l;
        elbo_gemm_workspace ws;
        elbo_packed_b xp;
        assert_int_equal(elbo_linear_init(&l, k, IN_K, OUT_K, 0, OUT_K * IN_K, ELBO_ACT_RELU, params, 1), 0);
        assert_int_equal(elbo_gemm_workspace_init(&ws, k), 0);
        assert_int_equal(elbo_packed_b_alloc(&xp, k, MAX_B, IN_K), 0);
        size_t nr = elbo_linear_panel_width(&l);
        for (size_t q = 0; q < sizeof rows / sizeof rows[0]; q++) {
            size_t b = rows[q], split = b / 3;
            elbo_operand xo = elbo_operand_f32(x, LD, ELBO_NOTRANS);
            elbo_packed_b pb = xp;
            pb.k = b;
            elbo_pack_b_region(&pb, xo, split, b, 0, IN_K); /* the second thread's rows first */
            elbo_pack_b_region(&pb, xo, 0, split, 0, IN_K);
            memset(g0, 0xff, total * sizeof(float));
            memset(g1, 0xff, total * sizeof(float));
            for (size_t lo = 0; lo < OUT_K; lo += 2 * nr) {
                size_t hi = lo + 2 * nr < OUT_K ? lo + 2 * nr : OUT_K;
                elbo_linear_param_grads(&l, &ws, g0, dy, xo, b, lo, hi);
                elbo_linear_param_grads_packed(&l, &ws, g1, dy, &pb, b, lo, hi);
            }
            if (memcmp(g0, g1, total * sizeof(float)) != 0)
                test_failf("%s: %zu rows: the weight gradients from packed x differ from those of x\n", k->isa, b);
        }
        elbo_packed_b_free(&xp);
        elbo_gemm_workspace_free(&ws);
        elbo_linear_free(&l);
    }
    free(x);
    free(dy);
    free(params);
    free(g0);
    free(g1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tail_plan_covers_each_feature_once),
        cmocka_unit_test(test_tail_blocks_any_order_same_bits),
        cmocka_unit_test(test_packed_x_weight_grads_same_bits),
    };
    return cmocka_run_group_tests_name("model_tail", tests, NULL, NULL);
}
