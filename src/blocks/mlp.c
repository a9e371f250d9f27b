/* A stack of linear layers over a slice of the batch, with the team's barriers between them. */
#include "mlp.h"

#include "finite.h"

/* op advanced by r0 rows. */
static elbo_operand operand_at_row(elbo_operand op, size_t r0)
{
    size_t elem = op.dtype == ELBO_DTYPE_U8 ? 1 : sizeof(float);
    op.data = (const unsigned char *)op.data + r0 * op.ld * elem;
    return op;
}

elbo_operand elbo_mlp_layer_input(const elbo_mlp *m, elbo_operand x, size_t i, size_t r0)
{
    if (i == 0)
        return operand_at_row(x, r0);
    size_t in = m->layer[i].in;
    return elbo_operand_f32(m->out[i - 1] + r0 * in, in, ELBO_NOTRANS);
}

/* Rows [r0, r1) of layer i's forward. */
static void layer_forward_rows(const elbo_mlp *m, elbo_gemm_workspace *ws, elbo_operand x, size_t i, size_t r0,
                               size_t r1, const float *params)
{
    const elbo_linear *l = &m->layer[i];
    if (r1 > r0)
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
            if (hi > lo)
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
        if (i > 0) /* the mask of layer i - 1's activation, with its own LeakyReLU slope */
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
