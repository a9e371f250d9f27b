/* The inference pieces behind the trained-model commands: exact AUROC with ties against brute force, the
 * threshold at a false-positive rate, class sets and class filtering, decoding independent of the batch, and
 * the importance-weighted bound (the same bits for any thread count, above the ELBO and growing with K). */
#include "test_util.h"

#include <string.h>

#include "classes.h"
#include "config.h"
#include "infer.h"
#include "kernels.h"
#include "params.h"
#include "roc.h"
#include "synthetic.h"
#include "team.h"
#include "vae.h"

/* AUROC by counting every (anomalous, normal) pair: 1 when the anomalous score is higher, 1/2 on a tie. */
static double auroc_pairs(const double *s, const uint8_t *anom, size_t n)
{
    double wins = 0, pairs = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (anom[i] && !anom[j]) {
                wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
                pairs += 1;
            }
    return wins / pairs;
}

/* A hand example with a tie, random scores with many ties against the pair count, and the empty-group
 * cases. Catches: ties counted as wins or losses, ranks off by one, positives and negatives swapped. */
static void test_auroc_exact(void **state)
{
    (void)state;
    const double s[] = {1, 2, 2, 3};
    const uint8_t a[] = {0, 1, 0, 1};
    assert_true(fabs(elbo_auroc(s, a, 4) - 0.875) < 1e-15);
    test_rng r = {7};
    enum { N = 600 };
    double sc[N];
    uint8_t an[N];
    for (size_t i = 0; i < N; i++) {
        an[i] = test_rng_below(&r, 4) == 0;
        sc[i] = (double)test_rng_below(&r, 20) + (an[i] ? 3.0 : 0.0);
    }
    double want = auroc_pairs(sc, an, N), got = elbo_auroc(sc, an, N);
    print_message("    AUROC %.12f, pairs %.12f\n", got, want);
    assert_true(fabs(got - want) < 1e-12);
    assert_true(want > 0.5 && want < 1.0);
    const uint8_t none[] = {0, 0, 0, 0};
    assert_true(isnan(elbo_auroc(s, none, 4)));
}

/* The threshold at a false-positive rate flags at most that fraction of normal scores, and no lower
 * threshold among the normal scores would. Catches: rates computed over the wrong group, >= instead of >,
 * a threshold one rank too high. */
static void test_roc_at_fpr(void **state)
{
    (void)state;
    test_rng r = {11};
    enum { N = 1000 };
    double sc[N];
    uint8_t an[N];
    size_t n_neg = 0;
    for (size_t i = 0; i < N; i++) {
        an[i] = test_rng_below(&r, 5) == 0;
        sc[i] = (double)test_rng_below(&r, 100) + (an[i] ? 40.0 : 0.0);
        n_neg += !an[i];
    }
    const double rates[] = {0.0, 0.01, 0.05, 0.2, 1.0};
    for (size_t k = 0; k < sizeof rates / sizeof rates[0]; k++) {
        elbo_roc_point p;
        assert_int_equal(elbo_roc_at_fpr(sc, an, N, rates[k], &p), 0);
        assert_true(p.fpr <= rates[k] + 1e-12);
        /* the next lower normal score as threshold would flag more than allowed */
        double next = -INFINITY;
        for (size_t i = 0; i < N; i++)
            if (!an[i] && sc[i] < p.threshold && sc[i] > next)
                next = sc[i];
        size_t fp = 0, tp = 0;
        for (size_t i = 0; i < N; i++)
            if (sc[i] > next)
                an[i] ? tp++ : fp++;
        if (isfinite(next))
            assert_true((double)fp / (double)n_neg > rates[k]);
        print_message("    max FPR %.2f: threshold %g, FPR %.4f, TPR %.4f\n", rates[k], p.threshold, p.fpr, p.tpr);
    }
    elbo_roc_point p;
    assert_int_equal(elbo_roc_at_fpr(sc, an, N, 1.0, &p), 0);
    assert_true(p.tpr == 1.0 && p.fpr == 1.0);
}

/* Class lists: parsing, canonical formatting, errors naming the item, and filtering a split in place.
 * Catches: atoi-style parsing, classes past the data's accepted, repeats accepted, order lost in filtering. */
static void test_class_sets(void **state)
{
    (void)state;
    elbo_class_set s;
    char err[256], out[64];
    assert_int_equal(elbo_class_set_parse(&s, "7,0,3", 10, err, sizeof err), 0);
    assert_int_equal(s.count, 3);
    elbo_class_set_format(&s, out, sizeof out);
    assert_string_equal(out, "0,3,7");
    const char *bad[] = {"", "1,", ",1", "1,,2", "x", "1x", "10", "3,3", "-1", " 1", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(elbo_class_set_parse(&s, bad[i], 10, err, sizeof err), -1);
        print_message("    '%s': %s\n", bad[i], err);
        assert_true(err[0] != '\0' && !strchr(err, '\n'));
    }
    elbo_split sp;
    assert_int_equal(elbo_synthetic_split(&sp, 200, ELBO_SYNTHETIC_TEST_SEED), 0);
    elbo_split full;
    assert_int_equal(elbo_synthetic_split(&full, 200, ELBO_SYNTHETIC_TEST_SEED), 0);
    assert_int_equal(elbo_class_set_parse(&s, "2,9", 10, err, sizeof err), 0);
    size_t kept = elbo_split_keep_classes(&sp, &s), j = 0;
    /* a synthetic split's labels are i mod 10, shuffled: 200 / 10 = 20 images of each of the 2 classes kept */
    assert_int_equal(kept, 2 * 200 / ELBO_SYNTHETIC_CLASSES);
    for (size_t i = 0; i < full.n; i++)
        if (full.labels[i] == 2 || full.labels[i] == 9) {
            assert_int_equal(sp.labels[j], full.labels[i]);
            assert_memory_equal(sp.pixels + j * sp.dim, full.pixels + i * full.dim, full.dim);
            j++;
        }
    assert_int_equal(j, kept);
    elbo_split_free(&sp);
    elbo_split_free(&full);
}

/* A randomly initialized default-shaped model (smaller hidden layer) and the synthetic test images. */
typedef struct {
    elbo_vae m;
    elbo_vae_activations a;
    elbo_split test;
} fixture;

/* Builds the fixture with activations of max_batch rows. */
static void fixture_open(fixture *f, size_t max_batch)
{
    char err[256];
    elbo_vae_config c = elbo_vae_config_default(784);
    c.enc_hidden[0] = c.dec_hidden[0] = 64;
    c.latent = 4;
    const elbo_kernels *k = elbo_kernels_select();
    assert_non_null(k);
    assert_int_equal(elbo_vae_init(&f->m, &c, k, err, sizeof err), 0);
    elbo_params_init(f->m.params, &f->m.layout, 5);
    elbo_vae_pack_weights(&f->m);
    assert_int_equal(elbo_vae_activations_init(&f->a, &f->m, max_batch), 0);
    assert_int_equal(elbo_synthetic_split(&f->test, 300, ELBO_SYNTHETIC_TEST_SEED), 0);
}

/* Frees the fixture. */
static void fixture_close(fixture *f)
{
    elbo_vae_activations_free(&f->a);
    elbo_vae_free(&f->m);
    elbo_split_free(&f->test);
}

/* Decoding n points at once, in chunks of another size, and one at a time gives the same bits.
 * Catches: decodings that depend on their batch (which would break the interpolation endpoints). */
static void test_decode_batch_invariant(void **state)
{
    (void)state;
    fixture f, g;
    fixture_open(&f, 64);
    fixture_open(&g, 7);
    enum { N = 50, Z = 4, D = 784 };
    float *mulv = malloc(N * 2 * Z * sizeof *mulv), *z = malloc(N * Z * sizeof *z);
    float *p1 = malloc(N * D * sizeof *p1), *p2 = malloc(N * D * sizeof *p2), *p3 = malloc(D * sizeof *p3);
    elbo_infer_encode(&f.m, &f.a, f.test.pixels, N, mulv);
    for (size_t i = 0; i < N; i++)
        memcpy(z + i * Z, mulv + i * 2 * Z, Z * sizeof *z);
    elbo_infer_decode(&f.m, &f.a, z, N, p1);
    elbo_infer_decode(&g.m, &g.a, z, N, p2);
    assert_memory_equal(p1, p2, N * D * sizeof *p1);
    for (size_t i = 0; i < N; i += 7) {
        elbo_infer_decode(&f.m, &f.a, z + i * Z, 1, p3);
        assert_memory_equal(p1 + i * D, p3, D * sizeof *p3);
    }
    for (size_t i = 0; i < N * D; i++)
        assert_true(p1[i] >= 0.0f && p1[i] <= 1.0f);
    free(mulv);
    free(z);
    free(p1);
    free(p2);
    free(p3);
    fixture_close(&f);
    fixture_close(&g);
}

/* Mean of n doubles. */
static double mean(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s / (double)n;
}

/* The IW bound of an untrained model (where q is far from the posterior, so the gap is large): the same
 * bits on 1 and 2 threads, the same ELBO for every K, the mean non-decreasing in K and above the ELBO, and
 * K = 0 refused. Catches: thread-dependent sums, a bound that does not use all K samples, log K missing. */
static void test_iw_bound(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, 128);
    elbo_team t1, t2;
    assert_int_equal(elbo_team_init(&t1, 1, f.m.kern, NULL), 0);
    assert_int_equal(elbo_team_init(&t2, 2, f.m.kern, NULL), 0);
    size_t n = f.test.n;
    double *iw = malloc(n * sizeof *iw), *iw2 = malloc(n * sizeof *iw2), *elbo = malloc(n * sizeof *elbo),
           *elbo2 = malloc(n * sizeof *elbo2);
    const size_t ks[] = {1, 4, 32};
    double prev = -INFINITY, elbo_mean = 0;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(elbo_infer_iw(&f.m, &f.a, &t1, f.test.pixels, n, ks[i], 3, iw, elbo), 0);
        assert_int_equal(elbo_infer_iw(&f.m, &f.a, &t2, f.test.pixels, n, ks[i], 3, iw2, elbo2), 0);
        assert_memory_equal(iw, iw2, n * sizeof *iw);
        assert_memory_equal(elbo, elbo2, n * sizeof *elbo);
        double m = mean(iw, n);
        if (i == 0)
            elbo_mean = mean(elbo, n);
        else
            assert_true(fabs(mean(elbo, n) - elbo_mean) < 1e-12);
        print_message("    K = %zu: mean IW %.4f, ELBO %.4f\n", ks[i], m, elbo_mean);
        assert_true(m >= prev);
        prev = m;
    }
    assert_true(prev > elbo_mean);
    assert_int_equal(elbo_infer_iw(&f.m, &f.a, &t1, f.test.pixels, n, 0, 3, iw, elbo), -1);
    free(iw);
    free(iw2);
    free(elbo);
    free(elbo2);
    elbo_team_free(&t1);
    elbo_team_free(&t2);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auroc_exact),         cmocka_unit_test(test_roc_at_fpr),
        cmocka_unit_test(test_class_sets),          cmocka_unit_test(test_decode_batch_invariant),
        cmocka_unit_test(test_iw_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
