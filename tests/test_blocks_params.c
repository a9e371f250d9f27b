/* The parameter arena's layout: layers with named views, 64-byte aligned tensors, and groups of layers that are
 * contiguous blocks of the arena, each updated by an optimizer of its own without touching the others. */
#include "test_util.h"

#include <math.h>
#include <string.h>

#include "optim.h"
#include "params.h"

/* A two-group layout like a GAN's: generator 8 -> 16 -> 12, discriminator 12 -> 10 -> 1. */
static void gan_like(elbo_param_layout *l)
{
    const char *g0 = "gen.0", *g1 = "gen.1", *d0 = "disc.0", *d1 = "disc.1";
    memset(l, 0, sizeof *l);
    assert_int_equal(elbo_param_layout_begin_group(l, "generator"), 0);
    elbo_param_layout_add_linear(l, 8, 16, 1, 1, &g0);
    elbo_param_layout_add_linear(l, 16, 12, 0, 1, &g1);
    assert_int_equal(elbo_param_layout_begin_group(l, "discriminator"), 1);
    elbo_param_layout_add_linear(l, 12, 10, 1, 1, &d0);
    elbo_param_layout_add_linear(l, 10, 1, 0, 1, &d1);
}

/* Groups tile the arena in order, each holds its own layers' tensors whole, and every tensor starts on 64 bytes.
 * Catches: a group range that misses its last layer, overlapping or unaligned blocks. */
static void test_groups_tile_the_arena(void **state)
{
    (void)state;
    elbo_param_layout l;
    gan_like(&l);
    assert_int_equal(l.n_groups, 2);
    size_t next = 0;
    for (size_t g = 0; g < l.n_groups; g++) {
        size_t off, floats;
        elbo_param_layout_group_range(&l, g, &off, &floats);
        assert_int_equal(off, next);
        assert_int_equal(l.group[g].n_layers, 2);
        assert_int_equal(l.group[g].n_tensors, 4);
        for (size_t t = l.group[g].first_tensor; t < l.group[g].first_tensor + l.group[g].n_tensors; t++) {
            const elbo_tensor_view *v = &l.tensor[t];
            assert_true(v->offset >= off && v->offset + elbo_tensor_view_size(v) <= off + floats);
            assert_int_equal(v->offset % 16, 0);
        }
        next = off + floats;
    }
    assert_int_equal(next, l.total);
    assert_string_equal(l.tensor[4].name, "disc.0.weight");
    /* no groups: group 0 is the whole arena */
    elbo_param_layout one;
    const char *p = "fc";
    memset(&one, 0, sizeof one);
    elbo_param_layout_add_linear(&one, 5, 3, 0, 1, &p);
    size_t off, floats;
    elbo_param_layout_group_range(&one, 0, &off, &floats);
    assert_int_equal(off, 0);
    assert_int_equal(floats, one.total);
}

/* A layer exposed as several heads: equal row blocks of one weight and one bias, named weight then bias per head
 * (the order of the VAE's fc_mu / fc_logvar tensors, which fixes their initialization). */
static void test_split_heads(void **state)
{
    (void)state;
    elbo_param_layout l;
    static const char *const heads[] = {"fc_mu", "fc_logvar"};
    memset(&l, 0, sizeof l);
    elbo_param_layout_add_linear(&l, 7, 6, 0, 2, heads);
    assert_int_equal(l.n_layers, 1);
    assert_int_equal(l.n_tensors, 4);
    const char *want[] = {"fc_mu.weight", "fc_mu.bias", "fc_logvar.weight", "fc_logvar.bias"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(l.tensor[i].name, want[i]);
    assert_int_equal(l.tensor[2].offset, l.layer[0].w_off + 3 * 7);
    assert_int_equal(l.tensor[3].offset, l.layer[0].b_off + 3);
    assert_int_equal(l.tensor[0].rows, 3);
}

/* An Adam step over the discriminator's block changes those parameters and leaves the generator's bitwise alone
 * (a GAN's D step must not move G). Catches: a group range that spills into the other group. */
static void test_optimizer_over_a_group(void **state)
{
    (void)state;
    elbo_param_layout l;
    gan_like(&l);
    float *params = elbo_arena_alloc(&l), *grads = elbo_arena_alloc(&l), *before = elbo_arena_alloc(&l);
    assert_true(params && grads && before);
    elbo_params_init(params, &l, 4);
    for (size_t i = 0; i < l.total; i++)
        grads[i] = 0.5f;
    memcpy(before, params, l.total * sizeof(float));
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-2);
    elbo_optimizer o;
    assert_int_equal(elbo_optimizer_init(&o, &oc, &l), 0);
    elbo_optimizer_begin_step(&o);
    size_t off, floats;
    elbo_param_layout_group_range(&l, 1, &off, &floats);
    elbo_optimizer_update_block(&o, test_kernels(), params, grads + off, off, 1, floats, floats);
    size_t g_off, g_floats;
    elbo_param_layout_group_range(&l, 0, &g_off, &g_floats);
    assert_memory_equal(params + g_off, before + g_off, g_floats * sizeof(float));
    const elbo_tensor_view *d = &l.tensor[l.group[1].first_tensor];
    assert_true(params[d->offset] != before[d->offset]);
    assert_true(elbo_params_hash(params, &l) != elbo_params_hash(before, &l));
    elbo_optimizer_free(&o);
    free(params);
    free(grads);
    free(before);
}

/* A block_lr over the discriminator's group: Adam's first step (every gradient 0.5, so each parameter moves by
 * lr g / (|g| + eps) = lr within 1e-6) moves D's parameters by its 4e-2 and G's by the config's 1e-2, each tensor
 * updated as its own block as the tail does. Catches: the block's rate ignored, applied outside its block, or to
 * the wrong side of its end. */
static void test_block_learning_rate(void **state)
{
    (void)state;
    elbo_param_layout l;
    gan_like(&l);
    float *params = elbo_arena_alloc(&l), *grads = elbo_arena_alloc(&l), *before = elbo_arena_alloc(&l);
    assert_true(params && grads && before);
    elbo_params_init(params, &l, 4);
    for (size_t i = 0; i < l.total; i++)
        grads[i] = 0.5f;
    memcpy(before, params, l.total * sizeof(float));
    size_t d_off, d_floats;
    elbo_param_layout_group_range(&l, 1, &d_off, &d_floats);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-2);
    oc.block_lr[oc.n_block_lr++] = (elbo_block_lr){d_off, d_off + d_floats, 4e-2, 1};
    elbo_optimizer o;
    assert_int_equal(elbo_optimizer_init(&o, &oc, &l), 0);
    elbo_optimizer_begin_step(&o);
    for (size_t t = 0; t < l.n_tensors; t++) {
        const elbo_tensor_view *v = &l.tensor[t];
        elbo_optimizer_update_block(&o, test_kernels(), params, grads + v->offset, v->offset, 1, elbo_tensor_view_size(v),
                                    elbo_tensor_view_size(v));
    }
    for (size_t t = 0; t < l.n_tensors; t++) {
        const elbo_tensor_view *v = &l.tensor[t];
        double want = v->offset >= d_off ? 4e-2 : 1e-2;
        for (size_t i = v->offset; i < v->offset + elbo_tensor_view_size(v); i++)
            if (fabs((double)before[i] - (double)params[i] - want) > 1e-6)
                test_failf("%s[%zu]: moved by %.9g, expected %g\n", v->name, i - v->offset,
                           (double)before[i] - params[i], want);
    }
    elbo_optimizer_free(&o);
    free(params);
    free(grads);
    free(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groups_tile_the_arena),
        cmocka_unit_test(test_split_heads),
        cmocka_unit_test(test_optimizer_over_a_group),
        cmocka_unit_test(test_block_learning_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
