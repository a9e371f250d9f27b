/* Minibatch training loop and evaluation, for any model (elbo_model). */
#include "train.h"

#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "train_chunked.h"

/* Interleaves the data every thread reads across the NUMA nodes: parameters, gradients, optimizer state and
 * the packed weights (a no-op on one node). */
static void interleave_shared(const elbo_topology *topo, const elbo_model *m, elbo_optimizer *o)
{
    size_t bytes = m->layout->total * sizeof(float);
    elbo_topology_interleave_area(topo, m->params, bytes);
    elbo_topology_interleave_area(topo, m->grads, bytes);
    if (o->m)
        elbo_topology_interleave_area(topo, o->m, bytes);
    if (o->v)
        elbo_topology_interleave_area(topo, o->v, bytes);
    for (size_t i = 0; i < m->n_layers; i++) {
        const elbo_linear *l = &m->layer[i];
        elbo_topology_interleave_area(topo, elbo_linear_packed_data(l, 0), elbo_linear_packed_bytes(l, 0));
        if (elbo_linear_packed_bytes(l, 1)) /* a view is part of the parameters */
            elbo_topology_interleave_area(topo, elbo_linear_packed_data(l, 1), elbo_linear_packed_bytes(l, 1));
    }
}

/* The batch a step over b rows sees: the trainer's gathered rows. */
static elbo_batch step_batch(const elbo_trainer *tr, size_t b)
{
    return (elbo_batch){.x = tr->xbatch, .xf = tr->xf, .labels = tr->ybatch, .b = b, .seed = tr->seed,
                        .step = (uint32_t)tr->step};
}

/* The phases of m's step: its ops' list, or the one phase of its ops' own members. Returns how many. */
static size_t model_phases(const elbo_model_ops *ops, elbo_train_phase *out)
{
    if (ops->n_phases == 0) {
        out[0] = (elbo_train_phase){"step", ops->train_rows, ops->grads_finite, ops->batch_loss, ops->trainables, NULL,
                                    ops->rows_loss};
        return 1;
    }
    for (size_t q = 0; q < ops->n_phases && q < ELBO_MAX_PHASES; q++)
        out[q] = ops->phases[q];
    return ops->n_phases < ELBO_MAX_PHASES ? ops->n_phases : ELBO_MAX_PHASES;
}

/* Every phase's trainable layers for the batch bt into tr->trainable (and their first indices). */
static void phase_trainables(elbo_trainer *tr, const elbo_batch *bt)
{
    for (size_t q = 0; q < tr->n_phases; q++)
        tr->trainable_first[q + 1] =
            tr->trainable_first[q] +
            tr->phase[q].trainables(tr->model.impl, tr->act, bt, tr->trainable + tr->trainable_first[q]);
}

/* Plans every phase's and part's tail blocks for nt threads; returns 0 or -1 on out-of-memory. */
static int tail_plan_init(elbo_trainer *tr, size_t nt)
{
    elbo_batch bt = step_batch(tr, tr->batch);
    size_t nq = tr->n_phases, stride = nt + 1;
    phase_trainables(tr, &bt);
    tr->tail_first = malloc(nq * stride * sizeof *tr->tail_first);
    tr->tail_next = aligned_alloc(_Alignof(elbo_tail_cursor), nq * nt * sizeof *tr->tail_next);
    if (!tr->tail_first || !tr->tail_next)
        return -1;
    size_t total = 0;
    for (size_t q = 0; q < nq; q++) {
        const elbo_trainable *t = tr->trainable + tr->trainable_first[q];
        size_t n = tr->trainable_first[q + 1] - tr->trainable_first[q];
        tr->tail_first[q * stride] = total;
        for (size_t p = 0; p < nt; p++)
            tr->tail_first[q * stride + p + 1] = tr->tail_first[q * stride + p] + elbo_tail_plan(t, n, p, nt, NULL);
        total = tr->tail_first[q * stride + nt];
    }
    tr->tail = malloc((total ? total : 1) * sizeof *tr->tail);
    if (!tr->tail)
        return -1;
    size_t scratch = 0;
    for (size_t q = 0; q < nq; q++) {
        const elbo_trainable *t = tr->trainable + tr->trainable_first[q];
        size_t n = tr->trainable_first[q + 1] - tr->trainable_first[q];
        for (size_t p = 0; p < nt; p++)
            elbo_tail_plan(t, n, p, nt, tr->tail + tr->tail_first[q * stride + p]);
        for (size_t c = tr->tail_first[q * stride]; c < tr->tail_first[q * stride + nt]; c++) {
            size_t f = elbo_tail_chunk_scratch(t, &tr->tail[c]);
            scratch = f > scratch ? f : scratch;
        }
    }
    /* each thread's gradient scratch on its own cache lines (16 floats = 64 bytes) */
    tr->tail_scratch_floats = (scratch + 15) / 16 * 16;
    tr->tail_scratch = aligned_alloc(64, (tr->tail_scratch_floats ? tr->tail_scratch_floats : 16) * nt * sizeof(float));
    return tr->tail_scratch ? 0 : -1;
}

int elbo_trainer_init(elbo_trainer *tr, const elbo_model *model, const elbo_optimizer_config *opt, size_t batch,
                      uint64_t seed, size_t n_train, size_t n_threads, const elbo_topology *topo, char *err,
                      size_t errlen)
{
    memset(tr, 0, sizeof *tr);
    tr->model = *model;
    tr->seed = seed;
    tr->batch = batch;
    tr->perm = malloc((n_train ? n_train : 1) * sizeof *tr->perm);
    size_t nt = n_threads ? n_threads : 1, d = model->input_dim;
    elbo_act_arena_init(&tr->batch_arena);
    int xbatch = elbo_act_arena_add(&tr->batch_arena, "x_u8", d);
    int xf = elbo_act_arena_add(&tr->batch_arena, "x_f32", d * sizeof(float));
    int batch_ok = elbo_act_arena_alloc(&tr->batch_arena, batch) == 0;
    tr->xbatch = elbo_act_arena_view(&tr->batch_arena, xbatch);
    tr->xf = elbo_act_arena_view(&tr->batch_arena, xf);
    tr->ybatch = malloc(batch); /* a few bytes per thread: not worth a page of each NUMA node */
    tr->n_phases = model_phases(model->ops, tr->phase);
    if (batch_ok)
        tr->act = model->ops->act_new(model->impl, batch);
    if (!tr->perm || !batch_ok || !tr->ybatch || elbo_optimizer_init(&tr->opt, opt, model->layout) != 0 || !tr->act ||
        tail_plan_init(tr, nt) != 0 || elbo_team_init(&tr->team, nt, model->kern, topo) != 0) {
        elbo_trainer_free(tr);
        snprintf(err, errlen, "out of memory allocating the trainer (batch %zu)", batch);
        return -1;
    }
    elbo_team_place_arena(&tr->team, model->ops->act_arena(tr->act));
    elbo_team_place_arena(&tr->team, &tr->batch_arena);
    if (topo && tr->team.n > 1)
        interleave_shared(topo, model, &tr->opt);
    return 0;
}

void elbo_trainer_free(elbo_trainer *tr)
{
    elbo_chunked_free(tr->chunked);
    elbo_optimizer_free(&tr->opt);
    if (tr->act)
        tr->model.ops->act_free(tr->act);
    elbo_team_free(&tr->team);
    free(tr->tail);
    free(tr->tail_scratch);
    free(tr->tail_first);
    free(tr->tail_next);
    free(tr->perm);
    free(tr->ybatch);
    elbo_act_arena_free(&tr->batch_arena);
    memset(tr, 0, sizeof *tr);
}

void elbo_trainer_update_block(void *ctx, size_t off, const float *g, size_t rows, size_t cols, size_t ld)
{
    elbo_trainer *tr = ctx;
    elbo_optimizer_update_block(&tr->opt, tr->model.kern, tr->model.params, g, off, rows, cols, ld);
    if (tr->model.ops->after_update)
        tr->model.ops->after_update(tr->model.impl, off, rows, cols, ld, tr->opt.step);
}

/* Thread t of nt runs phase q's tail over b rows: its own part's blocks first, in order, then any block another
 * part has not claimed yet, so a thread slowed by another process on its core is helped rather than waited for.
 * Each block is claimed once; which thread runs it does not change its bits. */
static void run_tail(elbo_trainer *tr, elbo_gemm_workspace *ws, size_t b, size_t t, size_t nt, size_t q)
{
    const size_t *first = tr->tail_first + q * (nt + 1);
    elbo_tail_cursor *next = tr->tail_next + q * nt;
    const elbo_trainable *trainable = tr->trainable + tr->trainable_first[q];
    for (size_t k = 0; k < nt; k++) {
        size_t p = (t + k) % nt, end = first[p + 1], c;
        while ((c = atomic_fetch_add_explicit(&next[p].next, 1, memory_order_relaxed)) < end)
            elbo_tail_chunk_run(trainable, ws, tr->model.params, tr->model.grads,
                                tr->keep_grads ? NULL : tr->tail_scratch + t * tr->tail_scratch_floats,
                                tr->tail_scratch_floats, b, &tr->tail[c], elbo_trainer_update_block, tr);
    }
}

/* Rows [r0, r1) of the batch into the trainer's buffers: pixels (as bytes and as floats x / 255) and labels. */
static void gather_rows(elbo_trainer *tr, const elbo_images_view *data, const uint32_t *rows, size_t r0, size_t r1)
{
    size_t d = data->dim;
    for (size_t r = r0; r < r1; r++) {
        memcpy(tr->xbatch + r * d, data->pixels + (size_t)rows[r] * d, d);
        tr->ybatch[r] = data->labels ? data->labels[rows[r]] : 0;
    }
    tr->model.kern->unit_from_u8(tr->xf + r0 * d, tr->xbatch + r0 * d, (r1 - r0) * d);
}

elbo_step_loss elbo_trainer_step(elbo_trainer *tr, const elbo_images_view *data, const uint32_t *rows, size_t b)
{
    if (tr->chunked)
        return elbo_trainer_step_chunked(tr, data, rows, b);
    const elbo_model *m = &tr->model;
    size_t nt = tr->team.n, nq = tr->n_phases;
    elbo_step_loss loss = {0, {0, 0}};
    int finite = 1, grads_finite = 1, bad_rows = 0;
    elbo_batch bt = step_batch(tr, b);
    phase_trainables(tr, &bt);
    elbo_optimizer_begin_step(&tr->opt); /* counted now, so no thread waits for it; undone if not taken */
    for (size_t q = 0; q < nq; q++)
        for (size_t p = 0; p < nt; p++)
            atomic_store_explicit(&tr->tail_next[q * nt + p].next, tr->tail_first[q * (nt + 1) + p],
                                  memory_order_relaxed);
#pragma omp parallel num_threads((int)nt) default(none) shared(tr, m, data, rows, b, bt, nt, nq, loss, finite, \
                                                                   grads_finite, bad_rows)
    {
        size_t t = (size_t)omp_get_thread_num(), r0, r1;
        elbo_gemm_workspace *ws = &tr->team.ws[t];
        elbo_team_rows(b, t, nt, &r0, &r1);
        gather_rows(tr, data, rows, r0, r1);
        for (size_t q = 0; q < nq; q++) {
            const elbo_train_phase *ph = &tr->phase[q];
            if (ph->runs && !ph->runs(m->impl, tr->step))
                continue; /* every thread skips it alike */
            if (q > 0) {
                /* the previous phase's tail is done: its parameters are updated and repacked */
#pragma omp barrier
            }
            ph->train_rows(m->impl, tr->act, ws, &bt, r0, r1, t, nt);
            /* Every weight and bias gradient is summed from the layers' output gradients: a NaN or infinity in
             * any row of them is caught here, before any parameter of the phase changes. */
            if (!ph->grads_finite(m->impl, tr->act, r0, r1)) {
#pragma omp atomic write
                bad_rows = 1;
            }
#pragma omp barrier
            /* The barrier before the tail: every row's loss and output gradients are done. Every thread sums the
             * batch loss (the same rows in the same order, so the same bits), reads the same flag, and decides
             * alone whether to update. */
            elbo_step_loss l = ph->batch_loss(m->impl, tr->act, b);
            int bad;
#pragma omp atomic read
            bad = bad_rows;
            int go_on = isfinite(l.loss) && !bad;
            if (t == 0) {
                loss = l;
                finite = isfinite(l.loss);
                grads_finite = !bad;
                tr->stop_phase = q;
            }
            if (!go_on)
                break;
            run_tail(tr, ws, b, t, nt, q);
        }
    }
    tr->nonfinite_grads = finite && !grads_finite;
    if (finite && grads_finite)
        tr->step++;
    else
        tr->opt.step--;
    return loss;
}

/* Describes a non-finite step's loss into err: "the loss became NaN (recon -nan, KL inf)"; for a model of several
 * phases, the phase it stopped in and its non-finite parts: "the discriminator step's loss became NaN (d_loss
 * -nan, d_fake -nan)". */
static void describe_nonfinite_loss(const elbo_trainer *tr, elbo_step_loss l, char *err, size_t errlen)
{
    const elbo_model_ops *ops = tr->model.ops;
    const char *what = isnan(l.loss) ? "NaN" : "infinite";
    if (ops->n_phases == 0) {
        snprintf(err, errlen, "step %ld: the loss became %s (%s %g, %s %g); try a lower --lr", tr->step + 1, what,
                 ops->part_names[0], l.part[0], ops->part_names[1], l.part[1]);
        return;
    }
    char parts[192] = "";
    for (size_t k = 0; k < ELBO_LOSS_PARTS; k++)
        if (ops->part_names[k] && !isfinite(l.part[k]))
            snprintf(parts + strlen(parts), sizeof parts - strlen(parts), "%s%s %g", parts[0] ? ", " : " (",
                     ops->part_names[k], l.part[k]);
    snprintf(err, errlen, "step %ld: the %s step's loss became %s%s%s; try a lower --lr", tr->step + 1,
             tr->phase[tr->stop_phase].name, what, parts, parts[0] ? ")" : "");
}

int elbo_trainer_epoch(elbo_trainer *tr, const elbo_images_view *data, long max_steps, elbo_step_callback cb,
                       void *ctx, elbo_loss_means *out, char *err, size_t errlen)
{
    double sum_loss = 0, sum_part[ELBO_LOSS_PARTS] = {0};
    size_t start = tr->epoch_pos < data->n ? tr->epoch_pos : 0, done = start;
    int rc = 0;
    memset(out, 0, sizeof *out);
    elbo_rng_permutation(tr->perm, data->n, tr->seed, (uint32_t)tr->epoch);
    while (done < data->n) {
        if (max_steps > 0 && tr->step >= max_steps) {
            rc = 1;
            break;
        }
        size_t b = data->n - done < tr->batch ? data->n - done : tr->batch;
        elbo_step_loss l = elbo_trainer_step(tr, data, tr->perm + done, b);
        if (!isfinite(l.loss) || tr->nonfinite_grads) {
            if (tr->nonfinite_grads && tr->model.ops->n_phases == 0)
                snprintf(err, errlen, "step %ld: the gradients became NaN or infinite (loss %g); try a lower --lr",
                         tr->step + 1, l.loss);
            else if (tr->nonfinite_grads)
                snprintf(err, errlen, "step %ld: the %s step's gradients became NaN or infinite (loss %g); try a "
                         "lower --lr", tr->step + 1, tr->phase[tr->stop_phase].name, l.loss);
            else
                describe_nonfinite_loss(tr, l, err, errlen);
            rc = -1;
            break;
        }
        sum_loss += l.loss;
        for (size_t k = 0; k < ELBO_LOSS_PARTS; k++)
            sum_part[k] += l.part[k];
        done += b;
        out->samples = done - start;
        out->loss = sum_loss / (double)out->samples;
        for (size_t k = 0; k < ELBO_LOSS_PARTS; k++)
            out->part[k] = sum_part[k] / (double)out->samples;
        if (cb && cb(ctx, tr, done, data->n, out)) {
            rc = done < data->n ? 1 : 0;
            break;
        }
    }
    if (done == data->n) {
        tr->epoch++;
        tr->epoch_pos = 0;
    } else {
        tr->epoch_pos = done;
    }
    return rc;
}

elbo_loss_means elbo_evaluate(const elbo_model *model, void *act, size_t max_batch, elbo_team *team,
                              const elbo_images_view *data, uint64_t seed)
{
    elbo_loss_means r = {0, {0, 0}, data->n};
    double sum_loss = 0, sum_part[ELBO_LOSS_PARTS] = {0};
    size_t nt = team->n;
    for (size_t c0 = 0; c0 < data->n; c0 += max_batch) {
        size_t b = data->n - c0 < max_batch ? data->n - c0 : max_batch;
        elbo_batch bt = {.x = data->pixels + c0 * data->dim, .labels = data->labels ? data->labels + c0 : NULL,
                         .b = b, .seed = seed, .first_index = c0};
#pragma omp parallel num_threads((int)nt) default(none) shared(model, act, team, bt, b, nt)
        {
            size_t t = (size_t)omp_get_thread_num(), r0, r1;
            elbo_team_rows(b, t, nt, &r0, &r1);
            if (r1 > r0)
                model->ops->eval_rows(model->impl, act, &team->ws[t], &bt, r0, r1);
        }
        elbo_step_loss l = model->ops->batch_loss(model->impl, act, b);
        sum_loss += l.loss;
        for (size_t k = 0; k < ELBO_LOSS_PARTS; k++)
            sum_part[k] += l.part[k];
    }
    if (data->n) {
        r.loss = sum_loss / (double)data->n;
        for (size_t k = 0; k < ELBO_LOSS_PARTS; k++)
            r.part[k] = sum_part[k] / (double)data->n;
    }
    return r;
}
