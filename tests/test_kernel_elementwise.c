/* Fused elementwise kernels of every ISA this CPU runs, against double-precision references
 * written here (PyTorch semantics), on odd sizes, tails and extreme inputs.
 *
 * Memory: every buffer ends exactly at an inaccessible page and inputs are made read-only, so a
 * read or write past a tail, or a write to an input, crashes the test; outputs start as NaN, so an
 * element left unwritten fails the finiteness check.
 *
 * Tolerances (FLT_EPSILON = 2^-23; one ulp of a float y is at most FLT_EPSILON |y|):
 *  - elementwise results: a small multiple of FLT_EPSILON times the magnitudes that enter the
 *    result (not times the result, so cancellation is allowed for): exp/log1p cost 1 ulp each
 *    (SLEEF u10 and glibc are within 1 ulp), every float operation 1/2 ulp; the multiples below
 *    are about twice the worst-case sums of those;
 *  - per-row sums of nonnegative terms: the kernels add in 8 interleaved float partial sums
 *    (each at most ceil(n/8) terms) and a 3-level tree, so relative error <= (n/8 + 3) 2^-24;
 *    we allow (n/8 + 8) FLT_EPSILON relative, which grows with the row length, plus 8 FLT_EPSILON
 *    times the summed magnitudes behind each term's own rounding.
 * For D = 785 the sum tolerance is about 1.3e-5 relative: a missing element (~1/785 of the sum),
 * a missing 0.5, or a wrong sign is hundreds of tolerances away. */
#include "test_util.h"

#include "kernels.h"

#include <float.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define EPS32 ((double)FLT_EPSILON)
#define ELEM_ULPS 8.0
#define MAX_BUFFERS 32

/* ---- memory: buffers that end at an inaccessible page ---- */

typedef struct {
    char *base;
    size_t len, data_len;
} mapping;

typedef struct {
    mapping maps[MAX_BUFFERS];
    size_t count;
} arena;

/* Fresh memory of `bytes` bytes ending exactly where a PROT_NONE page begins. */
static void *arena_take(arena *a, size_t bytes)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t data_len = (bytes + page - 1) / page * page;
    assert_true(a->count < MAX_BUFFERS);
    char *base = mmap(NULL, data_len + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(base != MAP_FAILED);
    assert_int_equal(mprotect(base + data_len, page, PROT_NONE), 0);
    a->maps[a->count++] = (mapping){base, data_len + page, data_len};
    return base + data_len - bytes;
}

/* n floats ending at a guard page, all NaN. */
static float *take_floats(arena *a, size_t n)
{
    float *p = arena_take(a, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    return p;
}

/* Makes the buffer holding p read-only. */
static void seal(arena *a, const void *p)
{
    for (size_t i = 0; i < a->count; i++) {
        mapping *m = &a->maps[i];
        if ((const char *)p >= m->base && (const char *)p <= m->base + m->data_len) {
            assert_int_equal(mprotect(m->base, m->data_len, PROT_READ), 0);
            return;
        }
    }
    fail_msg("seal: pointer not in arena");
}

/* Unmaps every buffer of the arena. */
static void arena_free(arena *a)
{
    for (size_t i = 0; i < a->count; i++)
        munmap(a->maps[i].base, a->maps[i].len);
    a->count = 0;
}

/* ---- checks ---- */

/* Fails unless got is finite and within tol (plus FLT_MIN, for results that underflow) of the
 * double reference. */
static void expect_near(const char *isa, const char *what, size_t i, size_t j, float got, double ref,
                        double tol)
{
    double err = fabs((double)got - ref);
    tol += FLT_MIN;
    if (!isfinite(got) || !(err <= tol))
        test_failf("%s: %s[%zu][%zu] = %.9g, reference %.9g, |error| %.3g > tolerance %.3g\n", isa, what,
                   i, j, (double)got, ref, err, tol);
}

/* Tolerance of a float sum of n nonnegative terms whose double sum is ref; err_scale sums the
 * magnitudes behind each term's own rounding errors (see the file comment). */
static double sum_tol(double ref, double err_scale, size_t n)
{
    return ((double)n / 8.0 + 8.0) * EPS32 * fabs(ref) + ELEM_ULPS * EPS32 * err_scale;
}

/* Fails unless the n floats at got and want are bitwise identical. */
static void expect_same_bits(const char *isa, const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            test_failf("%s: %s[%zu] = %.9g differs from %.9g\n", isa, what, i, (double)got[i], (double)want[i]);
}

static const size_t batch_sizes[] = {1, 3, 7};
static const size_t latent_sizes[] = {1, 2, 7, 8, 9, 20, 33};
static const size_t pixel_sizes[] = {1, 5, 8, 9, 12, 15, 784, 785};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- reparameterization ---- */

/* Fills mulv (B, 2Z) and eps (B, Z): random, or the extremes logvar = +-30, mu up to +-10. */
static void fill_reparam_inputs(test_rng *rng, float *mulv, float *eps, size_t b, size_t zd, int extreme)
{
    static const float extreme_logvar[] = {30.0f, -30.0f, 0.0f, 29.5f, -29.5f};
    static const float extreme_mu[] = {10.0f, -10.0f, 0.0f, 3.0f};
    for (size_t i = 0; i < b; i++)
        for (size_t j = 0; j < zd; j++) {
            size_t f = i * zd + j;
            float *mu = &mulv[i * 2 * zd + j], *lv = mu + zd;
            *mu = extreme ? extreme_mu[f % COUNT(extreme_mu)] : test_rng_uniform(rng, -3.0f, 3.0f);
            *lv = extreme ? extreme_logvar[f % COUNT(extreme_logvar)] : test_rng_uniform(rng, -6.0f, 6.0f);
            eps[f] = extreme ? (f % 2 ? 3.0f : -3.0f) : test_rng_uniform(rng, -3.0f, 3.0f);
        }
}

/* Runs reparam_forward on one case and checks z, sigma, kl against the double reference. */
static void check_reparam_forward(const elbo_kernels *k, test_rng *rng, size_t b, size_t zd, int extreme)
{
    arena a = {0};
    float *mulv = take_floats(&a, b * 2 * zd), *eps = take_floats(&a, b * zd);
    float *z = take_floats(&a, b * zd), *sigma = take_floats(&a, b * zd), *kl = take_floats(&a, b);
    fill_reparam_inputs(rng, mulv, eps, b, zd, extreme);
    seal(&a, mulv);
    seal(&a, eps);
    k->reparam_forward(z, sigma, kl, mulv, eps, b, zd);
    for (size_t i = 0; i < b; i++) {
        double kl_ref = 0.0, kl_scale = 0.0;
        for (size_t j = 0; j < zd; j++) {
            double mu = mulv[i * 2 * zd + j], lv = mulv[i * 2 * zd + zd + j], e = eps[i * zd + j];
            double s = exp(0.5 * lv);
            /* sigma: exp is 1 ulp and 0.5 * logvar exact. z: one multiply-add on top. */
            expect_near(k->isa, "sigma", i, j, sigma[i * zd + j], s, 2.0 * EPS32 * s);
            expect_near(k->isa, "z", i, j, z[i * zd + j], mu + s * e, 4.0 * EPS32 * (fabs(mu) + fabs(s * e)));
            kl_ref += 0.5 * (mu * mu + exp(lv) - lv - 1.0);
            kl_scale += 0.5 * (mu * mu + exp(lv) + fabs(lv) + 1.0);
        }
        expect_near(k->isa, "kl", i, 0, kl[i], kl_ref, sum_tol(kl_ref, kl_scale, zd));
    }
    arena_free(&a);
}

/* reparam_forward vs the double reference, all sizes, every ISA. */
static void test_reparam_forward_matches_reference(void **state)
{
    (void)state;
    const elbo_kernels *k;
    test_rng rng = {1};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t bi = 0; bi < COUNT(batch_sizes); bi++)
            for (size_t zi = 0; zi < COUNT(latent_sizes); zi++)
                check_reparam_forward(k, &rng, batch_sizes[bi], latent_sizes[zi], 0);
}

/* reparam_forward with logvar = +-30 and large mu stays finite and matches. */
static void test_reparam_forward_extremes(void **state)
{
    (void)state;
    const elbo_kernels *k;
    test_rng rng = {2};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t zi = 0; zi < COUNT(latent_sizes); zi++)
            check_reparam_forward(k, &rng, 3, latent_sizes[zi], 1);
}

/* Runs reparam_backward on one case and checks dmu, dlogvar against the double reference. */
static void check_reparam_backward(const elbo_kernels *k, test_rng *rng, size_t b, size_t zd, float kl_weight,
                                   int extreme)
{
    arena a = {0};
    float *mulv = take_floats(&a, b * 2 * zd), *eps = take_floats(&a, b * zd);
    float *dz = take_floats(&a, b * zd), *sigma = take_floats(&a, b * zd), *dmulv = take_floats(&a, b * 2 * zd);
    fill_reparam_inputs(rng, mulv, eps, b, zd, extreme);
    for (size_t i = 0; i < b; i++)
        for (size_t j = 0; j < zd; j++) {
            sigma[i * zd + j] = expf(0.5f * mulv[i * 2 * zd + zd + j]);
            dz[i * zd + j] = test_rng_uniform(rng, -2.0f, 2.0f);
        }
    seal(&a, mulv);
    seal(&a, eps);
    seal(&a, dz);
    seal(&a, sigma);
    k->reparam_backward(dmulv, dz, mulv, eps, sigma, kl_weight, b, zd);
    const double w = kl_weight;
    for (size_t i = 0; i < b; i++)
        for (size_t j = 0; j < zd; j++) {
            double mu = mulv[i * 2 * zd + j], e = eps[i * zd + j], s = sigma[i * zd + j], g = dz[i * zd + j];
            double dmu = g + w * mu;
            double dlv = 0.5 * g * e * s + w * 0.5 * (s * s - 1.0);
            /* A few roundings on top of the inputs, measured against the magnitudes that enter. */
            expect_near(k->isa, "dmu", i, j, dmulv[i * 2 * zd + j], dmu, 4.0 * EPS32 * (fabs(g) + fabs(w * mu)));
            expect_near(k->isa, "dlogvar", i, j, dmulv[i * 2 * zd + zd + j], dlv,
                        4.0 * EPS32 * (0.5 * fabs(g * e * s) + 0.5 * fabs(w) * (s * s + 1.0)));
        }
    arena_free(&a);
}

/* reparam_backward vs the double reference, sizes x KL weights x extremes, every ISA. */
static void test_reparam_backward_matches_reference(void **state)
{
    (void)state;
    static const float weights[] = {1.0f, 0.37f, 0.0f};
    const elbo_kernels *k;
    test_rng rng = {3};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t bi = 0; bi < COUNT(batch_sizes); bi++)
            for (size_t zi = 0; zi < COUNT(latent_sizes); zi++)
                for (size_t wi = 0; wi < COUNT(weights); wi++)
                    for (int extreme = 0; extreme <= 1; extreme++)
                        check_reparam_backward(k, &rng, batch_sizes[bi], latent_sizes[zi], weights[wi], extreme);
}

/* A batch gives the same bits as its rows computed one call at a time (threads split batches). */
static void test_reparam_rows_independent_of_split(void **state)
{
    (void)state;
    const size_t b = 7, zd = 33;
    const elbo_kernels *k;
    test_rng rng = {4};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++) {
        arena a = {0};
        float *mulv = take_floats(&a, b * 2 * zd), *eps = take_floats(&a, b * zd);
        float *z = take_floats(&a, b * zd), *sigma = take_floats(&a, b * zd), *kl = take_floats(&a, b);
        float *z1 = take_floats(&a, b * zd), *sigma1 = take_floats(&a, b * zd), *kl1 = take_floats(&a, b);
        fill_reparam_inputs(&rng, mulv, eps, b, zd, 0);
        k->reparam_forward(z, sigma, kl, mulv, eps, b, zd);
        for (size_t i = 0; i < b; i++)
            k->reparam_forward(z1 + i * zd, sigma1 + i * zd, kl1 + i, mulv + i * 2 * zd, eps + i * zd, 1, zd);
        expect_same_bits(k->isa, "z split", z1, z, b * zd);
        expect_same_bits(k->isa, "sigma split", sigma1, sigma, b * zd);
        expect_same_bits(k->isa, "kl split", kl1, kl, b);
        arena_free(&a);
    }
}

/* ---- sigmoid + reconstruction loss ---- */

typedef enum { LOSS_MSE, LOSS_BCE } loss_kind;

typedef struct {
    loss_kind kind;
    float recon_scale, grad_scale; /* recon_scale is used by MSE only */
} loss_case;

static const loss_case loss_cases[] = {
    {LOSS_MSE, 1.0f, 1.0f}, {LOSS_MSE, 0.75f, 0.2f}, {LOSS_BCE, 1.0f, 1.0f}, {LOSS_BCE, 1.0f, 0.3f},
};

/* Name of a loss kind for messages. */
static const char *loss_name(const loss_case *c)
{
    return c->kind == LOSS_MSE ? "mse" : "bce";
}

/* Calls the kernel of the case's loss. */
static void run_loss(const elbo_kernels *k, const loss_case *c, float *dl, float *loss, float *probs,
                     const float *logits, const uint8_t *x, size_t b, size_t d)
{
    if (c->kind == LOSS_MSE)
        k->sigmoid_mse(dl, loss, probs, logits, x, c->recon_scale, c->grad_scale, b, d);
    else
        k->sigmoid_bce(dl, loss, probs, logits, x, c->grad_scale, b, d);
}

/* Fills logits and pixels: random (a third of pixels 0, a third 255), or the extremes
 * logits +-50, +-80, +-30, 0 against targets 0 and 255 in every combination. */
static void fill_loss_inputs(test_rng *rng, float *logits, uint8_t *x, size_t n, int extreme)
{
    static const float extreme_logits[] = {50.0f, -50.0f, 80.0f, -80.0f, 30.0f, -30.0f, 0.0f, 1e-6f, -15.0f};
    const size_t ne = COUNT(extreme_logits);
    for (size_t f = 0; f < n; f++) {
        if (extreme) {
            logits[f] = extreme_logits[f % ne];
            x[f] = (f / ne) % 2 ? 255 : 0;
            continue;
        }
        logits[f] = test_rng_uniform(rng, -8.0f, 8.0f);
        size_t kind = test_rng_below(rng, 3);
        x[f] = kind == 0 ? 0 : kind == 1 ? 255 : (uint8_t)test_rng_below(rng, 256);
    }
}

/* Checks dlogits, loss and (if non-NULL) probs of one run against the double reference. */
static void check_loss_outputs(const char *isa, const loss_case *c, const float *dl, const float *loss,
                               const float *probs, const float *logits, const uint8_t *x, size_t b, size_t d)
{
    char what[32];
    const double gs = c->grad_scale, rs = c->recon_scale;
    for (size_t i = 0; i < b; i++) {
        double sum = 0.0, scale = 0.0;
        for (size_t j = 0; j < d; j++) {
            const size_t f = i * d + j;
            const double l = logits[f], t = x[f] / 255.0;
            const double e = exp(-fabs(l)), q = 1.0 / (1.0 + e);
            const double p = l >= 0 ? q : e * q, dp = e * q * q, diff = p - t;
            if (probs) {
                /* exp 1 ulp, then an add, a division and a multiply. */
                snprintf(what, sizeof what, "%s probs", loss_name(c));
                expect_near(isa, what, i, j, probs[f], p, 4.0 * EPS32 * p);
            }
            snprintf(what, sizeof what, "%s dlogits", loss_name(c));
            if (c->kind == LOSS_MSE) {
                const double coef = 2.0 * gs * rs;
                /* p, t and p (1 - p) to a few ulps; the last term admits p (1 - p) formed as p * (1 - p)
                 * in float (as PyTorch's sigmoid backward does), which is 0 where p rounds to 1. */
                expect_near(isa, what, i, j, dl[f], coef * diff * dp,
                            fabs(coef) * EPS32 * (ELEM_ULPS * dp * (p + t + fabs(diff)) + 4.0 * fabs(diff) * p));
                sum += diff * diff;
                scale += fabs(diff) * (p + t);
            } else {
                expect_near(isa, what, i, j, dl[f], gs * diff, 6.0 * EPS32 * fabs(gs) * (p + t));
                const double sp = log1p(e);
                sum += fmax(l, 0.0) - t * l + sp;
                scale += fmax(l, 0.0) + fabs(t * l) + sp;
            }
        }
        snprintf(what, sizeof what, "%s loss", loss_name(c));
        const double s = c->kind == LOSS_MSE ? rs : 1.0;
        expect_near(isa, what, i, 0, loss[i], s * sum, fabs(s) * sum_tol(sum, scale, d));
    }
}

/* Runs one loss case on one size and checks it against the reference. */
static void check_loss_case(const elbo_kernels *k, const loss_case *c, test_rng *rng, size_t b, size_t d,
                            int extreme)
{
    arena a = {0};
    const size_t n = b * d;
    float *logits = take_floats(&a, n), *dl = take_floats(&a, n), *probs = take_floats(&a, n);
    float *loss = take_floats(&a, b);
    uint8_t *x = arena_take(&a, n);
    fill_loss_inputs(rng, logits, x, n, extreme);
    seal(&a, logits);
    seal(&a, x);
    run_loss(k, c, dl, loss, probs, logits, x, b, d);
    check_loss_outputs(k->isa, c, dl, loss, probs, logits, x, b, d);
    arena_free(&a);
}

/* sigmoid_mse / sigmoid_bce vs the double reference over all sizes, every ISA. */
static void test_sigmoid_losses_match_reference(void **state)
{
    (void)state;
    const elbo_kernels *k;
    test_rng rng = {5};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t ci = 0; ci < COUNT(loss_cases); ci++)
            for (size_t bi = 0; bi < COUNT(batch_sizes); bi++)
                for (size_t di = 0; di < COUNT(pixel_sizes); di++)
                    check_loss_case(k, &loss_cases[ci], &rng, batch_sizes[bi], pixel_sizes[di], 0);
}

/* Logits +-50 / +-80 against targets 0 and 255: finite and matching, every ISA. */
static void test_sigmoid_losses_extremes(void **state)
{
    (void)state;
    const elbo_kernels *k;
    test_rng rng = {6};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t ci = 0; ci < COUNT(loss_cases); ci++)
            for (size_t di = 0; di < COUNT(pixel_sizes); di++)
                check_loss_case(k, &loss_cases[ci], &rng, 3, pixel_sizes[di], 1);
}

/* probs NULL, dlogits aliasing logits, and per-row calls all give the bits of the plain call. */
static void test_sigmoid_losses_variants_agree_bitwise(void **state)
{
    (void)state;
    const elbo_kernels *k;
    test_rng rng = {7};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t ci = 0; ci < COUNT(loss_cases); ci++)
            for (size_t di = 0; di < COUNT(pixel_sizes); di++) {
                const loss_case *c = &loss_cases[ci];
                const size_t b = 7, d = pixel_sizes[di], n = b * d;
                arena a = {0};
                float *logits = take_floats(&a, n), *dl = take_floats(&a, n), *probs = take_floats(&a, n);
                float *loss = take_floats(&a, b), *dl2 = take_floats(&a, n), *probs2 = take_floats(&a, n);
                float *loss2 = take_floats(&a, b), *inplace = take_floats(&a, n);
                uint8_t *x = arena_take(&a, n);
                fill_loss_inputs(&rng, logits, x, n, di % 2);
                memcpy(inplace, logits, n * sizeof(float));
                seal(&a, logits);
                seal(&a, x);
                run_loss(k, c, dl, loss, probs, logits, x, b, d);

                run_loss(k, c, dl2, loss2, NULL, logits, x, b, d);
                expect_same_bits(k->isa, "dlogits without probs", dl2, dl, n);
                expect_same_bits(k->isa, "loss without probs", loss2, loss, b);

                run_loss(k, c, inplace, loss2, probs2, inplace, x, b, d);
                expect_same_bits(k->isa, "dlogits in place", inplace, dl, n);
                expect_same_bits(k->isa, "probs in place", probs2, probs, n);
                expect_same_bits(k->isa, "loss in place", loss2, loss, b);

                run_loss(k, c, dl2, loss2, probs2, logits, x, 2, d);
                for (size_t i = 2; i < b; i++)
                    run_loss(k, c, dl2 + i * d, loss2 + i, probs2 + i * d, logits + i * d, x + i * d, 1, d);
                expect_same_bits(k->isa, "dlogits split", dl2, dl, n);
                expect_same_bits(k->isa, "probs split", probs2, probs, n);
                expect_same_bits(k->isa, "loss split", loss2, loss, b);
                arena_free(&a);
            }
}

#if defined(__x86_64__)
/* The AVX-512 sigmoid + loss kernels give the AVX2 kernels' bits (dlogits, probs, each row's loss), whole
 * 16-lane vectors and every tail, random and extreme inputs (skipped where the CPU lacks either table). */
static void test_sigmoid_losses_avx512_equal_avx2(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 784, 785, 799};
    const elbo_kernels *k512 = elbo_kernels_by_name("avx512"), *k2 = elbo_kernels_by_name("avx2");
    if (!k512 || !k2)
        skip();
    test_rng rng = {8};
    for (size_t ci = 0; ci < COUNT(loss_cases); ci++)
        for (size_t si = 0; si < COUNT(sizes); si++)
            for (int extreme = 0; extreme < 2; extreme++) {
                const loss_case *c = &loss_cases[ci];
                const size_t b = 3, d = sizes[si], n = b * d;
                arena a = {0};
                float *logits = take_floats(&a, n), *dl = take_floats(&a, n), *probs = take_floats(&a, n);
                float *loss = take_floats(&a, b), *dl2 = take_floats(&a, n), *probs2 = take_floats(&a, n);
                float *loss2 = take_floats(&a, b);
                uint8_t *x = arena_take(&a, n);
                fill_loss_inputs(&rng, logits, x, n, extreme);
                seal(&a, logits);
                seal(&a, x);
                run_loss(k2, c, dl, loss, probs, logits, x, b, d);
                run_loss(k512, c, dl2, loss2, probs2, logits, x, b, d);
                expect_same_bits(loss_name(c), "avx512 dlogits", dl2, dl, n);
                expect_same_bits(loss_name(c), "avx512 probs", probs2, probs, n);
                expect_same_bits(loss_name(c), "avx512 loss", loss2, loss, b);
                arena_free(&a);
            }
}

/* SLEEF's AVX-512 expf and log1pf, which the AVX-512 sigmoid kernels call, give the AVX2 ones' bits on every
 * input those kernels can pass them (2^31 + 2^30 inputs; skipped where the CPU lacks AVX-512). */
static void test_sleef_avx512_equals_avx2_everywhere(void **state)
{
    (void)state;
    if (!elbo_kernels_by_name("avx512"))
        skip();
    assert_int_equal(elbo_sleef_avx512_mismatches(), 0);
}
#endif

/* ---- column sum ---- */

/* column_sum vs a double sum: sizes x padded strides x accumulate, every ISA.
 * Tolerance: (B + 2) FLT_EPSILON (|db| + sum_i |dy_ij|), twice the bound of B sequential float adds. */
static void test_column_sum_matches_reference(void **state)
{
    (void)state;
    static const size_t rows[] = {1, 3, 7, 64};
    static const size_t cols[] = {1, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 785};
    const elbo_kernels *k;
    test_rng rng = {8};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t ri = 0; ri < COUNT(rows); ri++)
            for (size_t ni = 0; ni < COUNT(cols); ni++)
                for (size_t pad = 0; pad <= 3; pad += 3)
                    for (int acc = 0; acc <= 1; acc++) {
                        const size_t b = rows[ri], n = cols[ni], ldy = n + pad;
                        arena a = {0};
                        float *dy = take_floats(&a, (b - 1) * ldy + n), *db = take_floats(&a, n);
                        float *db0 = take_floats(&a, n);
                        for (size_t i = 0; i < b; i++)
                            test_fill(&rng, dy + i * ldy, n, -1.0f, 1.0f); /* padding stays NaN */
                        if (acc)
                            test_fill(&rng, db, n, -4.0f, 4.0f); /* else NaN: must not be read */
                        memcpy(db0, db, n * sizeof(float));
                        seal(&a, dy);
                        k->column_sum(db, dy, b, n, ldy, acc);
                        for (size_t j = 0; j < n; j++) {
                            double ref = acc ? db0[j] : 0.0, mag = acc ? fabs(db0[j]) : 0.0;
                            for (size_t i = 0; i < b; i++) {
                                ref += dy[i * ldy + j];
                                mag += fabs(dy[i * ldy + j]);
                            }
                            expect_near(k->isa, acc ? "db accumulate" : "db", b, j, db[j], ref,
                                        (double)(b + 2) * EPS32 * mag);
                        }
                        arena_free(&a);
                    }
}

/* ---- pixels ---- */

/* unit_from_u8 gives exactly (float)u / 255.0f (the GEMM's uint8 packing's value) for every byte value, at
 * every length around the vector widths (tails included), without reading or writing past either buffer. */
static void test_unit_from_u8_exact(void **state)
{
    (void)state;
    static const size_t lengths[] = {1, 7, 8, 9, 15, 16, 17, 31, 33, 256, 784, 785};
    const elbo_kernels *k;
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t li = 0; li < COUNT(lengths); li++) {
            const size_t n = lengths[li];
            arena a = {0};
            uint8_t *src = arena_take(&a, n);
            float *dst = take_floats(&a, n);
            for (size_t i = 0; i < n; i++)
                src[i] = (uint8_t)((i * 37 + n) % 256);
            seal(&a, src);
            k->unit_from_u8(dst, src, n);
            for (size_t i = 0; i < n; i++)
                if (dst[i] != (float)src[i] / 255.0f)
                    test_failf("%s: n = %zu: pixel %zu (%u) -> %.9g, expected %.9g\n", k->isa, n, i,
                               (unsigned)src[i], (double)dst[i], (double)((float)src[i] / 255.0f));
            arena_free(&a);
        }
}

/* ---- optimizers ---- */

static const size_t param_sizes[] = {1, 7, 8, 9, 12, 33, 1000};

/* Gradient j of a step: uniform in [-1, 1], every 5th scaled by 1e-3, every 7th exactly 0. */
static float make_grad(test_rng *rng, size_t j)
{
    float g = test_rng_uniform(rng, -1.0f, 1.0f);
    return j % 7 == 3 ? 0.0f : j % 5 == 1 ? g * 1e-3f : g;
}

/* Adam over 6 steps vs torch.optim.Adam's update rule (PyTorch 1.13's single-tensor step) written out here in
 * double; PyTorch itself is the oracle of test_model_train_parity, on the trainer's path with the default
 * hyper-parameters, while this covers weight decay, a large eps, odd sizes and tails on every ISA. Each step
 * starts the reference from the kernel's float state of the previous step, so tolerances are per step: m, v
 * within 4 FLT_EPSILON of the magnitudes that enter them; param within 1 ulp plus 16 FLT_EPSILON of
 * step_size (|m| + those magnitudes) / denom. */
static void test_adam_matches_double_formula(void **state)
{
    (void)state;
    static const elbo_adam_hparams cases[] = {
        {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0},
        /* large eps and weight decay: where eps is added and the L2 term both show */
        {.lr = 1e-2, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-3, .weight_decay = 0.1},
    };
    const elbo_kernels *k;
    test_rng rng = {9};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t hi = 0; hi < COUNT(cases); hi++)
            for (size_t ni = 0; ni < COUNT(param_sizes); ni++) {
                const size_t n = param_sizes[ni];
                arena a = {0};
                float *p = take_floats(&a, n), *m = take_floats(&a, n), *v = take_floats(&a, n);
                float *grad = take_floats(&a, n), *p0 = take_floats(&a, n), *m0 = take_floats(&a, n);
                float *v0 = take_floats(&a, n);
                test_fill(&rng, p, n, -1.0, 1.0f);
                memset(m, 0, n * sizeof(float));
                memset(v, 0, n * sizeof(float));
                for (long step = 1; step <= 6; step++) {
                    elbo_adam_hparams h = cases[hi];
                    h.step = step;
                    for (size_t j = 0; j < n; j++)
                        grad[j] = make_grad(&rng, j);
                    memcpy(p0, p, n * sizeof(float));
                    memcpy(m0, m, n * sizeof(float));
                    memcpy(v0, v, n * sizeof(float));
                    k->adam(p, m, v, grad, 1, n, n, &h);
                    const double b1 = h.beta1, b2 = h.beta2, wd = h.weight_decay, lr = h.lr, eps = h.eps;
                    const double bc1 = 1.0 - pow(b1, (double)step), bc2 = 1.0 - pow(b2, (double)step);
                    const double step_size = lr / bc1;
                    for (size_t j = 0; j < n; j++) {
                        const double g = grad[j] + wd * p0[j], gmag = fabs(grad[j]) + fabs(wd * p0[j]);
                        const double mr = b1 * m0[j] + (1.0 - b1) * g;
                        const double vr = b2 * v0[j] + (1.0 - b2) * g * g;
                        const double denom = sqrt(vr) / sqrt(bc2) + eps;
                        const double pr = p0[j] - step_size * mr / denom;
                        const double m_mag = b1 * fabs(m0[j]) + (1.0 - b1) * gmag;
                        const double v_mag = b2 * v0[j] + (1.0 - b2) * gmag * gmag;
                        expect_near(k->isa, "adam m", (size_t)step, j, m[j], mr, 4.0 * EPS32 * m_mag);
                        expect_near(k->isa, "adam v", (size_t)step, j, v[j], vr, 4.0 * EPS32 * v_mag);
                        expect_near(k->isa, "adam param", (size_t)step, j, p[j], pr,
                                    EPS32 * fabs(pr) + 16.0 * EPS32 * step_size * (fabs(mr) + m_mag) / denom);
                    }
                }
                arena_free(&a);
            }
}

/* SGD over 4 steps (first_step on the first) vs torch.optim.SGD's update rule written out here in double
 * (PyTorch itself is the oracle of test_model_train_parity, for momentum 0.9 without dampening or Nesterov;
 * this covers those, weight decay and momentum 0), restarting the reference from the kernel's state each
 * step: buf within 4 FLT_EPSILON of its input magnitudes, param within 1 ulp plus 4 FLT_EPSILON of lr times
 * the magnitudes of its step. With momentum 0
 * the buffer is NaN and read-only: PyTorch keeps no buffer then, so it must be neither read nor
 * written; on the first step it must not be read either (it is NaN then too). */
static void test_sgd_matches_double_formula(void **state)
{
    (void)state;
    static const elbo_sgd_hparams cases[] = {
        {.lr = 0.1, .momentum = 0.9, .dampening = 0.0, .weight_decay = 0.0, .nesterov = 0},
        {.lr = 0.05, .momentum = 0.9, .dampening = 0.0, .weight_decay = 1e-2, .nesterov = 1},
        {.lr = 0.1, .momentum = 0.5, .dampening = 0.25, .weight_decay = 0.0, .nesterov = 0},
        {.lr = 0.2, .momentum = 0.0, .dampening = 0.0, .weight_decay = 1e-3, .nesterov = 0},
    };
    const elbo_kernels *k;
    test_rng rng = {10};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++)
        for (size_t hi = 0; hi < COUNT(cases); hi++)
            for (size_t ni = 0; ni < COUNT(param_sizes); ni++) {
                const elbo_sgd_hparams *h = &cases[hi];
                const size_t n = param_sizes[ni];
                const int with_buf = h->momentum != 0.0f;
                arena a = {0};
                float *p = take_floats(&a, n), *buf = take_floats(&a, n), *grad = take_floats(&a, n);
                float *p0 = take_floats(&a, n), *buf0 = take_floats(&a, n);
                test_fill(&rng, p, n, -1.0, 1.0f);
                if (!with_buf)
                    seal(&a, buf);
                for (long step = 1; step <= 4; step++) {
                    const int first = step == 1;
                    for (size_t j = 0; j < n; j++)
                        grad[j] = make_grad(&rng, j);
                    memcpy(p0, p, n * sizeof(float));
                    memcpy(buf0, buf, n * sizeof(float));
                    k->sgd(p, buf, grad, 1, n, n, h, first);
                    const double mom = h->momentum, damp = h->dampening, wd = h->weight_decay, lr = h->lr;
                    for (size_t j = 0; j < n; j++) {
                        const double g = grad[j] + wd * p0[j], gmag = fabs(grad[j]) + fabs(wd * p0[j]);
                        double step_ref = g, step_mag = gmag;
                        if (with_buf) {
                            const double br = first ? g : mom * buf0[j] + (1.0 - damp) * g;
                            const double bmag = first ? gmag : fabs(mom * buf0[j]) + (1.0 - damp) * gmag;
                            expect_near(k->isa, "sgd buf", (size_t)step, j, buf[j], br, 4.0 * EPS32 * bmag);
                            step_ref = h->nesterov ? g + mom * br : br;
                            step_mag = h->nesterov ? gmag + mom * (fabs(br) + bmag) : fabs(br) + bmag;
                        } else if (!isnan(buf[j])) {
                            test_failf("%s: sgd without momentum wrote buf[%zu]\n", k->isa, j);
                        }
                        const double pr = p0[j] - lr * step_ref;
                        expect_near(k->isa, "sgd param", (size_t)step, j, p[j], pr,
                                    EPS32 * fabs(pr) + 4.0 * EPS32 * lr * step_mag);
                    }
                }
                arena_free(&a);
            }
}

/* A rows x cols block with row stride ld updates each row exactly as a one-row call does (bitwise), and
 * leaves the gap between rows untouched: Adam and SGD with momentum, every ISA. */
static void test_optimizer_block_equals_rows(void **state)
{
    (void)state;
    const size_t rows = 5, cols = 37, ld = 53, n = rows * ld;
    const elbo_adam_hparams ah = {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01, .step = 3};
    const elbo_sgd_hparams sh = {.lr = 0.1, .momentum = 0.9, .nesterov = 1};
    const elbo_kernels *k;
    test_rng rng = {11};
    for (size_t t = 0; (k = elbo_kernels_available(t)); t++) {
        float *blk[4], *row[4];
        for (int i = 0; i < 4; i++) {
            blk[i] = malloc(n * sizeof(float));
            row[i] = malloc(n * sizeof(float));
            test_fill(&rng, blk[i], n, i == 2 ? 0.0f : -1.0f, 1.0f); /* v (index 2) must be >= 0 */
            memcpy(row[i], blk[i], n * sizeof(float));
        }
        k->adam(blk[0], blk[1], blk[2], blk[3], rows, cols, ld, &ah);
        for (size_t r = 0; r < rows; r++)
            k->adam(row[0] + r * ld, row[1] + r * ld, row[2] + r * ld, row[3] + r * ld, 1, cols, cols, &ah);
        k->sgd(blk[0], blk[1], blk[3], rows, cols, ld, &sh, 0);
        for (size_t r = 0; r < rows; r++)
            k->sgd(row[0] + r * ld, row[1] + r * ld, row[3] + r * ld, 1, cols, cols, &sh, 0);
        for (int i = 0; i < 4; i++) {
            if (memcmp(blk[i], row[i], n * sizeof(float)) != 0)
                test_failf("%s: optimizer block call differs from row calls (array %d)\n", k->isa, i);
            free(blk[i]);
            free(row[i]);
        }
    }
}

/* Names the ISAs under test, and checks every table has every elementwise entry. */
static void test_every_table_is_complete(void **state)
{
    (void)state;
    const elbo_kernels *k;
    size_t t = 0;
    for (; (k = elbo_kernels_available(t)); t++) {
        print_message("elementwise kernels under test: %s\n", k->isa);
        assert_non_null(k->reparam_forward);
        assert_non_null(k->reparam_backward);
        assert_non_null(k->sigmoid_mse);
        assert_non_null(k->sigmoid_bce);
        assert_non_null(k->bce_logits_const);
        assert_non_null(k->mse);
        assert_non_null(k->softmax_ce);
        assert_non_null(k->column_sum);
        assert_non_null(k->unit_from_u8);
        assert_non_null(k->adam);
        assert_non_null(k->sgd);
    }
    assert_true(t >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_table_is_complete),
        cmocka_unit_test(test_reparam_forward_matches_reference),
        cmocka_unit_test(test_reparam_forward_extremes),
        cmocka_unit_test(test_reparam_backward_matches_reference),
        cmocka_unit_test(test_reparam_rows_independent_of_split),
        cmocka_unit_test(test_sigmoid_losses_match_reference),
        cmocka_unit_test(test_sigmoid_losses_extremes),
        cmocka_unit_test(test_sigmoid_losses_variants_agree_bitwise),
#if defined(__x86_64__)
        cmocka_unit_test(test_sigmoid_losses_avx512_equal_avx2),
        cmocka_unit_test(test_sleef_avx512_equals_avx2_everywhere),
#endif
        cmocka_unit_test(test_column_sum_matches_reference),
        cmocka_unit_test(test_unit_from_u8_exact),
        cmocka_unit_test(test_adam_matches_double_formula),
        cmocka_unit_test(test_sgd_matches_double_formula),
        cmocka_unit_test(test_optimizer_block_equals_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
