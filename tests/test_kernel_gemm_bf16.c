/* bf16 GEMM tests (gemm_bf16.h): every bf16 path this CPU runs against a double-precision product of the
 * bf16-rounded inputs, the scalar emulation against the AVX-512 instruction bit for bit, bitwise independence of
 * the row and column split, activations kept in bf16, the packers, and which tables run a bf16 GEMM.
 *
 * Bound, per element: |c - ref| <= F (K + 4) u mag + K 2^-126 |alpha|, u = 2^-24, with ref and
 * mag = |alpha| sum_p |a_ip b_pj| + |beta c_ij| + |bias_j| in double over the operands rounded to bf16 (bf16.h:
 * what the GEMM multiplies; a bf16 denormal given as a BF16 operand counts as zero, as the instructions read it).
 * The products of two bf16 (8-bit significands) are exact in fp32; what rounds is the fp32 accumulation:
 *   x86 (VDPBF16PS) and the scalar emulation: each pair step is two FMAs, acc + x1 y1 then + x0 y0, each rounded
 *     once (<= u times a partial sum, <= mag): K roundings over K products, F = 1, the fp32 GEMM's bound; a
 *     tiny partial sum flushed to zero adds < 2^-126 per step (the absolute term).
 *   arm64 (BFDOT without FEAT_EBF16): the two products are added and rounded, then added to acc and rounded,
 *     both rounding to odd (error < 1 ulp = 2u relative): two roundings per pair of <= 2u mag each, F = 2.
 * plus 4 roundings for alpha, beta C, the bias and the K-block additions, as in fp32. A kernel that skipped the
 * rounding of its inputs to bf16 would be off by about 2^-9 |a b| per product, far above this for every K here. */
#include "test_util.h"

#include "bf16.h"
#include "cpu_features.h"
#include "gemm_bf16.h"
#include "kernels.h"

#include <string.h>

#define SENTINEL 12345.0f

typedef struct {
    size_t m, n, k;
    elbo_trans ta, tb;
    elbo_dtype da, db;
    float alpha, beta;
    int bias, relu, mask, prepack;
    size_t pad_a, pad_b, pad_c;
} gemm_case;

/* One stored operand in F32, BF16 or U8. */
typedef struct {
    float *f;
    elbo_bf16 *h;
    uint8_t *u;
    size_t rows, cols, ld;
    elbo_operand op;
} test_matrix;

/* The value of stored element idx as the GEMM multiplies it: rounded to bf16, a bf16 denormal as zero. */
static double stored_value(const test_matrix *x, size_t idx)
{
    elbo_bf16 h = x->h ? x->h[idx] : x->u ? elbo_bf16_from_f32((float)x->u[idx] / 255.0f) : elbo_bf16_from_f32(x->f[idx]);
    if ((h & 0x7f80u) == 0)
        return 0.0;
    return (double)elbo_bf16_to_f32(h);
}

/* Allocates and fills the stored matrix behind op(X) (r x c) with values uniform in [-1, 1). */
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
    } else if (dt == ELBO_DTYPE_BF16) {
        x.h = malloc(n * sizeof(elbo_bf16));
        for (size_t i = 0; i < n; i++)
            x.h[i] = elbo_bf16_from_f32(test_rng_uniform(rng, -1.0f, 1.0f));
        x.op = elbo_operand_bf16(x.h, x.ld, t);
    } else {
        x.f = malloc(n * sizeof(float));
        test_fill(rng, x.f, n, -1.0f, 1.0f);
        x.op = elbo_operand_f32(x.f, x.ld, t);
    }
    return x;
}

/* Element (i, j) of op(X) as the GEMM multiplies it. */
static double op_elem(const test_matrix *x, size_t i, size_t j)
{
    size_t r = x->op.trans == ELBO_NOTRANS ? i : j, c = x->op.trans == ELBO_NOTRANS ? j : i;
    return stored_value(x, r * x->ld + c);
}

/* F of the header's bound for a table: 2 for arm64's BFDOT, 1 for the x86 instruction and its emulation. */
static double bound_factor(const elbo_kernels *kern)
{
    return strcmp(kern->isa, "neon") == 0 ? 2.0 : 1.0;
}

/* Largest error over all cases as a fraction of its bound, per table (printed at the end). */
static struct {
    const char *isa;
    double ratio;
} max_error[8];

/* Records one element's error as a fraction of its bound for table isa. */
static void note_error_ratio(const char *isa, double r)
{
    for (size_t i = 0; i < 8; i++)
        if (!max_error[i].isa || strcmp(max_error[i].isa, isa) == 0) {
            max_error[i].isa = isa;
            max_error[i].ratio = r > max_error[i].ratio ? r : max_error[i].ratio;
            return;
        }
}

/* Runs one case on one table and checks every element of C against the bound and the guard region. */
static void run_case(const elbo_kernels *kern, elbo_gemm_bf16_workspace *ws, const gemm_case *gc, test_rng *rng)
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
        elbo_packed_b_bf16 pb;
        assert_int_equal(elbo_packed_b_bf16_alloc(&pb, kern, k, n), 0);
        elbo_pack_b_bf16(&pb, b.op);
        elbo_gemm_bf16_packed(kern, ws, m, n, k, gc->alpha, a.op, &pb, gc->beta, c, ldc, &epi);
        elbo_packed_b_bf16_free(&pb);
    } else {
        elbo_gemm_bf16(kern, ws, m, n, k, gc->alpha, a.op, b.op, gc->beta, c, ldc, &epi);
    }
    const double u = 1.0 / 16777216.0, f = bound_factor(kern);
    int fails = 0;
    for (size_t i = 0; i <= m; i++)
        for (size_t j = 0; j < ldc; j++) {
            size_t idx = i * ldc + j;
            if (i == m || j >= n) {
                if (c[idx] != SENTINEL)
                    test_failf("%s m=%zu n=%zu k=%zu: C[%zu][%zu] outside the matrix was written\n", kern->isa, m,
                               n, k, i, j);
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
            if ((gc->relu && ref < 0.0) || (gc->mask && !(mask[idx] > 0.0f)))
                ref = 0.0;
            double tol = f * (double)(k + 4) * u * mag + (double)k * 0x1p-126 * fabs(gc->alpha) + 1e-30;
            double err = fabs((double)c[idx] - ref);
            if (err <= tol)
                note_error_ratio(kern->isa, err / tol);
            if (!(err <= tol) && fails++ == 0)
                print_error("%s %c%c m=%zu n=%zu k=%zu alpha=%g beta=%g bias=%d relu=%d mask=%d prepack=%d "
                            "dtypes=%d/%d: C[%zu][%zu] = %.9g, expected %.9g (tol %.3g)\n",
                            kern->isa, gc->ta ? 'T' : 'N', gc->tb ? 'T' : 'N', m, n, k, gc->alpha, gc->beta,
                            gc->bias, gc->relu, gc->mask, gc->prepack, gc->da, gc->db, i, j, c[idx], ref, tol);
        }
    if (fails)
        test_failf("%s m=%zu n=%zu k=%zu: %d elements above the bound\n", kern->isa, m, n, k, fails);
    free(a.f), free(a.h), free(a.u), free(b.f), free(b.h), free(b.u), free(c), free(c0), free(bias), free(mask);
}

/* The i-th table this CPU runs that has a bf16 GEMM (scalar first), or NULL past the end. */
static const elbo_kernels *bf16_table(size_t i)
{
    const elbo_kernels *k;
    for (size_t j = 0, seen = 0; (k = elbo_kernels_available(j)); j++)
        if (!elbo_gemm_bf16_missing(k) && seen++ == i)
            return k;
    return NULL;
}

/* Runs a case on every table with a bf16 GEMM. */
static void run_case_all_isas(const gemm_case *gc, test_rng *rng)
{
    const elbo_kernels *kern;
    for (size_t i = 0; (kern = bf16_table(i)); i++) {
        elbo_gemm_bf16_workspace ws;
        assert_int_equal(elbo_gemm_bf16_workspace_init(&ws, kern), 0);
        run_case(kern, &ws, gc, rng);
        elbo_gemm_bf16_workspace_free(&ws);
    }
}

static const elbo_trans TRANS[4][2] = {{ELBO_NOTRANS, ELBO_NOTRANS}, {ELBO_NOTRANS, ELBO_TRANS},
                                       {ELBO_TRANS, ELBO_NOTRANS}, {ELBO_TRANS, ELBO_TRANS}};

/* Edge shapes (0, 1, odd K, primes, around the tiles and the K blocks) x all four variants x five epilogues, the
 * operands in F32, BF16 and U8 by turns. */
static void test_bf16_gemm_edge_shapes(void **state)
{
    (void)state;
    static const size_t dims[][3] = {{0, 5, 7},   {5, 0, 7},    {5, 7, 0},    {1, 1, 1},    {1, 17, 3},
                                     {6, 16, 8},  {7, 17, 257}, {13, 31, 513}, {12, 32, 33}, {37, 41, 256},
                                     {5, 3, 2},   {8, 12, 301}, {25, 1, 19},  {2, 53, 11},  {13, 33, 801},
                                     {11, 47, 1001}};
    test_rng rng = {1};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int v = 0; v < 4; v++)
            for (int e = 0; e < 5; e++) {
                gemm_case gc = {.m = dims[d][0], .n = dims[d][1], .k = dims[d][2], .ta = TRANS[v][0],
                                .tb = TRANS[v][1], .da = (elbo_dtype)((d + e) % 3), .db = (elbo_dtype)((d + v) % 3),
                                .alpha = 1.0f, .beta = (e & 1) ? 1.0f : 0.0f, .bias = e >= 1,
                                .relu = e >= 2 && e != 4, .mask = e == 4, .prepack = e == 3, .pad_a = e,
                                .pad_b = 2 * e + 1, .pad_c = 3};
                run_case_all_isas(&gc, &rng);
            }
}

/* Random shapes up to a few hundred, ld padding, alpha/beta, dtypes, epilogues, prepacking. */
static void test_bf16_gemm_random_shapes(void **state)
{
    (void)state;
    test_rng rng = {2};
    static const float alphas[] = {1.0f, 0.5f, -1.25f}, betas[] = {0.0f, 1.0f, 0.75f};
    for (int t = 0; t < 40; t++) {
        gemm_case gc = {.m = 1 + test_rng_below(&rng, 150), .n = 1 + test_rng_below(&rng, 150),
                        .k = 1 + test_rng_below(&rng, 600), .ta = TRANS[t % 4][0], .tb = TRANS[t % 4][1],
                        .da = (elbo_dtype)test_rng_below(&rng, 3), .db = (elbo_dtype)test_rng_below(&rng, 3),
                        .alpha = alphas[test_rng_below(&rng, 3)], .beta = betas[test_rng_below(&rng, 3)],
                        .bias = (int)test_rng_below(&rng, 2), .relu = (int)test_rng_below(&rng, 2),
                        .mask = (int)test_rng_below(&rng, 2), .prepack = (int)test_rng_below(&rng, 2),
                        .pad_a = test_rng_below(&rng, 5), .pad_b = test_rng_below(&rng, 5),
                        .pad_c = test_rng_below(&rng, 5)};
        run_case_all_isas(&gc, &rng);
    }
}

/* Large K (several K blocks, a ragged and an odd one) and the VAE's layer shapes as training runs them (forward
 * NT with a bf16 weight, data gradient NN, weight gradient TN with an fp32 gradient, the u8 input layer). */
static void test_bf16_gemm_large_k_and_vae_shapes(void **state)
{
    (void)state;
    test_rng rng = {3};
    static const size_t dims[][3] = {{9, 21, 2049}, {64, 400, 784}, {40, 400, 128}, {30, 20, 1001}, {128, 40, 400}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int v = 0; v < 3; v++) {
            gemm_case gc = {.m = dims[d][0], .n = dims[d][1], .k = dims[d][2], .ta = TRANS[v][0],
                            .tb = TRANS[v][1], .da = v == 2 ? ELBO_DTYPE_F32 : ELBO_DTYPE_BF16,
                            .db = v == 1 ? ELBO_DTYPE_BF16 : ELBO_DTYPE_F32, .alpha = 1.0f, .beta = v == 2,
                            .bias = v == 1, .relu = v == 1, .mask = v == 0, .prepack = v != 2, .pad_c = 1};
            run_case_all_isas(&gc, &rng);
        }
    gemm_case fwd = {.m = 19, .n = 400, .k = 784, .ta = ELBO_NOTRANS, .tb = ELBO_TRANS, .da = ELBO_DTYPE_U8,
                     .db = ELBO_DTYPE_BF16, .alpha = 1.0f, .bias = 1, .relu = 1, .prepack = 1};
    gemm_case wgrad = {.m = 400, .n = 784, .k = 19, .ta = ELBO_TRANS, .tb = ELBO_NOTRANS, .db = ELBO_DTYPE_U8,
                       .alpha = 1.0f, .beta = 1.0f};
    run_case_all_isas(&fwd, &rng);
    run_case_all_isas(&wgrad, &rng);
}

/* A random fp32 of every class for a dot product of depth k: zero, fp32 denormal (rounds to zero), tiny normals
 * (products that flush, partial sums near 2^-126), values over 2^-20..2^20, both signs; and with probability
 * 1 / (8 k) each, huge values (products that overflow) and Inf or NaN, so that a row of A or a column of B
 * meets them about one time in four and most elements stay finite. */
static float edge_value(test_rng *rng, size_t k)
{
    uint64_t r = test_rng_next(rng);
    uint32_t sign = (uint32_t)(r >> 63) << 31, frac = (uint32_t)(r >> 8) & 0x7fffffu;
    if (test_rng_below(rng, 8 * k) == 0)
        return elbo_f32_from_bits(sign | (uint32_t)(200 + (r >> 32) % 54) << 23 | frac);
    if (test_rng_below(rng, 8 * k) == 0)
        return (r >> 40) % 4 ? elbo_f32_from_bits(sign | 0x7f800000u) : NAN;
    switch (r % 16) {
    case 0:
        return elbo_f32_from_bits(sign);
    case 1:
        return elbo_f32_from_bits(sign | frac);
    case 2:
    case 3:
        return elbo_f32_from_bits(sign | (uint32_t)(1 + (r >> 32) % 40) << 23 | frac);
    default:
        return elbo_f32_from_bits(sign | (uint32_t)(107 + (r >> 32) % 41) << 23 | frac);
    }
}

/* x[0 .. count): edge_value's classes (depth k) when edge, else uniform in [-1, 1]. */
static void fill_operand(test_rng *rng, float *x, size_t count, int edge, size_t k)
{
    if (!edge) {
        test_fill(rng, x, count, -1.0f, 1.0f);
        return;
    }
    for (size_t i = 0; i < count; i++)
        x[i] = edge_value(rng, k);
}

/* 1 when the two floats have the same bits or are both NaN. */
static int same_float(float x, float y)
{
    return elbo_f32_bits(x) == elbo_f32_bits(y) || (isnan(x) && isnan(y));
}

/* The scalar emulation gives the AVX-512 instruction's bits on every element: random and edge operands (every
 * class, bf16 denormals given directly, tiny partial sums that flush), all transposes, odd and multi-block K,
 * alpha, beta (incl. the FMA with beta 0.75), bias, ReLU, its mask, the pre-activation. */
static void test_bf16_scalar_emulation_equals_avx512(void **state)
{
    (void)state;
    const elbo_kernels *hw = elbo_kernels_by_name("avx512"), *emu = elbo_kernels_by_name("scalar");
    if (!hw || elbo_gemm_bf16_missing(hw)) {
        print_message("skipped: this CPU has no AVX512_BF16 (%s)\n", hw ? elbo_gemm_bf16_missing(hw) : "no avx512");
        skip();
    }
    static const size_t dims[][3] = {{1, 1, 1},     {3, 5, 7},    {13, 33, 64},  {12, 32, 801}, {29, 70, 2049},
                                     {64, 400, 784}, {25, 17, 129}, {7, 48, 1001}, {25, 40, 1602}};
    static const float alphas[] = {1.0f, 0.5f, -1.25f}, betas[] = {0.0f, 1.0f, 0.75f};
    test_rng rng = {4};
    elbo_gemm_bf16_workspace ws_hw, ws_emu;
    assert_int_equal(elbo_gemm_bf16_workspace_init(&ws_hw, hw), 0);
    assert_int_equal(elbo_gemm_bf16_workspace_init(&ws_emu, emu), 0);
    size_t cases = 0, nan_elems = 0, zero_elems = 0;
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int variant = 0; variant < 8; variant++) {
            const size_t m = dims[d][0], n = dims[d][1], k = dims[d][2];
            const elbo_trans ta = TRANS[variant % 4][0], tb = TRANS[variant % 4][1];
            const int edge = variant >= 4, bf16_a = variant & 1;
            float *af = malloc(m * k * sizeof(float)), *bf = malloc(k * n * sizeof(float));
            elbo_bf16 *ah = malloc(m * k * sizeof(elbo_bf16));
            float *bias = malloc(n * sizeof(float)), *mask = malloc(m * n * sizeof(float));
            float *c_hw = malloc(m * n * sizeof(float)), *c_emu = malloc(m * n * sizeof(float));
            float *pre_hw = malloc(m * n * sizeof(float)), *pre_emu = malloc(m * n * sizeof(float));
            for (size_t i = 0; i < m * k; i++) {
                af[i] = edge ? edge_value(&rng, k) : test_rng_uniform(&rng, -1.0f, 1.0f);
                /* bf16 A: the rounded values, with bf16 denormals now and then (the instruction reads them as 0) */
                ah[i] = edge && test_rng_below(&rng, 8) == 0 ? (elbo_bf16)(test_rng_next(&rng) & 0x807fu)
                                                             : elbo_bf16_from_f32(af[i]);
            }
            fill_operand(&rng, bf, k * n, edge, k);
            test_fill(&rng, bias, n, -0.5f, 0.5f);
            test_fill(&rng, mask, m * n, -1.0f, 1.0f);
            for (size_t i = 0; i < m * n; i++)
                c_hw[i] = c_emu[i] = test_rng_uniform(&rng, -1.0f, 1.0f);
            const float alpha = alphas[test_rng_below(&rng, 3)], beta = betas[test_rng_below(&rng, 3)];
            elbo_epilogue epi = {.bias = variant & 2 ? bias : NULL, .relu = variant % 3 == 0,
                                 .relu_mask = variant % 3 == 1 ? mask : NULL, .ld_mask = n};
            elbo_epilogue epi_hw = epi, epi_emu = epi;
            if (variant % 3 == 2)
                epi_hw.preact = pre_hw, epi_emu.preact = pre_emu, epi_hw.ld_preact = epi_emu.ld_preact = n;
            elbo_operand a = bf16_a ? elbo_operand_bf16(ah, ta == ELBO_NOTRANS ? k : m, ta)
                                    : elbo_operand_f32(af, ta == ELBO_NOTRANS ? k : m, ta);
            elbo_operand b = elbo_operand_f32(bf, tb == ELBO_NOTRANS ? n : k, tb);
            elbo_gemm_bf16(hw, &ws_hw, m, n, k, alpha, a, b, beta, c_hw, n, &epi_hw);
            elbo_gemm_bf16(emu, &ws_emu, m, n, k, alpha, a, b, beta, c_emu, n, &epi_emu);
            size_t bad = 0;
            for (size_t i = 0; i < m * n; i++) {
                nan_elems += isnan(c_hw[i]) != 0;
                zero_elems += c_hw[i] == 0.0f;
                if (!same_float(c_hw[i], c_emu[i]) || (epi_hw.preact && !same_float(pre_hw[i], pre_emu[i])))
                    if (bad++ < 3)
                        print_error("%zux%zux%zu %c%c variant %d: C[%zu] avx512 0x%08x, scalar emulation 0x%08x\n",
                                    m, n, k, ta ? 'T' : 'N', tb ? 'T' : 'N', variant, i, elbo_f32_bits(c_hw[i]),
                                    elbo_f32_bits(c_emu[i]));
            }
            if (bad)
                test_failf("%zux%zux%zu variant %d: %zu elements differ between the emulation and the instruction\n",
                           m, n, k, variant, bad);
            cases++;
            free(af), free(bf), free(ah), free(bias), free(mask), free(c_hw), free(c_emu), free(pre_hw), free(pre_emu);
        }
    print_message("%zu cases bit for bit (%zu NaN and %zu zero elements among them)\n", cases, nan_elems, zero_elems);
    elbo_gemm_bf16_workspace_free(&ws_hw);
    elbo_gemm_bf16_workspace_free(&ws_emu);
}

/* A narrow C under a transposed fp32 A without an epilogue (a weight gradient of a layer with few inputs, which
 * AVX-512 computes with C's rows on the lanes, rounding A as it reads it): the scalar emulation's bits and those of
 * the same table's packed tiles, at every width the lanes tile serves, with row tails, odd, multi-block and ragged K,
 * B f32 or bf16 and either layout, alpha and beta, random and edge operands. */
static void test_bf16_narrow_c_on_lanes_equals_emulation(void **state)
{
    (void)state;
    const elbo_kernels *hw = elbo_kernels_by_name("avx512"), *emu = elbo_kernels_by_name("scalar");
    if (!hw || elbo_gemm_bf16_missing(hw) || !hw->gemm_bf16_lanes) {
        print_message("skipped: this CPU has no AVX512_BF16 lanes tile\n");
        skip();
    }
    elbo_kernels packed_only = *hw; /* the same table without the lanes tile: its 12 x 32 tiles and packing */
    packed_only.gemm_bf16_lanes = NULL;
    static const size_t dims[][3] = {{400, 20, 32}, {400, 20, 1024}, {67, 17, 129}, {130, 24, 801},
                                     {93, 23, 5},   {64, 21, 1602},  {208, 20, 1}, {79, 18, 2049}};
    static const float alphas[] = {1.0f, 0.5f, -1.25f}, betas[] = {0.0f, 1.0f, 0.75f};
    test_rng rng = {12};
    elbo_gemm_bf16_workspace ws_hw, ws_emu;
    assert_int_equal(elbo_gemm_bf16_workspace_init(&ws_hw, hw), 0);
    assert_int_equal(elbo_gemm_bf16_workspace_init(&ws_emu, emu), 0);
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int variant = 0; variant < 4; variant++) {
            const size_t m = dims[d][0], n = dims[d][1], k = dims[d][2];
            const int edge = variant & 1, bf16_b = variant & 2;
            const elbo_trans tb = (d + (size_t)variant) % 3 == 0 ? ELBO_TRANS : ELBO_NOTRANS;
            float *af = malloc(m * k * sizeof(float)), *bf = malloc(k * n * sizeof(float));
            elbo_bf16 *bh = malloc(k * n * sizeof(elbo_bf16));
            float *c0 = malloc(m * n * sizeof(float)), *c_hw = malloc(m * n * sizeof(float));
            float *c_emu = malloc(m * n * sizeof(float)), *c_packed = malloc(m * n * sizeof(float));
            fill_operand(&rng, af, m * k, edge, k);
            fill_operand(&rng, bf, k * n, edge, k);
            for (size_t i = 0; i < k * n; i++)
                bh[i] = elbo_bf16_from_f32(bf[i]);
            test_fill(&rng, c0, m * n, -1.0f, 1.0f);
            const float alpha = alphas[test_rng_below(&rng, 3)], beta = betas[test_rng_below(&rng, 3)];
            const elbo_operand a = elbo_operand_f32(af, m, ELBO_TRANS);
            const size_t ldb = tb == ELBO_NOTRANS ? n : k;
            const elbo_operand b = bf16_b ? elbo_operand_bf16(bh, ldb, tb) : elbo_operand_f32(bf, ldb, tb);
            memcpy(c_hw, c0, m * n * sizeof(float));
            memcpy(c_emu, c0, m * n * sizeof(float));
            memcpy(c_packed, c0, m * n * sizeof(float));
            elbo_gemm_bf16(hw, &ws_hw, m, n, k, alpha, a, b, beta, c_hw, n, NULL);
            elbo_gemm_bf16(emu, &ws_emu, m, n, k, alpha, a, b, beta, c_emu, n, NULL);
            elbo_gemm_bf16(&packed_only, &ws_hw, m, n, k, alpha, a, b, beta, c_packed, n, NULL);
            size_t bad = 0;
            for (size_t i = 0; i < m * n; i++)
                if (!same_float(c_hw[i], c_emu[i]) || !same_float(c_hw[i], c_packed[i]))
                    if (bad++ < 3)
                        print_error("%zux%zux%zu variant %d: C[%zu] lanes 0x%08x, emulation 0x%08x, packed 0x%08x\n",
                                    m, n, k, variant, i, elbo_f32_bits(c_hw[i]), elbo_f32_bits(c_emu[i]),
                                    elbo_f32_bits(c_packed[i]));
            if (bad)
                test_failf("%zux%zux%zu variant %d: %zu elements of the lanes tile differ\n", m, n, k, variant, bad);
            free(af), free(bf), free(bh), free(c0), free(c_hw), free(c_emu), free(c_packed);
        }
    elbo_gemm_bf16_workspace_free(&ws_hw);
    elbo_gemm_bf16_workspace_free(&ws_emu);
}

#if defined(__x86_64__)
/* A random bf16 of every class for the lane test: zero, denormal, Inf, NaN, tiny, wide-range and near-1 normals. */
static uint16_t lane_bf16(test_rng *rng, int mode)
{
    uint64_t r = test_rng_next(rng);
    uint16_t sign = (uint16_t)((r >> 8 & 1) << 15), frac = (uint16_t)((r >> 16) & 0x7f);
    switch (r % 16) {
    case 0:
        return sign;
    case 1:
        return sign | frac;
    case 2:
        return sign | 0x7f80;
    case 3:
        return sign | 0x7f80 | (frac ? frac : 1);
    default: {
        unsigned e = mode == 1 ? 1 + (r >> 24) % 40 : mode == 2 ? 1 + (r >> 24) % 254 : 117 + (r >> 24) % 21;
        return sign | (uint16_t)(e << 7) | frac;
    }
    }
}

/* A random fp32 accumulator of every class (as lane_bf16, and just above the smallest normal). */
static uint32_t lane_acc(test_rng *rng, int mode)
{
    uint64_t r = test_rng_next(rng);
    uint32_t sign = (uint32_t)(r >> 8 & 1) << 31, frac = (uint32_t)(r >> 9) & 0x7fffffu;
    switch (r % 16) {
    case 0:
        return sign;
    case 1:
        return sign | frac;
    case 2:
        return sign | 0x7f800000u;
    case 3:
        return sign | 0x7f800000u | (frac ? frac : 1);
    case 4:
        return sign | 0x00800000u | (frac & 0xff);
    default: {
        unsigned e = mode == 1 ? 1 + (r >> 40) % 30 : mode == 2 ? 1 + (r >> 40) % 254 : 117 + (r >> 40) % 21;
        return sign | e << 23 | frac;
    }
    }
}

#endif

/* One VDPBF16PS lane, emulated, equals the instruction bit for bit (NaN payloads included) on 8 million random
 * lanes of every class and on the cases that pin the semantics: two roundings (not one), the odd product first,
 * denormal inputs and accumulator read as zero, tiny results flushed with tininess after rounding. */
static void test_bf16_lane_emulation_equals_instruction(void **state)
{
    (void)state;
#if defined(__x86_64__)
    const elbo_kernels *hw = elbo_kernels_by_name("avx512");
    if (!hw || elbo_gemm_bf16_missing(hw)) {
        print_message("skipped: this CPU has no AVX512_BF16\n");
        skip();
    }
    /* acc, x, y, and the documented result of each pinned case */
    static const uint32_t pinned[][4] = {
        {0x3f800000u, 0x39803980u, 0x39803980u, 0x3f800000u}, /* 1 + 2^-24 + 2^-24: two ties to even, not 1 + 2^-23 */
        {0x3f800000u, 0x39813980u, 0x39803980u, 0x3f800002u}, /* odd product first: 1 + 2^-24 (1 + 2^-7), then a tie */
        {0x3f800000u, 0x39803981u, 0x39803980u, 0x3f800001u}, /* even product first would give 1 + 2^-22 */
        {0x00000000u, 0x00000040u, 0x00007100u, 0x00000000u}, /* a bf16 denormal times 2^99 reads as zero */
        {0x00400000u, 0x00003f80u, 0x00000080u, 0x00800000u}, /* denormal acc reads as zero: 2^-126, not 1.5x */
        {0x00000000u, 0x00001f00u, 0x00001f00u, 0x00000000u}, /* 2^-130: flushed */
        {0x00000000u, 0x00009f00u, 0x00001f00u, 0x80000000u}, /* -2^-130: flushed to -0 */
        {0x00800000u, 0x00001f00u, 0x00001f00u, 0x00880000u}, /* 2^-126 + 2^-130: the product is not flushed first */
        {0x00800000u, 0x00009980u, 0x00001980u, 0x00800000u}, /* 2^-126 - 2^-152 rounds to 2^-126: kept (after rounding) */
        {0x00800000u, 0x00009a40u, 0x00001980u, 0x00000000u}, /* 2^-126 - 1.5 2^-151: tiny unbounded, flushed */
    };
    size_t bad = 0;
    for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++) {
        uint32_t acc = pinned[i][0];
        elbo_bf16_dot2_hw(&acc, &pinned[i][1], &pinned[i][2], 1);
        uint32_t emu = elbo_bf16_dot2_emulate(pinned[i][0], pinned[i][1], pinned[i][2]);
        if (acc != pinned[i][3] || emu != pinned[i][3])
            test_failf("pinned case %zu: instruction 0x%08x, emulation 0x%08x, documented 0x%08x\n", i, acc, emu,
                       pinned[i][3]);
    }
    enum { LANES = 1 << 16, ROUNDS = 128 };
    uint32_t *acc = malloc(LANES * sizeof *acc), *acc0 = malloc(LANES * sizeof *acc), *x = malloc(LANES * sizeof *x);
    uint32_t *y = malloc(LANES * sizeof *y);
    test_rng rng = {6};
    for (int round = 0; round < ROUNDS; round++) {
        const int mode = round % 3;
        for (size_t i = 0; i < LANES; i++) {
            acc[i] = acc0[i] = lane_acc(&rng, mode);
            x[i] = lane_bf16(&rng, mode) | (uint32_t)lane_bf16(&rng, mode) << 16;
            y[i] = lane_bf16(&rng, mode) | (uint32_t)lane_bf16(&rng, mode) << 16;
        }
        elbo_bf16_dot2_hw(acc, x, y, LANES);
        for (size_t i = 0; i < LANES; i++) {
            uint32_t e = elbo_bf16_dot2_emulate(acc0[i], x[i], y[i]);
            if (e != acc[i] && bad++ < 5)
                print_error("acc 0x%08x x 0x%08x y 0x%08x: instruction 0x%08x, emulation 0x%08x\n", acc0[i], x[i],
                            y[i], acc[i], e);
        }
    }
    if (bad)
        test_failf("%zu of %d lanes differ between the emulation and the instruction\n", bad, LANES * ROUNDS);
    free(acc), free(acc0), free(x), free(y);
#else
    print_message("skipped: no x86 bf16 instruction on this architecture\n");
    skip();
#endif
}

/* Rows computed in slices (a prepacked B) and columns in blocks of whole panels (elbo_gemm_bf16_packed_cols) give
 * the bits of one call, on every bf16 table: what lets threads split a batch or the columns. */
static void test_bf16_gemm_split_independent(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{131, 45, 530}, {131, 400, 784}, {64, 40, 1001}, {9, 20, 3}};
    const elbo_kernels *kern;
    for (size_t t = 0; (kern = bf16_table(t)); t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2], nr = kern->bf16_nr;
            test_rng rng = {10 + s};
            float *a = malloc(m * k * sizeof(float)), *b = malloc(n * k * sizeof(float)), *bias = malloc(n * sizeof(float));
            float *whole = malloc(m * n * sizeof(float)), *part = malloc(m * n * sizeof(float));
            test_fill(&rng, a, m * k, -1.0f, 1.0f);
            test_fill(&rng, b, n * k, -1.0f, 1.0f);
            test_fill(&rng, bias, n, -0.5f, 0.5f);
            elbo_gemm_bf16_workspace ws;
            assert_int_equal(elbo_gemm_bf16_workspace_init(&ws, kern), 0);
            elbo_packed_b_bf16 pb;
            assert_int_equal(elbo_packed_b_bf16_alloc(&pb, kern, k, n), 0);
            elbo_operand bop = elbo_operand_f32(b, k, ELBO_TRANS);
            elbo_pack_b_bf16_part(&pb, bop, 1, 2); /* packed in two parts, the second first */
            elbo_pack_b_bf16_part(&pb, bop, 0, 2);
            elbo_epilogue epi = {.bias = bias, .relu = 1};
            elbo_gemm_bf16(kern, &ws, m, n, k, 1.0f, elbo_operand_f32(a, k, ELBO_NOTRANS), bop, 0.0f, whole, n, &epi);
            static const size_t cuts[] = {0, 1, 7, 50, 64, 100, 131};
            for (size_t c = 0; c + 1 < sizeof cuts / sizeof cuts[0] && cuts[c] < m; c++) {
                size_t r0 = cuts[c], r1 = cuts[c + 1] < m ? cuts[c + 1] : m;
                elbo_gemm_bf16_packed(kern, &ws, r1 - r0, n, k, 1.0f, elbo_operand_f32(a + r0 * k, k, ELBO_NOTRANS),
                                      &pb, 0.0f, part + r0 * n, n, &epi);
                if (r1 == m)
                    break;
            }
            if (memcmp(whole, part, m * n * sizeof(float)) != 0)
                test_failf("%s %zux%zux%zu: rows in slices differ from one call\n", kern->isa, m, n, k);
            for (size_t nblocks = 2; nblocks <= 3; nblocks++) {
                size_t panels = (n + nr - 1) / nr;
                memset(part, 0, m * n * sizeof(float));
                for (size_t blk = nblocks; blk-- > 0;) {
                    size_t j0 = panels * blk / nblocks * nr, j1 = panels * (blk + 1) / nblocks * nr;
                    elbo_gemm_bf16_packed_cols(kern, &ws, m, j0, j1 < n ? j1 : n, k, 1.0f,
                                               elbo_operand_f32(a, k, ELBO_NOTRANS), &pb, 0.0f, part, n, &epi);
                }
                if (memcmp(whole, part, m * n * sizeof(float)) != 0)
                    test_failf("%s %zux%zux%zu: %zu column blocks differ from one call\n", kern->isa, m, n, k, nblocks);
            }
            elbo_packed_b_bf16_free(&pb);
            elbo_gemm_bf16_workspace_free(&ws);
            free(a), free(b), free(bias), free(whole), free(part);
        }
}

/* Activations kept in bf16 (the epilogue's out_bf16 and saved_bf16): each output element is the bf16 rounding of
 * what the same call writes to an fp32 C, bit for bit, for one call, a B packed beforehand and C split into column
 * blocks, and nothing past the row's columns is written; a mask read from bf16 saved values gives the bits of the
 * same values read as fp32. Depths up to one K block (elbo_gemm_bf16_one_block: 800 is one, 801 is not). */
static void test_bf16_gemm_bf16_activations(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{131, 400, 784}, {37, 45, 20}, {12, 32, 1}, {1, 1, 2}, {13, 33, 0}, {64, 40, 799}};
    static const elbo_activation acts[] = {ELBO_ACT_RELU, ELBO_ACT_LEAKY_RELU, ELBO_ACT_NONE};
    const elbo_kernels *kern;
    for (size_t t = 0; (kern = bf16_table(t)); t++) {
        assert_true(elbo_gemm_bf16_one_block(kern, 800) && !elbo_gemm_bf16_one_block(kern, 801));
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2], ld = n + 3, nr = kern->bf16_nr;
            test_rng rng = {40 + s};
            float *a = malloc((m * k + 1) * sizeof(float)), *b = malloc((n * k + 1) * sizeof(float));
            float *bias = malloc(n * sizeof(float)), *c = malloc(m * n * sizeof(float)), *c2 = malloc(m * n * sizeof(float));
            float *saved = malloc(m * n * sizeof(float));
            elbo_bf16 *out = malloc(m * ld * sizeof(elbo_bf16)), *saved16 = malloc(m * n * sizeof(elbo_bf16));
            test_fill(&rng, a, m * k, -1.0f, 1.0f);
            test_fill(&rng, b, n * k, -1.0f, 1.0f);
            test_fill(&rng, bias, n, -0.5f, 0.5f);
            test_fill(&rng, saved, m * n, -1.0f, 1.0f);
            for (size_t i = 0; i < m * n; i++) { /* zeros, negative zeros and bf16 denormals among the saved values */
                saved16[i] = i % 7 == 0 ? (elbo_bf16)(i % 3) : i % 11 == 0 ? 0x8000 : elbo_bf16_from_f32(saved[i]);
                saved[i] = elbo_bf16_to_f32(saved16[i]);
            }
            elbo_gemm_bf16_workspace ws;
            assert_int_equal(elbo_gemm_bf16_workspace_init(&ws, kern), 0);
            elbo_packed_b_bf16 pb;
            assert_int_equal(elbo_packed_b_bf16_alloc(&pb, kern, k, n), 0);
            const elbo_operand aop = elbo_operand_f32(a, k, ELBO_NOTRANS), bop = elbo_operand_f32(b, k, ELBO_TRANS);
            elbo_pack_b_bf16(&pb, bop);
            for (size_t e = 0; e < sizeof acts / sizeof acts[0]; e++) {
                elbo_epilogue epi = {.bias = bias, .act = acts[e], .slope = ELBO_LEAKY_RELU_SLOPE};
                elbo_gemm_bf16(kern, &ws, m, n, k, 1.0f, aop, bop, 0.0f, c, n, &epi);
                epi.out_bf16 = out;
                epi.ld_out_bf16 = ld;
                for (int how = 0; how < 3; how++) {
                    for (size_t i = 0; i < m * ld; i++)
                        out[i] = 0x7fc1; /* a NaN no output rounds to */
                    if (how == 0)
                        elbo_gemm_bf16(kern, &ws, m, n, k, 1.0f, aop, bop, 0.0f, NULL, n, &epi);
                    else if (how == 1)
                        elbo_gemm_bf16_packed(kern, &ws, m, n, k, 1.0f, aop, &pb, 0.0f, NULL, n, &epi);
                    else /* two column blocks, the second first */
                        for (size_t blk = 2; blk-- > 0;) {
                            size_t panels = (n + nr - 1) / nr, j0 = panels * blk / 2 * nr, j1 = panels * (blk + 1) / 2 * nr;
                            elbo_gemm_bf16_packed_cols(kern, &ws, m, j0, j1 < n ? j1 : n, k, 1.0f, aop, &pb, 0.0f, NULL,
                                                       n, &epi);
                        }
                    for (size_t i = 0; i < m; i++)
                        for (size_t j = 0; j < ld; j++) {
                            elbo_bf16 want = j < n ? elbo_bf16_from_f32(c[i * n + j]) : 0x7fc1;
                            if (out[i * ld + j] != want)
                                test_failf("%s %zux%zux%zu act %d call %d: out_bf16[%zu][%zu] = %04x, want %04x\n",
                                           kern->isa, m, n, k, (int)acts[e], how, i, j, out[i * ld + j], want);
                        }
                }
                if (acts[e] == ELBO_ACT_NONE)
                    continue;
                elbo_epilogue grad = {.grad = acts[e], .slope = ELBO_LEAKY_RELU_SLOPE, .saved = saved, .ld_saved = n};
                elbo_gemm_bf16_packed(kern, &ws, m, n, k, 1.0f, aop, &pb, 0.0f, c, n, &grad);
                grad.saved = NULL;
                grad.saved_bf16 = saved16;
                elbo_gemm_bf16_packed(kern, &ws, m, n, k, 1.0f, aop, &pb, 0.0f, c2, n, &grad);
                if (memcmp(c, c2, m * n * sizeof(float)) != 0)
                    test_failf("%s %zux%zux%zu grad %d: saved_bf16 differs from the same values as fp32\n", kern->isa,
                               m, n, k, (int)acts[e]);
            }
            elbo_packed_b_bf16_free(&pb);
            elbo_gemm_bf16_workspace_free(&ws);
            free(a), free(b), free(bias), free(c), free(c2), free(saved), free(out), free(saved16);
        }
    }
}

/* A B packed region by region (elbo_pack_b_bf16_region: depth ranges of even bounds, column ranges of whole panels,
 * in any order) equals it packed whole, word for word, for both orientations, K in one and in several blocks. */
static void test_bf16_pack_regions_equal_whole(void **state)
{
    (void)state;
    static const size_t shapes[][2] = {{784, 400}, {400, 784}, {1001, 40}, {7, 20}};
    const elbo_kernels *kern;
    for (size_t t = 0; (kern = bf16_table(t)); t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int trans = 0; trans < 2; trans++) {
                const size_t k = shapes[s][0], n = shapes[s][1], nr = kern->bf16_nr;
                test_rng rng = {40 + s};
                float *b = malloc(k * n * sizeof(float));
                test_fill(&rng, b, k * n, -1.0f, 1.0f);
                elbo_operand op = elbo_operand_f32(b, trans ? k : n, trans ? ELBO_TRANS : ELBO_NOTRANS);
                elbo_packed_b_bf16 whole, parts;
                assert_int_equal(elbo_packed_b_bf16_alloc(&whole, kern, k, n), 0);
                assert_int_equal(elbo_packed_b_bf16_alloc(&parts, kern, k, n), 0);
                const size_t words = elbo_packed_b_bf16_words(kern, k, n);
                memset(parts.data, 0xee, words * sizeof(uint32_t));
                elbo_pack_b_bf16(&whole, op);
                /* depth in 3 ranges (even cuts), columns in 2 ranges of whole panels, the last region first */
                const size_t kcut[] = {0, k / 3 / 2 * 2, 2 * k / 3 / 2 * 2, k};
                const size_t panels = (n + nr - 1) / nr, jcut[] = {0, panels / 2 * nr, n};
                for (int r = 5; r >= 0; r--)
                    elbo_pack_b_bf16_region(&parts, op, kcut[r / 2], kcut[r / 2 + 1], jcut[r % 2], jcut[r % 2 + 1]);
                if (memcmp(whole.data, parts.data, words * sizeof(uint32_t)) != 0)
                    test_failf("%s: %zux%zu B (trans %d) packed in regions differs from packed whole\n", kern->isa,
                               k, n, trans);
                elbo_packed_b_bf16_free(&whole);
                elbo_packed_b_bf16_free(&parts);
                free(b);
            }
}

/* Every table's packer writes the generic packer's words: F32, BF16 and U8 sources, both layouts, rows 1..33
 * against panel widths 4..32, odd and even depths, unaligned starts. */
static void test_bf16_pack_equals_generic(void **state)
{
    (void)state;
    enum { OUTER = 40, DEPTH = 70 };
    test_rng rng = {7};
    float f[OUTER * DEPTH];
    elbo_bf16 h[OUTER * DEPTH];
    uint8_t u[OUTER * DEPTH];
    for (size_t i = 0; i < OUTER * DEPTH; i++) {
        f[i] = edge_value(&rng, 4);
        h[i] = (elbo_bf16)test_rng_next(&rng);
        u[i] = (uint8_t)test_rng_next(&rng);
    }
    static const size_t widths[] = {4, 8, 12, 16, 32};
    uint32_t ref[32 * 36], got[32 * 36];
    const elbo_kernels *kern;
    for (size_t t = 0; (kern = elbo_kernels_available(t)); t++)
        for (int dt = 0; dt < 3; dt++)
            for (int dc = 0; dc < 2; dc++)
                for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++)
                    for (size_t rows = 1; rows <= widths[wi]; rows += 3)
                        for (size_t depth = 1; depth <= 67; depth += 11) {
                            /* depth_contiguous: stored OUTER x DEPTH (ld DEPTH); else DEPTH x OUTER (ld OUTER) */
                            size_t ld = dc ? DEPTH : OUTER;
                            elbo_operand x = dt == 0   ? elbo_operand_f32(f, ld, ELBO_NOTRANS)
                                             : dt == 1 ? elbo_operand_bf16(h, ld, ELBO_NOTRANS)
                                                       : elbo_operand_u8(u, ld, ELBO_NOTRANS);
                            size_t w = widths[wi], words = w * ((depth + 1) / 2);
                            memset(ref, 0xee, sizeof ref);
                            memset(got, 0xee, sizeof got);
                            elbo_pack_bf16_panel(ref, x, dc, 3, 1, rows, depth, w);
                            kern->pack_bf16(got, x, dc, 3, 1, rows, depth, w);
                            if (memcmp(ref, got, sizeof ref) != 0)
                                test_failf("%s: packing dtype %d, depth_contiguous %d, w %zu, rows %zu, depth %zu "
                                           "(%zu words) differs from the generic packer\n",
                                           kern->isa, dt, dc, w, rows, depth, words);
                        }
}

/* Which tables run the bf16 GEMM: the scalar emulation always; AVX2 never (no bf16 dot product), naming
 * avx512_bf16; AVX-512 exactly when the CPU has AVX512_BF16 and AVX-512BW; NEON when it has FEAT_BF16. */
static void test_bf16_dispatch(void **state)
{
    (void)state;
    const elbo_cpu_features *f = elbo_cpu_features_get();
    const elbo_kernels *k;
    for (size_t i = 0; (k = elbo_kernels_available(i)); i++) {
        const char *missing = elbo_gemm_bf16_missing(k);
        print_message("%s: bf16 GEMM %s%s\n", k->isa, missing ? "missing: " : k->gemm_bf16_ukernel_name,
                      missing ? missing : "");
        if (strcmp(k->isa, "scalar") == 0)
            assert_null(missing);
        else if (strcmp(k->isa, "avx2") == 0)
            assert_true(missing && strstr(missing, "avx512_bf16"));
        else if (strcmp(k->isa, "avx512") == 0)
            assert_true((missing == NULL) == (f->avx512bf16 && f->avx512bw && f->avx512vl));
        else if (strcmp(k->isa, "neon") == 0)
            assert_true((missing == NULL) == (f->arm_bf16 != 0));
        assert_non_null(k->f32_to_bf16);
    }
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_dispatch),
        cmocka_unit_test(test_bf16_pack_equals_generic),
        cmocka_unit_test(test_bf16_pack_regions_equal_whole),
        cmocka_unit_test(test_bf16_lane_emulation_equals_instruction),
        cmocka_unit_test(test_bf16_gemm_edge_shapes),
        cmocka_unit_test(test_bf16_gemm_random_shapes),
        cmocka_unit_test(test_bf16_gemm_large_k_and_vae_shapes),
        cmocka_unit_test(test_bf16_scalar_emulation_equals_avx512),
        cmocka_unit_test(test_bf16_narrow_c_on_lanes_equals_emulation),
        cmocka_unit_test(test_bf16_gemm_split_independent),
        cmocka_unit_test(test_bf16_gemm_bf16_activations),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof tests[0]);
    int failed = cmocka_run_group_tests_name("kernel_gemm_bf16", tests, NULL, NULL);
    for (size_t i = 0; i < 8 && max_error[i].isa; i++)
        printf("kernel_gemm_bf16: %s: largest error %.4f of its bound\n", max_error[i].isa, max_error[i].ratio);
    return failed;
}
