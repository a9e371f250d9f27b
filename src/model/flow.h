/* The normalizing flow (RealNVP): an invertible map from images to z ~ N(0, I), trained by exact maximum likelihood.
 *
 * Preprocessing: x = (pixel + u) / 256 with u ~ U[0, 1) (the dequantization noise, counter-based), y = logit(v),
 * v = alpha + (1 - 2 alpha) x, whose log-determinant sum_j ln(1 - 2 alpha) - ln v_j - ln(1 - v_j) is part of the
 * likelihood. Then K affine couplings: coupling k keeps the pixels of its mask (keep = 1) and transforms the others,
 * raw = net_k(h * keep) (D -> hidden -> 2D, ReLU between), s = scale_k tanh(raw[:D]), t = raw[D:], h' = h exp(s) + t
 * on the transformed pixels; its log-determinant is the sum of s there. Masks alternate a fixed pattern and its
 * complement: the checkerboard (row + col even kept on even couplings) or the halves (the first D / 2 pixels kept on
 * even couplings). scale_k is a learned per-pixel vector initialised to 0 and the shift rows of each net's last
 * layer start at 0, so every coupling starts as the identity.
 *
 * Only what the model uses is stored and computed: a net's first layer reads only its coupling's Dk kept pixels (the
 * weights of the zeroed inputs never touch the output, so they are not parameters), its last layer writes only s and
 * t of the Dt transformed pixels, and scale_k covers those Dt pixels: the same function and the same initial
 * distribution (the first layer's init bound stays nn.Linear's 1/sqrt(D)) as the full-width net, with ~41 % fewer
 * FLOPs. Rows are stored in the flow's pixel order (`order`): the pattern's pixels ascending, then the others, so
 * each coupling's kept and transformed pixels are two contiguous blocks of a row; the public functions take and
 * return images and logit-space rows in pixel order.
 *
 * The loss of an image is -log p of its discrete pixels in nats, as the dequantization bound:
 *     0.5 |z|^2 + D/2 ln(2 pi)  -  sum_k logdet_k  -  sum_j ln|dy_j/dx_j| + D ln 256
 * (parts nll_z, log_det, preprocess = the last two terms), bits per dimension = loss / (D ln 2). Training
 * minimizes its batch mean. Tensor names are those of an nn.Module with couplings.K.net.{0,2,4}.{weight,bias} and
 * couplings.K.scale (tests/parity/flow_torch.py), holding the used entries of the full-width tensors: net.0.weight
 * (hidden, Dk) the columns of the kept pixels in ascending pixel order, the last layer (2 Dt, hidden) the rows of s
 * then of t of the transformed pixels in ascending order, scale (Dt) likewise (elbo_flow_full_index maps them).
 * Checkpoints say so in __metadata__.coupling_layout = "trimmed"; files of the full-width layout are refused.
 *
 * Shapes: B = batch rows, D = input_dim = image_rows * image_cols. Weights are (out, in) row-major. */
#ifndef ELBO_FLOW_H
#define ELBO_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "act_arena.h"
#include "checkpoint.h"
#include "config.h"
#include "linear.h"
#include "mlp.h"
#include "model.h"
#include "params.h"

#define ELBO_FLOW_MAX_COUPLINGS 16

typedef enum { ELBO_FLOW_MASK_CHECKERBOARD = 0, ELBO_FLOW_MASK_HALF = 1 } elbo_flow_mask;

typedef struct {
    size_t input_dim, image_rows, image_cols; /* D = rows * cols */
    size_t n_hidden, hidden[ELBO_MAX_HIDDEN]; /* each coupling net's hidden widths, input side first */
    size_t couplings;                         /* K */
    elbo_flow_mask mask;
    double alpha;                             /* the logit's margin (0.05) */
} elbo_flow_config;

typedef struct {
    elbo_flow_config cfg;
    elbo_param_layout layout;                 /* per coupling: net layers (Dk in, 2 Dt out), then its scale (a layer of
                                               * 1 input, Dt out) */
    const elbo_kernels *kern;
    float *params, *grads;                    /* arenas (layout.total) */
    elbo_linear layer[ELBO_MAX_LAYERS];       /* coupling k's net layers at k (n_hidden + 2) + i, its scale after */
    size_t *order;                            /* (D) the pixel at each position of the flow's rows */
    size_t n_first;                           /* the pattern's pixels (kept by even couplings), first in order */
} elbo_flow;

/* Activations of up to max_batch rows (views of one arena). */
typedef struct {
    size_t max_batch;
    float *h[ELBO_FLOW_MAX_COUPLINGS + 1];    /* (B, D) coupling k's input in the flow's order; h[0] = y, h[K] = z;
                                               * net k reads its kept block in place (row stride D) */
    float *hid[ELBO_FLOW_MAX_COUPLINGS][ELBO_MAX_HIDDEN], *dhid[ELBO_FLOW_MAX_COUPLINGS][ELBO_MAX_HIDDEN];
    float *raw[ELBO_FLOW_MAX_COUPLINGS];      /* (B, 2 Dt) net k's output [raw_s | t] (in a training step, with
                                               * coupling_forward_saving, [tanh(raw_s) | t] after the coupling), then
                                               * its gradient */
    float *dscale[ELBO_FLOW_MAX_COUPLINGS];   /* (B, Dt) each row's d loss / d scale_k (in a training step, with
                                               * coupling_forward_saving, exp(s) from the coupling to its backward) */
    float *dh;                                /* (B, D) d loss / d h[k] during the backward pass */
    float *dmi;                               /* (B, max Dk) d loss / d net k's input (its kept block) */
    float *zeros;                             /* (B, 1) the scale layers' input: their weight gradient is 0 */
    double *nll_z, *log_det, *pre, *ld_k;     /* (B) each row's parts; ld_k: one coupling's log-determinant */
    elbo_mlp net[ELBO_FLOW_MAX_COUPLINGS];
    elbo_packed_b x_packed[ELBO_FLOW_MAX_COUPLINGS][ELBO_MAX_HIDDEN + 1]; /* FP32 kernels: net k's layer i input
                                               * (B, in_i) packed as its weight gradient's B (K = the step's rows),
                                               * by the backward pass; no storage otherwise */
    elbo_act_arena arena;
    elbo_gemm_workspace ws;                   /* for single-threaded callers */
} elbo_flow_activations;

/* 8 checkerboard couplings of 512-512 hidden, alpha 0.05, for rows x cols images. */
elbo_flow_config elbo_flow_config_default(size_t image_rows, size_t image_cols);
/* Checks every field (a mask that leaves a half of the image empty included); returns 0, or -1 with a message in err
 * naming the field. */
int elbo_flow_config_validate(const elbo_flow_config *c, char *err, size_t errlen);
/* "flow 8 couplings (checkerboard) of 784-512-512-1568". */
void elbo_flow_config_describe(const elbo_flow_config *c, char *out, size_t outlen);
/* "checkerboard", "half". */
const char *elbo_flow_mask_name(elbo_flow_mask m);
/* Parses a mask name; returns 0 or -1. */
int elbo_flow_mask_parse(const char *s, elbo_flow_mask *m);
/* keep (D) = coupling k's mask for config c. */
void elbo_flow_mask_fill(const elbo_flow_config *c, size_t k, float *keep);
/* The parameter layout: couplings.k.net.0, .2, ... and couplings.k.scale for k = 0 .. K-1 (trimmed to the used
 * entries, as above). */
void elbo_flow_layout_build(elbo_param_layout *l, const elbo_flow_config *c);
/* Coupling k's blocks of a row in the flow's order: the Dk kept pixels at [*kept, *kept + *n_kept) and the Dt
 * transformed ones at [*transformed, *transformed + *n_transformed). */
void elbo_flow_blocks(const elbo_flow *m, size_t k, size_t *kept, size_t *n_kept, size_t *transformed,
                      size_t *n_transformed);
/* Element e of layout tensor t as an index into the full-width tensor of the same name (net.0.weight (hidden, D),
 * the last layer (2 D, hidden), scale (D): tests/parity/flow_torch.py's and the PyTorch reference's shapes); with
 * full_size (may be NULL) = that tensor's element count. */
size_t elbo_flow_full_index(const elbo_flow *m, size_t t, size_t e, size_t *full_size);

/* Allocates a model for a valid config with zeroed parameters; returns 0 or -1 (message in err). */
int elbo_flow_init(elbo_flow *m, const elbo_flow_config *cfg, const elbo_kernels *kern, char *err, size_t errlen);
/* Frees everything elbo_flow_init allocated (safe on a zeroed struct). */
void elbo_flow_free(elbo_flow *m);
/* The initial parameters: nn.Linear's distribution for every net layer (elbo_params_init), then every scale and the
 * shift rows (D .. 2D) of every net's last layer at 0, so each coupling is the identity; packs the weights. */
void elbo_flow_init_params(elbo_flow *m, uint64_t seed);
/* Packs every weight for the GEMMs; call after the parameters change. */
void elbo_flow_pack_weights(elbo_flow *m);

/* Allocates activations for up to max_batch rows; returns 0 or -1 on out-of-memory. */
int elbo_flow_activations_init(elbo_flow_activations *a, const elbo_flow *m, size_t max_batch);
/* Frees activations (safe on a zeroed struct). */
void elbo_flow_activations_free(elbo_flow_activations *a);

/* Rows [0, n) of y (n, D) = logit(alpha + (1 - 2 alpha) (pixels + u) / 256) from pixels (n, D) and u (n, D) in
 * [0, 1); pre (n) = each row's -sum ln|dy/dx| + D ln 256 (NULL: not computed). Computed in double, rounded once. */
void elbo_flow_preprocess(const elbo_flow_config *c, const uint8_t *pixels, const float *u, float *y, double *pre,
                          size_t n);

/* Single-threaded: z (n, D) and the couplings' log-determinant (n) of logit-space inputs y (n <= max_batch). */
void elbo_flow_forward_y(const elbo_flow *m, elbo_flow_activations *a, const float *y, size_t n, float *z,
                         double *logdet);
/* Single-threaded: y (n, D) = the exact inverse of the couplings at z (n <= max_batch). */
void elbo_flow_inverse(const elbo_flow *m, elbo_flow_activations *a, const float *z, size_t n, float *y);

/* Single-threaded gradients over b rows of pixels x (b, D) with dequantization noise u (b, D): grads = d (batch mean
 * of the loss) / d every parameter. Returns the mean loss (nats per image). */
double elbo_flow_grads(elbo_flow *m, elbo_flow_activations *a, const uint8_t *x, const float *u, size_t b);

/* Each row's loss (nats) of pixels x (n, D) with the dequantization noise of (seed, ELBO_STREAM_EVAL, first + r,
 * draw) into nll (n), over rows [r0, r1) (the forward only; no barrier, so threads may split the rows). */
void elbo_flow_nll_rows(const elbo_flow *m, elbo_flow_activations *a, elbo_gemm_workspace *ws, const uint8_t *x,
                        size_t r0, size_t r1, uint64_t seed, size_t first, uint32_t draw, double *nll);

/* n <= max_batch samples, single-threaded: z = temperature * the normals of (seed, ELBO_STREAM_SAMPLE, first + i),
 * the inverse couplings, then x = (sigmoid(y) - alpha) / (1 - 2 alpha) into unit (n, D, clamped to [0, 1]) when not
 * NULL and the pixels floor(256 x) clamped to 0..255 into pixels when not NULL. */
void elbo_flow_sample(const elbo_flow *m, elbo_flow_activations *a, size_t first, size_t n, uint64_t seed,
                      double temperature, float *unit, uint8_t *pixels);

/* Bits per dimension of the discrete pixels of a loss in nats per image: nll / (D ln 2). */
double elbo_flow_bits_per_dim(const elbo_flow_config *c, double nll_nats);

/* The model as the trainer, the evaluation loop and the checkpoint see it (pointers into m, which must outlive it).
 * Its loss is the nats of an image; its parts nll_z, log_det and preprocess. Evaluation draws the dequantization
 * noise from (seed, ELBO_STREAM_EVAL, sample index, batch.step). */
elbo_model elbo_flow_model(elbo_flow *m);

/* Reads a flow checkpoint (kind "flow"; every config field and tensor checked), initializes m with kernels kern and
 * packs its weights; st may be NULL. Returns 0, or -1 with a one-line message naming the field. */
int elbo_flow_load(const char *path, elbo_flow *m, const elbo_kernels *kern, elbo_train_state *st, char *err,
                   size_t errlen);

/* FLOPs of one training iteration per image: every net's forward, weight gradients and data gradients (not the
 * first net's input gradient), over the trimmed layers (the FLOPs the model needs). */
double elbo_flow_train_flops_per_sample(const elbo_flow *m);
/* FLOPs of sampling one image (every net's forward). */
double elbo_flow_sample_flops_per_sample(const elbo_flow *m);

#endif
