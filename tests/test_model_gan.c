/* The GAN against PyTorch autograd, and its two-phase training step: tests/parity/gan_torch.py writes weights
 * (generator.* and discriminator.*), uint8 real images, the normals z, the D step's (D's real label 1, or 0.9 in
 * gan_smooth_b16) and the G step's losses, every D parameter's gradient of the D loss and every G parameter's
 * gradient of the G loss on those same weights, and the G loss's gradient with respect to G's pre-sigmoid output;
 * elbo loads the same weights and must agree, on every ISA table this CPU runs.
 *
 * Tolerances, those of the VAE's and the classifier's parity tests and for the same reasons: for each tensor,
 * max |elbo - torch| <= GRAD_TOL = 1e-4 of the tensor's largest |torch gradient| (float32 sums over up to 784
 * inputs and 256 rows in different orders leave ~1e-6 of the scale; a dropped mask or a wrong slope miss by 1e-2 or
 * more). Losses: LOSS_TOL = 1e-5 relative.
 *
 * The training path: the real trainer (elbo_trainer_step with elbo_gan_model's two phases: D's forward over 2b rows
 * and its tail, a barrier, then G's step through the updated D) on 1, 2 and 3 threads leaves bitwise the same
 * parameters, Adam moments and gradients after each of 5 steps (the last one partial); its first step's D gradients
 * are bitwise those of elbo_gan_d_grads on the same noise (seed, EPS, row, step 0). */
#include "test_scratch.h"
#include "test_oracle.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include "gan.h"
#include "kernels.h"
#include "optim.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "train.h"

#define GRAD_TOL 1e-4
#define LOSS_TOL 1e-5

#define DET_IMAGES 300
#define DET_BATCH 64
#define DET_STEPS 5
#define DET_SEED 11

static char suite_dir[MAX_PATH];

static const char *const CASES[] = {"gan_default_b16", "gan_default_b128", "gan_odd_b9", "gan_smooth_b16",
                                    "gan_sn_b16",      "gan_sn_odd_b9",    "gan_sn_b128"};

/* Runs the PyTorch oracle once for every case into a fresh temporary directory. */
static int generate_suite(void **state)
{
    (void)state;
    char cmd[2 * MAX_PATH];
    scratch_mkdtemp(suite_dir, "elbo-gan-parity");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/parity/gan_torch.py grads-suite %s", suite_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Removes the temporary directory. */
static int remove_suite(void **state)
{
    (void)state;
    remove_tree(suite_dir);
    return 0;
}

/* Reads case `name`'s oracle file into f and the model config recorded in its metadata (square-free shape: 1 x D). */
static elbo_gan_config open_case(const char *name, elbo_st_file *f)
{
    char path[2 * MAX_PATH], err[256];
    snprintf(path, sizeof path, "%s/%s.safetensors", suite_dir, name);
    if (elbo_st_read(path, f, err, sizeof err) != 0)
        test_failf("%s\n", err);
    size_t d = (size_t)atol(elbo_st_meta_get(f, "input_dim"));
    elbo_gan_config c = elbo_gan_config_default(1, d);
    c.latent = (size_t)atol(elbo_st_meta_get(f, "latent"));
    c.slope = atof(elbo_st_meta_get(f, "leaky_slope"));
    c.real_label = atof(elbo_st_meta_get(f, "real_label"));
    c.spectral_norm = atoi(elbo_st_meta_get(f, "spectral_norm"));
    assert_int_equal(elbo_parse_widths(elbo_st_meta_get(f, "generator_hidden"), c.g_hidden, &c.n_g, err, sizeof err),
                     0);
    assert_int_equal(
        elbo_parse_widths(elbo_st_meta_get(f, "discriminator_hidden"), c.d_hidden, &c.n_d, err, sizeof err), 0);
    return c;
}

/* Compares n floats of elbo's with the oracle tensor name; returns the error as a fraction of its scale. */
static double check_tensor(const float *got, const elbo_st_file *f, const char *name, size_t n, const char *what)
{
    const elbo_st_tensor *t = oracle_need(f, name);
    assert_int_equal(t->count, n);
    float *want = malloc(n * sizeof(float));
    memcpy(want, t->data, n * sizeof(float));
    double e = oracle_scaled_max_error(got, want, n);
    free(want);
    if (!(e <= GRAD_TOL))
        test_failf("%s: %s differs from torch by %.3g of its scale (tolerance %g)\n", what, name, e, GRAD_TOL);
    return e;
}

/* Compares the gradients of every tensor of group g (prefix "grad_d." or "grad_g.") with the oracle's; returns
 * the worst error as a fraction of its tensor's scale. */
static double check_group(const elbo_gan *m, size_t g, const char *prefix, const elbo_st_file *f, const char *what)
{
    double worst = 0;
    const elbo_param_group *gr = &m->layout.group[g];
    for (size_t i = gr->first_tensor; i < gr->first_tensor + gr->n_tensors; i++) {
        const elbo_tensor_view *v = &m->layout.tensor[i];
        char name[ELBO_TENSOR_NAME_MAX + 8];
        if (strstr(v->name, ".weight_u") || strstr(v->name, ".weight_v"))
            continue; /* a spectral norm's state, not trained */
        snprintf(name, sizeof name, "%s%s", prefix, v->name);
        double e = check_tensor(m->grads + v->offset, f, name, elbo_tensor_view_size(v), what);
        worst = e > worst ? e : worst;
    }
    return worst;
}

/* Loads case `name`, runs the D and G steps' gradients with kernels k, compares with the oracle. */
static void check_case(const char *name, const elbo_kernels *k)
{
    char what[128], err[256];
    elbo_st_file f;
    elbo_gan m;
    elbo_gan_activations a;
    elbo_gan_config c = open_case(name, &f);
    if (elbo_gan_init(&m, &c, k, err, sizeof err) != 0)
        test_failf("%s\n", err);
    for (size_t i = 0; i < m.layout.n_tensors; i++) {
        const elbo_tensor_view *v = &m.layout.tensor[i];
        const elbo_st_tensor *t = oracle_need(&f, v->name);
        assert_int_equal(t->count, elbo_tensor_view_size(v));
        memcpy(m.params + v->offset, t->data, t->count * sizeof(float));
    }
    elbo_gan_pack_weights(&m);
    const elbo_st_tensor *xt = oracle_need(&f, "input.x"), *zt = oracle_need(&f, "input.z");
    size_t b = xt->shape[0], d = c.input_dim;
    uint8_t *x = malloc(b * d);
    float *z = malloc(b * c.latent * sizeof(float));
    for (size_t i = 0; i < b * d; i++)
        x[i] = (uint8_t)oracle_at(xt, i);
    memcpy(z, zt->data, b * c.latent * sizeof(float));
    assert_int_equal(elbo_gan_activations_init(&a, &m, b), 0);
    memset(m.grads, 0xff, m.layout.total * sizeof(float)); /* NaN: every gradient must be written */
    snprintf(what, sizeof what, "%s/%s", name, k->isa);

    double d_loss = elbo_gan_d_grads(&m, &a, x, z, b);
    double g_loss = elbo_gan_g_grads(&m, &a, b);

    double want_d = oracle_at(oracle_need(&f, "out.d_loss"), 0), want_g = oracle_at(oracle_need(&f, "out.g_loss"), 0);
    if (!(fabs(d_loss - want_d) <= LOSS_TOL * fabs(want_d)) || !(fabs(g_loss - want_g) <= LOSS_TOL * fabs(want_g)))
        test_failf("%s: D loss %.9g G loss %.9g vs torch %.9g %.9g\n", what, d_loss, g_loss, want_d, want_g);
    double ed = check_group(&m, 1, "grad_d.", &f, what), eg = check_group(&m, 0, "grad_g.", &f, what);
    double ex = check_tensor(a.dgout, &f, "out.dgpre", b * d, what);
    for (size_t i = 0; c.spectral_norm && i < m.layout.n_tensors; i++) { /* u, v after both power iterations */
        const elbo_tensor_view *v = &m.layout.tensor[i];
        char want[ELBO_TENSOR_NAME_MAX + 8];
        snprintf(want, sizeof want, "out.%s", v->name);
        if (strstr(v->name, ".weight_u") || strstr(v->name, ".weight_v"))
            check_tensor(m.params + v->offset, &f, want, elbo_tensor_view_size(v), what);
    }
    printf("  %-18s %-6s B %3zu D loss %.6f G loss %.6f; worst error of scale: D grads %.2e, G grads %.2e, "
           "D's input gradient %.2e\n", name, k->isa, b, d_loss, g_loss, ed, eg, ex);
    free(x);
    free(z);
    elbo_gan_activations_free(&a);
    elbo_gan_free(&m);
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

/* Adam's update of every weight and bias of group g (not a spectral norm's u and v) from m's gradients, then the
 * repacking of every weight. */
static void update_group(elbo_gan *m, const elbo_optimizer *o, size_t g)
{
    const elbo_param_group *gr = &m->layout.group[g];
    for (size_t i = gr->first_layer; i < gr->first_layer + gr->n_layers; i++) {
        const elbo_linear_layout *ly = &m->layout.layer[i];
        elbo_optimizer_update_block(o, m->kern, m->params, m->grads + ly->w_off, ly->w_off, 1, ly->in * ly->out,
                                    ly->in * ly->out);
        elbo_optimizer_update_block(o, m->kern, m->params, m->grads + ly->b_off, ly->b_off, 1, ly->out, ly->out);
    }
    elbo_gan_pack_weights(m);
}

/* One --d-steps 2 iteration by hand, as the trainer's two steps run it: D step on (x[0], z[0]) and D's update (Adam
 * step 1), D step on (x[1], z[1]) and D's update (step 2), the G step on G(z[1]) and G's update (G's Adam step 1:
 * its block counts every second step); f (or NULL) the oracle whose grad_d1., grad_d2. and grad_g. gradients each
 * step must match. Returns the worst gradient error of scale. */
static double d_steps_by_hand(elbo_gan *m, elbo_gan_activations *a, elbo_optimizer *o, uint8_t *const x[2],
                              float *const z[2], size_t b, const elbo_st_file *f, const char *what)
{
    double worst = 0;
    for (size_t s = 0; s < 2; s++) {
        char prefix[16];
        elbo_optimizer_begin_step(o);
        elbo_gan_d_grads(m, a, x[s], z[s], b);
        snprintf(prefix, sizeof prefix, "grad_d%zu.", s + 1);
        if (f) {
            double e = check_group(m, 1, prefix, f, what);
            worst = e > worst ? e : worst;
        }
        update_group(m, o, 1);
    }
    elbo_gan_g_grads(m, a, b);
    if (f) {
        double e = check_group(m, 0, "grad_g.", f, what);
        worst = e > worst ? e : worst;
    }
    update_group(m, o, 0);
    return worst;
}

/* The largest |entry| of the first n entries of oracle tensor t (a plain compare: aarch64 gcc 12's vectorizer fails
 * on an fmax reduction nested in the loop below). */
static double max_abs(const elbo_st_tensor *t, size_t n)
{
    double m = 0;
    for (size_t j = 0; j < n; j++) {
        double v = fabs(oracle_at(t, j));
        if (v > m)
            m = v;
    }
    return m;
}

/* The --d-steps 2 oracle case `name` with kernels k: every step's gradients within GRAD_TOL of scale, and every
 * weight and bias after the three updates within 1e-3 of the learning rate of torch's wherever its gradients (D's
 * two, G's one) are at least 1e-3 of their tensor's scale (an Adam step moves each element by about lr times the
 * sign of its gradient, so where a gradient is ~0 float rounding may flip it); u and v within GRAD_TOL of scale.
 * With G's Adam step counted as 2 (one counter for both networks) G's weights miss by ~6 % of lr. */
static void check_dsteps_case(const char *name, const elbo_kernels *k)
{
    char what[128], err[256];
    elbo_st_file f;
    elbo_gan m;
    elbo_gan_activations a;
    elbo_optimizer o;
    elbo_gan_config c = open_case(name, &f);
    c.d_steps = 2;
    double lr = atof(elbo_st_meta_get(&f, "lr"));
    if (elbo_gan_init(&m, &c, k, err, sizeof err) != 0)
        test_failf("%s\n", err);
    for (size_t i = 0; i < m.layout.n_tensors; i++) {
        const elbo_tensor_view *v = &m.layout.tensor[i];
        memcpy(m.params + v->offset, oracle_need(&f, v->name)->data, elbo_tensor_view_size(v) * sizeof(float));
    }
    elbo_gan_pack_weights(&m);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, lr);
    oc.adam.beta1 = 0.5;
    elbo_gan_optimizer_blocks(&m, &oc);
    assert_int_equal(elbo_optimizer_init(&o, &oc, &m.layout), 0);
    size_t b = oracle_need(&f, "input.x1")->shape[0], d = c.input_dim;
    uint8_t *x[2];
    float *z[2];
    for (size_t s = 0; s < 2; s++) {
        char xn[16], zn[16];
        snprintf(xn, sizeof xn, "input.x%zu", s + 1);
        snprintf(zn, sizeof zn, "input.z%zu", s + 1);
        x[s] = malloc(b * d);
        z[s] = malloc(b * c.latent * sizeof(float));
        for (size_t i = 0; i < b * d; i++)
            x[s][i] = (uint8_t)oracle_at(oracle_need(&f, xn), i);
        memcpy(z[s], oracle_need(&f, zn)->data, b * c.latent * sizeof(float));
    }
    assert_int_equal(elbo_gan_activations_init(&a, &m, b), 0);
    snprintf(what, sizeof what, "%s/%s", name, k->isa);
    double eg = d_steps_by_hand(&m, &a, &o, x, z, b, &f, what), ep = 0;
    for (size_t i = 0; i < m.layout.n_tensors; i++) {
        const elbo_tensor_view *v = &m.layout.tensor[i];
        char after[ELBO_TENSOR_NAME_MAX + 8], grad[ELBO_TENSOR_NAME_MAX + 8];
        size_t n = elbo_tensor_view_size(v);
        snprintf(after, sizeof after, "after.%s", v->name);
        if (strstr(v->name, ".weight_u") || strstr(v->name, ".weight_v")) {
            check_tensor(m.params + v->offset, &f, after, n, what);
            continue;
        }
        int is_g = strncmp(v->name, "gen", 3) == 0;
        const elbo_st_tensor *want = oracle_need(&f, after), *g[2];
        for (size_t s = 0; s < 2; s++) { /* G's one gradient, or D's two */
            snprintf(grad, sizeof grad, "%s%s", is_g ? "grad_g." : s ? "grad_d2." : "grad_d1.", v->name);
            g[s] = oracle_need(&f, grad);
        }
        double scale[2] = {max_abs(g[0], n), max_abs(g[1], n)}, worst = 0;
        for (size_t j = 0; j < n; j++)
            if (fabs(oracle_at(g[0], j)) >= 1e-3 * scale[0] && fabs(oracle_at(g[1], j)) >= 1e-3 * scale[1])
                worst = fmax(worst, fabs((double)m.params[v->offset + j] - oracle_at(want, j)) / lr);
        if (!(worst <= 1e-3))
            test_failf("%s: %s after the iteration differs from torch's by %.3g of lr (tolerance 1e-3)\n", what,
                       v->name, worst);
        ep = fmax(ep, worst);
    }
    printf("  %-22s %-6s B %3zu two D steps and a G step: worst gradient error of scale %.2e, worst parameter "
           "error %.2e of lr\n", name, k->isa, b, eg, ep);
    for (size_t s = 0; s < 2; s++) {
        free(x[s]);
        free(z[s]);
    }
    elbo_optimizer_free(&o);
    elbo_gan_activations_free(&a);
    elbo_gan_free(&m);
    elbo_st_free(&f);
}

/* The --d-steps 2 cases on every ISA this CPU runs. */
static void test_d_steps_match_torch(void **state)
{
    (void)state;
    static const char *const dcases[] = {"gan_dsteps2_b16", "gan_dsteps2_sn_odd_b9"};
    for (size_t c = 0; c < 2; c++)
        for (size_t i = 0; test_model_tables(i); i++)
            check_dsteps_case(dcases[c], test_model_tables(i));
}

/* The trainer's parameters params after its first two steps of config c (d_steps 2, elbo_params_init seed DET_SEED,
 * optimizer oc, batch rows order) are bitwise those of d_steps_by_hand on the same rows and the trainer's noise
 * (seed, EPS, row, step): its G phase skipped at step 1 and run at step 2, G's Adam step counted 1. */
static void check_trainer_d_steps(const elbo_gan_config *c, const elbo_kernels *k, const elbo_optimizer_config *oc,
                                  const uint8_t *images, const uint32_t *order, const float *params)
{
    char err[256];
    elbo_gan ref;
    elbo_gan_activations a;
    elbo_optimizer o;
    uint8_t *x[2];
    float *z[2];
    assert_int_equal(elbo_gan_init(&ref, c, k, err, sizeof err), 0);
    elbo_params_init(ref.params, &ref.layout, DET_SEED);
    elbo_gan_pack_weights(&ref);
    assert_int_equal(elbo_gan_activations_init(&a, &ref, DET_BATCH), 0);
    assert_int_equal(elbo_optimizer_init(&o, oc, &ref.layout), 0);
    for (size_t s = 0; s < 2; s++) {
        x[s] = malloc(DET_BATCH * c->input_dim);
        z[s] = malloc(DET_BATCH * c->latent * sizeof(float));
        for (size_t row = 0; row < DET_BATCH; row++) {
            memcpy(x[s] + row * c->input_dim, images + (size_t)order[s * DET_BATCH + row] * c->input_dim,
                   c->input_dim);
            elbo_rng_normals(z[s] + row * c->latent, c->latent, DET_SEED, ELBO_STREAM_EPS, (uint32_t)row,
                             (uint32_t)s);
        }
    }
    d_steps_by_hand(&ref, &a, &o, x, z, DET_BATCH, NULL, NULL);
    for (size_t i = 0; i < ref.layout.n_tensors; i++) {
        const elbo_tensor_view *v = &ref.layout.tensor[i];
        if (memcmp(ref.params + v->offset, params + v->offset, elbo_tensor_view_size(v) * sizeof(float)))
            test_failf("%s: the trainer's %s after two --d-steps 2 steps differs from the steps by hand\n", k->isa,
                       v->name);
    }
    for (size_t s = 0; s < 2; s++) {
        free(x[s]);
        free(z[s]);
    }
    elbo_optimizer_free(&o);
    elbo_gan_activations_free(&a);
    elbo_gan_free(&ref);
}

/* Parameters, Adam's two moments and the gradients (4 arenas) after each step, and each loss. */
typedef struct {
    float *state[DET_STEPS];
    elbo_step_loss loss[DET_STEPS];
} det_run;

/* DET_STEPS steps of the default GAN (28 x 28, elbo_params_init seed DET_SEED) with Adam lr 2e-4 betas 0.5/0.999
 * on images, batch rows from elbo_rng_permutation, with kernels k on nt threads. */
static det_run run_steps(const elbo_kernels *k, size_t nt, const uint8_t *images, int spectral_norm, size_t d_steps)
{
    char err[256];
    elbo_gan m;
    elbo_trainer tr;
    uint32_t order[DET_IMAGES];
    elbo_gan_config c = elbo_gan_config_default(28, 28);
    c.spectral_norm = spectral_norm;
    c.d_steps = d_steps;
    if (elbo_gan_init(&m, &c, k, err, sizeof err) != 0)
        test_failf("%s\n", err);
    elbo_params_init(m.params, &m.layout, DET_SEED);
    elbo_gan_pack_weights(&m);
    elbo_model mm = elbo_gan_model(&m);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 2e-4);
    oc.adam.beta1 = 0.5;
    elbo_gan_optimizer_blocks(&m, &oc);
    if (elbo_trainer_init(&tr, &mm, &oc, DET_BATCH, DET_SEED, DET_IMAGES, nt, NULL, err, sizeof err) != 0)
        test_failf("%s\n", err);
    tr.keep_grads = 1; /* the gradients are compared across thread counts and checked below */
    elbo_rng_permutation(order, DET_IMAGES, DET_SEED, 0);
    elbo_images_view data = {images, DET_IMAGES, c.input_dim, NULL};
    size_t n = m.layout.total;
    det_run r;
    for (size_t s = 0; s < DET_STEPS; s++) {
        size_t first = s * DET_BATCH, b = DET_IMAGES - first < DET_BATCH ? DET_IMAGES - first : DET_BATCH;
        memset(m.grads, 0xff, n * sizeof(float));
        r.loss[s] = elbo_trainer_step(&tr, &data, order + first, b);
        if (tr.step != (long)s + 1)
            test_failf("%s/%zu threads: step %zu was not taken (loss %g)\n", k->isa, nt, s, r.loss[s].loss);
        r.state[s] = malloc(4 * n * sizeof(float));
        memcpy(r.state[s], m.params, n * sizeof(float));
        memcpy(r.state[s] + n, tr.opt.m, n * sizeof(float));
        memcpy(r.state[s] + 2 * n, tr.opt.v, n * sizeof(float));
        memcpy(r.state[s] + 3 * n, m.grads, n * sizeof(float));
        if (s == 1 && nt == 1 && d_steps == 2)
            check_trainer_d_steps(&c, k, &oc, images, order, m.params);
        if (s == 0 && nt == 1) { /* the D phase's gradients are the single-threaded D step's on the same noise */
            elbo_gan ref;
            elbo_gan_activations a;
            assert_int_equal(elbo_gan_init(&ref, &c, k, err, sizeof err), 0);
            elbo_params_init(ref.params, &ref.layout, DET_SEED);
            elbo_gan_pack_weights(&ref);
            assert_int_equal(elbo_gan_activations_init(&a, &ref, DET_BATCH), 0);
            uint8_t *x = malloc(b * c.input_dim);
            float *z = malloc(b * c.latent * sizeof(float));
            for (size_t row = 0; row < b; row++) {
                memcpy(x + row * c.input_dim, images + (size_t)order[row] * c.input_dim, c.input_dim);
                elbo_rng_normals(z + row * c.latent, c.latent, DET_SEED, ELBO_STREAM_EPS, (uint32_t)row, 0);
            }
            elbo_gan_d_grads(&ref, &a, x, z, b);
            const elbo_param_group *dg = &ref.layout.group[1];
            for (size_t q = dg->first_tensor; q < dg->first_tensor + dg->n_tensors; q++) {
                const elbo_tensor_view *v = &ref.layout.tensor[q];
                if (strstr(v->name, ".weight_u") || strstr(v->name, ".weight_v"))
                    continue; /* a spectral norm's state has no gradient */
                if (memcmp(ref.grads + v->offset, m.grads + v->offset, elbo_tensor_view_size(v) * sizeof(float)))
                    test_failf("%s: the trainer's gradient of %s differs from elbo_gan_d_grads' on the step's noise\n",
                               k->isa, v->name);
            }
            free(x);
            free(z);
            elbo_gan_activations_free(&a);
            elbo_gan_free(&ref);
        }
    }
    elbo_trainer_free(&tr);
    elbo_gan_free(&m);
    return r;
}

/* Frees a run's states. */
static void det_free(det_run *r)
{
    for (size_t s = 0; s < DET_STEPS; s++)
        free(r->state[s]);
}

/* 1, 2 and 3 threads give bitwise the same parameters, moments, gradients and losses after every step, on every
 * ISA. */
static void test_trainer_threads_bitwise(void **state)
{
    (void)state;
    static uint8_t images[DET_IMAGES * 784];
    test_rng rng = {29};
    for (size_t i = 0; i < sizeof images; i++)
        images[i] = (uint8_t)test_rng_below(&rng, 256);
    for (int variant = 0; variant < 3; variant++) /* plain, spectral norm, --d-steps 2 with spectral norm */
    for (size_t i = 0; test_model_tables(i); i++) {
        const elbo_kernels *k = test_model_tables(i);
        int sn = variant > 0;
        size_t d_steps = variant == 2 ? 2 : 1;
        elbo_param_layout l;
        elbo_gan_config c = elbo_gan_config_default(28, 28);
        c.spectral_norm = sn;
        elbo_gan_layout_build(&l, &c);
        det_run one = run_steps(k, 1, images, sn, d_steps);
        for (size_t nt = 2; nt <= 3; nt++) {
            det_run r = run_steps(k, nt, images, sn, d_steps);
            for (size_t s = 0; s < DET_STEPS; s++) {
                static const char *const arena[] = {"parameters", "exp_avg", "exp_avg_sq", "gradients"};
                for (size_t w = 0; w < 4; w++)
                    if (memcmp(one.state[s] + w * l.total, r.state[s] + w * l.total, l.total * sizeof(float)))
                        test_failf("%s/%zu threads%s: step %zu's %s differ from 1 thread's\n", k->isa, nt,
                                   sn ? " (spectral norm)" : "", s, arena[w]);
                if (memcmp(&one.loss[s], &r.loss[s], sizeof one.loss[s]))
                    test_failf("%s/%zu threads: step %zu's loss %.17g differs from 1 thread's %.17g\n", k->isa, nt, s,
                               r.loss[s].loss, one.loss[s].loss);
            }
            det_free(&r);
        }
        printf("  %-6s%s%s 1-3 threads bitwise over %d steps; D loss %.4f -> %.4f, G loss %.4f -> %.4f, D(x) %.3f, "
               "D(G(z)) %.3f\n", k->isa, sn ? " (spectral norm)" : "", d_steps > 1 ? " (--d-steps 2)" : "",
               DET_STEPS, one.loss[0].part[0] / DET_BATCH,
               one.loss[DET_STEPS - 1].part[0] / (DET_IMAGES % DET_BATCH), one.loss[0].part[1] / DET_BATCH,
               one.loss[DET_STEPS - 1].part[1] / (DET_IMAGES % DET_BATCH),
               one.loss[DET_STEPS - 1].part[2] / (DET_IMAGES % DET_BATCH),
               one.loss[DET_STEPS - 1].part[3] / (DET_IMAGES % DET_BATCH));
        det_free(&one);
    }
}

#define BARRIER_STEPS 60
#define BARRIER_BATCH 32

/* The hash of every tensor (elbo_params_hash) after each of BARRIER_STEPS steps of the default GAN (spectral norm;
 * elbo_params_init seed DET_SEED, Adam lr 2e-4 betas 0.5 / 0.999, batch BARRIER_BATCH over the DET_IMAGES images in
 * order, wrapping) with kernels k on nt threads, into hash. */
static void barrier_run(const elbo_kernels *k, size_t nt, const uint8_t *images, uint64_t *hash)
{
    char err[256];
    elbo_gan m;
    elbo_trainer tr;
    uint32_t order[DET_IMAGES];
    elbo_gan_config c = elbo_gan_config_default(28, 28);
    if (elbo_gan_init(&m, &c, k, err, sizeof err) != 0)
        test_failf("%s\n", err);
    elbo_params_init(m.params, &m.layout, DET_SEED);
    elbo_gan_pack_weights(&m);
    elbo_model mm = elbo_gan_model(&m);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 2e-4);
    oc.adam.beta1 = 0.5;
    elbo_gan_optimizer_blocks(&m, &oc);
    if (elbo_trainer_init(&tr, &mm, &oc, BARRIER_BATCH, DET_SEED, DET_IMAGES, nt, NULL, err, sizeof err) != 0)
        test_failf("%s\n", err);
    for (size_t i = 0; i < DET_IMAGES; i++)
        order[i] = (uint32_t)i;
    elbo_images_view data = {images, DET_IMAGES, c.input_dim, NULL};
    size_t per_epoch = DET_IMAGES / BARRIER_BATCH;
    for (size_t s = 0; s < BARRIER_STEPS; s++) {
        elbo_trainer_step(&tr, &data, order + (s % per_epoch) * BARRIER_BATCH, BARRIER_BATCH);
        hash[s] = elbo_params_hash(m.params, &m.layout);
    }
    elbo_trainer_free(&tr);
    elbo_gan_free(&m);
}

/* The G phase must see D as the D phase's tail left it (every block updated and repacked): the trainer's barrier
 * between the phases. On 2 and 3 threads (more threads than this machine's cores, so a thread is often descheduled
 * in the middle of the D phase's tail, when another, done with its blocks, would start the G phase) every tensor after
 * each of BARRIER_STEPS steps is bitwise the 1-thread run's. Without that barrier the G phase's power iteration and
 * D forward read D's weights half-updated and the runs part within a few steps. */
static void test_phase_barrier(void **state)
{
    (void)state;
    static uint8_t images[DET_IMAGES * 784];
    static uint64_t one[BARRIER_STEPS], many[BARRIER_STEPS];
    test_rng rng = {31};
    for (size_t i = 0; i < sizeof images; i++)
        images[i] = (uint8_t)test_rng_below(&rng, 256);
    for (size_t i = 0; test_model_tables(i); i++) {
        const elbo_kernels *k = test_model_tables(i);
        barrier_run(k, 1, images, one);
        for (size_t nt = 2; nt <= 3; nt++) {
            barrier_run(k, nt, images, many);
            for (size_t s = 0; s < BARRIER_STEPS; s++)
                if (one[s] != many[s])
                    test_failf("%s/%zu threads: the parameters after step %zu (hash %016llx) differ from 1 thread's "
                               "(%016llx): the G phase saw D before its update was complete\n", k->isa, nt, s + 1,
                               (unsigned long long)many[s], (unsigned long long)one[s]);
        }
        printf("  %-6s 1-3 threads bitwise over %d steps of batch %d\n", k->isa, BARRIER_STEPS, BARRIER_BATCH);
    }
}

/* BCE-with-logits of logit l against target y in double: max(l, 0) - l y + log1p(exp(-|l|)). */
static double bce_ref(double l, double y)
{
    return (l > 0 ? l : 0) - l * y + log1p(exp(-fabs(l)));
}

/* 1 when n floats are all finite. */
static int all_finite(const float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i]))
            return 0;
    return 1;
}

/* Extreme logits: every D weight 0 and D's last bias +-80 make every logit +-80, where exp(80) overflows a float
 * unless the loss is computed stably. The D loss is BCE(l, real label) + BCE(l, 0), the G loss BCE(l, 1), within
 * 1e-5 relative of double (+-80, 8 or 72, or ~0 within 1e-6), and every gradient of both steps is finite; with the
 * real label 1 and 0.9 (one-sided smoothing), on every ISA table. */
static void test_extreme_logits(void **state)
{
    (void)state;
    enum { B = 8 };
    uint8_t x[B * 784];
    float z[B * 64];
    test_rng rng = {7};
    for (size_t i = 0; i < sizeof x; i++)
        x[i] = (uint8_t)test_rng_below(&rng, 256);
    elbo_rng_normals(z, B * 64, 3, ELBO_STREAM_EPS, 0, 0);
    static const double logits[] = {80, -80}, labels[] = {1, 0.9};
    for (size_t i = 0; test_model_tables(i); i++)
        for (size_t li = 0; li < 2; li++)
            for (size_t yi = 0; yi < 2; yi++) {
                const elbo_kernels *k = test_model_tables(i);
                elbo_gan_config c = elbo_gan_config_default(28, 28);
                c.real_label = labels[yi];
                c.spectral_norm = 0; /* all-zero weights have no largest singular value to divide by */
                elbo_gan m;
                elbo_gan_activations a;
                char err[256];
                assert_int_equal(elbo_gan_init(&m, &c, k, err, sizeof err), 0);
                const elbo_tensor_view *bias = elbo_param_layout_find(&m.layout, "discriminator.4.bias");
                assert_non_null(bias);
                m.params[bias->offset] = (float)logits[li];
                elbo_gan_pack_weights(&m);
                assert_int_equal(elbo_gan_activations_init(&a, &m, B), 0);
                double l = logits[li], want_d = bce_ref(l, labels[yi]) + bce_ref(l, 0), want_g = bce_ref(l, 1);
                double d = elbo_gan_d_grads(&m, &a, x, z, B), g = elbo_gan_g_grads(&m, &a, B);
                if (!(fabs(d - want_d) <= 1e-5 * want_d + 1e-6) || !(fabs(g - want_g) <= 1e-5 * want_g + 1e-6))
                    test_failf("%s, logit %g, real label %g: D loss %.9g (want %.9g), G loss %.9g (want %.9g)\n",
                               k->isa, l, labels[yi], d, want_d, g, want_g);
                if (!all_finite(m.grads, m.layout.total) || !all_finite(a.dgout, B * c.input_dim) ||
                    !all_finite(a.logit, 2 * B))
                    test_failf("%s, logit %g, real label %g: a gradient is NaN or infinite\n", k->isa, l,
                               labels[yi]);
                elbo_gan_activations_free(&a);
                elbo_gan_free(&m);
            }
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_match_torch),
        cmocka_unit_test(test_d_steps_match_torch),
        cmocka_unit_test(test_trainer_threads_bitwise),
        cmocka_unit_test(test_extreme_logits),
        cmocka_unit_test(test_phase_barrier),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof *tests);
    return cmocka_run_group_tests(tests, generate_suite, remove_suite);
}
