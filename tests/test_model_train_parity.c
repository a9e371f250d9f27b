/* Parity of elbo's training step with PyTorch: the real trainer (elbo_trainer_init + elbo_trainer_step:
 * uint8 rows gathered and converted to floats, the feature-split forward, the tail blocks that fuse weight
 * gradients, optimizer update and repacking, the ISA's optimizer kernel) against torch.optim.Adam and
 * torch.optim.SGD(momentum=0.9) run by tests/parity/vae_torch.py train-steps on the same initial weights,
 * images, batch rows and noise.
 *
 * Setup: a 256-256-8-256-256 VAE (elbo_params_init), 200 random uint8 images of 256 pixels, batch 32, one epoch
 * in the order of elbo_rng_permutation(seed, epoch 0): 6 full batches and a last one of 8 rows. Step s row r
 * gets the noise elbo_rng_normals(seed, ELBO_STREAM_EPS, r, s), which is what the trainer draws (train.c
 * fill_noise); the test writes those rows and noises for the oracle. Both sides minimize the batch SUM of the
 * per-sample losses (elbo's gradients are of the sum, vae.h) with the same lr, unscaled. Adam: elbo's defaults
 * (optim.c; PyTorch's betas 0.9, 0.999, eps 1e-8), lr 1e-3. SGD: momentum 0.9, dampening 0, no Nesterov, the
 * buffer set to g on the first step, as torch does; lr 1e-5 (gradients of a sum over 32 rows). Width 256 puts
 * the first and last layers' forward on the feature split on 2 and 3 threads (vae.c
 * layer_forward_by_features) and cuts every wide layer into several tail blocks.
 *
 * Why step by step: a float32 Adam run cannot be compared with another one over several steps. Adam's first
 * update is lr * g / (|g| + eps), i.e. +-lr for every element whatever |g|, so an element whose gradient sum
 * cancels to within float rounding of zero moves by +lr on one side and -lr on the other, and that difference
 * then changes every later gradient (seen with a 784-256-8 model: after one such element of fc_mu.weight in
 * step 1, the two free runs' gradients differ by 2-18 % of their scale from step 2 on, on whichever ISA rounds
 * that element the other way; on an ISA where none flips they stay within 1e-6). So every step s starts
 * elbo's trainer from torch's parameters and optimizer state at step s (as a resumed run does), and compares
 * the step's result with torch's step s + 1. Per tensor (max over its elements, relative to torch's largest):
 *  - gradients within GRAD_TOL = 1e-4 of the largest, the bound and reasoning of test_model_parity (float32
 *    sums in another order; observed ~1e-6);
 *  - optimizer state (exp_avg, exp_avg_sq, momentum_buffer) within STATE_TOL = 1e-4 of the largest: each is
 *    b * (the same previous state) + (1 - b) * g or g^2, so it inherits the gradient's error, scaled down;
 *  - each parameter's change within the interval the optimizer's own rule allows when its state may be off by
 *    STATE_TOL: for Adam, the largest |u(m', v') - u(m, v)| over the corners m' = m +- dm, v' = v +- dv of torch's
 *    new moments (u = lr / bc1 * m / (sqrt(v / bc2) + eps) is monotone in each), for SGD lr * dbuf; plus 2 ulp
 *    of the parameter for the two sides' final rounding. This is not a re-derivation of the expected values
 *    (those are torch's); it only lets an element whose update is ill-conditioned (m near 0) move as far as
 *    the allowed state error permits, and holds every well-conditioned element to ~1e-4 of its step.
 * The batch losses agree to 1e-5 relative. On every ISA this CPU runs, MSE and BCE, 1, 2 and 3 threads; the 2-
 * and 3-thread results equal the 1-thread ones bitwise, step by step and over a free-running epoch.
 * A wrong beta2, a dropped bias correction, a broken momentum, a skipped tail block on 2 threads and a GEMM
 * rounded to bfloat16 each fail (broken on purpose once). */
#include "test_scratch.h"
#include "test_oracle.h"

#include <float.h>
#include <string.h>

#include "kernels.h"
#include "optim.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "train.h"
#include "vae.h"

#define N_IMAGES 200
#define BATCH 32
#define STEPS ((N_IMAGES + BATCH - 1) / BATCH)
#define DIM 256
#define HIDDEN 256
#define LATENT 8
#define SEED 7
#define ADAM_LR 1e-3
#define SGD_LR 1e-5
#define GRAD_TOL 1e-4
#define STATE_TOL 1e-4
#define LOSS_TOL 1e-5

typedef struct {
    const char *name;
    elbo_recon recon;
    elbo_optimizer_kind opt;
} train_case;

static const train_case CASES[] = {
    {"mse_adam", ELBO_RECON_MSE, ELBO_OPT_ADAM},
    {"bce_adam", ELBO_RECON_BCE, ELBO_OPT_ADAM},
    {"mse_sgd", ELBO_RECON_MSE, ELBO_OPT_SGD},
    {"bce_sgd", ELBO_RECON_BCE, ELBO_OPT_SGD},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

static char suite_dir[MAX_PATH];
static uint8_t images[N_IMAGES * DIM];
static uint32_t order[N_IMAGES];

/* The model config of case c. */
static elbo_vae_config config_of(const train_case *c)
{
    elbo_vae_config cfg = elbo_vae_config_default(DIM);
    cfg.n_enc = cfg.n_dec = 1;
    cfg.enc_hidden[0] = cfg.dec_hidden[0] = HIDDEN;
    cfg.latent = LATENT;
    cfg.recon = c->recon;
    return cfg;
}

/* The optimizer config of case c. */
static elbo_optimizer_config optimizer_of(const train_case *c)
{
    return elbo_optimizer_config_default(c->opt, c->opt == ELBO_OPT_ADAM ? ADAM_LR : SGD_LR);
}

/* Rows in step s of the epoch (the last is partial). */
static size_t step_rows(size_t s)
{
    return N_IMAGES - s * BATCH < BATCH ? N_IMAGES - s * BATCH : BATCH;
}

/* Writes case c's oracle input to dir/NAME.in.safetensors: initial parameters, images, every step's rows and
 * noise, and the model and optimizer in the metadata. */
static void write_input(const train_case *c)
{
    elbo_vae_config cfg = config_of(c);
    elbo_optimizer_config oc = optimizer_of(c);
    elbo_param_layout l;
    elbo_vae_layout_build(&l, &cfg);
    float *p = elbo_arena_alloc(&l);
    assert_non_null(p);
    elbo_params_init(p, &l, SEED);
    size_t nt = 0;
    elbo_st_out_tensor *t = calloc(l.n_tensors + 1 + 2 * STEPS, sizeof *t);
    float *x = malloc(sizeof(float) * N_IMAGES * DIM), *rows = malloc(sizeof(float) * N_IMAGES);
    float *eps = malloc(sizeof(float) * N_IMAGES * LATENT);
    char names[2 * STEPS][32];
    for (size_t i = 0; i < l.n_tensors; i++) {
        const elbo_tensor_view *v = &l.tensor[i];
        t[nt++] = (elbo_st_out_tensor){v->name, v->cols ? 2 : 1, {v->rows, v->cols}, p + v->offset};
    }
    for (size_t i = 0; i < N_IMAGES * DIM; i++)
        x[i] = images[i];
    t[nt++] = (elbo_st_out_tensor){"input.x", 2, {N_IMAGES, DIM}, x};
    for (size_t s = 0; s < STEPS; s++) {
        size_t b = step_rows(s), first = s * BATCH;
        for (size_t r = 0; r < b; r++) {
            rows[first + r] = (float)order[first + r];
            elbo_rng_normals(eps + (first + r) * LATENT, LATENT, SEED, ELBO_STREAM_EPS, (uint32_t)r, (uint32_t)s);
        }
        snprintf(names[2 * s], sizeof names[0], "step.%zu.rows", s);
        snprintf(names[2 * s + 1], sizeof names[0], "step.%zu.eps", s);
        t[nt++] = (elbo_st_out_tensor){names[2 * s], 1, {b}, rows + first};
        t[nt++] = (elbo_st_out_tensor){names[2 * s + 1], 2, {b, LATENT}, eps + first * LATENT};
    }
    char dim[16], hid[16], lat[16], sigma0[32], beta[32], lr[32], b1[32], b2[32], ep[32], mom[32], steps[16];
    snprintf(dim, sizeof dim, "%d", DIM);
    snprintf(hid, sizeof hid, "%d", HIDDEN);
    snprintf(lat, sizeof lat, "%d", LATENT);
    snprintf(sigma0, sizeof sigma0, "%.17g", cfg.sigma0);
    snprintf(beta, sizeof beta, "%.17g", cfg.beta);
    snprintf(lr, sizeof lr, "%.17g", oc.kind == ELBO_OPT_ADAM ? oc.adam.lr : oc.sgd.lr);
    snprintf(b1, sizeof b1, "%.17g", oc.adam.beta1);
    snprintf(b2, sizeof b2, "%.17g", oc.adam.beta2);
    snprintf(ep, sizeof ep, "%.17g", oc.adam.eps);
    snprintf(mom, sizeof mom, "%.17g", oc.sgd.momentum);
    snprintf(steps, sizeof steps, "%d", STEPS);
    const char *meta[] = {"input_dim", dim, "encoder_hidden", hid, "latent", lat, "decoder_hidden", hid,
                          "recon", elbo_recon_name(cfg.recon), "sigma0", sigma0, "beta", beta,
                          "optimizer", elbo_optimizer_name(oc.kind), "lr", lr, "beta1", b1, "beta2", b2,
                          "eps", ep, "momentum", mom, "steps", steps};
    char path[MAX_PATH + 64], err[256];
    snprintf(path, sizeof path, "%s/%s.in.safetensors", suite_dir, c->name);
    if (elbo_st_write(path, t, nt, meta, sizeof meta / sizeof meta[0] / 2, err, sizeof err) != 0)
        test_failf("%s\n", err);
    free(t);
    free(x);
    free(rows);
    free(eps);
    free(p);
}

/* Makes the images and the epoch order, writes every case's input and runs the PyTorch oracle on all of them
 * in one process. */
static int generate_suite(void **state)
{
    (void)state;
    test_rng rng = {21};
    for (size_t i = 0; i < N_IMAGES * DIM; i++)
        images[i] = (uint8_t)test_rng_below(&rng, 256);
    memset(images, 0, DIM); /* an all-black and an all-white image: saturated losses */
    memset(images + DIM, 255, DIM);
    elbo_rng_permutation(order, N_IMAGES, SEED, 0);
    scratch_mkdtemp(suite_dir, "elbo-train-parity");
    char cmd[N_CASES * 2 * (MAX_PATH + 64) + 128];
    int n = snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/parity/vae_torch.py train-steps");
    for (size_t i = 0; i < N_CASES; i++) {
        write_input(&CASES[i]);
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " %s/%s.in.safetensors %s/%s.out.safetensors", suite_dir,
                      CASES[i].name, suite_dir, CASES[i].name);
    }
    return system(cmd) == 0 ? 0 : -1;
}

/* Removes the temporary directory. */
static int remove_suite(void **state)
{
    (void)state;
    remove_tree(suite_dir);
    return 0;
}

/* Copies the oracle tensor "s<step>.<what><name>" (count floats) to dst; fails the test if absent. */
static void oracle(const elbo_st_file *f, size_t step, const char *what, const char *name, float *dst,
                   size_t count)
{
    char full[ELBO_ST_NAME_MAX];
    snprintf(full, sizeof full, "s%zu.%s%s", step, what, name);
    const elbo_st_tensor *t = elbo_st_find(f, full);
    if (!t || t->count != count)
        test_failf("oracle file lacks tensor %s of %zu floats\n", full, count);
    memcpy(dst, t->data, count * sizeof(float));
}

/* Copies torch's whole state at the start of step s into arenas: parameters p, and m (exp_avg or
 * momentum_buffer) and v (exp_avg_sq, Adam only); grads gets the gradients of step s when not NULL. */
static void oracle_state(const elbo_st_file *f, const elbo_param_layout *l, int adam, size_t s, float *p, float *m,
                         float *v, float *grads)
{
    for (size_t i = 0; i < l->n_tensors; i++) {
        const elbo_tensor_view *t = &l->tensor[i];
        size_t n = elbo_tensor_view_size(t);
        oracle(f, s, "", t->name, p + t->offset, n);
        oracle(f, s, adam ? "exp_avg." : "momentum_buffer.", t->name, m + t->offset, n);
        if (adam)
            oracle(f, s, "exp_avg_sq.", t->name, v + t->offset, n);
        if (grads)
            oracle(f, s, "grad.", t->name, grads + t->offset, n);
    }
}

/* Largest |x| over n floats. */
static double max_abs(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s = fabs((double)x[i]) > s ? fabs((double)x[i]) : s;
    return s;
}

/* Adam's update lr / bc1 * m / (sqrt(v / bc2) + eps) for moments m, v (v clamped at 0). */
static double adam_update(const elbo_adam_hparams *h, double bc1, double bc2, double m, double v)
{
    return h->lr / bc1 * m / (sqrt((v > 0 ? v : 0) / bc2) + h->eps);
}

/* How far one parameter's change may be from torch's when its new optimizer state (m, v; v unused for SGD)
 * may be off by dm, dv: the largest change of the update over that box (Adam's update is monotone in m and
 * in v, so a corner attains it), plus 2 ulp of the parameter p for the two sides' final rounding. */
static double change_bound(const elbo_optimizer_config *oc, long step, float p, double m, double v, double dm,
                           double dv)
{
    double b = 0;
    if (oc->kind == ELBO_OPT_ADAM) {
        double bc1 = 1.0 - pow(oc->adam.beta1, (double)step), bc2 = 1.0 - pow(oc->adam.beta2, (double)step);
        double u = adam_update(&oc->adam, bc1, bc2, m, v);
        for (int c = 0; c < 4; c++) {
            double d = fabs(adam_update(&oc->adam, bc1, bc2, m + (c & 1 ? dm : -dm), v + (c & 2 ? dv : -dv)) - u);
            b = d > b ? d : b;
        }
    } else {
        b = oc->sgd.lr * dm;
    }
    return b + 2.0 * FLT_EPSILON * fabs(p);
}

/* Worst errors seen (fractions of their bound) per kind: gradients, parameter changes, m, v. */
static double worst[4];

/* Records a ratio of error to bound in worst[kind]. */
static void note(int kind, double ratio)
{
    worst[kind] = ratio > worst[kind] ? ratio : worst[kind];
}

/* Compares elbo's step from torch's state at step s (elbo's results p, m, v, grads; torch's state before the
 * step p0 and after it p1, m1, v1; its gradients g) tensor by tensor. */
static void check_step(const train_case *c, const char *isa, size_t s, const elbo_param_layout *l,
                       const float *p, const float *m, const float *v, const float *grads, const float *p0,
                       const float *p1, const float *m1, const float *v1, const float *g)
{
    elbo_optimizer_config oc = optimizer_of(c);
    const int adam = c->opt == ELBO_OPT_ADAM;
    for (size_t i = 0; i < l->n_tensors; i++) {
        const elbo_tensor_view *t = &l->tensor[i];
        size_t n = elbo_tensor_view_size(t), o = t->offset;
        double e = oracle_scaled_max_error(grads + o, g + o, n);
        note(0, e / GRAD_TOL);
        if (!(e <= GRAD_TOL))
            test_failf("%s/%s step %zu: gradient of %s differs from torch by %.3g of its largest (bound %g)\n",
                       c->name, isa, s, t->name, e, GRAD_TOL);
        e = oracle_scaled_max_error(m + o, m1 + o, n);
        note(2, e / STATE_TOL);
        if (!(e <= STATE_TOL))
            test_failf("%s/%s step %zu: %s of %s differs from torch by %.3g of its largest (bound %g)\n", c->name,
                       isa, s, adam ? "exp_avg" : "momentum_buffer", t->name, e, STATE_TOL);
        double dm = STATE_TOL * max_abs(m1 + o, n), dv = 0;
        if (adam) {
            e = oracle_scaled_max_error(v + o, v1 + o, n);
            note(3, e / STATE_TOL);
            if (!(e <= STATE_TOL))
                test_failf("%s/%s step %zu: exp_avg_sq of %s differs from torch by %.3g of its largest (bound %g)\n",
                           c->name, isa, s, t->name, e, STATE_TOL);
            dv = STATE_TOL * max_abs(v1 + o, n);
        }
        for (size_t j = o; j < o + n; j++) {
            double want = (double)p1[j] - p0[j], got = (double)p[j] - p0[j];
            double bound = change_bound(&oc, (long)s + 1, p1[j], m1[j], adam ? v1[j] : 0, dm, dv);
            double d = fabs(got - want);
            note(1, d / bound);
            if (!(d <= bound))
                test_failf("%s/%s step %zu: %s[%zu] changed by %.9g, torch %.9g (bound %.3g; m %.6g, v %.6g)\n",
                           c->name, isa, s, t->name, j - o, got, want, bound, m1[j], adam ? v1[j] : 0.0);
        }
    }
}

/* Per-step results of one run: parameters, optimizer state and gradients after each step, and the losses. */
typedef struct {
    float *state[STEPS];
    double loss[STEPS];
} run_result;

/* Copies params, m, v and grads (4 arenas of `total` floats) into one new buffer. */
static float *snapshot(const elbo_vae *m, const elbo_optimizer *o)
{
    size_t n = m->layout.total;
    float *s = calloc(4 * n, sizeof(float));
    memcpy(s, m->params, n * sizeof(float));
    memcpy(s + n, o->m, n * sizeof(float));
    if (o->v)
        memcpy(s + 2 * n, o->v, n * sizeof(float));
    memcpy(s + 3 * n, m->grads, n * sizeof(float));
    return s;
}

/* Runs case c's epoch with elbo's trainer (kernels k, nt threads); with f not NULL, each step s starts from
 * torch's state at step s in f (parameters repacked, optimizer moments and step counts set, as a resumed run
 * does), else the trainer runs freely from the initial parameters. Returns every step's result. */
static run_result run_trainer(const train_case *c, const elbo_kernels *k, size_t nt, const elbo_st_file *f)
{
    char err[256];
    elbo_vae_config cfg = config_of(c);
    elbo_optimizer_config oc = optimizer_of(c);
    elbo_vae m;
    elbo_trainer tr;
    assert_int_equal(elbo_vae_init(&m, &cfg, k, err, sizeof err), 0);
    elbo_params_init(m.params, &m.layout, SEED);
    elbo_vae_pack_weights(&m);
    elbo_model mm = elbo_vae_model(&m);
    if (elbo_trainer_init(&tr, &mm, &oc, BATCH, SEED, N_IMAGES, nt, NULL, err, sizeof err) != 0)
        test_failf("%s\n", err);
    tr.keep_grads = 1; /* each step's gradients are checked */
    elbo_images_view data = {images, N_IMAGES, DIM, NULL};
    run_result r;
    for (size_t s = 0; s < STEPS; s++) {
        if (f) {
            oracle_state(f, &m.layout, c->opt == ELBO_OPT_ADAM, s, m.params, tr.opt.m, tr.opt.v, NULL);
            elbo_vae_pack_weights(&m);
            tr.opt.step = tr.step = (long)s;
        }
        memset(m.grads, 0xff, m.layout.total * sizeof(float)); /* NaN: every gradient must be written */
        elbo_step_loss l = elbo_trainer_step(&tr, &data, order + s * BATCH, step_rows(s));
        if (tr.step != (long)s + 1)
            test_failf("%s/%s/%zu threads: step %zu was not taken (loss %g)\n", c->name, k->isa, nt, s, l.loss);
        r.loss[s] = l.loss;
        r.state[s] = snapshot(&m, &tr.opt);
    }
    elbo_trainer_free(&tr);
    elbo_vae_free(&m);
    return r;
}

/* Frees a run's results. */
static void run_free(run_result *r)
{
    for (size_t s = 0; s < STEPS; s++)
        free(r->state[s]);
}

/* Fails unless run b left the same bits as run a after every step (n floats per arena). */
static void expect_same_bits(const run_result *a, const run_result *b, size_t n, const char *what)
{
    for (size_t s = 0; s < STEPS; s++)
        if (memcmp(a->state[s], b->state[s], 4 * n * sizeof(float)) != 0 || a->loss[s] != b->loss[s])
            test_failf("%s: step %zu's parameters, optimizer state, gradients or loss differ from 1 thread's\n", what,
                       s);
}

/* Compares a step-by-step run (1 thread) of case c with torch's. */
static void check_against_torch(const train_case *c, const char *isa, const run_result *r, const elbo_st_file *f,
                                const elbo_param_layout *l)
{
    size_t n = l->total;
    const int adam = c->opt == ELBO_OPT_ADAM;
    float *t0 = calloc(4 * n, sizeof(float)), *t1 = calloc(3 * n, sizeof(float)), *g = calloc(n, sizeof(float));
    const elbo_st_tensor *lt = elbo_st_find(f, "loss");
    if (!lt || lt->count != STEPS)
        test_failf("oracle file lacks the %d step losses\n", STEPS);
    for (size_t s = 0; s < STEPS; s++) {
        oracle_state(f, l, adam, s, t0, t0 + n, t0 + 2 * n, g);
        oracle_state(f, l, adam, s + 1, t1, t1 + n, t1 + 2 * n, NULL);
        const float *e = r->state[s];
        check_step(c, isa, s, l, e, e + n, e + 2 * n, e + 3 * n, t0, t1, t1 + n, t1 + 2 * n, g);
        float want;
        memcpy(&want, lt->data + s, sizeof want);
        if (!(fabs(r->loss[s] - want) <= LOSS_TOL * fabs(want)))
            test_failf("%s/%s step %zu: batch loss %.9g vs torch %.9g\n", c->name, isa, s, r->loss[s], want);
    }
    free(t0);
    free(t1);
    free(g);
}

/* Every case on every ISA: each step from torch's state matches torch's step; 2 and 3 threads give 1 thread's
 * bits, step by step and in a free-running epoch. */
static void test_training_steps_match_torch(void **state)
{
    (void)state;
    for (size_t ci = 0; ci < N_CASES; ci++) {
        const train_case *c = &CASES[ci];
        char path[MAX_PATH + 64], err[256], what[128];
        elbo_st_file f;
        snprintf(path, sizeof path, "%s/%s.out.safetensors", suite_dir, c->name);
        if (elbo_st_read(path, &f, err, sizeof err) != 0)
            test_failf("%s\n", err);
        elbo_vae_config cfg = config_of(c);
        elbo_param_layout l;
        elbo_vae_layout_build(&l, &cfg);
        for (size_t i = 0; test_model_tables(i); i++) {
            const elbo_kernels *k = test_model_tables(i);
            run_result forced = run_trainer(c, k, 1, &f), free_run = run_trainer(c, k, 1, NULL);
            check_against_torch(c, k->isa, &forced, &f, &l);
            for (size_t nt = 2; nt <= 3; nt++) {
                run_result r = run_trainer(c, k, nt, &f);
                snprintf(what, sizeof what, "%s/%s step by step on %zu threads", c->name, k->isa, nt);
                expect_same_bits(&forced, &r, l.total, what);
                run_free(&r);
                r = run_trainer(c, k, nt, NULL);
                snprintf(what, sizeof what, "%s/%s free run on %zu threads", c->name, k->isa, nt);
                expect_same_bits(&free_run, &r, l.total, what);
                run_free(&r);
            }
            printf("  %-9s %-6s %d steps, losses %.6g .. %.6g\n", c->name, k->isa, STEPS, forced.loss[0],
                   forced.loss[STEPS - 1]);
            run_free(&forced);
            run_free(&free_run);
        }
        elbo_st_free(&f);
    }
    printf("  worst error / bound vs torch: gradients %.3f, parameter changes %.3f, exp_avg and momentum_buffer "
           "%.3f, exp_avg_sq %.3f\n", worst[0], worst[1], worst[2], worst[3]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_steps_match_torch),
    };
    return cmocka_run_group_tests(tests, generate_suite, remove_suite);
}
