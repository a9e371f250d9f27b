/* The diffusion model against PyTorch autograd and double-precision references, and its training, sampling and
 * checkpoint determinism.
 *
 * Parity: tests/parity/diffusion_torch.py writes random weights, x0 in [-1, 1], time steps t (1 and T included),
 * the noise eps, the simple loss and every parameter's gradient; elbo loads the same weights, noises the same x0 at
 * the same t with the same eps and must agree on every ISA table this CPU runs: for each tensor max |elbo - torch|
 * <= GRAD_TOL = 1e-4 of its largest |torch gradient| (float32 sums over up to 1024 inputs and 128 rows in different
 * orders leave ~1e-6; a dropped SiLU derivative, a missing residual path or a wrong scale miss by 1e-2 or more);
 * the loss within LOSS_TOL = 1e-5 relative. The schedule (beta, alpha-bar, beta-tilde and both posterior
 * coefficients, linear and cosine) equals the oracle's float64 one within SCHED_TOL = 1e-6 relative.
 *
 * Blocks: the linear layer's accumulating forward (y = act(x W^T + b + y)) and data gradient (dx += dy W) against a
 * double reference on every ISA table, at edge sizes (1, 7, 17, 33 rows and columns), within 1e-5 of the scale.
 *
 * Determinism: the trainer on 1, 2 and 3 threads leaves bitwise the same parameters, moving average, Adam moments
 * and gradients after each of 4 steps (the last partial); a checkpoint written after 2 steps and resumed (moving
 * average and optimizer state read back) continues to the bits of the uninterrupted run; DDPM and DDIM samples
 * and the bound are bitwise the same on 1, 2 and 3 threads.
 *
 * The bound: on T = 10 every term of elbo_diffusion_bound_rows with K = T equals a direct double-precision
 * computation (double network, double noising, the same noise) within 1e-4 relative; the K = 2 stratified estimate
 * is unbiased: its mean over 400 seeds is within 4 standard errors of the K = T sum's mean over the same seeds.
 *
 * The samplers: DDPM (T = 10) and DDIM (4 steps) on the tiny model equal the same samplers computed in double (double
 * network, the same normals) within 1e-4. */
#include "test_scratch.h"
#include "test_oracle.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "diffusion.h"
#include "kernels.h"
#include "optim.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "train.h"

#define GRAD_TOL 1e-4
#define LOSS_TOL 1e-5
#define SCHED_TOL 1e-6

static char suite_dir[MAX_PATH];

static const char *const CASES[] = {"diffusion_default_b16", "diffusion_default_b128", "diffusion_odd_b9",
                                    "diffusion_cosine_b16"};

/* Runs the PyTorch oracle once for every case into a fresh temporary directory. */
static int generate_suite(void **state)
{
    (void)state;
    char cmd[2 * MAX_PATH];
    scratch_mkdtemp(suite_dir, "elbo-diffusion-parity");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/parity/diffusion_torch.py grads-suite %s", suite_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Removes the temporary directory. */
static int remove_suite(void **state)
{
    (void)state;
    remove_tree(suite_dir);
    return 0;
}

/* The metadata value of key as a size. */
static size_t meta_size(const elbo_st_file *f, const char *key)
{
    const char *s = elbo_st_meta_get(f, key);
    assert_non_null(s);
    return (size_t)atol(s);
}

/* Reads case `name`'s oracle file into f and the model config in its metadata (shape 1 x D). */
static elbo_diffusion_config open_case(const char *name, elbo_st_file *f)
{
    char path[2 * MAX_PATH], err[256];
    snprintf(path, sizeof path, "%s/%s.safetensors", suite_dir, name);
    if (elbo_st_read(path, f, err, sizeof err) != 0)
        test_failf("%s\n", err);
    elbo_diffusion_config c = elbo_diffusion_config_default(1, meta_size(f, "input_dim"));
    c.hidden = meta_size(f, "hidden");
    c.n_blocks = meta_size(f, "blocks");
    c.emb_dim = meta_size(f, "emb_dim");
    c.time_dim = meta_size(f, "time_dim");
    c.T = meta_size(f, "steps");
    assert_int_equal(elbo_schedule_parse(elbo_st_meta_get(f, "schedule"), &c.schedule), 0);
    return c;
}

/* The schedule's arrays equal the oracle's float64 ones (hi + lo pairs) within SCHED_TOL relative, per case. */
static void test_schedule_matches_reference(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        elbo_st_file f;
        elbo_diffusion_config cfg = open_case(CASES[c], &f);
        elbo_schedule s;
        assert_int_equal(elbo_schedule_init(&s, cfg.schedule, cfg.T, cfg.beta_1, cfg.beta_T), 0);
        const char *names[] = {"beta", "alpha_bar", "beta_tilde", "coef_x0", "coef_xt"};
        const double *got[] = {s.beta, s.alpha_bar, s.beta_tilde, s.coef_x0, s.coef_xt};
        double worst = 0;
        for (size_t a = 0; a < 5; a++) {
            char hn[64], ln[64];
            snprintf(hn, sizeof hn, "sched.%s.hi", names[a]);
            snprintf(ln, sizeof ln, "sched.%s.lo", names[a]);
            const elbo_st_tensor *hi = oracle_need(&f, hn), *lo = oracle_need(&f, ln);
            assert_int_equal(hi->count, cfg.T + 1);
            for (size_t t = 0; t <= cfg.T; t++) {
                double want = (double)oracle_at(hi, t) + (double)oracle_at(lo, t);
                double e = fabs(got[a][t] - want) / (fabs(want) > 1e-300 ? fabs(want) : 1.0);
                if (!(e <= SCHED_TOL))
                    test_failf("%s: %s[%zu] = %.17g, reference %.17g (relative error %.3g)\n", CASES[c], names[a], t,
                               got[a][t], want, e);
                worst = e > worst ? e : worst;
            }
        }
        printf("  %-24s %s T %zu: schedule within %.2e of float64\n", CASES[c], elbo_schedule_name(cfg.schedule),
               cfg.T, worst);
        elbo_schedule_free(&s);
        elbo_st_free(&f);
    }
}

/* Loads case `name`, runs the simple loss's gradients with kernels k, compares with the oracle. */
static void check_case(const char *name, const elbo_kernels *k)
{
    char err[256];
    elbo_st_file f;
    elbo_diffusion m;
    elbo_diffusion_activations a;
    elbo_diffusion_config c = open_case(name, &f);
    if (elbo_diffusion_init(&m, &c, k, err, sizeof err) != 0)
        test_failf("%s\n", err);
    for (size_t i = 0; i < m.layout.n_tensors; i++) {
        const elbo_tensor_view *v = &m.layout.tensor[i];
        const elbo_st_tensor *t = oracle_need(&f, v->name);
        assert_int_equal(t->count, elbo_tensor_view_size(v));
        memcpy(m.params + v->offset, t->data, t->count * sizeof(float));
    }
    elbo_diffusion_pack_weights(&m);
    const elbo_st_tensor *xt = oracle_need(&f, "input.x0"), *tt = oracle_need(&f, "input.t"),
                         *et = oracle_need(&f, "input.eps");
    size_t b = xt->shape[0], d = c.input_dim;
    float *x0 = malloc(b * d * sizeof(float)), *eps = malloc(b * d * sizeof(float));
    uint32_t *t = malloc(b * sizeof *t);
    memcpy(x0, xt->data, b * d * sizeof(float));
    memcpy(eps, et->data, b * d * sizeof(float));
    for (size_t r = 0; r < b; r++)
        t[r] = (uint32_t)oracle_at(tt, r);
    assert_int_equal(elbo_diffusion_activations_init(&a, &m, b), 0);
    memset(m.grads, 0xff, m.layout.total * sizeof(float)); /* NaN: every gradient must be written */
    double loss = elbo_diffusion_grads(&m, &a, x0, t, eps, b);
    double want = oracle_at(oracle_need(&f, "out.loss"), 0);
    if (!(fabs(loss - want) <= LOSS_TOL * fabs(want)))
        test_failf("%s/%s: loss %.9g vs torch %.9g\n", name, k->isa, loss, want);
    double worst = 0;
    const char *worst_name = "";
    for (size_t i = 0; i < m.layout.n_tensors; i++) {
        const elbo_tensor_view *v = &m.layout.tensor[i];
        char gn[ELBO_TENSOR_NAME_MAX + 8];
        snprintf(gn, sizeof gn, "grad.%s", v->name);
        const elbo_st_tensor *g = oracle_need(&f, gn);
        size_t n = elbo_tensor_view_size(v);
        assert_int_equal(g->count, n);
        float *w = malloc(n * sizeof(float));
        memcpy(w, g->data, n * sizeof(float));
        double e = oracle_scaled_max_error(m.grads + v->offset, w, n);
        free(w);
        if (!(e <= GRAD_TOL))
            test_failf("%s/%s: %s differs from torch by %.3g of its scale (tolerance %g)\n", name, k->isa, gn, e,
                       GRAD_TOL);
        if (e > worst) {
            worst = e;
            worst_name = v->name;
        }
    }
    printf("  %-24s %-6s B %3zu loss %.6f; worst gradient error %.2e of scale (%s)\n", name, k->isa, b, loss, worst,
           worst_name);
    free(x0);
    free(eps);
    free(t);
    elbo_diffusion_activations_free(&a);
    elbo_diffusion_free(&m);
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

/* SiLU in double. */
static double silu(double v)
{
    return v / (1.0 + exp(-v));
}

/* elbo_linear_forward_accumulate (SiLU, saving u) and elbo_linear_data_grad_accumulate against double references
 * at edge sizes on every ISA table. */
static void test_linear_accumulate(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 7, 17, 33};
    test_rng rng = {5};
    for (size_t i = 0; test_model_tables(i); i++) {
        const elbo_kernels *k = test_model_tables(i);
        double worst = 0;
        for (size_t si = 0; si < 4; si++)
            for (size_t sj = 0; sj < 4; sj++)
                for (size_t sr = 0; sr < 4; sr++) {
                    size_t in = sizes[si] * 9, out = sizes[sj] * 5, rows = sizes[sr];
                    float *params = test_alloc_nan(in * out + out + 16), *x = test_alloc_nan(rows * in);
                    float *y = test_alloc_nan(rows * out), *y0 = test_alloc_nan(rows * out);
                    float *u = test_alloc_nan(rows * out), *dx = test_alloc_nan(rows * in);
                    float *dx0 = test_alloc_nan(rows * in), *dy = test_alloc_nan(rows * out);
                    test_fill(&rng, params, in * out + out, -1, 1);
                    test_fill(&rng, x, rows * in, -2, 2);
                    test_fill(&rng, y0, rows * out, -3, 3);
                    test_fill(&rng, dy, rows * out, -1, 1);
                    test_fill(&rng, dx0, rows * in, -1, 1);
                    y0[0] = 60.0f; /* SiLU's saturated end */
                    memcpy(y, y0, rows * out * sizeof(float));
                    memcpy(dx, dx0, rows * in * sizeof(float));
                    elbo_linear l;
                    elbo_gemm_workspace ws;
                    assert_int_equal(elbo_linear_init(&l, k, in, out, 0, in * out, ELBO_ACT_SILU, params, 1), 0);
                    assert_int_equal(elbo_gemm_workspace_init(&ws, k), 0);
                    elbo_linear_pack(&l, params);
                    elbo_linear_forward_accumulate(&l, &ws, y, u, elbo_operand_f32(x, in, ELBO_NOTRANS), rows,
                                                   params);
                    elbo_linear_data_grad_accumulate(&l, &ws, dx, dy, rows);
                    double scale = 0, err = 0;
                    for (size_t r = 0; r < rows; r++)
                        for (size_t j = 0; j < out; j++) {
                            double v = params[in * out + j] + y0[r * out + j];
                            for (size_t q = 0; q < in; q++)
                                v += (double)x[r * in + q] * params[j * in + q];
                            scale = fmax(scale, fabs(v));
                            err = fmax(err, fmax(fabs(v - u[r * out + j]), fabs(silu(v) - y[r * out + j])));
                        }
                    for (size_t r = 0; r < rows; r++)
                        for (size_t q = 0; q < in; q++) {
                            double v = dx0[r * in + q];
                            for (size_t j = 0; j < out; j++)
                                v += (double)dy[r * out + j] * params[j * in + q];
                            scale = fmax(scale, fabs(v));
                            err = fmax(err, fabs(v - dx[r * in + q]));
                        }
                    if (!(err <= 1e-5 * scale))
                        test_failf("%s: %zu rows, %zu -> %zu: error %.3g of scale %.3g\n", k->isa, rows, in, out, err,
                                   scale);
                    worst = fmax(worst, err / scale);
                    elbo_linear_free(&l);
                    elbo_gemm_workspace_free(&ws);
                    free(params), free(x), free(y), free(y0), free(u), free(dx), free(dx0), free(dy);
                }
        printf("  %-6s accumulating forward and data gradient: worst error %.2e of scale\n", k->isa, worst);
    }
}

#define DET_IMAGES 150
#define DET_BATCH 48
#define DET_STEPS 4
#define DET_SEED 13

/* A small model with tile-unfriendly widths for the determinism tests. */
static elbo_diffusion_config small_config(void)
{
    elbo_diffusion_config c = elbo_diffusion_config_default(28, 28);
    c.hidden = 200;
    c.n_blocks = 2;
    c.time_dim = 40;
    c.emb_dim = 16;
    c.ema_decay = 0.9;
    return c;
}

/* Parameters, moving average, Adam's two moments and the gradients (5 arenas) after each step, and each loss. */
typedef struct {
    float *state[DET_STEPS];
    elbo_step_loss loss[DET_STEPS];
} det_run;

/* Copies the 5 arenas of m and tr into a new buffer. */
static float *snapshot(const elbo_diffusion *m, const elbo_trainer *tr)
{
    size_t n = m->layout.total;
    float *s = malloc(5 * n * sizeof(float));
    memcpy(s, m->params, n * sizeof(float));
    memcpy(s + n, m->ema, n * sizeof(float));
    memcpy(s + 2 * n, tr->opt.m, n * sizeof(float));
    memcpy(s + 3 * n, tr->opt.v, n * sizeof(float));
    memcpy(s + 4 * n, m->grads, n * sizeof(float));
    return s;
}

/* Steps [from, DET_STEPS) of the small model with Adam lr 1e-3 on images on nt threads; from > 0 resumes from the
 * checkpoint at ckpt (written by a run with from = 0 and ckpt set after step `save_after`). */
static det_run run_steps(const elbo_kernels *k, size_t nt, const uint8_t *images, size_t from, const char *ckpt,
                         size_t save_after)
{
    char err[256];
    elbo_diffusion m;
    elbo_trainer tr;
    uint32_t order[DET_IMAGES];
    elbo_diffusion_config c = small_config();
    if (from == 0) {
        if (elbo_diffusion_init(&m, &c, k, err, sizeof err) != 0)
            test_failf("%s\n", err);
        elbo_params_init(m.params, &m.layout, DET_SEED);
        memcpy(m.ema, m.params, m.layout.total * sizeof(float));
        elbo_diffusion_pack_weights(&m);
    } else if (elbo_diffusion_load(ckpt, &m, k, NULL, err, sizeof err) != 0) {
        test_failf("%s\n", err);
    }
    elbo_model mm = elbo_diffusion_model(&m);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
    if (elbo_trainer_init(&tr, &mm, &oc, DET_BATCH, DET_SEED, DET_IMAGES, nt, NULL, err, sizeof err) != 0)
        test_failf("%s\n", err);
    if (from > 0) {
        if (elbo_checkpoint_load_optimizer(ckpt, &m.layout, &tr.opt, err, sizeof err) != 0)
            test_failf("%s\n", err);
        tr.step = (long)from;
        tr.opt.step = (long)from;
    }
    elbo_rng_permutation(order, DET_IMAGES, DET_SEED, 0);
    elbo_images_view data = {images, DET_IMAGES, c.input_dim, NULL};
    det_run r;
    memset(&r, 0, sizeof r);
    for (size_t s = from; s < DET_STEPS; s++) {
        size_t first = s * DET_BATCH, b = DET_IMAGES - first < DET_BATCH ? DET_IMAGES - first : DET_BATCH;
        memset(m.grads, 0xff, m.layout.total * sizeof(float));
        r.loss[s] = elbo_trainer_step(&tr, &data, order + first, b);
        if (tr.step != (long)s + 1)
            test_failf("%s/%zu threads: step %zu was not taken (loss %g)\n", k->isa, nt, s, r.loss[s].loss);
        r.state[s] = snapshot(&m, &tr);
        if (ckpt && from == 0 && s + 1 == save_after) {
            elbo_train_state st = {.seed = DET_SEED, .step = tr.step, .optimizer = "adam", .lr = 1e-3,
                                   .batch = DET_BATCH, .dataset = "test"};
            if (elbo_checkpoint_write(ckpt, &mm, &st, &tr.opt, err, sizeof err) != 0)
                test_failf("%s\n", err);
        }
    }
    elbo_trainer_free(&tr);
    elbo_diffusion_free(&m);
    return r;
}

/* Frees a run's states. */
static void det_free(det_run *r)
{
    for (size_t s = 0; s < DET_STEPS; s++)
        free(r->state[s]);
}

/* Fails unless runs a and b have bitwise the same state and loss at steps [from, DET_STEPS). */
static void det_compare(const det_run *a, const det_run *b, size_t from, size_t total, const char *what)
{
    static const char *const arena[] = {"parameters", "moving average", "exp_avg", "exp_avg_sq", "gradients"};
    for (size_t s = from; s < DET_STEPS; s++) {
        for (size_t w = 0; w < 5; w++)
            if (memcmp(a->state[s] + w * total, b->state[s] + w * total, total * sizeof(float)))
                test_failf("%s: step %zu's %s differ\n", what, s, arena[w]);
        if (memcmp(&a->loss[s], &b->loss[s], sizeof a->loss[s]))
            test_failf("%s: step %zu's loss %.17g differs from %.17g\n", what, s, b->loss[s].loss, a->loss[s].loss);
    }
}

/* Random images for the determinism tests. */
static const uint8_t *det_images(void)
{
    static uint8_t images[DET_IMAGES * 784];
    test_rng rng = {29};
    for (size_t i = 0; i < sizeof images; i++)
        images[i] = (uint8_t)test_rng_below(&rng, 256);
    return images;
}

/* 1, 2 and 3 threads give bitwise the same state after every step; a run resumed from a checkpoint after step 2
 * continues bitwise; on every ISA. */
static void test_trainer_threads_and_resume_bitwise(void **state)
{
    (void)state;
    const uint8_t *images = det_images();
    elbo_param_layout l;
    elbo_diffusion_config c = small_config();
    elbo_diffusion_layout_build(&l, &c);
    char dir[MAX_PATH], ckpt[2 * MAX_PATH], what[128];
    scratch_mkdtemp(dir, "elbo-diffusion-resume");
    join(ckpt, dir, "d.safetensors");
    for (size_t i = 0; test_model_tables(i); i++) {
        const elbo_kernels *k = test_model_tables(i);
        det_run one = run_steps(k, 1, images, 0, ckpt, 2);
        for (size_t nt = 2; nt <= 3; nt++) {
            det_run r = run_steps(k, nt, images, 0, NULL, 0);
            snprintf(what, sizeof what, "%s/%zu threads vs 1", k->isa, nt);
            det_compare(&one, &r, 0, l.total, what);
            det_free(&r);
        }
        det_run resumed = run_steps(k, 2, images, 2, ckpt, 0);
        snprintf(what, sizeof what, "%s/resumed after step 2", k->isa);
        det_compare(&one, &resumed, 2, l.total, what);
        det_free(&resumed);
        printf("  %-6s 1-3 threads and --resume bitwise over %d steps (moving average included); loss %.4f -> "
               "%.4f\n", k->isa, DET_STEPS, one.loss[0].loss / DET_BATCH,
               one.loss[DET_STEPS - 1].loss / (DET_IMAGES - (DET_STEPS - 1) * DET_BATCH));
        det_free(&one);
    }
    remove_tree(dir);
}

/* DDPM (T = 30) and DDIM (7 steps) samples of 5 images, their trajectories, and the bound (K = 4) of 5 images are
 * bitwise the same on 1, 2 and 3 threads; the trajectory's last frame is the sample; on every ISA. */
static void test_sampler_and_bound_threads_bitwise(void **state)
{
    (void)state;
    enum { N = 5, FRAMES = 4 };
    const uint8_t *images = det_images();
    for (size_t i = 0; test_model_tables(i); i++) {
        const elbo_kernels *k = test_model_tables(i);
        elbo_diffusion_config c = small_config();
        c.T = 30;
        elbo_diffusion m;
        char err[256];
        assert_int_equal(elbo_diffusion_init(&m, &c, k, err, sizeof err), 0);
        elbo_params_init(m.params, &m.layout, 3);
        elbo_diffusion_pack_weights(&m);
        static float x[3][2][N * 784], traj[3][2][FRAMES * N * 784];
        double bpd[3];
        for (size_t nt = 1; nt <= 3; nt++) {
            elbo_team team;
            elbo_diffusion_activations a;
            assert_int_equal(elbo_team_init(&team, nt, k, NULL), 0);
            assert_int_equal(elbo_diffusion_activations_init(&a, &m, 4), 0); /* two batches: 4 + 1 */
            elbo_diffusion_sample(&m, &a, &team, ELBO_SAMPLER_DDPM, 0, 7, 0, N, x[nt - 1][0], traj[nt - 1][0], FRAMES);
            elbo_diffusion_sample(&m, &a, &team, ELBO_SAMPLER_DDIM, 7, 7, 0, N, x[nt - 1][1], traj[nt - 1][1], FRAMES);
            bpd[nt - 1] = elbo_diffusion_bound_bpd(&m, &a, &team, images, N, 4, 9);
            elbo_diffusion_activations_free(&a);
            elbo_team_free(&team);
            for (size_t s = 0; s < 2; s++) {
                if (memcmp(traj[nt - 1][s] + (FRAMES - 1) * N * 784, x[nt - 1][s], sizeof x[0][0]))
                    test_failf("%s/%zu threads: sampler %zu's last trajectory frame is not its sample\n", k->isa, nt, s);
                if (nt > 1 && (memcmp(x[0][s], x[nt - 1][s], sizeof x[0][0]) ||
                               memcmp(traj[0][s], traj[nt - 1][s], sizeof traj[0][0])))
                    test_failf("%s/%zu threads: sampler %zu differs from 1 thread's\n", k->isa, nt, s);
            }
            if (nt > 1 && memcmp(&bpd[0], &bpd[nt - 1], sizeof bpd[0]))
                test_failf("%s/%zu threads: bound %.17g differs from 1 thread's %.17g\n", k->isa, nt, bpd[nt - 1],
                           bpd[0]);
        }
        for (size_t j = 0; j < N * 784; j++)
            if (!(x[0][0][j] >= -1.0f && x[0][0][j] <= 1.0f) || !(x[0][1][j] >= -1.0f && x[0][1][j] <= 1.0f))
                test_failf("%s: a sample value is outside [-1, 1]\n", k->isa);
        printf("  %-6s DDPM-30, DDIM-7 samples, trajectories and the bound (%.4f bits/dim) bitwise on 1-3 threads\n",
               k->isa, bpd[0]);
        elbo_diffusion_free(&m);
    }
}

/* ---- the bound against a direct double computation ---- */

/* y (out) = x (in) W^T + b in double, W and b from params at the layer's offsets. */
static void linear_ref(double *y, const double *x, const elbo_linear_layout *l, const float *params)
{
    for (size_t j = 0; j < l->out; j++) {
        double v = params[l->b_off + j];
        for (size_t q = 0; q < l->in; q++)
            v += x[q] * params[l->w_off + j * l->in + q];
        y[j] = v;
    }
}

/* eps_theta(xt, t) (D) of one image in double. */
static void net_ref(double *out, const double *xt, uint32_t t, const elbo_diffusion *m)
{
    const elbo_diffusion_config *c = &m->cfg;
    const elbo_linear_layout *L = m->layout.layer;
    const float *p = m->params;
    double emb[64], tu[64], e[64], h[64], s[64], ue[64], w1[64], a[64], w2[64];
    size_t half = c->emb_dim / 2, hd = c->hidden, td = c->time_dim;
    for (size_t q = 0; q < half; q++) {
        double f = exp(-log(10000.0) * (double)q / (double)half);
        emb[q] = sin(t * f);
        emb[half + q] = cos(t * f);
    }
    linear_ref(tu, emb, &L[0], p);
    for (size_t j = 0; j < td; j++)
        tu[j] = silu(tu[j]);
    linear_ref(e, tu, &L[1], p);
    linear_ref(h, xt, &L[2], p);
    for (size_t k = 0; k < c->n_blocks; k++) {
        for (size_t j = 0; j < hd; j++)
            s[j] = silu(h[j]);
        linear_ref(ue, e, &L[3 + 3 * k], p);
        linear_ref(w1, s, &L[4 + 3 * k], p);
        for (size_t j = 0; j < hd; j++)
            a[j] = silu(w1[j] + ue[j]);
        linear_ref(w2, a, &L[5 + 3 * k], p);
        for (size_t j = 0; j < hd; j++)
            h[j] += w2[j];
    }
    for (size_t j = 0; j < hd; j++)
        s[j] = silu(h[j]);
    linear_ref(out, s, &L[3 + 3 * c->n_blocks], p);
}

/* Standard normal CDF in double. */
static double phi(double z)
{
    return 0.5 * erfc(-z / sqrt(2.0));
}

/* The whole bound (K = T) of one image (sample index `sample`, noise seed `seed`) in nats, all in double: the prior
 * term, the decoder at t = 1 (plain CDF differences) and the KL terms as the Gaussian KL with both variances. */
static double bound_ref(const elbo_diffusion *m, const uint8_t *x, uint32_t sample, uint64_t seed)
{
    const elbo_schedule *s = &m->sched;
    size_t d = m->cfg.input_dim, T = m->cfg.T;
    double x0[64], xt[64], eh[64];
    float eps[64];
    double total = 0, abT = s->alpha_bar[T];
    for (size_t j = 0; j < d; j++) {
        x0[j] = 2.0 * x[j] / 255.0 - 1.0;
        double mu = sqrt(abT) * x0[j], var = 1 - abT;
        total += 0.5 * (var + mu * mu - 1 - log(var));
    }
    for (size_t t = 1; t <= T; t++) {
        elbo_rng_normals(eps, d, seed, ELBO_STREAM_EVAL, sample, (uint32_t)t);
        for (size_t j = 0; j < d; j++)
            xt[j] = sqrt(s->alpha_bar[t]) * x0[j] + sqrt(1 - s->alpha_bar[t]) * eps[j];
        net_ref(eh, xt, (uint32_t)t, m);
        double var = t == 1 ? s->beta_tilde[2] : s->beta_tilde[t];
        for (size_t j = 0; j < d; j++) {
            double x0h = (xt[j] - sqrt(1 - s->alpha_bar[t]) * eh[j]) / sqrt(s->alpha_bar[t]);
            double mu_theta = s->coef_x0[t] * x0h + s->coef_xt[t] * xt[j];
            if (t == 1) {
                double sd = sqrt(var), c = x0[j] - mu_theta;
                double hi = x0[j] > 0.999 ? 1.0 : phi((c + 1.0 / 255) / sd);
                double lo = x0[j] < -0.999 ? 0.0 : phi((c - 1.0 / 255) / sd);
                total += -log(fmax(hi - lo, 1e-12));
            } else {
                double mu_q = s->coef_x0[t] * x0[j] + s->coef_xt[t] * xt[j];
                /* KL(N(mu_q, var) || N(mu_theta, var)) */
                total += 0.5 * (mu_q - mu_theta) * (mu_q - mu_theta) / var;
            }
        }
    }
    return total;
}

/* A tiny model (D 12, H 16, T 10) with its weights drawn from seed 5 and scaled so that the terms are of order 1. */
static void tiny_model(elbo_diffusion *m, const elbo_kernels *k)
{
    elbo_diffusion_config c = elbo_diffusion_config_default(3, 4);
    char err[256];
    c.hidden = 16;
    c.n_blocks = 2;
    c.time_dim = 8;
    c.emb_dim = 6;
    c.T = 10;
    c.beta_1 = 0.01;
    c.beta_T = 0.3;
    assert_int_equal(elbo_diffusion_init(m, &c, k, err, sizeof err), 0);
    elbo_params_init(m->params, &m->layout, 5);
    elbo_diffusion_pack_weights(m);
}

/* K = T against bound_ref within 1e-4 relative per image, every ISA; then the K = 2 estimate's mean over 400 seeds
 * against the K = T mean over the same seeds within 4 standard errors. */
static void test_bound_matches_double(void **state)
{
    (void)state;
    enum { N = 6, SEEDS = 400 };
    uint8_t x[N * 12];
    test_rng rng = {17};
    for (size_t i = 0; i < sizeof x; i++)
        x[i] = (uint8_t)test_rng_below(&rng, 256);
    x[0] = 0, x[1] = 255;
    for (size_t i = 0; test_model_tables(i); i++) {
        const elbo_kernels *k = test_model_tables(i);
        elbo_diffusion m;
        elbo_diffusion_activations a;
        tiny_model(&m, k);
        assert_int_equal(elbo_diffusion_activations_init(&a, &m, N), 0);
        double nats[N], worst = 0;
        elbo_diffusion_bound_rows(&m, &a, &a.ws, x, m.cfg.T, 3, 0, 0, N, nats);
        for (size_t r = 0; r < N; r++) {
            double want = bound_ref(&m, x + r * 12, (uint32_t)r, 3), e = fabs(nats[r] - want) / fabs(want);
            if (!(e <= 1e-4))
                test_failf("%s: image %zu: bound %.9g nats, double reference %.9g (relative error %.3g)\n", k->isa, r,
                           nats[r], want, e);
            worst = fmax(worst, e);
        }
        printf("  %-6s bound on T = 10 within %.2e of double (image 0: %.5f nats)\n", k->isa, worst, nats[0]);
        if (i == 0) { /* unbiasedness: the estimator's statistics do not depend on the ISA */
            double sum_full = 0, sum_est = 0, sum_sq = 0;
            for (uint64_t seed = 0; seed < SEEDS; seed++) {
                double full[N], est[N];
                elbo_diffusion_bound_rows(&m, &a, &a.ws, x, m.cfg.T, seed, 0, 0, N, full);
                elbo_diffusion_bound_rows(&m, &a, &a.ws, x, 2, seed + 100000, 0, 0, N, est);
                for (size_t r = 0; r < N; r++) {
                    double dlt = est[r] - full[r];
                    sum_full += full[r];
                    sum_est += est[r];
                    sum_sq += dlt * dlt;
                }
            }
            double n = (double)SEEDS * N, mean_diff = (sum_est - sum_full) / n;
            double se = sqrt((sum_sq / n - mean_diff * mean_diff) / n);
            if (!(fabs(mean_diff) <= 4 * se))
                test_failf("K = 2 estimate's mean %.6f vs the whole sum's %.6f: %.2f standard errors apart\n",
                           sum_est / n, sum_full / n, fabs(mean_diff) / se);
            printf("  K = 2 over %d seeds: mean %.5f vs whole sum %.5f nats (%.2f standard errors)\n", SEEDS,
                   sum_est / n, sum_full / n, fabs(mean_diff) / se);
        }
        elbo_diffusion_activations_free(&a);
        elbo_diffusion_free(&m);
    }
}

/* The clipped x-hat_0 of x_t and eps_theta at t, in double. */
static double x0_hat_ref(double xt, double eps, double ab)
{
    double v = (xt - sqrt(1 - ab) * eps) / sqrt(ab);
    return v < -1 ? -1 : v > 1 ? 1 : v;
}

/* The whole DDPM (T = 10) and DDIM (4 steps: 10, 7, 4, 1) samplers of 3 images on the tiny model against the same
 * samplers in double (double network, the same normals), on every ISA: every value within 1e-4. */
static void test_samplers_match_double(void **state)
{
    (void)state;
    enum { N = 3, D = 12 };
    for (size_t i = 0; test_model_tables(i); i++) {
        const elbo_kernels *k = test_model_tables(i);
        elbo_diffusion m;
        elbo_diffusion_activations a;
        tiny_model(&m, k);
        const elbo_schedule *s = &m.sched;
        assert_int_equal(elbo_diffusion_activations_init(&a, &m, N), 0);
        for (int kind = 0; kind < 2; kind++) {
            uint32_t steps[16];
            size_t n = elbo_diffusion_sampler_steps(&m, kind, 4, steps);
            if (kind == ELBO_SAMPLER_DDIM && (n != 4 || steps[0] != 10 || steps[1] != 7 || steps[3] != 1))
                test_failf("DDIM steps %u %u %u %u, expected 10 7 4 1\n", steps[0], steps[1], steps[2], steps[3]);
            float x[N * D];
            elbo_diffusion_sample_rows(&m, &a, &a.ws, kind, 4, 21, 5, 0, N, x, NULL, 0, N);
            double worst = 0;
            for (size_t r = 0; r < N; r++) {
                float z[D];
                double xr[D], eh[D];
                elbo_rng_normals(z, D, 21, ELBO_STREAM_SAMPLE, (uint32_t)(5 + r), 0);
                for (size_t j = 0; j < D; j++)
                    xr[j] = z[j];
                for (size_t q = 0; q < n; q++) {
                    uint32_t t = steps[q];
                    double ab = s->alpha_bar[t];
                    net_ref(eh, xr, t, &m);
                    if (kind == ELBO_SAMPLER_DDPM) {
                        elbo_rng_normals(z, D, 21, ELBO_STREAM_SAMPLE, (uint32_t)(5 + r), (uint32_t)(q + 1));
                        for (size_t j = 0; j < D; j++) {
                            double mean = s->coef_x0[t] * x0_hat_ref(xr[j], eh[j], ab) + s->coef_xt[t] * xr[j];
                            xr[j] = t > 1 ? mean + sqrt(s->beta_tilde[t]) * z[j] : mean;
                        }
                    } else {
                        double abp = q + 1 < n ? s->alpha_bar[steps[q + 1]] : 1.0;
                        for (size_t j = 0; j < D; j++) {
                            double x0 = x0_hat_ref(xr[j], eh[j], ab), e = (xr[j] - sqrt(ab) * x0) / sqrt(1 - ab);
                            xr[j] = sqrt(abp) * x0 + sqrt(1 - abp) * e;
                        }
                    }
                }
                for (size_t j = 0; j < D; j++)
                    worst = fmax(worst, fabs(xr[j] - x[r * D + j]));
            }
            if (!(worst <= 1e-4))
                test_failf("%s: %s differs from double by %.3g\n", k->isa, kind ? "DDIM" : "DDPM", worst);
            printf("  %-6s %s-%zu within %.2e of double\n", k->isa, kind ? "DDIM" : "DDPM", n, worst);
        }
        elbo_diffusion_activations_free(&a);
        elbo_diffusion_free(&m);
    }
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_matches_reference),
        cmocka_unit_test(test_gradients_match_torch),
        cmocka_unit_test(test_linear_accumulate),
        cmocka_unit_test(test_trainer_threads_and_resume_bitwise),
        cmocka_unit_test(test_sampler_and_bound_threads_bitwise),
        cmocka_unit_test(test_bound_matches_double),
        cmocka_unit_test(test_samplers_match_double),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof *tests);
    return cmocka_run_group_tests(tests, generate_suite, remove_suite);
}
