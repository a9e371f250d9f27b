/* Inference passes on the trained model: encode, decode, per-image scores, importance weighting. */
#include "infer.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

double elbo_recon_log_norm(const elbo_vae_config *c)
{
    if (c->recon != ELBO_RECON_MSE)
        return 0.0;
    return 0.5 * (double)c->input_dim * log(2.0 * M_PI * c->sigma0 * c->sigma0);
}

/* Number of rows of the chunk starting at c0 of n (at most max). */
static size_t chunk_rows(size_t n, size_t c0, size_t max)
{
    return n - c0 < max ? n - c0 : max;
}

void elbo_infer_encode(const elbo_vae *m, elbo_vae_activations *a, const uint8_t *x, size_t n, float *mulv)
{
    size_t d = m->cfg.input_dim, z2 = 2 * m->cfg.latent;
    for (size_t c0 = 0; c0 < n; c0 += a->max_batch) {
        size_t b = chunk_rows(n, c0, a->max_batch);
        elbo_vae_encode_rows(m, a, &a->ws, x + c0 * d, 0, b);
        memcpy(mulv + c0 * z2, a->mulv, b * z2 * sizeof(float));
    }
}

/* Logistic of l, computed without overflow for either sign. */
static float sigmoid(float l)
{
    float e = expf(-fabsf(l));
    return l >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

void elbo_infer_decode(const elbo_vae *m, elbo_vae_activations *a, const float *z, size_t n, float *probs)
{
    size_t d = m->cfg.input_dim, zd = m->cfg.latent;
    for (size_t c0 = 0; c0 < n; c0 += a->max_batch) {
        size_t b = chunk_rows(n, c0, a->max_batch);
        memcpy(a->z, z + c0 * zd, b * zd * sizeof(float));
        elbo_vae_decode_rows(m, a, &a->ws, 0, b);
        for (size_t i = 0; i < b * d; i++)
            probs[c0 * d + i] = sigmoid(a->logits[i]);
    }
}

uint8_t elbo_gray_level(float p)
{
    p = p < 0.0f ? 0.0f : p > 1.0f ? 1.0f : p;
    return (uint8_t)lrintf(255.0f * p);
}

void elbo_infer_sample_pixels(const elbo_vae *m, elbo_vae_activations *a, size_t first, size_t n, uint64_t seed,
                              float *zs, float *probs, uint8_t *pixels)
{
    size_t z = m->cfg.latent, d = m->cfg.input_dim;
    for (size_t i = 0; i < n; i++)
        elbo_rng_normals(zs + i * z, z, seed, ELBO_STREAM_SAMPLE, (uint32_t)(first + i), 0);
    elbo_infer_decode(m, a, zs, n, probs);
    if (pixels)
        for (size_t i = 0; i < n * d; i++)
            pixels[i] = elbo_gray_level(probs[i]);
}

/* Fills eps (rows [r0, r1) of the chunk at c0, Z each) with the normals of (seed, EVAL, c0 + r, k). */
static void eval_noise(float *eps, size_t r0, size_t r1, size_t z, uint64_t seed, size_t c0, uint32_t k)
{
    for (size_t r = r0; r < r1; r++)
        elbo_rng_normals(eps + r * z, z, seed, ELBO_STREAM_EVAL, (uint32_t)(c0 + r), k);
}

/* Rows [r0, r1) of a->recon (the training loss's reconstruction term) from a->logits and the chunk's pixels x;
 * overwrites a->logits with the loss gradient. */
static void recon_rows(const elbo_vae *m, elbo_vae_activations *a, const uint8_t *x, size_t r0, size_t r1)
{
    const elbo_vae_config *c = &m->cfg;
    size_t d = c->input_dim;
    float *logits = a->logits + r0 * d;
    if (c->recon == ELBO_RECON_MSE)
        m->kern->sigmoid_mse(logits, a->recon + r0, NULL, logits, x + r0 * d,
                             (float)(1.0 / (2.0 * c->sigma0 * c->sigma0)), 1.0f, r1 - r0, d);
    else
        m->kern->sigmoid_bce(logits, a->recon + r0, NULL, logits, x + r0 * d, 1.0f, r1 - r0, d);
}

void elbo_infer_scores(const elbo_vae *m, elbo_vae_activations *a, const uint8_t *x, size_t n, uint64_t seed,
                       double *recon_error, double *neg_elbo)
{
    size_t d = m->cfg.input_dim, z = m->cfg.latent;
    for (size_t c0 = 0; c0 < n; c0 += a->max_batch) {
        size_t b = chunk_rows(n, c0, a->max_batch);
        const uint8_t *xc = x + c0 * d;
        if (neg_elbo) {
            eval_noise(a->eps, 0, b, z, seed, c0, 0);
            elbo_vae_forward_rows(m, a, &a->ws, xc, 0, b, NULL);
            for (size_t r = 0; r < b; r++)
                neg_elbo[c0 + r] = (double)a->recon[r] + m->cfg.beta * (double)a->kl[r];
        }
        if (recon_error) {
            elbo_vae_encode_rows(m, a, &a->ws, xc, 0, b);
            for (size_t r = 0; r < b; r++)
                memcpy(a->z + r * z, a->mulv + r * 2 * z, z * sizeof(float));
            elbo_vae_decode_rows(m, a, &a->ws, 0, b);
            for (size_t r = 0; r < b; r++) {
                double s = 0;
                for (size_t j = 0; j < d; j++) {
                    double e = (double)xc[r * d + j] / 255.0 - (double)sigmoid(a->logits[r * d + j]);
                    s += e * e;
                }
                recon_error[c0 + r] = s;
            }
        }
    }
}

/* log p(z) - log q(z|x) of one row: sum_j (-z_j^2 + eps_j^2) / 2 + logvar_j / 2 (the 2 pi terms cancel). */
static double log_prior_over_posterior(const float *zr, const float *eps, const float *logvar, size_t z)
{
    double s = 0;
    for (size_t j = 0; j < z; j++)
        s += 0.5 * ((double)eps[j] * eps[j] - (double)zr[j] * zr[j] + (double)logvar[j]);
    return s;
}

/* Adds lw to the running log-sum-exp (max mx, sum of exp(l - mx) in sum) of one row; the first term starts it. */
static void lse_add(double *mx, double *sum, double lw, int first)
{
    if (first) {
        *mx = lw;
        *sum = 1.0;
    } else if (lw > *mx) {
        *sum = *sum * exp(*mx - lw) + 1.0;
        *mx = lw;
    } else {
        *sum += exp(lw - *mx);
    }
}

int elbo_infer_iw(const elbo_vae *m, elbo_vae_activations *a, elbo_team *team, const uint8_t *x, size_t n,
                  size_t k, uint64_t seed, double *iw, double *elbo)
{
    if (k == 0)
        return -1;
    size_t d = m->cfg.input_dim, z = m->cfg.latent, nt = team->n;
    double norm = elbo_recon_log_norm(&m->cfg), log_k = log((double)k);
    double *sums = malloc(a->max_batch * sizeof *sums);
    if (!sums)
        return -1;
    for (size_t c0 = 0; c0 < n; c0 += a->max_batch) {
        size_t b = chunk_rows(n, c0, a->max_batch);
        const uint8_t *xc = x + c0 * d;
#pragma omp parallel num_threads((int)nt) default(none) \
    shared(m, a, team, xc, b, c0, z, nt, k, seed, norm, log_k, iw, elbo, sums)
        {
            size_t t = (size_t)omp_get_thread_num(), r0, r1;
            elbo_team_rows(b, t, nt, &r0, &r1);
            if (r1 > r0) {
                elbo_gemm_workspace *ws = &team->ws[t];
                elbo_vae_encode_rows(m, a, ws, xc, r0, r1);
                /* Until the last sample, iw[] holds each row's maximum of log w and sums[] its scaled sum. */
                for (size_t s = 0; s < k; s++) {
                    eval_noise(a->eps, r0, r1, z, seed, c0, (uint32_t)s);
                    m->kern->reparam_forward(a->z + r0 * z, a->sigma + r0 * z, a->kl + r0, a->mulv + r0 * 2 * z,
                                             a->eps + r0 * z, r1 - r0, z);
                    elbo_vae_decode_rows(m, a, ws, r0, r1);
                    recon_rows(m, a, xc, r0, r1);
                    for (size_t r = r0; r < r1; r++) {
                        double log_px_z = -(double)a->recon[r] - norm;
                        if (s == 0)
                            elbo[c0 + r] = log_px_z - (double)a->kl[r];
                        double lw = log_px_z + log_prior_over_posterior(a->z + r * z, a->eps + r * z,
                                                                        a->mulv + r * 2 * z + z, z);
                        lse_add(&iw[c0 + r], &sums[r], lw, s == 0);
                    }
                }
                for (size_t r = r0; r < r1; r++)
                    iw[c0 + r] += log(sums[r]) - log_k;
            }
        }
    }
    free(sums);
    return 0;
}
