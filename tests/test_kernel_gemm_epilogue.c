/* GEMM epilogue tests: every activation and derivative mask (gemm.h) on every ISA table this CPU runs, against a
 * double-precision reference; AVX-512 against AVX2 bit for bit; the ReLU spellings against each other; the linear
 * layer's SiLU forward (pre-activation saved) and data gradients.
 *
 * Tolerance per element, from the GEMM's own bound tol_v = (K + 4) 2^-24 (|alpha| sum |a b| + |beta c| + |bias|)
 * (test_kernel_gemm.c) on v = alpha acc + beta C + bias:
 *   forward  |act(v) - ref| <= L tol_v + 8 u |ref| + 1e-38    (L = act's Lipschitz bound: 1, max(1, |slope|), 1,
 *                                                              1/4, 1.1; 8 u = SLEEF's or libm's 1-2 ulp, the
 *                                                              sigmoid's division and SiLU's product)
 *   grad     |g d - ref| <= |d| tol_g + 16 u |g| (1 + saved^2) + 1e-38   (d = act'(x) from the saved value,
 *                                                              the second term bounds the rounding of d, e.g. of
 *                                                              1 - y y, and of g d)
 * with u = 2^-24; 1e-38 covers results that underflow into the denormals (sigmoid and SiLU far below zero).
 * NaN references must be met by NaN (NaN propagates as PyTorch propagates it), references beyond FLT_MAX by the
 * infinity of their sign. */
#include "test_util.h"

#include "gemm.h"
#include "kernels.h"
#include "linear.h"

#include <float.h>
#include <string.h>

#define SENTINEL 12345.0f
#define N_ACTS 6
#define U (1.0 / 16777216.0)

static const char *const ACT_NAME[N_ACTS] = {"none", "relu", "leaky_relu", "tanh", "sigmoid", "silu"};
/* Lipschitz bound of each activation (the largest |act'|). */
static const double LIPSCHITZ[N_ACTS] = {1.0, 1.0, 1.0, 1.0, 0.25, 1.1};

/* sigmoid in double, without overflow. */
static double sigmoid_d(double v)
{
    return v >= 0.0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
}

/* act(v) in double (gemm.h's definitions). */
static double act_d(double v, elbo_activation act, double slope)
{
    switch (act) {
    case ELBO_ACT_RELU:
        return v < 0.0 ? 0.0 : v;
    case ELBO_ACT_LEAKY_RELU:
        return v > 0.0 ? v : v * slope;
    case ELBO_ACT_TANH:
        return tanh(v);
    case ELBO_ACT_SIGMOID:
        return sigmoid_d(v);
    case ELBO_ACT_SILU:
        return isinf(v) && v < 0 ? NAN : v * sigmoid_d(v); /* -inf * 0, as PyTorch's x / (1 + exp(-x)) */
    default:
        return v;
    }
}

/* g times act'(x) from what the forward saved (gemm.h's definitions), in double. */
static double grad_d(double g, double saved, elbo_activation grad, double slope)
{
    switch (grad) {
    case ELBO_ACT_RELU:
        return saved > 0.0 ? g : 0.0;
    case ELBO_ACT_LEAKY_RELU:
        return saved > 0.0 ? g : g * slope;
    case ELBO_ACT_TANH:
        return g * (1.0 - saved * saved);
    case ELBO_ACT_SIGMOID:
        return g * (1.0 - saved) * saved;
    case ELBO_ACT_SILU: {
        double s = sigmoid_d(saved);
        return g * s * (1.0 + saved * (1.0 - s));
    }
    default:
        return g;
    }
}

/* The largest |act'| (the factor a gradient's error is scaled by). */
static double max_derivative(elbo_activation grad, double slope)
{
    return grad == ELBO_ACT_LEAKY_RELU ? fmax(1.0, fabs(slope)) : LIPSCHITZ[grad];
}

/* |x| where x is finite, else 0: the tolerance terms of an infinite or NaN value (whose results are exact). */
static double fin(double x)
{
    return isfinite(x) ? fabs(x) : 0.0;
}

/* 1 when got meets ref within tol (NaN and infinite references exactly). */
static int close_to(float got, double ref, double tol)
{
    if (isnan(ref))
        return isnan(got);
    if (fabs(ref) > FLT_MAX) /* overflows float: the float result is that infinity */
        return isinf(got) && (got > 0.0f) == (ref > 0.0);
    return fabs((double)got - ref) <= tol;
}

/* One epilogue case: shape, scalars, which epilogue parts, and whether the inputs hold special values. */
typedef struct {
    size_t m, n, k;
    float alpha, beta;
    int bias, preact, prepack, special;
    elbo_activation act, grad;
    float slope;
} epi_case;

/* Inputs and outputs of one case (C, the pre-activation and the saved values share the row stride ldc). */
typedef struct {
    size_t ldc, ld_a, ld_b;
    float *a, *b, *c0, *bias, *saved, *c, *pre;
} epi_data;

/* Values the special cases put in the bias or the saved values: the extremes the activations must survive. */
static const float SPECIAL[] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f, 100.0f, -100.0f, 88.0f, -88.0f, 20.0f,
                                -20.0f, 0.0f, -0.0f, 1e-30f, -1e-30f, 3.0f};
#define N_SPECIAL (sizeof SPECIAL / sizeof SPECIAL[0])

/* A value the forward of `grad` could have saved: y in (-1, 1) for tanh, (0, 1) for sigmoid, u in [-8, 8] for
 * SiLU, any sign for the ReLUs; one of SPECIAL instead for a special case, one element in three. */
static float saved_value(test_rng *rng, elbo_activation grad, int special)
{
    if (special && test_rng_below(rng, 3) == 0)
        return SPECIAL[test_rng_below(rng, N_SPECIAL)];
    float x = test_rng_uniform(rng, -4.0f, 4.0f);
    switch (grad) {
    case ELBO_ACT_TANH:
        return tanhf(x);
    case ELBO_ACT_SIGMOID:
        return 1.0f / (1.0f + expf(-x));
    case ELBO_ACT_SILU:
        return 2.0f * x;
    default:
        return x;
    }
}

/* Allocates and fills the inputs of a case (row-major A (M x K), B (K x N) with padded strides). */
static epi_data make_data(const epi_case *ec, test_rng *rng)
{
    epi_data d = {.ldc = ec->n + 3, .ld_a = ec->k + 1, .ld_b = ec->n + 2};
    size_t m = ec->m, n = ec->n, k = ec->k, c_len = (m + 1) * d.ldc;
    d.a = malloc(m * d.ld_a * sizeof(float));
    d.b = malloc(k * d.ld_b * sizeof(float));
    d.c0 = malloc(c_len * sizeof(float));
    d.c = malloc(c_len * sizeof(float));
    d.pre = malloc(c_len * sizeof(float));
    d.saved = malloc(c_len * sizeof(float));
    d.bias = malloc(n * sizeof(float));
    test_fill(rng, d.a, m * d.ld_a, -1.0f, 1.0f);
    test_fill(rng, d.b, k * d.ld_b, -1.0f, 1.0f);
    for (size_t j = 0; j < n; j++)
        d.bias[j] = ec->special && test_rng_below(rng, 2) ? SPECIAL[test_rng_below(rng, N_SPECIAL)]
                                                          : test_rng_uniform(rng, -2.0f, 2.0f);
    for (size_t i = 0; i < c_len; i++) {
        d.c0[i] = ec->beta == 0.0f ? NAN : test_rng_uniform(rng, -1.0f, 1.0f); /* beta 0 never reads C */
        d.saved[i] = saved_value(rng, ec->grad, ec->special);
    }
    for (size_t i = 0; i < m; i++)
        for (size_t j = n; j < d.ldc; j++)
            d.c0[i * d.ldc + j] = SENTINEL;
    for (size_t j = 0; j < d.ldc; j++)
        d.c0[m * d.ldc + j] = SENTINEL;
    return d;
}

/* Frees a case's data. */
static void free_data(epi_data *d)
{
    free(d->a), free(d->b), free(d->c0), free(d->c), free(d->pre), free(d->saved), free(d->bias);
}

/* Runs a case on kern into d->c (and d->pre, first filled with SENTINEL), B packed or read by elbo_gemm. */
static void run_gemm(const elbo_kernels *kern, elbo_gemm_workspace *ws, const epi_case *ec, epi_data *d)
{
    size_t c_len = (ec->m + 1) * d->ldc;
    memcpy(d->c, d->c0, c_len * sizeof(float));
    for (size_t i = 0; i < c_len; i++)
        d->pre[i] = SENTINEL;
    elbo_epilogue epi = {.bias = ec->bias ? d->bias : NULL, .act = ec->act, .slope = ec->slope,
                         .preact = ec->preact ? d->pre : NULL, .ld_preact = d->ldc, .grad = ec->grad,
                         .saved = ec->grad ? d->saved : NULL, .ld_saved = d->ldc};
    elbo_operand a = elbo_operand_f32(d->a, d->ld_a, ELBO_NOTRANS), b = elbo_operand_f32(d->b, d->ld_b, ELBO_NOTRANS);
    if (ec->prepack) {
        elbo_packed_b pb;
        assert_int_equal(elbo_packed_b_alloc(&pb, kern, ec->k, ec->n), 0);
        elbo_pack_b(&pb, b);
        elbo_gemm_packed(kern, ws, ec->m, ec->n, ec->k, ec->alpha, a, &pb, ec->beta, d->c, d->ldc, &epi);
        elbo_packed_b_free(&pb);
    } else {
        elbo_gemm(kern, ws, ec->m, ec->n, ec->k, ec->alpha, a, b, ec->beta, d->c, d->ldc, &epi);
    }
}

/* Checks d->c (and d->pre) of a case against the double reference, and that nothing outside was written. */
static void check_case(const char *isa, const epi_case *ec, const epi_data *d)
{
    for (size_t i = 0; i <= ec->m; i++) {
        for (size_t j = 0; j < d->ldc; j++) {
            size_t idx = i * d->ldc + j;
            if (i == ec->m || j >= ec->n) {
                if (d->c[idx] != SENTINEL || d->pre[idx] != SENTINEL)
                    test_failf("%s: element (%zu, %zu) outside C was written\n", isa, i, j);
                continue;
            }
            double v = 0.0, mag = 0.0;
            for (size_t p = 0; p < ec->k; p++) {
                double t = (double)d->a[i * d->ld_a + p] * d->b[p * d->ld_b + j];
                v += t;
                mag += fabs(t);
            }
            v *= ec->alpha;
            mag *= fabs(ec->alpha);
            if (ec->beta != 0.0f) {
                v += ec->beta * (double)d->c0[idx];
                mag += fabs(ec->beta * (double)d->c0[idx]);
            }
            if (ec->bias) {
                v += d->bias[j];
                mag += fabs((double)d->bias[j]);
            }
            double tol_v = (double)(ec->k + 4) * U * fin(mag) + 1e-30;
            if (ec->preact && !close_to(d->pre[idx], v, tol_v))
                test_failf("%s %s/%s m=%zu n=%zu k=%zu: pre-activation (%zu, %zu) = %.9g, expected %.9g\n", isa,
                           ACT_NAME[ec->act], ACT_NAME[ec->grad], ec->m, ec->n, ec->k, i, j, d->pre[idx], v);
            double y = act_d(v, ec->act, ec->slope);
            double tol = (ec->act == ELBO_ACT_LEAKY_RELU ? fmax(1.0, fabs(ec->slope)) : LIPSCHITZ[ec->act]) * tol_v +
                         8.0 * U * fin(y) + 1e-38;
            if (ec->grad) {
                double s = d->saved[idx];
                double ref = grad_d(y, s, ec->grad, ec->slope);
                tol = fin(grad_d(1.0, s, ec->grad, ec->slope)) * tol + 16.0 * U * fin(y) * (1.0 + fin(s) * fin(s)) + 1e-38;
                y = ref;
            }
            if (!close_to(d->c[idx], y, tol))
                test_failf("%s %s/%s m=%zu n=%zu k=%zu alpha=%g beta=%g bias=%d: C(%zu, %zu) = %.9g, expected "
                           "%.9g (tol %.3g; v = %.9g, saved %.9g)\n",
                           isa, ACT_NAME[ec->act], ACT_NAME[ec->grad], ec->m, ec->n, ec->k, ec->alpha, ec->beta,
                           ec->bias, i, j, d->c[idx], y, tol, v, d->saved[idx]);
        }
    }
}

/* Shapes: M, N not multiples of any MR / NR (4x8, 6x16, 12x8, 12x16, 12x32, 8x12), N < 8, K = 1, and the VAE's
 * narrow edges (N = 20, 40). */
static const size_t SHAPES[][3] = {{1, 1, 1},  {3, 5, 1},  {7, 9, 3},    {13, 17, 2}, {12, 32, 5},
                                   {25, 40, 16}, {6, 20, 7}, {5, 100, 33}, {37, 70, 64}, {2, 3, 200}};
#define N_SHAPES (sizeof SHAPES / sizeof SHAPES[0])

/* (alpha, beta) variants. */
static const float SCALARS[][2] = {{1.0f, 0.0f}, {0.5f, 0.0f}, {1.0f, 1.0f}, {-1.5f, 0.75f}, {0.0f, 0.5f}};
#define N_SCALARS (sizeof SCALARS / sizeof SCALARS[0])

/* The case of combination `t` of shape s for the given activation pair: scalars, bias, preact, prepacking and
 * the leaky slope vary with t. */
static epi_case make_case(size_t s, size_t t, elbo_activation act, elbo_activation grad, int special)
{
    return (epi_case){.m = SHAPES[s][0], .n = SHAPES[s][1], .k = SHAPES[s][2], .alpha = SCALARS[t % N_SCALARS][0],
                      .beta = SCALARS[t % N_SCALARS][1], .bias = t % 3 != 2, .preact = t % 2 == 0,
                      .prepack = t % 4 == 1, .special = special, .act = act, .grad = grad,
                      .slope = t % 2 ? 0.01f : -0.3f};
}

/* Runs every activation and mask (forward alone, mask alone, and each with the other's ReLU) on every shape
 * and ISA table, A packed and in place, with `special` inputs or not. */
static void run_all(int special)
{
    const elbo_kernels *kern;
    test_rng rng = {special ? 71u : 17u};
    for (size_t isa = 0; (kern = elbo_kernels_available(isa)); isa++) {
        elbo_gemm_workspace ws;
        assert_int_equal(elbo_gemm_workspace_init(&ws, kern), 0);
        for (int pair = 0; pair < 2 * N_ACTS; pair++) {
            elbo_activation act = pair < N_ACTS ? (elbo_activation)pair : ELBO_ACT_NONE;
            elbo_activation grad = pair < N_ACTS ? ELBO_ACT_NONE : (elbo_activation)(pair - N_ACTS);
            for (size_t s = 0; s < N_SHAPES; s++) {
                for (size_t t = 0; t < 2; t++) {
                    epi_case ec = make_case(s, s + t + (size_t)pair, act, grad, special);
                    epi_data d = make_data(&ec, &rng);
                    for (int policy = ELBO_PACK_A_ALWAYS; policy <= ELBO_PACK_A_NEVER; policy++) {
                        if (policy == ELBO_PACK_A_NEVER && !kern->gemm_ukernel_strided_a)
                            continue;
                        ws.pack_a = (elbo_pack_a_policy)policy;
                        run_gemm(kern, &ws, &ec, &d);
                        check_case(kern->isa, &ec, &d);
                    }
                    free_data(&d);
                }
            }
        }
        elbo_gemm_workspace_free(&ws);
    }
}

/* Every activation and derivative mask on every ISA, edge shapes and alpha/beta variants, against double. */
static void test_epilogue_matches_double_reference(void **state)
{
    (void)state;
    run_all(0);
}

/* As above with NaN, +-inf, large and signed-zero values in the bias (so in v) and in the saved values. */
static void test_epilogue_special_values(void **state)
{
    (void)state;
    run_all(1);
}

/* 1 when x and y hold the same bits (any NaN matching any NaN) at every one of n floats. */
static int same_bits(const float *x, const float *y, size_t n, size_t *where)
{
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&x[i], &y[i], sizeof(float)) != 0 && !(isnan(x[i]) && isnan(y[i]))) {
            *where = i;
            return 0;
        }
    }
    return 1;
}

#if defined(__x86_64__)
/* The AVX-512 table gives the AVX2 table's bits for every activation and mask (forward and mask together too),
 * C and the pre-activation, on every shape (12 x 32, 12 x 16 and 12 x 8 tiles, edges), special inputs included. */
static void test_epilogue_avx512_equals_avx2(void **state)
{
    (void)state;
    const elbo_kernels *k2 = elbo_kernels_by_name("avx2"), *k512 = elbo_kernels_by_name("avx512");
    if (!k2 || !k512)
        skip();
    static const size_t extra[][3] = {{128, 400, 78}, {24, 64, 9}, {30, 48, 1}};
    test_rng rng = {5};
    elbo_gemm_workspace w2, w512;
    assert_int_equal(elbo_gemm_workspace_init(&w2, k2), 0);
    assert_int_equal(elbo_gemm_workspace_init(&w512, k512), 0);
    for (int act = 0; act < N_ACTS; act++) {
        for (int grad = 0; grad < N_ACTS; grad++) {
            for (size_t s = 0; s < N_SHAPES + 3; s++) {
                epi_case ec = make_case(s < N_SHAPES ? s : 0, s + (size_t)(act + grad), (elbo_activation)act,
                                        (elbo_activation)grad, (s + (size_t)act) % 2);
                if (s >= N_SHAPES) {
                    ec.m = extra[s - N_SHAPES][0], ec.n = extra[s - N_SHAPES][1], ec.k = extra[s - N_SHAPES][2];
                }
                epi_data d = make_data(&ec, &rng);
                size_t len = (ec.m + 1) * d.ldc, where;
                float *c2 = malloc(len * sizeof(float)), *p2 = malloc(len * sizeof(float));
                for (int policy = ELBO_PACK_A_ALWAYS; policy <= ELBO_PACK_A_NEVER; policy++) {
                    w2.pack_a = w512.pack_a = (elbo_pack_a_policy)policy;
                    run_gemm(k2, &w2, &ec, &d);
                    memcpy(c2, d.c, len * sizeof(float));
                    memcpy(p2, d.pre, len * sizeof(float));
                    run_gemm(k512, &w512, &ec, &d);
                    if (!same_bits(d.c, c2, len, &where) || !same_bits(d.pre, p2, len, &where))
                        test_failf("%s/%s m=%zu n=%zu k=%zu: avx512 differs from avx2 at %zu: C %.9g vs %.9g, "
                                   "pre-activation %.9g vs %.9g\n",
                                   ACT_NAME[act], ACT_NAME[grad], ec.m, ec.n, ec.k, where, d.c[where], c2[where],
                                   d.pre[where], p2[where]);
                }
                free(c2), free(p2);
                free_data(&d);
            }
        }
    }
    elbo_gemm_workspace_free(&w2);
    elbo_gemm_workspace_free(&w512);
}
#endif

/* The ReLU path's bits: act RELU is max(v, 0) of the act NONE result and grad RELU is (saved > 0 ? it : 0), bit
 * for bit, and the shorthands relu / relu_mask give the same bits as act / grad RELU; every ISA. */
static void test_epilogue_relu_bits(void **state)
{
    (void)state;
    const elbo_kernels *kern;
    test_rng rng = {23};
    for (size_t isa = 0; (kern = elbo_kernels_available(isa)); isa++) {
        elbo_gemm_workspace ws;
        assert_int_equal(elbo_gemm_workspace_init(&ws, kern), 0);
        for (size_t s = 0; s < N_SHAPES; s++) {
            epi_case ec = make_case(s, s, ELBO_ACT_NONE, ELBO_ACT_RELU, 1);
            ec.preact = 0;
            epi_data d = make_data(&ec, &rng);
            size_t len = (ec.m + 1) * d.ldc, where;
            float *plain = malloc(len * sizeof(float)), *expect = malloc(len * sizeof(float));
            ec.grad = ELBO_ACT_NONE;
            run_gemm(kern, &ws, &ec, &d);
            memcpy(plain, d.c, len * sizeof(float));
            for (int mode = 0; mode < 4; mode++) {
                int fwd = mode & 1, shorthand = mode >> 1;
                for (size_t i = 0; i < len; i++) {
                    int inside = i / d.ldc < ec.m && i % d.ldc < ec.n;
                    float v = plain[i];
                    expect[i] = !inside ? v : fwd ? (v < 0.0f ? 0.0f : v) : (d.saved[i] > 0.0f ? v : 0.0f);
                }
                memcpy(d.c, d.c0, len * sizeof(float));
                elbo_epilogue epi = {.bias = ec.bias ? d.bias : NULL};
                if (fwd && shorthand)
                    epi.relu = 1;
                else if (fwd)
                    epi.act = ELBO_ACT_RELU;
                else if (shorthand)
                    epi.relu_mask = d.saved, epi.ld_mask = d.ldc;
                else
                    epi.grad = ELBO_ACT_RELU, epi.saved = d.saved, epi.ld_saved = d.ldc;
                elbo_operand a = elbo_operand_f32(d.a, d.ld_a, ELBO_NOTRANS);
                elbo_gemm(kern, &ws, ec.m, ec.n, ec.k, ec.alpha, a, elbo_operand_f32(d.b, d.ld_b, ELBO_NOTRANS),
                          ec.beta, d.c, d.ldc, &epi);
                if (!same_bits(d.c, expect, len, &where))
                    test_failf("%s relu %s%s m=%zu n=%zu k=%zu: element %zu = %.9g, expected %.9g\n", kern->isa,
                               fwd ? "forward" : "mask", shorthand ? " (shorthand)" : "", ec.m, ec.n, ec.k, where,
                               d.c[where], expect[where]);
            }
            free(plain), free(expect);
            free_data(&d);
        }
        elbo_gemm_workspace_free(&ws);
    }
}

#if defined(__x86_64__)
/* SLEEF's AVX-512 tanhf, which the AVX-512 epilogue calls, gives the AVX2 one's bits: every x in [0, 10] (1.09e9
 * patterns; above 9.01 tanh rounds to 1), every 61st pattern above (+inf and the top NaN included) and every 61st
 * negative one (SLEEF computes tanh of |x| and copies the sign). Skipped where the CPU lacks AVX-512. */
static void test_sleef_avx512_tanh_equals_avx2(void **state)
{
    (void)state;
    if (!elbo_kernels_by_name("avx512"))
        skip();
    assert_int_equal(elbo_sleef_avx512_tanh_mismatches(0u, 0x41200000u, 1), 0);
    assert_int_equal(elbo_sleef_avx512_tanh_mismatches(0x41200000u, 0x7fffffffu, 61), 0);
    assert_int_equal(elbo_sleef_avx512_tanh_mismatches(0x80000000u, 0xffffffffu, 61), 0);
}
#endif

/* Linear layers of (in, out) = (21, 37) with each activation on every ISA: the forward's y is act(u) and u is
 * x W^T + b (within the tolerances above); the data gradient of the next layer (37 -> 19) after it, from what
 * elbo_linear_saved picks (u for SiLU), is dy W times act'(x) (LeakyReLU with a slope of 0.2 set on the layer). */
static void test_linear_activations(void **state)
{
    (void)state;
    const size_t in = 21, hid = 37, out = 19, rows = 14;
    const elbo_kernels *kern;
    test_rng rng = {99};
    size_t n_params = hid * in + hid + out * hid + out;
    float *params = malloc(n_params * sizeof(float)), *x = malloc(rows * in * sizeof(float));
    float *y = malloc(rows * hid * sizeof(float)), *u = malloc(rows * hid * sizeof(float));
    float *dy = malloc(rows * out * sizeof(float)), *dx = malloc(rows * hid * sizeof(float));
    test_fill(&rng, params, n_params, -1.0f, 1.0f);
    test_fill(&rng, x, rows * in, -1.0f, 1.0f);
    test_fill(&rng, dy, rows * out, -1.0f, 1.0f);
    const size_t w1 = 0, b1 = hid * in, w2 = b1 + hid, b2 = w2 + out * hid;
    for (size_t isa = 0; (kern = elbo_kernels_available(isa)); isa++) {
        elbo_gemm_workspace ws;
        assert_int_equal(elbo_gemm_workspace_init(&ws, kern), 0);
        for (int act = 0; act < N_ACTS; act++) {
            elbo_linear l1, l2;
            assert_int_equal(elbo_linear_init(&l1, kern, in, hid, w1, b1, (elbo_activation)act, params, 0), 0);
            assert_int_equal(elbo_linear_init(&l2, kern, hid, out, w2, b2, ELBO_ACT_NONE, params, 1), 0);
            l1.slope = 0.2f;
            elbo_linear_pack(&l1, params);
            elbo_linear_pack(&l2, params);
            elbo_linear_forward_saving(&l1, &ws, y, u, elbo_operand_f32(x, in, ELBO_NOTRANS), rows, params);
            elbo_linear_data_grad_after(&l2, &ws, dx, dy, &l1, elbo_linear_saved(&l1, y, u), rows);
            for (size_t i = 0; i < rows; i++) {
                for (size_t j = 0; j < hid; j++) {
                    double v = params[b1 + j], mag = fabs(v), g = 0.0, gmag = 0.0;
                    for (size_t p = 0; p < in; p++) {
                        v += (double)x[i * in + p] * params[w1 + j * in + p];
                        mag += fabs((double)x[i * in + p] * params[w1 + j * in + p]);
                    }
                    for (size_t p = 0; p < out; p++) {
                        g += (double)dy[i * out + p] * params[w2 + p * hid + j];
                        gmag += fabs((double)dy[i * out + p] * params[w2 + p * hid + j]);
                    }
                    double tol_v = (in + 4) * U * mag, ref_y = act_d(v, (elbo_activation)act, 0.2);
                    double saved = act == ELBO_ACT_SILU ? u[i * hid + j] : y[i * hid + j];
                    double ref_dx = grad_d(g, saved, (elbo_activation)act, 0.2);
                    double tol_dx = max_derivative((elbo_activation)act, 0.2) * (out + 4) * U * gmag +
                                    16.0 * U * fabs(g) * (1.0 + saved * saved) + 1e-38;
                    if (!close_to(u[i * hid + j], v, tol_v) ||
                        !close_to(y[i * hid + j], ref_y, LIPSCHITZ[act] * tol_v + 8.0 * U * fabs(ref_y) + 1e-38) ||
                        !close_to(dx[i * hid + j], ref_dx, tol_dx))
                        test_failf("%s linear %s (%zu, %zu): u %.9g (%.9g), y %.9g (%.9g), dx %.9g (%.9g)\n",
                                   kern->isa, ACT_NAME[act], i, j, u[i * hid + j], v, y[i * hid + j], ref_y,
                                   dx[i * hid + j], ref_dx);
                }
            }
            elbo_linear_free(&l1);
            elbo_linear_free(&l2);
        }
        elbo_gemm_workspace_free(&ws);
    }
    free(params), free(x), free(y), free(u), free(dy), free(dx);
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epilogue_matches_double_reference),
        cmocka_unit_test(test_epilogue_special_values),
        cmocka_unit_test(test_epilogue_relu_bits),
#if defined(__x86_64__) /* x86 only: no test that always skips on arm64 */
        cmocka_unit_test(test_epilogue_avx512_equals_avx2),
        cmocka_unit_test(test_sleef_avx512_tanh_equals_avx2),
#endif
        cmocka_unit_test(test_linear_activations),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof tests[0]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
