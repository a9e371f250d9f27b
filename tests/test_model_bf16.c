/* One bf16 training step of the classifier (three linear layers: the forward, data-gradient and weight-gradient
 * GEMMs, the bias and ReLU epilogues, the ReLU masks, the softmax cross-entropy), GEMM by GEMM, against double-precision
 * products of bf16-rounded operands, on every kernel table this CPU runs the bf16 GEMM on (AVX512_BF16, the scalar
 * emulation; FEAT_BF16 on arm64).
 *
 * Each GEMM's reference reads the very fp32 operands the step stored (the pixels x / 255, the weights, each hidden
 * activation, each masked output gradient and the softmax gradient), rounds them to bf16 (round to nearest even,
 * bf16.h) and sums their products in double; biases, epilogues, masks and bias gradients stay unrounded. Checked:
 * every hidden activation, the softmax gradient (against the softmax of the reference logits), every masked data
 * gradient and every weight and bias gradient. Reading the step's own operands keeps a stored value that an fp32
 * accumulation put on the other side of a bf16 rounding boundary (one bf16 ulp, 2^-8, on one operand: it happens
 * on arm64, whose BFDOT rounds to odd) from being charged to a later GEMM. What is left is each GEMM's fp32
 * accumulation (K products, |error| <= K 2^-24 sum |a b|). Bound: max |elbo - ref| <= 1e-4 of max |ref| per tensor
 * (measured: ~3e-7 on AVX512_BF16, the emulation and FEAT_BF16 under qemu). The fp32 step misses this reference by
 * ~0.1 of the scale (a bias gradient, a sum of softmax - one-hot that cancels), so the bound also tells a bf16 step
 * from an fp32 one. A hidden activation the bf16 model keeps in bf16 (elbo_mlp_keeps_bf16) is read as stored
 * (exactly, as fp32) and held to one rounding of its reference: 2^-8 of the scale. */
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
#define BF16_KEPT_TOL (1.0 / 256) /* a hidden activation kept in bf16: rounded once, <= 2^-9 of its value */
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

/* The scaled max error of n floats got against want (oracle_scaled_max_error); fails the test naming what when it
 * exceeds tol. */
static double check(const float *got, const float *want, size_t n, const char *isa, const char *what, double tol)
{
    double e = oracle_scaled_max_error(got, want, n);
    if (!(e <= tol))
        test_failf("%s bf16 step: %s misses the bf16-rounded reference by %.3g of its scale (bound %g)\n", isa, what,
                   e, tol);
    return e;
}

/* The reference of one step over m's parameters from the operands the step stored in a (ROWS rows x with labels
 * y): checks a's hidden activations, softmax gradient and masked data gradients GEMM by GEMM (the header) and
 * writes the reference gradients (m's layout) to grads; returns the worst scaled error of the checked activations. */
static double reference_grads(const elbo_classifier *m, const elbo_classifier_activations *a, const uint8_t *x,
                              const uint8_t *y, const char *isa, float *grads)
{
    const elbo_param_layout *l = &m->layout;
    size_t n = l->n_layers;
    char what[64];
    double worst = 0;
    float *pixels = malloc(ROWS * DIM * sizeof(float));
    for (size_t i = 0; i < ROWS * DIM; i++)
        pixels[i] = (float)x[i] / 255.0f;
    const float *in[ELBO_MAX_HIDDEN + 1], *dout[ELBO_MAX_HIDDEN + 1]; /* layer i's stored input and output gradient */
    float *hidden[ELBO_MAX_HIDDEN]; /* each hidden activation as stored, in fp32 (exact from bf16 where kept in it) */
    in[0] = pixels;
    for (size_t i = 1; i < n; i++) {
        const size_t count = ROWS * l->layer[i - 1].out;
        hidden[i - 1] = malloc(count * sizeof(float));
        for (size_t j = 0; j < count; j++)
            hidden[i - 1][j] = elbo_mlp_keeps_bf16(&a->mlp, i - 1) ? elbo_bf16_to_f32(((const elbo_bf16 *)a->h[i - 1])[j])
                                                                 : a->h[i - 1][j];
        in[i] = hidden[i - 1];
    }
    for (size_t i = 0; i + 1 < n; i++)
        dout[i] = a->dh[i];
    dout[n - 1] = a->logits; /* d loss / d logits after the backward */
    float *want = malloc(ROWS * DIM * sizeof(float));
    for (size_t i = 0; i < n; i++) { /* forward: h = relu(x W^T + b) for hidden layers; the logits for the last */
        const elbo_linear_layout *ly = &l->layer[i];
        const float *w = m->params + ly->w_off, *b = m->params + ly->b_off;
        for (size_t r = 0; r < ROWS; r++)
            for (size_t j = 0; j < ly->out; j++) {
                double u = b[j];
                for (size_t k = 0; k < ly->in; k++)
                    u += bf(in[i][r * ly->in + k]) * bf(w[j * ly->in + k]);
                want[r * ly->out + j] = (float)(i + 1 < n && u < 0 ? 0 : u);
            }
        if (i + 1 < n && elbo_mlp_keeps_bf16(&a->mlp, i)) { /* kept in bf16: the reference rounded, within an ulp */
            snprintf(what, sizeof what, "hidden activation %zu (kept in bf16)", i);
            check(in[i + 1], want, ROWS * ly->out, isa, what, BF16_KEPT_TOL);
        } else if (i + 1 < n) {
            snprintf(what, sizeof what, "hidden activation %zu", i);
            double e = check(in[i + 1], want, ROWS * ly->out, isa, what, BF16_GRAD_TOL);
            worst = e > worst ? e : worst;
        }
    }
    for (size_t r = 0; r < ROWS; r++) { /* d (sum of cross-entropies) / d logits = softmax - one-hot */
        float *z = want + r * CLASSES;
        double mx = -INFINITY, s = 0;
        for (size_t j = 0; j < CLASSES; j++)
            mx = fmax(mx, z[j]);
        for (size_t j = 0; j < CLASSES; j++)
            s += exp(z[j] - mx);
        for (size_t j = 0; j < CLASSES; j++)
            z[j] = (float)(exp(z[j] - mx) / s - (j == y[r]));
    }
    double e = check(a->logits, want, ROWS * CLASSES, isa, "softmax gradient", BF16_GRAD_TOL);
    worst = e > worst ? e : worst;
    for (size_t i = n; i-- > 0;) {
        const elbo_linear_layout *ly = &l->layer[i];
        const float *w = m->params + ly->w_off, *dy = dout[i];
        for (size_t j = 0; j < ly->out; j++) {
            double db = 0;
            for (size_t r = 0; r < ROWS; r++)
                db += dy[r * ly->out + j];
            grads[ly->b_off + j] = (float)db;
            for (size_t k = 0; k < ly->in; k++) {
                double dw = 0;
                for (size_t r = 0; r < ROWS; r++)
                    dw += bf(dy[r * ly->out + j]) * bf(in[i][r * ly->in + k]);
                grads[ly->w_off + j * ly->in + k] = (float)dw;
            }
        }
        if (i == 0)
            break;
        for (size_t r = 0; r < ROWS; r++) /* the data gradient, masked by the ReLU of its stored input */
            for (size_t k = 0; k < ly->in; k++) {
                double d = 0;
                for (size_t j = 0; j < ly->out; j++)
                    d += bf(dy[r * ly->out + j]) * bf(w[j * ly->in + k]);
                want[r * ly->in + k] = in[i][r * ly->in + k] > 0 ? (float)d : 0.0f;
            }
        snprintf(what, sizeof what, "data gradient of hidden activation %zu", i - 1);
        e = check(a->dh[i - 1], want, ROWS * ly->in, isa, what, BF16_GRAD_TOL);
        worst = e > worst ? e : worst;
    }
    for (size_t i = 1; i < n; i++)
        free(hidden[i - 1]);
    free(want);
    free(pixels);
    return worst;
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

/* One step's gradients of net_config on table k (its precision) into grads, its parameters into params_out and its
 * stored operands into a (the caller frees it), from parameters and a batch (x, y) drawn from seed. */
static void step_grads(const elbo_kernels *k, float *grads, float *params_out, elbo_classifier *m,
                       elbo_classifier_activations *a, uint8_t *x, uint8_t *y, uint64_t seed)
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
    assert_int_equal(elbo_classifier_activations_init(a, m, ROWS), 0);
    memset(m->grads, 0xff, m->layout.total * sizeof(float)); /* NaN: every gradient must be written */
    elbo_classifier_forward_backward(m, a, x, y, ROWS);
    memcpy(grads, m->grads, m->layout.total * sizeof(float));
    memcpy(params_out, m->params, m->layout.total * sizeof(float));
}

/* On every table running the bf16 GEMM: the bf16 step's gradients within the bound of the reference; the fp32
 * step's outside it (the reference does model bf16's rounding). */
static void test_classifier_step_matches_rounded_reference(void **state)
{
    (void)state;
    size_t tested = 0;
    for (size_t t = 0; test_model_tables(t); t++) {
        const elbo_kernels *k32 = test_model_tables(t), *k16 = elbo_kernels_with_precision(k32, ELBO_PRECISION_BF16);
        if (!k16) {
            print_message("  %-6s no bf16 GEMM here (%s)\n", k32->isa, elbo_gemm_bf16_missing(k32));
            continue;
        }
        elbo_classifier m16, m32;
        elbo_classifier_activations a16, a32;
        uint8_t *x = malloc(ROWS * DIM), y[ROWS];
        elbo_param_layout lay;
        elbo_classifier_layout_build(&lay, &net_config);
        float *g16 = malloc(lay.total * sizeof(float)), *g32 = malloc(lay.total * sizeof(float));
        float *p16 = malloc(lay.total * sizeof(float)), *p32 = malloc(lay.total * sizeof(float));
        float *ref = malloc(lay.total * sizeof(float));
        step_grads(k16, g16, p16, &m16, &a16, x, y, 7);
        step_grads(k32, g32, p32, &m32, &a32, x, y, 7);
        if (!elbo_mlp_keeps_bf16(&a16.mlp, 0) || !elbo_mlp_keeps_bf16(&a16.mlp, 1) || elbo_mlp_keeps_bf16(&a32.mlp, 0))
            test_failf("%s: the bf16 classifier does not keep its ReLU activations in bf16 (or the fp32 one does)\n",
                       k16->isa);
        assert_memory_equal(p16, p32, m16.layout.total * sizeof(float)); /* the same parameters */
        memset(ref, 0xff, m16.layout.total * sizeof(float));
        double e16 = reference_grads(&m16, &a16, x, y, k16->isa, ref);
        double eg = worst_error(&m16, g16, ref, k16->isa, "bf16 step", BF16_GRAD_TOL);
        e16 = eg > e16 ? eg : e16;
        double e32 = worst_error(&m16, g32, ref, k32->isa, "fp32 step", INFINITY);
        print_message("  %-6s bf16 step: worst error %.2e of scale (bound %g); fp32 step: %.2e\n", k16->isa,
                      e16, BF16_GRAD_TOL, e32);
        if (!(e32 > BF16_GRAD_TOL))
            test_failf("%s: the fp32 step is within the bf16 bound of the rounded reference (%.3g): the reference "
                       "does not model bf16's rounding\n", k32->isa, e32);
        elbo_classifier_activations_free(&a16);
        elbo_classifier_activations_free(&a32);
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
