/* The diffusion model (DDPM, Ho et al. 2020): pixels scaled to [-1, 1] are noised as x_t = sqrt(abar_t) x_0 +
 * sqrt(1 - abar_t) eps, t uniform in 1..T, and a residual MLP eps_theta(x_t, t) is trained on the simple loss
 * ||eps - eps_theta||^2 averaged over pixels (and over the batch, as F.mse_loss). Samplers: ancestral DDPM (T
 * steps, reverse variance beta-tilde_t) and DDIM (eta = 0, S uniformly spaced steps), x-hat_0 clipped to [-1, 1]
 * in both; the variational bound in nats per image (the prior term at T, the KL terms, the discretized Gaussian
 * decoder at t = 1), the sum over t whole or estimated from K stratified steps.
 *
 * The network (tensor names those of a PyTorch module with these attributes):
 *   emb  = [sin(t f_k) | cos(t f_k)], f_k = exp(-ln(10^4) k / (E/2)), k < E/2        (B, E)     E = 128
 *   e    = time.2(SiLU(time.0(emb)))                                                (B, Td)    Td = 256
 *   h_0  = inp(x_t)                                                                 (B, H)     H = 1024
 *   h_{k+1} = h_k + blocks.k.w2(SiLU(blocks.k.w1(SiLU(h_k)) + blocks.k.u(e)))       k < n_blocks = 3
 *   eps_theta = out(SiLU(h_n))                                                      (B, D)
 * Every Linear has a bias; weights are (out, in) row-major. The arena holds the weights, a second arena of the same
 * layout their exponential moving average (checkpoint tensors "ema.<name>"), updated after every optimizer block. */
#ifndef ELBO_DIFFUSION_H
#define ELBO_DIFFUSION_H

#include <stddef.h>
#include <stdint.h>

#include "act_arena.h"
#include "checkpoint.h"
#include "diffusion_schedule.h"
#include "linear.h"
#include "model.h"
#include "params.h"
#include "team.h"

#define ELBO_DIFFUSION_MAX_BLOCKS 4

typedef struct {
    size_t input_dim, image_rows, image_cols; /* D = rows * cols */
    size_t emb_dim;                           /* E: sinusoidal features (half sines, half cosines) */
    size_t time_dim;                          /* Td */
    size_t hidden;                            /* H */
    size_t n_blocks;
    size_t T;
    elbo_schedule_kind schedule;
    double beta_1, beta_T;                    /* the linear schedule's ends */
    double ema_decay;                         /* the moving average's decay (its warm-up: elbo_diffusion_ema_rate) */
} elbo_diffusion_config;

typedef struct {
    elbo_diffusion_config cfg;
    elbo_schedule sched;
    float *sqrt_ab, *sqrt_1mab;               /* (T + 1) sqrt(abar_t), sqrt(1 - abar_t) as floats (the noising) */
    elbo_param_layout layout;
    const elbo_kernels *kern;
    float *params, *grads, *ema;              /* arenas (layout.total) */
    elbo_linear layer[ELBO_MAX_LAYERS];       /* time.0, time.2, inp, (u, w1, w2) per block, out */
} elbo_diffusion;

/* Activations of up to max_batch rows (views of one arena). */
typedef struct {
    size_t max_batch;
    uint32_t *t;                              /* (B) time steps */
    float *xt, *eps;                          /* (B, D) the noised input, the noise (training target) */
    float *emb;                               /* (B, E) */
    float *tu, *ts, *e;                       /* (B, Td) time.0's pre-activation and SiLU of it, the embedding e */
    float *h[ELBO_DIFFUSION_MAX_BLOCKS + 1];  /* (B, H) the residual stream (pre-activation) */
    float *s[ELBO_DIFFUSION_MAX_BLOCKS + 1];  /* (B, H) SiLU(h) */
    float *u[ELBO_DIFFUSION_MAX_BLOCKS];      /* (B, H) w1 s + u e (pre-activation) */
    float *a[ELBO_DIFFUSION_MAX_BLOCKS];      /* (B, H) SiLU(u) */
    float *out;                               /* (B, D) eps_theta */
    float *dout;                              /* (B, D) d loss / d out */
    float *dh[ELBO_DIFFUSION_MAX_BLOCKS + 1]; /* (B, H) d loss / d h_k */
    float *du[ELBO_DIFFUSION_MAX_BLOCKS];     /* (B, H) d loss / d u_k */
    float *tmp;                               /* (B, H) w1's masked data gradient before the residual sum */
    float *de, *dtu;                          /* (B, Td) d loss / d e, d loss / d tu */
    float *loss;                              /* (B) per-row squared error summed over pixels */
    elbo_act_arena arena;
    elbo_gemm_workspace ws;                   /* for single-threaded callers */
} elbo_diffusion_activations;

typedef enum { ELBO_SAMPLER_DDPM = 0, ELBO_SAMPLER_DDIM = 1 } elbo_sampler_kind;

/* H 1024, 3 blocks, E 128, Td 256, T 1000, linear beta 1e-4 .. 0.02, EMA 0.999, for rows x cols images. */
elbo_diffusion_config elbo_diffusion_config_default(size_t image_rows, size_t image_cols);
/* Checks every field; returns 0, or -1 with a message in err naming the field. */
int elbo_diffusion_config_validate(const elbo_diffusion_config *c, char *err, size_t errlen);
/* "diffusion 784-1024x3-784, T 1000 linear". */
void elbo_diffusion_config_describe(const elbo_diffusion_config *c, char *out, size_t outlen);
/* The parameter layout (time.0, time.2, inp, blocks.k.{u, w1, w2}, out). */
void elbo_diffusion_layout_build(elbo_param_layout *l, const elbo_diffusion_config *c);

/* Allocates a model for a valid config with zeroed parameters (and moving average); returns 0 or -1 (err). */
int elbo_diffusion_init(elbo_diffusion *m, const elbo_diffusion_config *cfg, const elbo_kernels *kern, char *err,
                        size_t errlen);
/* Frees everything elbo_diffusion_init allocated (safe on a zeroed struct). */
void elbo_diffusion_free(elbo_diffusion *m);
/* Packs every weight for the GEMMs; call after the parameters change. */
void elbo_diffusion_pack_weights(elbo_diffusion *m);
/* Copies the moving average over the parameters and repacks: what sampling and evaluation run on. */
void elbo_diffusion_use_ema(elbo_diffusion *m);
/* The moving average's rate at optimizer step `step` (1 for the first): min(decay, (1 + step) / (10 + step)). */
double elbo_diffusion_ema_rate(double decay, long step);

/* Allocates activations for up to max_batch rows; returns 0 or -1 on out-of-memory. */
int elbo_diffusion_activations_init(elbo_diffusion_activations *a, const elbo_diffusion *m, size_t max_batch);
/* Frees activations (safe on a zeroed struct). */
void elbo_diffusion_activations_free(elbo_diffusion_activations *a);

/* emb (dim) of time step t: emb[k] = sin(t f_k), emb[dim/2 + k] = cos(t f_k), f_k = exp(-ln(10^4) k / (dim/2)),
 * each computed in double and rounded once. */
void elbo_diffusion_time_embedding(float *emb, uint32_t t, size_t dim);

/* Rows [r0, r1) of eps_theta(a->xt, a->t) into a->out (forward only; a->t and a->xt of those rows set). */
void elbo_diffusion_predict_rows(const elbo_diffusion *m, elbo_diffusion_activations *a, elbo_gemm_workspace *ws,
                                 size_t r0, size_t r1);

/* Single-threaded gradients of the batch's simple loss (the mean over b rows and D pixels) for x0 (b, D) in
 * [-1, 1], t (b) and eps (b, D): the noising, forward, loss and backward, every parameter's gradient into m->grads.
 * Returns the loss. */
double elbo_diffusion_grads(elbo_diffusion *m, elbo_diffusion_activations *a, const float *x0, const uint32_t *t,
                            const float *eps, size_t b);

/* The time steps of a sampler, first (largest) to last (1): DDPM T, T-1, ..., 1; DDIM tau_i = round(1 + i (T-1) /
 * (S-1)) for i = S-1 .. 0 (S >= 2, or tau = {T} for S = 1). Writes steps (n) and returns n. */
size_t elbo_diffusion_sampler_steps(const elbo_diffusion *m, elbo_sampler_kind kind, size_t sample_steps,
                                    uint32_t *steps);

/* Rows [r0, r1) of x_T: a->xt row r = the normals of (seed, SAMPLE, first + r, 0). */
void elbo_diffusion_start_rows(const elbo_diffusion *m, elbo_diffusion_activations *a, uint64_t seed, size_t first,
                               size_t r0, size_t r1);
/* Steps [i0, i1) (of the sampler's n; 0 first) over rows [r0, r1) of a->xt, which holds x after step i0 - 1 (x_T
 * for i0 = 0): eps_theta, then the DDPM or DDIM update (DDPM's noise at step i from (seed, SAMPLE, first + r,
 * i + 1)). No team barrier. */
void elbo_diffusion_denoise_rows(const elbo_diffusion *m, elbo_diffusion_activations *a, elbo_gemm_workspace *ws,
                                 elbo_sampler_kind kind, size_t sample_steps, uint64_t seed, size_t first, size_t r0,
                                 size_t r1, size_t i0, size_t i1);

/* Rows [r0, r1) of a batch of samples: x_T from the normals of (seed, SAMPLE, first + r, 0), then the sampler's
 * steps over them (DDPM's added noise at step i from (seed, SAMPLE, first + r, i + 1)); x_0 in [-1, 1] into
 * x (row r at x + r * D). When traj is not NULL it receives n_frames frames (2 <= n_frames <= n + 1 for a sampler
 * of n steps): frame f (row r at traj + (f * rows_total + r) * D) is x after step floor(f n / (n_frames - 1)) of the
 * n steps (frame 0 is x_T, the last x_0). Uses a's rows [r0, r1) (r1 <= a->max_batch); no team barrier. */
void elbo_diffusion_sample_rows(const elbo_diffusion *m, elbo_diffusion_activations *a, elbo_gemm_workspace *ws,
                                elbo_sampler_kind kind, size_t sample_steps, uint64_t seed, size_t first, size_t r0,
                                size_t r1, float *x, float *traj, size_t n_frames, size_t rows_total);

/* n samples (first .. first + n) into x (n, D) in [-1, 1], batched over the team (each thread its rows of batches of
 * a->max_batch); the same bits for any team size. traj as in elbo_diffusion_sample_rows (rows_total = n). */
void elbo_diffusion_sample(const elbo_diffusion *m, elbo_diffusion_activations *a, elbo_team *team,
                           elbo_sampler_kind kind, size_t sample_steps, uint64_t seed, size_t first, size_t n,
                           float *x, float *traj, size_t n_frames);

/* The gray level of a sample value in [-1, 1]: round(255 (v + 1) / 2), clamped. */
uint8_t elbo_diffusion_gray(float v);

/* The variational bound's terms for rows [r0, r1) of n images x (uint8, row r at x + r * D; sample index
 * first + r): per row, in nats, the prior term KL(q(x_T | x_0) || N(0, I)) plus K stratified terms: the steps
 * 1..T cut into K strata of consecutive steps (sizes differing by at most one), one step t drawn uniformly in each
 * (seed, TIME, sample, stratum), its term (the discretized Gaussian decoder's -log p(x_0 | x_1) at t = 1, else
 * KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) with x_t from the normals of (seed, EVAL, sample, stratum)) times
 * the stratum's size. K = T is the whole sum. nats (n) receives each row's bound; no team barrier. */
void elbo_diffusion_bound_rows(const elbo_diffusion *m, elbo_diffusion_activations *a, elbo_gemm_workspace *ws,
                               const uint8_t *x, size_t K, uint64_t seed, size_t first, size_t r0, size_t r1,
                               double *nats);

/* The mean bound in bits per dimension over n images, batched over the team (the same bits for any team size). */
double elbo_diffusion_bound_bpd(const elbo_diffusion *m, elbo_diffusion_activations *a, elbo_team *team,
                                const uint8_t *x, size_t n, size_t K, uint64_t seed);

/* The model as the trainer, the evaluation loop and the checkpoint see it (pointers into m, which must outlive it).
 * Its loss is the simple loss per image (mean over pixels); its part 0 the same. */
elbo_model elbo_diffusion_model(elbo_diffusion *m);

/* Reads a diffusion checkpoint (kind "diffusion"; every config field and tensor checked, the moving average
 * included), initializes m with kernels kern and packs its weights; st may be NULL. Returns 0, or -1 with a
 * one-line message naming the field. */
int elbo_diffusion_load(const char *path, elbo_diffusion *m, const elbo_kernels *kern, elbo_train_state *st,
                        char *err, size_t errlen);

/* FLOPs of one training image (forward, data and weight gradients) and of one network evaluation (forward). */
double elbo_diffusion_train_flops_per_sample(const elbo_diffusion *m);
double elbo_diffusion_forward_flops(const elbo_diffusion *m);

#endif
