/* Parity with PyTorch autograd: tests/parity/vae_torch.py writes weights, uint8 images, noise, the
 * per-sample losses and every parameter gradient of the batch-summed loss (float32 autograd); elbo
 * loads the same weights, runs its forward and backward passes on every ISA this CPU runs, and must agree.
 *
 * Tolerance: for each tensor, max |elbo - torch| <= 1e-4 * max |torch| (the gradients of one tensor
 * share a scale; elementwise relative error is meaningless for entries that cancel to ~0). Per-sample
 * losses: relative 1e-5 plus 1e-5 absolute. A dropped ReLU mask in the data gradient, a KL weight of 0 in
 * the reparameterization backward, or a bias gradient that misses a row misses by orders of magnitude
 * (each checked by breaking the code on purpose: 0.14 to 1.9 of the scale). */
#include "test_scratch.h"
#include "test_oracle.h"

#include <string.h>
#include <unistd.h>

#include "kernels.h"
#include "safetensors.h"
#include "vae.h"

#define GRAD_TOL 1e-4

static char suite_dir[MAX_PATH];

static const char *const CASES[] = {
    "mse_784_400_20", "bce_784_400_20", "mse_784_512_256_32", "bce_784_512_256_32", "mse_z2_sigma_beta",
};

/* Runs the PyTorch oracle once for every case into a fresh temporary directory. */
static int generate_suite(void **state)
{
    (void)state;
    char cmd[2 * MAX_PATH];
    scratch_mkdtemp(suite_dir, "elbo-parity");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/parity/vae_torch.py grads-suite %s", suite_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Removes the temporary directory. */
static int remove_suite(void **state)
{
    (void)state;
    remove_tree(suite_dir);
    return 0;
}

/* The model config recorded in the oracle file's metadata. */
static elbo_vae_config config_of(const elbo_st_file *f)
{
    char err[256];
    elbo_vae_config c = elbo_vae_config_default(0);
    c.input_dim = (size_t)atol(elbo_st_meta_get(f, "input_dim"));
    c.latent = (size_t)atol(elbo_st_meta_get(f, "latent"));
    assert_int_equal(elbo_parse_widths(elbo_st_meta_get(f, "encoder_hidden"), c.enc_hidden, &c.n_enc, err, sizeof err), 0);
    assert_int_equal(elbo_parse_widths(elbo_st_meta_get(f, "decoder_hidden"), c.dec_hidden, &c.n_dec, err, sizeof err), 0);
    assert_int_equal(elbo_recon_parse(elbo_st_meta_get(f, "recon"), &c.recon), 0);
    c.sigma0 = atof(elbo_st_meta_get(f, "sigma0"));
    c.beta = atof(elbo_st_meta_get(f, "beta"));
    return c;
}

/* Loads case `name`, runs elbo's forward and backward with kernels k, compares with the oracle. */
static void check_case(const char *name, const elbo_kernels *k)
{
    char path[2 * MAX_PATH], err[256];
    elbo_st_file f;
    elbo_vae m;
    elbo_vae_activations a;
    snprintf(path, sizeof path, "%s/%s.safetensors", suite_dir, name);
    if (elbo_st_read(path, &f, err, sizeof err) != 0)
        test_failf("%s\n", err);
    elbo_vae_config c = config_of(&f);
    assert_int_equal(elbo_vae_init(&m, &c, k, err, sizeof err), 0);
    for (size_t i = 0; i < m.layout.n_tensors; i++) {
        const elbo_tensor_view *v = &m.layout.tensor[i];
        const elbo_st_tensor *t = oracle_need(&f, v->name);
        assert_int_equal(t->count, elbo_tensor_view_size(v));
        memcpy(m.params + v->offset, t->data, t->count * sizeof(float));
    }
    elbo_vae_pack_weights(&m);

    const elbo_st_tensor *xt = oracle_need(&f, "input.x"), *et = oracle_need(&f, "input.eps");
    size_t b = xt->shape[0], d = c.input_dim;
    assert_int_equal(elbo_vae_activations_init(&a, &m, b), 0);
    uint8_t *x = malloc(b * d);
    for (size_t i = 0; i < b * d; i++) {
        float v;
        memcpy(&v, xt->data + i, sizeof v);
        x[i] = (uint8_t)v;
    }
    memcpy(a.eps, et->data, b * c.latent * sizeof(float));
    memset(m.grads, 0xff, m.layout.total * sizeof(float)); /* NaN: every gradient must be written */

    elbo_batch_loss loss = elbo_vae_forward(&m, &a, x, b, NULL);
    elbo_vae_backward(&m, &a, x, b);

    const elbo_st_tensor *rt = oracle_need(&f, "out.recon"), *kt = oracle_need(&f, "out.kl"), *lt = oracle_need(&f, "out.loss");
    for (size_t r = 0; r < b; r++) {
        float want_r, want_k;
        memcpy(&want_r, rt->data + r, sizeof want_r);
        memcpy(&want_k, kt->data + r, sizeof want_k);
        if (!(fabs(a.recon[r] - want_r) <= 1e-5 * fabs(want_r) + 1e-5) ||
            !(fabs(a.kl[r] - want_k) <= 1e-5 * fabs(want_k) + 1e-5))
            test_failf("%s/%s row %zu: recon %.8g vs torch %.8g, kl %.8g vs %.8g\n", name, k->isa, r, a.recon[r],
                       want_r, a.kl[r], want_k);
    }
    float want_loss;
    memcpy(&want_loss, lt->data, sizeof want_loss);
    if (!(fabs(loss.loss - want_loss) <= 1e-5 * fabs(want_loss)))
        test_failf("%s/%s: loss %.9g vs torch %.9g\n", name, k->isa, loss.loss, want_loss);

    double worst = 0;
    for (size_t i = 0; i < m.layout.n_tensors; i++) {
        const elbo_tensor_view *v = &m.layout.tensor[i];
        char gname[ELBO_TENSOR_NAME_MAX + 8];
        snprintf(gname, sizeof gname, "grad.%s", v->name);
        const elbo_st_tensor *g = oracle_need(&f, gname);
        float *want = malloc(g->count * sizeof(float));
        memcpy(want, g->data, g->count * sizeof(float));
        double e = oracle_scaled_max_error(m.grads + v->offset, want, g->count);
        free(want);
        if (!(e <= GRAD_TOL))
            test_failf("%s/%s: gradient of %s differs from torch by %.3g of its scale (tolerance %g)\n", name,
                       k->isa, v->name, e, GRAD_TOL);
        if (e > worst)
            worst = e;
    }
    printf("  %-20s %-6s loss %.6g (torch %.6g), worst gradient error %.2e of scale\n", name, k->isa, loss.loss,
           want_loss, worst);
    free(x);
    elbo_vae_activations_free(&a);
    elbo_vae_free(&m);
    elbo_st_free(&f);
}

/* Every case on every ISA this CPU runs. */
static void test_gradients_match_torch(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++)
        for (size_t i = 0; test_model_tables(i); i++)
            check_case(CASES[c], test_model_tables(i));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_match_torch),
    };
    return cmocka_run_group_tests(tests, generate_suite, remove_suite);
}
