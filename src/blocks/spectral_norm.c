/* Spectral normalization: the power iteration, W / sigma, and the weight gradient through sigma. */
#include "spectral_norm.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>

/* torch.nn.functional.normalize's eps: x / max(||x||, eps). */
#define SN_EPS 1e-12

elbo_spectral_norm elbo_spectral_norm_make(size_t in, size_t out, size_t w_off, size_t b_off, size_t u_off,
                                           size_t v_off)
{
    return (elbo_spectral_norm){.in = in, .out = out, .w_off = w_off, .b_off = b_off, .u_off = u_off,
                                .v_off = v_off, .sigma = 1.0f};
}

/* y (out) = W (out, in) . x (in), in double, each row summed in order. */
static void matvec(const float *w, const double *x, double *y, size_t out, size_t in)
{
    for (size_t o = 0; o < out; o++) {
        const float *row = w + o * in;
        double s = 0;
        for (size_t j = 0; j < in; j++)
            s += (double)row[j] * x[j];
        y[o] = s;
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

void elbo_spectral_norm_refresh(elbo_spectral_norm *s, float *params, float *wsn, int iterate)
{
    size_t in = s->in, out = s->out;
    const float *w = params + s->w_off;
    float *u = params + s->u_off, *v = params + s->v_off;
    /* scratch in double: v (in), u (out), W v (out); the layers are at most 2^20 wide */
    double stack_buf[2048];
    double *buf = in + 2 * out <= 2048 ? stack_buf : NULL;
    double *heap = NULL;
    if (!buf) {
        heap = malloc((in + 2 * out) * sizeof(double));
        assert(heap);
        buf = heap;
    }
    double *dv = buf, *du = buf + in, *wv = buf + in + out;
    for (size_t o = 0; o < out; o++)
        du[o] = u[o];
    if (iterate) {
        /* v = normalize(W^T u): rows of W scaled by u, added in row order */
        for (size_t j = 0; j < in; j++)
            dv[j] = 0;
        for (size_t o = 0; o < out; o++) {
            const float *row = w + o * in;
            for (size_t j = 0; j < in; j++)
                dv[j] += (double)row[j] * du[o];
        }
        normalize_into(dv, v, in);
        matvec(w, dv, wv, out, in); /* W v, for u and (the same v) for sigma */
        for (size_t o = 0; o < out; o++)
            du[o] = wv[o];
        normalize_into(du, u, out);
    } else {
        for (size_t j = 0; j < in; j++)
            dv[j] = v[j];
        matvec(w, dv, wv, out, in);
    }
    double sigma = 0;
    for (size_t o = 0; o < out; o++)
        sigma += du[o] * wv[o];
    s->sigma = (float)sigma;
    float *dst = wsn + s->w_off;
    for (size_t k = 0; k < in * out; k++)
        dst[k] = w[k] / s->sigma;
    free(heap);
}

double elbo_spectral_norm_row_dot(const float *dy, const float *y, const float *b, size_t out)
{
    double s = 0;
    for (size_t o = 0; o < out; o++)
        s += (double)dy[o] * ((double)y[o] - (double)b[o]);
    return s;
}

void elbo_spectral_norm_weight_grads(const void *ctx, float *grads, size_t lo, size_t hi)
{
    const elbo_spectral_norm *s = ctx;
    const float *params = s->params;
    assert(lo <= hi && hi <= s->out && s->row_dots && params);
    double dot = 0;
    for (size_t r = 0; r < s->rows; r++)
        dot += s->row_dots[r];
    const float *u = params + s->u_off, *v = params + s->v_off;
    double inv = 1.0 / (double)s->sigma;
    for (size_t o = lo; o < hi; o++) {
        float *g = grads + s->w_off + o * s->in;
        double cu = dot * (double)u[o];
        for (size_t j = 0; j < s->in; j++)
            g[j] = (float)(((double)g[j] - cu * (double)v[j]) * inv);
    }
}
