/* Feature-set statistics (src/model/scoring.c) against SciPy and against cases with a closed form.
 *
 * SciPy (tests/parity/fd_scipy.py): on random feature sets of d = 256 (a linear mixing with 1000 vs 1500 rows,
 * and post-ReLU features with 300 vs 2000 rows) elbo's FD, from a symmetric eigendecomposition, equals
 * |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrtm(S1 S2) computed by scipy.linalg.sqrtm within 1e-9 of
 * tr S1 + tr S2 (the scale of the cancelling terms; measured 3e-14), and the traces agree within 1e-12.
 * Exact cases: identical sets give 0 within 1e-9 of the traces (1e-7 when n < d makes them singular); a shift of every feature by delta gives
 * |delta|^2; diagonal covariances give sum (sqrt a - sqrt b)^2 (with a zero variance among them). Coverage:
 * uniform predictions give log2 C bits and share 1/C, one class 0 bits. */
#include "test_scratch.h"

#include <time.h>

#include "scoring.h"

#define D 256
#define REL_TOL 1e-9

/* n x D features: x = z A + b (z uniform in [-1, 1), A (D, D) uniform in [-0.2, 0.2), b uniform in [-1, 1)),
 * passed through max(0, .) when relu is set; the mixing makes every pair of features correlated. */
static float *make_features(uint64_t seed, size_t n, int relu)
{
    test_rng r = {seed};
    float *a = malloc(D * D * sizeof *a), *b = malloc(D * sizeof *b), *z = malloc(D * sizeof *z);
    float *x = malloc(n * D * sizeof *x);
    assert_true(a && b && z && x);
    test_fill(&r, a, D * D, -0.2f, 0.2f);
    test_fill(&r, b, D, -1.0f, 1.0f);
    for (size_t i = 0; i < n; i++) {
        test_fill(&r, z, D, -1.0f, 1.0f);
        for (size_t j = 0; j < D; j++) {
            float s = b[j];
            for (size_t k = 0; k < D; k++)
                s += z[k] * a[k * D + j];
            x[i * D + j] = relu && s < 0 ? 0.0f : s;
        }
    }
    free(a);
    free(b);
    free(z);
    return x;
}

/* Writes n floats to path (little-endian, as the host). */
static void write_floats(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(x, sizeof *x, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Trace of the (d, d) matrix c. */
static double trace(const double *c, size_t d)
{
    double t = 0;
    for (size_t i = 0; i < d; i++)
        t += c[i * d + i];
    return t;
}

/* Fails unless |got - want| <= tol * scale. */
static void expect_rel(const char *what, double got, double want, double scale, double tol)
{
    double err = fabs(got - want) / scale;
    print_message("    %s: elbo %.12g, expected %.12g (error %.2e of %.4g)\n", what, got, want, err, scale);
    if (!(err <= tol))
        test_failf("%s: %.15g differs from %.15g by %.3g of %.4g (tolerance %g)\n", what, got, want, err, scale,
                   tol);
}

/* One SciPy comparison: features of n1 and n2 rows (seeds s1, s2). */
static void check_against_scipy(const char *dir, size_t n1, size_t n2, int relu, uint64_t s1, uint64_t s2)
{
    float *x1 = make_features(s1, n1, relu), *x2 = make_features(s2, n2, relu);
    char p1[MAX_PATH], p2[MAX_PATH], cmd[4 * MAX_PATH], err[256];
    write_floats(join(p1, dir, "a.f32"), x1, n1 * D);
    write_floats(join(p2, dir, "b.f32"), x2, n2 * D);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/parity/fd_scipy.py %s %zu %s %zu %d", p1, n1, p2, n2, D);
    FILE *py = popen(cmd, "r");
    assert_non_null(py);
    double fd_py, tr1_py, tr2_py, trs_py;
    int got = fscanf(py, "%lf %lf %lf %lf", &fd_py, &tr1_py, &tr2_py, &trs_py);
    assert_int_equal(pclose(py), 0);
    assert_int_equal(got, 4);

    elbo_feature_stats a, b;
    double fd = NAN, fd2 = NAN;
    assert_int_equal(elbo_feature_stats_compute(x1, n1, D, &a, err, sizeof err), 0);
    assert_int_equal(elbo_feature_stats_compute(x2, n2, D, &b, err, sizeof err), 0);
    if (elbo_frechet_distance(&a, &b, &fd, err, sizeof err) != 0)
        test_failf("%s\n", err);
    assert_int_equal(elbo_score_features(x1, n1, x2, n2, D, &fd2, err, sizeof err), 0);
    assert_true(fd == fd2);
    print_message("    %zu vs %zu rows%s:\n", n1, n2, relu ? " (post-ReLU)" : "");
    double scale = tr1_py + tr2_py;
    expect_rel("tr S1", trace(a.cov, D), tr1_py, tr1_py, 1e-12);
    expect_rel("tr S2", trace(b.cov, D), tr2_py, tr2_py, 1e-12);
    expect_rel("FD", fd, fd_py, scale, REL_TOL);
    assert_true(fd > 1e-3 * scale); /* the sets differ: not a vacuous comparison */
    elbo_feature_stats_free(&a);
    elbo_feature_stats_free(&b);
    free(x1);
    free(x2);
}

/* FD against SciPy's sqrtm on two sizes. Catches: a covariance divided by n instead of n - 1, the square root
 * of S2 S1 or S1 S2 S1 (non-symmetric or wrong), a missing factor 2 on the cross term, eigenvectors read as
 * rows instead of columns, a mean term left out. */
static void test_fd_matches_scipy(void **state)
{
    (void)state;
    char dir[MAX_PATH];
    scratch_mkdtemp(dir, "elbo-fd");
    check_against_scipy(dir, 1000, 1500, 0, 11, 12);
    check_against_scipy(dir, 300, 2000, 1, 21, 22);
    remove_tree(dir);
}

/* Identical sets: 0 within 1e-9 of the traces, also for 100 rows of 256 (singular covariances); every
 * feature shifted by delta: |delta|^2 (features on a grid of 1/1024 and shifts of quarters, so the shifted
 * floats are exact). Catches: a trace term counted with the wrong sign or weight (identical sets then give
 * +-tr), a mean difference not squared or not summed, eigenvalues below 0 by rounding not clamped (NaN). */
static void test_fd_identical_and_shifted(void **state)
{
    (void)state;
    enum { N = 2000 };
    float *x = make_features(31, N, 1), *y = malloc(N * D * sizeof *y);
    assert_non_null(y);
    char err[256];
    for (size_t i = 0; i < (size_t)N * D; i++)
        x[i] = roundf(x[i] * 1024.0f) / 1024.0f;
    elbo_feature_stats s;
    assert_int_equal(elbo_feature_stats_compute(x, N, D, &s, err, sizeof err), 0);
    double tr = trace(s.cov, D), fd = NAN;
    elbo_feature_stats_free(&s);
    assert_int_equal(elbo_score_features(x, N, x, N, D, &fd, err, sizeof err), 0);
    expect_rel("identical sets", fd, 0.0, 2 * tr, REL_TOL);
    double delta2 = 0;
    for (size_t j = 0; j < D; j++) {
        float delta = 0.25f * (float)(j % 7) - 0.75f;
        delta2 += (double)delta * delta;
        for (size_t i = 0; i < N; i++)
            y[i * D + j] = x[i * D + j] + delta;
    }
    assert_int_equal(elbo_score_features(x, N, y, N, D, &fd, err, sizeof err), 0);
    expect_rel("shifted means", fd, delta2, delta2 + 2 * tr, REL_TOL);
    /* 100 rows of 256: covariances of rank 99, whose zero eigenvalues come out of the solver as +-1e-15 and
     * whose square roots (~3e-8) limit the accuracy to about sqrt(DBL_EPSILON) of the traces: 1.9e-8 here,
     * as scipy.linalg.sqrtm's FD (1.7e-8 on such data), so the bound is 1e-7 */
    assert_int_equal(elbo_feature_stats_compute(x, 100, D, &s, err, sizeof err), 0);
    tr = trace(s.cov, D);
    elbo_feature_stats_free(&s);
    assert_int_equal(elbo_score_features(x, 100, x, 100, D, &fd, err, sizeof err), 0);
    expect_rel("identical sets of rank 99", fd, 0.0, 2 * tr, 1e-7);
    free(x);
    free(y);
}

/* Diagonal covariances a, b (one variance 0 on each side, at different features) and means m1, m2:
 * FD = |m1 - m2|^2 + sum (sqrt a - sqrt b)^2 within 1e-12. Catches: negative rounding eigenvalues not
 * clamped (NaN from sqrt), the square root of a taken twice or not at all. */
static void test_fd_diagonal_closed_form(void **state)
{
    (void)state;
    test_rng r = {41};
    double m1[D], m2[D], want = 0;
    elbo_feature_stats a = {.n = 10, .d = D, .mean = m1, .cov = calloc(D * D, sizeof(double))};
    elbo_feature_stats b = {.n = 10, .d = D, .mean = m2, .cov = calloc(D * D, sizeof(double))};
    assert_true(a.cov && b.cov);
    for (size_t i = 0; i < D; i++) {
        double va = i == 3 ? 0 : test_rng_uniform(&r, 0.1f, 10.0f), vb = i == 200 ? 0 : test_rng_uniform(&r, 0.1f, 10.0f);
        a.cov[i * D + i] = va;
        b.cov[i * D + i] = vb;
        m1[i] = test_rng_uniform(&r, -1, 1);
        m2[i] = test_rng_uniform(&r, -1, 1);
        want += (m1[i] - m2[i]) * (m1[i] - m2[i]) + (sqrt(va) - sqrt(vb)) * (sqrt(va) - sqrt(vb));
    }
    double fd = NAN;
    char err[256];
    assert_int_equal(elbo_frechet_distance(&a, &b, &fd, err, sizeof err), 0);
    expect_rel("diagonal covariances", fd, want, want, 1e-12);
    free(a.cov);
    free(b.cov);
}

/* Statistics on 10,000 x 256 features (the scoring size): the time of elbo_score_features, and the refusals:
 * one row, a non-finite feature (named by row and column), sets of different dimensions. */
static void test_stats_errors_and_speed(void **state)
{
    (void)state;
    enum { N = 10000 };
    float *x = make_features(51, N, 1);
    char err[256];
    double fd = NAN;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(elbo_score_features(x, N, x + D, N - 1, D, &fd, err, sizeof err), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    print_message("    elbo_score_features, 10000 + 9999 rows of 256: %.3f s (FD %.3g)\n",
                  (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec), fd);
    elbo_feature_stats s;
    assert_int_equal(elbo_feature_stats_compute(x, 1, D, &s, err, sizeof err), -1);
    print_message("    %s\n", err);
    assert_null(s.mean);
    x[7 * D + 5] = NAN;
    assert_int_equal(elbo_score_features(x + 8 * D, 100, x, 100, D, &fd, err, sizeof err), -1);
    print_message("    %s\n", err);
    assert_non_null(strstr(err, "set 2: feature 5 of row 7 is nan"));
    elbo_feature_stats a, b;
    assert_int_equal(elbo_feature_stats_compute(x + 8 * D, 50, D, &a, err, sizeof err), 0);
    assert_int_equal(elbo_feature_stats_compute(x + 8 * D, 100, D / 2, &b, err, sizeof err), 0);
    assert_int_equal(elbo_frechet_distance(&a, &b, &fd, err, sizeof err), -1);
    print_message("    %s\n", err);
    assert_non_null(strstr(err, "256 and 128 dimensions"));
    elbo_feature_stats_free(&a);
    elbo_feature_stats_free(&b);
    free(x);
}

/* Coverage: uniform predictions over C = 10 give log2 10 bits and share 0.1; one class gives 0 bits and
 * share 0 (C = 10) or 1 (C = 1); half class 0, half class 1 of 4 gives 1 bit with class 2 the smallest
 * (never predicted); a prediction past the last class is refused. Catches: natural logarithms, counts not
 * reset, the smallest share taken over the predicted classes only. */
static void test_class_coverage(void **state)
{
    (void)state;
    enum { N = 1000 };
    uint8_t pred[N];
    char err[256];
    elbo_class_coverage c;
    for (size_t i = 0; i < N; i++)
        pred[i] = (uint8_t)(i % 10);
    assert_int_equal(elbo_class_coverage_compute(pred, N, 10, &c, err, sizeof err), 0);
    expect_rel("uniform entropy", c.entropy_bits, log2(10.0), 1, 1e-12);
    expect_rel("uniform min share", c.min_share, 0.1, 1, 1e-15);
    assert_int_equal(c.counts[9], 100);
    memset(pred, 3, sizeof pred);
    assert_int_equal(elbo_class_coverage_compute(pred, N, 10, &c, err, sizeof err), 0);
    assert_true(c.entropy_bits == 0 && !signbit(c.entropy_bits));
    assert_true(c.min_share == 0 && c.min_class == 0 && c.counts[3] == N);
    memset(pred, 0, sizeof pred);
    assert_int_equal(elbo_class_coverage_compute(pred, N, 1, &c, err, sizeof err), 0);
    assert_true(c.entropy_bits == 0 && c.min_share == 1);
    for (size_t i = 0; i < N; i++)
        pred[i] = (uint8_t)(i & 1);
    assert_int_equal(elbo_class_coverage_compute(pred, N, 4, &c, err, sizeof err), 0);
    expect_rel("two of four classes", c.entropy_bits, 1.0, 1, 1e-15);
    assert_true(c.min_share == 0 && c.min_class == 2);
    pred[17] = 4;
    assert_int_equal(elbo_class_coverage_compute(pred, N, 4, &c, err, sizeof err), -1);
    print_message("    %s\n", err);
    assert_non_null(strstr(err, "prediction 17 is class 4"));
    assert_int_equal(elbo_class_coverage_compute(pred, N, 0, &c, err, sizeof err), -1);
    assert_int_equal(elbo_class_coverage_compute(pred, 0, 4, &c, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_matches_scipy),
        cmocka_unit_test(test_fd_identical_and_shifted),
        cmocka_unit_test(test_fd_diagonal_closed_form),
        cmocka_unit_test(test_stats_errors_and_speed),
        cmocka_unit_test(test_class_coverage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
