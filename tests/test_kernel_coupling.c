/* The affine coupling kernels (coupling.h) of every ISA table this CPU runs against a double-precision reference, on
 * rows of 1, 7, 8, 9, 17 and 784 pixels (every partial block), with ordinary inputs and extreme ones (raw +-80 and
 * +-1e30, where tanh saturates; scale +-8, where exp(s) is 3e3 or 3e-4; h and g up to 1e4).
 *
 * Tolerance: each output within TOL = 2e-6 of the sum of the magnitudes of the terms that make it (|h e| + |t| for
 * the coupling, |g h e| + |w| for ds and so on), scaled by the factors after it: float inputs, 1-ulp tanh and exp and
 * an FMA or two leave < 5e-7 (d raw_s: 1 - th^2 in float is off by ~1e-7 absolute where tanh saturates, which its
 * magnitude allows for); a wrong derivative (1 - th instead of 1 - th^2), a dropped mask or a missing -w miss by
 * orders of magnitude. The inverse returns h within TOL of |h| + |t| e^-s. */
#include "test_util.h"

#include <math.h>
#include <string.h>

#include "kernels.h"

#define TOL 2e-6

/* One case's inputs: rows x d pixels. */
typedef struct {
    size_t rows, d;
    float *h, *raw, *scale, *keep, *g;
} coupling_case;

/* Fills a case with values in +-amp (raw), +-scale_amp (scale), +-value_amp (h, g); every other pixel kept. */
static coupling_case make_case(size_t rows, size_t d, float amp, float scale_amp, float value_amp, uint64_t seed)
{
    test_rng rng = {seed};
    coupling_case c = {rows, d, malloc(rows * d * 4), malloc(rows * 2 * d * 4), malloc(d * 4), malloc(d * 4),
                       malloc(rows * d * 4)};
    for (size_t i = 0; i < rows * d; i++) {
        c.h[i] = test_rng_uniform(&rng, -value_amp, value_amp);
        c.g[i] = test_rng_uniform(&rng, -value_amp, value_amp);
    }
    for (size_t i = 0; i < rows * 2 * d; i++)
        c.raw[i] = test_rng_uniform(&rng, -amp, amp);
    for (size_t j = 0; j < d; j++) {
        c.scale[j] = test_rng_uniform(&rng, -scale_amp, scale_amp);
        c.keep[j] = (float)((j + seed) % 2);
    }
    return c;
}

/* Frees a case. */
static void free_case(coupling_case *c)
{
    free(c->h);
    free(c->raw);
    free(c->scale);
    free(c->keep);
    free(c->g);
}

/* Fails unless |got - want| <= TOL * mag (mag the magnitude of the terms of want). */
static void check(const char *isa, const char *what, size_t r, size_t j, double got, double want, double mag)
{
    if (!(fabs(got - want) <= TOL * mag + 1e-30))
        test_failf("%s: %s at row %zu pixel %zu: %.9g, want %.9g (terms of magnitude %.3g)\n", isa, what, r, j, got,
                   want, mag);
}

/* Runs forward, inverse and backward of kernels k on c and checks them against double. */
static void check_case(const elbo_kernels *k, const coupling_case *c)
{
    size_t rows = c->rows, d = c->d;
    float *o = malloc(rows * d * 4), *back = malloc(rows * d * 4), *raw = malloc(rows * 2 * d * 4);
    float *g = malloc(rows * d * 4), *dsc = malloc(rows * d * 4);
    double *ld = malloc(rows * sizeof(double));
    const float w = 1.0f / 16;
    k->coupling_forward(c->h, c->raw, c->scale, c->keep, o, ld, rows, d);
    k->coupling_inverse(o, c->raw, c->scale, c->keep, back, rows, d);
    memcpy(raw, c->raw, rows * 2 * d * 4);
    memcpy(g, c->g, rows * d * 4);
    k->coupling_backward(c->h, raw, c->scale, c->keep, g, dsc, w, rows, d);
    for (size_t r = 0; r < rows; r++) {
        double sum = 0, mag = 0;
        for (size_t j = 0; j < d; j++) {
            size_t i = r * d + j;
            double h = c->h[i], rs = c->raw[r * 2 * d + j], t = c->raw[r * 2 * d + d + j], gi = c->g[i];
            double sc = c->scale[j];
            if (c->keep[j] != 0.0f) {
                check(k->isa, "forward (kept)", r, j, o[i], h, 0);
                check(k->isa, "inverse (kept)", r, j, back[i], h, 0);
                check(k->isa, "d raw_s (kept)", r, j, raw[r * 2 * d + j], 0, 0);
                check(k->isa, "d t (kept)", r, j, raw[r * 2 * d + d + j], 0, 0);
                check(k->isa, "d scale (kept)", r, j, dsc[i], 0, 0);
                check(k->isa, "d h (kept)", r, j, g[i], gi, 0);
                continue;
            }
            double th = tanh(rs), s = sc * th, e = exp(s), ds = gi * h * e - w;
            sum += s;
            mag += fabs(s);
            check(k->isa, "forward", r, j, o[i], h * e + t, fabs(h * e) + fabs(t));
            check(k->isa, "inverse", r, j, back[i], h, fabs(h) + fabs(t) / e + fabs(o[i]) / e);
            double dsmag = fabs(gi * h * e) + w;
            /* 1 - th^2 in float is off by ~1e-7 absolute where tanh saturates (as PyTorch's tanh backward) */
            check(k->isa, "d raw_s", r, j, raw[r * 2 * d + j], ds * sc * (1 - th * th),
                  dsmag * fabs(sc) * (1 - th * th + 0.05));
            check(k->isa, "d t", r, j, raw[r * 2 * d + d + j], gi, fabs(gi));
            check(k->isa, "d scale", r, j, dsc[i], ds * th, dsmag * fabs(th));
            check(k->isa, "d h", r, j, g[i], gi * e, fabs(gi * e) * (1 + fabs(s)));
        }
        check(k->isa, "log-determinant", r, d, ld[r], sum, mag);
    }
    free(o);
    free(back);
    free(raw);
    free(g);
    free(dsc);
    free(ld);
}

/* Every ISA table, every row length, ordinary and extreme inputs. */
static void test_coupling_kernels_match_double(void **state)
{
    (void)state;
    static const size_t widths[] = {1, 7, 8, 9, 17, 784};
    static const float amps[][3] = {{3, 1, 4}, {80, 8, 1e4f}, {1e30f, 2, 10}};
    for (size_t i = 0; elbo_kernels_available(i); i++) {
        const elbo_kernels *k = elbo_kernels_available(i);
        for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++)
            for (size_t a = 0; a < sizeof amps / sizeof amps[0]; a++) {
                coupling_case c = make_case(3, widths[w], amps[a][0], amps[a][1], amps[a][2], 7 * w + a + 1);
                check_case(k, &c);
                free_case(&c);
            }
        printf("  %-6s forward, inverse and backward within %g of their terms' magnitude (d 1..784, raw up to "
               "1e30, scale up to 8)\n", k->isa, TOL);
    }
}

int main(void)
{
    struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coupling_kernels_match_double),
    };
    test_apply_skip_filter(tests, sizeof tests / sizeof *tests);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
