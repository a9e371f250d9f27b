/* The classifier against PyTorch autograd, and its training step: tests/parity/classifier_torch.py writes weights,
 * uint8 images, labels, per-sample cross-entropies, each row's argmax and every parameter gradient of the
 * batch-summed cross-entropy (float32 autograd); elbo loads the same weights and must agree, on every ISA table
 * this CPU runs.
 *
 * Tolerances, those of test_model_parity (the VAE) and for the same reasons: for each tensor, max |elbo - torch|
 * <= GRAD_TOL = 1e-4 of the tensor's largest |torch gradient|. The gradients of one tensor share a scale (they
 * are sums of the same rows' products), and elementwise relative error is meaningless for entries that cancel
 * to ~0; both sides sum float32 products over up to 784 inputs and 128 rows in different orders (blocked GEMMs
 * with FMA against OpenBLAS), which leaves ~1e-6 of the scale, so 1e-4 is loose for rounding and tight for a
 * wrong formula: a dropped ReLU mask, a softmax gradient scaled by 1.01 or a missing bias row all miss by 1e-2
 * of the scale or more (broken on purpose). Per-sample cross-entropies: LOSS_TOL = 1e-5 relative (logsumexp of
 * logits a few units apart in float32; observed ~1e-7).
 *
 * The training path: the real trainer (elbo_trainer_init with elbo_classifier_model, elbo_trainer_step: rows
 * gathered, pixels converted to floats, the feature-split forward on 2 and 3 threads, the tail blocks that fuse
 * the weight gradients with the Adam update) on 1, 2 and 3 threads leaves bitwise the same parameters, Adam
 * moments and gradients after each of 5 steps (the last one partial); and its first step from the oracle's
 * weights on the oracle's 128 rows gives torch's gradients within GRAD_TOL. */
#include "test_scratch.h"
#include "test_oracle.h"

#include <string.h>
#include <unistd.h>

#include "classifier.h"
#include "kernels.h"
#include "optim.h"
#include "params.h"
#include "rng.h"
#include "safetensors.h"
#include "train.h"

#define GRAD_TOL 1e-4
#define LOSS_TOL 1e-5

/* The determinism run: 300 random images, batch 64, 5 steps (4 full, then 44 rows). */
#define DET_IMAGES 300
#define DET_BATCH 64
#define DET_STEPS 5
#define DET_DIM 784
#define DET_CLASSES 10
#define DET_SEED 11

static char suite_dir[MAX_PATH];

static const char *const CASES[] = {
    "clf_784_256_256_10_b16", "clf_784_256_256_10_b128", "clf_784_64_10", "clf_100_37_13_7",
};
/* The case the trainer's first step is checked on (the default model at the training batch). */
#define TRAIN_CASE "clf_784_256_256_10_b128"

/* Runs the PyTorch oracle once for every case into a fresh temporary directory. */
static int generate_suite(void **state)
{
    (void)state;
    char cmd[2 * MAX_PATH];
    scratch_mkdtemp(suite_dir, "elbo-clf-parity");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/parity/classifier_torch.py grads-suite %s", suite_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Removes the temporary directory. */
static int remove_suite(void **state)
{
    (void)state;
    remove_tree(suite_dir);
    return 0;
}

/* Reads case `name`'s oracle file into f and the model config recorded in its metadata. */
static elbo_classifier_config open_case(const char *name, elbo_st_file *f)
{
    char path[2 * MAX_PATH], err[256];
    snprintf(path, sizeof path, "%s/%s.safetensors", suite_dir, name);
    if (elbo_st_read(path, f, err, sizeof err) != 0)
        test_failf("%s\n", err);
    elbo_classifier_config c = elbo_classifier_config_default(0, 0);
    c.input_dim = (size_t)atol(elbo_st_meta_get(f, "input_dim"));
    c.classes = (size_t)atol(elbo_st_meta_get(f, "classes"));
    assert_int_equal(elbo_parse_widths(elbo_st_meta_get(f, "hidden"), c.hidden, &c.n_hidden, err, sizeof err), 0);
    return c;
}

/* A model with kernels k and the oracle's weights (packed). */
static void model_from_oracle(elbo_classifier *m, const elbo_classifier_config *c, const elbo_st_file *f,
                              const elbo_kernels *k)
{
    char err[256];
    if (elbo_classifier_init(m, c, k, err, sizeof err) != 0)
        test_failf("%s\n", err);
    for (size_t i = 0; i < m->layout.n_tensors; i++) {
        const elbo_tensor_view *v = &m->layout.tensor[i];
        const elbo_st_tensor *t = oracle_need(f, v->name);
        assert_int_equal(t->count, elbo_tensor_view_size(v));
        memcpy(m->params + v->offset, t->data, t->count * sizeof(float));
    }
    elbo_classifier_pack_weights(m);
}

/* The oracle's images (b x d uint8) and labels (b), new buffers; returns b. */
static size_t batch_from_oracle(const elbo_st_file *f, size_t d, uint8_t **x, uint8_t **y)
{
    const elbo_st_tensor *xt = oracle_need(f, "input.x"), *yt = oracle_need(f, "input.y");
    size_t b = xt->shape[0];
    assert_int_equal(xt->count, b * d);
    assert_int_equal(yt->count, b);
    *x = malloc(b * d);
    *y = malloc(b);
    for (size_t i = 0; i < b * d; i++)
        (*x)[i] = (uint8_t)oracle_at(xt, i);
    for (size_t r = 0; r < b; r++)
        (*y)[r] = (uint8_t)oracle_at(yt, r);
    return b;
}

/* Compares every parameter gradient in grads (m's layout) with the oracle's; returns the worst error as a
 * fraction of its tensor's scale. `what` names the case, ISA and path in a failure. */
static double check_grads(const elbo_classifier *m, const float *grads, const elbo_st_file *f, const char *what)
{
    double worst = 0;
    for (size_t i = 0; i < m->layout.n_tensors; i++) {
        const elbo_tensor_view *v = &m->layout.tensor[i];
        char gname[ELBO_TENSOR_NAME_MAX + 8];
        snprintf(gname, sizeof gname, "grad.%s", v->name);
        const elbo_st_tensor *g = oracle_need(f, gname);
        assert_int_equal(g->count, elbo_tensor_view_size(v));
        float *want = malloc(g->count * sizeof(float));
        memcpy(want, g->data, g->count * sizeof(float));
        double e = oracle_scaled_max_error(grads + v->offset, want, g->count);
        free(want);
        if (!(e <= GRAD_TOL))
            test_failf("%s: gradient of %s differs from torch by %.3g of its scale (tolerance %g)\n", what, v->name,
                       e, GRAD_TOL);
        worst = e > worst ? e : worst;
    }
    return worst;
}

/* Worst per-sample cross-entropy error seen (relative). */
static double worst_loss;

/* Loads case `name`, runs elbo_classifier_forward_backward with kernels k, compares with the oracle. */
static void check_case(const char *name, const elbo_kernels *k)
{
    char what[128];
    elbo_st_file f;
    elbo_classifier m;
    elbo_classifier_activations a;
    uint8_t *x, *y;
    elbo_classifier_config c = open_case(name, &f);
    model_from_oracle(&m, &c, &f, k);
    size_t b = batch_from_oracle(&f, c.input_dim, &x, &y);
    assert_int_equal(elbo_classifier_activations_init(&a, &m, b), 0);
    memset(m.grads, 0xff, m.layout.total * sizeof(float)); /* NaN: every gradient must be written */

    double total = elbo_classifier_forward_backward(&m, &a, x, y, b);

    snprintf(what, sizeof what, "%s/%s", name, k->isa);
    const elbo_st_tensor *ct = oracle_need(&f, "out.ce"), *lt = oracle_need(&f, "out.loss"), *pt = oracle_need(&f, "out.pred");
    double sum = 0;
    for (size_t r = 0; r < b; r++) {
        double want = oracle_at(ct, r), e = fabs(a.loss[r] - want) / fabs(want);
        if (!(e <= LOSS_TOL))
            test_failf("%s row %zu (label %u): cross-entropy %.9g vs torch %.9g\n", what, r, y[r], a.loss[r], want);
        worst_loss = e > worst_loss ? e : worst_loss;
        if (a.pred[r] != (uint32_t)oracle_at(pt, r))
            test_failf("%s row %zu: argmax %u vs torch %u\n", what, r, a.pred[r], (unsigned)oracle_at(pt, r));
        if (a.correct[r] != (a.pred[r] == y[r] ? 1.0f : 0.0f))
            test_failf("%s row %zu: correct %g for argmax %u and label %u\n", what, r, a.correct[r], a.pred[r], y[r]);
        sum += a.loss[r];
    }
    if (total != sum)
        test_failf("%s: returned loss %.17g is not the sum of the rows' %.17g\n", what, total, sum);
    if (!(fabs(total - oracle_at(lt, 0)) <= LOSS_TOL * fabs(oracle_at(lt, 0))))
        test_failf("%s: loss %.9g vs torch %.9g\n", what, total, oracle_at(lt, 0));
    double worst = check_grads(&m, m.grads, &f, what);
    printf("  %-24s %-6s B %3zu loss %.6g (torch %.6g), worst gradient error %.2e of scale\n", name, k->isa, b, total,
           oracle_at(lt, 0), worst);
    free(x);
    free(y);
    elbo_classifier_activations_free(&a);
    elbo_classifier_free(&m);
    elbo_st_free(&f);
}

/* Every case on every ISA this CPU runs. */
static void test_gradients_match_torch(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++)
        for (size_t i = 0; test_model_tables(i); i++)
            check_case(CASES[c], test_model_tables(i));
    printf("  worst per-sample cross-entropy error %.2e relative (tolerance %g)\n", worst_loss, LOSS_TOL);
}

/* The trainer's first Adam step from the oracle's weights over its 128 rows in order, with kernels k on nt threads:
 * the gradients it leaves in the model are torch's within GRAD_TOL, its loss torch's within LOSS_TOL, and the
 * step was taken. */
static void check_first_step(const elbo_kernels *k, size_t nt)
{
    char err[256], what[128];
    elbo_st_file f;
    elbo_classifier m;
    elbo_trainer tr;
    uint8_t *x, *y;
    elbo_classifier_config c = open_case(TRAIN_CASE, &f);
    model_from_oracle(&m, &c, &f, k);
    size_t b = batch_from_oracle(&f, c.input_dim, &x, &y);
    uint32_t *rows = malloc(b * sizeof *rows);
    for (size_t r = 0; r < b; r++)
        rows[r] = (uint32_t)r;
    elbo_model mm = elbo_classifier_model(&m);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
    if (elbo_trainer_init(&tr, &mm, &oc, b, 1, b, nt, NULL, err, sizeof err) != 0)
        test_failf("%s\n", err);
    tr.keep_grads = 1; /* the gradients checked below */
    elbo_images_view data = {x, b, c.input_dim, y};
    memset(m.grads, 0xff, m.layout.total * sizeof(float));
    elbo_step_loss l = elbo_trainer_step(&tr, &data, rows, b);
    snprintf(what, sizeof what, "trainer %s/%s/%zu threads", TRAIN_CASE, k->isa, nt);
    if (tr.step != 1)
        test_failf("%s: the step was not taken (loss %g)\n", what, l.loss);
    float want = oracle_at(oracle_need(&f, "out.loss"), 0);
    if (!(fabs(l.loss - want) <= LOSS_TOL * fabs(want)))
        test_failf("%s: loss %.9g vs torch %.9g\n", what, l.loss, want);
    double correct = 0;
    const elbo_st_tensor *pt = oracle_need(&f, "out.pred");
    for (size_t r = 0; r < b; r++)
        correct += (uint32_t)oracle_at(pt, r) == y[r];
    if (l.part[1] != correct)
        test_failf("%s: %g correct predictions, torch's argmax gives %g\n", what, l.part[1], correct);
    double worst = check_grads(&m, m.grads, &f, what);
    printf("  %-32s %-6s %zu threads: loss %.6g (torch %.6g), %g correct, worst gradient error %.2e of scale\n",
           "trainer first step", k->isa, nt, l.loss, want, l.part[1], worst);
    elbo_trainer_free(&tr);
    free(rows);
    free(x);
    free(y);
    elbo_classifier_free(&m);
    elbo_st_free(&f);
}

/* The trainer's first step equals torch's gradients on every ISA, 1 to 3 threads. */
static void test_trainer_first_step_matches_torch(void **state)
{
    (void)state;
    for (size_t i = 0; test_model_tables(i); i++)
        for (size_t nt = 1; nt <= 3; nt++)
            check_first_step(test_model_tables(i), nt);
}

/* Parameters, Adam's two moments and the gradients (4 arenas of n floats) after each step, and each loss. */
typedef struct {
    float *state[DET_STEPS];
    elbo_step_loss loss[DET_STEPS];
} det_run;

/* DET_STEPS steps of the 784-256-256-10 classifier (elbo_params_init, seed DET_SEED) with Adam on images and
 * labels, batch rows from elbo_rng_permutation, with kernels k on nt threads. */
static det_run run_steps(const elbo_kernels *k, size_t nt, const uint8_t *images, const uint8_t *labels)
{
    char err[256];
    elbo_classifier m;
    elbo_trainer tr;
    uint32_t order[DET_IMAGES];
    elbo_classifier_config c = elbo_classifier_config_default(DET_DIM, DET_CLASSES);
    if (elbo_classifier_init(&m, &c, k, err, sizeof err) != 0)
        test_failf("%s\n", err);
    elbo_params_init(m.params, &m.layout, DET_SEED);
    elbo_classifier_pack_weights(&m);
    elbo_model mm = elbo_classifier_model(&m);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
    if (elbo_trainer_init(&tr, &mm, &oc, DET_BATCH, DET_SEED, DET_IMAGES, nt, NULL, err, sizeof err) != 0)
        test_failf("%s\n", err);
    tr.keep_grads = 1; /* the gradients are compared across thread counts */
    elbo_rng_permutation(order, DET_IMAGES, DET_SEED, 0);
    elbo_images_view data = {images, DET_IMAGES, DET_DIM, labels};
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
    elbo_classifier_free(&m);
    return r;
}

/* Frees a run's states. */
static void det_free(det_run *r)
{
    for (size_t s = 0; s < DET_STEPS; s++)
        free(r->state[s]);
}

/* 1, 2 and 3 threads give bitwise the same parameters, moments, gradients and losses after every step, on every
 * ISA; the loss falls over the 5 steps. */
static void test_trainer_threads_bitwise(void **state)
{
    (void)state;
    static uint8_t images[DET_IMAGES * DET_DIM], labels[DET_IMAGES];
    test_rng rng = {23};
    for (size_t i = 0; i < DET_IMAGES * DET_DIM; i++)
        images[i] = (uint8_t)test_rng_below(&rng, 256);
    for (size_t r = 0; r < DET_IMAGES; r++) { /* a learnable label: which third of the image is brightest */
        double third[3] = {0, 0, 0};
        for (size_t p = 0; p < DET_DIM; p++)
            third[p * 3 / DET_DIM] += images[r * DET_DIM + p];
        labels[r] = (uint8_t)(third[1] > third[0] ? (third[2] > third[1] ? 2 : 1) : (third[2] > third[0] ? 2 : 0));
        labels[r] = (uint8_t)(labels[r] + 3 * (r % 3)); /* 9 of the 10 classes used */
    }
    elbo_classifier_config c = elbo_classifier_config_default(DET_DIM, DET_CLASSES);
    elbo_param_layout l;
    elbo_classifier_layout_build(&l, &c);
    for (size_t i = 0; test_model_tables(i); i++) {
        const elbo_kernels *k = test_model_tables(i);
        det_run one = run_steps(k, 1, images, labels);
        for (size_t nt = 2; nt <= 3; nt++) {
            det_run r = run_steps(k, nt, images, labels);
            for (size_t s = 0; s < DET_STEPS; s++) {
                static const char *const arena[] = {"parameters", "exp_avg", "exp_avg_sq", "gradients"};
                for (size_t w = 0; w < 4; w++)
                    if (memcmp(one.state[s] + w * l.total, r.state[s] + w * l.total, l.total * sizeof(float)))
                        test_failf("%s/%zu threads: step %zu's %s differ from 1 thread's\n", k->isa, nt, s, arena[w]);
                if (memcmp(&one.loss[s], &r.loss[s], sizeof one.loss[s]))
                    test_failf("%s/%zu threads: step %zu's loss %.17g (%g correct) differs from 1 thread's %.17g\n",
                               k->isa, nt, s, r.loss[s].loss, r.loss[s].part[1], one.loss[s].loss);
            }
            det_free(&r);
        }
        double first = one.loss[0].loss / DET_BATCH, last = one.loss[DET_STEPS - 1].loss / (DET_IMAGES % DET_BATCH);
        if (!(last < first))
            test_failf("%s: the mean cross-entropy did not fall over %d steps: %.6g -> %.6g\n", k->isa, DET_STEPS,
                       first, last);
        printf("  %-6s 1-3 threads bitwise over %d steps; mean cross-entropy %.4f -> %.4f\n", k->isa, DET_STEPS,
               first, last);
        det_free(&one);
    }
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_match_torch),
        cmocka_unit_test(test_trainer_first_step_matches_torch),
        cmocka_unit_test(test_trainer_threads_bitwise),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof *tests);
    return cmocka_run_group_tests(tests, generate_suite, remove_suite);
}
