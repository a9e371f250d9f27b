/* Fused elementwise kernels of the VAE step: each makes one pass over its memory.
 * Every kernel works on a slice of B rows so a caller can split a batch across threads;
 * per-row results do not depend on how the batch is split. */
#ifndef ELBO_ELEMENTWISE_H
#define ELBO_ELEMENTWISE_H

#include <stddef.h>
#include <stdint.h>

/* Reparameterization forward. mulv is (B, 2Z) rows [mu | logvar]; eps, z, sigma are (B, Z); kl is (B).
 * sigma = exp(0.5 logvar), z = mu + sigma * eps, kl[i] = 0.5 * sum_j (mu^2 + exp(logvar) - logvar - 1). */
typedef void (*elbo_reparam_forward_fn)(float *z, float *sigma, float *kl, const float *mulv,
                                        const float *eps, size_t b, size_t zdim);

/* Reparameterization backward. dz, eps, sigma are (B, Z); mulv and dmulv are (B, 2Z).
 * dmu = dz + kl_weight * mu; dlogvar = 0.5 * dz * eps * sigma + kl_weight * 0.5 * (sigma^2 - 1),
 * where kl_weight = d loss / d kl[i] (beta times the loss scale). */
typedef void (*elbo_reparam_backward_fn)(float *dmulv, const float *dz, const float *mulv,
                                         const float *eps, const float *sigma, float kl_weight,
                                         size_t b, size_t zdim);

/* Decoder output with Gaussian (MSE) reconstruction. logits is (B, D), x is (B, D) pixels (target x/255).
 * p = sigmoid(logits); loss[i] = recon_scale * sum_j (target - p)^2;
 * dlogits = grad_scale * d loss[i] / d logits. dlogits may alias logits; probs (B, D) may be NULL. */
typedef void (*elbo_sigmoid_mse_fn)(float *dlogits, float *loss, float *probs, const float *logits,
                                    const uint8_t *x, float recon_scale, float grad_scale,
                                    size_t b, size_t d);

/* Decoder output with Bernoulli (BCE) reconstruction, stable from the logits:
 * loss[i] = sum_j max(l, 0) - target * l + log1p(exp(-|l|)); dlogits = grad_scale * (sigmoid(l) - target).
 * dlogits may alias logits; probs (B, D) may be NULL. */
typedef void (*elbo_sigmoid_bce_fn)(float *dlogits, float *loss, float *probs, const float *logits,
                                    const uint8_t *x, float grad_scale, size_t b, size_t d);

/* Fused losses with their gradients. Each works on a slice of B rows (per-row results do not depend on how a batch
 * is split), writes one loss per row (a float sum in the order every ISA shares: eight interleaved partial sums,
 * then the tree ((p0+p4) + (p2+p6)) + ((p1+p5) + (p3+p7))), and writes d loss / d input times grad_scale
 * (e.g. 1/B for a batch mean). The gradient may alias the input it is taken against, or be NULL (loss only).
 * NaN inputs give NaN losses and gradients, as PyTorch's do. */

/* Binary cross-entropy with logits against one constant label y in [0, 1] (the GAN's real/fake losses).
 * logits, dlogits are (B, N); loss is (B).
 * loss[i] = sum_j max(l, 0) - l y + log1p(exp(-|l|)) (PyTorch's stable form); dlogits = grad_scale (sigmoid(l) - y). */
typedef void (*elbo_bce_logits_const_fn)(float *dlogits, float *loss, const float *logits, float label,
                                         float grad_scale, size_t b, size_t n);

/* Squared error against float targets (diffusion's noise prediction). pred, target, dpred are (B, N); loss is (B).
 * loss[i] = sum_j (pred - target)^2; dpred = 2 grad_scale (pred - target). */
typedef void (*elbo_mse_fn)(float *dpred, float *loss, const float *pred, const float *target, float grad_scale,
                            size_t b, size_t n);

/* Softmax cross-entropy against class labels (the classifier). logits and dlogits are (B, C) with row stride
 * ld >= C (the same for both); labels, loss and argmax are (B), each label < C.
 * loss[i] = logsumexp(row) - row[label] (max-subtracted); dlogits = grad_scale (softmax(row) - onehot(label));
 * argmax[i] = the first index of the row's maximum (the first NaN if the row has one, as torch.argmax);
 * argmax may be NULL. */
typedef void (*elbo_softmax_ce_fn)(float *dlogits, float *loss, uint32_t *argmax, const float *logits,
                                   const uint8_t *labels, float grad_scale, size_t b, size_t c, size_t ld);

/* Pixels as the network's input: dst (n) = src (n) / 255, correctly rounded as (float)src / 255.0f (the
 * same values the GEMM's uint8 packing produces). */
typedef void (*elbo_unit_from_u8_fn)(float *dst, const uint8_t *src, size_t n);

/* Bias gradient: db (N) = sum over the B rows of dy (B, N, row stride ldy); accumulate adds into db. */
typedef void (*elbo_column_sum_fn)(float *db, const float *dy, size_t b, size_t n, size_t ldy,
                                   int accumulate);

/* Adam hyper-parameters for one step (PyTorch semantics; step counts from 1). Doubles, as PyTorch holds
 * them: kernels round each derived scalar once, e.g. (float)(1 - beta2) = 0.001f, not 1 - 0.999f. */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    long step;
} elbo_adam_hparams;

/* Adam over a rows x cols block of parameters (row stride ld, the same in all four arrays):
 * g += wd * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). */
typedef void (*elbo_adam_fn)(float *param, float *m, float *v, const float *grad, size_t rows, size_t cols,
                             size_t ld, const elbo_adam_hparams *h);

/* SGD hyper-parameters (PyTorch semantics). With momentum 0 the buffer is never used (may be NULL);
 * on the first step it is written, not read. */
typedef struct {
    double lr, momentum, dampening, weight_decay;
    int nesterov;
} elbo_sgd_hparams;

/* SGD with momentum over a rows x cols block of parameters (row stride ld in all three arrays):
 * g += wd * p; buf = momentum * buf + (1 - dampening) * g (buf = g on the first step, signalled by first_step);
 * p -= lr * (nesterov ? g + momentum * buf : buf). */
typedef void (*elbo_sgd_fn)(float *param, float *buf, const float *grad, size_t rows, size_t cols, size_t ld,
                            const elbo_sgd_hparams *h, int first_step);

#endif
