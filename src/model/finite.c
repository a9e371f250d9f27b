/* NaN and infinity checks over the parameter and gradient arenas. */
#include "finite.h"

int elbo_floats_finite(const float *x, size_t n)
{
    /* x - x is 0 for every finite x and NaN for NaN or an infinity; one compare at the end */
    float acc = 0;
    for (size_t i = 0; i < n; i++)
        acc += x[i] - x[i];
    return acc == 0;
}

int elbo_bias_grads_finite(const elbo_vae *m)
{
    for (size_t i = 0; i < m->layout.n_layers; i++) {
        const elbo_linear_layout *ly = &m->layout.layer[i];
        if (!elbo_floats_finite(m->grads + ly->b_off, ly->out))
            return 0;
    }
    return 1;
}

int elbo_params_finite(const elbo_vae *m)
{
    return elbo_floats_finite(m->params, m->layout.total);
}
