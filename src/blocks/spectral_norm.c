/* Spectral normalization: the power iteration, W / sigma, and the weight gradient through sigma. */
#include "spectral_norm.h"

#include <assert.h>
#include <math.h>

/* torch.nn.functional.normalize's eps: x / max(||x||, eps). */
#define SN_EPS 1e-12

/* Rows of W a sweep takes at once: independent sums in flight (each still added in its own fixed order). */
#define SN_ROWS 4

elbo_spectral_norm elbo_spectral_norm_make(size_t in, size_t out, size_t w_off, size_t b_off, size_t u_off,
                                           size_t v_off, double *scratch)
{
    return (elbo_spectral_norm){.in = in, .out = out, .w_off = w_off, .b_off = b_off, .u_off = u_off,
                                .v_off = v_off, .sigma = 1.0f, .dv = scratch, .du = scratch + in,
                                .wv = scratch + in + out};
}

size_t elbo_spectral_norm_scratch_doubles(size_t in, size_t out)
{
    return in + 2 * out;
}

void elbo_spectral_norm_left(const elbo_spectral_norm *s, const float *params, size_t j0, size_t j1)
{
    size_t in = s->in, out = s->out, o = 0;
    const float *w = params + s->w_off, *u = params + s->u_off;
    double *dv = s->dv;
    for (size_t j = j0; j < j1; j++)
        dv[j] = 0;
    for (; o + SN_ROWS <= out; o += SN_ROWS) {
        const float *r0 = w + o * in, *r1 = r0 + in, *r2 = r1 + in, *r3 = r2 + in;
        double u0 = u[o], u1 = u[o + 1], u2 = u[o + 2], u3 = u[o + 3];
        for (size_t j = j0; j < j1; j++) {
            double acc = dv[j];
            acc += (double)r0[j] * u0;
            acc += (double)r1[j] * u1;
            acc += (double)r2[j] * u2;
            acc += (double)r3[j] * u3;
            dv[j] = acc;
        }
    }
    for (; o < out; o++) {
        const float *row = w + o * in;
        double uo = u[o];
        for (size_t j = j0; j < j1; j++)
            dv[j] += (double)row[j] * uo;
    }
}

/* Writes x (n) / max(||x||, eps) to dst (n floats) and back to x as the rounded floats. */
static void normalize_into(double *x, float *dst, size_t n)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    double norm = sqrt(ss) > SN_EPS ? sqrt(ss) : SN_EPS;
    for (size_t i = 0; i < n; i++) {
        dst[i] = (float)(x[i] / norm);
        x[i] = dst[i];
    }
}

void elbo_spectral_norm_set_v(const elbo_spectral_norm *s, float *params, int iterate)
{
    float *v = params + s->v_off;
    if (iterate) {
        normalize_into(s->dv, v, s->in);
        return;
    }
    for (size_t j = 0; j < s->in; j++)
        s->dv[j] = v[j];
}

void elbo_spectral_norm_right(const elbo_spectral_norm *s, const float *params, size_t o0, size_t o1)
{
    size_t in = s->in, o = o0;
    const float *w = params + s->w_off;
    const double *v = s->dv;
    for (; o + SN_ROWS <= o1; o += SN_ROWS) {
        const float *r0 = w + o * in, *r1 = r0 + in, *r2 = r1 + in, *r3 = r2 + in;
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t j = 0; j < in; j++) {
            s0 += (double)r0[j] * v[j];
            s1 += (double)r1[j] * v[j];
            s2 += (double)r2[j] * v[j];
            s3 += (double)r3[j] * v[j];
        }
        s->wv[o] = s0, s->wv[o + 1] = s1, s->wv[o + 2] = s2, s->wv[o + 3] = s3;
    }
    for (; o < o1; o++) {
        const float *row = w + o * in;
        double acc = 0;
        for (size_t j = 0; j < in; j++)
            acc += (double)row[j] * v[j];
        s->wv[o] = acc;
    }
}

void elbo_spectral_norm_set_u_sigma(elbo_spectral_norm *s, float *params, int iterate)
{
    float *u = params + s->u_off;
    if (iterate) {
        for (size_t o = 0; o < s->out; o++)
            s->du[o] = s->wv[o];
        normalize_into(s->du, u, s->out);
    } else {
        for (size_t o = 0; o < s->out; o++)
            s->du[o] = u[o];
    }
    double sigma = 0;
    for (size_t o = 0; o < s->out; o++)
        sigma += s->du[o] * s->wv[o];
    s->sigma = (float)sigma;
}

void elbo_spectral_norm_scale(const elbo_spectral_norm *s, const float *params, float *wsn, size_t o0, size_t o1)
{
    const float *w = params + s->w_off + o0 * s->in;
    float *dst = wsn + s->w_off + o0 * s->in;
    float sigma = s->sigma;
    for (size_t k = 0; k < (o1 - o0) * s->in; k++)
        dst[k] = w[k] / sigma;
}

void elbo_spectral_norm_refresh(elbo_spectral_norm *s, float *params, float *wsn, int iterate)
{
    if (iterate)
        elbo_spectral_norm_left(s, params, 0, s->in);
    elbo_spectral_norm_set_v(s, params, iterate);
    elbo_spectral_norm_right(s, params, 0, s->out);
    elbo_spectral_norm_set_u_sigma(s, params, iterate);
    elbo_spectral_norm_scale(s, params, wsn, 0, s->out);
}

double elbo_spectral_norm_row_dot(const float *dy, const float *y, const float *b, size_t out)
{
    double s = 0;
    for (size_t o = 0; o < out; o++)
        s += (double)dy[o] * ((double)y[o] - (double)b[o]);
    return s;
}

void elbo_spectral_norm_weight_grads(const void *ctx, float *grads, size_t lo, size_t hi, double dot)
{
    const elbo_spectral_norm *s = ctx;
    const float *params = s->params;
    assert(lo <= hi && hi <= s->out && params);
    const float *u = params + s->u_off, *v = params + s->v_off;
    double inv = 1.0 / (double)s->sigma;
    for (size_t o = lo; o < hi; o++) {
        float *g = grads + s->w_off + o * s->in;
        double cu = dot * (double)u[o];
        for (size_t j = 0; j < s->in; j++)
            g[j] = (float)(((double)g[j] - cu * (double)v[j]) * inv);
    }
}
