/* The linear layer's forward, data-gradient and parameter-gradient passes on the blocked GEMM. */
#include "linear.h"

#include <assert.h>
#include <string.h>

/* Allocates the bf16 pair panels of l (forward, and data gradient when with_data_grad); 0 or -1. */
static int alloc_bf16_panels(elbo_linear *l, int with_data_grad)
{
    if (elbo_packed_b_bf16_alloc(&l->fwd16, l->kern, l->in, l->out) != 0)
        return -1;
    return with_data_grad ? elbo_packed_b_bf16_alloc(&l->bwd16, l->kern, l->out, l->in) : 0;
}

int elbo_linear_init(elbo_linear *l, const elbo_kernels *kern, size_t in, size_t out, size_t w_off, size_t b_off,
                     elbo_activation act, const float *params, int with_data_grad)
{
    memset(l, 0, sizeof *l);
    *l = (elbo_linear){.in = in, .out = out, .w_off = w_off, .b_off = b_off, .act = act, .slope = ELBO_LEAKY_RELU_SLOPE,
                       .kern = kern, .precision = kern->precision};
    int ok;
    if (l->precision == ELBO_PRECISION_BF16) {
        assert(kern->gemm_bf16_ukernel);
        ok = alloc_bf16_panels(l, with_data_grad) == 0;
    } else {
        ok = elbo_packed_b_alloc(&l->fwd, kern, in, out) == 0;
        /* The data-gradient GEMM reads W (out x in) in place where the kernels can (no copy to refresh after each
         * optimizer step), else from a packed copy. */
        if (ok && with_data_grad && elbo_packed_b_view(&l->bwd, kern, out, in, params + w_off, in) != 0)
            ok = elbo_packed_b_alloc(&l->bwd, kern, out, in) == 0;
    }
    if (!ok) {
        elbo_linear_free(l);
        return -1;
    }
    return 0;
}

void elbo_linear_free(elbo_linear *l)
{
    elbo_packed_b_free(&l->fwd);
    elbo_packed_b_free(&l->bwd);
    elbo_packed_b_bf16_free(&l->fwd16);
    elbo_packed_b_bf16_free(&l->bwd16);
    memset(l, 0, sizeof *l);
}

void elbo_linear_pack(elbo_linear *l, const float *params)
{
    const float *w = params + l->w_off;
    if (l->precision == ELBO_PRECISION_BF16) {
        elbo_pack_b_bf16(&l->fwd16, elbo_operand_f32(w, l->in, ELBO_TRANS));
        if (l->bwd16.data)
            elbo_pack_b_bf16(&l->bwd16, elbo_operand_f32(w, l->in, ELBO_NOTRANS));
        return;
    }
    elbo_pack_b(&l->fwd, elbo_operand_f32(w, l->in, ELBO_TRANS));
    if (l->bwd.data)
        elbo_pack_b(&l->bwd, elbo_operand_f32(w, l->in, ELBO_NOTRANS));
}

void elbo_linear_pack_features(elbo_linear *l, const float *params, size_t lo, size_t hi)
{
    const float *w = params + l->w_off;
    if (hi == lo)
        return;
    if (l->precision == ELBO_PRECISION_BF16) { /* rows [lo, hi) of W: K rows of the data gradient's B */
        elbo_pack_b_bf16_region(&l->fwd16, elbo_operand_f32(w, l->in, ELBO_TRANS), 0, l->in, lo, hi);
        if (l->bwd16.data)
            elbo_pack_b_bf16_region(&l->bwd16, elbo_operand_f32(w, l->in, ELBO_NOTRANS), lo, hi, 0, l->in);
        return;
    }
    void (*pack)(elbo_packed_b *, elbo_operand, size_t, size_t, size_t, size_t) =
        l->stream_packs ? elbo_pack_b_region_stream : elbo_pack_b_region;
    pack(&l->fwd, elbo_operand_f32(w, l->in, ELBO_TRANS), 0, l->in, lo, hi);
    if (l->bwd.data)
        pack(&l->bwd, elbo_operand_f32(w, l->in, ELBO_NOTRANS), lo, hi, 0, l->in);
}

/* C (m x n, row stride ldc) = a (m x k) . the packed B (fwd or bwd by `bwd`) + beta C, then epi, in the layer's
 * precision: the whole C, or with `cols` its columns [j0, j1) only (a block of whole panels). */
static void gemm_packed(const elbo_linear *l, elbo_gemm_workspace *ws, int bwd, int cols, size_t m, size_t j0,
                        size_t j1, size_t n, size_t k, elbo_operand a, float beta, float *c, size_t ldc,
                        const elbo_epilogue *epi)
{
    if (l->precision == ELBO_PRECISION_BF16) {
        const elbo_packed_b_bf16 *b = bwd ? &l->bwd16 : &l->fwd16;
        assert(ws->bf16 && "the workspace of a bf16 layer comes from its kernel table");
        if (cols)
            elbo_gemm_bf16_packed_cols(l->kern, ws->bf16, m, j0, j1, k, 1.0f, a, b, beta, c, ldc, epi);
        else
            elbo_gemm_bf16_packed(l->kern, ws->bf16, m, n, k, 1.0f, a, b, beta, c, ldc, epi);
        return;
    }
    const elbo_packed_b *b = bwd ? &l->bwd : &l->fwd;
    if (cols)
        elbo_gemm_packed_cols(l->kern, ws, m, j0, j1, k, 1.0f, a, b, beta, c, ldc, epi);
    else
        elbo_gemm_packed(l->kern, ws, m, n, k, 1.0f, a, b, beta, c, ldc, epi);
}

/* The GEMM epilogue of the layer's forward: its bias, then its activation; u (NULL or row stride out) receives
 * the pre-activation. */
static elbo_epilogue forward_epilogue(const elbo_linear *l, const float *params, float *u)
{
    return (elbo_epilogue){.bias = params + l->b_off, .act = l->act, .slope = l->slope, .preact = u,
                           .ld_preact = l->out};
}

void elbo_linear_forward_saving(const elbo_linear *l, elbo_gemm_workspace *ws, float *y, float *u, elbo_operand x,
                                size_t rows, const float *params)
{
    elbo_epilogue epi = forward_epilogue(l, params, u);
    gemm_packed(l, ws, 0, 0, rows, 0, l->out, l->out, l->in, x, 0.0f, y, l->out, &epi);
}

void elbo_linear_forward_accumulate(const elbo_linear *l, elbo_gemm_workspace *ws, float *y, float *u,
                                    elbo_operand x, size_t rows, const float *params)
{
    elbo_epilogue epi = forward_epilogue(l, params, u);
    gemm_packed(l, ws, 0, 0, rows, 0, l->out, l->out, l->in, x, 1.0f, y, l->out, &epi);
}

void elbo_linear_forward(const elbo_linear *l, elbo_gemm_workspace *ws, float *y, elbo_operand x, size_t rows,
                         const float *params)
{
    elbo_linear_forward_saving(l, ws, y, NULL, x, rows, params);
}

void elbo_linear_forward_features_saving(const elbo_linear *l, elbo_gemm_workspace *ws, float *y, float *u,
                                         elbo_operand x, size_t b, size_t lo, size_t hi, const float *params)
{
    elbo_epilogue epi = forward_epilogue(l, params, u);
    gemm_packed(l, ws, 0, 1, b, lo, hi, l->out, l->in, x, 0.0f, y, l->out, &epi);
}

void elbo_linear_forward_features(const elbo_linear *l, elbo_gemm_workspace *ws, float *y, elbo_operand x,
                                  size_t b, size_t lo, size_t hi, const float *params)
{
    elbo_linear_forward_features_saving(l, ws, y, NULL, x, b, lo, hi, params);
}

void elbo_linear_data_grad_after(const elbo_linear *l, elbo_gemm_workspace *ws, float *dx, const float *dy,
                                 const elbo_linear *x_layer, const float *x_saved, size_t rows)
{
    elbo_epilogue epi = {0};
    if (x_layer && x_layer->act != ELBO_ACT_NONE)
        epi = (elbo_epilogue){.grad = x_layer->act, .slope = x_layer->slope, .saved = x_saved, .ld_saved = l->in};
    gemm_packed(l, ws, 1, 0, rows, 0, l->in, l->in, l->out, elbo_operand_f32(dy, l->out, ELBO_NOTRANS), 0.0f, dx, l->in,
                &epi);
}

int elbo_linear_output_bf16_ok(const elbo_linear *l)
{
    return l->precision == ELBO_PRECISION_BF16 &&
           (l->act == ELBO_ACT_NONE || l->act == ELBO_ACT_RELU || l->act == ELBO_ACT_LEAKY_RELU) &&
           elbo_gemm_bf16_one_block(l->kern, l->in);
}

/* The forward epilogue of a layer whose output y (row stride out) is kept in bf16. */
static elbo_epilogue forward_epilogue_bf16(const elbo_linear *l, const float *params, elbo_bf16 *y)
{
    elbo_epilogue epi = forward_epilogue(l, params, NULL);
    assert(elbo_linear_output_bf16_ok(l));
    epi.out_bf16 = y;
    epi.ld_out_bf16 = l->out;
    return epi;
}

void elbo_linear_forward_bf16(const elbo_linear *l, elbo_gemm_workspace *ws, elbo_bf16 *y, elbo_operand x,
                              size_t rows, const float *params)
{
    elbo_epilogue epi = forward_epilogue_bf16(l, params, y);
    gemm_packed(l, ws, 0, 0, rows, 0, l->out, l->out, l->in, x, 0.0f, NULL, l->out, &epi);
}

void elbo_linear_forward_features_bf16(const elbo_linear *l, elbo_gemm_workspace *ws, elbo_bf16 *y, elbo_operand x,
                                       size_t b, size_t lo, size_t hi, const float *params)
{
    elbo_epilogue epi = forward_epilogue_bf16(l, params, y);
    gemm_packed(l, ws, 0, 1, b, lo, hi, l->out, l->in, x, 0.0f, NULL, l->out, &epi);
}

void elbo_linear_data_grad_after_bf16(const elbo_linear *l, elbo_gemm_workspace *ws, float *dx, const float *dy,
                                      const elbo_linear *x_layer, const elbo_bf16 *x_saved, size_t rows)
{
    elbo_epilogue epi = {0};
    assert(l->precision == ELBO_PRECISION_BF16);
    if (x_layer->act != ELBO_ACT_NONE)
        epi = (elbo_epilogue){.grad = x_layer->act, .slope = x_layer->slope, .saved_bf16 = x_saved, .ld_saved = l->in};
    gemm_packed(l, ws, 1, 0, rows, 0, l->in, l->in, l->out, elbo_operand_f32(dy, l->out, ELBO_NOTRANS), 0.0f, dx, l->in,
                &epi);
}

void elbo_linear_data_grad(const elbo_linear *l, elbo_gemm_workspace *ws, float *dx, const float *dy,
                           const float *x_saved, elbo_activation x_act, size_t rows)
{
    const elbo_linear x_layer = {.act = x_act, .slope = ELBO_LEAKY_RELU_SLOPE};
    elbo_linear_data_grad_after(l, ws, dx, dy, &x_layer, x_saved, rows);
}

void elbo_linear_data_grad_accumulate(const elbo_linear *l, elbo_gemm_workspace *ws, float *dx, const float *dy,
                                      size_t rows)
{
    gemm_packed(l, ws, 1, 0, rows, 0, l->in, l->in, l->out, elbo_operand_f32(dy, l->out, ELBO_NOTRANS), 1.0f, dx, l->in,
                NULL);
}

void elbo_linear_param_grads_into(const elbo_linear *l, elbo_gemm_workspace *ws, float *dw, float *db,
                                  const float *dy, elbo_operand x, const elbo_packed_b *x_packed, size_t b, size_t lo,
                                  size_t hi)
{
    if (hi == lo)
        return;
    elbo_operand dyt = elbo_operand_f32(dy + lo, l->out, ELBO_TRANS);
    if (x_packed) {
        assert(l->precision == ELBO_PRECISION_FP32 && x_packed->kernels == l->kern && x_packed->k == b &&
               x_packed->n == l->in);
        elbo_gemm_packed(l->kern, ws, hi - lo, l->in, b, 1.0f, dyt, x_packed, 0.0f, dw, l->in, NULL);
    } else if (l->precision == ELBO_PRECISION_BF16) {
        elbo_gemm_bf16(l->kern, ws->bf16, hi - lo, l->in, b, 1.0f, dyt, x, 0.0f, dw, l->in, NULL);
    } else {
        elbo_gemm(l->kern, ws, hi - lo, l->in, b, 1.0f, dyt, x, 0.0f, dw, l->in, NULL);
    }
    l->kern->column_sum(db, dy + lo, b, hi - lo, l->out, 0);
}

void elbo_linear_param_grads(const elbo_linear *l, elbo_gemm_workspace *ws, float *grads, const float *dy,
                             elbo_operand x, size_t b, size_t lo, size_t hi)
{
    elbo_linear_param_grads_into(l, ws, grads + l->w_off + lo * l->in, grads + l->b_off + lo, dy, x, NULL, b, lo, hi);
}

void elbo_linear_param_grads_packed(const elbo_linear *l, elbo_gemm_workspace *ws, float *grads, const float *dy,
                                    const elbo_packed_b *x, size_t b, size_t lo, size_t hi)
{
    elbo_linear_param_grads_into(l, ws, grads + l->w_off + lo * l->in, grads + l->b_off + lo, dy, (elbo_operand){0},
                                 x, b, lo, hi);
}

void elbo_linear_param_grads_add(const elbo_linear *l, elbo_gemm_workspace *ws, float *grads, const float *dy,
                                 elbo_operand x, size_t b, size_t lo, size_t hi)
{
    if (hi == lo || b == 0)
        return;
    elbo_operand dyt = elbo_operand_f32(dy + lo, l->out, ELBO_TRANS);
    if (l->precision == ELBO_PRECISION_BF16)
        elbo_gemm_bf16(l->kern, ws->bf16, hi - lo, l->in, b, 1.0f, dyt, x, 1.0f, grads + l->w_off + lo * l->in, l->in,
                       NULL);
    else
        elbo_gemm(l->kern, ws, hi - lo, l->in, b, 1.0f, dyt, x, 1.0f, grads + l->w_off + lo * l->in, l->in, NULL);
    l->kern->column_sum(grads + l->b_off + lo, dy + lo, b, hi - lo, l->out, 1);
}

/* [lo, hi) of part p of nparts over n items, boundaries on multiples of align (the last part takes the rest). */
static void split_range(size_t n, size_t p, size_t nparts, size_t align, size_t *lo, size_t *hi)
{
    size_t units = (n + align - 1) / align;
    *lo = units * p / nparts * align;
    *hi = units * (p + 1) / nparts * align;
    if (*lo > n)
        *lo = n;
    if (*hi > n)
        *hi = n;
}

/* Whole NR panels, so that the block is whole panels of the forward packing (N = out) too. Row blocks of dW are
 * contiguous in the arena: no cache line is written by two threads, and each thread streams through its own pages
 * (a split by input columns interleaves both threads' lines in every row, and the optimizer then runs at half
 * speed on two threads). Rotating which part gets a larger block from layer to layer evens the remainders out
 * over a step instead of landing them all on the last part. */
size_t elbo_linear_panel_width(const elbo_linear *l)
{
    return l->precision == ELBO_PRECISION_BF16 ? l->kern->bf16_nr : l->kern->blocking.nr;
}

void elbo_linear_features_of_part(const elbo_linear *l, size_t p, size_t nparts, size_t rotate, size_t *lo,
                                  size_t *hi)
{
    split_range(l->out, (p + rotate) % nparts, nparts, elbo_linear_panel_width(l), lo, hi);
}

/* Split by rows, a thread reads the other threads' share of W (out x in) every step, just after they rewrote it;
 * split by features, it reads their rows of the input (b x in) and they read its columns of the output
 * (b x out); both scale with (nparts - 1) / nparts. At least 4 panels per part, so that a part's one panel more
 * or less stays a small imbalance. */
int elbo_forward_by_features(size_t out, size_t in, size_t panel_width, size_t b, size_t nparts)
{
    size_t panels = (out + panel_width - 1) / panel_width;
    return nparts > 1 && panels >= 4 * nparts && out * in > b * (in + out);
}

int elbo_linear_forward_by_features(const elbo_linear *l, size_t b, size_t nparts)
{
    return elbo_forward_by_features(l->out, l->in, elbo_linear_panel_width(l), b, nparts);
}

size_t elbo_linear_packed_bytes(const elbo_linear *l, int bwd)
{
    if (l->precision == ELBO_PRECISION_BF16) {
        const elbo_packed_b_bf16 *p = bwd ? &l->bwd16 : &l->fwd16;
        return p->data ? elbo_packed_b_bf16_words(l->kern, p->k, p->n) * sizeof(uint32_t) : 0;
    }
    if (!bwd)
        return elbo_packed_b_floats(l->kern, l->in, l->out) * sizeof(float);
    return l->bwd.data && !l->bwd.view_ld ? elbo_packed_b_floats(l->kern, l->out, l->in) * sizeof(float) : 0;
}

void *elbo_linear_packed_data(const elbo_linear *l, int bwd)
{
    if (l->precision == ELBO_PRECISION_BF16)
        return bwd ? l->bwd16.data : l->fwd16.data;
    return bwd ? l->bwd.data : l->fwd.data;
}
