/* GEMM tests: every variant x every ISA path this CPU runs x every epilogue, against a double-precision
 * triple loop, with two error bounds per case.
 *
 * Worst case, per element: |c - ref| <= (K + 4) u mag, u = 2^-24 (fp32 unit roundoff), where
 * mag = |alpha| sum_p |a_ip b_pj| + |beta c_ij| + |bias_j|: the classic gamma_K bound of a K-term float dot
 * product (each of the K accumulations rounds once with relative error <= u, each partial sum is at most mag in
 * size), plus 4 roundings for alpha, beta * C, the bias and the K-block additions to C. It grows with K.
 *
 * RMS, per case: sqrt(sum_ij e_ij^2) <= c sqrt(K + 4) u sqrt(sum_ij mag_ij^2), with c = RMS_C = 1. Derivation
 * (the random-walk model of rounding, Higham & Mary 2019): the computed sum is s_K + e with
 * e = sum_p delta_p s_p to first order, s_p the p-th partial sum and delta_p the p-th rounding's relative
 * error, |delta_p| <= u. Round-to-nearest errors are zero-mean and uncorrelated across the K steps, so
 * E[e^2] = sum_p E[delta_p^2] s_p^2 <= u^2 sum_p s_p^2 <= (K + 4) u^2 mag^2 (|s_p| <= mag, the same 4 extra
 * roundings); summed over the elements of C, E[sum e^2] <= (K + 4) u^2 sum mag^2, i.e. c = 1. The bound is loose
 * by sqrt(3) or more (delta uniform: E[delta^2] = u^2 / 3; same-sign products: sum_p s_p^2 ~ K mag^2 / 3; mixed
 * signs: far less), which covers the sampling noise of a C of 16 elements or more (the largest ratio over all
 * cases below, printed at the end, is 0.32). A kernel that rounds its result or its B to fp16 precision
 * (u' = 2^-11) makes, on these random mixed-sign operands (a, b uniform in [-1, 1]: rms(ab) = 1/3, E|ab| = 1/4),
 * e ~ u' sqrt(K) rms(ab) against mag ~ K E|ab|: an RMS ratio of about (4/3) 2^13 / K, above 1 for every K here
 * (K = 2049, B truncated to 11 bits: 3.6 measured). The worst-case bound (K + 4) u mag grows with K faster
 * than that error and lets it through once K is a few hundred (measured: K = 784, 1000 and 2049 pass it). */
#include "test_util.h"

#include "gemm.h"
#include "kernels.h"

#include <pthread.h>
#include <string.h>

#define SENTINEL 12345.0f

/* c of the RMS bound (header comment), and the fewest elements of C it is checked on: an expectation bound says
 * little about one element (that is the worst-case bound's job; K = 1: one element's error can be 2u mag,
 * 0.9 sqrt(K + 4) u mag), so it is checked on C of 16 elements or more. */
#define RMS_C 1.0
#define RMS_MIN_ELEMENTS 16

/* Largest RMS error ratio (RMS error / (sqrt(K + 4) u RMS magnitude)) over all cases, printed at the end: the
 * margin left under RMS_C. */
static double max_rms_ratio;

/* Records one case's RMS error ratio. */
static void note_rms_ratio(double r)
{
    if (r > max_rms_ratio)
        max_rms_ratio = r;
}

typedef struct {
    size_t m, n, k;
    elbo_trans ta, tb;
    elbo_dtype da, db;
    float alpha, beta;
    int bias, relu, mask, prepack;
    size_t pad_a, pad_b, pad_c;
} gemm_case;

/* One stored operand: data in f32 or u8, its shape as stored and its leading dimension. */
typedef struct {
    float *f;
    uint8_t *u;
    size_t rows, cols, ld;
    elbo_operand op;
} test_matrix;

/* Allocates and fills the stored matrix behind op(X) of shape (r x c) with random values. */
static test_matrix make_operand(test_rng *rng, size_t r, size_t c, elbo_trans t, elbo_dtype dt, size_t pad)
{
    test_matrix x = {0};
    x.rows = t == ELBO_NOTRANS ? r : c;
    x.cols = t == ELBO_NOTRANS ? c : r;
    x.ld = x.cols + pad;
    size_t n = x.rows * x.ld + 1;
    if (dt == ELBO_DTYPE_U8) {
        x.u = malloc(n);
        for (size_t i = 0; i < n; i++)
            x.u[i] = (uint8_t)test_rng_below(rng, 256);
        x.op = elbo_operand_u8(x.u, x.ld, t);
    } else {
        x.f = malloc(n * sizeof(float));
        test_fill(rng, x.f, n, -1.0f, 1.0f);
        x.op = elbo_operand_f32(x.f, x.ld, t);
    }
    return x;
}

/* Element (i, j) of op(X) as a double. */
static double op_elem(const test_matrix *x, size_t i, size_t j)
{
    size_t r = x->op.trans == ELBO_NOTRANS ? i : j, c = x->op.trans == ELBO_NOTRANS ? j : i;
    return x->u ? x->u[r * x->ld + c] / 255.0 : (double)x->f[r * x->ld + c];
}

/* Runs one case on one kernel table and checks every element of C and the untouched guard region. */
static void run_case(const elbo_kernels *kern, elbo_gemm_workspace *ws, const gemm_case *gc, test_rng *rng)
{
    size_t m = gc->m, n = gc->n, k = gc->k, ldc = n + gc->pad_c;
    test_matrix a = make_operand(rng, m, k, gc->ta, gc->da, gc->pad_a);
    test_matrix b = make_operand(rng, k, n, gc->tb, gc->db, gc->pad_b);
    size_t c_len = (m + 1) * ldc + 1;
    float *c = malloc(c_len * sizeof(float)), *c0 = malloc(c_len * sizeof(float));
    float *bias = malloc((n + 1) * sizeof(float)), *mask = malloc((m * ldc + 1) * sizeof(float));
    test_fill(rng, bias, n + 1, -0.5f, 0.5f);
    test_fill(rng, mask, m * ldc + 1, -1.0f, 1.0f);
    for (size_t i = 0; i < c_len; i++)
        c0[i] = SENTINEL;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            c0[i * ldc + j] = gc->beta == 0.0f ? NAN : test_rng_uniform(rng, -1.0f, 1.0f);
    memcpy(c, c0, c_len * sizeof(float));

    elbo_epilogue epi = {.bias = gc->bias ? bias : NULL, .relu = gc->relu, .relu_mask = gc->mask ? mask : NULL,
                         .ld_mask = ldc};
    if (gc->prepack) {
        elbo_packed_b pb;
        assert_int_equal(elbo_packed_b_alloc(&pb, kern, k, n), 0);
        elbo_pack_b(&pb, b.op);
        elbo_gemm_packed(kern, ws, m, n, k, gc->alpha, a.op, &pb, gc->beta, c, ldc, &epi);
        elbo_packed_b_free(&pb);
    } else {
        elbo_gemm(kern, ws, m, n, k, gc->alpha, a.op, b.op, gc->beta, c, ldc, &epi);
    }

    const double u = 1.0 / 16777216.0;
    double err2 = 0.0, mag2 = 0.0;
    int worst_fails = 0;
    for (size_t i = 0; i <= m; i++) {
        for (size_t j = 0; j < ldc; j++) {
            size_t idx = i * ldc + j;
            if (i == m || j >= n) {
                if (c[idx] != SENTINEL)
                    test_failf("%s m=%zu n=%zu k=%zu: C[%zu][%zu] outside the matrix was written\n", kern->isa,
                               m, n, k, i, j);
                continue;
            }
            double sum = 0.0, mag = 0.0;
            for (size_t p = 0; p < k; p++) {
                double t = op_elem(&a, i, p) * op_elem(&b, p, j);
                sum += t;
                mag += fabs(t);
            }
            double ref = gc->alpha * sum;
            mag = fabs(gc->alpha) * mag;
            if (gc->beta != 0.0f) {
                ref += gc->beta * (double)c0[idx];
                mag += fabs(gc->beta * (double)c0[idx]);
            }
            if (gc->bias) {
                ref += bias[j];
                mag += fabs(bias[j]);
            }
            int zeroed = (gc->relu && ref < 0.0) || (gc->mask && !(mask[idx] > 0.0f));
            if (zeroed)
                ref = 0.0;
            double tol = (double)(k + 4) * u * mag + 1e-30, err = fabs((double)c[idx] - ref);
            if (!(err <= tol) && worst_fails++ == 0)
                print_error("%s %c%c m=%zu n=%zu k=%zu alpha=%g beta=%g bias=%d relu=%d mask=%d prepack=%d "
                            "u8=%d/%d: C[%zu][%zu] = %.9g, expected %.9g (worst-case tol %.3g)\n",
                            kern->isa, gc->ta ? 'T' : 'N', gc->tb ? 'T' : 'N', m, n, k, gc->alpha, gc->beta,
                            gc->bias, gc->relu, gc->mask, gc->prepack, gc->da, gc->db, i, j, c[idx], ref, tol);
            if (!zeroed) { /* an element the epilogue zeroes has no rounding error to dilute the RMS with */
                err2 += err * err;
                mag2 += mag * mag;
            }
        }
    }
    /* The RMS bound of the header comment over the elements of this case's C the epilogue keeps (a NaN fails
     * it too). */
    double rms_ratio = sqrt(err2 / (mag2 + 1e-300)) / (sqrt((double)(k + 4)) * u);
    int rms_fails = 0;
    if (m * n >= RMS_MIN_ELEMENTS) {
        note_rms_ratio(rms_ratio);
        rms_fails = !(rms_ratio <= RMS_C);
    }
    if (rms_fails)
        print_error("%s %c%c m=%zu n=%zu k=%zu prepack=%d u8=%d/%d: RMS error %.3g = %.3g x sqrt(K + 4) u x RMS "
                    "magnitude, above the bound %g x (worst case: %s)\n",
                    kern->isa, gc->ta ? 'T' : 'N', gc->tb ? 'T' : 'N', m, n, k, gc->prepack, gc->da, gc->db,
                    sqrt(err2 / (double)(m * n > 0 ? m * n : 1)), rms_ratio, RMS_C,
                    worst_fails ? "fails too" : "passes");
    if (worst_fails)
        print_error("%s m=%zu n=%zu k=%zu: %d elements above the worst-case bound (RMS bound: %s)\n", kern->isa, m,
                    n, k, worst_fails, rms_fails ? "fails too" : "passes");
    if (worst_fails || rms_fails)
        fail();
    free(a.f), free(a.u), free(b.f), free(b.u), free(c), free(c0), free(bias), free(mask);
}

/* Runs a case on every kernel table this CPU runs, with A packed and (where the ISA can) read in place. */
static void run_case_all_isas(const gemm_case *gc, test_rng *rng)
{
    const elbo_kernels *kern;
    for (size_t i = 0; (kern = elbo_kernels_available(i)); i++) {
        elbo_gemm_workspace ws;
        assert_int_equal(elbo_gemm_workspace_init(&ws, kern), 0);
        int policies = kern->gemm_ukernel_strided_a ? ELBO_PACK_A_NEVER : ELBO_PACK_A_AUTO; /* else all pack */
        for (int policy = ELBO_PACK_A_AUTO; policy <= policies; policy++) {
            ws.pack_a = (elbo_pack_a_policy)policy;
            run_case(kern, &ws, gc, rng);
        }
        elbo_gemm_workspace_free(&ws);
    }
}

static const elbo_trans TRANS[4][2] = {{ELBO_NOTRANS, ELBO_NOTRANS}, {ELBO_NOTRANS, ELBO_TRANS},
                                       {ELBO_TRANS, ELBO_NOTRANS}, {ELBO_TRANS, ELBO_TRANS}};

/* Edge shapes (0, 1, primes, around MR/NR/KC multiples) x all four variants x all epilogues. */
static void test_gemm_edge_shapes(void **state)
{
    (void)state;
    static const size_t dims[][3] = {{0, 5, 7},  {5, 0, 7},   {5, 7, 0},    {1, 1, 1},   {1, 17, 3},
                                     {6, 16, 8}, {7, 17, 257}, {13, 31, 513}, {12, 24, 33}, {37, 41, 256},
                                     {5, 3, 2},  {8, 12, 300}, {25, 1, 19},  {2, 53, 11}};
    test_rng rng = {1};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int v = 0; v < 4; v++)
            for (int e = 0; e < 5; e++) {
                gemm_case gc = {.m = dims[d][0], .n = dims[d][1], .k = dims[d][2], .ta = TRANS[v][0],
                                .tb = TRANS[v][1], .alpha = 1.0f, .beta = (e & 1) ? 1.0f : 0.0f,
                                .bias = e >= 1, .relu = e >= 2 && e != 4, .mask = e == 4, .prepack = e == 3,
                                .pad_a = e, .pad_b = 2 * e + 1, .pad_c = 3};
                run_case_all_isas(&gc, &rng);
            }
}

/* Random shapes up to a few hundred, random ld padding, alpha/beta, dtypes, epilogues, prepacking. */
static void test_gemm_random_shapes(void **state)
{
    (void)state;
    test_rng rng = {2};
    static const float alphas[] = {1.0f, 0.5f, -1.25f}, betas[] = {0.0f, 1.0f, 0.75f};
    for (int t = 0; t < 60; t++) {
        gemm_case gc = {.m = 1 + test_rng_below(&rng, 150), .n = 1 + test_rng_below(&rng, 150),
                        .k = 1 + test_rng_below(&rng, 600), .ta = TRANS[t % 4][0], .tb = TRANS[t % 4][1],
                        .da = test_rng_below(&rng, 4) == 0 ? ELBO_DTYPE_U8 : ELBO_DTYPE_F32,
                        .db = test_rng_below(&rng, 4) == 0 ? ELBO_DTYPE_U8 : ELBO_DTYPE_F32,
                        .alpha = alphas[test_rng_below(&rng, 3)], .beta = betas[test_rng_below(&rng, 3)],
                        .bias = (int)test_rng_below(&rng, 2), .relu = (int)test_rng_below(&rng, 2),
                        .mask = (int)test_rng_below(&rng, 2), .prepack = (int)test_rng_below(&rng, 2),
                        .pad_a = test_rng_below(&rng, 5), .pad_b = test_rng_below(&rng, 5),
                        .pad_c = test_rng_below(&rng, 5)};
        run_case_all_isas(&gc, &rng);
    }
}

/* Large K (several KC blocks, with a ragged last block) and the VAE's layer shapes. */
static void test_gemm_large_k_and_vae_shapes(void **state)
{
    (void)state;
    test_rng rng = {3};
    static const size_t dims[][3] = {{9, 21, 2049}, {64, 400, 784}, {40, 400, 128}, {30, 20, 1000}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int v = 0; v < 3; v++) {
            gemm_case gc = {.m = dims[d][0], .n = dims[d][1], .k = dims[d][2], .ta = TRANS[v][0],
                            .tb = TRANS[v][1], .alpha = 1.0f, .beta = 0.0f, .bias = v == 1, .relu = v == 1,
                            .mask = v == 0, .prepack = v != 2, .pad_c = 1};
            run_case_all_isas(&gc, &rng);
        }
    /* The input layer: uint8 pixels as A (forward, NT) and as B (weight gradient, TN). */
    gemm_case fwd = {.m = 19, .n = 40, .k = 784, .ta = ELBO_NOTRANS, .tb = ELBO_TRANS, .da = ELBO_DTYPE_U8,
                     .alpha = 1.0f, .bias = 1, .relu = 1, .prepack = 1};
    gemm_case wgrad = {.m = 40, .n = 784, .k = 19, .ta = ELBO_TRANS, .tb = ELBO_NOTRANS, .db = ELBO_DTYPE_U8,
                       .alpha = 1.0f, .beta = 1.0f};
    run_case_all_isas(&fwd, &rng);
    run_case_all_isas(&wgrad, &rng);
}

/* Fills an f32 matrix of n elements with a fixed pattern from a seed. */
static float *random_matrix(uint64_t seed, size_t n)
{
    test_rng rng = {seed};
    float *x = malloc((n ? n : 1) * sizeof(float));
    test_fill(&rng, x, n, -1.0f, 1.0f);
    return x;
}

/* Strips of 17..24 columns (a 16-column panel and part of the next: AVX-512's 16 + 8 tile, e.g. the VAE's
 * N = 20 weight gradient) alone and after 32-column strips, with row tails (1, 11, 12 + 1, 400), K = 1, one and
 * two K blocks, all four variants, beta, bias, ReLU or mask, prepacked B: against the double reference on every
 * table, A packed and in place. */
static void test_gemm_half_panel_strips(void **state)
{
    (void)state;
    static const size_t ns[] = {17, 20, 24, 56}, ms[] = {1, 11, 13, 400}, ks[] = {1, 128, 801};
    test_rng rng = {6};
    for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++)
        for (size_t im = 0; im < sizeof ms / sizeof ms[0]; im++)
            for (size_t ik = 0; ik < sizeof ks / sizeof ks[0]; ik++) {
                const size_t e = (in + im + ik) % 5, v = (in + 2 * im + ik) % 4;
                if (ms[im] == 400 && ks[ik] == 801 && v != 2)
                    continue; /* the largest case once, as a weight gradient */
                gemm_case gc = {.m = ms[im], .n = ns[in], .k = ks[ik], .ta = TRANS[v][0], .tb = TRANS[v][1],
                                .alpha = e == 2 ? 0.5f : 1.0f, .beta = (e & 1) ? 1.0f : 0.0f, .bias = e >= 1,
                                .relu = e == 2, .mask = e == 4, .prepack = e == 3, .pad_a = e, .pad_b = 1,
                                .pad_c = 2};
                run_case_all_isas(&gc, &rng);
            }
}

/* The AVX-512 table gives the AVX2 table's bits on the 17..24-column strips (the 16 + 8 tile against the AVX2
 * 12 x 16 and 12 x 8 tiles), the VAE's N = 20 weight gradient (TN, K = 32 .. 1024) and a forward (NT). */
static void test_gemm_half_panel_avx512_equals_avx2(void **state)
{
    (void)state;
    const elbo_kernels *k2 = elbo_kernels_by_name("avx2"), *k512 = elbo_kernels_by_name("avx512");
    if (!k2 || !k512)
        skip();
    static const size_t dims[][3] = {{400, 20, 32}, {400, 20, 128}, {400, 20, 1024}, {37, 23, 801}, {13, 52, 5}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int v = 1; v <= 2; v++) {
            const size_t m = dims[d][0], n = dims[d][1], k = dims[d][2];
            float *a = random_matrix(20 + d, m * k), *b = random_matrix(30 + d, k * n);
            float *c2 = malloc(m * n * sizeof(float)), *c512 = malloc(m * n * sizeof(float));
            elbo_operand oa = elbo_operand_f32(a, TRANS[v][0] ? m : k, TRANS[v][0]);
            elbo_operand ob = elbo_operand_f32(b, TRANS[v][1] ? k : n, TRANS[v][1]);
            for (int policy = ELBO_PACK_A_ALWAYS; policy <= ELBO_PACK_A_NEVER; policy++) {
                elbo_gemm_workspace w2, w512;
                assert_int_equal(elbo_gemm_workspace_init(&w2, k2), 0);
                assert_int_equal(elbo_gemm_workspace_init(&w512, k512), 0);
                w2.pack_a = w512.pack_a = (elbo_pack_a_policy)policy;
                elbo_gemm(k2, &w2, m, n, k, 1.0f, oa, ob, 0.0f, c2, n, NULL);
                elbo_gemm(k512, &w512, m, n, k, 1.0f, oa, ob, 0.0f, c512, n, NULL);
                if (memcmp(c2, c512, m * n * sizeof(float)) != 0)
                    test_failf("%c%c m=%zu n=%zu k=%zu pack_a=%d: avx512 differs from avx2\n", TRANS[v][0] ? 'T' : 'N',
                               TRANS[v][1] ? 'T' : 'N', m, n, k, policy);
                elbo_gemm_workspace_free(&w2);
                elbo_gemm_workspace_free(&w512);
            }
            free(a), free(b), free(c2), free(c512);
        }
}

/* C narrower than two panels under a transposed A (weight gradients: AVX-512 computes such a C as C^T, gemm.c):
 * widths 1..28 around the panel edges, rows from the threshold up with tails, K = 1, one and two K blocks, TN and
 * TT, alpha and beta (C read through the transposition), a padded C whose outside must stay untouched, A packed
 * and in place: against the double reference on every table. */
static void test_gemm_narrow_c_transposed(void **state)
{
    (void)state;
    static const size_t ns[] = {1, 5, 15, 17, 20, 28}, ms[] = {64, 67, 130, 400}, ks[] = {1, 32, 801};
    static const float alphas[] = {1.0f, -0.75f}, betas[] = {0.0f, 1.0f, 0.5f};
    test_rng rng = {7};
    for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++)
        for (size_t im = 0; im < sizeof ms / sizeof ms[0]; im++)
            for (size_t ik = 0; ik < sizeof ks / sizeof ks[0]; ik++) {
                const size_t t = in + im + ik;
                gemm_case gc = {.m = ms[im], .n = ns[in], .k = ks[ik], .ta = ELBO_TRANS,
                                .tb = t % 2 ? ELBO_TRANS : ELBO_NOTRANS, .alpha = alphas[t % 2], .beta = betas[t % 3],
                                .pad_a = t % 3 == 0 ? 0 : 5, .pad_b = t % 2, .pad_c = 3};
                run_case_all_isas(&gc, &rng);
            }
}

/* A narrow C under a transposed A has the bits of the tiles over C's own width (the transposed route, or AVX-512's
 * tile with C's rows on the lanes, is taken by default and not when A is always packed), and AVX-512 those of AVX2:
 * the VAE's N = 20 weight gradient, batches 32 .. 1024, a thread's share of its rows, beta 1 with a padded C; the
 * lanes tile's other widths (17 .. 24) with row tails, alpha and beta, B transposed, two K blocks. */
static void test_gemm_narrow_c_transposed_same_bits(void **state)
{
    (void)state;
    static const size_t dims[][3] = {{400, 20, 32}, {400, 20, 128}, {208, 20, 256}, {400, 20, 1024}, {99, 9, 801},
                                     {67, 17, 32},  {130, 24, 801}, {400, 21, 64},  {93, 23, 5}};
    static const float alphas[] = {1.0f, 1.0f, -0.75f}, betas[] = {0.0f, 1.0f, 0.5f};
    const elbo_kernels *k2 = elbo_kernels_by_name("avx2");
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        const size_t m = dims[d][0], n = dims[d][1], k = dims[d][2], ldc = n + 2 * (d % 2);
        const float alpha = d < 5 ? 1.0f : alphas[d % 3], beta = d < 5 ? (d % 2 ? 1.0f : 0.0f) : betas[d % 3];
        const elbo_trans tb = d >= 5 && d % 2 ? ELBO_TRANS : ELBO_NOTRANS;
        float *a = random_matrix(40 + d, m * k), *b = random_matrix(50 + d, k * n), *c0 = random_matrix(60 + d, m * ldc);
        float *ref = malloc(m * ldc * sizeof(float)), *c = malloc(m * ldc * sizeof(float));
        const elbo_operand oa = elbo_operand_f32(a, m, ELBO_TRANS), ob = elbo_operand_f32(b, tb ? k : n, tb);
        const elbo_kernels *kern;
        for (size_t i = 0; (kern = elbo_kernels_available(i)); i++) {
            elbo_gemm_workspace ws;
            assert_int_equal(elbo_gemm_workspace_init(&ws, kern), 0);
            ws.pack_a = ELBO_PACK_A_ALWAYS;
            memcpy(ref, c0, m * ldc * sizeof(float));
            elbo_gemm(kern, &ws, m, n, k, alpha, oa, ob, beta, ref, ldc, NULL);
            ws.pack_a = ELBO_PACK_A_AUTO;
            memcpy(c, c0, m * ldc * sizeof(float));
            elbo_gemm(kern, &ws, m, n, k, alpha, oa, ob, beta, c, ldc, NULL);
            if (memcmp(ref, c, m * ldc * sizeof(float)) != 0)
                test_failf("%s m=%zu n=%zu k=%zu alpha=%g beta=%g: C by default differs from C with A packed\n",
                           kern->isa, m, n, k, alpha, beta);
            if (k2 && strcmp(kern->isa, "avx512") == 0) {
                elbo_gemm_workspace w2;
                assert_int_equal(elbo_gemm_workspace_init(&w2, k2), 0);
                memcpy(ref, c0, m * ldc * sizeof(float));
                elbo_gemm(k2, &w2, m, n, k, alpha, oa, ob, beta, ref, ldc, NULL);
                if (memcmp(ref, c, m * ldc * sizeof(float)) != 0)
                    test_failf("m=%zu n=%zu k=%zu alpha=%g beta=%g: avx512 differs from avx2\n", m, n, k, alpha, beta);
                elbo_gemm_workspace_free(&w2);
            }
            elbo_gemm_workspace_free(&ws);
        }
        free(a), free(b), free(c0), free(ref), free(c);
    }
}

/* A row of C does not depend on which rows are computed with it, nor on prepacking: bitwise equal.
 * (This is what lets a batch be split across threads without changing results.) Widths cover full
 * 16-wide tiles, partial ones and the narrow edge kernel (N = 20, 40), whose row tiling differs. */
static void test_gemm_rows_independent_of_split(void **state)
{
    (void)state;
    static const size_t widths[] = {45, 20, 40};
    const size_t m = 131, k = 530;
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        const size_t n = widths[w];
        float *a = random_matrix(10, m * k), *b = random_matrix(11, n * k), *bias = random_matrix(12, n);
        float *full = malloc(m * n * sizeof(float)), *part = malloc(m * n * sizeof(float));
        const elbo_kernels *kern;
        for (size_t i = 0; (kern = elbo_kernels_available(i)); i++) {
            elbo_gemm_workspace ws;
            assert_int_equal(elbo_gemm_workspace_init(&ws, kern), 0);
            elbo_epilogue epi = {.bias = bias, .relu = 1};
            elbo_gemm(kern, &ws, m, n, k, 1.0f, elbo_operand_f32(a, k, ELBO_NOTRANS),
                      elbo_operand_f32(b, k, ELBO_TRANS), 0.0f, full, n, &epi);
            elbo_packed_b pb;
            assert_int_equal(elbo_packed_b_alloc(&pb, kern, k, n), 0);
            elbo_pack_b(&pb, elbo_operand_f32(b, k, ELBO_TRANS));
            static const size_t cuts[] = {0, 1, 7, 50, 64, 100, 131};
            for (size_t s = 0; s + 1 < sizeof cuts / sizeof cuts[0]; s++) {
                size_t r0 = cuts[s], rows = cuts[s + 1] - cuts[s];
                elbo_gemm_packed(kern, &ws, rows, n, k, 1.0f, elbo_operand_f32(a + r0 * k, k, ELBO_NOTRANS),
                                 &pb, 0.0f, part + r0 * n, n, &epi);
            }
            if (memcmp(full, part, m * n * sizeof(float)) != 0)
                test_failf("%s n=%zu: rows computed in slices (prepacked B) differ from one full call\n",
                           kern->isa, n);
            /* Column slices (B's rows for NT, the matching bias): the same bits again. */
            static const size_t col_cuts[] = {0, 3, 11, 16, 19};
            for (size_t s = 0; s < sizeof col_cuts / sizeof col_cuts[0]; s++) {
                size_t j0 = col_cuts[s], j1 = s + 1 < sizeof col_cuts / sizeof col_cuts[0] ? col_cuts[s + 1] : n;
                elbo_epilogue e = {.bias = bias + j0, .relu = 1};
                elbo_gemm(kern, &ws, m, j1 - j0, k, 1.0f, elbo_operand_f32(a, k, ELBO_NOTRANS),
                          elbo_operand_f32(b + j0 * k, k, ELBO_TRANS), 0.0f, part + j0, n, &e);
            }
            if (memcmp(full, part, m * n * sizeof(float)) != 0)
                test_failf("%s n=%zu: columns computed in slices differ from one full call\n", kern->isa, n);
            elbo_packed_b_free(&pb);
            elbo_gemm_workspace_free(&ws);
        }
        free(a), free(b), free(bias), free(full), free(part);
    }
}

typedef struct {
    const elbo_kernels *kern;
    const float *a, *b;
    float *c;
    size_t m, n, k;
} thread_job;

/* Runs one GEMM with a workspace of its own (the re-entrancy contract). */
static void *gemm_thread(void *arg)
{
    thread_job *j = arg;
    elbo_gemm_workspace ws;
    if (elbo_gemm_workspace_init(&ws, j->kern) != 0)
        return NULL;
    for (int rep = 0; rep < 3; rep++)
        elbo_gemm(j->kern, &ws, j->m, j->n, j->k, 1.0f, elbo_operand_f32(j->a, j->k, ELBO_NOTRANS),
                  elbo_operand_f32(j->b, j->n, ELBO_NOTRANS), 0.0f, j->c, j->n, NULL);
    elbo_gemm_workspace_free(&ws);
    return NULL;
}

/* Four threads calling GEMM at once each get the same bits as a lone call. */
static void test_gemm_reentrant_across_threads(void **state)
{
    (void)state;
    enum { THREADS = 4 };
    const size_t m = 70, n = 90, k = 300;
    float *a = random_matrix(20, m * k), *b = random_matrix(21, k * n), *ref = malloc(m * n * sizeof(float));
    const elbo_kernels *kern;
    for (size_t i = 0; (kern = elbo_kernels_available(i)); i++) {
        thread_job solo = {kern, a, b, ref, m, n, k};
        gemm_thread(&solo);
        pthread_t th[THREADS];
        thread_job jobs[THREADS];
        for (int t = 0; t < THREADS; t++) {
            jobs[t] = (thread_job){kern, a, b, malloc(m * n * sizeof(float)), m, n, k};
            assert_int_equal(pthread_create(&th[t], NULL, gemm_thread, &jobs[t]), 0);
        }
        for (int t = 0; t < THREADS; t++) {
            pthread_join(th[t], NULL);
            if (memcmp(jobs[t].c, ref, m * n * sizeof(float)) != 0)
                test_failf("%s: thread %d result differs from a lone call\n", kern->isa, t);
            free(jobs[t].c);
        }
    }
    free(a), free(b), free(ref);
}

/* A view of row-major B read in place gives the bits of the same B packed, with and without an epilogue,
 * with A read in place or packed (B is then packed from the view), for K in one and in several blocks; packing
 * a view changes nothing; shapes and tables that cannot read B in place are refused. */
static void test_gemm_b_view_equals_packed(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{64, 400, 784}, {7, 32, 5}, {13, 48, 1000}, {1, 16, 1}, {30, 784, 40}};
    const elbo_kernels *kern;
    for (size_t i = 0; (kern = elbo_kernels_available(i)); i++) {
        elbo_packed_b view;
        float one = 1.0f;
        if (!kern->gemm_ukernel_strided_a) {
            assert_int_equal(elbo_packed_b_view(&view, kern, 1, 16, &one, 16), -1);
            continue;
        }
        assert_int_equal(elbo_packed_b_view(&view, kern, 1, 20, &one, 20), -1); /* N not whole panels */
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            float *a = random_matrix(30 + s, m * k), *b = random_matrix(40 + s, k * n);
            float *mask = random_matrix(50 + s, m * n), *bias = random_matrix(60 + s, n);
            float *c_ref = malloc(m * n * sizeof(float)), *c_view = malloc(m * n * sizeof(float));
            elbo_packed_b packed;
            assert_int_equal(elbo_packed_b_alloc(&packed, kern, k, n), 0);
            elbo_pack_b(&packed, elbo_operand_f32(b, n, ELBO_NOTRANS));
            assert_int_equal(elbo_packed_b_view(&view, kern, k, n, b, n), 0);
            elbo_pack_b(&view, elbo_operand_f32(a, k, ELBO_NOTRANS)); /* a no-op on a view */
            assert_ptr_equal(view.data, b);
            elbo_gemm_workspace ws;
            assert_int_equal(elbo_gemm_workspace_init(&ws, kern), 0);
            for (int variant = 0; variant < 4; variant++) {
                ws.pack_a = variant & 1 ? ELBO_PACK_A_ALWAYS : ELBO_PACK_A_NEVER;
                elbo_epilogue epi = {.bias = bias, .relu_mask = mask, .ld_mask = n};
                const elbo_epilogue *e = variant & 2 ? &epi : NULL;
                elbo_operand op_a = elbo_operand_f32(a, k, ELBO_NOTRANS);
                elbo_gemm_packed(kern, &ws, m, n, k, 1.0f, op_a, &packed, 0.0f, c_ref, n, e);
                elbo_gemm_packed(kern, &ws, m, n, k, 1.0f, op_a, &view, 0.0f, c_view, n, e);
                if (memcmp(c_ref, c_view, m * n * sizeof(float)) != 0)
                    test_failf("%s: %zux%zux%zu (variant %d): B read in place differs from packed B\n", kern->isa,
                               m, n, k, variant);
            }
            elbo_gemm_workspace_free(&ws);
            elbo_packed_b_free(&view); /* frees nothing: b is freed below */
            elbo_packed_b_free(&packed);
            free(a), free(b), free(mask), free(bias), free(c_ref), free(c_view);
        }
    }
}

/* elbo_gemm gives the same bits whether it packs a row-major f32 B or reads it in place (ELBO_PACK_B_NEVER,
 * ALWAYS, and AUTO, which reads 400- and 784-float strides in place and packs 2048-float ones), with A packed
 * or read in place, with an epilogue, K in one and in several blocks. */
static void test_gemm_b_in_place_policy_same_bits(void **state)
{
    (void)state;
    static const size_t shapes[][4] = {{128, 400, 128, 400}, {61, 784, 1000, 784}, {40, 32, 300, 2048}, {9, 48, 7, 50}};
    const elbo_kernels *kern;
    for (size_t i = 0; (kern = elbo_kernels_available(i)); i++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2], ldb = shapes[s][3];
            float *a = random_matrix(110 + s, m * k), *b = random_matrix(120 + s, k * ldb);
            float *bias = random_matrix(130 + s, n), *ref = malloc(m * n * sizeof(float));
            float *c = malloc(m * n * sizeof(float));
            elbo_gemm_workspace ws;
            assert_int_equal(elbo_gemm_workspace_init(&ws, kern), 0);
            elbo_epilogue epi = {.bias = bias, .relu = 1};
            for (int variant = 0; variant < 6; variant++) {
                ws.pack_a = variant & 1 ? ELBO_PACK_A_ALWAYS : ELBO_PACK_A_NEVER;
                ws.pack_b = variant / 2 == 0 ? ELBO_PACK_B_ALWAYS : variant / 2 == 1 ? ELBO_PACK_B_NEVER : ELBO_PACK_B_AUTO;
                float *out = variant == 0 ? ref : c;
                elbo_gemm(kern, &ws, m, n, k, 1.0f, elbo_operand_f32(a, k, ELBO_NOTRANS),
                          elbo_operand_f32(b, ldb, ELBO_NOTRANS), 0.0f, out, n, &epi);
                if (variant > 0 && memcmp(ref, c, m * n * sizeof(float)) != 0)
                    test_failf("%s: %zux%zux%zu, ldb %zu (variant %d): B read in place differs from B packed\n",
                               kern->isa, m, n, k, ldb, variant);
            }
            elbo_gemm_workspace_free(&ws);
            free(a), free(b), free(bias), free(ref), free(c);
        }
    }
}

/* C computed a block of whole NR-column panels at a time (elbo_gemm_packed_cols) has the bits of one
 * elbo_gemm_packed call, for B packed from either orientation and for a view, K in one and in several blocks, a
 * partial last panel, with and without an epilogue; the columns outside a block are not written. */
static void test_gemm_column_blocks_equal_whole(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{128, 400, 784}, {128, 784, 400}, {64, 40, 400}, {9, 20, 1000}, {5, 50, 3}};
    const elbo_kernels *kern;
    for (size_t i = 0; (kern = elbo_kernels_available(i)); i++) {
        size_t nr = kern->blocking.nr;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2], panels = (n + nr - 1) / nr;
            float *a = random_matrix(70 + s, m * k), *b = random_matrix(80 + s, k * n);
            float *mask = random_matrix(90 + s, m * n), *bias = random_matrix(100 + s, n);
            float *whole = malloc(m * n * sizeof(float)), *blocks = malloc(m * n * sizeof(float));
            elbo_gemm_workspace ws;
            assert_int_equal(elbo_gemm_workspace_init(&ws, kern), 0);
            for (int layout = 0; layout < 3; layout++) {
                elbo_packed_b pb;
                if (layout == 2 && elbo_packed_b_view(&pb, kern, k, n, b, n) != 0)
                    continue;
                if (layout < 2) {
                    assert_int_equal(elbo_packed_b_alloc(&pb, kern, k, n), 0);
                    elbo_pack_b(&pb, layout == 0 ? elbo_operand_f32(b, n, ELBO_NOTRANS)
                                                 : elbo_operand_f32(b, k, ELBO_TRANS));
                }
                for (int with_epi = 0; with_epi < 2; with_epi++) {
                    elbo_epilogue epi = {.bias = bias, .relu = 1, .relu_mask = mask, .ld_mask = n};
                    const elbo_epilogue *e = with_epi ? &epi : NULL;
                    elbo_operand op_a = elbo_operand_f32(a, k, ELBO_NOTRANS);
                    elbo_gemm_packed(kern, &ws, m, n, k, 1.0f, op_a, &pb, 0.0f, whole, n, e);
                    for (size_t nblocks = 1; nblocks <= 3; nblocks++) {
                        for (size_t q = 0; q < m * n; q++)
                            blocks[q] = SENTINEL;
                        for (size_t blk = 0; blk < nblocks; blk++) {
                            size_t j0 = panels * blk / nblocks * nr, j1 = panels * (blk + 1) / nblocks * nr;
                            j1 = j1 < n ? j1 : n;
                            elbo_gemm_packed_cols(kern, &ws, m, j0, j1, k, 1.0f, op_a, &pb, 0.0f, blocks, n, e);
                            for (size_t r = 0; r < m; r++) /* nothing right of the block is written yet */
                                for (size_t j = j1; j < n; j++)
                                    if (blocks[r * n + j] != SENTINEL)
                                        test_failf("%s: %zux%zux%zu: block [%zu, %zu) wrote column %zu\n", kern->isa,
                                                   m, n, k, j0, j1, j);
                        }
                        if (memcmp(whole, blocks, m * n * sizeof(float)) != 0)
                            test_failf("%s: %zux%zux%zu (B layout %d, epilogue %d): %zu column blocks differ from "
                                       "one call\n", kern->isa, m, n, k, layout, with_epi, nblocks);
                    }
                }
                elbo_packed_b_free(&pb);
            }
            elbo_gemm_workspace_free(&ws);
            free(a), free(b), free(mask), free(bias), free(whole), free(blocks);
        }
    }
}

/* ELBO_ISA forces a path; an unknown name is refused. */
static void test_isa_override(void **state)
{
    (void)state;
    const elbo_kernels *kern;
    for (size_t i = 0; (kern = elbo_kernels_available(i)); i++) {
        setenv("ELBO_ISA", kern->isa, 1);
        const elbo_kernels *sel = elbo_kernels_select();
        assert_non_null(sel);
        assert_string_equal(sel->isa, kern->isa);
    }
    setenv("ELBO_ISA", "no-such-isa", 1);
    assert_null(elbo_kernels_select());
    unsetenv("ELBO_ISA");
    assert_non_null(elbo_kernels_select());
    assert_string_equal(elbo_kernels_available(0)->isa, "scalar");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_edge_shapes),
        cmocka_unit_test(test_gemm_random_shapes),
        cmocka_unit_test(test_gemm_large_k_and_vae_shapes),
        cmocka_unit_test(test_gemm_half_panel_strips),
        cmocka_unit_test(test_gemm_half_panel_avx512_equals_avx2),
        cmocka_unit_test(test_gemm_narrow_c_transposed),
        cmocka_unit_test(test_gemm_narrow_c_transposed_same_bits),
        cmocka_unit_test(test_gemm_rows_independent_of_split),
        cmocka_unit_test(test_gemm_reentrant_across_threads),
        cmocka_unit_test(test_gemm_b_view_equals_packed),
        cmocka_unit_test(test_gemm_column_blocks_equal_whole),
        cmocka_unit_test(test_gemm_b_in_place_policy_same_bits),
        cmocka_unit_test(test_isa_override),
    };
    int failed = cmocka_run_group_tests_name("kernel_gemm", tests, NULL, NULL);
    printf("kernel_gemm: largest RMS error ratio %.4f of sqrt(K + 4) u (bound %g)\n", max_rms_ratio, RMS_C);
    return failed;
}
