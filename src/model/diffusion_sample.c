/* The diffusion model's samplers (ancestral DDPM and DDIM with eta = 0) and its variational bound, over rows of a
 * batch that one thread owns, and their team-wide drivers. */
#include "diffusion.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "rng.h"

/* The number of steps of a sampler: T for DDPM, S clamped to 1..T for DDIM. */
static size_t sampler_count(const elbo_diffusion *m, elbo_sampler_kind kind, size_t sample_steps)
{
    size_t T = m->cfg.T;
    if (kind == ELBO_SAMPLER_DDPM)
        return T;
    return sample_steps < 1 ? 1 : sample_steps > T ? T : sample_steps;
}

/* Step i (0 first) of a sampler of n steps: DDPM T - i; DDIM round(1 + (n-1-i)(T-1)/(n-1)), or T when n = 1. */
static uint32_t sampler_step(const elbo_diffusion *m, elbo_sampler_kind kind, size_t n, size_t i)
{
    size_t T = m->cfg.T;
    if (kind == ELBO_SAMPLER_DDPM)
        return (uint32_t)(T - i);
    if (n == 1)
        return (uint32_t)T;
    return (uint32_t)floor(1.0 + (double)(n - 1 - i) * (double)(T - 1) / (double)(n - 1) + 0.5);
}

size_t elbo_diffusion_sampler_steps(const elbo_diffusion *m, elbo_sampler_kind kind, size_t sample_steps,
                                    uint32_t *steps)
{
    size_t n = sampler_count(m, kind, sample_steps);
    for (size_t i = 0; i < n; i++)
        steps[i] = sampler_step(m, kind, n, i);
    return n;
}

/* x-hat_0 = clip((x_t - sqrt(1 - abar) eps) / sqrt(abar), -1, 1) of one value, in float. */
static inline float x0_hat(float xt, float eps, float inv_sqrt_ab, float sqrt_1mab)
{
    float v = (xt - sqrt_1mab * eps) * inv_sqrt_ab;
    return v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
}

/* One DDPM step at t over rows [r0, r1) of a (a->out = eps_theta): x_{t-1} = coef_x0 x-hat_0 + coef_xt x_t +
 * sqrt(beta-tilde_t) z (z of (seed, SAMPLE, first + r, step + 1); none at t = 1). */
static void ddpm_step(const elbo_diffusion *m, elbo_diffusion_activations *a, uint32_t t, size_t step,
                      uint64_t seed, size_t first, size_t r0, size_t r1)
{
    const elbo_schedule *s = &m->sched;
    size_t d = m->cfg.input_dim;
    float inv = (float)(1.0 / sqrt(s->alpha_bar[t])), sb = (float)sqrt(1.0 - s->alpha_bar[t]);
    float c0 = (float)s->coef_x0[t], c1 = (float)s->coef_xt[t], sd = (float)sqrt(s->beta_tilde[t]);
    for (size_t r = r0; r < r1; r++) {
        float *x = a->xt + r * d, *z = a->eps + r * d;
        const float *e = a->out + r * d;
        if (t > 1)
            elbo_rng_normals(z, d, seed, ELBO_STREAM_SAMPLE, (uint32_t)(first + r), (uint32_t)(step + 1));
        for (size_t j = 0; j < d; j++) {
            float mean = c0 * x0_hat(x[j], e[j], inv, sb) + c1 * x[j];
            x[j] = t > 1 ? mean + sd * z[j] : mean;
        }
    }
}

/* One DDIM step (eta = 0) from t to t_prev (0: the end) over rows [r0, r1): x-hat_0 clipped, eps recomputed from
 * it, x_{t_prev} = sqrt(abar_prev) x-hat_0 + sqrt(1 - abar_prev) eps. */
static void ddim_step(const elbo_diffusion *m, elbo_diffusion_activations *a, uint32_t t, uint32_t t_prev,
                      size_t r0, size_t r1)
{
    const elbo_schedule *s = &m->sched;
    size_t d = m->cfg.input_dim;
    double ab = s->alpha_bar[t], abp = s->alpha_bar[t_prev];
    float inv = (float)(1.0 / sqrt(ab)), sb = (float)sqrt(1.0 - ab), sa = (float)sqrt(ab);
    float inv_sb = (float)(1.0 / sqrt(1.0 - ab)), pa = (float)sqrt(abp), pb = (float)sqrt(1.0 - abp);
    for (size_t r = r0; r < r1; r++) {
        float *x = a->xt + r * d;
        const float *e = a->out + r * d;
        for (size_t j = 0; j < d; j++) {
            float x0 = x0_hat(x[j], e[j], inv, sb);
            float eps = (x[j] - sa * x0) * inv_sb;
            x[j] = pa * x0 + pb * eps;
        }
    }
}

/* Copies rows [r0, r1) of a->xt into frame f of traj (rows_total rows per frame). */
static void keep_frame(const elbo_diffusion_activations *a, size_t d, float *traj, size_t f, size_t rows_total,
                       size_t r0, size_t r1, size_t row_base)
{
    memcpy(traj + (f * rows_total + row_base + r0) * d, a->xt + r0 * d, (r1 - r0) * d * sizeof(float));
}

void elbo_diffusion_denoise_rows(const elbo_diffusion *m, elbo_diffusion_activations *a, elbo_gemm_workspace *ws,
                                 elbo_sampler_kind kind, size_t sample_steps, uint64_t seed, size_t first, size_t r0,
                                 size_t r1, size_t i0, size_t i1)
{
    size_t n = sampler_count(m, kind, sample_steps);
    for (size_t i = i0; i < i1 && i < n && r1 > r0; i++) {
        uint32_t t = sampler_step(m, kind, n, i);
        for (size_t r = r0; r < r1; r++)
            a->t[r] = t;
        elbo_diffusion_predict_rows(m, a, ws, r0, r1);
        if (kind == ELBO_SAMPLER_DDPM)
            ddpm_step(m, a, t, i, seed, first, r0, r1);
        else
            ddim_step(m, a, t, i + 1 < n ? sampler_step(m, kind, n, i + 1) : 0, r0, r1);
    }
}

void elbo_diffusion_start_rows(const elbo_diffusion *m, elbo_diffusion_activations *a, uint64_t seed, size_t first,
                               size_t r0, size_t r1)
{
    size_t d = m->cfg.input_dim;
    for (size_t r = r0; r < r1; r++)
        elbo_rng_normals(a->xt + r * d, d, seed, ELBO_STREAM_SAMPLE, (uint32_t)(first + r), 0);
}

/* Rows [r0, r1) of the sampler with the trajectory's row r at row_base + r. */
static void sample_rows(const elbo_diffusion *m, elbo_diffusion_activations *a, elbo_gemm_workspace *ws,
                        elbo_sampler_kind kind, size_t sample_steps, uint64_t seed, size_t first, size_t r0,
                        size_t r1, float *x, float *traj, size_t n_frames, size_t rows_total, size_t row_base)
{
    size_t d = m->cfg.input_dim;
    size_t n = sampler_count(m, kind, sample_steps), done = 0;
    if (r1 == r0)
        return;
    elbo_diffusion_start_rows(m, a, seed, first, r0, r1);
    if (traj) {
        keep_frame(a, d, traj, 0, rows_total, r0, r1, row_base);
        /* frame f is x after step floor(f n / (n_frames - 1)) */
        for (size_t f = 1; f < n_frames; f++) {
            size_t upto = f * n / (n_frames - 1);
            elbo_diffusion_denoise_rows(m, a, ws, kind, sample_steps, seed, first, r0, r1, done, upto);
            done = upto;
            keep_frame(a, d, traj, f, rows_total, r0, r1, row_base);
        }
    }
    elbo_diffusion_denoise_rows(m, a, ws, kind, sample_steps, seed, first, r0, r1, done, n);
    memcpy(x + r0 * d, a->xt + r0 * d, (r1 - r0) * d * sizeof(float));
}

void elbo_diffusion_sample_rows(const elbo_diffusion *m, elbo_diffusion_activations *a, elbo_gemm_workspace *ws,
                                elbo_sampler_kind kind, size_t sample_steps, uint64_t seed, size_t first, size_t r0,
                                size_t r1, float *x, float *traj, size_t n_frames, size_t rows_total)
{
    sample_rows(m, a, ws, kind, sample_steps, seed, first, r0, r1, x, traj, n_frames, rows_total, 0);
}

void elbo_diffusion_sample(const elbo_diffusion *m, elbo_diffusion_activations *a, elbo_team *team,
                           elbo_sampler_kind kind, size_t sample_steps, uint64_t seed, size_t first, size_t n,
                           float *x, float *traj, size_t n_frames)
{
    size_t nt = team->n, d = m->cfg.input_dim;
    for (size_t c0 = 0; c0 < n; c0 += a->max_batch) {
        size_t b = n - c0 < a->max_batch ? n - c0 : a->max_batch;
#pragma omp parallel num_threads((int)nt) default(none) \
    shared(m, a, team, kind, sample_steps, seed, first, c0, b, nt, x, traj, n_frames, n, d)
        {
            size_t t = (size_t)omp_get_thread_num(), r0, r1;
            elbo_team_rows(b, t, nt, &r0, &r1);
            sample_rows(m, a, &team->ws[t], kind, sample_steps, seed, first + c0, r0, r1, x + c0 * d, traj,
                        n_frames, n, c0);
        }
    }
}

/* ---- the variational bound ---- */

/* P(lo < Z < hi) for a standard normal Z, without cancellation in either tail. */
static double normal_interval(double lo, double hi)
{
    if (lo > 0)
        return 0.5 * (erfc(lo / M_SQRT2) - erfc(hi / M_SQRT2));
    if (hi < 0)
        return 0.5 * (erfc(-hi / M_SQRT2) - erfc(-lo / M_SQRT2));
    return 1.0 - 0.5 * erfc(-lo / M_SQRT2) - 0.5 * erfc(hi / M_SQRT2);
}

/* -log of the discretized Gaussian likelihood of x0 (on the grid of 256 levels in [-1, 1]) under N(mean, exp(log_var)):
 * the bin [x0 - 1/255, x0 + 1/255], the edge bins open to -inf and +inf; probabilities below 1e-12 count as 1e-12
 * (Ho et al.'s code). */
static double decoder_nll(double x0, double mean, double log_var)
{
    double inv_std = exp(-0.5 * log_var), c = x0 - mean;
    double lo = x0 < -0.999 ? -INFINITY : inv_std * (c - 1.0 / 255.0);
    double hi = x0 > 0.999 ? INFINITY : inv_std * (c + 1.0 / 255.0);
    double p = normal_interval(lo, hi);
    return -log(p > 1e-12 ? p : 1e-12);
}

/* Rows [r0, r1) of the bound's term at the steps a->t (x_t in a->xt, eps_theta in a->out, x from the row's pixels
 * x (row r at x + r d)): added, times weight[r], into nats[r]. */
static void add_terms(const elbo_diffusion *m, const elbo_diffusion_activations *a, const uint8_t *x,
                      const double *weight, size_t r0, size_t r1, double *nats)
{
    const elbo_schedule *s = &m->sched;
    size_t d = m->cfg.input_dim;
    for (size_t r = r0; r < r1; r++) {
        size_t t = a->t[r];
        double ab = s->alpha_bar[t], inv = 1.0 / sqrt(ab), sb = sqrt(1.0 - ab), lv = elbo_schedule_log_var(s, t);
        double c0 = s->coef_x0[t], c1 = s->coef_xt[t], sum = 0;
        for (size_t j = 0; j < d; j++) {
            double xt = a->xt[r * d + j], x0 = 2.0 * x[r * d + j] / 255.0 - 1.0;
            double x0h = (xt - sb * (double)a->out[r * d + j]) * inv;
            if (t == 1) {
                sum += decoder_nll(x0, c0 * x0h + c1 * xt, lv);
            } else {
                double diff = c0 * (x0 - x0h);
                sum += 0.5 * diff * diff * exp(-lv);
            }
        }
        nats[r] += weight[r] * sum;
    }
}

void elbo_diffusion_bound_rows(const elbo_diffusion *m, elbo_diffusion_activations *a, elbo_gemm_workspace *ws,
                               const uint8_t *x, size_t K, uint64_t seed, size_t first, size_t r0, size_t r1,
                               double *nats)
{
    const elbo_schedule *s = &m->sched;
    size_t d = m->cfg.input_dim, T = m->cfg.T;
    double weight[r1 > r0 ? r1 : 1];
    double abT = s->alpha_bar[T];
    K = K < 1 ? 1 : K > T ? T : K;
    /* the prior term KL(N(sqrt(abar_T) x0, 1 - abar_T) || N(0, 1)) per pixel */
    for (size_t r = r0; r < r1; r++) {
        double sum = 0;
        for (size_t j = 0; j < d; j++) {
            double x0 = 2.0 * x[r * d + j] / 255.0 - 1.0;
            sum += 0.5 * (-log(1.0 - abT) + (1.0 - abT) + abT * x0 * x0 - 1.0);
        }
        nats[r] = sum;
    }
    for (size_t k = 0; k < K; k++) {
        size_t lo = 1 + k * T / K, hi = 1 + (k + 1) * T / K, size = hi - lo;
        for (size_t r = r0; r < r1; r++) {
            uint32_t w[4], sample = (uint32_t)(first + r);
            elbo_rng_block(seed, ELBO_STREAM_TIME, sample, (uint32_t)k, 2, w);
            size_t t = lo + (size_t)(((uint64_t)w[0] * size) >> 32);
            a->t[r] = (uint32_t)t;
            weight[r] = (double)size;
            float *e = a->eps + r * d, *xt = a->xt + r * d;
            elbo_rng_normals(e, d, seed, ELBO_STREAM_EVAL, sample, (uint32_t)(1 + k));
            float sa = m->sqrt_ab[t], sb = m->sqrt_1mab[t];
            for (size_t j = 0; j < d; j++)
                xt[j] = sa * (2.0f * ((float)x[r * d + j] / 255.0f) - 1.0f) + sb * e[j];
        }
        elbo_diffusion_predict_rows(m, a, ws, r0, r1);
        add_terms(m, a, x, weight, r0, r1, nats);
    }
}

double elbo_diffusion_bound_bpd(const elbo_diffusion *m, elbo_diffusion_activations *a, elbo_team *team,
                                const uint8_t *x, size_t n, size_t K, uint64_t seed)
{
    size_t nt = team->n, d = m->cfg.input_dim;
    double total = 0, nats[a->max_batch];
    for (size_t c0 = 0; c0 < n; c0 += a->max_batch) {
        size_t b = n - c0 < a->max_batch ? n - c0 : a->max_batch;
#pragma omp parallel num_threads((int)nt) default(none) shared(m, a, team, x, K, seed, c0, b, nt, nats, d)
        {
            size_t t = (size_t)omp_get_thread_num(), r0, r1;
            elbo_team_rows(b, t, nt, &r0, &r1);
            /* a's rows are indexed from the batch's row 0; x and nats from it too */
            if (r1 > r0)
                elbo_diffusion_bound_rows(m, a, &team->ws[t], x + c0 * d, K, seed, c0, r0, r1, nats);
        }
        for (size_t r = 0; r < b; r++)
            total += nats[r];
    }
    return n ? total / ((double)n * (double)d * log(2.0)) : 0;
}
