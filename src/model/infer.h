/* Inference with a trained VAE over any number of images, in chunks of the activations' max_batch:
 * posterior means, decoding latent points to pixels, per-image scores, and the importance-weighted
 * estimate of log p(x).
 *
 * Likelihood: pixels t = x / 255 in [0, 1]; with MSE, p(x|z) = N(t; sigmoid(logits), sigma0^2 I), so
 * log p(x|z) = -recon - (D/2) log(2 pi sigma0^2) where recon = sum (t - t')^2 / (2 sigma0^2) is the training
 * loss term; with BCE, log p(x|z) = -recon (the Bernoulli log-likelihood of t). The importance-weighted bound
 * and the ELBO reported beside it both use this normalized log p(x|z) (and the KL weight 1), so that
 * E[IW_K] >= ELBO is a comparison of two bounds on the same log p(x). */
#ifndef ELBO_INFER_H
#define ELBO_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "team.h"
#include "vae.h"

/* The normalizing term of -log p(x|z) that the training loss leaves out: (D/2) log(2 pi sigma0^2) for MSE, 0 for BCE. */
double elbo_recon_log_norm(const elbo_vae_config *c);

/* mulv (n, 2Z) = [mu | logvar] of q(z|x) for n images x (n, D), single-threaded. */
void elbo_infer_encode(const elbo_vae *m, elbo_vae_activations *a, const uint8_t *x, size_t n, float *mulv);

/* probs (n, D) = sigmoid(decoder logits) in [0, 1] for n latent points z (n, Z), single-threaded. */
void elbo_infer_decode(const elbo_vae *m, elbo_vae_activations *a, const float *z, size_t n, float *probs);

/* Samples [first, first + n) from the prior as pixels (n, D): sample i decodes the normals of (seed,
 * ELBO_STREAM_SAMPLE, i), and its pixels are round(255 p) of the decoder means p clamped to [0, 1]. zs (n, Z) and
 * probs (n, D) are scratch. */
void elbo_infer_sample_pixels(const elbo_vae *m, elbo_vae_activations *a, size_t first, size_t n, uint64_t seed,
                              float *zs, float *probs, uint8_t *pixels);

/* Gray level of a decoder mean p: round(255 p) after clamping p to [0, 1]. */
uint8_t elbo_gray_level(float p);

/* Per image of x (n, D), single-threaded: recon_error[i] = sum over pixels of (t - t')^2 with t' the
 * decoding of the posterior mean, and neg_elbo[i] = recon + beta * KL as elbo eval reports it (one
 * posterior sample, noise of (seed, ELBO_STREAM_EVAL, image index)). Either output may be NULL. */
void elbo_infer_scores(const elbo_vae *m, elbo_vae_activations *a, const uint8_t *x, size_t n, uint64_t seed,
                       double *recon_error, double *neg_elbo);

/* Per image of x (n, D), over team's threads (the same bits for any thread count):
 * iw[i] = log (1/K) sum_k exp(log p(x|z_k) + log p(z_k) - log q(z_k|x)), z_k = mu + sigma eps_k with eps_k
 * the normals of (seed, ELBO_STREAM_EVAL, image index, k), so sample 0 is elbo eval's sample and the first K
 * samples are shared by every larger K; elbo[i] = log p(x|z_0) - KL(q || p) (analytic KL, weight 1).
 * Returns 0, or -1 when K is 0 or out of memory. */
int elbo_infer_iw(const elbo_vae *m, elbo_vae_activations *a, elbo_team *team, const uint8_t *x, size_t n,
                  size_t k, uint64_t seed, double *iw, double *elbo);

#endif
