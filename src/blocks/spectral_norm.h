/* Spectral normalization of a linear layer's weight (Miyato et al. 2018), as torch.nn.utils.spectral_norm computes
 * it in training mode with one power iteration: before each forward, v = normalize(W^T u), u = normalize(W v) (no
 * gradient through them), sigma = u . (W v), and the layer multiplies by W / sigma. The gradient of a loss L with
 * respect to W, from G = dL/d(W / sigma), is (G - <G, W / sigma> u v^T) / sigma (the path through sigma).
 *
 * W (out, in) row-major, u (out) and v (in) live in a parameter arena (u and v are state, not trained: checkpoints
 * keep them, as torch's weight_u and weight_v); W / sigma goes to a second arena at W's offset, which the layer
 * packs for its GEMMs. <G, W / sigma> is summed over the batch rows r as <dy_r, y_r - b> (dy the gradient of the
 * layer's pre-activation output y = x (W / sigma)^T + b): per row in the backward pass, so no reduction over the
 * weight gradient's blocks is needed before the optimizer updates them. */
#ifndef ELBO_SPECTRAL_NORM_H
#define ELBO_SPECTRAL_NORM_H

#include <stddef.h>

typedef struct {
    size_t in, out;
    size_t w_off, b_off, u_off, v_off; /* W (out, in), b (out), u (out), v (in) in the parameter arena */
    float sigma;                        /* sigma of the last refresh */
    const float *params;                /* the arena u and v are read from by the weight gradient */
    double *dv, *du, *wv;               /* scratch of the power iteration: v (in), u (out), W v (out) */
} elbo_spectral_norm;

/* The normalization of the layer (in -> out) whose W, b, u and v are at those offsets, its power iteration's sums
 * kept in scratch (elbo_spectral_norm_scratch_doubles(in, out) doubles, owned by the caller). */
elbo_spectral_norm elbo_spectral_norm_make(size_t in, size_t out, size_t w_off, size_t b_off, size_t u_off,
                                           size_t v_off, double *scratch);

/* Doubles of scratch the normalization of an in -> out layer needs. */
size_t elbo_spectral_norm_scratch_doubles(size_t in, size_t out);

/* With iterate: one power iteration, u and v of params updated (normalized with torch's eps 1e-12); then sigma =
 * u . (W v) and W / sigma into wsn + w_off. Without: sigma and W / sigma from the stored u and v (torch's eval
 * mode). Sums in double, in a fixed order (the same bits on any thread). */
void elbo_spectral_norm_refresh(elbo_spectral_norm *s, float *params, float *wsn, int iterate);

/* The refresh in stages that a team splits (a barrier between stages; any split gives the same bits):
 * left: entries [j0, j1) of W^T u (in double, rows added in order) into the scratch v;
 * set_v: with iterate, v = normalize(W^T u) into params, else the scratch v from params' v (one thread);
 * right: rows [o0, o1) of W v (each row summed in order) into the scratch;
 * set_u_sigma: with iterate, u = normalize(W v) into params; then sigma = u . (W v) (one thread);
 * scale: rows [o0, o1) of W / sigma into wsn + w_off. */
void elbo_spectral_norm_left(const elbo_spectral_norm *s, const float *params, size_t j0, size_t j1);
void elbo_spectral_norm_set_v(const elbo_spectral_norm *s, float *params, int iterate);
void elbo_spectral_norm_right(const elbo_spectral_norm *s, const float *params, size_t o0, size_t o1);
void elbo_spectral_norm_set_u_sigma(elbo_spectral_norm *s, float *params, int iterate);
void elbo_spectral_norm_scale(const elbo_spectral_norm *s, const float *params, float *wsn, size_t o0, size_t o1);

/* <dy, y - b> of one row: dy and y (out) the gradient and value of the pre-activation output, b (out) the bias. */
double elbo_spectral_norm_row_dot(const float *dy, const float *y, const float *b, size_t out);

/* Rows [lo, hi) (output features) of the weight gradient in grads + w_off, from dL/d(W / sigma) to dL/dW, with
 * <G, W / sigma> = dot (the sum over the batch rows of elbo_spectral_norm_row_dot) and u, v from s->params (the
 * elbo_trainable hook's form). */
void elbo_spectral_norm_weight_grads(const void *s, float *grads, size_t lo, size_t hi, double dot);

#endif
