/* The fused losses (bce_logits_const, mse, softmax_ce) of every ISA this CPU runs, against double-precision
 * references written here and against PyTorch itself (tests/parity/losses_torch.py).
 *
 * Memory: buffers end at an inaccessible page and inputs are read-only (test_arena.h); outputs start as NaN.
 *
 * Tolerances (EPS = FLT_EPSILON = 2^-23), against magnitudes that enter a result rather than the result itself,
 * so cancellation is allowed for:
 *  - elementwise gradients: 8 EPS |scale| (p + y) for BCE (exp 1 ulp, then an add, a division, a subtraction
 *    and a multiply); 2 EPS |2 scale (pred - target)| for MSE (a subtraction and a multiply);
 *  - per-row sums of nonnegative terms: 8 interleaved float partial sums of ceil(n/8) terms each and a 3-level
 *    tree, so relative error <= (n/8 + 3) 2^-24; we allow (n/8 + 8) EPS relative (it grows with the row length)
 *    plus 8 EPS of the magnitudes behind each term's own rounding;
 *  - softmax: the float sum s of exponentials is within srel = EPS (C/8 + 4 + sum_k p_k (2 + |l_k - max|))
 *    relative (each exponential inherits the rounding of l_k - max in its argument); the loss within
 *    4 EPS (|max - l_label| + |log s|) + 2 srel; each probability within p (srel + EPS (3 + |l - max|)).
 * A wrong sign, a dropped element, a missing 1 at the label or a half-applied scale are orders of magnitude away. */
#include "test_arena.h"
#include "test_scratch.h"

#include "kernels.h"
#include "safetensors.h"

#include <float.h>
#include <string.h>

#define EPS32 ((double)FLT_EPSILON)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Row lengths under test: every tail 1..40 and the 784 pixels of an image. */
#define N_SIZES 41
static size_t size_at(size_t k)
{
    return k < 40 ? k + 1 : 784;
}

static const float bce_labels[] = {1.0f, 0.0f, 0.9f, 0.3f};
static const float grad_scales[] = {1.0f, 1.0f / 128.0f, -2.5f};
static const float extreme_values[] = {100.0f, -100.0f, 1e30f, -1e30f, 0.0f, -0.0f, 1e-6f, -15.0f, 30.0f};

/* ---- checks ---- */

/* Fails unless got is finite and within tol (plus FLT_MIN, for results that underflow) of the reference. */
static void expect_near(const char *isa, const char *what, size_t i, size_t j, float got, double ref, double tol)
{
    const double err = fabs((double)got - ref);
    tol += FLT_MIN;
    if (!isfinite(got) || !(err <= tol))
        test_failf("%s: %s[%zu][%zu] = %.9g, reference %.9g, |error| %.3g > tolerance %.3g\n", isa, what, i, j,
                   (double)got, ref, err, tol);
}

/* Tolerance of a float sum of n nonnegative terms whose double sum is ref; err_scale sums the magnitudes
 * behind each term's own rounding (see the file comment). */
static double sum_tol(double ref, double err_scale, size_t n)
{
    return ((double)n / 8.0 + 8.0) * EPS32 * fabs(ref) + 8.0 * EPS32 * err_scale;
}

/* Fails unless the n floats at got and want are bitwise identical (stride-free). */
static void expect_same_bits(const char *isa, const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            test_failf("%s: %s[%zu] = %.9g differs from %.9g\n", isa, what, i, (double)got[i], (double)want[i]);
}

/* Fills n logits: uniform in [-8, 8), or (extreme) random picks of extreme_values. */
static void fill_logits(test_rng *rng, float *x, size_t n, int extreme)
{
    for (size_t f = 0; f < n; f++)
        x[f] = extreme ? extreme_values[test_rng_below(rng, COUNT(extreme_values))] : test_rng_uniform(rng, -8.0f, 8.0f);
}

/* ---- BCE with logits against a constant label ---- */

/* Checks dlogits (may be NULL) and loss of a bce_logits_const run on logits (B, N) against the double reference. */
static void check_bce(const char *isa, const float *dl, const float *loss, const float *logits, float label,
                      float gs, size_t b, size_t n)
{
    const double y = label;
    for (size_t i = 0; i < b; i++) {
        double sum = 0.0, scale = 0.0;
        for (size_t j = 0; j < n; j++) {
            const double l = logits[i * n + j], e = exp(-fabs(l)), q = 1.0 / (1.0 + e);
            const double p = l >= 0 ? q : e * q, sp = log1p(e);
            if (dl)
                expect_near(isa, "bce dlogits", i, j, dl[i * n + j], gs * (p - y), 8.0 * EPS32 * fabs(gs) * (p + y));
            sum += fmax(l, 0.0) - y * l + sp;
            scale += fmax(l, 0.0) + fabs(y * l) + sp;
        }
        expect_near(isa, "bce loss", i, 0, loss[i], sum, sum_tol(sum, scale, n));
    }
}

/* Runs bce_logits_const on B x N logits (random or extreme) and checks it, out of place. */
static void check_bce_case(const elbo_kernels *k, test_rng *rng, size_t b, size_t n, float label, float gs,
                           int extreme)
{
    arena a = {0};
    float *logits = arena_floats(&a, b * n), *dl = arena_floats(&a, b * n), *loss = arena_floats(&a, b);
    fill_logits(rng, logits, b * n, extreme);
    arena_seal(&a, logits);
    k->bce_logits_const(dl, loss, logits, label, gs, b, n);
    check_bce(k->isa, dl, loss, logits, label, gs, b, n);
    arena_free(&a);
}

/* bce_logits_const vs the double reference: every row length 1..40 and 784, labels 1, 0, 0.9, 0.3, scales
 * 1, 1/128, -2.5, random logits and the extremes +-100, +-1e30, +-0, every ISA. */
static void test_bce_logits_const_matches_reference(void **state)
{
    (void)state;
    const elbo_kernels *k;
    test_rng rng = {21};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t si = 0; si < N_SIZES; si++)
            for (size_t yi = 0; yi < COUNT(bce_labels); yi++)
                for (size_t gi = 0; gi < COUNT(grad_scales); gi++)
                    for (int extreme = 0; extreme <= 1; extreme++)
                        check_bce_case(k, &rng, si % 2 ? 3 : 1, size_at(si), bce_labels[yi], grad_scales[gi],
                                       extreme);
}

/* ---- MSE against float targets ---- */

/* Checks dpred (may be NULL) and loss of an mse run on pred, target (B, N) against the double reference. */
static void check_mse(const char *isa, const float *dp, const float *loss, const float *pred, const float *target,
                      float gs, size_t b, size_t n)
{
    for (size_t i = 0; i < b; i++) {
        double sum = 0.0;
        for (size_t j = 0; j < n; j++) {
            const double diff = (double)pred[i * n + j] - (double)target[i * n + j];
            if (dp)
                expect_near(isa, "mse dpred", i, j, dp[i * n + j], 2.0 * gs * diff, 2.0 * EPS32 * fabs(2.0 * gs * diff));
            sum += diff * diff;
        }
        expect_near(isa, "mse loss", i, 0, loss[i], sum, sum_tol(sum, sum, n));
    }
}

/* Fills pred and target (n each): normal-ish random values, or (extreme) picks of +-1e15, +-100, +-0, 1e-20
 * (squares stay finite in float even summed over 784 elements). */
static void fill_mse(test_rng *rng, float *pred, float *target, size_t n, int extreme)
{
    static const float ext[] = {1e15f, -1e15f, 100.0f, -100.0f, 0.0f, -0.0f, 1e-20f, 3.0f};
    for (size_t f = 0; f < n; f++) {
        pred[f] = extreme ? ext[test_rng_below(rng, COUNT(ext))] : test_rng_uniform(rng, -3.0f, 3.0f);
        target[f] = extreme ? ext[test_rng_below(rng, COUNT(ext))] : test_rng_uniform(rng, -3.0f, 3.0f);
    }
}

/* mse vs the double reference: every row length 1..40 and 784, scales 1, 1/128, -2.5, random and extreme
 * values, every ISA. */
static void test_mse_matches_reference(void **state)
{
    (void)state;
    const elbo_kernels *k;
    test_rng rng = {22};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t si = 0; si < N_SIZES; si++)
            for (size_t gi = 0; gi < COUNT(grad_scales); gi++)
                for (int extreme = 0; extreme <= 1; extreme++) {
                    const size_t b = si % 2 ? 3 : 1, n = size_at(si);
                    arena a = {0};
                    float *pred = arena_floats(&a, b * n), *target = arena_floats(&a, b * n);
                    float *dp = arena_floats(&a, b * n), *loss = arena_floats(&a, b);
                    fill_mse(&rng, pred, target, b * n, extreme);
                    arena_seal(&a, pred);
                    arena_seal(&a, target);
                    k->mse(dp, loss, pred, target, grad_scales[gi], b, n);
                    check_mse(k->isa, dp, loss, pred, target, grad_scales[gi], b, n);
                    arena_free(&a);
                }
}

/* ---- softmax cross-entropy ---- */

/* Checks dlogits (may be NULL), loss and argmax (may be NULL) of a softmax_ce run on logits (B, C, stride ld)
 * against the double reference. */
static void check_ce(const char *isa, const float *dl, const float *loss, const uint32_t *argmax, const float *logits,
                     const uint8_t *labels, float gs, size_t b, size_t c, size_t ld)
{
    for (size_t i = 0; i < b; i++) {
        const float *row = logits + i * ld;
        const size_t label = labels[i];
        double m = row[0];
        size_t first = 0;
        for (size_t j = 1; j < c; j++)
            if (row[j] > m) {
                m = row[j];
                first = j;
            }
        double s = 0.0, spread = 0.0;
        for (size_t j = 0; j < c; j++)
            s += exp(row[j] - m);
        for (size_t j = 0; j < c; j++)
            spread += exp(row[j] - m) / s * (2.0 + fabs(row[j] - m));
        const double srel = EPS32 * ((double)c / 8.0 + 4.0 + spread);
        const double ref = (m - row[label]) + log(s);
        expect_near(isa, "ce loss", i, 0, loss[i], ref, 4.0 * EPS32 * (fabs(m - row[label]) + fabs(log(s))) + 2.0 * srel);
        if (argmax && argmax[i] != first)
            test_failf("%s: ce argmax[%zu] = %u, expected %zu (the first maximum)\n", isa, i, argmax[i], first);
        if (!dl)
            continue;
        for (size_t j = 0; j < c; j++) {
            const double p = exp(row[j] - m) / s, hot = j == label ? 1.0 : 0.0;
            const double ptol = p * (srel + EPS32 * (3.0 + fabs(row[j] - m)));
            expect_near(isa, "ce dlogits", i, j, dl[i * ld + j], gs * (p - hot),
                        fabs(gs) * (ptol + 2.0 * EPS32 * (p + hot)));
        }
    }
}

/* Fills logits (B, C, stride ld; padding stays NaN) and labels < C: uniform, extreme picks, or small integers
 * 0..3 (ties for the argmax). */
static void fill_ce(test_rng *rng, float *logits, uint8_t *labels, size_t b, size_t c, size_t ld, int mode)
{
    for (size_t i = 0; i < b; i++) {
        for (size_t j = 0; j < c; j++)
            logits[i * ld + j] = mode == 2 ? (float)test_rng_below(rng, 4) : 0.0f;
        if (mode < 2)
            fill_logits(rng, logits + i * ld, c, mode);
        labels[i] = (uint8_t)test_rng_below(rng, c < 256 ? c : 256);
    }
}

/* Runs softmax_ce on one case (out of place, row stride C + pad) and checks it. */
static void check_ce_case(const elbo_kernels *k, test_rng *rng, size_t b, size_t c, size_t pad, float gs, int mode)
{
    const size_t ld = c + pad, len = (b - 1) * ld + c;
    arena a = {0};
    float *logits = arena_floats(&a, len), *dl = arena_floats(&a, len), *loss = arena_floats(&a, b);
    uint32_t *argmax = arena_take(&a, b * sizeof(uint32_t));
    uint8_t *labels = arena_take(&a, b);
    fill_ce(rng, logits, labels, b, c, ld, mode);
    arena_seal(&a, logits);
    arena_seal(&a, labels);
    k->softmax_ce(dl, loss, argmax, logits, labels, gs, b, c, ld);
    check_ce(k->isa, dl, loss, argmax, logits, labels, gs, b, c, ld);
    for (size_t i = 0; i + 1 < b; i++)
        for (size_t j = c; j < ld; j++)
            if (!isnan(dl[i * ld + j]))
                test_failf("%s: ce wrote the padding dlogits[%zu][%zu]\n", k->isa, i, j);
    arena_free(&a);
}

/* softmax_ce vs the double reference: C = 1..40 and 784, row strides C and C + 3 (NaN padding must not be
 * read), scales 1, 1/128, -2.5, random, extreme (+-100, +-1e30, +-0) and tied logits, every ISA. */
static void test_softmax_ce_matches_reference(void **state)
{
    (void)state;
    const elbo_kernels *k;
    test_rng rng = {23};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t si = 0; si < N_SIZES; si++)
            for (size_t gi = 0; gi < COUNT(grad_scales); gi++)
                for (int mode = 0; mode <= 2; mode++)
                    for (size_t pad = 0; pad <= 3; pad += 3)
                        check_ce_case(k, &rng, 5, size_at(si), pad, grad_scales[gi], mode);
}

/* ---- NaN, overflow ---- */

/* A NaN logit, prediction or target makes its row's loss and its own gradient NaN (for softmax the row's whole
 * gradient, and the argmax is the first NaN, as torch.argmax), and leaves every other output bitwise as without
 * it; MSE's squares overflow to +inf as in float PyTorch. Every ISA, several row lengths. */
static void test_losses_propagate_nan(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 7, 9, 10, 17, 33, 784};
    const elbo_kernels *k;
    test_rng rng = {24};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t si = 0; si < COUNT(sizes); si++) {
            const size_t b = 3, n = sizes[si], len = b * n, at = n / 2, f = n + at; /* row 1 */
            float *x = malloc(len * sizeof(float)), *x2 = malloc(len * sizeof(float)), *tg = malloc(len * sizeof(float));
            float *d = malloc(len * sizeof(float)), *d2 = malloc(len * sizeof(float)), loss[3], loss2[3];
            uint32_t am[3], am2[3];
            uint8_t labels[3] = {0, (uint8_t)(n - 1), (uint8_t)(n / 3)};
            fill_logits(&rng, x, len, 0);
            test_fill(&rng, tg, len, -1.0f, 1.0f);
            memcpy(x2, x, len * sizeof(float));
            x2[f] = NAN;

            k->bce_logits_const(d, loss, x, 0.9f, 0.5f, b, n);
            k->bce_logits_const(d2, loss2, x2, 0.9f, 0.5f, b, n);
            if (!isnan(loss2[1]) || !isnan(d2[f]))
                test_failf("%s: bce n = %zu: NaN logit gave loss %g, dlogits %g\n", k->isa, n, loss2[1], d2[f]);
            d2[f] = d[f], loss2[1] = loss[1];
            expect_same_bits(k->isa, "bce outputs beside a NaN", d2, d, len);
            expect_same_bits(k->isa, "bce losses beside a NaN", loss2, loss, b);

            for (int in_target = 0; in_target <= 1; in_target++) {
                const float *p1 = in_target ? tg : x, *t1 = in_target ? x : tg;
                const float *p2 = in_target ? tg : x2, *t2 = in_target ? x2 : tg;
                k->mse(d, loss, p1, t1, 0.5f, b, n);
                k->mse(d2, loss2, p2, t2, 0.5f, b, n);
                if (!isnan(loss2[1]) || !isnan(d2[f]))
                    test_failf("%s: mse n = %zu: NaN %s gave loss %g, dpred %g\n", k->isa, n,
                               in_target ? "target" : "pred", loss2[1], d2[f]);
                d2[f] = d[f], loss2[1] = loss[1];
                expect_same_bits(k->isa, "mse outputs beside a NaN", d2, d, len);
                expect_same_bits(k->isa, "mse losses beside a NaN", loss2, loss, b);
            }

            x2[f + (n - at > 1)] = NAN; /* a second NaN after the first, where the row has room */
            k->softmax_ce(d, loss, am, x, labels, 0.5f, b, n, n);
            k->softmax_ce(d2, loss2, am2, x2, labels, 0.5f, b, n, n);
            if (!isnan(loss2[1]) || am2[1] != at)
                test_failf("%s: ce n = %zu: NaN logit at %zu gave loss %g, argmax %u\n", k->isa, n, at, loss2[1], am2[1]);
            for (size_t j = 0; j < n; j++)
                if (!isnan(d2[n + j]))
                    test_failf("%s: ce n = %zu: dlogits[1][%zu] = %g beside a NaN logit\n", k->isa, n, j, d2[n + j]);
            memcpy(d2 + n, d + n, n * sizeof(float));
            loss2[1] = loss[1], am2[1] = am[1];
            expect_same_bits(k->isa, "ce outputs beside a NaN row", d2, d, len);
            expect_same_bits(k->isa, "ce losses beside a NaN row", loss2, loss, b);
            assert_memory_equal(am2, am, sizeof am);

            for (size_t j = 0; j < len; j++)
                x2[j] = j % 2 ? 1e30f : -1e30f;
            k->mse(d, loss, x2, x, 1.0f, b, n);
            for (size_t i = 0; i < b; i++)
                if (loss[i] != INFINITY || !isfinite(d[i * n]))
                    test_failf("%s: mse n = %zu: squares of 1e30 summed to %g (expected +inf), gradient %g\n",
                               k->isa, n, loss[i], d[i * n]);
            free(x), free(x2), free(tg), free(d), free(d2);
        }
}

/* ---- variants: loss only, in place, split batches ---- */

/* Without gradients, in place, and row by row (a batch split across threads) every loss gives the bits of the
 * plain call: all three losses, row lengths 1..40 and 784, every ISA. */
static void test_losses_variants_agree_bitwise(void **state)
{
    (void)state;
    const elbo_kernels *k;
    test_rng rng = {25};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t si = 0; si < N_SIZES; si++) {
            const size_t b = 7, n = size_at(si), len = b * n;
            arena a = {0};
            float *x = arena_floats(&a, len), *tg = arena_floats(&a, len), *d = arena_floats(&a, len);
            float *d2 = arena_floats(&a, len), *inplace = arena_floats(&a, len);
            float *loss = arena_floats(&a, b), *loss2 = arena_floats(&a, b);
            uint32_t am[7], am2[7];
            uint8_t labels[7];
            fill_ce(&rng, x, labels, b, n, n, (int)(si % 3));
            test_fill(&rng, tg, len, -2.0f, 2.0f);
            arena_seal(&a, x);
            arena_seal(&a, tg);
            for (int which = 0; which < 3; which++) {
                /* run(dl, loss, argmax, input, rows): the loss under test on rows of the batch */
#define RUN(dl, ls, am_, in, r0, rows)                                                                           \
    (which == 0   ? k->bce_logits_const((dl), (ls), (in) + (r0) * n, 0.9f, 0.25f, (rows), n)                     \
     : which == 1 ? k->mse((dl), (ls), (in) + (r0) * n, tg + (r0) * n, 0.25f, (rows), n)                         \
                  : k->softmax_ce((dl), (ls), (am_), (in) + (r0) * n, labels + (r0), 0.25f, (rows), n, n))
                const char *name = which == 0 ? "bce" : which == 1 ? "mse" : "ce";
                RUN(d, loss, am, x, 0, b);
                RUN(NULL, loss2, which == 2 ? am2 : NULL, x, 0, b);
                expect_same_bits(name, "loss without gradient", loss2, loss, b);
                if (which == 2)
                    assert_memory_equal(am2, am, sizeof am);
                memcpy(inplace, x, len * sizeof(float));
                RUN(inplace, loss2, NULL, inplace, 0, b);
                expect_same_bits(name, "gradient in place", inplace, d, len);
                expect_same_bits(name, "loss in place", loss2, loss, b);
                RUN(d2, loss2, am2, x, 0, 2);
                for (size_t i = 2; i < b; i++)
                    RUN(d2 + i * n, loss2 + i, am2 + i, x, i, 1);
                expect_same_bits(name, "gradient split", d2, d, len);
                expect_same_bits(name, "loss split", loss2, loss, b);
                if (which == 2)
                    assert_memory_equal(am2, am, sizeof am);
#undef RUN
            }
            arena_free(&a);
        }
}

#if defined(__x86_64__)
/* The AVX-512 losses give the AVX2 ones' bits (gradients, losses, argmax): row lengths 1..40 and 784, random,
 * extreme and tied inputs (skipped where the CPU lacks either table). */
static void test_losses_avx512_equal_avx2(void **state)
{
    (void)state;
    const elbo_kernels *k512 = elbo_kernels_by_name("avx512"), *k2 = elbo_kernels_by_name("avx2");
    if (!k512 || !k2)
        skip();
    test_rng rng = {26};
    for (size_t si = 0; si < N_SIZES; si++)
        for (int mode = 0; mode <= 2; mode++) {
            const size_t b = 3, n = size_at(si), len = b * n;
            arena a = {0};
            float *x = arena_floats(&a, len), *tg = arena_floats(&a, len), *d = arena_floats(&a, len);
            float *d2 = arena_floats(&a, len), *loss = arena_floats(&a, b), *loss2 = arena_floats(&a, b);
            uint32_t am[3], am2[3];
            uint8_t labels[3];
            fill_ce(&rng, x, labels, b, n, n, mode);
            fill_mse(&rng, tg, d, len, mode == 1);
            arena_seal(&a, x);
            arena_seal(&a, tg);
            for (size_t yi = 0; yi < COUNT(bce_labels); yi++) {
                k2->bce_logits_const(d, loss, x, bce_labels[yi], 0.125f, b, n);
                k512->bce_logits_const(d2, loss2, x, bce_labels[yi], 0.125f, b, n);
                expect_same_bits("avx512 vs avx2", "bce dlogits", d2, d, len);
                expect_same_bits("avx512 vs avx2", "bce loss", loss2, loss, b);
            }
            if (mode != 1) { /* squares of 1e30 overflow: see test_losses_propagate_nan */
                k2->mse(d, loss, x, tg, 0.125f, b, n);
                k512->mse(d2, loss2, x, tg, 0.125f, b, n);
                expect_same_bits("avx512 vs avx2", "mse dpred", d2, d, len);
                expect_same_bits("avx512 vs avx2", "mse loss", loss2, loss, b);
            }
            k2->softmax_ce(d, loss, am, x, labels, 0.125f, b, n, n);
            k512->softmax_ce(d2, loss2, am2, x, labels, 0.125f, b, n, n);
            expect_same_bits("avx512 vs avx2", "ce dlogits", d2, d, len);
            expect_same_bits("avx512 vs avx2", "ce loss", loss2, loss, b);
            assert_memory_equal(am2, am, sizeof am);
            arena_free(&a);
        }
}
#endif

/* ---- PyTorch ---- */

static char oracle_dir[MAX_PATH];
static elbo_st_file oracle;

/* Runs tests/parity/losses_torch.py once into a fresh temporary directory and reads its file. */
static int load_oracle(void **state)
{
    (void)state;
    char cmd[2 * MAX_PATH], path[MAX_PATH], err[256];
    scratch_mkdtemp(oracle_dir, "elbo-losses");
    join(path, oracle_dir, "losses.safetensors");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/parity/losses_torch.py %s", path);
    if (system(cmd) != 0 || elbo_st_read(path, &oracle, err, sizeof err) != 0) {
        fprintf(stderr, "losses oracle: %s failed\n", cmd);
        return -1;
    }
    return 0;
}

/* Frees the oracle and removes its directory. */
static int free_oracle(void **state)
{
    (void)state;
    elbo_st_free(&oracle);
    remove_tree(oracle_dir);
    return 0;
}

/* The oracle tensor called name as a fresh float array (fails the test if absent); *count gets its length. */
static float *oracle_tensor(const char *name, size_t *count, size_t *rows)
{
    const elbo_st_tensor *t = elbo_st_find(&oracle, name);
    if (!t)
        test_failf("losses oracle lacks tensor %s\n", name);
    float *x = malloc(t->count * sizeof(float));
    memcpy(x, t->data, t->count * sizeof(float));
    *count = t->count;
    if (rows)
        *rows = t->shape[0];
    return x;
}

/* The oracle's metadata value of key as a float (fails the test if absent). */
static float oracle_meta(const char *key)
{
    const char *v = elbo_st_meta_get(&oracle, key);
    if (!v)
        test_failf("losses oracle lacks metadata %s\n", key);
    return (float)atof(v);
}

/* Fails unless got matches torch's want (n floats): NaN where torch has NaN, else |got - want| <= 1e-5 |want| +
 * abs_tol (float32 PyTorch computes the same quantities in another order). */
static void expect_torch(const char *isa, const char *what, const float *got, const float *want, size_t n,
                         double abs_tol)
{
    for (size_t i = 0; i < n; i++) {
        const int both_nan = isnan(got[i]) && isnan(want[i]);
        if (!both_nan && !(fabs((double)got[i] - want[i]) <= 1e-5 * fabs(want[i]) + abs_tol))
            test_failf("%s: %s[%zu] = %.9g, torch %.9g\n", isa, what, i, (double)got[i], (double)want[i]);
    }
}

/* Each loss, its gradient and (softmax) argmax agree with PyTorch 1.13's F.binary_cross_entropy_with_logits,
 * F.mse_loss and F.cross_entropy (autograd) and torch.argmax, on random, extreme (+-100, +-1e30, 0), tied and NaN
 * inputs, every ISA. */
static void test_losses_match_torch(void **state)
{
    (void)state;
    const elbo_kernels *k;
    char name[64];
    size_t n, rows, nl;
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++) {
        const float bs = oracle_meta("bce.scale");
        for (int c = 0; c < (int)oracle_meta("bce.count"); c++) {
            snprintf(name, sizeof name, "bce.y%d.logits", c);
            float *x = oracle_tensor(name, &n, &rows);
            snprintf(name, sizeof name, "bce.y%d.loss", c);
            float *want_loss = oracle_tensor(name, &nl, NULL);
            snprintf(name, sizeof name, "bce.y%d.grad", c);
            float *want_grad = oracle_tensor(name, &n, NULL);
            snprintf(name, sizeof name, "bce.y%d.label", c);
            float *d = malloc(n * sizeof(float)), *loss = malloc(rows * sizeof(float));
            k->bce_logits_const(d, loss, x, oracle_meta(name), bs, rows, n / rows);
            expect_torch(k->isa, "bce loss", loss, want_loss, rows, 1e-5);
            expect_torch(k->isa, "bce grad", d, want_grad, n, 1e-6 * bs);
            free(x), free(want_loss), free(want_grad), free(d), free(loss);
        }

        float *pred = oracle_tensor("mse.pred", &n, &rows), *tg = oracle_tensor("mse.target", &n, NULL);
        float *want_loss = oracle_tensor("mse.loss", &nl, NULL), *want_grad = oracle_tensor("mse.grad", &n, NULL);
        float *d = malloc(n * sizeof(float)), *loss = malloc(rows * sizeof(float));
        const float ms = oracle_meta("mse.scale");
        k->mse(d, loss, pred, tg, ms, rows, n / rows);
        expect_torch(k->isa, "mse loss", loss, want_loss, rows, 1e-5);
        expect_torch(k->isa, "mse grad", d, want_grad, n, 1e-6 * ms);
        free(pred), free(tg), free(want_loss), free(want_grad), free(d), free(loss);

        float *x = oracle_tensor("ce.logits", &n, &rows), *lab = oracle_tensor("ce.labels", &nl, NULL);
        float *want_am = oracle_tensor("ce.argmax", &nl, NULL);
        want_loss = oracle_tensor("ce.loss", &nl, NULL), want_grad = oracle_tensor("ce.grad", &n, NULL);
        d = malloc(n * sizeof(float)), loss = malloc(rows * sizeof(float));
        uint8_t *labels = malloc(rows);
        uint32_t *am = malloc(rows * sizeof(uint32_t));
        for (size_t i = 0; i < rows; i++)
            labels[i] = (uint8_t)lab[i];
        const float cs = oracle_meta("ce.scale");
        k->softmax_ce(d, loss, am, x, labels, cs, rows, n / rows, n / rows);
        expect_torch(k->isa, "ce loss", loss, want_loss, rows, 1e-5);
        expect_torch(k->isa, "ce grad", d, want_grad, n, 1e-6 * cs);
        for (size_t i = 0; i < rows; i++)
            if (am[i] != (uint32_t)want_am[i])
                test_failf("%s: ce argmax[%zu] = %u, torch.argmax %u\n", k->isa, i, am[i], (uint32_t)want_am[i]);
        print_message("losses match torch %s on %s\n", elbo_st_meta_get(&oracle, "torch"), k->isa);
        free(x), free(lab), free(want_am), free(want_loss), free(want_grad), free(d), free(loss), free(labels), free(am);
    }
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bce_logits_const_matches_reference),
        cmocka_unit_test(test_mse_matches_reference),
        cmocka_unit_test(test_softmax_ce_matches_reference),
        cmocka_unit_test(test_losses_propagate_nan),
        cmocka_unit_test(test_losses_variants_agree_bitwise),
#if defined(__x86_64__)
        cmocka_unit_test(test_losses_avx512_equal_avx2),
#endif
        cmocka_unit_test_setup_teardown(test_losses_match_torch, load_oracle, free_oracle),
    };
    test_apply_skip_filter(tests, COUNT(tests));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
