/* The chunked, tree-ordered training step (train_chunked.h). */
#include "train_chunked.h"

#include <assert.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"

/* Doubles per chunk of loss sums: the loss and its parts. */
#define LOSS_WIDTH (1 + ELBO_LOSS_PARTS)
/* Doubles per chunk of a phase's values: its loss sums, then the sums of fix_rows of each of its trainables that
 * has them (at most one per layer). */
#define CHUNK_WIDTH (LOSS_WIDTH + ELBO_MAX_LAYERS)
_Static_assert(CHUNK_WIDTH <= ELBO_TREE_MAX_WIDTH, "a chunk's values fit the tree's double sums");

struct elbo_chunked {
    elbo_chunked_config cfg;
    elbo_grad_tree tree;     /* for tree_rows rows (replanned when a step's b differs: the last partial batch) */
    size_t tree_rows;
    size_t n;                /* floats in the parameter arena */
    float **piece;           /* (piece_cap) arena-sized buffers: this process's pieces */
    size_t piece_cap;
    float *scratch[64];      /* (levels_cap) arena-sized buffers for right children */
    size_t levels_cap;
    double *closs;           /* (chunks CHUNK_WIDTH) the chunks' loss and fix_rows sums */
    size_t closs_cap;
};

void elbo_chunked_free(struct elbo_chunked *c)
{
    if (!c)
        return;
    elbo_grad_tree_free(&c->tree);
    for (size_t i = 0; i < c->piece_cap; i++)
        free(c->piece[i]);
    free(c->piece);
    for (size_t i = 0; i < c->levels_cap; i++)
        free(c->scratch[i]);
    free(c->closs);
    free(c);
}

/* A zeroed 64-byte aligned buffer of n floats, or NULL. */
static float *arena_buffer(size_t n)
{
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p)
        memset(p, 0, bytes);
    return p;
}

/* The first piece index of this process (every piece when simulating) and how many. */
static void my_pieces(const struct elbo_chunked *c, size_t *first, size_t *count)
{
    const elbo_grad_tree *t = &c->tree;
    if (!c->cfg.exchange) {
        *first = 0;
        *count = t->n_pieces;
        return;
    }
    *first = t->piece_first[c->cfg.rank];
    *count = t->piece_first[c->cfg.rank + 1] - *first;
}

/* Plans the tree for a step of b rows and grows the buffers it needs; returns 0 or -1 on out-of-memory. */
static int plan_step(struct elbo_chunked *c, size_t b)
{
    if (c->tree_rows == b && c->tree.range)
        return 0;
    size_t chunks = (b + c->cfg.chunk_rows - 1) / c->cfg.chunk_rows;
    elbo_grad_tree_free(&c->tree);
    c->tree_rows = 0;
    if (elbo_grad_tree_init(&c->tree, chunks, c->cfg.ranks) != 0)
        return -1;
    size_t first, count;
    my_pieces(c, &first, &count);
    if (count > c->piece_cap) {
        float **p = realloc(c->piece, count * sizeof *p);
        if (!p)
            return -1;
        c->piece = p;
        for (; c->piece_cap < count; c->piece_cap++)
            if (!(c->piece[c->piece_cap] = arena_buffer(c->n)))
                return -1;
    }
    assert(c->tree.levels < 64);
    for (; c->levels_cap < c->tree.levels + 1; c->levels_cap++)
        if (!(c->scratch[c->levels_cap] = arena_buffer(c->n)))
            return -1;
    if (chunks > c->closs_cap) {
        double *l = realloc(c->closs, chunks * CHUNK_WIDTH * sizeof *l);
        if (!l)
            return -1;
        c->closs = l;
        c->closs_cap = chunks;
    }
    c->tree_rows = b;
    return 0;
}

int elbo_trainer_use_chunks(elbo_trainer *tr, const elbo_chunked_config *cfg, char *err, size_t errlen)
{
    const elbo_model_ops *ops = tr->model.ops;
    elbo_chunked_config k = *cfg;
    if (!k.chunk_rows)
        k.chunk_rows = ELBO_CHUNK_ROWS_DEFAULT;
    if (!k.ranks)
        k.ranks = 1;
    size_t chunks = (tr->batch + k.chunk_rows - 1) / k.chunk_rows;
    int per_row = 1;
    for (size_t q = 0; q < tr->n_phases; q++)
        per_row = per_row && tr->phase[q].rows_loss;
    if (!per_row) {
        snprintf(err, errlen, "the %s model cannot train in chunks (it has no per-row loss sums)", ops->kind);
        return -1;
    }
    if (k.ranks > chunks) {
        snprintf(err, errlen, "%zu ranks but --batch %zu has only %zu chunks of %zu rows: use at most %zu ranks or a "
                 "larger --batch", k.ranks, tr->batch, chunks, k.chunk_rows, chunks);
        return -1;
    }
    struct elbo_chunked *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory allocating the chunked step");
        return -1;
    }
    c->cfg = k;
    c->n = tr->model.layout->total;
    if (plan_step(c, tr->batch) != 0) {
        elbo_chunked_free(c);
        snprintf(err, errlen, "out of memory allocating the chunked step (batch %zu)", tr->batch);
        return -1;
    }
    tr->chunked = c;
    return 0;
}

/* What a leaf or an add of one block needs: a layer's output gradient and input over this process's rows, and
 * which of its output features. */
typedef struct {
    const elbo_trainable *t;
    elbo_gemm_workspace *ws;
    size_t lo, hi;            /* output features */
    size_t chunk_rows, b;     /* C and the step's rows */
    size_t row0;              /* the step's row of this process's row 0 */
} block_ctx;

/* x advanced by `rows` rows (x is not transposed: (rows, in) row-major). */
static elbo_operand operand_rows_from(elbo_operand x, size_t rows)
{
    assert(x.trans == ELBO_NOTRANS);
    size_t elem = x.dtype == ELBO_DTYPE_U8 ? 1 : sizeof(float);
    x.data = (const char *)x.data + rows * x.ld * elem;
    return x;
}

/* elbo_tree_leaf_fn: chunk's dW rows [lo, hi) (out, in) and db [lo, hi) into out's arena offsets: one GEMM over
 * the chunk's rows (K = C, or the last chunk's rest), and a second one adding the chunk's rows of the layer's second
 * block of rows when it has one. */
static void chunk_grads(void *ctx, size_t chunk, float *out)
{
    const block_ctx *k = ctx;
    size_t r0 = chunk * k->chunk_rows, r1 = r0 + k->chunk_rows < k->b ? r0 + k->chunk_rows : k->b;
    const elbo_linear *l = k->t->layer;
    size_t lr0 = r0 - k->row0;
    elbo_linear_param_grads(l, k->ws, out, k->t->dy + lr0 * l->out, operand_rows_from(k->t->x, lr0), r1 - r0,
                            k->lo, k->hi);
    if (k->t->second_rows) {
        size_t sr0 = k->t->second_rows + lr0;
        elbo_linear_param_grads_add(l, k->ws, out, k->t->dy + sr0 * l->out, operand_rows_from(k->t->x, sr0),
                                    r1 - r0, k->lo, k->hi);
    }
}

/* elbo_tree_add_fn: out += in over the block's dW rows and db entries. */
static void block_add(void *ctx, float *out, const float *in)
{
    const block_ctx *k = ctx;
    const elbo_linear *l = k->t->layer;
    for (size_t i = l->w_off + k->lo * l->in, e = l->w_off + k->hi * l->in; i < e; i++)
        out[i] += in[i];
    for (size_t i = l->b_off + k->lo, e = l->b_off + k->hi; i < e; i++)
        out[i] += in[i];
}

/* Thread t of nt forms this process's pieces for its output features of the trainable layer t_i. */
static void form_layer_pieces(elbo_trainer *tr, const elbo_trainable *t_i, size_t b, size_t row0, size_t t, size_t nt)
{
    struct elbo_chunked *c = tr->chunked;
    size_t first, count;
    my_pieces(c, &first, &count);
    block_ctx k = {t_i, &tr->team.ws[t], 0, 0, c->cfg.chunk_rows, b, row0};
    elbo_linear_features_of_part(t_i->layer, t, nt, t_i->rotate, &k.lo, &k.hi);
    if (k.hi == k.lo)
        return;
    for (size_t p = 0; p < count; p++)
        elbo_grad_tree_piece(&c->tree, c->tree.piece[first + p], chunk_grads, block_add, &k, c->piece[p], c->scratch);
}

/* Thread t of nt applies each trainable layer's fix (with its row sum over the whole step, fix_sums[i]), the
 * optimizer and the model's after_update to its output features of every trainable layer and repacks them. */
static void update_features(elbo_trainer *tr, const elbo_trainable *trainable, size_t n_trainable,
                            const double *fix_sums, size_t t, size_t nt)
{
    const elbo_model *m = &tr->model;
    for (size_t i = 0; i < n_trainable; i++) {
        elbo_linear *l = trainable[i].layer;
        size_t lo, hi;
        elbo_linear_features_of_part(l, t, nt, trainable[i].rotate, &lo, &hi);
        if (hi == lo)
            continue;
        if (trainable[i].fix_weight_grads)
            trainable[i].fix_weight_grads(trainable[i].fix_ctx, m->grads, lo, hi, fix_sums[i]);
        elbo_trainer_update_block(tr, l->w_off + lo * l->in, m->grads + l->w_off + lo * l->in, 1, (hi - lo) * l->in,
                                  l->in);
        elbo_trainer_update_block(tr, l->b_off + lo, m->grads + l->b_off + lo, 1, hi - lo, l->out);
        if (!trainable[i].packed_elsewhere)
            elbo_linear_pack_features(l, m->params, lo, hi);
    }
}

/* Rows rows[r0, r1) of the data into the trainer's buffers at local rows [r0 - row0, r1 - row0). */
static void gather(elbo_trainer *tr, const elbo_images_view *data, const uint32_t *rows, size_t row0, size_t r0,
                   size_t r1)
{
    size_t d = data->dim;
    for (size_t r = r0; r < r1; r++) {
        memcpy(tr->xbatch + (r - row0) * d, data->pixels + (size_t)rows[r] * d, d);
        tr->ybatch[r - row0] = data->labels ? data->labels[rows[r]] : 0;
    }
    tr->model.kern->unit_from_u8(tr->xf + (r0 - row0) * d, tr->xbatch + (r0 - row0) * d, (r1 - r0) * d);
}

/* This process's chunks' values for phase ph into c->closs (chunks [lo, hi) of rows from row0): the loss sums, then
 * for each trainable with fix_rows their sum over the chunk's rows (of both blocks of rows, in order). */
static void chunk_values(elbo_trainer *tr, const elbo_train_phase *ph, const elbo_trainable *trainable,
                         size_t n_trainable, size_t lo, size_t hi, size_t b, size_t row0)
{
    struct elbo_chunked *c = tr->chunked;
    size_t cr = c->cfg.chunk_rows;
    for (size_t ch = lo; ch < hi; ch++) {
        size_t r0 = ch * cr, r1 = r0 + cr < b ? r0 + cr : b;
        elbo_step_loss l = ph->rows_loss(tr->model.impl, tr->act, r0 - row0, r1 - row0);
        double *v = c->closs + ch * CHUNK_WIDTH;
        memset(v, 0, CHUNK_WIDTH * sizeof *v);
        v[0] = l.loss;
        for (size_t k = 0; k < ELBO_LOSS_PARTS; k++)
            v[1 + k] = l.part[k];
        for (size_t i = 0; i < n_trainable; i++) {
            const elbo_trainable *t = &trainable[i];
            double sum = 0;
            for (size_t r = r0 - row0; t->fix_rows && r < r1 - row0; r++)
                sum += t->fix_rows[r];
            for (size_t r = r0 - row0; t->fix_rows && t->second_rows && r < r1 - row0; r++)
                sum += t->fix_rows[t->second_rows + r];
            v[LOSS_WIDTH + i] = sum;
        }
    }
}

elbo_step_loss elbo_trainer_step_chunked(elbo_trainer *tr, const elbo_images_view *data, const uint32_t *rows,
                                         size_t b)
{
    struct elbo_chunked *c = tr->chunked;
    const elbo_model *m = &tr->model;
    const elbo_grad_exchange *ex = c->cfg.exchange;
    elbo_step_loss loss = {NAN, {0, 0}};
    size_t nt = tr->team.n, nq = tr->n_phases;
    tr->nonfinite_grads = 0;
    tr->stop_phase = 0;
    if (plan_step(c, b) != 0) {
        fprintf(stderr, "elbo: out of memory planning a chunked step of %zu rows\n", b);
        abort();
    }
    const elbo_grad_tree *tree = &c->tree;
    /* this process's chunks and rows: a rank's own, or (simulating every rank) the whole batch */
    size_t ch_lo = ex ? tree->range[c->cfg.rank] : 0, ch_hi = ex ? tree->range[c->cfg.rank + 1] : tree->n_chunks;
    size_t row0 = ch_lo * c->cfg.chunk_rows, row1 = ch_hi * c->cfg.chunk_rows < b ? ch_hi * c->cfg.chunk_rows : b;
    size_t bl = row1 > row0 ? row1 - row0 : 0;
    elbo_batch bt = {.x = tr->xbatch, .xf = tr->xf, .labels = tr->ybatch, .b = bl, .seed = tr->seed,
                     .step = (uint32_t)tr->step, .row0 = row0, .b_step = b};
    elbo_trainable trainable[ELBO_MAX_PHASES][ELBO_MAX_LAYERS];
    size_t n_trainable[ELBO_MAX_PHASES];
    for (size_t q = 0; q < nq; q++)
        n_trainable[q] = tr->phase[q].trainables(m->impl, tr->act, &bt, trainable[q]);
    elbo_optimizer_begin_step(&tr->opt); /* counted now, so no thread waits for it; undone if not taken */
    unsigned flags = 0;
    int bad_rows[ELBO_MAX_PHASES] = {0};
    double fix_sums[ELBO_MAX_LAYERS];
#pragma omp parallel num_threads((int)nt) default(none) shared(tr, c, m, ex, tree, data, rows, b, bt, bl, row0, \
                                                                   ch_lo, ch_hi, nt, nq, trainable, n_trainable, \
                                                                   flags, bad_rows, loss, fix_sums)
    {
        size_t t = (size_t)omp_get_thread_num(), r0, r1;
        elbo_team_rows(bl, t, nt, &r0, &r1);
        if (r1 > r0)
            gather(tr, data, rows, row0, row0 + r0, row0 + r1);
        for (size_t q = 0; q < nq; q++) {
            const elbo_train_phase *ph = &tr->phase[q];
            const elbo_trainable *tq = trainable[q];
            size_t nq_tr = n_trainable[q];
            if (ph->runs && !ph->runs(m->impl, tr->step))
                continue; /* every thread skips it alike */
            if (q > 0) {
                /* the previous phase's update is done: its parameters are updated and repacked */
#pragma omp barrier
            }
            /* also on a rank that owns no chunk of a last partial batch (bl = 0): a model may keep state in step
             * on every rank there (the GAN's spectral norms iterate u and v once per phase) */
            ph->train_rows(m->impl, tr->act, &tr->team.ws[t], &bt, r0, r1, t, nt);
            if (r1 > r0 && !ph->grads_finite(m->impl, tr->act, r0, r1)) {
#pragma omp atomic write
                bad_rows[q] = 1;
            }
#pragma omp barrier
#pragma omp master
            {
                /* every row's loss and output gradients are done: the ranks agree on going on */
                chunk_values(tr, ph, tq, nq_tr, ch_lo, ch_hi, b, row0);
                double mine[CHUNK_WIDTH] = {0};
                if (ch_hi > ch_lo)
                    elbo_grad_tree_sum_doubles(ch_hi - ch_lo, c->closs + ch_lo * CHUNK_WIDTH, CHUNK_WIDTH, mine);
                unsigned f = (isfinite(mine[0]) ? 0u : ELBO_STEP_LOSS_NONFINITE) |
                             (bad_rows[q] ? ELBO_STEP_GRADS_NONFINITE : 0u);
                f = ex ? ex->agree(ex->ctx, f) : f;
                if (!(f & ELBO_STEP_PEER_FAILED)) {
                    if (ex)
                        ex->losses(ex->ctx, tree, c->closs, CHUNK_WIDTH);
                    double all[CHUNK_WIDTH];
                    elbo_grad_tree_sum_doubles(tree->n_chunks, c->closs, CHUNK_WIDTH, all);
                    loss.loss = all[0];
                    for (size_t k = 0; k < ELBO_LOSS_PARTS; k++)
                        loss.part[k] = all[1 + k];
                    for (size_t i = 0; i < nq_tr; i++)
                        fix_sums[i] = all[LOSS_WIDTH + i];
                    if (!isfinite(loss.loss))
                        f |= ELBO_STEP_LOSS_NONFINITE;
                } else {
                    loss.loss = NAN;
                }
                flags = f;
                tr->stop_phase = q;
            }
#pragma omp barrier
            if (flags)
                break; /* every thread reads the same flags */
            if (ex && ex->grads_begin) {
                /* layer by layer: a layer's buckets travel while the next layers' pieces are formed */
                for (size_t i = 0; i < nq_tr; i++) {
                    form_layer_pieces(tr, &tq[i], b, row0, t, nt);
#pragma omp barrier
#pragma omp master
                    {
                        const elbo_linear *l = tq[i].layer;
                        ex->grads_begin(ex->ctx, tree, c->piece, m->grads, l->w_off, l->w_off + l->out * l->in);
                        ex->grads_begin(ex->ctx, tree, c->piece, m->grads, l->b_off, l->b_off + l->out);
                    }
                }
#pragma omp master
                ex->grads_finish(ex->ctx);
#pragma omp barrier
            } else {
                for (size_t i = 0; i < nq_tr; i++)
                    form_layer_pieces(tr, &tq[i], b, row0, t, nt);
#pragma omp barrier
#pragma omp master
                {
                    if (ex)
                        ex->grads(ex->ctx, tree, c->piece, m->grads, c->n);
                    else
                        elbo_grad_tree_combine(tree, (const float *const *)c->piece, c->n, c->scratch, m->grads);
                }
#pragma omp barrier
            }
            update_features(tr, tq, nq_tr, fix_sums, t, nt);
        }
    }
    tr->nonfinite_grads = !(flags & (ELBO_STEP_LOSS_NONFINITE | ELBO_STEP_PEER_FAILED)) &&
                          (flags & ELBO_STEP_GRADS_NONFINITE);
    if (!flags)
        tr->step++;
    else
        tr->opt.step--;
    return loss;
}
