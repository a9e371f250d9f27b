/* The affine coupling kernels (coupling.h) of every ISA table this CPU runs against a double-precision reference, on
 * rows of 1, 7, 8, 9, 17 and 392 transformed pixels (every partial block) inside rows of a longer stride whose
 * padding no kernel may write, with ordinary inputs and extreme ones (raw +-80 and +-1e30, where tanh saturates;
 * scale +-8, where exp(s) is 3e3 or 3e-4; h and g up to 1e4).
 *
 * Tolerance: each output within TOL = 2e-6 of the sum of the magnitudes of the terms that make it (|h e| + |t| for
 * the coupling, |g h e| + |w| for ds and so on), scaled by the factors after it: float inputs, 1-ulp tanh and exp and
 * an FMA or two leave < 5e-7 (d raw_s: 1 - th^2 in float is off by up to 1.2e-7 absolute where tanh saturates,
 * which its magnitude allows for); a wrong derivative (1 - th instead of 1 - th^2), a dropped mask or a missing -w miss by
 * orders of magnitude, and a row stride taken for n shows as a write into the padding. The inverse returns h within
 * TOL of |h| + |t| e^-s. The pair a training step uses where a table has it (the forward keeping tanh and exp for
 * the backward) gives the bits of the table's own forward and backward. */
#include "test_util.h"

#include <math.h>
#include <string.h>

#include "kernels.h"

#define TOL 2e-6

/* One case's inputs: rows of n transformed pixels, h and g with row stride ld = n + PAD (the padding a sentinel no
 * kernel may write). */
typedef struct {
    size_t rows, n, ld;
    float *h, *raw, *scale, *g;
} coupling_case;

#define PAD 3
#define SENTINEL -7.25f

/* Fills a case with values in +-amp (raw), +-scale_amp (scale), +-value_amp (h, g); the padding SENTINEL. */
static coupling_case make_case(size_t rows, size_t n, float amp, float scale_amp, float value_amp, uint64_t seed)
{
    test_rng rng = {seed};
    size_t ld = n + PAD;
    coupling_case c = {rows, n, ld, malloc(rows * ld * 4), malloc(rows * 2 * n * 4), malloc(n * 4),
                       malloc(rows * ld * 4)};
    for (size_t i = 0; i < rows * ld; i++) {
        int pad = i % ld >= n;
        c.h[i] = pad ? SENTINEL : test_rng_uniform(&rng, -value_amp, value_amp);
        c.g[i] = pad ? SENTINEL : test_rng_uniform(&rng, -value_amp, value_amp);
    }
    for (size_t i = 0; i < rows * 2 * n; i++)
        c.raw[i] = test_rng_uniform(&rng, -amp, amp);
    for (size_t j = 0; j < n; j++)
        c.scale[j] = test_rng_uniform(&rng, -scale_amp, scale_amp);
    return c;
}

/* Frees a case. */
static void free_case(coupling_case *c)
{
    free(c->h);
    free(c->raw);
    free(c->scale);
    free(c->g);
}

/* Fails unless |got - want| <= TOL * mag (mag the magnitude of the terms of want). */
static void check(const char *isa, const char *what, size_t r, size_t j, double got, double want, double mag)
{
    if (!(fabs(got - want) <= TOL * mag + 1e-30))
        test_failf("%s: %s at row %zu pixel %zu: %.9g, want %.9g (terms of magnitude %.3g)\n", isa, what, r, j, got,
                   want, mag);
}

/* Fails unless the padding of every row of m (rows, ld) still holds SENTINEL. */
static void check_padding(const char *isa, const char *what, const float *m, size_t rows, size_t n, size_t ld)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t j = n; j < ld; j++)
            if (m[r * ld + j] != SENTINEL)
                test_failf("%s: %s wrote %g past its %zu pixels at row %zu column %zu\n", isa, what, m[r * ld + j], n,
                           r, j);
}

/* Runs forward, inverse and backward of kernels k on c and checks them against double. */
static void check_case(const elbo_kernels *k, const coupling_case *c)
{
    size_t rows = c->rows, n = c->n, ld = c->ld;
    float *o = malloc(rows * ld * 4), *back = malloc(rows * ld * 4), *raw = malloc(rows * 2 * n * 4);
    float *g = malloc(rows * ld * 4), *dsc = malloc(rows * n * 4);
    double *ld_out = malloc(rows * sizeof(double));
    const float w = 1.0f / 16;
    for (size_t i = 0; i < rows * ld; i++)
        o[i] = back[i] = SENTINEL;
    k->coupling_forward(c->h, ld, c->raw, c->scale, o, ld, ld_out, rows, n);
    k->coupling_inverse(o, ld, c->raw, c->scale, back, ld, rows, n);
    for (size_t i = 0; i < rows * 2 * n; i++)
        raw[i] = c->raw[i];
    for (size_t i = 0; i < rows * ld; i++)
        g[i] = c->g[i];
    k->coupling_backward(c->h, ld, raw, c->scale, g, ld, dsc, w, rows, n);
    check_padding(k->isa, "forward", o, rows, n, ld);
    check_padding(k->isa, "inverse", back, rows, n, ld);
    check_padding(k->isa, "backward", g, rows, n, ld);
    for (size_t r = 0; r < rows; r++) {
        double sum = 0, mag = 0;
        for (size_t j = 0; j < n; j++) {
            size_t i = r * ld + j;
            double h = c->h[i], rs = c->raw[r * 2 * n + j], t = c->raw[r * 2 * n + n + j], gi = c->g[i];
            double sc = c->scale[j];
            double th = tanh(rs), s = sc * th, e = exp(s), ds = gi * h * e - w;
            sum += s;
            mag += fabs(s);
            check(k->isa, "forward", r, j, o[i], h * e + t, fabs(h * e) + fabs(t));
            check(k->isa, "inverse", r, j, back[i], h, fabs(h) + fabs(t) / e + fabs(o[i]) / e);
            double dsmag = fabs(gi * h * e) + w;
            /* 1 - th^2 in float is off by up to 1.2e-7 absolute where tanh saturates (th within 1 ulp, 6e-8, of 1,
             * doubled; as PyTorch's tanh backward): 0.1 of TOL */
            check(k->isa, "d raw_s", r, j, raw[r * 2 * n + j], ds * sc * (1 - th * th),
                  dsmag * fabs(sc) * (1 - th * th + 0.1));
            check(k->isa, "d t", r, j, raw[r * 2 * n + n + j], gi, fabs(gi));
            check(k->isa, "d scale", r, j, dsc[r * n + j], ds * th, dsmag * fabs(th));
            check(k->isa, "d h", r, j, g[i], gi * e, fabs(gi * e) * (1 + fabs(s)));
        }
        check(k->isa, "log-determinant", r, n, ld_out[r], sum, mag);
    }
    free(o);
    free(back);
    free(raw);
    free(g);
    free(dsc);
    free(ld_out);
}

/* Every ISA table, every row length, ordinary and extreme inputs. */
static void test_coupling_kernels_match_double(void **state)
{
    (void)state;
    static const size_t widths[] = {1, 7, 8, 9, 17, 392};
    static const float amps[][3] = {{3, 1, 4}, {80, 8, 1e4f}, {1e30f, 2, 10}};
    for (size_t i = 0; elbo_kernels_available(i); i++) {
        const elbo_kernels *k = elbo_kernels_available(i);
        for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++)
            for (size_t a = 0; a < sizeof amps / sizeof amps[0]; a++) {
                coupling_case c = make_case(3, widths[w], amps[a][0], amps[a][1], amps[a][2], 7 * w + a + 1);
                check_case(k, &c);
                free_case(&c);
            }
        printf("  %-6s forward, inverse and backward within %g of their terms' magnitude (1..392 pixels in "
               "rows of stride n + %d, raw up to 1e30, scale up to 8)\n", k->isa, TOL, PAD);
    }
}

/* Fails unless the n floats at got and want hold the same bits. */
static void check_same_bits(const char *isa, const char *what, const void *got, const void *want, size_t bytes,
                            size_t rows, size_t n)
{
    if (memcmp(got, want, bytes) != 0)
        test_failf("%s: %s of the saving forward and saved backward differ from the table's own (%zu rows of %zu)\n",
                   isa, what, rows, n);
}

/* The saving forward then the saved backward of kernels k on c, with e in the dscale buffer as the flow keeps it,
 * against the table's own forward and backward: every output bit for bit, the padding untouched. */
static void check_saving_pair(const elbo_kernels *k, const coupling_case *c)
{
    size_t rows = c->rows, n = c->n, ld = c->ld;
    float *o0 = malloc(rows * ld * 4), *o1 = malloc(rows * ld * 4), *raw0 = malloc(rows * 2 * n * 4);
    float *raw1 = malloc(rows * 2 * n * 4), *g0 = malloc(rows * ld * 4), *g1 = malloc(rows * ld * 4);
    float *dsc0 = malloc(rows * n * 4), *dsc1 = malloc(rows * n * 4);
    double *ld0 = malloc(rows * sizeof(double)), *ld1 = malloc(rows * sizeof(double));
    const float w = 1.0f / 16;
    for (size_t i = 0; i < rows * ld; i++) {
        o0[i] = o1[i] = SENTINEL;
        g0[i] = g1[i] = c->g[i];
    }
    memcpy(raw0, c->raw, rows * 2 * n * 4);
    memcpy(raw1, c->raw, rows * 2 * n * 4);
    k->coupling_forward(c->h, ld, raw0, c->scale, o0, ld, ld0, rows, n);
    k->coupling_backward(c->h, ld, raw0, c->scale, g0, ld, dsc0, w, rows, n);
    k->coupling_forward_saving(c->h, ld, raw1, c->scale, o1, ld, dsc1, ld1, rows, n);
    k->coupling_backward_saved(c->h, ld, raw1, c->scale, dsc1, g1, ld, dsc1, w, rows, n);
    check_padding(k->isa, "saving forward", o1, rows, n, ld);
    check_padding(k->isa, "saved backward", g1, rows, n, ld);
    check_same_bits(k->isa, "h'", o1, o0, rows * ld * 4, rows, n);
    check_same_bits(k->isa, "the log-determinants", ld1, ld0, rows * sizeof(double), rows, n);
    check_same_bits(k->isa, "d raw", raw1, raw0, rows * 2 * n * 4, rows, n);
    check_same_bits(k->isa, "d h", g1, g0, rows * ld * 4, rows, n);
    check_same_bits(k->isa, "d scale", dsc1, dsc0, rows * n * 4, rows, n);
    free(o0), free(o1), free(raw0), free(raw1), free(g0), free(g1), free(dsc0), free(dsc1), free(ld0), free(ld1);
}

/* Every table with the saving pair, every row length, ordinary and extreme inputs: the bits of its own forward and
 * backward (which test_coupling_kernels_match_double holds to double). */
static void test_coupling_saving_pair_same_bits(void **state)
{
    (void)state;
    static const size_t widths[] = {1, 7, 8, 9, 17, 392};
    static const float amps[][3] = {{3, 1, 4}, {80, 8, 1e4f}, {1e30f, 2, 10}};
    for (size_t i = 0; elbo_kernels_available(i); i++) {
        const elbo_kernels *k = elbo_kernels_available(i);
        if (!k->coupling_forward_saving || !k->coupling_backward_saved) {
            assert_true(!k->coupling_forward_saving && !k->coupling_backward_saved); /* both or neither */
            printf("  %-6s no saving pair (the flow recomputes tanh and exp)\n", k->isa);
            continue;
        }
        for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++)
            for (size_t a = 0; a < sizeof amps / sizeof amps[0]; a++) {
                coupling_case c = make_case(3, widths[w], amps[a][0], amps[a][1], amps[a][2], 11 * w + a + 1);
                check_saving_pair(k, &c);
                free_case(&c);
            }
        printf("  %-6s saving forward and saved backward: the bits of its forward and backward\n", k->isa);
    }
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coupling_kernels_match_double),
        cmocka_unit_test(test_coupling_saving_pair_same_bits),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof *tests);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
