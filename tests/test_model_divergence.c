/* The divergence guard of the trainer: a step whose loss or gradients hold a NaN or an infinity is not
 * taken (parameters, optimizer moments and step count stay bitwise as they were), and the epoch stops with
 * a message naming the step and suggesting a lower --lr; a healthy step is taken. With 1 and 2 threads. */
#include "test_util.h"

#include <string.h>

#include "finite.h"
#include "train.h"
#include "vae.h"

#define IN 36
#define B 8

/* A 36-16-4-16-36 MSE model with KL weight beta, initialized from seed 3. */
static void make_model(elbo_vae *m, double beta)
{
    elbo_vae_config c = elbo_vae_config_default(IN);
    c.enc_hidden[0] = c.dec_hidden[0] = 16;
    c.latent = 4;
    c.beta = beta;
    char err[256];
    if (elbo_vae_init(m, &c, test_kernels(), err, sizeof err))
        test_failf("init: %s\n", err);
    elbo_params_init(m->params, &m->layout, 3);
    elbo_vae_pack_weights(m);
}

/* The view called name. */
static const elbo_tensor_view *view(const elbo_vae *m, const char *name)
{
    const elbo_tensor_view *v = elbo_param_layout_find(&m->layout, name);
    assert_non_null(v);
    return v;
}

/* Sets every element of tensor name to value and repacks the weights. */
static void set_tensor(elbo_vae *m, const char *name, float value)
{
    const elbo_tensor_view *v = view(m, name);
    for (size_t i = 0; i < elbo_tensor_view_size(v); i++)
        m->params[v->offset + i] = value;
    elbo_vae_pack_weights(m);
}

/* B images of IN pseudo-random pixels and their row indices. */
static void make_batch(uint8_t *pixels, uint32_t *rows)
{
    test_rng r = {11};
    for (size_t i = 0; i < B * IN; i++)
        pixels[i] = (uint8_t)test_rng_below(&r, 256);
    for (uint32_t i = 0; i < B; i++)
        rows[i] = i;
}

/* Runs one step on threads threads and checks its outcome: taken (healthy) or not (nothing changed);
 * then an epoch over the same data, which must stop at step 1 with a message containing want. */
static void check_step(elbo_vae *m, size_t threads, int healthy, const char *want)
{
    uint8_t pixels[B * IN];
    uint32_t rows[B];
    make_batch(pixels, rows);
    elbo_images_view data = {pixels, B, IN, NULL};
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
    elbo_trainer tr;
    char err[256] = "";
    elbo_model mm = elbo_vae_model(m);
    if (elbo_trainer_init(&tr, &mm, &oc, B, 5, B, threads, NULL, err, sizeof err))
        test_failf("trainer: %s\n", err);
    size_t bytes = m->layout.total * sizeof(float);
    float *before = malloc(bytes);
    assert_non_null(before);
    memcpy(before, m->params, bytes);
    elbo_step_loss l = elbo_trainer_step(&tr, &data, rows, B);
    print_message("    %zu thread(s): loss %g, gradients %s\n", threads, l.loss,
                  tr.nonfinite_grads ? "non-finite" : "finite");
    if (healthy) {
        assert_true(isfinite(l.loss));
        assert_int_equal(tr.nonfinite_grads, 0);
        assert_int_equal(tr.step, 1);
        assert_int_equal(tr.opt.step, 1);
        assert_true(memcmp(before, m->params, bytes) != 0);
        assert_true(elbo_floats_finite(m->params, m->layout.total));
    } else {
        assert_int_equal(tr.step, 0);
        assert_int_equal(tr.opt.step, 0);
        assert_memory_equal(before, m->params, bytes);
        for (size_t i = 0; i < m->layout.total; i++)
            if (tr.opt.m[i] != 0 || tr.opt.v[i] != 0)
                test_failf("optimizer moment %zu changed by a step not taken\n", i);
        elbo_loss_means means;
        assert_int_equal(elbo_trainer_epoch(&tr, &data, 0, NULL, NULL, &means, err, sizeof err), -1);
        print_message("    %s\n", err);
        if (!strstr(err, "step 1:") || !strstr(err, want) || !strstr(err, "try a lower --lr"))
            test_failf("message \"%s\" lacks the step, \"%s\" or the advice\n", err, want);
        assert_int_equal(tr.step, 0);
        assert_memory_equal(before, m->params, bytes);
    }
    free(before);
    elbo_trainer_free(&tr);
}

/* One step of a model whose every log sigma^2 is 80 (latent 4, batch B, beta 1e6): the batch KL must be
 * B * 4 * (e^80 - 81) / 2 and the loss beta times it, each within 1e-5 (the float KL's rounding). */
static void check_overflow_loss(elbo_vae *m, size_t threads)
{
    uint8_t pixels[B * IN];
    uint32_t rows[B];
    make_batch(pixels, rows);
    elbo_images_view data = {pixels, B, IN, NULL};
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
    elbo_trainer tr;
    char err[256] = "";
    elbo_model mm = elbo_vae_model(m);
    if (elbo_trainer_init(&tr, &mm, &oc, B, 5, B, threads, NULL, err, sizeof err))
        test_failf("trainer: %s\n", err);
    elbo_step_loss l = elbo_trainer_step(&tr, &data, rows, B); /* part[1]: the batch KL */
    double kl = B * 4 * (exp(80.0) - 81.0) / 2.0, loss = 1e6 * kl;
    if (!(fabs(l.part[1] / kl - 1.0) < 1e-5) || !(fabs(l.loss / loss - 1.0) < 1e-5))
        test_failf("KL %g, loss %g; the formula gives %g, %g\n", l.part[1], l.loss, kl, loss);
    elbo_trainer_free(&tr);
}

/* A healthy model takes its step. Catches: a guard that refuses finite steps. */
static void test_healthy_step_taken(void **state)
{
    (void)state;
    for (size_t threads = 1; threads <= 2; threads++) {
        elbo_vae m;
        make_model(&m, 1.0);
        check_step(&m, threads, 1, NULL);
        elbo_vae_free(&m);
    }
}

/* NaN in a parameter makes the loss NaN. Catches: a NaN loss stepped on, the step counted. */
static void test_nan_loss_stops(void **state)
{
    (void)state;
    for (size_t threads = 1; threads <= 2; threads++) {
        elbo_vae m;
        make_model(&m, 1.0);
        m.params[view(&m, "encoder.0.bias")->offset + 3] = NAN;
        elbo_vae_pack_weights(&m);
        check_step(&m, threads, 0, "the loss became NaN");
        elbo_vae_free(&m);
    }
}

/* A finite loss with infinite gradients: log sigma^2 = 80 in every latent dimension gives a KL of
 * (e^80 - 1 - 80) / 2 = 2.77e34 per dimension, 1.1e35 per sample over the 4 (a float), times beta = 1e6 and
 * summed over the batch of 8 a loss of 8.9e41 (finite: the batch loss is a double), while
 * d loss / d logvar = beta (sigma^2 - 1) / 2 = 2.8e40 overflows the float gradient (FLT_MAX 3.4e38). The loss and
 * the KL are checked against those formulas (the mu^2 term and the reconstruction are below 1e-25 of them).
 * Catches: gradients not checked (the update would write infinities and NaN into the parameters and Adam's
 * moments). */
static void test_infinite_gradients_stop(void **state)
{
    (void)state;
    for (size_t threads = 1; threads <= 2; threads++) {
        elbo_vae m;
        make_model(&m, 1e6);
        set_tensor(&m, "fc_logvar.weight", 0.0f);
        set_tensor(&m, "fc_logvar.bias", 80.0f);
        check_overflow_loss(&m, threads);
        check_step(&m, threads, 0, "the gradients became NaN or infinite");
        elbo_vae_free(&m);
    }
}

/* elbo_floats_finite on each kind of value. Catches: infinities or a NaN at the end of the array missed. */
static void test_floats_finite(void **state)
{
    (void)state;
    float x[37];
    for (size_t i = 0; i < 37; i++)
        x[i] = (float)i * -9e36f;   /* large finite values, down to -3.15e38 */
    x[36] = 3.4e38f;            /* FLT_MAX is 3.40282e38 */
    assert_int_equal(elbo_floats_finite(x, 37), 1);
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t b = 0; b < 3; b++)
        for (size_t at = 0; at < 37; at += 12) {
            float saved = x[at];
            x[at] = bad[b];
            assert_int_equal(elbo_floats_finite(x, 37), 0);
            x[at] = saved;
        }
    assert_int_equal(elbo_floats_finite(x, 0), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_floats_finite),
        cmocka_unit_test(test_healthy_step_taken),
        cmocka_unit_test(test_nan_loss_stops),
        cmocka_unit_test(test_infinite_gradients_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
