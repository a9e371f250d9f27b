/* Minibatch training loop and evaluation. */
#include "train.h"

#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "finite.h"
#include "rng.h"

/* Interleaves the data every thread reads across the NUMA nodes: parameters, gradients, optimizer state and
 * the packed weights (a no-op on one node). */
static void interleave_shared(const elbo_topology *topo, elbo_vae *m, elbo_optimizer *o)
{
    size_t bytes = m->layout.total * sizeof(float);
    elbo_topology_interleave_area(topo, m->params, bytes);
    elbo_topology_interleave_area(topo, m->grads, bytes);
    if (o->m)
        elbo_topology_interleave_area(topo, o->m, bytes);
    if (o->v)
        elbo_topology_interleave_area(topo, o->v, bytes);
    for (size_t i = 0; i < m->layout.n_layers; i++) {
        const elbo_linear *l = &m->layer[i];
        elbo_topology_interleave_area(topo, l->fwd.data, elbo_linear_packed_bytes(l, 0));
        if (elbo_linear_packed_bytes(l, 1)) /* a view is part of the parameters */
            elbo_topology_interleave_area(topo, l->bwd.data, elbo_linear_packed_bytes(l, 1));
    }
}

/* Plans every part's tail blocks for nt threads; returns 0 or -1 on out-of-memory. */
static int tail_plan_init(elbo_trainer *tr, size_t nt)
{
    tr->tail_first = malloc((nt + 1) * sizeof *tr->tail_first);
    tr->tail_next = aligned_alloc(_Alignof(elbo_tail_cursor), nt * sizeof *tr->tail_next);
    if (!tr->tail_first || !tr->tail_next)
        return -1;
    tr->tail_first[0] = 0;
    for (size_t p = 0; p < nt; p++)
        tr->tail_first[p + 1] = tr->tail_first[p] + elbo_vae_tail_plan(tr->model, &tr->act, p, nt, NULL);
    tr->tail = malloc((tr->tail_first[nt] ? tr->tail_first[nt] : 1) * sizeof *tr->tail);
    if (!tr->tail)
        return -1;
    for (size_t p = 0; p < nt; p++)
        elbo_vae_tail_plan(tr->model, &tr->act, p, nt, tr->tail + tr->tail_first[p]);
    return 0;
}

int elbo_trainer_init(elbo_trainer *tr, elbo_vae *model, const elbo_optimizer_config *opt, size_t batch,
                      uint64_t seed, size_t n_train, size_t n_threads, const elbo_topology *topo, char *err,
                      size_t errlen)
{
    memset(tr, 0, sizeof *tr);
    tr->model = model;
    tr->seed = seed;
    tr->batch = batch;
    tr->perm = malloc((n_train ? n_train : 1) * sizeof *tr->perm);
    size_t nt = n_threads ? n_threads : 1, d = model->cfg.input_dim;
    elbo_act_arena_init(&tr->batch_arena);
    int xbatch = elbo_act_arena_add(&tr->batch_arena, "x_u8", d);
    int xf = elbo_act_arena_add(&tr->batch_arena, "x_f32", d * sizeof(float));
    int batch_ok = elbo_act_arena_alloc(&tr->batch_arena, batch) == 0;
    tr->xbatch = elbo_act_arena_view(&tr->batch_arena, xbatch);
    tr->xf = elbo_act_arena_view(&tr->batch_arena, xf);
    if (!tr->perm || !batch_ok || elbo_optimizer_init(&tr->opt, opt, &model->layout) != 0 ||
        elbo_vae_activations_init(&tr->act, model, batch) != 0 || tail_plan_init(tr, nt) != 0 ||
        elbo_team_init(&tr->team, nt, model->kern, topo) != 0) {
        elbo_trainer_free(tr);
        snprintf(err, errlen, "out of memory allocating the trainer (batch %zu)", batch);
        return -1;
    }
    elbo_team_place_arena(&tr->team, &tr->act.arena);
    elbo_team_place_arena(&tr->team, &tr->batch_arena);
    if (topo && tr->team.n > 1)
        interleave_shared(topo, model, &tr->opt);
    return 0;
}

void elbo_trainer_free(elbo_trainer *tr)
{
    elbo_optimizer_free(&tr->opt);
    elbo_vae_activations_free(&tr->act);
    elbo_team_free(&tr->team);
    free(tr->tail);
    free(tr->tail_first);
    free(tr->tail_next);
    free(tr->perm);
    elbo_act_arena_free(&tr->batch_arena);
    memset(tr, 0, sizeof *tr);
}

/* Fills eps (b, Z) for step `step`: row r gets the normals of (seed, EPS stream, row r, step). */
static void fill_noise(float *eps, size_t b, size_t z, uint64_t seed, elbo_rng_stream stream, size_t first_index,
                       uint32_t step)
{
    for (size_t r = 0; r < b; r++)
        elbo_rng_normals(eps + r * z, z, seed, stream, (uint32_t)(first_index + r), step);
}

/* elbo_param_update_fn for the trainer (ctx): its optimizer on its model's arenas. */
static void update_params(void *ctx, size_t off, size_t rows, size_t cols, size_t ld)
{
    elbo_trainer *tr = ctx;
    elbo_optimizer_update_block(&tr->opt, tr->model->kern, tr->model->params, tr->model->grads, off, rows, cols, ld);
}

/* Thread t of nt runs the step's tail over b rows: its own part's blocks first, in order, then any block
 * another part has not claimed yet, so a thread slowed by another process on its core is helped rather than
 * waited for. Each block is claimed once; which thread runs it does not change its bits. */
static void run_tail(elbo_trainer *tr, elbo_gemm_workspace *ws, size_t b, size_t t, size_t nt)
{
    for (size_t q = 0; q < nt; q++) {
        size_t p = (t + q) % nt, end = tr->tail_first[p + 1], c;
        while ((c = atomic_fetch_add_explicit(&tr->tail_next[p].next, 1, memory_order_relaxed)) < end)
            elbo_vae_tail_chunk_run(tr->model, &tr->act, ws, tr->xbatch, tr->xf, b, &tr->tail[c], update_params, tr);
    }
}

elbo_batch_loss elbo_trainer_step(elbo_trainer *tr, const elbo_images_view *data, const uint32_t *rows, size_t b)
{
    elbo_vae *m = tr->model;
    elbo_vae_activations *a = &tr->act;
    size_t d = data->dim, z = m->cfg.latent, nt = tr->team.n;
    elbo_batch_loss loss = {0, 0, 0};
    int finite = 1, grads_finite = 1, bad_rows = 0;
    elbo_optimizer_begin_step(&tr->opt); /* counted now, so no thread waits for it; undone if not taken */
    for (size_t p = 0; p < nt; p++)
        atomic_store_explicit(&tr->tail_next[p].next, tr->tail_first[p], memory_order_relaxed);
#pragma omp parallel num_threads((int)nt) default(none) \
    shared(tr, m, a, data, rows, b, d, z, nt, loss, finite, grads_finite, bad_rows)
    {
        size_t t = (size_t)omp_get_thread_num(), r0, r1;
        elbo_gemm_workspace *ws = &tr->team.ws[t];
        elbo_team_rows(b, t, nt, &r0, &r1);
        for (size_t r = r0; r < r1; r++)
            memcpy(tr->xbatch + r * d, data->pixels + (size_t)rows[r] * d, d);
        m->kern->unit_from_u8(tr->xf + r0 * d, tr->xbatch + r0 * d, (r1 - r0) * d);
        fill_noise(a->eps + r0 * z, r1 - r0, z, tr->seed, ELBO_STREAM_EPS, r0, (uint32_t)tr->step);
        elbo_vae_forward_part(m, a, ws, tr->xbatch, tr->xf, b, r0, r1, t, nt);
        elbo_vae_backward_rows(m, a, ws, r0, r1); /* its rows' forward values are complete: no barrier */
        /* Every weight and bias gradient is summed from the layers' output gradients: a NaN or infinity in any
         * row of them is caught here, before any parameter changes. */
        if (!elbo_vae_output_grads_finite(m, a, r0, r1)) {
#pragma omp atomic write
            bad_rows = 1;
        }
#pragma omp barrier
        /* The barrier before the tail: every row's loss and output gradients are done. Every thread sums the batch
         * loss (the same rows in the same order, so the same bits), reads the same flag, and decides alone
         * whether to update. */
        elbo_batch_loss l = elbo_vae_batch_loss(m, a, b);
        int bad;
#pragma omp atomic read
        bad = bad_rows;
        int go_on = isfinite(l.loss) && !bad;
        if (t == 0) {
            loss = l;
            finite = isfinite(l.loss);
            grads_finite = !bad;
        }
        if (go_on)
            run_tail(tr, ws, b, t, nt);
    }
    tr->nonfinite_grads = finite && !grads_finite;
    if (finite && grads_finite)
        tr->step++;
    else
        tr->opt.step--;
    return loss;
}

int elbo_trainer_epoch(elbo_trainer *tr, const elbo_images_view *data, long max_steps, elbo_step_callback cb,
                       void *ctx, elbo_loss_means *out, char *err, size_t errlen)
{
    double sum_loss = 0, sum_recon = 0, sum_kl = 0;
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
        elbo_batch_loss l = elbo_trainer_step(tr, data, tr->perm + done, b);
        if (!isfinite(l.loss) || tr->nonfinite_grads) {
            if (tr->nonfinite_grads)
                snprintf(err, errlen, "step %ld: the gradients became NaN or infinite (loss %g); try a lower --lr",
                         tr->step + 1, l.loss);
            else
                snprintf(err, errlen, "step %ld: the loss became %s (recon %g, KL %g); try a lower --lr", tr->step + 1,
                         isnan(l.loss) ? "NaN" : "infinite", l.recon, l.kl);
            rc = -1;
            break;
        }
        sum_loss += l.loss;
        sum_recon += l.recon;
        sum_kl += l.kl;
        done += b;
        out->samples = done - start;
        out->loss = sum_loss / (double)out->samples;
        out->recon = sum_recon / (double)out->samples;
        out->kl = sum_kl / (double)out->samples;
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

elbo_loss_means elbo_evaluate(const elbo_vae *model, elbo_vae_activations *act, elbo_team *team,
                              const elbo_images_view *data, uint64_t seed)
{
    elbo_loss_means r = {0, 0, 0, data->n};
    double sum_recon = 0, sum_kl = 0;
    size_t z = model->cfg.latent, nt = team->n;
    for (size_t c0 = 0; c0 < data->n; c0 += act->max_batch) {
        size_t b = data->n - c0 < act->max_batch ? data->n - c0 : act->max_batch;
        const uint8_t *x = data->pixels + c0 * data->dim;
#pragma omp parallel num_threads((int)nt) default(none) shared(model, act, team, x, b, c0, z, nt, seed)
        {
            size_t t = (size_t)omp_get_thread_num(), r0, r1;
            elbo_team_rows(b, t, nt, &r0, &r1);
            fill_noise(act->eps + r0 * z, r1 - r0, z, seed, ELBO_STREAM_EVAL, c0 + r0, 0);
            elbo_vae_forward_rows(model, act, &team->ws[t], x, r0, r1, NULL);
        }
        elbo_batch_loss l = elbo_vae_batch_loss(model, act, b);
        sum_recon += l.recon;
        sum_kl += l.kl;
    }
    if (data->n) {
        r.recon = sum_recon / (double)data->n;
        r.kl = sum_kl / (double)data->n;
        r.loss = r.recon + model->cfg.beta * r.kl;
    }
    return r;
}
