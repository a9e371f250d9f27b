/* Minibatch training loop and evaluation. */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

int elbo_trainer_init(elbo_trainer *tr, elbo_vae *model, const elbo_optimizer_config *opt, size_t batch,
                      uint64_t seed, size_t n_train, char *err, size_t errlen)
{
    memset(tr, 0, sizeof *tr);
    tr->model = model;
    tr->seed = seed;
    tr->batch = batch;
    tr->perm_n = n_train;
    tr->perm = malloc((n_train ? n_train : 1) * sizeof *tr->perm);
    tr->xbatch = malloc(batch * model->cfg.input_dim);
    if (!tr->perm || !tr->xbatch || elbo_optimizer_init(&tr->opt, opt, &model->layout) != 0 ||
        elbo_vae_activations_init(&tr->act, model, batch) != 0) {
        elbo_trainer_free(tr);
        snprintf(err, errlen, "out of memory allocating the trainer (batch %zu)", batch);
        return -1;
    }
    return 0;
}

void elbo_trainer_free(elbo_trainer *tr)
{
    elbo_optimizer_free(&tr->opt);
    elbo_vae_activations_free(&tr->act);
    free(tr->perm);
    free(tr->xbatch);
    memset(tr, 0, sizeof *tr);
}

/* Fills eps (b, Z) for step `step`: row r gets the normals of (seed, EPS stream, row r, step). */
static void fill_noise(float *eps, size_t b, size_t z, uint64_t seed, elbo_rng_stream stream, size_t first_index,
                       uint32_t step)
{
    for (size_t r = 0; r < b; r++)
        elbo_rng_normals(eps + r * z, z, seed, stream, (uint32_t)(first_index + r), step);
}

elbo_batch_loss elbo_trainer_step(elbo_trainer *tr, const elbo_images_view *data, const uint32_t *rows, size_t b)
{
    elbo_vae *m = tr->model;
    size_t d = data->dim;
    for (size_t r = 0; r < b; r++)
        memcpy(tr->xbatch + r * d, data->pixels + (size_t)rows[r] * d, d);
    fill_noise(tr->act.eps, b, m->cfg.latent, tr->seed, ELBO_STREAM_EPS, 0, (uint32_t)tr->step);
    elbo_batch_loss loss = elbo_vae_forward(m, &tr->act, tr->xbatch, b, NULL);
    if (!isfinite(loss.loss))
        return loss;
    elbo_vae_backward(m, &tr->act, tr->xbatch, b);
    elbo_optimizer_step(&tr->opt, m);
    tr->step++;
    return loss;
}

int elbo_trainer_epoch(elbo_trainer *tr, const elbo_images_view *data, long max_steps, elbo_step_callback cb,
                       void *ctx, elbo_loss_means *out, char *err, size_t errlen)
{
    double sum_loss = 0, sum_recon = 0, sum_kl = 0;
    size_t done = 0;
    int rc = 0;
    elbo_rng_permutation(tr->perm, data->n, tr->seed, (uint32_t)tr->epoch);
    while (done < data->n) {
        if (max_steps > 0 && tr->step >= max_steps) {
            rc = 1;
            break;
        }
        size_t b = data->n - done < tr->batch ? data->n - done : tr->batch;
        elbo_batch_loss l = elbo_trainer_step(tr, data, tr->perm + done, b);
        if (!isfinite(l.loss)) {
            snprintf(err, errlen, "step %ld: the loss became %s (recon %g, KL %g); try a lower --lr", tr->step + 1,
                     isnan(l.loss) ? "NaN" : "infinite", l.recon, l.kl);
            rc = -1;
            break;
        }
        sum_loss += l.loss;
        sum_recon += l.recon;
        sum_kl += l.kl;
        done += b;
        out->samples = done;
        out->loss = sum_loss / (double)done;
        out->recon = sum_recon / (double)done;
        out->kl = sum_kl / (double)done;
        if (cb && cb(ctx, tr, done, data->n, out)) {
            rc = done < data->n ? 1 : 0;
            break;
        }
    }
    if (done == data->n)
        tr->epoch++;
    if (done == 0)
        memset(out, 0, sizeof *out);
    return rc;
}

elbo_loss_means elbo_evaluate(const elbo_vae *model, elbo_vae_activations *act, const elbo_images_view *data,
                              uint64_t seed)
{
    elbo_loss_means r = {0, 0, 0, data->n};
    double sum_recon = 0, sum_kl = 0;
    for (size_t r0 = 0; r0 < data->n; r0 += act->max_batch) {
        size_t b = data->n - r0 < act->max_batch ? data->n - r0 : act->max_batch;
        fill_noise(act->eps, b, model->cfg.latent, seed, ELBO_STREAM_EVAL, r0, 0);
        elbo_batch_loss l = elbo_vae_forward(model, act, data->pixels + r0 * data->dim, b, NULL);
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
