/* Weight gradients, optimizer update and repacking, in blocks of output features. */
#include "tail.h"

/* The sum of t's fix_rows over its rows (t->rows, or b) in row order. */
static double fix_row_sum(const elbo_trainable *t, size_t b)
{
    double s = 0;
    for (size_t r = 0, n = t->rows ? t->rows : b; r < n; r++)
        s += t->fix_rows[r];
    return s;
}

/* Rows [lo, hi) of t's weight gradient and those features of its bias gradient over its rows (t->rows, or b), into
 * grads at the arena's offsets, from its packed x when it has one. */
static void layer_param_grads(const elbo_trainable *t, elbo_gemm_workspace *ws, float *grads, size_t b, size_t lo,
                              size_t hi)
{
    const elbo_linear *l = t->layer;
    elbo_linear_param_grads_into(l, ws, grads + l->w_off + lo * l->in, grads + l->b_off + lo, t->dy, t->x, t->x_packed,
                                 t->rows ? t->rows : b, lo, hi);
}

/* ELBO_TAIL_BLOCK_PANELS fp32 panels' worth of output features, in whole panels of l's own width (bf16's are wider). */
static size_t block_rows(const elbo_linear *l)
{
    size_t w = elbo_linear_panel_width(l);
    return (ELBO_TAIL_BLOCK_PANELS * l->kern->blocking.nr + w - 1) / w * w;
}

size_t elbo_tail_plan(const elbo_trainable *t, size_t n, size_t part, size_t nparts, elbo_tail_chunk *out)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t lo, hi;
        elbo_linear_features_of_part(t[i].layer, part, nparts, t[i].rotate, &lo, &hi);
        size_t step = nparts > 1 ? block_rows(t[i].layer) : hi - lo + 1;
        for (size_t r = lo; r < hi; r += step, count++)
            if (out)
                out[count] = (elbo_tail_chunk){(uint32_t)i, (uint32_t)r, (uint32_t)(hi - r < step ? hi : r + step)};
    }
    return count;
}

size_t elbo_tail_chunk_scratch(const elbo_trainable *t, const elbo_tail_chunk *c)
{
    const elbo_trainable *tr = &t[c->layer];
    return tr->fix_weight_grads ? 0 : (size_t)(c->hi - c->lo) * (tr->layer->in + 1);
}

void elbo_tail_chunk_run(const elbo_trainable *t, elbo_gemm_workspace *ws, const float *params, float *grads,
                         float *scratch, size_t scratch_floats, size_t b, const elbo_tail_chunk *c,
                         elbo_param_update_fn update, void *ctx)
{
    const elbo_trainable *tr = &t[c->layer];
    elbo_linear *l = tr->layer;
    size_t lo = c->lo, hi = c->hi, need = elbo_tail_chunk_scratch(t, c);
    if (hi == lo)
        return;
    float *dw = grads + l->w_off + lo * l->in, *db = grads + l->b_off + lo;
    if (scratch && need && need <= scratch_floats) {
        dw = scratch;
        db = scratch + (hi - lo) * l->in;
    }
    elbo_linear_param_grads_into(l, ws, dw, db, tr->dy, tr->x, tr->x_packed, tr->rows ? tr->rows : b, lo, hi);
    if (tr->fix_weight_grads)
        tr->fix_weight_grads(tr->fix_ctx, grads, lo, hi, fix_row_sum(tr, b));
    /* the update and the repacking by blocks of a few panels: each block's weights are repacked (rounded to bf16
     * in a BF16 layer) from L1 or L2 right after the optimizer wrote them, not from memory after a whole layer */
    for (size_t r0 = lo, step = block_rows(l); r0 < hi; r0 += step) {
        size_t r1 = hi - r0 < step ? hi : r0 + step;
        update(ctx, l->w_off + r0 * l->in, dw + (r0 - lo) * l->in, 1, (r1 - r0) * l->in, l->in);
        update(ctx, l->b_off + r0, db + (r0 - lo), 1, r1 - r0, l->out);
        if (!tr->packed_elsewhere)
            elbo_linear_pack_features(l, params, r0, r1);
    }
}

void elbo_tail_grads_part(const elbo_trainable *t, size_t n, elbo_gemm_workspace *ws, float *grads, size_t b,
                          size_t part, size_t nparts)
{
    for (size_t i = 0; i < n; i++) {
        size_t lo, hi;
        elbo_linear_features_of_part(t[i].layer, part, nparts, t[i].rotate, &lo, &hi);
        layer_param_grads(&t[i], ws, grads, b, lo, hi);
        if (t[i].fix_weight_grads)
            t[i].fix_weight_grads(t[i].fix_ctx, grads, lo, hi, fix_row_sum(&t[i], b));
    }
}
