/* The counter-based random numbers: Philox4x32-10 known answers, the statistics of the normals and uniforms,
 * determinism and independence from how a row is split, and the epoch permutations.
 *
 * Every draw is a pure function of its arguments, so every statistic below is computed on fixed seeds and
 * the outcome is deterministic; the bounds (4 standard errors, chi-square at p ~ 1e-6) are loose enough for
 * a correct generator and tight enough to reject the wrong implementations named beside each check. */
#include "test_util.h"

#include "normals.h"
#include "rng.h"

#include <Random123/philox.h>
#include <string.h>

#define N_NORMALS 1000000

/* ---- Philox4x32-10 ---- */

/* elbo_rng_block with the counter {c0, c1, c2, c3} and the key {k0, k1}: the stream is counter word 3. */
static void block_raw(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1, uint32_t out[4])
{
    elbo_rng_block(((uint64_t)k1 << 32) | k0, (elbo_rng_stream)c3, c0, c1, c2, out);
}

/* Fails unless got equals the four words want. */
static void expect_words(const uint32_t got[4], uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3)
{
    const uint32_t want[4] = {w0, w1, w2, w3};
    for (int i = 0; i < 4; i++)
        if (got[i] != want[i])
            test_failf("word %d: got %08x, want %08x\n", i, got[i], want[i]);
}

/* Random123's known-answer vectors. Catches: fewer or more rounds, a wrong multiplier or Weyl constant,
 * the key words or counter words in the wrong order, the stream placed in another counter word. */
static void test_philox_known_answers(void **state)
{
    (void)state;
    uint32_t out[4];
    block_raw(0, 0, 0, 0, 0, 0, out);
    expect_words(out, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8);
    block_raw(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, out);
    expect_words(out, 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd);
    /* every word distinct, so any permutation of counter or key words shows */
    block_raw(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, out);
    expect_words(out, 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1);

    /* the header's own philox4x32 agrees, for a named stream: the stream is counter word 3, the seed's
     * low half key word 0 */
    philox4x32_ctr_t ctr = {{7, 11, 13, (uint32_t)ELBO_STREAM_EPS}};
    philox4x32_key_t key = {{0x89abcdefu, 0x01234567u}};
    philox4x32_ctr_t r = philox4x32(ctr, key);
    elbo_rng_block(0x0123456789abcdefULL, ELBO_STREAM_EPS, 7, 11, 13, out);
    expect_words(out, r.v[0], r.v[1], r.v[2], r.v[3]);
}

/* ---- normals ---- */

/* Moments of x[0..n): mean, variance, skewness, excess kurtosis, fraction with |x| > 3, lag-1 correlation. */
typedef struct {
    double mean, var, skew, kurt, tail3, lag1;
} moments;

/* Computes the moments of n floats in double (two passes). */
static moments moments_of(const float *x, size_t n)
{
    moments m = {0, 0, 0, 0, 0, 0};
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    m.mean = s / (double)n;
    double m2 = 0, m3 = 0, m4 = 0, c1 = 0;
    size_t tail = 0;
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - m.mean, d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
        if (fabs((double)x[i]) > 3.0)
            tail++;
        if (i + 1 < n)
            c1 += d * (x[i + 1] - m.mean);
    }
    m2 /= (double)n;
    m3 /= (double)n;
    m4 /= (double)n;
    m.var = m2;
    m.skew = m3 / pow(m2, 1.5);
    m.kurt = m4 / (m2 * m2) - 3.0;
    m.tail3 = (double)tail / (double)n;
    m.lag1 = c1 / (double)(n - 1) / m2;
    return m;
}

/* Fails when |got - want| exceeds k standard errors se. */
static void expect_within(const char *what, double got, double want, double se, double k)
{
    print_message("    %-22s %+.6f (expected %+.6f, %.2f standard errors)\n", what, got, want, fabs(got - want) / se);
    if (!(fabs(got - want) <= k * se))
        test_failf("%s: %.6f is more than %.0f standard errors (%.6f) from %.6f\n", what, got, k, se, want);
}

/* 1e6 normals against N(0, 1). Catches: a biased bit-to-uniform map (mean), a missing factor in the radius
 * (variance), sum-of-uniforms or other approximations (kurtosis and the 3-sigma tail: Irwin-Hall(12) has
 * excess kurtosis -0.1 and 0.22 % beyond 3 sigma instead of 0.27 %), using one uniform for both Box-Muller
 * inputs or reusing a block for two outputs (lag-1 correlation), log(0) or log of a negative (finiteness). */
static void test_normals_distribution(void **state)
{
    (void)state;
    float *x = malloc(N_NORMALS * sizeof *x);
    assert_non_null(x);
    elbo_rng_normals(x, N_NORMALS, 12345, ELBO_STREAM_EPS, 3, 0);
    for (size_t i = 0; i < N_NORMALS; i++) {
        if (!isfinite(x[i]))
            test_failf("normal %zu is %g\n", i, (double)x[i]);
        /* a (0, 1] uniform with 32 bits of resolution cannot give a radius beyond sqrt(2 ln 2^32) = 6.66 */
        if (fabsf(x[i]) > 6.7f)
            test_failf("normal %zu is %g, beyond what 32-bit uniforms can give\n", i, (double)x[i]);
    }
    moments m = moments_of(x, N_NORMALS);
    double n = N_NORMALS, p3 = 0.0026997960632601866; /* P(|Z| > 3) */
    expect_within("mean", m.mean, 0.0, 1.0 / sqrt(n), 4);
    expect_within("variance", m.var, 1.0, sqrt(2.0 / n), 4);
    expect_within("skewness", m.skew, 0.0, sqrt(6.0 / n), 4);
    expect_within("excess kurtosis", m.kurt, 0.0, sqrt(24.0 / n), 4);
    expect_within("fraction beyond 3 sd", m.tail3, p3, sqrt(p3 * (1 - p3) / n), 4);
    expect_within("lag-1 correlation", m.lag1, 0.0, 1.0 / sqrt(n), 4);
    /* each output position within a block is itself N(0, 1) (cos and sin halves, both pairs) */
    float *col = malloc(N_NORMALS / 4 * sizeof *col);
    assert_non_null(col);
    for (size_t k = 0; k < 4; k++) {
        char what[32];
        for (size_t i = 0; i < N_NORMALS / 4; i++)
            col[i] = x[4 * i + k];
        moments c = moments_of(col, N_NORMALS / 4);
        snprintf(what, sizeof what, "word %zu mean", k);
        expect_within(what, c.mean, 0.0, 1.0 / sqrt(n / 4), 4);
        snprintf(what, sizeof what, "word %zu variance", k);
        expect_within(what, c.var, 1.0, sqrt(2.0 / (n / 4)), 4);
    }
    free(col);
    free(x);
}

/* The documented mapping: out[4k..4k+3] is Box-Muller of block {k, a, b, stream}, words 0-1 and 2-3.
 * Catches: a and b swapped, the counter advanced per output instead of per block, the stream or the seed
 * ignored, the cos and sin halves exchanged. */
static void test_normals_block_mapping(void **state)
{
    (void)state;
    const uint64_t seed = 0xfeedface12345678ULL;
    const uint32_t a = 5, b = 9;
    float x[12];
    elbo_rng_normals(x, 12, seed, ELBO_STREAM_EVAL, a, b);
    for (uint32_t k = 0; k < 3; k++) {
        uint32_t w[4];
        elbo_rng_block(seed, ELBO_STREAM_EVAL, k, a, b, w);
        for (int p = 0; p < 2; p++) {
            double r = sqrt(-2.0 * log(((double)w[2 * p] + 1.0) / 4294967296.0));
            double t = 2.0 * M_PI * ((double)w[2 * p + 1] + 1.0) / 4294967296.0;
            double want[2] = {r * cos(t), r * sin(t)};
            for (int h = 0; h < 2; h++) {
                double got = x[4 * k + 2 * p + h];
                if (!(fabs(got - want[h]) <= 1e-5 * (1.0 + fabs(want[h]))))
                    test_failf("normal %u: %.7f, Box-Muller of block %u gives %.7f\n", 4 * k + 2 * p + h, got, k,
                               want[h]);
            }
        }
    }
}

/* Same arguments, same values; any prefix of a row is the row's prefix (a row split into pieces of any
 * length, including lengths that are not multiples of 4, gives the same numbers); different seeds, streams,
 * rows or columns give different values. Catches: hidden state between calls, a counter that depends on n,
 * arguments that are ignored or that collide when exchanged. */
static void test_normals_deterministic_and_split_free(void **state)
{
    (void)state;
    enum { N = 1003 };
    float full[N], again[N], part[N];
    elbo_rng_normals(full, N, 77, ELBO_STREAM_EPS, 4, 2);
    elbo_rng_normals(again, N, 77, ELBO_STREAM_EPS, 4, 2);
    assert_memory_equal(full, again, sizeof full);
    const size_t prefixes[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 63, 64, 65, 500, 1002};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = prefixes[i];
        for (size_t j = 0; j < N; j++)
            part[j] = NAN;
        elbo_rng_normals(part, n, 77, ELBO_STREAM_EPS, 4, 2);
        if (n)
            assert_memory_equal(part, full, n * sizeof(float));
        for (size_t j = n; j < N; j++)
            if (!isnan(part[j]))
                test_failf("prefix %zu: wrote out[%zu]\n", n, j);
    }
    /* every argument matters, and exchanging a and b is a different row */
    float other[N];
    struct { uint64_t seed; elbo_rng_stream s; uint32_t a, b; const char *what; } var[] = {
        {78, ELBO_STREAM_EPS, 4, 2, "seed"},
        {77 + ((uint64_t)1 << 32), ELBO_STREAM_EPS, 4, 2, "seed high half"},
        {77, ELBO_STREAM_EVAL, 4, 2, "stream"},
        {77, ELBO_STREAM_EPS, 5, 2, "a"},
        {77, ELBO_STREAM_EPS, 4, 3, "b"},
        {77, ELBO_STREAM_EPS, 2, 4, "a and b exchanged"},
    };
    for (size_t v = 0; v < sizeof var / sizeof var[0]; v++) {
        elbo_rng_normals(other, N, var[v].seed, var[v].s, var[v].a, var[v].b);
        size_t same = 0;
        for (size_t j = 0; j < N; j++)
            same += other[j] == full[j];
        if (same > 2)
            test_failf("changing the %s leaves %zu of %d values equal\n", var[v].what, same, N);
    }
}

/* The Box-Muller implementation this CPU runs (AVX2 or NEON with SLEEF, under qemu for arm64) against libm's:
 * within one float ulp on 2^20 random words and on the extreme words (0 and 2^32 - 1: u and v at both ends of
 * (0, 1]), for every length 0..17 (the vector tails), writing nothing past n. Catches: cos and sin halves
 * exchanged, the u and v words exchanged, a lane permutation, a wrong constant, an unsigned conversion off by
 * 2^31, a tail that drops or overruns outputs. */
static void test_box_muller_matches_libm(void **state)
{
    (void)state;
    enum { N = 1 << 20 };
    uint32_t *w = malloc(N * sizeof *w);
    float *got = malloc((N + 1) * sizeof *got), *want = malloc(N * sizeof *want);
    assert_true(w && got && want);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        w[i] = (uint32_t)(x >> 16);
    }
    const uint32_t ends[] = {0, 0xffffffffu, 0xffffffffu, 0, 0, 0, 0xffffffffu, 0xffffffffu};
    memcpy(w, ends, sizeof ends);
    size_t ulps = 0;
    for (size_t n = 0; n <= 17; n++) {
        size_t len = n == 17 ? N : n;
        got[len] = NAN;
        elbo_box_muller(got, w, len);
        elbo_box_muller_libm(want, w, len);
        if (!isnan(got[len]))
            test_failf("length %zu: wrote out[%zu]\n", len, len);
        for (size_t i = 0; i < len; i++) {
            if (got[i] == want[i])
                continue;
            if (!(fabsf(got[i] - want[i]) <= nextafterf(fabsf(want[i]), INFINITY) - fabsf(want[i])))
                test_failf("length %zu: normal %zu is %.9g, libm gives %.9g\n", len, i, (double)got[i],
                           (double)want[i]);
            ulps++;
        }
    }
    print_message("    %zu of %d normals one ulp from libm's, the rest equal\n", ulps, N);
    free(w);
    free(got);
    free(want);
}

/* ---- uniforms ---- */

/* Uniforms stay in [lo, hi), cover it, and are uniform; prefixes agree like the normals. Catches: an
 * inclusive upper end, using fewer than 24 random bits (the extremes never get close to the ends), a wrong
 * scale or offset, a skewed bit map (decile chi-square). */
static void test_uniforms(void **state)
{
    (void)state;
    enum { N = 400000, BINS = 10 };
    float *x = malloc(N * sizeof *x);
    assert_non_null(x);
    const float ranges[][2] = {{0.0f, 1.0f}, {-1.0f, 1.0f}, {-0.0357143f, 0.0357143f}, {1.0f, 3.0f}, {-5.0f, -4.5f}};
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        float lo = ranges[r][0], hi = ranges[r][1];
        elbo_rng_uniforms(x, N, lo, hi, 99 + r, ELBO_STREAM_INIT, (uint32_t)r, 1);
        float mn = INFINITY, mx = -INFINITY;
        size_t hist[BINS] = {0};
        for (size_t i = 0; i < N; i++) {
            if (!(x[i] >= lo && x[i] < hi))
                test_failf("[%g, %g): value %zu is %.9g\n", (double)lo, (double)hi, i, (double)x[i]);
            mn = fminf(mn, x[i]);
            mx = fmaxf(mx, x[i]);
            size_t bin = (size_t)(((double)x[i] - lo) / ((double)hi - lo) * BINS);
            hist[bin < BINS ? bin : BINS - 1]++;
        }
        double span = (double)hi - lo, chi2 = 0, e = (double)N / BINS;
        for (size_t k = 0; k < BINS; k++)
            chi2 += (hist[k] - e) * (hist[k] - e) / e;
        /* P(min > lo + 1e-4 span) = (1 - 1e-4)^N ~ e^-40 */
        if (!(mn - lo < 1e-4 * span && hi - mx < 1e-4 * span))
            test_failf("[%g, %g): extremes %.9g and %.9g do not reach the ends\n", (double)lo, (double)hi, (double)mn,
                       (double)mx);
        if (chi2 > 40.0) /* 9 degrees of freedom: P(chi2 > 40) ~ 7e-6 */
            test_failf("[%g, %g): decile chi-square %.1f\n", (double)lo, (double)hi, chi2);
    }
    float part[7];
    elbo_rng_uniforms(x, 8, -2.0f, 2.0f, 5, ELBO_STREAM_INIT, 0, 0);
    elbo_rng_uniforms(part, 7, -2.0f, 2.0f, 5, ELBO_STREAM_INIT, 0, 0);
    assert_memory_equal(part, x, sizeof part);
    free(x);
}

/* The largest 24-bit draw must still land below hi: with lo = 1, hi = 3 the float sum 1 + 2 (1 - 2^-24)
 * rounds to 3 unless the result is kept inside. Searches for a block whose first word has its top 24 bits
 * set (about 2^24 blocks) and draws the uniform at that position. Catches: the end point hi returned. */
static void test_uniforms_largest_draw_below_hi(void **state)
{
    (void)state;
    const uint64_t seed = 2024;
    uint32_t w[4], row = 0;
    for (;; row++) {
        elbo_rng_block(seed, ELBO_STREAM_INIT, 0, row, 0, w);
        if ((w[0] >> 8) == 0xffffffu)
            break;
        assert_true(row < 0x10000000u);
    }
    print_message("    row %u draws u = 1 - 2^-24\n", row);
    const float ranges[][2] = {{1.0f, 3.0f}, {-1.0f, 1.0f}, {0.0f, 1.0f}, {-0.0357143f, 0.0357143f}, {100.0f, 101.0f}};
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        float lo = ranges[r][0], hi = ranges[r][1], x[4];
        elbo_rng_uniforms(x, 4, lo, hi, seed, ELBO_STREAM_INIT, row, 0);
        if (!(x[0] >= lo && x[0] < hi))
            test_failf("[%g, %g): the largest draw gives %.9g\n", (double)lo, (double)hi, (double)x[0]);
        /* and it is the float just below hi (nothing coarser than 24 bits) */
        if (!(x[0] >= nextafterf(hi, lo) - (hi - lo) * 0x1p-23f))
            test_failf("[%g, %g): the largest draw gives %.9g, far below hi\n", (double)lo, (double)hi, (double)x[0]);
    }
}

/* ---- permutations ---- */

/* Fails unless p[0..n) holds each of 0..n-1 exactly once. */
static void expect_permutation(const uint32_t *p, size_t n)
{
    unsigned char *seen = calloc(n ? n : 1, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= n)
            test_failf("perm[%zu] = %u is out of range 0..%zu\n", i, p[i], n - 1);
        if (seen[p[i]]++)
            test_failf("perm[%zu] = %u appears twice\n", i, p[i]);
    }
    free(seen);
}

/* Number of positions where a and b differ. */
static size_t count_diff(const uint32_t *a, const uint32_t *b, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += a[i] != b[i];
    return d;
}

/* Permutations of every size are permutations, deterministic in (seed, epoch), different across epochs and
 * seeds, and (seed, epoch) do not collide when exchanged or shifted. Catches: swaps that lose or duplicate
 * elements, the epoch or the seed ignored, seed + epoch used as one key, the identity returned. */
static void test_permutation_basic(void **state)
{
    (void)state;
    enum { N = 1000 };
    uint32_t p[N], q[N];
    const size_t sizes[] = {0, 1, 2, 3, 17, 128, N};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        elbo_rng_permutation(p, sizes[s], 42, 3);
        expect_permutation(p, sizes[s]);
    }
    elbo_rng_permutation(p, N, 42, 3);
    elbo_rng_permutation(q, N, 42, 3);
    assert_memory_equal(p, q, sizeof p);
    uint32_t id = 0;
    for (size_t i = 0; i < N; i++)
        id += p[i] == i;
    if (id > 10) /* a random permutation has about one fixed point */
        test_failf("%u fixed points in a permutation of %d\n", id, N);
    const struct { uint64_t seed; uint32_t epoch; const char *what; } var[] = {
        {42, 4, "next epoch"}, {42, 0, "epoch 0"}, {43, 3, "next seed"}, {3, 42, "seed and epoch exchanged"},
        {43, 2, "seed + 1, epoch - 1"}, {42 + ((uint64_t)1 << 32), 3, "seed high half"},
    };
    for (size_t v = 0; v < sizeof var / sizeof var[0]; v++) {
        elbo_rng_permutation(q, N, var[v].seed, var[v].epoch);
        expect_permutation(q, N);
        if (count_diff(p, q, N) < N / 2)
            test_failf("%s: only %zu of %d positions differ\n", var[v].what, count_diff(p, q, N), N);
    }
}

/* Where element 0 lands (n = 5) and which of the 24 orders of n = 4 comes out, over many epochs, by
 * chi-square. Catches: the naive shuffle that swaps with any of 0..n-1 (biased), Sattolo's algorithm (swaps
 * with 0..i-2: only cyclic permutations, element 0 never stays), a modulo or multiply-shift that never
 * reaches the top index, epochs that repeat a few orders. */
static void test_permutation_uniform(void **state)
{
    (void)state;
    enum { EPOCHS = 60000 };
    size_t pos[5] = {0}, orders[24] = {0};
    for (uint32_t e = 0; e < EPOCHS; e++) {
        uint32_t p[5], q[4];
        elbo_rng_permutation(p, 5, 7, e);
        for (size_t i = 0; i < 5; i++)
            if (p[i] == 0)
                pos[i]++;
        elbo_rng_permutation(q, 4, 8, e);
        /* Lehmer code of q: index among the 24 orders */
        size_t code = 0;
        for (size_t i = 0; i < 4; i++) {
            size_t smaller = 0;
            for (size_t j = i + 1; j < 4; j++)
                smaller += q[j] < q[i];
            code = code * (4 - i) + smaller;
        }
        orders[code]++;
    }
    double chi_pos = 0, chi_ord = 0, ep = EPOCHS / 5.0, eo = EPOCHS / 24.0;
    for (size_t i = 0; i < 5; i++)
        chi_pos += (pos[i] - ep) * (pos[i] - ep) / ep;
    for (size_t i = 0; i < 24; i++)
        chi_ord += (orders[i] - eo) * (orders[i] - eo) / eo;
    print_message("    position of element 0 (n = 5): chi-square %.2f, 4 dof\n", chi_pos);
    print_message("    order of 4 elements: chi-square %.2f, 23 dof\n", chi_ord);
    if (chi_pos > 30.0) /* P(chi2_4 > 30) ~ 5e-6 */
        test_failf("position of element 0 is not uniform: chi-square %.1f\n", chi_pos);
    if (chi_ord > 70.0) /* P(chi2_23 > 70) ~ 1e-6 */
        test_failf("orders of 4 elements are not uniform: chi-square %.1f\n", chi_ord);
    for (size_t i = 0; i < 24; i++)
        assert_true(orders[i] > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_normals_distribution),
        cmocka_unit_test(test_normals_block_mapping),
        cmocka_unit_test(test_normals_deterministic_and_split_free),
        cmocka_unit_test(test_box_muller_matches_libm),
        cmocka_unit_test(test_uniforms),
        cmocka_unit_test(test_uniforms_largest_draw_below_hi),
        cmocka_unit_test(test_permutation_basic),
        cmocka_unit_test(test_permutation_uniform),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
