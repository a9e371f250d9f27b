/* A stack of linear layers over a slice of the batch, with the team's barriers between them. */
#include "mlp.h"

#include <stdlib.h>
#include <string.h>

#include "finite.h"

/* 1 unless ELBO_BF16_ACTIVATIONS=fp32 keeps every hidden output in fp32 (for comparing the two). */
static int bf16_activations_allowed(void)
{
    static int allowed = -1;
    if (allowed < 0) {
        const char *e = getenv("ELBO_BF16_ACTIVATIONS");
        allowed = !(e && strcmp(e, "fp32") == 0);
    }
    return allowed;
}

int elbo_mlp_keeps_bf16(const elbo_mlp *m, size_t i)
{
    return i + 1 < m->n && !m->pre[i] && elbo_linear_output_bf16_ok(&m->layer[i]) &&
           m->layer[i + 1].precision == ELBO_PRECISION_BF16 && bf16_activations_allowed();
}

/* op advanced by r0 rows. */
static elbo_operand operand_at_row(elbo_operand op, size_t r0)
{
    size_t elem = op.dtype == ELBO_DTYPE_U8 ? 1 : op.dtype == ELBO_DTYPE_BF16 ? sizeof(elbo_bf16) : sizeof(float);
    op.data = (const unsigned char *)op.data + r0 * op.ld * elem;
    return op;
}

/* Layer i's output in bf16 (elbo_mlp_keeps_bf16): the first half of its buffer's bytes, row stride out_i. */
static elbo_bf16 *out_bf16(const elbo_mlp *m, size_t i)
{
    return (elbo_bf16 *)m->out[i];
}

elbo_operand elbo_mlp_layer_input(const elbo_mlp *m, elbo_operand x, size_t i, size_t r0)
{
    if (i == 0)
        return operand_at_row(x, r0);
    size_t in = m->layer[i].in;
    if (elbo_mlp_keeps_bf16(m, i - 1))
        return elbo_operand_bf16(out_bf16(m, i - 1) + r0 * in, in, ELBO_NOTRANS);
    return elbo_operand_f32(m->out[i - 1] + r0 * in, in, ELBO_NOTRANS);
}

/* Rows [r0, r1) of layer i's forward. */
static void layer_forward_rows(const elbo_mlp *m, elbo_gemm_workspace *ws, elbo_operand x, size_t i, size_t r0,
                               size_t r1, const float *params)
{
    const elbo_linear *l = &m->layer[i];
    if (r1 == r0)
        return;
    if (elbo_mlp_keeps_bf16(m, i))
        elbo_linear_forward_bf16(l, ws, out_bf16(m, i) + r0 * l->out, elbo_mlp_layer_input(m, x, i, r0), r1 - r0,
                                 params);
    else
        elbo_linear_forward_saving(l, ws, m->out[i] + r0 * l->out, m->pre[i] ? m->pre[i] + r0 * l->out : NULL,
                                   elbo_mlp_layer_input(m, x, i, r0), r1 - r0, params);
}

void elbo_mlp_forward_rows(const elbo_mlp *m, elbo_gemm_workspace *ws, elbo_operand x, size_t r0, size_t r1,
                           const float *params)
{
    for (size_t i = 0; i < m->n; i++)
        layer_forward_rows(m, ws, x, i, r0, r1, params);
}

void elbo_mlp_forward_part(const elbo_mlp *m, elbo_gemm_workspace *ws, elbo_operand x, size_t b, size_t r0,
                           size_t r1, size_t part, size_t nparts, const float *params)
{
    int input_by_features = 0; /* x arrives by rows */
    for (size_t i = 0; i < m->n; i++) {
        const elbo_linear *l = &m->layer[i];
        int by_features = elbo_linear_forward_by_features(l, b, nparts);
        if (by_features || input_by_features) {
            /* a feature block needs every row of its input; a row needs every feature block of its input */
#pragma omp barrier
        }
        if (by_features) {
            size_t lo, hi;
            elbo_linear_features_of_part(l, part, nparts, m->first_index + i, &lo, &hi);
            if (hi > lo && elbo_mlp_keeps_bf16(m, i))
                elbo_linear_forward_features_bf16(l, ws, out_bf16(m, i), elbo_mlp_layer_input(m, x, i, 0), b, lo, hi,
                                                  params);
            else if (hi > lo)
                elbo_linear_forward_features_saving(l, ws, m->out[i], m->pre[i], elbo_mlp_layer_input(m, x, i, 0), b,
                                                    lo, hi, params);
        } else {
            layer_forward_rows(m, ws, x, i, r0, r1, params);
        }
        input_by_features = by_features;
    }
    if (input_by_features) {
#pragma omp barrier
    }
}

void elbo_mlp_backward_rows(const elbo_mlp *m, elbo_gemm_workspace *ws, size_t r0, size_t r1,
                            const float *x_saved, elbo_activation x_act)
{
    if (r1 == r0)
        return;
    for (size_t i = m->n; i-- > 0;) {
        const elbo_linear *l = &m->layer[i];
        float *dx = i > 0 ? m->dout[i - 1] : m->dx;
        if (!dx)
            break;
        if (i > 0 && elbo_mlp_keeps_bf16(m, i - 1))
            elbo_linear_data_grad_after_bf16(l, ws, dx + r0 * l->in, m->dout[i] + r0 * l->out, &m->layer[i - 1],
                                             out_bf16(m, i - 1) + r0 * l->in, r1 - r0);
        else if (i > 0) /* the mask of layer i - 1's activation, with its own LeakyReLU slope */
            elbo_linear_data_grad_after(l, ws, dx + r0 * l->in, m->dout[i] + r0 * l->out, &m->layer[i - 1],
                                        m->out[i - 1] + r0 * l->in, r1 - r0);
        else
            elbo_linear_data_grad(l, ws, dx + r0 * l->in, m->dout[i] + r0 * l->out,
                                  x_act != ELBO_ACT_NONE ? x_saved + r0 * l->in : NULL, x_act, r1 - r0);
    }
}

int elbo_mlp_output_grads_finite(const elbo_mlp *m, size_t r0, size_t r1)
{
    for (size_t i = 0; i < m->n; i++) {
        size_t out = m->layer[i].out;
        if (!elbo_floats_finite(m->dout[i] + r0 * out, (r1 - r0) * out))
            return 0;
    }
    return 1;
}
