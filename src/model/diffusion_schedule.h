/* The noise schedule of a diffusion model (Ho et al. 2020), in double: beta_t for t = 1..T (linear from beta_1 to
 * beta_T, or the cosine schedule of Nichol & Dhariwal 2021), alpha-bar_t = prod_{s <= t} (1 - beta_s), and the
 * posterior q(x_{t-1} | x_t, x_0) = N(coef_x0_t x_0 + coef_xt_t x_t, beta-tilde_t I). Every array has T + 1 entries
 * indexed by t; entry 0 is alpha-bar_0 = 1 (beta_0 = beta-tilde_0 = 0). */
#ifndef ELBO_DIFFUSION_SCHEDULE_H
#define ELBO_DIFFUSION_SCHEDULE_H

#include <stddef.h>

typedef enum { ELBO_SCHEDULE_LINEAR = 0, ELBO_SCHEDULE_COSINE = 1 } elbo_schedule_kind;

typedef struct {
    elbo_schedule_kind kind;
    size_t T;
    double *beta;        /* (T + 1) */
    double *alpha_bar;   /* (T + 1) */
    double *beta_tilde;  /* (T + 1) posterior variance (1 - abar_{t-1}) / (1 - abar_t) beta_t; 0 at t = 1 */
    double *coef_x0;     /* (T + 1) sqrt(abar_{t-1}) beta_t / (1 - abar_t) */
    double *coef_xt;     /* (T + 1) sqrt(1 - beta_t) (1 - abar_{t-1}) / (1 - abar_t) */
} elbo_schedule;

/* "linear" or "cosine". */
const char *elbo_schedule_name(elbo_schedule_kind k);
/* The kind named s; 0, or -1 when s names none. */
int elbo_schedule_parse(const char *s, elbo_schedule_kind *k);

/* Fills s for T >= 2 steps: linear beta_t = beta_1 + (beta_T - beta_1)(t - 1)/(T - 1) (as torch.linspace), or
 * cosine beta_t = min(1 - f(t)/f(t - 1), 0.999), f(t) = cos^2(pi/2 (t/T + 0.008)/1.008)
 * (beta_1, beta_T unused). Returns 0, or -1 on out-of-memory. */
int elbo_schedule_init(elbo_schedule *s, elbo_schedule_kind kind, size_t T, double beta_1, double beta_T);
/* Frees the arrays (safe on a zeroed struct). */
void elbo_schedule_free(elbo_schedule *s);

/* The log-variance of the reverse step at t used by the bound's decoder and KL terms: log beta-tilde_t, with
 * beta-tilde_1 (0) replaced by beta-tilde_2 (Nichol & Dhariwal's clipped log-variance). */
double elbo_schedule_log_var(const elbo_schedule *s, size_t t);

#endif
