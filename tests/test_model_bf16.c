/* One bf16 training step's gradients against a double-precision reference of the same step computed from
 * bf16-rounded GEMM operands: the classifier (three linear layers: the forward, data-gradient and weight-gradient
 * GEMMs, the bias and ReLU epilogues, the ReLU masks, the softmax cross-entropy), on every kernel table this CPU runs
 * the bf16 GEMM on (AVX512_BF16, the scalar emulation; FEAT_BF16 on arm64).
 *
 * The reference rounds to bf16 (round to nearest even, bf16.h) exactly the operands elbo's bf16 GEMMs read: the
 * pixels x / 255, each weight matrix, each hidden activation and each output gradient, every one as the fp32 value
 * the step stores; it sums their products in double, keeps the biases, the epilogues, the bias gradients and the
 * loss unrounded, and stores every intermediate as fp32 like the step. What is left between the two: the fp32
 * accumulation of the GEMMs (K products, |error| <= K 2^-24 sum |a b|) and, through it, a stored activation that
 * lands on the other side of a bf16 rounding boundary (one bf16 ulp, 2^-8, on that one operand; rare). Bound: for
 * each gradient tensor, max |elbo - ref| <= 1e-4 of max |ref| (measured: 3.3e-7 on AVX512_BF16 and on the emulation).
 * The same step in fp32 misses this reference by 0.16 of the scale (a bias gradient, a sum of softmax - one-hot
 * that cancels), so the bound also tells a bf16 step from an fp32 one, and a bf16 step whose weight gradients ran
 * in fp32 (2e-2) from a whole bf16 step. */
#include "test_util.h"
#include "test_oracle.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "classifier.h"
#include "gemm_bf16.h"
#include "kernels.h"

#define BF16_GRAD_TOL 1e-4
#define ROWS 64
#define DIM 784
#define CLASSES 10

/* The network: 784-96-40-10. */
static const elbo_classifier_config net_config = {.input_dim = DIM, .n_hidden = 2, .hidden = {96, 40}, .classes = CLASSES};

/* x rounded to bf16 and back (RNE, bf16.h), as a double. */
static double bf(float x)
{
    return (double)elbo_bf16_to_f32(elbo_bf16_from_f32(x));
}

/* The reference step over m's parameters: grads (m's layout) of the batch sum of cross-entropies of rows x (ROWS,
 * DIM) with labels y, with every GEMM operand rounded to bf16 (the header). */
static void reference_grads(const elbo_classifier *m, const uint8_t *x, const uint8_t *y, float *grads)
{
    const elbo_param_layout *l = &m->layout;
    size_t n = l->n_layers;
    float *act[ELBO_MAX_HIDDEN + 2], *dact[ELBO_MAX_HIDDEN + 2];
    act[0] = malloc(ROWS * DIM * sizeof(float));
    for (size_t i = 0; i < ROWS * DIM; i++)
        act[0][i] = (float)x[i] / 255.0f;
    for (size_t i = 0; i < n; i++) {
        const elbo_linear_layout *ly = &l->layer[i];
        const float *w = m->params + ly->w_off, *b = m->params + ly->b_off;
        act[i + 1] = malloc(ROWS * ly->out * sizeof(float));
        dact[i + 1] = malloc(ROWS * ly->out * sizeof(float));
        for (size_t r = 0; r < ROWS; r++)
            for (size_t j = 0; j < ly->out; j++) {
                double u = 0;
                for (size_t k = 0; k < ly->in; k++)
                    u += bf(act[i][r * ly->in + k]) * bf(w[j * ly->in + k]);
                u += b[j];
                act[i + 1][r * ly->out + j] = (float)(i + 1 < n && u < 0 ? 0 : u);
            }
    }
    /* d (sum of cross-entropies) / d logits = softmax - one-hot */
    float *logits = act[n], *dlog = dact[n];
    for (size_t r = 0; r < ROWS; r++) {
        double mx = -INFINITY, s = 0;
        for (size_t j = 0; j < CLASSES; j++)
            mx = fmax(mx, logits[r * CLASSES + j]);
        for (size_t j = 0; j < CLASSES; j++)
            s += exp(logits[r * CLASSES + j] - mx);
        for (size_t j = 0; j < CLASSES; j++)
            dlog[r * CLASSES + j] = (float)(exp(logits[r * CLASSES + j] - mx) / s - (j == y[r]));
    }
    for (size_t i = n; i-- > 0;) {
        const elbo_linear_layout *ly = &l->layer[i];
        const float *w = m->params + ly->w_off, *dy = dact[i + 1], *in = act[i];
        for (size_t j = 0; j < ly->out; j++) {
            double db = 0;
            for (size_t r = 0; r < ROWS; r++)
                db += dy[r * ly->out + j];
            grads[ly->b_off + j] = (float)db;
            for (size_t k = 0; k < ly->in; k++) {
                double dw = 0;
                for (size_t r = 0; r < ROWS; r++)
                    dw += bf(dy[r * ly->out + j]) * bf(in[r * ly->in + k]);
                grads[ly->w_off + j * ly->in + k] = (float)dw;
            }
        }
        if (i == 0)
            break;
        dact[i] = malloc(ROWS * ly->in * sizeof(float));
        for (size_t r = 0; r < ROWS; r++)
            for (size_t k = 0; k < ly->in; k++) {
                double d = 0;
                for (size_t j = 0; j < ly->out; j++)
                    d += bf(dy[r * ly->out + j]) * bf(w[j * ly->in + k]);
                dact[i][r * ly->in + k] = in[r * ly->in + k] > 0 ? (float)d : 0.0f; /* the ReLU mask */
            }
    }
    for (size_t i = 0; i <= n; i++) {
        free(act[i]);
        if (i > 0)
            free(dact[i]);
    }
}

/* The worst, over m's tensors, of the scaled max error of grads against want. */
static double worst_error(const elbo_classifier *m, const float *grads, const float *want, const char *isa,
                          const char *what, double tol)
{
    double worst = 0;
    for (size_t i = 0; i < m->layout.n_tensors; i++) {
        const elbo_tensor_view *v = &m->layout.tensor[i];
        double e = oracle_scaled_max_error(grads + v->offset, want + v->offset, elbo_tensor_view_size(v));
        if (!(e <= tol))
            test_failf("%s %s: gradient of %s misses the bf16-rounded reference by %.3g of its scale (bound %g)\n",
                       isa, what, v->name, e, tol);
        worst = e > worst ? e : worst;
    }
    return worst;
}

/* One step's gradients of net_config on table k (its precision) into grads, its parameters into params_out, from
 * parameters and a batch (x, y) drawn from seed. */
static void step_grads(const elbo_kernels *k, float *grads, float *params_out, elbo_classifier *m, uint8_t *x,
                       uint8_t *y, uint64_t seed)
{
    char err[256];
    if (elbo_classifier_init(m, &net_config, k, err, sizeof err) != 0)
        test_failf("%s\n", err);
    test_rng rng = {seed};
    for (size_t i = 0; i < m->layout.n_layers; i++) {
        const elbo_linear_layout *ly = &m->layout.layer[i];
        float bound = 1.0f / sqrtf((float)ly->in);
        test_fill(&rng, m->params + ly->w_off, ly->in * ly->out, -bound, bound);
        test_fill(&rng, m->params + ly->b_off, ly->out, -0.1f, 0.1f);
    }
    elbo_classifier_pack_weights(m);
    for (size_t i = 0; i < ROWS * DIM; i++)
        x[i] = (uint8_t)test_rng_below(&rng, 256);
    for (size_t r = 0; r < ROWS; r++)
        y[r] = (uint8_t)test_rng_below(&rng, CLASSES);
    elbo_classifier_activations a;
    assert_int_equal(elbo_classifier_activations_init(&a, m, ROWS), 0);
    memset(m->grads, 0xff, m->layout.total * sizeof(float)); /* NaN: every gradient must be written */
    elbo_classifier_forward_backward(m, &a, x, y, ROWS);
    memcpy(grads, m->grads, m->layout.total * sizeof(float));
    memcpy(params_out, m->params, m->layout.total * sizeof(float));
    elbo_classifier_activations_free(&a);
}

/* On every table running the bf16 GEMM: the bf16 step's gradients within the bound of the reference; the fp32
 * step's outside it (the reference does model bf16's rounding). */
static void test_classifier_step_matches_rounded_reference(void **state)
{
    (void)state;
    size_t tested = 0;
    for (size_t t = 0; elbo_kernels_available(t); t++) {
        const elbo_kernels *k32 = elbo_kernels_available(t), *k16 = elbo_kernels_with_precision(k32, ELBO_PRECISION_BF16);
        if (!k16) {
            print_message("  %-6s no bf16 GEMM here (%s)\n", k32->isa, elbo_gemm_bf16_missing(k32));
            continue;
        }
        elbo_classifier m16, m32;
        uint8_t *x = malloc(ROWS * DIM), y[ROWS];
        elbo_param_layout lay;
        elbo_classifier_layout_build(&lay, &net_config);
        float *g16 = malloc(lay.total * sizeof(float)), *g32 = malloc(lay.total * sizeof(float));
        float *p16 = malloc(lay.total * sizeof(float)), *p32 = malloc(lay.total * sizeof(float));
        float *ref = malloc(lay.total * sizeof(float));
        step_grads(k16, g16, p16, &m16, x, y, 7);
        step_grads(k32, g32, p32, &m32, x, y, 7);
        assert_memory_equal(p16, p32, m16.layout.total * sizeof(float)); /* the same parameters */
        memset(ref, 0xff, m16.layout.total * sizeof(float));
        reference_grads(&m16, x, y, ref);
        double e16 = worst_error(&m16, g16, ref, k16->isa, "bf16 step", BF16_GRAD_TOL);
        double e32 = worst_error(&m16, g32, ref, k32->isa, "fp32 step", INFINITY);
        print_message("  %-6s bf16 step: worst gradient error %.2e of scale (bound %g); fp32 step: %.2e\n", k16->isa,
                      e16, BF16_GRAD_TOL, e32);
        if (!(e32 > BF16_GRAD_TOL))
            test_failf("%s: the fp32 step is within the bf16 bound of the rounded reference (%.3g): the reference "
                       "does not model bf16's rounding\n", k32->isa, e32);
        elbo_classifier_free(&m16);
        elbo_classifier_free(&m32);
        free(x);
        free(g16);
        free(g32);
        free(p16);
        free(p32);
        free(ref);
        tested++;
    }
    if (!tested)
        skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classifier_step_matches_rounded_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
