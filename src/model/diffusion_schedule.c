/* Linear and cosine beta schedules and the posterior coefficients, in double. */
#include "diffusion_schedule.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *elbo_schedule_name(elbo_schedule_kind k)
{
    return k == ELBO_SCHEDULE_COSINE ? "cosine" : "linear";
}

int elbo_schedule_parse(const char *s, elbo_schedule_kind *k)
{
    if (strcmp(s, "linear") == 0)
        *k = ELBO_SCHEDULE_LINEAR;
    else if (strcmp(s, "cosine") == 0)
        *k = ELBO_SCHEDULE_COSINE;
    else
        return -1;
    return 0;
}

/* The cosine schedule's f(t) = cos^2(pi/2 (t/T + s)/(1 + s)), s = 0.008. */
static double cosine_f(double t, double T)
{
    const double s = 0.008;
    double c = cos((t / T + s) / (1 + s) * M_PI / 2);
    return c * c;
}

int elbo_schedule_init(elbo_schedule *s, elbo_schedule_kind kind, size_t T, double beta_1, double beta_T)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->T = T;
    double *all = calloc(5 * (T + 1), sizeof *all);
    if (!all || T < 2) {
        free(all);
        return -1;
    }
    s->beta = all;
    s->alpha_bar = all + (T + 1);
    s->beta_tilde = all + 2 * (T + 1);
    s->coef_x0 = all + 3 * (T + 1);
    s->coef_xt = all + 4 * (T + 1);
    s->alpha_bar[0] = 1;
    for (size_t t = 1; t <= T; t++) {
        if (kind == ELBO_SCHEDULE_LINEAR) {
            s->beta[t] = beta_1 + (beta_T - beta_1) * (double)(t - 1) / (double)(T - 1);
        } else {
            double b = 1 - cosine_f((double)t, (double)T) / cosine_f((double)(t - 1), (double)T);
            s->beta[t] = b < 0.999 ? b : 0.999;
        }
        s->alpha_bar[t] = s->alpha_bar[t - 1] * (1 - s->beta[t]);
        double ab = s->alpha_bar[t], ab_prev = s->alpha_bar[t - 1];
        s->beta_tilde[t] = (1 - ab_prev) / (1 - ab) * s->beta[t];
        s->coef_x0[t] = sqrt(ab_prev) * s->beta[t] / (1 - ab);
        s->coef_xt[t] = sqrt(1 - s->beta[t]) * (1 - ab_prev) / (1 - ab);
    }
    return 0;
}

void elbo_schedule_free(elbo_schedule *s)
{
    free(s->beta);
    memset(s, 0, sizeof *s);
}

double elbo_schedule_log_var(const elbo_schedule *s, size_t t)
{
    return log(s->beta_tilde[t == 1 ? 2 : t]);
}
