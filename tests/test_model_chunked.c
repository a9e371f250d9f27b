/* The chunked, tree-ordered training step (train_chunked.h) and its tree (grad_tree.h): every rank count's pieces
 * tile the chunks, the tree's root has the same bits for any rank count and lies within the float bound of a
 * double-precision sum; a VAE trained in chunks by 1 to 4 simulated ranks on 1 to 3 threads ends with byte-identical
 * parameters and optimizer state (the last partial batch leaving some ranks without rows), and its first step's
 * gradients agree with the one-GEMM step's within float rounding. */
#include "test_util.h"

#include <string.h>

#include "grad_tree.h"
#include "optim.h"
#include "train_chunked.h"
#include "vae.h"

#define IN 784
#define N_TRAIN 200
#define BATCH 96
#define CHUNK 16
#define STEPS 4

/* For 1..40 chunks and 1..7 ranks: each rank's pieces lie in its range, in order, and tile it once. */
static void test_pieces_tile_the_ranges(void **state)
{
    (void)state;
    for (size_t n = 1; n <= 40; n++)
        for (size_t p = 1; p <= 7; p++) {
            elbo_grad_tree t;
            assert_int_equal(elbo_grad_tree_init(&t, n, p), 0);
            assert_true(((size_t)1 << t.levels) >= n);
            for (size_t r = 0; r < p; r++) {
                size_t at = t.range[r];
                for (size_t i = t.piece_first[r]; i < t.piece_first[r + 1]; i++) {
                    size_t lo, hi;
                    elbo_tree_node_chunks(&t, t.piece[i], &lo, &hi);
                    if (lo != at || hi <= lo || hi > t.range[r + 1])
                        test_failf("%zu chunks, %zu ranks: rank %zu piece (%u, %u) covers [%zu, %zu), expected from "
                                   "%zu inside [%zu, %zu)\n", n, p, r, t.piece[i].k, t.piece[i].j, lo, hi, at,
                                   t.range[r], t.range[r + 1]);
                    at = hi;
                }
                assert_int_equal(at, t.range[r + 1]);
            }
            elbo_grad_tree_free(&t);
        }
}

/* Bytes per rank and step: a ring allreduce's 2 (P - 1) / P 4n when every rank's range is one tree node (8 chunks
 * on 1, 2, 4, 8 ranks); twice it for 11 chunks (batch 256) on 2 ranks, whose second range [5, 11) is 3 pieces
 * ([5, 6), [6, 8), [8, 11)): 3 halves out, then its half of the root. */
static void test_bytes_against_ring(void **state)
{
    (void)state;
    const size_t n = 1000;
    for (size_t p = 1; p <= 8; p *= 2) {
        elbo_grad_tree t;
        assert_int_equal(elbo_grad_tree_init(&t, 8, p), 0);
        assert_int_equal(elbo_grad_tree_bytes_sent(&t, n), 2 * (p - 1) * n / p * sizeof(float));
        elbo_grad_tree_free(&t);
    }
    elbo_grad_tree t;
    assert_int_equal(elbo_grad_tree_init(&t, 11, 2), 0);
    assert_int_equal(t.piece_first[2] - t.piece_first[1], 3);
    size_t ring = 2 * n / 2 * sizeof(float), got = elbo_grad_tree_bytes_sent(&t, n);
    print_message("    11 chunks on 2 ranks: %zu bytes per rank against the ring's %zu\n", got, ring);
    assert_int_equal(got, 2 * ring);
    elbo_grad_tree_free(&t);
}

/* The pieces of P ranks over chunk values x (n chunks of len floats), computed as a rank would (leaves copy). */
typedef struct {
    const float *x;
    size_t len;
} values_ctx;

/* elbo_tree_leaf_fn: chunk c's values. */
static void leaf_copy(void *ctx, size_t c, float *out)
{
    const values_ctx *v = ctx;
    memcpy(out, v->x + c * v->len, v->len * sizeof *out);
}

/* elbo_tree_add_fn: out += in. */
static void add_floats(void *ctx, float *out, const float *in)
{
    const values_ctx *v = ctx;
    for (size_t i = 0; i < v->len; i++)
        out[i] += in[i];
}

/* The root of the tree over n chunks of len values x, formed by p ranks' pieces, into out. */
static void tree_root(const float *x, size_t n, size_t len, size_t p, float *out)
{
    elbo_grad_tree t;
    assert_int_equal(elbo_grad_tree_init(&t, n, p), 0);
    values_ctx v = {x, len};
    float *scratch[16], **piece = malloc(t.n_pieces * sizeof *piece);
    for (size_t i = 0; i <= t.levels; i++)
        scratch[i] = malloc(len * sizeof(float));
    for (size_t i = 0; i < t.n_pieces; i++) {
        piece[i] = malloc(len * sizeof(float));
        elbo_grad_tree_piece(&t, t.piece[i], leaf_copy, add_floats, &v, piece[i], scratch);
    }
    elbo_grad_tree_combine(&t, (const float *const *)piece, len, scratch, out);
    for (size_t i = 0; i < t.n_pieces; i++)
        free(piece[i]);
    for (size_t i = 0; i <= t.levels; i++)
        free(scratch[i]);
    free(piece);
    elbo_grad_tree_free(&t);
}

/* For 1..33 chunks of values of mixed signs and magnitudes: the root's bits are the same for 1..7 ranks, and
 * each element is within levels u / (1 - levels u) of the sum of magnitudes of the double-precision sum (a
 * summation tree of depth `levels`, u = 2^-24). */
static void test_root_independent_of_ranks(void **state)
{
    (void)state;
    enum { LEN = 257 };
    test_rng rng = {3};
    for (size_t n = 1; n <= 33; n++) {
        float *x = malloc(n * LEN * sizeof *x), ref[LEN], got[LEN];
        for (size_t i = 0; i < n * LEN; i++)
            x[i] = test_rng_uniform(&rng, -1, 1) * ldexpf(1, (int)test_rng_below(&rng, 20) - 10);
        tree_root(x, n, LEN, 1, ref);
        size_t levels = 0;
        while (((size_t)1 << levels) < n)
            levels++;
        double u = ldexp(1, -24), gamma = levels * u / (1 - levels * u);
        for (size_t e = 0; e < LEN; e++) {
            double exact = 0, mag = 0;
            for (size_t c = 0; c < n; c++) {
                exact += x[c * LEN + e];
                mag += fabs(x[c * LEN + e]);
            }
            if (fabs(ref[e] - exact) > gamma * mag)
                test_failf("%zu chunks, element %zu: tree %.9g, double %.17g, bound %.3g\n", n, e, ref[e], exact,
                           gamma * mag);
        }
        for (size_t p = 2; p <= 7 && p <= n; p++) {
            tree_root(x, n, LEN, p, got);
            if (memcmp(got, ref, sizeof ref) != 0)
                test_failf("%zu chunks: the root over %zu ranks differs from one rank's\n", n, p);
        }
        free(x);
    }
}

/* N_TRAIN images of IN pseudo-random pixels (a fixed pattern plus noise, so the VAE has something to learn). */
static uint8_t *make_pixels(void)
{
    uint8_t *px = malloc((size_t)N_TRAIN * IN);
    test_rng r = {17};
    for (size_t i = 0; i < (size_t)N_TRAIN * IN; i++)
        px[i] = (uint8_t)((i % IN) * 255 / IN / 2 + test_rng_below(&r, 128));
    return px;
}

/* A fresh default VAE (784-400-20, seed 7). */
static void make_model(elbo_vae *m)
{
    elbo_vae_config c = elbo_vae_config_default(IN);
    char err[256];
    if (elbo_vae_init(m, &c, test_kernels(), err, sizeof err))
        test_failf("init: %s\n", err);
    elbo_params_init(m->params, &m->layout, 7);
    elbo_vae_pack_weights(m);
}

/* Trains a fresh VAE for STEPS steps of BATCH (an epoch of N_TRAIN: the third step is the partial batch of 8 rows,
 * one chunk) with `ranks` simulated ranks (0: the one-GEMM step) on `threads` threads; copies the parameters and
 * Adam's moments into out (3 total floats) and returns the last loss means. */
static elbo_loss_means train(size_t ranks, size_t threads, float *out)
{
    elbo_vae m;
    make_model(&m);
    uint8_t *px = make_pixels();
    elbo_images_view data = {px, N_TRAIN, IN, NULL};
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
    elbo_trainer tr;
    char err[256];
    elbo_model mm = elbo_vae_model(&m);
    if (elbo_trainer_init(&tr, &mm, &oc, BATCH, 5, N_TRAIN, threads, NULL, err, sizeof err))
        test_failf("trainer: %s\n", err);
    elbo_chunked_config cc = {CHUNK, ranks, 0, NULL};
    if (ranks && elbo_trainer_use_chunks(&tr, &cc, err, sizeof err))
        test_failf("chunks: %s\n", err);
    elbo_loss_means means = {0};
    while (tr.step < STEPS) {
        int rc = elbo_trainer_epoch(&tr, &data, STEPS, NULL, NULL, &means, err, sizeof err);
        if (rc < 0)
            test_failf("%zu ranks, %zu threads: %s\n", ranks, threads, err);
    }
    size_t n = m.layout.total;
    memcpy(out, m.params, n * sizeof *out);
    memcpy(out + n, tr.opt.m, n * sizeof *out);
    memcpy(out + 2 * n, tr.opt.v, n * sizeof *out);
    elbo_trainer_free(&tr);
    elbo_vae_free(&m);
    free(px);
    return means;
}

/* 1, 2, 3 and 4 simulated ranks (a batch of 6 chunks: ranges of 6, 3+3, 2+2+2, 2+2+1+1; the partial batch's one
 * chunk leaves all ranks but one without rows) on 1..3 threads: byte-identical parameters, moments and loss means. */
static void test_vae_bits_independent_of_ranks_and_threads(void **state)
{
    (void)state;
    elbo_vae probe;
    make_model(&probe);
    size_t n = 3 * probe.layout.total;
    elbo_vae_free(&probe);
    float *ref = malloc(n * sizeof *ref), *got = malloc(n * sizeof *got);
    elbo_loss_means ref_means = train(1, 1, ref);
    for (size_t ranks = 1; ranks <= 4; ranks++)
        for (size_t threads = 1; threads <= 3; threads++) {
            if (ranks == 1 && threads == 1)
                continue;
            elbo_loss_means means = train(ranks, threads, got);
            size_t diff = 0;
            while (diff < n && memcmp(&got[diff], &ref[diff], sizeof *got) == 0)
                diff++;
            if (diff < n)
                test_failf("%zu ranks, %zu threads: float %zu of params|m|v is %.9g, 1 rank 1 thread has %.9g\n",
                           ranks, threads, diff, got[diff], ref[diff]);
            if (memcmp(&means, &ref_means, sizeof means) != 0)
                test_failf("%zu ranks, %zu threads: loss means %.17g, 1 rank 1 thread %.17g\n", ranks, threads,
                           means.loss, ref_means.loss);
        }
    /* the one-GEMM step sums in another order: close, but (said in the docs) not the same bits */
    float *plain = malloc(n * sizeof *plain);
    train(0, 1, plain);
    double worst = 0;
    size_t differ = 0;
    for (size_t i = 0; i < n / 3; i++) {
        double d = fabs((double)plain[i] - ref[i]);
        differ += plain[i] != ref[i];
        worst = d > worst ? d : worst;
    }
    print_message("    chunked vs one-GEMM step after %d steps: %zu of %zu parameters differ, by at most %.3g\n", STEPS,
                  differ, n / 3, worst);
    if (worst > 1e-4)
        test_failf("the chunked step's parameters are %.3g from the one-GEMM step's\n", worst);
    free(plain);
    free(ref);
    free(got);
}

/* More ranks than a full batch's chunks is refused with a message naming the counts. */
static void test_too_many_ranks_refused(void **state)
{
    (void)state;
    elbo_vae m;
    make_model(&m);
    elbo_optimizer_config oc = elbo_optimizer_config_default(ELBO_OPT_ADAM, 1e-3);
    elbo_trainer tr;
    char err[256] = "";
    elbo_model mm = elbo_vae_model(&m);
    assert_int_equal(elbo_trainer_init(&tr, &mm, &oc, BATCH, 5, N_TRAIN, 1, NULL, err, sizeof err), 0);
    elbo_chunked_config cc = {CHUNK, 7, 0, NULL};
    assert_int_equal(elbo_trainer_use_chunks(&tr, &cc, err, sizeof err), -1);
    print_message("    %s\n", err);
    assert_non_null(strstr(err, "7 ranks"));
    assert_non_null(strstr(err, "6 chunks"));
    elbo_trainer_free(&tr);
    elbo_vae_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pieces_tile_the_ranges),
        cmocka_unit_test(test_root_independent_of_ranks),
        cmocka_unit_test(test_bytes_against_ring),
        cmocka_unit_test(test_vae_bits_independent_of_ranks_and_threads),
        cmocka_unit_test(test_too_many_ranks_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
