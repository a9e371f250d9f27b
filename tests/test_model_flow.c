/* The normalizing flow against PyTorch autograd, its log-determinant against the full Jacobian, its exact inverse,
 * its one-phase training step across thread counts, and its refusals of bad configs and checkpoints.
 *
 * tests/parity/flow_torch.py writes weights (couplings.K.net.*, couplings.K.scale, every scale random so every path
 * carries a gradient), uint8 pixels, the dequantization noise u, each row's loss, z and log-determinant, and every
 * parameter's gradient of the batch-mean loss, for the full-width nets (every pixel in, s and t of every pixel out);
 * elbo loads the entries its trimmed nets keep (elbo_flow_full_index) and must agree on every ISA table this CPU
 * runs: each gradient tensor within GRAD_TOL = 1e-4 of its largest |torch gradient| (float32 sums in different
 * orders leave ~1e-6; a dropped mask, a missing log-determinant term or a wrong tanh derivative miss by 1e-2 or
 * more), each row's loss within LOSS_TOL = 1e-5 relative; and torch's gradient of every entry elbo drops is exactly
 * 0 (they do not touch the loss: the trimmed nets are the same model).
 *
 * The log-determinant: for a 5x5 flow of three couplings, log|det dz/dy| of the full 25x25 Jacobian (autograd in
 * double) per row, against elbo's sum of s, within 1e-4 relative.
 *
 * The inverse: f^-1(f(y)) = y within 1e-4 of max |y| in logit space, for random weights and for weights after 30
 * training steps, on every ISA table. A checkpoint of the full-width format (before the trimmed nets) is refused in
 * one line. */
#include "test_scratch.h"
#include "test_oracle.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "flow.h"
#include "gan.h"
#include "kernels.h"
#include "optim.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "train.h"

#define GRAD_TOL 1e-4
#define LOSS_TOL 1e-5
#define LOGDET_TOL 1e-4
#define INVERSE_TOL 1e-4

#define DET_IMAGES 150
#define DET_BATCH 32
#define DET_STEPS 5
#define DET_SEED 13

static char suite_dir[MAX_PATH];

static const char *const CASES[] = {"flow_default_b16", "flow_odd_half_b9"};

/* Runs the PyTorch oracle once for every case into a fresh temporary directory. */
static int generate_suite(void **state)
{
    (void)state;
    char cmd[2 * MAX_PATH];
    scratch_mkdtemp(suite_dir, "elbo-flow-parity");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/parity/flow_torch.py grads-suite %s", suite_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Removes the temporary directory. */
static int remove_suite(void **state)
{
    (void)state;
    remove_tree(suite_dir);
    return 0;
}

static void gather_full(const elbo_flow *m, size_t i, const elbo_st_tensor *t, float *out, uint8_t *dropped);

/* Opens case `name`'s oracle file into f, and a model m of its config with kernels k holding its weights. */
static void open_case(const char *name, elbo_st_file *f, elbo_flow *m, const elbo_kernels *k)
{
    char path[2 * MAX_PATH], err[256];
    snprintf(path, sizeof path, "%s/%s.safetensors", suite_dir, name);
    if (elbo_st_read(path, f, err, sizeof err) != 0)
        test_failf("%s\n", err);
    elbo_flow_config c = elbo_flow_config_default((size_t)atol(elbo_st_meta_get(f, "image_rows")),
                                                  (size_t)atol(elbo_st_meta_get(f, "image_cols")));
    c.couplings = (size_t)atol(elbo_st_meta_get(f, "couplings"));
    assert_int_equal(elbo_flow_mask_parse(elbo_st_meta_get(f, "mask"), &c.mask), 0);
    assert_int_equal(elbo_parse_widths(elbo_st_meta_get(f, "hidden"), c.hidden, &c.n_hidden, err, sizeof err), 0);
    if (elbo_flow_init(m, &c, k, err, sizeof err) != 0)
        test_failf("%s\n", err);
    for (size_t i = 0; i < m->layout.n_tensors; i++)
        gather_full(m, i, oracle_need(f, m->layout.tensor[i].name), m->params + m->layout.tensor[i].offset, NULL);
    elbo_flow_pack_weights(m);
}

/* out (layout tensor i's size) = the entries of the full-width tensor t that elbo's tensor i keeps; dropped (when not
 * NULL, t's count) = 1 at the entries it drops. */
static void gather_full(const elbo_flow *m, size_t i, const elbo_st_tensor *t, float *out, uint8_t *dropped)
{
    size_t full, n = elbo_tensor_view_size(&m->layout.tensor[i]);
    elbo_flow_full_index(m, i, 0, &full);
    assert_int_equal(t->count, full);
    if (dropped)
        memset(dropped, 1, full);
    for (size_t e = 0; e < n; e++) {
        size_t j = elbo_flow_full_index(m, i, e, NULL);
        out[e] = ((const float *)t->data)[j];
        if (dropped)
            dropped[j] = 0;
    }
}

/* Compares n floats of elbo's with want within tol of its scale; returns the error. */
static double check_values(const float *got, float *want, const char *name, size_t n, double tol, const char *what)
{
    double e = oracle_scaled_max_error(got, want, n);
    if (!(e <= tol))
        test_failf("%s: %s differs from torch by %.3g of its scale (tolerance %g)\n", what, name, e, tol);
    return e;
}

/* Compares n floats of elbo's with the oracle tensor name within tol of its scale; returns the error. */
static double check_tensor(const float *got, const elbo_st_file *f, const char *name, size_t n, double tol,
                           const char *what)
{
    const elbo_st_tensor *t = oracle_need(f, name);
    assert_int_equal(t->count, n);
    float *want = malloc(n * sizeof(float));
    memcpy(want, t->data, n * sizeof(float));
    double e = check_values(got, want, name, n, tol, what);
    free(want);
    return e;
}

/* Compares elbo's gradient of layout tensor i with the entries of torch's full-width gradient it keeps, within tol
 * of their scale, and fails unless torch's gradient is exactly 0 at every entry elbo drops; returns the error. */
static double check_gradient(const elbo_flow *m, size_t i, const elbo_st_file *f, double tol, const char *what)
{
    const elbo_tensor_view *v = &m->layout.tensor[i];
    char gname[ELBO_TENSOR_NAME_MAX + 8];
    snprintf(gname, sizeof gname, "grad.%s", v->name);
    const elbo_st_tensor *t = oracle_need(f, gname);
    size_t n = elbo_tensor_view_size(v);
    float *want = malloc(n * sizeof(float));
    uint8_t *dropped = malloc(t->count);
    gather_full(m, i, t, want, dropped);
    for (size_t j = 0; j < t->count; j++)
        if (dropped[j] && ((const float *)t->data)[j] != 0.0f)
            test_failf("%s: torch's %s is %g at entry %zu, which elbo's trimmed tensor drops\n", what, gname,
                       ((const float *)t->data)[j], j);
    double e = check_values(m->grads + v->offset, want, gname, n, tol, what);
    free(want);
    free(dropped);
    return e;
}

/* Loads case `name`, runs the gradients with kernels k on the oracle's pixels and noise, compares everything. */
static void check_case(const char *name, const elbo_kernels *k)
{
    char what[128];
    elbo_st_file f;
    elbo_flow m;
    elbo_flow_activations a;
    open_case(name, &f, &m, k);
    const elbo_st_tensor *xt = oracle_need(&f, "input.x"), *ut = oracle_need(&f, "input.u");
    size_t b = xt->shape[0], d = m.cfg.input_dim;
    uint8_t *x = malloc(b * d);
    float *u = malloc(b * d * sizeof(float)), *rows = malloc(b * sizeof(float)), *ld = malloc(b * sizeof(float));
    for (size_t i = 0; i < b * d; i++)
        x[i] = (uint8_t)oracle_at(xt, i);
    memcpy(u, ut->data, b * d * sizeof(float));
    assert_int_equal(elbo_flow_activations_init(&a, &m, b), 0);
    memset(m.grads, 0xff, m.layout.total * sizeof(float)); /* NaN: every gradient must be written */
    snprintf(what, sizeof what, "%s/%s", name, k->isa);
    double loss = elbo_flow_grads(&m, &a, x, u, b), want = oracle_at(oracle_need(&f, "out.loss"), 0);
    if (!(fabs(loss - want) <= LOSS_TOL * fabs(want)))
        test_failf("%s: loss %.9g vs torch %.9g\n", what, loss, want);
    const elbo_st_tensor *lr = oracle_need(&f, "out.loss_rows");
    for (size_t r = 0; r < b; r++) {
        double got = a.nll_z[r] - a.log_det[r] + a.pre[r], w = oracle_at(lr, r);
        if (!(fabs(got - w) <= LOSS_TOL * fabs(w)))
            test_failf("%s: row %zu's loss %.9g vs torch %.9g\n", what, r, got, w);
        rows[r] = (float)got;
        ld[r] = (float)a.log_det[r];
    }
    float *z = malloc(b * d * sizeof(float));
    for (size_t r = 0; r < b; r++)
        for (size_t i = 0; i < d; i++)
            z[r * d + m.order[i]] = a.h[m.cfg.couplings][r * d + i];
    double ez = check_tensor(z, &f, "out.z", b * d, GRAD_TOL, what);
    free(z);
    double el = check_tensor(ld, &f, "out.logdet", b, GRAD_TOL, what);
    double worst = 0;
    for (size_t i = 0; i < m.layout.n_tensors; i++) {
        double e = check_gradient(&m, i, &f, GRAD_TOL, what);
        worst = e > worst ? e : worst;
    }
    printf("  %-18s %-6s B %2zu loss %.4f nats (%.4f bits/dim); worst error of scale: z %.2e, log-det %.2e, "
           "gradients %.2e\n", name, k->isa, b, loss, elbo_flow_bits_per_dim(&m.cfg, loss), ez, el, worst);
    free(x);
    free(u);
    free(rows);
    free(ld);
    elbo_flow_activations_free(&a);
    elbo_flow_free(&m);
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

/* The couplings' log-determinant per row equals log|det J| of the full Jacobian (autograd in double), within
 * LOGDET_TOL relative, and z matches, on every ISA. */
static void test_logdet_matches_jacobian(void **state)
{
    (void)state;
    for (size_t i = 0; test_model_tables(i); i++) {
        const elbo_kernels *k = test_model_tables(i);
        elbo_st_file f;
        elbo_flow m;
        elbo_flow_activations a;
        open_case("flow_jacobian", &f, &m, k);
        const elbo_st_tensor *yt = oracle_need(&f, "input.y"), *jt = oracle_need(&f, "out.jac_logdet");
        size_t n = yt->shape[0], d = m.cfg.input_dim;
        float *y = malloc(n * d * sizeof(float)), *z = malloc(n * d * sizeof(float));
        double *ld = malloc(n * sizeof(double)), worst = 0;
        memcpy(y, yt->data, n * d * sizeof(float));
        assert_int_equal(elbo_flow_activations_init(&a, &m, n), 0);
        elbo_flow_forward_y(&m, &a, y, n, z, ld);
        for (size_t r = 0; r < n; r++) {
            double want = oracle_at(jt, r), e = fabs(ld[r] - want) / fabs(want);
            if (!(e <= LOGDET_TOL))
                test_failf("%s: row %zu's log-determinant %.9g vs log|det J| %.9g (%.2e relative)\n", k->isa, r,
                           ld[r], want, e);
            worst = e > worst ? e : worst;
        }
        check_tensor(z, &f, "out.z", n * d, GRAD_TOL, k->isa);
        printf("  %-6s %zu rows of a %zu-pixel flow: log-det vs log|det J| within %.2e relative\n", k->isa, n, d,
               worst);
        free(y);
        free(z);
        free(ld);
        elbo_flow_activations_free(&a);
        elbo_flow_free(&m);
        elbo_st_free(&f);
    }
}

/* Random test images (n, D) of a 28 x 28 gray gradient with noise, so the flow has structure to learn. */
static void make_images(uint8_t *images, size_t n, size_t d, uint64_t seed)
{
    test_rng rng = {seed};
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            int v = (int)(j % 28) * 8 + (int)test_rng_below(&rng, 40) - 20;
            images[i * d + j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
}

/* max |f^-1(f(y)) - y| / max |y| of n rows of y. */
static double roundtrip_error(const elbo_flow *m, elbo_flow_activations *a, const float *y, size_t n)
{
    size_t d = m->cfg.input_dim;
    float *z = malloc(n * d * sizeof(float)), *back = malloc(n * d * sizeof(float));
    double *ld = malloc(n * sizeof(double)), diff = 0, scale = 0;
    elbo_flow_forward_y(m, a, y, n, z, ld);
    elbo_flow_inverse(m, a, z, n, back);
    for (size_t i = 0; i < n * d; i++) {
        double e = fabs((double)back[i] - (double)y[i]);
        diff = e > diff || isnan(e) ? (isnan(e) ? INFINITY : e) : diff;
        scale = fabs(y[i]) > scale ? fabs(y[i]) : scale;
    }
    free(z);
    free(back);
    free(ld);
    return diff / scale;
}

/* f^-1(f(y)) = y within INVERSE_TOL of max |y| for random weights (scales uniform in +-1, shifts random) and for the
 * default flow after 30 Adam steps on test images, on every ISA. */
static void test_inverse_roundtrip(void **state)
{
    (void)state;
    enum { N = 16, STEPS = 30, IMAGES = 256 };
    static uint8_t images[IMAGES * 784];
    make_images(images, IMAGES, 784, 5);
    for (size_t i = 0; test_model_tables(i); i++) {
        const elbo_kernels *k = test_model_tables(i);
        char err[256];
        elbo_flow m;
        elbo_flow_activations a;
        elbo_flow_config c = elbo_flow_config_default(28, 28);
        c.hidden[0] = c.hidden[1] = 128;
        assert_int_equal(elbo_flow_init(&m, &c, k, err, sizeof err), 0);
        elbo_params_init(m.params, &m.layout, 3);
        test_rng rng = {17};
        for (size_t q = 0; q < c.couplings; q++) {
            const elbo_tensor_view *v;
            char name[64];
            snprintf(name, sizeof name, "couplings.%zu.scale", q);
            assert_non_null(v = elbo_param_layout_find(&m.layout, name));
            for (size_t j = 0; j < v->rows; j++)
                m.params[v->offset + j] = test_rng_uniform(&rng, -1.0f, 1.0f);
        }
        elbo_flow_pack_weights(&m);
        assert_int_equal(elbo_flow_activations_init(&a, &m, N), 0);
        float *u = malloc(N * 784 * sizeof(float)), *y = malloc(N * 784 * sizeof(float));
        elbo_rng_uniforms(u, N * 784, 0, 1, 9, ELBO_STREAM_EVAL, 0, 0);
        elbo_flow_preprocess(&c, images, u, y, NULL, N);
        double e_random = roundtrip_error(&m, &a, y, N);

        elbo_flow_init_params(&m, 4);
        elbo_model mm = elbo_flow_model(&m);
        elbo_trainer tr;
        elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
        assert_int_equal(elbo_trainer_init(&tr, &mm, &oc, 32, 4, IMAGES, 1, NULL, err, sizeof err), 0);
        elbo_images_view data = {images, IMAGES, 784, NULL};
        uint32_t order[IMAGES];
        elbo_rng_permutation(order, IMAGES, 4, 0);
        double first = 0, last = 0;
        for (size_t s = 0; s < STEPS; s++) {
            elbo_step_loss l = elbo_trainer_step(&tr, &data, order + (s * 32) % IMAGES, 32);
            first = s == 0 ? l.loss / 32 : first;
            last = l.loss / 32;
        }
        assert_int_equal(tr.step, STEPS);
        elbo_trainer_free(&tr);
        double e_trained = roundtrip_error(&m, &a, y, N);
        printf("  %-6s f^-1(f(y)) within %.2e (random weights), %.2e (after %d steps: %.3f -> %.3f bits/dim) of "
               "max |y|\n", k->isa, e_random, e_trained, STEPS, elbo_flow_bits_per_dim(&c, first),
               elbo_flow_bits_per_dim(&c, last));
        if (!(e_random <= INVERSE_TOL) || !(e_trained <= INVERSE_TOL))
            test_failf("%s: f^-1(f(y)) differs from y by %.3g (random weights) / %.3g (trained) of max |y|\n", k->isa,
                       e_random, e_trained);
        if (!(last < first))
            test_failf("%s: 30 training steps did not lower the loss (%.4f -> %.4f bits/dim)\n", k->isa,
                       elbo_flow_bits_per_dim(&c, first), elbo_flow_bits_per_dim(&c, last));
        free(u);
        free(y);
        elbo_flow_activations_free(&a);
        elbo_flow_free(&m);
    }
}

/* Parameters, Adam's two moments and the gradients (4 arenas) after each step, and each loss. */
typedef struct {
    float *state[DET_STEPS];
    elbo_step_loss loss[DET_STEPS];
} det_run;

/* The flow the thread test trains: 28 x 28, 4 checkerboard couplings of 256-256. */
static elbo_flow_config det_config(void)
{
    elbo_flow_config c = elbo_flow_config_default(28, 28);
    c.hidden[0] = c.hidden[1] = 256;
    c.couplings = 4;
    return c;
}

/* DET_STEPS steps of det_config's flow (elbo_flow_init_params seed DET_SEED) with Adam lr 1e-3 on images, batch rows
 * from elbo_rng_permutation, with kernels k on nt threads; keep_grads as the trainer's (1: the states hold the
 * gradients; 0: the tail's scratch, the default, and the states' gradients stay NaN). */
static det_run run_steps(const elbo_kernels *k, size_t nt, const uint8_t *images, int keep_grads)
{
    char err[256];
    elbo_flow m;
    elbo_trainer tr;
    uint32_t order[DET_IMAGES];
    elbo_flow_config c = det_config();
    if (elbo_flow_init(&m, &c, k, err, sizeof err) != 0)
        test_failf("%s\n", err);
    elbo_flow_init_params(&m, DET_SEED);
    elbo_model mm = elbo_flow_model(&m);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
    if (elbo_trainer_init(&tr, &mm, &oc, DET_BATCH, DET_SEED, DET_IMAGES, nt, NULL, err, sizeof err) != 0)
        test_failf("%s\n", err);
    tr.keep_grads = keep_grads;
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
    }
    elbo_trainer_free(&tr);
    elbo_flow_free(&m);
    return r;
}

/* Frees a run's states. */
static void det_free(det_run *r)
{
    for (size_t s = 0; s < DET_STEPS; s++)
        free(r->state[s]);
}

/* 1, 2 and 3 threads give bitwise the same parameters, moments, gradients and losses after every step, on every
 * ISA; and the tail's gradient scratch (the trainer's default) the same parameters, moments and losses as its
 * gradients in the arena. */
static void test_trainer_threads_bitwise(void **state)
{
    (void)state;
    static uint8_t images[DET_IMAGES * 784];
    make_images(images, DET_IMAGES, 784, 29);
    elbo_param_layout l;
    elbo_flow_config c = det_config();
    elbo_flow_layout_build(&l, &c);
    for (size_t i = 0; test_model_tables(i); i++) {
        const elbo_kernels *k = test_model_tables(i);
        det_run one = run_steps(k, 1, images, 1);
        for (size_t nt = 2; nt <= 4; nt++) {
            int scratch = nt == 4; /* the fourth run: 2 threads with the gradients in the tail's scratch */
            det_run r = run_steps(k, scratch ? 2 : nt, images, !scratch);
            for (size_t s = 0; s < DET_STEPS; s++) {
                static const char *const arena[] = {"parameters", "exp_avg", "exp_avg_sq", "gradients"};
                for (size_t w = 0; w < (scratch ? 3u : 4u); w++)
                    if (memcmp(one.state[s] + w * l.total, r.state[s] + w * l.total, l.total * sizeof(float)))
                        test_failf("%s/%zu threads%s: step %zu's %s differ from 1 thread's\n", k->isa,
                                   scratch ? 2 : nt, scratch ? " (tail scratch)" : "", s, arena[w]);
                if (memcmp(&one.loss[s], &r.loss[s], sizeof one.loss[s]))
                    test_failf("%s/%zu threads: step %zu's loss %.17g differs from 1 thread's %.17g\n", k->isa, nt, s,
                               r.loss[s].loss, one.loss[s].loss);
            }
            det_free(&r);
        }
        printf("  %-6s 1-3 threads and the tail's scratch bitwise over %d steps; %.4f -> %.4f bits/dim\n", k->isa,
               DET_STEPS,
               elbo_flow_bits_per_dim(&c, one.loss[0].loss / DET_BATCH),
               elbo_flow_bits_per_dim(&c, one.loss[DET_STEPS - 1].loss / (DET_IMAGES % DET_BATCH)));
        det_free(&one);
    }
}

/* The model's grads_finite over rows [r0, r1) sees a NaN in coupling k's scale gradient (B, Dt) at row r, element j,
 * and only there: 1 for rows without it. The trainer asks each thread about its own rows, so a check of other
 * rows (another thread's, still being written) or of too few is a bug. */
static void check_dscale_nan_found(const elbo_model *model, elbo_flow_activations *a, size_t k, size_t nt, size_t b,
                                   size_t r, size_t j)
{
    float saved = a->dscale[k][r * nt + j];
    a->dscale[k][r * nt + j] = NAN;
    if (model->ops->grads_finite(model->impl, a, r, r + 1))
        test_failf("coupling %zu: a NaN scale gradient at row %zu, pixel %zu is not caught in rows [%zu, %zu)\n", k,
                   r, j, r, r + 1);
    if (r > 0 && !model->ops->grads_finite(model->impl, a, 0, r))
        test_failf("coupling %zu: rows [0, %zu) are reported non-finite for a NaN in row %zu\n", k, r, r);
    if (r + 1 < b && !model->ops->grads_finite(model->impl, a, r + 1, b))
        test_failf("coupling %zu: rows [%zu, %zu) are reported non-finite for a NaN in row %zu\n", k, r + 1, b, r);
    a->dscale[k][r * nt + j] = saved;
}

/* The step's non-finite check over a slice of rows covers each coupling's scale gradients of exactly those rows:
 * a NaN in the first, a middle or the last row, first or last pixel, is caught by the slice holding it only. */
static void test_grads_finite_covers_own_rows(void **state)
{
    (void)state;
    enum { B_ROWS = 12 };
    static uint8_t images[B_ROWS * 784];
    static float u[B_ROWS * 784];
    make_images(images, B_ROWS, 784, 31);
    for (size_t i = 0; i < B_ROWS * 784; i++)
        u[i] = (float)(i % 97) / 97.0f;
    elbo_flow_config c = det_config();
    elbo_flow m;
    elbo_flow_activations a;
    char err[256];
    if (elbo_flow_init(&m, &c, test_kernels(), err, sizeof err))
        test_failf("init: %s\n", err);
    elbo_flow_init_params(&m, 3);
    assert_int_equal(elbo_flow_activations_init(&a, &m, B_ROWS), 0);
    elbo_flow_grads(&m, &a, images, u, B_ROWS);
    elbo_model model = elbo_flow_model(&m);
    if (!model.ops->grads_finite(model.impl, &a, 0, B_ROWS))
        test_failf("a finite step's gradients are reported non-finite\n");
    for (size_t k = 0; k < c.couplings; k++) {
        size_t kept, n_kept, tr, nt;
        elbo_flow_blocks(&m, k, &kept, &n_kept, &tr, &nt);
        static const size_t at_rows[] = {0, B_ROWS / 2, B_ROWS - 1};
        for (size_t q = 0; q < 3; q++) {
            check_dscale_nan_found(&model, &a, k, nt, B_ROWS, at_rows[q], 0);
            check_dscale_nan_found(&model, &a, k, nt, B_ROWS, at_rows[q], nt - 1);
        }
    }
    elbo_flow_activations_free(&a);
    elbo_flow_free(&m);
}

/* Rewrites the checkpoint at path without its __metadata__ key `drop`: a file as an older writer left it. */
static void drop_meta_key(const char *path, const char *drop)
{
    char err[512];
    elbo_st_file f;
    if (elbo_st_read(path, &f, err, sizeof err) != 0)
        test_failf("%s\n", err);
    elbo_st_out_tensor *t = calloc(f.n_tensors, sizeof *t);
    const char **kv = calloc(2 * f.n_meta, sizeof *kv);
    size_t n_meta = 0;
    for (size_t i = 0; i < f.n_tensors; i++) {
        t[i] = (elbo_st_out_tensor){.name = f.tensors[i].name, .ndim = f.tensors[i].ndim, .data = f.tensors[i].data};
        memcpy(t[i].shape, f.tensors[i].shape, sizeof t[i].shape);
    }
    for (size_t i = 0; i < f.n_meta; i++)
        if (strcmp(f.meta[i].key, drop) != 0) {
            kv[2 * n_meta] = f.meta[i].key;
            kv[2 * n_meta++ + 1] = f.meta[i].value;
        }
    if (elbo_st_write(path, t, f.n_tensors, kv, n_meta, err, sizeof err) != 0)
        test_failf("%s\n", err);
    free(t);
    free(kv);
    elbo_st_free(&f);
}

/* A flow checkpoint of the format before the trimmed nets (no __metadata__.coupling_layout) is refused in one line
 * naming the key and the format; the same file with the key loads. */
static void test_full_width_checkpoint_refused(void **state)
{
    (void)state;
    char dir[MAX_PATH], path[2 * MAX_PATH], err[512];
    scratch_mkdtemp(dir, "elbo-flow-format");
    snprintf(path, sizeof path, "%s/flow.safetensors", dir);
    const elbo_kernels *k = test_model_tables(0);
    elbo_flow m, back;
    elbo_flow_config c = elbo_flow_config_default(4, 4);
    c.hidden[0] = c.hidden[1] = 8;
    assert_int_equal(elbo_flow_init(&m, &c, k, err, sizeof err), 0);
    elbo_flow_init_params(&m, 1);
    elbo_model fm = elbo_flow_model(&m);
    elbo_train_state st;
    memset(&st, 0, sizeof st);
    snprintf(st.optimizer, sizeof st.optimizer, "adam");
    st.lr = 1e-3;
    st.batch = 8;
    snprintf(st.dataset, sizeof st.dataset, "test");
    if (elbo_checkpoint_write(path, &fm, &st, NULL, err, sizeof err) != 0)
        test_failf("%s\n", err);
    if (elbo_flow_load(path, &back, k, NULL, err, sizeof err) != 0)
        test_failf("the trimmed checkpoint does not load: %s\n", err);
    elbo_flow_free(&back);
    drop_meta_key(path, "coupling_layout");
    if (elbo_flow_load(path, &back, k, NULL, err, sizeof err) == 0)
        test_failf("a checkpoint without __metadata__.coupling_layout loaded\n");
    if (!strstr(err, "coupling_layout: missing") || !strstr(err, "full-width") || strchr(err, '\n'))
        test_failf("the refusal does not name the key and the format on one line: '%s'\n", err);
    printf("  refused: %s\n", err);
    elbo_flow_free(&m);
    remove_tree(dir);
}

/* Fails unless config c is refused with a message containing want. */
static void expect_refused(const elbo_flow_config *c, const char *want)
{
    char err[256] = "";
    if (elbo_flow_config_validate(c, err, sizeof err) == 0 || !strstr(err, want))
        test_failf("config not refused as '%s' (message '%s')\n", want, err);
    printf("  refused: %s\n", err);
}

/* 0 couplings, a mask that leaves a half empty (a 1x1 image, either mask) and an alpha out of range are refused with
 * one line naming the field; a GAN checkpoint where a flow is required is refused naming both kinds. */
static void test_bad_input(void **state)
{
    (void)state;
    elbo_flow_config c = elbo_flow_config_default(28, 28);
    c.couplings = 0;
    expect_refused(&c, "couplings: 0 is not in 1..10");
    c = elbo_flow_config_default(1, 1);
    expect_refused(&c, "mask: checkerboard leaves the transformed half of a 1x1 image empty");
    c.mask = ELBO_FLOW_MASK_HALF;
    expect_refused(&c, "mask: half leaves the kept half of a 1x1 image empty");
    c = elbo_flow_config_default(28, 28);
    c.alpha = 0.5;
    expect_refused(&c, "alpha: 0.5 is not in (0, 0.5)");

    char dir[MAX_PATH], path[2 * MAX_PATH], err[512];
    scratch_mkdtemp(dir, "elbo-flow-kind");
    snprintf(path, sizeof path, "%s/gan.safetensors", dir);
    elbo_gan g;
    elbo_gan_config gc = elbo_gan_config_default(28, 28);
    const elbo_kernels *k = test_model_tables(0);
    assert_int_equal(elbo_gan_init(&g, &gc, k, err, sizeof err), 0);
    elbo_params_init(g.params, &g.layout, 1);
    elbo_model gm = elbo_gan_model(&g);
    elbo_train_state st;
    memset(&st, 0, sizeof st);
    snprintf(st.optimizer, sizeof st.optimizer, "adam");
    st.lr = 2e-4;
    st.batch = 64;
    snprintf(st.dataset, sizeof st.dataset, "test");
    if (elbo_checkpoint_write(path, &gm, &st, NULL, err, sizeof err) != 0)
        test_failf("%s\n", err);
    elbo_gan_free(&g);
    elbo_flow f;
    if (elbo_flow_load(path, &f, k, NULL, err, sizeof err) == 0)
        test_failf("a GAN checkpoint loaded as a flow\n");
    if (!strstr(err, "gan") || !strstr(err, "flow") || strchr(err, '\n'))
        test_failf("the refusal does not name both kinds on one line: '%s'\n", err);
    printf("  refused: %s\n", err);
    remove_tree(dir);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_match_torch),
        cmocka_unit_test(test_logdet_matches_jacobian),
        cmocka_unit_test(test_inverse_roundtrip),
        cmocka_unit_test(test_trainer_threads_bitwise),
        cmocka_unit_test(test_grads_finite_covers_own_rows),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_full_width_checkpoint_refused),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof *tests);
    return cmocka_run_group_tests(tests, generate_suite, remove_suite);
}
